//! The load's clients: one task per native-protocol connection, each bound
//! to its own source address in 127.0.0.0/8 (so the ephemeral-port range,
//! ~28k per source and destination, is no limit), connected at a bounded
//! concurrency, subscribed to one channel, then reading until the run
//! ends (or, in `fanout`, handing the socket to the `reader` threads):
//! counting probe events, their latency and sequence, and how the hub
//! closed it.

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use hdrhistogram::Histogram;
use tokio::net::{TcpSocket, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

use crate::reader::Readers;
use crate::sys::wall_ns;

type Ws = WebSocketStream<TcpStream>;

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
}

impl ClientConfig {
    fn channel(&self, i: usize) -> String {
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

/// A latency histogram in µs, 1 µs to 120 s at 3 significant digits: the
/// shape every mode records and merges.
pub fn latency_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 120_000_000, 3).expect("valid histogram bounds")
}

/// Counters shared by every client of a run.
#[derive(Debug)]
pub struct Shared {
    /// Connections that reached `subscribed`.
    pub opened: AtomicU64,
    /// Wall clock (ns) of the latest successful open.
    pub last_open_ns: AtomicU64,
    /// Connections open and subscribed now.
    pub held: AtomicU64,
    pub peak: AtomicU64,
    /// Connects that failed (TCP, upgrade, or subscribe).
    pub failed: AtomicU64,
    /// Failures by kind, with a count (a few distinct messages).
    errors: Mutex<BTreeMap<String, u64>>,
    /// Subscribed connections the hub closed with a close frame, by code.
    closes: Mutex<BTreeMap<u16, u64>>,
    /// Subscribed connections that ended without a close frame.
    pub dropped: AtomicU64,
    /// Probe events received, per client.
    pub received: Box<[AtomicU64]>,
    /// Probe events received, in total.
    pub deliveries: AtomicU64,
    /// Events whose sequence was not the previous one + 1.
    pub out_of_sequence: AtomicU64,
    /// Wall clock (ns) of the latest delivery.
    pub last_delivery_ns: AtomicU64,
    /// Receive time − send time of each probe, in µs; none when latency is
    /// not recorded (throughput mode, where the lock would cost more than
    /// the measurement is worth).
    pub latency: Option<Mutex<Histogram<u64>>>,
    /// Per probe `k` (fan-out): the slowest delivery's latency in µs, i.e.
    /// when the last subscriber had it.
    pub probe_max_us: Box<[AtomicU64]>,
}

impl Shared {
    /// `probes` > 0 records latency, overall and per probe.
    pub fn new(clients: usize, probes: usize) -> Shared {
        Shared {
            opened: AtomicU64::new(0),
            last_open_ns: AtomicU64::new(0),
            held: AtomicU64::new(0),
            peak: AtomicU64::new(0),
            failed: AtomicU64::new(0),
            errors: Mutex::new(BTreeMap::new()),
            closes: Mutex::new(BTreeMap::new()),
            dropped: AtomicU64::new(0),
            received: (0..clients).map(|_| AtomicU64::new(0)).collect(),
            deliveries: AtomicU64::new(0),
            out_of_sequence: AtomicU64::new(0),
            last_delivery_ns: AtomicU64::new(0),
            latency: (probes > 0).then(|| Mutex::new(latency_histogram())),
            probe_max_us: (0..probes).map(|_| AtomicU64::new(0)).collect(),
        }
    }

    fn fail(&self, why: String) {
        self.failed.fetch_add(1, Ordering::Relaxed);
        let mut errors = self.errors.lock().expect("errors lock");
        // Keep the table small: distinct kinds only, then one bucket.
        let key = if errors.len() < 16 || errors.contains_key(&why) {
            why
        } else {
            "other".into()
        };
        *errors.entry(key).or_default() += 1;
    }

    pub fn errors(&self) -> BTreeMap<String, u64> {
        self.errors.lock().expect("errors lock").clone()
    }

    /// A subscribed connection the hub closed with `code`.
    pub fn closed(&self, code: u16) {
        *self
            .closes
            .lock()
            .expect("closes lock")
            .entry(code)
            .or_default() += 1;
    }

    pub fn closes(&self) -> BTreeMap<u16, u64> {
        self.closes.lock().expect("closes lock").clone()
    }

