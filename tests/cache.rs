//! The per-order cache of freed small blocks (`Heap::with_cache`, on in `LockedHeap`).

mod common;

use std::alloc::Layout;
use std::ptr::NonNull;

use alloc_buddy_simple::{AllocError, Fit, FreeError, Heap};
use common::{MIN, Rng, layout, leak_arena};

const ARENA: usize = if cfg!(miri) { 32 << 10 } else { 256 << 10 };

/// A heap with a cache of `limit` blocks per order over a fresh, aligned arena.
fn cached_heap(fit: Fit, limit: usize) -> Heap {
    let mut heap = Heap::with_fit(fit).with_cache(limit);
    // SAFETY: a leaked arena used by nothing else.
    unsafe { heap.init(leak_arena(ARENA, ARENA), ARENA) }.unwrap();
    heap
}

#[test]
fn freed_small_blocks_are_cached_reused_and_given_back() {
    for fit in [Fit::PowerOfTwo, Fit::Exact] {
        let mut heap = cached_heap(fit, 4);
        let fresh = heap.stats();
        let l = layout(2 * MIN, 8);
        let blocks: Vec<_> = (0..10).map(|_| heap.alloc(l).unwrap()).collect();
        for &p in &blocks {
            // SAFETY: live with `l`.
            unsafe { heap.dealloc(p, l) };
            heap.check_invariants().unwrap();
        }
        // Nothing is lost: the cached blocks count as free.
        let s = heap.stats();
        assert_eq!((s.allocations, s.allocated_bytes, s.free_bytes), (0, 0, fresh.free_bytes));
        // The first four frees filled the cache (limit 4), the other six went to the free lists.
        // The cache is used first, and it is LIFO: the fourth block freed comes back.
        assert!(s.free_blocks[1] >= fresh.free_blocks[1] + 4, "{s}");
        let again = heap.alloc(l).unwrap();
        assert_eq!(again, blocks[3]);
        heap.check_invariants().unwrap();
        // SAFETY: live with `l`.
        unsafe { heap.dealloc(again, l) };
        // `coalesce` gives every cached block back: the heap is as it was.
        assert!(heap.coalesce());
        heap.check_invariants().unwrap();
        assert_eq!(heap.stats(), fresh, "{fit:?}");
    }
}

#[test]
fn a_double_free_of_a_cached_block_is_caught() {
    let mut heap = cached_heap(Fit::PowerOfTwo, 8);
    let l = layout(MIN, 8);
    let p = heap.alloc(l).unwrap();
    // SAFETY: live with `l`; the second free is the misuse under test.
    unsafe {
        heap.try_dealloc(p, l).unwrap();
        let before = heap.stats();
        assert_eq!(heap.try_dealloc(p, l), Err(FreeError::DoubleFree { ptr: p.as_ptr() }));
        assert_eq!(heap.stats(), before);
    }
    heap.check_invariants().unwrap();
}

/// Frees `p` (live with `l`), takes it back from the cache, and frees it again: the cache served
/// it last and is empty, so it holds it as its hot block, without a cached mark.
fn make_hot(heap: &mut Heap, p: NonNull<u8>, l: Layout) {
    // SAFETY: `p` is live with `l`, and again after the allocation.
    unsafe { heap.dealloc(p, l) };
    assert_eq!(heap.alloc(l), Ok(p), "the cache serves it back");
    // SAFETY: as above.
    unsafe { heap.dealloc(p, l) };
}

