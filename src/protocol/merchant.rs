//! The merchant risk assessment style (seed 000): one connection per
//! assessment at `/ws/risk-assessment/{assessment_id}`, messages
//! `{"type","timestamp","data"}` of the types `riskUpdate`,
//! `riskPrediction` and `riskAlert`. No client commands.

use super::Severity;
use super::encode::{Outgoing, typed};

/// The message types this style defines.
pub const KINDS: &[&str] = &["riskUpdate", "riskPrediction", "riskAlert"];

/// A type's severity when no level field says otherwise.
pub(super) fn default_severity(kind: &str) -> Option<Severity> {
    (kind == "riskAlert").then_some(Severity::Warning)
}

/// Whether a WebSocket path is this style's.
pub(super) fn serves(path: &str) -> bool {
    path.contains("/ws/risk-assessment/")
}

/// An event as this style's server sends it.
pub fn encode(ev: &Outgoing<'_>) -> String {
    typed(ev)
}
