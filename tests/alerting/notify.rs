//! Real OS notifications: a private D-Bus session bus with a capturing
//! `org.freedesktop.Notifications` server (zbus, no display needed); the
//! tests assert the summary, body, urgency byte and timeout that crossed
//! the bus, the actions, and the degraded path when no server answers.

use std::collections::HashMap;
use std::process::Stdio;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::time::Duration;

use chrono::Utc;
use riskwatch::engine::Engine;
use riskwatch::notifier::{Notifier, NotifyError};
use riskwatch::protocol::{Frame, decode};
use zbus::object_server::SignalEmitter;
use zbus::zvariant::OwnedValue;

use crate::common::{Bus, Lines, Proc, WsServer, msg, riskwatch};
use crate::{child, is_role};

/// One `Notify` call as the server received it.
#[derive(Debug, Clone)]
pub struct Captured {
    pub app_name: String,
    pub replaces_id: u32,
    pub icon: String,
    pub summary: String,
    pub body: String,
    pub actions: Vec<String>,
    pub urgency: Option<u8>,
    pub sound_name: Option<String>,
    pub category: Option<String>,
    pub desktop_entry: Option<String>,
    pub expire_timeout: i32,
    pub id: u32,
}

struct Capture {
    tx: Mutex<mpsc::Sender<Captured>>,
    next: AtomicU32,
    caps: Vec<String>,
}

#[zbus::interface(name = "org.freedesktop.Notifications")]
impl Capture {
    fn get_capabilities(&self) -> Vec<String> {
        self.caps.clone()
    }

    #[allow(clippy::too_many_arguments)]
    fn notify(
        &self,
        app_name: String,
        replaces_id: u32,
        app_icon: String,
        summary: String,
        body: String,
        actions: Vec<String>,
        hints: HashMap<String, OwnedValue>,
        expire_timeout: i32,
    ) -> u32 {
        let id = if replaces_id > 0 {
            replaces_id
        } else {
            self.next.fetch_add(1, Ordering::SeqCst) + 1
        };
        let urgency = hints
            .get("urgency")
            .and_then(|v| v.downcast_ref::<u8>().ok());
        let text = |k: &str| hints.get(k).and_then(|v| v.downcast_ref::<String>().ok());
        let sound_name = text("sound-name");
        let category = text("category");
        let desktop_entry = text("desktop-entry");
        let _ = self.tx.lock().unwrap().send(Captured {
            app_name,
            replaces_id,
            icon: app_icon,
            summary,
            body,
            actions,
            urgency,
            sound_name,
            category,
            desktop_entry,
            expire_timeout,
            id,
        });
        id
    }

    fn close_notification(&self, _id: u32) {}

    fn get_server_information(&self) -> (String, String, String, String) {
        (
            "capture".into(),
            "riskwatch-tests".into(),
            "1.0".into(),
            "1.2".into(),
        )
    }

    #[zbus(signal)]
    async fn action_invoked(
        emitter: &SignalEmitter<'_>,
        id: u32,
        action_key: &str,
    ) -> zbus::Result<()>;
}

/// A capturing notification server on `bus`.
struct Server {
    conn: zbus::blocking::Connection,
    rx: mpsc::Receiver<Captured>,
}

impl Server {
    fn start(bus: &Bus, caps: &[&str]) -> Server {
        let (tx, rx) = mpsc::channel();
        let capture = Capture {
            tx: Mutex::new(tx),
            next: AtomicU32::new(0),
            caps: caps.iter().map(|s| s.to_string()).collect(),
        };
        let conn = zbus::blocking::connection::Builder::address(bus.address.as_str())
            .unwrap()
            .serve_at("/org/freedesktop/Notifications", capture)
            .unwrap()
            .name("org.freedesktop.Notifications")
            .unwrap()
            .build()
            .expect("start the capturing notification server");
        bus.wait_for_name("org.freedesktop.Notifications", Duration::from_secs(10));
        Server { conn, rx }
    }

    fn next(&self, what: &str) -> Captured {
        self.rx
            .recv_timeout(Duration::from_secs(15))
            .unwrap_or_else(|_| panic!("no Notify call for {what} within 15 s"))
    }

    fn invoke(&self, id: u32, action: &str) {
        let iface = self
            .conn
            .object_server()
            .interface::<_, Capture>("/org/freedesktop/Notifications")
            .unwrap();
        zbus::block_on(Capture::action_invoked(iface.signal_emitter(), id, action)).unwrap();
    }
}

