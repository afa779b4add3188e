//! ENOSPC and EIO at every I/O call of a workload that ends with delete +
//! compact (issue 14), through the fault-injecting backend
//! (tests/common/faulty.rs), which now also counts `allocate` (fallocate)
//! and `punch_hole`, so the full-disk paths are among the calls that fail.
//!
//! The workload: puts (one larger than a segment), a multipart upload with
//! an overwritten part, complete, copy, an aborted upload, deletes, a
//! compaction (punching holes over the freed regions and moving segments),
//! one more put, then deletes and a final compaction. For every call index
//! and each of EIO and ENOSPC, a fresh store runs it with that call failing
//! once:
//! - nothing panics, and the failed call returns `Io` (`NoSpace` for an
//!   injected ENOSPC, unless it hit an fsync: `StorePoisoned`);
//! - the failed call changed nothing the store shows;
//! - a store that is not poisoned runs the failed operation again and the
//!   rest of the workload, and then holds exactly what a clean run holds;
//!   everything acknowledged is durable in the backend's model of the disk
//!   (a power-loss image of it opens with every object byte for byte) and
//!   after a reopen;
//! - a poisoned store (a failed fsync) refuses writes; reopened, it shows
//!   the failed operation wholly present or wholly absent.
//!
//! The store writes a periodic checkpoint every few operations (waited for
//! after each, so the calls are the same in every run) and each compaction
//! writes one: their calls fail too. A failed periodic checkpoint fails no
//! operation (unless its fsync failed: the next one finds the store
//! poisoned).

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use common::faulty::{Faulty, Rng, ENOSPC};
use common::gen;
use partstore::{
    ErrorKind, LayerConfig, ListItem, ListOptions, Options, PartBody, Reason, Store, UploadId,
};

const L: &str = "l";
const OCTET: &str = "application/octet-stream";
const EIO: i32 = 5;

