//! The alert engine: between the client and every sink, it decides for each
//! event whether it is listed (and stored), at what severity, and whether —
//! and how — it notifies.
//!
//! [`Engine::decide`] is a pure function of the engine's state, the event
//! and `now`: no clock, no I/O, so tests replay a day in microseconds and
//! the benchmark measures the decision alone. The steps, in order:
//!
//! 1. **Filters** ([`prefs`]): a disabled type, channel, symbol, department,
//!    client or subject drops the event (not listed, not stored).
//! 2. **Rules** ([`rules`]): threshold rules on payload fields raise the
//!    severity on their rising edge only.
//! 3. **Minimum severity to list**: below it the event is dropped.
//! 4. **Minimum severity to notify**, **mutes and snoozes**, **quiet hours**
//!    (only severe alerts get through, emergencies by default).
//! 5. **Dedupe** ([`dedupe`]): duplicates are counted, bursts summarised,
//!    unacknowledged critical alerts repeated ([`Engine::tick`]).
//!
//! The [`Decision`] says what happened and why ([`Reason`]), so the CLI can
//! print it and tests can assert it.

pub mod dedupe;
pub mod prefs;
pub mod rules;

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;

use crate::protocol::{Event, Severity};
pub use dedupe::{DedupeConfig, Notification, NotificationKind, Origin};
pub use prefs::{MuteTarget, Prefs, PrefsError};
pub use rules::{Rule, RuleError};

/// What the engine decided for one event.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Decision {
    /// Shown in lists and stored in the inbox.
    pub list: bool,
    /// The notification to raise now, if any.
    pub notify: Option<Notification>,
    /// The event's severity after rules (rules only raise it).
    pub severity_after_rules: Severity,
    /// Why, step by step.
    pub reasons: Vec<Reason>,
    /// The alert's identity for dedupe and acknowledgement: the event id
    /// when the server gives one, else source + type + subject (+ the alert
    /// kind when the payload names one).
    pub key: String,
}

impl Decision {
    /// Whether the event passes the preferences at all: listed, or a state
    /// message whose level did not change (shown in a stream, not stored
    /// as an alert).
    pub fn shown(&self) -> bool {
        self.list
            || self
                .reasons
                .iter()
                .any(|r| matches!(r, Reason::StateUnchanged { .. }))
    }

    /// Whether the event left something for [`Engine::tick`] to do later
    /// (a duplicate count, a burst summary, a repeat), so that a caller
    /// sleeping until [`Engine::next_due`] must look again.
    pub fn scheduled(&self) -> bool {
        self.reasons.iter().any(|r| {
            matches!(
                r,
                Reason::Duplicate { .. } | Reason::Burst { .. } | Reason::Notified { .. }
            )
        })
    }
}

/// One step of a decision.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "reason", rename_all = "snake_case")]
pub enum Reason {
    /// Dropped by an enable/disable table, e.g. `department Sales`.
    Disabled { by: String },
    /// A rule crossed its threshold.
    RuleFired {
        rule: String,
        line: usize,
        /// The field's value that made it fire.
        value: serde_json::Value,
    },
    /// A state message (a session's, a department's, …) at the level its
    /// subject already had: it updates dashboards but is no new alert, so
    /// it is neither stored nor notified.
    StateUnchanged { severity: Severity },
    /// Below the minimum severity to list: dropped.
    BelowListSeverity { min: Severity },
    /// Listed, but below the minimum severity to notify.
    BelowNotifySeverity { min: Severity },
    /// Muted or snoozed.
    Muted {
        target: String,
        until: Option<DateTime<Utc>>,
    },
    /// Inside quiet hours and below the severity they let through.
    QuietHours { allow: Severity },
    /// The same alert within its dedupe window.
    Duplicate { count: u32 },
    /// Folded into a burst summary.
    Burst { group: String, count: u32 },
    /// A notification is raised.
    Notified { kind: NotificationKind },
}

