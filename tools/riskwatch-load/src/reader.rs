//! `fanout`'s readers: once subscribed, the subscribers' sockets are read
//! by a few plain threads, one epoll set each, instead of one tokio task
//! per connection. The tool shares the two cores with the hub it measures,
//! so its cost per delivery is part of the latency it reports; a task wake,
//! a poll and tungstenite's framing per delivery cost more than the read.
//!
//! In poll mode (the default) a reader with nothing ready sleeps for the
//! poll interval instead of blocking in `epoll_wait`: the hub's `send()`
//! then has nobody to wake, the hub's threads are not preempted once per
//! delivery, and a reader takes what arrived in one batch. The reported
//! latency is taken after the read, so it includes that wait (at most one
//! interval): the measurement errs on the slow side. A reader that found
//! nothing for a while blocks until the next burst wakes it once.
//!
//! Frames are read as RFC 6455 server frames (unmasked); pings are
//! answered with a masked pong, as a client must, and Engine.IO's pings
//! (a text `2`, from Socket.IO hubs) with a masked text `3`; a close frame or the end
//! of the stream ends the subscriber, counted as the client tasks count it.

use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::os::fd::AsFd;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, Sender, channel};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use hdrhistogram::Histogram;
use nix::errno::Errno;
use nix::sys::epoll::{EpollCreateFlags, EpollEvent, EpollFlags};

use crate::client::{EIO_PING, EIO_PONG};
use crate::counters::{Shared, latency_histogram, probe};
use crate::sys::wall_ns;

/// The largest frame a subscriber accepts (probes are ~250 bytes).
const MAX_FRAME: u64 = 1 << 20;

/// Empty polls in a row after which an idle reader blocks in `epoll_wait`
/// until something arrives (one wake per burst, then polling again).
const IDLE_POLLS: u32 = 20;

/// `--poll-ms` as the readers take it: 0 blocks in `epoll_wait`, anything
/// else is an idle reader's sleep, at most 100 ms.
pub fn poll_interval(ms: u64) -> Option<Duration> {
    (ms > 0).then(|| Duration::from_millis(ms.min(100)))
}

/// A frame from the hub, borrowed from the read buffer.
#[derive(Debug, PartialEq, Eq)]
pub enum Frame<'a> {
    /// A whole text message.
    Text(&'a [u8]),
    Ping(&'a [u8]),
    /// The close code, 1005 when the frame has none.
    Close(u16),
    /// Pong, binary or a fragment: nothing the tool reads.
    Other,
}

/// The first frame in `data` and its length in bytes; `Ok(None)` when
/// `data` does not hold a whole frame yet.
pub fn next_frame(data: &[u8]) -> Result<Option<(Frame<'_>, usize)>, &'static str> {
    let [b0, b1, ..] = *data else {
        return Ok(None);
    };
    if b1 & 0x80 != 0 {
        return Err("masked frame from the hub");
    }
    let (len, header) = match b1 & 0x7f {
        126 => match data.get(2..4) {
            Some(b) => (u64::from(u16::from_be_bytes([b[0], b[1]])), 4),
            None => return Ok(None),
        },
        127 => match data.get(2..10) {
            Some(b) => (u64::from_be_bytes(b.try_into().expect("8 bytes")), 10),
            None => return Ok(None),
        },
        n => (u64::from(n), 2),
    };
    if len > MAX_FRAME {
        return Err("frame over 1 MiB");
    }
    let end = header + len as usize;
    let Some(payload) = data.get(header..end) else {
        return Ok(None);
    };
    let fin = b0 & 0x80 != 0;
    let frame = match b0 & 0x0f {
        0x1 if fin => Frame::Text(payload),
        0x0..=0x2 | 0xA => Frame::Other,
        0x8 => Frame::Close(match payload {
            [a, b, ..] => u16::from_be_bytes([*a, *b]),
            _ => 1005,
        }),
        0x9 => Frame::Ping(payload),
        _ => return Err("unknown opcode"),
    };
    Ok(Some((frame, end)))
}

/// A client's pong for `payload` (at most 125 bytes, as pings are),
/// masked with `key`.
pub fn pong(payload: &[u8], key: [u8; 4]) -> Vec<u8> {
    client_frame(0xA, payload, key)
}

/// A client's final frame of `opcode` with `payload` (at most 125 bytes),
/// masked with `key`.
fn client_frame(opcode: u8, payload: &[u8], key: [u8; 4]) -> Vec<u8> {
    let len = payload.len().min(125);
    let mut out = Vec::with_capacity(6 + len);
    out.extend_from_slice(&[0x80 | opcode, 0x80 | len as u8]);
    out.extend_from_slice(&key);
    out.extend(
        payload[..len]
            .iter()
            .enumerate()
            .map(|(i, b)| b ^ key[i % 4]),
    );
    out
}

/// One subscriber's socket and what the reader knows of it.
struct Sub {
    sock: TcpStream,
    /// The client's number (its slot in `Shared::received`).
    i: usize,
    /// The last sequence seen (the channel's head when it subscribed).
    last: u64,
    /// Bytes of a frame not yet whole.
    pending: Vec<u8>,
}

/// What one reader thread counts before it adds it to `Shared`.
struct Tally {
    latency: Histogram<u64>,
    probe_max_us: Vec<u64>,
    deliveries: u64,
    last_ns: u64,
    mask: u32,
}

impl Tally {
    /// A fresh masking key per pong (xorshift; a load tool's masks need
    /// not be unpredictable).
    fn key(&mut self) -> [u8; 4] {
        self.mask ^= self.mask << 13;
        self.mask ^= self.mask >> 17;
        self.mask ^= self.mask << 5;
        self.mask.to_be_bytes()
    }
}

/// Why a subscriber ended.
enum End {
    /// The hub sent a close frame with this code.
    Closed(u16),
    /// The stream ended or broke without one.
    Dropped,
}

/// The reader threads of one run.
pub struct Readers {
    inboxes: Vec<Sender<Sub>>,
    next: AtomicUsize,
    stop: Arc<AtomicBool>,
    threads: Mutex<Vec<JoinHandle<()>>>,
}

impl std::fmt::Debug for Readers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Readers")
            .field("threads", &self.inboxes.len())
            .finish_non_exhaustive()
    }
}

