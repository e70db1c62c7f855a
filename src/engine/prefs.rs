//! Per-profile preferences, the engine's pure model of them: what is
//! listed, what notifies, when to keep quiet, what is muted, which sound
//! plays, how alerts are grouped, and the user's threshold rules.
//!
//! Parsing and writing TOML text live here; files, the config directory and
//! where a profile connects live in `crate::profile`, whose files hold
//! these preferences beside their connection keys. No I/O here.
//!
//! Parsing validates everything, and every error names the line and column
//! of the offending value (unknown keys, bad severities, time zones, times,
//! durations, rules). The format is documented field by field below and in
//! `docs/RULES.md`.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use chrono::{DateTime, NaiveTime, Utc};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::rules::{self, Rule};
use crate::protocol::Severity;

/// Why preferences could not be read or written as TOML.
#[derive(Debug, thiserror::Error)]
pub enum PrefsError {
    /// The text is not valid. A user error: the message names the place to
    /// fix.
    #[error("{path}:{line}:{column}: {message}")]
    Invalid {
        path: String,
        line: usize,
        column: usize,
        message: String,
    },
    /// The preferences could not be turned into TOML. A bug.
    #[error("cannot write preferences: {0}")]
    Serialize(String),
}

impl PrefsError {
    /// A TOML parse error as an [`PrefsError::Invalid`] naming its line
    /// and column in `text`.
    pub fn from_toml(text: &str, origin: &str, e: &toml::de::Error) -> PrefsError {
        let (line, column) = e.span().map(|s| line_col(text, s.start)).unwrap_or((1, 1));
        PrefsError::Invalid {
            path: origin.to_owned(),
            line,
            column,
            message: e.message().trim().to_owned(),
        }
    }
}

/// A user's preferences for one server profile. Every field has a default,
/// so an empty file is valid and means: list everything, notify critical and
/// emergency, no quiet hours, nothing muted, no sounds, no rules.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
#[non_exhaustive]
pub struct Prefs {
    /// The profile file's connection keys (`url`, `style`, `subscribe`):
    /// accepted here so that one file holds both, read by
    /// `crate::profile::Connection`, never written from here.
    #[serde(rename = "url", skip_serializing)]
    _url: Elsewhere,
    #[serde(rename = "style", skip_serializing)]
    _style: Elsewhere,
    #[serde(rename = "subscribe", skip_serializing)]
    _subscribe: Elsewhere,
    /// Minimum severities to list (and store) and to notify.
    pub severity: SeverityPrefs,
    /// Enable (`true`) or disable (`false`) per event type, e.g.
    /// `market_data = false`. The key `"*"` sets the default for types not
    /// listed, so `"*" = false` plus `riskAlert = true` means only risk
    /// alerts. Unlisted types are enabled.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub types: BTreeMap<String, bool>,
    /// The same per channel (`sessions:S42`, `client:c1`, a hub channel).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub channels: BTreeMap<String, bool>,
    /// The same per symbol (subject `symbol:SPY` or a `symbol` field).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub symbols: BTreeMap<String, bool>,
    /// The same per department (subject `department:X` or a `department`
    /// / `department_name` field, so an employee alert counts for its
    /// department too).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub departments: BTreeMap<String, bool>,
    /// The same per client (subject `client:c1` or a `client_id` /
    /// `clientId` field).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub clients: BTreeMap<String, bool>,
    /// The same per whole subject (`session:S42`, `employee:EMP001`, …).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub subjects: BTreeMap<String, bool>,
    /// Hours during which only severe alerts notify. Default none.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub quiet_hours: Option<QuietHours>,
    /// Muted or snoozed sources, subjects, types or channels: still listed
    /// and stored, never notified (emergencies excepted unless
    /// `mute_emergencies`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub mute: Vec<Mute>,
    /// Whether a mute silences emergencies too. Default false: an emergency
    /// stop always gets through a mute.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub mute_emergencies: bool,
    /// Sound per severity: a freedesktop sound name (`message-new-instant`)
    /// or a path to a sound file. Default none.
    #[serde(skip_serializing_if = "Sounds::is_empty")]
    pub sounds: Sounds,
    /// Grouping, burst and repeat settings.
    pub dedupe: DedupePrefs,
    /// How long the inbox keeps what this profile stores.
    #[serde(skip_serializing_if = "InboxPrefs::is_default")]
    pub inbox: InboxPrefs,
    /// Threshold rules, one per string, in the syntax of `docs/RULES.md`,
    /// e.g. `"employee_stress: stress_rate > 40 => warning"`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub rules: Vec<toml::Spanned<String>>,
}

