//! The connections the window shows: any number at once, one per profile
//! (a stored server, the built-in demo, or `--url`). [`Links::start`]
//! opens one — for the demo it first starts the embedded hub with the desk
//! simulators — and pumps its client's updates through the alert engine
//! ([`Alerts`]) into the [`Feed`] and out to the window (`window.rs`);
//! [`Links::stop`] closes one, [`Links::stop_all`] every one on exit.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::Utc;
use riskwatch::client::{Client, ClientConfig, ClientHandle, ClientUpdate, Notice, redact_url};
use riskwatch::engine::{Prefs, Rule};
use riskwatch::profile::FileStamp;
use riskwatch::sim::demo::DemoHub;
use riskwatch::sim::desk::DeskOptions;
use tauri::async_runtime::{self, JoinHandle};
use tauri::{AppHandle, Manager};

use crate::alerts::Alerts;
use crate::error::Error;
use crate::feed::Feed;
use crate::profiles::{self, Profiles};
use crate::settings::{Settings, Target};
use crate::view::{LinkState, LinkView};
use crate::window::{self, EVENT_EVENT};

/// How often a connection's profile file is looked at (a `stat`): a
/// snooze or mute made from the shell (`riskwatch mute --profile …`) or
/// by an editor is in force within about this long. As `riskwatch watch`
/// does it, and why polled: every save renames a new file over the old.
const REREAD_EVERY: Duration = Duration::from_secs(1);

/// A connection's profile file, to read its preferences again when it
/// changes.
struct PrefsFile {
    profiles: Profiles,
    path: std::path::PathBuf,
    seen: FileStamp,
}

impl PrefsFile {
    fn of(app: &AppHandle, profile: &str) -> Option<PrefsFile> {
        let profiles = app.try_state::<Option<Profiles>>()?.inner().clone()?;
        let path = profiles.path(profile).ok()?;
        let seen = FileStamp::of(&path);
        Some(PrefsFile {
            profiles,
            path,
            seen,
        })
    }

    /// Reads the preferences again if the file changed: the engine gets
    /// them; a file that no longer reads keeps the last good ones.
    fn reread(&mut self, profile: &str, alerts: &Alerts) {
        let now = FileStamp::of(&self.path);
        if now == self.seen {
            return;
        }
        self.seen = now;
        match self.profiles.load(profile) {
            Ok(p) => {
                alerts.set_prefs(profile, p.prefs, p.rules);
                tracing::info!(%profile, "preferences read again: the profile's file changed");
            }
            Err(error) => {
                tracing::warn!(%profile, %error, "the profile's file changed but cannot be used; keeping the preferences before it");
            }
        }
    }
}

/// How long closing waits for a client to close its connection cleanly.
const STOP_GRACE: Duration = Duration::from_secs(1);

/// The embedded hub and its simulators (demo mode).
/// One running connection.
#[derive(Debug)]
struct Running {
    client: ClientHandle,
    task: JoinHandle<()>,
    /// Which start made it: its pump, ending on its own, removes the entry
    /// only while it is still this one.
    generation: u64,
}

/// Every running connection, by profile. Managed Tauri state.
#[derive(Debug, Default)]
pub struct Links {
    running: Mutex<HashMap<String, Running>>,
    /// One start or stop at a time per profile: a double click on Connect,
    /// or Delete while a Save is connecting, never leaves a client behind
    /// that nothing can stop.
    gates: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    generations: AtomicU64,
}

impl Links {
    fn gate(&self, profile: &str) -> Arc<tokio::sync::Mutex<()>> {
        match self.gates.lock() {
            Ok(mut gates) => Arc::clone(gates.entry(profile.to_owned()).or_default()),
            // Poisoned: a fresh gate still serializes what comes after.
            Err(_) => Arc::default(),
        }
    }

