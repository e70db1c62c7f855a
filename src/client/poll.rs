//! HTTP polling fallback: while the WebSocket upgrade keeps failing, fetch
//! the backend's snapshot endpoint on an interval and deliver it as events,
//! as the dashboard seed's frontend does.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use url::Url;

use super::{ClientError, PollMode, Token};
use crate::protocol::{self, Frame, Style};

/// The snapshot endpoint a style serves beside its WebSocket, if any.
pub fn default_url(ws: &Url, style: Style) -> Option<Url> {
    if style != Style::Dashboard {
        return None;
    }
    let mut u = ws.clone();
    let scheme = if ws.scheme() == "wss" {
        "https"
    } else {
        "http"
    };
    u.set_scheme(scheme).ok()?;
    let path = ws.path().replace("/ws/dashboard", "/dashboard");
    u.set_path(&path);
    u.set_query(None);
    Some(u)
}

/// Resolves the poll URL from the mode.
pub fn resolve(mode: &PollMode, ws: &Url, style: Style) -> Result<Option<Url>, ClientError> {
    match mode {
        PollMode::Off => Ok(None),
        PollMode::Auto => Ok(default_url(ws, style)),
        PollMode::Url(s) => {
            // Errors name the URL without its query or user part.
            let u = Url::parse(s).map_err(|e| ClientError::BadUrl {
                url: super::connection::redact_unparsed(s),
                reason: e.to_string(),
            })?;
            if !matches!(u.scheme(), "http" | "https") {
                return Err(ClientError::BadUrl {
                    url: super::redact_url(&u),
                    reason: "a poll URL must be http:// or https://".into(),
                });
            }
            Ok(Some(u))
        }
    }
}

/// Why one poll failed.
#[derive(Debug)]
pub enum PollError {
    /// 401 or 403: stop, as for the WebSocket.
    Auth(String),
    /// Anything else: try again next interval.
    Other(String),
}

#[derive(Debug)]
pub struct Poller {
    url: Url,
    http: reqwest::Client,
    token: Option<Token>,
    max: usize,
    label: Arc<str>,
}

impl Poller {
    pub fn new(
        url: Url,
        token: Option<Token>,
        tls: Arc<rustls::ClientConfig>,
        timeout: Duration,
        max: usize,
        label: Arc<str>,
    ) -> Result<Poller, ClientError> {
        let http =
            super::tls::http_client(&tls, timeout).map_err(|e| ClientError::Tls(e.to_string()))?;
        Ok(Poller {
            url,
            http,
            token,
            max,
            label,
        })
    }

    /// Fetches one snapshot. A body with a `type` is decoded as a message of
    /// any style; any other JSON body is the dashboard's data and is
    /// delivered as a `dashboard_update`.
    pub async fn poll_once(&self) -> Result<Vec<Frame>, PollError> {
        let mut req = self.http.get(self.url.clone());
        if let Some(t) = &self.token {
            req = req.bearer_auth(t.expose());
        }
        let mut resp = req
            .send()
            .await
            .map_err(|e| PollError::Other(e.without_url().to_string()))?;
        let status = resp.status();
        if status == reqwest::StatusCode::UNAUTHORIZED || status == reqwest::StatusCode::FORBIDDEN {
            return Err(PollError::Auth(format!(
                "HTTP {status} from the poll endpoint"
            )));
        }
        if !status.is_success() {
            return Err(PollError::Other(format!(
                "poll endpoint answered HTTP {status}"
            )));
        }
        let mut body = Vec::new();
        while let Some(chunk) = resp
            .chunk()
            .await
            .map_err(|e| PollError::Other(e.without_url().to_string()))?
        {
            if body.len() + chunk.len() > self.max {
                return Err(PollError::Other(format!(
                    "poll response exceeds the {}-byte limit",
                    self.max
                )));
            }
            body.extend_from_slice(&chunk);
        }
        let text = String::from_utf8(body)
            .map_err(|_| PollError::Other("poll response is not UTF-8".into()))?;
        let now = Utc::now();
        match protocol::decode(&text, &self.label, now) {
            Ok(Frame::Event(e)) if e.kind != "untyped" => Ok(vec![Frame::Event(e)]),
            Ok(Frame::Control(_)) => Ok(Vec::new()),
            _ => {
                let data: serde_json::Value = serde_json::from_str(&text)
                    .map_err(|e| PollError::Other(format!("poll response is not JSON: {e}")))?;
                let wrapped = serde_json::json!({
                    "type": "dashboard_update",
                    "timestamp": now.to_rfc3339(),
                    "data": data,
                })
                .to_string();
                protocol::decode(&wrapped, &self.label, now)
                    .map(|f| vec![f])
                    .map_err(|e| PollError::Other(e.to_string()))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dashboard_snapshot_url() {
        let ws = Url::parse("wss://h:1/api/v1/ws/dashboard?token=x").unwrap();
        assert_eq!(
            default_url(&ws, Style::Dashboard).unwrap().as_str(),
            "https://h:1/api/v1/dashboard"
        );
        assert!(default_url(&ws, Style::Trading).is_none());
        assert!(resolve(&PollMode::Url("ftp://x".into()), &ws, Style::Dashboard).is_err());
    }
}
