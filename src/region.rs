//! Regions: the spans of memory a heap manages, each with its own metadata.
//!
//! A region `[start, end)` given by the user is trimmed to whole minimum blocks ("units")
//! `[lo, lo + span)`. Its metadata (this header and the buddy-state bitmap) sits in the
//! region's top units, marked as a permanent allocation, so the bottom of the region (usually the
//! best aligned part) is left for large blocks. The rest is cut into the largest naturally aligned
//! blocks that fit.

use core::mem::size_of;

use crate::bitmap::{Bitmap, Mark};
use crate::error::HeapError;
use crate::free_list::FreeNode;
use crate::order::{MIN_BLOCK, MIN_SHIFT, WORD_BITS, align_down, align_up};

/// The header of a region, stored in the region's own top units.
#[derive(Debug)]
pub(crate) struct Region {
    /// The pointer the user gave: every block pointer is derived from it, so the provenance of
    /// the whole region is kept.
    base: *mut u8,
    /// The user's range, `[start, end)`, for overlap checks.
    pub(crate) start: usize,
    pub(crate) end: usize,
    /// The first unit.
    pub(crate) lo: usize,
    /// Bytes of units, metadata included; `lo + span` does not overflow.
    pub(crate) span: usize,
    /// Bytes of units below the metadata (this header, at [`Region::meta`]): the units from
    /// `lo + usable` to `lo + span` are not for allocation. Kept as a length, the fast paths'
    /// one bound ([`Bounds::below_meta`]).
    usable: usize,
    /// What each unit starts: a free block, an allocation, or nothing.
    pub(crate) map: Bitmap,
    /// The next region, by address, or null.
    pub(crate) next: *mut Region,
}

/// What a free's fast path reads of a region: where its units start, how many bytes of them lie
/// below the metadata, and its bitmap. A heap keeps a copy for its first region
/// (`Heap::first`), which the fast path reads from the heap's own cache line, where it would
/// otherwise load the region list's head and then the header: one dependent load fewer before
/// the bitmap's. With the lock's atomic operation waiting for everything before it, that chain
/// is the free's critical path.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Bounds {
    lo: usize,
    usable: usize,
    pub(crate) map: Bitmap,
}

impl Bounds {
    /// The bounds of no region: they hold no block.
    pub(crate) const NONE: Bounds = Bounds { lo: 0, usable: 0, map: Bitmap::NONE };

    /// The unit at `addr`, if `addr` is in the units below the metadata: [`Bounds::below_meta`]
    /// for a single address, with one comparison (the quick allocation's form).
    #[inline(always)]
    pub(crate) fn unit_of(&self, addr: usize) -> Option<usize> {
        let off = addr.wrapping_sub(self.lo);
        (off < self.usable).then_some(off >> MIN_SHIFT)
    }

    /// The offsets from the first unit of the start and the end of `[addr, addr + size)`, if it
    /// lies in the units below the metadata. One subtraction, one addition and two branches:
    /// an `addr` below the region wraps to an offset whose addition carries or passes the bound.
    #[inline(always)]
    pub(crate) fn below_meta(&self, addr: usize, size: usize) -> Option<(usize, usize)> {
        let off = addr.wrapping_sub(self.lo);
        match off.checked_add(size) {
            Some(end) if end <= self.usable => Some((off, end)),
            _ => None,
        }
    }
}

/// A place in a run of free blocks found by [`Region::fit_in_run`].
#[derive(Clone, Copy, Debug)]
pub(crate) struct RunFit {
    /// The free block that holds `start`.
    pub(crate) head: usize,
    /// Where the allocation would start.
    pub(crate) start: usize,
    /// Free bytes from `start` (up to the `enough` asked for).
    pub(crate) len: usize,
}

/// Units of metadata for a region of `units` units: the header and the bitmap (with its
/// summary).
const fn meta_units(units: usize) -> usize {
    let bytes = size_of::<Region>() + Bitmap::len_for(units) * size_of::<usize>();
    bytes.div_ceil(MIN_BLOCK)
}

/// The smallest region size that `add_region` accepts when the start is aligned to a unit.
pub(crate) const MIN_REGION: usize = (meta_units(WORD_BITS) + 1) * MIN_BLOCK;

