//! The hub: the registry of connections and of subscribers, and the
//! fan-out from a stored event to every matching connection's bounded
//! queue. Channels' state — sequence, epoch, history, ids, users' cursors
//! — belongs to the broker (`broker/`, memory or Redis), which hands the
//! hub every stored event once, in sequence order per channel; the hub
//! does not know which broker runs.
//!
//! A subscriber joins the fan-out in the same step as it recovers its
//! backlog from the broker (under the channel's lock), so an event is
//! either in the backlog or delivered live, never both, never neither.
//! Offering
//! never waits: a live connection gets the event's pre-encoded frame
//! written to its socket at once (a non-blocking `send()`), any other has
//! it queued; a full queue marks that connection as lagging and it is
//! closed with 1013 by its own task.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, RwLock};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::value::RawValue;

use super::auth::Identity;
use super::broker::{Broker, BrokerError, Prepared, Recover, Sink};
pub use super::broker::{Gap, HubLimits, Published, Recovered};
use super::cursors::{Cursor, UserCursors};
use super::event::{HubEvent, NewEvent};
use super::grants;
use super::metrics::{Metrics, seconds_since};
use super::outbox::Outbox;
use crate::protocol::native::{Position, Replay};
use crate::protocol::{Severity, Style};

/// A connection's identity in the registry.
pub type ConnId = u64;

/// What the hub holds of a connection: its outgoing side, which writes a
/// live event at once or queues it, and tells the connection when it fell
/// behind.
#[derive(Debug, Clone)]
pub struct Subscriber {
    pub out: Arc<Outbox>,
}

impl Subscriber {
    /// Writes or queues an event; false when the queue was full.
    fn offer(&self, ev: &Arc<HubEvent>, direct: bool) -> bool {
        self.out.offer(ev, direct)
    }
}

/// One channel's subscribers.
#[derive(Debug, Default)]
struct Subs {
    subscribers: HashMap<ConnId, Subscriber>,
    /// When the last fan-out ended (see [`BURST_GAP`]).
    last_fan_out: Option<Instant>,
}

/// Why a publish was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PublishError {
    #[error("invalid channel name {0:?}")]
    BadChannel(String),
    #[error("a published event needs a non-empty type")]
    NoType,
    /// Clients of the seed styles would take it for connection housekeeping
    /// and never show it (docs/PROTOCOL.md, rule 4).
    #[error(
        "type {0:?} is connection housekeeping to the seed styles' clients, which would never show it as an event; publish it under another type"
    )]
    HousekeepingType(String),
    #[error("event data is too large ({size} bytes, limit {max})")]
    TooLarge { size: usize, max: usize },
    #[error("event {field} is too long ({size} bytes, limit {max})")]
    FieldTooLong {
        field: &'static str,
        size: usize,
        max: usize,
    },
    /// The broker (a full disk, Redis) could not take the event; retry.
    #[error("the hub cannot store events right now: {0}")]
    Unavailable(String),
}

impl From<BrokerError> for PublishError {
    fn from(e: BrokerError) -> Self {
        PublishError::Unavailable(e.to_string())
    }
}

/// Counters for stats and metrics.
#[derive(Debug, Default)]
pub struct Counters {
    pub published: AtomicU64,
    pub delivered: AtomicU64,
    pub dropped_slow: AtomicU64,
    pub rate_limited: AtomicU64,
    pub oversized: AtomicU64,
    pub rejected_auth: AtomicU64,
    pub messages_in: AtomicU64,
}

/// Events waiting to be written ([`Hub::queues`]).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct QueueDepths {
    pub total: usize,
    pub largest: usize,
}

/// Who a connection is, for stats.
#[derive(Debug, Clone, Serialize)]
pub struct ConnInfo {
    pub user: String,
    pub style: Style,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub msp: Option<String>,
}

