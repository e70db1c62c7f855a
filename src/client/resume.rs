//! Native-protocol resume bookkeeping: the last sequence seen per channel
//! and its epoch, the subscribe messages that resume from them, and the
//! exactly-once filter (a sequence at or below the last one is a duplicate).
//! For the seed styles, which carry no sequence, [`Repeats`]: a message
//! with an id that is byte for byte one already delivered is a duplicate
//! (a hub replaying what a user missed may send it again after a restart).

use std::collections::{BTreeMap, HashSet, VecDeque};
use std::hash::{Hash, Hasher};

use crate::protocol::native::{ClientMessage, Position, Replay};

/// What to do with an event that carries a sequence number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// New: deliver it.
    Deliver,
    /// Already delivered: drop it.
    Duplicate,
    /// New, but sequences `missing_from..seq` never arrived and no gap was
    /// announced: deliver it and report the hole.
    DeliverAfterHole { missing_from: u64 },
}

#[derive(Debug, Default)]
pub struct Positions {
    channels: BTreeMap<String, Option<Position>>,
    /// Per channel, the sequence below which the hub announced missing
    /// events (a `gap`): jumps below it are expected, not new holes.
    announced: BTreeMap<String, u64>,
    /// The history a channel with no position yet asks for.
    replay: Option<Replay>,
}

impl Positions {
    pub fn new(channels: impl IntoIterator<Item = String>) -> Positions {
        Positions {
            channels: channels.into_iter().map(|c| (c, None)).collect(),
            announced: BTreeMap::new(),
            replay: None,
        }
    }

    /// Channels with no position yet ask for `replay` (`watch --since`);
    /// once the hub confirmed one, they resume from where they got.
    pub fn replay(mut self, replay: Option<Replay>) -> Positions {
        self.replay = replay;
        self
    }

    /// Adds a channel; returns false when it was already there.
    pub fn add(&mut self, channel: String) -> bool {
        if self.channels.contains_key(&channel) {
            return false;
        }
        self.channels.insert(channel, None);
        true
    }

    pub fn remove(&mut self, channel: &str) -> bool {
        self.announced.remove(channel);
        self.channels.remove(channel).is_some()
    }

    pub fn channels(&self) -> impl Iterator<Item = &String> {
        self.channels.keys()
    }

    /// The subscribe message for one channel, resuming where we are.
    pub fn subscribe_message(&self, channel: &str) -> String {
        let since = self.channels.get(channel).cloned().flatten();
        let replay = self.replay.clone().filter(|_| since.is_none());
        let msg = ClientMessage::Subscribe {
            channel: channel.to_owned(),
            since,
            replay,
        };
        serde_json::to_string(&msg).expect("a subscribe message serializes")
    }

    /// The hub confirmed a subscription: `seq` is the channel's head. A
    /// channel with no position yet starts there; with a position in another
    /// epoch, the hub sends a gap notice and we follow its lead.
    pub fn subscribed(&mut self, channel: &str, epoch: &str, seq: u64) {
        let slot = self.channels.entry(channel.to_owned()).or_default();
        match slot {
            Some(p) if p.epoch == epoch => {}
            Some(_) => {}
            None => {
                *slot = Some(Position {
                    seq,
                    epoch: epoch.to_owned(),
                })
            }
        }
    }

    /// The hub announced that what this client missed is complete only
    /// from `oldest` in `epoch`. It comes before the replay, which may still
    /// hold older (critical) events: in the same epoch our position stands;
    /// in another, every event of that epoch is new to us.
    pub fn gap(&mut self, channel: &str, epoch: &str, oldest: u64) {
        let slot = self.channels.entry(channel.to_owned()).or_default();
        if slot.as_ref().is_none_or(|p| p.epoch != epoch) {
            *slot = Some(Position {
                seq: 0,
                epoch: epoch.to_owned(),
            });
        }
        self.announced.insert(channel.to_owned(), oldest);
    }

    /// Checks an event's sequence and records it.
    pub fn observe(&mut self, channel: &str, seq: u64) -> Verdict {
        let Some(Some(pos)) = self.channels.get_mut(channel) else {
            // Not a channel we track (or no confirmation yet): deliver.
            return Verdict::Deliver;
        };
        if seq <= pos.seq {
            return Verdict::Duplicate;
        }
        let announced = self.announced.get(channel).copied().unwrap_or(0);
        let verdict = if seq > pos.seq + 1 && seq > announced {
            Verdict::DeliverAfterHole {
                missing_from: pos.seq + 1,
            }
        } else {
            Verdict::Deliver
        };
        pos.seq = seq;
        verdict
    }
}

