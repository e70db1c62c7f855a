//! `--data-dir` history under hostile or unlucky use: subscribing to names
//! nobody publishes on leaves no files; a busy channel's file is compacted
//! while the hub runs; a publish the hub could not store is refused (503)
//! and never sent, so "stored" always means stored.

use std::time::Duration;

use riskwatch::client::Client;
use riskwatch::server::{Auth, HubLimits, Limits, NewEvent, Server, ServerConfig};
use serde_json::json;

use super::support::*;

fn tick(channel: &str, i: u64) -> NewEvent {
    serde_json::from_value(json!({"channel": channel, "type": "tick", "data": {"i": i}})).unwrap()
}

fn history_files(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    std::fs::read_dir(dir.join("history"))
        .map(|d| d.filter_map(|e| e.ok().map(|e| e.path())).collect())
        .unwrap_or_default()
}

fn hex(name: &str) -> String {
    name.bytes().map(|b| format!("{b:02x}")).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscribing_to_unpublished_names_leaves_no_files() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(
        bind(0),
        ServerConfig::new(Auth::Insecure)
            .limits(Limits::default().rate(1_000, 2_000))
            .data_dir(Some(dir.path().to_path_buf())),
    )
    .unwrap();
    let mut cfg = fast(url(server.addr(), "/api/v1/stream"));
    for i in 0..100 {
        cfg = cfg.subscribe(format!("junk:{i}"));
    }
    let _c = Client::connect(cfg).unwrap();
    let h = std::sync::Arc::clone(server.hub());
    assert!(
        until(Duration::from_secs(30), || h
            .stats()
            .connections_by_channel
            .len()
            == 100)
        .await
    );
    assert!(
        history_files(dir.path()).is_empty(),
        "{:?}",
        history_files(dir.path())
    );
    assert_eq!(h.broker().logs().len(), 0, "nor channels in memory");
    h.publish(tick("junk:7", 1)).await.unwrap();
    assert_eq!(history_files(dir.path()).len(), 1);
    assert_eq!(h.broker().logs().len(), 1);
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_busy_channel_file_is_compacted_while_the_hub_runs() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = || {
        ServerConfig::new(Auth::Insecure)
            .history(HubLimits::default().history_len(100))
            .data_dir(Some(dir.path().to_path_buf()))
    };
    let server = Server::start(bind(0), cfg()).unwrap();
    for i in 1..=5_000 {
        server.hub().publish(tick("busy", i)).await.unwrap();
    }
    let file = dir
        .path()
        .join("history")
        .join(format!("{}.jsonl", hex("busy")));
    let lines = std::fs::read_to_string(&file).unwrap().lines().count();
    assert!(
        lines <= 1 + 2 * 100 + 1_000 + 1,
        "{lines} lines for 100 kept"
    );
    server.shutdown().await;
    // What it kept is still there, in order, after a restart.
    let again = Server::start(bind(0), cfg()).unwrap();
    let mut c =
        Client::connect(fast(url(again.addr(), "/api/v1/stream")).subscribe("busy")).unwrap();
    subscriptions(again.hub(), 1).await;
    again.hub().publish(tick("busy", 5_001)).await.unwrap();
    let e = next_event(&mut c, Duration::from_secs(5)).await.unwrap();
    assert_eq!(e.seq, Some(5_001), "the sequence goes on after compaction");
    again.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_the_hub_cannot_store_is_refused_and_never_sent() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(
        bind(0),
        ServerConfig::new(Auth::Insecure).data_dir(Some(dir.path().to_path_buf())),
    )
    .unwrap();
    let mut c = Client::connect(fast(url(server.addr(), "/api/v1/stream")).subscribe("c")).unwrap();
    let h = std::sync::Arc::clone(server.hub());
    subscriptions(&h, 1).await;
    // The channel's file cannot be written (a directory stands there).
    let blocked = dir
        .path()
        .join("history")
        .join(format!("{}.jsonl", hex("c")));
    std::fs::create_dir_all(&blocked).unwrap();
    let r = http_client()
        .post(format!("http://{}/api/v1/publish", server.addr()))
        .json(
            &json!({"channel": "c", "type": "session_status", "severity": "emergency",
            "data": {"sessionId": "S1", "status": "emergency_stopped"}}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.status().as_u16(),
        503,
        "not stored: the publisher must retry"
    );
    assert!(
        next_event(&mut c, Duration::from_millis(300))
            .await
            .is_none()
    );
    // Storage back: the retry is stored and sent, as sequence 1.
    std::fs::remove_dir(&blocked).unwrap();
    let p = h.publish(tick("c", 1)).await.unwrap();
    assert_eq!(p.seq, 1);
    assert_eq!(
        next_event(&mut c, Duration::from_secs(5))
            .await
            .unwrap()
            .seq,
        Some(1)
    );
    server.shutdown().await;
}
