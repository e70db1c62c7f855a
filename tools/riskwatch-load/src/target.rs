//! The hub under test: a `riskwatch serve` child this tool starts (so the
//! hub's memory is measured apart from the tool's), or a hub already
//! running on a loopback address. Its HTTP API: health, stats, publish.
//! An external hub may also be another kind of hub ([`HubKind`]): the
//! reference broadcast hubs of the side-by-side benchmark (`bench/`).

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{Context, bail};
use nix::sys::prctl::set_pdeathsig;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use serde::Serialize;
use serde_json::Value;

use crate::sys;

/// The hub's native WebSocket path (docs/PROTOCOL.md). The tool speaks
/// to the hub only over the wire, as any client would; a test checks this
/// copy against the library's.
pub const NATIVE_PATH: &str = "/api/v1/stream";

/// What kind of hub is under test, i.e. how a client subscribes and how
/// the tool publishes to it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum HubKind {
    /// riskwatch's hub: the native protocol (`subscribe`, sequenced
    /// `event`s), published to through `POST /api/v1/publish`.
    #[default]
    Riskwatch,
    /// A plain broadcast hub (the `ws` / `websockets` / FastAPI examples):
    /// every text message one client sends goes to every other client.
    /// No subscribe; the tool's publisher is one more WebSocket client.
    Ws,
    /// A Socket.IO v4 server that re-emits every `event` to the others
    /// (`socket.broadcast.emit`): Engine.IO over the WebSocket transport,
    /// the namespace joined with `40`, pings (`2`) answered with `3`.
    Socketio,
}

/// The kind as `--hub-kind` names it.
impl std::fmt::Display for HubKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        use clap::ValueEnum;
        let value = self.to_possible_value().expect("no kind is skipped");
        f.write_str(value.get_name())
    }
}

impl HubKind {
    /// The WebSocket path when --url gives none.
    fn default_path(self) -> &'static str {
        match self {
            HubKind::Riskwatch => NATIVE_PATH,
            HubKind::Ws => "/",
            HubKind::Socketio => SOCKETIO_PATH,
        }
    }
}

/// Engine.IO v4 straight over the WebSocket transport (no polling first).
pub const SOCKETIO_PATH: &str = "/socket.io/?EIO=4&transport=websocket";

/// How to reach (or start) the hub.
#[derive(Debug, Clone)]
pub struct TargetOptions {
    /// What kind of hub it is; any kind but riskwatch needs `url`.
    pub kind: HubKind,
    /// An external hub (`ws://127.0.0.1:PORT`); none starts a child.
    pub url: Option<String>,
    /// The external hub's process, for its memory.
    pub pid: Option<u32>,
    /// Hub processes to start on one port (SO_REUSEPORT, `serve
    /// --reuse-port`) when there is no `url`; 1 starts a plain hub.
    pub hubs: usize,
    /// The `riskwatch` binary to start.
    pub bin: Option<PathBuf>,
    /// Extra arguments for the child's `riskwatch serve`.
    pub hub_args: Vec<String>,
    /// Bearer token for an external hub that wants one.
    pub token: Option<String>,
}

/// The started child, killed if this tool leaves without stopping it.
struct ChildGuard(Child);

