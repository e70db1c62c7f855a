//! The hub process's heap as its allocator counts it: bytes in use by the
//! program, and bytes the allocator holds from the system for it (in use,
//! plus freed but not returned). Resident memory alone cannot tell a leak
//! (in use grows) from an allocator keeping freed memory (held grows, in
//! use does not); operators see both in `/metrics` and the stats, and the
//! soak judges both (docs/RELIABILITY.md, "Soak"). Read from glibc's
//! `mallinfo2` on Linux; other platforms report none.

use serde::Serialize;

/// One reading.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Heap {
    /// Allocated and not yet freed (`uordblks` + `hblkhd`).
    pub in_use_bytes: u64,
    /// Taken from the system: the arenas plus mmapped blocks (`arena` +
    /// `hblkhd`); what is held beyond `in_use_bytes` is free inside them.
    pub held_bytes: u64,
}

/// The allocator's counts now: a walk of its arenas under their locks, for
/// a stats request or a metrics scrape, not for a hot path.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
pub fn heap() -> Option<Heap> {
    // SAFETY: mallinfo2 takes no arguments and returns a plain struct by
    // value; glibc (2.33 and later) reads its own counters under its own
    // locks.
    let m = unsafe { libc::mallinfo2() };
    let mapped = m.hblkhd as u64;
    Some(Heap {
        in_use_bytes: m.uordblks as u64 + mapped,
        held_bytes: m.arena as u64 + mapped,
    })
}

/// No reading outside glibc.
#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
pub fn heap() -> Option<Heap> {
    None
}

#[cfg(all(test, target_os = "linux", target_env = "gnu"))]
mod tests {
    use super::*;

    #[test]
    fn an_allocation_shows_in_use_and_held() {
        let before = heap().expect("glibc reports its heap");
        assert!(before.held_bytes >= before.in_use_bytes);
        // Above glibc's mmap threshold (128 KiB), so it is counted at once
        // whichever arena this test thread uses.
        let block = vec![1u8; 8 << 20];
        let during = heap().unwrap();
        assert!(
            during.in_use_bytes >= before.in_use_bytes + (8 << 20),
            "{before:?} -> {during:?}"
        );
        drop(block);
        let after = heap().unwrap();
        assert!(
            after.in_use_bytes + (8 << 20) <= during.in_use_bytes,
            "{during:?} -> {after:?}"
        );
    }
}
