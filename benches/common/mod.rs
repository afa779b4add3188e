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

// ----- many writers at once (benches/concurrency.rs) ----------------------

/// Runs `ops` operations from `threads` threads started together: thread
/// `w` runs operations `w`, `w + threads`, `w + 2 * threads`, ... (so each
/// gets the same count, ±1), calling `op(w, i)` for each. Returns the time
/// from the start until the last thread is done.
pub fn run_threads(threads: usize, ops: u64, op: impl Fn(usize, u64) + Sync) -> Duration {
    let threads = threads.max(1);
    let go = std::sync::Barrier::new(threads + 1);
    std::thread::scope(|s| {
        let (go, op) = (&go, &op);
        let handles: Vec<_> = (0..threads)
            .map(|w| {
                s.spawn(move || {
                    go.wait();
                    let mut i = w as u64;
                    while i < ops {
                        op(w, i);
                        i += threads as u64;
                    }
                })
            })
            .collect();
        go.wait();
        let t = Instant::now();
        for h in handles {
            if let Err(panic) = h.join() {
                std::panic::resume_unwind(panic);
            }
        }
        t.elapsed()
    })
}

/// The raw baseline of a durable write: `threads` threads each `pwrite`
/// `buf` (`write_all_at`) at the next free offset of `file` (an atomic
/// counter from `base`, so the file grows unless it already reaches there)
/// and `fdatasync` it, `ops` times in all.
pub fn raw_write_sync(
    file: &std::fs::File,
    threads: usize,
    buf: &[u8],
    ops: u64,
    base: u64,
) -> Duration {
    use std::os::unix::fs::FileExt;
    let next = std::sync::atomic::AtomicU64::new(base);
    run_threads(threads, ops, |_, _| {
        let at = next.fetch_add(buf.len() as u64, std::sync::atomic::Ordering::Relaxed);
        file.write_all_at(buf, at).expect("raw write");
        file.sync_data().expect("raw fdatasync");
    })
}

/// A file of `len` bytes whose blocks are allocated and written (the bytes
/// of `fill`, repeated) and durable, so later writes into it change no
/// file-system metadata and an fdatasync flushes data only.
pub fn prewritten_file(path: &std::path::Path, len: u64, fill: &[u8]) -> std::fs::File {
    use std::os::unix::fs::FileExt;
    let f = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(path)
        .expect("creating the pre-written file");
    let mut at = 0;
    while at < len {
        let n = (len - at).min(fill.len() as u64) as usize;
        f.write_all_at(&fill[..n], at).expect("pre-writing");
        at += n as u64;
    }
    f.sync_all().expect("syncing the pre-written file");
    f
}

/// Runs `variants` once each, starting with number `round % len` and going
/// round (so over the rounds each variant runs first, second, ... equally
/// often); returns their times in the variants' order.
pub fn run_rotated(round: usize, variants: &mut [&mut dyn FnMut() -> Duration]) -> Vec<Duration> {
    let m = variants.len();
    let mut out = vec![Duration::ZERO; m];
    for k in 0..m {
        let j = (round + k) % m;
        out[j] = (variants[j])();
    }
    out
}

/// Several variants of the same work (`ops` operations, `bytes` bytes per
/// round) measured in the same rounds, interleaved: variant 0 is the
/// subject (the engine), every other one a baseline or a peer. Reports ops/s
/// and MB/s per variant (`OPS` lines) and, through [`Pairs`], the subject's
/// speed over each other variant's, per round (`RATIO` lines).
pub struct Variants {
    pub bench: String,
    pub label: String,
    pub ops: u64,
    pub bytes: u64,
    /// (slug for the RATIO label, description).
    pub names: Vec<(String, String)>,
    /// Per round, per variant: seconds.
    pub rounds: Vec<Vec<f64>>,
}

impl Variants {
    pub fn new(bench: &str, label: &str, ops: u64, bytes: u64, names: &[(&str, &str)]) -> Variants {
        Variants {
            bench: bench.to_string(),
            label: label.to_string(),
            ops,
            bytes,
            names: names
                .iter()
                .map(|(s, d)| (s.to_string(), d.to_string()))
                .collect(),
            rounds: Vec::new(),
        }
    }

