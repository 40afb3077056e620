//! Deterministic placement: on fresh, well-aligned regions every allocation lands at an address
//! that follows from the documented algorithm (regions tiled bottom-up, lowest non-empty order
//! first, LIFO free lists, lower part kept on a split, merges towards the lower address, deferred
//! merges), so these tests spell the addresses out.

// The expected addresses and free-list shapes below are worked out for 32-byte minimum blocks,
// so this file runs on 64-bit targets (Miri runs it on x86_64 and on big-endian s390x).
#![cfg(target_pointer_width = "64")]

mod common;

use std::ptr::NonNull;

use alloc_buddy_simple::{AllocError, Fit, Heap};
use common::{MIN, block, heap_with_usable, histogram, layout, leak_arena, tiling};

/// Frees every `(ptr, layout)`, checking the invariants after each free.
fn free_all<const N: usize>(heap: &mut Heap<N>, live: &[(NonNull<u8>, std::alloc::Layout)]) {
    for &(p, l) in live {
        // SAFETY: `p` was allocated by `heap` with `l` and is freed once.
        unsafe { heap.dealloc(p, l) };
        heap.check_invariants().unwrap();
    }
}

/// Offset of `p` from `base`.
fn off(p: NonNull<u8>, base: usize) -> usize {
    p.as_ptr().addr() - base
}

/// Bytes in the arena of the tests that use a whole, aligned arena (smaller under Miri, where
/// every `check_invariants` walks each unit).
const SIZE: usize = if cfg!(miri) { 256 << 10 } else { 1 << 20 };

#[test]
fn fresh_region_is_tiled_bottom_up_and_metadata_is_on_top() {
    let base = leak_arena(SIZE, SIZE);
    let mut heap: Heap = Heap::new();
    // SAFETY: a leaked arena used by nothing else.
    unsafe { heap.init(base, SIZE) }.unwrap();
    heap.check_invariants().unwrap();
    let s = heap.stats();
    assert_eq!(s.regions, 1);
    assert_eq!(s.total_bytes + s.metadata_bytes, SIZE, "an aligned region loses nothing to trimming");
    assert!(s.metadata_bytes > 0 && s.metadata_bytes <= SIZE / 64, "{s}");
    assert_eq!(s.free_bytes, s.total_bytes);
    assert_eq!((s.allocations, s.allocated_bytes, s.requested_bytes), (0, 0, 0));
    // Usable memory is [base, base + total): the metadata is at the top.
    let pieces = tiling(base.addr(), base.addr() + s.total_bytes, Heap::<32>::MAX_ORDER);
    assert_eq!(s.free_blocks, histogram::<32>(&pieces));
    let half_order = (SIZE / 2 / MIN).trailing_zeros() as usize;
    assert_eq!(pieces[0], (base.addr(), half_order), "the bottom half of the arena is one block");
    assert_eq!(s.largest_free_block, SIZE / 2);
    // Each piece is alone on its list, so asking for exactly its size takes it whole, without a
    // split, smallest first.
    let mut by_order = pieces.clone();
    by_order.sort_by_key(|&(_, k)| k);
    let mut live = Vec::new();
    for &(addr, k) in &by_order {
        let l = layout(block(k), 1);
        let p = heap.alloc(l).unwrap();
        assert_eq!(p.as_ptr().addr(), addr, "order {k}");
        heap.check_invariants().unwrap();
        live.push((p, l));
    }
    assert_eq!(heap.stats().free_bytes, 0);
    assert_eq!(heap.stats().allocated_bytes, s.total_bytes);
    assert_eq!(heap.alloc(layout(1, 1)), Err(AllocError::OutOfMemory));
    // None of the pieces are buddies, so freeing them merges nothing: back to the fresh state.
    free_all(&mut heap, &live);
    assert_eq!(heap.stats(), s);
    assert!(!heap.coalesce());
}