/// Role: shows the engine's notification for the event in `RW_EVENT` on
/// the bus in `DBUS_SESSION_BUS_ADDRESS`, through the async path, twice;
/// prints `SHOWN <id> <actions>` or `ERROR <kind>` per attempt.
#[test]
fn child_notifier() {
    if !is_role("notify::child_notifier") {
        return;
    }
    // libtest has printed "test … ... " without a newline: end that line.
    println!();
    let text = std::env::var("RW_EVENT").unwrap();
    let Ok(Frame::Event(e)) = decode(&text, &Arc::from("desk"), Utc::now()) else {
        panic!("not an event");
    };
    let n = Engine::default()
        .decide(&e, Utc::now())
        .notify
        .expect("the engine notifies this event");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let notifier = Notifier::default();
    for _ in 0..2 {
        let r = rt.block_on(notifier.show(n.clone()));
        match r {
            Ok(s) => println!("SHOWN {} {}", s.id, s.actions),
            Err(NotifyError::Unavailable(m)) => println!("ERROR unavailable {m}"),
            Err(NotifyError::Timeout(_)) => println!("ERROR timeout"),
            Err(NotifyError::Failed(m)) => println!("ERROR failed {m}"),
        }
    }
    println!("DONE");
}

fn run_notifier(address: &str, event: String) -> Vec<String> {
    let mut c = child("notify::child_notifier");
    c.env("DBUS_SESSION_BUS_ADDRESS", address)
        .env("RW_EVENT", event);
    let mut p = Proc::spawn("notifier child", &mut c);
    let out = Lines::from_stdout(p.child.stdout.take().unwrap());
    out.until("DONE", Duration::from_secs(30), |l| l == "DONE");
    assert!(p.wait(Duration::from_secs(10)).success());
    out.text()
        .lines()
        .filter(|l| l.starts_with("SHOWN") || l.starts_with("ERROR"))
        .map(str::to_owned)
        .collect()
}

#[test]
fn an_emergency_crosses_dbus_as_critical_never_expiring_with_actions() {
    let bus = Bus::start();
    let server = Server::start(&bus, &["body", "actions"]);
    let results = run_notifier(&bus.address, msg::emergency_stop());
    assert!(
        results.iter().all(|r| r.starts_with("SHOWN")),
        "{results:?}"
    );
    let n = server.next("the emergency");
    assert_eq!(n.summary, "EMERGENCY STOP");
    assert_eq!(n.body, "session S42: loss limit at 100%, P&L -5000");
    assert_eq!(n.urgency, Some(2), "urgency byte 2 is critical");
    assert_eq!(n.expire_timeout, 0, "emergencies never expire");
    assert_eq!(n.app_name, "riskwatch");
    assert_eq!(n.icon, "dialog-error");
    assert_eq!(
        n.actions,
        [
            "default",
            "Open",
            "acknowledge",
            "Acknowledge",
            "open",
            "Open"
        ]
    );
    // The spec's vendor prefix, and the launcher entry the package installs.
    assert_eq!(n.category.as_deref(), Some("x-riskwatch.alert.critical"));
    assert_eq!(n.desktop_entry.as_deref(), Some("riskwatch"));
    // The second show of the same alert replaces the first bubble.
    let again = server.next("the second show");
    assert_eq!(again.replaces_id, n.id);
}

#[test]
fn a_critical_alert_crosses_dbus_as_critical_and_actions_follow_capabilities() {
    let bus = Bus::start();
    let server = Server::start(&bus, &["body"]);
    let results = run_notifier(&bus.address, msg::department_critical());
    assert!(results[0].starts_with("SHOWN"), "{results:?}");
    assert!(
        results[0].ends_with("false"),
        "no actions capability: {results:?}"
    );
    let n = server.next("the critical alert");
    assert_eq!(n.summary, "Department critical: Engineering");
    assert_eq!(n.body, "engagement score 45.50");
    assert_eq!(n.urgency, Some(2));
    assert_eq!(
        n.expire_timeout, -1,
        "critical alerts expire as the server decides"
    );
    assert!(n.actions.is_empty(), "{:?}", n.actions);
}

#[test]
fn without_a_notification_server_the_notifier_returns_an_error_value() {
    // A bus where nobody owns org.freedesktop.Notifications.
    let bus = Bus::start();
    let results = run_notifier(&bus.address, msg::emergency_stop());
    assert_eq!(results.len(), 2, "{results:?}");
    assert!(
        results.iter().all(|r| r.starts_with("ERROR unavailable")),
        "{results:?}"
    );
    // No bus at all.
    let gone = format!("unix:path={}/nothing-here", bus.dir.path().display());
    let results = run_notifier(&gone, msg::emergency_stop());
    assert!(
        results.iter().all(|r| r.starts_with("ERROR unavailable")),
        "{results:?}"
    );
}

