//! Misuse detected on the `GlobalAlloc` path must abort the process (a global allocator must not
//! unwind) after printing what it found.
//!
//! Each parent test re-runs this test binary with an environment variable set and a filter that
//! selects one child test; the child commits the misuse through `GlobalAlloc::dealloc` (or
//! `realloc`) on a `LockedHeap`, and the parent checks that the child died (by `SIGABRT` on Unix)
//! and what it printed. Without the variable, the child tests do nothing.

use std::alloc::{GlobalAlloc, Layout};
use std::process::{Command, Output};

use alloc_buddy_simple::{FreeError, LockedHeap};

const CHILD_VAR: &str = "ALLOC_BUDDY_SIMPLE_MISUSE_CHILD";

/// A `LockedHeap` (not the global allocator) on 1 MiB of leaked, aligned memory.
fn heap() -> &'static LockedHeap {
    let heap: &'static LockedHeap = Box::leak(Box::new(LockedHeap::new()));
    let layout = Layout::from_size_align(1 << 20, 1 << 20).unwrap();
    // SAFETY: the layout has a non-zero size.
    let mem = unsafe { std::alloc::alloc(layout) };
    assert!(!mem.is_null());
    // SAFETY: leaked memory, used by nothing else.
    unsafe { heap.init(mem, 1 << 20) }.unwrap();
    heap
}

/// A block of `layout` that `heap` allocated and then freed.
fn freed_block(heap: &LockedHeap, layout: Layout) -> *mut u8 {
    // SAFETY: a non-zero size; the block is freed once, with its layout.
    unsafe {
        let p = heap.alloc(layout);
        assert!(!p.is_null());
        heap.dealloc(p, layout);
        p
    }
}

fn is_child() -> bool {
    std::env::var_os(CHILD_VAR).is_some()
}

/// Runs the child test `name` of this binary and returns its output.
fn run_child(name: &str) -> Output {
    let exe = std::env::current_exe().unwrap();
    Command::new(exe)
        .args([name, "--exact", "--nocapture", "--test-threads=1"])
        .env(CHILD_VAR, "1")
        .env("RUST_BACKTRACE", "0")
        .output()
        .unwrap()
}

/// In the parent, runs the child test `name` and checks that it aborted, printing `expected`;
/// in a child, does nothing (the child's own test is the one that runs).
fn expect_child_abort(name: &str, expected: &str) {
    if !is_child() {
        assert_aborted(&run_child(name), expected);
    }
}

/// Checks that the child was killed by an abort (not a normal test failure, which exits with
/// 101) and printed `expected`.
fn assert_aborted(out: &Output, expected: &str) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success(), "the child survived the misuse:\n{stdout}\n{stderr}");
    #[cfg(unix)]
    {
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(out.status.signal(), Some(6), "not an abort (SIGABRT): {:?}\n{stderr}", out.status);
    }
    assert_ne!(out.status.code(), Some(101), "the child failed as a test instead of aborting:\n{stderr}");
    assert!(stderr.contains(expected), "stderr lacks {expected:?}:\n{stderr}");
    assert!(stderr.contains("alloc_buddy_simple: "), "{stderr}");
    assert!(!stdout.contains("CHILD SURVIVED"), "{stdout}");
}

#[test]
fn child_double_free() {
    if !is_child() {
        return;
    }
    let heap = heap();
    let layout = Layout::from_size_align(48, 8).unwrap();
    let p = freed_block(heap, layout);
    // SAFETY: the second free is the misuse being caught.
    unsafe {
        // The heap sees this as a double free (asked without changing anything), so the
        // message below is the one the parent looks for.
        let probe = heap.lock().try_dealloc(std::ptr::NonNull::new(p).unwrap(), layout);
        assert_eq!(probe, Err(FreeError::DoubleFree { ptr: p }));
        println!("freeing {p:#p} again");
        heap.dealloc(p, layout);
    }
    println!("CHILD SURVIVED");
}

#[test]
fn child_foreign_pointer() {
    if !is_child() {
        return;
    }
    let heap = heap();
    let mut local = [0u64; 4];
    let layout = Layout::new::<[u64; 4]>();
    // SAFETY: deliberately freeing memory the heap never gave out.
    unsafe { heap.dealloc(local.as_mut_ptr().cast(), layout) };
    std::hint::black_box(&mut local);
    println!("CHILD SURVIVED");
}

#[test]
fn child_wrong_layout() {
    if !is_child() {
        return;
    }
    let heap = heap();
    let layout = Layout::from_size_align(1000, 8).unwrap();
    // SAFETY: a non-zero size; the wrong layout on free is deliberate.
    unsafe {
        let p = heap.alloc(layout);
        assert!(!p.is_null());
        heap.dealloc(p, Layout::from_size_align(100, 8).unwrap());
    }
    println!("CHILD SURVIVED");
}

#[test]
fn child_realloc_after_free() {
    if !is_child() {
        return;
    }
    let heap = heap();
    let layout = Layout::from_size_align(48, 8).unwrap();
    let p = freed_block(heap, layout);
    // SAFETY: the realloc after the free is the misuse being caught.
    unsafe { heap.realloc(p, layout, 4000) };
    println!("CHILD SURVIVED");
}

// Miri cannot spawn processes, so the parents cannot run there.

#[test]
#[cfg_attr(miri, ignore = "Miri cannot spawn processes")]
fn double_free_through_global_alloc_aborts() {
    if is_child() {
        return;
    }
    let out = run_child("child_double_free");
    assert_aborted(&out, "double free");
    let stderr = String::from_utf8_lossy(&out.stderr);
    let stdout = String::from_utf8_lossy(&out.stdout);
    // The message names the pointer, formatted as the child printed it.
    // (The harness prints "test child_double_free ... " before it on the same line.)
    let line =
        stdout.lines().find_map(|l| l.split_once("freeing ").map(|(_, rest)| rest)).expect("child output");
    let ptr = line.strip_suffix(" again").unwrap();
    assert!(stderr.contains(&format!("alloc_buddy_simple: double free of {ptr} detected")), "{stderr}");
}

#[test]
#[cfg_attr(miri, ignore = "Miri cannot spawn processes")]
fn foreign_pointer_through_global_alloc_aborts() {
    expect_child_abort("child_foreign_pointer", "not in this heap");
}

#[test]
#[cfg_attr(miri, ignore = "Miri cannot spawn processes")]
fn wrong_layout_through_global_alloc_aborts() {
    expect_child_abort("child_wrong_layout", "not the layout it was allocated with");
}

#[test]
#[cfg_attr(miri, ignore = "Miri cannot spawn processes")]
fn realloc_after_free_through_global_alloc_aborts() {
    expect_child_abort("child_realloc_after_free", "double free");
}
