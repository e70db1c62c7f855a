//! `wss://`: the client trusts an extra CA file besides the system roots,
//! and a certificate it does not trust stops it with one clear TLS error
//! (exit code 4 in the CLI) instead of retrying forever.

use std::sync::Arc;
use std::time::Duration;

use futures_util::SinkExt;
use riskwatch::client::{Client, ClientConfig, ClientUpdate, StopReason};
use riskwatch::{ConnState, Severity};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::TcpListener;
use tokio_tungstenite::tungstenite::Message;

/// A wss:// server for `localhost` with a fresh self-signed certificate;
/// returns its port and the certificate's PEM.
async fn tls_server() -> (u16, String) {
    let ck = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    let pem = ck.cert.pem();
    let cert = CertificateDer::from(ck.cert.der().to_vec());
    let key = PrivateKeyDer::from_pem_slice(ck.signing_key.serialize_pem().as_bytes()).unwrap();
    let cfg = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(vec![cert], key)
    .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(cfg));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        for _ in 0..20 {
            let Ok((tcp, _)) = listener.accept().await else {
                return;
            };
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let Ok(mut ws) = tokio_tungstenite::accept_async(tls).await else {
                    return;
                };
                let msg = r#"{"type":"risk_alert","sessionId":"S1","alertLevel":"critical","message":"over TLS"}"#;
                let _ = ws.send(Message::text(msg)).await;
                tokio::time::sleep(Duration::from_secs(5)).await;
            });
        }
    });
    (port, pem)
}

#[tokio::test]
async fn wss_with_an_extra_ca_file_delivers_events() {
    let (port, pem) = tls_server().await;
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("ca.pem");
    std::fs::write(&ca, pem).unwrap();
    let cfg = ClientConfig::new(format!("wss://localhost:{port}/ws")).extra_ca(Some(ca));
    let mut c = Client::connect(cfg).unwrap();
    let got = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            match c.next().await {
                Some(ClientUpdate::Event(e)) => return e,
                Some(_) => continue,
                None => panic!("client ended"),
            }
        }
    })
    .await
    .expect("an event over TLS");
    assert_eq!(
        (got.kind.as_str(), got.severity),
        ("risk_alert", Severity::Critical)
    );
}

#[tokio::test]
async fn an_untrusted_certificate_stops_with_a_tls_error() {
    let (port, _) = tls_server().await;
    let mut c = Client::connect(ClientConfig::new(format!("wss://localhost:{port}/ws"))).unwrap();
    let state = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            match c.next().await {
                Some(ClientUpdate::State(s @ ConnState::Stopped { .. })) => return s,
                Some(_) => continue,
                None => return c.state(),
            }
        }
    })
    .await
    .expect("the client should stop");
    match state {
        ConnState::Stopped {
            reason: StopReason::Tls(detail),
        } => {
            assert!(detail.to_lowercase().contains("certificate"), "{detail}");
        }
        other => panic!("expected a TLS stop, got {other:?}"),
    }
}

#[test]
fn the_cli_exits_4_on_an_untrusted_certificate() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (port, _) = rt.block_on(tls_server());
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_riskwatch"))
        .args([
            "watch",
            &format!("wss://localhost:{port}/ws"),
            "--count",
            "1",
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while child.try_wait().unwrap().is_none() {
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            panic!("riskwatch watch did not stop on an untrusted certificate");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = child.wait_with_output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(4),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        err.lines().filter(|l| l.contains("TLS")).count(),
        1,
        "{err}"
    );
    drop(rt);
}
