//! Where each user left each channel: the hub's per-user offline queue.
//!
//! A connection that subscribes without a position of its own (every
//! seed-style endpoint: a browser frontend cannot resume; a native client
//! on its first start) is replayed what its user missed since the user's
//! last connection left the channel, out of the channel's history (so
//! critical events are there for 24 h, ordinary ones by count and age).
//! A cursor is written when a subscription starts (where its backlog
//! starts, so a hub killed meanwhile replays rather than skips), on each
//! heartbeat while the connection is open, and when it leaves: at the last
//! event its peer is known to have received (followed by a ping it
//! answered, `outbox.rs`; not merely written to a send buffer, which a
//! stalled peer or a proxy in between may never pass on). For a pattern
//! subscription (`department:*`) the cursor is the time it left: channels
//! without a cursor of their own replay what came after that time.
//!
//! With `--data-dir` cursors are appended to `cursors.jsonl` and compacted
//! when loaded; with Redis they live in one hash per user that every hub
//! reads (`broker/redis.rs`). Cursors older than the critical history window
//! are useless (nothing older is kept) and are dropped.

use std::collections::HashMap;
use std::fs::{self, File, OpenOptions};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::store::{StoreError, io_err, push_lines, replace_file};

/// One user's position on one channel (or pattern).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cursor {
    pub user: String,
    pub channel: String,
    /// The channel's epoch; empty for a pattern.
    #[serde(default)]
    pub epoch: String,
    /// The last sequence the user received (0 for a pattern).
    #[serde(default)]
    pub seq: u64,
    /// When it was written: for a pattern, when the user left it.
    pub at: DateTime<Utc>,
}

/// A user's cursors, by channel or pattern.
pub type UserCursors = HashMap<String, Cursor>;

/// Cursors kept per user; the oldest go first beyond it.
pub const PER_USER: usize = 1_024;

/// Where cursors are persisted besides memory.
pub trait CursorStore: Send + Sync + std::fmt::Debug {
    /// Every cursor written at or after `newer_than`, the latest per
    /// (user, channel).
    fn load(&self, newer_than: DateTime<Utc>) -> Result<Vec<Cursor>, StoreError>;
    fn save(&self, cursors: &[Cursor]) -> Result<(), StoreError>;
}

/// `cursors.jsonl` in the data directory.
#[derive(Debug)]
pub struct FileCursors {
    path: PathBuf,
    file: Mutex<Option<File>>,
}

impl FileCursors {
    pub fn open(dir: &Path) -> Result<FileCursors, StoreError> {
        fs::create_dir_all(dir).map_err(io_err(dir))?;
        Ok(FileCursors {
            path: dir.join("cursors.jsonl"),
            file: Mutex::new(None),
        })
    }
}

impl CursorStore for FileCursors {
    fn load(&self, newer_than: DateTime<Utc>) -> Result<Vec<Cursor>, StoreError> {
        let mut bytes = Vec::new();
        match File::open(&self.path) {
            Ok(mut f) => {
                f.read_to_end(&mut bytes).map_err(io_err(&self.path))?;
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(io_err(&self.path)(e)),
        }
        let mut latest: HashMap<(String, String), Cursor> = HashMap::new();
        // A torn or damaged line costs that line only.
        for line in bytes.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
            if let Ok(c) = serde_json::from_slice::<Cursor>(line)
                && c.at >= newer_than
            {
                latest.insert((c.user.clone(), c.channel.clone()), c);
            }
        }
        let mut out: Vec<Cursor> = latest.into_values().collect();
        out.sort_by_key(|c| c.at);
        // Compact: the file holds what was loaded, no more.
        let mut buf = String::new();
        push_lines(&mut buf, &out);
        replace_file(&self.path, buf.as_bytes())?;
        *self.file.lock().expect("cursor file lock") = None;
        Ok(out)
    }

    fn save(&self, cursors: &[Cursor]) -> Result<(), StoreError> {
        if cursors.is_empty() {
            return Ok(());
        }
        let mut buf = String::new();
        push_lines(&mut buf, cursors);
        let mut file = self.file.lock().expect("cursor file lock");
        if file.is_none() {
            let f = OpenOptions::new()
                .create(true)
                .append(true)
                .open(&self.path)
                .map_err(io_err(&self.path))?;
            *file = Some(f);
        }
        let f = file.as_mut().expect("opened above");
        // One write: whole lines reach the kernel together.
        f.write_all(buf.as_bytes()).map_err(io_err(&self.path))
    }
}

/// Every user's cursors in this hub's memory.
#[derive(Debug, Default)]
pub struct CursorMap(Mutex<HashMap<String, UserCursors>>);

impl CursorMap {
    pub fn add(&self, list: impl IntoIterator<Item = Cursor>) {
        let mut map = self.0.lock().unwrap_or_else(|e| e.into_inner());
        for c in list {
            insert(map.entry(c.user.clone()).or_default(), c);
        }
    }

    pub fn of(&self, user: &str) -> UserCursors {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(user)
            .cloned()
            .unwrap_or_default()
    }
}

/// Adds `c` to a user's cursors, evicting the oldest beyond [`PER_USER`].
pub fn insert(mine: &mut UserCursors, c: Cursor) {
    if mine.len() >= PER_USER
        && !mine.contains_key(&c.channel)
        && let Some(oldest) = mine
            .values()
            .min_by_key(|c| c.at)
            .map(|c| c.channel.clone())
    {
        mine.remove(&oldest);
    }
    mine.insert(c.channel.clone(), c);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cursor(user: &str, channel: &str, seq: u64, at: DateTime<Utc>) -> Cursor {
        Cursor {
            user: user.into(),
            channel: channel.into(),
            epoch: "e1".into(),
            seq,
            at,
        }
    }

    #[test]
    fn the_latest_cursor_survives_a_reload_and_old_or_torn_ones_do_not() {
        let dir = tempfile::tempdir().unwrap();
        let store = FileCursors::open(dir.path()).unwrap();
        let now = Utc::now();
        store
            .save(&[
                cursor("u1", "sessions:S1", 4, now - chrono::Duration::days(3)),
                cursor("u1", "user:u1", 7, now),
                cursor("u2", "user:u2", 1, now),
            ])
            .unwrap();
        store.save(&[cursor("u1", "user:u1", 9, now)]).unwrap();
        // A torn last line (killed mid-write).
        let mut f = OpenOptions::new().append(true).open(&store.path).unwrap();
        f.write_all(br#"{"user":"u1","channel":"x""#).unwrap();
        let loaded = store.load(now - chrono::Duration::days(1)).unwrap();
        let mut got: Vec<(String, String, u64)> = loaded
            .iter()
            .map(|c| (c.user.clone(), c.channel.clone(), c.seq))
            .collect();
        got.sort();
        assert_eq!(
            got,
            [
                ("u1".into(), "user:u1".into(), 9),
                ("u2".into(), "user:u2".into(), 1)
            ]
        );
        // Compacted: a second load reads the same.
        assert_eq!(
            store.load(now - chrono::Duration::days(1)).unwrap().len(),
            2
        );
    }

    #[test]
    fn a_user_keeps_a_bounded_number_of_cursors() {
        let mut mine = UserCursors::new();
        let t0 = Utc::now();
        for i in 0..PER_USER + 5 {
            insert(
                &mut mine,
                cursor(
                    "u",
                    &format!("c{i}"),
                    1,
                    t0 + chrono::Duration::seconds(i as i64),
                ),
            );
        }
        assert_eq!(mine.len(), PER_USER);
        assert!(!mine.contains_key("c0") && mine.contains_key(&format!("c{}", PER_USER + 4)));
    }
}
