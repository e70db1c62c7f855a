//! The compliance engagement style (seed 002): `/ws/engagement` (every
//! client the token's scope allows) and `/ws/client/{client_id}/engagement`,
//! the JWT in `?token=`, messages `{"type","timestamp","client_id","data"}`
//! (`engagement_update`, `interaction_update`, `alert`), client commands
//! `{"type":"subscribe","client_id"}` and a timestamped `ping`. On the hub
//! a client's events travel on `client:{id}` or `msp:{msp}/client:{id}`.

use serde_json::Value;

use super::Severity;
use super::encode::{Outgoing, typed_with};

/// The message types this style defines.
pub const KINDS: &[&str] = &["engagement_update", "interaction_update", "alert"];

pub(super) fn default_severity(kind: &str) -> Option<Severity> {
    (kind == "alert").then_some(Severity::Warning)
}

pub(super) fn serves(path: &str) -> bool {
    path.ends_with("/ws/engagement")
        || (path.contains("/ws/client/") && path.ends_with("/engagement"))
}

/// The client's keep-alive message.
pub fn ping(now_rfc3339: &str) -> String {
    format!(
        r#"{{"type":"ping","timestamp":{}}}"#,
        Value::from(now_rfc3339)
    )
}

/// The client's subscribe command per channel (`client:c1` or `c1`).
pub fn subscribe(channels: &[String]) -> Vec<String> {
    channels
        .iter()
        .map(|c| {
            let id = c.strip_prefix("client:").unwrap_or(c);
            serde_json::json!({"type": "subscribe", "client_id": id}).to_string()
        })
        .collect()
}

/// The server's greeting: the connection's scope (`msp` or `client`), and
/// the user's role and client when known. Optional fields of the seed's
/// message interface are left out when unknown, never sent as null.
pub fn connected(scope: &str, role: Option<&str>, client: Option<&str>, ts: &str) -> String {
    let mut hello = serde_json::json!({"type": "connection", "status": "connected",
        "scope": scope, "timestamp": ts});
    if let Some(role) = role {
        hello["user_role"] = Value::from(role);
    }
    if let Some(c) = client {
        hello["client_id"] = Value::from(c);
    }
    hello.to_string()
}

/// The server's confirmation of a client's `subscribe`.
pub fn subscribed(client: &str, ts: &str) -> String {
    serde_json::json!({"type": "connection", "status": "subscribed",
        "client_id": client, "timestamp": ts})
    .to_string()
}

/// The client id of a hub channel carrying a client's events:
/// `client:c1` or `msp:m1/client:c1`.
pub fn client_of(channel: &str) -> Option<&str> {
    channel
        .rsplit('/')
        .next()
        .and_then(|last| last.strip_prefix("client:"))
}

/// An event as this style's server sends it, its client named when its
/// channel names one (the seed's messages carry no event id).
pub fn encode(ev: &Outgoing<'_>) -> String {
    typed_with(ev, client_of(ev.channel).map(|c| ("client_id", c)))
}
