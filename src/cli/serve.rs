//! `riskwatch serve` (the hub, optionally with the demo simulators) and
//! `riskwatch token` (mint development tokens).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use riskwatch::engine::prefs::PrefsError;
use riskwatch::server::jwks::Jwks;
use riskwatch::server::tls::Tls;
use riskwatch::server::{Auth, Claims, HubLimits, Limits, RedisBroker, Server, ServerConfig};
use riskwatch::sim::desk::{self, DeskOptions};
use tokio_util::sync::CancellationToken;

use super::exit;

#[derive(Debug, Clone, Args)]
#[command(before_help = "Examples:
  riskwatch serve --demo                      # 127.0.0.1:8765, every backend simulated, no auth
  RISKWATCH_JWT_SECRET=... riskwatch serve --listen 0.0.0.0:8080 --data-dir /var/lib/riskwatch
  riskwatch serve --config /etc/riskwatch/hub.toml   # every option as a key; options typed here win
  riskwatch serve --jwks-url https://idp.example/jwks.json --redis redis://127.0.0.1/")]
pub struct ServeArgs {
    /// A TOML file of settings, one key per option of this command by its
    /// long name (listen = "0.0.0.0:8765", history-len = 5000, demo =
    /// true, ...). Options given on the command line win. The JWT secret
    /// is never read from it: use RISKWATCH_JWT_SECRET.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8765")]
    listen: SocketAddr,
    /// Set SO_REUSEPORT on the listening socket, so that several hub
    /// processes can listen on the same address and the kernel spreads new
    /// connections over them (e.g. to hold more connections than one
    /// process's open-file limit allows). Without --redis each hub has its
    /// own channels: use --redis for publishing across them.
    #[arg(long)]
    reuse_port: bool,
    /// Serve https:// and wss:// with this PEM certificate chain (leaf
    /// first); needs --tls-key. Lets `--listen 0.0.0.0:…` face clients
    /// without a TLS proxy.
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// The PEM private key of --tls-cert (PKCS#8, PKCS#1 or SEC1).
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// Run the simulators (trading, HR, merchant risk, compliance,
    /// dashboard). Without a JWT option this implies --insecure-dev.
    #[arg(long)]
    demo: bool,
    /// Accept connections without a token (loopback addresses only).
    #[arg(long)]
    insecure_dev: bool,
    /// HS256 secret for verifying tokens (at least 32 bytes). Prefer the
    /// environment variable.
    #[arg(
        long,
        env = "RISKWATCH_JWT_SECRET",
        hide_env_values = true,
        conflicts_with = "jwt_public_key"
    )]
    jwt_secret: Option<String>,
    /// RS256 or ES256 public key (PEM) for verifying tokens.
    #[arg(long, value_name = "FILE", conflicts_with = "jwks_url")]
    jwt_public_key: Option<PathBuf>,
    /// Verify tokens with an identity provider's rotating keys: its JWKS
    /// URL (https://; http:// on loopback only). Fetched at start, every
    /// 10 minutes, and when a token names an unknown key.
    #[arg(long, value_name = "URL", conflicts_with = "jwt_secret")]
    jwks_url: Option<String>,
    /// An extra CA certificate (PEM) to trust for --jwks-url.
    #[arg(long, value_name = "FILE", requires = "jwks_url")]
    jwks_ca: Option<PathBuf>,
    /// Accept only tokens issued by this `iss`.
    #[arg(long, value_name = "ISS")]
    jwt_issuer: Option<String>,
    /// Accept only tokens meant for this `aud` (without it, `aud` is not
    /// checked).
    #[arg(long, value_name = "AUD")]
    jwt_audience: Option<String>,
    /// Keep channel history on disk here, so resume works across restarts.
    #[arg(long, value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// Share channels, sequences and history with other hubs through this
    /// Redis (redis://host:port/db). History then lives in Redis.
    #[arg(long, value_name = "URL")]
    redis: Option<String>,
    /// Ordinary (info, warning) messages kept per channel.
    #[arg(long, default_value_t = 1000)]
    history_len: usize,
    /// Seconds ordinary messages stay in history.
    #[arg(long, default_value_t = 600)]
    history_secs: u64,
    /// Seconds critical and emergency messages stay in history (never less
    /// than --history-secs).
    #[arg(long, default_value_t = 86_400)]
    critical_history_secs: u64,
    /// Critical and emergency messages kept per channel, a memory bound
    /// (never less than --history-len).
    #[arg(long, default_value_t = 50_000)]
    critical_history_len: usize,
    /// Messages kept per `user:` channel for offline users, whatever their age.
    #[arg(long, default_value_t = 100)]
    offline_keep: usize,
    /// Inbound messages per second per connection.
    #[arg(long, default_value_t = 20)]
    rate: u32,
    /// Connections per user.
    #[arg(long, default_value_t = 20)]
    max_conns_per_user: usize,
    /// TCP connections held from one address (0: no limit). Behind a
    /// reverse proxy every client has the proxy's address: raise it or let
    /// the proxy limit.
    #[arg(long, default_value_t = 4096)]
    max_conns_per_ip: usize,
    /// TCP connections held in all (0: no limit).
    #[arg(long, default_value_t = 100_000)]
    max_conns: usize,
    /// Seconds between the dashboard endpoint's pushes of the latest
    /// dashboard_update (seed 001's hub pushes every 30 s; 0: only on
    /// connect and refresh).
    #[arg(long, value_name = "SECS", default_value_t = 30)]
    dashboard_every: u64,
    /// Seconds between the hub's pings.
    #[arg(long, default_value_t = 30)]
    heartbeat: u64,
    /// Milliseconds after events went out before a ping proves them
    /// delivered (what is unproven when a connection drops is replayed to
    /// the user's next one): longer costs fewer pings, replays more.
    #[arg(long, value_name = "MS", default_value_t = 1000,
          value_parser = clap::value_parser!(u64).range(100..=300_000))]
    prove_every_ms: u64,
    /// Demo speed factor (0.5 = twice as fast).
    #[arg(long, default_value_t = 1.0)]
    demo_speed: f64,
    /// Demo simulator seed.
    #[arg(long, default_value_t = 42)]
    seed: u64,
}

