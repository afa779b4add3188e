//! On-disk fixtures committed under tests/fixtures/: stores written by this
//! format version that every later build must still open (or refuse) the
//! same way. A format change that breaks old stores fails here.
//!
//! - `clean`: a layer, objects (put, multipart, copy), a delete, an open
//!   upload with a part.
//! - `torn_tail`: `clean` plus one more put whose last record was cut
//!   mid-way (a crash before it was acknowledged): opens without it.
//! - `corrupt_middle`: `clean` with one byte of a metadata record in its
//!   first (sealed) segment flipped: `open` fails with `Corrupt`.
//! - `snapshot_v2` / `snapshot_v1`: `clean` compacted by the build before
//!   checkpoints, so it holds compaction's whole-state `Snapshot` record
//!   (tag 18; for v1 rewritten in the version-1 layout, tag 10) with records
//!   before it (not replayed) and after it (replayed).
//! - `checkpoint_v20`: written by the build before checkpoints carried
//!   segment counts (`90bb229`, 64 KiB segments): 12 puts over 4
//!   segments, 3 deletes, a checkpoint (tag 20, without counts), 2 puts
//!   and a delete after it; the hint file names the checkpoint. It was
//!   written by a separate program against that build (the bodies are
//!   `common::gen(i, 9_000 + 1_000 i)` under `tiles/{i:02}.bin`), not by a
//!   test here: it cannot be written again.
//!
//! Regenerate (only on a deliberate format change, with a new version):
//! `PARTSTORE_WRITE_FIXTURES=1 cargo test --test fixtures write_fixtures -- --ignored`
//! (the snapshot ones: `--features fuzzing ... write_snapshot_fixtures`).

mod common;

use std::path::{Path, PathBuf};

use partstore::{CopySource, ErrorKind, LayerConfig, Options, PartBody, Store, UploadStatus};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

fn opts() -> Options {
    Options::default().segment_size(64 << 10)
}

/// Copies a fixture into a temp dir (open may truncate a torn tail).
fn copy_fixture(name: &str) -> tempfile::TempDir {
    let dst = tempfile::tempdir().unwrap();
    for e in std::fs::read_dir(fixtures().join(name)).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), dst.path().join(e.file_name())).unwrap();
    }
    dst
}

fn write_clean(dir: &Path) {
    let s = Store::open(dir, opts()).unwrap();
    s.create_layer("maps", LayerConfig::new("application/octet-stream"))
        .unwrap();
    for i in 0..6u64 {
        let b = common::gen(i, 10_000 + i as usize * 3000);
        s.put_object(
            "maps",
            &format!("tiles/{i}.bin"),
            PartBody::new(&b[..], b.len() as u64),
        )
        .unwrap();
    }
    s.delete("maps", "tiles/2.bin").unwrap();
    let up = s
        .start_multipart("maps", "multi.bin", "application/octet-stream")
        .unwrap();
    let p = common::gen(100, 20_000);
    s.upload_part("maps", &up, 1, PartBody::new(&p[..], p.len() as u64))
        .unwrap();
    s.complete_multipart("maps", &up).unwrap();
    s.copy_object("maps", "copy.bin", "tiles/1.bin").unwrap();
    let open = s
        .start_multipart("maps", "open.bin", "application/octet-stream")
        .unwrap();
    let q = common::gen(200, 5000);
    s.upload_part("maps", &open, 1, PartBody::new(&q[..], q.len() as u64))
        .unwrap();
    let up2 = s
        .start_multipart("maps", "ranged.bin", "application/octet-stream")
        .unwrap();
    s.copy_part(
        "maps",
        &up2,
        1,
        CopySource::new("multi.bin", "bytes=0-9999".parse().unwrap()),
    )
    .unwrap();
    s.complete_multipart("maps", &up2).unwrap();
}

