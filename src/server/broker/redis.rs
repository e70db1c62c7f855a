//! The Redis broker: several hubs as one (`--redis URL`).
//!
//! Redis is the authority for every channel's epoch, sequence and history;
//! each hub keeps a local copy (`log.rs`) of the channels its clients use,
//! and its fan-out delivers from that copy exactly as on a single hub.
//!
//! - **Publish**: one Lua script, atomic in Redis: create the epoch if new,
//!   answer a repeated `id` with its first sequence, `INCR` the sequence,
//!   store the event under the history rules (`history.rs`): ordinary
//!   events in a list capped by count (`RPUSH` + `LTRIM`), critical and
//!   emergency ones in a sorted set by publish time trimmed by age and
//!   count, each trim recorded as the highest sequence gone; and `PUBLISH`
//!   the stored event on `rw:events`. Sequence order is therefore pub/sub
//!   order.
//! - **Deliver**: every hub subscribes to `rw:events` and ingests each event
//!   into its local channel in sequence order; a hole (a hub that joined late
//!   or missed messages while its subscription reconnected) is filled from
//!   the Redis history before anything after it is delivered.
//! - **Resume on another hub**: the epoch is shared, so a client that was on
//!   hub A resumes on hub B from its last sequence, from B's copy (loaded
//!   from Redis on first use).
//!
//! Why lists and pub/sub rather than streams: the history must be trimmed to
//! a count and read by sequence range, which a capped list plus the
//! sequence inside each entry does in one `LRANGE`; pub/sub gives push
//! delivery with Redis's own ordering. A stream would add consumer-group
//! state that nothing here needs.

use std::collections::HashSet;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use chrono::Utc;
use futures_util::future::BoxFuture;
use futures_util::{FutureExt, StreamExt};
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use tokio_util::sync::CancellationToken;

use super::log::{Logs, lock};
use super::{
    Broker, BrokerError, HubLimits, Prepared, Published, Recover, Recovered, Register, Sink,
    new_epoch,
};
use crate::server::cursors::{Cursor, CursorMap, UserCursors};
use crate::server::event::{HubEvent, StoredEvent};
use crate::server::grants;
use crate::server::history::is_critical;

const EVENTS: &str = "rw:events";

const PUBLISH: &str = r#"
-- KEYS: epoch, seq, hist, ids, crit, trim
-- ARGV: channel, epoch candidate, id, body, keep, id ttl,
--       critical (1/0), now ms, critical age ms, critical keep
redis.call('SETNX', KEYS[1], ARGV[2])
-- a subscriber's early epoch (expiring) becomes the channel's for good
redis.call('PERSIST', KEYS[1])
local epoch = redis.call('GET', KEYS[1])
if ARGV[3] ~= '' then
  local seen = redis.call('HGET', KEYS[4], ARGV[3])
  if seen then return {tonumber(seen), epoch, 1} end
end
local seq = redis.call('INCR', KEYS[2])
local entry = '{"seq":' .. seq .. ',' .. string.sub(ARGV[4], 2)
local function seq_of(e) return tonumber(string.match(e, '^{"seq":(%d+)')) end
local function trimmed(field, upto)
  local cur = tonumber(redis.call('HGET', KEYS[6], field) or '0')
  if upto > cur then redis.call('HSET', KEYS[6], field, upto) end
