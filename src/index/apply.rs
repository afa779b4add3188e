//! Changes to the index: validating a record against the state, applying
//! it, and the whole-state snapshot (write and restore).

use std::collections::HashMap;
use std::sync::Arc;

use crate::digest::{composite_digest, crc32c_combine};
use crate::error::{bad_request, conflict, corrupt, Reason, Result};
use crate::index::{
    etag, etag_seq, upload_name, CompletedUpload, Extra, Index, Layer, ObjRec, Object, Outcome,
    Part, Parts, Published, Retention, Upload,
};
use crate::log::format::{ExtentDef, Meta, Piece};
use crate::spec::{self, Digest, DigestAlgorithm};

impl Index {
    /// Validates and applies a record (recovery's path).
    pub fn apply(&mut self, meta: Meta) -> Result<()> {
        if let Meta::Snapshot(snap) = &meta {
            *self = Index::restore(snap)?;
            return Ok(());
        }
        self.validate(&meta)?;
        self.apply_validated(meta);
        Ok(())
    }

    /// Checks that `meta` applies to the current state, with the error kinds
    /// of the SPEC. Nothing changes.
    pub fn validate(&self, meta: &Meta) -> Result<()> {
        match meta {
            Meta::LayerCreated { layer, .. } => {
                spec::validate_layer_id(layer)?;
                if self.layers.contains_key(layer) {
                    return Err(conflict!(
                        Reason::LayerExists,
                        "layer \"{layer}\" already exists"
                    ));
                }
            }
            Meta::LayerDeleted { layer } => {
                let l = self.layer(layer)?;
                if let Some(key) = l.objects.first_key() {
                    return Err(conflict!(
                        Reason::LayerNotEmpty,
                        "layer \"{layer}\" still holds objects (\"{key}\" and {} more)",
                        l.objects.len() - 1
                    ));
                }
                let open = self.uploads.values().filter(|u| u.layer == *layer).count();
                if open > 0 {
                    return Err(conflict!(
                        Reason::LayerNotEmpty,
                        "layer \"{layer}\" still has {open} open upload(s)"
                    ));
                }
            }
            Meta::UploadStarted {
                layer,
                upload,
                key,
                content_type,
                content_encoding,
                metadata,
                ..
            } => {
                let l = self.layer(layer)?;
                l.key_rules.validate(key)?;
                spec::validate_metadata(metadata)?;
                check_binding(l, layer, content_type, content_encoding.as_deref())?;
                // Only an open upload blocks its token: a completed one's
                // tombstone does not, so whether a sweep dropped it (which
                // writes no record) never decides whether a record applies.
                // Tokens are random: only a forged log reuses one.
                if self.uploads.contains_key(upload) {
                    return Err(conflict!(
                        Reason::UploadBusy,
                        "upload {} already exists",
                        upload_name(upload)
                    ));
                }
            }
            Meta::PartSet {
                layer,
                upload,
                number,
                new_extent,
                pieces,
                size,
                crc32c,
                digest,
                ..
            } => {
                self.open_upload(layer, upload, Retention::forever())?;
                spec::validate_part_number(*number)?;
                spec::check_part_size(*size)?;
                self.check_pieces(new_extent.as_ref(), pieces, *size)?;
                check_crc_digest(digest.as_ref(), *crc32c)?;
            }
            Meta::UploadCompleted {
                layer,
                upload,
                parts,
                ..
            } => {
                let u = self.open_upload(layer, upload, Retention::forever())?;
                check_completion(&u.parts, parts)?;
            }
            Meta::UploadAborted { layer, upload, .. } => {
                self.open_upload(layer, upload, Retention::forever())?;
            }
            Meta::ObjectPut {
                layer,
                key,
                new_extent,
                size,
                crc32c,
                content_type,
                content_encoding,
                metadata,
                digest,
                ..
            } => {
                let l = self.layer(layer)?;
                l.key_rules.validate(key)?;
                spec::validate_metadata(metadata)?;
                check_crc_digest(digest.as_ref(), *crc32c)?;
                spec::check_put_object_size(*size)?;
                check_binding(l, layer, content_type, content_encoding.as_deref())?;
                let piece = new_extent.as_ref().map(|e| Piece {
                    extent: e.id,
                    offset: 0,
                    len: e.len,
                });
                self.check_pieces(new_extent.as_ref(), piece.as_slice(), *size)?;
            }
            Meta::ObjectDeleted { layer, key } => {
                self.layer(layer)?.key_rules.validate(key)?;
            }
            Meta::ObjectCopied {
                layer,
                src,
                dst,
                metadata,
                ..
            } => {
                self.object_ref(layer, src)?;
                self.layer(layer)?.key_rules.validate(dst)?;
                if let Some(m) = metadata {
                    spec::validate_metadata(m)?;
                }
            }
            Meta::ExtentsMoved { moves } => {
                for m in moves {
                    if !self.extents.contains(m.extent) {
                        return Err(corrupt!("move of unknown extent {}", m.extent));
                    }
                }
            }
            Meta::Snapshot(snap) => {
                Index::restore(snap)?;
            }
            Meta::Mark => {}
        }
        Ok(())
    }

