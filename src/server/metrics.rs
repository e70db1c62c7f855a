//! The hub's own measurements for `/metrics` beyond its counters: latency
//! and duration histograms and the counts of resumes, replays, gaps and
//! closes, kept from the moment the hub starts (prometheus-client
//! families, registered into each scrape's registry by `http.rs`).
//!
//! Observing costs a lock on the histogram, so the hot path observes once
//! per event fanned out and once per batch a connection's task writes,
//! never once per event per connection (docs/PERFORMANCE.md, "Metrics").

use chrono::{DateTime, Utc};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

/// Latency buckets, seconds: 100 µs to 30 s.
const LATENCY: [f64; 17] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 10.0, 30.0,
];

/// Connection lifetime buckets, seconds: 1 s to 3 days.
const LIFETIME: [f64; 10] = [
    1.0, 10.0, 60.0, 300.0, 900.0, 3600.0, 14_400.0, 43_200.0, 86_400.0, 259_200.0,
];

/// Histograms and counters that live as long as the hub.
#[derive(Debug, Clone)]
pub struct Metrics {
    /// From an event's publish to its frame going to subscribers' sockets.
    pub delivery: Histogram,
    /// A publish, from the hub taking it to its being stored and fanned out.
    pub publish: Histogram,
    /// How long connections lasted, observed when they end.
    pub connection: Histogram,
    /// Native subscriptions resumed from a position (`since`).
    pub resumes: Counter,
    /// Native subscriptions that asked for history (`replay`).
    pub replays: Counter,
    /// Gap notices: a resume or replay that history could not fully serve.
    pub gaps: Counter,
    /// Connections closed with 1013 because their queue overflowed.
    pub slow_closes: Counter,
    /// Connections closed because their peer stopped reading.
    pub stalled_closes: Counter,
}

impl Default for Metrics {
    fn default() -> Metrics {
        Metrics {
            delivery: Histogram::new(LATENCY),
            publish: Histogram::new(LATENCY),
            connection: Histogram::new(LIFETIME),
            resumes: Counter::default(),
            replays: Counter::default(),
            gaps: Counter::default(),
            slow_closes: Counter::default(),
            stalled_closes: Counter::default(),
        }
    }
}

/// Seconds from `then` to now (0 for a time ahead of this clock: an event
/// from another hub whose clock runs ahead).
pub fn seconds_since(then: DateTime<Utc>) -> f64 {
    let d = Utc::now().signed_duration_since(then);
    d.num_microseconds()
        .map_or(f64::MAX, |us| us.max(0) as f64 / 1e6)
}

impl Metrics {
    /// Adds every family to a scrape's registry (the families are shared:
    /// cloning one clones a handle).
    pub fn register(&self, reg: &mut Registry) {
        reg.register(
            "delivery_latency_seconds",
            "From an event's publish to its frame going to subscribers' sockets: \
             one observation per event fanned out (when the last live subscriber's \
             socket took it) and one per batch a connection's task wrote from its \
             queue (its oldest event)",
            self.delivery.clone(),
        );
        reg.register(
            "publish_latency_seconds",
            "A publish, from the hub taking it to its being stored and fanned out",
            self.publish.clone(),
        );
        reg.register(
            "connection_duration_seconds",
            "How long WebSocket connections lasted, observed when they end",
            self.connection.clone(),
        );
        reg.register(
            "resumes",
            "Native subscriptions resumed from a position (since)",
            self.resumes.clone(),
        );
        reg.register(
            "replays",
            "Native subscriptions that asked for history (replay)",
            self.replays.clone(),
        );
        reg.register(
            "gaps",
            "Gap notices sent: history could not fully serve a resume or replay",
            self.gaps.clone(),
        );
        reg.register(
            "slow_consumer_closes",
            "Connections closed with 1013 because their send queue overflowed",
            self.slow_closes.clone(),
        );
        reg.register(
            "stalled_closes",
            "Connections closed because their peer stopped reading",
            self.stalled_closes.clone(),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_time_ahead_of_this_clock_counts_as_no_delay() {
        let ahead = Utc::now() + chrono::Duration::seconds(5);
        assert_eq!(seconds_since(ahead), 0.0);
        let behind = Utc::now() - chrono::Duration::milliseconds(1500);
        let s = seconds_since(behind);
        assert!((1.5..2.5).contains(&s), "{s}");
    }
}
