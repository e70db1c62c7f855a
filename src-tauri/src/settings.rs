//! The command line: `--url URL` (or `RISKWATCH_URL`) adds one connection
//! that is not stored (profile `cli`), with its token from `RISKWATCH_TOKEN`
//! only, so it never shows in a process list; `--demo` runs the built-in
//! demo beside the stored profiles (it runs anyway when there are none).
//! Nothing here is logged or sent to the webview.

use clap::Parser;
use riskwatch::client::Token;
use riskwatch::protocol::Style;

use crate::profiles;

/// riskwatch desktop: live risk dashboards, alerts and notifications for
/// the servers configured in Settings. With none, it plays the built-in
/// demo.
#[derive(Debug, Parser)]
#[command(name = "riskwatch-desktop", version)]
struct Args {
    /// Also watch this ws:// or wss:// URL, not stored as a profile (the
    /// token goes in RISKWATCH_TOKEN).
    #[arg(
        long,
        value_name = "URL",
        env = "RISKWATCH_URL",
        hide_env_values = true
    )]
    url: Option<String>,
    /// A channel to subscribe to on the server (repeatable, or
    /// comma-separated in RISKWATCH_CHANNELS). Demo mode subscribes to
    /// every demo channel itself.
    #[arg(
        long = "channel",
        value_name = "CHANNEL",
        env = "RISKWATCH_CHANNELS",
        value_delimiter = ','
    )]
    channels: Vec<String>,
    /// The backend style of --url (guessed from its path by default):
    /// merchant, dashboard, compliance, hr, trading or native.
    #[arg(long, value_name = "STYLE", env = "RISKWATCH_STYLE")]
    style: Option<String>,
    /// Run the built-in demo even when server profiles are configured.
    #[arg(long, env = "RISKWATCH_DEMO")]
    demo: bool,
    /// The dashboard to open on: trading, hr, merchant, compliance,
    /// operations, inbox, events or settings.
    #[arg(long, value_name = "TAB", env = "RISKWATCH_TAB")]
    tab: Option<String>,
    /// Start in the tray, the window hidden (how start at login runs it).
    #[arg(long)]
    minimized: bool,
}

/// What the app was asked to connect to.
#[derive(Debug, Clone, Default)]
pub struct Settings {
    /// A connection not stored as a profile.
    pub url: Option<String>,
    /// Its style; `None`: guessed.
    pub style: Option<Style>,
    /// Run the demo whatever else is configured.
    pub demo: bool,
    /// Its `Debug` never shows the secret.
    pub token: Option<Token>,
    /// Channels to subscribe to (URL mode).
    pub channels: Vec<String>,
    /// The dashboard to open on; the UI ignores names it does not know.
    pub tab: Option<String>,
    /// Start with the window hidden, in the tray.
    pub minimized: bool,
}

/// What a second launch asks of the running instance: the tab to show.
/// Its other arguments are the first instance's business (a second
/// `--url` is not started twice), and what cannot be parsed is ignored.
pub fn forwarded_tab(argv: &[String]) -> Option<String> {
    // By hand: clap would fill what the second launch left out from this
    // (the first) process's environment.
    let mut args = argv.iter().skip(1);
    let mut tab = None;
    while let Some(a) = args.next() {
        if a == "--" {
            break;
        } else if a == "--tab" {
            tab = args.next().cloned();
        } else if let Some(t) = a.strip_prefix("--tab=") {
            tab = Some(t.to_owned());
        }
    }
    tab.map(|t| t.trim().to_owned()).filter(|t| !t.is_empty())
}

impl Settings {
    /// From the command line and environment; exits with usage on bad
    /// arguments or `--help`.
    pub fn from_env() -> Settings {
        let token = std::env::var("RISKWATCH_TOKEN").ok();
        match Settings::from_parts(Args::parse(), token) {
            Ok(s) => s,
            Err(e) => {
                clap::Error::raw(clap::error::ErrorKind::InvalidValue, format!("{e}\n")).exit()
            }
        }
    }

    /// The `--url` connection, if one was given.
    pub fn cli_target(&self) -> Option<Target> {
        Some(Target {
            profile: profiles::CLI.into(),
            url: Some(self.url.clone()?),
            style: self.style,
            token: self.token.clone(),
            subscribe: self.channels.clone(),
        })
    }

