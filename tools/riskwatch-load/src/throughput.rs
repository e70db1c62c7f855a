//! `throughput`: publish M messages to N subscribers (default 1,000) as
//! fast as the hub accepts them, in batches through `POST
//! /api/v1/publish` (or a reference hub's WebSocket: `publisher`), and
//! count what comes out. A window keeps the
//! publisher at most W messages ahead of the slowest subscriber: the hub
//! closes a subscriber whose queue (1,024 by default) overflows, so an
//! unbounded publisher measures the 1013 path, not delivery.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use clap::Args;
use serde::Serialize;
use tokio::time::Instant;

use crate::client;
use crate::common::Common;
use crate::counters::Shared;
use crate::publisher::Publisher;
use crate::report::Outcome;
use crate::sys::{CpuMeter, CpuUse, wall_ns};
use crate::target::Target;

#[derive(Debug, Clone, Args)]
pub struct ThroughputArgs {
    /// Subscribers, all on one channel.
    #[arg(long, default_value_t = 1_000)]
    pub subscribers: usize,
    /// Messages to publish.
    #[arg(long, default_value_t = 20_000)]
    pub messages: u64,
    /// Messages per POST.
    #[arg(long, default_value_t = 100)]
    pub batch: u64,
    /// Messages the publisher may be ahead of the slowest subscriber
    /// (0: no limit; the hub then drops whoever falls 1,024 behind).
    #[arg(long, default_value_t = 512)]
    pub window: u64,
    /// Seconds to wait after the last publish for deliveries.
    #[arg(long, default_value_t = 60)]
    pub drain: u64,
}

#[derive(Debug, Serialize)]
pub struct ThroughputReport {
    pub subscribers: usize,
    pub subscribed: u64,
    pub failed: u64,
    pub errors: BTreeMap<String, u64>,
    pub messages: u64,
    pub batch: u64,
    pub window: u64,
    pub published: u64,
    pub publish_errors: u64,
    /// From the first publish to the last accepted.
    pub publish_secs: f64,
    /// Messages per second accepted by the hub.
    pub publish_rate: f64,
    pub expected: u64,
    pub delivered: u64,
    /// From the first publish to the last delivery.
    pub deliver_secs: f64,
    /// Deliveries per second out of the hub (to all subscribers).
    pub delivery_rate: f64,
    /// Subscribers that received every message.
    pub complete_subscribers: usize,
    pub out_of_sequence: u64,
    /// CPU from the first publish to the end of the drain.
    pub cpu: CpuUse,
    pub closes: BTreeMap<u16, u64>,
    pub dropped: u64,
    pub hub_dropped_slow: Option<u64>,
}

