//! The `riskwatch` binary's contract: `watch URL --json --count N` prints
//! exactly N JSON lines (type, severity, data, notify) and exits 0; refused
//! authentication exits 3 without showing the token; a bad URL exits 2 with
//! one clear line; the help documents every option; `demo` works offline.

use serde_json::{Value, json};

use std::time::Duration;

use crate::client::styles::{HR_DEPARTMENT, HR_EMPLOYEE};
use crate::common::{Server, TOKEN, cli, cli_for, finish_cli, ms, spawn_cli, wait_until, within};

/// Options of `riskwatch watch`, all of which its help must document.
const WATCH_OPTIONS: &[&str] = &[
    "--token",
    "--auth",
    "--json",
    "--count",
    "--heartbeat",
    "--dead-after",
    "--subscribe",
    "--since",
    "--style",
    "--ca-file",
    "--label",
    "--max-message-size",
    "--poll-url",
    "--no-poll",
    "--poll-interval",
    "--backoff-initial",
    "--backoff-max",
    "--connect-timeout",
    "--exec",
    "--exec-jobs",
    "--exec-timeout",
    "--verbose",
];

fn json_lines(stdout: &str) -> Vec<Value> {
    stdout
        .lines()
        .map(|l| {
            serde_json::from_str::<Value>(l)
                .unwrap_or_else(|e| panic!("not a JSON line ({e}): {l:?}\nstdout:\n{stdout}"))
        })
        .collect()
}

#[tokio::test]
async fn watch_json_count_prints_exactly_n_events_from_the_trading_style() {
    within(40, async {
        let server = Server::sending(vec![
            r#"{"type":"heartbeat","timestamp":"2026-03-01T12:00:00Z"}"#.into(),
            r#"{"type":"session_status","sessionId":"S42","status":"emergency_stopped","timestamp":"2026-03-01T12:00:00Z","data":{"currentPnL":-5000,"lossLimitUtilization":100}}"#.into(),
            r#"{"type":"risk_alert","sessionId":"S42","alertLevel":"warning","alertType":"loss_limit","message":"80% used","currentValue":80,"threshold":80,"timestamp":"2026-03-01T12:00:01Z"}"#.into(),
            r#"{"type":"ping"}"#.into(),
            r#"{"type":"risk_alert","sessionId":"S42","alertLevel":"critical","alertType":"loss_limit","message":"90% used","currentValue":90,"threshold":90}"#.into(),
            r#"{"type":"market_data","symbol":"SPY","price":501.25,"volume":10}"#.into(),
            r#"{"type":"system_notification","message":"must not be printed"}"#.into(),
        ])
        .await;
        let url = server.url("/ws");
        let run = cli(
            &["watch", &url, "--json", "--count", "4", "--subscribe", "user:u1", "--subscribe", "sessions:u1"],
            &[("RISKWATCH_TOKEN", TOKEN)],
        )
        .await;
        assert_eq!(run.code, Some(0), "stderr:\n{}", run.stderr);
        let lines = json_lines(&run.stdout);
        assert_eq!(lines.len(), 4, "stdout:\n{}", run.stdout);
        let summary: Vec<(Value, Value, Value)> = lines
            .iter()
            .map(|l| (l["type"].clone(), l["severity"].clone(), l["notify"].clone()))
            .collect();
        assert_eq!(
            summary,
            [
                (json!("session_status"), json!("emergency"), json!(true)),
                (json!("risk_alert"), json!("warning"), json!(false)),
                (json!("risk_alert"), json!("critical"), json!(true)),
                (json!("market_data"), json!("info"), json!(false)),
            ]
        );
        // `data`: every payload field, the top level's and the data
        // object's (a session_status's status and sessionId included);
        // `message`: the message exactly as sent.
        assert_eq!(
            lines[0]["data"],
            json!({"sessionId":"S42","status":"emergency_stopped","currentPnL":-5000,"lossLimitUtilization":100})
        );
        let sent: Value = serde_json::from_str(r#"{"type":"session_status","sessionId":"S42","status":"emergency_stopped","timestamp":"2026-03-01T12:00:00Z","data":{"currentPnL":-5000,"lossLimitUtilization":100}}"#).unwrap();
        assert_eq!(lines[0]["message"], sent);
        assert_eq!(
            lines[1]["data"],
            json!({"sessionId":"S42","alertLevel":"warning","alertType":"loss_limit","message":"80% used","currentValue":80,"threshold":80})
        );
        assert_eq!(lines[3]["data"], json!({"symbol":"SPY","price":501.25,"volume":10}));
        assert_eq!(lines[0]["subject"], "session:S42");
        assert_eq!(lines[0]["time"], "2026-03-01T12:00:00Z");
        for l in &lines {
            assert!(l.is_object());
            assert_eq!(l["style"], "trading");
        }
        // States went to stderr, not stdout; the token nowhere.
        assert!(run.stderr.contains("connected"), "{}", run.stderr);
        assert!(!run.stdout.contains(TOKEN) && !run.stderr.contains(TOKEN));
        // The token went in the header, the subscriptions as the style's
        // subscribe command.
        let req = &server.requests()[0];
        assert_eq!(req.header("authorization"), Some(format!("Bearer {TOKEN}").as_str()));
        let sent: Vec<Value> = server.texts_on(0).iter().map(|t| serde_json::from_str(t).unwrap()).collect();
        assert_eq!(sent[0], json!({"type":"subscribe","channels":["user:u1","sessions:u1"]}));
    })
    .await;
}

#[tokio::test]
async fn watch_json_data_field_for_hr_alerts() {
    within(40, async {
        let server = Server::sending(vec![
            r#"{"type":"connection","status":"connected"}"#.into(),
            HR_DEPARTMENT.into(),
            HR_EMPLOYEE.into(),
        ])
        .await;
        let url = server.url("/api/v1/ws/alerts");
        let run = cli(&["watch", &url, "--json", "--count", "2"], &[]).await;
        assert_eq!(run.code, Some(0), "stderr:\n{}", run.stderr);
        let lines = json_lines(&run.stdout);
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[0]["type"], "department_critical");
        assert_eq!(lines[0]["severity"], "critical");
        assert_eq!(lines[0]["notify"], true);
        assert_eq!(
            lines[0]["data"],
            json!({"department_id":"dept-123","department_name":"Engineering","overall_risk":"critical","engagement_score":45.5})
        );
        assert_eq!(lines[1]["type"], "employee_stress");
        assert_eq!(lines[1]["severity"], "warning");
        assert_eq!(lines[1]["notify"], false);
        let v: Value = serde_json::from_str(HR_EMPLOYEE).unwrap();
        assert_eq!(lines[1]["data"], v["data"]);
    })
    .await;
}

