//! Bad input: every documented error, with the heap left unchanged afterwards.

mod common;

use std::alloc::Layout;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::ptr::{self, NonNull};

use alloc_buddy_simple::{AllocError, Fit, FreeError, Heap, HeapError};
use common::{MIN, heap_with_usable, histogram, layout, leak_arena, leak_static, tiling};

/// A fresh heap on a leaked, 64 KiB-aligned arena of 64 KiB, and the arena's base.
fn small_heap<const N: usize>(fit: Fit) -> (Heap<N>, *mut u8) {
    let base = leak_arena(64 << 10, 64 << 10);
    let mut heap = Heap::<N>::with_fit(fit);
    // SAFETY: a leaked arena used by nothing else.
    unsafe { heap.init(base, 64 << 10) }.unwrap();
    (heap, base)
}

/// Calls `try_dealloc`, expecting an error and an unchanged heap.
///
/// # Safety
///
/// Only for misuse the heap is documented to detect: a pointer and layout for which
/// `try_dealloc` must fail without touching anything.
unsafe fn bad_free<const N: usize>(heap: &mut Heap<N>, p: *mut u8, l: Layout) -> FreeError {
    let before = heap.stats();
    let p = NonNull::new(p).unwrap();
    // SAFETY: the caller only passes misuse the heap detects before changing anything.
    let err = unsafe { heap.try_dealloc(p, l) }.expect_err("misuse must be reported");
    assert_eq!(heap.stats(), before, "a failed free changed the heap ({err})");
    heap.check_invariants().unwrap();
    let text = err.to_string();
    assert!(text.contains(&format!("{:#p}", p.as_ptr())), "{text}");
    err
}

/// The text of a caught panic.
fn panic_message(payload: Box<dyn std::any::Any + Send>) -> String {
    payload
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
        .expect("a panic with a message")
}

// ---- alloc ----------------------------------------------------------------------------------

#[test]
fn alloc_before_any_region_is_out_of_memory() {
    let mut heap: Heap = Heap::new();
    for l in [layout(1, 1), layout(0, 1), layout(4096, 4096)] {
        assert_eq!(heap.alloc(l), Err(AllocError::OutOfMemory));
    }
    // Too large is unsatisfiable even with no memory at all. (With fewer orders, so that the
    // layout is valid on 32-bit targets too, where `Heap<32>` covers every valid layout.)
    let mut small: Heap<20> = Heap::new();
    assert_eq!(small.alloc(layout(Heap::<20>::MAX_BLOCK + 1, 1)), Err(AllocError::Unsatisfiable));
    let s = heap.stats();
    assert_eq!((s.regions, s.total_bytes, s.free_bytes, s.largest_free_block), (0, 0, 0, 0));
    heap.check_invariants().unwrap();
    assert!(!heap.coalesce());
    let mut heap: Heap = Heap::with_fit(Fit::PowerOfTwo);
    assert_eq!(heap.alloc(layout(1, 1)), Err(AllocError::OutOfMemory));
}

#[test]
fn too_large_size_or_alignment_is_unsatisfiable() {
    let (mut heap, _) = small_heap::<32>(Fit::Exact);
    let fresh = heap.stats();
    let max = Heap::<32>::MAX_BLOCK;
    assert_eq!(max, MIN << Heap::<32>::MAX_ORDER);
    if cfg!(target_pointer_width = "64") {
        assert_eq!(Heap::<32>::MAX_ORDER, 31);
    }
    // On 32-bit targets the largest block is 2 GiB, past `isize::MAX`, so no valid layout is too
    // large for `Heap<32>` and the list below is empty there.
    let candidates = [
        (max.wrapping_add(1), 1),
        (1, max.wrapping_mul(2)),
        (isize::MAX as usize, 1),
        (isize::MAX as usize - 4095, 4096),
        (0, 1 << (usize::BITS - 2)),
    ];
    let too_large = candidates.iter().filter_map(|&(size, align)| Layout::from_size_align(size, align).ok());
    let mut tried = 0;
    for l in too_large.filter(|l| l.size() > max || l.align() > max) {
        assert_eq!(heap.alloc(l), Err(AllocError::Unsatisfiable), "{l:?}");
        assert_eq!(heap.stats(), fresh);
        tried += 1;
    }
    assert_eq!(tried, if cfg!(target_pointer_width = "64") { candidates.len() } else { 0 });
    // The largest block is satisfiable in principle: only memory is missing. (On 32-bit targets
    // a 2 GiB layout is not valid, so this is checked on 64-bit ones.)
    for (size, align) in [(max, 1), (1, max)] {
        let valid = Layout::from_size_align(size, align);
        assert_eq!(valid.is_ok(), usize::BITS == 64);
        if let Ok(l) = valid {
            assert_eq!(heap.alloc(l), Err(AllocError::OutOfMemory));
        }
    }
    assert_eq!(heap.stats(), fresh);
    heap.check_invariants().unwrap();
}

