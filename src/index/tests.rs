//! Completed uploads' tombstones and their retention, on the pure index.

use std::time::Duration;

use super::*;
use crate::error::ErrorKind;
use crate::index::objects::Extra;
use crate::index::packed::{decode_objects, encode_object, PackedObjects};
use crate::log::format::{ExtentDef, Meta, Piece};
use crate::spec::ByteRange;

const UP: [u8; 16] = [1; 16];
/// When the test upload completes (ms since the epoch).
const DONE: u64 = 1_000_000;

fn rec(ix: &mut Index, meta: Meta) {
    ix.apply(meta).expect("record applies");
}

fn create_layer(ix: &mut Index, layer: &str, key_rules: KeyRules) {
    rec(
        ix,
        Meta::LayerCreated {
            layer: layer.into(),
            content_type: None,
            content_encoding: None,
            key_rules,
            time_ms: 1,
        },
    );
}

/// Layer "a", an object "src", and upload `UP` of "k" completed at `DONE`
/// with one 10-byte part.
fn completed() -> Index {
    let mut ix = Index::new();
    create_layer(&mut ix, "a", KeyRules::Here);
    let extent = |id| ExtentDef {
        id,
        segment: 1,
        offset: 64 * id,
        len: 10,
        block_crcs: vec![0],
    };
    rec(
        &mut ix,
        Meta::ObjectPut {
            layer: "a".into(),
            key: "src".into(),
            new_extent: Some(extent(1)),
            size: 10,
            crc32c: 0,
            content_type: "x/y".into(),
            content_encoding: None,
            etag_seq: 2,
            time_ms: 2,
            metadata: Vec::new(),
            digest: None,
        },
    );
    rec(
        &mut ix,
        Meta::UploadStarted {
            layer: "a".into(),
            upload: UP,
            key: "k".into(),
            content_type: "text/plain".into(),
            content_encoding: Some("gzip".into()),
            time_ms: 3,
            metadata: vec![("m".into(), "v".into())],
        },
    );
    rec(
        &mut ix,
        Meta::PartSet {
            layer: "a".into(),
            upload: UP,
            number: 1,
            part_id: 4,
            new_extent: Some(extent(3)),
            pieces: vec![Piece {
                extent: 3,
                offset: 0,
                len: 10,
            }],
            size: 10,
            crc32c: 0,
            time_ms: 4,
            digest: None,
        },
    );
    rec(
        &mut ix,
        Meta::UploadCompleted {
            layer: "a".into(),
            upload: UP,
            parts: vec![(1, 4)],
            etag_seq: 5,
            time_ms: DONE,
        },
    );
    ix
}

fn at(window_ms: u64, now_ms: u64) -> Retention {
    Retention::at(Duration::from_millis(window_ms), now_ms)
}

/// Every upload query of the index, as (kind, reason) or Ok.
fn answers(ix: &Index, r: Retention) -> Vec<std::result::Result<(), (ErrorKind, Reason)>> {
    let why = |e: crate::Error| (e.kind(), e.reason().expect("a reason"));
    let range: ByteRange = "bytes=0-9".parse().expect("range");
    vec![
        ix.open_upload("a", &UP, r).map(|_| ()).map_err(why),
        ix.plan_part("a", &UP, 2, 10, None, r).map_err(why),
        ix.plan_copy("a", &UP, 2, "src", &range, r)
            .map(|_| ())
            .map_err(why),
    ]
}

#[test]
fn retention_rounds_up_and_saturates() {
    // 200 ms: remembered through completion + 200 ms, forgotten after.
    assert!(at(200, DONE + 200).remembers(DONE));
    assert!(!at(200, DONE + 201).remembers(DONE));
    // Sub-millisecond windows round up to a whole millisecond.
    let r = Retention::at(Duration::from_nanos(1), DONE + 1);
    assert!(r.remembers(DONE));
    assert!(!Retention::at(Duration::from_nanos(1), DONE + 2).remembers(DONE));
    let r = Retention::at(Duration::from_micros(1500), DONE + 2);
    assert!(r.remembers(DONE), "1.5 ms is 2 ms, not 1");
    // Zero remembers nothing, not even at the completion's own millisecond.
    assert!(!Retention::at(Duration::ZERO, DONE).remembers(DONE));
    // Past u64 milliseconds: forever, whatever the clock says.
    for d in [Duration::MAX, Duration::from_millis(u64::MAX)] {
        assert!(Retention::at(d, u64::MAX).remembers(0), "{d:?}");
    }
    assert!(Retention::forever().remembers(0));
    // A clock that stepped back still remembers.
    assert!(at(200, DONE - 5_000).remembers(DONE));
}

