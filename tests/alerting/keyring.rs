//! Tokens in a real Secret Service keyring: gnome-keyring-daemon on a
//! private session bus with fresh XDG directories, unlocked with a test
//! password. The library's `credentials` and the CLI's `login` / `logout`
//! round-trip a token; `secret-tool` sees it; no file under the config
//! directory and no output contains it.

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

use riskwatch::client::Token;
use riskwatch::credentials;

use crate::common::{Bus, Lines, Proc, WsServer, files_containing, msg, require, riskwatch};
use crate::{child, is_role};

const TOKEN: &str = "rw-tok-9d2f7c1e-keyring";

struct Keyring {
    bus: Bus,
    root: tempfile::TempDir,
    _daemon: Proc,
}

impl Keyring {
    fn start() -> Keyring {
        require("gnome-keyring-daemon");
        require("secret-tool");
        let bus = Bus::start();
        let root = tempfile::tempdir().unwrap();
        for d in ["data", "config", "home", "runtime"] {
            std::fs::create_dir(root.path().join(d)).unwrap();
        }
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(
                root.path().join("runtime"),
                std::fs::Permissions::from_mode(0o700),
            )
            .unwrap();
        }
        let mut cmd = Command::new("gnome-keyring-daemon");
        cmd.args(["--foreground", "--unlock", "--components=secrets"])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        session_env(&mut cmd, &bus.address, root.path());
        let mut daemon = Proc::spawn("gnome-keyring-daemon", &mut cmd);
        {
            // The unlock password on stdin, then EOF.
            let mut stdin = daemon.child.stdin.take().unwrap();
            stdin.write_all(b"test-password").unwrap();
        }
        bus.wait_for_name("org.freedesktop.secrets", Duration::from_secs(15));
        Keyring {
            bus,
            root,
            _daemon: daemon,
        }
    }

    fn dir(&self, name: &str) -> PathBuf {
        self.root.path().join(name)
    }

    /// The session environment for a process talking to this keyring.
    fn env(&self, cmd: &mut Command) {
        session_env(cmd, &self.bus.address, self.root.path());
    }

    /// `secret-tool ARGS` in this session: (success, stdout + stderr).
    fn secret_tool(&self, args: &[&str]) -> (bool, String) {
        let mut cmd = Command::new("secret-tool");
        cmd.args(args).stdin(Stdio::null());
        self.env(&mut cmd);
        let mut p = Proc::spawn(
            "secret-tool",
            cmd.stdout(Stdio::piped()).stderr(Stdio::piped()),
        );
        let out = Lines::new(p.child.stdout.take().unwrap());
        let err = Lines::new(p.child.stderr.take().unwrap());
        let ok = p.wait(Duration::from_secs(15)).success();
        std::thread::sleep(Duration::from_millis(50));
        (ok, format!("{}\n{}", out.text(), err.text()))
    }

    /// Runs riskwatch with `args` and `stdin`; (exit code, stdout, stderr).
    fn riskwatch(&self, args: &[&str], stdin: Option<&str>) -> (i32, String, String) {
        self.riskwatch_with(args, stdin, &[])
    }

    /// [`Keyring::riskwatch`] with `envs` set too.
    fn riskwatch_with(
        &self,
        args: &[&str],
        stdin: Option<&str>,
        envs: &[(&str, &str)],
    ) -> (i32, String, String) {
        let mut cmd = riskwatch();
        cmd.args(args)
            .stdin(if stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        self.env(&mut cmd);
        cmd.envs(envs.iter().copied());
        let mut p = Proc::spawn("riskwatch", &mut cmd);
        if let Some(s) = stdin {
            let mut w = p.child.stdin.take().unwrap();
            w.write_all(s.as_bytes()).unwrap();
        }
        let out = Lines::new(p.child.stdout.take().unwrap());
        let err = Lines::new(p.child.stderr.take().unwrap());
        let code = p.wait(Duration::from_secs(30)).code().unwrap_or(-1);
        std::thread::sleep(Duration::from_millis(50));
        (code, out.text(), err.text())
    }
}

/// Fresh XDG directories under `root` and the private bus.
fn session_env(cmd: &mut Command, bus: &str, root: &std::path::Path) {
    cmd.env("DBUS_SESSION_BUS_ADDRESS", bus)
        .env("XDG_DATA_HOME", root.join("data"))
        .env("XDG_CONFIG_HOME", root.join("config"))
        .env("XDG_RUNTIME_DIR", root.join("runtime"))
        .env("HOME", root.join("home"))
        .env_remove("RISKWATCH_TOKEN");
}

/// Role: set, get, replace, delete through the library; leaves the token of
/// profile `lib-profile` stored. Prints `CREDENTIALS OK`.
#[test]
fn child_credentials() {
    if !is_role("keyring::child_credentials") {
        return;
    }
    // libtest has printed "test … ... " without a newline: end that line.
    println!();
    let p = "lib-profile";
    assert!(credentials::get(p).unwrap().is_none());
    assert!(!credentials::delete(p).unwrap());
    credentials::set(p, &Token::new("first-token")).unwrap();
    assert_eq!(
        credentials::get(p).unwrap().unwrap().expose(),
        "first-token"
    );
    credentials::set(p, &Token::new(TOKEN)).unwrap();
    assert_eq!(credentials::get(p).unwrap().unwrap().expose(), TOKEN);
    credentials::set("other", &Token::new("other-token")).unwrap();
    assert!(credentials::delete("other").unwrap());
    assert!(credentials::get("other").unwrap().is_none());
    assert_eq!(credentials::get(p).unwrap().unwrap().expose(), TOKEN);
    println!("CREDENTIALS OK");
}

