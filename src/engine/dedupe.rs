//! Dedupe, burst grouping and repeats: the part of the engine that decides
//! how many notifications a stream of alerts deserves.
//!
//! A pure state machine driven by an explicit `now`: [`Dedupe::offer`] is
//! called for each alert that may notify, [`Dedupe::tick`] periodically (the
//! CLI calls it every second) for what is due without a new event, and
//! [`Dedupe::acknowledge`] when the user acknowledges. Tests drive it with
//! made-up times; nothing here sleeps or reads a clock.
//!
//! - **Same alert within a window** (same key: the event id, or type plus
//!   subject and alert kind): the first notifies at once; repeats within
//!   `window` are counted, and when the window ends one update replaces the
//!   bubble with the count ("… (×4)"). A higher severity notifies at once.
//! - **Bursts**: more than `burst_count` notifications of one severity in one
//!   group (a department, else a channel, else the source) within
//!   `burst_window` become one summary ("12 new warnings in Engineering"),
//!   refreshed at most every `summary_interval` while the burst lasts.
//!   Emergencies are never folded into a summary.
//! - **Repeat**: an alert at or above `repeat_severity` that was notified and
//!   is not acknowledged is notified again every `repeat_interval`, as
//!   Alertmanager's `repeat_interval` does. Alerts folded into a summary are
//!   not repeated one by one.
//!
//! Memory is bounded: quiet alerts and groups are forgotten, and at most
//! `max_alerts` alerts are remembered (the least recently seen go first).

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::protocol::{Description, Severity};

/// Settings. Defaults in each field's doc.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct DedupeConfig {
    /// Default 60 s.
    pub window: Duration,
    /// Default 5: the sixth notification within `burst_window` starts a
    /// summary.
    pub burst_count: u32,
    /// Default 30 s.
    pub burst_window: Duration,
    /// How often a running burst's summary is refreshed. Default 10 s.
    pub summary_interval: Duration,
    /// Zero turns repeats off. Default 4 h.
    pub repeat_interval: Duration,
    /// Default critical.
    pub repeat_severity: Severity,
    /// Default 10,000.
    pub max_alerts: usize,
}

impl Default for DedupeConfig {
    fn default() -> Self {
        DedupeConfig {
            window: Duration::from_secs(60),
            burst_count: 5,
            burst_window: Duration::from_secs(30),
            summary_interval: Duration::from_secs(10),
            repeat_interval: Duration::from_secs(4 * 3600),
            repeat_severity: Severity::Critical,
            max_alerts: 10_000,
        }
    }
}

impl DedupeConfig {
    pub fn window(mut self, d: Duration) -> Self {
        self.window = d;
        self
    }
    pub fn burst(mut self, count: u32, window: Duration) -> Self {
        self.burst_count = count;
        self.burst_window = window;
        self
    }
    pub fn summary_interval(mut self, d: Duration) -> Self {
        self.summary_interval = d;
        self
    }
    pub fn repeat(mut self, interval: Duration, at_least: Severity) -> Self {
        self.repeat_interval = interval;
        self.repeat_severity = at_least;
        self
    }
    pub fn max_alerts(mut self, n: usize) -> Self {
        self.max_alerts = n.max(1);
        self
    }
}

/// Where an alert came from, kept so later notifications (updates, repeats)
/// can still be checked against mutes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Origin {
    pub source: Arc<str>,
    #[serde(rename = "type")]
    pub kind: String,
    pub subject: Option<String>,
    pub channel: Option<String>,
}

/// Why a notification is raised.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum NotificationKind {
    /// The first of an alert (or the first after its window passed).
    New,
    /// The same alert again: the bubble is replaced with the count, or with
    /// a higher severity.
    Update,
    /// Many alerts of one severity in one group.
    Summary,
    /// An unacknowledged alert, again after `repeat_interval`.
    Repeat,
}

