//! `connections`: hold N idle native-protocol connections, each subscribed
//! to one of K channels, and measure what they cost the hub in resident
//! memory.
//!
//! One process can hold no more sockets than its open-file limit, and the
//! hard limit cannot be raised without CAP_SYS_RESOURCE. `--procs P` runs
//! the clients in P worker processes (this binary again, `--worker`), each
//! holding its share from its own source-address range; `--hubs K` (a
//! global option) starts K hub processes on one port with SO_REUSEPORT.
//! The parent sums what the workers report and reads every hub's memory.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use serde::{Deserialize, Serialize};
use tokio::time::Instant;

use crate::client;
use crate::common::Common;
use crate::counters::Shared;
use crate::report::{Outcome, kib};
use crate::sys::{self, Cpu, CpuMeter, CpuUse, Rss};
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
    /// Client processes holding the connections (this binary again, each
    /// with target/P connections and its own --source-ips addresses), so
    /// that together they hold more than one process's open-file limit.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=MAX_PROCS as i64))]
    pub procs: u16,
    /// Internal: run as one of --procs' workers (talks to the parent on
    /// stdin/stdout).
    #[arg(long, hide = true)]
    pub worker: bool,
    /// Internal: a worker's first source address number.
    #[arg(long, hide = true, default_value_t = 0)]
    pub source_first: u32,
}

/// The most worker processes one run starts.
pub const MAX_PROCS: usize = 32;

#[derive(Debug, Serialize)]
pub struct ConnectionsReport {
    pub target: usize,
    pub channels: usize,
    /// Hub processes measured (their memory and CPU summed).
    pub hubs: usize,
    /// Client processes (1: this one).
    pub procs: usize,
    /// Connections each hub process holds at the final reading: its open
    /// sockets then minus before connecting (from /proc/<pid>/fd).
    pub per_hub_connections: Vec<i64>,
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
    /// What the hub's stats say it holds (one hub only: with several on
    /// one port the request reaches any of them).
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
    if a.worker {
        return worker(a, common, hub, deadline).await;
    }
    if a.procs > 1 {
        return with_workers(a, common, hub, deadline).await;
    }
    let me = std::process::id();
    // Let the freshly started hub settle before the baseline.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let hub_rss_before = hub.rss();
    let sockets_before = hub_sockets(hub);
    let tool_rss_before = sys::rss(me).ok();
    let cfg = Arc::new(common.client_config(hub, "load", a.channels.max(1)));
    let shared = Arc::new(Shared::new(a.target, 0));
    let meter = CpuMeter::start(&hub.pids);
    let connected = common.connect_all(a.target, &cfg, &shared, deadline).await;
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
    let per_hub_connections = per_hub(&sockets_before, &hub_sockets(hub));
    let tool_rss_after = sys::rss(me).ok();
    let held = shared.held.load(Ordering::Relaxed);
    let hub_connections = hub_stats(hub).await;
    client::close_all(connected.tasks).await;
    let report = report(
        a,
        hub,
        Totals {
            held,
            peak: shared.peak.load(Ordering::Relaxed),
            failed: shared.failed.load(Ordering::Relaxed),
            errors: shared.errors(),
            stopped_early: connected.stopped_early,
            connect_secs: connected.elapsed.as_secs_f64(),
            open_secs: connected.open_secs,
            opened,
            cpu,
            tool_rss_before,
            tool_rss_after,
            closes: shared.closes(),
            dropped: shared.dropped.load(Ordering::Relaxed),
        },
        hub_rss_before,
        hub_rss_after,
        hub_connections,
        per_hub_connections,
    );
    finish(report)
}

/// What the clients of a run add up to (one process's, or the workers'
/// summed).
struct Totals {
    held: u64,
    peak: u64,
    failed: u64,
    errors: BTreeMap<String, u64>,
    stopped_early: Option<String>,
    connect_secs: f64,
    open_secs: f64,
    opened: u64,
    cpu: CpuUse,
    tool_rss_before: Option<Rss>,
    tool_rss_after: Option<Rss>,
    closes: BTreeMap<u16, u64>,
    dropped: u64,
}

