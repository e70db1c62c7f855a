//! The riskwatch desktop shell: a Tauri window and a tray icon over the
//! `riskwatch` library. It connects every stored server profile at once;
//! with none configured it is in demo mode: the embedded hub runs the desk
//! simulators on 127.0.0.1 and a native client watches every desk channel.
//!
//! Data flows one way: `link` (one client per profile) → `alerts` (the
//! profile's engine → the inbox, OS notifications) and `feed::Feed` (states
//! and a ring buffer of the last events) → `window` (Tauri events
//! `conn-state`, `links`, `event`, `inbox`) → the webview, and the tray,
//! which listens to the same events. A page that loads late catches up
//! with the `snapshot` command.
//!
//! # Layout
//! - `settings`: the command line (`--url`, `--demo`, `--tab`, `--minimized`,
//!   and the `--tab` a second launch forwards); the token of
//!   `--url` from `RISKWATCH_TOKEN` only; `Target`, where a connection goes.
//! - `profiles`: stored server profiles (preferences files) with their
//!   tokens in the OS keyring; Settings' form ⇄ preferences.
//! - `link`: the running connections — starts the demo hub for the demo,
//!   pumps each client's updates through `alerts` into the feed and out to
//!   the webview, closes them on exit.
//! - `alerts`: one engine per profile, the inbox (SQLite under the data
//!   directory, or `$RISKWATCH_DATA_DIR`), notifier, pause.
//! - `window`: everything the window is told (its events) and the window
//!   itself (show, a notification's Open / Acknowledge); the modules that
//!   change what the user sees call down into it, never into each other.
//! - `tray`: icon variants, tooltip, menu; refreshes itself on the
//!   window's `inbox` and `conn-state` events.
//! - `feed`: the state the window shows, with the ring buffer. Pure.
//! - `view`: the typed payloads the webview receives, mirrored in
//!   `ui/src/ipc.ts`. Never the raw message, never a token.
//! - `commands`: the Tauri commands, thin adapters over the above.
//! - `diagnostics`: the support report behind Settings' "Copy diagnostics"
//!   (versions, connections, inbox, recent log problems; never a token).
//!   The log itself: a daily file in the XDG state directory
//!   (`init_tracing`).
//! - `error`: the crate's error, serialized as its message across IPC.
//! - `webkit`: creates the window, with WebKitGTK's memory settings.
//!
//! Configuration lives in `tauri.conf.json` at the repository root; the
//! window's permissions in `src-tauri/capabilities/`.

mod alerts;
mod commands;
mod diagnostics;
mod error;
mod feed;
mod link;
mod profiles;
mod settings;
mod tray;
mod view;
mod webkit;
mod window;

use std::process::ExitCode;

use tauri::{Manager, RunEvent, WindowEvent};
use tracing_subscriber::EnvFilter;

