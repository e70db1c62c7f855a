//! The inbox's writer: one thread owns the write connection and commits
//! whatever is queued as one transaction (group commit), reporting ids only
//! after the commit; its settings and periodic pruning. A disk that is full
//! (or failing to write) does not cost what was queued: the writer holds
//! the batch, says so once, retries with backoff, and reports it stored
//! once it is.

use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::thread;
use std::time::{Duration, Instant};

use chrono::Utc;
use rusqlite::Connection;

use super::schema::*;
use super::{InboxError, Record, Retention};

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

/// Reported after each commit: the records pushed with tickets
/// `first_ticket ..` are stored under these ids, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Committed {
    pub first_ticket: u64,
    pub ids: Vec<i64>,
}

pub(super) enum Cmd {
    Insert(Box<Record>),
    Flush(mpsc::SyncSender<Result<(), String>>),
    /// A new retention, applied at once.
    Retention(Retention),
    /// Caps the database's size in pages: how the tests fill the "disk".
    #[cfg(test)]
    MaxPages(u64),
}

/// The first retry after the disk refused a commit; doubled up to
/// [`RETRY_AT_MOST`].
const RETRY_FIRST: Duration = Duration::from_millis(250);
const RETRY_AT_MOST: Duration = Duration::from_secs(5);

/// A batch the disk refused, held for the next try.
struct Held {
    since: Instant,
    retry_in: Duration,
    next_try: Instant,
    /// Why, for a flush meanwhile.
    why: String,
    /// Records turned away because the held batch reached the queue's size
    /// (each still counts its ticket).
    refused: u64,
}

