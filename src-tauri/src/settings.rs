//! Where the window connects: `--url URL` or `RISKWATCH_URL`, else the
//! built-in demo server; the token from `RISKWATCH_TOKEN` only, so it never
//! shows in a process list. Nothing here is logged or sent to the webview.

use clap::Parser;
use riskwatch::client::Token;

/// riskwatch desktop: live connection state and the latest events of one
/// server. With no URL it plays the built-in demo.
#[derive(Debug, Parser)]
#[command(name = "riskwatch-desktop", version)]
struct Args {
    /// The ws:// or wss:// URL to watch (the token goes in RISKWATCH_TOKEN).
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
    /// The dashboard to open on: trading, hr, merchant, compliance, inbox
    /// or events.
    #[arg(long, value_name = "TAB", env = "RISKWATCH_TAB")]
    tab: Option<String>,
}

/// What the app was asked to connect to.
#[derive(Debug, Clone, Default)]
pub struct Settings {
    /// `None`: demo mode.
    pub url: Option<String>,
    /// Its `Debug` never shows the secret.
    pub token: Option<Token>,
    /// Channels to subscribe to (URL mode).
    pub channels: Vec<String>,
    /// The dashboard to open on; the UI ignores names it does not know.
    pub tab: Option<String>,
}

impl Settings {
    /// From the command line and environment; exits with usage on bad
    /// arguments or `--help`.
    pub fn from_env() -> Settings {
        let token = std::env::var("RISKWATCH_TOKEN").ok();
        Settings::from_parts(Args::parse(), token)
    }

    fn from_parts(args: Args, token: Option<String>) -> Settings {
        Settings {
            url: args.url.filter(|u| !u.trim().is_empty()),
            token: token.map(Token::new).filter(|t| !t.expose().is_empty()),
            channels: args
                .channels
                .into_iter()
                .map(|c| c.trim().to_owned())
                .filter(|c| !c.is_empty())
                .collect(),
            tab: args.tab.filter(|t| !t.trim().is_empty()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(argv: &[&str], token: Option<&str>) -> Settings {
        let args = Args::try_parse_from(argv).expect("parses");
        Settings::from_parts(args, token.map(str::to_owned))
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
    fn blank_values_mean_none() {
        let s = parse(&["riskwatch-desktop", "--url="], Some("  "));
        assert!(s.url.is_none());
        assert!(s.token.is_none());
    }
}