impl std::fmt::Display for Reason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Reason::Disabled { by } => write!(f, "disabled by {by}"),
            Reason::RuleFired { rule, value, .. } => write!(f, "rule {rule} fired at {value}"),
            Reason::StateUnchanged { severity } => {
                write!(f, "state unchanged (still {severity})")
            }
            Reason::BelowListSeverity { min } => write!(f, "below the list minimum {min}"),
            Reason::BelowNotifySeverity { min } => write!(f, "below the notify minimum {min}"),
            Reason::Muted { target, .. } => write!(f, "{target} is muted"),
            Reason::QuietHours { allow } => write!(f, "quiet hours (only {allow} and above)"),
            Reason::Duplicate { count } => write!(f, "duplicate (×{count})"),
            Reason::Burst { group, count } => write!(f, "burst in {group} ({count})"),
            Reason::Notified { kind } => write!(f, "notified ({kind:?})"),
        }
    }
}

/// The engine: preferences, rules with their rising-edge state, dedupe.
#[derive(Debug)]
pub struct Engine {
    prefs: Prefs,
    rules: rules::RuleSet,
    rule_state: rules::RuleState,
    dedupe: dedupe::Dedupe,
    /// The last level of each state message's subject (see
    /// [`is_state`]): its severity and its status word, bounded by
    /// [`MAX_LEVELS`].
    levels: HashMap<String, String>,
}

/// Subjects whose state level is remembered; beyond it the memory starts
/// over (each subject's next message is then an alert once more).
const MAX_LEVELS: usize = 50_000;

/// Whether messages of `kind` report a subject's state (sent on every
/// change or tick) rather than an alert: they are an alert only when their
/// level changes. Alert types (`risk_alert`, `department_critical`,
/// `employee_stress`, …) are not.
pub fn is_state(kind: &str) -> bool {
    matches!(
        kind,
        "session_status"
            | "department_update"
            | "employee_update"
            | "dashboard_update"
            | "engagement_update"
            | "interaction_update"
            | "market_data"
            | "riskUpdate"
            | "riskPrediction"
    )
}

impl Default for Engine {
    fn default() -> Self {
        Engine::new(Prefs::default(), Vec::new())
    }
}

fn dedupe_config(p: &Prefs) -> DedupeConfig {
    DedupeConfig::default()
        .window(p.dedupe.window.0)
        .burst(p.dedupe.burst_count, p.dedupe.burst_window.0)
        .repeat(p.dedupe.repeat_interval.0, p.dedupe.repeat_severity)
}

/// The message parsed once, on first need.
struct Parsed<'a> {
    event: &'a Event,
    whole: Option<Value>,
}

impl Parsed<'_> {
    fn whole(&mut self) -> &Value {
        self.whole.get_or_insert_with(|| {
            serde_json::from_str(self.event.payload.get()).unwrap_or(Value::Null)
        })
    }
    /// The subject's id when it has `prefix`, else the first string field
    /// among `fields`.
    fn attr(&mut self, prefix: &str, fields: &[&str]) -> Option<String> {
        if let Some(id) = self
            .event
            .subject
            .as_deref()
            .and_then(|s| s.split_once(':'))
            .filter(|(p, _)| *p == prefix)
            .map(|(_, id)| id)
        {
            return Some(id.to_owned());
        }
        let whole = self.whole();
        fields.iter().find_map(|f| {
            rules::lookup(whole, f).and_then(|v| match v {
                Value::String(s) if !s.is_empty() => Some(s.clone()),
                Value::Number(n) => Some(n.to_string()),
                _ => None,
            })
        })
    }
}

const DEPARTMENT_FIELDS: &[&str] = &["department_name", "department"];
const SYMBOL_FIELDS: &[&str] = &["symbol"];
const CLIENT_FIELDS: &[&str] = &["client_id", "clientId"];
/// Payload fields that tell two alerts about one subject apart.
const ALERT_KIND_FIELDS: &[&str] = &["alertType", "alert_type", "category", "rule"];

/// An enable/disable table, the subject prefix it matches (also its name in
/// reasons), and the payload fields that name the same thing.
type Dimension<'a> = (
    &'a BTreeMap<String, bool>,
    &'static str,
    &'static [&'static str],
);

/// `Some(allowed)` when the table says something about `value`.
fn table(map: &BTreeMap<String, bool>, value: &str) -> Option<bool> {
    map.get(value).or_else(|| map.get("*")).copied()
}

