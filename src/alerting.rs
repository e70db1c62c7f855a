//! One alerting pipeline for every surface (the CLI's `watch` and the
//! desktop app adapt it; neither holds its own): each event goes through
//! its profile's [`Engine`] (that profile's preferences and rules); what it
//! lists goes to the inbox (SQLite, one batching writer and one reader);
//! what it says should notify becomes an OS notification through the
//! [`Notifier`], unless notifications are paused — never for an emergency.
//! History gaps are stored whatever the preferences. Repeats, duplicate
//! counts and burst summaries are raised by [`Alerts::run_due`], which
//! sleeps until the engines next have something due: nothing ticks while
//! nothing is due. The inbox keeps alerts as long as the profile that
//! wants them longest (`[inbox] keep`, 90 days by default).

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard, mpsc};
use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::engine::{Decision, Engine, Notification, Prefs, Rule};
use crate::inbox::{
    Committed, ExportFormat, Inbox, InboxError, Query, Record, Retention, StoredAlert, Writer,
    WriterConfig,
};
use crate::notifier::{Notifier, NotifierConfig};
use crate::{Event, Severity};

/// The longest [`Alerts::run_due`] sleeps without looking at the wall
/// clock: its timer does not run while the machine is suspended, so a
/// reminder due meanwhile comes at most this late after a resume.
const CHECK_AT_MOST: Duration = Duration::from_secs(30);

/// At most one history-gap bubble per connection this often: a hub
/// restart reports a gap on every channel at once (the inbox keeps one
/// entry per channel).
const GAP_BUBBLE_EVERY_SECS: i64 = 10;

/// Why alerting could not do what was asked.
#[derive(Debug, thiserror::Error)]
pub enum AlertsError {
    /// The inbox could not be opened, read or written (disk full,
    /// permissions, a corrupt file).
    #[error("inbox: {0}")]
    Inbox(#[from] InboxError),
    /// There is no inbox to read (alerting without `--inbox`).
    #[error("there is no inbox")]
    NoInbox,
    /// A panic elsewhere left the state unreadable. A bug.
    #[error("the alerting state is unavailable after an internal error")]
    Poisoned,
}

/// How alerting starts. Defaults in each field's doc.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct AlertsConfig {
    /// The inbox file (created if missing). Default none: nothing stored.
    pub inbox: Option<PathBuf>,
    /// Raise OS notifications at all. Default false.
    pub notify: bool,
    /// Preferences of a profile nobody set any for. Default
    /// [`Prefs::default`].
    pub fallback: Prefs,
    /// Where the pipeline reads the time for what it is not handed a `now`
    /// for (due repeats, acknowledgements, counts). Default the wall clock.
    pub clock: Clock,
}

/// The wall clock, or a stand-in for tests (e.g. one that follows tokio's
/// paused clock, so a test of a 30 s repeat takes no 30 s).
#[derive(Clone)]
pub struct Clock(Arc<dyn Fn() -> DateTime<Utc> + Send + Sync>);

impl Clock {
    pub fn new(now: impl Fn() -> DateTime<Utc> + Send + Sync + 'static) -> Self {
        Clock(Arc::new(now))
    }

    pub fn now(&self) -> DateTime<Utc> {
        (self.0)()
    }
}

impl Default for Clock {
    fn default() -> Self {
        Clock::new(Utc::now)
    }
}

impl std::fmt::Debug for Clock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Clock")
    }
}

impl AlertsConfig {
    pub fn inbox(mut self, path: Option<PathBuf>) -> Self {
        self.inbox = path;
        self
    }
    pub fn notify(mut self, on: bool) -> Self {
        self.notify = on;
        self
    }
    pub fn fallback(mut self, prefs: Prefs) -> Self {
        self.fallback = prefs;
        self
    }
    pub fn clock(mut self, clock: Clock) -> Self {
        self.clock = clock;
        self
    }
}

/// The inbox's counts.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Counts {
    pub total: u64,
    /// Unacknowledged alerts, capped at `unread_cap`.
    pub unread: u64,
    /// Unacknowledged critical and emergency alerts.
    pub critical: u64,
    pub paused_until: Option<DateTime<Utc>>,
    /// The newest unacknowledged history gap, as the user reads it.
    pub gap: Option<String>,
}

