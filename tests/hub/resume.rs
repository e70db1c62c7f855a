//! Exactly-once delivery on the native protocol: across abrupt drops, across
//! a hub restart with `--data-dir`, and the explicit gap notice when history
//! no longer reaches back far enough.

use std::time::Duration;

use riskwatch::client::{Client, Notice};
use riskwatch::server::{Auth, HubLimits, NewEvent, ServerConfig};
use serde_json::json;

use super::support::*;

const N: u64 = 10_000;

fn tick(channel: &str, i: u64) -> NewEvent {
    serde_json::from_value(json!({"channel": channel, "type": "tick", "data": {"i": i}})).unwrap()
}

/// Reads events until `want` have arrived (or time runs out) and checks
/// they are exactly `from..from+want`, in order, with matching payloads.
async fn expect_sequence(c: &mut Client, from: u64, want: u64, within: Duration) {
    let deadline = tokio::time::Instant::now() + within;
    let mut expected = from;
    while expected < from + want {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        let e = next_event(c, left)
            .await
            .unwrap_or_else(|| panic!("stalled at seq {expected} of {}", from + want - 1));
        assert_eq!(e.seq, Some(expected), "out of order or duplicated");
        assert_eq!(e.field("i"), Some(json!(expected)));
        expected += 1;
    }
    // Nothing more (no duplicates trailing behind).
    assert!(next_event(c, Duration::from_millis(200)).await.is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_messages_across_drops_arrive_exactly_once_in_order() {
    let hub =
        hub(ServerConfig::new(Auth::Insecure).history(HubLimits::default().history_len(20_000)))
            .await;
    let proxy = Proxy::start(hub.addr()).await;
    let mut c = Client::connect(fast(url(proxy.addr, "/api/v1/stream")).subscribe("t")).unwrap();
    let h = std::sync::Arc::clone(hub.hub());
    assert!(
        until(Duration::from_secs(5), || h
            .stats()
            .connections_by_channel
            .get("t")
            == Some(&1))
        .await
    );

    let publisher = {
        let h = std::sync::Arc::clone(hub.hub());
        tokio::spawn(async move {
            for i in 1..=N {
                h.publish(tick("t", i)).await.unwrap();
                if i % 250 == 0 {
                    tokio::time::sleep(Duration::from_millis(2)).await;
                }
            }
        })
    };
    let cutter = tokio::spawn(async move {
        for _ in 0..4 {
            tokio::time::sleep(Duration::from_millis(40)).await;
            proxy.cut();
        }
        proxy
    });
    expect_sequence(&mut c, 1, N, Duration::from_secs(60)).await;
    publisher.await.unwrap();
    let _proxy = cutter.await.unwrap();
    let stats = c.stats();
    assert!(
        stats.connects >= 3,
        "the proxy should have forced reconnects: {stats:?}"
    );
    hub.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resume_survives_a_hub_restart_with_a_data_dir() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = || {
        ServerConfig::new(Auth::Insecure)
            .history(HubLimits::default().history_len(20_000))
            .data_dir(Some(dir.path().to_path_buf()))
    };
    let first = riskwatch::server::Server::start(bind(0), cfg()).unwrap();
    let addr = first.addr();
    let mut c = Client::connect(fast(url(addr, "/api/v1/stream")).subscribe("t")).unwrap();
    let h = std::sync::Arc::clone(first.hub());
    assert!(
        until(Duration::from_secs(5), || h
            .stats()
            .connections_by_channel
            .get("t")
            == Some(&1))
        .await
    );
    for i in 1..=N / 2 {
        h.publish(tick("t", i)).await.unwrap();
    }
    expect_sequence(&mut c, 1, N / 2, Duration::from_secs(30)).await;
    // Published while the client is already gone from the first hub's view
    // but before the restart: these must come from disk.
    first.shutdown().await;
    let second = riskwatch::server::Server::start(bind(addr.port()), cfg()).unwrap();
    let h2 = std::sync::Arc::clone(second.hub());
    for i in N / 2 + 1..=N {
        h2.publish(tick("t", i)).await.unwrap();
    }
    expect_sequence(&mut c, N / 2 + 1, N / 2, Duration::from_secs(30)).await;
    second.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn history_overflow_is_announced_then_delivery_continues_from_the_oldest() {
    let hub =
        hub(ServerConfig::new(Auth::Insecure).history(HubLimits::default().history_len(10))).await;
    let proxy = Proxy::start(hub.addr()).await;
    let mut c = Client::connect(fast(url(proxy.addr, "/api/v1/stream")).subscribe("t")).unwrap();
    let h = std::sync::Arc::clone(hub.hub());
    assert!(
        until(Duration::from_secs(5), || h
            .stats()
            .connections_by_channel
            .get("t")
            == Some(&1))
        .await
    );
    for i in 1..=5 {
        h.publish(tick("t", i)).await.unwrap();
    }
    expect_sequence(&mut c, 1, 5, Duration::from_secs(10)).await;
    // Take the client off the hub, publish past the history, let it back.
    proxy.set_open(false);
    proxy.cut();
    assert!(until(Duration::from_secs(5), || h.stats().total_connections == 0).await);
    for i in 6..=55 {
        h.publish(tick("t", i)).await.unwrap();
    }
    proxy.set_open(true);
    let notice = next_notice(&mut c, Duration::from_secs(10)).await;
    assert_eq!(
        notice,
        Some(Notice::Gap {
            channel: "t".into(),
            requested: 5,
            oldest: 46,
            // Only ordinary events were published: none critical is gone.
            criticals_kept: true
        })
    );
    expect_sequence(&mut c, 46, 10, Duration::from_secs(10)).await;
    hub.shutdown().await;
}
