//! The invariant checker: a full walk of every free list, region and bitmap.

use super::Heap;
use crate::bitmap::Mark;
use crate::error::Corruption;
use crate::free_list::FreeNode;
use crate::order::{MIN_SHIFT, block_size};
use crate::region::{Bounds, Region};

impl<const ORDERS: usize> Heap<ORDERS> {
    /// Walks every free list, region and bitmap and checks the heap's invariants:
    ///
    /// - every listed block is linked both ways, of its list's order, naturally aligned, inside
    ///   its region, and marked free (and not allocated) in the region's bitmaps;
    /// - the list lengths match `nr_free`, the bitmask of non-empty orders, and the number of
    ///   free bits in the bitmaps;
    /// - no two free blocks overlap, and no free block overlaps an allocation;
    /// - every cached block is whole, aligned, marked cached (a hot block: allocated), and held
    ///   once; a cache's hint names one of its blocks or a live allocation of one whole block of
    ///   its order;
    /// - no free buddy pair of the same order is left unmerged, except one deferred pair per
    ///   order (see [`Heap::coalesce`]);
    /// - the bitmap's summary marks exactly the map words that have a mark, and the heap's copy
    ///   of the first region's bounds matches the region;
    /// - free bytes plus allocated bytes equal the total.
    ///
    /// It takes time linear in the number of free blocks and minimum blocks, and changes
    /// nothing. Use it in tests, in fuzzing, or in a debug build of a kernel after a suspected
    /// memory error.
    ///
    /// # Errors
    ///
    /// The first broken invariant found, with the address where it was seen.
    pub fn check_invariants(&self) -> Result<(), Corruption> {
        let fail = |what, at: *const u8| Err(Corruption { what, at });
        let mut free_bytes = 0;
        let mut free_blocks = 0;
        for (order, list) in self.lists.iter().enumerate() {
            let size = block_size(order);
            if (self.avail >> order & 1 == 1) != (list.nr_free > 0) {
                return fail("non-empty order mask disagrees with a list", list.head().cast());
            }
            if order > Self::MAX_ORDER && list.nr_free > 0 {
                return fail("block above the largest order", list.head().cast());
            }
            let mut prev: *mut FreeNode = core::ptr::null_mut();
            let mut at = list.head();
            let mut count = 0;
            while !at.is_null() {
                if count == list.nr_free {
                    return fail("free list longer than nr_free (or cyclic)", at.cast());
                }
                // SAFETY: a node reached from a list head; if the heap is intact it is valid.
                // (A corrupted list can point anywhere: this checker is for heaps that are at
                // most corrupted in ways it can still walk.)
                let node = unsafe { &*at };
                let r = self.check_free_block(at.addr(), order, Mark::Free)?;
                if !core::ptr::eq(node.region, r) {
                    return fail("free block outside its region", at.cast());
                }
                if node.order != order {
                    return fail("free block on the wrong list", at.cast());
                }
                if node.prev != prev {
                    return fail("broken back link", at.cast());
                }
                let addr = at.addr();
                if order < Self::MAX_ORDER {
                    let buddy = addr ^ size;
                    // SAFETY: bitmaps and nodes are consistent for the blocks checked so far;
                    // `is_free_block` checks the bit before it reads the node.
                    if unsafe { r.is_free_block(buddy, order) } && list.deferred != (addr & !size) {
                        return fail("free buddies left unmerged", at.cast());
                    }
                }
                free_bytes += size;
                count += 1;
                prev = at;
                at = node.next;
            }
            if count != list.nr_free {
                return fail("free list shorter than nr_free", list.head().cast());
            }
            free_blocks += count;
        }
        // Cached blocks: whole blocks of their order, marked cached (the hot one allocated),
        // each held once. (A cache may hold more than the limit: a lowered limit leaves the
        // blocks held.) A hint names a cached block or a live, whole allocation of its order.
        for (order, cache) in self.cache.iter().enumerate() {
            for (i, (block, marked)) in cache.blocks().enumerate() {
                if cache.blocks().take(i).any(|(other, _)| other == block) {
                    return fail("block cached twice", block);
                }
                let mark = if marked { Mark::Cached } else { Mark::Alloc };
                self.check_free_block(block.addr(), order, mark)?;
                // (A cached block is counted in `allocated_bytes`; only the marked ones have a
                // free bit.)
                free_blocks += usize::from(marked);
            }
            if let Some(hint) = cache.hint() {
                let held = cache.blocks().any(|(block, _)| block.addr() == hint);
                if !held && !self.is_live_whole(hint, order) {
                    return fail(
                        "a cache's hint names no live block of its order",
                        core::ptr::without_provenance(hint),
                    );
                }
            }
        }
        // The copy of the first region's bounds that the quick free reads.
        // SAFETY: the region list holds live headers.
        let first = unsafe { self.regions.as_ref() }.map_or(Bounds::NONE, Region::bounds);
        if self.first != first {
            return fail(
                "the first region's bounds differ from their copy",
                self.regions.cast_const().cast(),
            );
        }
        // Every free bit belongs to a listed or cached block.
        let mut free_bits = 0;
        let mut region = self.regions;
        let mut last_end = 0;
        // SAFETY: the region list holds live headers.
        while let Some(r) = unsafe { region.as_ref() } {
            if r.start < last_end {
                return fail("regions overlap or are out of order", region.cast_const().cast());
            }
            last_end = r.end;
            // SAFETY: the bitmap covers the region's units.
            free_bits += unsafe { r.map.count_free(r.span >> MIN_SHIFT) };
            // SAFETY: as above.
            if !unsafe { r.map.summary_agrees(r.span >> MIN_SHIFT) } {
                return fail("bitmap summary disagrees with the map", region.cast_const().cast());
            }
            region = r.next;
        }
        if free_bits != free_blocks {
            return fail("free bitmap marks blocks that are on no list", core::ptr::null());
        }
        if free_bytes + self.allocated_bytes != self.total_bytes {
            return fail("free + allocated bytes differ from the total", core::ptr::null());
        }
        Ok(())
    }

