//! Human text for an event: a short title and a one-line body, written for
//! the person who has to act on it ("EMERGENCY STOP — session S42: loss
//! limit at 100%"). Used by the CLI, OS notifications and the UI. Server text
//! is copied as text; whoever renders it must not interpret it as markup.

use serde::Serialize;
use serde_json::Value;

use super::{Event, Severity};

/// A title and body made from an event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Description {
    pub title: String,
    pub body: String,
}

/// Longest body kept; server text beyond it is cut with an ellipsis.
const MAX_BODY: usize = 240;

pub(super) fn describe(e: &Event) -> Description {
    let d = e.data();
    let whole = e.payload_value();
    // Field lookup in `data`, in a `data` nested in it (trading events
    // relayed by a hub), then at the top level.
    let get = |k: &str| {
        d.get(k)
            .or_else(|| d.get("data").and_then(|n| n.get(k)))
            .or_else(|| whole.get(k))
            .filter(|v| !v.is_null())
    };
    let text = |k: &str| get(k).map(plain);
    let num = |k: &str| get(k).and_then(Value::as_f64);
    let who = e
        .subject
        .as_deref()
        .map(|s| s.replacen(':', " ", 1))
        .unwrap_or_default();

    let (title, body) = match e.kind.as_str() {
        "session_status" => {
            let status = text("status").unwrap_or_default();
            let util =
                num("lossLimitUtilization").map(|u| format!("loss limit at {}%", fmt_num(u)));
            let pnl = num("currentPnL").map(|p| format!("P&L {}", fmt_num(p)));
            let detail = [util, pnl]
                .into_iter()
                .flatten()
                .collect::<Vec<_>>()
                .join(", ");
            if status.eq_ignore_ascii_case("emergency_stopped") {
                ("EMERGENCY STOP".to_owned(), join_colon(&who, &detail))
            } else {
                (format!("Session {status}"), join_colon(&who, &detail))
            }
        }
        "risk_alert" => {
            let level = text("alertLevel").unwrap_or_else(|| e.severity.to_string());
            let kind = text("alertType")
                .unwrap_or_else(|| "risk".into())
                .replace('_', " ");
            let msg = text("message").unwrap_or_default();
            let nums = match (num("currentValue"), num("threshold")) {
                (Some(c), Some(t)) => format!(" ({} / threshold {})", fmt_num(c), fmt_num(t)),
                _ => String::new(),
            };
            (
                format!("{} {kind} alert", capitalise(&level)),
                join_colon(&who, &format!("{msg}{nums}")),
            )
        }
        "algorithm_decision" => {
            let dec = text("decision").unwrap_or_default();
            let conf = num("confidence").map(|c| format!(" ({:.0}% confidence)", pct(c)));
            let why = text("reasoning").unwrap_or_default();
            (
                format!("Algorithm: {dec}{}", conf.unwrap_or_default()),
                join_colon(&who, &why),
            )
        }
        "market_data" => {
            let sym = text("symbol").unwrap_or_default();
            let price = num("price").map(fmt_num).unwrap_or_default();
            (format!("{sym} {price}"), String::new())
        }
        // Made by riskwatch itself from a history gap (client::gap_event).
        "history_gap" => (
            if get("criticals_kept").and_then(Value::as_bool) == Some(true) {
                "History gap".to_owned()
            } else {
                "Alerts may be missing".to_owned()
            },
            text("message").unwrap_or_default(),
        ),
        "system_notification" => (
            "System notification".to_owned(),
            text("message")
                .or_else(|| text("title"))
                .unwrap_or_default(),
        ),
        "department_critical" => {
            let name = text("department_name")
                .or_else(|| text("department_id"))
                .unwrap_or_default();
            let eng = num("engagement_score")
                .map(|s| format!("engagement score {}", fmt_num(s)))
                .unwrap_or_default();
            (format!("Department critical: {name}"), eng)
        }
        "employee_stress" | "employee_update" => {
            let name = text("employee_name")
                .or_else(|| text("employee_id"))
                .unwrap_or_default();
            let dept = text("department")
                .map(|d| format!(" ({d})"))
                .unwrap_or_default();
            let stress = num("stress_rate").map(fmt_num).unwrap_or_default();
            let what = if e.kind == "employee_stress" {
                "High stress:"
            } else {
                "Employee"
            };
            (
                format!("{what} {name}{dept}"),
                format!("stress rate {stress}"),
            )
        }
        "riskAlert" | "alert" => {
            let msg = text("message")
                .or_else(|| text("details"))
                .or_else(|| text("description"))
                .unwrap_or_default();
            let title = if e.kind == "alert" {
                "Compliance alert"
            } else {
                "Risk alert"
            };
            (format!("{title} ({})", e.severity), join_colon(&who, &msg))
        }
        "department_update" => {
            let name = text("department_name")
                .or_else(|| text("department_id"))
                .unwrap_or_default();
            let risk = text("overall_risk").unwrap_or_default();
            let eng = num("engagement_score").map(fmt_num).unwrap_or_default();
            (
                format!("Department {name}"),
                format!("overall risk {risk}, engagement score {eng}"),
            )
        }
        "interaction_update" => {
            let app = text("app_id").unwrap_or_default();
            let n = num("interaction_count").map(fmt_num).unwrap_or_default();
            let total = num("total_daily_interactions")
                .map(fmt_num)
                .unwrap_or_default();
            (
                "Interactions".to_owned(),
                join_colon(&who, &format!("{app} +{n}, {total} today")),
            )
        }
        "engagement_update" => ("Engagement update".to_owned(), who.clone()),
        "dashboard_update" => {
            let total = num("total_risks").map(fmt_num).unwrap_or_default();
            let crit = num("critical_risks").map(fmt_num).unwrap_or_default();
            (
                "Dashboard update".to_owned(),
                format!("{total} risks, {crit} critical"),
            )
        }
        "riskPrediction" => {
            let p = num("predicted_score").map(fmt_num).unwrap_or_default();
            (
                "Risk prediction".to_owned(),
                join_colon(&who, &format!("predicted score {p}")),
            )
        }
        "riskUpdate" => {
            let score = num("score").or_else(|| num("riskScore")).map(fmt_num);
            (
                "Risk score updated".to_owned(),
                join_colon(
                    &who,
                    &score.map(|s| format!("score {s}")).unwrap_or_default(),
                ),
            )
        }
        _ => {
            let msg = text("message")
                .or_else(|| text("details"))
                .unwrap_or_default();
            // A server may send an empty type: the title still says what
            // it is, never nothing.
            let title = if e.kind.trim().is_empty() {
                format!("{} event", capitalise(e.severity.as_str()))
            } else {
                e.kind.clone()
            };
            (title, join_colon(&who, &msg))
        }
    };
    let title = match e.severity {
        Severity::Emergency if !title.starts_with("EMERGENCY") => format!("EMERGENCY — {title}"),
        _ => title,
    };
    Description {
        title,
        body: truncate(body, MAX_BODY),
    }
}

/// A JSON value as plain text: strings unquoted, others as JSON.
fn plain(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn join_colon(a: &str, b: &str) -> String {
    match (a.is_empty(), b.is_empty()) {
        (true, _) => b.to_owned(),
        (_, true) => a.to_owned(),
        _ => format!("{a}: {b}"),
    }
}

fn capitalise(s: &str) -> String {
    let mut c = s.chars();
    c.next()
        .map(|f| f.to_uppercase().chain(c).collect())
        .unwrap_or_default()
}

/// Confidence given as 0–1 is shown as a percentage.
fn pct(c: f64) -> f64 {
    if c <= 1.0 { c * 100.0 } else { c }
}

fn fmt_num(n: f64) -> String {
    if n.fract() == 0.0 && n.abs() < 1e15 {
        format!("{}", n as i64)
    } else {
        format!("{n:.2}")
    }
}

fn truncate(mut s: String, max: usize) -> String {
    if s.chars().count() > max {
        s = s.chars().take(max - 1).collect();
        s.push('…');
    }
    s
}
