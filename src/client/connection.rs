//! The connection task: connect, run one session until it ends, wait with
//! backoff (polling meanwhile when the upgrade keeps failing), repeat until
//! stopped. One task per client; all state lives on its stack.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use futures_util::{SinkExt, StreamExt};
use http::HeaderValue;
use tokio::net::TcpStream;
use tokio::sync::{mpsc, watch};
use tokio::time::{Instant, sleep_until, timeout};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, WebSocketConfig};
use tokio_tungstenite::tungstenite::{self, Message};
use tokio_tungstenite::{Connector, MaybeTlsStream, WebSocketStream};
use tokio_util::sync::CancellationToken;
use url::Url;

use super::poll::{self, PollError, Poller};
use super::resume::{Positions, Repeats, Verdict};
use super::{
    AuthMode, ClientConfig, ClientError, ClientUpdate, Command, ConnState, Notice, Stats,
    StopReason, redact_url, tls,
};
use crate::protocol::native::{self, ServerControl, close};
use crate::protocol::{self, Control, DecodeError, Frame, Style};

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// A validated configuration, ready to connect.
#[derive(Debug)]
pub(super) struct Prepared {
    cfg: ClientConfig,
    url: Url,
    /// Style for what we send; `None` until known.
    style: Option<Style>,
    pub label: Arc<str>,
    tls: Arc<rustls::ClientConfig>,
    poll_url: Option<Url>,
    pub queue: usize,
    /// With [`AuthMode::Auto`]: the token goes where the style's
    /// preferred place is not (the server refused it there).
    alt_auth: bool,
}

impl Prepared {
    pub fn new(cfg: ClientConfig) -> Result<Prepared, ClientError> {
        // The URL as typed may carry credentials: errors show it redacted.
        let shown = Url::parse(cfg.url.trim())
            .map(|u| redact_url(&u))
            .unwrap_or_else(|_| redact_unparsed(&cfg.url));
        let bad = |reason: &str| ClientError::BadUrl {
            url: shown.clone(),
            reason: reason.to_owned(),
        };
        let url = Url::parse(cfg.url.trim()).map_err(|e| bad(&e.to_string()))?;
        if !matches!(url.scheme(), "ws" | "wss") {
            return Err(bad("the scheme must be ws:// or wss://"));
        }
        if url.host_str().is_none_or(str::is_empty) {
            return Err(bad("no host"));
        }
        if cfg.heartbeat.is_zero() || cfg.ping_interval.is_zero() || cfg.dead_after.is_zero() {
            return Err(ClientError::Invalid(
                "heartbeat, ping interval and dead-after must be above zero".into(),
            ));
        }
        if cfg.queue == 0 || cfg.max_message_size == 0 {
            return Err(ClientError::Invalid(
                "queue and max message size must be above zero".into(),
            ));
        }
        let url_redacted = redact_url(&url);
        let style = cfg.style.or_else(|| Style::from_path(url.path()));
        if cfg.replay.is_some() && style != Some(Style::Native) {
            return Err(ClientError::Invalid(format!(
                "only the native protocol can replay history, and this is the {} style \
                 (set it with --style native when the URL is a riskwatch hub's)",
                style.map_or("unknown".into(), |s| s.to_string())
            )));
        }
        let tls = tls::client_config(cfg.extra_ca.as_deref())?;
        let poll_url = poll::resolve(&cfg.poll, &url, style.unwrap_or(Style::Generic))?;
        let label: Arc<str> = Arc::from(cfg.label.clone().unwrap_or(url_redacted).as_str());
        Ok(Prepared {
            queue: cfg.queue,
            url,
            style,
            label,
            tls,
            poll_url,
            cfg,
            alt_auth: false,
        })
    }

    fn style(&self) -> Style {
        self.style.unwrap_or(Style::Generic)
    }