pub async fn serve(a: ServeArgs) -> anyhow::Result<u8> {
    let mut auth = match (&a.jwt_secret, &a.jwt_public_key, &a.jwks_url) {
        (Some(s), _, _) => Auth::hs256(s.as_bytes()).context("--jwt-secret")?,
        (None, Some(p), _) => Auth::public_key(p).context("--jwt-public-key")?,
        (None, None, Some(url)) => Auth::jwks(
            Jwks::fetch(url, a.jwks_ca.as_deref())
                .await
                .context("--jwks-url")?,
        ),
        (None, None, None) if a.insecure_dev || a.demo => Auth::Insecure,
        (None, None, None) => {
            eprintln!(
                "riskwatch: choose how clients authenticate: --jwt-secret, --jwt-public-key, \
                 --jwks-url, or --insecure-dev (loopback only)"
            );
            return Ok(exit::USAGE);
        }
    };
    if let Some(iss) = &a.jwt_issuer {
        auth = auth.issuer(iss);
    }
    if let Some(aud) = &a.jwt_audience {
        auth = auth.audience(aud);
    }
    if auth.is_insecure() && !a.listen.ip().is_loopback() {
        eprintln!(
            "riskwatch: --insecure-dev (implied by --demo without a JWT option) is only allowed on a loopback address, not {}",
            a.listen
        );
        return Ok(exit::USAGE);
    }
    let history = HubLimits::default()
        .history_len(a.history_len.max(1))
        .history_age(Duration::from_secs(a.history_secs.max(1)))
        .offline_keep(a.offline_keep)
        .critical_len(a.critical_history_len)
        .critical_age(Duration::from_secs(a.critical_history_secs));
    let limits = Limits::default()
        .rate(a.rate.max(1), a.rate.max(1) * 2)
        .max_conns_per_user(a.max_conns_per_user.max(1))
        .max_conns_per_ip(a.max_conns_per_ip)
        .max_conns(a.max_conns)
        .heartbeat(Duration::from_secs(a.heartbeat.max(1)))
        .prove_every(Duration::from_millis(a.prove_every_ms))
        .dashboard_every(Duration::from_secs(a.dashboard_every));
    let redis = match &a.redis {
        Some(url) => {
            let broker = RedisBroker::connect(url, history.clone())
                .await
                .context("cannot connect to Redis")?;
            eprintln!("riskwatch: sharing channels through Redis");
            Some(std::sync::Arc::new(broker))
        }
        None => None,
    };
    let tls = match (&a.tls_cert, &a.tls_key) {
        (Some(cert), Some(key)) => Some(Tls::from_pem_files(cert, key)?),
        _ => None,
    };
    let scheme = if tls.is_some() { "wss" } else { "ws" };
    let cfg = ServerConfig::new(auth)
        .limits(limits)
        .history(history)
        .data_dir(a.data_dir.clone())
        .redis(redis)
        .tls(tls);
    // SO_REUSEADDR, so a restarted hub gets its port back at once while the
    // old connections linger in TIME_WAIT.
    let socket = if a.listen.is_ipv4() {
        tokio::net::TcpSocket::new_v4()
    } else {
        tokio::net::TcpSocket::new_v6()
    }?;
    socket.set_reuseaddr(true)?;
    if a.reuse_port {
        // Before bind: every socket sharing the port must set it.
        #[cfg(unix)]
        socket
            .set_reuseport(true)
            .context("cannot set SO_REUSEPORT")?;
        // Windows has no SO_REUSEPORT (its SO_REUSEADDR lets a second
        // process steal the port, not share it): one hub per port there.
        #[cfg(not(unix))]
        anyhow::bail!("--reuse-port needs SO_REUSEPORT, which this system does not have");
    }
    let listener = socket
        .bind(a.listen)
        .and_then(|()| socket.listen(4096))
        .with_context(|| format!("cannot listen on {}", a.listen))?;
    let server = Server::start(listener, cfg)?;
    eprintln!(
        "riskwatch: hub listening on {} ({scheme}://{}/api/v1/stream)",
        server.addr(),
        server.addr()
    );
    let stop = CancellationToken::new();
    if a.demo {
        let opts = DeskOptions::default().seed(a.seed).speed(a.demo_speed);
        tokio::spawn(desk::run(
            std::sync::Arc::clone(server.hub()),
            opts,
            stop.clone(),
        ));
        eprintln!(
            "riskwatch: demo simulators running (channels: {})",
            desk::channels().join(", ")
        );
    }
    let token = server.shutdown_token();
    // SIGTERM (systemd, containers) stops exactly as Ctrl-C does: every
    // connection gets 1001 and history is flushed.
    tokio::select! {
        _ = super::stop_signal() => {}
        _ = token.cancelled() => {}
    }
    eprintln!("riskwatch: shutting down");
    stop.cancel();
    server.shutdown().await;
    Ok(exit::OK)
}

