//! A native-protocol session as a hub (or anything pretending to be one)
//! could send it, one message per line, through the client's decoder and
//! its exactly-once filter (`client::resume::Positions`). Besides "no
//! panic", it holds the filter to its promise: within one history epoch of
//! a channel, no sequence is delivered twice and delivered sequences only
//! rise.
#![no_main]

use std::collections::HashMap;
use std::sync::Arc;

use chrono::{TimeZone, Utc};
use libfuzzer_sys::fuzz_target;
use riskwatch::client::resume::{Positions, Verdict};
use riskwatch::protocol::native::ServerControl;
use riskwatch::protocol::{Control, Frame, decode};

/// What the client has delivered on a channel: the epoch it tracks and the
/// highest sequence handed on in it.
#[derive(Default)]
struct Seen {
    epoch: Option<String>,
    last: Option<u64>,
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let source: Arc<str> = Arc::from("fuzz");
    let now = Utc.timestamp_opt(1_767_225_600, 0).unwrap();
    let mut positions = Positions::new(["a".to_owned(), "b".to_owned()]);
    let mut seen: HashMap<String, Seen> = HashMap::new();
    for line in text.lines().take(64) {
        let _ = positions.subscribe_message("a");
        match decode(line, &source, now) {
            Ok(Frame::Control(Control::Native(ServerControl::Subscribed {
                channel,
                epoch,
                seq,
            }))) => {
                positions.subscribed(&channel, &epoch, seq);
                let s = seen.entry(channel).or_default();
                if s.epoch.is_none() {
                    // Tracking starts at the head the hub confirmed.
                    s.epoch = Some(epoch);
                    s.last = Some(seq);
                }
            }
            Ok(Frame::Control(Control::Native(ServerControl::Gap {
                channel,
                epoch,
                oldest,
                ..
            }))) => {
                positions.gap(&channel, &epoch, oldest);
                let s = seen.entry(channel).or_default();
                if s.epoch.as_deref() != Some(epoch.as_str()) {
                    // Another epoch: everything in it is new.
                    s.epoch = Some(epoch);
                    s.last = Some(0);
                }
            }
            Ok(Frame::Event(ev)) => {
                let (Some(channel), Some(seq)) = (ev.channel.as_deref(), ev.seq) else {
                    continue;
                };
                let verdict = positions.observe(channel, seq);
                let s = seen.entry(channel.to_owned()).or_default();
                match verdict {
                    Verdict::Duplicate => {
                        assert!(
                            s.last.is_some_and(|last| seq <= last),
                            "{seq} on {channel} dropped as a duplicate, last delivered {:?}",
                            s.last
                        );
                    }
                    Verdict::Deliver | Verdict::DeliverAfterHole { .. } => {
                        if s.epoch.is_some() {
                            assert!(
                                s.last.is_none_or(|last| seq > last),
                                "{seq} on {channel} delivered again after {:?}",
                                s.last
                            );
                            s.last = Some(seq);
                        }
                        if let Verdict::DeliverAfterHole { missing_from } = verdict {
                            assert!(missing_from < seq, "a hole ends before {seq}");
                        }
                    }
                }
            }
            _ => {}
        }
    }
});
