//! `IrqSaveSpinLock`: a kernel's "irqsave" spinlock, written outside the crate as a
//! [`lock_api::RawMutex`], which makes allocating in interrupt handlers safe.
//!
//! `LockedHeap`'s default lock is a plain spinlock. If an interrupt arrives while the interrupted
//! code holds the heap lock, and the handler allocates or frees, the handler spins forever on a
//! lock that is never released. This lock instead disables machine interrupts (`mstatus.MIE`)
//! for as long as it is held, so no handler can start in the middle of a heap operation on this
//! hart; the pending interrupt is taken as soon as the lock is released.
//!
//! ```ignore
//! #[global_allocator]
//! static HEAP: LockedHeap<32, IrqSaveSpinLock> = LockedHeap::new();
//! ```
//!
//! It is for RISC-V machine mode (a supervisor-mode kernel would use `sstatus.SIE` instead). With
//! several harts it is still a spinlock between them; interrupts are disabled *before* spinning,
//! as Linux's `spin_lock_irqsave` does. Locking it again on the hart that holds it (allocating
//! while a `HeapGuard` is alive) still deadlocks, as with any spinlock.

use core::hint::spin_loop;
use core::sync::atomic::{AtomicBool, Ordering};

use alloc_buddy_simple::lock_api::{GuardNoSend, RawMutex};

/// `mstatus.MIE`, the machine-mode interrupt enable (bit 3).
const MSTATUS_MIE: usize = 1 << 3;

/// A spinlock that disables machine interrupts while held and then restores their previous state.
pub struct IrqSaveSpinLock {
    /// Whether the lock is held.
    locked: AtomicBool,
    /// Whether interrupts were enabled when the holder locked. Only the holder reads or writes it
    /// (after acquiring `locked`, before releasing it), so `Relaxed` suffices.
    irq_was_enabled: AtomicBool,
}

/// Disables machine interrupts on this hart; returns whether they were enabled.
fn irq_save() -> bool {
    let mstatus: usize;
    // SAFETY: `csrrci` atomically reads `mstatus` and clears MIE, which machine mode may do. The
    // asm is not `nomem`, so the compiler moves no memory access across it.
    unsafe { core::arch::asm!("csrrci {}, mstatus, 8", out(reg) mstatus, options(nostack)) };
    mstatus & MSTATUS_MIE != 0
}

/// Enables machine interrupts again if `was_enabled` (a result of [`irq_save`]).
fn irq_restore(was_enabled: bool) {
    if was_enabled {
        // SAFETY: sets MIE as it was before the matching `irq_save`. Not `nomem`: the
        // compiler moves no memory access across it.
        unsafe { core::arch::asm!("csrsi mstatus, 8", options(nostack)) };
    }
}

// SAFETY: mutual exclusion: `locked` is set only by a successful compare-exchange (`Acquire`) and
// cleared only by `unlock` (`Release`), so one holder at a time, and each holder's accesses to the
// protected data happen-before the next holder's. Interrupts stay disabled on the holder's hart
// from before it acquires until after it releases, so no handler on that hart can wait for the
// lock while it is held. The guard is `!Send` (`GuardNoSend`): it must be unlocked on the hart
// whose interrupt state it saved.
unsafe impl RawMutex for IrqSaveSpinLock {
    #[allow(clippy::declare_interior_mutable_const)]
    const INIT: Self =
        IrqSaveSpinLock { locked: AtomicBool::new(false), irq_was_enabled: AtomicBool::new(false) };

    type GuardMarker = GuardNoSend;

    fn lock(&self) {
        // Interrupts off first: a handler that ran between taking the lock and disabling them
        // would spin on it forever.
        let was_enabled = irq_save();
        while self.locked.compare_exchange_weak(false, true, Ordering::Acquire, Ordering::Relaxed).is_err() {
            // Held by another hart: wait until it looks free, then try again.
            while self.locked.load(Ordering::Relaxed) {
                spin_loop();
            }
        }
        self.irq_was_enabled.store(was_enabled, Ordering::Relaxed);
    }

    fn try_lock(&self) -> bool {
        let was_enabled = irq_save();
        if self.locked.compare_exchange(false, true, Ordering::Acquire, Ordering::Relaxed).is_ok() {
            self.irq_was_enabled.store(was_enabled, Ordering::Relaxed);
            true
        } else {
            irq_restore(was_enabled);
            false
        }
    }

    unsafe fn unlock(&self) {
        // Read it before releasing: the next holder overwrites it.
        let was_enabled = self.irq_was_enabled.load(Ordering::Relaxed);
        self.locked.store(false, Ordering::Release);
        // Only if they were enabled before `lock`. An interrupt handler locks with interrupts
        // disabled and must leave them so, or its own (still pending) interrupt would nest.
        irq_restore(was_enabled);
    }
}
