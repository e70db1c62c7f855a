//! One channel's retained events and the rules that trim them: critical
//! and emergency events are kept by their own (long) age and count limits,
//! every other event by the ordinary ones, so trimming never drops a
//! critical event before an info one. Pure: no clock, no I/O; the hub, the
//! file store and the Redis copy all apply these rules.
//!
//! The two classes live in two queues, each trimmed from its front, and a
//! replay merges them by sequence. What was trimmed is remembered as the
//! highest sequence dropped from each class, so a resume knows exactly
//! which part of what it missed is gone: everything (`complete_from`), or
//! only ordinary events while every critical one is still here.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};

use super::event::HubEvent;
use crate::protocol::Severity;

/// How long events stay. Defaults in each field's doc.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Retention {
    /// Ordinary (info, warning) events kept per channel. Default 1,000.
    pub ordinary_len: usize,
    /// Age after which ordinary events go. Default 10 minutes.
    pub ordinary_age: Duration,
    /// Ordinary events kept whatever their age (`user:` channels, so a user
    /// who was away finds them; 0 elsewhere). Default 0.
    pub ordinary_min: usize,
    /// Critical and emergency events kept per channel: a memory bound, far
    /// above what a desk produces in a day. Default 50,000.
    pub critical_len: usize,
    /// Age after which critical and emergency events go. Default 24 hours.
    pub critical_age: Duration,
}

impl Default for Retention {
    fn default() -> Self {
        Retention {
            ordinary_len: 1_000,
            ordinary_age: Duration::from_secs(600),
            ordinary_min: 0,
            critical_len: 50_000,
            critical_age: Duration::from_secs(24 * 3600),
        }
    }
}

impl Retention {
    /// The same rules with the critical limits never below the ordinary
    /// ones, so a critical event always outlives an info one.
    pub fn normalized(mut self) -> Self {
        self.ordinary_len = self.ordinary_len.max(1);
        self.critical_len = self
            .critical_len
            .max(self.ordinary_len.max(self.ordinary_min));
        self.critical_age = self.critical_age.max(self.ordinary_age);
        self
    }
}

/// Whether an event is kept by the critical rules.
pub fn is_critical(s: Severity) -> bool {
    matches!(s, Severity::Critical | Severity::Emergency)
}

/// What a resume after a position gets.
#[derive(Debug)]
pub struct Replay {
    /// Every retained event after the position, in sequence order.
    pub events: Vec<Arc<HubEvent>>,
    /// Set when some events after the position are gone: the first
    /// sequence from which nothing is missing.
    pub gap_until: Option<u64>,
    /// Every critical and emergency event after the position is in
    /// `events` (true also when nothing is missing).
    pub criticals_kept: bool,
}

/// A channel's retained events (see the module doc).
#[derive(Debug, Default)]
pub struct History {
    ordinary: VecDeque<Arc<HubEvent>>,
    critical: VecDeque<Arc<HubEvent>>,
    /// Highest sequence trimmed (or never held) per class; 0 = none.
    ordinary_before: u64,
    critical_before: u64,
}

impl History {
    /// An empty history whose events up to the given sequences are known
    /// to be gone (a channel restored from a store that trimmed them).
    pub fn with_trimmed(ordinary_before: u64, critical_before: u64) -> History {
        History {
            ordinary_before,
            critical_before,
            ..History::default()
        }
    }

    /// Appends the channel's next event (sequences only grow).
    pub fn push(&mut self, ev: Arc<HubEvent>) {
        if is_critical(ev.severity) {
            self.critical.push_back(ev);
        } else {
            self.ordinary.push_back(ev);
        }
    }

