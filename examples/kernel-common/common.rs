//! Code shared by the bare-metal test kernels (`examples/kernel-riscv64`,
//! `examples/kernel-riscv32`), included by each with `#[path]`.
//!
//! It provides the entry point (`_start`), the trap entry and handler, the machine timer, the 16550
//! UART console, the `SiFive` test device used to exit QEMU, the panic handler, the global
//! allocator (behind the interrupt-disabling [`IrqSaveSpinLock`] of `irqsave_lock.rs`, so the timer
//! interrupt handler can allocate), and [`run`], which exercises the allocator and exits QEMU with
//! status 0 only if every check held.
//!
//! Each kernel crate defines `NAME` (printed in every line) and calls [`run`] from `kmain`.

use alloc::boxed::Box;
use alloc::collections::BTreeMap;
use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;
use core::alloc::{GlobalAlloc, Layout};
use core::fmt::{self, Write};
use core::hint::black_box;
use core::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use alloc_buddy_simple::{HeapError, LockedHeap, Stats};

#[path = "irqsave_lock.rs"]
mod irqsave_lock;
pub use irqsave_lock::IrqSaveSpinLock;

// The console macros come first: macros are visible only below their definition.
#[allow(unused_macros)]
macro_rules! print {
    ($($arg:tt)*) => { $crate::common::print_args(format_args!($($arg)*)) };
}

macro_rules! println {
    () => { $crate::common::print_args(format_args!("\n")) };
    ($($arg:tt)*) => { $crate::common::print_args(format_args!("{}\n", format_args!($($arg)*))) };
}

// ---------------------------------------------------------------------------------------------
// Entry point and trap handler.
//
// QEMU's `virt` machine with `-bios none` jumps to 0x8000_0000 in machine mode, where the linker
// script puts `.text.init`. Harts other than 0 park. Hart 0 installs the trap vector, enables the
// FPU (riscv64gc code may use it; the bits are ignored where there is no FPU), sets the stack,
// zeroes `.bss` and calls `kmain`. The code is the same for RV32 and RV64: register slots are
// `REGBYTES` wide and `SAVE`/`LOAD` pick `sd`/`ld` or `sw`/`lw`.
//
// `__trap_entry` serves exceptions and interrupts alike. On the interrupted code's stack it saves
// the registers a C function may clobber (ra, t0-t6, a0-a7; `trap_handler` saves the rest itself)
// and `mstatus`, turns the FPU off (mstatus.FS = 0) so the handler cannot silently clobber the
// interrupted code's floating-point registers (it would fault instead), calls `trap_handler`,
// restores FS and the registers, and returns with `mret`. The hart clears MIE on entry and `mret`
// restores it, so handlers do not nest.
core::arch::global_asm!(
    r#"
    .equ    REGBYTES, {regbytes}
    .macro SAVE reg, slot
    .if REGBYTES == 8
    sd      \reg, \slot * REGBYTES(sp)
    .else
    sw      \reg, \slot * REGBYTES(sp)
    .endif
    .endm
    .macro LOAD reg, slot
    .if REGBYTES == 8
    ld      \reg, \slot * REGBYTES(sp)
    .else
    lw      \reg, \slot * REGBYTES(sp)
    .endif
    .endm

    .section .text.init, "ax"
    .global _start
_start:
    csrr    t0, mhartid
    bnez    t0, 3f
    la      t0, __trap_entry
    csrw    mtvec, t0
    li      t0, 0x2000
    csrs    mstatus, t0
    la      sp, __stack_top
    la      t0, __bss_start
    la      t1, __bss_end
1:
    bgeu    t0, t1, 2f
    sb      zero, 0(t0)
    addi    t0, t0, 1
    j       1b
2:
    call    kmain
3:
    wfi
    j       3b

    .balign 4
__trap_entry:
    addi    sp, sp, -{frame}
    SAVE    ra, 0
    SAVE    t0, 1
    SAVE    t1, 2
    SAVE    t2, 3
    SAVE    t3, 4
    SAVE    t4, 5
    SAVE    t5, 6
    SAVE    t6, 7
    SAVE    a0, 8
    SAVE    a1, 9
    SAVE    a2, 10
    SAVE    a3, 11
    SAVE    a4, 12
    SAVE    a5, 13
    SAVE    a6, 14
    SAVE    a7, 15
    csrr    t0, mstatus
    SAVE    t0, 16
    li      t0, 0x6000
    csrc    mstatus, t0
    call    trap_handler
    LOAD    t0, 16
    li      t1, 0x6000
    and     t0, t0, t1
    csrs    mstatus, t0
    LOAD    ra, 0
    LOAD    t0, 1
    LOAD    t1, 2
    LOAD    t2, 3
    LOAD    t3, 4
    LOAD    t4, 5
    LOAD    t5, 6
    LOAD    t6, 7
    LOAD    a0, 8
    LOAD    a1, 9
    LOAD    a2, 10
    LOAD    a3, 11
    LOAD    a4, 12
    LOAD    a5, 13
    LOAD    a6, 14
    LOAD    a7, 15
    addi    sp, sp, {frame}
    mret
"#,
    regbytes = const size_of::<usize>(),
    // 17 slots (16 registers and mstatus), rounded up to keep `sp` 16-byte aligned.
    frame = const (17 * size_of::<usize>()).next_multiple_of(16),
);

