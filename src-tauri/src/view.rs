//! What the webview receives: small typed views built from the library's
//! types, mirrored field for field in `ui/src/ipc.ts`. The event's `data`
//! (the dashboards' numbers) but never the raw message, never the token.

use chrono::{DateTime, Utc};
use riskwatch::inbox::StoredAlert;
use riskwatch::{ConnState, Event, Severity};
use serde::{Deserialize, Serialize};
use serde_json::Value;

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
    /// The event's payload fields, the same whichever way the message
    /// came (`Event::data`: a seed's message direct or relayed by the
    /// hub), for the dashboards. Server text: render it as text.
    pub data: Value,
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
            data: event.data(),
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

/// One running connection (a profile, the demo, or `--url`), as the header
/// and Settings show it. Sent in the snapshot and as the `links` event.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LinkView {
    /// The profile's name (`demo` for the built-in demo, `cli` for `--url`).
    pub profile: String,
    /// The URL without credentials.
    pub source: String,
    pub demo: bool,
    pub state: LinkState,
}

/// One connection profile as Settings lists it. Never the token: only
/// whether the OS keyring holds one.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ProfileView {
    pub name: String,
    /// `None` for the demo (its hub's port changes every start) and for a
    /// preferences-only profile.
    pub url: Option<String>,
    /// The backend style; `None`: guessed from the URL.
    pub style: Option<String>,
    /// Channels subscribed to after connecting (native and trading styles).
    pub subscribe: Vec<String>,
    /// The OS keyring holds a token for this profile.
    pub has_token: bool,
    /// Why the keyring could not be asked (then `has_token` is false).
    pub keyring_error: Option<String>,
    pub demo: bool,
    /// Its connection, when one is running.
    pub link: Option<LinkView>,
}

/// What Settings sends to create or change a profile. Its `Debug` never
/// shows the token; it is not `Clone`, so the token exists once.
#[derive(Default, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ProfileInput {
    pub name: String,
    pub url: String,
    /// `None` or empty: guess from the URL.
    pub style: Option<String>,
    pub subscribe: Vec<String>,
    /// A new token for the OS keyring; `None` or empty keeps the stored one.
    /// Only ever travels webview → Rust.
    pub token: Option<String>,
    /// Remove the stored token.
    pub clear_token: bool,
}

impl std::fmt::Debug for ProfileInput {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProfileInput")
            .field("name", &self.name)
            .field("url", &self.url)
            .field("style", &self.style)
            .field("subscribe", &self.subscribe)
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .field("clear_token", &self.clear_token)
            .finish()
    }
}

/// Quiet hours as Settings edits them (`HH:MM`, an IANA zone).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QuietHoursForm {
    pub start: String,
    pub end: String,
    pub timezone: String,
    /// The least severity that still notifies inside them.
    pub allow: Severity,
}

/// One mute (`until` null) or snooze.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MuteView {
    /// `source`, `subject`, `type` or `channel`.
    pub kind: String,
    pub value: String,
    pub until: Option<DateTime<Utc>>,
}

/// A profile's preferences as Settings edits them. The rest of the file
/// (type, channel, symbol … filters, sounds, dedupe) is kept as it is.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PrefsForm {
    /// Minimum severity to list (and store).
    pub list: Severity,
    /// Minimum severity to notify.
    pub notify: Severity,
    pub quiet_hours: Option<QuietHoursForm>,
    /// Threshold rules, one per entry (docs/RULES.md).
    pub rules: Vec<String>,
    pub mutes: Vec<MuteView>,
    /// How many days the inbox keeps this profile's alerts (`[inbox]
    /// keep`); `None`: forever. Default 90.
    #[serde(default = "PrefsForm::default_keep_days")]
    pub keep_days: Option<u32>,
}

impl PrefsForm {
    /// The most days Settings accepts (ten years; beyond, "forever").
    pub const MAX_KEEP_DAYS: u32 = 3650;

    fn default_keep_days() -> Option<u32> {
        Some(90)
    }
}

/// A profile's preferences: the form, and the whole file for the advanced
/// editor.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PrefsView {
    pub profile: String,
    pub form: PrefsForm,
    /// The file as TOML.
    pub text: String,
    /// Where it is stored.
    pub path: String,
}

