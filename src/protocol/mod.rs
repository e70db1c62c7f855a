//! The canonical event model and the decoders that turn every backend
//! style's messages into it. Pure: no sockets, no tokio, no clocks of its own
//! (the receipt time is passed in), so tests and fuzzers call it directly.
//!
//! One entry point, [`decode`], recognises the style of each message from the
//! message itself (its `op`, `type`, `event` or `action` field): no flag says
//! which backend is on the other end. The rules are written down in
//! `docs/PROTOCOL.md`; `classify` is their single implementation.

mod classify;
pub mod compliance;
pub mod dashboard;
mod describe;
mod encode;
mod envelope;
pub mod hr;
pub mod merchant;
pub mod native;
mod style;
mod time;
pub mod trading;

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use serde_json::{Map, Value};

pub use describe::Description;
pub use encode::{Outgoing, encode, error as error_message, pong as pong_message};
pub use style::Style;

/// How much an event matters. Ordered: `Info < Warning < Critical < Emergency`.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Routine updates: scores, ticks, decisions, engagement counters.
    #[default]
    Info,
    /// Worth a look: a warning-level alert, a stressed employee.
    Warning,
    /// Act now: a high or critical alert, a department gone critical.
    Critical,
    /// Something already stopped: an emergency stop. Never expires.
    Emergency,
}

impl Severity {
    /// All levels, lowest first.
    pub const ALL: [Severity; 4] = [
        Severity::Info,
        Severity::Warning,
        Severity::Critical,
        Severity::Emergency,
    ];

    /// Maps a backend's level word to a severity, case-insensitively:
    /// `low`/`info` → info, `medium`/`warning`/`warn` → warning,
    /// `high`/`critical` → critical, `emergency` → emergency. Anything else
    /// is `None`, so the type's default applies.
    pub fn from_level(word: &str) -> Option<Severity> {
        let w = word.trim();
        const TABLE: [(&str, Severity); 10] = [
            ("low", Severity::Info),
            ("info", Severity::Info),
            ("informational", Severity::Info),
            ("medium", Severity::Warning),
            ("moderate", Severity::Warning),
            ("warning", Severity::Warning),
            ("warn", Severity::Warning),
            ("high", Severity::Critical),
            ("critical", Severity::Critical),
            ("emergency", Severity::Emergency),
        ];
        TABLE
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(w))
            .map(|(_, s)| *s)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Warning => "warning",
            Severity::Critical => "critical",
            Severity::Emergency => "emergency",
        }
    }
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Severity {
    type Err = UnknownSeverity;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Severity::from_level(s).ok_or_else(|| UnknownSeverity(s.to_owned()))
    }
}

/// A severity word that is not one of the known levels.
#[derive(Debug, Clone, thiserror::Error)]
#[error("unknown severity {0:?} (expected info, warning, critical or emergency)")]
pub struct UnknownSeverity(pub String);

/// One event from any backend, in one shape.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Event {
    /// The type string exactly as the server sent it (`riskAlert`,
    /// `session_status`, …).
    #[serde(rename = "type")]
    pub kind: String,
    pub severity: Severity,
    /// Which backend style the message was recognised as.
    pub style: Style,
    /// Channel or topic, when the message names one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channel: Option<String>,
    /// What the event is about, as `kind:id` (`session:S42`,
    /// `department:Engineering`, `client:c1`, `assessment:a7`,
    /// `employee:EMP001`, `symbol:SPY`), when the message says.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    /// Which connection delivered it (the profile name or the server URL,
    /// without credentials).
    pub source: Arc<str>,
    /// The server's timestamp when it gave a readable one, else receipt time.
    pub time: DateTime<Utc>,
    /// Whether `time` came from the server.
    pub server_time: bool,
    /// The server's event id, when it gives one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// The per-channel sequence number (native protocol), when given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seq: Option<u64>,
    /// The whole message, byte for byte as received.
    pub payload: Box<RawValue>,
}

impl PartialEq for Event {
    fn eq(&self, o: &Self) -> bool {
        self.kind == o.kind
            && self.severity == o.severity
            && self.style == o.style
            && self.channel == o.channel
            && self.subject == o.subject
            && self.source == o.source
            && self.time == o.time
            && self.server_time == o.server_time
            && self.id == o.id
            && self.seq == o.seq
            && self.payload.get() == o.payload.get()
    }
}

/// Top-level keys that belong to the envelope rather than the event's data,
/// left out of [`Event::data`] when a message has no `data` field.
const ENVELOPE_KEYS: &[&str] = &["type", "event", "op", "timestamp", "ts", "seq", "channel"];

/// A message's fields but the envelope's, with a `data` object's fields
/// merged in (they win a clash); a `data` that is not an object stays.
fn payload_fields(mut map: Map<String, Value>) -> Value {
    let inner = map.remove("data");
    let mut out: Map<String, Value> = map
        .into_iter()
        .filter(|(k, _)| !ENVELOPE_KEYS.contains(&k.as_str()))
        .collect();
    match inner {
        Some(Value::Object(d)) => out.extend(d),
        Some(other) => {
            out.insert("data".into(), other);
        }
        None => {}
    }
    Value::Object(out)
}

