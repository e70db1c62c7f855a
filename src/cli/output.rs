//! How events, states and notices are printed: human lines (severity
//! coloured on a terminal) or one JSON object per event per line on stdout;
//! states and notices on stderr, and with `--json` each notice also as a
//! JSON line on stdout (`"notice": "gap"`, …), so a history gap is never
//! silent to a program reading the stream.

use std::io::{self, IsTerminal, Write};

use riskwatch::client::{ConnState, Notice};
use riskwatch::engine::Decision;
use riskwatch::{Event, Severity};
use serde_json::json;

pub struct Printer {
    json: bool,
    color: bool,
    out: io::BufWriter<io::Stdout>,
}

/// Whether an event raises a notification under default preferences:
/// exactly critical and emergency.
pub fn notify_by_default(e: &Event) -> bool {
    e.severity >= Severity::Critical
}

impl Printer {
    pub fn new(json: bool) -> Printer {
        let color = !json && io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none();
        Printer {
            json,
            color,
            out: io::BufWriter::new(io::stdout()),
        }
    }

    /// Prints one event, with the alert engine's decision when there is
    /// one: then `severity` is the severity after rules, `notify` whether
    /// the engine raised a notification, and `reasons` says why. An error
    /// means stdout is gone (a closed pipe).
    pub fn event_with(&mut self, e: &Event, decision: Option<&Decision>) -> io::Result<()> {
        let severity = decision.map_or(e.severity, |d| d.severity_after_rules);
        if self.json {
            serde_json::to_writer(&mut self.out, &event_json(e, decision))?;
            writeln!(self.out)?;
        } else {
            let d = e.describe();
            let tag = tag(severity);
            let color = match severity {
                Severity::Info => "\x1b[2m",
                Severity::Warning => "\x1b[33m",
                Severity::Critical => "\x1b[1;31m",
                Severity::Emergency => "\x1b[1;97;41m",
            };
            let time = e.time.format("%H:%M:%S");
            let body = if d.body.is_empty() {
                String::new()
            } else {
                format!(" — {}", d.body)
            };
            // Server text is printed without terminal control characters.
            let text = sanitize(&format!("{}{body}", d.title));
            if self.color {
                writeln!(self.out, "{time} {color}{tag}\x1b[0m {:<20} {text}", e.kind)?;
            } else {
                writeln!(self.out, "{time} {tag} {:<20} {text}", e.kind)?;
            }
        }
        self.out.flush()
    }

    /// Prints a notice: always one line on stderr; with `--json` also one
    /// JSON object on stdout, in order with the events around it. An
    /// error means stdout is gone.
    pub fn notice(&mut self, source: &str, n: &Notice) -> io::Result<()> {
        notice(source, n);
        if !self.json {
            return Ok(());
        }
        let mut line = serde_json::to_value(n).unwrap_or_default();
        if let Some(obj) = line.as_object_mut() {
            obj.insert("source".into(), json!(source));
            obj.insert("time".into(), json!(chrono::Utc::now()));
        }
        serde_json::to_writer(&mut self.out, &line)?;
        writeln!(self.out)?;
        self.out.flush()
    }
}

/// A severity in four letters, as the human lines print it.
pub fn tag(s: Severity) -> &'static str {
    match s {
        Severity::Info => "INFO",
        Severity::Warning => "WARN",
        Severity::Critical => "CRIT",
        Severity::Emergency => "EMRG",
    }
}

/// An event as `--json` prints it (and `--exec` hands it on stdin): type,
/// severity (after rules), notify, data, time, channel, subject, source,
/// id, seq, style, the message as sent, and the engine's reasons.
pub fn event_json(e: &Event, decision: Option<&Decision>) -> serde_json::Value {
    let severity = decision.map_or(e.severity, |d| d.severity_after_rules);
    let mut line = json!({
        "type": e.kind,
        "severity": severity,
        "notify": decision.map_or_else(|| notify_by_default(e), |d| d.notify.is_some()),
        "data": e.data(),
        "time": e.time,
        "channel": e.channel,
        "subject": e.subject,
        "source": e.source,
        "id": e.id,
        "seq": e.seq,
        "style": e.style,
        // The message exactly as the backend sent it.
        "message": e.payload_value(),
    });
    if let (Some(d), Some(obj)) = (decision, line.as_object_mut()) {
        obj.insert("reasons".into(), json!(d.reasons));
    }
    line
}

/// One line on stderr for a state change.
pub fn state(source: &str, s: &ConnState) {
    let line = match s {
        ConnState::Connected => format!("connected to {source}"),
        ConnState::Connecting => format!("connecting to {source}"),
        other => format!("{source}: {other}"),
    };
    eprintln!("riskwatch: {}", sanitize(&line));
}

/// One line on stderr for a notice.
fn notice(source: &str, n: &Notice) {
    let line = match n {
        Notice::Gap {
            channel,
            requested,
            oldest,
            criticals_kept: true,
        } => format!(
            "{source}: history gap on {channel}: ordinary messages between {requested} and {oldest} are gone; every critical one was delivered"
        ),
        Notice::Gap {
            channel,
            requested,
            oldest,
            criticals_kept: false,
        } => format!(
            "{source}: history gap on {channel}: messages after {requested} are gone, critical ones possibly among them; continuing from {oldest}"
        ),
        Notice::ServerError { code, message } => {
            format!("{source}: server error {code}: {message}")
        }
    };
    eprintln!("riskwatch: {}", sanitize(&line));
}

/// Replaces control characters (escape sequences a hostile server could use
/// to rewrite the terminal) with U+FFFD.
pub fn sanitize(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() { '\u{fffd}' } else { c })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_are_neutralised() {
        assert_eq!(sanitize("ok\x1b[2Jx\n"), "ok\u{fffd}[2Jx\u{fffd}");
    }
}
