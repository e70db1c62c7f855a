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
//!   words (an FTS5 full-text index the table's triggers keep), type,
//!   severity, source, time and acknowledgement, paged; retention by
//!   count and age (unacknowledged critical alerts are kept by default);
//!   the count of unacknowledged critical-or-above alerts for the tray.
//!
//! Rows store the event's fields, the severity after rules, the engine's
//! alert key and the payload as JSON text, byte for byte as received.
//!
//! Files: this one holds the errors, the record and query types and the
//! reader ([`Inbox`]); `schema.rs` the table, its row mapping and the SQL
//! both sides share; `writer.rs` the batching writer thread.

mod export;
pub mod sample;
mod schema;
mod writer;

use std::path::{Path, PathBuf};
use std::time::Duration;

use chrono::{DateTime, Utc};
use rusqlite::{Connection, OptionalExtension, params, params_from_iter};
use serde::Serialize;

use crate::protocol::{Event, Severity};

pub use export::ExportFormat;
pub use schema::Durability;
use schema::*;
pub use writer::{Committed, Writer, WriterConfig};

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
    /// An export could not be written (the file or pipe it goes to).
    #[error("export: {0}")]
    Export(#[source] std::io::Error),
    /// A stored row could not be turned back into an event.
    #[error("inbox row {id} is unreadable: {reason}")]
    BadRow { id: i64, reason: String },
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
    /// Words to find in the type, subject, channel or payload (the
    /// full-text index: case and accents ignored, every term required,
    /// each term's last word a prefix, so `john` finds "John Doe" and
    /// `m-884` finds "m-88412"). Text with a term of no letter or digit
    /// (`%`) is matched as a case-insensitive substring instead, by a scan.
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

    /// The inbox the apps keep for `profile`: under `$RISKWATCH_DATA_DIR`
    /// when it is set (`<dir>/<profile>/inbox.sqlite3`), else
    /// [`Inbox::default_path`]. The desktop app keeps its inbox here
    /// (profile `desktop`), and `riskwatch inbox` reads it from here.
    pub fn app_path(profile: &str) -> Option<PathBuf> {
        match std::env::var_os("RISKWATCH_DATA_DIR").filter(|d| !d.is_empty()) {
            Some(dir) => Some(PathBuf::from(dir).join(profile).join("inbox.sqlite3")),
            None => Inbox::default_path(profile),
        }
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
        self.one("WHERE id = ?1", [id])
    }

    /// The alert `tail` (the query after `FROM alerts`) selects, if any.
    fn one(
        &self,
        tail: &str,
        args: impl rusqlite::Params,
    ) -> Result<Option<StoredAlert>, InboxError> {
        let row = self
            .conn
            .query_row(
                &format!("SELECT {COLUMNS} FROM alerts {tail}"),
                args,
                row_to_alert,
            )
            .optional()
            .map_err(|e| self.err(e))?;
        row.transpose()
    }

    /// The newest unacknowledged history gap (`client::GAP_KIND`), read
    /// through an index of those alone: the tray asks after every commit.
    pub fn newest_unacknowledged_gap(&self) -> Result<Option<StoredAlert>, InboxError> {
        self.one(NEWEST_GAP, [])
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

    /// The statement and arguments for `q`, newest first; `limit` rows at
    /// most, or all. Text goes through the full-text index
    /// ([`Query::text`]); the rest through the table's indexes.
    fn select(q: &Query, limit: Option<usize>) -> (String, Vec<rusqlite::types::Value>) {
        use rusqlite::types::Value as V;
        let mut wh: Vec<String> = Vec::new();
        let mut args: Vec<V> = Vec::new();
        let arg = |v: V, args: &mut Vec<V>| {
            args.push(v);
            format!("?{}", args.len())
        };
        let mut from = "alerts a".to_owned();
        let mut newest_first = "a.id DESC";
        if let Some(t) = q.text.as_deref().filter(|t| !t.trim().is_empty()) {
            match fts_query(t) {
                Some(m) => {
                    // Matches stream from the index newest first, so a
                    // page of a common word stops after its first rows.
                    let a = arg(V::Text(m), &mut args);
                    from = "alerts_fts f JOIN alerts a ON a.id = f.rowid".to_owned();
                    wh.push(format!("alerts_fts MATCH {a}"));
                    newest_first = "f.rowid DESC";
                }
                None => {
                    let a = arg(V::Text(like_pattern(t)), &mut args);
                    wh.push(format!(
                        "(a.payload LIKE {a} ESCAPE '\\' OR a.subject LIKE {a} ESCAPE '\\' OR a.channel LIKE {a} ESCAPE '\\' OR a.type LIKE {a} ESCAPE '\\')"
                    ));
                }
            }
        }
        if !q.kinds.is_empty() {
            let list: Vec<String> = q
                .kinds
                .iter()
                .map(|k| arg(V::Text(k.clone()), &mut args))
                .collect();
            wh.push(format!("a.type IN ({})", list.join(", ")));
        }
        if !q.sources.is_empty() {
            let list: Vec<String> = q
                .sources
                .iter()
                .map(|k| arg(V::Text(k.clone()), &mut args))
                .collect();
            wh.push(format!("a.source IN ({})", list.join(", ")));
        }
        if let Some(s) = q.min_severity {
            let a = arg(V::Integer(sev_num(s)), &mut args);
            wh.push(format!("a.severity >= {a}"));
        }
        if let Some(t) = q.since {
            let a = arg(V::Integer(t.timestamp_millis()), &mut args);
            wh.push(format!("a.time_ms >= {a}"));
        }
        if let Some(t) = q.until {
            let a = arg(V::Integer(t.timestamp_millis()), &mut args);
            wh.push(format!("a.time_ms < {a}"));
        }
        match q.acknowledged {
            Some(true) => wh.push("a.acked_ms IS NOT NULL".into()),
            Some(false) => wh.push("a.acked_ms IS NULL".into()),
            None => {}
        }
        if let Some(id) = q.before_id {
            let a = arg(V::Integer(id), &mut args);
            wh.push(format!("a.id < {a}"));
        }
        let limit = match limit {
            Some(n) => {
                let a = arg(V::Integer(i64::try_from(n).unwrap_or(i64::MAX)), &mut args);
                format!(" LIMIT {a}")
            }
            None => String::new(),
        };
        let where_ = if wh.is_empty() {
            String::new()
        } else {
            format!("WHERE {}", wh.join(" AND "))
        };
        let sql = format!(
            "SELECT {} FROM {from} {where_} ORDER BY {newest_first}{limit}",
            qualified_columns()
        );
        (sql, args)
    }

    /// Searches, newest first, at most `q.limit` rows.
    pub fn search(&self, q: &Query) -> Result<Vec<StoredAlert>, InboxError> {
        let (sql, args) = Self::select(q, Some(q.limit));
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

    /// Writes every alert matching `q` (its limit and paging ignored),
    /// newest first, to `out` as CSV or JSON, row by row (a million alerts
    /// need no more memory than one); returns how many. See
    /// [`ExportFormat`] for the columns.
    pub fn export(
        &self,
        q: &Query,
        format: ExportFormat,
        out: impl std::io::Write,
    ) -> Result<u64, InboxError> {
        let mut all = q.clone();
        all.before_id = None;
        let (sql, args) = Self::select(&all, None);
        let mut stmt = self.conn.prepare(&sql).map_err(|e| self.err(e))?;
        let mut rows = stmt
            .query_map(params_from_iter(args), row_to_alert)
            .map_err(|e| self.err(e))?;
        let mut sink = export::Sink::new(format, out).map_err(InboxError::Export)?;
        let mut n = 0;
        for r in &mut rows {
            let alert = r.map_err(|e| self.err(e))??;
            sink.write(&alert).map_err(InboxError::Export)?;
            n += 1;
        }
        sink.finish().map_err(InboxError::Export)?;
        Ok(n)
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
        self.count_sql(
            "SELECT count(*) FROM alerts WHERE acked_ms IS NULL AND severity >= 2",
            [],
        )
    }

    /// Unacknowledged alerts of any severity (served by the partial index
    /// on unacknowledged rows, not a scan of the table).
    pub fn unacknowledged(&self) -> Result<u64, InboxError> {
        self.count_sql("SELECT count(*) FROM alerts WHERE acked_ms IS NULL", [])
    }

    /// Unacknowledged alerts, counted no further than `cap` (what a badge
    /// shows as "999+"): a million unread rows cost no more than a
    /// thousand.
    pub fn unacknowledged_up_to(&self, cap: u64) -> Result<u64, InboxError> {
        self.count_sql(
            "SELECT count(*) FROM (SELECT 1 FROM alerts WHERE acked_ms IS NULL LIMIT ?1)",
            [i64::try_from(cap).unwrap_or(i64::MAX)],
        )
    }

    /// The newest alert stored under the engine's key `key` (what a
    /// notification names), if any.
    pub fn newest_with_key(&self, key: &str) -> Result<Option<i64>, InboxError> {
        self.conn
            .query_row(
                "SELECT id FROM alerts WHERE alert_key = ?1 ORDER BY id DESC LIMIT 1",
                [key],
                |r| r.get::<_, i64>(0),
            )
            .optional()
            .map_err(|e| self.err(e))
    }

    /// All stored alerts.
    pub fn count(&self) -> Result<u64, InboxError> {
        self.count_sql("SELECT count(*) FROM alerts", [])
    }

    fn count_sql(&self, sql: &str, args: impl rusqlite::Params) -> Result<u64, InboxError> {
        self.conn
            .query_row(sql, args, |r| r.get::<_, i64>(0))
            .map(|n| u64::try_from(n).unwrap_or(0))
            .map_err(|e| self.err(e))
    }

    /// Applies a retention policy now; returns how many alerts were dropped.
    pub fn prune(&self, r: &Retention, now: DateTime<Utc>) -> Result<usize, InboxError> {
        prune(&self.conn, r, now).map_err(|e| self.err(e))
    }
}

#[cfg(test)]
mod tests;
