//! The reconnecting WebSocket client: one task per server connection that
//! turns frames into [`Event`]s and keeps the connection alive.
//!
//! It owns: `ws://` / `wss://` connect with the token where the backend
//! expects it; reconnect forever with capped, fully jittered exponential
//! backoff, except when authentication is refused; heartbeat (WebSocket pings
//! every 5 s plus the style's application ping at its own interval) with a
//! dead-connection deadline of 15 s; subscriptions re-sent after every reconnect and, on the native
//! protocol, resume from the last sequence with duplicates dropped; HTTP
//! polling while the upgrade keeps failing; bounded message size and queues;
//! counters for everything it had to skip.
//!
//! The consumer reads [`ClientUpdate`]s from [`Client::next`] and the
//! current [`ConnState`] from [`Client::state`] or [`Client::watch_state`].

mod backoff;
mod connection;
mod poll;
pub mod resume;
pub mod tls;

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use serde::Serialize;
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

pub use backoff::BackoffConfig;

pub use crate::protocol::native::Replay;
use crate::protocol::{Event, Style};

/// A bearer token. Its `Debug` and `Display` never show the secret.
#[derive(Clone, PartialEq, Eq)]
pub struct Token(String);

impl Token {
    /// Wraps a token; surrounding whitespace (a pasted newline) is removed.
    pub fn new(secret: impl Into<String>) -> Token {
        let s: String = secret.into();
        Token(s.trim().to_owned())
    }
    /// The secret itself, for the one place that sends it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Token(***)")
    }
}

/// Where the token goes on the upgrade request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AuthMode {
    /// Where the style puts it first (`?token=` for the compliance style,
    /// `Authorization: Bearer` for every other); when the server refuses
    /// it there, once, in the other place, which is kept from then on.
    #[default]
    Auto,
    Header,
    Query,
    Both,
}

/// HTTP polling fallback.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum PollMode {
    /// Poll the style's snapshot endpoint when it has one (the dashboard
    /// style: `/api/v1/dashboard` beside `/api/v1/ws/dashboard`).
    #[default]
    Auto,
    Off,
    /// Poll this `http(s)://` URL.
    Url(String),
}

/// Everything a client needs. Defaults are in each field's doc.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ClientConfig {
    /// `ws://` or `wss://` URL.
    pub url: String,
    /// Sent as the style expects, see [`AuthMode`]. Default none.
    pub token: Option<Token>,
    /// Default [`AuthMode::Auto`].
    pub auth: AuthMode,
    /// The backend style for what the client sends. Default: guessed from
    /// the URL path, else learnt from a native `welcome`, else generic.
    pub style: Option<Style>,
    /// How events name their source. Default: the URL without credentials.
    pub label: Option<String>,
    /// Channels to subscribe to (trading channels, compliance `client:ID`,
    /// native channels). Default none.
    pub subscriptions: Vec<String>,
    /// History a native subscription asks for while it has no position of
    /// its own (its first subscribe; reconnects resume from where it got).
    /// Only the native protocol can replay: another style refuses it.
    /// Default none: live from now.
    pub replay: Option<Replay>,
    /// Default: 1 s, ×2, 30 s cap, reset after a stable minute.
    pub backoff: BackoffConfig,
    /// The style's application ping interval (the seeds' own heartbeat).
    /// Default 30 s.
    pub heartbeat: Duration,
    /// WebSocket ping interval (never above `heartbeat`). Default 5 s.
    pub ping_interval: Duration,
    /// No traffic for this long (or for two heartbeats, if shorter) means
    /// the connection is dead and is replaced. Default 12 s: two missed
    /// pings and two seconds more, so that a link gone silent is noticed
    /// within the 15 s the product promises even on a busy machine (the
    /// fault suite's stall measured 14.8–15.0 s with 15).
    pub dead_after: Duration,
    /// Limit for the TCP + TLS + upgrade handshake. Default 10 s.
    pub connect_timeout: Duration,
    /// Largest message decoded; larger ones are counted and skipped.
    /// Default 1 MiB.
    pub max_message_size: usize,
    /// Updates buffered for a slow consumer before the socket is no longer
    /// read (TCP backpressure). Default 1024.
    pub queue: usize,
    /// Default [`PollMode::Auto`].
    pub poll: PollMode,
    /// Default 30 s, as the dashboard seed polls.
    pub poll_interval: Duration,
    /// Consecutive failed upgrades before polling starts. Default 3.
    pub poll_after_failures: u32,
    /// Extra CA certificates (PEM) trusted besides the system's. Default none.
    pub extra_ca: Option<PathBuf>,
}

