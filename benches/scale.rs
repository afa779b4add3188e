//! A store of many small objects: memory per object, open time, listing
//! latency, and the latency of durable puts while `compact()` runs.
//!
//! ```text
//! cargo bench --bench scale                                   # 1M objects
//! PARTSTORE_BENCH_SCALE=10000000 cargo bench --bench scale    # 10M
//! ```
//!
//! Objects are one byte each under keys like `dir123/object-000004567.bin`
//! (about 30 bytes, 1,000 folders), put with `Durability::None` into a fresh
//! store in one process, whose RSS (VmRSS) is read before and after: the
//! difference per object is the index's cost. Then 200,000 one-byte parts
//! of open uploads (per part; the uploads are aborted after). Then: open (the store is synced and dropped first),
//! listing pages of 1,000 from the middle (a folder, a deep page after a
//! key, and the root's 1,000 folders), and `Sync` puts of 1 KiB on the
//! reopened store, timed one by one, first alone and then while a
//! `compact()` of the store (60% of its objects deleted) runs on another
//! thread: p50, p99 and worst of each are printed side by side.

mod common;

use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion, SamplingMode};
use partstore::{Durability, LayerConfig, ListOptions, Options, PartBody, Store};

use common::{env_u64, median};

const LAYER: &str = "scale";

fn key(i: u64) -> String {
    format!("dir{:03}/object-{i:09}.bin", i % 1000)
}

/// Resident memory of this process, bytes.
fn rss() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

/// p50 / p99 / worst of latencies in seconds, as milliseconds.
fn dist(mut v: Vec<f64>) -> String {
    v.sort_by(|a, b| a.total_cmp(b));
    format!(
        "n {} p50 {:.3} ms p99 {:.3} ms worst {:.3} ms",
        v.len(),
        percentile(&v, 0.5) * 1e3,
        percentile(&v, 0.99) * 1e3,
        v.last().copied().unwrap_or(f64::NAN) * 1e3
    )
}

