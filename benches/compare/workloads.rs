//! The workloads. Each is a `Job`, run on one fresh allocator; the caller interleaves trials.

use std::alloc::{GlobalAlloc, Layout};
use std::hint::black_box;
use std::sync::Barrier;
use std::time::{Duration, Instant};

use crate::Rng;
use crate::contenders::{Contender, Footprint, Job, Kind};

/// A live allocation: its pointer and the layout it was allocated (or last reallocated) with.
type Live = Vec<(*mut u8, Layout)>;

/// Frees every allocation in `live`.
fn free_all<A: GlobalAlloc>(alloc: &A, live: &mut Live) {
    for (ptr, layout) in live.drain(..) {
        // SAFETY: `ptr` is live, allocated by `alloc` with `layout`.
        unsafe { alloc.dealloc(ptr, layout) };
    }
}

/// `size` and `align` as a layout; the workloads only make valid ones (size < 1 MiB, align a
/// power of two up to 2 KiB).
fn layout(size: usize, align: usize) -> Layout {
    Layout::from_size_align(size, align).expect("workload layout")
}

/// The per-operation clock: the TSC between `lfence`s on `x86_64`, `Instant` elsewhere.
#[derive(Clone, Debug)]
pub(crate) struct Clock {
    ns_per_tick: f64,
    overhead_ticks: f64,
    #[cfg(not(target_arch = "x86_64"))]
    origin: Instant,
}

impl Clock {
    /// Measures the tick rate against `Instant` (over 50 ms) and the cost of a reading pair.
    pub(crate) fn calibrate() -> Clock {
        let mut clock = Clock {
            ns_per_tick: 1.0,
            overhead_ticks: 0.0,
            #[cfg(not(target_arch = "x86_64"))]
            origin: Instant::now(),
        };
        let (t0, c0) = (Instant::now(), clock.now());
        while t0.elapsed() < Duration::from_millis(50) {
            std::hint::spin_loop();
        }
        let (ns, ticks) = (t0.elapsed().as_nanos() as f64, clock.now().wrapping_sub(c0));
        clock.ns_per_tick = ns / ticks.max(1) as f64;
        let mut pairs: Vec<f64> = (0..10_001)
            .map(|_| {
                let a = clock.now();
                clock.now().wrapping_sub(a) as f64
            })
            .collect();
        pairs.sort_by(f64::total_cmp);
        clock.overhead_ticks = pairs[pairs.len() / 2];
        clock
    }

    #[cfg(target_arch = "x86_64")]
    #[inline(always)]
    fn now(&self) -> u64 {
        use std::arch::x86_64::{_mm_lfence, _rdtsc};
        // SAFETY: `lfence` (SSE2) and `rdtsc` are part of every `x86_64` CPU, and neither touches
        // memory. The fences keep the allocator's instructions from moving across the reading.
        unsafe {
            _mm_lfence();
            let t = _rdtsc();
            _mm_lfence();
            t
        }
    }

    #[cfg(not(target_arch = "x86_64"))]
    #[inline(always)]
    fn now(&self) -> u64 {
        self.origin.elapsed().as_nanos() as u64
    }

    pub(crate) fn to_ns(&self, ticks: f64) -> f64 {
        ticks * self.ns_per_tick
    }

    pub(crate) fn overhead_ns(&self) -> f64 {
        self.to_ns(self.overhead_ticks)
    }

    pub(crate) fn describe(&self) -> String {
        if cfg!(target_arch = "x86_64") {
            format!("`rdtsc` between `lfence`s ({:.3} GHz TSC)", 1.0 / self.ns_per_tick)
        } else {
            "`Instant`".to_owned()
        }
    }
}

/// The score of one random-actions run.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Score {
    pub(crate) ops: u64,
    pub(crate) secs: f64,
    pub(crate) alloc_fails: u64,
    pub(crate) realloc_fails: u64,
}

