//! Typed error reasons: one test per [`Reason`] the engine returns, each
//! breaking its rule through the public API only and asserting the exact
//! `kind()`, `reason()` and, where the error carries evidence, its
//! `part_number()` (complete-time part rules, stale ids, a part's content
//! type) or `location()` (segment and offset of corrupt data or records).
//! Each test also checks that the failed call changed nothing a caller can
//! observe (parts, uploads, objects and their bytes, the files on disk).
//! Fronts map errors by these reasons instead of by message text, so a
//! reason that drifts is a silent change of an HTTP answer.
//!
//! Not covered: `UploadBusy` (the engine returns it only from inside
//! `expire_uploads`, which swallows it), and `CopySourceChanged`: see the
//! note above `copy_range_open_is_not_satisfiable`.
//!
//! The on-disk tests aim at bytes with the layout of docs/FORMAT.md:
//! `seg-NNNNNNNN.log`, a 32-byte file header, then 8-aligned records with a
//! 24-byte header (magic `PSR1`, kind at byte 4: 1 = extent, 2 = metadata;
//! payload length as u64 LE at bytes 8..16); an extent's data follows its
//! header.

mod common;

use std::fmt::Debug;
use std::fs;
use std::io::{self, Read};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use common::faulty::{Faulty, ENOSPC};
use common::gen;
use md5::Md5;
use partstore::*;
use sha1::Sha1;
use sha2::{Digest as _, Sha256};
use tempfile::TempDir;

const MIB: u64 = 1 << 20;
const MIB_USIZE: usize = 1 << 20;
/// The layer every `store()` has, without content type or encoding.
const L: &str = "l";
const OCTET: &str = "application/octet-stream";
const EIO: i32 = 5;

// ----- helpers ----------------------------------------------------------

fn opts() -> Options {
    Options::default().segment_size(8 * MIB)
}

/// A fresh store with layer `L`.
fn store() -> (TempDir, Store) {
    store_with(opts())
}

fn store_with(o: Options) -> (TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let s = Store::open(dir.path(), o).unwrap();
    s.create_layer(L, LayerConfig::default()).unwrap();
    (dir, s)
}

fn body(bytes: &[u8]) -> PartBody<&[u8]> {
    PartBody::new(bytes, bytes.len() as u64)
}

fn copy(key: &str, range: &str) -> CopySource {
    CopySource::new(key, range.parse().unwrap())
}

fn part_ref(p: &PartInfo) -> PartRef {
    PartRef {
        number: p.part_number,
        id: p.id.clone(),
    }
}

/// A reader that fails the test if anything reads it.
struct PanicReader;

impl Read for PanicReader {
    fn read(&mut self, _: &mut [u8]) -> io::Result<usize> {
        panic!("the body was read, but the call had to fail before reading it");
    }
}

/// Asserts `r` failed with exactly `kind` and `reason`; returns the error
/// for checks of its evidence.
#[track_caller]
fn expect<T: Debug>(r: Result<T>, kind: ErrorKind, reason: Reason) -> Error {
    let e = match r {
        Ok(v) => panic!("expected {kind:?} / {reason:?}, got Ok({v:?})"),
        Err(e) => e,
    };
    assert_eq!(
        (e.kind(), e.reason()),
        (kind, Some(reason)),
        "wrong kind or reason; the error was: {e}"
    );
    e
}

/// Like [`expect`], and the error names part `n` as its evidence.
#[track_caller]
fn expect_part<T: Debug>(r: Result<T>, kind: ErrorKind, reason: Reason, n: u32) -> Error {
    let e = expect(r, kind, reason);
    assert_eq!(e.part_number(), Some(n), "wrong part number in: {e}");
    e
}

/// Everything observable about one upload.
#[derive(Debug, PartialEq)]
struct UploadSnap {
    parts: Vec<PartInfo>,
    status: UploadStatus,
}

fn upload_snap(s: &Store, layer: &str, up: &UploadId) -> UploadSnap {
    UploadSnap {
        parts: s.list_parts(layer, up).unwrap(),
        status: s.upload_status(layer, up).unwrap(),
    }
}

/// Every object of a layer (info and bytes) and its open uploads.
#[derive(Debug, PartialEq)]
struct LayerSnap {
    objects: Vec<(ObjectInfo, Vec<u8>)>,
    uploads: Vec<UploadSummary>,
}

fn layer_snap(s: &Store, layer: &str) -> LayerSnap {
    let objects = objects(s, layer)
        .into_iter()
        .map(|o| {
            let bytes = s.get(layer, &o.key).unwrap().to_vec().unwrap();
            (o, bytes)
        })
        .collect();
    LayerSnap {
        objects,
        uploads: s.list_uploads(layer).unwrap(),
    }
}

/// Every object of a layer (one page of up to 1000), infos only.
fn objects(s: &Store, layer: &str) -> Vec<ObjectInfo> {
    let page = s.list(layer, &ListOptions::default().deep(true)).unwrap();
    assert_eq!(page.next_page_token, None, "more than one page");
    page.items
        .into_iter()
        .map(|i| match i {
            ListItem::Object(o) => o,
            ListItem::Prefix(p) => panic!("deep listing returned prefix {p:?}"),
        })
        .collect()
}

fn sha256_hex(b: &[u8]) -> String {
    hex::encode(Sha256::digest(b))
}

fn md5_hex(b: &[u8]) -> String {
    hex::encode(Md5::digest(b))
}

fn sha1_hex(b: &[u8]) -> String {
    hex::encode(Sha1::digest(b))
}

/// A digest algorithm's hex of some bytes.
type HexOf = fn(&[u8]) -> String;

fn crc_hex(b: &[u8]) -> String {
    format!("{:08x}", crc32c::crc32c(b))
}

/// An upload of `key` with part 1 of 5 MiB and parts 2 and 3 small.
fn three_parts(s: &Store, key: &str) -> (UploadId, Vec<PartInfo>) {
    let up = s.start_multipart(L, key, OCTET).unwrap();
    let parts = vec![
        s.upload_part(L, &up, 1, body(&gen(1, 5 * MIB_USIZE)))
            .unwrap(),
        s.upload_part(L, &up, 2, body(b"two")).unwrap(),
        s.upload_part(L, &up, 3, body(b"three")).unwrap(),
    ];
    (up, parts)
}

/// An upload of `key` completed with one part `b"done"`.
fn completed_upload(s: &Store, key: &str) -> UploadId {
    let up = s.start_multipart(L, key, OCTET).unwrap();
    s.upload_part(L, &up, 1, body(b"done")).unwrap();
    s.complete_multipart(L, &up).unwrap();
    up
}

/// Builds object `key` of `parts` x 5 MiB by reference to one 5 MiB object
/// (`key` + "-src"): a large object for the price of 5 MiB of writes.
fn big_object(s: &Store, key: &str, parts: u32) -> u64 {
    let src = format!("{key}-src");
    s.put_object(L, &src, body(&gen(2, 5 * MIB_USIZE))).unwrap();
    let up = s.start_multipart(L, key, OCTET).unwrap();
    for n in 1..=parts {
        s.copy_part(L, &up, n, copy(&src, &format!("bytes=0-{}", 5 * MIB - 1)))
            .unwrap();
    }
    s.complete_multipart(L, &up).unwrap().size
}

// ----- on-disk helpers --------------------------------------------------

fn segment_files(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            let n = p.file_name().unwrap().to_str().unwrap();
            n.starts_with("seg-") && n.ends_with(".log")
        })
        .collect();
    v.sort();
    v
}

fn segment_id(path: &Path) -> u64 {
    let n = path.file_name().unwrap().to_str().unwrap();
    n["seg-".len()..n.len() - ".log".len()].parse().unwrap()
}

const KIND_EXTENT: u8 = 1;
const KIND_META: u8 = 2;
const RECORD_HEADER: u64 = 24;