#[test]
fn a_completed_upload_is_a_small_tombstone() {
    let ix = completed();
    assert_eq!(ix.counts().1, 0, "no open upload left");
    assert_eq!(ix.completed_uploads(), 1);
    let c = ix.completed_upload(&UP).expect("tombstone");
    assert_eq!((&*c.layer, c.completed_ms), ("a", DONE));
    let Outcome::Published(o) = &c.outcome else {
        panic!("no result kept");
    };
    // What upload_result reports lives in the result; no bytes are held.
    assert_eq!(
        (
            o.key(),
            o.content_type(),
            o.content_encoding(),
            o.size,
            o.last_modified_ms
        ),
        ("k", "text/plain", Some("gzip"), 10, DONE)
    );
    assert_eq!(o.metadata(), [("m".to_string(), "v".to_string())]);
    assert!(o.object().pieces.is_empty());
    assert_eq!(o.etag(), crate::index::etag(o.crc32c, o.etag_seq));
    // The layer's name and the content type are shared, not copies.
    let layer = ix.layers.get("a").expect("layer");
    assert!(Arc::ptr_eq(&c.layer, &layer.name));
    let published = layer.objects.get("k").expect("published object");
    let (ct, _) = ix.media.pair(published.rec.media).expect("media");
    assert!(Arc::ptr_eq(&ct, &o.media.0));
    // The fixed part of a tombstone: a 64-byte map entry (with its id) and
    // a 104-byte result beside its key (573 B of RSS per tombstone before,
    // when it held a whole `Object`).
    assert!(std::mem::size_of::<CompletedUpload>() <= 48);
    assert!(std::mem::size_of::<Published>() <= 104);
}

#[test]
fn completed_within_retention_then_unknown_after() {
    let ix = completed();
    let within = at(200, DONE + 200);
    assert!(matches!(
        ix.upload("a", &UP, within),
        Ok(UploadState::Completed(_))
    ));
    let completed = Err((ErrorKind::BadRequest, Reason::UploadCompleted));
    assert_eq!(answers(&ix, within), vec![completed; 3]);

    let past = at(200, DONE + 201);
    let unknown = |r: Result<UploadState<'_>>| r.map(|_| ()).map_err(|e| (e.kind(), e.reason()));
    assert_eq!(
        unknown(ix.upload("a", &UP, past)),
        Err((ErrorKind::NotFound, Some(Reason::UnknownUpload)))
    );
    let gone = Err((ErrorKind::NotFound, Reason::UnknownUpload));
    assert_eq!(answers(&ix, past), vec![gone; 3]);
    // Zero: unknown at the completion's own millisecond.
    assert_eq!(
        answers(&ix, Retention::at(Duration::ZERO, DONE)),
        vec![gone; 3]
    );
    // The tombstone is still held (no sweep ran), and still unknown.
    assert_eq!(ix.completed_uploads(), 1);
}

#[test]
fn another_layer_never_sees_the_tombstone() {
    let mut ix = completed();
    create_layer(&mut ix, "b", KeyRules::Here);
    let e = ix
        .upload("b", &UP, Retention::forever())
        .map(|_| ())
        .expect_err("other layer");
    assert_eq!(
        (e.kind(), e.reason()),
        (ErrorKind::NotFound, Some(Reason::UnknownUpload))
    );
}

#[test]
fn forget_completed_drops_only_expired_tombstones() {
    let mut ix = completed();
    assert_eq!(ix.forget_completed(at(200, DONE + 200)), 0);
    assert_eq!(ix.completed_uploads(), 1);
    assert_eq!(ix.forget_completed(at(200, DONE + 201)), 1);
    assert_eq!(ix.completed_uploads(), 0);
    assert!(ix.completed_upload(&UP).is_none());
    // The published object is untouched.
    assert_eq!(ix.object("a", "k").expect("object").size, 10);
    // Records keep applying: a repeated complete or part is refused either
    // way (NotFound now), so replay and the live path agree.
    let again = Meta::UploadCompleted {
        layer: "a".into(),
        upload: UP,
        parts: vec![(1, 4)],
        etag_seq: 6,
        time_ms: DONE + 300,
    };
    assert_eq!(
        ix.validate(&again).map_err(|e| e.kind()),
        Err(ErrorKind::NotFound)
    );
}

