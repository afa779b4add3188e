//! Part ingestion (multipart upload + complete) against its physical
//! baselines, measured in the same run with interleaved repetitions.
//!
//! ```text
//! cargo bench --bench ingest                          # default matrix, 1 GiB per sample
//! PARTSTORE_BENCH_MIB=256 cargo bench --bench ingest  # quicker
//! PARTSTORE_BENCH_SWEEP=1 cargo bench --bench ingest  # every part size x digest (the plot)
//! ```
//!
//! Groups:
//! - `raw`: the disk baseline, plain `std::fs` append + fdatasync per part,
//!   and the same into a preallocated (`fallocate`) file.
//! - `ingest/<digest>/<part>MiB/<durability>`: the engine. Each iteration
//!   uploads `PARTSTORE_BENCH_MIB` (default 1024) MiB as parts into a fresh
//!   store and completes the upload; it is paired with its baseline:
//!   CRC32C only → raw append + fdatasync per part of the same bytes;
//!   SHA-256 / SHA-1 → the serial bound, hash (the crate, one shot per part)
//!   then raw append + fdatasync; MD5 → bare MD5 of the same bytes (the
//!   target), and also the slower of bare MD5 and raw append + fdatasync,
//!   each timed in the same pair: with a disk slower than MD5, that is the
//!   bound an overlapping engine can reach.
//! - `concurrency`: two threads ingesting different uploads vs one thread,
//!   same total bytes.
//!
//! The data, the engine's ingest and the raw baseline are the harness that
//! `partstore bench` runs too (`src/bin/partstore/harness.rs`, included
//! here with `#[path]`): generated part buffers whose digests the engine's
//! hasher computes before any timing.
//!
//! Data goes to `target/benchdata` (override with `PARTSTORE_BENCH_DIR`); keep
//! it off tmpfs, or the fsyncs are free.

mod common;
// The harness of `partstore bench`; the command uses parts of it that this
// bench does not (digests of local bytes, the interrupted error).
#[allow(dead_code)]
#[path = "../src/bin/partstore/harness.rs"]
mod harness;

use std::cell::RefCell;
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion, SamplingMode, Throughput};
use partstore::{DigestAlgorithm, Durability, LayerConfig, Options, Store, UploadId};
use sha2::Digest as _;

use common::{bench_pair, env_flag, env_u64, PairSample, Pairs, MIB};
use harness::{Ctl, Data};

const LAYER: &str = "bench";
const CT: &str = "application/octet-stream";

/// Never set: criterion runs are not interrupted through the harness.
static NEVER: AtomicBool = AtomicBool::new(false);

/// One part at a time, no progress.
fn serial() -> Ctl<'static> {
    Ctl {
        jobs: 1,
        progress: None,
        cancel: &NEVER,
    }
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Alg {
    /// No digest requested: the engine computes only its block CRC32Cs.
    Crc32c,
    Sha256,
    Sha1,
    Md5,
}

impl Alg {
    fn name(self) -> &'static str {
        match self {
            Alg::Crc32c => "crc32c",
            Alg::Sha256 => "sha256",
            Alg::Sha1 => "sha1",
            Alg::Md5 => "md5",
        }
    }

    /// The digest the engine is asked to check.
    fn requested(self) -> Option<DigestAlgorithm> {
        match self {
            Alg::Crc32c => None,
            Alg::Sha256 => Some(DigestAlgorithm::Sha256),
            Alg::Sha1 => Some(DigestAlgorithm::Sha1),
            Alg::Md5 => Some(DigestAlgorithm::Md5),
        }
    }

    /// The crate's one-shot hash of `data` (the baseline's hashing).
    fn bare(self, data: &[u8]) -> Vec<u8> {
        match self {
            Alg::Crc32c => crc32c::crc32c(data).to_be_bytes().to_vec(),
            Alg::Sha256 => sha2::Sha256::digest(data).to_vec(),
            Alg::Sha1 => sha1::Sha1::digest(data).to_vec(),
            Alg::Md5 => md5::Md5::digest(data).to_vec(),
        }
    }
}

