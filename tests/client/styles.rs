//! Every message type of the five backend styles, sent by a server on the
//! style's real path, arrives through the real client with the right kind,
//! severity, style and subject; control messages never arrive as events;
//! and what the client sends is what each backend expects.

use std::time::Duration;

use riskwatch::client::{ClientUpdate, Token};
use riskwatch::{Severity, Style};
use serde_json::{Value, json};

use crate::common::{Expect, Rec, Server, TOKEN, assert_events, config, expect, ms, within};

const END: &str = r#"{"type":"end_of_script","note":"sentinel"}"#;
const SECS: Duration = Duration::from_secs(5);

fn end() -> Expect<'static> {
    expect("end_of_script", Severity::Info, Style::Generic, None)
}

/// Serves `frames` (plus the sentinel) on `path`, connects with a token and
/// returns the recorder, the server and the events up to the sentinel.
async fn play(path: &str, frames: &[&str]) -> (Rec, Server, Vec<riskwatch::Event>) {
    let mut all: Vec<String> = frames.iter().map(|s| s.to_string()).collect();
    all.push(END.to_owned());
    let server = Server::sending(all).await;
    let mut rec = Rec::connect(config(server.url(path)).token(Some(Token::new(TOKEN))));
    let events = rec.events_until("end_of_script", SECS).await;
    (rec, server, events)
}

/// The token went as `Authorization: Bearer`, not in the query.
fn assert_bearer(server: &Server) {
    let reqs = server.requests();
    assert_eq!(reqs.len(), 1, "one upgrade request: {reqs:?}");
    assert_eq!(
        reqs[0].header("authorization"),
        Some(format!("Bearer {TOKEN}").as_str())
    );
    assert_eq!(reqs[0].query_param("token"), None);
}

/// No event or state carries the token.
fn assert_no_token(rec: &Rec) {
    let dump = format!("{:?}", rec.log);
    assert!(!dump.contains(TOKEN), "the token leaked into updates");
    assert!(!rec.label().contains(TOKEN));
}

#[tokio::test]
async fn merchant_risk_assessment() {
    within(20, async {
        let frames = [
            r#"{"type":"riskUpdate","timestamp":"2026-03-01T10:00:00Z","data":{"assessment_id":"a1","score":72,"previous_score":65}}"#,
            r#"{"event":"riskPrediction","data":{"assessment_id":"a1","predicted_score":80,"horizon_days":30,"confidence":0.7}}"#,
            r#"{"event":"riskAlert","data":{"assessment_id":"a1","severity":"high","message":"chargeback ratio above 1%"}}"#,
            r#"{"type":"riskAlert","data":{"assessment_id":"a1","severity":"low","message":"new device"}}"#,
            r#"{"type":"riskAlert","data":{"assessment_id":"a1","severity":"medium","message":"velocity"}}"#,
            r#"{"type":"riskAlert","data":{"assessment_id":"a1","severity":"critical","message":"fraud ring"}}"#,
            r#"{"type":"riskAlert","data":{"assessment_id":"a1","severity":"emergency","message":"account takeover"}}"#,
            r#"{"type":"riskAlert","data":{"assessment_id":"a1","message":"no level given"}}"#,
            r#"{"event":"riskAlert","alertLevel":"high","merchant_id":"m9"}"#,
            r#"{"event":"riskAlert","level":"medium","merchant_id":"m9"}"#,
            r#"{"event":"riskUpdate","overall_risk":"high","data":{"assessment_id":"a1","score":91}}"#,
        ];
        let (rec, server, events) = play("/ws/risk-assessment/a1", &frames).await;
        let m = |k, s, subj| expect(k, s, Style::Merchant, subj);
        let a1 = Some("assessment:a1");
        assert_events(
            &events,
            &[
                m("riskUpdate", Severity::Info, a1),
                m("riskPrediction", Severity::Info, a1),
                m("riskAlert", Severity::Critical, a1),
                m("riskAlert", Severity::Info, a1),
                m("riskAlert", Severity::Warning, a1),
                m("riskAlert", Severity::Critical, a1),
                m("riskAlert", Severity::Emergency, a1),
                m("riskAlert", Severity::Warning, a1),
                m("riskAlert", Severity::Critical, Some("merchant:m9")),
                m("riskAlert", Severity::Warning, Some("merchant:m9")),
                m("riskUpdate", Severity::Critical, a1),
                end(),
            ],
        );
        // The server's timestamp is used when given, receipt time otherwise.
        assert!(events[0].server_time);
        assert_eq!(events[0].time.to_rfc3339(), "2026-03-01T10:00:00+00:00");
        assert!(!events[1].server_time);
        // The payload is kept byte for byte.
        assert_eq!(events[2].payload.get(), frames[2]);
        assert_eq!(events[0].data(), json!({"assessment_id":"a1","score":72,"previous_score":65}));
        assert_bearer(&server);
        assert_eq!(server.requests()[0].path, "/ws/risk-assessment/a1");
        assert_no_token(&rec);
        assert_eq!(rec.stats().events, 12);
        assert_eq!(rec.stats().controls, 0);
    })
    .await;
}