#[test]
fn watch_with_prefs_and_notify_raises_real_notifications_and_acknowledges() {
    let bus = Bus::start();
    let server = Server::start(&bus, &["body", "actions"]);
    let ws = WsServer::start(vec![
        msg::market_data(),
        msg::department_critical(),
        msg::emergency_stop(),
    ]);
    let dir = tempfile::tempdir().unwrap();
    let prefs = dir.path().join("prefs.toml");
    std::fs::write(
        &prefs,
        "[sounds]\nemergency = \"alarm-clock-elapsed\"\n[types]\nalgorithm_decision = false\n",
    )
    .unwrap();
    let inbox_path = dir.path().join("inbox.sqlite3");
    let mut cmd = riskwatch();
    cmd.arg("watch")
        .arg(ws.url())
        .arg("--prefs")
        .arg(&prefs)
        .arg("--notify")
        .arg("--json")
        .arg("--inbox")
        .arg(&inbox_path)
        .env("DBUS_SESSION_BUS_ADDRESS", &bus.address)
        .env_remove("RISKWATCH_TOKEN")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut p = Proc::spawn("riskwatch watch", &mut cmd);
    let out = Lines::from_stdout(p.child.stdout.take().unwrap());
    let err = Lines::new(p.child.stderr.take().unwrap());
    let mut notify = Vec::new();
    for _ in 0..3 {
        let l = out
            .next(Duration::from_secs(20))
            .unwrap_or_else(|| panic!("fewer than 3 events; stderr:\n{}", err.text()));
        let v: serde_json::Value = serde_json::from_str(&l).unwrap();
        notify.push((
            v["type"].as_str().unwrap().to_owned(),
            v["notify"].as_bool().unwrap(),
        ));
    }
    assert_eq!(
        notify,
        [
            ("market_data".to_owned(), false),
            ("department_critical".to_owned(), true),
            ("session_status".to_owned(), true),
        ]
    );
    let mut shown = [server.next("first alert"), server.next("second alert")];
    shown.sort_by_key(|n| n.summary.clone());
    assert_eq!(shown[0].summary, "Department critical: Engineering");
    assert_eq!(shown[1].summary, "EMERGENCY STOP");
    assert_eq!(shown[1].body, "session S42: loss limit at 100%, P&L -5000");
    assert!(shown.iter().all(|n| n.urgency == Some(2)));
    assert_eq!(shown[1].sound_name.as_deref(), Some("alarm-clock-elapsed"));
    // The user clicks an action (the signal is sent again until the
    // watcher, which listens just after showing, answers; 15 s at most).
    let click = |id: u32, action: &str, answer: &str| {
        for _ in 0..50 {
            server.invoke(id, action);
            if let Some(l) = err.next(Duration::from_millis(300))
                && l.contains(answer)
            {
                return l;
            }
        }
        panic!("no answer to {action}; stderr:\n{}", err.text())
    };
    // "Acknowledge" on the emergency.
    let line = click(shown[1].id, "acknowledge", "acknowledged");
    assert!(line.contains("EMERGENCY STOP"), "{line}");
    // A click on the department alert's body: the spec's `default` action,
    // which riskwatch takes as Open.
    let line = click(shown[0].id, "default", "riskwatch: open:");
    assert!(line.contains("Department critical: Engineering"), "{line}");
    drop(p);
    let inbox = riskwatch::inbox::Inbox::open(&inbox_path).unwrap();
    assert_eq!(inbox.count().unwrap(), 3);
    assert_eq!(
        inbox.unacknowledged_critical().unwrap(),
        1,
        "the emergency is acknowledged, the department alert is not"
    );
}

#[test]
fn watch_keeps_running_without_a_notification_server() {
    let bus = Bus::start();
    let ws = WsServer::start(vec![
        msg::department_critical(),
        msg::emergency_stop(),
        msg::market_data(),
    ]);
    let mut cmd = riskwatch();
    cmd.arg("watch")
        .arg(ws.url())
        .arg("--notify")
        .arg("--json")
        .env("DBUS_SESSION_BUS_ADDRESS", &bus.address)
        .env_remove("RISKWATCH_TOKEN")
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut p = Proc::spawn("riskwatch watch", &mut cmd);
    let out = Lines::from_stdout(p.child.stdout.take().unwrap());
    let err = Lines::new(p.child.stderr.take().unwrap());
    for _ in 0..3 {
        out.next(Duration::from_secs(20))
            .unwrap_or_else(|| panic!("events stopped; stderr:\n{}", err.text()));
    }
    err.until("the warning", Duration::from_secs(20), |l| {
        l.contains("notifications are not shown")
    });
    // Both alerts were tried; still running, still one warning.
    std::thread::sleep(Duration::from_secs(1));
    assert!(p.child.try_wait().unwrap().is_none(), "riskwatch stopped");
    drop(p);
    let warnings = err.text().matches("notifications are not shown").count();
    assert_eq!(warnings, 1, "{}", err.text());
}