/// talc's random-actions loop for `window`: counts successful operations.
fn random_loop<A: GlobalAlloc>(
    alloc: &A,
    rng: &mut Rng,
    live: &mut Live,
    max: usize,
    realloc: bool,
    window: Duration,
) -> Score {
    let actions = if realloc { 7 } else { 6 };
    let mut score = Score::default();
    let start = Instant::now();
    loop {
        for _ in 0..64 {
            let action = rng.below(actions);
            if action == 6 {
                if live.is_empty() {
                    continue;
                }
                let i = rng.below(live.len());
                let (ptr, old) = live[i];
                let new_size = rng.range(1, max * 3);
                // SAFETY: `ptr` is live with `old`; `new_size` is non-zero and small.
                let new = unsafe { alloc.realloc(ptr, old, new_size) };
                if new.is_null() {
                    score.realloc_fails += 1;
                } else {
                    live[i] = (new, layout(new_size, old.align()));
                    score.ops += 1;
                }
            } else if action < 3 || live.len() < 300 {
                let layout = layout(rng.size(max), rng.align());
                // SAFETY: the layout has a non-zero size.
                let ptr = unsafe { alloc.alloc(layout) };
                if ptr.is_null() {
                    score.alloc_fails += 1;
                } else {
                    live.push((ptr, layout));
                    score.ops += 1;
                }
            } else {
                let (ptr, layout) = live.swap_remove(rng.below(live.len()));
                // SAFETY: `ptr` is live with `layout`.
                unsafe { alloc.dealloc(ptr, layout) };
                score.ops += 1;
            }
        }
        let elapsed = start.elapsed();
        if elapsed >= window {
            score.secs = elapsed.as_secs_f64();
            return score;
        }
    }
}

/// One thread's share of a random-actions trial: warm-up, then the timed window (started by
/// `barrier` if there is one), each on an empty live set.
fn random_run<A: GlobalAlloc>(
    alloc: &A,
    seed: u64,
    max: usize,
    realloc: bool,
    warmup: Duration,
    window: Duration,
    barrier: Option<&Barrier>,
) -> Score {
    let mut live: Live = Vec::with_capacity(1 << 16);
    // The warm-up has its own generator, so the timed sequence is the same for every allocator.
    random_loop(alloc, &mut Rng::new(!seed), &mut live, max, realloc, warmup);
    free_all(alloc, &mut live);
    if let Some(barrier) = barrier {
        barrier.wait();
    }
    let score = random_loop(alloc, &mut Rng::new(seed), &mut live, max, realloc, window);
    free_all(alloc, &mut live);
    score
}

/// Workload 1: random actions on one thread.
#[derive(Debug)]
pub(crate) struct RandomActions {
    pub(crate) max: usize,
    pub(crate) realloc: bool,
    pub(crate) warmup: Duration,
    pub(crate) window: Duration,
    pub(crate) seed: u64,
}

impl Job for RandomActions {
    type Out = Score;

    fn run<A: Contender>(&mut self, alloc: &A, _: Kind) -> Score {
        random_run(alloc, self.seed, self.max, self.realloc, self.warmup, self.window, None)
    }
}

/// Workload 5: random actions (with realloc) on several threads sharing one allocator.
#[derive(Debug)]
pub(crate) struct Threads {
    pub(crate) threads: usize,
    pub(crate) max: usize,
    pub(crate) warmup: Duration,
    pub(crate) window: Duration,
    pub(crate) seed: u64,
}

impl Job for Threads {
    type Out = Vec<Score>;

    fn run<A: Contender>(&mut self, alloc: &A, _: Kind) -> Vec<Score> {
        let barrier = Barrier::new(self.threads);
        let (barrier, max, warmup, window) = (&barrier, self.max, self.warmup, self.window);
        std::thread::scope(|scope| {
            let handles: Vec<_> = (0..self.threads as u64)
                .map(|t| {
                    let seed = self.seed ^ t.wrapping_mul(0xD1B5_4A32_D192_ED03);
                    scope.spawn(move || random_run(alloc, seed, max, true, warmup, window, Some(barrier)))
                })
                .collect();
            handles.into_iter().map(|h| h.join().expect("benchmark thread panicked")).collect()
        })
    }
}