#[tokio::test]
async fn watch_human_output_is_one_line_per_event() {
    within(40, async {
        let server = Server::sending(vec![
            HR_EMPLOYEE.into(),
            r#"{"type":"risk_alert","sessionId":"S7","alertLevel":"emergency","alertType":"loss_limit","message":"limit hit\u001b[2J","currentValue":100,"threshold":100}"#.into(),
        ])
        .await;
        let url = server.url("/api/v1/ws/alerts");
        let run = cli(&["watch", &url, "--count", "2"], &[]).await;
        assert_eq!(run.code, Some(0), "stderr:\n{}", run.stderr);
        let lines: Vec<&str> = run.stdout.lines().collect();
        assert_eq!(lines.len(), 2, "{}", run.stdout);
        assert!(lines[0].contains("WARN") && lines[0].contains("High stress: John Doe"), "{}", lines[0]);
        assert!(lines[1].contains("EMRG") && lines[1].contains("session S7"), "{}", lines[1]);
        // No terminal escape from the server reaches the terminal.
        assert!(!run.stdout.contains('\u{1b}'), "{:?}", run.stdout);
    })
    .await;
}

#[tokio::test]
async fn watch_auth_refused_exits_3_without_the_token() {
    within(40, async {
        let server = Server::sending(vec![]).await;
        server.refuse_with(401);
        // Token by option, header style.
        let url = server.url("/ws");
        let run = cli(&["watch", &url, "--token", TOKEN, "--json"], &[]).await;
        assert_eq!(run.code, Some(3), "stderr:\n{}", run.stderr);
        assert!(
            run.stderr.to_lowercase().contains("authentication refused"),
            "{}",
            run.stderr
        );
        assert!(
            !run.stderr.contains(TOKEN) && !run.stdout.contains(TOKEN),
            "{}",
            run.stderr
        );
        assert!(run.stdout.is_empty());
        // The header, then once the query (a browser backend's place);
        // no retry after that.
        assert_eq!(server.attempts(), 2, "one try per place, then stop");

        // Token in the URL's query (compliance style), refused by close 1008.
        let server = Server::start(|c| async move { c.close(1008, "invalid token").await }).await;
        let url = format!("{}?token={TOKEN}", server.url("/ws/engagement"));
        let run = cli(&["watch", &url], &[]).await;
        assert_eq!(run.code, Some(3), "stderr:\n{}", run.stderr);
        assert!(
            run.stderr.to_lowercase().contains("authentication refused"),
            "{}",
            run.stderr
        );
        assert!(!run.stderr.contains(TOKEN), "{}", run.stderr);
        assert_eq!(
            server.requests()[0].query_param("token").as_deref(),
            Some(TOKEN)
        );
    })
    .await;
}