/// The subscriber side the broker delivers to.
#[derive(Debug, Default)]
struct FanOut {
    channels: RwLock<HashMap<Arc<str>, Arc<Mutex<Subs>>>>,
    /// Pattern subscriptions (`department:*`).
    patterns: RwLock<HashMap<ConnId, Vec<(String, Subscriber)>>>,
    counters: Arc<Counters>,
    metrics: Metrics,
    /// The latest `dashboard_update`, for the polling snapshot.
    dashboard: RwLock<Option<Arc<HubEvent>>>,
}

impl FanOut {
    fn subs(&self, channel: &str) -> Option<Arc<Mutex<Subs>>> {
        self.channels
            .read()
            .expect("channels lock")
            .get(channel)
            .map(Arc::clone)
    }

    /// Registers a subscriber. It is inserted while the map is read-locked,
    /// so [`FanOut::remove`] (which drops an emptied channel under the
    /// write lock) never drops an entry a subscriber was just added to.
    fn add(&self, channel: &str, conn: ConnId, sub: Subscriber) {
        {
            let map = self.channels.read().expect("channels lock");
            if let Some(s) = map.get(channel) {
                s.lock().expect("subs lock").subscribers.insert(conn, sub);
                return;
            }
        }
        let mut map = self.channels.write().expect("channels lock");
        map.entry(Arc::from(channel))
            .or_default()
            .lock()
            .expect("subs lock")
            .subscribers
            .insert(conn, sub);
    }

    /// Unregisters a subscriber; the last one out removes the channel's
    /// entry, so names subscribed once hold no memory afterwards.
    fn remove(&self, channel: &str, conn: ConnId) {
        let emptied = match self.subs(channel) {
            Some(s) => {
                let mut g = s.lock().expect("subs lock");
                g.subscribers.remove(&conn);
                g.subscribers.is_empty()
            }
            None => false,
        };
        if emptied {
            let mut map = self.channels.write().expect("channels lock");
            if map
                .get(channel)
                .is_some_and(|s| s.lock().expect("subs lock").subscribers.is_empty())
            {
                map.remove(channel);
            }
        }
    }
}

impl Sink for FanOut {
    /// Offers the event to every subscriber of its channel, pattern ones
    /// included, so all see the channel in order (the broker holds the
    /// channel's log locked meanwhile).
    fn deliver(&self, ev: &Arc<HubEvent>) {
        let subs = self.subs(&ev.channel);
        let mut guard = subs.as_ref().map(|s| s.lock().expect("subs lock"));
        let patterns = self.patterns.read().expect("patterns lock");
        let mut targets: Vec<&Subscriber> = guard
            .as_ref()
            .map(|g| g.subscribers.values().collect())
            .unwrap_or_default();
        for list in patterns.values() {
            if let Some((_, sub)) = list.iter().find(|(p, _)| grants::matches(p, &ev.channel)) {
                targets.push(sub);
            }
        }
        // Back-to-back publishes (a batch, a burst) go through the
        // connections' queues, whose tasks write several frames per
        // `send()`; an event after a pause is written at once.
        let start = Instant::now();
        let direct = guard
            .as_ref()
            .and_then(|g| g.last_fan_out)
            .is_none_or(|t| start.saturating_duration_since(t) >= BURST_GAP);
        // Before it goes out: a periodic push never sends one older than
        // what a connection already got.
        if ev.kind == "dashboard_update" {
            *self.dashboard.write().expect("dashboard lock") = Some(Arc::clone(ev));
        }
        let (delivered, dropped) = fan_out(&targets, ev, direct);
        // Written at once to every live subscriber (queued ones are
        // observed when their connection's task writes them).
        if direct && delivered > 0 {
            self.metrics.delivery.observe(seconds_since(ev.time));
        }
        drop(targets);
        drop(patterns);
        if let Some(g) = guard.as_mut() {
            g.last_fan_out = Some(Instant::now());
        }
        drop(guard);
        if dropped > 0 {
            self.counters
                .dropped_slow
                .fetch_add(dropped, Ordering::Relaxed);
        }
        self.counters.published.fetch_add(1, Ordering::Relaxed);
        self.counters
            .delivered
            .fetch_add(delivered, Ordering::Relaxed);
    }
}

