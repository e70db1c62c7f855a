//! The times and positions the CLI reads after `--since` and `--until`:
//! `inbox` filters its rows by time, `watch --since` asks a hub to replay
//! its history (by time, after a sequence number, or all of it). One
//! syntax for both: `10m`, `2h`, `7d`, a date, an RFC 3339 time.

use anyhow::Context;
use chrono::{DateTime, Duration, NaiveDate, Utc};
use riskwatch::client::Replay;

/// A time: `10m`, `2h`, `7d` (back from `now`), a date (`2026-12-01`,
/// midnight UTC) or an RFC 3339 time.
pub fn when(s: &str, now: DateTime<Utc>) -> anyhow::Result<DateTime<Utc>> {
    let s = s.trim();
    if let Some(unit) = s.chars().last().filter(char::is_ascii_alphabetic)
        && let Ok(n) = s[..s.len() - 1].parse::<i64>()
        && n >= 0
    {
        let ago = match unit {
            's' => Duration::try_seconds(n),
            'm' => Duration::try_minutes(n),
            'h' => Duration::try_hours(n),
            'd' => Duration::try_days(n),
            _ => None,
        };
        return ago
            .and_then(|d| now.checked_sub_signed(d))
            .context("expected a count of s, m, h or d");
    }
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Ok(t.with_timezone(&Utc));
    }
    if let Ok(d) = NaiveDate::parse_from_str(s, "%Y-%m-%d")
        && let Some(t) = d.and_hms_opt(0, 0, 0)
    {
        return Ok(t.and_utc());
    }
    anyhow::bail!("expected 10m, 2h, 7d, a date (YYYY-MM-DD) or an RFC 3339 time")
}

/// What `watch --since` asks the hub to replay: `all`, a sequence number
/// (everything after it), or a time as [`when`] reads it.
pub fn replay(s: &str, now: DateTime<Utc>) -> anyhow::Result<Replay> {
    let t = s.trim();
    if t.eq_ignore_ascii_case("all") {
        return Ok(Replay::All);
    }
    if !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit()) {
        return t
            .parse()
            .map(Replay::AfterSeq)
            .context("too large for a sequence number");
    }
    // Its own words: `when`'s would not mention `all` or a number.
    when(t, now).map(Replay::AfterTime).map_err(|_| {
        anyhow::anyhow!(
            "expected all, a sequence number, 10m, 2h, 7d, a date (YYYY-MM-DD) or an RFC 3339 time"
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_relative_dates_or_rfc3339() {
        let now = DateTime::parse_from_rfc3339("2026-12-07T12:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let at = |s: &str| when(s, now).ok().map(|t| t.to_rfc3339());
        assert_eq!(at("10m").as_deref(), Some("2026-12-07T11:50:00+00:00"));
        assert_eq!(at("2h").as_deref(), Some("2026-12-07T10:00:00+00:00"));
        assert_eq!(at("7d").as_deref(), Some("2026-11-30T12:00:00+00:00"));
        assert_eq!(
            at("2026-12-01").as_deref(),
            Some("2026-12-01T00:00:00+00:00")
        );
        assert_eq!(
            at("2026-12-06T09:30:00+01:00").as_deref(),
            Some("2026-12-06T08:30:00+00:00")
        );
        for bad in ["", "10", "10x", "-5m", "yesterday", "99999999999999d"] {
            assert!(when(bad, now).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn replay_is_all_a_sequence_or_a_time() {
        let now = DateTime::parse_from_rfc3339("2026-12-07T12:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let r = |s: &str| replay(s, now).ok();
        assert_eq!(r("all"), Some(Replay::All));
        assert_eq!(r(" ALL "), Some(Replay::All));
        assert_eq!(r("1041"), Some(Replay::AfterSeq(1041)));
        assert_eq!(r("10m"), Some(Replay::AfterTime(when("10m", now).unwrap())));
        assert_eq!(
            r("2026-12-07T09:00:00+01:00"),
            Some(Replay::AfterTime(
                when("2026-12-07T08:00:00Z", now).unwrap()
            ))
        );
        for bad in ["", "soon", "-5", "10 minutes", "99999999999999999999"] {
            assert!(replay(bad, now).is_err(), "{bad:?} was taken");
        }
    }
}