#[test]
fn snapshot_leaves_expired_tombstones_out() {
    let ix = completed();
    let kept = ix.snapshot(at(200, DONE + 200));
    assert_eq!(kept.uploads.len(), 1);
    let u = &kept.uploads[0];
    assert!(u.completed && u.parts.is_empty());
    assert_eq!((u.key.as_str(), u.last_activity_ms), ("k", DONE));
    // It restores to the same index.
    let back = Index::restore(&kept).expect("restores");
    assert!(back == ix);
    assert_eq!(back.snapshot(at(200, DONE + 200)), kept);

    let dropped = ix.snapshot(at(200, DONE + 201));
    assert!(dropped.uploads.is_empty());
    let back = Index::restore(&dropped).expect("restores");
    assert_eq!(back.completed_uploads(), 0);
    assert_eq!(back.object("a", "k").expect("object").size, 10);
    let mut swept = ix.clone();
    swept.forget_completed(at(200, DONE + 201));
    assert!(back == swept);
}

#[test]
fn a_checkpoint_restores_the_same_index() {
    let ix = completed();
    for page in [1, 64, 4096] {
        let back = ix.checkpoint_round_trip(page).expect("restores");
        assert!(back == ix, "page size {page}");
    }
}

/// `completed()` plus objects "o000".."o009" (each its own 10-byte extent)
/// and one in layer "b".
fn with_objects() -> Index {
    let mut ix = completed();
    create_layer(&mut ix, "b", KeyRules::Utf8);
    for i in 0..11u64 {
        let (layer, key) = match i {
            10 => ("b", "b-key".to_string()),
            _ => ("a", format!("o{i:03}")),
        };
        rec(
            &mut ix,
            Meta::ObjectPut {
                layer: layer.into(),
                key,
                new_extent: Some(ExtentDef {
                    id: 100 + i,
                    segment: 1,
                    offset: 4096 * (i + 1),
                    len: 10,
                    block_crcs: vec![0],
                }),
                size: 10,
                crc32c: 0,
                content_type: ["x/y", "t/u"][i as usize % 2].into(),
                content_encoding: None,
                etag_seq: 200 + i,
                time_ms: 5,
                metadata: Vec::new(),
                digest: None,
            },
        );
    }
    ix
}

/// Restores `pages` after `damage`, all at once and (as open does) in
/// batches of 1, 2 and 5 pages; the error kind, the same every way.
fn restored_after(
    ix: &Index,
    damage: impl Fn(&mut Vec<crate::log::checkpoint::Page>),
) -> std::result::Result<(), ErrorKind> {
    let pages = || {
        let mut pages = ix.checkpoint_pages(128).expect("pages");
        damage(&mut pages);
        pages
    };
    let whole = Index::restore_checkpoint(ix.max_id, pages())
        .map(|_| ())
        .map_err(|e| e.kind());
    for batch in [1, 2, 5] {
        let mut r = super::Restorer::new(ix.max_id);
        let mut pages = pages().into_iter().peekable();
        let mut got = Ok(());
        while pages.peek().is_some() && got.is_ok() {
            got = r.push(pages.by_ref().take(batch).collect());
        }
        let got = got
            .and_then(|()| r.finish())
            .map(|_| ())
            .map_err(|e| e.kind());
        assert_eq!(got, whole, "in batches of {batch}");
    }
    whole
}

#[test]
fn a_checkpoint_restores_the_same_index_in_batches_of_pages() {
    let ix = with_objects();
    let pages = ix.checkpoint_pages(128).expect("pages");
    assert!(pages.len() > 5, "{} pages", pages.len());
    for batch in [1, 2, 3, 5, 1000] {
        let mut r = super::Restorer::new(ix.max_id);
        let mut pages = ix
            .checkpoint_pages(128)
            .expect("pages")
            .into_iter()
            .peekable();
        while pages.peek().is_some() {
            r.push(pages.by_ref().take(batch).collect()).expect("push");
        }
        assert!(r.finish().expect("restores") == ix, "batches of {batch}");
    }
}

fn packed(pages: &mut [crate::log::checkpoint::Page]) -> Vec<&mut PackedObjects> {
    pages
        .iter_mut()
        .filter_map(|p| match p {
            crate::log::checkpoint::Page::Packed(p) => Some(p),
            _ => None,
        })
        .collect()
}

