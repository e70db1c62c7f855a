//! `floor`: what this machine's kernel alone costs for a fan-out. N
//! loopback TCP connections inside this one process; each round, writer
//! threads put one `size`-byte message on every connection, and reader
//! threads (the same epoll readers and poll mode as `fanout`'s) take them
//! off. No WebSocket, no hub, no HTTP: a hub and tool measured by `fanout`
//! on the same machine cannot do better, so this is the yardstick for the
//! fan-out target (docs/PERFORMANCE.md).

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use clap::Args;
use hdrhistogram::Histogram;
use serde::Serialize;
use tokio::net::{TcpListener, TcpSocket};
use tokio::time::Instant;

use crate::client::{self, Sources};
use crate::common::Common;
use crate::counters;
use crate::fanout::{Latency, TARGET_P99_MS, latency};
use crate::reader::{self, Epoll};
use crate::report::Outcome;
use crate::sys::{self, CpuMeter, CpuUse, wall_ns};

#[derive(Debug, Clone, Args)]
pub struct FloorArgs {
    /// Connections (each one socket pair in this process).
    #[arg(long, default_value_t = 10_000)]
    pub connections: usize,
    /// Rounds: one message to every connection each.
    #[arg(long, default_value_t = 20)]
    pub rounds: u32,
    /// Bytes per message (a probe event is ~250 bytes on the wire).
    #[arg(long, default_value_t = 250)]
    pub size: usize,
    /// Milliseconds between rounds (`fanout` publishes once a second).
    #[arg(long, default_value_t = 1000)]
    pub interval_ms: u64,
    /// Writer threads (default: the machine's cores, as the hub's fan-out).
    #[arg(long)]
    pub writers: Option<usize>,
    /// As `fanout --poll-ms`: an idle reader's sleep; 0 blocks.
    #[arg(long, default_value_t = 1)]
    pub poll_ms: u64,
}

#[derive(Debug, Serialize)]
pub struct FloorReport {
    pub connections: usize,
    pub rounds: u32,
    pub size: usize,
    pub writers: usize,
    pub readers: usize,
    pub expected: u64,
    pub delivered: u64,
    /// From a round's start to each message read.
    pub latency: Option<Latency>,
    /// Per round, until the last connection had its message.
    pub round_median_ms: f64,
    pub round_max_ms: f64,
    /// Writing alone (the writers' part), median over rounds.
    pub write_median_ms: f64,
    pub cpu: CpuUse,
}

/// What the readers share with the rounds.
struct Board {
    /// When the current round began (wall clock, ns).
    round_start: AtomicU64,
    round: AtomicU64,
    delivered: AtomicU64,
    stop: AtomicBool,
}

/// Opens `n` connections: (written side, read side).
async fn pairs(n: usize, sources: Sources) -> anyhow::Result<Vec<(TcpStream, TcpStream)>> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let accept = tokio::spawn(async move {
        let mut accepted = Vec::with_capacity(n);
        while accepted.len() < n {
            let (s, _) = listener.accept().await?;
            s.set_nodelay(true)?;
            accepted.push(s.into_std()?);
        }
        io::Result::Ok(accepted)
    });
    let mut clients = Vec::with_capacity(n);
    for i in 0..n {
        let sock = TcpSocket::new_v4()?;
        sock.bind(SocketAddr::from((sources.addr(i), 0)))?;
        clients.push(sock.connect(addr).await?.into_std()?);
    }
    let accepted = tokio::time::timeout(Duration::from_secs(60), accept)
        .await
        .map_err(|_| anyhow::anyhow!("accepting {n} connections took over 60 s"))???;
    // Which accepted socket belongs to which client does not matter: each
    // gets one message a round and each is read.
    Ok(accepted.into_iter().zip(clients).collect())
}

