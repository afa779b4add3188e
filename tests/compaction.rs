//! Range copy by reference at scale, space reclamation by `compact()`, and
//! readers that keep reading through it; stale-upload expiry.
//!
//! Guards against: copies that silently copy bytes or lose them when the
//! source goes away; compaction that loses live data, leaves garbage on
//! disk, or breaks a `Blob` a reader holds; uploads that never expire.

mod common;

use std::time::Duration;

use partstore::{CopySource, Durability, LayerConfig, Options, PartBody, Store, UploadStatus};

const MIB: u64 = 1 << 20;

/// Bytes the store's files occupy on disk (allocated blocks).
fn disk_usage(dir: &std::path::Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().metadata().unwrap().blocks() * 512)
        .sum()
}

#[test]
fn ten_thousand_parts_copied_from_one_range_complete_and_read_back() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(
        dir.path(),
        Options::default().durability(Durability::Batched),
    )
    .unwrap();
    store.create_layer("l", LayerConfig::default()).unwrap();
    let src = common::gen(1, (5 * MIB) as usize);
    store
        .put_object("l", "src", PartBody::new(&src[..], src.len() as u64))
        .unwrap();
    let before = store.stats();
    let up = store
        .start_multipart("l", "big", "application/octet-stream")
        .unwrap();
    let range: partstore::ByteRange = format!("bytes=0-{}", 5 * MIB - 1).parse().unwrap();
    for n in 1..=10_000u32 {
        let p = store
            .copy_part("l", &up, n, CopySource::new("src", range))
            .unwrap();
        assert_eq!(p.crc32c, crc32c::crc32c(&src));
    }
    // No data bytes were written for 10,000 parts of 5 MiB.
    assert_eq!(store.stats().live_bytes, before.live_bytes);
    let t = std::time::Instant::now();
    let obj = store.complete_multipart("l", &up).unwrap();
    println!("complete of 10,000 parts: {:?}", t.elapsed());
    assert_eq!(obj.size, 10_000 * 5 * MIB);
    assert_eq!(obj.part_count, 10_000);
    // The full-object CRC equals the CRC of the bytes, computed the slow way
    // by combining the source CRC 10,000 times.
    let mut crc = crc32c::crc32c(&src);
    for _ in 1..10_000 {
        crc = crc32c::crc32c_combine(crc, crc32c::crc32c(&src), src.len());
    }
    assert_eq!(obj.crc32c, crc);
    let blob = store.get("l", "big").unwrap();
    for (i, off) in [0u64, 5 * MIB - 3, 7 * MIB + 11, 123_456_789, obj.size - 100]
        .into_iter()
        .enumerate()
    {
        let len = 64 + i as u64 * 1000;
        let end = (off + len).min(obj.size);
        let got: Vec<u8> = blob
            .slices(off, end)
            .unwrap()
            .iter()
            .flat_map(|s| s.to_vec())
            .collect();
        let want: Vec<u8> = (off..end).map(|p| src[(p % (5 * MIB)) as usize]).collect();
        assert_eq!(got, want, "offset {off}");
    }
    // And after a reopen.
    drop(blob);
    drop(store);
    let store = Store::open(dir.path(), Options::default()).unwrap();
    let blob = store.get("l", "big").unwrap();
    let got = blob.slices(obj.size - 10, obj.size).unwrap();
    assert_eq!(&*got[0], &src[src.len() - 10..]);
}