/// The duplicate filter for messages without a sequence (the seed styles).
///
/// A seed-style endpoint cannot resume, so a hub that replays what a user
/// missed (riskwatch's, from where the user's last connection left, or
/// from where it began after a crash) may send again what this client
/// already delivered. Only a message that carries an id and is byte for
/// byte one of the last [`Repeats::KEPT`] delivered ones is dropped: the
/// same id with other content (an alert updated in place) is new, and a
/// message without an id is never taken for a repeat. Kept across
/// reconnects; one 64-bit hash per message.
#[derive(Debug, Default)]
pub struct Repeats {
    seen: HashSet<u64>,
    order: VecDeque<u64>,
}

impl Repeats {
    /// How many delivered messages are remembered.
    pub const KEPT: usize = 8192;

    /// Whether a message with `id` and this exact text is new; remembers it.
    pub fn first_time(&mut self, id: &str, message: &str) -> bool {
        let mut h = std::collections::hash_map::DefaultHasher::new();
        id.hash(&mut h);
        message.hash(&mut h);
        let key = h.finish();
        if !self.seen.insert(key) {
            return false;
        }
        self.order.push_back(key);
        if self.order.len() > Self::KEPT
            && let Some(old) = self.order.pop_front()
        {
            self.seen.remove(&old);
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resumes_and_filters_duplicates() {
        let mut p = Positions::new(["c".to_owned()]);
        assert_eq!(
            p.subscribe_message("c"),
            r#"{"op":"subscribe","channel":"c"}"#
        );
        p.subscribed("c", "e1", 10);
        assert_eq!(p.observe("c", 11), Verdict::Deliver);
        assert_eq!(p.observe("c", 11), Verdict::Duplicate);
        assert_eq!(p.observe("c", 5), Verdict::Duplicate);
        assert_eq!(
            p.subscribe_message("c"),
            r#"{"op":"subscribe","channel":"c","since":{"seq":11,"epoch":"e1"}}"#
        );
        // A resubscribe in the same epoch keeps our position.
        p.subscribed("c", "e1", 40);
        assert_eq!(p.observe("c", 12), Verdict::Deliver);
        assert_eq!(
            p.observe("c", 15),
            Verdict::DeliverAfterHole { missing_from: 13 }
        );
        p.gap("c", "e2", 100);
        // Another epoch: its replay may start below `oldest` (kept
        // criticals), and the announced hole is no new one.
        assert_eq!(p.observe("c", 40), Verdict::Deliver);
        assert_eq!(p.observe("c", 100), Verdict::Deliver);
        assert_eq!(p.observe("c", 100), Verdict::Duplicate);
        assert_eq!(p.observe("other", 1), Verdict::Deliver);
    }

    #[test]
    fn history_is_asked_for_until_the_hub_gave_a_position() {
        let mut p = Positions::new(["c".to_owned()]).replay(Some(Replay::AfterSeq(3)));
        // Asked again on a reconnect before the hub answered.
        for _ in 0..2 {
            assert_eq!(
                p.subscribe_message("c"),
                r#"{"op":"subscribe","channel":"c","replay":{"after_seq":3}}"#
            );
        }
        p.subscribed("c", "e1", 3);
        assert_eq!(p.observe("c", 4), Verdict::Deliver);
        assert_eq!(
            p.subscribe_message("c"),
            r#"{"op":"subscribe","channel":"c","since":{"seq":4,"epoch":"e1"}}"#
        );
    }

    #[test]
    fn a_gap_in_the_same_epoch_keeps_the_position() {
        let mut p = Positions::new(["c".to_owned()]);
        p.subscribed("c", "e1", 10);
        assert_eq!(p.observe("c", 11), Verdict::Deliver);
        // Resumed after 11; ordinary events up to 49 are gone, criticals
        // 20 and 30 were kept.
        p.subscribed("c", "e1", 80);
        p.gap("c", "e1", 50);
        assert_eq!(p.observe("c", 20), Verdict::Deliver);
        assert_eq!(p.observe("c", 30), Verdict::Deliver);
        assert_eq!(p.observe("c", 50), Verdict::Deliver);
        assert_eq!(p.observe("c", 30), Verdict::Duplicate);
        assert_eq!(
            p.observe("c", 60),
            Verdict::DeliverAfterHole { missing_from: 51 }
        );
    }

    #[test]
    fn a_repeated_message_with_an_id_is_dropped_an_update_is_not() {
        let mut r = Repeats::default();
        let a = r#"{"type":"alert","id":"a1","data":{"n":1}}"#;
        let updated = r#"{"type":"alert","id":"a1","data":{"n":2}}"#;
        assert!(r.first_time("a1", a));
        assert!(!r.first_time("a1", a), "the same message again");
        assert!(
            r.first_time("a1", updated),
            "same id, other content: an update"
        );
        assert!(r.first_time("a2", a), "other id");
        // Only the last KEPT are remembered.
        for n in 0..Repeats::KEPT {
            assert!(r.first_time(&format!("x{n}"), "m"));
        }
        assert!(r.first_time("a1", a), "forgotten after KEPT others");
        assert!(r.order.len() <= Repeats::KEPT && r.seen.len() == r.order.len());
    }
}
