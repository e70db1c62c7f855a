//! Zero loss of critical alerts on resume: a client away for longer than
//! the ordinary history gets every critical and emergency event it missed,
//! exactly once and in order, with a gap notice that says only ordinary
//! events are gone — in memory, across a `--data-dir` restart, and across
//! hubs sharing a real redis-server. And a hub restarted without its
//! history (a new epoch) loses none of what it published after the restart.

use std::sync::Arc;
use std::time::Duration;

use riskwatch::client::{Client, ClientUpdate, Notice};
use riskwatch::server::{Auth, Hub, HubLimits, NewEvent, RedisBroker, Server, ServerConfig};
use serde_json::json;

use super::support::*;

const CH: &str = "sessions:demo";
/// Ordinary events kept per channel in these tests.
const KEEP: usize = 50;

/// What the tests publish: every `every`-th event an emergency stop.
#[derive(Default)]
struct Model {
    /// (seq, critical) of everything published on the channel.
    published: Vec<(u64, bool)>,
}

impl Model {
    async fn publish(&mut self, hub: &Hub, n: u64, every: u64) {
        for _ in 0..n {
            let i = self.published.len() as u64 + 1;
            let critical = every > 0 && i % every == 0;
            let ev: NewEvent = if critical {
                serde_json::from_value(json!({"channel": CH, "type": "session_status",
                    "severity": "emergency",
                    "data": {"i": i, "sessionId": "S1", "status": "emergency_stopped"}}))
            } else {
                serde_json::from_value(json!({"channel": CH, "type": "tick", "data": {"i": i}}))
            }
            .unwrap();
            let p = hub.publish(ev).await.unwrap();
            assert_eq!(p.seq, i, "the model follows the hub's sequence");
            self.published.push((i, critical));
        }
    }

    /// What a client that last saw `after` gets back: every critical after
    /// it and the last KEEP ordinary events; and the gap's `oldest`.
    fn expected(&self, after: u64) -> (Vec<u64>, Option<u64>) {
        let ordinary: Vec<u64> = self
            .published
            .iter()
            .filter(|(_, c)| !c)
            .map(|(s, _)| *s)
            .collect();
        let kept_from = ordinary.len().saturating_sub(KEEP);
        let trimmed = if kept_from == 0 {
            0
        } else {
            ordinary[kept_from - 1]
        };
        let kept: Vec<u64> = self
            .published
            .iter()
            .filter(|(s, c)| *s > after && (*c || *s > trimmed))
            .map(|(s, _)| *s)
            .collect();
        (kept, (after < trimmed).then_some(trimmed + 1))
    }
}

fn limits() -> HubLimits {
    HubLimits::default().history_len(KEEP)
}

/// Reads until `want` events came; returns their sequences, whether each
/// was critical, and the notices, in arrival order; then checks nothing
/// more follows.
async fn collect(c: &mut Client, want: usize) -> (Vec<u64>, Vec<String>, Vec<Notice>) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let (mut seqs, mut order, mut notices) = (Vec::new(), Vec::new(), Vec::new());
    while seqs.len() < want {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        match tokio::time::timeout(left, c.next()).await {
            Ok(Some(ClientUpdate::Event(e))) => {
                let seq = e.seq.expect("native events carry a sequence");
                assert_eq!(e.field("i"), Some(json!(seq)), "payload of {seq}");
                seqs.push(seq);
                order.push(format!("event {seq}"));
            }
            Ok(Some(ClientUpdate::Notice(n))) => {
                order.push("notice".into());
                notices.push(n);
            }
            Ok(Some(ClientUpdate::State(_))) => {}
            Ok(None) | Err(_) => panic!("stalled after {seqs:?} (notices {notices:?})"),
        }
    }
    assert!(
        next_event(c, Duration::from_millis(300)).await.is_none(),
        "nothing beyond what was expected (no duplicates)"
    );
    (seqs, order, notices)
}

async fn subscribed(hub: &Hub, n: usize) {
    assert!(
        until(Duration::from_secs(10), || hub
            .stats()
            .connections_by_channel
            .get(CH)
            == Some(&n))
        .await,
        "the client subscribes"
    );
}

/// Takes the client off (no close frame, new connections refused).
async fn away(proxy: &Proxy, hub: &Hub) {
    proxy.set_open(false);
    proxy.cut();
    assert!(
        until(Duration::from_secs(10), || hub.stats().total_connections
            == 0)
        .await
    );
}