#[test]
fn first_small_block_comes_from_the_smallest_piece_at_the_top() {
    let base = leak_arena(SIZE, SIZE);
    let mut heap: Heap = Heap::new();
    // SAFETY: a leaked arena used by nothing else.
    unsafe { heap.init(base, SIZE) }.unwrap();
    let fresh = heap.stats();
    let pieces = tiling(base.addr(), base.addr() + fresh.total_bytes, Heap::<32>::MAX_ORDER);
    let &(smallest_addr, smallest_order) = pieces.iter().min_by_key(|&&(_, k)| k).unwrap();
    let l = layout(1, 1);
    let p = heap.alloc(l).unwrap();
    assert_eq!(p.as_ptr().addr(), smallest_addr);
    // The kept unit is the lowest of that piece; the rest of it went back as smaller blocks.
    let s = heap.stats();
    assert_eq!(s.allocated_bytes, MIN);
    assert_eq!(s.free_blocks[smallest_order], fresh.free_blocks[smallest_order] - 1);
    for k in 0..smallest_order {
        assert_eq!(s.free_blocks[k], fresh.free_blocks[k] + 1, "order {k}");
    }
    // SAFETY: allocated above with `l`.
    unsafe { heap.dealloc(p, l) };
    heap.coalesce();
    heap.check_invariants().unwrap();
    assert_eq!(heap.stats(), fresh);
}

#[test]
fn few_orders_cap_the_blocks_and_lists_are_lifo() {
    let base = leak_arena(SIZE, SIZE);
    let mut heap: Heap<4> = Heap::new();
    assert_eq!(Heap::<4>::MAX_ORDER, 3);
    assert_eq!(Heap::<4>::MAX_BLOCK, 8 * MIN);
    // SAFETY: a leaked arena used by nothing else.
    unsafe { heap.init(base, SIZE) }.unwrap();
    heap.check_invariants().unwrap();
    let fresh = heap.stats();
    let pieces = tiling(base.addr(), base.addr() + fresh.total_bytes, 3);
    assert_eq!(fresh.free_blocks, histogram::<4>(&pieces));
    assert_eq!(fresh.largest_free_block, 8 * MIN);
    assert!(fresh.free_blocks[3] > SIZE / block(3) / 2);
    // Order-3 blocks were pushed bottom-up, so they come back top-down.
    let top: Vec<usize> = pieces.iter().filter(|&&(_, k)| k == 3).map(|&(a, _)| a).rev().take(5).collect();
    let l = layout(8 * MIN, 8 * MIN);
    let mut live = Vec::new();
    for &want in &top {
        let p = heap.alloc(l).unwrap();
        assert_eq!(p.as_ptr().addr(), want);
        live.push((p, l));
    }
    assert_eq!(heap.alloc(layout(8 * MIN + 1, 1)), Err(AllocError::Unsatisfiable));
    free_all(&mut heap, &live);
    assert_eq!(heap.stats(), fresh);
}

/// One step of a placement script: a layout and the expected offset from the base.
struct Step {
    size: usize,
    align: usize,
    offset: usize,
}

const fn step(size: usize, align: usize, offset: usize) -> Step {
    Step { size, align, offset }
}

/// Runs `script` on a fresh heap whose free memory is one 64 KiB block (order 11) at `base`,
/// checks every address, the free lists after the first twelve steps and the bytes held, then
/// frees everything in a scrambled order and checks the heap is as fresh.
fn run_script(fit: Fit, script: &[Step], lists_after_12: [usize; 12], held_after_12: usize) {
    let (mut heap, base) = heap_with_usable::<32>(fit, 64 << 10);
    let fresh = heap.stats();
    assert_eq!(fresh.free_blocks[11], 1);
    assert_eq!(fresh.free_blocks.iter().sum::<usize>(), 1);
    let mut live = Vec::new();
    for (i, s) in script.iter().enumerate() {
        let l = layout(s.size, s.align);
        let p = heap.alloc(l).unwrap_or_else(|e| panic!("step {i}: {e}"));
        assert_eq!(off(p, base), s.offset, "step {i}: {} bytes at align {}", s.size, s.align);
        assert_eq!(p.as_ptr().addr() % s.align, 0);
        heap.check_invariants().unwrap();
        live.push((p, l));
        if i == 11 {
            let st = heap.stats();
            assert_eq!(st.free_blocks[..12], lists_after_12, "{st}");
            assert_eq!(st.allocated_bytes, held_after_12);
            let requested: usize = script[..12].iter().map(|s| s.size).sum();
            assert_eq!(st.requested_bytes, requested);
            assert_eq!(st.allocations, 12);
        }
    }
    // Free in a fixed scrambled order.
    let mut order: Vec<usize> = (0..live.len()).collect();
    order.sort_by_key(|&i| (i * 7 + 3) % live.len());
    let scrambled: Vec<_> = order.iter().map(|&i| live[i]).collect();
    free_all(&mut heap, &scrambled);
    heap.coalesce();
    heap.check_invariants().unwrap();
    assert_eq!(heap.stats(), fresh);
    // Everything merged back into the block at the base.
    let whole = layout(64 << 10, 64 << 10);
    let p = heap.alloc(whole).unwrap();
    assert_eq!(off(p, base), 0);
    // SAFETY: allocated above with `whole`.
    unsafe { heap.dealloc(p, whole) };
}

