//! The buddy heap: free lists by order, split and merge, regions and statistics.

use core::alloc::Layout;
use core::mem::MaybeUninit;
use core::ptr::{self, NonNull};

use crate::bitmap::{Bitmap, Mark};
use crate::error::{AllocError, FreeError, HeapError};
use crate::free_list::{CACHE_SLOTS, CacheList, FreeList};
use crate::order::{self, Fit, MIN_SHIFT, Request, block_size};
use crate::region::{Bounds, Region, RunFit};
use crate::stats::Stats;

mod check;

/// A buddy heap with `ORDERS` free lists, without a lock.
///
/// Order `k` holds free blocks of [`Heap::MIN_BLOCK`]` << k` bytes, naturally aligned by
/// address; the largest order is [`Heap::MAX_ORDER`] (inclusive), normally `ORDERS - 1`. With the
/// default `ORDERS = 32` on a 64-bit target, blocks run from 32 bytes to 64 GiB.
///
/// `Heap` is plain `&mut self` data-structure code. To use it as a `#[global_allocator]`, wrap it
/// in a lock: [`LockedHeap`](crate::LockedHeap) does that.
///
/// # Examples
///
/// ```
/// use alloc_buddy_simple::Heap;
/// use core::alloc::Layout;
/// use core::mem::MaybeUninit;
///
/// static mut ARENA: [MaybeUninit<u8>; 64 * 1024] = [MaybeUninit::uninit(); 64 * 1024];
///
/// let mut heap: Heap = Heap::new();
/// // SAFETY: the arena is used by nothing else.
/// unsafe { heap.init((&raw mut ARENA).cast(), 64 * 1024) }.unwrap();
///
/// let layout = Layout::from_size_align(100, 8).unwrap();
/// let block = heap.alloc(layout).unwrap();
/// assert_eq!(heap.stats().requested_bytes, 100);
/// // SAFETY: `block` was allocated by `heap` with `layout`.
/// unsafe { heap.dealloc(block, layout) };
/// assert_eq!(heap.stats().allocated_bytes, 0);
/// ```
// `repr(C)`, hot fields first: the first region's bounds and the counters the cached paths read
// and write fill one cache line (in a `LockedHeap`, the line after the lock's), the region list's
// head (which a free reads too) starts the next, then the caches, then the free lists. A program
// that works between its allocations evicts the allocator's lines: with 64 KiB touched between
// 64 B alloc + free pairs, cachegrind (32 KiB L1) counted 10.3 L1 misses per pair outside the
// touching loop instead of 12.3 with the fields in the compiler's order.
#[derive(Debug)]
#[repr(C)]
pub struct Heap<const ORDERS: usize = 32> {
    /// A copy of the first region's [`Bounds`] (of `regions`'s head), or [`Bounds::NONE`].
    first: Bounds,
    /// Allocated bytes from which new allocations keep only the units they need: `total_bytes /
    /// TRIM_PART` under [`Fit::Adaptive`], always (0) under [`Fit::Exact`], never (`usize::MAX`)
    /// under [`Fit::PowerOfTwo`]. See [`Heap::keeps_whole`]; one comparison answers for all.
    trim_from: usize,
    /// Bytes in live blocks and in cached blocks. A cached block stays counted as if it were
    /// still allocated until it leaves the cache for the free lists, so that a free into the cache
    /// and an allocation from it update one counter (`requested_bytes`), not three: three
    /// read-modify-writes cost a 16-byte pair 10% of its time. [`Heap::stats`] subtracts the
    /// cached blocks.
    allocated_bytes: usize,
    /// Bytes the live allocations asked for.
    requested_bytes: usize,
    /// Live allocations that hold fewer units than their order's block ([`Fit::Exact`] ones, and
    /// [`Fit::Adaptive`] ones made while the heap was short of memory). While there is none, a
    /// free needs no bitmap read to know that the allocation is its whole block. A
    /// [`Fit::Exact`] heap starts it at 1, so that its frees always compare the layout's units
    /// with the block's: it keeps no whole blocks for smaller sizes, and a layout that asks for
    /// fewer units than its block's is either partial or misuse.
    partial: usize,
    /// The regions, by address.
    regions: *mut Region,
    /// Blocks each cache may take (at most [`CACHE_SLOTS`]); 0 turns the cache off.
    cache_limit: usize,
    /// Bit `k` is set when list `k` is not empty.
    avail: usize,
    /// Live allocations and cached blocks (see `allocated_bytes`).
    allocations: usize,
    /// Usable bytes in all regions (metadata excluded).
    total_bytes: usize,
    fit: Fit,
    /// Freed blocks of the small orders, held back unmerged (see [`Heap::with_cache`]).
    cache: [CacheList; CACHE_ORDERS],
    /// The free lists, by order.
    lists: [FreeList; ORDERS],
}

/// What [`Heap::cache_free`] did.
pub(crate) enum CacheFree {
    /// The block went to its order's cache.
    Cached,
    /// The allocation is one whole block of the order, and the order's cache is full:
    /// [`Heap::free_full`] frees it. (Its region is found again there: carried here, it was one
    /// more register that the cached path saved and restored.)
    Full(usize),
    /// Anything else, nothing changed: [`Heap::free_checked`] frees it or reports the misuse.
    Declined,
}

/// `free_block`'s `defer_from` for the free of a whole block: any merge may be deferred. That is
/// the block's own order said another way (its merges are at that order and above), which lets
/// the compiler drop the test and a register from the merge loop (callgrind: 2 instructions per
/// free in the free-scaling workload).
const DEFER_ANY: usize = 0;

/// Orders that have a cache list: order 0 up to 256 KiB blocks on 64-bit targets (128 KiB on
/// 32-bit ones). Caching the larger blocks too keeps a freed block of talc's random actions at
/// 10 000 and 30 000 B (and their reallocs, up to 90 KB) for the next request of its order: it
/// is still in the processor's caches, where a block split from a large free one mostly is not
/// (with eight cache orders, up to 4 KiB, random actions with realloc at 30 000 B ran at 1.07x
/// talc in the quick mode, with fourteen 1.25x; callgrind's cache simulation of 10^6 operations:
/// 22% fewer instructions and 16% less copied by realloc, as more of them grow in place).
const CACHE_ORDERS: usize = 14;

// SAFETY: a heap exclusively owns the memory of its regions (the `add_region` contract); nothing
// in it is tied to the thread that made it.
unsafe impl<const ORDERS: usize> Send for Heap<ORDERS> {}

impl<const ORDERS: usize> Default for Heap<ORDERS> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const ORDERS: usize> Heap<ORDERS> {
    /// Fails the build for an `ORDERS` out of range: there must be at least one order, and the
    /// non-empty orders must fit in a bitmask word.
    const VALID_ORDERS: () = assert!(
        ORDERS >= 1 && ORDERS <= usize::BITS as usize,
        "Heap<ORDERS>: ORDERS must be in 1..=usize::BITS"
    );

    /// Bytes in the smallest block, order 0: room for a free-list node of four pointers
    /// (32 bytes on a 64-bit target, 16 on a 32-bit one). Every allocation is a whole number of
    /// minimum blocks.
    pub const MIN_BLOCK: usize = order::MIN_BLOCK;

    /// The largest order, inclusive: `ORDERS - 1`, or less where a block of that order would not
    /// fit in the address space.
    pub const MAX_ORDER: usize = order::max_order(if ORDERS == 0 { 1 } else { ORDERS });

    /// Bytes in the largest block. No allocation can be larger or more aligned than this.
    pub const MAX_BLOCK: usize = block_size(Self::MAX_ORDER);

    /// The largest order a cache holds: `CACHE_ORDERS - 1`, or less in a heap whose largest order
    /// is lower (a layout of a larger order fits no allocation there).
    const MAX_CACHED_ORDER: usize =
        if CACHE_ORDERS - 1 < Self::MAX_ORDER { CACHE_ORDERS - 1 } else { Self::MAX_ORDER };

    /// An empty heap with the default [`Fit::Adaptive`]: every allocation fails until memory is
    /// added.
    ///
    /// An `ORDERS` outside `1..=usize::BITS` fails the build:
    ///
    /// ```compile_fail
    /// let heap = alloc_buddy_simple::Heap::<0>::new();
    /// ```
    pub const fn new() -> Self {
        Self::with_fit(Fit::Adaptive)
    }

    /// An empty heap that sizes allocations with `fit`. See [`Fit`] for the trade-off.
    pub const fn with_fit(fit: Fit) -> Self {
        let () = Self::VALID_ORDERS;
        Heap {
            lists: [FreeList::EMPTY; ORDERS],
            avail: 0,
            first: Bounds::NONE,
            regions: ptr::null_mut(),
            fit,
            total_bytes: 0,
            trim_from: match fit {
                Fit::PowerOfTwo => usize::MAX,
                Fit::Exact | Fit::Adaptive => 0,
            },
            allocated_bytes: 0,
            requested_bytes: 0,
            allocations: 0,
            partial: match fit {
                Fit::Exact => 1,
                Fit::PowerOfTwo | Fit::Adaptive => 0,
            },
            cache: [CacheList::EMPTY; CACHE_ORDERS],
            cache_limit: 0,
        }
    }

    /// The same heap with a cache of up to `blocks_per_order` freed blocks (at most 16; a larger
    /// number means 16) for each of the fourteen smallest orders (up to 256 KiB blocks on 64-bit
    /// targets, 128 KiB on 32-bit ones).
    ///
    /// A free of such a block then skips the buddy check and merge and keeps the block (marked
    /// cached, so a double free is still caught), and the next request of that order takes it back
    /// in a few instructions: the "per-order cache" of Linux's per-CPU page lists.
    ///
    /// Besides them, each order's cache holds one hot block: the block it served last, when that
    /// block is freed before anything else comes to the cache (a temporary allocated, used and
    /// freed, over and over). That free compares the address with the one the cache served (the
    /// heap keeps the allocation whole and live while it names it) instead of reading the bitmap,
    /// and neither it nor the next allocation writes a mark; a second free of the hot block is
    /// told by its address. A 4 KiB alloc + free pair through `LockedHeap` takes 82 instructions,
    /// 134 with the marked blocks alone (callgrind). Cached blocks
    /// are merged back ([`Heap::coalesce`]) before any allocation reports out of memory, so the
    /// cache never makes an allocation fail. Until then a cached block is not merged, not part of
    /// a run, and not taken by a neighbour that grows in place. [`LockedHeap`](crate::LockedHeap)
    /// turns it on (16 blocks per order); a bare `Heap` has it off, so its placement is the plain
    /// buddy rules.
    pub const fn with_cache(mut self, blocks_per_order: usize) -> Self {
        // A cache that holds more blocks than a lowered limit keeps them until they are taken.
        self.cache_limit = if blocks_per_order < CACHE_SLOTS { blocks_per_order } else { CACHE_SLOTS };
        self
    }

