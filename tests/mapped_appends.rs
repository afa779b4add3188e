//! Small appends under `Durability::None` and `Batched` are copies into a
//! writable map of the active segment, not `pwrite`s (the system call was
//! most of a tiny put's time): they are counted through the backend, the
//! bytes read back before and after a reopen, the map's pages are not
//! kept resident behind the writes, and `Sync` keeps its `pwrite`s.

mod common;

use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use common::counting::Counting;
use partstore::backend::{Backend, StdBackend};
use partstore::{Durability, LayerConfig, Options, PartBody, Store};

fn disk_tempdir() -> tempfile::TempDir {
    let base = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
    std::fs::create_dir_all(&base).unwrap();
    tempfile::tempdir_in(base).unwrap()
}

/// True when the file system under `dir` offers writable maps (ext4, XFS,
/// tmpfs); the test says it skipped otherwise.
fn maps_here(dir: &Path) -> bool {
    let f = StdBackend.create_new(&dir.join("probe")).unwrap();
    f.set_len(4096).unwrap();
    let ok = f.map_writable().unwrap().is_some();
    StdBackend.remove_file(&dir.join("probe")).unwrap();
    if !ok {
        println!("skipped: this file system offers no writable maps");
    }
    ok
}

fn body(i: u64) -> Vec<u8> {
    (0..(i % 300) as usize)
        .map(|j| (i as usize * 31 + j) as u8)
        .collect()
}

fn read(s: &Store, key: &str) -> Vec<u8> {
    let mut out = Vec::new();
    s.get("l", key)
        .unwrap()
        .reader()
        .read_to_end(&mut out)
        .unwrap();
    out
}

fn run(durability: Durability, prewrite: bool) -> (u64, u64) {
    let dir = disk_tempdir();
    let backend = Counting::default();
    let opts = || {
        Options::default()
            .durability(durability)
            .prewrite(prewrite)
            .segment_size(1 << 20)
            .backend(Arc::new(backend.clone()))
    };
    let n = 3000u64;
    let writes = {
        let s = Store::open(dir.path(), opts()).unwrap();
        s.create_layer("l", LayerConfig::default()).unwrap();
        let before = backend.snapshot();
        for i in 0..n {
            let b = body(i);
            s.put_object(
                "l",
                &format!("k{i:05}"),
                PartBody::new(&b[..], b.len() as u64),
            )
            .unwrap();
            if i % 3 == 0 {
                s.delete("l", &format!("k{:05}", i / 2)).unwrap_or(());
            }
        }
        let writes = backend.snapshot().since(before).writes;
        for i in (0..n).step_by(7) {
            if let Ok(o) = s.head("l", &format!("k{i:05}")) {
                assert_eq!(read(&s, &format!("k{i:05}")), body(i), "k{i:05}");
                assert_eq!(o.size, body(i).len() as u64);
            }
        }
        assert!(s.stats().segments > 1, "appends across rotations");
        writes
    };
    let s = Store::open(dir.path(), opts()).unwrap();
    let mut live = 0;
    for i in 0..n {
        let key = format!("k{i:05}");
        let deleted = [2 * i, 2 * i + 1].iter().any(|j| j % 3 == 0 && *j < n);
        match s.head("l", &key) {
            Ok(_) => {
                assert!(!deleted, "{key} was deleted");
                assert_eq!(read(&s, &key), body(i), "{key}");
                live += 1;
            }
            Err(e) => assert!(deleted, "{key}: {e}"),
        }
    }
    assert!(s.verify().unwrap().is_clean());
    (writes, live)
}

#[test]
fn small_appends_are_copies_into_the_map() {
    if !maps_here(disk_tempdir().path()) {
        return;
    }
    for prewrite in [true, false] {
        for durability in [Durability::None, Durability::Batched] {
            let (writes, live) = run(durability, prewrite);
            println!("{durability:?}, prewrite {prewrite}: {writes} pwrites for 4000 appends");
            assert!(live > 1000);
            // The pre-writer's zeros, rotations: a few hundred at most.
            assert!(
                writes < 400,
                "{durability:?}, prewrite {prewrite}: {writes} pwrites"
            );
        }
    }
    // `Sync` writes each record with a `pwrite` (its fdatasync dominates).
    let (writes, _) = run(Durability::Sync, true);
    assert!(writes >= 4000, "Sync: {writes} pwrites");
}

fn rss_file() -> Option<u64> {
    let s = std::fs::read_to_string("/proc/self/status").ok()?;
    let kb: u64 = s
        .lines()
        .find(|l| l.starts_with("RssFile:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()?;
    Some(kb * 1024)
}

/// The writable map's pages behind the writes are unmapped as they go: a
/// process that appended 100 MB does not hold them as resident memory.
#[test]
fn mapped_appends_do_not_stay_resident() {
    let dir = disk_tempdir();
    if !maps_here(dir.path()) {
        return;
    }
    let Some(start) = rss_file() else {
        println!("skipped: no /proc/self/status");
        return;
    };
    let s = Store::open(
        dir.path(),
        Options::default()
            .durability(Durability::None)
            .segment_size(256 << 20),
    )
    .unwrap();
    s.create_layer("l", LayerConfig::default()).unwrap();
    let b = vec![7u8; 1000];
    for i in 0..100_000u64 {
        s.put_object("l", &format!("k{i:07}"), PartBody::new(&b[..], 1000))
            .unwrap();
    }
    let grown = rss_file().unwrap().saturating_sub(start);
    println!("100 MB appended: file-backed RSS grew by {grown} bytes");
    assert!(grown < 24 << 20, "file-backed RSS grew by {grown} bytes");
    assert_eq!(read(&s, "k0000042"), b);
}