/// A key whose value another module reads: any value is accepted here.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
struct Elsewhere;

impl<'de> Deserialize<'de> for Elsewhere {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        serde::de::IgnoredAny::deserialize(d).map(|_| Elsewhere)
    }
}

/// Minimum severities.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
#[non_exhaustive]
pub struct SeverityPrefs {
    /// Below this an event is dropped: not listed, not stored. Default info.
    pub list: Severity,
    /// Below this an event never notifies. Default critical.
    pub notify: Severity,
}

impl Default for SeverityPrefs {
    fn default() -> Self {
        SeverityPrefs {
            list: Severity::Info,
            notify: Severity::Critical,
        }
    }
}

/// Quiet hours: from `start` to `end` (local wall-clock time in
/// `timezone`; `end` before `start` spans midnight), only alerts at or above
/// `allow` notify.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "QuietHoursRaw", into = "QuietHoursRaw")]
#[non_exhaustive]
pub struct QuietHours {
    pub start: NaiveTime,
    pub end: NaiveTime,
    /// An IANA time zone (`Europe/London`, `America/New_York`). Default UTC.
    pub timezone: chrono_tz::Tz,
    /// The least severity that still notifies. Default emergency.
    pub allow: Severity,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct QuietHoursRaw {
    start: String,
    end: String,
    #[serde(default = "utc_name")]
    timezone: String,
    #[serde(default = "emergency")]
    allow: Severity,
}

fn utc_name() -> String {
    "UTC".into()
}
fn emergency() -> Severity {
    Severity::Emergency
}

fn parse_hhmm(what: &str, s: &str) -> Result<NaiveTime, String> {
    NaiveTime::parse_from_str(s.trim(), "%H:%M")
        .map_err(|_| format!("quiet_hours.{what} {s:?} is not a time of day like \"22:00\""))
}

impl TryFrom<QuietHoursRaw> for QuietHours {
    type Error = String;
    fn try_from(r: QuietHoursRaw) -> Result<Self, String> {
        let start = parse_hhmm("start", &r.start)?;
        let end = parse_hhmm("end", &r.end)?;
        if start == end {
            return Err(
                "quiet_hours.start and quiet_hours.end are equal: the period is empty".into(),
            );
        }
        let timezone = chrono_tz::Tz::from_str(r.timezone.trim()).map_err(|_| {
            format!(
                "unknown time zone {:?} (use an IANA name like \"Europe/London\")",
                r.timezone
            )
        })?;
        Ok(QuietHours {
            start,
            end,
            timezone,
            allow: r.allow,
        })
    }
}

impl From<QuietHours> for QuietHoursRaw {
    fn from(q: QuietHours) -> Self {
        QuietHoursRaw {
            start: q.start.format("%H:%M").to_string(),
            end: q.end.format("%H:%M").to_string(),
            timezone: q.timezone.name().to_owned(),
            allow: q.allow,
        }
    }
}

impl QuietHours {
    pub fn new(start: NaiveTime, end: NaiveTime, timezone: chrono_tz::Tz) -> QuietHours {
        QuietHours {
            start,
            end,
            timezone,
            allow: Severity::Emergency,
        }
    }
    pub fn allow(mut self, s: Severity) -> Self {
        self.allow = s;
        self
    }

    /// Whether `now` falls inside the quiet period, in the configured zone
    /// (so daylight-saving changes move the period with the wall clock).
    pub fn contains(&self, now: DateTime<Utc>) -> bool {
        let local = now.with_timezone(&self.timezone).time();
        if self.start < self.end {
            local >= self.start && local < self.end
        } else {
            local >= self.start || local < self.end
        }
    }
}

/// What a mute applies to: exactly one of the four.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MuteTarget {
    /// The connection's label (the profile name or the URL).
    Source(String),
    /// A whole subject, `department:Engineering`.
    Subject(String),
    /// An event type.
    Type(String),
    /// A channel.
    Channel(String),
}

