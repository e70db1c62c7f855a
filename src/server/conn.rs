//! One WebSocket connection on the hub: its task reads client messages
//! (rate-limited, size-limited), writes what the fan-out could not write
//! at once (events queued while it subscribes or while the socket is full,
//! in its endpoint's wire format, skipping anything at or below what it
//! already sent on a channel), pings, drops a dead peer, is closed with
//! 1013 when it falls behind, and with 1001 when the hub shuts down. While
//! nothing is queued the connection is "live" and the fan-out writes each
//! event's pre-encoded frame to the socket itself (`outbox.rs`): the task
//! is not woken per event.

use std::num::NonZeroU32;
use std::sync::atomic::Ordering;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use tokio::time::{Instant, sleep_until};
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::{Message, Utf8Bytes};
use tokio_util::sync::CancellationToken;

use super::Limits;
use super::auth::Identity;
use super::endpoint::{Endpoint, Reply};
use super::event::NewEvent;
use super::grants;
use super::hub::{Asked, ConnId, ConnInfo, Hub, Subscriber};
use super::metrics::seconds_since;
use super::outbox::{Outbox, SharedIo};
use super::upgrade::Socket;
use crate::protocol::native::{ClientMessage, ErrorCode, Replay, close};

type Sink = SplitSink<Socket, Message>;
type Stream = SplitStream<Socket>;

const LAGGED: &str = "lagged";

/// Heartbeat times (pings, and the silence deadline) are rounded up to
/// this grid, counted from one hub-wide epoch, so that those of many
/// connections fall together: with 10,000 connections and a 30 s
/// heartbeat, four timer wake-ups a second with ~80 pings each instead of
/// ~330 wake-ups with one. Waking a worker for one ping cost far more than
/// the ping (docs/PERFORMANCE.md, "Idle connections").
const HEARTBEAT_GRID: Duration = Duration::from_millis(250);

/// `t`, rounded up to the [`HEARTBEAT_GRID`].
fn on_grid(t: Instant) -> Instant {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    let epoch = *EPOCH.get_or_init(Instant::now);
    let grid = HEARTBEAT_GRID.as_nanos();
    let ticks = t.saturating_duration_since(epoch).as_nanos().div_ceil(grid);
    epoch + Duration::from_nanos(u64::try_from(ticks * grid).unwrap_or(u64::MAX))
}

/// The close frame a read error deserves, if the peer can still take one:
/// 1009 for a message over the limit, 1007 for text that is not UTF-8,
/// 1002 for a malformed frame (unmasked, reserved bits, unknown opcode, a
/// stray continuation, a control frame over 125 bytes).
fn read_error_close(e: &tokio_tungstenite::tungstenite::Error) -> Option<(u16, &'static str)> {
    use tokio_tungstenite::tungstenite::Error;
    match e {
        Error::Capacity(_) => Some((close::TOO_BIG, "message too big")),
        Error::Utf8(_) => Some((close::INVALID_DATA, "text is not valid UTF-8")),
        Error::Protocol(_) => Some((close::PROTOCOL_ERROR, "malformed frame")),
        _ => None,
    }
}

/// How long a lagging peer has to take its close frame.
const LAGGED_CLOSE_WAIT: Duration = Duration::from_secs(10);

/// Queued events moved to the socket per write when several wait.
const WRITE_BATCH: usize = 64;

struct Conn {
    /// The socket, to see whether writes progress.
    io: SharedIo,
    hub: Arc<Hub>,
    endpoint: Endpoint,
    id: Identity,
    conn: ConnId,
    /// The write side shared with the fan-out, with the exactly-once
    /// filter (highest sequence written per channel).
    out: Arc<Outbox>,
    /// Subscribed channels and patterns.
    channels: Vec<String>,
    limiter: DefaultDirectRateLimiter,
    /// A close frame went to a peer still reading: until then, what it
    /// sends is read (and dropped) before the socket closes, so that its
    /// last frames (pongs) do not make the close a reset that discards
    /// what it has not read yet.
    linger: Option<Instant>,
}