fn assert_resumed(
    got: (Vec<u64>, Vec<String>, Vec<Notice>),
    expected: (Vec<u64>, Option<u64>),
    requested: u64,
) {
    let (seqs, order, notices) = got;
    assert_eq!(
        seqs, expected.0,
        "every critical once, in order, then the kept tail"
    );
    let oldest = expected.1.expect("the test publishes past the history");
    assert_eq!(
        notices,
        [Notice::Gap {
            channel: CH.into(),
            requested,
            oldest,
            criticals_kept: true
        }]
    );
    assert_eq!(order[0], "notice", "the gap is announced before the replay");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn criticals_outlive_the_ordinary_history_in_memory() {
    let server = hub(ServerConfig::new(Auth::Insecure).history(limits())).await;
    let h = Arc::clone(server.hub());
    let proxy = Proxy::start(server.addr()).await;
    let mut c = Client::connect(fast(url(proxy.addr, "/api/v1/stream")).subscribe(CH)).unwrap();
    subscribed(&h, 1).await;
    let mut m = Model::default();
    m.publish(&h, 10, 0).await;
    assert_eq!(collect(&mut c, 10).await.0, (1..=10).collect::<Vec<_>>());

    // Away for twenty times the ordinary history, one emergency in 37.
    away(&proxy, &h).await;
    m.publish(&h, 1_000, 37).await;
    proxy.set_open(true);
    let expected = m.expected(10);
    assert_eq!(expected.0.iter().filter(|s| **s % 37 == 0).count(), 27);
    assert_resumed(collect(&mut c, expected.0.len()).await, expected, 10);

    // And live delivery goes on.
    m.publish(&h, 3, 0).await;
    assert_eq!(collect(&mut c, 3).await.0, [1011, 1012, 1013]);
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn criticals_survive_a_hub_restart_with_a_data_dir() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = || {
        ServerConfig::new(Auth::Insecure)
            .history(limits())
            .data_dir(Some(dir.path().to_path_buf()))
    };
    let first = Server::start(bind(0), cfg()).unwrap();
    let h1 = Arc::clone(first.hub());
    let proxy = Proxy::start(first.addr()).await;
    let mut c = Client::connect(fast(url(proxy.addr, "/api/v1/stream")).subscribe(CH)).unwrap();
    subscribed(&h1, 1).await;
    let mut m = Model::default();
    m.publish(&h1, 5, 0).await;
    assert_eq!(collect(&mut c, 5).await.0, [1, 2, 3, 4, 5]);

    away(&proxy, &h1).await;
    m.publish(&h1, 400, 29).await;
    first.shutdown().await;
    let second = Server::start(bind(0), cfg()).unwrap();
    let h2 = Arc::clone(second.hub());
    m.publish(&h2, 400, 31).await;
    proxy.point_to(second.addr());
    proxy.set_open(true);
    let expected = m.expected(5);
    assert_resumed(collect(&mut c, expected.0.len()).await, expected, 5);
    second.shutdown().await;

    // A third start reads the compacted files: same history, same answer.
    let third = Server::start(bind(0), cfg()).unwrap();
    let mut again =
        Client::connect(fast(url(third.addr(), "/api/v1/stream")).subscribe(CH)).unwrap();
    subscribed(third.hub(), 1).await;
    third
        .hub()
        .publish(
            serde_json::from_value(json!({"channel": CH, "type": "tick",
        "data": {"i": 806}}))
            .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(
        collect(&mut again, 1).await.0,
        [806],
        "the sequence goes on"
    );
    third.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn criticals_survive_across_hubs_on_redis() {
    let redis = Redis::start().await;
    let node = || async {
        let bp = RedisBroker::connect(&redis.url, limits()).await.unwrap();
        hub(ServerConfig::new(Auth::Insecure)
            .history(limits())
            .redis(Some(Arc::new(bp))))
        .await
    };
    let (a, b) = (node().await, node().await);
    let (ha, hb) = (Arc::clone(a.hub()), Arc::clone(b.hub()));
    let proxy = Proxy::start(a.addr()).await;
    let mut c = Client::connect(fast(url(proxy.addr, "/api/v1/stream")).subscribe(CH)).unwrap();
    subscribed(&ha, 1).await;
    let mut m = Model::default();
    m.publish(&hb, 5, 0).await;
    assert_eq!(collect(&mut c, 5).await.0, [1, 2, 3, 4, 5]);

    // Away from A; B publishes; A dies; the client comes back on B, which
    // has never held the channel before.
    away(&proxy, &ha).await;
    m.publish(&hb, 600, 23).await;
    a.shutdown().await;
    let c_node = node().await;
    m.publish(c_node.hub(), 100, 7).await;
    proxy.point_to(c_node.addr());
    proxy.set_open(true);
    let expected = m.expected(5);
    assert_resumed(collect(&mut c, expected.0.len()).await, expected, 5);
    b.shutdown().await;
    c_node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hub_restarted_without_history_loses_nothing_it_published_after() {
    let first = hub(ServerConfig::new(Auth::Insecure)).await;
    let proxy = Proxy::start(first.addr()).await;
    let mut c = Client::connect(fast(url(proxy.addr, "/api/v1/stream")).subscribe(CH)).unwrap();
    subscribed(first.hub(), 1).await;
    let mut m = Model::default();
    m.publish(first.hub(), 20, 0).await;
    assert_eq!(collect(&mut c, 20).await.0, (1..=20).collect::<Vec<_>>());

    // Restarted in memory: a new epoch, sequences from 1 again.
    away(&proxy, first.hub()).await;
    first.shutdown().await;
    let second = hub(ServerConfig::new(Auth::Insecure)).await;
    let mut m2 = Model::default();
    m2.publish(second.hub(), 30, 10).await;
    proxy.point_to(second.addr());
    proxy.set_open(true);
    let (seqs, order, notices) = collect(&mut c, 30).await;
    assert_eq!(
        seqs,
        (1..=30).collect::<Vec<_>>(),
        "the new epoch's events are new"
    );
    assert_eq!(order[0], "notice");
    assert_eq!(
        notices,
        [Notice::Gap {
            channel: CH.into(),
            requested: 20,
            oldest: 1,
            criticals_kept: false
        }]
    );
    // A second drop in the new epoch resumes there, without repeats.
    proxy.cut();
    m2.publish(second.hub(), 5, 0).await;
    assert_eq!(collect(&mut c, 5).await.0, [31, 32, 33, 34, 35]);
    assert_eq!(c.stats().duplicates, 0);
    second.shutdown().await;
}
