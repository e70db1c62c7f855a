//! The Tauri commands the window may call (each granted in
//! `capabilities/default.json`). Thin adapters: state in, view out.

use tauri::State;

use crate::error::Error;
use crate::feed::Feed;
use crate::view::Snapshot;

/// The current state, source and last events, for a page that just loaded.
#[tauri::command]
pub fn snapshot(feed: State<'_, Feed>) -> Result<Snapshot, Error> {
    feed.snapshot()
}
