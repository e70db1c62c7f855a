//! `riskwatch publish`: events to a riskwatch hub's publish API
//! (`POST /api/v1/publish`) from a script — one from flags (`--channel`,
//! `--type`, `--severity`, `--data` or `--field`), or one or a batch from a
//! file or standard input in the API's own shape. The token comes from
//! `RISKWATCH_TOKEN` (or `--token`), or from a profile's OS keyring entry;
//! the hub from the argument, `RISKWATCH_URL` or the profile's url.
//!
//! Exit codes: 0 published (the hub's sequence numbers printed), 2 bad
//! input or an event the hub refused as malformed, 3 a token refused (or
//! without the publish scope), 1 anything else (the hub unreachable, or
//! failing to store).

use std::io::Read;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use riskwatch::{Severity, profile::ProfileStore};
use serde_json::{Map, Value, json};

use super::exit;

#[derive(Debug, Clone, Args)]
#[command(before_help = "Examples:
  riskwatch publish http://hub:8080 -c sessions:desk1 -t risk_alert -s critical \\
      -f message='Loss limit breached' -f lossLimitUtilization:=97   # key=text, key:=JSON
  riskwatch publish --profile desk1 -c hr:alerts -t employee_alert --data '{\"employeeId\":\"E7\"}'
  generate-events | riskwatch publish http://hub:8080 --file - --json")]
pub struct PublishArgs {
    /// The hub: its address (http://host:8080) or any of its URLs, such as
    /// the one clients watch (ws://host:8080/api/v1/stream). Optional with
    /// --profile when the profile's preferences have a url.
    #[arg(env = "RISKWATCH_URL")]
    url: Option<String>,
    /// The channel, e.g. sessions:desk1.
    #[arg(long, short = 'c')]
    channel: Option<String>,
    /// The event's type, e.g. risk_alert.
    #[arg(long = "type", short = 't', value_name = "TYPE")]
    kind: Option<String>,
    /// info, warning, critical or emergency. Without it the hub gives the
    /// severity the backend's own rules would.
    #[arg(long, short = 's')]
    severity: Option<Severity>,
    /// An id that makes a retry safe: the hub stores an id once per
    /// channel and answers a repeat with the first one's sequence.
    #[arg(long)]
    id: Option<String>,
    /// The event's data, a JSON object.
    #[arg(long, value_name = "JSON")]
    data: Option<String>,
    /// One field of the data: key=text, or key:=JSON for a number, a
    /// boolean, an object. Repeat it for more; added to --data.
    #[arg(long = "field", short = 'f', value_name = "KEY=VALUE")]
    fields: Vec<String>,
    /// Events from a file, or '-' for standard input: one JSON event or an
    /// array of them in the publish API's shape ({"channel", "type",
    /// "severity", "id", "data"}); --channel, --type and --severity fill
    /// in what an event leaves out.
    #[arg(long, value_name = "FILE", conflicts_with_all = ["data", "fields", "id"])]
    file: Option<PathBuf>,
    /// Bearer token. Prefer the RISKWATCH_TOKEN environment variable: a
    /// command-line argument is visible to other users of this machine.
    #[arg(long, env = "RISKWATCH_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// A stored profile: its url, and its token from the OS keyring
    /// (riskwatch login PROFILE).
    #[arg(long)]
    profile: Option<String>,
    /// Print the hub's answer as JSON (one object per event).
    #[arg(long)]
    json: bool,
    /// An extra CA certificate (PEM) to trust for an https hub.
    #[arg(long, value_name = "FILE")]
    ca_file: Option<PathBuf>,
    /// Seconds allowed for the request.
    #[arg(long, value_name = "SECS", default_value_t = 10.0)]
    timeout: f64,
}

/// A failure with the exit code it maps to.
struct Failed(u8, String);

impl<E: std::fmt::Display> From<E> for Failed {
    fn from(e: E) -> Self {
        Failed(exit::USAGE, e.to_string())
    }
}

pub async fn publish(mut args: PublishArgs) -> anyhow::Result<u8> {
    match run(&mut args).await {
        Ok(code) => Ok(code),
        Err(Failed(code, message)) => {
            eprintln!("riskwatch: {message}");
            Ok(code)
        }
    }
}

