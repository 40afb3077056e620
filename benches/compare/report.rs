//! The results: one table per workload, printed as markdown and written as markdown, CSV and one
//! hand-written SVG bar chart per table.

use std::fmt::Write as _;
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::contenders::Kind;
use crate::workloads::Clock;
use crate::{Arena, median};

/// One allocator's figure in one row.
#[derive(Clone, Debug)]
pub(crate) struct Cell {
    pub(crate) status: Status,
    /// The figure shown (the median over trials, or the pooled figure where a note says so).
    pub(crate) value: f64,
    pub(crate) min: f64,
    pub(crate) max: f64,
    pub(crate) trials: usize,
    /// The figure of each trial, in trial order, where the figure shown is their median; empty
    /// where it is pooled. Trial `t` of every allocator ran in the same round (seconds apart), so
    /// ratios are taken trial by trial (see [`Row::ratio`]).
    pub(crate) per_trial: Vec<f64>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Status {
    Ok,
    Skipped,
    Failed(String),
}

impl Cell {
    /// A pooled figure `value` over the figures of the trials (`trials`).
    pub(crate) fn value(value: f64, trials: &[f64]) -> Cell {
        let min = trials.iter().copied().fold(f64::INFINITY, f64::min);
        let max = trials.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        Cell { status: Status::Ok, value, min, max, trials: trials.len(), per_trial: Vec::new() }
    }

    /// The median of the trials' figures, kept for ratios trial by trial.
    pub(crate) fn median_of(trials: &[f64]) -> Cell {
        Cell { per_trial: trials.to_vec(), ..Cell::value(median(trials), trials) }
    }

    pub(crate) fn skipped() -> Cell {
        Cell {
            status: Status::Skipped,
            value: f64::NAN,
            min: f64::NAN,
            max: f64::NAN,
            trials: 0,
            per_trial: Vec::new(),
        }
    }

    pub(crate) fn failed(why: &str) -> Cell {
        Cell { status: Status::Failed(why.to_owned()), ..Cell::skipped() }
    }

    fn ok(&self) -> Option<f64> {
        (self.status == Status::Ok && self.value.is_finite()).then_some(self.value)
    }
}

/// One parameter value of a workload: a figure per allocator.
#[derive(Clone, Debug)]
pub(crate) struct Row {
    param: String,
    cells: Vec<Option<Cell>>,
}

impl Row {
    pub(crate) fn new(param: String) -> Row {
        Row { param, cells: vec![None; Kind::ALL.len()] }
    }

    pub(crate) fn set(&mut self, kind: Kind, cell: Cell) {
        self.cells[index(kind)] = Some(cell);
    }

    fn get(&self, kind: Kind) -> Option<&Cell> {
        self.cells[index(kind)].as_ref()
    }

    /// `kind`'s figure over talc's: the median over trials of the ratio within each trial where
    /// both figures are medians of the same trials (the allocators of one trial ran in the same
    /// round, seconds apart, so a slow spell of the machine hits both sides of each ratio), the
    /// ratio of the figures otherwise.
    fn ratio(&self, kind: Kind) -> Option<f64> {
        let talc = self.get(Kind::Talc)?;
        let cell = self.get(kind)?;
        let (t, v) = (talc.ok()?, cell.ok()?);
        let (a, b) = (&cell.per_trial, &talc.per_trial);
        if !a.is_empty() && a.len() == b.len() && b.iter().all(|&x| x > 0.0) {
            let ratios: Vec<f64> = a.iter().zip(b).map(|(x, y)| x / y).collect();
            return Some(median(&ratios));
        }
        (t != 0.0).then_some(v / t)
    }
}

fn index(kind: Kind) -> usize {
    Kind::ALL.iter().position(|&k| k == kind).expect("kind in Kind::ALL")
}

/// One workload's results.
#[derive(Clone, Debug)]
pub(crate) struct Table {
    /// File stem and CSV key.
    id: &'static str,
    title: String,
    unit: &'static str,
    higher_is_better: bool,
    param_label: &'static str,
    rows: Vec<Row>,
    notes: Vec<String>,
    /// Draw the chart on a log scale (for figures spanning orders of magnitude).
    pub(crate) log_chart: bool,
}

impl Table {
    pub(crate) fn new(
        id: &'static str,
        title: String,
        unit: &'static str,
        higher_is_better: bool,
        param_label: &'static str,
    ) -> Table {
        Table {
            id,
            title,
            unit,
            higher_is_better,
            param_label,
            rows: Vec::new(),
            notes: Vec::new(),
            log_chart: false,
        }
    }

