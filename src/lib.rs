//! riskwatch keeps traders, risk analysts, compliance teams and HR managers
//! in touch with their risk systems in real time.
//!
//! Data flows one way: a backend (one of the five styles in
//! `docs/PROTOCOL.md`, or riskwatch's own hub) → WebSocket → [`client`]
//! (reconnect, heartbeat, resume) → canonical [`Event`] → sinks (the CLI,
//! the desktop shell).
//!
//! # Layout
//! - [`protocol`]: the event model and one decoder for every backend style;
//!   the native protocol's messages and close codes. Pure, no I/O.
//! - [`client`]: the reconnecting WebSocket client: TLS, auth, backoff,
//!   heartbeat, subscriptions, resume, HTTP polling fallback, observable
//!   connection state.
//! - [`engine`]: the alert engine between the client and the sinks:
//!   per-profile preferences (`engine::prefs`), threshold rules with
//!   rising-edge state (`engine::rules`), dedupe, bursts and repeats
//!   (`engine::dedupe`); `Engine::decide` is a pure function of state,
//!   event and time.
//! - [`alerting`]: the one alerting pipeline the CLI and the desktop
//!   adapt: engines per profile, inbox writer and reader, notifier, pause,
//!   the due-time scheduler, acknowledgements, history gaps.
//! - [`inbox`]: the local SQLite store of listed events (WAL, batched
//!   writer, acknowledgements, search, retention).
//! - [`notifier`]: OS notifications (notify-rust) for the engine's
//!   decisions, degrading to a logged warning without a server.
//! - [`profile`]: server profiles on disk, one TOML file each: where to
//!   connect (URL, style, channels) and the engine's preferences.
//! - [`credentials`]: tokens in the OS keyring, one entry per profile.
//! - [`logging`]: the log filter that keeps secrets out of any `RUST_LOG`.
//! - [`server`]: the hub (`riskwatch serve`): native protocol and the five
//!   styles' endpoints, auth, history and resume, publish API, stats.
//! - [`sim`]: deterministic simulators of every backend style, and
//!   [`sim::demo`], the hub on loopback with all of them publishing into
//!   it, so riskwatch runs with no backend.
//!
//! The desktop shell (`src-tauri/`) and the CLI (`src/main.rs`) are thin
//! callers of this library.

pub mod alerting;
pub mod client;
pub mod credentials;
pub mod engine;
pub mod inbox;
pub mod logging;
pub mod notifier;
pub mod profile;
pub mod protocol;
pub mod server;
pub mod sim;

pub use client::{Client, ClientConfig, ClientHandle, ClientUpdate, ConnState};
pub use protocol::{Event, Severity, Style};
