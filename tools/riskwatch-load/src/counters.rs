//! What every mode counts: the counters a run's clients and readers share,
//! the latency histogram they record into, and the probe events the
//! publisher sends (`{"t": <ns since the epoch>, "k": <number>}` in a
//! native `event` frame).

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use hdrhistogram::Histogram;

/// A latency histogram in µs, 1 µs to 120 s at 3 significant digits: the
/// shape every mode records and merges.
pub fn latency_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 120_000_000, 3).expect("valid histogram bounds")
}

/// Counters shared by every client of a run.
#[derive(Debug)]
pub struct Shared {
    /// Connections that reached `subscribed`.
    pub opened: AtomicU64,
    /// Wall clock (ns) of the latest successful open.
    pub last_open_ns: AtomicU64,
    /// Connections open and subscribed now.
    pub held: AtomicU64,
    pub peak: AtomicU64,
    /// Connects that failed (TCP, upgrade, or subscribe).
    pub failed: AtomicU64,
    /// Failures by kind, with a count (a few distinct messages).
    errors: Mutex<BTreeMap<String, u64>>,
    /// Subscribed connections the hub closed with a close frame, by code.
    closes: Mutex<BTreeMap<u16, u64>>,
    /// Subscribed connections that ended without a close frame.
    pub dropped: AtomicU64,
    /// Probe events received, per client.
    pub received: Box<[AtomicU64]>,
    /// Probe events received, in total.
    pub deliveries: AtomicU64,
    /// Events whose sequence was not the previous one + 1.
    pub out_of_sequence: AtomicU64,
    /// Wall clock (ns) of the latest delivery.
    pub last_delivery_ns: AtomicU64,
    /// Receive time − send time of each probe, in µs; none when latency is
    /// not recorded (throughput mode, where the lock would cost more than
    /// the measurement is worth).
    pub latency: Option<Mutex<Histogram<u64>>>,
    /// Per probe `k` (fan-out): the slowest delivery's latency in µs, i.e.
    /// when the last subscriber had it.
    pub probe_max_us: Box<[AtomicU64]>,
}

impl Shared {
    /// `probes` > 0 records latency, overall and per probe.
    pub fn new(clients: usize, probes: usize) -> Shared {
        Shared {
            opened: AtomicU64::new(0),
            last_open_ns: AtomicU64::new(0),
            held: AtomicU64::new(0),
            peak: AtomicU64::new(0),
            failed: AtomicU64::new(0),
            errors: Mutex::new(BTreeMap::new()),
            closes: Mutex::new(BTreeMap::new()),
            dropped: AtomicU64::new(0),
            received: (0..clients).map(|_| AtomicU64::new(0)).collect(),
            deliveries: AtomicU64::new(0),
            out_of_sequence: AtomicU64::new(0),
            last_delivery_ns: AtomicU64::new(0),
            latency: (probes > 0).then(|| Mutex::new(latency_histogram())),
            probe_max_us: (0..probes).map(|_| AtomicU64::new(0)).collect(),
        }
    }

    pub fn fail(&self, why: String) {
        self.failed.fetch_add(1, Ordering::Relaxed);
        let mut errors = self.errors.lock().expect("errors lock");
        // Keep the table small: distinct kinds only, then one bucket.
        let key = if errors.len() < 16 || errors.contains_key(&why) {
            why
        } else {
            "other".into()
        };
        *errors.entry(key).or_default() += 1;
    }

    pub fn errors(&self) -> BTreeMap<String, u64> {
        self.errors.lock().expect("errors lock").clone()
    }

    /// A subscribed connection the hub closed with `code`.
    pub fn closed(&self, code: u16) {
        *self
            .closes
            .lock()
            .expect("closes lock")
            .entry(code)
            .or_default() += 1;
    }

    pub fn closes(&self) -> BTreeMap<u16, u64> {
        self.closes.lock().expect("closes lock").clone()
    }

    /// The fewest probes any client has received.
    pub fn min_received(&self) -> u64 {
        self.received
            .iter()
            .map(|r| r.load(Ordering::Relaxed))
            .min()
            .unwrap_or(0)
    }

    /// Clients that received exactly `n` probes.
    pub fn clients_with(&self, n: u64) -> usize {
        self.received
            .iter()
            .filter(|r| r.load(Ordering::Relaxed) == n)
            .count()
    }
}

/// A probe as read from a native `event` frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Probe {
    pub seq: u64,
    /// Send time, ns since the epoch.
    pub t: u64,
    /// The probe's number.
    pub k: u64,
}

/// Socket.IO's wrapping of an `event` the publisher emitted (a `2` EVENT
/// packet in an Engine.IO `4` MESSAGE): `42["event",{…}]`.
pub const SOCKETIO_EVENT: &str = r#"42["event","#;

/// The probe in a native `event` frame whose data is `{"t": <ns since the
/// epoch>, "k": <number>}`, bare (riskwatch, or a broadcast hub passing on
/// what the publisher sent) or as a Socket.IO event. A scan, not a parse:
/// at 10,000 subscribers the tool's own work per delivery is part of the
/// latency.
pub fn probe(text: &str) -> Option<Probe> {
    let text = text.strip_prefix(SOCKETIO_EVENT).unwrap_or(text);
    if !text.starts_with(r#"{"op":"event""#) {
        return None;
    }
    let seq = number_after(text, r#""seq":"#)?;
    let data = &text[text.find(r#""data":"#)?..];
    let t = number_after(data, r#""t":"#)?;
    let k = number_after(data, r#""k":"#).unwrap_or(0);
    Some(Probe { seq, t, k })
}

fn number_after(s: &str, key: &str) -> Option<u64> {
    let rest = &s[s.find(key)? + key.len()..];
    let end = rest
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(rest.len());
    rest[..end].parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probes_are_read_from_native_events() {
        let ev = r#"{"op":"event","channel":"fanout","seq":42,"type":"load_probe","severity":"info","ts":"2026-03-01T12:00:00.000Z","data":{"t":1772366400123456789,"k":3}}"#;
        assert_eq!(
            probe(ev),
            Some(Probe {
                seq: 42,
                t: 1772366400123456789,
                k: 3
            })
        );
        assert_eq!(probe(r#"{"op":"pong"}"#), None);
        let io = format!("{SOCKETIO_EVENT}{ev}]");
        assert_eq!(probe(&io), probe(ev));
        assert_eq!(
            probe(r#"42["other",{"op":"event","seq":1,"data":{"t":1}}]"#),
            None
        );
        assert_eq!(probe(r#"{"op":"event","seq":1,"data":{"x":1}}"#), None);
    }
}
