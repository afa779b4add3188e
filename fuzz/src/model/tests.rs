//! Each rule of the model against expectations written by hand from
//! the SPEC. Every record and request also goes to a real `Index`,
//! which must answer the same (the driver checks that at scale).

use super::*;
use partstore::internals::{Index, Retention};
use std::time::Duration;

const UP: [u8; 16] = [1; 16];
const UP2: [u8; 16] = [2; 16];

/// The model and a real index, fed the same records.
#[derive(Default)]
struct World {
    m: Model,
    ix: Index,
}

impl World {
    /// Checks a record on both sides (same answer), applies it if
    /// accepted, and returns the model's answer.
    fn rec(&mut self, meta: Meta) -> Check {
        let want = self.m.check(&meta);
        let got = self.ix.validate(&meta).map_err(|e| e.kind());
        assert_eq!(got, want, "{meta:?}");
        if want.is_ok() {
            self.m.apply(&meta);
            self.ix.apply_validated(meta);
        }
        want
    }

    fn plan_put(
        &self,
        layer: &str,
        key: &str,
        len: u64,
        ct: Option<&str>,
        ce: Option<&str>,
    ) -> Result<(String, Option<String>), Why> {
        let want = self.m.plan_put(layer, key, len, ct, ce);
        let got = self.ix.plan_put(layer, key, len, ct, ce);
        assert_eq!(got.map_err(|e| Why::of(&e)), want);
        want
    }

    fn plan_part(&self, up: &[u8; 16], n: u32, len: u64, ct: Option<&str>) -> Result<(), Why> {
        let want = self.m.plan_part("a", up, n, len, ct);
        let got = self.ix.plan_part("a", up, n, len, ct, Retention::forever());
        assert_eq!(got.map_err(|e| Why::of(&e)), want);
        want
    }

    fn plan_copy(&self, up: &[u8; 16], n: u32, key: &str, r: ByteRange) -> Result<u64, Why> {
        let want = self.m.plan_copy("a", up, n, key, &r);
        let got = self.ix.plan_copy("a", up, n, key, &r, Retention::forever());
        match (&got, &want) {
            (Ok(plan), Ok(size)) => {
                assert_eq!(plan.size, *size);
                let ByteRange::Bounded { first, .. } = r else {
                    unreachable!("planned");
                };
                let src = &self.m.layers["a"].objects[key];
                covers(&src.pieces, first, *size, &plan.pieces).expect("covers");
            }
            (got, want) => {
                let got = got.as_ref().map(|_| 0).map_err(Why::of);
                assert_eq!(got, want.map(|_| 0));
            }
        }
        want
    }

    fn live(&self) -> BTreeMap<u64, u64> {
        self.m.live()
    }
}

fn why(kind: ErrorKind, reason: Reason) -> Why {
    Why::new(kind, reason)
}

fn layer(id: &str, ct: Option<&str>, ce: Option<&str>) -> Meta {
    Meta::LayerCreated {
        key_rules: partstore::KeyRules::Here,
        time_ms: 0,
        layer: id.into(),
        content_type: ct.map(String::from),
        content_encoding: ce.map(String::from),
    }
}

fn start(id: [u8; 16], key: &str, ct: &str, ce: Option<&str>) -> Meta {
    Meta::UploadStarted {
        metadata: Vec::new(),
        layer: "a".into(),
        upload: id,
        key: key.into(),
        content_type: ct.into(),
        content_encoding: ce.map(String::from),
        time_ms: 10,
    }
}

fn extent(id: u64, len: u64) -> ExtentDef {
    ExtentDef {
        id,
        segment: 1,
        offset: 32 + id * 8,
        len,
        block_crcs: vec![7; len.div_ceil(MIB) as usize],
    }
}

fn whole(e: &ExtentDef) -> Vec<Piece> {
    vec![Piece {
        extent: e.id,
        offset: 0,
        len: e.len,
    }]
}

