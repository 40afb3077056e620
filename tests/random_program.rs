//! Random programs against a shadow model.
//!
//! Each program runs thousands of random operations (alloc, dealloc, realloc, resize in place,
//! coalesce, misuse that must be detected, and now and then a new region cut from a pre-split
//! arena) and checks after every step:
//!
//! - the heap's invariants (`check_invariants`);
//! - every block: aligned, inside the region it came from, not overlapping any other live block,
//!   and still holding the byte pattern written into it (checked before every free and after
//!   every realloc);
//! - the outcome of every call: `Unsatisfiable` exactly when the layout needs a block above the
//!   largest order, `OutOfMemory` only when no free block is large enough (after the coalescing
//!   that `alloc` does), in-place resizes exactly when the units after the block are free;
//! - the statistics against the model: live count, requested and held bytes, free blocks (under
//!   `Fit::Adaptive` the model predicts whole or exact blocks from the bytes held; with a cache,
//!   whose blocks it cannot see, it reads what a block holds from the statistics and checks that
//!   it is one of the two);
//! - at the end, after freeing everything and `coalesce`, every region is back to its fresh
//!   bottom-up tiling.

mod common;

use std::alloc::Layout;
use std::collections::BTreeMap;
use std::ptr::NonNull;

use alloc_buddy_simple::{AllocError, Fit, FreeError, Heap, HeapError};
use common::{
    MIN, Rng, TRIM_PART, block, first_wrong, held, held_adaptive, histogram, layout, leak_arena, order_of,
    tiling, units,
};

/// Bytes in the arena a program cuts its regions from.
const ARENA: usize = if cfg!(miri) { 32 << 10 } else { 1 << 20 };
/// Operations per program.
const OPS: usize = if cfg!(miri) { 120 } else { 5000 };
/// Seeds per configuration.
const SEEDS: &[u64] = if cfg!(miri) { &[1] } else { &[1, 2, 3, 4, 0xDEAD_BEEF] };
/// The largest size requested, capped by the largest block.
const MAX_SIZE: usize = if cfg!(miri) { 2 << 10 } else { 128 << 10 };

#[derive(Clone, Copy, Debug)]
enum Op {
    Alloc,
    Dealloc,
    Realloc,
    Resize,
    Misuse,
    Coalesce,
    Overlap,
    AddRegion,
}

struct Live {
    ptr: NonNull<u8>,
    layout: Layout,
    tag: u8,
    /// Bytes the block holds.
    held: usize,
}

/// A region the heap has: its units `[lo, meta)` are for allocation.
#[derive(Clone, Copy, Debug)]
struct Region {
    start: usize,
    end: usize,
    lo: usize,
    meta: usize,
}

struct Program<const N: usize> {
    heap: Heap<N>,
    fit: Fit,
    rng: Rng,
    live: Vec<Live>,
    /// Held extents of the live blocks: start -> end.
    extents: BTreeMap<usize, usize>,
    regions: Vec<Region>,
    /// Regions not yet added, as `(start, size)`.
    pending: Vec<(*mut u8, usize)>,
    /// Expected free blocks by order once everything is freed and coalesced.
    fresh_lists: Vec<usize>,
    /// The heap's cache limit (blocks per order).
    cache: usize,
    held_bytes: usize,
    recently_freed: Vec<(NonNull<u8>, Layout)>,
    next_tag: u8,
    max_size: usize,
    /// Counts of interesting outcomes, to check that the program exercised them.
    seen: Seen,
}

#[derive(Debug, Default)]
struct Seen {
    allocs: usize,
    oom: usize,
    unsatisfiable: usize,
    grown_in_place: usize,
    moved: usize,
    resize_refused: usize,
    misuse: usize,
    regions: usize,
    /// Blocks of sizes that need fewer units than their block, held whole and trimmed.
    kept_whole: usize,
    trimmed: usize,
}