impl fmt::Display for MuteTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MuteTarget::Source(s) => write!(f, "source {s}"),
            MuteTarget::Subject(s) => write!(f, "subject {s}"),
            MuteTarget::Type(s) => write!(f, "type {s}"),
            MuteTarget::Channel(s) => write!(f, "channel {s}"),
        }
    }
}

/// One mute (no `until`) or snooze (`until` a time).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "MuteRaw", into = "MuteRaw")]
#[non_exhaustive]
pub struct Mute {
    pub target: MuteTarget,
    /// When the snooze ends; `None` mutes until the entry is removed.
    pub until: Option<DateTime<Utc>>,
}

impl Mute {
    pub fn new(target: MuteTarget, until: Option<DateTime<Utc>>) -> Mute {
        Mute { target, until }
    }
    /// Whether the mute is in force at `now`.
    pub fn active(&self, now: DateTime<Utc>) -> bool {
        self.until.is_none_or(|u| now < u)
    }
}

#[derive(Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct MuteRaw {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    source: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    subject: Option<String>,
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    kind: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    channel: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    until: Option<toml::value::Datetime>,
}

impl TryFrom<MuteRaw> for Mute {
    type Error = String;
    fn try_from(r: MuteRaw) -> Result<Self, String> {
        let mut targets = [
            r.source.map(MuteTarget::Source),
            r.subject.map(MuteTarget::Subject),
            r.kind.map(MuteTarget::Type),
            r.channel.map(MuteTarget::Channel),
        ]
        .into_iter()
        .flatten();
        let target = targets
            .next()
            .ok_or("a mute needs one of source, subject, type or channel")?;
        if targets.next().is_some() {
            return Err(
                "a mute names exactly one of source, subject, type or channel; use two entries"
                    .into(),
            );
        }
        let until = r
            .until
            .map(|d| {
                if d.offset.is_none() || d.date.is_none() || d.time.is_none() {
                    return Err(format!(
                        "mute until {d} needs a date, a time and an offset, like 2025-06-01T12:00:00Z"
                    ));
                }
                DateTime::parse_from_rfc3339(&d.to_string())
                    .map(|t| t.with_timezone(&Utc))
                    .map_err(|e| format!("mute until {d}: {e}"))
            })
            .transpose()?;
        Ok(Mute { target, until })
    }
}

impl From<Mute> for MuteRaw {
    fn from(m: Mute) -> Self {
        let mut r = MuteRaw {
            until: m.until.and_then(|u| {
                toml::value::Datetime::from_str(
                    &u.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                )
                .ok()
            }),
            ..MuteRaw::default()
        };
        match m.target {
            MuteTarget::Source(s) => r.source = Some(s),
            MuteTarget::Subject(s) => r.subject = Some(s),
            MuteTarget::Type(s) => r.kind = Some(s),
            MuteTarget::Channel(s) => r.channel = Some(s),
        }
        r
    }
}

/// Sound per severity.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
#[non_exhaustive]
pub struct Sounds {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub info: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub warning: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub critical: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub emergency: Option<String>,
}

impl Sounds {
    fn is_empty(&self) -> bool {
        *self == Sounds::default()
    }

    /// The sound for a severity; an empty string means none.
    pub fn for_severity(&self, s: Severity) -> Option<&str> {
        match s {
            Severity::Info => self.info.as_deref(),
            Severity::Warning => self.warning.as_deref(),
            Severity::Critical => self.critical.as_deref(),
            Severity::Emergency => self.emergency.as_deref(),
        }
        .filter(|s| !s.is_empty())
    }
}

/// Dedupe, burst and repeat settings (see `engine::dedupe`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
#[non_exhaustive]
pub struct DedupePrefs {
    /// The same alert again within this window is counted, not notified
    /// again. Default 60 s.
    pub window: HumanDuration,
    /// More than this many notifications of one severity in one group
    /// within `burst_window` become one summary. Default 5.
    pub burst_count: u32,
    /// Default 30 s.
    pub burst_window: HumanDuration,
    /// How often an unacknowledged alert at or above `repeat_severity` is
    /// notified again; `"off"` never. Default 4 h (Alertmanager's
    /// `repeat_interval`).
    pub repeat_interval: HumanDuration,
    /// Default critical.
    pub repeat_severity: Severity,
}

