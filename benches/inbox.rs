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
use std::sync::Arc;
use std::time::Instant;

use chrono::{DateTime, Duration, TimeZone, Utc};
use criterion::Criterion;
use riskwatch::inbox::{Inbox, Query, Record, Writer, WriterConfig};
use riskwatch::protocol::{Frame, Severity, decode};

/// Messages as each backend sends them, about 300 bytes each, varied by
/// `i`: names, departments and identifiers from small sets, one id
/// unique to each alert.
fn message(i: usize) -> String {
    let depts = ["Engineering", "Sales", "Operations", "Finance", "Legal"];
    let names = [
        "John Doe",
        "Amira Haddad",
        "Lin Wei",
        "Marta Silva",
        "Kofi Mensah",
    ];
    let d = depts[i / 25 % depts.len()];
    match i % 5 {
        0 => format!(
            r#"{{"type":"riskAlert","timestamp":"2026-03-01T12:00:00Z","data":{{"assessment_id":"as-{i}","merchant_id":"m-{}","severity":"{}","score":{}.5,"factors":["chargeback_rate","velocity"],"message":"Chargeback rate above 2% over the last 24 hours","region":"eu-west-1"}}}}"#,
            i % 9973,
            if i % 20 == 0 { "critical" } else { "medium" },
            40 + i % 60
        ),
        1 => format!(
            r#"{{"type":"employee_stress","timestamp":"2026-03-01T12:00:00Z","data":{{"employee_id":"EMP{i:07}","employee_name":"{}","department":"{d}","position":"Analyst","stress_rate":{}.5,"engagement_rate":42.0,"attrition_rate":55.0,"manager":"A. Lee"}}}}"#,
            names[i / 5 % names.len()],
            30 + i % 70
        ),
        2 => format!(
            r#"{{"type":"alert","timestamp":"2026-03-01T12:00:00Z","client_id":"c-{}","data":{{"severity":"{}","details":"Suspicious activity detected: bulk export of customer records to an unapproved AI service","app":"ChatGPT","user":"user{}","ref":"cmp-{i}"}}}}"#,
            i % 97,
            if i % 15 == 2 { "critical" } else { "high" },
            i % 500
        ),
        3 => format!(
            r#"{{"type":"session_status","sessionId":"S{}","status":"{}","lossLimitUtilization":{},"currentPnL":-{}.5,"totalTrades":{},"orderRef":"ord-{i}","algorithmId":"mom-1"}}"#,
            i % 300,
            if i % 50 == 3 {
                "emergency_stopped"
            } else {
                "active"
            },
            i % 100,
            i % 5000,
            i % 700
        ),
        _ => format!(
            r#"{{"type":"department_critical","timestamp":"2026-03-01T12:00:00Z","data":{{"department_name":"{d}","average_stress":{}.0,"employees_at_risk":{},"report":"rep-{i}"}}}}"#,
            60 + i % 40,
            i % 30
        ),
    }
}

/// Writes `n` alerts over the 90 days before `end`, oldest first, through
/// the batching writer; a tenth acknowledged. Returns the ids.
fn fill(path: &std::path::Path, n: usize, end: DateTime<Utc>) -> Vec<i64> {
    let src: Arc<str> = Arc::from("bench");
    let span = Duration::days(90).num_milliseconds() / n as i64;
    let start = Instant::now();
    let (mut w, done) = Writer::spawn(path, WriterConfig::default()).unwrap();
    for i in 0..n {
        let at = end - Duration::milliseconds(span * (n - i) as i64);
        let e = match decode(&message(i), &src, at) {
            Ok(Frame::Event(e)) => e,
            other => panic!("{other:?}"),
        };
        let severity = e.severity;
        w.push(Record::new(e, at).severity(severity)).unwrap();
    }
    w.flush().unwrap();
    w.close().unwrap();
    let mut ids: Vec<i64> = done.try_iter().flat_map(|c| c.ids).collect();
    ids.sort_unstable();
    assert_eq!(ids.len(), n, "every alert committed");
    let took = start.elapsed();
    let inbox = Inbox::open(path).unwrap();
    let acked: Vec<i64> = ids.iter().copied().step_by(10).collect();
    inbox.acknowledge(&acked, end).unwrap();
    let size: u64 = ["", "-wal"]
        .iter()
        .filter_map(|s| std::fs::metadata(format!("{}{s}", path.display())).ok())
        .map(|m| m.len())
        .sum();
    println!(
        "filled: {n} alerts in {:.1} s ({:.0}/s through the writer, with the full-text index); {:.0} MB on disk",
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
