//! Reads of a warm 96 MiB object: `Blob::read_range` (zero-copy slices of
//! the segment map, with and without block verification) and `reader()`,
//! against memcpy and pread of the same bytes, interleaved in the same run.
//!
//! ```text
//! cargo bench --bench read
//! ```
//!
//! `read_range` itself copies nothing, so "read_range only" times just the
//! lookup (and, with `verify_reads`, the CRC32C of every block it touches);
//! "read_range + copy out" also copies the slices into a buffer, the
//! cheapest thing a consumer can do with them, and is the figure set next to
//! memcpy of 96 MiB. `reader()` copies by design and is set next to pread.
//!
//! "random_64KiB" reads 256 ranges of 64 KiB at pseudo-random offsets out
//! of eight warm 8 MiB objects (`get` + `read_range` + copy out, with
//! `verify_reads` on and off), next to `pread` of the same ranges out of a
//! plain file holding the same bytes.

mod common;

use std::cell::RefCell;
use std::fs::File;
use std::io::Read;
use std::os::unix::fs::FileExt;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion, SamplingMode, Throughput};
use partstore::{ByteRange, LayerConfig, Options, PartBody, Store};

use common::{bench_pair, env_u64, Pairs, MIB};

const LAYER: &str = "bench";
const KEY: &str = "read/object.bin";

/// A store holding `objects` (key, bytes), each read back once: its pages
/// mapped and warm, its bytes checked (with `verify` on, every block
/// verified once, as a server's first reads would).
fn store_with(objects: &[(&str, &[u8])], verify: bool) -> (tempfile::TempDir, Store) {
    let dir = common::tempdir("read-");
    let store = Store::open(
        dir.path().join("store"),
        Options::default().verify_reads(verify),
    )
    .expect("open");
    store
        .create_layer(LAYER, LayerConfig::default())
        .expect("layer");
    for (key, data) in objects {
        store
            .put_object(LAYER, key, PartBody::new(*data, data.len() as u64))
            .expect("put");
        let got = store.get(LAYER, key).expect("get").to_vec().expect("read");
        assert!(got == *data, "read back differs");
    }
    (dir, store)
}

fn copy_out(slices: &[partstore::Slice], dst: &mut [u8]) {
    let mut at = 0;
    for s in slices {
        dst[at..at + s.len()].copy_from_slice(s);
        at += s.len();
    }
    assert_eq!(at, dst.len());
}

fn benches(c: &mut Criterion) {
    common::print_machine();
    let len = (env_u64("PARTSTORE_BENCH_READ_MIB", 96) * MIB) as usize;
    let data = common::pseudo_random(len, 3);
    let range: ByteRange = format!("bytes=0-{}", len - 1).parse().expect("range");
    let stores = [
        ("verify_on", store_with(&[(KEY, &data)], true)),
        ("verify_off", store_with(&[(KEY, &data)], false)),
    ];
    let src = data.clone();
    let dst = RefCell::new(vec![0u8; len]);
    // A plain file of the same bytes, in the page cache, for pread.
    let plain_dir = common::tempdir("pread-");
    let plain_path = plain_dir.path().join("plain.bin");
    std::fs::write(&plain_path, &data).expect("plain file");
    let plain = File::open(&plain_path).expect("open plain");

    let memcpy = || {
        let mut d = dst.borrow_mut();
        let t = Instant::now();
        d.copy_from_slice(&src);
        std::hint::black_box(&mut *d);
        vec![t.elapsed()]
    };
    let pread = || {
        let mut d = dst.borrow_mut();
        let t = Instant::now();
        plain.read_exact_at(&mut d, 0).expect("pread");
        vec![t.elapsed()]
    };

    let mut g = c.benchmark_group("read");
    g.sample_size(20)
        .sampling_mode(SamplingMode::Flat)
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs(2))
        .throughput(Throughput::Bytes(len as u64));
    for (mode, (_dir, store)) in &stores {
        // read_range + copy out vs memcpy.
        let pairs = RefCell::new(Pairs::new(
            "read",
            &format!("read_range_copy_out/{mode}"),
            len as u64,
            "memcpy",
        ));
        bench_pair(
            &mut g,
            &format!("read_range_copy_out/{mode}"),
            &pairs,
            || (),
            |_| {
                let mut d = dst.borrow_mut();
                let t = Instant::now();
                let blob = store.get(LAYER, KEY).expect("get");
                let slices = blob.read_range(range).expect("read_range");
                copy_out(&slices, &mut d);
                t.elapsed()
            },
            memcpy,
        );
        pairs.borrow().report();

        // read_range alone (zero-copy) vs memcpy.
        let pairs = RefCell::new(Pairs::new(
            "read",
            &format!("read_range_only/{mode}"),
            len as u64,
            "memcpy",
        ));
        bench_pair(
            &mut g,
            &format!("read_range_only/{mode}"),
            &pairs,
            || (),
            |_| {
                let t = Instant::now();
                let blob = store.get(LAYER, KEY).expect("get");
                let slices = blob.read_range(range).expect("read_range");
                std::hint::black_box(&slices);
                t.elapsed()
            },
            memcpy,
        );
        pairs.borrow().report();

        // reader() into a buffer vs pread of a plain file.
        let pairs = RefCell::new(Pairs::new(
            "read",
            &format!("reader/{mode}"),
            len as u64,
            "pread (page cache)",
        ));
        bench_pair(
            &mut g,
            &format!("reader/{mode}"),
            &pairs,
            || (),
            |_| {
                let mut d = dst.borrow_mut();
                let t = Instant::now();
                let blob = store.get(LAYER, KEY).expect("get");
                blob.reader().read_exact(&mut d).expect("reader");
                t.elapsed()
            },
            pread,
        );
        pairs.borrow().report();
    }
    g.finish();
    drop(plain);
    random_reads(c);
}

