//! The broker: the authority for every channel's epoch, sequence, history
//! and id index, and for users' cursors (the offline queue). The hub's
//! fan-out (`hub.rs`) sits on top of it and does not know which one runs.
//!
//! Modelled on centrifuge's `broker.go` / `broker_memory.go`: the hub
//! publishes through [`Broker::publish`]; the broker stores and sequences
//! the event and hands it, in sequence order per channel, to the [`Sink`]
//! it was attached to — at once in memory, when Redis echoes it back with
//! Redis, in both cases with the channel's log locked. A subscriber
//! recovers what it missed with [`Broker::recover`], which registers it
//! with the fan-out under that same lock: every event up to the recovered
//! head is in its backlog, every later one reaches it live, none twice.
//! Lock order: a channel's log, then the fan-out's subscribers; the hub
//! never takes a log's lock while holding its own.
//!
//! - `log`: one channel's log (epoch, head, history, ids) and the map of
//!   them. The memory broker's logs are the truth; the Redis broker's are
//!   a local copy of what Redis holds, filled on first use.
//! - `memory`: one hub alone; with `--data-dir`, history and cursors in
//!   files (`store.rs`, `cursors.rs`).
//! - `redis`: several hubs as one (`--redis URL`).

mod log;
pub mod memory;
pub mod redis;

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures_util::future::BoxFuture;
use serde::Serialize;
use serde_json::value::RawValue;
use tokio_util::sync::CancellationToken;

use super::cursors::{Cursor, UserCursors};
use super::event::HubEvent;
use super::history::Retention;
use crate::protocol::Severity;
use crate::protocol::native::Position;

pub use log::Logs;
pub use memory::MemoryBroker;
pub use redis::RedisBroker;

/// History and queue limits. Critical and emergency events follow their
/// own, longer limits, never shorter than the ordinary ones
/// ([`Retention::normalized`]).
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct HubLimits {
    /// Ordinary (info, warning) messages kept per channel. Default 1,000.
    pub history_len: usize,
    /// Age after which ordinary messages leave history. Default 10 minutes.
    pub history_age: Duration,
    /// Messages kept per `user:` channel whatever their age, so a user who
    /// is offline finds them on reconnect. Default 100.
    pub offline_keep: usize,
    /// Critical and emergency messages kept per channel. Default 50,000.
    pub critical_len: usize,
    /// Age after which critical and emergency messages leave history.
    /// Default 24 hours.
    pub critical_age: Duration,
}

impl HubLimits {
    pub fn history_len(mut self, n: usize) -> Self {
        self.history_len = n;
        self
    }
    pub fn history_age(mut self, d: Duration) -> Self {
        self.history_age = d;
        self
    }
    pub fn offline_keep(mut self, n: usize) -> Self {
        self.offline_keep = n;
        self
    }
    pub fn critical_len(mut self, n: usize) -> Self {
        self.critical_len = n;
        self
    }
    pub fn critical_age(mut self, d: Duration) -> Self {
        self.critical_age = d;
        self
    }

    /// The trimming rules for a channel.
    pub fn retention(&self, channel: &str) -> Retention {
        Retention {
            ordinary_len: self.history_len,
            ordinary_age: self.history_age,
            ordinary_min: if channel.starts_with("user:") {
                self.offline_keep
            } else {
                0
            },
            critical_len: self.critical_len,
            critical_age: self.critical_age,
        }
        .normalized()
    }
}

impl Default for HubLimits {
    fn default() -> Self {
        HubLimits {
            history_len: 1_000,
            history_age: Duration::from_secs(600),
            offline_keep: 100,
            critical_len: Retention::default().critical_len,
            critical_age: Retention::default().critical_age,
        }
    }
}

/// A checked event on its way into a channel (the broker gives it its
/// sequence and time).
#[derive(Debug)]
pub struct Prepared {
    pub channel: String,
    pub kind: String,
    pub severity: Severity,
    pub id: Option<String>,
    pub data: Box<RawValue>,
}

/// The outcome of a publish.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Published {
    pub channel: String,
    pub seq: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// True when the id was seen before: nothing new was stored or sent.
    pub duplicate: bool,
}