/// The `mcause` interrupt bit (the top bit).
const MCAUSE_INTERRUPT: usize = 1 << (usize::BITS - 1);
/// `mcause` of the machine timer interrupt.
const MCAUSE_MACHINE_TIMER: usize = MCAUSE_INTERRUPT | 7;

/// Called by `__trap_entry` for every trap. The machine timer interrupt runs
/// [`timer_interrupt`], which allocates; anything else (an exception: there are no other
/// interrupts enabled) is reported and fails.
#[unsafe(no_mangle)]
extern "C" fn trap_handler() {
    let mcause: usize;
    // SAFETY: reading a machine-mode CSR has no side effects.
    unsafe { core::arch::asm!("csrr {}, mcause", out(reg) mcause) };
    if mcause == MCAUSE_MACHINE_TIMER {
        timer_interrupt();
        return;
    }
    let (mepc, mtval): (usize, usize);
    // SAFETY: as above.
    unsafe {
        core::arch::asm!("csrr {}, mepc", out(reg) mepc);
        core::arch::asm!("csrr {}, mtval", out(reg) mtval);
    }
    println!("{}: TRAP mcause={mcause:#x} mepc={mepc:#x} mtval={mtval:#x}", crate::NAME);
    exit_failure(2)
}

// ---------------------------------------------------------------------------------------------
// The machine timer: the CLINT of QEMU's `virt` machine, whose timebase is 10 MHz.

const CLINT_MTIME: usize = 0x0200_BFF8;
/// `mtimecmp` of hart 0.
const CLINT_MTIMECMP: usize = 0x0200_4000;
/// `mie.MTIE` and `mip.MTIP`: the machine timer interrupt's enable and pending bits.
const MIE_MTIE: usize = 1 << 7;
/// Ticks between two timer interrupts: 200 µs.
const TIMER_INTERVAL: u64 = 2000;

/// Timer interrupts handled since boot.
static TIMER_TICKS: AtomicUsize = AtomicUsize::new(0);
/// Timer interrupts whose handler allocated and freed through the global allocator and found the
/// blocks intact.
static TIMER_ALLOCS: AtomicUsize = AtomicUsize::new(0);

fn mtime() -> u64 {
    #[cfg(target_pointer_width = "64")]
    // SAFETY: `mtime` is a 64-bit MMIO register of the CLINT at a fixed address on `virt`.
    return unsafe { (CLINT_MTIME as *const u64).read_volatile() };
    #[cfg(target_pointer_width = "32")]
    loop {
        // SAFETY: the two 32-bit halves of `mtime`, MMIO at fixed addresses on `virt`. The high
        // half is read twice, so a carry between the reads is caught (and retried).
        let (hi, lo, hi2) = unsafe {
            let hi = ((CLINT_MTIME + 4) as *const u32).read_volatile();
            let lo = (CLINT_MTIME as *const u32).read_volatile();
            (hi, lo, ((CLINT_MTIME + 4) as *const u32).read_volatile())
        };
        if hi == hi2 {
            return (u64::from(hi) << 32) | u64::from(lo);
        }
    }
}

fn set_mtimecmp(value: u64) {
    #[cfg(target_pointer_width = "64")]
    // SAFETY: hart 0's `mtimecmp`, a 64-bit MMIO register of the CLINT at a fixed address.
    unsafe {
        (CLINT_MTIMECMP as *mut u64).write_volatile(value)
    };
    #[cfg(target_pointer_width = "32")]
    // SAFETY: the two 32-bit halves of hart 0's `mtimecmp`, MMIO at fixed addresses. The high
    // half is set to the maximum first, so no intermediate value is below the target.
    unsafe {
        ((CLINT_MTIMECMP + 4) as *mut u32).write_volatile(u32::MAX);
        (CLINT_MTIMECMP as *mut u32).write_volatile(value as u32);
        ((CLINT_MTIMECMP + 4) as *mut u32).write_volatile((value >> 32) as u32);
    }
}

