//! The hub: the registry of channels (sequence, epoch, history, id index)
//! and of subscribers, and the fan-out from a publish to every matching
//! connection's bounded queue.
//!
//! Per-channel order is total: a publish assigns the sequence, appends to
//! history and offers the event to every subscriber under the channel's
//! lock, and a subscribe registers and snapshots history under the same
//! lock, so a subscriber never misses or reorders an event between its
//! backlog and the live stream. Offering never waits: a live connection
//! gets the event's pre-encoded frame written to its socket at once (a
//! non-blocking `send()`), any other has it queued; a full queue marks
//! that connection as lagging and it is closed with 1013 by its own task.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, RwLock};
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::value::RawValue;

use super::backplane::{Backplane, BackplaneError, Snapshot};
use super::cursors::{self, Cursor, CursorStore, UserCursors};
use super::event::{HubEvent, NewEvent, StoredEvent};
use super::grants;
use super::history::{History, Replay, Retention};
use super::outbox::Outbox;
use super::store::Store;
use crate::protocol::native::Position;
use crate::protocol::{Severity, Style};

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

#[derive(Debug)]
struct Channel {
    name: Arc<str>,
    epoch: Arc<str>,
    head: u64,
    history: History,
    /// id → seq for idempotent publishes, for the ids still in history.
    ids: HashMap<String, u64>,
    subscribers: HashMap<ConnId, Subscriber>,
    /// When the last fan-out ended (see [`BURST_GAP`]).
    last_fan_out: Option<std::time::Instant>,
    /// Event lines in the channel's file (with --data-dir): when they are
    /// far more than history keeps, the file is compacted.
    file_lines: usize,
}

impl Channel {
    fn new(name: Arc<str>, epoch: Arc<str>) -> Channel {
        Channel {
            name,
            epoch,
            head: 0,
            history: History::default(),
            ids: HashMap::new(),
            subscribers: HashMap::new(),
            last_fan_out: None,
            file_lines: 0,
        }
    }

    fn prune(&mut self, limits: &HubLimits, now: DateTime<Utc>) {
        let ids = &mut self.ids;
        self.history
            .prune(&limits.retention(&self.name), now, |old| {
                if let Some(id) = &old.id {
                    ids.remove(id);
                }
            });
    }

    /// Rewrites the channel's file to what its history keeps (a failure is
    /// logged; the file keeps growing until the next try).
    fn compact(&mut self, store: &dyn Store) {
        let kept: Vec<StoredEvent> = self.history.all().iter().map(|e| e.to_stored()).collect();
        match store.compact(
            &self.name,
            &self.epoch,
            self.head,
            self.history.trimmed(),
            &kept,
        ) {
            Ok(()) => self.file_lines = kept.len(),
            Err(e) => {
                tracing::error!(error = %e, channel = %self.name, "could not compact history")
            }
        }
    }

    /// Replaces the history with `events` (a restore or a Redis snapshot),
    /// whose trimmed sequences are `trimmed`.
    fn reset(&mut self, trimmed: (u64, u64), events: Vec<StoredEvent>) {
        self.history = History::with_trimmed(trimmed.0, trimmed.1);
        self.ids.clear();
        for s in events {
            let ev = Arc::new(HubEvent::from_stored(Arc::clone(&self.name), s));
            if let Some(id) = &ev.id {
                self.ids.insert(id.clone(), ev.seq);
            }
            self.history.push(ev);
        }
    }
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

/// Why a publish was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PublishError {
    #[error("invalid channel name {0:?}")]
    BadChannel(String),
    #[error("a published event needs a non-empty type")]
    NoType,
    #[error("event data is too large ({size} bytes, limit {max})")]
    TooLarge { size: usize, max: usize },
    #[error("event {field} is too long ({size} bytes, limit {max})")]
    FieldTooLong {
        field: &'static str,
        size: usize,
        max: usize,
    },
    /// The shared backplane (Redis) could not take the event; retry.
    #[error("the hub cannot store events right now: {0}")]
    Unavailable(String),
}