impl<const N: usize> Program<N> {
    fn new(fit: Fit, cache: usize, seed: u64) -> Self {
        let mut rng = Rng::new(seed);
        let base = leak_arena(ARENA, 1 << 20);
        // The first quarter is the initial region; the rest is cut into pieces with unaligned
        // boundaries and small gaps, added now and then.
        let first = ARENA / 4;
        let pieces = if cfg!(miri) { 3 } else { 6 };
        let step = (ARENA - first) / pieces;
        let mut cuts: Vec<usize> = (0..=pieces).map(|i| first + i * step).collect();
        for c in &mut cuts[1..pieces] {
            *c = *c + rng.below(2000) - 1000;
        }
        let mut pending = Vec::new();
        for w in cuts.windows(2) {
            let start = w[0] + rng.below(64);
            let end = w[1] - rng.below(64);
            pending.push((base.wrapping_add(start), end - start));
        }
        let mut p = Program {
            heap: Heap::with_fit(fit).with_cache(cache),
            fit,
            cache,
            rng,
            live: Vec::new(),
            extents: BTreeMap::new(),
            regions: Vec::new(),
            pending,
            fresh_lists: vec![0; N],
            held_bytes: 0,
            recently_freed: Vec::new(),
            next_tag: 0,
            max_size: MAX_SIZE.min(Heap::<N>::MAX_BLOCK),
            seen: Seen::default(),
        };
        p.add_region(base, first, true);
        p
    }

    /// Adds `start..start + size`, checking its statistics and tiling.
    fn add_region(&mut self, start: *mut u8, size: usize, first: bool) {
        let before = self.heap.stats();
        // SAFETY: a part of the program's leaked arena, disjoint from the others and handed over
        // once.
        let result =
            unsafe { if first { self.heap.init(start, size) } else { self.heap.add_region(start, size) } };
        result.unwrap();
        let after = self.heap.stats();
        let lo = start.addr().next_multiple_of(MIN);
        let hi = (start.addr() + size) & !(MIN - 1);
        assert_eq!(after.regions, before.regions + 1);
        let usable = after.total_bytes - before.total_bytes;
        assert_eq!(usable + after.metadata_bytes - before.metadata_bytes, hi - lo);
        assert!(usable > 0);
        let pieces = tiling(lo, lo + usable, Heap::<N>::MAX_ORDER);
        let added = histogram::<N>(&pieces);
        for (k, &n) in added.iter().enumerate() {
            assert_eq!(after.free_blocks[k], before.free_blocks[k] + n, "order {k} of a new region");
            self.fresh_lists[k] += n;
        }
        let r = Region { start: start.addr(), end: start.addr() + size, lo, meta: lo + usable };
        self.regions.push(r);
        self.seen.regions += 1;
    }

    fn random_layout(&mut self) -> Layout {
        let size = match self.rng.below(100) {
            0..=2 => 0,
            3 => Heap::<N>::MAX_BLOCK.saturating_add(1 + self.rng.below(100)),
            _ => self.rng.log_uniform(self.max_size),
        };
        let align_log = match self.rng.below(100) {
            0 => Heap::<N>::MAX_BLOCK.trailing_zeros() + 1,
            1..=5 => self.rng.range(13, 16) as u32,
            _ => self.rng.range(0, 12) as u32,
        };
        // Too large for any block, where such a layout exists: with 32 orders on a 32-bit target
        // the largest block is past `isize::MAX`, and a small layout is drawn instead.
        let align = 1usize.checked_shl(align_log).unwrap_or(0);
        Layout::from_size_align(size, align)
            .unwrap_or_else(|_| layout(self.rng.log_uniform(self.max_size), 1 << self.rng.range(0, 12)))
    }

    fn next_tag(&mut self) -> u8 {
        self.next_tag = self.next_tag.wrapping_add(1);
        self.next_tag
    }

    /// Bytes the heap holds for a block of `l` allocated (or resized) now, if the model can tell:
    /// under `Fit::Adaptive` with a cache, it cannot (cached blocks count as allocated, and it
    /// does not see them).
    fn held_now(&self, l: Layout) -> Option<usize> {
        match self.fit {
            Fit::Adaptive if self.cache > 0 => None,
            Fit::Adaptive => Some(held_adaptive(l, self.held_bytes, self.total())),
            fit => Some(held(l, fit)),
        }
    }