fn check_clean(s: &Store) {
    for i in [0u64, 1, 3, 4, 5] {
        let got = s
            .get("maps", &format!("tiles/{i}.bin"))
            .unwrap()
            .to_vec()
            .unwrap();
        assert_eq!(
            got,
            common::gen(i, 10_000 + i as usize * 3000),
            "tiles/{i}.bin"
        );
    }
    assert_eq!(
        s.head("maps", "tiles/2.bin").unwrap_err().kind(),
        ErrorKind::NotFound
    );
    assert_eq!(
        s.get("maps", "multi.bin").unwrap().to_vec().unwrap(),
        common::gen(100, 20_000)
    );
    assert_eq!(
        s.get("maps", "copy.bin").unwrap().to_vec().unwrap(),
        common::gen(1, 13_000)
    );
    assert_eq!(
        s.get("maps", "ranged.bin").unwrap().to_vec().unwrap(),
        common::gen(100, 20_000)[..10_000].to_vec()
    );
    let uploads = s.list_uploads("maps").unwrap();
    assert_eq!(uploads.len(), 1);
    assert_eq!(uploads[0].key, "open.bin");
    let parts = s.list_parts("maps", &uploads[0].upload).unwrap();
    assert_eq!(parts.len(), 1);
    assert_eq!(parts[0].crc32c, crc32c::crc32c(&common::gen(200, 5000)));
    assert!(matches!(
        s.upload_status("maps", &uploads[0].upload).unwrap(),
        UploadStatus::Open { parts: 1, .. }
    ));
    assert!(s.verify().unwrap().is_clean());
}

#[test]
fn clean_fixture_opens_with_everything() {
    let dir = copy_fixture("clean");
    let s = Store::open(dir.path(), opts()).unwrap();
    check_clean(&s);
    // Still writable.
    s.put_object("maps", "new.bin", PartBody::new(&b"new"[..], 3))
        .unwrap();
    drop(s);
    check_clean(&Store::open(dir.path(), opts()).unwrap());
}

#[test]
fn torn_tail_fixture_opens_without_the_torn_put() {
    let dir = copy_fixture("torn_tail");
    let s = Store::open(dir.path(), opts()).unwrap();
    check_clean(&s);
    assert_eq!(
        s.head("maps", "late.bin").unwrap_err().kind(),
        ErrorKind::NotFound
    );
    drop(s);
    // The truncation is durable and a second open changes nothing.
    let s = Store::open(dir.path(), opts()).unwrap();
    check_clean(&s);
}

#[test]
fn corrupt_middle_fixture_is_refused() {
    let dir = copy_fixture("corrupt_middle");
    let err = Store::open(dir.path(), opts()).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Corrupt, "{err}");
    assert!(err.to_string().contains("segment 1"), "{err}");
}

#[test]
#[ignore = "writes tests/fixtures; run only on a deliberate format change"]
fn write_fixtures() {
    if std::env::var("PARTSTORE_WRITE_FIXTURES").is_err() {
        return;
    }
    let root = fixtures();
    for name in ["clean", "torn_tail", "corrupt_middle"] {
        let _ = std::fs::remove_dir_all(root.join(name));
    }
    let clean = root.join("clean");
    write_clean(&clean);
    std::fs::remove_file(clean.join("LOCK")).unwrap();

    let torn = root.join("torn_tail");
    write_clean(&torn);
    let newest = {
        let mut segs: Vec<_> = std::fs::read_dir(&torn)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "log"))
            .collect();
        segs.sort();
        segs.pop().unwrap()
    };
    let before = std::fs::read(&newest).unwrap();
    {
        let s = Store::open(&torn, opts()).unwrap();
        s.put_object("maps", "late.bin", PartBody::new(&b"late bytes"[..], 10))
            .unwrap();
    }
    let after = std::fs::read(&newest).unwrap();
    // The last non-zero byte is the end of the put's metadata record: cut
    // 10 bytes before it.
    let end = after.iter().rposition(|b| *b != 0).unwrap();
    assert_ne!(before, after, "the put must land in the newest segment");
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(&newest)
        .unwrap();
    f.set_len(end as u64 - 10).unwrap();
    std::fs::remove_file(torn.join("LOCK")).unwrap();

    let bad = root.join("corrupt_middle");
    write_clean(&bad);
    let seg1 = bad.join("seg-00000001.log");
    let mut b = std::fs::read(&seg1).unwrap();
    // The first record is the layer's metadata record: flip a payload byte.
    assert_eq!(&b[32..36], b"PSR1");
    b[32 + 24 + 2] ^= 0x40;
    std::fs::write(&seg1, b).unwrap();
    std::fs::remove_file(bad.join("LOCK")).unwrap();
}

