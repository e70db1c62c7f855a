//! `riskwatch inbox list|show|ack|unack|export`: the SQLite inbox from the
//! shell — by default the one the desktop app keeps
//! (`Inbox::app_path("desktop")`, under `$RISKWATCH_DATA_DIR` when set),
//! or any other with `--inbox`. Filters by severity, time, type, source,
//! text (the full-text index) and acknowledgement; CSV and JSON export.
//! Never creates an inbox: a missing file is an error.
//!
//! Exit codes: 0 done, 2 bad usage (a bad filter, an id that is not
//! there, an output file that exists), 1 the inbox cannot be read.

use std::path::PathBuf;

use anyhow::Context;
use chrono::{DateTime, Utc};
use clap::{Args, Subcommand};
use riskwatch::Severity;
use riskwatch::inbox::{ExportFormat, Inbox, Query, StoredAlert};
use serde_json::json;

use super::exit;
use super::output::{sanitize, tag};
use super::since::when;

#[derive(Debug, Clone, Args)]
#[command(before_help = "Examples:
  riskwatch inbox list --severity critical --unread
  riskwatch inbox list --since 2h --text 'loss limit' --json
  riskwatch inbox show 4211
  riskwatch inbox ack 4211 4212          # or: riskwatch inbox ack --all --severity warning
  riskwatch inbox export --format csv --since 7d -o week.csv")]
pub struct InboxArgs {
    /// The inbox file. Default: the desktop app's
    /// (~/.local/share/riskwatch/desktop/inbox.sqlite3, or under
    /// $RISKWATCH_DATA_DIR).
    #[arg(long, global = true, value_name = "FILE")]
    inbox: Option<PathBuf>,
    #[command(subcommand)]
    command: InboxCommand,
}

#[derive(Debug, Clone, Subcommand)]
enum InboxCommand {
    /// Stored alerts matching the filters, newest first.
    List {
        #[command(flatten)]
        filter: Filter,
        /// At most this many.
        #[arg(long, default_value_t = 50)]
        limit: usize,
        /// One JSON object per alert per line.
        #[arg(long)]
        json: bool,
    },
    /// One alert whole: its fields and the message as received.
    Show {
        id: i64,
        /// As one JSON object.
        #[arg(long)]
        json: bool,
    },
    /// Acknowledge alerts by id, or every one matching the filters (--all).
    Ack {
        ids: Vec<i64>,
        /// Every alert matching the filters (unacknowledged ones).
        #[arg(long, conflicts_with = "ids")]
        all: bool,
        #[command(flatten)]
        filter: Filter,
    },
    /// Mark alerts unacknowledged again.
    Unack {
        #[arg(required = true)]
        ids: Vec<i64>,
    },
    /// Every alert matching the filters, as CSV or JSON.
    Export {
        #[command(flatten)]
        filter: Filter,
        /// csv or json.
        #[arg(long, default_value = "csv")]
        format: ExportFormat,
        /// Write to this new file (an existing one is left alone) instead
        /// of standard output.
        #[arg(long, short = 'o', value_name = "FILE")]
        output: Option<PathBuf>,
    },
}

/// What `list`, `ack --all` and `export` select.
#[derive(Debug, Clone, Default, Args)]
struct Filter {
    /// At least this severity (after rules): info, warning, critical,
    /// emergency.
    #[arg(long, short = 's')]
    severity: Option<Severity>,
    /// Events from this time on: 10m, 2h, 7d, a date (2026-12-01, UTC) or
    /// an RFC 3339 time.
    #[arg(long, value_name = "WHEN")]
    since: Option<String>,
    /// Events before this time (same forms as --since).
    #[arg(long, value_name = "WHEN")]
    until: Option<String>,
    /// Words to find in the type, subject, channel or message.
    #[arg(long)]
    text: Option<String>,
    /// Only this type (repeatable).
    #[arg(long = "type", value_name = "TYPE")]
    kinds: Vec<String>,
    /// Only this source (repeatable).
    #[arg(long = "source")]
    sources: Vec<String>,
    /// Only unacknowledged alerts.
    #[arg(long, conflicts_with = "acknowledged")]
    unread: bool,
    /// Only acknowledged alerts.
    #[arg(long)]
    acknowledged: bool,
}

impl Filter {
    fn query(&self, now: DateTime<Utc>) -> anyhow::Result<Query> {
        let mut q = Query::default();
        q.min_severity = self.severity;
        q.text = self.text.clone().filter(|t| !t.trim().is_empty());
        q.kinds = self.kinds.clone();
        q.sources = self.sources.clone();
        if let Some(s) = &self.since {
            q.since = Some(when(s, now).with_context(|| format!("--since {s}"))?);
        }
        if let Some(u) = &self.until {
            q.until = Some(when(u, now).with_context(|| format!("--until {u}"))?);
        }
        if self.unread {
            q.acknowledged = Some(false);
        } else if self.acknowledged {
            q.acknowledged = Some(true);
        }
        Ok(q)
    }
}

