//! Tokens in the OS keyring, and nowhere else.
//!
//! One entry per server profile: service `riskwatch`, user = the profile
//! name, through the `keyring` crate (Secret Service over D-Bus on Linux —
//! gnome-keyring, KWallet — Keychain on macOS, Credential Manager on
//! Windows). Preferences files, logs, errors and the webview never see a
//! token: every error here is built from the keyring error's *kind* and the
//! platform's message, never from the secret or the stored bytes.
//!
//! Calls block (a D-Bus round trip, possibly a keyring unlock prompt): from
//! async code run them on a blocking thread (`tokio::task::spawn_blocking`).

use crate::client::Token;
use crate::profile::check_profile_name;

/// The keyring service name riskwatch stores tokens under.
pub const SERVICE: &str = "riskwatch";

/// What can go wrong with the keyring. No variant carries the token.
#[derive(Debug, thiserror::Error)]
pub enum CredentialError {
    /// The profile name is unusable (see `profile::check_profile_name`).
    #[error(
        "bad profile name {0:?}: use 1 to 64 letters, digits, '-', '_' or '.', not starting with '.'"
    )]
    BadProfile(String),
    /// No keyring is reachable (no Secret Service on the session bus, no
    /// session bus at all) or it is locked. The user must start or unlock
    /// their keyring; `RISKWATCH_TOKEN` is the fallback.
    #[error("the OS keyring is not available: {0}")]
    Unavailable(String),
    /// The keyring answered with an error.
    #[error("the OS keyring failed: {0}")]
    Platform(String),
    /// The stored secret is not text (written by another program).
    #[error("the keyring entry for profile {0:?} does not hold a text token")]
    NotText(String),
    /// An empty token was given.
    #[error("refusing to store an empty token")]
    Empty,
}

fn map_err(profile: &str, e: keyring::Error) -> CredentialError {
    match e {
        keyring::Error::NoStorageAccess(inner) => CredentialError::Unavailable(inner.to_string()),
        keyring::Error::PlatformFailure(inner) => {
            let msg = inner.to_string();
            // No Secret Service on the bus / no bus: the keyring is absent,
            // not broken.
            let absent = [
                "org.freedesktop.secrets",
                "ServiceUnknown",
                "DBUS_SESSION_BUS_ADDRESS",
                "Failed to connect to socket",
                "No such file or directory",
                "was not provided by any .service files",
            ];
            if absent.iter().any(|a| msg.contains(a)) {
                CredentialError::Unavailable(msg)
            } else {
                CredentialError::Platform(msg)
            }
        }
        // The bytes are the secret: never shown.
        keyring::Error::BadEncoding(_) => CredentialError::NotText(profile.to_owned()),
        keyring::Error::TooLong(attr, max) => CredentialError::Platform(format!(
            "{attr} is longer than the keyring's limit of {max}"
        )),
        keyring::Error::Invalid(attr, why) => {
            CredentialError::Platform(format!("invalid {attr}: {why}"))
        }
        keyring::Error::Ambiguous(v) => CredentialError::Platform(format!(
            "{} keyring entries match service {SERVICE:?} and user {profile:?}",
            v.len()
        )),
        keyring::Error::NoEntry => CredentialError::Platform("no entry".into()),
        other => CredentialError::Platform(other.to_string()),
    }
}

fn entry(profile: &str) -> Result<keyring::Entry, CredentialError> {
    check_profile_name(profile).map_err(|_| CredentialError::BadProfile(profile.to_owned()))?;
    keyring::Entry::new(SERVICE, profile).map_err(|e| map_err(profile, e))
}

/// The stored token of a profile, or `None` when there is none.
pub fn get(profile: &str) -> Result<Option<Token>, CredentialError> {
    match entry(profile)?.get_password() {
        Ok(t) => Ok(Some(Token::new(t))),
        Err(keyring::Error::NoEntry) => Ok(None),
        Err(e) => Err(map_err(profile, e)),
    }
}

/// Stores (or replaces) a profile's token.
pub fn set(profile: &str, token: &Token) -> Result<(), CredentialError> {
    if token.expose().is_empty() {
        return Err(CredentialError::Empty);
    }
    entry(profile)?
        .set_password(token.expose())
        .map_err(|e| map_err(profile, e))?;
    tracing::debug!(profile, "token stored in the OS keyring");
    Ok(())
}

/// Deletes a profile's token; `false` when there was none.
pub fn delete(profile: &str) -> Result<bool, CredentialError> {
    match entry(profile)?.delete_credential() {
        Ok(()) => Ok(true),
        Err(keyring::Error::NoEntry) => Ok(false),
        Err(e) => Err(map_err(profile, e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_profile_names_are_refused_before_the_keyring() {
        assert!(matches!(get("../x"), Err(CredentialError::BadProfile(_))));
        assert!(matches!(
            set("", &Token::new("t")),
            Err(CredentialError::BadProfile(_))
        ));
        assert!(matches!(
            set("ok", &Token::new("  ")),
            Err(CredentialError::Empty)
        ));
    }

    #[test]
    fn errors_never_carry_the_secret() {
        let secret = "s3cret-token-value";
        let e = map_err(
            "desk",
            keyring::Error::BadEncoding(secret.as_bytes().to_vec()),
        );
        let shown = format!("{e} {e:?}");
        assert!(!shown.contains(secret), "{shown}");
        assert!(!shown.contains("115, 51"), "bytes leaked: {shown}");
    }
}
