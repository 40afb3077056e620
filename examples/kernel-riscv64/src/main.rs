//! A bare-metal RISC-V 64 kernel that uses `alloc_buddy_simple` as its global allocator and
//! checks it under QEMU: `qemu-system-riscv64 -machine virt -bios none -nographic -kernel <elf>`.
//!
//! It prints over the UART and exits QEMU through the `SiFive` test device: status 0 only if every
//! check passed. Run it with `bash .ci/qemu.sh` from the repository root.

#![no_std]
#![no_main]

extern crate alloc;

#[macro_use]
#[path = "../../kernel-common/common.rs"]
mod common;

/// Printed in every line.
pub const NAME: &str = "kernel-riscv64";

#[unsafe(no_mangle)]
extern "C" fn kmain() -> ! {
    common::run(&common::Config {
        vec_len: 100_000,
        map_len: 5000,
        realloc_rounds: 300,
        stress_ops: 20_000,
        irq_ops: 200_000,
    })
}
