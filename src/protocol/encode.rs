//! [`encode`], beside [`decode`](super::decode): an event in a style's own
//! wire form, what that style's server sends. The hub renders every event
//! it relays through here, once per style; each style's module holds its
//! shape, so a style's two directions live in one file.

use serde_json::value::RawValue;
use serde_json::{Map, Value};

use super::{Style, compliance, dashboard, hr, merchant, native, trading};

/// An event to send, as the hub stores it.
#[derive(Debug, Clone, Copy)]
pub struct Outgoing<'a> {
    pub channel: &'a str,
    pub seq: u64,
    pub kind: &'a str,
    pub severity: super::Severity,
    /// RFC 3339, milliseconds, `Z`.
    pub ts: &'a str,
    pub id: Option<&'a str>,
    /// The event's data, a JSON value.
    pub data: &'a RawValue,
}

impl Outgoing<'_> {
    pub(super) fn data_value(&self) -> Value {
        serde_json::from_str(self.data.get()).unwrap_or(Value::Null)
    }
}

/// `ev` as `style`'s server would send it. Generic (a type no style
/// defines) is sent in the typed shape the seed styles share.
pub fn encode(style: Style, ev: &Outgoing<'_>) -> String {
    match style {
        Style::Native => native::encode(ev),
        Style::Merchant => merchant::encode(ev),
        Style::Dashboard => dashboard::encode(ev),
        Style::Hr => hr::encode(ev),
        Style::Compliance => compliance::encode(ev),
        Style::Trading => trading::encode(ev),
        Style::Generic => typed(ev),
    }
}

/// A seed-style server's error message (`{"type":"error","message",
/// "timestamp"}`), the answer to a command it cannot take.
pub fn error(message: &str, ts: &str) -> String {
    serde_json::json!({"type": "error", "message": message, "timestamp": ts}).to_string()
}

/// A seed-style server's answer to a `ping`.
pub fn pong(ts: &str) -> String {
    serde_json::json!({"type": "pong", "timestamp": ts}).to_string()
}

/// The shape seeds 000, 001 and 003 share: `{"type","timestamp"[,"id"],
/// "data"}`.
pub(super) fn typed(ev: &Outgoing<'_>) -> String {
    typed_with(ev, ev.id.map(|id| ("id", id)))
}

/// `{"type","timestamp"[,key],"data"}`.
pub(super) fn typed_with(ev: &Outgoing<'_>, extra: Option<(&str, &str)>) -> String {
    let mut m = Map::new();
    m.insert("type".into(), Value::from(ev.kind));
    m.insert("timestamp".into(), Value::from(ev.ts));
    if let Some((k, v)) = extra {
        m.insert(k.into(), Value::from(v));
    }
    m.insert("data".into(), ev.data_value());
    Value::Object(m).to_string()
}
