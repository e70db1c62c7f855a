//! Who is connecting: JWTs from `Authorization: Bearer` or `?token=`,
//! verified with an HS256 secret or an RS256 / ES256 public key; the claims
//! name the user, role, readable channels (patterns allowed), MSP and client,
//! and whether the user may publish. `--insecure-dev` (loopback only)
//! admits everyone as `anonymous` with every channel.

use std::path::Path;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

use super::grants;
use super::jwks::Jwks;

/// The user name of unauthenticated connections in dev mode.
pub const ANONYMOUS: &str = "anonymous";

/// The claims riskwatch reads from a token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// The user.
    pub sub: String,
    /// `trader`, `hr_manager`, `msp_admin`, `msp_user`, `client_admin`,
    /// `client_user`, … (informational; access is by `channels`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
    /// Channels the user may read: names or `prefix*` patterns.
    #[serde(default)]
    pub channels: Vec<String>,
    /// Whether the user may publish.
    #[serde(default)]
    pub publish: bool,
    /// The user's MSP (seed 002's auth service calls it `msp_id`).
    #[serde(default, alias = "msp_id", skip_serializing_if = "Option::is_none")]
    pub msp: Option<String>,
    /// The user's client (seed 002: `client_id`).
    #[serde(default, alias = "client_id", skip_serializing_if = "Option::is_none")]
    pub client: Option<String>,
    /// Expiry, seconds since the Unix epoch.
    pub exp: u64,
    /// When the token was issued, seconds since the Unix epoch: for a
    /// channel the user has no cursor on (never connected, a new grant),
    /// what was published after it is what the user missed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iat: Option<u64>,
}

/// An authenticated connection's identity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub user: String,
    pub role: Option<String>,
    pub grants: Vec<String>,
    pub publish: bool,
    pub msp: Option<String>,
    pub client: Option<String>,
    /// The token's `iat`: where a channel without a cursor of this user's
    /// starts its replay. None: live only.
    pub issued_at: Option<DateTime<Utc>>,
}

impl Identity {
    pub fn anonymous() -> Identity {
        Identity {
            user: ANONYMOUS.to_owned(),
            role: None,
            grants: vec!["*".to_owned()],
            publish: true,
            msp: None,
            client: None,
            issued_at: None,
        }
    }

    pub fn may_read(&self, channel: &str) -> bool {
        grants::allowed(&self.grants, channel)
    }
}

/// Why a token was refused. Never carries the token.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("no token: send Authorization: Bearer <token> or ?token=<token>")]
    Missing,
    #[error("the token has expired")]
    Expired,
    #[error("the token is not valid: {0}")]
    Invalid(String),
    /// Signed by a key the identity provider's key set does not hold.
    #[error("the token is not valid: signed by a key the hub does not know")]
    UnknownKey,
}

/// How the hub checks tokens.
#[derive(Clone)]
pub enum Auth {
    /// No authentication (`--insecure-dev`, loopback only).
    Insecure,
    Verify {
        key: DecodingKey,
        validation: Box<Validation>,
    },
    /// Keys from an identity provider's JWKS (`--jwks-url`), each
    /// verifying its own algorithm; `validation` holds the other checks.
    Jwks {
        jwks: Arc<Jwks>,
        validation: Box<Validation>,
    },
}

impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Auth::Insecure => f.write_str("Auth::Insecure"),
            Auth::Verify { validation, .. } => {
                write!(f, "Auth::Verify({:?})", validation.algorithms)
            }
            Auth::Jwks { jwks, .. } => write!(f, "Auth::Jwks({jwks:?})"),
        }
    }
}

/// A key that could not be used.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{path} is neither an RSA nor an EC public key in PEM form")]
    Format { path: String },
    #[error("the JWT secret must be at least 32 bytes")]
    ShortSecret,
}

