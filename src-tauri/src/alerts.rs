//! The alert engine between the connections and the user: every event goes
//! through its profile's [`riskwatch::engine::Engine`] (that profile's
//! preferences and rules); what it lists is stored in the one inbox
//! (SQLite) of the app, what it says should notify becomes an OS
//! notification through [`riskwatch::notifier`] unless notifications are
//! paused. Managed Tauri state.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard, mpsc};
use std::time::Duration;

use chrono::{DateTime, Utc};
use riskwatch::engine::{Engine, Notification, Prefs, Rule};
use riskwatch::inbox::{Committed, Inbox, InboxError, Query, Record, Writer, WriterConfig};
use riskwatch::notifier::{Notifier, NotifierConfig, action};
use riskwatch::{Event, Severity};
use tauri::{AppHandle, Manager};

use crate::error::Error;
use crate::profiles::desktop_prefs;
use crate::view::{AlertView, InboxCounts, InboxFilter};

/// The longest [`Alerts::run_due`] sleeps without looking at the wall
/// clock: its timer does not run while the machine is suspended, so a
/// reminder due meanwhile comes at most this late after a resume.
const CHECK_AT_MOST: Duration = Duration::from_secs(30);

/// At most one history-gap bubble per connection this often.
const GAP_BUBBLE_EVERY_SECS: i64 = 10;

/// The engines (one per connected profile), the inbox and the notifier.
#[derive(Debug)]
pub struct Alerts {
    /// By profile name.
    engines: Mutex<HashMap<String, Engine>>,
    /// `None` once the writer failed (logged once).
    writer: Mutex<Option<Writer>>,
    /// A second connection for searches and acknowledgements.
    reader: Mutex<Inbox>,
    notifier: Option<Notifier>,
    paused_until: Mutex<Option<DateTime<Utc>>>,
    /// When each connection last raised a history-gap notification: a hub
    /// restart reports a gap on every channel at once, which is one bubble
    /// (the inbox keeps one entry per channel).
    gap_notified: Mutex<HashMap<String, DateTime<Utc>>>,
    /// Poked when an engine may have something due sooner than the repeat
    /// task is sleeping for (see [`Alerts::next_due`]).
    rescheduled: tokio::sync::Notify,
}

