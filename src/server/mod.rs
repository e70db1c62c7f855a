//! The riskwatch hub (`riskwatch serve`): the native protocol and the five
//! backend styles' endpoints over one listener, JWT auth, the publish API,
//! stats, Prometheus metrics, health, limits, graceful shutdown, and
//! optional durable history.
//!
//! # Layout
//! - `hub`: connections, subscribers, the fan-out, stats.
//! - `broker`: channels' sequences, epochs, history and users' cursors,
//!   in memory (plus files) or on Redis.
//! - `conn`: one WebSocket connection's task.
//! - `outbox`: a connection's write side, shared by its task and the
//!   fan-out (pre-encoded frames sent straight to idle connections).
//! - `upgrade`: the WebSocket handshake, done here so the socket can be
//!   shared that way.
//! - `endpoint`: per-style paths, channels, greetings and commands.
//! - `event`: the stored event and its per-format renderings.
//! - `auth`, `grants`: tokens, claims and channel permissions.
//! - `http`: publish, stats, metrics, health and the dashboard snapshot.
//! - `history`: one channel's retained events and the rules that trim them.
//! - `cursors`: where each user left each channel (the offline queue).
//! - `store`: history on disk for `--data-dir`.
//! - `tls`: the hub's TLS (`--tls-cert`, `--tls-key`).
//! - `jwks`: an identity provider's rotating keys (`--jwks-url`).

pub mod auth;
pub mod broker;
pub mod caps;
mod conn;
pub mod cursors;
pub mod endpoint;
pub mod event;
pub mod grants;
pub mod heap;
pub mod history;
mod http;
pub mod hub;
pub mod jwks;
pub mod metrics;
mod outbox;
pub mod store;
pub mod tls;
mod upgrade;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

pub use auth::{Auth, Claims, Identity};
pub use broker::{HubLimits, Published, RedisBroker};
pub use event::NewEvent;
pub use hub::Hub;

/// Per-connection limits.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Limits {
    /// Largest inbound message. Default 64 KiB.
    pub max_message: usize,
    /// Inbound messages per second per connection (token bucket). Default 20.
    pub rate_per_sec: u32,
    /// Bucket size. Default 40.
    pub rate_burst: u32,
    /// Connections one user may hold. Default 20.
    pub max_conns_per_user: usize,
    /// Events queued for one connection before it is closed with 1013.
    /// Default 1024.
    pub send_queue: usize,
    /// Hub pings; a peer silent for two intervals is dropped. Default 30 s.
    pub heartbeat: Duration,
    /// How soon after events went out a ping follows to prove them
    /// delivered (`hub::PROVE_EVERY`, 1 s): longer costs fewer pings and
    /// pongs, and replays more to a seed-style client after a cut.
    pub prove_every: Duration,
    /// How often the dashboard endpoint sends its latest
    /// `dashboard_update` again, as seed 001's hub pushes every 30 s.
    /// Default 30 s; zero: only on connect and on `refresh`.
    pub dashboard_every: Duration,
    /// Largest published `data`. Default 64 KiB.
    pub max_publish: usize,
    /// TCP connections held from one address (0: no limit). Default 4,096.
    pub max_conns_per_ip: usize,
    /// TCP connections held in all (0: no limit). Default 100,000.
    pub max_conns: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_message: 64 * 1024,
            rate_per_sec: 20,
            rate_burst: 40,
            max_conns_per_user: 20,
            send_queue: 1024,
            heartbeat: Duration::from_secs(30),
            prove_every: hub::PROVE_EVERY,
            dashboard_every: Duration::from_secs(30),
            max_publish: 64 * 1024,
            max_conns_per_ip: 4_096,
            max_conns: 100_000,
        }
    }
}

impl Limits {
    pub fn rate(mut self, per_sec: u32, burst: u32) -> Self {
        self.rate_per_sec = per_sec;
        self.rate_burst = burst;
        self
    }
    pub fn send_queue(mut self, n: usize) -> Self {
        self.send_queue = n;
        self
    }
    pub fn heartbeat(mut self, d: Duration) -> Self {
        self.heartbeat = d;
        self
    }
    pub fn prove_every(mut self, d: Duration) -> Self {
        self.prove_every = d;
        self
    }
    pub fn dashboard_every(mut self, d: Duration) -> Self {
        self.dashboard_every = d;
        self
    }
    pub fn max_conns_per_user(mut self, n: usize) -> Self {
        self.max_conns_per_user = n;
        self
    }
    pub fn max_conns_per_ip(mut self, n: usize) -> Self {
        self.max_conns_per_ip = n;
        self
    }
    pub fn max_conns(mut self, n: usize) -> Self {
        self.max_conns = n;
        self
    }
    pub fn max_message(mut self, n: usize) -> Self {
        self.max_message = n;
        self
    }
}