/// Whether machine interrupts are enabled (`mstatus.MIE`).
fn interrupts_enabled() -> bool {
    let mstatus: usize;
    // SAFETY: reading a machine-mode CSR has no side effects.
    unsafe { core::arch::asm!("csrr {}, mstatus", out(reg) mstatus) };
    mstatus & (1 << 3) != 0
}

/// Whether the timer interrupt is pending (`mip.MTIP`).
fn timer_pending() -> bool {
    let mip: usize;
    // SAFETY: reading a machine-mode CSR has no side effects.
    unsafe { core::arch::asm!("csrr {}, mip", out(reg) mip) };
    mip & MIE_MTIE != 0
}

/// Arms the timer and enables the timer interrupt and machine interrupts.
fn timer_start() {
    set_mtimecmp(mtime() + TIMER_INTERVAL);
    // SAFETY: sets `mie.MTIE` and `mstatus.MIE`; `trap_handler` handles the timer interrupt.
    // Not `nomem`: the compiler moves no memory access across them.
    unsafe {
        core::arch::asm!("csrs mie, {}", in(reg) MIE_MTIE, options(nostack));
        core::arch::asm!("csrsi mstatus, 8", options(nostack));
    }
}

/// Disables machine interrupts and the timer interrupt, and disarms the timer.
fn timer_stop() {
    // SAFETY: clears `mstatus.MIE` and `mie.MTIE`. Not `nomem`, as above.
    unsafe {
        core::arch::asm!("csrci mstatus, 8", options(nostack));
        core::arch::asm!("csrc mie, {}", in(reg) MIE_MTIE, options(nostack));
    }
    set_mtimecmp(u64::MAX);
}

/// The machine timer interrupt: allocates and frees through the global allocator (which would
/// deadlock with a plain spinlock whenever the interrupted code holds the heap lock), checks the
/// blocks, counts itself and re-arms the timer.
fn timer_interrupt() {
    let n = TIMER_TICKS.load(Ordering::Relaxed) as u32;
    let v: Vec<u32> = (0..300).map(|i| i ^ n).collect();
    let b = Box::new([n; 16]);
    let s = format!("tick {n}");
    assert!(in_heap(v.as_ptr()) && in_heap(&raw const *b) && in_heap(s.as_ptr()));
    assert!(v.iter().enumerate().all(|(i, &x)| x == i as u32 ^ n), "tick {n}: Vec overwritten");
    assert!(b.iter().all(|&x| x == n), "tick {n}: Box overwritten");
    assert_eq!(s.strip_prefix("tick ").and_then(|d| d.parse::<u32>().ok()), Some(n));
    drop((v, b, s));
    TIMER_ALLOCS.fetch_add(1, Ordering::Relaxed);
    TIMER_TICKS.fetch_add(1, Ordering::Relaxed);
    // Re-armed after the work, so the interrupted code runs at least `TIMER_INTERVAL` between two.
    set_mtimecmp(mtime() + TIMER_INTERVAL);
}

// ---------------------------------------------------------------------------------------------
// Console: the 16550 UART of QEMU's `virt` machine. QEMU needs no initialisation.

const UART: usize = 0x1000_0000;
const UART_THR: usize = UART;
const UART_LSR: usize = UART + 5;
const LSR_THR_EMPTY: u8 = 1 << 5;

/// The console; stateless, so any number of them may exist.
pub struct Uart;

impl Uart {
    fn put(byte: u8) {
        // SAFETY: the UART's registers are MMIO at fixed addresses on `virt`; byte accesses.
        unsafe {
            while (UART_LSR as *const u8).read_volatile() & LSR_THR_EMPTY == 0 {}
            (UART_THR as *mut u8).write_volatile(byte);
        }
    }
}

impl Write for Uart {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        s.bytes().for_each(Uart::put);
        Ok(())
    }
}

pub fn print_args(args: fmt::Arguments<'_>) {
    // Never allocates, so it is safe while the heap is locked or exhausted.
    let _ = Uart.write_fmt(args);
}

// ---------------------------------------------------------------------------------------------
// Exit: the SiFive test device ("sifive_test") of QEMU's `virt` machine.