/// Compaction's old whole-state snapshot: `clean` with garbage compacted
/// away (a snapshot record, tag 18 for `snapshot_v2`; rewritten as the
/// version-1 layout, tag 10, for `snapshot_v1`), then more records after
/// it. Both were written by the build before checkpoints.
fn compact_opts() -> Options {
    opts().compact_threshold(0.0)
}

fn write_after_snapshot(dir: &Path) {
    let s = Store::open(dir, opts()).unwrap();
    let b = common::gen(300, 7000);
    s.put_object("maps", "after.bin", PartBody::new(&b[..], b.len() as u64))
        .unwrap();
    s.delete("maps", "tiles/4.bin").unwrap();
    let up = s
        .start_multipart("maps", "open2.bin", "application/octet-stream")
        .unwrap();
    let q = common::gen(301, 3000);
    s.upload_part("maps", &up, 1, PartBody::new(&q[..], q.len() as u64))
        .unwrap();
}

fn write_compacted(dir: &Path) {
    write_clean(dir);
    let s = Store::open(dir, compact_opts()).unwrap();
    s.delete("maps", "tiles/0.bin").unwrap();
    s.delete("maps", "tiles/3.bin").unwrap();
    // Readers pin every segment, so nothing is punched: the garbage is
    // compacted by moving the live extents.
    let pins: Vec<_> = [
        "tiles/1.bin",
        "tiles/4.bin",
        "tiles/5.bin",
        "multi.bin",
        "copy.bin",
    ]
    .iter()
    .map(|k| s.get("maps", k).unwrap())
    .collect();
    let r = s.compact().unwrap();
    drop(pins);
    assert!(r.segments_removed > 0, "{r:?}");
}

/// Every record of a segment file: (offset, kind, payload).
fn records(b: &[u8]) -> Vec<(usize, u8, Vec<u8>)> {
    let mut out = Vec::new();
    let mut pos = 32usize;
    while pos + 24 <= b.len() && b[pos..pos + 24].iter().any(|x| *x != 0) {
        let len = u64::from_le_bytes(b[pos + 8..pos + 16].try_into().unwrap()) as usize;
        out.push((pos, b[pos + 4], b[pos + 24..pos + 24 + len].to_vec()));
        pos += 24 + len.div_ceil(8) * 8;
    }
    out
}