/// The engines (one per profile), the inbox and the notifier.
#[derive(Debug)]
pub struct Alerts {
    /// By profile name.
    engines: Mutex<HashMap<String, Engine>>,
    fallback: Prefs,
    /// `None` once the writer failed (logged once), or without an inbox.
    writer: Mutex<Option<Writer>>,
    /// For searches and acknowledgements; `None` without an inbox.
    reader: Mutex<Option<Inbox>>,
    notifier: Option<Notifier>,
    paused_until: Mutex<Option<DateTime<Utc>>>,
    /// When each connection last raised a history-gap notification.
    gap_notified: Mutex<HashMap<String, DateTime<Utc>>>,
    /// By profile, when each channel last delivered an event: where a
    /// history gap on it starts.
    last_seen: Mutex<HashMap<String, HashMap<String, DateTime<Utc>>>>,
    /// Poked when an engine may have something due sooner than
    /// [`Alerts::run_due`] is sleeping for.
    rescheduled: tokio::sync::Notify,
    clock: Clock,
}

fn lock<T>(m: &Mutex<T>) -> Result<MutexGuard<'_, T>, AlertsError> {
    m.lock().map_err(|_| AlertsError::Poisoned)
}

impl Alerts {
    /// Opens (creating) the inbox, if any; returns the receiver of its
    /// commit reports.
    pub fn open(
        cfg: AlertsConfig,
    ) -> Result<(Alerts, Option<mpsc::Receiver<Committed>>), AlertsError> {
        let (writer, reader, committed) = match &cfg.inbox {
            Some(path) => {
                // The writer creates the file's directory.
                let retention = retention_of(std::iter::once(&cfg.fallback));
                let cfg = WriterConfig::default().retention(retention);
                let (writer, committed) = Writer::spawn(path, cfg)?;
                let reader = Inbox::open(path)?;
                (Some(writer), Some(reader), Some(committed))
            }
            None => (None, None, None),
        };
        tracing::info!(inbox = ?cfg.inbox, notify = cfg.notify, "alerting");
        Ok((
            Alerts {
                engines: Mutex::new(HashMap::new()),
                fallback: cfg.fallback,
                writer: Mutex::new(writer),
                reader: Mutex::new(reader),
                notifier: cfg.notify.then(|| Notifier::new(NotifierConfig::default())),
                paused_until: Mutex::new(None),
                gap_notified: Mutex::new(HashMap::new()),
                last_seen: Mutex::new(HashMap::new()),
                rescheduled: tokio::sync::Notify::new(),
                clock: cfg.clock,
            },
            committed,
        ))
    }

    /// Gives `profile` these preferences (a new engine, or the running one
    /// keeps its dedupe and repeat state).
    pub fn set_prefs(&self, profile: &str, prefs: Prefs, rules: Vec<Rule>) {
        if let Ok(mut engines) = lock(&self.engines) {
            match engines.get_mut(profile) {
                Some(engine) => engine.set_prefs(prefs, rules),
                None => {
                    engines.insert(profile.to_owned(), Engine::new(prefs, rules));
                }
            }
            self.retain_for(&engines);
        }
        self.rescheduled.notify_one();
    }

    /// Forgets a profile's engine (its connection closed for good).
    pub fn remove_profile(&self, profile: &str) {
        if let Ok(mut engines) = lock(&self.engines) {
            engines.remove(profile);
            self.retain_for(&engines);
        }
    }

    /// Gives the inbox the retention these profiles ask for together (the
    /// fallback's when there are none).
    fn retain_for(&self, engines: &HashMap<String, Engine>) {
        let retention = if engines.is_empty() {
            retention_of(std::iter::once(&self.fallback))
        } else {
            retention_of(engines.values().map(Engine::prefs))
        };
        if let Ok(w) = lock(&self.writer)
            && let Some(w) = w.as_ref()
            && let Err(error) = w.set_retention(retention)
        {
            tracing::warn!(%error, "the inbox's retention could not be changed");
        }
    }

    /// Runs one event through its profile's engine and stores it when
    /// listed. The decision's `notify` is the notification to raise, left
    /// out while notifications are paused (never for an emergency).
    pub fn on_event(&self, profile: &str, event: &Event, now: DateTime<Utc>) -> Decision {
        if let Some(channel) = &event.channel {
            self.seen(profile, channel, now);
        }
        // A panic elsewhere must not stop alerts: go on with the state.
        let mut decision = self
            .engines
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(profile.to_owned())
            .or_insert_with(|| Engine::new(self.fallback.clone(), Vec::new()))
            .decide(event, now);
        if decision.scheduled() {
            self.rescheduled.notify_one();
        }
        if decision.list {
            let record = Record::new(event.clone(), now)
                .severity(decision.severity_after_rules)
                .key(decision.key.clone());
            self.store(record);
        }
        decision.notify = decision.notify.take().filter(|n| self.shown(n, now));
        decision
    }