    /// A new extent `id` of `len` bytes with `crcs` block CRCs: not defined
    /// yet, one CRC per block.
    fn check_new_extent(&self, id: u64, len: u64, crcs: usize) -> Result<()> {
        if self.extents.contains(id) {
            return Err(corrupt!("extent {id} is defined twice"));
        }
        if crcs as u64 != len.div_ceil(spec::BLOCK_SIZE) {
            return Err(corrupt!("extent {id} of {len} bytes has {crcs} block CRCs"));
        }
        Ok(())
    }

    /// Defines an extent with no references after the checks of
    /// [`Index::check_new_extent`] (restoring a checkpoint).
    pub(super) fn define_checked(
        &mut self,
        [id, segment, offset, len]: [u64; 4],
        crcs: &[u32],
    ) -> Result<()> {
        self.check_new_extent(id, len, crcs.len())?;
        self.bump(id);
        self.extents.define(id, segment, offset, len, crcs);
        Ok(())
    }

    pub(super) fn check_pieces(
        &self,
        new: Option<&ExtentDef>,
        pieces: &[Piece],
        size: u64,
    ) -> Result<()> {
        if let Some(e) = new {
            self.check_new_extent(e.id, e.len, e.block_crcs.len())?;
        }
        let mut total: u64 = 0;
        for p in pieces {
            let len = match new {
                Some(e) if e.id == p.extent => e.len,
                _ => match self.extents.location(p.extent) {
                    Some(e) => e.len,
                    None => return Err(corrupt!("reference to unknown extent {}", p.extent)),
                },
            };
            if p.len == 0 || p.offset.checked_add(p.len).is_none_or(|end| end > len) {
                return Err(corrupt!(
                    "piece {}+{} outside extent {} of {len} bytes",
                    p.offset,
                    p.len,
                    p.extent
                ));
            }
            total = total.saturating_add(p.len);
        }
        if total != size {
            return Err(corrupt!("pieces total {total} bytes, record says {size}"));
        }
        Ok(())
    }