impl Readers {
    /// Starts `threads` readers; `poll` is the sleep of an idle reader
    /// (None: block in `epoll_wait`).
    pub fn start(
        threads: usize,
        shared: Arc<Shared>,
        poll: Option<Duration>,
    ) -> io::Result<Arc<Readers>> {
        let stop = Arc::new(AtomicBool::new(false));
        let mut inboxes = Vec::new();
        let mut handles = Vec::new();
        for t in 0..threads.max(1) {
            let ep = Epoll::new(poll)?;
            let (tx, rx) = channel();
            let (shared, stop) = (Arc::clone(&shared), Arc::clone(&stop));
            let handle = std::thread::Builder::new()
                .name(format!("load-reader-{t}"))
                .spawn(move || run(ep, rx, shared, stop, t as u32))?;
            inboxes.push(tx);
            handles.push(handle);
        }
        Ok(Arc::new(Readers {
            inboxes,
            next: AtomicUsize::new(0),
            stop,
            threads: Mutex::new(handles),
        }))
    }

    /// Hands client `i`'s subscribed socket to a reader (round robin).
    pub fn adopt(&self, i: usize, sock: TcpStream, head: u64) {
        let k = self.next.fetch_add(1, Ordering::Relaxed) % self.inboxes.len();
        let sub = Sub {
            sock,
            i,
            last: head,
            pending: Vec::new(),
        };
        // A reader gone (stopped) drops the socket, which closes it.
        let _ = self.inboxes[k].send(sub);
    }

    /// Stops the readers, closes their sockets and adds their latencies
    /// to `Shared` (bounded: a reader sleeps at most 50 ms at a time).
    pub fn stop(&self) {
        self.stop.store(true, Ordering::Relaxed);
        let handles = std::mem::take(&mut *self.threads.lock().expect("readers lock"));
        for h in handles {
            let _ = h.join();
        }
    }
}

/// An epoll set whose waits follow the readers' poll mode (see the module
/// doc); each registered socket carries its slot number.
pub struct Epoll {
    set: nix::sys::epoll::Epoll,
    /// An idle reader's sleep; None blocks in `epoll_wait`.
    poll: Option<Duration>,
    /// Empty polls in a row.
    empty: u32,
    events: Vec<EpollEvent>,
}

impl Epoll {
    pub fn new(poll: Option<Duration>) -> io::Result<Epoll> {
        Ok(Epoll {
            set: nix::sys::epoll::Epoll::new(EpollCreateFlags::EPOLL_CLOEXEC)?,
            poll,
            empty: 0,
            events: vec![EpollEvent::empty(); 1024],
        })
    }

    /// Watches `fd` for reading, as `slot`.
    pub fn add(&self, fd: impl AsFd, slot: usize) -> io::Result<()> {
        let ev = EpollEvent::new(EpollFlags::EPOLLIN | EpollFlags::EPOLLRDHUP, slot as u64);
        Ok(self.set.add(fd, ev)?)
    }

    pub fn remove(&self, fd: impl AsFd) {
        let _ = self.set.delete(fd);
    }