/// What a subscriber gets on subscribe.
#[derive(Debug)]
pub struct Subscribed {
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

/// The hub.
#[derive(Debug)]
pub struct Hub {
    limits: HubLimits,
    max_data: usize,
    channels: RwLock<HashMap<Arc<str>, Arc<Mutex<Channel>>>>,
    /// Pattern subscriptions (`department:*`): live only.
    patterns: RwLock<HashMap<ConnId, Vec<(String, Subscriber)>>>,
    conns: Mutex<HashMap<ConnId, ConnInfo>>,
    /// Open connections per user, kept beside `conns` so the per-user cap
    /// is checked in O(1) on every upgrade.
    per_user: Mutex<HashMap<String, usize>>,
    /// Where each user left each channel (`cursors.rs`), so a connection
    /// without a position of its own gets what its user missed.
    cursors: Mutex<HashMap<String, UserCursors>>,
    /// Durable cursors (`--data-dir`).
    cursor_store: Option<Arc<dyn CursorStore>>,
    next_conn: AtomicU64,
    pub counters: Counters,
    store: Option<Arc<dyn Store>>,
    /// The latest `dashboard_update` data, for the polling snapshot.
    dashboard: RwLock<Option<Arc<HubEvent>>>,
    /// Redis, when several hubs share channels.
    backplane: OnceLock<Arc<Backplane>>,
    /// The listener's connection caps, for stats.
    caps: OnceLock<Arc<super::caps::Caps>>,
}

/// Epochs are random so that a hub that lost its history is detected.
fn new_epoch() -> Arc<str> {
    Arc::from(format!("{:016x}", rand::random::<u64>()).as_str())
}

impl Hub {
    pub fn new(
        limits: HubLimits,
        max_data: usize,
        store: Option<Arc<dyn Store>>,
        cursor_store: Option<Arc<dyn CursorStore>>,
    ) -> Hub {
        let hub = Hub {
            limits,
            max_data,
            channels: RwLock::new(HashMap::new()),
            patterns: RwLock::new(HashMap::new()),
            conns: Mutex::new(HashMap::new()),
            per_user: Mutex::new(HashMap::new()),
            cursors: Mutex::new(HashMap::new()),
            cursor_store,
            next_conn: AtomicU64::new(1),
            counters: Counters::default(),
            store,
            dashboard: RwLock::new(None),
            backplane: OnceLock::new(),
            caps: OnceLock::new(),
        };
        hub.restore();
        hub
    }

    /// Loads persisted channels and cursors (with `--data-dir`).
    fn restore(&self) {
        if let Some(cs) = &self.cursor_store {
            let window = chrono::Duration::from_std(self.limits.retention("").critical_age)
                .unwrap_or(chrono::Duration::MAX);
            match cs.load(Utc::now() - window) {
                Ok(list) => {
                    let mut map = self.cursors.lock().expect("cursors lock");
                    for c in list {
                        cursors::insert(map.entry(c.user.clone()).or_default(), c);
                    }
                }
                Err(e) => tracing::error!(error = %e, "could not load cursors"),
            }
        }
        let Some(store) = &self.store else { return };
        let now = Utc::now();
        match store.load() {
            Ok(channels) => {
                let mut map = self.channels.write().expect("channels lock");
                for c in channels {
                    let name: Arc<str> = Arc::from(c.name.as_str());
                    let mut ch = Channel::new(Arc::clone(&name), Arc::from(c.epoch.as_str()));
                    ch.head = c.head;
                    ch.reset(c.trimmed, c.events);
                    ch.prune(&self.limits, now);
                    if let Some(ev) = ch
                        .history
                        .all()
                        .into_iter()
                        .rev()
                        .find(|e| e.kind == "dashboard_update")
                    {
                        *self.dashboard.write().expect("dashboard lock") = Some(ev);
                    }
                    // The file now holds what the rules keep, no more.
                    ch.compact(store.as_ref());
                    map.insert(name, Arc::new(Mutex::new(ch)));
                }
                tracing::info!(channels = map.len(), "history restored");
            }
            Err(e) => tracing::error!(error = %e, "could not restore history; starting empty"),
        }
    }

