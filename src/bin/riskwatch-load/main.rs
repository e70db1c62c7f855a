//! `riskwatch-load`: the hub's load tool and benchmark. It holds many idle
//! native-protocol connections, measures fan-out latency and publish
//! throughput, and reads the hub's resident memory, against a hub it starts
//! itself (the built `riskwatch serve`) or one already running on loopback.
//! Results and reproducing commands live in docs/PERFORMANCE.md ("Hub").
//!
//! # Layout
//! - `cli`: arguments, logging, the runtime, the hard deadline, output.
//! - `sys`: open-file limit, resident memory, machine description.
//! - `target`: the hub under test (spawned child or external), its HTTP
//!   API (health, stats, publish).
//! - `client`: source addresses over 127.0.0.0/8, bounded-concurrency
//!   connects, the per-connection subscriber task and its counters.
//! - `reader`: `fanout`'s epoll reader threads, which take over the
//!   subscribed sockets from the tasks.
//! - `connections`, `fanout`, `throughput`: one file per mode; `floor`,
//!   the same fan-out over bare loopback TCP with no hub, for comparison.

mod cli;
mod client;
mod connections;
mod fanout;
mod floor;
mod reader;
mod sys;
mod target;
mod throughput;

fn main() -> std::process::ExitCode {
    cli::main()
}
