//! The inbox's table and indexes, the SQL the reader and the writer share,
//! opening the file (WAL, [`Durability`]), and the mapping between rows and
//! records: severities as numbers, times as milliseconds, the payload as
//! text.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use rusqlite::{Connection, OptionalExtension, params};
use serde_json::value::RawValue;

use crate::protocol::{Event, Severity, Style};

use super::{InboxError, Record, Retention, StoredAlert};

pub(super) const SCHEMA: &str = "
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
-- Retention by age (version 3): what was received before a cutoff, in
-- whatever order it was stored (a clock once set ahead must not hold up
-- the rest).
CREATE INDEX IF NOT EXISTS alerts_received ON alerts(received_ms);
-- The unacknowledged history gaps the tray and the header show (version
-- 4): a handful of rows, found without reading the million others. The
-- literal must stay the client's GAP_KIND (a unit test holds it to it).
CREATE INDEX IF NOT EXISTS alerts_gaps ON alerts(id)
    WHERE type = 'history_gap' AND acked_ms IS NULL;
-- The full-text index over what a search reads (version 2): words of the
-- type, subject, channel and payload, case and accents folded; kept by
-- the triggers, its text stays in `alerts` (external content).
CREATE VIRTUAL TABLE IF NOT EXISTS alerts_fts USING fts5(
    type, subject, channel, payload,
    content = 'alerts', content_rowid = 'id',
    tokenize = 'unicode61 remove_diacritics 2'
);
CREATE TRIGGER IF NOT EXISTS alerts_fts_insert AFTER INSERT ON alerts BEGIN
    INSERT INTO alerts_fts (rowid, type, subject, channel, payload)
    VALUES (new.id, new.type, new.subject, new.channel, new.payload);
END;
CREATE TRIGGER IF NOT EXISTS alerts_fts_delete AFTER DELETE ON alerts BEGIN
    INSERT INTO alerts_fts (alerts_fts, rowid, type, subject, channel, payload)
    VALUES ('delete', old.id, old.type, old.subject, old.channel, old.payload);
END;
CREATE TRIGGER IF NOT EXISTS alerts_fts_update
AFTER UPDATE OF type, subject, channel, payload ON alerts BEGIN
    INSERT INTO alerts_fts (alerts_fts, rowid, type, subject, channel, payload)
    VALUES ('delete', old.id, old.type, old.subject, old.channel, old.payload);
    INSERT INTO alerts_fts (rowid, type, subject, channel, payload)
    VALUES (new.id, new.type, new.subject, new.channel, new.payload);
END;
";

/// The schema's version (`PRAGMA user_version`): 1 the table and its
/// indexes, 2 the full-text index, 3 the index retention reads, 4 the
/// index of unacknowledged gaps.
const VERSION: i64 = 4;

pub(super) const INSERT: &str = "INSERT INTO alerts (type, severity, event_severity, style, channel, subject, \
source, time_ms, server_time, event_id, seq, alert_key, payload, received_ms) \
VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)";

pub(super) const COLUMNS: &str = "id, type, severity, event_severity, style, channel, subject, source, \
time_ms, server_time, event_id, seq, alert_key, payload, received_ms, acked_ms";

/// [`COLUMNS`] of the table aliased `a`, for queries that join it.
pub(super) fn qualified_columns() -> &'static str {
    static QUALIFIED: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    QUALIFIED.get_or_init(|| {
        COLUMNS
            .split(", ")
            .map(|c| format!("a.{c}"))
            .collect::<Vec<_>>()
            .join(", ")
    })
}

pub(super) fn sev_num(s: Severity) -> i64 {
    match s {
        Severity::Info => 0,
        Severity::Warning => 1,
        Severity::Critical => 2,
        Severity::Emergency => 3,
    }
}

pub(super) fn sev_of(n: i64) -> Severity {
    match n {
        i64::MIN..=0 => Severity::Info,
        1 => Severity::Warning,
        2 => Severity::Critical,
        _ => Severity::Emergency,
    }
}

pub(super) fn ms_to_time(ms: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(ms).unwrap_or_default()
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

/// What the write-ahead log is cut back to after a checkpoint.
const WAL_BYTES: i64 = 1 << 20;

/// Commits after which the writer checkpoints (`writer.rs`): a desk
/// commits an alert at a time, several pages each with the full-text
/// index, and SQLite's own checkpoint comes only every 1,000 pages (4 MB
/// of log beside a 100 KB inbox, the room a nearly full disk does not
/// have). A burst commits thousands of rows at once, so this rarely comes
/// before SQLite's 1,000 pages there; a checkpoint every 256 pages instead
/// cost a fifth of the burst's throughput (docs/PERFORMANCE.md).
pub(super) const CHECKPOINT_COMMITS: usize = 16;

/// Copies the log into the database as far as no reader holds it back.
pub(super) fn checkpoint(conn: &Connection) -> rusqlite::Result<()> {
    conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()))
}