fn benches(c: &mut Criterion) {
    common::print_machine();
    let n = env_u64("PARTSTORE_BENCH_SCALE", 1_000_000);
    let dir = common::tempdir("scale");
    let none = Options::default().durability(Durability::None);

    // Memory per object, and the CPU cost of a tiny put.
    let before = rss();
    let store = Store::open(dir.path(), none.clone()).expect("open");
    store
        .create_layer(LAYER, LayerConfig::default())
        .expect("layer");
    let t = Instant::now();
    for i in 0..n {
        store
            .put_object(LAYER, &key(i), PartBody::new(&b"x"[..], 1))
            .expect("put");
    }
    let put_us = t.elapsed().as_secs_f64() * 1e6 / n as f64;
    let after = rss();
    println!(
        "SCALE {n} objects: RSS {:.1} B per object (key ~30 B); put {put_us:.2} us each (Durability::None)",
        after.saturating_sub(before) as f64 / n as f64
    );
    let t = Instant::now();
    for i in (0..n).step_by(7) {
        std::hint::black_box(store.head(LAYER, &key(i)).expect("head"));
    }
    println!(
        "SCALE head: {:.2} us each",
        t.elapsed().as_secs_f64() * 1e6 / n.div_ceil(7) as f64
    );
    // Enough parts (~50 MB of them) that the few MB the allocator holds
    // free after the puts cannot hide them (10,000 parts measured 35 B
    // each that way; they cost ~250). Aborted afterwards: the rest of the
    // bench is about objects.
    let parts = 200_000u32;
    let before_parts = rss();
    let mut ups = Vec::new();
    for u in 0..parts / 100 {
        let up = store
            .start_multipart(LAYER, &format!("uploads/{u}"), "application/octet-stream")
            .expect("start");
        for p in 1..=100 {
            store
                .upload_part(LAYER, &up, p, PartBody::new(&b"p"[..], 1))
                .expect("part");
        }
        ups.push(up);
    }
    println!(
        "SCALE open upload parts: RSS {:.1} B per part",
        rss().saturating_sub(before_parts) as f64 / f64::from(parts)
    );
    for up in &ups {
        store.abort_multipart(LAYER, up).expect("abort");
    }
    store.sync().expect("sync");
    drop(store);

    // Open: replay or checkpoint + tail.
    let mut g = c.benchmark_group("scale");
    g.sample_size(10)
        .sampling_mode(SamplingMode::Flat)
        .warm_up_time(Duration::from_millis(1))
        .measurement_time(Duration::from_millis(1));
    let mut opens = Vec::new();
    g.bench_function(format!("open/{n}_objects"), |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let t = Instant::now();
                let s = Store::open(dir.path(), none.clone()).expect("open");
                let d = t.elapsed();
                drop(s);
                opens.push(d.as_secs_f64());
                total += d;
            }
            total
        })
    });
    println!(
        "SCALE open of {n} objects: median {:.0} ms",
        median(&opens) * 1e3
    );

    // Listing pages of 1,000 from the middle.
    let store = Store::open(dir.path(), none.clone()).expect("open");
    let mid = n / 2;
    let cases = [
        (
            "list/folder",
            ListOptions {
                parent: format!("dir{:03}", mid % 1000),
                limit: 1000,
                ..ListOptions::default()
            },
        ),
        (
            "list/deep_after_key",
            ListOptions {
                start_after: Some(key(mid)),
                deep: true,
                limit: 1000,
                ..ListOptions::default()
            },
        ),
        (
            "list/root_folders",
            ListOptions {
                limit: 1000,
                ..ListOptions::default()
            },
        ),
    ];
    for (name, opts) in &cases {
        let mut times = Vec::new();
        g.bench_function(format!("{name}/{n}_objects"), |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let t = Instant::now();
                    let page = store.list(LAYER, opts).expect("list");
                    let d = t.elapsed();
                    assert!(!page.items.is_empty());
                    std::hint::black_box(page);
                    times.push(d.as_secs_f64());
                    total += d;
                }
                total
            })
        });
        println!(
            "SCALE {name}: median {:.3} ms per page of 1,000",
            median(&times) * 1e3
        );
    }
    g.finish();

    // Durable puts alone, then while compact() runs.
    for i in (0..n).filter(|i| i % 5 < 3) {
        store.delete(LAYER, &key(i)).expect("delete");
    }
    store.sync().expect("sync");
    drop(store);
    let store = Store::open(dir.path(), Options::default()).expect("open Sync");
    let body = vec![7u8; 1024];
    let put = |i: u64| {
        let t = Instant::now();
        store
            .put_object(
                LAYER,
                &format!("live/{i:09}"),
                PartBody::new(&body[..], body.len() as u64),
            )
            .expect("put");
        t.elapsed().as_secs_f64()
    };
    let alone: Vec<f64> = (0..300).map(put).collect();
    let done = std::sync::atomic::AtomicBool::new(false);
    let (during, report, compact_secs) = std::thread::scope(|s| {
        let compactor = s.spawn(|| {
            let t = Instant::now();
            let r = store.compact().expect("compact");
            done.store(true, std::sync::atomic::Ordering::SeqCst);
            (r, t.elapsed().as_secs_f64())
        });
        let mut during = Vec::new();
        let mut i = 1_000;
        while !done.load(std::sync::atomic::Ordering::SeqCst) {
            during.push(put(i));
            i += 1;
        }
        let (r, secs) = compactor.join().expect("compactor");
        (during, r, secs)
    });
    println!("SCALE Sync put of 1 KiB alone:         {}", dist(alone));
    println!(
        "SCALE Sync put of 1 KiB during compact: {} (compact took {:.2} s: {report:?})",
        dist(during),
        compact_secs
    );
    drop(store);
    let t = Instant::now();
    let s = Store::open(dir.path(), none).expect("open");
    println!(
        "SCALE open after compaction: {:.0} ms",
        t.elapsed().as_secs_f64() * 1e3
    );
    drop(s);
}

criterion_group!(scale, benches);
criterion_main!(scale);
