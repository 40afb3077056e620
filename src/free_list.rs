//! The intrusive, doubly linked free list of one order, and the bounded cache of one small order.
//!
//! A free block holds its own list node in its first bytes: the heap needs no memory of its own
//! for free blocks. The list is doubly linked so that a block whose buddy is being merged leaves
//! its list in O(1), wherever it is; no list is ever walked on the allocation path. A cache
//! ([`CacheList`]) holds its few blocks' addresses in the heap instead, and names the block it
//! served last.

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

/// Most blocks one cache holds marked cached; [`Heap::with_cache`](crate::Heap::with_cache) caps
/// its limit here. (The hot block is held besides them.)
pub(crate) const CACHE_SLOTS: usize = 16;

/// The value of [`CacheList::hint`] that names no block: odd, so no block's address.
const NO_HINT: usize = 1;

/// Free blocks of one small order, held back from the free lists (unmerged) so that the next
/// request of that size takes one in a few instructions. LIFO, bounded by the heap's cache limit.
///
/// The blocks' addresses are kept here, in the heap, not in the blocks. Taking a block reads
/// nothing from it, and holding one writes nothing into it, so a write into a cached block (a use
/// after free) cannot corrupt the cache. A list threaded through the blocks made a 4 KiB alloc +
/// free pair through `LockedHeap` about 4% slower (two stores into the block, and a load from it
/// that the allocation's next steps waited for; interleaved quick runs of the pairs table, ours /
/// `buddy_system_allocator` at 4 KiB: 1.068x with the list, 1.029x without).
///
/// The blocks in `slots` are marked cached in their region's bitmap. One more, the hot block, is
/// held without the mark, below them (taken when `slots` is empty); see [`CacheList::hold_hot`].
/// A cache is 19 words (152 bytes on 64-bit targets).
pub(crate) struct CacheList {
    /// The hot block, or null. Taken when `slots` is empty.
    hot: *mut u8,
    /// The address of the allocation of this order that the cache served last, or [`NO_HINT`]
    /// (see [`CacheList::hold_hot`]). Never dereferenced.
    hint: usize,
    /// Blocks held marked: `slots[..len]`, the most recent last.
    len: usize,
    slots: [NonNull<u8>; CACHE_SLOTS],
}

static_assertions::const_assert_eq!(size_of::<CacheList>(), (3 + CACHE_SLOTS) * size_of::<usize>());

impl CacheList {
    /// An empty cache.
    pub(crate) const EMPTY: CacheList =
        CacheList { hot: ptr::null_mut(), hint: NO_HINT, len: 0, slots: [NonNull::dangling(); CACHE_SLOTS] };

    /// Blocks held.
    #[inline(always)]
    pub(crate) fn len(&self) -> usize {
        usize::from(!self.hot.is_null()) + self.len
    }

    /// The blocks held, the hot one first, and whether each is marked cached.
    pub(crate) fn blocks(&self) -> impl Iterator<Item = (*mut u8, bool)> + '_ {
        let hot = (!self.hot.is_null()).then_some((self.hot, false));
        hot.into_iter().chain(self.slots[..self.len].iter().map(|block| (block.as_ptr(), true)))
    }

    /// The hint, if it names a block.
    pub(crate) fn hint(&self) -> Option<usize> {
        (self.hint != NO_HINT).then_some(self.hint)
    }

    /// Whether the block at `addr` is the hot block. (No block is at address 0.)
    #[inline(always)]
    pub(crate) fn is_hot(&self, addr: usize) -> bool {
        self.hot.addr() == addr
    }

    /// Holds `block` as the hot block if the cache is empty, has a limit, and its hint names
    /// `block`; returns whether it did.
    ///
    /// The heap keeps the hint's promise: while the hint names a block, that block is a live
    /// allocation of one whole block of this order, or held by this cache. With the cache empty,
    /// the block is then live and whole, and its free needs no look at the bitmap: a program that
    /// allocates a block, uses it and frees it, again and again (a temporary), frees it without
    /// a load from the bitmap or a write to it, and allocates it again without a write either.
    /// Any other order of frees fails the comparison with the hint every time, so the branch is
    /// predicted either way, and the hint is all such a free loads first.
    ///
    /// (An unmarked first block in any empty cache, whatever came before, made a 4 KiB pair
    /// nearly as cheap, but the branch between that block and the marked ones was a coin toss on
    /// random sizes: 3-6% slower random actions at 200 B in interleaved runs, about 0.1 more
    /// mispredicted branches an operation in cachegrind.)
    #[inline(always)]
    pub(crate) fn hold_hot(&mut self, block: *mut u8, limit: usize) -> bool {
        // The hint first, alone: any other order of frees fails it, and then nothing else is
        // loaded, and no register is spent on it.
        if self.hint != block.addr() {
            return false;
        }
        if (self.hot.addr() | self.len | usize::from(limit == 0)) != 0 {
            return false;
        }
        self.hot = block;
        true
    }

    /// Names the allocation at `addr`, just served whole from this cache, in the hint.
    #[inline(always)]
    pub(crate) fn set_hint(&mut self, addr: usize) {
        self.hint = addr;
    }

    /// Drops the hint if it names `addr`: the allocation there may no longer be live and whole
    /// (freed to the free lists, resized, or kept in part).
    #[inline(always)]
    pub(crate) fn forget(&mut self, addr: usize) {
        if self.hint == addr {
            self.hint = NO_HINT;
        }
    }

    /// Drops the hint, whatever it names.
    #[inline(always)]
    pub(crate) fn forget_all(&mut self) {
        self.hint = NO_HINT;
    }

    /// The most recent block, left held, and whether it is marked cached.
    #[inline(always)]
    pub(crate) fn last(&self) -> Option<(NonNull<u8>, bool)> {
        match self.len.checked_sub(1) {
            // SAFETY: `len <= CACHE_SLOTS` (`push`), so `top` is a slot.
            Some(top) => Some((unsafe { *self.slots.get_unchecked(top) }, true)),
            None => NonNull::new(self.hot).map(|block| (block, false)),
        }
    }

    /// Holds `block`, to be marked cached, if fewer than `limit` blocks are held marked; returns
    /// whether it did.
    ///
    /// `limit` must be at most [`CACHE_SLOTS`] (the heap's cache limit is).
    #[inline(always)]
    pub(crate) fn push(&mut self, block: NonNull<u8>, limit: usize) -> bool {
        debug_assert!(limit <= CACHE_SLOTS, "cache limit {limit} above {CACHE_SLOTS}");
        let len = self.len;
        if len >= limit {
            return false;
        }
        // SAFETY: `len < limit <= CACHE_SLOTS`, so `len` is a slot.
        unsafe { *self.slots.get_unchecked_mut(len) = block };
        self.len = len + 1;
        true
    }

    /// Takes the most recent block, and says whether it was marked cached.
    #[inline(always)]
    pub(crate) fn pop(&mut self) -> Option<(NonNull<u8>, bool)> {
        let (block, marked) = self.last()?;
        if marked {
            self.len -= 1;
        } else {
            self.hot = ptr::null_mut();
        }
        Some((block, marked))
    }
}