/// What to show. The notifier turns it into an OS notification; a
/// notification with the same `key` replaces the earlier one on screen.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[non_exhaustive]
pub struct Notification {
    /// The bubble's identity: the alert key, or `burst:…` for a summary.
    pub key: String,
    pub kind: NotificationKind,
    pub severity: Severity,
    pub title: String,
    pub body: String,
    /// Occurrences this notification stands for.
    pub count: u32,
    /// The alert to acknowledge from this notification (none for a summary).
    pub alert: Option<String>,
    /// Sound to play (set by the engine from the preferences).
    pub sound: Option<String>,
    /// Updates replace a bubble without a sound.
    pub silent: bool,
    #[serde(skip)]
    pub origin: Option<Origin>,
}

impl Notification {
    /// A notification of something the engine did not see (a history gap
    /// the client reported): new, once, acknowledgeable by `key`.
    pub fn standalone(
        key: impl Into<String>,
        severity: Severity,
        title: impl Into<String>,
        body: impl Into<String>,
    ) -> Notification {
        let key = key.into();
        Notification {
            alert: Some(key.clone()),
            key,
            kind: NotificationKind::New,
            severity,
            title: title.into(),
            body: body.into(),
            count: 1,
            sound: None,
            silent: false,
            origin: None,
        }
    }
}

/// An alert offered for notification.
#[derive(Clone, Copy)]
pub struct Alert<'a> {
    /// Same key = same alert.
    pub key: &'a str,
    /// The burst group's name, as shown in a summary ("Engineering").
    pub group: &'a str,
    pub severity: Severity,
    pub origin: &'a dyn Fn() -> Origin,
}

/// What [`Dedupe::offer`] decided.
#[derive(Debug, Clone, PartialEq)]
pub enum Offer {
    Notify(Notification),
    /// The same alert within its window: counted, shown later as an update.
    Duplicate {
        count: u32,
    },
    /// Folded into the group's running summary.
    InBurst {
        group: String,
        count: u32,
    },
}

#[derive(Debug)]
struct AlertState {
    severity: Severity,
    title: String,
    body: String,
    origin: Origin,
    window_start: DateTime<Utc>,
    last_seen: DateTime<Utc>,
    /// Occurrences not shown yet.
    pending: u32,
    /// Occurrences since the state was created.
    count: u32,
    next_repeat: Option<DateTime<Utc>>,
    acked: bool,
}

#[derive(Debug, Default)]
struct GroupState {
    recent: VecDeque<DateTime<Utc>>,
    burst: Option<Burst>,
    latest_title: String,
}

#[derive(Debug)]
struct Burst {
    count: u32,
    shown: u32,
    last_shown: DateTime<Utc>,
}

/// The state machine.
#[derive(Debug, Default)]
pub struct Dedupe {
    cfg: DedupeConfig,
    alerts: HashMap<String, AlertState>,
    groups: HashMap<(Severity, String), GroupState>,
}

fn add(t: DateTime<Utc>, d: Duration) -> DateTime<Utc> {
    chrono::Duration::from_std(d)
        .ok()
        .and_then(|d| t.checked_add_signed(d))
        .unwrap_or(DateTime::<Utc>::MAX_UTC)
}

fn plural(s: Severity, n: u32) -> &'static str {
    match (s, n == 1) {
        (Severity::Info, true) => "event",
        (Severity::Info, false) => "events",
        (Severity::Warning, true) => "warning",
        (Severity::Warning, false) => "warnings",
        (Severity::Critical, true) => "critical alert",
        (Severity::Critical, false) => "critical alerts",
        (Severity::Emergency, true) => "emergency",
        (Severity::Emergency, false) => "emergencies",
    }
}

fn counted(title: &str, count: u32) -> String {
    if count > 1 {
        format!("{title} (×{count})")
    } else {
        title.to_owned()
    }
}

impl Dedupe {
    pub fn new(cfg: DedupeConfig) -> Dedupe {
        Dedupe {
            cfg,
            alerts: HashMap::new(),
            groups: HashMap::new(),
        }
    }