fn report(
    a: &ConnectionsArgs,
    hub: &Target,
    t: Totals,
    hub_rss_before: Option<Rss>,
    hub_rss_after: Option<Rss>,
    hub_connections: Option<u64>,
    per_hub_connections: Vec<i64>,
) -> ConnectionsReport {
    let held = t.held;
    let hub_rss_per_conn_bytes = per_conn(hub_rss_before, hub_rss_after, held, |r| r.vm_rss_kib);
    ConnectionsReport {
        target: a.target,
        channels: a.channels,
        hubs: hub.pids.len(),
        procs: usize::from(a.procs),
        per_hub_connections,
        held,
        peak: t.peak,
        failed: t.failed,
        errors: t.errors,
        stopped_early: t.stopped_early,
        connect_secs: t.connect_secs,
        connect_rate: t.opened as f64 / t.open_secs.max(1e-9),
        cpu: t.cpu,
        hold_secs: a.hold,
        hub_connections,
        hub_rss_before,
        hub_rss_after,
        hub_rss_per_conn_bytes,
        hub_anon_per_conn_bytes: per_conn(hub_rss_before, hub_rss_after, held, |r| r.rss_anon_kib),
        tool_rss_before: t.tool_rss_before,
        tool_rss_after: t.tool_rss_after,
        tool_rss_per_conn_bytes: per_conn(t.tool_rss_before, t.tool_rss_after, held, |r| {
            r.vm_rss_kib
        }),
        closes: t.closes,
        dropped: t.dropped,
        target_connections_met: held as usize >= a.target,
        target_rss_met: hub_rss_per_conn_bytes.map(|b| b <= TARGET_RSS_PER_CONN),
    }
}

fn finish(report: ConnectionsReport) -> anyhow::Result<Outcome> {
    let summary = summary(&report);
    Ok(Outcome::new(
        serde_json::to_value(&report)?,
        summary,
        report.target_connections_met,
    ))
}

/// Open sockets of every hub process.
fn hub_sockets(hub: &Target) -> Vec<Option<u64>> {
    hub.pids.iter().map(|&p| sys::sockets_of(p)).collect()
}

fn per_hub(before: &[Option<u64>], after: &[Option<u64>]) -> Vec<i64> {
    before
        .iter()
        .zip(after)
        .filter_map(|(b, a)| Some(a.as_ref()? - b.as_ref()?))
        .map(|d| d as i64)
        .collect()
}

/// The hub's own count, when there is one hub to ask.
async fn hub_stats(hub: &Target) -> Option<u64> {
    if hub.pids.len() > 1 {
        return None;
    }
    match hub.stats().await {
        Ok(s) => s.get("total_connections").and_then(|v| v.as_u64()),
        Err(e) => {
            tracing::warn!(error = %e, "could not read the hub's stats");
            None
        }
    }
}

/// A worker's messages to its parent, one JSON line each on stdout.
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "worker", rename_all = "snake_case")]
enum WorkerMsg {
    /// The connect phase is over; the connections are held until the
    /// parent writes a line on stdin (or closes it).
    Connected {
        opened: u64,
        failed: u64,
        stopped_early: Option<String>,
        connect_secs: f64,
        open_secs: f64,
        tool_cpu: Cpu,
        tool_rss_before: Option<Rss>,
    },
    /// The final reading, taken when the parent asked.
    Held {
        held: u64,
        peak: u64,
        failed: u64,
        errors: BTreeMap<String, u64>,
        closes: BTreeMap<u16, u64>,
        dropped: u64,
        tool_rss_after: Option<Rss>,
    },
}

fn say(msg: &WorkerMsg) -> anyhow::Result<()> {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    writeln!(out, "{}", serde_json::to_string(msg)?)?;
    out.flush()?;
    Ok(())
}