#[test]
fn exact_fit_script() {
    // Units of 32 bytes; comments give the unit index (offset / MIN_BLOCK) and what is split.
    const U: usize = MIN;
    let script = [
        step(1, 1, 0),             // order 11 split: keeps unit 0, frees 1, 2-3, 4-7, ..., 1024-2047
        step(U, 8, U),             // unit 1 (order 0)
        step(2 * U + 1, 8, 4 * U), // 3 units from the order-2 block at 4, unit 7 back
        step(0, 1, 7 * U),         // zero size: one unit, unit 7
        step(20, 4, 2 * U),        // order-1 block at 2 split, unit 3 back
        step(1, 1, 3 * U),         // unit 3
        step(5 * U, 16, 8 * U),    // 5 units from the order-3 block at 8; 13 and 14-15 back
        step(8, 4096, 128 * U),    // order 7 at 128, keeps one unit: 129, 130-131, ..., 192-255 back
        step(1, 1, 129 * U),       // order 0 is LIFO: 129 was pushed after 13
        step(1, 1, 13 * U),        // then 13
        step(U + 1, 1, 130 * U),   // 2 units: order 1 list holds 130 (newest) and 14
        // 129 units from the order-8 block at 256; 385, 386-387, ... back. (The heap is under
        // 1/8 allocated and an order-8 block is free, so no run is looked for.)
        step(4097, 1, 256 * U),
        step(24, 8, 385 * U), // the only order-0 block
        step(1, 1, 386 * U),  // order-1 head 386 split, 387 back
    ];
    let units_held = 1 + 1 + 3 + 1 + 1 + 1 + 5 + 1 + 1 + 1 + 2 + 129;
    run_script(Fit::Exact, &script, [1, 2, 2, 2, 3, 3, 3, 0, 0, 1, 1, 0], units_held * U);
}

#[test]
fn power_of_two_fit_script() {
    const U: usize = MIN;
    let script = [
        step(1, 1, 0),             // order 11 split: keeps unit 0, frees 1, 2-3, 4-7, ...
        step(U, 8, U),             // unit 1
        step(2 * U + 1, 8, 4 * U), // whole order-2 block at 4
        step(0, 1, 2 * U),         // order-1 block at 2 split, 3 back
        step(20, 4, 3 * U),        // unit 3
        step(1, 1, 8 * U),         // order 3 at 8 split: 9, 10-11, 12-15 back
        step(5 * U, 16, 16 * U),   // 8 units: order 3 is empty, order 4 at 16 split, 24-31 back
        step(8, 4096, 128 * U),    // the whole order-7 block at 128
        step(1, 1, 9 * U),         // unit 9
        step(1, 1, 10 * U),        // order-1 block at 10 split, 11 back
        step(U + 1, 1, 12 * U),    // order 2 at 12 split, 14-15 back
        step(4097, 1, 256 * U),    // the whole order-8 block at 256
        step(24, 8, 11 * U),       // unit 11
        step(1, 1, 14 * U),        // order-1 block at 14 split, 15 back
    ];
    let units_held = 1 + 1 + 4 + 1 + 1 + 1 + 8 + 128 + 1 + 1 + 2 + 256;
    run_script(Fit::PowerOfTwo, &script, [1, 1, 0, 1, 0, 1, 1, 0, 0, 1, 1, 0], units_held * U);
}