/// The outcome of one heap-efficiency trial.
#[derive(Debug)]
pub(crate) struct Efficiency {
    /// The sum of the requested sizes live at the first failure.
    pub(crate) requested: usize,
    pub(crate) ops: u64,
    pub(crate) problem: Option<String>,
    /// The request that failed: `true` for an alloc (`false`: a realloc), and its size.
    pub(crate) failed_alloc: bool,
    pub(crate) failed_size: usize,
    pub(crate) footprint: Option<Footprint>,
}

/// Workload 2: talc's heap efficiency, one trial.
#[derive(Debug)]
pub(crate) struct HeapEfficiency {
    pub(crate) seed: u64,
    pub(crate) arena_size: usize,
}

impl Job for HeapEfficiency {
    type Out = Efficiency;

    fn run<A: Contender>(&mut self, alloc: &A, kind: Kind) -> Efficiency {
        let mut rng = Rng::new(self.seed);
        let mut live: Live = Vec::with_capacity(1 << 16);
        let mut ops = 0u64;
        let mut problem = None;
        let (mut failed_alloc, mut failed_size) = (false, 0);
        loop {
            ops += 1;
            match rng.below(10) {
                0..=4 => {
                    let layout = layout(rng.size(10_000), rng.align());
                    // SAFETY: the layout has a non-zero size.
                    let ptr = unsafe { alloc.alloc(layout) };
                    if ptr.is_null() {
                        (failed_alloc, failed_size) = (true, layout.size());
                        break;
                    }
                    live.push((ptr, layout));
                }
                5 => {
                    if !live.is_empty() {
                        let (ptr, layout) = live.swap_remove(rng.below(live.len()));
                        // SAFETY: `ptr` is live with `layout`.
                        unsafe { alloc.dealloc(ptr, layout) };
                    }
                }
                _ => {
                    if !live.is_empty() {
                        let i = rng.below(live.len());
                        let (ptr, old) = live[i];
                        let new_size = rng.range(1, 100_000);
                        // SAFETY: `ptr` is live with `old`; `new_size` is non-zero and small.
                        let new = unsafe { alloc.realloc(ptr, old, new_size) };
                        if new.is_null() {
                            failed_size = new_size;
                            break;
                        }
                        live[i] = (new, layout(new_size, old.align()));
                    }
                }
            }
            if ops > 100_000_000 {
                problem = Some("no failure after 1e8 operations".to_owned());
                break;
            }
        }
        let requested: usize = live.iter().map(|(_, l)| l.size()).sum();
        if requested > self.arena_size && kind.uses_arena() {
            problem = Some(format!("{requested} bytes live in a {} byte arena", self.arena_size));
        }
        match alloc.requested_bytes() {
            Some(counted) if counted != requested => {
                problem =
                    Some(format!("stats().requested_bytes = {counted}, but {requested} bytes are live"));
            }
            _ => {}
        }
        let footprint = alloc.footprint();
        if !kind.uses_arena() {
            free_all(alloc, &mut live);
        }
        Efficiency { requested, ops, problem, failed_alloc, failed_size, footprint }
    }
}

pub(crate) const PERCENTILE_NAMES: [&str; 6] = ["p1", "p25", "p50", "p75", "p99", "max"];

/// The outcome of one latency trial.
#[derive(Debug)]
pub(crate) struct LatencyOut {
    /// alloc + free latency at each of `PERCENTILE_NAMES`, in ns.
    pub(crate) percentiles_ns: [f64; 6],
    pub(crate) alloc_fails: u64,
}

/// Workload 3a: talc's microbench, one trial.
#[derive(Debug)]
pub(crate) struct Latency {
    pub(crate) window: Duration,
    pub(crate) seed: u64,
    pub(crate) clock: Clock,
}

impl Job for Latency {
    type Out = LatencyOut;

