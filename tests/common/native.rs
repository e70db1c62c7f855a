//! A minimal native-protocol hub for one channel, following
//! `src/protocol/native.rs`: `welcome` first; `subscribe` answered with
//! `{"op":"subscribed","channel","epoch","seq":head}`; a `since` position
//! replays everything after it from an in-memory history, or announces a
//! `gap` (with `requested`, `oldest`, `epoch`) when the position is older
//! than the history or from another epoch; `{"op":"ping"}` gets
//! `{"op":"pong"}`. It can drop connections abruptly every N events, kick
//! every connection, trim history, change epoch and skip sequences.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::stream::SplitSink;
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};
use tokio::task::AbortHandle;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;

use super::ms;

/// The channel every native test uses.
pub const CHANNEL: &str = "risk:desk-1";

/// The event the hub publishes with sequence `seq`.
pub fn event_json(channel: &str, seq: u64) -> String {
    let severity = if seq % 500 == 0 { "critical" } else { "info" };
    json!({
        "op": "event",
        "channel": channel,
        "seq": seq,
        "type": "risk_update",
        "severity": severity,
        "ts": "2026-03-01T12:00:00Z",
        "id": format!("ev-{seq}"),
        "data": {"n": seq, "text": format!("msg-{seq}")},
    })
    .to_string()
}

/// The retained history of the one channel.
#[derive(Debug)]
pub struct History {
    pub epoch: String,
    /// Latest sequence published.
    pub head: u64,
    pub events: VecDeque<(u64, String)>,
    /// Bumped by [`NativeServer::kick`]: connections from an older
    /// generation drop.
    generation: u64,
}

impl History {
    /// The oldest sequence still retained (`head + 1` when empty).
    pub fn oldest(&self) -> u64 {
        self.events.front().map_or(self.head + 1, |(s, _)| *s)
    }
    /// Publishes `n` events after the head.
    pub fn publish(&mut self, n: u64) {
        for _ in 0..n {
            self.head += 1;
            let seq = self.head;
            self.events.push_back((seq, event_json(CHANNEL, seq)));
        }
    }
    /// Advances the head by one without retaining that event, as if it had
    /// been lost on the way (a hole the client must notice itself).
    pub fn skip_one(&mut self) {
        self.head += 1;
    }
    /// Forgets everything before `oldest`.
    pub fn trim_before(&mut self, oldest: u64) {
        while self.events.front().is_some_and(|(s, _)| *s < oldest) {
            self.events.pop_front();
        }
    }
    /// A new epoch: history is lost and sequences restart at 1.
    pub fn new_epoch(&mut self, epoch: &str) {
        self.epoch = epoch.to_owned();
        self.head = 0;
        self.events.clear();
    }
}

struct Shared {
    hist: Mutex<History>,
    wake: watch::Sender<u64>,
    /// Events per connection before it is dropped abruptly; 0 = never.
    drop_after: AtomicUsize,
    /// Pause between the last event and a drop_after reset, in ms.
    drop_pause_ms: AtomicU64,
    /// Already-delivered events to replay again on resume (a sloppy hub).
    overlap: AtomicU64,
    connections: AtomicUsize,
    subscribes: Mutex<Vec<Value>>,
    subscribed_sent: AtomicUsize,
    app_pings: AtomicUsize,
}

/// A native-protocol hub on 127.0.0.1:0 serving [`CHANNEL`].
pub struct NativeServer {
    addr: std::net::SocketAddr,
    shared: Arc<Shared>,
    accept: AbortHandle,
}