/// Objects of the random-read point, and the range each read takes.
const RANDOM_OBJECTS: usize = 8;
const RANDOM_OBJECT_LEN: usize = 8 << 20;
const RANDOM_READ_LEN: usize = 64 << 10;
const RANDOM_READS: usize = 256;

/// 64 KiB reads at pseudo-random offsets out of warm 8 MiB objects, with
/// verification on and off, each paired with `pread` of the same ranges.
fn random_reads(c: &mut Criterion) {
    let data = common::pseudo_random(RANDOM_OBJECTS * RANDOM_OBJECT_LEN, 9);
    let plain_dir = common::tempdir("pread-random-");
    let plain_path = plain_dir.path().join("plain.bin");
    std::fs::write(&plain_path, &data).expect("plain file");
    let plain = File::open(&plain_path).expect("open plain");
    // (object, offset within it): a fixed pseudo-random sequence.
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    let reads: Vec<(usize, usize)> = (0..RANDOM_READS)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let obj = (x % RANDOM_OBJECTS as u64) as usize;
            let off = ((x >> 8) % (RANDOM_OBJECT_LEN - RANDOM_READ_LEN) as u64) as usize;
            (obj, off)
        })
        .collect();
    let keys: Vec<String> = (0..RANDOM_OBJECTS)
        .map(|i| format!("random/object-{i}.bin"))
        .collect();
    let dst = RefCell::new(vec![0u8; RANDOM_READ_LEN]);
    let pread = || {
        let mut d = dst.borrow_mut();
        let t = Instant::now();
        for &(obj, off) in &reads {
            let at = (obj * RANDOM_OBJECT_LEN + off) as u64;
            plain.read_exact_at(&mut d, at).expect("pread");
            std::hint::black_box(&mut *d);
        }
        vec![t.elapsed()]
    };
    let bytes = (RANDOM_READS * RANDOM_READ_LEN) as u64;
    let mut g = c.benchmark_group("read");
    g.sample_size(30)
        .sampling_mode(SamplingMode::Flat)
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs(2))
        .throughput(Throughput::Bytes(bytes));
    for verify in [true, false] {
        let mode = if verify { "verify_on" } else { "verify_off" };
        let objects: Vec<(&str, &[u8])> = keys
            .iter()
            .enumerate()
            .map(|(i, key)| {
                let at = i * RANDOM_OBJECT_LEN;
                (key.as_str(), &data[at..at + RANDOM_OBJECT_LEN])
            })
            .collect();
        let (_dir, store) = store_with(&objects, verify);
        let label = format!("random_64KiB/{mode}");
        let pairs = RefCell::new(Pairs::new("read", &label, bytes, "pread (page cache)"));
        bench_pair(
            &mut g,
            &label,
            &pairs,
            || (),
            |_| {
                let mut d = dst.borrow_mut();
                let t = Instant::now();
                for &(obj, off) in &reads {
                    let blob = store.get(LAYER, &keys[obj]).expect("get");
                    let range = ByteRange::Bounded {
                        first: off as u64,
                        last: (off + RANDOM_READ_LEN - 1) as u64,
                    };
                    let slices = blob.read_range(range).expect("read_range");
                    copy_out(&slices, &mut d);
                    std::hint::black_box(&mut *d);
                }
                t.elapsed()
            },
            pread,
        );
        pairs.borrow().report();
    }
    g.finish();
}

criterion_group!(read, benches);
criterion_main!(read);
