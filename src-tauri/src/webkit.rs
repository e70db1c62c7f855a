//! The main window, created here rather than from `tauri.conf.json` (where
//! it has `"create": false`) so that its webview gets the settings below
//! as soon as it exists; and those settings, which keep the webview lean: a
//! dashboard of text, tables and small canvas charts needs no GPU
//! compositing, no back/forward page cache and no large resource cache.
//! docs/PERFORMANCE.md has what each one saved.

use tauri::{AppHandle, Manager, WebviewWindow, WebviewWindowBuilder};

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

/// Creates and shows the `main` window of the configuration: at start-up
/// (unless `--minimized`), and again each time it is shown after being
/// closed. Its size and position are
/// the ones it had (tauri-plugin-window-state restores them as it is
/// built).
pub fn create_main(app: &AppHandle) -> tauri::Result<WebviewWindow> {
    let config = app
        .config()
        .app
        .windows
        .iter()
        .find(|w| w.label == crate::window::MAIN)
        .cloned()
        .unwrap_or_default();
    let window = WebviewWindowBuilder::from_config(app, &config)?.build()?;
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

/// After the window closed: WebKit ends the page's web process with its
/// view, but keeps its network process for the life of the web context,
/// which Tauri keeps for the app's life on Linux (a new context would start
/// a second one). An app idling in the tray has no use for it, so once no
/// webview is left it is ended here; WebKit starts a new one when the next
/// window loads (it treats the end as a crash of a process with no pages).
/// On a thread: it waits up to 5 s for the web process to go first.
pub fn released(app: &AppHandle) {
    #[cfg(target_os = "linux")]
    {
        let app = app.clone();
        in_background("riskwatch-webkit-release", move || release_processes(&app));
    }
    #[cfg(not(target_os = "linux"))]
    let _ = app;
}

/// Runs `f` on a thread of its own named `name`; a thread that cannot start
/// is logged (and `f` not run: what it lets go stays held).
#[cfg(target_os = "linux")]
fn in_background(name: &str, f: impl FnOnce() + Send + 'static) {
    if let Err(error) = std::thread::Builder::new().name(name.into()).spawn(f) {
        tracing::warn!(%error, thread = name, "cannot start a thread");
    }
}

/// After a start in the tray (`--minimized`): once start-up is over (10 s),
/// and while no window has been opened, the memory start-up touched and
/// the tray does not use is let go as after a window closed
/// ([`trim_memory`]).
pub fn settled_in_tray(app: &AppHandle) {
    #[cfg(target_os = "linux")]
    {
        let app = app.clone();
        in_background("riskwatch-tray-trim", move || {
            std::thread::sleep(std::time::Duration::from_secs(10));
            let handle = app.clone();
            // On the main thread, where windows are built.
            let _ = app.run_on_main_thread(move || {
                if handle.webview_windows().is_empty() {
                    trim_memory("started in the tray: start-up memory let go");
                }
            });
        });
    }
    #[cfg(not(target_os = "linux"))]
    let _ = app;
}

/// WebKit's helper processes this app started, by name, as the kernel
/// shortens it (`/proc/PID/comm`: 15 bytes).
#[cfg(target_os = "linux")]
fn webkit_children() -> Vec<(u32, String)> {
    let me = std::process::id();
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.flatten()
        .filter_map(|entry| entry.file_name().to_str()?.parse::<u32>().ok())
        .filter_map(|pid| {
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
            // "pid (comm) state ppid ...": comm may hold spaces and parens.
            let (head, rest) = stat.rsplit_once(')')?;
            let comm = head.split_once('(')?.1.to_owned();
            let ppid: u32 = rest.split_whitespace().nth(1)?.parse().ok()?;
            (ppid == me && comm.starts_with("WebKit")).then_some((pid, comm))
        })
        .collect()
}

#[cfg(target_os = "linux")]
fn release_processes(app: &AppHandle) {
    use std::time::{Duration, Instant};
    const WEB: &str = "WebKitWebProces";
    const NETWORK: &str = "WebKitNetworkPr";
    let deadline = Instant::now() + Duration::from_secs(5);
    while webkit_children().iter().any(|(_, name)| name == WEB) {
        if Instant::now() >= deadline {
            tracing::warn!("WebKit's web process outlived the window by 5 s: left running");
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    // Checked on the main thread, where windows are built (`show_main`),
    // so a window cannot appear between the check and the end.
    let handle = app.clone();
    let ran = app.run_on_main_thread(move || {
        if !handle.webview_windows().is_empty() {
            return; // opened again meanwhile: it uses the process
        }
        for (pid, name) in webkit_children() {
            if name != NETWORK {
                continue;
            }
            // SAFETY: kill(2) with a pid read from /proc and SIGTERM; a
            // pid that has exited meanwhile only fails with ESRCH.
            let ended = unsafe { libc::kill(pid as libc::pid_t, libc::SIGTERM) } == 0;
            tracing::info!(pid, ended, "WebKit's network process ended with the window");
        }
        trim_memory("memory the window used let go");
    });
    if let Err(error) = ran {
        tracing::warn!(%error, "cannot end WebKit's network process");
    }
}

/// Lets go of what the closed window's code left resident in this process:
/// the heap's free pages go back to the system (`malloc_trim`), and the
/// pages of code and read-only data mapped from files — WebKit's and
/// JavaScriptCore's libraries, most of this binary — are paged out
/// (`MADV_PAGEOUT`, Linux 5.4+). They are clean copies of files: nothing
/// is lost, the kernel keeps them in its page cache as long as it has room,
/// and what the tray goes on running faults back in at once. The kernel
/// skips pages another process maps too, and dirty (written) pages, which
/// would need swap. Logs what it did, with `what`.
#[cfg(target_os = "linux")]
fn trim_memory(what: &str) {
    let (heap, paged) = let_go();
    tracing::info!(heap_trimmed = heap, paged_out_kib = paged / 1024, "{what}");
}

/// [`trim_memory`]'s work: whether the heap shrank, and the bytes asked to
/// page out.
#[cfg(target_os = "linux")]
fn let_go() -> (bool, usize) {
    // SAFETY: malloc_trim only returns free memory to the system.
    #[cfg(target_env = "gnu")]
    let heap = unsafe { libc::malloc_trim(0) } == 1;
    #[cfg(not(target_env = "gnu"))]
    let heap = false;
    let Ok(maps) = std::fs::read_to_string("/proc/self/maps") else {
        return (heap, 0);
    };
    let mut paged = 0;
    for (start, end) in file_mappings(&maps) {
        // SAFETY: MADV_PAGEOUT is advice: the range stays mapped with its
        // contents, only where they reside changes. A range the kernel
        // cannot page out fails with EINVAL and is left as it is.
        if unsafe { libc::madvise(start as *mut libc::c_void, end - start, libc::MADV_PAGEOUT) }
            == 0
        {
            paged += end - start;
        }
    }
    (heap, paged)
}

/// The address ranges of `/proc/self/maps` lines that map regular files
/// (not the heap, stacks, anonymous memory, devices or shared memory).
#[cfg(target_os = "linux")]
fn file_mappings(maps: &str) -> Vec<(usize, usize)> {
    maps.lines()
        .filter_map(|line| {
            // "start-end perms offset dev inode path"
            let mut fields = line.split_whitespace();
            let range = fields.next()?;
            let path = fields.nth(4)?;
            let regular = path.starts_with('/')
                && !path.starts_with("/dev/")
                && !path.starts_with("/SYSV")
                && !path.starts_with("/memfd:");
            if !regular {
                return None;
            }
            let (start, end) = range.split_once('-')?;
            Some((
                usize::from_str_radix(start, 16).ok()?,
                usize::from_str_radix(end, 16).ok()?,
            ))
        })
        .collect()
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;

    #[test]
    fn only_regular_files_are_paged_out() {
        let maps = "\
55d0c0000000-55d0c0001000 r--p 00000000 fd:01 123 /usr/bin/riskwatch-desktop
55d0c1000000-55d0c1200000 rw-p 00000000 00:00 0 [heap]
7f0000000000-7f0000100000 r-xp 00010000 fd:01 456 /usr/lib/libwebkit2gtk-4.1.so.0 (deleted)
7f0000200000-7f0000300000 rw-p 00000000 00:00 0
7f0000400000-7f0000500000 rw-s 00000000 00:01 7 /SYSV00000000
7f0000600000-7f0000700000 rw-s 00000000 00:05 9 /dev/dri/renderD128
7f0000800000-7f0000900000 rw-s 00000000 00:01 8 /memfd:wayland-shm (deleted)
7ffc00000000-7ffc00021000 rw-p 00000000 00:00 0 [stack]
";
        assert_eq!(
            file_mappings("x-y r--p 0 0 0 /a").len(),
            0,
            "a malformed range is skipped"
        );
        assert_eq!(
            file_mappings(maps),
            [
                (0x55d0c0000000, 0x55d0c0001000),
                (0x7f0000000000, 0x7f0000100000)
            ]
        );
    }

    #[test]
    fn paging_out_keeps_what_the_pages_hold() {
        // Read-only data of this test binary, mapped from its file.
        static TEXT: &str = "the quick brown fox jumps over the lazy dog";
        let before: Vec<u8> = TEXT.bytes().collect();
        let (_, paged) = let_go();
        assert!(paged > 0, "nothing was paged out");
        assert_eq!(
            TEXT.as_bytes(),
            before,
            "a paged-out page came back changed"
        );
        let maps = std::fs::read_to_string("/proc/self/maps").unwrap();
        assert!(!file_mappings(&maps).is_empty());
    }
}