#[test]
fn damaged_packed_pages_are_corrupt() {
    use crate::log::checkpoint::Page;
    let ix = with_objects();
    assert_eq!(restored_after(&ix, |_| ()), Ok(()));
    assert!(ix.checkpoint_round_trip(128).expect("restores") == ix);
    let corrupt = Err(ErrorKind::Corrupt);
    // A media id the checkpoint does not list.
    assert_eq!(
        restored_after(&ix, |p| packed(p)[0].recs[0].media = 7),
        corrupt
    );
    // A reference to an extent that is not there.
    assert_eq!(
        restored_after(&ix, |p| packed(p)[0].recs[0].extent = 999),
        corrupt
    );
    // Two objects on one extent: fine (a copy shares it) -- but then
    // another extent is referenced by nothing.
    assert_eq!(
        restored_after(&ix, |p| {
            let e = packed(p)[0].recs[0].extent;
            packed(p)[0].recs[1].extent = e;
        }),
        corrupt
    );
    // A layer's objects in two runs, or a page repeated.
    assert_eq!(
        restored_after(&ix, |p| {
            let i = p
                .iter()
                .position(|p| matches!(p, Page::Packed(_)))
                .expect("a packed page");
            let first = match &p[i] {
                Page::Packed(q) => PackedObjects {
                    layer: q.layer.clone(),
                    arena: q.arena.clone(),
                    ends: q.ends.clone(),
                    recs: q.recs.clone(),
                },
                _ => unreachable!(),
            };
            p.push(Page::Packed(first));
        }),
        corrupt
    );
    // An object in a layer the checkpoint does not have.
    assert_eq!(
        restored_after(&ix, |p| packed(p)[0].layer = "zz".into()),
        corrupt
    );
    // A key its layer's rules refuse.
    assert_eq!(
        restored_after(&ix, |p| {
            let q = &mut packed(p)[0];
            let n = q.arena.len();
            q.arena.replace_range(n - 1.., "\u{7}");
        }),
        corrupt
    );
    // Pieces that do not add up to the size.
    assert_eq!(
        restored_after(&ix, |p| {
            let q = &mut packed(p)[0];
            let r = &mut q.recs[0];
            r.extra = Some(Arc::new(Extra {
                size: 11,
                pieces: vec![Piece {
                    extent: r.extent,
                    offset: 0,
                    len: 10,
                }],
                ..Extra::default()
            }));
            r.extent = 0;
        }),
        corrupt
    );
    // Sections out of order.
    assert_eq!(restored_after(&ix, |p| p.reverse()), corrupt);
}

#[test]
fn damaged_packed_bytes_are_corrupt() {
    use crate::log::codec::{Dec, Enc};
    let ix = with_objects();
    let l = ix.layers.get("a").expect("layer");
    let objs: Vec<_> = l.objects.iter().take(3).collect();
    let encode = |keys: &[&str], prev_first: &str| {
        let mut e = Enc(Vec::new());
        let mut prev = prev_first.to_string();
        for (k, o) in keys.iter().zip(&objs) {
            encode_object(&mut e, &prev, k, o.rec, 0);
            prev = k.to_string();
        }
        e.0
    };
    let decode = |b: &[u8], n| {
        decode_objects(&mut Dec(b), n, "a".into())
            .map(|p| p.iter().map(|(k, _)| k.to_string()).collect::<Vec<_>>())
            .map_err(|e| e.kind())
    };
    let good = encode(&["ab", "abc", "abd"], "");
    assert_eq!(
        decode(&good, 3),
        Ok(vec!["ab".to_string(), "abc".into(), "abd".into()])
    );
    // Keys out of order, or repeated.
    assert_eq!(decode(&encode(&["b", "a"], ""), 2), Err(ErrorKind::Corrupt));
    assert_eq!(decode(&encode(&["a", "a"], ""), 2), Err(ErrorKind::Corrupt));
    // A first key that claims to share bytes with a key before it.
    assert_eq!(decode(&encode(&["abc"], "abz"), 1), Err(ErrorKind::Corrupt));
    // Cut short anywhere: an error, never a panic.
    for n in 0..good.len() {
        assert_eq!(decode(&good[..n], 3), Err(ErrorKind::Corrupt), "cut at {n}");
    }
}

/// Every single-byte change of every page of a checkpoint (and every cut)
/// decodes and restores to an index or an error: never a panic, never an
/// index that breaks the snapshot rules (restore checks them).
#[test]
fn damaged_page_bytes_never_panic() {
    use crate::log::checkpoint::decode_page;
    let ix = with_objects();
    let (base, stored) = ix.checkpoint_page_bytes(256).expect("pages");
    let restore = |pages: &[Vec<u8>]| {
        let decoded: Result<Vec<_>> = pages
            .iter()
            .enumerate()
            .map(|(i, b)| decode_page(b, base, i as u32))
            .collect();
        decoded.and_then(|d| Index::restore_checkpoint(ix.max_id, d))
    };
    assert!(restore(&stored).expect("intact") == ix);
    let mut outcomes = [0usize; 2];
    for p in 0..stored.len() {
        for i in 0..stored[p].len() {
            for flip in [0x01u8, 0x80, 0xff] {
                let mut pages = stored.clone();
                pages[p][i] ^= flip;
                outcomes[usize::from(restore(&pages).is_ok())] += 1;
            }
        }
        for cut in 0..stored[p].len() {
            let mut pages = stored.clone();
            pages[p].truncate(cut);
            assert!(restore(&pages).is_err(), "page {p} cut at {cut}");
        }
    }
    // Most damage is caught by the decoder or the restore's checks (the
    // rest changes a value no rule constrains: a time, an etag sequence).
    assert!(outcomes[0] > outcomes[1], "{outcomes:?}");
}