#[test]
fn every_second_use_of_a_cached_block_is_caught_hot_or_marked() {
    // The hot block keeps its allocation mark and is told by its address; the others are marked
    // cached. Both must refuse a second free and a realloc.
    for fit in [Fit::PowerOfTwo, Fit::Adaptive] {
        let mut heap = cached_heap(fit, 8);
        let l = layout(4 * MIN, 8);
        let (hot, marked) = (heap.alloc(l).unwrap(), heap.alloc(l).unwrap());
        make_hot(&mut heap, hot, l);
        // SAFETY: live with `l`; every later use of it is the misuse under test.
        unsafe { heap.dealloc(marked, l) };
        heap.check_invariants().unwrap();
        let before = heap.stats();
        for p in [hot, marked] {
            // SAFETY: misuse the heap detects before it changes anything.
            unsafe {
                assert_eq!(heap.try_dealloc(p, l), Err(FreeError::DoubleFree { ptr: p.as_ptr() }));
                // A smaller layout fails too.
                assert!(heap.try_dealloc(p, layout(MIN, 8)).is_err(), "{fit:?}");
            }
            for new_size in [MIN, 4 * MIN, 64 * MIN] {
                let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    // SAFETY: as above.
                    unsafe { heap.realloc(p, l, new_size) }
                }));
                let message = result.expect_err("a realloc after free must panic");
                let message = message.downcast_ref::<String>().map_or("", String::as_str);
                assert!(message.contains("double free"), "{fit:?}: {message}");
            }
            assert_eq!(heap.stats(), before, "{fit:?}");
            heap.check_invariants().unwrap();
        }
        // A larger layout (of a size the block's address is aligned to) is caught by the full
        // check, which debug builds run on every free; in release builds the quick path takes
        // the hot block's second free for a free of a larger block (see `Heap::try_dealloc`).
        if cfg!(debug_assertions) && hot.as_ptr().addr() % (8 * MIN) == 0 {
            // SAFETY: as above.
            let err = unsafe { heap.try_dealloc(hot, layout(8 * MIN, 8)) };
            assert_eq!(err, Err(FreeError::DoubleFree { ptr: hot.as_ptr() }));
        }
        // Both come back, the most recent first, and free normally again.
        assert_eq!((heap.alloc(l), heap.alloc(l)), (Ok(marked), Ok(hot)));
        // SAFETY: live again with `l`.
        unsafe { (heap.dealloc(hot, l), heap.dealloc(marked, l)) };
        heap.check_invariants().unwrap();
    }
}

#[test]
fn the_block_a_cache_served_last_is_checked_again_once_it_changes() {
    // The quick free of the block a cache served last trusts the cache's hint; every change to
    // that block must drop the hint, so that the misuse below is still caught.
    let l = layout(4 * MIN, 8);

    // Grown in place: a free with the old, smaller layout is a wrong layout.
    for fit in [Fit::PowerOfTwo, Fit::Adaptive, Fit::Exact] {
        let mut heap = cached_heap(fit, 8);
        // A block of `l` with free memory after it: the first half of a larger one.
        let p = heap.alloc(layout(8 * MIN, 8)).unwrap();
        // SAFETY: live with 8 minimum blocks, then with `l`.
        unsafe {
            heap.resize_in_place(p, layout(8 * MIN, 8), l.size()).unwrap();
            heap.dealloc(p, l);
        }
        assert_eq!(heap.alloc(l), Ok(p));
        // SAFETY: live with `l`, and the memory after it is free.
        unsafe { heap.resize_in_place(p, l, 8 * MIN) }.unwrap();
        heap.check_invariants().unwrap();
        // SAFETY: the misuse under test: `p` is live with a layout of `8 * MIN` bytes.
        let err = unsafe { heap.try_dealloc(p, l) };
        assert!(matches!(err, Err(FreeError::WrongLayout { .. })), "{fit:?}: {err:?}");
        // SAFETY: the right layout.
        unsafe { heap.try_dealloc(p, layout(8 * MIN, 8)) }.unwrap();
        heap.check_invariants().unwrap();
    }

    // Freed to the free lists (its cache full), then freed again.
    let mut heap = cached_heap(Fit::PowerOfTwo, 1);
    let (p, q) = (heap.alloc(l).unwrap(), heap.alloc(l).unwrap());
    // SAFETY: live with `l`.
    unsafe { heap.dealloc(p, l) };
    assert_eq!(heap.alloc(l), Ok(p));
    // SAFETY: live with `l`: `q` fills the cache, so `p` goes to the free lists.
    unsafe { (heap.dealloc(q, l), heap.dealloc(p, l)) };
    heap.check_invariants().unwrap();
    assert_eq!(heap.alloc(l), Ok(q), "the cache held `q`");
    // SAFETY: the misuse under test (the cache is empty again, and served `q` last).
    let err = unsafe { heap.try_dealloc(p, l) }.unwrap_err();
    assert!(matches!(err, FreeError::DoubleFree { .. } | FreeError::NotAllocated { .. }), "{err:?}");
    // SAFETY: live with `l`.
    unsafe { heap.dealloc(q, l) };

    // Held hot, then given back by `coalesce`, then freed again.
    let mut heap = cached_heap(Fit::PowerOfTwo, 8);
    let p = heap.alloc(l).unwrap();
    make_hot(&mut heap, p, l);
    assert!(heap.coalesce());
    heap.check_invariants().unwrap();
    // SAFETY: the misuse under test.
    let err = unsafe { heap.try_dealloc(p, l) }.unwrap_err();
    assert!(matches!(err, FreeError::DoubleFree { .. } | FreeError::NotAllocated { .. }), "{err:?}");

    // Taken back in part (an exact allocation of fewer units), then freed as a whole block.
    let mut heap = cached_heap(Fit::Exact, 8);
    let whole = heap.alloc(l).unwrap();
    make_hot(&mut heap, whole, l);
    let part = layout(3 * MIN, 8);
    assert_eq!(heap.alloc(part), Ok(whole), "the hot block serves the part");
    // (The checker finds a hint that names an allocation that is not whole.)
    heap.check_invariants().unwrap();
    // A layout larger than the allocation is caught by debug builds only (see
    // `Heap::try_dealloc`), but never by way of the hint.
    if cfg!(debug_assertions) {
        // SAFETY: the misuse under test: the allocation is three units.
        let err = unsafe { heap.try_dealloc(whole, l) }.unwrap_err();
        assert!(matches!(err, FreeError::WrongLayout { .. }), "{err:?}");
    }
    // SAFETY: the right layout.
    unsafe { heap.try_dealloc(whole, part) }.unwrap();
    heap.check_invariants().unwrap();
}

