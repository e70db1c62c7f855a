//! User-written threshold rules on payload fields, and their rising-edge
//! state.
//!
//! A rule reads `TYPE: FIELD OP NUMBER => SEVERITY [hysteresis H]`, e.g.
//! `employee_stress: stress_rate > 40 => warning`; `FIELD == "text"` (or
//! `!=`, numbers too) compares exactly, and `FIELD changes` fires when a
//! subject's value differs from the one before (the full syntax is in
//! `docs/RULES.md`). It fires once when its condition becomes true for one
//! subject (the *rising edge*), stays quiet while the value stays beyond the
//! threshold, and is re-armed when the value falls back below the threshold
//! minus the hysteresis (above it plus the hysteresis for `<` and `<=`). So
//! a backend that re-sends the same high value every few seconds alerts
//! once, not every few seconds.
//!
//! The parser is hand-written (the grammar is one line long) and reports the
//! 1-based line and column of the first thing it cannot read. Evaluation is
//! pure: [`RuleSet::evaluate`] takes the state, an event's fields and returns
//! what fired.

use std::collections::HashMap;
use std::fmt;

use chrono::{DateTime, Utc};
use serde_json::Value;

use crate::protocol::Severity;

/// A rule that could not be parsed: where, and why. A user error.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}, column {column}: {message}")]
pub struct RuleError {
    /// 1-based line in the text given to [`parse_rules`] (1 for
    /// [`parse_rule`]).
    pub line: usize,
    /// 1-based column, in characters.
    pub column: usize,
    pub message: String,
}

/// A comparison.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Gt,
    Ge,
    Lt,
    Le,
    /// Equal: a text exactly, or a number.
    Eq,
    /// Not equal.
    Ne,
    /// The subject's value differs from its previous one.
    Changes,
}

impl Op {
    fn holds(self, v: f64, t: f64) -> bool {
        match self {
            Op::Gt => v > t,
            Op::Ge => v >= t,
            Op::Lt => v < t,
            Op::Le => v <= t,
            Op::Eq => v == t,
            Op::Ne => v != t,
            Op::Changes => false,
        }
    }
    pub fn as_str(self) -> &'static str {
        match self {
            Op::Gt => ">",
            Op::Ge => ">=",
            Op::Lt => "<",
            Op::Le => "<=",
            Op::Eq => "==",
            Op::Ne => "!=",
            Op::Changes => "changes",
        }
    }
}

/// One parsed rule.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct Rule {
    /// The event type it applies to; `*` for every type.
    pub kind: String,
    /// A dotted path looked up in the event's `data`, then at the top level.
    pub field: String,
    pub op: Op,
    /// The number compared with (0 for a text comparison or `changes`).
    pub threshold: f64,
    /// The text compared with by `==` / `!=`, when it is one.
    pub text: Option<String>,
    /// The severity an alert gets when the rule fires (a rule only ever
    /// raises an event's severity).
    pub severity: Severity,
    /// How far back past the threshold the value must go to re-arm.
    pub hysteresis: f64,
    /// Where the rule was written (1-based line; 0 when added by code).
    pub line: usize,
}

impl Rule {
    pub(crate) fn at_line(mut self, line: usize) -> Rule {
        self.line = line;
        self
    }

    fn matches_kind(&self, kind: &str) -> bool {
        self.kind == "*" || self.kind == kind
    }

    /// Whether a fired rule is re-armed by this value.
    fn rearms(&self, v: f64) -> bool {
        match self.op {
            Op::Gt => v <= self.threshold - self.hysteresis,
            Op::Ge => v < self.threshold - self.hysteresis,
            Op::Lt => v >= self.threshold + self.hysteresis,
            Op::Le => v > self.threshold + self.hysteresis,
            Op::Eq | Op::Ne | Op::Changes => !self.op.holds(v, self.threshold),
        }
    }

    /// What the rule compares with, as written.
    pub fn target(&self) -> String {
        match (&self.op, &self.text) {
            (Op::Changes, _) => String::new(),
            (_, Some(t)) => Value::from(t.as_str()).to_string(),
            (_, None) => self.threshold.to_string(),
        }
    }
}

impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {} {}", self.kind, self.field, self.op.as_str())?;
        if self.op != Op::Changes {
            write!(f, " {}", self.target())?;
        }
        write!(f, " => {}", self.severity)?;
        if self.hysteresis > 0.0 {
            write!(f, " hysteresis {}", self.hysteresis)?;
        }
        Ok(())
    }
}

/// Parses a text of rules: one per line; blank lines and `#` comments are
/// skipped.
pub fn parse_rules(text: &str) -> Result<Vec<Rule>, RuleError> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        match parse_rule(line) {
            Ok(Some(r)) => out.push(r.at_line(i + 1)),
            Ok(None) => {}
            Err(e) => {
                return Err(RuleError {
                    line: i + 1 + e.line - 1,
                    ..e
                });
            }
        }
    }
    Ok(out)
}

/// Parses one rule. `Ok(None)` for a blank or comment-only line.
pub fn parse_rule(text: &str) -> Result<Option<Rule>, RuleError> {
    if text.contains('\n') {
        // A multi-line string given as one rule: each line is a rule, but
        // this entry point returns one, so only one non-blank line is allowed.
        let rules = parse_rules(text)?;
        return match rules.len() {
            0 => Ok(None),
            1 => Ok(rules.into_iter().next()),
            _ => Err(RuleError {
                line: rules[1].line,
                column: 1,
                message: "one rule per string".into(),
            }),
        };
    }
    let mut p = Parser {
        chars: text.chars().collect(),
        pos: 0,
    };
    p.skip_ws();
    if p.at_end() || p.peek() == Some('#') {
        return Ok(None);
    }
    let kind = if p.eat('*') {
        "*".to_owned()
    } else {
        p.ident()
            .ok_or_else(|| p.err("expected an event type (like employee_stress) or *"))?
    };
    p.skip_ws();
    if !p.eat(':') {
        return Err(p.err("expected ':' after the event type"));
    }
    p.skip_ws();
    let field = p
        .ident()
        .ok_or_else(|| p.err("expected a field name (like stress_rate or data.score)"))?;
    if field.ends_with('.') || field.contains("..") {
        return Err(p.err_at(p.pos - 1, "a field path cannot have an empty part"));
    }
    p.skip_ws();
    let (op, threshold, text) = if p.keyword("changes") {
        (Op::Changes, 0.0, None)
    } else {
        let op_at = p.pos;
        let op = p.op()?;
        p.skip_ws();
        if p.peek() == Some('"') {
            if !matches!(op, Op::Eq | Op::Ne) {
                return Err(p.err_at(op_at, "compare text with == or !="));
            }
            (op, 0.0, Some(p.quoted()?))
        } else {
            let n = p.number("expected a number, or \"text\" after == or !=")?;
            (op, n, None)
        }
    };
    p.skip_ws();
    if !(p.eat('=') && p.eat('>')) {
        return Err(p.err("expected '=>' and a severity"));
    }
    p.skip_ws();
    let sev_at = p.pos;
    let word = p
        .word()
        .ok_or_else(|| p.err("expected a severity: info, warning, critical or emergency"))?;
    let severity = match word.to_ascii_lowercase().as_str() {
        "info" => Severity::Info,
        "warning" => Severity::Warning,
        "critical" => Severity::Critical,
        "emergency" => Severity::Emergency,
        _ => {
            return Err(p.err_at(
                sev_at,
                &format!("unknown severity {word:?}: use info, warning, critical or emergency"),
            ));
        }
    };
    p.skip_ws();
    let mut hysteresis = 0.0;
    if p.eat(',') {
        p.skip_ws();
    }
    if !p.at_end() && p.peek() != Some('#') {
        let kw_at = p.pos;
        match p.word().as_deref() {
            Some("hysteresis" | "hyst") => {
                p.skip_ws();
                let h_at = p.pos;
                hysteresis = p.number("expected a number after 'hysteresis'")?;
                if hysteresis < 0.0 {
                    return Err(p.err_at(h_at, "hysteresis cannot be negative"));
                }
            }
            _ => {
                return Err(p.err_at(kw_at, "expected 'hysteresis N', a '#' comment or the end"));
            }
        }
        p.skip_ws();
    }
    if !p.at_end() && p.peek() != Some('#') {
        return Err(p.err("expected a '#' comment or the end of the rule"));
    }
    Ok(Some(Rule {
        kind,
        field,
        op,
        threshold,
        text,
        severity,
        hysteresis,
        line: 1,
    }))
}