/// At `RUST_LOG=trace`, nothing the CLI prints carries a secret: not the
/// `--token` (sent as a header), not a query parameter named like one,
/// not a token pasted as the URL's user part.
#[tokio::test]
async fn trace_logging_prints_no_token() {
    within(40, async {
        let server = Server::sending(vec![
            r#"{"type":"market_data","symbol":"SPY","price":1,"volume":1}"#.into(),
        ])
        .await;
        let base = server.url("/ws");
        let with_query = format!("{base}?access-token=QUERYSECRET&X-Api-Key=KEYSECRET");
        let with_user = base.replacen("ws://", "ws://USERSECRET@", 1);
        for url in [with_query, with_user] {
            let run = cli(
                &[
                    "watch", &url, "--token", TOKEN, "--json", "--count", "1", "-vv",
                ],
                &[("RUST_LOG", "trace")],
            )
            .await;
            assert_eq!(run.code, Some(0), "{run:?}");
            let all = format!("{}{}", run.stdout, run.stderr);
            assert!(
                all.contains("connected"),
                "trace logging ran: {}",
                run.stderr
            );
            for secret in [TOKEN, "QUERYSECRET", "KEYSECRET", "USERSECRET"] {
                assert!(!all.contains(secret), "{secret} printed:\n{all}");
            }
        }
    })
    .await;
}

#[tokio::test]
async fn watch_bad_url_exits_2_with_one_clear_line() {
    within(40, async {
        for url in ["http://x", "not a url", "ws://"] {
            let run = cli(&["watch", url], &[]).await;
            assert_eq!(run.code, Some(2), "{url}: {run:?}");
            let lines: Vec<&str> = run
                .stderr
                .lines()
                .filter(|l| !l.trim().is_empty())
                .collect();
            assert_eq!(lines.len(), 1, "{url}: one line, got {:?}", run.stderr);
            assert!(lines[0].starts_with("riskwatch: "), "{}", lines[0]);
            assert!(run.stdout.is_empty());
        }
        let run = cli(&["watch", "http://x"], &[]).await;
        assert!(
            run.stderr.contains("ws://"),
            "says what is expected: {}",
            run.stderr
        );
        // A nonsensical setting is a usage error too.
        let run = cli(&["watch", "ws://127.0.0.1:9/ws", "--heartbeat", "0"], &[]).await;
        assert_eq!(run.code, Some(2), "{run:?}");
    })
    .await;
}

#[tokio::test]
async fn help_documents_every_option() {
    within(40, async {
        let run = cli(&["watch", "--help"], &[]).await;
        assert_eq!(run.code, Some(0));
        for opt in WATCH_OPTIONS {
            assert!(
                run.stdout.contains(opt),
                "`riskwatch watch --help` lacks {opt}:\n{}",
                run.stdout
            );
        }
        assert!(run.stdout.contains("RISKWATCH_TOKEN"));
        let run = cli(&["--help"], &[]).await;
        assert_eq!(run.code, Some(0));
        for word in [
            "watch",
            "demo",
            "Exit codes",
            "RISKWATCH_TOKEN",
            "--verbose",
        ] {
            assert!(
                run.stdout.contains(word),
                "`riskwatch --help` lacks {word}:\n{}",
                run.stdout
            );
        }
        let run = cli(&["demo", "--help"], &[]).await;
        assert_eq!(run.code, Some(0));
        for opt in ["--json", "--count", "--seed", "--tick-ms"] {
            assert!(
                run.stdout.contains(opt),
                "`riskwatch demo --help` lacks {opt}"
            );
        }
    })
    .await;
}

