//! `LockedHeap`: a [`Heap`] behind a lock, usable as `#[global_allocator]`.

use core::alloc::{GlobalAlloc, Layout};
use core::fmt;
use core::ops::{Deref, DerefMut};
use core::ptr::{self, NonNull};

use lock_api::RawMutex;

use crate::error::{AllocError, HeapError};
use crate::heap::{CacheFree, Heap, misuse_abort, resized};
use crate::lock::DefaultLock;
use crate::order::Fit;

/// Cached freed blocks per small order in a `LockedHeap` (see [`Heap::with_cache`]).
const CACHE_BLOCKS: usize = 16;

/// The most bytes a moving `realloc` copies while it holds the lock: a smaller copy costs less
/// than unlocking and locking again (two atomic operations), and a larger one is made with the
/// lock released. (talc's threshold is 16 KiB; a quarter of that keeps the lock, and with
/// `CriticalSectionLock` interrupts, held for at most a few hundred nanoseconds of copying.)
const COPY_UNDER_LOCK: usize = 4096;

/// A [`Heap`] behind a lock `R`, for use as `#[global_allocator]`.
///
/// Its heap caches up to 16 freed blocks of each of the fourteen smallest orders, and a hot one
/// ([`Heap::with_cache`]), which makes small alloc/free pairs cheap; [`Heap::coalesce`] (through
/// [`LockedHeap::lock`]) gives them back.
///
/// `R` is any [`lock_api::RawMutex`]; by default the spinlock [`SpinLock`](crate::SpinLock)
/// (or `CriticalSectionLock` (feature `critical-section`) on targets without compare-and-swap).
/// Every allocation returns null until memory is added with [`LockedHeap::init`] (or the arena
/// of [`heap_with_arena!`](crate::heap_with_arena) is claimed on first use).
///
/// # Interrupts
///
/// The default spinlock does not disable interrupts. If an interrupt handler allocates or frees
/// while the interrupted code holds the lock, the handler spins forever. If handlers allocate,
/// use `CriticalSectionLock` (feature `critical-section`) or a lock of your own that disables
/// interrupts (see the README's "Locks and interrupts").
///
/// # Examples
///
/// ```no_run
/// use alloc_buddy_simple::LockedHeap;
///
/// #[global_allocator]
/// static HEAP: LockedHeap = LockedHeap::new();
///
/// fn boot(heap_start: *mut u8, heap_size: usize) {
///     // SAFETY: the memory is the kernel's heap, used by nothing else.
///     unsafe { HEAP.init(heap_start, heap_size) }.expect("heap init");
/// }
/// ```
pub struct LockedHeap<const ORDERS: usize = 32, R: RawMutex = DefaultLock> {
    inner: lock_api::Mutex<R, Inner<ORDERS>>,
}

/// The state behind the lock: `repr(C)`, so that the heap's hot fields come first, and aligned
/// to a cache line, so that they are not on the lock's. A thread spinning on the lock keeps
/// reading the lock's line; had the holder's counters been on it too, each of the holder's writes
/// would have had to take the line back. Two threads, random actions with realloc at 200 / 1000 /
/// 3000 / 10 000 / 30 000 B (quick mode, median of 3 interleaved runs, ours / talc): hot fields
/// on the lock's line 0.94 / 0.99 / 1.05 / 1.13 / 1.23x, on a line of their own 1.33 / 1.44 /
/// 1.52 / 1.58 / 1.59x (the compiler's order, which left the first free lists on the lock's
/// line, 1.10 / 1.22 / 1.25 / 1.36 / 1.43x). A `LockedHeap<32>` is 3136 bytes.
#[repr(C, align(64))]
struct Inner<const ORDERS: usize> {
    heap: Heap<ORDERS>,
    /// A static arena to add on first use, or null.
    arena: *mut u8,
    arena_size: usize,
}

/// The guard of a [`LockedHeap`]'s lock.
type Guard<'a, const ORDERS: usize, R> = lock_api::MutexGuard<'a, R, Inner<ORDERS>>;

// SAFETY: `arena` is memory owned by the heap (the `with_arena` contract), moved with it.
unsafe impl<const ORDERS: usize> Send for Inner<ORDERS> {}

static_assertions::assert_impl_all!(LockedHeap: Send, Sync);
static_assertions::const_assert_eq!(core::mem::align_of::<Inner<32>>(), 64);
#[cfg(any(feature = "critical-section", not(target_has_atomic = "8")))]
static_assertions::assert_impl_all!(LockedHeap<32, crate::CriticalSectionLock>: Send, Sync);
static_assertions::assert_impl_all!(Heap: Send);

