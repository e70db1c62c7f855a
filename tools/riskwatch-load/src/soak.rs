//! `soak`: N resuming clients (default 2,000) on one hub for a long time
//! (default 30 minutes) under a steady publish load, with clients dropped
//! at random (their sockets closed without a close frame, as a network
//! does) so that they reconnect and resume all along. The hub's resident
//! memory and open descriptors are sampled each minute; the report gives
//! their least-squares slope (the goal is flat), and what the clients lost
//! or saw twice (the goal is nothing).

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use clap::Args;
use serde::Serialize;
use serde_json::{Value, json};
use tokio::time::Instant;

use crate::client::wait_until;
use crate::common::Common;
use crate::report::{Outcome, kib};
use crate::resuming::{Backoff, Clients, Random, Stop, start_all};
use crate::sys;
use crate::target::Target;

#[derive(Debug, Clone, Args)]
pub struct SoakArgs {
    /// Clients, each subscribed to one channel.
    #[arg(long, default_value_t = 2_000)]
    pub clients: usize,
    /// Spread over this many channels (`soak:0` … `soak:K-1`).
    #[arg(long, default_value_t = 20)]
    pub channels: usize,
    /// How long, in seconds.
    #[arg(long, default_value_t = 1_800)]
    pub seconds: u64,
    /// Events published per second, round-robin over the channels.
    #[arg(long, default_value_t = 50)]
    pub rate: u64,
    /// Clients dropped at random per minute (each reconnects and
    /// resumes).
    #[arg(long, default_value_t = 200)]
    pub drops_per_minute: u64,
    /// Seconds between samples of the hub's memory and descriptors.
    #[arg(long, default_value_t = 60)]
    pub sample_every: u64,
    /// Severity of what is published. Ordinary events (the default) are
    /// kept by count and age, so the hub's history stops growing once it
    /// is full; critical ones are kept 24 h (up to 50,000 per channel),
    /// and the history grows for that long by design.
    #[arg(long, default_value = "info")]
    pub severity: String,
    /// Seconds before the slope is judged: the ordinary history fills
    /// for its first 10 minutes (its age limit), then trims as much as
    /// comes in.
    #[arg(long, default_value_t = 600)]
    pub warmup: u64,
}

/// One reading of the hub.
#[derive(Debug, Clone, Serialize)]
pub struct Sample {
    /// Seconds since the load began.
    pub at_s: f64,
    pub rss_kib: Option<u64>,
    pub fds: Option<u64>,
    /// Clients connected at the time (by the hub's count).
    pub hub_connections: Option<u64>,
    /// The hub's heap as its allocator counts it (its stats' `heap`):
    /// allocated and not freed, and held from the system.
    pub heap_in_use_kib: Option<u64>,
    pub heap_held_kib: Option<u64>,
    pub published: u64,
    pub delivered: u64,
}

#[derive(Debug, Serialize)]
pub struct SoakReport {
    pub clients: usize,
    pub channels: usize,
    pub seconds: u64,
    pub rate: u64,
    pub drops_per_minute: u64,
    pub samples: Vec<Sample>,
    /// Least-squares slope over the samples after the warm-up (history
    /// filling, allocator arenas).
    pub rss_slope_kib_per_min: Option<f64>,
    pub fds_slope_per_min: Option<f64>,
    /// The same as a share of the mean, over the whole run: how much the
    /// line would have grown from start to end.
    pub rss_growth_over_run: Option<f64>,
    /// The same for the heap in use: growing RSS over a flat heap in use
    /// is the allocator keeping freed memory, not a leak.
    pub heap_in_use_slope_kib_per_min: Option<f64>,
    pub heap_in_use_growth_over_run: Option<f64>,
    /// Whether memory and descriptors stayed flat; judged with at least
    /// four samples after the warm-up.
    pub flat: Option<bool>,
    pub severity: String,
    pub warmup_s: u64,
    pub published: u64,
    pub publish_errors: u64,
    pub drops: u64,
    pub reconnects: u64,
    pub complete_clients: usize,
    pub lost: u64,
    pub repeated: u64,
    pub gaps: u64,
    pub failed_attempts: u64,
    pub stopped_early: Option<String>,
}