/// A reader thread: counts whole messages per socket, their latency from
/// the round's start and the round's last arrival.
fn read_loop(
    mut ep: Epoll,
    mut socks: Vec<TcpStream>,
    size: usize,
    board: &Board,
    round_max_us: &[AtomicU64],
) -> Histogram<u64> {
    let mut hist = counters::latency_histogram();
    let mut bytes = vec![0u64; socks.len()];
    let mut buf = vec![0u8; 16 * 1024];
    for (slot, s) in socks.iter().enumerate() {
        if let Err(e) = ep.add(s, slot) {
            tracing::error!(error = %e, "epoll_ctl failed");
            return hist;
        }
    }
    while !board.stop.load(Ordering::Relaxed) {
        let ready = match ep.wait() {
            Ok(r) => r,
            Err(e) => {
                tracing::error!(error = %e, "epoll_wait failed");
                break;
            }
        };
        let mut got = 0;
        for slot in ready {
            let Some(sock) = socks.get_mut(slot) else {
                continue;
            };
            let n = match sock.read(&mut buf) {
                Ok(n) => n as u64,
                Err(_) => 0,
            };
            let whole = (bytes[slot] + n) / size as u64 - bytes[slot] / size as u64;
            bytes[slot] += n;
            if whole > 0 {
                let at = wall_ns();
                let us = at.saturating_sub(board.round_start.load(Ordering::Relaxed)) / 1000;
                for _ in 0..whole {
                    hist.saturating_record(us.max(1));
                }
                let r = board.round.load(Ordering::Relaxed) as usize;
                if let Some(m) = round_max_us.get(r) {
                    m.fetch_max(us, Ordering::Relaxed);
                }
                got += whole;
            }
        }
        if got > 0 {
            board.delivered.fetch_add(got, Ordering::Relaxed);
        }
    }
    hist
}