#[test]
fn large_alignment_costs_one_unit_in_exact_mode() {
    for fit in [Fit::Exact, Fit::PowerOfTwo] {
        let (mut heap, base) = heap_with_usable::<32>(fit, 64 << 10);
        let fresh = heap.stats();
        let l = layout(8, 4096);
        let a = heap.alloc(l).unwrap();
        assert_eq!(off(a, base), 0);
        let expect = if fit == Fit::Exact { MIN } else { 4096 };
        assert_eq!(heap.stats().allocated_bytes, expect, "{fit:?}");
        // In exact mode the rest of the 4 KiB block is free at once: the next unit follows.
        let small = layout(1, 1);
        let b = heap.alloc(small).unwrap();
        let want = if fit == Fit::Exact { MIN } else { 4096 };
        assert_eq!(off(b, base), want, "{fit:?}");
        let c = heap.alloc(l).unwrap();
        assert_eq!(off(c, base), 4096 * if fit == Fit::Exact { 1 } else { 2 }, "{fit:?}");
        assert_eq!(c.as_ptr().addr() % 4096, 0);
        for align in [64, 256, 1024, 8192, 32768] {
            let l2 = layout(1, align);
            let p = heap.alloc(l2).unwrap();
            assert_eq!(p.as_ptr().addr() % align, 0);
            let before = heap.stats().allocated_bytes;
            // SAFETY: allocated just above with `l2`.
            unsafe { heap.dealloc(p, l2) };
            let held = before - heap.stats().allocated_bytes;
            assert_eq!(held, if fit == Fit::Exact { MIN } else { align }, "{fit:?} align {align}");
            heap.check_invariants().unwrap();
        }
        free_all(&mut heap, &[(a, l), (b, small), (c, l)]);
        heap.coalesce();
        assert_eq!(heap.stats(), fresh, "{fit:?}");
    }
}

#[test]
fn exact_and_power_of_two_hold_different_amounts() {
    for (size, exact, pow2) in [(1, 1, 1), (MIN + 1, 2, 2), (3 * MIN, 3, 4), (4097, 129, 256), (0, 1, 1)] {
        // (`Adaptive` on a fresh heap holds what `PowerOfTwo` does.)
        for (fit, units) in [(Fit::Exact, exact), (Fit::PowerOfTwo, pow2), (Fit::Adaptive, pow2)] {
            let (mut heap, _) = heap_with_usable::<32>(fit, 64 << 10);
            let l = layout(size, 1);
            let p = heap.alloc(l).unwrap();
            let s = heap.stats();
            assert_eq!(s.allocated_bytes, units * MIN, "{fit:?} {size}");
            assert_eq!(s.requested_bytes, size);
            assert_eq!(s.free_bytes, s.total_bytes - units * MIN);
            // SAFETY: allocated above with `l`.
            unsafe { heap.dealloc(p, l) };
        }
    }
}

#[test]
fn adaptive_keeps_whole_blocks_until_a_third_is_allocated() {
    let (mut heap, _) = heap_with_usable::<32>(Fit::Adaptive, 64 << 10);
    let total = heap.stats().total_bytes;
    let three = layout(3 * MIN, 8);
    // Loose: the request holds its whole block of four units.
    let loose = heap.alloc(three).unwrap();
    assert_eq!(heap.stats().allocated_bytes, 4 * MIN);
    // Whole blocks, each at most the gap left, until `limit` bytes are allocated.
    let mut fillers = Vec::new();
    let mut fill_to = |heap: &mut Heap, limit: usize| {
        while heap.stats().allocated_bytes < limit {
            let gap = limit - heap.stats().allocated_bytes;
            let filler = layout(1 << gap.ilog2(), 8);
            fillers.push((heap.alloc(filler).unwrap(), filler));
        }
    };
    // Just below a third, a request still holds its whole block.
    fill_to(&mut heap, total / 3 - 4 * MIN);
    let below = heap.stats().allocated_bytes;
    assert!(below < total / 3, "{below} of {total}");
    let last_whole = heap.alloc(three).unwrap();
    assert_eq!(heap.stats().allocated_bytes, below + 4 * MIN);
    // From a third on, a request holds its units only. (Filled past it by the loose block, so
    // that the heap stays past it once that is freed.)
    fill_to(&mut heap, total / 3 + 4 * MIN);
    let before = heap.stats().allocated_bytes;
    let tight = heap.alloc(three).unwrap();
    assert_eq!(heap.stats().allocated_bytes, before + 3 * MIN);
    heap.check_invariants().unwrap();
    // Each is freed with the same layout and gives back what it holds: the bitmap tells a whole
    // block from a trimmed one.
    // SAFETY: each was allocated above with its layout, and is freed once.
    unsafe {
        heap.dealloc(loose, three);
        assert_eq!(heap.stats().allocated_bytes, before + 3 * MIN - 4 * MIN);
        heap.dealloc(tight, three);
        assert_eq!(heap.stats().allocated_bytes, before - 4 * MIN);
        // A smaller layout of the same order (fewer units, a larger alignment) is misuse. It
        // names a whole block, and a debug build sees the trimmed block's end inside it.
        let tight = heap.alloc(three).unwrap();
        let smaller = layout(2 * MIN, 4 * MIN);
        if cfg!(debug_assertions) {
            assert!(heap.try_dealloc(tight, smaller).is_err());
        }
        heap.dealloc(tight, three);
        heap.dealloc(last_whole, three);
        for (p, l) in fillers {
            heap.dealloc(p, l);
        }
    }
    heap.coalesce();
    heap.check_invariants().unwrap();
    assert_eq!(heap.stats().allocated_bytes, 0);
}