/// `10m`, `2h`, `7d`, `30s` back from `now`; a date (midnight UTC); an
/// RFC 3339 time.
pub fn inbox(args: InboxArgs) -> anyhow::Result<u8> {
    let path = match args.inbox.clone().or_else(|| Inbox::app_path("desktop")) {
        Some(p) => p,
        None => {
            eprintln!("riskwatch: no data directory for the default inbox; give --inbox FILE");
            return Ok(exit::USAGE);
        }
    };
    if !path.is_file() {
        eprintln!("riskwatch: no inbox at {}", path.display());
        return Ok(exit::USAGE);
    }
    let inbox = Inbox::open(&path).with_context(|| format!("cannot open {}", path.display()))?;
    let now = Utc::now();
    let usage = |e: anyhow::Error| {
        eprintln!("riskwatch: {e:#}");
        Ok(exit::USAGE)
    };
    match args.command {
        InboxCommand::List {
            filter,
            limit,
            json,
        } => {
            let q = match filter.query(now) {
                Ok(q) => q.limit(limit.max(1)),
                Err(e) => return usage(e),
            };
            for a in inbox.search(&q)? {
                if json {
                    println!("{}", alert_json(&a));
                } else {
                    println!("{}", line(&a));
                }
            }
            Ok(exit::OK)
        }
        InboxCommand::Show { id, json } => {
            let Some(a) = inbox.get(id)? else {
                eprintln!("riskwatch: no alert {id} in {}", path.display());
                return Ok(exit::USAGE);
            };
            if json {
                println!("{}", alert_json(&a));
            } else {
                print!("{}", detail(&a));
            }
            Ok(exit::OK)
        }
        InboxCommand::Ack { ids, all, filter } => {
            let n = if all {
                let q = match filter.query(now) {
                    Ok(q) => q.acknowledged(false),
                    Err(e) => return usage(e),
                };
                inbox.acknowledge_matching(&q, now)?
            } else {
                if ids.is_empty() {
                    return usage(anyhow::anyhow!("give alert ids, or --all with filters"));
                }
                if let Some(code) = missing(&inbox, &ids, &path)? {
                    return Ok(code);
                }
                inbox.acknowledge(&ids, now)?
            };
            println!("{n} acknowledged");
            Ok(exit::OK)
        }
        InboxCommand::Unack { ids } => {
            if let Some(code) = missing(&inbox, &ids, &path)? {
                return Ok(code);
            }
            let n = inbox.unacknowledge(&ids)?;
            println!("{n} unacknowledged");
            Ok(exit::OK)
        }
        InboxCommand::Export {
            filter,
            format,
            output,
        } => {
            let q = match filter.query(now) {
                Ok(q) => q,
                Err(e) => return usage(e),
            };
            let n = match &output {
                Some(file) => {
                    let out = match std::fs::File::create_new(file) {
                        Ok(f) => f,
                        Err(e) => {
                            eprintln!("riskwatch: cannot create {}: {e}", file.display());
                            return Ok(exit::USAGE);
                        }
                    };
                    inbox.export(&q, format, std::io::BufWriter::new(out))?
                }
                None => inbox.export(&q, format, std::io::stdout().lock())?,
            };
            eprintln!("riskwatch: {n} alerts exported");
            Ok(exit::OK)
        }
    }
}

/// Says which of `ids` the inbox does not hold, and gives the exit code
/// for it; `None` when it holds them all.
fn missing(inbox: &Inbox, ids: &[i64], path: &std::path::Path) -> anyhow::Result<Option<u8>> {
    let gone = inbox.missing(ids)?;
    if gone.is_empty() {
        return Ok(None);
    }
    let list: Vec<String> = gone.iter().map(i64::to_string).collect();
    eprintln!(
        "riskwatch: no alert {} in {}",
        list.join(", "),
        path.display()
    );
    Ok(Some(exit::USAGE))
}

/// `ID  TIME  SEV  [✓] TITLE — BODY`, server text without control
/// characters.
fn line(a: &StoredAlert) -> String {
    let d = a.event.describe();
    let body = if d.body.is_empty() {
        String::new()
    } else {
        format!(" — {}", d.body)
    };
    let ack = if a.acknowledged.is_some() { "✓ " } else { "" };
    format!(
        "{:>7}  {}  {}  {ack}{}",
        a.id,
        a.event.time.format("%Y-%m-%d %H:%M:%S"),
        tag(a.severity),
        sanitize(&format!("{}{body}", d.title)),
    )
}

/// Every field, then the message as received, pretty-printed.
fn detail(a: &StoredAlert) -> String {
    let e = &a.event;
    let d = e.describe();
    let mut out = format!("{}\n{}\n\n", sanitize(&d.title), sanitize(&d.body));
    let mut field = |name: &str, value: String| {
        if !value.is_empty() {
            out.push_str(&format!("{name:<14}{}\n", sanitize(&value)));
        }
    };
    field("id", a.id.to_string());
    field("severity", a.severity.to_string());
    field("as sent", e.severity.to_string());
    field("type", e.kind.clone());
    field("time", e.time.to_rfc3339());
    field("received", a.received.to_rfc3339());
    field(
        "acknowledged",
        a.acknowledged.map_or("no".into(), |t| t.to_rfc3339()),
    );
    field("source", e.source.to_string());
    field("channel", e.channel.clone().unwrap_or_default());
    field("subject", e.subject.clone().unwrap_or_default());
    field("event id", e.id.clone().unwrap_or_default());
    field("sequence", e.seq.map(|s| s.to_string()).unwrap_or_default());
    let message = serde_json::to_string_pretty(&e.payload_value()).unwrap_or_default();
    out.push_str(&format!(
        "\nmessage as received:\n{}\n",
        sanitize_block(&message)
    ));
    out
}

/// Control characters out of multi-line text, newlines kept.
fn sanitize_block(s: &str) -> String {
    s.lines().map(sanitize).collect::<Vec<_>>().join("\n")
}

fn alert_json(a: &StoredAlert) -> serde_json::Value {
    let e = &a.event;
    let d = e.describe();
    json!({
        "id": a.id,
        "severity": a.severity,
        "event_severity": e.severity,
        "type": e.kind,
        "title": d.title,
        "body": d.body,
        "time": e.time,
        "received": a.received,
        "acknowledged": a.acknowledged,
        "channel": e.channel,
        "subject": e.subject,
        "source": e.source,
        "event_id": e.id,
        "seq": e.seq,
        "style": e.style,
        "key": a.key,
        "message": e.payload_value(),
    })
}
