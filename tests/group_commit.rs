//! Group commit, counted (not timed): how many fdatasyncs the engine issues
//! per acknowledged write under `Durability::Sync`, through a `Backend`
//! that passes every call to the real file system and counts the syncs.
//!
//! - One writer: every `put_object`, `start_multipart`, `upload_part` and
//!   `complete_multipart` costs exactly one fdatasync (its data and its
//!   record made durable together), once the store is open and the layer
//!   created.
//! - A part with a requested MD5/SHA digest of 4 MiB or more may cost one
//!   more: the data's early fdatasync, run while the digest finishes
//!   (`src/ingest.rs`); never more than two.
//! - Eight writers committing 200 small objects each: one fdatasync serves
//!   the whole group of writers waiting on it, so there are at most 0.5
//!   syncs per write (the figure is printed).
//!
//! The syncs are real (the store lives under `CARGO_TARGET_TMPDIR`, on the
//! disk), so groups form as they do in production: while one fdatasync
//! runs, the other writers append their records and wait for it.

mod common;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Barrier};

use common::counting::{Counting, Snapshot};
use partstore::{Durability, LayerConfig, Options, PartBody, Store};

const LAYER: &str = "l";
const CT: &str = "application/octet-stream";

/// A fresh directory on the disk (not a tmpfs: the syncs must take the time
/// they take for groups to form as they do in use).
fn disk_tempdir() -> tempfile::TempDir {
    let base = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
    std::fs::create_dir_all(&base).unwrap();
    tempfile::Builder::new()
        .prefix("group-commit-")
        .tempdir_in(base)
        .unwrap()
}

/// A store on the counting backend, open, with its layer created.
fn open(dir: &Path) -> (Counting, Store) {
    let backend = Counting::default();
    let store = Store::open(
        dir.join("store"),
        Options::default()
            .durability(Durability::Sync)
            .backend(Arc::new(backend.clone())),
    )
    .unwrap();
    store.create_layer(LAYER, LayerConfig::default()).unwrap();
    (backend, store)
}