#[test]
fn split_keeps_the_lower_half_and_merges_go_to_the_lower_address() {
    for fit in [Fit::Exact, Fit::PowerOfTwo] {
        let (mut heap, base) = heap_with_usable::<32>(fit, 64 << 10);
        let fresh = heap.stats();
        let half = layout(32 << 10, 1);
        let quarter = layout(16 << 10, 1);
        let a = heap.alloc(half).unwrap();
        assert_eq!(off(a, base), 0);
        let b = heap.alloc(quarter).unwrap();
        assert_eq!(off(b, base), 32 << 10, "the upper half splits, its lower quarter is kept");
        let c = heap.alloc(quarter).unwrap();
        assert_eq!(off(c, base), 48 << 10);
        assert_eq!(heap.stats().free_bytes, 0);
        // SAFETY: `b` is live with `quarter`.
        unsafe { heap.dealloc(b, quarter) };
        // SAFETY: `c` is live with `quarter`.
        unsafe { heap.dealloc(c, quarter) };
        heap.check_invariants().unwrap();
        // The two quarters are buddies and the only order-9 blocks: the merge is deferred.
        assert_eq!(heap.stats().free_blocks[9], 2);
        assert!(heap.coalesce());
        heap.check_invariants().unwrap();
        let s = heap.stats();
        assert_eq!((s.free_blocks[9], s.free_blocks[10]), (0, 1));
        // The merged half is at the lower address: a half-size request gets 32 KiB.
        let d = heap.alloc(half).unwrap();
        assert_eq!(off(d, base), 32 << 10);
        // SAFETY: `d` is live with `half`.
        unsafe { heap.dealloc(d, half) };
        // SAFETY: `a` is live with `half`.
        unsafe { heap.dealloc(a, half) };
        heap.coalesce();
        heap.check_invariants().unwrap();
        assert_eq!(heap.stats(), fresh);
        assert!(!heap.coalesce(), "nothing left to merge");
        let whole = layout(64 << 10, 1);
        let e = heap.alloc(whole).unwrap();
        assert_eq!(off(e, base), 0);
        // SAFETY: `e` is live with `whole`.
        unsafe { heap.dealloc(e, whole) };
        assert_eq!(heap.stats(), fresh);
    }
}

#[test]
fn merges_below_the_allocation_order_are_immediate() {
    // Four usable units: one order-2 block.
    let (mut heap, base) = heap_with_usable::<32>(Fit::Exact, 4 * MIN);
    let fresh = heap.stats();
    assert_eq!(fresh.free_blocks[2], 1);
    let l = layout(3 * MIN, 1);
    let p = heap.alloc(l).unwrap();
    assert_eq!(off(p, base), 0);
    assert_eq!(heap.stats().free_blocks[..3], [1, 0, 0]);
    // SAFETY: `p` is live with `l`.
    unsafe { heap.dealloc(p, l) };
    heap.check_invariants().unwrap();
    // Units 0-1, 2 and the free unit 3 merge back at once: nothing is deferred below order 2.
    assert_eq!(heap.stats(), fresh);
    assert!(!heap.coalesce());
}