impl Region {
    /// Checks the user's range and writes the region's metadata into its top units. Returns the
    /// header; the units `[lo, meta)` are left for the caller to hand to the free lists.
    ///
    /// # Safety
    ///
    /// `start..start + size` must be valid for reads and writes for as long as the heap is used,
    /// and used by nothing else.
    ///
    /// # Errors
    ///
    /// [`HeapError::NullStart`], [`HeapError::Overflow`] and [`HeapError::TooSmall`], with
    /// nothing written.
    pub(crate) unsafe fn create(start: *mut u8, size: usize) -> Result<*mut Region, HeapError> {
        if start.is_null() {
            return Err(HeapError::NullStart);
        }
        let start_addr = start.addr();
        let end = start_addr.checked_add(size).ok_or(HeapError::Overflow)?;
        let too_small = HeapError::TooSmall { size, min: MIN_REGION };
        let lo = align_up(start_addr).ok_or(too_small)?;
        let hi = align_down(end);
        if hi <= lo {
            return Err(too_small);
        }
        let units = (hi - lo) >> MIN_SHIFT;
        let meta_units = meta_units(units);
        if units <= meta_units {
            return Err(too_small);
        }
        let meta = lo + ((units - meta_units) << MIN_SHIFT);
        // SAFETY: `meta` is inside the user's range (`lo <= meta < hi <= end`), so the offset
        // stays in the allocation `start` points to.
        let header = unsafe { start.add(meta - start_addr) }.cast::<Region>();
        // SAFETY: `header` is aligned to a unit, which is at least a word.
        let maps = unsafe { header.add(1) }.cast::<usize>();
        // SAFETY: the metadata units hold the header and `Bitmap::len_for(units)` words after it
        // (that is how `meta_units` sized them), all inside the user's range, which is ours.
        let map = unsafe { Bitmap::zeroed(maps, units) };
        let region = Region {
            base: start,
            start: start_addr,
            end,
            lo,
            span: hi - lo,
            usable: meta - lo,
            map,
            next: core::ptr::null_mut(),
        };
        // SAFETY: the header's units are ours and aligned for a `Region`.
        unsafe { header.write(region) };
        // SAFETY: the metadata's first unit is inside the bitmap (`meta < hi`).
        unsafe { map.set((meta - lo) >> MIN_SHIFT, Mark::Alloc) };
        Ok(header)
    }

    /// Address of the metadata (this header).
    #[inline(always)]
    pub(crate) fn meta(&self) -> usize {
        self.lo + self.usable
    }

    /// One past the last unit.
    #[inline(always)]
    pub(crate) fn top(&self) -> usize {
        self.lo + self.span
    }

    /// Bytes of metadata.
    pub(crate) fn meta_bytes(&self) -> usize {
        self.top() - self.meta()
    }

    /// Whether the block `[addr, addr + size)` lies inside the region's units.
    #[inline(always)]
    pub(crate) fn holds(&self, addr: usize, size: usize) -> bool {
        let off = addr.wrapping_sub(self.lo);
        off < self.span && self.span - off >= size
    }

    /// What a free's fast path reads of the region ([`Bounds`]).
    #[inline(always)]
    pub(crate) fn bounds(&self) -> Bounds {
        Bounds { lo: self.lo, usable: self.usable, map: self.map }
    }

    /// Whether `addr` is in the region's units.
    #[inline(always)]
    pub(crate) fn contains(&self, addr: usize) -> bool {
        addr.wrapping_sub(self.lo) < self.span
    }

    /// The bitmap index of the unit at `addr`. The caller keeps `addr` inside the region.
    #[inline(always)]
    pub(crate) fn unit(&self, addr: usize) -> usize {
        debug_assert!(self.contains(addr), "{addr:#x} is outside the region at {:#x}", self.lo);
        (addr - self.lo) >> MIN_SHIFT
    }

    /// Turns the first unit of the cached block at `addr` from [`Mark::Cached`] to
    /// [`Mark::Alloc`]: the block is taken.
    ///
    /// # Safety
    ///
    /// `addr` must start a block of this region whose first unit is marked cached.
    #[inline(always)]
    pub(crate) unsafe fn uncache(&self, addr: usize) {
        // SAFETY: the caller's contract: the unit is in the map and marked cached.
        unsafe { self.map.uncache(self.unit(addr)) }
    }