struct Parser {
    chars: Vec<char>,
    pos: usize,
}

impl Parser {
    fn at_end(&self) -> bool {
        self.pos >= self.chars.len()
    }
    fn peek(&self) -> Option<char> {
        self.chars.get(self.pos).copied()
    }
    fn eat(&mut self, c: char) -> bool {
        if self.peek() == Some(c) {
            self.pos += 1;
            true
        } else {
            false
        }
    }
    fn skip_ws(&mut self) {
        while self.peek().is_some_and(char::is_whitespace) {
            self.pos += 1;
        }
    }
    fn err(&self, msg: &str) -> RuleError {
        self.err_at(self.pos, msg)
    }
    fn err_at(&self, pos: usize, msg: &str) -> RuleError {
        RuleError {
            line: 1,
            column: pos + 1,
            message: msg.to_owned(),
        }
    }
    /// `[A-Za-z_][A-Za-z0-9_.-]*`
    fn ident(&mut self) -> Option<String> {
        let start = self.pos;
        if !self
            .peek()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        {
            return None;
        }
        while self
            .peek()
            .is_some_and(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
        {
            self.pos += 1;
        }
        Some(self.chars[start..self.pos].iter().collect())
    }
    fn word(&mut self) -> Option<String> {
        let start = self.pos;
        while self.peek().is_some_and(|c| c.is_ascii_alphabetic()) {
            self.pos += 1;
        }
        (self.pos > start).then(|| self.chars[start..self.pos].iter().collect())
    }
    fn op(&mut self) -> Result<Op, RuleError> {
        let at = self.pos;
        let op = match self.peek() {
            Some('>') => {
                self.pos += 1;
                if self.eat('=') { Op::Ge } else { Op::Gt }
            }
            Some('<') => {
                self.pos += 1;
                if self.eat('=') { Op::Le } else { Op::Lt }
            }
            Some(c @ ('=' | '!')) => {
                self.pos += 1;
                if !self.eat('=') {
                    return Err(self.err_at(at, "expected == or !="));
                }
                if c == '=' { Op::Eq } else { Op::Ne }
            }
            _ => {
                return Err(self.err("expected a comparison (>, >=, <, <=, ==, !=) or 'changes'"));
            }
        };
        if matches!(self.peek(), Some('>' | '<' | '=')) {
            return Err(self.err("unexpected character after the comparison"));
        }
        Ok(op)
    }
    /// `word` as a whole word, consumed; nothing consumed otherwise.
    fn keyword(&mut self, word: &str) -> bool {
        let end = self.pos + word.chars().count();
        let matches = self
            .chars
            .get(self.pos..end)
            .is_some_and(|s| s.iter().copied().eq(word.chars()))
            && !self
                .chars
                .get(end)
                .is_some_and(|c| c.is_ascii_alphanumeric() || *c == '_');
        if matches {
            self.pos = end;
        }
        matches
    }

    /// A `"…"` text; `\"` and `\\` escape.
    fn quoted(&mut self) -> Result<String, RuleError> {
        let start = self.pos;
        self.pos += 1;
        let mut out = String::new();
        loop {
            match self.peek() {
                None => {
                    return Err(self.err_at(start, "unterminated text: a closing \" is missing"));
                }
                Some('"') => {
                    self.pos += 1;
                    return Ok(out);
                }
                Some('\\') => {
                    self.pos += 1;
                    match self.peek() {
                        Some(c @ ('"' | '\\')) => {
                            out.push(c);
                            self.pos += 1;
                        }
                        _ => return Err(self.err("only \\\" and \\\\ escape in a text")),
                    }
                }
                Some(c) => {
                    out.push(c);
                    self.pos += 1;
                }
            }
        }
    }

    fn number(&mut self, msg: &str) -> Result<f64, RuleError> {
        let start = self.pos;
        if matches!(self.peek(), Some('-' | '+')) {
            self.pos += 1;
        }
        while self
            .peek()
            .is_some_and(|c| c.is_ascii_digit() || c == '.' || c == '_')
        {
            self.pos += 1;
        }
        // An exponent: e or E, optional sign, digits.
        if matches!(self.peek(), Some('e' | 'E'))
            && self
                .chars
                .get(self.pos + 1)
                .is_some_and(|c| c.is_ascii_digit() || matches!(c, '-' | '+'))
        {
            self.pos += 2;
            while self.peek().is_some_and(|c| c.is_ascii_digit()) {
                self.pos += 1;
            }
        }
        let s: String = self.chars[start..self.pos]
            .iter()
            .filter(|c| **c != '_')
            .collect();
        match s.parse::<f64>() {
            Ok(n) if n.is_finite() && self.pos > start => Ok(n),
            _ => {
                self.pos = start;
                Err(self.err(msg))
            }
        }
    }
}

/// A field's value as text: a string as is, anything else as JSON.
fn text_of(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// A numeric value of a field: numbers, and strings holding a number.
pub fn numeric(v: &Value) -> Option<f64> {
    match v {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse::<f64>().ok().filter(|f| f.is_finite()),
        _ => None,
    }
}

/// Looks a dotted path up in `data`, then at the top level of a message, as
/// `Event::field` does, without copying.
pub fn lookup<'a>(whole: &'a Value, path: &str) -> Option<&'a Value> {
    let walk = |root: &'a Value| -> Option<&'a Value> {
        let mut cur = root;
        for part in path.split('.') {
            cur = cur.get(part)?;
        }
        Some(cur)
    };
    whole
        .get("data")
        .and_then(walk)
        .or_else(|| walk(whole))
        .filter(|v| !v.is_null())
}

