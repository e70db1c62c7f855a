//! `connections`: hold N idle native-protocol connections, each subscribed
//! to one of K channels, and measure what they cost the hub in resident
//! memory.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use clap::Args;
use serde::Serialize;
use tokio::time::Instant;

use crate::cli::{Common, Outcome, kib};
use crate::client::{self, Shared};
use crate::sys::{self, CpuMeter, CpuUse, Rss};
use crate::target::Target;

/// The target for one idle connection.
pub const TARGET_RSS_PER_CONN: f64 = 16.0 * 1024.0;

#[derive(Debug, Clone, Args)]
pub struct ConnectionsArgs {
    /// Connections to open and hold.
    #[arg(long, default_value_t = 50_000)]
    pub target: usize,
    /// Spread subscriptions over this many channels (`load:0` … `load:K-1`).
    #[arg(long, default_value_t = 100)]
    pub channels: usize,
    /// Seconds to hold every connection before the final reading (past 30
    /// includes one round of the hub's pings).
    #[arg(long, default_value_t = 10)]
    pub hold: u64,
}

#[derive(Debug, Serialize)]
pub struct ConnectionsReport {
    pub target: usize,
    pub channels: usize,
    /// Open and subscribed at the final reading.
    pub held: u64,
    pub peak: u64,
    pub failed: u64,
    pub errors: BTreeMap<String, u64>,
    pub stopped_early: Option<String>,
    /// Until every connect attempt finished.
    pub connect_secs: f64,
    /// Subscribed connections per second, first connect to last success.
    pub connect_rate: f64,
    /// CPU over the connect phase.
    pub cpu: CpuUse,
    pub hold_secs: u64,
    /// What the hub's stats say it holds.
    pub hub_connections: Option<u64>,
    pub hub_rss_before: Option<Rss>,
    pub hub_rss_after: Option<Rss>,
    /// (VmRSS after − before) / held.
    pub hub_rss_per_conn_bytes: Option<f64>,
    /// (RssAnon after − before) / held.
    pub hub_anon_per_conn_bytes: Option<f64>,
    pub tool_rss_before: Option<Rss>,
    pub tool_rss_after: Option<Rss>,
    pub tool_rss_per_conn_bytes: Option<f64>,
    /// Close frames the hub sent during the hold, by code.
    pub closes: BTreeMap<u16, u64>,
    /// Connections lost without a close frame.
    pub dropped: u64,
    pub target_connections_met: bool,
    /// At most 16 KiB hub RSS per idle connection.
    pub target_rss_met: Option<bool>,
}

fn per_conn(before: Option<Rss>, after: Option<Rss>, held: u64, f: fn(&Rss) -> u64) -> Option<f64> {
    let (b, a) = (before?, after?);
    (held > 0).then(|| (f(&a) as f64 - f(&b) as f64) * 1024.0 / held as f64)
}

