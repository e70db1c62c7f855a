//! Shared helpers for the integration tests: a scriptable WebSocket server
//! on 127.0.0.1:0 that can also answer plain HTTP (for the polling
//! fallback), a minimal native-protocol hub ([`native`]), a recorder around
//! the real [`Client`], and a bounded runner for the CLI binary.
//!
//! Everything here is bounded in time: every wait has a timeout, and
//! [`within`] puts a ceiling on a whole test.

#![allow(dead_code)]

pub mod native;

use std::collections::HashMap;
use std::future::Future;
use std::io::Read;
use std::net::SocketAddr;
use std::pin::Pin;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU16, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use riskwatch::client::{BackoffConfig, Client, ClientConfig, ClientUpdate, ConnState, Notice};
use riskwatch::{Event, Severity, Style};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::AbortHandle;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

/// The secret every test uses; it must never show up in states, errors or
/// CLI output.
pub const TOKEN: &str = "tok-S3CRET-7f9a2c";

pub fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// Runs a whole test body with a ceiling, so no test can hang.
pub async fn within<F: Future>(secs: u64, f: F) -> F::Output {
    match tokio::time::timeout(Duration::from_secs(secs), f).await {
        Ok(v) => v,
        Err(_) => panic!("test did not finish within {secs} s"),
    }
}

/// Runs `f` on tokio's paused clock: a timer fires as soon as nothing else
/// can run, so a wait that only lets time pass (heartbeats, a dead-link
/// deadline, "nothing more happens") takes no wall time. Call it once the
/// connections are up and quiet: a paused clock may jump past a timeout
/// while a socket's bytes are still on their way, so nothing `f` waits for
/// may depend on I/O racing a timer. Needs the current-thread runtime
/// (`#[tokio::test]`'s default).
pub async fn on_paused_clock<F: Future>(f: F) -> F::Output {
    tokio::time::pause();
    let out = f.await;
    tokio::time::resume();
    out
}

/// Backoff small enough to keep reconnect tests fast.
pub fn fast_backoff() -> BackoffConfig {
    BackoffConfig::default().initial(ms(50)).max(ms(200))
}

/// A client config with fast backoff and short timeouts.
pub fn config(url: impl Into<String>) -> ClientConfig {
    ClientConfig::new(url)
        .backoff(fast_backoff())
        .connect_timeout(Duration::from_secs(3))
}

/// Polls `cond` every 10 ms until it holds; panics with `what` after `limit`.
pub async fn wait_until(what: &str, limit: Duration, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    loop {
        if cond() {
            return;
        }
        if Instant::now() >= deadline {
            panic!("timed out after {limit:?} waiting until {what}");
        }
        tokio::time::sleep(ms(10)).await;
    }
}

// ---------------------------------------------------------------------------
// The scriptable WebSocket server
// ---------------------------------------------------------------------------

/// One upgrade request as the server saw it.
#[derive(Debug, Clone)]
pub struct Req {
    /// 0-based number of the upgrade attempt (refused ones included).
    pub attempt: usize,
    pub path: String,
    pub query: Option<String>,
    /// Header names lower-cased.
    pub headers: Vec<(String, String)>,
}

impl Req {
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers
            .iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.as_str())
    }
    pub fn query_param(&self, key: &str) -> Option<String> {
        let q = self.query.as_deref()?;
        url::form_urlencoded::parse(q.as_bytes())
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.into_owned())
    }
}

/// What the server received from a client on an accepted connection.
#[derive(Debug, Clone, PartialEq)]
pub enum Got {
    Text(String),
    Binary(usize),
    Ping,
    Pong,
    Close(Option<u16>),
}

/// A plain HTTP request the server answered (polling endpoint).
#[derive(Debug, Clone)]
pub struct HttpHit {
    pub path: String,
    pub authorization: Option<String>,
}

#[derive(Default)]
struct Shared {
    tcp: AtomicUsize,
    attempts: AtomicUsize,
    upgrades: AtomicUsize,
    /// HTTP status to refuse upgrades with; 0 accepts.
    refuse: AtomicU16,
    /// When set, upgrades without [`TOKEN`] in this place (true: the
    /// `token` query parameter; false: `Authorization: Bearer`) get 401,
    /// as a backend that reads only one of them does.
    token_only_in_query: Mutex<Option<bool>>,
    requests: Mutex<Vec<Req>>,
    got: Mutex<Vec<(usize, Got)>>,
    routes: Mutex<HashMap<String, (u16, String)>>,
    http_hits: Mutex<Vec<HttpHit>>,
}

