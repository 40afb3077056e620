//! The crate as the global allocator of a real program: this test binary (its runtime, its test
//! harness and its threads) allocates everything from `HEAP`.
//!
//! Never hold `HEAP.lock()` across anything that allocates (an `assert!` message, a `format!`):
//! the allocation would spin on the lock forever. Every check below copies what it needs out of
//! the guard first.

use std::alloc::{GlobalAlloc, Layout};
use std::collections::{BTreeMap, HashMap};
use std::ptr::{self, NonNull};
use std::thread;

use alloc_buddy_simple::{AllocError, FreeError, HeapError, LockedHeap, heap_with_arena};

// Not named `ARENA`: the macro's own `static mut ARENA` would capture that name (see the report).
const ARENA_SIZE: usize = if cfg!(miri) { 8 << 20 } else { 64 << 20 };

#[global_allocator]
static HEAP: LockedHeap = heap_with_arena!(ARENA_SIZE);

/// Scales an iteration count down under Miri.
const fn n(native: usize) -> usize {
    if cfg!(miri) { native / 100 + 1 } else { native }
}

/// Whether `p` lies in `HEAP`, asked without freeing it: a free of `p + 1` is misaligned if the
/// heap owns the address and not owned otherwise, and either way changes nothing.
fn owned_by_heap(p: *const u8) -> bool {
    let probe = NonNull::new(p.cast_mut().wrapping_add(1)).unwrap();
    // SAFETY: a misaligned pointer is detected and reported before the heap changes.
    let result = unsafe { HEAP.lock().try_dealloc(probe, Layout::new::<u8>()) };
    match result {
        Err(FreeError::Misaligned { .. }) => true,
        Err(FreeError::NotOwned { .. }) => false,
        other => panic!("unexpected probe result {other:?}"),
    }
}

fn check_heap() {
    let result = HEAP.lock().check_invariants();
    if let Err(c) = result {
        panic!("{c}");
    }
}

#[test]
fn the_heap_serves_this_program() {
    let b = Box::new(12345u64);
    let s = HEAP.lock().stats();
    assert_eq!(s.regions, 1, "{s}");
    assert_eq!(s.total_bytes + s.metadata_bytes, ARENA_SIZE, "{s}");
    assert!(s.metadata_bytes <= ARENA_SIZE / 64, "{s}");
    assert!(s.allocations >= 1, "{s}");
    assert!(s.requested_bytes >= 8 && s.allocated_bytes >= s.requested_bytes, "{s}");
    assert!(owned_by_heap(ptr::from_ref(&*b).cast()));
    let local = 0u8;
    assert!(!owned_by_heap(&raw const local));
    assert_eq!(*b, 12345);
    check_heap();
}

#[test]
fn vec_growth() {
    let mut v: Vec<u64> = Vec::new();
    let count = n(200_000);
    for i in 0..count as u64 {
        v.push(i * 3);
    }
    assert!(owned_by_heap(v.as_ptr().cast()));
    // While the vector is live, its bytes are part of what the heap counts.
    let requested = HEAP.lock().stats().requested_bytes;
    assert!(requested >= v.capacity() * 8, "{requested} < {}", v.capacity() * 8);
    assert!(v.iter().enumerate().all(|(i, &x)| x == i as u64 * 3));
    v.truncate(10);
    v.shrink_to_fit();
    assert_eq!(v, (0..10).map(|i| i * 3).collect::<Vec<u64>>());
    check_heap();
}

#[test]
fn boxes_and_strings() {
    let boxes: Vec<Box<[u8]>> =
        (0..n(2000)).map(|i| vec![(i % 251) as u8; i % 700].into_boxed_slice()).collect();
    let strings: Vec<String> =
        (0..n(2000)).map(|i| format!("string number {i} {}", "x".repeat(i % 90))).collect();
    for (i, b) in boxes.iter().enumerate() {
        assert_eq!(b.len(), i % 700);
        assert!(b.iter().all(|&x| x == (i % 251) as u8));
    }
    for (i, s) in strings.iter().enumerate() {
        assert!(s.starts_with(&format!("string number {i} ")));
        assert_eq!(s.len(), format!("string number {i} ").len() + i % 90);
    }
    let big = Box::new([7u8; 100_000]);
    assert!(big.iter().all(|&x| x == 7));
    assert!(owned_by_heap(big.as_ptr()));
    check_heap();
}

