//! The hub over TLS (`--tls-cert` / `--tls-key`): wss:// delivers every
//! event exactly once and in order to several clients (the fan-out goes
//! through each connection's queue and rustls instead of the raw socket),
//! a plain ws:// client gets nothing, a stalled handshake holds only its
//! own connection, and unusable certificate files are one clear error.

use std::sync::Arc;
use std::time::Duration;

use riskwatch::client::{Client, ClientConfig};
use riskwatch::server::tls::{Tls, TlsError};
use riskwatch::server::{Auth, NewEvent, Server, ServerConfig};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use serde_json::json;

use super::support::*;

/// A hub with a fresh self-signed certificate for localhost; the CA file
/// (the certificate itself) for clients.
async fn tls_hub(dir: &std::path::Path) -> (Server, std::path::PathBuf) {
    let ck = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    let ca = dir.join("hub.pem");
    std::fs::write(&ca, ck.cert.pem()).unwrap();
    let cert = CertificateDer::from(ck.cert.der().to_vec());
    let key = PrivateKeyDer::from_pem_slice(ck.signing_key.serialize_pem().as_bytes()).unwrap();
    let tls = Tls::new(vec![cert], key).unwrap();
    let server = hub(ServerConfig::new(Auth::Insecure).tls(Some(tls))).await;
    (server, ca)
}

fn wss(server: &Server, ca: &std::path::Path) -> ClientConfig {
    let url = format!("wss://localhost:{}/api/v1/stream", server.addr().port());
    fast(url).extra_ca(Some(ca.to_path_buf())).subscribe("t")
}

fn tick(i: u64) -> NewEvent {
    serde_json::from_value(json!({"channel": "t", "type": "tick", "data": {"i": i}})).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wss_delivers_every_event_once_in_order_to_every_client() {
    const N: u64 = 500;
    let dir = tempfile::tempdir().unwrap();
    let (server, ca) = tls_hub(dir.path()).await;
    // A peer that opens TCP and never says hello holds only its own slot.
    let _stalled = tokio::net::TcpStream::connect(server.addr()).await.unwrap();
    let mut a = Client::connect(wss(&server, &ca)).unwrap();
    let mut b = Client::connect(wss(&server, &ca)).unwrap();
    let h = Arc::clone(server.hub());
    assert!(
        until(Duration::from_secs(10), || h
            .stats()
            .connections_by_channel
            .get("t")
            == Some(&2))
        .await
    );
    for i in 1..=N {
        h.publish(tick(i)).await.unwrap();
    }
    for c in [&mut a, &mut b] {
        for i in 1..=N {
            let e = next_event(c, Duration::from_secs(10))
                .await
                .unwrap_or_else(|| panic!("stalled at {i}"));
            assert_eq!((e.seq, e.field("i")), (Some(i), Some(json!(i))));
        }
        assert!(next_event(c, Duration::from_millis(200)).await.is_none());
    }
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plain_ws_client_gets_nothing_from_a_tls_hub() {
    let dir = tempfile::tempdir().unwrap();
    let (server, _ca) = tls_hub(dir.path()).await;
    let plain = format!("ws://127.0.0.1:{}/api/v1/stream", server.addr().port());
    let r = tokio::time::timeout(
        Duration::from_secs(5),
        tokio_tungstenite::connect_async(plain.as_str()),
    )
    .await
    .expect("answered or closed, not hung");
    assert!(r.is_err(), "a plaintext handshake must fail");
    assert_eq!(server.hub().stats().total_connections, 0);
    server.shutdown().await;
}

#[test]
fn unusable_certificate_files_are_one_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nope.pem");
    let empty = dir.path().join("empty.pem");
    std::fs::write(&empty, "not a certificate\n").unwrap();
    let e = Tls::from_pem_files(&missing, &missing).unwrap_err();
    assert!(matches!(e, TlsError::Cert { .. }), "{e}");
    assert!(e.to_string().contains("nope.pem"), "{e}");
    let e = Tls::from_pem_files(&empty, &empty).unwrap_err();
    assert!(matches!(e, TlsError::NoCert { .. }), "{e}");
}
