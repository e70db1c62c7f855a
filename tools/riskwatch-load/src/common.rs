//! The options every mode shares (the hub to load, how clients connect,
//! limits, output), and the client settings they make.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use clap::Args;
use tokio::time::Instant;

use crate::client::{self, ClientConfig, Connected, Sources};
use crate::counters::Shared;
use crate::sys;
use crate::target::{HubKind, Target};

/// Options every mode shares.
#[derive(Debug, Clone, Args)]
pub struct Common {
    /// A running hub to load instead of starting one (ws://127.0.0.1:PORT;
    /// IPv4 loopback only).
    #[arg(long, global = true)]
    pub url: Option<String>,
    /// What kind of hub --url is: riskwatch's, or a reference hub of the
    /// side-by-side benchmark (bench/), a plain `ws` broadcast hub or a
    /// Socket.IO one. Only connections, fanout and throughput run against
    /// the others (storm and soak need riskwatch's resume).
    #[arg(long, global = true, value_enum, default_value_t = HubKind::Riskwatch)]
    pub hub_kind: HubKind,
    /// The external hub's pid, to read its memory from /proc.
    #[arg(long, global = true, requires = "url")]
    pub hub_pid: Option<u32>,
    /// Hub processes to start on one port (each `riskwatch serve
    /// --reuse-port`; the kernel spreads connections over them). Memory and
    /// CPU are summed over them. Not with --url.
    #[arg(long, global = true, default_value_t = 1, conflicts_with = "url",
          value_parser = clap::value_parser!(u16).range(1..=crate::target::MAX_HUBS as i64))]
    pub hubs: u16,
    /// The riskwatch binary to start (default: `riskwatch` beside this one).
    #[arg(long, global = true, value_name = "PATH")]
    pub hub_bin: Option<PathBuf>,
    /// An extra argument for the started `riskwatch serve` (repeatable),
    /// e.g. --hub-arg=--heartbeat=5.
    #[arg(
        long = "hub-arg",
        global = true,
        allow_hyphen_values = true,
        value_name = "ARG"
    )]
    pub hub_args: Vec<String>,
    /// Bearer token for an external hub that requires one.
    #[arg(long, global = true, env = "RISKWATCH_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// Connections being opened at once.
    #[arg(long, global = true, default_value_t = 500)]
    pub concurrency: usize,
    /// Source addresses to spread clients over (127.0.0.2, 127.0.0.3, …).
    #[arg(long, global = true, default_value_t = 64)]
    pub source_ips: u32,
    /// Seconds one client may take to connect, upgrade and subscribe.
    #[arg(long, global = true, default_value_t = 15)]
    pub connect_timeout: u64,
    /// Stop connecting after this many failed connects.
    #[arg(long, global = true, default_value_t = 200)]
    pub max_errors: u64,
    /// Threads for this tool's runtime (its clients and publisher); 1 is
    /// a single-threaded runtime (cheaper per delivery, but one core's
    /// worth of receiving). Default: the machine's cores.
    #[arg(long, global = true)]
    pub threads: Option<usize>,
    /// Hard deadline for the whole mode, in seconds.
    #[arg(long, global = true, default_value_t = 900)]
    pub timeout: u64,
    /// Print one JSON object on stdout (the summary goes to stderr).
    #[arg(long, global = true)]
    pub json: bool,
    /// More logging on stderr (-v debug). RUST_LOG overrides.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
}

impl Common {
    /// `--threads`, or the machine's cores.
    pub fn threads(&self) -> usize {
        self.threads.unwrap_or_else(sys::cores)
    }

    pub fn client_config(&self, hub: &Target, prefix: &str, channels: usize) -> ClientConfig {
        self.client_config_from(hub, prefix, channels, 0)
    }

    /// Clients whose source addresses start at address number `first`.
    pub fn client_config_from(
        &self,
        hub: &Target,
        prefix: &str,
        channels: usize,
        first: u32,
    ) -> ClientConfig {
        ClientConfig {
            hub: hub.addr,
            url: hub.ws_url(),
            token: hub.token().map(str::to_owned),
            sources: Sources::range(first, self.source_ips),
            prefix: prefix.to_owned(),
            channels,
            connect_timeout: Duration::from_secs(self.connect_timeout.max(1)),
            read_buffer: 4096,
            readers: None,
            kind: hub.kind,
        }
    }

    /// Opens `n` clients with these options' concurrency and error budget.
    pub async fn connect_all(
        &self,
        n: usize,
        cfg: &Arc<ClientConfig>,
        shared: &Arc<Shared>,
        deadline: Instant,
    ) -> Connected {
        client::connect_all(
            n,
            Arc::clone(cfg),
            Arc::clone(shared),
            self.concurrency,
            self.max_errors,
            deadline,
        )
        .await
    }
}