/// Everything `riskwatch serve` is configured with.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ServerConfig {
    pub auth: Auth,
    pub limits: Limits,
    /// History limits of the memory broker (a Redis broker has its own,
    /// given when it connects).
    pub history: HubLimits,
    /// Durable history directory. Default none (memory only). Not used
    /// with Redis, which holds the history.
    pub data_dir: Option<PathBuf>,
    /// The Redis broker, to share channels with other hubs. Default none:
    /// the memory broker.
    pub redis: Option<Arc<RedisBroker>>,
    /// TLS on the listener (https:// and wss://). Default none: plain.
    pub tls: Option<tls::Tls>,
}

impl ServerConfig {
    pub fn new(auth: Auth) -> ServerConfig {
        ServerConfig {
            auth,
            limits: Limits::default(),
            history: HubLimits::default(),
            data_dir: None,
            redis: None,
            tls: None,
        }
    }
    pub fn tls(mut self, t: Option<tls::Tls>) -> Self {
        self.tls = t;
        self
    }
    pub fn redis(mut self, b: Option<Arc<RedisBroker>>) -> Self {
        self.redis = b;
        self
    }
    pub fn limits(mut self, l: Limits) -> Self {
        self.limits = l;
        self
    }
    pub fn history(mut self, h: HubLimits) -> Self {
        self.history = h;
        self
    }
    pub fn data_dir(mut self, d: Option<PathBuf>) -> Self {
        self.data_dir = d;
        self
    }
}

