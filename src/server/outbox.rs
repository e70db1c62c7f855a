//! A connection's write side, shared between its task and the hub's
//! fan-out, so that a live event costs one `send()` on the publishing
//! thread instead of a queue push, a task wake, a poll and a write.
//!
//! - [`SharedIo`] is the socket under the connection's tungstenite stream.
//!   Besides tungstenite's own writes (acks, replies, pings, close frames)
//!   it takes whole pre-encoded frames from the fan-out ([`Outbox::offer`]).
//!   The byte stream never interleaves two frames: a raw frame is written
//!   only when tungstenite has no frame half-written, and raw bytes that
//!   could not be written at once wait in `pending`, which goes out before
//!   anything tungstenite writes next.
//! - [`Outbox`] decides, per event and under one lock, whether it goes out
//!   at once (`live`: nothing queued, nothing pending) or into the bounded
//!   queue the connection task drains; the exactly-once filter (`last_sent`)
//!   runs under the same lock, in channel order. A full queue marks the
//!   connection as lagging (closed with 1013 by its task), as before.
//! - What the peer received, as opposed to what was written: the
//!   connection's pings are written as raw frames in the same stream
//!   order as events, each remembering the positions sent before it
//!   ([`Outbox::ping`]); the peer's pong proves those delivered
//!   ([`Outbox::ponged`]). A connection that ends leaves its user's
//!   cursors at what was proven ([`Outbox::delivered`]), not at what sat
//!   in a send buffer, or in a proxy's, when a stalled peer was dropped:
//!   a seed endpoint's next connection is replayed from there. The hub
//!   pings every connection that was sent something each second
//!   ([`super::hub::Hub::prove_delivery`]), writing the ping itself as
//!   the fan-out writes events: no connection task wakes for it. (A TCP
//!   acknowledgement proves nothing here: a reverse proxy in front of the
//!   hub acknowledges bytes the desk may never get.)

use std::collections::{HashMap, VecDeque};
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker, ready};

use bytes::Bytes;
use chrono::{DateTime, Utc};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::Notify;

use super::endpoint::Endpoint;
use super::event::{HubEvent, Wire};

/// What the socket under a connection must be.
pub trait Io: AsyncRead + AsyncWrite + Unpin + Send + 'static {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send + 'static> Io for T {}

/// The socket under a connection.
enum Socket {
    /// Plain TCP: on Linux the fan-out writes to it directly, without the
    /// layers above it ([`Socket::send_now`]).
    Tcp(Prefixed),
    /// Anything else (TLS, in-memory streams in tests).
    Other(Box<dyn Io>),
}

impl Socket {
    /// One non-blocking `send()` of `frame` straight to a plain TCP
    /// socket, bypassing tokio's readiness: on EAGAIN the connection
    /// task's next write through tokio gets EAGAIN too and waits for the
    /// socket properly. None where there is no such path: other sockets,
    /// other systems, or the `portable-io` feature — then the caller
    /// writes through tokio with a no-op waker, as every system can.
    #[cfg(all(target_os = "linux", not(feature = "portable-io")))]
    fn send_now(&self, frame: &[u8]) -> Option<io::Result<usize>> {
        use rustix::net::{SendFlags, send};
        use std::os::fd::AsFd;
        match self {
            Socket::Tcp(tcp) => Some(
                send(
                    tcp.io.as_fd(),
                    frame,
                    SendFlags::DONTWAIT | SendFlags::NOSIGNAL,
                )
                .map_err(io::Error::from),
            ),
            Socket::Other(_) => None,
        }
    }

    #[cfg(not(all(target_os = "linux", not(feature = "portable-io"))))]
    fn send_now(&self, _frame: &[u8]) -> Option<io::Result<usize>> {
        None
    }

    fn io(self: Pin<&mut Self>) -> Pin<&mut dyn Io> {
        match self.get_mut() {
            Socket::Tcp(t) => Pin::new(t),
            Socket::Other(o) => Pin::new(&mut **o),
        }
    }
}

