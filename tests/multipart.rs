//! Multipart and copy roundtrips: whatever parts, sizes, orders, overwrites,
//! subsets and copies a client uses, the published object holds exactly the
//! bytes it should (checked against a reference `Vec` and reference CRC32Cs),
//! through `read_range`, `Blob::reader()` and a reopen of the store; pinned
//! blobs keep their snapshot; upload bookkeeping (status, listings, part
//! paging, stats) tells the truth.

mod common;

use std::collections::BTreeSet;
use std::io::{Read, Seek, SeekFrom};

use partstore::*;

const MIB: usize = 1 << 20;
const CT: &str = "application/octet-stream";
const L: &str = "layer";

fn open(dir: &std::path::Path) -> Store {
    Store::open(dir, Options::default().segment_size(32 << 20)).unwrap()
}

fn new_store(dir: &std::path::Path) -> Store {
    let s = open(dir);
    s.create_layer(L, LayerConfig::default()).unwrap();
    s
}

fn part(s: &Store, up: &UploadId, n: u32, bytes: &[u8]) -> PartInfo {
    let p = s
        .upload_part(L, up, n, PartBody::new(bytes, bytes.len() as u64))
        .unwrap();
    assert_eq!(p.part_number, n);
    assert_eq!(p.size, bytes.len() as u64, "size of part {n}");
    assert_eq!(p.crc32c, crc32c::crc32c(bytes), "crc of part {n}");
    p
}

fn put(s: &Store, key: &str, bytes: &[u8]) -> ObjectInfo {
    let o = s
        .put_object(L, key, PartBody::new(bytes, bytes.len() as u64))
        .unwrap();
    assert_eq!(o.size, bytes.len() as u64);
    assert_eq!(o.crc32c, crc32c::crc32c(bytes));
    o
}

fn range(s: &str) -> ByteRange {
    s.parse().unwrap()
}

fn read_range(blob: &Blob, r: &str) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    for s in blob.read_range(range(r))? {
        out.extend_from_slice(&s);
    }
    Ok(out)
}

/// The object's bytes equal `expected` (without printing megabytes on
/// failure), and its info carries their size and CRC32C.
fn assert_object(s: &Store, key: &str, expected: &[u8]) {
    let blob = s.get(L, key).unwrap();
    assert_eq!(blob.size(), expected.len() as u64, "size of {key}");
    assert_eq!(
        blob.info().crc32c,
        crc32c::crc32c(expected),
        "full-object crc32c of {key}"
    );
    let got = blob.to_vec().unwrap();
    assert_eq!(got.len(), expected.len(), "length read back of {key}");
    if let Some(i) = (0..got.len()).find(|i| got[*i] != expected[*i]) {
        panic!("{key}: first differing byte at offset {i}");
    }
    assert_eq!(s.head(L, key).unwrap(), *blob.info());
}

fn assert_bytes_eq(got: &[u8], expected: &[u8], what: &str) {
    assert_eq!(got.len(), expected.len(), "length of {what}");
    if let Some(i) = (0..got.len()).find(|i| got[*i] != expected[*i]) {
        panic!("{what}: first differing byte at offset {i}");
    }
}

fn refs(parts: &[&PartInfo]) -> Vec<PartRef> {
    parts
        .iter()
        .map(|p| PartRef {
            number: p.part_number,
            id: p.id.clone(),
        })
        .collect()
}

#[test]
fn parts_uploaded_out_of_order() {
    let dir = tempfile::tempdir().unwrap();
    let s = new_store(dir.path());
    let p1 = common::gen(1, 5 * MIB);
    let p2 = common::gen(2, 6 * MIB);
    let p3 = common::gen(3, 5 * MIB);
    let p4 = common::gen(4, 12_345);
    let up = s.start_multipart(L, "ooo", CT).unwrap();
    let i3 = part(&s, &up, 3, &p3);
    let i1 = part(&s, &up, 1, &p1);
    let i4 = part(&s, &up, 4, &p4);
    let i2 = part(&s, &up, 2, &p2);
    let listed = s.list_parts(L, &up).unwrap();
    let numbers: Vec<u32> = listed.iter().map(|p| p.part_number).collect();
    assert_eq!(numbers, vec![1, 2, 3, 4]);
    for (l, i) in listed.iter().zip([&i1, &i2, &i3, &i4]) {
        assert_eq!((&l.id, l.size, l.crc32c), (&i.id, i.size, i.crc32c));
    }
    let expected = [p1, p2, p3, p4].concat();
    let o = s.complete_multipart(L, &up).unwrap();
    assert_eq!(o.size, expected.len() as u64);
    assert_eq!(o.part_count, 4);
    assert_eq!(o.crc32c, crc32c::crc32c(&expected));
    assert_object(&s, "ooo", &expected);
    assert!(s.verify().unwrap().is_clean());
}