/// Every command's help shows its common uses right after the usage
/// line, before its arguments, options or subcommands; the top level its
/// own before the list of commands.
#[tokio::test]
async fn every_help_shows_the_common_uses_first() {
    within(60, async {
        let commands: &[&[&str]] = &[
            &[],
            &["watch"],
            &["demo"],
            &["serve"],
            &["token"],
            &["publish"],
            &["inbox"],
            &["prefs", "check"],
            &["login"],
            &["logout"],
        ];
        for command in commands {
            let mut args = command.to_vec();
            args.push("--help");
            let run = cli(&args, &[]).await;
            assert_eq!(run.code, Some(0), "{args:?}: {}", run.stderr);
            let out = &run.stdout;
            let heading = if command.is_empty() {
                "Common uses:"
            } else {
                "Example"
            };
            let uses = out
                .find(heading)
                .unwrap_or_else(|| panic!("`riskwatch {}` shows no uses:\n{out}", args.join(" ")));
            let usage = out.find("Usage:").expect("a usage line");
            let first_list = ["Arguments:", "Options:", "Commands:"]
                .iter()
                .filter_map(|h| out.find(h))
                .min()
                .expect("a list of arguments, options or commands");
            assert!(
                usage < uses && uses < first_list,
                "`riskwatch {}`: the uses are not first:\n{out}",
                args.join(" ")
            );
            let name = command.first().copied().unwrap_or("demo");
            assert!(
                out[uses..first_list].contains(&format!("riskwatch {name}")),
                "`riskwatch {}`: its uses do not run it:\n{out}",
                args.join(" ")
            );
        }
    })
    .await;
}

#[tokio::test]
async fn top_level_help_documents_every_watch_option() {
    within(40, async {
        let run = cli(&["--help"], &[]).await;
        for opt in WATCH_OPTIONS {
            assert!(
                run.stdout.contains(opt),
                "`riskwatch --help` lacks {opt}:\n{}",
                run.stdout
            );
        }
    })
    .await;
}

#[tokio::test]
async fn demo_prints_json_events_and_exits() {
    within(40, async {
        let run = cli(&["demo", "--count", "5", "--json"], &[]).await;
        assert_eq!(run.code, Some(0), "stderr:\n{}", run.stderr);
        let lines = json_lines(&run.stdout);
        assert_eq!(lines.len(), 5, "{}", run.stdout);
        let sev = ["info", "warning", "critical", "emergency"];
        for l in &lines {
            assert!(l["type"].is_string());
            assert!(sev.contains(&l["severity"].as_str().unwrap()), "{l}");
            let critical = matches!(l["severity"].as_str(), Some("critical" | "emergency"));
            assert_eq!(l["notify"], critical);
            assert!(l["data"].is_object());
            assert_eq!(l["source"], "demo");
        }
    })
    .await;
}

#[tokio::test]
async fn demo_runs_every_backend_through_the_hub() {
    within(40, async {
        let run = cli(
            &["demo", "--count", "150", "--json", "--tick-ms", "50"],
            &[],
        )
        .await;
        assert_eq!(run.code, Some(0), "stderr:\n{}", run.stderr);
        let lines = json_lines(&run.stdout);
        assert_eq!(lines.len(), 150);
        let types: std::collections::BTreeSet<&str> =
            lines.iter().filter_map(|l| l["type"].as_str()).collect();
        // Trading, HR, merchant, compliance and the dashboard, as the
        // desktop's demo shows them.
        for t in [
            "session_status",
            "department_update",
            "riskUpdate",
            "interaction_update",
            "dashboard_update",
        ] {
            assert!(types.contains(t), "no {t} in {types:?}");
        }
        // Delivered by the hub's native protocol: sequenced.
        assert!(
            lines.iter().all(|l| l["seq"].as_u64().is_some()),
            "{}",
            run.stdout
        );
    })
    .await;
}

