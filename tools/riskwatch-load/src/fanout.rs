//! `fanout`: N subscribers on one channel, a probe published at a steady
//! rate through `POST /api/v1/publish` (or a reference hub's WebSocket:
//! `publisher`) carrying its send time; every
//! delivery's latency (receive − send, one wall clock) goes into one
//! histogram. The subscribed sockets are read by `reader`'s epoll
//! threads.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use clap::Args;
use serde::Serialize;
use tokio::time::{Instant, MissedTickBehavior};

use crate::client;
use crate::common::Common;
use crate::counters::Shared;
use crate::publisher::Publisher;
use crate::reader::{self, Readers};
use crate::report::Outcome;
use crate::sys::{CpuMeter, CpuUse, wall_ns};
use crate::target::Target;

/// The target for p99 at 10,000 subscribers.
pub const TARGET_P99_MS: f64 = 50.0;

#[derive(Debug, Clone, Args)]
pub struct FanoutArgs {
    /// Subscribers, all on one channel.
    #[arg(long, default_value_t = 10_000)]
    pub subscribers: usize,
    /// Probes published per second.
    #[arg(long, default_value_t = 1.0)]
    pub rate: f64,
    /// Seconds of publishing.
    #[arg(long, default_value_t = 30)]
    pub duration: u64,
    /// Seconds to wait after the last probe for late deliveries.
    #[arg(long, default_value_t = 5)]
    pub drain: u64,
    /// Milliseconds an idle reader sleeps before looking again; 0 blocks
    /// in epoll_wait, so every delivery wakes a reader.
    #[arg(long, default_value_t = 1)]
    pub poll_ms: u64,
}

/// Percentiles in milliseconds.
#[derive(Debug, Clone, Serialize)]
pub struct Latency {
    pub samples: u64,
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p99_ms: f64,
    pub p999_ms: f64,
    pub max_ms: f64,
    pub mean_ms: f64,
}

#[derive(Debug, Serialize)]
pub struct FanoutReport {
    pub subscribers: usize,
    /// Subscribed when publishing began.
    pub subscribed: u64,
    pub failed: u64,
    pub errors: BTreeMap<String, u64>,
    pub connect_secs: f64,
    pub rate: f64,
    pub published: u64,
    pub publish_errors: u64,
    /// subscribed × published.
    pub expected: u64,
    pub delivered: u64,
    pub missed: u64,
    pub out_of_sequence: u64,
    pub latency: Option<Latency>,
    /// When the last subscriber had each probe.
    pub probes: ProbeTimes,
    /// CPU from the first publish to the end of the drain (includes the
    /// idle time between probes).
    pub cpu: CpuUse,
    pub closes: BTreeMap<u16, u64>,
    pub dropped: u64,
    /// The hub's own count of events it could not queue.
    pub hub_dropped_slow: Option<u64>,
    /// p99 under 50 ms (the target at 10,000 subscribers).
    pub target_p99_met: Option<bool>,
}

/// Per probe: the time until the last subscriber had it (the fan-out's
/// completion time).
#[derive(Debug, Clone, Serialize)]
pub struct ProbeTimes {
    pub median_ms: f64,
    pub max_ms: f64,
    /// Probes that took more than twice the median: (seconds after the
    /// first probe, ms), at most 10. The hub's heartbeat pings go to every
    /// connection 30 s after it opened; when the connections opened
    /// together, so do the pings.
    pub slow: Vec<(f64, f64)>,
}

fn probe_times(shared: &Shared, sent_at: &[f64]) -> ProbeTimes {
    let ms: Vec<f64> = shared
        .probe_max_us
        .iter()
        .take(sent_at.len())
        .map(|m| m.load(Ordering::Relaxed) as f64 / 1000.0)
        .collect();
    let mut sorted = ms.clone();
    sorted.sort_by(f64::total_cmp);
    let median_ms = sorted.get(sorted.len() / 2).copied().unwrap_or(0.0);
    let slow = ms
        .iter()
        .zip(sent_at)
        .filter(|(m, _)| **m > 2.0 * median_ms)
        .take(10)
        .map(|(m, at)| ((at * 10.0).round() / 10.0, *m))
        .collect();
    ProbeTimes {
        median_ms,
        max_ms: sorted.last().copied().unwrap_or(0.0),
        slow,
    }
}

pub fn latency(h: &hdrhistogram::Histogram<u64>) -> Option<Latency> {
    if h.is_empty() {
        return None;
    }
    let ms = |us: u64| us as f64 / 1000.0;
    Some(Latency {
        samples: h.len(),
        p50_ms: ms(h.value_at_quantile(0.50)),
        p90_ms: ms(h.value_at_quantile(0.90)),
        p99_ms: ms(h.value_at_quantile(0.99)),
        p999_ms: ms(h.value_at_quantile(0.999)),
        max_ms: ms(h.max()),
        mean_ms: h.mean() / 1000.0,
    })
}

