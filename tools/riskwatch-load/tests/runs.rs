//! The tool run as a user runs it, against a real `riskwatch serve` it
//! starts itself on loopback: each mode completes, counts what it should
//! and exits 0. Small sizes: this checks the tool works (its epoll
//! readers, open-file limit, process control), not the hub's speed, which
//! docs/PERFORMANCE.md records.

use std::path::PathBuf;
use std::process::Command;

use serde_json::Value;

/// The `riskwatch` binary the tool starts: beside this one in the
/// workspace's target directory (built by `cargo nextest run --workspace`
/// or `cargo build -p riskwatch`).
fn hub_bin() -> PathBuf {
    let tool = PathBuf::from(env!("CARGO_BIN_EXE_riskwatch-load"));
    let hub = tool.with_file_name("riskwatch");
    assert!(
        hub.exists(),
        "{} is missing: build it first (cargo build -p riskwatch)",
        hub.display()
    );
    hub
}

/// Runs one mode with `--json` (bounded by its own `--timeout`) and
/// returns its report.
fn run(args: &[&str]) -> Value {
    let out = Command::new(env!("CARGO_BIN_EXE_riskwatch-load"))
        .arg("--hub-bin")
        .arg(hub_bin())
        .args(["--timeout", "60", "--json"])
        .args(args)
        .output()
        .expect("the tool starts");
    assert!(
        out.status.success(),
        "{args:?} exited {:?}: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("one JSON report on stdout")
}

#[test]
fn connections_are_held_and_measured() {
    let r = run(&["connections", "--target", "300", "--hold", "1"]);
    assert_eq!(r["mode"], "connections");
    let res = &r["result"];
    assert_eq!(res["hub_connections"], 300, "the hub counts them: {res}");
    assert_eq!(res["held"], 300, "{res}");
    assert_eq!(res["failed"], 0, "{res}");
}

#[test]
fn fanout_delivers_every_probe_to_every_subscriber() {
    let r = run(&["fanout", "--subscribers", "100", "--duration", "2"]);
    let res = &r["result"];
    assert_eq!(res["subscribed"], 100, "{res}");
    assert_eq!(res["published"], 2, "{res}");
    assert_eq!(res["delivered"], 200, "{res}");
    assert_eq!(res["missed"], 0, "{res}");
    assert_eq!(res["out_of_sequence"], 0, "{res}");
    assert_eq!(res["latency"]["samples"], 200, "{res}");
}

#[test]
fn throughput_delivers_every_message_in_order() {
    let r = run(&["throughput", "--subscribers", "50", "--messages", "200"]);
    let res = &r["result"];
    assert_eq!(res["delivered"], 50 * 200, "{res}");
    assert_eq!(res["complete_subscribers"], 50, "{res}");
    assert_eq!(res["out_of_sequence"], 0, "{res}");
}

#[test]
fn the_floor_reads_every_message() {
    let r = run(&["floor", "--connections", "100", "--rounds", "2"]);
    assert_eq!(r["mode"], "floor");
    assert_eq!(r["result"]["delivered"], 200, "{r}");
}
