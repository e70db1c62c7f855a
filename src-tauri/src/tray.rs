//! The tray: an icon whose variant shows the link state (live,
//! reconnecting, offline) and unacknowledged critical alerts together, so
//! a dead link is never hidden behind a red icon; a tooltip with the state,
//! the counts, the pause and the last history gap; and a menu headed by a
//! status line with the same (Linux's AppIndicator shows no tooltip, so
//! there the menu is where they are read), then Open, Pause notifications
//! (a check item: checked while paused; checking it pauses for an hour),
//! Pause until tomorrow (emergencies are shown through either), Start at
//! login (tauri-plugin-autostart; off by default), Quit. The variant,
//! tooltip and status line are pure functions ([`Variant::of`],
//! [`tooltip`], [`status_line`]) so tests check them without a tray.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use chrono::{DateTime, Duration, Local, NaiveTime, TimeZone, Utc};
use riskwatch::ConnState;
use tauri::image::Image;
use tauri::menu::{CheckMenuItem, Menu, MenuEvent, MenuItem, PredefinedMenuItem};
use tauri::tray::TrayIconBuilder;
use tauri::{AppHandle, Listener, Manager, Wry};
use tauri_plugin_autostart::ManagerExt;

use crate::alerts::Alerts;
use crate::feed::Feed;
use crate::view::{InboxCounts, LinkState};
use crate::window::{self, EVENT_CONN_STATE, EVENT_INBOX};

const TRAY_ID: &str = "main";

/// Which icon the tray shows: the link state, and whether critical or
/// emergency alerts wait unacknowledged. Both are always visible: the
/// critical icons carry the link state as a badge.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Variant {
    Live,
    Reconnecting,
    Offline,
    /// Unacknowledged critical or emergency alerts, link live.
    Critical,
    /// Unacknowledged critical alerts while the link is reconnecting.
    CriticalReconnecting,
    /// Unacknowledged critical alerts while the link is down.
    CriticalOffline,
}

impl Variant {
    pub fn of(state: &LinkState, counts: &InboxCounts) -> Variant {
        let link = match state {
            LinkState::Client(ConnState::Connected) => Variant::Live,
            LinkState::Client(
                ConnState::Connecting | ConnState::Reconnecting { .. } | ConnState::Polling { .. },
            ) => Variant::Reconnecting,
            _ => Variant::Offline,
        };
        match (counts.critical > 0, link) {
            (false, link) => link,
            (true, Variant::Live) => Variant::Critical,
            (true, Variant::Reconnecting) => Variant::CriticalReconnecting,
            (true, _) => Variant::CriticalOffline,
        }
    }

    fn image(self) -> Option<Image<'static>> {
        let bytes: &'static [u8] = match self {
            Variant::Live => include_bytes!("../../icons/tray-live.png"),
            Variant::Reconnecting => include_bytes!("../../icons/tray-reconnecting.png"),
            Variant::Offline => include_bytes!("../../icons/tray-offline.png"),
            Variant::Critical => include_bytes!("../../icons/tray-critical.png"),
            Variant::CriticalReconnecting => {
                include_bytes!("../../icons/tray-critical-reconnecting.png")
            }
            Variant::CriticalOffline => include_bytes!("../../icons/tray-critical-offline.png"),
        };
        Image::from_bytes(bytes)
            .map_err(|error| tracing::warn!(%error, "tray icon"))
            .ok()
    }

    fn text(self) -> &'static str {
        match self {
            Variant::Live => "live",
            Variant::Reconnecting => "reconnecting",
            Variant::Offline => "offline",
            Variant::Critical => "unacknowledged critical alerts",
            Variant::CriticalReconnecting => "reconnecting, with unacknowledged critical alerts",
            Variant::CriticalOffline => "offline, with unacknowledged critical alerts",
        }
    }

    /// The link state alone, for the tooltip's first line.
    fn link_text(self) -> &'static str {
        match self {
            Variant::Live | Variant::Critical => "live",
            Variant::Reconnecting | Variant::CriticalReconnecting => "reconnecting",
            Variant::Offline | Variant::CriticalOffline => "offline",
        }
    }
}

