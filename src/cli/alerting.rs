//! Alerting in the CLI: `--profile`, `--prefs`, `--rules`, `--notify` and
//! `--inbox` on `watch` and `demo`. Loads the preferences and adapts the
//! library's one pipeline ([`riskwatch::alerting`], the desktop's too):
//! every event through the engine, what is listed stored, OS notifications
//! raised and their Acknowledge / Open reported, repeats raised when due.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use chrono::Utc;
use clap::Args;
use riskwatch::Event;
use riskwatch::alerting::{Alerts, AlertsConfig};
use riskwatch::client::Notice;
use riskwatch::engine::{Decision, Notification, rules};
use riskwatch::notifier::action;
use riskwatch::profile::{self, Profile, ProfileStore};
use tokio::sync::mpsc;

/// Alerting options shared by `watch` and `demo`.
#[derive(Debug, Clone, Args)]
pub struct AlertArgs {
    /// Server profile: its token comes from the OS keyring (`riskwatch
    /// login PROFILE`), its preferences from
    /// ~/.config/riskwatch/profiles/PROFILE.toml, and its url from there
    /// when none is given. For watch, RISKWATCH_PROFILE when not given.
    #[arg(long, value_name = "NAME")]
    pub profile: Option<String>,
    /// Preferences file (TOML, see docs/RULES.md): filters, minimum
    /// severities, quiet hours, mutes, sounds, dedupe and rules. Overrides
    /// the profile's file.
    #[arg(long, value_name = "FILE")]
    pub prefs: Option<PathBuf>,
    /// Extra threshold rules, one per line (docs/RULES.md).
    #[arg(long, value_name = "FILE")]
    pub rules: Option<PathBuf>,
    /// Raise OS notifications for what the preferences say should notify
    /// (critical and emergency by default).
    #[arg(long)]
    pub notify: bool,
    /// Store every listed event in this SQLite inbox (created if missing).
    #[arg(long, value_name = "FILE")]
    pub inbox: Option<PathBuf>,
}

impl AlertArgs {
    /// Whether any option asks for the engine.
    pub fn active(&self) -> bool {
        self.profile.is_some()
            || self.prefs.is_some()
            || self.rules.is_some()
            || self.notify
            || self.inbox.is_some()
    }
}

/// A notification action picked by the user.
#[derive(Debug)]
pub struct Action {
    pub id: String,
    pub alert: Option<String>,
    pub title: String,
}

/// What wakes the watch loop besides the client: a notification's action.
pub enum Signal {
    Action(Action),
}

/// The action channel, kept apart from [`Alerting`] so the watch loop can
/// wait on it while it uses the pipeline.
pub struct Signals {
    actions: mpsc::UnboundedReceiver<Action>,
}

/// Waits for the next signal; forever when alerting is off.
pub async fn next_signal(s: &mut Option<Signals>) -> Signal {
    match s {
        Some(s) => match s.actions.recv().await {
            Some(a) => Signal::Action(a),
            None => std::future::pending().await,
        },
        None => std::future::pending().await,
    }
}

/// The profile name the CLI's one engine runs under.
const PROFILE: &str = "cli";

/// The CLI's adapter of the library's alerting pipeline
/// ([`riskwatch::alerting::Alerts`], shared with the desktop): one
/// profile, actions reported on stderr.
pub struct Alerting {
    alerts: Arc<Alerts>,
    actions: mpsc::UnboundedSender<Action>,
    /// Raises repeats, counts and summaries when due (no ticking clock).
    due: tokio::task::JoinHandle<()>,
    /// Reads the preferences again when their file changes.
    reload: Option<tokio::task::JoinHandle<()>>,
}

/// How often the preferences file is looked at: a `stat`, so that a
/// snooze from the shell or the desktop's Settings is in force within
/// about this long. Polled rather than watched: an editor's or
/// `riskwatch snooze`'s save renames a new file over the old one, which a
/// watch on the file would miss, and a stat a second costs nothing.
const RELOAD_EVERY: std::time::Duration = std::time::Duration::from_secs(1);

/// The file the preferences come from, if any: `--prefs`, or the
/// profile's.
fn prefs_file(args: &AlertArgs) -> Option<PathBuf> {
    match (&args.prefs, &args.profile) {
        (Some(path), _) => Some(path.clone()),
        (None, Some(name)) => ProfileStore::default_location()
            .ok()
            .and_then(|s| s.path(name).ok()),
        (None, None) => None,
    }
}

/// Loads the preferences again whenever their file changes; a file that
/// no longer reads keeps the last good preferences, and says why.
async fn reload_on_change(args: AlertArgs, path: PathBuf, alerts: Arc<Alerts>) {
    let mut seen = profile::FileStamp::of(&path);
    let mut tick = tokio::time::interval(RELOAD_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let now = profile::FileStamp::of(&path);
        if now == seen {
            continue;
        }
        seen = now;
        let loaded = {
            let args = args.clone();
            tokio::task::spawn_blocking(move || load_profile(&args)).await
        };
        match loaded {
            Ok(Ok(p)) => {
                alerts.set_prefs(PROFILE, p.prefs, p.rules);
                eprintln!("riskwatch: preferences read again from {}", path.display());
            }
            Ok(Err(e)) => eprintln!(
                "riskwatch: {} changed but cannot be used, keeping the preferences before it: {e:#}",
                path.display()
            ),
            Err(_) => return,
        }
    }
}

