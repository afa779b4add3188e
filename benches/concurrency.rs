//! Many writers at once under `Durability::Sync` (group commit), against the
//! raw floor of a durable write and against the embedded stores a user
//! would pick instead, all measured in the same run, interleaved.
//!
//! ```text
//! cargo bench --bench concurrency                  # everything, a few seconds per point
//! cargo bench --bench concurrency -- writers/      # engine vs raw only
//! cargo bench --bench concurrency -- peers/        # engine vs redb, fjall, object_store only
//! cargo bench --bench concurrency -- recycled/     # puts into a recycled segment vs a fresh one
//! PARTSTORE_BENCH_SCALE=4 cargo bench --bench concurrency   # 4x the work per round
//! ```
//!
//! Groups (each criterion iteration is one *round*: every variant of the
//! point runs once, in an order that rotates from round to round; criterion
//! records the engine's time, the bench prints `OPS` and `RATIO` lines):
//! - `writers/put_64KiB/<N>w`: N threads share 256 `put_object` calls of
//!   64 KiB (distinct keys) into a fresh store. Paired with the same number
//!   of `write_all_at` + `fdatasync` of 64 KiB from N threads into one file:
//!   a fresh, growing one (`raw_growing`: every write allocates blocks and
//!   changes the size, as the engine's writes into its sparse segments do),
//!   and one whose blocks are already allocated and written (`raw_prewritten`:
//!   the fdatasync flushes data only, the floor). For N > 1 also with the
//!   engine from one thread (`engine_1w`): the N-writers-vs-1 ratio; and
//!   with the raw writes made durable by the engine's group-commit protocol
//!   (`raw_group_commit`: appended under a lock, one fdatasync in flight at
//!   a time covering every write before it, nothing else of the engine),
//!   which tells the protocol's cost from the rest of the engine's.
//! - `writers/part_8MiB/<N>w`: the same with 16 `upload_part` calls of
//!   8 MiB, one upload per writer (started before the clock), and the raw
//!   baselines with 8 MiB writes.
//! - `recycled/put_64KiB/<N>w`, 1 and 4 writers: the same 256 puts into a
//!   store whose active segment is a recycled file (`Options::recycle_segments`:
//!   a segment compaction emptied, its blocks allocated and written), next
//!   to a fresh store with the pre-writer on (the default) and off, and the
//!   raw baselines (ratios: other variant's time / the recycled store's);
//!   at 4 writers also one writer into a recycled segment (the N-vs-1
//!   ratio).
//! - `peers/<size>/<N>w`, size 64 KiB, 1 MiB and 8 MiB, 1 and 4 writers:
//!   partstore `put_object` next to redb (one write transaction per value,
//!   `Durability::Immediate`, its default), fjall (`insert`, then
//!   `persist(PersistMode::SyncData)`, key-value separation on, as for
//!   blobs) and object_store's `LocalFileSystem` with `with_fsync(true)`
//!   (`put`: staged file, fsync, rename, fsync of the directory); every
//!   write is durable before the call returns. 256 / 64 / 16 writes per
//!   round, each store fresh every round.
//!
//! `OPS` lines: ops/s and MB/s (10^6 bytes) per variant, median over the
//! rounds (min..max). `RATIO` lines: the median of the per-round ratios
//! (other variant's time / engine's time: > 1 means the engine was faster),
//! with their min..max; also appended to `target/bench-ratios.tsv`.
//!
//! Knobs: `PARTSTORE_BENCH_PREWRITE` (`0`: the engine's pre-writer off,
//! anything else: on; unset: the default, `Options::prewrite`),
//! `PARTSTORE_BENCH_SCALE` (work per round times this, default 1),
//! `PARTSTORE_BENCH_SAMPLES` (criterion samples per point, default 10, plus
//! one warm-up round), `PARTSTORE_BENCH_DIR` (default `target/benchdata`:
//! keep it on the disk, not a tmpfs, or the fsyncs are free).

mod common;

use std::cell::RefCell;
use std::fs::{File, OpenOptions};
use std::future::Future;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion, SamplingMode, Throughput};
use partstore::{Durability, LayerConfig, Options, PartBody, Store, UploadId};

use common::{bench_variants, env_u64, run_rotated, run_threads, Variants, MIB};

const LAYER: &str = "bench";
const CT: &str = "application/octet-stream";
const KIB: u64 = 1024;

/// Writer counts of the engine-vs-raw points.
const WRITERS: [usize; 4] = [1, 2, 4, 8];
/// Writer counts of the peer comparison.
const PEER_WRITERS: [usize; 2] = [1, 4];