    /// Whether a block allocated (or resized) now keeps its whole power-of-two block, if the model
    /// can tell (see [`Program::held_now`]).
    fn keeps_whole_now(&self) -> Option<bool> {
        match self.fit {
            Fit::PowerOfTwo => Some(true),
            Fit::Exact => Some(false),
            Fit::Adaptive if self.cache > 0 => None,
            Fit::Adaptive => Some(self.held_bytes < self.total() / TRIM_PART),
        }
    }

    /// Checks what a new or resized block of `l` holds, `observed` from the statistics, against
    /// the model, and returns it.
    fn check_held(&mut self, l: Layout, observed: usize) -> usize {
        if held(l, Fit::Exact) < held(l, Fit::PowerOfTwo) {
            if observed == held(l, Fit::Exact) {
                self.seen.trimmed += 1;
            } else {
                self.seen.kept_whole += 1;
            }
        }
        match self.held_now(l) {
            Some(want) => assert_eq!(observed, want, "{l:?} holds {observed} bytes"),
            None => assert!(
                observed == held(l, Fit::PowerOfTwo) || observed == held(l, Fit::Exact),
                "{l:?} holds {observed} bytes, neither its block nor its units"
            ),
        }
        observed
    }

    /// Usable bytes in the heap's regions.
    fn total(&self) -> usize {
        self.regions.iter().map(|r| r.meta - r.lo).sum()
    }

    /// The region holding the block `[addr, addr + len)`.
    fn region_of(&self, addr: usize, len: usize) -> Region {
        *self
            .regions
            .iter()
            .find(|r| r.lo <= addr && addr + len <= r.meta)
            .unwrap_or_else(|| panic!("block {addr:#x}+{len:#x} is in no region: {:x?}", self.regions))
    }

    /// Records the held extent of a new or resized block, checking it overlaps nothing.
    fn insert_extent(&mut self, addr: usize, len: usize) {
        if let Some((&s, &e)) = self.extents.range(..=addr).next_back() {
            assert!(e <= addr, "{addr:#x} overlaps the block {s:#x}..{e:#x}");
        }
        if let Some((&s, _)) = self.extents.range(addr..).next() {
            assert!(addr + len <= s, "{addr:#x}+{len:#x} overlaps the block at {s:#x}");
        }
        self.extents.insert(addr, addr + len);
    }

    fn check_block(&self, p: NonNull<u8>, l: Layout, held: usize) {
        let addr = p.as_ptr().addr();
        assert_eq!(addr % l.align(), 0, "{addr:#x} misaligned for {l:?}");
        assert_eq!(addr % MIN, 0);
        let r = self.region_of(addr, held);
        assert!(r.start <= addr && addr + l.size() <= r.end);
    }

    fn verify(&self, i: usize) {
        let b = &self.live[i];
        // SAFETY: a live block of `b.layout.size()` bytes, all written.
        let wrong = unsafe { first_wrong(b.ptr, b.tag, b.layout.size()) };
        assert_eq!(wrong, None, "block {:p} ({:?}) was overwritten", b.ptr, b.layout);
    }

    /// Whether the units right after a block holding `old_held` bytes are free up to
    /// `new_held`, so that it can grow in place: no live block in the way, inside the region, and
    /// (a whole power-of-two block) the block aligned for the new order.
    fn can_grow(&self, addr: usize, old_held: usize, new: Layout, new_held: usize, whole: bool) -> bool {
        let old_end = addr + old_held;
        let new_end = addr + new_held;
        if whole && addr % block(order_of(new)) != 0 {
            return false;
        }
        let r = self.region_of(addr, old_held);
        new_end <= r.meta && self.extents.range(old_end..new_end).next().is_none()
    }

