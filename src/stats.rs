//! Heap statistics.

use core::fmt;

use crate::order::block_size;

/// A snapshot of a heap's figures, from [`Heap::stats`](crate::Heap::stats).
///
/// `Display` prints a one-screen summary.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Stats<const ORDERS: usize = 32> {
    /// Regions added.
    pub regions: usize,
    /// Bytes the heap manages for allocation, in all regions (metadata excluded).
    pub total_bytes: usize,
    /// Bytes of region metadata (headers and buddy-state bitmaps).
    pub metadata_bytes: usize,
    /// Bytes the live allocations asked for (the sum of their layouts' sizes).
    pub requested_bytes: usize,
    /// Bytes in live blocks: `requested_bytes` plus rounding to minimum blocks (and, with
    /// [`Fit::PowerOfTwo`](crate::Fit::PowerOfTwo), or [`Fit::Adaptive`](crate::Fit::Adaptive) on a
    /// heap with memory to spare, to powers of two).
    pub allocated_bytes: usize,
    /// Bytes in free blocks: `total_bytes - allocated_bytes`.
    pub free_bytes: usize,
    /// Bytes in the largest free block: the largest allocation that can succeed now (after
    /// [`Heap::coalesce`](crate::Heap::coalesce), possibly more).
    pub largest_free_block: usize,
    /// Live allocations.
    pub allocations: usize,
    /// Free blocks of each order.
    pub free_blocks: [usize; ORDERS],
}

impl<const ORDERS: usize> fmt::Display for Stats<ORDERS> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "heap: {} bytes in {} region(s) (+{} bytes metadata)",
            self.total_bytes, self.regions, self.metadata_bytes
        )?;
        writeln!(
            f,
            "  used: {} bytes in {} allocation(s) ({} bytes requested)",
            self.allocated_bytes, self.allocations, self.requested_bytes
        )?;
        writeln!(f, "  free: {} bytes, largest block {} bytes", self.free_bytes, self.largest_free_block)?;
        write!(f, "  free blocks by size:")?;
        let mut any = false;
        for (order, &n) in self.free_blocks.iter().enumerate() {
            if n != 0 {
                write!(f, " {}B×{n}", block_size(order))?;
                any = true;
            }
        }
        if !any {
            write!(f, " none")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::string::ToString;

    #[test]
    fn display_is_one_screen() {
        let mut free_blocks = [0; 8];
        free_blocks[0] = 2;
        free_blocks[3] = 1;
        let stats = Stats {
            regions: 1,
            total_bytes: 4096,
            metadata_bytes: 64,
            requested_bytes: 100,
            allocated_bytes: 128,
            free_bytes: 3968,
            largest_free_block: block_size(3),
            allocations: 1,
            free_blocks,
        };
        let text = stats.to_string();
        assert!(text.contains("4096 bytes in 1 region(s)"), "{text}");
        assert!(text.contains("100 bytes requested"), "{text}");
        assert!(text.contains(&std::format!("{}B×2", block_size(0))), "{text}");
        assert!(text.lines().count() <= 5);
    }
}
