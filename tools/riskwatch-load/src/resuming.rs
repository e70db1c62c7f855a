//! The resuming client the `storm` and `soak` modes run by the thousand:
//! it connects and subscribes, resumes after the last sequence it
//! received, checks that every event after it arrives once and in order,
//! and on any loss of its connection backs off and reconnects exactly as
//! riskwatch's own client does (`client/backoff.rs`, `client/connection.rs`:
//! a delay drawn uniformly from [0, min(cap, initial × factorⁿ)], n
//! counting attempts since the last connection that stayed up a minute).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use futures_util::StreamExt;
use serde_json::Value;
use tokio::sync::{Notify, watch};
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message;

use tokio::task::JoinSet;

use crate::client::{ClientConfig, Position, open_since, wait_until};
use crate::sys::wall_ns;

/// Tells every client task to end.
#[derive(Clone)]
pub struct Stop(Arc<watch::Sender<bool>>, watch::Receiver<bool>);

impl Stop {
    pub fn new() -> Stop {
        let (tx, rx) = watch::channel(false);
        Stop(Arc::new(tx), rx)
    }

    pub fn stop(&self) {
        let _ = self.0.send(true);
    }

    pub fn is_stopped(&self) -> bool {
        *self.1.borrow()
    }

    pub async fn wait(&self) {
        let mut rx = self.1.clone();
        let _ = rx.wait_for(|s| *s).await;
    }
}

/// riskwatch's client's backoff (`client/backoff.rs`; a test holds the
/// two together).
pub const CLIENT_BACKOFF_MS: u64 = 500;
pub const CLIENT_BACKOFF_FACTOR: f64 = 1.5;
pub const CLIENT_BACKOFF_MAX_MS: u64 = 30_000;

/// A connection that stayed up this long resets the attempt count
/// (riskwatch's client).
pub const RESET_AFTER: Duration = Duration::from_secs(60);

/// The backoff: first ceiling, growth, cap.
#[derive(Debug, Clone, Copy)]
pub struct Backoff {
    pub initial: Duration,
    pub factor: f64,
    pub max: Duration,
}

impl Backoff {
    /// riskwatch's client's.
    pub fn client() -> Backoff {
        Backoff {
            initial: Duration::from_millis(CLIENT_BACKOFF_MS),
            factor: CLIENT_BACKOFF_FACTOR,
            max: Duration::from_millis(CLIENT_BACKOFF_MAX_MS),
        }
    }

    /// The ceiling for attempt `n` (0-based): min(max, initial × factorⁿ).
    pub fn ceiling(&self, n: u32) -> Duration {
        let factor = if self.factor.is_finite() && self.factor >= 1.0 {
            self.factor
        } else {
            1.0
        };
        let secs = self.initial.as_secs_f64() * factor.powi(n.min(64) as i32);
        let max = self.max.as_secs_f64();
        Duration::from_secs_f64(if secs.is_finite() { secs.min(max) } else { max })
    }
}

/// What one client saw.
#[derive(Debug, Default)]
pub struct Seen {
    /// Wall-clock ns of its first subscription completed after the hub
    /// went; 0 until then.
    pub back_ns: AtomicU64,
    /// Highest sequence received.
    pub last: AtomicU64,
    /// Sequences skipped (lost) and received again (repeated).
    pub lost: AtomicU64,
    pub repeated: AtomicU64,
    /// `gap` notices (the hub could not replay everything).
    pub gaps: AtomicU64,
    pub connects: AtomicU64,
    pub failed_attempts: AtomicU64,
}

/// What every client task shares.
pub struct Clients {
    pub seen: Vec<Seen>,
    /// Wall-clock ns at which the hub was stopped (`storm`); 0 before.
    pub went_ns: AtomicU64,
    /// Per client: notified to drop its connection (`soak`'s random
    /// reconnects); empty when nothing kicks.
    pub kicks: Vec<Notify>,
}

impl Clients {
    pub fn new(n: usize, kicks: bool) -> Clients {
        Clients {
            seen: (0..n).map(|_| Seen::default()).collect(),
            went_ns: AtomicU64::new(0),
            kicks: if kicks {
                (0..n).map(|_| Notify::new()).collect()
            } else {
                Vec::new()
            },
        }
    }

    /// A sum over every client.
    pub fn sum(&self, f: impl Fn(&Seen) -> &AtomicU64) -> u64 {
        self.seen.iter().map(|s| f(s).load(Ordering::Relaxed)).sum()
    }
}

/// A small generator for the jitter and for picking clients (no
/// dependency for that): xorshift64*, seeded per user.
pub struct Random(u64);

