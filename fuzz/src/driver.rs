//! The driver: runs operations on the real `Index` (its planner, then
//! `validate` and `apply_validated`, as `Store` does) and on the model side
//! by side, and checks after every step that they agree and that the index
//! is self-consistent.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::time::Duration;

use partstore::internals::{
    CopyPlan, Cursor, Entry, ExtentDef, ExtentMove, Index, Meta, Outcome, Piece, Retention,
    UploadState,
};
use partstore::{ByteRange, ErrorKind, KeyRules, Reason};

use crate::model::{covers, MLayer, Model, Why};
use crate::op::Op;
use crate::tables::*;

/// What the index holds must be self-consistent, whatever records built it:
/// each extent's reference count is the number of pieces naming it, none is
/// unreferenced, every piece lies inside its extent, and the live bytes per
/// segment add up.
pub fn check_invariants(index: &Index) {
    let mut refs: BTreeMap<u64, u64> = BTreeMap::new();
    let mut count = |pieces: &[Piece]| {
        for p in pieces {
            let e = index
                .extent(p.extent)
                .unwrap_or_else(|| panic!("piece {p:?}: no such extent"));
            assert!(
                p.len > 0 && p.offset.checked_add(p.len).is_some_and(|end| end <= e.len),
                "{p:?} outside {e:?}"
            );
            *refs.entry(p.extent).or_insert(0) += 1;
        }
    };
    for (_, l) in index.layers() {
        for r in l.objects.iter() {
            let o = index.materialize(r);
            assert_eq!(o.key, r.key);
            count(&o.pieces);
            assert_eq!(
                o.pieces.iter().map(|p| u128::from(p.len)).sum::<u128>(),
                u128::from(o.size),
                "{o:?}"
            );
        }
    }
    let mut uploads = 0usize;
    for (id, _) in index.layers() {
        for (_, u) in index.open_uploads(id).expect("layer exists") {
            uploads += 1;
            for (n, p) in &u.parts {
                assert_eq!(*n, p.number);
                count(&p.pieces);
            }
        }
    }
    let mut by_segment: BTreeMap<u64, u64> = BTreeMap::new();
    let mut live = 0u64;
    for (id, e) in index.extents() {
        assert_eq!(Some(&e.refs), refs.get(&id), "extent {id}: refs");
        assert!(e.refs > 0);
        *by_segment.entry(e.segment).or_insert(0) += e.len;
        live += e.len;
    }
    assert_eq!(
        refs.len(),
        index.extents().count(),
        "referenced extents missing from the table"
    );
    let got: BTreeMap<u64, u64> = index
        .live_by_segment()
        .iter()
        .map(|(k, v)| (*k, *v))
        .collect();
    assert_eq!(got, by_segment, "live bytes per segment");
    let (_, open, bytes) = index.counts();
    assert_eq!(open, uploads);
    assert_eq!(bytes, live);
}

/// Applies operations to the index and the model side by side.
pub struct Driver {
    pub index: Index,
    pub model: Model,
    /// Every record the index accepted, in order (what the log would hold).
    pub applied: Vec<Meta>,
    clock: u64,
    next_id: u64,
    /// Every upload id a start used, successful or not.
    uploads: Vec<[u8; 16]>,
    steps: usize,
    /// Planner calls made (each checked against the model).
    pub plans: usize,
    /// The reasons the planner refused requests with.
    pub refusals: HashSet<Reason>,
}

impl Default for Driver {
    fn default() -> Self {
        Driver::new()
    }
}

impl Driver {
    pub fn new() -> Driver {
        Driver {
            index: Index::new(),
            model: Model::default(),
            applied: Vec::new(),
            clock: 1_000_000,
            next_id: 1,
            uploads: Vec::new(),
            steps: 0,
            plans: 0,
            refusals: HashSet::new(),
        }
    }

    fn fresh(&mut self) -> u64 {
        self.next_id += 1;
        self.next_id - 1
    }

    fn upload(&self, sel: u8) -> [u8; 16] {
        if sel == 255 || self.uploads.is_empty() {
            return UNKNOWN_UPLOAD;
        }
        self.uploads[sel as usize % self.uploads.len()]
    }

