//! Durable history for `--data-dir`: one append-only JSON-lines file per
//! channel (first line the channel's name, epoch, head and what was
//! trimmed, then one event per line), written through on every publish so
//! a restarted hub resumes where it stopped, with the same epochs. The hub
//! compacts each file to what its retention rules keep when it loads it.
//!
//! Damage stays local: a torn or unreadable line is skipped, a file whose
//! header cannot be read is moved aside (`*.damaged`), never truncated, and
//! neither stops the other channels from loading.

use std::collections::HashMap;
use std::fs::{self, File, OpenOptions};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::event::StoredEvent;

/// A storage failure. Logged by the hub; the hub keeps serving from memory.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("history store I/O on {path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
}

/// A channel as loaded from the store.
#[derive(Debug)]
pub struct StoredChannel {
    pub name: String,
    pub epoch: String,
    pub head: u64,
    /// Highest (ordinary, critical) sequence already trimmed.
    pub trimmed: (u64, u64),
    pub events: Vec<StoredEvent>,
}

/// Where channel history is persisted.
pub trait Store: Send + Sync + std::fmt::Debug {
    /// Every channel that could be read; damaged ones are logged and set
    /// aside, not returned.
    fn load(&self) -> Result<Vec<StoredChannel>, StoreError>;
    /// Appends one event; the channel's file is created (with `epoch`) by
    /// its first event, so a channel nobody published on leaves no file.
    fn append(&self, channel: &str, epoch: &str, ev: &StoredEvent) -> Result<(), StoreError>;
    /// Replaces a channel's file with exactly `events` (atomically).
    fn compact(
        &self,
        channel: &str,
        epoch: &str,
        head: u64,
        trimmed: (u64, u64),
        events: &[StoredEvent],
    ) -> Result<(), StoreError>;
    fn flush(&self) -> Result<(), StoreError>;
}

#[derive(Debug, Serialize, Deserialize)]
struct Header {
    channel: String,
    epoch: String,
    /// The channel's head when the file was last compacted (its events may
    /// all have been trimmed). Absent in files from before compaction
    /// recorded it.
    #[serde(default, skip_serializing_if = "is_zero")]
    head: u64,
    /// Highest ordinary / critical sequence trimmed; absent: everything
    /// before the first event in the file is gone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    ordinary_before: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    critical_before: Option<u64>,
}

impl Header {
    fn new(channel: &str, epoch: &str, head: u64, trimmed: (u64, u64)) -> Header {
        Header {
            channel: channel.to_owned(),
            epoch: epoch.to_owned(),
            head,
            ordinary_before: Some(trimmed.0),
            critical_before: Some(trimmed.1),
        }
    }
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// The JSON-lines directory store.
#[derive(Debug)]
pub struct FileStore {
    dir: PathBuf,
    files: Mutex<HashMap<String, File>>,
}

pub(super) fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> StoreError + '_ {
    move |source| StoreError::Io {
        path: path.display().to_string(),
        source,
    }
}

/// A file name for a channel: its bytes hex-encoded (names hold `/`, `:`),
/// or, for a name too long for a file name, a SHA-256 of it (the header
/// holds the name itself).
fn file_name(channel: &str) -> String {
    if channel.len() <= 100 {
        let hex: String = channel.bytes().map(|b| format!("{b:02x}")).collect();
        return format!("{hex}.jsonl");
    }
    let digest = Sha256::digest(channel.as_bytes());
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    format!("h-{hex}.jsonl")
}

/// Appends each item as one JSON line to `buf` (the files' format).
pub(super) fn push_lines<T: Serialize>(buf: &mut String, items: impl IntoIterator<Item = T>) {
    for item in items {
        buf.push_str(&serde_json::to_string(&item).expect("a stored item serializes"));
        buf.push('\n');
    }
}

/// Writes `bytes` to `path` through a temporary file and a rename, synced,
/// so a crash leaves the old file or the new one, never half of one.
pub(super) fn replace_file(path: &Path, bytes: &[u8]) -> Result<(), StoreError> {
    let tmp = path.with_extension("tmp");
    {
        let mut out = File::create(&tmp).map_err(io_err(&tmp))?;
        out.write_all(bytes).map_err(io_err(&tmp))?;
        out.sync_all().map_err(io_err(&tmp))?;
    }
    fs::rename(&tmp, path).map_err(io_err(path))?;
    if let Some(dir) = path.parent()
        && let Ok(d) = File::open(dir)
    {
        let _ = d.sync_all();
    }
    Ok(())
}