    pub(crate) fn push(&mut self, row: Row) {
        self.rows.push(row);
    }

    pub(crate) fn note(&mut self, note: String) {
        self.notes.push(note);
    }

    /// The allocators that have at least one cell.
    fn kinds(&self) -> Vec<Kind> {
        Kind::ALL.into_iter().filter(|&k| self.rows.iter().any(|r| r.get(k).is_some())).collect()
    }

    fn markdown(&self, out: &mut String) {
        let better = if self.higher_is_better { "higher is better" } else { "lower is better" };
        let _ = writeln!(out, "## {}\n", self.title);
        let _ = writeln!(
            out,
            "Figures in {} ({better}); in brackets and in the last column: the figure / talc's, \
             the median over trials of the ratio within each trial where the figures are medians.\n",
            self.unit
        );
        let kinds = self.kinds();
        let _ = write!(out, "| {} |", self.param_label);
        for k in &kinds {
            let _ = write!(out, " {} |", k.name());
        }
        if kinds.contains(&Kind::Ours) {
            out.push_str(" ours/talc |");
        }
        out.push('\n');
        out.push_str("|---|");
        for _ in &kinds {
            out.push_str("---:|");
        }
        if kinds.contains(&Kind::Ours) {
            out.push_str("---:|");
        }
        out.push('\n');
        for row in &self.rows {
            let _ = write!(out, "| {} |", row.param);
            for &k in &kinds {
                let text = match row.get(k) {
                    None => "n/a".to_owned(),
                    Some(c) => match &c.status {
                        Status::Skipped => "skipped".to_owned(),
                        Status::Failed(why) => format!("failed ({why})"),
                        Status::Ok => match row.ratio(k) {
                            Some(r) => format!("{} ({r:.2}x)", fmt_value(c.value)),
                            None => fmt_value(c.value),
                        },
                    },
                };
                let _ = write!(out, " {text} |");
            }
            if kinds.contains(&Kind::Ours) {
                match row.ratio(Kind::Ours) {
                    Some(r) => {
                        let _ = write!(out, " **{r:.2}x** |");
                    }
                    None => out.push_str(" – |"),
                }
            }
            out.push('\n');
        }
        out.push('\n');
        for note in &self.notes {
            let _ = writeln!(out, "- {note}");
        }
        if !self.notes.is_empty() {
            out.push('\n');
        }
    }

    fn csv(&self, out: &mut String) {
        for row in &self.rows {
            for k in Kind::ALL {
                let Some(c) = row.get(k) else { continue };
                let status = match &c.status {
                    Status::Ok => "ok".to_owned(),
                    Status::Skipped => "skipped".to_owned(),
                    Status::Failed(why) => format!("failed: {why}"),
                };
                let num = |v: f64| if v.is_finite() { format!("{v:.6}") } else { String::new() };
                let _ = writeln!(
                    out,
                    "{},{},{},{},{},{},{},{},{},{}",
                    self.id,
                    csv_field(&row.param),
                    k.name(),
                    num(c.value),
                    self.unit,
                    row.ratio(k).map_or(String::new(), |r| format!("{r:.4}")),
                    c.trials,
                    num(c.min),
                    num(c.max),
                    csv_field(&status)
                );
            }
        }
    }