    /// The layer an upload operation names: mostly the upload's own.
    fn upload_layer(&self, sel: u8, upload: &[u8; 16]) -> String {
        match self.model.uploads.get(upload) {
            Some(u) if sel < 224 => u.layer.clone(),
            _ => layer_name(sel.wrapping_mul(7)),
        }
    }

    fn live_ids(&self) -> Vec<u64> {
        self.model.live().into_keys().collect()
    }

    /// An extent id no live extent has: a dead one when there is one.
    fn dead_id(&self) -> u64 {
        let live = self.model.live();
        self.model
            .defs
            .keys()
            .find(|id| !live.contains_key(id))
            .copied()
            .unwrap_or(u64::MAX - 1)
    }

    fn new_extent(&mut self, len: u64) -> ExtentDef {
        let id = self.fresh();
        ExtentDef {
            id,
            segment: 1 + id % 3,
            offset: 32 + id * 64,
            len,
            block_crcs: block_crcs(id, len),
        }
    }

    /// Runs one operation: builds its record(s) and steps both sides. A put
    /// or part goes through the index's planner first (checked against the
    /// model); its record is offered to `validate` even when the plan
    /// refused it (the store would stop there), since replay must judge such
    /// a record the way the model does. A copy's record is made of its plan,
    /// so a refused copy ends at the plan.
    pub fn run(&mut self, op: &Op) {
        let now = self.clock;
        match *op {
            Op::CreateLayer { layer, ct, ce } => self.step(Meta::LayerCreated {
                key_rules: KeyRules::Here,
                time_ms: 0,
                layer: layer_name(layer),
                content_type: layer_type(ct),
                content_encoding: layer_encoding(ce),
            }),
            Op::Start {
                layer,
                key,
                ct,
                ce,
                reuse,
            } => {
                let upload = if reuse >= 240 && !self.uploads.is_empty() {
                    self.upload(reuse)
                } else {
                    let id = upload_id(self.fresh());
                    self.uploads.push(id);
                    id
                };
                self.step(Meta::UploadStarted {
                    metadata: Vec::new(),
                    layer: layer_name(layer),
                    upload,
                    key: key_name(key),
                    content_type: upload_type(ct),
                    content_encoding: upload_encoding(ce),
                    time_ms: now,
                })
            }
            Op::SetPart {
                layer,
                upload,
                number,
                size,
                crc,
                bad,
            } => {
                let upload = self.upload(upload);
                let layer = self.upload_layer(layer, &upload);
                let number = part_number(number);
                let len = body_size(size);
                self.plan_part(&layer, &upload, number, len, part_type(bad >> 4).as_deref());
                let mut e = self.new_extent(len);
                let mut pieces = vec![Piece {
                    extent: e.id,
                    offset: 0,
                    len,
                }];
                let mut size = len;
                match bad % 16 {
                    11 => e.block_crcs.push(0),
                    12 => {
                        if let Some(id) = self.live_ids().first() {
                            e.id = *id;
                            pieces[0].extent = *id;
                        }
                    }
                    13 => {
                        pieces[0].len += 1;
                        size += 1;
                    }
                    14 => size -= 1,
                    15 => {
                        // An extent written but not referenced: swept at once.
                        pieces.clear();
                        size = 0;
                    }
                    _ => {}
                }
                let part_id = self.fresh();
                self.step(Meta::PartSet {
                    digest: None,
                    layer,
                    upload,
                    number,
                    part_id,
                    new_extent: Some(e),
                    pieces,
                    size,
                    // The CRC of no bytes is 0 (the combine relies on it).
                    crc32c: if size == 0 {
                        0
                    } else {
                        u32::from(crc).wrapping_mul(0x9e37_79b9)
                    },
                    time_ms: now,
                })
            }
            Op::EmptyPart {
                layer,
                upload,
                number,
            } => {
                let upload = self.upload(upload);
                let layer = self.upload_layer(layer, &upload);
                let number = part_number(number);
                self.plan_part(&layer, &upload, number, 0, None);
                let part_id = self.fresh();
                self.step(Meta::PartSet {
                    digest: None,
                    layer,
                    upload,
                    number,
                    part_id,
                    new_extent: None,
                    pieces: Vec::new(),
                    size: 0,
                    crc32c: 0,
                    time_ms: now,
                })
            }
            Op::CopyPart {
                layer,
                upload,
                number,
                src,
                first,
                len,
                bad,
            } => {
                let upload = self.upload(upload);
                let layer = self.upload_layer(layer, &upload);
                let number = part_number(number);
                // The source: mostly an object of that layer, else a key
                // from the table (there or not, valid or not).
                let objects = self.model.layers.get(&layer).map(|l| &l.objects);
                let source = objects
                    .filter(|o| src < 240 && !o.is_empty())
                    .and_then(|o| o.iter().nth(src as usize % o.len()));
                let (key, size) = match source {
                    Some((k, o)) => (k.clone(), o.size),
                    None => (key_name(src.wrapping_sub(240).wrapping_mul(17)), 0),
                };
                let range = copy_range(size, first, len, bad);
                let Some(plan) = self.plan_copy(&layer, &upload, number, &key, &range) else {
                    return;
                };
                let mut pieces = plan.pieces;
                let mut size = plan.size;
                match bad % 16 {
                    13 => {
                        // A source freed meanwhile (the race `copy_part` guards).
                        let dead = self.dead_id();
                        pieces[0].extent = dead;
                    }
                    14 => size += 1,
                    15 => pieces.push(Piece {
                        extent: pieces[0].extent,
                        offset: 0,
                        len: 0,
                    }),
                    _ => {}
                }
                let part_id = self.fresh();
                self.step(Meta::PartSet {
                    digest: None,
                    layer,
                    upload,
                    number,
                    part_id,
                    new_extent: None,
                    pieces,
                    size,
                    crc32c: len.rotate_left(13),
                    time_ms: now,
                })
            }
            Op::Complete { layer, upload } => {
                let upload = self.upload(upload);
                let layer = self.upload_layer(layer, &upload);
                let parts = self.current_parts(&upload);
                let etag_seq = self.fresh();
                self.step(Meta::UploadCompleted {
                    layer,
                    upload,
                    parts,
                    etag_seq,
                    time_ms: now,
                })
            }
            Op::CompleteWith {
                layer,
                upload,
                mask,
                rotate,
                tweak,
            } => {
                let upload = self.upload(upload);
                let layer = self.upload_layer(layer, &upload);
                let mut parts: Vec<(u32, u64)> = self
                    .current_parts(&upload)
                    .into_iter()
                    .enumerate()
                    .filter(|(i, _)| *i >= 16 || mask & (1 << i) != 0)
                    .map(|(_, p)| p)
                    .collect();
                if !parts.is_empty() {
                    let r = rotate as usize % parts.len();
                    parts.rotate_left(r);
                    match tweak % 8 {
                        0 => parts.push(parts[0]),
                        1 => parts[0].1 ^= 1,
                        2 => parts.push((10_001, 0)),
                        3 => parts.push((0, 0)),
                        _ => {}
                    }
                }
                let etag_seq = self.fresh();
                self.step(Meta::UploadCompleted {
                    layer,
                    upload,
                    parts,
                    etag_seq,
                    time_ms: now,
                })
            }
            Op::Abort { layer, upload } => {
                let upload = self.upload(upload);
                let layer = self.upload_layer(layer, &upload);
                self.step(Meta::UploadAborted {
                    layer,
                    upload,
                    time_ms: now,
                })
            }
            Op::Expire { idle } => {
                let cutoff = now.saturating_sub(u64::from(idle));
                let mut want: Vec<(String, [u8; 16])> = self
                    .model
                    .uploads
                    .iter()
                    .filter(|(_, u)| u.parts.is_some() && u.last <= cutoff)
                    .map(|(id, u)| (u.layer.clone(), *id))
                    .collect();
                want.sort();
                let idle = self.index.idle_uploads(cutoff);
                assert_eq!(idle, want, "idle uploads at cutoff {cutoff}");
                for (layer, upload) in idle {
                    self.step(Meta::UploadAborted {
                        layer,
                        upload,
                        time_ms: now,
                    });
                }
            }
            Op::Put {
                layer,
                key,
                size,
                ct,
                ce,
                bad,
            } => {
                let (layer, key) = (layer_name(layer), key_name(key));
                let len = if size == 0 { 0 } else { body_size(size) };
                let (body_type, body_encoding) = (body_type(ct), upload_encoding(ce));
                let planned = self.plan_put(
                    &layer,
                    &key,
                    len,
                    body_type.as_deref(),
                    body_encoding.as_deref(),
                );
                // Refused: the record still goes to `validate`, with what
                // the body said.
                let (content_type, content_encoding) = planned.unwrap_or((
                    body_type.unwrap_or_else(|| "application/octet-stream".to_string()),
                    body_encoding,
                ));
                let mut e = (len > 0).then(|| self.new_extent(len));
                let mut size = len;
                match (bad % 16, e.as_mut()) {
                    (13, Some(e)) => {
                        e.block_crcs.pop();
                    }
                    (14, _) => size += 1,
                    (15, Some(e)) => {
                        if let Some(id) = self.live_ids().last() {
                            e.id = *id;
                        }
                    }
                    _ => {}
                }
                let etag_seq = self.fresh();
                self.step(Meta::ObjectPut {
                    digest: None,
                    metadata: Vec::new(),
                    layer,
                    key,
                    new_extent: e,
                    size,
                    crc32c: if size == 0 {
                        0
                    } else {
                        u32::from(ct) << 8 | u32::from(size as u8)
                    },
                    content_type,
                    content_encoding,
                    etag_seq,
                    time_ms: now,
                })
            }
            Op::Delete { layer, key } => self.step(Meta::ObjectDeleted {
                layer: layer_name(layer),
                key: key_name(key),
            }),
            Op::CopyObject { layer, src, dst } => self.step(Meta::ObjectCopied {
                metadata: None,
                layer: layer_name(layer),
                src: key_name(src),
                dst: key_name(dst),
                time_ms: now,
            }),
            Op::Move { extent, segment } => {
                let live = self.live_ids();
                let id = if extent == 255 || live.is_empty() {
                    self.dead_id()
                } else {
                    live[extent as usize % live.len()]
                };
                let segment = 1 + u64::from(segment % 5);
                let offset = 32 + u64::from(extent) * 8;
                self.step(Meta::ExtentsMoved {
                    moves: vec![ExtentMove {
                        extent: id,
                        segment,
                        offset,
                    }],
                })
            }
            // No time passes: the store closes cleanly and writes its mark.
            Op::Tick { delta: 0 } => self.step(Meta::Mark),
            Op::Tick { delta } => {
                // Mostly forward; the wall clock may also step back.
                self.clock = if delta >= 0xf000 {
                    self.clock.saturating_sub(u64::from(delta - 0xf000))
                } else {
                    self.clock + u64::from(delta)
                };
            }
            Op::Snapshot => {
                let before = self.index.clone();
                self.step(Meta::Snapshot(Box::new(
                    self.index.snapshot(Retention::forever()),
                )));
                assert!(self.index == before, "a snapshot record changed the index");
                // A checkpoint of the same state restores to it, pages of
                // any size.
                for page in [1, 300] {
                    match self.index.checkpoint_round_trip(page) {
                        Ok(back) => assert!(back == before, "checkpoint restored another index"),
                        Err(e) => panic!("checkpoint of a valid index fails to restore: {e}"),
                    }
                }
            }
        }
    }