async fn run(args: &mut PublishArgs) -> Result<u8, Failed> {
    if let Some(name) = args.profile.clone() {
        let store = ProfileStore::default_location()?;
        let profile = store
            .load(&name)
            .map_err(|e| Failed(exit::USAGE, format!("profile {name}: {e}")))?;
        if args.url.is_none() {
            args.url = profile
                .connection
                .url
                .as_ref()
                .map(|u| u.as_str().to_owned());
        }
        if args.token.is_none() {
            args.token = super::login::stored_token(&name, "publishing")
                .await
                .map_err(|e| Failed(exit::FAILURE, e.to_string()))?;
        }
    }
    let Some(url) = args.url.as_deref() else {
        return Err(Failed(
            exit::USAGE,
            "give the hub's URL (or RISKWATCH_URL), or a --profile whose preferences have a url"
                .into(),
        ));
    };
    let endpoint = publish_url(url)?;
    let body = body(args)?;
    let batch = body.is_array();

    let tls = riskwatch::client::tls::client_config(args.ca_file.as_deref())
        .map_err(|e| Failed(exit::TLS, e.to_string()))?;
    let timeout = Duration::try_from_secs_f64(args.timeout)
        .ok()
        .filter(|t| !t.is_zero())
        .ok_or_else(|| {
            Failed(
                exit::USAGE,
                format!("--timeout {}: not a duration", args.timeout),
            )
        })?;
    let http = riskwatch::client::tls::http_client(&tls, timeout)
        .map_err(|e| Failed(exit::FAILURE, e.to_string()))?;
    let mut request = http.post(endpoint.clone()).json(&body);
    if let Some(token) = &args.token {
        request = request.bearer_auth(token);
    }
    let response = request.send().await.map_err(|e| {
        // reqwest's message names the URL, which never holds the token.
        Failed(
            exit::FAILURE,
            format!("cannot reach the hub at {endpoint}: {e}"),
        )
    })?;
    let status = response.status();
    let answer: Value = response.json().await.unwrap_or(Value::Null);
    if !status.is_success() {
        let why = answer["error"].as_str().unwrap_or("no reason given");
        let code = match status.as_u16() {
            401 | 403 => exit::AUTH_REFUSED,
            400 | 413 => exit::USAGE,
            _ => exit::FAILURE,
        };
        // Part of a batch may be stored when storage fails midway.
        report(&answer["published"], args.json);
        return Err(Failed(
            code,
            format!("the hub refused: {why} (HTTP {status})"),
        ));
    }
    let published = if batch {
        answer["published"].clone()
    } else {
        json!([answer])
    };
    report(&published, args.json);
    Ok(exit::OK)
}

/// Prints each published event: JSON, or "CHANNEL #SEQ" (noting an id the
/// hub had already stored).
fn report(published: &Value, json: bool) {
    for p in published.as_array().into_iter().flatten() {
        if json {
            println!("{p}");
            continue;
        }
        let channel = p["channel"].as_str().unwrap_or("?");
        let seq = &p["seq"];
        if p["duplicate"].as_bool() == Some(true) {
            println!("{channel} #{seq} (already published with this id: not sent again)");
        } else {
            println!("{channel} #{seq}");
        }
    }
}

/// The hub's publish endpoint from any of its URLs: ws/wss become
/// http/https, the path is the API's, and a query (which may carry a
/// token) or credentials are dropped.
fn publish_url(given: &str) -> Result<url::Url, Failed> {
    let mut url = url::Url::parse(given)
        .map_err(|e| Failed(exit::USAGE, format!("{given:?} is not a URL: {e}")))?;
    let scheme = match url.scheme() {
        "http" | "ws" => "http",
        "https" | "wss" => "https",
        other => {
            return Err(Failed(
                exit::USAGE,
                format!("the hub's URL must be http(s) or ws(s), not {other}:"),
            ));
        }
    };
    // All four are "special" schemes, between which the url crate allows
    // the change.
    let _ = url.set_scheme(scheme);
    let _ = url.set_username("");
    let _ = url.set_password(None);
    url.set_query(None);
    url.set_fragment(None);
    url.set_path("/api/v1/publish");
    Ok(url)
}

