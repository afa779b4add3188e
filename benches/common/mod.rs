//! Shared by the criterion benches: data, directories, and the interleaved
//! "engine vs baseline" pairs whose ratio each bench prints.
//!
//! Criterion measures each benchmark on its own, one after another; on a
//! noisy machine (and a disk whose speed swings ±40% between runs) only
//! ratios of measurements taken side by side mean anything. So every engine
//! iteration here is paired with a run of its baseline right before or
//! after it (the order alternates), and the printed ratio is the median of
//! the per-pair ratios, with their spread. Criterion's own figures are the
//! engine's time per iteration.
//!
//! Lines are also appended to `target/bench-ratios.tsv` (BENCHMARKS.md is
//! made from them).
#![allow(dead_code)]

use std::cell::RefCell;
use std::fs::OpenOptions;
use std::io::Write;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use criterion::measurement::WallTime;
use criterion::BenchmarkGroup;

pub const MIB: u64 = 1 << 20;

/// Reads a number from the environment, with a default.
pub fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// True when the environment variable is set to something other than "0".
pub fn env_flag(name: &str) -> bool {
    std::env::var(name).is_ok_and(|v| !v.is_empty() && v != "0")
}

/// Where bench data goes: `$PARTSTORE_BENCH_DIR`, else `target/benchdata`
/// (on the disk, unlike a tmpfs `/tmp`, so fsyncs cost what they cost).
pub fn bench_dir() -> PathBuf {
    let dir = match std::env::var_os("PARTSTORE_BENCH_DIR") {
        Some(d) => PathBuf::from(d),
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/benchdata"),
    };
    std::fs::create_dir_all(&dir).expect("creating the bench data directory");
    dir
}

/// A fresh temporary directory under [`bench_dir`].
pub fn tempdir(prefix: &str) -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix(prefix)
        .tempdir_in(bench_dir())
        .expect("creating a temporary directory")
}

/// `len` pseudo-random bytes (xorshift64*), different per seed.
pub fn pseudo_random(len: usize, seed: u64) -> Vec<u8> {
    let mut buf = vec![0u8; len];
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    for w in buf.chunks_mut(8) {
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        let v = x.wrapping_mul(0x2545_F491_4F6C_DD1D).to_le_bytes();
        w.copy_from_slice(&v[..w.len()]);
    }
    buf
}

pub fn median(v: &[f64]) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(|a, b| a.total_cmp(b));
    if s.is_empty() {
        return f64::NAN;
    }
    let n = s.len();
    if !n.is_multiple_of(2) {
        s[n / 2]
    } else {
        (s[n / 2 - 1] + s[n / 2]) / 2.0
    }
}

fn min_max(v: &[f64]) -> (f64, f64) {
    v.iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), x| {
            (lo.min(*x), hi.max(*x))
        })
}

/// Throughput in GB/s (10^9 bytes per second) of `bytes` in `secs`.
pub fn gbps(bytes: u64, secs: f64) -> f64 {
    bytes as f64 / secs / 1e9
}

/// One interleaved measurement: the engine's time and its baseline's
/// components (the baseline is their sum; with two or more components, the
/// slowest one alone is the "perfect overlap" bound, reported beside it).
#[derive(Debug, Clone)]
pub struct PairSample {
    pub engine: f64,
    pub baseline: Vec<f64>,
}

/// Collects [`PairSample`]s for one benchmark and reports their ratio.
pub struct Pairs {
    pub bench: String,
    pub label: String,
    /// Bytes processed per iteration (0: report times, not throughput).
    pub bytes: u64,
    /// Name of the baseline.
    pub baseline: String,
    pub samples: Vec<PairSample>,
}

impl Pairs {
    pub fn new(bench: &str, label: &str, bytes: u64, baseline: &str) -> Pairs {
        Pairs {
            bench: bench.to_string(),
            label: label.to_string(),
            bytes,
            baseline: baseline.to_string(),
            samples: Vec::new(),
        }
    }

    /// Engine-over-baseline speed ratios (baseline time / engine time), one
    /// per pair; > 1 means the engine was faster.
    pub fn ratios(&self) -> Vec<f64> {
        self.samples
            .iter()
            .map(|s| s.baseline.iter().sum::<f64>() / s.engine)
            .collect()
    }

