//! The inbox keeps what it reported as stored: across a clean restart and
//! across `kill -9` of the writing process.

use std::io::Write;
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use riskwatch::Severity;
use riskwatch::inbox::{Inbox, Query, Record, Writer, WriterConfig};
use riskwatch::protocol::{Frame, decode};

use crate::common::{Lines, Proc};
use crate::{child, is_role};

fn event(i: u64) -> riskwatch::Event {
    let text = if i % 10 == 0 {
        format!(
            r#"{{"type":"department_critical","data":{{"department_name":"D{i}","engagement_score":{i}}}}}"#
        )
    } else {
        format!(r#"{{"type":"market_data","symbol":"SYM{i}","price":{i}.5}}"#)
    };
    match decode(&text, &Arc::from("desk"), Utc::now()) {
        Ok(Frame::Event(e)) => e,
        other => panic!("{other:?}"),
    }
}

/// Role: writes events as fast as it can and prints `STORED <id>` for each
/// id only after its batch committed. Runs until killed (at most a minute).
#[test]
fn child_inbox_writer() {
    if !is_role("inbox::child_inbox_writer") {
        return;
    }
    // libtest has printed "test … ... " without a newline: end that line.
    println!();
    let path = std::env::var("RW_INBOX").expect("RW_INBOX");
    let (mut w, done) = Writer::spawn(&path, WriterConfig::default().max_batch(500)).unwrap();
    std::thread::spawn(move || {
        let stdout = std::io::stdout();
        for c in done {
            let mut out = stdout.lock();
            for id in c.ids {
                let _ = writeln!(out, "STORED {id}");
            }
            let _ = out.flush();
        }
    });
    let end = std::time::Instant::now() + Duration::from_secs(60);
    let mut i = 0;
    while std::time::Instant::now() < end {
        w.push(Record::new(event(i), Utc::now())).unwrap();
        i += 1;
    }
}

#[test]
fn everything_reported_stored_survives_kill_9() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("inbox.sqlite3");
    let mut c = child("inbox::child_inbox_writer");
    c.env("RW_INBOX", &path);
    let mut p = Proc::spawn("inbox writer child", &mut c);
    let lines = Lines::from_stdout(p.child.stdout.take().unwrap());
    let mut ids: Vec<i64> = Vec::new();
    let parse = |l: &str| {
        l.strip_prefix("STORED ")
            .and_then(|n| n.parse::<i64>().ok())
    };
    // Let it get well into its stride, then kill it mid-write.
    while ids.len() < 30_000 {
        let l = lines
            .next(Duration::from_secs(30))
            .unwrap_or_else(|| panic!("the child stopped reporting after {} ids", ids.len()));
        ids.extend(parse(&l));
    }
    p.kill9();
    // Whatever it managed to report before dying counts too.
    while let Some(l) = lines.next(Duration::from_millis(500)) {
        ids.extend(parse(&l));
    }
    let inbox = Inbox::open(&path).unwrap();
    let missing = inbox.missing(&ids).unwrap();
    assert!(
        missing.is_empty(),
        "{} of {} reported ids are gone, e.g. {:?}",
        missing.len(),
        ids.len(),
        &missing[..missing.len().min(5)]
    );
    assert!(inbox.count().unwrap() >= ids.len() as u64);
    // And the store still works after the crash.
    let more = Inbox::open(&path)
        .unwrap()
        .insert(&[Record::new(event(10), Utc::now())])
        .unwrap();
    assert!(inbox.get(more[0]).unwrap().is_some());
}

#[test]
fn the_inbox_survives_a_restart_with_its_acknowledgements() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("inbox.sqlite3");
    let (mut w, done) = Writer::spawn(&path, WriterConfig::default()).unwrap();
    for i in 0..100 {
        w.push(Record::new(event(i), Utc::now())).unwrap();
    }
    w.close().unwrap();
    let first: Vec<i64> = done.try_iter().flat_map(|c| c.ids).collect();
    assert_eq!(first.len(), 100);
    {
        let inbox = Inbox::open(&path).unwrap();
        assert_eq!(inbox.unacknowledged_critical().unwrap(), 10);
        inbox.acknowledge(&first[..20], Utc::now()).unwrap();
    }
    // A second run appends after the first.
    let (mut w, done) = Writer::spawn(&path, WriterConfig::default()).unwrap();
    for i in 100..110 {
        w.push(Record::new(event(i), Utc::now()).severity(Severity::Critical))
            .unwrap();
    }
    w.close().unwrap();
    let second: Vec<i64> = done.try_iter().flat_map(|c| c.ids).collect();
    assert!(second[0] > first[99]);
    let inbox = Inbox::open(&path).unwrap();
    assert_eq!(inbox.count().unwrap(), 110);
    // 10 critical among the first 100, 2 of them acknowledged; 10 raised.
    assert_eq!(inbox.unacknowledged_critical().unwrap(), 8 + 10);
    assert_eq!(
        inbox
            .search(&Query::default().acknowledged(true).limit(1000))
            .unwrap()
            .len(),
        20
    );
}
