//! What a hub finds in its `--data-dir` after a crash, a full disk or a
//! hand edit: a channel's history file and the users' cursors file, each
//! any bytes at all (a torn last line, a damaged header, sequences out of
//! order, timestamps from any year). Restoring them (`MemoryBroker::open`:
//! load, trim to the history rules, compact back to disk) must never
//! panic; damage costs the damaged lines or that file, as
//! docs/RELIABILITY.md says.
#![no_main]

use std::path::PathBuf;
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use riskwatch::server::HubLimits;
use riskwatch::server::broker::MemoryBroker;

/// One directory per fuzzing process, in memory where the machine has
/// /dev/shm (compaction fsyncs).
fn dir() -> &'static PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let base = if std::path::Path::new("/dev/shm").is_dir() {
            PathBuf::from("/dev/shm")
        } else {
            std::env::temp_dir()
        };
        base.join(format!("riskwatch-fuzz-store-{}", std::process::id()))
    })
}

fuzz_target!(|data: &[u8]| {
    // History bytes, then (after the first NUL) the cursors file's bytes.
    let (history, cursors) = match data.iter().position(|b| *b == 0) {
        Some(at) => (&data[..at], &data[at + 1..]),
        None => (data, &[][..]),
    };
    let dir = dir();
    let _ = std::fs::remove_dir_all(dir);
    std::fs::create_dir_all(dir.join("history")).expect("a scratch directory");
    std::fs::write(dir.join("history").join("63.jsonl"), history).expect("written");
    if !cursors.is_empty() {
        std::fs::write(dir.join("cursors.jsonl"), cursors).expect("written");
    }
    let broker = MemoryBroker::open(HubLimits::default(), Some(dir)).expect("the directory opens");
    drop(broker);
});
