//! Compares `alloc_buddy_simple::LockedHeap` with its peers (talc 5, `buddy_system_allocator`,
//! `linked_list_allocator`, rlsf) and the system allocator, on the same operation sequences.
//!
//! Every contender is driven through its `GlobalAlloc` impl, lock included. The arena allocators
//! share one 128 MiB arena (allocated and touched once); each trial builds a fresh allocator over
//! it. Trials are interleaved across allocators (each trial visits them in its own seeded
//! shuffle), and each figure is the median over trials, so that ratios survive a noisy machine.
//!
//! Workloads (see `workloads.rs` for the details):
//! 1. random actions (talc's shape), with and without realloc: successful operations per second;
//! 2. heap efficiency (talc's definition): requested bytes live at the first failure;
//! 3. alloc + free latency percentiles (talc's microbench mix), and fixed-size alloc/free pairs;
//! 4. free scaling: ns per free with long free lists, in `buddy_system_allocator` PR #55's shape
//!    (`heap_dealloc_scan`) and in our first form of it (every block freed);
//! 5. two threads sharing one allocator: total operations per second.
//!
//! Modes:
//! - `cargo bench --bench compare`: quick mode (well under a minute); writes `benches/results/`.
//! - `cargo bench --bench compare -- --full` (or `BENCH_FULL=1`): full mode; writes the same files.
//! - the binary run without `--bench` (e.g. by `cargo test --benches`): a smoke run of every
//!   workload with tiny settings, which writes nothing and exits non-zero on a sanity failure.
//!
//! Extra arguments that are not flags filter the workloads by name (`random`, `efficiency`,
//! `latency`, `pairs`, `free-scan`, `free-halves`, `threads`; `free` runs both free-scaling ones); a
//! filtered run prints its tables but writes no files.

#[path = "compare/contenders.rs"]
mod contenders;
#[path = "compare/report.rs"]
mod report;
#[path = "compare/workloads.rs"]
mod workloads;

use std::alloc::Layout;
use std::time::{Duration, Instant};

use contenders::Kind;
use report::{Cell, Report, Row, Table};
use workloads::{Clock, FreeShape};

/// Size of the shared arena: 128 MiB, as in talc's benchmarks.
const ARENA_SIZE: usize = 1 << 27;

/// The arena starts this far past a 128 MiB boundary, so its start is aligned to exactly 4 KiB
/// (page-aligned, but no more). This keeps the block layout of the address-aligned buddy
/// allocators the same from run to run, and does not flatter them with a size-aligned heap.
const ARENA_OFFSET: usize = 4096;

/// A second start for the fixed-size pairs, 64 KiB past the boundary. An address-aligned buddy
/// allocator (`buddy_system_allocator`) cuts a page-aligned arena into a lone 4 KiB block at its
/// bottom, then 8 KiB, 16 KiB and so on; its 4 KiB pair then neither splits nor merges, its best
/// case. From this start its smallest block is 64 KiB, as on a heap aligned to 64 KiB.
const ALT_OFFSET: usize = 64 << 10;

/// One memory region for the arena allocators, allocated once and never freed.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Arena {
    pub(crate) base: *mut u8,
    pub(crate) size: usize,
}

impl Arena {
    /// Allocates the arena from the system allocator (with room to start it at `ALT_OFFSET`)
    /// and touches every page of it.
    fn new() -> Arena {
        let layout = Layout::from_size_align(ARENA_SIZE + ALT_OFFSET, ARENA_SIZE).expect("arena layout");
        // SAFETY: the layout has a non-zero size.
        let raw = unsafe { std::alloc::alloc(layout) };
        if raw.is_null() {
            std::alloc::handle_alloc_error(layout);
        }
        for offset in (0..layout.size()).step_by(4096) {
            // SAFETY: `offset < layout.size()`, so the byte is inside the allocation.
            unsafe { raw.add(offset).write_volatile(0xAB) };
        }
        // SAFETY: `ARENA_OFFSET` is within the allocation.
        Arena { base: unsafe { raw.add(ARENA_OFFSET) }, size: ARENA_SIZE }
    }

