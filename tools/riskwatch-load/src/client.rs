//! The load's clients: one task per native-protocol connection, each bound
//! to its own source address in 127.0.0.0/8 (so the ephemeral-port range,
//! ~28k per source and destination, is no limit), connected at a bounded
//! concurrency, subscribed to one channel, then reading until the run
//! ends (or, in `fanout`, handing the socket to the `reader` threads):
//! counting probe events, their latency and sequence, and how the hub
//! closed it. Against a reference hub ([`HubKind`]) a client joins as that
//! hub's own clients do: nothing to subscribe to on a plain broadcast hub,
//! Engine.IO's handshake and the namespace's `40` on Socket.IO.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use nix::sys::socket::setsockopt;
use nix::sys::socket::sockopt::IpBindAddressNoPort;
use tokio::net::{TcpSocket, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

use crate::counters::{Shared, probe};
use crate::reader::Readers;
use crate::sys::wall_ns;
use crate::target::HubKind;

pub type Ws = WebSocketStream<TcpStream>;

/// Engine.IO's ping (the server's, every `pingInterval`) and the pong a
/// client must answer within `pingTimeout` or be dropped.
pub const EIO_PING: &str = "2";
pub const EIO_PONG: &str = "3";

/// Source addresses 127.0.B.C (C in 1..=254), starting at 127.0.0.2 so the
/// hub's 127.0.0.1 is not among them. Connection `i` uses address number
/// `first + i % count` (`first` > 0 gives a worker process its own range).
#[derive(Debug, Clone, Copy)]
pub struct Sources {
    count: u32,
    first: u32,
}

impl Sources {
    /// At most 254 × 256 addresses.
    pub const MAX: u32 = 254 * 256 - 1;

    /// `count` addresses from address number `first`, clamped to the
    /// `MAX` there are.
    pub fn range(first: u32, count: u32) -> Sources {
        let first = first.min(Self::MAX - 1);
        Sources {
            count: count.clamp(1, Self::MAX - first),
            first,
        }
    }

    pub fn addr(&self, i: usize) -> Ipv4Addr {
        let idx = self.first + (i as u64 % u64::from(self.count)) as u32 + 1;
        Ipv4Addr::new(127, 0, (idx / 254) as u8, (idx % 254 + 1) as u8)
    }
}

/// How every client connects and what it subscribes to.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    pub hub: SocketAddr,
    /// `ws://…/api/v1/stream`.
    pub url: String,
    pub token: Option<String>,
    pub sources: Sources,
    /// Client `i` subscribes to `{prefix}:{i % channels}`, or to `prefix`
    /// itself when `channels` is 1.
    pub prefix: String,
    pub channels: usize,
    /// For TCP connect, upgrade, `welcome` and `subscribed` together.
    pub connect_timeout: Duration,
    /// Each client's WebSocket read buffer (tungstenite clears this much
    /// per read, so small messages want a small one).
    pub read_buffer: usize,
    /// Subscribed sockets go to these readers instead of being read by
    /// their task (`fanout`).
    pub readers: Option<Arc<Readers>>,
    /// The hub's kind: how a client joins.
    pub kind: HubKind,
}

impl ClientConfig {
    pub fn channel(&self, i: usize) -> String {
        if self.channels <= 1 {
            self.prefix.clone()
        } else {
            format!("{}:{}", self.prefix, i % self.channels)
        }
    }
}

/// Small buffers: tens of thousands of these share the machine with the
/// hub. Reads need no more than one event; writes go straight out.
fn ws_config(read_buffer: usize) -> WebSocketConfig {
    WebSocketConfig::default()
        .read_buffer_size(read_buffer)
        .write_buffer_size(0)
        .max_message_size(Some(1 << 20))
        .max_frame_size(Some(1 << 20))
}

/// A failure, shortened to its kind (no addresses or ports) so that the
/// error table groups alike failures.
fn kind(stage: &str, e: impl std::fmt::Display) -> String {
    let text = e.to_string();
    let short = text.split(" (os error").next().unwrap_or(&text);
    format!("{stage}: {short}")
}

/// Connects client `i`, upgrades, and subscribes; returns the socket and
/// the channel's head sequence.
async fn open(i: usize, cfg: &ClientConfig) -> Result<(Ws, u64), String> {
    open_since(i, cfg, None)
        .await
        .map(|(ws, _, head)| (ws, head))
}