impl AsyncRead for Socket {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        self.io().poll_read(cx, buf)
    }
}

impl AsyncWrite for Socket {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.io().poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.io().poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.io().poll_shutdown(cx)
    }
}

struct IoState {
    /// None once the connection ended (the socket is closed).
    io: Option<Socket>,
    /// Raw frame bytes not yet written, from `pending_pos` on.
    pending: Vec<u8>,
    pending_pos: usize,
    /// Tungstenite's last write stopped inside its buffer: the rest of
    /// that frame must come next on the wire.
    tung_partial: bool,
    /// Bytes the connection task's writes put on the socket, so far: a
    /// write that makes no progress for long means a peer that stopped
    /// reading.
    written: u64,
}

impl IoState {
    fn clean(&self) -> bool {
        !self.tung_partial && self.pending_pos == self.pending.len()
    }

    fn push_pending(&mut self, bytes: &[u8]) {
        if self.pending_pos == self.pending.len() {
            self.pending.clear();
            self.pending_pos = 0;
        }
        self.pending.extend_from_slice(bytes);
    }

    /// Writes `pending` out; Ready(Ok) when it is empty.
    fn poll_drain(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let Some(io) = self.io.as_mut() else {
            return Poll::Ready(Err(io::ErrorKind::NotConnected.into()));
        };
        while self.pending_pos < self.pending.len() {
            let n = ready!(Pin::new(&mut *io).poll_write(cx, &self.pending[self.pending_pos..]))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.pending_pos += n;
            self.written += n as u64;
        }
        self.pending.clear();
        self.pending_pos = 0;
        if self.pending.capacity() > 64 * 1024 {
            self.pending = Vec::new();
        }
        Poll::Ready(Ok(()))
    }
}

/// The socket, shared by the connection's tungstenite stream (reads and
/// its own writes) and the fan-out (raw frames).
#[derive(Clone)]
pub struct SharedIo {
    inner: Arc<Mutex<IoState>>,
}

impl std::fmt::Debug for SharedIo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SharedIo").finish_non_exhaustive()
    }
}

/// How a raw frame went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Raw {
    /// All of it is on the socket.
    Written,
    /// Some or all of it waits in `pending`: the connection task must
    /// drain it.
    Deferred,
}

impl SharedIo {
    pub fn new(io: impl Io) -> SharedIo {
        Self::with(Socket::Other(Box::new(io)))
    }

    /// A plain TCP socket, with the bytes already read from it (after the
    /// HTTP request) to be read first.
    pub fn tcp(stream: TcpStream, read_first: Bytes) -> SharedIo {
        Self::with(Socket::Tcp(Prefixed {
            head: own_copy(read_first),
            io: stream,
        }))
    }

    fn with(io: Socket) -> SharedIo {
        SharedIo {
            inner: Arc::new(Mutex::new(IoState {
                io: Some(io),
                pending: Vec::new(),
                pending_pos: 0,
                tung_partial: false,
                written: 0,
            })),
        }
    }

    fn lock(&self) -> MutexGuard<'_, IoState> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Bytes the connection task has written so far (see `IoState`).
    pub fn written(&self) -> u64 {
        self.lock().written
    }

    /// Writes a whole frame now if the socket takes it, without waiting
    /// and without registering for readiness; otherwise keeps (the rest
    /// of) it in `pending`.
    fn write_now(&self, frame: &[u8]) -> Raw {
        let mut st = self.lock();
        if !st.clean() {
            st.push_pending(frame);
            return Raw::Deferred;
        }
        let Some(io) = st.io.as_ref() else {
            return Raw::Deferred;
        };
        if let Some(sent) = io.send_now(frame) {
            return match sent {
                Ok(n) if n == frame.len() => Raw::Written,
                Ok(n) => {
                    st.push_pending(&frame[n..]);
                    Raw::Deferred
                }
                // EAGAIN, or an error the task's next write sees again.
                Err(_) => {
                    st.push_pending(frame);
                    Raw::Deferred
                }
            };
        }
        let Some(io) = st.io.as_mut() else {
            return Raw::Deferred;
        };
        // Outside tokio's cooperative budget: the fan-out writes to
        // thousands of sockets within one task poll, and a spent budget
        // would make every write after the 128th look "not ready".
        let mut write = tokio::task::unconstrained(std::future::poll_fn(|cx| {
            Pin::new(&mut *io).poll_write(cx, frame)
        }));
        let mut cx = Context::from_waker(Waker::noop());
        match Pin::new(&mut write).poll(&mut cx) {
            Poll::Ready(Ok(n)) if n == frame.len() => Raw::Written,
            Poll::Ready(Ok(n)) => {
                st.push_pending(&frame[n..]);
                Raw::Deferred
            }
            // An error shows again on the connection task's next write.
            Poll::Pending | Poll::Ready(Err(_)) => {
                st.push_pending(frame);
                Raw::Deferred
            }
        }
    }