    fn run<A: Contender>(&mut self, alloc: &A, _: Kind) -> LatencyOut {
        let clock = &self.clock;
        let mut rng = Rng::new(self.seed);
        let mut live: Live = Vec::with_capacity(1024);
        let mut alloc_ticks: Vec<u64> = Vec::with_capacity(1 << 20);
        let mut free_ticks: Vec<u64> = Vec::with_capacity(1 << 20);
        let mut alloc_fails = 0;

        // Warm-up, as talc's: one alloc/free of each size 8, 16, ..., 79992 B.
        for i in 1..10_000 {
            let layout = layout(i * 8, 8);
            // SAFETY: the layout has a non-zero size.
            let ptr = unsafe { alloc.alloc(layout) };
            if !ptr.is_null() {
                // SAFETY: `ptr` is live with `layout`.
                unsafe { alloc.dealloc(black_box(ptr), layout) };
            }
        }

        let start = Instant::now();
        for i in 0u64.. {
            if i % 256 == 0 && start.elapsed() >= self.window {
                break;
            }
            let layout = layout(rng.size(0x10000), rng.align());
            let t0 = clock.now();
            // SAFETY: the layout has a non-zero size.
            let ptr = unsafe { alloc.alloc(layout) };
            let t1 = clock.now();
            if ptr.is_null() {
                alloc_fails += 1;
                for (ptr, layout) in live.drain(50.min(live.len())..) {
                    // SAFETY: `ptr` is live with `layout`.
                    unsafe { alloc.dealloc(ptr, layout) };
                }
                continue;
            }
            alloc_ticks.push(t1.wrapping_sub(t0));
            live.push((ptr, layout));
            if (live.len() > 50 && rng.below(10) == 0) || live.len() > 600 {
                for _ in 0..8 {
                    let (ptr, layout) = live.swap_remove(rng.below(live.len()));
                    let t0 = clock.now();
                    // SAFETY: `ptr` is live with `layout`.
                    unsafe { alloc.dealloc(ptr, layout) };
                    let t1 = clock.now();
                    free_ticks.push(t1.wrapping_sub(t0));
                }
            }
        }
        free_all(alloc, &mut live);

        alloc_ticks.sort_unstable();
        free_ticks.sort_unstable();
        let pick = |v: &[u64], p: usize| -> f64 {
            if v.is_empty() {
                f64::NAN
            } else if p == 100 {
                v[v.len() - 1] as f64
            } else {
                v[v.len() * p / 100] as f64
            }
        };
        let mut percentiles_ns = [0.0; 6];
        for (out, p) in percentiles_ns.iter_mut().zip([1, 25, 50, 75, 99, 100]) {
            *out = clock.to_ns(pick(&alloc_ticks, p) + pick(&free_ticks, p));
        }
        LatencyOut { percentiles_ns, alloc_fails }
    }
}

/// Workload 3b: fixed-size alloc/free pairs on a fresh heap. `None` if an allocation failed.
#[derive(Debug)]
pub(crate) struct Pairs {
    pub(crate) size: usize,
    pub(crate) count: usize,
    /// Call the allocator through functions the compiler does not inline into the loop, as a
    /// program calls its `#[global_allocator]` (through `__rust_alloc` and `__rust_dealloc`,
    /// without LTO). Otherwise the compiler inlines whatever it finds small enough.
    pub(crate) called: bool,
}

/// `alloc` through a call that is never inlined (the allocator's code may be inlined into it, as
/// into rustc's allocator shim).
#[inline(never)]
unsafe fn called_alloc<A: Contender>(alloc: &A, layout: Layout) -> *mut u8 {
    // SAFETY: the caller's contract.
    unsafe { alloc.alloc(layout) }
}

/// `dealloc` through a call that is never inlined, as `called_alloc`.
#[inline(never)]
unsafe fn called_dealloc<A: Contender>(alloc: &A, ptr: *mut u8, layout: Layout) {
    // SAFETY: the caller's contract.
    unsafe { alloc.dealloc(ptr, layout) }
}

impl Job for Pairs {
    type Out = Option<f64>;

