//! `riskwatch watch` and `riskwatch demo`: build a client from the
//! arguments, print what it delivers, stop on `--count`, Ctrl-C or a
//! terminal state, and choose the exit code.

use std::time::Duration;

use anyhow::Context;
use riskwatch::client::{
    AuthMode, BackoffConfig, Client, ClientConfig, ClientError, ClientUpdate, ConnState, PollMode,
    StopReason, Token,
};
use riskwatch::sim::demo::DemoHub;
use riskwatch::sim::desk::DeskOptions;

use super::alerting::{self, Alerting, Signals};
use super::exec::Hooks;
use super::output::{self, Printer};
use super::since;
use super::{AuthArg, DemoArgs, OutputArgs, WatchArgs, exit};

fn secs(name: &str, v: f64) -> anyhow::Result<Duration> {
    Duration::try_from_secs_f64(v)
        .ok()
        .filter(|d| !d.is_zero())
        .with_context(|| format!("--{name} must be a positive number of seconds, not {v}"))
}

fn config(a: &WatchArgs, url: String) -> anyhow::Result<ClientConfig> {
    let poll = match (&a.poll_url, a.no_poll) {
        (_, true) => PollMode::Off,
        (Some(u), false) => PollMode::Url(u.clone()),
        (None, false) => PollMode::Auto,
    };
    let auth = match a.auth {
        AuthArg::Auto => AuthMode::Auto,
        AuthArg::Header => AuthMode::Header,
        AuthArg::Query => AuthMode::Query,
        AuthArg::Both => AuthMode::Both,
    };
    let mut cfg = ClientConfig::new(url)
        .token(
            a.token
                .as_deref()
                .map(Token::new)
                .filter(|t| !t.expose().is_empty()),
        )
        .auth(auth)
        .style(a.style)
        .heartbeat(secs("heartbeat", a.heartbeat)?)
        .dead_after(secs("dead-after", a.dead_after)?)
        .max_message_size(a.max_message_size)
        .poll(poll)
        .poll_interval(secs("poll-interval", a.poll_interval)?)
        .connect_timeout(secs("connect-timeout", a.connect_timeout)?)
        .extra_ca(a.ca_file.clone())
        .backoff(
            BackoffConfig::default()
                .initial(secs("backoff-initial", a.backoff_initial)?)
                .max(secs("backoff-max", a.backoff_max)?),
        );
    if let Some(l) = &a.label {
        cfg = cfg.label(l.clone());
    }
    for s in &a.subscribe {
        cfg = cfg.subscribe(s.clone());
    }
    if let Some(s) = &a.since {
        let replay =
            since::replay(s, chrono::Utc::now()).with_context(|| format!("--since {s}"))?;
        cfg = cfg.replay(Some(replay));
    }
    Ok(cfg)
}

pub async fn watch(mut args: WatchArgs) -> anyhow::Result<u8> {
    if args.alert.profile.is_none() {
        args.alert.profile = std::env::var("RISKWATCH_PROFILE")
            .ok()
            .filter(|p| !p.is_empty());
    }
    // Preferences first: a profile may supply the URL and style.
    let loaded = if args.alert.active() {
        match alerting::load_profile(&args.alert) {
            Ok(l) => Some(l),
            Err(e) => {
                eprintln!("riskwatch: {e:#}");
                return Ok(exit::USAGE);
            }
        }
    } else {
        None
    };
    if let Some(profile) = args.alert.profile.clone() {
        if let Some(p) = &loaded {
            let c = &p.connection;
            if args.url.is_none() {
                args.url = c.url.as_ref().map(|u| u.as_str().to_owned());
            }
            if args.style.is_none() {
                args.style = c.style;
            }
            if args.subscribe.is_empty() {
                args.subscribe = c.subscribe.clone();
            }
        }
        if args.label.is_none() {
            args.label = Some(profile.clone());
        }
        if args.token.is_none() {
            args.token = super::login::stored_token(&profile, "connecting").await?;
        }
    }
    let Some(url) = args.url.clone() else {
        eprintln!("riskwatch: give a URL, or a --profile whose preferences have a url");
        return Ok(exit::USAGE);
    };
    let cfg = match config(&args, url) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("riskwatch: {e:#}");
            return Ok(exit::USAGE);
        }
    };
    let alerting = match Alerting::start(&args.alert, loaded) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("riskwatch: {e:#}");
            return Ok(exit::USAGE);
        }
    };
    let hooks = match &args.exec {
        Some(cmd) => match Duration::try_from_secs_f64(args.exec_timeout) {
            Ok(t) if !t.is_zero() && args.exec_jobs > 0 => {
                Some(Hooks::new(cmd.clone(), args.exec_jobs, t))
            }
            _ => {
                eprintln!("riskwatch: --exec-timeout and --exec-jobs must be above 0");
                return Ok(exit::USAGE);
            }
        },
        None => None,
    };
    run(cfg, &args.out, alerting, hooks).await
}

