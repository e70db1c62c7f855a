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

/// A style message → a hub event: `type` becomes the kind; for messages with
/// a `data` field that is the data, otherwise (trading) every other field.
fn to_event(channel: String, mut msg: Value) -> Option<NewEvent> {
    let obj = msg.as_object_mut()?;
    let kind = obj.remove("type")?.as_str()?.to_owned();
    obj.remove("timestamp");
    let data = match obj.remove("data") {
        Some(d) if obj.is_empty() || obj.keys().all(|k| k == "client_id") => d,
        Some(d) => {
            obj.insert("data".into(), d);
            Value::Object(std::mem::take(obj))
        }
        None => Value::Object(std::mem::take(obj)),
    };
    Some(NewEvent {
        channel,
        kind,
        severity: None,
        id: None,
        data,
    })
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

    pub fn trading(&mut self, now: DateTime<Utc>) -> Vec<NewEvent> {
        self.trading
            .tick(now)
            .into_iter()
            .filter_map(|m| {
                let ch = match m["type"].as_str() {
                    Some("market_data") => {
                        format!("market:{}", m["symbol"].as_str().unwrap_or("?"))
                    }
                    _ => format!("sessions:{DEMO_USER}"),
                };
                to_event(ch, m)
            })
            .collect()
    }

    pub fn slow(&mut self, now: DateTime<Utc>) -> Vec<NewEvent> {
        let hr = self
            .hr
            .tick(now)
            .into_iter()
            .map(|(d, m)| (format!("department:{d}"), m));
        let merchant = self
            .merchant
            .tick(now)
            .into_iter()
            .map(|(a, m)| (format!("risk-assessment:{a}"), m));
        let compliance = self.compliance.tick(now);
        hr.chain(merchant)
            .chain(compliance)
            .filter_map(|(ch, m)| to_event(ch, m))
            .collect()
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
            _ = fast.tick() => desk.trading(Utc::now()),
            _ = slow.tick() => desk.slow(Utc::now()),
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

    #[test]
    fn style_messages_become_hub_events() {
        let e = to_event("c".into(), json!({"type": "risk_alert", "sessionId": "S1", "alertLevel": "critical", "timestamp": "t"})).unwrap();
        assert_eq!(e.kind, "risk_alert");
        assert_eq!(e.data, json!({"sessionId": "S1", "alertLevel": "critical"}));
        let e = to_event("c".into(), json!({"type": "session_status", "sessionId": "S1", "status": "active", "data": {"currentPnL": 1}})).unwrap();
        assert_eq!(
            e.data,
            json!({"sessionId": "S1", "status": "active", "data": {"currentPnL": 1}})
        );
        let e = to_event(
            "c".into(),
            json!({"type": "alert", "client_id": "c1", "data": {"severity": "high"}}),
        )
        .unwrap();
        assert_eq!(e.data, json!({"severity": "high"}));
    }

    #[test]
    fn every_channel_gets_data() {
        let mut d = Desk::new(1);
        let now = Utc::now();
        let mut seen: std::collections::HashSet<String> = Default::default();
        for _ in 0..20 {
            seen.extend(d.trading(now).into_iter().map(|e| e.channel));
            seen.extend(d.slow(now).into_iter().map(|e| e.channel));
        }
        seen.insert(d.dashboard(now).channel);
        for ch in channels() {
            assert!(seen.contains(&ch), "no events on {ch}");
        }
    }
}
