//! The native riskwatch protocol: `op`-tagged JSON messages over one
//! WebSocket, per-channel sequence numbers with an epoch, subscribe /
//! unsubscribe, resume from a position, error codes, and the close-code
//! table that the client and the hub share. Specified in docs/PROTOCOL.md.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use super::Severity;

/// The hub's endpoint path for the native protocol.
pub const PATH: &str = "/api/v1/stream";

/// Protocol version announced in `welcome`.
pub const VERSION: u32 = 1;

/// A resume position on one channel: the last sequence seen, in the epoch it
/// was seen in. An epoch change means the hub lost that channel's history
/// (restart without a data directory), which the client is told about.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Position {
    pub seq: u64,
    pub epoch: String,
}

/// What history a subscription without a position of its own asks for
/// (`riskwatch watch --since`): replayed before live events, from what the
/// hub still holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Replay {
    /// Everything still held on the channel.
    All,
    /// Everything after this sequence number, in the channel's current
    /// epoch (a `gap` says when some of it is no longer held).
    AfterSeq(u64),
    /// Everything published after this time.
    AfterTime(DateTime<Utc>),
}

/// Messages a client sends.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum ClientMessage {
    /// Subscribe to a channel; with `since`, replay everything after it;
    /// without, with `replay`, replay the history it asks for.
    Subscribe {
        channel: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        since: Option<Position>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        replay: Option<Replay>,
    },
    Unsubscribe {
        channel: String,
    },
    /// Application-level keep-alive; answered with `pong`.
    Ping,
    /// Publish an event (needs the publish scope).
    Publish {
        channel: String,
        #[serde(rename = "type")]
        kind: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        severity: Option<Severity>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        id: Option<String>,
        #[serde(default)]
        data: serde_json::Value,
    },
}

/// Error codes carried by `{"op":"error","code":…}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// The message was not JSON or not a known `op`.
    BadRequest,
    /// No valid token, or it expired.
    Unauthorized,
    /// The token does not grant this channel or publishing.
    Forbidden,
    /// Too many messages; the connection is closed with 1008 next.
    RateLimited,
    /// The message exceeded the inbound size limit.
    TooLarge,
    /// Too many connections for this user.
    TooManyConnections,
    /// Something failed inside the hub.
    Internal,
}

impl ErrorCode {
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::BadRequest => "bad_request",
            ErrorCode::Unauthorized => "unauthorized",
            ErrorCode::Forbidden => "forbidden",
            ErrorCode::RateLimited => "rate_limited",
            ErrorCode::TooLarge => "too_large",
            ErrorCode::TooManyConnections => "too_many_connections",
            ErrorCode::Internal => "internal",
        }
    }
}

/// Control messages a hub sends (everything but `event`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServerControl {
    /// First message on a connection.
    Welcome {
        /// Seconds between the hub's own pings; the client's dead-connection
        /// deadline should allow for it.
        heartbeat: Option<u64>,
    },
    /// A subscription is live; `seq` is the channel's latest sequence and
    /// `epoch` the history generation it belongs to.
    Subscribed {
        channel: String,
        epoch: String,
        seq: u64,
    },
    Unsubscribed {
        channel: String,
    },
    /// Resuming from `requested` was not fully possible: history is
    /// complete only from `oldest` (or the epoch changed). Everything from
    /// `oldest` follows, and with `criticals_kept` also every critical and
    /// emergency event after `requested` (only ordinary ones are gone); the
    /// client should refetch a snapshot for what it missed.
    Gap {
        channel: String,
        requested: u64,
        oldest: u64,
        epoch: String,
        /// Absent (an older hub): nothing is promised.
        criticals_kept: bool,
    },
    Error {
        code: String,
        message: String,
    },
    Pong,
    /// Acknowledges a publish.
    Published {
        channel: String,
        seq: u64,
    },
}

/// An event as the hub sends it. `data` is carried verbatim.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EventMessage<'a> {
    pub op: &'a str,
    pub channel: &'a str,
    pub seq: u64,
    #[serde(rename = "type")]
    pub kind: &'a str,
    pub severity: Severity,
    pub ts: &'a str,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<&'a str>,
    #[serde(borrow)]
    pub data: &'a RawValue,
}

