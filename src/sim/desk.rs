//! The demo desk: every simulator together, publishing into a hub on the
//! channels documented in docs/PROTOCOL.md, so each backend-style endpoint
//! and the native protocol carry live data (`riskwatch serve --demo`).

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::{Map, Value, json};
use tokio_util::sync::CancellationToken;

use super::compliance::ComplianceSim;
use super::hr::HrSim;
use super::merchant::MerchantSim;
use super::trading::TradingSim;
use crate::server::{Hub, NewEvent};

/// The user the trading sessions belong to.
pub const DEMO_USER: &str = "demo";

/// Demo settings.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct DeskOptions {
    /// Default 42.
    pub seed: u64,
    /// Trading ticks (sessions, decisions, market data). Default 500 ms.
    pub trading_tick: Duration,
    /// HR, merchant and compliance ticks. Default 2 s.
    pub slow_tick: Duration,
    /// Dashboard updates (the dashboard seed's 30 s). Default 5 s.
    pub dashboard_tick: Duration,
}

impl Default for DeskOptions {
    fn default() -> Self {
        DeskOptions {
            seed: 42,
            trading_tick: Duration::from_millis(500),
            slow_tick: Duration::from_secs(2),
            dashboard_tick: Duration::from_secs(5),
        }
    }
}

impl DeskOptions {
    pub fn seed(mut self, s: u64) -> Self {
        self.seed = s;
        self
    }
    /// Scales every tick (0.5 = twice as fast).
    pub fn speed(mut self, factor: f64) -> Self {
        let f = if factor.is_finite() && factor > 0.0 {
            factor
        } else {
            1.0
        };
        self.trading_tick = self.trading_tick.mul_f64(f);
        self.slow_tick = self.slow_tick.mul_f64(f);
        self.dashboard_tick = self.dashboard_tick.mul_f64(f);
        self
    }
}

/// Every channel the desk publishes on.
pub fn channels() -> Vec<String> {
    let mut v = vec![format!("sessions:{DEMO_USER}"), "dashboard".to_owned()];
    v.extend(
        ["SPY", "QQQ", "TSLA", "AAPL"]
            .iter()
            .map(|s| format!("market:{s}")),
    );
    v.extend(
        HrSim::department_ids()
            .iter()
            .map(|d| format!("department:{d}")),
    );
    v.extend((1..=3).map(|i| format!("risk-assessment:as-{i}")));
    v.extend(
        super::compliance::CLIENTS
            .iter()
            .map(|(m, c)| ComplianceSim::channel(m, c)),
    );
    v
}

/// The demo's simulators.
#[derive(Debug)]
pub struct Desk {
    trading: TradingSim,
    hr: HrSim,
    merchant: MerchantSim,
    compliance: ComplianceSim,
    dashboard_n: u64,
}

impl Desk {
    pub fn new(seed: u64) -> Desk {
        Desk {
            trading: TradingSim::new(seed, 3),
            hr: HrSim::new(seed),
            merchant: MerchantSim::new(seed, 3),
            compliance: ComplianceSim::new(seed),
            dashboard_n: 0,
        }
    }

    /// One trading tick: market data and the demo user's sessions.
    pub fn trading(&mut self) -> Vec<NewEvent> {
        self.trading.tick(DEMO_USER)
    }

    /// One tick of the slower backends: HR, merchant risk, compliance.
    pub fn slow(&mut self) -> Vec<NewEvent> {
        let mut out = self.hr.tick();
        out.extend(self.merchant.tick());
        out.extend(self.compliance.tick());
        out
    }

