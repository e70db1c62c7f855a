//! Helpers for the alerting tests: required system programs, a private
//! D-Bus session bus, child processes that are always reaped, a tiny
//! WebSocket server on 127.0.0.1:0, and bounded waits.
//!
//! Programs these tests need (dbus-daemon, gnome-keyring-daemon,
//! secret-tool) are installed by `scripts/setup.sh`; a missing one fails the
//! test instead of skipping it.

#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

/// The riskwatch binary under test.
pub fn riskwatch() -> Command {
    Command::new(env!("CARGO_BIN_EXE_riskwatch"))
}

/// Fails (not skips) when a required program is missing.
pub fn require(program: &str) {
    let found = std::env::var_os("PATH")
        .map(|paths| std::env::split_paths(&paths).any(|d| d.join(program).is_file()))
        .unwrap_or(false);
    assert!(
        found,
        "{program} is required by this test and is not on PATH (scripts/setup.sh installs it)"
    );
}

/// Polls `f` every 20 ms until it returns `Some`, failing after `limit`.
pub fn wait_for<T>(what: &str, limit: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let end = Instant::now() + limit;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(
            Instant::now() < end,
            "timed out after {limit:?} waiting for {what}"
        );
        thread::sleep(Duration::from_millis(20));
    }
}

/// A child process killed and reaped when dropped.
pub struct Proc {
    pub child: Child,
    name: String,
}