#[test]
fn the_cache_never_makes_an_allocation_fail() {
    // Fill the heap with the smallest blocks and free them all, the first sixteen freed spread
    // over the heap: they are cached, unmerged, and keep every larger block from forming. Then
    // ask for one block of half the heap: the cache is given back and merged first.
    let mut heap = cached_heap(Fit::PowerOfTwo, usize::MAX);
    let l = layout(MIN, 8);
    let mut live = Vec::new();
    while let Ok(p) = heap.alloc(l) {
        live.push(p);
    }
    assert!(live.len() > 100);
    live.sort();
    let step = live.len() / 16;
    let spread: Vec<_> = (0..16).map(|i| live[i * step]).collect();
    for &p in spread.iter().chain(live.iter().filter(|p| !spread.contains(p))) {
        // SAFETY: live with `l`, each freed once.
        unsafe { heap.dealloc(p, l) };
    }
    heap.check_invariants().unwrap();
    // The sixteen cached (the limit is capped at 16), and their buddies, which cannot merge (and
    // any odd piece the region's tiling left).
    assert!(heap.stats().free_blocks[0] >= 32);
    let largest = heap.stats().largest_free_block;
    assert!(largest < ARENA / 8, "the cached blocks keep the larger blocks apart: {largest}");
    let half = layout(ARENA / 2, 8);
    let p = heap.alloc(half).expect("the cache is flushed before running out");
    heap.check_invariants().unwrap();
    // SAFETY: live with `half`.
    unsafe { heap.dealloc(p, half) };
}