#[test]
fn small_orders_limit_the_largest_block() {
    // ORDERS = 12: the largest block is 2^11 units (64 KiB on 64-bit).
    let (mut heap, base) = heap_with_usable::<12>(Fit::Exact, Heap::<12>::MAX_BLOCK);
    assert_eq!(Heap::<12>::MAX_ORDER, 11);
    assert_eq!(Heap::<12>::MAX_BLOCK, MIN << 11);
    let fresh = heap.stats();
    let max = Heap::<12>::MAX_BLOCK;
    assert_eq!(heap.alloc(layout(max + 1, 1)), Err(AllocError::Unsatisfiable));
    assert_eq!(heap.alloc(layout(1, max * 2)), Err(AllocError::Unsatisfiable));
    let l = layout(max, max);
    let p = heap.alloc(l).unwrap();
    assert_eq!(p.as_ptr().addr(), base);
    // SAFETY: `p` is live with `l`.
    unsafe { heap.dealloc(p, l) };
    assert_eq!(heap.stats(), fresh);

    // ORDERS = 1: every block is one unit.
    let (mut heap, _) = small_heap::<1>(Fit::PowerOfTwo);
    assert_eq!(Heap::<1>::MAX_ORDER, 0);
    assert_eq!(Heap::<1>::MAX_BLOCK, MIN);
    heap.check_invariants().unwrap();
    let fresh = heap.stats();
    assert_eq!(fresh.free_blocks[0] * MIN, fresh.total_bytes);
    assert_eq!(heap.alloc(layout(MIN + 1, 1)), Err(AllocError::Unsatisfiable));
    assert_eq!(heap.alloc(layout(1, 2 * MIN)), Err(AllocError::Unsatisfiable));
    let l = layout(MIN, MIN);
    let p = heap.alloc(l).unwrap();
    // SAFETY: `p` is live with `l`.
    assert_eq!(unsafe { heap.realloc(p, l, MIN + 1) }, Err(AllocError::Unsatisfiable));
    // SAFETY: `p` is live with `l`.
    unsafe { heap.dealloc(p, l) };
    heap.check_invariants().unwrap();
    assert_eq!(heap.stats(), fresh);
}

#[test]
fn orders_up_to_the_word_size_are_capped_by_the_address_space() {
    // The largest block is the largest power of two a usize holds.
    const N: usize = usize::BITS as usize;
    assert_eq!(Heap::<N>::MAX_BLOCK, 1 << (usize::BITS - 1));
    assert_eq!(Heap::<N>::MAX_ORDER, N - 1 - MIN.trailing_zeros() as usize);
    let (mut heap, _) = small_heap::<N>(Fit::Exact);
    heap.check_invariants().unwrap();
    // Nothing a Layout can describe is unsatisfiable; it is only out of memory.
    assert_eq!(heap.alloc(layout(isize::MAX as usize, 1)), Err(AllocError::OutOfMemory));
    assert_eq!(heap.alloc(layout(1, 1 << (usize::BITS - 2))), Err(AllocError::OutOfMemory));
    let l = layout(100, 8);
    let p = heap.alloc(l).unwrap();
    // SAFETY: `p` is live with `l`.
    unsafe { heap.dealloc(p, l) };
    heap.check_invariants().unwrap();
}

#[test]
fn out_of_memory_leaves_the_heap_unchanged() {
    for fit in [Fit::Exact, Fit::PowerOfTwo] {
        let (mut heap, _) = small_heap::<32>(fit);
        let fresh = heap.stats();
        let l = layout(1000, 8);
        let mut live = Vec::new();
        loop {
            match heap.alloc(l) {
                Ok(p) => live.push(p),
                Err(e) => {
                    assert_eq!(e, AllocError::OutOfMemory);
                    break;
                }
            }
        }
        assert!(live.len() > 10);
        let full = heap.stats();
        assert!(full.largest_free_block < 1024, "{full}");
        for _ in 0..3 {
            assert_eq!(heap.alloc(l), Err(AllocError::OutOfMemory));
            assert_eq!(heap.stats(), full);
            heap.check_invariants().unwrap();
        }
        // Small requests still fit in the leftovers.
        if full.free_bytes > 0 {
            let s = layout(1, 1);
            let p = heap.alloc(s).unwrap();
            // SAFETY: `p` is live with `s`.
            unsafe { heap.dealloc(p, s) };
        }
        for p in live {
            // SAFETY: each is live with `l`.
            unsafe { heap.dealloc(p, l) };
        }
        heap.coalesce();
        heap.check_invariants().unwrap();
        assert_eq!(heap.stats(), fresh, "{fit:?}");
    }
}