type Handler = Arc<dyn Fn(Conn) -> Pin<Box<dyn Future<Output = ()> + Send>> + Send + Sync>;

/// A WebSocket server on 127.0.0.1:0 whose accepted connections each run
/// the handler given to [`Server::start`]. Plain HTTP requests (no
/// `Upgrade: websocket`) are answered from [`Server::route`].
pub struct Server {
    addr: SocketAddr,
    shared: Arc<Shared>,
    accept: AbortHandle,
}

impl Drop for Server {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

impl Server {
    pub async fn start<F, Fut>(handler: F) -> Server
    where
        F: Fn(Conn) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let handler: Handler = Arc::new(move |c| Box::pin(handler(c)));
        let listener = TcpListener::bind(("127.0.0.1", 0)).await.expect("bind");
        let addr = listener.local_addr().expect("local addr");
        let shared = Arc::new(Shared::default());
        let sh = Arc::clone(&shared);
        let accept = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    tokio::time::sleep(ms(10)).await;
                    continue;
                };
                sh.tcp.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(serve_tcp(stream, Arc::clone(&sh), Arc::clone(&handler)));
            }
        })
        .abort_handle();
        Server {
            addr,
            shared,
            accept,
        }
    }

    /// A server whose connections receive `frames` and then stay open,
    /// reading (and answering pings) for up to a minute.
    pub async fn sending(frames: Vec<String>) -> Server {
        let frames = Arc::new(frames);
        Server::start(move |mut c| {
            let frames = Arc::clone(&frames);
            async move {
                c.send_all(&frames).await;
                c.pump_until_closed(Duration::from_secs(60)).await;
            }
        })
        .await
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
    pub fn url(&self, path: &str) -> String {
        format!("ws://{}{}", self.addr, path)
    }
    pub fn http_url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }
    /// Refuses every upgrade with this HTTP status from now on; 0 accepts.
    /// Accepts an upgrade only with [`TOKEN`] in the query (true) or the
    /// Authorization header (false), as a backend reading one place does.
    pub fn token_only_in(&self, query: bool) {
        *self.shared.token_only_in_query.lock().unwrap() = Some(query);
    }
    pub fn refuse_with(&self, status: u16) {
        self.shared.refuse.store(status, Ordering::SeqCst);
    }
    /// Answers plain HTTP GETs of `path` with `status` and a JSON `body`.
    pub fn route(&self, path: &str, status: u16, body: &str) {
        self.shared
            .routes
            .lock()
            .unwrap()
            .insert(path.to_owned(), (status, body.to_owned()));
    }
    /// TCP connections accepted (upgrades, refused upgrades and HTTP).
    pub fn tcp_connections(&self) -> usize {
        self.shared.tcp.load(Ordering::SeqCst)
    }
    /// Upgrade requests seen, refused ones included.
    pub fn attempts(&self) -> usize {
        self.shared.attempts.load(Ordering::SeqCst)
    }
    /// Upgrades accepted.
    pub fn upgrades(&self) -> usize {
        self.shared.upgrades.load(Ordering::SeqCst)
    }
    pub fn requests(&self) -> Vec<Req> {
        self.shared.requests.lock().unwrap().clone()
    }
    pub fn http_hits(&self) -> Vec<HttpHit> {
        self.shared.http_hits.lock().unwrap().clone()
    }
    /// Everything received, as (accepted connection index, message).
    pub fn received(&self) -> Vec<(usize, Got)> {
        self.shared.got.lock().unwrap().clone()
    }
    /// Text frames received on accepted connection `conn`.
    pub fn texts_on(&self, conn: usize) -> Vec<String> {
        self.received()
            .into_iter()
            .filter_map(|(c, g)| match g {
                Got::Text(t) if c == conn => Some(t),
                _ => None,
            })
            .collect()
    }
    /// Text frames received on any connection, parsed as JSON.
    pub fn json_texts(&self) -> Vec<(usize, serde_json::Value)> {
        self.received()
            .into_iter()
            .filter_map(|(c, g)| match g {
                Got::Text(t) => serde_json::from_str(&t).ok().map(|v| (c, v)),
                _ => None,
            })
            .collect()
    }
    pub fn pings(&self) -> usize {
        self.received()
            .iter()
            .filter(|(_, g)| *g == Got::Ping)
            .count()
    }
}