    /// A channel that already exists; never creates one.
    fn existing(&self, name: &str) -> Option<Arc<Mutex<Channel>>> {
        self.channels
            .read()
            .expect("channels lock")
            .get(name)
            .map(Arc::clone)
    }

    fn channel(&self, name: &str) -> Arc<Mutex<Channel>> {
        if let Some(c) = self.channels.read().expect("channels lock").get(name) {
            return Arc::clone(c);
        }
        let mut map = self.channels.write().expect("channels lock");
        // In memory only: its file (with --data-dir) comes with its first
        // event, so subscribing to names nobody publishes on leaves none.
        Arc::clone(
            map.entry(Arc::from(name)).or_insert_with(|| {
                Arc::new(Mutex::new(Channel::new(Arc::from(name), new_epoch())))
            }),
        )
    }

    /// Registers a connection and returns its id.
    pub fn connect(&self, info: ConnInfo) -> ConnId {
        let id = self.next_conn.fetch_add(1, Ordering::Relaxed);
        *self
            .per_user
            .lock()
            .expect("per-user lock")
            .entry(info.user.clone())
            .or_default() += 1;
        self.conns.lock().expect("conns lock").insert(id, info);
        id
    }

    /// How many connections `user` has open.
    pub fn connections_of(&self, user: &str) -> usize {
        self.per_user
            .lock()
            .expect("per-user lock")
            .get(user)
            .copied()
            .unwrap_or(0)
    }

