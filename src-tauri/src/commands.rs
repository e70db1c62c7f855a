//! The Tauri commands the window may call (each granted in
//! `capabilities/default.json`). Thin adapters: state in, view out.

use tauri::{AppHandle, Manager, State};

use crate::alerts::Alerts;
use crate::error::Error;
use crate::feed::Feed;
use crate::view::{AlertView, InboxFilter, Snapshot};

/// The current state, source, last events and inbox counts, for a page
/// that just loaded.
#[tauri::command]
pub fn snapshot(
    app: AppHandle,
    feed: State<'_, Feed>,
    start: State<'_, StartTab>,
) -> Result<Snapshot, Error> {
    let mut snap = feed.snapshot()?;
    snap.tab = start.0.clone();
    if let Some(alerts) = app.try_state::<Alerts>() {
        snap.inbox = alerts.counts()?;
    }
    Ok(snap)
}

/// The dashboard to open on (`--tab`). Managed state.
#[derive(Debug, Default)]
pub struct StartTab(pub Option<String>);

/// Stored alerts matching `filter`, newest first.
#[tauri::command]
pub fn inbox_search(
    alerts: State<'_, Alerts>,
    filter: InboxFilter,
) -> Result<Vec<AlertView>, Error> {
    alerts.search(&filter)
}

/// Acknowledges these alerts; returns how many changed. The new counts
/// follow as an `inbox` event.
#[tauri::command]
pub fn inbox_acknowledge(
    app: AppHandle,
    alerts: State<'_, Alerts>,
    ids: Vec<i64>,
) -> Result<usize, Error> {
    let n = alerts.acknowledge(&ids)?;
    crate::link::notify_inbox(&app);
    Ok(n)
}
