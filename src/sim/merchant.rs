//! Merchant risk assessments: each assessment's score walks; a
//! `riskUpdate` per tick, a `riskPrediction` now and then, and a `riskAlert`
//! when the score crosses 70 (high) or 85 (critical), re-armed below.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::json;

use super::{event, round};
use crate::server::NewEvent;

const FACTORS: [&str; 5] = [
    "chargeback_rate",
    "velocity",
    "refund_ratio",
    "geo_mismatch",
    "new_device",
];
const LEVELS: [(f64, &str); 2] = [(70.0, "high"), (85.0, "critical")];
/// How far below a threshold a score must go before it alerts again.
const REARM_BELOW: f64 = 10.0;

#[derive(Debug)]
struct Assessment {
    id: String,
    merchant: String,
    score: f64,
    alerted: usize,
}

#[derive(Debug)]
pub struct MerchantSim {
    rng: StdRng,
    items: Vec<Assessment>,
    /// Ticks so far: the first one predicts every assessment, so a new
    /// viewer sees a prediction at once rather than after ~20 s.
    ticks: u64,
}

impl MerchantSim {
    pub fn new(seed: u64, n: usize) -> MerchantSim {
        let mut rng = StdRng::seed_from_u64(seed ^ 0x4d52);
        let items = (1..=n.max(1))
            .map(|i| Assessment {
                id: format!("as-{i}"),
                merchant: format!("m-{}", 1000 + i),
                score: rng.random_range(30.0..60.0),
                alerted: 0,
            })
            .collect();
        MerchantSim {
            rng,
            items,
            ticks: 0,
        }
    }

    pub fn assessment_ids(&self) -> Vec<String> {
        self.items.iter().map(|a| a.id.clone()).collect()
    }

    /// One step: the assessments' events, on
    /// `risk-assessment:{assessment_id}`.
    pub fn tick(&mut self) -> Vec<NewEvent> {
        let mut out = Vec::new();
        let first = self.ticks == 0;
        self.ticks += 1;
        let first_id = self.items.first().map(|a| a.id.clone()).unwrap_or_default();
        for a in &mut self.items {
            let ch = format!("risk-assessment:{}", a.id);
            let prev = a.score;
            a.score = (a.score + self.rng.random_range(-4.0..4.4)).clamp(0.0, 100.0);
            out.push(event(
                ch.clone(),
                "riskUpdate",
                json!({
                "assessment_id": a.id, "merchant_id": a.merchant, "score": round(a.score, 1),
                "previous_score": round(prev, 1)}),
            ));
            // Drawn every tick, so the sequence does not depend on `first`.
            let predict = self.rng.random_bool(0.1);
            if first || predict {
                out.push(event(ch.clone(), "riskPrediction", json!({
                    "assessment_id": a.id, "merchant_id": a.merchant, "horizon_days": 30,
                    "predicted_score": round((a.score + self.rng.random_range(-10.0..12.0)).clamp(0.0, 100.0), 1),
                    "confidence": round(self.rng.random_range(0.6..0.95), 1)})));
            }
            // Scripted start: the first assessment crosses 70 about 10 s in.
            if self.ticks == 5 && a.id == first_id {
                a.score = a.score.max(LEVELS[0].0 + 1.0);
            }
            let level = LEVELS.iter().filter(|(t, _)| a.score >= *t).count();
            if level > a.alerted {
                let (t, sev) = LEVELS[level - 1];
                let factor = FACTORS[self.rng.random_range(0..FACTORS.len())];
                out.push(event(ch, "riskAlert", json!({
                    "assessment_id": a.id, "merchant_id": a.merchant, "severity": sev,
                    "score": round(a.score, 1), "threshold": t, "factor": factor,
                    "message": format!("Risk score {:.0} crossed {t} ({})", a.score, factor.replace('_', " "))})));
            }
            // Re-armed only 10 points below a threshold, so a score
            // hovering at 70 is one alert, not one every few seconds.
            a.alerted = if level >= a.alerted {
                level
            } else {
                LEVELS
                    .iter()
                    .filter(|(t, _)| a.score >= *t - REARM_BELOW)
                    .count()
                    .min(a.alerted)
            };
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_tick_predicts_every_assessment() {
        let mut sim = MerchantSim::new(7, 3);
        let first = sim.tick();
        let predicted = first.iter().filter(|m| m.kind == "riskPrediction").count();
        assert_eq!(predicted, 3, "{first:?}");
        // Later ticks predict now and then, not every time.
        let later: usize = (0..50)
            .map(|_| {
                sim.tick()
                    .iter()
                    .filter(|m| m.kind == "riskPrediction")
                    .count()
            })
            .sum();
        assert!((1..150).contains(&later), "{later}");
    }
}
