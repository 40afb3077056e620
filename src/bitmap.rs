//! The buddy-state bitmap: two bits per minimum block ("unit"), kept outside the blocks.
//!
//! - [`Mark::Free`]: the unit is the first unit of a free block (on a free list). With the order
//!   stored in the free block's node, this answers "is my buddy free, and of my order?" in O(1);
//!   allocated data can never fake it, because the bit lives outside the block.
//! - [`Mark::Alloc`]: the unit is the first unit of a live allocation (or of the region's
//!   metadata). This catches a double free, or a pointer the heap never gave out, before anything
//!   is changed.
//! - [`Mark::Cached`] (both bits): the unit is the first unit of a free block held in a cache.
//!
//! A run of free blocks between two allocations is the units from the first free mark after an
//! allocation mark to the next allocation mark, so runs are measured from the map alone
//! ([`Bitmap::run_start`], [`Bitmap::run_end`]).
//!
//! Every other unit is inside a block that starts earlier. The two bits of a unit sit side by
//! side in one word, so one load answers both questions. Two bits per unit cost 1/128 of a region
//! on a 64-bit target (32-byte units) and 1/64 on a 32-bit one (16-byte units).
//!
//! A summary keeps one bit per map word, set exactly when the word has a mark, so that the run
//! scans cross the bodies of large blocks (words with no mark) a summary word at a time: 64 map
//! words, 64 KiB of heap, per load on a 64-bit target. It costs 1/64 of the map (1/32 on a 32-bit
//! target).

use crate::order::WORD_BITS;

/// Units per bitmap word.
const UNITS_PER_WORD: usize = WORD_BITS / 2;

/// The free bits of every unit in a word.
const FREE_BITS: usize = usize::MAX / 3;

/// The allocation bits of every unit in a word.
const ALLOC_BITS: usize = FREE_BITS << 1;

/// What a unit's bits say.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(usize)]
pub(crate) enum Mark {
    /// The unit starts a free block.
    Free = 0b01,
    /// The unit starts a live allocation (or the region's metadata).
    Alloc = 0b10,
    /// The unit starts a free block held in a cache (see `Heap::with_cache`): free, but not to
    /// be merged or taken by anything but its order's next request. Both bits are set, so
    /// [`Mark::Alloc`] tests see it as taken.
    Cached = 0b11,
}

/// A two-bit-per-unit map over machine words, with its summary, owned by a region.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Bitmap {
    words: *mut usize,
    /// Bit `w % WORD_BITS` of summary word `w / WORD_BITS` is set exactly when map word `w` is
    /// not zero.
    summary: *mut usize,
}

impl Bitmap {
    /// The map of no region: its methods must not be called.
    pub(crate) const NONE: Bitmap = Bitmap { words: core::ptr::null_mut(), summary: core::ptr::null_mut() };

    /// Map words needed for `units` units.
    const fn words_for(units: usize) -> usize {
        units.div_ceil(UNITS_PER_WORD)
    }

    /// Words a map of `units` units takes, its summary included.
    pub(crate) const fn len_for(units: usize) -> usize {
        let words = Self::words_for(units);
        words + words.div_ceil(WORD_BITS)
    }

    /// A map of `units` units over the words at `mem`, all units cleared.
    ///
    /// # Safety
    ///
    /// `mem` must be valid for reads and writes of [`Bitmap::len_for`]`(units)` words for as long
    /// as the map is used, and used by nothing else.
    pub(crate) unsafe fn zeroed(mem: *mut usize, units: usize) -> Self {
        // SAFETY: the caller gives `len_for(units)` writable words: the map's, then the summary's.
        unsafe {
            mem.write_bytes(0, Self::len_for(units));
            Bitmap { words: mem, summary: mem.add(Self::words_for(units)) }
        }
    }

    /// The summary word that holds map word `index`'s bit, and the bit.
    ///
    /// # Safety
    ///
    /// `index` must be one of the map's words.
    #[inline(always)]
    unsafe fn summary_bit(self, index: usize) -> (*mut usize, usize) {
        // SAFETY: the summary has a bit for every map word.
        (unsafe { self.summary.add(index / WORD_BITS) }, 1 << (index % WORD_BITS))
    }

    /// Records in the summary that map word `index` has a mark.
    ///
    /// # Safety
    ///
    /// `index` must be one of the map's words.
    #[inline(always)]
    unsafe fn note_marked(self, index: usize) {
        // SAFETY: the caller keeps `index` in range, so the summary word is one of ours.
        unsafe {
            let (word, bit) = self.summary_bit(index);
            *word |= bit;
        }
    }