#[derive(Debug, Clone)]
enum Op {
    Put(&'static str, u64, usize),
    Start(&'static str),
    Part(&'static str, u32, u64, usize),
    Complete(&'static str),
    Abort(&'static str),
    Copy(&'static str, &'static str),
    Delete(&'static str),
    Compact,
}

fn workload() -> Vec<Op> {
    use Op::*;
    vec![
        Put("a", 1, 100_000),
        Put("b", 2, 300_000), // larger than a segment: a grown one
        Put("c", 3, 5_000),
        Start("u"),
        Part("u", 1, 4, 200_000),
        Part("u", 1, 5, 150_000), // the first part 1 is garbage now
        Complete("u"),
        Put("d", 6, 64_000),
        Copy("e", "a"),
        Start("v"),
        Part("v", 1, 7, 50_000),
        Abort("v"),
        Delete("a"),
        Delete("b"),
        Compact,
        Put("f", 8, 20_000),
        Delete("c"),
        Delete("u"),
        Compact,
    ]
}

/// Acknowledged objects' bytes, and the upload tokens handed out.
#[derive(Default)]
struct Run {
    objects: BTreeMap<String, Vec<u8>>,
    parts: BTreeMap<String, BTreeMap<u32, Vec<u8>>>,
    tokens: BTreeMap<&'static str, UploadId>,
}

/// Runs `op` on the store and, when it succeeds, on the model.
fn apply(s: &Store, run: &mut Run, op: &Op) -> partstore::Result<()> {
    let r = run_op(s, run, op);
    // The periodic checkpoint this made due is written now, so every run
    // makes the same calls in the same order.
    s.wait_for_checkpoints();
    r?;
    model(run, op);
    Ok(())
}

fn run_op(s: &Store, run: &mut Run, op: &Op) -> partstore::Result<()> {
    match op {
        Op::Put(k, seed, len) => {
            let b = gen(*seed, *len);
            s.put_object(L, k, PartBody::new(&b[..], *len as u64))?;
        }
        Op::Start(k) => {
            let id = s.start_multipart(L, k, OCTET)?;
            run.tokens.insert(k, id);
        }
        Op::Part(k, n, seed, len) => {
            let b = gen(*seed, *len);
            s.upload_part(L, &run.tokens[k], *n, PartBody::new(&b[..], *len as u64))?;
        }
        Op::Complete(k) => {
            s.complete_multipart(L, &run.tokens[k])?;
        }
        Op::Abort(k) => s.abort_multipart(L, &run.tokens[k])?,
        Op::Copy(dst, src) => {
            s.copy_object(L, dst, src)?;
        }
        Op::Delete(k) => s.delete(L, k)?,
        Op::Compact => {
            s.compact()?;
        }
    }
    Ok(())
}

/// What `op` does to the acknowledged objects and parts.
fn model(run: &mut Run, op: &Op) {
    match op {
        Op::Put(k, seed, len) => {
            run.objects.insert(k.to_string(), gen(*seed, *len));
        }
        Op::Start(k) => {
            run.parts.insert(k.to_string(), BTreeMap::new());
        }
        Op::Part(k, n, seed, len) => {
            run.parts.get_mut(*k).unwrap().insert(*n, gen(*seed, *len));
        }
        Op::Complete(k) => {
            let parts = run.parts.remove(*k).unwrap();
            run.objects
                .insert(k.to_string(), parts.into_values().flatten().collect());
        }
        Op::Abort(k) => {
            run.parts.remove(*k);
        }
        Op::Copy(dst, src) => {
            let b = run.objects[*src].clone();
            run.objects.insert(dst.to_string(), b);
        }
        Op::Delete(k) => {
            run.objects.remove(*k);
        }
        Op::Compact => {}
    }
}

/// What the store shows, without times and tokens (which differ between
/// runs): objects by (key, size, crc), open uploads by key with their parts.
type Shown = (Vec<(String, u64, u32)>, Vec<(String, Vec<(u32, u64, u32)>)>);

fn shown(s: &Store) -> Shown {
    let objects = s
        .list(L, &ListOptions::default().deep(true))
        .unwrap()
        .items
        .into_iter()
        .filter_map(|i| match i {
            ListItem::Object(o) => Some((o.key, o.size, o.crc32c)),
            _ => None,
        })
        .collect();
    let uploads = s
        .list_uploads(L)
        .unwrap()
        .into_iter()
        .map(|u| {
            let parts = s
                .list_parts(L, &u.upload)
                .unwrap()
                .into_iter()
                .map(|p| (p.part_number, p.size, p.crc32c))
                .collect();
            (u.key, parts)
        })
        .collect();
    (objects, uploads)
}

/// Everything the store shows, times and tokens included, for "the failed
/// call changed nothing".
fn everything(s: &Store) -> String {
    let objects = s.list(L, &ListOptions::default().deep(true)).unwrap();
    let uploads: Vec<_> = s
        .list_uploads(L)
        .unwrap()
        .into_iter()
        .map(|u| {
            let parts = s.list_parts(L, &u.upload).unwrap();
            (u, parts)
        })
        .collect();
    format!("{:?} {:?} {}", objects.items, uploads, s.stats().live_bytes)
}

/// Every acknowledged object byte for byte, and `verify()` clean.
fn check_bytes(s: &Store, run: &Run, when: &str) {
    for (k, b) in &run.objects {
        let got = s
            .get(L, k)
            .unwrap_or_else(|e| panic!("{when}: {k}: {e}"))
            .to_vec()
            .unwrap();
        assert!(got == *b, "{when}: object {k} differs");
    }
    let v = s.verify().unwrap();
    assert!(v.is_clean(), "{when}: {:?}", v.corrupt);
}

fn opts(f: &Faulty) -> Options {
    Options::default()
        .segment_size(256 << 10)
        .compact_threshold(0.3)
        // A periodic checkpoint every few operations.
        .checkpoint_bytes(512)
        .backend(Arc::new(f.clone()))
}

fn setup(f: &Faulty) -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let s = Store::open(dir.path(), opts(f)).unwrap();
    s.create_layer(L, LayerConfig::default()).unwrap();
    (dir, s)
}

#[test]
fn enospc_and_eio_at_every_call_of_a_workload_ending_in_delete_and_compact() {
    let started = Instant::now();
    let ops = workload();
    // The clean run: the call range to fail, and the state after each op.
    let (first, last, states, allocations, punches) = {
        let f = Faulty::new();
        let (_dir, s) = setup(&f);
        let first = f.calls();
        let mut run = Run::default();
        let mut states = vec![shown(&s)];
        for op in &ops {
            if matches!(op, Op::Compact) && states.len() < 16 {
                // Periodic checkpoints before the first compaction.
                let n = common::checkpoints_in(_dir.path());
                assert!(n >= 2, "{n} periodic checkpoints in a clean run");
            }
            apply(&s, &mut run, op).unwrap_or_else(|e| panic!("clean run: {op:?}: {e}"));
            states.push(shown(&s));
        }
        (first, f.calls(), states, f.allocations(), f.punches())
    };
    assert!(
        allocations > 0 && punches > 0,
        "the workload must fallocate and punch"
    );
    let mut points = 0;
    let mut poisoned = 0;
    let mut absorbed = 0;
    for call in first..last {
        for errno in [EIO, ENOSPC] {
            let at = format!("call {call} errno {errno}");
            let f = Faulty::new();
            let (dir, s) = setup(&f);
            f.fail_call(call, errno);
            let mut run = Run::default();
            let mut failed = None;
            for (i, op) in ops.iter().enumerate() {
                let before = everything(&s);
                if let Err(e) = apply(&s, &mut run, op) {
                    assert!(f.fired(), "{at}: {op:?} failed on its own: {e}");
                    assert_eq!(e.kind(), ErrorKind::Io, "{at}: {op:?}: {e}");
                    let injected = if errno == ENOSPC {
                        Some(Reason::NoSpace)
                    } else {
                        None
                    };
                    assert!(
                        e.reason() == injected || e.reason() == Some(Reason::StorePoisoned),
                        "{at}: {op:?}: {e} ({:?})",
                        e.reason()
                    );
                    assert_eq!(
                        everything(&s),
                        before,
                        "{at}: the failed {op:?} changed the store"
                    );
                    failed = Some(i);
                    break;
                }
            }
            points += 1;
            let is_poisoned = failed.is_some()
                && matches!(
                    s.sync().map_err(|e| e.reason()),
                    Err(Some(Reason::StorePoisoned))
                );
            if let (Some(i), true) = (failed, is_poisoned) {
                poisoned += 1;
                let e = s
                    .put_object(L, "x", PartBody::new(&b"x"[..], 1))
                    .unwrap_err();
                assert_eq!(e.reason(), Some(Reason::StorePoisoned), "{at}: {e}");
                drop(s);
                let s = Store::open(dir.path(), Options::default())
                    .unwrap_or_else(|e| panic!("{at}: reopen after poisoning: {e}"));
                let now = shown(&s);
                if now != states[i] {
                    assert_eq!(
                        now,
                        states[i + 1],
                        "{at}: {:?} neither absent nor whole after reopen",
                        ops[i]
                    );
                    model(&mut run, &ops[i]);
                }
                check_bytes(&s, &run, &format!("{at} (reopened after poisoning)"));
                continue;
            }
            match failed {
                // Not poisoned: the same operation again, then the rest.
                Some(i) => {
                    for op in &ops[i..] {
                        apply(&s, &mut run, op)
                            .unwrap_or_else(|e| panic!("{at}: {op:?} after the failure: {e}"));
                    }
                }
                // The failing call was a cleanup whose error is ignored, or
                // an allocation retried smaller: the run is whole.
                None => absorbed += f.fired() as usize,
            }
            assert_eq!(shown(&s), states[ops.len()], "{at}: final state");
            check_bytes(&s, &run, &at);
            // Acknowledged means durable in the model of the disk (holes
            // punched by compaction included): a power-loss image opens
            // with all of it.
            let image = tempfile::tempdir().unwrap();
            let mut rng = Rng::new(call * 2 + errno as u64);
            f.materialize(dir.path(), image.path(), &mut rng);
            let p = Store::open(image.path(), Options::default())
                .unwrap_or_else(|e| panic!("{at}: power-loss image: {e}"));
            assert_eq!(shown(&p), states[ops.len()], "{at}: power-loss image");
            check_bytes(&p, &run, &format!("{at} (power-loss image)"));
            drop(p);
            drop(s);
            let s = Store::open(dir.path(), Options::default())
                .unwrap_or_else(|e| panic!("{at}: reopen: {e}"));
            assert_eq!(shown(&s), states[ops.len()], "{at}: after reopen");
            check_bytes(&s, &run, &format!("{at} (reopened)"));
        }
    }
    println!(
        "calls {first}..{last} ({allocations} allocate, {punches} punch_hole in a clean run): \
         {points} failure points, {poisoned} poisoned, {absorbed} absorbed, {:.1} s",
        started.elapsed().as_secs_f64()
    );
    assert!(points > 100, "only {points} failure points");
}
