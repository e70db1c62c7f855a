//! Several hubs as one, through Redis (`--redis URL`).
//!
//! Redis is the authority for every channel's epoch, sequence and history;
//! each hub keeps a local copy of the channels its clients use and fans out
//! from it exactly as a single hub does.
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
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::StreamExt;
use redis::aio::MultiplexedConnection;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use tokio_util::sync::CancellationToken;

use super::cursors::Cursor;
use super::event::{NewEvent, StoredEvent};
use super::history::{Retention, is_critical};
use super::hub::{Hub, PublishError, Published};

const EVENTS: &str = "rw:events";

const PUBLISH: &str = r#"
-- KEYS: epoch, seq, hist, ids, crit, trim
-- ARGV: channel, epoch candidate, id, body, keep, id ttl,
--       critical (1/0), now ms, critical age ms, critical keep
redis.call('SETNX', KEYS[1], ARGV[2])
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

/// A Redis failure: publishes fail with it; delivery retries.
#[derive(Debug, thiserror::Error)]
pub enum BackplaneError {
    #[error("redis: {0}")]
    Redis(#[from] redis::RedisError),
    #[error("redis returned an unreadable entry: {0}")]
    Corrupt(String),
}

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
pub struct Snapshot {
    pub epoch: String,
    pub head: u64,
    /// Highest (ordinary, critical) sequence trimmed.
    pub trimmed: (u64, u64),
    /// In sequence order.
    pub events: Vec<StoredEvent>,
}

/// The Redis connection of one hub.
#[derive(Debug)]
pub struct Backplane {
    client: redis::Client,
    conn: MultiplexedConnection,
    script: redis::Script,
    keep: usize,
    id_ttl: u64,
    critical_keep: usize,
    critical_age: Duration,
    /// Channels this hub holds a copy of.
    loaded: Mutex<HashSet<String>>,
}

impl Backplane {
    pub async fn connect(
        url: &str,
        keep: usize,
        id_ttl: Duration,
    ) -> Result<Backplane, BackplaneError> {
        let client = redis::Client::open(url)?;
        let conn = client.get_multiplexed_async_connection().await?;
        Ok(Backplane {
            client,
            conn,
            script: redis::Script::new(PUBLISH),
            keep: keep.max(1),
            id_ttl: id_ttl.as_secs().max(1),
            critical_keep: Retention::default().critical_len,
            critical_age: Retention::default().critical_age,
            loaded: Mutex::new(HashSet::new()),
        })
    }

    /// How long critical and emergency events stay (never less than the
    /// ordinary history). Default: [`Retention::default`]'s.
    pub fn critical(mut self, keep: usize, age: Duration) -> Self {
        self.critical_keep = keep.max(self.keep);
        self.critical_age = age;
        self
    }

    /// Publishes through Redis; the event reaches local subscribers when it
    /// comes back on `rw:events`.
    pub async fn publish(
        &self,
        ev: &NewEvent,
        body: (&crate::protocol::Severity, &RawValue),
    ) -> Result<Published, BackplaneError> {
        let [k_epoch, k_seq, k_hist, k_ids, k_crit, k_trim] = keys(&ev.channel);
        let critical = is_critical(*body.0);
        let body = serde_json::to_string(&Body {
            kind: &ev.kind,
            severity: *body.0,
            ts: chrono::Utc::now(),
            id: ev.id.as_deref(),
            data: body.1,
        })
        .expect("an event body serializes");
        let epoch = format!("{:016x}", rand::random::<u64>());
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
            .arg(epoch)
            .arg(ev.id.as_deref().unwrap_or(""))
            .arg(body)
            .arg(self.keep)
            .arg(self.id_ttl)
            .arg(if critical { "1" } else { "0" })
            .arg(chrono::Utc::now().timestamp_millis())
            .arg(u64::try_from(self.critical_age.as_millis()).unwrap_or(u64::MAX / 2))
            .arg(self.critical_keep)
            .invoke_async(&mut conn)
            .await?;
        Ok(Published {
            channel: ev.channel.clone(),
            seq,
            id: ev.id.clone(),
            duplicate: dup == 1,
        })
    }

    /// A channel's epoch, head and stored events after `after`.
    pub async fn snapshot(&self, channel: &str, after: u64) -> Result<Snapshot, BackplaneError> {
        let [k_epoch, k_seq, k_hist, _, k_crit, k_trim] = keys(channel);
        let mut conn = self.conn.clone();
        // A channel gets its epoch on first use, so a subscriber that comes
        // before the first publish already holds the right one.
        let candidate = format!("{:016x}", rand::random::<u64>());
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
            .set_nx(&k_epoch, candidate)
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
                serde_json::from_str(e).map_err(|err| BackplaneError::Corrupt(err.to_string()))?;
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

    /// Shares users' cursors with every hub: one hash per user
    /// (`rw:cursor:{user}`, field = channel), expiring with the critical
    /// history window (nothing older is kept to replay).
    pub async fn save_cursors(&self, list: &[Cursor]) -> Result<(), BackplaneError> {
        let ttl = i64::try_from(self.critical_age.as_secs().max(1)).unwrap_or(i64::MAX);
        let mut pipe = redis::pipe();
        for c in list {
            let key = cursor_key(&c.user);
            let value = serde_json::to_string(c).expect("a cursor serializes");
            pipe.hset(&key, &c.channel, value).ignore();
            pipe.expire(&key, ttl).ignore();
        }
        let mut conn = self.conn.clone();
        pipe.query_async::<()>(&mut conn).await?;
        Ok(())
    }

    /// Every cursor of `user` that any hub shared.
    pub async fn cursors_of(&self, user: &str) -> Result<Vec<Cursor>, BackplaneError> {
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

    /// Whether this hub already holds `channel`; marks it held.
    pub fn mark_loaded(&self, channel: &str) -> bool {
        !self
            .loaded
            .lock()
            .expect("loaded lock")
            .insert(channel.to_owned())
    }

    pub fn loaded(&self) -> Vec<String> {
        self.loaded
            .lock()
            .expect("loaded lock")
            .iter()
            .cloned()
            .collect()
    }

    /// Receives `rw:events` and ingests them into `hub` until `stop`,
    /// resubscribing (and resynchronising every held channel) after a lost
    /// subscription.
    pub async fn run(self: Arc<Self>, hub: Arc<Hub>, stop: CancellationToken) {
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
                            if let Err(e) = hub.resync(&ch).await {
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
                                            if let Err(e) = hub.ingest(&env.channel, &env.epoch, env.ev).await {
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

impl From<BackplaneError> for PublishError {
    fn from(e: BackplaneError) -> Self {
        PublishError::Unavailable(e.to_string())
    }
}
