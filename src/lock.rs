//! The locks a [`LockedHeap`](crate::LockedHeap) can use: any [`lock_api::RawMutex`].
//!
//! | Lock | Safe when an interrupt handler allocates? | Targets |
//! |---|---|---|
//! | [`SpinLock`] (the default where the target has compare-and-swap) | **No**: a handler that interrupts the lock holder spins forever | every target with CAS |
//! | `CriticalSectionLock` (feature `critical-section`; the default on targets without CAS) | Yes, single- and multi-core, through the [`critical-section`](https://docs.rs/critical-section) implementation the program links | every target |
//! | your own `RawMutex`, e.g. a kernel's spinlock that saves and disables interrupts | as you make it | any |

/// A spinlock from the [`spin`] crate. It does not disable interrupts.
#[cfg(target_has_atomic = "8")]
pub type SpinLock = spin::mutex::SpinMutex<()>;

/// The lock `LockedHeap` uses when none is named: [`SpinLock`] where the target has
/// compare-and-swap, `CriticalSectionLock` (feature `critical-section`) where it does not (e.g. `thumbv6m-none-eabi`).
#[cfg(target_has_atomic = "8")]
pub type DefaultLock = SpinLock;

/// The lock `LockedHeap` uses when none is named: [`SpinLock`] where the target has
/// compare-and-swap, [`CriticalSectionLock`] where it does not (e.g. `thumbv6m-none-eabi`).
#[cfg(not(target_has_atomic = "8"))]
pub type DefaultLock = CriticalSectionLock;

#[cfg(any(feature = "critical-section", not(target_has_atomic = "8")))]
pub use self::cs::CriticalSectionLock;

#[cfg(any(feature = "critical-section", not(target_has_atomic = "8")))]
mod cs {
    use core::cell::{Cell, UnsafeCell};
    use core::fmt;

    use critical_section::RestoreState;

    /// A lock that holds a [`critical_section`] for as long as the heap is locked, so neither an
    /// interrupt handler nor (with a multi-core implementation) another core can enter the heap
    /// meanwhile. It is embedded-alloc's convention.
    ///
    /// The program must link one `critical-section` implementation, for example the
    /// `critical-section-single-core` feature of `cortex-m` or `riscv`, or `critical-section`'s
    /// `std` feature on a host.
    ///
    /// Locking it again from inside the locked section (allocating while a
    /// [`HeapGuard`](crate::HeapGuard) is alive) would deadlock a spinlock; here it panics.
    pub struct CriticalSectionLock {
        /// Whether the heap is locked. Read and written only inside the critical section.
        locked: Cell<bool>,
        /// How to restore the interrupt state when the lock is released.
        restore: UnsafeCell<RestoreState>,
    }

    // SAFETY: both fields are only touched by the holder of the critical section, which is
    // exclusive across interrupt handlers and cores.
    unsafe impl Sync for CriticalSectionLock {}

    impl fmt::Debug for CriticalSectionLock {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("CriticalSectionLock")
        }
    }

    // SAFETY: the lock is held only inside a critical section, which excludes every other
    // context, and `locked` refuses a second holder within the same context.
    unsafe impl lock_api::RawMutex for CriticalSectionLock {
        #[allow(clippy::declare_interior_mutable_const)]
        const INIT: Self = CriticalSectionLock {
            locked: Cell::new(false),
            restore: UnsafeCell::new(RestoreState::invalid()),
        };

        type GuardMarker = lock_api::GuardNoSend;

        fn lock(&self) {
            assert!(self.try_lock(), "alloc_buddy_simple: heap locked again inside its critical section");
        }

        fn try_lock(&self) -> bool {
            // SAFETY: released in `unlock` (or just below), with the state returned here.
            let state = unsafe { critical_section::acquire() };
            if self.locked.get() {
                // A nested acquire inside our own section: undo it and refuse.
                // SAFETY: `state` comes from the `acquire` just above.
                unsafe { critical_section::release(state) };
                return false;
            }
            self.locked.set(true);
            // SAFETY: we are inside the critical section, so no one else touches `restore`.
            unsafe { *self.restore.get() = state };
            true
        }

        unsafe fn unlock(&self) {
            // SAFETY: the caller holds the lock, so we are inside the section `lock` entered.
            let state = unsafe { *self.restore.get() };
            self.locked.set(false);
            // SAFETY: `state` is the one the matching `acquire` returned.
            unsafe { critical_section::release(state) };
        }
    }
}