    fn request(&self) -> Result<http::Request<()>, StopReason> {
        let mut url = self.url.clone();
        let (header, query) = match (self.cfg.auth, self.cfg.token.is_some()) {
            (_, false) => (false, false),
            (AuthMode::Header, _) => (true, false),
            (AuthMode::Query, _) => (false, true),
            (AuthMode::Both, _) => (true, true),
            (AuthMode::Auto, _) => {
                let q = self.style().token_in_query() != self.alt_auth;
                (!q, q)
            }
        };
        let token = self.cfg.token.as_ref();
        if query && let Some(t) = token {
            url.query_pairs_mut().append_pair("token", t.expose());
        }
        let mut req = url
            .as_str()
            .into_client_request()
            .map_err(|e| StopReason::AuthRefused(format!("cannot build the request: {e}")))?;
        if header && let Some(t) = token {
            let mut v = HeaderValue::from_str(&format!("Bearer {}", t.expose())).map_err(|_| {
                StopReason::AuthRefused("the token has characters not allowed in a header".into())
            })?;
            v.set_sensitive(true);
            req.headers_mut().insert(http::header::AUTHORIZATION, v);
        }
        Ok(req)
    }

    fn ws_config(&self) -> WebSocketConfig {
        // tungstenite refuses (and ends the connection on) anything above its
        // limit, so it gets headroom: messages between our limit and four
        // times it are read, counted as oversized and skipped, and only
        // beyond that does the connection drop and reconnect.
        let hard = self.cfg.max_message_size.saturating_mul(4);
        WebSocketConfig::default()
            .max_message_size(Some(hard))
            .max_frame_size(Some(hard))
    }
}

/// A URL that does not parse, cut before its query and userinfo, so a
/// token typed into it never reaches an error message.
pub(super) fn redact_unparsed(url: &str) -> String {
    let no_query = url.split(['?', '#']).next().unwrap_or_default();
    match no_query.split_once("://") {
        Some((scheme, rest)) => {
            let host = rest.rsplit_once('@').map_or(rest, |(_, h)| h);
            format!("{scheme}://{host}")
        }
        None => no_query.to_owned(),
    }
}

enum ConnectError {
    Terminal(StopReason),
    Retry(String),
}

/// Subscribe messages sent at once on connect.
const SUBSCRIBE_BURST: usize = 30;
/// Then this many per [`SUBSCRIBE_EVERY`].
const SUBSCRIBE_PACED: usize = 15;
const SUBSCRIBE_EVERY: Duration = Duration::from_secs(1);

/// Sends up to `n` of the pending messages, in order.
async fn send_some(
    ws: &mut Ws,
    pending: &mut std::collections::VecDeque<String>,
    n: usize,
) -> Result<(), tungstenite::Error> {
    for _ in 0..n {
        let Some(msg) = pending.pop_front() else {
            break;
        };
        ws.send(Message::text(msg)).await?;
    }
    Ok(())
}

async fn connect(p: &Prepared) -> Result<Ws, ConnectError> {
    let req = p.request().map_err(ConnectError::Terminal)?;
    let connector = (p.url.scheme() == "wss").then(|| Connector::Rustls(Arc::clone(&p.tls)));
    let fut =
        tokio_tungstenite::connect_async_tls_with_config(req, Some(p.ws_config()), true, connector);
    match timeout(p.cfg.connect_timeout, fut).await {
        Err(_) => Err(ConnectError::Retry(format!(
            "no answer within {:?}",
            p.cfg.connect_timeout
        ))),
        Ok(Ok((ws, _resp))) => Ok(ws),
        Ok(Err(e)) => Err(classify_connect_error(e)),
    }
}