impl Default for DedupePrefs {
    fn default() -> Self {
        DedupePrefs {
            window: HumanDuration(Duration::from_secs(60)),
            burst_count: 5,
            burst_window: HumanDuration(Duration::from_secs(30)),
            repeat_interval: HumanDuration(Duration::from_secs(4 * 3600)),
            repeat_severity: Severity::Critical,
        }
    }
}

/// The inbox's retention (`[inbox]`). One inbox holds every profile's
/// alerts, so it keeps them as long as the profile that wants them longest
/// (`crate::alerting`); unacknowledged critical and emergency alerts are
/// kept whatever their age.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
#[non_exhaustive]
pub struct InboxPrefs {
    /// Alerts received longer ago than this are deleted; `"off"` keeps
    /// them forever. Default 90 days.
    pub keep: HumanDuration,
}

impl InboxPrefs {
    /// The default: 90 days.
    pub const DEFAULT_KEEP: Duration = Duration::from_secs(90 * 86_400);

    fn is_default(&self) -> bool {
        *self == InboxPrefs::default()
    }

    /// How long to keep alerts; `None`: forever.
    pub fn keep(&self) -> Option<Duration> {
        Some(self.keep.0).filter(|d| !d.is_zero())
    }
}

impl Default for InboxPrefs {
    fn default() -> Self {
        InboxPrefs {
            keep: HumanDuration(InboxPrefs::DEFAULT_KEEP),
        }
    }
}

/// A duration written as `90s`, `5m`, `4h`, `1d`, `1h30m` or `off` (zero).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct HumanDuration(pub Duration);

impl FromStr for HumanDuration {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        parse_duration(s).map(HumanDuration)
    }
}

impl fmt::Display for HumanDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut secs = self.0.as_secs();
        if secs == 0 {
            return f.write_str("off");
        }
        for (unit, n) in [("d", 86_400), ("h", 3_600), ("m", 60), ("s", 1)] {
            if secs >= n {
                write!(f, "{}{unit}", secs / n)?;
                secs %= n;
            }
        }
        Ok(())
    }
}

impl Serialize for HumanDuration {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for HumanDuration {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// Parses `90s`, `5m`, `4h`, `2d`, `1h30m`, `500ms`, `0` or `off`.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let t = s.trim();
    if t.eq_ignore_ascii_case("off") || t == "0" {
        return Ok(Duration::ZERO);
    }
    let bad = || format!("{s:?} is not a duration like \"90s\", \"5m\", \"4h\", \"1d\" or \"off\"");
    let mut total = Duration::ZERO;
    let mut rest = t;
    if rest.is_empty() {
        return Err(bad());
    }
    while !rest.is_empty() {
        let digits = rest.find(|c: char| !c.is_ascii_digit()).ok_or_else(bad)?;
        if digits == 0 {
            return Err(bad());
        }
        let n: u64 = rest[..digits].parse().map_err(|_| bad())?;
        rest = &rest[digits..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(rest.len());
        let unit = &rest[..unit_len];
        rest = &rest[unit_len..];
        let part = match unit {
            "ms" => Duration::from_millis(n),
            "s" => Duration::from_secs(n),
            "m" => Duration::from_secs(n.saturating_mul(60)),
            "h" => Duration::from_secs(n.saturating_mul(3600)),
            "d" => Duration::from_secs(n.saturating_mul(86_400)),
            _ => return Err(bad()),
        };
        total = total.saturating_add(part);
    }
    Ok(total)
}

impl Prefs {
    /// Parses and validates preferences. `origin` names the file in errors.
    pub fn from_toml(text: &str, origin: &str) -> Result<(Prefs, Vec<Rule>), PrefsError> {
        let prefs: Prefs =
            toml::from_str(text).map_err(|e| PrefsError::from_toml(text, origin, &e))?;
        let rules = prefs.compile_rules(text, origin)?;
        Ok((prefs, rules))
    }

