//! `riskwatch snooze`, `mute` and `unmute` from the shell: they edit a
//! profile's (or a `--prefs` file's) `[[mute]]` entries and keep the rest
//! of the file as written; a `watch` already running reads the change
//! within seconds (a muted type stops notifying, an emergency still
//! does, unmuting restores it, a broken file keeps the last good
//! preferences); bad input is one line and exit 2. Against the real hub
//! on 127.0.0.1 and the real binary.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use riskwatch::server::NewEvent;
use serde_json::{Value, json};

use super::support::*;

/// A running `riskwatch watch`, its output lines as they come.
struct Watching {
    child: Child,
    out: mpsc::Receiver<String>,
    err: mpsc::Receiver<String>,
}

impl Watching {
    fn start(args: &[&str]) -> Watching {
        let mut child = Command::new(env!("CARGO_BIN_EXE_riskwatch"))
            .args(args)
            .env_remove("RISKWATCH_TOKEN")
            .env_remove("RISKWATCH_URL")
            .env_remove("RISKWATCH_PROFILE")
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("the riskwatch binary runs");
        let lines = |pipe: Box<dyn std::io::Read + Send>| {
            let (tx, rx) = mpsc::channel();
            std::thread::spawn(move || {
                for line in BufReader::new(pipe).lines().map_while(Result::ok) {
                    if tx.send(line).is_err() {
                        break;
                    }
                }
            });
            rx
        };
        let out = lines(Box::new(child.stdout.take().unwrap()));
        let err = lines(Box::new(child.stderr.take().unwrap()));
        Watching { child, out, err }
    }

    /// The next event line, within 10 s.
    fn event(&self) -> Value {
        let line = self
            .out
            .recv_timeout(Duration::from_secs(10))
            .expect("an event line within 10 s");
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"))
    }

    /// Waits (at most 10 s) for a stderr line containing `text`.
    fn said(&self, text: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut seen = Vec::new();
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            match self.err.recv_timeout(left) {
                Ok(line) if line.contains(text) => return line,
                Ok(line) => seen.push(line),
                Err(_) => break,
            }
        }
        panic!("no line with {text:?} on stderr within 10 s; saw {seen:?}");
    }
}

