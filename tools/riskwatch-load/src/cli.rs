//! The command line: arguments (clap), logging, the runtime, the hard
//! deadline around every mode, clean-up of the started hub, and output
//! (a human summary, or one JSON object with `--json`).

use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use serde_json::json;
use tokio::time::Instant;

use crate::common::Common;
use crate::connections::{self, ConnectionsArgs};
use crate::fanout::{self, FanoutArgs};
use crate::floor::{self, FloorArgs};
use crate::soak::{self, SoakArgs};
use crate::storm::{self, StormArgs};
use crate::sys;
use crate::target::{HubKind, Target, TargetOptions};
use crate::throughput::{self, ThroughputArgs};

/// Exit codes.
mod exit {
    /// The run completed and met its targets.
    pub const OK: u8 = 0;
    /// The run could not be carried out.
    pub const FAILURE: u8 = 1;
    /// The run completed and missed a target (or lost messages).
    pub const NOT_MET: u8 = 3;
    pub const INTERRUPTED: u8 = 130;
}

#[derive(Debug, Parser)]
#[command(
    name = "riskwatch-load",
    version,
    about = "Load tool and benchmark for the riskwatch hub (loopback only)",
    long_about = "Load tool and benchmark for the riskwatch hub. By default it starts the hub \
itself (`riskwatch serve --insecure-dev` from the riskwatch binary beside this one, on a free \
127.0.0.1 port, with the per-user connection cap lifted) so that the hub's memory is measured \
apart from the tool's, and stops it at the end. --url targets a hub already running on an IPv4 \
loopback address instead (--hub-pid for its memory). It raises its open-file limit to the hard \
limit and binds clients to source addresses across 127.0.0.0/8.",
    after_help = "Exit codes: 0 targets met, 1 failure, 2 bad usage, 3 completed but a target \
was missed or messages were lost, 130 interrupted.\n\
Environment: RUST_LOG (this tool's log filter), RISKWATCH_LOAD_HUB_LOG (the started hub's \
RUST_LOG, default warn), RISKWATCH_TOKEN (bearer token for an external hub).\n\
Results and reproducing commands: docs/PERFORMANCE.md, section Hub."
)]
struct Cli {
    #[command(flatten)]
    common: Common,
    #[command(subcommand)]
    mode: Mode,
}

#[derive(Debug, Subcommand)]
enum Mode {
    /// Hold N idle native-protocol connections (each subscribed to a
    /// channel) and report the hub's RSS per idle connection.
    Connections(ConnectionsArgs),
    /// N subscribers on one channel, one probe per second: delivery
    /// latency p50 / p99 / max and missed deliveries.
    Fanout(FanoutArgs),
    /// Publish M messages to 1,000 subscribers as fast as the hub accepts:
    /// publish rate in, delivery rate out, and completeness.
    Throughput(ThroughputArgs),
    /// No hub: N loopback TCP connections in this process, one message to
    /// each per round; what the kernel alone costs for a fan-out.
    Floor(FloorArgs),
    /// N clients on a hub that is killed and restarted: time until every
    /// one is back and resubscribed (p50 / p99 / max), and nothing lost
    /// or repeated across it.
    Storm(StormArgs),
    /// N clients for a long time under a publish load and random
    /// reconnects: the hub's memory and descriptors each minute, their
    /// slope, and anything lost.
    Soak(SoakArgs),
}

impl Mode {
    fn name(&self) -> &'static str {
        match self {
            Mode::Connections(_) => "connections",
            Mode::Fanout(_) => "fanout",
            Mode::Throughput(_) => "throughput",
            Mode::Floor(_) => "floor",
            Mode::Storm(_) => "storm",
            Mode::Soak(_) => "soak",
        }
    }

    fn clients(&self) -> usize {
        match self {
            // With --procs each worker process holds its share; this
            // process only watches.
            Mode::Connections(a) if a.procs > 1 => 0,
            Mode::Connections(a) => a.target,
            Mode::Fanout(a) => a.subscribers,
            Mode::Throughput(a) => a.subscribers,
            // Both ends of every connection are in this process.
            Mode::Floor(a) => 2 * a.connections,
            Mode::Storm(a) => a.clients,
            Mode::Soak(a) => a.clients,
        }
    }
}

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.common.verbose);
    let threads = cli.common.threads();
    let built = if threads <= 1 {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads)
            .enable_all()
            .build()
    };
    let rt = match built {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("riskwatch-load: cannot start the runtime: {e}");
            return ExitCode::from(exit::FAILURE);
        }
    };
    let code = rt.block_on(run(cli)).unwrap_or_else(|e| {
        eprintln!("riskwatch-load: {e:#}");
        exit::FAILURE
    });
    rt.shutdown_timeout(Duration::from_secs(5));
    ExitCode::from(code)
}

