//! The inbox: every event that passes the filters, kept in a local SQLite
//! database so it survives restarts and crashes.
//!
//! - **WAL mode**: readers (the UI, `search`) never block the writer.
//! - **Batched writes** ([`Writer`]): one thread owns the write connection
//!   and commits whatever is queued as one transaction (group commit: under
//!   load batches grow up to `max_batch`, when idle each event commits at
//!   once). Only after a commit is an event reported as stored
//!   ([`Committed`]), so nothing reported as stored is lost when the
//!   process is killed (`kill -9`): committed WAL frames are in the file.
//!   With [`Durability::Power`] every commit is also synced to disk, so it
//!   survives power loss as well; the default syncs at checkpoints only.
//! - Acknowledge and unacknowledge, one or many or by alert key; search by
//!   text, type, severity, source, time and acknowledgement; retention by
//!   count and age (unacknowledged critical alerts are kept by default);
//!   the count of unacknowledged critical-or-above alerts for the tray.
//!
//! Rows store the event's fields, the severity after rules, the engine's
//! alert key and the payload as JSON text, byte for byte as received.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use rusqlite::{Connection, OptionalExtension, params, params_from_iter};
use serde::Serialize;
use serde_json::value::RawValue;

use crate::protocol::{Event, Severity, Style};

/// What can go wrong with the inbox.
#[derive(Debug, thiserror::Error)]
pub enum InboxError {
    /// SQLite failed (disk full, permissions, a corrupt file). Fatal for
    /// the operation; the caller decides whether to go on without storage.
    #[error("inbox {path}: {source}")]
    Sqlite {
        path: String,
        #[source]
        source: rusqlite::Error,
    },
    /// The directory for the database could not be created.
    #[error("inbox {path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    /// The writer thread has stopped (after a fatal error or `close`).
    #[error("the inbox writer has stopped")]
    Closed,
    /// A stored row could not be turned back into an event.
    #[error("inbox row {id} is unreadable: {reason}")]
    BadRow { id: i64, reason: String },
}

/// How hard each commit holds on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Durability {
    /// Survives the process being killed; the last commits may be lost on
    /// power loss or an OS crash (`synchronous=NORMAL` in WAL mode).
    #[default]
    Process,
    /// Survives power loss too: every commit is fsynced
    /// (`synchronous=FULL`).
    Power,
}

/// Writer settings. Defaults in each field's doc.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct WriterConfig {
    /// Largest transaction. Default 4096 events.
    pub max_batch: usize,
    /// Events queued before [`Writer::push`] blocks (backpressure).
    /// Default 65,536.
    pub queue: usize,
    /// Default [`Durability::Process`].
    pub durability: Durability,
    /// Applied by the writer after commits, at most every
    /// `prune_every`. Default: no limit.
    pub retention: Retention,
    /// Default 60 s.
    pub prune_every: Duration,
}

impl Default for WriterConfig {
    fn default() -> Self {
        WriterConfig {
            max_batch: 4096,
            queue: 65_536,
            durability: Durability::Process,
            retention: Retention::default(),
            prune_every: Duration::from_secs(60),
        }
    }
}

impl WriterConfig {
    pub fn max_batch(mut self, n: usize) -> Self {
        self.max_batch = n.max(1);
        self
    }
    pub fn queue(mut self, n: usize) -> Self {
        self.queue = n.max(1);
        self
    }
    pub fn durability(mut self, d: Durability) -> Self {
        self.durability = d;
        self
    }
    pub fn retention(mut self, r: Retention) -> Self {
        self.retention = r;
        self
    }
    pub fn prune_every(mut self, d: Duration) -> Self {
        self.prune_every = d;
        self
    }
}

/// How much history to keep.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Retention {
    /// Keep at most this many alerts (the newest). Default no limit.
    pub max_count: Option<u64>,
    /// Drop alerts received longer ago than this. Default no limit.
    pub max_age: Option<Duration>,
    /// Unacknowledged alerts at or above this severity are never pruned.
    /// Default critical; `None` prunes everything alike.
    pub keep_unacknowledged: Option<Severity>,
}

impl Default for Retention {
    fn default() -> Self {
        Retention {
            max_count: None,
            max_age: None,
            keep_unacknowledged: Some(Severity::Critical),
        }
    }
}

impl Retention {
    pub fn max_count(mut self, n: u64) -> Self {
        self.max_count = Some(n);
        self
    }
    pub fn max_age(mut self, d: Duration) -> Self {
        self.max_age = Some(d);
        self
    }
    pub fn keep_unacknowledged(mut self, s: Option<Severity>) -> Self {
        self.keep_unacknowledged = s;
        self
    }
    fn is_unlimited(&self) -> bool {
        self.max_count.is_none() && self.max_age.is_none()
    }
}