    /// `Index::plan_put` against the model's answer; the planned content
    /// type and encoding.
    fn plan_put(
        &mut self,
        layer: &str,
        key: &str,
        len: u64,
        ct: Option<&str>,
        ce: Option<&str>,
    ) -> Option<(String, Option<String>)> {
        self.plans += 1;
        let got = self.index.plan_put(layer, key, len, ct, ce);
        let want = self.model.plan_put(layer, key, len, ct, ce);
        let what = || format!("plan_put({layer:?}, {key:?}, {len}, {ct:?}, {ce:?})");
        agree(&mut self.refusals, what, got, want)
    }

    /// `Index::plan_part` against the model's answer.
    fn plan_part(&mut self, layer: &str, upload: &[u8; 16], n: u32, len: u64, ct: Option<&str>) {
        self.plans += 1;
        let got = self
            .index
            .plan_part(layer, upload, n, len, ct, Retention::forever());
        let want = self.model.plan_part(layer, upload, n, len, ct);
        let what = || format!("plan_part({layer:?}, {upload:x?}, {n}, {len}, {ct:?})");
        agree(&mut self.refusals, what, got, want);
    }

    /// `Index::plan_copy` against the model's answer: the same refusal, or
    /// the range's size and pieces that are exactly the source's bytes of
    /// the range.
    fn plan_copy(
        &mut self,
        layer: &str,
        upload: &[u8; 16],
        n: u32,
        key: &str,
        range: &ByteRange,
    ) -> Option<CopyPlan> {
        self.plans += 1;
        let got = self
            .index
            .plan_copy(layer, upload, n, key, range, Retention::forever());
        let want = self.model.plan_copy(layer, upload, n, key, range);
        let what = || format!("plan_copy({layer:?}, {upload:x?}, {n}, {key:?}, {range})");
        let (plan, got) = match got {
            Ok(p) => {
                let size = p.size;
                (Some(p), Ok(size))
            }
            Err(e) => (None, Err(e)),
        };
        agree(&mut self.refusals, what, got, want)?;
        let plan = plan.expect("agreed");
        let ByteRange::Bounded { first, .. } = *range else {
            unreachable!("an open range is refused");
        };
        let src = &self.model.layers[layer].objects[key];
        if let Err(e) = covers(&src.pieces, first, plan.size, &plan.pieces) {
            panic!("{}: {e}; plan {:?}", what(), plan.pieces);
        }
        Some(plan)
    }

