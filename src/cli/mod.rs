//! The command line: argument definitions (clap), logging set-up, and the
//! mapping from outcomes to exit codes. `anyhow` lives here, at the edge.

mod alerting;
mod exec;
mod inbox;
mod login;
mod mute;
mod output;
mod prefs;
mod publish;
mod serve;
mod since;
mod watch;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, CommandFactory, FromArgMatches, Parser, Subcommand, ValueEnum};
use riskwatch::Style;

/// Exit codes, documented in `riskwatch --help`.
pub mod exit {
    pub const OK: u8 = 0;
    pub const FAILURE: u8 = 1;
    pub const USAGE: u8 = 2;
    pub const AUTH_REFUSED: u8 = 3;
    pub const TLS: u8 = 4;
    pub const INTERRUPTED: u8 = 130;
    pub const TERMINATED: u8 = 143;
}

/// Resolves on SIGINT (Ctrl-C) or SIGTERM (what systemd, containers and
/// `kill` send), with the exit code for it: both stop the same graceful
/// way (close frames, flushed history and inbox).
pub async fn stop_signal() -> u8 {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        if let Ok(mut term) = signal(SignalKind::terminate()) {
            return tokio::select! {
                _ = tokio::signal::ctrl_c() => exit::INTERRUPTED,
                _ = term.recv() => exit::TERMINATED,
            };
        }
    }
    let _ = tokio::signal::ctrl_c().await;
    exit::INTERRUPTED
}

#[derive(Debug, Parser)]
#[command(
    name = "riskwatch",
    version,
    about = "Real-time risk alerts from any risk backend, in the terminal",
    long_about = "riskwatch connects to a risk system's WebSocket (merchant risk, dashboard hub, \
compliance engagement, HR alerts, trading sessions, or riskwatch's own hub), keeps the \
connection alive across drops, and prints every event with its severity.",
    before_help = "Common uses:
  riskwatch demo                                      # no backend needed: every one simulated
  riskwatch watch ws://risk.example:8000/api/v1/ws/alerts
  riskwatch login desk --url wss://hub.example/ws     # token into the OS keyring, then:
  riskwatch watch --profile desk --notify
  riskwatch serve --demo                              # a hub with simulators on 127.0.0.1:8765
  riskwatch publish http://hub:8080 -c sessions:desk1 -t risk_alert -s critical
  riskwatch inbox list --unread --severity critical