    /// The slots ready now. While traffic flows it looks without waiting
    /// and, finding nothing, sleeps one poll interval; after a few empty
    /// looks it blocks (50 ms at most, so callers see their stop flag).
    pub fn wait(&mut self) -> io::Result<impl Iterator<Item = usize> + '_> {
        let polling = self.poll.is_some() && self.empty < IDLE_POLLS;
        let timeout = if polling { 0u8 } else { 50u8 };
        let n = match self.set.wait(&mut self.events, timeout) {
            Err(Errno::EINTR) => 0,
            Err(e) => return Err(e.into()),
            Ok(0) => {
                if let (true, Some(d)) = (polling, self.poll) {
                    self.empty += 1;
                    std::thread::sleep(d);
                }
                0
            }
            Ok(n) => {
                self.empty = 0;
                n
            }
        };
        Ok(self.events[..n].iter().map(|e| e.data() as usize))
    }
}

fn run(mut ep: Epoll, inbox: Receiver<Sub>, shared: Arc<Shared>, stop: Arc<AtomicBool>, seed: u32) {
    let mut subs: Vec<Option<Sub>> = Vec::new();
    let mut free: Vec<usize> = Vec::new();
    let mut tally = Tally {
        latency: latency_histogram(),
        probe_max_us: vec![0; shared.probe_max_us.len()],
        deliveries: 0,
        last_ns: 0,
        mask: 0x9E37_79B9 ^ seed.wrapping_mul(0x85EB_CA6B) | 1,
    };
    let mut buf = vec![0u8; 16 * 1024];
    let mut ended = Vec::new();
    while !stop.load(Ordering::Relaxed) {
        while let Ok(sub) = inbox.try_recv() {
            let slot = free.pop().unwrap_or(subs.len());
            if ep.add(&sub.sock, slot).is_err() {
                shared.dropped.fetch_add(1, Ordering::Relaxed);
                shared.held.fetch_sub(1, Ordering::Relaxed);
                continue;
            }
            if slot == subs.len() {
                subs.push(Some(sub));
            } else {
                subs[slot] = Some(sub);
            }
        }
        let ready = match ep.wait() {
            Ok(r) => r,
            Err(e) => {
                tracing::error!(error = %e, "epoll_wait failed");
                break;
            }
        };
        let before = tally.deliveries;
        for slot in ready {
            let Some(sub) = subs.get_mut(slot).and_then(Option::as_mut) else {
                continue;
            };
            if let Some(end) = read(sub, &mut buf, &shared, &mut tally) {
                ended.push((slot, end));
            }
        }
        for (slot, end) in ended.drain(..) {
            if let Some(sub) = subs[slot].take() {
                ep.remove(&sub.sock);
            }
            match end {
                End::Closed(code) => shared.closed(code),
                End::Dropped => {
                    shared.dropped.fetch_add(1, Ordering::Relaxed);
                }
            }
            shared.held.fetch_sub(1, Ordering::Relaxed);
            free.push(slot);
        }
        if tally.deliveries > before {
            shared
                .deliveries
                .fetch_add(tally.deliveries - before, Ordering::Relaxed);
            shared
                .last_delivery_ns
                .fetch_max(tally.last_ns, Ordering::Relaxed);
        }
    }
    if let Some(h) = &shared.latency {
        let _ = h.lock().expect("histogram lock").add(&tally.latency);
    }
    for (m, mine) in shared.probe_max_us.iter().zip(&tally.probe_max_us) {
        m.fetch_max(*mine, Ordering::Relaxed);
    }
    // Dropping `subs` closes the sockets, as aborting the tasks did.
    shared
        .held
        .fetch_sub(subs.iter().flatten().count() as u64, Ordering::Relaxed);
}

/// Reads what the socket has (a few reads at most, so one busy socket
/// cannot hold the others up); Some when the subscriber ended.
fn read(sub: &mut Sub, buf: &mut [u8], shared: &Shared, tally: &mut Tally) -> Option<End> {
    for _ in 0..4 {
        let n = match sub.sock.read(buf) {
            Ok(0) => return Some(End::Dropped),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return None,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(_) => return Some(End::Dropped),
        };
        let end = if sub.pending.is_empty() {
            let (end, used) = frames(sub, &buf[..n], shared, tally);
            if end.is_none() {
                sub.pending.extend_from_slice(&buf[used..n]);
            }
            end
        } else {
            sub.pending.extend_from_slice(&buf[..n]);
            let data = std::mem::take(&mut sub.pending);
            let (end, used) = frames(sub, &data, shared, tally);
            sub.pending = data;
            sub.pending.drain(..used);
            end
        };
        if end.is_some() {
            return end;
        }
        if n < buf.len() {
            return None;
        }
    }
    None
}

