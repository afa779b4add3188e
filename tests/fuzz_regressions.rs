//! Regression tests for what the fuzz targets under `fuzz/` found, one
//! named test per finding, each with the bug it guards against. They use
//! the internals that feature `fuzzing` exposes:
//! `cargo test --features fuzzing --test fuzz_regressions` (.ci/run does).
#![cfg(feature = "fuzzing")]

use partstore::internals::{
    ExtentDef, Index, LayerSnap, Meta, PartSnap, Piece, Snapshot, UploadSnap,
};
use partstore::ErrorKind;

fn restore_kind(s: &Snapshot) -> Option<ErrorKind> {
    Index::restore(s).err().map(|e| e.kind())
}

/// Found by `record_decode` (crash-3fca5b90…): a snapshot record naming the
/// layers "\0" and "" restored into an index whose layers no call can ever
/// name (every query rejects the id as BadRequest), so the state was
/// inconsistent with any sequence of records. `Index::restore` checked the
/// structure of a snapshot but not the SPEC's rules for names. Fixed:
/// restore checks layer ids, keys and part numbers, and a name that breaks a
/// rule makes the snapshot Corrupt.
#[test]
fn snapshot_with_invalid_layer_id_is_corrupt() {
    let bytes = hex("0a2700f8ffffff00000200000001000000000000000000000000000000000000000000000000");
    let Ok(Meta::Snapshot(s)) = Meta::decode(&bytes) else {
        panic!("the crash input decodes as a snapshot record");
    };
    assert_eq!(s.layers.len(), 2);
    assert_eq!(restore_kind(&s), Some(ErrorKind::Corrupt));
    // And through `apply`, as replay does: the index stays as it was.
    let mut ix = Index::new();
    assert_eq!(
        ix.apply(Meta::Snapshot(s)).map_err(|e| e.kind()),
        Err(ErrorKind::Corrupt)
    );
    assert!(ix == Index::new());
}

/// A valid snapshot: one layer, one extent held by one open part.
fn snapshot() -> Snapshot {
    let piece = Piece {
        extent: 1,
        offset: 0,
        len: 10,
    };
    Snapshot {
        max_id: 3,
        layers: vec![LayerSnap {
            id: "l".into(),
            ..LayerSnap::default()
        }],
        extents: vec![ExtentDef {
            id: 1,
            segment: 1,
            offset: 56,
            len: 10,
            block_crcs: vec![0],
        }],
        uploads: vec![UploadSnap {
            id: [1; 16],
            layer: "l".into(),
            key: "k".into(),
            content_type: "a/b".into(),
            content_encoding: None,
            started_ms: 1,
            last_activity_ms: 1,
            completed: false,
            parts: vec![PartSnap {
                number: 1,
                id: 2,
                size: 10,
                crc32c: 0,
                time_ms: 1,
                pieces: vec![piece],
                ..PartSnap::default()
            }],
            ..UploadSnap::default()
        }],
        objects: vec![],
        ..Snapshot::default()
    }
}

/// Same finding, the other names: keys of objects and uploads and part
/// numbers outside the SPEC's rules, a part number listed twice (which
/// counted the extent's reference twice but kept one part, so the extent
/// could never be freed), and a completed upload that still lists parts.
#[test]
fn snapshot_breaking_a_rule_is_corrupt() {
    let ok = snapshot();
    let ix = Index::restore(&ok).expect("valid snapshot");
    assert_eq!(ix.extent(1).map(|e| e.refs), Some(1));

    let mut s = ok.clone();
    s.uploads[0].key = "/bad".into();
    assert_eq!(restore_kind(&s), Some(ErrorKind::Corrupt), "upload key");

    let mut s = ok.clone();
    s.uploads[0].parts[0].number = 0;
    assert_eq!(restore_kind(&s), Some(ErrorKind::Corrupt), "part number 0");

    let mut s = ok.clone();
    let again = s.uploads[0].parts[0].clone();
    s.uploads[0].parts.push(again);
    assert_eq!(
        restore_kind(&s),
        Some(ErrorKind::Corrupt),
        "part listed twice"
    );

    let mut s = ok.clone();
    s.uploads[0].completed = true;
    assert_eq!(
        restore_kind(&s),
        Some(ErrorKind::Corrupt),
        "completed with parts"
    );

    let mut s = ok;
    s.uploads[0].parts.clear();
    s.objects.push((
        "l".into(),
        partstore::internals::ObjectSnap {
            key: "a//b".into(),
            size: 10,
            content_type: "a/b".into(),
            content_encoding: None,
            last_modified_ms: 1,
            crc32c: 0,
            etag: "e".into(),
            part_count: 1,
            pieces: vec![Piece {
                extent: 1,
                offset: 0,
                len: 10,
            }],
            ..Default::default()
        },
    ));
    assert_eq!(restore_kind(&s), Some(ErrorKind::Corrupt), "object key");
}

fn hex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex"))
        .collect()
}