/// One event to store, with what the engine said about it.
#[derive(Debug, Clone)]
pub struct Record {
    pub event: Event,
    /// The severity after rules.
    pub severity: Severity,
    /// The engine's alert key (for acknowledging by key).
    pub key: Option<String>,
    /// When riskwatch received it.
    pub received: DateTime<Utc>,
}

impl Record {
    /// A record with the event's own severity and no key.
    pub fn new(event: Event, received: DateTime<Utc>) -> Record {
        Record {
            severity: event.severity,
            event,
            key: None,
            received,
        }
    }
    pub fn severity(mut self, s: Severity) -> Self {
        self.severity = s;
        self
    }
    pub fn key(mut self, k: impl Into<String>) -> Self {
        self.key = Some(k.into());
        self
    }
}

/// A stored alert.
#[derive(Debug, Clone, Serialize)]
pub struct StoredAlert {
    pub id: i64,
    pub event: Event,
    /// The severity after rules.
    pub severity: Severity,
    pub key: Option<String>,
    pub received: DateTime<Utc>,
    /// When it was acknowledged; `None` while unacknowledged.
    pub acknowledged: Option<DateTime<Utc>>,
}

/// A search. Every criterion is optional; results are newest first.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Query {
    /// Case-insensitive substring of the payload, subject or channel.
    pub text: Option<String>,
    /// Any of these types. Empty: all.
    pub kinds: Vec<String>,
    /// Severity (after rules) at least this.
    pub min_severity: Option<Severity>,
    /// Any of these sources. Empty: all.
    pub sources: Vec<String>,
    /// Event time at or after.
    pub since: Option<DateTime<Utc>>,
    /// Event time before.
    pub until: Option<DateTime<Utc>>,
    /// Only acknowledged (`Some(true)`) or unacknowledged (`Some(false)`).
    pub acknowledged: Option<bool>,
    /// Only ids below this (paging). Default none.
    pub before_id: Option<i64>,
    /// Default 100.
    pub limit: usize,
}

impl Default for Query {
    fn default() -> Self {
        Query {
            text: None,
            kinds: Vec::new(),
            min_severity: None,
            sources: Vec::new(),
            since: None,
            until: None,
            acknowledged: None,
            before_id: None,
            limit: 100,
        }
    }
}

impl Query {
    pub fn text(mut self, t: impl Into<String>) -> Self {
        self.text = Some(t.into());
        self
    }
    pub fn kind(mut self, k: impl Into<String>) -> Self {
        self.kinds.push(k.into());
        self
    }
    pub fn min_severity(mut self, s: Severity) -> Self {
        self.min_severity = Some(s);
        self
    }
    pub fn source(mut self, s: impl Into<String>) -> Self {
        self.sources.push(s.into());
        self
    }
    pub fn since(mut self, t: DateTime<Utc>) -> Self {
        self.since = Some(t);
        self
    }
    pub fn until(mut self, t: DateTime<Utc>) -> Self {
        self.until = Some(t);
        self
    }
    pub fn acknowledged(mut self, a: bool) -> Self {
        self.acknowledged = Some(a);
        self
    }
    pub fn before_id(mut self, id: i64) -> Self {
        self.before_id = Some(id);
        self
    }
    pub fn limit(mut self, n: usize) -> Self {
        self.limit = n;
        self
    }
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS alerts (
    id             INTEGER PRIMARY KEY,
    type           TEXT    NOT NULL,
    severity       INTEGER NOT NULL,  -- after rules: 0 info, 1 warning, 2 critical, 3 emergency
    event_severity INTEGER NOT NULL,  -- as decoded
    style          TEXT    NOT NULL,
    channel        TEXT,
    subject        TEXT,
    source         TEXT    NOT NULL,
    time_ms        INTEGER NOT NULL,  -- event time, ms since the epoch (UTC)
    server_time    INTEGER NOT NULL,
    event_id       TEXT,
    seq            INTEGER,
    alert_key      TEXT,
    payload        TEXT    NOT NULL,  -- the message as received
    received_ms    INTEGER NOT NULL,
    acked_ms       INTEGER            -- NULL while unacknowledged
);
CREATE INDEX IF NOT EXISTS alerts_time ON alerts(time_ms);
CREATE INDEX IF NOT EXISTS alerts_unacked ON alerts(severity) WHERE acked_ms IS NULL;
CREATE INDEX IF NOT EXISTS alerts_key ON alerts(alert_key);
PRAGMA user_version = 1;
";

const INSERT: &str = "INSERT INTO alerts (type, severity, event_severity, style, channel, subject, \
source, time_ms, server_time, event_id, seq, alert_key, payload, received_ms) \
VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)";

const COLUMNS: &str = "id, type, severity, event_severity, style, channel, subject, source, \
time_ms, server_time, event_id, seq, alert_key, payload, received_ms, acked_ms";

fn sev_num(s: Severity) -> i64 {
    match s {
        Severity::Info => 0,
        Severity::Warning => 1,
        Severity::Critical => 2,
        Severity::Emergency => 3,
    }
}

fn sev_of(n: i64) -> Severity {
    match n {
        i64::MIN..=0 => Severity::Info,
        1 => Severity::Warning,
        2 => Severity::Critical,
        _ => Severity::Emergency,
    }
}

fn ms_to_time(ms: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(ms).unwrap_or_default()
}

fn open_conn(path: &Path, durability: Durability) -> Result<Connection, InboxError> {
    let p = path.display().to_string();
    let sql = |source| InboxError::Sqlite {
        path: p.clone(),
        source,
    };
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|source| InboxError::Io {
            path: p.clone(),
            source,
        })?;
    }
    let conn = Connection::open(path).map_err(sql)?;
    conn.busy_timeout(Duration::from_secs(10)).map_err(sql)?;
    // journal_mode returns a row; pragma_update would complain about it.
    let mode: String = conn
        .query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0))
        .map_err(sql)?;
    if !mode.eq_ignore_ascii_case("wal") {
        tracing::warn!(path = %p, mode, "the inbox could not switch to WAL mode");
    }
    let sync = match durability {
        Durability::Process => "NORMAL",
        Durability::Power => "FULL",
    };
    conn.pragma_update(None, "synchronous", sync).map_err(sql)?;
    conn.execute_batch(SCHEMA).map_err(sql)?;
    Ok(conn)
}

