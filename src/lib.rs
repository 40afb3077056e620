#![cfg_attr(not(test), no_std)]
#![doc = include_str!("../README.md")]
#![cfg_attr(docsrs, feature(doc_cfg))]

mod bitmap;
mod error;
mod free_list;
mod heap;
mod lock;
mod locked;
mod order;
mod region;
mod stats;

pub use error::{AllocError, Corruption, FreeError, HeapError};
pub use heap::Heap;
#[cfg(any(feature = "critical-section", not(target_has_atomic = "8")))]
pub use lock::CriticalSectionLock;
pub use lock::DefaultLock;
#[cfg(target_has_atomic = "8")]
pub use lock::SpinLock;
pub use lock_api;
pub use locked::{HeapGuard, LockedHeap};
pub use order::Fit;
pub use stats::Stats;