    /// Records that `profile`'s `channel` delivered an event at `now`
    /// (allocating only for a channel not seen before).
    fn seen(&self, profile: &str, channel: &str, now: DateTime<Utc>) {
        let Ok(mut all) = lock(&self.last_seen) else {
            return;
        };
        if !all.contains_key(profile) {
            all.insert(profile.to_owned(), HashMap::new());
        }
        let mine = all.get_mut(profile).expect("inserted above");
        match mine.get_mut(channel) {
            Some(t) => *t = now,
            None => {
                mine.insert(channel.to_owned(), now);
            }
        }
    }

    /// A notice from `profile`'s connection (`source`): a history gap
    /// becomes an event that says what was lost since the channel last
    /// delivered, stored by [`Alerts::on_gap`]; the notification to raise,
    /// if any. Other notices change nothing.
    pub fn on_notice(
        &self,
        profile: &str,
        source: &std::sync::Arc<str>,
        notice: &crate::client::Notice,
        now: DateTime<Utc>,
    ) -> Option<Notification> {
        let crate::client::Notice::Gap { channel, .. } = notice else {
            return None;
        };
        let since = lock(&self.last_seen)
            .ok()?
            .get(profile)
            .and_then(|m| m.get(channel))
            .copied();
        let event = crate::client::gap_event(notice, source, since, now)?;
        self.on_gap(&event, now)
    }

    /// Stores a history gap ([`crate::client::gap_event`]) whatever the
    /// preferences: the user must learn that events are missing. Returns
    /// the notification to raise when critical alerts may be among them
    /// (one per connection per 10 s).
    pub fn on_gap(&self, event: &Event, now: DateTime<Utc>) -> Option<Notification> {
        let key = format!(
            "gap:{}:{}:{}",
            event.source,
            event.channel.as_deref().unwrap_or_default(),
            event.time.timestamp_millis()
        );
        self.store(
            Record::new(event.clone(), now)
                .severity(event.severity)
                .key(key.clone()),
        );
        let d = event.describe();
        tracing::warn!(source = %event.source, gap = %d.body, "history gap");
        if event.severity < Severity::Critical {
            return None;
        }
        let n = Notification::standalone(key, event.severity, d.title, d.body);
        if !self.shown(&n, now) {
            return None;
        }
        let mut last = lock(&self.gap_notified).ok()?;
        let source = event.source.to_string();
        if last
            .get(&source)
            .is_some_and(|t| now - *t < chrono::Duration::seconds(GAP_BUBBLE_EVERY_SECS))
        {
            return None;
        }
        last.insert(source, now);
        Some(n)
    }

    fn store(&self, record: Record) {
        if let Ok(mut writer) = lock(&self.writer)
            && let Some(w) = writer.as_mut()
            && let Err(error) = w.push(record)
        {
            tracing::error!(%error, "the inbox stopped storing events");
            *writer = None;
        }
    }

    /// Whether a notification is shown now: always for an emergency, else
    /// unless notifications are paused.
    fn shown(&self, n: &Notification, now: DateTime<Utc>) -> bool {
        n.severity >= Severity::Emergency || !self.paused(now)
    }

    /// When [`Alerts::tick`] next has something to do, over all engines;
    /// `None`: nothing until the next event.
    pub fn next_due(&self) -> Option<DateTime<Utc>> {
        lock(&self.engines)
            .ok()?
            .values()
            .filter_map(Engine::next_due)
            .min()
    }

    /// Hands what the engines have due later (repeats of unacknowledged
    /// critical alerts, counts of duplicates, burst summaries) to `raise`
    /// when it is due; never returns. Sleeps until the earliest of them, and
    /// is woken early when an event or new preferences schedule something
    /// sooner (the permit `Notify` keeps means a poke between reading
    /// [`Alerts::next_due`] and sleeping is not lost).
    pub async fn run_due(&self, mut raise: impl FnMut(Notification)) {
        loop {
            let wait = self.next_due().map_or(CHECK_AT_MOST, |due| {
                (due - self.clock.now())
                    .to_std()
                    .unwrap_or(Duration::ZERO)
                    .min(CHECK_AT_MOST)
            });
            tokio::select! {
                () = tokio::time::sleep(wait) => {
                    for n in self.tick(self.clock.now()) {
                        raise(n);
                    }
                }
                () = self.rescheduled.notified() => {}
            }
        }
    }

