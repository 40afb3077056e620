//! The invariant checker: a full walk of every free list, region and bitmap.

use super::Heap;
use crate::bitmap::Mark;
use crate::error::Corruption;
use crate::free_list::{CACHED, FreeNode};
use crate::order::{MIN_SHIFT, block_size};

impl<const ORDERS: usize> Heap<ORDERS> {
    /// Walks every free list, region and bitmap and checks the heap's invariants:
    ///
    /// - every listed block is linked both ways, of its list's order, naturally aligned, inside
    ///   its region, and marked free (and not allocated) in the region's bitmaps;
    /// - the list lengths match `nr_free`, the bitmask of non-empty orders, and the number of
    ///   free bits in the bitmaps;
    /// - no two free blocks overlap, and no free block overlaps an allocation;
    /// - every cached block is whole, aligned, marked free and tagged as cached, and each cache
    ///   holds at most its limit;
    /// - no free buddy pair of the same order is left unmerged, except one deferred pair per
    ///   order (see [`Heap::coalesce`]);
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
                let addr = at.addr();
                let region = self.region_of(addr);
                if region.is_null() || region != node.region {
                    return fail("free block outside its region", at.cast());
                }
                // SAFETY: a live region.
                let r = unsafe { &*region };
                if node.prev != prev {
                    return fail("broken back link", at.cast());
                }
                if node.order != order {
                    return fail("free block on the wrong list", at.cast());
                }
                if addr % size != 0 || !r.holds(addr, size) || addr + size > r.meta {
                    return fail("free block misaligned or past its region", at.cast());
                }
                let unit = r.unit(addr);
                // SAFETY: the block is inside the region.
                if unsafe { r.map.bits(unit) } != Mark::Free as usize {
                    return fail("free block not marked free", at.cast());
                }
                // SAFETY: the block is inside the region.
                if unsafe { r.map.any(unit + 1, unit + (size >> MIN_SHIFT)) } {
                    return fail("free block overlaps another block", at.cast());
                }
                if order < Self::MAX_ORDER {
                    let buddy = addr ^ size;
                    // SAFETY: bitmaps and nodes are consistent for the blocks checked so far;
                    // `is_free_block` checks the bit before it reads the node.
                    if unsafe { r.is_free_block(buddy, order, size) } && list.deferred != (addr & !size) {
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
        // Cached blocks: whole blocks of their order, marked free, tagged as cached.
        for (order, cache) in self.cache.iter().enumerate() {
            let size = block_size(order);
            if cache.len > self.cache_limit {
                return fail("cache holds more blocks than its limit", cache.head().cast());
            }
            let mut at = cache.head();
            let mut count = 0;
            while !at.is_null() {
                if count == cache.len {
                    return fail("cache list longer than its count (or cyclic)", at.cast());
                }
                // SAFETY: a node reached from a cache head; valid if the heap is intact.
                let node = unsafe { &*at };
                let addr = at.addr();
                let region = self.region_of(addr);
                if region.is_null() || region != node.region || node.order != CACHED {
                    return fail("cached block outside its region or not tagged", at.cast());
                }
                // SAFETY: a live region.
                let r = unsafe { &*region };
                if addr % size != 0 || !r.holds(addr, size) || addr + size > r.meta {
                    return fail("cached block misaligned or past its region", at.cast());
                }
                let unit = r.unit(addr);
                // SAFETY: the block is inside the region.
                if unsafe { r.map.bits(unit) } != Mark::Free as usize {
                    return fail("cached block not marked free", at.cast());
                }
                // SAFETY: the block is inside the region.
                if unsafe { r.map.any(unit + 1, unit + (size >> MIN_SHIFT)) } {
                    return fail("cached block overlaps another block", at.cast());
                }
                free_bytes += size;
                count += 1;
                at = node.next;
            }
            if count != cache.len {
                return fail("cache list shorter than its count", cache.head().cast());
            }
            free_blocks += count;
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
}
