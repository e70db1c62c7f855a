//! Connection caps: how many TCP connections the hub holds in all and per
//! peer address, counted from accept until the socket closes (a WebSocket
//! included), so one address or a flood cannot take the hub's memory.
//! A connection over a cap is closed at once, before anything is read.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// The counts and their limits.
#[derive(Debug)]
pub struct Caps {
    max_total: usize,
    max_per_ip: usize,
    open: Mutex<(usize, HashMap<IpAddr, usize>)>,
    /// Connections closed at accept for being over a cap.
    pub refused: AtomicU64,
}

/// One admitted connection; its count is released when the last clone of
/// it drops (the HTTP connection and, after an upgrade, the WebSocket
/// task each hold one).
#[derive(Debug)]
pub struct Slot {
    caps: Arc<Caps>,
    ip: IpAddr,
}

impl Caps {
    /// `0` means no limit.
    pub fn new(max_total: usize, max_per_ip: usize) -> Arc<Caps> {
        let unlimited = |n: usize| if n == 0 { usize::MAX } else { n };
        Arc::new(Caps {
            max_total: unlimited(max_total),
            max_per_ip: unlimited(max_per_ip),
            open: Mutex::new((0, HashMap::new())),
            refused: AtomicU64::new(0),
        })
    }

    /// A slot for a new connection from `ip`, or `None` when a cap is
    /// reached.
    pub fn admit(self: &Arc<Self>, ip: IpAddr) -> Option<Arc<Slot>> {
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        let from_ip = open.1.get(&ip).copied().unwrap_or(0);
        if open.0 >= self.max_total || from_ip >= self.max_per_ip {
            drop(open);
            self.refused.fetch_add(1, Ordering::Relaxed);
            return None;
        }
        open.0 += 1;
        open.1.insert(ip, from_ip + 1);
        Some(Arc::new(Slot {
            caps: Arc::clone(self),
            ip,
        }))
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut open = self.caps.open.lock().unwrap_or_else(|e| e.into_inner());
        open.0 = open.0.saturating_sub(1);
        if let Some(n) = open.1.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                open.1.remove(&self.ip);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caps_hold_per_address_and_in_all_and_free_on_drop() {
        let caps = Caps::new(3, 2);
        let a: IpAddr = [10, 0, 0, 1].into();
        let b: IpAddr = [10, 0, 0, 2].into();
        let a1 = caps.admit(a).unwrap();
        let _a2 = caps.admit(a).unwrap();
        assert!(caps.admit(a).is_none(), "per address");
        let _b1 = caps.admit(b).unwrap();
        assert!(caps.admit(b).is_none(), "in all");
        drop(a1);
        assert!(caps.admit(b).is_some());
        assert_eq!(caps.refused.load(Ordering::Relaxed), 2);
    }
}
