//! The hub's stored event and its renderings: one [`HubEvent`] per published
//! message, shared by every subscriber through an `Arc`, rendered at most
//! once per wire format (native, and each backend style) however many
//! connections receive it.

use std::sync::{Arc, OnceLock};

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use serde_json::value::RawValue;

use crate::protocol::{self, Outgoing, Severity, Style};

/// The distinct shapes the hub caches an event's rendering in. Styles
/// whose servers send the same shape share one: [`protocol::encode`] gives
/// merchant, dashboard and HR the typed shape of a type no style defines
/// (a test below holds it to that), so an event relayed to all three is
/// rendered once.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Wire {
    Native,
    /// `{"type","timestamp","data"}` — merchant, dashboard and HR styles.
    Typed,
    /// `{"type","timestamp","client_id","data"}` — compliance.
    Compliance,
    /// `{"type","timestamp", …data fields at the top level}` — trading.
    Flat,
}

const WIRES: usize = 4;

impl Wire {
    /// The shape `style`'s connections get.
    pub fn of(style: Style) -> Wire {
        match style {
            Style::Native => Wire::Native,
            Style::Compliance => Wire::Compliance,
            Style::Trading => Wire::Flat,
            Style::Merchant | Style::Dashboard | Style::Hr | Style::Generic => Wire::Typed,
        }
    }

    /// The style whose encoding gives this shape.
    fn style(self) -> Style {
        match self {
            Wire::Native => Style::Native,
            Wire::Typed => Style::Generic,
            Wire::Compliance => Style::Compliance,
            Wire::Flat => Style::Trading,
        }
    }

    fn index(self) -> usize {
        match self {
            Wire::Native => 0,
            Wire::Typed => 1,
            Wire::Compliance => 2,
            Wire::Flat => 3,
        }
    }
}

/// An event as published to the hub, before it has a sequence number.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NewEvent {
    pub channel: String,
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub severity: Option<Severity>,
    /// Makes retries idempotent: a second publish with the same id on the
    /// same channel returns the first one's sequence and is not delivered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    #[serde(default)]
    pub data: Value,
}

/// A stored, sequenced event.
#[derive(Debug)]
pub struct HubEvent {
    pub channel: Arc<str>,
    pub seq: u64,
    pub kind: String,
    pub severity: Severity,
    pub time: DateTime<Utc>,
    pub id: Option<String>,
    pub data: Box<RawValue>,
    rendered: [OnceLock<Arc<str>>; WIRES],
    /// The rendering as a whole WebSocket text frame (server frames are
    /// unmasked, so every connection gets the same bytes).
    frames: [OnceLock<Box<[u8]>>; WIRES],
}

/// The on-disk / on-Redis form of a [`HubEvent`].
#[derive(Debug, Serialize, Deserialize)]
pub struct StoredEvent {
    pub seq: u64,
    #[serde(rename = "type")]
    pub kind: String,
    pub severity: Severity,
    pub ts: DateTime<Utc>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    pub data: Box<RawValue>,
}

impl HubEvent {
    pub fn new(
        channel: Arc<str>,
        seq: u64,
        kind: String,
        severity: Severity,
        time: DateTime<Utc>,
        id: Option<String>,
        data: Box<RawValue>,
    ) -> HubEvent {
        HubEvent {
            channel,
            seq,
            kind,
            severity,
            time,
            id,
            data,
            rendered: Default::default(),
            frames: Default::default(),
        }
    }

    pub fn from_stored(channel: Arc<str>, s: StoredEvent) -> HubEvent {
        HubEvent::new(channel, s.seq, s.kind, s.severity, s.ts, s.id, s.data)
    }

    pub fn to_stored(&self) -> StoredEvent {
        StoredEvent {
            seq: self.seq,
            kind: self.kind.clone(),
            severity: self.severity,
            ts: self.time,
            id: self.id.clone(),
            data: self.data.clone(),
        }
    }

    fn ts(&self) -> String {
        self.time.to_rfc3339_opts(SecondsFormat::Millis, true)
    }

    /// The event in `wire` format, rendered once and shared.
    pub fn render(&self, wire: Wire) -> Arc<str> {
        Arc::clone(self.rendered[wire.index()].get_or_init(|| Arc::from(self.render_now(wire))))
    }