#[test]
fn btree_map_with_thousands_of_entries() {
    let mut m = BTreeMap::new();
    let count = n(20_000) as u64;
    for i in 0..count {
        m.insert(i.wrapping_mul(0x9E37_79B9_7F4A_7C15), i.to_string());
    }
    for i in (0..count).step_by(3) {
        assert_eq!(m.remove(&i.wrapping_mul(0x9E37_79B9_7F4A_7C15)), Some(i.to_string()));
    }
    assert_eq!(m.len() as u64, count - count.div_ceil(3));
    for (k, v) in &m {
        let i: u64 = v.parse().unwrap();
        assert_eq!(*k, i.wrapping_mul(0x9E37_79B9_7F4A_7C15));
        assert_ne!(i % 3, 0);
    }
    check_heap();
}

#[test]
fn hash_map_of_vectors() {
    let mut m: HashMap<String, Vec<u32>> = HashMap::new();
    for i in 0..n(10_000) as u32 {
        m.entry(format!("k{}", i % 1000)).or_default().push(i);
    }
    assert_eq!(m.len(), 1000.min(n(10_000)));
    for (k, v) in &m {
        let key: u32 = k[1..].parse().unwrap();
        assert!(v.iter().all(|&x| x % 1000 == key));
    }
    m.retain(|_, v| v.len() > 9);
    m.shrink_to_fit();
    check_heap();
}

#[test]
fn realloc_heavy_loops() {
    let mut s = String::new();
    for i in 0..n(300_000) {
        s.push(char::from(b'a' + (i % 26) as u8));
    }
    assert!(s.bytes().enumerate().all(|(i, b)| b == b'a' + (i % 26) as u8));
    let mut vs: Vec<Vec<u16>> = (0..64).map(|_| Vec::new()).collect();
    for round in 0..n(20_000) {
        let v = &mut vs[round % 64];
        if round % 7 == 0 {
            v.truncate(v.len() / 3);
            v.shrink_to_fit();
        } else {
            v.extend((0..(round % 50) as u16).map(|x| x ^ 0x5555));
        }
    }
    for v in &vs {
        let mut expect_ok = true;
        for &x in v {
            expect_ok &= (x ^ 0x5555) < 50;
        }
        assert!(expect_ok);
    }
    check_heap();
}

#[test]
fn raw_global_alloc_calls() {
    // SAFETY: every layout has a non-zero size; every block is freed with its layout.
    unsafe {
        for align in [1, 8, 64, 4096, 65536] {
            let l = Layout::from_size_align(24, align).unwrap();
            let p = std::alloc::alloc(l);
            assert!(!p.is_null());
            assert_eq!(p.addr() % align, 0);
            p.write_bytes(0xEE, 24);
            let q = std::alloc::realloc(p, l, 5000);
            assert!(!q.is_null());
            assert_eq!(q.addr() % align, 0);
            assert!(std::slice::from_raw_parts(q, 24).iter().all(|&b| b == 0xEE));
            std::alloc::dealloc(q, Layout::from_size_align(5000, align).unwrap());
        }
        // Failure is a null pointer, not an abort, and leaves the old block alone.
        assert!(HEAP.alloc(Layout::from_size_align(ARENA_SIZE, 1).unwrap()).is_null());
        assert!(HEAP.alloc(Layout::from_size_align(1 << 40, 1).unwrap()).is_null());
        let l = Layout::from_size_align(16, 8).unwrap();
        let p = HEAP.alloc(l);
        assert!(!p.is_null());
        p.write_bytes(0x42, 16);
        assert!(HEAP.realloc(p, l, ARENA_SIZE).is_null());
        assert!(HEAP.realloc(p, l, usize::MAX - 100).is_null());
        assert!(std::slice::from_raw_parts(p, 16).iter().all(|&b| b == 0x42));
        HEAP.dealloc(p, l);
        // A null free is ignored, a null realloc fails.
        HEAP.dealloc(ptr::null_mut(), l);
        assert!(HEAP.realloc(ptr::null_mut(), l, 64).is_null());
    }
    check_heap();
}

