//! Shared helpers: start a hub, a cuttable TCP proxy, bounded waits.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use riskwatch::client::{BackoffConfig, Client, ClientConfig, ClientUpdate, Notice};
use riskwatch::server::{Auth, Server, ServerConfig};
use riskwatch::{ConnState, Event};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::Notify;

pub const SECRET: &[u8] = b"test-secret-test-secret-test-secret!";

/// Binds 127.0.0.1:port with SO_REUSEADDR (0 = any free port).
pub fn bind(port: u16) -> TcpListener {
    let s = TcpSocket::new_v4().unwrap();
    s.set_reuseaddr(true).unwrap();
    s.bind(SocketAddr::from(([127, 0, 0, 1], port))).unwrap();
    s.listen(1024).unwrap()
}

pub async fn hub(cfg: ServerConfig) -> Server {
    Server::start(bind(0), cfg).unwrap()
}

pub async fn dev_hub() -> Server {
    hub(ServerConfig::new(Auth::Insecure)).await
}

pub fn url(addr: SocketAddr, path: &str) -> String {
    format!("ws://{addr}{path}")
}

/// A client config tuned for tests: quick reconnects.
pub fn fast(url: String) -> ClientConfig {
    ClientConfig::new(url)
        .backoff(
            BackoffConfig::default()
                .initial(Duration::from_millis(20))
                .max(Duration::from_millis(150)),
        )
        .heartbeat(Duration::from_secs(5))
}

/// Waits for the next event, skipping states and notices.
pub async fn next_event(c: &mut Client, within: Duration) -> Option<Event> {
    tokio::time::timeout(within, async {
        loop {
            match c.next().await {
                Some(ClientUpdate::Event(e)) => return Some(e),
                Some(_) => continue,
                None => return None,
            }
        }
    })
    .await
    .ok()
    .flatten()
}

/// Waits until the client reports `Stopped` and returns its state.
pub async fn stopped(c: &mut Client, within: Duration) -> ConnState {
    tokio::time::timeout(within, async {
        loop {
            match c.next().await {
                Some(ClientUpdate::State(s @ ConnState::Stopped { .. })) => return s,
                Some(_) => continue,
                None => return c.state(),
            }
        }
    })
    .await
    .expect("the client should stop")
}

/// Waits for a notice.
pub async fn next_notice(c: &mut Client, within: Duration) -> Option<Notice> {
    tokio::time::timeout(within, async {
        loop {
            match c.next().await {
                Some(ClientUpdate::Notice(n)) => return Some(n),
                Some(_) => continue,
                None => return None,
            }
        }
    })
    .await
    .ok()
    .flatten()
}

/// Polls `cond` every 10 ms for at most `within`.
/// Waits until the hub's connections hold `n` subscriptions in all: a
/// connection is counted when it opens, before its channels are
/// subscribed, so a test that publishes "live" events waits for this.
pub async fn subscriptions(hub: &riskwatch::server::Hub, n: usize) {
    assert!(
        until(Duration::from_secs(5), || hub
            .stats()
            .connections_by_channel
            .values()
            .sum::<usize>()
            >= n)
        .await,
        "{n} subscriptions within 5 s: {:?}",
        hub.stats().connections_by_channel
    );
}

