#![cfg_attr(not(test), no_std)]
#![doc = include_str!("../README.md")]
#![cfg_attr(docsrs, feature(doc_cfg))]

mod bitmap;
mod error;
mod free_list;
mod heap;
mod locked;
mod order;
mod region;
mod stats;

pub use error::{AllocError, Corruption, FreeError, HeapError};
pub use heap::Heap;
pub use locked::{HeapGuard, LockedHeap};
pub use order::Fit;
pub use stats::Stats;
