//! OS notifications for the engine's [`Notification`]s, through notify-rust
//! (the freedesktop notification service over the D-Bus session bus on
//! Linux and the BSDs; the platform service elsewhere).
//!
//! - Critical and emergency alerts get urgency *critical*; emergencies never
//!   expire (timeout *never*, resident). Warnings are *normal*, info *low*.
//! - Title and body come from the engine (which takes them from
//!   `Event::describe`); the app name is `riskwatch`, the icon a themed
//!   icon per severity unless one is configured.
//! - The actions *Acknowledge* (`acknowledge`) and *Open* (`open`) are
//!   offered when the server lists the `actions` capability, with the
//!   spec's `default` action, which a click on the body invokes, reported
//!   as *Open*.
//! - The category is `x-riskwatch.alert` (`.critical` for critical and
//!   emergency alerts): the spec reserves unprefixed names for its own
//!   list, vendors' go under `x-vendor.`.
//! - A notification with the same key replaces the earlier bubble (the
//!   D-Bus `replaces_id`), so a count update does not stack up bubbles.
//! - The D-Bus call blocks, so [`Notifier::show`] runs it on tokio's
//!   blocking pool with a timeout. With no notification server the first
//!   failure logs one warning (later ones are debug logs until a
//!   notification gets through again) and the caller gets an error value;
//!   nothing here panics or stops the client.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::Semaphore;

use crate::engine::Notification;
use crate::protocol::Severity;

/// Why a notification was not shown. Normal on machines without a desktop.
#[derive(Debug, Clone, thiserror::Error)]
pub enum NotifyError {
    /// No notification server answers (no session bus, nobody owns
    /// `org.freedesktop.Notifications`). Notifications are off until one
    /// appears; everything else goes on.
    #[error("no notification server: {0}")]
    Unavailable(String),
    /// The server did not answer in time.
    #[error("the notification server did not answer within {0:?}")]
    Timeout(Duration),
    /// The server answered with an error.
    #[error("notification failed: {0}")]
    Failed(String),
}

/// Settings. Defaults in each field's doc.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct NotifierConfig {
    /// Default `riskwatch`.
    pub app_name: String,
    /// An icon name or path for every notification. Default: the themed
    /// `dialog-error` (critical, emergency), `dialog-warning`,
    /// `dialog-information`.
    pub icon: Option<String>,
    /// How long [`Notifier::show`] waits for the server. Default 5 s.
    pub timeout: Duration,
    /// Offer Acknowledge / Open when the server supports actions.
    /// Default true.
    pub actions: bool,
}

impl Default for NotifierConfig {
    fn default() -> Self {
        NotifierConfig {
            app_name: "riskwatch".into(),
            icon: None,
            timeout: Duration::from_secs(5),
            actions: true,
        }
    }
}

impl NotifierConfig {
    pub fn app_name(mut self, s: impl Into<String>) -> Self {
        self.app_name = s.into();
        self
    }
    pub fn icon(mut self, s: Option<String>) -> Self {
        self.icon = s;
        self
    }
    pub fn timeout(mut self, d: Duration) -> Self {
        self.timeout = d;
        self
    }
    pub fn actions(mut self, on: bool) -> Self {
        self.actions = on;
        self
    }
}

/// The action ids offered on a notification.
pub mod action {
    pub const ACKNOWLEDGE: &str = "acknowledge";
    pub const OPEN: &str = "open";
    /// The freedesktop spec's action for a click on the notification's
    /// body; [`super::Shown::wait_for_action`] reports it as [`OPEN`].
    pub const DEFAULT: &str = "default";
}

/// A shown notification.
#[derive(Debug)]
pub struct Shown {
    /// The server's id for it.
    pub id: u32,
    /// Whether Acknowledge / Open were offered.
    pub actions: bool,
    #[cfg(all(unix, not(target_os = "macos")))]
    handle: Option<notify_rust::NotificationHandle>,
}