pub async fn until(within: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = tokio::time::Instant::now() + within;
    while tokio::time::Instant::now() < deadline {
        if cond() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    cond()
}

/// A TCP proxy in front of the hub whose connections can be cut abruptly
/// (no close frame) and which can refuse new ones for a while.
pub struct Proxy {
    pub addr: SocketAddr,
    cut: Arc<Notify>,
    open: Arc<AtomicBool>,
    upstream: Arc<std::sync::Mutex<SocketAddr>>,
    task: tokio::task::JoinHandle<()>,
}

impl Proxy {
    pub async fn start(upstream: SocketAddr) -> Proxy {
        let listener = bind(0);
        let addr = listener.local_addr().unwrap();
        let cut = Arc::new(Notify::new());
        let open = Arc::new(AtomicBool::new(true));
        let (c2, o2) = (Arc::clone(&cut), Arc::clone(&open));
        let upstream = Arc::new(std::sync::Mutex::new(upstream));
        let u2 = Arc::clone(&upstream);
        let task = tokio::spawn(async move {
            loop {
                let Ok((down, _)) = listener.accept().await else {
                    return;
                };
                if !o2.load(Ordering::SeqCst) {
                    drop(down);
                    continue;
                }
                let cut = Arc::clone(&c2);
                let upstream = *u2.lock().unwrap();
                tokio::spawn(async move {
                    let Ok(up) = TcpStream::connect(upstream).await else {
                        return;
                    };
                    let (mut dr, mut dw) = down.into_split();
                    let (mut ur, mut uw) = up.into_split();
                    tokio::select! {
                        _ = tokio::io::copy(&mut dr, &mut uw) => {}
                        _ = tokio::io::copy(&mut ur, &mut dw) => {}
                        _ = cut.notified() => {}
                    }
                });
            }
        });
        Proxy {
            addr,
            cut,
            open,
            upstream,
            task,
        }
    }

    /// Sends new connections to another hub.
    pub fn point_to(&self, upstream: SocketAddr) {
        *self.upstream.lock().unwrap() = upstream;
    }

    /// Drops every open connection without a close frame.
    pub fn cut(&self) {
        self.cut.notify_waiters();
    }

    pub fn set_open(&self, open: bool) {
        self.open.store(open, Ordering::SeqCst);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// An HTTP client (rustls needs its crypto provider chosen once).
pub fn http_client() -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::new()
}

/// A redis-server of our own on a free loopback port, stopped on drop;
/// what it acknowledges is in its append-only file (fsync always), so a
/// restart keeps it.
pub struct Redis {
    pub url: String,
    port: u16,
    dir: tempfile::TempDir,
    child: std::process::Child,
}

impl Redis {
    pub async fn start() -> Redis {
        let port = bind(0).local_addr().unwrap().port();
        let dir = tempfile::tempdir().unwrap();
        let child = Self::spawn(port, dir.path());
        let url = format!("redis://127.0.0.1:{port}/");
        let redis = Redis {
            url,
            port,
            dir,
            child,
        };
        redis.ready().await;
        redis
    }

    fn spawn(port: u16, dir: &std::path::Path) -> std::process::Child {
        std::process::Command::new("redis-server")
            .args([
                "--port",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
            ])
            .args(["--appendonly", "yes", "--appendfsync", "always", "--dir"])
            .arg(dir)
            .stdout(std::process::Stdio::null())
            .spawn()
            .expect("redis-server must be installed (scripts/setup.sh installs it)")
    }

    async fn ready(&self) {
        let client = redis::Client::open(self.url.as_str()).unwrap();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            if let Ok(mut c) = client.get_multiplexed_async_connection().await
                && redis::cmd("PING")
                    .query_async::<String>(&mut c)
                    .await
                    .is_ok()
            {
                break;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "redis-server did not start"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// `kill -9`, then the same server again on the same port and files,
    /// after `down`.
    pub async fn restart(&mut self, down: Duration) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        tokio::time::sleep(down).await;
        self.child = Self::spawn(self.port, self.dir.path());
        self.ready().await;
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `riskwatch serve --listen 127.0.0.1:PORT ARGS…` as a child process
/// (output discarded); kill it when done.
pub fn spawn_hub(port: u16, args: &[&str]) -> std::process::Child {
    std::process::Command::new(env!("CARGO_BIN_EXE_riskwatch"))
        .arg("serve")
        .arg("--listen")
        .arg(format!("127.0.0.1:{port}"))
        .args(args)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("the riskwatch binary runs")
}

/// Sends `signal` (e.g. "STOP", "TERM") to a process.
pub fn kill(signal: &str, pid: u32) {
    let sent = std::process::Command::new("kill")
        .args([format!("-{signal}"), pid.to_string()])
        .status()
        .expect("kill runs");
    assert!(sent.success(), "kill -{signal} {pid}");
}

/// What a `riskwatch` command printed and how it ended.
pub struct Run {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

/// `riskwatch ARGS` with `token` in RISKWATCH_TOKEN (if any) and `stdin`
/// on its standard input; killed after 30 s.
pub async fn riskwatch_cli(args: &[&str], token: Option<&str>, stdin: Option<&str>) -> Run {
    let envs: Vec<(&str, &str)> = token.map(|t| ("RISKWATCH_TOKEN", t)).into_iter().collect();
    riskwatch_cli_env(args, &envs, stdin).await
}

/// `riskwatch ARGS` with `envs` set (after the variables riskwatch reads
/// are cleared) and `stdin` on its standard input; killed after 30 s.
pub async fn riskwatch_cli_env(args: &[&str], envs: &[(&str, &str)], stdin: Option<&str>) -> Run {
    use std::io::Write;
    use std::process::{Command, Stdio};
    use std::time::Instant;

    let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    let envs: Vec<(String, String)> = envs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let stdin = stdin.map(str::to_owned);
    tokio::task::spawn_blocking(move || {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_riskwatch"));
        cmd.args(&args)
            .env_remove("RISKWATCH_TOKEN")
            .env_remove("RISKWATCH_URL")
            .env_remove("RISKWATCH_PROFILE")
            .env("NO_COLOR", "1")
            .stdin(if stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        cmd.envs(envs);
        let mut child = cmd.spawn().expect("the riskwatch binary runs");
        if let Some(text) = stdin {
            let mut pipe = child.stdin.take().unwrap();
            pipe.write_all(text.as_bytes()).unwrap();
        }
        let deadline = Instant::now() + Duration::from_secs(30);
        while child.try_wait().unwrap().is_none() {
            if Instant::now() > deadline {
                let _ = child.kill();
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let out = child.wait_with_output().unwrap();
        Run {
            code: out.status.code(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    })
    .await
    .unwrap()
}

/// An HS256 token signed with [`SECRET`] for `user`, reading `channels`,
/// publishing if `publish`, valid for an hour.
pub fn token(user: &str, channels: &[&str], publish: bool) -> String {
    riskwatch::server::auth::mint_hs256(
        SECRET,
        &riskwatch::server::Claims {
            sub: user.into(),
            role: None,
            channels: channels.iter().map(|s| s.to_string()).collect(),
            publish,
            msp: None,
            client: None,
            exp: (chrono::Utc::now().timestamp() + 3600) as u64,
            iat: None,
        },
    )
    .unwrap()
}
