//! Log filtering shared by the binaries: whatever `RUST_LOG` asks for, the
//! libraries that would print a connection's secrets are held below the
//! level where they do. tungstenite logs the whole upgrade request (its
//! `Authorization` header and `?token=`) at trace; hyper and reqwest log
//! request lines and headers at trace too.
//!
//! The caps only lower: a target the user's filter leaves off stays off
//! (an `EnvFilter` directive per capped target would switch it on).

use tracing::level_filters::LevelFilter;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::filter::{FilterExt, Targets};
use tracing_subscriber::layer::Filter;
use tracing_subscriber::registry::LookupSpan;

/// The targets capped, and the most each may log.
const CAPS: &[(&str, LevelFilter)] = &[
    ("tungstenite", LevelFilter::DEBUG),
    ("tokio_tungstenite", LevelFilter::DEBUG),
    ("hyper", LevelFilter::INFO),
    ("hyper_util", LevelFilter::INFO),
    ("reqwest", LevelFilter::INFO),
    ("h2", LevelFilter::INFO),
    ("rustls", LevelFilter::INFO),
];

/// The caps alone: everything passes but the capped targets above their
/// level.
fn caps() -> Targets {
    CAPS.iter().fold(
        Targets::new().with_default(LevelFilter::TRACE),
        |t, (target, level)| t.with_target(*target, *level),
    )
}

/// `filter` (the user's `RUST_LOG`, or a binary's default) with the
/// secret-printing targets capped, as a per-layer filter: an event is
/// logged when `filter` wants it and its target is within its cap.
pub fn without_secrets<S>(filter: EnvFilter) -> impl Filter<S> + Send + Sync + 'static
where
    S: tracing::Subscriber + for<'a> LookupSpan<'a>,
{
    filter.and(caps())
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use tracing_subscriber::Layer;
    use tracing_subscriber::layer::{Context, SubscriberExt};

    use super::*;

    /// Records each event's target and level.
    #[derive(Clone, Default)]
    struct Seen(Arc<Mutex<Vec<String>>>);

    impl<S: tracing::Subscriber> Layer<S> for Seen {
        fn on_event(&self, e: &tracing::Event<'_>, _: Context<'_, S>) {
            let m = e.metadata();
            self.0
                .lock()
                .unwrap()
                .push(format!("{}:{}", m.target(), m.level()));
        }
    }

    fn logged(filter: &str) -> Vec<String> {
        let seen = Seen::default();
        let sub = tracing_subscriber::registry().with(
            seen.clone()
                .with_filter(without_secrets(EnvFilter::new(filter))),
        );
        tracing::subscriber::with_default(sub, || {
            tracing::trace!(target: "tungstenite", "t");
            tracing::debug!(target: "tungstenite", "d");
            tracing::info!(target: "hyper", "i");
            tracing::debug!(target: "hyper", "d");
            tracing::warn!(target: "riskwatch", "w");
            tracing::debug!(target: "riskwatch", "d");
        });
        seen.0.lock().unwrap().clone()
    }

    #[test]
    fn caps_lower_and_never_switch_a_target_on() {
        // The CLI's default: only riskwatch's warnings.
        assert_eq!(logged("riskwatch=warn"), ["riskwatch:WARN"]);
        // The desktop's default: info everywhere, tungstenite's debug off.
        assert_eq!(logged("info"), ["hyper:INFO", "riskwatch:WARN"]);
        // Everything asked: the capped targets stop at their caps.
        assert_eq!(
            logged("trace"),
            [
                "tungstenite:DEBUG",
                "hyper:INFO",
                "riskwatch:WARN",
                "riskwatch:DEBUG"
            ]
        );
        assert_eq!(logged("tungstenite=trace"), ["tungstenite:DEBUG"]);
    }
}
