//! Replaying the hub's history on request (`watch --since`, the native
//! `subscribe`'s `replay`), against the real hub on 127.0.0.1: everything
//! it holds, after a sequence number, from a time (given or back from
//! now), then live; a reconnect resumes from where the replay got rather
//! than replaying again; a pattern replays every matching channel but has
//! no sequence; a seed style and a bad value are refused with one line.

use std::time::Duration;

use riskwatch::client::{Client, Notice, Replay};
use riskwatch::server::NewEvent;
use serde_json::{Value, json};

use super::support::*;

fn ev(channel: &str, n: u64) -> NewEvent {
    serde_json::from_value(json!({"channel": channel, "type": "risk_alert",
        "severity": "critical", "data": {"n": n}}))
    .unwrap()
}

async fn publish(hub: &riskwatch::server::Hub, channel: &str, ns: std::ops::RangeInclusive<u64>) {
    for n in ns {
        hub.publish(ev(channel, n)).await.unwrap();
    }
}

/// The `n` of each JSON line `watch --json` printed, with its channel.
fn printed(run: &Run) -> Vec<(String, u64)> {
    run.stdout
        .lines()
        .map(|l| {
            let v: Value =
                serde_json::from_str(l).unwrap_or_else(|e| panic!("not a JSON line ({e}): {l:?}"));
            (
                v["channel"].as_str().unwrap_or_default().to_owned(),
                v["data"]["n"].as_u64().expect("an n"),
            )
        })
        .collect()
}

async fn watch(url: &str, subscribe: &str, since: &str, count: usize) -> Run {
    let count = count.to_string();
    riskwatch_cli(
        &[
            "watch",
            url,
            "--subscribe",
            subscribe,
            "--since",
            since,
            "--json",
            "--count",
            &count,
        ],
        None,
        None,
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_since_replays_all_after_a_sequence_and_from_a_time() {
    let hub = dev_hub().await;
    let h = hub.hub();
    publish(h, "sessions:d1", 1..=3).await;
    // Published times are the hub's: a moment between the two batches.
    tokio::time::sleep(Duration::from_millis(50)).await;
    let between = chrono::Utc::now();
    tokio::time::sleep(Duration::from_millis(50)).await;
    publish(h, "sessions:d1", 4..=6).await;
    publish(h, "sessions:other", 1..=2).await;
    let url = url(hub.addr(), "/api/v1/stream");
    let ns = |run: &Run| -> Vec<u64> {
        assert_eq!(run.code, Some(0), "stderr: {}", run.stderr);
        printed(run)
            .into_iter()
            .map(|(ch, n)| {
                assert_eq!(ch, "sessions:d1");
                n
            })
            .collect()
    };

    let all = watch(&url, "sessions:d1", "all", 6).await;
    assert_eq!(ns(&all), [1, 2, 3, 4, 5, 6]);
    let after = watch(&url, "sessions:d1", "4", 2).await;
    assert_eq!(ns(&after), [5, 6]);
    let from_time = watch(&url, "sessions:d1", &between.to_rfc3339(), 3).await;
    assert_eq!(ns(&from_time), [4, 5, 6]);
    let back = watch(&url, "sessions:d1", "10m", 6).await;
    assert_eq!(ns(&back), [1, 2, 3, 4, 5, 6]);
    hub.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_the_replay_come_live_events_and_a_reconnect_resumes_instead_of_replaying() {
    let hub = dev_hub().await;
    let h = hub.hub();
    publish(h, "sessions:d2", 1..=5).await;
    let proxy = Proxy::start(hub.addr()).await;
    let mut c = Client::connect(
        fast(url(proxy.addr, "/api/v1/stream"))
            .subscribe("sessions:d2")
            .replay(Some(Replay::AfterSeq(3))),
    )
    .unwrap();
    let mut got = Vec::new();
    for _ in 0..2 {
        let e = next_event(&mut c, Duration::from_secs(5))
            .await
            .expect("the replay");
        got.push(e.field("n"));
    }
    assert_eq!(got, [Some(json!(4)), Some(json!(5))]);
    publish(h, "sessions:d2", 6..=6).await;
    let live = next_event(&mut c, Duration::from_secs(5))
        .await
        .expect("live");
    assert_eq!(live.field("n"), Some(json!(6)));

    // Cut; published while away; the reconnect resumes after 6.
    proxy.cut();
    publish(h, "sessions:d2", 7..=7).await;
    let next = next_event(&mut c, Duration::from_secs(10))
        .await
        .expect("what came while away");
    assert_eq!(next.field("n"), Some(json!(7)));
    assert!(
        next_event(&mut c, Duration::from_millis(500))
            .await
            .is_none(),
        "nothing replayed twice"
    );
    drop(c);
    hub.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pattern_replays_every_matching_channel_but_has_no_sequence() {
    let hub = dev_hub().await;
    let h = hub.hub();
    publish(h, "sessions:p1", 1..=2).await;
    publish(h, "sessions:p2", 3..=3).await;
    publish(h, "hr:alerts", 9..=9).await;
    let url = url(hub.addr(), "/api/v1/stream");
    let run = watch(&url, "sessions:*", "all", 3).await;
    assert_eq!(run.code, Some(0), "stderr: {}", run.stderr);
    let mut got = printed(&run);
    got.sort();
    assert_eq!(
        got,
        [
            ("sessions:p1".to_owned(), 1),
            ("sessions:p1".to_owned(), 2),
            ("sessions:p2".to_owned(), 3)
        ]
    );

    let mut c = Client::connect(
        fast(url)
            .subscribe("sessions:*")
            .replay(Some(Replay::AfterSeq(1))),
    )
    .unwrap();
    match next_notice(&mut c, Duration::from_secs(5)).await {
        Some(Notice::ServerError { code, message }) => {
            assert_eq!(code, "bad_request");
            assert!(message.contains("pattern has no sequence"), "{message}");
        }
        other => panic!("expected the hub's refusal, got {other:?}"),
    }
    drop(c);
    hub.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_seed_style_or_a_bad_since_is_refused_with_one_line_and_exit_2() {
    let hub = dev_hub().await;
    let trading = url(hub.addr(), "/ws");
    let seed = watch(&trading, "sessions:d1", "all", 1).await;
    assert_eq!(seed.code, Some(2), "stderr: {}", seed.stderr);
    assert_eq!(seed.stderr.trim().lines().count(), 1, "{}", seed.stderr);
    assert!(
        seed.stderr.contains("only the native protocol can replay"),
        "{}",
        seed.stderr
    );
    let native = url(hub.addr(), "/api/v1/stream");
    for bad in ["soon", "3x", "10 minutes"] {
        let run = watch(&native, "sessions:d1", bad, 1).await;
        assert_eq!(run.code, Some(2), "{bad}: {}", run.stderr);
        assert_eq!(run.stderr.trim().lines().count(), 1, "{}", run.stderr);
        assert!(run.stderr.contains("--since"), "{}", run.stderr);
    }
    hub.shutdown().await;
}
