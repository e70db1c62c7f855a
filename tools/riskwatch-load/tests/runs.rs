//! The tool run as a user runs it, against a real `riskwatch serve` it
//! starts itself on loopback: each mode completes, counts what it should
//! and exits 0. Small sizes: this checks the tool works (its epoll
//! readers, open-file limit, process control), not the hub's speed, which
//! docs/PERFORMANCE.md records. Also against the Node.js reference hubs
//! of the side-by-side benchmark (bench/hubs, their packages installed by
//! scripts/setup.sh), as bench/run.sh drives them.

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

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
    run_with(&[], args)
}

/// [`run`] with global options before the mode (e.g. `--url`).
fn run_with(global: &[&str], args: &[&str]) -> Value {
    let out = Command::new(env!("CARGO_BIN_EXE_riskwatch-load"))
        .arg("--hub-bin")
        .arg(hub_bin())
        .args(["--timeout", "60", "--json"])
        .args(global)
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

/// The hub killed (and, in the second run, stopped) under 100 clients and
/// started again on its data directory: every client is back and
/// resubscribed, resumed after its last sequence, with every event of
/// both rounds once, in order, and no history gap.
#[test]
fn a_storm_brings_every_client_back_with_everything() {
    for how in ["kill", "stop"] {
        let r = run(&[
            "storm",
            "--clients",
            "100",
            "--channels",
            "10",
            "--events",
            "3",
            "--how",
            how,
            "--down-ms",
            "200",
            "--backoff-ms",
            "100",
        ]);
        assert_eq!(r["mode"], "storm");
        let res = &r["result"];
        assert_eq!(res["subscribed_before"], 100, "{how}: {res}");
        assert_eq!(res["back"], 100, "{how}: {res}");
        assert_eq!(res["complete_clients"], 100, "{how}: {res}");
        assert_eq!(res["expected_per_client"], 6, "{how}: {res}");
        assert_eq!(res["lost"], 0, "{how}: {res}");
        assert_eq!(res["repeated"], 0, "{how}: {res}");
        assert_eq!(res["gaps"], 0, "{how}: {res}");
        assert!(
            res["back_after_start_ms"]["max"].as_u64().unwrap() < 60_000,
            "{res}"
        );
    }
}

/// A short soak: clients dropped at random all along reconnect and resume,
/// and every one ends with every event, none twice.
#[test]
fn a_soak_loses_nothing_across_random_drops() {
    let r = run(&[
        "soak",
        "--clients",
        "100",
        "--channels",
        "10",
        "--seconds",
        "8",
        "--rate",
        "40",
        "--drops-per-minute",
        "300",
        "--severity",
        "critical",
        "--sample-every",
        "60",
    ]);
    assert_eq!(r["mode"], "soak");
    let res = &r["result"];
    assert!(res["published"].as_u64().unwrap() >= 250, "{res}");
    assert!(res["drops"].as_u64().unwrap() >= 25, "{res}");
    assert!(res["reconnects"].as_u64().unwrap() >= 20, "{res}");
    assert_eq!(res["complete_clients"], 100, "{res}");
    assert_eq!(res["lost"], 0, "{res}");
    assert_eq!(res["repeated"], 0, "{res}");
    assert_eq!(res["gaps"], 0, "{res}");
    assert_eq!(res["flat"], Value::Null, "one sample: not judged: {res}");
    let sample = &res["samples"][0];
    assert!(sample["rss_kib"].as_u64().unwrap() > 0, "{sample}");
    assert!(
        sample["heap_in_use_kib"].as_u64().unwrap() > 0,
        "the hub's heap, from its stats: {sample}"
    );
}

/// A reference hub from bench/hubs, run by Node.js on a free loopback
/// port; killed when dropped.
struct NodeHub {
    child: Child,
    port: u16,
    /// What the tool is told it is (`--hub-kind`).
    kind: &'static str,
}

impl NodeHub {
    fn start(script: &str, kind: &'static str, env: &[(&str, &str)]) -> NodeHub {
        let bench = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../bench");
        assert!(
            bench.join("node_modules/ws").exists() && bench.join("node_modules/socket.io").exists(),
            "bench/node_modules is missing: run scripts/setup.sh (or npm ci in bench/)"
        );
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let child = Command::new("node")
            .arg(bench.join("hubs").join(script))
            .arg(port.to_string())
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("node runs (Node.js 20 or later)");
        let mut hub = NodeHub { child, port, kind };
        let deadline = Instant::now() + Duration::from_secs(15);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            if let Ok(Some(status)) = hub.child.try_wait() {
                panic!("{script} exited at start: {status}");
            }
            assert!(
                Instant::now() < deadline,
                "{script} did not listen within 15 s"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        hub
    }

    /// [`run`] against this hub.
    fn run(&self, args: &[&str]) -> Value {
        let url = format!("ws://127.0.0.1:{}/", self.port);
        let pid = self.child.id().to_string();
        let global = ["--url", &url, "--hub-kind", self.kind, "--hub-pid", &pid];
        run_with(&global, args)
    }
}

impl Drop for NodeHub {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The `ws` broadcast hub carries the publisher's probes to every
/// subscriber, in order, and the tool measures them as it does riskwatch's.
#[test]
fn a_ws_broadcast_hub_is_measured_like_riskwatch() {
    let hub = NodeHub::start("ws-hub.mjs", "ws", &[]);
    let r = hub.run(&["fanout", "--subscribers", "50", "--duration", "2"]);
    let res = &r["result"];
    assert_eq!(r["hub"]["kind"], "ws", "{r}");
    assert_eq!(res["delivered"], 100, "{res}");
    assert_eq!(res["missed"], 0, "{res}");
    assert_eq!(res["out_of_sequence"], 0, "{res}");
    assert!(
        res["cpu"]["hub"]["user_s"].is_number(),
        "the hub's CPU is read: {res}"
    );

    let r = hub.run(&["throughput", "--subscribers", "20", "--messages", "300"]);
    let res = &r["result"];
    assert_eq!(res["complete_subscribers"], 20, "{res}");
    assert_eq!(res["out_of_sequence"], 0, "{res}");

    let r = hub.run(&["connections", "--target", "100", "--hold", "1"]);
    assert_eq!(r["result"]["held"], 100, "{r}");
    assert!(
        r["result"]["hub_rss_after"]["vm_rss_kib"].is_number(),
        "{r}"
    );
}

/// Socket.IO subscribers join the namespace, get every probe, and answer
/// Engine.IO's pings: with a ping every 300 ms and as long to answer, a
/// subscriber that did not would be dropped within the first second of
/// a four-second run, in the readers (fanout) and in the tasks
/// (throughput) alike.
#[test]
fn socketio_subscribers_get_every_probe_and_answer_its_pings() {
    let hub = NodeHub::start(
        "socketio-hub.mjs",
        "socketio",
        &[("PING_INTERVAL_MS", "300")],
    );
    let r = hub.run(&["fanout", "--subscribers", "40", "--duration", "4"]);
    let res = &r["result"];
    assert_eq!(res["subscribed"], 40, "{res}");
    assert_eq!(res["delivered"], 160, "{res}");
    assert_eq!(res["missed"], 0, "{res}");
    assert_eq!(res["out_of_sequence"], 0, "{res}");
    assert_eq!(res["dropped"], 0, "{res}");
    assert_eq!(res["closes"], serde_json::json!({}), "{res}");

    let r = hub.run(&[
        "throughput",
        "--subscribers",
        "20",
        "--messages",
        "3000",
        "--batch",
        "10",
        "--window",
        "20",
    ]);
    let res = &r["result"];
    assert_eq!(res["complete_subscribers"], 20, "{res}");
    assert_eq!(res["dropped"], 0, "{res}");
    assert_eq!(res["closes"], serde_json::json!({}), "{res}");
}