    /// The current (number, id) pairs of an upload, as the model has them.
    fn current_parts(&self, upload: &[u8; 16]) -> Vec<(u32, u64)> {
        match self
            .model
            .uploads
            .get(upload)
            .and_then(|u| u.parts.as_ref())
        {
            Some(parts) => parts.iter().map(|(n, p)| (*n, p.id)).collect(),
            None => Vec::new(),
        }
    }

    /// Validates a record on both sides; on success applies it to both.
    fn step(&mut self, meta: Meta) {
        self.steps += 1;
        let want = self.model.check(&meta);
        let got = self.index.validate(&meta);
        match (&got, want) {
            (Ok(()), Ok(())) => {
                self.index.apply_validated(meta.clone());
                self.model.apply(&meta);
                self.applied.push(meta);
            }
            (Err(e), Err(kind)) => assert_eq!(e.kind(), kind, "{meta:?}: {e}"),
            _ => panic!("{meta:?}: index says {got:?}, model says {want:?}"),
        }
        self.compare();
    }

    /// The index and the model agree on everything visible.
    pub fn compare(&self) {
        let (index, model) = (&self.index, &self.model);
        check_invariants(index);
        assert_eq!(index.max_id(), model.max_id, "max_id");

        // Layers and their objects.
        let layers: Vec<_> = index
            .layers()
            .map(|(id, l)| {
                (
                    id.clone(),
                    l.content_type.clone(),
                    l.content_encoding.clone(),
                )
            })
            .collect();
        let want: Vec<_> = model
            .layers
            .iter()
            .map(|(id, l)| {
                (
                    id.clone(),
                    l.content_type.clone(),
                    l.content_encoding.clone(),
                )
            })
            .collect();
        assert_eq!(layers, want, "layers");
        for (id, l) in index.layers() {
            let ml = &model.layers[id];
            let keys: Vec<&str> = l.objects.iter().map(|o| o.key).collect();
            assert_eq!(
                keys,
                ml.objects.keys().map(String::as_str).collect::<Vec<_>>(),
                "keys of layer {id}"
            );
            for (key, m) in &ml.objects {
                let o = index.object(id, key).expect("object");
                assert_eq!(
                    (
                        o.size,
                        o.crc32c,
                        &o.content_type,
                        &o.content_encoding,
                        o.last_modified_ms,
                        o.part_count
                    ),
                    (
                        m.size,
                        m.crc,
                        &m.content_type,
                        &m.content_encoding,
                        m.time,
                        m.part_count
                    ),
                    "object {id}/{key}"
                );
                assert_eq!(
                    o.etag,
                    format!("{:08x}{:016x}", m.crc, m.etag_seq),
                    "etag of {id}/{key}"
                );
                assert_eq!(*o.pieces, m.pieces, "pieces of {id}/{key}");
            }
            for k in VALID_KEYS {
                if !ml.objects.contains_key(k) {
                    let e = index.object(id, k).expect_err("missing key");
                    assert_eq!(e.kind(), ErrorKind::NotFound);
                }
            }
            self.compare_listings(id, ml);
        }

        // Uploads: every id ever used, in every layer.
        for upload in self.uploads.iter().chain([&UNKNOWN_UPLOAD]) {
            let m = model.uploads.get(upload);
            for layer in model.layers.keys() {
                let got = index.upload(layer, upload, Retention::forever());
                match m.filter(|u| &u.layer == layer) {
                    None => assert_eq!(
                        got.map(|_| ()).map_err(|e| e.kind()),
                        Err(ErrorKind::NotFound)
                    ),
                    Some(m) => match (got.expect("upload"), &m.parts) {
                        (UploadState::Completed(c), None) => {
                            // The tombstone keeps the published object,
                            // which carries the upload's key and types.
                            let Outcome::Published(o) = &c.outcome else {
                                panic!("upload {upload:x?}: completed without a result");
                            };
                            assert_eq!(
                                (o.key(), o.content_type(), o.content_encoding()),
                                (
                                    m.key.as_str(),
                                    m.content_type.as_str(),
                                    m.content_encoding.as_deref()
                                ),
                                "completed upload {upload:x?}"
                            );
                            assert_eq!(c.completed_ms, o.last_modified_ms);
                            assert_eq!(Some(c.completed_ms), m.completed);
                            self.compare_retention(layer, upload, m.completed);
                            let e = index
                                .open_upload(layer, upload, Retention::forever())
                                .expect_err("completed");
                            assert_eq!(e.kind(), ErrorKind::BadRequest);
                        }
                        (UploadState::Open(u), Some(mp)) => {
                            assert_eq!(
                                (
                                    &u.key,
                                    &u.content_type,
                                    &u.content_encoding,
                                    u.started_ms,
                                    u.last_activity_ms
                                ),
                                (
                                    &m.key,
                                    &m.content_type,
                                    &m.content_encoding,
                                    m.started,
                                    m.last
                                ),
                                "upload {upload:x?}"
                            );
                            let got: Vec<_> = u
                                .parts
                                .iter()
                                .map(|(n, p)| {
                                    (*n, p.id, p.size, p.crc32c, p.time_ms, p.pieces.clone())
                                })
                                .collect();
                            let want: Vec<_> = mp
                                .iter()
                                .map(|(n, p)| (*n, p.id, p.size, p.crc, p.time, p.pieces.clone()))
                                .collect();
                            assert_eq!(got, want, "parts of {upload:x?}");
                        }
                        (s, p) => panic!("upload {upload:x?}: index {s:?}, model {p:?}"),
                    },
                }
            }
        }
        for layer in model.layers.keys() {
            let got: BTreeSet<[u8; 16]> = index
                .open_uploads(layer)
                .expect("layer")
                .into_iter()
                .map(|(id, _)| *id)
                .collect();
            let want: BTreeSet<[u8; 16]> = model
                .uploads
                .iter()
                .filter(|(_, u)| &u.layer == layer && u.parts.is_some())
                .map(|(id, _)| *id)
                .collect();
            assert_eq!(got, want, "open uploads of {layer}");
        }

        // Extents: exactly the referenced ones, where the records put them.
        let live = model.live();
        let got: BTreeMap<u64, u64> = index.extents().map(|(id, e)| (id, e.refs)).collect();
        assert_eq!(got, live, "extent table (id -> refs)");
        for id in live.keys() {
            let e = index.extent(*id).expect("live extent");
            let d = &model.defs[id];
            assert_eq!(
                (e.segment, e.offset, e.len, &e.block_crcs[..]),
                (d.segment, d.offset, d.len, &d.block_crcs[..]),
                "where extent {id} is"
            );
        }
        let (objects, open, bytes) = index.counts();
        assert_eq!(
            objects,
            model
                .layers
                .values()
                .map(|l| l.objects.len())
                .sum::<usize>()
        );
        assert_eq!(
            open,
            model.uploads.values().filter(|u| u.parts.is_some()).count()
        );
        assert_eq!(bytes, live.keys().map(|id| model.defs[id].len).sum::<u64>());
    }