    /// Stores `value` in map word `index`, and records in the summary whether it is zero.
    /// Changes that can leave a word with no mark go through here.
    ///
    /// # Safety
    ///
    /// `index` must be one of the map's words.
    #[inline(always)]
    unsafe fn store(self, index: usize, value: usize) {
        // SAFETY: the caller keeps `index` in range, so the map word and its summary word are
        // ours.
        unsafe {
            *self.words.add(index) = value;
            if value == 0 {
                let (word, bit) = self.summary_bit(index);
                *word &= !bit;
            }
        }
    }

    /// The word holding unit `unit`, and the shift of the unit's two bits in it.
    ///
    /// # Safety
    ///
    /// `unit` must be below the number of units the map was made for.
    #[inline(always)]
    unsafe fn word(self, unit: usize) -> (*mut usize, u32) {
        // SAFETY: the caller keeps `unit` in range, so the word is one of ours.
        (unsafe { self.words.add(unit / UNITS_PER_WORD) }, (2 * (unit % UNITS_PER_WORD)) as u32)
    }

    /// Unit `unit`'s two bits: `Mark::Free`, `Mark::Alloc` or 0 (inside a block).
    ///
    /// # Safety
    ///
    /// `unit` must be below the number of units the map was made for.
    #[inline(always)]
    pub(crate) unsafe fn bits(self, unit: usize) -> usize {
        // SAFETY: the caller keeps `unit` in range.
        let (word, shift) = unsafe { self.word(unit) };
        // SAFETY: `word` is one of the map's words.
        (unsafe { *word } >> shift) & 0b11
    }

    /// Whether unit `unit` carries `mark`.
    ///
    /// # Safety
    ///
    /// `unit` must be below the number of units the map was made for.
    #[cfg(test)]
    #[inline(always)]
    pub(crate) unsafe fn has(self, unit: usize, mark: Mark) -> bool {
        // SAFETY: the caller keeps `unit` in range.
        unsafe { self.bits(unit) & mark as usize != 0 }
    }

    /// Sets `mark` on unit `unit`.
    ///
    /// # Safety
    ///
    /// `unit` must be below the number of units the map was made for.
    #[inline(always)]
    pub(crate) unsafe fn set(self, unit: usize, mark: Mark) {
        // SAFETY: the caller keeps `unit` in range.
        let (word, shift) = unsafe { self.word(unit) };
        // SAFETY: `word` is one of the map's words, and so is its index.
        unsafe {
            *word |= (mark as usize) << shift;
            self.note_marked(unit / UNITS_PER_WORD);
        }
    }

    /// Gives unit `unit` exactly `mark`, whatever it carried.
    ///
    /// # Safety
    ///
    /// `unit` must be below the number of units the map was made for.
    #[inline(always)]
    pub(crate) unsafe fn put(self, unit: usize, mark: Mark) {
        // SAFETY: the caller keeps `unit` in range.
        let (word, shift) = unsafe { self.word(unit) };
        // SAFETY: `word` is one of the map's words, and so is its index.
        unsafe {
            let old = *word;
            *word = (old & !(0b11 << shift)) | (mark as usize) << shift;
            // A word that had a mark is in the summary already (the common case: a free
            // replaces its block's own mark).
            if old == 0 {
                self.note_marked(unit / UNITS_PER_WORD);
            }
        }
    }

    /// Gives unit `unit` [`Mark::Free`]: from `was`, with one `xor` (the word keeps a mark, so
    /// the summary needs no update), or, with `None`, from whatever it carried ([`Bitmap::put`]).
    ///
    /// # Safety
    ///
    /// `unit` must be below the number of units the map was made for, and carry `was` if given.
    #[inline(always)]
    pub(crate) unsafe fn turn_free(self, unit: usize, was: Option<Mark>) {
        match was {
            // SAFETY: the caller keeps `unit` in range; `word` is one of the map's words.
            Some(was) => unsafe {
                let (word, shift) = self.word(unit);
                *word ^= (was as usize ^ Mark::Free as usize) << shift;
            },
            // SAFETY: the caller keeps `unit` in range.
            None => unsafe { self.put(unit, Mark::Free) },
        }
    }

