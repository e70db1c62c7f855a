//! The riskwatch desktop shell: one Tauri window that shows the live
//! connection state and the latest events of one configured server. A thin
//! caller of the `riskwatch` library; the dashboards grow from here.
//!
//! Data flows one way: `link` (demo server or configured URL → client) →
//! `feed::Feed` (state + ring buffer of the last 50 events) → Tauri events
//! [`EVENT_CONN_STATE`] and [`EVENT_EVENT`] → the webview. A page that loads
//! late catches up with the `snapshot` command.
//!
//! # Layout
//! - `settings`: `--url` / `RISKWATCH_URL`, and the token from
//!   `RISKWATCH_TOKEN` only.
//! - `link`: opens the one connection (starting the demo server when no URL
//!   is configured), pumps its updates into the feed and out to the webview,
//!   and closes it on exit.
//! - `feed`: the state the window shows, with the ring buffer. Pure.
//! - `view`: the typed payloads the webview receives, mirrored in
//!   `ui/src/ipc.ts`. Never the raw payload, never the token.
//! - `commands`: the Tauri commands, thin adapters over `feed`.
//! - `error`: the crate's error, serialized as its message across IPC.
//!
//! Configuration lives in `tauri.conf.json` at the repository root; the
//! window's permissions in `src-tauri/capabilities/`.

mod commands;
mod error;
mod feed;
mod link;
mod settings;
mod view;

use std::process::ExitCode;

use tauri::{Manager, RunEvent};
use tracing_subscriber::EnvFilter;

/// Tauri event carrying a `LinkState` (see `ui/src/ipc.ts`) whenever the state changes.
pub const EVENT_CONN_STATE: &str = "conn-state";
/// Tauri event carrying one `EventView` per new event.
pub const EVENT_EVENT: &str = "event";

/// Runs the desktop app until its window closes.
pub fn run() -> ExitCode {
    let settings = settings::Settings::from_env();
    init_tracing();

    let link = tauri::async_runtime::block_on(link::Link::open(settings));
    let feed = feed::Feed::new(link.source.clone(), link.demo, link.state.clone());

    let app = tauri::Builder::default()
        .manage(feed)
        .invoke_handler(tauri::generate_handler![commands::snapshot])
        .setup(move |app| {
            let running = link.start(app.handle().clone());
            app.manage(running);
            Ok(())
        })
        .build(tauri::generate_context!("../tauri.conf.json"));
    let app = match app {
        Ok(app) => app,
        Err(e) => {
            tracing::error!(error = %e, "cannot start the desktop app");
            return ExitCode::FAILURE;
        }
    };
    app.run(|app, event| {
        if let RunEvent::Exit = event
            && let Some(running) = app.try_state::<link::Running>()
        {
            running.stop();
        }
    });
    ExitCode::SUCCESS
}

/// Logs to stderr; `RUST_LOG` overrides the default of `info`.
fn init_tracing() {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}
