//! The buddy-state bitmaps: one bit per minimum block, kept outside the blocks themselves.
//!
//! Each region has two of them, in its metadata:
//!
//! - `free`: the unit is the first unit of a free block (on a free list). With the order stored in
//!   the free block's node, this answers "is my buddy free, and of my order?" in O(1); allocated
//!   data can never fake it, because the bit lives outside the block.
//! - `alloc`: the unit is the first unit of a live allocation (or of the region's metadata). This
//!   catches a double free, or a pointer the heap never gave out, before anything is changed.
//!
//! Every other unit is inside a block that starts earlier. Two bits per unit cost 1/128 of a
//! region on a 64-bit target (32-byte units) and 1/64 on a 32-bit one (16-byte units).

use crate::order::WORD_BITS;

/// A bitmap over `words` machine words, owned by a region.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Bitmap {
    words: *mut usize,
}

impl Bitmap {
    /// Words needed for `bits` bits.
    pub(crate) const fn words_for(bits: usize) -> usize {
        bits.div_ceil(WORD_BITS)
    }

    /// A bitmap over the zeroed words at `words`.
    ///
    /// # Safety
    ///
    /// `words` must be valid for reads and writes of `len` words for as long as the bitmap is
    /// used, and used by nothing else.
    pub(crate) unsafe fn zeroed(words: *mut usize, len: usize) -> Self {
        // SAFETY: the caller gives `len` writable words.
        unsafe { words.write_bytes(0, len) };
        Bitmap { words }
    }

    /// The word holding bit `bit`, and the bit's mask in it.
    ///
    /// # Safety
    ///
    /// `bit` must be below the number of bits the bitmap was made for.
    #[inline(always)]
    unsafe fn word(self, bit: usize) -> (*mut usize, usize) {
        // SAFETY: the caller keeps `bit` in range, so the word is one of ours.
        (unsafe { self.words.add(bit / WORD_BITS) }, 1 << (bit % WORD_BITS))
    }

    /// Whether bit `bit` is set.
    ///
    /// # Safety
    ///
    /// `bit` must be below the number of bits the bitmap was made for.
    #[inline(always)]
    pub(crate) unsafe fn get(self, bit: usize) -> bool {
        // SAFETY: the caller keeps `bit` in range.
        let (word, mask) = unsafe { self.word(bit) };
        // SAFETY: `word` is one of the bitmap's words.
        unsafe { *word & mask != 0 }
    }

    /// Sets bit `bit`.
    ///
    /// # Safety
    ///
    /// `bit` must be below the number of bits the bitmap was made for.
    #[inline(always)]
    pub(crate) unsafe fn set(self, bit: usize) {
        // SAFETY: the caller keeps `bit` in range.
        let (word, mask) = unsafe { self.word(bit) };
        // SAFETY: `word` is one of the bitmap's words.
        unsafe { *word |= mask };
    }

    /// Clears bit `bit`.
    ///
    /// # Safety
    ///
    /// `bit` must be below the number of bits the bitmap was made for.
    #[inline(always)]
    pub(crate) unsafe fn clear(self, bit: usize) {
        // SAFETY: the caller keeps `bit` in range.
        let (word, mask) = unsafe { self.word(bit) };
        // SAFETY: `word` is one of the bitmap's words.
        unsafe { *word &= !mask };
    }

    /// The number of set bits in `0..bits`.
    ///
    /// # Safety
    ///
    /// `bits` must be at most the number of bits the bitmap was made for.
    pub(crate) unsafe fn count(self, bits: usize) -> usize {
        let mut n = 0;
        for w in 0..bits / WORD_BITS {
            // SAFETY: `w` is a whole word below `bits`.
            n += unsafe { *self.words.add(w) }.count_ones() as usize;
        }
        let rest = bits % WORD_BITS;
        if rest != 0 {
            // SAFETY: the last, partial word is below `bits`.
            let last = unsafe { *self.words.add(bits / WORD_BITS) };
            n += (last & (usize::MAX >> (WORD_BITS - rest))).count_ones() as usize;
        }
        n
    }

    /// Whether any bit in `start..end` is set.
    ///
    /// # Safety
    ///
    /// `start <= end`, and `end` must be at most the number of bits the bitmap was made for.
    pub(crate) unsafe fn any(self, start: usize, end: usize) -> bool {
        let mut bit = start;
        while bit < end {
            let in_word = bit % WORD_BITS;
            let take = (WORD_BITS - in_word).min(end - bit);
            let mask = (usize::MAX >> (WORD_BITS - take)) << in_word;
            // SAFETY: `bit < end`, so its word is in range.
            let (word, _) = unsafe { self.word(bit) };
            // SAFETY: `word` is one of the bitmap's words.
            if unsafe { *word } & mask != 0 {
                return true;
            }
            bit += take;
        }
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_get_clear() {
        let mut words = [usize::MAX; 3];
        // SAFETY: three words, used only through the bitmap.
        let map = unsafe { Bitmap::zeroed(words.as_mut_ptr(), 3) };
        let bits = 3 * WORD_BITS;
        for bit in [0, 1, WORD_BITS - 1, WORD_BITS, bits - 1] {
            // SAFETY: `bit < bits`.
            unsafe {
                assert!(!map.get(bit));
                map.set(bit);
                assert!(map.get(bit));
                assert!(map.any(bit, bit + 1));
                assert!(!map.any(bit, bit));
            }
        }
        // SAFETY: in range.
        unsafe {
            assert!(!map.any(2, WORD_BITS - 1));
            assert!(map.any(2, WORD_BITS));
            assert!(map.any(WORD_BITS + 1, bits));
            map.clear(bits - 1);
            assert!(!map.any(WORD_BITS + 1, bits));
            assert!(!map.get(bits - 1));
            assert_eq!(map.count(bits), 4);
            assert_eq!(map.count(WORD_BITS), 3);
            assert_eq!(map.count(2), 2);
        }
        assert_eq!(words[0], 1 | 2 | 1 << (WORD_BITS - 1));
        assert_eq!(words[1], 1);
    }

    #[test]
    fn words_for() {
        assert_eq!(Bitmap::words_for(0), 0);
        assert_eq!(Bitmap::words_for(1), 1);
        assert_eq!(Bitmap::words_for(WORD_BITS), 1);
        assert_eq!(Bitmap::words_for(WORD_BITS + 1), 2);
    }
}