fn size_name(bytes: u64) -> String {
    if bytes >= MIB {
        format!("{}MiB", bytes / MIB)
    } else {
        format!("{}KiB", bytes / KIB)
    }
}

fn writers_name(n: usize) -> String {
    if n == 1 {
        "1 writer".into()
    } else {
        format!("{n} writers")
    }
}

fn group<'a>(
    c: &'a mut Criterion,
    name: &str,
) -> criterion::BenchmarkGroup<'a, criterion::measurement::WallTime> {
    let mut g = c.benchmark_group(name);
    g.sample_size(env_u64("PARTSTORE_BENCH_SAMPLES", 10).max(10) as usize)
        .sampling_mode(SamplingMode::Flat)
        .warm_up_time(Duration::from_millis(1))
        .measurement_time(Duration::from_millis(1));
    g
}

// ----- partstore ----------------------------------------------------------

fn fresh_store() -> (tempfile::TempDir, Store) {
    let dir = common::tempdir("conc-");
    let mut opts = Options::default().durability(Durability::Sync);
    if let Ok(v) = std::env::var("PARTSTORE_BENCH_PREWRITE") {
        opts = opts.prewrite(v != "0");
    }
    let store = Store::open(dir.path().join("store"), opts).expect("open");
    store
        .create_layer(LAYER, LayerConfig::default())
        .expect("layer");
    (dir, store)
}

/// `ops` `put_object`s of `data` (distinct keys) from `writers` threads into
/// a fresh store; the time of the puts alone.
fn engine_puts(writers: usize, data: &[u8], ops: u64) -> Duration {
    let (dir, store) = fresh_store();
    timed_puts(dir, store, writers, data, ops)
}

/// The puts of [`engine_puts`] into `store` (then closed, `dir` removed).
fn timed_puts(
    dir: tempfile::TempDir,
    store: Store,
    writers: usize,
    data: &[u8],
    ops: u64,
) -> Duration {
    let d = run_threads(writers, ops, |w, i| {
        store
            .put_object(
                LAYER,
                &format!("w{w}/{i:08}"),
                PartBody::new(data, data.len() as u64),
            )
            .expect("put_object");
    });
    drop(store);
    drop(dir);
    d
}

/// `ops` `upload_part`s of `data` from `writers` threads, one upload per
/// writer (started before the clock), into a fresh store.
fn engine_parts(writers: usize, data: &[u8], ops: u64) -> Duration {
    let (dir, store) = fresh_store();
    let uploads: Vec<UploadId> = (0..writers)
        .map(|w| {
            store
                .start_multipart(LAYER, &format!("upload{w}"), CT)
                .expect("start_multipart")
        })
        .collect();
    let d = run_threads(writers, ops, |w, i| {
        let n = (i / writers as u64) as u32 + 1;
        store
            .upload_part(
                LAYER,
                &uploads[w],
                n,
                PartBody::new(data, data.len() as u64),
            )
            .expect("upload_part");
    });
    drop(store);
    drop(dir);
    d
}

/// A store whose active segment is a recycled one (`Options::recycle_segments`):
/// filled and emptied under `Durability::None`, compacted (the emptied
/// segment kept for reuse), filled until a rotation takes the kept file,
/// closed and reopened under `Sync`, all before the clock. `room` bytes fit
/// in the recycled segment after the filler.
fn recycled_store(room: u64) -> (tempfile::TempDir, Store) {
    let dir = common::tempdir("conc-recycled-");
    let path = dir.path().join("store");
    let segment = room + 8 * MIB;
    let opts = |d| {
        Options::default()
            .durability(d)
            .segment_size(segment)
            .recycle_segments(1)
    };
    let newest_version = || -> u32 {
        let mut names: Vec<String> = std::fs::read_dir(&path)
            .expect("store dir")
            .filter_map(|e| e.ok()?.file_name().into_string().ok())
            .filter(|n| n.starts_with("seg-"))
            .collect();
        names.sort();
        let newest = names.pop().expect("a segment");
        let mut head = [0u8; 12];
        std::io::Read::read_exact(
            &mut File::open(path.join(newest)).expect("segment"),
            &mut head,
        )
        .expect("header");
        u32::from_le_bytes([head[8], head[9], head[10], head[11]])
    };
    {
        let store = Store::open(&path, opts(Durability::None)).expect("open");
        store
            .create_layer(LAYER, LayerConfig::default())
            .expect("layer");
        let fill = common::pseudo_random(MIB as usize, 3);
        let n = segment / MIB + 2;
        for i in 0..n {
            let body = PartBody::new(&fill[..], fill.len() as u64);
            store
                .put_object(LAYER, &format!("fill/{i}"), body)
                .expect("fill");
        }
        for i in 0..n {
            store.delete(LAYER, &format!("fill/{i}")).expect("delete");
        }
        let report = store.compact().expect("compact");
        assert_eq!(report.segments_recycled, 1, "{report:?}");
        let mut i = 0;
        while newest_version() != 2 {
            let body = PartBody::new(&fill[..64 << 10], 64 << 10);
            store
                .put_object(LAYER, &format!("filler/{i}"), body)
                .expect("filler");
            i += 1;
        }
    }
    let store = Store::open(&path, opts(Durability::Sync)).expect("reopen");
    (dir, store)
}