/// A loopback port nobody listens on.
fn closed_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

#[tokio::test]
async fn watch_unreachable_host_keeps_retrying_with_one_line_per_attempt() {
    within(40, async {
        let url = format!("ws://127.0.0.1:{}/ws", closed_port());
        let args = [
            "watch",
            &url,
            "--token",
            TOKEN,
            "--backoff-initial",
            "0.05",
            "--backoff-max",
            "0.1",
        ];
        let run = cli_for(&args, ms(1500)).await;
        assert!(run.killed, "still retrying after 1.5 s: {run:?}");
        assert!(run.stdout.is_empty());
        let lines: Vec<&str> = run.stderr.lines().collect();
        let attempts: Vec<&str> = lines
            .iter()
            .copied()
            .filter(|l| l.contains("reconnecting (attempt"))
            .collect();
        assert!(attempts.len() >= 3, "{}", run.stderr);
        assert!(attempts[0].contains("attempt 1 "), "{}", attempts[0]);
        assert!(attempts[1].contains("attempt 2 "), "{}", attempts[1]);
        for l in &lines {
            assert!(l.starts_with("riskwatch: "), "{l}");
        }
        assert!(!run.stderr.contains(TOKEN));
    })
    .await;
}

#[tokio::test]
async fn watch_announces_connecting_first() {
    within(40, async {
        let url = format!("ws://127.0.0.1:{}/ws", closed_port());
        let run = cli_for(&["watch", &url, "--backoff-initial", "0.05"], ms(800)).await;
        let first = run.stderr.lines().next().unwrap_or_default().to_owned();
        assert_eq!(
            first,
            format!("riskwatch: connecting to {url}"),
            "{}",
            run.stderr
        );
    })
    .await;
}

/// Runs `watch`, sends it `signal` once connected, and checks it exits
/// with `code` after closing the connection with 1000.
async fn watch_stops_on(signal: &str, code: i32) {
    within(40, async {
        let server = Server::sending(vec![]).await;
        let url = server.url("/ws");
        let child = spawn_cli(&["watch".into(), url, "--json".into()], &[]);
        let pid = child.id();
        wait_until("the CLI connected", Duration::from_secs(10), || {
            server.upgrades() >= 1
        })
        .await;
        tokio::time::sleep(ms(200)).await;
        let sent = std::process::Command::new("kill")
            .args([format!("-{signal}"), pid.to_string()])
            .status()
            .expect("kill runs");
        assert!(sent.success());
        let run = tokio::task::spawn_blocking(move || finish_cli(child, Duration::from_secs(10)))
            .await
            .unwrap();
        assert!(!run.killed, "did not exit on SIG{signal}: {run:?}");
        assert_eq!(run.code, Some(code), "{run:?}");
        assert!(run.stdout.is_empty());
        wait_until("the server saw close 1000", Duration::from_secs(3), || {
            server
                .received()
                .iter()
                .any(|(_, g)| *g == crate::common::Got::Close(Some(1000)))
        })
        .await;
    })
    .await;
}

#[tokio::test]
async fn watch_interrupted_exits_130() {
    watch_stops_on("INT", 130).await;
}

/// systemd and containers stop with SIGTERM: as clean as Ctrl-C.
#[tokio::test]
async fn watch_terminated_closes_cleanly_and_exits_143() {
    watch_stops_on("TERM", 143).await;
}

#[tokio::test]
async fn watch_closes_the_connection_cleanly_when_done() {
    within(40, async {
        let server = Server::sending(vec![
            r#"{"type":"market_data","symbol":"SPY","price":1,"volume":1}"#.into(),
        ])
        .await;
        let url = server.url("/ws");
        let run = cli(&["watch", &url, "--json", "--count", "1"], &[]).await;
        assert_eq!(run.code, Some(0), "{run:?}");
        wait_until("the server saw close 1000", Duration::from_secs(3), || {
            server
                .received()
                .iter()
                .any(|(_, g)| *g == crate::common::Got::Close(Some(1000)))
        })
        .await;
    })
    .await;
}

