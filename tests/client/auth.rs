//! Refused authentication stops the client for good (HTTP 401/403 at the
//! upgrade, close 1008, close 40xx) once the token was tried in the
//! style's other place too; a server going away (1001) does not. A server
//! that reads the token from only one place (a browser backend reads
//! `?token=`, another only the header) works without the user choosing.
//! The token never appears in a state or an error.

use std::time::Duration;

use riskwatch::client::{ClientUpdate, ConnState, StopReason, Token};

use crate::common::{Rec, Server, TOKEN, config, ms, on_paused_clock, within};

const SECS: Duration = Duration::from_secs(5);

/// Waits for the terminal state and returns the auth refusal's detail.
async fn refused(rec: &mut Rec) -> String {
    let s = rec
        .until_state("stopped", SECS, |s| matches!(s, ConnState::Stopped { .. }))
        .await;
    match s {
        ConnState::Stopped {
            reason: StopReason::AuthRefused(detail),
        } => detail,
        other => panic!("expected AuthRefused, got {other:?}"),
    }
}

/// Nothing in the updates, the state or its display mentions the token.
fn assert_no_token(rec: &Rec) {
    let mut dump = format!("{:?}", rec.log);
    for u in &rec.log {
        if let ClientUpdate::State(s) = u {
            dump.push_str(&s.to_string());
            dump.push_str(&serde_json::to_string(s).unwrap());
        }
    }
    dump.push_str(&rec.state().to_string());
    assert!(!dump.contains(TOKEN), "the token leaked: {dump}");
}

/// After stopping, no further connection attempts and the stream ends.
async fn assert_stays_stopped(rec: &mut Rec, server: &Server, tcp: usize) {
    // Past every backoff: a retry would have started by then.
    on_paused_clock(tokio::time::sleep(ms(600))).await;
    assert_eq!(server.tcp_connections(), tcp, "no further attempts");
    assert!(matches!(rec.state(), ConnState::Stopped { .. }));
    let mut tail = Vec::new();
    while let Some(u) = rec.try_next(ms(500)).await {
        tail.push(u);
    }
    assert!(
        !tail
            .iter()
            .any(|u| matches!(u, ClientUpdate::State(ConnState::Reconnecting { .. }))),
        "{tail:?}"
    );
    let end = tokio::time::timeout(ms(500), rec.client.next()).await;
    assert!(matches!(end, Ok(None)), "the update stream ended: {end:?}");
}

#[tokio::test]
async fn http_401_at_upgrade_stops_after_trying_the_other_place_once() {
    within(20, async {
        let server = Server::sending(vec![]).await;
        server.refuse_with(401);
        let mut rec = Rec::connect(config(server.url("/ws")).token(Some(Token::new(TOKEN))));
        let detail = refused(&mut rec).await;
        assert!(detail.contains("401"), "{detail}");
        assert!(
            rec.state()
                .to_string()
                .starts_with("stopped: authentication refused"),
            "{}",
            rec.state()
        );
        // Header first (the trading style), then the browser's ?token=.
        assert_eq!(server.attempts(), 2);
        let reqs = server.requests();
        assert_eq!(
            reqs[0].header("authorization"),
            Some(format!("Bearer {TOKEN}").as_str())
        );
        assert_eq!(reqs[0].query_param("token"), None);
        assert_eq!(reqs[1].header("authorization"), None);
        assert_eq!(reqs[1].query_param("token").as_deref(), Some(TOKEN));
        assert_stays_stopped(&mut rec, &server, 2).await;
        assert!(
            !rec.states()
                .iter()
                .any(|s| matches!(s, ConnState::Reconnecting { .. })),
            "{:?}",
            rec.states()
        );
        assert_no_token(&rec);
    })
    .await;
}

#[tokio::test]
async fn http_403_with_query_token_stops_and_hides_the_token() {
    within(20, async {
        let server = Server::sending(vec![]).await;
        server.refuse_with(403);
        // Compliance style: the token travels in the URL's query.
        let mut rec =
            Rec::connect(config(server.url("/ws/engagement")).token(Some(Token::new(TOKEN))));
        let detail = refused(&mut rec).await;
        assert!(detail.contains("403"), "{detail}");
        assert_eq!(
            server.requests()[0].query_param("token").as_deref(),
            Some(TOKEN)
        );
        // Then in the header, once.
        assert_eq!(server.requests()[1].query_param("token"), None);
        assert_stays_stopped(&mut rec, &server, 2).await;
        assert_no_token(&rec);
        assert!(!rec.label().contains(TOKEN));
    })
    .await;
}