fn fresh_store(durability: Durability) -> (tempfile::TempDir, Store) {
    let dir = common::tempdir("ingest-");
    let store = Store::open(
        dir.path().join("store"),
        Options::default().durability(durability),
    )
    .expect("open");
    store
        .create_layer(LAYER, LayerConfig::default())
        .expect("layer");
    (dir, store)
}

/// The harness's ingest of `data` into `up`, one part at a time.
fn upload_parts(store: &Store, up: &UploadId, data: &Data) {
    harness::upload_parts(store, LAYER, up, data, &serial()).expect("upload_part");
}

/// The harness's raw baseline (write + fdatasync per part, in order) into a
/// fresh file; with `prealloc`, a file `fallocate`d to the whole size first
/// (untimed).
fn raw_append(data: &Data, prealloc: bool) -> Duration {
    let dir = common::tempdir("raw-");
    let d = harness::raw_baseline(&dir.path().join("raw.bin"), data, true, prealloc, &serial())
        .expect("raw baseline");
    drop(dir);
    d
}

/// The crate's one-shot hash of every part.
fn bare_hash(alg: Alg, data: &Data) -> Duration {
    let t = Instant::now();
    for n in 1..=data.parts {
        std::hint::black_box(alg.bare(data.part(n)));
    }
    t.elapsed()
}

fn config(c: &mut Criterion) -> criterion::BenchmarkGroup<'_, criterion::measurement::WallTime> {
    let mut g = c.benchmark_group("ingest");
    g.sample_size(10)
        .sampling_mode(SamplingMode::Flat)
        .warm_up_time(Duration::from_millis(1))
        .measurement_time(Duration::from_millis(1));
    g
}