    /// How this heap sizes allocations.
    pub const fn fit(&self) -> Fit {
        self.fit
    }

    /// Gives the heap its first region, `start..start + size`.
    ///
    /// The same as [`Heap::add_region`], but fails with [`HeapError::AlreadyInitialized`] if the
    /// heap already has memory, which catches a second `init` at boot.
    ///
    /// # Safety
    ///
    /// The region must be valid for reads and writes for as long as the heap is used, and used
    /// by nothing else.
    ///
    /// # Errors
    ///
    /// As [`Heap::add_region`], plus [`HeapError::AlreadyInitialized`].
    pub unsafe fn init(&mut self, start: *mut u8, size: usize) -> Result<(), HeapError> {
        if !self.regions.is_null() {
            return Err(HeapError::AlreadyInitialized);
        }
        // SAFETY: the caller's contract is `add_region`'s.
        unsafe { self.add_region(start, size) }
    }

    /// Adds the region `start..start + size` to the heap.
    ///
    /// Any start alignment and any size work: the region is trimmed to whole minimum blocks, its
    /// metadata (a header, two bits per minimum block and a summary of them: 1/126 of the region
    /// on a 64-bit target, 1/62 on a 32-bit one) takes its top end, and the rest is cut into the
    /// largest naturally aligned blocks that fit. A region aligned to its own power-of-two size
    /// gives the largest blocks. Regions need not be contiguous.
    ///
    /// # Safety
    ///
    /// The region must be valid for reads and writes for as long as the heap is used, and used
    /// by nothing else.
    ///
    /// # Errors
    ///
    /// Leaves the heap unchanged and returns [`HeapError::NullStart`] for a null `start`,
    /// [`HeapError::Overflow`] if the region runs past the end of the address space,
    /// [`HeapError::TooSmall`] if it cannot hold its metadata and one minimum block, and
    /// [`HeapError::Overlap`] if it overlaps or repeats a region the heap has.
    ///
    /// # Examples
    ///
    /// ```
    /// use alloc_buddy_simple::{Heap, HeapError};
    /// use core::mem::MaybeUninit;
    ///
    /// static mut LOW: [MaybeUninit<u8>; 8192] = [MaybeUninit::uninit(); 8192];
    /// static mut HIGH: [MaybeUninit<u8>; 8192] = [MaybeUninit::uninit(); 8192];
    ///
    /// let mut heap: Heap = Heap::new();
    /// // SAFETY: the two statics are used by nothing else.
    /// unsafe {
    ///     heap.add_region((&raw mut LOW).cast(), 8192).unwrap();
    ///     heap.add_region((&raw mut HIGH).cast(), 8192).unwrap();
    ///     // The same memory twice is refused, and the heap is unchanged.
    ///     assert_eq!(heap.add_region((&raw mut LOW).cast(), 8192), Err(HeapError::Overlap));
    /// }
    /// assert_eq!(heap.stats().regions, 2);
    /// ```
    pub unsafe fn add_region(&mut self, start: *mut u8, size: usize) -> Result<(), HeapError> {
        let end = start.addr().checked_add(size).ok_or(HeapError::Overflow)?;
        // Find the insertion point (regions stay sorted) and refuse overlaps.
        let mut link: *mut *mut Region = &raw mut self.regions;
        // SAFETY: `link` points at `self.regions` or at the `next` field of a live region.
        while let Some(r) = unsafe { (*link).as_mut() } {
            if start.addr() < r.end && r.start < end {
                return Err(HeapError::Overlap);
            }
            if r.start >= end {
                break;
            }
            link = &raw mut r.next;
        }
        // SAFETY: the caller hands us the region.
        let region = unsafe { Region::create(start, size) }?;
        // SAFETY: `create` wrote a valid header; `link` is still the insertion point (nothing in
        // the list changed).
        let (lo, meta) = unsafe {
            (*region).next = *link;
            *link = region;
            self.first = (*self.regions).bounds();
            ((*region).lo, (*region).meta())
        };
        let mut at = lo;
        while at < meta {
            let order = order::piece_order(at, meta, Self::MAX_ORDER);
            // SAFETY: `[at, at + size)` is free memory of the new region, inside it and on no
            // list; the pieces of one tiling are never buddies, so none is mergeable.
            unsafe { self.push_block(region, at, order) };
            at += block_size(order);
        }
        self.total_bytes += meta - lo;
        if self.fit == Fit::Adaptive {
            self.trim_from = self.total_bytes / TRIM_PART;
        }
        Ok(())
    }

    /// Adds a region given as a `'static` slice; the safe form of [`Heap::add_region`].
    ///
    /// # Errors
    ///
    /// As [`Heap::add_region`].
    pub fn add_static_region(&mut self, mem: &'static mut [MaybeUninit<u8>]) -> Result<(), HeapError> {
        let size = mem.len();
        // SAFETY: the slice is `'static` and exclusive, so the memory is ours for good.
        unsafe { self.add_region(mem.as_mut_ptr().cast(), size) }
    }

    /// Allocates a block for `layout`.
    ///
    /// The block is aligned to `layout.align()`. A zero-size layout is served like a one-byte
    /// layout: it returns a unique block that must be freed with the same layout.
    ///
    /// Takes O(`ORDERS`) time: finding the order is one bit scan, and splitting touches at most
    /// one block per order.
    ///
    /// # Errors
    ///
    /// [`AllocError::Unsatisfiable`] if the size or alignment exceeds [`Heap::MAX_BLOCK`];
    /// [`AllocError::OutOfMemory`] if no free block is large enough. Never panics.
    #[inline(always)]
    pub fn alloc(&mut self, layout: Layout) -> Result<NonNull<u8>, AllocError> {
        match self.cache_alloc(layout, true) {
            Some(block) => Ok(block),
            None => self.alloc_slow(layout),
        }
    }

    /// The fast path of an allocation: takes a cached block of the layout's order, if there is
    /// one (see [`Heap::with_cache`]). Computes only the order: the units matter only when the
    /// allocation is to be trimmed ([`Heap::keeps_whole`]), and the rest of the request only to
    /// the free lists.
    ///
    /// With `whole_only` it declines (returning `None`, the block left cached) an allocation
    /// that would keep only part of the block: the fast paths pass `true`, so that they make no
    /// call and save no registers, and [`Heap::alloc_slow`] takes the part.
    #[inline(always)]
    pub(crate) fn cache_alloc(&mut self, layout: Layout, whole_only: bool) -> Option<NonNull<u8>> {
        let size = layout.size();
        let order = order::layout_order(size, layout.align());
        if order > Self::MAX_CACHED_ORDER {
            return None;
        }
        let part = !self.keeps_whole() && order::units_of(size) != 1 << order;
        if part && whole_only {
            return None;
        }
        // SAFETY: `order < CACHE_ORDERS` (the test above).
        let cache = unsafe { self.cache.get_unchecked_mut(order) };
        let (block, marked) = cache.last()?;
        let addr = block.addr().get();
        // A marked block's unit, if it is in the first region, whose bounds the heap keeps
        // beside its counters. (A marked block of another region is left to the slow path, so
        // the quick one makes no call. The hot block keeps its allocation mark: nothing to
        // clear, in any region.)
        let unit = if marked { self.first.unit_of(addr) } else { None };
        if marked && unit.is_none() && whole_only {
            return None;
        }
        cache.pop();
        if part {
            // SAFETY: the block was cached, so it is a whole free block of `order`, ours, marked
            // cached if `marked`.
            return Some(unsafe { self.take_cached_part(block, order, size, marked) });
        }
        cache.set_hint(addr);
        if marked {
            // SAFETY: a marked block is a whole block of a live region, marked cached (heap
            // invariant); it becomes allocated.
            unsafe {
                match unit {
                    Some(unit) => self.first.map.uncache(unit),
                    // (Another region's block: found by a walk, off the quick path.)
                    None => (*self.region_of(addr)).uncache(addr),
                }
            }
        }
        // A cached block is counted as allocated already.
        self.requested_bytes += size;
        Some(block)
    }

    /// The rest of [`Heap::alloc`] when [`Heap::cache_alloc`] declines: a cached block kept in
    /// part, or an allocation from the free lists. Out of line, so that the cached path stays
    /// small.
    #[inline(never)]
    pub(crate) fn alloc_slow(&mut self, layout: Layout) -> Result<NonNull<u8>, AllocError> {
        if let Some(block) = self.cache_alloc(layout, false) {
            return Ok(block);
        }
        let request = self.request_now(layout).ok_or(AllocError::Unsatisfiable)?;
        let (region, addr) = self.take_free(request, layout)?;
        self.partial += usize::from(request.is_partial());
        self.allocated_bytes += request.bytes();
        self.requested_bytes += layout.size();
        self.allocations += 1;
        // SAFETY: every path returns a live region, and a block address is never 0 (regions
        // never start at null).
        Ok(unsafe { NonNull::new_unchecked((*region).ptr(addr)) })
    }

