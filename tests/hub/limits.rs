//! Per-connection limits: the inbound rate limit (error, then 4429), the
//! inbound size limit (1009), and the slow consumer that is closed with 1013
//! without delaying anyone else.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use riskwatch::client::Client;
use riskwatch::server::{Auth, HubLimits, Limits, NewEvent, ServerConfig};
use serde_json::json;
use tokio_tungstenite::tungstenite::Message;

use super::support::*;

type Raw =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn raw(addr: std::net::SocketAddr, path: &str) -> Raw {
    let (ws, _) = tokio_tungstenite::connect_async(url(addr, path))
        .await
        .unwrap();
    ws
}

/// Reads until a close frame; returns its code, or None if the stream ended
/// without one.
async fn close_code(ws: &mut Raw, within: Duration) -> (Option<u16>, Vec<String>) {
    let mut texts = Vec::new();
    let r = tokio::time::timeout(within, async {
        while let Some(m) = ws.next().await {
            match m {
                Ok(Message::Close(f)) => return f.map(|f| u16::from(f.code)),
                Ok(Message::Text(t)) => texts.push(t.to_string()),
                Ok(_) => {}
                Err(_) => return None,
            }
        }
        None
    })
    .await
    .expect("the hub should close the connection");
    (r, texts)
}

/// A flood of `frame`s on a hub allowing 5/s (burst 10): an error, then
/// close 4429 (rate limited: reconnect later), never 1008 (which would stop
/// a client for good).
async fn flood(frame: Message) -> (Option<u16>, Vec<String>) {
    let hub = hub(ServerConfig::new(Auth::Insecure).limits(Limits::default().rate(5, 10))).await;
    let mut ws = raw(hub.addr(), "/api/v1/stream").await;
    for _ in 0..50 {
        if ws.send(frame.clone()).await.is_err() {
            break;
        }
    }
    let got = close_code(&mut ws, Duration::from_secs(5)).await;
    assert!(hub.hub().stats().rate_limited >= 1);
    hub.shutdown().await;
    got
}