#[tokio::test]
async fn dashboard_hub() {
    within(20, async {
        let frames = [
            r#"{"type":"dashboard_update","timestamp":"2026-02-22T10:00:00Z","data":{"total_risks":12,"critical_risks":3,"risk_score":64.5}}"#,
            r#"{"type":"pong"}"#,
            r#"{"type":"error","message":"data service unavailable"}"#,
            r#"{"action":"pong"}"#,
            r#"{"type":"error","severity":"critical","message":"database down"}"#,
            r#"{"type":"dashboard_update","data":{"total_risks":13}}"#,
        ];
        let (rec, server, events) = play("/api/v1/ws/dashboard", &frames).await;
        let d = |k, s| expect(k, s, Style::Dashboard, None);
        assert_events(
            &events,
            &[
                d("dashboard_update", Severity::Info),
                d("error", Severity::Warning),
                d("error", Severity::Critical),
                d("dashboard_update", Severity::Info),
                end(),
            ],
        );
        assert_eq!(events[0].data()["total_risks"], 12);
        assert_eq!(rec.stats().controls, 2, "two pongs, no events");
        assert_bearer(&server);
        assert_no_token(&rec);
    })
    .await;
}

#[tokio::test]
async fn dashboard_sends_app_pings_and_refresh() {
    within(20, async {
        let server = Server::sending(vec![]).await;
        let rec = Rec::connect(config(server.url("/api/v1/ws/dashboard")).heartbeat(ms(200)));
        // At the heartbeat: a WebSocket ping and the hub's {"action":"ping"}.
        crate::common::wait_until("two app pings arrived", SECS, || {
            server
                .json_texts()
                .iter()
                .filter(|(_, v)| *v == json!({"action":"ping"}))
                .count()
                >= 2
        })
        .await;
        assert!(server.pings() >= 2, "WebSocket pings too");
        rec.refresh();
        crate::common::wait_until("the refresh command arrived", SECS, || {
            server
                .json_texts()
                .iter()
                .any(|(_, v)| *v == json!({"action":"refresh"}))
        })
        .await;
        // The server answers each app ping with {"type":"pong"}: traffic
        // that keeps the connection alive and is never an event.
        let st = rec.stats();
        assert_eq!(st.events, 0);
        assert_eq!(st.dead, 0);
        assert_eq!(st.connects, 1);
        // Nothing but dashboard commands was sent.
        for (_, v) in server.json_texts() {
            assert!(
                v == json!({"action":"ping"}) || v == json!({"action":"refresh"}),
                "unexpected client message {v}"
            );
        }
    })
    .await;
}