    /// Clears both bits of unit `unit`: it starts nothing.
    ///
    /// # Safety
    ///
    /// `unit` must be below the number of units the map was made for.
    #[inline(always)]
    pub(crate) unsafe fn erase(self, unit: usize) {
        // SAFETY: the caller keeps `unit` in range.
        let (word, shift) = unsafe { self.word(unit) };
        // SAFETY: `word` is one of the map's words, and so is its index.
        unsafe { self.store(unit / UNITS_PER_WORD, *word & !(0b11 << shift)) };
    }

    /// Turns unit `unit` from [`Mark::Alloc`] to [`Mark::Cached`]: a whole allocation goes to a
    /// cache. The word keeps a mark, so the summary needs no update (the fast path of a free).
    /// [`Bitmap::uncache`] turns it back.
    ///
    /// # Safety
    ///
    /// `unit` must be below the number of units the map was made for, and carry [`Mark::Alloc`].
    #[inline(always)]
    pub(crate) unsafe fn cache(self, unit: usize) {
        // SAFETY: the caller keeps `unit` in range.
        let (word, shift) = unsafe { self.word(unit) };
        // SAFETY: `word` is one of the map's words.
        unsafe { *word |= (Mark::Free as usize) << shift };
    }

    /// Turns unit `unit` from [`Mark::Cached`] to [`Mark::Alloc`] with one `xor`: a cached
    /// block is allocated. The word keeps a mark, so the summary needs no update (the fast path
    /// of an allocation).
    ///
    /// # Safety
    ///
    /// `unit` must be below the number of units the map was made for, and carry [`Mark::Cached`].
    #[inline(always)]
    pub(crate) unsafe fn uncache(self, unit: usize) {
        // SAFETY: the caller keeps `unit` in range.
        let (word, shift) = unsafe { self.word(unit) };
        // SAFETY: `word` is one of the map's words; the unit's free bit is set, so the `xor`
        // clears it.
        unsafe { *word ^= (Mark::Free as usize) << shift };
    }

    /// Turns unit `unit` from [`Mark::Free`] to [`Mark::Alloc`], or back, in one step.
    ///
    /// # Safety
    ///
    /// `unit` must be below the number of units the map was made for, and carry exactly one of
    /// the two marks.
    #[inline(always)]
    pub(crate) unsafe fn flip(self, unit: usize) {
        // SAFETY: the caller keeps `unit` in range.
        let (word, shift) = unsafe { self.word(unit) };
        // SAFETY: `word` is one of the map's words.
        unsafe { *word ^= 0b11 << shift };
    }

    /// The end of the run of free units that unit `unit` starts or is in: the next unit in
    /// `unit + 1..ceil` that starts an allocation, a cached block or the metadata (all have the
    /// allocation bit set), or `ceil`. Reads only the map words that have a mark, found in the
    /// summary: the bodies of large free blocks cost one summary load per 64 words.
    ///
    /// # Safety
    ///
    /// `ceil` must be at most the number of units the map was made for.
    pub(crate) unsafe fn run_end(self, unit: usize, ceil: usize) -> usize {
        let limit = ceil.div_ceil(UNITS_PER_WORD);
        let mut at = unit + 1;
        while at < ceil {
            let (index, shift) = (at / UNITS_PER_WORD, 2 * (at % UNITS_PER_WORD));
            // SAFETY: `at < ceil`, so its word is in range.
            let bits = (unsafe { *self.words.add(index) } & ALLOC_BITS) >> shift << shift;
            if bits != 0 {
                return (index * UNITS_PER_WORD + bits.trailing_zeros() as usize / 2).min(ceil);
            }
            // SAFETY: `limit` is at most the map's number of words (`ceil` is in range).
            at = unsafe { self.next_marked(index + 1, limit) } * UNITS_PER_WORD;
        }
        ceil
    }