impl Alerts {
    /// Opens (creating) the inbox at `path`; returns the receiver of its
    /// commit reports. `notify`: raise OS notifications at all.
    pub fn open(path: &Path, notify: bool) -> Result<(Alerts, mpsc::Receiver<Committed>), Error> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| Error::Inbox(e.to_string()))?;
        }
        let (writer, committed) = Writer::spawn(path, WriterConfig::default())?;
        let reader = Inbox::open(path)?;
        tracing::info!(inbox = %path.display(), notify, "alerting");
        let alerts = Alerts {
            engines: Mutex::new(HashMap::new()),
            writer: Mutex::new(Some(writer)),
            reader: Mutex::new(reader),
            notifier: notify.then(|| Notifier::new(NotifierConfig::default())),
            paused_until: Mutex::new(None),
            gap_notified: Mutex::new(HashMap::new()),
            rescheduled: tokio::sync::Notify::new(),
        };
        Ok((alerts, committed))
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
        }
        self.rescheduled.notify_one();
    }

    /// Forgets a profile's engine (its connection closed for good).
    pub fn remove_profile(&self, profile: &str) {
        if let Ok(mut engines) = lock(&self.engines) {
            engines.remove(profile);
        }
    }

    /// Runs one event through its profile's engine: stores it when listed;
    /// returns the notification to raise, if any and not paused.
    pub fn on_event(
        &self,
        profile: &str,
        event: &Event,
        now: DateTime<Utc>,
    ) -> Option<Notification> {
        let decision = {
            let mut engines = lock(&self.engines).ok()?;
            let engine = engines
                .entry(profile.to_owned())
                .or_insert_with(|| Engine::new(desktop_prefs(), Vec::new()));
            engine.decide(event, now)
        };
        if decision.scheduled() {
            self.rescheduled.notify_one();
        }
        if decision.list {
            let record = Record::new(event.clone(), now)
                .severity(decision.severity_after_rules)
                .key(decision.key.clone());
            if let Ok(mut writer) = lock(&self.writer)
                && let Some(w) = writer.as_mut()
                && let Err(error) = w.push(record)
            {
                tracing::error!(%error, "the inbox stopped storing events");
                *writer = None;
            }
        }
        decision.notify.filter(|n| self.shown(n, now))
    }

    /// Stores a history gap ([`riskwatch::client::gap_event`]) whatever the
    /// preferences: the user must learn that events are missing. Returns
    /// the notification to raise when critical alerts may be among them.
    pub fn on_gap(&self, event: &Event, now: DateTime<Utc>) -> Option<Notification> {
        let key = format!(
            "gap:{}:{}:{}",
            event.source,
            event.channel.as_deref().unwrap_or_default(),
            event.time.timestamp_millis()
        );
        let record = Record::new(event.clone(), now)
            .severity(event.severity)
            .key(key.clone());
        if let Ok(mut writer) = lock(&self.writer)
            && let Some(w) = writer.as_mut()
            && let Err(error) = w.push(record)
        {
            tracing::error!(%error, "the inbox stopped storing events");
            *writer = None;
        }
        if event.severity < Severity::Critical {
            return None;
        }
        let d = event.describe();
        tracing::warn!(source = %event.source, gap = %d.body, "history gap");
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
    /// [`Alerts::next_due`] and sleeping is not lost): an idle app has no
    /// timer ticking here.
    pub async fn run_due(&self, mut raise: impl FnMut(Notification)) {
        loop {
            let wait = self.next_due().map_or(CHECK_AT_MOST, |due| {
                (due - Utc::now())
                    .to_std()
                    .unwrap_or(Duration::ZERO)
                    .min(CHECK_AT_MOST)
            });
            tokio::select! {
                () = tokio::time::sleep(wait) => {
                    for n in self.tick(Utc::now()) {
                        raise(n);
                    }
                }
                () = self.rescheduled.notified() => {}
            }
        }
    }

    /// What is due at `now`: counts of duplicates, burst summaries, and
    /// repeats of unacknowledged critical alerts.
    pub fn tick(&self, now: DateTime<Utc>) -> Vec<Notification> {
        let due: Vec<Notification> = lock(&self.engines)
            .map(|mut engines| engines.values_mut().flat_map(|e| e.tick(now)).collect())
            .unwrap_or_default();
        due.into_iter().filter(|n| self.shown(n, now)).collect()
    }

    /// Shows `n` in the background (failures are logged by the notifier).
    /// The bubble's Acknowledge acknowledges the alert (inbox, engine,
    /// tray); Open shows the window.
    pub fn raise(&self, app: &AppHandle, n: Notification) {
        let Some(notifier) = self.notifier.clone() else {
            return;
        };
        let app = app.clone();
        tauri::async_runtime::spawn(async move {
            let alert = n.alert.clone();
            let picked = notifier.show_and_wait(n).await;
            match (picked.as_deref(), alert) {
                (Some(action::ACKNOWLEDGE), Some(key)) => {
                    if let Some(alerts) = app.try_state::<Alerts>() {
                        match alerts.acknowledge_key(&key) {
                            Ok(n) => tracing::info!(stored = n, "acknowledged from a notification"),
                            Err(error) => {
                                tracing::warn!(%error, "cannot acknowledge from the notification")
                            }
                        }
                    }
                    crate::link::notify_inbox(&app);
                }
                (Some(action::OPEN), _) => crate::tray::show_main(&app),
                _ => {}
            }
        });
    }

    /// Acknowledges one alert by its engine key (a notification's action).
    pub fn acknowledge_key(&self, key: &str) -> Result<usize, Error> {
        if let Ok(writer) = lock(&self.writer)
            && let Some(w) = writer.as_ref()
        {
            // Rows still queued would miss the acknowledgement.
            w.flush()?;
        }
        let n = lock(&self.reader)?.acknowledge_key(key, Utc::now())?;
        for engine in lock(&self.engines)?.values_mut() {
            engine.acknowledge(key);
        }
        Ok(n)
    }

    pub fn pause_until(&self, until: Option<DateTime<Utc>>) {
        if let Ok(mut p) = lock(&self.paused_until) {
            *p = until;
        }
        tracing::info!(?until, "notifications paused until");
    }

    fn paused(&self, now: DateTime<Utc>) -> bool {
        lock(&self.paused_until)
            .map(|p| p.is_some_and(|t| now < t))
            .unwrap_or(false)
    }

    pub fn counts(&self) -> Result<InboxCounts, Error> {
        let reader = lock(&self.reader)?;
        let unread = reader.unacknowledged()?.min(InboxCounts::UNREAD_CAP);
        let now = Utc::now();
        let mut q = Query::default();
        q.kinds = vec![riskwatch::client::GAP_KIND.to_owned()];
        q.acknowledged = Some(false);
        q.limit = 1;
        let gap = reader.search(&q)?.first().map(|a| a.event.describe().body);
        Ok(InboxCounts {
            total: reader.count()?,
            unread,
            critical: reader.unacknowledged_critical()?,
            paused_until: lock(&self.paused_until)?.filter(|t| now < *t),
            gap,
        })
    }

    pub fn search(&self, filter: &InboxFilter) -> Result<Vec<AlertView>, Error> {
        let found = lock(&self.reader)?.search(&filter.query())?;
        Ok(found.iter().map(AlertView::new).collect())
    }

    /// Acknowledges these alerts in the inbox and in the engine (no more
    /// repeats). Returns how many changed.
    pub fn acknowledge(&self, ids: &[i64]) -> Result<usize, Error> {
        let reader = lock(&self.reader)?;
        let mut keys = Vec::new();
        for id in ids {
            if let Some(key) = reader.get(*id)?.and_then(|a| a.key) {
                keys.push(key);
            }
        }
        let n = reader.acknowledge(ids, Utc::now())?;
        drop(reader);
        let mut engines = lock(&self.engines)?;
        for key in keys {
            for engine in engines.values_mut() {
                engine.acknowledge(&key);
            }
        }
        Ok(n)
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

impl From<InboxError> for Error {
    fn from(e: InboxError) -> Error {
        Error::Inbox(e.to_string())
    }
}

fn lock<T>(m: &Mutex<T>) -> Result<MutexGuard<'_, T>, Error> {
    m.lock().map_err(|_| Error::FeedPoisoned)
}

/// Where the inbox lives: `$RISKWATCH_DATA_DIR/<profile>/inbox.sqlite3`
/// when set (tests), else the library's default data directory.
pub fn inbox_path(profile: &str) -> Option<PathBuf> {
    match std::env::var_os("RISKWATCH_DATA_DIR").filter(|d| !d.is_empty()) {
        Some(dir) => Some(PathBuf::from(dir).join(profile).join("inbox.sqlite3")),
        None => Inbox::default_path(profile),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    use riskwatch::protocol::{Frame, decode};

    fn event(text: &str) -> Event {
        let source: Arc<str> = Arc::from("demo");
        match decode(text, &source, Utc::now()).expect("decodes") {
            Frame::Event(e) => e,
            other => panic!("not an event: {other:?}"),
        }
    }

    /// Commits what the writer holds, so the reader sees it.
    fn flush(alerts: &Alerts) {
        if let Ok(w) = alerts.writer.lock()
            && let Some(w) = w.as_ref()
        {
            w.flush().unwrap();
        }
    }

    /// Every stored alert's id.
    fn all_ids(alerts: &Alerts) -> Vec<i64> {
        alerts
            .search(&InboxFilter::default())
            .unwrap()
            .iter()
            .map(|a| a.id)
            .collect()
    }

    /// The repeat task sleeps while nothing is due, is woken by the event
    /// that schedules a repeat, and raises it on time; after the
    /// acknowledgement it raises nothing more.
    #[test]
    fn due_repeats_are_raised_without_a_ticking_clock() {
        use riskwatch::engine::NotificationKind;
        use riskwatch::engine::prefs::HumanDuration;

        let dir = tempfile::tempdir().unwrap();
        let (alerts, _committed) = Alerts::open(&dir.path().join("inbox.sqlite3"), false).unwrap();
        let alerts = Arc::new(alerts);
        let mut prefs = desktop_prefs();
        prefs.dedupe.repeat_interval = HumanDuration(Duration::from_secs(1));
        alerts.set_prefs("demo", prefs, Vec::new());
        assert_eq!(alerts.next_due(), None, "nothing remembered yet");
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap();
        runtime.block_on(async {
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
            let n = alerts
                .on_event("demo", &critical, Utc::now())
                .expect("critical notifies");
            let key = n.alert.clone().expect("an alert key");
            let wait = Duration::from_secs(5);
            let repeat = tokio::time::timeout(wait, rx.recv())
                .await
                .expect("the repeat came within 5 s, not after the 30 s sleep")
                .expect("the task runs");
            assert_eq!(repeat.kind, NotificationKind::Repeat, "{repeat:?}");
            assert_eq!(repeat.alert.as_deref(), Some(key.as_str()));
            assert_eq!(alerts.acknowledge_key(&key).unwrap(), 1, "one inbox row");
            while let Ok(n) = rx.try_recv() {
                assert_eq!(n.kind, NotificationKind::Repeat, "{n:?}");
            }
            let quiet = tokio::time::timeout(Duration::from_millis(2500), rx.recv()).await;
            assert!(quiet.is_err(), "acknowledged, yet raised: {quiet:?}");
            task.abort();
        });
    }

    /// A history gap is stored whatever the preferences, stays in the
    /// counts (the tray's tooltip, the header) until acknowledged, and
    /// notifies when critical alerts may be among what was lost.
    #[test]
    fn a_gap_is_stored_shown_and_notified_until_acknowledged() {
        use riskwatch::client::{Notice, gap_event};

        let dir = tempfile::tempdir().unwrap();
        let (alerts, _committed) = Alerts::open(&dir.path().join("inbox.sqlite3"), false).unwrap();
        let source: Arc<str> = Arc::from("prod");
        let now = Utc::now();
        let notice = Notice::Gap {
            channel: "sessions:demo".into(),
            requested: 4,
            oldest: 900,
            criticals_kept: false,
        };
        let gap = gap_event(
            &notice,
            &source,
            Some(now - chrono::Duration::minutes(7)),
            now,
        )
        .unwrap();
        let n = alerts
            .on_gap(&gap, now)
            .expect("possibly lost criticals notify");
        assert_eq!(n.severity, Severity::Critical);
        assert_eq!(n.title, "Alerts may be missing");
        // The same restart's gap on another channel: stored, one bubble.
        let other = Notice::Gap {
            channel: "market:SPY".into(),
            requested: 2,
            oldest: 1,
            criticals_kept: false,
        };
        let soon = now + chrono::Duration::milliseconds(20);
        let also = gap_event(&other, &source, None, soon).unwrap();
        assert!(
            alerts.on_gap(&also, soon).is_none(),
            "one bubble per restart"
        );
        flush(&alerts);
        let counts = alerts.counts().unwrap();
        assert_eq!(counts.critical, 2, "{counts:?}");
        let said = counts.gap.expect("the gap is in the counts");
        assert!(
            said.starts_with("Events on market:SPY before ")
                && said.contains("could not be recovered"),
            "{said}"
        );
        // Only ordinary events lost: stored as a warning, no notification.
        let kept = Notice::Gap {
            channel: "c".into(),
            requested: 1,
            oldest: 9,
            criticals_kept: true,
        };
        let later = now + chrono::Duration::seconds(1);
        assert!(
            alerts
                .on_gap(&gap_event(&kept, &source, None, later).unwrap(), later)
                .is_none()
        );
        flush(&alerts);
        let ids = all_ids(&alerts);
        assert_eq!(ids.len(), 3);
        assert_eq!(alerts.acknowledge(&ids).unwrap(), 3);
        let counts = alerts.counts().unwrap();
        assert_eq!((counts.critical, counts.gap), (0, None));
        alerts.close();
    }

    #[test]
    fn a_pause_never_silences_an_emergency_stop() {
        let dir = tempfile::tempdir().unwrap();
        let (alerts, _committed) = Alerts::open(&dir.path().join("inbox.sqlite3"), false).unwrap();
        let now = Utc::now();
        alerts.pause_until(Some(now + chrono::Duration::hours(1)));
        let critical = event(
            r#"{"type":"risk_alert","sessionId":"S1","alertLevel":"critical","alertType":"loss_limit","message":"over","currentValue":92,"threshold":90}"#,
        );
        assert!(alerts.on_event("demo", &critical, now).is_none(), "paused");
        let stop = event(
            r#"{"type":"session_status","sessionId":"S9","status":"emergency_stopped","lossLimitUtilization":100}"#,
        );
        let n = alerts
            .on_event("demo", &stop, now)
            .expect("a pause never silences an emergency stop");
        assert_eq!(n.severity, Severity::Emergency);
        alerts.close();
    }

    #[test]
    fn stores_notifies_counts_and_acknowledges() {
        let dir = tempfile::tempdir().unwrap();
        let (alerts, committed) = Alerts::open(&dir.path().join("a/inbox.sqlite3"), false).unwrap();
        let now = Utc::now();
        let critical = event(
            r#"{"type":"risk_alert","sessionId":"S1","alertLevel":"critical","alertType":"loss_limit","message":"<img src=x onerror=alert(1)>","currentValue":92,"threshold":90}"#,
        );
        let n = alerts
            .on_event("demo", &critical, now)
            .expect("critical notifies");
        assert!(n.title.contains("S1") || n.body.contains("img"), "{n:?}");
        alerts.pause_until(Some(now + chrono::Duration::hours(1)));
        assert!(alerts.on_event("demo", &critical, now).is_none(), "paused");
        alerts.pause_until(None);
        let _ = committed.recv().unwrap();
        flush(&alerts);
        let counts = alerts.counts().unwrap();
        assert!(counts.critical >= 1, "{counts:?}");
        let tick = event(r#"{"type":"market_data","symbol":"SPY","price":1}"#);
        assert!(alerts.on_event("demo", &tick, now).is_none());
        flush(&alerts);
        let listed = alerts.search(&InboxFilter::default()).unwrap();
        assert!(!listed.is_empty());
        assert!(
            listed.iter().all(|a| a.kind != "market_data"),
            "info is not stored"
        );
        // A notification's Acknowledge: by the engine's key.
        let key = n
            .alert
            .clone()
            .expect("an alert notification names its alert");
        assert!(alerts.acknowledge_key(&key).unwrap() >= 1);
        assert_eq!(alerts.counts().unwrap().critical, 0);
        // The inbox's: by id (already acknowledged ones do not count again).
        let other = event(
            r#"{"type":"risk_alert","sessionId":"S2","alertLevel":"high","alertType":"drawdown","message":"m","currentValue":1,"threshold":1}"#,
        );
        alerts.on_event("demo", &other, now);
        flush(&alerts);
        let ids = all_ids(&alerts);
        assert_eq!(alerts.acknowledge(&ids).unwrap(), 1);
        assert_eq!(alerts.counts().unwrap().unread, 0);
        alerts.close();
    }
}