    /// Removes a connection from every channel; `last_sent` are the
    /// positions it reached, remembered for its user's `user:` channels.
    pub fn disconnect(&self, conn: ConnId, channels: &[String], last_sent: &HashMap<String, u64>) {
        let info = self.conns.lock().expect("conns lock").remove(&conn);
        if let Some(info) = &info {
            let mut per_user = self.per_user.lock().expect("per-user lock");
            if let Some(n) = per_user.get_mut(&info.user) {
                *n -= 1;
                if *n == 0 {
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
            if let Some(c) = self.existing(ch) {
                c.lock().expect("channel lock").subscribers.remove(&conn);
            }
        }
        self.patterns.write().expect("patterns lock").remove(&conn);
        // Every channel this connection was sent something on, its own
        // subscriptions and what its patterns matched alike.
        if let Some(user) = user {
            for (ch, seq) in last_sent {
                if let Some(c) = self.existing(ch) {
                    let epoch = c.lock().expect("channel lock").epoch.to_string();
                    left.push(Cursor {
                        user: user.to_owned(),
                        channel: ch.clone(),
                        epoch,
                        seq: *seq,
                        at: now,
                    });
                }
            }
        }
        self.remember(left);
    }

    /// Records cursors in memory, in the store and on Redis.
    fn remember(&self, list: Vec<Cursor>) {
        if list.is_empty() {
            return;
        }
        {
            let mut map = self.cursors.lock().expect("cursors lock");
            for c in &list {
                cursors::insert(map.entry(c.user.clone()).or_default(), c.clone());
            }
        }
        if let Some(cs) = &self.cursor_store
            && let Err(e) = cs.save(&list)
        {
            tracing::error!(error = %e, "could not persist cursors");
        }
        if let Some(bp) = self.backplane.get() {
            let bp = Arc::clone(bp);
            tokio::spawn(async move {
                if let Err(e) = bp.save_cursors(&list).await {
                    tracing::warn!(error = %e, "could not share cursors");
                }
            });
        }
    }

    /// A user's cursors: this hub's, and with Redis every hub's (the newer
    /// of the two per channel). Anonymous users have none.
    pub async fn cursors_of(&self, user: &str) -> UserCursors {
        if user == super::auth::ANONYMOUS {
            return UserCursors::new();
        }
        let mut mine = self
            .cursors
            .lock()
            .expect("cursors lock")
            .get(user)
            .cloned()
            .unwrap_or_default();
        if let Some(bp) = self.backplane.get() {
            match bp.cursors_of(user).await {
                Ok(shared) => {
                    for c in shared {
                        if mine.get(&c.channel).is_none_or(|m| m.at < c.at) {
                            mine.insert(c.channel.clone(), c);
                        }
                    }
                }
                Err(e) => tracing::warn!(error = %e, user, "shared cursors unavailable"),
            }
        }
        mine
    }

    /// Whether an event would be accepted (a batch is checked whole before
    /// any of it is published).
    pub fn validate(&self, ev: &NewEvent) -> Result<(), PublishError> {
        self.check(ev).map(|_| ())
    }

    /// Checks an event and renders its data once.
    fn check(&self, ev: &NewEvent) -> Result<(Severity, Box<RawValue>), PublishError> {
        if !grants::valid(&ev.channel) || grants::is_pattern(&ev.channel) {
            return Err(PublishError::BadChannel(ev.channel.clone()));
        }
        if ev.kind.trim().is_empty() {
            return Err(PublishError::NoType);
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
            .unwrap_or_else(|| infer_severity(&ev.kind, &data_text));
        Ok((
            severity,
            RawValue::from_string(data_text).expect("serialized JSON is valid"),
        ))
    }

    /// The listener's connection caps (their refusals show in stats).
    pub fn set_caps(&self, caps: Arc<super::caps::Caps>) {
        let _ = self.caps.set(caps);
    }

    /// Uses Redis for every channel from now on.
    pub fn set_backplane(&self, bp: Arc<Backplane>) {
        let _ = self.backplane.set(bp);
    }

    /// Publishes one event, through the backplane when there is one.
    pub async fn publish_async(&self, ev: NewEvent) -> Result<Published, PublishError> {
        match self.backplane.get() {
            None => self.publish(ev),
            Some(bp) => {
                let (severity, data) = self.check(&ev)?;
                Ok(bp.publish(&ev, (&severity, &data)).await?)
            }
        }
    }

    /// Publishes one event on this hub alone: sequence, history,
    /// persistence, fan-out. With a backplane, use [`Hub::publish_async`].
    pub fn publish(&self, ev: NewEvent) -> Result<Published, PublishError> {
        if self.backplane.get().is_some() {
            return Err(PublishError::Unavailable(
                "this hub shares channels through Redis: publish asynchronously".into(),
            ));
        }
        let (severity, data) = self.check(&ev)?;
        let now = Utc::now();
        let chan = self.channel(&ev.channel);
        let mut c = chan.lock().expect("channel lock");
        if let Some(id) = &ev.id
            && let Some(seq) = c.ids.get(id)
        {
            return Ok(Published {
                channel: ev.channel,
                seq: *seq,
                id: ev.id,
                duplicate: true,
            });
        }
        let seq = c.head + 1;
        let stored = Arc::new(HubEvent::new(
            Arc::clone(&c.name),
            seq,
            ev.kind,
            severity,
            now,
            ev.id.clone(),
            data,
        ));
        if let Some(store) = &self.store {
            // Not stored, not sent: the publisher hears so and retries,
            // rather than being told "stored" by a hub with a full disk.
            if let Err(e) = store.append(&c.name, &c.epoch, &stored.to_stored()) {
                tracing::error!(error = %e, channel = %c.name, "could not persist an event");
                return Err(PublishError::Unavailable(format!(
                    "could not store the event: {e}"
                )));
            }
            c.file_lines += 1;
        }
        self.append_locked(&mut c, stored, now);
        if let Some(store) = &self.store
            && c.file_lines > 2 * c.history.len() + COMPACT_SLACK
        {
            // Files would otherwise only grow while the hub runs.
            c.compact(store.as_ref());
        }
        drop(c);
        Ok(Published {
            channel: ev.channel,
            seq,
            id: ev.id,
            duplicate: false,
        })
    }

    /// Appends the next event of a locked channel and offers it to every
    /// subscriber, pattern ones included, so all see the channel in order.
    fn append_locked(&self, c: &mut Channel, stored: Arc<HubEvent>, now: DateTime<Utc>) {
        c.head = stored.seq;
        if let Some(id) = &stored.id {
            c.ids.insert(id.clone(), stored.seq);
        }
        c.history.push(Arc::clone(&stored));
        c.prune(&self.limits, now);
        let patterns = self.patterns.read().expect("patterns lock");
        let mut targets: Vec<&Subscriber> = c.subscribers.values().collect();
        for subs in patterns.values() {
            if let Some((_, sub)) = subs
                .iter()
                .find(|(p, _)| grants::matches(p, &stored.channel))
            {
                targets.push(sub);
            }
        }
        // Back-to-back publishes (a batch, a burst) go through the
        // connections' queues, whose tasks write several frames per
        // `send()`; an event after a pause is written at once.
        let start = std::time::Instant::now();
        let direct = c
            .last_fan_out
            .is_none_or(|t| start.saturating_duration_since(t) >= BURST_GAP);
        let (delivered, dropped) = fan_out(&targets, &stored, direct);
        drop(patterns);
        c.last_fan_out = Some(std::time::Instant::now());
        if dropped > 0 {
            self.counters
                .dropped_slow
                .fetch_add(dropped, Ordering::Relaxed);
        }
        if stored.kind == "dashboard_update" {
            *self.dashboard.write().expect("dashboard lock") = Some(Arc::clone(&stored));
        }
        self.counters.published.fetch_add(1, Ordering::Relaxed);
        self.counters
            .delivered
            .fetch_add(delivered, Ordering::Relaxed);
    }

    /// Makes sure this hub holds a channel's state before a subscriber
    /// relies on it (backplane only; otherwise nothing to do).
    pub async fn prepare(&self, channel: &str) -> Result<(), BackplaneError> {
        let Some(bp) = self.backplane.get() else {
            return Ok(());
        };
        if grants::is_pattern(channel) || bp.mark_loaded(channel) {
            return Ok(());
        }
        let snap = bp.snapshot(channel, 0).await?;
        self.load(channel, snap, u64::MAX);
        Ok(())
    }

    /// Sets a channel's copy from Redis, keeping only events below `below`
    /// (the one being ingested is delivered separately). Never moves a
    /// channel backwards.
    fn load(&self, channel: &str, snap: Snapshot, below: u64) {
        if snap.epoch.is_empty() {
            return;
        }
        let chan = self.channel(channel);
        let mut c = chan.lock().expect("channel lock");
        let head = snap.head.min(below.saturating_sub(1));
        if *c.epoch == *snap.epoch && c.head >= head {
            return;
        }
        c.epoch = Arc::from(snap.epoch.as_str());
        c.head = head;
        let events = snap.events.into_iter().filter(|e| e.seq <= head).collect();
        c.reset(snap.trimmed, events);
        c.prune(&self.limits, Utc::now());
    }

    /// Takes one event from the backplane: delivers it in sequence order,
    /// filling a hole from Redis first.
    pub async fn ingest(
        &self,
        channel: &str,
        epoch: &str,
        ev: StoredEvent,
    ) -> Result<(), BackplaneError> {
        let Some(bp) = self.backplane.get() else {
            return Ok(());
        };
        if !bp.mark_loaded(channel) {
            let snap = bp.snapshot(channel, 0).await?;
            self.load(channel, snap, ev.seq);
        }
        let (local_epoch, head) = {
            let chan = self.channel(channel);
            let c = chan.lock().expect("channel lock");
            (c.epoch.to_string(), c.head)
        };
        if local_epoch == epoch && ev.seq > head + 1 {
            let snap = bp.snapshot(channel, head).await?;
            for missing in snap.events.into_iter().filter(|e| e.seq < ev.seq) {
                self.apply(channel, epoch, missing);
            }
        }
        self.apply(channel, epoch, ev);
        Ok(())
    }

    /// Re-reads a channel after the backplane subscription was lost.
    pub async fn resync(&self, channel: &str) -> Result<(), BackplaneError> {
        let Some(bp) = self.backplane.get() else {
            return Ok(());
        };
        let head = self.channel(channel).lock().expect("channel lock").head;
        let snap = bp.snapshot(channel, head).await?;
        let epoch = snap.epoch.clone();
        for ev in snap.events {
            self.apply(channel, &epoch, ev);
        }
        Ok(())
    }

    fn apply(&self, channel: &str, epoch: &str, ev: StoredEvent) {
        let chan = self.channel(channel);
        let mut c = chan.lock().expect("channel lock");
        if *c.epoch != *epoch {
            // Redis lost the channel (flushed): follow its new generation.
            c.epoch = Arc::from(epoch);
            c.head = ev.seq.saturating_sub(1);
            c.history = History::with_trimmed(c.head, c.head);
            c.ids.clear();
        }
        if ev.seq <= c.head {
            return;
        }
        let stored = Arc::new(HubEvent::from_stored(Arc::clone(&c.name), ev));
        self.append_locked(&mut c, stored, Utc::now());
    }

    /// Subscribes `conn` to a channel or pattern. With `since` the backlog
    /// holds everything after it; without, what `user` missed since its
    /// cursor (`mine`, from [`Hub::cursors_of`]), or, on the user's own
    /// `user:` channel never left before, everything still kept there
    /// (the offline queue); `gap` says when that was not fully possible.
    pub fn subscribe(
        &self,
        conn: ConnId,
        user: &str,
        channel: &str,
        sub: Subscriber,
        since: Option<Position>,
        mine: &UserCursors,
    ) -> Subscribed {
        if grants::is_pattern(channel) {
            return self.subscribe_pattern(conn, channel, sub, mine);
        }
        let known = user != super::auth::ANONYMOUS;
        let from_cursor = since.is_none() && known;
        let chan = self.channel(channel);
        let mut c = chan.lock().expect("channel lock");
        // The user's own channel, never left before: its whole offline
        // queue, without a gap notice for what was trimmed before.
        let whole_queue = from_cursor
            && !mine.contains_key(channel)
            && channel.strip_prefix("user:") == Some(user);
        let since = since.or_else(|| {
            if whole_queue {
                return Some(Position {
                    seq: 0,
                    epoch: c.epoch.to_string(),
                });
            }
            mine.get(channel)
                .filter(|_| from_cursor)
                .map(|cur| Position {
                    seq: cur.seq,
                    epoch: cur.epoch.clone(),
                })
        });
        c.prune(&self.limits, Utc::now());
        c.subscribers.insert(conn, sub);
        let (start, backlog, gap) = match since {
            None => (c.head, Vec::new(), None),
            Some(pos) => {
                let (start, replay): (u64, Replay) = if *pos.epoch != *c.epoch {
                    (0, c.history.replay_all())
                } else {
                    let start = pos.seq.min(c.head);
                    (start, c.history.replay(start))
                };
                let gap = replay.gap_until.filter(|_| !whole_queue).map(|oldest| Gap {
                    requested: pos.seq,
                    oldest,
                    criticals_kept: replay.criticals_kept,
                });
                (start, replay.events, gap)
            }
        };
        let subscribed = Subscribed {
            channel: channel.to_owned(),
            epoch: c.epoch.to_string(),
            head: c.head,
            start,
            backlog,
            gap,
        };
        drop(c);
        if known {
            // Seen here: a later connection without a position starts at
            // least from this head, and a hub killed meanwhile replays
            // rather than skips.
            self.remember(vec![Cursor {
                user: user.to_owned(),
                channel: channel.to_owned(),
                epoch: subscribed.epoch.clone(),
                seq: subscribed.head,
                at: Utc::now(),
            }]);
        }
        subscribed
    }

    /// A pattern subscription: live from now, after a backlog of each
    /// matching channel from the user's cursor on it, or, for a channel
    /// without one, of what came after the user left the pattern.
    fn subscribe_pattern(
        &self,
        conn: ConnId,
        pattern: &str,
        sub: Subscriber,
        mine: &UserCursors,
    ) -> Subscribed {
        {
            let mut p = self.patterns.write().expect("patterns lock");
            let list = p.entry(conn).or_default();
            if !list.iter().any(|(c, _)| c == pattern) {
                list.push((pattern.to_owned(), sub));
            }
        }
        let mut backlog = Vec::new();
        if let Some(left) = mine.get(pattern).map(|c| c.at) {
            let matching: Vec<Arc<Mutex<Channel>>> = self
                .channels
                .read()
                .expect("channels lock")
                .iter()
                .filter(|(name, _)| grants::matches(pattern, name))
                .map(|(_, c)| Arc::clone(c))
                .collect();
            for chan in matching {
                let c = chan.lock().expect("channel lock");
                match mine.get(&*c.name) {
                    Some(cur) if *cur.epoch == *c.epoch => backlog.extend(c.history.after(cur.seq)),
                    _ => backlog.extend(c.history.all().into_iter().filter(|e| e.time > left)),
                }
            }
        }
        Subscribed {
            channel: pattern.to_owned(),
            epoch: String::new(),
            head: 0,
            start: 0,
            backlog,
            gap: None,
        }
    }

    pub fn unsubscribe(&self, conn: ConnId, channel: &str) {
        if grants::is_pattern(channel) {
            if let Some(list) = self.patterns.write().expect("patterns lock").get_mut(&conn) {
                list.retain(|(c, _)| c != channel);
            }
            return;
        }
        // Unsubscribing from a channel nobody created must not create it
        // (nor, with --data-dir, a file for it): a client can send any name.
        if let Some(chan) = self.existing(channel) {
            chan.lock().expect("channel lock").subscribers.remove(&conn);
        }
    }

    /// The latest dashboard data, for the HTTP snapshot.
    pub fn dashboard_snapshot(&self) -> Option<Arc<HubEvent>> {
        self.dashboard.read().expect("dashboard lock").clone()
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
        for (name, c) in self.channels.read().expect("channels lock").iter() {
            let n = c.lock().expect("channel lock").subscribers.len();
            if n > 0 {
                by_channel.insert(name.to_string(), n);
            }
        }
        for subs in self.patterns.read().expect("patterns lock").values() {
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
        }
    }

    /// Writes anything buffered to the store (on shutdown).
    pub fn flush(&self) {
        if let Some(store) = &self.store
            && let Err(e) = store.flush()
        {
            tracing::error!(error = %e, "could not flush history");
        }
    }
}

/// The longest `type` a publish may carry (bytes).
pub const MAX_TYPE: usize = 128;
/// The longest `id` a publish may carry (bytes).
pub const MAX_ID: usize = 256;

/// A channel's file is compacted when it holds this many more event lines
/// than twice what history keeps.
const COMPACT_SLACK: usize = 1_000;

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

/// The severity a published event gets when the publisher gave none: the
/// same rules the client applies (docs/PROTOCOL.md), on the event rendered
/// as a typed message.
fn infer_severity(kind: &str, data: &str) -> Severity {
    let text = format!(
        r#"{{"type":{},"data":{data}}}"#,
        serde_json::Value::from(kind)
    );
    let src: Arc<str> = Arc::from("hub");
    match crate::protocol::decode(&text, &src, Utc::now()) {
        Ok(crate::protocol::Frame::Event(e)) => {
            // Trading messages carry their level at the top level; the
            // `data` wrapper puts it one deeper, which `decode` also reads.
            e.severity
        }
        _ => Severity::Info,
    }
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
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unsubscribing_or_leaving_unknown_channels_creates_nothing() {
        let hub = Hub::new(HubLimits::default(), 1024, None, None);
        hub.unsubscribe(1, "never-created");
        hub.disconnect(1, &["also-never".to_owned()], &HashMap::new());
        assert!(hub.channels.read().unwrap().is_empty());
    }
}