/// (offset, kind, payload length) of every record of a segment file.
fn records(path: &Path) -> Vec<(u64, u8, u64)> {
    let f = fs::File::open(path).unwrap();
    let file_len = f.metadata().unwrap().len();
    let mut out = Vec::new();
    let mut pos = 32u64;
    while pos + RECORD_HEADER <= file_len {
        let mut h = [0u8; 24];
        f.read_exact_at(&mut h, pos).unwrap();
        if h == [0u8; 24] {
            break;
        }
        assert_eq!(&h[0..4], b"PSR1", "{}: no record at {pos}", path.display());
        let len = u64::from_le_bytes(h[8..16].try_into().unwrap());
        out.push((pos, h[4], len));
        pos += RECORD_HEADER + len.div_ceil(8) * 8;
    }
    out
}

fn flip(path: &Path, offset: u64) {
    let f = fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .unwrap();
    let mut b = [0u8];
    f.read_exact_at(&mut b, offset).unwrap();
    b[0] ^= 0x5a;
    f.write_all_at(&b, offset).unwrap();
}

// ----- validation: ids, keys, numbers, digests, ranges, listing ---------

#[test]
fn invalid_layer_id_is_bad_request() {
    let (_d, s) = store();
    s.put_object(L, "k", body(b"kept")).unwrap();
    let layers = s.list_layers();
    let before = layer_snap(&s, L);
    let long = "x".repeat(64);
    for id in ["", "a b", "a/b", "a*b", "é", long.as_str()] {
        expect(
            s.create_layer(id, LayerConfig::default()),
            ErrorKind::BadRequest,
            Reason::InvalidLayerId,
        );
        // Any call naming a malformed layer id.
        expect(
            s.put_object(id, "k", PartBody::new(PanicReader, 1)),
            ErrorKind::BadRequest,
            Reason::InvalidLayerId,
        );
        expect(
            s.head(id, "k"),
            ErrorKind::BadRequest,
            Reason::InvalidLayerId,
        );
        expect(
            s.start_multipart(id, "k", OCTET),
            ErrorKind::BadRequest,
            Reason::InvalidLayerId,
        );
        expect(
            s.list(id, &ListOptions::default()),
            ErrorKind::BadRequest,
            Reason::InvalidLayerId,
        );
    }
    assert_eq!(s.list_layers(), layers);
    assert_eq!(layer_snap(&s, L), before);
}

#[test]
fn invalid_key_is_bad_request() {
    let (_d, s) = store();
    s.put_object(L, "src", body(b"source")).unwrap();
    let before = layer_snap(&s, L);
    let long = "k".repeat(451);
    for key in ["", "a b", "/a", "a/", "a//b", "a*b", "é", long.as_str()] {
        expect(
            s.put_object(L, key, PartBody::new(PanicReader, 1)),
            ErrorKind::BadRequest,
            Reason::InvalidKey,
        );
        expect(
            s.start_multipart(L, key, OCTET),
            ErrorKind::BadRequest,
            Reason::InvalidKey,
        );
        expect(
            s.copy_object(L, key, "src"),
            ErrorKind::BadRequest,
            Reason::InvalidKey,
        );
        expect(s.head(L, key), ErrorKind::BadRequest, Reason::InvalidKey);
        expect(s.delete(L, key), ErrorKind::BadRequest, Reason::InvalidKey);
    }
    // A list's parent folder follows the key rules.
    for parent in ["/", "a//", "a b"] {
        expect(
            s.list(L, &ListOptions::default().parent(parent)),
            ErrorKind::BadRequest,
            Reason::InvalidKey,
        );
    }
    assert_eq!(layer_snap(&s, L), before);
}

#[test]
fn invalid_part_number_is_bad_request() {
    let (_d, s) = store();
    s.put_object(L, "src", body(b"source")).unwrap();
    let up = s.start_multipart(L, "k", OCTET).unwrap();
    s.upload_part(L, &up, 1, body(b"first")).unwrap();
    let before = upload_snap(&s, L, &up);
    for n in [0, 10_001, u32::MAX] {
        expect(
            s.upload_part(L, &up, n, PartBody::new(PanicReader, 1)),
            ErrorKind::BadRequest,
            Reason::InvalidPartNumber,
        );
        expect(
            s.copy_part(L, &up, n, copy("src", "bytes=0-1")),
            ErrorKind::BadRequest,
            Reason::InvalidPartNumber,
        );
    }
    assert_eq!(upload_snap(&s, L, &up), before);
}

#[test]
fn invalid_digest_is_bad_request() {
    let sha = sha256_hex(b"x");
    for text in [
        String::new(),
        "crc32c".to_string(),
        "c99465aa".to_string(),
        "CRC-32C:c99465a".to_string(),
        "CRC-32C:c99465ag".to_string(),
        "CRC32:c99465aa".to_string(),
        format!("MD5:{sha}"),
        format!("SHA512:{sha}{sha}"),
        format!("SHA256:{}", &sha[..62]),
        format!(" SHA256:{sha}"),
    ] {
        expect(
            text.parse::<Digest>(),
            ErrorKind::BadRequest,
            Reason::InvalidDigest,
        );
    }
}

#[test]
fn invalid_range_is_not_satisfiable() {
    let (_d, s) = store();
    s.put_object(L, "ten", body(b"0123456789")).unwrap();
    s.put_object(L, "empty", body(b"")).unwrap();
    let src = gen(3, 2 * MIB_USIZE + 10);
    s.put_object(L, "src", body(&src)).unwrap();
    let up = s.start_multipart(L, "dst", OCTET).unwrap();
    s.upload_part(L, &up, 1, body(b"keep")).unwrap();
    let before = layer_snap(&s, L);
    let parts = upload_snap(&s, L, &up);
    // Bad syntax, several ranges, or a backwards range fail to parse.
    for r in [
        "bytes",
        "bytes=a-b",
        "bytes=0-1,3-4",
        "items=0-5",
        "",
        "bytes=5-3",
    ] {
        expect(
            r.parse::<ByteRange>(),
            ErrorKind::RangeNotSatisfiable,
            Reason::InvalidRange,
        );
    }
    // Ranges the object cannot satisfy.
    let ten = s.get(L, "ten").unwrap();
    for r in ["bytes=10-", "bytes=10-20", "bytes=11-11"] {
        expect(
            ten.read_range(r.parse().unwrap()),
            ErrorKind::RangeNotSatisfiable,
            Reason::InvalidRange,
        );
    }
    for r in [
        ByteRange::Bounded { first: 5, last: 3 },
        ByteRange::Suffix { len: 0 },
    ] {
        expect(
            ten.read_range(r),
            ErrorKind::RangeNotSatisfiable,
            Reason::InvalidRange,
        );
    }
    expect(
        ten.slices(5, 11),
        ErrorKind::RangeNotSatisfiable,
        Reason::InvalidRange,
    );
    let empty = s.get(L, "empty").unwrap();
    for r in ["bytes=0-0", "bytes=0-", "bytes=-1"] {
        expect(
            empty.read_range(r.parse().unwrap()),
            ErrorKind::RangeNotSatisfiable,
            Reason::InvalidRange,
        );
    }
    // Copy ranges past the source's end or backwards.
    let size = src.len() as u64;
    for r in [
        format!("bytes=0-{size}"),
        format!("bytes={MIB}-{}", size + 100),
        format!("bytes={}-{}", 3 * MIB, 4 * MIB),
    ] {
        expect(
            s.copy_part(L, &up, 1, copy("src", &r)),
            ErrorKind::RangeNotSatisfiable,
            Reason::InvalidRange,
        );
    }
    expect(
        s.copy_part(
            L,
            &up,
            1,
            CopySource::new(
                "src",
                ByteRange::Bounded {
                    first: MIB,
                    last: 10,
                },
            ),
        ),
        ErrorKind::RangeNotSatisfiable,
        Reason::InvalidRange,
    );
    assert_eq!(layer_snap(&s, L), before);
    assert_eq!(upload_snap(&s, L, &up), parts);
}

