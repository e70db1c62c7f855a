//! A trading desk: a few sessions whose P&L walks randomly, with loss-limit
//! utilisation, algorithm decisions with reasoning and confidence, ticks for
//! several symbols, risk alerts when utilisation crosses 80 % and 90 %, and
//! an emergency stop at 100 % after which the session restarts. Messages
//! are in the trading style (payload fields at the top level, `data` for
//! `session_status`), exactly as that backend sends them.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::json;

use super::{event, round};
use crate::server::NewEvent;

const SYMBOLS: [(&str, f64); 4] = [
    ("SPY", 512.0),
    ("QQQ", 438.0),
    ("TSLA", 242.0),
    ("AAPL", 228.0),
];
const DECISIONS: [&str; 4] = ["buy", "sell", "hold", "close_position"];
const REASONS: [&str; 6] = [
    "momentum breakout above 20-day high",
    "mean reversion: price 2σ below VWAP",
    "volatility expansion, reducing exposure",
    "trend intact, holding position",
    "stop-loss proximity, closing position",
    "volume spike confirms reversal",
];

/// Utilisation thresholds that raise a `risk_alert`, with its level.
const THRESHOLDS: [(f64, &str); 2] = [(80.0, "warning"), (90.0, "critical")];

#[derive(Debug, Clone)]
struct Session {
    id: String,
    pnl: f64,
    loss_limit: f64,
    trades: u64,
    started_tick: u64,
    /// Highest threshold index already alerted (re-armed when it falls back).
    alerted: usize,
    /// Ticks left before a stopped session restarts.
    stopped_for: u32,
    drift: f64,
    /// The desk's storyline session (the first): calm for this many more
    /// ticks, then it runs into its loss limit, so a person watching the
    /// demo sees a warning, a critical alert and an emergency stop within
    /// half a minute of start and about every 80 s after.
    calm_for: Option<u32>,
}

/// The storyline session's drift while it runs into its limit: about 2.5 %
/// of the limit lost per tick, so 80 % comes ~32 ticks (16 s at the desk's
/// 500 ms) after the run starts and the stop ~8 ticks later.
const RUN_DRIFT: f64 = -1.25;
/// Calm ticks between the storyline's runs (50 s at 500 ms).
const CALM_TICKS: u32 = 100;

/// The trading simulator. Call [`TradingSim::tick`] at any rate.
#[derive(Debug)]
pub struct TradingSim {
    rng: StdRng,
    sessions: Vec<Session>,
    prices: Vec<f64>,
    tick: u64,
}

impl TradingSim {
    /// A desk with `sessions` sessions (at least one), named `S1`, `S2`, …
    pub fn new(seed: u64, sessions: usize) -> TradingSim {
        let mut rng = StdRng::seed_from_u64(seed);
        let sessions = (1..=sessions.max(1))
            .map(|i| Session {
                id: format!("S{i}"),
                pnl: 0.0,
                loss_limit: 5_000.0 * i as f64,
                trades: 0,
                started_tick: 0,
                alerted: 0,
                stopped_for: 0,
                drift: if i == 1 {
                    RUN_DRIFT
                } else {
                    rng.random_range(-0.08..0.02)
                },
                calm_for: (i == 1).then_some(0),
            })
            .collect();
        TradingSim {
            rng,
            sessions,
            prices: SYMBOLS.iter().map(|(_, p)| *p).collect(),
            tick: 0,
        }
    }

    pub fn session_ids(&self) -> Vec<String> {
        self.sessions.iter().map(|s| s.id.clone()).collect()
    }

    /// One step of the simulation: its events, market data on
    /// `market:{symbol}`, the sessions' on `sessions:{user}`.
    pub fn tick(&mut self, user: &str) -> Vec<NewEvent> {
        self.tick += 1;
        let mut out = Vec::new();
        for (i, (sym, _)) in SYMBOLS.iter().enumerate() {
            let p = &mut self.prices[i];
            *p *= 1.0 + self.rng.random_range(-0.002..0.002);
            out.push(event(
                format!("market:{sym}"),
                "market_data",
                json!({"symbol": sym, "price": round(*p, 2), "volume": self.rng.random_range(100..5_000)}),
            ));
        }
        let sessions = format!("sessions:{user}");
        for idx in 0..self.sessions.len() {
            self.step_session(idx, &sessions, &mut out);
        }
        out
    }