impl FileStore {
    /// Opens (creating) `dir/history`.
    pub fn open(dir: &Path) -> Result<FileStore, StoreError> {
        let dir = dir.join("history");
        fs::create_dir_all(&dir).map_err(io_err(&dir))?;
        Ok(FileStore {
            dir,
            files: Mutex::new(HashMap::new()),
        })
    }

    fn path(&self, channel: &str) -> PathBuf {
        self.dir.join(file_name(channel))
    }

    /// Moves a file the store cannot use out of the way, keeping it for a
    /// human to look at.
    fn set_aside(&self, path: &Path, why: &str) {
        let stamp = chrono::Utc::now().format("%Y%m%dT%H%M%S%.3f");
        let aside = path.with_extension(format!("damaged-{stamp}"));
        match fs::rename(path, &aside) {
            Ok(()) => tracing::error!(
                path = %path.display(), kept_as = %aside.display(), why,
                "history file set aside"
            ),
            Err(e) => tracing::error!(path = %path.display(), error = %e, why,
                "history file unusable and could not be set aside"),
        }
    }

    fn load_one(&self, path: &Path) -> Result<Option<StoredChannel>, StoreError> {
        let mut bytes = Vec::new();
        File::open(path)
            .and_then(|mut f| f.read_to_end(&mut bytes))
            .map_err(io_err(path))?;
        let mut lines = bytes.split(|b| *b == b'\n');
        let header = lines
            .next()
            .and_then(|first| serde_json::from_slice::<Header>(first).ok());
        let Some(header) = header else {
            if bytes.is_empty() {
                // Created and killed before its header was written.
                let _ = fs::remove_file(path);
            } else {
                self.set_aside(path, "no readable header");
            }
            return Ok(None);
        };
        let mut events: Vec<StoredEvent> = Vec::new();
        let mut skipped = 0usize;
        for line in lines.filter(|l| !l.is_empty()) {
            // A torn line (killed mid-write) or damaged bytes cost that
            // line only.
            match serde_json::from_slice::<StoredEvent>(line) {
                Ok(e) if events.last().is_none_or(|l| l.seq < e.seq) => events.push(e),
                _ => skipped += 1,
            }
        }
        if skipped > 0 {
            tracing::warn!(path = %path.display(), skipped, "skipped damaged history lines");
        }
        let head = events.last().map_or(0, |e| e.seq).max(header.head);
        let first_gone = events.first().map_or(head, |e| e.seq.saturating_sub(1));
        Ok(Some(StoredChannel {
            name: header.channel,
            epoch: header.epoch,
            head,
            trimmed: (
                header.ordinary_before.unwrap_or(first_gone),
                header.critical_before.unwrap_or(first_gone),
            ),
            events,
        }))
    }
}

impl Store for FileStore {
    fn load(&self) -> Result<Vec<StoredChannel>, StoreError> {
        let mut out = Vec::new();
        let entries = fs::read_dir(&self.dir).map_err(io_err(&self.dir))?;
        for entry in entries {
            let Ok(entry) = entry else { continue };
            let path = entry.path();
            if path.extension().is_none_or(|e| e != "jsonl") {
                continue;
            }
            match self.load_one(&path) {
                Ok(Some(c)) => out.push(c),
                Ok(None) => {}
                // One unreadable file is that channel's loss, not every
                // channel's: the file stays where it is for a human.
                Err(e) => tracing::error!(error = %e, "history file skipped"),
            }
        }
        Ok(out)
    }

