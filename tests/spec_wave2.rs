//! SPEC.md "Additions (wave 2)", one test (at least) per rule, through the
//! public API: user metadata, verified digests kept, key rules per layer,
//! bodies of unknown length, completed uploads' results, `delete_layer`,
//! and the listing options fronts need (`prefix`, `start_after`). Each
//! rejection checks the kind, the reason and that nothing changed; each new
//! piece of state is checked again after a reopen (records replayed) and
//! after a compaction (restored from its snapshot).
//!
//! The bug these guard against: a front (S3, HERE) that needs a value the
//! engine drops on one path only (a copy, a reopen, a snapshot) answers
//! wrongly long after the write that lost it.

mod common;

use std::io::{self, Read};

use partstore::rules::{MAX_METADATA_BYTES, MAX_UTF8_KEY_BYTES};
use partstore::*;
use sha2::{Digest as _, Sha256};
use tempfile::TempDir;

const MIB: u64 = 1 << 20;
const L: &str = "l";
const U: &str = "s3";
const OCTET: &str = "application/octet-stream";

fn opts() -> Options {
    Options::default()
        .segment_size(8 * MIB)
        .durability(Durability::None)
}

/// A store with layer `L` (HERE keys) and layer `U` (UTF-8 keys).
fn store() -> (TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let s = Store::open(dir.path(), opts()).unwrap();
    s.create_layer(L, LayerConfig::default()).unwrap();
    s.create_layer(U, LayerConfig::default().key_rules(KeyRules::Utf8))
        .unwrap();
    (dir, s)
}

/// The same store after a compaction (which writes a snapshot that replay
/// starts from) and a reopen.
fn compact_and_reopen(dir: &TempDir, s: Store) -> Store {
    s.compact().unwrap();
    drop(s);
    Store::open(dir.path(), opts()).unwrap()
}

fn reopen(dir: &TempDir, s: Store) -> Store {
    drop(s);
    Store::open(dir.path(), opts()).unwrap()
}

fn body(bytes: &[u8]) -> PartBody<&[u8]> {
    PartBody::new(bytes, bytes.len() as u64)
}

fn md(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(n, v)| (n.to_string(), v.to_string()))
        .collect()
}

fn sha256(b: &[u8]) -> Digest {
    format!("SHA256:{}", hex::encode(Sha256::digest(b)))
        .parse()
        .unwrap()
}

fn read_all(s: &Store, layer: &str, key: &str) -> Vec<u8> {
    s.get(layer, key).unwrap().to_vec().unwrap()
}

/// A reader that fails the test if anything reads it.
struct PanicReader;

impl Read for PanicReader {
    fn read(&mut self, _: &mut [u8]) -> io::Result<usize> {
        panic!("the body was read, but the call had to fail before reading it");
    }
}

/// A reader that hands out at most 7 bytes per call (bodies arrive in odd
/// pieces from real clients).
struct Dribble<'a>(&'a [u8]);

impl Read for Dribble<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = buf.len().min(7).min(self.0.len());
        buf[..n].copy_from_slice(&self.0[..n]);
        self.0 = &self.0[n..];
        Ok(n)
    }
}

#[track_caller]
fn expect<T: std::fmt::Debug>(r: Result<T>, kind: ErrorKind, reason: Reason) -> Error {
    match r {
        Ok(v) => panic!("expected {kind:?} / {reason:?}, got Ok({v:?})"),
        Err(e) => {
            assert_eq!((e.kind(), e.reason()), (kind, Some(reason)), "{e}");
            e
        }
    }
}

fn keys(page: &ListPage) -> Vec<String> {
    page.items
        .iter()
        .map(|i| match i {
            ListItem::Object(o) => o.key.clone(),
            ListItem::Prefix(p) => format!("{p}/"),
        })
        .collect()
}

/// Every item of a listing, following the page tokens `limit` at a time.
fn list_all(s: &Store, layer: &str, o: ListOptions, limit: usize) -> Vec<String> {
    let mut out = Vec::new();
    let mut o = o.limit(limit);
    loop {
        let page = s.list(layer, &o).unwrap();
        assert!(page.items.len() <= limit);
        out.extend(keys(&page));
        match page.next_page_token {
            Some(t) => o = o.page_token(t),
            None => return out,
        }
    }
}

// ----- user metadata ------------------------------------------------------