    pub fn config(&self) -> &DedupeConfig {
        &self.cfg
    }

    /// Changes the settings, keeping the state.
    pub fn set_config(&mut self, cfg: DedupeConfig) {
        self.cfg = cfg;
    }

    /// Alerts currently remembered.
    pub fn len(&self) -> usize {
        self.alerts.len()
    }
    pub fn is_empty(&self) -> bool {
        self.alerts.is_empty()
    }

    fn repeat_at(&self, severity: Severity, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        (!self.cfg.repeat_interval.is_zero() && severity >= self.cfg.repeat_severity)
            .then(|| add(now, self.cfg.repeat_interval))
    }

    /// Offers an alert at `now`; `describe` is called only when a
    /// notification needs the alert's text.
    pub fn offer(
        &mut self,
        alert: &Alert<'_>,
        describe: impl FnOnce() -> Description,
        now: DateTime<Utc>,
    ) -> Offer {
        let window = self.cfg.window;
        let repeat = self.repeat_at(alert.severity, now);
        // 1. The same alert within its window.
        if let Some(a) = self.alerts.get_mut(alert.key) {
            a.last_seen = now;
            if now < add(a.window_start, window) {
                a.count += 1;
                if alert.severity > a.severity {
                    // Escalation: show it now, in place of the old bubble.
                    let d = describe();
                    a.severity = alert.severity;
                    a.title = d.title;
                    a.body = d.body;
                    a.pending = 0;
                    a.acked = false;
                    a.next_repeat = repeat;
                    return Offer::Notify(Notification {
                        key: alert.key.to_owned(),
                        kind: NotificationKind::Update,
                        severity: a.severity,
                        title: counted(&a.title, a.count),
                        body: a.body.clone(),
                        count: a.count,
                        alert: Some(alert.key.to_owned()),
                        sound: None,
                        silent: false,
                        origin: Some(a.origin.clone()),
                    });
                }
                a.pending += 1;
                return Offer::Duplicate { count: a.count };
            }
        }
        // 2. A burst in the alert's group (never for emergencies).
        let mut burst_offer = None;
        if alert.severity < Severity::Emergency && self.cfg.burst_count > 0 {
            let g = self
                .groups
                .entry((alert.severity, alert.group.to_owned()))
                .or_default();
            let horizon = sub(now, self.cfg.burst_window);
            while g.recent.front().is_some_and(|t| *t <= horizon) {
                g.recent.pop_front();
            }
            g.recent.push_back(now);
            if let Some(b) = g.burst.as_mut() {
                b.count += 1;
                burst_offer = Some(if now >= add(b.last_shown, self.cfg.summary_interval) {
                    b.shown = b.count;
                    b.last_shown = now;
                    None
                } else {
                    Some(b.count)
                });
            } else if g.recent.len() > self.cfg.burst_count as usize {
                let n = u32::try_from(g.recent.len()).unwrap_or(u32::MAX);
                g.burst = Some(Burst {
                    count: n,
                    shown: n,
                    last_shown: now,
                });
                burst_offer = Some(None);
            }
        }
        // Remember the alert either way, so duplicates are recognised.
        let d = describe();
        if let Some(in_burst) = burst_offer {
            let gkey = (alert.severity, alert.group.to_owned());
            let total = match self.groups.get_mut(&gkey) {
                Some(g) => {
                    g.latest_title = d.title.clone();
                    g.burst.as_ref().map_or(0, |b| b.count)
                }
                None => 0,
            };
            self.remember(alert, d, now, None);
            return match in_burst {
                Some(count) => Offer::InBurst {
                    group: alert.group.to_owned(),
                    count,
                },
                None => Offer::Notify(self.summary(alert.severity, alert.group, total)),
            };
        }
        let (title, body) = (d.title.clone(), d.body.clone());
        let count = self.remember(alert, d, now, repeat);
        Offer::Notify(Notification {
            key: alert.key.to_owned(),
            kind: NotificationKind::New,
            severity: alert.severity,
            title: counted(&title, count),
            body,
            count,
            alert: Some(alert.key.to_owned()),
            sound: None,
            silent: false,
            origin: Some((alert.origin)()),
        })
    }

