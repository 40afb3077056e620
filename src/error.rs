//! The crate's error types.

use core::fmt;

/// Why a region could not be added to a heap. The heap is unchanged.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum HeapError {
    /// The region starts at the null pointer.
    NullStart,
    /// `start + size` overflows the address space.
    Overflow,
    /// The region cannot hold its metadata and one minimum block.
    TooSmall {
        /// The size given.
        size: usize,
        /// The smallest size accepted when the start is aligned to a minimum block.
        min: usize,
    },
    /// The region overlaps (or repeats) a region the heap already has.
    Overlap,
    /// `init` was called on a heap that already has memory; use `add_region` for more.
    AlreadyInitialized,
}

impl fmt::Display for HeapError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HeapError::NullStart => f.write_str("region starts at the null pointer"),
            HeapError::Overflow => f.write_str("region runs past the end of the address space"),
            HeapError::TooSmall { size, min } => {
                write!(f, "region of {size} bytes is too small (at least {min} bytes)")
            }
            HeapError::Overlap => f.write_str("region overlaps memory the heap already has"),
            HeapError::AlreadyInitialized => {
                f.write_str("heap is already initialized (use add_region to add memory)")
            }
        }
    }
}

impl core::error::Error for HeapError {}

/// Why an allocation failed. Nothing was allocated.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum AllocError {
    /// No free block is large enough right now (or, for an in-place resize, the memory after the
    /// block is not free).
    OutOfMemory,
    /// The size or alignment is larger than the heap's largest block
    /// ([`Heap::MAX_BLOCK`](crate::Heap::MAX_BLOCK)), or is not a valid layout: no amount of
    /// freeing helps.
    Unsatisfiable,
}

impl fmt::Display for AllocError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            AllocError::OutOfMemory => "out of memory",
            AllocError::Unsatisfiable => "request is larger than the largest block",
        })
    }
}

impl core::error::Error for AllocError {}

/// Misuse detected by [`Heap::try_dealloc`](crate::Heap::try_dealloc) (and by the checks `realloc`
/// and `resize_in_place` make first, which panic or abort with it). The heap is unchanged.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum FreeError {
    /// The pointer is in none of the heap's regions.
    NotOwned {
        /// The pointer passed.
        ptr: *const u8,
    },
    /// The pointer is not aligned to a minimum block or to the layout's alignment, so the heap
    /// never returned it for this layout.
    Misaligned {
        /// The pointer passed.
        ptr: *const u8,
    },
    /// The block is already free.
    DoubleFree {
        /// The pointer passed.
        ptr: *const u8,
    },
    /// The pointer is inside the heap but does not start a live allocation (an interior pointer,
    /// or one never returned).
    NotAllocated {
        /// The pointer passed.
        ptr: *const u8,
    },
    /// The layout does not match the allocation at `ptr`.
    WrongLayout {
        /// The pointer passed.
        ptr: *const u8,
        /// The layout size passed.
        size: usize,
    },
}

impl fmt::Display for FreeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            FreeError::NotOwned { ptr } => write!(f, "free of {ptr:#p}: not in this heap"),
            FreeError::Misaligned { ptr } => {
                write!(f, "free of {ptr:#p}: misaligned for its layout, never allocated")
            }
            FreeError::DoubleFree { ptr } => write!(f, "double free of {ptr:#p} detected"),
            FreeError::NotAllocated { ptr } => {
                write!(f, "free of {ptr:#p}: not the start of a live allocation")
            }
            FreeError::WrongLayout { ptr, size } => {
                write!(f, "free of {ptr:#p} with size {size}: not the layout it was allocated with")
            }
        }
    }
}

impl core::error::Error for FreeError {}

/// A broken heap invariant, found by [`Heap::check_invariants`](crate::Heap::check_invariants).
/// Seeing one means memory was corrupted: a write past the end of an allocation, a use after
/// free, or a bug in this crate.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Corruption {
    /// What is wrong.
    pub what: &'static str,
    /// The block, node or region where it was seen.
    pub at: *const u8,
}

impl fmt::Display for Corruption {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "heap corrupted at {:#p}: {}", self.at, self.what)
    }
}

impl core::error::Error for Corruption {}
