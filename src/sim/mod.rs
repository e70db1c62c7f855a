//! Deterministic simulators of the backends riskwatch watches: given a seed
//! they produce the same sequence of events, each on the hub channel
//! docs/PROTOCOL.md gives it, so demos are lively and tests are
//! repeatable. They produce events, not wire messages: the hub renders
//! each in every style's own shape through `protocol::encode`.
//!
//! - [`trading`]: trading sessions (P&L random walk, loss-limit
//!   utilisation, algorithm decisions, ticks, risk alerts, emergency stops).
//! - [`hr`]: departments and employees, stress alerts on crossing 40.
//! - [`merchant`]: merchant risk assessments, predictions and alerts.
//! - [`compliance`]: engagement and interactions per client and MSP.
//! - [`desk`]: all of them publishing into a hub (`serve --demo`).
//! - [`demo`]: the hub on loopback with the desk in it, the offline demo
//!   of `riskwatch demo` and the desktop app.

pub mod compliance;
pub mod demo;
pub mod desk;
pub mod hr;
pub mod merchant;
pub mod trading;

use serde_json::Value;

use crate::server::NewEvent;

/// An event a simulator publishes (the hub gives it its severity).
fn event(channel: String, kind: &str, data: Value) -> NewEvent {
    NewEvent {
        channel,
        kind: kind.to_owned(),
        severity: None,
        id: None,
        data,
    }
}

/// `x` to `places` decimal places, as the seeds' payloads show numbers.
fn round(x: f64, places: i32) -> f64 {
    let scale = 10f64.powi(places);
    (x * scale).round() / scale
}