pub async fn run(
    a: &FanoutArgs,
    common: &Common,
    hub: &Target,
    deadline: Instant,
) -> anyhow::Result<Outcome> {
    anyhow::ensure!(
        a.rate > 0.0 && a.rate <= 10_000.0,
        "--rate must be in (0, 10000]"
    );
    let channel = format!("load-fanout-{}", std::process::id());
    // One probe event (~250 bytes) per read.
    let mut cfg = common.client_config(hub, &channel, 1);
    cfg.read_buffer = 1024;
    let count = (a.duration as f64 * a.rate).ceil().max(1.0) as u64;
    let shared = Arc::new(Shared::new(a.subscribers, count as usize));
    let poll = reader::poll_interval(a.poll_ms);
    let readers = Readers::start(common.threads(), Arc::clone(&shared), poll)?;
    cfg.readers = Some(Arc::clone(&readers));
    let cfg = Arc::new(cfg);
    let connected = common
        .connect_all(a.subscribers, &cfg, &shared, deadline)
        .await;
    let subscribed = shared.held.load(Ordering::Relaxed);
    tracing::info!(subscribed, "subscribers ready; publishing");
    anyhow::ensure!(
        subscribed > 0,
        "no subscriber connected: {:?}",
        shared.errors()
    );

    let publisher = Publisher::open(hub, &cfg, &channel).await?;

    let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / a.rate));
    tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let (mut published, mut publish_errors) = (0u64, 0u64);
    let meter = CpuMeter::start(&hub.pids);
    let start = Instant::now();
    let mut sent_at = Vec::with_capacity(count as usize);

    for k in 0..count {
        tokio::select! {
            _ = tick.tick() => {}
            _ = tokio::time::sleep_until(deadline) => break,
        }
        sent_at.push(start.elapsed().as_secs_f64());
        match publisher.probes(k, 1, wall_ns()).await {
            Ok(()) => published += 1,
            Err(e) => {
                publish_errors += 1;
                tracing::warn!(error = %e, "publish failed");
            }
        }
    }
    let expected = subscribed * published;
    let drain_until = (Instant::now() + Duration::from_secs(a.drain)).min(deadline);
    client::wait_until(drain_until, || {
        shared.deliveries.load(Ordering::Relaxed) >= expected
    })
    .await;
    let cpu = meter.stop();
    // Joins the readers: their latencies are in `shared` from here on.
    readers.stop();
    let hub_dropped_slow = hub
        .stats()
        .await
        .ok()
        .and_then(|s| s.get("dropped_slow_consumers").and_then(|v| v.as_u64()));
    client::close_all(connected.tasks).await;

    let delivered = shared.deliveries.load(Ordering::Relaxed);
    let lat = shared
        .latency
        .as_ref()
        .and_then(|h| latency(&h.lock().expect("histogram lock")));
    let probes = probe_times(&shared, &sent_at);
    let report = FanoutReport {
        subscribers: a.subscribers,
        subscribed,
        failed: shared.failed.load(Ordering::Relaxed),
        errors: shared.errors(),
        connect_secs: connected.elapsed.as_secs_f64(),
        rate: a.rate,
        published,
        publish_errors,
        expected,
        delivered,
        missed: expected.saturating_sub(delivered),
        out_of_sequence: shared.out_of_sequence.load(Ordering::Relaxed),
        target_p99_met: lat.as_ref().map(|l| l.p99_ms < TARGET_P99_MS),
        latency: lat,
        probes,

        cpu,
        closes: shared.closes(),
        dropped: shared.dropped.load(Ordering::Relaxed),
        hub_dropped_slow,
    };
    let ok = report.missed == 0
        && report.target_p99_met == Some(true)
        && subscribed as usize == a.subscribers;
    let summary = summary(&report);
    Ok(Outcome::new(serde_json::to_value(&report)?, summary, ok))
}

fn summary(r: &FanoutReport) -> String {
    let mut s = String::new();
    s += &format!(
        "fan-out: {} of {} subscribers on one channel (connected in {:.1} s), failed {}\n",
        r.subscribed, r.subscribers, r.connect_secs, r.failed
    );
    for (e, n) in &r.errors {
        s += &format!("  {n} × {e}\n");
    }
    s += &format!(
        "published {} probes at {}/s ({} errors); deliveries {} of {}, missed {}, out of sequence {}\n",
        r.published, r.rate, r.publish_errors, r.delivered, r.expected, r.missed, r.out_of_sequence
    );
    match &r.latency {
        Some(l) => {
            s += &format!(
                "latency (publish -> subscriber): p50 {:.2} ms, p90 {:.2} ms, p99 {:.2} ms, p99.9 {:.2} ms, max {:.2} ms, mean {:.2} ms ({} samples)\n",
                l.p50_ms, l.p90_ms, l.p99_ms, l.p999_ms, l.max_ms, l.mean_ms, l.samples
            )
        }
        None => s += "latency: no deliveries\n",
    }
    s += &format!(
        "per probe, until the last subscriber had it: median {:.2} ms, max {:.2} ms",
        r.probes.median_ms, r.probes.max_ms
    );
    if !r.probes.slow.is_empty() {
        let slow: Vec<String> = r
            .probes
            .slow
            .iter()
            .map(|(at, ms)| format!("{ms:.0} ms at {at} s"))
            .collect();
        s += &format!("; slow probes (> 2× median): {}", slow.join(", "));
    }
    s += "\n";
    s += &r.cpu.describe(Some((r.delivered, "delivery")));
    s += "\n";
    if !r.closes.is_empty() || r.dropped > 0 {
        s += &format!("closed by the hub {:?}, dropped {}\n", r.closes, r.dropped);
    }
    if let Some(d) = r.hub_dropped_slow {
        s += &format!("hub: {d} events not queued to slow consumers\n");
    }
    s += &format!(
        "target p99 < {TARGET_P99_MS} ms: {}\n",
        match r.target_p99_met {
            Some(true) => "MET",
            Some(false) => "NOT MET",
            None => "unknown",
        }
    );
    s
}
