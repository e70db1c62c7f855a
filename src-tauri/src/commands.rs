//! The Tauri commands the window may call (each granted in
//! `capabilities/default.json`). Thin adapters: state in, view out. Work
//! that blocks (profile files, the OS keyring over D-Bus, SQLite) runs on a
//! blocking thread, never on the webview's IPC thread.

use chrono::Utc;
use riskwatch::engine::{Prefs, Rule};
use riskwatch::inbox::ExportFormat;
use riskwatch::profile::Profile;
use tauri::{AppHandle, Manager};

use crate::alerts::Alerts;
use crate::error::Error;
use crate::feed::Feed;
use crate::link::Links;
use crate::profiles::{self, Profiles};
use crate::settings::{Settings, Target};
use crate::view::{
    AlertDetail, AlertView, ExportView, InboxFilter, LinkView, PrefsForm, PrefsView, ProfileInput,
    ProfileView, Snapshot,
};

/// The current state, source, last events and inbox counts, for a page
/// that just loaded.
#[tauri::command]
pub async fn snapshot(app: AppHandle) -> Result<Snapshot, Error> {
    blocking(move || {
        let mut snap = app.state::<Feed>().snapshot()?;
        let memory = app.state::<crate::window::Memory>();
        snap.tab = memory.tab();
        snap.open_alert = memory.take_open();
        if let Some(alerts) = app.try_state::<Alerts>() {
            snap.inbox = alerts.counts()?;
        }
        // Once per page load: when a window opened shows its state
        // (scripts/measure-desktop.sh times reopening by it).
        tracing::info!(tab = ?snap.tab, open_alert = ?snap.open_alert, "the window took its state");
        Ok(snap)
    })
    .await
}

/// The window shows `tab`: a window opened again (after it was closed)
/// opens on it.
#[tauri::command]
pub fn window_tab(app: AppHandle, tab: String) {
    tracing::info!(%tab, "the window shows a tab");
    app.state::<crate::window::Memory>().set_tab(&tab);
}

/// Runs `f` on the app's inbox on a blocking thread: SQLite never runs
/// on the main thread (the window's and the tray's) nor on the IPC one,
/// so a large inbox blocks neither.
async fn with_inbox<T: Send + 'static>(
    app: AppHandle,
    f: impl FnOnce(&Alerts) -> Result<T, Error> + Send + 'static,
) -> Result<T, Error> {
    blocking(move || match app.try_state::<Alerts>() {
        Some(alerts) => f(&alerts),
        None => Err(Error::Inbox(
            "there is no inbox (it could not be opened at start; see the log)".into(),
        )),
    })
    .await
}

/// Stored alerts matching `filter`, newest first, a page at a time.
#[tauri::command]
pub async fn inbox_search(app: AppHandle, filter: InboxFilter) -> Result<Vec<AlertView>, Error> {
    with_inbox(app, move |alerts| alerts.search(&filter)).await
}

/// One alert whole, for the detail view; `None` once it is gone.
#[tauri::command]
pub async fn inbox_alert(app: AppHandle, id: i64) -> Result<Option<AlertDetail>, Error> {
    with_inbox(app, move |alerts| alerts.detail(id)).await
}

/// Acknowledges these alerts; returns how many changed. The new counts
/// follow as an `inbox` event.
#[tauri::command]
pub async fn inbox_acknowledge(app: AppHandle, ids: Vec<i64>) -> Result<usize, Error> {
    set_acknowledged(app, ids, true).await
}

/// Undoes acknowledgements; returns how many changed. The new counts
/// follow as an `inbox` event.
#[tauri::command]
pub async fn inbox_unacknowledge(app: AppHandle, ids: Vec<i64>) -> Result<usize, Error> {
    set_acknowledged(app, ids, false).await
}

/// Acknowledges these alerts or undoes it, then asks for fresh counts.
async fn set_acknowledged(app: AppHandle, ids: Vec<i64>, acked: bool) -> Result<usize, Error> {
    let handle = app.clone();
    let n = with_inbox(app, move |alerts| {
        if acked {
            alerts.acknowledge(&ids)
        } else {
            alerts.unacknowledge(&ids)
        }
    })
    .await?;
    crate::window::inbox(&handle);
    Ok(n)
}

/// Writes every alert `filter` matches to a new CSV or JSON file in the
/// user's downloads folder (else the home folder); says where.
#[tauri::command]
pub async fn inbox_export(
    app: AppHandle,
    filter: InboxFilter,
    format: String,
) -> Result<ExportView, Error> {
    let format: ExportFormat = format.parse().map_err(Error::Invalid)?;
    let dir = app
        .path()
        .download_dir()
        .ok()
        .filter(|d| d.is_dir())
        .or_else(|| app.path().home_dir().ok())
        .ok_or_else(|| Error::Inbox("export: no downloads or home folder".into()))?;
    with_inbox(app, move |alerts| alerts.export(&filter, format, &dir)).await
}