    /// Parses the `rules` strings; errors point into the file.
    fn compile_rules(&self, text: &str, origin: &str) -> Result<Vec<Rule>, PrefsError> {
        let mut out = Vec::with_capacity(self.rules.len());
        for r in &self.rules {
            let span = r.span();
            let (line, col) = line_col(text, span.start);
            // The string's first character follows its opening quote(s).
            let quote = text
                .get(span.start..)
                .map(|t| {
                    if t.starts_with("\"\"\"") || t.starts_with("'''") {
                        3
                    } else {
                        1
                    }
                })
                .unwrap_or(1);
            let multi = quote == 3;
            match rules::parse_rule(r.get_ref()) {
                Ok(Some(rule)) => out.push(rule.at_line(line)),
                Ok(None) => {}
                Err(e) => {
                    return Err(PrefsError::Invalid {
                        path: origin.to_owned(),
                        line: if multi { line + e.line } else { line },
                        column: if multi || e.line > 1 {
                            e.column
                        } else {
                            col + quote + e.column - 1
                        },
                        message: format!("rule: {}", e.message),
                    });
                }
            }
        }
        Ok(out)
    }

    /// The preferences as TOML text.
    pub fn to_toml(&self) -> Result<String, PrefsError> {
        toml::to_string_pretty(self).map_err(|e| PrefsError::Serialize(e.to_string()))
    }

    /// Mutes `target` until `now + duration` (a snooze), replacing any mute
    /// of the same target, and forgets expired snoozes.
    pub fn snooze(&mut self, target: MuteTarget, duration: Duration, now: DateTime<Utc>) {
        let until = chrono::Duration::from_std(duration)
            .ok()
            .and_then(|d| now.checked_add_signed(d));
        self.mute.retain(|m| m.target != target && m.active(now));
        self.mute.push(Mute { target, until });
    }

    /// Mutes `target` until [`Prefs::unmute`].
    pub fn mute(&mut self, target: MuteTarget) {
        self.mute.retain(|m| m.target != target);
        self.mute.push(Mute {
            target,
            until: None,
        });
    }

    /// Removes any mute or snooze of `target`; true when there was one.
    pub fn unmute(&mut self, target: &MuteTarget) -> bool {
        let before = self.mute.len();
        self.mute.retain(|m| &m.target != target);
        before != self.mute.len()
    }

    /// Adds a rule after checking it; the error names the column.
    pub fn add_rule(&mut self, text: &str) -> Result<(), rules::RuleError> {
        rules::parse_rule(text)?;
        self.rules.push(toml::Spanned::new(0..0, text.to_owned()));
        Ok(())
    }
}

/// 1-based line and column (in characters) of a byte offset.
pub(crate) fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(text.len());
    let before = text.get(..offset).unwrap_or(text);
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let column = before.get(line_start..).map_or(0, |s| s.chars().count()) + 1;
    (line, column)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn invalid(text: &str) -> (usize, usize, String) {
        match Prefs::from_toml(text, "p.toml") {
            Err(PrefsError::Invalid {
                line,
                column,
                message,
                ..
            }) => (line, column, message),
            other => panic!("expected an invalid-file error, got {other:?}"),
        }
    }

    #[test]
    fn empty_file_is_defaults() {
        let (p, rules) = Prefs::from_toml("", "p.toml").unwrap();
        assert_eq!(p, Prefs::default());
        assert!(rules.is_empty());
        assert_eq!(p.severity.notify, Severity::Critical);
        assert_eq!(p.severity.list, Severity::Info);
        assert_eq!(p.inbox.keep(), Some(Duration::from_secs(90 * 86_400)));
        assert!(
            !p.to_toml().unwrap().contains("[inbox]"),
            "defaults are not written"
        );
    }

    #[test]
    fn inbox_keep_off_is_forever_and_a_bad_value_names_its_line() {
        let (p, _) = Prefs::from_toml("[inbox]\nkeep = \"off\"\n", "p.toml").unwrap();
        assert_eq!(p.inbox.keep(), None);
        let again = Prefs::from_toml(&p.to_toml().unwrap(), "again").unwrap().0;
        assert_eq!(again.inbox.keep(), None, "off survives a save");
        let (line, col, msg) = invalid("[inbox]\nkeep = \"ninety days\"\n");
        assert_eq!((line, col), (2, 8), "{msg}");
        assert!(msg.contains("ninety days"), "{msg}");
    }