/// Rules every engine has unless the user wrote a rule for the same type:
/// what the seed backends define as an alert. Seed 003 alerts HR when an
/// employee's stress rate crosses 40, once, re-armed when it is back below
/// (or, as that backend sends nothing below, after a silence; see
/// [`rules::REARM_AFTER_SILENCE`]).
pub const BUILTIN_RULES: &[&str] = &["employee_stress: stress_rate > 40 => critical"];

/// `rules` plus each built-in rule whose type none of them covers.
fn with_builtin(mut rules: Vec<Rule>) -> Vec<Rule> {
    for text in BUILTIN_RULES {
        if let Ok(Some(b)) = rules::parse_rule(text)
            && !rules.iter().any(|r| r.kind == b.kind)
        {
            rules.push(b.at_line(0));
        }
    }
    rules
}

impl Engine {
    /// An engine with these preferences and rules (the rules of
    /// `prefs.rules`, already parsed, plus any others), and the built-in
    /// rules ([`BUILTIN_RULES`]) for types they do not cover.
    pub fn new(prefs: Prefs, rules: Vec<Rule>) -> Engine {
        let dedupe = dedupe::Dedupe::new(dedupe_config(&prefs));
        Engine {
            prefs,
            rules: rules::RuleSet::new(with_builtin(rules)),
            rule_state: rules::RuleState::default(),
            dedupe,
            levels: HashMap::new(),
        }
    }

    pub fn prefs(&self) -> &Prefs {
        &self.prefs
    }

    pub fn rules(&self) -> &[Rule] {
        self.rules.rules()
    }

    /// Replaces preferences and rules, keeping the rising-edge state of
    /// unchanged rules and the dedupe state.
    pub fn set_prefs(&mut self, prefs: Prefs, rules: Vec<Rule>) {
        let new = rules::RuleSet::new(with_builtin(rules));
        self.rule_state.remap(&self.rules, &new);
        self.rules = new;
        self.dedupe.set_config(dedupe_config(&prefs));
        self.prefs = prefs;
    }

    /// Overrides the dedupe settings (tests and embedders).
    pub fn set_dedupe(&mut self, cfg: DedupeConfig) {
        self.dedupe.set_config(cfg);
    }