#[test]
fn overwritten_part_gets_new_id_and_new_bytes_win() {
    let dir = tempfile::tempdir().unwrap();
    let s = new_store(dir.path());
    let old = common::gen(10, 5 * MIB);
    let new = common::gen(11, 6 * MIB);
    let p2 = common::gen(12, 777);
    let up = s.start_multipart(L, "ow", CT).unwrap();
    let first = part(&s, &up, 1, &old);
    part(&s, &up, 2, &p2);
    let second = part(&s, &up, 1, &new);
    assert_ne!(first.id, second.id, "a new upload of part 1 gets a new id");
    let listed = s.list_parts(L, &up).unwrap();
    assert_eq!(listed.len(), 2);
    assert_eq!(listed[0].id, second.id);
    assert_eq!(listed[0].size, new.len() as u64);
    assert_eq!(listed[0].crc32c, crc32c::crc32c(&new));
    match s.upload_status(L, &up).unwrap() {
        UploadStatus::Open { parts, bytes, .. } => {
            assert_eq!((parts, bytes), (2, (new.len() + p2.len()) as u64))
        }
        other => panic!("expected an open upload, got {other:?}"),
    }
    // Overwrite again with the old bytes' length but other content, then
    // with the final bytes: only the last upload counts.
    let third = part(&s, &up, 1, &common::gen(13, 5 * MIB));
    let fourth = part(&s, &up, 1, &new);
    assert_ne!(third.id, fourth.id);
    assert_ne!(second.id, fourth.id);
    let o = s.complete_multipart(L, &up).unwrap();
    let expected = [new.clone(), p2].concat();
    assert_eq!(o.crc32c, crc32c::crc32c(&expected));
    assert_object(&s, "ow", &expected);
    // The old bytes appear nowhere in the object.
    let got = s.get(L, "ow").unwrap().to_vec().unwrap();
    let needle = &old[MIB..MIB + 64];
    assert!(!got.windows(64).any(|w| w == needle));
    drop(s);
    let s = open(dir.path());
    assert_object(&s, "ow", &expected);
}