/// Everything a freshly loaded page needs to catch up.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Snapshot {
    /// The worst state of all connections (what the header badge shows).
    pub state: LinkState,
    /// Every running connection.
    pub links: Vec<LinkView>,
    /// The last events, oldest first (the order they were emitted in).
    pub events: Vec<EventView>,
    /// The connections' labels (URLs without credentials), comma-separated.
    pub source: String,
    /// Whether the built-in demo server is one of the sources.
    pub demo: bool,
    pub inbox: InboxCounts,
    /// The dashboard to open on: the one the window last showed, at first
    /// `--tab`; none for the default.
    pub tab: Option<String>,
    /// The alert to show in the inbox: a notification's Open, taken by a
    /// window it had to build.
    pub open_alert: Option<i64>,
}

/// The inbox's counts, for the tray, the tab and the header.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct InboxCounts {
    /// Stored alerts.
    pub total: u64,
    /// Unacknowledged alerts (capped at [`InboxCounts::UNREAD_CAP`]).
    pub unread: u64,
    /// Unacknowledged critical and emergency alerts.
    pub critical: u64,
    /// Notifications are paused until then (`None`: not paused).
    pub paused_until: Option<DateTime<Utc>>,
    /// The newest unacknowledged history gap, as the user reads it
    /// ("Events on sessions:demo between 14:02 and 14:09 could not be
    /// recovered…"); `None` when there is none.
    pub gap: Option<String>,
}

impl InboxCounts {
    /// Unread counts stop here ("999+").
    pub const UNREAD_CAP: u64 = 999;
}

/// One stored alert as the inbox lists it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AlertView {
    pub id: i64,
    pub kind: String,
    /// After rules.
    pub severity: Severity,
    pub title: String,
    pub body: String,
    pub subject: Option<String>,
    pub source: String,
    pub channel: Option<String>,
    pub time: DateTime<Utc>,
    pub acknowledged: Option<DateTime<Utc>>,
}

impl AlertView {
    pub fn new(a: &StoredAlert) -> AlertView {
        let d = a.event.describe();
        AlertView {
            id: a.id,
            kind: a.event.kind.clone(),
            severity: a.severity,
            title: d.title,
            body: d.body,
            subject: a.event.subject.clone(),
            source: a.event.source.to_string(),
            channel: a.event.channel.clone(),
            time: a.event.time,
            acknowledged: a.acknowledged,
        }
    }
}

/// One stored alert whole, for the inbox's detail view: the message as
/// the server sent it (pretty-printed JSON, server text: render it as
/// text) and what riskwatch knows of it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AlertDetail {
    pub alert: AlertView,
    /// The message as received, indented.
    pub message: String,
    /// The backend style it was decoded as (`native`, `trading`, …).
    pub style: String,
    /// The server's event id and the hub's sequence number, when sent.
    pub event_id: Option<String>,
    pub seq: Option<u64>,
    /// Whether `alert.time` is the server's (false: the receipt time).
    pub server_time: bool,
    pub received: DateTime<Utc>,
    /// Severity as decoded, before the user's rules.
    pub event_severity: Severity,
}

impl AlertDetail {
    pub fn new(a: &StoredAlert) -> AlertDetail {
        let raw = a.event.payload.get();
        let message = serde_json::from_str::<Value>(raw)
            .ok()
            .and_then(|v| serde_json::to_string_pretty(&v).ok())
            .unwrap_or_else(|| raw.to_owned());
        AlertDetail {
            alert: AlertView::new(a),
            message,
            style: a.event.style.as_str().to_owned(),
            event_id: a.event.id.clone(),
            seq: a.event.seq,
            server_time: a.event.server_time,
            received: a.received,
            event_severity: a.event.severity,
        }
    }
}

/// Where an export was written.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ExportView {
    pub path: String,
    pub count: u64,
}

/// The inbox filter the UI sends (`inbox_search`, `inbox_export`). Every
/// field optional.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct InboxFilter {
    /// Words of the type, subject, channel or message, each matched as a
    /// prefix, case and accents ignored (the inbox's full-text index).
    pub text: Option<String>,
    pub kind: Option<String>,
    pub min_severity: Option<Severity>,
    pub source: Option<String>,
    /// Only unacknowledged alerts.
    pub unread_only: bool,
    /// Only alerts whose time is at or after `since` and before `until`.
    pub since: Option<DateTime<Utc>>,
    pub until: Option<DateTime<Utc>>,
    /// Paging: only alerts older than this id (the last one of the page
    /// before).
    pub before_id: Option<i64>,
    /// Default and maximum 200.
    pub limit: Option<usize>,
}