fn close_frame(code: u16, reason: &str) -> Message {
    Message::Close(Some(CloseFrame {
        code: code.into(),
        reason: Utf8Bytes::from(reason),
    }))
}

/// Resolves when the connection is marked as lagging.
async fn lagged(out: &Outbox) {
    loop {
        let notified = out.notify.notified();
        if out.lagged.load(Ordering::Acquire) {
            return;
        }
        notified.await;
    }
}

fn native_error(code: ErrorCode, message: &str) -> String {
    serde_json::json!({"op": "error", "code": code.as_str(), "message": message}).to_string()
}

/// Resolves when the connection task's writes made no progress for a
/// whole `period`: the peer stopped reading (a replay or a burst would
/// otherwise hold its memory, and the task, forever).
async fn stalled(io: &SharedIo, period: Duration) {
    let mut last = io.written();
    loop {
        tokio::time::sleep(period).await;
        let now = io.written();
        if now == last {
            return;
        }
        last = now;
    }
}

const STALLED: &str = "peer stopped reading";

/// Runs a connection to completion.
pub(super) async fn run(
    socket: Socket,
    io: SharedIo,
    hub: Arc<Hub>,
    endpoint: Endpoint,
    id: Identity,
    limits: Limits,
    shutdown: CancellationToken,
) {
    let out = Arc::new(Outbox::new(io.clone(), endpoint.clone(), limits.send_queue));
    let conn = hub.connect(
        ConnInfo {
            user: id.user.clone(),
            style: endpoint.style(),
            client: id.client.clone(),
            msp: id.msp.clone(),
        },
        Arc::clone(&out),
    );
    let per_sec = NonZeroU32::new(limits.rate_per_sec.max(1)).expect("max(1) is non-zero");
    let burst = NonZeroU32::new(limits.rate_burst.max(1)).expect("max(1) is non-zero");
    let mut c = Conn {
        io: io.clone(),
        hub: Arc::clone(&hub),
        endpoint,
        id,
        conn,
        out,
        channels: Vec::new(),
        limiter: RateLimiter::direct(Quota::per_second(per_sec).allow_burst(burst)),
        linger: None,
    };
    let (mut sink, mut stream) = socket.split();
    let opened = Instant::now();
    let reason = c.session(&mut sink, &mut stream, &limits, &shutdown).await;
    if reason == STALLED {
        hub.metrics.stalled_closes.inc();
    }
    tracing::debug!(conn, user = %c.id.user, %reason, "connection closed");
    c.out.close();
    if let Some(until) = c.linger {
        let _ = tokio::time::timeout_at(until, async {
            while let Some(Ok(m)) = stream.next().await {
                match m {
                    Message::Close(_) => break,
                    Message::Pong(payload) => c.out.ponged(&payload),
                    _ => {}
                }
            }
        })
        .await;
    }
    hub.metrics
        .connection
        .observe(opened.elapsed().as_secs_f64());
    hub.disconnect(conn, &c.channels, &c.out.delivered());
    drop((sink, stream));
    io.close();
}