/// A directory of the run's own, removed when dropped.
struct TempDir {
    path: std::path::PathBuf,
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

fn tempdir() -> anyhow::Result<TempDir> {
    let path = std::env::temp_dir().join(format!(
        "riskwatch-load-{}-{}",
        std::process::id(),
        sys::wall_ns()
    ));
    std::fs::create_dir_all(&path)?;
    Ok(TempDir { path })
}

fn init_logging(verbose: u8) {
    use tracing_subscriber::EnvFilter;
    let default = match verbose {
        0 => "riskwatch_load=info",
        _ => "riskwatch_load=debug",
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .compact()
        .init();
}

async fn run(cli: Cli) -> anyhow::Result<u8> {
    let common = cli.common;
    let mode = cli.mode;
    if common.hubs > 1 && !matches!(mode, Mode::Connections(_)) {
        // Hubs on one port without a backplane do not share channels: a
        // publish would reach one hub's subscribers only.
        anyhow::bail!("--hubs above 1 is for the connections mode only");
    }
    // Raised before the hub starts, so that the child inherits it. A
    // publisher and the HTTP client need a few more.
    let nofile = sys::raise_nofile(mode.clients() as u64 + 16)?;
    if !nofile.enough {
        tracing::warn!("{}", nofile.describe());
    }
    let machine = sys::machine();
    if !machine.busy.is_empty() {
        tracing::warn!(busy = ?machine.busy, "compilers are running: the numbers will be disturbed");
    }
    // The storm restarts the hub it started: its channels must keep their
    // epochs and history across, as a production hub's do.
    if common.hub_kind != HubKind::Riskwatch && matches!(mode, Mode::Storm(_) | Mode::Soak(_)) {
        anyhow::bail!(
            "{} needs riskwatch's resume: not with --hub-kind {}",
            mode.name(),
            common.hub_kind
        );
    }
    let data_dir = match mode {
        Mode::Storm(_) => {
            if common.url.is_some() {
                anyhow::bail!("storm restarts the hub: let it start one (no --url)");
            }
            Some(tempdir()?)
        }
        _ => None,
    };
    let mut hub_args = common.hub_args.clone();
    if let Some(d) = &data_dir {
        hub_args.push("--data-dir".into());
        hub_args.push(d.path.display().to_string());
    }
    let mut target = match mode {
        Mode::Floor(_) => None,
        _ => Some(
            Target::open(&TargetOptions {
                kind: common.hub_kind,
                url: common.url.clone(),
                pid: common.hub_pid,
                hubs: usize::from(common.hubs),
                bin: common.hub_bin.clone(),
                hub_args,
                token: common.token.clone(),
            })
            .await?,
        ),
    };
    let hub_info = target.as_ref().map(Target::info);
    if let Some(h) = &hub_info {
        tracing::info!(addr = %h.addr, pids = ?h.pids, nofile = ?h.nofile, "hub ready");
    }
    let deadline = Instant::now() + Duration::from_secs(common.timeout.max(1));
    // The modes honour the deadline themselves; this is the backstop.
    let hard_stop = deadline + Duration::from_secs(60);
    let work = async {
        match (&mode, target.as_mut()) {
            (Mode::Floor(a), _) => floor::run(a, &common, deadline).await,
            (Mode::Connections(a), Some(t)) => connections::run(a, &common, t, deadline).await,
            (Mode::Fanout(a), Some(t)) => fanout::run(a, &common, t, deadline).await,
            (Mode::Throughput(a), Some(t)) => throughput::run(a, &common, t, deadline).await,
            (Mode::Storm(a), Some(t)) => storm::run(a, &common, t, deadline).await,
            (Mode::Soak(a), Some(t)) => soak::run(a, &common, t, deadline).await,
            (_, None) => unreachable!("every mode but floor has a hub"),
        }
    };
    let result = tokio::select! {
        r = tokio::time::timeout_at(hard_stop, work) => match r {
            Ok(r) => r.map(Some),
            Err(_) => Err(anyhow::anyhow!("the mode overran its deadline ({} s)", common.timeout)),
        },
        _ = tokio::signal::ctrl_c() => Ok(None),
    };
    if let Some(t) = target {
        t.stop(Duration::from_secs(20)).await;
    }
    let Some(outcome) = result? else {
        eprintln!("riskwatch-load: interrupted");
        return Ok(exit::INTERRUPTED);
    };
    if outcome.quiet {
        return Ok(if outcome.ok { exit::OK } else { exit::NOT_MET });
    }
    let command = std::env::args().collect::<Vec<_>>().join(" ");
    let hub_line = match &hub_info {
        Some(h) => format!(
            "hub: {} (pid {}, open-file limit {})",
            h.command,
            if h.pids.is_empty() {
                "unknown".into()
            } else {
                h.pids
                    .iter()
                    .map(|p| p.to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            },
            h.nofile.map_or("unknown".into(), |n| n.to_string()),
        ),
        None => "hub: none".into(),
    };
    let header = format!(
        "riskwatch-load {} — {}\nmachine: {} × {}, kernel {}, {} GiB, {}{}\n{}\n{hub_line}\n",
        mode.name(),
        command,
        machine.nproc,
        machine.cpu_model,
        machine.kernel,
        machine.mem_total_kib / (1024 * 1024),
        machine.date,
        if machine.busy.is_empty() {
            String::new()
        } else {
            format!(", BUSY: {}", machine.busy.join(" "))
        },
        nofile.describe(),
    );
    if common.json {
        eprint!("{header}{}", outcome.summary);
        let doc = json!({
            "mode": mode.name(),
            "command": command,
            "machine": machine,
            "nofile": nofile,
            "hub": hub_info,
            "ok": outcome.ok,
            "result": outcome.json,
        });
        println!("{doc}");
    } else {
        print!("{header}{}", outcome.summary);
    }
    Ok(if outcome.ok { exit::OK } else { exit::NOT_MET })
}