impl Shown {
    /// Blocks until the user picks an action or the notification closes;
    /// returns the action id (`acknowledge`, `open`; a click on the body
    /// is `open`), or `None` when it was closed or dismissed. Call it on a
    /// blocking thread.
    pub fn wait_for_action(self) -> Option<String> {
        #[cfg(all(unix, not(target_os = "macos")))]
        if let Some(h) = self.handle {
            let mut picked = None;
            h.wait_for_action(|a| match a {
                "__closed" => {}
                action::DEFAULT => picked = Some(action::OPEN.to_owned()),
                a => picked = Some(a.to_owned()),
            });
            return picked;
        }
        None
    }
}

#[derive(Debug)]
struct Inner {
    cfg: NotifierConfig,
    /// Notification key → server id, for `replaces_id`. Bounded.
    ids: Mutex<HashMap<String, u32>>,
    /// The server's capabilities, once known.
    caps: Mutex<Option<Vec<String>>>,
    /// A warning about a missing server was logged and nothing got through
    /// since.
    warned: AtomicBool,
    /// Bounds the notifications waiting for an action (each holds a
    /// blocking thread) to [`Notifier::MAX_WAITING`].
    waiting: Arc<Semaphore>,
}

/// Shows notifications. Cheap to clone; clones share state.
#[derive(Debug, Clone)]
pub struct Notifier {
    inner: Arc<Inner>,
}

const MAX_IDS: usize = 1024;

impl Default for Notifier {
    fn default() -> Self {
        Notifier::new(NotifierConfig::default())
    }
}

impl Notifier {
    pub fn new(cfg: NotifierConfig) -> Notifier {
        Notifier {
            inner: Arc::new(Inner {
                cfg,
                ids: Mutex::new(HashMap::new()),
                caps: Mutex::new(None),
                warned: AtomicBool::new(false),
                waiting: Arc::new(Semaphore::new(Notifier::MAX_WAITING)),
            }),
        }
    }

    /// Most notifications waiting for an action at once.
    pub const MAX_WAITING: usize = 16;

    /// Shows `n`, then waits on a blocking thread for the action the user
    /// picks (`acknowledge`, `open`). `None` when it could not be shown (the
    /// notifier logged why), offered no actions, was closed without one, or
    /// [`Notifier::MAX_WAITING`] notifications already wait.
    pub async fn show_and_wait(&self, n: Notification) -> Option<String> {
        let shown = self.show(n).await.ok()?;
        if !shown.actions {
            return None;
        }
        let permit = Arc::clone(&self.inner.waiting).try_acquire_owned().ok()?;
        tokio::task::spawn_blocking(move || {
            let picked = shown.wait_for_action();
            drop(permit);
            picked
        })
        .await
        .ok()
        .flatten()
    }

    /// Shows `n` from async code: the D-Bus call runs on the blocking pool,
    /// bounded by the configured timeout.
    pub async fn show(&self, n: Notification) -> Result<Shown, NotifyError> {
        let this = self.clone();
        let timeout = self.inner.cfg.timeout;
        let call = tokio::task::spawn_blocking(move || this.show_blocking(&n));
        match tokio::time::timeout(timeout, call).await {
            Ok(Ok(r)) => r,
            Ok(Err(join)) => Err(self.failed(NotifyError::Failed(join.to_string()))),
            // The blocking call finishes (or times out in D-Bus) on its own.
            Err(_) => Err(self.failed(NotifyError::Timeout(timeout))),
        }
    }

    /// Shows `n`, blocking on the D-Bus round trips.
    pub fn show_blocking(&self, n: &Notification) -> Result<Shown, NotifyError> {
        let (actions, markup) = match self.capabilities() {
            Ok(caps) => (
                self.inner.cfg.actions && caps.iter().any(|c| c == "actions"),
                caps.iter().any(|c| c == "body-markup"),
            ),
            Err(e) => return Err(self.failed(e)),
        };
        let mut note = self.build(n, actions, markup);
        let previous = self.ids().get(&n.key).copied();
        if let Some(id) = previous {
            note.id(id);
        }
        self.send(&note, n, actions)
    }

    #[cfg(all(unix, not(target_os = "macos")))]
    fn send(
        &self,
        note: &notify_rust::Notification,
        n: &Notification,
        actions: bool,
    ) -> Result<Shown, NotifyError> {
        match note.show() {
            Ok(handle) => {
                let id = handle.id();
                self.remember(&n.key, id);
                self.inner.warned.store(false, Ordering::Relaxed);
                Ok(Shown {
                    id,
                    actions,
                    handle: Some(handle),
                })
            }
            Err(e) => {
                // The server may have gone away since its capabilities
                // were read: ask again next time.
                *self.caps() = None;
                Err(self.failed(classify(&e.to_string())))
            }
        }
    }