impl Conn {
    async fn session(
        &mut self,
        sink: &mut Sink,
        stream: &mut Stream,
        limits: &Limits,
        shutdown: &CancellationToken,
    ) -> String {
        let hb = limits.heartbeat;
        for frame in self.endpoint.greeting(&self.id, hb.as_secs()) {
            if sink.send(Message::text(frame)).await.is_err() {
                return "send failed".into();
            }
        }
        let hub = Arc::clone(&self.hub);
        let initial = match self
            .endpoint
            .initial_channels(&self.id, |c| hub.msp_of_client(c))
        {
            Ok(c) => c,
            Err(why) => {
                self.hub
                    .counters
                    .rejected_auth
                    .fetch_add(1, Ordering::Relaxed);
                let _ = sink.send(close_frame(close::POLICY, &why)).await;
                return why;
            }
        };
        let stall = hb * 2;
        let io = self.io.clone();
        let start = async {
            self.subscribe_all(sink, initial, Asked::default()).await?;
            if self.endpoint == Endpoint::Dashboard {
                self.snapshot(sink).await?;
            }
            // Live from here: the fan-out writes events itself.
            self.pump(sink).await
        };
        let started = tokio::select! {
            r = start => r,
            _ = stalled(&io, stall) => Err(STALLED.into()),
        };
        if let Err(e) = started {
            return e;
        }
        // The first ping at a random point of the first interval, so that
        // connections opened together (a mass reconnect) do not all ping
        // at once ever after; on the heartbeat grid, so that they ping in
        // a few batches a second.
        let first = hb.mul_f64(rand::random_range(0.1..=1.0));
        let mut ping = tokio::time::interval_at(on_grid(Instant::now() + first), hb);
        let silence = sleep_until(on_grid(Instant::now() + hb * 2));
        // The dashboard endpoint's periodic push (seed 001's 30 s).
        let dash_every = limits.dashboard_every;
        let pushes = self.endpoint == Endpoint::Dashboard && !dash_every.is_zero();
        let mut dash = tokio::time::interval_at(
            Instant::now() + dash_every.max(Duration::from_millis(1)),
            dash_every.max(Duration::from_millis(1)),
        );
        dash.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let cancelled = shutdown.cancelled();
        tokio::pin!(silence, cancelled);
        let out = Arc::clone(&self.out);
        loop {
            tokio::select! {
                biased;
                _ = &mut cancelled => {
                    self.out.close();
                    let _ = sink.send(close_frame(close::GOING_AWAY, "hub shutting down")).await;
                    return "shutdown".into();
                }
                _ = out.notify.notified() => {
                    if out.lagged.load(Ordering::Acquire) {
                        return self.close_lagged(sink).await;
                    }
                    // A peer that stopped reading blocks the write; the
                    // fan-out meanwhile overflows the queue and says so.
                    let written = tokio::select! {
                        biased;
                        r = self.pump(sink) => r,
                        _ = lagged(&out) => Err(LAGGED.into()),
                        _ = stalled(&io, stall) => Err(STALLED.into()),
                    };
                    if let Err(e) = written {
                        return self.ended(sink, e).await;
                    }
                }
                msg = stream.next() => {
                    silence.as_mut().reset(on_grid(Instant::now() + hb * 2));
                    match msg {
                        None => return "peer closed".into(),
                        Some(Err(e)) => {
                            let text = e.to_string();
                            // The peer is told why, with the code RFC 6455
                            // gives for it, before the connection ends.
                            if let Some((code, why)) = read_error_close(&e) {
                                if code == close::TOO_BIG {
                                    self.hub.counters.oversized.fetch_add(1, Ordering::Relaxed);
                                }
                                self.out.close();
                                let _ = sink.send(close_frame(code, why)).await;
                            }
                            return format!("read error: {text}");
                        }
                        Some(Ok(m)) => {
                            // A subscribe writes its replay here: bounded by
                            // progress like every other write.
                            let handled = tokio::select! {
                                r = self.inbound(sink, m, limits) => r,
                                _ = stalled(&io, stall) => Err(STALLED.into()),
                            };
                            if let Err(e) = handled {
                                return e;
                            }
                        }
                    }
                }
                _ = ping.tick() => {
                    if let Some(d) = self.out.newly_delivered() {
                        self.hub.remember_delivered(&self.id.user, &d);
                    }
                    if let Err(e) = self.ping(sink, &out, stall).await {
                        return self.ended(sink, e).await;
                    }
                    if let Some(hbf) = self.endpoint.heartbeat_frame()
                        && sink.send(Message::text(hbf)).await.is_err()
                    {
                        return "heartbeat failed".into();
                    }
                }
                _ = &mut silence => {
                    return "peer silent for two heartbeats".into();
                }
                _ = dash.tick(), if pushes => {
                    if let Err(e) = self.snapshot(sink).await {
                        return e;
                    }
                }
            }
        }
    }

