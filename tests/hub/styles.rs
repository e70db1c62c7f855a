//! Every backend style round-trips: events published to the hub reach the
//! real client through each style's endpoint, in that style's format, and
//! decode to the same type, severity and subject as over the native
//! protocol. The dashboard snapshot serves the polling fallback.

use std::time::Duration;

use futures_util::StreamExt;
use riskwatch::client::{Client, ClientConfig, PollMode};
use riskwatch::server::{Auth, Limits, NewEvent, ServerConfig};
use riskwatch::{Event, Severity, Style};
use serde_json::{Value, json};

use super::support::*;

fn ev(channel: &str, kind: &str, data: Value) -> NewEvent {
    serde_json::from_value(json!({"channel": channel, "type": kind, "data": data})).unwrap()
}

struct Case {
    path: &'static str,
    subscribe: &'static [&'static str],
    channel: &'static str,
    kind: &'static str,
    data: Value,
    style: Style,
    severity: Severity,
    subject: Option<&'static str>,
}

fn cases() -> Vec<Case> {
    vec![
        Case {
            path: "/ws/risk-assessment/as-1",
            subscribe: &[],
            channel: "risk-assessment:as-1",
            kind: "riskAlert",
            data: json!({"assessment_id": "as-1", "severity": "high", "message": "chargebacks"}),
            style: Style::Merchant,
            severity: Severity::Critical,
            subject: Some("assessment:as-1"),
        },
        Case {
            path: "/ws/risk-assessment/as-1",
            subscribe: &[],
            channel: "risk-assessment:as-1",
            kind: "riskUpdate",
            data: json!({"assessment_id": "as-1", "score": 42}),
            style: Style::Merchant,
            severity: Severity::Info,
            subject: Some("assessment:as-1"),
        },
        Case {
            path: "/api/v1/ws/dashboard",
            subscribe: &[],
            channel: "dashboard",
            kind: "dashboard_update",
            data: json!({"total_risks": 12}),
            style: Style::Dashboard,
            severity: Severity::Info,
            subject: None,
        },
        Case {
            path: "/ws/engagement",
            subscribe: &[],
            channel: "msp:m1/client:c1",
            kind: "alert",
            data: json!({"severity": "high", "details": "Suspicious activity detected", "app": "ChatGPT"}),
            style: Style::Compliance,
            severity: Severity::Critical,
            subject: Some("client:c1"),
        },
        Case {
            path: "/ws/client/c1/engagement",
            subscribe: &[],
            channel: "msp:m1/client:c1",
            kind: "interaction_update",
            data: json!({"app_id": "x", "interaction_count": 5}),
            style: Style::Compliance,
            severity: Severity::Info,
            subject: Some("client:c1"),
        },
        Case {
            path: "/api/v1/ws/alerts",
            subscribe: &[],
            channel: "department:dept-eng",
            kind: "department_critical",
            data: json!({"department_id": "dept-123", "department_name": "Engineering", "overall_risk": "critical", "engagement_score": 45.5}),
            style: Style::Hr,
            severity: Severity::Critical,
            subject: Some("department:Engineering"),
        },
        Case {
            path: "/api/v1/ws/alerts",
            subscribe: &[],
            channel: "department:dept-eng",
            kind: "employee_stress",
            data: json!({"employee_id": "EMP001", "employee_name": "John Doe", "department": "Engineering", "stress_rate": 65.5}),
            style: Style::Hr,
            severity: Severity::Warning,
            subject: Some("employee:EMP001"),
        },
        Case {
            path: "/ws",
            subscribe: &["sessions:u1"],
            channel: "sessions:u1",
            kind: "session_status",
            data: json!({"sessionId": "S42", "status": "emergency_stopped", "data": {"currentPnL": -5000, "lossLimitUtilization": 100}}),
            style: Style::Trading,
            severity: Severity::Emergency,
            subject: Some("session:S42"),
        },
        Case {
            path: "/ws",
            subscribe: &["sessions:u1"],
            channel: "sessions:u1",
            kind: "risk_alert",
            data: json!({"sessionId": "S42", "alertLevel": "critical", "alertType": "loss_limit", "message": "Loss limit 92% used", "currentValue": 92, "threshold": 90}),
            style: Style::Trading,
            severity: Severity::Critical,
            subject: Some("session:S42"),
        },
    ]
}