impl Drop for NativeServer {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

impl NativeServer {
    pub async fn start(epoch: &str) -> NativeServer {
        let listener = TcpListener::bind(("127.0.0.1", 0)).await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let shared = Arc::new(Shared {
            hist: Mutex::new(History {
                epoch: epoch.to_owned(),
                head: 0,
                events: VecDeque::new(),
                generation: 0,
            }),
            wake: watch::channel(0).0,
            drop_after: AtomicUsize::new(0),
            drop_pause_ms: AtomicU64::new(0),
            overlap: AtomicU64::new(0),
            connections: AtomicUsize::new(0),
            subscribes: Mutex::new(Vec::new()),
            subscribed_sent: AtomicUsize::new(0),
            app_pings: AtomicUsize::new(0),
        });
        let sh = Arc::clone(&shared);
        let accept = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    tokio::time::sleep(ms(10)).await;
                    continue;
                };
                tokio::spawn(connection(stream, Arc::clone(&sh)));
            }
        })
        .abort_handle();
        NativeServer {
            addr,
            shared,
            accept,
        }
    }

    pub fn url(&self) -> String {
        format!("ws://{}{}", self.addr, riskwatch::protocol::native::PATH)
    }
    pub fn set_drop_after(&self, n: usize) {
        self.shared.drop_after.store(n, Ordering::SeqCst);
    }
    /// Waits this long (reading nothing) before a drop_after reset. With no
    /// pause the reset usually destroys the last events still unread in
    /// the client's receive buffer, which resume must then recover.
    pub fn set_drop_pause(&self, d: Duration) {
        self.shared
            .drop_pause_ms
            .store(d.as_millis() as u64, Ordering::SeqCst);
    }
    pub fn set_overlap(&self, n: u64) {
        self.shared.overlap.store(n, Ordering::SeqCst);
    }
    /// Changes the history under its lock and wakes every connection.
    pub fn with_history<R>(&self, f: impl FnOnce(&mut History) -> R) -> R {
        let r = {
            let mut h = self.shared.hist.lock().unwrap();
            f(&mut h)
        };
        self.shared.wake.send_modify(|v| *v += 1);
        r
    }
    pub fn publish(&self, n: u64) {
        self.with_history(|h| h.publish(n));
    }
    /// Drops every current connection abruptly, applying `f` to the history
    /// atomically with the kick (so no connection sends the changes).
    pub fn kick(&self, f: impl FnOnce(&mut History)) {
        self.with_history(|h| {
            h.generation += 1;
            f(h)
        });
    }
    pub fn connections(&self) -> usize {
        self.shared.connections.load(Ordering::SeqCst)
    }
    /// Every subscribe message received, in order.
    pub fn subscribes(&self) -> Vec<Value> {
        self.shared.subscribes.lock().unwrap().clone()
    }
    pub fn subscribed_sent(&self) -> usize {
        self.shared.subscribed_sent.load(Ordering::SeqCst)
    }
    pub fn app_pings(&self) -> usize {
        self.shared.app_pings.load(Ordering::SeqCst)
    }
}