pub async fn run(
    a: &ThroughputArgs,
    common: &Common,
    hub: &Target,
    deadline: Instant,
) -> anyhow::Result<Outcome> {
    anyhow::ensure!(
        a.batch >= 1 && a.messages >= 1,
        "--batch and --messages must be at least 1"
    );
    anyhow::ensure!(
        a.window == 0 || a.window >= a.batch,
        "--window must be 0 or at least --batch"
    );
    let channel = format!("load-throughput-{}", std::process::id());
    let cfg = Arc::new(common.client_config(hub, &channel, 1));
    let shared = Arc::new(Shared::new(a.subscribers, 0));
    let connected = common
        .connect_all(a.subscribers, &cfg, &shared, deadline)
        .await;
    let subscribed = shared.held.load(Ordering::Relaxed);
    anyhow::ensure!(
        subscribed > 0,
        "no subscriber connected: {:?}",
        shared.errors()
    );
    let publisher = Publisher::open(hub, &cfg, &channel).await?;
    tracing::info!(subscribed, "subscribers ready; publishing");

    let meter = CpuMeter::start(&hub.pids);
    let start_ns = wall_ns();
    let start = Instant::now();
    let (mut sent, mut published, mut publish_errors) = (0u64, 0u64, 0u64);
    'publish: while sent < a.messages {
        let n = a.batch.min(a.messages - sent);
        if a.window > 0 {
            // Only subscribers still open count: one the hub closed would
            // hold the window shut for ever.
            while sent + n > a.window + min_open_received(&shared) {
                if Instant::now() >= deadline {
                    break 'publish;
                }
                tokio::time::sleep(Duration::from_micros(500)).await;
            }
        }
        match publisher.probes(sent, n, wall_ns()).await {
            Ok(()) => published += n,
            Err(e) => {
                publish_errors += 1;
                tracing::warn!(error = %e, "publish failed");
                if publish_errors > 10 {
                    break;
                }
            }
        }
        sent += n;
        if Instant::now() >= deadline {
            break;
        }
    }
    let publish_secs = start.elapsed().as_secs_f64();
    let expected = subscribed * published;
    let drain_until = (Instant::now() + Duration::from_secs(a.drain)).min(deadline);
    client::wait_until(drain_until, || {
        shared.deliveries.load(Ordering::Relaxed) >= expected
            || shared.held.load(Ordering::Relaxed) == 0
    })
    .await;
    let cpu = meter.stop();
    let hub_dropped_slow = hub
        .stats()
        .await
        .ok()
        .and_then(|s| s.get("dropped_slow_consumers").and_then(|v| v.as_u64()));
    let delivered = shared.deliveries.load(Ordering::Relaxed);
    let deliver_secs = (shared
        .last_delivery_ns
        .load(Ordering::Relaxed)
        .saturating_sub(start_ns)) as f64
        / 1e9;
    let complete_subscribers = shared.clients_with(published);
    client::close_all(connected.tasks).await;
    let report = ThroughputReport {
        subscribers: a.subscribers,
        subscribed,
        failed: shared.failed.load(Ordering::Relaxed),
        errors: shared.errors(),
        messages: a.messages,
        batch: a.batch,
        window: a.window,
        published,
        publish_errors,
        publish_secs,
        publish_rate: published as f64 / publish_secs.max(1e-9),
        expected,
        delivered,
        deliver_secs,
        delivery_rate: delivered as f64 / deliver_secs.max(1e-9),
        complete_subscribers,
        out_of_sequence: shared.out_of_sequence.load(Ordering::Relaxed),
        cpu,
        closes: shared.closes(),
        dropped: shared.dropped.load(Ordering::Relaxed),
        hub_dropped_slow,
    };
    let ok = report.complete_subscribers == a.subscribers && report.published == a.messages;
    let summary = summary(&report);
    Ok(Outcome::new(serde_json::to_value(&report)?, summary, ok))
}

/// The fewest messages received by a subscriber that is still open; a
/// closed one has nothing more coming.
fn min_open_received(shared: &Shared) -> u64 {
    if shared.held.load(Ordering::Relaxed) == 0 {
        return u64::MAX / 2;
    }
    // A closed subscriber stops counting; it is reported, not waited for.
    let closed = shared.closes().values().sum::<u64>() + shared.dropped.load(Ordering::Relaxed);
    if closed == 0 {
        shared.min_received()
    } else {
        let mut counts: Vec<u64> = shared
            .received
            .iter()
            .map(|r| r.load(Ordering::Relaxed))
            .collect();
        counts.sort_unstable();
        counts.get(closed as usize).copied().unwrap_or(u64::MAX / 2)
    }
}

fn summary(r: &ThroughputReport) -> String {
    let mut s = String::new();
    s += &format!(
        "throughput: {} of {} subscribers on one channel, failed {}\n",
        r.subscribed, r.subscribers, r.failed
    );
    for (e, n) in &r.errors {
        s += &format!("  {n} × {e}\n");
    }
    s += &format!(
        "published {} of {} messages in batches of {} (window {}) in {:.2} s: {:.0} msgs/s in ({} errors)\n",
        r.published,
        r.messages,
        r.batch,
        if r.window == 0 {
            "none".to_string()
        } else {
            r.window.to_string()
        },
        r.publish_secs,
        r.publish_rate,
        r.publish_errors
    );
    s += &format!(
        "delivered {} of {} in {:.2} s: {:.0} deliveries/s out\n",
        r.delivered, r.expected, r.deliver_secs, r.delivery_rate
    );
    s += &format!(
        "subscribers with all {} messages: {} of {}; out of sequence {}\n",
        r.published, r.complete_subscribers, r.subscribed, r.out_of_sequence
    );
    s += &r.cpu.describe(Some((r.delivered, "delivery")));
    s += "\n";
    if !r.closes.is_empty() || r.dropped > 0 {
        s += &format!(
            "closed by the hub {:?} (1013 = too slow), dropped {}\n",
            r.closes, r.dropped
        );
    }
    if let Some(d) = r.hub_dropped_slow {
        s += &format!("hub: {d} events not queued to slow consumers\n");
    }
    s
}