fn insert_one(stmt: &mut rusqlite::CachedStatement<'_>, r: &Record) -> rusqlite::Result<()> {
    let e = &r.event;
    stmt.execute(params![
        e.kind,
        sev_num(r.severity),
        sev_num(e.severity),
        e.style.as_str(),
        e.channel,
        e.subject,
        &*e.source,
        e.time.timestamp_millis(),
        e.server_time,
        e.id,
        e.seq.and_then(|s| i64::try_from(s).ok()),
        r.key,
        e.payload.get(),
        r.received.timestamp_millis(),
    ])?;
    Ok(())
}

fn insert_batch(conn: &mut Connection, records: &[Record]) -> rusqlite::Result<Vec<i64>> {
    let tx = conn.transaction()?;
    let mut ids = Vec::with_capacity(records.len());
    {
        let mut stmt = tx.prepare_cached(INSERT)?;
        for r in records {
            insert_one(&mut stmt, r)?;
            ids.push(tx.last_insert_rowid());
        }
    }
    tx.commit()?;
    Ok(ids)
}

fn row_to_alert(row: &rusqlite::Row<'_>) -> rusqlite::Result<Result<StoredAlert, InboxError>> {
    let id: i64 = row.get(0)?;
    let style: String = row.get(4)?;
    let source: String = row.get(7)?;
    let payload: String = row.get(13)?;
    let seq: Option<i64> = row.get(11)?;
    let payload = match RawValue::from_string(payload) {
        Ok(p) => p,
        Err(e) => {
            return Ok(Err(InboxError::BadRow {
                id,
                reason: e.to_string(),
            }));
        }
    };
    let event = Event {
        kind: row.get(1)?,
        severity: sev_of(row.get(3)?),
        style: style.parse().unwrap_or(Style::Generic),
        channel: row.get(5)?,
        subject: row.get(6)?,
        source: Arc::from(source),
        time: ms_to_time(row.get(8)?),
        server_time: row.get(9)?,
        id: row.get(10)?,
        seq: seq.and_then(|s| u64::try_from(s).ok()),
        payload,
    };
    let acked: Option<i64> = row.get(15)?;
    Ok(Ok(StoredAlert {
        id,
        event,
        severity: sev_of(row.get(2)?),
        key: row.get(12)?,
        received: ms_to_time(row.get(14)?),
        acknowledged: acked.map(ms_to_time),
    }))
}

/// Escapes `%`, `_` and `\` for `LIKE … ESCAPE '\'`.
fn like_pattern(text: &str) -> String {
    let mut s = String::with_capacity(text.len() + 2);
    s.push('%');
    for c in text.chars() {
        if matches!(c, '%' | '_' | '\\') {
            s.push('\\');
        }
        s.push(c);
    }
    s.push('%');
    s
}