    /// A completed upload at the driver's clock, for a few retention
    /// windows: remembered (Completed, and BadRequest for an open-upload
    /// query) while the clock is at most the window past its completion
    /// (or behind it), unknown (NotFound) after; a zero window never
    /// remembers it, and a snapshot taken then leaves it out exactly when
    /// it is unknown.
    fn compare_retention(&self, layer: &str, upload: &[u8; 16], completed: Option<u64>) {
        let done = completed.expect("a completed upload has a completion time");
        for window_ms in [0, 1, 5_000, 30_000, u64::MAX] {
            let r = Retention::at(Duration::from_millis(window_ms), self.clock);
            let want = window_ms > 0 && self.clock.saturating_sub(done) <= window_ms;
            let got = self.index.upload(layer, upload, r);
            let open = self.index.open_upload(layer, upload, r).map(|_| ());
            let kinds = (
                got.as_ref().map(|_| ()).map_err(|e| e.kind()),
                open.map_err(|e| e.kind()),
            );
            if want {
                assert!(
                    matches!(got, Ok(UploadState::Completed(_))),
                    "upload {upload:x?} completed at {done}, clock {}, window {window_ms}: {kinds:?}",
                    self.clock
                );
                assert_eq!(kinds.1, Err(ErrorKind::BadRequest));
            } else {
                assert_eq!(
                    kinds,
                    (Err(ErrorKind::NotFound), Err(ErrorKind::NotFound)),
                    "upload {upload:x?} completed at {done}, clock {}, window {window_ms}",
                    self.clock
                );
            }
            if window_ms == 1 || window_ms == 30_000 {
                let in_snapshot = self
                    .index
                    .snapshot(r)
                    .uploads
                    .iter()
                    .any(|u| u.id == *upload);
                assert_eq!(in_snapshot, want, "snapshot of {upload:x?}");
            }
        }
    }

