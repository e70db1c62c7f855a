//! What the app tells the window, in one file: the Tauri events the
//! webview (and the tray, which listens to the same events) receives —
//! connection state, the connections, each new event, inbox counts — and
//! the window itself: showing it (creating it again after it was closed),
//! what a new window opens on ([`Memory`]), and the notifications whose
//! Open (or a click on the body) shows it on their alert in the inbox and
//! whose Acknowledge changes the inbox.
//!
//! Closing the window destroys it, webview and all, so the app idles in the
//! tray without WebKit's processes; it is built again when it is next
//! shown, and opens on the tab it was on, with the state the snapshot
//! gives it (`commands::snapshot`).
//!
//! Everything that changes what the user sees ends here, so the modules
//! that change it (`link`, `commands`, `tray`'s menu) call down into this
//! file and never into each other: the tray refreshes itself on
//! [`EVENT_INBOX`] and [`EVENT_CONN_STATE`] rather than being called.

use std::sync::{Mutex, mpsc};
use std::time::{Duration, Instant};

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

/// The main window's label (tauri.conf.json).
pub const MAIN: &str = "main";

/// What the window's size and position keep (tauri-plugin-window-state):
/// everything but whether it is shown, which `--minimized` and the tray
/// decide.
pub fn kept_state() -> tauri_plugin_window_state::StateFlags {
    tauri_plugin_window_state::StateFlags::all() - tauri_plugin_window_state::StateFlags::VISIBLE
}

/// How long a notification's Open waits for a window that is being built
/// to take it (see [`Memory::take_open`]).
const OPEN_WAITS: Duration = Duration::from_secs(30);

/// What a window opens on: the tab it last showed (at first `--tab`), and
/// the alert a notification's Open asked for, for a window being built.
/// Managed state.
#[derive(Debug, Default)]
pub struct Memory {
    tab: Mutex<Option<String>>,
    open: Mutex<Option<(i64, Instant)>>,
}

impl Memory {
    pub fn new(tab: Option<String>) -> Self {
        Memory {
            tab: Mutex::new(tab),
            open: Mutex::default(),
        }
    }

    /// The tab a new window opens on.
    pub fn tab(&self) -> Option<String> {
        self.tab.lock().ok().and_then(|t| t.clone())
    }

    pub fn set_tab(&self, tab: &str) {
        if let Ok(mut t) = self.tab.lock() {
            *t = Some(tab.to_owned());
        }
    }

    fn set_open(&self, id: i64) {
        if let Ok(mut o) = self.open.lock() {
            *o = Some((id, Instant::now()));
        }
    }

    /// The alert a notification's Open asked for in the last
    /// [`OPEN_WAITS`], once: a window that is already up took it from the
    /// event instead, and one built much later opens where it was.
    pub fn take_open(&self) -> Option<i64> {
        self.take_open_at(Instant::now())
    }

    fn take_open_at(&self, now: Instant) -> Option<i64> {
        let (id, asked) = self.open.lock().ok()?.take()?;
        (now.saturating_duration_since(asked) < OPEN_WAITS).then_some(id)
    }
}

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
    if let Some(memory) = app.try_state::<Memory>() {
        memory.set_tab("inbox");
        if let Some(id) = id {
            memory.set_open(id);
        }
    }
    show_main(app);
    emit(app, EVENT_OPEN_ALERT, &id);
}

/// Shows `tab` (a second launch's `--tab`): in the window if it is up,
/// else in the one [`show_main`] builds.
pub fn show_tab(app: &AppHandle, tab: &str) {
    if let Some(memory) = app.try_state::<Memory>() {
        memory.set_tab(tab);
    }
    show_main(app);
    emit(app, EVENT_SELECT_TAB, &tab);
}

/// Shows, unminimizes and focuses the main window, building it again if it
/// was closed. On the main thread, so two callers cannot both build it.
pub fn show_main(app: &AppHandle) {
    let handle = app.clone();
    let shown = app.run_on_main_thread(move || {
        if let Some(w) = handle.get_webview_window(MAIN) {
            let _ = w.show();
            let _ = w.unminimize();
            let _ = w.set_focus();
            return;
        }
        let started = Instant::now();
        match crate::webkit::create_main(&handle) {
            Ok(w) => {
                let _ = w.set_focus();
                tracing::info!(took = ?started.elapsed(), "window opened again");
            }
            Err(error) => tracing::error!(%error, "cannot open the window"),
        }
    });
    if let Err(error) = shown {
        tracing::warn!(%error, "cannot show the window");
    }
}

/// The main window was closed and is gone, its webview with it: its size
/// and position are saved now (not only at exit, which a logout or a kill
/// may never reach), and WebKit's processes are let go
/// (`webkit::released`).
pub fn closed(app: &AppHandle) {
    use tauri_plugin_window_state::AppHandleExt;
    if let Err(error) = app.save_window_state(kept_state()) {
        tracing::warn!(%error, "cannot save the window's size and position");
    }
    tracing::info!("window closed: the app stays in the tray");
    crate::webkit::released(app);
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_window_opens_on_the_tab_last_shown() {
        let memory = Memory::new(Some("hr".into()));
        assert_eq!(memory.tab().as_deref(), Some("hr"), "--tab at first");
        memory.set_tab("compliance");
        assert_eq!(memory.tab().as_deref(), Some("compliance"));
        assert_eq!(Memory::default().tab(), None, "no --tab: the default");
    }

    #[test]
    fn an_alert_to_open_is_taken_once_and_only_while_fresh() {
        let memory = Memory::default();
        assert_eq!(memory.take_open(), None);
        memory.set_open(7);
        assert_eq!(memory.take_open(), Some(7));
        assert_eq!(memory.take_open(), None, "taken once");

        memory.set_open(8);
        let later = Instant::now() + OPEN_WAITS + Duration::from_secs(1);
        assert_eq!(
            memory.take_open_at(later),
            None,
            "a window built long after the notification's Open opens where it was"
        );
        assert_eq!(memory.take_open(), None, "and the stale one is gone");
    }
}
