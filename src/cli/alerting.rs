//! The alert engine in the CLI: `--profile`, `--prefs`, `--rules`,
//! `--notify` and `--inbox` on `watch` and `demo`. Loads the preferences,
//! runs every event through the engine, stores what is listed, raises OS
//! notifications and handles their Acknowledge / Open actions.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use chrono::Utc;
use clap::Args;
use riskwatch::Event;
use riskwatch::engine::{Decision, Engine, Notification, Prefs, PrefsStore, Rule, prefs, rules};
use riskwatch::inbox::{Inbox, Record, Writer, WriterConfig};
use riskwatch::notifier::{Notifier, NotifierConfig, action};
use tokio::sync::mpsc;

/// Alerting options shared by `watch` and `demo`.
#[derive(Debug, Clone, Args)]
pub struct AlertArgs {
    /// Server profile: its token comes from the OS keyring (`riskwatch
    /// login PROFILE`), its preferences from
    /// ~/.config/riskwatch/profiles/PROFILE.toml, and its url from there
    /// when none is given.
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

/// What wakes the watch loop besides the client.
pub enum Signal {
    Tick,
    Action(Action),
}

/// The timer and action channel, kept apart from [`Alerting`] so the watch
/// loop can wait on them while it uses the engine.
pub struct Signals {
    ticker: tokio::time::Interval,
    actions: mpsc::UnboundedReceiver<Action>,
}

/// Waits for the next signal; forever when alerting is off.
pub async fn next_signal(s: &mut Option<Signals>) -> Signal {
    match s {
        Some(s) => tokio::select! {
            _ = s.ticker.tick() => Signal::Tick,
            Some(a) = s.actions.recv() => Signal::Action(a),
        },
        None => std::future::pending().await,
    }
}

pub struct Alerting {
    engine: Engine,
    notifier: Option<Notifier>,
    writer: Option<Writer>,
    inbox_path: Option<PathBuf>,
    reader: Option<Inbox>,
    actions: mpsc::UnboundedSender<Action>,
}

/// Loads preferences and rules as the options say.
pub fn load_prefs(args: &AlertArgs) -> anyhow::Result<(Prefs, Vec<Rule>)> {
    let (prefs, mut rule_list) = match (&args.prefs, &args.profile) {
        (Some(path), _) => prefs::load_file(path)?,
        (None, Some(profile)) => PrefsStore::default_location()?.load(profile)?,
        (None, None) => (Prefs::default(), Vec::new()),
    };
    if let Some(path) = &args.rules {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read rules file {}", path.display()))?;
        let extra = rules::parse_rules(&text).map_err(|e| {
            anyhow::anyhow!("{}:{}:{}: {}", path.display(), e.line, e.column, e.message)
        })?;
        rule_list.extend(extra);
    }
    Ok((prefs, rule_list))
}

impl Alerting {
    /// Builds the engine from the options; `None` when no option asks for it.
    pub fn start(
        args: &AlertArgs,
        loaded: Option<(Prefs, Vec<Rule>)>,
    ) -> anyhow::Result<Option<(Alerting, Signals)>> {
        if !args.active() {
            return Ok(None);
        }
        let (prefs, rule_list) = match loaded {
            Some(l) => l,
            None => load_prefs(args)?,
        };
        let writer = match &args.inbox {
            Some(path) => {
                let (w, _committed) = Writer::spawn(path, WriterConfig::default())
                    .with_context(|| format!("cannot open the inbox {}", path.display()))?;
                Some(w)
            }
            None => None,
        };
        let (tx, rx) = mpsc::unbounded_channel();
        let mut ticker = tokio::time::interval(Duration::from_secs(1));
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let alerting = Alerting {
            engine: Engine::new(prefs, rule_list),
            notifier: args
                .notify
                .then(|| Notifier::new(NotifierConfig::default())),
            writer,
            inbox_path: args.inbox.clone(),
            reader: None,
            actions: tx,
        };
        Ok(Some((
            alerting,
            Signals {
                ticker,
                actions: rx,
            },
        )))
    }

    /// Runs one event through the engine: stores it when listed, raises
    /// its notification when there is one.
    pub fn on_event(&mut self, e: &Event) -> Decision {
        let now = Utc::now();
        let d = self.engine.decide(e, now);
        if d.list
            && let Some(w) = self.writer.as_mut()
        {
            let r = Record::new(e.clone(), now)
                .severity(d.severity_after_rules)
                .key(d.key.clone());
            if let Err(err) = w.push(r) {
                tracing::error!(error = %err, "the inbox stopped storing events");
                self.writer = None;
            }
        }
        if let Some(n) = d.notify.clone() {
            self.raise(n);
        }
        d
    }

    pub fn on_signal(&mut self, s: Signal) {
        match s {
            Signal::Tick => {
                for n in self.engine.tick(Utc::now()) {
                    self.raise(n);
                }
            }
            Signal::Action(a) => self.on_action(a),
        }
    }

    fn on_action(&mut self, a: Action) {
        match (a.id.as_str(), a.alert.as_deref()) {
            (action::ACKNOWLEDGE, Some(key)) => {
                self.engine.acknowledge(key);
                let stored = self.acknowledge_stored(key);
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

    fn acknowledge_stored(&mut self, key: &str) -> Option<usize> {
        let path = self.inbox_path.as_ref()?;
        if let Some(w) = &self.writer {
            // Rows still queued would miss the acknowledgement.
            let _ = w.flush();
        }
        if self.reader.is_none() {
            self.reader = Inbox::open(path)
                .map_err(|e| tracing::warn!(error = %e, "cannot open the inbox"))
                .ok();
        }
        self.reader
            .as_ref()?
            .acknowledge_key(key, Utc::now())
            .map_err(|e| tracing::warn!(error = %e, "cannot acknowledge in the inbox"))
            .ok()
    }

    fn raise(&self, n: Notification) {
        let Some(notifier) = self.notifier.clone() else {
            return;
        };
        let tx = self.actions.clone();
        tokio::spawn(async move {
            let alert = n.alert.clone();
            let title = n.title.clone();
            if let Some(id) = notifier.show_and_wait(n).await {
                let _ = tx.send(Action { id, alert, title });
            }
        });
    }
}