    /// What is due at `now` and shown: counts of duplicates, burst
    /// summaries, and repeats of unacknowledged critical alerts.
    pub fn tick(&self, now: DateTime<Utc>) -> Vec<Notification> {
        let due: Vec<Notification> = lock(&self.engines)
            .map(|mut engines| engines.values_mut().flat_map(|e| e.tick(now)).collect())
            .unwrap_or_default();
        due.into_iter().filter(|n| self.shown(n, now)).collect()
    }

    /// Shows `n` in the background (failures are logged by the notifier;
    /// nothing happens without one) and hands the action the user picked,
    /// if any, to `then`. Needs a tokio runtime.
    pub fn raise(&self, n: Notification, then: impl FnOnce(Option<String>) + Send + 'static) {
        let Some(notifier) = self.notifier.clone() else {
            return;
        };
        tokio::spawn(async move {
            let picked = notifier.show_and_wait(n).await;
            then(picked);
        });
    }

    /// Commits what the writer holds, so searches and acknowledgements see
    /// it.
    pub fn flush(&self) -> Result<(), AlertsError> {
        if let Some(w) = lock(&self.writer)?.as_ref() {
            w.flush()?;
        }
        Ok(())
    }

    /// Acknowledges one alert by its engine key (a notification's action):
    /// no more repeats, and its inbox rows are acknowledged.
    pub fn acknowledge_key(&self, key: &str) -> Result<usize, AlertsError> {
        // Rows still queued would miss the acknowledgement.
        self.flush()?;
        let n = match lock(&self.reader)?.as_ref() {
            Some(reader) => reader.acknowledge_key(key, self.clock.now())?,
            None => 0,
        };
        for engine in lock(&self.engines)?.values_mut() {
            engine.acknowledge(key);
        }
        Ok(n)
    }

    /// Acknowledges these inbox alerts, and in the engines (no more
    /// repeats). Returns how many changed.
    pub fn acknowledge(&self, ids: &[i64]) -> Result<usize, AlertsError> {
        let reader = lock(&self.reader)?;
        let reader = reader.as_ref().ok_or(AlertsError::NoInbox)?;
        let mut keys = Vec::new();
        for id in ids {
            if let Some(key) = reader.get(*id)?.and_then(|a| a.key) {
                keys.push(key);
            }
        }
        let n = reader.acknowledge(ids, self.clock.now())?;
        let mut engines = lock(&self.engines)?;
        for key in keys {
            for engine in engines.values_mut() {
                engine.acknowledge(&key);
            }
        }
        Ok(n)
    }

    /// Undoes acknowledgements in the inbox; returns how many changed.
    /// The engines are left as they are: an alert acknowledged once is not
    /// repeated again (its next occurrence notifies as usual).
    pub fn unacknowledge(&self, ids: &[i64]) -> Result<usize, AlertsError> {
        self.read(|inbox| inbox.unacknowledge(ids))
    }

    /// The inbox id of the newest alert under the engine's key (a
    /// notification's), once what is queued is committed.
    pub fn newest_with_key(&self, key: &str) -> Result<Option<i64>, AlertsError> {
        self.flush()?;
        self.read(|inbox| inbox.newest_with_key(key))
    }

    /// One stored alert, whole.
    pub fn get(&self, id: i64) -> Result<Option<StoredAlert>, AlertsError> {
        self.read(|inbox| inbox.get(id))
    }

    /// Writes what `q` matches to `out` ([`Inbox::export`]) on a
    /// connection of its own, so a long export holds up no search, count
    /// or acknowledgement meanwhile.
    pub fn export(
        &self,
        q: &Query,
        format: ExportFormat,
        out: impl std::io::Write,
    ) -> Result<u64, AlertsError> {
        let path = self.read(|inbox| Ok(inbox.path().to_path_buf()))?;
        self.flush()?;
        Ok(Inbox::open(path)?.export(q, format, out)?)
    }

