//! The WebSocket endpoints the hub serves, one per backend style plus the
//! native one: which channels each connection starts on, how its events are
//! rendered, what it says on connect, and how it answers client commands.
//! The channel layout is documented in docs/PROTOCOL.md ("The hub").

use serde_json::Value;

use super::auth::Identity;
use super::event::Wire;
use super::grants;
use crate::protocol::compliance::client_of as compliance_client;
use crate::protocol::{self, Style, compliance, hr, native, trading};

/// One endpoint, parsed from the request path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoint {
    /// `/api/v1/stream`: the native protocol.
    Native,
    /// `/ws/risk-assessment/{assessment_id}` ← channel `risk-assessment:{id}`.
    Merchant { assessment: String },
    /// `/api/v1/ws/dashboard` ← channel `dashboard`.
    Dashboard,
    /// `/ws/engagement` (all clients the user may see) or
    /// `/ws/client/{client_id}/engagement` ← channels `msp:{m}/client:{c}`.
    Compliance { client: Option<String> },
    /// `/api/v1/ws/alerts` ← channels `department:{id}`.
    Hr,
    /// `/ws` ← whatever the client subscribes to (`user:{id}`,
    /// `sessions:{id}`, `market:{symbol}`, …).
    Trading,
}

/// How an endpoint refuses a bad token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// HTTP 401 before the upgrade.
    Http,
    /// Accept, then close 1008 (what the compliance backend does).
    Close1008,
}

/// What the connection should do after a client command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// Send these frames.
    Send(Vec<String>),
    /// Subscribe to these channels (already authorised), then send frames.
    Subscribe(Vec<String>, Vec<String>),
    Unsubscribe(Vec<String>),
    /// Send the dashboard snapshot.
    Snapshot,
    Nothing,
}

fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

fn error(msg: &str) -> String {
    protocol::error_message(msg, &now())
}

impl Endpoint {
    pub fn style(&self) -> Style {
        match self {
            Endpoint::Native => Style::Native,
            Endpoint::Merchant { .. } => Style::Merchant,
            Endpoint::Dashboard => Style::Dashboard,
            Endpoint::Compliance { .. } => Style::Compliance,
            Endpoint::Hr => Style::Hr,
            Endpoint::Trading => Style::Trading,
        }
    }

    pub fn wire(&self) -> Wire {
        Wire::of(self.style())
    }

    pub fn refusal(&self) -> Refusal {
        match self {
            Endpoint::Compliance { .. } => Refusal::Close1008,
            _ => Refusal::Http,
        }
    }

    /// The channels a new connection starts on, or why it may not connect.
    /// `msp_of` names the MSP a client's events are published under, when
    /// the hub has seen any.
    pub fn initial_channels(
        &self,
        id: &Identity,
        msp_of: impl Fn(&str) -> Option<String>,
    ) -> Result<Vec<String>, String> {
        match self {
            Endpoint::Native | Endpoint::Trading => Ok(Vec::new()),
            Endpoint::Merchant { assessment } => {
                let ch = format!("risk-assessment:{assessment}");
                if !grants::valid(&ch) {
                    return Err("invalid assessment id".into());
                }
                if id.may_read(&ch) {
                    Ok(vec![ch])
                } else {
                    Err(format!("not allowed to read assessment {assessment}"))
                }
            }
            Endpoint::Dashboard => {
                if id.may_read("dashboard") {
                    Ok(vec!["dashboard".into()])
                } else {
                    Err("not allowed to read the dashboard".into())
                }
            }
            Endpoint::Hr => {
                let chans = grants::narrow(&id.grants, "department:*");
                if chans.is_empty() {
                    Err("not allowed to read any department".into())
                } else {
                    Ok(chans)
                }
            }
            Endpoint::Compliance { client } => {
                if let (Some(want), Some(own)) = (client, &id.client)
                    && want != own
                {
                    return Err(format!("not allowed to read client {want}"));
                }
                // Another MSP's client: refused, not an empty stream.
                if let Some(want) = client
                    && !may_read_client(id, want, &msp_of)
                {
                    return Err(format!("not allowed to read client {want}"));
                }
                let chans = grants::narrow(&id.grants, "msp:*");
                if chans.is_empty() {
                    return Err("not allowed to read any client".into());
                }
                Ok(chans)
            }
        }
    }

    /// Compliance connections for one client only see that client's events.
    pub fn client_filter(&self) -> Option<&str> {
        match self {
            Endpoint::Compliance { client } => client.as_deref(),
            _ => None,
        }
    }

    /// Whether an event on `channel` goes to this connection (beyond its
    /// subscriptions).
    pub fn passes(&self, channel: &str) -> bool {
        match self.client_filter() {
            Some(c) => compliance_client(channel) == Some(c),
            None => true,
        }
    }

    /// Frames sent right after the upgrade.
    pub fn greeting(&self, id: &Identity, heartbeat_secs: u64) -> Vec<String> {
        match self {
            Endpoint::Native => vec![native::welcome(heartbeat_secs, &id.user)],
            Endpoint::Compliance { client } => {
                let scope = if id.client.is_some() || client.is_some() {
                    "client"
                } else {
                    "msp"
                };
                vec![compliance::connected(
                    scope,
                    id.role.as_deref(),
                    client.as_deref().or(id.client.as_deref()),
                    &now(),
                )]
            }
            Endpoint::Hr => vec![hr::connected(&now())],
            _ => Vec::new(),
        }
    }

    /// The style's own periodic heartbeat frame, if it has one.
    pub fn heartbeat_frame(&self) -> Option<String> {
        match self {
            Endpoint::Trading => Some(trading::heartbeat(&now())),
            _ => None,
        }
    }