    /// Stores or refreshes an alert whose window starts now; returns its
    /// occurrence count.
    fn remember(
        &mut self,
        alert: &Alert<'_>,
        d: Description,
        now: DateTime<Utc>,
        next_repeat: Option<DateTime<Utc>>,
    ) -> u32 {
        if !self.alerts.contains_key(alert.key) && self.alerts.len() >= self.cfg.max_alerts {
            self.evict_oldest();
        }
        let a = self
            .alerts
            .entry(alert.key.to_owned())
            .or_insert_with(|| AlertState {
                severity: alert.severity,
                title: String::new(),
                body: String::new(),
                origin: (alert.origin)(),
                window_start: now,
                last_seen: now,
                pending: 0,
                count: 0,
                next_repeat: None,
                acked: false,
            });
        a.severity = alert.severity;
        a.title = d.title;
        a.body = d.body;
        a.window_start = now;
        a.last_seen = now;
        a.pending = 0;
        a.count += 1;
        a.next_repeat = next_repeat;
        a.acked = false;
        a.count
    }

    fn evict_oldest(&mut self) {
        // Rare (only at the cap): a linear scan is fine. Unacknowledged
        // alerts with a repeat pending are kept if anything else can go;
        // the key breaks ties, so the choice does not depend on the map.
        let victim = self
            .alerts
            .iter()
            .min_by_key(|(k, a)| (a.next_repeat.is_some() && !a.acked, a.last_seen, *k))
            .map(|(k, _)| k.clone());
        if let Some(k) = victim {
            self.alerts.remove(&k);
        }
    }

    fn summary(&self, severity: Severity, group: &str, count: u32) -> Notification {
        let latest = self
            .groups
            .get(&(severity, group.to_owned()))
            .map(|g| g.latest_title.clone())
            .unwrap_or_default();
        Notification {
            key: format!("burst:{severity}:{group}"),
            kind: NotificationKind::Summary,
            severity,
            title: format!("{count} new {} in {group}", plural(severity, count)),
            body: if latest.is_empty() {
                String::new()
            } else {
                format!("latest: {latest}")
            },
            count,
            alert: None,
            sound: None,
            silent: false,
            origin: None,
        }
    }

    /// What is due at `now` without a new event: counts of duplicates whose
    /// window ended, refreshed burst summaries and repeats of unacknowledged
    /// alerts. Also forgets what no longer matters.
    pub fn tick(&mut self, now: DateTime<Utc>) -> Vec<Notification> {
        let mut out = Vec::new();
        let window = self.cfg.window;
        let interval = self.cfg.repeat_interval;
        let forget_after = window.max(self.cfg.burst_window);
        self.alerts.retain(|key, a| {
            let window_over = now >= add(a.window_start, window);
            if a.pending > 0 && window_over {
                a.pending = 0;
                a.window_start = now;
                out.push(Notification {
                    key: key.clone(),
                    kind: NotificationKind::Update,
                    severity: a.severity,
                    title: counted(&a.title, a.count),
                    body: a.body.clone(),
                    count: a.count,
                    alert: Some(key.clone()),
                    sound: None,
                    silent: true,
                    origin: Some(a.origin.clone()),
                });
            }
            if let Some(due) = a.next_repeat
                && !a.acked
                && now >= due
            {
                a.next_repeat = Some(add(now, interval));
                let since = a.window_start.format("%H:%M UTC");
                out.push(Notification {
                    key: key.clone(),
                    kind: NotificationKind::Repeat,
                    severity: a.severity,
                    title: format!("Reminder: {}", counted(&a.title, a.count)),
                    body: if a.body.is_empty() {
                        format!("unacknowledged since {since}")
                    } else {
                        format!("{} — unacknowledged since {since}", a.body)
                    },
                    count: a.count,
                    alert: Some(key.clone()),
                    sound: None,
                    silent: false,
                    origin: Some(a.origin.clone()),
                });
            }
            let idle = now >= add(a.last_seen, forget_after);
            let repeat_pending = a.next_repeat.is_some() && !a.acked;
            !(idle && a.pending == 0 && !repeat_pending)
        });
        let burst_window = self.cfg.burst_window;
        let summary_interval = self.cfg.summary_interval;
        let mut summaries = Vec::new();
        self.groups.retain(|(sev, group), g| {
            let horizon = sub(now, burst_window);
            while g.recent.front().is_some_and(|t| *t <= horizon) {
                g.recent.pop_front();
            }
            if let Some(b) = g.burst.as_mut() {
                let quiet = g.recent.is_empty();
                if b.count > b.shown && (quiet || now >= add(b.last_shown, summary_interval)) {
                    b.shown = b.count;
                    b.last_shown = now;
                    summaries.push((*sev, group.clone(), b.count));
                }
                if quiet {
                    g.burst = None;
                }
            }
            !(g.recent.is_empty() && g.burst.is_none())
        });
        for (sev, group, count) in summaries {
            let mut n = self.summary(sev, &group, count);
            n.silent = true;
            out.push(n);
        }
        out
    }