fn prune(conn: &Connection, r: &Retention, now: DateTime<Utc>) -> rusqlite::Result<usize> {
    if r.is_unlimited() {
        return Ok(0);
    }
    let keep = match r.keep_unacknowledged {
        Some(s) => format!(" AND NOT (acked_ms IS NULL AND severity >= {})", sev_num(s)),
        None => String::new(),
    };
    let mut n = 0;
    if let Some(age) = r.max_age {
        // An age beyond the calendar keeps everything.
        let cutoff = chrono::Duration::from_std(age)
            .ok()
            .and_then(|d| now.checked_sub_signed(d))
            .unwrap_or(DateTime::<Utc>::MIN_UTC);
        n += conn.execute(
            &format!("DELETE FROM alerts WHERE received_ms < ?1{keep}"),
            [cutoff.timestamp_millis()],
        )?;
    }
    if let Some(max) = r.max_count {
        let offset = i64::try_from(max).unwrap_or(i64::MAX);
        n += conn.execute(
            &format!(
                "DELETE FROM alerts WHERE id <= (SELECT id FROM alerts ORDER BY id DESC LIMIT 1 OFFSET ?1){keep}"
            ),
            [offset],
        )?;
    }
    Ok(n)
}

/// A connection for reading, acknowledging and pruning. Cheap to open;
/// open one per thread (it is `Send`, not `Sync`).
pub struct Inbox {
    conn: Connection,
    path: PathBuf,
}

impl std::fmt::Debug for Inbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Inbox").field("path", &self.path).finish()
    }
}

impl Inbox {
    /// Opens (creating if needed) the database at `path`.
    pub fn open(path: impl AsRef<Path>) -> Result<Inbox, InboxError> {
        let path = path.as_ref().to_path_buf();
        let conn = open_conn(&path, Durability::Process)?;
        Ok(Inbox { conn, path })
    }

    /// The default inbox of a profile: `<data dir>/riskwatch/<profile>/inbox.sqlite3`
    /// (`~/.local/share/riskwatch/…` on Linux).
    pub fn default_path(profile: &str) -> Option<PathBuf> {
        directories::ProjectDirs::from("", "", "riskwatch")
            .map(|d| d.data_dir().join(profile).join("inbox.sqlite3"))
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn err(&self, source: rusqlite::Error) -> InboxError {
        InboxError::Sqlite {
            path: self.path.display().to_string(),
            source,
        }
    }

    /// Stores records in one transaction, returning their ids once
    /// committed. For streams use a [`Writer`].
    pub fn insert(&mut self, records: &[Record]) -> Result<Vec<i64>, InboxError> {
        insert_batch(&mut self.conn, records).map_err(|e| self.err(e))
    }

    /// One alert by id.
    pub fn get(&self, id: i64) -> Result<Option<StoredAlert>, InboxError> {
        let row = self
            .conn
            .query_row(
                &format!("SELECT {COLUMNS} FROM alerts WHERE id = ?1"),
                [id],
                row_to_alert,
            )
            .optional()
            .map_err(|e| self.err(e))?;
        row.transpose()
    }

    /// Whether these ids are stored; returns the ones that are missing.
    pub fn missing(&self, ids: &[i64]) -> Result<Vec<i64>, InboxError> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT 1 FROM alerts WHERE id = ?1")
            .map_err(|e| self.err(e))?;
        let mut out = Vec::new();
        for id in ids {
            if !stmt.exists([id]).map_err(|e| self.err(e))? {
                out.push(*id);
            }
        }
        Ok(out)
    }

    /// Searches, newest first.
    pub fn search(&self, q: &Query) -> Result<Vec<StoredAlert>, InboxError> {
        use rusqlite::types::Value as V;
        let mut wh: Vec<String> = Vec::new();
        let mut args: Vec<V> = Vec::new();
        let arg = |v: V, args: &mut Vec<V>| {
            args.push(v);
            format!("?{}", args.len())
        };
        if let Some(t) = q.text.as_deref().filter(|t| !t.is_empty()) {
            let a = arg(V::Text(like_pattern(t)), &mut args);
            wh.push(format!(
                "(payload LIKE {a} ESCAPE '\\' OR subject LIKE {a} ESCAPE '\\' OR channel LIKE {a} ESCAPE '\\' OR type LIKE {a} ESCAPE '\\')"
            ));
        }
        if !q.kinds.is_empty() {
            let list: Vec<String> = q
                .kinds
                .iter()
                .map(|k| arg(V::Text(k.clone()), &mut args))
                .collect();
            wh.push(format!("type IN ({})", list.join(", ")));
        }
        if !q.sources.is_empty() {
            let list: Vec<String> = q
                .sources
                .iter()
                .map(|k| arg(V::Text(k.clone()), &mut args))
                .collect();
            wh.push(format!("source IN ({})", list.join(", ")));
        }
        if let Some(s) = q.min_severity {
            let a = arg(V::Integer(sev_num(s)), &mut args);
            wh.push(format!("severity >= {a}"));
        }
        if let Some(t) = q.since {
            let a = arg(V::Integer(t.timestamp_millis()), &mut args);
            wh.push(format!("time_ms >= {a}"));
        }
        if let Some(t) = q.until {
            let a = arg(V::Integer(t.timestamp_millis()), &mut args);
            wh.push(format!("time_ms < {a}"));
        }
        match q.acknowledged {
            Some(true) => wh.push("acked_ms IS NOT NULL".into()),
            Some(false) => wh.push("acked_ms IS NULL".into()),
            None => {}
        }
        if let Some(id) = q.before_id {
            let a = arg(V::Integer(id), &mut args);
            wh.push(format!("id < {a}"));
        }
        let limit = arg(
            V::Integer(i64::try_from(q.limit).unwrap_or(i64::MAX)),
            &mut args,
        );
        let where_ = if wh.is_empty() {
            String::new()
        } else {
            format!("WHERE {}", wh.join(" AND "))
        };
        let sql = format!("SELECT {COLUMNS} FROM alerts {where_} ORDER BY id DESC LIMIT {limit}");
        let mut stmt = self.conn.prepare(&sql).map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map(params_from_iter(args), row_to_alert)
            .map_err(|e| self.err(e))?;
        let mut out = Vec::new();
        for r in rows {
            out.push(r.map_err(|e| self.err(e))??);
        }
        Ok(out)
    }