fn check_snapshot_fixture(s: &Store, v1: bool) {
    for i in [1u64, 5] {
        let got = s
            .get("maps", &format!("tiles/{i}.bin"))
            .unwrap()
            .to_vec()
            .unwrap();
        assert_eq!(
            got,
            common::gen(i, 10_000 + i as usize * 3000),
            "tiles/{i}.bin"
        );
    }
    for gone in [0, 2, 3, 4] {
        assert_eq!(
            s.head("maps", &format!("tiles/{gone}.bin"))
                .unwrap_err()
                .kind(),
            ErrorKind::NotFound
        );
    }
    assert_eq!(
        s.get("maps", "multi.bin").unwrap().to_vec().unwrap(),
        common::gen(100, 20_000)
    );
    assert_eq!(
        s.get("maps", "copy.bin").unwrap().to_vec().unwrap(),
        common::gen(1, 13_000)
    );
    assert_eq!(
        s.get("maps", "ranged.bin").unwrap().to_vec().unwrap(),
        common::gen(100, 20_000)[..10_000].to_vec()
    );
    assert_eq!(
        s.get("maps", "after.bin").unwrap().to_vec().unwrap(),
        common::gen(300, 7000)
    );
    let mut uploads = s.list_uploads("maps").unwrap();
    uploads.sort_by(|a, b| a.key.cmp(&b.key));
    assert_eq!(
        uploads.iter().map(|u| u.key.as_str()).collect::<Vec<_>>(),
        ["open.bin", "open2.bin"]
    );
    for (u, (seed, len)) in uploads.iter().zip([(200u64, 5000usize), (301, 3000)]) {
        let parts = s.list_parts("maps", &u.upload).unwrap();
        assert_eq!(parts.len(), 1);
        assert_eq!(parts[0].crc32c, crc32c::crc32c(&common::gen(seed, len)));
    }
    // A version-1 snapshot has no place for a layer's creation time.
    assert_eq!(s.layer_info("maps").unwrap().created.is_none(), v1);
    assert!(s.verify().unwrap().is_clean());
}

#[test]
fn snapshot_v2_fixture_opens_with_everything() {
    let dir = copy_fixture("snapshot_v2");
    let s = Store::open(dir.path(), opts()).unwrap();
    check_snapshot_fixture(&s, false);
    s.put_object("maps", "new.bin", PartBody::new(&b"new"[..], 3))
        .unwrap();
    drop(s);
    check_snapshot_fixture(&Store::open(dir.path(), opts()).unwrap(), false);
}

#[test]
fn snapshot_v1_fixture_opens_with_everything() {
    let dir = copy_fixture("snapshot_v1");
    let s = Store::open(dir.path(), opts()).unwrap();
    check_snapshot_fixture(&s, true);
    s.put_object("maps", "new.bin", PartBody::new(&b"new"[..], 3))
        .unwrap();
    drop(s);
    check_snapshot_fixture(&Store::open(dir.path(), opts()).unwrap(), true);
}

/// Writes `tests/fixtures/snapshot_v1` and `snapshot_v2` (stores with the
/// pre-checkpoint snapshot record). Only on a deliberate format change.
#[cfg(feature = "fuzzing")]
#[test]
#[ignore = "writes tests/fixtures; run only on a deliberate format change"]
fn write_snapshot_fixtures() {
    use partstore::internals::{frame_meta, Meta};
    if std::env::var("PARTSTORE_WRITE_FIXTURES").is_err() {
        return;
    }
    let root = fixtures();
    let v2 = root.join("snapshot_v2");
    let _ = std::fs::remove_dir_all(&v2);
    write_compacted(&v2);
    write_after_snapshot(&v2);
    std::fs::remove_file(v2.join("LOCK")).unwrap();

    // Version 1: the snapshot record rewritten in place with tag 10's
    // layout (shorter), the close's mark moved up behind it.
    let v1 = root.join("snapshot_v1");
    let _ = std::fs::remove_dir_all(&v1);
    write_compacted(&v1);
    let mut done = false;
    for e in std::fs::read_dir(&v1).unwrap() {
        let path = e.unwrap().path();
        if path.extension().is_none_or(|x| x != "log") {
            continue;
        }
        let mut b = std::fs::read(&path).unwrap();
        let recs = records(&b);
        let Some(i) = recs
            .iter()
            .position(|(_, kind, p)| *kind == 2 && p[8] == 18)
        else {
            continue;
        };
        assert_eq!(
            i + 2,
            recs.len(),
            "the snapshot is followed by the mark only"
        );
        let (at, _, payload) = &recs[i];
        let end = recs[i + 1].0 + 24 + recs[i + 1].2.len().div_ceil(8) * 8;
        let Ok(Meta::Snapshot(mut snap)) = Meta::decode(&payload[8..]) else {
            panic!("not a snapshot");
        };
        snap.legacy = true;
        let mut p = payload[..8].to_vec();
        p.extend_from_slice(&Meta::Snapshot(snap).encode());
        assert_eq!(p[8], 10);
        let frame = frame_meta(&p);
        let mark_at = at + frame.len();
        let mut m = (mark_at as u64).to_le_bytes().to_vec();
        m.extend_from_slice(&Meta::Mark.encode());
        let mark = frame_meta(&m);
        b[*at..end].fill(0);
        b[*at..mark_at].copy_from_slice(&frame);
        b[mark_at..mark_at + mark.len()].copy_from_slice(&mark);
        std::fs::write(&path, b).unwrap();
        done = true;
    }
    assert!(done, "no snapshot record found");
    write_after_snapshot(&v1);
    std::fs::remove_file(v1.join("LOCK")).unwrap();
}

