//! The state the window shows: each connection's state and label, and a
//! ring buffer of the last [`Feed::CAPACITY`] events of all of them. Pure
//! (no Tauri, no I/O): the links write to it, the `snapshot` command and the
//! tray read it.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Mutex, MutexGuard};

use riskwatch::{ConnState, Event};

use crate::error::Error;
use crate::view::{EventView, LinkState, LinkView, Snapshot};

/// Managed Tauri state, shared by the link tasks and the commands.
#[derive(Debug, Default)]
pub struct Feed {
    /// A std `Mutex`: every critical section is a few field updates and no
    /// `.await` happens while it is held.
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    /// By profile name.
    links: BTreeMap<String, LinkView>,
    /// Oldest first; never longer than [`Feed::CAPACITY`].
    events: VecDeque<EventView>,
    /// The key the last event got; the first gets 1.
    last_key: u64,
}

/// What a change did to what the window shows.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Changed {
    /// The worst state, when it changed (for the header and the tray).
    pub state: Option<LinkState>,
    /// Whether the list of connections or one of their states changed.
    pub links: bool,
}

impl Feed {
    /// How many events the window keeps.
    pub const CAPACITY: usize = 50;

    pub fn new() -> Feed {
        Feed::default()
    }

    /// Adds or replaces a connection.
    pub fn set_link(&self, link: LinkView) -> Changed {
        self.change(|links| {
            let same = links.get(&link.profile) == Some(&link);
            links.insert(link.profile.clone(), link);
            !same
        })
    }

    /// Records a connection's new state; only real changes count.
    pub fn set_state(&self, profile: &str, state: LinkState) -> Changed {
        self.change(|links| match links.get_mut(profile) {
            Some(l) if l.state != state => {
                l.state = state;
                true
            }
            _ => false,
        })
    }

    /// Forgets a connection.
    pub fn remove_link(&self, profile: &str) -> Changed {
        self.change(|links| links.remove(profile).is_some())
    }

    fn change(&self, f: impl FnOnce(&mut BTreeMap<String, LinkView>) -> bool) -> Changed {
        let Ok(mut inner) = self.lock() else {
            return Changed::default();
        };
        let before = worst(&inner.links);
        if !f(&mut inner.links) {
            return Changed::default();
        }
        let after = worst(&inner.links);
        Changed {
            state: (after != before).then_some(after),
            links: true,
        }
    }

    /// Every connection, by profile name.
    pub fn links(&self) -> Vec<LinkView> {
        self.lock()
            .map(|i| i.links.values().cloned().collect())
            .unwrap_or_default()
    }

    /// The worst state of all connections (what the header and the tray
    /// show).
    pub fn state(&self) -> LinkState {
        self.lock()
            .map(|i| worst(&i.links))
            .unwrap_or_else(|e| LinkState::Offline {
                error: e.to_string(),
            })
    }

    /// Adds an event, dropping the oldest beyond the capacity, and returns
    /// its view for the webview.
    pub fn push(&self, event: &Event) -> Option<EventView> {
        let mut inner = self.lock().ok()?;
        inner.last_key += 1;
        let view = EventView::new(inner.last_key, event);
        if inner.events.len() == Feed::CAPACITY {
            inner.events.pop_front();
        }
        inner.events.push_back(view.clone());
        Some(view)
    }

    pub fn snapshot(&self) -> Result<Snapshot, Error> {
        let inner = self.lock()?;
        let links: Vec<LinkView> = inner.links.values().cloned().collect();
        Ok(Snapshot {
            state: worst(&inner.links),
            source: links
                .iter()
                .map(|l| l.source.as_str())
                .collect::<Vec<_>>()
                .join(", "),
            demo: links.iter().any(|l| l.demo),
            links,
            events: inner.events.iter().cloned().collect(),
            inbox: Default::default(),
            tab: None,
            open_alert: None,
        })
    }

    /// The lock, or an error if a panic while holding it left it poisoned
    /// (the feed then stops updating instead of showing half-written data).
    fn lock(&self) -> Result<MutexGuard<'_, Inner>, Error> {
        self.inner.lock().map_err(|_| Error::FeedPoisoned)
    }
}

/// How bad a state is, for the header: a stopped or unusable connection
/// first, then one retrying, polling, connecting; live last.
fn rank(state: &LinkState) -> u8 {
    match state {
        LinkState::Offline { .. } | LinkState::Client(ConnState::Stopped { .. }) => 5,
        LinkState::Client(ConnState::Reconnecting { .. }) => 4,
        LinkState::Client(ConnState::Polling { .. }) => 3,
        LinkState::Client(ConnState::Connecting) => 2,
        LinkState::Client(ConnState::Connected) => 1,
    }
}

fn worst(links: &BTreeMap<String, LinkView>) -> LinkState {
    links
        .values()
        .map(|l| &l.state)
        // The first of the worst, in name order, so it does not flicker.
        .fold(None::<&LinkState>, |w, s| match w {
            Some(w) if rank(w) >= rank(s) => Some(w),
            _ => Some(s),
        })
        .cloned()
        .unwrap_or_else(|| LinkState::Offline {
            error: "no connection: add a server in Settings".into(),
        })
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

    fn link(profile: &str, state: LinkState) -> LinkView {
        LinkView {
            profile: profile.into(),
            source: format!("ws://127.0.0.1:1/{profile}"),
            demo: profile == "demo",
            state,
        }
    }

    fn feed() -> Feed {
        let feed = Feed::new();
        feed.set_link(link("demo", LinkState::Client(ConnState::Connecting)));
        feed
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
        assert_eq!(snap.source, "ws://127.0.0.1:1/demo");
    }

    #[test]
    fn reports_only_real_state_changes() {
        let feed = feed();
        let connected = LinkState::Client(ConnState::Connected);
        assert_eq!(
            feed.set_state("demo", LinkState::Client(ConnState::Connecting)),
            Changed::default()
        );
        let c = feed.set_state("demo", connected.clone());
        assert_eq!(c.state, Some(connected.clone()));
        assert!(c.links);
        assert_eq!(
            feed.set_state("demo", connected.clone()),
            Changed::default()
        );
        assert_eq!(
            feed.set_state("nobody", connected.clone()),
            Changed::default()
        );
        assert_eq!(feed.snapshot().unwrap().state, connected);
    }

    #[test]
    fn the_header_shows_the_worst_connection() {
        let feed = Feed::new();
        assert!(
            matches!(feed.state(), LinkState::Offline { .. }),
            "none yet"
        );
        let live = LinkState::Client(ConnState::Connected);
        let retrying = LinkState::Client(ConnState::Reconnecting {
            attempt: 1,
            retry_in_ms: 1000,
            error: "refused".into(),
        });
        feed.set_link(link("demo", live.clone()));
        let c = feed.set_link(link("prod", retrying.clone()));
        assert_eq!(c.state, Some(retrying.clone()));
        // Another live one changes the list, not the worst state.
        let c = feed.set_link(link("uat", live.clone()));
        assert_eq!((c.state, c.links), (None, true));
        let c = feed.set_state("prod", live.clone());
        assert_eq!(c.state, Some(live.clone()));
        let snap = feed.snapshot().unwrap();
        assert_eq!(snap.links.len(), 3);
        assert!(snap.demo);
        assert_eq!(
            snap.source,
            "ws://127.0.0.1:1/demo, ws://127.0.0.1:1/prod, ws://127.0.0.1:1/uat"
        );
        let c = feed.remove_link("demo");
        assert!(c.links && c.state.is_none());
        assert!(!feed.snapshot().unwrap().demo);
    }
}