    /// Prints the medians and the ratio (with its min..max over the pairs)
    /// and appends them to `target/bench-ratios.tsv`.
    pub fn report(&self) {
        if self.samples.is_empty() {
            return;
        }
        let eng: Vec<f64> = self.samples.iter().map(|s| s.engine).collect();
        let base: Vec<f64> = self
            .samples
            .iter()
            .map(|s| s.baseline.iter().sum())
            .collect();
        let ratios = self.ratios();
        let (lo, hi) = min_max(&ratios);
        let (e, b, r) = (median(&eng), median(&base), median(&ratios));
        let (emin, emax) = min_max(&eng);
        let overlap: Vec<f64> = self
            .samples
            .iter()
            .filter(|s| s.baseline.len() > 1)
            .map(|s| s.baseline.iter().cloned().fold(0.0, f64::max) / s.engine)
            .collect();
        let rate = |secs: f64| {
            if self.bytes > 0 {
                format!("{:.3} GB/s", gbps(self.bytes, secs))
            } else {
                format!("{:.3} ms", secs * 1e3)
            }
        };
        let mut line = format!(
            "RATIO {}/{}: engine {} (median; {}..{}), {} {}; ratio {:.3} (min {:.3}, max {:.3}, {} interleaved pairs)",
            self.bench,
            self.label,
            rate(e),
            rate(emax),
            rate(emin),
            self.baseline,
            rate(b),
            r,
            lo,
            hi,
            ratios.len()
        );
        if !overlap.is_empty() {
            line.push_str(&format!(
                "; vs perfect overlap (slowest component alone) {:.3}",
                median(&overlap)
            ));
        }
        println!("{line}");
        let tsv = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/bench-ratios.tsv");
        if let Ok(mut f) = OpenOptions::new().create(true).append(true).open(tsv) {
            let _ = writeln!(
                f,
                "{}\t{}\t{}\t{}\t{:.6}\t{:.6}\t{:.6}\t{:.4}\t{:.4}\t{:.4}\t{}\t{}\t{}",
                unix_time(),
                self.bench,
                self.label,
                self.bytes,
                e,
                emin,
                emax,
                r,
                lo,
                hi,
                ratios.len(),
                self.baseline,
                if overlap.is_empty() {
                    String::new()
                } else {
                    format!("{:.4}", median(&overlap))
                }
            );
        }
    }
}

fn unix_time() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Runs `f` and returns how long it took.
pub fn time<T>(f: impl FnOnce() -> T) -> (T, Duration) {
    let t = Instant::now();
    let v = f();
    (v, t.elapsed())
}

/// Registers a criterion benchmark `id` in `group` whose every iteration
/// runs `setup` (untimed), then the engine step and the baseline in
/// alternating order. Criterion records the engine's time; the pairs go to
/// `pairs`. `engine` returns its own measured time (so it can leave
/// teardown out); `baseline` returns the times of its components.
pub fn bench_pair<S>(
    group: &mut BenchmarkGroup<'_, WallTime>,
    id: &str,
    pairs: &RefCell<Pairs>,
    mut setup: impl FnMut() -> S,
    mut engine: impl FnMut(S) -> Duration,
    mut baseline: impl FnMut() -> Vec<Duration>,
) {
    let mut n = 0u64;
    group.bench_function(id, |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let s = setup();
                let (e, base) = if n.is_multiple_of(2) {
                    let e = engine(s);
                    (e, baseline())
                } else {
                    let base = baseline();
                    (engine(s), base)
                };
                n += 1;
                total += e;
                pairs.borrow_mut().samples.push(PairSample {
                    engine: e.as_secs_f64(),
                    baseline: base.iter().map(Duration::as_secs_f64).collect(),
                });
            }
            total
        })
    });
}

/// Describes the machine state, printed at the start of each bench.
pub fn print_machine() {
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with("model name"))
        .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_string())
        .unwrap_or_default();
    println!(
        "machine: {} cpus ({cpu}); load average {}; bench data in {}",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        load.split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" "),
        bench_dir().display()
    );
}