/// Data bytes and garbage of every segment.
fn per_segment(s: &Store) -> Vec<(u64, u64, u64)> {
    s.stats()
        .per_segment
        .iter()
        .map(|g| (g.id, g.data_bytes, g.garbage_bytes))
        .collect()
}

fn check_checkpoint_v20(s: &Store) {
    for i in 0..14u64 {
        let key = format!("tiles/{i:02}.bin");
        let deleted = i == 0 || (i % 3 == 1 && i < 12);
        match s.get("maps", &key) {
            Ok(blob) => {
                assert!(!deleted, "{key} was deleted");
                let mut got = Vec::new();
                std::io::Read::read_to_end(&mut blob.reader(), &mut got).unwrap();
                assert_eq!(got, common::gen(i, 9_000 + i as usize * 1000), "{key}");
            }
            Err(e) => {
                assert!(deleted, "{key}: {e}");
                assert_eq!(e.kind(), ErrorKind::NotFound, "{key}: {e}");
            }
        }
    }
    assert!(s.verify().unwrap().is_clean());
}

/// A store whose checkpoint record is tag 20 (no segment counts) opens
/// from it (the segments before its base are walked for their data
/// bytes, as before), with the same figures as an open that scans every
/// record; its next checkpoint (tag 21, with counts) opens to the same.
#[test]
fn checkpoint_without_segment_counts_opens() {
    let dir = copy_fixture("checkpoint_v20");
    let tags = |dir: &Path| -> Vec<u8> {
        common::segment_files(dir)
            .iter()
            .flat_map(|p| records(&std::fs::read(p).unwrap()))
            .filter(|r| r.1 == 2 && matches!(r.2.get(8), Some(20 | 21)))
            .map(|r| r.2[8])
            .collect()
    };
    assert_eq!(tags(dir.path()), vec![20], "the fixture's checkpoint");
    let s = Store::open(dir.path(), opts()).unwrap();
    check_checkpoint_v20(&s);
    let from_hint = per_segment(&s);
    assert!(from_hint.len() >= 4, "{from_hint:?}");
    drop(s);
    let pos = dir.path().join("checkpoint.pos");
    let hint = std::fs::read(&pos).unwrap();
    std::fs::remove_file(&pos).unwrap();
    let s = Store::open(dir.path(), opts()).unwrap();
    assert_eq!(per_segment(&s), from_hint, "a walk of every record");
    drop(s);
    std::fs::write(&pos, &hint).unwrap();

    // (Once the count after the open is done: before it, the segments it
    // counts have no counts to write.)
    let s = Store::open(dir.path(), opts()).unwrap();
    per_segment(&s);
    s.checkpoint().unwrap();
    let live = per_segment(&s);
    drop(s);
    assert_eq!(tags(dir.path()), vec![20, 21]);
    let s = Store::open(dir.path(), opts()).unwrap();
    check_checkpoint_v20(&s);
    assert_eq!(per_segment(&s), live);
}