#[tokio::test]
async fn flooding_gets_an_error_then_close_4429() {
    let (code, texts) = flood(Message::text(r#"{"op":"ping"}"#)).await;
    assert_eq!(code, Some(4429));
    assert!(
        texts.iter().any(|t| t.contains(r#""code":"rate_limited""#)),
        "{texts:?}"
    );
}

#[tokio::test]
async fn pings_and_binary_frames_count_against_the_rate_limit() {
    assert_eq!(
        flood(Message::Ping(vec![1, 2, 3].into())).await.0,
        Some(4429)
    );
    assert_eq!(
        flood(Message::Binary(vec![1, 2, 3].into())).await.0,
        Some(4429)
    );
}

#[tokio::test]
async fn oversized_inbound_messages_close_with_1009() {
    let hub = hub(ServerConfig::new(Auth::Insecure)).await;
    let mut ws = raw(hub.addr(), "/api/v1/stream").await;
    let big = format!(r#"{{"op":"ping","pad":"{}"}}"#, "x".repeat(70 * 1024));
    let _ = ws.send(Message::text(big)).await;
    let (code, _) = close_code(&mut ws, Duration::from_secs(5)).await;
    assert_eq!(code, Some(1009));
    assert_eq!(hub.hub().stats().oversized, 1);
    // Just under the limit is fine.
    let mut ok = raw(hub.addr(), "/api/v1/stream").await;
    let fits = format!(r#"{{"op":"ping","pad":"{}"}}"#, "x".repeat(60 * 1024));
    ok.send(Message::text(fits)).await.unwrap();
    let pong = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            if let Some(Ok(Message::Text(t))) = ok.next().await
                && t.contains("pong")
            {
                return true;
            }
        }
    })
    .await;
    assert_eq!(pong, Ok(true));
    hub.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_reader_is_closed_with_1013_and_does_not_slow_the_others() {
    const N: u64 = 4_000;
    let hub = hub(ServerConfig::new(Auth::Insecure)
        .limits(Limits::default().send_queue(256))
        .history(HubLimits::default().history_len(10_000)))
    .await;
    // The stalled one subscribes, then never reads again.
    let mut stalled = raw(hub.addr(), "/api/v1/stream").await;
    stalled
        .send(Message::text(r#"{"op":"subscribe","channel":"s"}"#))
        .await
        .unwrap();
    let mut fast_client =
        Client::connect(fast(url(hub.addr(), "/api/v1/stream")).subscribe("s")).unwrap();
    let h = std::sync::Arc::clone(hub.hub());
    assert!(
        until(Duration::from_secs(5), || h
            .stats()
            .connections_by_channel
            .get("s")
            == Some(&2))
        .await
    );

    let pad = "p".repeat(4096);
    let started = std::time::Instant::now();
    let publisher = {
        let h = std::sync::Arc::clone(&h);
        tokio::spawn(async move {
            for i in 1..=N {
                let ev: NewEvent = serde_json::from_value(
                    json!({"channel": "s", "type": "tick", "data": {"i": i, "pad": pad}}),
                )
                .unwrap();
                h.publish(ev).await.unwrap();
                // A rate a healthy reader keeps up with.
                if i % 20 == 0 {
                    tokio::time::sleep(Duration::from_millis(1)).await;
                }
            }
        })
    };
    for i in 1..=N {
        let e = next_event(&mut fast_client, Duration::from_secs(20))
            .await
            .unwrap_or_else(|| panic!("the fast client stalled at {i}"));
        assert_eq!(e.seq, Some(i));
    }
    publisher.await.unwrap();
    let elapsed = started.elapsed();
    assert_eq!(
        fast_client.stats().connects,
        1,
        "the fast client was never dropped"
    );
    assert!(h.stats().dropped_slow_consumers >= 1);
    // Now drain the stalled socket: after what was in flight comes 1013.
    let (code, _) = close_code(&mut stalled, Duration::from_secs(30)).await;
    assert_eq!(code, Some(1013));
    assert_eq!(h.metrics.slow_closes.get(), 1, "counted for /metrics");
    eprintln!("fast client received {N} events of 4 KiB in {elapsed:?} beside a stalled reader");
    hub.shutdown().await;
}

#[tokio::test]
async fn shutdown_closes_every_client_with_1001() {
    let hub = dev_hub().await;
    let mut a = raw(hub.addr(), "/api/v1/stream").await;
    let mut b = raw(hub.addr(), "/ws").await;
    let h = std::sync::Arc::clone(hub.hub());
    assert!(until(Duration::from_secs(5), || h.stats().total_connections == 2).await);
    hub.shutdown().await;
    assert_eq!(
        close_code(&mut a, Duration::from_secs(5)).await.0,
        Some(1001)
    );
    assert_eq!(
        close_code(&mut b, Duration::from_secs(5)).await.0,
        Some(1001)
    );
}

/// A desk watching 45 channels at the hub's default rate limit (burst 40):
/// the client paces its subscriptions, is never closed for flooding, and
/// gets the 45th channel's emergency stop.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_with_45_channels_is_not_rate_limited_and_misses_nothing() {
    let hub = hub(ServerConfig::new(Auth::Insecure)).await;
    let mut cfg = fast(url(hub.addr(), "/api/v1/stream"));
    for i in 1..=45 {
        cfg = cfg.subscribe(format!("sessions:S{i}"));
    }
    let mut c = Client::connect(cfg).unwrap();
    let h = std::sync::Arc::clone(hub.hub());
    assert!(
        until(Duration::from_secs(10), || h
            .stats()
            .connections_by_channel
            .len()
            == 45)
        .await,
        "every channel subscribed: {:?}",
        h.stats().connections_by_channel.len()
    );
    let stop: NewEvent = serde_json::from_value(json!({"channel": "sessions:S45",
        "type": "session_status", "severity": "emergency",
        "data": {"sessionId": "S45", "status": "emergency_stopped"}}))
    .unwrap();
    h.publish(stop).await.unwrap();
    let e = next_event(&mut c, Duration::from_secs(5))
        .await
        .expect("the emergency stop arrives");
    assert_eq!(e.channel.as_deref(), Some("sessions:S45"));
    let stats = h.stats();
    assert_eq!((stats.rate_limited, stats.total_connections), (0, 1));
    assert_eq!(c.stats().connects, 1, "never closed");
    hub.shutdown().await;
}

/// A resuming reader that stops reading: its replay cannot be written, the
/// write makes no progress for two heartbeats, and the hub drops the
/// connection (freeing what it held) instead of holding it forever.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resuming_reader_that_stops_reading_is_dropped() {
    let hub = hub(ServerConfig::new(Auth::Insecure)
        .history(HubLimits::default().history_len(20_000))
        .limits(Limits::default().heartbeat(Duration::from_secs(1))))
    .await;
    let pad = "x".repeat(1_000);
    for i in 0..5_000u64 {
        let ev: NewEvent = serde_json::from_value(
            json!({"channel": "t", "type": "tick", "data": {"i": i, "pad": pad}}),
        )
        .unwrap();
        hub.hub().publish(ev).await.unwrap();
    }
    // A small receive window, and nothing read after the upgrade.
    let sock = tokio::net::TcpSocket::new_v4().unwrap();
    sock.set_recv_buffer_size(4096).unwrap();
    let tcp = sock.connect(hub.addr()).await.unwrap();
    let (mut ws, _) = tokio_tungstenite::client_async(url(hub.addr(), "/api/v1/stream"), tcp)
        .await
        .unwrap();
    ws.send(Message::text(
        r#"{"op":"subscribe","channel":"t","since":{"seq":0,"epoch":"gone"}}"#,
    ))
    .await
    .unwrap();
    let h = std::sync::Arc::clone(hub.hub());
    assert!(until(Duration::from_secs(2), || h.stats().total_connections == 1).await);
    assert!(
        until(Duration::from_secs(15), || h.stats().total_connections == 0).await,
        "the stalled reader is still held"
    );
    assert_eq!(h.metrics.stalled_closes.get(), 1, "counted for /metrics");
    drop(ws);
    hub.shutdown().await;
}

/// The publish API: a `type` or `id` beyond its limit is refused, and a
/// batch with one bad item publishes none of it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_fields_are_refused_and_a_bad_batch_publishes_nothing() {
    let hub = hub(ServerConfig::new(Auth::Insecure)).await;
    let api = format!("http://{}/api/v1/publish", hub.addr());
    let http = http_client();
    let post = |body: serde_json::Value| {
        let (http, api) = (http.clone(), api.clone());
        async move { http.post(api).json(&body).send().await.unwrap() }
    };
    let long_type = "t".repeat(1_500_000);
    let r = post(json!({"channel": "c", "type": long_type, "data": {}})).await;
    assert_eq!(r.status().as_u16(), 400);
    assert!(r.text().await.unwrap().contains("type is too long"));
    let r = post(json!({"channel": "c", "type": "t", "id": "i".repeat(300), "data": {}})).await;
    assert_eq!(r.status().as_u16(), 400);

    let good = |i: u64| json!({"channel": "c", "type": "tick", "data": {"i": i}});
    let mut batch: Vec<serde_json::Value> = (1..=5).map(good).collect();
    batch.push(json!({"channel": "c", "type": "", "data": {}}));
    let r = post(serde_json::Value::Array(batch)).await;
    assert_eq!(r.status().as_u16(), 400);
    assert!(r.text().await.unwrap().contains("event 5"));
    assert_eq!(hub.hub().stats().messages_published, 0, "none of the batch");
    let r = post(serde_json::Value::Array((1..=5).map(good).collect())).await;
    assert!(r.status().is_success());
    assert_eq!(hub.hub().stats().messages_published, 5);
    hub.shutdown().await;
}

/// Starts a publish whose body never finishes (1,000 of 2,000,000 bytes)
/// and returns the start of the hub's answer (15 s at most).
async fn stalled_publish(addr: std::net::SocketAddr, token: Option<String>) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let auth = token
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    let head = format!(
        "POST /api/v1/publish HTTP/1.1\r\nHost: hub\r\n{auth}Content-Type: application/json\r\nContent-Length: 2000000\r\n\r\n"
    );
    tcp.write_all(head.as_bytes()).await.unwrap();
    tcp.write_all(&[b' '; 1000]).await.unwrap();
    let mut answer = vec![0u8; 256];
    let n = tokio::time::timeout(Duration::from_secs(15), tcp.read(&mut answer))
        .await
        .expect("an answer without the rest of the body")
        .unwrap();
    String::from_utf8_lossy(&answer[..n]).to_string()
}

/// The publish API checks the token before it reads a body, and a body
/// that stalls is dropped after 10 s: nobody holds the hub's memory by
/// starting uploads.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publish_bodies_are_read_after_the_token_and_never_held_forever() {
    let hub = hub(ServerConfig::new(Auth::hs256(SECRET).unwrap())).await;
    let started = std::time::Instant::now();
    let no_token = stalled_publish(hub.addr(), None).await;
    assert!(no_token.starts_with("HTTP/1.1 401"), "{no_token}");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "answered at once"
    );
    let claims = riskwatch::server::Claims {
        sub: "svc".into(),
        role: None,
        channels: vec![],
        publish: true,
        msp: None,
        client: None,
        exp: (chrono::Utc::now().timestamp() + 3600) as u64,
        iat: None,
    };
    let t = riskwatch::server::auth::mint_hs256(SECRET, &claims).unwrap();
    let slow = stalled_publish(hub.addr(), Some(t)).await;
    assert!(slow.starts_with("HTTP/1.1 408"), "{slow}");
    hub.shutdown().await;
}