    /// The same memory, `ARENA_SIZE` bytes starting `ALT_OFFSET` bytes past the boundary
    /// instead of `ARENA_OFFSET`.
    fn at_alt_offset(self) -> Arena {
        // SAFETY: `Arena::new` allocated `ALT_OFFSET + ARENA_SIZE` bytes from `base - ARENA_OFFSET`.
        let base = unsafe { self.base.sub(ARENA_OFFSET).add(ALT_OFFSET) };
        Arena { base, size: self.size }
    }
}

/// A small, fast PRNG (wyrand), so the generator costs little next to the allocator.
#[derive(Clone, Debug)]
pub(crate) struct Rng(u64);

impl Rng {
    pub(crate) fn new(seed: u64) -> Rng {
        let mut rng = Rng(seed ^ 0x5851_F42D_4C95_7F2D);
        rng.next_u64();
        rng
    }

    pub(crate) fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0xA076_1D64_78BD_642F);
        let t = u128::from(self.0) * u128::from(self.0 ^ 0xE703_7ED1_A0B4_28DB);
        ((t >> 64) as u64) ^ (t as u64)
    }

    /// Uniform in `0..n` (Lemire's multiply-shift; the bias is negligible for our `n`).
    pub(crate) fn below(&mut self, n: usize) -> usize {
        ((u128::from(self.next_u64()) * n as u128) >> 64) as usize
    }

    /// Uniform in `lo..hi`.
    pub(crate) fn range(&mut self, lo: usize, hi: usize) -> usize {
        lo + self.below(hi - lo)
    }

    /// talc's size distribution, skewed small: `cap = U[16, max)`, `size = U[4, cap)`.
    pub(crate) fn size(&mut self, max: usize) -> usize {
        let cap = self.range(16, max);
        self.range(4, cap)
    }

    /// talc's alignment distribution: `8 << (trailing_zeros(random u16) / 2)`, i.e. 75% 8 B,
    /// 19% 16 B, 4% 32 B, and so on up to 2 KiB.
    pub(crate) fn align(&mut self) -> usize {
        size_of::<usize>() << ((self.next_u64() as u16).trailing_zeros() / 2)
    }
}

/// Derives a seed for one trial of one configuration; every allocator gets the same one.
fn seed(workload: u64, param: u64, trial: u64) -> u64 {
    let mut rng = Rng::new(workload.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ param.rotate_left(17) ^ trial);
    rng.next_u64()
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    Smoke,
    Quick,
    Full,
}

/// Trial counts and time windows of one mode.
#[derive(Clone, Debug)]
struct Settings {
    ra_trials: usize,
    ra_warmup: Duration,
    ra_window: Duration,
    ra_sizes: &'static [usize],
    he_trials: usize,
    he_trials_lla: usize,
    lat_trials: usize,
    lat_window: Duration,
    pair_trials: usize,
    pair_count: usize,
    fs_trials: usize,
    fs_ns: &'static [usize],
    fs_budget: Duration,
    mt_trials: usize,
    mt_window: Duration,
    sanity_ops: usize,
}

const RA_SIZES: &[usize] = &[200, 1000, 3000, 10000, 30000];
const FS_NS: &[usize] = &[100, 500, 1000, 2000, 5000, 10000, 20000];

impl Settings {
    fn of(mode: Mode) -> Settings {
        let ms = Duration::from_millis;
        match mode {
            Mode::Smoke => Settings {
                ra_trials: 1,
                ra_warmup: ms(1),
                ra_window: ms(2),
                ra_sizes: &[200, 30000],
                he_trials: 1,
                he_trials_lla: 1,
                lat_trials: 1,
                lat_window: ms(5),
                pair_trials: 1,
                pair_count: 2000,
                fs_trials: 1,
                fs_ns: &[100, 1000],
                fs_budget: ms(50),
                mt_trials: 1,
                mt_window: ms(2),
                sanity_ops: 5000,
            },
            Mode::Quick => Settings {
                ra_trials: 5,
                ra_warmup: ms(2),
                ra_window: ms(20),
                ra_sizes: RA_SIZES,
                he_trials: 20,
                he_trials_lla: 4,
                lat_trials: 3,
                lat_window: ms(80),
                pair_trials: 7,
                pair_count: 50_000,
                fs_trials: 3,
                fs_ns: FS_NS,
                fs_budget: ms(100),
                mt_trials: 5,
                mt_window: ms(20),
                sanity_ops: 20_000,
            },
            Mode::Full => Settings {
                ra_trials: 7,
                ra_warmup: ms(2),
                ra_window: ms(200),
                ra_sizes: RA_SIZES,
                he_trials: 300,
                he_trials_lla: 40,
                lat_trials: 5,
                lat_window: ms(1000),
                pair_trials: 7,
                pair_count: 1_000_000,
                fs_trials: 9,
                fs_ns: FS_NS,
                fs_budget: ms(3000),
                mt_trials: 7,
                mt_window: ms(200),
                sanity_ops: 100_000,
            },
        }
    }
}

