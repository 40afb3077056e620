//! A bare-metal RISC-V 32 kernel that uses `alloc_buddy_simple` as its global allocator and
//! checks it under QEMU: `qemu-system-riscv32 -machine virt -bios none -nographic -kernel <elf>`.
//!
//! Its heap lies above `0x8000_0000`, in the upper half of the 32-bit address space: addresses
//! there exceed `isize::MAX`, which the allocator must handle (only sizes are limited to
//! `isize::MAX`, never addresses).
//!
//! It prints over the UART and exits QEMU through the `SiFive` test device: status 0 only if every
//! check passed. Run it with `bash .ci/qemu.sh` from the repository root.

#![no_std]
#![no_main]

extern crate alloc;

use alloc::boxed::Box;
use alloc::vec::Vec;

#[macro_use]
#[path = "../../kernel-common/common.rs"]
mod common;

/// Printed in every line.
pub const NAME: &str = "kernel-riscv32";

#[unsafe(no_mangle)]
extern "C" fn kmain() -> ! {
    common::run_with(
        &common::Config {
            vec_len: 100_000,
            map_len: 5000,
            realloc_rounds: 300,
            stress_ops: 20_000,
            irq_ops: 200_000,
        },
        high_half_checks,
    )
}

/// Run after the common checks: the heap and its blocks are above `isize::MAX`, and a large
/// block there works, including pointer arithmetic across it.
fn high_half_checks() {
    // The point of this kernel: the heap and every block in it are above `isize::MAX`.
    let (start, _) = common::heap_bounds();
    assert!(
        start.addr() > isize::MAX as usize,
        "heap at {:#x} is not above isize::MAX ({:#x})",
        start.addr(),
        isize::MAX
    );
    assert!(start.addr() >= 0x8100_0000);

    let b = Box::new(0x1234_5678_u32);
    let addr = (&raw const *b).addr();
    assert!(addr > isize::MAX as usize, "Box at {addr:#x}");
    assert_eq!(*b, 0x1234_5678);

    // A 4 MiB block: writes at both ends and a walk over every page.
    let n = 4 << 20;
    let mut big: Vec<u8> = Vec::new();
    big.try_reserve_exact(n).expect("4 MiB");
    big.resize(n, 0);
    let base = big.as_ptr().addr();
    assert!(base > isize::MAX as usize);
    for (i, page) in big.chunks_mut(4096).enumerate() {
        page[0] = i as u8;
        page[4095] = !(i as u8);
    }
    for (i, page) in big.chunks(4096).enumerate() {
        assert_eq!((page[0], page[4095]), (i as u8, !(i as u8)));
    }
    // `offset_from` between two high addresses (a signed distance, fine in isize).
    let first = big.as_ptr();
    // SAFETY: both pointers are inside `big`.
    let dist = unsafe { first.add(n - 1).offset_from(first) };
    assert_eq!(dist, (n - 1) as isize);
    println!(
        "{NAME}: [ok] upper half: heap at {:#x} > isize::MAX = {:#x}; Box at {addr:#x}; \
         4 MiB block {base:#x}..{:#x}",
        start.addr(),
        isize::MAX,
        base + n
    );
}