    /// Decides for one event at `now`.
    pub fn decide(&mut self, event: &Event, now: DateTime<Utc>) -> Decision {
        let mut p = Parsed { event, whole: None };
        let mut reasons = Vec::new();
        let mut severity = event.severity;
        let mut raised_by: Option<String> = None;
        // 1. Filters.
        if let Some(by) = self.disabled_by(&mut p) {
            return decision(
                false,
                None,
                severity,
                vec![Reason::Disabled { by }],
                String::new(),
            );
        }
        // 2. Rules, evaluated for every event so their state follows the
        //    values even while nothing is shown.
        let rule_key = || {
            format!(
                "{}|{}",
                event.source,
                event
                    .subject
                    .as_deref()
                    .or(event.channel.as_deref())
                    .unwrap_or("")
            )
        };
        if !self.rule_state.is_empty() {
            let key = rule_key();
            self.rules
                .rearm_elsewhere(&mut self.rule_state, &event.kind, || p.whole(), &key);
        }
        if self.rules.applies_to(&event.kind) {
            let subject = rule_key();
            let fired = self.rules.evaluate_at(
                &mut self.rule_state,
                &event.kind,
                p.whole(),
                &subject,
                Some(now),
            );
            for f in fired {
                severity = severity.max(f.severity);
                let r = &self.rules.rules()[f.rule];
                raised_by.get_or_insert_with(|| {
                    format!("{} {} {}", r.field, r.op.as_str(), r.target())
                        .trim_end()
                        .to_owned()
                });
                reasons.push(Reason::RuleFired {
                    rule: r.to_string(),
                    line: r.line,
                    value: f.value,
                });
            }
        }
        // 3. A state message is an alert only when its level changes.
        if is_state(&event.kind) {
            let subject = format!(
                "{}|{}|{}",
                event.source,
                event.kind,
                event
                    .subject
                    .as_deref()
                    .or(event.channel.as_deref())
                    .unwrap_or("")
            );
            if self.levels.len() >= MAX_LEVELS && !self.levels.contains_key(&subject) {
                self.levels.clear();
            }
            // The level: the severity and the state's own word (a
            // session's `status`, a department's `overall_risk`), so
            // `active` → `paused` is a change though both are info.
            let word = ["status", "overall_risk", "risk_level", "level"]
                .iter()
                .find_map(|k| match event.field(k) {
                    Some(serde_json::Value::String(s)) => Some(s),
                    _ => None,
                })
                .unwrap_or_default();
            let level = format!("{severity}|{}", word.to_ascii_lowercase());
            if self.levels.get(&subject) == Some(&level) {
                reasons.push(Reason::StateUnchanged { severity });
                return decision(false, None, severity, reasons, String::new());
            }
            self.levels.insert(subject, level);
        }
        // 4. Listed at all?
        let min = &self.prefs.severity;
        if severity < min.list {
            reasons.push(Reason::BelowListSeverity { min: min.list });
            return decision(false, None, severity, reasons, String::new());
        }
        let key = alert_key(&mut p);
        // 5. Notify at all?
        if severity < min.notify {
            reasons.push(Reason::BelowNotifySeverity { min: min.notify });
            return decision(true, None, severity, reasons, key);
        }
        if let Some(m) = self.muted(event, severity, now) {
            reasons.push(m);
            return decision(true, None, severity, reasons, key);
        }
        if let Some(q) = self.quiet(severity, now) {
            reasons.push(q);
            return decision(true, None, severity, reasons, key);
        }
        // 6. Dedupe.
        let group = p
            .attr("department", DEPARTMENT_FIELDS)
            .or_else(|| event.channel.clone())
            .unwrap_or_else(|| event.source.to_string());
        let origin = || Origin {
            source: event.source.clone(),
            kind: event.kind.clone(),
            subject: event.subject.clone(),
            channel: event.channel.clone(),
        };
        let alert = dedupe::Alert {
            key: &key,
            group: &group,
            severity,
            origin: &origin,
        };
        let describe = || {
            let mut d = event.describe();
            if let Some(rule) = raised_by.as_deref().filter(|_| severity > event.severity) {
                // A rule raised it: the event's own text would not say why.
                d.title = format!("{}: {}", capitalised(severity), d.title);
                d.body = if d.body.is_empty() {
                    format!("rule: {rule}")
                } else {
                    format!("{} (rule: {rule})", d.body)
                };
            }
            d
        };
        let notify = match self.dedupe.offer(&alert, describe, now) {
            dedupe::Offer::Notify(mut n) => {
                reasons.push(Reason::Notified { kind: n.kind });
                self.dress(&mut n);
                Some(n)
            }
            dedupe::Offer::Duplicate { count } => {
                reasons.push(Reason::Duplicate { count });
                None
            }
            dedupe::Offer::InBurst { group, count } => {
                reasons.push(Reason::Burst { group, count });
                None
            }
        };
        decision(true, notify, severity, reasons, key)
    }

    /// Notifications due at `now` without a new event (duplicate counts,
    /// burst summaries, repeats), filtered by quiet hours and mutes.
    pub fn tick(&mut self, now: DateTime<Utc>) -> Vec<Notification> {
        let mut due = self.dedupe.tick(now);
        due.retain(|n| {
            let muted = n.origin.as_ref().is_some_and(|o| {
                self.prefs.mute.iter().any(|m| {
                    m.active(now)
                        && mute_matches(
                            &m.target,
                            &o.source,
                            &o.kind,
                            o.subject.as_deref(),
                            o.channel.as_deref(),
                        )
                })
            }) && (n.severity != Severity::Emergency || self.prefs.mute_emergencies);
            !muted && self.quiet(n.severity, now).is_none()
        });
        for n in &mut due {
            self.dress(n);
        }
        due
    }

    /// When [`Engine::tick`] next has something to do (see
    /// [`dedupe::Dedupe::next_due`]); `None`: nothing until the next event.
    pub fn next_due(&self) -> Option<DateTime<Utc>> {
        self.dedupe.next_due()
    }

    /// The user acknowledged the alert `key` (from [`Decision::key`] or
    /// [`Notification::alert`]): it is not repeated any more.
    pub fn acknowledge(&mut self, key: &str) -> bool {
        self.dedupe.acknowledge(key)
    }

