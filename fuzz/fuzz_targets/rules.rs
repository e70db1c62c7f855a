//! The rules language (docs/RULES.md), as a user types it: `parse_rules`
//! must answer with rules or one error with its line and column, never
//! panic. A parsed rule must read back the same from its own text (what
//! Settings shows), and run through the engine on the seeds' events.
#![no_main]

use std::sync::Arc;

use chrono::{TimeZone, Utc};
use libfuzzer_sys::fuzz_target;
use riskwatch::engine::rules::{parse_rule, parse_rules};
use riskwatch::engine::{Engine, Prefs};
use riskwatch::protocol::{Frame, decode};

/// One event of each seed's shape, with numbers rules look at.
const EVENTS: &[&str] = &[
    r#"{"type":"risk_alert","sessionId":"S1","alertLevel":"critical","alertType":"loss_limit","message":"over","currentValue":92,"threshold":90}"#,
    r#"{"type":"session_status","sessionId":"S1","status":"emergency_stopped","lossLimitUtilization":100}"#,
    r#"{"type":"position_update","sessionId":"S1","symbol":"AAPL","quantity":-5,"pnl":-1200.5}"#,
    r#"{"type":"risk_update","timestamp":"2026-01-01T00:00:00Z","data":{"assessment_id":"A1","risk_score":0.91,"risk_level":"high"}}"#,
    r#"{"type":"alert","timestamp":"2026-01-01T00:00:00Z","data":{"employee_id":"E1","risk_level":"critical","score":88}}"#,
    r#"{"type":"risk_alert","timestamp":"2026-01-01T00:00:00Z","client_id":"C1","data":{"severity":"high","score":71}}"#,
];

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(rules) = parse_rules(text) else {
        return;
    };
    for rule in &rules {
        let written = rule.to_string();
        let again = match parse_rule(&written) {
            Ok(Some(r)) => r,
            other => panic!("{rule:?} is written {written:?}, which reads back as {other:?}"),
        };
        assert_eq!(again.to_string(), written, "{rule:?}");
    }
    let mut engine = Engine::new(Prefs::default(), rules);
    let source: Arc<str> = Arc::from("fuzz");
    let now = Utc.timestamp_opt(1_767_225_600, 0).unwrap();
    for (i, text) in EVENTS.iter().enumerate() {
        if let Ok(Frame::Event(e)) = decode(text, &source, now) {
            let at = now + chrono::Duration::seconds(i as i64);
            let _ = engine.decide(&e, at);
            let _ = engine.decide(&e, at);
        }
    }
});
