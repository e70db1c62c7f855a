//! Durable history for `--data-dir`: one append-only JSON-lines file per
//! channel (first line the channel's name and epoch, then one event per
//! line), written through on every publish so a restarted hub resumes where
//! it stopped, with the same epochs. Files are compacted to the history
//! limit when loaded.

use std::collections::HashMap;
use std::fs::{self, File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

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
    pub events: Vec<StoredEvent>,
}

/// Where channel history is persisted.
pub trait Store: Send + Sync + std::fmt::Debug {
    fn load(&self) -> Result<Vec<StoredChannel>, StoreError>;
    fn new_channel(&self, name: &str, epoch: &str) -> Result<(), StoreError>;
    fn append(&self, channel: &str, epoch: &str, ev: &StoredEvent) -> Result<(), StoreError>;
    fn flush(&self) -> Result<(), StoreError>;
}

#[derive(Debug, Serialize, Deserialize)]
struct Header {
    channel: String,
    epoch: String,
}

/// The JSON-lines directory store.
#[derive(Debug)]
pub struct FileStore {
    dir: PathBuf,
    keep: usize,
    files: Mutex<HashMap<String, File>>,
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> StoreError + '_ {
    move |source| StoreError::Io {
        path: path.display().to_string(),
        source,
    }
}

/// A file name for a channel: its bytes hex-encoded (names hold `/`, `:`).
fn file_name(channel: &str) -> String {
    let hex: String = channel.bytes().map(|b| format!("{b:02x}")).collect();
    format!("{hex}.jsonl")
}

impl FileStore {
    /// Opens (creating) `dir`; `keep` is how many events per channel survive
    /// compaction.
    pub fn open(dir: &Path, keep: usize) -> Result<FileStore, StoreError> {
        let dir = dir.join("history");
        fs::create_dir_all(&dir).map_err(io_err(&dir))?;
        Ok(FileStore {
            dir,
            keep,
            files: Mutex::new(HashMap::new()),
        })
    }

    fn path(&self, channel: &str) -> PathBuf {
        self.dir.join(file_name(channel))
    }

    fn load_one(&self, path: &Path) -> Result<Option<StoredChannel>, StoreError> {
        let f = File::open(path).map_err(io_err(path))?;
        let mut lines = BufReader::new(f).lines();
        let Some(Ok(first)) = lines.next() else {
            return Ok(None);
        };
        let Ok(header) = serde_json::from_str::<Header>(&first) else {
            tracing::warn!(path = %path.display(), "skipping a history file without a header");
            return Ok(None);
        };
        let mut events: Vec<StoredEvent> = Vec::new();
        for line in lines {
            let line = line.map_err(io_err(path))?;
            // A torn last line (killed mid-write) is skipped, not fatal.
            match serde_json::from_str::<StoredEvent>(&line) {
                Ok(e) => events.push(e),
                Err(_) => tracing::warn!(path = %path.display(), "skipping a damaged history line"),
            }
        }
        let head = events.last().map_or(0, |e| e.seq);
        if events.len() > self.keep {
            events.drain(..events.len() - self.keep);
        }
        // Compact: rewrite header + kept events atomically.
        let tmp = path.with_extension("tmp");
        {
            let mut out = File::create(&tmp).map_err(io_err(&tmp))?;
            let mut buf = serde_json::to_string(&header).expect("header serializes");
            buf.push('\n');
            for e in &events {
                buf.push_str(&serde_json::to_string(e).expect("event serializes"));
                buf.push('\n');
            }
            out.write_all(buf.as_bytes()).map_err(io_err(&tmp))?;
            out.sync_all().map_err(io_err(&tmp))?;
        }
        fs::rename(&tmp, path).map_err(io_err(path))?;
        Ok(Some(StoredChannel {
            name: header.channel,
            epoch: header.epoch,
            head,
            events,
        }))
    }
}

impl Store for FileStore {
    fn load(&self) -> Result<Vec<StoredChannel>, StoreError> {
        let mut out = Vec::new();
        let entries = fs::read_dir(&self.dir).map_err(io_err(&self.dir))?;
        for entry in entries {
            let path = entry.map_err(io_err(&self.dir))?.path();
            if path.extension().is_some_and(|e| e == "jsonl")
                && let Some(c) = self.load_one(&path)?
            {
                out.push(c);
            }
        }
        Ok(out)
    }

    fn new_channel(&self, name: &str, epoch: &str) -> Result<(), StoreError> {
        let path = self.path(name);
        let mut f = File::create(&path).map_err(io_err(&path))?;
        let header = Header {
            channel: name.to_owned(),
            epoch: epoch.to_owned(),
        };
        let mut line = serde_json::to_string(&header).expect("header serializes");
        line.push('\n');
        f.write_all(line.as_bytes()).map_err(io_err(&path))?;
        Ok(())
    }

    fn append(&self, channel: &str, _epoch: &str, ev: &StoredEvent) -> Result<(), StoreError> {
        let mut line = serde_json::to_string(ev).expect("event serializes");
        line.push('\n');
        let mut files = self.files.lock().expect("store lock");
        if !files.contains_key(channel) {
            let path = self.path(channel);
            let f = OpenOptions::new()
                .append(true)
                .open(&path)
                .map_err(io_err(&path))?;
            files.insert(channel.to_owned(), f);
        }
        let f = files.get_mut(channel).expect("inserted above");
        // One write per event: it reaches the kernel at once, so a killed
        // hub loses nothing it acknowledged.
        f.write_all(line.as_bytes())
            .map_err(io_err(&self.path(channel)))
    }

    fn flush(&self) -> Result<(), StoreError> {
        for (ch, f) in self.files.lock().expect("store lock").iter() {
            f.sync_data().map_err(io_err(&self.path(ch)))?;
        }
        Ok(())
    }
}
