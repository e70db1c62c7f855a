//! Reading the timestamps servers send: RFC 3339 with or without an offset
//! (a naive time is taken as UTC, as Python's `isoformat()` writes it), or a
//! Unix time in seconds or milliseconds.

use chrono::{DateTime, NaiveDateTime, TimeZone, Utc};
use serde_json::value::RawValue;

/// Unix times above this are taken as milliseconds (year 5138 in seconds).
const MILLIS_THRESHOLD: f64 = 1e11;

/// Parses a timestamp field; `None` when it is not a readable time.
pub(super) fn parse(raw: &RawValue) -> Option<DateTime<Utc>> {
    let text = raw.get();
    if text.starts_with('"') {
        let s: super::envelope::Loose<'_> = serde_json::from_str(text).ok()?;
        parse_str(s.as_deref()?)
    } else {
        let n: f64 = text.parse().ok()?;
        if !n.is_finite() || n < 0.0 {
            return None;
        }
        let millis = if n > MILLIS_THRESHOLD { n } else { n * 1000.0 };
        if millis > i64::MAX as f64 {
            return None;
        }
        Utc.timestamp_millis_opt(millis as i64).single()
    }
}

fn parse_str(s: &str) -> Option<DateTime<Utc>> {
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Some(t.with_timezone(&Utc));
    }
    for fmt in ["%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%d %H:%M:%S%.f"] {
        if let Ok(t) = NaiveDateTime::parse_from_str(s, fmt) {
            return Some(Utc.from_utc_datetime(&t));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(json: &str) -> Option<DateTime<Utc>> {
        parse(&RawValue::from_string(json.to_owned()).unwrap())
    }

    #[test]
    fn reads_offsets_naive_times_and_unix_times() {
        let t = p(r#""2025-12-10T09:53:23+08:00""#).unwrap();
        assert_eq!(t.to_rfc3339(), "2025-12-10T01:53:23+00:00");
        assert_eq!(
            p(r#""2025-12-10T01:53:23.5""#).unwrap().timestamp_millis(),
            t.timestamp_millis() + 500
        );
        assert_eq!(p("1765331603").unwrap(), t);
        assert_eq!(p("1765331603000").unwrap(), t);
        assert_eq!(p(r#""yesterday""#), None);
        assert_eq!(p("-5"), None);
        assert_eq!(p("1e400"), None);
        assert_eq!(p("true"), None);
    }
}