async fn serve_tcp(stream: TcpStream, shared: Arc<Shared>, handler: Handler) {
    let Ok(Some(head)) = tokio::time::timeout(Duration::from_secs(3), peek_head(&stream)).await
    else {
        return;
    };
    let lower = head.to_ascii_lowercase();
    let is_upgrade = lower
        .lines()
        .any(|l| l.starts_with("upgrade:") && l.contains("websocket"));
    if !is_upgrade {
        serve_http(stream, &head, &shared).await;
        return;
    }
    let attempt = shared.attempts.fetch_add(1, Ordering::SeqCst);
    let sh = Arc::clone(&shared);
    let seen: Arc<Mutex<Option<Req>>> = Arc::default();
    let seen2 = Arc::clone(&seen);
    // The signature is tungstenite's; its error type is an HTTP response.
    #[allow(clippy::result_large_err)]
    let callback = move |req: &Request, resp: Response| {
        let r = Req {
            attempt,
            path: req.uri().path().to_owned(),
            query: req.uri().query().map(str::to_owned),
            headers: req
                .headers()
                .iter()
                .map(|(k, v)| {
                    (
                        k.as_str().to_ascii_lowercase(),
                        v.to_str().unwrap_or("").to_owned(),
                    )
                })
                .collect(),
        };
        sh.requests.lock().unwrap().push(r.clone());
        *seen2.lock().unwrap() = Some(r.clone());
        let mut status = sh.refuse.load(Ordering::SeqCst);
        if let Some(in_query) = *sh.token_only_in_query.lock().unwrap() {
            let found = if in_query {
                r.query_param("token").as_deref() == Some(TOKEN)
            } else {
                r.header("authorization") == Some(&format!("Bearer {TOKEN}"))
            };
            if !found {
                status = 401;
            }
        }
        if status != 0 {
            let mut e = ErrorResponse::new(Some(format!("refused with {status}")));
            *e.status_mut() = http::StatusCode::from_u16(status).expect("valid status");
            return Err(e);
        }
        Ok(resp)
    };
    let ws = match tokio::time::timeout(
        Duration::from_secs(3),
        tokio_tungstenite::accept_hdr_async(stream, callback),
    )
    .await
    {
        Ok(Ok(ws)) => ws,
        _ => return,
    };
    let index = shared.upgrades.fetch_add(1, Ordering::SeqCst);
    let req = seen.lock().unwrap().take().expect("callback ran");
    handler(Conn {
        index,
        req,
        ws,
        shared,
    })
    .await;
}

/// Peeks (without consuming) until the request head is complete.
async fn peek_head(stream: &TcpStream) -> Option<String> {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let n = stream.peek(&mut buf).await.ok()?;
        if n == 0 {
            return None;
        }
        if let Some(end) = buf[..n].windows(4).position(|w| w == b"\r\n\r\n") {
            return Some(String::from_utf8_lossy(&buf[..end + 4]).into_owned());
        }
        if n == buf.len() {
            return None;
        }
        tokio::time::sleep(ms(2)).await;
    }
}