pub async fn run(a: &FloorArgs, common: &Common, deadline: Instant) -> anyhow::Result<Outcome> {
    anyhow::ensure!(a.connections > 0, "--connections must be above 0");
    anyhow::ensure!(
        (1..=65_536).contains(&a.size),
        "--size must be 1 to 65536 bytes"
    );
    let readers = common.threads().max(1);
    let writers = a.writers.unwrap_or_else(sys::cores).max(1);
    let poll = reader::poll_interval(a.poll_ms);
    let sources = Sources::range(0, common.source_ips);
    let pairs = tokio::time::timeout_at(deadline, pairs(a.connections, sources))
        .await
        .map_err(|_| anyhow::anyhow!("deadline reached while connecting"))??;
    let (written, read): (Vec<TcpStream>, Vec<TcpStream>) = pairs.into_iter().unzip();
    for s in &read {
        s.set_nonblocking(true)?;
    }
    for s in &written {
        s.set_nonblocking(true)?;
    }
    tracing::info!(connections = a.connections, "connected; writing");

    let board = Arc::new(Board {
        round_start: AtomicU64::new(0),
        round: AtomicU64::new(0),
        delivered: AtomicU64::new(0),
        stop: AtomicBool::new(false),
    });
    let round_max_us: Arc<[AtomicU64]> = (0..a.rounds).map(|_| AtomicU64::new(0)).collect();
    let mut parts: Vec<Vec<TcpStream>> = (0..readers).map(|_| Vec::new()).collect();
    for (i, s) in read.into_iter().enumerate() {
        parts[i % readers].push(s);
    }
    let mut handles = Vec::new();
    for (t, socks) in parts.into_iter().enumerate() {
        let ep = Epoll::new(poll)?;
        let (board, maxes, size) = (Arc::clone(&board), Arc::clone(&round_max_us), a.size);
        handles.push(
            std::thread::Builder::new()
                .name(format!("floor-reader-{t}"))
                .spawn(move || read_loop(ep, socks, size, &board, &maxes))?,
        );
    }

    let msg = vec![b'x'; a.size];
    let chunk = written.len().div_ceil(writers);
    let meter = CpuMeter::start(&[]);
    let mut write_ms = Vec::new();
    let mut short_writes = 0u64;
    let mut rounds = 0;
    for r in 0..a.rounds {
        if Instant::now() >= deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(a.interval_ms)).await;
        board.round.store(u64::from(r), Ordering::Relaxed);
        board.round_start.store(wall_ns(), Ordering::Relaxed);
        let t0 = std::time::Instant::now();
        short_writes += std::thread::scope(|s| {
            let hs: Vec<_> = written
                .chunks(chunk)
                .map(|part| {
                    let msg = &msg;
                    s.spawn(move || {
                        let mut short = 0u64;
                        for mut sock in part {
                            if !matches!(sock.write(msg), Ok(n) if n == msg.len()) {
                                short += 1;
                            }
                        }
                        short
                    })
                })
                .collect();
            hs.into_iter()
                .map(|h| h.join().unwrap_or_else(|e| std::panic::resume_unwind(e)))
                .sum::<u64>()
        });
        write_ms.push(t0.elapsed().as_secs_f64() * 1000.0);
        rounds += 1;
        let want = u64::from(rounds) * a.connections as u64;
        let until = (Instant::now() + Duration::from_secs(5)).min(deadline);
        client::wait_until(until, || board.delivered.load(Ordering::Relaxed) >= want).await;
    }
    let cpu = meter.stop();
    board.stop.store(true, Ordering::Relaxed);
    let mut hist = counters::latency_histogram();
    for h in handles {
        let mine = h.join().unwrap_or_else(|e| std::panic::resume_unwind(e));
        let _ = hist.add(&mine);
    }
    anyhow::ensure!(
        short_writes == 0,
        "{short_writes} writes were short or failed"
    );

    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v.get(v.len() / 2).copied().unwrap_or(0.0)
    };
    let mut per_round: Vec<f64> = round_max_us
        .iter()
        .take(rounds as usize)
        .map(|m| m.load(Ordering::Relaxed) as f64 / 1000.0)
        .collect();
    let expected = u64::from(rounds) * a.connections as u64;
    let delivered = board.delivered.load(Ordering::Relaxed);
    let report = FloorReport {
        connections: a.connections,
        rounds,
        size: a.size,
        writers,
        readers,
        expected,
        delivered,
        latency: latency(&hist),
        round_max_ms: per_round.iter().copied().fold(0.0, f64::max),
        round_median_ms: median(&mut per_round),
        write_median_ms: median(&mut write_ms),
        cpu,
    };
    let summary = summary(&report);
    Ok(Outcome::new(
        serde_json::to_value(&report)?,
        summary,
        delivered == expected,
    ))
}

fn summary(r: &FloorReport) -> String {
    let mut s = format!(
        "kernel floor: {} loopback TCP connections in one process, {} rounds of one {}-byte message each, {} writer and {} reader threads, no WebSocket and no hub\n",
        r.connections, r.rounds, r.size, r.writers, r.readers
    );
    s += &format!("messages read {} of {}\n", r.delivered, r.expected);
    if let Some(l) = &r.latency {
        s += &format!(
            "latency (round start -> read): p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms\n",
            l.p50_ms, l.p99_ms, l.max_ms
        );
    }
    s += &format!(
        "per round, until the last connection had it: median {:.2} ms, max {:.2} ms (writing alone: median {:.2} ms)\n",
        r.round_median_ms, r.round_max_ms, r.write_median_ms
    );
    let c = &r.cpu.tool;
    s += &format!(
        "CPU (this process: the writers, the readers and the kernel's work for both): {:.2} s user + {:.2} s system = {:.1} µs per message",
        c.user_s,
        c.system_s,
        c.total() * 1e6 / r.delivered.max(1) as f64
    );
    s += &format!(
        "\n(fanout's target, p99 < {TARGET_P99_MS} ms at 10,000 subscribers, includes all of this plus the hub and the tool)\n"
    );
    s
}