    fn from_parts(args: Args, token: Option<String>) -> Result<Settings, String> {
        let style = match args.style.as_deref().map(str::trim) {
            None | Some("") | Some("auto") => None,
            Some(s) => Some(s.parse::<Style>().map_err(|e| e.to_string())?),
        };
        Ok(Settings {
            style,
            demo: args.demo,
            url: args.url.filter(|u| !u.trim().is_empty()),
            token: token.map(Token::new).filter(|t| !t.expose().is_empty()),
            channels: args
                .channels
                .into_iter()
                .map(|c| c.trim().to_owned())
                .filter(|c| !c.is_empty())
                .collect(),
            tab: args.tab.filter(|t| !t.trim().is_empty()),
            minimized: args.minimized,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(argv: &[&str], token: Option<&str>) -> Settings {
        let args = Args::try_parse_from(argv).expect("parses");
        Settings::from_parts(args, token.map(str::to_owned)).expect("valid")
    }

    #[test]
    fn a_second_launch_forwards_its_tab_and_nothing_else() {
        let argv = |a: &[&str]| a.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(
            forwarded_tab(&argv(&["riskwatch-desktop", "--tab", "inbox"])).as_deref(),
            Some("inbox")
        );
        assert_eq!(
            forwarded_tab(&argv(&["riskwatch-desktop", "--url", "ws://x", "--tab=hr"])).as_deref(),
            Some("hr")
        );
        assert_eq!(forwarded_tab(&argv(&["riskwatch-desktop"])), None);
        assert_eq!(forwarded_tab(&argv(&["riskwatch-desktop", "--tab"])), None);
        assert_eq!(
            forwarded_tab(&argv(&["riskwatch-desktop", "--tab", " "])),
            None
        );
        assert!(parse(&["riskwatch-desktop", "--minimized"], None).minimized);
        assert!(!parse(&["riskwatch-desktop"], None).minimized);
    }

    #[test]
    fn url_flag_and_token() {
        let s = parse(&["riskwatch-desktop", "--url", "wss://h/ws"], Some("t0k\n"));
        assert_eq!(s.url.as_deref(), Some("wss://h/ws"));
        assert_eq!(s.token.as_ref().map(Token::expose), Some("t0k"));
        assert!(!format!("{s:?}").contains("t0k"));
    }

    #[test]
    fn channels_repeat_or_split_on_commas() {
        let s = parse(
            &[
                "riskwatch-desktop",
                "--channel",
                "dashboard,market:SPY",
                "--channel",
                " sessions:demo ",
            ],
            None,
        );
        assert_eq!(s.channels, ["dashboard", "market:SPY", "sessions:demo"]);
    }

    #[test]
    fn style_and_demo() {
        let s = parse(
            &[
                "riskwatch-desktop",
                "--url",
                "ws://h/x",
                "--style",
                "HR",
                "--demo",
            ],
            None,
        );
        assert_eq!(s.style, Some(Style::Hr));
        assert!(s.demo);
        let t = s.cli_target().expect("a --url target");
        assert_eq!(t.profile, "cli");
        let args = Args::try_parse_from(["riskwatch-desktop", "--style", "fax"]).unwrap();
        assert!(Settings::from_parts(args, None).is_err());
        assert!(parse(&["riskwatch-desktop"], None).cli_target().is_none());
    }

    #[test]
    fn blank_values_mean_none() {
        let s = parse(&["riskwatch-desktop", "--url="], Some("  "));
        assert!(s.url.is_none());
        assert!(s.token.is_none());
    }
}

/// Where a connection goes.
#[derive(Debug, Clone)]
pub struct Target {
    /// The profile's name; also the events' source label, except for
    /// `--url` (labelled by its URL).
    pub profile: String,
    /// `None`: the built-in demo.
    pub url: Option<String>,
    pub style: Option<Style>,
    pub token: Option<Token>,
    pub subscribe: Vec<String>,
}

impl Target {
    pub fn demo() -> Target {
        Target {
            profile: profiles::DEMO.into(),
            url: None,
            style: None,
            token: None,
            subscribe: Vec::new(),
        }
    }
}