    /// The event in `wire` format as a complete WebSocket text frame,
    /// encoded once and shared by every connection that receives it.
    pub fn frame(&self, wire: Wire) -> &[u8] {
        self.frames[wire.index()].get_or_init(|| text_frame(self.render(wire).as_bytes()))
    }

    fn render_now(&self, wire: Wire) -> String {
        let ts = self.ts();
        protocol::encode(
            wire.style(),
            &Outgoing {
                channel: &self.channel,
                seq: self.seq,
                kind: &self.kind,
                severity: self.severity,
                ts: &ts,
                id: self.id.as_deref(),
                data: &self.data,
            },
        )
    }
}

/// An unmasked, final WebSocket text frame (RFC 6455 §5.2) around
/// `payload`: what a server sends, without extensions.
pub fn text_frame(payload: &[u8]) -> Box<[u8]> {
    let n = payload.len();
    let mut v = Vec::with_capacity(n + 10);
    v.push(0x81);
    if n < 126 {
        v.push(n as u8);
    } else if let Ok(short) = u16::try_from(n) {
        v.push(126);
        v.extend_from_slice(&short.to_be_bytes());
    } else {
        v.push(127);
        v.extend_from_slice(&(n as u64).to_be_bytes());
    }
    v.extend_from_slice(payload);
    v.into_boxed_slice()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(channel: &str, kind: &str, data: &str) -> HubEvent {
        HubEvent::new(
            Arc::from(channel),
            7,
            kind.into(),
            Severity::Critical,
            DateTime::parse_from_rfc3339("2026-03-01T12:00:00Z")
                .unwrap()
                .with_timezone(&Utc),
            Some("e-1".into()),
            RawValue::from_string(data.into()).unwrap(),
        )
    }

    #[test]
    fn frames_match_tungstenite() {
        use tokio_tungstenite::tungstenite::protocol::frame::Frame;
        use tokio_tungstenite::tungstenite::protocol::frame::coding::{Data, OpCode};
        for n in [0usize, 1, 125, 126, 127, 65_535, 65_536, 70_000] {
            let payload = vec![b'x'; n];
            let mut want = Vec::new();
            Frame::message(payload.clone(), OpCode::Data(Data::Text), true)
                .format(&mut want)
                .unwrap();
            assert_eq!(&*text_frame(&payload), &want[..], "payload of {n} bytes");
        }
    }

    #[test]
    fn styles_that_share_a_wire_encode_alike() {
        let e = ev(
            "department:d1",
            "department_critical",
            r#"{"stress_rate":51}"#,
        );
        for style in Style::ALL {
            assert_eq!(
                &*e.render(Wire::of(style)),
                &*crate::protocol::encode(
                    style,
                    &Outgoing {
                        channel: &e.channel,
                        seq: e.seq,
                        kind: &e.kind,
                        severity: e.severity,
                        ts: &e.ts(),
                        id: e.id.as_deref(),
                        data: &e.data,
                    }
                ),
                "{style}"
            );
        }
    }

    #[test]
    fn renders_every_wire_once() {
        let e = ev("msp:m1/client:c1", "alert", r#"{"severity":"high"}"#);
        let n = e.render(Wire::Native);
        assert_eq!(
            &*n,
            r#"{"op":"event","channel":"msp:m1/client:c1","seq":7,"type":"alert","severity":"critical","ts":"2026-03-01T12:00:00.000Z","id":"e-1","data":{"severity":"high"}}"#
        );
        assert!(Arc::ptr_eq(&n, &e.render(Wire::Native)));
        assert_eq!(
            &*e.render(Wire::Compliance),
            r#"{"type":"alert","timestamp":"2026-03-01T12:00:00.000Z","client_id":"c1","data":{"severity":"high"}}"#
        );
        let t = ev(
            "user:u1",
            "risk_alert",
            r#"{"sessionId":"S1","alertLevel":"critical"}"#,
        );
        assert_eq!(
            &*t.render(Wire::Flat),
            r#"{"type":"risk_alert","sessionId":"S1","alertLevel":"critical","timestamp":"2026-03-01T12:00:00.000Z","id":"e-1"}"#
        );
    }
}
