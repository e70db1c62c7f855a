//! The memory broker: one hub alone. Its logs are the truth; with
//! `--data-dir` every event is appended to its channel's file before it is
//! delivered (a failed write fails the publish), files are compacted to
//! what history keeps, and cursors go to `cursors.jsonl`.

use std::sync::{Arc, OnceLock};

use chrono::Utc;
use futures_util::FutureExt;
use futures_util::future::BoxFuture;
use tokio_util::sync::CancellationToken;

use super::log::{Log, Logs, lock};
use super::{
    Broker, BrokerError, HubLimits, Prepared, Published, Recover, Recovered, Register, Sink,
    cursor_window,
};
use crate::server::cursors::{Cursor, CursorMap, CursorStore, UserCursors};
use crate::server::event::{HubEvent, StoredEvent};
use crate::server::store::Store;

/// A channel's file is compacted when it holds this many more event lines
/// than twice what history keeps.
const COMPACT_SLACK: usize = 1_000;

#[derive(Debug)]
pub struct MemoryBroker {
    logs: Logs,
    sink: OnceLock<Arc<dyn Sink>>,
    cursors: CursorMap,
    /// Durable history (`--data-dir`).
    store: Option<Arc<dyn Store>>,
    /// Durable cursors (`--data-dir`).
    cursor_store: Option<Arc<dyn CursorStore>>,
}

impl MemoryBroker {
    /// A broker holding `limits`' history, restored from the stores.
    pub fn new(
        limits: HubLimits,
        store: Option<Arc<dyn Store>>,
        cursor_store: Option<Arc<dyn CursorStore>>,
    ) -> MemoryBroker {
        let b = MemoryBroker {
            logs: Logs::new(limits),
            sink: OnceLock::new(),
            cursors: CursorMap::default(),
            store,
            cursor_store,
        };
        b.restore();
        b
    }

    /// A broker with its history and cursors in `data_dir` when given
    /// (`--data-dir`), else in memory only.
    pub fn open(
        limits: HubLimits,
        data_dir: Option<&std::path::Path>,
    ) -> Result<MemoryBroker, crate::server::store::StoreError> {
        let Some(dir) = data_dir else {
            return Ok(MemoryBroker::new(limits, None, None));
        };
        Ok(MemoryBroker::new(
            limits,
            Some(Arc::new(crate::server::store::FileStore::open(dir)?)),
            Some(Arc::new(crate::server::cursors::FileCursors::open(dir)?)),
        ))
    }

    /// Loads persisted channels and cursors.
    fn restore(&self) {
        if let Some(cs) = &self.cursor_store {
            match cs.load(Utc::now() - cursor_window(&self.logs.limits)) {
                Ok(list) => self.cursors.add(list),
                Err(e) => tracing::error!(error = %e, "could not load cursors"),
            }
        }
        let Some(store) = &self.store else { return };
        let now = Utc::now();
        match store.load() {
            Ok(channels) => {
                for c in channels {
                    let mut log = self.logs.restored(&c.name, &c.epoch, c.head);
                    log.reset(c.trimmed, c.events);
                    log.prune(&self.logs.limits, now);
                    // The file now holds what the rules keep, no more.
                    compact(&mut log, store.as_ref());
                    self.logs.insert(log);
                }
                tracing::info!(channels = self.logs.len(), "history restored");
            }
            Err(e) => tracing::error!(error = %e, "could not restore history; starting empty"),
        }
    }

    fn publish_now(&self, ev: Prepared) -> Result<Published, BrokerError> {
        let now = Utc::now();
        let log = self.logs.get_or_create(&ev.channel);
        let mut c = lock(&log);
        if let Some(seq) = ev.id.as_deref().and_then(|id| c.seen(id)) {
            return Ok(Published {
                channel: ev.channel,
                seq,
                id: ev.id,
                duplicate: true,
            });
        }
        let seq = c.head + 1;
        let stored = Arc::new(HubEvent::new(
            Arc::clone(&c.name),
            seq,
            ev.kind,
            ev.severity,
            now,
            ev.id.clone(),
            ev.data,
        ));
        if let Some(store) = &self.store {
            // Not stored, not sent: the publisher hears so and retries,
            // rather than being told "stored" by a hub with a full disk.
            if let Err(e) = store.append(&c.name, &c.epoch, &stored.to_stored()) {
                tracing::error!(error = %e, channel = %c.name, "could not persist an event");
                return Err(e.into());
            }
            c.file_lines += 1;
        }
        c.append(stored, &self.logs.limits, now, self.sink.get());
        if let Some(store) = &self.store
            && c.file_lines > 2 * c.history.len() + COMPACT_SLACK
        {
            // Files would otherwise only grow while the hub runs.
            compact(&mut c, store.as_ref());
        }
        Ok(Published {
            channel: ev.channel,
            seq,
            id: ev.id,
            duplicate: false,
        })
    }
}

/// Rewrites a channel's file to what its history keeps (a failure is
/// logged; the file keeps growing until the next try).
fn compact(log: &mut Log, store: &dyn Store) {
    let kept: Vec<StoredEvent> = log.history.all().iter().map(|e| e.to_stored()).collect();
    match store.compact(
        &log.name,
        &log.epoch,
        log.head,
        log.history.trimmed(),
        &kept,
    ) {
        Ok(()) => log.file_lines = kept.len(),
        Err(e) => tracing::error!(error = %e, channel = %log.name, "could not compact history"),
    }
}

impl Broker for MemoryBroker {
    fn attach(&self, sink: Arc<dyn Sink>) {
        let _ = self.sink.set(sink);
    }

    fn run(self: Arc<Self>, _stop: CancellationToken) -> BoxFuture<'static, ()> {
        futures_util::future::ready(()).boxed()
    }

    fn publish(&self, ev: Prepared) -> BoxFuture<'_, Result<Published, BrokerError>> {
        futures_util::future::ready(self.publish_now(ev)).boxed()
    }

    fn recover<'a>(
        &'a self,
        channel: &'a str,
        from: Recover,
        register: Register<'a>,
    ) -> BoxFuture<'a, Result<Recovered, BrokerError>> {
        // Creates nothing: a channel (and with --data-dir its file) comes
        // with its first event, so subscribing to names nobody publishes
        // on leaves no trace.
        let rec = self
            .logs
            .recover(channel, &from, None, Utc::now(), register);
        futures_util::future::ready(Ok(rec)).boxed()
    }

    fn remember(&self, list: Vec<Cursor>) {
        if list.is_empty() {
            return;
        }
        self.cursors.add(list.iter().cloned());
        if let Some(cs) = &self.cursor_store
            && let Err(e) = cs.save(&list)
        {
            tracing::error!(error = %e, "could not persist cursors");
        }
    }

    fn cursors_of<'a>(&'a self, user: &'a str) -> BoxFuture<'a, UserCursors> {
        futures_util::future::ready(self.cursors.of(user)).boxed()
    }

    fn logs(&self) -> &Logs {
        &self.logs
    }

    fn flush(&self) {
        if let Some(store) = &self.store
            && let Err(e) = store.flush()
        {
            tracing::error!(error = %e, "could not flush history");
        }
    }
}
