//! The inbox against a real SQLite file: batching, acknowledgements,
//! search, retention, restarts.

use std::sync::Arc;

use super::*;
use crate::protocol::{Frame, decode};
use chrono::TimeZone;

fn ev(json: &str, secs: i64) -> Event {
    let t = Utc.with_ymd_and_hms(2025, 1, 1, 0, 0, 0).unwrap() + chrono::Duration::seconds(secs);
    match decode(json, &Arc::from("desk"), t) {
        Ok(Frame::Event(e)) => e,
        other => panic!("{other:?}"),
    }
}

fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2025, 1, 2, 0, 0, 0).unwrap()
}

fn sample() -> Vec<Record> {
    vec![
        Record::new(ev(r#"{"type":"market_data","symbol":"SPY","price":1}"#, 0), now()),
        Record::new(
            ev(r#"{"type":"employee_stress","data":{"employee_id":"E1","department":"Engineering","stress_rate":65.5}}"#, 10),
            now(),
        )
        .key("desk|employee_stress|employee:E1"),
        Record::new(
            ev(r#"{"type":"department_critical","data":{"department_name":"Sales 100%_off"}}"#, 20),
            now(),
        ),
        Record::new(
            ev(r#"{"type":"session_status","sessionId":"S42","status":"emergency_stopped"}"#, 30),
            now(),
        ),
    ]
}

#[test]
fn stores_round_trips_and_counts() {
    let dir = tempfile::tempdir().unwrap();
    let mut inbox = Inbox::open(dir.path().join("a/inbox.db")).unwrap();
    let recs = sample();
    let ids = inbox.insert(&recs).unwrap();
    assert_eq!(ids.len(), 4);
    let got = inbox.get(ids[1]).unwrap().unwrap();
    assert_eq!(got.event, recs[1].event, "the event comes back whole");
    assert_eq!(got.key.as_deref(), Some("desk|employee_stress|employee:E1"));
    // A notification's key leads to the newest alert stored under it.
    let again = inbox.insert(&sample()[1..2]).unwrap();
    assert_eq!(
        inbox
            .newest_with_key("desk|employee_stress|employee:E1")
            .unwrap(),
        Some(again[0])
    );
    assert_eq!(inbox.newest_with_key("desk|nothing").unwrap(), None);
    assert_eq!(inbox.count().unwrap(), 5);
    assert_eq!(inbox.unacknowledged_critical().unwrap(), 2);
    let mode: String = inbox
        .conn
        .query_row("PRAGMA journal_mode", [], |r| r.get(0))
        .unwrap();
    assert_eq!(mode, "wal");
}

#[test]
fn acknowledge_and_unacknowledge() {
    let dir = tempfile::tempdir().unwrap();
    let mut inbox = Inbox::open(dir.path().join("inbox.db")).unwrap();
    let ids = inbox.insert(&sample()).unwrap();
    assert_eq!(inbox.acknowledge(&[ids[2]], now()).unwrap(), 1);
    assert_eq!(inbox.acknowledge(&[ids[2]], now()).unwrap(), 0, "already");
    assert_eq!(inbox.unacknowledged_critical().unwrap(), 1);
    assert_eq!(inbox.unacknowledged().unwrap(), 3);
    assert_eq!(inbox.unacknowledged_up_to(2).unwrap(), 2, "capped");
    assert_eq!(inbox.unacknowledged_up_to(99).unwrap(), 3);
    assert_eq!(
        inbox.get(ids[2]).unwrap().unwrap().acknowledged,
        Some(now())
    );
    assert_eq!(inbox.acknowledge(&ids, now()).unwrap(), 3, "many at once");
    assert_eq!(inbox.unacknowledged_critical().unwrap(), 0);
    assert_eq!(inbox.unacknowledged().unwrap(), 0);
    assert_eq!(inbox.unacknowledge(&[ids[2], ids[3]]).unwrap(), 2);
    assert_eq!(inbox.unacknowledged_critical().unwrap(), 2);
    assert_eq!(
        inbox
            .acknowledge_key("desk|employee_stress|employee:E1", now())
            .unwrap(),
        0,
        "already acknowledged above"
    );
    inbox.unacknowledge(&[ids[1]]).unwrap();
    assert_eq!(
        inbox
            .acknowledge_key("desk|employee_stress|employee:E1", now())
            .unwrap(),
        1
    );
    let crit = Query::default().min_severity(Severity::Critical);
    assert_eq!(inbox.acknowledge_matching(&crit, now()).unwrap(), 2);
    assert_eq!(inbox.unacknowledged_critical().unwrap(), 0);
}

#[test]
fn search_by_each_criterion() {
    let dir = tempfile::tempdir().unwrap();
    let mut inbox = Inbox::open(dir.path().join("inbox.db")).unwrap();
    let ids = inbox.insert(&sample()).unwrap();
    let find = |q: Query| -> Vec<i64> {
        inbox
            .search(&q)
            .unwrap()
            .into_iter()
            .map(|a| a.id)
            .collect()
    };
    assert_eq!(find(Query::default()), vec![ids[3], ids[2], ids[1], ids[0]]);
    assert_eq!(find(Query::default().text("engineering")), vec![ids[1]]);
    // LIKE wildcards in the text are literal.
    assert_eq!(find(Query::default().text("100%_off")), vec![ids[2]]);
    assert_eq!(find(Query::default().text("%")), vec![ids[2]]);
    assert_eq!(find(Query::default().text("session:S42")), vec![ids[3]]);
    assert_eq!(
        find(Query::default().kind("market_data").kind("session_status")),
        vec![ids[3], ids[0]]
    );
    assert_eq!(
        find(Query::default().min_severity(Severity::Critical)),
        vec![ids[3], ids[2]]
    );
    assert_eq!(find(Query::default().source("desk")).len(), 4);
    assert!(find(Query::default().source("other")).is_empty());
    let t = |s| Utc.with_ymd_and_hms(2025, 1, 1, 0, 0, s).unwrap();
    assert_eq!(
        find(Query::default().since(t(10)).until(t(30))),
        vec![ids[2], ids[1]]
    );
    inbox.acknowledge(&[ids[0]], now()).unwrap();
    assert_eq!(find(Query::default().acknowledged(true)), vec![ids[0]]);
    assert_eq!(find(Query::default().acknowledged(false)).len(), 3);
    assert_eq!(find(Query::default().limit(2)), vec![ids[3], ids[2]]);
    assert_eq!(
        find(Query::default().before_id(ids[2]).limit(1)),
        vec![ids[1]]
    );
}

fn found(inbox: &Inbox, q: &Query) -> Vec<i64> {
    inbox.search(q).unwrap().into_iter().map(|a| a.id).collect()
}

#[test]
fn full_text_search_finds_words_and_prefixes_case_and_accents_ignored() {
    let dir = tempfile::tempdir().unwrap();
    let mut inbox = Inbox::open(dir.path().join("inbox.db")).unwrap();
    let mut recs = sample();
    recs.push(Record::new(
        ev(r#"{"type":"riskAlert","data":{"merchant_id":"m-88412","message":"Chargeback rate above 2% at Café Zürich"}}"#, 40),
        now(),
    ));
    let ids = inbox.insert(&recs).unwrap();
    let find = |inbox: &Inbox, t: &str| found(inbox, &Query::default().text(t));
    assert_eq!(
        find(&inbox, "ENGINEER"),
        vec![ids[1]],
        "a word's prefix, any case"
    );
    assert_eq!(
        find(&inbox, "m-884"),
        vec![ids[4]],
        "a phrase, its last word a prefix"
    );
    assert_eq!(
        find(&inbox, "cafe zurich"),
        vec![ids[4]],
        "accents folded, every term"
    );
    assert_eq!(
        find(&inbox, "chargeback sales"),
        Vec::<i64>::new(),
        "every term required"
    );
    assert_eq!(
        find(&inbox, "riskalert"),
        vec![ids[4]],
        "the type is searched"
    );
    assert_eq!(find(&inbox, "S42"), vec![ids[3]], "the subject is searched");
    assert_eq!(
        find(&inbox, "\"quoted\" \"\""),
        Vec::<i64>::new(),
        "quotes are text"
    );
    assert_eq!(
        find(&inbox, "ngineering"),
        Vec::<i64>::new(),
        "words, not substrings"
    );
    // With the other criteria and paging, newest first.
    let mut more = Vec::new();
    for i in 0..5 {
        more.push(Record::new(
            ev(
                &format!(
                    r#"{{"type":"employee_stress","data":{{"department":"Engineering","n":{i}}}}}"#
                ),
                50 + i,
            ),
            now(),
        ));
    }
    let more = inbox.insert(&more).unwrap();
    let page = |before: Option<i64>| -> Vec<i64> {
        let mut q = Query::default()
            .text("engineering")
            .kind("employee_stress")
            .limit(3);
        if let Some(b) = before {
            q = q.before_id(b);
        }
        inbox
            .search(&q)
            .unwrap()
            .into_iter()
            .map(|a| a.id)
            .collect()
    };
    assert_eq!(page(None), vec![more[4], more[3], more[2]]);
    assert_eq!(page(Some(more[2])), vec![more[1], more[0], ids[1]]);
    // Pruned rows leave the index with them.
    inbox.acknowledge(&ids, now()).unwrap();
    let all = Retention::default().max_count(0).keep_unacknowledged(None);
    inbox.prune(&all, now()).unwrap();
    assert_eq!(inbox.count().unwrap(), 0);
    assert!(find(&inbox, "engineering").is_empty());
    inbox
        .conn
        .execute(
            "INSERT INTO alerts_fts (alerts_fts) VALUES ('integrity-check')",
            [],
        )
        .expect("the index matches the table");
}

/// An inbox written before the full-text index (schema version 1) gets the
/// index built from its rows when it is first opened, and keeps them all;
/// it is brought to the current version (4) in the same step.
#[test]
fn a_version_1_inbox_is_indexed_on_open() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("inbox.db");
    {
        let conn = rusqlite::Connection::open(&path).unwrap();
        let v1 = schema::SCHEMA
            .split("-- Retention by age")
            .next()
            .unwrap()
            .to_owned()
            + "PRAGMA user_version = 1;";
        conn.execute_batch(&v1).unwrap();
        let mut conn = conn;
        schema::insert_batch(&mut conn, &sample()).unwrap();
        let fts: i64 = conn
            .query_row(
                "SELECT count(*) FROM sqlite_master WHERE name = 'alerts_fts'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(fts, 0, "a version-1 file has no index");
    }
    let inbox = Inbox::open(&path).unwrap();
    assert_eq!(inbox.count().unwrap(), 4);
    let found = inbox.search(&Query::default().text("engineering")).unwrap();
    assert_eq!(found.len(), 1);
    let version: i64 = inbox
        .conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .unwrap();
    assert_eq!(version, 4);
    let received_index: i64 = inbox
        .conn
        .query_row(
            "SELECT count(*) FROM sqlite_master WHERE name = 'alerts_received'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(received_index, 1, "and the index retention reads");
    drop(inbox);
    // Opening again does not index twice.
    let inbox = Inbox::open(&path).unwrap();
    assert_eq!(
        inbox
            .search(&Query::default().text("engineering"))
            .unwrap()
            .len(),
        1
    );
    inbox
        .conn
        .execute(
            "INSERT INTO alerts_fts (alerts_fts) VALUES ('integrity-check')",
            [],
        )
        .unwrap();
}

#[test]
fn retention_by_count_and_age_keeps_unacknowledged_critical() {
    let dir = tempfile::tempdir().unwrap();
    let mut inbox = Inbox::open(dir.path().join("inbox.db")).unwrap();
    let old = Utc.with_ymd_and_hms(2024, 1, 1, 0, 0, 0).unwrap();
    let mut recs = sample();
    for r in &mut recs {
        r.received = old;
    }
    let ids = inbox.insert(&recs).unwrap();
    let fresh = inbox.insert(&sample()).unwrap();
    let by_age = Retention::default().max_age(Duration::from_secs(86_400));
    // Two old ones go; the old critical and emergency stay.
    assert_eq!(inbox.prune(&by_age, now()).unwrap(), 2);
    assert_eq!(inbox.missing(&ids).unwrap(), vec![ids[0], ids[1]]);
    inbox.acknowledge(&[ids[2]], now()).unwrap();
    assert_eq!(inbox.prune(&by_age, now()).unwrap(), 1);
    // By count: keep the newest 2 (plus protected ones).
    let by_count = Retention::default().max_count(2).keep_unacknowledged(None);
    inbox.prune(&by_count, now()).unwrap();
    assert_eq!(inbox.count().unwrap(), 2);
    assert!(inbox.missing(&fresh[2..]).unwrap().is_empty());
}

/// Waits (at most 10 s) until the inbox at `path` holds `n` alerts.
fn wait_for_count(path: &std::path::Path, n: u64) -> u64 {
    let inbox = Inbox::open(path).unwrap();
    let mut count = inbox.count().unwrap();
    for _ in 0..200 {
        if count == n {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
        count = inbox.count().unwrap();
    }
    count
}

/// A retention set while the writer runs is applied at once, over many
/// chunks (2,501 old rows, the chunk is 1,000), with alerts pushed during
/// the pass committed too; unacknowledged critical alerts stay whatever
/// their age. A writer started on an inbox holding old alerts prunes them
/// without waiting for a new alert.
#[test]
fn the_writer_applies_retention_in_chunks_at_start_and_when_it_changes() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("inbox.db");
    let old = Utc::now() - chrono::Duration::days(100);
    let info = |i: i64, at| Record::new(ev(&format!(r#"{{"type":"t","n":{i}}}"#), i), at);
    let (mut w, _done) = Writer::spawn(&path, WriterConfig::default()).unwrap();
    let stop = ev(
        r#"{"type":"session_status","sessionId":"S1","status":"emergency_stopped"}"#,
        0,
    );
    w.push(Record::new(stop, old)).unwrap();
    for i in 0..2500 {
        w.push(info(i, old)).unwrap();
    }
    w.flush().unwrap();
    assert_eq!(Inbox::open(&path).unwrap().count().unwrap(), 2501);

    let ninety_days = Duration::from_secs(90 * 86_400);
    w.set_retention(Retention::default().max_age(ninety_days))
        .unwrap();
    for i in 0..5 {
        w.push(info(i, Utc::now())).unwrap();
    }
    w.flush().unwrap();
    assert_eq!(
        wait_for_count(&path, 6),
        6,
        "the emergency stop and the 5 new"
    );
    let left = Inbox::open(&path)
        .unwrap()
        .search(&Query::default())
        .unwrap();
    assert!(left.iter().any(|a| a.severity >= Severity::Critical));
    drop(w);

    // Old alerts again (written with no retention), then a writer that has
    // one: it prunes on its own.
    let (mut w, _done) = Writer::spawn(&path, WriterConfig::default()).unwrap();
    for i in 0..1500 {
        w.push(info(i, old)).unwrap();
    }
    w.close().unwrap();
    assert_eq!(Inbox::open(&path).unwrap().count().unwrap(), 1506);
    let cfg = WriterConfig::default().retention(Retention::default().max_age(ninety_days));
    let (_w, _done) = Writer::spawn(&path, cfg).unwrap();
    assert_eq!(wait_for_count(&path, 6), 6);
}

#[test]
fn writer_reports_only_committed_and_survives_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("inbox.db");
    let (mut w, done) = Writer::spawn(&path, WriterConfig::default().max_batch(7)).unwrap();
    let mut tickets = Vec::new();
    for i in 0..100 {
        let r = Record::new(ev(&format!(r#"{{"type":"t","n":{i}}}"#), i), now());
        tickets.push(w.push(r).unwrap());
    }
    assert_eq!(tickets, (0..100).collect::<Vec<_>>());
    w.flush().unwrap();
    let mut ids = Vec::new();
    while let Ok(c) = done.try_recv() {
        assert_eq!(c.first_ticket as usize, ids.len());
        assert!(c.ids.len() <= 7);
        ids.extend(c.ids);
    }
    assert_eq!(ids.len(), 100);
    w.close().unwrap();
    let inbox = Inbox::open(&path).unwrap();
    assert!(inbox.missing(&ids).unwrap().is_empty());
    let last = inbox.get(ids[99]).unwrap().unwrap();
    assert!(last.event.payload.get().contains("\"n\":99"));
}

/// The disk fills up (SQLite's page cap stands in for it here; the fault
/// suite fills a real tmpfs): the writer holds what it could not commit,
/// a flush says why at once, nothing reported stored is lost, and once
/// there is room again everything held is stored and reported, in order,
/// with the tickets it was pushed under.
#[test]
fn a_full_disk_holds_the_alerts_until_there_is_room() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("inbox.db");
    let (mut w, done) = Writer::spawn(&path, WriterConfig::default()).unwrap();
    let rec = |i: i64| {
        Record::new(
            ev(
                &format!(r#"{{"type":"t","n":{i},"pad":"{}"}}"#, "p".repeat(2000)),
                i,
            ),
            now(),
        )
    };
    for i in 0..10 {
        w.push(rec(i)).unwrap();
    }
    w.flush().unwrap();
    let pages: u64 = Inbox::open(&path)
        .unwrap()
        .conn
        .query_row("PRAGMA page_count", [], |r| r.get(0))
        .unwrap();
    // Full: not one more page.
    w.max_pages(pages);
    for i in 10..60 {
        w.push(rec(i)).unwrap();
    }
    let err = w.flush().expect_err("a full disk is reported");
    assert!(err.to_string().contains("full"), "{err}");
    let mut reported = Vec::new();
    while let Ok(c) = done.try_recv() {
        reported.push(c);
    }
    let stored: usize = reported.iter().map(|c| c.ids.len()).sum();
    assert_eq!(stored, 10, "only what was committed is reported stored");

    // Room again: what was held goes in, the next retry at most ~0.5 s on.
    w.max_pages(1 << 30);
    let mut flushed = false;
    for _ in 0..100 {
        if w.flush().is_ok() {
            flushed = true;
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert!(flushed, "the held alerts were never stored");
    w.push(rec(60)).unwrap();
    w.flush().unwrap();
    let mut ids = Vec::new();
    for c in reported.into_iter().chain(done.try_iter()) {
        assert_eq!(
            c.first_ticket as usize,
            ids.len(),
            "tickets stay in push order"
        );
        ids.extend(c.ids);
    }
    assert_eq!(ids.len(), 61);
    w.close().unwrap();
    let inbox = Inbox::open(&path).unwrap();
    assert!(inbox.missing(&ids).unwrap().is_empty());
    assert!(
        inbox
            .get(ids[59])
            .unwrap()
            .unwrap()
            .event
            .payload
            .get()
            .contains("\"n\":59")
    );
}

#[test]
fn exports_what_matches_as_csv_and_json_whatever_the_page() {
    let dir = tempfile::tempdir().unwrap();
    let mut inbox = Inbox::open(dir.path().join("inbox.db")).unwrap();
    let mut recs = sample();
    // Server text a spreadsheet would run as a formula.
    recs.push(Record::new(
        ev(
            r#"{"type":"=HYPERLINK(\"http://x\")","sessionId":"+1","status":"x"}"#,
            40,
        ),
        now(),
    ));
    let ids = inbox.insert(&recs).unwrap();
    inbox.acknowledge(&[ids[0]], now()).unwrap();

    let q = Query::default().limit(1).before_id(ids[1]);
    let mut csv_out = Vec::new();
    assert_eq!(
        inbox.export(&q, ExportFormat::Csv, &mut csv_out).unwrap(),
        5,
        "limit and paging ignored"
    );
    let mut r = csv::Reader::from_reader(&csv_out[..]);
    assert_eq!(r.headers().unwrap().get(0), Some("id"));
    assert_eq!(r.headers().unwrap().len(), 15);
    let rows: Vec<csv::StringRecord> = r.records().map(Result::unwrap).collect();
    assert_eq!(rows.len(), 5);
    assert_eq!(rows[0][0], ids[4].to_string(), "newest first");
    assert_eq!(
        &rows[0][5], "'=HYPERLINK(\"http://x\")",
        "a formula stays text"
    );
    assert_eq!(&rows[0][9], "session:+1", "only a cell's start matters");
    let last = &rows[4];
    assert_eq!(&last[2], "2025-01-02T00:00:00.000Z", "acknowledged");
    assert_eq!(&last[3], "info");
    let payload: serde_json::Value = serde_json::from_str(&last[14]).unwrap();
    assert_eq!(payload["symbol"], "SPY", "the message as received");

    let crit = Query::default().min_severity(Severity::Critical);
    let mut json_out = Vec::new();
    assert_eq!(
        inbox
            .export(&crit, ExportFormat::Json, &mut json_out)
            .unwrap(),
        2
    );
    let v: serde_json::Value = serde_json::from_slice(&json_out).unwrap();
    let arr = v.as_array().unwrap();
    assert_eq!(arr[0]["id"], ids[3]);
    assert_eq!(arr[0]["type"], "session_status");
    assert_eq!(
        arr[0]["payload"]["sessionId"], "S42",
        "the payload is JSON, not a string"
    );
    assert!(arr[0]["acknowledged"].is_null());
    assert_eq!(arr[1]["severity"], "critical");

    let mut empty = Vec::new();
    let none = Query::default().text("zzzz");
    assert_eq!(
        inbox.export(&none, ExportFormat::Json, &mut empty).unwrap(),
        0
    );
    assert_eq!(
        serde_json::from_slice::<serde_json::Value>(&empty).unwrap(),
        serde_json::json!([])
    );
}

/// A destination that fails (a full disk, a closed pipe) is one clear
/// error; the inbox is untouched.
#[test]
fn an_export_that_cannot_be_written_is_an_error() {
    struct Full;
    impl std::io::Write for Full {
        fn write(&mut self, _: &[u8]) -> std::io::Result<usize> {
            Err(std::io::Error::from_raw_os_error(28))
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let dir = tempfile::tempdir().unwrap();
    let mut inbox = Inbox::open(dir.path().join("inbox.db")).unwrap();
    inbox.insert(&sample()).unwrap();
    for format in [ExportFormat::Csv, ExportFormat::Json] {
        let e = inbox.export(&Query::default(), format, Full).unwrap_err();
        assert!(matches!(e, InboxError::Export(_)), "{e:?}");
        assert!(e.to_string().starts_with("export: "), "{e}");
    }
    assert_eq!(inbox.count().unwrap(), 4);
    assert_eq!("JSON".parse::<ExportFormat>(), Ok(ExportFormat::Json));
    assert!(
        "xml"
            .parse::<ExportFormat>()
            .unwrap_err()
            .contains("csv or json")
    );
}

/// A desk commits alerts one at a time, several pages each with the
/// full-text index. Its write-ahead log must never grow past about 1 MiB
/// (the writer checkpoints every few commits) rather than to SQLite's 4 MB
/// beside a small inbox: on a nearly full disk
/// (the fault suite's 8 MB tmpfs holding three desks' inboxes) that is the
/// difference between storing again once room is made and filling it anew.
#[test]
fn one_alert_at_a_time_keeps_the_write_ahead_log_small() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("inbox.db");
    let (mut w, _done) = Writer::spawn(&path, WriterConfig::default()).unwrap();
    let mut largest = 0;
    for i in 0..600 {
        let json = format!(
            r#"{{"type":"session_status","sessionId":"S{i}","status":"emergency_stopped","n":{i}}}"#
        );
        w.push(Record::new(ev(&json, i), now())).unwrap();
        w.flush().unwrap();
        let wal = std::fs::metadata(dir.path().join("inbox.db-wal"))
            .unwrap()
            .len();
        largest = largest.max(wal);
    }
    assert!(
        largest <= 1_100_000,
        "the write-ahead log grew to {largest} bytes"
    );
    assert_eq!(Inbox::open(&path).unwrap().count().unwrap(), 600);
}

/// The tray's gap line reads the newest unacknowledged gap after every
/// commit: through the partial index of those alone, whose literal is the
/// client's gap type.
#[test]
fn the_newest_unacknowledged_gap_is_read_through_its_own_index() {
    assert_eq!(
        crate::client::GAP_KIND,
        "history_gap",
        "schema.rs's alerts_gaps names it"
    );
    let dir = tempfile::tempdir().unwrap();
    let mut inbox = Inbox::open(dir.path().join("inbox.db")).unwrap();
    assert!(inbox.newest_unacknowledged_gap().unwrap().is_none());
    let gap = |n: i64| {
        Record::new(
            ev(&format!(r#"{{"type":"history_gap","n":{n}}}"#), n),
            now(),
        )
    };
    let ids = inbox
        .insert(&[gap(1), sample()[0].clone(), gap(2)])
        .unwrap();
    let newest = inbox.newest_unacknowledged_gap().unwrap().expect("a gap");
    assert_eq!(newest.id, ids[2]);
    inbox.acknowledge(&[ids[2]], now()).unwrap();
    assert_eq!(
        inbox.newest_unacknowledged_gap().unwrap().map(|a| a.id),
        Some(ids[0])
    );
    let plan: String = inbox
        .conn
        .query_row(
            &format!(
                "EXPLAIN QUERY PLAN SELECT {} FROM alerts {}",
                schema::COLUMNS,
                schema::NEWEST_GAP
            ),
            [],
            |r| r.get(3),
        )
        .unwrap();
    assert!(plan.contains("alerts_gaps"), "{plan}");
}
