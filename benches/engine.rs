//! Alert engine throughput and decision latency, for docs/PERFORMANCE.md.
//! Run: `cargo bench --bench engine`.
//!
//! A realistic mix of decoded events (trading ticks and session updates, HR
//! stress alerts across departments, merchant score updates, critical
//! alerts) goes through preferences with filters, three threshold rules and
//! the default dedupe:
//!
//! - criterion: `decide` alone, and `decide` + inbox insert (batched writer,
//!   timed up to the commit of the last event);
//! - then, outside criterion, a sustained run of 500,000 events through
//!   decide + inbox insert + final commit (events/s), and the latency of
//!   each of 200,000 decisions measured one by one (p50, p99, p99.9, max).
//!
//! Under `cargo test --benches` everything runs once on a few events.

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, TimeZone, Utc};
use criterion::{Criterion, Throughput};
use riskwatch::Event;
use riskwatch::engine::{Engine, Prefs};
use riskwatch::inbox::{Record, Writer, WriterConfig};
use riskwatch::protocol::{Frame, decode};

const PREFS: &str = r#"
rules = [
  "employee_stress: stress_rate > 40 => warning",
  "session_status: lossLimitUtilization >= 80 => critical hysteresis 5",
  "riskUpdate: score >= 70 => critical",
]
[severity]
list = "info"
notify = "warning"
[types]
heartbeat = false
[departments]
Facilities = false
"#;

/// A deterministic mix of about 300-byte messages.
fn events(n: usize) -> Vec<Event> {
    let src: Arc<str> = Arc::from("bench");
    let t = Utc.with_ymd_and_hms(2026, 3, 1, 12, 0, 0).unwrap();
    let depts = ["Engineering", "Sales", "Ops", "Finance", "Facilities"];
    (0..n)
        .map(|i| {
            let text = match i % 10 {
                0..=3 => format!(
                    r#"{{"type":"market_data","symbol":"SYM{}","price":{}.25,"volume":{},"bid":{}.2,"ask":{}.3,"timestamp":"2026-03-01T12:00:00.250Z","exchange":"XNAS","region":"eu-west-1","env":"production","venue":"lit","currency":"USD"}}"#,
                    i % 50,
                    100 + i % 7,
                    1000 + i,
                    100 + i % 7,
                    100 + i % 7
                ),
                4 | 5 => format!(
                    r#"{{"type":"session_status","sessionId":"S{}","status":"active","lossLimitUtilization":{},"currentPnL":-{}.5,"totalTrades":{},"timeElapsed":{},"performanceScore":51.2,"timestamp":"2026-03-01T12:00:00.250Z","algorithmId":"mom-1","region":"eu-west-1"}}"#,
                    i % 20,
                    (i * 7) % 100,
                    i % 900,
                    i % 40,
                    i % 600
                ),
                6 | 7 => format!(
                    r#"{{"type":"employee_stress","timestamp":"2025-12-10T09:53:23+08:00","data":{{"employee_id":"EMP{:03}","employee_name":"Employee {}","department":"{}","position":"Engineer","stress_rate":{}.5,"engagement_rate":42.0,"attrition_rate":55.0,"manager":"A. Lee"}}}}"#,
                    i % 300,
                    i % 300,
                    depts[i % 5],
                    25 + (i * 13) % 40
                ),
                8 => format!(
                    r#"{{"type":"riskUpdate","timestamp":"2026-03-01T12:00:00.123Z","data":{{"assessment_id":"as-{}","merchant_id":"m-{}","score":{}.5,"previous_score":61.0,"factors":["chargeback_rate","velocity"],"region":"eu-west-1","env":"production"}}}}"#,
                    i,
                    i % 100,
                    40 + (i * 11) % 50
                ),
                _ => format!(
                    r#"{{"type":"risk_alert","sessionId":"S{}","alertLevel":"critical","alertType":"loss_limit","message":"Loss limit 92% used: reduce exposure or the session will be stopped","currentValue":92.4,"threshold":90,"timestamp":"2026-03-01T12:00:00.250Z"}}"#,
                    i % 20
                ),
            };
            match decode(&text, &src, t) {
                Ok(Frame::Event(e)) => e,
                other => panic!("bench message is not an event: {other:?}"),
            }
        })
        .collect()
}