    /// Takes the block (or run) for `request` from the free lists, marked allocated.
    ///
    /// A request of [`RUN_FROM_ORDER`] or above that keeps only its units first looks for the
    /// best-fitting run of free blocks ([`Heap::take_run`]), and splits a block only when no run
    /// fits: the holes that exact allocations leave are filled before whole blocks are cut.
    /// [`Fit::Exact`] does not look while less than `1 / LOOSE_PART` of the heap is allocated:
    /// with memory to spare, placement matters little and the search is what costs
    /// ([`Fit::Adaptive`] keeps whole blocks then).
    #[inline(always)]
    fn take_free(&mut self, request: Request, layout: Layout) -> Result<(*mut Region, usize), AllocError> {
        let align = layout.align().max(Self::MIN_BLOCK);
        let search = match self.fit {
            Fit::PowerOfTwo => false,
            Fit::Exact => self.allocated_bytes >= self.total_bytes / LOOSE_PART,
            Fit::Adaptive => !self.keeps_whole(),
        };
        if search && request.order >= RUN_FROM_ORDER {
            if let Some(hit) = self.take_run(request, align) {
                return Ok(hit);
            }
        }
        let mut found = self.avail & (usize::MAX << request.order);
        if found == 0 {
            self.coalesce();
            found = self.avail & (usize::MAX << request.order);
        }
        if found == 0 {
            return self.take_run(request, align).ok_or(AllocError::OutOfMemory);
        }
        let order = found.trailing_zeros() as usize;
        // SAFETY: bit `order` of `avail` is set, so list `order` holds a block.
        let (region, addr) = unsafe { self.pop_block(order) };
        // SAFETY: the block was just taken off its list, so it is ours; `units` fits in it
        // because `order >= request.order`.
        unsafe { self.split(region, addr, order, request.units) };
        // SAFETY: `pop_block` returns a live region and an address inside it, still marked free.
        unsafe { (*region).map.flip((*region).unit(addr)) };
        Ok((region, addr))
    }

    /// Frees the block at `ptr`.
    ///
    /// Takes O(`ORDERS`) time: whether a buddy is free and of the same order is read from the
    /// region's bitmap, and the buddy leaves its list in O(1).
    ///
    /// # Safety
    ///
    /// - `ptr` must denote a block currently allocated by this heap;
    /// - `layout` must be the layout it was allocated with (after a resize, with the new size).
    ///
    /// # Panics
    ///
    /// Panics, naming the pointer, when it detects that the contract was broken (a double free,
    /// a pointer the heap never returned, a layout that does not fit the allocation), before
    /// changing anything. [`Heap::try_dealloc`] returns the error instead.
    #[inline]
    pub unsafe fn dealloc(&mut self, ptr: NonNull<u8>, layout: Layout) {
        // SAFETY: the caller's contract is `try_dealloc`'s.
        if let Err(err) = unsafe { self.try_dealloc(ptr, layout) } {
            misuse(err);
        }
    }

    /// Frees the block at `ptr`, or reports the misuse it detects.
    ///
    /// # Safety
    ///
    /// As [`Heap::dealloc`]. The checks catch double frees and foreign pointers, and most wrong
    /// layouts (in debug builds, every layout that names more memory than the allocation holds),
    /// but not every violation: for example, freeing with a layout that is smaller than the
    /// allocation but in the same number of minimum blocks is not seen. In release builds a
    /// wrong layout can go unseen and free the wrong extent: one larger than the allocation that
    /// ends where another block starts, or, under [`Fit::Adaptive`], one of the same order with
    /// fewer units (a larger alignment) on an allocation that kept only its units. The free of
    /// the block a cache served last, into that empty cache, checks nothing but the layout's
    /// order (see [`Heap::with_cache`]): a wrong size within the order goes unseen there. A second
    /// free of a cache's hot block with a larger layout goes unseen in release builds (as a first
    /// free with a larger layout does). A double free of a block that has since merged into a
    /// free block below it is reported as [`FreeError::NotAllocated`] (its start is now inside a
    /// free block), not [`FreeError::DoubleFree`]; either way nothing is changed.
    ///
    /// # Errors
    ///
    /// A [`FreeError`] naming the misuse; the heap is unchanged.
    ///
    /// # Examples
    ///
    /// ```
    /// use alloc_buddy_simple::{FreeError, Heap};
    /// use core::alloc::Layout;
    /// use core::mem::MaybeUninit;
    ///
    /// static mut ARENA: [MaybeUninit<u8>; 16384] = [MaybeUninit::uninit(); 16384];
    ///
    /// let mut heap: Heap = Heap::new();
    /// // SAFETY: the arena is used by nothing else.
    /// unsafe { heap.init((&raw mut ARENA).cast(), 16384) }.unwrap();
    /// let layout = Layout::new::<[u64; 4]>();
    /// let p = heap.alloc(layout).unwrap();
    /// // SAFETY: `p` is live with `layout`; the second call is the misuse being caught.
    /// unsafe {
    ///     heap.try_dealloc(p, layout).unwrap();
    ///     assert_eq!(heap.try_dealloc(p, layout), Err(FreeError::DoubleFree { ptr: p.as_ptr() }));
    /// }
    /// ```
    #[inline]
    pub unsafe fn try_dealloc(&mut self, ptr: NonNull<u8>, layout: Layout) -> Result<(), FreeError> {
        // SAFETY: the caller's contract.
        match unsafe { self.cache_free(ptr.as_ptr(), layout) } {
            CacheFree::Cached => Ok(()),
            CacheFree::Full(order) => {
                // SAFETY: `cache_free` found a live whole block of `order` at `ptr`.
                unsafe { self.free_full_slow(ptr.as_ptr().addr(), order, layout.size()) };
                Ok(())
            }
            // SAFETY: the caller's contract.
            CacheFree::Declined => unsafe { self.free_checked(ptr, layout) },
        }
    }

    /// The fast path of a free: puts the live allocation at `ptr`, if it is one whole block of a
    /// cached order, into its order's cache, if there is room: as the hot block if the cache
    /// served it last and is empty (see [`Heap::with_cache`]), marked cached otherwise. A null
    /// `ptr` is declined. Tells a live whole block whose
    /// cache is full ([`Heap::free_whole`] frees it without checking it again) from anything else
    /// (a larger or partial allocation, any misuse), which [`Heap::free_checked`] then handles or
    /// reports; in both cases nothing is changed.
    ///
    /// # Safety
    ///
    /// As [`Heap::dealloc`].
    #[inline(always)]
    pub(crate) unsafe fn cache_free(&mut self, ptr: *mut u8, layout: Layout) -> CacheFree {
        let addr = ptr.addr();
        let order = order::layout_order(layout.size(), layout.align());
        if order > Self::MAX_CACHED_ORDER {
            return CacheFree::Declined;
        }
        // The allocation the cache served last, freed while the cache is empty: live and whole
        // (the hint's promise), so it is held without a look at the bitmap.
        // SAFETY: `order < CACHE_ORDERS` (just tested).
        if unsafe { self.cache.get_unchecked_mut(order) }.hold_hot(ptr, self.cache_limit) {
            // (A cached block stays counted as allocated.)
            self.requested_bytes -= layout.size();
            return CacheFree::Cached;
        }
        let Some((region, map, unit, order)) = self.live_whole(addr, layout, Self::MAX_CACHED_ORDER) else {
            return CacheFree::Declined;
        };
        let limit = self.cache_limit;
        // SAFETY: `order < CACHE_ORDERS` (the limit passed).
        let cache = unsafe { self.cache.get_unchecked_mut(order) };
        // The hot block keeps its allocation mark: a second free of it is told by its address.
        // (Here and in `find_live`, not in `live_whole`: there the cache is looked up again, 3-4
        // instructions more an operation, callgrind.)
        if cache.is_hot(addr) {
            return CacheFree::Declined;
        }
        // SAFETY: the allocation is one whole block of the live `region`, ours again. A block
        // address is never 0 (regions never start at null).
        if !cache.push(unsafe { NonNull::new_unchecked((*region).ptr(addr)) }, limit) {
            return CacheFree::Full(order);
        }
        // SAFETY: the block's unit is marked allocated (`live_whole`), and becomes marked cached.
        unsafe { map.cache(unit) };
        // (A cached block stays counted as allocated.)
        self.requested_bytes -= layout.size();
        CacheFree::Cached
    }

    /// Frees the live allocation of one whole block of `order` at `addr` in `region`, of `size`
    /// bytes, merged, and counts it freed: a free whose order's cache is full or absent, checked
    /// by [`Heap::cache_free`] ([`CacheFree::Full`], through [`Heap::free_full`]) or by
    /// [`Heap::check_live`] (the end of [`Heap::free_held`]). Inline, for callers that are out of
    /// line themselves.
    ///
    /// # Safety
    ///
    /// The allocation at `addr` must be live, one whole, naturally aligned block of `order` in
    /// `region`, counted as `block_size(order)` allocated bytes, its first unit marked allocated;
    /// `size` must be its layout's size.
    #[inline(always)]
    pub(crate) unsafe fn free_whole(&mut self, region: *mut Region, addr: usize, order: usize, size: usize) {
        // The hint must not name a block on the free lists.
        self.forget_hint(order, addr);
        // The counters first: the size and the order are then dead before the merge loop.
        self.allocated_bytes -= block_size(order);
        self.requested_bytes -= size;
        self.allocations -= 1;
        // SAFETY: the caller's contract: the block is ours again and on no list, and
        // `free_block` replaces its allocation mark.
        unsafe { self.free_block(region, addr, order, DEFER_ANY, Some(Mark::Alloc)) };
    }

    /// [`Heap::free_whole`] for what [`Heap::cache_free`] found ([`CacheFree::Full`]), with the
    /// block's region found again (the first region's in one step).
    ///
    /// # Safety
    ///
    /// As [`Heap::free_whole`], `cache_free` having returned `CacheFree::Full(order)` for `addr`
    /// and a layout of `size` bytes, with nothing changed since.
    #[inline(always)]
    pub(crate) unsafe fn free_full(&mut self, addr: usize, order: usize, size: usize) {
        let region = self.region_of(addr);
        // SAFETY: the caller's contract: a live region holds the block, so the walk found it.
        unsafe { self.free_whole(region, addr, order, size) }
    }