    /// A pointer to `addr`, with the region's provenance.
    #[inline(always)]
    pub(crate) fn ptr(&self, addr: usize) -> *mut u8 {
        self.base.with_addr(addr)
    }

    /// The node of the block at `addr`.
    #[inline(always)]
    pub(crate) fn node(&self, addr: usize) -> *mut FreeNode {
        self.ptr(addr).cast()
    }

    /// Whether free blocks tile `[from, end)`, the first starting at `from` (the last may reach
    /// past `end`). Cached blocks do not count: they are held for their order's next request.
    /// Reads the bitmap only ([`Bitmap::run_end`]).
    ///
    /// # Safety
    ///
    /// `from < end`; the region's bitmap must be consistent.
    pub(crate) unsafe fn run_is_free(&self, from: usize, end: usize) -> bool {
        // The metadata's first unit is marked allocated, so no run reaches past it.
        if !self.contains(from) || end > self.meta() {
            return false;
        }
        let (unit, last) = (self.unit(from), (end - self.lo) >> MIN_SHIFT);
        // SAFETY: `unit` is in the region and `last` at most the metadata's unit.
        unsafe { self.map.bits(unit) == Mark::Free as usize && self.map.run_end(unit, last) == last }
    }

    /// The free block that holds `addr`: its start and order, found by trying each order's
    /// aligned start below `addr`. O(`max_order`).
    ///
    /// # Safety
    ///
    /// As [`Region::is_free_block`].
    pub(crate) unsafe fn free_block_holding(&self, addr: usize, max_order: usize) -> Option<(usize, usize)> {
        (0..=max_order).find_map(|order| {
            let size = crate::order::block_size(order);
            let start = addr & !(size - 1);
            // SAFETY: the caller's invariant.
            unsafe { self.is_free_block(start, order) }.then_some((start, order))
        })
    }

    /// Where a request of `need` bytes aligned to `align` fits in the run of free blocks
    /// through the free block at `addr`, if it does. The run is measured in the bitmap within
    /// `enough` bytes either side of `addr`, and its length is reported up to `enough`.
    ///
    /// # Safety
    ///
    /// A free block must start at `addr`; otherwise as [`Region::is_free_block`].
    #[inline]
    pub(crate) unsafe fn fit_in_run(
        &self,
        addr: usize,
        need: usize,
        align: usize,
        enough: usize,
        max_order: usize,
    ) -> Option<RunFit> {
        let unit = self.unit(addr);
        let window = enough >> MIN_SHIFT;
        // SAFETY: `floor <= unit`, in range; a free block starts at `unit`.
        let first = unsafe { self.map.run_start(unit, unit.saturating_sub(window)) };
        // No need to look past `enough` bytes from the run's start (plus the alignment); the
        // metadata's first unit is marked allocated, so no run reaches past it.
        let reach = window.saturating_add(align >> MIN_SHIFT);
        let ceil = first.saturating_add(reach).max(unit + 1).min(self.unit(self.meta()));
        // SAFETY: `ceil` is at most the metadata's unit, inside the map.
        let last = unsafe { self.map.run_end(unit, ceil) };
        let head = self.lo + (first << MIN_SHIFT);
        let end = self.lo + (last << MIN_SHIFT);
        let start = head.checked_add(align - 1)? & !(align - 1);
        if start >= end || end - start < need {
            return None;
        }
        let head = if start == head {
            head
        } else {
            // SAFETY: the caller's invariant; `start` is inside the run.
            unsafe { self.free_block_holding(start, max_order) }?.0
        };
        Some(RunFit { head, start, len: (end - start).min(enough) })
    }

    /// Whether a free block of order `order` starts at `addr`.
    ///
    /// # Safety
    ///
    /// The region's free bitmap and free nodes must be consistent: every unit whose `free` bit
    /// is set holds a valid [`FreeNode`].
    #[inline(always)]
    pub(crate) unsafe fn is_free_block(&self, addr: usize, order: usize) -> bool {
        // SAFETY: the caller's contract.
        unsafe { self.free_block_unit(addr, order) }.is_some()
    }