impl Drop for ChildGuard {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

/// What the report says about the hub.
#[derive(Debug, Clone, Serialize)]
pub struct TargetInfo {
    pub addr: SocketAddr,
    /// The first hub process (the only one unless `pids` has more).
    pub pid: Option<u32>,
    /// Every hub process whose memory and CPU are measured.
    pub pids: Vec<u32>,
    pub kind: HubKind,
    /// The command line of the started hub(s), or `external`.
    pub command: String,
    /// The (first) hub's soft open-file limit, when its pid is known.
    pub nofile: Option<u64>,
}

pub struct Target {
    pub addr: SocketAddr,
    pub kind: HubKind,
    /// The WebSocket path (and query) clients connect to.
    path: String,
    /// Every hub process (empty for an external hub without --hub-pid).
    pub pids: Vec<u32>,
    command: String,
    children: Vec<ChildGuard>,
    /// How the children were started, to start them again.
    spawned: Option<(PathBuf, Vec<String>)>,
    http: reqwest::Client,
    token: Option<String>,
}

/// Parses an external hub's URL, refusing anything but an IPv4 loopback
/// address: this tool opens tens of thousands of connections and must not
/// be pointed at another machine.
pub fn loopback_addr(url: &str) -> anyhow::Result<SocketAddr> {
    let u = url::Url::parse(url).with_context(|| format!("--url {url}"))?;
    let port = match u.scheme() {
        "ws" | "http" => u.port().unwrap_or(80),
        other => bail!(
            "--url: scheme {other} is not supported (plain ws:// or http:// on loopback only)"
        ),
    };
    let ip = match u.host() {
        Some(url::Host::Ipv4(ip)) => ip,
        Some(url::Host::Domain("localhost")) => Ipv4Addr::LOCALHOST,
        Some(other) => bail!(
            "--url: {other} is not an IPv4 loopback address; riskwatch-load only targets 127.0.0.0/8"
        ),
        None => bail!("--url {url} has no host"),
    };
    if !ip.is_loopback() {
        bail!("--url: {ip} is not a loopback address; riskwatch-load only targets 127.0.0.0/8");
    }
    Ok(SocketAddr::V4(SocketAddrV4::new(ip, port)))
}

/// The path and query clients connect to: --url's own, or the kind's
/// usual one when --url has none.
fn ws_path(url: &str, kind: HubKind) -> anyhow::Result<String> {
    let u = url::Url::parse(url).with_context(|| format!("--url {url}"))?;
    let path = match (u.path(), u.query()) {
        ("/" | "", None) => kind.default_path().to_owned(),
        (p, None) => p.to_owned(),
        (p, Some(q)) => format!("{p}?{q}"),
    };
    Ok(path)
}

fn free_port() -> anyhow::Result<u16> {
    let l = std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).context("finding a free port")?;
    Ok(l.local_addr()?.port())
}

/// The most hub processes one run starts.
pub const MAX_HUBS: usize = 16;

/// Kills the child if this process dies first (any thread of it: the
/// signal follows the spawning thread, a runtime worker that lives as long
/// as the run). Used for hubs and worker processes.
pub fn die_with_parent(cmd: &mut Command) {
    // SAFETY: the closure runs in the forked child before exec, where only
    // async-signal-safe calls are allowed: it makes one prctl system call
    // and allocates nothing.
    unsafe {
        cmd.pre_exec(|| Ok(set_pdeathsig(Signal::SIGKILL)?));
    }
}

fn spawn_hub(bin: &PathBuf, args: &[String]) -> anyhow::Result<ChildGuard> {
    let mut cmd = Command::new(bin);
    cmd.args(args)
        .env(
            "RUST_LOG",
            std::env::var("RISKWATCH_LOAD_HUB_LOG").unwrap_or_else(|_| "warn".into()),
        )
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit());
    die_with_parent(&mut cmd);
    let child = cmd
        .spawn()
        .with_context(|| format!("starting {}", bin.display()))?;
    Ok(ChildGuard(child))
}