const TEST_DEVICE: usize = 0x10_0000;
const TEST_PASS: u32 = 0x5555;
const TEST_FAIL: u32 = 0x3333;

fn test_device(value: u32) -> ! {
    // SAFETY: the test device is MMIO at a fixed address on `virt`; writing makes QEMU exit.
    unsafe { (TEST_DEVICE as *mut u32).write_volatile(value) };
    loop {
        // SAFETY: `wfi` only waits.
        unsafe { core::arch::asm!("wfi") };
    }
}

/// Exits QEMU with status 0.
pub fn exit_success() -> ! {
    test_device(TEST_PASS)
}

/// Exits QEMU with status `code` (1..=`0xffff`; 0 would read as success, so it becomes 1).
pub fn exit_failure(code: u16) -> ! {
    let code = if code == 0 { 1 } else { code };
    test_device((u32::from(code) << 16) | TEST_FAIL)
}

static PANICKED: AtomicBool = AtomicBool::new(false);

#[panic_handler]
fn panic(info: &core::panic::PanicInfo<'_>) -> ! {
    if !PANICKED.swap(true, Ordering::Relaxed) {
        // Formatting the panic message does not allocate.
        println!("{}: PANIC: {info}", crate::NAME);
        println!("{}: FAILED", crate::NAME);
    }
    exit_failure(1)
}

// ---------------------------------------------------------------------------------------------
// The heap.

/// The global allocator. Its lock disables interrupts while held, so the timer interrupt handler
/// may allocate: with the default spinlock it would deadlock whenever it interrupted a heap
/// operation.
#[global_allocator]
static HEAP: LockedHeap<32, IrqSaveSpinLock> = LockedHeap::new();

unsafe extern "C" {
    // Defined by the linker script: the heap is `__heap_start..__heap_end`.
    static mut __heap_start: u8;
    static mut __heap_end: u8;
}

/// Sizes of the checks; the kernels pick them.
pub struct Config {
    /// Elements pushed into a `Vec<u64>`.
    pub vec_len: usize,
    /// Entries of the `BTreeMap<u32, String>`.
    pub map_len: u32,
    /// Rounds of the push / `shrink_to_fit` loop.
    pub realloc_rounds: usize,
    /// Allocate / free operations of the random stress step.
    pub stress_ops: usize,
    /// Allocate / free / realloc operations of the interrupt step, with the timer ticking.
    pub irq_ops: usize,
}

/// The heap's bounds, from the linker script.
pub fn heap_bounds() -> (*mut u8, usize) {
    let start = &raw mut __heap_start;
    let end = (&raw mut __heap_end).addr();
    (start, end - start.addr())
}

fn in_heap<T: ?Sized>(ptr: *const T) -> bool {
    let (start, size) = heap_bounds();
    let addr = ptr.cast::<u8>().addr();
    addr >= start.addr() && addr - start.addr() < size
}

fn stats() -> Stats {
    HEAP.lock().stats()
}

fn ok(what: fmt::Arguments<'_>) {
    println!("{}: [ok] {what}", crate::NAME);
}

/// A small xorshift generator, for reproducible "random" sizes.
struct Rng(u32);

impl Rng {
    fn next(&mut self) -> u32 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        self.0 = x;
        x
    }

    fn below(&mut self, n: u32) -> u32 {
        self.next() % n
    }
}

/// Runs every check, then exits QEMU: with status 0 if all held, otherwise through the panic
/// handler with a non-zero status.
#[allow(dead_code)]
pub fn run(cfg: &Config) -> ! {
    run_with(cfg, || {})
}