    fn alloc(&mut self) {
        let l = self.random_layout();
        let k = order_of(l);
        let before = self.heap.stats().allocated_bytes;
        let result = self.heap.alloc(l);
        match result {
            Ok(p) => {
                assert!(k <= Heap::<N>::MAX_ORDER, "{l:?} should be unsatisfiable");
                let held = self.check_held(l, self.heap.stats().allocated_bytes - before);
                self.check_block(p, l, held);
                self.insert_extent(p.as_ptr().addr(), held);
                let tag = self.next_tag();
                // SAFETY: a fresh block of `l.size()` bytes.
                unsafe { common::fill(p, tag, 0, l.size()) };
                self.live.push(Live { ptr: p, layout: l, tag, held });
                self.held_bytes += held;
                self.seen.allocs += 1;
            }
            Err(AllocError::Unsatisfiable) => {
                assert!(k > Heap::<N>::MAX_ORDER, "{l:?} is satisfiable");
                self.seen.unsatisfiable += 1;
            }
            Err(AllocError::OutOfMemory) => {
                assert!(k <= Heap::<N>::MAX_ORDER, "{l:?} should be unsatisfiable");
                let s = self.heap.stats();
                assert!(s.largest_free_block < block(k), "out of memory for {l:?} with {s}");
                self.seen.oom += 1;
            }
            Err(e) => panic!("unexpected {e:?}"),
        }
    }

    fn dealloc(&mut self) {
        let i = self.rng.below(self.live.len());
        self.verify(i);
        let b = self.live.swap_remove(i);
        self.extents.remove(&b.ptr.as_ptr().addr()).unwrap();
        if self.rng.chance(1, 2) {
            // SAFETY: live with this layout, freed once.
            unsafe { self.heap.dealloc(b.ptr, b.layout) };
        } else {
            // SAFETY: as above.
            unsafe { self.heap.try_dealloc(b.ptr, b.layout) }.unwrap();
        }
        self.held_bytes -= b.held;
        self.recently_freed.push((b.ptr, b.layout));
        if self.recently_freed.len() > 8 {
            self.recently_freed.remove(0);
        }
    }

    fn new_size(&mut self, old: usize) -> usize {
        match self.rng.below(10) {
            0 => old / 2,
            1 => old + self.rng.below(64),
            2 => old.saturating_sub(self.rng.below(64)),
            3 => old * 2 + 1,
            4 => 0,
            5 if self.rng.chance(1, 4) => Heap::<N>::MAX_BLOCK + 1,
            _ => self.rng.log_uniform(self.max_size),
        }
    }

    /// `realloc` (or, with `in_place`, `resize_in_place`) of a random live block.
    fn resize(&mut self, in_place: bool) {
        let i = self.rng.below(self.live.len());
        self.verify(i);
        let Live { ptr, layout: old, tag, held: old_held } = self.live[i];
        let new_size = self.new_size(old.size());
        let addr = ptr.as_ptr().addr();
        let new = Layout::from_size_align(new_size, old.align()).ok();
        let k = new.map(order_of);
        let satisfiable = k.is_some_and(|k| k <= Heap::<N>::MAX_ORDER);
        // What the block would hold resized in place, if the model can tell.
        let new_held = if satisfiable { new.and_then(|n| self.held_now(n)) } else { None };
        let fits = new_held.is_some_and(|h| h <= old_held);
        let whole = self.keeps_whole_now() == Some(true);
        let grows_in_place =
            new_held.is_some_and(|h| fits || self.can_grow(addr, old_held, new.unwrap(), h, whole));
        // Without a prediction, any outcome but a lost block is allowed, and checked below.
        let predicted = new_held.is_some() || !satisfiable;
        let before = self.heap.stats().allocated_bytes;
        self.extents.remove(&addr).unwrap();
        let result = if in_place {
            // SAFETY: live with `old`.
            unsafe { self.heap.resize_in_place(ptr, old, new_size) }.map(|()| ptr)
        } else {
            // SAFETY: live with `old`.
            unsafe { self.heap.realloc(ptr, old, new_size) }
        };
        match result {
            Ok(q) => {
                let new = new.unwrap();
                assert!(satisfiable);
                // A cached block after the allocation stops growth in place, and the model cannot
                // see which free blocks are cached: with a cache, it checks only that growth in
                // place happens where the model allows it.
                assert!(
                    !predicted
                        || q == ptr && grows_in_place
                        || q != ptr && (!grows_in_place || self.cache > 0),
                    "{old:?} -> {new_size} at {addr:#x}: moved: {}, the model expected {}",
                    q != ptr,
                    if grows_in_place { "in place" } else { "a move" }
                );
                // In place or moved, the held bytes change by the new block's less the old one's.
                let held = self.check_held(new, self.heap.stats().allocated_bytes + old_held - before);
                self.check_block(q, new, held);
                self.insert_extent(q.as_ptr().addr(), held);
                // SAFETY: the block holds `new_size` bytes, the first ones kept from the old one.
                unsafe {
                    let kept = old.size().min(new_size);
                    assert_eq!(first_wrong(q, tag, kept), None, "{old:?} -> {new_size}: contents lost");
                    common::fill(q, tag, kept, new_size);
                }
                self.held_bytes = self.held_bytes - old_held + held;
                self.live[i] = Live { ptr: q, layout: new, tag, held };
                if q != ptr {
                    self.seen.moved += 1;
                } else if held > old_held {
                    self.seen.grown_in_place += 1;
                }
            }
            Err(e) => {
                if satisfiable {
                    assert_eq!(e, AllocError::OutOfMemory, "{old:?} -> {new_size}");
                    // (With a cache, a cached block may be what is in the way; see above.)
                    assert!(
                        !grows_in_place || self.cache > 0 || !predicted,
                        "{old:?} -> {new_size} at {addr:#x} could grow in place"
                    );
                    if !in_place {
                        let s = self.heap.stats();
                        assert!(s.largest_free_block < block(k.unwrap()), "realloc failed with {s}");
                    }
                    self.seen.resize_refused += 1;
                } else {
                    assert_eq!(e, AllocError::Unsatisfiable, "{old:?} -> {new_size}");
                }
                assert_eq!(self.heap.stats().allocated_bytes, before, "a failed resize changed the heap");
                self.insert_extent(addr, old_held);
                self.verify(i);
            }
        }
    }

