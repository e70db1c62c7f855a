//! What a mode hands back to the command line: its report as JSON, its
//! human summary, and whether it met its targets.

use serde_json::Value;

/// What a mode hands back: its report as JSON, its human summary, and
/// whether it met its targets.
#[derive(Debug)]
pub struct Outcome {
    pub json: Value,
    pub summary: String,
    pub ok: bool,
    /// A worker process: it spoke to its parent on stdout already.
    pub quiet: bool,
}

impl Outcome {
    pub fn new(json: Value, summary: String, ok: bool) -> Outcome {
        Outcome {
            json,
            summary,
            ok,
            quiet: false,
        }
    }

    /// A worker's end: nothing more to print.
    pub fn worker(ok: bool) -> Outcome {
        Outcome {
            json: Value::Null,
            summary: String::new(),
            ok,
            quiet: true,
        }
    }
}

/// KiB as MiB, for summaries.
pub fn kib(k: u64) -> String {
    format!("{:.1} MiB", k as f64 / 1024.0)
}