    #[cfg(not(all(unix, not(target_os = "macos"))))]
    fn send(
        &self,
        note: &notify_rust::Notification,
        _n: &Notification,
        actions: bool,
    ) -> Result<Shown, NotifyError> {
        note.show()
            .map(|_| Shown { id: 0, actions })
            .map_err(|e| self.failed(NotifyError::Failed(e.to_string())))
    }

    fn ids(&self) -> std::sync::MutexGuard<'_, HashMap<String, u32>> {
        self.inner.ids.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn caps(&self) -> std::sync::MutexGuard<'_, Option<Vec<String>>> {
        self.inner.caps.lock().unwrap_or_else(|p| p.into_inner())
    }

    #[cfg_attr(not(all(unix, not(target_os = "macos"))), allow(dead_code))]
    fn remember(&self, key: &str, id: u32) {
        let mut ids = self.ids();
        if ids.len() >= MAX_IDS && !ids.contains_key(key) {
            ids.clear();
        }
        ids.insert(key.to_owned(), id);
    }

    /// The server's capabilities, asked once and remembered.
    fn capabilities(&self) -> Result<Vec<String>, NotifyError> {
        if let Some(c) = self.caps().as_ref() {
            return Ok(c.clone());
        }
        let caps = server_capabilities()?;
        *self.caps() = Some(caps.clone());
        Ok(caps)
    }

    /// Logs a failure: one warning per outage, debug afterwards.
    fn failed(&self, e: NotifyError) -> NotifyError {
        if self.inner.warned.swap(true, Ordering::Relaxed) {
            tracing::debug!(error = %e, "notification not shown");
        } else {
            tracing::warn!(error = %e, "notifications are not shown; riskwatch goes on without them");
        }
        e
    }

    /// The notify-rust notification for `n` (pure; used by tests).
    /// `markup`: the server interprets markup in bodies, so server text is
    /// escaped to stay text.
    pub fn build(
        &self,
        n: &Notification,
        actions: bool,
        markup: bool,
    ) -> notify_rust::Notification {
        use notify_rust::{Hint, Timeout};
        let cfg = &self.inner.cfg;
        let mut note = notify_rust::Notification::new();
        let icon = cfg.icon.clone().unwrap_or_else(|| {
            match n.severity {
                Severity::Critical | Severity::Emergency => "dialog-error",
                Severity::Warning => "dialog-warning",
                Severity::Info => "dialog-information",
            }
            .to_owned()
        });
        note.appname(&cfg.app_name)
            .summary(&n.title)
            .body(&if markup {
                escape_markup(&n.body)
            } else {
                n.body.clone()
            })
            .icon(&icon);
        hint(&mut note, Hint::DesktopEntry("riskwatch".into()));
        hint(
            &mut note,
            Hint::Category(
                if n.severity >= Severity::Critical {
                    "x-riskwatch.alert.critical"
                } else {
                    "x-riskwatch.alert"
                }
                .into(),
            ),
        );
        #[cfg(all(unix, not(target_os = "macos")))]
        {
            use notify_rust::Urgency;
            note.urgency(match n.severity {
                Severity::Critical | Severity::Emergency => Urgency::Critical,
                Severity::Warning => Urgency::Normal,
                Severity::Info => Urgency::Low,
            });
        }
        if n.severity == Severity::Emergency {
            note.timeout(Timeout::Never);
            hint(&mut note, Hint::Resident(true));
        }
        if n.silent {
            hint(&mut note, Hint::SuppressSound(true));
        } else if let Some(s) = n.sound.as_deref() {
            if s.contains('/') {
                hint(&mut note, Hint::SoundFile(s.to_owned()));
            } else {
                sound_name(&mut note, s);
            }
        }
        if actions {
            // First: servers that draw actions as buttons leave `default`
            // out and run it on a click on the body.
            note.action(action::DEFAULT, "Open");
            if n.alert.is_some() {
                note.action(action::ACKNOWLEDGE, "Acknowledge");
            }
            note.action(action::OPEN, "Open");
        }
        note
    }
}