#[test]
fn put_object_metadata_is_returned_by_head_get_and_list() {
    let (_d, s) = store();
    let m = md(&[("Color", "blue"), ("x-amz-meta-note", "grüße ✓"), ("e", "")]);
    let info = s
        .put_object(L, "k", body(b"abc").metadata(m.clone()))
        .unwrap();
    assert_eq!(info.metadata, m);
    assert_eq!(s.head(L, "k").unwrap().metadata, m);
    assert_eq!(s.get(L, "k").unwrap().info().metadata, m);
    assert_eq!(info.metadata_value("COLOR"), Some("blue"));
    let page = s.list(L, &ListOptions::default()).unwrap();
    let ListItem::Object(o) = &page.items[0] else {
        panic!("{page:?}")
    };
    assert_eq!(o.metadata, m);
    // Without metadata: none.
    let info = s.put_object(L, "k", body(b"abc")).unwrap();
    assert!(info.metadata.is_empty());
}

#[test]
fn multipart_metadata_is_the_uploads() {
    let (_d, s) = store();
    let m = md(&[("a", "1"), ("b", "2")]);
    let up = s
        .start_multipart(L, "m", UploadOptions::new(OCTET).metadata(m.clone()))
        .unwrap();
    s.upload_part(L, &up, 1, body(b"x")).unwrap();
    assert_eq!(s.complete_multipart(L, &up).unwrap().metadata, m);
    assert_eq!(s.head(L, "m").unwrap().metadata, m);
}

#[test]
fn a_part_carries_no_metadata() {
    let (_d, s) = store();
    let up = s.start_multipart(L, "m", OCTET).unwrap();
    let e = expect(
        s.upload_part(L, &up, 3, body(b"x").metadata([("a", "b")])),
        ErrorKind::BadRequest,
        Reason::InvalidMetadata,
    );
    assert_eq!(e.part_number(), Some(3));
    assert!(s.list_parts(L, &up).unwrap().is_empty());
}

#[test]
fn metadata_breaking_a_rule_is_bad_request_and_stores_nothing() {
    let (_d, s) = store();
    s.put_object(L, "k", body(b"old").metadata([("keep", "me")]))
        .unwrap();
    let before = s.head(L, "k").unwrap();
    let big = "v".repeat(MAX_METADATA_BYTES);
    let bad: Vec<Vec<(String, String)>> = vec![
        md(&[("a b", "v")]),
        md(&[("", "v")]),
        md(&[("na:me", "v")]),
        md(&[("é", "v")]),
        md(&[("n", "line\nbreak")]),
        md(&[("n", "nul\0")]),
        md(&[("Same", "1"), ("sAME", "2")]),
        md(&[("n", &big)]),
    ];
    for m in bad {
        expect(
            s.put_object(L, "k", PartBody::new(PanicReader, 3).metadata(m.clone())),
            ErrorKind::BadRequest,
            Reason::InvalidMetadata,
        );
        expect(
            s.start_multipart(L, "k", UploadOptions::new(OCTET).metadata(m.clone())),
            ErrorKind::BadRequest,
            Reason::InvalidMetadata,
        );
        expect(
            s.copy_object_with(L, "c", "k", Some(m)),
            ErrorKind::BadRequest,
            Reason::InvalidMetadata,
        );
    }
    assert_eq!(s.head(L, "k").unwrap(), before);
    assert!(s.list_uploads(L).unwrap().is_empty());
    expect(s.head(L, "c"), ErrorKind::NotFound, Reason::UnknownKey);
}

#[test]
fn metadata_of_exactly_2_kib_is_accepted() {
    let (_d, s) = store();
    let v = "v".repeat(MAX_METADATA_BYTES - 4);
    let info = s
        .put_object(L, "k", body(b"x").metadata([("name", v.as_str())]))
        .unwrap();
    assert_eq!(info.metadata[0].1.len(), 2044);
}

#[test]
fn copy_object_keeps_or_replaces_metadata() {
    let (_d, s) = store();
    let m = md(&[("a", "1")]);
    s.put_object(L, "src", body(b"bytes").metadata(m.clone()))
        .unwrap();
    assert_eq!(s.copy_object(L, "kept", "src").unwrap().metadata, m);
    let new = md(&[("b", "2")]);
    let c = s
        .copy_object_with(L, "new", "src", Some(new.clone()))
        .unwrap();
    assert_eq!(c.metadata, new);
    assert!(s
        .copy_object_with(L, "none", "src", Some(vec![]))
        .unwrap()
        .metadata
        .is_empty());
    // Onto itself: the way to change an object's metadata without bytes.
    s.copy_object_with(L, "src", "src", Some(new.clone()))
        .unwrap();
    assert_eq!(s.head(L, "src").unwrap().metadata, new);
    assert_eq!(read_all(&s, L, "src"), b"bytes");
    assert_eq!(s.head(L, "kept").unwrap().metadata, m);
}

