//! The dashboard hub style (seed 001): `/api/v1/ws/dashboard`, a
//! `dashboard_update` `{"type","timestamp","data"}` every 30 s, `error`,
//! and the client commands `{"action":"refresh"}` and `{"action":"ping"}`
//! (answered with `pong`).

use super::Severity;
use super::encode::{Outgoing, typed};

/// The message types this style defines.
pub const KINDS: &[&str] = &["dashboard_update", "error"];

/// The client's keep-alive command.
pub const PING: &str = r#"{"action":"ping"}"#;

/// The client's command for an immediate update.
pub const REFRESH: &str = r#"{"action":"refresh"}"#;

pub(super) fn default_severity(kind: &str) -> Option<Severity> {
    (kind == "error").then_some(Severity::Warning)
}

pub(super) fn serves(path: &str) -> bool {
    path.ends_with("/ws/dashboard")
}

/// An event as this style's server sends it.
pub fn encode(ev: &Outgoing<'_>) -> String {
    typed(ev)
}