/// What a subscriber asks to recover.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Recover {
    /// Nothing: live from the head.
    Head,
    /// Everything after a position (from another epoch: everything kept).
    Since(Position),
    /// Everything kept, without a gap notice for what was trimmed before
    /// (a user's own offline queue, never read before).
    Whole,
    /// Everything kept from the first event published after a time (the
    /// user's token was issued then and the user has no cursor here, or
    /// the client asked for it), with no gap notice: there is no position
    /// to measure one from.
    After(DateTime<Utc>),
    /// Everything after a sequence number in the current epoch, whatever
    /// it is (a client's `replay` from a number it was shown), with a gap
    /// notice for what is no longer kept.
    AfterSeq(u64),
}

/// What a subscriber gets: where the channel is, and what it missed.
#[derive(Debug)]
pub struct Recovered {
    pub channel: String,
    pub epoch: String,
    pub head: u64,
    /// The position (in `epoch`) the backlog continues after: the head
    /// for a fresh subscription, the resumed position otherwise (0 from
    /// another epoch). The `subscribed` acknowledgement carries it, so a
    /// client with no position of its own (a remembered `user:` cursor)
    /// takes the backlog as new.
    pub start: u64,
    /// Stored events to send before live ones, in order.
    pub backlog: Vec<Arc<HubEvent>>,
    /// Set when the requested position could not be honoured fully.
    pub gap: Option<Gap>,
}

/// Part of what a resuming subscriber missed is no longer in history.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Gap {
    /// The position it asked to resume after.
    pub requested: u64,
    /// Every event from this sequence on follows.
    pub oldest: u64,
    /// Every critical and emergency event after `requested` follows too
    /// (only ordinary events are gone).
    pub criticals_kept: bool,
}

/// Why the broker could not do what was asked. Each is transient from the
/// caller's side: a publish answers 503, a subscribe is refused and the
/// client retries.
#[derive(Debug, thiserror::Error)]
pub enum BrokerError {
    #[error("redis: {0}")]
    Redis(#[from] ::redis::RedisError),
    #[error("redis returned an unreadable entry: {0}")]
    Corrupt(String),
    /// The event could not be written to `--data-dir`: not stored, not
    /// sent, so the publisher retries rather than being told "stored".
    #[error("could not store the event: {0}")]
    Store(#[from] super::store::StoreError),
}

/// Where a broker hands each stored event: the hub's fan-out. Called with
/// the channel's log locked, so per channel, in sequence order, once.
pub trait Sink: Send + Sync {
    fn deliver(&self, ev: &Arc<HubEvent>);
}

impl std::fmt::Debug for dyn Sink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Sink")
    }
}

/// The broker interface (see the module doc).
pub trait Broker: Send + Sync + std::fmt::Debug {
    /// Where stored events go from now on. Set once, before the first
    /// publish.
    fn attach(&self, sink: Arc<dyn Sink>);

    /// Background work until `stop` (Redis: receiving every hub's events).
    fn run(self: Arc<Self>, stop: CancellationToken) -> BoxFuture<'static, ()>;

    /// Stores and sequences an event; a repeated id answers its first
    /// sequence and stores nothing.
    fn publish(&self, ev: Prepared) -> BoxFuture<'_, Result<Published, BrokerError>>;

    /// Where `channel` is and what after `from` is still kept, with
    /// `register` (the subscriber joining the fan-out) run atomically with
    /// reading it (see [`Logs::recover`]); not run when this fails.
    fn recover<'a>(
        &'a self,
        channel: &'a str,
        from: Recover,
        register: Register<'a>,
    ) -> BoxFuture<'a, Result<Recovered, BrokerError>>;

    /// Records users' cursors (in memory, and durably where the broker
    /// can: file or Redis).
    fn remember(&self, list: Vec<Cursor>);

    /// A user's cursors: this hub's, and with Redis every hub's (the newer
    /// of the two per channel).
    fn cursors_of<'a>(&'a self, user: &'a str) -> BoxFuture<'a, UserCursors>;

    /// The channels this hub holds (all of them in memory; those in use
    /// with Redis).
    fn logs(&self) -> &Logs;

    /// Writes anything buffered to durable storage (on shutdown).
    fn flush(&self);
}

/// A subscriber joining the fan-out, run by [`Broker::recover`].
pub type Register<'a> = Box<dyn FnOnce() + Send + 'a>;

/// Epochs are random so that a broker that lost its history is detected.
pub(crate) fn new_epoch() -> String {
    format!("{:016x}", rand::random::<u64>())
}

/// The cursor window: nothing older than the critical history is kept to
/// replay, so older cursors are useless.
pub(crate) fn cursor_window(limits: &HubLimits) -> chrono::Duration {
    chrono::Duration::from_std(limits.retention("").critical_age).unwrap_or(chrono::Duration::MAX)
}