    /// [`Heap::free_full`] out of line, so that the cached path of [`Heap::try_dealloc`] stays
    /// small.
    ///
    /// # Safety
    ///
    /// As [`Heap::free_full`].
    #[inline(never)]
    unsafe fn free_full_slow(&mut self, addr: usize, order: usize, size: usize) {
        // SAFETY: the caller's contract.
        unsafe { self.free_full(addr, order, size) }
    }

    /// The region, its bitmap, the first unit and the order of the live allocation at `addr` if
    /// it holds one whole, naturally aligned block of order `max_order` or below, and `layout`
    /// fits it; `None` for anything else (a larger or partial allocation, a run, any misuse),
    /// which [`Heap::check_live`] then sorts out. The quick form of its checks, in the order that
    /// lets the common case use the fewest registers: a function that needs none saved is a
    /// third shorter.
    #[inline(always)]
    fn live_whole(
        &self,
        addr: usize,
        layout: Layout,
        max_order: usize,
    ) -> Option<(*mut Region, Bitmap, usize, usize)> {
        let size = layout.size();
        let order = order::layout_order(size, layout.align());
        if order > max_order {
            return None;
        }
        let bytes = block_size(order);
        // Aligned to its block, so to the layout's alignment too.
        if addr & (bytes - 1) != 0 {
            return None;
        }
        // The region whose units below the metadata hold the block: the first one, whose bounds
        // the heap keeps, or the one the walk finds. (A block that is in a region but passes its
        // metadata is in none: `check_live` tells that misuse.)
        let (region, map, off, end) = match self.first.below_meta(addr, bytes) {
            Some((off, end)) => (self.regions, self.first.map, off, end),
            None => {
                let region = self.region_of(addr);
                // SAFETY: the region list holds live headers.
                let bounds = unsafe { region.as_ref() }?.bounds();
                let (off, end) = bounds.below_meta(addr, bytes)?;
                (region, bounds.map, off, end)
            }
        };
        let (unit, end) = (off >> MIN_SHIFT, end >> MIN_SHIFT);
        // Something starts right after the block, and the block is allocated. (The unit after
        // first: its word is then dead before the block's is read, and kept for the cached mark.)
        // SAFETY: the block is in the region's units, and so is the unit after it (at most the
        // metadata's first).
        let live = unsafe { map.bits(end) != 0 && map.bits(unit) == Mark::Alloc as usize };
        // Debug builds also check that nothing else starts inside the block, as `check_live`
        // does.
        // SAFETY: the range is in the region.
        if !live || (cfg!(debug_assertions) && unsafe { map.any(unit + 1, end) }) {
            return None;
        }
        // Only a heap with partial allocations has to ask whether this one is, and only when the
        // layout needs fewer units than its block. That case goes to `check_live`, which reads
        // the bitmap to tell ([`Heap::held`]): under `Fit::Exact` such an allocation is always
        // partial, and under `Fit::Adaptive` it is whole only if made while the heap was loose.
        // Out of the quick path, the check leaves `dealloc` a register fewer to save (callgrind:
        // 132 -> 129 instructions per pair). The heap's count must be the branch taken first: the
        // layout's test depends on the size, which random sizes make unpredictable. Written as
        // `size <= bytes - MIN_BLOCK`, two instructions shorter, the compiler tested the size
        // first, and talc's random actions at 200 and 1000 B ran 5-10% slower (0.98-1.11x talc
        // instead of 1.08-1.20x, interleaved quick runs) for the mispredicted branch.
        if self.partial != 0 && order::units_of(size) != 1 << order {
            return None;
        }
        Some((region, map, unit, order))
    }

    /// The region and request of the live allocation at `ptr` (as [`Heap::check_live`]), with
    /// the quick checks of [`Heap::live_whole`] first.
    #[inline(always)]
    pub(crate) fn find_live(
        &self,
        ptr: NonNull<u8>,
        layout: Layout,
    ) -> Result<(*mut Region, Request), FreeError> {
        let addr = ptr.as_ptr().addr();
        match self.live_whole(addr, layout, Self::MAX_ORDER) {
            // (The hot block of its order's cache keeps its allocation mark.)
            Some((region, _, _, order)) if self.cache.get(order).is_none_or(|cache| !cache.is_hot(addr)) => {
                Ok((region, Request { order, units: 1 << order }))
            }
            _ => self.check_live_slow(ptr, layout),
        }
    }

    /// [`Heap::check_live`] out of line, for [`Heap::find_live`]: the fast paths try
    /// [`Heap::live_whole`] first.
    #[inline(never)]
    fn check_live_slow(&self, ptr: NonNull<u8>, layout: Layout) -> Result<(*mut Region, Request), FreeError> {
        self.check_live(ptr, layout)
    }

    /// The full path of a free, for what [`Heap::cache_free`] declines: checks the allocation
    /// ([`Heap::check_live`]) and gives it back to the free lists, merged ([`Heap::free_held`]).
    ///
    /// # Safety
    ///
    /// As [`Heap::dealloc`].
    #[inline(never)]
    pub(crate) unsafe fn free_checked(&mut self, ptr: NonNull<u8>, layout: Layout) -> Result<(), FreeError> {
        let (region, request) = self.check_live(ptr, layout)?;
        // SAFETY: `check_live` found the live allocation and what it holds.
        unsafe { self.free_held(region, request, ptr, layout) };
        Ok(())
    }

    /// Frees the live allocation at `ptr`, already checked: a whole block of a cached order goes
    /// to its order's cache if there is room (inline), anything else to [`Heap::free_held`] (out
    /// of line). The free at the end of a moving realloc, whose allocation was checked when the
    /// realloc began.
    ///
    /// # Safety
    ///
    /// `region` and `request` must be what [`Heap::find_live`] returned for `ptr` and `layout`,
    /// and the allocation must still be live.
    #[inline(always)]
    pub(crate) unsafe fn free_live(
        &mut self,
        region: *mut Region,
        request: Request,
        ptr: NonNull<u8>,
        layout: Layout,
    ) {
        let addr = ptr.as_ptr().addr();
        let whole = request.units == 1 << request.order && addr & (block_size(request.order) - 1) == 0;
        // SAFETY: a whole, aligned block of a live allocation, ours again (caller).
        if whole && unsafe { self.try_cache(region, addr, request.order) } {
            self.requested_bytes -= layout.size();
            return;
        }
        // SAFETY: the caller's contract.
        unsafe { self.free_held_slow(region, request, ptr, layout) }
    }

    /// [`Heap::free_held`] out of line, for [`Heap::free_live`].
    ///
    /// # Safety
    ///
    /// As [`Heap::free_held`].
    #[inline(never)]
    unsafe fn free_held_slow(
        &mut self,
        region: *mut Region,
        request: Request,
        ptr: NonNull<u8>,
        layout: Layout,
    ) {
        // SAFETY: the caller's contract.
        unsafe { self.free_held(region, request, ptr, layout) }
    }

    /// Puts the whole block of `order` at `addr` in `region` into its order's cache, marked
    /// cached, if the order has a cache with room; returns whether it did. The block stays
    /// counted as allocated (see `allocated_bytes`).
    ///
    /// # Safety
    ///
    /// The block must be ours (on no list), naturally aligned, and its first unit marked
    /// allocated, with no mark inside it.
    #[inline(always)]
    unsafe fn try_cache(&mut self, region: *mut Region, addr: usize, order: usize) -> bool {
        let limit = self.cache_limit;
        // SAFETY: the caller's contract; `region` is live. A block address is never 0 (regions
        // never start at null).
        let (r, block) = unsafe { (&*region, NonNull::new_unchecked((*region).ptr(addr))) };
        if !self.cache.get_mut(order).is_some_and(|cache| cache.push(block, limit)) {
            return false;
        }
        // SAFETY: the caller's contract: the block's unit, in the region, is marked allocated.
        unsafe { r.map.cache(r.unit(addr)) };
        true
    }

    /// Gives the live allocation at `ptr` back to the free lists, merged, and counts it freed.
    ///
    /// # Safety
    ///
    /// `region` and `request` must be what [`Heap::find_live`] returned for `ptr` and `layout`,
    /// and the allocation must still be live.
    #[inline(always)]
    unsafe fn free_held(&mut self, region: *mut Region, request: Request, ptr: NonNull<u8>, layout: Layout) {
        self.partial -= usize::from(request.is_partial());
        let addr = ptr.as_ptr().addr();
        let aligned = addr & (block_size(request.order) - 1) == 0;
        let (end, block_end) = (addr + request.bytes(), addr + block_size(request.order));
        if !aligned || request.units != 1 << request.order {
            // SAFETY: `end < block_end`; the bitmap is consistent (heap invariant).
            if !aligned || !unsafe { (*region).run_is_free(end, block_end) } {
                // SAFETY: the allocation's units are ours again and on no list; the first
                // piece's `free_block` replaces the allocation mark.
                unsafe { self.release(region, addr, end, request.order) };
                self.allocated_bytes -= request.bytes();
                self.requested_bytes -= layout.size();
                self.allocations -= 1;
                return;
            }
            // An exact allocation whose tail is still free, as its split left it: take the tail
            // back and free the whole block, one merge from the bottom, instead of each piece.
            // (No free block that starts in the tail reaches past the block: it is aligned to
            // its size, and the block to a larger one.)
            // SAFETY: free blocks tile the tail (just checked); the allocation is ours again.
            unsafe { self.absorb(region, end, end, block_end) };
            // The allocation is its whole block now, and counted so.
            self.allocated_bytes += block_end - end;
        }
        // A whole block goes to its order's cache if there is room, as on the quick path (which
        // leaves to this one a whole block whose layout needs fewer units, on a heap with
        // partial allocations), or is freed as the quick path frees it when the cache is full.
        // (A run, or an exact allocation that grew in place, may not be whole or aligned; it
        // took the other path.)
        // SAFETY: the allocation is one whole, aligned block of `request.order`, ours again and
        // on no list, its first unit marked allocated, counted whole.
        unsafe {
            if self.try_cache(region, addr, request.order) {
                self.requested_bytes -= layout.size();
            } else {
                self.free_whole(region, addr, request.order, layout.size());
            }
        }
    }