/// The client's keep-alive message.
pub const PING: &str = r#"{"op":"ping"}"#;

/// The server's greeting: protocol version, heartbeat interval in seconds,
/// the authenticated user.
pub fn welcome(heartbeat_secs: u64, user: &str) -> String {
    serde_json::json!({"op": "welcome", "version": VERSION,
        "heartbeat": heartbeat_secs, "user": user})
    .to_string()
}

pub(super) fn serves(path: &str) -> bool {
    path.ends_with(PATH)
}

/// An event as the hub sends it on the native endpoint.
pub fn encode(ev: &super::encode::Outgoing<'_>) -> String {
    let msg = EventMessage {
        op: "event",
        channel: ev.channel,
        seq: ev.seq,
        kind: ev.kind,
        severity: ev.severity,
        ts: ev.ts,
        id: ev.id,
        data: ev.data,
    };
    serde_json::to_string(&msg).expect("an event message serializes")
}

/// WebSocket close codes and what the client does about each.
pub mod close {
    /// Normal closure: the client reconnects only if it did not ask for it.
    pub const NORMAL: u16 = 1000;
    /// Server going away (shutdown, restart): reconnect and resume.
    pub const GOING_AWAY: u16 = 1001;
    /// Policy violation: authentication refused (as the compliance backend
    /// uses it). Terminal for the client, unless the reason says it was a
    /// rate limit (what hubs before [`RATE_LIMITED`] sent).
    pub const POLICY: u16 = 1008;
    /// Protocol error (a malformed frame): reconnect.
    pub const PROTOCOL_ERROR: u16 = 1002;
    /// Invalid data (text that is not UTF-8): reconnect.
    pub const INVALID_DATA: u16 = 1007;
    /// Message too big: reconnect.
    pub const TOO_BIG: u16 = 1009;
    /// Internal server error: reconnect.
    pub const INTERNAL: u16 = 1011;
    /// Try again later (slow consumer dropped, overload): reconnect and
    /// resume from history.
    pub const TRY_AGAIN_LATER: u16 = 1013;
    /// Token missing or invalid. Terminal.
    pub const UNAUTHORIZED: u16 = 4001;
    /// Token valid but not allowed here. Terminal.
    pub const FORBIDDEN: u16 = 4003;
    /// Token expired. Terminal until a new token is supplied.
    pub const TOKEN_EXPIRED: u16 = 4004;
    /// Too many messages: reconnect after a backoff, more slowly.
    pub const RATE_LIMITED: u16 = 4429;

    /// What a client should do when the server closes with `code`.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub enum Policy {
        Reconnect,
        /// Authentication or authorisation refused: stop, tell the user.
        AuthRefused,
    }

    /// The shared policy table: 1008 and the 4000–4099 range are auth
    /// refusals; everything else is worth reconnecting for.
    pub fn policy(code: u16) -> Policy {
        match code {
            POLICY | 4000..=4099 => Policy::AuthRefused,
            _ => Policy::Reconnect,
        }
    }

    /// [`policy`], with the close reason: a 1008 that says it was a rate
    /// limit is no refusal — stopping for good would lose every alert
    /// after it.
    pub fn policy_with_reason(code: u16, reason: &str) -> Policy {
        if code == POLICY && reason.to_ascii_lowercase().contains("rate limit") {
            return Policy::Reconnect;
        }
        policy(code)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replay_is_on_the_wire_as_the_protocol_says() {
        let msg = |replay| {
            serde_json::to_string(&ClientMessage::Subscribe {
                channel: "c".into(),
                since: None,
                replay: Some(replay),
            })
            .unwrap()
        };
        assert_eq!(
            msg(Replay::All),
            r#"{"op":"subscribe","channel":"c","replay":"all"}"#
        );
        assert_eq!(
            msg(Replay::AfterSeq(7)),
            r#"{"op":"subscribe","channel":"c","replay":{"after_seq":7}}"#
        );
        let back: ClientMessage = serde_json::from_str(
            r#"{"op":"subscribe","channel":"c","replay":{"after_time":"2026-12-07T11:50:00Z"}}"#,
        )
        .unwrap();
        assert!(matches!(
            back,
            ClientMessage::Subscribe {
                replay: Some(Replay::AfterTime(_)),
                ..
            }
        ));
    }
}