/// Where a client got to on its channel: resumed from with `since`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Position {
    pub epoch: String,
    pub seq: u64,
}

/// Connects client `i`, upgrades, and subscribes (after `since`, when
/// given: the hub replays what came after it); returns the socket, the
/// channel's epoch and the sequence the stream continues after.
pub async fn open_since(
    i: usize,
    cfg: &ClientConfig,
    since: Option<&Position>,
) -> Result<(Ws, String, u64), String> {
    let ws = upgrade(cfg, cfg.sources.addr(i)).await?;
    match cfg.kind {
        HubKind::Riskwatch => subscribe(ws, &cfg.channel(i), since).await,
        // Every client of a broadcast hub gets everything; the tool's
        // publisher numbers its probes from 1.
        HubKind::Ws => Ok((ws, String::new(), 0)),
        HubKind::Socketio => socketio_join(ws).await.map(|ws| (ws, String::new(), 0)),
    }
}

/// TCP from `source`, then the WebSocket upgrade to the hub's URL.
pub async fn upgrade(cfg: &ClientConfig, source: Ipv4Addr) -> Result<Ws, String> {
    let sock = TcpSocket::new_v4().map_err(|e| kind("socket", e))?;
    sock.set_reuseaddr(true).map_err(|e| kind("socket", e))?;
    // Pick the source port at connect time, per destination, instead of
    // at bind time, per source address.
    let _ = setsockopt(&sock, IpBindAddressNoPort, &true);
    sock.bind(SocketAddr::from((source, 0)))
        .map_err(|e| kind("bind", e))?;
    let stream = sock
        .connect(cfg.hub)
        .await
        .map_err(|e| kind("connect", e))?;
    let _ = stream.set_nodelay(true);
    let mut req = cfg
        .url
        .as_str()
        .into_client_request()
        .map_err(|e| kind("request", e))?;
    if let Some(t) = &cfg.token {
        let v = format!("Bearer {t}")
            .parse()
            .map_err(|e| kind("token", e))?;
        req.headers_mut().insert(http::header::AUTHORIZATION, v);
    }
    let (ws, _) =
        tokio_tungstenite::client_async_with_config(req, stream, Some(ws_config(cfg.read_buffer)))
            .await
            .map_err(|e| kind("upgrade", e))?;
    Ok(ws)
}

/// Socket.IO v4 over the WebSocket transport: Engine.IO's open packet
/// (`0{"sid",…}`), then `40` joins the main namespace, answered by
/// `40{"sid"}` once the server has the socket in it (so a broadcast from
/// then on reaches it) or `44{…}` when refused.
pub async fn socketio_join(mut ws: Ws) -> Result<Ws, String> {
    let mut sent_connect = false;
    loop {
        let t = next_text(&mut ws, "join").await?;
        if t.starts_with("40") {
            return Ok(ws);
        } else if t.starts_with("44") {
            return Err(format!("join: refused by the server: {t}"));
        } else if t.starts_with('0') && !sent_connect {
            ws.send(Message::text("40"))
                .await
                .map_err(|e| kind("join", e))?;
            sent_connect = true;
        } else if t == EIO_PING {
            ws.send(Message::text(EIO_PONG))
                .await
                .map_err(|e| kind("join", e))?;
        }
    }
}

/// The next text message during a handshake (`stage`), or why there is
/// none: a close frame, an error, the end of the stream.
async fn next_text(ws: &mut Ws, stage: &str) -> Result<String, String> {
    loop {
        match ws.next().await {
            Some(Ok(Message::Text(t))) => return Ok(t.as_str().to_owned()),
            Some(Ok(Message::Close(f))) => {
                return Err(format!(
                    "{stage}: closed by hub ({})",
                    f.map_or(0, |f| u16::from(f.code))
                ));
            }
            Some(Ok(_)) => {}
            Some(Err(e)) => return Err(kind(stage, e)),
            None => return Err(format!("{stage}: connection ended")),
        }
    }
}