fn validation(alg: Algorithm) -> Box<Validation> {
    let mut v = Validation::new(alg);
    v.leeway = 30;
    v.validate_exp = true;
    // A token valid only from later is not valid now.
    v.validate_nbf = true;
    // Identity providers put an `aud` in every token: checked when an
    // audience is configured ([`Auth::audience`]), ignored otherwise.
    v.validate_aud = false;
    v.required_spec_claims = ["exp", "sub"].iter().map(|s| s.to_string()).collect();
    Box::new(v)
}

impl Auth {
    pub fn hs256(secret: &[u8]) -> Result<Auth, KeyError> {
        if secret.len() < 32 {
            return Err(KeyError::ShortSecret);
        }
        Ok(Auth::Verify {
            key: DecodingKey::from_secret(secret),
            validation: validation(Algorithm::HS256),
        })
    }

    /// RS256 or ES256, by what the PEM file holds.
    pub fn public_key(path: &Path) -> Result<Auth, KeyError> {
        let pem = std::fs::read(path).map_err(|source| KeyError::Read {
            path: path.display().to_string(),
            source,
        })?;
        if let Ok(key) = DecodingKey::from_rsa_pem(&pem) {
            return Ok(Auth::Verify {
                key,
                validation: validation(Algorithm::RS256),
            });
        }
        if let Ok(key) = DecodingKey::from_ec_pem(&pem) {
            return Ok(Auth::Verify {
                key,
                validation: validation(Algorithm::ES256),
            });
        }
        Err(KeyError::Format {
            path: path.display().to_string(),
        })
    }

    /// Verifies with the keys of an identity provider's key set (fetched
    /// once here; keep them fresh with [`Auth::jwks_keys`]' `run`).
    pub fn jwks(jwks: Arc<Jwks>) -> Auth {
        Auth::Jwks {
            jwks,
            validation: validation(Algorithm::RS256),
        }
    }

    /// The key set behind [`Auth::Jwks`].
    pub fn jwks_keys(&self) -> Option<&Arc<Jwks>> {
        match self {
            Auth::Jwks { jwks, .. } => Some(jwks),
            _ => None,
        }
    }

    fn validation_mut(&mut self) -> Option<&mut Validation> {
        match self {
            Auth::Insecure => None,
            Auth::Verify { validation, .. } | Auth::Jwks { validation, .. } => Some(validation),
        }
    }

    /// Accept only tokens whose `iss` is `issuer`.
    pub fn issuer(mut self, issuer: &str) -> Auth {
        if let Some(validation) = self.validation_mut() {
            validation.set_issuer(&[issuer]);
            validation.required_spec_claims.insert("iss".into());
        }
        self
    }

    /// Accept only tokens whose `aud` names `audience`.
    pub fn audience(mut self, audience: &str) -> Auth {
        if let Some(validation) = self.validation_mut() {
            validation.set_audience(&[audience]);
            validation.validate_aud = true;
            validation.required_spec_claims.insert("aud".into());
        }
        self
    }

    pub fn is_insecure(&self) -> bool {
        matches!(self, Auth::Insecure)
    }

    /// Checks a token (or its absence); with a JWKS, a token signed by a
    /// key the hub does not know yet has the set fetched again (rate
    /// limited, see `jwks.rs`) and is checked once more.
    pub async fn check(&self, token: Option<&str>) -> Result<Identity, AuthError> {
        match self.verify(token) {
            Err(AuthError::UnknownKey) => {
                if let Some(jwks) = self.jwks_keys() {
                    jwks.refresh(false).await;
                }
                self.verify(token)
            }
            other => other,
        }
    }