    /// Opens `target`'s connection (closing the profile's old one first),
    /// gives the profile's engine `prefs`, and starts pumping it. What
    /// cannot work (a bad URL, a demo hub that cannot bind) becomes an
    /// `offline` connection the window shows. [`Feed`] (and optionally
    /// [`Alerts`]) must be managed.
    pub async fn start(
        &self,
        app: &AppHandle,
        target: Target,
        prefs: (Prefs, Vec<Rule>),
    ) -> LinkView {
        let gate = self.gate(&target.profile);
        let _one_at_a_time = gate.lock().await;
        self.stop_locked(app, &target.profile).await;
        let profile = target.profile.clone();
        if let Some(alerts) = app.try_state::<Alerts>() {
            alerts.set_prefs(&profile, prefs.0, prefs.1);
        }
        let demo = target.url.is_none();
        let feed = app.state::<Feed>();
        match open(target) {
            Ok((client, hub, source)) => {
                tracing::info!(%profile, %source, demo, "connecting");
                let view = LinkView {
                    profile: profile.clone(),
                    source,
                    demo,
                    state: LinkState::Client(client.handle().state()),
                };
                // Shown before the pump starts, so the pump's first state
                // change always lands on it.
                window::changed(app, feed.set_link(view.clone()));
                let generation = self.generations.fetch_add(1, Ordering::Relaxed);
                let handle = client.handle().clone();
                let task = async_runtime::spawn(pump(
                    app.clone(),
                    profile.clone(),
                    generation,
                    client,
                    hub,
                ));
                let running = Running {
                    client: handle,
                    task,
                    generation,
                };
                if let Ok(mut map) = self.running.lock()
                    && let Some(old) = map.insert(profile, running)
                {
                    // Cannot happen under the gate; never leave one running.
                    old.client.shutdown();
                }
                view
            }
            Err((source, error)) => {
                tracing::error!(%profile, %source, %error, "cannot connect");
                let view = LinkView {
                    profile: profile.clone(),
                    source,
                    demo,
                    state: LinkState::Offline {
                        error: error.to_string(),
                    },
                };
                window::changed(app, feed.set_link(view.clone()));
                view
            }
        }
    }

    /// Closes a profile's connection, waits briefly for it to finish,
    /// forgets its engine and takes it off the window. True when one was
    /// shown.
    pub async fn stop(&self, app: &AppHandle, profile: &str) -> bool {
        let gate = self.gate(profile);
        let _one_at_a_time = gate.lock().await;
        self.stop_locked(app, profile).await
    }

    async fn stop_locked(&self, app: &AppHandle, profile: &str) -> bool {
        let running = self.running.lock().ok().and_then(|mut m| m.remove(profile));
        if let Some(mut r) = running {
            r.client.shutdown();
            if tokio::time::timeout(STOP_GRACE, &mut r.task).await.is_err() {
                tracing::warn!(%profile, "connection did not close within {STOP_GRACE:?}: aborted");
                r.task.abort();
            }
        }
        if let Some(alerts) = app.try_state::<Alerts>() {
            alerts.remove_profile(profile);
        }
        let shown = app.state::<Feed>().remove_link(profile);
        let was = shown.links;
        window::changed(app, shown);
        was
    }

    /// A pump ended on its own (the client stopped for good): forget its
    /// entry unless a newer start replaced it. Its last state (stopped, and
    /// why) stays on the window.
    fn ended(&self, profile: &str, generation: u64) {
        if let Ok(mut map) = self.running.lock()
            && map.get(profile).is_some_and(|r| r.generation == generation)
        {
            map.remove(profile);
        }
    }

    /// Whether a profile's connection is running.
    pub fn is_running(&self, profile: &str) -> bool {
        self.running
            .lock()
            .map(|m| m.contains_key(profile))
            .unwrap_or(false)
    }

    /// Closes every connection; waits at most [`STOP_GRACE`] in all. Call
    /// from outside the async runtime (the exit handler).
    pub fn stop_all(&self) {
        let running: Vec<Running> = self
            .running
            .lock()
            .map(|mut m| m.drain().map(|(_, r)| r).collect())
            .unwrap_or_default();
        for r in &running {
            r.client.shutdown();
        }
        async_runtime::block_on(async {
            let all = futures_join_all(running.into_iter().map(|r| r.task));
            if tokio::time::timeout(STOP_GRACE, all).await.is_err() {
                tracing::warn!("connections did not close within {STOP_GRACE:?}");
            }
        });
    }
}

/// At start: the `--url` connection, every stored server profile, and the
/// demo when there is nothing else (or `--demo`). Tokens come from the OS
/// keyring, looked up off the async threads.
pub async fn connect_all(app: &AppHandle) {
    let settings = app.state::<Settings>();
    let store = app.state::<Option<Profiles>>().inner().clone();
    let mut targets: Vec<Target> = settings.cli_target().into_iter().collect();
    if let Some(store) = store.clone() {
        let servers = async_runtime::spawn_blocking(move || {
            store
                .servers()
                .into_iter()
                .map(|s| Target {
                    token: store.token(&s.name),
                    profile: s.name,
                    url: Some(s.url),
                    style: s.style,
                    subscribe: s.subscribe,
                })
                .collect::<Vec<_>>()
        })
        .await
        .unwrap_or_default();
        targets.extend(servers);
    }
    if settings.demo || targets.is_empty() {
        targets.insert(0, Target::demo());
    }
    for target in targets {
        connect(app, store.as_ref(), target).await;
    }
}

