//! Crash consistency under `Durability::Sync`, proven by fault injection.
//!
//! A seeded random workload (start, upload, overwrite, copy, complete,
//! complete_with, abort, put, delete, copy_object, compact) runs against a
//! store on the fault-injecting backend (tests/common/faulty.rs) and against
//! a model. Then:
//! - `crash_at_every_sync_point`: for every sync point k of the workload,
//!   rerun it, lose power at sync k, materialize what a power loss may keep
//!   (synced bytes + any subset of later writes, each possibly torn), reopen
//!   on the real file system, and check: every acknowledged operation is
//!   there byte for byte, the one in flight is wholly there or wholly absent,
//!   and `verify()` is clean.
//! - `io_error_at_every_call`: fail call i (EIO, and ENOSPC for writes) for
//!   every call index; the failing operation returns an error and is wholly
//!   present or absent after reopening; after a failed fsync the store is
//!   poisoned; after any other failure it keeps working.
//!
//! The store writes a periodic checkpoint every `CHECKPOINT_BYTES` of
//! records (the test waits for each before the next operation, so runs are
//! deterministic), and `compact` writes one before it deletes segments:
//! crashes land in both.
//!
//! Seeds: PARTSTORE_CRASH_SEEDS (comma-separated) or the built-in ones; each
//! failure message names the seed and the crash point.

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use common::faulty::{Faulty, Rng, ENOSPC};
use partstore::{
    CopySource, Durability, ErrorKind, LayerConfig, ListOptions, Options, PartBody, PartRef, Store,
    UploadId,
};

const LAYER: &str = "l";
const BASE: &str = "base";
const MIB: usize = 1 << 20;

fn bytes(seed: u64, len: usize) -> Vec<u8> {
    let mut r = Rng::new(seed);
    (0..len).map(|_| r.next() as u8).collect()
}

#[derive(Debug, Clone)]
enum Op {
    Put(String, u64, usize),
    Delete(String),
    CopyObject(String, String),
    Start(usize, String),
    UploadSmall(usize, u32, u64, usize),
    CopyBase(usize, u32),
    Complete(usize),
    CompleteWith(usize),
    Abort(usize),
    Compact,
}

/// What the store must hold: objects, and open uploads (by slot) with their
/// parts' bytes.
#[derive(Debug, Clone, Default, PartialEq)]
struct Model {
    objects: BTreeMap<String, Vec<u8>>,
    uploads: BTreeMap<usize, (String, BTreeMap<u32, Vec<u8>>)>,
}

fn workload(seed: u64, n: usize) -> Vec<Op> {
    let mut r = Rng::new(seed);
    let keys = ["a", "b", "c/d", "c/e", "f"];
    let mut ops = Vec::new();
    let mut open: Vec<usize> = Vec::new();
    let mut parts: BTreeMap<usize, (bool, bool)> = BTreeMap::new();
    let mut next_slot = 0;
    for i in 0..n {
        let key = keys[r.below(keys.len() as u64) as usize].to_string();
        let op = match r.below(12) {
            0 | 1 => Op::Put(key, seed * 1000 + i as u64, 1 + r.below(40_000) as usize),
            2 => Op::Delete(key),
            3 => Op::CopyObject(BASE.into(), key),
            4 => {
                open.push(next_slot);
                parts.insert(next_slot, (false, false));
                next_slot += 1;
                Op::Start(next_slot - 1, key)
            }
            5 | 6 if !open.is_empty() => {
                let s = open[r.below(open.len() as u64) as usize];
                parts.get_mut(&s).unwrap().1 = true;
                Op::UploadSmall(s, 2, seed * 1000 + i as u64, 1 + r.below(20_000) as usize)
            }
            7 if !open.is_empty() => {
                let s = open[r.below(open.len() as u64) as usize];
                parts.get_mut(&s).unwrap().0 = true;
                Op::CopyBase(s, 1)
            }
            8 | 9 if !open.is_empty() => {
                // Only complete uploads that satisfy the part rules: part 1
                // (5 MiB) present, part 2 optional.
                match open.iter().position(|s| parts[s].0) {
                    Some(pos) => {
                        let s = open.remove(pos);
                        if r.coin() {
                            Op::Complete(s)
                        } else {
                            Op::CompleteWith(s)
                        }
                    }
                    None => Op::Compact,
                }
            }
            10 if !open.is_empty() => {
                let s = open.remove(r.below(open.len() as u64) as usize);
                Op::Abort(s)
            }
            11 => Op::Compact,
            _ => Op::Put(key, seed * 1000 + i as u64, 1 + r.below(3000) as usize),
        };
        ops.push(op);
    }
    ops
}