/// Part `n` of `up` becomes a new extent `ext` of `len` bytes.
fn part(up: [u8; 16], n: u32, id: u64, ext: u64, len: u64) -> Meta {
    let e = extent(ext, len);
    Meta::PartSet {
        digest: None,
        layer: "a".into(),
        upload: up,
        number: n,
        part_id: id,
        pieces: whole(&e),
        new_extent: Some(e),
        size: len,
        crc32c: id as u32,
        time_ms: 20,
    }
}

/// Part `n` of `up` references existing pieces.
fn part_of(up: [u8; 16], n: u32, id: u64, pieces: Vec<Piece>) -> Meta {
    Meta::PartSet {
        digest: None,
        layer: "a".into(),
        upload: up,
        number: n,
        part_id: id,
        size: pieces.iter().map(|p| p.len).sum(),
        pieces,
        new_extent: None,
        crc32c: 0,
        time_ms: 20,
    }
}

fn complete(up: [u8; 16], parts: &[(u32, u64)], seq: u64) -> Meta {
    Meta::UploadCompleted {
        layer: "a".into(),
        upload: up,
        parts: parts.to_vec(),
        etag_seq: seq,
        time_ms: 30,
    }
}

fn put(key: &str, ext: u64, len: u64, seq: u64) -> Meta {
    Meta::ObjectPut {
        digest: None,
        metadata: Vec::new(),
        layer: "a".into(),
        key: key.into(),
        new_extent: (len > 0).then(|| extent(ext, len)),
        size: len,
        crc32c: 0,
        content_type: "application/octet-stream".into(),
        content_encoding: None,
        etag_seq: seq,
        time_ms: 40,
    }
}

fn delete(layer: &str, key: &str) -> Meta {
    Meta::ObjectDeleted {
        layer: layer.into(),
        key: key.into(),
    }
}

/// A world with layer "a" and an open upload `UP` of key "k".
fn with_upload() -> World {
    let mut w = World::default();
    w.rec(layer("a", None, None)).expect("layer");
    w.rec(start(UP, "k", "text/plain", None)).expect("start");
    w
}

#[test]
fn names_follow_the_spec() {
    assert!(key_ok("a/b.c[1]=(x){y}_-"));
    for bad in ["", "/a", "a/", "a//b", "a b", "é", &"k".repeat(451)] {
        assert!(!key_ok(bad), "{bad:?}");
    }
    assert!(key_ok(&"k".repeat(450)));
    assert!(layer_ok("A-z_0.9"));
    assert!(layer_ok(&"l".repeat(63)));
    for bad in ["", "a/b", "a b", &"l".repeat(64)] {
        assert!(!layer_ok(bad), "{bad:?}");
    }
}

#[test]
fn layers_are_created_once() {
    let mut w = World::default();
    assert_eq!(w.rec(layer("a", None, None)), Ok(()));
    assert_eq!(w.rec(layer("a", None, None)), Err(ErrorKind::Conflict));
    assert_eq!(
        w.rec(layer("bad/id", None, None)),
        Err(ErrorKind::BadRequest)
    );
    assert_eq!(
        w.m.layer("b").err(),
        Some(why(ErrorKind::NotFound, Reason::UnknownLayer))
    );
    assert_eq!(
        w.m.layer("").err(),
        Some(why(ErrorKind::BadRequest, Reason::InvalidLayerId))
    );
    let mut other = start(UP, "k", "a/b", None);
    if let Meta::UploadStarted { layer, .. } = &mut other {
        *layer = "b".into();
    }
    assert_eq!(w.rec(other), Err(ErrorKind::NotFound));
}

#[test]
fn an_upload_id_is_used_once() {
    let mut w = with_upload();
    assert_eq!(
        w.rec(start(UP, "other", "a/b", None)),
        Err(ErrorKind::Conflict)
    );
    assert_eq!(
        w.rec(start(UP2, "a//b", "a/b", None)),
        Err(ErrorKind::BadRequest)
    );
    assert_eq!(w.rec(start(UP2, "k", "a/b", None)), Ok(()));
}