#[test]
fn growth_in_place_does_not_take_a_cached_block() {
    let mut heap = cached_heap(Fit::Exact, 4);
    let l = layout(MIN, 8);
    // Two units side by side. (The first pairs may come from the odd small pieces the region's
    // tiling left, which depend on the size of its metadata: those stay allocated.)
    let mut others = Vec::new();
    let (a, b) = loop {
        let (a, b) = (heap.alloc(l).unwrap(), heap.alloc(l).unwrap());
        if b.as_ptr() == a.as_ptr().wrapping_add(MIN) {
            break (a, b);
        }
        others.extend([a, b]);
        assert!(others.len() < 64, "no two units side by side");
    };
    // SAFETY: `b` is live with `l`.
    unsafe { heap.dealloc(b, l) };
    // The unit after `a` is cached, held for the next request of its order.
    // SAFETY: `a` is live with `l`.
    assert_eq!(unsafe { heap.resize_in_place(a, l, 2 * MIN) }, Err(AllocError::OutOfMemory));
    heap.coalesce();
    // SAFETY: as above.
    unsafe { heap.resize_in_place(a, l, 2 * MIN) }.unwrap();
    heap.check_invariants().unwrap();
    // SAFETY: `a` is live with its new size, the others with `l`.
    unsafe {
        heap.dealloc(a, layout(2 * MIN, 8));
        for p in others {
            heap.dealloc(p, l);
        }
    }
    heap.check_invariants().unwrap();
}

#[test]
fn the_fourteen_smallest_orders_are_cached_and_no_larger_one() {
    // A block of order 13 (256 KiB on 64-bit targets) is the largest that goes to a cache: a
    // freed one stays cached and stops its buddy's growth in place until `coalesce`; one of order
    // 14 goes to its free list at once, and the growth takes it.
    let size = MIN << 17;
    let mut heap: Heap = Heap::with_fit(Fit::PowerOfTwo).with_cache(4);
    // SAFETY: a leaked arena used by nothing else.
    unsafe { heap.init(leak_arena(size, size), size) }.unwrap();
    for (order, cached) in [(0, true), (13, true), (14, false)] {
        let l = layout(MIN << order, 8);
        // Two buddies, the lower one first. (The smallest blocks may come from the odd pieces
        // the region's tiling left below its metadata: those stay allocated.)
        let mut others = Vec::new();
        let mut a = heap.alloc(l).unwrap();
        let b = loop {
            let b = heap.alloc(l).unwrap();
            if b.as_ptr() == a.as_ptr().wrapping_add(MIN << order)
                && a.as_ptr().addr() % (MIN << (order + 1)) == 0
            {
                break b;
            }
            others.push(std::mem::replace(&mut a, b));
            assert!(others.len() < 64, "no buddies at order {order}");
        };
        // SAFETY: `b` is live with `l`.
        unsafe { heap.dealloc(b, l) };
        let twice = layout(2 * (MIN << order), 8);
        // SAFETY: `a` is live with `l`.
        let grown = unsafe { heap.resize_in_place(a, l, twice.size()) };
        assert_eq!(grown.is_err(), cached, "order {order}: {grown:?}");
        // SAFETY: `a` is live with the layout it has now, the others with `l`.
        unsafe {
            heap.dealloc(a, if cached { l } else { twice });
            for p in others {
                heap.dealloc(p, l);
            }
        }
        heap.coalesce();
    }
    heap.check_invariants().unwrap();
}

#[test]
fn random_operations_with_the_cache_keep_every_invariant() {
    for (fit, seed) in [(Fit::PowerOfTwo, 1), (Fit::Exact, 2)] {
        let mut heap = cached_heap(fit, 3);
        let fresh = heap.stats();
        let mut rng = Rng::new(seed);
        let mut live: Vec<(NonNull<u8>, Layout, u8)> = Vec::new();
        let steps = if cfg!(miri) { 150 } else { 5000 };
        for step in 0..steps {
            if live.is_empty() || rng.chance(11, 20) {
                let max = if rng.chance(9, 10) { 8 * MIN } else { 64 * MIN };
                let size = rng.log_uniform(max);
                let l = layout(size, 1 << rng.range(0, 7));
                let Ok(p) = heap.alloc(l) else { continue };
                assert_eq!(p.as_ptr().addr() % l.align(), 0);
                let tag = step as u8;
                // SAFETY: `p` holds `l.size()` bytes.
                unsafe { p.as_ptr().write_bytes(tag, l.size()) };
                live.push((p, l, tag));
            } else {
                let (p, l, tag) = live.swap_remove(rng.below(live.len()));
                // SAFETY: `p` is live with `l`, filled with `tag`.
                let bytes = unsafe { std::slice::from_raw_parts(p.as_ptr(), l.size()) };
                assert!(bytes.iter().all(|&b| b == tag), "step {step}: block {p:p} overwritten");
                // SAFETY: as above.
                unsafe { heap.dealloc(p, l) };
            }
            if let Err(c) = heap.check_invariants() {
                panic!("{fit:?} step {step}: {c}");
            }
            let s = heap.stats();
            assert_eq!(s.allocations, live.len());
            assert_eq!(s.requested_bytes, live.iter().map(|(_, l, _)| l.size()).sum::<usize>());
        }
        for (p, l, _) in live {
            // SAFETY: live with `l`.
            unsafe { heap.dealloc(p, l) };
        }
        heap.coalesce();
        assert_eq!(heap.stats(), fresh, "{fit:?}");
    }
}