impl ClientConfig {
    pub fn new(url: impl Into<String>) -> ClientConfig {
        ClientConfig {
            url: url.into(),
            token: None,
            auth: AuthMode::Auto,
            style: None,
            label: None,
            subscriptions: Vec::new(),
            replay: None,
            backoff: BackoffConfig::default(),
            heartbeat: Duration::from_secs(30),
            ping_interval: Duration::from_secs(5),
            dead_after: Duration::from_secs(12),
            connect_timeout: Duration::from_secs(10),
            max_message_size: 1 << 20,
            queue: 1024,
            poll: PollMode::Auto,
            poll_interval: Duration::from_secs(30),
            poll_after_failures: 3,
            extra_ca: None,
        }
    }
    pub fn token(mut self, t: Option<Token>) -> Self {
        self.token = t;
        self
    }
    pub fn auth(mut self, a: AuthMode) -> Self {
        self.auth = a;
        self
    }
    pub fn style(mut self, s: Option<Style>) -> Self {
        self.style = s;
        self
    }
    pub fn label(mut self, l: impl Into<String>) -> Self {
        self.label = Some(l.into());
        self
    }
    pub fn subscribe(mut self, channel: impl Into<String>) -> Self {
        self.subscriptions.push(channel.into());
        self
    }
    pub fn replay(mut self, r: Option<Replay>) -> Self {
        self.replay = r;
        self
    }
    pub fn backoff(mut self, b: BackoffConfig) -> Self {
        self.backoff = b;
        self
    }
    pub fn heartbeat(mut self, d: Duration) -> Self {
        self.heartbeat = d;
        self
    }
    pub fn ping_interval(mut self, d: Duration) -> Self {
        self.ping_interval = d;
        self
    }
    pub fn dead_after(mut self, d: Duration) -> Self {
        self.dead_after = d;
        self
    }
    /// How long a silent connection lives: `dead_after`, or two
    /// heartbeats if that is shorter.
    pub fn dead_after_effective(&self) -> Duration {
        self.dead_after.min(self.heartbeat * 2)
    }
    pub fn connect_timeout(mut self, d: Duration) -> Self {
        self.connect_timeout = d;
        self
    }
    pub fn max_message_size(mut self, n: usize) -> Self {
        self.max_message_size = n;
        self
    }
    pub fn queue(mut self, n: usize) -> Self {
        self.queue = n;
        self
    }
    pub fn poll(mut self, p: PollMode) -> Self {
        self.poll = p;
        self
    }
    pub fn poll_interval(mut self, d: Duration) -> Self {
        self.poll_interval = d;
        self
    }
    pub fn poll_after_failures(mut self, n: u32) -> Self {
        self.poll_after_failures = n;
        self
    }
    pub fn extra_ca(mut self, p: Option<PathBuf>) -> Self {
        self.extra_ca = p;
        self
    }
}

/// A configuration the client cannot start with.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClientError {
    /// The URL does not parse or is not `ws://` / `wss://`. A misuse.
    #[error("bad URL {url}: {reason}")]
    BadUrl { url: String, reason: String },
    /// The extra CA file could not be read. A misuse.
    #[error("cannot use CA file {path}: {reason}")]
    CaFile { path: String, reason: String },
    /// TLS could not be set up at all.
    #[error("TLS setup failed: {0}")]
    Tls(String),
    /// A setting is out of range (zero heartbeat, zero queue, …).
    #[error("invalid setting: {0}")]
    Invalid(String),
}

/// Why a client stopped for good.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", content = "detail", rename_all = "snake_case")]
pub enum StopReason {
    /// The server refused the credentials (HTTP 401/403 at the upgrade,
    /// close 1008 or a 40xx close code). Retrying would not help.
    AuthRefused(String),
    /// The server's certificate is not trusted.
    Tls(String),
    /// [`Client::shutdown`] was called.
    Shutdown,
    /// The consumer dropped its receiver.
    ReceiverGone,
}

impl fmt::Display for StopReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StopReason::AuthRefused(d) => write!(f, "authentication refused: {d}"),
            StopReason::Tls(d) => write!(f, "TLS failure: {d}"),
            StopReason::Shutdown => f.write_str("stopped"),
            StopReason::ReceiverGone => f.write_str("nobody is listening"),
        }
    }
}

/// The connection's state, as shown to a user.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum ConnState {
    /// Opening the connection.
    Connecting,
    /// Upgraded and receiving.
    Connected,
    /// Waiting `retry_in_ms` before attempt `attempt` (1-based).
    Reconnecting {
        attempt: u32,
        retry_in_ms: u64,
        error: String,
    },
    /// The upgrade keeps failing; data comes from HTTP polling while the
    /// client keeps trying the WebSocket.
    Polling { error: String },
    /// Stopped for good.
    Stopped { reason: StopReason },
}

