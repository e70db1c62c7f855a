//! How a run publishes its probes: through riskwatch's `POST
//! /api/v1/publish` (a batch in one request), or, to a reference hub of
//! the side-by-side benchmark, as one more WebSocket client whose every
//! text message the hub passes on to the others. Those probes are native
//! `event` messages with the sequence this tool assigns, the same bytes
//! riskwatch's hub sends for the same probe (a test holds the two
//! together), so every hub carries the same payload to its subscribers.

use std::net::Ipv4Addr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use futures_util::stream::SplitSink;
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::sync::Mutex;
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::Message;

use crate::client::{self, ClientConfig, EIO_PING, EIO_PONG, Ws};
use crate::counters::SOCKETIO_EVENT;
use crate::target::{HubKind, Target};

type Sink = Arc<Mutex<SplitSink<Ws, Message>>>;

/// How long a plain broadcast hub is given to add the last subscribers.
const SETTLE: Duration = Duration::from_secs(1);

pub enum Publisher<'a> {
    /// riskwatch: `POST /api/v1/publish`.
    Http { hub: &'a Target, channel: String },
    /// A reference hub: a WebSocket client of its own. A task reads what
    /// the hub sends it (Engine.IO's pings, answered; anything else,
    /// dropped).
    Ws {
        kind: HubKind,
        channel: String,
        sink: Sink,
        reader: JoinHandle<()>,
    },
}

impl<'a> Publisher<'a> {
    /// Ready to publish on `channel` (riskwatch) or to every other client
    /// (a reference hub, joined as its clients join). Call it once the
    /// subscribers are in: a plain broadcast hub adds a client to its set
    /// in its handler, which may run after the upgrade's answer (Python's
    /// `websockets` and FastAPI do), so on `--hub-kind ws` this waits a
    /// second more to let the last ones in; riskwatch has answered
    /// `subscribed`, and Socket.IO `40`, once a client is in.
    pub async fn open(
        hub: &'a Target,
        cfg: &ClientConfig,
        channel: &str,
    ) -> anyhow::Result<Publisher<'a>> {
        let channel = channel.to_owned();
        if hub.kind == HubKind::Riskwatch {
            return Ok(Publisher::Http { hub, channel });
        }
        let join = async {
            let ws = client::upgrade(cfg, Ipv4Addr::LOCALHOST).await?;
            match hub.kind {
                HubKind::Socketio => client::socketio_join(ws).await,
                _ => Ok(ws),
            }
        };
        let ws = tokio::time::timeout(cfg.connect_timeout, join)
            .await
            .context("the publisher's connection timed out")?
            .map_err(|e| anyhow::anyhow!("the publisher's connection: {e}"))?;
        let (sink, mut stream) = ws.split();
        let sink: Sink = Arc::new(Mutex::new(sink));
        let pongs = Arc::clone(&sink);
        let reader = tokio::spawn(async move {
            while let Some(Ok(m)) = stream.next().await {
                if let Message::Text(t) = m
                    && t.as_str() == EIO_PING
                    && pongs
                        .lock()
                        .await
                        .send(Message::text(EIO_PONG))
                        .await
                        .is_err()
                {
                    break;
                }
            }
        });
        if hub.kind == HubKind::Ws {
            tokio::time::sleep(SETTLE).await;
        }
        Ok(Publisher::Ws {
            kind: hub.kind,
            channel,
            sink,
            reader,
        })
    }

    /// Publishes probes `from .. from + n`, each carrying send time `t`
    /// (ns since the epoch): one request to riskwatch, `n` messages
    /// written together to a reference hub.
    pub async fn probes(&self, from: u64, n: u64, t: u64) -> anyhow::Result<()> {
        match self {
            Publisher::Http { hub, channel } => {
                let probe = |k: u64| {
                    json!({"channel": channel, "type": "load_probe", "severity": "info",
                           "data": {"t": t, "k": k}})
                };
                let body = if n == 1 {
                    probe(from)
                } else {
                    Value::Array((from..from + n).map(probe).collect())
                };
                hub.publish(&body).await
            }
            Publisher::Ws {
                kind,
                channel,
                sink,
                ..
            } => {
                let ts = chrono::Utc::now()
                    .format("%Y-%m-%dT%H:%M:%S%.3fZ")
                    .to_string();
                let mut sink = sink.lock().await;
                for k in from..from + n {
                    let ev = native_event(channel, k + 1, &ts, t, k);
                    let text = match kind {
                        HubKind::Socketio => format!("{SOCKETIO_EVENT}{ev}]"),
                        _ => ev,
                    };
                    sink.feed(Message::text(text))
                        .await
                        .context("the publisher's connection")?;
                }
                sink.flush().await.context("the publisher's connection")
            }
        }
    }
}

impl Drop for Publisher<'_> {
    fn drop(&mut self) {
        if let Publisher::Ws { reader, .. } = self {
            reader.abort();
        }
    }
}

/// Probe `k` as riskwatch's hub sends it on the native endpoint, with
/// sequence `seq`.
pub fn native_event(channel: &str, seq: u64, ts: &str, t: u64, k: u64) -> String {
    let channel = Value::from(channel);
    format!(
        r#"{{"op":"event","channel":{channel},"seq":{seq},"type":"load_probe","severity":"info","ts":"{ts}","data":{{"t":{t},"k":{k}}}}}"#
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::counters::{Probe, probe};

    #[test]
    fn reference_hubs_carry_the_bytes_riskwatch_sends() {
        let data = r#"{"t":1772366400123456789,"k":3}"#;
        let raw = serde_json::value::RawValue::from_string(data.into()).unwrap();
        let ts = "2026-03-01T12:00:00.123Z";
        let hub = riskwatch::protocol::native::encode(&riskwatch::protocol::Outgoing {
            channel: "load-fanout-7",
            seq: 4,
            kind: "load_probe",
            severity: riskwatch::protocol::Severity::Info,
            ts,
            id: None,
            data: &raw,
        });
        let ours = native_event("load-fanout-7", 4, ts, 1772366400123456789, 3);
        assert_eq!(ours, hub);
        let p = Probe {
            seq: 4,
            t: 1772366400123456789,
            k: 3,
        };
        assert_eq!(probe(&ours), Some(p));
        assert_eq!(probe(&format!("{SOCKETIO_EVENT}{ours}]")), Some(p));
    }
}