#[test]
fn moving_realloc_keeps_the_bytes_whether_it_copies_locked_or_not() {
    // Copies of 4 KiB or less run under the lock, larger ones without it. Blockers allocated
    // after each block take the memory it would grow into, so the reallocs move.
    let mut moved = [false; 2];
    for size in [100, 3000, 4096, 4097, 20_000] {
        let l = Layout::from_size_align(size, 8).unwrap();
        let pattern = |i: usize| (i * 7 + size) as u8;
        // SAFETY: every layout has a non-zero size; every block is freed with its layout.
        unsafe {
            let p = HEAP.alloc(l);
            assert!(!p.is_null());
            for i in 0..size {
                p.add(i).write(pattern(i));
            }
            let blockers: Vec<*mut u8> = (0..4).map(|_| HEAP.alloc(l)).collect();
            let q = HEAP.realloc(p, l, 3 * size);
            assert!(!q.is_null());
            assert!((0..size).all(|i| q.add(i).read() == pattern(i)), "bytes lost at size {size}");
            moved[usize::from(size > 4096)] |= q != p;
            HEAP.dealloc(q, Layout::from_size_align(3 * size, 8).unwrap());
            for b in blockers {
                HEAP.dealloc(b, l);
            }
        }
    }
    assert_eq!(moved, [true, true], "a realloc of each kind should have moved");
    check_heap();
}

#[test]
fn threads_share_the_heap() {
    let threads = 4;
    let ops = n(20_000);
    let handles: Vec<_> = (0..threads)
        .map(|t| {
            thread::spawn(move || {
                let mut state = 0x1234_5678_9ABC_DEF0u64 ^ (t as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15);
                let mut rand = move || {
                    state ^= state >> 12;
                    state ^= state << 25;
                    state ^= state >> 27;
                    state.wrapping_mul(0x2545_F491_4F6C_DD1D)
                };
                let mut live: Vec<(u8, Vec<u8>)> = Vec::new();
                let mut map = BTreeMap::new();
                for i in 0..ops {
                    let r = rand();
                    match r % 10 {
                        0..=3 => {
                            let tag = (r >> 8) as u8;
                            let len = 1usize << ((r >> 16) % 14);
                            let len = len + (r >> 32) as usize % len;
                            live.push((tag, vec![tag; len]));
                        }
                        4..=5 if !live.is_empty() => {
                            let (tag, v) = live.swap_remove((r >> 8) as usize % live.len());
                            assert!(v.iter().all(|&b| b == tag), "thread {t}: block overwritten");
                        }
                        6 if !live.is_empty() => {
                            let k = (r >> 8) as usize % live.len();
                            let (tag, v) = &mut live[k];
                            let grow = (r >> 20) as usize % 3000;
                            v.resize(v.len() + grow, *tag);
                        }
                        7 => {
                            map.insert(r % 512, format!("{t}:{i}"));
                        }
                        8 => {
                            map.remove(&(r % 512));
                        }
                        _ => {
                            let s: String =
                                (0..(r % 200)).map(|x| char::from(b'0' + (x % 10) as u8)).collect();
                            assert_eq!(s.len(), (r % 200) as usize);
                        }
                    }
                }
                for (tag, v) in &live {
                    assert!(v.iter().all(|b| b == tag), "thread {t}: block overwritten");
                }
                for v in map.values() {
                    assert!(v.starts_with(&format!("{t}:")));
                }
                live.len()
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    check_heap();
    let s = HEAP.lock().stats();
    assert!(s.allocations >= 1 && s.free_bytes > s.total_bytes / 2, "{s}");
}

#[test]
fn a_locked_heap_without_memory_returns_null() {
    static EMPTY: LockedHeap<20> = LockedHeap::new();
    let l = Layout::from_size_align(8, 8).unwrap();
    // SAFETY: the layout has a non-zero size.
    assert!(unsafe { EMPTY.alloc(l) }.is_null());
    assert!(format!("{EMPTY:?}").starts_with("LockedHeap"));
    let mem = Box::leak(vec![0u8; 64 << 10].into_boxed_slice());
    // SAFETY: leaked memory, used by nothing else from now on.
    unsafe { EMPTY.init(mem.as_mut_ptr(), mem.len()) }.unwrap();
    // SAFETY: as above (rejected anyway).
    let again = unsafe { EMPTY.init(mem.as_mut_ptr(), mem.len()) };
    assert_eq!(again, Err(HeapError::AlreadyInitialized));
    // SAFETY: the layout has a non-zero size; the block is freed with it.
    unsafe {
        let p = EMPTY.alloc(l);
        assert!(!p.is_null());
        assert!(p.addr() >= mem.as_ptr().addr() && p.addr() < mem.as_ptr().addr() + mem.len());
        EMPTY.dealloc(p, l);
    }
    let guard = EMPTY.lock();
    let locked = format!("{EMPTY:?}");
    let s = guard.stats();
    drop(guard);
    assert!(locked.contains("locked"), "{locked}");
    assert_eq!(s.allocations, 0);
    assert_eq!(
        EMPTY.lock().alloc(Layout::from_size_align(1, 1 << 40).unwrap()),
        Err(AllocError::Unsatisfiable)
    );
}
