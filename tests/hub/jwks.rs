//! Tokens from an identity provider that rotates its keys (`--jwks-url`):
//! the hub takes a new key the first time a token names it, fetches the
//! set at most once per 30 s however many unknown keys are tried, lets
//! each key verify only its own algorithm, and refuses a key set it
//! cannot trust or read.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use riskwatch::server::jwks::{Jwks, JwksError};
use riskwatch::server::{Auth, Claims, Server, ServerConfig};
use serde_json::{Value, json};

use super::support::*;

/// An EC P-256 signing key with its id.
struct Key {
    kid: String,
    pair: rcgen::KeyPair,
}

impl Key {
    fn new(kid: &str) -> Key {
        Key {
            kid: kid.into(),
            pair: rcgen::KeyPair::generate().unwrap(),
        }
    }

    fn jwk(&self) -> Value {
        // Uncompressed point: 0x04 | x | y.
        let raw = self.pair.public_key_raw();
        json!({"kty": "EC", "crv": "P-256", "use": "sig", "alg": "ES256", "kid": self.kid,
            "x": URL_SAFE_NO_PAD.encode(&raw[1..33]), "y": URL_SAFE_NO_PAD.encode(&raw[33..65])})
    }

    fn token(&self, user: &str) -> String {
        let mut header = Header::new(Algorithm::ES256);
        header.kid = Some(self.kid.clone());
        let key = EncodingKey::from_ec_pem(self.pair.serialize_pem().as_bytes()).unwrap();
        jsonwebtoken::encode(&header, &claims(user), &key).unwrap()
    }
}

fn claims(user: &str) -> Claims {
    Claims {
        sub: user.into(),
        role: None,
        channels: vec![format!("user:{user}")],
        publish: false,
        msp: None,
        client: None,
        exp: (chrono::Utc::now().timestamp() + 3600) as u64,
        iat: None,
    }
}

/// An identity provider's key-set endpoint on 127.0.0.1: serves what
/// `set` holds and counts the fetches.
struct Provider {
    url: String,
    set: Arc<Mutex<Value>>,
    hits: Arc<AtomicUsize>,
}

impl Provider {
    async fn start(keys: &[&Key]) -> Provider {
        let set = Arc::new(Mutex::new(
            json!({"keys": keys.iter().map(|k| k.jwk()).collect::<Vec<_>>()}),
        ));
        let hits = Arc::new(AtomicUsize::new(0));
        let (s, h) = (Arc::clone(&set), Arc::clone(&hits));
        let app = axum::Router::new().route(
            "/.well-known/jwks.json",
            axum::routing::get(move || {
                let (s, h) = (Arc::clone(&s), Arc::clone(&h));
                async move {
                    h.fetch_add(1, Ordering::SeqCst);
                    axum::Json(s.lock().unwrap().clone())
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        Provider {
            url: format!("http://{addr}/.well-known/jwks.json"),
            set,
            hits,
        }
    }

    fn serve(&self, keys: &[&Key]) {
        *self.set.lock().unwrap() =
            json!({"keys": keys.iter().map(|k| k.jwk()).collect::<Vec<_>>()});
    }

    fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }
}

/// The status of `GET /api/v1/ws/stats` with `token`.
async fn stats_status(server: &Server, token: &str) -> u16 {
    http_client()
        .get(format!("http://{}/api/v1/ws/stats", server.addr()))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotated_key_is_taken_on_first_use_and_unknown_keys_cost_one_fetch() {
    let (a, b) = (Key::new("a"), Key::new("b"));
    let idp = Provider::start(&[&a]).await;
    let jwks = Jwks::fetch(&idp.url, None).await.unwrap();
    let server = hub(ServerConfig::new(Auth::jwks(jwks))).await;
    assert_eq!(stats_status(&server, &a.token("u1")).await, 200);
    assert_eq!(idp.hits(), 1, "fetched once at start");

    // The provider rotates: B signs from now on.
    idp.serve(&[&a, &b]);
    assert_eq!(
        stats_status(&server, &b.token("u2")).await,
        200,
        "taken on first use"
    );
    assert_eq!(idp.hits(), 2);
    // The WebSocket endpoints too (a browser's ?token=).
    let t = b.token("u2");
    let ws = format!("ws://{}/api/v1/stream?token={t}", server.addr());
    assert!(tokio_tungstenite::connect_async(ws.as_str()).await.is_ok());

    // A flood of made-up key ids: refused, and no second fetch within 30 s.
    let c = Key::new("c");
    for i in 0..20 {
        assert_eq!(stats_status(&server, &c.token(&format!("x{i}"))).await, 401);
    }
    assert_eq!(idp.hits(), 2, "unknown keys are rate limited");

    // Alg confusion: an HS256 token naming key A, keyed with A's public
    // bytes, is refused (A verifies ES256 only).
    let mut header = Header::new(Algorithm::HS256);
    header.kid = Some("a".into());
    let forged = jsonwebtoken::encode(
        &header,
        &claims("mallory"),
        &EncodingKey::from_secret(a.pair.public_key_raw()),
    )
    .unwrap();
    assert_eq!(stats_status(&server, &forged).await, 401);
    server.shutdown().await;
}

#[tokio::test]
async fn a_key_set_that_cannot_be_trusted_or_read_stops_the_hub_at_start() {
    let insecure = Jwks::fetch("http://idp.example.com/jwks.json", None).await;
    assert!(matches!(insecure, Err(JwksError::Insecure)), "{insecure:?}");
    let idp = Provider::start(&[]).await;
    let empty = Jwks::fetch(&idp.url, None).await;
    assert!(matches!(empty, Err(JwksError::Empty { .. })), "{empty:?}");
    *idp.set.lock().unwrap() = json!({"keys": [{"kty": "oct", "k": "c2VjcmV0", "kid": "s"}]});
    let symmetric = Jwks::fetch(&idp.url, None).await;
    assert!(
        matches!(symmetric, Err(JwksError::Empty { .. })),
        "a shared secret is not taken"
    );
    *idp.set.lock().unwrap() = json!("not a key set");
    let garbage = Jwks::fetch(&idp.url, None).await;
    assert!(
        matches!(garbage, Err(JwksError::Format { .. })),
        "{garbage:?}"
    );
    let closed = bind(0).local_addr().unwrap();
    let down = Jwks::fetch(&format!("http://{closed}/jwks.json"), None).await;
    assert!(matches!(down, Err(JwksError::Fetch { .. })), "{down:?}");
}
