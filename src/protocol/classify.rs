//! The severity and style rules of docs/PROTOCOL.md, in one place: which
//! types are control messages, which style a type belongs to, how explicit
//! level fields map to a severity, and the per-type overrides and defaults.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde_json::Value;
use serde_json::value::RawValue;

use super::envelope::{DataFields, Envelope, Keys, Levels};
use super::native::ServerControl;
use super::{
    Control, DecodeError, Event, Frame, Severity, Style, compliance, dashboard, hr, merchant, time,
    trading,
};

/// The kind given to a message that names no type at all. It is still an
/// event: nothing a server sends is dropped.
pub const UNTYPED: &str = "untyped";

pub(super) fn classify(
    text: &str,
    mut env: Envelope<'_>,
    source: &Arc<str>,
    received_at: DateTime<Utc>,
) -> Result<Frame, DecodeError> {
    if let Some(op) = env.op.0.take() {
        return native(&op, text, env, source, received_at);
    }
    let kind = match env.ty.0.take().or_else(|| env.event.0.take()) {
        Some(k) => k,
        None => {
            let action = env.action.0.take();
            return Ok(match action.as_deref() {
                // Servers that echo the dashboard commands.
                Some("pong") => Frame::Control(Control::Pong),
                Some(a @ ("refresh" | "ping")) => Frame::Control(Control::Ack { kind: a.into() }),
                _ => Frame::Event(build(
                    UNTYPED.to_owned(),
                    Style::Generic,
                    text,
                    env,
                    source,
                    received_at,
                )),
            });
        }
    };
    if let Some(control) = control_for(&kind, &env) {
        return Ok(Frame::Control(control));
    }
    let style = Style::of_kind(&kind);
    let kind = kind.into_owned();
    Ok(Frame::Event(build(
        kind,
        style,
        text,
        env,
        source,
        received_at,
    )))
}

/// Whether a message of type `kind` is connection housekeeping in the five
/// styles (docs/PROTOCOL.md, rule 4), which a client never takes for an
/// event: what the hub refuses to publish under that type.
pub(super) fn is_housekeeping(kind: &str) -> bool {
    control_for(kind, &Envelope::default()).is_some()
}

/// Types that are connection housekeeping in the five styles.
fn control_for(kind: &str, env: &Envelope<'_>) -> Option<Control> {
    Some(match kind {
        "ping" => Control::Ping,
        "pong" => Control::Pong,
        "heartbeat" => Control::Heartbeat,
        "subscribe" | "subscribed" | "unsubscribe" | "unsubscribed" => Control::Ack {
            kind: kind.to_owned(),
        },
        k if k.starts_with("connection") || k == "connected" || k == "welcome" => {
            Control::Connected {
                detail: env
                    .message
                    .as_deref()
                    .or(env.levels.status.as_deref())
                    .map(str::to_owned),
            }
        }
        _ => return None,
    })
}

/// The severity of a type when no level field says otherwise: its
/// style's default, else info.
fn default_severity(kind: &str) -> Severity {
    let defaults: [fn(&str) -> Option<Severity>; 5] = [
        merchant::default_severity,
        dashboard::default_severity,
        compliance::default_severity,
        hr::default_severity,
        trading::default_severity,
    ];
    defaults
        .into_iter()
        .find_map(|f| f(kind))
        .unwrap_or(Severity::Info)
}

/// The first explicit level field that maps to a severity, in the order
/// `alertLevel`, `severity`, `level`, `overall_risk`.
fn explicit_level(levels: &Levels<'_>) -> Option<Severity> {
    [
        &levels.alert_level,
        &levels.severity,
        &levels.level,
        &levels.overall_risk,
    ]
    .into_iter()
    .find_map(|l| l.as_deref().and_then(Severity::from_level))
}

/// Applies the rules: per-type overrides, then explicit levels (top level
/// before `data`), then the type's default.
pub(super) fn severity(kind: &str, top: &Levels<'_>, data: &Levels<'_>) -> Severity {
    let status = top.status.as_deref().or(data.status.as_deref());
    if let Some(s) = trading::lifecycle(kind, status) {
        return s;
    }
    let explicit = explicit_level(top).or_else(|| explicit_level(data));
    hr::floor(kind, explicit)
        .or(explicit)
        .unwrap_or_else(|| default_severity(kind))
}

