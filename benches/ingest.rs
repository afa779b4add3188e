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
//!   then raw append + fdatasync; MD5 → bare MD5 of the same bytes.
//! - `concurrency`: two threads ingesting different uploads vs one thread,
//!   same total bytes.
//!
//! Data goes to `target/benchdata` (override with `PARTSTORE_BENCH_DIR`); keep
//! it off tmpfs, or the fsyncs are free.

mod common;

use std::cell::RefCell;
use std::fs::OpenOptions;
use std::io::Write;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion, SamplingMode, Throughput};
use partstore::{Digest, Durability, LayerConfig, Options, PartBody, Store, UploadId};
use sha2::Digest as _;

use common::{bench_pair, env_flag, env_u64, Pairs, Pool, MIB};

const LAYER: &str = "bench";
const CT: &str = "application/octet-stream";

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

    /// The crate's one-shot digest, as the `ALGORITHM:HEX` the engine checks.
    fn digest(self, data: &[u8]) -> Option<Digest> {
        let (name, out) = match self {
            Alg::Crc32c => return None,
            Alg::Sha256 => ("SHA256", sha2::Sha256::digest(data).to_vec()),
            Alg::Sha1 => ("SHA1", sha1::Sha1::digest(data).to_vec()),
            Alg::Md5 => ("MD5", md5::Md5::digest(data).to_vec()),
        };
        Some(
            format!("{name}:{}", hex::encode(out))
                .parse()
                .expect("digest"),
        )
    }
}

/// The parts of one sample: `total` bytes in parts of `part` bytes.
struct Plan {
    part_lens: Vec<usize>,
    total: u64,
}

impl Plan {
    fn new(total: u64, part: u64) -> Plan {
        let n = total.div_ceil(part);
        let part_lens = (0..n)
            .map(|i| part.min(total - i * part) as usize)
            .collect();
        Plan { part_lens, total }
    }
}

fn store_opts(durability: Durability) -> Options {
    Options::default().durability(durability)
}

fn fresh_store(durability: Durability) -> (tempfile::TempDir, Store) {
    let dir = common::tempdir("ingest-");
    let store = Store::open(dir.path().join("store"), store_opts(durability)).expect("open");
    store
        .create_layer(LAYER, LayerConfig::default())
        .expect("layer");
    (dir, store)
}

/// Uploads the plan's parts (parts `first..` of the pool) into `up`.
fn upload_parts(
    store: &Store,
    up: &UploadId,
    pool: &Pool,
    plan: &Plan,
    first: usize,
    digests: &[Option<Digest>],
) {
    for (i, len) in plan.part_lens.iter().enumerate() {
        let bytes = pool.part(first + i, *len);
        let mut body = PartBody::new(bytes, *len as u64);
        if let Some(d) = &digests[i] {
            body = body.digest(d.clone());
        }
        store
            .upload_part(LAYER, up, (i + 1) as u32, body)
            .expect("upload_part");
    }
}

/// Plain `std::fs` append + fdatasync after each part, into a fresh file;
/// with `prealloc`, into a file `fallocate`d to the whole size first
/// (untimed).
fn raw_append(pool: &Pool, plan: &Plan, prealloc: bool) -> Duration {
    let dir = common::tempdir("raw-");
    let path = dir.path().join("raw.bin");
    let mut f = OpenOptions::new()
        .create(true)
        .write(true)
        .truncate(true)
        .open(&path)
        .expect("raw file");
    if prealloc {
        rustix::fs::fallocate(&f, rustix::fs::FallocateFlags::empty(), 0, plan.total)
            .expect("fallocate");
        f.sync_all().expect("sync");
    }
    let t = Instant::now();
    for (i, len) in plan.part_lens.iter().enumerate() {
        f.write_all(pool.part(i, *len)).expect("write");
        f.sync_data().expect("fdatasync");
    }
    let d = t.elapsed();
    drop(f);
    drop(dir);
    d
}

/// The crate's one-shot digest of every part.
fn bare_hash(alg: Alg, pool: &Pool, plan: &Plan) -> Duration {
    let t = Instant::now();
    for (i, len) in plan.part_lens.iter().enumerate() {
        std::hint::black_box(alg.digest(pool.part(i, *len)));
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
    let pool = Pool::new(96 * MIB as usize);

    // ----- raw baselines --------------------------------------------------
    {
        let mut g = config(c);
        g.throughput(Throughput::Bytes(total));
        for part_mib in [8u64, 96] {
            let plan = Plan::new(total, part_mib * MIB);
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
                |_| raw_append(&pool, &plan, true),
                || vec![raw_append(&pool, &plan, false)],
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
        let plan = Plan::new(total, part_mib * MIB);
        let digests: Vec<Option<Digest>> = plan
            .part_lens
            .iter()
            .enumerate()
            .map(|(i, len)| alg.digest(pool.part(i, *len)))
            .collect();
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
                upload_parts(&store, &up, &pool, &plan, 0, &digests);
                store.complete_multipart(LAYER, &up).expect("complete");
                let d = t.elapsed();
                drop(store);
                drop(dir);
                d
            },
            || match alg {
                Alg::Crc32c => vec![raw_append(&pool, &plan, false)],
                Alg::Sha256 | Alg::Sha1 => {
                    vec![
                        bare_hash(alg, &pool, &plan),
                        raw_append(&pool, &plan, false),
                    ]
                }
                Alg::Md5 => vec![bare_hash(alg, &pool, &plan)],
            },
        );
        g.finish();
        pairs.borrow().report();
    }

    // ----- concurrency: 2 threads, different uploads, vs 1 thread ---------
    {
        let part = 8 * MIB;
        let whole = Plan::new(total, part);
        let half = Plan::new(total / 2, part);
        let none: Vec<Option<Digest>> = vec![None; whole.part_lens.len()];
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
                    let (store, pool, half, none) = (&store, &pool, &half, &none);
                    s.spawn(move || upload_parts(store, &b, pool, half, 1000, none));
                    upload_parts(store, &a, pool, half, 0, none);
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
                upload_parts(&store, &up, &pool, &whole, 0, &none);
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