    /// The earliest instant at which [`Dedupe::tick`] has something to do:
    /// a duplicate count to show, a burst summary to refresh, a repeat, or
    /// an alert or group to forget. `None`: nothing until the next offer.
    /// Before it, `tick` returns nothing and changes nothing, so a caller
    /// can sleep until then instead of ticking on a clock.
    pub fn next_due(&self) -> Option<DateTime<Utc>> {
        let window = self.cfg.window;
        let forget_after = window.max(self.cfg.burst_window);
        let alerts = self.alerts.values().filter_map(|a| {
            let repeat = a.next_repeat.filter(|_| !a.acked);
            let flush = (a.pending > 0).then(|| add(a.window_start, window));
            let forget =
                (a.pending == 0 && repeat.is_none()).then(|| add(a.last_seen, forget_after));
            [repeat, flush, forget].into_iter().flatten().min()
        });
        let groups = self.groups.values().map(|g| {
            // The group goes quiet (its burst ends, then it is forgotten)
            // one burst window after its latest event; an empty one (which
            // neither `offer` nor `tick` leaves behind) is due at once.
            let quiet = g
                .recent
                .back()
                .map_or(DateTime::<Utc>::MIN_UTC, |t| add(*t, self.cfg.burst_window));
            let refresh = g
                .burst
                .as_ref()
                .filter(|b| b.count > b.shown)
                .map(|b| add(b.last_shown, self.cfg.summary_interval));
            refresh.map_or(quiet, |r| r.min(quiet))
        });
        alerts.chain(groups).min()
    }

    /// The user acknowledged an alert: no more repeats. True when known.
    pub fn acknowledge(&mut self, key: &str) -> bool {
        match self.alerts.get_mut(key) {
            Some(a) => {
                a.acked = true;
                a.next_repeat = None;
                true
            }
            None => false,
        }
    }

    /// Undoes [`Dedupe::acknowledge`]: repeats resume from `now`.
    pub fn unacknowledge(&mut self, key: &str, now: DateTime<Utc>) -> bool {
        let repeat = self
            .alerts
            .get(key)
            .and_then(|a| self.repeat_at(a.severity, now));
        match self.alerts.get_mut(key) {
            Some(a) => {
                a.acked = false;
                a.next_repeat = repeat;
                true
            }
            None => false,
        }
    }
}