end
if ARGV[7] == '1' then
  -- critical and emergency: by age, then by count
  local now = tonumber(ARGV[8])
  redis.call('ZADD', KEYS[5], now, entry)
  local gone = redis.call('ZRANGEBYSCORE', KEYS[5], '-inf', '(' .. (now - tonumber(ARGV[9])))
  local over = redis.call('ZCARD', KEYS[5]) - #gone - tonumber(ARGV[10])
  if over > 0 then
    for _, e in ipairs(redis.call('ZRANGE', KEYS[5], #gone, #gone + over - 1)) do
      table.insert(gone, e)
    end
  end
  local upto = 0
  for _, e in ipairs(gone) do
    upto = math.max(upto, seq_of(e))
    redis.call('ZREM', KEYS[5], e)
  end
  if upto > 0 then trimmed('c', upto) end
else
  redis.call('RPUSH', KEYS[3], entry)
  local len = redis.call('LLEN', KEYS[3])
  local keep = tonumber(ARGV[5])
  if len > keep then
    trimmed('o', seq_of(redis.call('LINDEX', KEYS[3], len - keep - 1)))
    redis.call('LTRIM', KEYS[3], -keep, -1)
  end
end
if ARGV[3] ~= '' then
  redis.call('HSET', KEYS[4], ARGV[3], seq)
  redis.call('EXPIRE', KEYS[4], tonumber(ARGV[6]))
end
redis.call('PUBLISH', 'rw:events', '{"channel":' .. cjson.encode(ARGV[1]) .. ',"epoch":' .. cjson.encode(epoch) .. ',"ev":' .. entry .. '}')
return {seq, epoch, 0}
"#;

/// A channel's keys: epoch, sequence, ordinary history (a list), ids,
/// critical history (a sorted set scored by publish time in ms, so age
/// trimming is one range), and the trim marks (`o`, `c`: the highest
/// ordinary / critical sequence trimmed).
fn keys(channel: &str) -> [String; 6] {
    [
        format!("rw:ch:{{{channel}}}:epoch"),
        format!("rw:ch:{{{channel}}}:seq"),
        format!("rw:ch:{{{channel}}}:hist"),
        format!("rw:ch:{{{channel}}}:ids"),
        format!("rw:ch:{{{channel}}}:crit"),
        format!("rw:ch:{{{channel}}}:trim"),
    ]
}

/// The hash of one user's cursors.
fn cursor_key(user: &str) -> String {
    format!("rw:cursor:{{{user}}}")
}

/// The event without its sequence (Redis assigns it).
#[derive(Serialize)]
struct Body<'a> {
    #[serde(rename = "type")]
    kind: &'a str,
    severity: crate::protocol::Severity,
    ts: chrono::DateTime<chrono::Utc>,
    #[serde(skip_serializing_if = "Option::is_none")]
    id: Option<&'a str>,
    data: &'a RawValue,
}

#[derive(Deserialize)]
struct Envelope {
    channel: String,
    epoch: String,
    ev: StoredEvent,
}

/// A channel's state in Redis.
#[derive(Debug)]
struct Snapshot {
    epoch: String,
    head: u64,
    /// Highest (ordinary, critical) sequence trimmed.
    trimmed: (u64, u64),
    /// In sequence order.
    events: Vec<StoredEvent>,
}

/// One hub's Redis connection and its copy of the channels in use.
pub struct RedisBroker {
    client: redis::Client,
    /// Commands; reconnects by itself when Redis restarts or the link
    /// breaks (the command that met the break fails, the next reconnect).
    conn: ConnectionManager,
    script: redis::Script,
    /// Ordinary events kept per channel in Redis (the history or offline
    /// length, whichever is longer).
    keep: usize,
    /// How long a published id is remembered.
    id_ttl: u64,
    logs: Logs,
    sink: OnceLock<Arc<dyn Sink>>,
    cursors: CursorMap,
    /// Channels whose local copy was loaded from Redis.
    loaded: Mutex<HashSet<String>>,
}

impl std::fmt::Debug for RedisBroker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisBroker")
            .field("client", &self.client)
            .field("keep", &self.keep)
            .field("id_ttl", &self.id_ttl)
            .finish_non_exhaustive()
    }
}