#[tokio::test]
async fn compliance_engagement_general_endpoint() {
    within(20, async {
        let frames = [
            r#"{"type":"connection","status":"connected","scope":"msp","user_role":"msp_admin","message":"Connected to engagement updates"}"#,
            r#"{"type":"engagement_update","client_id":"c1","timestamp":"2026-01-02T03:04:05Z","data":{"departments":[],"applications":[],"agents":[]}}"#,
            r#"{"type":"ping","timestamp":"2026-01-02T03:04:06Z"}"#,
            r#"{"type":"interaction_update","client_id":"c1","msp_id":"msp-1","data":{"app_id":"app-1","interaction_count":5,"total_daily_interactions":150}}"#,
            r#"{"type":"alert","client_id":"c1","data":{"severity":"high","details":"Suspicious activity detected","app":"ChatGPT"}}"#,
            r#"{"type":"alert","client_id":"c1","data":{"severity":"low","details":"New app seen","app":"Claude"}}"#,
            r#"{"type":"alert","client_id":"c1","data":{"severity":"medium","details":"Unusual volume","app":"Gemini"}}"#,
            r#"{"type":"alert","client_id":"c1","data":{"severity":"critical","details":"Data exfiltration","app":"ChatGPT"}}"#,
            r#"{"type":"alert","client_id":"c2","data":{"details":"No severity"}}"#,
            r#"{"type":"pong","timestamp":"2026-01-02T03:04:07Z"}"#,
            r#"{"type":"subscribe","client_id":"c2","status":"subscribed"}"#,
        ];
        let (rec, server, events) = play("/ws/engagement", &frames).await;
        let c = |k, s, subj| expect(k, s, Style::Compliance, subj);
        let c1 = Some("client:c1");
        assert_events(
            &events,
            &[
                c("engagement_update", Severity::Info, c1),
                c("interaction_update", Severity::Info, c1),
                c("alert", Severity::Critical, c1),
                c("alert", Severity::Info, c1),
                c("alert", Severity::Warning, c1),
                c("alert", Severity::Critical, c1),
                c("alert", Severity::Warning, Some("client:c2")),
                end(),
            ],
        );
        assert_eq!(events[0].time.to_rfc3339(), "2026-01-02T03:04:05+00:00");
        assert_eq!(rec.stats().controls, 4, "connection, ping, pong, subscribe echo");
        // The token goes in ?token= only.
        let req = &server.requests()[0];
        assert_eq!(req.path, "/ws/engagement");
        assert_eq!(req.query_param("token").as_deref(), Some(TOKEN));
        assert_eq!(req.header("authorization"), None);
        // The server's {"type":"ping"} got a {"type":"pong"}.
        crate::common::wait_until("the client answered the ping", SECS, || {
            server
                .json_texts()
                .iter()
                .any(|(_, v)| v["type"] == "pong")
        })
        .await;
        let pongs: Vec<Value> = server
            .json_texts()
            .into_iter()
            .map(|(_, v)| v)
            .filter(|v| v["type"] == "pong")
            .collect();
        assert_eq!(pongs, vec![json!({"type":"pong"})]);
        // The source label never carries the query token.
        for e in &events {
            assert!(!e.source.contains(TOKEN));
        }
        assert_no_token(&rec);
    })
    .await;
}