/// A completed upload's token does not block a start (its tombstone is
/// swept without a record, so whether it is still held must not decide
/// whether a record applies): the start replaces the tombstone, on both
/// sides, whether or not the index swept it first.
#[test]
fn a_completed_upload_id_may_start_again() {
    for sweep in [false, true] {
        let mut w = with_upload();
        w.rec(part(UP, 1, 11, 10, 1)).expect("part 1");
        w.rec(complete(UP, &[(1, 11)], 20)).expect("complete");
        assert_eq!(w.ix.completed_uploads(), 1);
        if sweep {
            assert_eq!(w.ix.forget_completed(Retention::at(Duration::ZERO, 0)), 1);
        }
        assert_eq!(w.rec(start(UP, "k2", "text/plain", None)), Ok(()));
        assert_eq!(w.ix.completed_uploads(), 0);
        let u =
            w.ix.open_upload("a", &UP, Retention::forever())
                .expect("open again");
        assert_eq!((u.key.as_str(), u.parts.len()), ("k2", 0));
    }
}

/// Setting part n again replaces it: the new id is current, the old
/// part's extent is no longer referenced, and completing with the old id
/// is refused.
#[test]
fn part_overwrite_replaces_and_frees() {
    let mut w = with_upload();
    w.rec(part(UP, 1, 11, 10, 5 * MIB)).expect("part 1");
    assert_eq!(w.live(), BTreeMap::from([(10, 1)]));
    w.rec(part(UP, 1, 13, 12, 6 * MIB)).expect("part 1 again");
    let parts = w.m.uploads[&UP].parts.as_ref().expect("open");
    assert_eq!(parts.len(), 1);
    assert_eq!((parts[&1].id, parts[&1].size), (13, 6 * MIB));
    assert_eq!(w.live(), BTreeMap::from([(12, 1)]));
    assert_eq!(w.m.max_id, 13);
    // Stale id, then a number never uploaded, then the current id.
    assert_eq!(
        w.rec(complete(UP, &[(1, 11)], 20)),
        Err(ErrorKind::BadRequest)
    );
    assert_eq!(
        w.rec(complete(UP, &[(2, 13)], 20)),
        Err(ErrorKind::BadRequest)
    );
    assert_eq!(w.rec(complete(UP, &[(1, 13)], 20)), Ok(()));
    let o = &w.m.layers["a"].objects["k"];
    assert_eq!((o.size, o.part_count, o.etag_seq), (6 * MIB, 1, 20));
    assert_eq!(o.content_type, "text/plain");
    assert_eq!(w.live(), BTreeMap::from([(12, 1)]));
}

