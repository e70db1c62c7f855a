//! The connection the window shows. [`Link::open`] starts the embedded hub
//! with the desk simulators when no URL is configured (demo mode) and
//! connects a native client to every desk channel; [`Link::start`] pumps the
//! client's updates through the alert engine ([`Alerts`]) into the [`Feed`]
//! and out to the webview and the tray; [`Running::stop`] closes it on exit.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex, mpsc};
use std::time::Duration;

use chrono::Utc;
use riskwatch::client::{Client, ClientConfig, ClientHandle, ClientUpdate, redact_url};
use riskwatch::inbox::Committed;
use riskwatch::server::{Auth, Server, ServerConfig};
use riskwatch::sim::desk::{self, DeskOptions};
use serde::Serialize;
use tauri::async_runtime::{self, JoinHandle};
use tauri::{AppHandle, Emitter, Manager};
use tokio_util::sync::CancellationToken;

use crate::alerts::Alerts;
use crate::error::Error;
use crate::feed::Feed;
use crate::settings::Settings;
use crate::view::LinkState;
use crate::{EVENT_CONN_STATE, EVENT_EVENT, EVENT_INBOX, tray};

/// Inbox counts are sent at most this often.
const COUNTS_EVERY: Duration = Duration::from_millis(500);

/// How long exit waits for the client to close its connection cleanly.
const STOP_GRACE: Duration = Duration::from_secs(1);

/// The embedded hub and its simulators (demo mode).
#[derive(Debug)]
pub struct DemoHub {
    server: Server,
    desk: CancellationToken,
}

impl DemoHub {
    /// Starts the hub (insecure dev auth, loopback only) on a free port of
    /// 127.0.0.1 and the desk simulators publishing into it. Must run inside
    /// the async runtime.
    pub fn start() -> Result<DemoHub, Error> {
        let demo_err = |e: &dyn std::fmt::Display| Error::Demo(e.to_string());
        let std_listener = std::net::TcpListener::bind(SocketAddr::from((Ipv4Addr::LOCALHOST, 0)))
            .map_err(|e| demo_err(&e))?;
        std_listener
            .set_nonblocking(true)
            .map_err(|e| demo_err(&e))?;
        let listener = tokio::net::TcpListener::from_std(std_listener).map_err(|e| demo_err(&e))?;
        let server =
            Server::start(listener, ServerConfig::new(Auth::Insecure)).map_err(|e| demo_err(&e))?;
        let desk = CancellationToken::new();
        async_runtime::spawn(desk::run(
            Arc::clone(server.hub()),
            DeskOptions::default(),
            desk.clone(),
        ));
        Ok(DemoHub { server, desk })
    }

    /// The native endpoint.
    pub fn url(&self) -> String {
        format!("ws://{}/api/v1/stream", self.server.addr())
    }

    pub async fn shutdown(self) {
        self.desk.cancel();
        self.server.shutdown().await;
    }
}

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
    /// Kept here so the hub lives as long as the client reading it.
    hub: Option<DemoHub>,
}

