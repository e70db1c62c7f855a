//! The main window, created here rather than from `tauri.conf.json` (where
//! it has `"create": false`) so that its webview gets the settings below
//! as soon as it exists; and those settings, which keep the webview lean: a
//! dashboard of text, tables and small canvas charts needs no GPU
//! compositing, no back/forward page cache and no large resource cache.
//! docs/PERFORMANCE.md has what each one saved.

use tauri::{App, WebviewWindow, WebviewWindowBuilder};

/// `RISKWATCH_WEBKIT_DEFAULTS=1` leaves WebKit's defaults alone: for
/// measuring what the settings here are worth, nothing else.
fn defaults_wanted() -> bool {
    std::env::var_os("RISKWATCH_WEBKIT_DEFAULTS").is_some_and(|v| v == "1")
}

/// The environment GTK and WebKit read once, at start-up, set here first
/// thing in `run` while the process has one thread. A variable the user
/// set is left as it is, as are all of them with
/// `RISKWATCH_WEBKIT_DEFAULTS=1`. docs/PERFORMANCE.md has what each saved.
///
/// - Software rendering: WebKit draws this app without the GPU anyway (see
///   [`tune`]), but GTK and WebKit's UI side would still load the system's
///   GL stack to probe it — with Mesa's software rasteriser that maps
///   libLLVM into the app process. So: no GL in GTK (`GDK_GL`), no
///   DMA-BUF renderer, and no render node for WebKit to look up through
///   EGL. The web process still needs EGL and keeps it.
/// - No memory-pressure polling: by default WebKit's UI process reads
///   `/proc/meminfo` and the cgroup's files every 1–5 s, and the network
///   process its own `/proc/self/smaps` every 30 s, so that WebKit can drop
///   caches when the system runs short. This webview keeps no page cache
///   and no memory cache (the document-viewer model), so there is little
///   to drop, and the polling was most of the idle app's CPU.
pub fn process_env() {
    #[cfg(target_os = "linux")]
    if !defaults_wanted() {
        for (key, value) in PROCESS_ENV {
            if std::env::var_os(key).is_none() {
                // SAFETY: called first thing in `run`, before any other
                // thread exists that could read the environment.
                unsafe { std::env::set_var(key, value) };
            }
        }
    }
}

/// The variables [`process_env`] sets.
#[cfg(target_os = "linux")]
const PROCESS_ENV: [(&str, &str); 4] = [
    ("GDK_GL", "disable"),
    ("WEBKIT_DISABLE_DMABUF_RENDERER", "1"),
    ("WEBKIT_WEB_RENDER_DEVICE_FILE", "/dev/null"),
    ("WEBKIT_DISABLE_MEMORY_PRESSURE_MONITOR", "1"),
];

/// Creates the `main` window of the configuration, hidden unless
/// `visible` (`--minimized`: start in the tray).
pub fn create_main(app: &App, visible: bool) -> tauri::Result<WebviewWindow> {
    let config = app
        .config()
        .app
        .windows
        .iter()
        .find(|w| w.label == "main")
        .cloned()
        .unwrap_or_default();
    let window = WebviewWindowBuilder::from_config(app.handle(), &config)?
        .visible(visible && config.visible)
        .build()?;
    #[cfg(target_os = "linux")]
    if !defaults_wanted() {
        tune(&window);
    }
    Ok(window)
}

/// Software rendering without compositing layers, no page cache, and the
/// smallest cache model.
#[cfg(target_os = "linux")]
fn tune(window: &WebviewWindow) {
    let done = window.with_webview(|webview| {
        use webkit2gtk::{
            CacheModel, HardwareAccelerationPolicy, SettingsExt, WebContextExt, WebViewExt,
        };
        let view = webview.inner();
        if let Some(settings) = WebViewExt::settings(&view) {
            settings.set_hardware_acceleration_policy(HardwareAccelerationPolicy::Never);
            settings.set_enable_page_cache(false);
            settings.set_enable_webgl(false);
        }
        if let Some(context) = view.context() {
            context.set_cache_model(CacheModel::DocumentViewer);
        }
    });
    if let Err(error) = done {
        tracing::warn!(%error, "webview settings not applied");
    }
}