/// Found by `recover_store` (crash-7cf4aec1…, then crash-475c53eb…), in
/// `Store::open` (its segment scan), not fixed here: reported. Non-zero
/// bytes in the newest segment *past* the zero header that ends its records
/// (e.g. a torn write whose first page was lost but a later one landed) are
/// neither a record nor a torn tail, so `open` leaves them in place and
/// appends new records up to them. Then:
/// - once a later append rotates to a new segment, the old one is sealed
///   with those bytes right after its last record, and every later `open`
///   fails with Corrupt ("bad record header"), in every recovery mode: one
///   stray byte in unwritten space makes a store that opened and
///   acknowledged writes unopenable;
/// - before that, with `RecoveryMode::Strict`, the next `open` already
///   fails ("torn record") after a clean close.
///
/// Expected: `open` clears such bytes (or rejects them up front in Strict
/// mode), so a store that opened always reopens.
///
/// Fixed in `segment::scan`: in the newest segment, non-zero bytes past the
/// end of the records are a torn tail: truncated (zeroed) at open, or
/// `Corrupt` in Strict mode.
#[test]
fn garbage_past_the_end_of_records_is_cleared_at_open() {
    use partstore::{LayerConfig, Options, PartBody, RecoveryMode, Store};
    for mode in [RecoveryMode::TruncateTornTail, RecoveryMode::Strict] {
        let dir = tempfile::tempdir().expect("tempdir");
        let opts = || Options::default().segment_size(64 << 10).recovery(mode);
        {
            let s = Store::open(dir.path(), opts()).expect("open");
            s.create_layer("l", LayerConfig::default()).expect("layer");
            s.put_object("l", "a", PartBody::new(&b"first"[..], 5))
                .expect("put");
        }
        // Garbage from 64 bytes past the last record to the end of the file.
        let newest = newest_segment(dir.path());
        let mut bytes = std::fs::read(&newest).expect("read");
        let end = bytes.iter().rposition(|b| *b != 0).expect("records") + 1;
        let from = end.div_ceil(8) * 8 + 64;
        bytes[from..].iter_mut().for_each(|b| *b = 0xa5);
        std::fs::write(&newest, &bytes).expect("write");
        let big = vec![9u8; 100 << 10];
        if mode == RecoveryMode::Strict {
            let e = Store::open(dir.path(), opts()).expect_err("Strict refuses a torn tail");
            assert_eq!(e.kind(), partstore::ErrorKind::Corrupt, "{e}");
            continue;
        }
        {
            let s = Store::open(dir.path(), opts()).expect("garbage past the end opens");
            s.put_object("l", "b", PartBody::new(&[7u8; 200][..], 200))
                .expect("put");
            if mode != RecoveryMode::Strict {
                // Does not fit: seals the segment, garbage and all.
                s.put_object("l", "big", PartBody::new(&big[..], big.len() as u64))
                    .expect("put");
            }
        }
        let s = Store::open(dir.path(), opts()).unwrap_or_else(|e| {
            panic!("{mode:?}: a store that opened and closed cleanly reopens: {e}")
        });
        assert_eq!(
            s.get("l", "b").and_then(|b| b.to_vec()).expect("b"),
            vec![7u8; 200]
        );
    }
}

fn newest_segment(dir: &std::path::Path) -> std::path::PathBuf {
    let mut segs: Vec<_> = std::fs::read_dir(dir)
        .expect("ls")
        .map(|e| e.expect("entry").path())
        .filter(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("seg-"))
        })
        .collect();
    segs.sort();
    segs.pop().expect("a segment")
}

/// Found by review while writing `recover_store`'s CRC-refreshing mutations
/// (a record header whose length field is damaged but whose CRC is valid
/// again), not by a fuzzing run: the
/// framed length of a record, header + length rounded up to 8, overflowed
/// `u64` for lengths within 31 of `u64::MAX`. With overflow checks (tests,
/// fuzzing) `open` panicked in `framed_len`; without them the length
/// wrapped to a few bytes and the scan went on inside the record. Fixed:
/// `framed_len` saturates, so such a record runs past the end of its
/// segment and is torn (newest segment) or Corrupt.
#[test]
fn record_length_near_u64_max_does_not_overflow() {
    use partstore::internals::{framed_len, RecordHeader, RecordKind};
    use partstore::{LayerConfig, Options, RecoveryMode, Store};
    assert_eq!(framed_len(u64::MAX), u64::MAX);
    assert_eq!(framed_len(u64::MAX - 7), u64::MAX);
    for kind in [RecordKind::Extent, RecordKind::Meta] {
        for len in [u64::MAX, u64::MAX - 7, u64::MAX - 23, u64::MAX - 31] {
            let dir = tempfile::tempdir().expect("tempdir");
            {
                let s = Store::open(dir.path(), Options::default().segment_size(64 << 10))
                    .expect("open");
                s.create_layer("l", LayerConfig::default()).expect("layer");
            }
            let newest = newest_segment(dir.path());
            let mut bytes = std::fs::read(&newest).expect("read");
            let end = (bytes.iter().rposition(|b| *b != 0).expect("records") + 1).div_ceil(8) * 8;
            let h = RecordHeader {
                kind,
                len,
                payload_crc: 0,
            };
            bytes[end..end + 24].copy_from_slice(&h.encode());
            std::fs::write(&newest, &bytes).expect("write");
            // Strict: a torn record is Corrupt. Then the default mode cuts it.
            let e = Store::open(
                dir.path(),
                Options::default().recovery(RecoveryMode::Strict),
            )
            .expect_err("Strict refuses a torn record");
            assert_eq!(e.kind(), partstore::ErrorKind::Corrupt, "{e}");
            let s = Store::open(dir.path(), Options::default()).expect("torn tail is cut");
            assert!(s.list_layers().iter().any(|(id, _)| id == "l"));
        }
    }
}
