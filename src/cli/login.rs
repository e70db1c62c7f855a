//! `riskwatch login PROFILE` and `riskwatch logout PROFILE`: a profile's
//! token into and out of the OS keyring (service `riskwatch`, user = the
//! profile). The token is read without echo from the terminal, or from
//! standard input when that is not a terminal; it is never printed, logged
//! or written to a file.

use std::io::{IsTerminal, Read};

use clap::Args;
use riskwatch::client::Token;
use riskwatch::credentials;
use riskwatch::profile::{ProfileStore, ServerUrl, check_profile_name};

use super::exit;

#[derive(Debug, Clone, Args)]
#[command(before_help = "Examples:
  riskwatch login trading-desk --url wss://hub.example/ws    # asks for the token, no echo
  pass show riskwatch/desk | riskwatch login trading-desk    # or from standard input")]
pub struct LoginArgs {
    /// The profile name (letters, digits, '-', '_', '.').
    pub profile: String,
    /// Also remember the server's WebSocket URL in the profile's
    /// preferences, so `riskwatch watch --profile PROFILE` needs no URL.
    #[arg(long, value_name = "URL")]
    pub url: Option<String>,
}

#[derive(Debug, Clone, Args)]
#[command(before_help = "Example:
  riskwatch logout trading-desk")]
pub struct LogoutArgs {
    /// The profile whose token is removed from the OS keyring.
    pub profile: String,
}

fn read_token(profile: &str) -> anyhow::Result<Token> {
    let text = if std::io::stdin().is_terminal() {
        rpassword::prompt_password(format!("Token for profile {profile}: "))?
    } else {
        let mut s = String::new();
        std::io::stdin().read_to_string(&mut s)?;
        s
    };
    Ok(Token::new(text))
}

pub async fn login(args: LoginArgs) -> anyhow::Result<u8> {
    if let Err(e) = check_profile_name(&args.profile) {
        eprintln!("riskwatch: {e}");
        return Ok(exit::USAGE);
    }
    let url = match args.url.map(ServerUrl::try_from).transpose() {
        Ok(u) => u,
        Err(e) => {
            eprintln!("riskwatch: {e}");
            return Ok(exit::USAGE);
        }
    };
    let profile = args.profile.clone();
    let token = tokio::task::spawn_blocking(move || read_token(&profile)).await??;
    if token.expose().is_empty() {
        eprintln!("riskwatch: no token given (type it at the prompt or pipe it on stdin)");
        return Ok(exit::USAGE);
    }
    let profile = args.profile.clone();
    match tokio::task::spawn_blocking(move || credentials::set(&profile, &token)).await? {
        Ok(()) => {}
        Err(e) => {
            eprintln!("riskwatch: cannot store the token: {e}");
            return Ok(exit::FAILURE);
        }
    }
    if let Some(url) = url {
        let store = ProfileStore::default_location()?;
        let mut p = store.load(&args.profile)?;
        p.connection.url = Some(url);
        store.save(&args.profile, &p)?;
        eprintln!(
            "riskwatch: url saved in {}",
            store.path(&args.profile)?.display()
        );
    }
    eprintln!(
        "riskwatch: token for profile {} stored in the OS keyring (service {})",
        args.profile,
        credentials::SERVICE
    );
    Ok(exit::OK)
}

pub async fn logout(args: LogoutArgs) -> anyhow::Result<u8> {
    if let Err(e) = check_profile_name(&args.profile) {
        eprintln!("riskwatch: {e}");
        return Ok(exit::USAGE);
    }
    let profile = args.profile.clone();
    match tokio::task::spawn_blocking(move || credentials::delete(&profile)).await? {
        Ok(true) => {
            eprintln!(
                "riskwatch: token for profile {} removed from the OS keyring",
                args.profile
            );
            Ok(exit::OK)
        }
        Ok(false) => {
            eprintln!(
                "riskwatch: no token was stored for profile {}",
                args.profile
            );
            Ok(exit::OK)
        }
        Err(e) => {
            eprintln!("riskwatch: cannot remove the token: {e}");
            Ok(exit::FAILURE)
        }
    }
}

/// The token stored for `profile` in the OS keyring, read off the async
/// runtime. None stored, or the keyring unreachable, is said on stderr
/// (`doing`: what goes on without one, e.g. "connecting") and is not an
/// error: the server decides whether it needs a token.
pub async fn stored_token(profile: &str, doing: &str) -> anyhow::Result<Option<String>> {
    let name = profile.to_owned();
    Ok(
        match tokio::task::spawn_blocking(move || credentials::get(&name)).await? {
            Ok(Some(t)) => Some(t.expose().to_owned()),
            Ok(None) => {
                eprintln!(
                    "riskwatch: no token stored for profile {profile} (riskwatch login {profile}); {doing} without one"
                );
                None
            }
            Err(e) => {
                eprintln!("riskwatch: {e}; {doing} without a token");
                None
            }
        },
    )
}