/// The diagnostics report for a support ticket (Settings' "Copy
/// diagnostics"): versions, connections, the inbox, recent problems from
/// the log. Never a token.
#[tauri::command]
pub async fn diagnostics(app: AppHandle) -> Result<String, Error> {
    use crate::diagnostics::{Facts, RECENT_PROBLEMS, report};
    blocking(move || {
        let links = app.state::<Feed>().links();
        let (counts, inbox_error) = match app.try_state::<Alerts>() {
            Some(alerts) => match alerts.counts() {
                Ok(c) => (Some(c), None),
                Err(e) => (None, Some(e.to_string())),
            },
            None => (
                None,
                Some("it could not be opened at start (see the log)".into()),
            ),
        };
        let path = riskwatch::inbox::Inbox::app_path("desktop");
        let log_dir = riskwatch::logging::log_dir();
        let problems = log_dir
            .as_deref()
            .map(|d| riskwatch::logging::recent_problems(d, crate::LOG_PREFIX, RECENT_PROBLEMS))
            .unwrap_or_default();
        Ok(report(&Facts {
            links: &links,
            inbox: path.as_deref().zip(counts.as_ref()),
            inbox_error,
            log_dir: log_dir.as_deref(),
            problems: &problems,
        }))
    })
    .await
}

/// The profile store, or why there is none (no config directory).
fn store(app: &AppHandle) -> Result<Profiles, Error> {
    match app.try_state::<Option<Profiles>>().as_deref() {
        Some(Some(p)) => Ok(p.clone()),
        _ => Err(Error::Prefs(
            "no configuration directory on this system (is HOME set?)".into(),
        )),
    }
}

/// Runs blocking work off the IPC thread.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, Error> + Send + 'static,
) -> Result<T, Error> {
    tauri::async_runtime::spawn_blocking(f)
        .await
        .map_err(|e| Error::Prefs(format!("internal error: {e}")))?
}

/// Every profile: the stored ones, then the demo and `--url` connections.
#[tauri::command]
pub async fn profiles_list(app: AppHandle) -> Result<Vec<ProfileView>, Error> {
    let links = app.state::<Feed>().links();
    let store = store(&app).ok();
    blocking(move || Ok(list(store.as_ref(), &links))).await
}

fn list(store: Option<&Profiles>, links: &[LinkView]) -> Vec<ProfileView> {
    let link = |name: &str| links.iter().find(|l| l.profile == name).cloned();
    let mut out = Vec::new();
    if let Some(store) = store {
        for name in store.names().unwrap_or_default() {
            if name == profiles::DEMO || name == profiles::CLI {
                continue;
            }
            out.push(profile_view(store, &name, link(&name)));
        }
    }
    out.push(ProfileView {
        name: profiles::DEMO.into(),
        url: None,
        style: None,
        subscribe: Vec::new(),
        has_token: false,
        keyring_error: None,
        demo: true,
        link: link(profiles::DEMO),
    });
    if let Some(l) = link(profiles::CLI) {
        out.push(ProfileView {
            name: profiles::CLI.into(),
            url: Some(l.source.clone()),
            style: None,
            subscribe: Vec::new(),
            has_token: false,
            keyring_error: None,
            demo: false,
            link: Some(l),
        });
    }
    out
}

/// A stored profile as Settings shows it. A file that does not load still
/// lists, with the error where the keyring's would go.
fn profile_view(store: &Profiles, name: &str, link: Option<LinkView>) -> ProfileView {
    let (url, style, subscribe, load_error) = match store.load(name) {
        Ok(p) => (
            p.connection.url.map(|u| u.as_str().to_owned()),
            p.connection.style.map(|s| s.to_string()),
            p.connection.subscribe,
            None,
        ),
        Err(e) => (None, None, Vec::new(), Some(e.to_string())),
    };
    let (has_token, keyring_error) = match store.has_token(name) {
        Ok(t) => (t, None),
        Err(e) => (false, Some(e)),
    };
    ProfileView {
        name: name.to_owned(),
        url,
        style,
        subscribe,
        has_token,
        keyring_error: load_error.or(keyring_error),
        demo: false,
        link,
    }
}

/// Creates or changes a profile, stores its token in the OS keyring, gives
/// its engine the profile's preferences and (re)connects it.
#[tauri::command]
pub async fn profile_save(app: AppHandle, input: ProfileInput) -> Result<ProfileView, Error> {
    let store = store(&app)?;
    let name = input.name.trim().to_owned();
    let s = store.clone();
    let target = blocking(move || {
        let server = s.save(&input)?;
        drop(input); // the token, as early as possible
        Ok(Target {
            token: s.token(&server.name),
            profile: server.name,
            url: Some(server.url),
            style: server.style,
            subscribe: server.subscribe,
        })
    })
    .await?;
    connect_target(&app, &store, target).await?;
    view_of(&app, store, name).await
}

