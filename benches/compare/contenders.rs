//! The allocators under test, each built fresh over the shared arena for every trial.
//!
//! Every contender is used through its own `GlobalAlloc` impl with its own lock:
//! - ours: `alloc_buddy_simple::LockedHeap<32>` (`spin::Mutex`; realloc in place where it can),
//!   with the default `Fit::Adaptive`;
//! - ours-pow2, ours-exact: the same with `Fit::PowerOfTwo` and `Fit::Exact`;
//! - talc: `talc::TalcLock<spin::Mutex<()>, Manual>`, the arena claimed up front;
//! - bsa: `buddy_system_allocator::LockedHeap<33>` (`spin` 0.10 mutex; no realloc override);
//! - lla: `linked_list_allocator::LockedHeap` (`spinning_top`; no realloc override);
//! - rlsf: `rlsf::Tlsf` behind a `spin::Mutex`, with the `GlobalAlloc` impl below;
//! - system: `std::alloc::System` (glibc malloc on Linux), as a reference only.

use std::alloc::{GlobalAlloc, Layout, System};
use std::ptr::{self, NonNull};

use alloc_buddy_simple::Fit;

use crate::Arena;

/// The allocators under test, in table order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    Ours,
    OursPow2,
    OursExact,
    Talc,
    Bsa,
    Lla,
    Rlsf,
    System,
}

impl Kind {
    pub(crate) const ALL: [Kind; 8] = [
        Kind::Ours,
        Kind::OursPow2,
        Kind::OursExact,
        Kind::Talc,
        Kind::Bsa,
        Kind::Lla,
        Kind::Rlsf,
        Kind::System,
    ];

    pub(crate) fn name(self) -> &'static str {
        match self {
            Kind::Ours => "ours",
            Kind::OursPow2 => "ours-pow2",
            Kind::OursExact => "ours-exact",
            Kind::Talc => "talc",
            Kind::Bsa => "bsa",
            Kind::Lla => "lla",
            Kind::Rlsf => "rlsf",
            Kind::System => "system",
        }
    }

    pub(crate) fn describe(self) -> &'static str {
        match self {
            Kind::Ours => {
                "`alloc_buddy_simple::LockedHeap<32>` (this crate; `spin::Mutex`; `Fit::Adaptive`, the default)"
            }
            Kind::OursPow2 => "the same with `Fit::PowerOfTwo` (`LockedHeap::with_fit`): whole blocks always",
            Kind::OursExact => "the same with `Fit::Exact`: only the units a request needs, always",
            Kind::Talc => "talc 5.1 `TalcLock<spin::Mutex<()>, Manual>`, the arena claimed up front",
            Kind::Bsa => "`buddy_system_allocator` 0.13 `LockedHeap<33>` (no realloc override)",
            Kind::Lla => "`linked_list_allocator` 0.10 `LockedHeap` (no realloc override)",
            Kind::Rlsf => {
                "rlsf 0.2 `Tlsf<usize, usize, 52, 64>` behind a `spin::Mutex` (as in talc's benches)"
            }
            Kind::System => "`std::alloc::System` (glibc; a reference, not an arena allocator)",
        }
    }

    /// Whether it is a buddy allocator: blocks of 2^k bytes, aligned to their size, merged with
    /// their buddies.
    pub(crate) fn is_buddy(self) -> bool {
        matches!(self, Kind::Ours | Kind::OursPow2 | Kind::OursExact | Kind::Bsa)
    }

    pub(crate) fn uses_arena(self) -> bool {
        self != Kind::System
    }
}

/// An allocator under test.
pub(crate) trait Contender: GlobalAlloc + Sync {
    /// The live requested bytes as the allocator itself counts them, where it keeps that figure.
    fn requested_bytes(&self) -> Option<usize> {
        None
    }

    /// Where the arena's bytes are, where the allocator can tell.
    fn footprint(&self) -> Option<Footprint> {
        None
    }
}

/// Where an allocator's bytes are (ours only: from `Heap::stats`).
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Footprint {
    /// Bytes in live blocks (requests rounded up to the allocator's blocks).
    pub(crate) allocated: usize,
    pub(crate) free: usize,
    pub(crate) largest_free: usize,
    pub(crate) metadata: usize,
}

/// A workload, run on one fresh allocator.
pub(crate) trait Job {
    type Out;
    fn run<A: Contender>(&mut self, alloc: &A, kind: Kind) -> Self::Out;
}

/// Builds a fresh allocator of `kind` over `arena` and runs `job` on it.
///
/// Only one allocator uses the arena at a time: each is dropped (with whatever it still holds
/// abandoned, never touched again) before the next is built.
pub(crate) fn run_fresh<J: Job>(kind: Kind, arena: Arena, job: &mut J) -> J::Out {
    match kind {
        Kind::Ours => job.run(&*ours(arena, Fit::Adaptive), kind),
        Kind::OursPow2 => job.run(&*ours(arena, Fit::PowerOfTwo), kind),
        Kind::OursExact => job.run(&*ours(arena, Fit::Exact), kind),
        Kind::Talc => job.run(&*talc(arena), kind),
        Kind::Bsa => job.run(&*bsa(arena), kind),
        Kind::Lla => job.run(&*lla(arena), kind),
        Kind::Rlsf => job.run(&*rlsf(arena), kind),
        Kind::System => job.run(&System, kind),
    }
}

