//! `storm`: N native-protocol clients on a hub that is restarted (killed
//! with SIGKILL by default, or stopped with SIGINT), all reconnecting at
//! once. Measures how long until every client is back and resubscribed
//! (p50 / p99 / max, from the moment the new hub process starts and
//! from the moment the old one went), and that nothing was lost or repeated: each client
//! resumes after the last sequence it received and checks that every
//! event after it arrives once, in order, across the restart.
//!
//! The clients reconnect as riskwatch's own client does
//! (`client/connection.rs`, `client/backoff.rs`): after a drop or a failed
//! attempt, a delay drawn uniformly from [0, min(cap, initial × factorⁿ)]
//! (full jitter), n counting attempts since the last connection that
//! stayed up a minute, so that ten thousand of them do not come back in
//! one instant. The hub runs with `--data-dir` (the
//! tool adds one), so its channels keep their epochs and history across
//! the restart.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use clap::{Args, ValueEnum};
use hdrhistogram::Histogram;
use serde::Serialize;
use serde_json::{Value, json};
use tokio::time::Instant;

use crate::client::wait_until;
use crate::common::Common;
use crate::report::{Outcome, kib};
use crate::resuming::{
    Backoff, CLIENT_BACKOFF_FACTOR, CLIENT_BACKOFF_MAX_MS, CLIENT_BACKOFF_MS, Clients, Stop,
    start_all,
};
use crate::sys::wall_ns;
use crate::target::Target;

/// The goal: every client back within this, at the 99th
/// percentile.
pub const TARGET_P99: Duration = Duration::from_secs(5);

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum How {
    /// SIGKILL: no close frames, nothing flushed on the way down.
    Kill,
    /// SIGINT: every connection closed with 1001, history flushed.
    Stop,
}

#[derive(Debug, Clone, Args)]
pub struct StormArgs {
    /// Clients, each subscribed to one channel.
    #[arg(long, default_value_t = 10_000)]
    pub clients: usize,
    /// Spread over this many channels (`storm:0` … `storm:K-1`).
    #[arg(long, default_value_t = 100)]
    pub channels: usize,
    /// Events published on each channel before the restart, and again as
    /// soon as the hub is back (while its clients reconnect).
    #[arg(long, default_value_t = 5)]
    pub events: u64,
    /// How the hub goes down.
    #[arg(long, value_enum, default_value_t = How::Kill)]
    pub how: How,
    /// Milliseconds between the hub going and starting again.
    #[arg(long, default_value_t = 1_000)]
    pub down_ms: u64,
    /// The clients' first backoff ceiling, in milliseconds (riskwatch's
    /// client: 500).
    #[arg(long, default_value_t = CLIENT_BACKOFF_MS)]
    pub backoff_ms: u64,
    /// The clients' backoff growth per attempt (riskwatch's client: 1.5).
    #[arg(long, default_value_t = CLIENT_BACKOFF_FACTOR)]
    pub backoff_factor: f64,
    /// The clients' backoff cap, in milliseconds (riskwatch's client:
    /// 30,000).
    #[arg(long, default_value_t = CLIENT_BACKOFF_MAX_MS)]
    pub backoff_max_ms: u64,
}

#[derive(Debug, Serialize)]
pub struct StormReport {
    pub clients: usize,
    pub channels: usize,
    pub how: How,
    pub down_ms: u64,
    pub backoff_ms: u64,
    pub backoff_factor: f64,
    pub backoff_max_ms: u64,
    /// Subscribed before the restart.
    pub subscribed_before: usize,
    /// Back and resubscribed after it.
    pub back: usize,
    /// From the new hub process starting to each client's
    /// resubscription.
    pub back_after_start_ms: Percentiles,
    /// From the hub going to each client's resubscription.
    pub back_after_down_ms: Percentiles,
    /// From SIGKILL/SIGINT to the new process answering /healthz (under
    /// the storm of reconnects).
    pub hub_restart_ms: u64,
    /// Events each client should have received, and how many did.
    pub expected_per_client: u64,
    pub complete_clients: usize,
    pub lost: u64,
    pub repeated: u64,
    pub gaps: u64,
    /// Connection attempts that failed (refused while the hub was down,
    /// timeouts), all clients together.
    pub failed_attempts: u64,
    pub hub_rss_after_kib: Option<u64>,
    pub stopped_early: Option<String>,
}

#[derive(Debug, Default, Serialize)]
pub struct Percentiles {
    pub p50: u64,
    pub p99: u64,
    pub max: u64,
}

impl Percentiles {
    fn of(values: &[u64]) -> Percentiles {
        let mut h = Histogram::<u64>::new_with_bounds(1, 3_600_000, 3).expect("histogram bounds");
        for v in values {
            h.saturating_record((*v).max(1));
        }
        if values.is_empty() {
            return Percentiles::default();
        }
        Percentiles {
            p50: h.value_at_quantile(0.5),
            p99: h.value_at_quantile(0.99),
            max: h.max(),
        }
    }
}

/// Publishes `events` on every channel, numbered after `from`.
async fn publish_round(hub: &Target, channels: usize, events: u64) -> anyhow::Result<()> {
    for _ in 0..events {
        let batch: Vec<Value> = (0..channels)
            .map(|k| json!({"channel": format!("storm:{k}"), "type": "tick", "severity": "critical", "data": {"k": k}}))
            .collect();
        hub.publish(&Value::Array(batch)).await?;
    }
    Ok(())
}

