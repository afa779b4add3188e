//! Zero-copy operations against byte copies measured in the same run:
//! - `copy_part` of a 5, 32 and 96 MiB range (should be flat in the range
//!   size and well under a millisecond) next to a memcpy of the same range;
//! - `complete_multipart` of a 10,000-part upload (target: under 50 ms);
//! - `compact()` throughput (live bytes moved per second) next to a raw
//!   append + fdatasync of the same number of bytes.
//!
//! ```text
//! cargo bench --bench copy
//! ```
//!
//! `copy_part` and `complete_multipart` run with `Durability::None`, which
//! times the engine's work; under `Durability::Sync` each adds one fdatasync
//! of a small record, timed separately and printed beside them.

mod common;

use std::cell::RefCell;
use std::fs::OpenOptions;
use std::io::Write;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion, SamplingMode};
use partstore::{ByteRange, CopySource, Durability, LayerConfig, Options, PartBody, Store};

use common::{bench_pair, env_u64, median, Pairs, MIB};

const LAYER: &str = "bench";
const CT: &str = "application/octet-stream";

fn fresh(opts: Options) -> (tempfile::TempDir, Store) {
    let dir = common::tempdir("copy-");
    let store = Store::open(dir.path().join("store"), opts).expect("open");
    store
        .create_layer(LAYER, LayerConfig::default())
        .expect("layer");
    (dir, store)
}

fn range(len: u64) -> ByteRange {
    format!("bytes=0-{}", len - 1).parse().expect("range")
}