#[test]
fn invalid_page_token_is_bad_request() {
    let (_d, s) = store();
    s.create_layer("m", LayerConfig::default()).unwrap();
    for k in ["a/1", "a/2", "b", "c", "d"] {
        s.put_object(L, k, body(k.as_bytes())).unwrap();
        s.put_object("m", k, body(b"m")).unwrap();
    }
    let before = layer_snap(&s, L);
    let base = ListOptions::default().limit(1);
    let token = s.list(L, &base).unwrap().next_page_token.unwrap();
    // The token works where it was issued.
    s.list(L, &base.clone().page_token(token.clone())).unwrap();
    let mut tampered = token.clone().into_bytes();
    let last = tampered.len() - 1;
    tampered[last] = if tampered[last] == b'0' { b'1' } else { b'0' };
    let tampered = String::from_utf8(tampered).unwrap();
    for t in ["", "garbage", "deadbeef", tampered.as_str()] {
        expect(
            s.list(L, &base.clone().page_token(t)),
            ErrorKind::BadRequest,
            Reason::InvalidPageToken,
        );
    }
    // A real token, for another listing.
    for (layer, o) in [
        ("m", base.clone()),
        (L, base.clone().parent("a")),
        (L, base.clone().deep(true)),
    ] {
        expect(
            s.list(layer, &o.page_token(token.clone())),
            ErrorKind::BadRequest,
            Reason::InvalidPageToken,
        );
    }
    assert_eq!(layer_snap(&s, L), before);
}

#[test]
fn invalid_list_limit_is_bad_request() {
    let (_d, s) = store();
    s.put_object(L, "k", body(b"x")).unwrap();
    let up = s.start_multipart(L, "u", OCTET).unwrap();
    s.upload_part(L, &up, 1, body(b"p")).unwrap();
    for limit in [0, 1001, usize::MAX] {
        expect(
            s.list(L, &ListOptions::default().limit(limit)),
            ErrorKind::BadRequest,
            Reason::InvalidListLimit,
        );
        expect(
            s.list(L, &ListOptions::default().deep(true).limit(limit)),
            ErrorKind::BadRequest,
            Reason::InvalidListLimit,
        );
        expect(
            s.list_parts_page(L, &up, 0, limit),
            ErrorKind::BadRequest,
            Reason::InvalidListLimit,
        );
    }
    // The limits themselves are fine.
    for limit in [1, 1000] {
        assert_eq!(
            s.list(L, &ListOptions::default().limit(limit))
                .unwrap()
                .items
                .len(),
            1
        );
        assert_eq!(s.list_parts_page(L, &up, 0, limit).unwrap().len(), 1);
    }
}

#[test]
fn invalid_part_id_is_bad_request() {
    let (_d, s) = store();
    let (up, parts) = three_parts(&s, "k");
    let before = layer_snap(&s, L);
    let snap = upload_snap(&s, L, &up);
    for id in [
        "",
        "not-an-id",
        "0123",
        "zzzzzzzzzzzzzzzz",
        "0x00000000000001",
    ] {
        let refs = [
            part_ref(&parts[0]),
            PartRef {
                number: 2,
                id: id.to_string(),
            },
            part_ref(&parts[2]),
        ];
        expect(
            s.complete_multipart_with(L, &up, &refs),
            ErrorKind::BadRequest,
            Reason::InvalidPartId,
        );
    }
    assert_eq!(layer_snap(&s, L), before);
    assert_eq!(upload_snap(&s, L, &up), snap);
    expect(s.head(L, "k"), ErrorKind::NotFound, Reason::UnknownKey);
}

// ----- not found, conflicts ---------------------------------------------

#[test]
fn unknown_layer_is_not_found() {
    let (_d, s) = store();
    s.put_object(L, "k", body(b"data")).unwrap();
    let up = s.start_multipart(L, "u", OCTET).unwrap();
    let p1 = s.upload_part(L, &up, 1, body(b"part")).unwrap();
    let before = layer_snap(&s, L);
    let snap = upload_snap(&s, L, &up);
    let x = "nope";
    let results: Vec<(&str, Result<()>)> = vec![
        (
            "put_object",
            s.put_object(x, "k", PartBody::new(PanicReader, 1))
                .map(|_| ()),
        ),
        ("copy_object", s.copy_object(x, "k2", "k").map(|_| ())),
        ("head", s.head(x, "k").map(|_| ())),
        ("get", s.get(x, "k").map(|_| ())),
        ("delete", s.delete(x, "k")),
        ("list", s.list(x, &ListOptions::default()).map(|_| ())),
        (
            "start_multipart",
            s.start_multipart(x, "u", OCTET).map(|_| ()),
        ),
        (
            "upload_part",
            s.upload_part(x, &up, 2, PartBody::new(PanicReader, 1))
                .map(|_| ()),
        ),
        (
            "copy_part",
            s.copy_part(x, &up, 2, copy("k", "bytes=0-1")).map(|_| ()),
        ),
        ("list_parts", s.list_parts(x, &up).map(|_| ())),
        (
            "list_parts_page",
            s.list_parts_page(x, &up, 0, 10).map(|_| ()),
        ),
        ("upload_status", s.upload_status(x, &up).map(|_| ())),
        ("list_uploads", s.list_uploads(x).map(|_| ())),
        (
            "complete_multipart",
            s.complete_multipart(x, &up).map(|_| ()),
        ),
        (
            "complete_multipart_with",
            s.complete_multipart_with(x, &up, &[part_ref(&p1)])
                .map(|_| ()),
        ),
        ("abort_multipart", s.abort_multipart(x, &up)),
    ];
    for (call, r) in results {
        let e = r.expect_err(call);
        assert_eq!(
            (e.kind(), e.reason()),
            (ErrorKind::NotFound, Some(Reason::UnknownLayer)),
            "{call}: {e}"
        );
    }
    assert_eq!(s.list_layers().len(), 1);
    assert_eq!(layer_snap(&s, L), before);
    assert_eq!(upload_snap(&s, L, &up), snap);
}

#[test]
fn unknown_key_is_not_found() {
    let (_d, s) = store();
    s.put_object(L, "dst", body(b"existing")).unwrap();
    s.put_object(L, "gone", body(b"deleted")).unwrap();
    s.delete(L, "gone").unwrap();
    let up = s.start_multipart(L, "u", OCTET).unwrap();
    s.upload_part(L, &up, 1, body(b"keep")).unwrap();
    let before = layer_snap(&s, L);
    let snap = upload_snap(&s, L, &up);
    for key in ["missing", "gone", "u"] {
        expect(s.head(L, key), ErrorKind::NotFound, Reason::UnknownKey);
        expect(s.get(L, key), ErrorKind::NotFound, Reason::UnknownKey);
        expect(
            s.copy_object(L, "dst", key),
            ErrorKind::NotFound,
            Reason::UnknownKey,
        );
        expect(
            s.copy_part(L, &up, 1, copy(key, "bytes=0-1")),
            ErrorKind::NotFound,
            Reason::UnknownKey,
        );
    }
    assert_eq!(layer_snap(&s, L), before);
    assert_eq!(upload_snap(&s, L, &up), snap);
}

