//! The inbox's table and indexes, the SQL the reader and the writer share,
//! opening the file (WAL, [`Durability`]), and the mapping between rows and
//! records: severities as numbers, times as milliseconds, the payload as
//! text.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use rusqlite::{Connection, params};
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
/// indexes, 2 the full-text index.
const VERSION: i64 = 2;

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

/// Pages in the write-ahead log that start a checkpoint.
const WAL_PAGES: i64 = 256;
/// What the write-ahead log is cut back to after a checkpoint.
const WAL_BYTES: i64 = 1 << 20;

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
    // The write-ahead log is checkpointed every WAL_PAGES pages and cut
    // back to WAL_BYTES after: a desk commits an alert at a time, several
    // pages each with the full-text index, and SQLite's defaults (1,000
    // pages, never truncated) leave a 4 MB log beside a 100 KB inbox, the
    // room a nearly full disk does not have.
    conn.pragma_update(None, "wal_autocheckpoint", WAL_PAGES)
        .map_err(sql)?;
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

pub(super) fn prune(
    conn: &Connection,
    r: &Retention,
    now: DateTime<Utc>,
) -> rusqlite::Result<usize> {
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