#[test]
fn zero_size_layouts_get_unique_blocks() {
    let (mut heap, _) = small_heap::<32>(Fit::Exact);
    let fresh = heap.stats();
    let l = layout(0, 1);
    let ps: Vec<_> = (0..16).map(|_| heap.alloc(l).unwrap()).collect();
    let mut addrs: Vec<usize> = ps.iter().map(|p| p.as_ptr().addr()).collect();
    addrs.sort_unstable();
    addrs.dedup();
    assert_eq!(addrs.len(), 16, "zero-size blocks must be distinct");
    let s = heap.stats();
    assert_eq!((s.allocations, s.requested_bytes, s.allocated_bytes), (16, 0, 16 * MIN));
    for p in ps {
        // SAFETY: each is live with `l`.
        unsafe { heap.dealloc(p, l) };
    }
    heap.coalesce();
    assert_eq!(heap.stats(), fresh);
}

#[test]
fn realloc_and_resize_errors_keep_the_old_block() {
    let (mut heap, _) = small_heap::<32>(Fit::Exact);
    let fresh = heap.stats();
    let l = layout(100, 16);
    let p = heap.alloc(l).unwrap();
    // SAFETY: `p` holds 100 bytes.
    unsafe { common::fill(p, 3, 0, 100) };
    let before = heap.stats();
    for new_size in [Heap::<32>::MAX_BLOCK + 1, isize::MAX as usize, usize::MAX - 10] {
        // SAFETY: `p` is live with `l`.
        assert_eq!(unsafe { heap.realloc(p, l, new_size) }, Err(AllocError::Unsatisfiable), "{new_size}");
        // SAFETY: as above.
        assert_eq!(unsafe { heap.resize_in_place(p, l, new_size) }, Err(AllocError::Unsatisfiable));
        assert_eq!(heap.stats(), before);
    }
    // Larger than the whole heap but satisfiable in principle: out of memory.
    // SAFETY: `p` is live with `l`.
    assert_eq!(unsafe { heap.realloc(p, l, 1 << 20) }, Err(AllocError::OutOfMemory));
    // SAFETY: `p` is live with `l`.
    assert_eq!(unsafe { heap.resize_in_place(p, l, 1 << 20) }, Err(AllocError::OutOfMemory));
    assert_eq!(heap.stats(), before);
    heap.check_invariants().unwrap();
    // SAFETY: `p` still holds the 100 bytes written.
    assert_eq!(unsafe { common::first_wrong(p, 3, 100) }, None);
    // SAFETY: `p` is still live with `l`.
    unsafe { heap.dealloc(p, l) };
    heap.coalesce();
    assert_eq!(heap.stats(), fresh);
}

#[test]
fn realloc_and_resize_of_a_pointer_that_is_not_live_panic_and_change_nothing() {
    // (Under Miri, which unwinds slowly, the default fit only.)
    let fits: &[Fit] =
        if cfg!(miri) { &[Fit::Adaptive] } else { &[Fit::PowerOfTwo, Fit::Exact, Fit::Adaptive] };
    for &fit in fits {
        let (mut heap, _) = small_heap::<32>(fit);
        let big = layout(1000, 8);
        let keep = heap.alloc(big).unwrap();
        let freed = heap.alloc(layout(100, 8)).unwrap();
        // SAFETY: `freed` is live with its layout; every later use of it is the misuse tested.
        unsafe { heap.dealloc(freed, layout(100, 8)) };
        let mut local = [0u64; 16];
        let cases = [
            (freed.as_ptr(), layout(100, 8), "double free"),
            (local.as_mut_ptr().cast::<u8>(), layout(100, 8), "not in this heap"),
            (keep.as_ptr().wrapping_add(MIN), layout(8, 8), "not the start of a live allocation"),
            (keep.as_ptr(), layout(100, 8), "not the layout it was allocated with"),
        ];
        for (ptr, l, expected) in cases {
            for new_size in [8, 100, 5000] {
                for in_place in [false, true] {
                    let before = heap.stats();
                    let result = catch_unwind(AssertUnwindSafe(|| {
                        let ptr = NonNull::new(ptr).unwrap();
                        // SAFETY: misuse the heap detects before it changes anything.
                        unsafe {
                            if in_place {
                                let _ = heap.resize_in_place(ptr, l, new_size);
                            } else {
                                let _ = heap.realloc(ptr, l, new_size);
                            }
                        }
                    }));
                    let msg = panic_message(result.expect_err("misuse must panic"));
                    assert!(msg.contains(expected), "{fit:?}, {new_size}, in place {in_place}: {msg}");
                    assert!(msg.contains(&format!("{ptr:#p}")), "{msg}");
                    assert_eq!(heap.stats(), before, "{fit:?}: {msg}");
                    heap.check_invariants().unwrap();
                }
            }
        }
        std::hint::black_box(&mut local);
        // SAFETY: `keep` is still live with `big`.
        unsafe { heap.dealloc(keep, big) };
        heap.check_invariants().unwrap();
    }
}