    fn step_session(&mut self, idx: usize, ch: &str, out: &mut Vec<NewEvent>) {
        let tick = self.tick;
        let rng = &mut self.rng;
        let s = &mut self.sessions[idx];
        if s.stopped_for > 0 {
            s.stopped_for -= 1;
            if s.stopped_for == 0 {
                let story = s.calm_for.is_some();
                *s = Session {
                    pnl: 0.0,
                    trades: 0,
                    started_tick: tick,
                    alerted: 0,
                    drift: rng.random_range(-0.08..0.02),
                    calm_for: story.then_some(CALM_TICKS),
                    ..s.clone()
                };
                out.push(status(ch, s, "active", tick));
            }
            return;
        }
        if let Some(calm) = s.calm_for.as_mut() {
            if *calm > 0 {
                *calm -= 1;
            } else {
                s.drift = RUN_DRIFT;
            }
        }
        let step: f64 = rng.random_range(-1.0..1.0) + s.drift;
        s.pnl += step * s.loss_limit * 0.02;
        let util = (-s.pnl / s.loss_limit * 100.0).clamp(0.0, 100.0);
        if rng.random_bool(0.35) {
            s.trades += 1;
            let (sym, _) = SYMBOLS[rng.random_range(0..SYMBOLS.len())];
            out.push(event(ch.to_owned(), "algorithm_decision", json!({
                "sessionId": s.id,
                "algorithmId": format!("algo-{}", idx + 1),
                "decision": DECISIONS[rng.random_range(0..DECISIONS.len())],
                "reasoning": REASONS[rng.random_range(0..REASONS.len())],
                "confidence": round(rng.random_range(0.5..0.99), 2),
                "marketData": {"symbol": sym, "price": round(self.prices[SYMBOLS.iter().position(|(x, _)| *x == sym).unwrap_or(0)], 2), "volume": rng.random_range(100..2_000)},
            })));
        }
        // Alerts on the rising edge of each threshold; re-armed below it.
        let level = THRESHOLDS.iter().filter(|(t, _)| util >= *t).count();
        if level > s.alerted {
            let (threshold, alert_level) = THRESHOLDS[level - 1];
            out.push(event(
                ch.to_owned(),
                "risk_alert",
                json!({
                    "sessionId": s.id, "alertLevel": alert_level,
                    "alertType": "loss_limit",
                    "message": format!("Loss limit {:.0}% used", util),
                    "currentValue": round(util, 2), "threshold": threshold,
                }),
            ));
        }
        s.alerted = level;
        if util >= 100.0 {
            s.stopped_for = 5;
            out.push(status(ch, s, "emergency_stopped", tick));
        } else {
            out.push(status(ch, s, "active", tick));
        }
    }
}

/// A `session_status`: the session and its state beside `data`'s
/// metrics, as seed 004 sends it.
fn status(ch: &str, s: &Session, status: &str, tick: u64) -> NewEvent {
    let util = (-s.pnl / s.loss_limit * 100.0).clamp(0.0, 100.0);
    event(
        ch.to_owned(),
        "session_status",
        json!({
            "sessionId": s.id, "status": status,
            "data": {
                "currentPnL": round(s.pnl, 2), "totalTrades": s.trades,
                "lossLimitUtilization": round(util, 2),
                "timeElapsed": tick.saturating_sub(s.started_tick),
                "performanceScore": round((50.0 + s.pnl / s.loss_limit * 50.0).clamp(0.0, 100.0), 2),
            }
        }),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(seed: u64, ticks: usize) -> Vec<NewEvent> {
        let mut sim = TradingSim::new(seed, 3);
        (0..ticks).flat_map(|_| sim.tick("u1")).collect()
    }

    #[test]
    fn same_seed_same_messages() {
        assert_eq!(run(7, 200), run(7, 200));
        assert_ne!(run(7, 50), run(8, 50));
    }

    #[test]
    fn produces_every_trading_type_including_emergency_stops() {
        let msgs = run(1, 2_000);
        for t in [
            "market_data",
            "algorithm_decision",
            "risk_alert",
            "session_status",
        ] {
            assert!(msgs.iter().any(|m| m.kind == t), "no {t}");
        }
        assert!(msgs.iter().any(|m| m.data["status"] == "emergency_stopped"));
        assert!(msgs.iter().any(|m| m.data["alertLevel"] == "critical"));
        for m in &msgs {
            let want = if m.kind == "market_data" {
                format!("market:{}", m.data["symbol"].as_str().unwrap())
            } else {
                "sessions:u1".to_owned()
            };
            assert_eq!(m.channel, want, "{m:?}");
        }
    }
}
