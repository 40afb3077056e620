//! Orders, block sizes and buddy arithmetic.
//!
//! A block of order `k` is `MIN_BLOCK << k` bytes long and starts at an address that is a
//! multiple of its size ("naturally aligned"). All arithmetic is on addresses as `usize`, never
//! on `isize` offsets, so a heap in the upper half of the address space behaves exactly like one
//! in the lower half.
//!
//! For a block at address `a` of size `s` (a power of two, `a % s == 0`):
//!
//! - its buddy is `a ^ s`, the other half of the block of size `2 * s` that contains it;
//! - its parent (the merged block) starts at `a & !s`.
//!
//! Worked example with `s = 0x20` (order 0 on a 64-bit target): the block at `0x1040` has the
//! buddy `0x1040 ^ 0x20 = 0x1060` and the parent `0x1040 & !0x20 = 0x1040`; the block at `0x1060`
//! has the buddy `0x1040` and the same parent. At order 1 (`s = 0x40`) the parent `0x1040` has the
//! buddy `0x1000`, and so on upwards.

use core::alloc::Layout;

use crate::free_list::FreeNode;

/// Bits in a machine word.
pub(crate) const WORD_BITS: usize = usize::BITS as usize;

/// The smallest block: large enough to hold a [`FreeNode`] while the block is free.
pub(crate) const MIN_BLOCK: usize = size_of::<FreeNode>().next_power_of_two();

/// `log2(MIN_BLOCK)`.
pub(crate) const MIN_SHIFT: u32 = MIN_BLOCK.trailing_zeros();

/// The largest order any heap can use on this target: `MIN_BLOCK << ORDER_LIMIT` is the largest
/// power of two a `usize` holds.
pub(crate) const ORDER_LIMIT: usize = (usize::BITS - 1 - MIN_SHIFT) as usize;

static_assertions::const_assert!(MIN_BLOCK.is_power_of_two());
static_assertions::const_assert!(MIN_BLOCK >= size_of::<FreeNode>());
static_assertions::const_assert!(MIN_BLOCK >= align_of::<FreeNode>());
static_assertions::const_assert!(MIN_BLOCK >= size_of::<usize>());

/// The largest order (inclusive) of a heap with `orders` free lists: `orders - 1`, capped at the
/// largest block the address space can hold.
pub(crate) const fn max_order(orders: usize) -> usize {
    if orders - 1 < ORDER_LIMIT { orders - 1 } else { ORDER_LIMIT }
}

/// Bytes in a block of order `order`. The caller keeps `order <= ORDER_LIMIT`.
#[inline(always)]
pub(crate) const fn block_size(order: usize) -> usize {
    MIN_BLOCK << order
}

/// How the heap sizes the memory behind an allocation.
///
/// The setting is fixed when the heap is made ([`Heap::with_fit`](crate::Heap::with_fit),
/// [`LockedHeap::with_fit`](crate::LockedHeap::with_fit)). Whatever it is, `dealloc` finds the
/// memory an allocation holds from its layout and the heap's bitmap.
///
/// Measured with `cargo bench --bench compare` (see the README's table for the figures of the
/// last run): on talc's heap-efficiency workload, [`Fit::Adaptive`] and [`Fit::Exact`] hold 91% of
/// the arena as requested bytes at the first failure, [`Fit::PowerOfTwo`] 65% (talc: 95%); on
/// talc's random-actions workload [`Fit::Adaptive`] and [`Fit::PowerOfTwo`] run at about talc's
/// speed or faster, [`Fit::Exact`] at 0.4-0.7x.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Fit {
    /// Whole power-of-two blocks while less than a third of the heap is allocated, only the
    /// minimum blocks a request needs after that, as [`Fit::Exact`] (with its placement): with
    /// memory to spare, trimming saves nothing that is needed and costs time; when memory gets
    /// short, every allocation made from then on is exact. An allocation keeps what it was given
    /// until it is freed or resized. The default: about as fast as [`Fit::PowerOfTwo`], and
    /// holding as much as [`Fit::Exact`] when the heap fills up.
    #[default]
    Adaptive,
    /// Keep the whole power-of-two block, as classic buddy allocators do: a 4097-byte request
    /// holds 8 KiB. Allocation and free touch one block per order at most.
    PowerOfTwo,
    /// Keep only the minimum blocks the request needs and give the rest back to the free lists
    /// at once, as Linux's `alloc_pages_exact` does: a 4097-byte request holds 4128 bytes (on a
    /// 64-bit target), and 8 bytes aligned to 4096 hold one minimum block. A request above 8
    /// minimum blocks first goes to the best-fitting hole (a run of free blocks between
    /// allocations) among the few it looks at, and splits a block only when none fits, so the
    /// tails other allocations gave back are filled before whole blocks are cut (while the heap is
    /// less than 1/8 allocated, it splits a block without looking). Each allocation holds the
    /// least memory from the start, at the price of a split on allocation and a bounded search.
    Exact,
}