/// Why the hub cannot start.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("--insecure-dev is only allowed on a loopback address, not {0}")]
    InsecureNotLoopback(SocketAddr),
    #[error(transparent)]
    Store(#[from] store::StoreError),
    #[error("cannot listen: {0}")]
    Io(#[from] std::io::Error),
}

#[derive(Clone)]
struct AppState {
    hub: Arc<Hub>,
    auth: Auth,
    limits: Limits,
    shutdown: CancellationToken,
    tracker: TaskTracker,
}

/// A running hub.
#[derive(Debug)]
pub struct Server {
    addr: SocketAddr,
    hub: Arc<Hub>,
    shutdown: CancellationToken,
    task: JoinHandle<()>,
}

impl Server {
    /// Serves on `listener` until [`Server::shutdown`].
    pub fn start(listener: TcpListener, cfg: ServerConfig) -> Result<Server, ServerError> {
        let addr = listener.local_addr()?;
        if cfg.auth.is_insecure() && !addr.ip().is_loopback() {
            return Err(ServerError::InsecureNotLoopback(addr));
        }
        let shutdown = CancellationToken::new();
        let tracker = TaskTracker::new();
        let broker: Arc<dyn broker::Broker> = match &cfg.redis {
            // With Redis, history and cursors live there, not in files.
            Some(redis) => Arc::clone(redis) as Arc<dyn broker::Broker>,
            None => Arc::new(broker::MemoryBroker::open(
                cfg.history.clone(),
                cfg.data_dir.as_deref(),
            )?),
        };
        let hub = Arc::new(Hub::new(cfg.limits.max_publish, Arc::clone(&broker)));
        tokio::spawn(broker.run(shutdown.clone()));
        tokio::spawn(Arc::clone(&hub).prover(cfg.limits.prove_every, shutdown.clone()));
        if let Some(jwks) = cfg.auth.jwks_keys() {
            tokio::spawn(Arc::clone(jwks).run(shutdown.clone()));
        }
        let state = AppState {
            hub: Arc::clone(&hub),
            auth: cfg.auth.clone(),
            limits: cfg.limits.clone(),
            shutdown: shutdown.clone(),
            tracker: tracker.clone(),
        };
        let app = Router::new()
            .route("/healthz", get(http::healthz))
            .route("/metrics", get(http::metrics))
            .route("/api/v1/ws/stats", get(http::stats))
            .route("/api/v1/publish", post(http::publish))
            .route("/api/v1/dashboard", get(http::dashboard))
            .fallback(websocket)
            .with_state(state);
        let stop = shutdown.clone();
        let task_hub = Arc::clone(&hub);
        let caps = caps::Caps::new(cfg.limits.max_conns, cfg.limits.max_conns_per_ip);
        hub.set_caps(Arc::clone(&caps));
        let tls = cfg.tls.clone();
        let task = tokio::spawn(async move {
            serve_http1(listener, app, stop, caps, tls).await;
            tracker.close();
            // Connections got their 1001; give them a moment to go.
            let _ = tokio::time::timeout(Duration::from_secs(5), tracker.wait()).await;
            task_hub.flush();
        });
        tracing::info!(%addr, "hub listening");
        Ok(Server {
            addr,
            hub,
            shutdown,
            task,
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn hub(&self) -> &Arc<Hub> {
        &self.hub
    }

    /// A token that stops the hub when cancelled.
    pub fn shutdown_token(&self) -> CancellationToken {
        self.shutdown.clone()
    }

    /// Closes every connection with 1001, flushes history and stops.
    pub async fn shutdown(self) {
        self.shutdown.cancel();
        let _ = self.task.await;
    }

    /// Waits until the hub stops (after its shutdown token is cancelled).
    pub async fn wait(self) {
        let _ = self.task.await;
    }
}

/// Serves `app` over HTTP/1.1 (all the hub speaks) until `stop`, then lets
/// requests in flight finish (5 s at most). It drives hyper's HTTP/1
/// connections itself rather than through `axum::serve`, whose
/// version-detecting driver wraps the socket in a private type: with
/// hyper's own, an upgraded WebSocket's TCP socket can be taken back
/// (`upgrade.rs`), so the fan-out writes to it directly. Accept errors are
/// handled as axum does: a connection's own error is skipped, anything else
/// (such as running out of descriptors) is logged and waited out for 1 s.
async fn serve_http1(
    listener: TcpListener,
    app: Router,
    stop: CancellationToken,
    caps: Arc<caps::Caps>,
    tls: Option<tls::Tls>,
) {
    use hyper_util::rt::TokioIo;
    use hyper_util::service::TowerToHyperService;

    // Dropped when serving stops: every connection starts its graceful
    // shutdown; each holds a receiver until it ends.
    let (signal, _) = tokio::sync::watch::channel(());
    let (done_tx, mut done_rx) = tokio::sync::mpsc::channel::<()>(1);
    loop {
        let (tcp, peer) = tokio::select! {
            biased;
            _ = stop.cancelled() => break,
            r = listener.accept() => match r {
                Ok(accepted) => accepted,
                Err(e) if matches!(
                    e.kind(),
                    std::io::ErrorKind::ConnectionRefused
                        | std::io::ErrorKind::ConnectionAborted
                        | std::io::ErrorKind::ConnectionReset
                ) => continue,
                Err(e) => {
                    tracing::error!(error = %e, "accept failed");
                    tokio::select! {
                        _ = stop.cancelled() => break,
                        _ = tokio::time::sleep(Duration::from_secs(1)) => continue,
                    }
                }
            },
        };
        // Over a cap: closed before anything is read.
        let Some(slot) = caps.admit(peer.ip()) else {
            tracing::debug!(%peer, "connection refused: too many connections");
            continue;
        };
        // Events are single small writes that must leave at once.
        let _ = tcp.set_nodelay(true);
        // Each request carries the connection's slot, so a WebSocket keeps
        // it after the upgrade, until its socket closes.
        let service = TowerToHyperService::new(tower::ServiceExt::map_request(
            app.clone(),
            move |mut req: axum::http::Request<hyper::body::Incoming>| {
                req.extensions_mut().insert(Arc::clone(&slot));
                req
            },
        ));
        let closing = signal.subscribe();
        let done = done_tx.clone();
        let tls = tls.clone();
        tokio::spawn(async move {
            match tls {
                None => serve_one(TokioIo::new(tcp), service, closing).await,
                Some(tls) => {
                    match tokio::time::timeout(tls::HANDSHAKE_TIMEOUT, tls.0.accept(tcp)).await {
                        Ok(Ok(stream)) => serve_one(TokioIo::new(stream), service, closing).await,
                        Ok(Err(e)) => tracing::debug!(%peer, error = %e, "TLS handshake failed"),
                        Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
                    }
                }
            }
            drop(done);
        });
    }
    drop(listener);
    drop(signal);
    drop(done_tx);
    // Every connection task holds a `done` sender: recv() ends when all
    // are gone.
    let _ = tokio::time::timeout(Duration::from_secs(5), done_rx.recv()).await;
}

/// Serves one HTTP/1.1 connection (upgrades included) until it ends;
/// when `closing` fires, lets its request in flight finish.
async fn serve_one<I, S>(io: I, service: S, mut closing: tokio::sync::watch::Receiver<()>)
where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
    S: hyper::service::HttpService<hyper::body::Incoming, ResBody = axum::body::Body>
        + Send
        + 'static,
    S::Future: Send + 'static,
    S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let conn = hyper::server::conn::http1::Builder::new()
        .timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(Duration::from_secs(30))
        .serve_connection(io, service)
        .with_upgrades();
    let mut conn = std::pin::pin!(conn);
    // The signal fires once (its sender is dropped); after that only the
    // connection is awaited.
    let mut signalled = false;
    loop {
        tokio::select! {
            r = conn.as_mut() => {
                if let Err(e) = r {
                    tracing::trace!(error = %e, "HTTP connection ended with an error");
                }
                break;
            }
            _ = closing.changed(), if !signalled => {
                signalled = true;
                conn.as_mut().graceful_shutdown();
            }
        }
    }
}

/// Every path not routed above: a WebSocket endpoint, or 404.
async fn websocket(State(st): State<AppState>, mut req: Request) -> Response {
    let path = req.uri().path().to_owned();
    let query = req.uri().query().map(str::to_owned);
    let Some(endpoint) = endpoint::route(&path) else {
        return (axum::http::StatusCode::NOT_FOUND, "no such endpoint\n").into_response();
    };
    let token = auth::token_from(req.headers(), query.as_deref());
    let verdict = st.auth.check(token.as_deref()).await;
    let ws = match upgrade::Upgrade::from_request(&mut req) {
        Ok(ws) => ws,
        Err(rejection) => return rejection.into_response(),
    };
    let slot = req.extensions().get::<Arc<caps::Slot>>().cloned();
    drop(req);
    let limits = st.limits.clone();
    let ws = ws.config(
        tokio_tungstenite::tungstenite::protocol::WebSocketConfig::default()
            .max_message_size(Some(limits.max_message))
            .max_frame_size(Some(limits.max_message))
            .read_buffer_size(1024)
            .write_buffer_size(0)
            .max_write_buffer_size(1 << 20),
    );
    let identity = match verdict {
        Ok(id) => id,
        Err(e) => {
            st.hub
                .counters
                .rejected_auth
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            tracing::info!(%path, error = %e, "authentication refused");
            return match endpoint.refusal() {
                endpoint::Refusal::Http => {
                    (axum::http::StatusCode::UNAUTHORIZED, format!("{e}\n")).into_response()
                }
                endpoint::Refusal::Close1008 => ws.on_upgrade(move |mut socket, _io| async move {
                    use futures_util::SinkExt;
                    use tokio_tungstenite::tungstenite::Message;
                    use tokio_tungstenite::tungstenite::protocol::CloseFrame;
                    let _ = socket
                        .send(Message::Close(Some(CloseFrame {
                            code: crate::protocol::native::close::POLICY.into(),
                            reason: e.to_string().into(),
                        })))
                        .await;
                }),
            };
        }
    };
    if st.hub.connections_of(&identity.user) >= limits.max_conns_per_user {
        return (
            axum::http::StatusCode::TOO_MANY_REQUESTS,
            "too many connections for this user\n",
        )
            .into_response();
    }
    let hub = Arc::clone(&st.hub);
    let shutdown = st.shutdown.clone();
    let tracker = st.tracker.clone();
    ws.on_upgrade(move |socket, io| {
        tracker.track_future(async move {
            conn::run(socket, io, hub, endpoint, identity, limits, shutdown).await;
            // Counted until the socket closes.
            drop(slot);
        })
    })
}