#[test]
fn metadata_survives_reopen_and_compaction() {
    let (d, s) = store();
    let m = md(&[("a", "1"), ("B", "two")]);
    s.put_object(L, "put", body(b"x").metadata(m.clone()))
        .unwrap();
    s.copy_object_with(L, "copy", "put", Some(md(&[("c", "3")])))
        .unwrap();
    let done = s
        .start_multipart(L, "multi", UploadOptions::new(OCTET).metadata(m.clone()))
        .unwrap();
    s.upload_part(L, &done, 1, body(b"y")).unwrap();
    s.complete_multipart(L, &done).unwrap();
    let open = s
        .start_multipart(L, "open", UploadOptions::new(OCTET).metadata(m.clone()))
        .unwrap();
    let heads = |s: &Store| ["put", "copy", "multi"].map(|k| s.head(L, k).unwrap().metadata);
    let want = heads(&s);
    assert_eq!(want[1], md(&[("c", "3")]));
    let s = reopen(&d, s);
    assert_eq!(heads(&s), want);
    let s = compact_and_reopen(&d, s);
    assert_eq!(heads(&s), want);
    s.upload_part(L, &open, 1, body(b"z")).unwrap();
    assert_eq!(s.complete_multipart(L, &open).unwrap().metadata, m);
}

// ----- verified digests kept ----------------------------------------------

#[test]
fn a_verified_put_digest_is_kept_and_copied() {
    let (_d, s) = store();
    let b = common::gen(1, 3 * MIB as usize + 7);
    for d in [
        sha256(&b),
        format!("CRC-32C:{:08x}", crc32c::crc32c(&b))
            .parse()
            .unwrap(),
    ] {
        let info = s.put_object(L, "k", body(&b).digest(d.clone())).unwrap();
        assert_eq!(info.digest.as_ref(), Some(&d));
        assert_eq!(s.head(L, "k").unwrap().digest.as_ref(), Some(&d));
        assert_eq!(s.copy_object(L, "c", "k").unwrap().digest, Some(d));
    }
    assert_eq!(s.put_object(L, "k", body(&b)).unwrap().digest, None);
}

#[test]
fn verified_part_digests_are_kept_and_compose() {
    let (_d, s) = store();
    let p1 = common::gen(2, 5 * MIB as usize);
    let p2 = common::gen(3, 1234);
    s.put_object(L, "src", body(&p1)).unwrap();
    let up = s.start_multipart(L, "m", OCTET).unwrap();
    // Part 1 copied with a digest, part 2 uploaded with one.
    let d1 = sha256(&p1);
    let c = s
        .copy_part(
            L,
            &up,
            1,
            CopySource::new("src", format!("bytes=0-{}", p1.len() - 1).parse().unwrap())
                .digest(d1.clone()),
        )
        .unwrap();
    assert_eq!(c.digest.as_ref(), Some(&d1));
    let d2 = sha256(&p2);
    let p = s
        .upload_part(L, &up, 2, body(&p2).digest(d2.clone()))
        .unwrap();
    assert_eq!(p.digest.as_ref(), Some(&d2));
    let listed: Vec<_> = s
        .list_parts(L, &up)
        .unwrap()
        .into_iter()
        .map(|p| p.digest)
        .collect();
    assert_eq!(listed, [Some(d1.clone()), Some(d2.clone())]);
    let obj = s.complete_multipart(L, &up).unwrap();
    assert_eq!(obj.digest, None);
    let mut joined = d1.bytes().to_vec();
    joined.extend_from_slice(d2.bytes());
    assert_eq!(obj.composite_digest, Some(sha256(&joined)));
    assert_eq!(obj.part_count, 2);
}

#[test]
fn no_composite_digest_unless_every_part_has_one_algorithm() {
    let (_d, s) = store();
    let p1 = common::gen(4, 5 * MIB as usize);
    let up = s.start_multipart(L, "a", OCTET).unwrap();
    s.upload_part(L, &up, 1, body(&p1).digest(sha256(&p1)))
        .unwrap();
    s.upload_part(L, &up, 2, body(b"tail")).unwrap();
    assert_eq!(s.complete_multipart(L, &up).unwrap().composite_digest, None);
    let up = s.start_multipart(L, "b", OCTET).unwrap();
    s.upload_part(L, &up, 1, body(&p1).digest(sha256(&p1)))
        .unwrap();
    let crc = format!("CRC-32C:{:08x}", crc32c::crc32c(b"tail"));
    s.upload_part(L, &up, 2, body(b"tail").digest(crc.parse().unwrap()))
        .unwrap();
    assert_eq!(s.complete_multipart(L, &up).unwrap().composite_digest, None);
}