#[test]
fn a_version_1_tombstone_keeps_its_key() {
    let mut snap = completed().snapshot(Retention::forever());
    snap.uploads[0].result = None;
    snap.uploads[0].last_activity_ms = DONE + 7;
    snap.uploads[0].started_ms = DONE + 7;
    let ix = Index::restore(&snap).expect("restores");
    let c = ix.completed_upload(&UP).expect("tombstone");
    assert_eq!(c.completed_ms, DONE + 7, "its last activity");
    assert_eq!(c.outcome, Outcome::Unrecorded { key: "k".into() });
    assert_eq!(ix.snapshot(Retention::forever()), snap);
}

#[test]
fn forgetting_gives_the_table_back() {
    let mut ix = completed();
    for i in 0..2000u32 {
        let mut up = [9; 16];
        up[..4].copy_from_slice(&i.to_le_bytes());
        let id = 100 + u64::from(i) * 2;
        rec(
            &mut ix,
            Meta::UploadStarted {
                layer: "a".into(),
                upload: up,
                key: format!("k{i}"),
                content_type: "x/y".into(),
                content_encoding: None,
                time_ms: 10,
                metadata: Vec::new(),
            },
        );
        // An empty part: no extent, no pieces.
        rec(
            &mut ix,
            Meta::PartSet {
                layer: "a".into(),
                upload: up,
                number: 1,
                part_id: id,
                new_extent: None,
                pieces: Vec::new(),
                size: 0,
                crc32c: 0,
                time_ms: 11,
                digest: None,
            },
        );
        rec(
            &mut ix,
            Meta::UploadCompleted {
                layer: "a".into(),
                upload: up,
                parts: vec![(1, id)],
                etag_seq: id + 1,
                time_ms: 12,
            },
        );
    }
    assert_eq!(ix.completed_uploads(), 2001);
    let peak = ix.completed.capacity();
    // Everything but `UP` (completed at DONE) expires.
    assert_eq!(ix.forget_completed(at(200, DONE)), 2000);
    assert_eq!(ix.completed_uploads(), 1);
    assert!(
        ix.completed.capacity() < peak / 4,
        "table kept its peak size"
    );
    assert!(ix.completed_upload(&UP).is_some());
}

#[test]
fn parts_stay_in_number_order_and_replace_by_number() {
    let part = |n: u32, id: u64| Part {
        number: 0,
        id,
        size: u64::from(n),
        crc32c: 0,
        pieces: Vec::new(),
        time_ms: 0,
        digest: None,
    };
    let mut parts = Parts::new();
    let mut want = std::collections::BTreeMap::new();
    let mut x: u64 = 0x2545_f491_4f6c_dd1d;
    for step in 0..2_000u64 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        // In order mostly (as uploads send them), anywhere sometimes.
        let n = if x.is_multiple_of(4) {
            (x >> 8) as u32 % 500 + 1
        } else {
            (step / 3) as u32 + 1
        };
        let old = parts.insert(n, part(n, step)).map(|p| p.id);
        assert_eq!(old, want.insert(n, step), "part {n}");
    }
    assert_eq!(parts.len(), want.len());
    let got: Vec<(u32, u64)> = parts.iter().map(|(n, p)| (*n, p.id)).collect();
    let exp: Vec<(u32, u64)> = want.iter().map(|(n, id)| (*n, *id)).collect();
    assert_eq!(got, exp);
    assert!(parts.values().all(|p| p.size == u64::from(p.number)));
    for from in [0, 1, 2, 250, 499, 500, 666, 667, 668, 10_000] {
        let got: Vec<u32> = parts.range(from..).take(3).map(|(n, _)| *n).collect();
        let exp: Vec<u32> = want.range(from..).take(3).map(|(n, _)| *n).collect();
        assert_eq!(got, exp, "from {from}");
        assert_eq!(parts.get(&from).map(|p| p.id), want.get(&from).copied());
        assert_eq!(parts.contains_key(&from), want.contains_key(&from));
    }
}