/// The model after `op` succeeds.
fn model_apply(m: &Model, op: &Op, base: &[u8]) -> Model {
    let mut m = m.clone();
    match op {
        Op::Put(k, s, len) => {
            m.objects.insert(k.clone(), bytes(*s, *len));
        }
        Op::Delete(k) => {
            m.objects.remove(k);
        }
        Op::CopyObject(src, dst) => {
            if let Some(b) = m.objects.get(src).cloned() {
                m.objects.insert(dst.clone(), b);
            }
        }
        Op::Start(slot, key) => {
            m.uploads.insert(*slot, (key.clone(), BTreeMap::new()));
        }
        Op::UploadSmall(slot, n, s, len) => {
            if let Some(u) = m.uploads.get_mut(slot) {
                u.1.insert(*n, bytes(*s, *len));
            }
        }
        Op::CopyBase(slot, n) => {
            if let Some(u) = m.uploads.get_mut(slot) {
                u.1.insert(*n, base[..5 * MIB].to_vec());
            }
        }
        Op::Complete(slot) | Op::CompleteWith(slot) => {
            if let Some((key, parts)) = m.uploads.remove(slot) {
                m.objects
                    .insert(key, parts.into_values().flatten().collect());
            }
        }
        Op::Abort(slot) => {
            m.uploads.remove(slot);
        }
        Op::Compact => {}
    }
    m
}

struct Run {
    store: Store,
    tokens: BTreeMap<usize, UploadId>,
}

fn run_op(run: &mut Run, op: &Op) -> partstore::Result<()> {
    let s = &run.store;
    match op {
        Op::Put(k, seed, len) => {
            let b = bytes(*seed, *len);
            s.put_object(LAYER, k, PartBody::new(&b[..], b.len() as u64))
                .map(|_| ())
        }
        Op::Delete(k) => s.delete(LAYER, k),
        Op::CopyObject(src, dst) => s.copy_object(LAYER, dst, src).map(|_| ()),
        Op::Start(slot, key) => {
            let t = s.start_multipart(LAYER, key, "application/octet-stream")?;
            run.tokens.insert(*slot, t);
            Ok(())
        }
        Op::UploadSmall(slot, n, seed, len) => {
            let b = bytes(*seed, *len);
            s.upload_part(
                LAYER,
                &run.tokens[slot],
                *n,
                PartBody::new(&b[..], b.len() as u64),
            )
            .map(|_| ())
        }
        Op::CopyBase(slot, n) => s
            .copy_part(
                LAYER,
                &run.tokens[slot],
                *n,
                CopySource::new(BASE, "bytes=0-5242879".parse()?),
            )
            .map(|_| ()),
        Op::Complete(slot) => s.complete_multipart(LAYER, &run.tokens[slot]).map(|_| ()),
        Op::CompleteWith(slot) => {
            let refs: Vec<PartRef> = s
                .list_parts(LAYER, &run.tokens[slot])?
                .into_iter()
                .map(|p| PartRef {
                    number: p.part_number,
                    id: p.id,
                })
                .collect();
            s.complete_multipart_with(LAYER, &run.tokens[slot], &refs)
                .map(|_| ())
        }
        Op::Abort(slot) => s.abort_multipart(LAYER, &run.tokens[slot]),
        Op::Compact => s.compact().map(|_| ()),
    }
}

/// Periodic checkpoints every few operations (a few hundred bytes of
/// records each), so crashes land inside them too.
const CHECKPOINT_BYTES: u64 = 1024;

fn opts(backend: &Faulty) -> Options {
    Options::default()
        .durability(Durability::Sync)
        .segment_size(2 * MIB as u64)
        .compact_threshold(0.3)
        .checkpoint_bytes(CHECKPOINT_BYTES)
        .backend(Arc::new(backend.clone()))
}

/// Sets up layer and base object (acknowledged), returning the model.
fn setup(store: &Store, base: &[u8]) -> Model {
    store.create_layer(LAYER, LayerConfig::default()).unwrap();
    store
        .put_object(LAYER, BASE, PartBody::new(base, base.len() as u64))
        .unwrap();
    let mut m = Model::default();
    m.objects.insert(BASE.into(), base.to_vec());
    m
}