async fn serve_http(mut stream: TcpStream, head: &str, shared: &Shared) {
    // Consume the head we peeked (a GET has no body).
    let mut sink = vec![0u8; head.len()];
    if stream.read_exact(&mut sink).await.is_err() {
        return;
    }
    let target = head.split_whitespace().nth(1).unwrap_or("/");
    let path = target.split('?').next().unwrap_or("/").to_owned();
    let authorization = head
        .lines()
        .find(|l| l.to_ascii_lowercase().starts_with("authorization:"))
        .map(|l| l["authorization:".len()..].trim().to_owned());
    shared.http_hits.lock().unwrap().push(HttpHit {
        path: path.clone(),
        authorization,
    });
    let (status, body) = shared
        .routes
        .lock()
        .unwrap()
        .get(&path)
        .cloned()
        .unwrap_or((404, r#"{"error":"not found"}"#.to_owned()));
    let reason = http::StatusCode::from_u16(status)
        .ok()
        .and_then(|s| s.canonical_reason())
        .unwrap_or("Status");
    let resp = format!(
        "HTTP/1.1 {status} {reason}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = stream.write_all(resp.as_bytes()).await;
    let _ = stream.shutdown().await;
}

/// One accepted WebSocket connection, driven by a test's handler.
pub struct Conn {
    /// 0-based number of this accepted connection.
    pub index: usize,
    pub req: Req,
    ws: WebSocketStream<TcpStream>,
    shared: Arc<Shared>,
}

impl Conn {
    /// Sends a text frame; false when the client is gone.
    pub async fn send(&mut self, text: impl AsRef<str>) -> bool {
        self.ws.send(Message::text(text.as_ref())).await.is_ok()
    }
    pub async fn send_all<S: AsRef<str>>(&mut self, frames: &[S]) -> bool {
        for f in frames {
            if !self.send(f).await {
                return false;
            }
        }
        true
    }
    pub async fn send_msg(&mut self, m: Message) -> bool {
        self.ws.send(m).await.is_ok()
    }
    pub async fn send_binary(&mut self, bytes: Vec<u8>) -> bool {
        self.send_msg(Message::binary(bytes)).await
    }
    /// Drops the TCP connection with a reset: no close frame, no FIN.
    pub fn drop_abruptly(self) {
        let _ = self.ws.get_ref().set_zero_linger();
        drop(self.ws);
    }
    /// Keeps the socket open but reads and writes nothing (so WebSocket
    /// pings go unanswered) for `period`, then drops it abruptly.
    pub async fn go_silent(self, period: Duration) {
        tokio::time::sleep(period).await;
        self.drop_abruptly();
    }
    /// Closes with `code`, waits (bounded) for the client's close reply.
    pub async fn close(mut self, code: u16, reason: &str) {
        let frame = CloseFrame {
            code: CloseCode::from(code),
            reason: reason.into(),
        };
        let _ = self.ws.send(Message::Close(Some(frame))).await;
        let _ = tokio::time::timeout(Duration::from_secs(2), async {
            while let Some(Ok(m)) = self.ws.next().await {
                self.record(&m);
            }
        })
        .await;
    }
    fn record(&self, m: &Message) {
        let g = match m {
            Message::Text(t) => Got::Text(t.as_str().to_owned()),
            Message::Binary(b) => Got::Binary(b.len()),
            Message::Ping(_) => Got::Ping,
            Message::Pong(_) => Got::Pong,
            Message::Close(f) => Got::Close(f.as_ref().map(|f| u16::from(f.code))),
            Message::Frame(_) => return,
        };
        self.shared.got.lock().unwrap().push((self.index, g));
    }
    /// Reads and records for `period`, answering the styles' application
    /// pings (`{"action":"ping"}`, `{"type":"ping"}`) with
    /// `{"type":"pong"}` as the backends do. False when the client is gone.
    pub async fn pump(&mut self, period: Duration) -> bool {
        let until = tokio::time::Instant::now() + period;
        loop {
            let m = match tokio::time::timeout_at(until, self.ws.next()).await {
                Err(_) => return true,
                Ok(None) | Ok(Some(Err(_))) => return false,
                Ok(Some(Ok(m))) => m,
            };
            self.record(&m);
            match &m {
                Message::Close(_) => return false,
                Message::Text(t) => {
                    let v: serde_json::Value = serde_json::from_str(t.as_str()).unwrap_or_default();
                    if v["action"] == "ping" || v["type"] == "ping" {
                        let _ = self.ws.send(Message::text(r#"{"type":"pong"}"#)).await;
                    }
                }
                _ => {}
            }
        }
    }
    /// Text frames this connection received so far.
    pub fn texts(&self) -> Vec<String> {
        self.shared
            .got
            .lock()
            .unwrap()
            .iter()
            .filter_map(|(c, g)| match g {
                Got::Text(t) if *c == self.index => Some(t.clone()),
                _ => None,
            })
            .collect()
    }
    /// Reads until the client goes away or `max` passes.
    pub async fn pump_until_closed(mut self, max: Duration) {
        self.pump(max).await;
    }
}

// ---------------------------------------------------------------------------
// The client side
// ---------------------------------------------------------------------------

/// The real client plus a log of every update it delivered.
pub struct Rec {
    pub client: Client,
    pub log: Vec<ClientUpdate>,
}

impl std::ops::Deref for Rec {
    type Target = Client;
    fn deref(&self) -> &Client {
        &self.client
    }
}

impl Rec {
    pub fn connect(cfg: ClientConfig) -> Rec {
        Rec {
            client: Client::connect(cfg).expect("config is valid"),
            log: Vec::new(),
        }
    }

    /// The next update; panics after `limit` or when the stream ends.
    pub async fn next(&mut self, limit: Duration) -> ClientUpdate {
        match tokio::time::timeout(limit, self.client.next()).await {
            Ok(Some(u)) => {
                self.log.push(u.clone());
                u
            }
            Ok(None) => panic!(
                "the client's update stream ended; log so far: {:#?}",
                self.log
            ),
            Err(_) => panic!(
                "no update within {limit:?}; state {:?}, stats {:?}, log so far: {:#?}",
                self.client.state(),
                self.client.stats(),
                self.log
            ),
        }
    }

    /// The next update, or `None` when nothing comes within `limit` or the
    /// stream ended.
    pub async fn try_next(&mut self, limit: Duration) -> Option<ClientUpdate> {
        match tokio::time::timeout(limit, self.client.next()).await {
            Ok(Some(u)) => {
                self.log.push(u.clone());
                Some(u)
            }
            _ => None,
        }
    }

    /// The next event, skipping (and logging) states and notices.
    pub async fn event(&mut self, limit: Duration) -> Event {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            if let ClientUpdate::Event(e) = self.next(left).await {
                return e;
            }
        }
    }

    pub async fn events(&mut self, n: usize, limit: Duration) -> Vec<Event> {
        let deadline = tokio::time::Instant::now() + limit;
        let mut out = Vec::with_capacity(n);
        while out.len() < n {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            out.push(self.event(left).await);
        }
        out
    }

    /// Events up to and including the first of kind `last`.
    pub async fn events_until(&mut self, last: &str, limit: Duration) -> Vec<Event> {
        let deadline = tokio::time::Instant::now() + limit;
        let mut out = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            let e = self.event(left).await;
            let done = e.kind == last;
            out.push(e);
            if done {
                return out;
            }
        }
    }

    /// Consumes updates until a state matches `pred`; returns it. Events
    /// and notices on the way are kept in the log.
    pub async fn until_state(
        &mut self,
        what: &str,
        limit: Duration,
        pred: impl Fn(&ConnState) -> bool,
    ) -> ConnState {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            if left.is_zero() {
                panic!(
                    "no state matching {what} within {limit:?}; log: {:#?}",
                    self.log
                );
            }
            if let ClientUpdate::State(s) = self.next(left).await
                && pred(&s)
            {
                return s;
            }
        }
    }

    /// Collects updates for `period` (no panic when nothing comes).
    pub async fn drain_for(&mut self, period: Duration) -> Vec<ClientUpdate> {
        let until = tokio::time::Instant::now() + period;
        let mut out = Vec::new();
        while let Ok(Some(u)) = tokio::time::timeout_at(until, self.client.next()).await {
            self.log.push(u.clone());
            out.push(u);
        }
        out
    }

    pub fn states(&self) -> Vec<ConnState> {
        self.log
            .iter()
            .filter_map(|u| match u {
                ClientUpdate::State(s) => Some(s.clone()),
                _ => None,
            })
            .collect()
    }

    pub fn notices(&self) -> Vec<Notice> {
        self.log
            .iter()
            .filter_map(|u| match u {
                ClientUpdate::Notice(n) => Some(n.clone()),
                _ => None,
            })
            .collect()
    }

    pub fn logged_events(&self) -> Vec<Event> {
        self.log
            .iter()
            .filter_map(|u| match u {
                ClientUpdate::Event(e) => Some(e.clone()),
                _ => None,
            })
            .collect()
    }
}

/// What an event is expected to be.
#[derive(Debug, Clone, Copy)]
pub struct Expect<'a> {
    pub kind: &'a str,
    pub severity: Severity,
    pub style: Style,
    pub subject: Option<&'a str>,
}

pub fn expect<'a>(
    kind: &'a str,
    severity: Severity,
    style: Style,
    subject: Option<&'a str>,
) -> Expect<'a> {
    Expect {
        kind,
        severity,
        style,
        subject,
    }
}

