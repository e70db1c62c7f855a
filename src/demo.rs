//! A small built-in server on loopback that plays the trading style from
//! the deterministic [`TradingSim`](crate::sim::trading::TradingSim), so
//! `riskwatch demo` and the desktop app show live data with no backend and
//! no network. It answers the style's `subscribe` and `heartbeat`, sends a
//! `heartbeat` of its own, and serves every path.

use std::net::SocketAddr;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::broadcast;
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::sim::trading::TradingSim;

/// Demo server settings.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct DemoOptions {
    /// Simulator seed. Default 42.
    pub seed: u64,
    /// Time between simulator ticks. Default 500 ms.
    pub tick: Duration,
    /// Trading sessions simulated. Default 3.
    pub sessions: usize,
}

impl Default for DemoOptions {
    fn default() -> Self {
        DemoOptions {
            seed: 42,
            tick: Duration::from_millis(500),
            sessions: 3,
        }
    }
}

impl DemoOptions {
    pub fn seed(mut self, s: u64) -> Self {
        self.seed = s;
        self
    }
    pub fn tick(mut self, d: Duration) -> Self {
        self.tick = d;
        self
    }
}

/// A running demo server.
#[derive(Debug)]
pub struct DemoServer {
    addr: SocketAddr,
    shutdown: CancellationToken,
    task: JoinHandle<()>,
}

impl DemoServer {
    /// Serves on `listener` until [`DemoServer::shutdown`].
    pub fn start(listener: TcpListener, opts: DemoOptions) -> std::io::Result<DemoServer> {
        let addr = listener.local_addr()?;
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(serve(listener, opts, shutdown.clone()));
        Ok(DemoServer {
            addr,
            shutdown,
            task,
        })
    }

    /// Binds 127.0.0.1 on a free port and serves there.
    pub async fn start_local(opts: DemoOptions) -> std::io::Result<DemoServer> {
        let listener = TcpListener::bind(("127.0.0.1", 0)).await?;
        DemoServer::start(listener, opts)
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The trading-style WebSocket URL.
    pub fn url(&self) -> String {
        format!("ws://{}/ws", self.addr)
    }

    /// Closes every connection with 1001 and stops.
    pub async fn shutdown(self) {
        self.shutdown.cancel();
        let _ = self.task.await;
    }
}

async fn serve(listener: TcpListener, opts: DemoOptions, shutdown: CancellationToken) {
    let (tx, _) = broadcast::channel::<String>(1024);
    let tracker = TaskTracker::new();
    let sim_tx = tx.clone();
    let sim_stop = shutdown.clone();
    tracker.spawn(async move {
        let mut sim = TradingSim::new(opts.seed, opts.sessions);
        let mut every = tokio::time::interval(opts.tick);
        loop {
            tokio::select! {
                _ = sim_stop.cancelled() => return,
                _ = every.tick() => {
                    for m in sim.tick(chrono::Utc::now()) {
                        let _ = sim_tx.send(m.to_string());
                    }
                }
            }
        }
    });
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    tracker.spawn(connection(stream, tx.subscribe(), shutdown.clone()));
                }
                Err(e) => {
                    tracing::warn!(error = %e, "demo server accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        }
    }
    tracker.close();
    tracker.wait().await;
}

async fn connection(
    stream: TcpStream,
    mut rx: broadcast::Receiver<String>,
    shutdown: CancellationToken,
) {
    let Ok(mut ws) = tokio_tungstenite::accept_async(stream).await else {
        return;
    };
    let mut heartbeat = tokio::time::interval(Duration::from_secs(10));
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => {
                let frame = CloseFrame { code: CloseCode::Away, reason: "demo server stopping".into() };
                let _ = ws.close(Some(frame)).await;
                return;
            }
            msg = rx.recv() => match msg {
                Ok(text) => if ws.send(Message::text(text)).await.is_err() { return },
                Err(broadcast::error::RecvError::Lagged(n)) => {
                    tracing::debug!(skipped = n, "demo client lagging");
                }
                Err(broadcast::error::RecvError::Closed) => return,
            },
            _ = heartbeat.tick() => {
                let hb = serde_json::json!({"type": "heartbeat", "timestamp": chrono::Utc::now().to_rfc3339()});
                if ws.send(Message::text(hb.to_string())).await.is_err() { return }
            }
            incoming = ws.next() => match incoming {
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => return,
                Some(Ok(_)) => {}
            }
        }
    }
}