    #[test]
    fn full_file_parses() {
        let text = r#"
url = "wss://risk.example.com/ws/alerts"
rules = [
  "employee_stress: stress_rate > 40 => warning",
  "riskUpdate: score >= 70 => critical hysteresis 5",
]
[severity]
list = "warning"
notify = "warning"
[types]
market_data = false
[departments]
"*" = false
Engineering = true
[quiet_hours]
start = "22:00"
end = "07:00"
timezone = "Europe/London"
[[mute]]
source = "desk-2"
until = 2030-01-01T00:00:00Z
[[mute]]
subject = "department:Sales"
[sounds]
emergency = "alarm-clock-elapsed"
[dedupe]
window = "2m"
burst_count = 10
burst_window = "1m"
repeat_interval = "off"
[inbox]
keep = "30d"
"#;
        let (p, rules) = Prefs::from_toml(text, "p.toml").unwrap();
        assert_eq!(rules.len(), 2);
        assert_eq!(rules[1].hysteresis, 5.0);
        assert_eq!(p.severity.list, Severity::Warning);
        assert_eq!(p.types.get("market_data"), Some(&false));
        let q = p.quiet_hours.as_ref().unwrap();
        assert_eq!(q.timezone, chrono_tz::Europe::London);
        assert_eq!(q.allow, Severity::Emergency);
        assert_eq!(p.mute.len(), 2);
        assert!(p.mute[1].until.is_none());
        assert_eq!(
            p.sounds.for_severity(Severity::Emergency),
            Some("alarm-clock-elapsed")
        );
        assert_eq!(p.dedupe.window.0, Duration::from_secs(120));
        assert_eq!(p.dedupe.repeat_interval.0, Duration::ZERO);
        assert_eq!(p.inbox.keep(), Some(Duration::from_secs(30 * 86_400)));
        // And back: what is saved loads to the same preferences.
        let again = Prefs::from_toml(&p.to_toml().unwrap(), "again").unwrap().0;
        assert_eq!(again.to_toml().unwrap(), p.to_toml().unwrap());
        assert_eq!(again.mute, p.mute);
    }

    #[test]
    fn unknown_key_names_its_line() {
        let (line, col, msg) = invalid("[severity]\nlist = \"info\"\nnotfy = \"critical\"\n");
        assert_eq!((line, col), (3, 1), "{msg}");
        assert!(msg.contains("notfy"), "{msg}");
    }

    #[test]
    fn bad_severity_names_its_line_and_column() {
        let (line, col, msg) = invalid("\n[severity]\nnotify = \"hihg\"\n");
        assert_eq!((line, col), (3, 10), "{msg}");
        assert!(msg.contains("hihg"), "{msg}");
    }

    #[test]
    fn bad_time_zone_names_its_line() {
        let (line, _, msg) = invalid(
            "[quiet_hours]\nstart = \"22:00\"\nend = \"07:00\"\ntimezone = \"Mars/Olympus\"\n",
        );
        assert!((1..=4).contains(&line), "{line} {msg}");
        assert!(msg.contains("Mars/Olympus"), "{msg}");
    }

    #[test]
    fn bad_time_and_empty_period_are_rejected() {
        let (_, _, msg) = invalid("[quiet_hours]\nstart = \"25:00\"\nend = \"07:00\"\n");
        assert!(msg.contains("25:00"), "{msg}");
        let (_, _, msg) = invalid("[quiet_hours]\nstart = \"07:00\"\nend = \"07:00\"\n");
        assert!(msg.contains("empty"), "{msg}");
    }

    #[test]
    fn bad_duration_names_its_line() {
        let (line, col, msg) = invalid("[dedupe]\nburst_count = 3\nwindow = \"60\"\n");
        assert_eq!((line, col), (3, 10), "{msg}");
        assert!(msg.contains("\"60\" is not a duration"), "{msg}");
    }

    #[test]
    fn mute_needs_exactly_one_target() {
        let (line, _, msg) = invalid("[[mute]]\nsource = \"a\"\nsubject = \"b\"\n");
        assert!(line <= 3, "{line}");
        assert!(msg.contains("exactly one"), "{msg}");
        let (_, _, msg) = invalid("[[mute]]\nuntil = 2030-01-01T00:00:00Z\n");
        assert!(msg.contains("needs one of"), "{msg}");
        let (_, _, msg) = invalid("[[mute]]\nsource = \"a\"\nuntil = 2030-01-01T00:00:00\n");
        assert!(msg.contains("offset"), "{msg}");
    }

