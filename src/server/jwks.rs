//! Signing keys from an identity provider's JSON Web Key Set
//! (`--jwks-url`), for providers that rotate their keys.
//!
//! The set is fetched at start (the hub does not start without it), again
//! every [`REFRESH_EVERY`] so that retired keys go, and at once when a token
//! names a key id (`kid`) the hub does not know — a rotation — such
//! fetches at most once per [`MIN_REFETCH`] however many unknown keys are
//! tried, the waiting requests sharing one fetch. Only asymmetric keys are taken (RSA,
//! EC, Ed25519): a shared secret has no business in a public key set. Each
//! key verifies only its own algorithm (the JWK's `alg`, else the one its
//! type implies), so a token cannot choose a weaker one. Plain `http://` is
//! refused except on a loopback address: whoever can change the set can
//! mint tokens.

use std::collections::HashMap;
use std::path::Path;
use std::str::FromStr;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, JwkSet};
use jsonwebtoken::{Algorithm, DecodingKey};
use tokio_util::sync::CancellationToken;
use url::Url;

/// The set is fetched again this often (retired keys go).
pub const REFRESH_EVERY: Duration = Duration::from_secs(600);
/// Unknown key ids fetch the set at most this often.
pub const MIN_REFETCH: Duration = Duration::from_secs(30);
/// One fetch may take this long.
const FETCH_TIMEOUT: Duration = Duration::from_secs(5);
/// A set larger than this is refused (a key set is a few kilobytes).
const MAX_BODY: usize = 1 << 20;

/// Why the key set cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum JwksError {
    #[error("invalid JWKS URL: {0}")]
    Url(String),
    #[error("the JWKS URL must be https:// (plain http:// only on a loopback address)")]
    Insecure,
    #[error("cannot fetch the JWKS from {url}: {reason}")]
    Fetch { url: String, reason: String },
    #[error("the JWKS from {url} is not a key set: {reason}")]
    Format { url: String, reason: String },
    #[error("the JWKS from {url} holds no usable signing key")]
    Empty { url: String },
}

struct Keys {
    by_kid: HashMap<String, (DecodingKey, Algorithm)>,
    /// The key of a set with one key and no `kid` (tokens then carry none).
    only: Option<(DecodingKey, Algorithm)>,
    fetched: Instant,
}

/// An identity provider's keys, kept fresh.
pub struct Jwks {
    url: Url,
    http: reqwest::Client,
    keys: RwLock<Keys>,
    /// One fetch at a time (a waiter that got the lock after a fetch uses
    /// its result), and when the last fetch for an unknown key was.
    fetching: tokio::sync::Mutex<Option<Instant>>,
}

impl std::fmt::Debug for Jwks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Jwks")
            .field("url", &self.url.as_str())
            .finish()
    }
}

impl Jwks {
    /// Fetches the set once; `extra_ca` is trusted beside the system roots
    /// (a private provider).
    pub async fn fetch(url: &str, extra_ca: Option<&Path>) -> Result<Arc<Jwks>, JwksError> {
        let url = Url::parse(url).map_err(|e| JwksError::Url(e.to_string()))?;
        let loopback = match url.host() {
            Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
            Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
            Some(url::Host::Domain(d)) => d == "localhost",
            None => false,
        };
        match url.scheme() {
            "https" => {}
            "http" if loopback => {}
            "http" => return Err(JwksError::Insecure),
            other => return Err(JwksError::Url(format!("unsupported scheme {other}"))),
        }
        let tls = crate::client::tls::client_config(extra_ca)
            .map_err(|e| JwksError::Url(e.to_string()))?;
        let http = crate::client::tls::http_client(&tls, FETCH_TIMEOUT)
            .map_err(|e| JwksError::Url(e.to_string()))?;
        let keys = load(&http, &url).await?;
        Ok(Arc::new(Jwks {
            url,
            http,
            keys: RwLock::new(keys),
            fetching: tokio::sync::Mutex::new(None),
        }))
    }

    /// The key for a token's `kid` (none: the set's only key), with the
    /// one algorithm it verifies.
    pub fn key(&self, kid: Option<&str>) -> Option<(DecodingKey, Algorithm)> {
        let keys = self.keys.read().unwrap_or_else(|e| e.into_inner());
        match kid {
            Some(kid) => keys.by_kid.get(kid).cloned(),
            None => keys.only.clone(),
        }
    }