/// The newest unacknowledged history gap; `alerts_gaps` serves it (its
/// terms are the index's own, so the planner can use it).
pub(super) const NEWEST_GAP: &str =
    "WHERE type = 'history_gap' AND acked_ms IS NULL ORDER BY id DESC LIMIT 1";

/// Opens (and creates) the inbox file in WAL mode with the table in place.
pub(super) fn open_conn(path: &Path, durability: Durability) -> Result<Connection, InboxError> {
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
    // The log is cut back to WAL_BYTES after each checkpoint (SQLite
    // never truncates it by default); see CHECKPOINT_COMMITS for when
    // the writer checkpoints.
    conn.query_row(
        &format!("PRAGMA journal_size_limit = {WAL_BYTES}"),
        [],
        |_| Ok(()),
    )
    .map_err(sql)?;
    migrate(&conn).map_err(sql)?;
    Ok(conn)
}

/// Creates what is missing and brings an older file up to [`VERSION`], in
/// one transaction (a second process opening the file meanwhile waits, then
/// finds it done). A version-1 inbox gets its full-text index built from
/// the rows it holds.
fn migrate(conn: &Connection) -> rusqlite::Result<()> {
    let current = |c: &Connection| c.query_row("PRAGMA user_version", [], |r| r.get::<_, i64>(0));
    if current(conn)? == VERSION {
        return Ok(());
    }
    conn.execute_batch("BEGIN IMMEDIATE")?;
    let done = (|| {
        let before = current(conn)?;
        if before == VERSION {
            return Ok(());
        }
        conn.execute_batch(SCHEMA)?;
        if before == 1 {
            conn.execute("INSERT INTO alerts_fts (alerts_fts) VALUES ('rebuild')", [])?;
        }
        conn.pragma_update(None, "user_version", VERSION)
    })();
    match done {
        Ok(()) => conn.execute_batch("COMMIT"),
        Err(e) => {
            let _ = conn.execute_batch("ROLLBACK");
            Err(e)
        }
    }
}

/// The full-text query for a search's text: each whitespace-separated
/// term a phrase of its words, the last word of each a prefix (`"m-884"*`
/// finds `m-88412`), every term required. `None` when a term has no letter
/// or digit (`%`, `->`): the tokenizer keeps nothing of it, so such text is
/// searched as a substring instead.
pub(super) fn fts_query(text: &str) -> Option<String> {
    let terms: Vec<&str> = text.split_whitespace().collect();
    if terms.is_empty() || terms.iter().any(|t| !t.chars().any(char::is_alphanumeric)) {
        return None;
    }
    Some(
        terms
            .iter()
            .map(|t| format!("\"{}\"*", t.replace('"', "\"\"")))
            .collect::<Vec<_>>()
            .join(" "),
    )
}