    fn run<A: Contender>(&mut self, alloc: &A, _: Kind) -> Option<f64> {
        let layout = layout(self.size, 8);
        let called = self.called;
        let pair = || -> bool {
            // SAFETY: the layout has a non-zero size.
            let ptr = unsafe {
                if called { called_alloc(alloc, black_box(layout)) } else { alloc.alloc(black_box(layout)) }
            };
            if ptr.is_null() {
                return false;
            }
            // SAFETY: `ptr` is live with `layout`.
            unsafe {
                if called {
                    called_dealloc(alloc, black_box(ptr), layout);
                } else {
                    alloc.dealloc(black_box(ptr), layout);
                }
            }
            true
        };
        for _ in 0..1000 {
            if !pair() {
                return None;
            }
        }
        let start = Instant::now();
        for _ in 0..self.count {
            if !pair() {
                return None;
            }
        }
        Some(start.elapsed().as_nanos() as f64 / self.count as f64)
    }
}

/// The outcome of one free-scaling trial.
#[derive(Debug)]
pub(crate) struct FreeOut {
    pub(crate) ns_per_free: f64,
    /// The whole trial (allocations included), for the skip rule.
    pub(crate) trial_secs: f64,
}

/// Which frees a free-scaling trial times.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum FreeShape {
    /// `buddy_system_allocator` PR #55's `heap_dealloc_scan`: 4N blocks of 64 B, sorted by
    /// address and taken four at a time; the second of each four is freed untimed (a long free
    /// list, no merge: each one's buddy, the first, is live), then the first of each four is
    /// freed, timed, in address order: each merges once, with a block far down the list, and the
    /// merged block's buddy (the other two of the four) is live, so it stops there.
    Scan,
    /// N blocks of 16 B, sorted by address: every other one freed, then the rest, all timed.
    Halves,
}

impl FreeShape {
    /// The table's file name, title, parameter column and description.
    pub(crate) fn table(self) -> (&'static str, &'static str, &'static str, &'static str) {
        match self {
            FreeShape::Scan => (
                "free_scaling",
                "Free scaling",
                "pairs (N)",
                "`buddy_system_allocator` PR #55's `heap_dealloc_scan`: allocate 4N + 256 blocks of \
                 64 B (align 8) on a fresh allocator, sort them by address and take N fours of \
                 consecutive blocks (for the buddy allocators, fours that start at a multiple of \
                 256 B inside one run of blocks, so that the first two are buddies, as PR #55 picks \
                 its pairs); free the second of each four (untimed: a free list N long, no merge, as \
                 each one's buddy is live), then the first of each four in address order, timed \
                 with `Instant`, figure = that time / N. In a buddy allocator each timed free merges \
                 once, with a block at the far end of its free list, and the merged 128 B block's \
                 buddy (the other two of the four) is live. PR #55 allocates every 64 B block of a \
                 4 MiB heap first, and times `Heap` without its lock; here the blocks come from the \
                 shared arena, through each allocator's `GlobalAlloc`, lock included.",
            ),
            FreeShape::Halves => (
                "free_scaling_halves",
                "Free scaling, every block freed",
                "blocks (N)",
                "Allocate N blocks of 16 B (align 8) on a fresh allocator, sort them by address, \
                 free every other one (so the free lists get long: no block's buddy is free yet), \
                 then free the rest; both passes timed with `Instant`, figure = total / N. Our \
                 first form of PR #55's shape: half the frees merge, up to the whole arena.",
            ),
        }
    }
}

/// Blocks allocated beyond 4N in [`FreeShape::Scan`], for the fours that a run's start or end
/// leaves out.
const SCAN_SPARE: usize = 256;

/// The first `n` fours of consecutive blocks in `blocks` (sorted by address, each `size` bytes
/// asked): for a buddy allocator only fours that start at a multiple of `4 * size` and lie in one
/// run (the second block right after the first), so that the first two are buddies, as are the
/// halves of the four; for the others any four in turn.
fn fours(blocks: &[*mut u8], size: usize, buddy: bool, n: usize) -> Vec<[*mut u8; 4]> {
    let mut out = Vec::with_capacity(n);
    let mut i = 0;
    while out.len() < n && i + 4 <= blocks.len() {
        let q = [blocks[i], blocks[i + 1], blocks[i + 2], blocks[i + 3]];
        let whole = q[3].addr() - q[0].addr() == 3 * size && q[0].addr() % (4 * size) == 0;
        if buddy && !whole {
            i += 1;
            continue;
        }
        out.push(q);
        i += 4;
    }
    out
}

