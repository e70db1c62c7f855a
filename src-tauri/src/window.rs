//! What the app tells the window, in one file: the Tauri events the
//! webview (and the tray, which listens to the same events) receives —
//! connection state, the connections, each new event, inbox counts — and
//! the window itself: showing it, and the notifications whose Open (or a
//! click on the body) shows it on their alert in the inbox and whose
//! Acknowledge changes the inbox.
//!
//! Everything that changes what the user sees ends here, so the modules
//! that change it (`link`, `commands`, `tray`'s menu) call down into this
//! file and never into each other: the tray refreshes itself on
//! [`EVENT_INBOX`] and [`EVENT_CONN_STATE`] rather than being called.

use std::sync::{Mutex, mpsc};
use std::time::Duration;

use riskwatch::engine::Notification;
use riskwatch::inbox::Committed;
use riskwatch::notifier::action;
use serde::Serialize;
use tauri::{AppHandle, Emitter, Manager};

use crate::alerts::Alerts;
use crate::feed::{Changed, Feed};
use crate::view::InboxCounts;

/// Tauri event carrying a `LinkState` (see `ui/src/ipc.ts`) whenever the
/// state changes.
pub const EVENT_CONN_STATE: &str = "conn-state";
/// Tauri event carrying every connection (`LinkView[]`) when one starts,
/// stops or changes state.
pub const EVENT_LINKS: &str = "links";
/// Tauri event carrying one `EventView` per new event.
pub const EVENT_EVENT: &str = "event";
/// Tauri event carrying `InboxCounts` after the inbox changed.
pub const EVENT_INBOX: &str = "inbox";
/// Tauri event carrying the name of the tab a second launch asked for
/// (`--tab`).
pub const EVENT_SELECT_TAB: &str = "select-tab";
/// Tauri event asking the window to show the inbox, on the alert whose
/// id it carries (`null`: the inbox alone), after a notification's Open or
/// a click on its body.
pub const EVENT_OPEN_ALERT: &str = "open-alert";

/// Inbox counts are sent at most this often.
const COUNTS_EVERY: Duration = Duration::from_millis(500);

pub fn emit<T: Serialize + Clone>(app: &AppHandle, name: &str, payload: &T) {
    if let Err(error) = app.emit(name, payload) {
        tracing::warn!(%error, event = name, "cannot send to the window");
    }
}

/// Tells the window (and the tray) what a feed change changed.
pub fn changed(app: &AppHandle, c: Changed) {
    if let Some(state) = &c.state {
        emit(app, EVENT_CONN_STATE, state);
    }
    if c.links {
        emit(app, EVENT_LINKS, &app.state::<Feed>().links());
    }
}

/// Asks for fresh inbox counts ([`EVENT_INBOX`]): they are read and sent
/// by the inbox's own thread ([`watch_commits`]), never by the caller,
/// which may be the main thread (the tray's menu) or the async runtime.
pub fn inbox(app: &AppHandle) {
    if let Some(poke) = app.try_state::<InboxPoke>() {
        let _ = poke.0.send(());
    }
}

/// How [`inbox`] reaches the counting thread. Managed state.
struct InboxPoke(mpsc::Sender<()>);

/// The inbox counts last sent: the tray reads them here rather than
/// counting again. Managed state.
#[derive(Debug, Default)]
struct LastCounts(Mutex<InboxCounts>);

/// The inbox counts last sent (none yet, or no inbox: all zero).
pub fn last_counts(app: &AppHandle) -> InboxCounts {
    app.try_state::<LastCounts>()
        .and_then(|c| c.0.lock().ok().map(|c| c.clone()))
        .unwrap_or_default()
}

/// Reads the counts and sends them to the window and the tray.
fn send_counts(app: &AppHandle) {
    if let Some(alerts) = app.try_state::<Alerts>() {
        match alerts.counts() {
            Ok(counts) => {
                if let Some(last) = app.try_state::<LastCounts>()
                    && let Ok(mut last) = last.0.lock()
                {
                    *last = counts.clone();
                }
                emit(app, EVENT_INBOX, &counts);
            }
            Err(error) => tracing::warn!(%error, "inbox counts"),
        }
    }
}

