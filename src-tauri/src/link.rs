//! The one connection the window shows. [`Link::open`] starts the built-in
//! demo server when no URL is configured and connects the client;
//! [`Link::start`] pumps the client's updates into the [`Feed`] and out to
//! the webview as Tauri events; [`Running::stop`] closes it on exit.

use std::sync::Mutex;
use std::time::Duration;

use riskwatch::client::{Client, ClientConfig, ClientHandle, ClientUpdate, redact_url};
use riskwatch::demo::{DemoOptions, DemoServer};
use serde::Serialize;
use tauri::async_runtime::{self, JoinHandle};
use tauri::{AppHandle, Emitter, Manager};

use crate::error::Error;
use crate::feed::Feed;
use crate::settings::Settings;
use crate::view::LinkState;
use crate::{EVENT_CONN_STATE, EVENT_EVENT};

/// How long exit waits for the client to close its connection cleanly.
const STOP_GRACE: Duration = Duration::from_secs(1);

/// The connection, opened but not yet pumping (there is no window to send
/// to before Tauri's setup).
#[derive(Debug)]
pub struct Link {
    /// The URL without credentials, as events name it.
    pub source: String,
    pub demo: bool,
    pub state: LinkState,
    /// `None` when the client could not start; `state` says why.
    client: Option<Client>,
    /// Kept here so the demo server lives as long as the client reading it.
    server: Option<DemoServer>,
}

impl Link {
    /// Opens the configured connection, or the demo. Never fails: what goes
    /// wrong becomes an `offline` state for the window to show.
    pub async fn open(settings: Settings) -> Link {
        let (url, server) = match settings.url {
            Some(url) => (url, None),
            None => match DemoServer::start_local(DemoOptions::default()).await {
                Ok(server) => (server.url(), Some(server)),
                Err(e) => return Link::offline("demo".into(), true, e.into()),
            },
        };
        let demo = server.is_some();
        let config = ClientConfig::new(url.clone()).token(settings.token);
        match Client::connect(config) {
            Ok(client) => {
                let source = client.handle().label().to_string();
                tracing::info!(%source, demo, "connecting");
                Link {
                    source,
                    demo,
                    state: LinkState::Client(client.handle().state()),
                    client: Some(client),
                    server,
                }
            }
            Err(e) => {
                let source = url::Url::parse(url.trim())
                    .map(|u| redact_url(&u))
                    .unwrap_or_else(|_| "(invalid URL)".into());
                Link::offline(source, demo, e.into())
            }
        }
    }

    fn offline(source: String, demo: bool, error: Error) -> Link {
        tracing::error!(%source, %error, "cannot connect");
        Link {
            source,
            demo,
            state: LinkState::Offline {
                error: error.to_string(),
            },
            client: None,
            server: None,
        }
    }

    /// Starts pumping on Tauri's runtime. The [`Feed`] must be managed.
    pub fn start(self, app: AppHandle) -> Running {
        let Some(client) = self.client else {
            return Running::default();
        };
        let handle = client.handle().clone();
        let task = async_runtime::spawn(pump(app, client, self.server));
        Running {
            client: Some(handle),
            task: Mutex::new(Some(task)),
        }
    }
}

/// What stops a started link. Managed Tauri state.
#[derive(Debug, Default)]
pub struct Running {
    client: Option<ClientHandle>,
    task: Mutex<Option<JoinHandle<()>>>,
}

impl Running {
    /// Closes the connection and waits briefly for the pump to finish.
    /// Idempotent. Call from outside the async runtime (the exit handler).
    pub fn stop(&self) {
        if let Some(client) = &self.client {
            client.shutdown();
        }
        let task = self.task.lock().ok().and_then(|mut t| t.take());
        if let Some(task) = task {
            async_runtime::block_on(async {
                if tokio::time::timeout(STOP_GRACE, task).await.is_err() {
                    tracing::warn!("connection did not close within {STOP_GRACE:?}");
                }
            });
        }
    }
}

/// Client updates → feed → webview, until the client stops.
async fn pump(app: AppHandle, mut client: Client, server: Option<DemoServer>) {
    let feed = app.state::<Feed>();
    while let Some(update) = client.next().await {
        match update {
            ClientUpdate::Event(event) => {
                tracing::debug!(kind = %event.kind, severity = %event.severity, "event");
                if let Some(view) = feed.push(&event) {
                    emit(&app, EVENT_EVENT, &view);
                }
            }
            ClientUpdate::State(state) => {
                tracing::info!(%state, "connection state");
                let state = LinkState::Client(state);
                if feed.set_state(state.clone()) {
                    emit(&app, EVENT_CONN_STATE, &state);
                }
            }
            ClientUpdate::Notice(notice) => tracing::warn!(?notice, "server notice"),
        }
    }
    tracing::info!("connection closed");
    if let Some(server) = server {
        server.shutdown().await;
    }
}

fn emit<T: Serialize + Clone>(app: &AppHandle, name: &str, payload: &T) {
    if let Err(error) = app.emit(name, payload) {
        tracing::warn!(%error, event = name, "cannot send to the window");
    }
}