/// As [`run`], with the kernel's own checks `extra`, run after the common ones (everything
/// `extra` allocates must be freed when it returns).
pub fn run_with(cfg: &Config, extra: fn()) -> ! {
    let name = crate::NAME;
    let (heap_start, heap_size) = heap_bounds();
    println!("{name}: booted, {}-bit", usize::BITS);
    println!(
        "{name}: heap {:#x}..{:#x} ({} KiB)",
        heap_start.addr(),
        heap_start.addr() + heap_size,
        heap_size / 1024
    );

    // Before `init` the heap is empty and every allocation fails cleanly.
    let layout = Layout::from_size_align(64, 8).unwrap();
    // `black_box`: the optimiser may otherwise remove an allocation that is never used.
    // SAFETY: the layout has a non-zero size; the result must be null.
    let p = black_box(unsafe { alloc::alloc::alloc(layout) });
    assert!(p.is_null(), "allocation before init returned {p:p}");
    // SAFETY: as above, directly through `GlobalAlloc`.
    let p = unsafe { HEAP.alloc(layout) };
    assert!(p.is_null(), "allocation before init returned {p:p}");
    ok(format_args!("allocation before init returns null"));

    // SAFETY: the linker script reserves this memory for the heap and nothing else uses it.
    unsafe { HEAP.init(heap_start, heap_size) }.expect("heap init");
    // SAFETY: as above (and it must be refused anyway).
    let again = unsafe { HEAP.init(heap_start, heap_size) };
    assert_eq!(again, Err(HeapError::AlreadyInitialized));
    HEAP.lock().check_invariants().expect("invariants after init");
    let fresh = stats();
    assert_eq!(fresh.regions, 1);
    assert_eq!(fresh.allocations, 0);
    assert_eq!(fresh.free_bytes, fresh.total_bytes);
    assert!(fresh.total_bytes + fresh.metadata_bytes <= heap_size);
    assert!(fresh.total_bytes >= heap_size / 100 * 95, "metadata overhead too large");
    println!("{name}: stats after init:\n{fresh}");
    ok(format_args!("init; second init refused; invariants hold"));

    check_vec(cfg);
    check_box();
    check_string();
    check_btreemap(cfg);
    check_realloc(cfg);
    check_stress(cfg);
    check_irq(cfg);
    check_oom(heap_size);
    extra();

    // Everything is freed: after merging the deferred buddies the heap is whole again.
    let live = stats();
    assert_eq!(live.allocations, 0, "leaked allocations");
    assert_eq!(live.allocated_bytes, 0);
    HEAP.lock().coalesce();
    HEAP.lock().check_invariants().expect("invariants at the end");
    let end = stats();
    println!("{name}: stats at the end (after coalesce):\n{end}");
    assert_eq!(end, fresh, "the heap is not whole again");
    ok(format_args!("all freed; coalesce; invariants hold; stats equal the post-init stats"));

    println!("{name}: all checks passed");
    exit_success()
}

fn check_vec(cfg: &Config) {
    let n = cfg.vec_len;
    let mut v: Vec<u64> = Vec::new();
    for i in 0..n as u64 {
        v.push(i * 3);
    }
    assert_eq!(v.len(), n);
    assert!(in_heap(v.as_ptr()), "Vec buffer {:p} is outside the heap", v.as_ptr());
    let sum: u64 = v.iter().sum();
    let n64 = n as u64;
    assert_eq!(sum, 3 * n64 * (n64 - 1) / 2);
    assert!(v.iter().enumerate().all(|(i, &x)| x == i as u64 * 3));
    let during = stats();
    assert_eq!(during.allocations, 1);
    assert!(during.requested_bytes >= n * 8);
    ok(format_args!("Vec<u64> grown to {n} elements at {:p}, sum {sum}", v.as_ptr()));
}

#[repr(C, align(64))]
#[derive(Debug, PartialEq)]
struct Packet {
    id: u32,
    flags: u16,
    payload: [u8; 200],
    next: Option<Box<Packet>>,
}

fn check_box() {
    let inner = Box::new(Packet { id: 2, flags: 0xbeef, payload: [7; 200], next: None });
    let outer = Box::new(Packet { id: 1, flags: 0x1234, payload: [9; 200], next: Some(inner) });
    let addr = (&raw const *outer).addr();
    assert_eq!(addr % 64, 0, "Box of an align(64) struct at {addr:#x}");
    assert!(in_heap(&raw const *outer));
    let next = outer.next.as_ref().unwrap();
    assert_eq!((&raw const **next).addr() % 64, 0);
    assert_eq!(outer.id + next.id, 3);
    assert_eq!(outer.flags, 0x1234);
    assert_eq!(next.flags, 0xbeef);
    assert!(outer.payload.iter().all(|&b| b == 9) && next.payload.iter().all(|&b| b == 7));
    assert_eq!(stats().allocations, 2);
    let boxed_slice: Box<[u32]> = (0..1000).collect();
    assert_eq!(boxed_slice.iter().sum::<u32>(), 499_500);
    ok(format_args!("Box<Packet> (align 64) at {addr:#x}, nested box, Box<[u32]>"));
}