#[test]
fn unknown_upload_is_not_found() {
    let (_d, s) = store();
    s.create_layer("m", LayerConfig::default()).unwrap();
    s.put_object(L, "src", body(b"source")).unwrap();
    s.put_object("m", "src", body(b"source")).unwrap();
    let open = s.start_multipart(L, "k", OCTET).unwrap();
    let p1 = s.upload_part(L, &open, 1, body(b"one")).unwrap();
    let aborted = s.start_multipart(L, "k", OCTET).unwrap();
    s.abort_multipart(L, &aborted).unwrap();
    let never: UploadId = "0123456789abcdef0123456789abcdef".parse().unwrap();
    let before_l = layer_snap(&s, L);
    let before_m = layer_snap(&s, "m");
    let snap = upload_snap(&s, L, &open);
    // Never issued, aborted, and an open upload named with another layer.
    for (layer, up) in [(L, never), (L, aborted), ("m", open)] {
        let results: Vec<(&str, Result<()>)> = vec![
            (
                "upload_part",
                s.upload_part(layer, &up, 2, PartBody::new(PanicReader, 1))
                    .map(|_| ()),
            ),
            (
                "copy_part",
                s.copy_part(layer, &up, 2, copy("src", "bytes=0-1"))
                    .map(|_| ()),
            ),
            ("list_parts", s.list_parts(layer, &up).map(|_| ())),
            (
                "list_parts_page",
                s.list_parts_page(layer, &up, 0, 10).map(|_| ()),
            ),
            ("upload_status", s.upload_status(layer, &up).map(|_| ())),
            (
                "complete_multipart",
                s.complete_multipart(layer, &up).map(|_| ()),
            ),
            (
                "complete_multipart_with",
                s.complete_multipart_with(layer, &up, &[part_ref(&p1)])
                    .map(|_| ()),
            ),
            ("abort_multipart", s.abort_multipart(layer, &up)),
        ];
        for (call, r) in results {
            let e = r.expect_err(call);
            assert_eq!(
                (e.kind(), e.reason()),
                (ErrorKind::NotFound, Some(Reason::UnknownUpload)),
                "{call} on {layer}/{up}: {e}"
            );
        }
    }
    // A token that does not parse can name no upload.
    for t in [
        "",
        "xyz",
        "0123456789abcdef",
        "0123456789abcdef0123456789abcdeg",
    ] {
        expect(
            t.parse::<UploadId>(),
            ErrorKind::NotFound,
            Reason::UnknownUpload,
        );
    }
    assert_eq!(layer_snap(&s, L), before_l);
    assert_eq!(layer_snap(&s, "m"), before_m);
    assert_eq!(upload_snap(&s, L, &open), snap);
}

#[test]
fn layer_exists_is_conflict() {
    let (_d, s) = store();
    s.create_layer("json", LayerConfig::new("application/json"))
        .unwrap();
    s.put_object("json", "k", body(b"{}")).unwrap();
    let layers = s.list_layers();
    let before = layer_snap(&s, "json");
    for (id, config) in [
        ("json", LayerConfig::default()),
        ("json", LayerConfig::new("application/json")),
        (
            "json",
            LayerConfig::new("text/plain").content_encoding("gzip"),
        ),
        (L, LayerConfig::default()),
    ] {
        expect(
            s.create_layer(id, config),
            ErrorKind::Conflict,
            Reason::LayerExists,
        );
    }
    assert_eq!(s.list_layers(), layers);
    assert_eq!(layer_snap(&s, "json"), before);
}

#[test]
fn store_locked_is_conflict() {
    let (dir, s) = store();
    s.put_object(L, "k", body(b"kept")).unwrap();
    expect(
        Store::open(dir.path(), opts()),
        ErrorKind::Conflict,
        Reason::StoreLocked,
    );
    // From another thread too.
    let path = dir.path().to_path_buf();
    let r = std::thread::spawn(move || Store::open(&path, opts()).map(|_| ()))
        .join()
        .unwrap();
    expect(r, ErrorKind::Conflict, Reason::StoreLocked);
    // The first store is unaffected and keeps writing.
    assert_eq!(s.get(L, "k").unwrap().to_vec().unwrap(), b"kept");
    s.put_object(L, "k2", body(b"more")).unwrap();
    drop(s);
    let s = Store::open(dir.path(), opts()).unwrap();
    assert_eq!(s.get(L, "k").unwrap().to_vec().unwrap(), b"kept");
    assert_eq!(s.get(L, "k2").unwrap().to_vec().unwrap(), b"more");
}

#[test]
fn layer_not_empty_is_conflict() {
    let (_d, s) = store();
    s.put_object(L, "k", body(b"kept")).unwrap();
    let layers = s.list_layers();
    let before = layer_snap(&s, L);
    expect(
        s.delete_layer(L),
        ErrorKind::Conflict,
        Reason::LayerNotEmpty,
    );
    assert_eq!(s.list_layers(), layers);
    assert_eq!(layer_snap(&s, L), before);
    s.delete(L, "k").unwrap();
    let up = s.start_multipart(L, "k", OCTET).unwrap();
    let before = layer_snap(&s, L);
    expect(
        s.delete_layer(L),
        ErrorKind::Conflict,
        Reason::LayerNotEmpty,
    );
    assert_eq!(layer_snap(&s, L), before);
    assert!(s.upload_status(L, &up).is_ok());
}

#[test]
fn invalid_argument_is_bad_request() {
    let (_d, s) = store();
    s.put_object(L, "a/b", body(b"kept")).unwrap();
    expect(
        s.list(L, &ListOptions::default().parent("a").prefix("a/")),
        ErrorKind::BadRequest,
        Reason::InvalidArgument,
    );
    let dir = tempfile::tempdir().unwrap();
    expect(
        Store::open(dir.path(), opts().compact_threshold(1.5)),
        ErrorKind::BadRequest,
        Reason::InvalidArgument,
    );
}

// ----- user metadata ----------------------------------------------------

#[test]
fn invalid_metadata_is_bad_request() {
    let (_d, s) = store();
    s.put_object(L, "k", body(b"kept").metadata([("a", "1")]))
        .unwrap();
    let before = layer_snap(&s, L);
    let bad = [("bad name", "v")];
    expect(
        s.put_object(L, "k", PartBody::new(PanicReader, 1).metadata(bad)),
        ErrorKind::BadRequest,
        Reason::InvalidMetadata,
    );
    expect(
        s.start_multipart(L, "k", UploadOptions::new(OCTET).metadata(bad)),
        ErrorKind::BadRequest,
        Reason::InvalidMetadata,
    );
    expect(
        s.copy_object_with(
            L,
            "k",
            "k",
            Some(vec![(
                "n".into(),
                "a
b"
                .into(),
            )]),
        ),
        ErrorKind::BadRequest,
        Reason::InvalidMetadata,
    );
    let up = s.start_multipart(L, "m", OCTET).unwrap();
    expect_part(
        s.upload_part(
            L,
            &up,
            2,
            PartBody::new(PanicReader, 1).metadata([("a", "1")]),
        ),
        ErrorKind::BadRequest,
        Reason::InvalidMetadata,
        2,
    );
    s.abort_multipart(L, &up).unwrap();
    assert_eq!(layer_snap(&s, L), before);
}

// ----- bodies -----------------------------------------------------------

#[test]
fn digest_mismatch_is_bad_request_for_every_algorithm_and_call() {
    let (_d, s) = store();
    // Several blocks and a partial one; the copy takes all of it.
    let src = gen(4, 2 * MIB_USIZE + 13);
    s.put_object(L, "src", body(&src)).unwrap();
    s.put_object(L, "obj", body(b"previous")).unwrap();
    let up = s.start_multipart(L, "dst", OCTET).unwrap();
    s.upload_part(L, &up, 1, body(b"keep")).unwrap();
    let before = layer_snap(&s, L);
    let snap = upload_snap(&s, L, &up);
    let range = format!("bytes=0-{}", src.len() - 1);
    let other = b"some other body";
    let algorithms: [(&str, HexOf); 4] = [
        ("CRC-32C", crc_hex),
        ("MD5", md5_hex),
        ("SHA1", sha1_hex),
        ("SHA256", sha256_hex),
    ];
    for (name, hex_of) in algorithms {
        let wrong: Digest = format!("{name}:{}", hex_of(other)).parse().unwrap();
        expect(
            s.put_object(L, "obj", body(&src).digest(wrong.clone())),
            ErrorKind::BadRequest,
            Reason::DigestMismatch,
        );
        expect(
            s.put_object(L, "new", body(&src).digest(wrong.clone())),
            ErrorKind::BadRequest,
            Reason::DigestMismatch,
        );
        for n in [1, 2] {
            expect(
                s.upload_part(L, &up, n, body(&src).digest(wrong.clone())),
                ErrorKind::BadRequest,
                Reason::DigestMismatch,
            );
            expect(
                s.copy_part(L, &up, n, copy("src", &range).digest(wrong.clone())),
                ErrorKind::BadRequest,
                Reason::DigestMismatch,
            );
        }
    }
    assert_eq!(layer_snap(&s, L), before);
    assert_eq!(upload_snap(&s, L, &up), snap);
    // The right digests of the same bytes pass: the digest was the cause.
    for (i, (name, hex_of)) in algorithms.into_iter().enumerate() {
        let right: Digest = format!("{name}:{}", hex_of(&src)).parse().unwrap();
        let n = 2 * i as u32 + 2;
        s.upload_part(L, &up, n, body(&src).digest(right.clone()))
            .unwrap();
        s.copy_part(L, &up, n + 1, copy("src", &range).digest(right.clone()))
            .unwrap();
        s.put_object(L, &format!("ok{i}"), body(&src).digest(right))
            .unwrap();
    }
}