async fn connection(stream: TcpStream, sh: Arc<Shared>) {
    let Ok(Ok(ws)) = tokio::time::timeout(
        Duration::from_secs(3),
        tokio_tungstenite::accept_async(stream),
    )
    .await
    else {
        return;
    };
    let _ = ws.get_ref().set_zero_linger();
    sh.connections.fetch_add(1, Ordering::SeqCst);
    let generation = sh.hist.lock().unwrap().generation;
    let (mut sink, mut stream) = ws.split();
    let (in_tx, mut in_rx) = mpsc::unbounded_channel::<Message>();
    let reader = tokio::spawn(async move {
        while let Some(Ok(m)) = stream.next().await {
            if in_tx.send(m).is_err() {
                break;
            }
        }
    });
    let mut wake = sh.wake.subscribe();
    let welcome = json!({"op": "welcome", "version": 1, "heartbeat": 30}).to_string();
    if sink.send(Message::text(welcome)).await.is_err() {
        return;
    }
    // Next sequence to send; None until subscribed.
    let mut cursor: Option<u64> = None;
    let mut sent = 0usize;
    // Every end of a connection here is abrupt: the socket was set to
    // linger 0, so dropping both halves resets it (no close frame, no FIN).
    let drop_abruptly = |sink: SplitSink<WebSocketStream<TcpStream>, Message>,
                         reader: tokio::task::JoinHandle<()>| {
        reader.abort();
        drop(sink);
    };
    loop {
        // Handle whatever the client sent.
        while let Ok(m) = in_rx.try_recv() {
            match m {
                Message::Text(t) => {
                    let replies = on_text(t.as_str(), &sh, &mut cursor);
                    for r in replies {
                        if sink.send(Message::text(r)).await.is_err() {
                            return;
                        }
                    }
                }
                Message::Close(_) => return,
                _ => {}
            }
        }
        // Send what is pending, a batch at a time.
        let batch: Option<Vec<(u64, String)>> = {
            let h = sh.hist.lock().unwrap();
            if h.generation != generation {
                None
            } else {
                Some(match cursor {
                    Some(c) => h
                        .events
                        .iter()
                        .filter(|(s, _)| *s >= c)
                        .take(64)
                        .cloned()
                        .collect(),
                    None => Vec::new(),
                })
            }
        };
        let Some(batch) = batch else {
            drop_abruptly(sink, reader);
            return;
        };
        if !batch.is_empty() {
            let limit = sh.drop_after.load(Ordering::SeqCst);
            for (seq, text) in batch {
                if sink.feed(Message::text(text)).await.is_err() {
                    return;
                }
                cursor = Some(seq + 1);
                sent += 1;
                if limit > 0 && sent >= limit {
                    let _ = sink.flush().await;
                    let pause = sh.drop_pause_ms.load(Ordering::SeqCst);
                    if pause > 0 {
                        tokio::time::sleep(ms(pause)).await;
                    }
                    drop_abruptly(sink, reader);
                    return;
                }
            }
            if sink.flush().await.is_err() {
                return;
            }
            tokio::task::yield_now().await;
            continue;
        }
        tokio::select! {
            m = in_rx.recv() => match m {
                None => return,
                Some(Message::Close(_)) => return,
                Some(Message::Text(t)) => {
                    let replies = on_text(t.as_str(), &sh, &mut cursor);
                    for r in replies {
                        if sink.send(Message::text(r)).await.is_err() {
                            return;
                        }
                    }
                }
                Some(_) => {}
            },
            r = wake.changed() => if r.is_err() { return },
            _ = tokio::time::sleep(Duration::from_secs(5)) => {}
        }
    }
}

/// Handles one client text message; returns the replies.
fn on_text(text: &str, sh: &Shared, cursor: &mut Option<u64>) -> Vec<String> {
    let Ok(v) = serde_json::from_str::<Value>(text) else {
        return vec![json!({"op":"error","code":"bad_request","message":"not JSON"}).to_string()];
    };
    match v["op"].as_str() {
        Some("ping") => {
            sh.app_pings.fetch_add(1, Ordering::SeqCst);
            vec![json!({"op": "pong"}).to_string()]
        }
        Some("subscribe") => {
            sh.subscribes.lock().unwrap().push(v.clone());
            let channel = v["channel"].as_str().unwrap_or_default();
            if channel != CHANNEL {
                return vec![
                    json!({"op":"error","code":"forbidden","message":"unknown channel"})
                        .to_string(),
                ];
            }
            let h = sh.hist.lock().unwrap();
            let oldest = h.oldest();
            let mut out = vec![
                json!({"op":"subscribed","channel":CHANNEL,"epoch":h.epoch,"seq":h.head})
                    .to_string(),
            ];
            sh.subscribed_sent.fetch_add(1, Ordering::SeqCst);
            let since = v.get("since").filter(|s| s.is_object());
            match since {
                None => *cursor = Some(h.head + 1),
                Some(s) => {
                    let seq = s["seq"].as_u64().unwrap_or(0);
                    let same_epoch = s["epoch"].as_str() == Some(h.epoch.as_str());
                    if !same_epoch || seq + 1 < oldest {
                        out.push(
                            json!({"op":"gap","channel":CHANNEL,"requested":seq,"oldest":oldest,"epoch":h.epoch})
                                .to_string(),
                        );
                        *cursor = Some(oldest);
                    } else {
                        let overlap = sh.overlap.load(Ordering::SeqCst);
                        *cursor = Some((seq + 1).saturating_sub(overlap).max(oldest).max(1));
                    }
                }
            }
            out
        }
        Some("unsubscribe") => {
            *cursor = None;
            vec![json!({"op":"unsubscribed","channel":v["channel"]}).to_string()]
        }
        _ => vec![json!({"op":"error","code":"bad_request","message":"unknown op"}).to_string()],
    }
}