    fn set_acked(&self, ids: &[i64], acked: Option<i64>) -> Result<usize, InboxError> {
        let tx = self.conn.unchecked_transaction().map_err(|e| self.err(e))?;
        let mut n = 0;
        {
            let sql = if acked.is_some() {
                "UPDATE alerts SET acked_ms = ?2 WHERE id = ?1 AND acked_ms IS NULL"
            } else {
                "UPDATE alerts SET acked_ms = NULL WHERE id = ?1 AND acked_ms IS NOT NULL AND ?2 IS NULL"
            };
            let mut stmt = tx.prepare_cached(sql).map_err(|e| self.err(e))?;
            for id in ids {
                n += stmt.execute(params![id, acked]).map_err(|e| self.err(e))?;
            }
        }
        tx.commit().map_err(|e| self.err(e))?;
        Ok(n)
    }

    /// Acknowledges alerts; returns how many changed.
    pub fn acknowledge(&self, ids: &[i64], now: DateTime<Utc>) -> Result<usize, InboxError> {
        self.set_acked(ids, Some(now.timestamp_millis()))
    }

    /// Undoes acknowledgements; returns how many changed.
    pub fn unacknowledge(&self, ids: &[i64]) -> Result<usize, InboxError> {
        self.set_acked(ids, None)
    }

    /// Acknowledges every unacknowledged alert with this engine key (what
    /// a notification's "Acknowledge" action does).
    pub fn acknowledge_key(&self, key: &str, now: DateTime<Utc>) -> Result<usize, InboxError> {
        self.conn
            .execute(
                "UPDATE alerts SET acked_ms = ?2 WHERE alert_key = ?1 AND acked_ms IS NULL",
                params![key, now.timestamp_millis()],
            )
            .map_err(|e| self.err(e))
    }

    /// Acknowledges everything unacknowledged that matches `q` (its limit
    /// and paging are ignored); returns how many changed.
    pub fn acknowledge_matching(&self, q: &Query, now: DateTime<Utc>) -> Result<usize, InboxError> {
        let mut all = q.clone();
        all.acknowledged = Some(false);
        all.limit = usize::MAX >> 1;
        all.before_id = None;
        let ids: Vec<i64> = self.search(&all)?.into_iter().map(|a| a.id).collect();
        self.acknowledge(&ids, now)
    }

    /// The number the tray shows: unacknowledged alerts at critical or
    /// above (severity after rules).
    pub fn unacknowledged_critical(&self) -> Result<u64, InboxError> {
        self.count_sql("SELECT count(*) FROM alerts WHERE acked_ms IS NULL AND severity >= 2")
    }

    /// Unacknowledged alerts of any severity (served by the partial index
    /// on unacknowledged rows, not a scan of the table).
    pub fn unacknowledged(&self) -> Result<u64, InboxError> {
        self.count_sql("SELECT count(*) FROM alerts WHERE acked_ms IS NULL")
    }

    /// All stored alerts.
    pub fn count(&self) -> Result<u64, InboxError> {
        self.count_sql("SELECT count(*) FROM alerts")
    }

    fn count_sql(&self, sql: &str) -> Result<u64, InboxError> {
        self.conn
            .query_row(sql, [], |r| r.get::<_, i64>(0))
            .map(|n| u64::try_from(n).unwrap_or(0))
            .map_err(|e| self.err(e))
    }

    /// Applies a retention policy now; returns how many alerts were dropped.
    pub fn prune(&self, r: &Retention, now: DateTime<Utc>) -> Result<usize, InboxError> {
        prune(&self.conn, r, now).map_err(|e| self.err(e))
    }
}