    /// Pings, remembering where: its pong proves the peer read the
    /// stream up to there. Bounded like every write: by the queue
    /// overflowing behind it, or by no progress for `stall`.
    async fn ping(&mut self, sink: &mut Sink, out: &Outbox, stall: Duration) -> Result<(), String> {
        if !out.ping() {
            return Err("closing".into());
        }
        let io = self.io.clone();
        tokio::select! {
            biased;
            r = self.pump(sink) => r,
            _ = lagged(out) => Err(LAGGED.into()),
            _ = stalled(&io, stall) => Err(STALLED.into()),
        }
    }

    /// How a write that failed with `e` ends the connection: one that fell
    /// behind is told so with 1013.
    async fn ended(&mut self, sink: &mut Sink, e: String) -> String {
        if e == LAGGED {
            return self.close_lagged(sink).await;
        }
        e
    }

    /// Closes a connection that fell behind with 1013, waiting a bounded
    /// time for the peer to drain what is already in flight.
    async fn close_lagged(&mut self, sink: &mut Sink) -> String {
        self.hub.metrics.slow_closes.inc();
        self.out.close();
        let until = Instant::now() + LAGGED_CLOSE_WAIT;
        let frame = close_frame(close::TRY_AGAIN_LATER, "too slow: resume from history");
        if tokio::time::timeout_at(until, sink.send(frame))
            .await
            .is_ok()
        {
            self.linger = Some(until);
        }
        "slow consumer".into()
    }

    /// Writes whatever is pending or queued (a batch per write), then
    /// makes the connection live again.
    async fn pump(&mut self, sink: &mut Sink) -> Result<(), String> {
        loop {
            // Tungstenite's own frame first, then the raw frames.
            sink.flush()
                .await
                .map_err(|e| format!("send failed: {e}"))?;
            let mut oldest = None;
            let more = self.out.take_queued_noting(WRITE_BATCH, &mut oldest);
            if let Some(t) = oldest {
                // Flushed at the top of the next turn, at once.
                self.hub.metrics.delivery.observe(seconds_since(t));
            }
            if !more {
                return Ok(());
            }
        }
    }

    fn subscriber(&self) -> Subscriber {
        Subscriber {
            out: Arc::clone(&self.out),
        }
    }

    /// Subscribes, acknowledges and writes each channel's backlog; live
    /// events of those channels wait in the queue meanwhile (the caller
    /// pumps them out).
    async fn subscribe_all(
        &mut self,
        sink: &mut Sink,
        channels: Vec<String>,
        asked: Asked,
    ) -> Result<(), String> {
        // Where this user left each channel, for subscriptions without a
        // position of their own (every seed-style endpoint).
        let mine = if asked.since.is_none() && asked.replay.is_none() {
            self.hub
                .starting_points(&self.id.user, Some(self.conn))
                .await
        } else {
            Default::default()
        };
        for ch in channels {
            if self.channels.contains(&ch) {
                continue;
            }
            self.out.pause();
            let sub = match self
                .hub
                .subscribe(
                    self.conn,
                    &self.id,
                    &ch,
                    self.subscriber(),
                    asked.clone(),
                    &mine,
                )
                .await
            {
                Ok(sub) => sub,
                Err(e) => {
                    tracing::warn!(error = %e, channel = %ch, "channel state unavailable");
                    let why = format!("channel {ch} is unavailable right now");
                    self.reject(sink, ErrorCode::Internal, &why).await?;
                    continue;
                }
            };
            self.channels.push(ch.clone());
            if self.endpoint == Endpoint::Native {
                let ack = serde_json::json!({"op": "subscribed", "channel": sub.channel,
                    "epoch": sub.epoch, "seq": sub.start});
                sink.feed(Message::text(ack.to_string()))
                    .await
                    .map_err(|e| format!("send failed: {e}"))?;
                if let Some(gap) = sub.gap {
                    let gap = serde_json::json!({"op": "gap", "channel": sub.channel,
                        "requested": gap.requested, "oldest": gap.oldest,
                        "epoch": sub.epoch, "criticals_kept": gap.criticals_kept});
                    sink.feed(Message::text(gap.to_string()))
                        .await
                        .map_err(|e| format!("send failed: {e}"))?;
                }
                // On the wire before the backlog: raw frames queued below go
                // out before anything tungstenite still holds, and the
                // client's resume bookkeeping needs `subscribed` and `gap`
                // first.
                sink.flush()
                    .await
                    .map_err(|e| format!("send failed: {e}"))?;
            }
            // The position the backlog continues after counts as sent (in
            // the channel's current epoch); live events, all after the
            // recovered head, follow the backlog in order.
            if !grants::is_pattern(&ch) {
                self.out.set_sent(&ch, sub.start);
            }
            for ev in sub.backlog {
                self.out.queue_backlog(&ev);
            }
            sink.flush()
                .await
                .map_err(|e| format!("send failed: {e}"))?;
        }
        sink.flush().await.map_err(|e| format!("send failed: {e}"))
    }