/// [`engine_puts`] into a store whose active segment is recycled.
fn engine_puts_recycled(writers: usize, data: &[u8], ops: u64) -> Duration {
    let (dir, store) = recycled_store(ops * (data.len() as u64 + 4 * KIB));
    timed_puts(dir, store, writers, data, ops)
}

/// [`engine_puts`] into a fresh store with the pre-writer off.
fn engine_puts_no_prewrite(writers: usize, data: &[u8], ops: u64) -> Duration {
    let dir = common::tempdir("conc-noprewrite-");
    let opts = Options::default()
        .durability(Durability::Sync)
        .prewrite(false);
    let store = Store::open(dir.path().join("store"), opts).expect("open");
    store
        .create_layer(LAYER, LayerConfig::default())
        .expect("layer");
    timed_puts(dir, store, writers, data, ops)
}

/// 64 KiB puts into a recycled segment, next to a fresh one (with and
/// without the pre-writer) and the raw baselines (`recycled/...`).
fn recycled_points(c: &mut Criterion, size: u64, ops: u64) {
    let data = common::pseudo_random(size as usize, 7);
    let bytes = ops * size;
    let dir = common::tempdir("prewritten-");
    let pre = common::prewritten_file(&dir.path().join("pre.bin"), bytes, &data);
    let mut g = group(c, "recycled");
    g.throughput(Throughput::Bytes(bytes));
    for n in PEER_WRITERS {
        let s = size_name(size);
        let w = writers_name(n);
        let descs = [
            format!("partstore put_object of {s}, {w}, into a recycled segment"),
            format!("partstore put_object of {s}, {w}, fresh segment, pre-writer on"),
            format!("partstore put_object of {s}, {w}, fresh segment, pre-writer off"),
            format!("raw write_all_at+fdatasync per {s}, {w}, growing file"),
            format!("raw write_all_at+fdatasync per {s}, {w}, pre-written file"),
        ];
        let one = format!("partstore put_object of {s}, 1 writer, into a recycled segment");
        let mut names: Vec<(&str, &str)> = vec![
            ("recycled", &descs[0]),
            ("fresh_prewrite", &descs[1]),
            ("fresh_no_prewrite", &descs[2]),
            ("raw_growing", &descs[3]),
            ("raw_prewritten", &descs[4]),
        ];
        if n > 1 {
            names.push(("recycled_1w", &one));
        }
        let label = format!("put_{s}/{n}w");
        let v = RefCell::new(Variants::new(
            "concurrency/recycled",
            &label,
            ops,
            bytes,
            &names,
        ));
        bench_variants(&mut g, &label, &v, |round| {
            let mut a = || engine_puts_recycled(n, &data, ops);
            let mut b = || engine_puts(n, &data, ops);
            let mut e = || engine_puts_no_prewrite(n, &data, ops);
            let mut r = || raw_growing(n, &data, ops);
            let mut p = || raw_prewritten(&pre, n, &data, ops);
            let mut one = || engine_puts_recycled(1, &data, ops);
            if n > 1 {
                run_rotated(
                    round,
                    &mut [&mut a, &mut b, &mut e, &mut r, &mut p, &mut one],
                )
            } else {
                run_rotated(round, &mut [&mut a, &mut b, &mut e, &mut r, &mut p])
            }
        });
        v.borrow().report();
    }
    g.finish();
}

// ----- raw ----------------------------------------------------------------

/// `write_all_at` + `fdatasync` of `data`, `ops` times from `threads`
/// threads, into a fresh (growing) file.
fn raw_growing(threads: usize, data: &[u8], ops: u64) -> Duration {
    let dir = common::tempdir("raw-");
    let f = OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .open(dir.path().join("raw.bin"))
        .expect("raw file");
    let d = common::raw_write_sync(&f, threads, data, ops, 0);
    drop(f);
    drop(dir);
    d
}