    /// The fewest probes any client has received.
    pub fn min_received(&self) -> u64 {
        self.received
            .iter()
            .map(|r| r.load(Ordering::Relaxed))
            .min()
            .unwrap_or(0)
    }

    /// Clients that received exactly `n` probes.
    pub fn clients_with(&self, n: u64) -> usize {
        self.received
            .iter()
            .filter(|r| r.load(Ordering::Relaxed) == n)
            .count()
    }
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
    let sock = TcpSocket::new_v4().map_err(|e| kind("socket", e))?;
    sock.set_reuseaddr(true).map_err(|e| kind("socket", e))?;
    // Pick the source port at connect time, per destination, instead of
    // at bind time, per source address.
    let one: libc::c_int = 1;
    // SAFETY: a valid socket and a c_int option of the right length.
    unsafe {
        libc::setsockopt(
            sock.as_raw_fd(),
            libc::IPPROTO_IP,
            libc::IP_BIND_ADDRESS_NO_PORT,
            (&one as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        );
    }
    sock.bind(SocketAddr::from((cfg.sources.addr(i), 0)))
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
    let (mut ws, _) =
        tokio_tungstenite::client_async_with_config(req, stream, Some(ws_config(cfg.read_buffer)))
            .await
            .map_err(|e| kind("upgrade", e))?;
    let sub = serde_json::json!({"op": "subscribe", "channel": cfg.channel(i)}).to_string();
    ws.send(Message::text(sub))
        .await
        .map_err(|e| kind("subscribe", e))?;
    // `welcome`, then `subscribed` (the caller bounds the time).
    loop {
        match ws.next().await {
            Some(Ok(Message::Text(t))) => {
                let v: serde_json::Value =
                    serde_json::from_str(t.as_str()).map_err(|e| kind("subscribe", e))?;
                match v.get("op").and_then(|o| o.as_str()) {
                    Some("subscribed") => {
                        let head = v.get("seq").and_then(|s| s.as_u64()).unwrap_or(0);
                        return Ok((ws, head));
                    }
                    Some("error") => return Err(format!("subscribe: hub error {}", v["code"])),
                    _ => {}
                }
            }
            Some(Ok(Message::Close(f))) => {
                return Err(format!(
                    "subscribe: closed by hub ({})",
                    f.map_or(0, |f| u16::from(f.code))
                ));
            }
            Some(Ok(_)) => {}
            Some(Err(e)) => return Err(kind("subscribe", e)),
            None => return Err("subscribe: connection ended".into()),
        }
    }
}

/// A probe as read from a native `event` frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Probe {
    pub seq: u64,
    /// Send time, ns since the epoch.
    pub t: u64,
    /// The probe's number.
    pub k: u64,
}

/// The probe in a native `event` frame whose data is `{"t": <ns since the
/// epoch>, "k": <number>}`. A scan, not a parse: at 10,000 subscribers the
/// tool's own work per delivery is part of the latency.
pub fn probe(text: &str) -> Option<Probe> {
    if !text.starts_with(r#"{"op":"event""#) {
        return None;
    }
    let seq = number_after(text, r#""seq":"#)?;
    let data = &text[text.find(r#""data":"#)?..];
    let t = number_after(data, r#""t":"#)?;
    let k = number_after(data, r#""k":"#).unwrap_or(0);
    Some(Probe { seq, t, k })
}

fn number_after(s: &str, key: &str) -> Option<u64> {
    let rest = &s[s.find(key)? + key.len()..];
    let end = rest
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(rest.len());
    rest[..end].parse().ok()
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
    fn probes_are_read_from_native_events() {
        let ev = r#"{"op":"event","channel":"fanout","seq":42,"type":"load_probe","severity":"info","ts":"2026-03-01T12:00:00.000Z","data":{"t":1772366400123456789,"k":3}}"#;
        assert_eq!(
            probe(ev),
            Some(Probe {
                seq: 42,
                t: 1772366400123456789,
                k: 3
            })
        );
        assert_eq!(probe(r#"{"op":"pong"}"#), None);
        assert_eq!(probe(r#"{"op":"event","seq":1,"data":{"x":1}}"#), None);
    }

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