fn bytes(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// Runs `f` and returns the syncs it caused.
fn counted<T>(backend: &Counting, f: impl FnOnce() -> T) -> (T, Snapshot) {
    let before = backend.snapshot();
    let out = f();
    (out, backend.snapshot().since(before))
}

#[test]
fn one_writer_one_fdatasync_per_acknowledged_write() {
    let dir = disk_tempdir();
    let (backend, store) = open(dir.path());
    let mut seen: Vec<(String, Snapshot)> = Vec::new();

    // put_object: empty, small, one block, several blocks.
    for (i, len) in [0usize, 1, 4096, 64 << 10, 1 << 20, (3 << 20) + 17]
        .into_iter()
        .enumerate()
    {
        let data = bytes(i as u64, len);
        let (r, n) = counted(&backend, || {
            store.put_object(
                LAYER,
                &format!("obj/{i}"),
                PartBody::new(&data[..], len as u64),
            )
        });
        r.unwrap();
        seen.push((format!("put_object {len} B"), n));
    }
    // Replacing an object.
    let data = bytes(99, 10_000);
    let (r, n) = counted(&backend, || {
        store.put_object(LAYER, "obj/1", PartBody::new(&data[..], 10_000))
    });
    r.unwrap();
    seen.push(("put_object replacing".into(), n));

    // A multipart upload: start, parts (one replaced), complete.
    let (up, n) = counted(&backend, || store.start_multipart(LAYER, "big", CT));
    let up = up.unwrap();
    seen.push(("start_multipart".into(), n));
    for (part, len) in [
        (1u32, 5usize << 20),
        (2, (5 << 20) + 3),
        (3, 100),
        (2, 6 << 20),
    ] {
        let data = bytes(u64::from(part) + 1000, len);
        let (r, n) = counted(&backend, || {
            store.upload_part(LAYER, &up, part, PartBody::new(&data[..], len as u64))
        });
        r.unwrap();
        seen.push((format!("upload_part {part} of {len} B"), n));
    }
    let (r, n) = counted(&backend, || store.complete_multipart(LAYER, &up));
    let info = r.unwrap();
    assert_eq!(info.size, (5 << 20) + (6 << 20) + 100);
    seen.push(("complete_multipart".into(), n));

    for (what, n) in &seen {
        println!(
            "{what}: {} fdatasync, {} fsync, {} directory syncs",
            n.sync_data, n.sync_all, n.sync_dir
        );
    }
    for (what, n) in &seen {
        assert_eq!(
            (n.file_syncs(), n.sync_dir),
            (1, 0),
            "{what}: expected exactly one file sync and no directory sync, got {n:?}"
        );
    }
}

#[test]
fn digest_part_costs_at_most_one_early_fdatasync_more() {
    use md5::Digest as _;
    let dir = disk_tempdir();
    let (backend, store) = open(dir.path());
    let up = store.start_multipart(LAYER, "big", CT).unwrap();
    for (part, len, md5) in [
        (1u32, 8usize << 20, true),
        (2, (5 << 20) + 3, false),
        (3, 8 << 20, true),
    ] {
        let data = bytes(u64::from(part) + 2000, len);
        let digest = if md5 {
            partstore::Digest::new(partstore::DigestAlgorithm::Md5, &md5::Md5::digest(&data))
        } else {
            partstore::Digest::new(partstore::DigestAlgorithm::Sha1, &sha1::Sha1::digest(&data))
        }
        .unwrap();
        let (r, n) = counted(&backend, || {
            store.upload_part(
                LAYER,
                &up,
                part,
                PartBody::new(&data[..], len as u64).digest(digest),
            )
        });
        r.unwrap();
        println!(
            "upload_part {part} of {len} B with a digest: {} fdatasync, {} fsync, {} directory syncs",
            n.sync_data, n.sync_all, n.sync_dir
        );
        assert!(
            (1..=2).contains(&n.sync_data) && n.sync_all == 0 && n.sync_dir == 0,
            "part {part}: expected one or two fdatasyncs and nothing else, got {n:?}"
        );
    }
}

#[test]
fn eight_writers_share_fdatasyncs() {
    const WRITERS: usize = 8;
    const EACH: usize = 200;
    const LEN: usize = 4096;
    let dir = disk_tempdir();
    let (backend, store) = open(dir.path());
    let bodies: Vec<Vec<u8>> = (0..WRITERS).map(|w| bytes(w as u64, LEN)).collect();
    let go = Barrier::new(WRITERS);
    let (_, n) = counted(&backend, || {
        std::thread::scope(|s| {
            for (w, body) in bodies.iter().enumerate() {
                let (store, go) = (&store, &go);
                s.spawn(move || {
                    go.wait();
                    for i in 0..EACH {
                        store
                            .put_object(
                                LAYER,
                                &format!("w{w}/{i}"),
                                PartBody::new(&body[..], LEN as u64),
                            )
                            .unwrap();
                    }
                });
            }
        })
    });
    let writes = (WRITERS * EACH) as f64;
    let per_write = n.file_syncs() as f64 / writes;
    println!(
        "{WRITERS} writers x {EACH} puts of {LEN} B: {} fdatasync + {} fsync for {} acknowledged writes = {per_write:.3} per write ({:.1} writes per sync); {} directory syncs",
        n.sync_data,
        n.sync_all,
        writes,
        writes / n.file_syncs().max(1) as f64,
        n.sync_dir
    );
    // Every write is there.
    for (w, body) in bodies.iter().enumerate() {
        for i in 0..EACH {
            let got = store.get(LAYER, &format!("w{w}/{i}")).unwrap();
            assert!(got.to_vec().unwrap() == *body, "w{w}/{i} reads back wrong");
        }
    }
    assert!(
        per_write <= 0.5,
        "{per_write:.3} fdatasyncs per acknowledged write with {WRITERS} writers (at most 0.5 expected)"
    );
}

/// Two fdatasyncs of the active segment at once, the first to start
/// failing after the second succeeded (the kernel reports a writeback error
/// to one fdatasync of a descriptor only): the put whose group fdatasync
/// succeeded must not be acknowledged, since the failed one may have been
/// the one that saw its pages' error. Both calls fail, the store is
/// poisoned, and after a reopen every acknowledged object reads back whole.
#[test]
fn a_sync_beside_a_failing_one_acknowledges_nothing() {
    let dir = disk_tempdir();
    let (backend, store) = open(dir.path());
    let before = bytes(1, 5000);
    store
        .put_object(LAYER, "before", PartBody::new(&before[..], 5000))
        .unwrap();

    backend.hold_next_sync();
    let after = bytes(2, 7000);
    let (synced, put) = std::thread::scope(|s| {
        // An explicit sync() runs its fdatasync outside the group commit:
        // it is the one held, then failed.
        let t = s.spawn(|| store.sync());
        while !backend.sync_held() {
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        // The put's group fdatasync succeeds while the other still runs.
        let put = store.put_object(LAYER, "after", PartBody::new(&after[..], 7000));
        (t.join().unwrap(), put)
    });
    assert!(
        synced.is_err(),
        "the failed fdatasync's sync() was: {synced:?}"
    );
    assert!(
        put.is_err(),
        "a put acknowledged by an fdatasync that ran beside a failed one: {put:?}"
    );
    let again = store.put_object(LAYER, "later", PartBody::new(&after[..], 7000));
    assert!(
        matches!(again, Err(partstore::Error::Poisoned(_))),
        "{again:?}"
    );
    drop(store);

    let store = Store::open(dir.path().join("store"), Options::default()).unwrap();
    let got = store.get(LAYER, "before").unwrap();
    assert_eq!(got.to_vec().unwrap(), before);
}