impl Drop for Watching {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn ev(severity: &str, n: u64) -> NewEvent {
    serde_json::from_value(json!({"channel": "sessions:q", "type": "risk_alert",
        "severity": severity, "data": {"n": n}}))
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mute_from_the_shell_reaches_a_running_watch() {
    let hub = dev_hub().await;
    let h = std::sync::Arc::clone(hub.hub());
    let dir = tempfile::tempdir().unwrap();
    let prefs = dir.path().join("prefs.toml");
    // No dedupe: the same alert again must notify again once unmuted.
    std::fs::write(
        &prefs,
        "# the desk\n[severity]\nlist = \"info\"\n\n[dedupe]\nwindow = \"off\"\n",
    )
    .unwrap();
    let prefs_arg = prefs.to_str().unwrap();
    let url = url(hub.addr(), "/api/v1/stream");
    let w = Watching::start(&[
        "watch",
        &url,
        "--subscribe",
        "sessions:q",
        "--prefs",
        prefs_arg,
        "--json",
    ]);
    subscriptions(&h, 1).await;

    h.publish(ev("critical", 1)).await.unwrap();
    assert_eq!(w.event()["notify"], json!(true), "critical notifies");

    let muted = riskwatch_cli(
        &["mute", "--prefs", prefs_arg, "--type", "risk_alert"],
        None,
        None,
    )
    .await;
    assert_eq!(muted.code, Some(0), "{}", muted.stderr);
    assert!(
        muted.stdout.contains("type risk_alert muted"),
        "{}",
        muted.stdout
    );
    w.said("preferences read again");
    h.publish(ev("critical", 2)).await.unwrap();
    let quiet = w.event();
    assert_eq!(
        (quiet["data"]["n"].clone(), quiet["notify"].clone()),
        (json!(2), json!(false)),
        "muted: listed, not notified"
    );
    h.publish(ev("emergency", 3)).await.unwrap();
    assert_eq!(
        w.event()["notify"],
        json!(true),
        "an emergency gets through"
    );

    let unmuted = riskwatch_cli(
        &["unmute", "--prefs", prefs_arg, "--type", "risk_alert"],
        None,
        None,
    )
    .await;
    assert_eq!(unmuted.code, Some(0), "{}", unmuted.stderr);
    w.said("preferences read again");
    h.publish(ev("critical", 4)).await.unwrap();
    let back = w.event();
    assert_eq!(back["notify"], json!(true), "unmuted: {back}");

    // A file broken by hand: said, and the last good preferences stay.
    std::fs::write(&prefs, "[severity]\nlist = \"loud\"\n").unwrap();
    let why = w.said("cannot be used");
    assert!(why.contains("prefs.toml:2"), "{why}");
    h.publish(ev("critical", 5)).await.unwrap();
    assert_eq!(w.event()["notify"], json!(true));
    drop(w);
    hub.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn snooze_mute_and_unmute_edit_a_profile_and_refuse_bad_input() {
    let config = tempfile::tempdir().unwrap();
    let home = config.path().to_str().unwrap();
    let file = config.path().join("riskwatch/profiles/desk.toml");
    std::fs::create_dir_all(file.parent().unwrap()).unwrap();
    std::fs::write(
        &file,
        "url = \"wss://hub.example/ws\"  # production\n\n[severity]\n# quieter\nlist = \"warning\"\n",
    )
    .unwrap();
    let env = [("XDG_CONFIG_HOME", home)];

    let run = riskwatch_cli_env(
        &[
            "snooze",
            "--profile",
            "desk",
            "--channel",
            "sessions:S9",
            "--for",
            "30m",
        ],
        &env,
        None,
    )
    .await;
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    assert!(
        run.stdout
            .contains("channel sessions:S9 snoozed in profile desk until"),
        "{}",
        run.stdout
    );
    let text = std::fs::read_to_string(&file).unwrap();
    for kept in ["# production", "# quieter", "list = \"warning\""] {
        assert!(text.contains(kept), "{kept:?} lost:\n{text}");
    }
    assert!(
        text.contains("channel = \"sessions:S9\"") && text.contains("until = "),
        "{text}"
    );

    // RISKWATCH_PROFILE names the profile; the file stays valid.
    let with_env = [("XDG_CONFIG_HOME", home), ("RISKWATCH_PROFILE", "desk")];
    let run = riskwatch_cli_env(&["mute", "--type", "market_data"], &with_env, None).await;
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    let check = riskwatch_cli(&["prefs", "check", file.to_str().unwrap()], None, None).await;
    assert_eq!(check.code, Some(0), "{}", check.stderr);

    // Unmuting twice: the second says there was nothing, still exit 0.
    for said in ["unmuted", "was not muted"] {
        let run = riskwatch_cli_env(&["unmute", "--type", "market_data"], &with_env, None).await;
        assert_eq!(run.code, Some(0), "{}", run.stderr);
        assert!(run.stdout.contains(said), "{}", run.stdout);
    }

    // Bad input: one line (or clap's usage error), exit 2, file untouched.
    let before = std::fs::read_to_string(&file).unwrap();
    let bad: &[&[&str]] = &[
        &["mute", "--profile", "desk"],
        &["mute", "--profile", "desk", "--type", "a", "--channel", "b"],
        &[
            "snooze",
            "--profile",
            "desk",
            "--type",
            "a",
            "--for",
            "soon",
        ],
        &["snooze", "--profile", "desk", "--type", "a", "--for", "0s"],
        &["mute", "--profile", "../etc", "--type", "a"],
        &["mute", "--type", "a"],
        &["mute", "--profile", "dsek", "--type", "a"],
        &["mute", "--profile", "desk", "--type", "  "],
    ];
    for args in bad {
        let run = riskwatch_cli_env(args, &env, None).await;
        assert_eq!(run.code, Some(2), "{args:?}: {}", run.stderr);
        assert!(!run.stderr.trim().is_empty(), "{args:?} says nothing");
    }
    assert_eq!(std::fs::read_to_string(&file).unwrap(), before);

    // A broken file is named with its line, and left as it is.
    std::fs::write(&file, "[severity]\nlist = \"loud\"\n").unwrap();
    let run = riskwatch_cli_env(&["mute", "--profile", "desk", "--type", "a"], &env, None).await;
    assert_eq!(run.code, Some(2), "{}", run.stderr);
    assert_eq!(run.stderr.trim().lines().count(), 1, "{}", run.stderr);
    assert!(run.stderr.contains("desk.toml:2"), "{}", run.stderr);
    assert_eq!(
        std::fs::read_to_string(&file).unwrap(),
        "[severity]\nlist = \"loud\"\n"
    );
}