/// Waits (at most 15 s) until `n` sockets listen on `port`: with several
/// hubs on one port `/healthz` may be answered by any of them, so it
/// cannot tell that the last one is up.
async fn wait_listeners(port: u16, n: usize, children: &mut [ChildGuard]) -> anyhow::Result<()> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    loop {
        if sys::listeners_on(port) >= n {
            return Ok(());
        }
        for c in children.iter_mut() {
            if let Ok(Some(status)) = c.0.try_wait() {
                bail!("a hub exited during start-up ({status})");
            }
        }
        if tokio::time::Instant::now() >= deadline {
            bail!("{n} hubs were not listening on port {port} within 15 s");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn default_bin() -> anyhow::Result<PathBuf> {
    let me = std::env::current_exe().context("locating this executable")?;
    let bin = me.with_file_name("riskwatch");
    if !bin.exists() {
        bail!(
            "{} not found: build it (cargo build --release -p riskwatch) or pass --hub-bin",
            bin.display()
        );
    }
    Ok(bin)
}

impl Target {
    /// Starts a child hub, or attaches to an external one; waits until it
    /// answers `/healthz`.
    pub async fn open(o: &TargetOptions) -> anyhow::Result<Target> {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .pool_max_idle_per_host(4)
            .build()
            .context("building the HTTP client")?;
        if o.kind != HubKind::Riskwatch && o.url.is_none() {
            bail!(
                "--hub-kind {}: this tool starts riskwatch hubs only; start that hub and pass --url",
                o.kind
            );
        }
        let t = match &o.url {
            Some(url) => Target {
                addr: loopback_addr(url)?,
                kind: o.kind,
                path: ws_path(url, o.kind)?,
                pids: o.pid.into_iter().collect(),
                command: "external".into(),
                children: Vec::new(),
                spawned: None,
                http,
                token: o.token.clone(),
            },
            None => {
                let bin = match &o.bin {
                    Some(b) => b.clone(),
                    None => default_bin()?,
                };
                let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, free_port()?));
                // With --insecure-dev every connection is user `anonymous`:
                // lift the per-user cap (default 20) past any target.
                let mut args: Vec<String> = [
                    "serve",
                    "--insecure-dev",
                    "--listen",
                    &addr.to_string(),
                    "--max-conns-per-user",
                    "10000000",
                    // The load is the point: no connection caps.
                    "--max-conns-per-ip",
                    "0",
                    "--max-conns",
                    "0",
                ]
                .iter()
                .map(|s| s.to_string())
                .collect();
                let hubs = o.hubs.clamp(1, MAX_HUBS);
                if hubs > 1 {
                    args.push("--reuse-port".into());
                }
                args.extend(o.hub_args.iter().cloned());
                let mut children = Vec::with_capacity(hubs);
                for _ in 0..hubs {
                    children.push(spawn_hub(&bin, &args)?);
                    // One at a time: each is listening before the next.
                    wait_listeners(addr.port(), children.len(), &mut children).await?;
                }
                Target {
                    addr,
                    kind: HubKind::Riskwatch,
                    path: NATIVE_PATH.into(),
                    pids: children.iter().map(|c| c.0.id()).collect(),
                    command: format!(
                        "{}{} {}",
                        if hubs > 1 {
                            format!("{hubs} × ")
                        } else {
                            String::new()
                        },
                        bin.display(),
                        args.join(" ")
                    ),
                    children,
                    spawned: Some((bin, args)),
                    http,
                    token: None,
                }
            }
        };
        let mut t = t;
        t.wait_healthy(Duration::from_secs(15)).await?;
        Ok(t)
    }

    pub fn info(&self) -> TargetInfo {
        TargetInfo {
            addr: self.addr,
            pid: self.pids.first().copied(),
            pids: self.pids.clone(),
            kind: self.kind,
            command: self.command.clone(),
            nofile: self.pids.first().copied().and_then(sys::nofile_of),
        }
    }

    /// The URL clients connect to (the native protocol's, for riskwatch).
    pub fn ws_url(&self) -> String {
        format!("ws://{}{}", self.addr, self.path)
    }

    pub fn token(&self) -> Option<&str> {
        self.token.as_deref()
    }

    fn http_url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    fn authed(&self, r: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        match &self.token {
            Some(t) => r.bearer_auth(t),
            None => r,
        }
    }

    /// Until riskwatch answers `/healthz`, or another kind of hub accepts
    /// a TCP connection (it has no health endpoint to ask).
    async fn wait_healthy(&mut self, within: Duration) -> anyhow::Result<()> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            if self.kind != HubKind::Riskwatch {
                if tokio::net::TcpStream::connect(self.addr).await.is_ok() {
                    return Ok(());
                }
            } else if let Ok(r) = self.http.get(self.http_url("/healthz")).send().await
                && r.status().is_success()
            {
                return Ok(());
            }
            for c in self.children.iter_mut() {
                if let Ok(Some(status)) = c.0.try_wait() {
                    bail!("the hub exited during start-up ({status})");
                }
            }
            if tokio::time::Instant::now() >= deadline {
                bail!("the hub at {} did not answer within {within:?}", self.addr);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The hub's resident memory (summed over its processes), when its
    /// pids are known.
    pub fn rss(&self) -> Option<sys::Rss> {
        sys::rss_sum(&self.pids)
    }

    /// `GET /api/v1/ws/stats` (riskwatch only).
    pub async fn stats(&self) -> anyhow::Result<Value> {
        if self.kind != HubKind::Riskwatch {
            bail!("a {} hub has no stats endpoint", self.kind);
        }
        let r = self
            .authed(self.http.get(self.http_url("/api/v1/ws/stats")))
            .send()
            .await
            .context("GET /api/v1/ws/stats")?;
        if !r.status().is_success() {
            bail!("GET /api/v1/ws/stats: {}", r.status());
        }
        Ok(r.json().await?)
    }

    /// `POST /api/v1/publish` with one event (an object) or a batch (an
    /// array); riskwatch only (the others are published to over a
    /// WebSocket: `publisher`).
    pub async fn publish(&self, body: &Value) -> anyhow::Result<()> {
        if self.kind != HubKind::Riskwatch {
            bail!("a {} hub is published to over a WebSocket", self.kind);
        }
        let r = self
            .authed(self.http.post(self.http_url("/api/v1/publish")))
            .json(body)
            .send()
            .await
            .context("POST /api/v1/publish")?;
        let status = r.status();
        if !status.is_success() {
            let text = r.text().await.unwrap_or_default();
            bail!("POST /api/v1/publish: {status}: {}", text.trim());
        }
        Ok(())
    }

    /// Restarts a started hub: SIGKILL (`kill`) or SIGINT (every
    /// connection closed with 1001, history flushed), `down` of nothing
    /// listening, then the same command again; returns once it answers
    /// `/healthz`, with the moment (wall-clock ns) the new process was
    /// started.
    pub async fn restart(&mut self, kill: bool, down: Duration) -> anyhow::Result<u64> {
        let Some((bin, args)) = self.spawned.clone() else {
            bail!("only a hub this tool started can be restarted (not --url)");
        };
        if self.children.len() != 1 {
            bail!("restarting is for one hub process (not --hubs)");
        }
        let mut old = self.children.remove(0);
        if kill {
            let _ = old.0.kill();
        } else if let Ok(pid) = i32::try_from(old.0.id()) {
            let _ = nix::sys::signal::kill(Pid::from_raw(pid), Signal::SIGINT);
        }
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        while !matches!(old.0.try_wait(), Ok(Some(_))) {
            if tokio::time::Instant::now() >= deadline {
                let _ = old.0.kill();
                let _ = old.0.wait();
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        tokio::time::sleep(down).await;
        let started = sys::wall_ns();
        self.children.push(spawn_hub(&bin, &args)?);
        self.pids = vec![self.children[0].0.id()];
        wait_listeners(self.addr.port(), 1, &mut self.children).await?;
        self.wait_healthy(Duration::from_secs(15)).await?;
        Ok(started)
    }

    /// Stops started hubs: SIGINT (each closes its connections with 1001),
    /// then SIGKILL after `grace`. An external hub is left alone.
    pub async fn stop(mut self, grace: Duration) {
        let mut children = std::mem::take(&mut self.children);
        if children.is_empty() {
            return;
        }
        for c in &children {
            // A child we started and still own (not yet waited for, so its
            // pid is not reused).
            if let Ok(pid) = i32::try_from(c.0.id()) {
                let _ = kill(Pid::from_raw(pid), Signal::SIGINT);
            }
        }
        let deadline = tokio::time::Instant::now() + grace;
        while tokio::time::Instant::now() < deadline {
            children.retain_mut(|c| !matches!(c.0.try_wait(), Ok(Some(_))));
            if children.is_empty() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        tracing::warn!(
            "{} hub(s) did not stop within {grace:?}; killing",
            children.len()
        );
        drop(children);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_ipv4_loopback_is_a_target() {
        assert_eq!(
            loopback_addr("ws://127.0.0.1:8765").unwrap(),
            SocketAddr::from(([127, 0, 0, 1], 8765))
        );
        assert_eq!(
            loopback_addr("http://127.3.2.1:80/api/v1/stream").unwrap(),
            SocketAddr::from(([127, 3, 2, 1], 80))
        );
        assert_eq!(
            loopback_addr("ws://localhost:9000").unwrap(),
            SocketAddr::from(([127, 0, 0, 1], 9000))
        );
        for bad in [
            "ws://10.0.0.1:8765",
            "ws://example.com:8765",
            "ws://[::1]:8765",
            "wss://127.0.0.1:8765",
            "ws://0.0.0.0:8765",
        ] {
            assert!(loopback_addr(bad).is_err(), "{bad} must be refused");
        }
    }

    #[test]
    fn kinds_are_named_as_the_option_takes_them() {
        use clap::ValueEnum;
        for k in HubKind::value_variants() {
            assert_eq!(HubKind::from_str(&k.to_string(), false), Ok(*k));
        }
        assert_eq!(HubKind::Socketio.to_string(), "socketio");
    }

    #[test]
    fn each_kind_has_its_path_unless_the_url_gives_one() {
        let path = |u, k| ws_path(u, k).unwrap();
        assert_eq!(path("ws://127.0.0.1:1", HubKind::Riskwatch), NATIVE_PATH);
        assert_eq!(path("ws://127.0.0.1:1/", HubKind::Ws), "/");
        assert_eq!(path("ws://127.0.0.1:1", HubKind::Socketio), SOCKETIO_PATH);
        assert_eq!(path("ws://127.0.0.1:1/ws", HubKind::Ws), "/ws");
        assert_eq!(
            path(
                "ws://127.0.0.1:1/io/?EIO=4&transport=websocket",
                HubKind::Socketio
            ),
            "/io/?EIO=4&transport=websocket"
        );
    }

    #[test]
    fn the_native_path_is_the_hubs() {
        assert_eq!(NATIVE_PATH, riskwatch::protocol::native::PATH);
    }
}