fn benches(c: &mut Criterion) {
    common::print_machine();
    let total = env_u64("PARTSTORE_BENCH_MIB", 1024) * MIB;
    let sweep = env_flag("PARTSTORE_BENCH_SWEEP");

    // ----- raw baselines --------------------------------------------------
    {
        let mut g = config(c);
        g.throughput(Throughput::Bytes(total));
        for part_mib in [8u64, 96] {
            let data = Data::new(total, part_mib * MIB, None, 0).expect("data");
            let pairs = RefCell::new(Pairs::new(
                "ingest",
                &format!("raw_prealloc_vs_append/{part_mib}MiB"),
                total,
                "raw append+fdatasync",
            ));
            bench_pair(
                &mut g,
                &format!("raw_prealloc_fdatasync/{part_mib}MiB"),
                &pairs,
                || (),
                |_| raw_append(&data, true),
                || vec![raw_append(&data, false)],
            );
            pairs.borrow().report();
        }
        g.finish();
    }

    // ----- the engine -----------------------------------------------------
    let mut matrix: Vec<(u64, Alg, Durability)> = Vec::new();
    if sweep {
        for alg in [Alg::Crc32c, Alg::Sha256, Alg::Sha1, Alg::Md5] {
            for part in [5u64, 8, 16, 32, 64, 96] {
                matrix.push((part, alg, Durability::Sync));
            }
        }
    } else {
        for part in [8u64, 96] {
            matrix.push((part, Alg::Crc32c, Durability::Sync));
            matrix.push((part, Alg::Sha256, Durability::Sync));
        }
        matrix.push((8, Alg::Sha1, Durability::Sync));
        matrix.push((8, Alg::Md5, Durability::Sync));
    }
    matrix.push((8, Alg::Crc32c, Durability::Batched));
    matrix.push((8, Alg::Crc32c, Durability::None));

    for (part_mib, alg, durability) in matrix {
        let data = Data::new(total, part_mib * MIB, alg.requested(), 0).expect("data");
        let dur = format!("{durability:?}").to_lowercase();
        let label = format!("{}/{part_mib}MiB/{dur}", alg.name());
        let baseline_name = match alg {
            Alg::Crc32c => "raw append+fdatasync",
            Alg::Sha256 | Alg::Sha1 => "serial bound (hash, then raw append+fdatasync)",
            Alg::Md5 => "bare MD5",
        };
        let pairs = RefCell::new(Pairs::new("ingest", &label, total, baseline_name));
        let mut g = config(c);
        g.throughput(Throughput::Bytes(total));
        bench_pair(
            &mut g,
            &label,
            &pairs,
            || {
                let (dir, store) = fresh_store(durability);
                let up = store.start_multipart(LAYER, "obj", CT).expect("start");
                (dir, store, up)
            },
            |(dir, store, up)| {
                let t = Instant::now();
                upload_parts(&store, &up, &data);
                store.complete_multipart(LAYER, &up).expect("complete");
                let d = t.elapsed();
                drop(store);
                drop(dir);
                d
            },
            || match alg {
                Alg::Crc32c => vec![raw_append(&data, false)],
                Alg::Sha256 | Alg::Sha1 => {
                    vec![bare_hash(alg, &data), raw_append(&data, false)]
                }
                Alg::Md5 => vec![bare_hash(alg, &data), raw_append(&data, false)],
            },
        );
        g.finish();
        if alg == Alg::Md5 {
            // The target (bare MD5 alone), then the slower component alone.
            let all = pairs.into_inner();
            let mut bare = Pairs::new("ingest", &label, total, baseline_name);
            let mut slowest = Pairs::new(
                "ingest",
                &format!("md5_vs_slowest/{part_mib}MiB/{dur}"),
                total,
                "slower of bare MD5 and raw append+fdatasync",
            );
            for s in &all.samples {
                bare.samples.push(PairSample {
                    engine: s.engine,
                    baseline: vec![s.baseline[0]],
                });
                slowest.samples.push(PairSample {
                    engine: s.engine,
                    baseline: vec![s.baseline.iter().copied().fold(0.0, f64::max)],
                });
            }
            bare.report();
            slowest.report();
        } else {
            pairs.borrow().report();
        }
    }

    // ----- concurrency: 2 threads, different uploads, vs 1 thread ---------
    {
        let part = 8 * MIB;
        let whole = Data::new(total, part, None, 0).expect("data");
        let half_a = Data::new(total / 2, part, None, 1).expect("data");
        let half_b = Data::new(total / 2, part, None, 2).expect("data");
        let pairs = RefCell::new(Pairs::new(
            "ingest",
            "concurrency/2threads_vs_1/8MiB/sync",
            total,
            "1 thread, same bytes",
        ));
        let mut g = config(c);
        g.throughput(Throughput::Bytes(total));
        bench_pair(
            &mut g,
            "concurrency/2threads/8MiB/sync",
            &pairs,
            || {
                let (dir, store) = fresh_store(Durability::Sync);
                let a = store.start_multipart(LAYER, "a", CT).expect("start");
                let b = store.start_multipart(LAYER, "b", CT).expect("start");
                (dir, store, a, b)
            },
            |(dir, store, a, b)| {
                let t = Instant::now();
                std::thread::scope(|s| {
                    let (store, half_b) = (&store, &half_b);
                    s.spawn(move || upload_parts(store, &b, half_b));
                    upload_parts(store, &a, &half_a);
                });
                let d = t.elapsed();
                drop(store);
                drop(dir);
                d
            },
            || {
                let (dir, store) = fresh_store(Durability::Sync);
                let up = store.start_multipart(LAYER, "a", CT).expect("start");
                let t = Instant::now();
                upload_parts(&store, &up, &whole);
                let d = t.elapsed();
                drop(store);
                drop(dir);
                vec![d]
            },
        );
        g.finish();
        pairs.borrow().report();
    }
}

criterion_group!(ingest, benches);
criterion_main!(ingest);
