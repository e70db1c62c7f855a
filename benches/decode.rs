//! Decode + classify throughput per backend style, and allocations per
//! event, for docs/PERFORMANCE.md. Run: `cargo bench --bench decode`.
//!
//! Each style is measured on a typical message of about 300 bytes. A
//! counting allocator reports allocations per decoded event before the
//! timing runs.

use std::alloc::{GlobalAlloc, Layout, System};
use std::hint::black_box;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use riskwatch::protocol::{Frame, decode};

struct Counting;
static ALLOCS: AtomicU64 = AtomicU64::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        unsafe { System.alloc(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        unsafe { System.dealloc(p, l) }
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, n: usize) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        unsafe { System.realloc(p, l, n) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Typical messages, one per style, each about 300 bytes.
const SAMPLES: &[(&str, &str)] = &[
    (
        "merchant",
        r#"{"type":"riskAlert","timestamp":"2026-03-01T12:00:00.123Z","data":{"assessment_id":"as-20931","merchant_id":"m-88412","severity":"high","score":87.5,"previous_score":61.0,"factors":["chargeback_rate","velocity"],"message":"Chargeback rate above 2% over the last 24 hours","region":"eu-west-1","env":"production"}}"#,
    ),
    (
        "dashboard",
        r#"{"type":"dashboard_update","timestamp":"2026-03-01T12:00:00Z","data":{"total_risks":128,"critical_risks":7,"high_risks":19,"mitigated_last_24h":11,"average_score":54.2,"trend":[51.0,52.4,53.1,54.2],"top_category":"third_party","sla_breaches":2,"open_incidents":3,"region":"eu-west-1","env":"production"}}"#,
    ),
    (
        "compliance",
        r#"{"type":"alert","timestamp":"2026-03-01T12:00:00Z","client_id":"c-5b2f9e1a","data":{"severity":"high","details":"Suspicious activity detected: bulk export of customer records to an unapproved AI service","app":"ChatGPT","user":"j.smith","msp_id":"msp-17","region":"eu-west-1","env":"production"}}"#,
    ),
    (
        "hr",
        r#"{"type":"employee_stress","timestamp":"2025-12-10T09:53:23+08:00","data":{"employee_id":"EMP001","employee_name":"John Doe","department":"Engineering","position":"Software Engineer","stress_rate":65.5,"engagement_rate":42.0,"attrition_rate":55.0,"manager":"A. Lee","region":"eu-west-1","env":"production"}}"#,
    ),
    (
        "trading",
        r#"{"type":"risk_alert","sessionId":"S42","alertLevel":"critical","alertType":"loss_limit","message":"Loss limit 92% used: reduce exposure or the session will be stopped","currentValue":92.4,"threshold":90,"timestamp":"2026-03-01T12:00:00.250Z","algorithmId":"mom-1","region":"eu-west-1","env":"production"}"#,
    ),
    (
        "native",
        r#"{"op":"event","channel":"trading:desk-1","seq":1048576,"type":"session_status","severity":"emergency","ts":"2026-03-01T12:00:00.250Z","id":"evt-8f14e45f","data":{"sessionId":"S42","status":"emergency_stopped","currentPnL":-10000.0,"lossLimitUtilization":100,"region":"eu-west-1","env":"production"}}"#,
    ),
];

fn allocations_per_event() {
    let source: Arc<str> = Arc::from("bench");
    let now = chrono::Utc::now();
    for (style, msg) in SAMPLES {
        let n = 1_000u64;
        let before = ALLOCS.load(Ordering::Relaxed);
        for _ in 0..n {
            let f = decode(black_box(msg), &source, now).expect("sample decodes");
            assert!(matches!(f, Frame::Event(_)));
            black_box(f);
        }
        let per = (ALLOCS.load(Ordering::Relaxed) - before) as f64 / n as f64;
        println!(
            "allocations per event [{style}]: {per:.1} ({} bytes)",
            msg.len()
        );
    }
}

fn bench(c: &mut Criterion) {
    allocations_per_event();
    let source: Arc<str> = Arc::from("bench");
    let now = chrono::Utc::now();
    let mut g = c.benchmark_group("decode");
    for (style, msg) in SAMPLES {
        g.throughput(Throughput::Elements(1));
        g.bench_function(*style, |b| {
            b.iter(|| decode(black_box(msg), &source, now).expect("sample decodes"))
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
