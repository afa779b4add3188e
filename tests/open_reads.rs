//! What `Store::open` reads from disk: the records, not the data.
//!
//! Guards against: an open (and the background count after it) that reads
//! every byte of the log. The scan walks record headers and skips the data
//! regions between them, but reads of 64 KiB at each header, and the
//! kernel's read-ahead (up to `read_ahead_kb`, 8 MiB on the development
//! machine's disk), pulled in all of a log of 64 KiB objects: a server
//! restarting on a store of a few TB read all of it. After an open from a
//! checkpoint, the count of the data bytes of the segments before it read
//! a page per data region; the checkpoint now carries those counts.
//!
//! One test per binary: the process's block-device reads are what is
//! measured.

mod common;

use std::io::Read;
use std::path::Path;

use partstore::{Durability, LayerConfig, Options, PartBody, Store};

const BODY: usize = 64 << 10;
const OBJECTS: u64 = 1_000;

/// Bytes this process has made the block layer read.
fn read_bytes() -> Option<u64> {
    let io = std::fs::read_to_string("/proc/self/io").ok()?;
    io.lines()
        .find_map(|l| l.strip_prefix("read_bytes:"))
        .and_then(|v| v.trim().parse().ok())
}

/// Drops the store's files from the page cache (their pages are clean
/// after the close's fdatasync).
fn evict(dir: &Path) {
    for e in std::fs::read_dir(dir).unwrap() {
        let f = std::fs::File::open(e.unwrap().path()).unwrap();
        f.sync_all().unwrap();
        rustix::fs::fadvise(&f, 0, None, rustix::fs::Advice::DontNeed).unwrap();
    }
}

#[test]
fn open_reads_the_records_not_the_data() {
    let dir = tempfile::tempdir().unwrap();
    let opts = || {
        Options::default()
            .durability(Durability::None)
            .segment_size(32 << 20)
            .checkpoint_bytes(0)
    };
    let key = |i: u64| format!("k/{i:06}");
    {
        let store = Store::open(dir.path(), opts()).unwrap();
        store.create_layer("l", LayerConfig::default()).unwrap();
        for i in 0..OBJECTS {
            let b = common::tagged(i, BODY);
            store
                .put_object("l", &key(i), PartBody::new(&b[..], b.len() as u64))
                .unwrap();
        }
        assert!(store.stats().segments >= 2);
    }
    let data = OBJECTS * BODY as u64;
    evict(dir.path());
    let Some(before) = read_bytes() else {
        println!("skipped: /proc/self/io is not readable here");
        return;
    };
    let store = Store::open(dir.path(), opts()).unwrap();
    // (The count of data bytes runs after the open, in the background:
    // `stats()` waits for it.)
    let segments = store.stats().segments;
    let opened = read_bytes().unwrap() - before;
    let mut all = Vec::with_capacity(BODY);
    for i in 0..OBJECTS {
        all.clear();
        store
            .get("l", &key(i))
            .unwrap()
            .reader()
            .read_to_end(&mut all)
            .unwrap();
        assert_eq!(all, common::tagged(i, BODY), "object {i}");
    }
    let total = read_bytes().unwrap() - before;
    if total < data / 2 {
        println!(
            "skipped: reading {data} bytes of evicted objects read {total} bytes from a \
             device (a file system without one, such as tmpfs)"
        );
        return;
    }
    println!("open of {segments} segments, {data} bytes of data: read {opened} bytes");
    assert!(
        opened < data / 4,
        "open read {opened} bytes of a log holding {data} bytes of data"
    );

    // From a checkpoint: the segments before its base are not scanned by
    // the open, and the checkpoint record says what they hold: the count
    // of their data bytes after the open (`stats()` waits for it) asks the
    // file system for their holes and reads none of their records (it did
    // read a page per data region: 8.4 MB here).
    store.checkpoint().unwrap();
    let live = store.stats();
    drop(store);
    evict(dir.path());
    let before = read_bytes().unwrap();
    let store = Store::open(dir.path(), opts()).unwrap();
    let stats = store.stats();
    let opened = read_bytes().unwrap() - before;
    println!("open from a checkpoint, then the count: read {opened} bytes");
    assert_eq!(
        (stats.live_bytes, stats.garbage_bytes, stats.objects),
        (live.live_bytes, live.garbage_bytes, live.objects)
    );
    assert!(
        opened < data / 64,
        "open and count read {opened} bytes of a log holding {data} bytes of data"
    );
}
