//! What a client can send the hub, on every endpoint: the request path
//! (`endpoint::route`), each style's commands (`Endpoint::command`), the
//! native protocol's messages, and publishes (the checks `Hub::publish`
//! applies, then the event rendered in every wire shape).
//!
//! Besides "no panic", it holds the hub to three promises: a subscribe is
//! granted only for valid channels the token may read; every frame the hub
//! answers with is one the riskwatch client decodes; and an accepted publish
//! renders, in every shape, to a message the client decodes as an event of
//! the same type (never as housekeeping, where it would vanish) — on the
//! native protocol also with the same severity, channel and sequence.
#![no_main]

use std::sync::Arc;

use chrono::{TimeZone, Utc};
use libfuzzer_sys::fuzz_target;
use riskwatch::protocol::native::ClientMessage;
use riskwatch::protocol::{Frame, decode};
use riskwatch::server::broker::MemoryBroker;
use riskwatch::server::endpoint::{Endpoint, Reply, route};
use riskwatch::server::event::{HubEvent, Wire};
use riskwatch::server::{Hub, HubLimits, Identity, NewEvent, grants};

const PATHS: &[&str] = &[
    "/api/v1/stream",
    "/ws/risk-assessment/A1",
    "/api/v1/ws/dashboard",
    "/ws/engagement",
    "/ws/client/C1/engagement",
    "/api/v1/ws/alerts",
    "/ws",
];

const GRANTS: &[&[&str]] = &[
    &["*"],
    &["sessions:*", "user:u1"],
    &["msp:M1/*"],
    &["msp:M1/client:C1"],
    &["department:D1", "dashboard"],
    &[],
];

fn identity(pick: u8) -> Identity {
    let grants = GRANTS[usize::from(pick) % GRANTS.len()];
    Identity {
        user: "u1".into(),
        role: None,
        grants: grants.iter().map(|g| (*g).to_owned()).collect(),
        publish: pick & 0x80 != 0,
        msp: (pick & 0x40 != 0).then(|| "M1".to_owned()),
        client: (pick & 0x20 != 0).then(|| "C1".to_owned()),
        issued_at: None,
    }
}

fn hub() -> &'static Hub {
    static HUB: std::sync::OnceLock<Hub> = std::sync::OnceLock::new();
    HUB.get_or_init(|| {
        let broker = MemoryBroker::new(HubLimits::default(), None, None);
        Hub::new(64 * 1024, Arc::new(broker))
    })
}

/// A frame the hub sends must be one the client reads.
fn readable(frame: &str, what: &str) {
    let source: Arc<str> = Arc::from("fuzz");
    if let Err(e) = decode(frame, &source, Utc::now()) {
        panic!("{what}: the hub sent {frame:?}, which the client cannot decode: {e}");
    }
}

fn publish(ev: NewEvent) {
    let Ok((severity, data)) = hub().check(&ev) else {
        return;
    };
    let time = Utc.timestamp_opt(1_767_225_600, 0).unwrap();
    let channel: Arc<str> = Arc::from(ev.channel.as_str());
    let stored = HubEvent::new(channel, 7, ev.kind.clone(), severity, time, ev.id, data);
    let source: Arc<str> = Arc::from("fuzz");
    for wire in [Wire::Native, Wire::Typed, Wire::Compliance, Wire::Flat] {
        let text = stored.render(wire);
        match decode(&text, &source, time) {
            Ok(Frame::Event(e)) => assert_eq!(e.kind, ev.kind, "{wire:?}: {text}"),
            other => {
                panic!("{wire:?}: an accepted event renders as {text}, which decodes to {other:?}")
            }
        }
        if wire == Wire::Native {
            match decode(&text, &source, time) {
                Ok(Frame::Event(e)) => {
                    assert_eq!(e.kind, ev.kind, "{text}");
                    assert_eq!(e.severity, severity, "{text}");
                    assert_eq!(e.channel.as_deref(), Some(ev.channel.as_str()), "{text}");
                    assert_eq!(e.seq, Some(7), "{text}");
                }
                other => panic!("native event {text} decoded to {other:?}"),
            }
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&pick, rest)) = data.split_first() else {
        return;
    };
    let Ok(text) = std::str::from_utf8(rest) else {
        return;
    };
    if pick == 0xff {
        // The request path itself.
        let _ = route(text);
        return;
    }
    let id = identity(pick);
    let endpoint = route(PATHS[usize::from(pick) % PATHS.len()]).expect("a known path");
    if endpoint == Endpoint::Native {
        match serde_json::from_str::<ClientMessage>(text) {
            Ok(ClientMessage::Subscribe { channel, .. }) => {
                let _ = grants::valid(&channel) && id.may_read(&channel);
            }
            Ok(ClientMessage::Publish {
                channel,
                kind,
                severity,
                id,
                data,
            }) => publish(NewEvent {
                channel,
                kind,
                severity,
                id,
                data,
            }),
            _ => {}
        }
        // The HTTP publish API takes the same event as a JSON body.
        if let Ok(ev) = serde_json::from_str::<NewEvent>(text) {
            publish(ev);
        }
        return;
    }
    let msp_of = |client: &str| (client == "C1").then(|| "M1".to_owned());
    match endpoint.command(&id, text, msp_of) {
        Reply::Send(frames) => {
            for f in &frames {
                readable(f, "a command's answer");
            }
        }
        Reply::Subscribe(ok, frames) => {
            for c in &ok {
                assert!(grants::valid(c), "subscribed to the invalid channel {c:?}");
                assert!(
                    id.may_read(c),
                    "subscribed {c:?} with grants {:?}",
                    id.grants
                );
            }
            for f in &frames {
                readable(f, "a subscribe's answer");
            }
        }
        Reply::Unsubscribe(_) | Reply::Snapshot | Reply::Nothing => {}
    }
});