/// Compiled rules with an index by type.
#[derive(Debug, Clone, Default)]
pub struct RuleSet {
    rules: Vec<Rule>,
    by_kind: HashMap<String, Vec<usize>>,
    any: Vec<usize>,
}

/// A rule that fired on this event.
#[derive(Debug, Clone, PartialEq)]
pub struct Fired {
    pub rule: usize,
    /// The field's value that made it fire.
    pub value: Value,
    pub severity: Severity,
}

/// The rising-edge memory: which (rule, subject) pairs have fired and not
/// yet re-armed. Absent means armed.
#[derive(Debug, Clone, Default)]
pub struct RuleState {
    /// Per rule index: subject key → insertion tick, and when the
    /// condition last held (with a time, see [`RuleSet::evaluate_at`]).
    fired: Vec<HashMap<String, FiredAt>>,
    /// `changes` rules: (rule, subject) → the value last seen, bounded
    /// like `fired`.
    last: HashMap<(usize, String), String>,
    /// Insertion counter, for evicting the oldest entries when full.
    clock: u64,
    len: usize,
}

/// When a (rule, subject) fired: the insertion tick (for eviction), and
/// when its condition last held.
type FiredAt = (u64, Option<DateTime<Utc>>);

/// A fired rule whose subject was not seen beyond its threshold for this
/// long is re-armed (see [`RuleSet::evaluate_at`]).
pub const REARM_AFTER_SILENCE: chrono::Duration = chrono::Duration::minutes(30);

/// Most (rule, subject) pairs remembered; beyond it the oldest half is
/// forgotten (those re-fire once if their value is still beyond the
/// threshold), so memory stays bounded whatever the server sends.
const MAX_FIRED: usize = 100_000;

