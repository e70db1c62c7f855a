//! HR risk: departments whose overall risk and engagement drift, and
//! employees whose stress rate walks. As the HR seed does, an
//! `employee_stress` alert fires once when stress crosses above 40 and again
//! only after it fell back to 40 or below; `department_critical` fires when a
//! department becomes critical and re-arms when it leaves critical. Routine
//! `department_update` / `employee_update` messages feed the dashboards.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::json;

use super::{event, round};
use crate::server::NewEvent;

/// The seed's stress threshold.
pub const STRESS_THRESHOLD: f64 = 40.0;

const DEPARTMENTS: [(&str, &str); 4] = [
    ("dept-eng", "Engineering"),
    ("dept-sales", "Sales"),
    ("dept-ops", "Operations"),
    ("dept-fin", "Finance"),
];
const NAMES: [&str; 12] = [
    "John Doe",
    "Ana Silva",
    "Wei Chen",
    "Priya Patel",
    "Tom Berg",
    "Lea Martin",
    "Omar Haddad",
    "Sara Kim",
    "Ivan Petrov",
    "Maya Cohen",
    "Luis Ortega",
    "Emma Novak",
];
const POSITIONS: [&str; 4] = [
    "Software Engineer",
    "Account Manager",
    "Analyst",
    "Team Lead",
];
const RISKS: [&str; 4] = ["low", "medium", "high", "critical"];

#[derive(Debug)]
struct Employee {
    id: String,
    name: &'static str,
    dept: usize,
    position: &'static str,
    stress: f64,
    engagement: f64,
    attrition: f64,
    alerted: bool,
}

#[derive(Debug)]
struct Department {
    risk: usize,
    engagement: f64,
}

/// The HR simulator. Messages are `(department_id, message)` pairs.
#[derive(Debug)]
pub struct HrSim {
    rng: StdRng,
    depts: Vec<Department>,
    employees: Vec<Employee>,
    ticks: u64,
}

/// A department's risk moves one step with this chance per tick (at the
/// desk's 2 s, about one change a minute among the four departments).
const RISK_STEP: f64 = 0.012;
/// The tick (about 10 s into the demo) at which the storyline's department
/// (Finance) goes critical and its first employee's stress crosses 40, so
/// both HR alerts show early.
const STORY_TICK: u64 = 5;

impl HrSim {
    pub fn new(seed: u64) -> HrSim {
        let mut rng = StdRng::seed_from_u64(seed ^ 0x4852);
        let depts = DEPARTMENTS
            .iter()
            .map(|_| Department {
                risk: rng.random_range(0..2),
                engagement: rng.random_range(55.0..80.0),
            })
            .collect();
        let employees = NAMES
            .iter()
            .enumerate()
            .map(|(i, name)| Employee {
                id: format!("EMP{:03}", i + 1),
                name,
                dept: i % DEPARTMENTS.len(),
                position: POSITIONS[i % POSITIONS.len()],
                stress: rng.random_range(15.0..38.0),
                engagement: rng.random_range(40.0..85.0),
                attrition: rng.random_range(10.0..50.0),
                alerted: false,
            })
            .collect();
        HrSim {
            rng,
            depts,
            employees,
            ticks: 0,
        }
    }

    /// The department ids (channel `department:{id}`).
    pub fn department_ids() -> Vec<&'static str> {
        DEPARTMENTS.iter().map(|(id, _)| *id).collect()
    }

    /// One step: employee and department events, on
    /// `department:{id}`.
    pub fn tick(&mut self) -> Vec<NewEvent> {
        let mut out = Vec::new();
        self.ticks += 1;
        let story = self.ticks == STORY_TICK;
        for (n, e) in self.employees.iter_mut().enumerate() {
            // A walk pulled back towards 30: crossings of 40 are events,
            // not the weather.
            let pull = (30.0 - e.stress) * 0.05;
            e.stress = round(
                (e.stress + pull + self.rng.random_range(-2.4..2.5)).clamp(0.0, 100.0),
                1,
            );
            if story && n == 3 {
                e.stress = e.stress.max(STRESS_THRESHOLD + 2.5);
            }
            e.engagement = (e.engagement + self.rng.random_range(-2.0..2.0)).clamp(0.0, 100.0);
            let (dept_id, dept_name) = DEPARTMENTS[e.dept];
            let data = json!({
                "employee_id": e.id, "employee_name": e.name, "department": dept_name,
                "position": e.position, "stress_rate": round(e.stress, 1),
                "engagement_rate": round(e.engagement, 1), "attrition_rate": round(e.attrition, 1),
            });
            let ch = format!("department:{dept_id}");
            out.push(event(ch.clone(), "employee_update", data.clone()));
            if e.stress > STRESS_THRESHOLD && !e.alerted {
                e.alerted = true;
                out.push(event(ch, "employee_stress", data));
            } else if e.stress <= STRESS_THRESHOLD {
                e.alerted = false;
            }
        }
        for (i, d) in self.depts.iter_mut().enumerate() {
            let was = d.risk;
            if story && i == 3 {
                d.risk = 3;
            } else if self.rng.random_bool(RISK_STEP) {
                d.risk = if self.rng.random_bool(0.55) {
                    (d.risk + 1).min(3)
                } else {
                    d.risk.saturating_sub(1)
                };
            }
            d.engagement = (d.engagement + self.rng.random_range(-1.5..1.5)).clamp(20.0, 95.0);
            let (id, name) = DEPARTMENTS[i];
            let data = json!({
                "department_id": id, "department_name": name,
                "overall_risk": RISKS[d.risk], "engagement_score": round(d.engagement, 1),
            });
            let ch = format!("department:{id}");
            out.push(event(ch.clone(), "department_update", data.clone()));
            if d.risk == 3 && was != 3 {
                out.push(event(ch, "department_critical", data));
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stress_alerts_fire_once_per_crossing() {
        let mut sim = HrSim::new(3);
        let mut alerted: std::collections::HashMap<String, bool> = Default::default();
        let mut alerts = 0;
        for _ in 0..500 {
            for m in sim.tick() {
                let d = &m.data;
                match m.kind.as_str() {
                    "employee_update" => {
                        let id = d["employee_id"].as_str().unwrap().to_owned();
                        if d["stress_rate"].as_f64().unwrap() <= STRESS_THRESHOLD {
                            alerted.insert(id, false);
                        }
                    }
                    "employee_stress" => {
                        let id = d["employee_id"].as_str().unwrap().to_owned();
                        assert!(d["stress_rate"].as_f64().unwrap() > STRESS_THRESHOLD);
                        assert_ne!(
                            alerted.insert(id, true),
                            Some(true),
                            "alerted twice without re-arming"
                        );
                        alerts += 1;
                    }
                    _ => {}
                }
            }
        }
        assert!(
            alerts > 3,
            "the walk should cross the threshold a few times"
        );
    }
}