// ---- try_dealloc and dealloc ------------------------------------------------------------------

#[test]
fn double_free_is_reported() {
    for fit in [Fit::Exact, Fit::PowerOfTwo] {
        let (mut heap, base) = heap_with_usable::<32>(fit, 64 << 10);
        let fresh = heap.stats();
        let l = layout(200, 8);
        let p = heap.alloc(l).unwrap();
        assert_eq!(p.as_ptr().addr(), base);
        // SAFETY: `p` is live with `l`.
        unsafe { heap.try_dealloc(p, l) }.unwrap();
        // SAFETY: a double free, which the heap detects.
        let err = unsafe { bad_free(&mut heap, p.as_ptr(), l) };
        assert_eq!(err, FreeError::DoubleFree { ptr: p.as_ptr() });
        assert!(err.to_string().contains("double free"), "{err}");
        // Still detected after the block merged with its buddies.
        heap.coalesce();
        // SAFETY: as above.
        let err = unsafe { bad_free(&mut heap, p.as_ptr(), l) };
        assert_eq!(err, FreeError::DoubleFree { ptr: p.as_ptr() });
        assert_eq!(heap.stats(), fresh);
    }
}

#[test]
fn double_free_of_a_block_merged_into_its_lower_buddy_is_still_caught() {
    // Two neighbours, freed so that the upper one merges into the lower one: its start is now
    // inside a free block. The free must still fail (reporting it as a double free, or at least
    // as a pointer that does not start an allocation) and change nothing.
    let (mut heap, base) = heap_with_usable::<32>(Fit::Exact, 64 << 10);
    let l = layout(MIN, 8);
    let ps: Vec<_> = (0..4).map(|_| heap.alloc(l).unwrap()).collect();
    assert_eq!(ps[3].as_ptr().addr(), base + 3 * MIN);
    // SAFETY: each is live with `l`, freed once.
    unsafe {
        heap.dealloc(ps[0], l);
        heap.dealloc(ps[2], l);
        heap.dealloc(ps[3], l); // order-0 list holds 0 and 2: units 2 and 3 merge at once
    }
    assert_eq!(heap.stats().free_blocks[..2], [1, 1]);
    // SAFETY: a double free, which the heap detects.
    let err = unsafe { bad_free(&mut heap, ps[3].as_ptr(), l) };
    assert!(
        matches!(err, FreeError::DoubleFree { .. } | FreeError::NotAllocated { .. }),
        "unexpected {err:?}"
    );
    // SAFETY: `ps[1]` is live with `l`.
    unsafe { heap.dealloc(ps[1], l) };
    heap.coalesce();
    heap.check_invariants().unwrap();
}

#[test]
#[should_panic(expected = "double free")]
fn dealloc_twice_panics() {
    let (mut heap, base) = heap_with_usable::<32>(Fit::Exact, 64 << 10);
    let l = layout(64, 8);
    let p = heap.alloc(l).unwrap();
    assert_eq!(p.as_ptr().addr(), base);
    // SAFETY: `p` is live with `l`.
    unsafe { heap.dealloc(p, l) };
    // SAFETY: deliberately a double free: the heap detects it and panics before changing
    // anything.
    unsafe { heap.dealloc(p, l) };
}

#[test]
fn dealloc_panic_names_the_pointer_and_changes_nothing() {
    let (mut heap, _) = small_heap::<32>(Fit::Exact);
    let l = layout(100, 8);
    let p = heap.alloc(l).unwrap();
    let before = heap.stats();
    let inner = p.as_ptr().wrapping_add(MIN);
    let result = catch_unwind(AssertUnwindSafe(|| {
        // SAFETY: an interior pointer: detected before anything changes.
        unsafe { heap.dealloc(NonNull::new(inner).unwrap(), layout(8, 8)) }
    }));
    let msg = panic_message(result.expect_err("an interior pointer must panic"));
    assert!(msg.contains("alloc_buddy_simple"), "{msg}");
    assert!(msg.contains(&format!("{inner:#p}")), "{msg}");
    assert_eq!(heap.stats(), before);
    heap.check_invariants().unwrap();
    // SAFETY: `p` is still live with `l`.
    unsafe { heap.dealloc(p, l) };
}