/// What the heap needs for one layout: a free block of order `order`, of which it keeps the
/// first `units` minimum blocks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Request {
    /// Order of the block the request is carved from. Its size covers both the size and the
    /// alignment of the layout.
    pub(crate) order: usize,
    /// Minimum blocks kept for the allocation, `1..=2^order`.
    pub(crate) units: usize,
}

impl Request {
    /// The request for `layout`, or `None` when no block of order `max_order` or below can hold
    /// it. A zero-size layout is served like a one-byte layout.
    #[inline(always)]
    pub(crate) const fn new(layout: Layout, fit: Fit, max_order: usize) -> Option<Self> {
        // The order covers both the size and the alignment: that of the smallest power of two
        // that is at least both and at least `MIN_BLOCK`.
        let size = layout.size();
        let order = layout_order(size, layout.align());
        if order > max_order {
            return None;
        }
        let units = match fit {
            Fit::Exact | Fit::Adaptive => units_of(size),
            Fit::PowerOfTwo => 1 << order,
        };
        Some(Request { order, units })
    }

    /// Whether the allocation keeps fewer units than its order's block.
    #[inline(always)]
    pub(crate) const fn is_partial(self) -> bool {
        self.units != 1 << self.order
    }

    /// Bytes kept for the allocation.
    #[inline(always)]
    pub(crate) const fn bytes(self) -> usize {
        self.units << MIN_SHIFT
    }
}

/// The order of the smallest block that covers both `size` and `align` (a power of two): the
/// smallest power of two that is at least both and at least `MIN_BLOCK`, as an order. That is
/// `ceil(log2(max(size, align))) - MIN_SHIFT`, floored at 0, with `ceil(log2(x))` the bit length
/// of `x - 1`; or-ing in `MIN_BLOCK - 1` floors it and keeps the bit scan's input non-zero, so
/// it is one `or` and one bit scan, with no branch and no zero case.
#[inline(always)]
pub(crate) const fn layout_order(size: usize, align: usize) -> usize {
    let covered = if size > align { size } else { align };
    // `align >= 1`, so `covered - 1` cannot wrap.
    floor_log2((covered - 1) | (MIN_BLOCK - 1)) + 1 - MIN_SHIFT as usize
}

/// Minimum blocks that hold `size` bytes under [`Fit::Exact`]: at least one, so that a zero-size
/// allocation is a unique block.
#[inline(always)]
pub(crate) const fn units_of(size: usize) -> usize {
    // `Layout` keeps `size <= isize::MAX`, so adding `MIN_BLOCK - 1` cannot overflow.
    match (size + MIN_BLOCK - 1) >> MIN_SHIFT {
        0 => 1,
        n => n,
    }
}

/// `floor(log2(n))` for `n >= 1`.
#[inline(always)]
pub(crate) const fn floor_log2(n: usize) -> usize {
    (usize::BITS - 1 - n.leading_zeros()) as usize
}