    /// The bitmap unit of the free block of order `order` at `addr`, or `None` when no such block
    /// starts there.
    ///
    /// Only the start is bounds-checked: a block of `order` that starts in the region but would
    /// end past it is never free, so the marks and the node's order reject it.
    ///
    /// # Safety
    ///
    /// As [`Region::is_free_block`].
    #[inline(always)]
    pub(crate) unsafe fn free_block_unit(&self, addr: usize, order: usize) -> Option<usize> {
        if !self.contains(addr) {
            return None;
        }
        let unit = self.unit(addr);
        // SAFETY: `contains` keeps the unit in range; a set `free` bit means a valid node (the
        // caller's invariant).
        let free = unsafe { self.map.bits(unit) == Mark::Free as usize && (*self.node(addr)).order == order };
        free.then_some(unit)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metadata_is_small() {
        // 1 MiB of units: two bits per unit (1/128 of the region on 64-bit targets, 1/64 on
        // 32-bit ones), its summary (a bit per map word: 1/64 of the map) and the header.
        let units = (1 << 20) / MIN_BLOCK;
        let meta = meta_units(units) * MIN_BLOCK;
        let bits = (1 << 20) / MIN_BLOCK * 2 / 8;
        let summary = bits / WORD_BITS;
        assert!(meta <= bits + summary + size_of::<Region>() + MIN_BLOCK, "{meta} bytes of metadata per MiB");
        assert!(bits <= (1 << 20) / 64);
        assert_eq!(size_of::<Region>(), size_of::<[usize; 9]>());
        const { assert!(MIN_REGION <= 1024) };
    }

    #[test]
    fn create_places_metadata_at_the_top() {
        #[repr(align(64))]
        struct Mem([u8; 4096]);
        let mut mem = Mem([0; 4096]);
        let start = mem.0.as_mut_ptr();
        // SAFETY: `mem` outlives the region, which is only inspected here.
        let region = unsafe { Region::create(start.wrapping_add(3), 4000) }.unwrap();
        // SAFETY: `create` wrote the header.
        let r = unsafe { &*region };
        assert_eq!(r.lo, align_up(start.addr() + 3).unwrap());
        assert_eq!(r.top(), align_down(start.addr() + 4003));
        assert!(r.meta() > r.lo && r.meta() < r.top());
        assert_eq!(region.addr(), r.meta());
        // SAFETY: in range.
        unsafe {
            assert!(r.map.has(r.unit(r.meta()), Mark::Alloc));
            assert!(!r.map.any(0, r.unit(r.meta())));
            assert_eq!(r.map.count_free(r.unit(r.top() - MIN_BLOCK) + 1), 0);
        }
        assert!(r.holds(r.lo, MIN_BLOCK));
        assert!(!r.holds(r.lo - MIN_BLOCK, MIN_BLOCK));
        assert!(!r.holds(r.top() - MIN_BLOCK, 2 * MIN_BLOCK));
        assert!(!r.contains(r.top()));
    }

    #[test]
    fn create_rejects_bad_ranges() {
        let mut mem = [0u8; 64];
        let p = mem.as_mut_ptr();
        // SAFETY: every call fails before writing anything.
        unsafe {
            assert_eq!(Region::create(core::ptr::null_mut(), 4096).unwrap_err(), HeapError::NullStart);
            // Two units hold no region on any target: the header alone takes two (eight words),
            // and the bitmap at least one more. (64 bytes is not enough to fail on 32-bit
            // targets when the array happens to be 16-aligned: four units, three of metadata.)
            const SMALL: usize = 2 * MIN_BLOCK;
            const { assert!(SMALL < MIN_REGION) };
            assert!(matches!(Region::create(p, SMALL), Err(HeapError::TooSmall { size: SMALL, .. })));
            assert!(matches!(Region::create(p, 0), Err(HeapError::TooSmall { .. })));
            let top = p.with_addr(usize::MAX - 8);
            assert_eq!(Region::create(top, 16).unwrap_err(), HeapError::Overflow);
        }
    }
}