#[test]
fn foreign_pointers_are_not_owned() {
    let (mut heap, base) = small_heap::<32>(Fit::Exact);
    let l = layout(8, 8);
    let keep = heap.alloc(l).unwrap();
    let mut local = [0u64; 4];
    let stack = local.as_mut_ptr().cast::<u8>();
    // SAFETY: a pointer outside every region is detected.
    let err = unsafe { bad_free(&mut heap, stack, l) };
    assert_eq!(err, FreeError::NotOwned { ptr: stack });
    // Another heap's block.
    let (mut other, _) = small_heap::<32>(Fit::Exact);
    let theirs = other.alloc(l).unwrap();
    // SAFETY: as above.
    let err = unsafe { bad_free(&mut heap, theirs.as_ptr(), l) };
    assert_eq!(err, FreeError::NotOwned { ptr: theirs.as_ptr() });
    // Just past the region, and a boxed value.
    let past = base.wrapping_add(64 << 10);
    // SAFETY: as above.
    assert_eq!(unsafe { bad_free(&mut heap, past, l) }, FreeError::NotOwned { ptr: past });
    let boxed = Box::into_raw(Box::new(0u64)).cast::<u8>();
    // SAFETY: as above.
    assert_eq!(unsafe { bad_free(&mut heap, boxed, l) }, FreeError::NotOwned { ptr: boxed });
    // SAFETY: `boxed` came from `Box::into_raw` of a `Box<u64>`.
    drop(unsafe { Box::from_raw(boxed.cast::<u64>()) });
    std::hint::black_box(&mut local);
    // SAFETY: live with `l` in their heaps.
    unsafe {
        heap.dealloc(keep, l);
        other.dealloc(theirs, l);
    }
}

#[test]
fn a_region_with_an_unaligned_start_owns_only_its_whole_units() {
    let base = leak_arena(8192, 4096);
    let mut heap: Heap = Heap::new();
    // SAFETY: a leaked arena used by nothing else.
    unsafe { heap.add_region(base.wrapping_add(3), 4000) }.unwrap();
    let l = layout(1, 1);
    // The bytes before the first whole unit belong to the region but to no block.
    let head = base.wrapping_add(MIN - 1);
    // SAFETY: a pointer outside every block is detected.
    let err = unsafe { bad_free(&mut heap, head, l) };
    assert!(matches!(err, FreeError::NotOwned { .. } | FreeError::Misaligned { .. }), "{err:?}");
}

#[test]
fn misaligned_pointers_are_reported() {
    let (mut heap, _) = small_heap::<32>(Fit::Exact);
    let l = layout(200, 64);
    let p = heap.alloc(l).unwrap();
    let q = p.as_ptr();
    for bad in [q.wrapping_add(1), q.wrapping_add(8), q.wrapping_add(MIN - 1)] {
        // SAFETY: a pointer that is not a multiple of a unit is detected.
        assert_eq!(unsafe { bad_free(&mut heap, bad, l) }, FreeError::Misaligned { ptr: bad });
    }
    // A unit multiple that breaks the layout's alignment.
    let bad = q.wrapping_add(MIN);
    // SAFETY: as above.
    assert_eq!(unsafe { bad_free(&mut heap, bad, l) }, FreeError::Misaligned { ptr: bad });
    // SAFETY: `p` is live with `l`.
    unsafe { heap.dealloc(p, l) };
}

#[test]
fn interior_and_metadata_pointers_are_not_allocated() {
    let (mut heap, base) = heap_with_usable::<32>(Fit::Exact, 64 << 10);
    let l = layout(10 * MIN, 8);
    let p = heap.alloc(l).unwrap();
    for k in 1..10 {
        let inner = p.as_ptr().wrapping_add(k * MIN);
        // SAFETY: an interior pointer is detected.
        let err = unsafe { bad_free(&mut heap, inner, layout(MIN, 8)) };
        assert_eq!(err, FreeError::NotAllocated { ptr: inner }, "unit {k}");
    }
    // The metadata starts right after the usable bytes.
    let meta = p.as_ptr().with_addr(base + heap.stats().total_bytes);
    for at in [meta, meta.wrapping_add(MIN)] {
        // SAFETY: the metadata is never an allocation; detected.
        let err = unsafe { bad_free(&mut heap, at, layout(MIN, 8)) };
        assert_eq!(err, FreeError::NotAllocated { ptr: at });
    }
    // A free block inside a free block (not its start) is not allocated either.
    let far = p.as_ptr().wrapping_add(40 << 10);
    // SAFETY: as above.
    let err = unsafe { bad_free(&mut heap, far, layout(MIN, 8)) };
    assert!(matches!(err, FreeError::NotAllocated { .. } | FreeError::DoubleFree { .. }), "{err:?}");
    // SAFETY: `p` is live with `l`.
    unsafe { heap.dealloc(p, l) };
}

