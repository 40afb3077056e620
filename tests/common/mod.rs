//! Helpers shared by the integration tests: a tiny PRNG, leaked aligned arenas, the expected
//! tiling of a fresh region, and byte patterns for live blocks.
//!
//! Every test binary uses a different subset of these helpers.
#![allow(dead_code)]

use std::alloc::Layout;
use std::mem::MaybeUninit;
use std::ptr::NonNull;
use std::sync::Mutex;

use alloc_buddy_simple::{Fit, Heap, HeapError};

/// Bytes in a minimum block (order 0).
pub(crate) const MIN: usize = Heap::<32>::MIN_BLOCK;

/// A small, deterministic PRNG: splitmix64 to seed, xorshift64* to step.
#[derive(Clone, Debug)]
pub(crate) struct Rng(u64);

impl Rng {
    pub(crate) fn new(seed: u64) -> Self {
        // splitmix64 of the seed, so that small seeds give unrelated streams; never zero.
        let mut z = seed.wrapping_add(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        Rng(if z == 0 { 0x2545_F491_4F6C_DD1D } else { z })
    }

    /// xorshift64*.
    pub(crate) fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Uniform in `0..n` (`n > 0`); the modulo bias is irrelevant here.
    pub(crate) fn below(&mut self, n: usize) -> usize {
        assert!(n > 0);
        (self.next_u64() % n as u64) as usize
    }

    /// Uniform in `lo..=hi`.
    pub(crate) fn range(&mut self, lo: usize, hi: usize) -> usize {
        lo + self.below(hi - lo + 1)
    }

    /// True with probability `num / den`.
    pub(crate) fn chance(&mut self, num: usize, den: usize) -> bool {
        self.below(den) < num
    }

    /// Log-uniform in `1..=max`: a uniform bit length, then a uniform value of that length.
    pub(crate) fn log_uniform(&mut self, max: usize) -> usize {
        assert!(max >= 1);
        let bits = usize::BITS - max.leading_zeros();
        let b = self.range(1, bits as usize);
        let lo = 1usize << (b - 1);
        let hi = ((1usize << (b - 1)) * 2 - 1).min(max);
        self.range(lo, hi)
    }
}

pub(crate) fn layout(size: usize, align: usize) -> Layout {
    Layout::from_size_align(size, align).unwrap()
}

/// A pointer to a leaked arena.
struct Leaked(*mut u8);

// SAFETY: the pointer is only stored, never used through this type.
unsafe impl Send for Leaked {}

/// Every leaked arena, so that it stays reachable from a static: Miri's leak check reports
/// memory that nothing points to at exit, but not memory a static still reaches.
static LEAKED: Mutex<Vec<Leaked>> = Mutex::new(Vec::new());

/// A leaked allocation of `size` bytes aligned to `align`, from the global allocator.
pub(crate) fn leak_arena(size: usize, align: usize) -> *mut u8 {
    let l = layout(size, align);
    assert!(size > 0);
    // SAFETY: the layout has a non-zero size.
    let mem = unsafe { std::alloc::alloc(l) };
    assert!(!mem.is_null(), "arena allocation failed");
    LEAKED.lock().unwrap_or_else(|e| e.into_inner()).push(Leaked(mem));
    mem
}

/// As [`leak_arena`], as a `'static` slice for `add_static_region`.
pub(crate) fn leak_static(size: usize, align: usize) -> &'static mut [MaybeUninit<u8>] {
    let mem = leak_arena(size, align);
    // SAFETY: `mem` holds `size` bytes and is never freed, so the slice lives forever and is
    // the only reference to that memory.
    unsafe { std::slice::from_raw_parts_mut(mem.cast::<MaybeUninit<u8>>(), size) }
}

/// Bytes in a block of order `k`.
pub(crate) const fn block(k: usize) -> usize {
    MIN << k
}

/// Minimum blocks for `size` bytes (a zero size takes one).
pub(crate) fn units(size: usize) -> usize {
    size.div_ceil(MIN).max(1)
}

/// The block order a layout needs: covers the size in units and the alignment.
pub(crate) fn order_of(l: Layout) -> usize {
    let size_order = units(l.size()).next_power_of_two().trailing_zeros() as usize;
    let align_order = (l.align().trailing_zeros() as usize).saturating_sub(MIN.trailing_zeros() as usize);
    size_order.max(align_order)
}

/// Bytes a live allocation of `l` holds under `fit`.
pub(crate) fn held(l: Layout, fit: Fit) -> usize {
    match fit {
        Fit::Exact => units(l.size()) * MIN,
        Fit::PowerOfTwo => block(order_of(l)),
        Fit::Adaptive => panic!("what Fit::Adaptive holds depends on the heap: see `held_adaptive`"),
    }
}

/// A [`Fit::Adaptive`] heap keeps whole blocks while less than `1 / TRIM_PART` of it is
/// allocated (the crate's documented rule: a third).
pub(crate) const TRIM_PART: usize = 3;