    /// Applies a record that [`Index::validate`] accepted.
    pub fn apply_validated(&mut self, meta: Meta) {
        match meta {
            Meta::Mark => {}
            Meta::LayerCreated {
                layer,
                content_type,
                content_encoding,
                key_rules,
                time_ms,
            } => {
                self.layers.insert(
                    layer.clone(),
                    Layer {
                        name: layer.into(),
                        content_type,
                        content_encoding,
                        key_rules,
                        created_ms: time_ms,
                        objects: Default::default(),
                    },
                );
            }
            Meta::LayerDeleted { layer } => {
                // Empty (validated): only completed uploads, which hold no
                // extents, are left to forget.
                self.layers.remove(&layer);
                self.uploads.retain(|_, u| u.layer != layer);
                self.completed.retain(|_, c| *c.layer != *layer);
            }
            Meta::UploadStarted {
                layer,
                upload,
                key,
                content_type,
                content_encoding,
                time_ms,
                metadata,
            } => {
                self.completed.remove(&upload);
                self.uploads.insert(
                    upload,
                    Upload {
                        layer,
                        key,
                        content_type,
                        content_encoding,
                        started_ms: time_ms,
                        last_activity_ms: time_ms,
                        parts: Parts::new(),
                        metadata,
                    },
                );
            }
            Meta::PartSet {
                upload,
                number,
                part_id,
                new_extent,
                pieces,
                size,
                crc32c,
                time_ms,
                digest,
                ..
            } => {
                self.bump(part_id);
                let new_id = new_extent.as_ref().map(|e| e.id);
                if let Some(e) = new_extent {
                    self.define(&e);
                }
                self.retain(&pieces);
                self.sweep(new_id);
                let part = Part {
                    number,
                    id: part_id,
                    size,
                    crc32c,
                    pieces,
                    time_ms,
                    digest,
                };
                let old = match self.uploads.get_mut(&upload) {
                    Some(u) => {
                        u.last_activity_ms = u.last_activity_ms.max(time_ms);
                        u.parts.insert(number, part)
                    }
                    None => None,
                };
                if let Some(old) = old {
                    self.release(&old.pieces);
                }
            }
            Meta::UploadCompleted {
                layer,
                upload,
                parts: chosen,
                etag_seq,
                time_ms,
            } => {
                self.bump(etag_seq);
                let Some(Upload {
                    key,
                    content_type,
                    content_encoding,
                    metadata,
                    parts: current,
                    ..
                }) = self.uploads.remove(&upload)
                else {
                    return;
                };
                let mut numbers: Vec<u32> = chosen.iter().map(|(n, _)| *n).collect();
                numbers.sort_unstable();
                let mut pieces: Vec<Piece> = Vec::new();
                let (mut size, mut crc) = (0u64, 0u32);
                let part_digests: Vec<Option<&Digest>> = numbers
                    .iter()
                    .map(|n| current.get(n).and_then(|p| p.digest.as_ref()))
                    .collect();
                let composite = composite_digest(&part_digests);
                let part_sizes: Arc<[u64]> = if numbers.len() > 1 {
                    numbers
                        .iter()
                        .map(|n| current.get(n).map_or(0, |p| p.size))
                        .collect()
                } else {
                    Arc::default()
                };
                for n in &numbers {
                    if let Some(p) = current.get(n) {
                        crc = if size == 0 {
                            p.crc32c
                        } else {
                            crc32c_combine(crc, p.crc32c, p.size)
                        };
                        size += p.size;
                        for piece in &p.pieces {
                            push_merged(&mut pieces, *piece);
                        }
                    }
                }
                let object = Object {
                    key,
                    size,
                    content_type,
                    content_encoding,
                    last_modified_ms: time_ms,
                    crc32c: crc,
                    etag: etag(crc, etag_seq),
                    etag_seq,
                    part_count: numbers.len() as u32,
                    pieces: Arc::new(pieces),
                    metadata,
                    digest: None,
                    composite_digest: composite,
                    part_sizes,
                };
                self.retain(&object.pieces);
                for p in current.values() {
                    self.release(&p.pieces);
                }
                let rec = self.pack(&object);
                // The tombstone: the object as published, sharing the
                // layer's name and the interned content type and encoding.
                let media = self.media.retained_pair(
                    rec.media,
                    &object.content_type,
                    object.content_encoding.as_deref(),
                );
                let name = self.layers.get(&layer).map(|l| Arc::clone(&l.name));
                self.completed.insert(
                    upload,
                    CompletedUpload {
                        layer: name.unwrap_or_else(|| layer.as_str().into()),
                        completed_ms: time_ms,
                        outcome: Outcome::Published(Box::new(Published::new(&object, media))),
                    },
                );
                self.publish(&layer, &object.key, rec);
            }
            Meta::UploadAborted { upload, .. } => {
                if let Some(u) = self.uploads.remove(&upload) {
                    for p in u.parts.values() {
                        self.release(&p.pieces);
                    }
                }
            }
            Meta::ObjectPut {
                layer,
                key,
                new_extent,
                size,
                crc32c,
                content_type,
                content_encoding,
                etag_seq,
                time_ms,
                metadata,
                digest,
            } => {
                self.bump(etag_seq);
                let mut extent = 0;
                let mut pieces = Vec::new();
                if let Some(e) = new_extent {
                    let p = Piece {
                        extent: e.id,
                        offset: 0,
                        len: e.len,
                    };
                    if e.id != 0 && e.len == size {
                        extent = e.id;
                    } else {
                        pieces.push(p);
                    }
                    self.define(&e);
                    self.retain(&[p]);
                }
                let extra =
                    (!pieces.is_empty() || !metadata.is_empty() || digest.is_some()).then(|| {
                        Arc::new(Extra {
                            size,
                            pieces,
                            metadata,
                            digest,
                            ..Extra::default()
                        })
                    });
                let media = self
                    .media
                    .retain(&content_type, content_encoding.as_deref());
                let rec = ObjRec::new(time_ms, etag_seq, extent, extra, crc32c, media, 1);
                self.publish(&layer, &key, rec);
            }
            Meta::ObjectDeleted { layer, key } => {
                let old = self
                    .layers
                    .get_mut(&layer)
                    .and_then(|l| l.objects.remove(&key));
                if let Some(old) = old {
                    self.unpublish(&old);
                }
            }
            Meta::ObjectCopied {
                layer,
                src,
                dst,
                time_ms,
                metadata,
            } => {
                let Some(src) = self.layers.get(&layer).and_then(|l| l.objects.get(&src)) else {
                    return;
                };
                let mut rec = src.rec.clone();
                rec.set_last_modified_ms(time_ms);
                if let Some(m) = metadata {
                    let mut x = rec.extra.as_deref().cloned().unwrap_or_else(|| Extra {
                        size: self.size_of(&rec),
                        ..Extra::default()
                    });
                    x.metadata = m;
                    rec.extra = Some(Arc::new(x));
                }
                let pieces = self.pieces_of(&rec).into_owned();
                self.retain(&pieces);
                self.media.retain_id(rec.media);
                self.publish(&layer, &dst, rec);
            }
            Meta::ExtentsMoved { moves } => {
                for m in moves {
                    if let Some(old) = self.extents.relocate(m.extent, m.segment, m.offset) {
                        if old.refs > 0 {
                            sub_live(&mut self.live_by_segment, old.segment, old.len);
                            *self.live_by_segment.entry(m.segment).or_default() += old.len;
                            sub_live(&mut self.live_extents, old.segment, 1);
                            *self.live_extents.entry(m.segment).or_default() += 1;
                        }
                    }
                }
            }
            Meta::Snapshot(snap) => {
                if let Ok(ix) = Index::restore(&snap) {
                    *self = ix;
                }
            }
        }
    }