pub async fn demo(args: DemoArgs) -> anyhow::Result<u8> {
    let alerting = match Alerting::start(&args.alert, None) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("riskwatch: {e:#}");
            return Ok(exit::USAGE);
        }
    };
    // --tick-ms is the trading tick; the desk's other ticks follow it.
    let speed = args.tick_ms.max(1) as f64 / DeskOptions::default().trading_tick.as_millis() as f64;
    let hub = DemoHub::start(DeskOptions::default().seed(args.seed).speed(speed))
        .context("cannot start the demo hub on 127.0.0.1")?;
    eprintln!("riskwatch: demo hub on {}", hub.url());
    let mut cfg = ClientConfig::new(hub.url()).label("demo");
    for channel in hub.channels() {
        cfg = cfg.subscribe(channel);
    }
    let code = run(cfg, &args.out, alerting, None).await;
    hub.shutdown().await;
    code
}

async fn run(
    cfg: ClientConfig,
    out: &OutputArgs,
    alerting: Option<(Alerting, Signals)>,
    mut hooks: Option<Hooks>,
) -> anyhow::Result<u8> {
    let (mut alerting, mut signals) = match alerting {
        Some((a, s)) => (Some(a), Some(s)),
        None => (None, None),
    };
    let mut client = match Client::connect(cfg) {
        Ok(c) => c,
        Err(
            e @ (ClientError::BadUrl { .. } | ClientError::Invalid(_) | ClientError::CaFile { .. }),
        ) => {
            eprintln!("riskwatch: {e}");
            return Ok(exit::USAGE);
        }
        Err(e) => return Err(e.into()),
    };
    let source = client.label().to_string();
    let mut printer = Printer::new(out.json);
    let mut seen: u64 = 0;
    let mut announced = false;
    if out.count == Some(0) {
        return Ok(exit::OK);
    }
    let stop = super::stop_signal();
    tokio::pin!(stop);
    loop {
        let update = tokio::select! {
            code = &mut stop => {
                close(&mut client).await;
                return Ok(code);
            }
            s = alerting::next_signal(&mut signals) => {
                if let Some(a) = alerting.as_mut() {
                    a.on_signal(s);
                }
                continue;
            }
            u = client.next() => u,
        };
        let Some(update) = update else {
            return Ok(exit::FAILURE);
        };
        match update {
            ClientUpdate::Event(e) => {
                let decision = alerting.as_mut().map(|a| a.on_event(&e));
                if decision.as_ref().is_some_and(|d| !d.shown()) {
                    // Filtered out by the preferences: not shown, not stored.
                    continue;
                }
                if printer.event_with(&e, decision.as_ref()).is_err() {
                    // stdout closed (e.g. piped into `head`): we are done.
                    close(&mut client).await;
                    return Ok(exit::OK);
                }
                if let Some(h) = hooks.as_mut() {
                    h.run(&e, decision.as_ref());
                }
                seen += 1;
                if out.count.is_some_and(|n| seen >= n) {
                    close(&mut client).await;
                    // The last events' commands run to their end.
                    if let Some(h) = hooks.take() {
                        h.finish().await;
                    }
                    return Ok(exit::OK);
                }
            }
            ClientUpdate::Notice(n) => {
                if let Some(a) = alerting.as_mut() {
                    a.on_notice(client.label(), &n);
                }
                if printer.notice(&source, &n).is_err() {
                    close(&mut client).await;
                    return Ok(exit::OK);
                }
            }
            ClientUpdate::State(s) => {
                // Each reconnect attempt already has its line; "connecting"
                // is only worth saying the first time.
                if s != ConnState::Connecting || !announced {
                    output::state(&source, &s);
                    announced = true;
                }
                if let ConnState::Stopped { reason } = s {
                    return Ok(match reason {
                        StopReason::AuthRefused(_) => exit::AUTH_REFUSED,
                        StopReason::Tls(_) => exit::TLS,
                        StopReason::Shutdown | StopReason::ReceiverGone => exit::OK,
                    });
                }
            }
        }
    }
}

/// Closes the connection with 1000 and waits (briefly) until the client has
/// said goodbye, so the server sees a clean close rather than a dead peer.
async fn close(client: &mut Client) {
    client.shutdown();
    let _ = tokio::time::timeout(Duration::from_secs(2), async {
        while let Some(u) = client.next().await {
            if matches!(u, ClientUpdate::State(ConnState::Stopped { .. })) {
                return;
            }
        }
    })
    .await;
}