impl RuleState {
    pub fn len(&self) -> usize {
        self.len
    }
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
    fn is_fired(&self, rule: usize, key: &str) -> bool {
        self.fired.get(rule).is_some_and(|m| m.contains_key(key))
    }
    /// When a fired rule's condition last held for this subject.
    fn last_held(&self, rule: usize, key: &str) -> Option<DateTime<Utc>> {
        self.fired.get(rule)?.get(key)?.1
    }
    fn held(&mut self, rule: usize, key: &str, now: Option<DateTime<Utc>>) {
        if let Some(e) = self.fired.get_mut(rule).and_then(|m| m.get_mut(key)) {
            e.1 = now;
        }
    }
    fn set_fired(&mut self, rule: usize, key: &str, now: Option<DateTime<Utc>>) {
        if self.len >= MAX_FIRED {
            let cutoff = self.clock.saturating_sub(MAX_FIRED as u64 / 2);
            for m in &mut self.fired {
                m.retain(|_, (t, _)| *t >= cutoff);
            }
            self.len = self.fired.iter().map(HashMap::len).sum();
        }
        if self.fired.len() <= rule {
            self.fired.resize_with(rule + 1, HashMap::new);
        }
        self.clock += 1;
        if self.fired[rule]
            .insert(key.to_owned(), (self.clock, now))
            .is_none()
        {
            self.len += 1;
        }
    }
    /// Records `value` for a `changes` rule; the previous one, if any.
    fn swap_last(&mut self, rule: usize, key: &str, value: String) -> Option<String> {
        if self.last.len() >= MAX_FIRED && !self.last.contains_key(&(rule, key.to_owned())) {
            self.last.clear();
        }
        self.last.insert((rule, key.to_owned()), value)
    }

    fn rearm(&mut self, rule: usize, key: &str) {
        if self
            .fired
            .get_mut(rule)
            .is_some_and(|m| m.remove(key).is_some())
        {
            self.len -= 1;
        }
    }

    /// Carries the state across a rule reload: entries of rules that are
    /// still present (same text) keep their state.
    pub fn remap(&mut self, old: &RuleSet, new: &RuleSet) {
        let mut fired = vec![HashMap::new(); new.rules.len()];
        for (i, r) in old.rules.iter().enumerate() {
            let text = r.to_string();
            if let (Some(j), Some(m)) = (
                new.rules.iter().position(|n| n.to_string() == text),
                self.fired.get_mut(i),
            ) {
                fired[j] = std::mem::take(m);
            }
        }
        self.len = fired.iter().map(HashMap::len).sum();
        self.fired = fired;
        // Values seen by `changes` rules follow their rule, or go.
        let moved: Vec<usize> = old
            .rules
            .iter()
            .map(|r| {
                let text = r.to_string();
                new.rules
                    .iter()
                    .position(|n| n.to_string() == text)
                    .unwrap_or(usize::MAX)
            })
            .collect();
        self.last = std::mem::take(&mut self.last)
            .into_iter()
            .filter_map(|((i, k), v)| {
                let j = *moved.get(i)?;
                (j != usize::MAX).then_some(((j, k), v))
            })
            .collect();
    }
}

impl RuleSet {
    pub fn new(rules: Vec<Rule>) -> RuleSet {
        let mut by_kind: HashMap<String, Vec<usize>> = HashMap::new();
        let mut any = Vec::new();
        for (i, r) in rules.iter().enumerate() {
            if r.kind == "*" {
                any.push(i);
            } else {
                by_kind.entry(r.kind.clone()).or_default().push(i);
            }
        }
        RuleSet {
            rules,
            by_kind,
            any,
        }
    }

    pub fn rules(&self) -> &[Rule] {
        &self.rules
    }
    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// Whether any rule looks at events of this type.
    pub fn applies_to(&self, kind: &str) -> bool {
        !self.any.is_empty() || self.by_kind.contains_key(kind)
    }

    /// Evaluates every rule for `kind` against the message `whole`, for the
    /// subject `key`, updating the rising-edge state. Returns the rules that
    /// fired now (crossed since they were last armed).
    pub fn evaluate(
        &self,
        state: &mut RuleState,
        kind: &str,
        whole: &Value,
        key: &str,
    ) -> Vec<Fired> {
        self.evaluate_at(state, kind, whole, key, None)
    }

