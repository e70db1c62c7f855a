//! `riskwatch snooze`, `mute` and `unmute`: silences from the shell, in
//! a profile's preferences file (or any `--prefs FILE`), as the desktop's
//! Settings make them. Only the file's `[[mute]]` entries are rewritten;
//! a running `watch --profile` (and the desktop) reads the change within
//! a couple of seconds.

use std::path::PathBuf;

use chrono::{Local, Utc};
use clap::{ArgGroup, Args};
use riskwatch::engine::prefs::{MuteTarget, parse_duration};
use riskwatch::profile::{self, ProfileStore};

use super::exit;

/// Which file, and what to silence: exactly one target.
#[derive(Debug, Clone, Args)]
#[command(group(ArgGroup::new("target").required(true).args(["source", "subject", "kind", "channel"])))]
pub struct Silence {
    /// The profile whose preferences change
    /// (~/.config/riskwatch/profiles/NAME.toml); RISKWATCH_PROFILE when
    /// not given.
    #[arg(long, value_name = "NAME", env = "RISKWATCH_PROFILE")]
    profile: Option<String>,
    /// A preferences file to change instead of a profile's.
    #[arg(long, value_name = "FILE", conflicts_with = "profile")]
    prefs: Option<PathBuf>,
    /// A connection's label (the profile name or the URL).
    #[arg(long)]
    source: Option<String>,
    /// A subject, e.g. department:Engineering or session:S9.
    #[arg(long)]
    subject: Option<String>,
    /// An event type, e.g. market_data.
    #[arg(long = "type", value_name = "TYPE")]
    kind: Option<String>,
    /// A channel, e.g. sessions:S9.
    #[arg(long)]
    channel: Option<String>,
}

#[derive(Debug, Clone, Args)]
#[command(before_help = "Examples:
  riskwatch snooze --profile desk --type market_data --for 30m
  riskwatch snooze --profile desk --channel sessions:S9 --for 2h
  riskwatch snooze --prefs critical-only.toml --subject department:Sales --for 1d")]
pub struct SnoozeArgs {
    #[command(flatten)]
    what: Silence,
    /// How long: 90s, 30m, 2h, 1d, 1h30m.
    #[arg(long = "for", value_name = "DURATION")]
    duration: String,
}

#[derive(Debug, Clone, Args)]
#[command(before_help = "Examples:
  riskwatch mute --profile desk --type market_data       # until `riskwatch unmute`
  riskwatch unmute --profile desk --type market_data")]
pub struct MuteArgs {
    #[command(flatten)]
    what: Silence,
}

impl Silence {
    fn target(&self) -> MuteTarget {
        match (&self.source, &self.subject, &self.kind, &self.channel) {
            (Some(s), ..) => MuteTarget::Source(s.clone()),
            (_, Some(s), ..) => MuteTarget::Subject(s.clone()),
            (_, _, Some(t), _) => MuteTarget::Type(t.clone()),
            // clap requires exactly one of the four.
            (.., c) => MuteTarget::Channel(c.clone().unwrap_or_default()),
        }
    }

    /// The file to change and how it is named in messages.
    fn file(&self) -> anyhow::Result<(PathBuf, String)> {
        match (&self.prefs, &self.profile) {
            (Some(path), _) => Ok((path.clone(), path.display().to_string())),
            (None, Some(name)) => Ok((
                ProfileStore::default_location()?.path(name)?,
                format!("profile {name}"),
            )),
            (None, None) => {
                anyhow::bail!("give --profile NAME (or RISKWATCH_PROFILE) or --prefs FILE")
            }
        }
    }
}

/// Runs `change` on the file's preferences; exit 2 with one line on a bad
/// file, name or value.
fn edit<T>(
    what: &Silence,
    change: impl FnOnce(&mut riskwatch::engine::prefs::Prefs) -> T,
) -> Result<(String, T), u8> {
    let target_ok = match what.target() {
        MuteTarget::Source(v)
        | MuteTarget::Subject(v)
        | MuteTarget::Type(v)
        | MuteTarget::Channel(v) => !v.trim().is_empty(),
    };
    if !target_ok {
        eprintln!("riskwatch: give a value to silence");
        return Err(exit::USAGE);
    }
    let (path, name) = what.file().map_err(|e| {
        eprintln!("riskwatch: {e:#}");
        exit::USAGE
    })?;
    if !path.exists() {
        eprintln!(
            "riskwatch: no {name} at {}: `riskwatch login NAME --url URL` or the desktop's \
             Settings make a profile",
            path.display()
        );
        return Err(exit::USAGE);
    }
    match profile::edit_mutes_in_file(&path, change) {
        Ok((_, answer)) => Ok((name, answer)),
        Err(e) => {
            eprintln!("riskwatch: {e}");
            Err(if e.is_invalid() {
                exit::USAGE
            } else {
                exit::FAILURE
            })
        }
    }
}

pub fn snooze(a: SnoozeArgs) -> u8 {
    let length = match parse_duration(&a.duration) {
        Ok(d) if !d.is_zero() => d,
        Ok(_) => {
            eprintln!("riskwatch: --for must be longer than nothing");
            return exit::USAGE;
        }
        Err(e) => {
            eprintln!("riskwatch: --for: {e}");
            return exit::USAGE;
        }
    };
    let target = a.what.target();
    let now = Utc::now();
    let shown = target.to_string();
    match edit(&a.what, |p| p.snooze(target, length, now)) {
        Ok((name, ())) => {
            let until = chrono::Duration::from_std(length)
                .ok()
                .and_then(|d| now.checked_add_signed(d))
                .map_or_else(
                    || "for good".to_owned(),
                    |t| {
                        format!(
                            "until {}",
                            t.with_timezone(&Local).format("%Y-%m-%d %H:%M %Z")
                        )
                    },
                );
            println!("{shown} snoozed in {name} {until}");
            exit::OK
        }
        Err(code) => code,
    }
}

pub fn mute(a: MuteArgs) -> u8 {
    let target = a.what.target();
    let shown = target.to_string();
    match edit(&a.what, |p| p.mute(target)) {
        Ok((name, ())) => {
            println!("{shown} muted in {name} until unmuted");
            exit::OK
        }
        Err(code) => code,
    }
}

/// Removing what is not there is no error (a script may run it twice);
/// it says so.
pub fn unmute(a: MuteArgs) -> u8 {
    let target = a.what.target();
    let shown = target.to_string();
    match edit(&a.what, |p| p.unmute(&target)) {
        Ok((name, true)) => {
            println!("{shown} unmuted in {name}");
            exit::OK
        }
        Ok((name, false)) => {
            println!("{shown} was not muted or snoozed in {name}");
            exit::OK
        }
        Err(code) => code,
    }
}
