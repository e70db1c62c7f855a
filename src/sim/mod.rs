//! Deterministic simulators of the backends riskwatch watches: given a seed
//! they produce the same sequence of messages, in each backend's own format,
//! so demos are lively and tests are repeatable.
//!
//! - [`trading`]: trading sessions (P&L random walk, loss-limit
//!   utilisation, algorithm decisions, ticks, risk alerts, emergency stops).

pub mod trading;