#[test]
fn copied_part_survives_source_delete_overwrite_compaction_and_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let opts = Options::default()
        .segment_size(8 * MIB)
        .compact_threshold(0.0);
    let src = common::gen(2, (6 * MIB + 5) as usize);
    let expected: Vec<u8> = src[MIB as usize..].to_vec();
    {
        let store = Store::open(dir.path(), opts.clone()).unwrap();
        store.create_layer("l", LayerConfig::default()).unwrap();
        store
            .put_object("l", "src", PartBody::new(&src[..], src.len() as u64))
            .unwrap();
        let up = store
            .start_multipart("l", "dst", "application/octet-stream")
            .unwrap();
        let range = format!("bytes={}-{}", MIB, src.len() - 1).parse().unwrap();
        let p = store
            .copy_part("l", &up, 1, CopySource::new("src", range))
            .unwrap();
        assert_eq!(p.crc32c, crc32c::crc32c(&expected));
        // Overwrite, then delete the source; fill segments with garbage.
        let other = common::gen(3, (7 * MIB) as usize);
        store
            .put_object("l", "src", PartBody::new(&other[..], other.len() as u64))
            .unwrap();
        store.delete("l", "src").unwrap();
        for i in 0..4 {
            store
                .put_object(
                    "l",
                    &format!("junk{i}"),
                    PartBody::new(&other[..], other.len() as u64),
                )
                .unwrap();
            store.delete("l", &format!("junk{i}")).unwrap();
        }
        let r = store.compact().unwrap();
        assert!(r.segments_removed > 0, "{r:?}");
        let obj = store.complete_multipart("l", &up).unwrap();
        assert_eq!(obj.crc32c, crc32c::crc32c(&expected));
        assert_eq!(store.get("l", "dst").unwrap().to_vec().unwrap(), expected);
        store.compact().unwrap();
        assert!(store.verify().unwrap().is_clean());
    }
    let store = Store::open(dir.path(), opts).unwrap();
    assert_eq!(store.get("l", "dst").unwrap().to_vec().unwrap(), expected);
    assert!(store.verify().unwrap().is_clean());
}

#[test]
fn compaction_reclaims_overwritten_aborted_and_deleted_space() {
    let dir = tempfile::tempdir().unwrap();
    let seg = 16 * MIB;
    let opts = Options::default().segment_size(seg).compact_threshold(0.0);
    let store = Store::open(dir.path(), opts.clone()).unwrap();
    store.create_layer("l", LayerConfig::default()).unwrap();
    let part = |seed| common::gen(seed, (5 * MIB) as usize);
    // Two uploads of 4 parts; every part uploaded, then overwritten twice.
    let mut kept = Vec::new();
    for u in 0..2u64 {
        let up = store
            .start_multipart("l", &format!("obj{u}"), "application/octet-stream")
            .unwrap();
        let mut bytes = Vec::new();
        for n in 1..=4u32 {
            for round in 0..3u64 {
                let b = part(u * 100 + n as u64 * 10 + round);
                store
                    .upload_part("l", &up, n, PartBody::new(&b[..], b.len() as u64))
                    .unwrap();
                if round == 2 {
                    bytes.extend_from_slice(&b);
                }
            }
        }
        store.complete_multipart("l", &up).unwrap();
        kept.push(bytes);
    }
    // An aborted upload and deleted objects.
    let up = store
        .start_multipart("l", "aborted", "application/octet-stream")
        .unwrap();
    for n in 1..=3u32 {
        let b = part(900 + n as u64);
        store
            .upload_part("l", &up, n, PartBody::new(&b[..], b.len() as u64))
            .unwrap();
    }
    store.abort_multipart("l", &up).unwrap();
    for i in 0..3u64 {
        let b = part(950 + i);
        store
            .put_object(
                "l",
                &format!("gone{i}"),
                PartBody::new(&b[..], b.len() as u64),
            )
            .unwrap();
        store.delete("l", &format!("gone{i}")).unwrap();
    }
    let live = store.stats().live_bytes;
    assert_eq!(live, 2 * 4 * 5 * MIB);
    let before = disk_usage(dir.path());
    let report = store.compact().unwrap();
    let after = disk_usage(dir.path());
    let stats = store.stats();
    println!(
        "space: live {live} B, on disk before {before} B, after {after} B; {report:?}; garbage now {}",
        stats.garbage_bytes
    );
    assert!(
        after <= live + seg,
        "after compaction {after} bytes on disk > live {live} + one segment {seg}"
    );
    assert!(report.bytes_reclaimed > 0 && report.segments_removed > 0);
    for (u, bytes) in kept.iter().enumerate() {
        assert_eq!(
            &store
                .get("l", &format!("obj{u}"))
                .unwrap()
                .to_vec()
                .unwrap(),
            bytes
        );
    }
    drop(store);
    let store = Store::open(dir.path(), opts).unwrap();
    for (u, bytes) in kept.iter().enumerate() {
        assert_eq!(
            &store
                .get("l", &format!("obj{u}"))
                .unwrap()
                .to_vec()
                .unwrap(),
            bytes
        );
    }
    assert!(store.verify().unwrap().is_clean());
}

