//! Malformed, non-object, binary and oversized frames are counted and
//! skipped; the connection survives them and valid events keep arriving.

use std::time::Duration;

use riskwatch::client::ConnState;
use riskwatch::{Severity, Style};
use tokio_tungstenite::tungstenite::Message;

use crate::common::{Rec, Server, assert_events, config, expect, ms, within};

const SECS: Duration = Duration::from_secs(5);

/// A valid trading event padded to `len` bytes.
fn padded(len: usize) -> String {
    let head = r#"{"type":"system_notification","message":"big","pad":""#;
    let tail = r#""}"#;
    let pad = "x".repeat(len - head.len() - tail.len());
    let s = format!("{head}{pad}{tail}");
    assert_eq!(s.len(), len);
    s
}

#[tokio::test]
async fn bad_frames_are_counted_and_survived_on_one_connection() {
    within(20, async {
        let server = Server::start(|mut c| async move {
            c.send(r#"{"type":"market_data","symbol":"SPY","price":1}"#).await;
            c.send(r#"{"type": "risk_alert", "alertLevel": "#).await; // truncated
            c.send("not json at all").await;
            c.send("").await;
            c.send("[1,2,3]").await;
            c.send(r#""just a string""#).await;
            c.send("42").await;
            c.send_binary(vec![0, 159, 146, 150, 255]).await;
            c.send(padded(2048)).await; // over the 1 KiB limit
            c.send(padded(1024)).await; // exactly at the limit: kept
            c.send(r#"{"type":"mystery_event","x":1}"#).await;
            c.send(r#"{"foo":"bar"}"#).await;
            c.send(r#"{"type":"risk_alert","sessionId":"S1","alertLevel":"critical","message":"after the junk"}"#)
                .await;
            c.pump_until_closed(Duration::from_secs(30)).await;
        })
        .await;
        let mut rec = Rec::connect(config(server.url("/ws")).max_message_size(1024));
        let events = rec.events(5, SECS).await;
        assert_events(
            &events,
            &[
                expect("market_data", Severity::Info, Style::Trading, Some("symbol:SPY")),
                expect("system_notification", Severity::Warning, Style::Trading, None),
                expect("mystery_event", Severity::Info, Style::Generic, None),
                expect("untyped", Severity::Info, Style::Generic, None),
                expect("risk_alert", Severity::Critical, Style::Trading, Some("session:S1")),
            ],
        );
        assert_eq!(events[1].payload.get().len(), 1024);
        let st = rec.stats();
        assert_eq!(st.malformed, 6, "3 not JSON + 3 not objects: {st:?}");
        assert_eq!(st.binary, 1, "{st:?}");
        assert_eq!(st.oversized, 1, "{st:?}");
        assert_eq!(st.events, 5, "{st:?}");
        assert_eq!(st.connects, 1, "never reconnected: {st:?}");
        assert_eq!(rec.state(), ConnState::Connected);
        assert_eq!(server.tcp_connections(), 1);
        assert_eq!(rec.states(), [ConnState::Connecting, ConnState::Connected]);
    })
    .await;
}

#[tokio::test]
async fn deeply_nested_json_is_malformed_not_a_crash() {
    within(20, async {
        let deep = format!(
            r#"{{"type":"x","data":{}{}}}"#,
            "[".repeat(20_000),
            "]".repeat(20_000)
        );
        let deep_obj = format!(r#"{}1{}"#, r#"{"a":"#.repeat(5_000), "}".repeat(5_000));
        let server = Server::sending(vec![
            deep,
            deep_obj,
            r#"{"type":"system_notification","message":"still here"}"#.into(),
        ])
        .await;
        let mut rec = Rec::connect(config(server.url("/ws")));
        let events = rec.events_until("system_notification", SECS).await;
        let last = events.last().unwrap();
        assert_eq!(last.data()["message"], "still here");
        // Each deep frame is either skipped as malformed or kept as an event
        // (the payload is carried verbatim); neither crashes nor reconnects.
        let st = rec.stats();
        assert_eq!(events.len() as u64 - 1 + st.malformed, 2, "{st:?}");
        for e in &events[..events.len() - 1] {
            // Looking into such an event must not crash either.
            let _ = e.data();
            let _ = e.describe();
        }
        assert_eq!(st.connects, 1);
    })
    .await;
}

#[tokio::test]
async fn a_frame_beyond_the_hard_limit_costs_the_connection_not_the_client() {
    within(20, async {
        let server = Server::start(|mut c| async move {
            c.send(format!(
                r#"{{"type":"system_notification","message":"conn {}"}}"#,
                c.index
            ))
            .await;
            if c.index == 0 {
                // Far beyond 4 × the 1 KiB limit: tungstenite refuses it.
                c.send(padded(64 * 1024)).await;
            }
            c.pump_until_closed(Duration::from_secs(30)).await;
        })
        .await;
        let mut rec = Rec::connect(config(server.url("/ws")).max_message_size(1024));
        let events = rec.events(2, SECS).await;
        let msgs: Vec<_> = events.iter().map(|e| e.data()["message"].clone()).collect();
        assert_eq!(msgs, ["conn 0", "conn 1"]);
        let st = rec.stats();
        assert_eq!(st.oversized, 1, "{st:?}");
        assert_eq!(st.connects, 2, "{st:?}");
        assert_eq!(rec.state(), ConnState::Connected);
    })
    .await;
}

#[tokio::test]
async fn control_frames_and_empty_binary_are_harmless() {
    within(20, async {
        let server = Server::start(|mut c| async move {
            c.send_msg(Message::Ping(b"hi".to_vec().into())).await;
            c.send_msg(Message::Pong(b"unsolicited".to_vec().into()))
                .await;
            c.send_binary(Vec::new()).await;
            c.send(r#"{"type":"heartbeat"}"#).await;
            c.send(r#"{"type":"market_data","symbol":"TSLA","price":242}"#)
                .await;
            c.pump(ms(500)).await;
            c.pump_until_closed(Duration::from_secs(30)).await;
        })
        .await;
        let mut rec = Rec::connect(config(server.url("/ws")));
        let e = rec.event(SECS).await;
        assert_eq!(e.subject.as_deref(), Some("symbol:TSLA"));
        let st = rec.stats();
        assert_eq!(
            (st.binary, st.malformed, st.events, st.controls),
            (1, 0, 1, 1)
        );
        // The client answered the server's WebSocket ping.
        crate::common::wait_until("the pong arrived", SECS, || {
            server
                .received()
                .iter()
                .any(|(_, g)| *g == crate::common::Got::Pong)
        })
        .await;
    })
    .await;
}