    /// The start of the run of free units that the free block at unit `unit` is in: the first
    /// free block after the nearest unit in `floor..unit` with the allocation bit set, or the
    /// first free block at or above `floor` if there is none. Skips words with no mark as
    /// [`Bitmap::run_end`] does.
    ///
    /// Every unit belongs to the block or allocation that starts at the nearest marked unit at or
    /// below it, so the units between an allocation's body and `unit` are free blocks.
    ///
    /// # Safety
    ///
    /// `floor <= unit`, `unit` below the number of units the map was made for, and a free block
    /// must start at `unit`.
    pub(crate) unsafe fn run_start(self, unit: usize, floor: usize) -> usize {
        let mut start = unit;
        let mut top = unit;
        while top > floor {
            let index = (top - 1) / UNITS_PER_WORD;
            let base = index * UNITS_PER_WORD;
            // SAFETY: `base < top <= unit`, so the word is in range.
            let word = unsafe { *self.words.add(index) };
            if word == 0 {
                // No unit of the word carries a mark (the body of a large free block or
                // allocation): nothing in it starts a free block or ends the run. Go on at the
                // nearest word below with a mark, if there is one at or above `floor`'s.
                // SAFETY: `index` is in range.
                match unsafe { self.prev_marked(index, floor / UNITS_PER_WORD) } {
                    Some(below) => top = (below + 1) * UNITS_PER_WORD,
                    None => break,
                }
                continue;
            }
            // The units `max(base, floor)..top` of this word.
            let low = floor.max(base) - base;
            let high = top - base;
            let mask = (usize::MAX >> (WORD_BITS - 2 * (high - low))) << (2 * low);
            let word = word & mask;
            let alloc = word & ALLOC_BITS;
            // Only the free blocks above the highest allocation bit of this word count.
            let above = WORD_BITS - alloc.leading_zeros() as usize;
            let free = if above == WORD_BITS { 0 } else { word & FREE_BITS & (usize::MAX << above) };
            if free != 0 {
                start = base + free.trailing_zeros() as usize / 2;
            }
            if alloc != 0 {
                break;
            }
            top = base.max(floor);
        }
        start
    }

    /// The first word in `from..limit` that has a mark, or `limit` if none has.
    ///
    /// # Safety
    ///
    /// `limit` must be at most the map's number of words.
    #[inline(always)]
    unsafe fn next_marked(self, from: usize, limit: usize) -> usize {
        let mut index = from;
        while index < limit {
            // SAFETY: `index < limit`, so its summary word is in range.
            let bits = unsafe { *self.summary.add(index / WORD_BITS) } >> (index % WORD_BITS);
            if bits != 0 {
                return (index + bits.trailing_zeros() as usize).min(limit);
            }
            index = (index / WORD_BITS + 1) * WORD_BITS;
        }
        limit
    }

    /// The last word in `lowest..below` that has a mark, if one has.
    ///
    /// # Safety
    ///
    /// `below` must be at most the map's number of words.
    #[inline(always)]
    unsafe fn prev_marked(self, below: usize, lowest: usize) -> Option<usize> {
        let mut end = below;
        while end > lowest {
            let last = end - 1;
            // SAFETY: `last` is below `below`, so its summary word is in range.
            let bits = unsafe { *self.summary.add(last / WORD_BITS) }
                & (usize::MAX >> (WORD_BITS - 1 - last % WORD_BITS));
            if bits != 0 {
                let found = last / WORD_BITS * WORD_BITS + (WORD_BITS - 1 - bits.leading_zeros() as usize);
                return (found >= lowest).then_some(found);
            }
            end = last / WORD_BITS * WORD_BITS;
        }
        None
    }

    /// Whether the summary says of every one of the first `words_for(units)` map words exactly
    /// whether it has a mark (for the invariant checker).
    ///
    /// # Safety
    ///
    /// `units` must be the number of units the map was made for.
    pub(crate) unsafe fn summary_agrees(self, units: usize) -> bool {
        (0..Self::words_for(units)).all(|index| {
            // SAFETY: `index` is one of the map's words, with its summary bit.
            let (marked, noted) = unsafe {
                let (summary, bit) = self.summary_bit(index);
                (*self.words.add(index) != 0, *summary & bit != 0)
            };
            marked == noted
        })
    }

    /// Whether any unit in `start..end` carries a mark (starts a block or an allocation).
    ///
    /// # Safety
    ///
    /// `start <= end`, and `end` must be at most the number of units the map was made for.
    pub(crate) unsafe fn any(self, start: usize, end: usize) -> bool {
        let mut unit = start;
        while unit < end {
            let in_word = unit % UNITS_PER_WORD;
            let take = (UNITS_PER_WORD - in_word).min(end - unit);
            let mask = (usize::MAX >> (WORD_BITS - 2 * take)) << (2 * in_word);
            // SAFETY: `unit < end`, so its word is in range.
            let (word, _) = unsafe { self.word(unit) };
            // SAFETY: `word` is one of the map's words.
            if unsafe { *word } & mask != 0 {
                return true;
            }
            unit += take;
        }
        false
    }