/// The native `subscribe` (after `since`, when given); returns the socket,
/// the channel's epoch and the sequence the stream continues after.
async fn subscribe(
    mut ws: Ws,
    channel: &str,
    since: Option<&Position>,
) -> Result<(Ws, String, u64), String> {
    let mut sub = serde_json::json!({"op": "subscribe", "channel": channel});
    if let Some(p) = since {
        sub["since"] = serde_json::json!({"epoch": p.epoch, "seq": p.seq});
    }
    let sub = sub.to_string();
    ws.send(Message::text(sub))
        .await
        .map_err(|e| kind("subscribe", e))?;
    // `welcome`, then `subscribed` (the caller bounds the time).
    loop {
        let t = next_text(&mut ws, "subscribe").await?;
        let v: serde_json::Value = serde_json::from_str(&t).map_err(|e| kind("subscribe", e))?;
        match v.get("op").and_then(|o| o.as_str()) {
            Some("subscribed") => {
                let head = v.get("seq").and_then(|s| s.as_u64()).unwrap_or(0);
                let epoch = v.get("epoch").and_then(|e| e.as_str()).unwrap_or("");
                return Ok((ws, epoch.to_owned(), head));
            }
            Some("error") => return Err(format!("subscribe: hub error {}", v["code"])),
            _ => {}
        }
    }
}

/// One client: connect (holding a concurrency permit), then read until
/// the hub closes it or the run aborts the task.
async fn client(
    i: usize,
    cfg: Arc<ClientConfig>,
    shared: Arc<Shared>,
    permit: OwnedSemaphorePermit,
) {
    let opened = tokio::time::timeout(cfg.connect_timeout, open(i, &cfg)).await;
    let (mut ws, head) = match opened {
        Ok(Ok(x)) => x,
        Ok(Err(why)) => return shared.fail(why),
        Err(_) => return shared.fail("timed out (connect, upgrade or subscribe)".into()),
    };
    shared.opened.fetch_add(1, Ordering::Relaxed);
    shared.last_open_ns.fetch_max(wall_ns(), Ordering::Relaxed);
    let now = shared.held.fetch_add(1, Ordering::Relaxed) + 1;
    shared.peak.fetch_max(now, Ordering::Relaxed);
    // Counted before the permit goes back: when every permit is back,
    // `held` is final.
    drop(permit);
    if let Some(readers) = &cfg.readers {
        // Bytes tungstenite had read past `subscribed` would be lost
        // here; the hub sends nothing more until the first probe, and a
        // lost one would show as missed.
        match ws.into_inner().into_std() {
            Ok(sock) => readers.adopt(i, sock, head),
            Err(_) => {
                shared.dropped.fetch_add(1, Ordering::Relaxed);
                shared.held.fetch_sub(1, Ordering::Relaxed);
            }
        }
        return;
    }
    let mut last = head;
    loop {
        match ws.next().await {
            Some(Ok(Message::Text(t))) => {
                if t.as_str() == EIO_PING {
                    if ws.send(Message::text(EIO_PONG)).await.is_err() {
                        shared.dropped.fetch_add(1, Ordering::Relaxed);
                        break;
                    }
                    continue;
                }
                let Some(p) = probe(t.as_str()) else { continue };
                let at = wall_ns();
                if p.seq != last + 1 {
                    shared.out_of_sequence.fetch_add(1, Ordering::Relaxed);
                }
                last = p.seq;
                shared.received[i].fetch_add(1, Ordering::Relaxed);
                shared.deliveries.fetch_add(1, Ordering::Relaxed);
                shared.last_delivery_ns.fetch_max(at, Ordering::Relaxed);
                if let Some(h) = &shared.latency {
                    let us = at.saturating_sub(p.t) / 1_000;
                    h.lock()
                        .expect("histogram lock")
                        .saturating_record(us.max(1));
                    if let Some(m) = shared.probe_max_us.get(p.k as usize) {
                        m.fetch_max(us, Ordering::Relaxed);
                    }
                }
            }
            Some(Ok(Message::Close(f))) => {
                shared.closed(f.map_or(1005, |f| u16::from(f.code)));
                break;
            }
            // Pings are answered by tungstenite on the next read.
            Some(Ok(_)) => {}
            Some(Err(_)) | None => {
                shared.dropped.fetch_add(1, Ordering::Relaxed);
                break;
            }
        }
    }
    shared.held.fetch_sub(1, Ordering::Relaxed);
}

