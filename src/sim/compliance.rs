//! Compliance engagement per client under MSPs: `engagement_update` with
//! departments / applications / agents, `interaction_update` counters, and
//! now and then an `alert` with a severity, as the compliance seed
//! broadcasts them.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::json;

use super::event;
use crate::server::NewEvent;

const APPS: [&str; 4] = ["ChatGPT", "Copilot", "Gemini", "Claude"];
const ALERTS: [(&str, &str); 4] = [
    ("low", "New AI application seen"),
    ("medium", "Policy exception requested"),
    ("high", "Suspicious activity detected"),
    ("high", "Sensitive data pasted into an unapproved app"),
];
/// (msp, client) pairs.
pub const CLIENTS: [(&str, &str); 3] = [("m1", "c1"), ("m1", "c2"), ("m2", "c3")];

#[derive(Debug)]
pub struct ComplianceSim {
    rng: StdRng,
    ticks: u64,
    daily: Vec<u64>,
}

impl ComplianceSim {
    pub fn new(seed: u64) -> ComplianceSim {
        ComplianceSim {
            rng: StdRng::seed_from_u64(seed ^ 0x434f),
            ticks: 0,
            daily: vec![0; CLIENTS.len()],
        }
    }

    /// The channel of a client: `msp:{m}/client:{c}`.
    pub fn channel(msp: &str, client: &str) -> String {
        format!("msp:{msp}/client:{client}")
    }

    /// One step: each client's events, on its channel (the client id in
    /// the compliance style's messages comes from it).
    pub fn tick(&mut self) -> Vec<NewEvent> {
        let mut out = Vec::new();
        self.ticks += 1;
        for (i, (msp, client)) in CLIENTS.iter().enumerate() {
            let ch = Self::channel(msp, client);
            let n = self.rng.random_range(0..8u64);
            self.daily[i] += n;
            let app = APPS[self.rng.random_range(0..APPS.len())];
            out.push(event(ch.clone(), "interaction_update",
                json!({"app_id": app, "interaction_count": n, "total_daily_interactions": self.daily[i]})));
            if self.rng.random_bool(0.2) {
                out.push(event(ch.clone(), "engagement_update",
                    json!({"departments": [{"name": "Engineering", "engagement": self.rng.random_range(40..95)},
                                           {"name": "Sales", "engagement": self.rng.random_range(30..90)}],
                           "applications": APPS.iter().map(|a| json!({"name": a, "users": self.rng.random_range(0..50)})).collect::<Vec<_>>(),
                           "agents": self.rng.random_range(1..12)})));
            }
            // Now and then; always once early (the first client, ~12 s in),
            // so the demo shows a compliance alert within half a minute.
            let scripted = self.ticks == 6 && i == 0;
            if scripted || self.rng.random_bool(0.025) {
                let (sev, what) = ALERTS[self.rng.random_range(0..ALERTS.len())];
                out.push(event(
                    ch,
                    "alert",
                    json!({"severity": sev, "details": what, "app": app}),
                ));
            }
        }
        out
    }
}