#[test]
fn five_mib_parts_a_96_mib_part_and_a_one_byte_last_part() {
    let dir = tempfile::tempdir().unwrap();
    let sizes = [5 * MIB, 96 * MIB, 5 * MIB, 1];
    let parts: Vec<Vec<u8>> = sizes
        .iter()
        .enumerate()
        .map(|(i, n)| common::gen(100 + i as u64, *n))
        .collect();
    let expected = parts.concat();
    let size = expected.len() as u64;
    {
        let s = new_store(dir.path());
        let up = s.start_multipart(L, "big/object.bin", CT).unwrap();
        for (i, p) in parts.iter().enumerate().rev() {
            part(&s, &up, i as u32 + 1, p);
        }
        match s.upload_status(L, &up).unwrap() {
            UploadStatus::Open { parts, bytes, .. } => {
                assert_eq!((parts, bytes), (4, size));
            }
            other => panic!("expected an open upload, got {other:?}"),
        }
        let o = s.complete_multipart(L, &up).unwrap();
        assert_eq!(o.size, size);
        assert_eq!(o.part_count, 4);
        assert_eq!(o.crc32c, crc32c::crc32c(&expected));
        assert_eq!(s.upload_status(L, &up).unwrap(), UploadStatus::Completed);
        assert_object(&s, "big/object.bin", &expected);
    }
    let s = open(dir.path());
    assert_object(&s, "big/object.bin", &expected);
    let blob = s.get(L, "big/object.bin").unwrap();

    // Ranges around every part boundary and every 1 MiB block boundary of
    // the small parts, plus suffix, open and clamped ranges.
    let mut cases: Vec<(String, u64, u64)> = Vec::new(); // (spec, first, last)
    let mut boundaries = vec![];
    let mut at = 0u64;
    for n in sizes {
        at += n as u64;
        boundaries.push(at);
    }
    boundaries.pop(); // the end
    for k in 1..=6u64 {
        boundaries.push(k * MIB as u64);
        boundaries.push(size - k * MIB as u64);
    }
    for b in boundaries {
        for (before, after) in [(1u64, 0u64), (1, 1), (3, 2), (0, 0), (4096, 4096)] {
            let first = b - before;
            let last = (b + after).min(size - 1);
            cases.push((format!("bytes={first}-{last}"), first, last));
        }
        let first = b.saturating_sub(MIB as u64 + 5);
        let last = (b + MIB as u64 + 5).min(size - 1);
        cases.push((format!("bytes={first}-{last}"), first, last));
    }
    let m = MIB as u64;
    cases.extend([
        ("bytes=0-0".to_string(), 0, 0),
        (format!("bytes={}-", size - 1), size - 1, size - 1),
        ("bytes=-1".to_string(), size - 1, size - 1),
        (format!("bytes=-{}", m + 3), size - m - 3, size - 1),
        (
            format!("bytes={}-", size - 2 * m - 17),
            size - 2 * m - 17,
            size - 1,
        ),
        (
            format!("bytes={}-{}", 5 * m - 9, size + 1000),
            5 * m - 9,
            size - 1,
        ),
        (format!("bytes={}-{}", 3 * m, 8 * m - 1), 3 * m, 8 * m - 1),
        (format!("bytes={}-{}", 100 * m, 102 * m), 100 * m, 102 * m),
    ]);
    let mut x = 0x1234_5678_9abc_def1u64;
    for _ in 0..40 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let first = x % size;
        let len = (x >> 20) % (2 * m);
        let last = (first + len).min(size - 1);
        cases.push((format!("bytes={first}-{last}"), first, last));
    }
    for (spec, first, last) in &cases {
        let got = read_range(&blob, spec).unwrap();
        assert_bytes_eq(
            &got,
            &expected[*first as usize..=*last as usize],
            &format!("read_range {spec}"),
        );
    }
    for bad in [
        format!("bytes={size}-"),
        format!("bytes={}-{}", size + 5, size + 10),
        "bytes=-0".to_string(),
        "bytes=10-5".to_string(),
    ] {
        // Refused when parsed or when applied to the object, either way
        // as RangeNotSatisfiable.
        let err = match bad.parse::<ByteRange>() {
            Ok(r) => blob.read_range(r).unwrap_err(),
            Err(e) => e,
        };
        assert_eq!(err.kind(), ErrorKind::RangeNotSatisfiable, "{bad}");
    }

    // Read + Seek.
    let mut r = blob.reader();
    let mut all = Vec::new();
    r.read_to_end(&mut all).unwrap();
    assert_bytes_eq(&all, &expected, "reader.read_to_end");
    drop(all);
    let b1 = 5 * m;
    let b2 = 101 * m;
    let mut buf = vec![0u8; 3 * MIB];
    for (from, len) in [
        (b1 - 10, 20usize),
        (b2 - MIB as u64 - 1, 2 * MIB + 2),
        (0, 1),
        (size - 3, 3),
        (b1 + 12345, 3 * MIB),
    ] {
        assert_eq!(r.seek(SeekFrom::Start(from)).unwrap(), from);
        r.read_exact(&mut buf[..len]).unwrap();
        assert_bytes_eq(
            &buf[..len],
            &expected[from as usize..from as usize + len],
            &format!("reader at {from} len {len}"),
        );
    }
    assert_eq!(r.seek(SeekFrom::End(-5)).unwrap(), size - 5);
    let mut tail = Vec::new();
    r.read_to_end(&mut tail).unwrap();
    assert_eq!(tail, &expected[expected.len() - 5..]);
    assert_eq!(r.seek(SeekFrom::Start(b2 + 7)).unwrap(), b2 + 7);
    assert_eq!(r.seek(SeekFrom::Current(-14)).unwrap(), b2 - 7);
    let mut small = [0u8; 14];
    r.read_exact(&mut small).unwrap();
    assert_eq!(&small[..], &expected[b2 as usize - 7..b2 as usize + 7]);
    assert_eq!(r.seek(SeekFrom::Start(size + 10)).unwrap(), size + 10);
    assert_eq!(r.read(&mut small).unwrap(), 0, "read past the end");
    assert!(r.seek(SeekFrom::Current(-(size as i64) - 11)).is_err());
    // Small reads crossing a part boundary.
    r.seek(SeekFrom::Start(b1 - 5000)).unwrap();
    let mut got = Vec::new();
    let mut chunk = [0u8; 777];
    while got.len() < 10_000 {
        let n = r.read(&mut chunk).unwrap();
        assert!(n > 0);
        got.extend_from_slice(&chunk[..n]);
    }
    assert_bytes_eq(
        &got[..10_000],
        &expected[b1 as usize - 5000..b1 as usize + 5000],
        "small reads across a part boundary",
    );
    assert!(s.verify().unwrap().is_clean());
}