/// Reported after each commit: the records pushed with tickets
/// `first_ticket ..` are stored under these ids, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Committed {
    pub first_ticket: u64,
    pub ids: Vec<i64>,
}

enum Cmd {
    Insert(Box<Record>),
    Flush(mpsc::SyncSender<Result<(), String>>),
}

/// The batching writer: a thread that owns the write connection.
///
/// [`Writer::push`] queues a record and returns its ticket; the thread
/// commits what is queued and reports [`Committed`] on the channel returned
/// by [`Writer::spawn`] only after the commit. Dropping the writer commits
/// what is queued and stops the thread.
pub struct Writer {
    tx: Option<mpsc::SyncSender<Cmd>>,
    handle: Option<thread::JoinHandle<()>>,
    next_ticket: u64,
}

impl std::fmt::Debug for Writer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Writer")
            .field("next_ticket", &self.next_ticket)
            .finish()
    }
}

impl Writer {
    /// Opens the database and starts the writer thread.
    pub fn spawn(
        path: impl AsRef<Path>,
        cfg: WriterConfig,
    ) -> Result<(Writer, mpsc::Receiver<Committed>), InboxError> {
        let path = path.as_ref().to_path_buf();
        let conn = open_conn(&path, cfg.durability)?;
        let (tx, rx) = mpsc::sync_channel::<Cmd>(cfg.queue);
        let (done_tx, done_rx) = mpsc::channel();
        let handle = thread::Builder::new()
            .name("riskwatch-inbox".into())
            .spawn(move || writer_loop(conn, path, cfg, rx, done_tx))
            .map_err(|source| InboxError::Io {
                path: "inbox writer thread".into(),
                source,
            })?;
        Ok((
            Writer {
                tx: Some(tx),
                handle: Some(handle),
                next_ticket: 0,
            },
            done_rx,
        ))
    }

    /// Queues a record; blocks while the queue is full. Returns its ticket
    /// (0, 1, 2, … in push order).
    pub fn push(&mut self, r: Record) -> Result<u64, InboxError> {
        let tx = self.tx.as_ref().ok_or(InboxError::Closed)?;
        tx.send(Cmd::Insert(Box::new(r)))
            .map_err(|_| InboxError::Closed)?;
        let t = self.next_ticket;
        self.next_ticket += 1;
        Ok(t)
    }

    /// Blocks until everything pushed so far is committed.
    pub fn flush(&self) -> Result<(), InboxError> {
        let tx = self.tx.as_ref().ok_or(InboxError::Closed)?;
        let (done, wait) = mpsc::sync_channel(1);
        tx.send(Cmd::Flush(done)).map_err(|_| InboxError::Closed)?;
        match wait.recv() {
            Ok(Ok(())) => Ok(()),
            Ok(Err(msg)) => Err(InboxError::Sqlite {
                path: msg,
                source: rusqlite::Error::ExecuteReturnedResults,
            }),
            Err(_) => Err(InboxError::Closed),
        }
    }

    /// Commits what is queued and stops the thread.
    pub fn close(mut self) -> Result<(), InboxError> {
        self.stop()
    }

    fn stop(&mut self) -> Result<(), InboxError> {
        self.tx.take();
        match self.handle.take() {
            Some(h) => h.join().map_err(|_| InboxError::Closed),
            None => Ok(()),
        }
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        let _ = self.stop();
    }
}

fn writer_loop(
    mut conn: Connection,
    path: PathBuf,
    cfg: WriterConfig,
    rx: mpsc::Receiver<Cmd>,
    done: mpsc::Sender<Committed>,
) {
    let mut next_ticket: u64 = 0;
    let mut last_prune = Instant::now();
    let mut batch: Vec<Record> = Vec::with_capacity(cfg.max_batch.min(65_536));
    let mut flushes = Vec::new();
    // Block for the first command, then take whatever else is queued.
    while let Ok(first) = rx.recv() {
        let mut cmd = Some(first);
        while let Some(c) = cmd.take() {
            match c {
                Cmd::Insert(r) => batch.push(*r),
                Cmd::Flush(f) => flushes.push(f),
            }
            if batch.len() >= cfg.max_batch {
                break;
            }
            cmd = rx.try_recv().ok();
        }
        let mut result = Ok(());
        if !batch.is_empty() {
            match commit_with_retry(&mut conn, &batch) {
                Ok(ids) => {
                    let _ = done.send(Committed {
                        first_ticket: next_ticket,
                        ids,
                    });
                }
                Err(e) => {
                    tracing::error!(path = %path.display(), error = %e, lost = batch.len(), "inbox commit failed");
                    result = Err(format!("{}: {e}", path.display()));
                }
            }
            next_ticket += batch.len() as u64;
            batch.clear();
        }
        for f in flushes.drain(..) {
            let _ = f.send(result.clone());
        }
        if !cfg.retention.is_unlimited() && last_prune.elapsed() >= cfg.prune_every {
            last_prune = Instant::now();
            match prune(&conn, &cfg.retention, Utc::now()) {
                Ok(0) => {}
                Ok(n) => tracing::debug!(n, "inbox retention pruned alerts"),
                Err(e) => tracing::warn!(error = %e, "inbox retention failed"),
            }
        }
    }
}

