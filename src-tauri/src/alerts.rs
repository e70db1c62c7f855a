//! The desktop's adapter of the library's alerting pipeline
//! ([`riskwatch::alerting::Alerts`], shared with the CLI): the app's one
//! inbox and notifier, the desktop's fallback preferences, and the inbox as
//! the webview's views. Managed Tauri state. (A notification's Acknowledge
//! and Open are wired to the window in `window.rs`.)

use std::path::Path;
use std::sync::mpsc;

use chrono::{DateTime, Utc};
use riskwatch::Event;
use riskwatch::alerting::{AlertsConfig, AlertsError};
use riskwatch::engine::Notification;
use riskwatch::inbox::{Committed, ExportFormat, InboxError};

use crate::error::Error;
use crate::profiles::desktop_prefs;
use crate::view::{AlertDetail, AlertView, ExportView, InboxCounts, InboxFilter};

/// The pipeline, with the desktop's views over it.
#[derive(Debug)]
pub struct Alerts(riskwatch::alerting::Alerts);

impl std::ops::Deref for Alerts {
    type Target = riskwatch::alerting::Alerts;
    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

impl Alerts {
    /// Opens (creating) the inbox at `path`; returns the receiver of its
    /// commit reports. `notify`: raise OS notifications at all.
    pub fn open(path: &Path, notify: bool) -> Result<(Alerts, mpsc::Receiver<Committed>), Error> {
        let cfg = AlertsConfig::default()
            .inbox(Some(path.to_path_buf()))
            .notify(notify)
            .fallback(desktop_prefs());
        let (alerts, committed) = riskwatch::alerting::Alerts::open(cfg)?;
        let committed = committed.ok_or_else(|| Error::Inbox("no inbox".into()))?;
        Ok((Alerts(alerts), committed))
    }

    /// Runs one event through its profile's engine (stored when listed);
    /// the notification to raise, if any and shown.
    pub fn on_event(
        &self,
        profile: &str,
        event: &Event,
        now: DateTime<Utc>,
    ) -> Option<Notification> {
        self.0.on_event(profile, event, now).notify
    }

    pub fn counts(&self) -> Result<InboxCounts, Error> {
        let c = self.0.counts(InboxCounts::UNREAD_CAP)?;
        Ok(InboxCounts {
            total: c.total,
            unread: c.unread,
            critical: c.critical,
            paused_until: c.paused_until,
            gap: c.gap,
        })
    }

    pub fn search(&self, filter: &InboxFilter) -> Result<Vec<AlertView>, Error> {
        let found = self.0.search(&filter.query())?;
        Ok(found.iter().map(AlertView::new).collect())
    }

    /// Acknowledges these alerts in the inbox and in the engine (no more
    /// repeats). Returns how many changed.
    pub fn acknowledge(&self, ids: &[i64]) -> Result<usize, Error> {
        Ok(self.0.acknowledge(ids)?)
    }

    /// Undoes acknowledgements; returns how many changed.
    pub fn unacknowledge(&self, ids: &[i64]) -> Result<usize, Error> {
        Ok(self.0.unacknowledge(ids)?)
    }

    /// One alert whole, for the detail view.
    pub fn detail(&self, id: i64) -> Result<Option<AlertDetail>, Error> {
        Ok(self.0.get(id)?.as_ref().map(AlertDetail::new))
    }

    /// Writes what `filter` matches (every page) to a new file in `dir`,
    /// `riskwatch-inbox-<local time>.csv|json`, never over an existing
    /// one.
    pub fn export(
        &self,
        filter: &InboxFilter,
        format: ExportFormat,
        dir: &Path,
    ) -> Result<ExportView, Error> {
        let ext = format.extension();
        let stamp = chrono::Local::now().format("%Y-%m-%d-%H%M%S");
        let io = |what: &str, path: &Path, e: std::io::Error| {
            Error::Inbox(format!("export: {what} {}: {e}", path.display()))
        };
        let (path, file) = (0..100)
            .map(|n| match n {
                0 => dir.join(format!("riskwatch-inbox-{stamp}.{ext}")),
                n => dir.join(format!("riskwatch-inbox-{stamp}-{n}.{ext}")),
            })
            .find_map(|path| {
                match std::fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .open(&path)
                {
                    Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => None,
                    other => Some((path, other)),
                }
            })
            .ok_or_else(|| {
                Error::Inbox(format!("export: no free file name in {}", dir.display()))
            })?;
        let file = file.map_err(|e| io("cannot create", &path, e))?;
        let mut out = std::io::BufWriter::new(file);
        let count = match self.0.export(&filter.query(), format, &mut out) {
            Ok(n) => n,
            Err(e) => {
                drop(out);
                let _ = std::fs::remove_file(&path);
                return Err(e.into());
            }
        };
        out.into_inner()
            .map_err(|e| io("cannot write", &path, e.into_error()))?
            .sync_all()
            .map_err(|e| io("cannot write", &path, e))?;
        Ok(ExportView {
            path: path.display().to_string(),
            count,
        })
    }