#[test]
fn complete_with_a_shuffled_subset_and_a_stale_id() {
    let dir = tempfile::tempdir().unwrap();
    let s = new_store(dir.path());
    let d1 = common::gen(21, 5 * MIB);
    let d2_old = common::gen(22, 5 * MIB);
    let d2 = common::gen(23, 7 * MIB);
    let d3 = common::gen(24, 3 * MIB + 7);
    let d4 = common::gen(25, 5 * MIB);
    let d5 = common::gen(26, 99);
    let up = s.start_multipart(L, "subset", CT).unwrap();
    let p1 = part(&s, &up, 1, &d1);
    let p2_old = part(&s, &up, 2, &d2_old);
    let p3 = part(&s, &up, 3, &d3);
    let p4 = part(&s, &up, 4, &d4);
    let p5 = part(&s, &up, 5, &d5);
    let p2 = part(&s, &up, 2, &d2);
    let before = s.list_parts(L, &up).unwrap();
    let status_before = s.upload_status(L, &up).unwrap();

    let bad_lists: Vec<(&str, Vec<PartRef>)> = vec![
        ("stale id", refs(&[&p3, &p2_old, &p1])),
        (
            "unknown id",
            vec![
                PartRef {
                    number: 1,
                    id: "ffffffffffffffff".into(),
                },
                refs(&[&p2])[0].clone(),
            ],
        ),
        ("id of another number", {
            let mut r = refs(&[&p1, &p2, &p3]);
            r[2].id = p4.id.clone();
            r
        }),
        ("duplicate number", refs(&[&p1, &p2, &p2, &p3])),
        ("missing number", refs(&[&p1, &p3])),
        ("not starting at 1", refs(&[&p2, &p3])),
        ("empty", vec![]),
        ("non-last part under 5 MiB", refs(&[&p1, &p2, &p3, &p4])),
    ];
    for (what, list) in &bad_lists {
        let err = s.complete_multipart_with(L, &up, list).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::BadRequest, "{what}: {err}");
        // Nothing published, the upload stays open and unchanged.
        assert_eq!(
            s.head(L, "subset").unwrap_err().kind(),
            ErrorKind::NotFound,
            "{what}"
        );
        assert_eq!(s.list_parts(L, &up).unwrap(), before, "{what}");
        assert_eq!(s.upload_status(L, &up).unwrap(), status_before, "{what}");
        assert_eq!(s.list_uploads(L).unwrap().len(), 1, "{what}");
    }

    // The right ids, shuffled, leaving parts 4 and 5 out.
    let o = s
        .complete_multipart_with(L, &up, &refs(&[&p3, &p1, &p2]))
        .unwrap();
    let expected = [d1, d2, d3].concat();
    assert_eq!(o.size, expected.len() as u64);
    assert_eq!(o.part_count, 3);
    assert_eq!(o.crc32c, crc32c::crc32c(&expected));
    assert_object(&s, "subset", &expected);
    assert_eq!(s.upload_status(L, &up).unwrap(), UploadStatus::Completed);
    assert!(s.list_uploads(L).unwrap().is_empty());
    // Parts left out (4, 5) and the replaced part 2 are garbage now: only
    // the object's bytes are live.
    let st = s.stats();
    assert_eq!(st.live_bytes, expected.len() as u64, "{st:?}");
    assert!(
        st.garbage_bytes >= (d4.len() + p5.size as usize + d2_old.len()) as u64,
        "{st:?}"
    );
    assert_eq!((st.objects, st.uploads), (1, 0));
    // After completion the upload takes nothing more.
    for err in [
        s.complete_multipart(L, &up).unwrap_err(),
        s.upload_part(L, &up, 6, PartBody::new(&b"x"[..], 1))
            .unwrap_err(),
        s.abort_multipart(L, &up).unwrap_err(),
    ] {
        assert_eq!(err.kind(), ErrorKind::BadRequest, "{err}");
    }
    drop(s);
    let s = open(dir.path());
    assert_object(&s, "subset", &expected);
    assert_eq!(s.upload_status(L, &up).unwrap(), UploadStatus::Completed);
    assert!(s.verify().unwrap().is_clean());
}