fn classify_connect_error(e: tungstenite::Error) -> ConnectError {
    use tungstenite::Error as E;
    match e {
        E::Http(resp) => {
            let status = resp.status();
            if status == http::StatusCode::UNAUTHORIZED || status == http::StatusCode::FORBIDDEN {
                ConnectError::Terminal(StopReason::AuthRefused(format!(
                    "the server answered HTTP {status} to the upgrade"
                )))
            } else {
                ConnectError::Retry(format!("the server answered HTTP {status} to the upgrade"))
            }
        }
        E::Tls(t) => {
            if tls::is_certificate_error(&t) {
                ConnectError::Terminal(StopReason::Tls(t.to_string()))
            } else {
                ConnectError::Retry(format!("TLS: {t}"))
            }
        }
        E::Io(io) => {
            if tls::is_certificate_error(&io) {
                ConnectError::Terminal(StopReason::Tls(io.to_string()))
            } else {
                ConnectError::Retry(io.to_string())
            }
        }
        other => ConnectError::Retry(other.to_string()),
    }
}

/// Everything the task carries between sessions.
struct Task {
    p: Prepared,
    tx: mpsc::Sender<ClientUpdate>,
    state: watch::Sender<ConnState>,
    commands: mpsc::UnboundedReceiver<Command>,
    cancel: CancellationToken,
    stats: Arc<Stats>,
    /// Channels for non-native styles (native ones live in `positions`).
    channels: Vec<String>,
    positions: Positions,
    /// Seed-style messages already delivered, across reconnects.
    repeats: Repeats,
}

/// How a session ended.
enum End {
    Reconnect(String),
    Stop(StopReason),
}

pub(super) async fn run(
    p: Prepared,
    tx: mpsc::Sender<ClientUpdate>,
    state: watch::Sender<ConnState>,
    commands: mpsc::UnboundedReceiver<Command>,
    cancel: CancellationToken,
    stats: Arc<Stats>,
) {
    let channels = p.cfg.subscriptions.clone();
    let positions = Positions::new(channels.iter().cloned()).replay(p.cfg.replay.clone());
    let mut task = Task {
        p,
        tx,
        state,
        commands,
        cancel,
        stats,
        channels,
        positions,
        repeats: Repeats::default(),
    };
    // The watch channel starts at `Connecting`; the stream says so too, so a
    // consumer sees every state from the first.
    let _ = task
        .tx
        .send(ClientUpdate::State(ConnState::Connecting))
        .await;
    let reason = task.main_loop().await;
    tracing::info!(source = %task.p.label, %reason, "client stopped");
    task.set_state(ConnState::Stopped { reason }).await;
}

impl Task {
    async fn set_state(&mut self, s: ConnState) {
        if *self.state.borrow() == s {
            return;
        }
        self.state.send_replace(s.clone());
        // The stream copy is best effort once the consumer is gone.
        let _ = self.tx.send(ClientUpdate::State(s)).await;
    }

    async fn main_loop(&mut self) -> StopReason {
        let mut attempt: u32 = 0;
        let mut failures: u32 = 0;
        let mut poller: Option<(Poller, Instant)> = None;
        loop {
            if self.cancel.is_cancelled() {
                return StopReason::Shutdown;
            }
            if poller.is_none() {
                self.set_state(ConnState::Connecting).await;
            }
            let error = match connect(&self.p).await {
                Ok(ws) => {
                    failures = 0;
                    poller = None;
                    Stats::bump(&self.stats.connects);
                    self.set_state(ConnState::Connected).await;
                    tracing::info!(source = %self.p.label, "connected");
                    let started = Instant::now();
                    let end = self.session(ws).await;
                    if started.elapsed() >= self.p.cfg.backoff.reset_after {
                        attempt = 0;
                    }
                    match end {
                        End::Stop(StopReason::AuthRefused(why)) if self.try_other_place(&why) => {
                            continue;
                        }
                        End::Stop(r) => return r,
                        End::Reconnect(why) => why,
                    }
                }
                Err(ConnectError::Terminal(StopReason::AuthRefused(why)))
                    if self.try_other_place(&why) =>
                {
                    continue;
                }
                Err(ConnectError::Terminal(r)) => return r,
                Err(ConnectError::Retry(why)) => {
                    failures = failures.saturating_add(1);
                    why
                }
            };
            tracing::debug!(source = %self.p.label, error = %error, "connection lost or refused");
            let delay = self.p.cfg.backoff.delay(attempt, rand::random::<f64>());
            attempt = attempt.saturating_add(1);
            if poller.is_none()
                && failures >= self.p.cfg.poll_after_failures
                && let Some(url) = self.p.poll_url.clone()
            {
                match Poller::new(
                    url,
                    self.p.cfg.token.clone(),
                    Arc::clone(&self.p.tls),
                    self.p.cfg.connect_timeout,
                    self.p.cfg.max_message_size,
                    Arc::clone(&self.p.label),
                ) {
                    Ok(pl) => poller = Some((pl, Instant::now())),
                    Err(e) => tracing::warn!(error = %e, "polling fallback unavailable"),
                }
            }
            if poller.is_some() {
                self.set_state(ConnState::Polling {
                    error: error.clone(),
                })
                .await;
            } else {
                self.set_state(ConnState::Reconnecting {
                    attempt,
                    retry_in_ms: delay.as_millis() as u64,
                    error,
                })
                .await;
            }
            if let Some(r) = self.wait(delay, &mut poller).await {
                return r;
            }
        }
    }