#[test]
fn kept_digests_survive_reopen_and_compaction() {
    let (d, s) = store();
    let b = common::gen(5, 100_000);
    s.put_object(L, "put", body(&b).digest(sha256(&b))).unwrap();
    let done = s.start_multipart(L, "multi", OCTET).unwrap();
    s.upload_part(L, &done, 1, body(&b).digest(sha256(&b)))
        .unwrap();
    s.complete_multipart(L, &done).unwrap();
    let open = s.start_multipart(L, "open", OCTET).unwrap();
    s.upload_part(L, &open, 1, body(&b).digest(sha256(&b)))
        .unwrap();
    let state = |s: &Store| {
        (
            s.head(L, "put").unwrap(),
            s.head(L, "multi").unwrap(),
            s.list_parts(L, &open).unwrap(),
        )
    };
    let want = state(&s);
    assert!(want.1.composite_digest.is_some());
    let s = reopen(&d, s);
    assert_eq!(state(&s), want);
    let s = compact_and_reopen(&d, s);
    assert_eq!(state(&s), want);
}

// ----- key rules per layer --------------------------------------------------

#[test]
fn utf8_layers_take_s3_keys_here_layers_do_not() {
    let (_d, s) = store();
    let max = "k".repeat(MAX_UTF8_KEY_BYTES);
    let max_multibyte = format!("{}{}", "日".repeat(341), "a"); // 1024 bytes
    assert_eq!(max_multibyte.len(), 1024);
    let keys = [
        "a b",
        "a+b",
        "100%",
        "ü/日本語",
        "dir/",
        "/lead",
        "a//b",
        "/",
        "tab\u{a0}nbsp",
        "emoji 🎉",
        "?#[]@!$&'()*,;=",
        max.as_str(),
        max_multibyte.as_str(),
    ];
    for k in keys {
        s.put_object(U, k, body(k.as_bytes()))
            .unwrap_or_else(|e| panic!("{k:?}: {e}"));
        assert_eq!(read_all(&s, U, k), k.as_bytes(), "{k:?}");
        // None of them is a HERE key.
        expect(
            s.put_object(L, k, body(b"x")),
            ErrorKind::BadRequest,
            Reason::InvalidKey,
        );
    }
    let all = list_all(&s, U, ListOptions::default().deep(true), 3);
    let mut want: Vec<String> = keys.iter().map(|k| k.to_string()).collect();
    want.sort();
    assert_eq!(all, want);
}

#[test]
fn utf8_keys_break_rules_too() {
    let (_d, s) = store();
    let long = "k".repeat(MAX_UTF8_KEY_BYTES + 1);
    let long_multibyte = "é".repeat(513); // 1026 bytes, 513 characters
    for k in [
        "",
        long.as_str(),
        long_multibyte.as_str(),
        "nul\0",
        "line\nbreak",
        "tab\there",
        "del\u{7f}",
        "c1\u{85}",
    ] {
        expect(
            s.put_object(U, k, unread()),
            ErrorKind::BadRequest,
            Reason::InvalidKey,
        );
        expect(s.head(U, k), ErrorKind::BadRequest, Reason::InvalidKey);
        expect(
            s.start_multipart(U, k, OCTET),
            ErrorKind::BadRequest,
            Reason::InvalidKey,
        );
        expect(s.delete(U, k), ErrorKind::BadRequest, Reason::InvalidKey);
    }
    assert!(s.list(U, &ListOptions::default()).unwrap().items.is_empty());
    assert!(s.list_uploads(U).unwrap().is_empty());
}

/// A body that must not be read.
fn unread() -> PartBody<PanicReader> {
    PartBody::new(PanicReader, 1)
}

