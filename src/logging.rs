//! Log filtering shared by the binaries: whatever `RUST_LOG` asks for, the
//! libraries that would print a connection's secrets are held below the
//! level where they do. tungstenite logs the whole upgrade request (its
//! `Authorization` header and `?token=`) at trace; hyper and reqwest log
//! request lines and headers at trace too.
//!
//! The caps only lower: a target the user's filter leaves off stays off
//! (an `EnvFilter` directive per capped target would switch it on).
//!
//! Also where the apps' log files go ([`log_dir`]) and the recent problems
//! read back from them ([`recent_problems`]) for a support ticket.

use tracing::level_filters::LevelFilter;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::filter::{FilterExt, Targets};
use tracing_subscriber::layer::Filter;
use tracing_subscriber::registry::LookupSpan;

/// The targets capped, and the most each may log.
const CAPS: &[(&str, LevelFilter)] = &[
    ("tungstenite", LevelFilter::DEBUG),
    ("tokio_tungstenite", LevelFilter::DEBUG),
    ("hyper", LevelFilter::INFO),
    ("hyper_util", LevelFilter::INFO),
    ("reqwest", LevelFilter::INFO),
    ("h2", LevelFilter::INFO),
    ("rustls", LevelFilter::INFO),
];

/// The caps alone: everything passes but the capped targets above their
/// level.
fn caps() -> Targets {
    CAPS.iter().fold(
        Targets::new().with_default(LevelFilter::TRACE),
        |t, (target, level)| t.with_target(*target, *level),
    )
}

/// `filter` (the user's `RUST_LOG`, or a binary's default) with the
/// secret-printing targets capped, as a per-layer filter: an event is
/// logged when `filter` wants it and its target is within its cap.
pub fn without_secrets<S>(filter: EnvFilter) -> impl Filter<S> + Send + Sync + 'static
where
    S: tracing::Subscriber + for<'a> LookupSpan<'a>,
{
    filter.and(caps())
}

/// Where log files go: `$RISKWATCH_LOG_DIR` when set, else the XDG state
/// directory (`$XDG_STATE_HOME/riskwatch`, `~/.local/state/riskwatch`),
/// else the platform's local data directory's `logs` (macOS, Windows).
pub fn log_dir() -> Option<std::path::PathBuf> {
    if let Some(dir) = std::env::var_os("RISKWATCH_LOG_DIR").filter(|d| !d.is_empty()) {
        return Some(dir.into());
    }
    let dirs = directories::ProjectDirs::from("", "", "riskwatch")?;
    Some(match dirs.state_dir() {
        Some(state) => state.to_path_buf(),
        None => dirs.data_local_dir().join("logs"),
    })
}

/// `line` with credentials masked: the value after `token=`, `Bearer `
/// and `Authorization: ` up to the next space, `&`, quote or comma. The
/// apps never log a token; this is the second lock, for text that leaves
/// the machine (diagnostics pasted into a ticket).
pub fn redact(line: &str) -> String {
    let mut out = line.to_owned();
    for marker in ["token=", "Bearer ", "bearer ", "Authorization: "] {
        let mut from = 0;
        while let Some(at) = out[from..].find(marker) {
            let start = from + at + marker.len();
            let end = out[start..]
                .find([' ', '&', '"', '\'', ',', ')'])
                .map_or(out.len(), |n| start + n);
            if end > start {
                out.replace_range(start..end, "***");
            }
            from = start + 3.min(out.len() - start);
        }
    }
    out
}

/// The last `max` warning and error lines of the log files in `dir` whose
/// names start with `prefix`, oldest first, files read in name order (the
/// rolling appender's names sort by date). Unreadable files are skipped.
pub fn recent_problems(dir: &std::path::Path, prefix: &str, max: usize) -> Vec<String> {
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with(prefix))
        })
        .collect();
    files.sort();
    let mut found = std::collections::VecDeque::with_capacity(max);
    for file in files {
        let Ok(text) = std::fs::read(&file) else {
            continue;
        };
        for line in String::from_utf8_lossy(&text).lines() {
            if line.contains(" WARN ") || line.contains(" ERROR ") {
                if found.len() == max {
                    found.pop_front();
                }
                found.push_back(redact(line));
            }
        }
    }
    found.into()
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use tracing_subscriber::Layer;
    use tracing_subscriber::layer::{Context, SubscriberExt};

    use super::*;

    /// Records each event's target and level.
    #[derive(Clone, Default)]
    struct Seen(Arc<Mutex<Vec<String>>>);

    impl<S: tracing::Subscriber> Layer<S> for Seen {
        fn on_event(&self, e: &tracing::Event<'_>, _: Context<'_, S>) {
            let m = e.metadata();
            self.0
                .lock()
                .unwrap()
                .push(format!("{}:{}", m.target(), m.level()));
        }
    }

    fn logged(filter: &str) -> Vec<String> {
        let seen = Seen::default();
        let sub = tracing_subscriber::registry().with(
            seen.clone()
                .with_filter(without_secrets(EnvFilter::new(filter))),
        );
        tracing::subscriber::with_default(sub, || {
            tracing::trace!(target: "tungstenite", "t");
            tracing::debug!(target: "tungstenite", "d");
            tracing::info!(target: "hyper", "i");
            tracing::debug!(target: "hyper", "d");
            tracing::warn!(target: "riskwatch", "w");
            tracing::debug!(target: "riskwatch", "d");
        });
        seen.0.lock().unwrap().clone()
    }

    #[test]
    fn caps_lower_and_never_switch_a_target_on() {
        // The CLI's default: only riskwatch's warnings.
        assert_eq!(logged("riskwatch=warn"), ["riskwatch:WARN"]);
        // The desktop's default: info everywhere, tungstenite's debug off.
        assert_eq!(logged("info"), ["hyper:INFO", "riskwatch:WARN"]);
        // Everything asked: the capped targets stop at their caps.
        assert_eq!(
            logged("trace"),
            [
                "tungstenite:DEBUG",
                "hyper:INFO",
                "riskwatch:WARN",
                "riskwatch:DEBUG"
            ]
        );
        assert_eq!(logged("tungstenite=trace"), ["tungstenite:DEBUG"]);
    }

    #[test]
    fn recent_problems_are_the_last_warnings_and_errors_across_files() {
        let dir = tempfile::tempdir().unwrap();
        let write = |name: &str, text: &str| std::fs::write(dir.path().join(name), text).unwrap();
        write(
            "riskwatch-desktop.2026-12-05.log",
            "t  INFO a\nt  WARN first\nt ERROR second\n",
        );
        write(
            "riskwatch-desktop.2026-12-06.log",
            "t  WARN third\nt  INFO b\nt ERROR fourth\n",
        );
        write("other.log", "t ERROR not ours\n");
        let got = recent_problems(dir.path(), "riskwatch-desktop", 3);
        assert_eq!(got, ["t ERROR second", "t  WARN third", "t ERROR fourth"]);
        assert!(recent_problems(&dir.path().join("none"), "x", 5).is_empty());
    }

    #[test]
    fn redact_masks_tokens_and_leaves_the_rest() {
        assert_eq!(
            redact("url=wss://h/ws?token=abc.def&x=1 ok"),
            "url=wss://h/ws?token=***&x=1 ok"
        );
        assert_eq!(
            redact("header \"Authorization: Bearer eyJh.b.c\" sent"),
            "header \"Authorization: *** ***\" sent"
        );
        assert_eq!(redact("token= nothing"), "token= nothing");
        assert_eq!(redact("no secrets here"), "no secrets here");
        assert_eq!(redact("a token=x and token=y"), "a token=*** and token=***");
    }
}