    /// Re-arms rules of *other* types that fired for `key` when this
    /// message carries their field at a re-arming value: seed 003 sends
    /// `employee_stress` only above 40, while `employee_update` carries the
    /// rate that went back below. Cheap when nothing fired for `key`: the
    /// message is only parsed (`whole`) then.
    pub fn rearm_elsewhere<'a>(
        &self,
        state: &mut RuleState,
        kind: &str,
        whole: impl FnOnce() -> &'a Value,
        key: &str,
    ) {
        let fired: Vec<usize> = (0..self.rules.len())
            .filter(|&i| !self.rules[i].matches_kind(kind) && state.is_fired(i, key))
            .collect();
        if fired.is_empty() {
            return;
        }
        let whole = whole();
        for i in fired {
            let r = &self.rules[i];
            if matches!(r.op, Op::Gt | Op::Ge | Op::Lt | Op::Le)
                && let Some(v) = lookup(whole, &r.field).and_then(numeric)
                && r.rearms(v)
            {
                state.rearm(i, key);
            }
        }
    }

    /// [`RuleSet::evaluate`] at `now`: besides a value back past the
    /// threshold, a subject not seen beyond it for [`REARM_AFTER_SILENCE`]
    /// re-arms the rule. A backend that sends only alerts (seed 003's
    /// `employee_stress` above 40, nothing when the rate drops) never sends
    /// the value that would re-arm it; its next alert after such a silence
    /// is a new crossing.
    pub fn evaluate_at(
        &self,
        state: &mut RuleState,
        kind: &str,
        whole: &Value,
        key: &str,
        now: Option<DateTime<Utc>>,
    ) -> Vec<Fired> {
        let mut out = Vec::new();
        let specific = self.by_kind.get(kind).map(Vec::as_slice).unwrap_or(&[]);
        for &i in specific.iter().chain(self.any.iter()) {
            let r = &self.rules[i];
            debug_assert!(r.matches_kind(kind));
            let Some(raw) = lookup(whole, &r.field) else {
                continue;
            };
            if r.op == Op::Changes {
                let now = text_of(raw);
                if state
                    .swap_last(i, key, now.clone())
                    .is_some_and(|before| before != now)
                {
                    out.push(Fired {
                        rule: i,
                        value: raw.clone(),
                        severity: r.severity,
                    });
                }
                continue;
            }
            // A text comparison holds or not; a number as ordered.
            let (holds, v) = match &r.text {
                Some(t) => {
                    let equal = text_of(raw) == *t;
                    (if r.op == Op::Eq { equal } else { !equal }, None)
                }
                None => match numeric(raw) {
                    Some(v) => (r.op.holds(v, r.threshold), Some(v)),
                    None => continue,
                },
            };
            let mut fired = state.is_fired(i, key);
            if holds
                && fired
                && let (Some(now), Some(last)) = (now, state.last_held(i, key))
                && now.signed_duration_since(last) > REARM_AFTER_SILENCE
            {
                state.rearm(i, key);
                fired = false;
            }
            if holds {
                if fired {
                    state.held(i, key, now);
                } else {
                    state.set_fired(i, key, now);
                    out.push(Fired {
                        rule: i,
                        value: raw.clone(),
                        severity: r.severity,
                    });
                }
            } else if fired && v.is_none_or(|v| r.rearms(v)) {
                state.rearm(i, key);
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn rule(s: &str) -> Rule {
        parse_rule(s).unwrap().unwrap()
    }

    fn err(s: &str) -> (usize, String) {
        let e = parse_rule(s).unwrap_err();
        (e.column, e.message)
    }

    #[test]
    fn parses_the_issue_examples() {
        let r = rule("employee_stress: stress_rate > 40 => warning");
        assert_eq!(r.kind, "employee_stress");
        assert_eq!(r.field, "stress_rate");
        assert_eq!(r.op, Op::Gt);
        assert_eq!(r.threshold, 40.0);
        assert_eq!(r.severity, Severity::Warning);
        let r = rule("session_status: lossLimitUtilization >= 80 => critical");
        assert_eq!((r.op, r.threshold), (Op::Ge, 80.0));
        let r = rule("riskUpdate: score >= 70 => critical hysteresis 5  # merchants");
        assert_eq!(r.hysteresis, 5.0);
        let r = rule("*: marketData.vix < -1.5e1 => emergency, hyst 0.5");
        assert_eq!((r.kind.as_str(), r.field.as_str()), ("*", "marketData.vix"));
        assert_eq!((r.op, r.threshold, r.hysteresis), (Op::Lt, -15.0, 0.5));
        assert_eq!(
            r.to_string(),
            "*: marketData.vix < -15 => emergency hysteresis 0.5"
        );
        assert!(parse_rule("   # only a comment").unwrap().is_none());
        assert!(parse_rule("").unwrap().is_none());
    }

    #[test]
    fn errors_name_the_column() {
        assert_eq!(err("employee_stress stress_rate > 40 => warning").0, 17);
        assert_eq!(err(": x > 1 => info").0, 1);
        assert_eq!(err("t: > 1 => info").0, 4);
        let (c, m) = err("t: x = 1 => info");
        assert_eq!(c, 6);
        assert!(m.contains("=="), "{m}");
        let (c, m) = err(r#"t: status > "paused" => info"#);
        assert_eq!(c, 11);
        assert!(m.contains("== or !="), "{m}");
        assert_eq!(err(r#"t: status == "paused => info"#).0, 14);
        assert_eq!(err("t: x >> 1 => info").0, 7);
        assert_eq!(err("t: x > abc => info").0, 8);
        assert_eq!(err("t: x > 1 -> info").0, 10);
        let (c, m) = err("t: x > 1 => severe");
        assert_eq!(c, 13);
        assert!(m.contains("severe"), "{m}");
        assert_eq!(err("t: x > 1 => info extra").0, 18);
        assert_eq!(err("t: x > 1 => info hysteresis -2").0, 29);
        assert_eq!(err("t: x > 1 => info hysteresis").0, 28);
        assert_eq!(err("t: x. > 1 => info").0, 5);
    }

    #[test]
    fn texts_and_changes_fire_once_per_subject() {
        let set = RuleSet::new(vec![
            rule(r#"session_status: status == "paused" => warning"#),
            rule(r#"session_status: status != "active" => info"#),
            rule("session_status: status changes => critical"),
            rule("session_status: totalTrades == 3 => info"),
        ]);
        assert_eq!(
            set.rules()[0].to_string(),
            r#"session_status: status == "paused" => warning"#
        );
        assert_eq!(
            set.rules()[2].to_string(),
            "session_status: status changes => critical"
        );
        let mut st = RuleState::default();
        let fired = |st: &mut RuleState, status: &str, trades: u64, key: &str| -> Vec<usize> {
            let msg = json!({"type": "session_status", "status": status, "data": {"totalTrades": trades}});
            set.evaluate(st, "session_status", &msg, key)
                .into_iter()
                .map(|f| f.rule)
                .collect()
        };
        // First sighting: no change yet; == holds for nothing.
        assert_eq!(fired(&mut st, "active", 1, "S1"), Vec::<usize>::new());
        assert_eq!(fired(&mut st, "paused", 3, "S1"), [0, 1, 2, 3]);
        // Still paused, still 3: nothing fires again.
        assert_eq!(fired(&mut st, "paused", 3, "S1"), Vec::<usize>::new());
        // Back to active re-arms == and !=; the change fires.
        assert_eq!(fired(&mut st, "active", 4, "S1"), [2]);
        assert_eq!(fired(&mut st, "paused", 4, "S1"), [0, 1, 2]);
        // Another session has its own memory.
        assert_eq!(fired(&mut st, "paused", 0, "S2"), [0, 1]);
    }

    #[test]
    fn errors_name_the_line_in_a_rules_text() {
        let text = "# rules\nriskUpdate: score >= 70 => critical\n\nemployee_stress: stress_rate > => warning\n";
        let e = parse_rules(text).unwrap_err();
        assert_eq!((e.line, e.column), (4, 32), "{e}");
        assert!(e.to_string().starts_with("line 4, column 32: "), "{e}");
        let ok = parse_rules("a: x > 1 => info\n# c\nb: y <= 2 => critical\n").unwrap();
        assert_eq!(ok.len(), 2);
        assert_eq!(ok[1].line, 3);
    }

    fn run(set: &RuleSet, st: &mut RuleState, v: f64) -> bool {
        let msg = json!({"type": "employee_stress", "data": {"stress_rate": v}});
        !set.evaluate(st, "employee_stress", &msg, "employee:E1")
            .is_empty()
    }

    #[test]
    fn fires_on_the_rising_edge_and_rearms_below() {
        let set = RuleSet::new(vec![rule("employee_stress: stress_rate > 40 => warning")]);
        let mut st = RuleState::default();
        assert!(!run(&set, &mut st, 30.0));
        assert!(run(&set, &mut st, 41.0), "crossing fires");
        assert!(!run(&set, &mut st, 65.5), "staying above does not repeat");
        assert!(!run(&set, &mut st, 41.0));
        assert!(!run(&set, &mut st, 40.0), "falling back re-arms, silently");
        assert!(run(&set, &mut st, 40.5), "crossing again fires again");
    }

    #[test]
    fn hysteresis_needs_a_real_fall() {
        let set = RuleSet::new(vec![rule(
            "employee_stress: stress_rate > 40 => warning hysteresis 5",
        )]);
        let mut st = RuleState::default();
        assert!(run(&set, &mut st, 42.0));
        assert!(!run(&set, &mut st, 38.0), "within the band: still fired");
        assert!(!run(&set, &mut st, 41.0), "no re-fire: was not re-armed");
        assert!(
            !run(&set, &mut st, 35.0),
            "at threshold - hysteresis: re-armed"
        );
        assert!(run(&set, &mut st, 41.0));
    }

    #[test]
    fn below_rules_mirror() {
        let set = RuleSet::new(vec![rule("t: margin <= 10 => critical hysteresis 2")]);
        let mut st = RuleState::default();
        let ev = |st: &mut RuleState, v: f64| {
            !set.evaluate(st, "t", &json!({"margin": v}), "k").is_empty()
        };
        assert!(ev(&mut st, 10.0));
        assert!(!ev(&mut st, 11.0));
        assert!(!ev(&mut st, 12.0), "not above 12 yet");
        assert!(!ev(&mut st, 12.5));
        assert!(ev(&mut st, 9.0));
    }

    #[test]
    fn state_is_per_rule_and_subject() {
        let set = RuleSet::new(vec![
            rule("riskUpdate: score >= 70 => critical"),
            rule("*: score >= 90 => emergency"),
        ]);
        let mut st = RuleState::default();
        let msg = |s: f64| json!({"type": "riskUpdate", "data": {"score": s}});
        assert_eq!(
            set.evaluate(&mut st, "riskUpdate", &msg(75.0), "m1").len(),
            1
        );
        assert_eq!(
            set.evaluate(&mut st, "riskUpdate", &msg(75.0), "m2").len(),
            1
        );
        let both = set.evaluate(&mut st, "riskUpdate", &msg(95.0), "m1");
        assert_eq!(both.len(), 1, "only the 90 rule is new for m1");
        assert_eq!(both[0].severity, Severity::Emergency);
        // Strings holding numbers count; missing or non-numeric fields do not.
        let s = json!({"data": {"score": "88"}});
        assert_eq!(set.evaluate(&mut st, "riskUpdate", &s, "m3").len(), 1);
        let none = json!({"data": {"score": "high"}});
        assert!(set.evaluate(&mut st, "riskUpdate", &none, "m4").is_empty());
        assert!(set.applies_to("anything"), "the * rule applies everywhere");
    }

    #[test]
    fn remap_keeps_state_of_unchanged_rules() {
        let a = rule("t: x > 1 => info");
        let b = rule("t: y > 1 => info");
        let old = RuleSet::new(vec![a.clone(), b.clone()]);
        let mut st = RuleState::default();
        old.evaluate(&mut st, "t", &json!({"x": 2, "y": 2}), "k");
        assert_eq!(st.len(), 2);
        let new = RuleSet::new(vec![b]);
        st.remap(&old, &new);
        assert_eq!(st.len(), 1);
        assert!(new.evaluate(&mut st, "t", &json!({"y": 3}), "k").is_empty());
    }
}
