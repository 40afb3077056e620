//! `LockedHeap` over other locks: the critical-section lock and a user-written `RawMutex`.

use std::alloc::{GlobalAlloc, Layout};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use alloc_buddy_simple::LockedHeap;
use alloc_buddy_simple::lock_api::{GuardSend, RawMutex};

/// A leaked, page-aligned arena of `size` bytes.
fn arena(size: usize) -> *mut u8 {
    let layout = Layout::from_size_align(size, 4096).unwrap();
    // SAFETY: the layout has a non-zero size.
    let mem = unsafe { std::alloc::alloc(layout) };
    assert!(!mem.is_null());
    mem
}

/// Mixed allocations, reallocations and frees from several threads; every block is filled and
/// checked. Reallocations go up to 6000 bytes, so their copies run both under the lock (4 KiB or
/// less) and without it.
fn hammer<H: GlobalAlloc + Sync>(heap: &H, threads: usize, ops: usize) {
    std::thread::scope(|s| {
        for t in 0..threads {
            s.spawn(move || {
                let mut live: Vec<(*mut u8, Layout, u8)> = Vec::new();
                let mut x = 0x9e37_79b9_7f4a_7c15u64 ^ t as u64;
                for i in 0..ops {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    if live.len() < 64 && (x % 3 != 0 || live.is_empty()) {
                        let layout = Layout::from_size_align(1 + (x >> 8) as usize % 3000, 8).unwrap();
                        // SAFETY: non-zero size.
                        let p = unsafe { heap.alloc(layout) };
                        assert!(!p.is_null());
                        let tag = i as u8;
                        // SAFETY: `p` holds `layout.size()` bytes.
                        unsafe { p.write_bytes(tag, layout.size()) };
                        live.push((p, layout, tag));
                    } else if x % 5 == 0 {
                        let slot = (x >> 16) as usize % live.len();
                        let (p, layout, tag) = live[slot];
                        let new_size = 1 + (x >> 24) as usize % 6000;
                        // SAFETY: `p` is live with `layout`; the new size is non-zero.
                        let q = unsafe { heap.realloc(p, layout, new_size) };
                        assert!(!q.is_null());
                        let kept = layout.size().min(new_size);
                        // SAFETY: `q` holds `new_size` bytes, the first `kept` of them copied.
                        let bytes = unsafe { std::slice::from_raw_parts(q, kept) };
                        assert!(bytes.iter().all(|&b| b == tag), "realloc of {p:p} lost bytes");
                        // SAFETY: as above.
                        unsafe { q.write_bytes(tag, new_size) };
                        live[slot] = (q, Layout::from_size_align(new_size, 8).unwrap(), tag);
                    } else {
                        let (p, layout, tag) = live.swap_remove((x >> 16) as usize % live.len());
                        // SAFETY: `p` is live with `layout`, filled with `tag`.
                        let bytes = unsafe { std::slice::from_raw_parts(p, layout.size()) };
                        assert!(bytes.iter().all(|&b| b == tag), "block {p:p} overwritten");
                        // SAFETY: as above.
                        unsafe { heap.dealloc(p, layout) };
                    }
                }
                for (p, layout, _) in live {
                    // SAFETY: live with `layout`.
                    unsafe { heap.dealloc(p, layout) };
                }
            });
        }
    });
}

#[cfg(feature = "critical-section")]
#[test]
fn critical_section_lock_serves_threads() {
    use alloc_buddy_simple::CriticalSectionLock;

    let heap: LockedHeap<32, CriticalSectionLock> = LockedHeap::new();
    // SAFETY: a fresh arena used by nothing else.
    unsafe { heap.init(arena(4 << 20), 4 << 20) }.unwrap();
    let fresh = heap.lock().stats();
    hammer(&heap, 4, if cfg!(miri) { 100 } else { 20_000 });
    let mut guard = heap.lock();
    guard.check_invariants().unwrap();
    guard.coalesce();
    assert_eq!(guard.stats(), fresh);
}

#[cfg(feature = "critical-section")]
#[test]
fn critical_section_lock_refuses_reentry() {
    use alloc_buddy_simple::CriticalSectionLock;

    let heap: LockedHeap<32, CriticalSectionLock> = LockedHeap::new();
    let guard = heap.lock();
    // Locking again from the same context would deadlock a spinlock; this lock panics instead,
    // and releases the critical section first, so the test can go on.
    let again = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| drop(heap.lock())));
    assert!(again.is_err());
    drop(guard);
    drop(heap.lock());
}

/// A user-written lock: a spinlock that counts how often it was taken. A kernel's `irqsave`
/// lock has the same shape, with "save and disable interrupts" in `lock` and "restore" in
/// `unlock` (see `examples/kernel-common/common.rs` for one that runs under QEMU).
struct CountingLock {
    locked: AtomicBool,
}

/// How often any `CountingLock` was taken.
static TAKEN: AtomicUsize = AtomicUsize::new(0);

// SAFETY: `locked` is taken with an acquire compare-exchange and released with a release
// store, so only one holder exists at a time.
unsafe impl RawMutex for CountingLock {
    #[allow(clippy::declare_interior_mutable_const)]
    const INIT: Self = CountingLock { locked: AtomicBool::new(false) };
    type GuardMarker = GuardSend;

    fn lock(&self) {
        while !self.try_lock() {
            std::hint::spin_loop();
        }
    }

    fn try_lock(&self) -> bool {
        let ok = self.locked.compare_exchange(false, true, Ordering::Acquire, Ordering::Relaxed).is_ok();
        if ok {
            TAKEN.fetch_add(1, Ordering::Relaxed);
        }
        ok
    }

    unsafe fn unlock(&self) {
        self.locked.store(false, Ordering::Release);
    }
}

static COUNTED: LockedHeap<20, CountingLock> = LockedHeap::new();

#[test]
fn user_lock_is_used_for_every_operation() {
    // SAFETY: a fresh arena used by nothing else.
    unsafe { COUNTED.init(arena(1 << 20), 1 << 20) }.unwrap();
    let before = COUNTED.lock().stats();
    let taken = TAKEN.load(Ordering::Relaxed);
    let ops = if cfg!(miri) { 50 } else { 5_000 };
    hammer(&COUNTED, 2, ops);
    // Every alloc and dealloc of both threads took the lock.
    assert!(TAKEN.load(Ordering::Relaxed) - taken >= 2 * ops);
    let mut guard = COUNTED.lock();
    guard.coalesce();
    assert_eq!(guard.stats(), before);
    assert_eq!(guard.stats().allocations, 0);
}

#[test]
fn arena_macro_does_not_capture_the_callers_names() {
    // A caller's constant named like the macro's own items must still be the size.
    const ARENA: usize = 1 << 16;
    static HEAP: LockedHeap = alloc_buddy_simple::heap_with_arena!(ARENA);
    let layout = Layout::from_size_align(100, 8).unwrap();
    // SAFETY: non-zero size.
    let p = unsafe { HEAP.alloc(layout) };
    assert!(!p.is_null());
    // SAFETY: allocated above with `layout`.
    unsafe { HEAP.dealloc(p, layout) };
    let stats = HEAP.lock().stats();
    assert_eq!(stats.regions, 1);
    assert!(stats.total_bytes > ARENA / 2 && stats.total_bytes < ARENA);
}
