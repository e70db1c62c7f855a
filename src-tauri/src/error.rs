//! The desktop crate's one error type. Across Tauri's IPC it serializes as
//! its message, so the UI gets a readable string and no internals.

use riskwatch::client::ClientError;
use riskwatch::credentials::CredentialError;
use riskwatch::profile::ProfileError;
use serde::{Serialize, Serializer};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The demo server could not bind a loopback port. Fatal for demo mode;
    /// the window shows it as `offline`.
    #[error("cannot start the demo hub: {0}")]
    Demo(String),
    /// The inbox could not be opened or read (disk full, permissions, a
    /// corrupt file). Alerts are then neither stored nor listed.
    #[error("inbox: {0}")]
    Inbox(String),
    /// The configured URL or settings can never work. A misuse; the window
    /// shows it as `offline`.
    #[error("{}", client_error_text(.0))]
    Client(#[from] ClientError),
    /// What Settings sent cannot be used; the message names the field.
    #[error("{0}")]
    Invalid(String),
    /// A profile's file could not be read or written.
    #[error("preferences: {0}")]
    Prefs(String),
    /// The OS keyring refused or is not running. The message never holds
    /// the token (see `riskwatch::credentials`).
    #[error("{0}")]
    Keyring(String),
    /// No such profile or connection.
    #[error("no profile named {0:?}")]
    NoProfile(String),
    /// A panic while the feed was being updated left it unreadable. A bug.
    #[error("the event feed is unavailable after an internal error")]
    FeedPoisoned,
}

/// The client's message without the URL as typed: it may carry credentials
/// (`?token=`), and the window shows the redacted URL beside it anyway.
fn client_error_text(e: &ClientError) -> String {
    match e {
        ClientError::BadUrl { reason, .. } => format!("bad URL: {reason}"),
        other => other.to_string(),
    }
}

impl Error {
    pub fn profile(e: ProfileError) -> Error {
        if e.is_invalid() {
            Error::Invalid(e.to_string())
        } else {
            Error::Prefs(e.to_string())
        }
    }

    pub fn keyring(e: CredentialError) -> Error {
        Error::Keyring(e.to_string())
    }
}

impl Serialize for Error {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serializes_as_its_message_without_the_url() {
        let e = Error::from(ClientError::BadUrl {
            url: "https://h/ws?token=s3cret".into(),
            reason: "the scheme must be ws:// or wss://".into(),
        });
        let json = serde_json::to_string(&e).unwrap();
        assert_eq!(json, r#""bad URL: the scheme must be ws:// or wss://""#);
    }
}