pub async fn run(
    a: &ConnectionsArgs,
    common: &Common,
    hub: &Target,
    deadline: Instant,
) -> anyhow::Result<Outcome> {
    let me = std::process::id();
    // Let the freshly started hub settle before the baseline.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let hub_rss_before = hub.rss();
    let tool_rss_before = sys::rss(me).ok();
    let cfg = Arc::new(common.client_config(hub, "load", a.channels.max(1)));
    let shared = Arc::new(Shared::new(a.target, 0));
    let meter = CpuMeter::start(hub.pid);
    let connected = client::connect_all(
        a.target,
        Arc::clone(&cfg),
        Arc::clone(&shared),
        common.concurrency,
        common.max_errors,
        deadline,
    )
    .await;
    let cpu = meter.stop();
    let opened = shared.opened.load(Ordering::Relaxed);
    tracing::info!(
        opened,
        failed = shared.failed.load(Ordering::Relaxed),
        "connect phase done; holding"
    );
    let hold_until = (Instant::now() + Duration::from_secs(a.hold)).min(deadline);
    tokio::time::sleep_until(hold_until).await;
    let hub_rss_after = hub.rss();
    let tool_rss_after = sys::rss(me).ok();
    let held = shared.held.load(Ordering::Relaxed);
    let hub_connections = match hub.stats().await {
        Ok(s) => s.get("total_connections").and_then(|v| v.as_u64()),
        Err(e) => {
            tracing::warn!(error = %e, "could not read the hub's stats");
            None
        }
    };
    client::close_all(connected.tasks).await;
    let hub_rss_per_conn_bytes = per_conn(hub_rss_before, hub_rss_after, held, |r| r.vm_rss_kib);
    let report = ConnectionsReport {
        target: a.target,
        channels: a.channels,
        held,
        peak: shared.peak.load(Ordering::Relaxed),
        failed: shared.failed.load(Ordering::Relaxed),
        errors: shared.errors(),
        stopped_early: connected.stopped_early,
        connect_secs: connected.elapsed.as_secs_f64(),
        connect_rate: opened as f64 / connected.open_secs.max(1e-9),
        cpu,
        hold_secs: a.hold,
        hub_connections,
        hub_rss_before,
        hub_rss_after,
        hub_rss_per_conn_bytes,
        hub_anon_per_conn_bytes: per_conn(hub_rss_before, hub_rss_after, held, |r| r.rss_anon_kib),
        tool_rss_before,
        tool_rss_after,
        tool_rss_per_conn_bytes: per_conn(tool_rss_before, tool_rss_after, held, |r| r.vm_rss_kib),
        closes: shared.closes(),
        dropped: shared.dropped.load(Ordering::Relaxed),
        target_connections_met: held as usize >= a.target,
        target_rss_met: hub_rss_per_conn_bytes.map(|b| b <= TARGET_RSS_PER_CONN),
    };
    let summary = summary(&report);
    Ok(Outcome::new(
        serde_json::to_value(&report)?,
        summary,
        report.target_connections_met,
    ))
}

fn summary(r: &ConnectionsReport) -> String {
    let mut s = String::new();
    let opt = |v: Option<f64>| {
        v.map_or("n/a".into(), |b| {
            format!("{:.0} B ({:.2} KiB)", b, b / 1024.0)
        })
    };
    s += &format!(
        "connections: held {} of {} (peak {}), failed {}\n",
        r.held, r.target, r.peak, r.failed
    );
    for (e, n) in &r.errors {
        s += &format!("  {n} × {e}\n");
    }
    if let Some(why) = &r.stopped_early {
        s += &format!("  stopped early: {why}\n");
    }
    s += &format!(
        "connect phase: {:.1} s, {:.0} connections/s; held for {} s after it\n",
        r.connect_secs, r.connect_rate, r.hold_secs
    );
    s += &r.cpu.describe(Some((r.peak, "connection")));
    s += " (connect phase)\n";
    if let Some(n) = r.hub_connections {
        s += &format!("hub stats: {n} connections\n");
    }
    s += &format!(
        "hub RSS: {} -> {} ; per idle connection {} (anonymous memory: {})\n",
        r.hub_rss_before.map_or("n/a".into(), |x| kib(x.vm_rss_kib)),
        r.hub_rss_after.map_or("n/a".into(), |x| kib(x.vm_rss_kib)),
        opt(r.hub_rss_per_conn_bytes),
        opt(r.hub_anon_per_conn_bytes),
    );
    s += &format!(
        "tool RSS: {} -> {} ; per connection {}\n",
        r.tool_rss_before
            .map_or("n/a".into(), |x| kib(x.vm_rss_kib)),
        r.tool_rss_after.map_or("n/a".into(), |x| kib(x.vm_rss_kib)),
        opt(r.tool_rss_per_conn_bytes),
    );
    if !r.closes.is_empty() || r.dropped > 0 {
        s += &format!(
            "during the hold: closes {:?}, dropped {}\n",
            r.closes, r.dropped
        );
    }
    s += &format!(
        "target {} connections: {}\n",
        r.target,
        if r.target_connections_met {
            "MET"
        } else {
            "NOT MET"
        }
    );
    s += &format!(
        "target <= 16 KiB hub RSS per idle connection: {}\n",
        match r.target_rss_met {
            Some(true) => "MET",
            Some(false) => "NOT MET",
            None => "unknown (no hub pid)",
        }
    );
    s
}
