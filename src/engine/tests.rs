//! Engine tests: filters, rules, severities, mutes, quiet hours and dedupe
//! working together, driven by explicit times.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};

use super::*;
use crate::protocol::{Frame, decode};

fn t0() -> DateTime<Utc> {
    // A Wednesday, 14:00 UTC.
    Utc.with_ymd_and_hms(2025, 1, 15, 14, 0, 0).unwrap()
}

fn at(secs: i64) -> DateTime<Utc> {
    t0() + chrono::Duration::seconds(secs)
}

fn event_from(source: &str, json: &str) -> Event {
    match decode(json, &Arc::from(source), t0()) {
        Ok(Frame::Event(e)) => e,
        other => panic!("not an event: {other:?}"),
    }
}

fn event(json: &str) -> Event {
    event_from("desk", json)
}

fn stress(emp: &str, dept: &str, rate: f64) -> Event {
    event(&format!(
        r#"{{"type":"employee_stress","data":{{"employee_id":"{emp}","employee_name":"N {emp}","department":"{dept}","stress_rate":{rate}}}}}"#
    ))
}

fn session(id: &str, status: &str, util: f64) -> Event {
    event(&format!(
        r#"{{"type":"session_status","sessionId":"{id}","status":"{status}","lossLimitUtilization":{util},"currentPnL":-5000}}"#
    ))
}

fn engine(toml: &str) -> Engine {
    let (prefs, rules) = Prefs::from_toml(toml, "test.toml").unwrap();
    Engine::new(prefs, rules)
}