#[tokio::test]
async fn compliance_client_endpoint_subscribes_and_pings() {
    within(20, async {
        let frames = [
            r#"{"type":"connection","status":"connected","scope":"client","user_role":"client_admin"}"#,
            r#"{"type":"engagement_update","client_id":"c1","data":{"departments":[{"name":"Legal"}]}}"#,
        ];
        let mut all: Vec<String> = frames.iter().map(|s| s.to_string()).collect();
        all.push(END.to_owned());
        let server = Server::sending(all).await;
        let mut rec = Rec::connect(
            config(server.url("/ws/client/c1/engagement"))
                .token(Some(Token::new(TOKEN)))
                .subscribe("client:c2")
                .heartbeat(ms(150)),
        );
        let events = rec.events_until("end_of_script", SECS).await;
        assert_events(
            &events,
            &[
                expect("engagement_update", Severity::Info, Style::Compliance, Some("client:c1")),
                end(),
            ],
        );
        let req = &server.requests()[0];
        assert_eq!(req.path, "/ws/client/c1/engagement");
        assert_eq!(req.query_param("token").as_deref(), Some(TOKEN));
        assert_eq!(req.header("authorization"), None);
        // `client:c2` becomes the compliance subscribe command; the
        // heartbeat sends {"type":"ping","timestamp":…}.
        crate::common::wait_until("subscribe and app ping arrived", SECS, || {
            let texts = server.json_texts();
            texts.iter().any(|(_, v)| *v == json!({"type":"subscribe","client_id":"c2"}))
                && texts.iter().any(|(_, v)| v["type"] == "ping" && v["timestamp"].is_string())
        })
        .await;
        let first = &server.json_texts()[0].1;
        assert_eq!(*first, json!({"type":"subscribe","client_id":"c2"}), "subscribe goes first");
        // The pongs the server returns are not events.
        rec.drain_for(ms(400)).await;
        assert_eq!(rec.logged_events().len(), events.len());
        assert_no_token(&rec);
    })
    .await;
}

/// The two messages exactly as the HR seed writes them (pretty-printed).
pub const HR_DEPARTMENT: &str = r#"{
  "type": "department_critical",
  "timestamp": "2025-12-10T09:53:23+08:00",
  "data": {
    "department_id": "dept-123",
    "department_name": "Engineering",
    "overall_risk": "critical",
    "engagement_score": 45.5
  }
}"#;

pub const HR_EMPLOYEE: &str = r#"{
  "type": "employee_stress",
  "timestamp": "2025-12-10T09:53:23+08:00",
  "data": {
    "employee_id": "EMP001",
    "employee_name": "John Doe",
    "department": "Engineering",
    "position": "Software Engineer",
    "stress_rate": 65.5,
    "engagement_rate": 42.0,
    "attrition_rate": 55.0
  }
}"#;

#[tokio::test]
async fn hr_alerts_exactly_as_in_the_seed() {
    within(20, async {
        let frames = [
            r#"{"type":"connection","status":"connected","message":"Connected to risk alerts"}"#,
            HR_DEPARTMENT,
            r#"{"type":"pong"}"#,
            HR_EMPLOYEE,
            // Only an explicit emergency raises a department alert further.
            r#"{"type":"department_critical","data":{"department_id":"dept-9","department_name":"Sales","overall_risk":"low"}}"#,
            r#"{"type":"department_critical","data":{"department_id":"dept-9","department_name":"Sales","overall_risk":"emergency"}}"#,
        ];
        let (rec, server, events) = play("/api/v1/ws/alerts", &frames).await;
        let h = |k, s, subj| expect(k, s, Style::Hr, subj);
        assert_events(
            &events,
            &[
                h("department_critical", Severity::Critical, Some("department:Engineering")),
                h("employee_stress", Severity::Warning, Some("employee:EMP001")),
                h("department_critical", Severity::Critical, Some("department:Sales")),
                h("department_critical", Severity::Emergency, Some("department:Sales")),
                end(),
            ],
        );
        for e in &events[..2] {
            assert!(e.server_time);
            assert_eq!(e.time.to_rfc3339(), "2025-12-10T01:53:23+00:00");
        }
        assert_eq!(events[0].payload.get(), HR_DEPARTMENT);
        assert_eq!(events[1].data()["stress_rate"], 65.5);
        assert_eq!(events[1].describe().title, "High stress: John Doe (Engineering)");
        assert_eq!(events[0].describe().title, "Department critical: Engineering");
        assert_eq!(rec.stats().controls, 2);
        assert_bearer(&server);
        assert_no_token(&rec);
    })
    .await;
}