/// Handles the whole frames in `data`; returns how many bytes they took,
/// and Some if the subscriber ended.
fn frames(sub: &mut Sub, data: &[u8], shared: &Shared, tally: &mut Tally) -> (Option<End>, usize) {
    let mut used = 0;
    loop {
        let (frame, len) = match next_frame(&data[used..]) {
            Ok(Some(f)) => f,
            Ok(None) => return (None, used),
            Err(why) => {
                tracing::debug!(why, "bad frame from the hub");
                return (Some(End::Dropped), used);
            }
        };
        used += len;
        match frame {
            Frame::Text(t) if t == EIO_PING.as_bytes() => {
                // Engine.IO's ping (Socket.IO hubs), answered as its
                // clients do, or the server drops the subscriber.
                let key = tally.key();
                let _ = sub.sock.write(&client_frame(0x1, EIO_PONG.as_bytes(), key));
            }
            Frame::Text(t) => {
                let Some(p) = std::str::from_utf8(t).ok().and_then(probe) else {
                    continue;
                };
                let at = wall_ns();
                if p.seq != sub.last + 1 {
                    shared.out_of_sequence.fetch_add(1, Ordering::Relaxed);
                }
                sub.last = p.seq;
                shared.received[sub.i].fetch_add(1, Ordering::Relaxed);
                tally.deliveries += 1;
                tally.last_ns = tally.last_ns.max(at);
                let us = at.saturating_sub(p.t) / 1_000;
                tally.latency.saturating_record(us.max(1));
                if let Some(m) = tally.probe_max_us.get_mut(p.k as usize) {
                    *m = (*m).max(us);
                }
            }
            Frame::Ping(payload) => {
                let key = tally.key();
                // A pong the socket cannot take now is skipped; the hub
                // counts any inbound traffic as liveness.
                let _ = sub.sock.write(&pong(payload, key));
            }
            Frame::Close(code) => return (Some(End::Closed(code)), used),
            Frame::Other => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio_tungstenite::tungstenite::protocol::frame::coding::{Data, OpCode};
    use tokio_tungstenite::tungstenite::protocol::frame::{Frame as TFrame, FrameHeader};

    fn encoded(opcode: OpCode, payload: &[u8]) -> Vec<u8> {
        let f = TFrame::from_payload(
            FrameHeader {
                opcode,
                ..FrameHeader::default()
            },
            payload.to_vec().into(),
        );
        let mut out = Vec::new();
        f.format(&mut out).expect("format");
        out
    }

    #[test]
    fn frames_read_as_tungstenite_writes_them() {
        for len in [0, 10, 125, 126, 300, 65_535, 70_000] {
            let payload = vec![b'a'; len];
            let wire = encoded(OpCode::Data(Data::Text), &payload);
            assert_eq!(
                next_frame(&wire),
                Ok(Some((Frame::Text(&payload), wire.len()))),
                "{len}"
            );
            // Any prefix is not a frame yet.
            for cut in [0, 1, 2, 3, wire.len() - 1] {
                if cut < wire.len() {
                    assert_eq!(next_frame(&wire[..cut]), Ok(None), "{len} cut {cut}");
                }
            }
        }
        let ping = encoded(
            OpCode::Control(tokio_tungstenite::tungstenite::protocol::frame::coding::Control::Ping),
            b"hi",
        );
        assert_eq!(
            next_frame(&ping),
            Ok(Some((Frame::Ping(b"hi"), ping.len())))
        );
        let close = encoded(
            OpCode::Control(
                tokio_tungstenite::tungstenite::protocol::frame::coding::Control::Close,
            ),
            &1013u16.to_be_bytes(),
        );
        assert_eq!(
            next_frame(&close),
            Ok(Some((Frame::Close(1013), close.len())))
        );
    }

    #[test]
    fn bad_frames_are_refused() {
        // Masked (a server must not mask), oversized, unknown opcode.
        assert!(next_frame(&[0x81, 0x81, 1, 2, 3, 4, b'x']).is_err());
        let mut big = vec![0x81, 127];
        big.extend_from_slice(&(MAX_FRAME + 1).to_be_bytes());
        assert!(next_frame(&big).is_err());
        assert!(next_frame(&[0x83, 0]).is_err());
    }

    #[test]
    fn pongs_are_masked_client_frames() {
        let key = [1, 2, 3, 4];
        let p = pong(b"ping!", key);
        assert_eq!(&p[..2], &[0x8A, 0x80 | 5]);
        assert_eq!(&p[2..6], &key);
        let unmasked: Vec<u8> = p[6..]
            .iter()
            .enumerate()
            .map(|(i, b)| b ^ key[i % 4])
            .collect();
        assert_eq!(unmasked, b"ping!");
    }

    #[test]
    fn engine_io_pongs_are_masked_text_frames() {
        let key = [9, 8, 7, 6];
        let f = client_frame(0x1, EIO_PONG.as_bytes(), key);
        assert_eq!(&f[..2], &[0x81, 0x81]);
        assert_eq!(&f[2..6], &key);
        assert_eq!(f[6] ^ key[0], b'3');
    }
}