#[test]
fn a_layout_of_an_order_above_the_largest_is_reported_on_a_heap_with_few_orders() {
    // ORDERS = 4: blocks of up to 8 units. A layout of 16 units names an order the heap does not
    // have, even where the units after the allocation look like the end of such a block.
    for fit in [Fit::PowerOfTwo, Fit::Exact, Fit::Adaptive] {
        for cache in [0, 16] {
            let base = leak_arena(64 << 10, 64 << 10);
            let mut heap = Heap::<4>::with_fit(fit).with_cache(cache);
            // SAFETY: a leaked arena used by nothing else.
            unsafe { heap.init(base, 64 << 10) }.unwrap();
            // A largest block aligned to 16 units, with blocks (not the metadata) after it.
            let meta = base.addr() + heap.stats().total_bytes;
            let l = layout(8 * MIN, 8);
            let mut others = Vec::new();
            let p = loop {
                let p = heap.alloc(l).unwrap();
                let at = p.as_ptr().addr();
                if at % (16 * MIN) == 0 && at + 16 * MIN <= meta {
                    break p;
                }
                others.push(p);
            };
            let wrong = 16 * MIN;
            // SAFETY: a layout of an order above the largest is detected.
            let err = unsafe { bad_free(&mut heap, p.as_ptr(), layout(wrong, 8)) };
            assert_eq!(err, FreeError::WrongLayout { ptr: p.as_ptr(), size: wrong }, "{fit:?} {cache}");
            // SAFETY: `p` and the others are live with `l`.
            unsafe {
                heap.dealloc(p, l);
                for q in others {
                    heap.dealloc(q, l);
                }
            }
            heap.check_invariants().unwrap();
        }
    }
}

#[test]
fn wrong_layouts_are_reported() {
    for fit in [Fit::Exact, Fit::PowerOfTwo] {
        let (mut heap, _) = small_heap::<32>(fit);
        let fresh = heap.stats();
        let l = layout(10 * MIN, 8);
        let p = heap.alloc(l).unwrap();
        // Fewer units than the allocation (and, for pow2, a smaller order).
        for size in [1, MIN, 3 * MIN + 1, 7 * MIN] {
            // SAFETY: a layout smaller in units than the allocation is detected.
            let err = unsafe { bad_free(&mut heap, p.as_ptr(), layout(size, 8)) };
            assert_eq!(err, FreeError::WrongLayout { ptr: p.as_ptr(), size }, "{fit:?} {size}");
        }
        // Larger than any block (a valid layout only where the largest block is below
        // `isize::MAX`, i.e. on 64-bit targets).
        let huge = Heap::<32>::MAX_BLOCK.wrapping_add(1);
        if let Ok(l) = Layout::from_size_align(huge, 8) {
            // SAFETY: as above.
            let err = unsafe { bad_free(&mut heap, p.as_ptr(), l) };
            assert_eq!(err, FreeError::WrongLayout { ptr: p.as_ptr(), size: huge });
        }
        // Larger than the whole region.
        // SAFETY: as above.
        let err = unsafe { bad_free(&mut heap, p.as_ptr(), layout(1 << 20, 8)) };
        assert_eq!(err, FreeError::WrongLayout { ptr: p.as_ptr(), size: 1 << 20 });
        // Larger than the allocation: debug builds catch every such layout.
        if cfg!(debug_assertions) {
            let neighbour = heap.alloc(layout(MIN, 8)).unwrap();
            for size in [17 * MIN, 20 * MIN, 64 * MIN] {
                // SAFETY: as above (debug build).
                let err = unsafe { bad_free(&mut heap, p.as_ptr(), layout(size, 8)) };
                assert_eq!(err, FreeError::WrongLayout { ptr: p.as_ptr(), size });
            }
            // SAFETY: live with its layout.
            unsafe { heap.dealloc(neighbour, layout(MIN, 8)) };
        }
        // SAFETY: `p` is live with `l`.
        unsafe { heap.dealloc(p, l) };
        heap.coalesce();
        assert_eq!(heap.stats(), fresh);
    }
}

#[test]
fn errors_display_their_cause() {
    let p = ptr::without_provenance::<u8>(0x1000);
    // `{:#p}` pads the address to the full width: 0x0000000000001000 on 64-bit.
    let shown = format!("{p:#p}");
    assert!(shown.starts_with("0x") && shown.ends_with("1000"), "{shown}");
    assert!(FreeError::NotOwned { ptr: p }.to_string().contains(&shown));
    assert_eq!(FreeError::DoubleFree { ptr: p }.to_string(), format!("double free of {shown} detected"));
    let wrong = FreeError::WrongLayout { ptr: p, size: 77 }.to_string();
    assert!(wrong.contains(&shown) && wrong.contains("77"), "{wrong}");
    assert!(HeapError::TooSmall { size: 64, min: 128 }.to_string().contains("64"));
    assert!(!AllocError::OutOfMemory.to_string().is_empty());
    assert!(!AllocError::Unsatisfiable.to_string().is_empty());
}

// ---- add_region and init ------------------------------------------------------------------------

/// Calls `add_region`, expecting `want` and an unchanged heap.
///
/// # Safety
///
/// As `add_region`, unless the call is expected to fail before touching memory.
unsafe fn bad_region<const N: usize>(heap: &mut Heap<N>, start: *mut u8, size: usize, want: HeapError) {
    let before = heap.stats();
    // SAFETY: the caller's contract.
    assert_eq!(unsafe { heap.add_region(start, size) }, Err(want), "{start:p} + {size}");
    assert_eq!(heap.stats(), before);
    heap.check_invariants().unwrap();
}