#[test]
fn readers_read_exact_bytes_while_compaction_runs() {
    let dir = tempfile::tempdir().unwrap();
    let opts = Options::default()
        .segment_size(8 * MIB)
        .compact_threshold(0.0);
    let store = Store::open(dir.path(), opts).unwrap();
    store.create_layer("l", LayerConfig::default()).unwrap();
    let objects: Vec<Vec<u8>> = (0..6)
        .map(|i| common::gen(10 + i, (3 * MIB + 17) as usize))
        .collect();
    for (i, b) in objects.iter().enumerate() {
        store
            .put_object("l", &format!("k{i}"), PartBody::new(&b[..], b.len() as u64))
            .unwrap();
        let junk = common::gen(99, (4 * MIB) as usize);
        store
            .put_object("l", "junk", PartBody::new(&junk[..], junk.len() as u64))
            .unwrap();
    }
    store.delete("l", "junk").unwrap();
    let held = store.get("l", "k0").unwrap();
    let stop = std::sync::atomic::AtomicBool::new(false);
    std::thread::scope(|s| {
        let readers: Vec<_> = (0..2)
            .map(|t| {
                let (store, objects, stop) = (&store, &objects, &stop);
                s.spawn(move || {
                    let mut reads = 0u64;
                    while !stop.load(std::sync::atomic::Ordering::SeqCst) || reads < 20 {
                        let i = (reads as usize + t) % objects.len();
                        let got = store.get("l", &format!("k{i}")).unwrap().to_vec().unwrap();
                        assert_eq!(got, objects[i], "object k{i} read {reads}");
                        reads += 1;
                    }
                    reads
                })
            })
            .collect();
        for _ in 0..3 {
            store.compact().unwrap();
        }
        stop.store(true, std::sync::atomic::Ordering::SeqCst);
        for r in readers {
            assert!(r.join().unwrap() >= 20);
        }
    });
    // A blob taken before compaction still reads its bytes.
    assert_eq!(held.to_vec().unwrap(), objects[0]);
    assert!(store.verify().unwrap().is_clean());
}

#[test]
fn expire_uploads_aborts_only_idle_ones() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), Options::default()).unwrap();
    store.create_layer("l", LayerConfig::default()).unwrap();
    let old = store
        .start_multipart("l", "old", "application/octet-stream")
        .unwrap();
    store
        .upload_part("l", &old, 1, PartBody::new(&b"abc"[..], 3))
        .unwrap();
    // Margins of a second: a loaded machine may take hundreds of
    // milliseconds for one fsync.
    std::thread::sleep(Duration::from_millis(1500));
    let fresh = store
        .start_multipart("l", "fresh", "application/octet-stream")
        .unwrap();
    assert_eq!(store.expire_uploads(Duration::from_secs(3600)).unwrap(), 0);
    assert_eq!(
        store.expire_uploads(Duration::from_millis(1000)).unwrap(),
        1
    );
    assert_eq!(
        store.upload_status("l", &old).unwrap_err().kind(),
        partstore::ErrorKind::NotFound
    );
    assert!(matches!(
        store.upload_status("l", &fresh).unwrap(),
        UploadStatus::Open { .. }
    ));
    let listed = store.list_uploads("l").unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].upload, fresh);
    assert!(listed[0].last_activity >= listed[0].started);
    // An upload's activity (a part) keeps it alive.
    std::thread::sleep(Duration::from_millis(1200));
    store
        .upload_part("l", &fresh, 1, PartBody::new(&b"x"[..], 1))
        .unwrap();
    assert_eq!(
        store.expire_uploads(Duration::from_millis(1000)).unwrap(),
        0
    );
    // Expiry is durable.
    drop(store);
    let store = Store::open(dir.path(), Options::default()).unwrap();
    assert_eq!(store.list_uploads("l").unwrap().len(), 1);
}

/// Small puts streaming in while `compact()` runs do not hold it off: a
/// small body is written with its record at commit and reserves no region,
/// so the active segment (mostly garbage here) is sealed and compacted.
#[test]
fn compaction_proceeds_while_small_puts_stream_in() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), Options::default().durability(Durability::None)).unwrap();
    store.create_layer("l", LayerConfig::default()).unwrap();
    let body = vec![9u8; 4096];
    for i in 0..400 {
        store
            .put_object("l", &format!("k{i:04}"), PartBody::new(&body[..], 4096))
            .unwrap();
    }
    for i in 0..300 {
        store.delete("l", &format!("k{i:04}")).unwrap();
    }
    let stop = std::sync::atomic::AtomicBool::new(false);
    let report = std::thread::scope(|s| {
        let writer = s.spawn(|| {
            let mut n = 0u32;
            while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                store
                    .put_object("l", &format!("new/{n:06}"), PartBody::new(&b"x"[..], 1))
                    .unwrap();
                n += 1;
            }
            n
        });
        std::thread::sleep(Duration::from_millis(20));
        let report = store.compact().unwrap();
        stop.store(true, std::sync::atomic::Ordering::SeqCst);
        let n = writer.join().unwrap();
        assert!(n > 0);
        report
    });
    assert!(
        report.segments_removed > 0 && report.bytes_moved >= 100 * 4096,
        "compaction skipped the active segment while puts streamed in: {report:?}"
    );
    for i in 300..400 {
        assert_eq!(
            store
                .get("l", &format!("k{i:04}"))
                .unwrap()
                .to_vec()
                .unwrap(),
            body
        );
    }
}