#[test]
fn body_length_mismatch_short_or_long_is_bad_request() {
    let (_d, s) = store();
    s.put_object(L, "obj", body(b"previous")).unwrap();
    let up = s.start_multipart(L, "k", OCTET).unwrap();
    s.upload_part(L, &up, 1, body(b"keep")).unwrap();
    let before = layer_snap(&s, L);
    let snap = upload_snap(&s, L, &up);
    let long = gen(5, 3 * MIB_USIZE);
    // (bytes given, length declared): short, long, and both past a block.
    let cases: [(&[u8], u64); 5] = [
        (b"12345", 10),
        (b"0123456789", 5),
        (b"x", 0),
        (&long, 3 * MIB + 1),
        (&long, 2 * MIB + 7),
    ];
    for (bytes, declared) in cases {
        for n in [1, 2] {
            expect(
                s.upload_part(L, &up, n, PartBody::new(bytes, declared)),
                ErrorKind::BadRequest,
                Reason::BodyLengthMismatch,
            );
        }
        for key in ["obj", "new"] {
            expect(
                s.put_object(L, key, PartBody::new(bytes, declared)),
                ErrorKind::BadRequest,
                Reason::BodyLengthMismatch,
            );
        }
    }
    assert_eq!(layer_snap(&s, L), before);
    assert_eq!(upload_snap(&s, L, &up), snap);
}

#[test]
fn content_type_mismatch_is_bad_request() {
    let (_d, s) = store();
    s.create_layer("json", LayerConfig::new("application/json"))
        .unwrap();
    s.put_object("json", "existing", body(b"{}")).unwrap();
    // A part's type against its upload's (no binding layer): names the part.
    let up = s.start_multipart(L, "k", "application/json").unwrap();
    s.upload_part(L, &up, 1, body(b"[1]")).unwrap();
    let snap = upload_snap(&s, L, &up);
    for n in [1, 2] {
        expect_part(
            s.upload_part(L, &up, n, body(b"text").content_type("text/plain")),
            ErrorKind::BadRequest,
            Reason::ContentTypeMismatch,
            n,
        );
    }
    assert_eq!(upload_snap(&s, L, &up), snap);
    // A put's type against a layer with a bound type.
    let before = layer_snap(&s, "json");
    for key in ["existing", "new"] {
        let e = expect(
            s.put_object("json", key, body(b"x").content_type("text/plain")),
            ErrorKind::BadRequest,
            Reason::ContentTypeMismatch,
        );
        assert_eq!(e.part_number(), None, "{e}");
        expect(
            s.put_object(
                "json",
                key,
                PartBody::new(PanicReader, 1).content_type(OCTET),
            ),
            ErrorKind::BadRequest,
            Reason::ContentTypeMismatch,
        );
    }
    // And an upload's type against the layer's.
    expect(
        s.start_multipart("json", "k", "text/plain"),
        ErrorKind::BadRequest,
        Reason::ContentTypeMismatch,
    );
    assert_eq!(layer_snap(&s, "json"), before);
}

#[test]
fn content_encoding_mismatch_is_bad_request() {
    let (_d, s) = store();
    s.create_layer("gz", LayerConfig::default().content_encoding("gzip"))
        .unwrap();
    s.put_object("gz", "existing", body(b"z")).unwrap();
    let before = layer_snap(&s, "gz");
    for key in ["existing", "new"] {
        for ce in ["br", "identity"] {
            expect(
                s.put_object("gz", key, body(b"x").content_encoding(ce)),
                ErrorKind::BadRequest,
                Reason::ContentEncodingMismatch,
            );
        }
    }
    expect(
        s.start_multipart("gz", "k", UploadOptions::new(OCTET).content_encoding("br")),
        ErrorKind::BadRequest,
        Reason::ContentEncodingMismatch,
    );
    assert_eq!(layer_snap(&s, "gz"), before);
}

// ----- sizes ------------------------------------------------------------

#[test]
fn part_too_large_is_too_large() {
    let (_d, s) = store();
    assert_eq!(big_object(&s, "big", 20), 100 * MIB);
    let up = s.start_multipart(L, "dst", OCTET).unwrap();
    s.upload_part(L, &up, 1, body(b"keep")).unwrap();
    let before = objects(&s, L);
    let snap = upload_snap(&s, L, &up);
    // Declared over 96 MiB: refused before any byte is read.
    for len in [96 * MIB + 1, 1 << 40, u64::MAX] {
        for n in [1, 2] {
            expect(
                s.upload_part(L, &up, n, PartBody::new(PanicReader, len)),
                ErrorKind::TooLarge,
                Reason::PartTooLarge,
            );
        }
    }
    // A copy range over 96 MiB.
    for r in [
        format!("bytes=0-{}", 96 * MIB),
        format!("bytes={MIB}-{}", 97 * MIB + 1),
        format!("bytes=0-{}", 100 * MIB - 1),
    ] {
        for n in [1, 2] {
            expect(
                s.copy_part(L, &up, n, copy("big", &r)),
                ErrorKind::TooLarge,
                Reason::PartTooLarge,
            );
        }
    }
    assert_eq!(objects(&s, L), before);
    assert_eq!(upload_snap(&s, L, &up), snap);
    // Exactly 96 MiB fits.
    let p = s
        .copy_part(L, &up, 2, copy("big", &format!("bytes=0-{}", 96 * MIB - 1)))
        .unwrap();
    assert_eq!(p.size, 96 * MIB);
}

#[test]

fn part_too_large_names_the_part() {
    let (_d, s) = store();
    assert_eq!(big_object(&s, "big", 20), 100 * MIB);
    let up = s.start_multipart(L, "dst", OCTET).unwrap();
    expect_part(
        s.upload_part(L, &up, 7, PartBody::new(PanicReader, 96 * MIB + 1)),
        ErrorKind::TooLarge,
        Reason::PartTooLarge,
        7,
    );
    expect_part(
        s.copy_part(L, &up, 8, copy("big", &format!("bytes=0-{}", 96 * MIB))),
        ErrorKind::TooLarge,
        Reason::PartTooLarge,
        8,
    );
    assert!(s.list_parts(L, &up).unwrap().is_empty());
}

#[test]
fn object_too_large_is_too_large() {
    let (_d, s) = store();
    s.put_object(L, "k", body(b"previous")).unwrap();
    let before = layer_snap(&s, L);
    for len in [192 * MIB + 1, 1 << 40, u64::MAX] {
        for key in ["k", "new"] {
            let e = expect(
                s.put_object(L, key, PartBody::new(PanicReader, len)),
                ErrorKind::TooLarge,
                Reason::ObjectTooLarge,
            );
            assert_eq!(e.part_number(), None, "{e}");
        }
    }
    assert_eq!(layer_snap(&s, L), before);
}

