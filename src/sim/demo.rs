//! The offline demo: the real hub on a free 127.0.0.1 port (development
//! auth, which the hub allows on loopback only) with [`desk`](super::desk)
//! publishing every backend's simulated traffic into it. `riskwatch demo`
//! and the desktop app's demo mode both run this, so a demo shows what a
//! real hub delivers, native protocol, sequences and resume included.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use super::desk::{self, DeskOptions};
use crate::protocol::native;
use crate::server::{Auth, Server, ServerConfig, ServerError};

/// A running demo hub and its simulators.
#[derive(Debug)]
pub struct DemoHub {
    server: Server,
    desk: CancellationToken,
}

impl DemoHub {
    /// Starts the hub and the desk. Must run inside a tokio runtime.
    pub fn start(opts: DeskOptions) -> Result<DemoHub, ServerError> {
        let listener = std::net::TcpListener::bind(SocketAddr::from((Ipv4Addr::LOCALHOST, 0)))?;
        listener.set_nonblocking(true)?;
        let listener = tokio::net::TcpListener::from_std(listener)?;
        let server = Server::start(listener, ServerConfig::new(Auth::Insecure))?;
        let stop = CancellationToken::new();
        tokio::spawn(desk::run(Arc::clone(server.hub()), opts, stop.clone()));
        Ok(DemoHub { server, desk: stop })
    }

    /// The hub's native endpoint.
    pub fn url(&self) -> String {
        format!("ws://{}{}", self.server.addr(), native::PATH)
    }

    /// Every channel the desk publishes on: subscribing to these by name
    /// (not a pattern) gives resume positions after a drop.
    pub fn channels(&self) -> Vec<String> {
        desk::channels()
    }

    pub fn server(&self) -> &Server {
        &self.server
    }

    /// Stops the simulators, then the hub (its clients get 1001).
    pub async fn shutdown(self) {
        self.desk.cancel();
        self.server.shutdown().await;
    }
}