/// The complete-time rules: at least one part, each number once,
/// numbers 1..=N, every part but the last at least 5 MiB and a multiple
/// of 1 MiB; the object is the parts in number order whatever the list's
/// order, and parts left out are dropped.
#[test]
fn complete_rules() {
    let mut w = with_upload();
    w.rec(part(UP, 1, 21, 20, 5 * MIB)).expect("1");
    w.rec(part(UP, 2, 23, 22, 1)).expect("2");
    w.rec(part(UP, 3, 25, 24, 3 * MIB)).expect("3");
    w.rec(part(UP, 4, 27, 26, 7)).expect("4");
    let bad = ErrorKind::BadRequest;
    assert_eq!(w.rec(complete(UP, &[], 30)), Err(bad), "no parts");
    assert_eq!(
        w.rec(complete(UP, &[(1, 21), (1, 21)], 30)),
        Err(bad),
        "listed twice"
    );
    assert_eq!(w.rec(complete(UP, &[(2, 23)], 30)), Err(bad), "no part 1");
    assert_eq!(
        w.rec(complete(UP, &[(1, 21), (3, 25)], 30)),
        Err(bad),
        "gap"
    );
    assert_eq!(
        w.rec(complete(UP, &[(1, 21), (2, 23), (3, 25)], 30)),
        Err(bad),
        "part 2 under 5 MiB"
    );
    // 1 and 2, listed backwards: part 2 (1 byte) is last, so allowed.
    assert_eq!(w.rec(complete(UP, &[(2, 23), (1, 21)], 30)), Ok(()));
    let o = &w.m.layers["a"].objects["k"];
    assert_eq!((o.size, o.part_count), (5 * MIB + 1, 2));
    assert_eq!(o.crc, crc32c::crc32c_combine(21, 23, 1));
    assert_eq!(
        o.pieces,
        vec![
            Piece {
                extent: 20,
                offset: 0,
                len: 5 * MIB
            },
            Piece {
                extent: 22,
                offset: 0,
                len: 1
            }
        ]
    );
    // Parts 3 and 4 were dropped with their extents.
    assert_eq!(w.live(), BTreeMap::from([(20, 1), (22, 1)]));
    // A completed upload takes nothing more, but is still known.
    let done = why(ErrorKind::BadRequest, Reason::UploadCompleted);
    assert_eq!(w.m.open_upload("a", &UP).err(), Some(done));
    assert_eq!(w.rec(part(UP, 1, 31, 30, 1)), Err(bad));
    assert_eq!(w.rec(complete(UP, &[(1, 21)], 32)), Err(bad));
    let abort = Meta::UploadAborted {
        layer: "a".into(),
        upload: UP,
        time_ms: 40,
    };
    assert_eq!(w.rec(abort), Err(bad));
    assert_eq!(w.plan_part(&UP, 1, 1, None), Err(done));
}

#[test]
fn a_non_last_part_must_be_whole_mebibytes() {
    let mut w = with_upload();
    w.rec(part(UP, 1, 21, 20, 5 * MIB + 1)).expect("1");
    w.rec(part(UP, 2, 23, 22, 1)).expect("2");
    assert_eq!(
        w.rec(complete(UP, &[(1, 21), (2, 23)], 30)),
        Err(ErrorKind::BadRequest)
    );
    // Alone, part 1 is last: any size.
    w.rec(part(UP, 2, 25, 24, 5 * MIB)).expect("2 again");
    assert_eq!(
        w.rec(complete(UP, &[(1, 21), (2, 25)], 30)),
        Err(ErrorKind::BadRequest)
    );
    assert_eq!(w.rec(complete(UP, &[(1, 21)], 30)), Ok(()));
}

#[test]
fn aborting_frees_the_parts_and_forgets_the_upload() {
    let mut w = with_upload();
    w.rec(part(UP, 1, 21, 20, 5 * MIB)).expect("1");
    let abort = |up| Meta::UploadAborted {
        layer: "a".into(),
        upload: up,
        time_ms: 40,
    };
    assert_eq!(w.rec(abort(UP2)), Err(ErrorKind::NotFound));
    assert_eq!(w.rec(abort(UP)), Ok(()));
    assert!(w.live().is_empty());
    assert_eq!(w.rec(abort(UP)), Err(ErrorKind::NotFound));
    assert_eq!(
        w.m.open_upload("a", &UP).err(),
        Some(why(ErrorKind::NotFound, Reason::UnknownUpload))
    );
}

/// An upload belongs to its layer: named through another layer it is
/// unknown.
#[test]
fn an_upload_is_bound_to_its_layer() {
    let mut w = with_upload();
    w.rec(layer("b", None, None)).expect("layer b");
    let unknown = why(ErrorKind::NotFound, Reason::UnknownUpload);
    assert_eq!(w.m.open_upload("b", &UP).err(), Some(unknown));
    assert_eq!(w.m.plan_part("b", &UP, 1, 1, None), Err(unknown));
    let mut p = part(UP, 1, 21, 20, 1);
    if let Meta::PartSet {
        digest: None,
        layer,
        ..
    } = &mut p
    {
        *layer = "b".into();
    }
    assert_eq!(w.rec(p), Err(ErrorKind::NotFound));
}