/// The command line, parsed.
#[derive(Debug)]
struct Config {
    mode: Mode,
    full_from_env: bool,
    filters: Vec<String>,
    settings: Settings,
}

impl Config {
    fn from_args() -> Config {
        let mut bench = false;
        let mut full = false;
        let mut quick = false;
        let mut filters = Vec::new();
        for arg in std::env::args().skip(1) {
            match arg.as_str() {
                "--bench" => bench = true,
                "--full" => full = true,
                "--quick" => quick = true,
                "--smoke" => {}
                "--help" | "-h" => {
                    println!(
                        "usage: cargo bench --bench compare [-- [--full] [WORKLOAD...]]\n\
                         workloads: random efficiency latency pairs free threads\n\
                         BENCH_FULL=1 also selects the full mode; without --bench (as under \
                         `cargo test`) a short smoke run is made and nothing is written."
                    );
                    std::process::exit(0);
                }
                flag if flag.starts_with('-') => eprintln!("compare: ignoring unknown flag {flag}"),
                filter => filters.push(filter.to_owned()),
            }
        }
        let full_from_env = std::env::var("BENCH_FULL").is_ok_and(|v| !v.is_empty() && v != "0");
        let mode = if full || full_from_env {
            Mode::Full
        } else if bench || quick {
            Mode::Quick
        } else {
            Mode::Smoke
        };
        Config { mode, full_from_env: full_from_env && !full, filters, settings: Settings::of(mode) }
    }

    fn runs(&self, workload: &str) -> bool {
        self.filters.is_empty() || self.filters.iter().any(|f| workload.contains(f.as_str()))
    }

    fn command(&self) -> String {
        let mut cmd = String::new();
        if self.full_from_env {
            cmd.push_str("BENCH_FULL=1 ");
        }
        cmd.push_str("cargo bench --bench compare");
        let mut extra: Vec<&str> = Vec::new();
        if self.mode == Mode::Full && !self.full_from_env {
            extra.push("--full");
        }
        extra.extend(self.filters.iter().map(String::as_str));
        if !extra.is_empty() {
            cmd.push_str(" -- ");
            cmd.push_str(&extra.join(" "));
        }
        cmd
    }
}

/// Runs `f(kind, trial)` for every trial and allocator, interleaved: each trial visits the
/// allocators in the order [`visit_order`] gives. `trials(kind)` may cap an allocator's trials (it
/// then takes part in the first trials only). Returns the results per allocator, in `kinds` order.
fn interleave<T>(
    kinds: &[Kind],
    trials: impl Fn(Kind) -> usize,
    mut f: impl FnMut(Kind, usize) -> T,
) -> Vec<Vec<T>> {
    let mut out: Vec<Vec<T>> = kinds.iter().map(|_| Vec::new()).collect();
    let most = kinds.iter().map(|&k| trials(k)).max().unwrap_or(0);
    for trial in 0..most {
        for i in visit_order(kinds.len(), trial, 0) {
            if trial < trials(kinds[i]) {
                out[i].push(f(kinds[i], trial));
            }
        }
    }
    out
}