/// The same hierarchy rule under both: a folder is what precedes a `/`;
/// under Utf8 that may be empty or end in `/` itself.
#[test]
fn listing_splits_on_slash_under_both_rules() {
    let (_d, s) = store();
    for k in ["a/b", "a/c/d", "top", "z/y/x"] {
        s.put_object(L, k, body(b"h")).unwrap();
        s.put_object(U, k, body(b"u")).unwrap();
    }
    for layer in [L, U] {
        let root = s.list(layer, &ListOptions::default()).unwrap();
        assert_eq!(keys(&root), ["a/", "top", "z/"], "{layer}");
        let a = s.list(layer, &ListOptions::default().parent("a")).unwrap();
        assert_eq!(keys(&a), ["a/b", "a/c/"], "{layer}");
        let a = s.list(layer, &ListOptions::default().parent("a/")).unwrap();
        assert_eq!(keys(&a), ["a/b", "a/c/"], "{layer}");
    }
    for k in ["/x", "a//c", "dir/", "dir//"] {
        s.put_object(U, k, body(b"u")).unwrap();
    }
    let root = s.list(U, &ListOptions::default()).unwrap();
    // "/x" is in the folder "" (listed as "/"), "a//c" in "a" then "a/".
    assert_eq!(keys(&root), ["/", "a/", "dir/", "top", "z/"]);
    let o = |p: &str| keys(&s.list(U, &ListOptions::default().parent(p)).unwrap());
    assert_eq!(o("/"), ["/x"]);
    assert_eq!(o("a"), ["a//", "a/b", "a/c/"]);
    assert_eq!(o("a//"), ["a//c"]);
    assert_eq!(o("dir"), ["dir/", "dir//"]);
    assert_eq!(o("dir/"), ["dir/", "dir//"]);
    assert_eq!(o("dir//"), ["dir//"]);
    // Deep listings of a folder take everything under it.
    let deep = |p: &str| list_all(&s, U, ListOptions::default().parent(p).deep(true), 1);
    assert_eq!(deep("a"), ["a//c", "a/b", "a/c/d"]);
    assert_eq!(
        deep(""),
        list_all(&s, U, ListOptions::default().deep(true), 1000)
    );
    // The root's token does not serve the folder "" (another listing).
    let page = s.list(U, &ListOptions::default().limit(1)).unwrap();
    let t = page.next_page_token.unwrap();
    expect(
        s.list(U, &ListOptions::default().parent("/").page_token(t)),
        ErrorKind::BadRequest,
        Reason::InvalidPageToken,
    );
    // A Here layer keeps its parent rules.
    expect(
        s.list(L, &ListOptions::default().parent("/")),
        ErrorKind::BadRequest,
        Reason::InvalidKey,
    );
    expect(
        s.list(U, &ListOptions::default().parent("a\nb")),
        ErrorKind::BadRequest,
        Reason::InvalidKey,
    );
}

#[test]
fn key_rules_survive_reopen_and_compaction() {
    let (d, s) = store();
    s.put_object(U, "a b/ü", body(b"x")).unwrap();
    let layers = s.list_layers();
    assert!(layers
        .iter()
        .any(|(id, c)| id == U && c.key_rules == KeyRules::Utf8));
    let s = reopen(&d, s);
    assert_eq!(s.list_layers(), layers);
    s.put_object(U, "after reopen", body(b"y")).unwrap();
    let s = compact_and_reopen(&d, s);
    assert_eq!(s.list_layers(), layers);
    assert_eq!(read_all(&s, U, "a b/ü"), b"x");
    s.put_object(U, "after compaction", body(b"z")).unwrap();
    expect(
        s.put_object(L, "a b", body(b"x")),
        ErrorKind::BadRequest,
        Reason::InvalidKey,
    );
}

#[test]
fn s3_bucket_names_are_layer_ids() {
    let dir = tempfile::tempdir().unwrap();
    let s = Store::open(dir.path(), opts()).unwrap();
    let longest = format!("b{}", "-x.y".repeat(15) + "ab"); // 63 characters
    assert_eq!(longest.len(), 63);
    for id in ["abc", "my.bucket-1", longest.as_str()] {
        s.create_layer(id, LayerConfig::default()).unwrap();
    }
    expect(
        s.create_layer(&"b".repeat(64), LayerConfig::default()),
        ErrorKind::BadRequest,
        Reason::InvalidLayerId,
    );
}

// ----- listing by prefix, start after ----------------------------------------

#[test]
fn list_by_prefix_groups_after_the_prefix() {
    let (_d, s) = store();
    for k in ["dir/a", "dir/sub/c", "dir/sub/d", "dir/sz", "dir2/e", "dix"] {
        s.put_object(U, k, body(b"x")).unwrap();
    }
    let l = |o: ListOptions| list_all(&s, U, o, 1);
    assert_eq!(
        l(ListOptions::default().prefix("dir/s")),
        ["dir/sub/", "dir/sz"]
    );
    assert_eq!(
        l(ListOptions::default().prefix("dir/s").deep(true)),
        ["dir/sub/c", "dir/sub/d", "dir/sz"]
    );
    assert_eq!(l(ListOptions::default().prefix("dir")), ["dir/", "dir2/"]);
    assert_eq!(
        l(ListOptions::default().prefix("di")),
        ["dir/", "dir2/", "dix"]
    );
    assert_eq!(
        l(ListOptions::default().prefix("nope")),
        Vec::<String>::new()
    );
    assert_eq!(
        l(ListOptions::default().prefix("")),
        ["dir/", "dir2/", "dix"]
    );
    expect(
        s.list(U, &ListOptions::default().parent("dir").prefix("dir/")),
        ErrorKind::BadRequest,
        Reason::InvalidArgument,
    );
    // Tokens are bound to their prefix.
    let page = s
        .list(U, &ListOptions::default().prefix("dir").limit(1))
        .unwrap();
    let t = page.next_page_token.unwrap();
    expect(
        s.list(U, &ListOptions::default().prefix("di").page_token(t)),
        ErrorKind::BadRequest,
        Reason::InvalidPageToken,
    );
}