/// The same with `Sync` puts, several writers, round after round: a put
/// whose record was appended to the active segment just before compaction
/// sealed it, and was still waiting for its fdatasync (so not in the
/// index yet), must be moved with the rest. Compaction used to miss it and
/// stop with `Corrupt` ("segment N still holds live bytes"), which also
/// kept the segment from being dropped with a live extent in it.
#[test]
fn sync_puts_in_flight_at_the_seal_are_moved_too() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(
        dir.path(),
        Options::default()
            .durability(Durability::Sync)
            .segment_size(4 << 20),
    )
    .unwrap();
    store.create_layer("l", LayerConfig::default()).unwrap();
    let stop = std::sync::atomic::AtomicBool::new(false);
    let acked = std::sync::Mutex::new(Vec::new());
    std::thread::scope(|s| {
        for w in 0..3 {
            let (store, stop, acked) = (&store, &stop, &acked);
            s.spawn(move || {
                let mut n = 0u32;
                while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                    let key = format!("w{w}/{n:06}");
                    let body = common::gen(u64::from(n) * 3 + w, 1 + (n as usize * 37) % 3000);
                    store
                        .put_object("l", &key, PartBody::new(&body[..], body.len() as u64))
                        .unwrap();
                    // Most of it dies at once: every segment is garbage.
                    if !n.is_multiple_of(8) {
                        store.delete("l", &key).unwrap();
                    } else {
                        acked.lock().unwrap().push((key, body));
                    }
                    n += 1;
                }
            });
        }
        let mut failed = None;
        for round in 0..25 {
            std::thread::sleep(Duration::from_millis(15));
            if let Err(e) = store.compact() {
                failed = Some((round, e));
                break;
            }
        }
        stop.store(true, std::sync::atomic::Ordering::SeqCst);
        if let Some((round, e)) = failed {
            panic!("compaction round {round}: {e}");
        }
    });
    let acked = acked.into_inner().unwrap();
    assert!(acked.len() > 20, "{}", acked.len());
    for (k, b) in &acked {
        assert_eq!(&store.get("l", k).unwrap().to_vec().unwrap(), b, "{k}");
    }
    drop(store);
    let store = Store::open(dir.path(), Options::default()).unwrap();
    for (k, b) in &acked {
        assert_eq!(&store.get("l", k).unwrap().to_vec().unwrap(), b, "{k}");
    }
    assert!(store.verify().unwrap().is_clean());
}

/// Regions whose pages compaction punched out of a segment it kept (its
/// garbage under the threshold) are space the file system has back: the
/// stats say so before and after a reopen alike, and a compaction after
/// the reopen moves nothing to reclaim them again.
#[test]
fn punched_regions_stay_reclaimed_across_a_reopen() {
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let opts = Options::default().segment_size(16 * MIB);
    let store = Store::open(dir.path(), opts.clone()).unwrap();
    store.create_layer("l", LayerConfig::default()).unwrap();
    // Four 2 MiB objects in the first segment, then one that does not fit
    // there: the first segment is sealed.
    for i in 0..4u64 {
        let b = common::gen(i, (2 * MIB) as usize);
        store
            .put_object("l", &format!("k{i}"), PartBody::new(&b[..], b.len() as u64))
            .unwrap();
    }
    let big = common::gen(9, (9 * MIB) as usize);
    store
        .put_object("l", "big", PartBody::new(&big[..], big.len() as u64))
        .unwrap();
    // A quarter of the first segment becomes garbage: under the threshold
    // (a half), so the segment stays and its dead pages are punched.
    store.delete("l", "k1").unwrap();
    let first = store.stats().per_segment[0].clone();
    assert!(first.garbage_bytes >= 2 * MIB, "{first:?}");
    let report = store.compact().unwrap();
    assert_eq!(report.bytes_moved, 0, "{report:?}");
    if report.bytes_reclaimed == 0 {
        println!("skipped: this file system does not punch holes");
        return;
    }
    let punched = store.stats();
    let seg = punched
        .per_segment
        .iter()
        .find(|s| s.id == first.id)
        .cloned();
    let seg = seg.expect("the first segment stays");
    assert!(seg.garbage_bytes < MIB / 16, "{seg:?}");
    drop(store);

    let store = Store::open(dir.path(), opts).unwrap();
    let reopened = store.stats();
    let again = reopened.per_segment.iter().find(|s| s.id == first.id);
    assert_eq!(again, Some(&seg), "{reopened:?}");
    assert_eq!(reopened.garbage_bytes, punched.garbage_bytes);
    let report = store.compact().unwrap();
    assert_eq!(report.bytes_moved, 0, "{report:?}");
    for i in [0u64, 2, 3] {
        let got = store.get("l", &format!("k{i}")).unwrap().to_vec().unwrap();
        assert!(got == common::gen(i, (2 * MIB) as usize), "k{i}");
    }
}