#[test]
fn deferred_merge_keeps_one_pair_per_order_until_coalesce() {
    // Sixteen usable units: one order-4 block.
    let (mut heap, base) = heap_with_usable::<32>(Fit::Exact, 16 * MIN);
    let fresh = heap.stats();
    let l = layout(1, 1);
    let ps: Vec<_> = (0..4).map(|_| heap.alloc(l).unwrap()).collect();
    let offs: Vec<usize> = ps.iter().map(|&p| off(p, base)).collect();
    assert_eq!(offs, [0, MIN, 2 * MIN, 3 * MIN]);
    assert_eq!(heap.stats().free_blocks[..5], [0, 0, 1, 1, 0]);
    // SAFETY: each pointer is live with `l` and freed once.
    unsafe {
        heap.dealloc(ps[0], l);
        // Unit 0's buddy (unit 1) is allocated: no merge.
        assert_eq!(heap.stats().free_blocks[0], 1);
        heap.dealloc(ps[1], l);
        // Unit 0 is the only order-0 block: the merge is deferred, both stay on the list.
        assert_eq!(heap.stats().free_blocks[..5], [2, 0, 1, 1, 0]);
        heap.check_invariants().unwrap();
        heap.dealloc(ps[2], l);
        assert_eq!(heap.stats().free_blocks[0], 3);
        heap.dealloc(ps[3], l);
    }
    heap.check_invariants().unwrap();
    // Units 2 and 3 merged (the list was not down to one block), but not further: unit 0-1 is a
    // deferred pair at order 0, not an order-1 block.
    assert_eq!(heap.stats().free_blocks[..5], [2, 1, 1, 1, 0]);
    assert_eq!(heap.stats().largest_free_block, 8 * MIN);
    assert!(heap.coalesce());
    heap.check_invariants().unwrap();
    assert_eq!(heap.stats(), fresh);
    assert_eq!(heap.stats().largest_free_block, 16 * MIN);
}

#[test]
fn ping_pong_reuses_the_same_block_without_merging() {
    let (mut heap, base) = heap_with_usable::<32>(Fit::Exact, 64 << 10);
    let fresh = heap.stats();
    let l = layout(24, 8);
    let p = heap.alloc(l).unwrap();
    assert_eq!(off(p, base), 0);
    // SAFETY: `p` is live with `l`.
    unsafe { heap.dealloc(p, l) };
    let after_free = heap.stats();
    assert_eq!(after_free.free_blocks[0], 2, "unit 0 and its buddy stay apart");
    assert_ne!(after_free, fresh);
    for _ in 0..3 {
        let q = heap.alloc(l).unwrap();
        assert_eq!(q, p, "LIFO: the block just freed comes back");
        assert_eq!(heap.stats().free_blocks[..12], fresh_split_lists());
        // SAFETY: `q` is live with `l`.
        unsafe { heap.dealloc(q, l) };
        assert_eq!(heap.stats(), after_free);
        heap.check_invariants().unwrap();
    }
    assert!(heap.coalesce());
    assert_eq!(heap.stats(), fresh);
}

/// Free lists after one unit is split off a lone order-11 block.
fn fresh_split_lists() -> [usize; 12] {
    [1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0]
}

#[test]
fn alloc_coalesces_deferred_pairs_before_running_out() {
    // Four usable units: one order-2 block.
    let (mut heap, base) = heap_with_usable::<32>(Fit::Exact, 4 * MIN);
    let fresh = heap.stats();
    let l = layout(1, 1);
    let a = heap.alloc(l).unwrap();
    let b = heap.alloc(l).unwrap();
    assert_eq!((off(a, base), off(b, base)), (0, MIN));
    // SAFETY: both are live with `l` and freed once.
    unsafe {
        heap.dealloc(a, l);
        heap.dealloc(b, l);
    }
    let s = heap.stats();
    assert_eq!(s.free_blocks[..3], [2, 1, 0], "units 0 and 1 are a deferred pair");
    assert_eq!(s.largest_free_block, 2 * MIN);
    // Only a merge makes a 4-unit block: alloc must coalesce rather than fail.
    let big = layout(4 * MIN, 1);
    let p = heap.alloc(big).expect("alloc must coalesce deferred pairs before reporting OOM");
    assert_eq!(off(p, base), 0);
    assert_eq!(heap.alloc(l), Err(AllocError::OutOfMemory));
    // SAFETY: `p` is live with `big`.
    unsafe { heap.dealloc(p, big) };
    heap.check_invariants().unwrap();
    assert_eq!(heap.stats(), fresh);
}