#[tokio::test]
async fn trading_sessions() {
    within(20, async {
        let status = |s: &str| {
            format!(
                r#"{{"type":"session_status","sessionId":"S42","status":"{s}","timestamp":"2026-03-01T12:00:00Z","data":{{"currentPnL":-1200.5,"totalTrades":17,"lossLimitUtilization":64,"timeElapsed":3600,"performanceScore":71}}}}"#
            )
        };
        let alert = |level: &str| {
            format!(
                r#"{{"type":"risk_alert","sessionId":"S42","alertLevel":"{level}","alertType":"loss_limit","message":"Loss limit 85% used","currentValue":85,"threshold":80,"timestamp":"2026-03-01T12:00:01Z"}}"#
            )
        };
        let frames: Vec<String> = vec![
            status("active"),
            r#"{"type":"heartbeat","timestamp":"2026-03-01T12:00:00Z"}"#.into(),
            status("paused"),
            status("completed"),
            status("expired"),
            status("emergency_stopped"),
            r#"{"type":"algorithm_decision","sessionId":"S42","algorithmId":"mom-1","decision":"buy","reasoning":"momentum breakout","confidence":0.82,"timestamp":"2026-03-01T12:00:00Z","marketData":{"symbol":"SPY","price":501.2,"volume":1000}}"#.into(),
            r#"{"type":"market_data","symbol":"SPY","price":501.25,"volume":10,"timestamp":"2026-03-01T12:00:00Z"}"#.into(),
            alert("warning"),
            alert("critical"),
            alert("emergency"),
            r#"{"type":"risk_alert","sessionId":"S42","alertType":"volatility","message":"no level"}"#.into(),
            r#"{"type":"system_notification","message":"maintenance at 22:00","timestamp":"2026-03-01T12:00:00Z"}"#.into(),
            r#"{"type":"heartbeat"}"#.into(),
        ];
        let refs: Vec<&str> = frames.iter().map(String::as_str).collect();
        let (rec, server, events) = play("/ws", &refs).await;
        let t = |k, s, subj| expect(k, s, Style::Trading, subj);
        let s42 = Some("session:S42");
        assert_events(
            &events,
            &[
                // Lifecycle: active, paused, completed, expired, stopped.
                t("session_status", Severity::Info, s42),
                t("session_status", Severity::Warning, s42),
                t("session_status", Severity::Info, s42),
                t("session_status", Severity::Warning, s42),
                t("session_status", Severity::Emergency, s42),
                t("algorithm_decision", Severity::Info, s42),
                t("market_data", Severity::Info, Some("symbol:SPY")),
                t("risk_alert", Severity::Warning, s42),
                t("risk_alert", Severity::Critical, s42),
                t("risk_alert", Severity::Emergency, s42),
                t("risk_alert", Severity::Warning, s42),
                t("system_notification", Severity::Warning, None),
                end(),
            ],
        );
        // Payload fields at the top level become `data`, minus the envelope.
        assert_eq!(
            events[8].data(),
            json!({"sessionId":"S42","alertLevel":"critical","alertType":"loss_limit","message":"Loss limit 85% used","currentValue":85,"threshold":80})
        );
        assert_eq!(events[4].describe().title, "EMERGENCY STOP");
        assert_eq!(rec.stats().controls, 2, "two heartbeats");
        assert_bearer(&server);
        // No subscriptions configured: the client sent nothing.
        assert!(server.texts_on(0).is_empty(), "{:?}", server.texts_on(0));
    })
    .await;
}

