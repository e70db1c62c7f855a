//! `riskwatch prefs check FILE [--rules FILE]`: validates a preferences (or
//! profile) file and a rules file the way `watch --prefs` and the desktop
//! read them, before they are deployed. An error names the file, line and
//! column and exits 2; a valid file gets a one-line summary and exit 0.

use std::path::PathBuf;

use clap::{Args, Subcommand};
use riskwatch::engine::rules;
use riskwatch::profile;

use super::exit;

#[derive(Debug, Clone, Args)]
pub struct PrefsArgs {
    #[command(subcommand)]
    command: PrefsCommand,
}

#[derive(Debug, Clone, Subcommand)]
enum PrefsCommand {
    /// Check a preferences file (and a rules file): exit 0 and a summary
    /// when valid, exit 2 with FILE:LINE:COLUMN and the reason when not.
    #[command(before_help = "Examples:
  riskwatch prefs check ~/.config/riskwatch/profiles/trading-desk.toml
  riskwatch prefs check critical-only.toml --rules rules.txt")]
    Check {
        /// The preferences or profile file (TOML, docs/RULES.md).
        file: PathBuf,
        /// A rules file to check too (one rule per line).
        #[arg(long, value_name = "FILE")]
        rules: Option<PathBuf>,
    },
}

pub fn prefs(args: PrefsArgs) -> u8 {
    let PrefsCommand::Check { file, rules } = args.command;
    let p = match profile::load_file(&file) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("riskwatch: {e}");
            return exit::USAGE;
        }
    };
    let mut extra = 0;
    if let Some(path) = &rules {
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) => {
                eprintln!("riskwatch: {}: {e}", path.display());
                return exit::USAGE;
            }
        };
        match rules::parse_rules(&text) {
            Ok(r) => extra = r.len(),
            Err(e) => {
                eprintln!(
                    "riskwatch: {}:{}:{}: {}",
                    path.display(),
                    e.line,
                    e.column,
                    e.message
                );
                return exit::USAGE;
            }
        }
    }
    let url = p
        .connection
        .url
        .as_ref()
        .map_or("no url".to_owned(), |u| format!("url {}", u.as_str()));
    let mut summary = format!(
        "{}: ok ({url}, {} rules, {} mutes or snoozes{})",
        file.display(),
        p.rules.len(),
        p.prefs.mute.len(),
        if p.prefs.quiet_hours.is_some() {
            ", quiet hours"
        } else {
            ""
        },
    );
    if let Some(path) = &rules {
        summary.push_str(&format!("; {}: ok ({extra} rules)", path.display()));
    }
    println!("{summary}");
    exit::OK
}
