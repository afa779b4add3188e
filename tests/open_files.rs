//! File descriptors: a store holds a handful, however many segments it has.
//!
//! Guards against: a descriptor kept open per segment file. A store of
//! 1 GiB segments holding a few TB (or a server running many stores) then
//! runs into the process's limit (1,024 by default), and every write, open
//! or directory sync after that fails with EMFILE.
//!
//! One test per binary: the process's descriptor count is what is measured.

mod common;

use std::io::Read;

use partstore::{Durability, LayerConfig, Options, PartBody, Store};

/// File descriptors this process has open.
fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").map_or(0, |d| d.count())
}

const SEGMENT: u64 = 256 << 10;
const BODY: usize = 64 << 10;
const OBJECTS: u64 = 1_200;
/// Descriptors a store may hold whatever its size: the lock file, the
/// active segment, the pre-writer's, a directory being synced, a reader's
/// scan, and the test harness's own.
const FEW: usize = 12;

fn opts(durability: Durability) -> Options {
    Options::default()
        .durability(durability)
        .segment_size(SEGMENT)
        .recycle_segments(2)
}

fn body(i: u64) -> Vec<u8> {
    common::tagged(i, BODY)
}

fn read_all(store: &Store, key: &str) -> Vec<u8> {
    let mut out = Vec::new();
    store
        .get("l", key)
        .unwrap()
        .reader()
        .read_to_end(&mut out)
        .unwrap();
    out
}

#[test]
fn hundreds_of_segments_hold_a_handful_of_file_descriptors() {
    let dir = tempfile::tempdir().unwrap();
    let before = open_fds();
    let key = |i: u64| format!("k/{i:06}");
    {
        let store = Store::open(dir.path(), opts(Durability::None)).unwrap();
        store.create_layer("l", LayerConfig::default()).unwrap();
        for i in 0..OBJECTS {
            let b = body(i);
            store
                .put_object("l", &key(i), PartBody::new(&b[..], b.len() as u64))
                .unwrap();
        }
        let segments = store.stats().segments;
        assert!(segments >= 300, "only {segments} segments");
        let held = open_fds().saturating_sub(before);
        assert!(
            held <= FEW,
            "{held} descriptors open for {segments} segments"
        );
        // Reads are through the maps: still no descriptor per segment.
        for i in (0..OBJECTS).step_by(7) {
            assert_eq!(read_all(&store, &key(i)), body(i), "object {i}");
        }
        store.sync().unwrap();
        let held = open_fds().saturating_sub(before);
        assert!(held <= FEW, "{held} descriptors open after reads and sync");
    }
    assert_eq!(
        open_fds(),
        before,
        "descriptors left after the store closed"
    );

    // Opened again (each sealed segment scanned), then half deleted and
    // compacted (holes punched, segments removed and recycled).
    let store = Store::open(dir.path(), opts(Durability::Sync)).unwrap();
    let held = open_fds().saturating_sub(before);
    assert!(held <= FEW, "{held} descriptors open after the open");
    // The first half of the segments wholly dead (removed or recycled),
    // every other object in the rest (holes punched).
    let live = |i: u64| i >= OBJECTS / 2 && i % 2 == 1;
    for i in (0..OBJECTS).filter(|i| !live(*i)) {
        store.delete("l", &key(i)).unwrap();
    }
    let report = store.compact().unwrap();
    assert!(report.segments_removed >= 100, "{report:?}");
    assert!(report.segments_recycled > 0, "{report:?}");
    store.sync().unwrap();
    let held = open_fds().saturating_sub(before);
    assert!(held <= FEW, "{held} descriptors open after compaction");
    assert!(store.verify().unwrap().is_clean());
    for i in (0..OBJECTS).filter(|i| live(*i)) {
        assert_eq!(read_all(&store, &key(i)), body(i), "object {i}");
    }
    // Writes go on, into recycled files too.
    for i in OBJECTS..OBJECTS + 200 {
        let b = body(i);
        store
            .put_object("l", &key(i), PartBody::new(&b[..], b.len() as u64))
            .unwrap();
    }
    let held = open_fds().saturating_sub(before);
    assert!(held <= FEW, "{held} descriptors open after more writes");
    drop(store);

    let store = Store::open(dir.path(), opts(Durability::Sync)).unwrap();
    for i in (0..OBJECTS + 200).filter(|i| live(*i) || *i >= OBJECTS) {
        assert_eq!(read_all(&store, &key(i)), body(i), "object {i}");
    }
    assert!(store.get("l", &key(0)).is_err());
    assert!(store.verify().unwrap().is_clean());
    drop(store);
    assert_eq!(
        open_fds(),
        before,
        "descriptors left after the store closed"
    );
}