/// After events went out on a connection, a ping follows within about
/// this long: its pong proves them delivered (`outbox.rs`). What is
/// unproven when a connection ends is replayed to the user's next one, so
/// this bounds the repeats a seed-style client sees after a drop; a
/// 10-byte frame each way per connection, at most this often, while
/// events flow.
pub const PROVE_EVERY: Duration = Duration::from_secs(1);

/// One of a user's open connections, with its write side.
type UserConn = (ConnId, Arc<Outbox>);

/// The hub.
#[derive(Debug)]
pub struct Hub {
    max_data: usize,
    broker: Arc<dyn Broker>,
    fan: Arc<FanOut>,
    conns: Mutex<HashMap<ConnId, ConnInfo>>,
    /// Open connections per user, kept beside `conns` so the per-user cap
    /// is checked in O(1) on every upgrade, with their write sides: where
    /// a user's open connections got to is where another one starts.
    per_user: Mutex<HashMap<String, Vec<UserConn>>>,
    next_conn: AtomicU64,
    pub counters: Arc<Counters>,
    /// Histograms and the counts beside them, for `/metrics`.
    pub metrics: Metrics,
    /// The listener's connection caps, for stats.
    caps: OnceLock<Arc<super::caps::Caps>>,
}

/// What a native `subscribe` asked for: a position to resume from, or
/// history to replay (`replay`), or neither (a seed-style subscription).
#[derive(Debug, Clone, Default)]
pub struct Asked {
    pub since: Option<Position>,
    pub replay: Option<Replay>,
}

impl Hub {
    /// A hub delivering what `broker` stores.
    pub fn new(max_data: usize, broker: Arc<dyn Broker>) -> Hub {
        let fan = Arc::new(FanOut::default());
        // A restored history's dashboard answers the snapshot at once.
        *fan.dashboard.write().expect("dashboard lock") = broker.logs().latest("dashboard_update");
        broker.attach(Arc::clone(&fan) as Arc<dyn Sink>);
        Hub {
            max_data,
            counters: Arc::clone(&fan.counters),
            metrics: fan.metrics.clone(),
            broker,
            fan,
            conns: Mutex::new(HashMap::new()),
            per_user: Mutex::new(HashMap::new()),
            next_conn: AtomicU64::new(1),
            caps: OnceLock::new(),
        }
    }

    /// The broker behind this hub.
    pub fn broker(&self) -> &Arc<dyn Broker> {
        &self.broker
    }

    /// Registers a connection, with its write side, and returns its id.
    pub fn connect(&self, info: ConnInfo, out: Arc<Outbox>) -> ConnId {
        let id = self.next_conn.fetch_add(1, Ordering::Relaxed);
        self.per_user
            .lock()
            .expect("per-user lock")
            .entry(info.user.clone())
            .or_default()
            .push((id, out));
        self.conns.lock().expect("conns lock").insert(id, info);
        id
    }

    /// How many connections `user` has open.
    pub fn connections_of(&self, user: &str) -> usize {
        self.per_user
            .lock()
            .expect("per-user lock")
            .get(user)
            .map_or(0, Vec::len)
    }

    /// Removes a connection from every channel; `delivered` are the
    /// positions its peer is known to have received, remembered as its
    /// user's cursors.
    pub fn disconnect(&self, conn: ConnId, channels: &[String], delivered: &HashMap<String, u64>) {
        let info = self.conns.lock().expect("conns lock").remove(&conn);
        if let Some(info) = &info {
            let mut per_user = self.per_user.lock().expect("per-user lock");
            if let Some(open) = per_user.get_mut(&info.user) {
                open.retain(|(c, _)| *c != conn);
                if open.is_empty() {
                    per_user.remove(&info.user);
                }
            }
        }
        let now = Utc::now();
        let user = info
            .as_ref()
            .map(|i| i.user.as_str())
            .filter(|u| *u != super::auth::ANONYMOUS);
        let mut left = Vec::new();
        for ch in channels {
            if grants::is_pattern(ch) {
                if let Some(user) = user {
                    left.push(Cursor {
                        user: user.to_owned(),
                        channel: ch.clone(),
                        epoch: String::new(),
                        seq: 0,
                        at: now,
                    });
                }
                continue;
            }
            self.fan.remove(ch, conn);
        }
        self.fan
            .patterns
            .write()
            .expect("patterns lock")
            .remove(&conn);
        // Every channel this connection was sent something on, its own
        // subscriptions and what its patterns matched alike.
        if let Some(user) = user {
            left.extend(self.cursors(user, delivered));
        }
        self.broker.remember(left);
    }