/// The severity the rules give an event of type `kind` whose `data` is the
/// JSON text `data` (no level fields beside it).
pub(super) fn severity_of(kind: &str, data: &str) -> Severity {
    let fields = data
        .trim_start()
        .starts_with('{')
        .then(|| serde_json::from_str::<DataFields<'_>>(data).ok())
        .flatten()
        .unwrap_or_default();
    severity(kind, &Levels::default(), &fields.levels)
}

/// `kind:id` for what the event is about, most specific first.
fn subject(keys: &Keys<'_>) -> Option<String> {
    let candidates = [
        ("session", &keys.session_id),
        ("employee", &keys.employee_id),
        ("assessment", &keys.assessment_id),
        ("merchant", &keys.merchant_id),
        ("department", &keys.department_name),
        ("department", &keys.department_id),
        ("client", &keys.client_id),
        ("symbol", &keys.symbol),
        ("msp", &keys.msp_id),
    ];
    candidates.into_iter().find_map(|(prefix, v)| {
        v.as_deref()
            .filter(|s| !s.is_empty())
            .map(|s| format!("{prefix}:{s}"))
    })
}

/// A hub channel's last segment names what it is about when the event
/// itself does not: `msp:m1/client:c1` → `client:c1`,
/// `risk-assessment:as-1` → `assessment:as-1`, `department:d1`.
fn subject_from_channel(channel: &str) -> Option<String> {
    let last = channel.rsplit('/').next()?;
    let (kind, id) = last.split_once(':')?;
    let kind = match kind {
        "client" | "department" => kind,
        "risk-assessment" => "assessment",
        _ => return None,
    };
    (!id.is_empty() && !id.contains('*')).then(|| format!("{kind}:{id}"))
}

fn build(
    kind: String,
    style: Style,
    text: &str,
    mut env: Envelope<'_>,
    source: &Arc<str>,
    received_at: DateTime<Utc>,
) -> Event {
    let data = env
        .data
        .filter(|d| d.get().starts_with('{'))
        .and_then(|d| serde_json::from_str::<DataFields<'_>>(d.get()).ok())
        .unwrap_or_default();
    let severity = severity(&kind, &env.levels, &data.levels);
    env.keys.fill_from(data.keys);
    let (time, server_time) = match env.timestamp.and_then(time::parse) {
        Some(t) => (t, true),
        None => (received_at, false),
    };
    let subject =
        subject(&env.keys).or_else(|| env.channel.as_deref().and_then(subject_from_channel));
    Event {
        kind,
        severity,
        style,
        channel: env.channel.0.map(|c| c.into_owned()),
        subject,
        source: Arc::clone(source),
        time,
        server_time,
        id: env.id.0.map(|c| c.into_owned()),
        seq: env.seq.0,
        payload: raw(text),
    }
}

fn raw(text: &str) -> Box<RawValue> {
    // `text` already parsed as a JSON object, so this cannot fail; the
    // fallback keeps the function total anyway.
    RawValue::from_string(text.to_owned())
        .unwrap_or_else(|_| RawValue::from_string("null".to_owned()).expect("null is JSON"))
}

fn native(
    op: &str,
    text: &str,
    env: Envelope<'_>,
    source: &Arc<str>,
    received_at: DateTime<Utc>,
) -> Result<Frame, DecodeError> {
    let s = |l: &super::envelope::Loose<'_>| l.as_deref().unwrap_or_default().to_owned();
    let control = match op {
        "welcome" => ServerControl::Welcome {
            heartbeat: serde_json::from_str::<Value>(text)
                .ok()
                .and_then(|v| v.get("heartbeat").and_then(Value::as_u64)),
        },
        "subscribed" => ServerControl::Subscribed {
            channel: s(&env.channel),
            epoch: s(&env.epoch),
            seq: env.seq.0.unwrap_or(0),
        },
        "unsubscribed" => ServerControl::Unsubscribed {
            channel: s(&env.channel),
        },
        "gap" => ServerControl::Gap {
            channel: s(&env.channel),
            requested: env.requested.0.unwrap_or(0),
            oldest: env.oldest.0.unwrap_or(0),
            epoch: s(&env.epoch),
            criticals_kept: env.criticals_kept,
        },
        "error" => ServerControl::Error {
            code: s(&env.code),
            message: s(&env.message),
        },
        "pong" => ServerControl::Pong,
        "published" => ServerControl::Published {
            channel: s(&env.channel),
            seq: env.seq.0.unwrap_or(0),
        },
        // An event, or an op this client does not know: kept as an event
        // (named by its op).
        other => {
            let kind = match other {
                "event" => env.ty.as_deref().unwrap_or(UNTYPED),
                unknown => unknown,
            }
            .to_owned();
            return Ok(Frame::Event(build(
                kind,
                Style::Native,
                text,
                env,
                source,
                received_at,
            )));
        }
    };
    Ok(Frame::Control(Control::Native(control)))
}
