//! The HR risk alerts style (seed 003): `/api/v1/ws/alerts`, messages
//! `{"type","timestamp","data"}`: `department_critical` (critical by
//! definition) and `employee_stress` (stress_rate over 40). No client
//! commands.

use super::Severity;
use super::encode::{Outgoing, typed};

/// The message types this style defines.
pub const KINDS: &[&str] = &["department_critical", "employee_stress"];

pub(super) fn default_severity(kind: &str) -> Option<Severity> {
    match kind {
        "department_critical" => Some(Severity::Critical),
        "employee_stress" => Some(Severity::Warning),
        _ => None,
    }
}

/// A department alert is critical by definition: an explicit level only
/// raises it (to emergency), never lowers it.
pub(super) fn floor(kind: &str, explicit: Option<Severity>) -> Option<Severity> {
    (kind == "department_critical").then(|| {
        explicit
            .unwrap_or(Severity::Critical)
            .max(Severity::Critical)
    })
}

pub(super) fn serves(path: &str) -> bool {
    path.ends_with("/ws/alerts")
}

/// The server's greeting on a new connection.
pub fn connected(ts: &str) -> String {
    serde_json::json!({"type": "connection", "status": "connected",
        "message": "Connected to risk alerts", "timestamp": ts})
    .to_string()
}

/// An event as this style's server sends it.
pub fn encode(ev: &Outgoing<'_>) -> String {
    typed(ev)
}