/// Asserts that `got` matches `want` one for one, in order.
pub fn assert_events(got: &[Event], want: &[Expect<'_>]) {
    let got_summary: Vec<_> = got
        .iter()
        .map(|e| (e.kind.as_str(), e.severity, e.style, e.subject.as_deref()))
        .collect();
    let want_summary: Vec<_> = want
        .iter()
        .map(|w| (w.kind, w.severity, w.style, w.subject))
        .collect();
    assert_eq!(got_summary, want_summary, "events differ from expectation");
}

// ---------------------------------------------------------------------------
// The CLI binary
// ---------------------------------------------------------------------------

/// What a finished `riskwatch` process left.
#[derive(Debug)]
pub struct CliRun {
    /// The exit code; `None` when killed or ended by a signal.
    pub code: Option<i32>,
    /// Whether the runner had to kill it.
    pub killed: bool,
    pub stdout: String,
    pub stderr: String,
}

/// Starts the real binary with `args` and `envs` (a clean environment for
/// the variables riskwatch reads), output piped.
pub fn spawn_cli(args: &[String], envs: &[(String, String)]) -> std::process::Child {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_riskwatch"));
    cmd.args(args)
        .env_remove("RISKWATCH_TOKEN")
        .env_remove("RISKWATCH_URL")
        .env_remove("RISKWATCH_PROFILE")
        .env_remove("RUST_LOG")
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in envs {
        cmd.env(k, v);
    }
    cmd.spawn().expect("the riskwatch binary starts")
}

/// Waits for `child` up to `limit`. When it is still running then, it is
/// killed, and the result has `killed` set (callers that expected it to
/// exit fail).
pub fn finish_cli(mut child: std::process::Child, limit: Duration) -> CliRun {
    let mut out = child.stdout.take().expect("piped");
    let mut err = child.stderr.take().expect("piped");
    let t_out = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = out.read_to_string(&mut s);
        s
    });
    let t_err = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = err.read_to_string(&mut s);
        s
    });
    let deadline = Instant::now() + limit;
    let (status, killed) = loop {
        if let Some(st) = child.try_wait().expect("try_wait") {
            break (Some(st), false);
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            break (child.wait().ok(), true);
        }
        std::thread::sleep(ms(10));
    };
    CliRun {
        code: if killed {
            None
        } else {
            status.and_then(|s| s.code())
        },
        killed,
        stdout: t_out.join().unwrap_or_default(),
        stderr: t_err.join().unwrap_or_default(),
    }
}