#[test]
fn realloc_grows_in_place_into_free_blocks_and_shrinks_in_place() {
    let (mut heap, base) = heap_with_usable::<32>(Fit::Exact, 64 << 10);
    let fresh = heap.stats();
    let l = layout(100, 8);
    let p = heap.alloc(l).unwrap();
    assert_eq!(off(p, base), 0);
    // SAFETY: `p` holds 100 bytes.
    unsafe { common::fill(p, 7, 0, 100) };
    // SAFETY: `p` is live with `l`.
    let q = unsafe { heap.realloc(p, l, 5000) }.unwrap();
    assert_eq!(q, p, "the units after the block are free: grow in place");
    let l = layout(5000, 8);
    assert_eq!(heap.stats().allocated_bytes, 5000usize.div_ceil(MIN) * MIN);
    heap.check_invariants().unwrap();
    // SAFETY: `q` holds 5000 bytes, the first 100 written above.
    assert_eq!(unsafe { common::first_wrong(q, 7, 100) }, None);
    // A neighbour right after the block stops in-place growth.
    let n = heap.alloc(layout(1, 1)).unwrap();
    assert_eq!(off(n, base), 5024, "the next free unit is the one right after the block");
    // SAFETY: `q` is live with `l`.
    assert_eq!(unsafe { heap.resize_in_place(q, l, 6000) }, Err(AllocError::OutOfMemory));
    heap.check_invariants().unwrap();
    // SAFETY: `q` is live with `l`; the block must move.
    let r = unsafe { heap.realloc(q, l, 6000) }.unwrap();
    assert_ne!(r, q);
    // SAFETY: `r` holds 6000 bytes, the first 100 copied from `q`.
    assert_eq!(unsafe { common::first_wrong(r, 7, 100) }, None);
    let l = layout(6000, 8);
    // Shrinking always stays in place.
    // SAFETY: `r` is live with `l`.
    let s = unsafe { heap.realloc(r, l, 10) }.unwrap();
    assert_eq!(s, r);
    let l = layout(10, 8);
    assert_eq!(heap.stats().allocated_bytes, 2 * MIN);
    // SAFETY: `s` is live with `l`; `n` is live with its layout.
    unsafe {
        heap.dealloc(s, l);
        heap.dealloc(n, layout(1, 1));
    }
    heap.coalesce();
    heap.check_invariants().unwrap();
    assert_eq!(heap.stats(), fresh);
}

#[test]
fn power_of_two_grows_in_place_only_when_aligned_for_the_new_order() {
    let (mut heap, base) = heap_with_usable::<32>(Fit::PowerOfTwo, 64 << 10);
    let fresh = heap.stats();
    let l = layout(MIN, 1);
    let a = heap.alloc(l).unwrap();
    let b = heap.alloc(l).unwrap();
    assert_eq!((off(a, base), off(b, base)), (0, MIN));
    // `b` at unit 1 cannot become a 2-unit block in place: a 2-unit block must start at an even
    // unit.
    // SAFETY: `b` is live with `l`.
    assert_eq!(unsafe { heap.resize_in_place(b, l, 2 * MIN) }, Err(AllocError::OutOfMemory));
    // SAFETY: `b` is live with `l`.
    unsafe { heap.dealloc(b, l) };
    // `a` at unit 0 can take units 1-3 (unit 1 free again, 2-3 an order-1 block).
    // SAFETY: `a` is live with `l`.
    unsafe { heap.resize_in_place(a, l, 4 * MIN) }.unwrap();
    let l = layout(4 * MIN, 1);
    assert_eq!(heap.stats().allocated_bytes, 4 * MIN);
    heap.check_invariants().unwrap();
    // SAFETY: `a` is live with `l`.
    unsafe { heap.dealloc(a, l) };
    heap.coalesce();
    heap.check_invariants().unwrap();
    assert_eq!(heap.stats(), fresh);
}