/// The same writes with the engine's group commit (one fdatasync in flight,
/// covering every write appended before it) into a fresh file.
fn raw_grouped(threads: usize, data: &[u8], ops: u64) -> Duration {
    let dir = common::tempdir("rawgc-");
    let f = OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .open(dir.path().join("raw.bin"))
        .expect("raw file");
    let d = common::raw_group_commit(&f, threads, data, ops);
    drop(f);
    drop(dir);
    d
}

/// The same into `file`, whose blocks are already allocated and written.
fn raw_prewritten(file: &File, threads: usize, data: &[u8], ops: u64) -> Duration {
    common::raw_write_sync(file, threads, data, ops, 0)
}

// ----- peers --------------------------------------------------------------

const REDB_TABLE: redb::TableDefinition<u64, &[u8]> = redb::TableDefinition::new("objects");

/// redb: one write transaction per value, committed with its default
/// `Durability::Immediate` (durable when `commit` returns).
fn redb_puts(writers: usize, data: &[u8], ops: u64) -> Duration {
    let dir = common::tempdir("redb-");
    let db = redb::Database::create(dir.path().join("db.redb")).expect("redb create");
    let d = run_threads(writers, ops, |_, i| {
        let tx = db.begin_write().expect("redb begin_write");
        {
            let mut t = tx.open_table(REDB_TABLE).expect("redb open_table");
            t.insert(i, data).expect("redb insert");
        }
        tx.commit().expect("redb commit");
    });
    drop(db);
    drop(dir);
    d
}

/// fjall: `insert`, then `persist(SyncData)` (fdatasync of the journal)
/// before the write counts as done; key-value separation on (its setting
/// for large values).
fn fjall_puts(writers: usize, data: &[u8], ops: u64) -> Duration {
    let dir = common::tempdir("fjall-");
    let db = fjall::Database::builder(dir.path().join("db"))
        .open()
        .expect("fjall open");
    let ks = db
        .keyspace("objects", || {
            fjall::KeyspaceCreateOptions::default()
                .with_kv_separation(Some(fjall::KvSeparationOptions::default()))
        })
        .expect("fjall keyspace");
    let d = run_threads(writers, ops, |w, i| {
        ks.insert(format!("w{w}/{i:08}"), data)
            .expect("fjall insert");
        db.persist(fjall::PersistMode::SyncData)
            .expect("fjall persist");
    });
    drop(ks);
    drop(db);
    drop(dir);
    d
}

/// Polls a future that completes without waiting (object_store's local
/// file system runs its blocking calls inline when no tokio runtime is
/// current), yielding between polls otherwise.
fn block_on<F: Future>(f: F) -> F::Output {
    let mut f = std::pin::pin!(f);
    let mut cx = Context::from_waker(Waker::noop());
    loop {
        if let Poll::Ready(v) = f.as_mut().poll(&mut cx) {
            return v;
        }
        std::thread::yield_now();
    }
}

/// object_store's `LocalFileSystem` with fsync: each `put` writes a staged
/// file, syncs it, renames it into place and syncs the directory.
fn object_store_puts(writers: usize, data: &bytes::Bytes, ops: u64) -> Duration {
    use object_store::ObjectStoreExt as _;
    let dir = common::tempdir("objstore-");
    let root = dir.path().join("root");
    std::fs::create_dir_all(&root).expect("object_store root");
    let store = object_store::local::LocalFileSystem::new_with_prefix(&root)
        .expect("object_store")
        .with_fsync(true);
    let d = run_threads(writers, ops, |w, i| {
        let path = object_store::path::Path::from(format!("w{w}-{i:08}"));
        block_on(store.put(&path, data.clone().into())).expect("object_store put");
    });
    drop(store);
    drop(dir);
    d
}

// ----- the points ---------------------------------------------------------