/// Whether a failed commit may succeed later: the disk full, or an I/O
/// error (ENOSPC on a write can surface as either).
fn transient(e: &rusqlite::Error) -> bool {
    matches!(e, rusqlite::Error::SqliteFailure(f, _)
        if matches!(f.code, rusqlite::ErrorCode::DiskFull | rusqlite::ErrorCode::SystemIoFailure))
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

    /// Changes what the inbox keeps; a pass applying it begins at once.
    pub fn set_retention(&self, r: Retention) -> Result<(), InboxError> {
        let tx = self.tx.as_ref().ok_or(InboxError::Closed)?;
        tx.send(Cmd::Retention(r)).map_err(|_| InboxError::Closed)
    }

    /// Caps the database's size (tests: a full disk on demand).
    #[cfg(test)]
    pub(super) fn max_pages(&self, n: u64) {
        if let Some(tx) = &self.tx {
            let _ = tx.send(Cmd::MaxPages(n));
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

pub(super) fn writer_loop(
    mut conn: Connection,
    path: PathBuf,
    cfg: WriterConfig,
    rx: mpsc::Receiver<Cmd>,
    done: mpsc::Sender<Committed>,
) {
    let mut next_ticket: u64 = 0;
    let mut retention = cfg.retention.clone();
    // When the last pass began; none: one is due (at start, and after the
    // retention changes).
    let mut last_prune: Option<Instant> = None;
    let mut pass: Option<PrunePass> = None;
    let mut pruned = 0usize;
    // Commits since the last checkpoint.
    let mut since_checkpoint = 0usize;
    let mut batch: Vec<Record> = Vec::with_capacity(cfg.max_batch.min(65_536));
    let mut flushes = Vec::new();
    let mut held: Option<Held> = None;
    let mut open = true;
    while open {
        // Wait for the first command: while holding a refused batch only
        // until its next try, while a prune pass runs not at all, while a
        // retention is set until the next pass; then take whatever else is
        // queued.
        let wait = match (&held, &pass) {
            (Some(h), _) => Some(h.next_try.saturating_duration_since(Instant::now())),
            (None, Some(_)) => Some(Duration::ZERO),
            (None, None) if !retention.is_unlimited() => {
                Some(last_prune.map_or(Duration::ZERO, |t| {
                    cfg.prune_every.saturating_sub(t.elapsed())
                }))
            }
            (None, None) => None,
        };
        let mut cmd = match wait {
            None => match rx.recv() {
                Ok(c) => Some(c),
                Err(_) => break,
            },
            Some(w) => match rx.recv_timeout(w) {
                Ok(c) => Some(c),
                Err(RecvTimeoutError::Timeout) => None,
                Err(RecvTimeoutError::Disconnected) => {
                    open = false;
                    None
                }
            },
        };
        // A held batch grows up to the queue's size, then turns records
        // away (counted) rather than growing without bound.
        let limit = if held.is_some() {
            cfg.queue
        } else {
            cfg.max_batch
        };
        while let Some(c) = cmd.take() {
            match c {
                Cmd::Insert(r) => match held.as_mut() {
                    Some(h) if batch.len() >= limit || h.refused > 0 => h.refused += 1,
                    _ => batch.push(*r),
                },
                Cmd::Flush(f) => flushes.push(f),
                Cmd::Retention(r) => {
                    retention = r;
                    pass = None;
                    last_prune = None;
                }
                #[cfg(test)]
                Cmd::MaxPages(n) => {
                    let _ = conn.query_row(&format!("PRAGMA max_page_count = {n}"), [], |_| Ok(()));
                }
            }
            if batch.len() >= limit {
                break;
            }
            cmd = rx.try_recv().ok();
        }
        let mut result = Ok(());
        let due = held
            .as_ref()
            .is_none_or(|h| !open || Instant::now() >= h.next_try);
        if !batch.is_empty() && due {
            match commit_with_retry(&mut conn, &batch) {
                Ok(ids) => {
                    since_checkpoint += 1;
                    let _ = done.send(Committed {
                        first_ticket: next_ticket,
                        ids,
                    });
                    next_ticket += batch.len() as u64;
                    if let Some(h) = held.take() {
                        next_ticket += h.refused;
                        tracing::warn!(path = %path.display(), stored = batch.len(),
                            refused = h.refused, after = ?h.since.elapsed(),
                            "the inbox is storing again: what it held is stored");
                    }
                    batch.clear();
                }
                Err(e) if transient(&e) && open => match held.as_mut() {
                    Some(h) => {
                        h.retry_in = (h.retry_in * 2).min(RETRY_AT_MOST);
                        h.next_try = Instant::now() + h.retry_in;
                    }
                    None => {
                        tracing::error!(path = %path.display(), error = %e, held = batch.len(),
                            "the inbox cannot store: holding its alerts and retrying");
                        held = Some(Held {
                            since: Instant::now(),
                            retry_in: RETRY_FIRST,
                            next_try: Instant::now() + RETRY_FIRST,
                            why: format!("{}: {e}", path.display()),
                            refused: 0,
                        });
                    }
                },
                Err(e) => {
                    let refused = held.take().map_or(0, |h| h.refused);
                    tracing::error!(path = %path.display(), error = %e,
                        lost = batch.len() as u64 + refused, "inbox commit failed");
                    result = Err(format!("{}: {e}", path.display()));
                    next_ticket += batch.len() as u64 + refused;
                    batch.clear();
                }
            }
        }
        // Retention, a chunk per turn of the loop, never while the disk
        // refuses commits.
        if held.is_none() && open {
            if pass.is_none()
                && !retention.is_unlimited()
                && last_prune.is_none_or(|t| t.elapsed() >= cfg.prune_every)
            {
                last_prune = Some(Instant::now());
                pruned = 0;
                match PrunePass::start(&conn, &retention, Utc::now()) {
                    Ok(p) => pass = p,
                    Err(e) => tracing::warn!(error = %e, "inbox retention failed"),
                }
            }
            if let Some(p) = pass.as_mut() {
                match p.step(&conn) {
                    Ok(n) => pruned += n,
                    Err(e) => {
                        tracing::warn!(error = %e, "inbox retention failed");
                        pass = None;
                    }
                }
                if pass.as_ref().is_some_and(PrunePass::done) {
                    pass = None;
                    if pruned > 0 {
                        tracing::info!(pruned, "inbox retention deleted old alerts");
                    }
                }
            }
        }
        // A flush while the disk refuses is answered at once, with why;
        // otherwise after this turn's chunk of pruning (so that a flush
        // after a new retention on a small inbox finds it applied).
        if let Some(h) = &held {
            result = Err(h.why.clone());
        }
        for f in flushes.drain(..) {
            let _ = f.send(result.clone());
        }
        // Many small commits: checkpoint, so that the log stays small
        // (CHECKPOINT_COMMITS).
        if open && held.is_none() && since_checkpoint >= CHECKPOINT_COMMITS {
            since_checkpoint = 0;
            if let Err(e) = checkpoint(&conn) {
                tracing::debug!(error = %e, "inbox checkpoint");
            }
        }
    }
}

pub(super) fn commit_with_retry(
    conn: &mut Connection,
    batch: &[Record],
) -> rusqlite::Result<Vec<i64>> {
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