/// Connection caps: a fourth connection from an address allowed three is
/// closed before anything is read, and admitted again once one leaves.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_over_the_per_address_cap_are_closed_at_once() {
    let hub =
        hub(ServerConfig::new(Auth::Insecure).limits(Limits::default().max_conns_per_ip(3))).await;
    let mut held = Vec::new();
    for _ in 0..3 {
        held.push(raw(hub.addr(), "/api/v1/stream").await);
    }
    let over = tokio_tungstenite::connect_async(url(hub.addr(), "/api/v1/stream")).await;
    assert!(over.is_err(), "the fourth is refused");
    assert!(hub.hub().stats().refused_connections >= 1);
    let mut first = held.remove(0);
    first.close(None).await.unwrap();
    drop(first);
    let h = std::sync::Arc::clone(hub.hub());
    assert!(until(Duration::from_secs(5), || h.stats().total_connections == 2).await);
    let mut admitted = false;
    for _ in 0..50 {
        if tokio_tungstenite::connect_async(url(hub.addr(), "/api/v1/stream"))
            .await
            .is_ok()
        {
            admitted = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(admitted, "a freed slot admits a new connection");
    hub.shutdown().await;
}

/// Malformed frames get the close code RFC 6455 gives them, not a bare
/// disconnect: 1007 for text that is not UTF-8, 1002 for an unmasked
/// frame or a control frame over 125 bytes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_frames_get_1007_or_1002() {
    use tokio::io::AsyncWriteExt;
    let hub = hub(ServerConfig::new(Auth::Insecure)).await;
    let mut long_ping = vec![0x89, 0x80 | 126, 0x00, 126, 0, 0, 0, 0];
    long_ping.extend([b'p'; 126]);
    let cases: [(&str, Vec<u8>, u16); 3] = [
        (
            "invalid UTF-8",
            vec![0x81, 0x80 | 2, 0, 0, 0, 0, 0xff, 0xfe],
            1007,
        ),
        ("unmasked", vec![0x81, 0x02, b'h', b'i'], 1002),
        ("126-byte ping", long_ping, 1002),
    ];
    for (what, bytes, want) in cases {
        let mut ws = raw(hub.addr(), "/api/v1/stream").await;
        match ws.get_mut() {
            tokio_tungstenite::MaybeTlsStream::Plain(tcp) => tcp.write_all(&bytes).await.unwrap(),
            _ => unreachable!("plain TCP on loopback"),
        }
        let (code, _) = close_code(&mut ws, Duration::from_secs(5)).await;
        assert_eq!(code, Some(want), "{what}");
    }
    hub.shutdown().await;
}