Each command's --help starts with its own examples.",
    after_help = "Exit codes: 0 done (--count reached), 1 failure, 2 bad usage or URL, \
3 authentication refused, 4 TLS certificate not trusted, 130 interrupted (SIGINT), \
143 terminated (SIGTERM).\n\
Environment: RISKWATCH_TOKEN (token, preferred over --token), RUST_LOG (log filter), NO_COLOR."
)]
pub struct Cli {
    /// More logging on stderr (-v debug, -vv trace). RUST_LOG overrides.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    verbose: u8,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Watch a backend's WebSocket and print its events.
    Watch(WatchArgs),
    /// Run the built-in demo (the hub on 127.0.0.1 with every backend
    /// simulated: trading desk, HR, merchant risk, compliance, dashboard)
    /// and watch it: riskwatch with no backend and no network.
    Demo(DemoArgs),
    /// Run the riskwatch hub: the native protocol and the five backend
    /// styles' endpoints, publish API, stats and metrics.
    Serve(serve::ServeArgs),
    /// Mint a development token for a hub started with --jwt-secret.
    Token(serve::TokenArgs),
    /// Publish events to a riskwatch hub (from flags, a file or standard
    /// input); the token from RISKWATCH_TOKEN or a profile's keyring entry.
    Publish(publish::PublishArgs),
    /// Read, acknowledge and export the alert inbox (by default the
    /// desktop app's): list, show, ack, unack, export.
    Inbox(inbox::InboxArgs),
    /// Check a preferences file (and a rules file) before deploying it.
    Prefs(prefs::PrefsArgs),
    /// Silence a source, subject, type or channel for a while, in a
    /// profile's preferences (listed and stored still, not notified;
    /// emergencies always get through).
    Snooze(mute::SnoozeArgs),
    /// Silence a source, subject, type or channel until unmuted.
    Mute(mute::MuteArgs),
    /// Remove a mute or snooze.
    Unmute(mute::MuteArgs),
    /// Print a shell completion script: riskwatch completions bash >
    /// /etc/bash_completion.d/riskwatch (or zsh, fish, elvish, powershell).
    Completions { shell: clap_complete::Shell },
    /// Print the manual page (roff): riskwatch man > riskwatch.1; man
    /// ./riskwatch.1
    Man,
    /// Store a profile's token in the OS keyring (read without echo, or
    /// from standard input when it is not a terminal).
    Login(login::LoginArgs),
    /// Remove a profile's token from the OS keyring.
    Logout(login::LogoutArgs),
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum AuthArg {
    /// Where the style puts it (query for compliance, header otherwise);
    /// refused there, once in the other place, then kept there.
    Auto,
    /// `Authorization: Bearer` header.
    Header,
    /// `?token=` query parameter.
    Query,
    /// Both header and query parameter.
    Both,
}

/// Output options shared by `watch` and `demo`.
#[derive(Debug, Clone, Args)]
struct OutputArgs {
    /// One JSON object per event per line: type, severity, data, notify, time,
    /// channel, subject, source, id, seq, style.
    #[arg(long)]
    json: bool,
    /// Exit 0 after this many events.
    #[arg(long, value_name = "N")]
    count: Option<u64>,
}

#[derive(Debug, Clone, Args)]
#[command(before_help = "Examples:
  riskwatch watch ws://risk.example:8000/api/v1/ws/alerts     # every event, one line each
  RISKWATCH_TOKEN=... riskwatch watch wss://hub.example/ws --subscribe user:u1 --json
  riskwatch watch --profile desk --notify --inbox ~/alerts.db   # URL and token from the profile
  riskwatch watch ws://hub:8080/api/v1/stream --subscribe 'sessions:*' --since 10m
  riskwatch watch --profile trading-desk --exec 'notify-pager \"$RISKWATCH_TITLE\"'")]
struct WatchArgs {
    /// WebSocket URL (ws:// or wss://), e.g. ws://host:8000/api/v1/ws/alerts.
    /// Optional with --profile when the profile's preferences have a url.
    #[arg(env = "RISKWATCH_URL")]
    url: Option<String>,
    /// Bearer token. Prefer the RISKWATCH_TOKEN environment variable: a
    /// command-line argument is visible to other users of this machine.
    #[arg(long, env = "RISKWATCH_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// Where the token goes.
    #[arg(long, value_enum, default_value = "auto")]
    auth: AuthArg,
    #[command(flatten)]
    out: OutputArgs,
    #[command(flatten)]
    alert: alerting::AlertArgs,
    /// The backend's application heartbeat interval in seconds (its own
    /// ping message). WebSocket pings go every 5 s whatever this is.
    #[arg(long, value_name = "SECS", default_value_t = 30.0)]
    heartbeat: f64,
    /// Seconds without any traffic after which the connection is declared
    /// dead and replaced (or two heartbeats, if shorter).
    #[arg(long, value_name = "SECS", default_value_t = 12.0)]
    dead_after: f64,
    /// Subscribe to a channel (repeatable): trading `user:ID` / `sessions:ID`,
    /// compliance `client:ID`, or a hub channel.
    #[arg(long = "subscribe", value_name = "CHANNEL")]
    subscribe: Vec<String>,
    /// Replay the hub's history first (native protocol): `all` it holds,
    /// after a sequence number (`1041`), from a time back (`10m`, `4h`,
    /// `2d`) or from an RFC 3339 time. Reconnects resume from there.
    #[arg(long, value_name = "WHEN")]
    since: Option<String>,
    /// Backend style for what riskwatch sends (guessed from the URL path):
    /// merchant, dashboard, compliance, hr, trading, native.
    #[arg(long)]
    style: Option<Style>,
    /// Extra CA certificate file (PEM) to trust besides the system's.
    #[arg(long, value_name = "PATH")]
    ca_file: Option<PathBuf>,
    /// Name for this connection in the output (default: the URL without
    /// credentials).
    #[arg(long)]
    label: Option<String>,
    /// Largest message accepted, in bytes; larger ones are skipped and counted.
    #[arg(long, value_name = "BYTES", default_value_t = 1 << 20)]
    max_message_size: usize,
    /// HTTP snapshot URL to poll while the WebSocket upgrade keeps failing
    /// (default: the dashboard style's /api/v1/dashboard).
    #[arg(long, value_name = "URL", conflicts_with = "no_poll")]
    poll_url: Option<String>,
    /// Never fall back to HTTP polling.
    #[arg(long)]
    no_poll: bool,
    /// Seconds between polls.
    #[arg(long, value_name = "SECS", default_value_t = 30.0)]
    poll_interval: f64,
    /// First reconnect delay ceiling in seconds (grows 1.5 times per
    /// attempt; each delay is drawn from 0 to the ceiling).
    #[arg(long, value_name = "SECS", default_value_t = 0.5)]
    backoff_initial: f64,
    /// Largest reconnect delay in seconds.
    #[arg(long, value_name = "SECS", default_value_t = 30.0)]
    backoff_max: f64,
    /// Seconds allowed for connecting (TCP, TLS and upgrade).
    #[arg(long, value_name = "SECS", default_value_t = 10.0)]
    connect_timeout: f64,
    /// Run a shell command for each event shown: the event as a JSON line
    /// on its stdin, RISKWATCH_TYPE, _SEVERITY, _TITLE, _BODY, _CHANNEL,
    /// _SUBJECT, _SOURCE, _ID, _SEQ and _TIME in its environment (never the
    /// token), its output on stderr.
    #[arg(long, value_name = "CMD")]
    exec: Option<String>,
    /// At most this many --exec commands at once (events wait their turn).
    #[arg(long, value_name = "N", default_value_t = 4)]
    exec_jobs: usize,
    /// Seconds an --exec command may run before it is killed.
    #[arg(long, value_name = "SECS", default_value_t = 30.0)]
    exec_timeout: f64,
}

#[derive(Debug, Clone, Args)]
#[command(before_help = "Examples:
  riskwatch demo                       # every backend simulated, human lines
  riskwatch demo --json --count 20     # twenty events as JSON lines, then exit 0
  riskwatch demo --notify --prefs critical-only.toml")]
struct DemoArgs {
    #[command(flatten)]
    out: OutputArgs,
    #[command(flatten)]
    alert: alerting::AlertArgs,
    /// Simulator seed: the same seed gives the same market.
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Milliseconds between trading ticks; the other simulators' ticks
    /// scale with it (500 is the normal pace).
    #[arg(long, value_name = "MS", default_value_t = 500)]
    tick_ms: u64,
}

pub fn main() -> ExitCode {
    let matches = command().get_matches();
    let cli = match Cli::from_arg_matches(&matches) {
        Ok(c) => c,
        Err(e) => e.exit(),
    };
    let mut cli = cli;
    if let Command::Serve(args) = cli.command {
        cli.command = match with_config(args) {
            Ok(args) => Command::Serve(args),
            Err(code) => return ExitCode::from(code),
        };
    }
    init_logging(cli.verbose);
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("riskwatch: cannot start the runtime: {e}");
            return ExitCode::from(exit::FAILURE);
        }
    };
    let code = rt.block_on(async {
        match cli.command {
            Command::Watch(args) => watch::watch(args).await,
            Command::Demo(args) => watch::demo(args).await,
            Command::Serve(args) => serve::serve(args).await,
            Command::Token(args) => serve::token(args),
            Command::Publish(args) => publish::publish(args).await,
            // SQLite: off the runtime's worker threads.
            Command::Inbox(args) => tokio::task::spawn_blocking(move || inbox::inbox(args)).await?,
            Command::Prefs(args) => Ok(prefs::prefs(args)),
            Command::Snooze(args) => Ok(mute::snooze(args)),
            Command::Mute(args) => Ok(mute::mute(args)),
            Command::Unmute(args) => Ok(mute::unmute(args)),
            Command::Completions { shell } => {
                let mut cmd = Cli::command();
                clap_complete::generate(shell, &mut cmd, "riskwatch", &mut std::io::stdout());
                Ok(exit::OK)
            }
            Command::Man => {
                let man = clap_mangen::Man::new(examples_after(command()));
                let mut out = Vec::new();
                man.render(&mut out)?;
                // Each subcommand's page after the main one.
                for sub in Cli::command().get_subcommands() {
                    clap_mangen::Man::new(examples_after(sub.clone()))
                        .title(format!("riskwatch-{}", sub.get_name()))
                        .render(&mut out)?;
                }
                std::io::Write::write_all(&mut std::io::stdout(), &out)?;
                Ok(exit::OK)
            }
            Command::Login(args) => login::login(args).await,
            Command::Logout(args) => login::logout(args).await,
        }
    });
    let code = code.unwrap_or_else(|e| {
        eprintln!("riskwatch: {e:#}");
        exit::FAILURE
    });
    // Do not wait for lingering connection tasks.
    rt.shutdown_background();
    ExitCode::from(code)
}