#[test]
fn start_after_skips_keys_and_the_folders_it_lies_in() {
    let (_d, s) = store();
    for k in ["a", "dir/a", "dir/b", "dir/sub/c", "e", "f/g"] {
        s.put_object(L, k, body(b"x")).unwrap();
    }
    let l = |o: ListOptions| list_all(&s, L, o, 2);
    let all = ListOptions::default();
    assert_eq!(l(all.clone().start_after("a")), ["dir/", "e", "f/"]);
    // "dir/a" lies in the folder "dir": the folder is not listed again.
    assert_eq!(l(all.clone().start_after("dir/a")), ["e", "f/"]);
    assert_eq!(l(all.clone().start_after("dir/")), ["e", "f/"]);
    assert_eq!(l(all.clone().start_after("dir")), ["dir/", "e", "f/"]);
    assert_eq!(
        l(all.clone().deep(true).start_after("dir/a")),
        ["dir/b", "dir/sub/c", "e", "f/g"]
    );
    assert_eq!(
        l(all.clone().parent("dir").start_after("dir/a")),
        ["dir/b", "dir/sub/"]
    );
    assert_eq!(l(all.clone().start_after("zzz")), Vec::<String>::new());
    assert_eq!(l(all.start_after("")), ["a", "dir/", "e", "f/"]);
}

// ----- bodies of unknown length -------------------------------------------------

#[test]
fn until_eof_bodies_are_stored_whole() {
    let (d, s) = store();
    for (i, len) in [
        0usize,
        1,
        1000,
        MIB as usize,
        MIB as usize + 1,
        3 * MIB as usize + 5,
    ]
    .into_iter()
    .enumerate()
    {
        let b = common::gen(10 + i as u64, len);
        let key = format!("k{i}");
        let info = s
            .put_object(L, &key, PartBody::until_eof(Dribble(&b)))
            .unwrap();
        assert_eq!(info.size, len as u64);
        assert_eq!(info.crc32c, crc32c::crc32c(&b));
        assert_eq!(read_all(&s, L, &key), b);
    }
    let up = s.start_multipart(L, "m", OCTET).unwrap();
    let p1 = common::gen(20, 5 * MIB as usize);
    let p2 = common::gen(21, 77);
    s.upload_part(L, &up, 1, PartBody::until_eof(&p1[..]))
        .unwrap();
    s.upload_part(L, &up, 2, PartBody::until_eof(&p2[..]))
        .unwrap();
    s.complete_multipart(L, &up).unwrap();
    let want = [p1, p2].concat();
    assert_eq!(read_all(&s, L, "m"), want);
    let s = reopen(&d, s);
    assert_eq!(read_all(&s, L, "m"), want);
    assert!(s.verify().unwrap().is_clean());
}

#[test]
fn until_eof_digests_are_checked_and_kept() {
    let (_d, s) = store();
    let b = common::gen(30, 2 * MIB as usize + 3);
    let wrong = sha256(b"other");
    expect(
        s.put_object(L, "k", PartBody::until_eof(&b[..]).digest(wrong.clone())),
        ErrorKind::BadRequest,
        Reason::DigestMismatch,
    );
    expect(s.head(L, "k"), ErrorKind::NotFound, Reason::UnknownKey);
    let up = s.start_multipart(L, "m", OCTET).unwrap();
    expect(
        s.upload_part(L, &up, 1, PartBody::until_eof(&b[..]).digest(wrong)),
        ErrorKind::BadRequest,
        Reason::DigestMismatch,
    );
    assert!(s.list_parts(L, &up).unwrap().is_empty());
    let p = s
        .upload_part(L, &up, 1, PartBody::until_eof(&b[..]).digest(sha256(&b)))
        .unwrap();
    assert_eq!(p.digest, Some(sha256(&b)));
    let info = s
        .put_object(L, "k", PartBody::until_eof(&b[..]).digest(sha256(&b)))
        .unwrap();
    assert_eq!(info.digest, Some(sha256(&b)));
}