    pub fn len(&self) -> usize {
        self.ordinary.len() + self.critical.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The highest sequence trimmed from (ordinary, critical) events.
    pub fn trimmed(&self) -> (u64, u64) {
        (self.ordinary_before, self.critical_before)
    }

    /// The first sequence from which every event is still here.
    pub fn complete_from(&self) -> u64 {
        self.ordinary_before.max(self.critical_before) + 1
    }

    /// Drops what the rules no longer keep at `now`; `gone` sees each
    /// dropped event (to forget its id).
    pub fn prune(&mut self, r: &Retention, now: DateTime<Utc>, mut gone: impl FnMut(&HubEvent)) {
        let age = |d: Duration| chrono::Duration::from_std(d).unwrap_or(chrono::Duration::MAX);
        let (o_age, c_age) = (age(r.ordinary_age), age(r.critical_age));
        while let Some(front) = self.critical.front() {
            if self.critical.len() <= r.critical_len && now - front.time <= c_age {
                break;
            }
            let ev = self.critical.pop_front().expect("front exists");
            self.critical_before = self.critical_before.max(ev.seq);
            gone(&ev);
        }
        let o_len = r.ordinary_len.max(r.ordinary_min);
        while let Some(front) = self.ordinary.front() {
            let too_many = self.ordinary.len() > o_len;
            let too_old = self.ordinary.len() > r.ordinary_min && now - front.time > o_age;
            // An ordinary event never outlives a critical one published
            // after it.
            let outlived = front.seq < self.critical_before;
            if !(too_many || too_old || outlived) {
                break;
            }
            let ev = self.ordinary.pop_front().expect("front exists");
            self.ordinary_before = self.ordinary_before.max(ev.seq);
            gone(&ev);
        }
    }

    /// Every retained event, in sequence order.
    pub fn all(&self) -> Vec<Arc<HubEvent>> {
        self.after(0)
    }

    /// Retained events with a sequence above `seq`, in order.
    pub fn after(&self, seq: u64) -> Vec<Arc<HubEvent>> {
        let o = self.ordinary.partition_point(|e| e.seq <= seq);
        let c = self.critical.partition_point(|e| e.seq <= seq);
        let (mut o, mut c) = (self.ordinary.range(o..), self.critical.range(c..));
        let mut out = Vec::with_capacity(o.len() + c.len());
        let (mut a, mut b) = (o.next(), c.next());
        loop {
            match (a, b) {
                (Some(x), Some(y)) if x.seq < y.seq => {
                    out.push(Arc::clone(x));
                    a = o.next();
                }
                (_, Some(y)) => {
                    out.push(Arc::clone(y));
                    b = c.next();
                }
                (Some(x), None) => {
                    out.push(Arc::clone(x));
                    a = o.next();
                }
                (None, None) => return out,
            }
        }
    }

    /// What a subscriber that last saw `seq` (in this epoch) gets.
    pub fn replay(&self, seq: u64) -> Replay {
        let complete_from = self.complete_from();
        Replay {
            events: self.after(seq),
            gap_until: (seq + 1 < complete_from).then_some(complete_from),
            criticals_kept: seq >= self.critical_before,
        }
    }

    /// What a subscriber from another epoch gets: everything, with the gap
    /// reaching back to the start (the old epoch's events are gone).
    pub fn replay_all(&self) -> Replay {
        Replay {
            events: self.all(),
            gap_until: Some(self.complete_from()),
            criticals_kept: false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::value::RawValue;

    fn ev(seq: u64, severity: Severity, time: DateTime<Utc>) -> Arc<HubEvent> {
        Arc::new(HubEvent::new(
            Arc::from("c"),
            seq,
            "t".into(),
            severity,
            time,
            None,
            RawValue::from_string("{}".into()).unwrap(),
        ))
    }

    fn seqs(v: &[Arc<HubEvent>]) -> Vec<u64> {
        v.iter().map(|e| e.seq).collect()
    }

    #[test]
    fn criticals_outlive_ordinary_events_and_a_resume_says_what_is_gone() {
        let t0 = Utc::now();
        let r = Retention {
            ordinary_len: 3,
            ..Retention::default()
        };
        let mut h = History::default();
        for (i, s) in [
            Severity::Info,
            Severity::Emergency,
            Severity::Info,
            Severity::Warning,
            Severity::Critical,
            Severity::Info,
            Severity::Info,
        ]
        .into_iter()
        .enumerate()
        {
            h.push(ev(i as u64 + 1, s, t0));
        }
        let mut dropped = Vec::new();
        h.prune(&r, t0, |e| dropped.push(e.seq));
        assert_eq!(dropped, vec![1, 3]);
        assert_eq!(seqs(&h.all()), vec![2, 4, 5, 6, 7]);
        assert_eq!(h.complete_from(), 4);

        // Missed 2..: only ordinary events are gone.
        let r1 = h.replay(1);
        assert_eq!(seqs(&r1.events), vec![2, 4, 5, 6, 7]);
        assert_eq!(r1.gap_until, Some(4));
        assert!(r1.criticals_kept);
        // Missed 4..: nothing is gone.
        let r2 = h.replay(3);
        assert_eq!((seqs(&r2.events), r2.gap_until), (vec![4, 5, 6, 7], None));
        // Up to date.
        assert!(h.replay(7).events.is_empty());
    }

    #[test]
    fn criticals_go_after_their_own_age_and_then_the_resume_says_so() {
        let t0 = Utc::now();
        let r = Retention::default();
        let mut h = History::default();
        h.push(ev(1, Severity::Critical, t0));
        h.push(ev(2, Severity::Info, t0 + chrono::Duration::hours(23)));
        h.push(ev(3, Severity::Critical, t0 + chrono::Duration::hours(23)));
        // 23 h 30 m: the info event is past 10 minutes, the criticals stay.
        h.prune(&r, t0 + chrono::Duration::minutes(23 * 60 + 30), |_| {});
        assert_eq!(seqs(&h.all()), vec![1, 3]);
        // 25 h: the first critical is past 24 h.
        h.prune(&r, t0 + chrono::Duration::hours(25), |_| {});
        assert_eq!(seqs(&h.all()), vec![3]);
        let rep = h.replay(0);
        assert_eq!(rep.gap_until, Some(3));
        assert!(!rep.criticals_kept);
    }

    #[test]
    fn offline_minimum_keeps_ordinary_events_whatever_their_age() {
        let t0 = Utc::now();
        let r = Retention {
            ordinary_min: 2,
            ..Retention::default()
        };
        let mut h = History::default();
        for i in 1..=4 {
            h.push(ev(i, Severity::Info, t0));
        }
        h.prune(&r, t0 + chrono::Duration::days(3), |_| {});
        assert_eq!(seqs(&h.all()), vec![3, 4]);
    }

    #[test]
    fn normalized_never_lets_criticals_go_first() {
        let r = Retention {
            ordinary_len: 500,
            critical_len: 10,
            ordinary_age: Duration::from_secs(7200),
            critical_age: Duration::from_secs(60),
            ..Retention::default()
        }
        .normalized();
        assert_eq!(r.critical_len, 500);
        assert_eq!(r.critical_age, Duration::from_secs(7200));
    }

    fn severity() -> impl Strategy<Value = Severity> {
        prop_oneof![
            Just(Severity::Info),
            Just(Severity::Warning),
            Just(Severity::Critical),
            Just(Severity::Emergency),
        ]
    }

    proptest! {
        /// Whatever the mix, limits and clock: a critical event is never
        /// dropped while an older-or-equal-aged ordinary one is kept, a
        /// replay is in order and holds exactly the retained events after
        /// the position, and it reports a gap exactly when something after
        /// the position is gone.
        #[test]
        fn trimming_and_replay_hold_their_promises(
            events in proptest::collection::vec((severity(), 0u32..120), 1..200),
            ordinary_len in 1usize..20,
            critical_len in 1usize..40,
            ordinary_secs in 1u64..60,
            critical_secs in 1u64..600,
            prune_every in 1usize..10,
            position in 0u64..220,
        ) {
            let r = Retention {
                ordinary_len,
                ordinary_age: Duration::from_secs(ordinary_secs),
                ordinary_min: 0,
                critical_len,
                critical_age: Duration::from_secs(critical_secs),
            }.normalized();
            let t0 = Utc::now();
            let mut h = History::default();
            let mut now = t0;
            let mut all = Vec::new();
            for (i, (s, dt)) in events.iter().enumerate() {
                now += chrono::Duration::seconds(i64::from(*dt) / 10);
                let e = ev(i as u64 + 1, *s, now);
                all.push(Arc::clone(&e));
                h.push(e);
                if i % prune_every == 0 {
                    h.prune(&r, now, |_| {});
                }
            }
            h.prune(&r, now, |_| {});
            let kept = h.all();
            // In order, and each retained event is one that was published.
            prop_assert!(kept.windows(2).all(|w| w[0].seq < w[1].seq));
            // No critical dropped while an ordinary event published before
            // it is kept.
            let kept_seqs: std::collections::HashSet<u64> = kept.iter().map(|e| e.seq).collect();
            for e in &all {
                if is_critical(e.severity) && !kept_seqs.contains(&e.seq) {
                    prop_assert!(
                        !kept.iter().any(|k| !is_critical(k.severity) && k.seq < e.seq),
                        "critical {} dropped while an earlier ordinary event is kept", e.seq
                    );
                }
            }
            let rep = h.replay(position);
            let expected: Vec<u64> = kept.iter().map(|e| e.seq).filter(|s| *s > position).collect();
            prop_assert_eq!(seqs(&rep.events), expected);
            let head = all.len() as u64;
            let missing = (position + 1..=head).any(|s| !kept_seqs.contains(&s));
            prop_assert_eq!(rep.gap_until.is_some(), missing);
            let crit_missing = all.iter().any(|e| e.seq > position
                && is_critical(e.severity) && !kept_seqs.contains(&e.seq));
            prop_assert_eq!(rep.criticals_kept, !crit_missing);
        }
    }
}