fn sub(t: DateTime<Utc>, d: Duration) -> DateTime<Utc> {
    chrono::Duration::from_std(d)
        .ok()
        .and_then(|d| t.checked_sub_signed(d))
        .unwrap_or(DateTime::<Utc>::MIN_UTC)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn t0() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2025, 3, 1, 9, 0, 0).unwrap()
    }
    fn at(secs: i64) -> DateTime<Utc> {
        t0() + chrono::Duration::seconds(secs)
    }
    fn origin() -> Origin {
        Origin {
            source: Arc::from("desk"),
            kind: "employee_stress".into(),
            subject: None,
            channel: None,
        }
    }
    fn offer(d: &mut Dedupe, key: &str, group: &str, sev: Severity, now: DateTime<Utc>) -> Offer {
        let o = origin;
        d.offer(
            &Alert {
                key,
                group,
                severity: sev,
                origin: &o,
            },
            || Description {
                title: format!("alert {key}"),
                body: "body".into(),
            },
            now,
        )
    }
    fn notified(o: &Offer) -> &Notification {
        match o {
            Offer::Notify(n) => n,
            other => panic!("expected a notification, got {other:?}"),
        }
    }
    fn cfg() -> DedupeConfig {
        DedupeConfig::default()
            .window(Duration::from_secs(60))
            .burst(5, Duration::from_secs(30))
            .summary_interval(Duration::from_secs(10))
            .repeat(Duration::from_secs(3600), Severity::Critical)
    }

    #[test]
    fn duplicates_within_the_window_become_one_count() {
        let mut d = Dedupe::new(cfg());
        let first = offer(&mut d, "k", "g", Severity::Warning, at(0));
        assert_eq!(notified(&first).kind, NotificationKind::New);
        assert_eq!(notified(&first).title, "alert k");
        for i in 1..4 {
            assert_eq!(
                offer(&mut d, "k", "g", Severity::Warning, at(i * 10)),
                Offer::Duplicate {
                    count: i as u32 + 1
                }
            );
        }
        assert!(d.tick(at(59)).is_empty(), "window still open");
        let due = d.tick(at(60));
        assert_eq!(due.len(), 1);
        assert_eq!(due[0].kind, NotificationKind::Update);
        assert_eq!(due[0].count, 4);
        assert_eq!(due[0].title, "alert k (×4)");
        assert!(due[0].silent);
        assert!(d.tick(at(61)).is_empty(), "the count is shown once");
        // After the window (and the flush), the same alert notifies anew.
        let again = offer(&mut d, "k", "g", Severity::Warning, at(125));
        assert_eq!(notified(&again).kind, NotificationKind::New);
        assert_eq!(notified(&again).count, 5);
    }

    #[test]
    fn escalation_within_the_window_notifies_at_once() {
        let mut d = Dedupe::new(cfg());
        offer(&mut d, "k", "g", Severity::Warning, at(0));
        let up = offer(&mut d, "k", "g", Severity::Critical, at(5));
        let n = notified(&up);
        assert_eq!(
            (n.kind, n.severity, n.count),
            (NotificationKind::Update, Severity::Critical, 2)
        );
    }

    #[test]
    fn a_burst_becomes_one_summary() {
        let mut d = Dedupe::new(cfg());
        for i in 0..5 {
            let o = offer(
                &mut d,
                &format!("e{i}"),
                "Engineering",
                Severity::Warning,
                at(i),
            );
            assert_eq!(notified(&o).kind, NotificationKind::New);
        }
        // The sixth within 30 s: a summary instead.
        let o = offer(&mut d, "e5", "Engineering", Severity::Warning, at(5));
        let n = notified(&o);
        assert_eq!(n.kind, NotificationKind::Summary);
        assert_eq!(n.title, "6 new warnings in Engineering");
        assert_eq!(n.key, "burst:warning:Engineering");
        assert_eq!(n.body, "latest: alert e5");
        // Six more within the summary interval: folded in, silently.
        for i in 6..12 {
            assert_eq!(
                offer(
                    &mut d,
                    &format!("e{i}"),
                    "Engineering",
                    Severity::Warning,
                    at(i)
                ),
                Offer::InBurst {
                    group: "Engineering".into(),
                    count: i as u32 + 1
                }
            );
        }
        // Other groups and severities are not affected.
        let other = offer(&mut d, "s1", "Sales", Severity::Warning, at(12));
        assert_eq!(notified(&other).kind, NotificationKind::New);
        let crit = offer(&mut d, "c1", "Engineering", Severity::Critical, at(12));
        assert_eq!(notified(&crit).kind, NotificationKind::New);
        // The refresh after the summary interval carries the whole count.
        let due = d.tick(at(15));
        let s: Vec<_> = due
            .iter()
            .filter(|n| n.kind == NotificationKind::Summary)
            .collect();
        assert_eq!(s.len(), 1);
        assert_eq!(s[0].title, "12 new warnings in Engineering");
        // Once the group is quiet for the burst window, single alerts again.
        d.tick(at(60));
        let o = offer(&mut d, "e99", "Engineering", Severity::Warning, at(61));
        assert_eq!(notified(&o).kind, NotificationKind::New);
    }

    #[test]
    fn emergencies_are_never_summarised() {
        let mut d = Dedupe::new(cfg());
        for i in 0..20 {
            let o = offer(&mut d, &format!("x{i}"), "g", Severity::Emergency, at(i));
            assert_eq!(notified(&o).kind, NotificationKind::New);
        }
    }

    #[test]
    fn unacknowledged_critical_repeats_until_acknowledged() {
        let mut d = Dedupe::new(cfg());
        offer(&mut d, "crit", "g", Severity::Critical, at(0));
        offer(&mut d, "warn", "g", Severity::Warning, at(0));
        assert!(d.tick(at(3599)).is_empty());
        let due = d.tick(at(3600));
        assert_eq!(due.len(), 1, "{due:?}");
        assert_eq!(due[0].kind, NotificationKind::Repeat);
        assert_eq!(due[0].key, "crit");
        assert!(due[0].title.starts_with("Reminder: "));
        assert!(due[0].body.contains("unacknowledged since 09:00 UTC"));
        assert!(d.tick(at(3601)).is_empty());
        assert_eq!(d.tick(at(7200)).len(), 1, "and again an interval later");
        assert!(d.acknowledge("crit"));
        assert!(d.unacknowledge("crit", at(7200)), "undone: repeats resume");
        assert_eq!(d.tick(at(10_800)).len(), 1);
        assert!(d.acknowledge("crit"));
        assert!(
            d.tick(at(14_400)).is_empty(),
            "acknowledged: no more repeats"
        );
        assert!(!d.acknowledge("unknown"));
    }

    #[test]
    fn repeat_off_and_forgetting() {
        let mut d = Dedupe::new(cfg().repeat(Duration::ZERO, Severity::Critical));
        offer(&mut d, "crit", "g", Severity::Critical, at(0));
        assert!(d.tick(at(100_000)).is_empty());
        assert!(d.is_empty(), "quiet alerts are forgotten");
    }

    #[test]
    fn next_due_names_each_kind_of_work() {
        let mut d = Dedupe::new(cfg());
        assert_eq!(d.next_due(), None, "nothing remembered, nothing due");
        // A critical alert: its group goes quiet after the burst window,
        // then only its repeat is due.
        offer(&mut d, "crit", "g", Severity::Critical, at(0));
        assert_eq!(d.next_due(), Some(at(30)));
        assert!(d.tick(at(29)).is_empty());
        assert!(d.tick(at(30)).is_empty(), "the group is forgotten silently");
        assert_eq!(d.next_due(), Some(at(3600)));
        assert_eq!(d.tick(at(3600)).len(), 1);
        assert_eq!(d.next_due(), Some(at(7200)), "the next repeat");
        // Acknowledged: nothing left but forgetting it (already due).
        d.acknowledge("crit");
        assert_eq!(d.next_due(), Some(at(60)));
        assert!(d.tick(at(3601)).is_empty());
        assert!(d.is_empty());
        assert_eq!(d.next_due(), None);
        // A duplicate: its count is due when the window ends.
        offer(&mut d, "w", "h", Severity::Warning, at(4000));
        offer(&mut d, "w", "h", Severity::Warning, at(4010));
        assert_eq!(d.next_due(), Some(at(4030)), "group quiet first");
        d.tick(at(4030));
        assert_eq!(d.next_due(), Some(at(4060)), "then the count");
        assert_eq!(d.tick(at(4060)).len(), 1);
        assert_eq!(d.next_due(), Some(at(4070)), "then forgetting");
    }

    /// Sleeping until [`Dedupe::next_due`] shows the same notifications at
    /// the same instants as ticking every second: nothing is late, nothing
    /// is lost, and `tick` always clears what `next_due` announced.
    #[test]
    fn ticking_at_next_due_equals_ticking_every_second() {
        use proptest::prelude::*;
        use proptest::test_runner::{Config, TestRunner};
        let small = || {
            cfg()
                .window(Duration::from_secs(5))
                .burst(3, Duration::from_secs(4))
                .summary_interval(Duration::from_secs(2))
                .repeat(Duration::from_secs(7), Severity::Critical)
                .max_alerts(4)
        };
        let step = (0u8..4, 0u8..6, 0i64..12);
        let mut runner = TestRunner::new(Config {
            failure_persistence: None,
            ..Config::with_cases(256)
        });
        let seen = |t: i64, n: Vec<Notification>| {
            n.into_iter()
                .map(move |n| (t, n.kind, n.key, n.count, n.title))
                .collect::<Vec<_>>()
        };
        runner
            .run(&proptest::collection::vec(step, 1..40), |steps| {
                let (mut every, mut lazy) = (Dedupe::new(small()), Dedupe::new(small()));
                let (mut by_clock, mut by_due) = (Vec::new(), Vec::new());
                let mut now = 0;
                // One more step far ahead lets every pending thing come due.
                for (op, key, gap) in steps.into_iter().chain([(4, 0, 100)]) {
                    let until = now + gap;
                    for t in now + 1..=until {
                        by_clock.extend(seen(t, every.tick(at(t))));
                    }
                    let mut rounds = 0;
                    // The clock above ticks from `now + 1` on; so does this.
                    while let Some(t) = lazy
                        .next_due()
                        .map(|due| (due - t0()).num_seconds().max(now + 1))
                        .filter(|t| *t <= until)
                    {
                        rounds += 1;
                        prop_assert!(rounds < 200, "tick does not clear what is due at {t}");
                        by_due.extend(seen(t, lazy.tick(at(t))));
                    }
                    now = until;
                    let group = if key % 2 == 0 { "a" } else { "b" };
                    let key = format!("k{key}");
                    let severity = match op {
                        0 => Severity::Warning,
                        1 => Severity::Critical,
                        2 => Severity::Emergency,
                        3 => {
                            every.acknowledge(&key);
                            lazy.acknowledge(&key);
                            continue;
                        }
                        _ => continue,
                    };
                    let a = offer(&mut every, &key, group, severity, at(now));
                    let b = offer(&mut lazy, &key, group, severity, at(now));
                    prop_assert_eq!(a, b);
                }
                // Within one instant the order follows the map's, which
                // differs between the two instances.
                for v in [&mut by_clock, &mut by_due] {
                    v.sort_by(|a, b| (a.0, &a.2).cmp(&(b.0, &b.2)));
                }
                prop_assert_eq!(by_clock, by_due);
                Ok(())
            })
            .unwrap();
    }

    #[test]
    fn memory_is_bounded() {
        let mut d = Dedupe::new(cfg().max_alerts(100).burst(0, Duration::from_secs(1)));
        for i in 0..1000 {
            offer(&mut d, &format!("k{i}"), "g", Severity::Warning, at(i));
        }
        assert!(d.len() <= 100);
    }
}