fn check_string() {
    let s = format!("{}-{:08x}-{:?}-{:>6}", "kernel", 0xdead_beef_u32, Some(42), 1.5f32);
    assert_eq!(s, "kernel-deadbeef-Some(42)-   1.5");
    let mut words: Vec<String> = (0..100).map(|i| i.to_string()).collect();
    words.reverse();
    let joined = words.join(",");
    assert!(joined.starts_with("99,98,97"));
    assert!(joined.ends_with("2,1,0"));
    assert_eq!(joined.split(',').count(), 100);
    let upper = "buddy allocator".to_uppercase();
    assert_eq!(upper, "BUDDY ALLOCATOR");
    ok(format_args!("String formatting: {s:?}"));
}

fn check_btreemap(cfg: &Config) {
    let n = cfg.map_len;
    assert!(!n.is_multiple_of(7), "the scramble below needs gcd(7, n) == 1");
    let mut map: BTreeMap<u32, String> = BTreeMap::new();
    // Insert keys 0, 3, 6, ... in a scrambled order.
    for i in 0..n {
        let key = (i * 7 % n) * 3;
        assert!(map.insert(key, format!("value-{key}")).is_none());
    }
    assert_eq!(map.len(), n as usize);
    for i in 0..n {
        assert_eq!(map.get(&(i * 3)).map(String::as_str), Some(format!("value-{}", i * 3).as_str()));
        assert!(!map.contains_key(&(i * 3 + 1)));
    }
    let peak = stats();
    HEAP.lock().check_invariants().expect("invariants with the map alive");
    // Remove the odd keys' entries (every second one).
    for i in (1..n).step_by(2) {
        let removed = map.remove(&(i * 3)).expect("present");
        assert_eq!(removed, format!("value-{}", i * 3));
    }
    assert_eq!(map.len(), n.div_ceil(2) as usize);
    assert!(map.keys().all(|k| (k / 3) % 2 == 0));
    let key_sum: u64 = map.keys().map(|&k| u64::from(k)).sum();
    let expected: u64 = (0..n).step_by(2).map(|i| u64::from(i * 3)).sum();
    assert_eq!(key_sum, expected);
    assert!(stats().allocations < peak.allocations);
    drop(map);
    assert_eq!(stats().allocations, 0);
    ok(format_args!(
        "BTreeMap<u32, String>: {n} inserts, {} lookups, {} removals ({} allocations at peak)",
        2 * n,
        n / 2,
        peak.allocations
    ));
}

fn check_realloc(cfg: &Config) {
    // A Vec that grows and is shrunk back, again and again.
    let mut v: Vec<u32> = Vec::new();
    let mut kept = 0usize;
    for round in 0..cfg.realloc_rounds {
        for j in 0..round as u32 * 8 {
            v.push(j ^ round as u32);
        }
        v.truncate(kept + round);
        v.shrink_to_fit();
        assert_eq!(v.capacity(), v.len());
        kept = v.len();
    }
    // The first `round` elements of each round survive: check the last round's survivors and
    // the very first element.
    assert_eq!(kept, (0..cfg.realloc_rounds).sum::<usize>());
    let last = cfg.realloc_rounds - 1;
    let start = kept - last;
    assert!(v[start..].iter().enumerate().all(|(j, &x)| x == j as u32 ^ last as u32));
    drop(v);

    // A String that grows by appends.
    let mut s = String::new();
    let mut total = 0usize;
    for i in 0..4000usize {
        let piece = format!("{i};");
        total += piece.len();
        s.push_str(&piece);
    }
    assert_eq!(s.len(), total);
    assert!(s.starts_with("0;1;2;") && s.ends_with("3998;3999;"));
    assert_eq!(s.split(';').filter(|p| !p.is_empty()).count(), 4000);
    drop(s);

    // A buffer that doubles to 1 MiB and halves back; the contents must survive each move.
    let mut buf: Vec<u8> = Vec::with_capacity(16);
    buf.extend((0..16).map(|i| i as u8));
    let mut size = 16usize;
    while size < 1 << 20 {
        size *= 2;
        buf.resize(size, 0xaa);
        buf.shrink_to_fit();
        assert_eq!(&buf[..16], &(0..16).collect::<Vec<u8>>()[..]);
    }
    while size > 16 {
        size /= 2;
        buf.truncate(size);
        buf.shrink_to_fit();
        assert_eq!(buf.capacity(), size);
        assert_eq!(&buf[..16], &(0..16).collect::<Vec<u8>>()[..]);
    }
    drop(buf);
    assert_eq!(stats().allocations, 0);
    ok(format_args!(
        "realloc: {} push/shrink_to_fit rounds, String of {total} bytes, 16 B <-> 1 MiB buffer",
        cfg.realloc_rounds
    ));
}