#[test]
fn null_start_is_rejected() {
    let mut heap: Heap = Heap::new();
    // SAFETY: rejected before any access.
    unsafe {
        bad_region(&mut heap, ptr::null_mut(), 4096, HeapError::NullStart);
        bad_region(&mut heap, ptr::null_mut(), 0, HeapError::NullStart);
        assert_eq!(heap.init(ptr::null_mut(), 1 << 20), Err(HeapError::NullStart));
    }
}

#[test]
fn regions_past_the_end_of_the_address_space_overflow() {
    let mut heap: Heap = Heap::new();
    let top = ptr::without_provenance_mut::<u8>(usize::MAX - 10);
    // SAFETY: rejected before any access.
    unsafe {
        bad_region(&mut heap, top, 100, HeapError::Overflow);
        bad_region(&mut heap, top, usize::MAX, HeapError::Overflow);
        assert_eq!(heap.init(top, 11 + 1), Err(HeapError::Overflow));
    }
    let real = leak_arena(4096, 4096);
    // SAFETY: rejected before any access.
    unsafe { bad_region(&mut heap, real, usize::MAX - real.addr() + 1, HeapError::Overflow) };
    // The heap is still usable for real memory afterwards.
    // SAFETY: a leaked arena used by nothing else.
    unsafe { heap.init(real, 4096) }.unwrap();
    assert!(heap.alloc(layout(64, 8)).is_ok());
}

#[test]
fn tiny_regions_are_too_small() {
    let mut heap: Heap = Heap::new();
    let base = leak_arena(4096, 4096);
    let min = {
        // SAFETY: rejected before any access.
        let err = unsafe { heap.add_region(base, MIN) }.unwrap_err();
        let HeapError::TooSmall { size, min } = err else { panic!("{err:?}") };
        assert_eq!(size, MIN);
        min
    };
    assert!(min > MIN && min % MIN == 0 && min <= 1024, "{min}");
    // SAFETY: rejected before any access (the arena is valid anyway).
    unsafe {
        for size in [0, 1, MIN, min - 1] {
            bad_region(&mut heap, base, size, HeapError::TooSmall { size, min });
        }
        // Unaligned start: the units lost to trimming count.
        bad_region(&mut heap, base.wrapping_add(1), min, HeapError::TooSmall { size: min, min });
    }
    // Exactly `min` at an aligned start is accepted and serves one unit.
    // SAFETY: a leaked arena used by nothing else.
    unsafe { heap.add_region(base, min) }.unwrap();
    let s = heap.stats();
    assert_eq!(s.total_bytes, MIN);
    assert_eq!(s.total_bytes + s.metadata_bytes, min);
    let l = layout(MIN, 1);
    let p = heap.alloc(l).unwrap();
    assert_eq!(p.as_ptr(), base);
    assert_eq!(heap.alloc(l), Err(AllocError::OutOfMemory));
    // SAFETY: `p` is live with `l`.
    unsafe { heap.dealloc(p, l) };
    heap.check_invariants().unwrap();
}

#[test]
fn overlapping_regions_are_rejected() {
    let base = leak_arena(1 << 20, 1 << 20);
    let mut heap: Heap = Heap::new();
    let at = |off: usize| base.wrapping_add(off);
    // SAFETY: a leaked arena; the region [64K, 128K) is handed over once.
    unsafe { heap.init(at(64 << 10), 64 << 10) }.unwrap();
    // SAFETY: all rejected before any access (the arena is valid anyway).
    unsafe {
        assert_eq!(heap.init(at(512 << 10), 64 << 10), Err(HeapError::AlreadyInitialized));
        for (off, size) in [
            (64 << 10, 64 << 10),    // the same
            (0, (64 << 10) + 1),     // one byte into its start
            ((128 << 10) - 1, 4096), // one byte from its end
            (80 << 10, 4096),        // inside
            (0, 256 << 10),          // around it
            (64 << 10, 4096),        // same start, smaller
        ] {
            bad_region(&mut heap, at(off), size, HeapError::Overlap);
        }
    }
    // Touching on either side is fine.
    // SAFETY: disjoint parts of a leaked arena, handed over once each.
    unsafe {
        heap.add_region(at(0), 64 << 10).unwrap();
        heap.add_region(at(128 << 10), 64 << 10).unwrap();
        // And these now overlap too.
        bad_region(&mut heap, at(4096), 4096, HeapError::Overlap);
        bad_region(&mut heap, at(100 << 10), 64 << 10, HeapError::Overlap);
    }
    assert_eq!(heap.stats().regions, 3);
    heap.check_invariants().unwrap();
}

