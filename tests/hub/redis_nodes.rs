//! Two hubs sharing channels through a real redis-server: a client on hub A
//! receives what is published on hub B, and after A dies it resumes on B
//! without losing or repeating anything.

use std::sync::Arc;
use std::time::Duration;

use riskwatch::client::Client;
use riskwatch::server::backplane::Backplane;
use riskwatch::server::{Auth, NewEvent, Server, ServerConfig};
use serde_json::json;

use super::support::*;

async fn node(redis: &Redis) -> Server {
    let bp = Backplane::connect(&redis.url, 5_000, Duration::from_secs(600))
        .await
        .unwrap();
    hub(ServerConfig::new(Auth::Insecure).backplane(Some(Arc::new(bp)))).await
}

fn tick(i: u64) -> NewEvent {
    serde_json::from_value(json!({"channel": "t", "type": "tick", "data": {"i": i}})).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_on_one_node_gets_what_another_publishes_and_resumes_there() {
    const N: u64 = 2_000;
    let redis = Redis::start().await;
    let a = node(&redis).await;
    let b = node(&redis).await;
    let proxy = Proxy::start(a.addr()).await;
    let mut on_a = Client::connect(fast(url(proxy.addr, "/api/v1/stream")).subscribe("t")).unwrap();
    let mut on_b = Client::connect(fast(url(b.addr(), "/api/v1/stream")).subscribe("t")).unwrap();
    let (ha, hb) = (Arc::clone(a.hub()), Arc::clone(b.hub()));
    assert!(
        until(Duration::from_secs(5), || ha
            .stats()
            .connections_by_channel
            .get("t")
            == Some(&1)
            && hb.stats().connections_by_channel.get("t") == Some(&1))
        .await
    );

    // Published on B, half before A dies and half after.
    for i in 1..=N / 2 {
        hb.publish_async(tick(i)).await.unwrap();
    }
    for i in 1..=N / 2 {
        let e = next_event(&mut on_a, Duration::from_secs(10))
            .await
            .expect("A relays B's events");
        assert_eq!((e.seq, e.field("i")), (Some(i), Some(json!(i))));
    }
    a.shutdown().await;
    proxy.point_to(b.addr());
    proxy.cut();
    for i in N / 2 + 1..=N {
        hb.publish_async(tick(i)).await.unwrap();
    }
    for i in N / 2 + 1..=N {
        let e = next_event(&mut on_a, Duration::from_secs(10))
            .await
            .unwrap_or_else(|| panic!("resumed client stalled at {i}"));
        assert_eq!(
            (e.seq, e.field("i")),
            (Some(i), Some(json!(i))),
            "exactly once, in order"
        );
    }
    assert!(
        next_event(&mut on_a, Duration::from_millis(300))
            .await
            .is_none()
    );
    for i in 1..=N {
        let e = next_event(&mut on_b, Duration::from_secs(10))
            .await
            .expect("B's own client");
        assert_eq!(e.seq, Some(i));
    }
    // Idempotent publish across nodes: the same id on A's twin is a duplicate.
    let c = Backplane::connect(&redis.url, 5_000, Duration::from_secs(600))
        .await
        .unwrap();
    let third = hub(ServerConfig::new(Auth::Insecure).backplane(Some(Arc::new(c)))).await;
    let mut e: NewEvent = tick(0);
    e.id = Some("once".into());
    let first = hb.publish_async(e.clone()).await.unwrap();
    let again = third.hub().publish_async(e).await.unwrap();
    assert!(!first.duplicate && again.duplicate);
    assert_eq!(first.seq, again.seq);
    third.shutdown().await;
    b.shutdown().await;
}