/// The largest naturally aligned block that starts at `addr` and ends at or before `end`, capped
/// at `max_order`. The caller keeps `addr < end` and both multiples of `MIN_BLOCK`.
///
/// Cutting `[addr, end)` with this function from the bottom up gives the fewest blocks that tile
/// the range, and no two of them are buddies (otherwise their parent would have been taken).
#[inline(always)]
pub(crate) const fn piece_order(addr: usize, end: usize, max_order: usize) -> usize {
    // `addr` is a multiple of MIN_BLOCK, so its lowest set bit is at least MIN_SHIFT; address 0
    // is aligned to everything.
    let align = if addr == 0 { usize::BITS - 1 } else { addr.trailing_zeros() } - MIN_SHIFT;
    let fits = floor_log2(end - addr) as u32 - MIN_SHIFT;
    let order = if align < fits { align } else { fits } as usize;
    if order < max_order { order } else { max_order }
}

/// Rounds `addr` up to a multiple of `MIN_BLOCK`, or `None` on overflow.
#[inline]
pub(crate) const fn align_up(addr: usize) -> Option<usize> {
    match addr.checked_add(MIN_BLOCK - 1) {
        Some(a) => Some(a & !(MIN_BLOCK - 1)),
        None => None,
    }
}

/// Rounds `addr` down to a multiple of `MIN_BLOCK`.
#[inline]
pub(crate) const fn align_down(addr: usize) -> usize {
    addr & !(MIN_BLOCK - 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layout(size: usize, align: usize) -> Layout {
        Layout::from_size_align(size, align).unwrap()
    }

    #[test]
    fn min_block_holds_a_node() {
        assert_eq!(MIN_BLOCK, 4 * size_of::<usize>());
        assert_eq!(1 << MIN_SHIFT, MIN_BLOCK);
    }

    #[test]
    fn logs() {
        assert_eq!(floor_log2(1), 0);
        assert_eq!(floor_log2(3), 1);
        assert_eq!(floor_log2(usize::MAX), usize::BITS as usize - 1);
    }

    #[test]
    fn max_order_is_capped_by_the_address_space() {
        assert_eq!(max_order(1), 0);
        assert_eq!(max_order(32), 31.min(ORDER_LIMIT));
        assert_eq!(max_order(usize::BITS as usize), ORDER_LIMIT);
        // The largest block still fits in a usize.
        assert!(block_size(ORDER_LIMIT).is_power_of_two());
        assert_eq!(block_size(ORDER_LIMIT), 1 << (usize::BITS - 1));
    }

    #[test]
    fn request_order_covers_size_and_alignment() {
        // The order is that of the smallest block that holds the size and is aligned enough,
        // found here the slow way.
        let max = max_order(32);
        for size in (0..if cfg!(miri) { 300 } else { 3000 }).chain([4095, 4096, 4097, 1 << 20, (1 << 20) + 1])
        {
            for align_log in 0..16 {
                let align = 1usize << align_log;
                let request = Request::new(layout(size, align), Fit::PowerOfTwo, max).unwrap();
                let order = (0..).find(|&k| block_size(k) >= size && block_size(k) >= align).unwrap();
                assert_eq!(request.order, order, "{size} bytes at align {align}");
                assert_eq!(request.units, 1 << order);
                let exact = Request::new(layout(size, align), Fit::Exact, max).unwrap();
                assert_eq!((exact.order, exact.units), (order, size.div_ceil(MIN_BLOCK).max(1)));
            }
        }
        // The largest layouts: the order is still exact (no overflow), that of the largest
        // block the address space holds, and refused by a heap whose largest order is lower.
        let huge = isize::MAX as usize - 7;
        assert_eq!(layout_order(huge, 8), ORDER_LIMIT);
        assert_eq!(layout_order(1, 1 << (usize::BITS - 2)), ORDER_LIMIT - 1);
        assert_eq!(
            Request::new(layout(huge, 8), Fit::Exact, ORDER_LIMIT).map(|r| r.order),
            Some(ORDER_LIMIT)
        );
        assert!(Request::new(layout(huge, 8), Fit::Exact, ORDER_LIMIT - 1).is_none());
    }

    #[test]
    fn request_exact_and_power_of_two() {
        let max = max_order(32);
        // Zero and one byte take one minimum block.
        let r = Request::new(layout(0, 1), Fit::Exact, max).unwrap();
        assert_eq!((r.order, r.units), (0, 1));
        let r = Request::new(layout(1, 1), Fit::Exact, max).unwrap();
        assert_eq!((r.order, r.units), (0, 1));
        // Three minimum blocks come from an order-2 block; exact keeps three, pow2 keeps four.
        let r = Request::new(layout(2 * MIN_BLOCK + 1, 8), Fit::Exact, max).unwrap();
        assert_eq!((r.order, r.units), (2, 3));
        let r = Request::new(layout(2 * MIN_BLOCK + 1, 8), Fit::PowerOfTwo, max).unwrap();
        assert_eq!((r.order, r.units), (2, 4));
        // A large alignment raises the order but not the units kept.
        let r = Request::new(layout(8, 4096), Fit::Exact, max).unwrap();
        assert_eq!(r.units, 1);
        assert_eq!(block_size(r.order), 4096);
        let r = Request::new(layout(8, 4096), Fit::PowerOfTwo, max).unwrap();
        assert_eq!(r.bytes(), 4096);
    }

    #[test]
    fn request_too_large_is_none() {
        let max = max_order(8);
        assert!(Request::new(layout(block_size(7), 1), Fit::Exact, max).is_some());
        assert!(Request::new(layout(block_size(7) + 1, 1), Fit::Exact, max).is_none());
        assert!(Request::new(layout(1, block_size(8)), Fit::Exact, max).is_none());
        // The largest layout there is needs the largest order the address space allows.
        let huge = layout(isize::MAX as usize, 1);
        assert_eq!(Request::new(huge, Fit::Exact, ORDER_LIMIT).unwrap().order, ORDER_LIMIT);
        assert!(Request::new(huge, Fit::Exact, ORDER_LIMIT - 1).is_none());
        let big_align = layout(1, block_size(10));
        assert_eq!(Request::new(big_align, Fit::Exact, 10).unwrap().order, 10);
        assert!(Request::new(big_align, Fit::Exact, 9).is_none());
    }

    #[test]
    fn buddy_and_parent() {
        let s = block_size(0);
        let a = 0x1000 + 2 * s;
        assert_eq!(a ^ s, a + s);
        assert_eq!((a + s) ^ s, a);
        assert_eq!((a + s) & !s, a);
        // Upper half of the address space: the same rules, no sign trouble.
        let hi = usize::MAX - block_size(3) + 1;
        assert_eq!(hi ^ block_size(2), hi + block_size(2));
        assert_eq!((hi + block_size(2)) & !block_size(2), hi);
    }

    #[test]
    fn pieces_tile_a_range() {
        for (lo, hi) in [(0usize, 37usize), (3, 64), (5, 6), (1, 1000), (96, 97)] {
            let (lo, hi) = (lo * MIN_BLOCK, hi * MIN_BLOCK);
            let mut at = lo;
            let mut last: Option<(usize, usize)> = None;
            while at < hi {
                let k = piece_order(at, hi, ORDER_LIMIT);
                assert_eq!(at % block_size(k), 0, "piece at {at:#x} is not aligned");
                assert!(at + block_size(k) <= hi);
                if let Some((pa, pk)) = last {
                    assert!(!(pk == k && pa ^ block_size(k) == at), "buddies in a tiling");
                }
                last = Some((at, k));
                at += block_size(k);
            }
            assert_eq!(at, hi);
        }
        // Capped by the largest order.
        assert_eq!(piece_order(0, block_size(10), 3), 3);
        // At the top of the address space.
        let top = align_down(usize::MAX);
        assert_eq!(piece_order(top - MIN_BLOCK, top, ORDER_LIMIT), 0);
    }

    #[test]
    fn alignment_helpers() {
        assert_eq!(align_up(1), Some(MIN_BLOCK));
        assert_eq!(align_up(MIN_BLOCK), Some(MIN_BLOCK));
        assert_eq!(align_up(usize::MAX), None);
        assert_eq!(align_down(MIN_BLOCK + 1), MIN_BLOCK);
    }
}