    /// After the server refused the token: with [`AuthMode::Auto`], the
    /// first refusal moves the token to the style's other place (a browser
    /// backend reads `?token=` only, another reads only the header) and
    /// the client reconnects at once; true when it did.
    fn try_other_place(&mut self, why: &str) -> bool {
        if self.p.cfg.auth != AuthMode::Auto || self.p.cfg.token.is_none() || self.p.alt_auth {
            return false;
        }
        self.p.alt_auth = true;
        let now = if self.p.style().token_in_query() != self.p.alt_auth {
            "?token="
        } else {
            "the Authorization header"
        };
        tracing::info!(source = %self.p.label, refused = %why, "token refused; sending it in {now}");
        true
    }

    /// Waits out a reconnect delay, polling when a poller is active and
    /// applying commands. `Some` when the client must stop.
    async fn wait(
        &mut self,
        delay: Duration,
        poller: &mut Option<(Poller, Instant)>,
    ) -> Option<StopReason> {
        let until = Instant::now() + delay;
        loop {
            let next_poll = poller.as_ref().map(|(_, at)| *at);
            tokio::select! {
                _ = self.cancel.cancelled() => return Some(StopReason::Shutdown),
                // Nobody reads the updates any more: the Client was dropped.
                _ = self.tx.closed() => return Some(StopReason::Shutdown),
                _ = sleep_until(until) => return None,
                Some(cmd) = self.commands.recv() => self.apply_offline(cmd),
                _ = sleep_until(next_poll.unwrap_or(until)), if next_poll.is_some() => {
                    let (pl, at) = poller.as_mut().expect("guarded by next_poll");
                    *at = Instant::now() + self.p.cfg.poll_interval;
                    Stats::bump(&self.stats.polls);
                    match pl.poll_once().await {
                        Ok(frames) => {
                            for f in frames {
                                if let Frame::Event(e) = f {
                                    Stats::bump(&self.stats.events);
                                    if self.tx.send(ClientUpdate::Event(e)).await.is_err() {
                                        return Some(StopReason::ReceiverGone);
                                    }
                                }
                            }
                        }
                        Err(PollError::Auth(d)) => return Some(StopReason::AuthRefused(d)),
                        Err(PollError::Other(d)) => {
                            tracing::warn!(source = %self.p.label, error = %d, "poll failed");
                        }
                    }
                }
            }
        }
    }

    fn apply_offline(&mut self, cmd: Command) {
        match cmd {
            Command::Subscribe(c) => {
                if !self.channels.contains(&c) {
                    self.channels.push(c.clone());
                }
                self.positions.add(c);
            }
            Command::Unsubscribe(c) => {
                self.channels.retain(|x| x != &c);
                self.positions.remove(&c);
            }
            Command::Refresh => {}
        }
    }