/// The real file system, but a file's allocation grows by 8 MiB at every
/// look, as when appends and the pre-writer allocate in the active segment
/// while compaction punches holes in it.
#[derive(Debug, Default)]
struct Growing(std::sync::atomic::AtomicU64);

impl partstore::backend::Backend for Growing {
    fn create_dir_all(&self, dir: &std::path::Path) -> std::io::Result<()> {
        partstore::backend::StdBackend.create_dir_all(dir)
    }
    fn read_dir(&self, dir: &std::path::Path) -> std::io::Result<Vec<String>> {
        partstore::backend::StdBackend.read_dir(dir)
    }
    fn create_new(
        &self,
        path: &std::path::Path,
    ) -> std::io::Result<std::sync::Arc<dyn partstore::backend::BackendFile>> {
        partstore::backend::StdBackend.create_new(path)
    }
    fn open(
        &self,
        path: &std::path::Path,
    ) -> std::io::Result<std::sync::Arc<dyn partstore::backend::BackendFile>> {
        partstore::backend::StdBackend.open(path)
    }
    fn remove_file(&self, path: &std::path::Path) -> std::io::Result<()> {
        partstore::backend::StdBackend.remove_file(path)
    }
    fn sync_dir(&self, dir: &std::path::Path) -> std::io::Result<()> {
        partstore::backend::StdBackend.sync_dir(dir)
    }
    fn allocated_bytes(&self, path: &std::path::Path) -> std::io::Result<u64> {
        let grown = self
            .0
            .fetch_add(8 * MIB, std::sync::atomic::Ordering::SeqCst);
        Ok(partstore::backend::StdBackend.allocated_bytes(path)? + grown)
    }
}

/// Dead regions punched out of the active segment are reported as
/// reclaimed, although appends and the pre-writer may allocate in that
/// file meanwhile (its allocation can grow while the holes free blocks).
#[test]
fn holes_punched_in_the_active_segment_are_reported() {
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let backend = std::sync::Arc::new(Growing::default());
    let store = Store::open(dir.path(), Options::default().backend(backend)).unwrap();
    store.create_layer("l", LayerConfig::default()).unwrap();
    let body = common::gen(3, 20_000);
    for i in 0..400 {
        store
            .put_object("l", &format!("k{i:03}"), PartBody::new(&body[..], 20_000))
            .unwrap();
    }
    for i in (0..400).step_by(2) {
        store.delete("l", &format!("k{i:03}")).unwrap();
    }
    let before = store.stats().per_segment[0].data_bytes;
    let report = store.compact().unwrap();
    let punched = before - store.stats().per_segment[0].data_bytes;
    if punched == 0 {
        println!("skipped: this file system does not punch holes");
        return;
    }
    // 200 dead regions of 20,000 bytes: at least 3 whole pages each.
    assert!(punched >= 200 * 3 * 4096, "{punched}");
    assert_eq!(report.bytes_reclaimed, punched, "{report:?}");
    for i in (1..400).step_by(2) {
        let got = store
            .get("l", &format!("k{i:03}"))
            .unwrap()
            .to_vec()
            .unwrap();
        assert!(got == body, "k{i:03}");
    }
}