impl Event {
    /// The message's payload fields, losing none: a native envelope's
    /// `data` (its other keys are this event's own fields); otherwise every
    /// top-level field but the envelope's (`type`, `timestamp`, …) with
    /// the fields of a `data` object merged in (a `data` that is not an
    /// object stays under `data`). So a trading `session_status` gives its
    /// `sessionId` and `status` beside `data`'s metrics. On a name in both,
    /// `data`'s field wins here; [`Event::payload`] has the message whole.
    ///
    /// A hub relays a seed's message as its envelope's `data`, so that
    /// `data` is read the same way: a trading `session_status` gives the
    /// same fields whether it came from a seed backend or through the hub.
    pub fn data(&self) -> Value {
        match serde_json::from_str::<Value>(self.payload.get()) {
            Ok(Value::Object(mut map)) => {
                if map.contains_key("op") {
                    return match map.remove("data") {
                        Some(Value::Object(inner)) => payload_fields(inner),
                        Some(other) => other,
                        None => Value::Null,
                    };
                }
                payload_fields(map)
            }
            Ok(other) => other,
            Err(_) => Value::Null,
        }
    }

    /// The whole message as a JSON value.
    pub fn payload_value(&self) -> Value {
        serde_json::from_str(self.payload.get()).unwrap_or(Value::Null)
    }

    /// A numeric or string field looked up in `data` first, then at the top
    /// level; dotted paths descend into objects (`marketData.price`).
    pub fn field(&self, path: &str) -> Option<Value> {
        let whole = self.payload_value();
        let lookup = |root: &Value| -> Option<Value> {
            let mut cur = root;
            for part in path.split('.') {
                cur = cur.get(part)?;
            }
            Some(cur.clone())
        };
        whole
            .get("data")
            .and_then(lookup)
            .or_else(|| lookup(&whole))
    }

    /// Human title and body (used by the CLI, notifications and the UI).
    pub fn describe(&self) -> Description {
        describe::describe(self)
    }
}

/// Control messages: connection housekeeping, never shown as events.
#[derive(Debug, Clone, PartialEq)]
pub enum Control {
    /// The server asked for a pong (`{"type":"ping"}`).
    Ping,
    /// An application-level pong.
    Pong,
    /// The trading style's `heartbeat`.
    Heartbeat,
    /// A connection confirmation (compliance `connection`, HR's confirmation).
    Connected { detail: Option<String> },
    /// An echo or acknowledgement of a client command (`subscribe`,
    /// `subscribed`, `refresh`).
    Ack { kind: String },
    /// A native-protocol control message.
    Native(native::ServerControl),
}

/// What one text frame decoded to.
#[derive(Debug, Clone, PartialEq)]
pub enum Frame {
    Event(Event),
    Control(Control),
}

/// Why a frame could not be decoded. The frame is counted and logged; the
/// connection goes on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// Not valid JSON (or not UTF-8 text at all).
    #[error("malformed message: {0}")]
    Malformed(String),
    /// Valid JSON but not an object (`[1,2]`, `"hi"`, `42`).
    #[error("message is JSON but not an object")]
    NotAnObject,
    /// Larger than the configured maximum.
    #[error("message of {size} bytes exceeds the {max}-byte limit")]
    TooLarge { size: usize, max: usize },
}

/// Decodes one text frame from any backend style.
///
/// `source` labels the connection; `received_at` is used when the message
/// carries no readable timestamp of its own.
pub fn decode(
    text: &str,
    source: &Arc<str>,
    received_at: DateTime<Utc>,
) -> Result<Frame, DecodeError> {
    let env: envelope::Envelope<'_> = match serde_json::from_str(text) {
        Ok(e) => e,
        Err(err) if err.is_data() => {
            // Syntactically fine JSON that is not an object.
            return if serde_json::from_str::<serde::de::IgnoredAny>(text).is_ok() {
                Err(DecodeError::NotAnObject)
            } else {
                Err(DecodeError::Malformed(err.to_string()))
            };
        }
        Err(err) => return Err(DecodeError::Malformed(err.to_string())),
    };
    classify::classify(text, env, source, received_at)
}

/// The severity docs/PROTOCOL.md's rules give an event of type `kind`
/// with `data` (JSON text): what the hub gives an event whose publisher
/// named none, the same as a client decoding it would.
pub fn severity_of(kind: &str, data: &str) -> Severity {
    classify::severity_of(kind, data)
}

/// Whether a message of type `kind` is connection housekeeping in the five
/// styles (`ping`, `heartbeat`, `subscribed`, `connection_*`, …): clients
/// on those endpoints never show it as an event, so the hub refuses to
/// publish an event under such a type rather than have it vanish.
pub fn is_housekeeping(kind: &str) -> bool {
    classify::is_housekeeping(kind)
}

/// Decodes with a size limit: larger frames are rejected before parsing.
pub fn decode_limited(
    text: &str,
    max: usize,
    source: &Arc<str>,
    received_at: DateTime<Utc>,
) -> Result<Frame, DecodeError> {
    if text.len() > max {
        return Err(DecodeError::TooLarge {
            size: text.len(),
            max,
        });
    }
    decode(text, source, received_at)
}

#[cfg(test)]
mod tests;
