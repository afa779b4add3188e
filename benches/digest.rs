//! The digest pipeline: the engine's one-pass hasher (CRC32C per 1 MiB
//! block + the requested digest, fed 1 MiB at a time as ingest feeds it)
//! against each crate's own one-shot throughput over the same bytes, and
//! the CRC32C implementation choice (`crc32c` vs `crc-fast`): one shot, per
//! 1 MiB block (the read-verify path) and combine.
//!
//! ```text
//! cargo bench --bench digest
//! ```
//!
//! For a requested digest the engine must also compute its block CRC32Cs,
//! so two ratios are printed: against the crate's digest alone (the
//! target), and against the crate's digest plus a one-shot CRC32C of the
//! same bytes (the pipeline's own overhead).

mod common;

use std::cell::RefCell;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion, SamplingMode, Throughput};
use partstore::DigestAlgorithm;
use sha2::Digest as _;

use common::{bench_pair, env_u64, PairSample, Pairs, MIB};

use partstore::__bench::{combine_blocks, crc32c_combine, StreamHasher};

fn one_shot(alg: Option<DigestAlgorithm>, data: &[u8]) {
    match alg {
        None | Some(DigestAlgorithm::Crc32c) => {
            std::hint::black_box(crc32c::crc32c(data));
        }
        Some(DigestAlgorithm::Md5) => {
            std::hint::black_box(md5::Md5::digest(data));
        }
        Some(DigestAlgorithm::Sha1) => {
            std::hint::black_box(sha1::Sha1::digest(data));
        }
        Some(DigestAlgorithm::Sha256) => {
            std::hint::black_box(sha2::Sha256::digest(data));
        }
    }
}

fn timed(f: impl FnOnce()) -> Duration {
    let t = Instant::now();
    f();
    t.elapsed()
}

fn group<'a>(
    c: &'a mut Criterion,
    name: &str,
    bytes: u64,
) -> criterion::BenchmarkGroup<'a, criterion::measurement::WallTime> {
    let mut g = c.benchmark_group(name);
    g.sample_size(20)
        .sampling_mode(SamplingMode::Flat)
        .warm_up_time(Duration::from_millis(200))
        .measurement_time(Duration::from_secs(2))
        .throughput(Throughput::Bytes(bytes));
    g
}

fn benches(c: &mut Criterion) {
    common::print_machine();
    let len = (env_u64("PARTSTORE_BENCH_DIGEST_MIB", 64) * MIB) as usize;
    let data = common::pseudo_random(len, 7);
    let mib = MIB as usize;

    // ----- the engine hasher vs each crate -------------------------------
    let algs: [(Option<DigestAlgorithm>, &str); 4] = [
        (None, "crc32c"),
        (Some(DigestAlgorithm::Md5), "md5"),
        (Some(DigestAlgorithm::Sha1), "sha1"),
        (Some(DigestAlgorithm::Sha256), "sha256"),
    ];
    for (alg, name) in algs {
        let pairs = RefCell::new(Pairs::new("digest", name, len as u64, ""));
        let mut g = group(c, "digest", len as u64);
        bench_pair(
            &mut g,
            &format!("engine_hasher/{name}"),
            &pairs,
            || (),
            |_| {
                timed(|| {
                    let mut h = StreamHasher::new(alg);
                    for chunk in data.chunks(mib) {
                        h.update(chunk);
                    }
                    std::hint::black_box(h.finish());
                })
            },
            || {
                let mut parts = vec![timed(|| one_shot(alg, &data))];
                if alg.is_some() {
                    parts.push(timed(|| one_shot(None, &data)));
                }
                parts
            },
        );
        g.finish();
        let all = pairs.into_inner();
        let mut alone = Pairs::new(
            "digest",
            &format!("engine_hasher_vs_crate/{name}"),
            len as u64,
            &format!("crate one-shot {name}"),
        );
        alone.samples = all
            .samples
            .iter()
            .map(|s| PairSample {
                engine: s.engine,
                baseline: vec![s.baseline[0]],
            })
            .collect();
        alone.report();
        if alg.is_some() {
            let mut with_crc = Pairs::new(
                "digest",
                &format!("engine_hasher_vs_crate_plus_crc32c/{name}"),
                len as u64,
                &format!("crate one-shot {name} + crc32c one-shot"),
            );
            with_crc.samples = all
                .samples
                .iter()
                .map(|s| PairSample {
                    engine: s.engine,
                    baseline: vec![s.baseline.iter().sum()],
                })
                .collect();
            with_crc.report();
        }
    }

    // ----- CRC32C: crc32c vs crc-fast ------------------------------------
    assert_eq!(
        crc32c::crc32c(&data),
        crc_fast::crc32_iscsi(&data),
        "crc-fast's CRC-32/ISCSI is CRC32C"
    );
    let cases: [(&str, usize); 2] = [("one_shot", len), ("per_1MiB_block", mib)];
    for (name, block) in cases {
        let pairs = RefCell::new(Pairs::new(
            "digest",
            &format!("crc_fast_vs_crc32c/{name}"),
            len as u64,
            "crc32c 0.6",
        ));
        let mut g = group(c, "crc32c_impl", len as u64);
        bench_pair(
            &mut g,
            &format!("crc_fast/{name}"),
            &pairs,
            || (),
            |_| {
                timed(|| {
                    for b in data.chunks(block) {
                        std::hint::black_box(crc_fast::crc32_iscsi(b));
                    }
                })
            },
            || {
                vec![timed(|| {
                    for b in data.chunks(block) {
                        std::hint::black_box(crc32c::crc32c(b));
                    }
                })]
            },
        );
        g.finish();
        pairs.borrow().report();
    }

    // ----- combine: a whole object's CRC from 1 MiB block CRCs -----------
    // 96 blocks: one 96 MiB part; every block CRC folded in turn.
    let blocks: Vec<u32> = data.chunks(mib).take(96).map(crc32c::crc32c).collect();
    let blen = (blocks.len() * mib) as u64;
    let want = crc32c::crc32c(&data[..blen as usize]);
    assert_eq!(combine_blocks(&blocks, blen), want);
    let mut g = c.benchmark_group("crc32c_combine");
    g.sample_size(20)
        .warm_up_time(Duration::from_millis(200))
        .measurement_time(Duration::from_secs(1));
    let fold = |f: &dyn Fn(u32, u32, u64) -> u32| {
        blocks
            .iter()
            .skip(1)
            .fold(blocks[0], |acc, b| f(acc, *b, MIB))
    };
    assert_eq!(fold(&crc32c_combine), want);
    assert_eq!(
        fold(&|a, b, n| crc_fast::checksum_combine(
            crc_fast::CrcAlgorithm::Crc32Iscsi,
            a.into(),
            b.into(),
            n
        ) as u32),
        want
    );
    g.bench_function("engine_combine_blocks/96", |b| {
        b.iter(|| combine_blocks(std::hint::black_box(&blocks), blen))
    });
    g.bench_function("engine_crc32c_combine/96", |b| {
        b.iter(|| fold(&crc32c_combine))
    });
    g.bench_function("crc32c_crate_combine/96", |b| {
        b.iter(|| fold(&|a, b, n| crc32c::crc32c_combine(a, b, n as usize)))
    });
    g.bench_function("crc_fast_combine/96", |b| {
        b.iter(|| {
            fold(&|a, b, n| {
                crc_fast::checksum_combine(
                    crc_fast::CrcAlgorithm::Crc32Iscsi,
                    a.into(),
                    b.into(),
                    n,
                ) as u32
            })
        })
    });
    g.finish();
}

criterion_group!(digest, benches);
criterion_main!(digest);