    /// The number of units in `0..units` that start a free block.
    ///
    /// # Safety
    ///
    /// `units` must be at most the number of units the map was made for.
    pub(crate) unsafe fn count_free(self, units: usize) -> usize {
        let mut n = 0;
        for w in 0..Self::words_for(units) {
            // SAFETY: `w` covers units below `units` (rounded up to the word, which is ours).
            let word = unsafe { *self.words.add(w) } & FREE_BITS;
            let valid = (units - w * UNITS_PER_WORD).min(UNITS_PER_WORD);
            n += (word & (usize::MAX >> (WORD_BITS - 2 * valid))).count_ones() as usize;
        }
        n
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn marks_are_independent() {
        let units = 3 * UNITS_PER_WORD;
        let mut words = [usize::MAX; Bitmap::len_for(3 * UNITS_PER_WORD)];
        // SAFETY: the words a map of `units` units takes, used only through the map.
        let map = unsafe { Bitmap::zeroed(words.as_mut_ptr(), units) };
        for unit in [0, 1, UNITS_PER_WORD - 1, UNITS_PER_WORD, units - 1] {
            // SAFETY: `unit < units`.
            unsafe {
                assert_eq!(map.bits(unit), 0);
                map.set(unit, Mark::Free);
                assert!(map.has(unit, Mark::Free) && !map.has(unit, Mark::Alloc));
                map.flip(unit);
                assert!(!map.has(unit, Mark::Free) && map.has(unit, Mark::Alloc));
                assert!(map.any(unit, unit + 1));
                assert!(!map.any(unit, unit));
                map.cache(unit);
                assert_eq!(map.bits(unit), Mark::Cached as usize);
                map.uncache(unit);
                assert_eq!(map.bits(unit), Mark::Alloc as usize);
                map.flip(unit);
                assert!(map.has(unit, Mark::Free) && !map.has(unit, Mark::Alloc));
                map.erase(unit);
                assert_eq!(map.bits(unit), 0);
                map.put(unit, Mark::Free);
            }
        }
        // SAFETY: in range.
        unsafe {
            assert!(!map.any(2, UNITS_PER_WORD - 1));
            assert!(map.any(2, UNITS_PER_WORD));
            assert!(map.any(UNITS_PER_WORD + 1, units));
            assert_eq!(map.count_free(units), 5);
            assert_eq!(map.count_free(UNITS_PER_WORD), 3);
            assert_eq!(map.count_free(2), 2);
            map.set(7, Mark::Alloc);
            assert_eq!(map.count_free(units), 5);
            map.erase(units - 1);
            assert!(!map.any(UNITS_PER_WORD + 1, units));
            assert!(map.summary_agrees(units));
            // The summary follows a word that loses its last mark, and gets one again.
            map.erase(UNITS_PER_WORD);
            assert!(map.summary_agrees(units));
            map.put(UNITS_PER_WORD + 3, Mark::Cached);
            assert!(map.summary_agrees(units));
        }
        assert_eq!(words[0], 0b01 | 0b0100 | 0b10 << 14 | 0b01 << (WORD_BITS - 2));
        assert_eq!(words[3], 0b011, "the summary: words 0 and 1 have marks, word 2 none");
    }

    #[test]
    fn runs_are_measured_between_allocation_marks() {
        const W: usize = UNITS_PER_WORD;
        let mut words = [0usize; Bitmap::len_for(4 * W)];
        // SAFETY: the words of a map of `4 * W` units, used only through the map.
        let map = unsafe { Bitmap::zeroed(words.as_mut_ptr(), 4 * W) };
        // An allocation at 3 (its body to W - 2), free blocks at W - 2, W, W + 8, a cached block
        // at 2W + 5, a free block at 2W + 6 and an allocation at 3W + 1.
        // SAFETY: every unit is below 4W.
        unsafe {
            map.set(3, Mark::Alloc);
            for unit in [W - 2, W, W + 8, 2 * W + 6] {
                map.set(unit, Mark::Free);
            }
            map.set(2 * W + 5, Mark::Cached);
            map.set(3 * W + 1, Mark::Alloc);
            // The run through W + 8 goes from the first free block after the allocation at 3 up
            // to the cached block, across words both ways.
            assert_eq!(map.run_start(W + 8, 0), W - 2);
            assert_eq!(map.run_end(W + 8, 4 * W), 2 * W + 5);
            assert_eq!(map.run_start(W - 2, 0), W - 2);
            // `floor` and `ceil` bound the search: the run reaches below W, and on to 2W + 5.
            assert_eq!(map.run_start(W + 8, W), W);
            assert_eq!(map.run_start(W + 8, W + 1), W + 8);
            assert_eq!(map.run_end(W + 8, W + 20), W + 20);
            // A cached block ends a run and starts none: the next run begins after it.
            assert_eq!(map.run_start(2 * W + 6, 0), 2 * W + 6);
            assert_eq!(map.run_end(2 * W + 6, 4 * W), 3 * W + 1);
            // With no allocation below, the run starts at the first free block above `floor`.
            map.erase(3);
            assert_eq!(map.run_start(W + 8, 0), W - 2);
            map.set(0, Mark::Free);
            assert_eq!(map.run_start(W + 8, 0), 0);
        }
    }

    #[test]
    fn run_scans_match_a_unit_by_unit_walk() {
        // Sparse random marks over many words, so that the scans skip empty words through the
        // summary (across summary words too), with floors and ceilings anywhere; each answer is
        // checked against a plain walk.
        const WORDS: usize = if cfg!(miri) { WORD_BITS + 8 } else { 4 * WORD_BITS + 7 };
        const UNITS: usize = WORDS * UNITS_PER_WORD;
        let mut state = 0x9E37_79B9_7F4A_7C15_u64;
        let mut next = move |n: usize| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state % n as u64) as usize
        };
        for _ in 0..if cfg!(miri) { 4 } else { 60 } {
            let mut words = [0usize; Bitmap::len_for(UNITS)];
            // SAFETY: the words of a map of `UNITS` units, used only through the map.
            let map = unsafe { Bitmap::zeroed(words.as_mut_ptr(), UNITS) };
            // Sparser on some maps than others, so that long stretches have no mark.
            let sparseness = 4 + next(6);
            let marks = 1 + next(UNITS >> sparseness);
            for _ in 0..marks {
                let mark = [Mark::Free, Mark::Alloc, Mark::Cached][next(3)];
                // SAFETY: in range.
                unsafe { map.put(next(UNITS), mark) };
            }
            for _ in 0..if cfg!(miri) { 10 } else { 200 } {
                let unit = next(UNITS);
                // SAFETY: in range. (`run_start` needs a free block at `unit`.)
                let saved = unsafe {
                    let saved = map.bits(unit);
                    map.put(unit, Mark::Free);
                    saved
                };
                let floor = unit - next(unit + 1);
                let mut start = unit;
                for u in (floor..unit).rev() {
                    // SAFETY: in range.
                    let bits = unsafe { map.bits(u) };
                    if bits & Mark::Alloc as usize != 0 {
                        break;
                    }
                    if bits == Mark::Free as usize {
                        start = u;
                    }
                }
                // SAFETY: `floor <= unit < UNITS`, a free block at `unit`.
                assert_eq!(unsafe { map.run_start(unit, floor) }, start, "run_start({unit}, {floor})");
                let ceil = unit + 1 + next(UNITS - unit);
                // SAFETY: in range.
                let end = (unit + 1..ceil).find(|&u| unsafe { map.bits(u) } & Mark::Alloc as usize != 0);
                // SAFETY: `ceil <= UNITS`.
                let found = unsafe { map.run_end(unit, ceil) };
                assert_eq!(found, end.unwrap_or(ceil), "run_end({unit}, {ceil})");
                let mark_of = [None, Some(Mark::Free), Some(Mark::Alloc), Some(Mark::Cached)];
                // SAFETY: in range.
                unsafe {
                    map.erase(unit);
                    if let Some(mark) = mark_of[saved] {
                        map.set(unit, mark);
                    }
                    assert!(map.summary_agrees(UNITS));
                }
            }
        }
    }

    #[test]
    fn words_for() {
        assert_eq!(Bitmap::words_for(0), 0);
        assert_eq!(Bitmap::words_for(1), 1);
        assert_eq!(Bitmap::words_for(UNITS_PER_WORD), 1);
        assert_eq!(Bitmap::words_for(UNITS_PER_WORD + 1), 2);
        // The summary: one more word per `WORD_BITS` map words.
        assert_eq!(Bitmap::len_for(0), 0);
        assert_eq!(Bitmap::len_for(1), 2);
        assert_eq!(Bitmap::len_for(WORD_BITS * UNITS_PER_WORD), WORD_BITS + 1);
        assert_eq!(Bitmap::len_for(WORD_BITS * UNITS_PER_WORD + 1), WORD_BITS + 3);
    }
}