/// Engine vs raw for one workload (`put` or `part`) at every writer count.
fn writers_points(c: &mut Criterion, kind: &str, size: u64, ops: u64) {
    let data = common::pseudo_random(size as usize, 7);
    let bytes = ops * size;
    let prewritten: RefCell<Option<(tempfile::TempDir, File)>> = RefCell::new(None);
    let prewritten_file = || -> std::cell::Ref<'_, File> {
        if prewritten.borrow().is_none() {
            let dir = common::tempdir("prewritten-");
            let f = common::prewritten_file(&dir.path().join("pre.bin"), bytes, &data);
            *prewritten.borrow_mut() = Some((dir, f));
        }
        std::cell::Ref::map(prewritten.borrow(), |p| &p.as_ref().expect("created").1)
    };
    let engine = |writers: usize| match kind {
        "put" => engine_puts(writers, &data, ops),
        _ => engine_parts(writers, &data, ops),
    };
    let op_name = if kind == "put" {
        "put_object"
    } else {
        "upload_part"
    };
    let label_kind = format!("{kind}_{}", size_name(size));
    let mut g = group(c, "writers");
    g.throughput(Throughput::Bytes(bytes));
    for n in WRITERS {
        let raw_desc = format!(
            "raw write_all_at+fdatasync per {}, {}, growing file",
            size_name(size),
            writers_name(n)
        );
        let pre_desc = format!(
            "raw write_all_at+fdatasync per {}, {}, pre-written file",
            size_name(size),
            writers_name(n)
        );
        let engine_desc = format!(
            "partstore {op_name} of {}, {}",
            size_name(size),
            writers_name(n)
        );
        let one_desc = format!("partstore {op_name} of {}, 1 writer", size_name(size));
        let grouped_desc = format!(
            "raw write_all_at per {} + group commit (one fdatasync in flight), {}, growing file",
            size_name(size),
            writers_name(n)
        );
        let mut names: Vec<(&str, &str)> = vec![
            ("engine", &engine_desc),
            ("raw_growing", &raw_desc),
            ("raw_prewritten", &pre_desc),
        ];
        if n > 1 {
            names.push(("engine_1w", &one_desc));
            names.push(("raw_group_commit", &grouped_desc));
        }
        let label = format!("{label_kind}/{n}w");
        let v = RefCell::new(Variants::new("concurrency", &label, ops, bytes, &names));
        bench_variants(&mut g, &label, &v, |round| {
            let pre = prewritten_file();
            let mut e = || engine(n);
            let mut r = || raw_growing(n, &data, ops);
            let mut p = || raw_prewritten(&pre, n, &data, ops);
            let mut one = || engine(1);
            let mut gc = || raw_grouped(n, &data, ops);
            if n > 1 {
                run_rotated(round, &mut [&mut e, &mut r, &mut p, &mut one, &mut gc])
            } else {
                run_rotated(round, &mut [&mut e, &mut r, &mut p])
            }
        });
        v.borrow().report();
    }
    g.finish();
}

/// partstore vs redb, fjall and object_store for one value size.
fn peer_points(c: &mut Criterion, size: u64, ops: u64) {
    let data = common::pseudo_random(size as usize, 11);
    let shared = bytes::Bytes::from(data.clone());
    let bytes = ops * size;
    let mut g = group(c, "peers");
    g.throughput(Throughput::Bytes(bytes));
    for n in PEER_WRITERS {
        let desc = |store: &str| format!("{store}, {} of {}", writers_name(n), size_name(size));
        let (e, r, f, o) = (
            desc("partstore put_object"),
            desc("redb (commit, Immediate)"),
            desc("fjall (insert + persist SyncData)"),
            desc("object_store LocalFileSystem with fsync (put)"),
        );
        let names = [
            ("partstore", e.as_str()),
            ("redb", r.as_str()),
            ("fjall", f.as_str()),
            ("object_store", o.as_str()),
        ];
        let label = format!("{}/{n}w", size_name(size));
        let v = RefCell::new(Variants::new(
            "concurrency/peers",
            &label,
            ops,
            bytes,
            &names,
        ));
        bench_variants(&mut g, &label, &v, |round| {
            let mut a = || engine_puts(n, &data, ops);
            let mut b = || redb_puts(n, &data, ops);
            let mut c = || fjall_puts(n, &data, ops);
            let mut d = || object_store_puts(n, &shared, ops);
            run_rotated(round, &mut [&mut a, &mut b, &mut c, &mut d])
        });
        v.borrow().report();
    }
    g.finish();
}

fn benches(c: &mut Criterion) {
    common::print_machine();
    let scale = env_u64("PARTSTORE_BENCH_SCALE", 1).max(1);
    writers_points(c, "put", 64 * KIB, 256 * scale);
    writers_points(c, "part", 8 * MIB, 16 * scale);
    recycled_points(c, 64 * KIB, 256 * scale);
    peer_points(c, 64 * KIB, 256 * scale);
    peer_points(c, MIB, 64 * scale);
    peer_points(c, 8 * MIB, 16 * scale);
}

criterion_group!(concurrency, benches);
criterion_main!(concurrency);