#[test]
fn objects_and_open_uploads_survive_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let single = common::gen(31, 300_000);
    let m1 = common::gen(32, 5 * MIB);
    let m2 = common::gen(33, 1234);
    let open1 = common::gen(34, 6 * MIB);
    let open2 = common::gen(35, 5 * MIB);
    let open3 = common::gen(36, 4321);
    let (up_a, up_b, infos, parts_a, parts_b, uploads, status_a, status_b);
    {
        let s = new_store(dir.path());
        put(&s, "a/single", &single);
        let up = s.start_multipart(L, "a/multi", CT).unwrap();
        part(&s, &up, 1, &m1);
        part(&s, &up, 2, &m2);
        s.complete_multipart(L, &up).unwrap();
        s.copy_object(L, "a/copy", "a/multi").unwrap();
        put(&s, "a/empty", &[]);
        up_a = s.start_multipart(L, "b/open-a", CT).unwrap();
        let a2 = part(&s, &up_a, 2, &open2);
        let a1 = part(&s, &up_a, 1, &open1);
        up_b = s
            .start_multipart(L, "b/open-b", UploadOptions::new("text/plain"))
            .unwrap();
        let b1 = part(&s, &up_b, 1, &open3);
        parts_a = s.list_parts(L, &up_a).unwrap();
        parts_b = s.list_parts(L, &up_b).unwrap();
        assert_eq!(
            parts_a
                .iter()
                .map(|p| (p.part_number, p.id.clone(), p.size, p.crc32c))
                .collect::<Vec<_>>(),
            [a1, a2]
                .iter()
                .map(|p| (p.part_number, p.id.clone(), p.size, p.crc32c))
                .collect::<Vec<_>>()
        );
        assert_eq!(parts_b.len(), 1);
        assert_eq!((&parts_b[0].id, parts_b[0].crc32c), (&b1.id, b1.crc32c));
        infos = ["a/single", "a/multi", "a/copy", "a/empty"].map(|k| s.head(L, k).unwrap());
        uploads = s.list_uploads(L).unwrap();
        status_a = s.upload_status(L, &up_a).unwrap();
        status_b = s.upload_status(L, &up_b).unwrap();
        assert_eq!((s.stats().objects, s.stats().uploads), (4, 2));
    }
    let s = open(dir.path());
    assert_eq!(
        ["a/single", "a/multi", "a/copy", "a/empty"].map(|k| s.head(L, k).unwrap()),
        infos
    );
    let multi = [m1.clone(), m2.clone()].concat();
    assert_object(&s, "a/single", &single);
    assert_object(&s, "a/multi", &multi);
    assert_object(&s, "a/copy", &multi);
    assert_object(&s, "a/empty", &[]);
    assert_eq!(s.list_uploads(L).unwrap(), uploads);
    assert_eq!(s.list_parts(L, &up_a).unwrap(), parts_a);
    assert_eq!(s.list_parts(L, &up_b).unwrap(), parts_b);
    assert_eq!(s.upload_status(L, &up_a).unwrap(), status_a);
    assert_eq!(s.upload_status(L, &up_b).unwrap(), status_b);
    let st = s.stats();
    assert_eq!((st.objects, st.uploads), (4, 2));
    assert!(s.verify().unwrap().is_clean());

    // The reopened uploads keep working: finish both.
    let a3 = part(&s, &up_a, 3, b"tail");
    let o = s.complete_multipart(L, &up_a).unwrap();
    let expected_a = [open1, open2.clone(), b"tail".to_vec()].concat();
    assert_eq!(o.crc32c, crc32c::crc32c(&expected_a));
    assert_eq!(a3.crc32c, crc32c::crc32c(b"tail"));
    assert_object(&s, "b/open-a", &expected_a);
    let o = s
        .complete_multipart_with(L, &up_b, &refs(&[&parts_b[0]]))
        .unwrap();
    assert_eq!(o.content_type, "text/plain");
    assert_object(&s, "b/open-b", &open3);
    drop(s);
    let s = open(dir.path());
    assert_object(&s, "b/open-a", &expected_a);
    assert_object(&s, "b/open-b", &open3);
    assert!(s.list_uploads(L).unwrap().is_empty());
    assert_eq!((s.stats().objects, s.stats().uploads), (6, 0));
}

#[test]
fn pinned_blob_keeps_old_bytes_after_delete_and_overwrite() {
    let dir = tempfile::tempdir().unwrap();
    let s = new_store(dir.path());
    let v1 = common::gen(41, 2 * MIB + 3);
    let v2 = common::gen(42, 3 * MIB + 5);
    let v3a = common::gen(43, 5 * MIB);
    let v3b = common::gen(44, 100);
    put(&s, "k", &v1);
    let b1 = s.get(L, "k").unwrap();
    s.delete(L, "k").unwrap();
    s.delete(L, "k").unwrap(); // idempotent
    assert_eq!(s.get(L, "k").unwrap_err().kind(), ErrorKind::NotFound);
    assert_bytes_eq(&b1.to_vec().unwrap(), &v1, "blob after delete");
    put(&s, "k", &v2);
    let b2 = s.get(L, "k").unwrap();
    let up = s.start_multipart(L, "k", CT).unwrap();
    part(&s, &up, 1, &v3a);
    part(&s, &up, 2, &v3b);
    s.complete_multipart(L, &up).unwrap();
    let v3 = [v3a, v3b].concat();
    assert_object(&s, "k", &v3);
    assert_bytes_eq(&b1.to_vec().unwrap(), &v1, "first blob after overwrite");
    assert_bytes_eq(&b2.to_vec().unwrap(), &v2, "second blob after overwrite");
    assert_eq!(b2.info().crc32c, crc32c::crc32c(&v2));
    assert_bytes_eq(
        &read_range(&b2, "bytes=1048570-2097160").unwrap(),
        &v2[1_048_570..=2_097_160],
        "range of pinned blob",
    );
    let mut r = b1.reader();
    r.seek(SeekFrom::End(-10)).unwrap();
    let mut t = Vec::new();
    r.read_to_end(&mut t).unwrap();
    assert_eq!(t, &v1[v1.len() - 10..]);
    // Overwriting by put again, then deleting, still leaves the pins intact.
    put(&s, "k", b"short");
    s.delete(L, "k").unwrap();
    assert_bytes_eq(&b1.to_vec().unwrap(), &v1, "first blob at the end");
    assert_bytes_eq(&b2.to_vec().unwrap(), &v2, "second blob at the end");
}

