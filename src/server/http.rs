//! The hub's HTTP endpoints: `POST /api/v1/publish` (one event or a batch,
//! idempotent by `id`), `GET /api/v1/ws/stats`, `GET /metrics` (Prometheus
//! text), `GET /healthz`, and `GET /api/v1/dashboard` (the dashboard style's
//! polling snapshot). All but health need a token unless in dev mode.

use std::sync::atomic::Ordering;

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use serde_json::{Value, json};

use super::AppState;
use super::auth::Identity;
use super::event::NewEvent;

fn error(status: StatusCode, msg: &str) -> Response {
    (status, Json(json!({"error": msg}))).into_response()
}

async fn identify(st: &AppState, headers: &HeaderMap) -> Result<Identity, Box<Response>> {
    let token = super::auth::token_from(headers, None);
    st.auth.check(token.as_deref()).await.map_err(|e| {
        st.hub
            .counters
            .rejected_auth
            .fetch_add(1, Ordering::Relaxed);
        Box::new(error(StatusCode::UNAUTHORIZED, &e.to_string()))
    })
}

pub(super) async fn healthz() -> &'static str {
    "ok\n"
}

pub(super) async fn stats(State(st): State<AppState>, headers: HeaderMap) -> Response {
    match identify(&st, &headers).await {
        Ok(id) => Json(st.hub.stats().visible_to(&id)).into_response(),
        Err(r) => *r,
    }
}

pub(super) async fn dashboard(State(st): State<AppState>, headers: HeaderMap) -> Response {
    let id = match identify(&st, &headers).await {
        Ok(id) => id,
        Err(r) => return *r,
    };
    if !id.may_read("dashboard") {
        return error(StatusCode::FORBIDDEN, "not allowed to read the dashboard");
    }
    match st.hub.dashboard_snapshot() {
        Some(ev) => (
            [(header::CONTENT_TYPE, "application/json")],
            ev.data.get().to_owned(),
        )
            .into_response(),
        None => error(StatusCode::NOT_FOUND, "no dashboard data yet"),
    }
}

/// The most a publish body may hold (a batch of events).
const MAX_PUBLISH_BODY: usize = 2 * 1024 * 1024;
/// How long a publish body may take to arrive.
const PUBLISH_BODY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

pub(super) async fn publish(
    State(st): State<AppState>,
    headers: HeaderMap,
    body: axum::body::Body,
) -> Response {
    // The token first: nobody without one makes the hub hold a body.
    let id = match identify(&st, &headers).await {
        Ok(id) => id,
        Err(r) => return *r,
    };
    if !id.publish {
        return error(StatusCode::FORBIDDEN, "publishing needs the publish scope");
    }
    // Then the body, bounded in size and in time (a stalled upload is
    // dropped, not held).
    let read = axum::body::to_bytes(body, MAX_PUBLISH_BODY);
    let body = match tokio::time::timeout(PUBLISH_BODY_TIMEOUT, read).await {
        Ok(Ok(b)) => b,
        Ok(Err(_)) => {
            return error(
                StatusCode::PAYLOAD_TOO_LARGE,
                &format!("the body is larger than {MAX_PUBLISH_BODY} bytes"),
            );
        }
        Err(_) => {
            return error(
                StatusCode::REQUEST_TIMEOUT,
                "the body took too long to arrive",
            );
        }
    };
    let value: Value = match serde_json::from_slice(&body) {
        Ok(v) => v,
        Err(e) => return error(StatusCode::BAD_REQUEST, &format!("body is not JSON: {e}")),
    };
    let batch = matches!(value, Value::Array(_));
    let items = match value {
        Value::Array(a) => a,
        other => vec![other],
    };
    let mut events = Vec::with_capacity(items.len());
    for (i, item) in items.into_iter().enumerate() {
        match serde_json::from_value::<NewEvent>(item) {
            Ok(e) => events.push(e),
            Err(e) => {
                return error(
                    StatusCode::BAD_REQUEST,
                    &format!("event {i}: {e} (expected {{\"channel\", \"type\", \"data\"}})"),
                );
            }
        }
    }
    // All or nothing for what can be checked: one bad item publishes none
    // (a retry of the whole batch then duplicates nothing). Storage can
    // still fail midway; then `published` says which items were stored.
    for (i, e) in events.iter().enumerate() {
        if let Err(err) = st.hub.validate(e) {
            return error(StatusCode::BAD_REQUEST, &format!("event {i}: {err}"));
        }
    }
    let mut results = Vec::with_capacity(events.len());
    for (i, e) in events.into_iter().enumerate() {
        match st.hub.publish(e).await {
            Ok(p) => results.push(p),
            Err(err) => {
                let status = match err {
                    super::hub::PublishError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
                    _ => StatusCode::BAD_REQUEST,
                };
                return (
                    status,
                    Json(json!({"error": format!("event {i}: {err}"), "published": results})),
                )
                    .into_response();
            }
        }
    }
    if batch {
        Json(json!({"published": results})).into_response()
    } else {
        Json(json!(results.pop())).into_response()
    }
}