    pub fn push(&mut self, times: &[Duration]) {
        assert_eq!(times.len(), self.names.len());
        self.rounds
            .push(times.iter().map(Duration::as_secs_f64).collect());
    }

    /// The subject's ratio over variant `j`, as [`Pairs`].
    pub fn pairs(&self, j: usize) -> Pairs {
        let mut p = Pairs::new(
            &self.bench,
            &format!("{}/vs_{}", self.label, self.names[j].0),
            self.bytes,
            &self.names[j].1,
        );
        for r in &self.rounds {
            p.samples.push(PairSample {
                engine: r[0],
                baseline: vec![r[j]],
            });
        }
        p
    }

    /// Prints one `OPS` line per variant (median and min..max over the
    /// rounds) and one `RATIO` line per baseline (also appended to
    /// `target/bench-ratios.tsv`).
    pub fn report(&self) {
        if self.rounds.is_empty() {
            return;
        }
        for (j, (slug, desc)) in self.names.iter().enumerate() {
            let secs: Vec<f64> = self.rounds.iter().map(|r| r[j]).collect();
            let (fast, slow) = min_max(&secs);
            let med = median(&secs);
            let ops = |s: f64| self.ops as f64 / s;
            let mbs = |s: f64| self.bytes as f64 / s / 1e6;
            println!(
                "OPS {}/{} {}: {:.0} ops/s ({:.0}..{:.0}), {:.1} MB/s ({:.1}..{:.1}), {} rounds; {}",
                self.bench,
                self.label,
                slug,
                ops(med),
                ops(slow),
                ops(fast),
                mbs(med),
                mbs(slow),
                mbs(fast),
                secs.len(),
                desc
            );
        }
        for j in 1..self.names.len() {
            self.pairs(j).report();
        }
    }
}

/// Registers a criterion benchmark `id` in `group` whose every iteration
/// is one round of `variants`: `round(k)` runs each variant once (see
/// [`run_rotated`]) and returns their times in order. Criterion records
/// variant 0's time.
pub fn bench_variants(
    group: &mut BenchmarkGroup<'_, WallTime>,
    id: &str,
    variants: &RefCell<Variants>,
    mut round: impl FnMut(usize) -> Vec<Duration>,
) {
    let mut n = 0usize;
    group.bench_function(id, |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let times = round(n);
                n += 1;
                total += times[0];
                variants.borrow_mut().push(&times);
            }
            total
        })
    });
}

/// [`raw_write_sync`] with the engine's group-commit protocol instead of
/// an fdatasync per thread: each write is appended at the tail under a
/// lock, then its thread waits until a durable watermark passes it; a
/// waiter that finds no fdatasync in flight issues one covering every write
/// appended so far, and wakes the others. So at most one fdatasync is in
/// flight, as in the engine (`Log::wait_durable`), with nothing else of
/// the engine's work: the protocol's own cost, measured.
pub fn raw_group_commit(file: &std::fs::File, threads: usize, buf: &[u8], ops: u64) -> Duration {
    use std::os::unix::fs::FileExt;
    use std::sync::{Condvar, Mutex};
    let tail = Mutex::new(0u64);
    // (durable up to, an fdatasync in flight)
    let durable = (Mutex::new((0u64, false)), Condvar::new());
    run_threads(threads, ops, |_, _| {
        let end = {
            let mut t = tail.lock().expect("tail");
            file.write_all_at(buf, *t).expect("raw write");
            *t += buf.len() as u64;
            *t
        };
        let (lock, cv) = &durable;
        let mut d = lock.lock().expect("durable");
        while d.0 < end {
            if d.1 {
                d = cv.wait(d).expect("durable");
                continue;
            }
            d.1 = true;
            drop(d);
            let upto = *tail.lock().expect("tail");
            file.sync_data().expect("raw fdatasync");
            d = lock.lock().expect("durable");
            d.0 = d.0.max(upto);
            d.1 = false;
            cv.notify_all();
        }
    })
}