/// Deleting is idempotent: a missing key is fine, twice is fine; only a
/// bad key or layer is refused. Deleting frees the object's extent.
#[test]
fn delete_is_idempotent() {
    let mut w = World::default();
    w.rec(layer("a", None, None)).expect("layer");
    w.rec(put("k", 5, 100, 6)).expect("put");
    assert_eq!(w.live(), BTreeMap::from([(5, 1)]));
    assert_eq!(w.rec(delete("a", "k")), Ok(()));
    assert!(w.live().is_empty());
    assert_eq!(w.rec(delete("a", "k")), Ok(()));
    assert_eq!(w.rec(delete("a", "never")), Ok(()));
    assert!(w.m.layers["a"].objects.is_empty());
    assert_eq!(w.rec(delete("a", "a//b")), Err(ErrorKind::BadRequest));
    assert_eq!(w.rec(delete("b", "k")), Err(ErrorKind::NotFound));
    assert_eq!(w.rec(delete("b/", "k")), Err(ErrorKind::BadRequest));
}

/// A put replaces the key's object (its extent goes); a copy shares the
/// source's extents and takes a new time.
#[test]
fn put_replaces_and_copy_shares() {
    let mut w = World::default();
    w.rec(layer("a", None, None)).expect("layer");
    w.rec(put("k", 5, 100, 6)).expect("put");
    w.rec(put("k", 7, 200, 8)).expect("put again");
    assert_eq!(w.live(), BTreeMap::from([(7, 1)]));
    assert_eq!(w.m.max_id, 8);
    let copy = |src: &str, dst: &str| Meta::ObjectCopied {
        metadata: None,
        layer: "a".into(),
        src: src.into(),
        dst: dst.into(),
        time_ms: 99,
    };
    assert_eq!(w.rec(copy("k", "c")), Ok(()));
    assert_eq!(w.live(), BTreeMap::from([(7, 2)]));
    let (k, c) = (&w.m.layers["a"].objects["k"], &w.m.layers["a"].objects["c"]);
    assert_eq!(
        (c.size, c.etag_seq, &c.pieces),
        (k.size, k.etag_seq, &k.pieces)
    );
    assert_eq!(c.time, 99);
    assert_eq!(w.rec(copy("missing", "d")), Err(ErrorKind::NotFound));
    assert_eq!(w.rec(copy("k", "d/")), Err(ErrorKind::BadRequest));
    // An empty put holds no extent.
    w.rec(put("k", 0, 0, 9)).expect("empty put");
    assert_eq!(w.live(), BTreeMap::from([(7, 1)]));
    assert_eq!(
        w.rec(put("big", 10, MAX_PUT + 1, 11)),
        Err(ErrorKind::TooLarge)
    );
}

/// A layer's binding: its content type (any case) and its encoding,
/// which a put without one inherits; with no binding a put without a
/// type is `application/octet-stream`.
#[test]
fn layer_binding() {
    let mut w = World::default();
    w.rec(layer("a", Some("text/plain"), Some("gzip")))
        .expect("bound");
    w.rec(layer("free", None, None)).expect("free");
    let ct = why(ErrorKind::BadRequest, Reason::ContentTypeMismatch);
    let ce = why(ErrorKind::BadRequest, Reason::ContentEncodingMismatch);
    assert_eq!(
        w.plan_put("a", "k", 1, None, None),
        Ok(("text/plain".into(), Some("gzip".into())))
    );
    assert_eq!(
        w.plan_put("a", "k", 1, Some("TEXT/Plain"), Some("GZIP")),
        Ok(("TEXT/Plain".into(), Some("GZIP".into())))
    );
    assert_eq!(w.plan_put("a", "k", 1, Some("image/png"), None), Err(ct));
    assert_eq!(w.plan_put("a", "k", 1, None, Some("br")), Err(ce));
    assert_eq!(
        w.plan_put("free", "k", 1, None, None),
        Ok(("application/octet-stream".into(), None))
    );
    assert_eq!(
        w.plan_put("free", "k", 1, Some("image/png"), Some("br")),
        Ok(("image/png".into(), Some("br".into())))
    );
    // Records: a start must carry the layer's encoding itself.
    let bad = Err(ErrorKind::BadRequest);
    assert_eq!(w.rec(start(UP, "k", "image/png", Some("gzip"))), bad);
    assert_eq!(w.rec(start(UP, "k", "text/plain", None)), bad);
    assert_eq!(w.rec(start(UP, "k", "Text/Plain", Some("Gzip"))), Ok(()));
}