    /// Resizes the allocation at `ptr` to `new_size` bytes, in place when it can, and returns
    /// the (possibly moved) block.
    ///
    /// Shrinking always works in place; growing works in place when the memory after the block
    /// is free. Otherwise the heap allocates a new block, copies `min(layout.size(), new_size)`
    /// bytes and frees the old one.
    ///
    /// # Safety
    ///
    /// - `ptr` must denote a block currently allocated by this heap;
    /// - `layout` must be the layout it was allocated with.
    ///
    /// # Errors
    ///
    /// As [`Heap::alloc`], for the layout of `new_size` bytes and `layout.align()`. On error the
    /// old block is untouched and still allocated.
    ///
    /// # Panics
    ///
    /// As [`Heap::dealloc`]: when it detects that `ptr` is not a live allocation that `layout`
    /// fits, before changing anything.
    pub unsafe fn realloc(
        &mut self,
        ptr: NonNull<u8>,
        layout: Layout,
        new_size: usize,
    ) -> Result<NonNull<u8>, AllocError> {
        let (region, held) = self.find_live(ptr, layout).unwrap_or_else(|err| misuse(err));
        let new_layout = resized(layout, new_size)?;
        // SAFETY: `find_live` found the live allocation and what it holds.
        match unsafe { self.resize_live(region, held, ptr, layout, new_layout) } {
            Err(AllocError::OutOfMemory) => {}
            done => return done.map(|()| ptr),
        }
        let new = self.alloc(new_layout)?;
        // SAFETY: both blocks are live and distinct, and each holds at least the bytes copied.
        unsafe { ptr::copy_nonoverlapping(ptr.as_ptr(), new.as_ptr(), layout.size().min(new_size)) };
        // SAFETY: the old allocation is still live: an allocation never changes another one's
        // marks, so `find_live`'s findings stand.
        unsafe { self.free_live(region, held, ptr, layout) };
        Ok(new)
    }

    /// Resizes the allocation at `ptr` to `new_size` bytes without moving it.
    ///
    /// Shrinking gives the unused tail back to the free lists; growing takes the free blocks
    /// right after the allocation. On success the allocation's layout is
    /// `Layout::from_size_align(new_size, layout.align())`.
    ///
    /// # Safety
    ///
    /// - `ptr` must denote a block currently allocated by this heap;
    /// - `layout` must be the layout it was allocated with.
    ///
    /// # Errors
    ///
    /// [`AllocError::OutOfMemory`] if the memory after the block is not free (the allocation is
    /// unchanged), [`AllocError::Unsatisfiable`] if `new_size` is too large for any block.
    ///
    /// # Panics
    ///
    /// As [`Heap::dealloc`]: when it detects that `ptr` is not a live allocation that `layout`
    /// fits, before changing anything.
    ///
    /// # Examples
    ///
    /// ```
    /// use alloc_buddy_simple::{Fit, Heap};
    /// use core::alloc::Layout;
    /// use core::mem::MaybeUninit;
    ///
    /// static mut ARENA: [MaybeUninit<u8>; 65536] = [MaybeUninit::uninit(); 65536];
    ///
    /// let mut heap: Heap = Heap::with_fit(Fit::Exact);
    /// // SAFETY: the arena is used by nothing else.
    /// unsafe { heap.init((&raw mut ARENA).cast(), 65536) }.unwrap();
    /// let layout = Layout::from_size_align(1000, 8).unwrap();
    /// let p = heap.alloc(layout).unwrap();
    /// // SAFETY: `p` is live with `layout`, then with the new size.
    /// unsafe {
    ///     // Shrinking always works in place and gives the tail back.
    ///     heap.resize_in_place(p, layout, 100).unwrap();
    ///     assert_eq!(heap.stats().requested_bytes, 100);
    ///     heap.dealloc(p, Layout::from_size_align(100, 8).unwrap());
    /// }
    /// ```
    #[inline]
    pub unsafe fn resize_in_place(
        &mut self,
        ptr: NonNull<u8>,
        layout: Layout,
        new_size: usize,
    ) -> Result<(), AllocError> {
        let (region, held) = self.find_live(ptr, layout).unwrap_or_else(|err| misuse(err));
        let new_layout = resized(layout, new_size)?;
        // SAFETY: `find_live` found the live allocation and what it holds.
        unsafe { self.resize_live(region, held, ptr, layout, new_layout) }
    }

    /// [`Heap::resize_in_place`] for an allocation already checked: `held` is what it holds,
    /// and `new_layout` is [`resized`]`(layout, new_size)`.
    ///
    /// # Safety
    ///
    /// `region` and `held` must be what [`Heap::find_live`] returned for `ptr` and `layout`,
    /// and the allocation must still be live.
    #[inline(always)]
    pub(crate) unsafe fn resize_live(
        &mut self,
        region: *mut Region,
        held: Request,
        ptr: NonNull<u8>,
        layout: Layout,
        new_layout: Layout,
    ) -> Result<(), AllocError> {
        let new_size = new_layout.size();
        let new = self.request_now(new_layout).ok_or(AllocError::Unsatisfiable)?;
        let addr = ptr.as_ptr().addr();
        let old_end = addr + held.bytes();
        let new_end = addr.checked_add(new.bytes()).ok_or(AllocError::OutOfMemory)?;
        if new.units < held.units {
            // SAFETY: the tail `[new_end, old_end)` belongs to the live allocation (caller).
            unsafe { self.release(region, new_end, old_end, usize::MAX) };
        } else if new.units > held.units {
            if self.keeps_whole() && addr & (block_size(new.order) - 1) != 0 {
                return Err(AllocError::OutOfMemory);
            }
            // SAFETY: `region` holds the allocation, which ends at `old_end`.
            unsafe { self.grow_in_place(region, old_end, new_end) }?;
        }
        // The allocation may no longer be one whole block of its order.
        self.forget_hint(held.order, addr);
        self.allocated_bytes = self.allocated_bytes - held.bytes() + new.bytes();
        self.requested_bytes = self.requested_bytes - layout.size() + new_size;
        self.partial = self.partial - usize::from(held.is_partial()) + usize::from(new.is_partial());
        Ok(())
    }

    /// Gives back every cached block (see [`Heap::with_cache`]) and merges every buddy pair whose
    /// merge was deferred; returns whether there was anything to do.
    ///
    /// To keep a small allocation on a nearly empty heap from splitting and re-merging twenty
    /// levels each time, a free does not merge a block with its buddy when the buddy is the only
    /// other free block of that order: the pair stays on the free list, ready for the next
    /// allocation of that size. There is at most one such pair per order, and [`Heap::alloc`]
    /// merges them all before it reports [`AllocError::OutOfMemory`], so no memory is lost to
    /// it. Call this before reading [`Stats::largest_free_block`] if you need the figure after
    /// full coalescing. It takes O(`ORDERS`) time.
    pub fn coalesce(&mut self) -> bool {
        let mut merged = self.flush_cache();
        for order in 0..Self::MAX_ORDER {
            let lower = core::mem::replace(&mut self.lists[order].deferred, 0);
            if lower == 0 {
                continue;
            }
            let region = self.region_of(lower);
            let size = block_size(order);
            // SAFETY: a deferred pair lies in a live region; the bitmaps and nodes are
            // consistent (heap invariant).
            let pair = !region.is_null()
                && unsafe {
                    (*region).is_free_block(lower, order) && (*region).is_free_block(lower + size, order)
                };
            if pair {
                // SAFETY: both halves are free blocks of `order` on list `order`; taking them
                // makes the parent ours, and it is on no list.
                unsafe {
                    self.take_block(region, lower, order);
                    self.take_block(region, lower + size, order);
                    self.free_block(region, lower, order + 1, usize::MAX, None);
                }
                merged = true;
            }
        }
        merged
    }

    /// Gives every cached block back to the free lists, merged; returns whether there was one.
    fn flush_cache(&mut self) -> bool {
        let mut any = false;
        for order in 0..CACHE_ORDERS {
            // (The hint may name a cached block, soon on a free list.)
            self.cache[order].forget_all();
            while let Some((block, marked)) = self.cache[order].pop() {
                any = true;
                let addr = block.addr().get();
                let region = self.region_of(addr);
                let mark = if marked { Mark::Cached } else { Mark::Alloc };
                // SAFETY: a cached block is a whole block of `order` in a live region (so in
                // `region`), marked cached (allocated, the hot one), on no list (heap
                // invariant); `free_block` replaces its mark.
                unsafe { self.free_block(region, addr, order, usize::MAX, Some(mark)) };
                // It was counted as allocated while cached.
                self.allocated_bytes -= block_size(order);
                self.allocations -= 1;
            }
        }
        any
    }

    /// A snapshot of the heap's figures.
    ///
    /// # Examples
    ///
    /// ```
    /// use alloc_buddy_simple::Heap;
    /// use core::alloc::Layout;
    /// use core::mem::MaybeUninit;
    ///
    /// static mut ARENA: [MaybeUninit<u8>; 65536] = [MaybeUninit::uninit(); 65536];
    ///
    /// let mut heap: Heap = Heap::new();
    /// // SAFETY: the arena is used by nothing else.
    /// unsafe { heap.init((&raw mut ARENA).cast(), 65536) }.unwrap();
    /// let before = heap.stats();
    /// let layout = Layout::from_size_align(100, 8).unwrap();
    /// let p = heap.alloc(layout).unwrap();
    /// let during = heap.stats();
    /// assert_eq!((during.allocations, during.requested_bytes), (1, 100));
    /// assert_eq!(during.allocated_bytes, 128); // its whole block: the heap has memory to spare
    /// // SAFETY: `p` is live with `layout`.
    /// unsafe { heap.dealloc(p, layout) };
    /// heap.coalesce();
    /// assert_eq!(heap.stats(), before);
    /// println!("{}", heap.stats());
    /// ```
    pub fn stats(&self) -> Stats<ORDERS> {
        let mut regions = 0;
        let mut metadata_bytes = 0;
        let mut at = self.regions;
        // SAFETY: the region list holds live headers.
        while let Some(r) = unsafe { at.as_ref() } {
            regions += 1;
            metadata_bytes += r.meta_bytes();
            at = r.next;
        }
        let cached = (0..CACHE_ORDERS).rposition(|k| self.cache_len(k) > 0).map_or(0, block_size);
        let listed = if self.avail == 0 { 0 } else { block_size(order::floor_log2(self.avail)) };
        let largest_free_block = listed.max(cached);
        // Cached blocks are counted in `allocated_bytes` and `allocations` (see the fields).
        let (cached_blocks, cached_bytes) = self.cached();
        let allocated_bytes = self.allocated_bytes - cached_bytes;
        Stats {
            regions,
            total_bytes: self.total_bytes,
            metadata_bytes,
            requested_bytes: self.requested_bytes,
            allocated_bytes,
            free_bytes: self.total_bytes - allocated_bytes,
            largest_free_block,
            allocations: self.allocations - cached_blocks,
            free_blocks: core::array::from_fn(|k| {
                self.lists[k].nr_free + if k < CACHE_ORDERS { self.cache_len(k) } else { 0 }
            }),
        }
    }