    pub fn dashboard(&mut self, now: DateTime<Utc>) -> NewEvent {
        self.dashboard_n += 1;
        let n = self.dashboard_n;
        let mut data = Map::new();
        data.insert("total_risks".into(), json!(120 + (n * 7) % 23));
        data.insert("critical_risks".into(), json!(3 + (n * 5) % 6));
        data.insert("high_risks".into(), json!(15 + (n * 3) % 9));
        data.insert("mitigated_last_24h".into(), json!(8 + n % 5));
        data.insert(
            "average_score".into(),
            json!(50.0 + ((n * 13) % 17) as f64 / 2.0),
        );
        data.insert("generated_at".into(), json!(now.to_rfc3339()));
        NewEvent {
            channel: "dashboard".into(),
            kind: "dashboard_update".into(),
            severity: None,
            id: None,
            data: Value::Object(data),
        }
    }
}

/// Publishes the desk into `hub` until `stop`.
pub async fn run(hub: Arc<Hub>, opts: DeskOptions, stop: CancellationToken) {
    let mut desk = Desk::new(opts.seed);
    let mut fast = tokio::time::interval(opts.trading_tick);
    let mut slow = tokio::time::interval(opts.slow_tick);
    let mut dash = tokio::time::interval(opts.dashboard_tick);
    loop {
        let evs = tokio::select! {
            _ = stop.cancelled() => return,
            _ = fast.tick() => desk.trading(),
            _ = slow.tick() => desk.slow(),
            _ = dash.tick() => vec![desk.dashboard(Utc::now())],
        };
        for e in evs {
            if let Err(err) = hub.publish(e).await {
                tracing::warn!(error = %err, "demo publish failed");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The desk's events reach each style's endpoint in that style's
    /// own shape, as the seed documents show them.
    #[test]
    fn events_encode_as_the_seeds_send_them() {
        let mut d = Desk::new(1);
        let mut evs = Vec::new();
        for _ in 0..40 {
            evs.extend(d.trading());
            evs.extend(d.slow());
        }
        let out = |e: &NewEvent, style| {
            let data = serde_json::value::RawValue::from_string(e.data.to_string()).unwrap();
            let text = crate::protocol::encode(
                style,
                &crate::protocol::Outgoing {
                    channel: &e.channel,
                    seq: 1,
                    kind: &e.kind,
                    severity: crate::protocol::Severity::Info,
                    ts: "2026-03-02T09:00:00.000Z",
                    id: None,
                    data: &data,
                },
            );
            serde_json::from_str::<Value>(&text).unwrap()
        };
        let first = |kind: &str| evs.iter().find(|e| e.kind == kind).unwrap();
        // Seed 004: flat, the session and state beside `data`'s metrics.
        let m = out(first("session_status"), crate::protocol::Style::Trading);
        assert!(m["sessionId"].is_string() && m["status"].is_string(), "{m}");
        assert!(m["data"]["currentPnL"].is_number(), "{m}");
        let m = out(first("market_data"), crate::protocol::Style::Trading);
        assert!(m["symbol"].is_string() && m["price"].is_number(), "{m}");
        // Seed 003: typed, the fields under `data`.
        let m = out(first("employee_update"), crate::protocol::Style::Hr);
        assert!(m["data"]["stress_rate"].is_number(), "{m}");
        // Seed 002: the client named beside `data`.
        let m = out(
            first("interaction_update"),
            crate::protocol::Style::Compliance,
        );
        assert!(m["client_id"].is_string(), "{m}");
        assert!(m["data"]["interaction_count"].is_number(), "{m}");
        // Seed 000.
        let m = out(first("riskUpdate"), crate::protocol::Style::Merchant);
        assert!(m["data"]["score"].is_number(), "{m}");
    }

    #[test]
    fn every_channel_gets_data() {
        let mut d = Desk::new(1);
        let now = Utc::now();
        let mut seen: std::collections::HashSet<String> = Default::default();
        for _ in 0..20 {
            seen.extend(d.trading().into_iter().map(|e| e.channel));
            seen.extend(d.slow().into_iter().map(|e| e.channel));
        }
        seen.insert(d.dashboard(now).channel);
        for ch in channels() {
            assert!(seen.contains(&ch), "no events on {ch}");
        }
    }
}

/// What a person at the demo desk sees: every kind of alert of every style
/// within 30 s of start and regularly after, at a rate a person can read.
#[cfg(test)]
mod pace {
    use std::collections::BTreeMap;
    use std::sync::Arc;

    use chrono::{Duration, TimeZone, Utc};

    use super::*;
    use crate::engine::{Engine, Prefs};
    use crate::protocol::{Frame, Severity, decode, severity_of};

    /// The desk's events for `secs` seconds at its default ticks, each as
    /// the desktop's native client decodes it, in time order.
    fn run(secs: i64) -> Vec<(i64, crate::Event)> {
        let t0 = Utc.with_ymd_and_hms(2026, 3, 2, 9, 0, 0).unwrap();
        let mut desk = Desk::new(42);
        let src: Arc<str> = Arc::from("demo");
        let mut out = Vec::new();
        let mut seq = 0;
        // Milliseconds: trading every 500, slow every 2,000, dashboard every 5,000.
        for ms in (0..secs * 1000).step_by(500) {
            let now = t0 + Duration::milliseconds(ms);
            let mut evs = desk.trading();
            if ms % 2000 == 0 {
                evs.extend(desk.slow());
            }
            if ms % 5000 == 0 {
                evs.push(desk.dashboard(now));
            }
            for e in evs {
                seq += 1;
                // The hub's severity when the publisher gave none.
                let sev = e
                    .severity
                    .unwrap_or_else(|| severity_of(&e.kind, &e.data.to_string()));
                let wire = serde_json::json!({"op": "event", "channel": e.channel, "seq": seq,
                    "type": e.kind, "severity": sev, "ts": now.to_rfc3339(), "data": e.data});
                if let Ok(Frame::Event(ev)) = decode(&wire.to_string(), &src, now) {
                    out.push((ms / 1000, ev));
                }
            }
        }
        out
    }

    #[test]
    fn every_kind_of_alert_comes_within_30_s_at_a_readable_rate() {
        let events = run(300);
        let mut prefs = Prefs::default();
        prefs.severity.list = Severity::Warning; // the desktop's default
        let mut engine = Engine::new(prefs, Vec::new());
        let t0 = Utc.with_ymd_and_hms(2026, 3, 2, 9, 0, 0).unwrap();
        let mut first: BTreeMap<&str, i64> = BTreeMap::new();
        let mut per_minute = [0u32; 5];
        let mut by_kind: BTreeMap<String, u32> = BTreeMap::new();
        for (s, e) in &events {
            let d = engine.decide(e, t0 + Duration::seconds(*s));
            if !d.list {
                continue;
            }
            per_minute[(*s / 60) as usize] += 1;
            *by_kind
                .entry(format!("{}:{}", e.kind, d.severity_after_rules))
                .or_insert(0) += 1;
            let kind = match (e.kind.as_str(), d.severity_after_rules) {
                ("session_status", Severity::Emergency) => "emergency stop",
                ("risk_alert", Severity::Warning) => "trading warning",
                ("risk_alert", Severity::Critical | Severity::Emergency) => "trading critical",
                ("department_critical", _) => "department critical",
                ("employee_stress", Severity::Critical) => "stress crossing",
                ("riskAlert", _) => "merchant risk alert",
                ("alert", _) => "compliance alert",
                _ => continue,
            };
            first.entry(kind).or_insert(*s);
        }
        let kinds = [
            "compliance alert",
            "department critical",
            "emergency stop",
            "merchant risk alert",
            "stress crossing",
            "trading critical",
            "trading warning",
        ];
        for k in kinds {
            let at = first.get(k).copied();
            assert!(
                at.is_some_and(|s| s <= 30),
                "{k} first at {at:?} s: {first:?}"
            );
        }
        // About ten a minute, every minute (the first carries each
        // subject's first state too).
        let why = format!("per minute {per_minute:?}, by kind {by_kind:?}");
        for n in per_minute {
            assert!((5..=18).contains(&n), "{why}");
        }
        assert!(per_minute.iter().sum::<u32>() <= 60, "{why}");
    }
}