/// `riskwatch prefs check`: a valid preferences file and rules file get a
/// summary and exit 0; an error names file, line and column on one line
/// and exits 2, for the preferences and for the rules.
#[tokio::test]
async fn prefs_check_names_the_line_and_column_of_an_error() {
    within(40, async {
        let dir = tempfile::tempdir().unwrap();
        let good = dir.path().join("desk.toml");
        std::fs::write(
            &good,
            "url = \"ws://hub:8080/api/v1/stream\"\n[severity]\nlist = \"warning\"\n[[mute]]\nsubject = \"session:S1\"\n",
        )
        .unwrap();
        let rules = dir.path().join("rules.txt");
        std::fs::write(&rules, "employee_stress: stress_rate > 40 => warning\n").unwrap();
        let (good, rules) = (good.to_str().unwrap(), rules.to_str().unwrap());
        let run = cli(&["prefs", "check", good, "--rules", rules], &[]).await;
        assert_eq!(run.code, Some(0), "{run:?}");
        assert!(run.stdout.contains("ok (url ws://hub:8080/api/v1/stream, 0 rules, 1 mutes"), "{}", run.stdout);
        assert!(run.stdout.contains("rules.txt: ok (1 rules)"), "{}", run.stdout);

        let bad = dir.path().join("bad.toml");
        std::fs::write(&bad, "[severity]\nlist = \"severe\"\n").unwrap();
        let bad_rules = dir.path().join("bad-rules.txt");
        std::fs::write(&bad_rules, "ok: a > 1 => warning\nx: y >< 3 => critical\n").unwrap();
        for (args, place) in [
            (vec!["prefs", "check", bad.to_str().unwrap()], "bad.toml:2:8: "),
            (
                vec!["prefs", "check", good, "--rules", bad_rules.to_str().unwrap()],
                "bad-rules.txt:2:",
            ),
        ] {
            let run = cli(&args, &[]).await;
            assert_eq!(run.code, Some(2), "{args:?}: {run:?}");
            assert_eq!(run.stderr.lines().count(), 1, "{}", run.stderr);
            assert!(run.stderr.contains(place), "{args:?}: {}", run.stderr);
        }
    })
    .await;
}

/// `RISKWATCH_URL` stands in for watch's URL argument.
#[tokio::test]
async fn watch_takes_its_url_from_riskwatch_url() {
    within(40, async {
        let server = Server::sending(vec![
            r#"{"type":"market_data","symbol":"SPY","price":501.25,"volume":10}"#.into(),
        ])
        .await;
        let url = server.url("/ws");
        let run = cli(
            &["watch", "--json", "--count", "1"],
            &[("RISKWATCH_URL", &url)],
        )
        .await;
        assert_eq!(run.code, Some(0), "stderr:\n{}", run.stderr);
        assert_eq!(json_lines(&run.stdout)[0]["type"], "market_data");
    })
    .await;
}

/// Completions for each shell and the manual page come from the same
/// definitions as --help: every subcommand is in them.
#[tokio::test]
async fn completions_and_the_manual_page_name_every_subcommand() {
    within(40, async {
        let subcommands = [
            "watch", "demo", "serve", "token", "login", "logout", "publish", "inbox", "prefs",
        ];
        for (shell, marker) in [
            ("bash", "_riskwatch()"),
            ("zsh", "#compdef riskwatch"),
            ("fish", "complete -c riskwatch"),
        ] {
            let run = cli(&["completions", shell], &[]).await;
            assert_eq!(run.code, Some(0), "{shell}: {}", run.stderr);
            assert!(run.stdout.contains(marker), "{shell}: no {marker}");
            for sub in subcommands {
                assert!(run.stdout.contains(sub), "{shell}: no {sub}");
            }
        }
        let run = cli(&["completions", "tcsh"], &[]).await;
        assert_eq!(run.code, Some(2), "an unknown shell is a usage error");

        let run = cli(&["man"], &[]).await;
        assert_eq!(run.code, Some(0), "{}", run.stderr);
        assert!(run.stdout.contains(".TH riskwatch 1"), "no main page");
        for sub in subcommands {
            assert!(
                run.stdout.contains(&format!(".TH riskwatch-{sub} ")),
                "no page for {sub}"
            );
        }
        assert!(
            run.stdout.contains("RISKWATCH_TOKEN"),
            "the environment is documented"
        );
        // The examples --help shows first are in the pages too.
        assert!(run.stdout.contains("Common uses:"), "no common uses");
        let watch_page = run.stdout.find(".TH riskwatch-watch ").unwrap();
        let watch_page = &run.stdout[watch_page..];
        let end = watch_page[1..]
            .find(".TH ")
            .map_or(watch_page.len(), |i| i + 1);
        assert!(
            watch_page[..end].contains("Examples:"),
            "the watch page has no examples"
        );
    })
    .await;
}