/// The limits hold on bytes read, not declared: one byte past them is
/// TooLarge and nothing is stored; exactly the limit is fine.
#[test]
fn until_eof_past_the_limits_is_too_large() {
    let (_d, s) = store();
    let zeros = |n: u64| io::repeat(0).take(n);
    let up = s.start_multipart(L, "m", OCTET).unwrap();
    s.upload_part(L, &up, 1, body(b"kept")).unwrap();
    let before = s.list_parts(L, &up).unwrap();
    let e = expect(
        s.upload_part(
            L,
            &up,
            1,
            PartBody::until_eof(zeros(rules::MAX_PART_SIZE + 1)),
        ),
        ErrorKind::TooLarge,
        Reason::PartTooLarge,
    );
    assert_eq!(e.part_number(), Some(1));
    assert_eq!(s.list_parts(L, &up).unwrap(), before);
    let p = s
        .upload_part(L, &up, 2, PartBody::until_eof(zeros(rules::MAX_PART_SIZE)))
        .unwrap();
    assert_eq!(p.size, rules::MAX_PART_SIZE);
    s.put_object(L, "k", body(b"kept")).unwrap();
    expect(
        s.put_object(
            L,
            "k",
            PartBody::until_eof(zeros(rules::MAX_PUT_OBJECT_SIZE + 1)),
        ),
        ErrorKind::TooLarge,
        Reason::ObjectTooLarge,
    );
    assert_eq!(read_all(&s, L, "k"), b"kept");
    let stats = s.stats();
    // The unused end of a region reserved for an unknown length is no data.
    assert!(
        stats.per_segment.iter().map(|g| g.data_bytes).sum::<u64>()
            < 2 * rules::MAX_PART_SIZE + rules::MAX_PUT_OBJECT_SIZE + 2 * MIB,
        "{stats:?}"
    );
}

// ----- completed uploads ------------------------------------------------------

#[test]
fn upload_result_is_the_object_a_complete_published() {
    let (d, s) = store();
    let up = s
        .start_multipart(L, "m", UploadOptions::new(OCTET).metadata([("a", "1")]))
        .unwrap();
    expect(
        s.upload_result(L, &up),
        ErrorKind::BadRequest,
        Reason::UploadNotCompleted,
    );
    s.upload_part(L, &up, 1, body(b"hello")).unwrap();
    let done = s.complete_multipart(L, &up).unwrap();
    assert_eq!(s.upload_result(L, &up).unwrap(), done);
    assert_eq!(s.upload_status(L, &up).unwrap(), UploadStatus::Completed);
    expect(
        s.complete_multipart(L, &up),
        ErrorKind::BadRequest,
        Reason::UploadCompleted,
    );
    // Replaced or deleted since: still what the upload published.
    s.put_object(L, "m", body(b"newer")).unwrap();
    assert_eq!(s.upload_result(L, &up).unwrap(), done);
    let s = reopen(&d, s);
    assert_eq!(s.upload_result(L, &up).unwrap(), done);
    s.delete(L, "m").unwrap();
    let s = compact_and_reopen(&d, s);
    assert_eq!(s.upload_result(L, &up).unwrap(), done);
    expect(
        s.upload_result(U, &up),
        ErrorKind::NotFound,
        Reason::UnknownUpload,
    );
    let aborted = s.start_multipart(L, "x", OCTET).unwrap();
    s.abort_multipart(L, &aborted).unwrap();
    expect(
        s.upload_result(L, &aborted),
        ErrorKind::NotFound,
        Reason::UnknownUpload,
    );
}

/// Fronts answer "GET part N of an object" (S3's partNumber): the object
/// keeps the part sizes its upload published.
#[test]
fn objects_keep_their_part_boundaries() {
    let (d, s) = store();
    let p1 = common::gen(40, 5 * MIB as usize);
    let p2 = common::gen(41, 6 * MIB as usize);
    let p3 = common::gen(42, 10);
    let up = s.start_multipart(L, "m", OCTET).unwrap();
    for (n, p) in [(1, &p1), (2, &p2), (3, &p3)] {
        s.upload_part(L, &up, n, body(p)).unwrap();
    }
    let info = s.complete_multipart(L, &up).unwrap();
    let (a, b) = (5 * MIB, 11 * MIB);
    let want = [Some(0..a), Some(a..b), Some(b..b + 10), None];
    let ranges = |i: &ObjectInfo| [1, 2, 3, 4].map(|n| i.part_range(n));
    assert_eq!(ranges(&info), want);
    assert_eq!(info.part_range(0), None);
    assert_eq!(ranges(&s.copy_object(L, "c", "m").unwrap()), want);
    let s = compact_and_reopen(&d, s);
    assert_eq!(ranges(&s.head(L, "m").unwrap()), want);
    assert_eq!(ranges(&s.head(L, "c").unwrap()), want);
    let one = s.put_object(L, "one", body(b"abc")).unwrap();
    assert_eq!([1, 2].map(|n| one.part_range(n)), [Some(0..3), None]);
}