/// `put_object`'s plan checks in order: layer, key, declared length,
/// binding.
#[test]
fn put_plan_order() {
    let mut w = World::default();
    w.rec(layer("a", Some("text/plain"), None)).expect("layer");
    let big = MAX_PUT + 1;
    let png = Some("image/png");
    assert_eq!(
        w.plan_put("x/y", "a//b", big, png, None),
        Err(why(ErrorKind::BadRequest, Reason::InvalidLayerId))
    );
    assert_eq!(
        w.plan_put("b", "a//b", big, png, None),
        Err(why(ErrorKind::NotFound, Reason::UnknownLayer))
    );
    assert_eq!(
        w.plan_put("a", "a//b", big, png, None),
        Err(why(ErrorKind::BadRequest, Reason::InvalidKey))
    );
    assert_eq!(
        w.plan_put("a", "k", big, png, None),
        Err(why(ErrorKind::TooLarge, Reason::ObjectTooLarge))
    );
    assert!(w.plan_put("a", "k", MAX_PUT, None, None).is_ok());
}

#[test]
fn part_plan_rules() {
    let w = with_upload();
    let bad_n = why(ErrorKind::BadRequest, Reason::InvalidPartNumber);
    assert_eq!(
        w.plan_part(&UP2, 0, 1, None),
        Err(why(ErrorKind::NotFound, Reason::UnknownUpload))
    );
    assert_eq!(w.plan_part(&UP, 0, 1, None), Err(bad_n));
    assert_eq!(w.plan_part(&UP, 10_001, 1, None), Err(bad_n));
    assert_eq!(w.plan_part(&UP, 10_000, 0, None), Ok(()));
    assert_eq!(w.plan_part(&UP, 1, MAX_PART, None), Ok(()));
    assert_eq!(
        w.plan_part(&UP, 1, MAX_PART + 1, None),
        Err(why(ErrorKind::TooLarge, Reason::PartTooLarge))
    );
    assert_eq!(w.plan_part(&UP, 1, 1, Some("TEXT/plain")), Ok(()));
    assert_eq!(
        w.plan_part(&UP, 1, 1, Some("image/png")),
        Err(why(ErrorKind::BadRequest, Reason::ContentTypeMismatch))
    );
}

