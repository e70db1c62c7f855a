//! A laptop that sleeps: the real `riskwatch watch --json` is stopped with
//! SIGSTOP while the real hub (default history settings) drops it as dead
//! and then takes three times its ordinary history, emergency stops among
//! it. After SIGCONT the CLI resumes: every emergency stop exactly once, in
//! order, after a gap line that says only ordinary events are gone.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::{Value, json};

use super::support::*;

const CH: &str = "sessions:demo";
const AWAY: u64 = 3_000;
const EVERY: u64 = 100;

/// Reads the CLI's stdout lines into a channel (a thread: the child's
/// pipe is blocking).
fn lines(child: &mut std::process::Child) -> std::sync::mpsc::Receiver<Value> {
    let out = child.stdout.take().expect("piped stdout");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines() {
            let Ok(line) = line else { return };
            let v: Value = serde_json::from_str(&line)
                .unwrap_or_else(|e| panic!("not a JSON line ({e}): {line:?}"));
            if tx.send(v).is_err() {
                return;
            }
        }
    });
    rx
}

/// The next `n` lines, 30 s at most in all.
fn take(rx: &std::sync::mpsc::Receiver<Value>, n: usize) -> Vec<Value> {
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let mut got = Vec::with_capacity(n);
    while got.len() < n {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        match rx.recv_timeout(left) {
            Ok(v) => got.push(v),
            Err(e) => panic!(
                "{e} after {} of {n} lines; last {:?}",
                got.len(),
                got.last()
            ),
        }
    }
    got
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_stopped_past_the_history_gets_every_emergency_stop_once() {
    let port = bind(0).local_addr().unwrap().port();
    // Default history; hub pings every second so the stopped client is
    // dropped as dead in about two seconds rather than sixty.
    let mut hub = spawn_hub(port, &["--insecure-dev", "--heartbeat", "1"]);
    let base = format!("http://127.0.0.1:{port}");
    let http = http_client();
    let up = async {
        for _ in 0..200 {
            if http.get(format!("{base}/healthz")).send().await.is_ok() {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        false
    };
    assert!(up.await, "the hub starts");
    let mut watch = Command::new(env!("CARGO_BIN_EXE_riskwatch"))
        .args(["watch", &format!("ws://127.0.0.1:{port}/api/v1/stream")])
        .args(["--subscribe", CH, "--json"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let rx = lines(&mut watch);
    // Whether the hub comes to show `n` subscribers on the channel (10 s).
    let subscribers = |n: u64| {
        let (http, base) = (http.clone(), base.clone());
        async move {
            for _ in 0..200 {
                let stats: Value = http
                    .get(format!("{base}/api/v1/ws/stats"))
                    .send()
                    .await
                    .unwrap()
                    .json()
                    .await
                    .unwrap();
                if stats["connections_by_channel"][CH].as_u64().unwrap_or(0) == n {
                    return true;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            false
        }
    };
    assert!(subscribers(1).await, "the CLI subscribes");

    let mut seq = 0u64;
    let mut emergencies = Vec::new();
    let mut publish = async |n: u64| {
        for _ in 0..n {
            seq += 1;
            let body = if seq % EVERY == 0 {
                emergencies.push(seq);
                json!({"channel": CH, "type": "session_status", "severity": "emergency",
                    "data": {"sessionId": format!("S{seq}"), "status": "emergency_stopped"}})
            } else {
                json!({"channel": CH, "type": "tick", "data": {"n": seq}})
            };
            let r = http
                .post(format!("{base}/api/v1/publish"))
                .json(&body)
                .send()
                .await
                .unwrap();
            assert!(r.status().is_success(), "publish {seq}: {r:?}");
        }
    };
    publish(5).await;
    let first = tokio::task::block_in_place(|| take(&rx, 5));
    assert_eq!(first[4]["seq"], 5);

    // The lid closes.
    kill("STOP", watch.id());
    assert!(subscribers(0).await, "the hub drops the sleeping client");
    publish(AWAY).await;
    // The lid opens.
    kill("CONT", watch.id());

    // What comes back: the gap line, every emergency stop, and the last
    // 1,000 ordinary events (the default history).
    let ordinary_kept = 1_000;
    let ordinary_trimmed_upto = {
        let ordinary: Vec<u64> = (6..=5 + AWAY).filter(|s| s % EVERY != 0).collect();
        ordinary[ordinary.len() - ordinary_kept - 1]
    };
    let replayed = emergencies
        .iter()
        .filter(|s| **s <= ordinary_trimmed_upto)
        .count()
        + (ordinary_trimmed_upto + 1..=5 + AWAY).count();
    let got = tokio::task::block_in_place(|| take(&rx, replayed + 1));
    assert_eq!(got[0]["notice"], "gap", "the gap comes first: {}", got[0]);
    assert_eq!(got[0]["requested"], 5);
    assert_eq!(got[0]["oldest"], ordinary_trimmed_upto + 1);
    assert_eq!(got[0]["criticals_kept"], true);
    let seqs: Vec<u64> = got[1..]
        .iter()
        .map(|v| v["seq"].as_u64().unwrap())
        .collect();
    assert!(seqs.windows(2).all(|w| w[0] < w[1]), "in order, no repeats");
    let got_emergencies: Vec<u64> = got[1..]
        .iter()
        .filter(|v| v["severity"] == "emergency")
        .map(|v| v["seq"].as_u64().unwrap())
        .collect();
    assert_eq!(got_emergencies, emergencies, "every emergency stop, once");
    assert!(got_emergencies.iter().all(|s| {
        got[1..]
            .iter()
            .any(|v| v["seq"] == *s && v["notify"] == true)
    }));
    assert_eq!(seqs.last(), Some(&(5 + AWAY)));
    // Nothing more follows.
    assert!(rx.recv_timeout(Duration::from_millis(500)).is_err());

    kill("TERM", watch.id());
    let _ = watch.wait();
    kill("TERM", hub.id());
    let _ = hub.wait();
}