impl RedisBroker {
    /// Connects; history follows `limits` in Redis and in the local copy.
    pub async fn connect(url: &str, limits: HubLimits) -> Result<RedisBroker, BrokerError> {
        let client = redis::Client::open(url)?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Duration::from_secs(2))
            .set_response_timeout(Duration::from_secs(5))
            .set_number_of_retries(3)
            .set_max_delay(2_000);
        let conn = ConnectionManager::new_with_config(client.clone(), config).await?;
        Ok(RedisBroker {
            client,
            conn,
            script: redis::Script::new(PUBLISH),
            keep: limits.history_len.max(limits.offline_keep).max(1),
            id_ttl: limits.history_age.as_secs().max(1),
            logs: Logs::new(limits),
            sink: OnceLock::new(),
            cursors: CursorMap::default(),
            loaded: Mutex::new(HashSet::new()),
        })
    }

    async fn publish_now(&self, ev: Prepared) -> Result<Published, BrokerError> {
        let [k_epoch, k_seq, k_hist, k_ids, k_crit, k_trim] = keys(&ev.channel);
        let retention = self.logs.limits.retention(&ev.channel);
        let body = serde_json::to_string(&Body {
            kind: &ev.kind,
            severity: ev.severity,
            ts: Utc::now(),
            id: ev.id.as_deref(),
            data: &ev.data,
        })
        .expect("an event body serializes");
        let mut conn = self.conn.clone();
        let (seq, _epoch, dup): (u64, String, u8) = self
            .script
            .key(k_epoch)
            .key(k_seq)
            .key(k_hist)
            .key(k_ids)
            .key(k_crit)
            .key(k_trim)
            .arg(&ev.channel)
            .arg(new_epoch())
            .arg(ev.id.as_deref().unwrap_or(""))
            .arg(body)
            .arg(self.keep)
            .arg(self.id_ttl)
            .arg(if is_critical(ev.severity) { "1" } else { "0" })
            .arg(Utc::now().timestamp_millis())
            .arg(u64::try_from(retention.critical_age.as_millis()).unwrap_or(u64::MAX / 2))
            .arg(retention.critical_len.max(self.keep))
            .invoke_async(&mut conn)
            .await?;
        Ok(Published {
            channel: ev.channel,
            seq,
            id: ev.id,
            duplicate: dup == 1,
        })
    }

    /// A channel's epoch, head and stored events after `after`.
    async fn snapshot(&self, channel: &str, after: u64) -> Result<Snapshot, BrokerError> {
        let [k_epoch, k_seq, k_hist, _, k_crit, k_trim] = keys(channel);
        let mut conn = self.conn.clone();
        // A channel gets its epoch on first use, so a subscriber that comes
        // before the first publish already holds the right one; until that
        // publish it expires (with the critical window), so subscribing to
        // names nobody publishes on leaves nothing behind in Redis.
        type Reply = (
            (),
            Option<String>,
            Option<u64>,
            Vec<String>,
            Vec<String>,
            (Option<u64>, Option<u64>),
        );
        let (_, epoch, head, ordinary, critical, trimmed): Reply = redis::pipe()
            .atomic()
            .cmd("SET")
            .arg(&k_epoch)
            .arg(new_epoch())
            .arg("NX")
            .arg("EX")
            .arg(self.logs.limits.retention("").critical_age.as_secs().max(1))
            .get(&k_epoch)
            .get(&k_seq)
            .lrange(&k_hist, 0, -1)
            .zrange(&k_crit, 0, -1)
            .hget(&k_trim, &["o", "c"])
            .query_async(&mut conn)
            .await?;
        let mut events = Vec::with_capacity(ordinary.len() + critical.len());
        for e in ordinary.iter().chain(critical.iter()) {
            let ev: StoredEvent =
                serde_json::from_str(e).map_err(|err| BrokerError::Corrupt(err.to_string()))?;
            if ev.seq > after {
                events.push(ev);
            }
        }
        events.sort_by_key(|e| e.seq);
        events.dedup_by_key(|e| e.seq);
        Ok(Snapshot {
            epoch: epoch.unwrap_or_default(),
            head: head.unwrap_or(0),
            trimmed: (trimmed.0.unwrap_or(0), trimmed.1.unwrap_or(0)),
            events,
        })
    }

    /// Whether the local copy of `channel` was loaded; marks it loaded.
    fn mark_loaded(&self, channel: &str) -> bool {
        !self
            .loaded
            .lock()
            .expect("loaded lock")
            .insert(channel.to_owned())
    }

    fn loaded(&self) -> Vec<String> {
        self.loaded
            .lock()
            .expect("loaded lock")
            .iter()
            .cloned()
            .collect()
    }

    /// Makes sure the local copy of a channel exists before a subscriber
    /// relies on it. A channel nobody published on gets no copy (a client
    /// cannot grow this hub's memory with made-up names): its epoch in
    /// Redis is returned instead.
    async fn prepare(&self, channel: &str) -> Result<Option<String>, BrokerError> {
        if grants::is_pattern(channel) || self.mark_loaded(channel) {
            return Ok(None);
        }
        match self.snapshot(channel, 0).await {
            Ok(snap) if snap.head == 0 && snap.events.is_empty() => {
                self.loaded.lock().expect("loaded lock").remove(channel);
                Ok(Some(snap.epoch))
            }
            Ok(snap) => {
                self.load(channel, snap, u64::MAX);
                Ok(None)
            }
            Err(e) => {
                // Not loaded after all: the next subscriber tries again.
                self.loaded.lock().expect("loaded lock").remove(channel);
                Err(e)
            }
        }
    }

    /// Sets a channel's copy from Redis, keeping only events below `below`
    /// (the one being ingested is delivered separately). Never moves a
    /// channel backwards.
    fn load(&self, channel: &str, snap: Snapshot, below: u64) {
        if snap.epoch.is_empty() {
            return;
        }
        let log = self.logs.get_or_create(channel);
        let mut c = lock(&log);
        let head = snap.head.min(below.saturating_sub(1));
        if *c.epoch == *snap.epoch && c.head >= head {
            return;
        }
        c.epoch = Arc::from(snap.epoch.as_str());
        c.head = head;
        let events = snap.events.into_iter().filter(|e| e.seq <= head).collect();
        c.reset(snap.trimmed, events);
        c.prune(&self.logs.limits, Utc::now());
    }

    /// Takes one event from Redis: delivers it in sequence order, filling
    /// a hole from Redis first.
    async fn ingest(&self, channel: &str, epoch: &str, ev: StoredEvent) -> Result<(), BrokerError> {
        if !self.mark_loaded(channel) {
            let snap = self.snapshot(channel, 0).await?;
            self.load(channel, snap, ev.seq);
        }
        let (local_epoch, head) = {
            let log = self.logs.get_or_create(channel);
            let c = lock(&log);
            (c.epoch.to_string(), c.head)
        };
        if local_epoch == epoch && ev.seq > head + 1 {
            let snap = self.snapshot(channel, head).await?;
            for missing in snap.events.into_iter().filter(|e| e.seq < ev.seq) {
                self.apply(channel, epoch, missing);
            }
        }
        self.apply(channel, epoch, ev);
        Ok(())
    }

    /// Re-reads a channel after the Redis subscription was lost.
    async fn resync(&self, channel: &str) -> Result<(), BrokerError> {
        let head = lock(&self.logs.get_or_create(channel)).head;
        let snap = self.snapshot(channel, head).await?;
        for ev in snap.events {
            self.apply(channel, &snap.epoch, ev);
        }
        Ok(())
    }

    /// Appends one event to the local copy and delivers it, unless the
    /// copy already has it.
    fn apply(&self, channel: &str, epoch: &str, ev: StoredEvent) {
        let log = self.logs.get_or_create(channel);
        let mut c = lock(&log);
        if *c.epoch != *epoch {
            // Redis lost the channel (flushed): follow its new generation.
            c.restart(epoch, ev.seq);
        }
        if ev.seq <= c.head {
            return;
        }
        let stored = Arc::new(HubEvent::from_stored(Arc::clone(&c.name), ev));
        c.append(stored, &self.logs.limits, Utc::now(), self.sink.get());
    }

    /// Every cursor of `user` that any hub shared.
    async fn shared_cursors(&self, user: &str) -> Result<Vec<Cursor>, BrokerError> {
        let mut conn = self.conn.clone();
        let all: std::collections::HashMap<String, String> = redis::cmd("HGETALL")
            .arg(cursor_key(user))
            .query_async(&mut conn)
            .await?;
        Ok(all
            .into_values()
            .filter_map(|v| serde_json::from_str::<Cursor>(&v).ok())
            .collect())
    }

    /// Receives `rw:events` and ingests them until `stop`, resubscribing
    /// (and resynchronising every held channel) after a lost subscription.
    async fn receive(self: Arc<Self>, stop: CancellationToken) {
        let mut backoff = Duration::from_millis(100);
        loop {
            if stop.is_cancelled() {
                return;
            }
            match self.client.get_async_pubsub().await {
                Ok(mut ps) => {
                    if let Err(e) = ps.subscribe(EVENTS).await {
                        tracing::warn!(error = %e, "redis subscribe failed");
                    } else {
                        backoff = Duration::from_millis(100);
                        // Anything published while we were not listening.
                        for ch in self.loaded() {
                            if let Err(e) = self.resync(&ch).await {
                                tracing::warn!(error = %e, channel = %ch, "resync failed");
                            }
                        }
                        let mut stream = ps.on_message();
                        loop {
                            tokio::select! {
                                _ = stop.cancelled() => return,
                                msg = stream.next() => {
                                    let Some(msg) = msg else { break };
                                    let Ok(payload) = msg.get_payload::<String>() else { continue };
                                    match serde_json::from_str::<Envelope>(&payload) {
                                        Ok(env) => {
                                            if let Err(e) = self.ingest(&env.channel, &env.epoch, env.ev).await {
                                                tracing::warn!(error = %e, "ingest failed");
                                            }
                                        }
                                        Err(e) => tracing::warn!(error = %e, "unreadable event on rw:events"),
                                    }
                                }
                            }
                        }
                        tracing::warn!("redis subscription lost; reconnecting");
                    }
                }
                Err(e) => tracing::warn!(error = %e, "redis unreachable; retrying"),
            }
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tokio::time::sleep(backoff) => {}
            }
            backoff = (backoff * 2).min(Duration::from_secs(5));
        }
    }
}

