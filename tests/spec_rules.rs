//! One integration test (at least) per rule of SPEC.md (compaction and
//! `expire_uploads` aside). Every rejection test feeds the violation and
//! checks three things: the exact `ErrorKind`, that the message names the
//! offending value, and that nothing changed (parts, uploads, objects).

use std::fmt::Debug;
use std::io::{self, Read};
use std::sync::OnceLock;

use md5::Md5;
use partstore::*;
use sha1::Sha1;
use sha2::{Digest as _, Sha256};
use tempfile::TempDir;

// ----- shared helpers --------------------------------------------------

const MIB: u64 = 1 << 20;
const MIB_USIZE: usize = 1 << 20;
/// The layer every `store()` has, without content type or encoding.
const L: &str = "l";
const OCTET: &str = "application/octet-stream";

fn opts() -> Options {
    Options::default().segment_size(64 << 20)
}

/// A fresh store with no layers.
fn bare_store() -> (TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let s = Store::open(dir.path(), opts()).unwrap();
    (dir, s)
}

/// A fresh store with layer `L` (no content type, no encoding).
fn store() -> (TempDir, Store) {
    let (dir, s) = bare_store();
    s.create_layer(L, LayerConfig::default()).unwrap();
    (dir, s)
}

/// A body of exactly these bytes.
fn body(bytes: &[u8]) -> PartBody<&[u8]> {
    PartBody::new(bytes, bytes.len() as u64)
}

/// 16 MiB of deterministic, non-repeating bytes, shared by all tests.
fn pool() -> &'static [u8] {
    static POOL: OnceLock<Vec<u8>> = OnceLock::new();
    POOL.get_or_init(|| {
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        let mut v = Vec::with_capacity(16 << 20);
        while v.len() < 16 << 20 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            v.extend_from_slice(&x.to_le_bytes());
        }
        v
    })
}

/// `len` test bytes starting at `offset` of the pool (different offsets give
/// different contents).
fn data(offset: usize, len: usize) -> &'static [u8] {
    &pool()[offset..offset + len]
}

/// A reader that fails the test if anything reads it.
struct PanicReader;

impl Read for PanicReader {
    fn read(&mut self, _: &mut [u8]) -> io::Result<usize> {
        panic!("the body was read, but the call had to fail before reading it");
    }
}

/// Whether `msg` names `value`: a number must appear with no digit right
/// before or after it; anything else must appear as is or escaped the way
/// `{:?}` escapes it. A value over 64 characters may be shortened in
/// messages (the engine repeats the first 64): its first 40 must appear.
fn names_value(msg: &str, value: &str) -> bool {
    if value.chars().count() > 64 {
        let cut: String = value.chars().take(40).collect();
        return names_value(msg, &cut);
    }
    if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) {
        return msg.match_indices(value).any(|(i, _)| {
            let before = msg[..i].chars().next_back();
            let after = msg[i + value.len()..].chars().next();
            !before.is_some_and(|c| c.is_ascii_digit())
                && !after.is_some_and(|c| c.is_ascii_digit())
        });
    }
    msg.contains(value) || msg.contains(&value.escape_debug().to_string())
}

/// Asserts `r` failed with `kind` and a message naming every one of `names`.
#[track_caller]
fn expect_err<T: Debug>(r: Result<T>, kind: ErrorKind, names: &[&str]) -> Error {
    let e = match r {
        Ok(v) => panic!("expected a {kind:?} error, got Ok({v:?})"),
        Err(e) => e,
    };
    assert_eq!(e.kind(), kind, "wrong kind; the error was: {e}");
    let msg = e.to_string();
    for v in names {
        assert!(
            names_value(&msg, v),
            "error message {msg:?} does not name the offending value {v:?}"
        );
    }
    e
}

/// Everything observable about one upload.
#[derive(Debug, PartialEq)]
struct UploadSnap {
    parts: Vec<PartInfo>,
    status: UploadStatus,
    uploads: Vec<UploadSummary>,
}

fn upload_snap(s: &Store, layer: &str, up: &UploadId) -> UploadSnap {
    UploadSnap {
        parts: s.list_parts(layer, up).unwrap(),
        status: s.upload_status(layer, up).unwrap(),
        uploads: s.list_uploads(layer).unwrap(),
    }
}

/// Everything observable about one layer: every object with its info and
/// bytes, and every open upload.
#[derive(Debug, PartialEq)]
struct LayerSnap {
    objects: Vec<(ObjectInfo, Vec<u8>)>,
    uploads: Vec<UploadSummary>,
}

fn layer_snap(s: &Store, layer: &str) -> LayerSnap {
    let objects = list_all(s, layer, ListOptions::default().deep(true))
        .into_iter()
        .map(|item| match item {
            ListItem::Object(o) => {
                assert_eq!(s.head(layer, &o.key).unwrap(), o);
                let bytes = s.get(layer, &o.key).unwrap().to_vec().unwrap();
                (o, bytes)
            }
            ListItem::Prefix(p) => panic!("deep listing returned prefix {p:?}"),
        })
        .collect();
    LayerSnap {
        objects,
        uploads: s.list_uploads(layer).unwrap(),
    }
}

/// The info and bytes of one object.
fn object(s: &Store, layer: &str, key: &str) -> (ObjectInfo, Vec<u8>) {
    let info = s.head(layer, key).unwrap();
    let blob = s.get(layer, key).unwrap();
    assert_eq!(blob.info(), &info);
    (info, blob.to_vec().unwrap())
}

/// Completes `up` with every current part and returns the object's bytes.
fn complete_and_read(s: &Store, layer: &str, up: &UploadId) -> Vec<u8> {
    let o = s.complete_multipart(layer, up).unwrap();
    s.get(layer, &o.key).unwrap().to_vec().unwrap()
}

/// Reads one range (given as text) of a blob into a `Vec`.
fn read(blob: &Blob, range: &str) -> Result<Vec<u8>> {
    let r: ByteRange = range.parse()?;
    Ok(blob
        .read_range(r)?
        .iter()
        .flat_map(|s| s.iter().copied())
        .collect())
}

/// Follows every page of a listing, checking the paging rules on the way:
/// at most `limit` items a page, no empty page but a sole one, and the page
/// with the last items has no token.
fn list_all(s: &Store, layer: &str, options: ListOptions) -> Vec<ListItem> {
    let mut out = Vec::new();
    let mut token: Option<String> = None;
    for page_no in 0.. {
        let mut o = options.clone();
        o.page_token = token.clone();
        let page = s.list(layer, &o).unwrap();
        assert!(
            page.items.len() <= o.limit,
            "page of {} items over limit {}",
            page.items.len(),
            o.limit
        );
        assert!(
            !page.items.is_empty() || page_no == 0,
            "page {page_no} is empty: the previous page should not have had a token"
        );
        out.extend(page.items);
        match page.next_page_token {
            None => break,
            Some(t) => token = Some(t),
        }
        assert!(page_no < 100_000, "paging does not end");
    }
    out
}