pub async fn run(
    a: &StormArgs,
    common: &Common,
    hub: &mut Target,
    deadline: Instant,
) -> anyhow::Result<Outcome> {
    let n = a.clients.max(1);
    let channels = a.channels.clamp(1, n);
    let cfg = Arc::new(common.client_config(hub, "storm", channels));
    let run = Arc::new(Clients::new(n, false));
    let stop = Stop::new();
    let backoff = Backoff {
        initial: Duration::from_millis(a.backoff_ms.max(1)),
        factor: a.backoff_factor,
        max: Duration::from_millis(a.backoff_max_ms.max(a.backoff_ms).max(1)),
    };
    // The connect phase is not what is measured.
    let (mut tasks, all) = start_all(&cfg, &run, backoff, &stop, deadline).await;
    let mut stopped_early =
        (!all).then(|| "not every client subscribed before the restart".to_owned());
    let subscribed_before = run
        .seen
        .iter()
        .filter(|s| s.connects.load(Ordering::Relaxed) > 0)
        .count();
    tracing::info!(
        subscribed_before,
        "clients subscribed; publishing the first round"
    );
    publish_round(hub, channels, a.events).await?;
    let first = a.events;
    if !wait_until(deadline, || {
        run.seen
            .iter()
            .all(|s| s.last.load(Ordering::Acquire) >= first)
    })
    .await
    {
        stopped_early.get_or_insert("the first round did not reach every client".to_owned());
    }

    tracing::info!(how = ?a.how, "restarting the hub");
    let went = wall_ns();
    run.went_ns.store(went, Ordering::Release);
    let went_at = Instant::now();
    let started = hub
        .restart(a.how == How::Kill, Duration::from_millis(a.down_ms))
        .await?;
    let hub_restart_ms = went_at.elapsed().as_millis() as u64;
    tracing::info!(hub_restart_ms, "hub back; publishing the second round");
    publish_round(hub, channels, a.events).await?;
    let expected = 2 * a.events;
    let done = |run: &Clients| {
        run.seen.iter().all(|s| {
            s.back_ns.load(Ordering::Acquire) != 0 && s.last.load(Ordering::Acquire) >= expected
        })
    };
    if !wait_until(deadline, || done(&run)).await {
        stopped_early.get_or_insert("not every client was back with everything".to_owned());
    }
    // Anything late (a repeat) shows within a moment.
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.stop();
    while tasks.join_next().await.is_some() {}

    let backs: Vec<u64> = run
        .seen
        .iter()
        .map(|s| s.back_ns.load(Ordering::Acquire))
        .filter(|b| *b != 0)
        .collect();
    let ms = |from: u64| -> Vec<u64> {
        backs
            .iter()
            .map(|b| b.saturating_sub(from) / 1_000_000)
            .collect()
    };

    let report = StormReport {
        clients: n,
        channels,
        how: a.how,
        down_ms: a.down_ms,
        backoff_ms: backoff.initial.as_millis() as u64,
        backoff_factor: backoff.factor,
        backoff_max_ms: backoff.max.as_millis() as u64,
        subscribed_before,
        back: backs.len(),
        back_after_start_ms: Percentiles::of(&ms(started)),
        back_after_down_ms: Percentiles::of(&ms(went)),
        hub_restart_ms,
        expected_per_client: expected,
        complete_clients: run
            .seen
            .iter()
            .filter(|s| s.last.load(Ordering::Acquire) >= expected)
            .count(),
        lost: run.sum(|s| &s.lost),
        repeated: run.sum(|s| &s.repeated),
        gaps: run.sum(|s| &s.gaps),
        failed_attempts: run.sum(|s| &s.failed_attempts),
        hub_rss_after_kib: hub.rss().map(|r| r.vm_rss_kib),
        stopped_early,
    };
    let p99_ok = Duration::from_millis(report.back_after_start_ms.p99) < TARGET_P99;
    let ok = report.stopped_early.is_none()
        && report.back == n
        && report.complete_clients == n
        && report.lost == 0
        && report.repeated == 0
        && report.gaps == 0
        && p99_ok;
    let summary = format!(
        "storm: {n} clients on {channels} channels; hub {} and back after {} ms ({} ms down)\n\
         back and resubscribed: {}/{n}; after the new hub started: p50 {} ms, p99 {} ms, max {} ms \
         (target p99 < {} ms: {}); after it went: p50 {} ms, p99 {} ms, max {} ms\n\
         events: {expected} per client; complete {}/{n}; lost {}, repeated {}, gaps {}; \
         failed attempts while down {}\nhub RSS after: {}\n{}",
        match a.how {
            How::Kill => "killed (SIGKILL)",
            How::Stop => "stopped (SIGINT)",
        },
        report.hub_restart_ms,
        a.down_ms,
        report.back,
        report.back_after_start_ms.p50,
        report.back_after_start_ms.p99,
        report.back_after_start_ms.max,
        TARGET_P99.as_millis(),
        if p99_ok { "met" } else { "MISSED" },
        report.back_after_down_ms.p50,
        report.back_after_down_ms.p99,
        report.back_after_down_ms.max,
        report.complete_clients,
        report.lost,
        report.repeated,
        report.gaps,
        report.failed_attempts,
        report.hub_rss_after_kib.map_or("unknown".into(), kib),
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
    fn percentiles_of_back_times() {
        let p = Percentiles::of(&(1..=100).collect::<Vec<_>>());
        assert_eq!((p.p50, p.max), (50, 100));
        assert!((99..=100).contains(&p.p99));
        assert_eq!(Percentiles::of(&[]).max, 0);
    }
}