impl InboxFilter {
    pub const MAX: usize = 200;

    pub fn query(&self) -> riskwatch::inbox::Query {
        let mut q = riskwatch::inbox::Query::default()
            .limit(self.limit.unwrap_or(Self::MAX).clamp(1, Self::MAX));
        let nonblank = |s: &Option<String>| {
            s.as_ref()
                .map(|t| t.trim().to_owned())
                .filter(|t| !t.is_empty())
        };
        if let Some(t) = nonblank(&self.text) {
            q = q.text(t);
        }
        if let Some(k) = nonblank(&self.kind) {
            q = q.kind(k);
        }
        if let Some(s) = nonblank(&self.source) {
            q = q.source(s);
        }
        if let Some(s) = self.min_severity {
            q = q.min_severity(s);
        }
        if self.unread_only {
            q = q.acknowledged(false);
        }
        if let Some(t) = self.since {
            q = q.since(t);
        }
        if let Some(t) = self.until {
            q = q.until(t);
        }
        if let Some(id) = self.before_id {
            q = q.before_id(id);
        }
        q
    }
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
                "body", "channel", "data", "key", "kind", "severity", "source", "subject", "time",
                "title"
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

    fn keys(v: &serde_json::Value) -> Vec<String> {
        let mut k: Vec<String> = v.as_object().expect("an object").keys().cloned().collect();
        k.sort_unstable();
        k
    }

    /// The field names `ui/src/ipc.ts` declares for each payload.
    #[test]
    fn payloads_have_the_fields_ipc_ts_expects() {
        let counts = InboxCounts {
            total: 3,
            unread: 2,
            critical: 1,
            paused_until: Some(Utc::now()),
            gap: None,
        };
        assert_eq!(
            keys(&serde_json::to_value(&counts).unwrap()),
            ["critical", "gap", "paused_until", "total", "unread"]
        );
        let link = LinkView {
            profile: "demo".into(),
            source: "ws://127.0.0.1:1/api/v1/stream".into(),
            demo: true,
            state: LinkState::Client(ConnState::Connected),
        };
        assert_eq!(
            keys(&serde_json::to_value(&link).unwrap()),
            ["demo", "profile", "source", "state"]
        );
        let snap = Snapshot {
            state: LinkState::Client(ConnState::Connected),
            links: vec![link.clone()],
            events: vec![EventView::new(1, &alert())],
            source: "demo".into(),
            demo: true,
            inbox: counts,
            tab: Some("hr".into()),
            open_alert: Some(7),
        };
        let v = serde_json::to_value(&snap).unwrap();
        assert_eq!(
            keys(&v),
            [
                "demo",
                "events",
                "inbox",
                "links",
                "open_alert",
                "source",
                "state",
                "tab"
            ]
        );
        let profile = ProfileView {
            name: "prod".into(),
            url: Some("wss://risk.example/ws".into()),
            style: None,
            subscribe: vec!["sessions:S1".into()],
            has_token: true,
            keyring_error: None,
            demo: false,
            link: Some(link),
        };
        let pv = serde_json::to_value(&profile).unwrap();
        assert_eq!(
            keys(&pv),
            [
                "demo",
                "has_token",
                "keyring_error",
                "link",
                "name",
                "style",
                "subscribe",
                "url"
            ]
        );
        let form = PrefsForm {
            list: Severity::Warning,
            notify: Severity::Critical,
            quiet_hours: Some(QuietHoursForm {
                start: "22:00".into(),
                end: "07:00".into(),
                timezone: "UTC".into(),
                allow: Severity::Emergency,
            }),
            rules: vec![],
            mutes: vec![MuteView {
                kind: "type".into(),
                value: "tick".into(),
                until: None,
            }],
            keep_days: Some(90),
        };
        let fv = serde_json::to_value(&form).unwrap();
        assert_eq!(
            keys(&fv),
            [
                "keep_days",
                "list",
                "mutes",
                "notify",
                "quiet_hours",
                "rules"
            ]
        );
        assert_eq!(
            keys(&fv["quiet_hours"]),
            ["allow", "end", "start", "timezone"]
        );
        assert_eq!(keys(&fv["mutes"][0]), ["kind", "until", "value"]);
        let pv = PrefsView {
            profile: "prod".into(),
            form: form.clone(),
            text: String::new(),
            path: "/p.toml".into(),
        };
        assert_eq!(
            keys(&serde_json::to_value(&pv).unwrap()),
            ["form", "path", "profile", "text"]
        );
        // What ipc.ts sends back parses.
        let back: PrefsForm = serde_json::from_value(fv).unwrap();
        assert_eq!(back, form);
        let input: ProfileInput = serde_json::from_value(json!({
            "name": "prod", "url": "wss://h/ws", "style": null,
            "subscribe": ["a"], "token": "t", "clear_token": false
        }))
        .unwrap();
        assert_eq!(input.token.as_deref(), Some("t"));
        let shown = format!("{input:?}");
        assert!(
            shown.contains("<redacted>") && !shown.contains("\"t\""),
            "{shown}"
        );
        assert!(serde_json::from_value::<ProfileInput>(json!({"name": "x", "bogus": 1})).is_err());
        assert_eq!(v["events"][0]["data"]["sessionId"], "S1");
        let stored = StoredAlert {
            id: 9,
            event: alert(),
            severity: Severity::Critical,
            key: Some("k".into()),
            received: Utc::now(),
            acknowledged: None,
        };
        let v = serde_json::to_value(AlertView::new(&stored)).unwrap();
        assert_eq!(
            keys(&v),
            [
                "acknowledged",
                "body",
                "channel",
                "id",
                "kind",
                "severity",
                "source",
                "subject",
                "time",
                "title"
            ]
        );
        assert_eq!(v["id"], 9);
        assert_eq!(v["severity"], "critical");
    }