    /// Remembers where an open connection of `user` is proven to have got
    /// (its heartbeat does so), so that a hub killed meanwhile replays
    /// from there rather than from where the subscription started.
    pub fn remember_delivered(&self, user: &str, delivered: &HashMap<String, u64>) {
        if user != super::auth::ANONYMOUS {
            self.broker.remember(self.cursors(user, delivered));
        }
    }

    fn cursors(&self, user: &str, delivered: &HashMap<String, u64>) -> Vec<Cursor> {
        let now = Utc::now();
        delivered
            .iter()
            .filter_map(|(ch, seq)| {
                Some(Cursor {
                    user: user.to_owned(),
                    channel: ch.clone(),
                    epoch: self.broker.logs().epoch(ch)?,
                    seq: *seq,
                    at: now,
                })
            })
            .collect()
    }

    /// A user's cursors (see [`Broker::cursors_of`]). Anonymous users
    /// have none.
    pub async fn cursors_of(&self, user: &str) -> UserCursors {
        if user == super::auth::ANONYMOUS {
            return UserCursors::new();
        }
        self.broker.cursors_of(user).await
    }

    /// Pings every connection that was sent something since its last
    /// ping (the ping written on the stream as the fan-out writes events,
    /// without waking the connection's task): its pong proves what came
    /// before delivered. The hub's prover calls it each second
    /// ([`PROVE_EVERY`], or `Limits::prove_every`).
    pub fn prove_delivery(&self) {
        let due: Vec<Arc<Outbox>> = self
            .per_user
            .lock()
            .expect("per-user lock")
            .values()
            .flatten()
            .filter(|(_, out)| out.proof_wanted())
            .map(|(_, out)| Arc::clone(out))
            .collect();
        for out in due {
            out.ping();
        }
    }