/// Sends fresh counts after each inbox commit and each [`inbox`] call, at
/// most every [`COUNTS_EVERY`] (counting unread alerts reads rows; see
/// `Alerts::counts`), from one thread, so they arrive in order.
pub fn watch_commits(app: AppHandle, committed: mpsc::Receiver<Committed>) {
    let (poke, poked) = mpsc::channel::<()>();
    app.manage(InboxPoke(poke.clone()));
    app.manage(LastCounts::default());
    let forwarded = std::thread::Builder::new()
        .name("riskwatch-inbox-commits".into())
        .spawn(move || {
            while committed.recv().is_ok() {
                if poke.send(()).is_err() {
                    break;
                }
            }
        });
    let counting = std::thread::Builder::new()
        .name("riskwatch-inbox-counts".into())
        .spawn(move || {
            while poked.recv().is_ok() {
                send_counts(&app);
                std::thread::sleep(COUNTS_EVERY);
                // Coalesce what arrived meanwhile.
                let mut pending = false;
                while poked.try_recv().is_ok() {
                    pending = true;
                }
                if pending {
                    send_counts(&app);
                }
            }
        });
    if let Err(error) = forwarded.and(counting) {
        tracing::warn!(%error, "cannot watch the inbox");
    }
}

/// Shows the window on the inbox, on the newest alert stored under the
/// engine's `key` when there is one (a summary or a gap has none).
fn open_alert(app: &AppHandle, key: Option<&str>) {
    let id = match (key, app.try_state::<Alerts>()) {
        (Some(key), Some(alerts)) => alerts.newest_with_key(key).unwrap_or_else(|error| {
            tracing::warn!(%error, "cannot find the notification's alert");
            None
        }),
        _ => None,
    };
    tracing::info!(?id, "opened from a notification");
    show_main(app);
    emit(app, EVENT_OPEN_ALERT, &id);
}

/// Shows, unminimizes and focuses the main window.
pub fn show_main(app: &AppHandle) {
    if let Some(w) = app.get_webview_window("main") {
        let _ = w.show();
        let _ = w.unminimize();
        let _ = w.set_focus();
    }
}

/// Shows `n` in the background. The bubble's Acknowledge acknowledges the
/// alert (inbox, engine, tray); Open, or a click on its body, shows the
/// window on the alert in the inbox.
pub fn raise(app: &AppHandle, alerts: &Alerts, n: Notification) {
    let app = app.clone();
    let alert = n.alert.clone();
    alerts.raise(n, move |picked| match (picked.as_deref(), alert) {
        (Some(action::ACKNOWLEDGE), Some(key)) => {
            // SQLite: on a blocking thread, not the async runtime's.
            tauri::async_runtime::spawn_blocking(move || {
                if let Some(alerts) = app.try_state::<Alerts>() {
                    match alerts.acknowledge_key(&key) {
                        Ok(n) => tracing::info!(stored = n, "acknowledged from a notification"),
                        Err(error) => {
                            tracing::warn!(%error, "cannot acknowledge from the notification")
                        }
                    }
                }
                inbox(&app);
            });
        }
        (Some(action::OPEN), alert) => {
            tauri::async_runtime::spawn_blocking(move || open_alert(&app, alert.as_deref()));
        }
        _ => {}
    });
}

/// Raises what the engines have due later (`Alerts::run_due`) for the
/// app's lifetime; needs [`Alerts`] managed first.
pub fn start_repeats(app: AppHandle) {
    tauri::async_runtime::spawn(async move {
        if let Some(alerts) = app.try_state::<Alerts>() {
            alerts.run_due(|n| raise(&app, &alerts, n)).await;
        }
    });
}
