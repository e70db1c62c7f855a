//! The backend styles riskwatch speaks, what each expects from a client
//! (application pings, subscribe commands, where the token goes), and how a
//! style is guessed from a URL path before any message has arrived.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use super::{compliance, dashboard, hr, merchant, native, trading};

/// A backend's message style. Incoming messages are recognised per message;
/// the style only decides what the client *sends*.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Style {
    /// Merchant risk assessment: `riskUpdate`, `riskPrediction`, `riskAlert`.
    Merchant,
    /// Dashboard hub: `dashboard_update`, `error`, `pong`; commands
    /// `{"action":"refresh"}` / `{"action":"ping"}`.
    Dashboard,
    /// Compliance engagement: `engagement_update`, `interaction_update`,
    /// `alert`; token in `?token=`.
    Compliance,
    /// HR risk alerts: `department_critical`, `employee_stress`.
    Hr,
    /// Trading sessions: `session_status`, `algorithm_decision`, …
    Trading,
    /// riskwatch's own protocol: `op`-tagged, sequenced, resumable.
    Native,
    /// A message type none of the styles define.
    Generic,
}

impl Style {
    pub const ALL: [Style; 7] = [
        Style::Merchant,
        Style::Dashboard,
        Style::Compliance,
        Style::Hr,
        Style::Trading,
        Style::Native,
        Style::Generic,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Style::Merchant => "merchant",
            Style::Dashboard => "dashboard",
            Style::Compliance => "compliance",
            Style::Hr => "hr",
            Style::Trading => "trading",
            Style::Native => "native",
            Style::Generic => "generic",
        }
    }

    /// Guesses the style from a WebSocket URL path, using the paths the five
    /// backends (and the hub) serve. `None` when the path says nothing.
    pub fn from_path(path: &str) -> Option<Style> {
        let p = path.trim_end_matches('/');
        Style::ALL.into_iter().find(|s| s.serves(p))
    }

    /// Whether this style's servers serve WebSocket path `path`.
    fn serves(self, path: &str) -> bool {
        match self {
            Style::Merchant => merchant::serves(path),
            Style::Dashboard => dashboard::serves(path),
            Style::Compliance => compliance::serves(path),
            Style::Hr => hr::serves(path),
            Style::Trading => trading::serves(path),
            Style::Native => native::serves(path),
            Style::Generic => false,
        }
    }

    /// The message types this style defines.
    pub fn kinds(self) -> &'static [&'static str] {
        match self {
            Style::Merchant => merchant::KINDS,
            Style::Dashboard => dashboard::KINDS,
            Style::Compliance => compliance::KINDS,
            Style::Hr => hr::KINDS,
            Style::Trading => trading::KINDS,
            Style::Native | Style::Generic => &[],
        }
    }

    /// Which style defines a message type; Generic for none.
    pub fn of_kind(kind: &str) -> Style {
        Style::ALL
            .into_iter()
            .find(|s| s.kinds().contains(&kind))
            .unwrap_or(Style::Generic)
    }

    /// Where this style expects the token: the compliance backend reads
    /// `?token=` only; the others read `Authorization: Bearer`.
    pub fn token_in_query(self) -> bool {
        matches!(self, Style::Compliance)
    }

    /// The application-level ping this style's clients send, if any.
    pub fn app_ping(self, now_rfc3339: &str) -> Option<String> {
        match self {
            Style::Dashboard => Some(dashboard::PING.to_owned()),
            Style::Compliance => Some(compliance::ping(now_rfc3339)),
            Style::Native => Some(native::PING.to_owned()),
            _ => None,
        }
    }

    /// The message that subscribes to `channels` in this style, or `None`
    /// when the style has no subscriptions. The native protocol subscribes
    /// per channel with a resume position, see [`super::native`].
    pub fn subscribe_message(self, channels: &[String]) -> Option<Vec<String>> {
        if channels.is_empty() {
            return None;
        }
        match self {
            Style::Trading => Some(trading::subscribe(channels)),
            Style::Compliance => Some(compliance::subscribe(channels)),
            _ => None,
        }
    }

    /// The dashboard style's manual refresh command.
    pub fn refresh_message(self) -> Option<&'static str> {
        matches!(self, Style::Dashboard).then_some(dashboard::REFRESH)
    }
}

impl fmt::Display for Style {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Style {
    type Err = UnknownStyle;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Style::ALL
            .into_iter()
            .find(|st| st.as_str().eq_ignore_ascii_case(s))
            .ok_or_else(|| UnknownStyle(s.to_owned()))
    }
}

/// A style name that is not one of riskwatch's styles.
#[derive(Debug, Clone, thiserror::Error)]
#[error(
    "unknown backend style {0:?} (expected merchant, dashboard, compliance, hr, trading or native)"
)]
pub struct UnknownStyle(pub String);