/// Workload 4: frees with long free lists. `None` if an allocation failed.
#[derive(Debug)]
pub(crate) struct FreeScaling {
    pub(crate) n: usize,
    pub(crate) shape: FreeShape,
}

impl FreeScaling {
    /// Allocates `count` blocks of `layout`, sorted by address; `None` (with what was allocated
    /// freed) if one fails.
    fn blocks<A: Contender>(alloc: &A, layout: Layout, count: usize) -> Option<Vec<*mut u8>> {
        let mut blocks: Vec<*mut u8> = Vec::with_capacity(count);
        for _ in 0..count {
            // SAFETY: the layout has a non-zero size.
            let ptr = unsafe { alloc.alloc(layout) };
            if ptr.is_null() {
                for ptr in blocks {
                    // SAFETY: `ptr` is live with `layout`.
                    unsafe { alloc.dealloc(ptr, layout) };
                }
                return None;
            }
            blocks.push(ptr);
        }
        blocks.sort_unstable_by_key(|p| p.addr());
        Some(blocks)
    }

    /// Frees `blocks` in order, and returns the time it took in nanoseconds.
    ///
    /// # Safety
    ///
    /// Each block must be live in `alloc` with `layout`, and come once.
    unsafe fn free_timed<A: Contender>(
        alloc: &A,
        layout: Layout,
        blocks: impl Iterator<Item = *mut u8>,
    ) -> f64 {
        let timed = Instant::now();
        for ptr in blocks {
            // SAFETY: the caller's contract.
            unsafe { alloc.dealloc(ptr, layout) };
        }
        timed.elapsed().as_nanos() as f64
    }
}

impl Job for FreeScaling {
    type Out = Option<FreeOut>;

    fn run<A: Contender>(&mut self, alloc: &A, kind: Kind) -> Option<FreeOut> {
        let start = Instant::now();
        let n = self.n;
        let ns = match self.shape {
            FreeShape::Scan => {
                let size = 64;
                let layout = layout(size, 8);
                // A few more than 4N: a buddy allocator's blocks come in runs (one per free block
                // it splits), and a four must not straddle two.
                let blocks = Self::blocks(alloc, layout, 4 * n + SCAN_SPARE)?;
                let fours = fours(&blocks, size, kind.is_buddy(), n);
                if fours.len() < n {
                    return None;
                }
                for q in &fours {
                    // SAFETY: `q[1]` is live with `layout`, and freed once.
                    unsafe { alloc.dealloc(q[1], layout) };
                }
                // SAFETY: the first of each four, live, each once.
                let ns = unsafe { Self::free_timed(alloc, layout, fours.iter().map(|q| q[0])) };
                // The arena allocators are dropped with what they hold (see `run_fresh`); the
                // system allocator's blocks must be given back.
                if kind == Kind::System {
                    let taken: std::collections::HashSet<*mut u8> =
                        fours.iter().flat_map(|q| [q[0], q[1]]).collect();
                    for &ptr in blocks.iter().filter(|p| !taken.contains(p)) {
                        // SAFETY: every block not freed above, live.
                        unsafe { alloc.dealloc(ptr, layout) };
                    }
                }
                ns
            }
            FreeShape::Halves => {
                let layout = layout(16, 8);
                let blocks = Self::blocks(alloc, layout, n)?;
                let halves = blocks.iter().step_by(2).chain(blocks.iter().skip(1).step_by(2));
                // SAFETY: every block, live, once (every other one, then the rest).
                unsafe { Self::free_timed(alloc, layout, halves.copied()) }
            }
        };
        Some(FreeOut { ns_per_free: ns / n as f64, trial_secs: start.elapsed().as_secs_f64() })
    }
}

/// Workload 0: random actions (with realloc) that fill every block with a tag and check it on
/// free and realloc, plus alignment and the allocator's own byte count. Untimed.
#[derive(Debug)]
pub(crate) struct Sanity {
    pub(crate) ops: usize,
    pub(crate) seed: u64,
}