/// `serve --config FILE`: the file's settings become arguments before the
/// user's own (everything after the `serve` word), parsed again with
/// `args_override_self`, so an option on the command line wins over the
/// file and the file over the defaults.
fn with_config(args: serve::ServeArgs) -> Result<serve::ServeArgs, u8> {
    let Some(path) = args.config.clone() else {
        return Ok(args);
    };
    let mut cli = Cli::command();
    cli.build(); // global options (-v) reach the subcommand
    let Some(serve) = cli.find_subcommand("serve") else {
        return Ok(args);
    };
    let serve = serve.clone().args_override_self(true);
    let from_file = match serve::config_args(&path, &serve) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("riskwatch: {e:#}");
            return Err(exit::USAGE);
        }
    };
    let typed = std::env::args_os().skip_while(|a| a != "serve").skip(1);
    let argv = std::iter::once("serve".into())
        .chain(from_file.into_iter().map(std::ffi::OsString::from))
        .chain(typed);
    let matches = serve
        .try_get_matches_from(argv)
        .unwrap_or_else(|e| e.exit());
    serve::ServeArgs::from_arg_matches(&matches).map_err(|e| e.exit())
}

/// The command line as it is parsed and documented: every command's help
/// shows its examples (`before_help`) right after its usage, before the
/// options, and the top level ends with a summary of `watch`'s options.
pub fn command() -> clap::Command {
    uses_first(with_watch_summary(Cli::command()))
}