/// One worker: connect its share, report, hold until the parent's line
/// (or EOF: the parent is gone) or the deadline, report again, close.
async fn worker(
    a: &ConnectionsArgs,
    common: &Common,
    hub: &Target,
    deadline: Instant,
) -> anyhow::Result<Outcome> {
    if common.url.is_none() {
        anyhow::bail!("--worker needs --url (it is started by --procs)");
    }
    let me = std::process::id();
    let tool_rss_before = sys::rss(me).ok();
    let cfg = Arc::new(common.client_config_from(hub, "load", a.channels.max(1), a.source_first));
    let shared = Arc::new(Shared::new(a.target, 0));
    let meter = CpuMeter::start(&[]);
    let connected = common.connect_all(a.target, &cfg, &shared, deadline).await;
    say(&WorkerMsg::Connected {
        opened: shared.opened.load(Ordering::Relaxed),
        failed: shared.failed.load(Ordering::Relaxed),
        stopped_early: connected.stopped_early.clone(),
        connect_secs: connected.elapsed.as_secs_f64(),
        open_secs: connected.open_secs,
        tool_cpu: meter.stop().tool,
        tool_rss_before,
    })?;
    // stdin is read on a thread of its own (tokio's stdin is one too).
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    std::thread::spawn(move || {
        let mut line = String::new();
        let _ = std::io::stdin().read_line(&mut line);
        let _ = tx.send(());
    });
    let _ = tokio::time::timeout_at(deadline, rx).await;
    say(&WorkerMsg::Held {
        held: shared.held.load(Ordering::Relaxed),
        peak: shared.peak.load(Ordering::Relaxed),
        failed: shared.failed.load(Ordering::Relaxed),
        errors: shared.errors(),
        closes: shared.closes(),
        dropped: shared.dropped.load(Ordering::Relaxed),
        tool_rss_after: sys::rss(me).ok(),
    })?;
    client::close_all(connected.tasks).await;
    Ok(Outcome::worker(true))
}

/// A started worker process, killed (and reaped) if still running when
/// dropped: on error, on Ctrl-C, at the end.
struct Worker {
    child: std::process::Child,
    stdin: Option<std::process::ChildStdin>,
}

