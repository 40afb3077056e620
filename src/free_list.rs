//! The intrusive, doubly linked free list of one order, and the bounded cache of one small order.
//!
//! A free block holds its own list node in its first bytes: the heap needs no memory of its own
//! for free blocks. The list is doubly linked so that a block whose buddy is being merged leaves
//! its list in O(1), wherever it is; no list is ever walked on the allocation path. A cache
//! ([`CacheList`]) holds its few blocks' addresses in the heap instead.

use core::fmt;
use core::ptr::{self, NonNull};

use crate::region::Region;

/// The node written into the first bytes of every free block on a free list.
#[repr(C)]
#[derive(Debug)]
pub(crate) struct FreeNode {
    /// The next block of the same order, or null.
    pub(crate) next: *mut FreeNode,
    /// The previous block of the same order, or null for the head.
    pub(crate) prev: *mut FreeNode,
    /// The order of this block: the list it is on.
    pub(crate) order: usize,
    /// The region this block lies in.
    pub(crate) region: *mut Region,
}

/// The free blocks of one order.
#[derive(Debug)]
pub(crate) struct FreeList {
    head: *mut FreeNode,
    /// Number of blocks on the list (Linux's `nr_free`).
    pub(crate) nr_free: usize,
    /// The lower address of a buddy pair on this list whose merge was deferred, or 0. See
    /// `Heap::free_block`.
    pub(crate) deferred: usize,
}

impl FreeList {
    /// An empty list.
    pub(crate) const EMPTY: FreeList = FreeList { head: ptr::null_mut(), nr_free: 0, deferred: 0 };

    /// The first block, or null.
    #[inline(always)]
    pub(crate) fn head(&self) -> *mut FreeNode {
        self.head
    }

    /// Writes a node into the block at `node` and puts it at the head of the list.
    ///
    /// # Safety
    ///
    /// 1. `node` must be valid for writes of a `FreeNode`, aligned, and not on any list.
    /// 2. Every node on the list must be valid for reads and writes.
    #[inline(always)]
    pub(crate) unsafe fn push(&mut self, node: *mut FreeNode, order: usize, region: *mut Region) {
        let head = self.head;
        // SAFETY: (1) `node` is valid for writes of a node.
        unsafe { node.write(FreeNode { next: head, prev: ptr::null_mut(), order, region }) };
        if !head.is_null() {
            // SAFETY: (2) the head is a node on the list.
            unsafe { (*head).prev = node };
        }
        self.head = node;
        self.nr_free += 1;
    }

    /// Takes the first block off the list, or returns null if it is empty.
    ///
    /// # Safety
    ///
    /// Every node on the list must be valid for reads and writes.
    #[inline(always)]
    pub(crate) unsafe fn pop(&mut self) -> *mut FreeNode {
        let node = self.head;
        if !node.is_null() {
            // SAFETY: `node` is the head of the list, so valid for reads.
            let next = unsafe { (*node).next };
            if !next.is_null() {
                // SAFETY: `next` is on the list.
                unsafe { (*next).prev = ptr::null_mut() };
            }
            self.head = next;
            self.nr_free -= 1;
        }
        node
    }

    /// Takes `node` off the list, wherever it is, in O(1).
    ///
    /// # Safety
    ///
    /// 1. `node` must be on this list.
    /// 2. Every node on the list must be valid for reads and writes.
    #[inline(always)]
    pub(crate) unsafe fn remove(&mut self, node: *mut FreeNode) {
        // SAFETY: (1) and (2): `node` is a valid node of this list.
        let FreeNode { next, prev, .. } = unsafe { node.read() };
        if prev.is_null() {
            debug_assert!(self.head == node, "free list head is not {node:#p}");
            self.head = next;
        } else {
            // SAFETY: (2) `prev` is on the list.
            unsafe { (*prev).next = next };
        }
        if !next.is_null() {
            // SAFETY: (2) `next` is on the list.
            unsafe { (*next).prev = prev };
        }
        self.nr_free -= 1;
    }
}

/// Most blocks one cache holds; [`Heap::with_cache`](crate::Heap::with_cache) caps its limit
/// here. A power of two, so that a slot's index is masked into range instead of tested.
pub(crate) const CACHE_SLOTS: usize = 16;

static_assertions::const_assert!(CACHE_SLOTS.is_power_of_two());

/// Free blocks of one small order, held back from the free lists (unmerged) so that the next
/// request of that size takes one in a few instructions. LIFO, bounded by the heap's cache limit.
///
/// The blocks' addresses are kept here, in the heap, not in the blocks. Taking a block reads
/// nothing from it, and holding one writes nothing into it, so a write into a cached block (a use
/// after free) cannot corrupt the cache. A list threaded through the blocks made a 4 KiB alloc +
/// free pair through `LockedHeap` about 4% slower (two stores into the block, and a load from it
/// that the allocation's next steps waited for; interleaved quick runs of the pairs table, ours /
/// `buddy_system_allocator` at 4 KiB: 1.068x with the list, 1.029x without).
pub(crate) struct CacheList {
    /// Blocks held: `slots[..len]`, the most recent last. At most [`CACHE_SLOTS`].
    len: usize,
    slots: [NonNull<u8>; CACHE_SLOTS],
}

impl CacheList {
    /// An empty cache.
    pub(crate) const EMPTY: CacheList = CacheList { len: 0, slots: [NonNull::dangling(); CACHE_SLOTS] };