impl<const ORDERS: usize, R: RawMutex> LockedHeap<ORDERS, R> {
    /// An empty heap: every allocation returns null until [`LockedHeap::init`].
    pub const fn new() -> Self {
        // SAFETY: a null arena is never claimed.
        unsafe { Self::with_arena(ptr::null_mut(), 0) }
    }

    /// A heap that adds the region `arena..arena + size` on its first use (the first
    /// allocation or [`LockedHeap::lock`]), so it can serve allocations made before `main`
    /// (a hosted program's runtime makes some). [`heap_with_arena!`](crate::heap_with_arena)
    /// calls this with a static array of its own. A null `arena` means none.
    ///
    /// If the arena is unusable (see [`Heap::add_region`]), allocations fail as on an empty heap.
    ///
    /// # Safety
    ///
    /// The region must be valid for reads and writes for `'static`, and used by nothing else.
    pub const unsafe fn with_arena(arena: *mut u8, size: usize) -> Self {
        let heap = Heap::new().with_cache(CACHE_BLOCKS);
        LockedHeap { inner: lock_api::Mutex::new(Inner { heap, arena, arena_size: size }) }
    }

    /// An empty heap that sizes allocations with `fit` (see [`Fit`]).
    pub const fn with_fit(fit: Fit) -> Self {
        let heap = Heap::with_fit(fit).with_cache(CACHE_BLOCKS);
        let inner = Inner { heap, arena: ptr::null_mut(), arena_size: 0 };
        LockedHeap { inner: lock_api::Mutex::new(inner) }
    }

    /// Gives the heap its first region. See [`Heap::init`]. A heap made with an arena
    /// ([`heap_with_arena!`](crate::heap_with_arena)) already has one: add more memory with
    /// `lock().add_region(..)`.
    ///
    /// # Safety
    ///
    /// The region must be valid for reads and writes for `'static`, and used by nothing else.
    ///
    /// # Errors
    ///
    /// As [`Heap::init`].
    pub unsafe fn init(&self, start: *mut u8, size: usize) -> Result<(), HeapError> {
        // SAFETY: the caller's contract is `Heap::init`'s.
        unsafe { self.lock().init(start, size) }
    }

    /// Locks the heap and gives `&mut` access to it, for [`Heap::add_region`],
    /// [`Heap::stats`] and the rest. The lock is held until the guard is dropped; allocating
    /// through the global allocator meanwhile deadlocks.
    pub fn lock(&self) -> HeapGuard<'_, ORDERS, R> {
        let mut guard = self.inner.lock();
        guard.claim_arena();
        HeapGuard { guard }
    }
}

impl<const ORDERS: usize> Inner<ORDERS> {
    /// Adds the arena to the heap if it is still waiting; returns whether it did.
    ///
    /// The global allocator's paths call this only when an allocation fails: before the arena is
    /// claimed the heap is empty, so every allocation fails and nothing can be freed, and the
    /// fast paths carry no check for it.
    fn claim_arena(&mut self) -> bool {
        if self.arena.is_null() {
            return false;
        }
        let arena = core::mem::replace(&mut self.arena, ptr::null_mut());
        // SAFETY: the `with_arena` contract; the arena is added once (it is cleared above). An
        // unusable arena leaves the heap empty, as documented.
        unsafe { self.heap.add_region(arena, self.arena_size) }.is_ok()
    }

    /// `Heap::alloc`, claiming the arena first if the heap has none yet.
    #[inline(always)]
    fn alloc(&mut self, layout: Layout) -> Option<NonNull<u8>> {
        match self.heap.cache_alloc(layout, true) {
            Some(block) => Some(block),
            None => self.alloc_slow(layout),
        }
    }

    /// The rest of [`Inner::alloc`] when no cached block serves the layout whole: the heap's
    /// slow path, and on failure the arena if it is still waiting.
    #[inline]
    fn alloc_slow(&mut self, layout: Layout) -> Option<NonNull<u8>> {
        match self.heap.alloc_slow(layout) {
            Ok(block) => Some(block),
            Err(_) if self.claim_arena() => self.heap.alloc(layout).ok(),
            Err(_) => None,
        }
    }
}

impl<const ORDERS: usize, R: RawMutex> Default for LockedHeap<ORDERS, R> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const ORDERS: usize, R: RawMutex> fmt::Debug for LockedHeap<ORDERS, R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.inner.try_lock() {
            Some(inner) => f.debug_struct("LockedHeap").field("heap", &inner.heap).finish(),
            None => f.write_str("LockedHeap { <locked> }"),
        }
    }
}

/// `&mut` access to a [`LockedHeap`]'s heap; unlocks when dropped.
pub struct HeapGuard<'a, const ORDERS: usize = 32, R: RawMutex = DefaultLock> {
    guard: lock_api::MutexGuard<'a, R, Inner<ORDERS>>,
}