/// The tooltip: link state, counts, the pause and the last history gap.
pub fn tooltip(variant: Variant, counts: &InboxCounts) -> String {
    let unread = if counts.unread >= InboxCounts::UNREAD_CAP {
        format!("{}+", InboxCounts::UNREAD_CAP)
    } else {
        counts.unread.to_string()
    };
    let mut text = format!(
        "riskwatch — {}\n{} critical unacknowledged · {} unread",
        variant.link_text(),
        counts.critical,
        unread
    );
    if let Some(until) = counts.paused_until {
        let local = until.with_timezone(&Local);
        text.push_str(&format!(
            "\nNotifications paused until {} (emergencies still shown)",
            local.format("%a %H:%M")
        ));
    }
    if let Some(gap) = &counts.gap {
        text.push('\n');
        text.push_str(gap);
    }
    text
}

/// The menu's first line: the link state, the unacknowledged critical
/// alerts and the pause, short enough for a menu.
pub fn status_line(variant: Variant, counts: &InboxCounts) -> String {
    let mut line = match variant {
        Variant::Live | Variant::Critical => "Live",
        Variant::Reconnecting | Variant::CriticalReconnecting => "Reconnecting",
        Variant::Offline | Variant::CriticalOffline => "Offline",
    }
    .to_owned();
    line.push_str(&match counts.critical {
        0 => " · no critical alerts waiting".to_owned(),
        1 => " · 1 critical unacknowledged".to_owned(),
        n => format!(" · {n} critical unacknowledged"),
    });
    if let Some(until) = counts.paused_until {
        let local = until.with_timezone(&Local);
        line.push_str(&format!(" · paused until {}", local.format("%a %H:%M")));
    }
    line
}

/// The next local midnight after `now` ("until tomorrow").
pub fn tomorrow(now: DateTime<Utc>) -> DateTime<Utc> {
    let date = now.with_timezone(&Local).date_naive() + Duration::days(1);
    Local
        .from_local_datetime(&date.and_time(NaiveTime::MIN))
        .earliest()
        .map(|t| t.with_timezone(&Utc))
        .unwrap_or(now + Duration::hours(24))
}

/// The last reading applied (its number, variant and tooltip), so the icon
/// is only replaced on a real change and never by an older reading.
#[derive(Debug, Default)]
struct Shown(Mutex<Option<(u64, Reading)>>);

/// The menu items that follow the state: the status line and Pause.
struct LiveItems {
    status: MenuItem<Wry>,
    pause: CheckMenuItem<Wry>,
}

/// Builds the tray. Errors are logged: the app works without one.
pub fn create(app: &AppHandle) {
    if let Err(error) = build(app) {
        tracing::warn!(%error, "no tray icon");
    }
    app.manage(Shown::default());
    // The tray shows what the window is told: it refreshes on the same
    // events instead of being called by the modules that send them.
    for name in [EVENT_INBOX, EVENT_CONN_STATE] {
        let handle = app.clone();
        app.listen_any(name, move |_| refresh(&handle));
    }
    refresh(app);
    // The first counts, read by the inbox's thread, not this (the main)
    // one; the refresh follows them.
    window::inbox(app);
}

fn build(app: &AppHandle) -> tauri::Result<()> {
    // Not clickable: it only says how things are.
    let status = MenuItem::with_id(app, "status", "riskwatch — starting", false, None::<&str>)?;
    let open = MenuItem::with_id(app, "open", "Open", true, None::<&str>)?;
    let pause = CheckMenuItem::with_id(
        app,
        "pause",
        "Pause notifications for 1 hour (emergencies still shown)",
        true,
        false,
        None::<&str>,
    )?;
    let day = MenuItem::with_id(
        app,
        "pause-day",
        "Pause notifications until tomorrow",
        true,
        None::<&str>,
    )?;
    let autostart_on = app.autolaunch().is_enabled().unwrap_or(false);
    let autostart = CheckMenuItem::with_id(
        app,
        "autostart",
        "Start at login",
        true,
        autostart_on,
        None::<&str>,
    )?;
    let quit = MenuItem::with_id(app, "quit", "Quit", true, None::<&str>)?;
    let sep = PredefinedMenuItem::separator(app)?;
    let sep2 = PredefinedMenuItem::separator(app)?;
    let sep3 = PredefinedMenuItem::separator(app)?;
    let sep4 = PredefinedMenuItem::separator(app)?;
    let menu = Menu::with_items(
        app,
        &[
            &status, &sep4, &open, &sep, &pause, &day, &sep2, &autostart, &sep3, &quit,
        ],
    )?;
    app.manage(AutostartItem(autostart));
    app.manage(LiveItems { status, pause });
    let mut builder = TrayIconBuilder::with_id(TRAY_ID)
        .tooltip("riskwatch")
        .menu(&menu)
        .on_menu_event(on_menu);
    if let Some(icon) = Variant::Reconnecting.image() {
        builder = builder.icon(icon);
    }
    builder.build(app)?;
    Ok(())
}

