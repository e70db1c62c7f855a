//! `riskwatch serve --config hub.toml`: the file's settings are used, an
//! option on the command line wins over the file, and a bad file (an
//! unknown key, a value of the wrong kind, the JWT secret) stops the hub
//! before it listens, with exit 2 and the file and key named.

use std::process::{Command, Stdio};
use std::time::Duration;

use super::support::*;

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Waits up to 10 s for `GET /healthz` on `port`; whether it answered.
async fn healthy(port: u16) -> bool {
    let http = http_client();
    let url = format!("http://127.0.0.1:{port}/healthz");
    for _ in 0..100 {
        if let Ok(r) = http.get(&url).send().await
            && r.status().is_success()
        {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    false
}

struct Hub(std::process::Child);

impl Drop for Hub {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn serve(args: &[&str]) -> Hub {
    Hub(Command::new(env!("CARGO_BIN_EXE_riskwatch"))
        .arg("serve")
        .args(args)
        .env_remove("RISKWATCH_JWT_SECRET")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("riskwatch serve"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_config_file_sets_what_the_command_line_does_not() {
    let dir = tempfile::tempdir().unwrap();
    let (from_file, from_flag) = (free_port(), free_port());
    let file = dir.path().join("hub.toml");
    std::fs::write(
        &file,
        format!("# the hub\nlisten = \"127.0.0.1:{from_file}\"\ninsecure-dev = true\nhistory-len = 50\nheartbeat = 20\n"),
    )
    .unwrap();
    let path = file.to_str().unwrap();

    let hub = serve(&["--config", path]);
    assert!(
        healthy(from_file).await,
        "the hub did not listen where the file says"
    );
    drop(hub);

    let hub = serve(&[
        "--config",
        path,
        "--listen",
        &format!("127.0.0.1:{from_flag}"),
    ]);
    assert!(
        healthy(from_flag).await,
        "--listen did not win over the file"
    );
    assert!(
        std::net::TcpStream::connect(("127.0.0.1", from_file)).is_err(),
        "the hub listened at the file's address as well"
    );
    drop(hub);
}

#[test]
fn a_bad_config_file_stops_the_hub_with_exit_2_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    for (text, says) in [
        ("listne = \"127.0.0.1:1\"\n", "listne: unknown key"),
        ("demo = \"yes\"\n", "demo: expected true or false"),
        (
            "history-len = true\n",
            "history-len: expected a string or a number",
        ),
        (
            "jwt-secret = \"0123456789abcdef0123456789abcdef\"\n",
            "RISKWATCH_JWT_SECRET",
        ),
        ("listen = \n", "hub.toml:1:"),
    ] {
        let file = dir.path().join("hub.toml");
        std::fs::write(&file, text).unwrap();
        let out = Command::new(env!("CARGO_BIN_EXE_riskwatch"))
            .args(["serve", "--config"])
            .arg(&file)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{text}: {err}");
        assert!(err.contains(says), "{text}: {err}");
        assert_eq!(err.lines().count(), 1, "{text}: {err}");
        assert!(!err.contains("0123456789abcdef"), "the secret was printed");
    }
}

/// The example settings in docs/deploy/hub.toml start a hub (with the
/// secret from the environment, as the unit's EnvironmentFile gives it, and
/// a test's own address and data directory on the command line).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_documented_example_config_starts_a_hub() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let example = concat!(env!("CARGO_MANIFEST_DIR"), "/docs/deploy/hub.toml");
    let hub = Hub(Command::new(env!("CARGO_BIN_EXE_riskwatch"))
        .args(["serve", "--config", example, "--listen"])
        .arg(format!("127.0.0.1:{port}"))
        .arg("--data-dir")
        .arg(dir.path())
        .env(
            "RISKWATCH_JWT_SECRET",
            "an-example-secret-of-at-least-32-bytes!",
        )
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap());
    assert!(
        healthy(port).await,
        "the example config did not start a hub"
    );
    drop(hub);
}

/// The example unit in docs/deploy is one systemd accepts
/// (`systemd-analyze verify`, with this build's binary in ExecStart).
#[test]
fn the_documented_systemd_unit_verifies() {
    let unit = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/docs/deploy/riskwatch-hub.service"
    ))
    .unwrap();
    assert!(
        unit.contains("ExecStart=/usr/local/bin/riskwatch serve --config /etc/riskwatch/hub.toml")
    );
    let dir = tempfile::tempdir().unwrap();
    let here = unit
        .replace("/usr/local/bin/riskwatch", env!("CARGO_BIN_EXE_riskwatch"))
        // The secret's file is the operator's to create.
        .replace("EnvironmentFile=/", "EnvironmentFile=-/");
    let path = dir.path().join("riskwatch-hub.service");
    std::fs::write(&path, here).unwrap();
    let out = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&path)
        .output()
        .expect("systemd-analyze (scripts/setup.sh installs systemd)");
    assert!(
        out.status.success() && out.stderr.is_empty(),
        "systemd-analyze verify: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}