    /// Acknowledges one alert by its engine key (a notification's action).
    pub fn acknowledge_key(&self, key: &str) -> Result<usize, Error> {
        Ok(self.0.acknowledge_key(key)?)
    }
}

impl From<InboxError> for Error {
    fn from(e: InboxError) -> Error {
        Error::Inbox(e.to_string())
    }
}

impl From<AlertsError> for Error {
    fn from(e: AlertsError) -> Error {
        Error::Inbox(e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use riskwatch::Severity;
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
        alerts.0.flush().unwrap();
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

    /// The inbox's detail view, undo, paging and export, as the window
    /// calls them: the message whole and as text, pages that neither
    /// repeat nor skip, a new file per export that never replaces one.
    #[test]
    fn detail_undo_pages_and_exports() {
        let dir = tempfile::tempdir().unwrap();
        let (alerts, _committed) = Alerts::open(&dir.path().join("inbox.sqlite3"), false).unwrap();
        let now = Utc::now();
        for i in 0..5 {
            let text = format!(
                r#"{{"type":"risk_alert","sessionId":"S{i}","alertLevel":"critical","alertType":"loss_limit","message":"<b>m{i}</b>","currentValue":92,"threshold":90}}"#
            );
            alerts.on_event("demo", &event(&text), now);
        }
        flush(&alerts);
        let page = |before: Option<i64>| {
            let f = InboxFilter {
                limit: Some(2),
                before_id: before,
                ..InboxFilter::default()
            };
            alerts
                .search(&f)
                .unwrap()
                .iter()
                .map(|a| a.id)
                .collect::<Vec<_>>()
        };
        let (p1, p2) = (page(None), page(None));
        assert_eq!(p1, p2);
        let p2 = page(p1.last().copied());
        let p3 = page(p2.last().copied());
        let mut all: Vec<i64> = [p1, p2, p3.clone()].concat();
        assert_eq!(p3.len(), 1, "5 alerts: 2 + 2 + 1");
        all.dedup();
        assert_eq!(all.len(), 5, "no alert on two pages");

        let d = alerts.detail(all[0]).unwrap().expect("stored");
        assert!(
            d.message.contains("\"message\": \"<b>m4</b>\""),
            "{}",
            d.message
        );
        assert_eq!(d.style, "trading");
        assert!(alerts.detail(-1).unwrap().is_none());
        assert_eq!(alerts.acknowledge(&all).unwrap(), 5);
        assert_eq!(alerts.unacknowledge(&all[..2]).unwrap(), 2);
        assert_eq!(alerts.counts().unwrap().critical, 2);

        let out = dir.path().join("out");
        std::fs::create_dir(&out).unwrap();
        let f = InboxFilter::default();
        let csv = alerts.export(&f, ExportFormat::Csv, &out).unwrap();
        let json = alerts.export(&f, ExportFormat::Json, &out).unwrap();
        let again = alerts.export(&f, ExportFormat::Csv, &out).unwrap();
        assert_eq!((csv.count, json.count), (5, 5));
        assert_ne!(csv.path, again.path, "a second export is a new file");
        let text = std::fs::read_to_string(&csv.path).unwrap();
        assert_eq!(text.lines().count(), 6, "a header and 5 rows");
        let parsed: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&json.path).unwrap()).unwrap();
        assert_eq!(parsed.as_array().map(Vec::len), Some(5));
        let nowhere = alerts.export(&f, ExportFormat::Csv, &dir.path().join("missing"));
        assert!(nowhere.unwrap_err().to_string().contains("cannot create"));
        alerts.close();
    }
}
