//! `riskwatch publish` against the real hub on 127.0.0.1 with HS256 tokens:
//! an event from flags reaches a subscribed client with its severity and
//! typed fields; a batch from standard input; an id published twice is
//! stored once; a ws:// URL works; a token without the publish scope, or
//! none, exits 3 without printing it; bad input exits 2 and an unreachable
//! hub 1, each with one clear line.

use std::time::Duration;

use riskwatch::Severity;
use riskwatch::client::{Client, Token};
use riskwatch::server::{Auth, ServerConfig};
use serde_json::{Value, json};

use super::support::*;

/// `riskwatch publish ARGS` with `token` in RISKWATCH_TOKEN (if any) and
/// `stdin` on its standard input.
async fn publish(args: &[&str], token: Option<&str>, stdin: Option<&str>) -> Run {
    let args: Vec<&str> = std::iter::once("publish")
        .chain(args.iter().copied())
        .collect();
    riskwatch_cli(&args, token, stdin).await
}

async fn secure_hub() -> riskwatch::server::Server {
    hub(ServerConfig::new(Auth::hs256(SECRET).unwrap())).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_from_flags_reaches_a_subscriber_with_its_severity_and_typed_fields() {
    let hub = secure_hub().await;
    let reader = Token::new(token("reader", &["sessions:*"], false));
    let mut c = Client::connect(
        fast(url(hub.addr(), "/api/v1/stream"))
            .token(Some(reader))
            .subscribe("sessions:desk1"),
    )
    .unwrap();
    subscriptions(hub.hub(), 1).await;
    let base = format!("http://{}", hub.addr());
    let publisher = token("ops", &["*"], true);
    let run = publish(
        &[
            &base,
            "--channel",
            "sessions:desk1",
            "--type",
            "risk_alert",
            "--severity",
            "critical",
            "--field",
            "sessionId=S9",
            "-f",
            "message=Loss limit breached",
            "-f",
            "lossLimitUtilization:=97.5",
        ],
        Some(&publisher),
        None,
    )
    .await;
    assert_eq!(run.code, Some(0), "stderr: {}", run.stderr);
    assert_eq!(run.stdout.trim(), "sessions:desk1 #1");
    let e = next_event(&mut c, Duration::from_secs(5))
        .await
        .expect("the published event reaches the subscriber");
    assert_eq!(e.severity, Severity::Critical);
    assert_eq!(e.kind, "risk_alert");
    assert_eq!(e.data()["lossLimitUtilization"], json!(97.5));
    assert_eq!(e.data()["message"], json!("Loss limit breached"));
    assert!(!run.stdout.contains(&publisher) && !run.stderr.contains(&publisher));

    // The same id twice (a retried script): stored once, said so.
    let args = [
        base.as_str(),
        "-c",
        "sessions:desk1",
        "-t",
        "session_status",
        "--id",
        "retry-1",
        "--data",
        r#"{"sessionId":"S9","status":"active"}"#,
    ];
    let first = publish(&args, Some(&publisher), None).await;
    let again = publish(&args, Some(&publisher), None).await;
    assert_eq!(
        (first.code, again.code),
        (Some(0), Some(0)),
        "{}",
        again.stderr
    );
    assert_eq!(first.stdout.trim(), "sessions:desk1 #2");
    assert!(
        again.stdout.contains("#2") && again.stdout.contains("already published"),
        "{}",
        again.stdout
    );
    drop(c);
    hub.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_from_standard_input_with_flags_filling_gaps_and_a_ws_url() {
    let hub = secure_hub().await;
    let publisher = token("ops", &["*"], true);
    // The URL clients watch, with a stray token in its query: the query is
    // dropped, the header carries RISKWATCH_TOKEN.
    let ws = format!("ws://{}/api/v1/stream?token=ignored", hub.addr());
    let batch = r#"[
        {"channel": "hr:alerts", "data": {"employeeId": "E1"}},
        {"channel": "hr:alerts", "type": "department_alert", "severity": "warning", "data": {"department": "Sales"}}
    ]"#;
    let run = publish(
        &[&ws, "--file", "-", "--type", "employee_alert", "--json"],
        Some(&publisher),
        Some(batch),
    )
    .await;
    assert_eq!(run.code, Some(0), "stderr: {}", run.stderr);
    let lines: Vec<Value> = run
        .stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2, "{}", run.stdout);
    assert_eq!(lines[0]["channel"], json!("hr:alerts"));
    assert_eq!(
        (lines[0]["seq"].as_u64(), lines[1]["seq"].as_u64()),
        (Some(1), Some(2))
    );
    let stats = hub.hub().stats();
    assert_eq!(stats.messages_published, 2);
    hub.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_tokens_exit_3_and_bad_input_2_and_no_hub_1() {
    let hub = secure_hub().await;
    let base = format!("http://{}", hub.addr());
    let event = ["-c", "sessions:desk1", "-t", "risk_alert"];
    let with = |extra: &[&str]| {
        let mut a = vec![base.as_str()];
        a.extend_from_slice(&event);
        a.extend_from_slice(extra);
        a.into_iter().map(str::to_owned).collect::<Vec<_>>()
    };

    // A reader's token (no publish scope), and no token at all.
    let reader = token("reader", &["sessions:*"], false);
    let plain = with(&[]);
    let a: Vec<&str> = plain.iter().map(String::as_str).collect();
    let run = publish(&a, Some(&reader), None).await;
    assert_eq!(run.code, Some(3), "{}", run.stderr);
    assert!(run.stderr.contains("publish scope"), "{}", run.stderr);
    assert!(!run.stderr.contains(&reader), "the token was printed");
    assert_eq!(run.stderr.lines().count(), 1, "{}", run.stderr);
    let run = publish(&a, None, None).await;
    assert_eq!(run.code, Some(3), "{}", run.stderr);

    // Bad input: data that is not JSON, no channel, a malformed field, a
    // file that is not JSON (with line and column), an unknown severity.
    let publisher = token("ops", &["*"], true);
    for (argv, says) in [
        (with(&["--data", "{not json"]), "--data is not JSON"),
        (
            vec![base.clone(), "-t".into(), "x".into()],
            "has no channel",
        ),
        (with(&["-f", "novalue"]), "KEY=TEXT or KEY:=JSON"),
        (with(&["-s", "severe"]), "severe"),
    ] {
        let a: Vec<&str> = argv.iter().map(|s| s.as_str()).collect();
        let run = publish(&a, Some(&publisher), None).await;
        assert_eq!(run.code, Some(2), "{argv:?}: {}", run.stderr);
        assert!(run.stderr.contains(says), "{argv:?}: {}", run.stderr);
    }
    let run = publish(
        &[&base, "--file", "-"],
        Some(&publisher),
        Some("{\"channel\": \"a\",\n  \"type\": }"),
    )
    .await;
    assert_eq!(run.code, Some(2), "{}", run.stderr);
    assert!(run.stderr.contains("standard input:2:"), "{}", run.stderr);
    assert_eq!(
        hub.hub().stats().messages_published,
        0,
        "nothing bad was published"
    );
    hub.shutdown().await;

    // Nobody listening there any more.
    let run = publish(&a, Some(&publisher), None).await;
    assert_eq!(run.code, Some(1), "{}", run.stderr);
    assert!(
        run.stderr.contains("cannot reach the hub"),
        "{}",
        run.stderr
    );
    assert_eq!(run.stderr.lines().count(), 1, "{}", run.stderr);
}