#[test]
fn credentials_round_trip_through_the_secret_service() {
    let k = Keyring::start();
    let mut c = child("keyring::child_credentials");
    k.env(&mut c);
    let mut p = Proc::spawn("credentials child", &mut c);
    let out = Lines::from_stdout(p.child.stdout.take().unwrap());
    let err = Lines::new(p.child.stderr.take().unwrap());
    let status = p.wait(Duration::from_secs(60));
    std::thread::sleep(Duration::from_millis(50));
    assert!(
        status.success() && out.text().contains("CREDENTIALS OK"),
        "stdout:\n{}\nstderr:\n{}",
        out.text(),
        err.text()
    );
    // secret-tool, another Secret Service client, sees the entry.
    let (ok, text) = k.secret_tool(&["lookup", "service", "riskwatch", "username", "lib-profile"]);
    assert!(ok, "{text}");
    assert!(text.contains(TOKEN), "{text}");
}

#[test]
fn login_watch_and_logout_with_the_cli() {
    let k = Keyring::start();
    let ws = WsServer::start(vec![msg::market_data()]);
    // login: the token from stdin (not a terminal), the URL into the prefs.
    let (code, out, err) = k.riskwatch(
        &["login", "desk-1", "--url", &ws.url()],
        Some(&format!("{TOKEN}\n")),
    );
    assert_eq!(code, 0, "stdout:\n{out}\nstderr:\n{err}");
    assert!(!out.contains(TOKEN) && !err.contains(TOKEN), "{out}\n{err}");
    let (ok, text) = k.secret_tool(&["search", "--all", "service", "riskwatch"]);
    assert!(ok, "{text}");
    assert!(text.contains("desk-1"), "{text}");
    assert!(text.contains(TOKEN), "{text}");
    let profile = k.dir("config").join("riskwatch/profiles/desk-1.toml");
    let saved = std::fs::read_to_string(&profile).unwrap();
    assert!(saved.contains(&ws.url()), "{saved}");
    assert_eq!(
        files_containing(&k.dir("config"), TOKEN),
        Vec::<PathBuf>::new(),
        "the token is in a file"
    );
    assert!(files_containing(&k.dir("home"), TOKEN).is_empty());
    // watch --profile: the URL from the profile, the token from the keyring.
    let (code, out, err) = k.riskwatch(
        &["watch", "--profile", "desk-1", "--json", "--count", "1"],
        None,
    );
    assert_eq!(code, 0, "stdout:\n{out}\nstderr:\n{err}");
    assert!(out.contains("\"type\":\"market_data\""), "{out}");
    assert!(out.contains("\"source\":\"desk-1\""), "{out}");
    assert!(!out.contains(TOKEN) && !err.contains(TOKEN), "{out}\n{err}");
    // The same through RISKWATCH_PROFILE, no --profile and no URL.
    let (code, out, err) = k.riskwatch_with(
        &["watch", "--json", "--count", "1"],
        None,
        &[("RISKWATCH_PROFILE", "desk-1")],
    );
    assert_eq!(code, 0, "stdout:\n{out}\nstderr:\n{err}");
    assert!(out.contains("\"source\":\"desk-1\""), "{out}");
    let seen = ws.seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 2, "{seen:?}");
    for s in &seen {
        assert_eq!(
            s.authorization.as_deref(),
            Some(format!("Bearer {TOKEN}").as_str())
        );
    }
    // logout removes it; a second logout says there was none.
    let (code, _, err) = k.riskwatch(&["logout", "desk-1"], None);
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("removed"), "{err}");
    let (code, _, err) = k.riskwatch(&["logout", "desk-1"], None);
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("no token"), "{err}");
    let (ok, text) = k.secret_tool(&["lookup", "service", "riskwatch", "username", "desk-1"]);
    assert!(!ok && !text.contains(TOKEN), "{text}");
}

#[test]
fn login_without_a_keyring_fails_clearly_and_keeps_the_token_to_itself() {
    require("dbus-daemon");
    let bus = Bus::start();
    let home = tempfile::tempdir().unwrap();
    let mut cmd = riskwatch();
    cmd.args(["login", "desk-2"])
        .env("DBUS_SESSION_BUS_ADDRESS", &bus.address)
        .env("HOME", home.path())
        .env("XDG_CONFIG_HOME", home.path().join("config"))
        .env("XDG_DATA_HOME", home.path().join("data"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut p = Proc::spawn("riskwatch login", &mut cmd);
    p.child
        .stdin
        .take()
        .unwrap()
        .write_all(TOKEN.as_bytes())
        .unwrap();
    let out = Lines::new(p.child.stdout.take().unwrap());
    let err = Lines::new(p.child.stderr.take().unwrap());
    let code = p.wait(Duration::from_secs(60)).code();
    std::thread::sleep(Duration::from_millis(50));
    assert_eq!(code, Some(1), "stderr:\n{}", err.text());
    assert!(err.text().contains("keyring"), "{}", err.text());
    assert!(!err.text().contains(TOKEN) && !out.text().contains(TOKEN));
    assert!(files_containing(home.path(), TOKEN).is_empty());
}
