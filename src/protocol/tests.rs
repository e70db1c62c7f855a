//! Decoder unit tests: every message type of every style, with the
//! severities docs/PROTOCOL.md promises, and the edge cases of bad input.

use super::native::ServerControl;
use super::*;

fn src() -> Arc<str> {
    Arc::from("test")
}

fn now() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2026-01-01T00:00:00Z")
        .unwrap()
        .with_timezone(&Utc)
}

fn event(text: &str) -> Event {
    match decode(text, &src(), now()) {
        Ok(Frame::Event(e)) => e,
        other => panic!("expected an event from {text}, got {other:?}"),
    }
}

fn control(text: &str) -> Control {
    match decode(text, &src(), now()) {
        Ok(Frame::Control(c)) => c,
        other => panic!("expected a control message from {text}, got {other:?}"),
    }
}

#[test]
fn merchant_types_in_type_or_event_field() {
    let e = event(r#"{"type":"riskUpdate","data":{"assessment_id":"a7","score":72}}"#);
    assert_eq!(
        (e.kind.as_str(), e.severity, e.style),
        ("riskUpdate", Severity::Info, Style::Merchant)
    );
    assert_eq!(e.subject.as_deref(), Some("assessment:a7"));
    let e = event(r#"{"event":"riskPrediction","data":{"predicted":0.4}}"#);
    assert_eq!(
        (e.kind.as_str(), e.severity),
        ("riskPrediction", Severity::Info)
    );
    let e = event(r#"{"event":"riskAlert","data":{"severity":"high","message":"chargebacks"}}"#);
    assert_eq!(e.severity, Severity::Critical);
    let e = event(r#"{"type":"riskAlert","data":{"message":"no level"}}"#);
    assert_eq!(e.severity, Severity::Warning);
    let e = event(r#"{"type":"riskAlert","level":"medium"}"#);
    assert_eq!(e.severity, Severity::Warning);
}

#[test]
fn dashboard_messages() {
    let e = event(
        r#"{"type":"dashboard_update","data":{"total_risks":12},"timestamp":"2026-02-22T10:00:00Z"}"#,
    );
    assert_eq!((e.severity, e.style), (Severity::Info, Style::Dashboard));
    assert!(e.server_time);
    assert_eq!(e.time.to_rfc3339(), "2026-02-22T10:00:00+00:00");
    let e = event(r#"{"type":"error","message":"data service unavailable"}"#);
    assert_eq!(e.severity, Severity::Warning);
    assert_eq!(control(r#"{"type":"pong"}"#), Control::Pong);
    assert_eq!(control(r#"{"action":"pong"}"#), Control::Pong);
}

#[test]
fn compliance_messages() {
    assert!(matches!(
        control(
            r#"{"type":"connection","status":"connected","scope":"msp","user_role":"msp_admin"}"#
        ),
        Control::Connected { .. }
    ));
    let e = event(
        r#"{"type":"engagement_update","client_id":"c1","timestamp":"2026-01-02T03:04:05Z","data":{"departments":[]}}"#,
    );
    assert_eq!((e.severity, e.style), (Severity::Info, Style::Compliance));
    assert_eq!(e.subject.as_deref(), Some("client:c1"));
    let e = event(
        r#"{"type":"interaction_update","client_id":"c1","data":{"app_id":"x","interaction_count":5}}"#,
    );
    assert_eq!(e.severity, Severity::Info);
    for (level, sev) in [
        ("low", Severity::Info),
        ("medium", Severity::Warning),
        ("high", Severity::Critical),
        ("critical", Severity::Critical),
        ("emergency", Severity::Emergency),
        ("HIGH", Severity::Critical),
    ] {
        let e = event(&format!(
            r#"{{"type":"alert","client_id":"c1","data":{{"severity":"{level}","details":"Suspicious activity detected","app":"ChatGPT"}}}}"#
        ));
        assert_eq!(e.severity, sev, "{level}");
    }
    assert_eq!(control(r#"{"type":"ping","timestamp":"x"}"#), Control::Ping);
    assert_eq!(control(r#"{"type":"pong"}"#), Control::Pong);
    assert!(matches!(
        control(r#"{"type":"subscribe","client_id":"c2"}"#),
        Control::Ack { .. }
    ));
}

#[test]
fn hr_messages_exactly_as_in_the_seed() {
    let e = event(
        r#"{
  "type": "department_critical",
  "timestamp": "2025-12-10T09:53:23+08:00",
  "data": {
    "department_id": "dept-123",
    "department_name": "Engineering",
    "overall_risk": "critical",
    "engagement_score": 45.5
  }
}"#,
    );
    assert_eq!((e.severity, e.style), (Severity::Critical, Style::Hr));
    assert_eq!(e.subject.as_deref(), Some("department:Engineering"));
    assert_eq!(e.time.to_rfc3339(), "2025-12-10T01:53:23+00:00");
    let e = event(
        r#"{
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
}"#,
    );
    assert_eq!(e.severity, Severity::Warning);
    assert_eq!(e.subject.as_deref(), Some("employee:EMP001"));
    assert_eq!(e.describe().title, "High stress: John Doe (Engineering)");
}

#[test]
fn trading_messages() {
    let e = event(
        r#"{"type":"session_status","sessionId":"S42","status":"emergency_stopped","timestamp":"2026-03-01T12:00:00Z","data":{"currentPnL":-5000,"totalTrades":17,"lossLimitUtilization":100,"timeElapsed":3600,"performanceScore":12}}"#,
    );
    assert_eq!((e.severity, e.style), (Severity::Emergency, Style::Trading));
    assert_eq!(e.subject.as_deref(), Some("session:S42"));
    let d = e.describe();
    assert_eq!(d.title, "EMERGENCY STOP");
    assert_eq!(d.body, "session S42: loss limit at 100%, P&L -5000");

    let e = event(
        r#"{"type":"session_status","sessionId":"S42","status":"active","data":{"currentPnL":10}}"#,
    );
    assert_eq!(e.severity, Severity::Info);
    let e = event(
        r#"{"type":"algorithm_decision","sessionId":"S1","algorithmId":"mom-1","decision":"buy","reasoning":"breakout","confidence":0.82,"timestamp":"2026-03-01T12:00:00Z","marketData":{"symbol":"SPY","price":501.2,"volume":1000}}"#,
    );
    assert_eq!(e.severity, Severity::Info);
    // Top-level payload fields become `data` when there is no `data` field.
    let data = e.data();
    assert_eq!(data["decision"], "buy");
    assert!(data.get("type").is_none());
    assert_eq!(e.field("marketData.price"), Some(serde_json::json!(501.2)));
    let e = event(r#"{"type":"market_data","symbol":"SPY","price":501.25,"volume":10}"#);
    assert_eq!(e.subject.as_deref(), Some("symbol:SPY"));
    for (level, sev) in [
        ("warning", Severity::Warning),
        ("critical", Severity::Critical),
        ("emergency", Severity::Emergency),
    ] {
        let e = event(&format!(
            r#"{{"type":"risk_alert","sessionId":"S1","alertLevel":"{level}","alertType":"loss_limit","message":"Loss limit 85% used","currentValue":85,"threshold":80}}"#
        ));
        assert_eq!(e.severity, sev);
    }
    let e = event(r#"{"type":"system_notification","message":"maintenance at 22:00"}"#);
    assert_eq!(
        e.severity,
        Severity::Warning,
        "a maintenance notice is seen"
    );
    assert_eq!(
        control(r#"{"type":"heartbeat","timestamp":"2026-03-01T12:00:00Z"}"#),
        Control::Heartbeat
    );
}

#[test]
fn native_frames() {
    let e = event(
        r#"{"op":"event","channel":"trading:S42","seq":17,"type":"risk_alert","severity":"critical","ts":"2026-03-01T12:00:00Z","id":"a-1","data":{"sessionId":"S42"}}"#,
    );
    assert_eq!(e.seq, Some(17));
    assert_eq!(e.channel.as_deref(), Some("trading:S42"));
    assert_eq!(
        (e.kind.as_str(), e.severity, e.style),
        ("risk_alert", Severity::Critical, Style::Native)
    );
    assert_eq!(e.id.as_deref(), Some("a-1"));
    assert_eq!(e.subject.as_deref(), Some("session:S42"));
    assert_eq!(
        control(r#"{"op":"subscribed","channel":"c","epoch":"e1","seq":5}"#),
        Control::Native(ServerControl::Subscribed {
            channel: "c".into(),
            epoch: "e1".into(),
            seq: 5
        })
    );
    assert_eq!(
        control(r#"{"op":"gap","channel":"c","requested":3,"oldest":10,"epoch":"e1"}"#),
        Control::Native(ServerControl::Gap {
            channel: "c".into(),
            requested: 3,
            oldest: 10,
            epoch: "e1".into(),
            criticals_kept: false
        })
    );
    assert_eq!(
        control(
            r#"{"op":"gap","channel":"c","requested":3,"oldest":10,"epoch":"e1","criticals_kept":true}"#
        ),
        Control::Native(ServerControl::Gap {
            channel: "c".into(),
            requested: 3,
            oldest: 10,
            epoch: "e1".into(),
            criticals_kept: true
        })
    );
    assert_eq!(
        control(r#"{"op":"welcome","version":1,"heartbeat":30}"#),
        Control::Native(ServerControl::Welcome {
            heartbeat: Some(30)
        })
    );
    assert!(matches!(
        control(r#"{"op":"error","code":"forbidden","message":"no"}"#),
        Control::Native(ServerControl::Error { .. })
    ));
    // An op from a newer hub is kept, not dropped.
    assert_eq!(event(r#"{"op":"presence","channel":"c"}"#).kind, "presence");
}

#[test]
fn unknown_and_untyped_messages_are_info_events() {
    let e = event(r#"{"type":"brand_new_thing","level":"nonsense"}"#);
    assert_eq!((e.severity, e.style), (Severity::Info, Style::Generic));
    let e = event(r#"{"hello":"world"}"#);
    assert_eq!(e.kind, "untyped");
    assert_eq!(e.severity, Severity::Info);
}

#[test]
fn payload_is_kept_byte_for_byte() {
    let text = r#"{"type":"x", "big":12345678901234567890123, "f":1.10, "s":"\u00e9"}"#;
    let e = event(text);
    assert_eq!(e.payload.get(), text);
    // And survives a serde round trip of the whole event.
    let back: Event = serde_json::from_str(&serde_json::to_string(&e).unwrap()).unwrap();
    assert_eq!(back, e);
}

#[test]
fn tolerant_fields_and_duplicate_keys() {
    // A numeric severity and an object-valued type do not lose the message.
    let e = event(r#"{"type":"alert","severity":3,"data":[1,2]}"#);
    assert_eq!(e.severity, Severity::Warning);
    let e = event(r#"{"type":{"nested":true},"event":"riskAlert"}"#);
    assert_eq!(e.kind, "riskAlert");
    let e = event(r#"{"type":"alert","type":"riskUpdate"}"#);
    assert_eq!(e.kind, "riskUpdate");
    let e = event(r#"{"type":"riskUpdate","id":42,"seq":"7"}"#);
    assert_eq!((e.id.as_deref(), e.seq), (Some("42"), Some(7)));
    let e = event(r#"{"type":"t","timestamp":"not a time"}"#);
    assert!(!e.server_time);
    assert_eq!(e.time, now());
}

#[test]
fn bad_input_is_one_clear_error() {
    assert!(matches!(
        decode("{", &src(), now()),
        Err(DecodeError::Malformed(_))
    ));
    assert!(matches!(
        decode("", &src(), now()),
        Err(DecodeError::Malformed(_))
    ));
    assert!(matches!(
        decode("[1,2]", &src(), now()),
        Err(DecodeError::NotAnObject)
    ));
    assert!(matches!(
        decode("\"hi\"", &src(), now()),
        Err(DecodeError::NotAnObject)
    ));
    assert!(matches!(
        decode("{} trailing", &src(), now()),
        Err(DecodeError::Malformed(_))
    ));
    let big = format!(r#"{{"type":"x","pad":"{}"}}"#, "a".repeat(100));
    assert_eq!(
        decode_limited(&big, 50, &src(), now()),
        Err(DecodeError::TooLarge {
            size: big.len(),
            max: 50
        })
    );
}

#[test]
fn severity_words_and_order() {
    assert!(Severity::Info < Severity::Warning);
    assert!(Severity::Warning < Severity::Critical);
    assert!(Severity::Critical < Severity::Emergency);
    assert_eq!("HIGH".parse::<Severity>().unwrap(), Severity::Critical);
    assert!("bogus".parse::<Severity>().is_err());
}

#[test]
fn styles_from_paths() {
    assert_eq!(
        Style::from_path("/ws/risk-assessment/a1"),
        Some(Style::Merchant)
    );
    assert_eq!(
        Style::from_path("/api/v1/ws/dashboard"),
        Some(Style::Dashboard)
    );
    assert_eq!(Style::from_path("/ws/engagement"), Some(Style::Compliance));
    assert_eq!(
        Style::from_path("/ws/client/c1/engagement"),
        Some(Style::Compliance)
    );
    assert_eq!(Style::from_path("/api/v1/ws/alerts"), Some(Style::Hr));
    assert_eq!(Style::from_path("/ws"), Some(Style::Trading));
    assert_eq!(Style::from_path(native::PATH), Some(Style::Native));
    assert_eq!(Style::from_path("/other"), None);
}

mod fuzz {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

        #[test]
        fn arbitrary_text_never_panics(s in ".{0,400}") {
            let _ = decode(&s, &src(), now());
        }

        #[test]
        fn arbitrary_json_objects_never_panic(v in json_object()) {
            let text = v.to_string();
            let frame = decode(&text, &src(), now());
            prop_assert!(frame.is_ok(), "a JSON object must decode: {text}");
            if let Ok(Frame::Event(e)) = frame {
                prop_assert_eq!(e.payload.get(), text.as_str());
                let _ = e.describe();
                let _ = e.data();
            }
        }
    }

    fn json_leaf() -> impl Strategy<Value = serde_json::Value> {
        prop_oneof![
            Just(serde_json::Value::Null),
            any::<bool>().prop_map(serde_json::Value::from),
            any::<i64>().prop_map(serde_json::Value::from),
            any::<f64>()
                .prop_filter("finite", |f| f.is_finite())
                .prop_map(serde_json::Value::from),
            prop_oneof![
                Just("critical".to_owned()),
                Just("emergency_stopped".to_owned()),
                Just("2025-12-10T09:53:23+08:00".to_owned()),
                ".{0,12}",
            ]
            .prop_map(serde_json::Value::from),
        ]
    }

    fn json_object() -> impl Strategy<Value = serde_json::Value> {
        let key = prop_oneof![
            Just("type".to_owned()),
            Just("event".to_owned()),
            Just("op".to_owned()),
            Just("data".to_owned()),
            Just("severity".to_owned()),
            Just("status".to_owned()),
            Just("timestamp".to_owned()),
            Just("seq".to_owned()),
            Just("sessionId".to_owned()),
            Just("alertLevel".to_owned()),
            Just("action".to_owned()),
            "[a-z]{1,6}",
        ];
        let value = json_leaf().prop_recursive(3, 24, 6, move |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..4).prop_map(serde_json::Value::from),
                proptest::collection::btree_map("[a-z_]{1,8}", inner, 0..4)
                    .prop_map(|m| serde_json::Value::Object(m.into_iter().collect())),
            ]
        });
        proptest::collection::btree_map(key, value, 0..8)
            .prop_map(|m| serde_json::Value::Object(m.into_iter().collect()))
    }
}

/// A hub that still closes a rate-limited connection with 1008 (older
/// riskwatch hubs did) is reconnected to, not taken for an auth refusal.
#[test]
fn a_1008_rate_limit_close_is_not_an_auth_refusal() {
    use super::native::close;
    assert_eq!(
        close::policy_with_reason(1008, "rate limit exceeded"),
        close::Policy::Reconnect
    );
    assert_eq!(
        close::policy_with_reason(1008, "invalid token"),
        close::Policy::AuthRefused
    );
    assert_eq!(close::policy(close::RATE_LIMITED), close::Policy::Reconnect);
}

/// `data()` loses no payload field: top-level fields and a `data`
/// object's are merged (the latter wins a clash), a native envelope gives
/// its `data`, a `data` that is not an object stays under `data`.
#[test]
fn data_keeps_every_payload_field() {
    let compliance = event(
        r#"{"type":"engagement_update","client_id":"c1","timestamp":"2026-01-02T03:04:05Z","data":{"departments":[]}}"#,
    );
    assert_eq!(
        compliance.data(),
        serde_json::json!({"client_id":"c1","departments":[]})
    );
    let clash = event(r#"{"type":"session_status","status":"active","data":{"status":"paused"}}"#);
    assert_eq!(clash.data(), serde_json::json!({"status":"paused"}));
    let native = event(
        r#"{"op":"event","channel":"c","seq":1,"type":"tick","severity":"info","ts":"2026-01-02T03:04:05Z","id":"x","data":{"i":1}}"#,
    );
    assert_eq!(native.data(), serde_json::json!({"i":1}));
    let scalar = event(r#"{"type":"riskUpdate","assessmentId":"a1","data":7}"#);
    assert_eq!(
        scalar.data(),
        serde_json::json!({"assessmentId":"a1","data":7})
    );
}

/// What the hub gives an event published without a severity is what a
/// client decoding the typed message would give it.
#[test]
fn severity_of_is_the_decoders_rule() {
    let cases = [
        (
            "session_status",
            r#"{"sessionId":"S1","status":"emergency_stopped"}"#,
        ),
        (
            "session_status",
            r#"{"status":"paused","alertLevel":"info"}"#,
        ),
        ("risk_alert", r#"{"alertLevel":"critical"}"#),
        ("risk_alert", "{}"),
        ("department_critical", r#"{"severity":"low"}"#),
        ("department_critical", r#"{"severity":"emergency"}"#),
        ("employee_stress", r#"{"stress_rate":45}"#),
        ("riskAlert", r#"{"severity":"HIGH"}"#),
        ("alert", r#"{"severity":"medium"}"#),
        ("error", "{}"),
        ("dashboard_update", r#"{"overall_risk":"high"}"#),
        ("something_else", "[1,2]"),
        ("market_data", "null"),
    ];
    for (kind, data) in cases {
        let typed = format!(r#"{{"type":"{kind}","data":{data}}}"#);
        assert_eq!(
            severity_of(kind, data),
            event(&typed).severity,
            "{kind} {data}"
        );
    }
}

/// Every style's encoding decodes back to the same event: type, style,
/// severity, time and every data field.
#[test]
fn every_style_encodes_what_it_decodes() {
    let data = RawValue::from_string(
        r#"{"sessionId":"S1","status":"paused","severity":"high","n":3}"#.to_owned(),
    )
    .unwrap();
    for style in Style::ALL {
        for kind in [
            "session_status",
            "riskAlert",
            "alert",
            "employee_stress",
            "custom",
        ] {
            let out = Outgoing {
                channel: "msp:m1/client:c1",
                seq: 9,
                kind,
                severity: severity_of(kind, data.get()),
                ts: "2026-01-01T00:00:00.000Z",
                id: None,
                data: &data,
            };
            let e = event(&encode(style, &out));
            let what = format!("{kind} as {style}");
            assert_eq!(e.kind, kind, "{what}");
            let want_style = if style == Style::Native {
                Style::Native
            } else {
                Style::of_kind(kind)
            };
            assert_eq!(e.style, want_style, "{what}");
            assert_eq!(e.severity, out.severity, "{what}");
            assert_eq!(e.time, now(), "{what}");
            assert!(e.server_time, "{what}");
            let fields = e.data();
            for (k, v) in [
                ("sessionId", "S1"),
                ("status", "paused"),
                ("severity", "high"),
            ] {
                assert_eq!(fields[k], v, "{what}: {fields}");
            }
            assert_eq!(fields["n"], 3, "{what}: {fields}");
            if style == Style::Compliance {
                assert_eq!(e.payload_value()["client_id"], "c1", "{what}");
            }
        }
    }
}

/// Inputs the fuzzers (fuzz/, scripts/fuzz.sh) found, kept as tests.
mod fuzz_found {
    use super::*;

    /// `decode`: a message with an empty type gave a notification with no
    /// title at all.
    #[test]
    fn an_empty_type_still_has_a_title() {
        for text in [
            r#"{"type":"","data":{"severity":"low","details":"New app seen","app":"Claude"}}"#,
            r#"{"type":"  ","data":{"severity":"critical"}}"#,
        ] {
            let d = event(text).describe();
            assert!(!d.title.trim().is_empty(), "{text}: {d:?}");
        }
        let d = event(r#"{"type":"","data":{"severity":"critical"}}"#).describe();
        assert_eq!(d.title, "Critical event");
    }

    /// `hub_commands`: the trading shape put a data field named `op` at the
    /// top level, where the client takes it for a native-protocol message:
    /// an event published with `{"op":"pong"}` in its data reached trading
    /// desks as a pong and vanished.
    #[test]
    fn a_data_field_named_op_does_not_make_an_event_a_control_message() {
        let data = RawValue::from_string(
            r#"{"op":"pong","sessionId":"S1","lossLimitUtilization":97}"#.into(),
        )
        .unwrap();
        for style in Style::ALL {
            let out = Outgoing {
                channel: "sessions:S1",
                seq: 3,
                kind: "session_status",
                severity: severity_of("session_status", data.get()),
                ts: "2026-01-01T00:00:00.000Z",
                id: None,
                data: &data,
            };
            let text = encode(style, &out);
            let e = event(&text);
            assert_eq!(e.kind, "session_status", "{style}: {text}");
            assert_eq!(e.severity, out.severity, "{style}: {text}");
            assert_eq!(
                e.field("op"),
                Some(serde_json::json!("pong")),
                "{style}: {text}"
            );
            assert_eq!(e.subject.as_deref(), Some("session:S1"), "{style}: {text}");
        }
    }
}