    /// The messages that (re)establish subscriptions for the current style.
    fn subscribe_messages(&self) -> Vec<String> {
        match self.p.style() {
            Style::Native => self
                .positions
                .channels()
                .map(|c| self.positions.subscribe_message(c))
                .collect(),
            style => style.subscribe_message(&self.channels).unwrap_or_default(),
        }
    }

    async fn session(&mut self, mut ws: Ws) -> End {
        // Many subscriptions go out paced, within what a hub's default rate
        // limit allows (burst 40, 20/s), so a desk with dozens of channels
        // is never closed for flooding; resume fills in anything published
        // meanwhile.
        let mut pending: std::collections::VecDeque<String> = self.subscribe_messages().into();
        // A backend that cannot replay what a dropped connection missed
        // but can send its current state (the dashboard style's
        // `refresh`) is asked for it on every connect, so the view is
        // whole at once instead of at the next push (up to 30 s).
        pending.extend(self.p.style().refresh_message().map(str::to_owned));
        if let Err(e) = send_some(&mut ws, &mut pending, SUBSCRIBE_BURST).await {
            return End::Reconnect(format!("sending subscriptions failed: {e}"));
        }
        let mut pace = tokio::time::interval_at(Instant::now() + SUBSCRIBE_EVERY, SUBSCRIBE_EVERY);
        // WebSocket pings are cheap and every server answers them, so
        // they run often (5 s) and a dead link is noticed in `dead`
        // (15 s); the style's own application ping keeps its interval
        // (the seeds' 30 s).
        let hb = self.p.cfg.heartbeat;
        let dead = self.p.cfg.dead_after_effective();
        let every = self.p.cfg.ping_interval.min(hb);
        let mut ping = tokio::time::interval_at(Instant::now() + every, every);
        ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut app_ping = tokio::time::interval_at(Instant::now() + hb, hb);
        app_ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut deadline = Instant::now() + dead;
        loop {
            tokio::select! {
                biased;
                _ = self.cancel.cancelled() => {
                    let frame = CloseFrame { code: CloseCode::Normal, reason: "client shutdown".into() };
                    let _ = timeout(Duration::from_secs(1), ws.close(Some(frame))).await;
                    return End::Stop(StopReason::Shutdown);
                }
                // The Client was dropped (nobody reads its updates): close
                // now, not whenever the next update would have failed.
                _ = self.tx.closed() => {
                    let frame = CloseFrame { code: CloseCode::Normal, reason: "client dropped".into() };
                    let _ = timeout(Duration::from_secs(1), ws.close(Some(frame))).await;
                    return End::Stop(StopReason::Shutdown);
                }
                msg = ws.next() => {
                    let msg = match msg {
                        None => return End::Reconnect("the server closed the connection".into()),
                        Some(Err(e)) => {
                            if matches!(e, tungstenite::Error::Utf8(_)) {
                                // RFC 6455 (8.1) has the connection failed,
                                // not the frame skipped: say why (1007) and
                                // reconnect; resume recovers what followed.
                                Stats::bump(&self.stats.malformed);
                                let frame = CloseFrame {
                                    code: CloseCode::Invalid,
                                    reason: "a text frame was not UTF-8".into(),
                                };
                                let _ = timeout(Duration::from_secs(1), ws.close(Some(frame))).await;
                            }
                            return End::Reconnect(self.read_error(e));
                        }
                        Some(Ok(m)) => m,
                    };
                    if let Some(end) = self.handle(&mut ws, msg).await {
                        return end;
                    }
                    // A slow consumer may have held us in `handle`: the
                    // deadline counts from when we could read again.
                    deadline = Instant::now() + dead;
                }
                Some(cmd) = self.commands.recv() => {
                    if let Some(text) = self.apply_online(cmd)
                        && let Err(e) = ws.send(Message::text(text)).await
                    {
                        return End::Reconnect(format!("send failed: {e}"));
                    }
                }
                _ = pace.tick(), if !pending.is_empty() => {
                    if let Err(e) = send_some(&mut ws, &mut pending, SUBSCRIBE_PACED).await {
                        return End::Reconnect(format!("sending subscriptions failed: {e}"));
                    }
                }
                _ = ping.tick() => {
                    if let Err(e) = ws.send(Message::Ping(Vec::new().into())).await {
                        return End::Reconnect(format!("ping failed: {e}"));
                    }
                }
                _ = app_ping.tick() => {
                    if let Some(app) = self.p.style().app_ping(&Utc::now().to_rfc3339())
                        && let Err(e) = ws.send(Message::text(app)).await
                    {
                        return End::Reconnect(format!("ping failed: {e}"));
                    }
                }
                _ = sleep_until(deadline) => {
                    Stats::bump(&self.stats.dead);
                    return End::Reconnect(format!(
                        "no traffic for {:.1} s: connection declared dead",
                        dead.as_secs_f64()
                    ));
                }
            }
        }
    }