    /// Appends frames for the connection task to write (see
    /// [`SharedIo::poll_drain`], or any tungstenite write or flush).
    fn queue(&self, frame: &[u8]) {
        self.lock().push_pending(frame);
    }

    fn is_clean(&self) -> bool {
        self.lock().clean()
    }

    /// Closes the socket (the connection is over).
    pub fn close(&self) {
        let mut st = self.lock();
        st.io = None;
    }
}

impl AsyncRead for SharedIo {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let mut st = self.lock();
        match st.io.as_mut() {
            Some(io) => Pin::new(io).poll_read(cx, buf),
            None => Poll::Ready(Ok(())),
        }
    }
}

impl AsyncWrite for SharedIo {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let mut st = self.lock();
        if !st.tung_partial {
            // Raw frames queued before this one go first.
            ready!(st.poll_drain(cx))?;
        }
        let Some(io) = st.io.as_mut() else {
            return Poll::Ready(Err(io::ErrorKind::NotConnected.into()));
        };
        let n = ready!(Pin::new(io).poll_write(cx, buf))?;
        st.tung_partial = n < buf.len();
        st.written += n as u64;
        Poll::Ready(Ok(n))
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let mut st = self.lock();
        if !st.tung_partial {
            ready!(st.poll_drain(cx))?;
        }
        match st.io.as_mut() {
            Some(io) => Pin::new(io).poll_flush(cx),
            None => Poll::Ready(Ok(())),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let mut st = self.lock();
        if !st.tung_partial {
            ready!(st.poll_drain(cx))?;
        }
        match st.io.as_mut() {
            Some(io) => Pin::new(io).poll_shutdown(cx),
            None => Poll::Ready(Ok(())),
        }
    }
}

/// What the HTTP server read past the upgrade request, in an allocation of
/// its own: hyper hands it over as a view into its whole read buffer
/// (8 KiB and more), which a connection holding the view kept alive for
/// its life, idle or not; usually nothing, at most a first frame.
fn own_copy(read_first: Bytes) -> Bytes {
    if read_first.is_empty() {
        Bytes::new()
    } else {
        Bytes::copy_from_slice(&read_first)
    }
}

/// A TCP socket whose first bytes were already read (by the HTTP server,
/// past the upgrade request): reads give those first.
struct Prefixed {
    head: Bytes,
    io: TcpStream,
}