    async fn snapshot(&mut self, sink: &mut Sink) -> Result<(), String> {
        if let Some(ev) = self.hub.dashboard_snapshot() {
            let frame = ev.render(self.endpoint.wire());
            sink.send(Message::text(&*frame))
                .await
                .map_err(|e| format!("send failed: {e}"))?;
        }
        Ok(())
    }

    async fn send_text(&mut self, sink: &mut Sink, text: String) -> Result<(), String> {
        sink.send(Message::text(text))
            .await
            .map_err(|e| format!("send failed: {e}"))
    }

    async fn inbound(
        &mut self,
        sink: &mut Sink,
        m: Message,
        _limits: &Limits,
    ) -> Result<(), String> {
        if let Message::Close(_) = m {
            return Err("peer closed".into());
        }
        // Every frame a peer sends costs a token: pings and binary frames
        // too, or a flood of them would go unchecked.
        self.hub
            .counters
            .messages_in
            .fetch_add(1, Ordering::Relaxed);
        if self.limiter.check().is_err() {
            self.hub
                .counters
                .rate_limited
                .fetch_add(1, Ordering::Relaxed);
            let msg = "rate limit exceeded";
            let frame = if self.endpoint == Endpoint::Native {
                native_error(ErrorCode::RateLimited, msg)
            } else {
                serde_json::json!({"type": "error", "message": msg}).to_string()
            };
            let _ = sink.send(Message::text(frame)).await;
            // Not 1008: that means "authentication refused", which stops a
            // client for good; this one should come back, more slowly.
            let _ = sink.send(close_frame(close::RATE_LIMITED, msg)).await;
            return Err(msg.into());
        }
        let text = match m {
            Message::Text(t) => t,
            Message::Pong(payload) => {
                self.out.ponged(&payload);
                return Ok(());
            }
            Message::Binary(_) => {
                return self
                    .reject(
                        sink,
                        ErrorCode::BadRequest,
                        "binary messages are not accepted",
                    )
                    .await;
            }
            _ => return Ok(()),
        };
        if self.endpoint == Endpoint::Native {
            return self.native(sink, text.as_str()).await;
        }
        let hub = Arc::clone(&self.hub);
        match self
            .endpoint
            .command(&self.id, text.as_str(), |c| hub.msp_of_client(c))
        {
            Reply::Send(frames) => {
                for f in frames {
                    self.send_text(sink, f).await?;
                }
                Ok(())
            }
            Reply::Subscribe(chans, frames) => {
                for f in frames {
                    self.send_text(sink, f).await?;
                }
                self.subscribe_all(sink, chans, Asked::default()).await?;
                self.pump(sink).await
            }
            Reply::Unsubscribe(chans) => {
                for ch in chans {
                    self.hub.unsubscribe(self.conn, &ch);
                    self.channels.retain(|c| c != &ch);
                }
                Ok(())
            }
            Reply::Snapshot => self.snapshot(sink).await,
            Reply::Nothing => Ok(()),
        }
    }