    pub fn pause_until(&self, until: Option<DateTime<Utc>>) {
        if let Ok(mut p) = lock(&self.paused_until) {
            *p = until;
        }
        tracing::info!(?until, "notifications paused until");
    }

    pub fn paused(&self, now: DateTime<Utc>) -> bool {
        lock(&self.paused_until)
            .map(|p| p.is_some_and(|t| now < t))
            .unwrap_or(false)
    }

    /// The inbox's counts; unread ones stop at `unread_cap`.
    pub fn counts(&self, unread_cap: u64) -> Result<Counts, AlertsError> {
        let reader = lock(&self.reader)?;
        let reader = reader.as_ref().ok_or(AlertsError::NoInbox)?;
        let now = self.clock.now();
        let gap = reader
            .newest_unacknowledged_gap()?
            .map(|a| a.event.describe().body);
        Ok(Counts {
            total: reader.count()?,
            unread: reader.unacknowledged_up_to(unread_cap)?,
            critical: reader.unacknowledged_critical()?,
            paused_until: lock(&self.paused_until)?.filter(|t| now < *t),
            gap,
        })
    }

    pub fn search(&self, q: &Query) -> Result<Vec<StoredAlert>, AlertsError> {
        self.read(|inbox| inbox.search(q))
    }

    /// Runs `f` on the inbox's reader; [`AlertsError::NoInbox`] without one.
    fn read<T>(&self, f: impl FnOnce(&Inbox) -> Result<T, InboxError>) -> Result<T, AlertsError> {
        let reader = lock(&self.reader)?;
        Ok(f(reader.as_ref().ok_or(AlertsError::NoInbox)?)?)
    }

    /// Commits what is queued and stops the writer. Idempotent.
    pub fn close(&self) {
        let writer = lock(&self.writer).ok().and_then(|mut w| w.take());
        if let Some(w) = writer
            && let Err(error) = w.close()
        {
            tracing::warn!(%error, "closing the inbox");
        }
    }
}

/// What one inbox shared by these profiles keeps: alerts as long as the
/// longest `[inbox] keep` among them (any "off": forever), unacknowledged
/// critical and emergency alerts whatever their age.
pub fn retention_of<'a>(prefs: impl Iterator<Item = &'a Prefs>) -> Retention {
    let mut longest = Some(Duration::ZERO);
    for p in prefs {
        longest = match (longest, p.inbox.keep()) {
            (Some(a), Some(b)) => Some(a.max(b)),
            _ => None,
        };
    }
    match longest.filter(|d| !d.is_zero()) {
        Some(d) => Retention::default().max_age(d),
        None => Retention::default(),
    }
}