impl AsyncRead for Prefixed {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if !self.head.is_empty() {
            let n = self.head.len().min(buf.remaining());
            let head = self.head.split_to(n);
            buf.put_slice(&head);
            if self.head.is_empty() {
                self.head = Bytes::new();
            }
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl AsyncWrite for Prefixed {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

struct OutState {
    /// The fan-out may write to the socket directly: nothing is queued,
    /// nothing pending, no subscribe in progress.
    live: bool,
    /// The connection is closing or closed: nothing more is written.
    closed: bool,
    queue: VecDeque<Arc<HubEvent>>,
    /// Highest sequence written per channel: the exactly-once filter
    /// between a backlog and the live stream, and across overlapping
    /// subscriptions. A connection has a channel or a few: a list, found
    /// by the channel's shared name first (no hashing, no string compare
    /// for an event of a channel already seen).
    last_sent: Vec<(Arc<str>, u64)>,
    /// Per channel, the highest position the peer proved it received (by
    /// answering a ping written after it), or where its subscription
    /// started.
    proven: Positions,
    /// Pings not yet answered: their number and the positions sent
    /// before each.
    pings: VecDeque<(u64, Positions)>,
    next_ping: u64,
    /// Events were sent since the last ping ([`Outbox::proof_wanted`]).
    unproven: bool,
    /// `proven` moved since [`Outbox::newly_delivered`] last looked.
    proven_moved: bool,
}

/// Positions per channel (a connection has a channel or a few).
type Positions = Vec<(Arc<str>, u64)>;

/// Pings remembered: a peer answers in order, and one that is several
/// pings behind is about to be dropped anyway.
const PINGS_KEPT: usize = 4;

/// Raises `channel`'s position in `list` to at least `seq`.
fn raise(list: &mut Positions, channel: &Arc<str>, seq: u64) {
    match list.iter_mut().find(|(c, _)| **c == **channel) {
        Some((_, s)) => *s = (*s).max(seq),
        None => list.push((Arc::clone(channel), seq)),
    }
}

impl OutState {
    fn last_mut(&mut self, channel: &Arc<str>) -> Option<&mut u64> {
        let i = match self
            .last_sent
            .iter()
            .position(|(c, _)| Arc::ptr_eq(c, channel))
        {
            Some(i) => i,
            None => {
                let i = self.last_sent.iter().position(|(c, _)| **c == **channel)?;
                // Keep the channel's own name from now on: the next event
                // is found by pointer, without reading this copy's bytes.
                self.last_sent[i].0 = Arc::clone(channel);
                i
            }
        };
        Some(&mut self.last_sent[i].1)
    }

    fn set_last(&mut self, channel: &str, seq: u64) {
        let i = match self.last_sent.iter().position(|(c, _)| &**c == channel) {
            Some(i) => {
                self.last_sent[i].1 = seq;
                i
            }
            None => {
                self.last_sent.push((Arc::from(channel), seq));
                self.last_sent.len() - 1
            }
        };
        // Where a subscription starts was the user's before it.
        let name = Arc::clone(&self.last_sent[i].0);
        raise(&mut self.proven, &name, seq);
    }
}

/// One connection's outgoing events (see the module doc).
pub struct Outbox {
    wire: Wire,
    /// Which events pass beyond the subscriptions (a compliance
    /// connection for one client sees only that client's).
    endpoint: Endpoint,
    cap: usize,
    io: SharedIo,
    state: Mutex<OutState>,
    /// Set when an event could not be queued: the connection must close
    /// with 1013 and resume from history.
    pub lagged: AtomicBool,
    /// Wakes the connection task: events queued, bytes pending, lagging.
    pub notify: Notify,
}

impl std::fmt::Debug for Outbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Outbox")
            .field("wire", &self.wire)
            .field("cap", &self.cap)
            .finish_non_exhaustive()
    }
}

impl Outbox {
    pub fn new(io: SharedIo, endpoint: Endpoint, cap: usize) -> Outbox {
        Outbox {
            wire: endpoint.wire(),
            endpoint,
            cap: cap.max(1),
            io,
            state: Mutex::new(OutState {
                live: false,
                closed: false,
                queue: VecDeque::new(),
                last_sent: Vec::new(),
                proven: Vec::new(),
                pings: VecDeque::new(),
                next_ping: 0,
                unproven: false,
                proven_moved: false,
            }),
            lagged: AtomicBool::new(false),
            notify: Notify::new(),
        }
    }

    fn state(&self) -> MutexGuard<'_, OutState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The exactly-once filter; records the sequence when it passes.
    fn should_send(&self, st: &mut OutState, ev: &HubEvent) -> bool {
        if !self.endpoint.passes(&ev.channel) {
            return false;
        }
        if let Some(last) = st.last_mut(&ev.channel) {
            if ev.seq <= *last {
                return false;
            }
            *last = ev.seq;
            st.unproven = true;
            return true;
        }
        st.unproven = true;
        st.last_sent.push((Arc::clone(&ev.channel), ev.seq));
        // A channel first met here (through a pattern): nothing of it was
        // proven yet.
        raise(&mut st.proven, &ev.channel, ev.seq.saturating_sub(1));
        true
    }

