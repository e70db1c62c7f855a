//! "Copy diagnostics" (Settings): what a support ticket needs, as plain
//! text — versions, the system, each connection (its URL without
//! credentials) and state, the inbox's counts and where it and the logs
//! are, and the recent warnings and errors from the log files, masked
//! again for credentials. Never a token: none is read here, and the log
//! lines go through `riskwatch::logging::redact`.

use std::fmt::Write;
use std::path::Path;

use crate::view::{InboxCounts, LinkState, LinkView};

/// Warnings and errors from the logs, at most.
pub const RECENT_PROBLEMS: usize = 20;

/// What the report is made of, read by the caller.
#[derive(Debug, Default)]
pub struct Facts<'a> {
    pub links: &'a [LinkView],
    pub inbox: Option<(&'a Path, &'a InboxCounts)>,
    pub inbox_error: Option<String>,
    pub log_dir: Option<&'a Path>,
    pub problems: &'a [String],
}

/// The report.
pub fn report(f: &Facts<'_>) -> String {
    let mut t = String::new();
    let _ = writeln!(
        t,
        "riskwatch-desktop {} ({} {}, {})",
        env!("CARGO_PKG_VERSION"),
        std::env::consts::OS,
        std::env::consts::ARCH,
        os_release().unwrap_or_else(|| "kernel unknown".into()),
    );
    let desktop = |k: &str| std::env::var(k).unwrap_or_else(|_| "-".into());
    let _ = writeln!(
        t,
        "desktop {} · session {} · Tauri {}",
        desktop("XDG_CURRENT_DESKTOP"),
        desktop("XDG_SESSION_TYPE"),
        tauri::VERSION,
    );
    let _ = writeln!(t, "\nConnections ({}):", f.links.len());
    if f.links.is_empty() {
        let _ = writeln!(t, "  none");
    }
    for l in f.links {
        let _ = writeln!(
            t,
            "  {}{} — {} — {}",
            l.profile,
            if l.demo { " (demo)" } else { "" },
            riskwatch::logging::redact(&l.source),
            state_text(&l.state),
        );
    }
    let _ = writeln!(t, "\nInbox:");
    match (&f.inbox, &f.inbox_error) {
        (Some((path, c)), _) => {
            let _ = writeln!(
                t,
                "  {} — {} stored, {}{} unread, {} critical unacknowledged",
                path.display(),
                c.total,
                c.unread,
                if c.unread >= InboxCounts::UNREAD_CAP {
                    "+"
                } else {
                    ""
                },
                c.critical,
            );
            if let Some(until) = c.paused_until {
                let _ = writeln!(t, "  notifications paused until {}", until.to_rfc3339());
            }
        }
        (None, Some(e)) => {
            let _ = writeln!(t, "  unavailable: {e}");
        }
        (None, None) => {
            let _ = writeln!(t, "  none");
        }
    }
    let _ = writeln!(
        t,
        "\nLogs: {}",
        f.log_dir.map_or("none (no state directory)".into(), |d| d
            .display()
            .to_string())
    );
    let _ = writeln!(
        t,
        "Recent warnings and errors ({}):",
        if f.problems.is_empty() {
            "none"
        } else {
            "newest last"
        }
    );
    for p in f.problems {
        let _ = writeln!(t, "  {p}");
    }
    t
}

fn state_text(s: &LinkState) -> String {
    match s {
        LinkState::Offline { error } => format!("offline: {}", riskwatch::logging::redact(error)),
        LinkState::Client(c) => serde_json::to_string(c)
            .map(|j| riskwatch::logging::redact(&j))
            .unwrap_or_else(|_| "unknown".into()),
    }
}

fn os_release() -> Option<String> {
    let r = std::fs::read_to_string("/proc/sys/kernel/osrelease").ok()?;
    Some(format!("kernel {}", r.trim()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use riskwatch::ConnState;

    #[test]
    fn the_report_names_versions_links_inbox_and_problems_and_no_token() {
        let links = [
            LinkView {
                profile: "prod".into(),
                source: "wss://risk.example/ws?token=s3cret".into(),
                demo: false,
                state: LinkState::Client(ConnState::Connected),
            },
            LinkView {
                profile: "demo".into(),
                source: "ws://127.0.0.1:1/api/v1/stream".into(),
                demo: true,
                state: LinkState::Offline {
                    error: "refused (Bearer abc)".into(),
                },
            },
        ];
        let counts = InboxCounts {
            total: 10,
            unread: 999,
            critical: 2,
            ..InboxCounts::default()
        };
        let problems = ["t ERROR inbox cannot store".to_owned()];
        let text = report(&Facts {
            links: &links,
            inbox: Some((Path::new("/d/inbox.sqlite3"), &counts)),
            log_dir: Some(Path::new("/s/riskwatch")),
            problems: &problems,
            ..Facts::default()
        });
        assert!(text.starts_with("riskwatch-desktop "), "{text}");
        assert!(
            text.contains("prod — wss://risk.example/ws?token=*** — {\"state\":\"connected\"}"),
            "{text}"
        );
        assert!(
            text.contains(
                "demo (demo) — ws://127.0.0.1:1/api/v1/stream — offline: refused (Bearer ***)"
            ),
            "{text}"
        );
        assert!(
            text.contains("10 stored, 999+ unread, 2 critical unacknowledged"),
            "{text}"
        );
        assert!(text.contains("Logs: /s/riskwatch"), "{text}");
        assert!(text.ends_with("  t ERROR inbox cannot store\n"), "{text}");
        assert!(!text.contains("s3cret") && !text.contains("abc"), "{text}");
    }
}