#[derive(Debug, Clone, Args)]
#[command(before_help = "Examples:
  RISKWATCH_JWT_SECRET=... riskwatch token --user u1 --channel 'user:u1' --channel 'sessions:*'
  RISKWATCH_JWT_SECRET=... riskwatch token --user ops --channel '*' --publish --ttl 3600")]
pub struct TokenArgs {
    /// HS256 secret (the hub's --jwt-secret). Prefer the environment variable.
    #[arg(long, env = "RISKWATCH_JWT_SECRET", hide_env_values = true)]
    secret: String,
    /// The user (`sub`).
    #[arg(long)]
    user: String,
    /// Role, e.g. trader, hr_manager, msp_admin, client_user.
    #[arg(long)]
    role: Option<String>,
    /// A channel or pattern the user may read (repeatable), e.g. user:u1,
    /// sessions:*, department:dept-eng, msp:m1/*.
    #[arg(long = "channel")]
    channels: Vec<String>,
    /// Allow publishing.
    #[arg(long)]
    publish: bool,
    #[arg(long)]
    msp: Option<String>,
    #[arg(long)]
    client: Option<String>,
    /// Lifetime in seconds.
    #[arg(long, default_value_t = 86_400)]
    ttl: u64,
}

pub fn token(a: TokenArgs) -> anyhow::Result<u8> {
    if a.secret.len() < 32 {
        eprintln!("riskwatch: the secret must be at least 32 bytes");
        return Ok(exit::USAGE);
    }
    let claims = Claims {
        sub: a.user,
        role: a.role,
        channels: a.channels,
        publish: a.publish,
        msp: a.msp,
        client: a.client,
        exp: (chrono::Utc::now().timestamp().max(0) as u64).saturating_add(a.ttl),
        iat: Some(chrono::Utc::now().timestamp().max(0) as u64),
    };
    let t = riskwatch::server::auth::mint_hs256(a.secret.as_bytes(), &claims)?;
    println!("{t}");
    Ok(exit::OK)
}

/// The `serve` options a `--config` file sets, as command-line arguments
/// that go before the user's own: with the subcommand's
/// `args_override_self`, what the user types last wins. A bad file, an
/// unknown key, a value of the wrong kind or the JWT secret is an error
/// naming the file and the key.
pub fn config_args(path: &std::path::Path, serve: &clap::Command) -> anyhow::Result<Vec<String>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let table: toml::Table = toml::from_str(&text)
        .map_err(|e| PrefsError::from_toml(&text, &path.display().to_string(), &e))?;
    let allowed = |a: &&clap::Arg| {
        a.get_long()
            .is_some_and(|l| !matches!(l, "config" | "help" | "jwt-secret"))
    };
    let mut args = Vec::new();
    for (key, value) in &table {
        let here = format!("{}: {key}", path.display());
        if key == "jwt-secret" {
            anyhow::bail!(
                "{here}: the JWT secret is not read from a file; set RISKWATCH_JWT_SECRET (systemd: EnvironmentFile= or LoadCredential=)"
            );
        }
        let Some(arg) = serve
            .get_arguments()
            .filter(allowed)
            .find(|a| a.get_long() == Some(key.as_str()))
        else {
            let keys: Vec<&str> = serve
                .get_arguments()
                .filter(allowed)
                .filter_map(|a| a.get_long())
                .collect();
            anyhow::bail!(
                "{here}: unknown key (the keys are serve's options: {})",
                keys.join(", ")
            );
        };
        let flag = !arg.get_action().takes_values();
        match value {
            toml::Value::Boolean(on) if flag => {
                if *on {
                    args.push(format!("--{key}"));
                }
            }
            toml::Value::String(s) if !flag => args.push(format!("--{key}={s}")),
            toml::Value::Integer(n) if !flag => args.push(format!("--{key}={n}")),
            toml::Value::Float(f) if !flag => args.push(format!("--{key}={f}")),
            _ if flag => anyhow::bail!("{here}: expected true or false"),
            _ => anyhow::bail!("{here}: expected a string or a number"),
        }
    }
    Ok(args)
}