    /// Blocks held.
    #[inline(always)]
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// The blocks held, the most recent last.
    pub(crate) fn blocks(&self) -> &[NonNull<u8>] {
        &self.slots[..self.len]
    }

    /// The most recent block, left held.
    #[inline(always)]
    pub(crate) fn last(&self) -> Option<NonNull<u8>> {
        // (`len - 1 < CACHE_SLOTS`: the mask changes nothing.)
        self.len.checked_sub(1).map(|top| self.slots[top & (CACHE_SLOTS - 1)])
    }

    /// Holds `block` if fewer than `limit` blocks are held; returns whether it did.
    ///
    /// `limit` must be at most [`CACHE_SLOTS`] (the heap's cache limit is).
    #[inline(always)]
    pub(crate) fn push(&mut self, block: NonNull<u8>, limit: usize) -> bool {
        debug_assert!(limit <= CACHE_SLOTS, "cache limit {limit} above {CACHE_SLOTS}");
        if self.len >= limit {
            return false;
        }
        // (`len < limit <= CACHE_SLOTS`: the mask changes nothing.)
        self.slots[self.len & (CACHE_SLOTS - 1)] = block;
        self.len += 1;
        true
    }

    /// Takes the most recent block.
    #[inline(always)]
    pub(crate) fn pop(&mut self) -> Option<NonNull<u8>> {
        let block = self.last()?;
        self.len -= 1;
        Some(block)
    }
}

impl fmt::Debug for CacheList {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.blocks()).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::mem::MaybeUninit;

    fn nodes<const N: usize>() -> [MaybeUninit<FreeNode>; N] {
        [const { MaybeUninit::uninit() }; N]
    }

    /// Walks the list from the head, checking the back links, and returns the nodes in order.
    fn walk(list: &FreeList, out: &mut [*mut FreeNode]) -> usize {
        let mut n = 0;
        let mut prev = ptr::null_mut();
        let mut at = list.head();
        while !at.is_null() {
            // SAFETY: the test's nodes live for the whole test.
            let node = unsafe { &*at };
            assert_eq!(node.prev, prev);
            out[n] = at;
            n += 1;
            prev = at;
            at = node.next;
        }
        assert_eq!(n, list.nr_free);
        n
    }

    #[test]
    fn push_pop_is_lifo() {
        let mut mem = nodes::<3>();
        let p: [*mut FreeNode; 3] = core::array::from_fn(|i| mem[i].as_mut_ptr());
        let mut list = FreeList::EMPTY;
        for (i, &node) in p.iter().enumerate() {
            // SAFETY: distinct, valid, unlisted nodes.
            unsafe { list.push(node, i, ptr::null_mut()) };
        }
        let mut seen = [ptr::null_mut(); 3];
        assert_eq!(walk(&list, &mut seen), 3);
        assert_eq!(seen, [p[2], p[1], p[0]]);
        // SAFETY: the nodes are valid and on the list.
        unsafe {
            assert_eq!(list.pop(), p[2]);
            assert_eq!(list.pop(), p[1]);
            assert_eq!(list.pop(), p[0]);
            assert!(list.pop().is_null());
        }
        assert_eq!(list.nr_free, 0);
    }

    #[test]
    fn remove_anywhere() {
        for victim in 0..4 {
            let mut mem = nodes::<4>();
            let p: [*mut FreeNode; 4] = core::array::from_fn(|i| mem[i].as_mut_ptr());
            let mut list = FreeList::EMPTY;
            for &node in &p {
                // SAFETY: distinct, valid, unlisted nodes.
                unsafe { list.push(node, 0, ptr::null_mut()) };
            }
            // SAFETY: `p[victim]` is on the list.
            unsafe { list.remove(p[victim]) };
            let mut seen = [ptr::null_mut(); 4];
            let n = walk(&list, &mut seen);
            assert_eq!(n, 3);
            assert!(!seen[..n].contains(&p[victim]));
            // The rest keep their order (head first: 3, 2, 1, 0).
            let expect: Vec<_> = p.iter().rev().copied().filter(|&q| q != p[victim]).collect();
            assert_eq!(&seen[..n], expect.as_slice());
        }
    }

    #[test]
    fn a_cache_is_lifo_and_bounded() {
        let mut mem = [0u8; 4];
        let p: [NonNull<u8>; 4] = core::array::from_fn(|i| NonNull::from(&mut mem[i]));
        let mut cache = CacheList::EMPTY;
        assert_eq!(cache.pop(), None);
        assert!(cache.push(p[0], 2) && cache.push(p[1], 2));
        assert!(!cache.push(p[2], 2), "the limit is reached");
        assert_eq!(cache.blocks(), [p[0], p[1]]);
        // A higher limit takes more; a lower one keeps what is held.
        assert!(cache.push(p[2], 3));
        assert!(!cache.push(p[3], 1));
        assert_eq!(cache.len(), 3);
        assert_eq!(cache.last(), Some(p[2]));
        assert_eq!([cache.pop(), cache.pop(), cache.pop()], [Some(p[2]), Some(p[1]), Some(p[0])]);
        assert_eq!(cache.pop(), None);
        // Full to the most slots there are.
        for _ in 0..CACHE_SLOTS {
            assert!(cache.push(p[0], CACHE_SLOTS));
        }
        assert!(!cache.push(p[0], CACHE_SLOTS));
        assert_eq!(cache.len(), CACHE_SLOTS);
    }
}