pub(super) fn insert_one(
    stmt: &mut rusqlite::CachedStatement<'_>,
    r: &Record,
) -> rusqlite::Result<()> {
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

pub(super) fn insert_batch(
    conn: &mut Connection,
    records: &[Record],
) -> rusqlite::Result<Vec<i64>> {
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

pub(super) fn row_to_alert(
    row: &rusqlite::Row<'_>,
) -> rusqlite::Result<Result<StoredAlert, InboxError>> {
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
pub(super) fn like_pattern(text: &str) -> String {
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

/// One pass of pruning, done a chunk at a time so that deleting much
/// (a first pass over a million rows) never holds the writer for long:
/// the writer commits what arrived between chunks. First what is too old
/// (oldest received first), then what is beyond the count (lowest id
/// first); each phase resumes after the last row it looked at, so the
/// unacknowledged critical alerts it keeps are read once a pass.
#[derive(Debug, Clone)]
pub(super) struct PrunePass {
    /// Rows received before this (ms) go.
    cutoff_ms: Option<i64>,
    /// Rows at or below this id go (the count limit).
    below_id: Option<i64>,
    /// The keep clause: unacknowledged rows at or above a severity stay.
    keep: String,
    /// The last (received_ms, id) the age phase looked at.
    age_cursor: (i64, i64),
    /// The last id the count phase looked at.
    id_cursor: i64,
}

/// Rows looked at, and at most deleted, per chunk.
const PRUNE_CHUNK: i64 = 1_000;

impl PrunePass {
    /// A pass of `r` as of `now`; `None` when `r` keeps everything.
    pub(super) fn start(
        conn: &Connection,
        r: &Retention,
        now: DateTime<Utc>,
    ) -> rusqlite::Result<Option<PrunePass>> {
        if r.is_unlimited() {
            return Ok(None);
        }
        // An age beyond the calendar keeps everything.
        let cutoff_ms = r.max_age.and_then(|age| {
            chrono::Duration::from_std(age)
                .ok()
                .and_then(|d| now.checked_sub_signed(d))
                .map(|t| t.timestamp_millis())
        });
        let below_id = match r.max_count {
            Some(max) => {
                let offset = i64::try_from(max).unwrap_or(i64::MAX);
                conn.query_row(
                    "SELECT id FROM alerts ORDER BY id DESC LIMIT 1 OFFSET ?1",
                    [offset],
                    |row| row.get::<_, i64>(0),
                )
                .optional()?
            }
            None => None,
        };
        Ok(Some(PrunePass {
            cutoff_ms,
            below_id,
            keep: match r.keep_unacknowledged {
                Some(s) => format!(" AND NOT (acked_ms IS NULL AND severity >= {})", sev_num(s)),
                None => String::new(),
            },
            age_cursor: (i64::MIN, i64::MIN),
            id_cursor: i64::MIN,
        }))
    }

    pub(super) fn done(&self) -> bool {
        self.cutoff_ms.is_none() && self.below_id.is_none()
    }

    /// Deletes what goes among the next [`PRUNE_CHUNK`] candidates, in one
    /// statement (its own transaction); returns how many.
    pub(super) fn step(&mut self, conn: &Connection) -> rusqlite::Result<usize> {
        if let Some(cutoff) = self.cutoff_ms {
            let mut stmt = conn.prepare_cached(
                "SELECT received_ms, id FROM alerts WHERE received_ms < ?1 \
                 AND (received_ms, id) > (?2, ?3) ORDER BY received_ms, id LIMIT ?4",
            )?;
            let rows: Vec<(i64, i64)> = stmt
                .query_map(
                    params![cutoff, self.age_cursor.0, self.age_cursor.1, PRUNE_CHUNK],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )?
                .collect::<Result<_, _>>()?;
            if rows.len() < PRUNE_CHUNK as usize {
                self.cutoff_ms = None;
            }
            let Some(&last) = rows.last() else {
                return Ok(0);
            };
            self.age_cursor = last;
            return delete_ids(conn, rows.iter().map(|r| r.1), &self.keep);
        }
        if let Some(below) = self.below_id {
            let mut stmt = conn.prepare_cached(
                "SELECT id FROM alerts WHERE id > ?1 AND id <= ?2 ORDER BY id LIMIT ?3",
            )?;
            let ids: Vec<i64> = stmt
                .query_map(params![self.id_cursor, below, PRUNE_CHUNK], |r| r.get(0))?
                .collect::<Result<_, _>>()?;
            if ids.len() < PRUNE_CHUNK as usize {
                self.below_id = None;
            }
            let Some(&last) = ids.last() else {
                return Ok(0);
            };
            self.id_cursor = last;
            return delete_ids(conn, ids.into_iter(), &self.keep);
        }
        Ok(0)
    }
}

/// Deletes these rows but those `keep` keeps.
fn delete_ids(
    conn: &Connection,
    ids: impl Iterator<Item = i64>,
    keep: &str,
) -> rusqlite::Result<usize> {
    use std::fmt::Write;
    let mut list = String::new();
    for id in ids {
        if !list.is_empty() {
            list.push(',');
        }
        let _ = write!(list, "{id}");
    }
    conn.execute(
        &format!("DELETE FROM alerts WHERE id IN ({list}){keep}"),
        [],
    )
}

/// A whole pass of `r` at once; returns how many alerts went.
pub(super) fn prune(
    conn: &Connection,
    r: &Retention,
    now: DateTime<Utc>,
) -> rusqlite::Result<usize> {
    let Some(mut pass) = PrunePass::start(conn, r, now)? else {
        return Ok(0);
    };
    let mut n = 0;
    while !pass.done() {
        n += pass.step(conn)?;
    }
    Ok(n)
}