impl Random {
    pub fn new(seed: usize) -> Random {
        Random((seed as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ wall_ns())
    }

    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Uniform in [0, max].
    pub fn below(&mut self, max: Duration) -> Duration {
        let nanos = u64::try_from(max.as_nanos()).unwrap_or(u64::MAX);
        Duration::from_nanos(self.next() % nanos.saturating_add(1))
    }

    /// One of `0..n`.
    pub fn index(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

/// One client, until `stop`: connect and subscribe (after its last
/// position), read and check every event, and on any loss of the
/// connection (or a kick) back off and do it again.
pub async fn client(
    i: usize,
    cfg: Arc<ClientConfig>,
    run: Arc<Clients>,
    backoff: Backoff,
    stop: Stop,
) {
    let me = &run.seen[i];
    let kick = run.kicks.get(i);
    let mut jitter = Random::new(i);
    let mut pos: Option<Position> = None;
    let mut attempt = 0u32;
    while !stop.is_stopped() {
        let opened = tokio::time::timeout(cfg.connect_timeout, open_since(i, &cfg, pos.as_ref()));
        let opened = tokio::select! {
            r = opened => r,
            _ = stop.wait() => return,
        };
        match opened {
            Ok(Ok((mut ws, epoch, start))) => {
                let up = Instant::now();
                me.connects.fetch_add(1, Ordering::Relaxed);
                let went = run.went_ns.load(Ordering::Acquire);
                if went != 0 {
                    let _ = me.back_ns.compare_exchange(
                        0,
                        wall_ns(),
                        Ordering::AcqRel,
                        Ordering::Relaxed,
                    );
                }
                if pos.as_ref().is_some_and(|p| p.epoch != epoch) {
                    // A new epoch: the history was lost (the tool gives
                    // the hub a data directory, so this is a failure).
                    me.gaps.fetch_add(1, Ordering::Relaxed);
                }
                let seq = match &pos {
                    Some(p) if p.epoch == epoch => p.seq,
                    _ => start,
                };
                let at = pos.insert(Position { epoch, seq });
                loop {
                    let msg = tokio::select! {
                        m = ws.next() => m,
                        _ = stop.wait() => return,
                        // Dropped on purpose: the socket goes without a
                        // close frame, as a network would take it.
                        _ = async {
                            match kick {
                                Some(k) => k.notified().await,
                                None => std::future::pending().await,
                            }
                        } => break,
                    };
                    let text = match msg {
                        Some(Ok(Message::Text(t))) => t,
                        // Pings are answered by tungstenite on the next read.
                        Some(Ok(Message::Close(_))) | Some(Err(_)) | None => break,
                        Some(Ok(_)) => continue,
                    };
                    let Ok(v) = serde_json::from_str::<Value>(text.as_str()) else {
                        continue;
                    };
                    match v.get("op").and_then(Value::as_str) {
                        Some("event") => {
                            let Some(seq) = v.get("seq").and_then(Value::as_u64) else {
                                continue;
                            };
                            if seq <= at.seq {
                                me.repeated.fetch_add(1, Ordering::Relaxed);
                                continue;
                            }
                            me.lost.fetch_add(seq - at.seq - 1, Ordering::Relaxed);
                            at.seq = seq;
                            me.last.store(seq, Ordering::Release);
                        }
                        Some("gap") => {
                            me.gaps.fetch_add(1, Ordering::Relaxed);
                        }
                        _ => {}
                    }
                }
                if up.elapsed() >= RESET_AFTER {
                    attempt = 0;
                }
            }
            Ok(Err(_)) | Err(_) => {
                me.failed_attempts.fetch_add(1, Ordering::Relaxed);
            }
        }
        let wait = jitter.below(backoff.ceiling(attempt));
        attempt = attempt.saturating_add(1);
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = stop.wait() => return,
        }
    }
}

/// Starts every client at once (the hub takes them as fast as it can)
/// and waits until each has subscribed, or `deadline`; false then.
pub async fn start_all(
    cfg: &Arc<ClientConfig>,
    run: &Arc<Clients>,
    backoff: Backoff,
    stop: &Stop,
    deadline: Instant,
) -> (JoinSet<()>, bool) {
    let mut tasks = JoinSet::new();
    for i in 0..run.seen.len() {
        tasks.spawn(client(
            i,
            Arc::clone(cfg),
            Arc::clone(run),
            backoff,
            stop.clone(),
        ));
    }
    let all = wait_until(deadline, || {
        run.seen
            .iter()
            .all(|s| s.connects.load(Ordering::Relaxed) > 0)
    })
    .await;
    (tasks, all)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_to_its_cap_and_jitter_stays_under_it() {
        let b = Backoff {
            initial: Duration::from_secs(1),
            factor: 2.0,
            max: Duration::from_secs(30),
        };
        let secs: Vec<u64> = (0..8).map(|n| b.ceiling(n).as_secs()).collect();
        assert_eq!(secs, [1, 2, 4, 8, 16, 30, 30, 30]);
        assert_eq!(b.ceiling(u32::MAX), Duration::from_secs(30));
        let mut j = Random::new(7);
        let draws: Vec<Duration> = (0..1_000)
            .map(|_| j.below(Duration::from_secs(2)))
            .collect();
        assert!(draws.iter().all(|d| *d <= Duration::from_secs(2)));
        assert!(draws.iter().any(|d| *d < Duration::from_millis(500)));
        assert!(draws.iter().any(|d| *d > Duration::from_millis(1_500)));
    }

    #[test]
    fn the_clients_back_off_as_riskwatchs_client_does() {
        let product = riskwatch::client::BackoffConfig::default();
        assert_eq!(product.initial, Duration::from_millis(CLIENT_BACKOFF_MS));
        assert_eq!(product.factor, CLIENT_BACKOFF_FACTOR);
        assert_eq!(product.max, Duration::from_millis(CLIENT_BACKOFF_MAX_MS));
        assert_eq!(product.reset_after, RESET_AFTER);
    }
}