    pub(super) fn bump(&mut self, id: u64) {
        self.max_id = self.max_id.max(id);
    }

    pub(super) fn define(&mut self, e: &ExtentDef) {
        self.bump(e.id);
        self.extents
            .define(e.id, e.segment, e.offset, e.len, &e.block_crcs);
    }

    pub(super) fn retain(&mut self, pieces: &[Piece]) {
        for p in pieces {
            if let Some(loc) = self.extents.retain(p.extent) {
                *self.live_by_segment.entry(loc.segment).or_default() += loc.len;
                *self.live_extents.entry(loc.segment).or_default() += 1;
            }
        }
    }

    fn release(&mut self, pieces: &[Piece]) {
        for p in pieces {
            if let Some(loc) = self.extents.release(p.extent) {
                sub_live(&mut self.live_by_segment, loc.segment, loc.len);
                sub_live(&mut self.live_extents, loc.segment, 1);
                self.freed.push((loc.segment, loc.offset, loc.len));
            }
        }
    }

    /// Drops a just-defined extent that its record did not reference.
    fn sweep(&mut self, id: Option<u64>) {
        if let Some(id) = id {
            if self.extents.location(id).is_some_and(|l| l.refs == 0) {
                if let Some(l) = self.extents.remove(id) {
                    self.freed.push((l.segment, l.offset, l.len));
                }
            }
        }
    }

    /// Packs an object for its layer's map (one more use of its media).
    pub(super) fn pack(&mut self, o: &Object) -> ObjRec {
        let whole = match o.pieces.as_slice() {
            [p] if p.offset == 0
                && p.extent != 0
                && p.len == o.size
                && self
                    .extents
                    .location(p.extent)
                    .is_some_and(|l| l.len == p.len) =>
            {
                p.extent
            }
            _ => 0,
        };
        let etag = match etag_seq(&o.etag, o.crc32c) {
            Some(seq) if seq == o.etag_seq => None,
            _ => Some(o.etag.clone()),
        };
        let x = Extra {
            size: o.size,
            pieces: if whole == 0 {
                o.pieces.to_vec()
            } else {
                Vec::new()
            },
            metadata: o.metadata.clone(),
            digest: o.digest.clone(),
            composite_digest: o.composite_digest.clone(),
            part_sizes: Arc::clone(&o.part_sizes),
            etag,
        };
        let plain = whole != 0
            && x.metadata.is_empty()
            && x.digest.is_none()
            && x.composite_digest.is_none()
            && x.part_sizes.is_empty()
            && x.etag.is_none();
        let empty = whole == 0 && x == Extra::default();
        let extra = (!plain && !empty).then(|| Arc::new(x));
        let media = self
            .media
            .retain(&o.content_type, o.content_encoding.as_deref());
        ObjRec::new(
            o.last_modified_ms,
            o.etag_seq,
            whole,
            extra,
            o.crc32c,
            media,
            u16::try_from(o.part_count).unwrap_or(u16::MAX),
        )
    }