/// The request body: the file's event(s) with the flags filling gaps, or
/// one event from the flags.
fn body(args: &PublishArgs) -> Result<Value, Failed> {
    let defaults = |event: &mut Map<String, Value>| {
        if let Some(c) = &args.channel {
            event.entry("channel").or_insert_with(|| json!(c));
        }
        if let Some(t) = &args.kind {
            event.entry("type").or_insert_with(|| json!(t));
        }
        if let Some(s) = args.severity {
            event
                .entry("severity")
                .or_insert_with(|| json!(s.to_string()));
        }
    };
    let check = |i: usize, event: &Map<String, Value>| -> Result<(), Failed> {
        for key in ["channel", "type"] {
            if !event.get(key).is_some_and(Value::is_string) {
                return Err(Failed(
                    exit::USAGE,
                    format!("event {i} has no {key} (give --{key} or put it in the event)"),
                ));
            }
        }
        Ok(())
    };
    if let Some(file) = &args.file {
        let text = if file.as_os_str() == "-" {
            let mut s = String::new();
            std::io::stdin()
                .read_to_string(&mut s)
                .context("cannot read standard input")
                .map_err(|e| Failed(exit::USAGE, format!("{e:#}")))?;
            s
        } else {
            std::fs::read_to_string(file)
                .map_err(|e| Failed(exit::USAGE, format!("cannot read {}: {e}", file.display())))?
        };
        let where_ = if file.as_os_str() == "-" {
            "standard input".to_owned()
        } else {
            file.display().to_string()
        };
        let mut value: Value = serde_json::from_str(&text).map_err(|e| {
            Failed(
                exit::USAGE,
                format!("{where_}:{}:{}: not JSON: {e}", e.line(), e.column()),
            )
        })?;
        let events: Vec<&mut Value> = match &mut value {
            Value::Array(items) => items.iter_mut().collect(),
            v => vec![v],
        };
        if events.is_empty() {
            return Err(Failed(exit::USAGE, format!("{where_} holds no event")));
        }
        for (i, event) in events.into_iter().enumerate() {
            let Value::Object(event) = event else {
                return Err(Failed(
                    exit::USAGE,
                    format!("{where_}: event {i} is not a JSON object"),
                ));
            };
            defaults(event);
            check(i, event)?;
        }
        return Ok(value);
    }
    let mut data = match &args.data {
        Some(text) => match serde_json::from_str(text) {
            Ok(Value::Object(m)) => m,
            Ok(_) => return Err(Failed(exit::USAGE, "--data must be a JSON object".into())),
            Err(e) => return Err(Failed(exit::USAGE, format!("--data is not JSON: {e}"))),
        },
        None => Map::new(),
    };
    for field in &args.fields {
        let (key, value) = parse_field(field)?;
        data.insert(key, value);
    }
    let mut event = Map::new();
    defaults(&mut event);
    if let Some(id) = &args.id {
        event.insert("id".into(), json!(id));
    }
    event.insert("data".into(), Value::Object(data));
    check(0, &event)?;
    Ok(Value::Object(event))
}

/// `key=text` or `key:=JSON`.
fn parse_field(field: &str) -> Result<(String, Value), Failed> {
    let bad = || {
        Failed(
            exit::USAGE,
            format!("--field {field:?}: expected KEY=TEXT or KEY:=JSON"),
        )
    };
    let eq = field.find('=').ok_or_else(bad)?;
    let (key, rest) = field.split_at(eq);
    let rest = &rest[1..];
    if let Some(key) = key.strip_suffix(':') {
        if key.is_empty() {
            return Err(bad());
        }
        let value = serde_json::from_str(rest)
            .map_err(|e| Failed(exit::USAGE, format!("--field {key}:= is not JSON: {e}")))?;
        return Ok((key.to_owned(), value));
    }
    if key.is_empty() {
        return Err(bad());
    }
    Ok((key.to_owned(), json!(rest)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(f: Result<impl std::fmt::Debug, Failed>) -> (u8, String) {
        match f {
            Ok(v) => panic!("expected a failure, got {v:?}"),
            Err(Failed(code, m)) => (code, m),
        }
    }

    #[test]
    fn the_publish_endpoint_comes_from_any_of_the_hubs_urls() {
        for (given, want) in [
            (
                "http://127.0.0.1:8080",
                "http://127.0.0.1:8080/api/v1/publish",
            ),
            (
                "ws://hub:8080/api/v1/stream?token=secret",
                "http://hub:8080/api/v1/publish",
            ),
            (
                "wss://user:pw@hub.example/api/v1/ws/alerts",
                "https://hub.example/api/v1/publish",
            ),
            (
                "https://[::1]:9000/anything#x",
                "https://[::1]:9000/api/v1/publish",
            ),
        ] {
            assert_eq!(
                publish_url(given).ok().map(|u| u.to_string()).as_deref(),
                Some(want),
                "{given}"
            );
        }
        assert_eq!(message(publish_url("ftp://hub/")).0, exit::USAGE);
        assert_eq!(message(publish_url("not a url")).0, exit::USAGE);
    }

    #[test]
    fn fields_are_text_or_json() {
        assert_eq!(
            parse_field("message=a=b").ok().map(|f| f.1),
            Some(json!("a=b"))
        );
        assert_eq!(parse_field("n:=97.5").ok().map(|f| f.1), Some(json!(97.5)));
        assert_eq!(
            parse_field("o:={\"a\":[1]}").ok().map(|f| f.1),
            Some(json!({"a": [1]}))
        );
        for bad in ["novalue", "=x", ":=1", "n:=not json"] {
            assert_eq!(message(parse_field(bad)).0, exit::USAGE, "{bad}");
        }
    }
}