/// The observable state of a reopened store, checked to be readable and
/// clean, in the model's shape (upload parts keyed by slot via tokens).
/// `pending` is the slot of a `Start` that failed: its token was never
/// returned, so an unknown open upload can only be it.
fn observe(store: &Store, tokens: &BTreeMap<usize, UploadId>, pending: Option<usize>) -> Model {
    let mut m = Model::default();
    let page = store
        .list(LAYER, &ListOptions::default().deep(true))
        .unwrap();
    for item in page.items {
        if let partstore::ListItem::Object(o) = item {
            let data = store.get(LAYER, &o.key).unwrap().to_vec().unwrap();
            assert_eq!(o.crc32c, crc32c::crc32c(&data), "object {} crc", o.key);
            m.objects.insert(o.key, data);
        }
    }
    let open = store.list_uploads(LAYER).unwrap();
    for u in open {
        let slot = tokens
            .iter()
            .find(|(_, t)| **t == u.upload)
            .map(|(s, _)| *s)
            .or(pending)
            .expect("an open upload the workload never started");
        // Parts cannot be read back through the API; their size and CRC
        // identify them against the model's bytes.
        let parts = store
            .list_parts(LAYER, &u.upload)
            .unwrap()
            .into_iter()
            .map(|p| (p.part_number, (p.size, p.crc32c)))
            .collect::<BTreeMap<_, _>>();
        m.uploads.insert(
            slot,
            (
                u.key,
                parts
                    .into_iter()
                    .map(|(n, (size, crc))| (n, fingerprint(size, crc)))
                    .collect(),
            ),
        );
    }
    let report = store.verify().unwrap();
    assert!(report.is_clean(), "verify found {:?}", report.corrupt);
    m
}

/// Parts are compared by (size, crc): encode them as bytes.
fn fingerprint(size: u64, crc: u32) -> Vec<u8> {
    let mut v = size.to_le_bytes().to_vec();
    v.extend_from_slice(&crc.to_le_bytes());
    v
}

fn comparable(m: &Model) -> Model {
    let mut c = m.clone();
    for (_, parts) in c.uploads.values_mut() {
        for b in parts.values_mut() {
            *b = fingerprint(b.len() as u64, crc32c::crc32c(b));
        }
    }
    c
}

fn seeds() -> Vec<u64> {
    match std::env::var("PARTSTORE_CRASH_SEEDS") {
        Ok(s) => s.split(',').filter_map(|x| x.trim().parse().ok()).collect(),
        Err(_) => vec![1, 2],
    }
}

const OPS: usize = 40;

/// Runs the workload until the first error. Returns (model of acknowledged
/// ops, model if the failed op had succeeded, index of the failed op).
fn drive(run: &mut Run, ops: &[Op], model: Model, base: &[u8]) -> (Model, Model, Option<usize>) {
    let mut m = model;
    for (i, op) in ops.iter().enumerate() {
        let after = model_apply(&m, op, base);
        let r = run_op(run, op);
        // The periodic checkpoint this operation made due runs now, so
        // every run makes the same calls in the same order.
        run.store.wait_for_checkpoints();
        match r {
            Ok(()) => m = after,
            Err(_) => return (m, after, Some(i)),
        }
    }
    (m.clone(), m, None)
}