    /// Misuse that the heap must detect and report without changing anything.
    fn misuse(&mut self) {
        let before = self.heap.stats();
        let mut local = 0u64;
        let (p, l, want): (*mut u8, Layout, fn(&FreeError) -> bool) = match self.rng.below(5) {
            0 => {
                let Some(&(p, l)) = self.recently_freed.last() else { return };
                if self.extents.contains_key(&p.as_ptr().addr()) {
                    return; // reused: freeing it would be legitimate
                }
                (p.as_ptr(), l, |e| {
                    matches!(e, FreeError::DoubleFree { .. } | FreeError::NotAllocated { .. })
                })
            }
            1 => {
                let b = &self.live[self.rng.below(self.live.len())];
                let n = units(b.layout.size());
                if n < 2 {
                    return;
                }
                let inner = b.ptr.as_ptr().wrapping_add(self.rng.range(1, n - 1) * MIN);
                (inner, layout(1, 1), |e| matches!(e, FreeError::NotAllocated { .. }))
            }
            2 => {
                let b = &self.live[self.rng.below(self.live.len())];
                let smaller = layout(b.layout.size() / 2, b.layout.align());
                // What the heap takes the block to hold with the smaller layout: its units, or
                // under `Fit::Adaptive` the whole block of its order when nothing starts at their
                // end (a debug build then sees the block's true end inside).
                let seen_as = match self.fit {
                    Fit::Adaptive if units(smaller.size()) * MIN == b.held => b.held,
                    Fit::Adaptive => block(order_of(smaller)),
                    fit => held(smaller, fit),
                };
                // Not detectable (documented on `Heap::try_dealloc`): the same extent, or, in a
                // release build, a larger one that ends where another block starts.
                if seen_as == b.held || seen_as > b.held && !cfg!(debug_assertions) {
                    return;
                }
                (b.ptr.as_ptr(), smaller, |e| matches!(e, FreeError::WrongLayout { .. }))
            }
            3 => {
                let b = &self.live[self.rng.below(self.live.len())];
                (b.ptr.as_ptr().wrapping_add(1), b.layout, |e| matches!(e, FreeError::Misaligned { .. }))
            }
            _ => ((&raw mut local).cast(), layout(8, 8), |e| matches!(e, FreeError::NotOwned { .. })),
        };
        // SAFETY: each case is misuse the heap detects before changing anything.
        let err =
            unsafe { self.heap.try_dealloc(NonNull::new(p).unwrap(), l) }.expect_err("misuse not caught");
        assert!(want(&err), "unexpected {err:?} for {p:p} with {l:?}");
        assert_eq!(self.heap.stats(), before, "a failed free changed the heap");
        std::hint::black_box(&mut local);
        self.seen.misuse += 1;
    }