#[tokio::test]
async fn http_500_at_upgrade_is_retried() {
    within(20, async {
        let server =
            Server::sending(vec![r#"{"type":"riskUpdate","data":{"score":1}}"#.into()]).await;
        server.refuse_with(500);
        let mut rec = Rec::connect(config(server.url("/ws/risk-assessment/a1")));
        let s = rec
            .until_state("reconnecting", SECS, |s| {
                matches!(s, ConnState::Reconnecting { .. })
            })
            .await;
        assert!(s.to_string().contains("500"), "{s}");
        server.refuse_with(0);
        let e = rec.event(SECS).await;
        assert_eq!(e.kind, "riskUpdate");
        assert!(server.attempts() >= 2);
    })
    .await;
}

async fn close_with(code: u16) -> (Rec, Server) {
    let server = Server::start(move |mut c| async move {
        c.send(r#"{"type":"connection","status":"connected"}"#)
            .await;
        c.close(code, "token rejected").await;
    })
    .await;
    let rec = Rec::connect(config(server.url("/ws/engagement")).token(Some(Token::new(TOKEN))));
    (rec, server)
}

#[tokio::test]
async fn close_1008_stops_as_auth_refused() {
    within(20, async {
        let (mut rec, server) = close_with(1008).await;
        let detail = refused(&mut rec).await;
        assert!(detail.contains("1008"), "{detail}");
        assert_stays_stopped(&mut rec, &server, 2).await;
        assert_eq!(server.upgrades(), 2, "the token's other place tried once");
        assert_no_token(&rec);
    })
    .await;
}

#[tokio::test]
async fn close_4001_stops_as_auth_refused() {
    within(20, async {
        let (mut rec, server) = close_with(4001).await;
        let detail = refused(&mut rec).await;
        assert!(detail.contains("4001"), "{detail}");
        assert_stays_stopped(&mut rec, &server, 2).await;
        assert_no_token(&rec);
    })
    .await;
}

#[tokio::test]
async fn close_4003_and_4004_stop_too() {
    within(20, async {
        for code in [4003, 4004] {
            let (mut rec, server) = close_with(code).await;
            let detail = refused(&mut rec).await;
            assert!(detail.contains(&code.to_string()), "{detail}");
            assert_stays_stopped(&mut rec, &server, 2).await;
        }
    })
    .await;
}

#[tokio::test]
async fn close_1001_going_away_reconnects() {
    within(20, async {
        let server = Server::start(|mut c| async move {
            c.send(format!(
                r#"{{"type":"engagement_update","client_id":"c1","data":{{"conn":{}}}}}"#,
                c.index
            ))
            .await;
            if c.index == 0 {
                c.close(1001, "server restarting").await;
            } else {
                c.pump_until_closed(Duration::from_secs(30)).await;
            }
        })
        .await;
        let mut rec =
            Rec::connect(config(server.url("/ws/engagement")).token(Some(Token::new(TOKEN))));
        let a = rec.event(SECS).await;
        let b = rec.event(SECS).await;
        assert_eq!(
            (a.data()["conn"].clone(), b.data()["conn"].clone()),
            (0.into(), 1.into())
        );
        let states = rec.states();
        assert!(
            states.iter().any(
                |s| matches!(s, ConnState::Reconnecting { error, .. } if error.contains("1001"))
            ),
            "{states:?}"
        );
        assert!(
            !states
                .iter()
                .any(|s| matches!(s, ConnState::Stopped { .. }))
        );
        assert_eq!(rec.state(), ConnState::Connected);
        assert_eq!(server.upgrades(), 2);
        assert_no_token(&rec);
    })
    .await;
}

#[tokio::test]
async fn shutdown_stops_with_a_normal_close() {
    within(20, async {
        let server = Server::sending(vec![]).await;
        let mut rec = Rec::connect(config(server.url("/ws")));
        rec.until_state("connected", SECS, |s| *s == ConnState::Connected)
            .await;
        rec.shutdown();
        let s = rec
            .until_state("stopped", SECS, |s| matches!(s, ConnState::Stopped { .. }))
            .await;
        assert_eq!(
            s,
            ConnState::Stopped {
                reason: StopReason::Shutdown
            }
        );
        crate::common::wait_until("the server saw close 1000", SECS, || {
            server
                .received()
                .iter()
                .any(|(_, g)| *g == crate::common::Got::Close(Some(1000)))
        })
        .await;
        tokio::time::sleep(ms(300)).await;
        assert_eq!(server.tcp_connections(), 1);
    })
    .await;
}

/// A backend that reads the token only from `?token=` (a browser frontend
/// cannot set headers) and one that reads it only from the header: the
/// default placement reaches both, each after one refusal at most, and
/// keeps the place that worked across reconnects.
#[tokio::test]
async fn the_token_reaches_a_server_that_reads_only_one_place() {
    within(20, async {
        // (style's path, server reads the query?)
        for (path, in_query) in [("/ws", true), ("/ws/engagement", false), ("/ws", false)] {
            let server = Server::start(|mut c| async move {
                c.send(r#"{"type":"risk_alert","sessionId":"S1","alertLevel":"critical","message":"m"}"#)
                    .await;
                if c.index == 0 {
                    c.drop_abruptly();
                } else {
                    c.pump_until_closed(Duration::from_secs(10)).await;
                }
            })
            .await;
            server.token_only_in(in_query);
            let mut rec = Rec::connect(config(server.url(path)).token(Some(Token::new(TOKEN))));
            for _ in 0..2 {
                let e = rec.event(SECS).await;
                assert_eq!(e.kind, "risk_alert", "{path} {in_query}");
            }
            assert_eq!(server.upgrades(), 2, "{path}: connected, dropped, back");
            let reqs = server.requests();
            // The last two attempts (the upgrades) carried it where it is read.
            for r in &reqs[reqs.len() - 2..] {
                assert_eq!(r.query_param("token").is_some(), in_query, "{path}");
                assert_eq!(r.header("authorization").is_some(), !in_query, "{path}");
            }
            assert!(reqs.len() <= 3, "{path}: at most one refusal: {}", reqs.len());
            assert_no_token(&rec);
        }
    })
    .await;
}

/// `--auth header` (or query) forces the place: no second try elsewhere.
#[tokio::test]
async fn a_forced_place_is_never_changed() {
    within(20, async {
        let server = Server::sending(vec![]).await;
        server.token_only_in(true);
        let mut rec = Rec::connect(
            config(server.url("/ws"))
                .token(Some(Token::new(TOKEN)))
                .auth(riskwatch::client::AuthMode::Header),
        );
        refused(&mut rec).await;
        assert_stays_stopped(&mut rec, &server, 1).await;
        assert_eq!(server.requests().len(), 1);
    })
    .await;
}