/// A series' slope per minute and how much its fitted line grows over
/// `minutes`, as a share of its mean.
fn trend(points: &[(f64, f64)], minutes: f64) -> (Option<f64>, Option<f64>) {
    let s = slope(points);
    let mean = (!points.is_empty())
        .then(|| points.iter().map(|p| p.1).sum::<f64>() / points.len() as f64)
        .filter(|m| *m > 0.0);
    (s, s.zip(mean).map(|(s, m)| s * minutes / m))
}

/// Least-squares slope of `y` over `x` (None under two points).
fn slope(points: &[(f64, f64)]) -> Option<f64> {
    let n = points.len() as f64;
    if points.len() < 2 {
        return None;
    }
    let (sx, sy) = points
        .iter()
        .fold((0.0, 0.0), |(a, b), (x, y)| (a + x, b + y));
    let (mx, my) = (sx / n, sy / n);
    let (num, den) = points.iter().fold((0.0, 0.0), |(a, b), (x, y)| {
        (a + (x - mx) * (y - my), b + (x - mx) * (x - mx))
    });
    (den > 0.0).then(|| num / den)
}

pub async fn run(
    a: &SoakArgs,
    common: &Common,
    hub: &Target,
    deadline: Instant,
) -> anyhow::Result<Outcome> {
    if common.timeout < a.seconds + 30 {
        anyhow::bail!(
            "--timeout ({} s) must leave the soak's --seconds ({}) time to connect and catch up: \
             give --timeout {} or more",
            common.timeout,
            a.seconds,
            a.seconds + 120
        );
    }
    let n = a.clients.max(1);
    let channels = a.channels.clamp(1, n);
    let cfg = Arc::new(common.client_config(hub, "soak", channels));
    let run = Arc::new(Clients::new(n, true));
    let stop = Stop::new();
    let (mut tasks, all) = start_all(&cfg, &run, Backoff::client(), &stop, deadline).await;
    let mut stopped_early = (!all).then(|| "not every client subscribed".to_owned());
    tracing::info!(clients = n, seconds = a.seconds, "soaking");

    let pids = hub.pids.clone();
    let started = Instant::now();
    let end = (started + Duration::from_secs(a.seconds)).min(deadline);
    let every = Duration::from_secs(a.sample_every.max(1));
    let mut next_sample = started;
    let mut samples = Vec::new();
    let tick = Duration::from_millis(100);
    let per_tick = (a.rate as f64 / 10.0).max(0.0);
    let drop_per_tick = a.drops_per_minute as f64 / 600.0;
    let (mut owed, mut drops_owed) = (0.0f64, 0.0f64);
    let (mut published, mut publish_errors, mut drops) = (0u64, 0u64, 0u64);
    let mut heads = vec![0u64; channels];
    let mut pick = Random::new(n);
    let mut next_channel = 0usize;
    let mut ticker = tokio::time::interval(tick);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let now = Instant::now();
        if now >= next_sample {
            let stats = hub.stats().await.ok();
            let stat = |at: &str| stats.as_ref().and_then(|v| v.pointer(at)?.as_u64());
            let s = Sample {
                heap_in_use_kib: stat("/heap/in_use_bytes").map(|b| b / 1024),
                heap_held_kib: stat("/heap/held_bytes").map(|b| b / 1024),
                at_s: now.duration_since(started).as_secs_f64(),
                rss_kib: sys::rss_sum(&pids).map(|r| r.vm_rss_kib),
                fds: pids.first().copied().and_then(sys::fds_of),
                hub_connections: stat("/total_connections"),
                published,
                delivered: run
                    .seen
                    .iter()
                    .map(|s| s.last.load(Ordering::Relaxed))
                    .sum(),
            };
            tracing::info!(at_s = s.at_s as u64, rss_kib = ?s.rss_kib, fds = ?s.fds,
                heap_in_use_kib = ?s.heap_in_use_kib, heap_held_kib = ?s.heap_held_kib,
                hub_connections = ?s.hub_connections, published, "sample");
            samples.push(s);
            next_sample += every;
        }
        if now >= end {
            break;
        }
        ticker.tick().await;
        owed += per_tick;
        let batch_len = owed.floor() as usize;
        owed -= batch_len as f64;
        if batch_len > 0 {
            let mut batch = Vec::with_capacity(batch_len);
            let mut chans = Vec::with_capacity(batch_len);
            for _ in 0..batch_len {
                let k = next_channel % channels;
                next_channel += 1;
                chans.push(k);
                batch.push(json!({"channel": format!("soak:{k}"), "type": "tick",
                    "severity": a.severity, "data": {"k": k}}));
            }
            match hub.publish(&Value::Array(batch)).await {
                Ok(()) => {
                    published += batch_len as u64;
                    for k in chans {
                        heads[k] += 1;
                    }
                }
                Err(e) => {
                    publish_errors += 1;
                    tracing::warn!(error = %e, "publish failed");
                }
            }
        }
        drops_owed += drop_per_tick;
        while drops_owed >= 1.0 {
            drops_owed -= 1.0;
            if let Some(k) = run.kicks.get(pick.index(n)) {
                k.notify_one();
                drops += 1;
            }
        }
    }
    // Everyone catches up with the last publish.
    let complete = |run: &Clients| {
        run.seen
            .iter()
            .enumerate()
            .all(|(i, s)| s.last.load(Ordering::Acquire) >= heads[i % channels])
    };
    if !wait_until(
        (Instant::now() + Duration::from_secs(60)).min(deadline + Duration::from_secs(30)),
        || complete(&run),
    )
    .await
    {
        stopped_early.get_or_insert("not every client caught up with the last publish".into());
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.stop();
    while tasks.join_next().await.is_some() {}

    let after_warmup: Vec<&Sample> = samples
        .iter()
        .filter(|s| s.at_s >= a.warmup as f64)
        .collect();
    let points = |f: fn(&Sample) -> Option<u64>| -> Vec<(f64, f64)> {
        after_warmup
            .iter()
            .filter_map(|s| f(s).map(|v| (s.at_s / 60.0, v as f64)))
            .collect()
    };
    // The judged stretch.
    let minutes = a.seconds.saturating_sub(a.warmup).max(1) as f64 / 60.0;
    let (rss_slope, rss_growth) = trend(&points(|s| s.rss_kib), minutes);
    let (heap_slope, heap_growth) = trend(&points(|s| s.heap_in_use_kib), minutes);
    let fds_slope = slope(&points(|s| s.fds));
    // Flat: the fitted line grows less than 5 % of the mean over the run,
    // and descriptors by less than one per 100 clients.
    let flat = (after_warmup.len() >= 4).then(|| {
        rss_growth.is_some_and(|g| g < 0.05)
            && fds_slope.is_some_and(|s| s * minutes < (n as f64 / 100.0).max(1.0))
    });
    let report = SoakReport {
        clients: n,
        channels,
        seconds: a.seconds,
        rate: a.rate,
        drops_per_minute: a.drops_per_minute,
        rss_slope_kib_per_min: rss_slope,
        fds_slope_per_min: fds_slope,
        rss_growth_over_run: rss_growth,
        heap_in_use_slope_kib_per_min: heap_slope,
        heap_in_use_growth_over_run: heap_growth,
        flat,
        severity: a.severity.clone(),
        warmup_s: a.warmup,
        samples,
        published,
        publish_errors,
        drops,
        reconnects: run.sum(|s| &s.connects).saturating_sub(n as u64),
        complete_clients: run
            .seen
            .iter()
            .enumerate()
            .filter(|(i, s)| s.last.load(Ordering::Acquire) >= heads[i % channels])
            .count(),
        lost: run.sum(|s| &s.lost),
        repeated: run.sum(|s| &s.repeated),
        gaps: run.sum(|s| &s.gaps),
        failed_attempts: run.sum(|s| &s.failed_attempts),
        stopped_early,
    };
    let ok = report.stopped_early.is_none()
        && report.complete_clients == n
        && report.lost == 0
        && report.repeated == 0
        && report.gaps == 0
        && report.publish_errors == 0
        && report.flat != Some(false);
    let first = report.samples.first();
    let last = report.samples.last();
    let per_min = |v: Option<f64>| v.map_or("?".into(), |s| format!("{s:.1}"));
    let share = |v: Option<f64>| v.map_or("?".into(), |g| format!("{:.1} %", g * 100.0));
    let summary = format!(
        "soak: {n} clients on {channels} channels for {} s; {} {} events/s published ({} in all, \
         {} errors); {} clients dropped at random ({} reconnects)\n\
         hub RSS: {} -> {}, slope after {} s of warm-up {} KiB/min ({} of the mean over the \
         rest of the run; flat: {})\n\
         hub heap in use: {} -> {} (held: {} -> {}), slope {} KiB/min ({} of the mean)\n\
         hub descriptors: {} -> {}, slope {} per minute\n\
         clients: complete {}/{n}; lost {}, repeated {}, gaps {}; failed attempts {}\n{}",
        a.seconds,
        a.rate,
        a.severity,
        report.published,
        report.publish_errors,
        report.drops,
        report.reconnects,
        first.and_then(|s| s.rss_kib).map_or("?".into(), kib),
        last.and_then(|s| s.rss_kib).map_or("?".into(), kib),
        a.warmup,
        per_min(report.rss_slope_kib_per_min),
        share(report.rss_growth_over_run),
        match report.flat {
            Some(true) => "yes",
            Some(false) => "NO",
            None => "not judged: too few samples",
        },
        first
            .and_then(|s| s.heap_in_use_kib)
            .map_or("?".into(), kib),
        last.and_then(|s| s.heap_in_use_kib).map_or("?".into(), kib),
        first.and_then(|s| s.heap_held_kib).map_or("?".into(), kib),
        last.and_then(|s| s.heap_held_kib).map_or("?".into(), kib),
        per_min(report.heap_in_use_slope_kib_per_min),
        share(report.heap_in_use_growth_over_run),
        first
            .and_then(|s| s.fds)
            .map_or("?".into(), |f| f.to_string()),
        last.and_then(|s| s.fds)
            .map_or("?".into(), |f| f.to_string()),
        report
            .fds_slope_per_min
            .map_or("?".into(), |s| format!("{s:.2}")),
        report.complete_clients,
        report.lost,
        report.repeated,
        report.gaps,
        report.failed_attempts,
        report
            .stopped_early
            .as_deref()
            .map_or(String::new(), |s| format!("stopped early: {s}\n")),
    );
    Ok(Outcome::new(serde_json::to_value(&report)?, summary, ok))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slope_of_a_line_and_of_noise() {
        let line: Vec<(f64, f64)> = (0..10).map(|x| (x as f64, 3.0 * x as f64 + 7.0)).collect();
        assert!((slope(&line).unwrap() - 3.0).abs() < 1e-9);
        let flat: Vec<(f64, f64)> = (0..10)
            .map(|x| (x as f64, if x % 2 == 0 { 5.0 } else { 6.0 }))
            .collect();
        assert!(slope(&flat).unwrap().abs() < 0.2);
        assert_eq!(slope(&[(1.0, 1.0)]), None);
        assert_eq!(slope(&[(1.0, 1.0), (1.0, 2.0)]), None, "no spread in x");
    }
}