/// Copy ranges: both bounds (before anything else), an open upload, a
/// part number, the source, then first <= last, first on a MiB
/// boundary, last inside the source, at most 96 MiB.
#[test]
fn copy_ranges() {
    let mut w = with_upload();
    w.rec(put("big", 1, MAX_PUT, 2)).expect("192 MiB");
    // "src": 10 MiB in two extents, via a completed upload.
    w.rec(start(UP2, "src", "a/b", None)).expect("start");
    w.rec(part(UP2, 1, 4, 3, 5 * MIB)).expect("1");
    w.rec(part(UP2, 2, 6, 5, 5 * MIB)).expect("2");
    w.rec(complete(UP2, &[(1, 4), (2, 6)], 7))
        .expect("complete");
    let b = |first, last| ByteRange::Bounded { first, last };
    let rns = |r| why(ErrorKind::RangeNotSatisfiable, r);
    assert_eq!(
        w.plan_copy(&[9; 16], 0, "nope", ByteRange::From { first: 0 }),
        Err(rns(Reason::CopyRangeOpen))
    );
    assert_eq!(
        w.plan_copy(&UP, 1, "src", ByteRange::Suffix { len: 1 }),
        Err(rns(Reason::CopyRangeOpen))
    );
    assert_eq!(
        w.plan_copy(&[9; 16], 0, "nope", b(1, 0)),
        Err(why(ErrorKind::NotFound, Reason::UnknownUpload))
    );
    assert_eq!(
        w.plan_copy(&UP, 0, "nope", b(1, 0)),
        Err(why(ErrorKind::BadRequest, Reason::InvalidPartNumber))
    );
    assert_eq!(
        w.plan_copy(&UP, 1, "nope", b(1, 0)),
        Err(why(ErrorKind::NotFound, Reason::UnknownKey))
    );
    assert_eq!(
        w.plan_copy(&UP, 1, "src", b(1, 0)),
        Err(rns(Reason::InvalidRange))
    );
    assert_eq!(
        w.plan_copy(&UP, 1, "src", b(1, 2)),
        Err(rns(Reason::CopyRangeUnaligned))
    );
    assert_eq!(
        w.plan_copy(&UP, 1, "src", b(0, 10 * MIB)),
        Err(rns(Reason::InvalidRange))
    );
    assert_eq!(
        w.plan_copy(&UP, 1, "big", b(0, MAX_PART)),
        Err(why(ErrorKind::TooLarge, Reason::PartTooLarge))
    );
    assert_eq!(
        w.plan_copy(&UP, 1, "big", b(MIB, MIB + MAX_PART - 1)),
        Ok(MAX_PART)
    );
    assert_eq!(w.plan_copy(&UP, 1, "src", b(0, 10 * MIB - 1)), Ok(10 * MIB));
    // Across the two extents, and a single byte.
    assert_eq!(
        w.plan_copy(&UP, 1, "src", b(4 * MIB, 6 * MIB)),
        Ok(2 * MIB + 1)
    );
    assert_eq!(w.plan_copy(&UP, 1, "src", b(9 * MIB, 9 * MIB)), Ok(1));
}

/// The copy oracle accepts exactly the pieces that are the source's
/// bytes of the range, however they are cut.
#[test]
fn covers_checks_pieces_byte_for_byte() {
    let p = |extent, offset, len| Piece {
        extent,
        offset,
        len,
    };
    let src = [p(1, 0, 5 * MIB), p(2, 100, 5 * MIB)];
    let first = 4 * MIB;
    let size = 2 * MIB;
    let right = [p(1, 4 * MIB, MIB), p(2, 100, MIB)];
    assert_eq!(covers(&src, first, size, &right), Ok(()));
    // Cut finer than the source: still the same bytes.
    let finer = [
        p(1, 4 * MIB, 10),
        p(1, 4 * MIB + 10, MIB - 10),
        p(2, 100, MIB),
    ];
    assert_eq!(covers(&src, first, size, &finer), Ok(()));
    for wrong in [
        vec![p(1, 4 * MIB, 2 * MIB)],             // runs past extent 1's piece
        vec![p(1, 4 * MIB, MIB), p(2, 0, MIB)],   // wrong offset in extent 2
        vec![p(1, 4 * MIB, MIB), p(3, 100, MIB)], // wrong extent
        vec![p(1, 4 * MIB, MIB)],                 // short
        vec![p(1, 4 * MIB, MIB), p(2, 100, MIB + 1)], // long
        vec![p(1, 4 * MIB, 0), p(1, 4 * MIB, MIB), p(2, 100, MIB)], // empty
        vec![p(2, 100, MIB), p(1, 4 * MIB, MIB)], // out of order
    ] {
        assert!(covers(&src, first, size, &wrong).is_err(), "{wrong:?}");
    }
    // Past the source's end.
    assert!(covers(&src, 9 * MIB, 2 * MIB, &[p(2, 100 + 4 * MIB, 2 * MIB)]).is_err());
}

