//! The inbox with a million alerts: what the desktop's inbox view and tray
//! ask of it, for docs/PERFORMANCE.md. Run: `cargo bench --bench inbox`.
//!
//! 1,000,000 alerts of every backend's kind over 90 days (a tenth
//! acknowledged, critical ones among them) are written through the
//! batching writer, as the app writes them; then criterion times each
//! query a user makes: the first page, a page deep in the history, a day,
//! the unacknowledged critical ones, full-text searches (a common word,
//! a rare identifier, a word with filters, nothing found), the
//! substring fallback, the tray's count and one acknowledgement.
//!
//! Under `cargo test --benches` it runs once on 2,000 alerts.

use std::hint::black_box;
use std::time::Instant;

use chrono::{DateTime, Duration, TimeZone, Utc};
use criterion::Criterion;
use riskwatch::inbox::{Inbox, Query, sample};
use riskwatch::protocol::Severity;

/// Writes `n` alerts over the 90 days before `end` (`inbox::sample`),
/// saying how fast and how big. Returns the ids.
fn fill(path: &std::path::Path, n: usize, end: DateTime<Utc>) -> Vec<i64> {
    let start = Instant::now();
    let ids = sample::fill(path, n, end, Duration::days(90)).unwrap();
    assert_eq!(ids.len(), n, "every alert committed");
    let took = start.elapsed();
    let size: u64 = ["", "-wal"]
        .iter()
        .filter_map(|s| std::fs::metadata(format!("{}{s}", path.display())).ok())
        .map(|m| m.len())
        .sum();
    println!(
        "filled: {n} alerts in {:.1} s ({:.0}/s through the writer, with the full-text index, a tenth acknowledged after); {:.0} MB on disk",
        took.as_secs_f64(),
        n as f64 / took.as_secs_f64(),
        size as f64 / 1e6
    );
    ids
}

fn main() {
    // `cargo bench` passes --bench; `cargo test --benches` does not.
    let full = std::env::args().any(|a| a == "--bench");
    let n = if full { 1_000_000 } else { 2_000 };
    let end = Utc.with_ymd_and_hms(2026, 3, 1, 12, 0, 0).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("inbox.sqlite3");
    let ids = fill(&path, n, end);
    let inbox = Inbox::open(&path).unwrap();
    let page = 200;
    let middle = ids[ids.len() / 2];
    let day = end - Duration::days(45);
    let rare = format!("EMP{:07}", n / 2 / 5 * 5 + 1);
    let queries: Vec<(&str, Query)> = vec![
        ("first page", Query::default().limit(page)),
        (
            "a page halfway back",
            Query::default().before_id(middle).limit(page),
        ),
        (
            "one day, 45 days ago",
            Query::default()
                .since(day)
                .until(day + Duration::days(1))
                .limit(page),
        ),
        (
            "unacknowledged critical",
            Query::default()
                .acknowledged(false)
                .min_severity(Severity::Critical)
                .limit(page),
        ),
        (
            "search a common word",
            Query::default().text("engineering").limit(page),
        ),
        (
            "search one employee id",
            Query::default().text(&rare).limit(page),
        ),
        (
            "search a name, critical, halfway back",
            Query::default()
                .text("lin wei")
                .min_severity(Severity::Warning)
                .before_id(middle)
                .limit(page),
        ),
        (
            "search, nothing found",
            Query::default().text("zzzz").limit(page),
        ),
        (
            "substring fallback ('%')",
            Query::default().text("%").limit(page),
        ),
    ];
    for (name, q) in &queries {
        let got = inbox.search(q).unwrap();
        println!("{name}: {} rows", got.len());
        if !name.contains("nothing") {
            assert!(!got.is_empty(), "{name} finds something");
        }
    }
    let mut c = Criterion::default()
        .sample_size(if full { 20 } else { 10 })
        .configure_from_args();
    let mut g = c.benchmark_group(format!("inbox_{n}"));
    for (name, q) in &queries {
        g.bench_function(*name, |b| b.iter(|| black_box(inbox.search(q).unwrap())));
    }
    g.bench_function("tray count (unacknowledged critical)", |b| {
        b.iter(|| black_box(inbox.unacknowledged_critical().unwrap()))
    });
    g.bench_function("unread badge (counted up to 999)", |b| {
        b.iter(|| black_box(inbox.unacknowledged_up_to(999).unwrap()))
    });
    g.bench_function("total stored", |b| {
        b.iter(|| black_box(inbox.count().unwrap()))
    });
    let mut k = 0;
    g.bench_function("acknowledge one, then undo", |b| {
        b.iter(|| {
            let id = ids[(k * 7919) % ids.len()];
            k += 1;
            inbox.acknowledge(&[id], end).unwrap();
            inbox.unacknowledge(&[id]).unwrap();
        })
    });
    g.finish();
    c.final_summary();
}