    // ---- Internals -------------------------------------------------------------------------

    /// Whether an allocation made now keeps its whole power-of-two block: always under
    /// [`Fit::PowerOfTwo`], never under [`Fit::Exact`], and under [`Fit::Adaptive`] while less
    /// than `1 / TRIM_PART` of the heap is allocated.
    #[inline(always)]
    fn keeps_whole(&self) -> bool {
        self.allocated_bytes < self.trim_from
    }

    /// The request for `layout` made now: its units, or its whole block while the heap keeps
    /// whole blocks ([`Heap::keeps_whole`]). `None` when no block can hold it.
    #[inline(always)]
    fn request_now(&self, layout: Layout) -> Option<Request> {
        let mut request = Request::new(layout, self.fit, Self::MAX_ORDER)?;
        if self.keeps_whole() {
            request.units = 1 << request.order;
        }
        Some(request)
    }

    /// The request a live allocation at `unit` in `map`, made for a layout of `request`, holds:
    /// under [`Fit::Adaptive`], one made while the heap was loose kept its whole block
    /// ([`Heap::keeps_whole`]), which the bitmap tells: nothing starts at its exact end.
    ///
    /// # Safety
    ///
    /// `unit + request.units` must be a unit of `map` (at most the metadata's first).
    #[inline(always)]
    unsafe fn held(&self, map: Bitmap, unit: usize, mut request: Request) -> Request {
        if self.fit == Fit::Adaptive
            && request.is_partial()
            // SAFETY: the caller's contract.
            && unsafe { map.bits(unit + request.units) } == 0
        {
            request.units = 1 << request.order;
        }
        request
    }

    /// Blocks and bytes held in the cache.
    fn cached(&self) -> (usize, usize) {
        (0..CACHE_ORDERS)
            .fold((0, 0), |(n, b), k| (n + self.cache_len(k), b + self.cache_len(k) * block_size(k)))
    }

    /// Blocks held in cache `order` (below [`CACHE_ORDERS`]).
    fn cache_len(&self, order: usize) -> usize {
        self.cache[order].len()
    }

    /// The region whose units contain `addr`, or null.
    #[inline(always)]
    fn region_of(&self, addr: usize) -> *mut Region {
        let mut at = self.regions;
        // SAFETY: the region list holds live headers.
        while let Some(r) = unsafe { at.as_ref() } {
            if r.contains(addr) {
                break;
            }
            at = r.next;
        }
        at
    }

    /// Checks that `ptr` starts a live allocation that `layout` fits, before a free; returns its
    /// region and its request.
    #[inline(always)]
    fn check_live(&self, ptr: NonNull<u8>, layout: Layout) -> Result<(*mut Region, Request), FreeError> {
        let p = ptr.as_ptr().cast_const();
        let addr = p.addr();
        let region_ptr = self.region_of(addr);
        // SAFETY: the region list holds live headers.
        let region = unsafe { region_ptr.as_ref() }.ok_or(FreeError::NotOwned { ptr: p })?;
        let mut request = Request::new(layout, self.fit, Self::MAX_ORDER)
            .ok_or(FreeError::WrongLayout { ptr: p, size: layout.size() })?;
        if addr & (layout.align().max(Self::MIN_BLOCK) - 1) != 0 {
            return Err(FreeError::Misaligned { ptr: p });
        }
        let unit = region.unit(addr);
        // SAFETY: `unit` is in the region.
        let bits = unsafe { region.map.bits(unit) };
        // `Mark::Free` and `Mark::Cached` both have the free bit.
        if bits & Mark::Free as usize != 0 {
            return Err(FreeError::DoubleFree { ptr: p });
        }
        if bits != Mark::Alloc as usize || addr == region.meta() {
            return Err(FreeError::NotAllocated { ptr: p });
        }
        // A cache's hot block keeps its allocation mark (see `CacheList`). The orders up to the
        // layout's: a layout smaller than the block's fails the checks below.
        let orders = request.order.min(Self::MAX_CACHED_ORDER);
        if self.cache[..=orders].iter().any(|cache| cache.is_hot(addr)) {
            return Err(FreeError::DoubleFree { ptr: p });
        }
        // The allocation ends where the next block or allocation starts (or at the metadata),
        // so the unit after the layout's end must start one.
        let wrong = FreeError::WrongLayout { ptr: p, size: layout.size() };
        // A live allocation ends at or before the metadata (and `addr < meta` here).
        if request.bytes() > region.meta() - addr {
            return Err(wrong);
        }
        // SAFETY: the allocation's exact end is in the region (just checked).
        request = unsafe { self.held(region.map, unit, request) };
        if request.bytes() > region.meta() - addr {
            return Err(wrong);
        }
        let end_unit = unit + request.units;
        // SAFETY: `end_unit` is in the region: the allocation ends at or before the metadata.
        if unsafe { region.map.bits(end_unit) } == 0 {
            return Err(wrong);
        }
        // Debug builds also check that nothing else starts inside the allocation, which catches
        // every layout larger than the allocation.
        if cfg!(debug_assertions) {
            // SAFETY: the range is inside the region.
            let inside = unsafe { region.map.any(unit + 1, end_unit) };
            if inside {
                return Err(wrong);
            }
        }
        Ok((region_ptr, request))
    }

    /// Drops the hint of `order`'s cache if it names `addr` (see [`CacheList::hold_hot`]): the
    /// allocation there may no longer be live and whole (freed to the free lists, resized, or
    /// kept in part).
    #[inline(always)]
    fn forget_hint(&mut self, order: usize, addr: usize) {
        if let Some(cache) = self.cache.get_mut(order) {
            cache.forget(addr);
        }
    }

    /// Puts the free block `[addr, addr + block_size(order))` on its list, without merging.
    ///
    /// # Safety
    ///
    /// The block must lie in `region`, be naturally aligned, and be ours: on no list and part of
    /// no allocation.
    #[inline(always)]
    unsafe fn push_block(&mut self, region: *mut Region, addr: usize, order: usize) {
        // SAFETY: `region` is live (caller).
        let r = unsafe { &*region };
        debug_assert!(
            r.holds(addr, block_size(order)),
            "block {:#p} of order {order} is outside its region",
            r.ptr(addr)
        );
        // SAFETY: the block is ours and at least one unit long, so it holds a node; the list's
        // nodes are valid (heap invariant); no block is above `MAX_ORDER` (the carving in
        // `add_region` and the merge loop in `free_block` stop there).
        unsafe { self.list(order).push(r.node(addr), order, region) };
        self.avail |= 1 << order;
        // SAFETY: `addr` is in the region.
        unsafe { r.map.set(r.unit(addr), Mark::Free) };
    }

    /// Takes the free block at `addr` off list `order`, wherever it is.
    ///
    /// # Safety
    ///
    /// A free block of order `order` must start at `addr` in `region`.
    #[inline(always)]
    unsafe fn take_block(&mut self, region: *mut Region, addr: usize, order: usize) {
        // SAFETY: `region` is live (caller).
        let r = unsafe { &*region };
        // SAFETY: a free block's order is at most `MAX_ORDER`.
        let list = unsafe { self.list(order) };
        // SAFETY: the node at `addr` is on list `order` (caller).
        unsafe { list.remove(r.node(addr)) };
        if list.nr_free == 0 {
            self.avail &= !(1 << order);
        }
        // SAFETY: `addr` is in the region.
        unsafe { r.map.erase(r.unit(addr)) };
    }

    /// Takes the first block off list `order` and returns its region and address. The block
    /// keeps its [`Mark::Free`]: the caller changes it.
    ///
    /// # Safety
    ///
    /// List `order` must not be empty.
    #[inline(always)]
    unsafe fn pop_block(&mut self, order: usize) -> (*mut Region, usize) {
        // SAFETY: a non-empty list's order is at most `MAX_ORDER` (caller).
        let list = unsafe { self.list(order) };
        // SAFETY: the list's nodes are valid (heap invariant) and it is not empty (caller).
        let node = unsafe { list.pop() };
        if list.nr_free == 0 {
            self.avail &= !(1 << order);
        }
        // SAFETY: `node` was on a list, so it is a valid node of a live region.
        (unsafe { (*node).region }, node.addr())
    }

    /// The free list of order `order`, without a bounds check.
    ///
    /// # Safety
    ///
    /// `order <= Self::MAX_ORDER`.
    #[inline(always)]
    unsafe fn list(&mut self, order: usize) -> &mut FreeList {
        debug_assert!(order <= Self::MAX_ORDER, "order {order} above the largest");
        // SAFETY: `order <= MAX_ORDER < ORDERS` (caller).
        unsafe { self.lists.get_unchecked_mut(order) }
    }