    /// Puts a packed object (its references already taken) under `key`;
    /// the object it replaces gives up its references.
    pub(super) fn publish(&mut self, layer: &str, key: &str, rec: ObjRec) {
        let old = self
            .layers
            .get_mut(layer)
            .and_then(|l| l.objects.insert(key, rec));
        if let Some(old) = old {
            self.unpublish(&old);
        }
    }

    /// Gives up what a removed object held: its extents and media.
    fn unpublish(&mut self, old: &ObjRec) {
        let pieces = self.pieces_of(old).into_owned();
        self.release(&pieces);
        self.media.release(old.media);
    }
}

fn sub_live(map: &mut HashMap<u64, u64>, seg: u64, len: u64) {
    if let Some(v) = map.get_mut(&seg) {
        *v = v.saturating_sub(len);
        if *v == 0 {
            map.remove(&seg);
        }
    }
}

/// Appends a piece, merging it with the previous one when contiguous.
fn push_merged(pieces: &mut Vec<Piece>, p: Piece) {
    if let Some(last) = pieces.last_mut() {
        if last.extent == p.extent && last.offset + last.len == p.offset {
            last.len += p.len;
            return;
        }
    }
    pieces.push(p);
}

/// A CRC-32C digest kept with a part or object is its CRC32C: anything
/// else is a record no live call could have written.
pub(super) fn check_crc_digest(digest: Option<&Digest>, crc32c: u32) -> Result<()> {
    match digest {
        Some(d)
            if d.algorithm() == DigestAlgorithm::Crc32c && *d != Digest::from_crc32c(crc32c) =>
        {
            Err(corrupt!(
                "kept digest {d} is not the CRC32C {crc32c:08x} of the bytes"
            ))
        }
        _ => Ok(()),
    }
}

/// A layer's content type and encoding, when set, bind every upload into it.
pub(super) fn check_binding(
    l: &Layer,
    layer: &str,
    content_type: &str,
    content_encoding: Option<&str>,
) -> Result<()> {
    if let Some(ct) = &l.content_type {
        if !spec::media_eq(ct, content_type) {
            return Err(bad_request!(
                Reason::ContentTypeMismatch,
                "content type \"{content_type}\" does not match layer \"{layer}\"'s \"{ct}\""
            ));
        }
    }
    if let Some(ce) = &l.content_encoding {
        if !content_encoding.is_some_and(|e| spec::media_eq(ce, e)) {
            return Err(bad_request!(
                Reason::ContentEncodingMismatch,
                "content encoding \"{}\" does not match layer \"{layer}\"'s \"{ce}\"",
                content_encoding.unwrap_or("")
            ));
        }
    }
    Ok(())
}

/// The complete-time rules of the SPEC for the chosen (number, id) parts.
fn check_completion(current: &Parts, chosen: &[(u32, u64)]) -> Result<()> {
    if chosen.is_empty() {
        return Err(bad_request!(
            Reason::NoParts,
            "an upload needs at least one part to complete"
        ));
    }
    let mut sorted: Vec<&Part> = Vec::with_capacity(chosen.len());
    let mut seen = std::collections::HashSet::with_capacity(chosen.len());
    for (n, id) in chosen {
        if !seen.insert(*n) {
            return Err(
                bad_request!(Reason::PartListedTwice, "part number {n} is listed twice")
                    .with_part(*n),
            );
        }
        match current.get(n) {
            Some(p) if p.id == *id => sorted.push(p),
            Some(_) => {
                return Err(bad_request!(
                    Reason::StalePartId,
                    "part {n} has no id {id:016x}: it was replaced or never existed"
                )
                .with_part(*n))
            }
            None => {
                return Err(bad_request!(
                    Reason::PartNotUploaded,
                    "part {n} (id {id:016x}) does not exist"
                )
                .with_part(*n))
            }
        }
    }
    // The size and numbering rules live in one place: spec.rs.
    let mut sized: Vec<(u32, u64)> = sorted.iter().map(|p| (p.number, p.size)).collect();
    sized.sort_unstable();
    spec::validate_complete(&sized).map(|_| ())
}