    /// Tries to add a region that overlaps one the heap has.
    fn overlapping_region(&mut self) {
        let r = self.regions[self.rng.below(self.regions.len())];
        let before = self.heap.stats();
        let start = r.start + self.rng.below(r.end - r.start);
        let size = self.rng.range(1, 1 << 16);
        let p = NonNull::<u8>::dangling().as_ptr().with_addr(start);
        // SAFETY: rejected before any access.
        assert_eq!(unsafe { self.heap.add_region(p, size) }, Err(HeapError::Overlap));
        assert_eq!(self.heap.stats(), before);
    }

    fn check_stats(&self) {
        let s = self.heap.stats();
        assert_eq!(s.allocations, self.live.len());
        assert_eq!(s.requested_bytes, self.live.iter().map(|b| b.layout.size()).sum::<usize>());
        assert_eq!(s.allocated_bytes, self.held_bytes);
        assert_eq!(s.regions, self.regions.len());
        assert_eq!(s.total_bytes, self.regions.iter().map(|r| r.meta - r.lo).sum::<usize>());
        assert_eq!(s.free_bytes, s.total_bytes - s.allocated_bytes);
        let listed: usize = s.free_blocks.iter().enumerate().map(|(k, &n)| n * block(k)).sum();
        assert_eq!(listed, s.free_bytes);
        let largest = s.free_blocks.iter().rposition(|&n| n > 0).map_or(0, block);
        assert_eq!(s.largest_free_block, largest);
    }

    fn step(&mut self, n: usize) {
        // Phases of mostly allocating and mostly freeing, so the heap fills up and drains.
        let filling = (n / 500) % 2 == 0;
        let roll = self.rng.below(100);
        let op = match roll {
            0..=39 if filling || self.rng.chance(1, 3) => Op::Alloc,
            0..=39 => Op::Dealloc,
            40..=69 if !filling || self.rng.chance(1, 3) => Op::Dealloc,
            40..=69 => Op::Alloc,
            70..=81 => Op::Realloc,
            82..=89 => Op::Resize,
            90..=92 => Op::Misuse,
            93..=94 => Op::Coalesce,
            95..=96 => Op::Overlap,
            _ => Op::AddRegion,
        };
        let needs_live = matches!(op, Op::Dealloc | Op::Realloc | Op::Resize | Op::Misuse);
        match op {
            _ if needs_live && self.live.is_empty() => self.alloc(),
            Op::Alloc => self.alloc(),
            Op::Dealloc => self.dealloc(),
            Op::Realloc => self.resize(false),
            Op::Resize => self.resize(true),
            Op::Misuse => self.misuse(),
            Op::Coalesce => {
                let held = self.heap.stats().allocated_bytes;
                self.heap.coalesce();
                assert_eq!(self.heap.stats().allocated_bytes, held);
            }
            Op::Overlap => self.overlapping_region(),
            Op::AddRegion => {
                if !self.pending.is_empty() && self.rng.chance(1, 2) {
                    let i = self.rng.below(self.pending.len());
                    let (start, size) = self.pending.swap_remove(i);
                    self.add_region(start, size, false);
                }
            }
        }
    }

    fn finish(mut self) -> Seen {
        while !self.live.is_empty() {
            self.dealloc();
            self.heap.check_invariants().unwrap();
        }
        self.heap.coalesce();
        self.heap.check_invariants().unwrap();
        self.check_stats();
        let s = self.heap.stats();
        assert_eq!(s.free_blocks.to_vec(), self.fresh_lists, "not back to the fresh tiling: {s}");
        assert_eq!((s.allocations, s.allocated_bytes, s.requested_bytes), (0, 0, 0));
        assert!(!self.heap.coalesce());
        self.seen
    }
}