impl fmt::Display for ConnState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConnState::Connecting => f.write_str("connecting"),
            ConnState::Connected => f.write_str("connected"),
            ConnState::Reconnecting {
                attempt,
                retry_in_ms,
                error,
            } => write!(
                f,
                "reconnecting (attempt {attempt} in {:.1} s): {error}",
                *retry_in_ms as f64 / 1000.0
            ),
            ConnState::Polling { error } => write!(f, "polling over HTTP: {error}"),
            ConnState::Stopped { reason } => write!(f, "stopped: {reason}"),
        }
    }
}

/// Things worth telling the consumer that are not events.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "notice", rename_all = "snake_case")]
pub enum Notice {
    /// Messages on `channel` after `requested` are no longer all
    /// available: everything from `oldest` follows, and with
    /// `criticals_kept` every critical and emergency message in between
    /// too (only ordinary ones are gone). Refetch a snapshot for the rest.
    Gap {
        channel: String,
        requested: u64,
        oldest: u64,
        criticals_kept: bool,
    },
    /// The server reported an error without closing.
    ServerError { code: String, message: String },
}

/// The event type of [`gap_event`].
pub const GAP_KIND: &str = "history_gap";

/// A history gap as an event for the inbox and notifications: what was lost,
/// on which channel, between `last_seen` (the last event received there
/// before the connection dropped, if any) and `now`, in local time
/// ("Events on sessions:demo between 14:02 and 14:09 could not be
/// recovered"). Critical when critical alerts may be among what was lost,
/// a warning when only ordinary events are. `None` for other notices.
pub fn gap_event(
    notice: &Notice,
    source: &Arc<str>,
    last_seen: Option<chrono::DateTime<chrono::Utc>>,
    now: chrono::DateTime<chrono::Utc>,
) -> Option<Event> {
    let Notice::Gap {
        channel,
        requested,
        oldest,
        criticals_kept,
    } = notice
    else {
        return None;
    };
    // Minutes, or seconds when the outage was shorter than that.
    let short = last_seen.is_some_and(|from| now - from < chrono::Duration::minutes(1));
    let fmt = if short { "%H:%M:%S" } else { "%H:%M" };
    let local = |t: chrono::DateTime<chrono::Utc>| t.with_timezone(&chrono::Local).format(fmt);
    let when = match last_seen {
        Some(from) => format!("between {} and {}", local(from), local(now)),
        None => format!("before {}", local(now)),
    };
    let (severity, message) = if *criticals_kept {
        (
            crate::Severity::Warning,
            format!(
                "Ordinary events on {channel} {when} could not be recovered; every critical alert was delivered"
            ),
        )
    } else {
        (
            crate::Severity::Critical,
            format!(
                "Events on {channel} {when} could not be recovered, critical alerts possibly among them"
            ),
        )
    };
    let text = serde_json::json!({
        "type": GAP_KIND,
        "severity": severity,
        "channel": channel,
        "timestamp": now,
        "data": {
            "message": message,
            "channel": channel,
            "requested": requested,
            "oldest": oldest,
            "criticals_kept": criticals_kept,
            "from": last_seen,
            "to": now,
        },
    })
    .to_string();
    match crate::protocol::decode(&text, source, now) {
        Ok(crate::protocol::Frame::Event(e)) => Some(e),
        _ => None,
    }
}

/// What the client delivers, in order.
#[derive(Debug, Clone, PartialEq)]
pub enum ClientUpdate {
    Event(Event),
    State(ConnState),
    Notice(Notice),
}

/// Counters, for logs, the CLI's summary and the UI.
#[derive(Debug, Default)]
pub struct Stats {
    pub messages: AtomicU64,
    pub events: AtomicU64,
    pub controls: AtomicU64,
    pub malformed: AtomicU64,
    pub oversized: AtomicU64,
    pub binary: AtomicU64,
    pub duplicates: AtomicU64,
    pub gaps: AtomicU64,
    pub connects: AtomicU64,
    pub dead: AtomicU64,
    pub polls: AtomicU64,
}

/// A copy of [`Stats`] at one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct StatsSnapshot {
    pub messages: u64,
    pub events: u64,
    pub controls: u64,
    pub malformed: u64,
    pub oversized: u64,
    pub binary: u64,
    pub duplicates: u64,
    pub gaps: u64,
    pub connects: u64,
    pub dead: u64,
    pub polls: u64,
}