/// Shares users' cursors with every hub: one hash per user
/// (`rw:cursor:{user}`, field = channel), expiring with the critical
/// history window (nothing older is kept to replay).
async fn share_cursors(
    mut conn: ConnectionManager,
    age: Duration,
    list: &[Cursor],
) -> Result<(), BrokerError> {
    let ttl = i64::try_from(age.as_secs().max(1)).unwrap_or(i64::MAX);
    let mut pipe = redis::pipe();
    for c in list {
        let key = cursor_key(&c.user);
        let value = serde_json::to_string(c).expect("a cursor serializes");
        pipe.hset(&key, &c.channel, value).ignore();
        pipe.expire(&key, ttl).ignore();
    }
    pipe.query_async::<()>(&mut conn).await?;
    Ok(())
}

impl Broker for RedisBroker {
    fn attach(&self, sink: Arc<dyn Sink>) {
        let _ = self.sink.set(sink);
    }

    fn run(self: Arc<Self>, stop: CancellationToken) -> BoxFuture<'static, ()> {
        self.receive(stop).boxed()
    }

    /// The event reaches local subscribers when it comes back on
    /// `rw:events`.
    fn publish(&self, ev: Prepared) -> BoxFuture<'_, Result<Published, BrokerError>> {
        self.publish_now(ev).boxed()
    }

    fn recover<'a>(
        &'a self,
        channel: &'a str,
        from: Recover,
        register: Register<'a>,
    ) -> BoxFuture<'a, Result<Recovered, BrokerError>> {
        async move {
            let unpublished = self.prepare(channel).await?;
            let epoch = unpublished.as_deref().filter(|e| !e.is_empty());
            Ok(self
                .logs
                .recover(channel, &from, epoch, Utc::now(), register))
        }
        .boxed()
    }

    fn remember(&self, list: Vec<Cursor>) {
        if list.is_empty() {
            return;
        }
        self.cursors.add(list.iter().cloned());
        let conn = self.conn.clone();
        let age = self.logs.limits.retention("").critical_age;
        tokio::spawn(async move {
            if let Err(e) = share_cursors(conn, age, &list).await {
                tracing::warn!(error = %e, "could not share cursors");
            }
        });
    }

    fn cursors_of<'a>(&'a self, user: &'a str) -> BoxFuture<'a, UserCursors> {
        async move {
            let mut mine = self.cursors.of(user);
            match self.shared_cursors(user).await {
                Ok(shared) => {
                    for c in shared {
                        if mine.get(&c.channel).is_none_or(|m| m.at < c.at) {
                            mine.insert(c.channel.clone(), c);
                        }
                    }
                }
                Err(e) => tracing::warn!(error = %e, user, "shared cursors unavailable"),
            }
            mine
        }
        .boxed()
    }

    fn logs(&self) -> &Logs {
        &self.logs
    }

    /// Redis holds everything already.
    fn flush(&self) {}
}