#[test]
fn upload_status_list_uploads_and_stats() {
    let dir = tempfile::tempdir().unwrap();
    let s = new_store(dir.path());
    assert_eq!((s.stats().objects, s.stats().uploads), (0, 0));
    let up1 = s.start_multipart(L, "u/one", CT).unwrap();
    let up2 = s.start_multipart(L, "u/two", CT).unwrap();
    assert_ne!(up1, up2);
    assert_eq!(s.stats().uploads, 2);
    match s.upload_status(L, &up1).unwrap() {
        UploadStatus::Open { parts, bytes, .. } => assert_eq!((parts, bytes), (0, 0)),
        other => panic!("{other:?}"),
    }
    let d1 = common::gen(51, 5 * MIB);
    let d2 = common::gen(52, 10);
    part(&s, &up1, 1, &d1);
    part(&s, &up1, 2, &d2);
    part(&s, &up2, 7, b"seven");
    match s.upload_status(L, &up1).unwrap() {
        UploadStatus::Open { parts, bytes, .. } => {
            assert_eq!((parts, bytes), (2, (d1.len() + d2.len()) as u64))
        }
        other => panic!("{other:?}"),
    }
    let mut listed = s.list_uploads(L).unwrap();
    listed.sort_by(|a, b| a.key.cmp(&b.key));
    assert_eq!(listed.len(), 2);
    assert_eq!(
        (listed[0].key.as_str(), listed[0].upload, listed[0].parts),
        ("u/one", up1, 2)
    );
    assert_eq!(
        (listed[1].key.as_str(), listed[1].upload, listed[1].parts),
        ("u/two", up2, 1)
    );
    assert!(listed[0].last_activity >= listed[0].started);
    // The token's text form round-trips.
    let parsed: UploadId = up1.to_string().parse().unwrap();
    assert_eq!(parsed, up1);

    s.complete_multipart(L, &up1).unwrap();
    assert_eq!(s.upload_status(L, &up1).unwrap(), UploadStatus::Completed);
    let listed = s.list_uploads(L).unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].upload, up2);
    assert_eq!((s.stats().objects, s.stats().uploads), (1, 1));

    s.abort_multipart(L, &up2).unwrap();
    assert_eq!(
        s.upload_status(L, &up2).unwrap_err().kind(),
        ErrorKind::NotFound
    );
    assert!(s.list_uploads(L).unwrap().is_empty());
    assert_eq!((s.stats().objects, s.stats().uploads), (1, 0));
    put(&s, "u/three", b"3");
    s.copy_object(L, "u/four", "u/three").unwrap();
    assert_eq!((s.stats().objects, s.stats().uploads), (3, 0));
    s.delete(L, "u/one").unwrap();
    assert_eq!((s.stats().objects, s.stats().uploads), (2, 0));
}

#[test]
fn list_parts_page_visits_each_of_2500_parts_once() {
    let dir = tempfile::tempdir().unwrap();
    // Durability is beside the point here; skip 5000 fsyncs.
    let s = Store::open(
        dir.path(),
        Options::default()
            .segment_size(32 << 20)
            .durability(Durability::None),
    )
    .unwrap();
    s.create_layer(L, LayerConfig::default()).unwrap();
    let up = s.start_multipart(L, "many", CT).unwrap();
    let mut issued = Vec::new();
    // Upload in a scrambled order.
    for i in 0..2500u32 {
        let n = (i * 7919) % 2500 + 1;
        let byte = [(n % 251) as u8];
        issued.push(part(&s, &up, n, &byte));
    }
    issued.sort_by_key(|p| p.part_number);
    for limit in [1000usize, 333, 1] {
        let mut seen = Vec::new();
        let mut after = 0u32;
        loop {
            let page = s.list_parts_page(L, &up, after, limit).unwrap();
            assert!(page.len() <= limit);
            if page.is_empty() {
                break;
            }
            after = page.last().unwrap().part_number;
            seen.extend(page);
        }
        assert_eq!(seen.len(), 2500, "limit {limit}");
        let numbers: BTreeSet<u32> = seen.iter().map(|p| p.part_number).collect();
        assert_eq!(numbers.len(), 2500, "limit {limit}: every part once");
        for (a, b) in seen.iter().zip(&issued) {
            assert_eq!(
                (a.part_number, &a.id, a.size, a.crc32c),
                (b.part_number, &b.id, b.size, b.crc32c)
            );
        }
    }
    assert_eq!(
        s.list_parts_page(L, &up, 2400, 1000).unwrap().len(),
        100,
        "a page after part 2400"
    );
    assert!(s.list_parts_page(L, &up, 2500, 10).unwrap().is_empty());
    for bad in [0usize, 1001] {
        assert_eq!(
            s.list_parts_page(L, &up, 0, bad).unwrap_err().kind(),
            ErrorKind::BadRequest
        );
    }
    assert_eq!(s.list_parts(L, &up).unwrap().len(), 2500);
    match s.upload_status(L, &up).unwrap() {
        UploadStatus::Open { parts, bytes, .. } => assert_eq!((parts, bytes), (2500, 2500)),
        other => panic!("{other:?}"),
    }
    // 1-byte parts cannot complete as one object (parts under 5 MiB).
    assert_eq!(
        s.complete_multipart(L, &up).unwrap_err().kind(),
        ErrorKind::BadRequest
    );
    assert_eq!(s.list_parts(L, &up).unwrap().len(), 2500);
}