/// Runs the desktop app until it is quit from the tray (closing the window
/// leaves it running in the tray, without the window's webview).
pub fn run() -> ExitCode {
    // Before anything starts a thread or GTK.
    webkit::process_env();
    let settings = settings::Settings::from_env();
    let _log_file = init_tracing();
    let memory = window::Memory::new(settings.tab.clone());

    let app = tauri::Builder::default()
        // First: a second launch hands over to the running instance (which
        // shows its window) and exits here, before starting a hub or
        // opening the inbox.
        .plugin(tauri_plugin_single_instance::init(|app, argv, _cwd| {
            // `riskwatch-desktop --tab inbox` from a launcher or a script
            // reaches the window that is open, or the one it opens.
            match settings::forwarded_tab(&argv) {
                Some(tab) => {
                    tracing::info!(%tab, "a second launch asked for a tab");
                    window::show_tab(app, &tab);
                }
                None => window::show_main(app),
            }
        }))
        // Before the window is built: it restores the size and position
        // the window had, as the window is built.
        .plugin(
            tauri_plugin_window_state::Builder::new()
                .with_state_flags(window::kept_state())
                .build(),
        )
        // Start at login: off until chosen from the tray menu; then it
        // starts in the tray, its window hidden.
        .plugin(tauri_plugin_autostart::init(
            tauri_plugin_autostart::MacosLauncher::LaunchAgent,
            Some(vec!["--minimized"]),
        ))
        .manage(memory)
        .invoke_handler(tauri::generate_handler![
            commands::snapshot,
            commands::window_tab,
            commands::inbox_search,
            commands::inbox_acknowledge,
            commands::inbox_unacknowledge,
            commands::inbox_alert,
            commands::inbox_export,
            commands::diagnostics,
            commands::profiles_list,
            commands::profile_save,
            commands::profile_connect,
            commands::profile_disconnect,
            commands::profile_delete,
            commands::prefs_get,
            commands::prefs_save,
            commands::prefs_save_text,
            commands::prefs_snooze,
            commands::prefs_unmute
        ])
        .on_window_event(|window, event| {
            // Closing the window destroys it (see `RunEvent::ExitRequested`
            // below: the app stays in the tray).
            if let WindowEvent::Destroyed = event
                && window.label() == window::MAIN
            {
                window::closed(window.app_handle());
            }
        })
        // The webview's IPC is served once the event loop runs, after this.
        .setup(move |app| {
            // `--minimized` (start at login): the tray alone; the window,
            // and WebKit's processes with it, only once it is opened.
            if settings.minimized {
                webkit::settled_in_tray(app.handle());
            } else {
                webkit::create_main(app.handle())?;
            }
            app.manage(feed::Feed::new());
            app.manage(link::Links::default());
            let store = match profiles::Profiles::open() {
                Ok(p) => Some(p),
                Err(error) => {
                    tracing::error!(%error, "no profiles: only the demo and --url");
                    None
                }
            };
            app.manage(store);
            app.manage(settings);
            if let Some(committed) = open_alerts(app.handle(), "desktop") {
                window::watch_commits(app.handle().clone(), committed);
            }
            window::start_repeats(app.handle().clone());
            // Before the window loads, so its first snapshot has them.
            let handle = app.handle().clone();
            tauri::async_runtime::block_on(link::connect_all(&handle));
            // After: its first icon is the connections' state, not "offline".
            tray::create(app.handle());
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
    app.run(|app, event| match event {
        // The last window closed: the app lives on in the tray. Quit from
        // the tray exits with a code, which is let through.
        RunEvent::ExitRequested {
            code: None, api, ..
        } => api.prevent_exit(),
        RunEvent::Exit => {
            if let Some(links) = app.try_state::<link::Links>() {
                links.stop_all();
            }
            if let Some(alerts) = app.try_state::<alerts::Alerts>() {
                alerts.close();
            }
        }
        _ => {}
    });
    ExitCode::SUCCESS
}

/// Opens the app's inbox with the notifier and manages them;
/// without an inbox the app runs on, showing but not storing alerts.
fn open_alerts(
    app: &tauri::AppHandle,
    profile: &str,
) -> Option<std::sync::mpsc::Receiver<riskwatch::inbox::Committed>> {
    let Some(path) = riskwatch::inbox::Inbox::app_path(profile) else {
        tracing::error!("no data directory: alerts are not stored");
        return None;
    };
    match alerts::Alerts::open(&path, true) {
        Ok((alerts, committed)) => {
            app.manage(alerts);
            Some(committed)
        }
        Err(error) => {
            tracing::error!(%error, "no inbox: alerts are not stored");
            None
        }
    }
}

/// Logs to stderr; `RUST_LOG` overrides the default of `info`.
/// The log file's name: `riskwatch-desktop.YYYY-MM-DD.log`.
pub const LOG_PREFIX: &str = "riskwatch-desktop";

/// Logs to stderr and to a daily file in the state directory
/// (`riskwatch::logging::log_dir`, a week of files kept), both without
/// the secret-printing targets. The guard flushes the file when dropped:
/// keep it for the app's life.
fn init_tracing() -> Option<tracing_appender::non_blocking::WorkerGuard> {
    // A function, not a closure: each layer's filter is for its own
    // subscriber type.
    fn filter<S>() -> impl tracing_subscriber::layer::Filter<S> + Send + Sync + 'static
    where
        S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
    {
        riskwatch::logging::without_secrets(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
    }
    let file = riskwatch::logging::log_dir().and_then(|dir| {
        tracing_appender::rolling::Builder::new()
            .rotation(tracing_appender::rolling::Rotation::DAILY)
            .filename_prefix(LOG_PREFIX)
            .filename_suffix("log")
            .max_log_files(7)
            .build(&dir)
            .map_err(|error| eprintln!("riskwatch: no log file in {}: {error}", dir.display()))
            .ok()
    });
    let (writer, guard) = match file {
        Some(appender) => {
            let (w, g) = tracing_appender::non_blocking(appender);
            (Some(w), Some(g))
        }
        None => (None, None),
    };
    use tracing_subscriber::prelude::*;
    let _ = tracing_subscriber::registry()
        .with(
            tracing_subscriber::fmt::layer()
                .with_writer(std::io::stderr)
                .with_filter(filter()),
        )
        .with(writer.map(|w| {
            tracing_subscriber::fmt::layer()
                .with_ansi(false)
                .with_writer(w)
                .with_filter(filter())
        }))
        .try_init();
    guard
}