/// What a [`Fit::Adaptive`] heap holds for `l`: the whole block while less than `1 / TRIM_PART`
/// of the heap is allocated (`allocated` of `total` bytes, cached blocks included), the units
/// after.
pub(crate) fn held_adaptive(l: Layout, allocated: usize, total: usize) -> usize {
    if allocated < total / TRIM_PART { held(l, Fit::PowerOfTwo) } else { held(l, Fit::Exact) }
}

/// The fewest naturally aligned blocks (capped at `max_order`) that tile `[lo, end)`, bottom up,
/// as `(address, order)`.
pub(crate) fn tiling(lo: usize, end: usize, max_order: usize) -> Vec<(usize, usize)> {
    assert!(lo % MIN == 0 && end % MIN == 0 && lo <= end);
    let mut out = Vec::new();
    let mut at = lo;
    while at < end {
        let mut k = 0;
        while k < max_order && at % block(k + 1) == 0 && at + block(k + 1) <= end {
            k += 1;
        }
        out.push((at, k));
        at += block(k);
    }
    out
}

/// Free blocks by order for the given pieces.
pub(crate) fn histogram<const N: usize>(pieces: &[(usize, usize)]) -> [usize; N] {
    let mut h = [0; N];
    for &(_, k) in pieces {
        h[k] += 1;
    }
    h
}

/// A fresh heap whose only region has exactly `usable` bytes for allocation, starting at the
/// returned (and `usable`-aligned) base: its free memory is one block of `usable` bytes at the
/// base, if `usable` is a power of two no larger than the largest block.
///
/// The region size is found by trying sizes `usable + m` for growing `m`: each try adds the
/// region to a new heap, which is then forgotten (the heap needs no cleanup), so the result does
/// not depend on how large the metadata of this version of the crate is.
pub(crate) fn heap_with_usable<const N: usize>(fit: Fit, usable: usize) -> (Heap<N>, usize) {
    let align = usable.next_power_of_two().max(4096);
    let room = usable + usable / 16 + 4096;
    let mem = leak_arena(room, align);
    let mut m = MIN;
    while usable + m <= room {
        let mut heap = Heap::<N>::with_fit(fit);
        // SAFETY: `mem` is a leaked arena of `room` bytes used by nothing else; the heaps of
        // earlier tries are dropped and never used again.
        match unsafe { heap.init(mem, usable + m) } {
            Ok(()) => {}
            Err(HeapError::TooSmall { .. }) => {
                m += MIN;
                continue;
            }
            Err(e) => panic!("{e}"),
        }
        let total = heap.stats().total_bytes;
        if total == usable {
            return (heap, mem.addr());
        }
        assert!(total < usable, "usable bytes jumped past {usable}: {total}");
        m += MIN;
    }
    panic!("no region size gives {usable} usable bytes");
}

/// Period of the byte patterns: a prime, so that a pattern never lines up with a power-of-two
/// block size.
const PERIOD: usize = 4099;

/// Two periods of the pattern, so that any window of up to `PERIOD` bytes is contiguous.
static PATTERN: [u8; 2 * PERIOD] = {
    let mut t = [0u8; 2 * PERIOD];
    let mut j = 0;
    while j < 2 * PERIOD {
        let k = j % PERIOD;
        t[j] = ((k * 0x9D) ^ (k >> 7) ^ (k >> 3)) as u8;
        j += 1;
    }
    t
};

/// Where the pattern of `tag` starts in [`PATTERN`]: distinct for every tag.
fn phase(tag: u8) -> usize {
    tag as usize * 16
}

/// The pattern byte at index `i` of the block tagged `tag`.
pub(crate) fn pattern(tag: u8, i: usize) -> u8 {
    PATTERN[(phase(tag) + i) % PERIOD]
}

/// Writes the pattern of `tag` into bytes `from..to` of the block. (Copies whole windows of the
/// pattern rather than bytes, which keeps it fast under Miri.)
///
/// # Safety
///
/// `p..p + to` must be valid for writes.
pub(crate) unsafe fn fill(p: NonNull<u8>, tag: u8, from: usize, to: usize) {
    let mut i = from;
    while i < to {
        let s = (phase(tag) + i) % PERIOD;
        let n = (to - i).min(PERIOD);
        // SAFETY: `i + n <= to` (caller); the source window is inside `PATTERN`.
        unsafe { std::ptr::copy_nonoverlapping(PATTERN[s..s + n].as_ptr(), p.as_ptr().add(i), n) };
        i += n;
    }
}

/// Checks the pattern of `tag` in bytes `0..len` of the block; returns the first wrong index.
///
/// # Safety
///
/// `p..p + len` must be valid for reads and initialized.
pub(crate) unsafe fn first_wrong(p: NonNull<u8>, tag: u8, len: usize) -> Option<usize> {
    // SAFETY: valid and initialized for `len` bytes (caller).
    let bytes = unsafe { std::slice::from_raw_parts(p.as_ptr(), len) };
    let mut i = 0;
    while i < len {
        let s = (phase(tag) + i) % PERIOD;
        let n = (len - i).min(PERIOD);
        if bytes[i..i + n] != PATTERN[s..s + n] {
            return (i..i + n).find(|&j| bytes[j] != pattern(tag, j));
        }
        i += n;
    }
    None
}
