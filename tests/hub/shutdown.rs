//! `riskwatch serve` stops the same graceful way on SIGTERM (systemd,
//! containers) as on Ctrl-C: every connection gets close 1001, history is
//! flushed, and a restarted hub resumes the client without loss.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

use super::support::*;

fn serve(port: u16, dir: &std::path::Path) -> std::process::Child {
    let dir = dir.to_str().unwrap();
    spawn_hub(port, &["--insecure-dev", "--data-dir", dir])
}

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// Connects to the native endpoint, retrying while the hub starts (10 s).
async fn connect(port: u16) -> Ws {
    let url = format!("ws://127.0.0.1:{port}/api/v1/stream");
    for _ in 0..200 {
        if let Ok((ws, _)) = tokio_tungstenite::connect_async(url.as_str()).await {
            return ws;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the hub did not start on {port}");
}

/// The next text message with this `op` (10 s at most).
async fn next_op<S>(ws: &mut S, op: &str) -> Value
where
    S: futures_util::Stream<Item = Result<Message, tokio_tungstenite::tungstenite::Error>> + Unpin,
{
    tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            match ws.next().await {
                Some(Ok(Message::Text(t))) => {
                    let v: Value = serde_json::from_str(&t).unwrap();
                    if v["op"] == op {
                        return v;
                    }
                }
                Some(Ok(_)) => {}
                other => panic!("connection ended waiting for {op}: {other:?}"),
            }
        }
    })
    .await
    .unwrap_or_else(|_| panic!("no {op} within 10 s"))
}

/// A `--data-dir` hub on a free port with a native connection subscribed
/// to `sessions:demo`: (port, hub process, connection, epoch).
async fn subscribed_hub(dir: &std::path::Path) -> (u16, std::process::Child, Ws, String) {
    let port = bind(0).local_addr().unwrap().port();
    let hub = serve(port, dir);
    let mut ws = connect(port).await;
    ws.send(Message::text(
        r#"{"op":"subscribe","channel":"sessions:demo"}"#,
    ))
    .await
    .unwrap();
    let epoch = next_op(&mut ws, "subscribed").await["epoch"]
        .as_str()
        .unwrap()
        .to_owned();
    (port, hub, ws, epoch)
}

/// A new connection resuming `sessions:demo` from its start in `epoch`.
async fn resume_from_start(port: u16, epoch: &str) -> Ws {
    let mut ws = connect(port).await;
    ws.send(Message::text(
        json!({"op":"subscribe","channel":"sessions:demo","since":{"seq":0,"epoch":epoch}})
            .to_string(),
    ))
    .await
    .unwrap();
    ws
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_closes_with_1001_flushes_history_and_exits_0() {
    let dir = tempfile::tempdir().unwrap();
    let (port, mut hub, mut ws, epoch) = subscribed_hub(dir.path()).await;
    let published = http_client()
        .post(format!("http://127.0.0.1:{port}/api/v1/publish"))
        .json(
            &json!({"channel": "sessions:demo", "type": "session_status",
            "severity": "emergency", "data": {"sessionId": "S1", "status": "emergency_stopped"}}),
        )
        .send()
        .await
        .unwrap();
    assert!(published.status().is_success(), "{published:?}");
    assert_eq!(next_op(&mut ws, "event").await["seq"], 1);

    kill("TERM", hub.id());
    let close = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            match ws.next().await {
                Some(Ok(Message::Close(f))) => return f.map(|f| u16::from(f.code)),
                Some(Ok(_)) => {}
                other => panic!("no close frame, the connection ended with {other:?}"),
            }
        }
    })
    .await
    .expect("a close frame within 10 s");
    assert_eq!(close, Some(1001), "going away, as on Ctrl-C");
    let status = tokio::task::spawn_blocking(move || {
        for _ in 0..200 {
            if let Some(s) = hub.try_wait().unwrap() {
                return Some(s);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = hub.kill();
        None
    })
    .await
    .unwrap()
    .expect("the hub exits within 10 s of SIGTERM");
    assert!(status.success(), "{status:?}");

    // Restarted: same epoch, and the emergency is still there to resume.
    let mut again = serve(port, dir.path());
    let mut ws = resume_from_start(port, &epoch).await;
    let sub = next_op(&mut ws, "subscribed").await;
    assert_eq!(sub["epoch"], epoch.as_str());
    let ev = next_op(&mut ws, "event").await;
    assert_eq!(
        (ev["seq"].as_u64(), ev["severity"].as_str()),
        (Some(1), Some("emergency"))
    );
    let _ = again.kill();
    let _ = again.wait();
}

/// `kill -9` of a `--data-dir` hub loses nothing it acknowledged: every
/// published event (answered 200) is resumed after the restart, exactly
/// once, in order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_loses_nothing_that_was_acknowledged() {
    let dir = tempfile::tempdir().unwrap();
    let (port, mut hub, ws, epoch) = subscribed_hub(dir.path()).await;
    drop(ws);
    let http = http_client();
    for i in 1..=300u64 {
        let severity = if i % 50 == 0 { "emergency" } else { "info" };
        let r = http
            .post(format!("http://127.0.0.1:{port}/api/v1/publish"))
            .json(
                &json!({"channel": "sessions:demo", "type": "tick", "severity": severity,
                "data": {"i": i}}),
            )
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success());
    }
    kill("KILL", hub.id());
    let _ = hub.wait();

    let mut again = serve(port, dir.path());
    let mut ws = resume_from_start(port, &epoch).await;
    assert_eq!(
        next_op(&mut ws, "subscribed").await["epoch"],
        epoch.as_str()
    );
    for i in 1..=300u64 {
        let ev = next_op(&mut ws, "event").await;
        assert_eq!(
            (ev["seq"].as_u64(), ev["data"]["i"].as_u64()),
            (Some(i), Some(i))
        );
    }
    let _ = again.kill();
    let _ = again.wait();
}

/// Dropping a `Client` closes its connection at once, with a close frame,
/// rather than whenever its next update would have found nobody reading.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_a_client_closes_its_connection_at_once() {
    let hub = dev_hub().await;
    let h = std::sync::Arc::clone(hub.hub());
    let c = riskwatch::client::Client::connect(
        fast(url(hub.addr(), "/api/v1/stream")).subscribe("quiet"),
    )
    .unwrap();
    subscriptions(&h, 1).await;
    drop(c);
    assert!(
        until(std::time::Duration::from_secs(3), || h
            .stats()
            .total_connections
            == 0)
        .await,
        "the hub still holds the dropped client's connection"
    );
    hub.shutdown().await;
}
