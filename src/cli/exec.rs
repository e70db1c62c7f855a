//! `watch --exec CMD`: a command run for each event shown, through `sh -c`,
//! with the event as one JSON line on its standard input (the `--json`
//! shape) and its main fields in `RISKWATCH_*` environment variables.
//!
//! Bounded: at most `--exec-jobs` run at once; each is killed (its whole
//! process group) after `--exec-timeout`; at most [`MAX_WAITING`] events
//! wait for a free slot, beyond which one is skipped and said so. The
//! command's output goes to riskwatch's stderr, so stdout stays the
//! events; riskwatch's token is not in its environment. A failure or a
//! timeout is one line on stderr and never stops the watch.

use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use riskwatch::Event;
use riskwatch::engine::Decision;
use tokio::io::AsyncWriteExt;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use super::output::{event_json, sanitize};

/// Events that may wait for a free slot before one is skipped.
pub const MAX_WAITING: usize = 1000;

pub struct Hooks {
    command: String,
    slots: Arc<Semaphore>,
    timeout: Duration,
    waiting: Arc<AtomicUsize>,
    running: JoinSet<()>,
}

impl Hooks {
    pub fn new(command: String, jobs: usize, timeout: Duration) -> Hooks {
        Hooks {
            command,
            slots: Arc::new(Semaphore::new(jobs.max(1))),
            timeout,
            waiting: Arc::new(AtomicUsize::new(0)),
            running: JoinSet::new(),
        }
    }

    /// Starts the command for `e` (in the background; the watch goes on).
    pub fn run(&mut self, e: &Event, decision: Option<&Decision>) {
        // Finished ones are collected as new ones start.
        while self.running.try_join_next().is_some() {}
        if self.waiting.load(Ordering::Relaxed) >= MAX_WAITING {
            eprintln!(
                "riskwatch: --exec: {MAX_WAITING} events already wait for the command; {} skipped",
                sanitize(&e.kind)
            );
            return;
        }
        self.waiting.fetch_add(1, Ordering::Relaxed);
        let mut stdin = event_json(e, decision).to_string();
        stdin.push('\n');
        let severity = decision.map_or(e.severity, |d| d.severity_after_rules);
        let d = e.describe();
        let env: Vec<(&'static str, String)> = vec![
            ("RISKWATCH_TYPE", e.kind.clone()),
            ("RISKWATCH_SEVERITY", severity.to_string()),
            ("RISKWATCH_TITLE", d.title),
            ("RISKWATCH_BODY", d.body),
            ("RISKWATCH_CHANNEL", e.channel.clone().unwrap_or_default()),
            ("RISKWATCH_SUBJECT", e.subject.clone().unwrap_or_default()),
            ("RISKWATCH_SOURCE", e.source.to_string()),
            ("RISKWATCH_ID", e.id.clone().unwrap_or_default()),
            (
                "RISKWATCH_SEQ",
                e.seq.map(|s| s.to_string()).unwrap_or_default(),
            ),
            ("RISKWATCH_TIME", e.time.to_rfc3339()),
        ];
        let (command, slots, waiting, timeout) = (
            self.command.clone(),
            Arc::clone(&self.slots),
            Arc::clone(&self.waiting),
            self.timeout,
        );
        let what = sanitize(&e.kind);
        self.running.spawn(async move {
            let permit = slots.acquire_owned().await;
            waiting.fetch_sub(1, Ordering::Relaxed);
            let Ok(_permit) = permit else { return };
            if let Err(problem) = run_one(&command, &env, stdin, timeout).await {
                eprintln!("riskwatch: --exec for {what}: {problem}");
            }
        });
    }

    /// Waits for the commands started so far, each within its timeout:
    /// at the end of a watch (`--count`), so the last events' commands
    /// run to their end.
    pub async fn finish(mut self) {
        while self.running.join_next().await.is_some() {}
    }
}

async fn run_one(
    command: &str,
    env: &[(&'static str, String)],
    stdin: String,
    timeout: Duration,
) -> Result<(), String> {
    let mut cmd = tokio::process::Command::new("sh");
    cmd.arg("-c")
        .arg(command)
        // The token stays with riskwatch.
        .env_remove("RISKWATCH_TOKEN")
        .stdin(Stdio::piped())
        .stdout(std::io::stderr())
        .stderr(std::io::stderr())
        .kill_on_drop(true);
    for (k, v) in env {
        // An environment value cannot hold NUL; server text might.
        cmd.env(k, v.replace('\0', ""));
    }
    #[cfg(unix)]
    cmd.process_group(0);
    let mut child = cmd.spawn().map_err(|e| format!("cannot start sh: {e}"))?;
    let pid = child.id();
    if let Some(mut pipe) = child.stdin.take() {
        // A command that does not read its input is fine.
        let _ = pipe.write_all(stdin.as_bytes()).await;
    }
    match tokio::time::timeout(timeout, child.wait()).await {
        Ok(Ok(status)) if status.success() => Ok(()),
        Ok(Ok(status)) => Err(format!("the command failed ({status})")),
        Ok(Err(e)) => Err(format!("cannot wait for the command: {e}")),
        Err(_) => {
            #[cfg(unix)]
            if let Some(pid) = pid.and_then(|p| i32::try_from(p).ok()) {
                // SAFETY: kill(2) on the process group the command leads
                // (process_group(0) above); it may have ended meanwhile.
                unsafe { libc::kill(-pid, libc::SIGKILL) };
            }
            let _ = child.kill().await;
            Err(format!(
                "killed after {} s (--exec-timeout)",
                timeout.as_secs_f64()
            ))
        }
    }
}