impl<const ORDERS: usize, R: RawMutex> Deref for HeapGuard<'_, ORDERS, R> {
    type Target = Heap<ORDERS>;

    fn deref(&self) -> &Heap<ORDERS> {
        &self.guard.heap
    }
}

impl<const ORDERS: usize, R: RawMutex> DerefMut for HeapGuard<'_, ORDERS, R> {
    fn deref_mut(&mut self) -> &mut Heap<ORDERS> {
        &mut self.guard.heap
    }
}

impl<const ORDERS: usize, R: RawMutex> fmt::Debug for HeapGuard<'_, ORDERS, R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("HeapGuard").field(&self.guard.heap).finish()
    }
}

// SAFETY: every method forwards to `Heap` under the lock, and `Heap` upholds `GlobalAlloc`'s
// contract: blocks are aligned to the layout, never overlap while live, and stay valid until
// freed. Nothing unwinds: failures return null, and detected misuse aborts.
unsafe impl<const ORDERS: usize, R: RawMutex> GlobalAlloc for LockedHeap<ORDERS, R> {
    #[inline]
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let mut inner = self.inner.lock();
        match inner.heap.cache_alloc(layout, true) {
            Some(block) => block.as_ptr(),
            None => Self::alloc_slow(inner, layout),
        }
    }

    #[inline]
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `GlobalAlloc::dealloc`'s contract (a null `ptr` is let through).
        unsafe { Self::free_locked(self.inner.lock(), ptr, layout) }
    }

    #[inline]
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let Some(old) = NonNull::new(ptr) else { return ptr::null_mut() };
        let mut inner = self.inner.lock();
        let (region, held) = match inner.heap.find_live(old, layout) {
            Ok(live) => live,
            Err(err) => {
                // Abort without holding the lock.
                drop(inner);
                misuse_abort(&err)
            }
        };
        let Ok(new_layout) = resized(layout, new_size) else { return ptr::null_mut() };
        // SAFETY: `find_live` found the live allocation and what it holds.
        match unsafe { inner.heap.resize_live(region, held, old, layout, new_layout) } {
            Ok(()) => return ptr,
            Err(AllocError::OutOfMemory) => {}
            Err(_) => return ptr::null_mut(),
        }
        let Some(new) = inner.alloc(new_layout) else { return ptr::null_mut() };
        let bytes = layout.size().min(new_size);
        if bytes > COPY_UNDER_LOCK {
            // A large copy is made without the lock, so other threads (and, under a lock that
            // masks interrupts, interrupts) are not held up by it.
            drop(inner);
            // SAFETY: both blocks are live and distinct, and each holds the bytes copied.
            unsafe { ptr::copy_nonoverlapping(ptr, new.as_ptr(), bytes) };
            // SAFETY: `old` is still live with `layout`; the free checks it again, as the heap
            // changed while unlocked.
            unsafe { Self::free_locked(self.inner.lock(), ptr, layout) };
        } else {
            // SAFETY: as above.
            unsafe { ptr::copy_nonoverlapping(ptr, new.as_ptr(), bytes) };
            // SAFETY: the old allocation is still live: an allocation never changes another
            // one's marks, so `find_live`'s findings stand.
            unsafe { inner.heap.free_live(region, held, old, layout) };
        }
        new.as_ptr()
    }
}

impl<const ORDERS: usize, R: RawMutex> LockedHeap<ORDERS, R> {
    /// The rest of [`GlobalAlloc::alloc`] when no cached block serves the layout whole, under
    /// the lock `inner` holds. Out of line and given the guard, so that the cached path makes
    /// only this call, last: it keeps nothing across it, and saves no registers.
    #[inline(never)]
    fn alloc_slow(mut inner: Guard<'_, ORDERS, R>, layout: Layout) -> *mut u8 {
        inner.alloc_slow(layout).map_or(ptr::null_mut(), NonNull::as_ptr)
    }

    /// Frees `ptr` under the lock `inner` holds, and releases it: into a cache inline, or
    /// through [`LockedHeap::free_full`] or [`LockedHeap::dealloc_slow`].
    ///
    /// A null `ptr` does nothing, and costs the cached path no test: no region holds address 0,
    /// so `cache_free` declines it, and `dealloc_slow` tells it.
    ///
    /// # Safety
    ///
    /// As [`GlobalAlloc::dealloc`], or `ptr` null.
    #[inline(always)]
    unsafe fn free_locked(mut inner: Guard<'_, ORDERS, R>, ptr: *mut u8, layout: Layout) {
        // SAFETY: the caller's contract is `Heap::try_dealloc`'s.
        match unsafe { inner.heap.cache_free(ptr, layout) } {
            CacheFree::Cached => {}
            // SAFETY: `cache_free` found a live whole block of `order` at `ptr`.
            CacheFree::Full(order) => unsafe { Self::free_full(inner, ptr.addr(), layout.size(), order) },
            // SAFETY: the caller's contract is `Heap::try_dealloc`'s.
            CacheFree::Declined => unsafe { Self::dealloc_slow(inner, ptr, layout.size(), layout.align()) },
        }
    }