    /// A grouped bar chart: one group per row, one bar per allocator.
    fn svg(&self) -> String {
        const W: f64 = 960.0;
        const H: f64 = 440.0;
        const LEFT: f64 = 80.0;
        const RIGHT: f64 = 130.0;
        const TOP: f64 = 50.0;
        const BOTTOM: f64 = 60.0;
        let kinds = self.kinds();
        let values: Vec<f64> = self
            .rows
            .iter()
            .flat_map(|r| kinds.iter().filter_map(|&k| r.get(k).and_then(Cell::ok)))
            .collect();
        let positive = values.iter().copied().filter(|v| *v > 0.0);
        let vmax = positive.clone().fold(0.0_f64, f64::max);
        let vmin = positive.fold(f64::INFINITY, f64::min);
        let log = self.log_chart && vmin.is_finite() && vmin > 0.0;
        // The value axis: linear from 0, or log from a power of ten below the smallest figure.
        let step = nice_step(if vmax > 0.0 { vmax } else { 1.0 });
        let (lo, hi) = if log {
            (vmin.log10().floor(), vmax.log10().ceil().max(vmin.log10().floor() + 1.0))
        } else {
            (0.0, (vmax / step).floor() * step + step)
        };
        let plot_h = H - TOP - BOTTOM;
        let plot_w = W - LEFT - RIGHT;
        let y = |v: f64| -> f64 {
            let t = if log { (v.max(10f64.powf(lo)).log10() - lo) / (hi - lo) } else { v / hi };
            TOP + plot_h * (1.0 - t.clamp(0.0, 1.0))
        };

        let mut s = String::new();
        let _ = writeln!(
            s,
            r#"<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" viewBox="0 0 {W} {H}" font-family="sans-serif" font-size="12">"#
        );
        let _ = writeln!(s, r#"<rect width="{W}" height="{H}" fill="white"/>"#);
        let better = if self.higher_is_better { "higher is better" } else { "lower is better" };
        let scale = if log { ", log scale" } else { "" };
        let _ = writeln!(
            s,
            r#"<text x="{}" y="24" font-size="16" font-weight="bold">{}</text>"#,
            LEFT,
            xml(&format!("{} ({}, {better}{scale})", self.title, self.unit))
        );
        // Grid lines and value labels.
        let ticks: Vec<f64> = if log {
            (lo as i32..=hi as i32).map(|e| 10f64.powi(e)).collect()
        } else {
            (0..).map(|i| step * f64::from(i)).take_while(|&t| t <= hi * 1.000_001).collect()
        };
        for t in ticks {
            let ty = y(t);
            let _ = writeln!(
                s,
                r##"<line x1="{LEFT}" y1="{ty:.1}" x2="{:.1}" y2="{ty:.1}" stroke="#ddd"/><text x="{:.1}" y="{:.1}" text-anchor="end">{}</text>"##,
                W - RIGHT,
                LEFT - 6.0,
                ty + 4.0,
                xml(&fmt_tick(t))
            );
        }
        let _ = writeln!(
            s,
            r##"<line x1="{LEFT}" y1="{TOP}" x2="{LEFT}" y2="{:.1}" stroke="#333"/><line x1="{LEFT}" y1="{:.1}" x2="{:.1}" y2="{:.1}" stroke="#333"/>"##,
            TOP + plot_h,
            TOP + plot_h,
            W - RIGHT,
            TOP + plot_h
        );
        // Bars.
        let groups = self.rows.len().max(1) as f64;
        let group_w = plot_w / groups;
        let bar_w = group_w * 0.8 / kinds.len().max(1) as f64;
        for (g, row) in self.rows.iter().enumerate() {
            let gx = LEFT + group_w * g as f64 + group_w * 0.1;
            for (b, &k) in kinds.iter().enumerate() {
                let x = gx + bar_w * b as f64;
                match row.get(k) {
                    Some(c) if c.ok().is_some() => {
                        let top = y(c.value);
                        let tip = match row.ratio(k) {
                            Some(r) => format!(
                                "{} {}: {} {} ({r:.2}x talc)",
                                k.name(),
                                row.param,
                                fmt_value(c.value),
                                self.unit
                            ),
                            None => {
                                format!("{} {}: {} {}", k.name(), row.param, fmt_value(c.value), self.unit)
                            }
                        };
                        let _ = writeln!(
                            s,
                            r#"<rect x="{x:.1}" y="{top:.1}" width="{:.1}" height="{:.1}" fill="{}"><title>{}</title></rect>"#,
                            (bar_w - 1.0).max(1.0),
                            (TOP + plot_h - top).max(0.0),
                            color(k),
                            xml(&tip)
                        );
                        if self.rows.len() <= 3 {
                            let _ = writeln!(
                                s,
                                r#"<text x="{:.1}" y="{:.1}" font-size="10" text-anchor="middle">{}</text>"#,
                                x + bar_w / 2.0,
                                top - 4.0,
                                xml(&fmt_value(c.value))
                            );
                        }
                    }
                    Some(_) => {
                        let _ = writeln!(
                            s,
                            r##"<text x="{:.1}" y="{:.1}" font-size="9" fill="#777" text-anchor="middle">skip</text>"##,
                            x + bar_w / 2.0,
                            TOP + plot_h - 3.0
                        );
                    }
                    None => {}
                }
            }
            let _ = writeln!(
                s,
                r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">{}</text>"#,
                LEFT + group_w * (g as f64 + 0.5),
                TOP + plot_h + 18.0,
                xml(&row.param)
            );
        }
        let _ = writeln!(
            s,
            r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">{}</text>"#,
            LEFT + plot_w / 2.0,
            H - 16.0,
            xml(self.param_label)
        );
        // Legend.
        for (i, &k) in kinds.iter().enumerate() {
            let ly = TOP + 20.0 * i as f64;
            let _ = writeln!(
                s,
                r#"<rect x="{:.1}" y="{ly:.1}" width="14" height="14" fill="{}"/><text x="{:.1}" y="{:.1}">{}</text>"#,
                W - RIGHT + 16.0,
                color(k),
                W - RIGHT + 36.0,
                ly + 11.0,
                k.name()
            );
        }
        s.push_str("</svg>\n");
        s
    }
}

fn color(kind: Kind) -> &'static str {
    match kind {
        Kind::Ours => "#d62728",
        Kind::OursPow2 => "#9467bd",
        Kind::OursExact => "#e377c2",
        Kind::Talc => "#1f77b4",
        Kind::Bsa => "#ff7f0e",
        Kind::Lla => "#8c564b",
        Kind::Rlsf => "#2ca02c",
        Kind::System => "#7f7f7f",
    }
}

/// A grid step of 1, 2, 2.5 or 5 times a power of ten that cuts `0..=max` into at most 6 steps.
fn nice_step(max: f64) -> f64 {
    let p = 10f64.powf((max / 6.0).log10().floor());
    [1.0, 2.0, 2.5, 5.0, 10.0].into_iter().map(|m| m * p).find(|&c| max / c <= 6.0).unwrap_or(10.0 * p)
}

/// An axis label: as few decimals as the value needs (at most 3).
fn fmt_tick(v: f64) -> String {
    let text = format!("{v:.3}");
    let text = text.trim_end_matches('0').trim_end_matches('.');
    if text.is_empty() { "0".to_owned() } else { text.to_owned() }
}

/// Three significant digits or so, without an exponent.
fn fmt_value(v: f64) -> String {
    let a = v.abs();
    if a >= 100.0 {
        format!("{v:.0}")
    } else if a >= 10.0 {
        format!("{v:.1}")
    } else if a >= 1.0 {
        format!("{v:.2}")
    } else {
        format!("{v:.3}")
    }
}

fn xml(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

fn csv_field(text: &str) -> String {
    if text.contains([',', '"', '\n']) {
        format!("\"{}\"", text.replace('"', "\"\""))
    } else {
        text.to_owned()
    }
}

/// Everything the run found.
#[derive(Debug)]
pub(crate) struct Report {
    mode: &'static str,
    header: Vec<String>,
    tables: Vec<Table>,
    /// Problems seen, with the allocator and whether they are fatal (a sanity failure).
    problems: Vec<(Kind, String, bool)>,
}

impl Report {
    pub(crate) fn new(mode: &'static str, command: String, arena: Arena, clock: &Clock) -> Report {
        let mut header = vec![
            format!("Date: {}", utc_now()),
            format!("Command: `{command}`"),
            format!("Mode: {mode}"),
            format!("Source: {}", git_describe()),
            format!("Toolchain: {}", tool_version("rustc")),
            format!(
                "Machine: {} ({} hardware threads)",
                cpu_model(),
                std::thread::available_parallelism().map_or(0, |n| n.get())
            ),
            format!(
                "Arena: {} MiB at {:p}, aligned to exactly 4 KiB, touched once; every trial builds a fresh \
                 allocator over it. Trials are interleaved across the allocators (a seeded shuffle per trial), \
                 figures are medians over trials unless a note says otherwise.",
                arena.size >> 20,
                arena.base
            ),
            format!("Per-operation clock: {}.", clock.describe()),
        ];
        for k in Kind::ALL {
            header.push(format!("{}: {}", k.name(), k.describe()));
        }
        Report { mode, header, tables: Vec::new(), problems: Vec::new() }
    }

    pub(crate) fn push(&mut self, table: Table) {
        self.tables.push(table);
    }

    pub(crate) fn problem(&mut self, kind: Kind, what: String, fatal: bool) {
        eprintln!("compare: problem ({}): {what}", kind.name());
        self.problems.push((kind, what, fatal));
    }

    pub(crate) fn has_fatal(&self) -> bool {
        self.problems.iter().any(|(_, _, fatal)| *fatal)
    }

    pub(crate) fn finish(&mut self, took: Duration) {
        self.header.push(format!("Wall time of the run: {:.1} s", took.as_secs_f64()));
    }

    pub(crate) fn markdown(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "# alloc_buddy_simple vs. peers: benchmark results ({} mode)\n", self.mode);
        for line in &self.header {
            let _ = writeln!(out, "- {line}");
        }
        out.push('\n');
        for table in &self.tables {
            table.markdown(&mut out);
        }
        out.push_str(&self.problems_markdown());
        out
    }

    /// The "Problems seen" section.
    pub(crate) fn problems_markdown(&self) -> String {
        let mut out = String::from("## Problems seen\n\n");
        if self.problems.is_empty() {
            out.push_str(
                "None: every allocator passed the fill-and-verify pass, and no operation returned null.\n",
            );
        } else {
            for (kind, what, fatal) in &self.problems {
                let _ = writeln!(
                    out,
                    "- {}{}: {what}",
                    kind.name(),
                    if *fatal { " (SANITY FAILURE)" } else { "" }
                );
            }
        }
        out
    }

    /// Writes `results.md`, `results.csv` and one SVG per table to `dir`; returns the names.
    pub(crate) fn write(&self, dir: &Path, markdown: &str) -> std::io::Result<Vec<String>> {
        std::fs::create_dir_all(dir)?;
        let mut files = vec![("results.md".to_owned(), markdown.to_owned())];
        let mut csv =
            String::from("workload,param,allocator,value,unit,ratio_to_talc,trials,min,max,status\n");
        for table in &self.tables {
            table.csv(&mut csv);
            files.push((format!("{}.svg", table.id), table.svg()));
        }
        files.push(("results.csv".to_owned(), csv));
        for (name, text) in &files {
            let tmp = dir.join(format!("{name}.tmp"));
            std::fs::write(&tmp, text)?;
            std::fs::rename(&tmp, dir.join(name))?;
        }
        Ok(files.into_iter().map(|(name, _)| name).collect())
    }
}

/// The current UTC time as `YYYY-MM-DD HH:MM UTC`.
fn utc_now() -> String {
    let secs = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let (days, rem) = ((secs / 86_400) as i64, secs % 86_400);
    // Days since 1970-01-01 to a civil date (Howard Hinnant's `civil_from_days`).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02} {:02}:{:02} UTC", rem / 3600, rem / 60 % 60)
}

fn run(cmd: &str, args: &[&str]) -> Option<String> {
    let out = std::process::Command::new(cmd).args(args).output().ok()?;
    out.status.success().then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

fn tool_version(tool: &str) -> String {
    run(tool, &["-V"]).unwrap_or_else(|| "unknown".to_owned())
}

fn git_describe() -> String {
    let dir = env!("CARGO_MANIFEST_DIR");
    let Some(rev) = run("git", &["-C", dir, "rev-parse", "--short", "HEAD"]) else {
        return "unknown (not a git checkout)".to_owned();
    };
    let dirty = run("git", &["-C", dir, "status", "--porcelain", "--", "src"]).is_some_and(|s| !s.is_empty());
    format!("commit {rev}{}", if dirty { ", with uncommitted changes in src/" } else { "" })
}

fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|info| {
            info.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|m| m.trim().to_owned())
        })
        .unwrap_or_else(|| std::env::consts::ARCH.to_owned())
}