#[test]
fn defaults_list_everything_and_notify_critical_and_above() {
    let mut e = Engine::default();
    let info = e.decide(
        &event(r#"{"type":"market_data","symbol":"SPY","price":1}"#),
        at(0),
    );
    assert!(info.list);
    assert!(info.notify.is_none());
    assert_eq!(
        info.reasons,
        vec![Reason::BelowNotifySeverity {
            min: Severity::Critical
        }]
    );
    let warn = e.decide(&stress("E1", "Engineering", 35.0), at(0));
    assert!(warn.list && warn.notify.is_none());
    // Seed 003's alert: a stress rate crossing 40 notifies (built-in rule).
    let crossing = e.decide(&stress("E1", "Engineering", 50.0), at(1));
    assert_eq!(crossing.severity_after_rules, Severity::Critical);
    assert!(crossing.notify.is_some());
    let crit = e.decide(
        &event(r#"{"type":"department_critical","data":{"department_name":"Engineering","engagement_score":45.5}}"#),
        at(0),
    );
    let n = crit.notify.expect("critical notifies");
    assert_eq!(n.title, "Department critical: Engineering");
    assert_eq!(n.body, "engagement score 45.50");
    assert_eq!(n.severity, Severity::Critical);
    let emerg = e.decide(&session("S42", "emergency_stopped", 100.0), at(0));
    let n = emerg.notify.expect("emergency notifies");
    assert_eq!(n.title, "EMERGENCY STOP");
    assert_eq!(n.body, "session S42: loss limit at 100%, P&L -5000");
    assert_eq!(emerg.key, "desk|session_status|session:S42");
}

#[test]
fn enable_and_disable_tables() {
    let toml = r#"
[types]
market_data = false
[departments]
Sales = false
[symbols]
"*" = false
QQQ = true
[clients]
c2 = false
[channels]
"sessions:S9" = false
"#;
    let mut e = engine(toml);
    let d = e.decide(&event(r#"{"type":"market_data","symbol":"QQQ"}"#), at(0));
    assert_eq!(
        d.reasons,
        vec![Reason::Disabled {
            by: "type market_data".into()
        }]
    );
    assert!(!d.list);
    // A department matches its own alerts and its employees' alerts.
    let d = e.decide(&stress("E1", "Sales", 50.0), at(0));
    assert!(!d.list, "{:?}", d.reasons);
    assert!(e.decide(&stress("E2", "Engineering", 50.0), at(0)).list);
    let d = e.decide(
        &event(r#"{"type":"department_critical","data":{"department_name":"Sales"}}"#),
        at(0),
    );
    assert!(!d.list);
    // Only QQQ among symbols.
    let d = e.decide(
        &event(r#"{"type":"risk_alert","symbol":"SPY","alertLevel":"high"}"#),
        at(0),
    );
    assert_eq!(
        d.reasons,
        vec![Reason::Disabled {
            by: "symbol SPY".into()
        }]
    );
    assert!(
        e.decide(&event(r#"{"type":"risk_alert","symbol":"QQQ"}"#), at(0))
            .list
    );
    // Clients by subject, channels by channel.
    assert!(
        !e.decide(&event(r#"{"type":"alert","clientId":"c2"}"#), at(0))
            .list
    );
    assert!(
        e.decide(&event(r#"{"type":"alert","clientId":"c1"}"#), at(0))
            .list
    );
    let d = e.decide(
        &event(r#"{"type":"session_status","channel":"sessions:S9","status":"active"}"#),
        at(0),
    );
    assert!(!d.list);
}

#[test]
fn minimum_severities_to_list_and_to_notify() {
    let mut e = engine("[severity]\nlist = \"warning\"\nnotify = \"warning\"\n");
    let d = e.decide(&event(r#"{"type":"market_data","symbol":"SPY"}"#), at(0));
    assert!(!d.list);
    assert_eq!(
        d.reasons,
        vec![Reason::BelowListSeverity {
            min: Severity::Warning
        }]
    );
    let d = e.decide(&stress("E1", "Engineering", 50.0), at(0));
    assert!(d.list && d.notify.is_some());
}

#[test]
fn rules_raise_severity_once_per_crossing() {
    let toml =
        r#"rules = ["session_status: lossLimitUtilization >= 80 => critical hysteresis 10"]"#;
    let mut e = engine(toml);
    // Periodic updates: 50, 85, 90, 95, 72, 60, 85.
    let seq = [50.0, 85.0, 90.0, 95.0, 72.0, 60.0, 85.0];
    let notified: Vec<bool> = seq
        .iter()
        .enumerate()
        .map(|(i, u)| {
            let d = e.decide(&session("S1", "active", *u), at(i as i64 * 120));
            d.notify.is_some()
        })
        .collect();
    assert_eq!(notified, [false, true, false, false, false, false, true]);
    // The raised event says which rule, and how it reads.
    let mut e = engine(toml);
    let d = e.decide(&session("S1", "active", 81.0), at(0));
    assert_eq!(d.severity_after_rules, Severity::Critical);
    assert!(matches!(&d.reasons[0], Reason::RuleFired { line: 1, value, .. } if *value == 81.0));
    let n = d.notify.unwrap();
    assert_eq!(n.title, "Critical: Session active");
    assert!(
        n.body.ends_with("(rule: lossLimitUtilization >= 80)"),
        "{}",
        n.body
    );
    // Other subjects have their own edge.
    assert!(
        e.decide(&session("S2", "active", 81.0), at(0))
            .notify
            .is_some()
    );
}

#[test]
fn rules_never_lower_severity() {
    let mut e = engine(r#"rules = ["session_status: lossLimitUtilization >= 80 => warning"]"#);
    let d = e.decide(&session("S1", "emergency_stopped", 100.0), at(0));
    assert_eq!(d.severity_after_rules, Severity::Emergency);
    assert!(d.notify.is_some());
}

#[test]
fn hr_seed_alerts_once_on_crossing_and_rearms_below() {
    // The HR backend re-sends employee_stress after every sync while the
    // stress stays above 40; the user wants one alert per crossing.
    let toml = r#"
rules = ["employee_stress: stress_rate > 40 => critical"]
[severity]
notify = "critical"
[dedupe]
window = "1s"
"#;
    let mut e = engine(toml);
    let mut shown = 0;
    for (i, rate) in [65.5, 66.0, 70.0, 41.0, 39.0, 45.0, 46.0]
        .iter()
        .enumerate()
    {
        if e.decide(&stress("EMP001", "Engineering", *rate), at(i as i64 * 600))
            .notify
            .is_some()
        {
            shown += 1;
        }
    }
    assert_eq!(shown, 2, "once at 65.5, again at 45 after falling to 39");
}

#[test]
fn quiet_hours_in_a_time_zone_let_only_emergencies_through() {
    let toml = r#"
[severity]
notify = "warning"
[quiet_hours]
start = "22:00"
end = "07:00"
timezone = "Asia/Tokyo"
"#;
    let mut e = engine(toml);
    // 14:00 UTC is 23:00 in Tokyo: quiet.
    let d = e.decide(&stress("E1", "Engineering", 35.0), at(0));
    assert!(d.list && d.notify.is_none());
    assert_eq!(
        d.reasons,
        vec![Reason::QuietHours {
            allow: Severity::Emergency
        }]
    );
    let d = e.decide(
        &event(r#"{"type":"department_critical","data":{"department_name":"Ops"}}"#),
        at(0),
    );
    assert!(d.notify.is_none(), "critical waits too");
    assert!(
        e.decide(&session("S1", "emergency_stopped", 100.0), at(0))
            .notify
            .is_some()
    );
    // 22:00 UTC is 07:00 in Tokyo: over.
    let later = Utc.with_ymd_and_hms(2025, 1, 15, 22, 0, 0).unwrap();
    assert!(
        e.decide(&stress("E2", "Engineering", 50.0), later)
            .notify
            .is_some()
    );
    // Configurable: let critical through as well.
    let mut e = engine(&format!("{toml}allow = \"critical\"\n"));
    let d = e.decide(
        &event(r#"{"type":"department_critical","data":{"department_name":"Ops"}}"#),
        at(0),
    );
    assert!(d.notify.is_some());
}

#[test]
fn mutes_and_snoozes() {
    let toml = r#"
[[mute]]
source = "desk"
until = 2025-01-15T15:00:00Z
[[mute]]
subject = "department:Ops"
"#;
    let mut e = engine(toml);
    let crit = || event(r#"{"type":"risk_alert","sessionId":"S1","alertLevel":"critical"}"#);
    let d = e.decide(&crit(), at(0));
    assert!(d.list && d.notify.is_none());
    assert!(
        matches!(&d.reasons[0], Reason::Muted { target, until: Some(_) } if target == "source desk")
    );
    // Emergencies get through a mute unless told otherwise.
    assert!(
        e.decide(&session("S1", "emergency_stopped", 100.0), at(0))
            .notify
            .is_some()
    );
    // The snooze ends at 15:00.
    assert!(e.decide(&crit(), at(3600)).notify.is_some());
    // The permanent mute holds.
    let ops = || event(r#"{"type":"department_critical","data":{"department_name":"Ops"}}"#);
    assert!(e.decide(&ops(), at(7200)).notify.is_none());
    let mut e = engine(&format!("mute_emergencies = true\n{toml}"));
    assert!(
        e.decide(&session("S1", "emergency_stopped", 100.0), at(0))
            .notify
            .is_none()
    );
    // Snoozing through the API.
    let mut p = Prefs::default();
    p.snooze(
        MuteTarget::Type("risk_alert".into()),
        Duration::from_secs(600),
        at(0),
    );
    let mut e = Engine::new(p, vec![]);
    assert!(e.decide(&crit(), at(599)).notify.is_none());
    assert!(e.decide(&crit(), at(601)).notify.is_some());
}

#[test]
fn duplicates_become_a_count_and_sounds_follow_severity() {
    let toml = r#"
[sounds]
critical = "dialog-warning"
emergency = "alarm-clock-elapsed"
"#;
    let mut e = engine(toml);
    let ops = || event(r#"{"type":"department_critical","data":{"department_name":"Ops"}}"#);
    let first = e.decide(&ops(), at(0)).notify.unwrap();
    assert_eq!(first.sound.as_deref(), Some("dialog-warning"));
    for i in 1..=3 {
        let d = e.decide(&ops(), at(i));
        assert!(d.notify.is_none());
        assert_eq!(
            d.reasons,
            vec![Reason::Duplicate {
                count: i as u32 + 1
            }]
        );
    }
    let due = e.tick(at(60));
    assert_eq!(due.len(), 1);
    assert_eq!(due[0].title, "Department critical: Ops (×4)");
    assert_eq!(due[0].key, first.key);
    assert!(due[0].sound.is_none(), "updates are silent");
    let em = e.decide(&session("S1", "emergency_stopped", 100.0), at(61));
    assert_eq!(
        em.notify.unwrap().sound.as_deref(),
        Some("alarm-clock-elapsed")
    );
}

#[test]
fn a_burst_in_a_department_is_summarised() {
    let mut e = engine(
        "[severity]\nnotify = \"warning\"\n[dedupe]\nburst_count = 5\nburst_window = \"30s\"\n",
    );
    let mut notes = Vec::new();
    for i in 0..12 {
        let d = e.decide(&stress(&format!("E{i}"), "Engineering", 35.0), at(i));
        notes.extend(d.notify);
    }
    notes.extend(e.tick(at(40)));
    let titles: Vec<&str> = notes.iter().map(|n| n.title.as_str()).collect();
    assert_eq!(titles.len(), 7, "{titles:?}");
    assert_eq!(titles[5], "6 new warnings in Engineering");
    assert_eq!(titles[6], "12 new warnings in Engineering");
}

#[test]
fn unacknowledged_critical_repeats_and_acknowledge_stops_it() {
    let mut e = engine("[dedupe]\nrepeat_interval = \"30m\"\n");
    let d = e.decide(
        &event(r#"{"type":"department_critical","data":{"department_name":"Ops"}}"#),
        at(0),
    );
    assert!(d.notify.is_some());
    let due = e.tick(at(1800));
    assert_eq!(due.len(), 1);
    assert_eq!(due[0].kind, NotificationKind::Repeat);
    assert_eq!(due[0].alert.as_deref(), Some(d.key.as_str()));
    assert!(e.acknowledge(&d.key));
    assert!(e.tick(at(3600)).is_empty());
}

#[test]
fn quiet_hours_hold_back_repeats_too() {
    let toml = r#"
[dedupe]
repeat_interval = "9h"
[quiet_hours]
start = "22:00"
end = "07:00"
timezone = "UTC"
"#;
    let mut e = engine(toml);
    e.decide(
        &event(r#"{"type":"department_critical","data":{"department_name":"Ops"}}"#),
        at(0),
    );
    // 14:00 + 9 h = 23:00 UTC: quiet, so the reminder is held back.
    assert!(e.tick(at(9 * 3600)).is_empty());
}

#[test]
fn decisions_are_a_pure_function_of_state_event_and_time() {
    let toml = r#"rules = ["employee_stress: stress_rate > 40 => critical"]"#;
    let events: Vec<Event> = (0..50)
        .map(|i| {
            stress(
                &format!("E{}", i % 7),
                "Engineering",
                30.0 + (i * 13 % 40) as f64,
            )
        })
        .collect();
    let run = || {
        let mut e = engine(toml);
        events
            .iter()
            .enumerate()
            .map(|(i, ev)| e.decide(ev, at(i as i64)))
            .collect::<Vec<_>>()
    };
    assert_eq!(run(), run());
}

#[test]
fn events_with_ids_dedupe_by_id() {
    let mut e = Engine::default();
    let a = event(
        r#"{"type":"riskAlert","id":"a1","alertLevel":"critical","data":{"merchantId":"m1"}}"#,
    );
    let d1 = e.decide(&a, at(0));
    let d2 = e.decide(&a, at(1));
    assert_eq!(d1.key, "desk|id|a1");
    assert!(d1.notify.is_some() && d2.notify.is_none());
}

#[test]
fn reload_keeps_rule_state() {
    let rule = "employee_stress: stress_rate > 40 => critical";
    let mut e = engine(&format!("rules = [\"{rule}\"]"));
    assert!(e.decide(&stress("E1", "X", 50.0), at(0)).notify.is_some());
    let (p, r) = Prefs::from_toml(
        &format!("rules = [\"a: b > 1 => info\", \"{rule}\"]\n[dedupe]\nwindow = \"1s\""),
        "t",
    )
    .unwrap();
    e.set_prefs(p, r);
    assert!(
        e.decide(&stress("E1", "X", 55.0), at(600)).notify.is_none(),
        "still above: the reload did not re-arm the rule"
    );
}

/// A state message is an alert once per change of its subject's level:
/// a department stays "high" tick after tick (listed once), goes critical
/// (listed and notified once), and a session's emergency stop repeated on
/// every status tick notifies once; the stream still shows every tick.
#[test]
fn state_messages_are_alerts_only_when_their_level_changes() {
    let mut e = engine("");
    let dept = |risk: &str| {
        event(&format!(
            r#"{{"type":"department_update","data":{{"department_id":"d1","department_name":"Finance","overall_risk":"{risk}"}}}}"#
        ))
    };
    let listed: Vec<bool> = ["high", "high", "high", "critical", "critical", "low", "low"]
        .iter()
        .enumerate()
        .map(|(i, r)| e.decide(&dept(r), at(i as i64 * 10)).list)
        .collect();
    assert_eq!(listed, [true, false, false, true, false, true, false]);
    let again = e.decide(&dept("low"), at(100));
    assert!(
        !again.list && again.shown(),
        "shown in a stream, not stored"
    );
    assert!(matches!(
        again.reasons.last(),
        Some(Reason::StateUnchanged {
            severity: Severity::Info
        })
    ));

    let notified: Vec<bool> = (0..4)
        .map(|i| {
            e.decide(&session("S7", "emergency_stopped", 100.0), at(200 + i))
                .notify
                .is_some()
        })
        .collect();
    assert_eq!(notified, [true, false, false, false]);
    // A lifecycle change is a change though the severity stays info.
    let lifecycle: Vec<bool> = ["active", "active", "paused", "paused", "active"]
        .iter()
        .enumerate()
        .map(|(i, s)| e.decide(&session("S9", s, 10.0), at(400 + i as i64)).list)
        .collect();
    assert_eq!(lifecycle, [true, false, true, false, true]);
    // Each subject has its own level; alerts proper are never folded so.
    assert!(
        e.decide(&session("S8", "emergency_stopped", 100.0), at(300))
            .notify
            .is_some()
    );
    assert!(is_state("market_data") && !is_state("risk_alert") && !is_state("department_critical"));
}

/// Seed 003 alerts HR when an employee's stress rate crosses 40: at
/// default preferences the crossing notifies once; the rate staying above
/// does not notify again; back below re-arms, and so does a silence (the
/// backend sends nothing below 40); a rule of the user's on the type
/// replaces the built-in one.
#[test]
fn a_stress_crossing_notifies_once_and_re_arms() {
    let mut e = Engine::default();
    let mut notified = |rate: f64, secs: i64| {
        e.decide(&stress("E7", "Ops", rate), at(secs))
            .notify
            .is_some()
    };
    assert!(notified(45.0, 0));
    assert!(!notified(48.0, 60));
    assert!(!notified(39.0, 120), "below: re-armed, nothing to say");
    assert!(notified(41.0, 180), "crossed again");
    // Only alerts, then 31 minutes of silence: a new crossing.
    assert!(!notified(44.0, 240));
    assert!(notified(44.0, 240 + 31 * 60));

    // The backend sends the rate going back down in employee_update: that
    // re-arms too, so the next crossing notifies at once.
    let update = |rate: f64| {
        event(&format!(
            r#"{{"type":"employee_update","data":{{"employee_id":"E8","department":"Ops","stress_rate":{rate}}}}}"#
        ))
    };
    assert!(
        e.decide(&stress("E8", "Ops", 42.0), at(3000))
            .notify
            .is_some()
    );
    assert!(
        e.decide(&stress("E8", "Ops", 43.0), at(3010))
            .notify
            .is_none()
    );
    e.decide(&update(33.0), at(3020));
    // (Past the 60 s dedupe window of the first one.)
    assert!(
        e.decide(&stress("E8", "Ops", 41.0), at(3100))
            .notify
            .is_some()
    );

    let mut own = engine("rules = [\"employee_stress: stress_rate > 80 => critical\"]\n");
    assert!(
        own.decide(&stress("E7", "Ops", 60.0), at(0))
            .notify
            .is_none()
    );
    assert!(
        own.decide(&stress("E7", "Ops", 85.0), at(1))
            .notify
            .is_some()
    );
}