fn engine() -> Engine {
    let (prefs, rules) = Prefs::from_toml(PREFS, "bench").expect("bench prefs");
    Engine::new(prefs, rules)
}

fn clock(i: u64) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, 1, 12, 0, 0).unwrap()
        + chrono::Duration::microseconds(i as i64 * 100)
}

fn bench_criterion(c: &mut Criterion, evs: &[Event]) {
    let mut g = c.benchmark_group("engine");
    g.throughput(Throughput::Elements(evs.len() as u64));
    let mut e = engine();
    let mut tick = 0u64;
    g.bench_function("decide", |b| {
        b.iter(|| {
            for ev in evs {
                tick += 1;
                black_box(e.decide(black_box(ev), clock(tick)));
            }
        })
    });
    let dir = tempfile::tempdir().unwrap();
    let (mut w, _done) =
        Writer::spawn(dir.path().join("inbox.sqlite3"), WriterConfig::default()).unwrap();
    let mut e = engine();
    g.bench_function("decide+inbox", |b| {
        b.iter_custom(|iters| {
            let start = Instant::now();
            for _ in 0..iters {
                for ev in evs {
                    tick += 1;
                    let now = clock(tick);
                    let d = e.decide(ev, now);
                    if d.list {
                        w.push(
                            Record::new(ev.clone(), now)
                                .severity(d.severity_after_rules)
                                .key(d.key),
                        )
                        .unwrap();
                    }
                }
            }
            w.flush().unwrap();
            start.elapsed()
        })
    });
    g.finish();
}

/// Events/s through decide + inbox insert, up to the last commit.
fn sustained(evs: &[Event], total: usize) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("inbox.sqlite3");
    let (mut w, done) = Writer::spawn(&path, WriterConfig::default()).unwrap();
    let mut e = engine();
    let mut stored = 0usize;
    let mut notified = 0usize;
    let start = Instant::now();
    for i in 0..total {
        let ev = &evs[i % evs.len()];
        let now = clock(i as u64);
        let d = e.decide(ev, now);
        notified += usize::from(d.notify.is_some());
        if d.list {
            w.push(
                Record::new(ev.clone(), now)
                    .severity(d.severity_after_rules)
                    .key(d.key),
            )
            .unwrap();
            stored += 1;
        }
    }
    w.flush().unwrap();
    let took = start.elapsed();
    w.close().unwrap();
    let committed: usize = done.try_iter().map(|c| c.ids.len()).sum();
    assert_eq!(committed, stored, "every pushed event is committed");
    let size = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0)
        + std::fs::metadata(dir.path().join("inbox.sqlite3-wal"))
            .map(|m| m.len())
            .unwrap_or(0);
    println!(
        "sustained: {total} events ({stored} stored, {notified} notifications) in {:.3} s = {:.0} events/s into the inbox ({:.1} MB on disk)",
        took.as_secs_f64(),
        total as f64 / took.as_secs_f64(),
        size as f64 / 1e6
    );
}

/// Per-decision latency percentiles.
fn latency(evs: &[Event], total: usize) {
    let mut e = engine();
    let mut samples: Vec<Duration> = Vec::with_capacity(total);
    for i in 0..total {
        let ev = &evs[i % evs.len()];
        let now = clock(i as u64);
        let t = Instant::now();
        let d = e.decide(ev, now);
        samples.push(t.elapsed());
        black_box(d);
    }
    samples.sort();
    let pct = |p: f64| samples[((samples.len() as f64 * p) as usize).min(samples.len() - 1)];
    println!(
        "decision latency over {total} decisions: p50 {:?}, p99 {:?}, p99.9 {:?}, max {:?}",
        pct(0.50),
        pct(0.99),
        pct(0.999),
        samples[samples.len() - 1]
    );
}

fn main() {
    // `cargo bench` passes --bench; `cargo test --benches` does not.
    let full = std::env::args().any(|a| a == "--bench");
    let evs = events(if full { 10_000 } else { 100 });
    let mut c = Criterion::default().configure_from_args();
    bench_criterion(&mut c, &evs[..evs.len().min(1000)]);
    c.final_summary();
    if full {
        sustained(&evs, 500_000);
        latency(&evs, 200_000);
    } else {
        sustained(&evs, 200);
        latency(&evs, 200);
    }
}