    #[test]
    fn the_inbox_filter_reads_what_ipc_ts_sends() {
        let f: InboxFilter = serde_json::from_value(json!({
            "text": "loss", "kind": null, "min_severity": "critical", "source": "",
            "unread_only": true, "limit": 5000
        }))
        .unwrap();
        assert_eq!(f.min_severity, Some(Severity::Critical));
        let q = f.query();
        assert_eq!(q.limit, InboxFilter::MAX);
        assert_eq!(q.text.as_deref(), Some("loss"));
        assert!(q.sources.is_empty() && q.kinds.is_empty());
        assert_eq!(q.acknowledged, Some(false));
        assert!(serde_json::from_value::<InboxFilter>(json!({"bogus": 1})).is_err());
        assert_eq!(
            serde_json::from_value::<InboxFilter>(json!({})).unwrap(),
            InboxFilter::default()
        );
    }

    #[test]
    fn a_seed_message_gives_the_same_fields_direct_or_through_the_hub() {
        let source: Arc<str> = Arc::from("hr");
        let direct = r#"{"type":"department_critical","timestamp":"2025-12-10T09:53:23+08:00","data":{"department_id":"dept-123","department_name":"Engineering","overall_risk":"critical"}}"#;
        let relayed = r#"{"op":"event","channel":"department:dept-123","seq":1,"type":"department_critical","severity":"critical","ts":"2025-12-10T01:53:23Z","data":{"department_id":"dept-123","department_name":"Engineering","overall_risk":"critical"}}"#;
        let data = |text: &str| match decode(text, &source, Utc::now()) {
            Ok(Frame::Event(e)) => EventView::new(1, &e).data,
            other => panic!("{other:?}"),
        };
        assert_eq!(data(direct), data(relayed));
        assert_eq!(data(direct)["department_id"], "dept-123");
    }

    #[test]
    fn native_envelopes_give_their_data() {
        let text = r#"{"op":"event","channel":"dashboard","seq":3,"type":"dashboard_update","severity":"info","ts":"2025-01-02T03:04:05Z","data":{"total_risks":7}}"#;
        let source: Arc<str> = Arc::from("demo");
        if let Ok(Frame::Event(e)) = decode(text, &source, Utc::now()) {
            assert_eq!(EventView::new(1, &e).data, json!({"total_risks": 7}));
        }
    }
}