    /// Checks one listed (`cached` false) or cached block of `order` at `addr`: in a region,
    /// naturally aligned, below the metadata, marked free (or cached), with nothing else
    /// starting inside it. Returns its region. (The callers check the node.)
    /// Whether a live allocation of one whole block of `order` starts at `addr`.
    fn is_live_whole(&self, addr: usize, order: usize) -> bool {
        let Ok(r) = self.check_free_block(addr, order, Mark::Alloc) else { return false };
        let end = r.unit(addr) + (block_size(order) >> MIN_SHIFT);
        // SAFETY: the block is inside the region, below its metadata, so `end` is a unit of it.
        unsafe { r.map.bits(end) != 0 }
    }

    fn check_free_block(&self, addr: usize, order: usize, mark: Mark) -> Result<&Region, Corruption> {
        let fail = |what| Err(Corruption { what, at: core::ptr::without_provenance(addr) });
        let region = self.region_of(addr);
        if region.is_null() {
            return fail("free block outside its region");
        }
        // SAFETY: a live region.
        let r = unsafe { &*region };
        let size = block_size(order);
        if addr % size != 0 || !r.holds(addr, size) || addr + size > r.meta() {
            return fail("free block misaligned or past its region");
        }
        let unit = r.unit(addr);
        // SAFETY: the block is inside the region.
        if unsafe { r.map.bits(unit) } != mark as usize {
            return fail("free block not marked free (or cached)");
        }
        // SAFETY: the block is inside the region.
        if unsafe { r.map.any(unit + 1, unit + (size >> MIN_SHIFT)) } {
            return fail("free block overlaps another block");
        }
        Ok(r)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::alloc::Layout;

    /// A heap over a fresh, leaked, page-aligned 64 KiB arena, with the cache on.
    fn heap() -> Heap<16> {
        let layout = Layout::from_size_align(64 << 10, 4096).unwrap();
        // SAFETY: the layout has a non-zero size.
        let mem = unsafe { std::alloc::alloc(layout) };
        assert!(!mem.is_null());
        let mut heap = Heap::new().with_cache(4);
        // SAFETY: the arena is leaked and used by nothing else.
        unsafe { heap.init(mem, 64 << 10) }.unwrap();
        heap
    }

    #[test]
    fn each_kind_of_corruption_is_reported() {
        // Two minimum blocks: order 1 on every target.
        let l = Layout::from_size_align(2 * Heap::<16>::MIN_BLOCK, 8).unwrap();

        // A free node whose order was overwritten (a use after free).
        let h = heap();
        h.check_invariants().unwrap();
        let node = h.lists.iter().find(|list| !list.head().is_null()).unwrap().head();
        // SAFETY: a valid free node of the heap; corrupting it is the point of the test.
        unsafe { (*node).order += 1 };
        assert_eq!(h.check_invariants().unwrap_err().what, "free block on the wrong list");

        // A broken back link.
        let mut h = heap();
        let a = h.alloc(l).unwrap();
        let b = h.alloc(Layout::from_size_align(4096, 8).unwrap()).unwrap();
        let _ = (a, b);
        let list = h.lists.iter().find(|list| list.nr_free >= 1).unwrap();
        // SAFETY: as above.
        unsafe { (*list.head()).prev = list.head() };
        assert_eq!(h.check_invariants().unwrap_err().what, "broken back link");

        // A miscounted list.
        let mut h = heap();
        let k = h.lists.iter().position(|list| list.nr_free > 0).unwrap();
        h.lists[k].nr_free += 1;
        assert!(h.check_invariants().is_err());

        // A cached block whose free mark was lost.
        let mut h = heap();
        let (q, p) = (h.alloc(l).unwrap(), h.alloc(l).unwrap());
        // SAFETY: `q` and `p` are live with `l`.
        unsafe { (h.dealloc(q, l), h.dealloc(p, l)) };
        assert_eq!(h.cache_len(1), 2, "the order-1 blocks are cached");
        h.check_invariants().unwrap();
        let unit = h.first.unit_of(p.as_ptr().addr()).unwrap();
        // SAFETY: the block at `p` is cached in the first region; clearing its mark is the
        // corruption under test.
        unsafe { h.first.map.uncache(unit) };
        assert_eq!(h.check_invariants().unwrap_err().what, "free block not marked free (or cached)");

        // A block held twice by its cache: two allocations would get it.
        let mut h = heap();
        let p = h.alloc(l).unwrap();
        // SAFETY: `p` is live with `l`.
        unsafe { h.dealloc(p, l) };
        assert!(h.cache[1].push(p, 4));
        assert_eq!(h.check_invariants().unwrap_err().what, "block cached twice");

        // A hint that names a block on a free list: its next free would skip the checks.
        let mut h = heap();
        let (p, q) = (h.alloc(l).unwrap(), h.alloc(l).unwrap());
        // SAFETY: `p` and `q` are live with `l`.
        unsafe { h.dealloc(p, l) };
        assert_eq!(h.alloc(l), Ok(p), "served by the cache");
        h.check_invariants().unwrap();
        // SAFETY: as above.
        unsafe { (h.dealloc(p, l), h.dealloc(q, l)) };
        h.check_invariants().unwrap();
        h.coalesce();
        h.check_invariants().unwrap();
        h.cache[1].set_hint(p.as_ptr().addr());
        assert_eq!(h.check_invariants().unwrap_err().what, "a cache's hint names no live block of its order");

        // A write into a cached block (a use after free) corrupts nothing: the cache keeps its
        // blocks' addresses in the heap.
        let mut h = heap();
        let p = h.alloc(l).unwrap();
        // SAFETY: `p` is live with `l`; the writes after the free are the misuse under test.
        unsafe {
            h.dealloc(p, l);
            p.as_ptr().write_bytes(0xA5, l.size());
        }
        h.check_invariants().unwrap();
        assert_eq!(h.alloc(l), Ok(p));

        // A stale copy of the first region's bounds.
        let mut h = heap();
        h.first = Bounds::NONE;
        assert_eq!(
            h.check_invariants().unwrap_err().what,
            "the first region's bounds differ from their copy"
        );

        // Accounting that no longer adds up.
        let mut h = heap();
        h.allocated_bytes += Heap::<16>::MIN_BLOCK;
        assert_eq!(h.check_invariants().unwrap_err().what, "free + allocated bytes differ from the total");
    }
}