impl Drop for Alerts {
    fn drop(&mut self) {
        self.close();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::protocol::{Frame, decode};

    fn event(text: &str) -> Event {
        let source: Arc<str> = Arc::from("desk");
        match decode(text, &source, Utc::now()).expect("decodes") {
            Frame::Event(e) => e,
            other => panic!("not an event: {other:?}"),
        }
    }

    /// The repeat task sleeps while nothing is due, is woken by the event
    /// that schedules a repeat, and raises it on time; after the
    /// acknowledgement it raises nothing more. On tokio's paused clock, with
    /// the pipeline's clock following it: no second of this is real.
    #[tokio::test(start_paused = true)]
    async fn due_repeats_are_raised_without_a_ticking_clock() {
        use crate::engine::NotificationKind;
        use crate::engine::prefs::HumanDuration;

        let (wall, start) = (Utc::now(), tokio::time::Instant::now());
        let clock = Clock::new(move || {
            wall + chrono::Duration::from_std(start.elapsed()).expect("a short test")
        });
        let dir = tempfile::tempdir().unwrap();
        let cfg = AlertsConfig::default()
            .inbox(Some(dir.path().join("inbox.sqlite3")))
            .clock(clock.clone());
        let (alerts, _committed) = Alerts::open(cfg).unwrap();
        let alerts = Arc::new(alerts);
        let mut prefs = Prefs::default();
        prefs.dedupe.repeat_interval = HumanDuration(Duration::from_secs(1));
        alerts.set_prefs("demo", prefs, Vec::new());
        assert_eq!(alerts.next_due(), None, "nothing remembered yet");
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let task = tokio::spawn({
            let alerts = alerts.clone();
            async move { alerts.run_due(|n| drop(tx.send(n))).await }
        });
        // Let it go to sleep: with nothing due, for CHECK_AT_MOST.
        tokio::time::sleep(Duration::from_millis(50)).await;
        let critical = event(
            r#"{"type":"risk_alert","sessionId":"S1","alertLevel":"critical","alertType":"loss_limit","message":"over","currentValue":92,"threshold":90}"#,
        );
        let raised_at = clock.now();
        let n = alerts
            .on_event("demo", &critical, raised_at)
            .notify
            .expect("critical notifies");
        let key = n.alert.clone().expect("an alert key");
        let repeat = tokio::time::timeout(Duration::from_secs(5), rx.recv())
            .await
            .expect("the repeat came within 5 s, not after the 30 s sleep")
            .expect("the task runs");
        assert_eq!(repeat.kind, NotificationKind::Repeat, "{repeat:?}");
        assert_eq!(repeat.alert.as_deref(), Some(key.as_str()));
        let after = clock.now() - raised_at;
        assert!(
            after >= chrono::Duration::seconds(1) && after < chrono::Duration::seconds(2),
            "repeated after {after}, not at its 1 s interval"
        );
        assert_eq!(alerts.acknowledge_key(&key).unwrap(), 1, "one inbox row");
        while let Ok(n) = rx.try_recv() {
            assert_eq!(n.kind, NotificationKind::Repeat, "{n:?}");
        }
        let quiet = tokio::time::timeout(Duration::from_millis(2500), rx.recv()).await;
        assert!(quiet.is_err(), "acknowledged, yet raised: {quiet:?}");
        task.abort();
    }

    /// One profile's pipeline end to end: a critical alert is stored and
    /// notifies, a pause holds it back but never an emergency stop, a gap
    /// is stored whatever the preferences and shows in the counts, and
    /// acknowledging clears both.
    #[test]
    fn stores_notifies_pauses_and_acknowledges() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = AlertsConfig::default().inbox(Some(dir.path().join("inbox.sqlite3")));
        let (alerts, _committed) = Alerts::open(cfg).unwrap();
        let now = Utc::now();
        let critical = event(
            r#"{"type":"risk_alert","sessionId":"S1","alertLevel":"critical","alertType":"loss_limit","message":"over","currentValue":92,"threshold":90}"#,
        );
        let d = alerts.on_event("desk", &critical, now);
        assert!(d.list && d.notify.is_some(), "{d:?}");
        alerts.pause_until(Some(now + chrono::Duration::hours(1)));
        let other = event(
            r#"{"type":"risk_alert","sessionId":"S2","alertLevel":"critical","alertType":"loss_limit","message":"over","currentValue":95,"threshold":90}"#,
        );
        assert!(
            alerts.on_event("desk", &other, now).notify.is_none(),
            "paused"
        );
        let stop = event(
            r#"{"type":"session_status","sessionId":"S9","status":"emergency_stopped","lossLimitUtilization":100}"#,
        );
        assert!(
            alerts.on_event("desk", &stop, now).notify.is_some(),
            "a pause never silences an emergency stop"
        );
        // A gap on a channel this profile last heard from before `now`:
        // the entry says from when.
        let tick = event(r#"{"type":"tick","channel":"sessions:demo","data":{}}"#);
        let earlier = now - chrono::Duration::minutes(5);
        assert!(alerts.on_event("desk", &tick, earlier).notify.is_none());
        let gap = crate::client::Notice::Gap {
            channel: "sessions:demo".into(),
            requested: 3,
            oldest: 9,
            criticals_kept: true,
        };
        let none = alerts.on_notice("desk", &Arc::from("desk"), &gap, now);
        assert!(none.is_none(), "only ordinary events lost: no bubble");
        alerts.flush().unwrap();
        let c = alerts.counts(999).unwrap();
        assert_eq!((c.total, c.critical), (5, 3), "{c:?}");
        let said = c.gap.unwrap();
        let from = earlier
            .with_timezone(&chrono::Local)
            .format("%H:%M")
            .to_string();
        assert!(
            said.starts_with(&format!(
                "Ordinary events on sessions:demo between {from} and "
            )),
            "{said}"
        );
        let ids: Vec<i64> = alerts
            .search(&Query::default())
            .unwrap()
            .iter()
            .map(|a| a.id)
            .collect();
        assert_eq!(alerts.acknowledge(&ids).unwrap(), 5);
        let c = alerts.counts(999).unwrap();
        assert_eq!((c.unread, c.critical, c.gap), (0, 0, None));
    }

    fn keeping(keep: &str) -> Prefs {
        Prefs::from_toml(&format!("[inbox]\nkeep = \"{keep}\"\n"), "test")
            .expect("valid")
            .0
    }

    /// One inbox for every profile keeps alerts as long as the profile
    /// that wants them longest, follows its profiles as they come and go,
    /// and keeps unacknowledged critical alerts whatever their age.
    #[test]
    fn the_inbox_keeps_alerts_as_long_as_the_longest_profile_wants() {
        let days = |n: u64| Duration::from_secs(n * 86_400);
        let r = retention_of([keeping("7d"), keeping("30d")].iter());
        assert_eq!(r.max_age, Some(days(30)));
        assert_eq!(r.keep_unacknowledged, Some(Severity::Critical));
        assert_eq!(
            retention_of([keeping("7d"), keeping("off")].iter()).max_age,
            None
        );
        assert_eq!(
            retention_of(std::iter::once(&Prefs::default())).max_age,
            Some(days(90)),
            "90 days unless a profile says otherwise"
        );

        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("inbox.sqlite3");
        let ago = |n: i64| Utc::now() - chrono::Duration::days(n);
        let ids = {
            let mut inbox = Inbox::open(&path).unwrap();
            let stop = r#"{"type":"session_status","sessionId":"S1","status":"emergency_stopped"}"#;
            inbox
                .insert(&[
                    Record::new(event(r#"{"type":"t","n":1}"#), ago(100)),
                    Record::new(event(r#"{"type":"t","n":2}"#), ago(20)),
                    Record::new(event(stop), ago(400)),
                ])
                .unwrap()
        };
        let cfg = AlertsConfig::default()
            .inbox(Some(path.clone()))
            .fallback(keeping("off"));
        let (alerts, _committed) = Alerts::open(cfg).unwrap();
        let count = |alerts: &Alerts| {
            alerts.flush().unwrap();
            alerts.counts(u64::MAX).unwrap().total
        };
        assert_eq!(count(&alerts), 3, "the fallback keeps everything");
        alerts.set_prefs("a", keeping("200d"), vec![]);
        alerts.set_prefs("b", keeping("30d"), vec![]);
        assert_eq!(count(&alerts), 3, "profile a wants 200 days");
        alerts.remove_profile("a");
        assert_eq!(count(&alerts), 2, "b's 30 days: the 100-day-old alert goes");
        let reader = Inbox::open(&path).unwrap();
        assert_eq!(reader.missing(&ids).unwrap(), vec![ids[0]]);
        alerts.set_prefs("b", keeping("1d"), vec![]);
        assert_eq!(count(&alerts), 1, "the unacknowledged emergency stop stays");
    }

    /// Acknowledge, undo, read one whole, export while counting: the
    /// inbox commands the desktop and the CLI share.
    #[test]
    fn an_alert_acknowledged_can_be_undone_read_whole_and_exported() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("inbox.sqlite3");
        let stop = r#"{"type":"session_status","sessionId":"S1","status":"emergency_stopped","note":"<b>x</b>"}"#;
        let id = Inbox::open(&path)
            .unwrap()
            .insert(&[Record::new(event(stop), Utc::now())])
            .unwrap()[0];
        let (alerts, _committed) = Alerts::open(AlertsConfig::default().inbox(Some(path))).unwrap();
        assert_eq!(alerts.counts(99).unwrap().critical, 1);
        assert_eq!(alerts.acknowledge(&[id]).unwrap(), 1);
        assert_eq!(alerts.counts(99).unwrap().critical, 0);
        assert_eq!(alerts.unacknowledge(&[id]).unwrap(), 1);
        assert_eq!(alerts.unacknowledge(&[id]).unwrap(), 0, "once");
        assert_eq!(alerts.counts(99).unwrap().critical, 1);
        let whole = alerts.get(id).unwrap().expect("stored");
        assert_eq!(whole.event.payload.get(), stop, "the message as received");
        assert!(alerts.get(id + 1).unwrap().is_none());
        assert_eq!(alerts.newest_with_key("nobody's").unwrap(), None);
        let mut csv = Vec::new();
        let n = alerts
            .export(&Query::default(), ExportFormat::Csv, &mut csv)
            .unwrap();
        assert_eq!(n, 1);
        assert!(
            String::from_utf8(csv)
                .unwrap()
                .contains("emergency_stopped")
        );
    }
}