#[test]
fn crash_at_every_sync_point() {
    let base = bytes(99, 5 * MIB + 123);
    let mut points = 0;
    for seed in seeds() {
        let ops = workload(seed, OPS);
        // Count the sync points of a clean run.
        let total = {
            let dir = tempfile::tempdir().unwrap();
            let f = Faulty::new();
            let store = Store::open(dir.path(), opts(&f)).unwrap();
            let model = setup(&store, &base);
            let before = f.syncs();
            let mut run = Run {
                store,
                tokens: BTreeMap::new(),
            };
            // Checkpoints written over the run, counted op by op: a
            // compaction removes the segments that held earlier ones.
            let (mut model, mut checkpoints, mut seen) = (model, 0, 0);
            for (i, op) in ops.iter().enumerate() {
                let (m, _, failed) = drive(&mut run, std::slice::from_ref(op), model, &base);
                assert_eq!(failed, None, "seed {seed}: clean run failed at op {i}");
                model = m;
                let now = common::checkpoints_in(dir.path());
                checkpoints += now.saturating_sub(seen);
                seen = now;
            }
            assert!(checkpoints >= 2, "seed {seed}: {checkpoints} checkpoints");
            (before, f.syncs())
        };
        for k in total.0..total.1 {
            let dir = tempfile::tempdir().unwrap();
            let f = Faulty::new();
            let store = Store::open(dir.path(), opts(&f)).unwrap();
            let model = setup(&store, &base);
            f.crash_at_sync(k);
            let mut run = Run {
                store,
                tokens: BTreeMap::new(),
            };
            let (acked, maybe, failed) = drive(&mut run, &ops, model, &base);
            assert!(f.crashed(), "seed {seed} sync {k}: crash did not happen");
            let tokens = run.tokens.clone();
            drop(run);
            for variant in 0..2u64 {
                let mut rng = Rng::new(seed * 1_000_003 + k * 7 + variant);
                let out = tempfile::tempdir().unwrap();
                f.materialize(dir.path(), out.path(), &mut rng);
                let store = Store::open(out.path(), Options::default())
                    .unwrap_or_else(|e| panic!("seed {seed} sync {k} v{variant}: open: {e}"));
                let pending = failed.and_then(|i| match &ops[i] {
                    Op::Start(slot, _) => Some(*slot),
                    _ => None,
                });
                let seen = observe(&store, &tokens, pending);
                let ok = seen == comparable(&acked) || seen == comparable(&maybe);
                assert!(
                    ok,
                    "seed {seed} sync {k} v{variant} (op {failed:?} = {:?}): state after crash\n{:?}\nacked\n{:?}",
                    failed.map(|i| &ops[i]),
                    seen.objects.keys().collect::<Vec<_>>(),
                    acked.objects.keys().collect::<Vec<_>>()
                );
                drop(store);
                // A second open changes nothing.
                let again = Store::open(out.path(), Options::default()).unwrap();
                assert_eq!(
                    observe(&again, &tokens, pending),
                    seen,
                    "seed {seed} sync {k}: reopen"
                );
                points += 1;
            }
        }
    }
    println!("crash points checked: {points}");
    assert!(points > 50, "only {points} crash points");
}

#[test]
fn io_error_at_every_call() {
    let base = bytes(98, 5 * MIB + 7);
    let mut checked = 0;
    let mut poisoned = 0;
    for seed in seeds() {
        let ops = workload(seed + 100, OPS / 2);
        let total = {
            let dir = tempfile::tempdir().unwrap();
            let f = Faulty::new();
            let store = Store::open(dir.path(), opts(&f)).unwrap();
            let model = setup(&store, &base);
            let start = f.calls();
            let mut run = Run {
                store,
                tokens: BTreeMap::new(),
            };
            let (_, _, failed) = drive(&mut run, &ops, model, &base);
            assert_eq!(failed, None);
            (start, f.calls())
        };
        let stride = ((total.1 - total.0) / 400).max(1);
        let mut i = total.0;
        while i < total.1 {
            for errno in [5, ENOSPC] {
                let dir = tempfile::tempdir().unwrap();
                let f = Faulty::new();
                let store = Store::open(dir.path(), opts(&f)).unwrap();
                let model = setup(&store, &base);
                f.fail_call(i, errno);
                let mut run = Run {
                    store,
                    tokens: BTreeMap::new(),
                };
                let (acked, maybe, failed) = drive(&mut run, &ops, model, &base);
                if failed.is_none() {
                    // The failing call was not reached or its failure was
                    // absorbed (e.g. a cleanup); the run must be whole.
                    assert!(!f.fired() || acked == maybe);
                }
                // After the failure: either the store keeps working (a put
                // of a fresh key succeeds) or it is poisoned (Io).
                let mut acked = acked;
                let mut maybe = maybe;
                if failed.is_some() {
                    let probe = Op::Put("probe".into(), 7, 100);
                    match run_op(&mut run, &probe) {
                        Ok(()) => {
                            acked = model_apply(&acked, &probe, &base);
                            maybe = model_apply(&maybe, &probe, &base);
                        }
                        Err(e) => {
                            assert_eq!(e.kind(), ErrorKind::Io, "seed {seed} call {i}: {e}");
                            poisoned += 1;
                        }
                    }
                }
                let tokens = run.tokens.clone();
                drop(run);
                let store = Store::open(dir.path(), Options::default())
                    .unwrap_or_else(|e| panic!("seed {seed} call {i} errno {errno}: open: {e}"));
                let pending = failed.and_then(|i| match &ops[i] {
                    Op::Start(slot, _) => Some(*slot),
                    _ => None,
                });
                let seen = observe(&store, &tokens, pending);
                assert!(
                    seen == comparable(&acked) || seen == comparable(&maybe),
                    "seed {seed} call {i} errno {errno}: op {:?}",
                    failed.map(|x| &ops[x])
                );
                checked += 1;
            }
            i += stride;
        }
    }
    println!("io error points checked: {checked}, poisoned afterwards: {poisoned}");
    assert!(checked > 50);
}