/// Items as short strings: `O:key` for objects, `P:prefix` for prefixes.
fn item_names(items: &[ListItem]) -> Vec<String> {
    items
        .iter()
        .map(|i| match i {
            ListItem::Object(o) => format!("O:{}", o.key),
            ListItem::Prefix(p) => format!("P:{p}"),
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

fn crc_hex(b: &[u8]) -> String {
    format!("{:08x}", crc32c::crc32c(b))
}

fn digest(text: &str) -> Digest {
    text.parse().unwrap()
}

/// CRC32C of `bytes` repeated `times` times, without building the whole.
fn crc_repeated(bytes: &[u8], times: usize, tail: &[u8]) -> u32 {
    let mut crc = 0;
    for _ in 0..times {
        crc = crc32c::crc32c_append(crc, bytes);
    }
    crc32c::crc32c_append(crc, tail)
}

// ----- error kinds -----------------------------------------------------

#[test]
fn error_kind_http_status_values() {
    assert_eq!(ErrorKind::BadRequest.http_status(), 400);
    assert_eq!(ErrorKind::NotFound.http_status(), 404);
    assert_eq!(ErrorKind::Conflict.http_status(), 409);
    assert_eq!(ErrorKind::TooLarge.http_status(), 413);
    assert_eq!(ErrorKind::RangeNotSatisfiable.http_status(), 416);
    assert_eq!(ErrorKind::Corrupt.http_status(), 500);
    assert_eq!(ErrorKind::Io.http_status(), 500);
    // And through an actual error.
    let (_d, s) = store();
    let e = s.head(L, "missing").unwrap_err();
    assert_eq!(e.http_status(), 404);
}

// ----- part numbers ----------------------------------------------------

#[test]
fn part_number_zero_is_rejected() {
    let (_d, s) = store();
    let up = s.start_multipart(L, "k", OCTET).unwrap();
    s.upload_part(L, &up, 1, body(b"first")).unwrap();
    let before = upload_snap(&s, L, &up);
    expect_err(
        s.upload_part(L, &up, 0, body(b"zero")),
        ErrorKind::BadRequest,
        &["0"],
    );
    assert_eq!(upload_snap(&s, L, &up), before);
    assert_eq!(complete_and_read(&s, L, &up), b"first");
}

#[test]
fn part_number_10001_is_rejected() {
    let (_d, s) = store();
    let up = s.start_multipart(L, "k", OCTET).unwrap();
    s.upload_part(L, &up, 1, body(b"first")).unwrap();
    let before = upload_snap(&s, L, &up);
    expect_err(
        s.upload_part(L, &up, 10_001, body(b"too far")),
        ErrorKind::BadRequest,
        &["10001"],
    );
    expect_err(
        s.upload_part(L, &up, u32::MAX, body(b"too far")),
        ErrorKind::BadRequest,
        &[&u32::MAX.to_string()],
    );
    assert_eq!(upload_snap(&s, L, &up), before);
    assert_eq!(complete_and_read(&s, L, &up), b"first");
}

#[test]
fn part_numbers_1_and_10000_are_accepted() {
    let (_d, s) = store();
    let up = s.start_multipart(L, "k", OCTET).unwrap();
    s.upload_part(L, &up, 10_000, body(b"last")).unwrap();
    s.upload_part(L, &up, 1, body(b"first")).unwrap();
    let numbers: Vec<u32> = s
        .list_parts(L, &up)
        .unwrap()
        .iter()
        .map(|p| p.part_number)
        .collect();
    assert_eq!(numbers, [1, 10_000]);
}

#[test]
fn copy_part_number_outside_1_to_10000_is_rejected() {
    let (_d, s) = store();
    s.put_object(L, "src", body(data(0, 1000))).unwrap();
    let up = s.start_multipart(L, "k", OCTET).unwrap();
    s.upload_part(L, &up, 1, body(b"first")).unwrap();
    let before = upload_snap(&s, L, &up);
    for n in [0u32, 10_001] {
        expect_err(
            s.copy_part(
                L,
                &up,
                n,
                CopySource::new("src", "bytes=0-99".parse().unwrap()),
            ),
            ErrorKind::BadRequest,
            &[&n.to_string()],
        );
    }
    assert_eq!(upload_snap(&s, L, &up), before);
}

// ----- part size and body ----------------------------------------------

#[test]
fn declared_length_over_96_mib_is_too_large_before_reading() {
    let (_d, s) = store();
    let up = s.start_multipart(L, "k", OCTET).unwrap();
    s.upload_part(L, &up, 1, body(b"keep")).unwrap();
    let before = upload_snap(&s, L, &up);
    for len in [96 * MIB + 1, 1 << 40, u64::MAX] {
        expect_err(
            s.upload_part(L, &up, 1, PartBody::new(PanicReader, len)),
            ErrorKind::TooLarge,
            &[&len.to_string()],
        );
        expect_err(
            s.upload_part(L, &up, 2, PartBody::new(PanicReader, len)),
            ErrorKind::TooLarge,
            &[&len.to_string()],
        );
    }
    assert_eq!(upload_snap(&s, L, &up), before);
    assert_eq!(complete_and_read(&s, L, &up), b"keep");
}

#[test]
fn declared_length_of_exactly_96_mib_is_not_too_large() {
    // A declared 96 MiB is within the limit: a body that ends at once is
    // then a short body (BadRequest), not TooLarge.
    let (_d, s) = store();
    let up = s.start_multipart(L, "k", OCTET).unwrap();
    s.upload_part(L, &up, 1, body(b"keep")).unwrap();
    let before = upload_snap(&s, L, &up);
    let len = 96 * MIB;
    expect_err(
        s.upload_part(L, &up, 1, PartBody::new(&b"short"[..], len)),
        ErrorKind::BadRequest,
        &[&len.to_string()],
    );
    assert_eq!(upload_snap(&s, L, &up), before);
}

#[test]
fn short_body_is_bad_request_and_keeps_previous_part() {
    let (_d, s) = store();
    let up = s.start_multipart(L, "k", OCTET).unwrap();
    let previous = data(0, 3 * MIB_USIZE + 5);
    s.upload_part(L, &up, 1, body(previous)).unwrap();
    let before = upload_snap(&s, L, &up);
    // Declared 10, 5 given.
    expect_err(
        s.upload_part(L, &up, 1, PartBody::new(&b"12345"[..], 10)),
        ErrorKind::BadRequest,
        &["10"],
    );
    // A long body that ends short past the first chunks.
    let long = data(100, 9 * MIB_USIZE);
    let declared = 9 * MIB + 1;
    expect_err(
        s.upload_part(L, &up, 1, PartBody::new(long, declared)),
        ErrorKind::BadRequest,
        &[&declared.to_string()],
    );
    // A new number is not stored either.
    expect_err(
        s.upload_part(L, &up, 2, PartBody::new(&b"12345"[..], 10)),
        ErrorKind::BadRequest,
        &["10"],
    );
    assert_eq!(upload_snap(&s, L, &up), before);
    assert_eq!(complete_and_read(&s, L, &up), previous);
}

#[test]
fn long_body_is_bad_request() {
    let (_d, s) = store();
    let up = s.start_multipart(L, "k", OCTET).unwrap();
    s.upload_part(L, &up, 1, body(b"previous")).unwrap();
    let before = upload_snap(&s, L, &up);
    expect_err(
        s.upload_part(L, &up, 1, PartBody::new(&b"0123456789"[..], 5)),
        ErrorKind::BadRequest,
        &["5"],
    );
    // Declared 0 with bytes present.
    expect_err(
        s.upload_part(L, &up, 1, PartBody::new(&b"x"[..], 0)),
        ErrorKind::BadRequest,
        &["0"],
    );
    let long = data(0, 2 * MIB_USIZE);
    expect_err(
        s.upload_part(L, &up, 2, PartBody::new(long, 2 * MIB - 1)),
        ErrorKind::BadRequest,
        &[&(2 * MIB - 1).to_string()],
    );
    assert_eq!(upload_snap(&s, L, &up), before);
    assert_eq!(complete_and_read(&s, L, &up), b"previous");
}

#[test]
fn part_content_type_mismatch_is_rejected() {
    let (_d, s) = store();
    let up = s.start_multipart(L, "k", "application/json").unwrap();
    s.upload_part(L, &up, 1, body(b"{}")).unwrap();
    let before = upload_snap(&s, L, &up);
    expect_err(
        s.upload_part(L, &up, 1, body(b"text").content_type("text/plain")),
        ErrorKind::BadRequest,
        &["text/plain"],
    );
    assert_eq!(upload_snap(&s, L, &up), before);
    assert_eq!(complete_and_read(&s, L, &up), b"{}");
}

#[test]
fn part_content_type_matches_case_insensitively() {
    let (_d, s) = store();
    let up = s.start_multipart(L, "k", "application/json").unwrap();
    s.upload_part(L, &up, 1, body(b"[1]").content_type("Application/JSON"))
        .unwrap();
    s.upload_part(L, &up, 2, body(b"").content_type("application/json"))
        .unwrap();
    assert_eq!(s.list_parts(L, &up).unwrap().len(), 2);
}

/// Uploads with a digest of other bytes under `name`: BadRequest naming the
/// expected digest; the previous part stays and a new number is not stored.
fn digest_mismatch_keeps_previous_part(name: &str, hex_of: fn(&[u8]) -> String) {
    let (_d, s) = store();
    let up = s.start_multipart(L, "k", OCTET).unwrap();
    s.upload_part(L, &up, 1, body(b"previous")).unwrap();
    let before = upload_snap(&s, L, &up);
    let real = data(0, MIB_USIZE + 3);
    let wrong = hex_of(b"some other body");
    let d = digest(&format!("{name}:{wrong}"));
    for n in [1, 2] {
        expect_err(
            s.upload_part(L, &up, n, body(real).digest(d.clone())),
            ErrorKind::BadRequest,
            &[&wrong],
        );
    }
    assert_eq!(upload_snap(&s, L, &up), before);
    // The right digest of the same bytes is accepted.
    let right = digest(&format!("{name}:{}", hex_of(real)));
    s.upload_part(L, &up, 2, body(real).digest(right)).unwrap();
}

#[test]
fn sha256_digest_mismatch_is_rejected() {
    digest_mismatch_keeps_previous_part("SHA256", sha256_hex);
}

#[test]
fn md5_digest_mismatch_is_rejected() {
    digest_mismatch_keeps_previous_part("MD5", md5_hex);
}

#[test]
fn sha1_digest_mismatch_is_rejected() {
    digest_mismatch_keeps_previous_part("SHA1", sha1_hex);
}

#[test]
fn crc32c_digest_mismatch_is_rejected() {
    digest_mismatch_keeps_previous_part("CRC-32C", crc_hex);
}

#[test]
fn matching_digests_are_accepted() {
    let (_d, s) = store();
    let up = s.start_multipart(L, "k", OCTET).unwrap();
    // Spans several 1 MiB blocks and ends in a partial one.
    let b = data(7, 2 * MIB_USIZE + 17);
    let texts = [
        format!("SHA256:{}", sha256_hex(b)),
        format!("MD5:{}", md5_hex(b)),
        format!("SHA1:{}", sha1_hex(b)),
        format!("CRC-32C:{}", crc_hex(b)),
        format!("sha-256:{}", sha256_hex(b).to_uppercase()),
        format!("md5:{}", md5_hex(b).to_uppercase()),
        format!("sha-1:{}", sha1_hex(b)),
        format!("crc32c:{}", crc_hex(b).to_uppercase()),
    ];
    for (i, t) in texts.iter().enumerate() {
        let n = i as u32 + 1;
        let p = s
            .upload_part(L, &up, n, body(b).digest(digest(t)))
            .unwrap_or_else(|e| panic!("digest {t} was rejected: {e}"));
        assert_eq!(p.part_number, n);
        assert_eq!(p.size, b.len() as u64);
        assert_eq!(p.crc32c, crc32c::crc32c(b));
    }
    assert_eq!(s.list_parts(L, &up).unwrap().len(), texts.len());
    // An empty body with the digest of nothing.
    let empty = format!("SHA256:{}", sha256_hex(b""));
    s.upload_part(L, &up, 20, body(b"").digest(digest(&empty)))
        .unwrap();
}

#[test]
fn upload_part_returns_number_id_size_crc_and_a_new_id_each_time() {
    let (_d, s) = store();
    let up = s.start_multipart(L, "k", OCTET).unwrap();
    let a = s.upload_part(L, &up, 3, body(b"hello world")).unwrap();
    assert_eq!(a.part_number, 3);
    assert_eq!(a.size, 11);
    assert_eq!(a.crc32c, 0xc994_65aa);
    let b = s.upload_part(L, &up, 3, body(b"hello world")).unwrap();
    assert_ne!(a.id, b.id, "a new upload of part 3 needs a new id");
    let c = s.upload_part(L, &up, 4, body(b"hello world")).unwrap();
    assert_ne!(c.id, b.id);
    assert_ne!(c.id, a.id);
    let listed = s.list_parts(L, &up).unwrap();
    assert_eq!(listed.len(), 2);
    assert_eq!(
        (
            listed[0].part_number,
            &listed[0].id,
            listed[0].size,
            listed[0].crc32c
        ),
        (3, &b.id, 11, 0xc994_65aa)
    );
    assert_eq!(listed[1].id, c.id);
}

#[test]
fn reupload_replaces_part_atomically() {
    let (_d, s) = store();
    let up = s.start_multipart(L, "k", OCTET).unwrap();
    s.upload_part(L, &up, 1, body(b"old contents")).unwrap();
    let new = s.upload_part(L, &up, 1, body(b"new")).unwrap();
    let parts = s.list_parts(L, &up).unwrap();
    assert_eq!(parts.len(), 1);
    assert_eq!(parts[0].id, new.id);
    assert_eq!(parts[0].size, 3);
    assert_eq!(complete_and_read(&s, L, &up), b"new");
}

// ----- complete --------------------------------------------------------

#[test]
fn complete_with_no_parts_is_rejected() {
    let (_d, s) = store();
    let up = s.start_multipart(L, "k", OCTET).unwrap();
    let before = layer_snap(&s, L);
    let e = expect_err(s.complete_multipart(L, &up), ErrorKind::BadRequest, &[]);
    assert!(e.to_string().contains("part"), "{e}");
    expect_err(
        s.complete_multipart_with(L, &up, &[]),
        ErrorKind::BadRequest,
        &[],
    );
    assert_eq!(layer_snap(&s, L), before);
    assert!(matches!(
        s.upload_status(L, &up).unwrap(),
        UploadStatus::Open { parts: 0, .. }
    ));
    expect_err(s.head(L, "k"), ErrorKind::NotFound, &["k"]);
}

#[test]
fn complete_with_gap_in_part_numbers_is_rejected() {
    let (_d, s) = store();
    let up = s.start_multipart(L, "k", OCTET).unwrap();
    let p1 = data(0, 5 * MIB_USIZE);
    s.upload_part(L, &up, 1, body(p1)).unwrap();
    s.upload_part(L, &up, 3, body(b"tail")).unwrap();
    let before = layer_snap(&s, L);
    let parts_before = s.list_parts(L, &up).unwrap();
    expect_err(s.complete_multipart(L, &up), ErrorKind::BadRequest, &["2"]);
    assert_eq!(layer_snap(&s, L), before);
    assert_eq!(s.list_parts(L, &up).unwrap(), parts_before);
    // Parts must start at 1, too.
    let up2 = s.start_multipart(L, "k2", OCTET).unwrap();
    s.upload_part(L, &up2, 2, body(b"only part 2")).unwrap();
    expect_err(s.complete_multipart(L, &up2), ErrorKind::BadRequest, &["1"]);
    expect_err(s.head(L, "k2"), ErrorKind::NotFound, &["k2"]);
}

#[test]
fn complete_rejects_non_last_part_under_5_mib() {
    let (_d, s) = store();
    let up = s.start_multipart(L, "k", OCTET).unwrap();
    let p1 = data(0, 4 * MIB_USIZE);
    s.upload_part(L, &up, 1, body(p1)).unwrap();
    s.upload_part(L, &up, 2, body(b"x")).unwrap();
    let before = layer_snap(&s, L);
    let parts = s.list_parts(L, &up).unwrap();
    expect_err(
        s.complete_multipart(L, &up),
        ErrorKind::BadRequest,
        &[&(4 * MIB).to_string()],
    );
    // 5 MiB - 1 is still under.
    let up2 = s.start_multipart(L, "k2", OCTET).unwrap();
    s.upload_part(L, &up2, 1, body(data(0, 5 * MIB_USIZE - 1)))
        .unwrap();
    s.upload_part(L, &up2, 2, body(b"x")).unwrap();
    expect_err(
        s.complete_multipart(L, &up2),
        ErrorKind::BadRequest,
        &[&(5 * MIB - 1).to_string()],
    );
    assert_eq!(s.list_parts(L, &up).unwrap(), parts);
    let mut after = layer_snap(&s, L);
    after.uploads.retain(|u| u.upload != up2);
    assert_eq!(after, before);
}

#[test]
fn complete_rejects_non_last_part_not_multiple_of_1_mib() {
    let (_d, s) = store();
    let up = s.start_multipart(L, "k", OCTET).unwrap();
    let size = 5 * MIB_USIZE + 512 * 1024;
    s.upload_part(L, &up, 1, body(data(0, size))).unwrap();
    s.upload_part(L, &up, 2, body(b"x")).unwrap();
    let before = layer_snap(&s, L);
    expect_err(
        s.complete_multipart(L, &up),
        ErrorKind::BadRequest,
        &[&size.to_string()],
    );
    assert_eq!(layer_snap(&s, L), before);
}

#[test]
fn last_part_of_1_byte_is_fine() {
    let (_d, s) = store();
    let up = s.start_multipart(L, "k", OCTET).unwrap();
    let p1 = data(0, 5 * MIB_USIZE);
    s.upload_part(L, &up, 1, body(p1)).unwrap();
    s.upload_part(L, &up, 2, body(b"z")).unwrap();
    let o = s.complete_multipart(L, &up).unwrap();
    let mut whole = p1.to_vec();
    whole.push(b'z');
    assert_eq!(o.size, 5 * MIB + 1);
    assert_eq!(o.part_count, 2);
    assert_eq!(o.crc32c, crc32c::crc32c(&whole));
    assert_eq!(o.content_type, OCTET);
    assert_eq!(object(&s, L, "k"), (o, whole));
    // A single part of 1 byte is both first and last.
    let up2 = s.start_multipart(L, "one", OCTET).unwrap();
    s.upload_part(L, &up2, 1, body(b"1")).unwrap();
    let o2 = s.complete_multipart(L, &up2).unwrap();
    assert_eq!((o2.size, o2.part_count), (1, 1));
    assert_eq!(s.get(L, "one").unwrap().to_vec().unwrap(), b"1");
}

#[test]
fn complete_with_uses_exactly_the_listed_parts_in_any_order() {
    let (_d, s) = store();
    let up = s.start_multipart(L, "k", OCTET).unwrap();
    let a = data(0, 5 * MIB_USIZE);
    let b = data(3, 5 * MIB_USIZE);
    let p1 = s.upload_part(L, &up, 1, body(a)).unwrap();
    let p2 = s.upload_part(L, &up, 2, body(b)).unwrap();
    s.upload_part(L, &up, 3, body(b"left out")).unwrap();
    let o = s
        .complete_multipart_with(
            L,
            &up,
            &[
                PartRef {
                    number: 2,
                    id: p2.id.clone(),
                },
                PartRef {
                    number: 1,
                    id: p1.id.clone(),
                },
            ],
        )
        .unwrap();
    let whole = [a, b].concat();
    assert_eq!(o.part_count, 2);
    assert_eq!(o.size, 10 * MIB);
    assert_eq!(o.crc32c, crc32c::crc32c(&whole));
    assert_eq!(s.get(L, "k").unwrap().to_vec().unwrap(), whole);
    assert_eq!(s.upload_status(L, &up).unwrap(), UploadStatus::Completed);
    assert!(s.list_uploads(L).unwrap().is_empty());
}

/// An upload with parts 1 (5 MiB), 2 and 3 (small), returning their infos.
fn three_parts(s: &Store, key: &str) -> (UploadId, Vec<PartInfo>) {
    let up = s.start_multipart(L, key, OCTET).unwrap();
    let parts = vec![
        s.upload_part(L, &up, 1, body(data(0, 5 * MIB_USIZE)))
            .unwrap(),
        s.upload_part(L, &up, 2, body(b"two")).unwrap(),
        s.upload_part(L, &up, 3, body(b"three")).unwrap(),
    ];
    (up, parts)
}

fn part_ref(p: &PartInfo) -> PartRef {
    PartRef {
        number: p.part_number,
        id: p.id.clone(),
    }
}

#[test]
fn complete_with_stale_id_is_rejected() {
    let (_d, s) = store();
    let (up, parts) = three_parts(&s, "k");
    let newer = s.upload_part(L, &up, 2, body(b"TWO")).unwrap();
    assert_ne!(newer.id, parts[1].id);
    let before = layer_snap(&s, L);
    let listed = s.list_parts(L, &up).unwrap();
    expect_err(
        s.complete_multipart_with(L, &up, &[part_ref(&parts[0]), part_ref(&parts[1])]),
        ErrorKind::BadRequest,
        &[&parts[1].id],
    );
    assert_eq!(layer_snap(&s, L), before);
    assert_eq!(s.list_parts(L, &up).unwrap(), listed);
    // The current id works.
    s.complete_multipart_with(L, &up, &[part_ref(&parts[0]), part_ref(&newer)])
        .unwrap();
    assert!(s.get(L, "k").unwrap().to_vec().unwrap().ends_with(b"TWO"));
}

#[test]
fn complete_with_unknown_id_is_rejected() {
    let (_d, s) = store();
    let (up, parts) = three_parts(&s, "k");
    let before = layer_snap(&s, L);
    let listed = s.list_parts(L, &up).unwrap();
    // Another part's id, a malformed id and a well-formed id never issued.
    let other = parts[2].id.clone();
    for id in [other.as_str(), "not-an-id", "", "ffffffffffffff00"] {
        let e = expect_err(
            s.complete_multipart_with(
                L,
                &up,
                &[
                    part_ref(&parts[0]),
                    PartRef {
                        number: 2,
                        id: id.to_string(),
                    },
                ],
            ),
            ErrorKind::BadRequest,
            &[id],
        );
        if id.is_empty() {
            assert!(e.to_string().contains("id"), "{e}");
        }
    }
    assert_eq!(layer_snap(&s, L), before);
    assert_eq!(s.list_parts(L, &up).unwrap(), listed);
}

#[test]
fn complete_with_duplicate_number_is_rejected() {
    let (_d, s) = store();
    let (up, parts) = three_parts(&s, "k");
    let before = layer_snap(&s, L);
    let listed = s.list_parts(L, &up).unwrap();
    expect_err(
        s.complete_multipart_with(
            L,
            &up,
            &[
                part_ref(&parts[0]),
                part_ref(&parts[1]),
                part_ref(&parts[1]),
            ],
        ),
        ErrorKind::BadRequest,
        &["2"],
    );
    assert_eq!(layer_snap(&s, L), before);
    assert_eq!(s.list_parts(L, &up).unwrap(), listed);
}

#[test]
fn complete_with_missing_number_is_rejected() {
    let (_d, s) = store();
    let (up, parts) = three_parts(&s, "k");
    let before = layer_snap(&s, L);
    let listed = s.list_parts(L, &up).unwrap();
    // Part 2 left out of the list: 1 and 3 have a gap.
    expect_err(
        s.complete_multipart_with(L, &up, &[part_ref(&parts[0]), part_ref(&parts[2])]),
        ErrorKind::BadRequest,
        &["2"],
    );
    // A number the upload does not have.
    expect_err(
        s.complete_multipart_with(
            L,
            &up,
            &[
                part_ref(&parts[0]),
                PartRef {
                    number: 4,
                    id: parts[2].id.clone(),
                },
            ],
        ),
        ErrorKind::BadRequest,
        &["4"],
    );
    // Part 1 left out.
    expect_err(
        s.complete_multipart_with(L, &up, &[part_ref(&parts[1]), part_ref(&parts[2])]),
        ErrorKind::BadRequest,
        &["1"],
    );
    assert_eq!(layer_snap(&s, L), before);
    assert_eq!(s.list_parts(L, &up).unwrap(), listed);
}

#[test]
fn failed_complete_keeps_upload_open() {
    let (_d, s) = store();
    // The key exists already: a failed complete must not touch it.
    s.put_object(L, "k", body(b"the old object")).unwrap();
    let up = s.start_multipart(L, "k", OCTET).unwrap();
    s.upload_part(L, &up, 1, body(data(0, MIB_USIZE))).unwrap();
    s.upload_part(L, &up, 2, body(b"tail")).unwrap();
    let before = layer_snap(&s, L);
    let snap = upload_snap(&s, L, &up);
    expect_err(
        s.complete_multipart(L, &up),
        ErrorKind::BadRequest,
        &[&MIB.to_string()],
    );
    assert_eq!(layer_snap(&s, L), before);
    assert_eq!(upload_snap(&s, L, &up), snap);
    assert!(matches!(
        s.upload_status(L, &up).unwrap(),
        UploadStatus::Open { parts: 2, .. }
    ));
    // Fix part 1 and complete: the object is replaced.
    let p1 = data(0, 5 * MIB_USIZE);
    s.upload_part(L, &up, 1, body(p1)).unwrap();
    let old = s.head(L, "k").unwrap();
    let o = s.complete_multipart(L, &up).unwrap();
    assert_ne!(o.etag, old.etag);
    assert_eq!(
        s.get(L, "k").unwrap().to_vec().unwrap(),
        [p1, b"tail"].concat()
    );
}

#[test]
fn completion_replaces_an_existing_key() {
    let (_d, s) = store();
    let old = s.put_object(L, "k", body(b"old")).unwrap();
    let up = s.start_multipart(L, "k", "text/plain").unwrap();
    // Starting does not touch the existing object.
    assert_eq!(object(&s, L, "k"), (old.clone(), b"old".to_vec()));
    s.upload_part(L, &up, 1, body(b"new")).unwrap();
    let o = s.complete_multipart(L, &up).unwrap();
    assert_ne!(o.etag, old.etag);
    assert_eq!(o.content_type, "text/plain");
    assert_eq!(object(&s, L, "k"), (o, b"new".to_vec()));
}

// 5,334 copied parts of 96 MiB each (500 GiB + 64 MiB), all by reference
// to one 16 MiB extent: no data is written for them. Each `copy_part`
// combines the stored CRC of each 1 MiB block with the engine's own
// O(log n) combine (`digest::crc32c_combine`, about a microsecond), so the
// test runs in seconds even in a debug build and is not ignored.
#[test]
fn complete_over_500_gib_is_too_large() {
    let dir = tempfile::tempdir().unwrap();
    let s = Store::open(dir.path(), opts().durability(Durability::None)).unwrap();
    s.create_layer(L, LayerConfig::default()).unwrap();
    let a = data(0, 16 * MIB_USIZE);
    s.put_object(L, "a", body(a)).unwrap();
    let up = s.start_multipart(L, "b", OCTET).unwrap();
    for n in 1..=6 {
        s.copy_part(
            L,
            &up,
            n,
            CopySource::new("a", "bytes=0-16777215".parse().unwrap()),
        )
        .unwrap();
    }
    s.complete_multipart(L, &up).unwrap();
    assert_eq!(s.head(L, "b").unwrap().size, 96 * MIB);
    let huge = s.start_multipart(L, "huge", OCTET).unwrap();
    let range: ByteRange = format!("bytes=0-{}", 96 * MIB - 1).parse().unwrap();
    let parts = (500 * 1024) / 96 + 1;
    for n in 1..=parts {
        s.copy_part(L, &huge, n, CopySource::new("b", range))
            .unwrap();
    }
    let total = u64::from(parts) * 96 * MIB;
    assert!(total > 500 << 30);
    let before = layer_snap_without_bytes(&s);
    let listed = s.list_parts(L, &huge).unwrap();
    expect_err(
        s.complete_multipart(L, &huge),
        ErrorKind::TooLarge,
        &[&total.to_string()],
    );
    assert_eq!(layer_snap_without_bytes(&s), before);
    assert_eq!(s.list_parts(L, &huge).unwrap(), listed);
    expect_err(s.head(L, "huge"), ErrorKind::NotFound, &["huge"]);
    // Without the last part (5,333 parts, just under 500 GiB) it fits.
    let fewer: Vec<PartRef> = listed[..listed.len() - 1].iter().map(part_ref).collect();
    let o = s.complete_multipart_with(L, &huge, &fewer).unwrap();
    assert_eq!(o.size, total - 96 * MIB);
}

/// Object infos and open uploads of layer `L`, without reading bytes.
fn layer_snap_without_bytes(s: &Store) -> (Vec<ListItem>, Vec<UploadSummary>) {
    (
        list_all(s, L, ListOptions::default().deep(true)),
        s.list_uploads(L).unwrap(),
    )
}

// ----- abort, status, after completion ----------------------------------

/// A token no upload has.
fn unknown_token() -> UploadId {
    "0123456789abcdef0123456789abcdef".parse().unwrap()
}

#[test]
fn abort_unknown_upload_is_not_found() {
    let (_d, s) = store();
    let up = s.start_multipart(L, "k", OCTET).unwrap();
    let before = layer_snap(&s, L);
    let t = unknown_token();
    expect_err(
        s.abort_multipart(L, &t),
        ErrorKind::NotFound,
        &[&t.to_string()],
    );
    assert_eq!(layer_snap(&s, L), before);
    // Aborting twice: the second finds nothing.
    s.abort_multipart(L, &up).unwrap();
    expect_err(
        s.abort_multipart(L, &up),
        ErrorKind::NotFound,
        &[&up.to_string()],
    );
}

#[test]
fn abort_ends_an_open_upload() {
    let (_d, s) = store();
    let up = s.start_multipart(L, "k", OCTET).unwrap();
    s.upload_part(L, &up, 1, body(b"part")).unwrap();
    let other = s.start_multipart(L, "other", OCTET).unwrap();
    assert_eq!(s.stats().uploads, 2);
    s.abort_multipart(L, &up).unwrap();
    assert_eq!(s.stats().uploads, 1);
    let open: Vec<UploadId> = s
        .list_uploads(L)
        .unwrap()
        .iter()
        .map(|u| u.upload)
        .collect();
    assert_eq!(open, [other]);
    for r in [
        s.upload_part(L, &up, 2, body(b"x")).map(|_| ()),
        s.list_parts(L, &up).map(|_| ()),
        s.complete_multipart(L, &up).map(|_| ()),
    ] {
        expect_err(r, ErrorKind::NotFound, &[&up.to_string()]);
    }
    expect_err(s.head(L, "k"), ErrorKind::NotFound, &["k"]);
}

/// An upload of `key` completed with one part `b"done"`.
fn completed_upload(s: &Store, key: &str) -> UploadId {
    let up = s.start_multipart(L, key, OCTET).unwrap();
    s.upload_part(L, &up, 1, body(b"done")).unwrap();
    s.complete_multipart(L, &up).unwrap();
    up
}

#[test]
fn abort_after_completion_is_bad_request() {
    let (_d, s) = store();
    let up = completed_upload(&s, "k");
    let before = layer_snap(&s, L);
    expect_err(
        s.abort_multipart(L, &up),
        ErrorKind::BadRequest,
        &[&up.to_string()],
    );
    assert_eq!(layer_snap(&s, L), before);
    assert_eq!(s.upload_status(L, &up).unwrap(), UploadStatus::Completed);
}

#[test]
fn upload_after_completion_is_bad_request() {
    let (_d, s) = store();
    let up = completed_upload(&s, "k");
    s.put_object(L, "src", body(b"source")).unwrap();
    let before = layer_snap(&s, L);
    expect_err(
        s.upload_part(L, &up, 1, body(b"again")),
        ErrorKind::BadRequest,
        &[&up.to_string()],
    );
    expect_err(
        s.upload_part(L, &up, 2, body(b"more")),
        ErrorKind::BadRequest,
        &[&up.to_string()],
    );
    expect_err(
        s.copy_part(
            L,
            &up,
            2,
            CopySource::new("src", "bytes=0-1".parse().unwrap()),
        ),
        ErrorKind::BadRequest,
        &[&up.to_string()],
    );
    assert_eq!(layer_snap(&s, L), before);
    assert_eq!(s.upload_status(L, &up).unwrap(), UploadStatus::Completed);
}

#[test]
fn complete_after_completion_is_bad_request() {
    let (_d, s) = store();
    let up = completed_upload(&s, "k");
    let before = layer_snap(&s, L);
    expect_err(
        s.complete_multipart(L, &up),
        ErrorKind::BadRequest,
        &[&up.to_string()],
    );
    expect_err(
        s.complete_multipart_with(L, &up, &[]),
        ErrorKind::BadRequest,
        &[&up.to_string()],
    );
    assert_eq!(layer_snap(&s, L), before);
    assert_eq!(s.get(L, "k").unwrap().to_vec().unwrap(), b"done");
}

#[test]
fn upload_status_reports_open_and_completed() {
    let (_d, s) = store();
    let up = s.start_multipart(L, "k", OCTET).unwrap();
    match s.upload_status(L, &up).unwrap() {
        UploadStatus::Open { parts, bytes, .. } => assert_eq!((parts, bytes), (0, 0)),
        other => panic!("{other:?}"),
    }
    s.upload_part(L, &up, 1, body(b"12345")).unwrap();
    s.upload_part(L, &up, 2, body(b"678")).unwrap();
    let p1 = s.upload_part(L, &up, 1, body(b"1234")).unwrap();
    match s.upload_status(L, &up).unwrap() {
        UploadStatus::Open { parts, bytes, .. } => assert_eq!((parts, bytes), (2, 7)),
        other => panic!("{other:?}"),
    }
    s.complete_multipart_with(L, &up, &[part_ref(&p1)]).unwrap();
    assert_eq!(s.upload_status(L, &up).unwrap(), UploadStatus::Completed);
}

#[test]
fn upload_status_unknown_or_aborted_is_not_found() {
    let (_d, s) = store();
    let t = unknown_token();
    expect_err(
        s.upload_status(L, &t),
        ErrorKind::NotFound,
        &[&t.to_string()],
    );
    let up = s.start_multipart(L, "k", OCTET).unwrap();
    s.abort_multipart(L, &up).unwrap();
    expect_err(
        s.upload_status(L, &up),
        ErrorKind::NotFound,
        &[&up.to_string()],
    );
}

#[test]
fn upload_token_is_bound_to_its_layer() {
    let (_d, s) = store();
    s.create_layer("m", LayerConfig::default()).unwrap();
    s.put_object("m", "src", body(b"source in m")).unwrap();
    let up = s.start_multipart(L, "k", OCTET).unwrap();
    let p1 = s.upload_part(L, &up, 1, body(b"one")).unwrap();
    let before_l = layer_snap(&s, L);
    let before_m = layer_snap(&s, "m");
    let snap = upload_snap(&s, L, &up);
    let token = up.to_string();
    let results: Vec<(&str, Result<()>)> = vec![
        (
            "upload_part",
            s.upload_part("m", &up, 2, body(b"x")).map(|_| ()),
        ),
        (
            "copy_part",
            s.copy_part(
                "m",
                &up,
                2,
                CopySource::new("src", "bytes=0-3".parse().unwrap()),
            )
            .map(|_| ()),
        ),
        ("list_parts", s.list_parts("m", &up).map(|_| ())),
        (
            "list_parts_page",
            s.list_parts_page("m", &up, 0, 10).map(|_| ()),
        ),
        ("upload_status", s.upload_status("m", &up).map(|_| ())),
        (
            "complete_multipart",
            s.complete_multipart("m", &up).map(|_| ()),
        ),
        (
            "complete_multipart_with",
            s.complete_multipart_with("m", &up, &[part_ref(&p1)])
                .map(|_| ()),
        ),
        ("abort_multipart", s.abort_multipart("m", &up)),
    ];
    for (call, r) in results {
        let e = r.expect_err(call);
        assert_eq!(e.kind(), ErrorKind::NotFound, "{call}: {e}");
        assert!(e.to_string().contains(&token), "{call}: {e}");
    }
    assert!(s.list_uploads("m").unwrap().is_empty());
    assert_eq!(layer_snap(&s, L), before_l);
    assert_eq!(layer_snap(&s, "m"), before_m);
    assert_eq!(upload_snap(&s, L, &up), snap);
}

#[test]
fn upload_tokens_are_opaque_and_distinct() {
    let (_d, s) = store();
    let a = s.start_multipart(L, "k", OCTET).unwrap();
    let b = s.start_multipart(L, "k", OCTET).unwrap();
    assert_ne!(a, b);
    let text = a.to_string();
    assert!(
        text.len() >= 32,
        "a token carries at least 128 bits: {text}"
    );
    assert_eq!(text.parse::<UploadId>().unwrap(), a);
    // Two uploads of one key are independent.
    s.upload_part(L, &a, 1, body(b"a")).unwrap();
    assert!(s.list_parts(L, &b).unwrap().is_empty());
}

#[test]
fn list_uploads_shows_open_uploads() {
    let (_d, s) = store();
    let t0 = std::time::SystemTime::now() - std::time::Duration::from_secs(1);
    let a = s.start_multipart(L, "a/x", OCTET).unwrap();
    let b = s.start_multipart(L, "b", OCTET).unwrap();
    let c = s.start_multipart(L, "c", OCTET).unwrap();
    s.upload_part(L, &a, 1, body(b"1")).unwrap();
    s.upload_part(L, &a, 2, body(b"2")).unwrap();
    s.upload_part(L, &c, 1, body(b"c")).unwrap();
    s.complete_multipart(L, &c).unwrap();
    s.abort_multipart(L, &b).unwrap();
    let d = s.start_multipart(L, "d", OCTET).unwrap();
    let list = s.list_uploads(L).unwrap();
    let mut got: Vec<(String, UploadId, usize)> = list
        .iter()
        .map(|u| (u.key.clone(), u.upload, u.parts))
        .collect();
    got.sort();
    assert_eq!(got, [("a/x".to_string(), a, 2), ("d".to_string(), d, 0)]);
    for u in &list {
        assert!(u.started >= t0, "{u:?}");
        assert!(u.last_activity >= u.started, "{u:?}");
    }
}

#[test]
fn list_parts_is_ascending_and_pages() {
    let (_d, s) = store();
    let up = s.start_multipart(L, "k", OCTET).unwrap();
    for n in [5u32, 3, 1, 4, 2, 30, 12] {
        s.upload_part(L, &up, n, body(&[n as u8])).unwrap();
    }
    let all: Vec<u32> = s
        .list_parts(L, &up)
        .unwrap()
        .iter()
        .map(|p| p.part_number)
        .collect();
    assert_eq!(all, [1, 2, 3, 4, 5, 12, 30]);
    let mut paged = Vec::new();
    let mut after = 0;
    loop {
        let page = s.list_parts_page(L, &up, after, 2).unwrap();
        assert!(page.len() <= 2);
        if page.is_empty() {
            break;
        }
        after = page.last().unwrap().part_number;
        paged.extend(page.iter().map(|p| p.part_number));
    }
    assert_eq!(paged, all);
}

// ----- layers ----------------------------------------------------------

#[test]
fn create_existing_layer_is_conflict() {
    let (_d, s) = bare_store();
    s.create_layer("maps", LayerConfig::new("application/json"))
        .unwrap();
    s.put_object("maps", "k", body(b"{}")).unwrap();
    let layers = s.list_layers();
    let before = layer_snap(&s, "maps");
    for config in [
        LayerConfig::default(),
        LayerConfig::new("application/json"),
        LayerConfig::new("text/plain").content_encoding("gzip"),
    ] {
        expect_err(
            s.create_layer("maps", config),
            ErrorKind::Conflict,
            &["maps"],
        );
    }
    assert_eq!(s.list_layers(), layers);
    assert_eq!(layer_snap(&s, "maps"), before);
}

#[test]
fn unknown_layer_is_not_found_for_every_call() {
    let (_d, s) = store();
    s.put_object(L, "k", body(b"data")).unwrap();
    let up = s.start_multipart(L, "u", OCTET).unwrap();
    let p1 = s.upload_part(L, &up, 1, body(b"part")).unwrap();
    let before = layer_snap(&s, L);
    let snap = upload_snap(&s, L, &up);
    let x = "nope";
    let results: Vec<(&str, Result<()>)> = vec![
        ("put_object", s.put_object(x, "k", body(b"d")).map(|_| ())),
        ("copy_object", s.copy_object(x, "k2", "k").map(|_| ())),
        ("head", s.head(x, "k").map(|_| ())),
        ("get", s.get(x, "k").map(|_| ())),
        ("delete", s.delete(x, "k")),
        ("list", s.list(x, &ListOptions::default()).map(|_| ())),
        (
            "list deep",
            s.list(x, &ListOptions::default().deep(true).parent("a"))
                .map(|_| ()),
        ),
        (
            "start_multipart",
            s.start_multipart(x, "u", OCTET).map(|_| ()),
        ),
        (
            "upload_part",
            s.upload_part(x, &up, 2, body(b"p")).map(|_| ()),
        ),
        (
            "copy_part",
            s.copy_part(
                x,
                &up,
                2,
                CopySource::new("k", "bytes=0-1".parse().unwrap()),
            )
            .map(|_| ()),
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
        assert_eq!(e.kind(), ErrorKind::NotFound, "{call}: {e}");
        assert!(e.to_string().contains(x), "{call}: {e}");
    }
    assert_eq!(s.list_layers().len(), 1);
    assert_eq!(layer_snap(&s, L), before);
    assert_eq!(upload_snap(&s, L, &up), snap);
}

#[test]
fn invalid_layer_ids_are_rejected() {
    let (_d, s) = bare_store();
    s.create_layer("keep", LayerConfig::default()).unwrap();
    let layers = s.list_layers();
    let long = format!("layer-{}", "x".repeat(58)); // 64 characters
    assert_eq!(long.len(), 64);
    for id in [
        "",
        "a b",
        " a",
        "a/b",
        "a*b",
        "a:b",
        "é",
        "a+b",
        "a,b",
        "a\u{0}b",
        "a~b",
        "a=b",
        "(a)",
        long.as_str(),
    ] {
        let e = expect_err(
            s.create_layer(id, LayerConfig::default()),
            ErrorKind::BadRequest,
            &[],
        );
        if !id.is_empty() {
            let shown = &id[..id.len().min(30)];
            assert!(names_value(&e.to_string(), shown), "{id:?}: {e}");
        }
    }
    assert_eq!(s.list_layers(), layers);
}

#[test]
fn valid_layer_ids_are_accepted() {
    let (_d, s) = bare_store();
    // 63: every S3 bucket name is a layer id.
    let longest = "y".repeat(63);
    let ids = [
        "a",
        "Z",
        "0",
        "-",
        "_",
        ".",
        "AZaz09-_.",
        "my.layer_v2-EU",
        longest.as_str(),
        "my-s3.bucket-name",
    ];
    for id in ids {
        s.create_layer(id, LayerConfig::default())
            .unwrap_or_else(|e| panic!("layer id {id:?} rejected: {e}"));
        s.put_object(id, "k", body(id.as_bytes())).unwrap();
        assert_eq!(s.get(id, "k").unwrap().to_vec().unwrap(), id.as_bytes());
    }
    let mut got: Vec<String> = s.list_layers().into_iter().map(|(id, _)| id).collect();
    got.sort();
    let mut want: Vec<String> = ids.iter().map(|s| s.to_string()).collect();
    want.sort();
    assert_eq!(got, want);
}

#[test]
fn layer_content_type_binds_uploads() {
    let (_d, s) = bare_store();
    s.create_layer("json", LayerConfig::new("application/json"))
        .unwrap();
    s.put_object("json", "existing", body(b"{}")).unwrap();
    let before = layer_snap(&s, "json");
    // Mismatches: BadRequest naming the type, nothing stored.
    expect_err(
        s.start_multipart("json", "k", "text/plain"),
        ErrorKind::BadRequest,
        &["text/plain"],
    );
    expect_err(
        s.put_object("json", "k", body(b"x").content_type("text/plain")),
        ErrorKind::BadRequest,
        &["text/plain"],
    );
    expect_err(
        s.put_object("json", "existing", body(b"x").content_type(OCTET)),
        ErrorKind::BadRequest,
        &[OCTET],
    );
    assert_eq!(layer_snap(&s, "json"), before);
    // Case-insensitive matches.
    let up = s.start_multipart("json", "k", "APPLICATION/Json").unwrap();
    s.upload_part("json", &up, 1, body(b"[]").content_type("application/JSON"))
        .unwrap();
    let o = s.complete_multipart("json", &up).unwrap();
    assert!(
        o.content_type.eq_ignore_ascii_case("application/json"),
        "{o:?}"
    );
    let o = s
        .put_object("json", "p", body(b"1").content_type("Application/Json"))
        .unwrap();
    assert!(
        o.content_type.eq_ignore_ascii_case("application/json"),
        "{o:?}"
    );
    // A put_object that names none gets the layer's.
    let o = s.put_object("json", "none", body(b"2")).unwrap();
    assert_eq!(o.content_type, "application/json");
    assert_eq!(
        s.head("json", "none").unwrap().content_type,
        "application/json"
    );
}

#[test]
fn layer_without_content_type_accepts_any() {
    let (_d, s) = store();
    for (i, ct) in ["text/plain", "application/json", "image/png", OCTET]
        .iter()
        .enumerate()
    {
        let key = format!("k{i}");
        let o = s.put_object(L, &key, body(b"x").content_type(*ct)).unwrap();
        assert_eq!(o.content_type, *ct);
        let up = s.start_multipart(L, &format!("m{i}"), *ct).unwrap();
        s.upload_part(L, &up, 1, body(b"y")).unwrap();
        assert_eq!(s.complete_multipart(L, &up).unwrap().content_type, *ct);
    }
}

#[test]
fn layer_content_encoding_binds_uploads() {
    let (_d, s) = bare_store();
    s.create_layer("gz", LayerConfig::default().content_encoding("gzip"))
        .unwrap();
    s.put_object("gz", "existing", body(b"z")).unwrap();
    let before = layer_snap(&s, "gz");
    expect_err(
        s.put_object("gz", "k", body(b"x").content_encoding("br")),
        ErrorKind::BadRequest,
        &["br"],
    );
    expect_err(
        s.put_object("gz", "existing", body(b"x").content_encoding("identity")),
        ErrorKind::BadRequest,
        &["identity"],
    );
    expect_err(
        s.start_multipart("gz", "k", UploadOptions::new(OCTET).content_encoding("br")),
        ErrorKind::BadRequest,
        &["br"],
    );
    assert_eq!(layer_snap(&s, "gz"), before);
    // None given: the layer's.
    let o = s.put_object("gz", "a", body(b"x")).unwrap();
    assert_eq!(o.content_encoding.as_deref(), Some("gzip"));
    let up = s.start_multipart("gz", "b", OCTET).unwrap();
    s.upload_part("gz", &up, 1, body(b"y")).unwrap();
    let o = s.complete_multipart("gz", &up).unwrap();
    assert_eq!(o.content_encoding.as_deref(), Some("gzip"));
    // Case-insensitive match.
    let o = s
        .put_object("gz", "c", body(b"x").content_encoding("GZip"))
        .unwrap();
    assert!(o
        .content_encoding
        .as_deref()
        .is_some_and(|e| e.eq_ignore_ascii_case("gzip")));
    let up = s
        .start_multipart(
            "gz",
            "d",
            UploadOptions::new(OCTET).content_encoding("GZIP"),
        )
        .unwrap();
    s.upload_part("gz", &up, 1, body(b"y")).unwrap();
    s.complete_multipart("gz", &up).unwrap();
    // Without a bound encoding, any goes.
    let (_d2, s2) = store();
    let o = s2
        .put_object(L, "k", body(b"x").content_encoding("br"))
        .unwrap();
    assert_eq!(o.content_encoding.as_deref(), Some("br"));
    let o = s2.put_object(L, "n", body(b"x")).unwrap();
    assert_eq!(o.content_encoding, None);
}

// ----- objects ---------------------------------------------------------

#[test]
fn put_object_over_192_mib_declared_is_too_large_before_reading() {
    let (_d, s) = store();
    s.put_object(L, "k", body(b"previous")).unwrap();
    let before = layer_snap(&s, L);
    for len in [192 * MIB + 1, 1 << 40, u64::MAX] {
        for key in ["k", "new"] {
            expect_err(
                s.put_object(L, key, PartBody::new(PanicReader, len)),
                ErrorKind::TooLarge,
                &[&len.to_string()],
            );
        }
    }
    assert_eq!(layer_snap(&s, L), before);
}

#[test]
fn put_object_of_exactly_192_mib_declared_is_not_too_large() {
    let (_d, s) = store();
    s.put_object(L, "k", body(b"previous")).unwrap();
    let before = layer_snap(&s, L);
    let len = 192 * MIB;
    expect_err(
        s.put_object(L, "k", PartBody::new(&b"short"[..], len)),
        ErrorKind::BadRequest,
        &[&len.to_string()],
    );
    assert_eq!(layer_snap(&s, L), before);
}

#[test]
fn put_object_short_or_long_body_is_bad_request() {
    let (_d, s) = store();
    s.put_object(L, "k", body(b"previous")).unwrap();
    let before = layer_snap(&s, L);
    expect_err(
        s.put_object(L, "k", PartBody::new(&b"abc"[..], 7)),
        ErrorKind::BadRequest,
        &["7"],
    );
    expect_err(
        s.put_object(L, "k", PartBody::new(&b"abcdefgh"[..], 3)),
        ErrorKind::BadRequest,
        &["3"],
    );
    expect_err(
        s.put_object(L, "new", PartBody::new(&b"abc"[..], 7)),
        ErrorKind::BadRequest,
        &["7"],
    );
    assert_eq!(layer_snap(&s, L), before);
}

#[test]
fn put_object_digest_is_checked() {
    let (_d, s) = store();
    s.put_object(L, "k", body(b"previous")).unwrap();
    let before = layer_snap(&s, L);
    let wrong = sha256_hex(b"not it");
    expect_err(
        s.put_object(
            L,
            "k",
            body(b"new").digest(digest(&format!("SHA256:{wrong}"))),
        ),
        ErrorKind::BadRequest,
        &[&wrong],
    );
    assert_eq!(layer_snap(&s, L), before);
    let o = s
        .put_object(
            L,
            "k",
            body(b"new").digest(digest(&format!("MD5:{}", md5_hex(b"new")))),
        )
        .unwrap();
    assert_eq!(o.size, 3);
}

#[test]
fn put_object_replaces_existing_object() {
    let (_d, s) = store();
    let a = s
        .put_object(L, "k", body(b"first version").content_type("text/plain"))
        .unwrap();
    let b = s.put_object(L, "k", body(b"second")).unwrap();
    assert_ne!(a.etag, b.etag);
    assert_eq!(b.size, 6);
    assert_eq!(b.content_type, OCTET);
    assert_eq!(object(&s, L, "k"), (b.clone(), b"second".to_vec()));
    // Same size, other bytes: the etag still changes.
    let c = s.put_object(L, "k", body(b"SECOND")).unwrap();
    assert_ne!(c.etag, b.etag);
    assert_eq!(list_all(&s, L, ListOptions::default()).len(), 1);
}

#[test]
fn put_object_default_content_type_is_octet_stream() {
    let (_d, s) = store();
    let o = s.put_object(L, "k", body(b"x")).unwrap();
    assert_eq!(o.content_type, "application/octet-stream");
    assert_eq!(
        s.head(L, "k").unwrap().content_type,
        "application/octet-stream"
    );
}

#[test]
fn object_info_has_size_type_crc_etag_and_part_count() {
    let (_d, s) = store();
    let t0 = std::time::SystemTime::now() - std::time::Duration::from_secs(2);
    let b = data(11, MIB_USIZE + 99);
    let o = s
        .put_object(L, "dir/k", body(b).content_type("image/png"))
        .unwrap();
    assert_eq!(o.key, "dir/k");
    assert_eq!(o.size, b.len() as u64);
    assert_eq!(o.content_type, "image/png");
    assert_eq!(o.content_encoding, None);
    assert_eq!(o.crc32c, crc32c::crc32c(b));
    assert_eq!(o.part_count, 1);
    assert!(!o.etag.is_empty());
    assert!(o.last_modified >= t0);
    assert_eq!(object(&s, L, "dir/k"), (o, b.to_vec()));
    // Empty object.
    let e = s.put_object(L, "empty", body(b"")).unwrap();
    assert_eq!((e.size, e.crc32c), (0, 0));
    assert!(s.get(L, "empty").unwrap().to_vec().unwrap().is_empty());
}

#[test]
fn head_and_get_of_missing_key_are_not_found() {
    let (_d, s) = store();
    s.put_object(L, "present", body(b"x")).unwrap();
    expect_err(s.head(L, "absent"), ErrorKind::NotFound, &["absent"]);
    expect_err(s.get(L, "absent"), ErrorKind::NotFound, &["absent"]);
    s.delete(L, "present").unwrap();
    expect_err(s.head(L, "present"), ErrorKind::NotFound, &["present"]);
    expect_err(s.get(L, "present"), ErrorKind::NotFound, &["present"]);
}

#[test]
fn copy_object_carries_content_type_and_encoding() {
    let (_d, s) = store();
    let b = data(5, 2 * MIB_USIZE + 1);
    let src = s
        .put_object(
            L,
            "src",
            body(b).content_type("text/csv").content_encoding("gzip"),
        )
        .unwrap();
    let o = s.copy_object(L, "a/dst", "src").unwrap();
    assert_eq!(o.key, "a/dst");
    assert_eq!(o.size, src.size);
    assert_eq!(o.content_type, "text/csv");
    assert_eq!(o.content_encoding.as_deref(), Some("gzip"));
    assert_eq!(o.crc32c, src.crc32c);
    assert_eq!(object(&s, L, "a/dst"), (o, b.to_vec()));
    // The source is unchanged, and deleting it later leaves the copy.
    assert_eq!(object(&s, L, "src"), (src, b.to_vec()));
    s.delete(L, "src").unwrap();
    assert_eq!(s.get(L, "a/dst").unwrap().to_vec().unwrap(), b);
}

#[test]
fn copy_object_of_missing_source_is_not_found() {
    let (_d, s) = store();
    s.put_object(L, "dst", body(b"existing dst")).unwrap();
    let before = layer_snap(&s, L);
    expect_err(
        s.copy_object(L, "dst", "nothing/here"),
        ErrorKind::NotFound,
        &["nothing/here"],
    );
    expect_err(
        s.copy_object(L, "new", "nothing/here"),
        ErrorKind::NotFound,
        &["nothing/here"],
    );
    assert_eq!(layer_snap(&s, L), before);
}

#[test]
fn delete_is_idempotent() {
    let (_d, s) = store();
    s.put_object(L, "other", body(b"stays")).unwrap();
    s.delete(L, "never/existed").unwrap();
    s.put_object(L, "k", body(b"x")).unwrap();
    s.delete(L, "k").unwrap();
    s.delete(L, "k").unwrap();
    expect_err(s.head(L, "k"), ErrorKind::NotFound, &["k"]);
    assert_eq!(object(&s, L, "other").1, b"stays");
    assert_eq!(
        item_names(&list_all(&s, L, ListOptions::default())),
        ["O:other"]
    );
}

// ----- keys ------------------------------------------------------------

#[test]
fn invalid_keys_are_rejected() {
    let (_d, s) = store();
    s.put_object(L, "src", body(b"source")).unwrap();
    let before = layer_snap(&s, L);
    let long = format!("long-key-{}", "x".repeat(442)); // 451 characters
    assert_eq!(long.len(), 451);
    let bad = [
        "",
        "a b",
        " a",
        "a ",
        "a*b",
        "*",
        "a:b",
        "a?b",
        "a+b",
        "a,b",
        "a~b",
        "a#b",
        "a%20b",
        "a\\b",
        "a\u{0}b",
        "a\nb",
        "é",
        "/a",
        "a/",
        "/",
        "a//b",
        "a/b//c",
        long.as_str(),
    ];
    for key in bad {
        let results: Vec<(&str, Result<()>)> = vec![
            ("put_object", s.put_object(L, key, body(b"x")).map(|_| ())),
            (
                "start_multipart",
                s.start_multipart(L, key, OCTET).map(|_| ()),
            ),
            ("copy_object dst", s.copy_object(L, key, "src").map(|_| ())),
        ];
        for (call, r) in results {
            let e = r.expect_err(&format!("{call} accepted key {key:?}"));
            assert_eq!(e.kind(), ErrorKind::BadRequest, "{call} {key:?}: {e}");
            if !key.is_empty() {
                let shown = &key[..key.len().min(40)];
                assert!(
                    names_value(&e.to_string(), shown),
                    "{call} {key:?}: message does not name the key: {e}"
                );
            }
        }
    }
    assert_eq!(layer_snap(&s, L), before);
}

#[test]
fn valid_keys_are_accepted() {
    let (_d, s) = store();
    let k450 = format!("{}/{}", "d".repeat(200), "f".repeat(249));
    assert_eq!(k450.len(), 450);
    let keys = [
        "a",
        "0",
        "Z",
        ".",
        "..",
        "-",
        "_",
        "A-Z_a-z.0-9",
        "a.[b]=(c){d}/e_f-g",
        "[]=(){}._-",
        "x/y/z",
        "a/./b",
        k450.as_str(),
    ];
    for key in keys {
        let o = s
            .put_object(L, key, body(key.as_bytes()))
            .unwrap_or_else(|e| panic!("key {key:?} rejected: {e}"));
        assert_eq!(o.key, key);
        assert_eq!(s.get(L, key).unwrap().to_vec().unwrap(), key.as_bytes());
    }
    let up = s.start_multipart(L, &k450, OCTET).unwrap();
    s.upload_part(L, &up, 1, body(b"m")).unwrap();
    s.complete_multipart(L, &up).unwrap();
    s.copy_object(L, "(copy)", &k450).unwrap();
    let mut listed: Vec<String> = list_all(&s, L, ListOptions::default().deep(true))
        .into_iter()
        .map(|i| match i {
            ListItem::Object(o) => o.key,
            ListItem::Prefix(p) => panic!("{p}"),
        })
        .collect();
    let mut want: Vec<String> = keys.iter().map(|k| k.to_string()).collect();
    want.push("(copy)".into());
    want.sort();
    want.dedup();
    listed.sort();
    assert_eq!(listed, want);
}

// ----- ranges ----------------------------------------------------------

/// A store with `"ten"` = `0123456789` and `"empty"` = no bytes.
fn range_store() -> (TempDir, Store) {
    let (d, s) = store();
    s.put_object(L, "ten", body(b"0123456789")).unwrap();
    s.put_object(L, "empty", body(b"")).unwrap();
    (d, s)
}

#[test]
fn range_bounded_is_clamped_to_size() {
    let (_d, s) = range_store();
    let blob = s.get(L, "ten").unwrap();
    assert_eq!(read(&blob, "bytes=2-5").unwrap(), b"2345");
    assert_eq!(read(&blob, "bytes=0-0").unwrap(), b"0");
    assert_eq!(read(&blob, "bytes=9-9").unwrap(), b"9");
    assert_eq!(read(&blob, "bytes=0-9").unwrap(), b"0123456789");
    assert_eq!(read(&blob, "bytes=5-10").unwrap(), b"56789");
    assert_eq!(read(&blob, "bytes=5-1000000").unwrap(), b"56789");
    assert_eq!(
        read(&blob, &format!("bytes=0-{}", u64::MAX)).unwrap(),
        b"0123456789"
    );
}

#[test]
fn range_open_and_suffix() {
    let (_d, s) = range_store();
    let blob = s.get(L, "ten").unwrap();
    assert_eq!(read(&blob, "bytes=0-").unwrap(), b"0123456789");
    assert_eq!(read(&blob, "bytes=7-").unwrap(), b"789");
    assert_eq!(read(&blob, "bytes=9-").unwrap(), b"9");
    assert_eq!(read(&blob, "bytes=-3").unwrap(), b"789");
    assert_eq!(read(&blob, "bytes=-1").unwrap(), b"9");
    assert_eq!(read(&blob, "bytes=-10").unwrap(), b"0123456789");
    // RFC 7233: a suffix longer than the object is the whole object.
    assert_eq!(read(&blob, "bytes=-11").unwrap(), b"0123456789");
    // Parsed forms.
    assert_eq!(
        "bytes=2-5".parse::<ByteRange>().unwrap(),
        ByteRange::Bounded { first: 2, last: 5 }
    );
    assert_eq!(
        "bytes=7-".parse::<ByteRange>().unwrap(),
        ByteRange::From { first: 7 }
    );
    assert_eq!(
        "bytes=-3".parse::<ByteRange>().unwrap(),
        ByteRange::Suffix { len: 3 }
    );
    for t in ["bytes=2-5", "bytes=7-", "bytes=-3"] {
        assert_eq!(t.parse::<ByteRange>().unwrap().to_string(), t);
    }
}

#[test]
fn range_across_parts_reads_the_right_bytes() {
    let (_d, s) = store();
    let a = data(0, 5 * MIB_USIZE);
    let b = data(1, 3 * MIB_USIZE + 7);
    let up = s.start_multipart(L, "k", OCTET).unwrap();
    s.upload_part(L, &up, 1, body(a)).unwrap();
    s.upload_part(L, &up, 2, body(b)).unwrap();
    s.complete_multipart(L, &up).unwrap();
    let whole = [a, b].concat();
    let blob = s.get(L, "k").unwrap();
    let (x, y) = (5 * MIB_USIZE - 10, 5 * MIB_USIZE + 20);
    assert_eq!(
        read(&blob, &format!("bytes={x}-{y}")).unwrap(),
        &whole[x..=y]
    );
    assert_eq!(
        read(&blob, "bytes=-30").unwrap(),
        &whole[whole.len() - 30..]
    );
    assert_eq!(read(&blob, &format!("bytes={x}-")).unwrap(), &whole[x..]);
}

#[test]
fn range_start_at_or_past_size_is_not_satisfiable() {
    let (_d, s) = range_store();
    let blob = s.get(L, "ten").unwrap();
    for r in ["bytes=10-20", "bytes=10-", "bytes=11-11", "bytes=1000-"] {
        expect_err(read(&blob, r), ErrorKind::RangeNotSatisfiable, &[r]);
    }
    // The object is untouched.
    assert_eq!(read(&blob, "bytes=0-").unwrap(), b"0123456789");
}

#[test]
fn range_first_after_last_is_not_satisfiable() {
    let (_d, s) = range_store();
    let blob = s.get(L, "ten").unwrap();
    expect_err(
        read(&blob, "bytes=5-3"),
        ErrorKind::RangeNotSatisfiable,
        &["bytes=5-3"],
    );
    // Built directly, not parsed.
    expect_err(
        blob.read_range(ByteRange::Bounded { first: 5, last: 3 }),
        ErrorKind::RangeNotSatisfiable,
        &["5", "3"],
    );
}

#[test]
fn range_suffix_zero_is_not_satisfiable() {
    let (_d, s) = range_store();
    let blob = s.get(L, "ten").unwrap();
    expect_err(
        read(&blob, "bytes=-0"),
        ErrorKind::RangeNotSatisfiable,
        &["bytes=-0"],
    );
    expect_err(
        blob.read_range(ByteRange::Suffix { len: 0 }),
        ErrorKind::RangeNotSatisfiable,
        &["bytes=-0"],
    );
}

#[test]
fn any_range_on_empty_object_is_not_satisfiable() {
    let (_d, s) = range_store();
    let blob = s.get(L, "empty").unwrap();
    for r in [
        "bytes=0-0",
        "bytes=0-",
        "bytes=-1",
        "bytes=0-100",
        "bytes=-100",
    ] {
        expect_err(read(&blob, r), ErrorKind::RangeNotSatisfiable, &[r]);
    }
}

#[test]
fn several_ranges_are_not_satisfiable() {
    let (_d, s) = range_store();
    let blob = s.get(L, "ten").unwrap();
    for r in ["bytes=0-1,3-4", "bytes=0-1,-2", "bytes=0-,5-", "bytes=1-2,"] {
        expect_err(read(&blob, r), ErrorKind::RangeNotSatisfiable, &[r]);
    }
}

#[test]
fn bad_range_syntax_is_not_satisfiable() {
    let (_d, s) = range_store();
    let blob = s.get(L, "ten").unwrap();
    for r in [
        "bytes",
        "bytes=",
        "bytes=-",
        "bytes=a-b",
        "bytes=1-b",
        "0-5",
        "bytes 0-5",
        "bytes=0-5 ",
        " bytes=0-5",
        "bytes=1-2-3",
        "items=0-5",
        "bytes=0x1-2",
        "bytes=+1-2",
        "bytes=-+3",
        "bytes=1",
        "bytes=99999999999999999999999-",
    ] {
        expect_err(read(&blob, r), ErrorKind::RangeNotSatisfiable, &[r]);
    }
    expect_err(read(&blob, ""), ErrorKind::RangeNotSatisfiable, &[]);
}

// ----- listing ---------------------------------------------------------

/// Keys for listing tests, in no particular order.
const TREE: [&str; 12] = [
    "b", "a/d", "a/b/c", "a/e/f", "c/x", "a/b/g", "a/e/h/i", "Z", "c/y/z", "a0", "a-1", "a/a",
];

/// A store holding `TREE` (each object's bytes are its key).
fn tree_store() -> (TempDir, Store) {
    let (d, s) = store();
    for k in TREE {
        s.put_object(L, k, body(k.as_bytes())).unwrap();
    }
    (d, s)
}

#[test]
fn list_limit_outside_1_to_1000_is_bad_request() {
    let (_d, s) = tree_store();
    for limit in [0usize, 1001, 5000, usize::MAX] {
        expect_err(
            s.list(L, &ListOptions::default().limit(limit)),
            ErrorKind::BadRequest,
            &[&limit.to_string()],
        );
        expect_err(
            s.list(L, &ListOptions::default().limit(limit).deep(true)),
            ErrorKind::BadRequest,
            &[&limit.to_string()],
        );
    }
    for limit in [1, 1000] {
        let page = s.list(L, &ListOptions::default().limit(limit)).unwrap();
        assert_eq!(page.items.len(), limit.min(6));
    }
    assert_eq!(ListOptions::default().limit, 1000);
}

#[test]
fn list_default_limit_is_1000() {
    let dir = tempfile::tempdir().unwrap();
    let s = Store::open(dir.path(), opts().durability(Durability::None)).unwrap();
    s.create_layer(L, LayerConfig::default()).unwrap();
    for i in 0..1001 {
        s.put_object(L, &format!("k{i:04}"), body(b"")).unwrap();
    }
    let page = s.list(L, &ListOptions::default()).unwrap();
    assert_eq!(page.items.len(), 1000);
    let token = page.next_page_token.expect("a second page");
    let page2 = s
        .list(L, &ListOptions::default().page_token(token))
        .unwrap();
    assert_eq!(item_names(&page2.items), ["O:k1000"]);
    assert_eq!(page2.next_page_token, None);
}

#[test]
fn list_garbage_page_token_is_bad_request() {
    let (_d, s) = tree_store();
    let before = layer_snap(&s, L);
    for t in [
        "garbage",
        "zz",
        "00",
        "deadbeef",
        "0123456789abcdef0123456789abcdef",
        "6f622d2d2d2d2d2d2d2d",
        "not a token at all!",
    ] {
        for deep in [false, true] {
            expect_err(
                s.list(L, &ListOptions::default().deep(deep).limit(2).page_token(t)),
                ErrorKind::BadRequest,
                &[t],
            );
        }
    }
    expect_err(
        s.list(L, &ListOptions::default().page_token("")),
        ErrorKind::BadRequest,
        &[],
    );
    assert_eq!(layer_snap(&s, L), before);
}

#[test]
fn list_forged_page_token_is_bad_request() {
    let (_d, s) = tree_store();
    s.create_layer("m", LayerConfig::default()).unwrap();
    for k in TREE {
        s.put_object("m", k, body(b"m")).unwrap();
    }
    let base = ListOptions::default().limit(2);
    let token = s.list(L, &base).unwrap().next_page_token.expect("a token");
    // The token works where it was issued.
    s.list(L, &base.clone().page_token(token.clone())).unwrap();
    // Every single-character change of it is rejected.
    let alphabet: Vec<char> = "0123456789abcdefABCDEFxyz=-_".chars().collect();
    for i in 0..token.len() {
        let orig = token.as_bytes()[i] as char;
        let repl = alphabet
            .iter()
            .copied()
            .find(|c| *c != orig && !c.eq_ignore_ascii_case(&orig))
            .unwrap();
        let mut forged = token.clone();
        forged.replace_range(i..i + 1, &repl.to_string());
        expect_err(
            s.list(L, &base.clone().page_token(forged.clone())),
            ErrorKind::BadRequest,
            &[&forged[..forged.len().min(32)]],
        );
    }
    // Truncated or extended.
    for forged in [
        token[..token.len() - 2].to_string(),
        format!("{token}00"),
        format!("00{token}"),
    ] {
        expect_err(
            s.list(L, &base.clone().page_token(forged.clone())),
            ErrorKind::BadRequest,
            &[&forged[..forged.len().min(32)]],
        );
    }
    // A real token for another listing: other layer, other parent, deep.
    for (layer, o) in [
        ("m", base.clone()),
        (L, base.clone().parent("a")),
        (L, base.clone().deep(true)),
    ] {
        expect_err(
            s.list(layer, &o.page_token(token.clone())),
            ErrorKind::BadRequest,
            &[&token[..token.len().min(32)]],
        );
    }
}

#[test]
fn list_hierarchical_shows_direct_children() {
    let (_d, s) = tree_store();
    let root = list_all(&s, L, ListOptions::default());
    assert_eq!(
        item_names(&root),
        ["O:Z", "O:a-1", "P:a", "O:a0", "O:b", "P:c"]
    );
    let a = list_all(&s, L, ListOptions::default().parent("a"));
    assert_eq!(item_names(&a), ["O:a/a", "P:a/b", "O:a/d", "P:a/e"]);
    let ae = list_all(&s, L, ListOptions::default().parent("a/e"));
    assert_eq!(item_names(&ae), ["O:a/e/f", "P:a/e/h"]);
    // Objects carry their info.
    for item in &a {
        if let ListItem::Object(o) = item {
            assert_eq!(&s.head(L, &o.key).unwrap(), o);
        }
    }
}

#[test]
fn list_deep_is_recursive_objects_only() {
    let (_d, s) = tree_store();
    let mut sorted: Vec<&str> = TREE.to_vec();
    sorted.sort();
    let all = list_all(&s, L, ListOptions::default().deep(true));
    let want: Vec<String> = sorted.iter().map(|k| format!("O:{k}")).collect();
    assert_eq!(item_names(&all), want);
    let a = list_all(&s, L, ListOptions::default().deep(true).parent("a"));
    assert_eq!(
        item_names(&a),
        [
            "O:a/a",
            "O:a/b/c",
            "O:a/b/g",
            "O:a/d",
            "O:a/e/f",
            "O:a/e/h/i"
        ]
    );
}

#[test]
fn list_parent_trailing_slash_is_optional() {
    let (_d, s) = tree_store();
    for deep in [false, true] {
        for p in ["a", "a/e", "c"] {
            let without = list_all(&s, L, ListOptions::default().deep(deep).parent(p));
            let with = list_all(
                &s,
                L,
                ListOptions::default().deep(deep).parent(format!("{p}/")),
            );
            assert!(!without.is_empty());
            assert_eq!(without, with, "parent {p:?}, deep {deep}");
        }
    }
}

#[test]
fn list_is_in_bytewise_key_order() {
    let (_d, s) = store();
    let keys = [
        "a", "B", "_", "0", "Z", "a-b", "a.b", "aB", "a_", "ab", "(x)", "[y]", "{z}", "=", "-",
        "9", "A", "z", ")", "]", "}", ".",
    ];
    for k in keys {
        s.put_object(L, k, body(b"x")).unwrap();
    }
    let mut want: Vec<&str> = keys.to_vec();
    want.sort_by(|x, y| x.as_bytes().cmp(y.as_bytes()));
    let want: Vec<String> = want.iter().map(|k| format!("O:{k}")).collect();
    for deep in [false, true] {
        let got = list_all(&s, L, ListOptions::default().deep(deep));
        assert_eq!(item_names(&got), want);
        let paged = list_all(&s, L, ListOptions::default().deep(deep).limit(3));
        assert_eq!(item_names(&paged), want);
    }
}

/// The hierarchical listing of `keys` under `parent`, computed here: direct
/// objects, and each folder once, where its first key sorts.
fn model_listing(keys: &[&str], parent: &str, deep: bool) -> Vec<String> {
    let prefix = if parent.is_empty() {
        String::new()
    } else {
        format!("{parent}/")
    };
    let mut sorted: Vec<&str> = keys.to_vec();
    sorted.sort_by(|x, y| x.as_bytes().cmp(y.as_bytes()));
    let mut out: Vec<String> = Vec::new();
    for k in sorted {
        let Some(rest) = k.strip_prefix(&prefix) else {
            continue;
        };
        match rest.find('/') {
            Some(i) if !deep => {
                let p = format!("P:{prefix}{}", &rest[..i]);
                if out.last() != Some(&p) {
                    out.push(p);
                }
            }
            _ => out.push(format!("O:{k}")),
        }
    }
    out
}

#[test]
fn list_paging_visits_every_item_exactly_once() {
    let (_d, s) = store();
    let mut keys: Vec<String> = TREE.iter().map(|k| k.to_string()).collect();
    for i in 0..7 {
        keys.push(format!("a/b/n{i}"));
        keys.push(format!("f{i}/leaf"));
        keys.push(format!("top{i}"));
    }
    keys.extend(["a.x", "a/b0", "a/b.", "a/e0", "c/y0", "c0/q"].map(String::from));
    for k in &keys {
        s.put_object(L, k, body(b"")).unwrap();
    }
    let key_refs: Vec<&str> = keys.iter().map(String::as_str).collect();
    for deep in [false, true] {
        for parent in ["", "a", "a/b", "c", "a/e/h"] {
            let want = model_listing(&key_refs, parent, deep);
            assert!(!want.is_empty());
            for limit in [1, 2, 3, 4, 7, 1000] {
                let got = item_names(&list_all(
                    &s,
                    L,
                    ListOptions::default()
                        .deep(deep)
                        .parent(parent)
                        .limit(limit),
                ));
                assert_eq!(got, want, "deep {deep}, parent {parent:?}, limit {limit}");
            }
        }
    }
    // A listing whose size is a multiple of the limit: the last full page
    // has no token.
    let want = model_listing(&key_refs, "a/b", true);
    let page = s
        .list(
            L,
            &ListOptions::default()
                .deep(true)
                .parent("a/b")
                .limit(want.len()),
        )
        .unwrap();
    assert_eq!(page.items.len(), want.len());
    assert_eq!(page.next_page_token, None);
}

// ----- digests ---------------------------------------------------------

#[test]
fn digest_names_are_case_insensitive_with_or_without_hyphen() {
    let crc = "c99465aa";
    let md5 = md5_hex(b"x");
    let sha1 = sha1_hex(b"x");
    let sha256 = sha256_hex(b"x");
    let cases: [(&str, &str, DigestAlgorithm); 16] = [
        ("CRC-32C", crc, DigestAlgorithm::Crc32c),
        ("crc-32c", crc, DigestAlgorithm::Crc32c),
        ("CRC32C", crc, DigestAlgorithm::Crc32c),
        ("crc32c", crc, DigestAlgorithm::Crc32c),
        ("Crc32C", crc, DigestAlgorithm::Crc32c),
        ("MD5", &md5, DigestAlgorithm::Md5),
        ("md5", &md5, DigestAlgorithm::Md5),
        ("Md5", &md5, DigestAlgorithm::Md5),
        ("SHA1", &sha1, DigestAlgorithm::Sha1),
        ("sha1", &sha1, DigestAlgorithm::Sha1),
        ("SHA-1", &sha1, DigestAlgorithm::Sha1),
        ("sha-1", &sha1, DigestAlgorithm::Sha1),
        ("SHA256", &sha256, DigestAlgorithm::Sha256),
        ("sha256", &sha256, DigestAlgorithm::Sha256),
        ("SHA-256", &sha256, DigestAlgorithm::Sha256),
        ("sha-256", &sha256, DigestAlgorithm::Sha256),
    ];
    for (name, hex, alg) in cases {
        for h in [hex.to_string(), hex.to_uppercase()] {
            let text = format!("{name}:{h}");
            let d: Digest = text
                .parse()
                .unwrap_or_else(|e| panic!("{text} rejected: {e}"));
            assert_eq!(d.algorithm(), alg, "{text}");
            // Display is canonical: canonical name, lowercase hex.
            assert_eq!(
                d.to_string(),
                format!("{}:{}", alg_name(alg), hex),
                "{text}"
            );
            assert_eq!(d.to_string().parse::<Digest>().unwrap(), d);
        }
    }
}

fn alg_name(a: DigestAlgorithm) -> &'static str {
    match a {
        DigestAlgorithm::Crc32c => "CRC-32C",
        DigestAlgorithm::Md5 => "MD5",
        DigestAlgorithm::Sha1 => "SHA1",
        DigestAlgorithm::Sha256 => "SHA256",
    }
}

#[test]
fn digest_with_wrong_hex_length_is_rejected() {
    let sha = sha256_hex(b"x");
    let cases = [
        "CRC-32C:c99465a".to_string(),
        "CRC-32C:c99465aa0".to_string(),
        format!("CRC-32C:{}", md5_hex(b"x")),
        format!("MD5:{}", &md5_hex(b"x")[..30]),
        format!("MD5:{}", sha1_hex(b"x")),
        format!("SHA1:{}", md5_hex(b"x")),
        format!("SHA1:{}", sha),
        format!("SHA256:{}", &sha[..62]),
        format!("SHA256:{sha}00"),
        "SHA256:".to_string(),
    ];
    for text in cases {
        expect_err(text.parse::<Digest>(), ErrorKind::BadRequest, &[&text]);
    }
}

#[test]
fn digest_with_bad_hex_is_rejected() {
    let cases = [
        "CRC-32C:c99465ag".to_string(),
        "CRC-32C:0xc99465".to_string(),
        "CRC-32C: c99465a".to_string(),
        format!("MD5:{}zz", &md5_hex(b"x")[..30]),
        format!("SHA256:{}-1", &sha256_hex(b"x")[..62]),
        format!("SHA1:{}é", &sha1_hex(b"x")[..38]),
    ];
    for text in cases {
        expect_err(text.parse::<Digest>(), ErrorKind::BadRequest, &[&text]);
    }
}

#[test]
fn digest_with_unknown_algorithm_or_form_is_rejected() {
    let sha = sha256_hex(b"x");
    let cases = [
        format!("SHA512:{sha}{sha}"),
        format!("SHA-512:{sha}"),
        format!("SHA3-256:{sha}"),
        format!("sha_256:{sha}"),
        format!("SHA 256:{sha}"),
        format!("256:{sha}"),
        format!(":{sha}"),
        format!(" SHA256:{sha}"),
        format!("SHA256 :{sha}"),
        format!("SHA256{sha}"),
        format!("SHA256={sha}"),
        "CRC32:c99465aa".to_string(),
        "CRC-32:c99465aa".to_string(),
        "crc32c".to_string(),
        "c99465aa".to_string(),
    ];
    for text in cases {
        expect_err(text.parse::<Digest>(), ErrorKind::BadRequest, &[&text]);
    }
    expect_err("".parse::<Digest>(), ErrorKind::BadRequest, &[]);
    expect_err(":".parse::<Digest>(), ErrorKind::BadRequest, &[]);
}

#[test]
fn crc32c_known_vectors() {
    assert_eq!(crc32c::crc32c(b"hello world"), 0xc994_65aa);
    assert_eq!(crc32c::crc32c(b"123456789"), 0xe306_9283);
    assert_eq!(
        Digest::from_crc32c(0xc994_65aa).to_string(),
        "CRC-32C:c99465aa"
    );
    assert_eq!(
        "CRC-32C:e3069283".parse::<Digest>().unwrap(),
        Digest::from_crc32c(0xe306_9283)
    );
    let (_d, s) = store();
    let up = s.start_multipart(L, "k", OCTET).unwrap();
    let p = s
        .upload_part(
            L,
            &up,
            1,
            body(b"hello world").digest(digest("CRC-32C:c99465aa")),
        )
        .unwrap();
    assert_eq!(p.crc32c, 0xc994_65aa);
    let p = s
        .upload_part(
            L,
            &up,
            2,
            body(b"123456789").digest(digest("crc32c:E3069283")),
        )
        .unwrap();
    assert_eq!(p.crc32c, 0xe306_9283);
    // The byte-swapped value is a different digest.
    expect_err(
        s.upload_part(
            L,
            &up,
            3,
            body(b"hello world").digest(digest("CRC-32C:aa6594c9")),
        ),
        ErrorKind::BadRequest,
        &["aa6594c9"],
    );
    let o = s.put_object(L, "hw", body(b"hello world")).unwrap();
    assert_eq!(o.crc32c, 0xc994_65aa);
}

// ----- copy_part -------------------------------------------------------

/// A store with `"src"` (6 MiB + 100 bytes) and an upload of `"dst"` whose
/// part 1 is `b"keep"`.
fn copy_store() -> (TempDir, Store, UploadId, &'static [u8]) {
    let (d, s) = store();
    let src = data(0, 6 * MIB_USIZE + 100);
    s.put_object(L, "src", body(src)).unwrap();
    let up = s.start_multipart(L, "dst", OCTET).unwrap();
    s.upload_part(L, &up, 1, body(b"keep")).unwrap();
    (d, s, up, src)
}

fn copy(key: &str, range: &str) -> CopySource {
    CopySource::new(key, range.parse().unwrap())
}

#[test]
fn copy_part_open_or_suffix_range_is_not_satisfiable() {
    let (_d, s, up, _) = copy_store();
    let before = layer_snap(&s, L);
    for r in ["bytes=0-", "bytes=1048576-", "bytes=-10", "bytes=-1048576"] {
        for n in [1, 2] {
            expect_err(
                s.copy_part(L, &up, n, copy("src", r)),
                ErrorKind::RangeNotSatisfiable,
                &[r],
            );
        }
    }
    assert_eq!(layer_snap(&s, L), before);
    assert_eq!(complete_and_read(&s, L, &up), b"keep");
}

#[test]
fn copy_part_start_not_multiple_of_1_mib_is_not_satisfiable() {
    let (_d, s, up, _) = copy_store();
    let before = layer_snap(&s, L);
    for (first, last) in [(1, 100), (MIB - 1, 2 * MIB), (MIB + 1, 3 * MIB), (512, 512)] {
        let r = format!("bytes={first}-{last}");
        expect_err(
            s.copy_part(L, &up, 1, copy("src", &r)),
            ErrorKind::RangeNotSatisfiable,
            &[&first.to_string()],
        );
    }
    assert_eq!(layer_snap(&s, L), before);
    assert_eq!(complete_and_read(&s, L, &up), b"keep");
}

#[test]
fn copy_part_first_after_last_is_not_satisfiable() {
    let (_d, s, up, _) = copy_store();
    let before = layer_snap(&s, L);
    let r = ByteRange::Bounded {
        first: MIB,
        last: 10,
    };
    expect_err(
        s.copy_part(L, &up, 1, CopySource::new("src", r)),
        ErrorKind::RangeNotSatisfiable,
        &["1048576", "10"],
    );
    assert_eq!(layer_snap(&s, L), before);
}

#[test]
fn copy_part_end_at_or_past_source_size_is_not_satisfiable() {
    let (_d, s, up, src) = copy_store();
    let before = layer_snap(&s, L);
    let size = src.len() as u64;
    for (first, last) in [(0, size), (MIB, size + 1), (0, u64::MAX), (6 * MIB, size)] {
        let r = format!("bytes={first}-{last}");
        expect_err(
            s.copy_part(L, &up, 1, copy("src", &r)),
            ErrorKind::RangeNotSatisfiable,
            &[&r],
        );
    }
    // Start at or past the end too.
    let r = format!("bytes={}-{}", 7 * MIB, 8 * MIB);
    expect_err(
        s.copy_part(L, &up, 1, copy("src", &r)),
        ErrorKind::RangeNotSatisfiable,
        &[&r],
    );
    assert_eq!(layer_snap(&s, L), before);
    assert_eq!(s.list_parts(L, &up).unwrap().len(), 1);
    // The last byte is the limit: b = size - 1 is fine.
    let p = s
        .copy_part(
            L,
            &up,
            1,
            copy("src", &format!("bytes={}-{}", 6 * MIB, size - 1)),
        )
        .unwrap();
    assert_eq!(p.size, 100);
    assert_eq!(p.crc32c, crc32c::crc32c(&src[6 * MIB_USIZE..]));
}

#[test]
fn copy_part_copies_the_range() {
    let (_d, s, up, src) = copy_store();
    let p1 = s
        .copy_part(L, &up, 1, copy("src", "bytes=1048576-6291455"))
        .unwrap();
    let expected = &src[MIB_USIZE..6 * MIB_USIZE];
    assert_eq!(p1.part_number, 1);
    assert_eq!(p1.size, 5 * MIB);
    assert_eq!(p1.crc32c, crc32c::crc32c(expected));
    let p2 = s.copy_part(L, &up, 2, copy("src", "bytes=0-9")).unwrap();
    assert_eq!(p2.crc32c, crc32c::crc32c(&src[..10]));
    assert_ne!(p1.id, p2.id);
    let o = s.complete_multipart(L, &up).unwrap();
    let whole = [expected, &src[..10]].concat();
    assert_eq!(o.crc32c, crc32c::crc32c(&whole));
    assert_eq!(s.get(L, "dst").unwrap().to_vec().unwrap(), whole);
}

#[test]
fn copy_part_length_over_96_mib_is_too_large() {
    // A 100 MiB source built by reference from one 5 MiB object.
    let (_d, s) = store();
    let a = data(0, 5 * MIB_USIZE);
    s.put_object(L, "a", body(a)).unwrap();
    let up = s.start_multipart(L, "big", OCTET).unwrap();
    for n in 1..=20 {
        s.copy_part(L, &up, n, copy("a", "bytes=0-5242879"))
            .unwrap();
    }
    assert_eq!(s.complete_multipart(L, &up).unwrap().size, 100 * MIB);
    let dst = s.start_multipart(L, "dst", OCTET).unwrap();
    s.upload_part(L, &dst, 1, body(b"keep")).unwrap();
    let before = layer_snap_without_bytes(&s);
    let snap = upload_snap(&s, L, &dst);
    for last in [96 * MIB, 97 * MIB - 1, 100 * MIB - 1] {
        let r = format!("bytes=0-{last}");
        expect_err(
            s.copy_part(L, &dst, 1, copy("big", &r)),
            ErrorKind::TooLarge,
            &[&r],
        );
    }
    let r = format!("bytes={}-{}", MIB, 97 * MIB + 1);
    expect_err(
        s.copy_part(L, &dst, 2, copy("big", &r)),
        ErrorKind::TooLarge,
        &[&r],
    );
    assert_eq!(layer_snap_without_bytes(&s), before);
    assert_eq!(upload_snap(&s, L, &dst), snap);
    // Exactly 96 MiB is fine.
    let p = s
        .copy_part(
            L,
            &dst,
            1,
            copy("big", &format!("bytes=0-{}", 96 * MIB - 1)),
        )
        .unwrap();
    assert_eq!(p.size, 96 * MIB);
    assert_eq!(p.crc32c, crc_repeated(a, 19, &a[..MIB_USIZE]));
}

#[test]
fn copy_part_of_missing_source_is_not_found() {
    let (_d, s, up, _) = copy_store();
    let before = layer_snap(&s, L);
    for n in [1, 2] {
        expect_err(
            s.copy_part(L, &up, n, copy("no/such/key", "bytes=0-9")),
            ErrorKind::NotFound,
            &["no/such/key"],
        );
    }
    // The destination of an open upload is no object either.
    expect_err(
        s.copy_part(L, &up, 2, copy("dst", "bytes=0-1")),
        ErrorKind::NotFound,
        &["dst"],
    );
    assert_eq!(layer_snap(&s, L), before);
    assert_eq!(complete_and_read(&s, L, &up), b"keep");
}

#[test]
fn copy_part_digest_is_checked_on_copied_bytes() {
    let (_d, s, up, src) = copy_store();
    let before = layer_snap(&s, L);
    let range = "bytes=1048576-3145740"; // 2 MiB + 13 bytes: a partial block
    let copied = &src[MIB_USIZE..=3_145_740];
    // Digests of the whole source, of another range, and of nothing.
    for wrong in [
        format!("SHA256:{}", sha256_hex(src)),
        format!("MD5:{}", md5_hex(&src[..copied.len()])),
        format!("SHA1:{}", sha1_hex(b"")),
        format!("CRC-32C:{}", crc_hex(&copied[1..])),
    ] {
        let hex = wrong.split_once(':').unwrap().1.to_string();
        for n in [1, 2] {
            expect_err(
                s.copy_part(L, &up, n, copy("src", range).digest(digest(&wrong))),
                ErrorKind::BadRequest,
                &[&hex],
            );
        }
    }
    assert_eq!(layer_snap(&s, L), before);
    for (n, right) in [
        (2, format!("SHA256:{}", sha256_hex(copied))),
        (3, format!("MD5:{}", md5_hex(copied))),
        (4, format!("SHA1:{}", sha1_hex(copied))),
        (5, format!("CRC-32C:{}", crc_hex(copied))),
    ] {
        let p = s
            .copy_part(L, &up, n, copy("src", range).digest(digest(&right)))
            .unwrap_or_else(|e| panic!("{right} rejected: {e}"));
        assert_eq!(p.size, copied.len() as u64);
        assert_eq!(p.crc32c, crc32c::crc32c(copied));
    }
}

#[test]
fn copied_part_survives_source_delete_and_replace() {
    let (_d, s, up, src) = copy_store();
    let p1 = s
        .copy_part(L, &up, 1, copy("src", "bytes=0-5242879"))
        .unwrap();
    s.put_object(L, "src", body(b"replaced")).unwrap();
    let p2 = s.copy_part(L, &up, 2, copy("src", "bytes=0-7")).unwrap();
    s.delete(L, "src").unwrap();
    assert_eq!(s.list_parts(L, &up).unwrap()[0].id, p1.id);
    assert_eq!(s.list_parts(L, &up).unwrap()[1].id, p2.id);
    let whole = [&src[..5 * MIB_USIZE], b"replaced"].concat();
    assert_eq!(complete_and_read(&s, L, &up), whole);
}

// ----- store directory lock --------------------------------------------

#[test]
fn second_open_of_same_dir_is_conflict() {
    let dir = tempfile::tempdir().unwrap();
    let first = Store::open(dir.path(), opts()).unwrap();
    first.create_layer(L, LayerConfig::default()).unwrap();
    first.put_object(L, "k", body(b"kept")).unwrap();
    let e = expect_err(Store::open(dir.path(), opts()), ErrorKind::Conflict, &[]);
    assert!(
        e.to_string().contains(&dir.path().display().to_string()),
        "message does not name the directory: {e}"
    );
    // The first store is unaffected.
    assert_eq!(first.get(L, "k").unwrap().to_vec().unwrap(), b"kept");
    first.put_object(L, "k2", body(b"more")).unwrap();
    drop(first);
    let second = Store::open(dir.path(), opts()).unwrap();
    assert_eq!(second.get(L, "k").unwrap().to_vec().unwrap(), b"kept");
    assert_eq!(second.get(L, "k2").unwrap().to_vec().unwrap(), b"more");
}

#[test]
fn copy_object_and_copy_part_copy_no_bytes() {
    let (_d, s) = store();
    let src = data(0, 6 * MIB_USIZE + 5);
    s.put_object(L, "src", body(src)).unwrap();
    let written = |s: &Store| -> u64 { s.stats().per_segment.iter().map(|g| g.data_bytes).sum() };
    let (data_before, live_before) = (written(&s), s.stats().live_bytes);
    assert!(data_before >= src.len() as u64);
    s.copy_object(L, "copy", "src").unwrap();
    let up = s.start_multipart(L, "parts", OCTET).unwrap();
    s.copy_part(L, &up, 1, copy("src", "bytes=0-5242879"))
        .unwrap();
    s.copy_part(L, &up, 2, copy("src", "bytes=5242880-6291460"))
        .unwrap();
    s.complete_multipart(L, &up).unwrap();
    assert_eq!(written(&s), data_before, "data bytes were written");
    assert_eq!(s.stats().live_bytes, live_before);
    assert_eq!(s.stats().objects, 3);
    assert_eq!(s.get(L, "copy").unwrap().to_vec().unwrap(), src);
    assert_eq!(s.get(L, "parts").unwrap().to_vec().unwrap(), src);
}