/// Adds a hint: hints are the freedesktop notification protocol's; macOS
/// and Windows notifications have none (their urgency, residency and
/// categories are the system's own settings).
#[cfg(all(unix, not(target_os = "macos")))]
fn hint(note: &mut notify_rust::Notification, h: notify_rust::Hint) {
    note.hint(h);
}

#[cfg(not(all(unix, not(target_os = "macos"))))]
fn hint(_note: &mut notify_rust::Notification, _h: notify_rust::Hint) {}

/// A named sound: a hint on freedesktop servers, the system sound of that
/// name on macOS and Windows.
#[cfg(all(unix, not(target_os = "macos")))]
fn sound_name(note: &mut notify_rust::Notification, name: &str) {
    note.hint(notify_rust::Hint::SoundName(name.to_owned()));
}

#[cfg(not(all(unix, not(target_os = "macos"))))]
fn sound_name(note: &mut notify_rust::Notification, name: &str) {
    note.sound_name(name);
}

/// Servers that support `body-markup` interpret `<b>`, `&amp;` …; server
/// text must be shown as text.
fn escape_markup(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(all(unix, not(target_os = "macos")))]
fn server_capabilities() -> Result<Vec<String>, NotifyError> {
    notify_rust::get_capabilities().map_err(|e| NotifyError::Unavailable(e.to_string()))
}

#[cfg(not(all(unix, not(target_os = "macos"))))]
fn server_capabilities() -> Result<Vec<String>, NotifyError> {
    Ok(Vec::new())
}

/// Whether a D-Bus error means "nobody there" rather than "it said no".
#[cfg_attr(not(all(unix, not(target_os = "macos"))), allow(dead_code))]
fn classify(msg: &str) -> NotifyError {
    let absent = [
        "ServiceUnknown",
        "NameHasNoOwner",
        "not provided by any .service files",
        "DBUS_SESSION_BUS_ADDRESS",
        "No such file or directory",
        "Connection refused",
    ];
    if absent.iter().any(|a| msg.contains(a)) {
        NotifyError::Unavailable(msg.to_owned())
    } else {
        NotifyError::Failed(msg.to_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::NotificationKind;

    fn note(sev: Severity) -> Notification {
        let mut d = crate::engine::dedupe::Dedupe::default();
        let origin = || crate::engine::Origin {
            source: Arc::from("s"),
            kind: "t".into(),
            subject: None,
            channel: None,
        };
        match d.offer(
            &crate::engine::dedupe::Alert {
                key: "k",
                group: "g",
                severity: sev,
                origin: &origin,
            },
            || crate::protocol::Description {
                title: "EMERGENCY STOP".into(),
                body: "session S42: <loss> & more".into(),
            },
            chrono::Utc::now(),
        ) {
            crate::engine::dedupe::Offer::Notify(n) => n,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn builds_from_the_engine_notification() {
        let n = note(Severity::Emergency);
        assert_eq!(n.kind, NotificationKind::New);
        let b = Notifier::default().build(&n, true, true);
        assert_eq!(b.summary, "EMERGENCY STOP");
        assert_eq!(b.body, "session S42: &lt;loss&gt; &amp; more");
        assert_eq!(b.appname, "riskwatch");
        assert_eq!(b.icon, "dialog-error");
        assert_eq!(b.timeout, notify_rust::Timeout::Never);
        assert_eq!(
            b.actions,
            vec![
                "default",
                "Open",
                "acknowledge",
                "Acknowledge",
                "open",
                "Open"
            ]
        );
        let b = Notifier::default().build(&note(Severity::Warning), false, false);
        assert_eq!(b.body, "session S42: <loss> & more", "no markup: as is");
        assert!(b.actions.is_empty());
        assert_eq!(b.timeout, notify_rust::Timeout::Default);
    }

    #[test]
    fn errors_are_classified() {
        assert!(matches!(
            classify("org.freedesktop.DBus.Error.ServiceUnknown: The name is not activatable"),
            NotifyError::Unavailable(_)
        ));
        assert!(matches!(classify("InvalidArgs"), NotifyError::Failed(_)));
    }
}