impl Drop for Worker {
    fn drop(&mut self) {
        self.stdin.take();
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// The parent of `--procs` workers: starts them against the hub(s), waits
/// for every one to connect, holds, reads the hubs, asks every worker for
/// its final reading, and sums.
async fn with_workers(
    a: &ConnectionsArgs,
    common: &Common,
    hub: &Target,
    deadline: Instant,
) -> anyhow::Result<Outcome> {
    use std::io::{BufRead, Write};
    use std::process::{Command, Stdio};

    let procs = usize::from(a.procs);
    let share = a.target.div_ceil(procs);
    let hard = sys::raise_nofile(0)?.hard;
    if share as u64 + sys::FD_MARGIN > hard {
        anyhow::bail!(
            "{share} connections per worker exceed the open-file limit ({hard}): use more --procs"
        );
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let hub_rss_before = hub.rss();
    let sockets_before = hub_sockets(hub);
    let exe = std::env::current_exe()?;
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<(usize, Option<String>)>();
    let mut workers = Vec::with_capacity(procs);
    let meter = CpuMeter::start(&hub.pids);
    let started = Instant::now();
    let mut remaining = a.target;
    for w in 0..procs {
        let n = share.min(remaining);
        remaining -= n;
        let secs_left = deadline
            .saturating_duration_since(Instant::now())
            .as_secs()
            .max(1);
        let mut cmd = Command::new(&exe);
        cmd.args([
            "--url".to_string(),
            hub.ws_url(),
            "--hub-kind".into(),
            hub.kind.to_string(),
            "--concurrency".into(),
            (common.concurrency / procs).max(1).to_string(),
            "--source-ips".into(),
            common.source_ips.to_string(),
            "--connect-timeout".into(),
            common.connect_timeout.to_string(),
            "--max-errors".into(),
            common.max_errors.to_string(),
            "--timeout".into(),
            secs_left.to_string(),
        ]);
        if let Some(t) = common.threads {
            cmd.args(["--threads".to_string(), t.to_string()]);
        }
        cmd.args([
            "connections".to_string(),
            "--worker".into(),
            "--target".into(),
            n.to_string(),
            "--channels".into(),
            a.channels.to_string(),
            "--hold".into(),
            "0".into(),
            "--source-first".into(),
            (w as u32 * common.source_ips).to_string(),
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
        crate::target::die_with_parent(&mut cmd);
        let mut child = cmd.spawn().context("starting a worker")?;
        let stdout = child.stdout.take().context("a worker's stdout")?;
        let stdin = child.stdin.take();
        workers.push(Worker { child, stdin });
        let tx = tx.clone();
        std::thread::spawn(move || {
            // Ends at the worker's EOF (it exited or was killed).
            for line in std::io::BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send((w, Some(line))).is_err() {
                    return;
                }
            }
            let _ = tx.send((w, None));
        });
    }
    drop(tx);
    tracing::info!(procs, share, "workers started");

    let mut connected: Vec<Option<WorkerMsg>> = (0..procs).map(|_| None).collect();
    let mut held: Vec<Option<WorkerMsg>> = (0..procs).map(|_| None).collect();
    let mut gone = vec![false; procs];
    // Phase 1: every worker connected (or gone), bounded by the deadline.
    let mut connect_wall = 0.0;
    while connected.iter().zip(&gone).any(|(c, g)| c.is_none() && !g) {
        match tokio::time::timeout_at(deadline, rx.recv()).await {
            Ok(Some((w, Some(line)))) => match serde_json::from_str::<WorkerMsg>(&line) {
                Ok(m @ WorkerMsg::Connected { .. }) => {
                    connected[w] = Some(m);
                    connect_wall = started.elapsed().as_secs_f64();
                }
                Ok(m @ WorkerMsg::Held { .. }) => held[w] = Some(m),
                Err(_) => {}
            },
            Ok(Some((w, None))) => gone[w] = true,
            Ok(None) | Err(_) => break,
        }
    }
    let hub_cpu = meter.stop().hub;
    let lost = gone.iter().filter(|g| **g).count();
    if connected.iter().all(Option::is_none) {
        anyhow::bail!("no worker process reported its connections ({lost} exited)");
    }
    if lost > 0 {
        tracing::warn!(lost, "workers exited before reporting");
    }
    tracing::info!("every worker connected; holding");
    let hold_until = (Instant::now() + Duration::from_secs(a.hold)).min(deadline);
    tokio::time::sleep_until(hold_until).await;
    let hub_rss_after = hub.rss();
    let per_hub_connections = per_hub(&sockets_before, &hub_sockets(hub));
    // Phase 2: ask for the final readings.
    for wk in &mut workers {
        if let Some(stdin) = wk.stdin.as_mut() {
            let _ = stdin.write_all(b"report\n").and_then(|()| stdin.flush());
        }
    }
    let report_by =
        (Instant::now() + Duration::from_secs(30)).min(deadline + Duration::from_secs(30));
    while held.iter().zip(&gone).any(|(h, g)| h.is_none() && !g) {
        match tokio::time::timeout_at(report_by, rx.recv()).await {
            Ok(Some((w, Some(line)))) => {
                if let Ok(m @ WorkerMsg::Held { .. }) = serde_json::from_str::<WorkerMsg>(&line) {
                    held[w] = Some(m);
                }
            }
            Ok(Some((w, None))) => gone[w] = true,
            Ok(None) | Err(_) => break,
        }
    }
    // Let the workers close their connections and exit (bounded), then
    // the guards kill any left.
    let exit_by = std::time::Instant::now() + Duration::from_secs(40);
    for wk in &mut workers {
        wk.stdin.take();
        while matches!(wk.child.try_wait(), Ok(None)) && std::time::Instant::now() < exit_by {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    drop(workers);

    let mut t = Totals {
        held: 0,
        peak: 0,
        failed: 0,
        errors: BTreeMap::new(),
        stopped_early: None,
        connect_secs: connect_wall,
        open_secs: 0.0,
        opened: 0,
        cpu: CpuUse {
            hub: hub_cpu,
            tool: Cpu::default(),
        },
        tool_rss_before: Some(Rss::default()),
        tool_rss_after: Some(Rss::default()),
        closes: BTreeMap::new(),
        dropped: 0,
    };
    let add = |sum: &mut Option<Rss>, r: Option<Rss>| {
        *sum = match (*sum, r) {
            (Some(s), Some(r)) => Some(Rss {
                vm_rss_kib: s.vm_rss_kib + r.vm_rss_kib,
                rss_anon_kib: s.rss_anon_kib + r.rss_anon_kib,
            }),
            _ => None,
        }
    };
    let mut early = Vec::new();
    for (w, m) in connected.into_iter().enumerate() {
        match m {
            Some(WorkerMsg::Connected {
                opened,
                stopped_early,
                open_secs,
                tool_cpu,
                tool_rss_before,
                ..
            }) => {
                t.opened += opened;
                t.open_secs = t.open_secs.max(open_secs);
                t.cpu.tool.user_s += tool_cpu.user_s;
                t.cpu.tool.system_s += tool_cpu.system_s;
                add(&mut t.tool_rss_before, tool_rss_before);
                if let Some(why) = stopped_early {
                    early.push(format!("worker {w}: {why}"));
                }
            }
            _ => {
                early.push(format!("worker {w}: no connect report"));
                t.tool_rss_before = None;
            }
        }
    }
    for (w, m) in held.into_iter().enumerate() {
        match m {
            Some(WorkerMsg::Held {
                held,
                peak,
                failed,
                errors,
                closes,
                dropped,
                tool_rss_after,
            }) => {
                t.held += held;
                t.peak += peak;
                t.failed += failed;
                t.dropped += dropped;
                for (e, n) in errors {
                    *t.errors.entry(e).or_default() += n;
                }
                for (c, n) in closes {
                    *t.closes.entry(c).or_default() += n;
                }
                add(&mut t.tool_rss_after, tool_rss_after);
            }
            _ => {
                early.push(format!("worker {w}: no final report"));
                t.tool_rss_after = None;
            }
        }
    }
    if !early.is_empty() {
        t.stopped_early = Some(early.join("; "));
    }
    let report = report(
        a,
        hub,
        t,
        hub_rss_before,
        hub_rss_after,
        hub_stats(hub).await,
        per_hub_connections,
    );
    finish(report)
}

fn summary(r: &ConnectionsReport) -> String {
    let mut s = String::new();
    let opt = |v: Option<f64>| {
        v.map_or("n/a".into(), |b| {
            format!("{:.0} B ({:.2} KiB)", b, b / 1024.0)
        })
    };
    s += &format!(
        "connections: held {} of {} (peak {}), failed {}; {} hub process(es), {} client process(es)\n",
        r.held, r.target, r.peak, r.failed, r.hubs, r.procs
    );
    if r.hubs > 1 {
        s += &format!(
            "  per hub process (its sockets then − before): {:?}\n",
            r.per_hub_connections
        );
    }
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
        "hub RSS (all hub processes): {} -> {} ; per idle connection {} (anonymous memory: {})\n",
        r.hub_rss_before.map_or("n/a".into(), |x| kib(x.vm_rss_kib)),
        r.hub_rss_after.map_or("n/a".into(), |x| kib(x.vm_rss_kib)),
        opt(r.hub_rss_per_conn_bytes),
        opt(r.hub_anon_per_conn_bytes),
    );
    s += &format!(
        "tool RSS (all client processes): {} -> {} ; per connection {}\n",
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