    /// Fetches the set again: `force` (the periodic refresh) always, else
    /// (a token named an unknown key) unless another such fetch was within
    /// [`MIN_REFETCH`]. Concurrent callers share one fetch; a failure keeps
    /// the keys held.
    pub async fn refresh(&self, force: bool) {
        let asked = Instant::now();
        let mut last_on_demand = self.fetching.lock().await;
        let fetched = self.keys.read().unwrap_or_else(|e| e.into_inner()).fetched;
        if fetched >= asked {
            return;
        }
        if !force {
            if last_on_demand.is_some_and(|t| t.elapsed() < MIN_REFETCH) {
                return;
            }
            *last_on_demand = Some(Instant::now());
        }
        match load(&self.http, &self.url).await {
            Ok(keys) => {
                tracing::info!(keys = keys.by_kid.len(), url = %self.url, "JWKS refreshed");
                *self.keys.write().unwrap_or_else(|e| e.into_inner()) = keys;
            }
            Err(e) => tracing::warn!(error = %e, "JWKS refresh failed; keeping the keys held"),
        }
    }

    /// Refreshes every [`REFRESH_EVERY`] until `stop`.
    pub async fn run(self: Arc<Self>, stop: CancellationToken) {
        loop {
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tokio::time::sleep(REFRESH_EVERY) => self.refresh(true).await,
            }
        }
    }
}

async fn load(http: &reqwest::Client, url: &Url) -> Result<Keys, JwksError> {
    let fetch_err = |reason: String| JwksError::Fetch {
        url: url.to_string(),
        reason,
    };
    let resp = http
        .get(url.clone())
        .send()
        .await
        .map_err(|e| fetch_err(e.without_url().to_string()))?;
    if !resp.status().is_success() {
        return Err(fetch_err(format!("HTTP {}", resp.status())));
    }
    if resp.content_length().is_some_and(|n| n > MAX_BODY as u64) {
        return Err(fetch_err("the answer is too large".into()));
    }
    let body = resp
        .bytes()
        .await
        .map_err(|e| fetch_err(e.without_url().to_string()))?;
    if body.len() > MAX_BODY {
        return Err(fetch_err("the answer is too large".into()));
    }
    let set: JwkSet = serde_json::from_slice(&body).map_err(|e| JwksError::Format {
        url: url.to_string(),
        reason: e.to_string(),
    })?;
    let mut by_kid = HashMap::new();
    let mut unnamed = Vec::new();
    for jwk in &set.keys {
        let Some(alg) = algorithm(jwk) else {
            continue;
        };
        let Ok(key) = DecodingKey::from_jwk(jwk) else {
            tracing::warn!(kid = ?jwk.common.key_id, "unusable key in the JWKS");
            continue;
        };
        match &jwk.common.key_id {
            Some(kid) => {
                by_kid.insert(kid.clone(), (key, alg));
            }
            None => unnamed.push((key, alg)),
        }
    }
    let only = match (by_kid.len(), unnamed.len()) {
        (0, 1) => unnamed.pop(),
        (1, 0) => by_kid.values().next().cloned(),
        _ => None,
    };
    if by_kid.is_empty() && only.is_none() {
        return Err(JwksError::Empty {
            url: url.to_string(),
        });
    }
    Ok(Keys {
        by_kid,
        only,
        fetched: Instant::now(),
    })
}

/// The one algorithm a key verifies; `None` for symmetric or unknown keys.
fn algorithm(jwk: &jsonwebtoken::jwk::Jwk) -> Option<Algorithm> {
    let implied = match &jwk.algorithm {
        AlgorithmParameters::RSA(_) => Algorithm::RS256,
        AlgorithmParameters::EllipticCurve(p) => match p.curve {
            EllipticCurve::P256 => Algorithm::ES256,
            EllipticCurve::P384 => Algorithm::ES384,
            _ => return None,
        },
        AlgorithmParameters::OctetKeyPair(_) => Algorithm::EdDSA,
        AlgorithmParameters::OctetKey(_) => return None,
    };
    let Some(named) = jwk.common.key_algorithm else {
        return Some(implied);
    };
    let named = Algorithm::from_str(&named.to_string()).ok()?;
    // A named algorithm must fit the key's type.
    let family = |a: Algorithm| match a {
        Algorithm::RS256
        | Algorithm::RS384
        | Algorithm::RS512
        | Algorithm::PS256
        | Algorithm::PS384
        | Algorithm::PS512 => 1,
        Algorithm::ES256 | Algorithm::ES384 => 2,
        Algorithm::EdDSA => 3,
        _ => 0,
    };
    (family(named) == family(implied) && family(named) != 0).then_some(named)
}