    /// Splits the block `[addr, addr + block_size(order))`: keeps its first `units` minimum
    /// blocks and puts the rest on the free lists as the fewest naturally aligned blocks. With
    /// `units` a power of two this is the classic split: the upper half of every level goes to
    /// its free list, the lower half is kept.
    ///
    /// # Safety
    ///
    /// The block must lie in `region`, be naturally aligned and be ours;
    /// `1 <= units <= 2^order`.
    #[inline(always)]
    unsafe fn split(&mut self, region: *mut Region, addr: usize, order: usize, units: usize) {
        if cfg!(debug_assertions) {
            // SAFETY: `region` is live (caller).
            let at = unsafe { (*region).ptr(addr) };
            debug_assert!(addr % block_size(order) == 0, "split of {at:#p}: misaligned for order {order}");
            debug_assert!(
                units >= 1 && units <= 1 << order,
                "split of {at:#p} (order {order}) keeping {units}"
            );
        }
        // Offsets in units from `addr`; each piece starts at a multiple of its size because
        // `addr` is aligned to the whole block.
        let mut at = units;
        let end = 1 << order;
        while at < end {
            let piece = at.trailing_zeros() as usize;
            // SAFETY: the piece is an aligned part of our block (caller), on no list, and its
            // buddy (the part before it) is kept or already a piece, so it must not merge.
            unsafe { self.push_block(region, addr + (at << MIN_SHIFT), piece) };
            at += 1 << piece;
        }
    }

    /// The end of [`Heap::cache_alloc`] for a request that keeps only part of the cached block
    /// ([`Fit::Exact`], or [`Fit::Adaptive`] on a heap short of memory): splits the rest off to
    /// the free lists and returns the allocation. Out of line, so that the cached path keeps
    /// fewer values across a call.
    ///
    /// # Safety
    ///
    /// The whole block of `order` at `block`, just taken from the cache, must be ours, still
    /// marked cached if `marked` (allocated otherwise: the hot block); `size` must need fewer
    /// than `2^order` units.
    #[inline(never)]
    unsafe fn take_cached_part(
        &mut self,
        block: NonNull<u8>,
        order: usize,
        size: usize,
        marked: bool,
    ) -> NonNull<u8> {
        let units = order::units_of(size);
        let addr = block.addr().get();
        // (The hint may name the block, which is not to be whole any more.)
        self.forget_hint(order, addr);
        let region = self.region_of(addr);
        // SAFETY: the caller's contract (a cached block lies in a live region, so `region` is
        // that region); `Exact` keeps only the units asked for.
        unsafe { self.split(region, addr, order, units) };
        // The cached block was counted whole; the split-off tail is free.
        self.allocated_bytes -= block_size(order) - (units << MIN_SHIFT);
        self.partial += 1;
        self.requested_bytes += size;
        if marked {
            // SAFETY: the block's first unit, in `region`, is still marked cached (the split
            // marks only the tail's), and becomes allocated. (The hot block's is allocated.)
            unsafe { (*region).uncache(addr) };
        }
        block
    }

    /// Frees the block at `addr` of order `order`, merging it with its buddy while the buddy is
    /// free and of the same order. A merge at order `defer_from` or above is deferred when the
    /// buddy is the only block on its list (see [`Heap::coalesce`]).
    ///
    /// The mark the block's first unit carries is replaced: `was`, or, with `None`, whatever it
    /// carries (the allocated or cached mark, or none). Each unit's mark is written once, so a
    /// merge that ends where it started changes one mark, and one that ends at a lower buddy
    /// keeps the buddy's. A known mark turns into [`Mark::Free`] with one `xor`, where an unknown
    /// one needs the word read, masked and its summary bit kept.
    ///
    /// # Safety
    ///
    /// The block must lie in `region`, be naturally aligned and be ours: on no list and part of
    /// no allocation. No unit inside it but the first may carry a mark; with `was` given, the
    /// first carries it.
    #[inline(always)]
    unsafe fn free_block(
        &mut self,
        region: *mut Region,
        mut addr: usize,
        mut order: usize,
        defer_from: usize,
        was: Option<Mark>,
    ) {
        // SAFETY: `region` is live (caller).
        let r = unsafe { &*region };
        debug_assert!(r.holds(addr, block_size(order)), "free of {:#p}: outside its region", r.ptr(addr));
        debug_assert!(
            addr % block_size(order) == 0,
            "free of {:#p}: misaligned for order {order}",
            r.ptr(addr)
        );
        let map = r.map;
        let own = r.unit(addr);
        // The first unit of the (merged) block.
        let mut first = own;
        // The block's size, doubled with each merge.
        let mut size = block_size(order);
        while order < Self::MAX_ORDER {
            let buddy = addr ^ size;
            // SAFETY: the region's bitmaps and nodes are consistent (heap invariant).
            let Some(unit) = (unsafe { r.free_block_unit(buddy, order) }) else { break };
            // SAFETY: `order < MAX_ORDER` in this loop.
            let list = unsafe { self.list(order) };
            if order >= defer_from && list.nr_free == 1 {
                list.deferred = addr & !size;
                break;
            }
            // SAFETY: the buddy is a free block of `order` on list `order`.
            unsafe { list.remove(r.node(buddy)) };
            if list.nr_free == 0 {
                self.avail &= !(1 << order);
            }
            // Of the two first units, the lower one starts the merged block; the other one's
            // mark goes. (The buddy's is `Free`, already the merged block's mark.)
            let gone = if buddy < addr { core::mem::replace(&mut first, unit) } else { unit };
            // SAFETY: both units are in the region.
            unsafe { map.erase(gone) };
            addr &= !size;
            order += 1;
            size <<= 1;
        }
        // SAFETY: the (merged) block is ours and inside the region; no block is above
        // `MAX_ORDER` (the carving in `add_region` and the loop above stop there).
        unsafe {
            self.list(order).push(r.node(addr), order, region);
            if first == own {
                map.turn_free(first, was);
            }
        }
        self.avail |= 1 << order;
    }

    /// Frees the range `[start, end)`, cut into the fewest naturally aligned blocks, each merged
    /// with its buddies.
    ///
    /// # Safety
    ///
    /// The range must lie in `region`, be a multiple of minimum blocks, and be ours.
    #[inline(always)]
    unsafe fn release(&mut self, region: *mut Region, start: usize, end: usize, defer_from: usize) {
        let mut at = start;
        while at < end {
            let order = order::piece_order(at, end, Self::MAX_ORDER);
            // SAFETY: the piece is part of the range (caller) and naturally aligned.
            unsafe { self.free_block(region, at, order, defer_from, None) };
            at += block_size(order);
        }
    }

    /// Extends the allocation ending at `old_end` to `new_end` if the blocks between are free.
    ///
    /// # Safety
    ///
    /// `region` must hold the live allocation that ends at `old_end`.
    unsafe fn grow_in_place(
        &mut self,
        region: *mut Region,
        old_end: usize,
        new_end: usize,
    ) -> Result<(), AllocError> {
        // SAFETY: `region` is live (caller), and `old_end < new_end`. A free block that contains
        // `old_end` starts there, because the units before it are allocated.
        if !unsafe { (*region).run_is_free(old_end, new_end) } {
            return Err(AllocError::OutOfMemory);
        }
        // SAFETY: just checked.
        unsafe { self.absorb(region, old_end, old_end, new_end) };
        Ok(())
    }

    /// Serves a request from a "run": free blocks side by side that together cover it, marked
    /// allocated. A larger request that keeps only its units tries this first ([`Heap::take_free`]);
    /// every fit falls back on it when no single free block is large enough.
    ///
    /// A run long enough for a request of order `k` holds a free block of order `k - 3` or above
    /// (any span of `n` units holds a naturally aligned block of at least `n / 4` units, and free
    /// buddies are merged). So it looks at the first [`RUN_CANDIDATES`] blocks
    /// ([`RUN_CANDIDATES_FULL`] on a heap at least half full) of each of the [`RUN_DEPTH`] orders
    /// below the request's, measures each one's run in the bitmap ([`Region::fit_in_run`]), and
    /// takes the shortest run that fits: best fit, which keeps the long runs whole for long
    /// requests. The work is bounded by the candidates and by a window
    /// of twice the request around each, so it stays O(`ORDERS`) blocks.
    ///
    /// `dealloc` frees a run like any allocation: by cutting its range into naturally aligned
    /// blocks, so nothing else needs to know.
    fn take_run(&mut self, request: Request, align: usize) -> Option<(*mut Region, usize)> {
        let need = request.bytes();
        // Runs this long or longer are all as good as each other.
        let enough = need.saturating_mul(2);
        let mut best: Option<(*mut Region, RunFit)> = None;
        let full = self.allocated_bytes >= self.total_bytes / FULL_PART;
        let candidates = if full { RUN_CANDIDATES_FULL } else { RUN_CANDIDATES };
        'search: for order in (request.order.saturating_sub(RUN_DEPTH)..request.order).rev() {
            let mut node = self.lists[order].head();
            for _ in 0..candidates {
                if node.is_null() {
                    break;
                }
                // SAFETY: a node on a list is a valid free block of a live region.
                let (region, next) = unsafe { ((*node).region, (*node).next) };
                // Once a run fits, only shorter ones matter: measure no further than its length
                // (most of the search's time is reading the bitmap around each candidate).
                let enough = best.map_or(enough, |(_, b)| b.len);
                // SAFETY: as above; the region's bitmap and nodes are consistent.
                let fit = unsafe { (*region).fit_in_run(node.addr(), need, align, enough, Self::MAX_ORDER) };
                if let Some(fit) = fit.filter(|f| best.is_none_or(|(_, b)| f.len < b.len)) {
                    best = Some((region, fit));
                    if fit.len - need <= need / 8 {
                        break 'search;
                    }
                }
                node = next;
            }
        }
        let (region, fit) = best?;
        // SAFETY: `fit_in_run` found free blocks tiling `[fit.head, fit.start + need)`, the first
        // one starting at `fit.head`; once taken they are ours, and `fit.start` is in `region`.
        unsafe {
            self.absorb(region, fit.head, fit.start, fit.start + need);
            (*region).map.set((*region).unit(fit.start), Mark::Alloc);
        }
        Some((region, fit.start))
    }

    /// Takes the free blocks that tile `[head, end)` off their lists (the last one may reach
    /// past `end`), keeps `[from, end)` and gives the rest back.
    ///
    /// # Safety
    ///
    /// Free blocks must tile `[head, end)` in `region`, the first starting at `head`, and
    /// `head <= from < end` with `from` a multiple of `MIN_BLOCK` inside the first one.
    unsafe fn absorb(&mut self, region: *mut Region, head: usize, from: usize, end: usize) {
        // SAFETY: `region` is live (caller).
        let r = unsafe { &*region };
        let mut at = head;
        while at < end {
            // SAFETY: a free block starts at `at` (caller).
            let order = unsafe { (*r.node(at)).order };
            // SAFETY: as above.
            unsafe { self.take_block(region, at, order) };
            let next = at + block_size(order);
            if at < from {
                // SAFETY: the block is ours now; its part below `from` is not asked for.
                unsafe { self.release(region, at, from, usize::MAX) };
            }
            if next > end {
                // SAFETY: as above, for its part from `end`.
                unsafe { self.release(region, end, next, usize::MAX) };
            }
            at = next;
        }
    }
}