/// For the manual page, which has no place for `before_help`: a
/// command's examples join its closing text.
fn examples_after(cmd: clap::Command) -> clap::Command {
    let Some(uses) = cmd.get_before_help().map(|h| h.to_string()) else {
        return cmd;
    };
    let text = match cmd.get_after_help() {
        Some(after) => format!("{uses}\n\n{after}"),
        None => uses,
    };
    cmd.after_help(text)
}

/// Puts a command's examples (its `before_help`) after its usage line and
/// before its options, in it and every subcommand.
fn uses_first(cmd: clap::Command) -> clap::Command {
    let cmd = cmd.mut_subcommands(uses_first);
    if cmd.get_before_help().is_none() {
        return cmd;
    }
    let after = if cmd.get_after_help().is_some() {
        "\n\n{after-help}"
    } else {
        ""
    };
    cmd.help_template(format!(
        "{{about-with-newline}}\n{{usage-heading}} {{usage}}\n\n{{before-help}}{{all-args}}{after}"
    ))
}

/// `riskwatch --help` documents every option: the top-level help ends with
/// a summary of `watch`'s options, taken from their own definitions so it
/// never goes stale.
fn with_watch_summary(cmd: clap::Command) -> clap::Command {
    let Some(watch) = cmd.find_subcommand("watch") else {
        return cmd;
    };
    let mut lines = vec!["Options of `riskwatch watch` (see `riskwatch watch --help`):".to_owned()];
    for arg in watch.get_arguments() {
        let (Some(long), Some(help)) = (arg.get_long(), arg.get_help()) else {
            continue;
        };
        let help = help.to_string();
        let first = help
            .split(". ")
            .next()
            .unwrap_or_default()
            .trim_end_matches('.');
        lines.push(format!("  --{long:<20} {first}"));
    }
    let existing = cmd
        .get_after_help()
        .map(|h| h.to_string())
        .unwrap_or_default();
    cmd.after_help(format!("{}\n\n{existing}", lines.join("\n")))
}

fn init_logging(verbose: u8) {
    use tracing_subscriber::EnvFilter;
    let default = match verbose {
        0 => "riskwatch=warn",
        1 => "riskwatch=debug",
        _ => "riskwatch=trace",
    };
    use tracing_subscriber::prelude::*;
    let filter = riskwatch::logging::without_secrets(
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default)),
    );
    tracing_subscriber::registry()
        .with(
            tracing_subscriber::fmt::layer()
                .with_writer(std::io::stderr)
                .with_target(false)
                .compact()
                .with_filter(filter),
        )
        .init();
}