fn run<const N: usize>(fit: Fit, cache: usize) {
    for &seed in SEEDS {
        let mut p = Program::<N>::new(fit, cache, seed);
        for n in 0..OPS {
            p.step(n);
            // (Under Miri, every fourth step and the last: a fifth of the time of these tests.)
            if !cfg!(miri) || n % 4 == 3 || n + 1 == OPS {
                if let Err(c) = p.heap.check_invariants() {
                    panic!("seed {seed}, step {n}: {c}\n{}", p.heap.stats());
                }
            }
            p.check_stats();
        }
        let seen = p.finish();
        // The program must have reached the interesting cases, or it tests little.
        assert!(seen.allocs > OPS / 5, "{seen:?}");
        // (No valid layout is too large where the largest block is past `isize::MAX`: 32 orders
        // on a 32-bit target.)
        let can_be_unsatisfiable = Heap::<N>::MAX_BLOCK <= isize::MAX as usize;
        assert!(seen.unsatisfiable > 0 || !can_be_unsatisfiable, "{seen:?}");
        assert!(seen.misuse > 0 && seen.regions > 1, "{seen:?}");
        // (The short programs under Miri need not reach these.)
        if !cfg!(miri) {
            assert!(seen.oom > 0 && seen.resize_refused > 0, "{seen:?}");
            assert!(seen.moved > 0 && seen.grown_in_place > 0, "{seen:?}");
            // Each fit keeps whole blocks or trims them as it says; `Adaptive` does both.
            let (whole, trimmed) = (seen.kept_whole > 0, seen.trimmed > 0);
            match fit {
                Fit::PowerOfTwo => assert!(whole && !trimmed, "{seen:?}"),
                Fit::Exact => assert!(!whole && trimmed, "{seen:?}"),
                Fit::Adaptive => assert!(whole && trimmed, "{seen:?}"),
            }
        }
    }
}

#[test]
fn exact_fit_32_orders() {
    run::<32>(Fit::Exact, 0);
}

#[test]
fn power_of_two_fit_32_orders() {
    run::<32>(Fit::PowerOfTwo, 0);
}

#[test]
#[cfg_attr(
    all(miri, not(target_arch = "x86_64")),
    ignore = "CI time: Miri runs the 12-order programs on x86_64 only"
)]
fn exact_fit_12_orders() {
    run::<12>(Fit::Exact, 0);
}

#[test]
#[cfg_attr(
    all(miri, not(target_arch = "x86_64")),
    ignore = "CI time: Miri runs the 12-order programs on x86_64 only"
)]
fn power_of_two_fit_12_orders() {
    run::<12>(Fit::PowerOfTwo, 0);
}

/// With a cache, cached blocks sit among the free ones: runs and merges must pass them by.
#[test]
fn exact_fit_with_cache() {
    run::<32>(Fit::Exact, 4);
}

#[test]
fn power_of_two_fit_with_cache() {
    run::<32>(Fit::PowerOfTwo, 4);
}

/// The default fit: whole blocks while the heap is loose, exact ones once a quarter is allocated
/// (the programs fill their heaps well past that and drain them again).
#[test]
fn adaptive_fit_32_orders() {
    run::<32>(Fit::Adaptive, 0);
}

#[test]
#[cfg_attr(
    all(miri, not(target_arch = "x86_64")),
    ignore = "CI time: Miri runs the 12-order programs on x86_64 only"
)]
fn adaptive_fit_12_orders() {
    run::<12>(Fit::Adaptive, 0);
}

#[test]
fn adaptive_fit_with_cache() {
    run::<32>(Fit::Adaptive, 4);
}

#[test]
fn prng_is_deterministic_and_spread() {
    let mut a = Rng::new(7);
    let mut b = Rng::new(7);
    let xs: Vec<u64> = (0..100).map(|_| a.next_u64()).collect();
    let ys: Vec<u64> = (0..100).map(|_| b.next_u64()).collect();
    assert_eq!(xs, ys);
    assert_ne!(Rng::new(1).next_u64(), Rng::new(2).next_u64());
    let mut r = Rng::new(3);
    let mut hits = [0usize; 18];
    for _ in 0..2000 {
        let v = r.log_uniform(1 << 17);
        assert!((1..=1 << 17).contains(&v));
        hits[v.ilog2() as usize] += 1;
    }
    assert!(hits.iter().all(|&h| h > 30), "{hits:?}");
}