/// The order in which one trial (of configuration `config`) visits `n` allocators: a shuffle,
/// seeded by both. A rotation gives each allocator the same predecessor in every trial, and ours
/// always followed the system allocator, whose blocks are outside the arena, where the others
/// followed an allocator that had just used the same addresses: in PR #55's free-scaling shape at
/// N = 20 000, ours ran 7-24 ns a free slower than ours-pow2 (the same code on the same blocks) in
/// five runs out of five with the rotation, and in none of three with the shuffle.
fn visit_order(n: usize, trial: usize, config: usize) -> Vec<usize> {
    let mut order: Vec<usize> = (0..n).collect();
    let mut rng = Rng::new(seed(u64::MAX, config as u64, trial as u64));
    for k in (1..n).rev() {
        order.swap(k, rng.below(k + 1));
    }
    order
}

/// Runs `f(config, kind, trial)` for every trial, configuration and allocator, with the trials
/// outermost: each configuration's trials are spread over the whole workload rather than run back
/// to back, so a noisy spell of the machine hits one trial of many configurations instead of
/// every trial of one. Within a trial, the allocators are visited in the order [`visit_order`]
/// gives for the trial and configuration. Returns the results per configuration, then per allocator (in
/// `Kind::ALL` order).
fn sweep<C, T>(configs: &[C], trials: usize, mut f: impl FnMut(&C, Kind, usize) -> T) -> Vec<Vec<Vec<T>>> {
    let n = Kind::ALL.len();
    let mut out: Vec<Vec<Vec<T>>> = configs.iter().map(|_| (0..n).map(|_| Vec::new()).collect()).collect();
    for trial in 0..trials {
        for (c, config) in configs.iter().enumerate() {
            for i in visit_order(n, trial, c) {
                out[c][i].push(f(config, Kind::ALL[i], trial));
            }
        }
    }
    out
}

