//! One channel's log — epoch, head, retained history and the id index of
//! idempotent publishes — and the map of every log a hub holds. Both
//! brokers keep their channels here: the memory broker as the truth, the
//! Redis broker as a local copy of Redis. A log is locked while an event is
//! appended and handed to the fan-out, and while a subscriber recovers from
//! it, so per-channel order is total.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, RwLock};

use chrono::{DateTime, Utc};

use super::{Gap, HubLimits, Recover, Recovered, Sink, new_epoch};
use crate::server::cursors::UserCursors;
use crate::server::event::{HubEvent, StoredEvent};
use crate::server::grants;
use crate::server::history::{History, Replay};

#[derive(Debug)]
pub struct Log {
    pub name: Arc<str>,
    pub epoch: Arc<str>,
    pub head: u64,
    pub history: History,
    /// id → seq for idempotent publishes, for the ids still in history.
    ids: HashMap<String, u64>,
    /// Event lines in the channel's file (memory broker with --data-dir):
    /// when they are far more than history keeps, the file is compacted.
    pub file_lines: usize,
}

impl Log {
    fn new(name: Arc<str>, epoch: Arc<str>) -> Log {
        Log {
            name,
            epoch,
            head: 0,
            history: History::default(),
            ids: HashMap::new(),
            file_lines: 0,
        }
    }

    /// Trims history by the channel's rules.
    pub fn prune(&mut self, limits: &HubLimits, now: DateTime<Utc>) {
        let ids = &mut self.ids;
        self.history
            .prune(&limits.retention(&self.name), now, |old| {
                if let Some(id) = &old.id {
                    ids.remove(id);
                }
            });
    }

    /// The sequence an id was first published with, while it is kept.
    pub fn seen(&self, id: &str) -> Option<u64> {
        self.ids.get(id).copied()
    }

    /// Replaces the history with `events` (a restore or a Redis snapshot),
    /// whose trimmed sequences are `trimmed`.
    pub fn reset(&mut self, trimmed: (u64, u64), events: Vec<StoredEvent>) {
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

    /// Starts a new generation at `epoch` whose next event is `next`
    /// (Redis lost the channel).
    pub fn restart(&mut self, epoch: &str, next: u64) {
        self.epoch = Arc::from(epoch);
        self.head = next.saturating_sub(1);
        self.history = History::with_trimmed(self.head, self.head);
        self.ids.clear();
    }

    /// Appends the channel's next event, trims, and hands it to `sink`.
    pub fn append(
        &mut self,
        ev: Arc<HubEvent>,
        limits: &HubLimits,
        now: DateTime<Utc>,
        sink: Option<&Arc<dyn Sink>>,
    ) {
        self.head = ev.seq;
        if let Some(id) = &ev.id {
            self.ids.insert(id.clone(), ev.seq);
        }
        self.history.push(Arc::clone(&ev));
        self.prune(limits, now);
        if let Some(sink) = sink {
            sink.deliver(&ev);
        }
    }

    /// Where the channel is and what after `from` it still holds.
    pub fn recover(&mut self, from: &Recover, limits: &HubLimits, now: DateTime<Utc>) -> Recovered {
        self.prune(limits, now);
        let mut rec = Recovered {
            channel: self.name.to_string(),
            epoch: self.epoch.to_string(),
            head: self.head,
            start: self.head,
            backlog: Vec::new(),
            gap: None,
        };
        let (requested, start, replay): (u64, u64, Replay) = match from {
            Recover::Head => return rec,
            Recover::After(t) => {
                let all = self.history.all();
                if let Some(first) = all.iter().find(|e| e.time > *t) {
                    rec.start = first.seq - 1;
                    rec.backlog = self.history.after(rec.start);
                }
                return rec;
            }
            Recover::Whole => (0, 0, self.history.replay_all()),
            Recover::Since(pos) if *pos.epoch != *self.epoch => {
                (pos.seq, 0, self.history.replay_all())
            }
            Recover::Since(pos) => {
                let start = pos.seq.min(self.head);
                (pos.seq, start, self.history.replay(start))
            }
            Recover::AfterSeq(seq) => {
                let start = (*seq).min(self.head);
                (*seq, start, self.history.replay(start))
            }
        };
        rec.start = start;
        rec.backlog = replay.events;
        rec.gap = replay
            .gap_until
            .filter(|_| *from != Recover::Whole)
            .map(|oldest| Gap {
                requested,
                oldest,
                criticals_kept: replay.criticals_kept,
            });
        rec
    }
}

/// Every channel log a hub holds.
///
/// Only a publish (or, with Redis, an event from another hub) creates a
/// log: subscribing to a name nobody published on recovers from an empty
/// log that is not kept, so a client cannot grow the hub's memory by
/// subscribing to made-up names. Such a channel reports the epoch this
/// process gives every channel it creates (`boot`), so a subscriber that
/// came before the first publish already holds the channel's epoch.
#[derive(Debug)]
pub struct Logs {
    pub limits: HubLimits,
    map: RwLock<HashMap<Arc<str>, Arc<Mutex<Log>>>>,
    boot: Arc<str>,
}

/// Locks a log; a panic while one was held poisons nothing worth losing
/// the channel over.
pub fn lock(log: &Mutex<Log>) -> MutexGuard<'_, Log> {
    log.lock().unwrap_or_else(|e| e.into_inner())
}

