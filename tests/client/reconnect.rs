//! Drops and silence: an abrupt TCP reset and a server that stops answering
//! both lead to a reconnect, subscriptions are sent again, and events keep
//! coming. A quiet but healthy server is not declared dead.

use std::sync::Arc;
use std::time::{Duration, Instant};

use riskwatch::client::{ConnState, Token};
use serde_json::{Value, json};
use tokio::sync::Notify;

use crate::common::{Rec, Server, TOKEN, config, ms, on_paused_clock, wait_until, within};

const SECS: Duration = Duration::from_secs(5);

fn md(n: u32) -> String {
    format!(r#"{{"type":"market_data","symbol":"SPY","price":{n},"volume":1,"seq_hint":{n}}}"#)
}

#[tokio::test]
async fn abrupt_tcp_drop_reconnects_and_events_continue() {
    within(20, async {
        let drop_now = Arc::new(Notify::new());
        let dn = Arc::clone(&drop_now);
        let server = Server::start(move |mut c| {
            let dn = Arc::clone(&dn);
            async move {
                if c.index == 0 {
                    c.send_all(&[md(1), md(2), md(3)]).await;
                    // Read the subscribe so it is recorded, then reset
                    // once the test has seen the events.
                    c.pump(ms(50)).await;
                    let _ = tokio::time::timeout(SECS, dn.notified()).await;
                    c.drop_abruptly();
                } else {
                    c.send_all(&[md(4), md(5), md(6)]).await;
                    c.pump_until_closed(Duration::from_secs(30)).await;
                }
            }
        })
        .await;
        let mut rec = Rec::connect(
            config(server.url("/ws"))
                .token(Some(Token::new(TOKEN)))
                .subscribe("user:u1")
                .subscribe("sessions:u1"),
        );
        assert_eq!(rec.state(), ConnState::Connecting);
        let first = rec.events(3, SECS).await;
        drop_now.notify_one();
        let second = rec.events(3, SECS).await;
        let prices: Vec<u64> = first
            .iter()
            .chain(&second)
            .map(|e| e.data()["price"].as_u64().unwrap())
            .collect();
        assert_eq!(prices, [1, 2, 3, 4, 5, 6]);

        // Connecting → Connected → Reconnecting{attempt 1} → Connecting →
        // Connected: every state reaches the stream, the first included.
        let states = rec.states();
        assert_eq!(
            &states[..2],
            &[ConnState::Connecting, ConnState::Connected],
            "{states:?}"
        );
        match &states[2] {
            ConnState::Reconnecting {
                attempt,
                retry_in_ms,
                error,
            } => {
                assert_eq!(*attempt, 1);
                assert!(
                    *retry_in_ms <= 50,
                    "first delay is at most the initial 50 ms"
                );
                assert!(!error.is_empty());
                assert!(!error.contains(TOKEN));
            }
            other => panic!("expected Reconnecting, got {other:?} in {states:?}"),
        }
        assert_eq!(&states[3..], &[ConnState::Connecting, ConnState::Connected]);
        assert_eq!(rec.state(), ConnState::Connected);
        let st = rec.stats();
        assert_eq!(st.connects, 2);
        assert_eq!(st.events, 6);
        assert_eq!(server.upgrades(), 2);

        // The subscription is sent again on the new connection, and the
        // token too.
        let sub = json!({"type":"subscribe","channels":["user:u1","sessions:u1"]});
        wait_until("the second subscribe", SECS, || {
            !server.texts_on(1).is_empty()
        })
        .await;
        for conn in 0..2 {
            let texts: Vec<Value> = server
                .texts_on(conn)
                .iter()
                .map(|t| serde_json::from_str(t).unwrap())
                .collect();
            assert_eq!(texts, vec![sub.clone()], "connection {conn}");
        }
        for r in server.requests() {
            assert_eq!(
                r.header("authorization"),
                Some(format!("Bearer {TOKEN}").as_str())
            );
        }
    })
    .await;
}

#[tokio::test]
async fn compliance_subscriptions_and_query_token_resent_after_drop() {
    within(20, async {
        let server = Server::start(|mut c| async move {
            c.send(r#"{"type":"connection","status":"connected"}"#)
                .await;
            c.send(format!(
                r#"{{"type":"engagement_update","client_id":"c1","data":{{"conn":{}}}}}"#,
                c.index
            ))
            .await;
            if c.index == 0 {
                c.pump(ms(150)).await;
                c.drop_abruptly();
            } else {
                c.pump_until_closed(Duration::from_secs(30)).await;
            }
        })
        .await;
        let mut rec = Rec::connect(
            config(server.url("/ws/engagement"))
                .token(Some(Token::new(TOKEN)))
                .subscribe("client:c1")
                .subscribe("client:c2"),
        );
        let a = rec.event(SECS).await;
        let b = rec.event(SECS).await;
        assert_eq!(a.data()["conn"], 0);
        assert_eq!(b.data()["conn"], 1);
        wait_until("subscriptions on the second connection", SECS, || {
            server.texts_on(1).len() >= 2
        })
        .await;
        for conn in 0..2 {
            let texts: Vec<Value> = server
                .texts_on(conn)
                .iter()
                .map(|t| serde_json::from_str(t).unwrap())
                .collect();
            assert_eq!(
                texts,
                vec![
                    json!({"type":"subscribe","client_id":"c1"}),
                    json!({"type":"subscribe","client_id":"c2"}),
                ],
                "connection {conn}"
            );
        }
        let reqs = server.requests();
        assert_eq!(reqs.len(), 2);
        for r in &reqs {
            assert_eq!(r.query_param("token").as_deref(), Some(TOKEN));
        }
        assert!(!format!("{:?}", rec.log).contains(TOKEN));
    })
    .await;
}

#[tokio::test]
async fn silent_server_is_declared_dead_and_replaced() {
    within(20, async {
        let server = Server::start(|mut c| async move {
            if c.index == 0 {
                // Upgraded, then nothing: no data, no pongs, no reading.
                c.go_silent(Duration::from_secs(10)).await;
            } else {
                c.send(r#"{"type":"system_notification","message":"back"}"#)
                    .await;
                c.pump_until_closed(Duration::from_secs(30)).await;
            }
        })
        .await;
        let hb = ms(200);
        let mut rec = Rec::connect(config(server.url("/ws")).heartbeat(hb));
        rec.until_state("connected", SECS, |s| *s == ConnState::Connected)
            .await;
        let connected_at = Instant::now();
        let s = rec
            .until_state("reconnecting", SECS, |s| {
                matches!(s, ConnState::Reconnecting { .. })
            })
            .await;
        let took = connected_at.elapsed();
        // Two intervals without traffic, with some scheduling slack.
        assert!(
            took >= ms(300) && took < ms(1200),
            "declared dead after {took:?}, expected about {:?}",
            hb * 2
        );
        match s {
            ConnState::Reconnecting { error, .. } => {
                assert!(error.contains("declared dead"), "{error}")
            }
            _ => unreachable!(),
        }
        assert_eq!(rec.stats().dead, 1);
        let e = rec.event(SECS).await;
        assert_eq!(e.kind, "system_notification");
        assert_eq!(
            server.upgrades(),
            2,
            "a second connection replaced the dead one"
        );
        assert_eq!(rec.stats().connects, 2);
        assert_eq!(rec.state(), ConnState::Connected);
    })
    .await;
}

/// At default settings (the seeds' 30 s application heartbeat kept), a
/// link that went silent is replaced after 12 s (within the 15 s promised),
/// on every style's path, while a quiet server that answers WebSocket pings
/// is left alone.
#[tokio::test]
async fn a_dead_link_is_noticed_within_15_s_at_default_settings_on_every_style() {
    // Each link comes up in real time; the 12 s of silence pass on the
    // paused clock (the server neither reads nor writes, so no I/O races
    // the timers), then the reconnect runs in real time again.
    within(150, async {
        let paths = [
            "/ws",
            "/api/v1/ws/risk-assessment/m1",
            "/api/v1/ws/dashboard",
            "/api/v1/ws/engagement",
            "/api/v1/ws/alerts",
            "/api/v1/stream",
        ];
        for path in paths {
            let server = Server::start(|c| async move {
                if c.index == 0 {
                    // Upgraded, then nothing: no data, no pongs, no reading.
                    c.go_silent(Duration::from_secs(40)).await;
                } else {
                    c.pump_until_closed(Duration::from_secs(40)).await;
                }
            })
            .await;
            let mut rec = Rec::connect(config(server.url(path)));
            rec.until_state("connected", SECS, |s| *s == ConnState::Connected)
                .await;
            let took = on_paused_clock(async {
                let connected_at = tokio::time::Instant::now();
                rec.until_state("reconnecting", Duration::from_secs(30), |s| {
                    matches!(s, ConnState::Reconnecting { .. })
                })
                .await;
                connected_at.elapsed()
            })
            .await;
            assert!(
                took >= Duration::from_secs(11) && took <= Duration::from_millis(12_500),
                "{path}: declared dead after {took:?}"
            );
            rec.until_state("connected again", SECS, |s| *s == ConnState::Connected)
                .await;
            assert_eq!(rec.stats().dead, 1, "{path}");
        }
        // A quiet server that answers pings is never declared dead.
        let server = Server::sending(vec![]).await;
        let mut rec = Rec::connect(config(server.url("/ws")));
        rec.until_state("connected", SECS, |s| *s == ConnState::Connected)
            .await;
        on_paused_clock(rec.drain_for(Duration::from_secs(17))).await;
        wait_until("three WebSocket pings (one every 5 s)", SECS, || {
            server.pings() >= 3
        })
        .await;
        assert_eq!(rec.stats().dead, 0);
        assert_eq!(server.tcp_connections(), 1);
    })
    .await;
}

#[tokio::test]
async fn quiet_but_healthy_server_is_not_declared_dead() {
    within(20, async {
        // Sends nothing but keeps reading, so WebSocket pings get pongs.
        let server = Server::sending(vec![]).await;
        let mut rec = Rec::connect(config(server.url("/ws")).heartbeat(ms(250)));
        rec.until_state("connected", SECS, |s| *s == ConnState::Connected)
            .await;
        on_paused_clock(rec.drain_for(ms(1500))).await;
        wait_until("five pings", SECS, || server.pings() >= 5).await;
        let st = rec.stats();
        assert_eq!(st.dead, 0, "{st:?}");
        assert_eq!(st.connects, 1);
        assert_eq!(server.tcp_connections(), 1);
        assert_eq!(rec.state(), ConnState::Connected);
        assert!(
            server.pings() >= 5,
            "pinged every 150 ms: {}",
            server.pings()
        );
    })
    .await;
}

#[tokio::test]
async fn normal_close_from_the_server_reconnects() {
    within(20, async {
        let server = Server::start(|mut c| async move {
            c.send(format!(
                r#"{{"type":"system_notification","message":"conn {}"}}"#,
                c.index
            ))
            .await;
            if c.index < 2 {
                let code = if c.index == 0 { 1000 } else { 1011 };
                c.close(code, "bye").await;
            } else {
                c.pump_until_closed(Duration::from_secs(30)).await;
            }
        })
        .await;
        let mut rec = Rec::connect(config(server.url("/ws")));
        let msgs: Vec<String> = rec
            .events(3, SECS)
            .await
            .iter()
            .map(|e| e.data()["message"].as_str().unwrap().to_owned())
            .collect();
        assert_eq!(msgs, ["conn 0", "conn 1", "conn 2"]);
        let errors: Vec<String> = rec
            .states()
            .into_iter()
            .filter_map(|s| match s {
                ConnState::Reconnecting { error, .. } => Some(error),
                _ => None,
            })
            .collect();
        assert_eq!(errors.len(), 2, "{errors:?}");
        assert!(errors[0].contains("1000"), "{errors:?}");
        assert!(errors[1].contains("1011"), "{errors:?}");
    })
    .await;
}

#[tokio::test]
async fn refused_tcp_connects_retry_with_growing_attempts() {
    within(20, async {
        // A port nobody listens on: bind, note it, close.
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        drop(l);
        let mut rec = Rec::connect(
            config(format!("ws://127.0.0.1:{port}/ws")).token(Some(Token::new(TOKEN))),
        );
        let mut attempts = Vec::new();
        while attempts.len() < 4 {
            if let ConnState::Reconnecting {
                attempt,
                retry_in_ms,
                error,
            } = rec
                .until_state("reconnecting", SECS, |s| {
                    matches!(s, ConnState::Reconnecting { .. })
                })
                .await
            {
                assert!(retry_in_ms <= 200, "capped at backoff max: {retry_in_ms}");
                assert!(!error.contains(TOKEN));
                attempts.push(attempt);
            }
        }
        assert_eq!(attempts, [1, 2, 3, 4]);
        assert_eq!(rec.stats().connects, 0);
        rec.shutdown();
        rec.until_state("stopped", SECS, |s| matches!(s, ConnState::Stopped { .. }))
            .await;
    })
    .await;
}

#[tokio::test]
async fn backoff_attempts_grow_for_short_sessions_and_reset_after_a_stable_one() {
    within(20, async {
        // Connections 0 and 1 drop at once, 2 lives 500 ms, 3 stays.
        let server = Server::start(|mut c| async move {
            c.send(format!(
                r#"{{"type":"system_notification","message":"conn {}"}}"#,
                c.index
            ))
            .await;
            match c.index {
                0 | 1 => {
                    c.pump(ms(20)).await;
                    c.drop_abruptly();
                }
                2 => {
                    c.pump(ms(500)).await;
                    c.drop_abruptly();
                }
                _ => c.pump_until_closed(Duration::from_secs(30)).await,
            }
        })
        .await;
        let mut rec = Rec::connect(
            config(server.url("/ws")).backoff(crate::common::fast_backoff().reset_after(ms(200))),
        );
        let _ = rec.events(4, SECS).await;
        let attempts: Vec<u32> = rec
            .states()
            .into_iter()
            .filter_map(|s| match s {
                ConnState::Reconnecting { attempt, .. } => Some(attempt),
                _ => None,
            })
            .collect();
        // Short sessions count up; the 500 ms one outlived reset_after.
        assert_eq!(attempts, [1, 2, 1], "{:?}", rec.states());
    })
    .await;
}

#[tokio::test]
async fn slow_consumer_loses_nothing_and_is_not_mistaken_for_a_dead_server() {
    within(20, async {
        let frames: Vec<String> = (1..=60).map(md).collect();
        let server = Server::sending(frames).await;
        let mut rec = Rec::connect(config(server.url("/ws")).queue(4).heartbeat(ms(250)));
        let mut prices = Vec::new();
        for e in rec.events(5, SECS).await {
            prices.push(e.data()["price"].as_u64().unwrap());
        }
        // Stall far longer than two heartbeat intervals with the queue full.
        on_paused_clock(tokio::time::sleep(ms(900))).await;
        for e in rec.events(55, SECS).await {
            prices.push(e.data()["price"].as_u64().unwrap());
        }
        assert_eq!(prices, (1..=60).collect::<Vec<u64>>());
        let st = rec.stats();
        assert_eq!(st.dead, 0, "{st:?}");
        assert_eq!(st.connects, 1, "{st:?}");
        assert_eq!(server.tcp_connections(), 1);
    })
    .await;
}

#[tokio::test]
async fn subscriptions_added_while_offline_are_sent_on_connect() {
    within(20, async {
        let server = Server::sending(vec![md(1)]).await;
        server.refuse_with(503);
        let mut rec = Rec::connect(config(server.url("/ws")).subscribe("user:u1"));
        rec.until_state("reconnecting", SECS, |s| {
            matches!(s, ConnState::Reconnecting { .. })
        })
        .await;
        rec.subscribe("sessions:u1");
        rec.subscribe("user:u1"); // already there: not doubled
        tokio::time::sleep(ms(50)).await;
        server.refuse_with(0);
        rec.event(SECS).await;
        wait_until("the subscribe", SECS, || !server.texts_on(0).is_empty()).await;
        let v: Value = serde_json::from_str(&server.texts_on(0)[0]).unwrap();
        assert_eq!(
            v,
            json!({"type":"subscribe","channels":["user:u1","sessions:u1"]})
        );
    })
    .await;
}

#[tokio::test]
async fn a_server_that_never_answers_the_upgrade_times_out_and_is_retried() {
    within(20, async {
        // Accepts TCP, then says nothing at all.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let held = tokio::spawn(async move {
            let mut socks = Vec::new();
            while let Ok((s, _)) = listener.accept().await {
                socks.push(s);
                if socks.len() >= 10 {
                    break;
                }
            }
            tokio::time::sleep(Duration::from_secs(10)).await;
        });
        let mut rec = Rec::connect(config(format!("ws://{addr}/ws")).connect_timeout(ms(300)));
        let started = Instant::now();
        let s = rec
            .until_state("reconnecting", SECS, |s| {
                matches!(s, ConnState::Reconnecting { .. })
            })
            .await;
        assert!(started.elapsed() >= ms(250), "{:?}", started.elapsed());
        match s {
            ConnState::Reconnecting { attempt, error, .. } => {
                assert_eq!(attempt, 1);
                assert!(error.contains("no answer"), "{error}");
            }
            _ => unreachable!(),
        }
        rec.until_state("reconnecting again", SECS, |s| {
            matches!(s, ConnState::Reconnecting { attempt: 2, .. })
        })
        .await;
        held.abort();
    })
    .await;
}