    /// Runs [`Hub::prove_delivery`] each `every` until `stop`.
    pub async fn prover(
        self: Arc<Self>,
        every: Duration,
        stop: tokio_util::sync::CancellationToken,
    ) {
        let mut every = tokio::time::interval(every.max(Duration::from_millis(10)));
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = every.tick() => self.prove_delivery(),
            }
        }
    }

    /// Where a new connection of `user` (`conn`) starts each channel: the
    /// user's cursors, moved on to where any other open connection of the
    /// user is known to have delivered (a second tab, or a desk back
    /// while the hub still holds its stalled connection): nothing the
    /// user received is replayed, nothing unproven is skipped.
    pub async fn starting_points(&self, user: &str, conn: Option<ConnId>) -> UserCursors {
        let mut mine = self.cursors_of(user).await;
        if user == super::auth::ANONYMOUS {
            return mine;
        }
        let others: Vec<Arc<Outbox>> = self
            .per_user
            .lock()
            .expect("per-user lock")
            .get(user)
            .map(|open| {
                open.iter()
                    .filter(|(c, _)| Some(*c) != conn)
                    .map(|(_, out)| Arc::clone(out))
                    .collect()
            })
            .unwrap_or_default();
        for out in others {
            for c in self.cursors(user, &out.delivered()) {
                match mine.get(&c.channel) {
                    Some(m) if m.epoch == c.epoch && m.seq >= c.seq => {}
                    _ => {
                        mine.insert(c.channel.clone(), c);
                    }
                }
            }
        }
        mine
    }

    /// Whether an event would be accepted (a batch is checked whole before
    /// any of it is published).
    pub fn validate(&self, ev: &NewEvent) -> Result<(), PublishError> {
        self.check(ev).map(|_| ())
    }

    /// Checks an event and renders its data once: the severity and data a
    /// publish would store (what the fuzzer holds every wire shape to).
    pub fn check(&self, ev: &NewEvent) -> Result<(Severity, Box<RawValue>), PublishError> {
        if !grants::valid(&ev.channel) || grants::is_pattern(&ev.channel) {
            return Err(PublishError::BadChannel(ev.channel.clone()));
        }
        if ev.kind.trim().is_empty() {
            return Err(PublishError::NoType);
        }
        if crate::protocol::is_housekeeping(&ev.kind) {
            return Err(PublishError::HousekeepingType(ev.kind.clone()));
        }
        let too_long = |field: &'static str, size: usize, max: usize| {
            (size > max).then_some(PublishError::FieldTooLong { field, size, max })
        };
        if let Some(e) = too_long("type", ev.kind.len(), MAX_TYPE)
            .or_else(|| too_long("id", ev.id.as_deref().map_or(0, str::len), MAX_ID))
        {
            return Err(e);
        }
        let data_text = ev.data.to_string();
        if data_text.len() > self.max_data {
            return Err(PublishError::TooLarge {
                size: data_text.len(),
                max: self.max_data,
            });
        }
        let severity = ev
            .severity
            .unwrap_or_else(|| crate::protocol::severity_of(&ev.kind, &data_text));
        Ok((
            severity,
            RawValue::from_string(data_text).expect("serialized JSON is valid"),
        ))
    }

    /// The listener's connection caps (their refusals show in stats).
    pub fn set_caps(&self, caps: Arc<super::caps::Caps>) {
        let _ = self.caps.set(caps);
    }

    /// Publishes one event: checked here, stored and sequenced by the
    /// broker, delivered to this hub's subscribers by it.
    pub async fn publish(&self, ev: NewEvent) -> Result<Published, PublishError> {
        let (severity, data) = self.check(&ev)?;
        let prepared = Prepared {
            channel: ev.channel,
            kind: ev.kind,
            severity,
            id: ev.id,
            data,
        };
        let started = Instant::now();
        let published = self.broker.publish(prepared).await?;
        self.metrics
            .publish
            .observe(started.elapsed().as_secs_f64());
        Ok(published)
    }

    /// Subscribes `conn` to a channel or pattern. With `since` the backlog
    /// holds everything after it; without, with `replay`, the history it
    /// asks for (a pattern's of every matching channel; a pattern has no
    /// sequence, so `AfterSeq` is the caller's to refuse); without either,
    /// what `user` missed since its
    /// cursor (`mine`, from [`Hub::cursors_of`]), or, on the user's own
    /// `user:` channel never left before, everything still kept there
    /// (the offline queue); `gap` says when that was not fully possible.
    /// Fails (and subscribes nothing) when the broker cannot answer.
    pub async fn subscribe(
        &self,
        conn: ConnId,
        id: &Identity,
        channel: &str,
        sub: Subscriber,
        asked: Asked,
        mine: &UserCursors,
    ) -> Result<Recovered, BrokerError> {
        let Asked { since, replay } = asked;
        if grants::is_pattern(channel) {
            return Ok(self.subscribe_pattern(conn, id, channel, sub, replay, mine));
        }
        let user = id.user.as_str();
        let known = user != super::auth::ANONYMOUS;
        let from_cursor = since.is_none() && replay.is_none() && known;
        if since.is_some() {
            self.metrics.resumes.inc();
        } else if replay.is_some() {
            self.metrics.replays.inc();
        }
        let from = match (since, replay) {
            (Some(pos), _) => Recover::Since(pos),
            (None, Some(Replay::All)) => Recover::Whole,
            (None, Some(Replay::AfterSeq(seq))) => Recover::AfterSeq(seq),
            (None, Some(Replay::AfterTime(t))) => Recover::After(t),
            (None, None)
                if from_cursor
                    && !mine.contains_key(channel)
                    && channel.strip_prefix("user:") == Some(user) =>
            {
                Recover::Whole
            }
            (None, None) => match mine.get(channel).filter(|_| from_cursor) {
                Some(cur) => Recover::Since(Position {
                    seq: cur.seq,
                    epoch: cur.epoch.clone(),
                }),
                // Never here (or so long ago the cursor expired): what
                // came since the token was issued.
                None => match id.issued_at.filter(|_| from_cursor) {
                    Some(t) => Recover::After(t),
                    None => Recover::Head,
                },
            },
        };
        // Registered in the same step as the recovery is read (under the
        // channel's lock): what came before is in it, what comes after
        // reaches this subscriber live.
        let fan = &self.fan;
        let register = Box::new(move || fan.add(channel, conn, sub));
        let rec = self.broker.recover(channel, from, register).await?;
        if rec.gap.is_some() {
            self.metrics.gaps.inc();
        }
        if known {
            // Seen here, from where this backlog starts: a hub killed
            // before the connection ends (and writes where its peer got
            // to) replays the backlog and what came live after it, rather
            // than skipping them.
            self.broker.remember(vec![Cursor {
                user: user.to_owned(),
                channel: channel.to_owned(),
                epoch: rec.epoch.clone(),
                seq: rec.start,
                at: Utc::now(),
            }]);
        }
        Ok(rec)
    }

    /// A pattern subscription: live from now, after a backlog of each
    /// matching channel from the user's cursor on it, or, for a channel
    /// without one, of what came after the user left the pattern (or,
    /// never having been on it, after the token was issued).
    fn subscribe_pattern(
        &self,
        conn: ConnId,
        id: &Identity,
        pattern: &str,
        sub: Subscriber,
        replay: Option<Replay>,
        mine: &UserCursors,
    ) -> Recovered {
        {
            let mut p = self.fan.patterns.write().expect("patterns lock");
            let list = p.entry(conn).or_default();
            if !list.iter().any(|(c, _)| c == pattern) {
                list.push((pattern.to_owned(), sub));
            }
        }
        Recovered {
            channel: pattern.to_owned(),
            epoch: String::new(),
            head: 0,
            start: 0,
            backlog: match replay {
                // Asked for: every matching channel from that time, whatever
                // the user's cursors say.
                Some(r) => {
                    let after = match r {
                        Replay::AfterTime(t) => t,
                        Replay::All | Replay::AfterSeq(_) => DateTime::<Utc>::MIN_UTC,
                    };
                    self.broker.logs().pattern_backlog(
                        pattern,
                        &UserCursors::default(),
                        Some(after),
                    )
                }
                None => self.broker.logs().pattern_backlog(
                    pattern,
                    mine,
                    id.issued_at.filter(|_| id.user != super::auth::ANONYMOUS),
                ),
            },
            gap: None,
        }
    }

    pub fn unsubscribe(&self, conn: ConnId, channel: &str) {
        if grants::is_pattern(channel) {
            if let Some(list) = self
                .fan
                .patterns
                .write()
                .expect("patterns lock")
                .get_mut(&conn)
            {
                list.retain(|(c, _)| c != channel);
            }
            return;
        }
        // Never creates anything: a client can send any name.
        self.fan.remove(channel, conn);
    }

    /// The MSP a compliance client's events are published under
    /// (`msp:{msp}/client:{client}`), when the hub holds any.
    pub fn msp_of_client(&self, client: &str) -> Option<String> {
        let suffix = format!("/client:{client}");
        self.broker.logs().names().iter().find_map(|name| {
            name.strip_suffix(suffix.as_str())
                .and_then(|m| m.strip_prefix("msp:"))
                .map(str::to_owned)
        })
    }

    /// The latest dashboard data, for the HTTP snapshot.
    pub fn dashboard_snapshot(&self) -> Option<Arc<HubEvent>> {
        self.fan.dashboard.read().expect("dashboard lock").clone()
    }

    /// Connection and message statistics.
    pub fn stats(&self) -> Stats {
        let conns = self.conns.lock().expect("conns lock");
        let mut by_user: HashMap<String, usize> = HashMap::new();
        let mut by_client: HashMap<String, usize> = HashMap::new();
        let mut by_msp: HashMap<String, usize> = HashMap::new();
        let mut by_style: HashMap<String, usize> = HashMap::new();
        for c in conns.values() {
            *by_user.entry(c.user.clone()).or_default() += 1;
            *by_style.entry(c.style.to_string()).or_default() += 1;
            if let Some(cl) = &c.client {
                *by_client.entry(cl.clone()).or_default() += 1;
            }
            if let Some(m) = &c.msp {
                *by_msp.entry(m.clone()).or_default() += 1;
            }
        }
        let total = conns.len();
        drop(conns);
        let mut by_channel: HashMap<String, usize> = HashMap::new();
        for (name, c) in self.fan.channels.read().expect("channels lock").iter() {
            let n = c.lock().expect("subs lock").subscribers.len();
            if n > 0 {
                by_channel.insert(name.to_string(), n);
            }
        }
        for subs in self.fan.patterns.read().expect("patterns lock").values() {
            for (p, _) in subs {
                *by_channel.entry(p.clone()).or_default() += 1;
            }
        }
        let g = |a: &AtomicU64| a.load(Ordering::Relaxed);
        Stats {
            total_connections: total,
            connections_by_channel: by_channel,
            connections_by_user: by_user,
            client_connections: by_client,
            msp_connections: by_msp,
            connections_by_style: by_style,
            messages_published: g(&self.counters.published),
            messages_delivered: g(&self.counters.delivered),
            messages_in: g(&self.counters.messages_in),
            dropped_slow_consumers: g(&self.counters.dropped_slow),
            rate_limited: g(&self.counters.rate_limited),
            oversized: g(&self.counters.oversized),
            rejected_auth: g(&self.counters.rejected_auth),
            refused_connections: self
                .caps
                .get()
                .map_or(0, |c| c.refused.load(Ordering::Relaxed)),
            heap: super::heap::heap(),
        }
    }

    /// Events waiting in the connections' send queues: in all, and in the
    /// fullest one (a scrape's look, one connection's lock at a time).
    pub fn queues(&self) -> QueueDepths {
        let outs: Vec<Arc<Outbox>> = self
            .per_user
            .lock()
            .expect("per-user lock")
            .values()
            .flatten()
            .map(|(_, out)| Arc::clone(out))
            .collect();
        let mut d = QueueDepths::default();
        for out in outs {
            let n = out.queued();
            d.total += n;
            d.largest = d.largest.max(n);
        }
        d
    }

    /// Writes anything buffered to durable storage (on shutdown).
    pub fn flush(&self) {
        self.broker.flush();
    }
}