impl Logs {
    pub fn new(limits: HubLimits) -> Logs {
        Logs {
            limits,
            map: RwLock::new(HashMap::new()),
            boot: Arc::from(new_epoch().as_str()),
        }
    }

    /// A log that already exists; never creates one.
    pub fn get(&self, name: &str) -> Option<Arc<Mutex<Log>>> {
        self.map
            .read()
            .expect("logs lock")
            .get(name)
            .map(Arc::clone)
    }

    /// The log of `name`, created (at this process's epoch, in memory
    /// only) when missing.
    pub fn get_or_create(&self, name: &str) -> Arc<Mutex<Log>> {
        if let Some(c) = self.get(name) {
            return c;
        }
        let mut map = self.map.write().expect("logs lock");
        Arc::clone(map.entry(Arc::from(name)).or_insert_with(|| {
            Arc::new(Mutex::new(Log::new(
                Arc::from(name),
                Arc::clone(&self.boot),
            )))
        }))
    }

    /// What a subscriber recovers from `name`: from its log, or, when the
    /// channel has none, from an empty one at `epoch` (default: this
    /// process's) that is not kept. `register` (the subscriber joining the
    /// fan-out) runs in the same step: with the log locked, or, without a
    /// log, with the map locked so none can be created meanwhile. So every
    /// event up to the recovered head is in the backlog or before it, and
    /// every later one reaches the subscriber live.
    pub fn recover(
        &self,
        name: &str,
        from: &Recover,
        epoch: Option<&str>,
        now: DateTime<Utc>,
        register: impl FnOnce(),
    ) -> Recovered {
        let map = self.map.read().expect("logs lock");
        match map.get(name) {
            Some(log) => {
                let mut c = lock(log);
                register();
                c.recover(from, &self.limits, now)
            }
            None => {
                register();
                let epoch = epoch.map_or_else(|| Arc::clone(&self.boot), Arc::from);
                Log::new(Arc::from(name), epoch).recover(from, &self.limits, now)
            }
        }
    }

    /// Adds a restored log.
    pub fn insert(&self, log: Log) {
        let name = Arc::clone(&log.name);
        self.map
            .write()
            .expect("logs lock")
            .insert(name, Arc::new(Mutex::new(log)));
    }

    /// A fresh log to fill before [`Logs::insert`].
    pub fn restored(&self, name: &str, epoch: &str, head: u64) -> Log {
        let mut log = Log::new(Arc::from(name), Arc::from(epoch));
        log.head = head;
        log
    }

    /// Every channel the hub holds, by name.
    pub fn names(&self) -> Vec<Arc<str>> {
        self.map
            .read()
            .expect("logs lock")
            .keys()
            .map(Arc::clone)
            .collect()
    }

    pub fn len(&self) -> usize {
        self.map.read().expect("logs lock").len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// A channel's current epoch, if the hub holds it.
    pub fn epoch(&self, name: &str) -> Option<String> {
        self.get(name).map(|c| lock(&c).epoch.to_string())
    }

    /// The latest event of `kind` on any channel (the dashboard snapshot
    /// after a restore).
    pub fn latest(&self, kind: &str) -> Option<Arc<HubEvent>> {
        let logs: Vec<_> = self
            .map
            .read()
            .expect("logs lock")
            .values()
            .cloned()
            .collect();
        logs.iter()
            .filter_map(|c| {
                lock(c)
                    .history
                    .all()
                    .into_iter()
                    .rev()
                    .find(|e| e.kind == kind)
            })
            .max_by_key(|e| e.time)
    }

    /// A pattern subscription's backlog: of each matching channel, what
    /// came after the user's cursor on it, or, for a channel without one,
    /// after the user left the pattern, or for a pattern never left, after
    /// `issued` (the token's `iat`); nothing without either.
    pub fn pattern_backlog(
        &self,
        pattern: &str,
        mine: &UserCursors,
        issued: Option<DateTime<Utc>>,
    ) -> Vec<Arc<HubEvent>> {
        let Some(left) = mine.get(pattern).map(|c| c.at).or(issued) else {
            return Vec::new();
        };
        let matching: Vec<Arc<Mutex<Log>>> = self
            .map
            .read()
            .expect("logs lock")
            .iter()
            .filter(|(name, _)| grants::matches(pattern, name))
            .map(|(_, c)| Arc::clone(c))
            .collect();
        let mut backlog = Vec::new();
        for log in matching {
            let c = lock(&log);
            match mine.get(&*c.name) {
                Some(cur) if *cur.epoch == *c.epoch => backlog.extend(c.history.after(cur.seq)),
                _ => backlog.extend(c.history.all().into_iter().filter(|e| e.time > left)),
            }
        }
        backlog
    }
}