    /// Offers an event (from the fan-out, under the channel's lock):
    /// written at once when `direct` and the connection is live, else
    /// queued for its task, which writes queued events in batches (several
    /// frames per `send()`, what a burst of events wants); false when the
    /// queue was full (the connection is then marked lagging).
    pub fn offer(&self, ev: &Arc<HubEvent>, direct: bool) -> bool {
        let mut st = self.state();
        if st.closed {
            return true;
        }
        if st.live && direct {
            if !self.should_send(&mut st, ev) {
                return true;
            }
            if self.io.write_now(ev.frame(self.wire)) == Raw::Deferred {
                st.live = false;
                drop(st);
                self.notify.notify_one();
            }
            return true;
        }
        st.live = false;
        if st.queue.len() >= self.cap {
            drop(st);
            if !self.lagged.swap(true, Ordering::AcqRel) {
                self.notify.notify_one();
            }
            return false;
        }
        let was_empty = st.queue.is_empty();
        st.queue.push_back(Arc::clone(ev));
        drop(st);
        // The task drains until it finds the queue empty: one wake per
        // run of queued events is enough.
        if was_empty {
            self.notify.notify_one();
        }
        true
    }

    /// How many events wait in the queue.
    pub fn queued(&self) -> usize {
        self.state().queue.len()
    }

    /// Stops direct writes (before a subscribe, whose acknowledgement and
    /// backlog must precede any live event of that channel).
    pub fn pause(&self) {
        self.state().live = false;
    }

    /// Nothing more goes out (closing).
    pub fn close(&self) {
        let mut st = self.state();
        st.closed = true;
        st.live = false;
        st.queue.clear();
    }

    /// Records a position as sent (a resumed or fresh subscription).
    pub fn set_sent(&self, channel: &str, seq: u64) {
        self.state().set_last(channel, seq);
    }

    /// Queues `ev`'s frame for the connection task's next write if the
    /// filter passes (a subscription's backlog).
    pub fn queue_backlog(&self, ev: &HubEvent) {
        let mut st = self.state();
        if !st.closed && self.should_send(&mut st, ev) {
            self.io.queue(ev.frame(self.wire));
        }
    }

    /// Moves up to `max` queued events that pass the filter into the
    /// socket's pending bytes. With nothing queued and nothing pending,
    /// goes live instead and returns false: the connection task is done.
    pub fn take_queued(&self, max: usize) -> bool {
        self.take_queued_noting(max, &mut None)
    }

    /// [`Outbox::take_queued`], setting `oldest` to the publish time of
    /// the first event it took, if any (for the delivery latency).
    pub fn take_queued_noting(&self, max: usize, oldest: &mut Option<DateTime<Utc>>) -> bool {
        let mut st = self.state();
        if st.closed {
            return false;
        }
        if st.queue.is_empty() {
            if self.io.is_clean() {
                st.live = true;
                return false;
            }
            return true;
        }
        if let Some(first) = st.queue.front() {
            *oldest = Some(first.time);
        }
        for _ in 0..max {
            let Some(ev) = st.queue.pop_front() else {
                break;
            };
            if self.should_send(&mut st, &ev) {
                self.io.queue(ev.frame(self.wire));
            }
        }
        true
    }

    /// Whether events went out since the last ping (their delivery is not
    /// proven yet).
    pub fn proof_wanted(&self) -> bool {
        self.state().unproven
    }