impl Stats {
    pub(crate) fn bump(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }
    pub fn snapshot(&self) -> StatsSnapshot {
        let g = |c: &AtomicU64| c.load(Ordering::Relaxed);
        StatsSnapshot {
            messages: g(&self.messages),
            events: g(&self.events),
            controls: g(&self.controls),
            malformed: g(&self.malformed),
            oversized: g(&self.oversized),
            binary: g(&self.binary),
            duplicates: g(&self.duplicates),
            gaps: g(&self.gaps),
            connects: g(&self.connects),
            dead: g(&self.dead),
            polls: g(&self.polls),
        }
    }
}

/// Commands to a running client.
#[derive(Debug, Clone)]
pub(crate) enum Command {
    Subscribe(String),
    Unsubscribe(String),
    Refresh,
}

/// A handle that controls a running client; cheap to clone.
#[derive(Debug, Clone)]
pub struct ClientHandle {
    state: watch::Receiver<ConnState>,
    stats: Arc<Stats>,
    cancel: CancellationToken,
    commands: mpsc::UnboundedSender<Command>,
    label: Arc<str>,
}

impl ClientHandle {
    pub fn state(&self) -> ConnState {
        self.state.borrow().clone()
    }
    pub fn watch_state(&self) -> watch::Receiver<ConnState> {
        self.state.clone()
    }
    pub fn stats(&self) -> StatsSnapshot {
        self.stats.snapshot()
    }
    /// The source label events carry.
    pub fn label(&self) -> &Arc<str> {
        &self.label
    }
    /// Adds a subscription (kept across reconnects).
    pub fn subscribe(&self, channel: impl Into<String>) {
        let _ = self.commands.send(Command::Subscribe(channel.into()));
    }
    pub fn unsubscribe(&self, channel: impl Into<String>) {
        let _ = self.commands.send(Command::Unsubscribe(channel.into()));
    }
    /// Asks the server for fresh data (dashboard style `refresh`).
    pub fn refresh(&self) {
        let _ = self.commands.send(Command::Refresh);
    }
    /// Closes the connection (1000) and stops. Idempotent.
    pub fn shutdown(&self) {
        self.cancel.cancel();
    }
}

/// A running client: a handle plus the stream of updates.
#[derive(Debug)]
pub struct Client {
    handle: ClientHandle,
    updates: mpsc::Receiver<ClientUpdate>,
}

impl Client {
    /// Validates `config` and starts the connection task on the current
    /// tokio runtime. Errors only for a configuration that can never work;
    /// everything after this is reported through updates and state.
    pub fn connect(config: ClientConfig) -> Result<Client, ClientError> {
        let prepared = connection::Prepared::new(config)?;
        let (tx, updates) = mpsc::channel(prepared.queue);
        let (state_tx, state_rx) = watch::channel(ConnState::Connecting);
        let (cmd_tx, cmd_rx) = mpsc::unbounded_channel();
        let stats = Arc::new(Stats::default());
        let cancel = CancellationToken::new();
        let handle = ClientHandle {
            state: state_rx,
            stats: Arc::clone(&stats),
            cancel: cancel.clone(),
            commands: cmd_tx,
            label: Arc::clone(&prepared.label),
        };
        tokio::spawn(connection::run(
            prepared, tx, state_tx, cmd_rx, cancel, stats,
        ));
        Ok(Client { handle, updates })
    }

    /// The next update; `None` once the client has stopped and everything
    /// it delivered has been read.
    pub async fn next(&mut self) -> Option<ClientUpdate> {
        self.updates.recv().await
    }

    pub fn handle(&self) -> &ClientHandle {
        &self.handle
    }

    /// Separates the handle from the update stream.
    pub fn split(self) -> (ClientHandle, mpsc::Receiver<ClientUpdate>) {
        (self.handle, self.updates)
    }
}

impl std::ops::Deref for Client {
    type Target = ClientHandle;
    fn deref(&self) -> &ClientHandle {
        &self.handle
    }
}

/// A URL with credentials removed: no password, no `token` /
/// `access_token` query parameter. For labels, logs and errors.
pub fn redact_url(url: &url::Url) -> String {
    let mut u = url.clone();
    // A token pasted as `ws://TOKEN@host/` sits in the user part.
    let _ = u.set_password(None);
    let _ = u.set_username("");
    if u.query().is_some() {
        let kept: Vec<(String, String)> = u
            .query_pairs()
            .filter(|(k, _)| !is_secret_param(k))
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect();
        if kept.is_empty() {
            u.set_query(None);
        } else {
            u.query_pairs_mut().clear().extend_pairs(kept);
        }
    }
    u.to_string()
}

