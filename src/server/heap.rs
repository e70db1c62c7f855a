//! The process's allocator and the hub's readings of its heap: bytes in
//! use by the program, and bytes the allocator holds from the system for
//! it (in use, plus freed but not yet returned). Resident memory alone
//! cannot tell a leak (in use grows) from an allocator keeping freed
//! memory (held grows, in use does not); operators see both in `/metrics`
//! and the stats, and the soak judges both (docs/RELIABILITY.md, "Soak").
//!
//! With the `jemalloc` feature (the default, except on MSVC) the
//! `riskwatch` command, which runs the hub, installs jemalloc as its
//! global allocator: under the hub's connection churn glibc's arenas grew
//! 17 % in 30 minutes over a flat heap in use, which jemalloc's
//! decay-based purging does not do (docs/RELIABILITY.md, "Soak"). Other
//! programs on this library choose their own (the desktop app keeps the
//! system's). The readings come from whichever allocator is the
//! program's, found by a probe: jemalloc's statistics or glibc's
//! `mallinfo2`; other allocators report none.

use std::sync::OnceLock;

use serde::Serialize;

/// jemalloc, for a program's `#[global_allocator]` (the `riskwatch`
/// command installs it, `src/main.rs`).
#[cfg(all(feature = "jemalloc", not(target_env = "msvc")))]
pub use tikv_jemallocator::Jemalloc;

// The library's own tests run on the allocator the command ships with.
#[cfg(all(test, feature = "jemalloc", not(target_env = "msvc")))]
#[global_allocator]
static TEST_ALLOCATOR: Jemalloc = Jemalloc;

/// One reading.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Heap {
    /// Allocated and not yet freed (jemalloc: `stats.allocated`; glibc:
    /// `uordblks` + `hblkhd`).
    pub in_use_bytes: u64,
    /// Taken from the system and kept: what is held beyond
    /// `in_use_bytes` is free inside it (jemalloc: `stats.resident`, its
    /// resident pages, freed ones not yet purged among them; glibc: the
    /// arenas plus mmapped blocks, `arena` + `hblkhd`).
    pub held_bytes: u64,
    /// Which allocator: `jemalloc` or `glibc`.
    pub allocator: &'static str,
}

/// The allocator's counts now, from whichever is the program's global
/// allocator; none where that is neither jemalloc nor glibc's. For a
/// stats request or a metrics scrape, not for a hot path (jemalloc
/// refreshes its statistics under its locks; glibc walks its arenas
/// under theirs).
pub fn heap() -> Option<Heap> {
    match allocator() {
        #[cfg(all(feature = "jemalloc", not(target_env = "msvc")))]
        "jemalloc" => jemalloc_heap(),
        #[cfg(all(target_os = "linux", target_env = "gnu"))]
        "glibc" => glibc_heap(),
        _ => None,
    }
}

/// The program's global allocator: `jemalloc` when it installed it,
/// else `glibc` on glibc systems, else `system`. Probed once: a block
/// allocated through Rust's global allocator either shows in this
/// thread's jemalloc count or it does not.
pub fn allocator() -> &'static str {
    static NAME: OnceLock<&'static str> = OnceLock::new();
    NAME.get_or_init(|| {
        if jemalloc_is_global() {
            "jemalloc"
        } else if cfg!(all(target_os = "linux", target_env = "gnu")) {
            "glibc"
        } else {
            "system"
        }
    })
}

#[cfg(all(feature = "jemalloc", not(target_env = "msvc")))]
fn jemalloc_is_global() -> bool {
    let Ok(count) = tikv_jemalloc_ctl::thread::allocatedp::read() else {
        return false;
    };
    // This thread's own counter: no other thread's work moves it.
    let before = count.get();
    let block = std::hint::black_box(Vec::<u8>::with_capacity(64 << 10));
    let after = count.get();
    drop(block);
    after >= before + (64 << 10)
}

#[cfg(not(all(feature = "jemalloc", not(target_env = "msvc"))))]
fn jemalloc_is_global() -> bool {
    false
}

#[cfg(all(feature = "jemalloc", not(target_env = "msvc")))]
fn jemalloc_heap() -> Option<Heap> {
    use tikv_jemalloc_ctl::{epoch, stats};
    // The statistics are a snapshot taken when the epoch advances.
    epoch::advance().ok()?;
    Some(Heap {
        in_use_bytes: stats::allocated::read().ok()? as u64,
        held_bytes: stats::resident::read().ok()? as u64,
        allocator: "jemalloc",
    })
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn glibc_heap() -> Option<Heap> {
    // SAFETY: mallinfo2 takes no arguments and returns a plain struct by
    // value; glibc (2.33 and later) reads its own counters under its own
    // locks.
    let m = unsafe { libc::mallinfo2() };
    let mapped = m.hblkhd as u64;
    Some(Heap {
        in_use_bytes: m.uordblks as u64 + mapped,
        held_bytes: m.arena as u64 + mapped,
        allocator: "glibc",
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_allocation_shows_in_use_and_held() {
        let before = heap().expect("the allocator reports its heap");
        assert!(before.held_bytes > 0, "{before:?}");
        // Large enough to be a block of its own in either allocator
        // (above glibc's mmap threshold, a jemalloc large extent), so it
        // is counted at once whichever arena or thread cache served it.
        let block = std::hint::black_box(vec![1u8; 8 << 20]);
        let during = heap().unwrap();
        assert!(
            during.in_use_bytes >= before.in_use_bytes + (8 << 20),
            "{before:?} -> {during:?}"
        );
        assert!(
            during.held_bytes >= during.in_use_bytes,
            "what is in use is held: {during:?}"
        );
        drop(block);
        let after = heap().unwrap();
        assert!(
            after.in_use_bytes + (8 << 20) <= during.in_use_bytes,
            "{during:?} -> {after:?}"
        );
    }

    /// These tests run on jemalloc (installed above), and the probe says
    /// so; an 8 MiB block Rust allocates is not one of glibc's.
    #[cfg(all(feature = "jemalloc", target_os = "linux", target_env = "gnu"))]
    #[test]
    fn the_probe_finds_jemalloc_and_glibc_sees_none_of_its_blocks() {
        assert_eq!(allocator(), "jemalloc");
        assert_eq!(heap().unwrap().allocator, "jemalloc");
        let glibc_held = || glibc_heap().unwrap().held_bytes;
        let before = glibc_held();
        let block = std::hint::black_box(vec![1u8; 8 << 20]);
        assert!(
            glibc_held() < before + (8 << 20),
            "the block came from glibc: {before} -> {}",
            glibc_held()
        );
        drop(block);
    }

    /// glibc's reading sees a block glibc's malloc hands out.
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    #[test]
    fn glibc_counts_what_its_malloc_hands_out() {
        let before = glibc_heap().unwrap();
        // SAFETY: a plain malloc/free pair of 8 MiB, written to once.
        let during = unsafe {
            let p = libc::malloc(8 << 20).cast::<u8>();
            assert!(!p.is_null());
            p.write_volatile(1);
            let during = glibc_heap().unwrap();
            libc::free(p.cast());
            during
        };
        assert!(
            during.in_use_bytes >= before.in_use_bytes + (8 << 20),
            "{before:?} -> {during:?}"
        );
    }
}