/// A second `compact()` with no write in between finds nothing to do: the
/// newest checkpoint's pages are not garbage (the next open needs them), so
/// a segment holding little else is not a victim whose removal would only
/// write the same checkpoint into a new segment, every time. Both with
/// live objects next to the pages and with every object deleted.
#[test]
fn compaction_reaches_a_fixed_point() {
    for delete_all in [false, true] {
        let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
        let opts = Options::default()
            .durability(Durability::None)
            .segment_size(4 * MIB)
            .checkpoint_bytes(64 << 10);
        let store = Store::open(dir.path(), opts.clone()).unwrap();
        store.create_layer("l", LayerConfig::default()).unwrap();
        for i in 0..6_000 {
            let key = format!("a/long/enough/key/for/big/checkpoint/pages/{i:06}");
            store
                .put_object("l", &key, PartBody::new(&b"x"[..], 1))
                .unwrap();
        }
        if delete_all {
            for i in 0..6_000 {
                let key = format!("a/long/enough/key/for/big/checkpoint/pages/{i:06}");
                store.delete("l", &key).unwrap();
            }
        }
        // (A periodic checkpoint still due from the writes would move the
        // base between two calls: that is a change, not a fixed point.)
        store.wait_for_checkpoints();
        store.compact().unwrap();
        store.wait_for_checkpoints();
        let settled = store.stats();
        for round in 0..3 {
            let report = store.compact().unwrap();
            assert_eq!(
                (report.bytes_moved, report.segments_removed),
                (0, 0),
                "delete_all {delete_all}, round {round}: {report:?}, stats {settled:?}"
            );
            assert_eq!(store.stats().per_segment, settled.per_segment);
        }
        // What garbage is left (older checkpoints' pages: a periodic one
        // ran during the compaction) is under the threshold.
        for g in &settled.per_segment {
            assert!(2 * g.garbage_bytes <= g.data_bytes, "{settled:?}");
        }
        drop(store);
        let store = Store::open(dir.path(), opts).unwrap();
        assert_eq!(store.stats().per_segment, settled.per_segment);
        let report = store.compact().unwrap();
        assert_eq!(
            (report.bytes_moved, report.segments_removed),
            (0, 0),
            "{report:?}"
        );
        assert_eq!(store.stats().objects, if delete_all { 0 } else { 6_000 });
    }
}

/// Segments full of metadata records no open needs (renames: a copy and a
/// delete each, writing no data) with a few live objects among them are
/// reclaimed: the live objects move, the records go. The data garbage
/// share alone never counts such records. Then the store is at a fixed
/// point, before and after a reopen.
#[test]
fn segments_of_dead_records_are_reclaimed() {
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let opts = Options::default()
        .durability(Durability::None)
        .segment_size(MIB)
        .checkpoint_bytes(256 << 10);
    let store = Store::open(dir.path(), opts.clone()).unwrap();
    store.create_layer("l", LayerConfig::default()).unwrap();
    let body = common::gen(7, 10_000);
    let mut kept = Vec::new();
    for i in 0..40_000u32 {
        if i % 8_000 == 0 {
            let key = format!("keep{i}");
            store
                .put_object("l", &key, PartBody::new(&body[..], body.len() as u64))
                .unwrap();
            kept.push(key);
        }
        let src = kept.last().unwrap();
        store.copy_object("l", "tmp/renamed", src).unwrap();
        store.delete("l", "tmp/renamed").unwrap();
    }
    store.sync().unwrap();
    let before = disk_usage(dir.path());
    let segments = store.stats().segments;
    let report = store.compact().unwrap();
    let after = disk_usage(dir.path());
    println!("{segments} segments, {before} B on disk; {report:?}; then {after} B");
    assert!(segments >= 4, "the workload filled {segments} segments");
    assert!(report.segments_removed + 2 >= segments, "{report:?}");
    assert!(
        after * 3 < before,
        "{after} B on disk after, {before} before"
    );
    let again = store.compact().unwrap();
    assert_eq!(
        (again.bytes_moved, again.segments_removed),
        (0, 0),
        "{again:?}"
    );
    drop(store);
    let store = Store::open(dir.path(), opts).unwrap();
    let again = store.compact().unwrap();
    assert_eq!(
        (again.bytes_moved, again.segments_removed),
        (0, 0),
        "{again:?}"
    );
    for key in &kept {
        let got = store.get("l", key).unwrap().to_vec().unwrap();
        assert!(got == body, "{key}");
    }
    assert_eq!(store.stats().objects, kept.len());
    assert!(store.verify().unwrap().is_clean());
}
