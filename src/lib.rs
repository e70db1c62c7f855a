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

#[cfg(test)]
mod layers {
    //! docs/ARCHITECTURE.md, "Layers": each module uses only the modules
    //! listed before it. This reads the sources (tests excluded) so the map
    //! cannot drift from the code unnoticed.

    use std::path::{Path, PathBuf};

    /// The order of docs/ARCHITECTURE.md; `logging` uses nothing.
    const ORDER: &[&str] = &[
        "logging",
        "protocol",
        "engine",
        "client",
        "inbox",
        "notifier",
        "profile",
        "credentials",
        "alerting",
        "server",
        "sim",
    ];

    fn sources(module: &str) -> Vec<PathBuf> {
        let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
        let file = src.join(format!("{module}.rs"));
        if file.exists() {
            return vec![file];
        }
        let mut out = Vec::new();
        let mut dirs = vec![src.join(module)];
        while let Some(dir) = dirs.pop() {
            for entry in std::fs::read_dir(&dir).expect("module directory") {
                let path = entry.expect("entry").path();
                if path.is_dir() {
                    dirs.push(path);
                } else if path.extension().is_some_and(|e| e == "rs") {
                    out.push(path);
                }
            }
        }
        out
    }

    /// The `crate::name` paths a file's code (not its comments, not its
    /// test module) uses.
    fn uses(text: &str) -> Vec<String> {
        let mut found = Vec::new();
        for line in text.lines() {
            let code = line.trim_start();
            if code.starts_with("#[cfg(test)]") {
                break;
            }
            if code.starts_with("//") {
                continue;
            }
            let mut rest = code;
            while let Some(at) = rest.find("crate::") {
                rest = &rest[at + "crate::".len()..];
                let name: String = rest
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                    .collect();
                found.push(name);
            }
        }
        found
    }

    #[test]
    fn each_module_uses_only_those_listed_before_it() {
        let mut wrong = Vec::new();
        for (rank, module) in ORDER.iter().enumerate() {
            let files = sources(module);
            assert!(!files.is_empty(), "no sources for {module}");
            for file in files {
                let text = std::fs::read_to_string(&file).expect("readable source");
                for used in uses(&text) {
                    let Some(at) = ORDER.iter().position(|m| *m == used) else {
                        continue; // a re-export at the root, e.g. crate::Severity
                    };
                    if at > rank {
                        wrong.push(format!("{} uses crate::{used}", file.display()));
                    }
                }
            }
        }
        assert!(wrong.is_empty(), "layering broken:\n{}", wrong.join("\n"));
    }

    #[test]
    fn every_module_is_in_the_order() {
        let lib = include_str!("lib.rs");
        for line in lib.lines() {
            if let Some(name) = line
                .strip_prefix("pub mod ")
                .and_then(|l| l.strip_suffix(';'))
            {
                assert!(ORDER.contains(&name), "{name} missing from the layer order");
            }
        }
    }
}
