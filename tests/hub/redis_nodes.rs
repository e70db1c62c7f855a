//! Two hubs sharing channels through a real redis-server: a client on hub A
//! receives what is published on hub B, and after A dies it resumes on B
//! without losing or repeating anything.

use std::sync::Arc;
use std::time::Duration;

use riskwatch::client::Client;
use riskwatch::server::{Auth, HubLimits, NewEvent, RedisBroker, Server, ServerConfig};
use serde_json::json;

use super::support::*;

/// A Redis broker keeping 5,000 ordinary events per channel.
async fn broker(redis: &Redis) -> Arc<RedisBroker> {
    let limits = HubLimits::default().history_len(5_000);
    Arc::new(RedisBroker::connect(&redis.url, limits).await.unwrap())
}

async fn node(redis: &Redis) -> Server {
    hub(ServerConfig::new(Auth::Insecure).redis(Some(broker(redis).await))).await
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
        hb.publish(tick(i)).await.unwrap();
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
        hb.publish(tick(i)).await.unwrap();
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
    let third = hub(ServerConfig::new(Auth::Insecure).redis(Some(broker(&redis).await))).await;
    let mut e: NewEvent = tick(0);
    e.id = Some("once".into());
    let first = hb.publish(e.clone()).await.unwrap();
    let again = third.hub().publish(e).await.unwrap();
    assert!(!first.duplicate && again.duplicate);
    assert_eq!(first.seq, again.seq);
    third.shutdown().await;
    b.shutdown().await;
}

/// Resumes while another node publishes without pause: each resume
/// registers with the fan-out, then recovers from the node's copy of
/// Redis, so every event arrives once, in order, across the drops.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resumes_during_a_burst_on_another_node_lose_and_repeat_nothing() {
    const N: u64 = 3_000;
    let redis = Redis::start().await;
    let a = node(&redis).await;
    let b = node(&redis).await;
    let proxy = Proxy::start(a.addr()).await;
    let mut c = Client::connect(fast(url(proxy.addr, "/api/v1/stream")).subscribe("t")).unwrap();
    let ha = Arc::clone(a.hub());
    assert!(
        until(Duration::from_secs(5), || ha
            .stats()
            .connections_by_channel
            .get("t")
            == Some(&1))
        .await
    );
    let hb = Arc::clone(b.hub());
    let publisher = tokio::spawn(async move {
        for i in 1..=N {
            hb.publish(tick(i)).await.unwrap();
            if i % 200 == 0 {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }
    });
    let cutter = tokio::spawn(async move {
        for _ in 0..4 {
            tokio::time::sleep(Duration::from_millis(60)).await;
            proxy.cut();
        }
        proxy
    });
    for i in 1..=N {
        let e = next_event(&mut c, Duration::from_secs(20))
            .await
            .unwrap_or_else(|| panic!("stalled at {i}"));
        assert_eq!(
            (e.seq, e.field("i")),
            (Some(i), Some(json!(i))),
            "exactly once, in order"
        );
    }
    assert!(
        next_event(&mut c, Duration::from_millis(300))
            .await
            .is_none()
    );
    publisher.await.unwrap();
    let _proxy = cutter.await.unwrap();
    assert!(c.stats().connects >= 3, "the cuts forced resumes");
    a.shutdown().await;
    b.shutdown().await;
}

/// Subscribing to names nobody publishes on costs a hub on Redis nothing
/// lasting: no local copy, and in Redis only each name's epoch, expiring;
/// the first publish makes the channel (and its epoch) permanent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscribing_to_unpublished_names_keeps_nothing_for_good() {
    let redis = Redis::start().await;
    let a = node(&redis).await;
    let mut cfg = fast(url(a.addr(), "/api/v1/stream"));
    for i in 0..40 {
        cfg = cfg.subscribe(format!("junk:{i}"));
    }
    let _c = Client::connect(cfg).unwrap();
    let ha = Arc::clone(a.hub());
    assert!(
        until(Duration::from_secs(20), || ha
            .stats()
            .connections_by_channel
            .len()
            == 40)
        .await
    );
    assert_eq!(ha.broker().logs().len(), 0, "no local copies");
    let mut conn = redis::Client::open(redis.url.as_str())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let c2 = conn.clone();
    let ttl = |key: &'static str| {
        let mut conn = c2.clone();
        async move {
            redis::cmd("TTL")
                .arg(key)
                .query_async::<i64>(&mut conn)
                .await
                .unwrap()
        }
    };
    assert!(
        ttl("rw:ch:{junk:7}:epoch").await > 0,
        "an early epoch expires"
    );
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg("rw:ch:*")
        .query_async(&mut conn)
        .await
        .unwrap();
    assert!(keys.iter().all(|k| k.ends_with(":epoch")), "{keys:?}");
    let mut e = tick(1);
    e.channel = "junk:7".into();
    ha.publish(e).await.unwrap();
    assert_eq!(ttl("rw:ch:{junk:7}:epoch").await, -1, "published: for good");
    assert!(until(Duration::from_secs(5), || ha.broker().logs().len() == 1).await);
    a.shutdown().await;
}

/// Redis killed with `-9` and restarted under two hubs: publishing works
/// again on both within seconds (the command connection reconnects by
/// itself; it used to stay broken, every publish answered 503, found by
/// `scripts/faults.sh redis`), and a client on the other node receives
/// everything published before and after, exactly once, in order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publishing_works_again_after_redis_restarts_and_nothing_is_lost() {
    let mut redis = Redis::start().await;
    let a = node(&redis).await;
    let b = node(&redis).await;
    let mut on_b = Client::connect(fast(url(b.addr(), "/api/v1/stream")).subscribe("t")).unwrap();
    let hb = Arc::clone(b.hub());
    assert!(
        until(Duration::from_secs(5), || hb
            .stats()
            .connections_by_channel
            .get("t")
            == Some(&1))
        .await
    );
    for i in 1..=3 {
        a.hub().publish(tick(i)).await.unwrap();
    }
    redis.restart(Duration::from_millis(500)).await;
    // The first command after the break may fail (503 to a publisher); the
    // next ones reconnect.
    let mut i = 4;
    for hub in [a.hub(), b.hub(), a.hub()] {
        let published = tokio::time::timeout(Duration::from_secs(10), async {
            loop {
                if hub.publish(tick(i)).await.is_ok() {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        })
        .await;
        assert!(
            published.is_ok(),
            "publishing never came back for event {i}"
        );
        i += 1;
    }
    for want in 1..i {
        let e = next_event(&mut on_b, Duration::from_secs(10))
            .await
            .unwrap_or_else(|| panic!("the client on B stalled at {want}"));
        assert_eq!((e.seq, e.field("i")), (Some(want), Some(json!(want))));
    }
    assert!(
        next_event(&mut on_b, Duration::from_millis(300))
            .await
            .is_none()
    );
    a.shutdown().await;
    b.shutdown().await;
}