/// The longest `type` a publish may carry (bytes).
pub const MAX_TYPE: usize = 128;
/// The longest `id` a publish may carry (bytes).
pub const MAX_ID: usize = 256;

/// A publish less than this after the channel's previous fan-out ended is
/// part of a burst: queued for the connections' tasks to batch.
const BURST_GAP: Duration = Duration::from_millis(5);

/// Subscribers per thread before a fan-out is split across threads.
const FAN_OUT_CHUNK: usize = 1024;

/// Offers `ev` to every target: (delivered, not queued). With `direct`, a
/// live connection's offer is a `send()`, so a large fan-out is spread over the
/// machine's cores (scoped threads, joined before the caller releases the
/// channel's lock, so per-channel order holds); each connection is in
/// exactly one part.
fn fan_out(targets: &[&Subscriber], ev: &Arc<HubEvent>, direct: bool) -> (u64, u64) {
    fn part(targets: &[&Subscriber], ev: &Arc<HubEvent>, direct: bool) -> (u64, u64) {
        let mut delivered = 0;
        for sub in targets {
            if sub.offer(ev, direct) {
                delivered += 1;
            }
        }
        (delivered, targets.len() as u64 - delivered)
    }
    static CORES: OnceLock<usize> = OnceLock::new();
    let cores = *CORES.get_or_init(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    let parts = cores.min(targets.len() / FAN_OUT_CHUNK).max(1);
    if parts == 1 {
        return part(targets, ev, direct);
    }
    let size = targets.len().div_ceil(parts);
    std::thread::scope(|s| {
        let mut chunks = targets.chunks(size);
        let first = chunks.next().unwrap_or_default();
        let mut total = (0, 0);
        let mut helpers = Vec::new();
        for c in chunks {
            match std::thread::Builder::new()
                .name("hub-fan-out".into())
                .spawn_scoped(s, move || part(c, ev, direct))
            {
                Ok(h) => helpers.push(h),
                // No thread to be had: this one does that part too.
                Err(_) => {
                    let (d, n) = part(c, ev, direct);
                    total.0 += d;
                    total.1 += n;
                }
            }
        }
        let (d, n) = part(first, ev, direct);
        total.0 += d;
        total.1 += n;
        for h in helpers {
            // A panic in a helper is a bug: surface it like one here.
            let (d, n) = h.join().unwrap_or_else(|e| std::panic::resume_unwind(e));
            total.0 += d;
            total.1 += n;
        }
        total
    })
}

impl Stats {
    /// What `id` may see: everything for a token that may read every
    /// channel (`*`, operators); otherwise only its own tenant — channels
    /// it may read, its own user, client and MSP — and no hub-wide counts.
    pub fn visible_to(mut self, id: &super::auth::Identity) -> Stats {
        if id.may_read("*") {
            return self;
        }
        self.connections_by_channel.retain(|ch, _| id.may_read(ch));
        self.connections_by_user.retain(|u, _| *u == id.user);
        self.client_connections
            .retain(|c, _| id.client.as_deref() == Some(c.as_str()));
        self.msp_connections
            .retain(|m, _| id.msp.as_deref() == Some(m.as_str()));
        self.total_connections = self.connections_by_user.values().sum();
        self.connections_by_style.clear();
        self.messages_published = 0;
        self.messages_delivered = 0;
        self.messages_in = 0;
        self.dropped_slow_consumers = 0;
        self.rate_limited = 0;
        self.oversized = 0;
        self.rejected_auth = 0;
        self.refused_connections = 0;
        self.heap = None;
        self
    }
}

/// `GET /api/v1/ws/stats`.
#[derive(Debug, Clone, Serialize)]
pub struct Stats {
    pub total_connections: usize,
    pub connections_by_channel: HashMap<String, usize>,
    pub connections_by_user: HashMap<String, usize>,
    pub client_connections: HashMap<String, usize>,
    pub msp_connections: HashMap<String, usize>,
    pub connections_by_style: HashMap<String, usize>,
    pub messages_published: u64,
    pub messages_delivered: u64,
    pub messages_in: u64,
    pub dropped_slow_consumers: u64,
    pub rate_limited: u64,
    pub oversized: u64,
    pub rejected_auth: u64,
    /// Connections closed at accept for being over a cap.
    pub refused_connections: u64,
    /// The process's heap (operators only; none where it cannot be read).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub heap: Option<super::heap::Heap>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unsubscribing_or_leaving_unknown_channels_creates_nothing() {
        let broker = Arc::new(super::super::broker::MemoryBroker::new(
            HubLimits::default(),
            None,
            None,
        ));
        let hub = Hub::new(1024, broker);
        hub.unsubscribe(1, "never-created");
        hub.disconnect(1, &["also-never".to_owned()], &HashMap::new());
        assert!(hub.fan.channels.read().unwrap().is_empty());
        assert!(hub.broker.logs().is_empty());
    }

    #[test]
    fn the_last_subscriber_out_removes_the_channel_entry() {
        let fan = FanOut::default();
        let (a, b) = (subscriber(), subscriber());
        fan.add("c", 1, a);
        fan.add("c", 2, b);
        fan.remove("c", 1);
        assert!(fan.subs("c").is_some(), "one subscriber left");
        fan.remove("c", 2);
        assert!(fan.subs("c").is_none());
        assert!(fan.channels.read().unwrap().is_empty());
    }

    fn subscriber() -> Subscriber {
        let (a, _b) = tokio::io::duplex(64);
        let io = super::super::outbox::SharedIo::new(a);
        Subscriber {
            out: Arc::new(Outbox::new(io, super::super::endpoint::Endpoint::Native, 8)),
        }
    }
}