#[test]
fn failed_fsync_poisons_until_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let f = Faulty::new();
    let store = Store::open(dir.path(), opts(&f)).unwrap();
    store.create_layer(LAYER, LayerConfig::default()).unwrap();
    f.crash_at_sync(f.syncs()); // the next sync fails
    let err = store
        .put_object(LAYER, "k", PartBody::new(&b"abc"[..], 3))
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Io);
    drop(store);
    // A store whose fsync failed refuses further writes: simulate with a
    // fresh backend that fails one fsync and continues.
    // Which backend call of the put is its fdatasync (for data and record
    // together)? A dry run loses power there: the failing call is the last
    // one counted.
    let offset = {
        let dir = tempfile::tempdir().unwrap();
        let f = Faulty::new();
        let store = Store::open(dir.path(), opts(&f)).unwrap();
        store.create_layer(LAYER, LayerConfig::default()).unwrap();
        let calls = f.calls();
        f.crash_at_sync(f.syncs());
        store
            .put_object(LAYER, "k", PartBody::new(&b"abc"[..], 3))
            .unwrap_err();
        f.calls() - 1 - calls
    };
    let dir = tempfile::tempdir().unwrap();
    let f = Faulty::new();
    let store = Store::open(dir.path(), opts(&f)).unwrap();
    store.create_layer(LAYER, LayerConfig::default()).unwrap();
    let calls = f.calls();
    f.fail_call(calls + offset, 5);
    let err = store
        .put_object(LAYER, "k", PartBody::new(&b"abc"[..], 3))
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Io, "{err}");
    let err = store
        .put_object(LAYER, "k2", PartBody::new(&b"abc"[..], 3))
        .unwrap_err();
    assert!(err.to_string().contains("poisoned"), "{err}");
    assert_eq!(err.kind(), ErrorKind::Io);
    drop(store);
    let store = Store::open(dir.path(), Options::default()).unwrap();
    store
        .put_object(LAYER, "k2", PartBody::new(&b"abc"[..], 3))
        .unwrap();
    assert_eq!(store.get(LAYER, "k2").unwrap().to_vec().unwrap(), b"abc");
}

#[test]
fn enospc_on_data_write_keeps_store_usable() {
    // A small body goes to the log in one write with its record; a larger
    // one into a reserved region (fallocate, region header, data writes),
    // then its record. ENOSPC at each of the first I/O calls of the put:
    // the put fails with it (or, past its last call, succeeds), and the
    // store stays usable and loses nothing.
    for len in [3usize, 200 << 10] {
        let mut failed = 0;
        for k in 0..6 {
            let dir = tempfile::tempdir().unwrap();
            let f = Faulty::new();
            let store = Store::open(dir.path(), opts(&f)).unwrap();
            store.create_layer(LAYER, LayerConfig::default()).unwrap();
            store
                .put_object(LAYER, "keep", PartBody::new(&b"kept"[..], 4))
                .unwrap();
            f.fail_call(f.calls() + k, ENOSPC);
            let body = vec![b'a'; len];
            let r = store.put_object(LAYER, "k", PartBody::new(&body[..], len as u64));
            assert!(
                f.fired() || r.is_ok(),
                "len {len} call {k}: the fault did not fire"
            );
            match r {
                Err(err) => {
                    failed += 1;
                    assert_eq!(err.kind(), ErrorKind::Io, "len {len} call {k}: {err}");
                    assert!(err.to_string().contains("No space left"), "{err}");
                    assert_eq!(
                        store.head(LAYER, "k").unwrap_err().kind(),
                        ErrorKind::NotFound
                    );
                }
                Ok(_) => assert_eq!(store.get(LAYER, "k").unwrap().to_vec().unwrap(), body),
            }
            if store
                .put_object(LAYER, "k", PartBody::new(&b"xyz"[..], 3))
                .is_ok()
            {
                drop(store);
                let store = Store::open(dir.path(), Options::default()).unwrap();
                assert_eq!(store.get(LAYER, "k").unwrap().to_vec().unwrap(), b"xyz");
                assert_eq!(store.get(LAYER, "keep").unwrap().to_vec().unwrap(), b"kept");
            } else {
                // A failed fdatasync poisons the store: what was
                // acknowledged is still there after a reopen.
                drop(store);
                let store = Store::open(dir.path(), Options::default()).unwrap();
                assert_eq!(store.get(LAYER, "keep").unwrap().to_vec().unwrap(), b"kept");
            }
        }
        assert!(failed > 0, "len {len}: no injected ENOSPC failed the put");
    }
}

#[allow(dead_code)]
fn unused(_: &Path) {}