/// A copied part references the source's extents; it holds them after
/// the source is deleted, and a complete joins contiguous pieces.
#[test]
fn copied_parts_hold_their_extents() {
    let mut w = with_upload();
    w.rec(put("src", 1, 12 * MIB, 2)).expect("put");
    let r = |offset, len| Piece {
        extent: 1,
        offset,
        len,
    };
    w.rec(part_of(UP, 1, 3, vec![r(0, 5 * MIB)])).expect("1");
    w.rec(part_of(UP, 2, 4, vec![r(5 * MIB, 3)])).expect("2");
    assert_eq!(w.live(), BTreeMap::from([(1, 3)]));
    w.rec(delete("a", "src")).expect("delete");
    assert_eq!(w.live(), BTreeMap::from([(1, 2)]));
    w.rec(complete(UP, &[(1, 3), (2, 4)], 5)).expect("complete");
    let o = &w.m.layers["a"].objects["k"];
    assert_eq!(o.pieces, vec![r(0, 5 * MIB + 3)]);
    assert_eq!(w.live(), BTreeMap::from([(1, 1)]));
}

/// Records that do not fit the extent table are Corrupt: pieces of
/// unknown extents or outside theirs, sizes that are not the pieces'
/// total, a new extent reusing a live id or with the wrong CRC count,
/// a move of a dead extent.
#[test]
fn records_that_break_the_extent_table_are_corrupt() {
    let mut w = with_upload();
    w.rec(part(UP, 1, 11, 10, 2 * MIB)).expect("1");
    let corrupt = Err(ErrorKind::Corrupt);
    let r = |extent, offset, len| Piece {
        extent,
        offset,
        len,
    };
    assert_eq!(w.rec(part_of(UP, 2, 12, vec![r(99, 0, 1)])), corrupt);
    assert_eq!(w.rec(part_of(UP, 2, 12, vec![r(10, 2 * MIB, 1)])), corrupt);
    assert_eq!(w.rec(part_of(UP, 2, 12, vec![r(10, 0, 0)])), corrupt);
    let mut short = part_of(UP, 2, 12, vec![r(10, 0, 5)]);
    if let Meta::PartSet {
        digest: None, size, ..
    } = &mut short
    {
        *size = 4;
    }
    assert_eq!(w.rec(short), corrupt);
    assert_eq!(w.rec(part(UP, 2, 12, 10, 1)), corrupt, "extent 10 is live");
    let mut crcs = part(UP, 2, 12, 13, MIB + 1);
    if let Meta::PartSet {
        digest: None,
        new_extent: Some(e),
        ..
    } = &mut crcs
    {
        e.block_crcs.pop();
    }
    assert_eq!(w.rec(crcs), corrupt);
    let mv = |extent| Meta::ExtentsMoved {
        moves: vec![partstore::internals::ExtentMove {
            extent,
            segment: 9,
            offset: 64,
        }],
    };
    assert_eq!(w.rec(mv(13)), corrupt);
    assert_eq!(w.rec(mv(10)), Ok(()));
    assert_eq!((w.m.defs[&10].segment, w.m.defs[&10].offset), (9, 64));
    // An extent once freed may not be moved either.
    w.rec(part(UP, 1, 15, 14, 1)).expect("1 again");
    assert_eq!(w.rec(mv(10)), corrupt);
}

/// A snapshot record and a clean-close mark change nothing.
#[test]
fn snapshot_and_mark_change_nothing() {
    let mut w = with_upload();
    w.rec(part(UP, 1, 11, 10, 1)).expect("1");
    let before = (w.m.layers.clone(), w.m.uploads.clone(), w.m.max_id);
    assert_eq!(w.rec(Meta::Mark), Ok(()));
    let snap = Meta::Snapshot(Box::new(w.ix.snapshot(Retention::forever())));
    assert_eq!(w.rec(snap), Ok(()));
    assert_eq!(
        (w.m.layers.clone(), w.m.uploads.clone(), w.m.max_id),
        before
    );
}