    async fn reject(&mut self, sink: &mut Sink, code: ErrorCode, msg: &str) -> Result<(), String> {
        let frame = if self.endpoint == Endpoint::Native {
            native_error(code, msg)
        } else {
            serde_json::json!({"type": "error", "message": msg}).to_string()
        };
        self.send_text(sink, frame).await
    }

    async fn native(&mut self, sink: &mut Sink, text: &str) -> Result<(), String> {
        let msg: ClientMessage = match serde_json::from_str(text) {
            Ok(m) => m,
            Err(e) => {
                let why = format!("not a valid message: {e}");
                return self.reject(sink, ErrorCode::BadRequest, &why).await;
            }
        };
        match msg {
            ClientMessage::Ping => self.send_text(sink, r#"{"op":"pong"}"#.into()).await,
            ClientMessage::Subscribe {
                channel,
                since,
                replay,
            } => {
                if !grants::valid(&channel) {
                    return self
                        .reject(sink, ErrorCode::BadRequest, "invalid channel name")
                        .await;
                }
                if since.is_some() && replay.is_some() {
                    let why = "give since (to resume) or replay (to read history), not both";
                    return self.reject(sink, ErrorCode::BadRequest, why).await;
                }
                if grants::is_pattern(&channel) && matches!(replay, Some(Replay::AfterSeq(_))) {
                    let why = "a pattern has no sequence: replay it with \"all\" or a time";
                    return self.reject(sink, ErrorCode::BadRequest, why).await;
                }
                if !self.id.may_read(&channel) {
                    let why = format!("not allowed to read {channel}");
                    return self.reject(sink, ErrorCode::Forbidden, &why).await;
                }
                self.subscribe_all(sink, vec![channel], Asked { since, replay })
                    .await?;
                self.pump(sink).await
            }
            ClientMessage::Unsubscribe { channel } => {
                self.hub.unsubscribe(self.conn, &channel);
                self.channels.retain(|c| c != &channel);
                let ack = serde_json::json!({"op": "unsubscribed", "channel": channel});
                self.send_text(sink, ack.to_string()).await
            }
            ClientMessage::Publish {
                channel,
                kind,
                severity,
                id,
                data,
            } => {
                if !self.id.publish {
                    return self
                        .reject(
                            sink,
                            ErrorCode::Forbidden,
                            "publishing needs the publish scope",
                        )
                        .await;
                }
                match self
                    .hub
                    .publish(NewEvent {
                        channel,
                        kind,
                        severity,
                        id,
                        data,
                    })
                    .await
                {
                    Ok(p) => {
                        let ack = serde_json::json!({"op": "published", "channel": p.channel,
                            "seq": p.seq, "id": p.id, "duplicate": p.duplicate});
                        self.send_text(sink, ack.to_string()).await
                    }
                    Err(e) => {
                        self.reject(sink, ErrorCode::BadRequest, &e.to_string())
                            .await
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod grid_tests {
    use super::*;

    #[test]
    fn heartbeat_times_round_up_to_a_shared_grid() {
        let base = on_grid(Instant::now());
        for ms in [0u64, 1, 100, 249, 250, 251, 30_000, 30_001] {
            let t = base + Duration::from_millis(ms);
            let g = on_grid(t);
            assert!(g >= t && g - t < HEARTBEAT_GRID, "{ms} ms");
        }
        // Times within one slot share their deadline.
        assert_eq!(
            on_grid(base + Duration::from_millis(1)),
            on_grid(base + Duration::from_millis(249))
        );
        assert_eq!(on_grid(base), base, "a time on the grid stays");
    }
}