    /// Puts a ping on the stream, after every event sent so far, and
    /// remembers what those were: its pong proves them delivered. False
    /// when the connection is closed.
    pub fn ping(&self) -> bool {
        let mut st = self.state();
        if st.closed {
            return false;
        }
        st.next_ping += 1;
        st.unproven = false;
        let id = st.next_ping;
        if st.pings.len() == PINGS_KEPT {
            st.pings.pop_front();
        }
        let sent = st.last_sent.clone();
        st.pings.push_back((id, sent));
        // A server's frame is not masked: FIN + ping, 8 bytes of payload.
        let mut frame = [0u8; 10];
        frame[0] = 0x89;
        frame[1] = 8;
        frame[2..].copy_from_slice(&id.to_be_bytes());
        if st.live {
            if self.io.write_now(&frame) == Raw::Deferred {
                st.live = false;
                drop(st);
                self.notify.notify_one();
            }
        } else {
            // Behind what is pending; events still queued come after it.
            self.io.queue(&frame);
        }
        true
    }

    /// A pong with `payload` came: if it answers one of this connection's
    /// pings, what was sent before that ping is delivered.
    pub fn ponged(&self, payload: &[u8]) {
        let Ok(id) = <[u8; 8]>::try_from(payload).map(u64::from_be_bytes) else {
            return;
        };
        let mut st = self.state();
        let Some(i) = st.pings.iter().position(|(n, _)| *n == id) else {
            return;
        };
        // Earlier pings' positions are at or below these.
        let mut answered = st.pings.drain(..=i);
        let Some((_, sent)) = answered.next_back() else {
            return;
        };
        drop(answered);
        for (channel, seq) in sent {
            raise(&mut st.proven, &channel, seq);
        }
        st.proven_moved = true;
    }

    /// [`Outbox::delivered`], if more was proven since it was last asked
    /// here.
    pub fn newly_delivered(&self) -> Option<HashMap<String, u64>> {
        let moved = std::mem::take(&mut self.state().proven_moved);
        moved.then(|| self.delivered())
    }