    /// Checks a token (or its absence) with the keys held now.
    pub fn verify(&self, token: Option<&str>) -> Result<Identity, AuthError> {
        let token = match self {
            Auth::Insecure => return Ok(Identity::anonymous()),
            _ => token.filter(|t| !t.is_empty()).ok_or(AuthError::Missing)?,
        };
        let decoded = match self {
            Auth::Insecure => return Ok(Identity::anonymous()),
            Auth::Verify { key, validation } => {
                jsonwebtoken::decode::<Claims>(token, key, validation)
            }
            Auth::Jwks { jwks, validation } => {
                let header = jsonwebtoken::decode_header(token)
                    .map_err(|_| AuthError::Invalid("malformed token".into()))?;
                let (key, alg) = jwks
                    .key(header.kid.as_deref())
                    .ok_or(AuthError::UnknownKey)?;
                let mut v = (**validation).clone();
                v.algorithms = vec![alg];
                jsonwebtoken::decode::<Claims>(token, &key, &v)
            }
        };
        let data = decoded.map_err(|e| {
            use jsonwebtoken::errors::ErrorKind;
            match e.kind() {
                ErrorKind::ExpiredSignature => AuthError::Expired,
                ErrorKind::ImmatureSignature => {
                    AuthError::Invalid("not valid yet (nbf is in the future)".into())
                }
                ErrorKind::InvalidAudience => AuthError::Invalid("wrong audience".into()),
                ErrorKind::InvalidIssuer => AuthError::Invalid("wrong issuer".into()),
                ErrorKind::InvalidSignature => AuthError::Invalid("bad signature".into()),
                ErrorKind::InvalidAlgorithm => AuthError::Invalid("wrong algorithm".into()),
                ErrorKind::MissingRequiredClaim(c) => {
                    AuthError::Invalid(format!("missing claim {c}"))
                }
                _ => AuthError::Invalid("malformed token".into()),
            }
        })?;
        let c = data.claims;
        if c.sub.is_empty() {
            return Err(AuthError::Invalid("empty subject".into()));
        }
        let mut grants: Vec<String> = c
            .channels
            .into_iter()
            .filter(|g| grants::valid(g))
            .collect();
        if grants.is_empty() {
            // A token as seed 002's auth service issues it: scoped by role.
            grants = seed_role_grants(c.role.as_deref(), c.msp.as_deref(), c.client.as_deref());
        }
        Ok(Identity {
            user: c.sub,
            role: c.role,
            grants,
            publish: c.publish,
            msp: c.msp,
            client: c.client,
            // A future `iat` replays nothing that has happened yet.
            issued_at: c
                .iat
                .and_then(|s| i64::try_from(s).ok())
                .and_then(|s| DateTime::from_timestamp(s, 0)),
        })
    }
}

/// What seed 002's roles may read, for a token without a `channels`
/// claim: `msp_admin` / `msp_user` every client of their MSP
/// (`msp:{msp_id}/*`), `client_admin` / `client_user` their own client
/// (`msp:{msp_id}/client:{client_id}`). Nothing without the ids a role
/// needs, or for another role.
pub fn seed_role_grants(
    role: Option<&str>,
    msp: Option<&str>,
    client: Option<&str>,
) -> Vec<String> {
    let grant = match (role, msp, client) {
        (Some("msp_admin" | "msp_user"), Some(m), _) => format!("msp:{m}/*"),
        (Some("client_admin" | "client_user"), Some(m), Some(c)) => format!("msp:{m}/client:{c}"),
        _ => return Vec::new(),
    };
    if grants::valid(&grant) {
        vec![grant]
    } else {
        Vec::new()
    }
}

/// Mints an HS256 token (development and tests).
pub fn mint_hs256(secret: &[u8], claims: &Claims) -> Result<String, jsonwebtoken::errors::Error> {
    jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        claims,
        &EncodingKey::from_secret(secret),
    )
}