#[test]
fn layers_know_when_they_were_created() {
    let (d, s) = store();
    let before = std::time::SystemTime::now() - std::time::Duration::from_secs(1);
    let info = s.layer_info(U).unwrap();
    assert_eq!(info.config.key_rules, KeyRules::Utf8);
    let created = info.created.unwrap();
    assert!(created >= before && created <= std::time::SystemTime::now());
    let s = compact_and_reopen(&d, s);
    assert_eq!(s.layer_info(U).unwrap(), info);
    expect(
        s.layer_info("nope"),
        ErrorKind::NotFound,
        Reason::UnknownLayer,
    );
}

// ----- durations ------------------------------------------------------------------

/// An idle time of 2^64 ms does not fit a u64: cast, it wrapped to 0 and
/// expired every upload.
#[test]
fn durations_saturate() {
    let (_d, s) = store();
    let up = s.start_multipart(L, "k", OCTET).unwrap();
    let two_to_64_ms = std::time::Duration::new(18_446_744_073_709_551, 616_000_000);
    assert_eq!(two_to_64_ms.as_millis(), 1 << 64);
    assert_eq!(s.expire_uploads(two_to_64_ms).unwrap(), 0);
    assert_eq!(s.expire_uploads(std::time::Duration::MAX).unwrap(), 0);
    assert!(s.upload_status(L, &up).is_ok());
    assert_eq!(s.expire_uploads(std::time::Duration::ZERO).unwrap(), 1);
}

// ----- delete_layer -------------------------------------------------------------

#[test]
fn delete_layer_needs_an_empty_layer() {
    let (_d, s) = store();
    s.put_object(L, "k", body(b"x")).unwrap();
    let e = expect(
        s.delete_layer(L),
        ErrorKind::Conflict,
        Reason::LayerNotEmpty,
    );
    assert!(e.to_string().contains("\"k\""), "{e}");
    s.delete(L, "k").unwrap();
    let up = s.start_multipart(L, "k", OCTET).unwrap();
    expect(
        s.delete_layer(L),
        ErrorKind::Conflict,
        Reason::LayerNotEmpty,
    );
    assert_eq!(s.list_uploads(L).unwrap().len(), 1);
    s.abort_multipart(L, &up).unwrap();
    // A completed upload does not hold the layer.
    let done = s.start_multipart(L, "k", OCTET).unwrap();
    s.upload_part(L, &done, 1, body(b"y")).unwrap();
    s.complete_multipart(L, &done).unwrap();
    s.delete(L, "k").unwrap();
    s.delete_layer(L).unwrap();
    assert!(s.list_layers().iter().all(|(id, _)| id != L));
    expect(s.delete_layer(L), ErrorKind::NotFound, Reason::UnknownLayer);
    expect(
        s.delete_layer("no-such"),
        ErrorKind::NotFound,
        Reason::UnknownLayer,
    );
    expect(
        s.delete_layer("bad id"),
        ErrorKind::BadRequest,
        Reason::InvalidLayerId,
    );
}

#[test]
fn a_deleted_layer_is_not_found_until_created_again() {
    let (d, s) = store();
    let up = s.start_multipart(U, "k", OCTET).unwrap();
    s.upload_part(U, &up, 1, body(b"y")).unwrap();
    s.complete_multipart(U, &up).unwrap();
    s.delete(U, "k").unwrap();
    s.delete_layer(U).unwrap();
    let gone = |s: &Store| {
        let nf = ErrorKind::NotFound;
        expect(s.head(U, "k"), nf, Reason::UnknownLayer);
        expect(
            s.put_object(U, "k", PartBody::new(PanicReader, 1)),
            nf,
            Reason::UnknownLayer,
        );
        expect(s.start_multipart(U, "k", OCTET), nf, Reason::UnknownLayer);
        expect(s.list(U, &ListOptions::default()), nf, Reason::UnknownLayer);
        expect(s.list_uploads(U), nf, Reason::UnknownLayer);
        expect(s.upload_status(U, &up), nf, Reason::UnknownLayer);
        expect(s.delete(U, "k"), nf, Reason::UnknownLayer);
    };
    gone(&s);
    let s = reopen(&d, s);
    gone(&s);
    let s = compact_and_reopen(&d, s);
    gone(&s);
    // Created again: empty, with the new configuration, and the old
    // completed upload is unknown.
    s.create_layer(U, LayerConfig::default()).unwrap();
    assert!(s.list(U, &ListOptions::default()).unwrap().items.is_empty());
    expect(
        s.upload_status(U, &up),
        ErrorKind::NotFound,
        Reason::UnknownUpload,
    );
    expect(
        s.put_object(U, "a b", body(b"x")),
        ErrorKind::BadRequest,
        Reason::InvalidKey,
    );
    s.put_object(U, "k", body(b"again")).unwrap();
    let s = reopen(&d, s);
    assert_eq!(read_all(&s, U, "k"), b"again");
}