fn benches(c: &mut Criterion) {
    common::print_machine();

    // ----- copy_part vs memcpy of the range ------------------------------
    let src_len = 96 * MIB;
    let data = common::pseudo_random(src_len as usize, 11);
    let (_dir, store) = fresh(Options::default().durability(Durability::None));
    store
        .put_object(LAYER, "src", PartBody::new(&data[..], src_len))
        .expect("put");
    let up = store.start_multipart(LAYER, "dst", CT).expect("start");
    let blob = store.get(LAYER, "src").expect("get");
    let mut g = c.benchmark_group("copy_part");
    g.sample_size(30)
        .sampling_mode(SamplingMode::Flat)
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs(1));
    let mut medians = Vec::new();
    for mib in [5u64, 32, 96] {
        let len = mib * MIB;
        let dst = RefCell::new(vec![0u8; len as usize]);
        let pairs = RefCell::new(Pairs::new(
            "copy",
            &format!("copy_part/{mib}MiB"),
            0,
            "memcpy of the range",
        ));
        bench_pair(
            &mut g,
            &format!("copy_part/{mib}MiB"),
            &pairs,
            || (),
            |_| {
                let t = Instant::now();
                store
                    .copy_part(LAYER, &up, 1, CopySource::new("src", range(len)))
                    .expect("copy_part");
                t.elapsed()
            },
            || {
                let mut d = dst.borrow_mut();
                let t = Instant::now();
                let mut at = 0;
                for s in blob.slices(0, len).expect("slices") {
                    d[at..at + s.len()].copy_from_slice(&s);
                    at += s.len();
                }
                std::hint::black_box(&mut *d);
                vec![t.elapsed()]
            },
        );
        let p = pairs.borrow();
        p.report();
        let eng: Vec<f64> = p.samples.iter().map(|s| s.engine).collect();
        medians.push((mib, median(&eng)));
    }
    g.finish();
    if let (Some(first), Some(last)) = (medians.first(), medians.last()) {
        println!(
            "COPY copy_part medians: {}; 96 MiB / 5 MiB = {:.2} (target <= 2), 96 MiB {:.3} ms (target < 1 ms)",
            medians
                .iter()
                .map(|(m, t)| format!("{m} MiB {:.3} ms", t * 1e3))
                .collect::<Vec<_>>()
                .join(", "),
            last.1 / first.1,
            last.1 * 1e3
        );
    }
    // What Durability::Sync adds: one fdatasync of the segment after a
    // small record.
    {
        let mut syncs = Vec::new();
        for _ in 0..20 {
            store
                .copy_part(LAYER, &up, 1, CopySource::new("src", range(5 * MIB)))
                .expect("copy_part");
            let t = Instant::now();
            store.sync().expect("sync");
            syncs.push(t.elapsed().as_secs_f64());
        }
        println!(
            "COPY one record fdatasync (what Durability::Sync adds per copy_part or complete): median {:.3} ms",
            median(&syncs) * 1e3
        );
    }

    // ----- complete_multipart of 10,000 parts ----------------------------
    let parts = env_u64("PARTSTORE_BENCH_COMPLETE_PARTS", 10_000) as u32;
    let mut g = c.benchmark_group("complete_multipart");
    g.sample_size(10)
        .sampling_mode(SamplingMode::Flat)
        .warm_up_time(Duration::from_millis(1))
        .measurement_time(Duration::from_millis(1));
    let mut times = Vec::new();
    let mut u = 0u64;
    g.bench_function(format!("complete/{parts}_parts"), |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                u += 1;
                let up = store
                    .start_multipart(LAYER, &format!("big/{u}"), CT)
                    .expect("start");
                for n in 1..=parts {
                    store
                        .copy_part(LAYER, &up, n, CopySource::new("src", range(5 * MIB)))
                        .expect("copy_part");
                }
                let t = Instant::now();
                let obj = store.complete_multipart(LAYER, &up).expect("complete");
                let d = t.elapsed();
                assert_eq!(obj.part_count, parts);
                times.push(d.as_secs_f64());
                total += d;
            }
            total
        })
    });
    g.finish();
    println!(
        "COPY complete_multipart of {parts} parts: median {:.2} ms (min {:.2}, max {:.2}; target < 50 ms)",
        median(&times) * 1e3,
        times.iter().cloned().fold(f64::INFINITY, f64::min) * 1e3,
        times.iter().cloned().fold(0.0, f64::max) * 1e3
    );
    drop(blob);
    drop(store);

    // ----- compact() vs raw append of the moved bytes ---------------------
    // Each iteration: 64 MiB segments holding 8 MiB objects; two of every
    // three deleted, so every segment is mostly garbage and its live third
    // moves.
    let objects = env_u64("PARTSTORE_BENCH_COMPACT_OBJECTS", 24) as usize;
    let obj = common::pseudo_random(8 * MIB as usize, 5);
    let moved = RefCell::new(0u64);
    let pairs = RefCell::new(Pairs::new(
        "copy",
        "compact",
        0,
        "raw append+fdatasync (8 MiB writes) of the moved bytes",
    ));
    let mut g = c.benchmark_group("compact");
    g.sample_size(10)
        .sampling_mode(SamplingMode::Flat)
        .warm_up_time(Duration::from_millis(1))
        .measurement_time(Duration::from_millis(1));
    bench_pair(
        &mut g,
        "compact",
        &pairs,
        || {
            let (dir, store) = fresh(
                Options::default()
                    .durability(Durability::None)
                    .segment_size(64 * MIB),
            );
            for i in 0..objects {
                store
                    .put_object(
                        LAYER,
                        &format!("o/{i}"),
                        PartBody::new(&obj[..], obj.len() as u64),
                    )
                    .expect("put");
            }
            for i in 0..objects {
                if !i.is_multiple_of(3) {
                    store.delete(LAYER, &format!("o/{i}")).expect("delete");
                }
            }
            store.sync().expect("sync");
            (dir, store)
        },
        |(dir, store)| {
            let t = Instant::now();
            let r = store.compact().expect("compact");
            let d = t.elapsed();
            *moved.borrow_mut() = r.bytes_moved;
            drop(store);
            drop(dir);
            d
        },
        || {
            let n = (*moved.borrow()).max(8 * MIB);
            let dir = common::tempdir("raw-");
            let mut f = OpenOptions::new()
                .create(true)
                .write(true)
                .truncate(true)
                .open(dir.path().join("raw.bin"))
                .expect("raw");
            let t = Instant::now();
            let mut done = 0;
            while done < n {
                let k = (n - done).min(obj.len() as u64);
                f.write_all(&obj[..k as usize]).expect("write");
                done += k;
            }
            f.sync_data().expect("fdatasync");
            vec![t.elapsed()]
        },
    );
    g.finish();
    let mut p = pairs.into_inner();
    p.bytes = *moved.borrow();
    p.report();
}

criterion_group!(copy, benches);
criterion_main!(copy);