/// 5,334 copied parts of 96 MiB (500 GiB + 64 MiB), all by reference to one
/// 16 MiB extent: no data is written for them.
#[test]
fn upload_too_large_is_too_large() {
    let (_d, s) = store_with(opts().segment_size(64 * MIB).durability(Durability::None));
    s.put_object(L, "a", body(&gen(6, 16 * MIB_USIZE))).unwrap();
    let up = s.start_multipart(L, "b", OCTET).unwrap();
    for n in 1..=6 {
        s.copy_part(L, &up, n, copy("a", &format!("bytes=0-{}", 16 * MIB - 1)))
            .unwrap();
    }
    assert_eq!(s.complete_multipart(L, &up).unwrap().size, 96 * MIB);
    let huge = s.start_multipart(L, "huge", OCTET).unwrap();
    let range = format!("bytes=0-{}", 96 * MIB - 1);
    let parts: u32 = (500 * 1024) / 96 + 1;
    for n in 1..=parts {
        s.copy_part(L, &huge, n, copy("b", &range)).unwrap();
    }
    assert!(u64::from(parts) * 96 * MIB > 500 << 30);
    let before = (objects(&s, L), s.list_uploads(L).unwrap());
    let listed = s.list_parts(L, &huge).unwrap();
    let e = expect(
        s.complete_multipart(L, &huge),
        ErrorKind::TooLarge,
        Reason::UploadTooLarge,
    );
    assert_eq!(e.part_number(), None, "{e}");
    let refs: Vec<PartRef> = listed.iter().map(part_ref).collect();
    expect(
        s.complete_multipart_with(L, &huge, &refs),
        ErrorKind::TooLarge,
        Reason::UploadTooLarge,
    );
    assert_eq!((objects(&s, L), s.list_uploads(L).unwrap()), before);
    assert_eq!(s.list_parts(L, &huge).unwrap(), listed);
    expect(s.head(L, "huge"), ErrorKind::NotFound, Reason::UnknownKey);
    // One part fewer (just under 500 GiB) fits: the total was the cause.
    let o = s
        .complete_multipart_with(L, &huge, &refs[..refs.len() - 1])
        .unwrap();
    assert_eq!(o.size, u64::from(parts - 1) * 96 * MIB);
}

// ----- complete ---------------------------------------------------------

#[test]
fn part_too_small_names_the_part() {
    let (_d, s) = store();
    s.put_object(L, "k", body(b"the old object")).unwrap();
    let up = s.start_multipart(L, "k", OCTET).unwrap();
    let p1 = gen(7, 5 * MIB_USIZE);
    s.upload_part(L, &up, 1, body(&p1)).unwrap();
    // 5 MiB - 1: just under.
    s.upload_part(L, &up, 2, body(&gen(8, 5 * MIB_USIZE - 1)))
        .unwrap();
    s.upload_part(L, &up, 3, body(b"last")).unwrap();
    let before = layer_snap(&s, L);
    let snap = upload_snap(&s, L, &up);
    expect_part(
        s.complete_multipart(L, &up),
        ErrorKind::BadRequest,
        Reason::PartTooSmall,
        2,
    );
    let refs: Vec<PartRef> = snap.parts.iter().map(part_ref).collect();
    expect_part(
        s.complete_multipart_with(L, &up, &refs),
        ErrorKind::BadRequest,
        Reason::PartTooSmall,
        2,
    );
    assert_eq!(layer_snap(&s, L), before);
    assert_eq!(upload_snap(&s, L, &up), snap);
    // As the last part, the small one is fine.
    s.complete_multipart_with(L, &up, &refs[..2]).unwrap();
}

#[test]
fn part_not_mib_multiple_names_the_part() {
    let (_d, s) = store();
    let up = s.start_multipart(L, "k", OCTET).unwrap();
    s.upload_part(L, &up, 1, body(&gen(9, 5 * MIB_USIZE)))
        .unwrap();
    s.upload_part(L, &up, 2, body(&gen(10, 5 * MIB_USIZE + 512 * 1024)))
        .unwrap();
    s.upload_part(L, &up, 3, body(b"last")).unwrap();
    let before = layer_snap(&s, L);
    let snap = upload_snap(&s, L, &up);
    expect_part(
        s.complete_multipart(L, &up),
        ErrorKind::BadRequest,
        Reason::PartNotMibMultiple,
        2,
    );
    assert_eq!(layer_snap(&s, L), before);
    assert_eq!(upload_snap(&s, L, &up), snap);
}

#[test]
fn parts_not_consecutive_names_the_missing_part() {
    let (_d, s) = store();
    let up = s.start_multipart(L, "k", OCTET).unwrap();
    let p1 = s
        .upload_part(L, &up, 1, body(&gen(11, 5 * MIB_USIZE)))
        .unwrap();
    let p3 = s.upload_part(L, &up, 3, body(b"tail")).unwrap();
    let before = layer_snap(&s, L);
    let snap = upload_snap(&s, L, &up);
    // A gap: 2 is missing.
    expect_part(
        s.complete_multipart(L, &up),
        ErrorKind::BadRequest,
        Reason::PartsNotConsecutive,
        2,
    );
    expect_part(
        s.complete_multipart_with(L, &up, &[part_ref(&p3), part_ref(&p1)]),
        ErrorKind::BadRequest,
        Reason::PartsNotConsecutive,
        2,
    );
    // Not starting at 1.
    expect_part(
        s.complete_multipart_with(L, &up, &[part_ref(&p3)]),
        ErrorKind::BadRequest,
        Reason::PartsNotConsecutive,
        1,
    );
    assert_eq!(layer_snap(&s, L), before);
    assert_eq!(upload_snap(&s, L, &up), snap);
}

#[test]
fn part_listed_twice_names_the_part() {
    let (_d, s) = store();
    let (up, parts) = three_parts(&s, "k");
    let before = layer_snap(&s, L);
    let snap = upload_snap(&s, L, &up);
    expect_part(
        s.complete_multipart_with(
            L,
            &up,
            &[
                part_ref(&parts[0]),
                part_ref(&parts[1]),
                part_ref(&parts[1]),
                part_ref(&parts[2]),
            ],
        ),
        ErrorKind::BadRequest,
        Reason::PartListedTwice,
        2,
    );
    assert_eq!(layer_snap(&s, L), before);
    assert_eq!(upload_snap(&s, L, &up), snap);
}

#[test]
fn part_not_uploaded_names_the_part() {
    let (_d, s) = store();
    let (up, parts) = three_parts(&s, "k");
    let before = layer_snap(&s, L);
    let snap = upload_snap(&s, L, &up);
    // Number 4 was never uploaded (the id is part 3's).
    expect_part(
        s.complete_multipart_with(
            L,
            &up,
            &[
                part_ref(&parts[0]),
                part_ref(&parts[1]),
                part_ref(&parts[2]),
                PartRef {
                    number: 4,
                    id: parts[2].id.clone(),
                },
            ],
        ),
        ErrorKind::BadRequest,
        Reason::PartNotUploaded,
        4,
    );
    assert_eq!(layer_snap(&s, L), before);
    assert_eq!(upload_snap(&s, L, &up), snap);
}

#[test]
fn stale_part_id_names_the_part() {
    let (_d, s) = store();
    let (up, parts) = three_parts(&s, "k");
    let newer = s.upload_part(L, &up, 2, body(b"TWO")).unwrap();
    assert_ne!(newer.id, parts[1].id);
    let before = layer_snap(&s, L);
    let snap = upload_snap(&s, L, &up);
    // The overwritten part's old id.
    expect_part(
        s.complete_multipart_with(
            L,
            &up,
            &[
                part_ref(&parts[0]),
                part_ref(&parts[1]),
                part_ref(&parts[2]),
            ],
        ),
        ErrorKind::BadRequest,
        Reason::StalePartId,
        2,
    );
    // Another number's current id.
    expect_part(
        s.complete_multipart_with(
            L,
            &up,
            &[
                part_ref(&parts[0]),
                part_ref(&newer),
                PartRef {
                    number: 3,
                    id: newer.id.clone(),
                },
            ],
        ),
        ErrorKind::BadRequest,
        Reason::StalePartId,
        3,
    );
    assert_eq!(layer_snap(&s, L), before);
    assert_eq!(upload_snap(&s, L, &up), snap);
    // The current ids work (part 2 now last: small is fine).
    s.complete_multipart_with(L, &up, &[part_ref(&parts[0]), part_ref(&newer)])
        .unwrap();
}

