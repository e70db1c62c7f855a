//! Alerting integration tests, one binary: the inbox across restarts and
//! `kill -9`, real OS notifications over a private D-Bus session bus, and
//! tokens in a real Secret Service keyring (gnome-keyring-daemon).
//!
//! Some tests re-run this binary as a child process with one test selected
//! and `RISKWATCH_TEST_ROLE` naming it ([`child`]): the child is what gets
//! killed, or what talks to a bus whose address only it has in its
//! environment. Those role tests do nothing when run on their own.

mod common;
mod inbox;
mod inbox_cli;
mod keyring;
mod notify;

use std::process::{Command, Stdio};

/// This test binary, set up to run only the role test `name`.
pub fn child(name: &str) -> Command {
    let exe = std::env::current_exe().expect("current_exe");
    let mut c = Command::new(exe);
    c.args(["--exact", name, "--nocapture", "--test-threads=1"])
        .env("RISKWATCH_TEST_ROLE", name)
        .env_remove("DBUS_SESSION_BUS_ADDRESS")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    c
}

/// True inside a child started by [`child`] for this role.
pub fn is_role(name: &str) -> bool {
    std::env::var("RISKWATCH_TEST_ROLE").is_ok_and(|r| r == name)
}