impl Link {
    /// Opens the configured connection, or the demo. Never fails: what goes
    /// wrong becomes an `offline` state for the window to show. Must run
    /// inside the async runtime.
    pub fn open(settings: Settings) -> Link {
        let mut channels = settings.channels;
        let (url, hub) = match settings.url {
            Some(url) => (url, None),
            None => match DemoHub::start() {
                Ok(hub) => (hub.url(), Some(hub)),
                Err(e) => return Link::offline("demo".into(), true, e),
            },
        };
        let demo = hub.is_some();
        let mut config = ClientConfig::new(url.clone()).token(settings.token);
        if demo {
            // Concrete channels, so resume after a drop has positions.
            channels = desk::channels();
            config = config.label("demo");
        }
        for channel in channels {
            config = config.subscribe(channel);
        }
        match Client::connect(config) {
            Ok(client) => {
                let source = client.handle().label().to_string();
                tracing::info!(%source, demo, "connecting");
                Link {
                    source,
                    demo,
                    state: LinkState::Client(client.handle().state()),
                    client: Some(client),
                    hub,
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
            hub: None,
        }
    }

    /// Starts pumping on Tauri's runtime. [`Feed`] and (optionally)
    /// [`Alerts`] must be managed.
    pub fn start(self, app: AppHandle, committed: Option<mpsc::Receiver<Committed>>) -> Running {
        if let Some(committed) = committed {
            watch_commits(app.clone(), committed);
        }
        let Some(client) = self.client else {
            return Running::default();
        };
        let handle = client.handle().clone();
        let task = async_runtime::spawn(pump(app, client, self.hub));
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

/// Client updates → engine (inbox, notifications) → feed → webview, until
/// the client stops. Once a second, due repeats of unacknowledged alerts.
async fn pump(app: AppHandle, mut client: Client, hub: Option<DemoHub>) {
    let feed = app.state::<Feed>();
    let alerts = app.try_state::<Alerts>();
    let mut ticker = tokio::time::interval(Duration::from_secs(1));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let update = tokio::select! {
            u = client.next() => match u { Some(u) => u, None => break },
            _ = ticker.tick() => {
                if let Some(alerts) = &alerts {
                    for n in alerts.tick(Utc::now()) {
                        alerts.raise(&app, n);
                    }
                }
                continue;
            }
        };
        match update {
            ClientUpdate::Event(event) => {
                tracing::debug!(kind = %event.kind, severity = %event.severity, "event");
                if let Some(alerts) = &alerts
                    && let Some(n) = alerts.on_event(&event, Utc::now())
                {
                    tracing::info!(severity = %n.severity, title = %n.title, "notify");
                    alerts.raise(&app, n);
                }
                if let Some(view) = feed.push(&event) {
                    emit(&app, EVENT_EVENT, &view);
                }
            }
            ClientUpdate::State(state) => {
                tracing::info!(%state, "connection state");
                let state = LinkState::Client(state);
                if feed.set_state(state.clone()) {
                    emit(&app, EVENT_CONN_STATE, &state);
                    tray::refresh(&app);
                }
            }
            ClientUpdate::Notice(notice) => tracing::warn!(?notice, "server notice"),
        }
    }
    tracing::info!("connection closed");
    if let Some(hub) = hub {
        hub.shutdown().await;
    }
}

/// After inbox commits, fresh counts to the webview and the tray, at most
/// every [`COUNTS_EVERY`] (counting unread alerts reads rows; see
/// `Alerts::counts`).
fn watch_commits(app: AppHandle, committed: mpsc::Receiver<Committed>) {
    let spawned = std::thread::Builder::new()
        .name("riskwatch-inbox-watch".into())
        .spawn(move || {
            while committed.recv().is_ok() {
                notify_inbox(&app);
                std::thread::sleep(COUNTS_EVERY);
                // Coalesce what arrived meanwhile; a pending report waits
                // for the next commit or is sent below.
                let mut pending = false;
                while committed.try_recv().is_ok() {
                    pending = true;
                }
                if pending {
                    notify_inbox(&app);
                }
            }
        });
    if let Err(error) = spawned {
        tracing::warn!(%error, "cannot watch the inbox");
    }
}

/// Sends the inbox counts to the webview and refreshes the tray.
pub fn notify_inbox(app: &AppHandle) {
    if let Some(alerts) = app.try_state::<Alerts>() {
        match alerts.counts() {
            Ok(counts) => emit(app, EVENT_INBOX, &counts),
            Err(error) => tracing::warn!(%error, "inbox counts"),
        }
    }
    tray::refresh(app);
}

fn emit<T: Serialize + Clone>(app: &AppHandle, name: &str, payload: &T) {
    if let Err(error) = app.emit(name, payload) {
        tracing::warn!(%error, event = name, "cannot send to the window");
    }
}