#[test]
fn copy_part_references_exact_source_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let s = new_store(dir.path());
    let m = MIB as u64;
    // Source: three parts, so copy ranges can cross its part boundaries.
    let src = [
        common::gen(61, 5 * MIB),
        common::gen(62, 6 * MIB),
        common::gen(63, 3 * MIB + 123),
    ]
    .concat();
    let up = s.start_multipart(L, "src", CT).unwrap();
    part(&s, &up, 1, &src[..5 * MIB]);
    part(&s, &up, 2, &src[5 * MIB..11 * MIB]);
    part(&s, &up, 3, &src[11 * MIB..]);
    s.complete_multipart(L, &up).unwrap();
    let src_len = src.len() as u64;

    // (part number, first, last): a range crossing the 5 MiB boundary, the
    // first part whole, and a last part running to the end of the source
    // (its end is not block aligned).
    let ranges = [
        (1u32, m, 7 * m - 1),
        (2, 0, 5 * m - 1),
        (3, 10 * m, src_len - 1),
    ];
    let up = s.start_multipart(L, "dst", CT).unwrap();
    let mut expected = Vec::new();
    for (n, first, last) in ranges {
        let p = s
            .copy_part(
                L,
                &up,
                n,
                CopySource::new("src", range(&format!("bytes={first}-{last}"))),
            )
            .unwrap();
        let bytes = &src[first as usize..=last as usize];
        assert_eq!(p.part_number, n);
        assert_eq!(p.size, bytes.len() as u64);
        assert_eq!(p.crc32c, crc32c::crc32c(bytes), "crc of copied part {n}");
        expected.extend_from_slice(bytes);
    }
    let parts = s.list_parts(L, &up).unwrap();
    for (p, (_, first, last)) in parts.iter().zip(ranges) {
        assert_eq!(
            p.crc32c,
            crc32c::crc32c(&src[first as usize..=last as usize])
        );
    }
    // A copy with a matching digest works, a wrong one is BadRequest and
    // leaves part 3 as it was.
    let wrong: Digest = "CRC-32C:00000000".parse().unwrap();
    let err = s
        .copy_part(
            L,
            &up,
            3,
            CopySource::new("src", range("bytes=0-5242879")).digest(wrong),
        )
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::BadRequest);
    assert_eq!(s.list_parts(L, &up).unwrap(), parts);
    // Misaligned start, open range, past the end: RangeNotSatisfiable.
    for bad in [
        "bytes=1-5242880",
        "bytes=0-",
        "bytes=-5",
        &format!("bytes=0-{src_len}"),
    ] {
        let err = match bad.parse::<ByteRange>() {
            Ok(r) => s
                .copy_part(L, &up, 4, CopySource::new("src", r))
                .unwrap_err(),
            Err(e) => e,
        };
        assert_eq!(err.kind(), ErrorKind::RangeNotSatisfiable, "{bad}: {err}");
    }
    let o = s.complete_multipart(L, &up).unwrap();
    assert_eq!(o.crc32c, crc32c::crc32c(&expected), "full crc of the copy");
    assert_object(&s, "dst", &expected);

    // Copies of copies: ranges of "dst" (itself references into "src").
    let up = s.start_multipart(L, "dst2", CT).unwrap();
    let dst_len = expected.len() as u64;
    // Parts 1, 2 and 4 copy ranges crossing dst's part boundaries (at 6 and
    // 11 MiB); part 3 is uploaded; part 4 ends one byte before dst's end.
    let ranges2 = [
        (1u32, 2 * m, 9 * m - 1),
        (2, 9 * m, 14 * m - 1),
        (4, 14 * m, dst_len - 2),
    ];
    let own = common::gen(64, 5 * MIB);
    part(&s, &up, 3, &own);
    let mut pieces2 = Vec::new();
    for (n, first, last) in ranges2 {
        let p = s
            .copy_part(
                L,
                &up,
                n,
                CopySource::new("dst", range(&format!("bytes={first}-{last}"))),
            )
            .unwrap();
        let bytes = &expected[first as usize..=last as usize];
        assert_eq!(p.crc32c, crc32c::crc32c(bytes), "crc of copy-of-copy {n}");
        pieces2.push(bytes);
    }
    let expected2 = [pieces2[0], pieces2[1], &own[..], pieces2[2]].concat();
    let o = s.complete_multipart(L, &up).unwrap();
    assert_eq!(o.crc32c, crc32c::crc32c(&expected2));
    assert_object(&s, "dst2", &expected2);

    // Deleting and overwriting the source changes no copy.
    s.delete(L, "src").unwrap();
    assert_object(&s, "dst", &expected);
    assert_object(&s, "dst2", &expected2);
    put(&s, "src", &common::gen(65, 8 * MIB));
    s.delete(L, "dst").unwrap();
    put(&s, "dst", b"replaced");
    assert_object(&s, "dst2", &expected2);
    assert!(s.verify().unwrap().is_clean());
    drop(s);
    let s = open(dir.path());
    assert_object(&s, "dst2", &expected2);
    assert_object(&s, "dst", b"replaced");
    assert!(s.verify().unwrap().is_clean());
}