#[test]
fn several_disjoint_regions_all_serve_allocations() {
    let mut heap: Heap = Heap::new();
    let sizes = [16 << 10, 40 << 10, 9000];
    let arenas: Vec<*mut u8> = sizes.iter().map(|&s| leak_arena(s, 4096)).collect();
    let mut expect_total = 0;
    for (i, (&a, &s)) in arenas.iter().zip(&sizes).enumerate() {
        let before = heap.stats();
        // SAFETY: leaked arenas used by nothing else.
        unsafe { heap.add_region(a, s) }.unwrap();
        let after = heap.stats();
        assert_eq!(after.regions, i + 1);
        let usable = after.total_bytes - before.total_bytes;
        expect_total += usable;
        // The new region's free blocks are its bottom-up tiling.
        let added: Vec<usize> =
            after.free_blocks.iter().zip(&before.free_blocks).map(|(x, y)| x - y).collect();
        let pieces = tiling(a.addr(), a.addr() + usable, Heap::<32>::MAX_ORDER);
        assert_eq!(added, histogram::<32>(&pieces).to_vec());
        heap.check_invariants().unwrap();
    }
    assert_eq!(heap.stats().total_bytes, expect_total);
    let l = layout(500, 4);
    let mut hits = [0usize; 3];
    let mut live = Vec::new();
    while let Ok(p) = heap.alloc(l) {
        let a = p.as_ptr().addr();
        let i = arenas
            .iter()
            .zip(&sizes)
            .position(|(&b, &s)| a >= b.addr() && a + 500 <= b.addr() + s)
            .unwrap_or_else(|| panic!("{a:#x} is in no region"));
        hits[i] += 1;
        live.push(p);
    }
    assert!(hits.iter().all(|&h| h > 0), "{hits:?}");
    for p in live {
        // SAFETY: live with `l`.
        unsafe { heap.dealloc(p, l) };
    }
    heap.coalesce();
    heap.check_invariants().unwrap();
    assert_eq!(heap.stats().free_bytes, expect_total);
}

#[test]
fn unaligned_start_and_odd_size_work() {
    let base = leak_arena(16 << 10, 4096);
    let start = base.wrapping_add(3);
    let size = 10_001;
    let end = start.addr() + size;
    let mut heap: Heap = Heap::with_fit(Fit::PowerOfTwo);
    // SAFETY: part of a leaked arena, used by nothing else.
    unsafe { heap.init(start, size) }.unwrap();
    let s = heap.stats();
    let lo = base.addr() + MIN;
    let hi = end & !(MIN - 1);
    assert_eq!(s.total_bytes + s.metadata_bytes, hi - lo);
    assert_eq!(s.free_blocks, histogram::<32>(&tiling(lo, lo + s.total_bytes, Heap::<32>::MAX_ORDER)));
    heap.check_invariants().unwrap();
    let mut live = Vec::new();
    for size in [1, 7, 100, 33, 0, 250, 64] {
        let l = layout(size, 1);
        while let Ok(p) = heap.alloc(l) {
            let a = p.as_ptr().addr();
            assert!(a >= lo && a + size.max(1) <= lo + s.total_bytes, "{a:#x}");
            // SAFETY: the block holds `size` bytes.
            unsafe { p.as_ptr().write_bytes(0xAB, size) };
            live.push((p, l));
        }
    }
    assert_eq!(heap.stats().free_bytes, 0);
    for (p, l) in live {
        // SAFETY: live with `l`.
        unsafe { heap.dealloc(p, l) };
    }
    heap.coalesce();
    heap.check_invariants().unwrap();
    assert_eq!(heap.stats(), s);
}

#[test]
fn static_regions_are_accepted() {
    let mut heap: Heap = Heap::new();
    heap.add_static_region(leak_static(8192, 64)).unwrap();
    // An odd start. (Taken from a 64-aligned allocation rather than a 1-aligned one: with
    // `-Zmiri-symbolic-alignment-check`, Miri only trusts the alignment an allocation asked for,
    // and flags the region header written at a numerically aligned address inside a 1-aligned
    // allocation.)
    heap.add_static_region(&mut leak_static(8192 + 6, 64)[1..]).unwrap();
    assert_eq!(
        heap.add_static_region(leak_static(MIN, 8)).unwrap_err(),
        HeapError::TooSmall {
            size: MIN,
            min: match heap.add_static_region(leak_static(1, 1)) {
                Err(HeapError::TooSmall { min, .. }) => min,
                other => panic!("{other:?}"),
            }
        }
    );
    assert_eq!(heap.stats().regions, 2);
    let l = layout(1000, 8);
    let a = heap.alloc(l).unwrap();
    let b = heap.alloc(l).unwrap();
    // SAFETY: live with `l`.
    unsafe {
        heap.dealloc(a, l);
        heap.dealloc(b, l);
    }
    heap.check_invariants().unwrap();
}