pub(super) async fn metrics(State(st): State<AppState>, headers: HeaderMap) -> Response {
    // Hub-wide numbers: for operators (a token that may read every
    // channel), not for one tenant's users.
    match identify(&st, &headers).await {
        Ok(id) if id.may_read("*") => {}
        Ok(_) => return error(StatusCode::FORBIDDEN, "metrics are for operators"),
        Err(r) => return *r,
    }
    let s = st.hub.stats();
    let mut reg = Registry::with_prefix("riskwatch_hub");
    let gauge = |v: usize| {
        let g: Gauge = Gauge::default();
        g.set(v as i64);
        g
    };
    let counter = |v: u64| {
        let c: Counter = Counter::default();
        c.inc_by(v);
        c
    };
    reg.register(
        "connections",
        "Open WebSocket connections",
        gauge(s.total_connections),
    );
    reg.register(
        "channels_subscribed",
        "Channels with at least one subscriber",
        gauge(s.connections_by_channel.len()),
    );
    reg.register(
        "messages_published",
        "Events published",
        counter(s.messages_published),
    );
    reg.register(
        "messages_delivered",
        "Events queued to subscribers",
        counter(s.messages_delivered),
    );
    reg.register(
        "messages_in",
        "Messages received from clients",
        counter(s.messages_in),
    );
    reg.register(
        "dropped_slow_consumers",
        "Events not queued because a subscriber was too slow",
        counter(s.dropped_slow_consumers),
    );
    reg.register(
        "rate_limited",
        "Connections closed for exceeding the rate limit",
        counter(s.rate_limited),
    );
    reg.register(
        "oversized",
        "Inbound messages over the size limit",
        counter(s.oversized),
    );
    if let Some(h) = s.heap {
        reg.register(
            "heap_in_use_bytes",
            "Heap allocated by the hub and not freed",
            gauge(usize::try_from(h.in_use_bytes).unwrap_or(usize::MAX)),
        );
        reg.register(
            "heap_held_bytes",
            "Heap the allocator holds from the system (in use plus free inside it)",
            gauge(usize::try_from(h.held_bytes).unwrap_or(usize::MAX)),
        );
    }
    reg.register(
        "rejected_auth",
        "Requests refused for authentication",
        counter(s.rejected_auth),
    );
    st.hub.metrics.register(&mut reg);
    let queues = st.hub.queues();
    reg.register(
        "queued_events",
        "Events waiting in connections' send queues",
        gauge(queues.total),
    );
    reg.register(
        "largest_queue",
        "Events waiting in the fullest connection's send queue",
        gauge(queues.largest),
    );
    let mut out = String::new();
    if encode(&mut out, &reg).is_err() {
        return error(StatusCode::INTERNAL_SERVER_ERROR, "metrics encoding failed");
    }
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        out,
    )
        .into_response()
}