impl Proc {
    pub fn spawn(name: &str, cmd: &mut Command) -> Proc {
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {name}: {e}"));
        Proc {
            child,
            name: name.to_owned(),
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Waits for the exit, bounded; kills the process on timeout.
    pub fn wait(&mut self, limit: Duration) -> std::process::ExitStatus {
        let end = Instant::now() + limit;
        loop {
            if let Some(s) = self.child.try_wait().expect("try_wait") {
                return s;
            }
            if Instant::now() >= end {
                let _ = self.child.kill();
                let _ = self.child.wait();
                panic!("{} did not exit within {limit:?}", self.name);
            }
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGKILL (`kill -9`) and reap.
    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Lines of a child's output, read on a thread, received with a timeout.
pub struct Lines {
    rx: mpsc::Receiver<String>,
    pub all: Arc<Mutex<Vec<String>>>,
}

impl Lines {
    pub fn new(r: impl Read + Send + 'static) -> Lines {
        let (tx, rx) = mpsc::channel();
        let all = Arc::new(Mutex::new(Vec::new()));
        let keep = Arc::clone(&all);
        thread::spawn(move || {
            for line in BufReader::new(r).lines() {
                let Ok(line) = line else { break };
                keep.lock().unwrap().push(line.clone());
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Lines { rx, all }
    }

    pub fn from_stdout(s: ChildStdout) -> Lines {
        Lines::new(s)
    }

    /// The next line, or `None` after `limit` (or at the end).
    pub fn next(&self, limit: Duration) -> Option<String> {
        self.rx.recv_timeout(limit).ok()
    }

    /// Waits for a line matching `pred`, bounded.
    pub fn until(&self, what: &str, limit: Duration, pred: impl Fn(&str) -> bool) -> String {
        let end = Instant::now() + limit;
        loop {
            let left = end.saturating_duration_since(Instant::now());
            match self.rx.recv_timeout(left) {
                Ok(l) if pred(&l) => return l,
                Ok(_) => {}
                Err(_) => panic!(
                    "timed out waiting for {what}; output so far:\n{}",
                    self.all.lock().unwrap().join("\n")
                ),
            }
        }
    }

    pub fn text(&self) -> String {
        self.all.lock().unwrap().join("\n")
    }
}

/// A private session bus (`dbus-daemon` with its own config: no service
/// activation, so nothing answers unless a test starts it).
pub struct Bus {
    pub address: String,
    pub dir: tempfile::TempDir,
    _daemon: Proc,
}

impl Bus {
    pub fn start() -> Bus {
        require("dbus-daemon");
        let dir = tempfile::tempdir().expect("tempdir");
        let sock = dir.path().join("sock");
        std::fs::create_dir(&sock).unwrap();
        let conf = dir.path().join("bus.conf");
        std::fs::write(
            &conf,
            format!(
                r#"<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-BUS Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>session</type>
  <listen>unix:dir={}</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow send_destination="*" eavesdrop="true"/>
    <allow eavesdrop="true"/>
    <allow own="*"/>
  </policy>
</busconfig>
"#,
                sock.display()
            ),
        )
        .unwrap();
        let mut daemon = Proc::spawn(
            "dbus-daemon",
            Command::new("dbus-daemon")
                .arg(format!("--config-file={}", conf.display()))
                .arg("--nofork")
                .arg("--print-address=1")
                .stdout(Stdio::piped())
                .stderr(Stdio::null()),
        );
        let lines = Lines::new(daemon.child.stdout.take().unwrap());
        let address = lines
            .next(Duration::from_secs(10))
            .expect("dbus-daemon printed no address within 10 s");
        assert!(address.starts_with("unix:"), "odd bus address {address}");
        Bus {
            address,
            dir,
            _daemon: daemon,
        }
    }

    /// A client connection to this bus.
    pub fn connect(&self) -> zbus::blocking::Connection {
        zbus::blocking::connection::Builder::address(self.address.as_str())
            .expect("address")
            .build()
            .expect("connect to the test bus")
    }

    /// Waits until someone owns `name` on the bus.
    pub fn wait_for_name(&self, name: &str, limit: Duration) {
        let conn = self.connect();
        let proxy = zbus::blocking::fdo::DBusProxy::new(&conn).expect("DBus proxy");
        let bus_name = zbus::names::BusName::try_from(name.to_owned()).expect("name");
        wait_for(&format!("{name} on the bus"), limit, || {
            proxy.name_has_owner(bus_name.clone()).ok().filter(|b| *b)
        });
    }
}

/// Every file under `dir` whose bytes contain `needle`.
pub fn files_containing(dir: &Path, needle: &str) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if std::fs::read(&p)
                .map(|b| b.windows(needle.len()).any(|w| w == needle.as_bytes()))
                .unwrap_or(false)
            {
                out.push(p);
            }
        }
    }
    out
}

/// What the test WebSocket server saw of a connection.
#[derive(Debug, Clone, Default)]
pub struct Seen {
    pub uri: String,
    pub authorization: Option<String>,
}

/// A WebSocket server on 127.0.0.1:0, on its own thread: each connection
/// gets `messages`, then the server waits for the client to go away.
pub struct WsServer {
    pub port: u16,
    pub seen: Arc<Mutex<Vec<Seen>>>,
}

impl WsServer {
    pub fn start(messages: Vec<String>) -> WsServer {
        let std_listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        std_listener.set_nonblocking(true).unwrap();
        let port = std_listener.local_addr().unwrap().port();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let seen2 = Arc::clone(&seen);
        thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(std_listener).unwrap();
                // Bounded: the server thread ends on its own after a minute.
                let _ = tokio::time::timeout(Duration::from_secs(60), async {
                    loop {
                        let Ok((tcp, _)) = listener.accept().await else {
                            return;
                        };
                        let msgs = messages.clone();
                        let seen = Arc::clone(&seen2);
                        tokio::spawn(serve_one(tcp, msgs, seen));
                    }
                })
                .await;
            });
        });
        WsServer { port, seen }
    }

    pub fn url(&self) -> String {
        format!("ws://127.0.0.1:{}/ws", self.port)
    }
}

async fn serve_one(tcp: tokio::net::TcpStream, messages: Vec<String>, seen: Arc<Mutex<Vec<Seen>>>) {
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message;
    use tokio_tungstenite::tungstenite::handshake::server::{Request, Response};
    let record = Arc::clone(&seen);
    // The callback's signature is tungstenite's.
    #[allow(clippy::result_large_err)]
    let cb = move |req: &Request, resp: Response| {
        record.lock().unwrap().push(Seen {
            uri: req.uri().to_string(),
            authorization: req
                .headers()
                .get("authorization")
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned),
        });
        Ok(resp)
    };
    let Ok(mut ws) = tokio_tungstenite::accept_hdr_async(tcp, cb).await else {
        return;
    };
    for m in messages {
        if ws.send(Message::text(m)).await.is_err() {
            return;
        }
    }
    while let Some(Ok(m)) = ws.next().await {
        if m.is_close() {
            break;
        }
    }
}

/// Messages of the HR and trading styles used across tests.
pub mod msg {
    pub fn emergency_stop() -> String {
        r#"{"type":"session_status","sessionId":"S42","status":"emergency_stopped","lossLimitUtilization":100,"currentPnL":-5000}"#.into()
    }
    pub fn department_critical() -> String {
        r#"{"type":"department_critical","timestamp":"2025-12-10T09:53:23+08:00","data":{"department_id":"dept-123","department_name":"Engineering","overall_risk":"critical","engagement_score":45.5}}"#.into()
    }
    pub fn market_data() -> String {
        r#"{"type":"market_data","symbol":"SPY","price":501.25}"#.into()
    }
}