#[test]
fn an_exact_allocation_whose_tail_is_free_comes_back_whole() {
    let mut heap = cached_heap(Fit::Exact, 4);
    let fresh = heap.stats();
    // Three minimum blocks, carved from a block of four: the fourth goes to the free lists.
    let three = layout(3 * MIN, 8);
    let p = heap.alloc(three).unwrap();
    assert_eq!(heap.stats().allocated_bytes, 3 * MIN);
    // SAFETY: live with `three`.
    unsafe { heap.dealloc(p, three) };
    heap.check_invariants().unwrap();
    // The tail was taken back: the whole block of four is cached (so `coalesce` has something
    // to give back; freed piece by piece, it would have gone to the free lists), counted free.
    let s = heap.stats();
    assert_eq!((s.allocations, s.allocated_bytes, s.free_bytes), (0, 0, fresh.free_bytes));
    assert!(heap.coalesce(), "the whole block was cached");
    heap.check_invariants().unwrap();
    assert_eq!(heap.stats(), fresh);

    // With the tail taken by another allocation, the free gives back the three blocks alone.
    let p = heap.alloc(three).unwrap();
    let tail = heap.alloc(layout(MIN, 8)).unwrap();
    assert_eq!(tail.as_ptr().addr(), p.as_ptr().addr() + 3 * MIN, "the tail is reused first");
    // SAFETY: live with `three`, then `tail` with its layout.
    unsafe {
        heap.dealloc(p, three);
        heap.check_invariants().unwrap();
        assert_eq!(heap.stats().allocated_bytes, MIN);
        heap.dealloc(tail, layout(MIN, 8));
    }
    assert!(heap.coalesce());
    heap.check_invariants().unwrap();
    assert_eq!(heap.stats(), fresh);
}

#[test]
fn a_heap_in_use_can_change_its_cache_limit() {
    let mut heap = cached_heap(Fit::PowerOfTwo, 4);
    let fresh = heap.stats();
    let l = layout(MIN, 8);
    let blocks: Vec<_> = (0..8).map(|_| heap.alloc(l).unwrap()).collect();
    // SAFETY: live with `l`.
    unsafe { blocks[..4].iter().for_each(|&p| heap.dealloc(p, l)) };
    let cached = heap.stats().free_blocks[0];
    // Lowered below what it holds: the four stay cached, and the next frees go to the lists.
    let mut heap = heap.with_cache(2);
    heap.check_invariants().unwrap();
    assert_eq!(heap.stats().free_blocks[0], cached);
    // SAFETY: live with `l`.
    unsafe { heap.dealloc(blocks[4], l) };
    heap.check_invariants().unwrap();
    let again: Vec<_> = (0..4).map(|_| heap.alloc(l).unwrap()).collect();
    assert_eq!(again, [blocks[3], blocks[2], blocks[1], blocks[0]], "the four come back from the cache");
    // Now below the limit again: two frees are cached, the third is not.
    // SAFETY: live with `l`.
    unsafe { again.iter().for_each(|&p| heap.dealloc(p, l)) };
    heap.check_invariants().unwrap();
    // Raised: room for more.
    let mut heap = heap.with_cache(16);
    // SAFETY: live with `l`.
    unsafe { blocks[5..].iter().for_each(|&p| heap.dealloc(p, l)) };
    heap.check_invariants().unwrap();
    assert!(heap.coalesce());
    heap.check_invariants().unwrap();
    assert_eq!(heap.stats(), fresh);
}
