//! Build script: reads the Tauri config at the repository root, embeds
//! `ui/dist`, and generates the permission for each app command, so the
//! capability files can grant exactly the commands the window uses.

fn main() {
    let attributes = tauri_build::Attributes::new()
        .config_path("../tauri.conf.json")
        .app_manifest(tauri_build::AppManifest::new().commands(&[
            "snapshot",
            "window_tab",
            "inbox_search",
            "inbox_acknowledge",
            "inbox_unacknowledge",
            "inbox_alert",
            "inbox_export",
            "diagnostics",
            "profiles_list",
            "profile_save",
            "profile_connect",
            "profile_disconnect",
            "profile_delete",
            "prefs_get",
            "prefs_save",
            "prefs_save_text",
            "prefs_snooze",
            "prefs_unmute",
        ]));
    if let Err(error) = tauri_build::try_build(attributes) {
        // A build script reports through panics; `{:#}` keeps the cause chain.
        panic!("tauri build failed: {error:#}");
    }
}
