//! `Store::open` (recovery: restore the last checkpoint, replay the records
//! after it) against the number of parts the store holds: 10k and 100k by default, 1M with
//! `PARTSTORE_BENCH_OPEN_1M=1`.
//!
//! ```text
//! cargo bench --bench open
//! ```
//!
//! The stores are built cheaply, once, and kept under
//! `target/benchdata/open-<N>` for later runs: one 5 MiB source object, then
//! uploads of 10,000 parts each made with `copy_part` (no data copied, one
//! record per part). Each iteration opens the store and drops it.

mod common;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion, SamplingMode};
use partstore::{CopySource, Durability, LayerConfig, Options, PartBody, Store};

use common::{env_flag, median, MIB};

const LAYER: &str = "bench";
const PARTS_PER_UPLOAD: u64 = 10_000;

/// A store holding `parts` parts, built once and reused.
fn build(parts: u64) -> PathBuf {
    let dir = common::bench_dir().join(format!("open-{parts}"));
    let marker = dir.join("BUILT");
    if marker.exists() && Store::open(&dir, Options::default()).is_ok() {
        return dir;
    }
    let _ = std::fs::remove_dir_all(&dir);
    let t = Instant::now();
    let store = Store::open(&dir, Options::default().durability(Durability::None)).expect("open");
    store
        .create_layer(LAYER, LayerConfig::default())
        .expect("layer");
    let src = common::pseudo_random(5 * MIB as usize, 1);
    store
        .put_object(LAYER, "src", PartBody::new(&src[..], src.len() as u64))
        .expect("put");
    let range: partstore::ByteRange = format!("bytes=0-{}", src.len() - 1).parse().expect("range");
    let mut left = parts;
    let mut u = 0;
    while left > 0 {
        let n = left.min(PARTS_PER_UPLOAD);
        let up = store
            .start_multipart(LAYER, &format!("obj/{u}"), "application/octet-stream")
            .expect("start");
        for p in 1..=n {
            store
                .copy_part(LAYER, &up, p as u32, CopySource::new("src", range))
                .expect("copy_part");
        }
        left -= n;
        u += 1;
    }
    store.sync().expect("sync");
    drop(store);
    std::fs::write(&marker, b"").expect("marker");
    println!(
        "built a store of {parts} parts in {:.1} s",
        t.elapsed().as_secs_f64()
    );
    dir
}

fn benches(c: &mut Criterion) {
    common::print_machine();
    let mut sizes = vec![10_000u64, 100_000];
    if env_flag("PARTSTORE_BENCH_OPEN_1M") {
        sizes.push(1_000_000);
    }
    let mut g = c.benchmark_group("open");
    g.sample_size(10)
        .sampling_mode(SamplingMode::Flat)
        .warm_up_time(Duration::from_millis(1))
        .measurement_time(Duration::from_millis(1));
    let mut results = Vec::new();
    for n in sizes {
        let dir = build(n);
        let bytes: u64 = std::fs::read_dir(&dir)
            .expect("list")
            .filter_map(|e| e.ok())
            .filter_map(|e| {
                let path = e.path();
                partstore::backend::Backend::allocated_bytes(&partstore::backend::StdBackend, &path)
                    .ok()
            })
            .sum();
        let mut times = Vec::new();
        g.bench_function(format!("open/{n}_parts"), |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let t = Instant::now();
                    let store = Store::open(&dir, Options::default()).expect("open");
                    let d = t.elapsed();
                    std::hint::black_box(store.stats());
                    drop(store);
                    times.push(d.as_secs_f64());
                    total += d;
                }
                total
            })
        });
        let m = median(&times);
        println!(
            "OPEN {n} parts: median {:.1} ms ({:.2} us per part; {:.1} MiB allocated on disk), target < 1000 ms at 100k",
            m * 1e3,
            m * 1e6 / n as f64,
            bytes as f64 / MIB as f64
        );
        results.push((n, m));
    }
    g.finish();
    for w in results.windows(2) {
        println!(
            "OPEN growth {} -> {} parts: x{:.1} time for x{:.0} parts",
            w[0].0,
            w[1].0,
            w[1].1 / w[0].1,
            w[1].0 as f64 / w[0].0 as f64
        );
    }
}

criterion_group!(open, benches);
criterion_main!(open);