    fn append(&self, channel: &str, epoch: &str, ev: &StoredEvent) -> Result<(), StoreError> {
        let mut line = serde_json::to_string(ev).expect("event serializes");
        line.push('\n');
        let mut files = self.files.lock().expect("store lock");
        if !files.contains_key(channel) {
            let path = self.path(channel);
            // The channel's first event creates its file, header first.
            // A file already there is this channel's (every readable file
            // was loaded, an unreadable one set aside): append to it.
            let f = match OpenOptions::new().append(true).create_new(true).open(&path) {
                Ok(mut f) => {
                    let mut first = String::new();
                    push_lines(&mut first, [Header::new(channel, epoch, 0, (0, 0))]);
                    f.write_all(first.as_bytes()).map_err(io_err(&path))?;
                    f
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => OpenOptions::new()
                    .append(true)
                    .open(&path)
                    .map_err(io_err(&path))?,
                Err(e) => return Err(io_err(&path)(e)),
            };
            files.insert(channel.to_owned(), f);
        }
        let f = files.get_mut(channel).expect("inserted above");
        // One write per event: it reaches the kernel at once, so a killed
        // hub loses nothing it acknowledged.
        f.write_all(line.as_bytes())
            .map_err(io_err(&self.path(channel)))
    }

    fn compact(
        &self,
        channel: &str,
        epoch: &str,
        head: u64,
        trimmed: (u64, u64),
        events: &[StoredEvent],
    ) -> Result<(), StoreError> {
        let mut buf = String::new();
        push_lines(&mut buf, [Header::new(channel, epoch, head, trimmed)]);
        push_lines(&mut buf, events);
        // The open append handle points at the file being replaced.
        let mut files = self.files.lock().expect("store lock");
        files.remove(channel);
        replace_file(&self.path(channel), buf.as_bytes())
    }

    fn flush(&self) -> Result<(), StoreError> {
        for (ch, f) in self.files.lock().expect("store lock").iter() {
            f.sync_data().map_err(io_err(&self.path(ch)))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::Severity;
    use serde_json::value::RawValue;

    fn ev(seq: u64) -> StoredEvent {
        StoredEvent {
            seq,
            kind: "t".into(),
            severity: Severity::Info,
            ts: chrono::Utc::now(),
            id: None,
            data: RawValue::from_string(format!("{{\"i\":{seq}}}")).unwrap(),
        }
    }

    #[test]
    fn a_torn_line_costs_that_line_and_a_bad_file_costs_that_file() {
        let dir = tempfile::tempdir().unwrap();
        let store = FileStore::open(dir.path()).unwrap();
        for ch in ["a", "b"] {
            for i in 1..=3 {
                store.append(ch, "e1", &ev(i)).unwrap();
            }
        }
        // "a": a torn last line and invalid UTF-8 in the middle.
        let a = store.path("a");
        let mut text = fs::read(&a).unwrap();
        let second = text
            .iter()
            .enumerate()
            .filter(|(_, b)| **b == b'\n')
            .nth(1)
            .unwrap()
            .0;
        text.insert(second + 1, 0xff);
        text.extend_from_slice(br#"{"seq":4,"type":"t","sev"#);
        fs::write(&a, &text).unwrap();
        // A file with no header at all.
        let junk = store.dir.join("6a756e6b.jsonl");
        fs::write(&junk, b"\xff\xfe not json\n").unwrap();

        let mut loaded = store.load().unwrap();
        loaded.sort_by(|x, y| x.name.cmp(&y.name));
        let names: Vec<_> = loaded.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, ["a", "b"]);
        let a_seqs: Vec<u64> = loaded[0].events.iter().map(|e| e.seq).collect();
        assert_eq!(a_seqs, [1, 3]);
        assert_eq!(loaded[1].events.len(), 3);
        assert!(!junk.exists(), "the bad file is set aside");
        let aside = fs::read_dir(&store.dir)
            .unwrap()
            .filter(|e| {
                e.as_ref()
                    .unwrap()
                    .path()
                    .to_string_lossy()
                    .contains("damaged")
            })
            .count();
        assert_eq!(aside, 1);
    }

    #[test]
    fn long_channel_names_persist_and_compaction_keeps_head_and_trim_marks() {
        let dir = tempfile::tempdir().unwrap();
        let store = FileStore::open(dir.path()).unwrap();
        let long = "x".repeat(300);
        store.append(&long, "e1", &ev(1)).unwrap();
        store.append(&long, "e1", &ev(2)).unwrap();
        store.compact(&long, "e1", 9, (7, 3), &[ev(8)]).unwrap();
        store.append(&long, "e1", &ev(10)).unwrap();
        let loaded = store.load().unwrap();
        assert_eq!(loaded.len(), 1);
        let c = &loaded[0];
        assert_eq!(
            (c.name.as_str(), c.head, c.trimmed),
            (long.as_str(), 10, (7, 3))
        );
        let seqs: Vec<u64> = c.events.iter().map(|e| e.seq).collect();
        assert_eq!(seqs, [8, 10]);
        // Compacted to nothing: the head survives.
        store.compact(&long, "e1", 10, (10, 10), &[]).unwrap();
        let c = store.load().unwrap().remove(0);
        assert_eq!((c.head, c.events.len()), (10, 0));
    }
}