#[test]
fn a_request_no_single_block_holds_runs_over_adjacent_free_blocks() {
    for fit in [Fit::Exact, Fit::PowerOfTwo] {
        // A fresh region whose usable part is one 1 MiB block at `base`.
        let (mut heap, base) = heap_with_usable::<32>(fit, 1 << 20);
        let fresh = heap.stats();
        let quarter = layout(256 << 10, 8);
        let q: Vec<_> = (0..4).map(|_| heap.alloc(quarter).unwrap()).collect();
        let offsets: Vec<_> = q.iter().map(|&p| off(p, base)).collect();
        assert_eq!(offsets, [0, 256 << 10, 512 << 10, 768 << 10]);
        // Free the middle two: two free 256 KiB blocks that are not buddies, so they stay apart.
        for &p in &q[1..3] {
            // SAFETY: allocated above with `quarter`.
            unsafe { heap.dealloc(p, quarter) };
        }
        heap.coalesce();
        assert_eq!(heap.stats().largest_free_block, 256 << 10);
        // 400 KiB needs a 512 KiB block, and there is none; the two free neighbours hold it.
        let big = layout(400 << 10, 8);
        let p = heap.alloc(big).expect("a run over two adjacent free blocks");
        assert_eq!(off(p, base), 256 << 10);
        heap.check_invariants().unwrap();
        // SAFETY: `p` is live with `big`.
        unsafe { p.as_ptr().write_bytes(0xA5, big.size()) };
        // A second one finds no run.
        assert_eq!(heap.alloc(big), Err(AllocError::OutOfMemory));
        // SAFETY: all live with their layouts.
        unsafe {
            heap.dealloc(p, big);
            heap.dealloc(q[0], quarter);
            heap.dealloc(q[3], quarter);
        }
        heap.coalesce();
        heap.check_invariants().unwrap();
        assert_eq!(heap.stats(), fresh, "{fit:?}");
    }
}

#[test]
fn exact_fit_fills_the_tightest_hole_first() {
    const U: usize = MIN;
    let (mut heap, base) = heap_with_usable::<32>(Fit::Exact, 64 << 10);
    let fresh = heap.stats();
    // A 12 KiB allocation first, so the heap is more than 1/8 allocated: from then on every
    // exact request above 8 units looks for the best-fitting run.
    let filler = layout(384 * U, 8);
    let f = heap.alloc(filler).unwrap();
    assert_eq!(off(f, base), 0);
    // Five allocations side by side after it, packed into the run the filler left.
    let sizes = [20 * U, 32 * U, 20 * U, 63 * U, 20 * U];
    let mut live: Vec<_> = sizes.iter().map(|&s| (heap.alloc(layout(s, 8)).unwrap(), layout(s, 8))).collect();
    let starts: Vec<usize> = live.iter().map(|&(p, _)| off(p, base) / U).collect();
    assert_eq!(starts, [384, 404, 436, 456, 519]);
    // Free the 32-unit and the 63-unit allocations: two holes between live ones.
    for i in [3, 1] {
        let (p, l) = live.remove(i);
        // SAFETY: live with `l`.
        unsafe { heap.dealloc(p, l) };
    }
    heap.check_invariants().unwrap();
    // 29 units fit both holes (and the free memory after the last allocation): the tightest one
    // is taken.
    let a = heap.alloc(layout(29 * U, 8)).unwrap();
    assert_eq!(off(a, base), 404 * U);
    // 40 units fit only the 63-unit hole.
    let b = heap.alloc(layout(40 * U, 8)).unwrap();
    assert_eq!(off(b, base), 456 * U);
    // 64 units fit no hole: they go after the last allocation, into fresh memory.
    let c = heap.alloc(layout(64 * U, 8)).unwrap();
    assert!(off(c, base) >= 539 * U);
    heap.check_invariants().unwrap();
    live.extend([(f, filler), (a, layout(29 * U, 8)), (b, layout(40 * U, 8)), (c, layout(64 * U, 8))]);
    free_all(&mut heap, &live);
    heap.coalesce();
    assert_eq!(heap.stats(), fresh);
}
