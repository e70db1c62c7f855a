//! HTTP polling fallback: while the dashboard hub's upgrade keeps failing,
//! its snapshot endpoint is polled and delivered as `dashboard_update`
//! events; as soon as the WebSocket works again the client switches back.

use std::time::Duration;

use riskwatch::client::{ClientUpdate, ConnState, PollMode, Token};
use riskwatch::{Severity, Style};
use serde_json::json;

use crate::common::{Rec, Server, TOKEN, config, ms, within};

const SECS: Duration = Duration::from_secs(5);
const SNAPSHOT: &str = r#"{"total_risks":12,"critical_risks":3,"risk_score":64.5}"#;

async fn dashboard_server() -> Server {
    let server = Server::start(|mut c| async move {
        c.send(r#"{"type":"dashboard_update","timestamp":"2026-02-22T10:00:00Z","data":{"total_risks":13,"via":"ws"}}"#)
            .await;
        c.pump_until_closed(Duration::from_secs(30)).await;
    })
    .await;
    server.refuse_with(503);
    server.route("/api/v1/dashboard", 200, SNAPSHOT);
    server
}

#[tokio::test]
async fn polls_the_snapshot_while_the_upgrade_fails_then_switches_back() {
    within(30, async {
        let server = dashboard_server().await;
        let mut rec = Rec::connect(
            config(server.url("/api/v1/ws/dashboard"))
                .token(Some(Token::new(TOKEN)))
                .poll_after_failures(2)
                .poll_interval(ms(100)),
        );
        let s = rec
            .until_state("polling", SECS, |s| matches!(s, ConnState::Polling { .. }))
            .await;
        assert!(s.to_string().contains("503"), "{s}");
        // Two failed upgrades before polling started, not fewer.
        let before: Vec<ConnState> = rec.states();
        let reconnecting = before
            .iter()
            .filter(|s| matches!(s, ConnState::Reconnecting { .. }))
            .count();
        assert_eq!(
            reconnecting, 1,
            "one Reconnecting after failure 1, Polling after failure 2: {before:?}"
        );
        assert!(server.attempts() >= 2);

        // Snapshots arrive as dashboard_update events.
        let polled = rec.events(2, SECS).await;
        for e in &polled {
            assert_eq!(
                (e.kind.as_str(), e.severity, e.style),
                ("dashboard_update", Severity::Info, Style::Dashboard)
            );
            assert_eq!(
                e.data(),
                serde_json::from_str::<serde_json::Value>(SNAPSHOT).unwrap()
            );
            assert!(!e.source.contains(TOKEN));
        }
        assert!(rec.stats().polls >= 2);
        let hits = server.http_hits();
        assert!(hits.len() >= 2);
        for h in &hits {
            assert_eq!(h.path, "/api/v1/dashboard");
            assert_eq!(
                h.authorization.as_deref(),
                Some(format!("Bearer {TOKEN}").as_str())
            );
        }
        assert_eq!(rec.stats().connects, 0);

        // The WebSocket works again: connected, WS events, polling stops.
        server.refuse_with(0);
        rec.until_state("connected", SECS, |s| *s == ConnState::Connected)
            .await;
        let ws_event = loop {
            let e = rec.event(SECS).await;
            if e.data()["via"] == "ws" {
                break e;
            }
            // A poll in flight when the upgrade succeeded may still land
            // before the WebSocket's first event.
            assert_eq!(e.data()["total_risks"], 12);
        };
        assert_eq!(ws_event.data(), json!({"total_risks":13,"via":"ws"}));
        assert!(ws_event.server_time);
        let polls = rec.stats().polls;
        let hits = server.http_hits().len();
        let later = rec.drain_for(ms(500)).await;
        assert_eq!(rec.stats().polls, polls, "no polling while connected");
        assert_eq!(server.http_hits().len(), hits);
        assert!(
            !later.iter().any(|u| matches!(u, ClientUpdate::Event(_))),
            "{later:?}"
        );
        assert_eq!(rec.state(), ConnState::Connected);
        assert_eq!(rec.stats().connects, 1);
        assert!(!format!("{:?}", rec.log).contains(TOKEN));
    })
    .await;
}

#[tokio::test]
async fn explicit_poll_url_is_used() {
    within(20, async {
        let server = dashboard_server().await;
        server.route(
            "/custom/snapshot",
            200,
            r#"{"type":"dashboard_update","data":{"custom":true}}"#,
        );
        let mut rec = Rec::connect(
            config(server.url("/api/v1/ws/dashboard"))
                .poll(PollMode::Url(server.http_url("/custom/snapshot")))
                .poll_after_failures(1)
                .poll_interval(ms(100)),
        );
        let e = rec.event(SECS).await;
        assert_eq!(e.kind, "dashboard_update");
        assert_eq!(e.data(), json!({"custom": true}));
        assert!(
            server
                .http_hits()
                .iter()
                .all(|h| h.path == "/custom/snapshot")
        );
        assert!(matches!(rec.state(), ConnState::Polling { .. }));
    })
    .await;
}

#[tokio::test]
async fn no_polling_when_off_or_when_the_style_has_no_snapshot() {
    within(20, async {
        let server = dashboard_server().await;
        // Polling switched off on the dashboard style.
        let mut off = Rec::connect(
            config(server.url("/api/v1/ws/dashboard"))
                .poll(PollMode::Off)
                .poll_after_failures(1)
                .poll_interval(ms(50)),
        );
        // The trading style has no snapshot endpoint.
        let mut trading = Rec::connect(
            config(server.url("/ws"))
                .poll_after_failures(1)
                .poll_interval(ms(50)),
        );
        off.drain_for(ms(700)).await;
        trading.drain_for(ms(10)).await;
        for rec in [&off, &trading] {
            assert!(
                !rec.states()
                    .iter()
                    .any(|s| matches!(s, ConnState::Polling { .. })),
                "{:?}",
                rec.states()
            );
            assert!(
                rec.states()
                    .iter()
                    .any(|s| matches!(s, ConnState::Reconnecting { .. }))
            );
            assert_eq!(rec.stats().polls, 0);
        }
        assert!(server.http_hits().is_empty(), "{:?}", server.http_hits());
    })
    .await;
}

#[tokio::test]
async fn poll_endpoint_refusing_auth_stops_the_client() {
    within(20, async {
        let server = dashboard_server().await;
        server.route("/api/v1/dashboard", 401, r#"{"error":"unauthorized"}"#);
        let mut rec = Rec::connect(
            config(server.url("/api/v1/ws/dashboard"))
                .token(Some(Token::new(TOKEN)))
                .poll_after_failures(1)
                .poll_interval(ms(50)),
        );
        let s = rec
            .until_state("stopped", SECS, |s| matches!(s, ConnState::Stopped { .. }))
            .await;
        assert!(s.to_string().contains("authentication refused"), "{s}");
        assert!(!s.to_string().contains(TOKEN));
        assert_eq!(server.http_hits().len(), 1);
    })
    .await;
}