/// Runs the real binary with `args`, killing it (and failing) after `limit`.
/// Blocking: call through [`cli`] from async code.
pub fn run_cli(args: &[String], envs: &[(String, String)], limit: Duration) -> CliRun {
    let run = finish_cli(spawn_cli(args, envs), limit);
    if run.killed {
        panic!(
            "riskwatch {args:?} did not exit within {limit:?}\nstdout:\n{}\nstderr:\n{}",
            run.stdout, run.stderr
        );
    }
    run
}

fn owned(args: &[&str], envs: &[(&str, &str)]) -> (Vec<String>, Vec<(String, String)>) {
    (
        args.iter().map(|s| s.to_string()).collect(),
        envs.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    )
}

/// Runs the binary for `period`, then kills it: for commands that run
/// until interrupted.
pub async fn cli_for(args: &[&str], period: Duration) -> CliRun {
    let (args, envs) = owned(args, &[]);
    tokio::task::spawn_blocking(move || finish_cli(spawn_cli(&args, &envs), period))
        .await
        .expect("the CLI runner thread")
}

/// [`run_cli`] from async code.
pub async fn cli(args: &[&str], envs: &[(&str, &str)]) -> CliRun {
    let (args, envs) = owned(args, envs);
    tokio::task::spawn_blocking(move || run_cli(&args, &envs, Duration::from_secs(30)))
        .await
        .expect("the CLI runner thread")
}