#[test]
fn no_parts_is_bad_request() {
    let (_d, s) = store();
    s.put_object(L, "k", body(b"the old object")).unwrap();
    let empty = s.start_multipart(L, "k", OCTET).unwrap();
    let with_part = s.start_multipart(L, "k", OCTET).unwrap();
    s.upload_part(L, &with_part, 1, body(b"one")).unwrap();
    let before = layer_snap(&s, L);
    let snaps = (upload_snap(&s, L, &empty), upload_snap(&s, L, &with_part));
    expect(
        s.complete_multipart(L, &empty),
        ErrorKind::BadRequest,
        Reason::NoParts,
    );
    for up in [&empty, &with_part] {
        expect(
            s.complete_multipart_with(L, up, &[]),
            ErrorKind::BadRequest,
            Reason::NoParts,
        );
    }
    assert_eq!(layer_snap(&s, L), before);
    assert_eq!(
        (upload_snap(&s, L, &empty), upload_snap(&s, L, &with_part)),
        snaps
    );
}

#[test]
fn upload_completed_is_bad_request() {
    let (_d, s) = store();
    s.put_object(L, "src", body(b"source")).unwrap();
    let up = completed_upload(&s, "k");
    let before = layer_snap(&s, L);
    let results: Vec<(&str, Result<()>)> = vec![
        (
            "upload_part 1",
            s.upload_part(L, &up, 1, PartBody::new(PanicReader, 1))
                .map(|_| ()),
        ),
        (
            "upload_part 2",
            s.upload_part(L, &up, 2, PartBody::new(PanicReader, 1))
                .map(|_| ()),
        ),
        (
            "copy_part",
            s.copy_part(L, &up, 2, copy("src", "bytes=0-1")).map(|_| ()),
        ),
        (
            "complete_multipart",
            s.complete_multipart(L, &up).map(|_| ()),
        ),
        (
            "complete_multipart_with",
            s.complete_multipart_with(L, &up, &[]).map(|_| ()),
        ),
        ("abort_multipart", s.abort_multipart(L, &up)),
    ];
    for (call, r) in results {
        let e = r.expect_err(call);
        assert_eq!(
            (e.kind(), e.reason()),
            (ErrorKind::BadRequest, Some(Reason::UploadCompleted)),
            "{call}: {e}"
        );
    }
    assert_eq!(layer_snap(&s, L), before);
    assert_eq!(s.upload_status(L, &up).unwrap(), UploadStatus::Completed);
    assert_eq!(s.get(L, "k").unwrap().to_vec().unwrap(), b"done");
}

#[test]
fn upload_not_completed_is_bad_request() {
    let (_d, s) = store();
    let up = s.start_multipart(L, "k", OCTET).unwrap();
    s.upload_part(L, &up, 1, body(b"part")).unwrap();
    let snap = upload_snap(&s, L, &up);
    expect(
        s.upload_result(L, &up),
        ErrorKind::BadRequest,
        Reason::UploadNotCompleted,
    );
    assert_eq!(upload_snap(&s, L, &up), snap);
}

// ----- copy ranges ------------------------------------------------------

#[test]
fn copy_range_unaligned_is_not_satisfiable() {
    let (_d, s) = store();
    s.put_object(L, "src", body(&gen(12, 4 * MIB_USIZE)))
        .unwrap();
    let up = s.start_multipart(L, "dst", OCTET).unwrap();
    s.upload_part(L, &up, 1, body(b"keep")).unwrap();
    let before = layer_snap(&s, L);
    let snap = upload_snap(&s, L, &up);
    for (first, last) in [(1, 100), (MIB - 1, 2 * MIB), (MIB + 1, 3 * MIB), (512, 512)] {
        for n in [1, 2] {
            expect(
                s.copy_part(L, &up, n, copy("src", &format!("bytes={first}-{last}"))),
                ErrorKind::RangeNotSatisfiable,
                Reason::CopyRangeUnaligned,
            );
        }
    }
    assert_eq!(layer_snap(&s, L), before);
    assert_eq!(upload_snap(&s, L, &up), snap);
}

// `CopySourceChanged` is not tested: it needs the source to be deleted (and
// its extents freed) after `copy_part` has resolved the source but before
// its commit, a window with no lock held and no backend call in it, so only
// a race with another thread can hit it; no deterministic trigger through
// the public API exists.

#[test]
fn copy_range_open_is_not_satisfiable() {
    let (_d, s) = store();
    s.put_object(L, "src", body(&gen(13, 2 * MIB_USIZE)))
        .unwrap();
    let up = s.start_multipart(L, "dst", OCTET).unwrap();
    s.upload_part(L, &up, 1, body(b"keep")).unwrap();
    let before = layer_snap(&s, L);
    let snap = upload_snap(&s, L, &up);
    for r in ["bytes=0-", "bytes=-5", "bytes=1048576-", "bytes=-1048576"] {
        for n in [1, 2] {
            expect(
                s.copy_part(L, &up, n, copy("src", r)),
                ErrorKind::RangeNotSatisfiable,
                Reason::CopyRangeOpen,
            );
        }
    }
    assert_eq!(layer_snap(&s, L), before);
    assert_eq!(upload_snap(&s, L, &up), snap);
}

// ----- integrity --------------------------------------------------------

#[test]
fn checksum_mismatch_names_segment_and_block() {
    let dir = tempfile::tempdir().unwrap();
    let x = gen(14, 3 * MIB_USIZE + 100);
    let other = gen(15, MIB_USIZE + 3);
    {
        let s = Store::open(dir.path(), opts()).unwrap();
        s.create_layer(L, LayerConfig::default()).unwrap();
        s.put_object(L, "x", body(&x)).unwrap();
        // Records after it: the damaged extent is not the tail.
        s.put_object(L, "other", body(&other)).unwrap();
    }
    let files = segment_files(dir.path());
    let (path, data_at) = files
        .iter()
        .find_map(|p| {
            records(p)
                .into_iter()
                .find(|(_, kind, len)| *kind == KIND_EXTENT && *len == x.len() as u64)
                .map(|(off, _, _)| (p.clone(), off + RECORD_HEADER))
        })
        .expect("the extent of \"x\"");
    let seg = segment_id(&path);
    // A byte inside block 2.
    let block_start = data_at + 2 * MIB;
    let damaged = block_start + 12_345;
    flip(&path, damaged);
    {
        let s = Store::open(dir.path(), opts()).unwrap();
        let info = s.head(L, "x").unwrap();
        let blob = s.get(L, "x").unwrap();
        let e = expect(blob.to_vec(), ErrorKind::Corrupt, Reason::ChecksumMismatch);
        assert_eq!(e.location(), Some((seg, block_start)), "{e}");
        let e = expect(
            blob.read_range(
                format!("bytes={}-{}", 2 * MIB + 5, 2 * MIB + 6)
                    .parse()
                    .unwrap(),
            ),
            ErrorKind::Corrupt,
            Reason::ChecksumMismatch,
        );
        assert_eq!(e.location(), Some((seg, block_start)), "{e}");
        // Other blocks and objects still read, the object is still listed.
        let head: Vec<u8> = blob
            .read_range(format!("bytes=0-{}", 2 * MIB - 1).parse().unwrap())
            .unwrap()
            .iter()
            .flat_map(|s| s.iter().copied())
            .collect();
        assert_eq!(head, &x[..2 * MIB_USIZE]);
        assert_eq!(s.get(L, "other").unwrap().to_vec().unwrap(), other);
        assert_eq!(s.head(L, "x").unwrap(), info);
        assert!(!s.verify().unwrap().is_clean());
    }
    // The failed reads changed nothing: with the byte restored, all reads.
    flip(&path, damaged);
    let s = Store::open(dir.path(), opts()).unwrap();
    assert_eq!(s.get(L, "x").unwrap().to_vec().unwrap(), x);
    assert!(s.verify().unwrap().is_clean());
}