    #[test]
    fn bad_rule_names_line_and_column_in_the_file() {
        let text = "url = \"ws://h/ws\"\n\nrules = [\n  \"riskUpdate: score >= 70 => critical\",\n  \"employee_stress: stress_rate >> 40 => warning\",\n]\n[severity]\nlist = \"info\"\n";
        let (line, col, msg) = invalid(text);
        assert_eq!(line, 5, "{msg}");
        // `  "employee_stress: stress_rate >` : the second '>' is column 34.
        assert_eq!(col, 34, "{msg}");
        assert!(msg.starts_with("rule:"), "{msg}");
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("90s").unwrap(), Duration::from_secs(90));
        assert_eq!(parse_duration("1h30m").unwrap(), Duration::from_secs(5400));
        assert_eq!(parse_duration("off").unwrap(), Duration::ZERO);
        assert_eq!(parse_duration("250ms").unwrap(), Duration::from_millis(250));
        assert!(parse_duration("").is_err());
        assert!(parse_duration("5").is_err());
        assert!(parse_duration("m5").is_err());
        assert!(parse_duration("5w").is_err());
        assert_eq!(
            HumanDuration(Duration::from_secs(5400)).to_string(),
            "1h30m"
        );
    }

    #[test]
    fn quiet_hours_across_midnight_in_a_time_zone() {
        use chrono::TimeZone;
        let q = QuietHours::new(
            NaiveTime::from_hms_opt(22, 0, 0).unwrap(),
            NaiveTime::from_hms_opt(7, 0, 0).unwrap(),
            chrono_tz::America::New_York,
        );
        // 03:00 UTC on 15 Jan = 22:00 in New York (EST, UTC-5): quiet.
        assert!(q.contains(Utc.with_ymd_and_hms(2025, 1, 15, 3, 0, 0).unwrap()));
        // 02:59 UTC = 21:59 New York: not yet.
        assert!(!q.contains(Utc.with_ymd_and_hms(2025, 1, 15, 2, 59, 0).unwrap()));
        // 11:59 UTC = 06:59 New York: still quiet; 12:00 UTC = 07:00: over.
        assert!(q.contains(Utc.with_ymd_and_hms(2025, 1, 15, 11, 59, 0).unwrap()));
        assert!(!q.contains(Utc.with_ymd_and_hms(2025, 1, 15, 12, 0, 0).unwrap()));
        // In July New York is on EDT (UTC-4): 22:00 local is 02:00 UTC.
        assert!(q.contains(Utc.with_ymd_and_hms(2025, 7, 15, 2, 0, 0).unwrap()));
        assert!(!q.contains(Utc.with_ymd_and_hms(2025, 7, 15, 1, 59, 0).unwrap()));
    }

    #[test]
    fn snooze_replaces_and_expires() {
        use chrono::TimeZone;
        let now = Utc.with_ymd_and_hms(2025, 1, 1, 12, 0, 0).unwrap();
        let mut p = Prefs::default();
        let t = MuteTarget::Source("desk".into());
        p.snooze(t.clone(), Duration::from_secs(3600), now);
        p.snooze(t.clone(), Duration::from_secs(7200), now);
        assert_eq!(p.mute.len(), 1);
        assert!(p.mute[0].active(now + chrono::Duration::minutes(119)));
        assert!(!p.mute[0].active(now + chrono::Duration::minutes(120)));
        assert!(p.unmute(&t));
        assert!(p.mute.is_empty());
    }

    #[test]
    fn line_col_counts_characters() {
        assert_eq!(line_col("ab\ncé\nx", 0), (1, 1));
        assert_eq!(line_col("ab\ncé\nx", 3), (2, 1));
        assert_eq!(line_col("ab\ncé\nx", 6), (2, 3));
        assert_eq!(line_col("ab\ncé\nx", 7), (3, 1));
    }

    /// Every `toml` example in docs/RULES.md loads: the documented rules
    /// are real ones.
    #[test]
    fn the_documented_examples_load() {
        let doc = include_str!("../../docs/RULES.md");
        let mut n = 0;
        for block in doc.split("```toml\n").skip(1) {
            let text = block.split("```").next().unwrap_or_default();
            if let Err(e) = Prefs::from_toml(text, "RULES.md") {
                panic!("a documented example does not load: {e}\n{text}");
            }
            n += 1;
        }
        assert!(n >= 2, "examples found: {n}");
    }
}
