//! What the webview receives: small typed views built from the library's
//! types, mirrored field for field in `ui/src/ipc.ts`. Never the raw
//! payload (the UI needs only the description), never the token.

use chrono::{DateTime, Utc};
use riskwatch::{ConnState, Event, Severity};
use serde::Serialize;

/// One event as the window lists it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EventView {
    /// Local, strictly increasing number given on arrival. The UI merges the
    /// snapshot with live `event`s by it, so none is shown twice or lost.
    pub key: u64,
    /// The type string as the server sent it (`risk_alert`, `tick`, …).
    pub kind: String,
    pub severity: Severity,
    /// From [`Event::describe`]: plain text, to be rendered as text.
    pub title: String,
    pub body: String,
    pub subject: Option<String>,
    pub source: String,
    /// The server's time when it gave one, else the receipt time.
    pub time: DateTime<Utc>,
    pub channel: Option<String>,
}

impl EventView {
    pub fn new(key: u64, event: &Event) -> EventView {
        let description = event.describe();
        EventView {
            key,
            kind: event.kind.clone(),
            severity: event.severity,
            title: description.title,
            body: description.body,
            subject: event.subject.clone(),
            source: event.source.to_string(),
            time: event.time,
            channel: event.channel.clone(),
        }
    }
}

/// The connection state the window shows: the client's own state, or
/// `offline` when there is no client at all (the configured URL can never
/// work, the demo server could not start).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum LinkState {
    Offline {
        error: String,
    },
    /// Serialized as the client's [`ConnState`] itself
    /// (`{"state":"connected"}`, `{"state":"reconnecting",…}`).
    #[serde(untagged)]
    Client(ConnState),
}

/// Everything a freshly loaded page needs to catch up.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Snapshot {
    pub state: LinkState,
    /// The last events, oldest first (the order they were emitted in).
    pub events: Vec<EventView>,
    /// The connection's label: the URL without credentials.
    pub source: String,
    /// Whether the built-in demo server is the source.
    pub demo: bool,
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    use riskwatch::protocol::{Frame, decode};
    use serde_json::json;

    fn alert() -> Event {
        let text = r#"{"type":"risk_alert","sessionId":"S1","alertLevel":"critical","alertType":"loss_limit","message":"<b>loss</b> limit near","currentValue":92,"threshold":90,"timestamp":"2025-01-02T03:04:05Z"}"#;
        let source: Arc<str> = Arc::from("ws://127.0.0.1:1/ws");
        match decode(text, &source, Utc::now()).expect("decodes") {
            Frame::Event(e) => e,
            other => panic!("not an event: {other:?}"),
        }
    }

    #[test]
    fn event_view_has_the_description_and_no_payload() {
        let view = EventView::new(7, &alert());
        let v = serde_json::to_value(&view).unwrap();
        let mut keys: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
        keys.sort_unstable();
        assert_eq!(
            keys,
            [
                "body", "channel", "key", "kind", "severity", "source", "subject", "time", "title"
            ]
        );
        assert_eq!(v["key"], 7);
        assert_eq!(v["kind"], "risk_alert");
        assert_eq!(v["severity"], "critical");
        assert_eq!(v["time"], "2025-01-02T03:04:05Z");
        // Server text stays text: the markup is passed through for the UI to
        // render with textContent, not interpreted here.
        assert!(view.body.contains("<b>loss</b>"), "{}", view.body);
    }

    #[test]
    fn link_state_serializes_like_the_client_state() {
        let s = LinkState::Client(ConnState::Connected);
        assert_eq!(
            serde_json::to_value(&s).unwrap(),
            json!({"state": "connected"})
        );
        let s = LinkState::Client(ConnState::Reconnecting {
            attempt: 2,
            retry_in_ms: 1500,
            error: "refused".into(),
        });
        assert_eq!(
            serde_json::to_value(&s).unwrap(),
            json!({"state": "reconnecting", "attempt": 2, "retry_in_ms": 1500, "error": "refused"})
        );
        let s = LinkState::Offline {
            error: "bad URL".into(),
        };
        assert_eq!(
            serde_json::to_value(&s).unwrap(),
            json!({"state": "offline", "error": "bad URL"})
        );
    }
}