#[test]
fn corrupt_record_names_segment_and_offset() {
    let dir = tempfile::tempdir().unwrap();
    {
        let s = Store::open(dir.path(), opts()).unwrap();
        s.create_layer(L, LayerConfig::default()).unwrap();
        for (i, k) in ["a", "b", "c"].iter().enumerate() {
            s.put_object(L, k, body(&gen(20 + i as u64, 1000))).unwrap();
        }
    }
    let files = segment_files(dir.path());
    assert_eq!(files.len(), 1);
    let path = &files[0];
    let seg = segment_id(path);
    // The metadata record of the put of "a", with records after it.
    let recs = records(path);
    let metas: Vec<(usize, u64, u64)> = recs
        .iter()
        .enumerate()
        .filter(|(_, r)| r.1 == KIND_META)
        .map(|(i, r)| (i, r.0, r.2))
        .collect();
    assert!(metas.len() >= 4, "{recs:?}");
    let (i, off, len) = metas[1];
    assert!(i + 2 < recs.len(), "{recs:?}");
    let damaged = off + RECORD_HEADER + len / 2;
    flip(path, damaged);
    let names = fs::read_dir(dir.path()).unwrap().count();
    let e = expect(
        Store::open(dir.path(), opts()),
        ErrorKind::Corrupt,
        Reason::CorruptRecord,
    );
    assert_eq!(e.location(), Some((seg, off)), "{e}");
    // Open refused without touching the files: restored, everything opens.
    assert_eq!(fs::read_dir(dir.path()).unwrap().count(), names);
    assert_eq!(records(path), recs);
    flip(path, damaged);
    let s = Store::open(dir.path(), opts()).unwrap();
    for (i, k) in ["a", "b", "c"].iter().enumerate() {
        assert_eq!(
            s.get(L, k).unwrap().to_vec().unwrap(),
            gen(20 + i as u64, 1000)
        );
    }
}

// ----- I/O failures -----------------------------------------------------

fn faulty_opts(f: &Faulty) -> Options {
    opts()
        .durability(Durability::Sync)
        .backend(Arc::new(f.clone()))
}

/// A store on the faulty backend with layer `L`, objects "keep" and "src"
/// and an open upload with one part; the same calls every time.
fn faulty_store(f: &Faulty) -> (TempDir, Store, UploadId) {
    let dir = tempfile::tempdir().unwrap();
    let s = Store::open(dir.path(), faulty_opts(f)).unwrap();
    s.create_layer(L, LayerConfig::default()).unwrap();
    s.put_object(L, "keep", body(b"kept")).unwrap();
    s.put_object(L, "src", body(b"source")).unwrap();
    let up = s.start_multipart(L, "u", OCTET).unwrap();
    s.upload_part(L, &up, 1, body(b"part one")).unwrap();
    (dir, s, up)
}

#[test]
fn store_poisoned_after_failed_fsync() {
    let new = b"new object";
    // Dry run: which backend call of the put is its first fsync? (That
    // fsync "loses power", and the failing call is the last one counted.)
    let offset = {
        let f = Faulty::new();
        let (_dir, s, _) = faulty_store(&f);
        let calls = f.calls();
        f.crash_at_sync(f.syncs());
        s.put_object(L, "k", body(new)).unwrap_err();
        assert!(f.crashed());
        f.calls() - 1 - calls
    };
    // The same run, failing that one fsync with EIO.
    let f = Faulty::new();
    let (dir, s, up) = faulty_store(&f);
    let before = layer_snap(&s, L);
    let snap = upload_snap(&s, L, &up);
    let calls = f.calls();
    f.fail_call(calls + offset, EIO);
    let e = s.put_object(L, "k", body(new)).unwrap_err();
    assert!(f.fired(), "the injected fsync failure did not fire");
    assert_eq!(e.kind(), ErrorKind::Io, "{e}");
    // Every write now refuses, with the reason that says "reopen".
    let results: Vec<(&str, Result<()>)> = vec![
        ("put_object", s.put_object(L, "k2", body(b"x")).map(|_| ())),
        (
            "put_object again",
            s.put_object(L, "k", body(new)).map(|_| ()),
        ),
        (
            "upload_part",
            s.upload_part(L, &up, 2, body(b"x")).map(|_| ()),
        ),
        (
            "copy_part",
            s.copy_part(L, &up, 2, copy("src", "bytes=0-1")).map(|_| ()),
        ),
        ("copy_object", s.copy_object(L, "k3", "keep").map(|_| ())),
        ("create_layer", s.create_layer("m", LayerConfig::default())),
        (
            "start_multipart",
            s.start_multipart(L, "v", OCTET).map(|_| ()),
        ),
        (
            "complete_multipart",
            s.complete_multipart(L, &up).map(|_| ()),
        ),
        ("abort_multipart", s.abort_multipart(L, &up)),
        ("delete", s.delete(L, "keep")),
        ("sync", s.sync()),
    ];
    for (call, r) in results {
        let e = r.expect_err(call);
        assert_eq!(
            (e.kind(), e.reason()),
            (ErrorKind::Io, Some(Reason::StorePoisoned)),
            "{call}: {e}"
        );
    }
    // Reads go on and show nothing changed.
    assert_eq!(layer_snap(&s, L), before);
    assert_eq!(upload_snap(&s, L, &up), snap);
    assert_eq!(s.list_layers().len(), 1);
    drop(s);
    // Reopened, the store works again. The put whose fdatasync failed is
    // like a write cut by a crash: its record and data may have reached the
    // disk anyway, so it is wholly present or wholly absent; nothing else
    // changed.
    let s = Store::open(dir.path(), opts()).unwrap();
    let mut after = layer_snap(&s, L);
    if let Some(i) = after.objects.iter().position(|(o, _)| o.key == "k") {
        let (_, bytes) = after.objects.remove(i);
        assert_eq!(bytes, new, "the failed put is whole if present");
    }
    assert_eq!(after, before);
    s.put_object(L, "k", body(new)).unwrap();
    assert_eq!(s.get(L, "k").unwrap().to_vec().unwrap(), new);
}

#[test]
fn no_space_is_reported_and_reads_go_on() {
    let f = Faulty::new();
    let (dir, s, up) = faulty_store(&f);
    let before = layer_snap(&s, L);
    let snap = upload_snap(&s, L, &up);
    let bytes = gen(16, 2 * MIB_USIZE + 1);
    // A data write of the put (after the fallocate of its region and the
    // region header; see tests/crash.rs), then of an upload_part.
    for call in ["put_object", "upload_part"] {
        let calls = f.calls();
        f.fail_call(calls + 2, ENOSPC);
        let r = match call {
            "put_object" => s.put_object(L, "k", body(&bytes)).map(|_| ()),
            _ => s.upload_part(L, &up, 1, body(&bytes)).map(|_| ()),
        };
        assert!(f.fired(), "{call}: the injected ENOSPC did not fire");
        let e = r.expect_err(call);
        assert_eq!(
            (e.kind(), e.reason()),
            (ErrorKind::Io, Some(Reason::NoSpace)),
            "{call}: {e}"
        );
        // The store still answers reads, and nothing changed.
        assert_eq!(layer_snap(&s, L), before, "{call}");
        assert_eq!(upload_snap(&s, L, &up), snap, "{call}");
        expect(s.head(L, "k"), ErrorKind::NotFound, Reason::UnknownKey);
        assert_eq!(s.get(L, "keep").unwrap().to_vec().unwrap(), b"kept");
    }
    // A full disk is not a poisoned store: once space is back, writes work.
    s.put_object(L, "k", body(&bytes)).unwrap();
    s.upload_part(L, &up, 1, body(&bytes)).unwrap();
    drop(s);
    let s = Store::open(dir.path(), opts()).unwrap();
    assert_eq!(s.get(L, "k").unwrap().to_vec().unwrap(), bytes);
    assert_eq!(s.get(L, "keep").unwrap().to_vec().unwrap(), b"kept");
    assert_eq!(s.list_parts(L, &up).unwrap()[0].size, bytes.len() as u64);
}