/// Checks that `len` bytes at `ptr` all hold `tag`.
///
/// # Safety
///
/// `ptr..ptr + len` must be readable.
unsafe fn holds(ptr: *mut u8, len: usize, tag: u8) -> bool {
    // SAFETY: the caller's contract.
    let bytes = unsafe { std::slice::from_raw_parts(ptr, len) };
    bytes.iter().all(|&b| b == tag)
}

impl Job for Sanity {
    type Out = Vec<String>;

    fn run<A: Contender>(&mut self, alloc: &A, _: Kind) -> Vec<String> {
        let mut rng = Rng::new(self.seed);
        let mut live: Vec<(*mut u8, Layout, u8)> = Vec::new();
        let mut problems = Vec::new();
        let mut next_tag = 0u8;
        let mut tag = || {
            next_tag = next_tag.wrapping_add(1).max(1);
            next_tag
        };
        for op in 0..self.ops {
            if problems.len() >= 5 {
                problems.push("(stopped after 5 problems)".to_owned());
                break;
            }
            let action = rng.below(7);
            if action == 6 && !live.is_empty() {
                let i = rng.below(live.len());
                let (ptr, old, t) = live[i];
                let new_size = rng.range(1, 9000);
                // SAFETY: `ptr` is live with `old`; `new_size` is non-zero and small.
                let new = unsafe { alloc.realloc(ptr, old, new_size) };
                if new.is_null() {
                    problems.push(format!("op {op}: realloc {old:?} -> {new_size} returned null"));
                    continue;
                }
                let kept = old.size().min(new_size);
                // SAFETY: `new` is live for at least `new_size >= kept` bytes.
                if unsafe { !holds(new, kept, t) } {
                    problems
                        .push(format!("op {op}: realloc {old:?} -> {new_size} lost the block's contents"));
                }
                let t = tag();
                // SAFETY: `new` is live for `new_size` bytes.
                unsafe { new.write_bytes(t, new_size) };
                live[i] = (new, layout(new_size, old.align()), t);
            } else if action < 3 || live.len() < 300 {
                let layout = layout(rng.size(3000), rng.align());
                // SAFETY: the layout has a non-zero size.
                let ptr = unsafe { alloc.alloc(layout) };
                if ptr.is_null() {
                    problems.push(format!("op {op}: alloc {layout:?} returned null"));
                    continue;
                }
                if ptr.addr() % layout.align() != 0 {
                    problems.push(format!("op {op}: alloc {layout:?} returned misaligned {ptr:p}"));
                }
                let t = tag();
                // SAFETY: `ptr` is live for `layout.size()` bytes.
                unsafe { ptr.write_bytes(t, layout.size()) };
                live.push((ptr, layout, t));
            } else if !live.is_empty() {
                let (ptr, layout, t) = live.swap_remove(rng.below(live.len()));
                // SAFETY: `ptr` is live for `layout.size()` bytes.
                if unsafe { !holds(ptr, layout.size(), t) } {
                    problems.push(format!("op {op}: block {ptr:p} ({layout:?}) was overwritten while live"));
                }
                // SAFETY: `ptr` is live with `layout`.
                unsafe { alloc.dealloc(ptr, layout) };
            }
        }
        let requested: usize = live.iter().map(|(_, l, _)| l.size()).sum();
        match alloc.requested_bytes() {
            Some(counted) if counted != requested => {
                problems.push(format!("stats().requested_bytes = {counted}, but {requested} bytes are live"));
            }
            _ => {}
        }
        for (ptr, layout, t) in live {
            // SAFETY: `ptr` is live for `layout.size()` bytes.
            if unsafe { !holds(ptr, layout.size(), t) } {
                problems.push(format!("block {ptr:p} ({layout:?}) was overwritten while live"));
            }
            // SAFETY: `ptr` is live with `layout`.
            unsafe { alloc.dealloc(ptr, layout) };
        }
        match alloc.requested_bytes() {
            Some(counted) if counted != 0 => {
                problems.push(format!("stats().requested_bytes = {counted} after freeing everything"));
            }
            _ => {}
        }
        problems
    }
}