/// `watch --exec`: the command runs once per event shown, with the event on
/// stdin and its fields in RISKWATCH_* variables, never the token; its
/// output stays off stdout; `--count` waits for the last one.
#[tokio::test]
async fn watch_exec_runs_a_command_per_event_with_the_event() {
    within(40, async {
        let server = Server::sending(vec![
            r#"{"type":"risk_alert","sessionId":"S42","alertLevel":"critical","alertType":"loss_limit","message":"90% used"}"#.into(),
            r#"{"type":"market_data","symbol":"SPY","price":501.25,"volume":10}"#.into(),
        ])
        .await;
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().to_str().unwrap();
        let hook = r#"f=$(mktemp -p "$HOOK_DIR" event.XXXXXX); cat > "$f"; echo "$RISKWATCH_TYPE|$RISKWATCH_SEVERITY|$RISKWATCH_SUBJECT|${RISKWATCH_TOKEN:-no token}" >> "$HOOK_DIR/env.log"; echo printed-by-the-hook"#;
        let url = server.url("/ws");
        let run = cli(
            &["watch", &url, "--json", "--count", "2", "--exec", hook, "--exec-jobs", "1"],
            &[("RISKWATCH_TOKEN", TOKEN), ("HOOK_DIR", d)],
        )
        .await;
        assert_eq!(run.code, Some(0), "stderr:\n{}", run.stderr);
        assert_eq!(json_lines(&run.stdout).len(), 2, "stdout holds the events only");
        assert!(run.stderr.contains("printed-by-the-hook"), "{}", run.stderr);
        let env = std::fs::read_to_string(dir.path().join("env.log")).unwrap();
        let mut lines: Vec<&str> = env.lines().collect();
        lines.sort_unstable();
        assert_eq!(
            lines,
            ["market_data|info|symbol:SPY|no token", "risk_alert|critical|session:S42|no token"]
        );
        let mut stdin_types = Vec::new();
        for entry in std::fs::read_dir(dir.path()).unwrap().flatten() {
            if entry.file_name().to_string_lossy().starts_with("event.") {
                let v: Value = serde_json::from_str(&std::fs::read_to_string(entry.path()).unwrap()).unwrap();
                stdin_types.push(v["type"].as_str().unwrap().to_owned());
            }
        }
        stdin_types.sort_unstable();
        assert_eq!(stdin_types, ["market_data", "risk_alert"]);
    })
    .await;
}

/// A command that overruns `--exec-timeout` is killed, with its children,
/// and said so on one line; the watch ends on time.
#[tokio::test]
async fn watch_exec_kills_a_command_that_overruns() {
    within(40, async {
        let server = Server::sending(vec![
            r#"{"type":"market_data","symbol":"SPY","price":501.25,"volume":10}"#.into(),
        ])
        .await;
        let dir = tempfile::tempdir().unwrap();
        let marker = dir.path().join("late");
        let hook = format!("sleep 20; touch {}", marker.display());
        let url = server.url("/ws");
        let started = std::time::Instant::now();
        let run = cli(
            &[
                "watch",
                &url,
                "--count",
                "1",
                "--exec",
                &hook,
                "--exec-timeout",
                "1",
            ],
            &[],
        )
        .await;
        assert_eq!(run.code, Some(0), "stderr:\n{}", run.stderr);
        assert!(
            run.stderr.contains("killed after 1 s (--exec-timeout)"),
            "{}",
            run.stderr
        );
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "the watch waited for the command"
        );
        std::thread::sleep(Duration::from_millis(300));
        assert!(!marker.exists(), "the command went on after its timeout");
    })
    .await;
}