    /// Undoes an acknowledgement; repeats resume from `now`.
    pub fn unacknowledge(&mut self, key: &str, now: DateTime<Utc>) -> bool {
        self.dedupe.unacknowledge(key, now)
    }

    fn dress(&self, n: &mut Notification) {
        if !n.silent {
            n.sound = self
                .prefs
                .sounds
                .for_severity(n.severity)
                .map(str::to_owned);
        }
    }

    fn disabled_by(&self, p: &mut Parsed<'_>) -> Option<String> {
        let e = p.event;
        let pr = &self.prefs;
        if table(&pr.types, &e.kind) == Some(false) {
            return Some(format!("type {}", e.kind));
        }
        if let Some(c) = e.channel.as_deref()
            && table(&pr.channels, c) == Some(false)
        {
            return Some(format!("channel {c}"));
        }
        if let Some(s) = e.subject.as_deref()
            && table(&pr.subjects, s) == Some(false)
        {
            return Some(format!("subject {s}"));
        }
        // (table, subject prefix = its name, payload fields)
        let dims: [Dimension<'_>; 3] = [
            (&pr.symbols, "symbol", SYMBOL_FIELDS),
            (&pr.departments, "department", DEPARTMENT_FIELDS),
            (&pr.clients, "client", CLIENT_FIELDS),
        ];
        for (map, name, fields) in dims {
            if map.is_empty() {
                continue;
            }
            if let Some(v) = p.attr(name, fields)
                && table(map, &v) == Some(false)
            {
                return Some(format!("{name} {v}"));
            }
        }
        None
    }

    fn muted(&self, e: &Event, severity: Severity, now: DateTime<Utc>) -> Option<Reason> {
        if severity == Severity::Emergency && !self.prefs.mute_emergencies {
            return None;
        }
        self.prefs
            .mute
            .iter()
            .find(|m| {
                m.active(now)
                    && mute_matches(
                        &m.target,
                        &e.source,
                        &e.kind,
                        e.subject.as_deref(),
                        e.channel.as_deref(),
                    )
            })
            .map(|m| Reason::Muted {
                target: m.target.to_string(),
                until: m.until,
            })
    }

    fn quiet(&self, severity: Severity, now: DateTime<Utc>) -> Option<Reason> {
        self.prefs
            .quiet_hours
            .as_ref()
            .filter(|q| severity < q.allow && q.contains(now))
            .map(|q| Reason::QuietHours { allow: q.allow })
    }
}

/// The outcome, in one place.
fn decision(
    list: bool,
    notify: Option<Notification>,
    severity: Severity,
    reasons: Vec<Reason>,
    key: String,
) -> Decision {
    Decision {
        list,
        notify,
        severity_after_rules: severity,
        reasons,
        key,
    }
}

fn capitalised(s: Severity) -> &'static str {
    match s {
        Severity::Info => "Info",
        Severity::Warning => "Warning",
        Severity::Critical => "Critical",
        Severity::Emergency => "EMERGENCY",
    }
}

fn mute_matches(
    t: &MuteTarget,
    source: &str,
    kind: &str,
    subject: Option<&str>,
    channel: Option<&str>,
) -> bool {
    match t {
        MuteTarget::Source(s) => s == source,
        MuteTarget::Type(s) => s == kind,
        MuteTarget::Subject(s) => subject == Some(s.as_str()),
        MuteTarget::Channel(s) => channel == Some(s.as_str()),
    }
}

/// The alert's identity: the server's id, else source, type, subject (or
/// channel) and the payload's alert kind when it names one.
fn alert_key(p: &mut Parsed<'_>) -> String {
    let e = p.event;
    if let Some(id) = e.id.as_deref() {
        return format!("{}|id|{id}", e.source);
    }
    let what = e.subject.as_deref().or(e.channel.as_deref()).unwrap_or("");
    let whole = p.whole();
    let kind = ALERT_KIND_FIELDS.iter().find_map(|f| {
        rules::lookup(whole, f)
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
    });
    match kind {
        Some(k) => format!("{}|{}|{what}|{k}", e.source, e.kind),
        None => format!("{}|{}|{what}", e.source, e.kind),
    }
}

#[cfg(test)]
mod tests;