    // The two out-of-line ends of a free take scalars, each only what it needs: the calls are
    // then the cached path's last instruction (a jump), and the cached path saves few registers
    // (callgrind, a 4 KiB pair, with the cache's list: 158 -> 152 instructions). Both take the
    // size third (in `rdx` on x86-64), and the compiler keeps it there across the checks. With
    // the size fourth, in `rcx`, where x86 wants every variable shift count (as `dealloc_slow`'s
    // layout put it), the compiler moved it out and back around each of the checks' shifts
    // (a 4 KiB pair: 138 -> 134 instructions, the saved registers unchanged at two).

    /// The rest of a free whose order's cache is full, under the lock `inner` holds, given what
    /// [`Heap::cache_free`] found ([`CacheFree::Full`]): the block is freed and merged without
    /// being checked again.
    ///
    /// # Safety
    ///
    /// `cache_free` returned `CacheFree::Full(order)` for `addr` and a layout of `size` bytes,
    /// with nothing changed since.
    #[inline(never)]
    unsafe fn free_full(mut inner: Guard<'_, ORDERS, R>, addr: usize, size: usize, order: usize) {
        // SAFETY: the caller's contract is `Heap::free_full`'s.
        unsafe { inner.heap.free_full(addr, order, size) };
    }

    /// The rest of a free that [`Heap::cache_free`] declined (a larger or partial allocation, or
    /// misuse), under the lock `inner` holds (out of line, as [`LockedHeap::alloc_slow`]).
    /// Misuse aborts after the lock is released.
    ///
    /// # Safety
    ///
    /// As [`GlobalAlloc::dealloc`], or `ptr` null (nothing is done).
    #[inline(never)]
    unsafe fn dealloc_slow(mut inner: Guard<'_, ORDERS, R>, ptr: *mut u8, size: usize, align: usize) {
        let Some(ptr) = NonNull::new(ptr) else { return };
        // SAFETY: the parts of the caller's layout.
        let layout = unsafe { Layout::from_size_align_unchecked(size, align) };
        // SAFETY: the caller's contract is `Heap::try_dealloc`'s.
        let result = unsafe { inner.heap.free_checked(ptr, layout) };
        drop(inner);
        if let Err(err) = result {
            misuse_abort(&err);
        }
    }
}

/// A [`LockedHeap`] that owns a static arena of `$size` bytes (aligned to 4 KiB), claimed on its
/// first use; optionally with the number of orders and the lock type as further arguments.
///
/// This is the one-line way to make a hosted program (or a test binary) use the crate as its
/// global allocator, including for the allocations its runtime makes before `main`. The arena is
/// a zeroed static, so it lives in `.bss` and costs no file size.
///
/// # Examples
///
/// ```
/// use alloc_buddy_simple::{LockedHeap, heap_with_arena};
///
/// #[global_allocator]
/// static HEAP: LockedHeap = heap_with_arena!(4 << 20);
///
/// let v: Vec<u32> = (0..1000).collect();
/// assert_eq!(v.iter().sum::<u32>(), 499_500);
/// let allocations = HEAP.lock().stats().allocations;
/// assert!(allocations >= 1);
/// ```
#[macro_export]
macro_rules! heap_with_arena {
    ($size:expr) => {
        $crate::heap_with_arena!($size, 32, $crate::DefaultLock)
    };
    ($size:expr, $orders:expr) => {
        $crate::heap_with_arena!($size, $orders, $crate::DefaultLock)
    };
    ($size:expr, $orders:expr, $lock:ty) => {{
        // The size is evaluated once, before the items below exist, so the caller's names (even
        // one called like them) are never shadowed.
        const __ALLOC_BUDDY_SIMPLE_SIZE: usize = $size;
        #[repr(C, align(4096))]
        struct __AllocBuddySimpleArena([u8; __ALLOC_BUDDY_SIMPLE_SIZE]);
        static mut __ALLOC_BUDDY_SIMPLE_ARENA: __AllocBuddySimpleArena =
            __AllocBuddySimpleArena([0; __ALLOC_BUDDY_SIMPLE_SIZE]);
        // SAFETY: the arena is private to this expansion, which makes exactly one heap.
        unsafe {
            $crate::LockedHeap::<$orders, $lock>::with_arena(
                (&raw mut __ALLOC_BUDDY_SIMPLE_ARENA).cast::<u8>(),
                __ALLOC_BUDDY_SIMPLE_SIZE,
            )
        }
    }};
}
