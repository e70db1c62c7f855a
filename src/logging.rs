//! Log filtering shared by the binaries: whatever `RUST_LOG` asks for, the
//! libraries that would print a connection's secrets are held below the
//! level where they do. tungstenite logs the whole upgrade request (its
//! `Authorization` header and `?token=`) at trace; hyper and reqwest log
//! request lines and headers at trace too.

use tracing_subscriber::EnvFilter;
use tracing_subscriber::filter::Directive;

/// The targets capped, and the most each may log.
const CAPS: &[&str] = &[
    "tungstenite=debug",
    "tokio_tungstenite=debug",
    "hyper=info",
    "hyper_util=info",
    "reqwest=info",
    "h2=info",
    "rustls=info",
];

/// `filter` with the secret-printing targets capped (a later directive for
/// the same target replaces an earlier one, and a target directive beats a
/// global `trace`).
pub fn without_secrets(mut filter: EnvFilter) -> EnvFilter {
    for cap in CAPS {
        if let Ok(d) = cap.parse::<Directive>() {
            filter = filter.add_directive(d);
        }
    }
    filter
}
