//! The state the window shows: the connection state, the source and a ring
//! buffer of the last [`Feed::CAPACITY`] events. Pure (no Tauri, no I/O):
//! the link writes to it, the `snapshot` command reads it.

use std::collections::VecDeque;
use std::sync::{Mutex, MutexGuard};

use riskwatch::Event;

use crate::error::Error;
use crate::view::{EventView, LinkState, Snapshot};

/// Managed Tauri state, shared by the link task and the commands.
#[derive(Debug)]
pub struct Feed {
    /// Fixed for the app's lifetime: one configured connection.
    source: String,
    demo: bool,
    /// A std `Mutex`: every critical section is a few field updates and no
    /// `.await` happens while it is held.
    inner: Mutex<Inner>,
}

#[derive(Debug)]
struct Inner {
    state: LinkState,
    /// Oldest first; never longer than [`Feed::CAPACITY`].
    events: VecDeque<EventView>,
    /// The key the next event gets; starts at 1.
    next_key: u64,
}

impl Feed {
    /// How many events the window keeps.
    pub const CAPACITY: usize = 50;

    pub fn new(source: String, demo: bool, state: LinkState) -> Feed {
        Feed {
            source,
            demo,
            inner: Mutex::new(Inner {
                state,
                events: VecDeque::with_capacity(Feed::CAPACITY),
                next_key: 1,
            }),
        }
    }

    /// Records a new state; returns whether it differs from the last one
    /// (only real changes are sent to the webview).
    pub fn set_state(&self, state: LinkState) -> bool {
        let Ok(mut inner) = self.lock() else {
            return false;
        };
        if inner.state == state {
            return false;
        }
        inner.state = state;
        true
    }

    /// Adds an event, dropping the oldest beyond the capacity, and returns
    /// its view for the webview.
    pub fn push(&self, event: &Event) -> Option<EventView> {
        let mut inner = self.lock().ok()?;
        let view = EventView::new(inner.next_key, event);
        inner.next_key += 1;
        if inner.events.len() == Feed::CAPACITY {
            inner.events.pop_front();
        }
        inner.events.push_back(view.clone());
        Some(view)
    }

    pub fn snapshot(&self) -> Result<Snapshot, Error> {
        let inner = self.lock()?;
        Ok(Snapshot {
            state: inner.state.clone(),
            events: inner.events.iter().cloned().collect(),
            source: self.source.clone(),
            demo: self.demo,
            inbox: Default::default(),
            tab: None,
        })
    }

    /// The lock, or an error if a panic while holding it left it poisoned
    /// (the feed then stops updating instead of showing half-written data).
    fn lock(&self) -> Result<MutexGuard<'_, Inner>, Error> {
        self.inner.lock().map_err(|_| Error::FeedPoisoned)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    use chrono::Utc;
    use riskwatch::ConnState;
    use riskwatch::protocol::{Frame, decode};

    fn tick(n: usize) -> Event {
        let text = format!(r#"{{"type":"tick","symbol":"SPY","price":{n}}}"#);
        let source: Arc<str> = Arc::from("demo");
        match decode(&text, &source, Utc::now()).expect("decodes") {
            Frame::Event(e) => e,
            other => panic!("not an event: {other:?}"),
        }
    }

    fn feed() -> Feed {
        Feed::new(
            "ws://127.0.0.1:1/ws".into(),
            true,
            LinkState::Client(ConnState::Connecting),
        )
    }

    #[test]
    fn keeps_the_last_fifty_oldest_first_with_increasing_keys() {
        let feed = feed();
        for n in 0..120 {
            feed.push(&tick(n)).unwrap();
        }
        let snap = feed.snapshot().unwrap();
        assert_eq!(snap.events.len(), Feed::CAPACITY);
        let keys: Vec<u64> = snap.events.iter().map(|e| e.key).collect();
        assert_eq!(keys, (71..=120).collect::<Vec<u64>>());
        assert!(snap.demo);
        assert_eq!(snap.source, "ws://127.0.0.1:1/ws");
    }

    #[test]
    fn reports_only_real_state_changes() {
        let feed = feed();
        assert!(!feed.set_state(LinkState::Client(ConnState::Connecting)));
        assert!(feed.set_state(LinkState::Client(ConnState::Connected)));
        assert!(!feed.set_state(LinkState::Client(ConnState::Connected)));
        assert_eq!(
            feed.snapshot().unwrap().state,
            LinkState::Client(ConnState::Connected)
        );
    }
}