fn on_menu(app: &AppHandle, event: MenuEvent) {
    let alerts = app.try_state::<Alerts>();
    let now = Utc::now();
    match event.id.as_ref() {
        "open" => window::show_main(app),
        // The item has toggled itself; what counts is the pause, and the
        // refresh that follows sets the check from it.
        "pause" => {
            let paused = alerts.as_ref().is_some_and(|a| a.paused(now));
            let until = (!paused).then(|| now + Duration::hours(1));
            alerts.iter().for_each(|a| a.pause_until(until));
        }
        "pause-day" => alerts
            .iter()
            .for_each(|a| a.pause_until(Some(tomorrow(now)))),
        "autostart" => toggle_autostart(app),
        "quit" => app.exit(0),
        _ => return,
    }
    // The new pause reaches the window, and this tray through its
    // listener.
    window::inbox(app);
}

/// The tray's "Start at login" item, kept to show the real state.
struct AutostartItem(CheckMenuItem<Wry>);

/// Turns start at login on or off, then shows what the system now says.
fn toggle_autostart(app: &AppHandle) {
    let launcher = app.autolaunch();
    let on = launcher.is_enabled().unwrap_or(false);
    let result = if on {
        launcher.disable()
    } else {
        launcher.enable()
    };
    if let Err(error) = result {
        tracing::warn!(%error, "cannot change start at login");
    }
    let now = launcher.is_enabled().unwrap_or(false);
    tracing::info!(enabled = now, "start at login");
    if let Some(item) = app.try_state::<AutostartItem>() {
        let _ = item.0.set_checked(now);
    }
}

/// Brings the icon and tooltip up to date with the feed and the inbox.
///
/// Called from any thread. The state is read here; the icon is set on the
/// main thread, where the tray lives: setting it from another thread waits
/// for the main thread, and a caller holding a lock the main thread wants
/// (as `refresh` itself did with [`Shown`] while the main thread created the
/// tray) would never return. Each reading carries a sequence number, so a
/// stale one that reaches the main thread late is dropped.
pub fn refresh(app: &AppHandle) {
    if app.tray_by_id(TRAY_ID).is_none() {
        return;
    }
    let Some(state) = app.try_state::<Feed>().map(|f| f.state()) else {
        return;
    };
    // The counts the window was last sent (`window::last_counts`), not a
    // second count of the inbox; a pause that has run out since is over.
    let mut counts = window::last_counts(app);
    counts.paused_until = counts.paused_until.filter(|t| Utc::now() < *t);
    let variant = Variant::of(&state, &counts);
    let reading = Reading {
        variant,
        tooltip: tooltip(variant, &counts),
        status: status_line(variant, &counts),
        paused: counts.paused_until.is_some(),
    };
    static READINGS: AtomicU64 = AtomicU64::new(0);
    let seq = READINGS.fetch_add(1, Ordering::Relaxed) + 1;
    let handle = app.clone();
    if let Err(error) = app.run_on_main_thread(move || apply(&handle, seq, reading)) {
        tracing::warn!(%error, "tray not updated");
    }
}

/// What the tray shows, read at one moment.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Reading {
    variant: Variant,
    tooltip: String,
    status: String,
    paused: bool,
}

