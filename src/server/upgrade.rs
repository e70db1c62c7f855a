//! The hub's WebSocket upgrade: the same checks and answers as axum's
//! `WebSocketUpgrade` (HTTP/1.1 only, as the hub serves), but the socket
//! under the tungstenite stream is a [`SharedIo`], so the fan-out can write
//! pre-encoded frames to it directly (see `outbox.rs`).

use axum::body::Body;
use axum::extract::Request;
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::{Role, WebSocketConfig};

use super::outbox::SharedIo;

/// The hub's side of a WebSocket connection.
pub type Socket = WebSocketStream<SharedIo>;

/// A request that may be upgraded.
pub struct Upgrade {
    key: HeaderValue,
    on_upgrade: hyper::upgrade::OnUpgrade,
    config: WebSocketConfig,
}

impl std::fmt::Debug for Upgrade {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Upgrade").finish_non_exhaustive()
    }
}

fn header_eq(headers: &HeaderMap, key: HeaderName, value: &'static str) -> bool {
    headers
        .get(&key)
        .is_some_and(|h| h.as_bytes().eq_ignore_ascii_case(value.as_bytes()))
}

fn header_contains(headers: &HeaderMap, key: HeaderName, value: &'static str) -> bool {
    headers
        .get(&key)
        .and_then(|h| std::str::from_utf8(h.as_bytes()).ok())
        .is_some_and(|h| h.to_ascii_lowercase().contains(value))
}

/// Why a request cannot be upgraded: its answer.
#[derive(Debug, Clone, Copy)]
pub struct Rejection(StatusCode, &'static str);

impl IntoResponse for Rejection {
    fn into_response(self) -> Response {
        (self.0, self.1).into_response()
    }
}

fn reject(status: StatusCode, why: &'static str) -> Rejection {
    Rejection(status, why)
}

impl Upgrade {
    /// Checks a WebSocket handshake request (axum's rejections, statuses
    /// and texts) and takes its upgrade.
    pub fn from_request(req: &mut Request) -> Result<Upgrade, Rejection> {
        if req.method() != Method::GET {
            return Err(reject(
                StatusCode::METHOD_NOT_ALLOWED,
                "Request method must be `GET`",
            ));
        }
        let headers = req.headers();
        if !header_contains(headers, header::CONNECTION, "upgrade") {
            return Err(reject(
                StatusCode::BAD_REQUEST,
                "Connection header did not include 'upgrade'",
            ));
        }
        if !header_eq(headers, header::UPGRADE, "websocket") {
            return Err(reject(
                StatusCode::BAD_REQUEST,
                "`Upgrade` header did not include 'websocket'",
            ));
        }
        let Some(key) = headers.get(header::SEC_WEBSOCKET_KEY).cloned() else {
            return Err(reject(
                StatusCode::BAD_REQUEST,
                "`Sec-WebSocket-Key` header missing",
            ));
        };
        if !header_eq(headers, header::SEC_WEBSOCKET_VERSION, "13") {
            return Err(reject(
                StatusCode::BAD_REQUEST,
                "`Sec-WebSocket-Version` header did not include '13'",
            ));
        }
        let Some(on_upgrade) = req.extensions_mut().remove::<hyper::upgrade::OnUpgrade>() else {
            return Err(reject(
                StatusCode::UPGRADE_REQUIRED,
                "WebSocket request couldn't be upgraded since no upgrade state was present",
            ));
        };
        Ok(Upgrade {
            key,
            on_upgrade,
            config: WebSocketConfig::default(),
        })
    }

    pub fn config(mut self, config: WebSocketConfig) -> Self {
        self.config = config;
        self
    }

    /// Answers 101 and runs `callback` on the socket once the upgrade is
    /// done (in its own task).
    pub fn on_upgrade<C, Fut>(self, callback: C) -> Response
    where
        C: FnOnce(Socket, SharedIo) -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let accept = derive_accept_key(self.key.as_bytes());
        let (on_upgrade, config) = (self.on_upgrade, self.config);
        tokio::spawn(async move {
            let upgraded = match on_upgrade.await {
                Ok(u) => u,
                Err(e) => {
                    tracing::debug!(error = %e, "WebSocket upgrade failed");
                    return;
                }
            };
            // A plain TCP connection (as the hub's HTTP/1 driver gives
            // hyper, `serve_http1` in mod.rs) is taken out of hyper's
            // wrapper, so the fan-out can write to its descriptor;
            // anything else stays wrapped.
            let io = match upgraded.downcast::<TokioIo<TcpStream>>() {
                Ok(parts) => SharedIo::tcp(parts.io.into_inner(), parts.read_buf),
                Err(upgraded) => SharedIo::new(TokioIo::new(upgraded)),
            };
            let socket =
                WebSocketStream::from_raw_socket(io.clone(), Role::Server, Some(config)).await;
            callback(socket, io).await;
        });
        let mut response = Response::new(Body::empty());
        *response.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
        let h = response.headers_mut();
        h.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
        h.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
        if let Ok(v) = HeaderValue::from_str(&accept) {
            h.insert(header::SEC_WEBSOCKET_ACCEPT, v);
        }
        response
    }
}
