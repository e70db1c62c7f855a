//! `riskwatch-load`: the hub's load tool and benchmark. It holds many idle
//! native-protocol connections, measures fan-out latency and publish
//! throughput, and reads the hub's resident memory, against a hub it starts
//! itself (the built `riskwatch serve`) or one already running on loopback.
//! Results and reproducing commands live in docs/PERFORMANCE.md ("Hub").
//! Linux only: it reads the hub's memory and CPU from `/proc` and its
//! readers use epoll.
//!
//! # Layout
//! - `cli`: arguments, logging, the runtime, the hard deadline, output.
//! - `sys`: open-file limit, resident memory, machine description.
//! - `target`: the hub under test (spawned child or external), its HTTP
//!   API (health, stats, publish).
//! - `common`: the options every mode shares; `report`: what a mode
//!   hands back (JSON, summary, targets met).
//! - `counters`: what the clients and readers of a run count, the
//!   latency histogram, the probe events.
//! - `client`: source addresses over 127.0.0.0/8, bounded-concurrency
//!   connects, the per-connection subscriber task.
//! - `publisher`: publishing probes, over HTTP to riskwatch or as a
//!   WebSocket client of a reference hub (`--hub-kind`, bench/).
//! - `reader`: `fanout`'s epoll reader threads, which take over the
//!   subscribed sockets from the tasks.
//! - `resuming`: the reconnecting, resuming, checking client `storm`
//!   and `soak` run by the thousand.
//! - `connections`, `fanout`, `throughput`, `storm`, `soak`: one file per
//!   mode;
//!   `floor`, the same fan-out over bare loopback TCP with no hub, for
//!   comparison.

#[cfg(target_os = "linux")]
mod cli;
#[cfg(target_os = "linux")]
mod client;
#[cfg(target_os = "linux")]
mod common;
#[cfg(target_os = "linux")]
mod connections;
#[cfg(target_os = "linux")]
mod counters;
#[cfg(target_os = "linux")]
mod fanout;
#[cfg(target_os = "linux")]
mod floor;
#[cfg(target_os = "linux")]
mod publisher;
#[cfg(target_os = "linux")]
mod reader;
#[cfg(target_os = "linux")]
mod report;
#[cfg(target_os = "linux")]
mod resuming;
#[cfg(target_os = "linux")]
mod soak;
#[cfg(target_os = "linux")]
mod storm;
#[cfg(target_os = "linux")]
mod sys;
#[cfg(target_os = "linux")]
mod target;
#[cfg(target_os = "linux")]
mod throughput;

#[cfg(target_os = "linux")]
fn main() -> std::process::ExitCode {
    cli::main()
}

/// The tool measures the hub on Linux (epoll readers, `/proc` for memory
/// and CPU, `PR_SET_PDEATHSIG`); elsewhere it says so and stops.
#[cfg(not(target_os = "linux"))]
fn main() -> std::process::ExitCode {
    eprintln!("riskwatch-load runs on Linux only (epoll, /proc)");
    std::process::ExitCode::FAILURE
}