    /// Where the peer is known to have got to per channel (its user's
    /// cursors, when the connection ends): what its last answered ping
    /// followed, or where the subscription started.
    pub fn delivered(&self) -> HashMap<String, u64> {
        self.state()
            .proven
            .iter()
            .map(|(c, s)| (c.to_string(), *s))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Utc;
    use serde_json::value::RawValue;
    use tokio::io::AsyncReadExt;

    /// The direct `send()` is taken exactly where it is built in (Linux,
    /// without `portable-io`), and the bytes arrive either way.
    #[tokio::test]
    async fn plain_tcp_is_written_directly_only_where_the_fast_path_is_built() {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let a = TcpStream::connect(l.local_addr().unwrap()).await.unwrap();
        let (mut b, _) = l.accept().await.unwrap();
        let io = SharedIo::tcp(a, Bytes::new());
        let direct = io.lock().io.as_ref().unwrap().send_now(b"").is_some();
        assert_eq!(
            direct,
            cfg!(all(target_os = "linux", not(feature = "portable-io")))
        );
        assert_eq!(io.write_now(b"frame"), Raw::Written);
        let mut got = [0u8; 5];
        tokio::time::timeout(std::time::Duration::from_secs(5), b.read_exact(&mut got))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(&got, b"frame");
    }

    /// hyper's read buffer is not held by a connection: what it read past
    /// the request is copied out, given first, and the buffer is freed.
    #[tokio::test]
    async fn a_connection_holds_no_part_of_the_http_servers_read_buffer() {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        for leftover in [&b""[..], b"\x81\x02hi"] {
            let a = TcpStream::connect(l.local_addr().unwrap()).await.unwrap();
            let (_b, _) = l.accept().await.unwrap();
            // As hyper hands it over: the rest of its 8 KiB buffer after
            // the request was split off.
            let mut buffer = bytes::BytesMut::with_capacity(8192);
            buffer.extend_from_slice(b"GET / HTTP/1.1\r\n\r\n");
            buffer.extend_from_slice(leftover);
            let request = buffer.split_to(18).freeze();
            let io = SharedIo::tcp(a, buffer.freeze());
            assert!(request.is_unique(), "the connection holds hyper's buffer");
            let mut got = vec![0u8; leftover.len()];
            let mut reader = io.clone();
            tokio::time::timeout(
                std::time::Duration::from_secs(5),
                reader.read_exact(&mut got),
            )
            .await
            .unwrap()
            .unwrap();
            assert_eq!(got, leftover, "what was read past the request comes first");
        }
    }

    fn ev(seq: u64) -> Arc<HubEvent> {
        Arc::new(HubEvent::new(
            Arc::from("c"),
            seq,
            "t".into(),
            crate::protocol::Severity::Info,
            chrono::DateTime::<Utc>::from_timestamp(1_772_366_400, 0).unwrap(),
            None,
            RawValue::from_string(format!(r#"{{"n":{seq}}}"#)).unwrap(),
        ))
    }

    impl Outbox {
        fn offer_now(&self, ev: &Arc<HubEvent>) -> bool {
            self.offer(ev, true)
        }

        /// Polls the pending bytes out (the connection task does this
        /// through its tungstenite stream's flush).
        async fn drain(&self) -> io::Result<()> {
            std::future::poll_fn(|cx| self.io.lock().poll_drain(cx)).await
        }
    }

    /// A ping goes on the stream after the events sent before it, as a
    /// server's unmasked ping frame; only its own pong proves those
    /// delivered, and a connection's positions start where its
    /// subscription did.
    #[tokio::test]
    async fn a_ping_follows_what_was_sent_and_its_pong_proves_it() {
        let (a, mut b) = tokio::io::duplex(1 << 16);
        let out = Outbox::new(SharedIo::new(a), Endpoint::Native, 16);
        out.set_sent("c", 0);
        assert!(!out.proof_wanted());
        assert!(out.offer_now(&ev(1)));
        assert!(out.take_queued(64));
        out.drain().await.unwrap();
        assert!(!out.take_queued(64));
        assert!(out.proof_wanted(), "sent, not yet proven");
        assert!(out.ping());
        assert!(!out.proof_wanted());
        assert!(out.offer_now(&ev(2)), "after the ping: not covered by it");
        out.drain().await.unwrap();
        let mut got = vec![0u8; 4096];
        let n = b.read(&mut got).await.unwrap();
        let mut want = ev(1).frame(Wire::Native).to_vec();
        want.extend_from_slice(&[0x89, 8, 0, 0, 0, 0, 0, 0, 0, 1]);
        want.extend_from_slice(ev(2).frame(Wire::Native));
        assert_eq!(&got[..n], &want[..]);

        let at = |out: &Outbox| out.delivered().get("c").copied();
        assert_eq!(at(&out), Some(0), "the subscription's start");
        out.ponged(&7u64.to_be_bytes());
        out.ponged(b"not ours");
        assert_eq!(at(&out), Some(0), "pongs to nothing of ours prove nothing");
        out.ponged(&1u64.to_be_bytes());
        assert_eq!(at(&out), Some(1), "what came before ping 1");
        out.ponged(&1u64.to_be_bytes());
        assert_eq!(at(&out), Some(1), "a repeated pong changes nothing");
    }

    /// A channel first met through a pattern has nothing proven until a
    /// pong: its cursor stays before the first event it was sent.
    #[tokio::test]
    async fn a_channel_first_met_through_a_pattern_starts_unproven() {
        let (a, _b) = tokio::io::duplex(1 << 16);
        let out = Outbox::new(SharedIo::new(a), Endpoint::Native, 16);
        out.queue_backlog(&ev(5));
        out.queue_backlog(&ev(6));
        assert_eq!(out.delivered().get("c"), Some(&4));
        assert!(out.ping());
        out.ponged(&1u64.to_be_bytes());
        assert_eq!(out.delivered().get("c"), Some(&6));
        out.close();
        assert!(!out.ping(), "nothing goes out once closed");
    }

    #[tokio::test]
    async fn live_events_go_straight_out_queued_ones_in_order() {
        let (a, mut b) = tokio::io::duplex(1 << 16);
        let io = SharedIo::new(a);
        let out = Outbox::new(io.clone(), Endpoint::Native, 4);
        // Not live yet: queued.
        assert!(out.offer_now(&ev(1)));
        assert!(out.take_queued(64));
        out.drain().await.unwrap();
        assert!(!out.take_queued(64), "queue empty and clean: live");
        assert!(out.offer_now(&ev(2)));
        assert!(out.offer_now(&ev(2)), "a repeat is filtered, not an error");
        // A burst is queued for the task, not written by the fan-out.
        assert!(out.offer(&ev(3), false));
        assert!(out.take_queued(64));
        out.drain().await.unwrap();
        let mut got = vec![0u8; 4096];
        let n = b.read(&mut got).await.unwrap();
        let mut want = ev(1).frame(Wire::Native).to_vec();
        want.extend_from_slice(ev(2).frame(Wire::Native));
        want.extend_from_slice(ev(3).frame(Wire::Native));
        assert_eq!(&got[..n], &want[..]);
    }

    /// A TCP socket taken back from hyper: what hyper had read past the
    /// request is read first, and live events go to the descriptor.
    #[tokio::test]
    async fn a_tcp_socket_reads_its_prefix_first_and_takes_live_events() {
        use tokio::io::AsyncWriteExt;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let mut client = tokio::net::TcpStream::connect(listener.local_addr().unwrap())
            .await
            .unwrap();
        let (server, _) = listener.accept().await.unwrap();
        let mut io = SharedIo::tcp(server, Bytes::from_static(b"early "));
        client.write_all(b"later").await.unwrap();
        let mut got = Vec::new();
        let mut buf = [0u8; 64];
        while got.len() < b"early later".len() {
            let n = tokio::time::timeout(std::time::Duration::from_secs(5), io.read(&mut buf))
                .await
                .unwrap()
                .unwrap();
            assert!(n > 0);
            got.extend_from_slice(&buf[..n]);
        }
        assert_eq!(got, b"early later");

        let out = Outbox::new(io.clone(), Endpoint::Native, 4);
        assert!(out.offer_now(&ev(1)));
        assert!(out.take_queued(64));
        out.drain().await.unwrap();
        assert!(!out.take_queued(64), "queue empty and clean: live");
        assert!(out.offer_now(&ev(2)), "live: written to the descriptor");
        assert!(io.is_clean(), "nothing left pending");
        io.close();
        let mut all = Vec::new();
        tokio::time::timeout(
            std::time::Duration::from_secs(5),
            client.read_to_end(&mut all),
        )
        .await
        .unwrap()
        .unwrap();
        let mut want = ev(1).frame(Wire::Native).to_vec();
        want.extend_from_slice(ev(2).frame(Wire::Native));
        assert_eq!(all, want);
    }

    #[tokio::test]
    async fn a_full_socket_defers_then_the_queue_fills_and_lags() {
        let (a, mut b) = tokio::io::duplex(64);
        let io = SharedIo::new(a);
        let out = Outbox::new(io.clone(), Endpoint::Native, 2);
        assert!(!out.take_queued(64));
        assert!(out.offer_now(&ev(1)), "partially written, rest pending");
        assert!(out.offer_now(&ev(2)));
        assert!(out.offer_now(&ev(3)));
        assert!(!out.offer_now(&ev(4)), "queue of 2 is full");
        assert!(out.lagged.load(Ordering::Acquire));
        // The reader takes everything; nothing was torn or reordered.
        let reader = tokio::spawn(async move {
            let mut all = Vec::new();
            let mut buf = [0u8; 256];
            while let Ok(n) = b.read(&mut buf).await {
                if n == 0 {
                    break;
                }
                all.extend_from_slice(&buf[..n]);
            }
            all
        });
        out.drain().await.unwrap();
        while out.take_queued(64) {
            out.drain().await.unwrap();
        }
        io.close();
        drop(out);
        let all = reader.await.unwrap();
        let mut want = Vec::new();
        for s in 1..=3 {
            want.extend_from_slice(ev(s).frame(Wire::Native));
        }
        assert_eq!(all, want);
    }
}