    fn apply_online(&mut self, cmd: Command) -> Option<String> {
        match cmd {
            Command::Subscribe(c) => {
                let fresh = self.positions.add(c.clone());
                if !self.channels.contains(&c) {
                    self.channels.push(c.clone());
                }
                if !fresh {
                    return None;
                }
                match self.p.style() {
                    Style::Native => Some(self.positions.subscribe_message(&c)),
                    s => s.subscribe_message(&[c]).map(|v| v.join("\n")),
                }
            }
            Command::Unsubscribe(c) => {
                self.positions.remove(&c);
                self.channels.retain(|x| x != &c);
                (self.p.style() == Style::Native).then(|| {
                    serde_json::to_string(&native::ClientMessage::Unsubscribe { channel: c })
                        .expect("serializes")
                })
            }
            Command::Refresh => self.p.style().refresh_message().map(str::to_owned),
        }
    }

    fn read_error(&self, e: tungstenite::Error) -> String {
        use tungstenite::Error as E;
        use tungstenite::error::CapacityError;
        match e {
            E::Capacity(CapacityError::MessageTooLong { size, max_size }) => {
                Stats::bump(&self.stats.oversized);
                format!("a message of {size} bytes exceeded the hard limit of {max_size}")
            }
            E::Protocol(p) => format!("protocol error: {p}"),
            E::Utf8(_) => {
                "the server sent a text frame that is not UTF-8 (closed with 1007)".into()
            }
            other => other.to_string(),
        }
    }

    /// Handles one message; `Some` ends the session.
    async fn handle(&mut self, ws: &mut Ws, msg: Message) -> Option<End> {
        let text = match msg {
            Message::Text(t) => t,
            Message::Binary(b) => {
                Stats::bump(&self.stats.binary);
                tracing::warn!(source = %self.p.label, bytes = b.len(), "binary message skipped");
                return None;
            }
            Message::Close(frame) => return Some(self.closed(frame)),
            Message::Ping(_) | Message::Pong(_) | Message::Frame(_) => return None,
        };
        Stats::bump(&self.stats.messages);
        let frame = protocol::decode_limited(
            text.as_str(),
            self.p.cfg.max_message_size,
            &self.p.label,
            Utc::now(),
        );
        match frame {
            Ok(Frame::Event(e)) => {
                if e.seq.is_none()
                    && let Some(id) = e.id.as_deref()
                    && !self.repeats.first_time(id, e.payload.get())
                {
                    Stats::bump(&self.stats.duplicates);
                    return None;
                }
                if let (Some(ch), Some(seq)) = (e.channel.as_deref(), e.seq) {
                    match self.positions.observe(ch, seq) {
                        Verdict::Duplicate => {
                            Stats::bump(&self.stats.duplicates);
                            return None;
                        }
                        Verdict::DeliverAfterHole { missing_from } => {
                            Stats::bump(&self.stats.gaps);
                            let n = Notice::Gap {
                                channel: ch.to_owned(),
                                requested: missing_from.saturating_sub(1),
                                oldest: seq,
                                criticals_kept: false,
                            };
                            if self.tx.send(ClientUpdate::Notice(n)).await.is_err() {
                                return Some(End::Stop(StopReason::ReceiverGone));
                            }
                        }
                        Verdict::Deliver => {}
                    }
                }
                Stats::bump(&self.stats.events);
                if self.tx.send(ClientUpdate::Event(e)).await.is_err() {
                    return Some(End::Stop(StopReason::ReceiverGone));
                }
            }
            Ok(Frame::Control(c)) => {
                Stats::bump(&self.stats.controls);
                return self.control(ws, c).await;
            }
            Err(e @ DecodeError::TooLarge { .. }) => {
                Stats::bump(&self.stats.oversized);
                tracing::warn!(source = %self.p.label, error = %e, "message skipped");
            }
            Err(e) => {
                Stats::bump(&self.stats.malformed);
                tracing::warn!(source = %self.p.label, error = %e, "message skipped");
            }
        }
        None
    }