/// The outcome of the connect phase.
#[derive(Debug)]
pub struct Connected {
    /// The client tasks; dropping the set aborts them (closing sockets).
    pub tasks: JoinSet<()>,
    /// From the first connect until every attempt finished.
    pub elapsed: Duration,
    /// From the first connect until the last successful one: the connect
    /// rate's denominator (a timed-out straggler does not count).
    pub open_secs: f64,
    /// Connecting stopped early: too many failures or the deadline.
    pub stopped_early: Option<String>,
}

/// Opens `n` clients, at most `concurrency` connecting at once; stops
/// early after `max_errors` failures or at `deadline`.
pub async fn connect_all(
    n: usize,
    cfg: Arc<ClientConfig>,
    shared: Arc<Shared>,
    concurrency: usize,
    max_errors: u64,
    deadline: Instant,
) -> Connected {
    let concurrency = concurrency.max(1);
    let sem = Arc::new(Semaphore::new(concurrency));
    let mut tasks = JoinSet::new();
    let start = Instant::now();
    let start_ns = wall_ns();
    let mut next_log = start + Duration::from_secs(5);
    let mut stopped_early = None;
    for i in 0..n {
        if shared.failed.load(Ordering::Relaxed) > max_errors {
            stopped_early = Some(format!("more than {max_errors} failed connects"));
            break;
        }
        let permit = match tokio::time::timeout_at(deadline, Arc::clone(&sem).acquire_owned()).await
        {
            Ok(Ok(p)) => p,
            _ => {
                stopped_early = Some("deadline reached while connecting".into());
                break;
            }
        };
        tasks.spawn(client(i, Arc::clone(&cfg), Arc::clone(&shared), permit));
        // Reap finished (failed) clients so the set stays small.
        while tasks.try_join_next().is_some() {}
        if Instant::now() >= next_log {
            next_log += Duration::from_secs(5);
            tracing::info!(
                started = i + 1,
                held = shared.held.load(Ordering::Relaxed),
                failed = shared.failed.load(Ordering::Relaxed),
                "connecting"
            );
        }
    }
    // Every attempt in flight holds a permit: all back means all done.
    let all = u32::try_from(concurrency).unwrap_or(u32::MAX);
    if tokio::time::timeout_at(deadline, sem.acquire_many(all))
        .await
        .is_err()
        && stopped_early.is_none()
    {
        stopped_early = Some("deadline reached while connecting".into());
    }
    let last = shared.last_open_ns.load(Ordering::Relaxed);
    Connected {
        tasks,
        elapsed: start.elapsed(),
        open_secs: last.saturating_sub(start_ns) as f64 / 1e9,
        stopped_early,
    }
}

/// Polls `cond` every 10 ms until it holds or `deadline`.
pub async fn wait_until(deadline: Instant, mut cond: impl FnMut() -> bool) -> bool {
    while Instant::now() < deadline {
        if cond() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    cond()
}

/// Aborts every client (closing its socket) and waits, bounded, for the
/// tasks to go.
pub async fn close_all(mut tasks: JoinSet<()>) {
    tasks.abort_all();
    let _ = tokio::time::timeout(Duration::from_secs(30), async {
        while tasks.join_next().await.is_some() {}
    })
    .await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sources_stay_in_loopback_and_skip_the_hub() {
        let s = Sources::range(0, 600);
        assert_eq!(s.addr(0), Ipv4Addr::new(127, 0, 0, 2));
        assert_eq!(s.addr(252), Ipv4Addr::new(127, 0, 0, 254));
        assert_eq!(s.addr(253), Ipv4Addr::new(127, 0, 1, 1));
        assert_eq!(s.addr(600), s.addr(0));
        // A worker's own range, disjoint from the first one's.
        let w = Sources::range(600, 600);
        assert_eq!(s.addr(599), Ipv4Addr::new(127, 0, 2, 93));
        assert_eq!(w.addr(0), Ipv4Addr::new(127, 0, 2, 94));
        assert!((0..600).all(|i| (0..600).all(|j| w.addr(i) != s.addr(j))));
        for i in 0..2000 {
            let a = s.addr(i);
            assert!(a.is_loopback());
            assert!(a.octets()[3] != 0 && a.octets()[3] != 255);
            assert_ne!(a, Ipv4Addr::LOCALHOST);
        }
    }
}