/// The token of a request: the `Authorization: Bearer` header, else the
/// `token` query parameter.
pub fn token_from(headers: &http::HeaderMap, query: Option<&str>) -> Option<String> {
    if let Some(v) = headers.get(http::header::AUTHORIZATION)
        && let Ok(s) = v.to_str()
        && let Some(t) = s
            .strip_prefix("Bearer ")
            .or_else(|| s.strip_prefix("bearer "))
    {
        return Some(t.trim().to_owned());
    }
    query.and_then(|q| {
        url::form_urlencoded::parse(q.as_bytes())
            .find(|(k, _)| k == "token")
            .map(|(_, v)| v.into_owned())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef";

    fn claims(exp_in: i64) -> Claims {
        Claims {
            sub: "u1".into(),
            role: Some("trader".into()),
            channels: vec!["user:u1".into(), "sessions:*".into(), "bad channel".into()],
            publish: false,
            msp: None,
            client: None,
            exp: (chrono::Utc::now().timestamp() + exp_in) as u64,
            iat: None,
        }
    }

    fn mint(claims: serde_json::Value) -> String {
        jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &claims,
            &EncodingKey::from_secret(SECRET),
        )
        .unwrap()
    }

    #[test]
    fn not_before_audience_and_issuer_are_checked() {
        let now = chrono::Utc::now().timestamp();
        let base = |extra: serde_json::Value| {
            let mut c = serde_json::json!({"sub": "u1", "exp": now + 3600});
            c.as_object_mut()
                .unwrap()
                .extend(extra.as_object().unwrap().clone());
            mint(c)
        };
        let auth = Auth::hs256(SECRET).unwrap();
        let later = base(serde_json::json!({"nbf": now + 3600}));
        assert_eq!(
            auth.verify(Some(&later)),
            Err(AuthError::Invalid(
                "not valid yet (nbf is in the future)".into()
            ))
        );
        assert!(
            auth.verify(Some(&base(serde_json::json!({"nbf": now - 10}))))
                .is_ok()
        );
        // An identity provider's `aud` is fine when no audience is set.
        let for_us = base(serde_json::json!({"aud": "riskwatch", "iss": "https://idp"}));
        assert!(auth.verify(Some(&for_us)).is_ok());
        let strict = Auth::hs256(SECRET)
            .unwrap()
            .audience("riskwatch")
            .issuer("https://idp");
        assert!(strict.verify(Some(&for_us)).is_ok());
        let other_aud = base(serde_json::json!({"aud": "billing", "iss": "https://idp"}));
        assert_eq!(
            strict.verify(Some(&other_aud)),
            Err(AuthError::Invalid("wrong audience".into()))
        );
        let other_iss = base(serde_json::json!({"aud": "riskwatch", "iss": "https://evil"}));
        assert_eq!(
            strict.verify(Some(&other_iss)),
            Err(AuthError::Invalid("wrong issuer".into()))
        );
        let bare = base(serde_json::json!({}));
        assert!(strict.verify(Some(&bare)).is_err(), "aud and iss required");
    }

    #[test]
    fn valid_expired_forged_missing() {
        let auth = Auth::hs256(SECRET).unwrap();
        let ok = mint_hs256(SECRET, &claims(3600)).unwrap();
        let id = auth.verify(Some(&ok)).unwrap();
        assert_eq!(id.user, "u1");
        assert_eq!(id.grants, ["user:u1", "sessions:*"]);
        assert!(id.may_read("sessions:S1"));
        assert!(!id.may_read("user:u2"));
        let old = mint_hs256(SECRET, &claims(-3600)).unwrap();
        assert_eq!(auth.verify(Some(&old)), Err(AuthError::Expired));
        let forged = mint_hs256(b"another-secret-another-secret-xx", &claims(3600)).unwrap();
        assert!(matches!(
            auth.verify(Some(&forged)),
            Err(AuthError::Invalid(_))
        ));
        assert_eq!(auth.verify(None), Err(AuthError::Missing));
        assert!(matches!(
            auth.verify(Some("garbage")),
            Err(AuthError::Invalid(_))
        ));
        assert!(Auth::hs256(b"short").is_err());
    }

    #[test]
    fn token_sources() {
        let mut h = http::HeaderMap::new();
        assert_eq!(token_from(&h, Some("a=1&token=abc")), Some("abc".into()));
        h.insert(http::header::AUTHORIZATION, "Bearer xyz".parse().unwrap());
        assert_eq!(token_from(&h, Some("token=abc")), Some("xyz".into()));
    }
}