impl fmt::Debug for CacheList {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.blocks().map(|(block, _)| block)).finish()
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
        let held = |cache: &CacheList| cache.blocks().collect::<Vec<_>>();
        let mut cache = CacheList::EMPTY;
        assert_eq!(cache.pop(), None);
        assert!(cache.push(p[0], 2) && cache.push(p[1], 2));
        assert!(!cache.push(p[2], 2), "the limit is reached");
        assert_eq!(held(&cache), [(p[0].as_ptr(), true), (p[1].as_ptr(), true)]);
        // A higher limit takes more; a lower one keeps what is held.
        assert!(cache.push(p[2], 3));
        assert!(!cache.push(p[3], 1));
        assert_eq!(cache.len(), 3);
        assert_eq!(cache.last(), Some((p[2], true)));
        assert_eq!(
            [cache.pop(), cache.pop(), cache.pop()],
            [Some((p[2], true)), Some((p[1], true)), Some((p[0], true))]
        );
        assert_eq!(cache.pop(), None);
        // Full to the most slots there are.
        for _ in 0..CACHE_SLOTS {
            assert!(cache.push(p[0], CACHE_SLOTS));
        }
        assert!(!cache.push(p[0], CACHE_SLOTS));
        assert_eq!(cache.len(), CACHE_SLOTS);
    }

    #[test]
    fn the_hot_block_is_the_hinted_one_freed_into_an_empty_cache() {
        let mut mem = [0u8; 4];
        let p: [NonNull<u8>; 4] = core::array::from_fn(|i| NonNull::from(&mut mem[i]));
        let addr = |i: usize| p[i].addr().get();
        let mut cache = CacheList::EMPTY;
        // No hint yet: nothing is held hot.
        assert!(!cache.hold_hot(p[0].as_ptr(), 4));
        cache.set_hint(addr(0));
        // Not with a limit of 0, nor another block, nor while a marked block is held.
        assert!(!cache.hold_hot(p[0].as_ptr(), 0));
        assert!(!cache.hold_hot(p[1].as_ptr(), 4));
        assert!(cache.push(p[2], 4));
        assert!(!cache.hold_hot(p[0].as_ptr(), 4));
        assert_eq!(cache.pop(), Some((p[2], true)));
        // Then it is.
        assert!(cache.hold_hot(p[0].as_ptr(), 4));
        assert!(cache.is_hot(addr(0)) && !cache.is_hot(addr(1)));
        assert!(!cache.hold_hot(p[0].as_ptr(), 4), "a hot block is held once");
        // Marked blocks go above it, and are taken first.
        assert!(cache.push(p[1], 4));
        assert_eq!(cache.blocks().collect::<Vec<_>>(), [(p[0].as_ptr(), false), (p[1].as_ptr(), true)]);
        assert_eq!([cache.pop(), cache.pop(), cache.pop()], [Some((p[1], true)), Some((p[0], false)), None]);
        // A forgotten hint holds nothing; forgetting another address keeps it.
        cache.forget(addr(1));
        assert!(cache.hint().is_some());
        cache.forget(addr(0));
        assert_eq!(cache.hint(), None);
        assert!(!cache.hold_hot(p[0].as_ptr(), 4));
        // The null pointer never matches an empty hint.
        assert!(!cache.hold_hot(core::ptr::null_mut(), 4));
    }
}
