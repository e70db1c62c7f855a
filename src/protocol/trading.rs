//! The trading sessions style (seed 004): `/ws/trading` (or `/ws`), flat
//! messages `{"type", …fields, "timestamp"}` — `session_status`,
//! `algorithm_decision`, `market_data`, `risk_alert`,
//! `system_notification`, `heartbeat` — on channels `user:{id}` and
//! `sessions:{id}`, and the client command
//! `{"type":"subscribe","channels":[…]}`.

use serde_json::{Map, Value};

use super::Severity;
use super::encode::Outgoing;

/// The message types this style defines.
pub const KINDS: &[&str] = &[
    "session_status",
    "algorithm_decision",
    "market_data",
    "risk_alert",
    "system_notification",
];

pub(super) fn default_severity(kind: &str) -> Option<Severity> {
    // A maintenance or system-status notice is meant to be seen.
    matches!(kind, "risk_alert" | "system_notification").then_some(Severity::Warning)
}

/// A session's lifecycle state as a severity: stopped by its emergency
/// stop, emergency; paused or expired (it stopped trading without being
/// told), warning; active or completed, info. Only for `session_status`,
/// where it wins over any level field.
pub(super) fn lifecycle(kind: &str, status: Option<&str>) -> Option<Severity> {
    if kind != "session_status" {
        return None;
    }
    match status?.to_ascii_lowercase().as_str() {
        "emergency_stopped" => Some(Severity::Emergency),
        "paused" | "expired" => Some(Severity::Warning),
        "active" | "completed" => Some(Severity::Info),
        _ => None,
    }
}

pub(super) fn serves(path: &str) -> bool {
    path.ends_with("/ws/trading") || path == "/ws"
}

/// The server's periodic heartbeat.
pub fn heartbeat(ts: &str) -> String {
    serde_json::json!({"type": "heartbeat", "timestamp": ts}).to_string()
}

/// The client's subscribe command.
pub fn subscribe(channels: &[String]) -> Vec<String> {
    vec![serde_json::json!({"type": "subscribe", "channels": channels}).to_string()]
}

/// An event as this style's server sends it: the data's fields at the top
/// level beside `type` (a `data` that is not an object, or that has an
/// `op` field, stays under `data`), `timestamp` and `id` unless the data
/// has its own.
pub fn encode(ev: &Outgoing<'_>) -> String {
    let mut m = Map::new();
    m.insert("type".into(), Value::from(ev.kind));
    match ev.data_value() {
        // `op` at the top level marks a native-protocol message (PROTOCOL.md,
        // rule 1): such data stays whole under `data`, where the client
        // still reads its fields, so the event is never taken for a
        // native control message.
        Value::Object(fields) if !fields.contains_key("op") => {
            for (k, v) in fields {
                if k != "type" {
                    m.insert(k, v);
                }
            }
        }
        Value::Null => {}
        other => {
            m.insert("data".into(), other);
        }
    }
    m.entry("timestamp").or_insert(Value::from(ev.ts));
    // The event's id where the data has none of its own (trading clients
    // ignore fields they do not know): riskwatch's client tells a replayed
    // message from a new one by it.
    if let Some(id) = ev.id {
        m.entry("id").or_insert(Value::from(id));
    }
    Value::Object(m).to_string()
}