/// Whether a query parameter may carry a secret: any name mentioning a
/// token, key, secret, password, signature or auth, however spelt
/// (`access-token`, `X-Api-Key`, `sig`).
fn is_secret_param(k: &str) -> bool {
    let k = k.to_ascii_lowercase().replace(['-', '.'], "_");
    [
        "token",
        "key",
        "secret",
        "pass",
        "auth",
        "jwt",
        "sig",
        "credential",
        "bearer",
    ]
    .iter()
    .any(|w| k.contains(w))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_gap_becomes_an_event_that_says_what_was_lost_and_when() {
        let source: Arc<str> = Arc::from("prod");
        let now = chrono::Utc::now();
        let from = now - chrono::Duration::minutes(7);
        let lost = Notice::Gap {
            channel: "sessions:demo".into(),
            requested: 10,
            oldest: 500,
            criticals_kept: false,
        };
        let e = gap_event(&lost, &source, Some(from), now).expect("an event");
        assert_eq!(
            (e.kind.as_str(), e.severity),
            (GAP_KIND, crate::Severity::Critical)
        );
        assert_eq!(e.channel.as_deref(), Some("sessions:demo"));
        let d = e.describe();
        assert_eq!(d.title, "Alerts may be missing");
        let local = |t: chrono::DateTime<chrono::Utc>| {
            t.with_timezone(&chrono::Local).format("%H:%M").to_string()
        };
        assert_eq!(
            d.body,
            format!(
                "Events on sessions:demo between {} and {} could not be recovered, critical alerts possibly among them",
                local(from),
                local(now)
            )
        );
        let kept = Notice::Gap {
            channel: "c".into(),
            requested: 1,
            oldest: 9,
            criticals_kept: true,
        };
        let short = gap_event(
            &kept,
            &source,
            Some(now - chrono::Duration::seconds(9)),
            now,
        )
        .unwrap()
        .describe()
        .body;
        let secs = now
            .with_timezone(&chrono::Local)
            .format("%H:%M:%S")
            .to_string();
        assert!(
            short.contains(&format!(" and {secs}")),
            "seconds for a short gap: {short}"
        );
        let e = gap_event(&kept, &source, None, now).unwrap();
        assert_eq!(e.severity, crate::Severity::Warning);
        assert_eq!(e.describe().title, "History gap");
        assert!(
            e.describe()
                .body
                .contains("every critical alert was delivered")
        );
        let other = Notice::ServerError {
            code: "x".into(),
            message: "y".into(),
        };
        assert!(gap_event(&other, &source, None, now).is_none());
    }

    #[test]
    fn tokens_never_print() {
        let t = Token::new("s3cret\n");
        assert_eq!(t.expose(), "s3cret");
        assert!(!format!("{t:?}").contains("s3cret"));
        let cfg = ClientConfig::new("ws://h/").token(Some(t));
        assert!(!format!("{cfg:?}").contains("s3cret"));
    }

    #[test]
    fn bad_urls_do_not_echo_tokens() {
        for url in [
            "https://h/x?token=s3cret",
            "ws://u:s3cret@h:99999/",
            "nonsense?token=s3cret",
        ] {
            let e = Client::connect_blocking_check(url);
            assert!(!e.contains("s3cret"), "{e}");
        }
    }

    impl Client {
        fn connect_blocking_check(url: &str) -> String {
            connection::Prepared::new(ClientConfig::new(url))
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default()
        }
    }

    #[test]
    fn urls_are_redacted() {
        let u = url::Url::parse("wss://me:pw@h:9/ws/engagement?token=abc&x=1").unwrap();
        assert_eq!(redact_url(&u), "wss://h:9/ws/engagement?x=1");
        let u = url::Url::parse("ws://h/ws?TOKEN=abc").unwrap();
        assert_eq!(redact_url(&u), "ws://h/ws");
        // A token as the user part, and secret names however spelt.
        let u = url::Url::parse(
            "ws://eyJhbGciOi@h/ws?access-token=a&X-Api-Key=b&sig=c&client_secret=d&sessionId=S1",
        )
        .unwrap();
        assert_eq!(redact_url(&u), "ws://h/ws?sessionId=S1");
    }

    #[test]
    fn a_bad_poll_url_does_not_echo_its_secrets() {
        let ws = url::Url::parse("ws://h/api/v1/ws/dashboard").unwrap();
        for bad in [
            "ftp://u:s3cret@x/?access-token=s3cret",
            "not a url?access-token=s3cret",
        ] {
            let e = poll::resolve(&PollMode::Url(bad.into()), &ws, Style::Dashboard)
                .unwrap_err()
                .to_string();
            assert!(!e.contains("s3cret"), "{e}");
        }
    }
}
