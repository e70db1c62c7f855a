//! A realistic inbox for benchmarks and measurements (`benches/inbox.rs`,
//! the desktop's end-to-end measurement of a million-row inbox): messages
//! of every backend's kind, written through the batching writer as the
//! apps write them. Not used by the product itself.

use std::path::Path;
use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};

use super::{Inbox, InboxError, Record, Writer, WriterConfig};
use crate::protocol::{Frame, decode};

/// Messages as each backend sends them, about 300 bytes each, varied by
/// `i`: names, departments and identifiers from small sets, one id
/// unique to each alert.
pub fn message(i: usize) -> String {
    let depts = ["Engineering", "Sales", "Operations", "Finance", "Legal"];
    let names = [
        "John Doe",
        "Amira Haddad",
        "Lin Wei",
        "Marta Silva",
        "Kofi Mensah",
    ];
    let d = depts[i / 25 % depts.len()];
    match i % 5 {
        0 => format!(
            r#"{{"type":"riskAlert","timestamp":"2026-03-01T12:00:00Z","data":{{"assessment_id":"as-{i}","merchant_id":"m-{}","severity":"{}","score":{}.5,"factors":["chargeback_rate","velocity"],"message":"Chargeback rate above 2% over the last 24 hours","region":"eu-west-1"}}}}"#,
            i % 9973,
            if i % 20 == 0 { "critical" } else { "medium" },
            40 + i % 60
        ),
        1 => format!(
            r#"{{"type":"employee_stress","timestamp":"2026-03-01T12:00:00Z","data":{{"employee_id":"EMP{i:07}","employee_name":"{}","department":"{d}","position":"Analyst","stress_rate":{}.5,"engagement_rate":42.0,"attrition_rate":55.0,"manager":"A. Lee"}}}}"#,
            names[i / 5 % names.len()],
            30 + i % 70
        ),
        2 => format!(
            r#"{{"type":"alert","timestamp":"2026-03-01T12:00:00Z","client_id":"c-{}","data":{{"severity":"{}","details":"Suspicious activity detected: bulk export of customer records to an unapproved AI service","app":"ChatGPT","user":"user{}","ref":"cmp-{i}"}}}}"#,
            i % 97,
            if i % 15 == 2 { "critical" } else { "high" },
            i % 500
        ),
        3 => format!(
            r#"{{"type":"session_status","sessionId":"S{}","status":"{}","lossLimitUtilization":{},"currentPnL":-{}.5,"totalTrades":{},"orderRef":"ord-{i}","algorithmId":"mom-1"}}"#,
            i % 300,
            if i % 50 == 3 {
                "emergency_stopped"
            } else {
                "active"
            },
            i % 100,
            i % 5000,
            i % 700
        ),
        _ => format!(
            r#"{{"type":"department_critical","timestamp":"2026-03-01T12:00:00Z","data":{{"department_name":"{d}","average_stress":{}.0,"employees_at_risk":{},"report":"rep-{i}"}}}}"#,
            60 + i % 40,
            i % 30
        ),
    }
}

/// Writes `n` alerts spread evenly over `span` before `end`, oldest first,
/// through the batching writer; a tenth acknowledged. Returns their ids,
/// in order.
pub fn fill(
    path: &Path,
    n: usize,
    end: DateTime<Utc>,
    span: Duration,
) -> Result<Vec<i64>, InboxError> {
    let src: Arc<str> = Arc::from("sample");
    let step = span.num_milliseconds() / n.max(1) as i64;
    let (mut w, done) = Writer::spawn(path, WriterConfig::default())?;
    for i in 0..n {
        let at = end - Duration::milliseconds(step * (n - i) as i64);
        // Every sample message decodes (the unit test below holds it to it).
        let Ok(Frame::Event(e)) = decode(&message(i), &src, at) else {
            continue;
        };
        let severity = e.severity;
        w.push(Record::new(e, at).severity(severity))?;
    }
    w.flush()?;
    w.close()?;
    let mut ids: Vec<i64> = done.try_iter().flat_map(|c| c.ids).collect();
    ids.sort_unstable();
    let acked: Vec<i64> = ids.iter().copied().step_by(10).collect();
    Inbox::open(path)?.acknowledge(&acked, end)?;
    Ok(ids)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_sample_is_stored_and_a_tenth_acknowledged() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("inbox.sqlite3");
        let ids = fill(&path, 500, Utc::now(), Duration::days(1)).unwrap();
        assert_eq!(ids.len(), 500, "every message decodes and is stored");
        let inbox = Inbox::open(&path).unwrap();
        assert_eq!(inbox.unacknowledged().unwrap(), 450);
    }
}
