//! Any text frame from any backend, as the client reads it: `decode` (the
//! style is recognised per message, so this covers all five styles and the
//! native protocol), then what every sink does with an event: its human
//! description, its data, and the alert engine's decision. None may panic;
//! a decode error is a fine answer.
#![no_main]

use std::sync::Arc;

use chrono::{TimeZone, Utc};
use libfuzzer_sys::fuzz_target;
use riskwatch::engine::{Engine, Prefs};
use riskwatch::protocol::{Frame, decode_limited};

fuzz_target!(|data: &[u8]| {
    // A WebSocket text frame is UTF-8 (tungstenite refuses others).
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let source: Arc<str> = Arc::from("fuzz");
    let now = Utc.timestamp_opt(1_767_225_600, 0).unwrap();
    let Ok(Frame::Event(event)) = decode_limited(text, 64 * 1024, &source, now) else {
        return;
    };
    let d = event.describe();
    assert!(!d.title.is_empty(), "an event always has a title");
    let _ = event.data();
    let _ = event.payload_value();
    let mut engine = Engine::new(Prefs::default(), Vec::new());
    let decision = engine.decide(&event, now);
    if decision.notify.is_some() {
        let _ = engine.tick(now + chrono::Duration::hours(1));
    }
});
