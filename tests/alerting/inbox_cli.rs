//! `riskwatch inbox` on a real SQLite inbox (a sample of 40 alerts, as the
//! desktop stores them): list with filters, show, ack / unack by id and
//! `ack --all`, CSV and JSON export, the desktop's inbox found through
//! `RISKWATCH_DATA_DIR`, and one clear line with exit 2 for a missing
//! inbox, a missing id, a bad time or an existing output file.

use std::path::Path;
use std::process::Output;

use chrono::{Duration, Utc};
use serde_json::Value;

use crate::common::riskwatch;

fn run(inbox: &Path, args: &[&str]) -> Output {
    let mut cmd = riskwatch();
    cmd.arg("inbox").arg("--inbox").arg(inbox).args(args);
    cmd.output().expect("riskwatch inbox runs")
}

fn ok(out: &Output) -> String {
    assert_eq!(
        out.status.code(),
        Some(0),
        "stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn json_lines(text: &str) -> Vec<Value> {
    text.lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn ids(lines: &[Value]) -> Vec<i64> {
    lines.iter().map(|v| v["id"].as_i64().unwrap()).collect()
}

#[test]
fn list_show_ack_unack_and_export_the_inbox() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("desktop").join("inbox.sqlite3");
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let stored =
        riskwatch::inbox::sample::fill(&path, 40, Utc::now(), Duration::hours(10)).unwrap();
    assert_eq!(stored.len(), 40);

    // Newest first, bounded; every field a script needs.
    let page = json_lines(&ok(&run(&path, &["list", "--limit", "5", "--json"])));
    assert_eq!(page.len(), 5);
    let mut newest: Vec<i64> = stored.clone();
    newest.sort_unstable_by(|a, b| b.cmp(a));
    assert_eq!(ids(&page), newest[..5]);
    for key in [
        "severity",
        "type",
        "title",
        "time",
        "received",
        "acknowledged",
        "message",
    ] {
        assert!(page[0].get(key).is_some(), "no {key} in {}", page[0]);
    }

    // Filters: severity, time.
    let critical = json_lines(&ok(&run(
        &path,
        &["list", "-s", "critical", "--json", "--limit", "100"],
    )));
    assert!(!critical.is_empty(), "the sample has critical alerts");
    assert!(
        critical
            .iter()
            .all(|a| a["severity"] == "critical" || a["severity"] == "emergency")
    );
    let recent = json_lines(&ok(&run(
        &path,
        &["list", "--since", "2h", "--json", "--limit", "100"],
    )));
    assert!(
        !recent.is_empty() && recent.len() < 40,
        "{} in 2 h of 10",
        recent.len()
    );

    // One alert whole.
    let id = newest[0].to_string();
    let shown = ok(&run(&path, &["show", &id]));
    assert!(shown.contains("message as received:"), "{shown}");
    assert!(shown.contains(&format!("id            {id}")), "{shown}");

    // Acknowledge two, undo one. (The sample holds some acknowledged ones.)
    let listed = |filter: &str| {
        ids(&json_lines(&ok(&run(
            &path,
            &["list", filter, "--json", "--limit", "100"],
        ))))
    };
    let before = listed("--unread");
    let acked_before = listed("--acknowledged");
    assert_eq!(before.len() + acked_before.len(), 40);
    let (a, b) = (before[0].to_string(), before[1].to_string());
    assert_eq!(ok(&run(&path, &["ack", &a, &b])).trim(), "2 acknowledged");
    let unread = listed("--unread");
    assert!(!unread.contains(&before[0]) && !unread.contains(&before[1]));
    assert_eq!(unread.len(), before.len() - 2);
    assert_eq!(ok(&run(&path, &["unack", &a])).trim(), "1 unacknowledged");
    let acked = listed("--acknowledged");
    assert!(acked.contains(&before[1]) && !acked.contains(&before[0]));
    assert_eq!(acked.len(), acked_before.len() + 1);

    // Every unacknowledged critical+ alert at once.
    let said = ok(&run(&path, &["ack", "--all", "-s", "critical"]));
    assert!(said.trim().ends_with("acknowledged"), "{said}");
    let left = json_lines(&ok(&run(
        &path,
        &["list", "--unread", "-s", "critical", "--json"],
    )));
    assert!(left.is_empty(), "{left:?}");

    // Export: JSON to a new file, CSV to stdout.
    let file = dir.path().join("all.json");
    let file_arg = file.to_str().unwrap();
    ok(&run(&path, &["export", "--format", "json", "-o", file_arg]));
    let all: Value = serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
    assert_eq!(all.as_array().map(Vec::len), Some(40));
    let again = run(&path, &["export", "--format", "json", "-o", file_arg]);
    assert_eq!(
        again.status.code(),
        Some(2),
        "an existing file is left alone"
    );
    let csv = ok(&run(&path, &["export", "--since", "2h"]));
    assert_eq!(
        csv.lines().count(),
        recent.len() + 1,
        "a header and one line per alert"
    );

    // The desktop's inbox by default, through RISKWATCH_DATA_DIR.
    let out = riskwatch()
        .args(["inbox", "list", "--json", "--limit", "3"])
        .env("RISKWATCH_DATA_DIR", dir.path())
        .output()
        .unwrap();
    assert_eq!(json_lines(&ok(&out)).len(), 3);

    // One clear line, exit 2.
    for (args, says) in [
        (vec!["show", "999999"], "no alert 999999"),
        (vec!["ack", "999999"], "no alert 999999"),
        (vec!["list", "--since", "yesterday"], "--since yesterday"),
    ] {
        let out = run(&path, &args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains(says), "{args:?}: {err}");
        assert_eq!(err.lines().count(), 1, "{args:?}: {err}");
    }
    let missing = run(&dir.path().join("none.sqlite3"), &["list"]);
    assert_eq!(missing.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&missing.stderr).contains("no inbox at"));
    assert!(
        !dir.path().join("none.sqlite3").exists(),
        "no inbox is created"
    );
}