/// Loads the profile (connection, preferences and rules) as the options
/// say; `--rules` adds to its rules.
pub fn load_profile(args: &AlertArgs) -> anyhow::Result<Profile> {
    let mut p = match (&args.prefs, &args.profile) {
        (Some(path), _) => profile::load_file(path)?,
        (None, Some(name)) => ProfileStore::default_location()?.load(name)?,
        (None, None) => Profile::default(),
    };
    if let Some(path) = &args.rules {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read rules file {}", path.display()))?;
        let extra = rules::parse_rules(&text).map_err(|e| {
            anyhow::anyhow!("{}:{}:{}: {}", path.display(), e.line, e.column, e.message)
        })?;
        p.rules.extend(extra);
    }
    Ok(p)
}

/// Shows `n`, then reports the picked action on the watch loop's channel.
fn raise(alerts: &Alerts, actions: &mpsc::UnboundedSender<Action>, n: Notification) {
    let tx = actions.clone();
    let (alert, title) = (n.alert.clone(), n.title.clone());
    alerts.raise(n, move |picked| {
        if let Some(id) = picked {
            let _ = tx.send(Action { id, alert, title });
        }
    });
}

impl Alerting {
    /// Builds the pipeline from the options; `None` when no option asks
    /// for it. Needs a tokio runtime.
    pub fn start(
        args: &AlertArgs,
        loaded: Option<Profile>,
    ) -> anyhow::Result<Option<(Alerting, Signals)>> {
        if !args.active() {
            return Ok(None);
        }
        let Profile { prefs, rules, .. } = match loaded {
            Some(l) => l,
            None => load_profile(args)?,
        };
        let cfg = AlertsConfig::default()
            .inbox(args.inbox.clone())
            .notify(args.notify);
        let (alerts, _committed) = Alerts::open(cfg).with_context(|| match &args.inbox {
            Some(path) => format!("cannot open the inbox {}", path.display()),
            None => "cannot start alerting".to_owned(),
        })?;
        alerts.set_prefs(PROFILE, prefs, rules);
        let alerts = Arc::new(alerts);
        let (tx, rx) = mpsc::unbounded_channel();
        let due = tokio::spawn({
            let (alerts, tx) = (Arc::clone(&alerts), tx.clone());
            async move { alerts.run_due(|n| raise(&alerts, &tx, n)).await }
        });
        let reload = prefs_file(args)
            .map(|path| tokio::spawn(reload_on_change(args.clone(), path, Arc::clone(&alerts))));
        Ok(Some((
            Alerting {
                alerts,
                actions: tx,
                due,
                reload,
            },
            Signals { actions: rx },
        )))
    }

    /// Runs one event through the pipeline: stored when listed, its
    /// notification raised when there is one.
    pub fn on_event(&mut self, e: &Event) -> Decision {
        let d = self.alerts.on_event(PROFILE, e, Utc::now());
        if let Some(n) = d.notify.clone() {
            raise(&self.alerts, &self.actions, n);
        }
        d
    }

    /// A notice: a history gap is stored in the inbox whatever the
    /// preferences, with a notification when critical alerts may be among
    /// what was lost.
    pub fn on_notice(&mut self, source: &Arc<str>, notice: &Notice) {
        if let Some(n) = self.alerts.on_notice(PROFILE, source, notice, Utc::now()) {
            raise(&self.alerts, &self.actions, n);
        }
    }

    pub fn on_signal(&mut self, s: Signal) {
        match s {
            Signal::Action(a) => self.on_action(a),
        }
    }

    fn on_action(&mut self, a: Action) {
        match (a.id.as_str(), a.alert.as_deref()) {
            (action::ACKNOWLEDGE, Some(key)) => {
                let stored = self
                    .alerts
                    .acknowledge_key(key)
                    .map_err(|e| tracing::warn!(error = %e, "cannot acknowledge in the inbox"))
                    .ok();
                eprintln!(
                    "riskwatch: acknowledged: {}{}",
                    super::output::sanitize(&a.title),
                    match stored {
                        Some(n) if n > 0 => format!(" ({n} in the inbox)"),
                        _ => String::new(),
                    }
                );
            }
            (action::OPEN, _) => {
                eprintln!("riskwatch: open: {}", super::output::sanitize(&a.title));
            }
            _ => {}
        }
    }
}

impl Drop for Alerting {
    fn drop(&mut self) {
        self.due.abort();
        if let Some(r) = &self.reload {
            r.abort();
        }
        // What is queued reaches the inbox before the process ends.
        self.alerts.close();
    }
}