/// The median of some figures (the mean of the middle two for an even count).
pub(crate) fn median(values: &[f64]) -> f64 {
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n == 0 {
        f64::NAN
    } else if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// Workload 0: a fill-and-verify pass on each allocator, to catch a broken contender before its
/// figures are trusted.
fn sanity(cfg: &Config, arena: Arena, report: &mut Report) {
    for kind in Kind::ALL {
        let mut job = workloads::Sanity { ops: cfg.settings.sanity_ops, seed: seed(0, 0, 0) };
        let problems = contenders::run_fresh(kind, arena, &mut job);
        for p in problems {
            report.problem(kind, format!("sanity: {p}"), true);
        }
    }
}

/// Workload 1: random actions, with and without realloc.
fn random_actions(cfg: &Config, arena: Arena, report: &mut Report) {
    let s = &cfg.settings;
    let configs: Vec<(bool, usize)> =
        [true, false].into_iter().flat_map(|r| s.ra_sizes.iter().map(move |&max| (r, max))).collect();
    let results = sweep(&configs, s.ra_trials, |&(realloc, max), kind, trial| {
        let mut job = workloads::RandomActions {
            max,
            realloc,
            warmup: s.ra_warmup,
            window: s.ra_window,
            seed: seed(1 + u64::from(realloc), max as u64, trial as u64),
        };
        contenders::run_fresh(kind, arena, &mut job)
    });
    for realloc in [true, false] {
        let mut table = Table::new(
            if realloc { "random_actions" } else { "random_actions_no_realloc" },
            format!("Random actions{}, 1 thread", if realloc { " with realloc" } else { " without realloc" }),
            "Mops/s",
            true,
            "max size (B)",
        );
        table.note(format!(
            "talc's random-actions shape: each step is {} (alloc while fewer than 300 are live); \
             sizes `U[4, U[16, max))`, alignment 8 B << (tz(u16)/2); realloc to `U[1, 3*max)`. \
             Figure: successful operations per second over a fixed {} ms window (after a {} ms \
             warm-up on the same fresh allocator), median of {} trials.",
            if realloc { "1/7 realloc, 3/7 alloc, 3/7 free" } else { "1/2 alloc, 1/2 free" },
            s.ra_window.as_millis(),
            s.ra_warmup.as_millis(),
            s.ra_trials
        ));
        for (&(r, max), per_kind) in configs.iter().zip(&results) {
            if r != realloc {
                continue;
            }
            let mut row = Row::new(max.to_string());
            for (kind, scores) in Kind::ALL.iter().zip(per_kind) {
                let rates: Vec<f64> = scores.iter().map(|sc| sc.ops as f64 / sc.secs / 1e6).collect();
                let fails: u64 = scores.iter().map(|sc| sc.alloc_fails + sc.realloc_fails).sum();
                if fails > 0 {
                    table
                        .note(format!("{}: {fails} failed (null) operations at max size {max}", kind.name()));
                    report.problem(*kind, format!("random actions (max {max}): {fails} null results"), false);
                }
                row.set(*kind, Cell::median_of(&rates));
            }
            table.push(row);
        }
        report.push(table);
    }
}

/// Workload 2: heap efficiency.
fn heap_efficiency(cfg: &Config, arena: Arena, report: &mut Report) {
    let s = &cfg.settings;
    let kinds: Vec<Kind> = Kind::ALL.into_iter().filter(|k| k.uses_arena()).collect();
    let trials = |k: Kind| if k == Kind::Lla { s.he_trials_lla.min(s.he_trials) } else { s.he_trials };
    let mut table = Table::new("heap_efficiency", "Heap efficiency".to_owned(), "%", true, "arena");
    table.note(format!(
        "talc's definition: each step is 50% alloc (`U[4, U[16, 10000))` B), 10% free, 40% realloc \
         to `U[1, 100000)` B, until the first failed alloc or realloc; figure = sum of the \
         requested sizes live at that point / arena size, summed over trials (a fresh allocator \
         and seed each). {} trials; lla only the first {} (it is O(n) per operation: about 80 ms \
         a trial), so its ratio compares it on those seeds with talc on all of them. The system \
         allocator has no arena and is left out.",
        s.he_trials,
        trials(Kind::Lla)
    ));
    let results = interleave(&kinds, trials, |kind, trial| {
        let mut job = workloads::HeapEfficiency { seed: seed(3, 0, trial as u64), arena_size: arena.size };
        let start = Instant::now();
        let out = contenders::run_fresh(kind, arena, &mut job);
        (out, start.elapsed())
    });
    let mut row = Row::new(format!("{} MiB", arena.size >> 20));
    for (kind, outs) in kinds.iter().zip(&results) {
        let used: usize = outs.iter().map(|(o, _)| o.requested).sum();
        let pct = used as f64 / (outs.len() * arena.size) as f64 * 100.0;
        let per: Vec<f64> =
            outs.iter().map(|(o, _)| o.requested as f64 / arena.size as f64 * 100.0).collect();
        let mut cell = Cell::value(pct, &per);
        cell.trials = outs.len();
        row.set(*kind, cell);
        let secs: f64 = outs.iter().map(|(_, t)| t.as_secs_f64()).sum();
        let ops: u64 = outs.iter().map(|(o, _)| o.ops).sum();
        let n = outs.len().max(1) as f64;
        let failed_allocs = outs.iter().filter(|(o, _)| o.failed_alloc).count();
        let failed_size = outs.iter().map(|(o, _)| o.failed_size as f64).sum::<f64>() / n;
        table.note(format!(
            "{}: {} trials, {:.2} s, {:.0} operations per trial on average; the first failure was an \
             alloc in {failed_allocs} trials and a realloc in {}, of {failed_size:.0} B on average",
            kind.name(),
            outs.len(),
            secs,
            ops as f64 / n,
            outs.len() - failed_allocs
        ));
        let prints: Vec<_> = outs.iter().filter_map(|(o, _)| o.footprint).collect();
        if !prints.is_empty() {
            let share = |f: fn(&contenders::Footprint) -> usize| {
                prints.iter().map(|p| f(p) as f64).sum::<f64>() / prints.len() as f64 / arena.size as f64
                    * 100.0
            };
            table.note(format!(
                "{} at the first failure (its own stats, mean over trials, in % of the arena): live blocks \
                 {:.1}% (requested {pct:.1}%), free {:.1}% (largest free block {:.2}%), metadata {:.1}%",
                kind.name(),
                share(|p| p.allocated),
                share(|p| p.free),
                share(|p| p.largest_free),
                share(|p| p.metadata),
            ));
        }
        for (o, _) in outs {
            if let Some(p) = &o.problem {
                report.problem(*kind, format!("heap efficiency: {p}"), true);
            }
        }
    }
    table.push(row);
    report.push(table);
}

/// Workload 3a: alloc + free latency percentiles.
fn latency(cfg: &Config, arena: Arena, clock: &Clock, report: &mut Report) {
    let s = &cfg.settings;
    let mut table = Table::new("latency", "Alloc + free latency".to_owned(), "ns", false, "percentile");
    table.note(format!(
        "talc's microbench mix: sizes `U[4, U[16, 65536))`, talc's alignments, at most 600 live; \
         frees in batches of 8 (probability 0.1 once more than 50 are live, always above 600). \
         Each alloc and each free is timed alone with {}; a row is the alloc percentile plus the \
         free percentile (talc's sum), in ns. {} ms per trial, median of {} trials. The timer \
         itself costs about {:.0} ns per reading pair (not subtracted). The max is mostly the \
         machine (preemption, interrupts), not the allocator.",
        clock.describe(),
        s.lat_window.as_millis(),
        s.lat_trials,
        clock.overhead_ns()
    ));
    let results = interleave(
        &Kind::ALL,
        |_| s.lat_trials,
        |kind, trial| {
            let mut job = workloads::Latency {
                window: s.lat_window,
                seed: seed(4, 0, trial as u64),
                clock: clock.clone(),
            };
            contenders::run_fresh(kind, arena, &mut job)
        },
    );
    for (p, name) in workloads::PERCENTILE_NAMES.iter().enumerate() {
        let mut row = Row::new((*name).to_owned());
        for (kind, outs) in Kind::ALL.iter().zip(&results) {
            let values: Vec<f64> = outs.iter().map(|o| o.percentiles_ns[p]).collect();
            row.set(*kind, Cell::median_of(&values));
        }
        table.push(row);
    }
    for (kind, outs) in Kind::ALL.iter().zip(&results) {
        let fails: u64 = outs.iter().map(|o| o.alloc_fails).sum();
        if fails > 0 {
            table.note(format!("{}: {fails} failed allocations", kind.name()));
            report.problem(*kind, format!("latency: {fails} null allocations"), false);
        }
    }
    table.log_chart = true;
    report.push(table);
}

/// Workload 3b: fixed-size alloc/free pairs on a fresh heap.
fn pairs(cfg: &Config, arena: Arena, report: &mut Report) {
    let s = &cfg.settings;
    let mut table = Table::new("pairs", "Fixed-size alloc + free pairs".to_owned(), "ns/pair", false, "size");
    table.note(format!(
        "On a fresh allocator: {} pairs of `alloc(size, align 8)` then `dealloc` of the same block, \
         timed together with `Instant` (after 1000 warm-up pairs); ns per pair, median of {} trials. \
         The arena starts 4 KiB past a 128 MiB boundary, which leaves `buddy_system_allocator` a \
         lone 4 KiB block at its bottom (its 4 KiB pair neither splits nor merges); two rows \
         start it 64 KiB past, as a heap aligned to 64 KiB. In the first five rows the compiler \
         inlines into the loop whatever allocator code it finds small enough; in the \
         \"called\" rows every alloc and dealloc is a call the compiler does not inline, as a \
         program's calls to its `#[global_allocator]` are without LTO.",
        s.pair_count, s.pair_trials
    ));
    let alt = arena.at_alt_offset();
    let configs = [
        (16, "16 B", arena, false),
        (64, "64 B", arena, false),
        (4096, "4 KiB", arena, false),
        (16, "16 B, arena at +64 KiB", alt, false),
        (4096, "4 KiB, arena at +64 KiB", alt, false),
        (16, "16 B, called", arena, true),
        (64, "64 B, called", arena, true),
        (4096, "4 KiB, called", arena, true),
    ];
    let results = sweep(&configs, s.pair_trials, |&(size, _, arena, called), kind, _| {
        let mut job = workloads::Pairs { size, count: s.pair_count, called };
        contenders::run_fresh(kind, arena, &mut job)
    });
    for (&(_, label, _, _), per_kind) in configs.iter().zip(&results) {
        let mut row = Row::new(label.to_owned());
        for (kind, outs) in Kind::ALL.iter().zip(per_kind) {
            let ok: Vec<f64> = outs.iter().filter_map(|o| *o).collect();
            if ok.len() < outs.len() {
                row.set(*kind, Cell::failed("null"));
                report.problem(*kind, format!("pairs: allocating {label} returned null"), false);
            } else {
                row.set(*kind, Cell::median_of(&ok));
            }
        }
        table.push(row);
    }
    report.push(table);
}

/// Workload 4: free scaling with long free lists, in `shape` (see [`FreeShape`]).
///
/// Run through [`sweep`], trials outermost: a noisy spell of the machine hits one trial of several
/// rows rather than every trial of one row (a row's trials back to back took about 0.1 s at
/// N = 5000, and a slow spell lasts seconds). The first trial decides which allocators each N
/// runs (the skip rule); the others run the same.
fn free_scaling(cfg: &Config, arena: Arena, report: &mut Report, shape: FreeShape) {
    let s = &cfg.settings;
    let (id, title, param, describe) = shape.table();
    let mut table = Table::new(id, title.to_owned(), "ns/free", false, param);
    table.note(describe.to_owned());
    table.note(format!(
        "Median of {} trials; each trial runs every N in turn, so the trials of one N are spread \
         over the whole workload. An allocator is skipped at N when its first trial's time at the \
         previous N, scaled quadratically, predicts more than {} ms a trial (the budget of this mode).",
        s.fs_trials,
        s.fs_budget.as_millis()
    ));
    // Per allocator: the previous N and its first trial's time, for the skip rule; and per N, the
    // allocators that run (decided in the first trial, kept for the others).
    let mut last: Vec<Option<(usize, f64)>> = vec![None; Kind::ALL.len()];
    let mut active = vec![vec![false; Kind::ALL.len()]; s.fs_ns.len()];
    let rows: Vec<(usize, usize)> = s.fs_ns.iter().copied().enumerate().collect();
    // `None`: skipped; `Some(None)`: an allocation failed.
    let results = sweep(&rows, s.fs_trials, |&(row, n), kind, trial| {
        // `Kind::ALL` is in declaration order.
        let i = kind as usize;
        if trial == 0 {
            active[row][i] = last[i].is_none_or(|(prev, secs)| {
                secs * (n as f64 / prev as f64).powi(2) <= s.fs_budget.as_secs_f64()
            });
        }
        if !active[row][i] {
            return None;
        }
        let out = contenders::run_fresh(kind, arena, &mut workloads::FreeScaling { n, shape });
        if trial == 0 {
            last[i] = Some((n, out.as_ref().map_or(f64::INFINITY, |o| o.trial_secs)));
        }
        Some(out)
    });
    for (&n, per_kind) in s.fs_ns.iter().zip(&results) {
        let mut cells = Row::new(n.to_string());
        for (kind, trials) in Kind::ALL.iter().zip(per_kind) {
            if trials.iter().any(Option::is_none) {
                cells.set(*kind, Cell::skipped());
            } else if trials.iter().flatten().any(Option::is_none) {
                cells.set(*kind, Cell::failed("null"));
                report.problem(
                    *kind,
                    format!(
                        "free scaling: allocating the blocks, or finding N fours in them, failed at N = {n}"
                    ),
                    false,
                );
            } else {
                let per_free: Vec<f64> = trials.iter().flatten().flatten().map(|o| o.ns_per_free).collect();
                cells.set(*kind, Cell::median_of(&per_free));
            }
        }
        table.push(cells);
    }
    table.log_chart = true;
    report.push(table);
}

/// Workload 5: two threads sharing one allocator.
fn two_threads(cfg: &Config, arena: Arena, report: &mut Report) {
    let s = &cfg.settings;
    let threads = 2;
    let mut table = Table::new(
        "two_threads",
        format!("Random actions with realloc, {threads} threads sharing one allocator"),
        "Mops/s",
        true,
        "max size (B)",
    );
    table.note(format!(
        "{threads} threads (`std::thread::scope`) run the random-actions workload with realloc on \
         the same allocator, each with its own seed and live set, started together by a barrier; \
         figure = the sum of the threads' successful operations per second over a {} ms window \
         (after a {} ms warm-up), median of {} trials. The system allocator (glibc) has \
         per-thread arenas, so it is no lock-for-lock comparison.",
        s.mt_window.as_millis(),
        s.ra_warmup.as_millis(),
        s.mt_trials
    ));
    let results = sweep(s.ra_sizes, s.mt_trials, |&max, kind, trial| {
        let mut job = workloads::Threads {
            threads,
            max,
            warmup: s.ra_warmup,
            window: s.mt_window,
            seed: seed(5, max as u64, trial as u64),
        };
        contenders::run_fresh(kind, arena, &mut job)
    });
    for (&max, per_kind) in s.ra_sizes.iter().zip(&results) {
        let mut row = Row::new(max.to_string());
        for (kind, outs) in Kind::ALL.iter().zip(per_kind) {
            let rates: Vec<f64> = outs
                .iter()
                .map(|scores| scores.iter().map(|sc| sc.ops as f64 / sc.secs).sum::<f64>() / 1e6)
                .collect();
            let fails: u64 = outs.iter().flatten().map(|sc| sc.alloc_fails + sc.realloc_fails).sum();
            if fails > 0 {
                table.note(format!("{}: {fails} failed (null) operations at max size {max}", kind.name()));
                report.problem(*kind, format!("two threads (max {max}): {fails} null results"), false);
            }
            row.set(*kind, Cell::median_of(&rates));
        }
        table.push(row);
    }
    report.push(table);
}

/// A workload's name and the function that runs it.
type Step<'a> = (&'static str, &'a dyn Fn(&mut Report));

fn main() {
    let cfg = Config::from_args();
    let started = Instant::now();
    let mode = match cfg.mode {
        Mode::Smoke => "smoke (no --bench flag: tiny settings, nothing written)",
        Mode::Quick => "quick",
        Mode::Full => "full",
    };
    eprintln!("compare: {mode} mode; allocating and touching the {} MiB arena", ARENA_SIZE >> 20);
    let arena = Arena::new();
    let clock = Clock::calibrate();
    let mut report = Report::new(mode, cfg.command(), arena, &clock);

    let steps: [Step<'_>; 8] = [
        ("sanity", &|r| sanity(&cfg, arena, r)),
        ("random", &|r| random_actions(&cfg, arena, r)),
        ("efficiency", &|r| heap_efficiency(&cfg, arena, r)),
        ("latency", &|r| latency(&cfg, arena, &clock, r)),
        ("pairs", &|r| pairs(&cfg, arena, r)),
        ("free-scan", &|r| free_scaling(&cfg, arena, r, FreeShape::Scan)),
        ("free-halves", &|r| free_scaling(&cfg, arena, r, FreeShape::Halves)),
        ("threads", &|r| two_threads(&cfg, arena, r)),
    ];
    for (name, step) in steps {
        if name == "sanity" || cfg.runs(name) {
            let t = Instant::now();
            eprintln!("compare: {name} ...");
            step(&mut report);
            eprintln!("compare: {name} took {:.1} s", t.elapsed().as_secs_f64());
        }
    }
    report.finish(started.elapsed());

    let text = report.markdown();
    if cfg.mode == Mode::Smoke {
        // Under `cargo test` the figures mean nothing; the sanity verdict is what counts.
        println!("compare: smoke run of every workload done\n{}", report.problems_markdown());
    } else {
        println!("{text}");
    }
    if cfg.mode != Mode::Smoke && cfg.filters.is_empty() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("benches").join("results");
        match report.write(&dir, &text) {
            Ok(files) => eprintln!("compare: wrote {}", files.join(", ")),
            Err(e) => eprintln!("compare: could not write results to {}: {e}", dir.display()),
        }
    } else if cfg.mode != Mode::Smoke {
        eprintln!("compare: filtered run; results not written");
    }
    eprintln!("compare: total {:.1} s", started.elapsed().as_secs_f64());
    if report.has_fatal() {
        eprintln!("compare: sanity problems found (see above)");
        std::process::exit(1);
    }
}