/// Connects a stored profile, the demo, or the `--url` connection again.
#[tauri::command]
pub async fn profile_connect(app: AppHandle, name: String) -> Result<ProfileView, Error> {
    let store = store(&app)?;
    let target = match name.as_str() {
        profiles::DEMO => Target::demo(),
        profiles::CLI => app
            .state::<Settings>()
            .cli_target()
            .ok_or_else(|| Error::NoProfile(name.clone()))?,
        _ => {
            let s = store.clone();
            let n = name.clone();
            blocking(move || {
                let server = s
                    .servers()
                    .into_iter()
                    .find(|srv| srv.name == n)
                    .ok_or(Error::NoProfile(n))?;
                Ok(Target {
                    token: s.token(&server.name),
                    profile: server.name,
                    url: Some(server.url),
                    style: server.style,
                    subscribe: server.subscribe,
                })
            })
            .await?
        }
    };
    connect_target(&app, &store, target).await?;
    view_of(&app, store, name).await
}

async fn connect_target(app: &AppHandle, store: &Profiles, target: Target) -> Result<(), Error> {
    crate::link::connect(app, Some(store), target).await;
    Ok(())
}

async fn view_of(app: &AppHandle, store: Profiles, name: String) -> Result<ProfileView, Error> {
    let links = app.state::<Feed>().links();
    blocking(move || {
        list(Some(&store), &links)
            .into_iter()
            .find(|p| p.name == name)
            .ok_or(Error::NoProfile(name))
    })
    .await
}

/// Closes a profile's connection (it stays stored).
#[tauri::command]
pub async fn profile_disconnect(app: AppHandle, name: String) -> Result<ProfileView, Error> {
    app.state::<Links>().stop(&app, &name).await;
    let store = store(&app)?;
    view_of(&app, store, name).await
}

/// Closes a profile's connection and removes its file and its token.
#[tauri::command]
pub async fn profile_delete(app: AppHandle, name: String) -> Result<(), Error> {
    let store = store(&app)?;
    if name == profiles::DEMO || name == profiles::CLI {
        return Err(Error::Invalid(format!(
            "{name:?} is the built-in connection: disconnect it instead"
        )));
    }
    app.state::<Links>().stop(&app, &name).await;
    blocking(move || store.delete(&name)).await
}

/// A profile's preferences, as a form and as the whole file.
#[tauri::command]
pub async fn prefs_get(app: AppHandle, profile: String) -> Result<PrefsView, Error> {
    let store = store(&app)?;
    blocking(move || store.view(&profile)).await
}

/// Saves Settings' form; the running engine takes it at once.
#[tauri::command]
pub async fn prefs_save(
    app: AppHandle,
    profile: String,
    form: PrefsForm,
) -> Result<PrefsView, Error> {
    edit_prefs(app, profile, move |store, name| {
        store.save_form(name, &form)
    })
    .await
}

/// Saves the whole file as written; the running engine takes it at once.
#[tauri::command]
pub async fn prefs_save_text(
    app: AppHandle,
    profile: String,
    text: String,
) -> Result<PrefsView, Error> {
    edit_prefs(app, profile, move |store, name| {
        store.save_text(name, &text)
    })
    .await
}

/// Snoozes a target for `minutes`, or mutes it until removed (`None`).
#[tauri::command]
pub async fn prefs_snooze(
    app: AppHandle,
    profile: String,
    kind: String,
    value: String,
    minutes: Option<u32>,
) -> Result<PrefsView, Error> {
    edit_prefs(app, profile, move |store, name| {
        store.snooze(name, profiles::target(&kind, &value)?, minutes, Utc::now())
    })
    .await
}

/// Removes a mute or snooze.
#[tauri::command]
pub async fn prefs_unmute(
    app: AppHandle,
    profile: String,
    kind: String,
    value: String,
) -> Result<PrefsView, Error> {
    edit_prefs(app, profile, move |store, name| {
        store.unmute(name, &profiles::target(&kind, &value)?)
    })
    .await
}

/// Changes a profile's stored preferences off the IPC thread with `edit`,
/// then gives them to its running engine.
async fn edit_prefs(
    app: AppHandle,
    profile: String,
    edit: impl FnOnce(&Profiles, &str) -> Result<(Profile, PrefsView), Error> + Send + 'static,
) -> Result<PrefsView, Error> {
    let store = store(&app)?;
    let name = profile.clone();
    let (p, view) = blocking(move || edit(&store, &name)).await?;
    apply(&app, &profile, p.prefs, p.rules);
    Ok(view)
}

/// New preferences reach the profile's running engine (if connected).
fn apply(app: &AppHandle, profile: &str, prefs: Prefs, rules: Vec<Rule>) {
    if app.state::<Links>().is_running(profile)
        && let Some(alerts) = app.try_state::<Alerts>()
    {
        alerts.set_prefs(profile, prefs, rules);
    }
}