fn check_stress(cfg: &Config) {
    // Random sizes and alignments; each block is filled with a tag and checked before it is
    // freed, so overlapping blocks would be caught.
    let mut rng = Rng(0x2545_f491);
    let mut slots: Vec<Option<(Box<[u8]>, u8)>> = (0..256).map(|_| None).collect();
    let mut live_bytes = 0usize;
    for op in 0..cfg.stress_ops {
        let slot = rng.below(slots.len() as u32) as usize;
        match slots[slot].take() {
            Some((block, tag)) => {
                assert!(block.iter().all(|&b| b == tag), "block in slot {slot} was overwritten");
                live_bytes -= block.len();
            }
            None => {
                let size = match rng.below(10) {
                    0 => rng.below(64 * 1024) as usize,
                    1..=3 => rng.below(4096) as usize,
                    _ => rng.below(256) as usize,
                };
                let tag = (op % 251) as u8;
                let block = alloc::vec![tag; size].into_boxed_slice();
                assert!(size == 0 || in_heap(block.as_ptr()));
                live_bytes += size;
                slots[slot] = Some((block, tag));
            }
        }
        if op % 1000 == 999 {
            HEAP.lock().check_invariants().expect("invariants during the stress");
            assert!(stats().requested_bytes >= live_bytes);
        }
    }
    // Aligned allocations through the raw API.
    let live_blocks = stats().allocations;
    for shift in 0..=16 {
        let layout = Layout::from_size_align(24, 1 << shift).unwrap();
        // SAFETY: non-zero size; freed below with the same layout.
        let p = black_box(unsafe { alloc::alloc::alloc(layout) });
        assert!(!p.is_null());
        assert_eq!(p.addr() % (1 << shift), 0, "align {}", 1 << shift);
        assert!(in_heap(p));
        // The slots' blocks and their list are live too: one more than before.
        assert_eq!(stats().allocations, live_blocks + 1);
        // SAFETY: allocated above with `layout`.
        unsafe { alloc::alloc::dealloc(p, layout) };
    }
    for (slot, entry) in slots.iter_mut().enumerate() {
        if let Some((block, tag)) = entry.take() {
            assert!(block.iter().all(|&b| b == tag), "block in slot {slot} was overwritten");
        }
    }
    drop(slots);
    assert_eq!(stats().allocations, 0);
    ok(format_args!("stress: {} random allocs/frees, alignments up to 64 KiB", cfg.stress_ops));
}

fn check_irq(cfg: &Config) {
    // The lock: interrupts are off while the heap is locked, and come back on only if they were.
    assert!(!interrupts_enabled());
    drop(HEAP.lock());
    assert!(!interrupts_enabled(), "unlocking enabled interrupts that were disabled");
    assert_eq!((TIMER_TICKS.load(Ordering::Relaxed), TIMER_ALLOCS.load(Ordering::Relaxed)), (0, 0));
    let live_before = stats().allocations;
    timer_start();
    assert!(interrupts_enabled());
    {
        let _heap = HEAP.lock();
        assert!(!interrupts_enabled(), "interrupts enabled while the heap is locked");
    }
    assert!(interrupts_enabled(), "unlocking did not restore interrupts");

    // Random allocations, frees and reallocations with the timer interrupting every 200 µs; the
    // handler allocates too. Each block holds its tag, checked on every visit.
    let mut rng = Rng(0x9e37_79b9);
    let mut slots: Vec<Option<(Vec<u8>, u8)>> = (0..128).map(|_| None).collect();
    let mut deferred = 0usize;
    let mut reallocs = 0usize;
    for op in 0..cfg.irq_ops {
        let random_size = |rng: &mut Rng| match rng.below(16) {
            0 => rng.below(16 * 1024) as usize,
            1..=4 => rng.below(2048) as usize,
            _ => rng.below(128) as usize,
        };
        let slot = rng.below(slots.len() as u32) as usize;
        match slots[slot].take() {
            None => {
                let tag = (op % 251) as u8;
                slots[slot] = Some((alloc::vec![tag; random_size(&mut rng)], tag));
            }
            Some((mut block, tag)) => {
                assert!(block.iter().all(|&b| b == tag), "block in slot {slot} was overwritten");
                if rng.below(2) == 0 {
                    // Grow or shrink it in place or by moving: a `realloc`.
                    block.resize(random_size(&mut rng), tag);
                    block.shrink_to_fit();
                    assert!(block.iter().all(|&b| b == tag), "block in slot {slot} lost its contents");
                    slots[slot] = Some((block, tag));
                    reallocs += 1;
                }
            }
        }
        if op % 1000 == 999 {
            deferred += hold_lock_across_tick();
        }
    }

    timer_stop();
    let ticks = TIMER_TICKS.load(Ordering::Relaxed);
    let allocs = TIMER_ALLOCS.load(Ordering::Relaxed);
    assert!(ticks >= 100, "only {ticks} timer interrupts");
    assert_eq!(allocs, ticks, "a timer interrupt did not complete its allocations");
    assert_eq!(deferred, cfg.irq_ops / 1000);
    HEAP.lock().check_invariants().expect("invariants after the interrupt step");
    for (slot, entry) in slots.iter_mut().enumerate() {
        if let Some((block, tag)) = entry.take() {
            assert!(block.iter().all(|&b| b == tag), "block in slot {slot} was overwritten");
        }
    }
    drop(slots);
    assert_eq!(stats().allocations, live_before, "leaked allocations");
    assert!(!interrupts_enabled());
    ok(format_args!(
        "irq: {ticks} timer interrupts allocated while the main loop made {} allocs/frees/reallocs \
         ({reallocs} reallocs); {deferred} arrived while it held the heap lock and ran at unlock; \
         no deadlock",
        cfg.irq_ops
    ));
}