    /// Answers a client command of a backend style (not native: the
    /// connection handles native messages itself).
    pub fn command(
        &self,
        id: &Identity,
        text: &str,
        msp_of: impl Fn(&str) -> Option<String>,
    ) -> Reply {
        let Ok(v) = serde_json::from_str::<Value>(text) else {
            return Reply::Send(vec![error("malformed message: not JSON")]);
        };
        let ty = v.get("type").and_then(Value::as_str);
        let action = v.get("action").and_then(Value::as_str);
        match (self, ty, action) {
            (_, Some("ping"), _) | (Endpoint::Dashboard, _, Some("ping")) => {
                Reply::Send(vec![protocol::pong_message(&now())])
            }
            (Endpoint::Dashboard, _, Some("refresh")) => Reply::Snapshot,
            (_, Some("pong" | "heartbeat"), _) => Reply::Nothing,
            (Endpoint::Trading, Some(op @ ("subscribe" | "unsubscribe")), _) => {
                let chans: Vec<String> = v
                    .get("channels")
                    .and_then(Value::as_array)
                    .map(|a| {
                        a.iter()
                            .filter_map(Value::as_str)
                            .map(str::to_owned)
                            .collect()
                    })
                    .unwrap_or_default();
                if op == "unsubscribe" {
                    return Reply::Unsubscribe(chans);
                }
                let (ok, bad): (Vec<String>, Vec<String>) = chans
                    .into_iter()
                    .partition(|c| grants::valid(c) && id.may_read(c));
                let frames = bad
                    .iter()
                    .map(|c| error(&format!("not allowed to subscribe to {c}")))
                    .collect();
                Reply::Subscribe(ok, frames)
            }
            (Endpoint::Compliance { .. }, Some("subscribe"), _) => {
                let client = v
                    .get("client_id")
                    .and_then(Value::as_str)
                    .unwrap_or_default();
                let visible = id.client.as_deref().is_none_or(|own| own == client)
                    && !grants::narrow(&id.grants, "msp:*").is_empty()
                    && !client.is_empty()
                    && may_read_client(id, client, &msp_of);
                if visible {
                    Reply::Send(vec![compliance::subscribed(client, &now())])
                } else {
                    Reply::Send(vec![error(&format!(
                        "not allowed to subscribe to client {client}"
                    ))])
                }
            }
            (_, Some(other), _) => {
                Reply::Send(vec![error(&format!("unknown message type {other}"))])
            }
            _ => Reply::Send(vec![error("message has no type")]),
        }
    }
}

/// Whether `id` may read `client`: when the hub knows the client's MSP,
/// by a grant covering that MSP's channel of the client (an MSP user of
/// another MSP may not); an unknown client is judged by its events, which
/// only reach connections whose grants cover their channel.
fn may_read_client(id: &Identity, client: &str, msp_of: impl Fn(&str) -> Option<String>) -> bool {
    match msp_of(client) {
        Some(m) => id.may_read(&format!("msp:{m}/client:{client}")),
        None => true,
    }
}

/// Parses a request path into an endpoint.
pub fn route(path: &str) -> Option<Endpoint> {
    let p = path.trim_end_matches('/');
    if p == crate::protocol::native::PATH {
        return Some(Endpoint::Native);
    }
    if let Some(id) = p.strip_prefix("/ws/risk-assessment/")
        && !id.is_empty()
        && !id.contains('/')
    {
        return Some(Endpoint::Merchant {
            assessment: id.to_owned(),
        });
    }
    if p == "/api/v1/ws/dashboard" {
        return Some(Endpoint::Dashboard);
    }
    if p == "/ws/engagement" || p == "/api/v1/ws/engagement" {
        return Some(Endpoint::Compliance { client: None });
    }
    if let Some(rest) = p
        .strip_prefix("/ws/client/")
        .or_else(|| p.strip_prefix("/api/v1/ws/client/"))
        && let Some(client) = rest.strip_suffix("/engagement")
        && !client.is_empty()
        && !client.contains('/')
    {
        return Some(Endpoint::Compliance {
            client: Some(client.to_owned()),
        });
    }
    if p == "/api/v1/ws/alerts" {
        return Some(Endpoint::Hr);
    }
    if p == "/ws" || p == "/ws/trading" {
        return Some(Endpoint::Trading);
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes() {
        assert_eq!(route("/api/v1/stream"), Some(Endpoint::Native));
        assert_eq!(
            route("/ws/risk-assessment/a1"),
            Some(Endpoint::Merchant {
                assessment: "a1".into()
            })
        );
        assert_eq!(
            route("/ws/client/c1/engagement"),
            Some(Endpoint::Compliance {
                client: Some("c1".into())
            })
        );
        assert_eq!(
            route("/ws/engagement"),
            Some(Endpoint::Compliance { client: None })
        );
        assert_eq!(route("/api/v1/ws/alerts"), Some(Endpoint::Hr));
        assert_eq!(route("/ws"), Some(Endpoint::Trading));
        assert_eq!(route("/nope"), None);
    }

    #[test]
    fn client_users_only_see_their_client() {
        let id = Identity {
            user: "u".into(),
            role: Some("client_user".into()),
            grants: vec!["msp:m1/client:c1".into()],
            publish: false,
            msp: Some("m1".into()),
            client: Some("c1".into()),
            issued_at: None,
        };
        let ep = Endpoint::Compliance {
            client: Some("c2".into()),
        };
        assert!(ep.initial_channels(&id, |_| None).is_err());
        let ep = Endpoint::Compliance { client: None };
        assert_eq!(
            ep.initial_channels(&id, |_| None).unwrap(),
            ["msp:m1/client:c1"]
        );
    }
}