#[tokio::test]
async fn trading_subscribe_and_server_ping() {
    within(20, async {
        let server = Server::sending(vec![
            r#"{"type":"ping"}"#.into(),
            r#"{"type":"market_data","symbol":"QQQ","price":438.1,"volume":5}"#.into(),
        ])
        .await;
        let mut rec = Rec::connect(
            config(server.url("/ws"))
                .subscribe("user:u1")
                .subscribe("sessions:u1"),
        );
        let e = rec.event(SECS).await;
        assert_eq!(
            (e.kind.as_str(), e.subject.as_deref()),
            ("market_data", Some("symbol:QQQ"))
        );
        crate::common::wait_until("the pong arrived", SECS, || server.texts_on(0).len() >= 2).await;
        let texts: Vec<Value> = server
            .texts_on(0)
            .iter()
            .map(|t| serde_json::from_str(t).unwrap())
            .collect();
        assert_eq!(
            texts,
            vec![
                json!({"type":"subscribe","channels":["user:u1","sessions:u1"]}),
                json!({"type":"pong"}),
            ]
        );
        // A subscription added at run time is sent at once.
        rec.subscribe("market:SPY");
        crate::common::wait_until("the runtime subscribe arrived", SECS, || {
            server.texts_on(0).len() >= 3
        })
        .await;
        let v: Value = serde_json::from_str(&server.texts_on(0)[2]).unwrap();
        assert_eq!(v, json!({"type":"subscribe","channels":["market:SPY"]}));
        // No events besides the one sent.
        let rest = rec.drain_for(ms(200)).await;
        assert!(
            !rest.iter().any(|u| matches!(u, ClientUpdate::Event(_))),
            "{rest:?}"
        );
    })
    .await;
}

#[tokio::test]
async fn unknown_types_arrive_as_generic_info_events() {
    within(20, async {
        let frames = [
            r#"{"type":"brand_new_thing","value":1}"#,
            r#"{"event":"somethingElse","data":{"x":1}}"#,
            r#"{"no_type_at_all":true}"#,
            r#"{"type":"brand_new_thing","severity":"high"}"#,
        ];
        let (_rec, _server, events) = play("/ws/unknown", &frames).await;
        let g = |k, s| expect(k, s, Style::Generic, None);
        assert_events(
            &events,
            &[
                g("brand_new_thing", Severity::Info),
                g("somethingElse", Severity::Info),
                g("untyped", Severity::Info),
                g("brand_new_thing", Severity::Critical),
                end(),
            ],
        );
    })
    .await;
}

#[tokio::test]
async fn styles_without_an_app_ping_send_only_websocket_pings() {
    within(20, async {
        let server = Server::sending(vec![]).await;
        let recs: Vec<Rec> = ["/api/v1/ws/alerts", "/ws", "/ws/risk-assessment/a1"]
            .iter()
            .map(|p| Rec::connect(config(server.url(p)).heartbeat(ms(150))))
            .collect();
        crate::common::wait_until("each client pinged twice", SECS, || {
            (0..3).all(|c| {
                server
                    .received()
                    .iter()
                    .filter(|(i, g)| *i == c && *g == crate::common::Got::Ping)
                    .count()
                    >= 2
            })
        })
        .await;
        let texts: Vec<_> = (0..3).flat_map(|c| server.texts_on(c)).collect();
        assert!(texts.is_empty(), "no application messages: {texts:?}");
        for r in &recs {
            assert_eq!(r.stats().dead, 0);
        }
    })
    .await;
}

/// After every (re)connect the dashboard client asks for the current
/// state (`refresh`, the seed's own command), so what a drop made it miss
/// is replaced at once rather than at the server's next 30 s push.
#[tokio::test]
async fn dashboard_asks_for_a_snapshot_on_every_connect() {
    within(20, async {
        let server = Server::start(|mut c| async move {
            // The first connection drops after a moment; the second stays.
            if c.index == 0 {
                c.pump(ms(300)).await;
                c.drop_abruptly();
            } else {
                c.pump_until_closed(Duration::from_secs(20)).await;
            }
        })
        .await;
        let rec = Rec::connect(config(server.url("/api/v1/ws/dashboard")));
        crate::common::wait_until("a refresh on each of two connections", SECS, || {
            let mut conns: Vec<usize> = server
                .json_texts()
                .into_iter()
                .filter(|(_, v)| *v == json!({"action":"refresh"}))
                .map(|(conn, _)| conn)
                .collect();
            conns.dedup();
            conns == [0, 1]
        })
        .await;
        assert_eq!(rec.stats().connects, 2);
    })
    .await;
}