fn commit_with_retry(conn: &mut Connection, batch: &[Record]) -> rusqlite::Result<Vec<i64>> {
    let mut attempt = 0;
    loop {
        match insert_batch(conn, batch) {
            Ok(ids) => return Ok(ids),
            Err(rusqlite::Error::SqliteFailure(e, _))
                if attempt < 3
                    && matches!(
                        e.code,
                        rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked
                    ) =>
            {
                attempt += 1;
                thread::sleep(Duration::from_millis(50 * attempt));
            }
            Err(e) => return Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::{Frame, decode};
    use chrono::TimeZone;

    fn ev(json: &str, secs: i64) -> Event {
        let t =
            Utc.with_ymd_and_hms(2025, 1, 1, 0, 0, 0).unwrap() + chrono::Duration::seconds(secs);
        match decode(json, &Arc::from("desk"), t) {
            Ok(Frame::Event(e)) => e,
            other => panic!("{other:?}"),
        }
    }

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2025, 1, 2, 0, 0, 0).unwrap()
    }

    fn sample() -> Vec<Record> {
        vec![
            Record::new(ev(r#"{"type":"market_data","symbol":"SPY","price":1}"#, 0), now()),
            Record::new(
                ev(r#"{"type":"employee_stress","data":{"employee_id":"E1","department":"Engineering","stress_rate":65.5}}"#, 10),
                now(),
            )
            .key("desk|employee_stress|employee:E1"),
            Record::new(
                ev(r#"{"type":"department_critical","data":{"department_name":"Sales 100%_off"}}"#, 20),
                now(),
            ),
            Record::new(
                ev(r#"{"type":"session_status","sessionId":"S42","status":"emergency_stopped"}"#, 30),
                now(),
            ),
        ]
    }

    #[test]
    fn stores_round_trips_and_counts() {
        let dir = tempfile::tempdir().unwrap();
        let mut inbox = Inbox::open(dir.path().join("a/inbox.db")).unwrap();
        let recs = sample();
        let ids = inbox.insert(&recs).unwrap();
        assert_eq!(ids.len(), 4);
        let got = inbox.get(ids[1]).unwrap().unwrap();
        assert_eq!(got.event, recs[1].event, "the event comes back whole");
        assert_eq!(got.key.as_deref(), Some("desk|employee_stress|employee:E1"));
        assert_eq!(inbox.count().unwrap(), 4);
        assert_eq!(inbox.unacknowledged_critical().unwrap(), 2);
        let mode: String = inbox
            .conn
            .query_row("PRAGMA journal_mode", [], |r| r.get(0))
            .unwrap();
        assert_eq!(mode, "wal");
    }

    #[test]
    fn acknowledge_and_unacknowledge() {
        let dir = tempfile::tempdir().unwrap();
        let mut inbox = Inbox::open(dir.path().join("inbox.db")).unwrap();
        let ids = inbox.insert(&sample()).unwrap();
        assert_eq!(inbox.acknowledge(&[ids[2]], now()).unwrap(), 1);
        assert_eq!(inbox.acknowledge(&[ids[2]], now()).unwrap(), 0, "already");
        assert_eq!(inbox.unacknowledged_critical().unwrap(), 1);
        assert_eq!(inbox.unacknowledged().unwrap(), 3);
        assert_eq!(
            inbox.get(ids[2]).unwrap().unwrap().acknowledged,
            Some(now())
        );
        assert_eq!(inbox.acknowledge(&ids, now()).unwrap(), 3, "many at once");
        assert_eq!(inbox.unacknowledged_critical().unwrap(), 0);
        assert_eq!(inbox.unacknowledged().unwrap(), 0);
        assert_eq!(inbox.unacknowledge(&[ids[2], ids[3]]).unwrap(), 2);
        assert_eq!(inbox.unacknowledged_critical().unwrap(), 2);
        assert_eq!(
            inbox
                .acknowledge_key("desk|employee_stress|employee:E1", now())
                .unwrap(),
            0,
            "already acknowledged above"
        );
        inbox.unacknowledge(&[ids[1]]).unwrap();
        assert_eq!(
            inbox
                .acknowledge_key("desk|employee_stress|employee:E1", now())
                .unwrap(),
            1
        );
        let crit = Query::default().min_severity(Severity::Critical);
        assert_eq!(inbox.acknowledge_matching(&crit, now()).unwrap(), 2);
        assert_eq!(inbox.unacknowledged_critical().unwrap(), 0);
    }

    #[test]
    fn search_by_each_criterion() {
        let dir = tempfile::tempdir().unwrap();
        let mut inbox = Inbox::open(dir.path().join("inbox.db")).unwrap();
        let ids = inbox.insert(&sample()).unwrap();
        let find = |q: Query| -> Vec<i64> {
            inbox
                .search(&q)
                .unwrap()
                .into_iter()
                .map(|a| a.id)
                .collect()
        };
        assert_eq!(find(Query::default()), vec![ids[3], ids[2], ids[1], ids[0]]);
        assert_eq!(find(Query::default().text("engineering")), vec![ids[1]]);
        // LIKE wildcards in the text are literal.
        assert_eq!(find(Query::default().text("100%_off")), vec![ids[2]]);
        assert_eq!(find(Query::default().text("%")), vec![ids[2]]);
        assert_eq!(find(Query::default().text("session:S42")), vec![ids[3]]);
        assert_eq!(
            find(Query::default().kind("market_data").kind("session_status")),
            vec![ids[3], ids[0]]
        );
        assert_eq!(
            find(Query::default().min_severity(Severity::Critical)),
            vec![ids[3], ids[2]]
        );
        assert_eq!(find(Query::default().source("desk")).len(), 4);
        assert!(find(Query::default().source("other")).is_empty());
        let t = |s| Utc.with_ymd_and_hms(2025, 1, 1, 0, 0, s).unwrap();
        assert_eq!(
            find(Query::default().since(t(10)).until(t(30))),
            vec![ids[2], ids[1]]
        );
        inbox.acknowledge(&[ids[0]], now()).unwrap();
        assert_eq!(find(Query::default().acknowledged(true)), vec![ids[0]]);
        assert_eq!(find(Query::default().acknowledged(false)).len(), 3);
        assert_eq!(find(Query::default().limit(2)), vec![ids[3], ids[2]]);
        assert_eq!(
            find(Query::default().before_id(ids[2]).limit(1)),
            vec![ids[1]]
        );
    }

    #[test]
    fn retention_by_count_and_age_keeps_unacknowledged_critical() {
        let dir = tempfile::tempdir().unwrap();
        let mut inbox = Inbox::open(dir.path().join("inbox.db")).unwrap();
        let old = Utc.with_ymd_and_hms(2024, 1, 1, 0, 0, 0).unwrap();
        let mut recs = sample();
        for r in &mut recs {
            r.received = old;
        }
        let ids = inbox.insert(&recs).unwrap();
        let fresh = inbox.insert(&sample()).unwrap();
        let by_age = Retention::default().max_age(Duration::from_secs(86_400));
        // Two old ones go; the old critical and emergency stay.
        assert_eq!(inbox.prune(&by_age, now()).unwrap(), 2);
        assert_eq!(inbox.missing(&ids).unwrap(), vec![ids[0], ids[1]]);
        inbox.acknowledge(&[ids[2]], now()).unwrap();
        assert_eq!(inbox.prune(&by_age, now()).unwrap(), 1);
        // By count: keep the newest 2 (plus protected ones).
        let by_count = Retention::default().max_count(2).keep_unacknowledged(None);
        inbox.prune(&by_count, now()).unwrap();
        assert_eq!(inbox.count().unwrap(), 2);
        assert!(inbox.missing(&fresh[2..]).unwrap().is_empty());
    }

    #[test]
    fn writer_reports_only_committed_and_survives_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("inbox.db");
        let (mut w, done) = Writer::spawn(&path, WriterConfig::default().max_batch(7)).unwrap();
        let mut tickets = Vec::new();
        for i in 0..100 {
            let r = Record::new(ev(&format!(r#"{{"type":"t","n":{i}}}"#), i), now());
            tickets.push(w.push(r).unwrap());
        }
        assert_eq!(tickets, (0..100).collect::<Vec<_>>());
        w.flush().unwrap();
        let mut ids = Vec::new();
        while let Ok(c) = done.try_recv() {
            assert_eq!(c.first_ticket as usize, ids.len());
            assert!(c.ids.len() <= 7);
            ids.extend(c.ids);
        }
        assert_eq!(ids.len(), 100);
        w.close().unwrap();
        let inbox = Inbox::open(&path).unwrap();
        assert!(inbox.missing(&ids).unwrap().is_empty());
        let last = inbox.get(ids[99]).unwrap().unwrap();
        assert!(last.event.payload.get().contains("\"n\":99"));
    }
}