/// Gives the profile's engine its preferences (the desktop's defaults when
/// it has none, or its file cannot be read: logged), then connects.
pub async fn connect(app: &AppHandle, store: Option<&Profiles>, target: Target) -> LinkView {
    let loaded = match store.cloned() {
        Some(store) => {
            let name = target.profile.clone();
            async_runtime::spawn_blocking(move || store.load(&name))
                .await
                .map_err(|e| Error::Prefs(e.to_string()))
                .and_then(|r| r)
                .map(|p| (p.prefs, p.rules))
        }
        None => Ok((profiles::desktop_prefs(), Vec::new())),
    };
    let prefs = loaded.unwrap_or_else(|error| {
        tracing::error!(profile = %target.profile, %error, "preferences not loaded: using the defaults");
        (profiles::desktop_prefs(), Vec::new())
    });
    app.state::<Links>().start(app, target, prefs).await
}

/// Awaits every task (their results do not matter).
async fn futures_join_all(tasks: impl Iterator<Item = JoinHandle<()>>) {
    for task in tasks {
        let _ = task.await;
    }
}

/// The client for `target` (and the demo hub it reads), with its label;
/// or the label and why it cannot work.
#[allow(clippy::result_large_err)]
fn open(target: Target) -> Result<(Client, Option<DemoHub>, String), (String, Error)> {
    let (url, hub) = match target.url {
        Some(url) => (url, None),
        None => match DemoHub::start(DeskOptions::default()) {
            Ok(hub) => (hub.url(), Some(hub)),
            Err(e) => return Err(("demo".into(), Error::Demo(e.to_string()))),
        },
    };
    let mut config = ClientConfig::new(url.clone())
        .token(target.token)
        .style(target.style);
    let subscribe = match &hub {
        // Concrete channels, so resume after a drop has positions.
        Some(hub) => hub.channels(),
        None => target.subscribe,
    };
    if target.profile != profiles::CLI {
        config = config.label(target.profile.clone());
    }
    for channel in subscribe {
        config = config.subscribe(channel);
    }
    let redacted = url::Url::parse(url.trim())
        .map(|u| redact_url(&u))
        .unwrap_or_else(|_| "(invalid URL)".into());
    match Client::connect(config) {
        // The URL without credentials, whatever the label.
        Ok(client) => Ok((client, hub, redacted)),
        Err(e) => Err((redacted, e.into())),
    }
}

/// Client updates → engine (inbox, notifications) → feed → webview, until
/// the client stops.
async fn pump(
    app: AppHandle,
    profile: String,
    generation: u64,
    mut client: Client,
    hub: Option<DemoHub>,
) {
    let feed = app.state::<Feed>();
    let alerts = app.try_state::<Alerts>();
    let source: Arc<str> = Arc::from(profile.as_str());
    let mut prefs_file = PrefsFile::of(&app, &profile);
    let mut reread = tokio::time::interval(REREAD_EVERY);
    reread.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let update = tokio::select! {
            u = client.next() => u,
            _ = reread.tick(), if prefs_file.is_some() => {
                if let (Some(file), Some(alerts)) = (prefs_file.as_mut(), &alerts) {
                    file.reread(&profile, alerts);
                }
                continue;
            }
        };
        let Some(update) = update else { break };
        match update {
            ClientUpdate::Event(event) => {
                tracing::debug!(%profile, kind = %event.kind, severity = %event.severity, "event");
                if let Some(alerts) = &alerts
                    && let Some(n) = alerts.on_event(&profile, &event, Utc::now())
                {
                    tracing::info!(%profile, severity = %n.severity, title = %n.title, "notify");
                    window::raise(&app, alerts, n);
                }
                if let Some(view) = feed.push(&event) {
                    window::emit(&app, EVENT_EVENT, &view);
                }
            }
            ClientUpdate::State(state) => {
                tracing::info!(%profile, %state, "connection state");
                window::changed(&app, feed.set_state(&profile, LinkState::Client(state)));
            }
            ClientUpdate::Notice(notice) => {
                tracing::warn!(%profile, ?notice, "server notice");
                // A gap is never silent: an inbox entry, the tray's
                // tooltip, and a notification when critical alerts may be
                // among what was lost.
                if let Some(alerts) = &alerts
                    && matches!(notice, Notice::Gap { .. })
                {
                    if let Some(n) = alerts.on_notice(&profile, &source, &notice, Utc::now()) {
                        window::raise(&app, alerts, n);
                    }
                    window::inbox(&app);
                }
            }
        }
    }
    tracing::info!(%profile, "connection closed");
    app.state::<Links>().ended(&profile, generation);
    if let Some(hub) = hub {
        hub.shutdown().await;
    }
}
