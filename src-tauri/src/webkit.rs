//! The main window, created here rather than from `tauri.conf.json` (where
//! it has `"create": false`) so that WebKitGTK's process-wide settings are
//! in place before its web process starts; and the settings that keep the
//! webview lean: a dashboard of text, tables and small canvas charts needs
//! no GPU compositing, no back/forward page cache and no large resource
//! cache. docs/PERFORMANCE.md has what each one saved.

use tauri::{App, WebviewWindow, WebviewWindowBuilder};

/// `RISKWATCH_WEBKIT_DEFAULTS=1` leaves WebKit's defaults alone: for
/// measuring what the settings here are worth, nothing else.
fn defaults_wanted() -> bool {
    std::env::var_os("RISKWATCH_WEBKIT_DEFAULTS").is_some_and(|v| v == "1")
}

/// Software rendering, set up before GTK and WebKit start (the first thing
/// `run` does, while the process has one thread): WebKit draws this app
/// without the GPU anyway (see [`tune`]), but GTK and WebKit's UI side would
/// still load the system's GL stack to probe it — with Mesa's software
/// rasteriser that maps libLLVM into the app process. So: no GL in GTK
/// (`GDK_GL`), no DMA-BUF renderer, and no render node for WebKit to look
/// up through EGL. The web process still needs EGL and keeps it. A variable
/// the user set is left as it is, as are all of them with
/// `RISKWATCH_WEBKIT_DEFAULTS=1`. docs/PERFORMANCE.md has what each saved.
pub fn software_rendering_env() {
    #[cfg(target_os = "linux")]
    if !defaults_wanted() {
        for (key, value) in SOFTWARE_RENDERING {
            if std::env::var_os(key).is_none() {
                // SAFETY: called first thing in `run`, before any other
                // thread exists that could read the environment.
                unsafe { std::env::set_var(key, value) };
            }
        }
    }
}

/// The variables [`software_rendering_env`] sets.
#[cfg(target_os = "linux")]
const SOFTWARE_RENDERING: [(&str, &str); 3] = [
    ("GDK_GL", "disable"),
    ("WEBKIT_DISABLE_DMABUF_RENDERER", "1"),
    ("WEBKIT_WEB_RENDER_DEVICE_FILE", "/dev/null"),
];

/// Creates the `main` window of the configuration.
pub fn create_main(app: &App) -> tauri::Result<WebviewWindow> {
    #[cfg(target_os = "linux")]
    if !defaults_wanted() {
        before_first_webview();
    }
    let config = app
        .config()
        .app
        .windows
        .iter()
        .find(|w| w.label == "main")
        .cloned()
        .unwrap_or_default();
    let window = WebviewWindowBuilder::from_config(app.handle(), &config)?.build()?;
    #[cfg(target_os = "linux")]
    if !defaults_wanted() {
        tune(&window);
    }
    Ok(window)
}

/// Memory pressure for the web processes started from now on: WebKit
/// releases its caches and collects JavaScript garbage from a third of the
/// limit on, harder from three quarters; it never kills the process.
#[cfg(target_os = "linux")]
fn before_first_webview() {
    use webkit2gtk::{MemoryPressureSettings, WebsiteDataManager};
    let mut settings = MemoryPressureSettings::new();
    settings.set_memory_limit(MEMORY_LIMIT_MB);
    // Strict first: WebKit requires conservative < strict at every step.
    settings.set_strict_threshold(0.75);
    settings.set_conservative_threshold(0.33);
    settings.set_kill_threshold(0.0);
    settings.set_poll_interval(5.0);
    WebsiteDataManager::set_memory_pressure_settings(&mut settings);
}

/// The web process's memory (MB) from which WebKit frees what it can.
#[cfg(target_os = "linux")]
const MEMORY_LIMIT_MB: u32 = 128;

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
