//! `riskwatch serve --reuse-port`: several hub processes on one port (how
//! the load tool's `--hubs` holds more connections than one process's
//! open-file limit). Real processes, the built `riskwatch` binary.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A started `riskwatch serve`, killed on drop.
struct Serve(Child);

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn serve(addr: SocketAddr, reuse_port: bool) -> Serve {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_riskwatch"));
    cmd.args(["serve", "--insecure-dev", "--listen", &addr.to_string()]);
    if reuse_port {
        cmd.arg("--reuse-port");
    }
    let child = cmd
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    Serve(child)
}

/// Waits (at most 20 s) for "hub listening" on the hub's stderr; false if
/// it exits first or prints something else.
fn listening(s: &mut Serve) -> bool {
    let stderr = s.0.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut lines = BufReader::new(stderr).lines();
        let first_relevant = lines
            .by_ref()
            .map_while(Result::ok)
            .find(|l| l.contains("hub listening") || l.contains("cannot listen"));
        let _ = tx.send(first_relevant.is_some_and(|l| l.contains("hub listening")));
        // Keep draining so the hub never blocks on a full pipe.
        for _ in lines {}
    });
    rx.recv_timeout(Duration::from_secs(20)).unwrap_or(false)
}

/// `GET /healthz` over a fresh connection: whichever hub accepts it
/// answers.
fn healthy(addr: SocketAddr) -> bool {
    let Ok(mut c) = TcpStream::connect_timeout(&addr, Duration::from_secs(2)) else {
        return false;
    };
    let _ = c.set_read_timeout(Some(Duration::from_secs(5)));
    if c.write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .is_err()
    {
        return false;
    }
    let mut reply = String::new();
    let _ = c.read_to_string(&mut reply);
    reply.starts_with("HTTP/1.1 200")
}

fn wait_exit(s: &mut Serve, within: Duration) -> Option<std::process::ExitStatus> {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        if let Ok(Some(st)) = s.0.try_wait() {
            return Some(st);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    None
}

#[test]
fn two_hubs_share_a_port_with_reuse_port_and_each_accepts() {
    let addr = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let mut a = serve(addr, true);
    assert!(listening(&mut a), "the first hub should listen");
    // The same port again: allowed because both set SO_REUSEPORT.
    let mut b = serve(addr, true);
    assert!(listening(&mut b), "the second hub should listen beside it");
    assert!(healthy(addr));
    // Without the option a third one is refused the port.
    let mut c = serve(addr, false);
    assert!(
        !listening(&mut c),
        "a hub without --reuse-port must not bind"
    );
    let st = wait_exit(&mut c, Duration::from_secs(10)).expect("it should exit");
    assert!(!st.success(), "{st}");
    // Stop the first: the second accepts on its own.
    drop(a);
    for _ in 0..5 {
        assert!(healthy(addr), "the second hub should accept");
    }
    drop(b);
}
