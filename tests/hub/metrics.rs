//! `/metrics` beyond counters, scraped over HTTP from the real hub with an
//! operator's token: publish and delivery latency histograms, connection
//! durations, queue depths, resumes, replays and gaps move with what
//! clients did. Slow-consumer and stalled closes are asserted where those
//! are provoked (`limits.rs`).

use std::collections::HashMap;
use std::time::Duration;

use riskwatch::client::{Client, Notice, Replay};
use riskwatch::server::{Auth, HubLimits, NewEvent, ServerConfig};
use serde_json::json;

use super::support::*;

/// Every sample line of an OpenMetrics text, by name with its labels.
async fn scrape(addr: std::net::SocketAddr, token: &str) -> HashMap<String, f64> {
    let res = http_client()
        .get(format!("http://{addr}/metrics"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let text = res.text().await.unwrap();
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(|l| {
            let (name, value) = l.rsplit_once(' ').expect("name value");
            (name.to_owned(), value.parse().expect("a number"))
        })
        .collect()
}

fn get(m: &HashMap<String, f64>, name: &str) -> f64 {
    *m.get(name)
        .unwrap_or_else(|| panic!("{name} missing from {:?}", m.keys().collect::<Vec<_>>()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn latency_durations_queues_resumes_replays_and_gaps_are_measured() {
    let hub = hub(ServerConfig::new(Auth::hs256(SECRET).unwrap())
        .history(HubLimits::default().history_len(3)))
    .await;
    let h = std::sync::Arc::clone(hub.hub());
    let ops = token("ops", &["*"], false);
    let before = scrape(hub.addr(), &ops).await;
    for name in [
        "riskwatch_hub_delivery_latency_seconds_count",
        "riskwatch_hub_publish_latency_seconds_count",
        "riskwatch_hub_connection_duration_seconds_count",
        "riskwatch_hub_resumes_total",
        "riskwatch_hub_replays_total",
        "riskwatch_hub_gaps_total",
        "riskwatch_hub_slow_consumer_closes_total",
        "riskwatch_hub_stalled_closes_total",
        "riskwatch_hub_queued_events",
        "riskwatch_hub_largest_queue",
    ] {
        assert_eq!(get(&before, name), 0.0, "{name} before anything happened");
    }

    // A live reader through a proxy that can cut it.
    let proxy = Proxy::start(hub.addr()).await;
    let reader = token("reader", &["sessions:*"], false);
    let mut live = Client::connect(
        fast(url(proxy.addr, "/api/v1/stream"))
            .token(Some(riskwatch::client::Token::new(reader.clone())))
            .subscribe("sessions:m"),
    )
    .unwrap();
    subscriptions(&h, 1).await;
    let ev = |n: u64| -> NewEvent {
        serde_json::from_value(
            json!({"channel": "sessions:m", "type": "risk_alert", "data": {"n": n}}),
        )
        .unwrap()
    };
    for n in 1..=5 {
        h.publish(ev(n)).await.unwrap();
        next_event(&mut live, Duration::from_secs(5))
            .await
            .expect("delivered live");
        // Apart, so each goes out at once rather than as a burst.
        tokio::time::sleep(Duration::from_millis(30)).await;
    }
    // Cut: the reader comes back and resumes from 5.
    proxy.cut();
    h.publish(ev(6)).await.unwrap();
    next_event(&mut live, Duration::from_secs(10))
        .await
        .expect("resumed");

    // A replay of everything after 1, of which the hub keeps only 3.
    let mut replaying = Client::connect(
        fast(url(hub.addr(), "/api/v1/stream"))
            .token(Some(riskwatch::client::Token::new(reader)))
            .subscribe("sessions:m")
            .replay(Some(Replay::AfterSeq(1))),
    )
    .unwrap();
    match next_notice(&mut replaying, Duration::from_secs(5)).await {
        Some(Notice::Gap { requested: 1, .. }) => {}
        other => panic!("expected a gap after 1, got {other:?}"),
    }
    drop(replaying);
    assert!(
        until(Duration::from_secs(5), || h.stats().total_connections == 1).await,
        "the replaying client left"
    );

    let m = scrape(hub.addr(), &ops).await;
    assert_eq!(get(&m, "riskwatch_hub_publish_latency_seconds_count"), 6.0);
    let delivered = get(&m, "riskwatch_hub_delivery_latency_seconds_count");
    assert!(delivered >= 5.0, "{delivered} delivery observations");
    let slowest = get(&m, "riskwatch_hub_delivery_latency_seconds_sum");
    assert!(slowest > 0.0 && slowest < 30.0, "{slowest} s in all");
    assert!(
        get(
            &m,
            "riskwatch_hub_delivery_latency_seconds_bucket{le=\"30.0\"}"
        ) >= 5.0,
        "buckets are cumulative"
    );
    // The cut connection and the replaying one ended.
    assert_eq!(
        get(&m, "riskwatch_hub_connection_duration_seconds_count"),
        2.0
    );
    assert_eq!(get(&m, "riskwatch_hub_resumes_total"), 1.0);
    assert_eq!(get(&m, "riskwatch_hub_replays_total"), 1.0);
    assert_eq!(get(&m, "riskwatch_hub_gaps_total"), 1.0);
    assert_eq!(get(&m, "riskwatch_hub_queued_events"), 0.0);
    drop(live);
    hub.shutdown().await;
}