    async fn control(&mut self, ws: &mut Ws, c: Control) -> Option<End> {
        match c {
            Control::Ping => {
                let pong = r#"{"type":"pong"}"#;
                if let Err(e) = ws.send(Message::text(pong)).await {
                    return Some(End::Reconnect(format!("pong failed: {e}")));
                }
            }
            Control::Native(n) => {
                if self.p.style.is_none() {
                    // A hub reached on an unrecognised path: speak native.
                    self.p.style = Some(Style::Native);
                    for msg in self.subscribe_messages() {
                        if let Err(e) = ws.send(Message::text(msg)).await {
                            return Some(End::Reconnect(format!("subscribe failed: {e}")));
                        }
                    }
                }
                match n {
                    ServerControl::Subscribed {
                        channel,
                        epoch,
                        seq,
                    } => {
                        self.positions.subscribed(&channel, &epoch, seq);
                    }
                    ServerControl::Gap {
                        channel,
                        requested,
                        oldest,
                        epoch,
                        criticals_kept,
                    } => {
                        Stats::bump(&self.stats.gaps);
                        self.positions.gap(&channel, &epoch, oldest);
                        let n = Notice::Gap {
                            channel,
                            requested,
                            oldest,
                            criticals_kept,
                        };
                        if self.tx.send(ClientUpdate::Notice(n)).await.is_err() {
                            return Some(End::Stop(StopReason::ReceiverGone));
                        }
                    }
                    ServerControl::Error { code, message } => {
                        tracing::warn!(source = %self.p.label, %code, %message, "server error");
                        let n = Notice::ServerError { code, message };
                        if self.tx.send(ClientUpdate::Notice(n)).await.is_err() {
                            return Some(End::Stop(StopReason::ReceiverGone));
                        }
                    }
                    ServerControl::Welcome { .. }
                    | ServerControl::Unsubscribed { .. }
                    | ServerControl::Pong
                    | ServerControl::Published { .. } => {}
                }
            }
            Control::Pong
            | Control::Heartbeat
            | Control::Connected { .. }
            | Control::Ack { .. } => {}
        }
        None
    }

    fn closed(&self, frame: Option<CloseFrame>) -> End {
        let (code, reason) = frame
            .map(|f| (u16::from(f.code), f.reason.to_string()))
            .unwrap_or((1005, String::new()));
        let what = if reason.is_empty() {
            format!("the server closed the connection with code {code}")
        } else {
            format!("the server closed the connection with code {code} ({reason})")
        };
        match close::policy_with_reason(code, &reason) {
            close::Policy::AuthRefused => End::Stop(StopReason::AuthRefused(what)),
            close::Policy::Reconnect => End::Reconnect(what),
        }
    }
}