/// Free blocks per order that [`Heap::take_run`] looks at while less than `1 / FULL_PART` of the
/// heap is allocated (measured on ten trials of talc's heap-efficiency workload, with whole blocks
/// below a quarter: 16 hold 91.4% of the arena, 8 hold 90.0%, 4 hold 87.4%; taking the first run
/// that fits, 81%; stopping after the first 4 runs that fit, 88.5%).
const RUN_CANDIDATES: usize = 16;

/// Free blocks per order that [`Heap::take_run`] looks at from `1 / FULL_PART` of the heap
/// allocated. The placement made while the heap fills up is what decides how full it gets
/// (measured on 30 trials of talc's heap-efficiency workload, with whole blocks below a third:
/// 16 candidates always held 90.4% of the arena, 32 always 91.2%, 64 always 91.4%, 64 from half
/// full 91.4%, 8 below half and 64 above 91.2%, 128 from half full 91.4%), while a heap less full
/// than that runs faster with fewer.
const RUN_CANDIDATES_FULL: usize = 64;

/// See [`RUN_CANDIDATES_FULL`].
const FULL_PART: usize = 2;

/// Orders below a request's where [`Heap::take_run`] looks for candidates.
const RUN_DEPTH: usize = 3;

/// Below `1 / LOOSE_PART` of the heap allocated, [`Fit::Exact`] splits a block without looking
/// for a run (measured on talc's workloads: random actions 0.06-0.6x talc's speed with the search
/// on every request, 0.27-0.69x when it skipped the search only if a block of the request's own
/// order was free, 0.46-0.68x now; heap efficiency 92.8%, 92.4% and 92.4%, and the 99th
/// percentile of alloc + free latency 13x talc's, then 2.1x; a quarter instead of an eighth gave
/// 91.3%). The allocated bytes count cached blocks (see the field), at most 16 per small order.
const LOOSE_PART: usize = 8;

/// Under [`Fit::Adaptive`], allocations keep whole blocks while less than `1 / TRIM_PART` of the
/// heap is allocated (measured on talc's workloads: an eighth held 92.5% of the arena, but random
/// actions at 30 000 B fell to 0.8x talc as the heap crossed the line in the quick benchmark; a
/// quarter 91.8%, and about 1.0x there, though the full mode's longer runs cross it too, 0.69x; a
/// third 90.4% with 16 run candidates, 91.4% with [`RUN_CANDIDATES_FULL`] from half full; a half
/// 87.4%, 87.8% with them).
const TRIM_PART: usize = 3;

/// The lowest order for which a request that keeps only its units looks for a run before it
/// splits a block (requests above 8 minimum blocks: 256 bytes on 64-bit targets).
const RUN_FROM_ORDER: usize = 4;

/// The layout of an allocation of `layout` resized to `new_size` bytes (same alignment), or
/// [`AllocError::Unsatisfiable`] if no allocation can have it.
///
/// Only the size is checked: the alignment is already a `Layout`'s (`from_size_align` would test
/// again that it is a power of two).
#[inline(always)]
pub(crate) fn resized(layout: Layout, new_size: usize) -> Result<Layout, AllocError> {
    let align = layout.align();
    // `Layout`'s rule: the size rounded up to the alignment is at most `isize::MAX`.
    if new_size > isize::MAX as usize - (align - 1) {
        return Err(AllocError::Unsatisfiable);
    }
    // SAFETY: `align` is a `Layout`'s alignment, so a non-zero power of two, and the size obeys
    // the rule (just checked).
    Ok(unsafe { Layout::from_size_align_unchecked(new_size, align) })
}

/// Reports misuse caught on a free: a panic that names the pointer. Called from an `extern "C"`
/// function, so it aborts rather than unwinds when it reaches a caller that cannot unwind (a
/// global allocator must not unwind).
#[cold]
#[inline(never)]
#[track_caller]
fn misuse(err: FreeError) -> ! {
    panic!("alloc_buddy_simple: {err}")
}

/// As [`misuse`], but never unwinds: a panic cannot leave an `extern "C"` function, so the
/// process aborts after the panic message is printed.
#[cold]
#[inline(never)]
pub(crate) extern "C" fn misuse_abort(err: &FreeError) -> ! {
    misuse(*err)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::vec::Vec;

    /// Bytes in a test arena: smaller under Miri, which interprets every step.
    const ARENA: usize = if cfg!(miri) { 64 << 10 } else { 1 << 20 };

    /// A leaked, page-aligned arena.
    fn arena() -> &'static mut [MaybeUninit<u8>] {
        let layout = Layout::from_size_align(ARENA, 4096).unwrap();
        // SAFETY: the layout has a non-zero size.
        let mem = unsafe { std::alloc::alloc(layout) };
        assert!(!mem.is_null());
        // SAFETY: `mem` holds `ARENA` bytes and is never freed, so it is `'static`.
        unsafe { core::slice::from_raw_parts_mut(mem.cast(), ARENA) }
    }

    fn layout(size: usize, align: usize) -> Layout {
        Layout::from_size_align(size, align).unwrap()
    }

    #[test]
    fn size_matches_the_readme() {
        // The README states `3 × ORDERS + 280` words, and 3136 bytes for a `LockedHeap<32>` on
        // 64-bit targets (the lock's cache line, then the heap and the arena's two words).
        assert_eq!(size_of::<Heap<32>>(), (3 * 32 + 280) * size_of::<usize>());
        assert_eq!(size_of::<Heap<8>>(), (3 * 8 + 280) * size_of::<usize>());
        #[cfg(target_pointer_width = "64")]
        assert_eq!(size_of::<crate::LockedHeap<32>>(), 3136);
    }

    #[test]
    fn resized_agrees_with_from_size_align() {
        for align in [1, 2, 8, 16, 4096, 1 << 20] {
            let edge = isize::MAX as usize - (align - 1);
            for new_size in [0, 1, 100, edge - 1, edge, edge + 1, isize::MAX as usize, usize::MAX] {
                let expected = Layout::from_size_align(new_size, align).ok();
                assert_eq!(resized(layout(1, align), new_size).ok(), expected, "{new_size} at {align}");
            }
        }
    }

    #[test]
    fn a_whole_block_freed_on_a_heap_with_partial_allocations_is_cached() {
        // Under `Fit::Adaptive` a request of three units keeps its whole four-unit block while
        // the heap is loose, and only its units once a third of it is allocated. A free of the
        // whole block after that goes the full check's way (the quick one leaves layouts that
        // need fewer units than their block to it on a heap with partial allocations), and
        // lands in the cache just the same.
        let mut heap: Heap = Heap::new().with_cache(4);
        heap.add_static_region(arena()).unwrap();
        let three = layout(3 * Heap::<32>::MIN_BLOCK, 8);
        let whole = heap.alloc(three).unwrap();
        assert_eq!(heap.allocated_bytes, 4 * Heap::<32>::MIN_BLOCK, "kept whole while loose");
        let filler = layout(ARENA / 16, 8);
        let mut fill = Vec::new();
        while heap.allocated_bytes < ARENA / 2 {
            fill.push(heap.alloc(filler).unwrap());
        }
        let part = heap.alloc(three).unwrap();
        assert_eq!(heap.partial, 1, "only its units once tight");
        assert_eq!(heap.cache_len(2), 0);
        // SAFETY: `whole` is live with `three`.
        unsafe { heap.dealloc(whole, three) };
        assert_eq!(heap.cache_len(2), 1, "cached, not merged");
        heap.check_invariants().unwrap();
        // SAFETY: each block is live with the layout it was allocated with.
        unsafe {
            heap.dealloc(part, three);
            fill.into_iter().for_each(|p| heap.dealloc(p, filler));
        }
        heap.check_invariants().unwrap();
    }

    #[test]
    fn smoke() {
        for fit in [Fit::Exact, Fit::PowerOfTwo] {
            let mut heap: Heap = Heap::with_fit(fit);
            let mem = arena();
            let base = mem.as_ptr().addr();
            heap.add_static_region(mem).unwrap();
            heap.check_invariants().unwrap();
            let fresh = heap.stats();
            let mut live = Vec::new();
            for i in 1..if cfg!(miri) { 40 } else { 200usize } {
                let l = layout(i * 7 % if cfg!(miri) { 200 } else { 900 } + 1, 1 << (i % 7));
                let p = heap.alloc(l).unwrap();
                assert_eq!(p.as_ptr().addr() % l.align(), 0);
                assert!(p.as_ptr().addr() >= base);
                live.push((p, l));
                heap.check_invariants().unwrap();
                if i % 3 == 0 {
                    let (p, l) = live.swap_remove(i % live.len());
                    // SAFETY: allocated above with `l`.
                    unsafe { heap.dealloc(p, l) };
                    heap.check_invariants().unwrap();
                }
            }
            for (p, l) in live {
                // SAFETY: allocated above with `l`.
                unsafe { heap.dealloc(p, l) };
                heap.check_invariants().unwrap();
            }
            heap.coalesce();
            heap.check_invariants().unwrap();
            assert_eq!(heap.stats(), fresh);
        }
    }
}