    /// Deep and hierarchical listings, paged, against the model's keys.
    fn compare_listings(&self, layer: &str, ml: &MLayer) {
        let limit = 1 + self.steps % 3;
        for (parent, deep) in [("", true), ("", false), ("a", false), ("a", true)] {
            let mut got = Vec::new();
            let mut after: Option<Cursor> = None;
            for _ in 0..=ml.objects.len() + 1 {
                let (items, next) = self
                    .index
                    .list(layer, parent, deep, after.as_ref(), limit)
                    .expect("list");
                assert!(items.len() <= limit);
                got.extend(items.into_iter().map(|e| match e {
                    Entry::Object(o) => (false, o.key.clone()),
                    Entry::Prefix(p) => (true, p),
                }));
                after = next;
                if after.is_none() {
                    break;
                }
            }
            assert!(after.is_none(), "listing of {layer}/{parent} does not end");
            let prefix = if parent.is_empty() {
                String::new()
            } else {
                format!("{parent}/")
            };
            let mut want: Vec<(bool, String)> = Vec::new();
            for key in ml.objects.keys().filter(|k| k.starts_with(&prefix)) {
                let rest = &key[prefix.len()..];
                let item = match rest.find('/') {
                    Some(i) if !deep => (true, format!("{prefix}{}", &rest[..i])),
                    _ => (false, key.clone()),
                };
                if want.last() != Some(&item) {
                    want.push(item);
                }
            }
            assert_eq!(
                got, want,
                "listing of {layer:?} parent {parent:?} deep {deep} limit {limit}"
            );
        }
    }
}

/// Runs every operation of an input through a fresh driver.
pub fn run_ops(ops: &[Op]) -> Driver {
    let mut d = Driver::new();
    d.compare();
    for op in ops {
        d.run(op);
    }
    d
}

/// The engine's answer to a request equals the model's: the same value,
/// or the same kind and reason. The value if both accepted.
fn agree<T: PartialEq + std::fmt::Debug>(
    refusals: &mut HashSet<Reason>,
    what: impl Fn() -> String,
    got: partstore::Result<T>,
    want: Result<T, Why>,
) -> Option<T> {
    match (got, want) {
        (Ok(g), Ok(w)) => {
            assert_eq!(g, w, "{}", what());
            Some(g)
        }
        (Err(e), Err(w)) => {
            assert_eq!(Why::of(&e), w, "{}: {e}", what());
            refusals.insert(w.reason);
            None
        }
        (got, want) => panic!("{}: index says {got:?}, model says {want:?}", what()),
    }
}

#[cfg(test)]
mod tests;