#[test]
fn copy_part_of_an_open_upload_survives_source_changes_and_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let src = common::gen(71, 12 * MIB + 17);
    let up;
    {
        let s = new_store(dir.path());
        put(&s, "src", &src);
        up = s.start_multipart(L, "dst", CT).unwrap();
        s.copy_part(
            L,
            &up,
            1,
            CopySource::new("src", range("bytes=6291456-12582911")),
        )
        .unwrap();
        s.copy_part(
            L,
            &up,
            2,
            CopySource::new("src", range("bytes=1048576-1048576")),
        )
        .unwrap();
        s.delete(L, "src").unwrap();
        put(&s, "src", b"new source");
    }
    let s = open(dir.path());
    let parts = s.list_parts(L, &up).unwrap();
    assert_eq!(parts.len(), 2);
    assert_eq!(parts[0].crc32c, crc32c::crc32c(&src[6 * MIB..12 * MIB]));
    assert_eq!(parts[1].crc32c, crc32c::crc32c(&src[MIB..=MIB]));
    let o = s.complete_multipart(L, &up).unwrap();
    let expected = [&src[6 * MIB..12 * MIB], &src[MIB..=MIB]].concat();
    assert_eq!(o.crc32c, crc32c::crc32c(&expected));
    assert_object(&s, "dst", &expected);
    assert!(s.verify().unwrap().is_clean());
}

#[test]
fn copy_object_reads_back_equal_and_survives_source_delete() {
    let dir = tempfile::tempdir().unwrap();
    let s = new_store(dir.path());
    let a = common::gen(81, 5 * MIB);
    let b = common::gen(82, 2 * MIB + 1);
    let up = s
        .start_multipart(
            L,
            "orig",
            UploadOptions::new("image/png").content_encoding("gzip"),
        )
        .unwrap();
    part(&s, &up, 1, &a);
    part(&s, &up, 2, &b);
    let src_info = s.complete_multipart(L, &up).unwrap();
    let expected = [a, b].concat();
    let c = s.copy_object(L, "copy1", "orig").unwrap();
    assert_eq!(c.size, src_info.size);
    assert_eq!(c.crc32c, src_info.crc32c);
    assert_eq!(c.content_type, "image/png");
    assert_eq!(c.content_encoding.as_deref(), Some("gzip"));
    assert_object(&s, "copy1", &expected);
    // Copy of the copy, then drop the original and the first copy.
    s.copy_object(L, "copy2", "copy1").unwrap();
    s.delete(L, "orig").unwrap();
    assert_eq!(
        s.copy_object(L, "copy3", "orig").unwrap_err().kind(),
        ErrorKind::NotFound
    );
    assert_object(&s, "copy1", &expected);
    put(&s, "copy1", b"overwritten");
    assert_object(&s, "copy2", &expected);
    // Copy onto an existing key replaces it.
    s.copy_object(L, "copy1", "copy2").unwrap();
    assert_object(&s, "copy1", &expected);
    drop(s);
    let s = open(dir.path());
    assert_object(&s, "copy1", &expected);
    assert_object(&s, "copy2", &expected);
    assert_eq!(s.head(L, "orig").unwrap_err().kind(), ErrorKind::NotFound);
    assert!(s.verify().unwrap().is_clean());
}