/// Holds the heap lock until the timer interrupt is pending, and checks that the handler did not
/// run while the lock was held and did run as soon as it was released. Returns 1.
fn hold_lock_across_tick() -> usize {
    let before = TIMER_TICKS.load(Ordering::Relaxed);
    let heap = HEAP.lock();
    let deadline = mtime() + 100 * TIMER_INTERVAL;
    while !timer_pending() {
        assert!(mtime() < deadline, "the timer interrupt did not become pending");
        core::hint::spin_loop();
    }
    heap.check_invariants().expect("invariants with the interrupt pending");
    let during = TIMER_TICKS.load(Ordering::Relaxed);
    drop(heap);
    // Unlocking re-enabled interrupts, and the pending one was taken at once.
    let after = TIMER_TICKS.load(Ordering::Relaxed);
    assert_eq!(during, before, "the handler ran while the heap was locked");
    assert!(after > before, "the pending interrupt was not taken at unlock");
    1
}

fn check_oom(heap_size: usize) {
    // Requests larger than the heap fail with an error, not a crash.
    let mut v: Vec<u8> = Vec::new();
    assert!(v.try_reserve(usize::MAX / 4).is_err());
    assert!(v.try_reserve(heap_size * 2).is_err());
    assert!(v.try_reserve_exact(heap_size).is_err(), "the whole heap cannot fit: metadata");
    assert_eq!(stats().allocations, 0);

    // Exhaust the heap for real, with blocks of decreasing sizes, until even 16 bytes fail.
    let mut blocks: Vec<Vec<u8>> = Vec::new();
    blocks.try_reserve_exact(heap_size / 1024).expect("room for the block list");
    let mut chunk = 1 << 20;
    while chunk >= 16 {
        loop {
            let mut b: Vec<u8> = Vec::new();
            if b.try_reserve_exact(chunk).is_err() {
                break;
            }
            b.push(0x5a);
            if blocks.len() == blocks.capacity() {
                // Out of room in the list: keep it but stop; the heap is nearly full anyway.
                break;
            }
            blocks.push(b);
        }
        chunk /= 4;
    }
    let full = stats();
    let mut probe: Vec<u8> = Vec::new();
    assert!(probe.try_reserve(16).is_err(), "the heap should be exhausted");
    assert!(full.free_bytes < 1024, "{} bytes still free when exhausted", full.free_bytes);
    HEAP.lock().check_invariants().expect("invariants when exhausted");
    let count = blocks.len();
    drop(blocks);

    // After the frees, normal allocations work again, up to a large one.
    let v: Vec<u64> = (0..10_000).collect();
    assert_eq!(v.iter().sum::<u64>(), 49_995_000);
    let mut big: Vec<u8> = Vec::new();
    big.try_reserve_exact(heap_size / 4).expect("a quarter of the heap after recovery");
    drop(big);
    drop(v);
    ok(format_args!(
        "OOM: huge requests fail cleanly; exhausted with {count} blocks ({} bytes free); recovered",
        full.free_bytes
    ));
}