type Ours = alloc_buddy_simple::LockedHeap<32>;

fn ours(arena: Arena, fit: Fit) -> Box<Ours> {
    let heap = Box::new(Ours::with_fit(fit));
    // SAFETY: the arena is valid for reads and writes for the rest of the program (it is never
    // freed), and no other allocator uses it while this one lives (see `run_fresh`).
    unsafe { heap.init(arena.base, arena.size) }.expect("ours: init of the arena failed");
    heap
}

impl Contender for Ours {
    fn requested_bytes(&self) -> Option<usize> {
        Some(self.lock().stats().requested_bytes)
    }

    fn footprint(&self) -> Option<Footprint> {
        let stats = self.lock().stats();
        Some(Footprint {
            allocated: stats.allocated_bytes,
            free: stats.free_bytes,
            largest_free: stats.largest_free_block,
            metadata: stats.metadata_bytes,
        })
    }
}

type Talc = talc::TalcLock<spin::Mutex<()>, talc::source::Manual>;

fn talc(arena: Arena) -> Box<Talc> {
    let talc = Box::new(Talc::new(talc::source::Manual));
    // SAFETY: as in `ours`: the arena is valid for the program's life and used by no one else.
    let end = unsafe { talc.lock().claim(arena.base, arena.size) };
    assert!(end.is_some(), "talc: claim of the arena failed");
    talc
}

impl Contender for Talc {}

type Bsa = buddy_system_allocator::LockedHeap<33>;

fn bsa(arena: Arena) -> Box<Bsa> {
    let heap = Box::new(Bsa::new());
    // SAFETY: as in `ours`. BSA takes the range as integers and rebuilds pointers from them, so
    // the arena's provenance is exposed.
    unsafe { heap.lock().init(arena.base.expose_provenance(), arena.size) };
    heap
}

impl Contender for Bsa {}

type Lla = linked_list_allocator::LockedHeap;

fn lla(arena: Arena) -> Box<Lla> {
    let heap = Box::new(Lla::empty());
    // SAFETY: as in `ours`.
    unsafe { heap.lock().init(arena.base, arena.size) };
    heap
}

impl Contender for Lla {}

/// rlsf's TLSF with the parameters talc's benchmarks give it.
type TlsfCore = rlsf::Tlsf<'static, usize, usize, { usize::BITS as usize - 12 }, { usize::BITS as usize }>;

/// rlsf has no lock of its own: a `spin::Mutex`, as ours has.
pub(crate) struct LockedTlsf(spin::Mutex<TlsfCore>);

fn rlsf(arena: Arena) -> Box<LockedTlsf> {
    let tlsf = Box::new(LockedTlsf(spin::Mutex::new(TlsfCore::new())));
    let base = NonNull::new(arena.base).expect("arena base is not null");
    // SAFETY: as in `ours`: the block outlives the allocator and nothing else uses it.
    let added =
        unsafe { tlsf.0.lock().insert_free_block_ptr(NonNull::slice_from_raw_parts(base, arena.size)) };
    assert!(added.is_some(), "rlsf: insert_free_block_ptr of the arena failed");
    tlsf
}

// SAFETY: every method forwards to `Tlsf` under the lock; `Tlsf::allocate` returns blocks that
// fit the layout, `deallocate`/`reallocate` are called with a live block of this allocator and
// its alignment (`GlobalAlloc`'s contract), and nothing panics across the boundary.
unsafe impl GlobalAlloc for LockedTlsf {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        self.0.lock().allocate(layout).map_or(ptr::null_mut(), NonNull::as_ptr)
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if let Some(ptr) = NonNull::new(ptr) {
            // SAFETY: `ptr` was allocated here with `layout` (the caller's contract).
            unsafe { self.0.lock().deallocate(ptr, layout.align()) };
        }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let Some(ptr) = NonNull::new(ptr) else { return ptr::null_mut() };
        // SAFETY: `GlobalAlloc::realloc`'s contract: `new_size` is non-zero and, rounded up to
        // `layout.align()`, does not overflow `isize`.
        let new_layout = unsafe { Layout::from_size_align_unchecked(new_size, layout.align()) };
        // SAFETY: `ptr` is live here, allocated with the same alignment as `new_layout`.
        unsafe { self.0.lock().reallocate(ptr, new_layout) }.map_or(ptr::null_mut(), NonNull::as_ptr)
    }
}

impl Contender for LockedTlsf {}

impl Contender for System {}
