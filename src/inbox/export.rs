//! Exporting alerts from the inbox as CSV or JSON, a row at a time: the
//! columns, the formats' writers, and keeping a spreadsheet from running
//! what a server sent.

use std::io::{self, Write};

use chrono::{DateTime, SecondsFormat, Utc};
use serde::Serialize;
use serde_json::value::RawValue;

use super::StoredAlert;

/// An export's format. Both carry, per alert: `id`, `received`,
/// `acknowledged` (empty or null while unacknowledged), `severity` (after
/// rules), `event_severity` (as decoded), `type`, `style`, `source`,
/// `channel`, `subject`, `time` (the event's), `event_id`, `seq`, `key`
/// (the engine's alert key) and `payload` (the message as received).
/// Times are RFC 3339 in UTC with milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExportFormat {
    /// RFC 4180, a header line first; `payload` is the message's JSON
    /// text. A cell a spreadsheet would take for a formula (starting with
    /// `=`, `+`, `-`, `@`, a tab or a carriage return) gets a leading `'`,
    /// so server text stays text when the file is opened.
    Csv,
    /// One JSON array of objects; `payload` is the message itself, not a
    /// string.
    Json,
}

impl ExportFormat {
    /// The file name extension: `csv`, `json`.
    pub fn extension(self) -> &'static str {
        match self {
            ExportFormat::Csv => "csv",
            ExportFormat::Json => "json",
        }
    }
}

impl std::str::FromStr for ExportFormat {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "csv" => Ok(ExportFormat::Csv),
            "json" => Ok(ExportFormat::Json),
            other => Err(format!("unknown export format {other:?} (csv or json)")),
        }
    }
}

const COLUMNS: [&str; 15] = [
    "id",
    "received",
    "acknowledged",
    "severity",
    "event_severity",
    "type",
    "style",
    "source",
    "channel",
    "subject",
    "time",
    "event_id",
    "seq",
    "key",
    "payload",
];

fn time(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// One alert as exported.
#[derive(Serialize)]
struct Row<'a> {
    id: i64,
    received: String,
    acknowledged: Option<String>,
    severity: &'static str,
    event_severity: &'static str,
    #[serde(rename = "type")]
    kind: &'a str,
    style: &'static str,
    source: &'a str,
    channel: Option<&'a str>,
    subject: Option<&'a str>,
    time: String,
    event_id: Option<&'a str>,
    seq: Option<u64>,
    key: Option<&'a str>,
    payload: &'a RawValue,
}

impl<'a> Row<'a> {
    fn of(a: &'a StoredAlert) -> Row<'a> {
        let e = &a.event;
        Row {
            id: a.id,
            received: time(a.received),
            acknowledged: a.acknowledged.map(time),
            severity: a.severity.as_str(),
            event_severity: e.severity.as_str(),
            kind: &e.kind,
            style: e.style.as_str(),
            source: &e.source,
            channel: e.channel.as_deref(),
            subject: e.subject.as_deref(),
            time: time(e.time),
            event_id: e.id.as_deref(),
            seq: e.seq,
            key: a.key.as_deref(),
            payload: &e.payload,
        }
    }
}

/// A cell as a spreadsheet will show it: text that would start a formula
/// is kept as text.
fn cell(text: &str) -> std::borrow::Cow<'_, str> {
    if text.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{text}").into()
    } else {
        text.into()
    }
}

/// An optional cell: empty when absent.
fn opt_cell(text: Option<&str>) -> std::borrow::Cow<'_, str> {
    text.map(cell).unwrap_or_default()
}

/// Writes one format, a row at a time.
pub(super) enum Sink<W: Write> {
    Csv(Box<csv::Writer<W>>),
    Json { out: W, first: bool },
}

impl<W: Write> Sink<W> {
    pub(super) fn new(format: ExportFormat, mut out: W) -> io::Result<Sink<W>> {
        Ok(match format {
            ExportFormat::Csv => {
                let mut w = csv::Writer::from_writer(out);
                w.write_record(COLUMNS).map_err(io::Error::other)?;
                Sink::Csv(Box::new(w))
            }
            ExportFormat::Json => {
                out.write_all(b"[")?;
                Sink::Json { out, first: true }
            }
        })
    }

    pub(super) fn write(&mut self, a: &StoredAlert) -> io::Result<()> {
        let row = Row::of(a);
        match self {
            Sink::Csv(w) => {
                let record: [std::borrow::Cow<'_, str>; 15] = [
                    row.id.to_string().into(),
                    row.received.as_str().into(),
                    row.acknowledged.as_deref().unwrap_or_default().into(),
                    row.severity.into(),
                    row.event_severity.into(),
                    cell(row.kind),
                    row.style.into(),
                    cell(row.source),
                    opt_cell(row.channel),
                    opt_cell(row.subject),
                    row.time.as_str().into(),
                    opt_cell(row.event_id),
                    row.seq.map(|s| s.to_string()).unwrap_or_default().into(),
                    opt_cell(row.key),
                    row.payload.get().into(),
                ];
                w.write_record(record.iter().map(|c| c.as_bytes()))
                    .map_err(io::Error::other)
            }
            Sink::Json { out, first } => {
                out.write_all(if *first { b"\n" } else { b",\n" })?;
                *first = false;
                serde_json::to_writer(&mut *out, &row).map_err(io::Error::other)
            }
        }
    }

    pub(super) fn finish(self) -> io::Result<()> {
        match self {
            Sink::Csv(mut w) => w.flush(),
            Sink::Json { mut out, first } => {
                out.write_all(if first { b"]\n" } else { b"\n]\n" })?;
                out.flush()
            }
        }
    }
}