/// On the main thread: sets what changed since the last reading applied.
fn apply(app: &AppHandle, seq: u64, now: Reading) {
    let Some(tray) = app.tray_by_id(TRAY_ID) else {
        return;
    };
    let Some(shown) = app.try_state::<Shown>() else {
        return;
    };
    let Ok(mut last) = shown.0.lock() else {
        return;
    };
    let before = match &*last {
        Some((s, _)) if *s > seq => return,
        Some((_, r)) => Some(r.clone()),
        None => None,
    };
    let b = before.as_ref();
    if b.is_none_or(|b| b.variant != now.variant)
        && let Some(icon) = now.variant.image()
    {
        match tray.set_icon(Some(icon)) {
            Ok(()) => tracing::info!(tray = now.variant.text(), "tray icon"),
            Err(error) => tracing::warn!(%error, "tray icon"),
        }
    }
    if b.is_none_or(|b| b.tooltip != now.tooltip) {
        let _ = tray.set_tooltip(Some(&now.tooltip));
    }
    if let Some(items) = app.try_state::<LiveItems>() {
        if b.is_none_or(|b| b.status != now.status) {
            match items.status.set_text(&now.status) {
                Ok(()) => tracing::info!(status = %now.status, "tray status"),
                Err(error) => tracing::warn!(%error, "tray status"),
            }
        }
        // Always: a click toggles the item itself, whatever the pause.
        let _ = items.pause.set_checked(now.paused);
    }
    *last = Some((seq, now));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn critical_wins_then_the_connection_decides() {
        let mut c = InboxCounts::default();
        let live = LinkState::Client(ConnState::Connected);
        assert_eq!(Variant::of(&live, &c), Variant::Live);
        let rec = LinkState::Client(ConnState::Reconnecting {
            attempt: 1,
            retry_in_ms: 500,
            error: "refused".into(),
        });
        assert_eq!(Variant::of(&rec, &c), Variant::Reconnecting);
        let off = LinkState::Offline { error: "x".into() };
        assert_eq!(Variant::of(&off, &c), Variant::Offline);
        c.critical = 2;
        assert_eq!(Variant::of(&live, &c), Variant::Critical);
        // A dead link is never hidden behind the red icon.
        assert_eq!(Variant::of(&rec, &c), Variant::CriticalReconnecting);
        assert_eq!(Variant::of(&off, &c), Variant::CriticalOffline);
        let t = tooltip(Variant::of(&off, &c), &c);
        assert!(t.starts_with("riskwatch — offline\n2 critical"), "{t}");
        for v in [
            Variant::Live,
            Variant::Reconnecting,
            Variant::Offline,
            Variant::Critical,
            Variant::CriticalReconnecting,
            Variant::CriticalOffline,
        ] {
            assert!(v.image().is_some(), "{v:?}");
        }
    }

    #[test]
    fn tooltip_has_counts_and_caps_unread() {
        let c = InboxCounts {
            total: 5000,
            unread: InboxCounts::UNREAD_CAP,
            critical: 3,
            paused_until: Some(Utc::now() + Duration::hours(1)),
            gap: Some(
                "Events on sessions:demo between 14:02 and 14:09 could not be recovered".into(),
            ),
        };
        let t = tooltip(Variant::Critical, &c);
        assert!(t.contains("3 critical unacknowledged"), "{t}");
        assert!(t.contains("999+ unread"), "{t}");
        assert!(t.contains("(emergencies still shown)"), "{t}");
        assert!(
            t.ends_with("between 14:02 and 14:09 could not be recovered"),
            "{t}"
        );
    }

    /// The menu's status line, what Linux users read instead of the
    /// tooltip: link, critical count, pause.
    #[test]
    fn the_status_line_says_link_critical_and_pause() {
        let mut c = InboxCounts::default();
        assert_eq!(
            status_line(Variant::Live, &c),
            "Live · no critical alerts waiting"
        );
        c.critical = 1;
        assert_eq!(
            status_line(Variant::Critical, &c),
            "Live · 1 critical unacknowledged"
        );
        c.critical = 3;
        let until = Utc::now() + Duration::hours(1);
        c.paused_until = Some(until);
        let line = status_line(Variant::CriticalOffline, &c);
        let hhmm = until.with_timezone(&Local).format("%H:%M").to_string();
        assert!(
            line.starts_with("Offline · 3 critical unacknowledged · paused until "),
            "{line}"
        );
        assert!(line.ends_with(&hhmm), "{line}");
        let line = status_line(Variant::Reconnecting, &InboxCounts::default());
        assert!(line.starts_with("Reconnecting"), "{line}");
    }

    #[test]
    fn tomorrow_is_later_and_within_a_day() {
        let now = Utc::now();
        let t = tomorrow(now);
        assert!(t > now && t <= now + Duration::hours(25), "{t}");
    }
}