async fn first_event(cfg: ClientConfig) -> Event {
    let mut c = Client::connect(cfg).unwrap();
    let e = next_event(&mut c, Duration::from_secs(5))
        .await
        .expect("an event");
    c.shutdown();
    e
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_style_round_trips_through_the_hub() {
    for case in cases() {
        let hub = dev_hub().await;
        let mut style_cfg = fast(url(hub.addr(), case.path)).poll(PollMode::Off);
        for s in case.subscribe {
            style_cfg = style_cfg.subscribe(*s);
        }
        let native_cfg = fast(url(hub.addr(), "/api/v1/stream")).subscribe(case.channel);
        let mut style_client = Client::connect(style_cfg).unwrap();
        let mut native_client = Client::connect(native_cfg).unwrap();
        let h = std::sync::Arc::clone(hub.hub());
        assert!(
            until(Duration::from_secs(5), || h.stats().total_connections == 2
                && h.stats().connections_by_channel.values().sum::<usize>()
                    >= 2)
            .await,
            "{}: both clients subscribed",
            case.path
        );
        h.publish(ev(case.channel, case.kind, case.data.clone()))
            .await
            .unwrap();
        let s = next_event(&mut style_client, Duration::from_secs(5))
            .await
            .unwrap_or_else(|| {
                panic!(
                    "{} {}: no event over the style endpoint",
                    case.path, case.kind
                )
            });
        let n = next_event(&mut native_client, Duration::from_secs(5))
            .await
            .unwrap_or_else(|| {
                panic!(
                    "{} {}: no event over the native endpoint",
                    case.path, case.kind
                )
            });
        let what = format!("{} {}", case.path, case.kind);
        assert_eq!(s.style, case.style, "{what}: style");
        assert_eq!(n.style, Style::Native, "{what}");
        for e in [&s, &n] {
            assert_eq!(e.kind, case.kind, "{what}: type");
            assert_eq!(e.severity, case.severity, "{what}: severity");
            assert_eq!(e.subject.as_deref(), case.subject, "{what}: subject");
        }
        assert_eq!(n.channel.as_deref(), Some(case.channel));
        assert!(n.seq.is_some());
        hub.shutdown().await;
    }
}

#[tokio::test]
async fn client_scoped_compliance_connections_see_only_their_client() {
    let hub = dev_hub().await;
    let mut c = Client::connect(fast(url(hub.addr(), "/ws/client/c2/engagement"))).unwrap();
    let h = std::sync::Arc::clone(hub.hub());
    subscriptions(&h, 1).await;
    h.publish(ev("msp:m1/client:c1", "alert", json!({"severity": "high"})))
        .await
        .unwrap();
    h.publish(ev("msp:m1/client:c2", "alert", json!({"severity": "low"})))
        .await
        .unwrap();
    let e = next_event(&mut c, Duration::from_secs(5)).await.unwrap();
    assert_eq!(e.subject.as_deref(), Some("client:c2"));
    assert_eq!(e.severity, Severity::Info);
    assert!(
        next_event(&mut c, Duration::from_millis(300))
            .await
            .is_none()
    );
    hub.shutdown().await;
}

#[tokio::test]
async fn dashboard_connections_get_the_latest_snapshot_and_polling_works() {
    let hub = dev_hub().await;
    hub.hub()
        .publish(ev(
            "dashboard",
            "dashboard_update",
            json!({"total_risks": 7}),
        ))
        .await
        .unwrap();
    // A new dashboard connection starts with the latest data, as the seed's
    // hook expects.
    let e = first_event(fast(url(hub.addr(), "/api/v1/ws/dashboard"))).await;
    assert_eq!(e.kind, "dashboard_update");
    assert_eq!(e.field("total_risks"), Some(json!(7)));
    // The polling snapshot endpoint serves the same data.
    let body: Value = http_client()
        .get(format!("http://{}/api/v1/dashboard", hub.addr()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(body, json!({"total_risks": 7}));
    // A client whose upgrade fails falls back to polling that endpoint.
    let cfg = fast("ws://127.0.0.1:9/api/v1/ws/dashboard".to_owned())
        .poll(PollMode::Url(format!(
            "http://{}/api/v1/dashboard",
            hub.addr()
        )))
        .poll_after_failures(2)
        .poll_interval(Duration::from_millis(100));
    let mut c = Client::connect(cfg).unwrap();
    let e = next_event(&mut c, Duration::from_secs(10))
        .await
        .expect("a polled snapshot");
    assert_eq!(e.kind, "dashboard_update");
    assert_eq!(e.field("total_risks"), Some(json!(7)));
    assert!(matches!(c.state(), riskwatch::ConnState::Polling { .. }));
    hub.shutdown().await;
}

/// Like seed 001's hub, the dashboard endpoint pushes its latest
/// `dashboard_update` on a timer (30 s by default; 200 ms here), with no
/// new publish and no `refresh` from the client.
#[tokio::test]
async fn the_dashboard_endpoint_pushes_the_latest_data_on_a_timer() {
    let hub = hub(ServerConfig::new(Auth::Insecure)
        .limits(Limits::default().dashboard_every(Duration::from_millis(200))))
    .await;
    hub.hub()
        .publish(ev(
            "dashboard",
            "dashboard_update",
            json!({"total_risks": 3}),
        ))
        .await
        .unwrap();
    let (mut ws, _) =
        tokio_tungstenite::connect_async(url(hub.addr(), "/api/v1/ws/dashboard").as_str())
            .await
            .unwrap();
    let mut updates = 0;
    let deadline = tokio::time::Instant::now() + Duration::from_millis(1_100);
    while let Ok(Some(Ok(m))) = tokio::time::timeout_at(deadline, ws.next()).await {
        if let tokio_tungstenite::tungstenite::Message::Text(t) = m {
            let v: Value = serde_json::from_str(&t).unwrap();
            if v["type"] == "dashboard_update" {
                assert_eq!(v["data"]["total_risks"], 3, "{v}");
                updates += 1;
            }
        }
    }
    // One on connect, then one per 200 ms.
    assert!(updates >= 4, "{updates} updates in 1.1 s");
    hub.shutdown().await;
}

/// A type that the seed styles' clients take for connection housekeeping
/// (`heartbeat`, `connection_lost`, …) would reach a trading or compliance
/// desk and vanish there; the hub refuses it with one clear error instead,
/// on the HTTP API and on the native protocol, and still takes the same
/// event under another type.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn housekeeping_types_are_refused_not_lost() {
    let server = dev_hub().await;
    let api = format!("http://{}/api/v1/publish", server.addr());
    for kind in [
        "heartbeat",
        "connection_lost",
        "ping",
        "subscribed",
        "welcome",
    ] {
        let r = http_client()
            .post(&api)
            .json(
                &json!({"channel": "sessions:S1", "type": kind, "severity": "critical",
                "data": {"sessionId": "S1"}}),
            )
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 400, "{kind}");
        let body: Value = r.json().await.unwrap();
        let said = body["error"].as_str().unwrap_or_default();
        assert!(said.contains("housekeeping"), "{kind}: {body}");
    }
    let p = server
        .hub()
        .publish(ev("sessions:S1", "link_lost", json!({"sessionId": "S1"})))
        .await
        .expect("another type is an ordinary event");
    assert_eq!(p.seq, 1, "nothing refused took a sequence");
    // Over the native protocol, as a publisher's error.
    let (mut ws, _) = tokio_tungstenite::connect_async(url(server.addr(), "/api/v1/stream"))
        .await
        .unwrap();
    use futures_util::SinkExt;
    ws.send(tokio_tungstenite::tungstenite::Message::text(
        r#"{"op":"publish","channel":"sessions:S1","type":"heartbeat","severity":"emergency"}"#,
    ))
    .await
    .unwrap();
    let reply = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            let m = ws.next().await.expect("open").expect("a frame");
            let v: Value = serde_json::from_str(m.to_text().unwrap_or("{}")).unwrap_or_default();
            if v["op"] == "error" {
                return v;
            }
        }
    })
    .await
    .expect("an error within 5 s");
    assert_eq!(reply["code"], "bad_request", "{reply}");
    assert!(
        reply["message"].as_str().unwrap().contains("housekeeping"),
        "{reply}"
    );
    server.shutdown().await;
}
