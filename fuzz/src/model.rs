//! The reference model: the SPEC's rules written plainly over `BTreeMap`s,
//! answering each record (and each request plan) with what the index must
//! do, and applying what it accepts.

use std::collections::{BTreeMap, BTreeSet};

use partstore::internals::{ExtentDef, Meta, Piece};
use partstore::{ByteRange, ErrorKind, Reason};

// The SPEC's limits, stated here rather than imported from the engine.
pub const MIB: u64 = 1 << 20;
/// A part (uploaded or copied) is at most 96 MiB.
pub const MAX_PART: u64 = 96 * MIB;
/// A single `put_object` is at most 192 MiB.
pub const MAX_PUT: u64 = 192 * MIB;
/// Every part but the last of a completed upload is at least 5 MiB.
pub const MIN_PART: u64 = 5 * MIB;
/// A completed object is at most 500 GiB.
pub const MAX_OBJECT: u64 = 500 << 30;

/// SPEC: a key is 1..=450 chars of `A-Z a-z 0-9 . [ ] = ( ) { } / _ -`; no
/// leading or trailing `/`, no `//`.
pub fn key_ok(s: &str) -> bool {
    let allowed = |c: char| c.is_ascii_alphanumeric() || ".[]=(){}/_-".contains(c);
    let n = s.chars().count();
    (1..=450).contains(&n)
        && s.chars().all(allowed)
        && !s.starts_with('/')
        && !s.ends_with('/')
        && !s.contains("//")
}

/// SPEC: a layer id is 1..=63 chars of `A-Z a-z 0-9 - _ .`.
pub fn layer_ok(s: &str) -> bool {
    let n = s.chars().count();
    (1..=63).contains(&n)
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MObject {
    pub size: u64,
    pub crc: u32,
    pub content_type: String,
    pub content_encoding: Option<String>,
    pub time: u64,
    pub etag_seq: u64,
    pub part_count: u32,
    pub pieces: Vec<Piece>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MPart {
    pub id: u64,
    pub size: u64,
    pub crc: u32,
    pub time: u64,
    pub pieces: Vec<Piece>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MUpload {
    pub layer: String,
    pub key: String,
    pub content_type: String,
    pub content_encoding: Option<String>,
    pub started: u64,
    pub last: u64,
    /// `None` once completed.
    pub parts: Option<BTreeMap<u32, MPart>>,
    /// Once completed: when (the completion record's time), where the
    /// retention window starts.
    pub completed: Option<u64>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MLayer {
    pub content_type: Option<String>,
    pub content_encoding: Option<String>,
    pub objects: BTreeMap<String, MObject>,
}

/// The index as plain maps. An extent is live iff some object or current
/// part references it; `defs` remembers where every extent ever defined is.
#[derive(Debug, Clone, Default)]
pub struct Model {
    pub layers: BTreeMap<String, MLayer>,
    pub uploads: BTreeMap<[u8; 16], MUpload>,
    pub defs: BTreeMap<u64, ExtentDef>,
    pub max_id: u64,
}

type Check = Result<(), ErrorKind>;

/// What a request must fail with: the kind and the reason. (Records are
/// judged by kind alone: replay only needs to refuse them.)
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Why {
    pub kind: ErrorKind,
    pub reason: Reason,
}

impl Why {
    pub fn new(kind: ErrorKind, reason: Reason) -> Why {
        Why { kind, reason }
    }

    /// The kind and reason of an engine error.
    pub fn of(e: &partstore::Error) -> Why {
        Why::new(e.kind(), e.reason().expect("every refusal has a reason"))
    }
}

impl From<Why> for ErrorKind {
    fn from(w: Why) -> ErrorKind {
        w.kind
    }
}

/// Media types compare case-insensitively (ASCII), as the SPEC says.
fn same_media(a: &str, b: &str) -> bool {
    a.eq_ignore_ascii_case(b)
}

/// Appends pieces, joining one that continues the previous piece's extent.
fn concat(out: &mut Vec<Piece>, pieces: &[Piece]) {
    for p in pieces {
        match out.last_mut() {
            Some(l) if l.extent == p.extent && l.offset + l.len == p.offset => l.len += p.len,
            _ => out.push(*p),
        }
    }
}

/// Where logical byte `pos` of an object made of `pieces` lives: a piece
/// starting at that byte and running to the end of the piece holding it.
fn locate(pieces: &[Piece], pos: u64) -> Option<Piece> {
    let mut start = 0u64;
    for p in pieces {
        if pos < start + p.len {
            let skip = pos - start;
            return Some(Piece {
                extent: p.extent,
                offset: p.offset + skip,
                len: p.len - skip,
            });
        }
        start += p.len;
    }
    None
}

/// Whether `plan`, read in order, is exactly bytes `first..first + size` of
/// an object made of `src`: every piece non-empty, and each run of it the
/// same extent bytes that the source has at that position. Checked byte run
/// by byte run from the plan's side, so it shares no code with the
/// planner's slicing.
pub fn covers(src: &[Piece], first: u64, size: u64, plan: &[Piece]) -> Result<(), String> {
    let mut pos = first;
    for p in plan {
        if p.len == 0 {
            return Err(format!("empty piece {p:?}"));
        }
        let mut want = *p;
        while want.len > 0 {
            let Some(have) = locate(src, pos) else {
                return Err(format!("{p:?} runs past the source at byte {pos}"));
            };
            if (have.extent, have.offset) != (want.extent, want.offset) {
                return Err(format!(
                    "{p:?}: source byte {pos} is extent {} offset {}",
                    have.extent, have.offset
                ));
            }
            let step = have.len.min(want.len);
            pos += step;
            want.offset += step;
            want.len -= step;
        }
    }
    if pos != first + size {
        return Err(format!(
            "the pieces cover {} bytes, the range {size}",
            pos - first
        ));
    }
    Ok(())
}

impl Model {
    /// Every piece that holds an extent: objects, then current parts.
    pub fn references(&self) -> impl Iterator<Item = &Piece> {
        let objects = self
            .layers
            .values()
            .flat_map(|l| l.objects.values())
            .flat_map(|o| &o.pieces);
        let parts = self
            .uploads
            .values()
            .filter_map(|u| u.parts.as_ref())
            .flat_map(|p| p.values())
            .flat_map(|p| &p.pieces);
        objects.chain(parts)
    }

    /// Live extent ids and how many pieces reference each.
    pub fn live(&self) -> BTreeMap<u64, u64> {
        let mut m = BTreeMap::new();
        for p in self.references() {
            *m.entry(p.extent).or_insert(0) += 1;
        }
        m
    }

    /// A layer by id: BadRequest for an id that breaks the rules, NotFound
    /// for one never created.
    pub fn layer(&self, layer: &str) -> Result<&MLayer, Why> {
        if !layer_ok(layer) {
            return Err(Why::new(ErrorKind::BadRequest, Reason::InvalidLayerId));
        }
        self.layers
            .get(layer)
            .ok_or(Why::new(ErrorKind::NotFound, Reason::UnknownLayer))
    }

    /// An object by layer and key.
    pub fn object(&self, layer: &str, key: &str) -> Result<&MObject, Why> {
        let l = self.layer(layer)?;
        if !key_ok(key) {
            return Err(Why::new(ErrorKind::BadRequest, Reason::InvalidKey));
        }
        l.objects
            .get(key)
            .ok_or(Why::new(ErrorKind::NotFound, Reason::UnknownKey))
    }

    /// An upload of `layer` that is still open: NotFound if unknown,
    /// aborted or bound to another layer; BadRequest once completed.
    pub fn open_upload(&self, layer: &str, id: &[u8; 16]) -> Result<&MUpload, Why> {
        self.layer(layer)?;
        match self.uploads.get(id) {
            Some(u) if u.layer == layer && u.parts.is_some() => Ok(u),
            Some(u) if u.layer == layer => {
                Err(Why::new(ErrorKind::BadRequest, Reason::UploadCompleted))
            }
            _ => Err(Why::new(ErrorKind::NotFound, Reason::UnknownUpload)),
        }
    }

    /// The current parts of an open upload.
    fn open_parts(&self, layer: &str, id: &[u8; 16]) -> Result<&BTreeMap<u32, MPart>, Why> {
        let u = self.open_upload(layer, id)?;
        Ok(u.parts.as_ref().expect("open"))
    }

    /// A layer's binding: a content type (if the layer has one) equal but
    /// for ASCII case; a content encoding (if the layer has one) given and
    /// equal but for case.
    fn binding(l: &MLayer, ct: &str, ce: Option<&str>) -> Result<(), Why> {
        if l.content_type
            .as_deref()
            .is_some_and(|t| !same_media(t, ct))
        {
            return Err(Why::new(ErrorKind::BadRequest, Reason::ContentTypeMismatch));
        }
        if let Some(want) = &l.content_encoding {
            if !ce.is_some_and(|e| same_media(want, e)) {
                return Err(Why::new(
                    ErrorKind::BadRequest,
                    Reason::ContentEncodingMismatch,
                ));
            }
        }
        Ok(())
    }

    // ----- requests: what the index's planner must answer ------------------

    /// `put_object` before its body is read: the layer, the key, a declared
    /// length of at most 192 MiB, then the content type and encoding the
    /// object gets (the body's, else the layer's, else
    /// `application/octet-stream` and none), which must fit the layer's
    /// binding.
    pub fn plan_put(
        &self,
        layer: &str,
        key: &str,
        declared_len: u64,
        content_type: Option<&str>,
        content_encoding: Option<&str>,
    ) -> Result<(String, Option<String>), Why> {
        let l = self.layer(layer)?;
        if !key_ok(key) {
            return Err(Why::new(ErrorKind::BadRequest, Reason::InvalidKey));
        }
        if declared_len > MAX_PUT {
            return Err(Why::new(ErrorKind::TooLarge, Reason::ObjectTooLarge));
        }
        let ct = content_type
            .or(l.content_type.as_deref())
            .unwrap_or("application/octet-stream");
        let ce = content_encoding.or(l.content_encoding.as_deref());
        Model::binding(l, ct, ce)?;
        Ok((ct.to_string(), ce.map(String::from)))
    }

    /// `upload_part` before its body is read: an open upload, a part number
    /// in 1..=10000, a declared length of at most 96 MiB, and a content
    /// type (if given) equal to the upload's but for case.
    pub fn plan_part(
        &self,
        layer: &str,
        upload: &[u8; 16],
        n: u32,
        declared_len: u64,
        content_type: Option<&str>,
    ) -> Result<(), Why> {
        let u = self.open_upload(layer, upload)?;
        if !(1..=10_000).contains(&n) {
            return Err(Why::new(ErrorKind::BadRequest, Reason::InvalidPartNumber));
        }
        if declared_len > MAX_PART {
            return Err(Why::new(ErrorKind::TooLarge, Reason::PartTooLarge));
        }
        if content_type.is_some_and(|ct| !same_media(ct, &u.content_type)) {
            return Err(Why::new(ErrorKind::BadRequest, Reason::ContentTypeMismatch));
        }
        Ok(())
    }

    /// `copy_part`: the range must give both bounds (checked first), then
    /// an open upload, a part number, the source object, and a range
    /// `first..=last` with `first <= last`, `first` a multiple of 1 MiB,
    /// `last` inside the source and at most 96 MiB long. Returns the part's
    /// size; [`covers`] checks the pieces.
    pub fn plan_copy(
        &self,
        layer: &str,
        upload: &[u8; 16],
        n: u32,
        key: &str,
        range: &ByteRange,
    ) -> Result<u64, Why> {
        let unsatisfiable = |r| Why::new(ErrorKind::RangeNotSatisfiable, r);
        let ByteRange::Bounded { first, last } = *range else {
            return Err(unsatisfiable(Reason::CopyRangeOpen));
        };
        self.open_upload(layer, upload)?;
        if !(1..=10_000).contains(&n) {
            return Err(Why::new(ErrorKind::BadRequest, Reason::InvalidPartNumber));
        }
        let src = self.object(layer, key)?;
        if first > last {
            return Err(unsatisfiable(Reason::InvalidRange));
        }
        if first % MIB != 0 {
            return Err(unsatisfiable(Reason::CopyRangeUnaligned));
        }
        if last >= src.size {
            return Err(unsatisfiable(Reason::InvalidRange));
        }
        let len = last - first + 1;
        if len > MAX_PART {
            return Err(Why::new(ErrorKind::TooLarge, Reason::PartTooLarge));
        }
        Ok(len)
    }

    // ----- records: what the index's validate must answer ------------------

    /// A record's new extent and pieces: the new extent must be new and
    /// carry one CRC per started MiB; every piece non-empty and inside a
    /// live (or the new) extent; the pieces add up to `size`.
    fn pieces(&self, new: Option<&ExtentDef>, pieces: &[Piece], size: u64) -> Check {
        let live = self.live();
        if let Some(e) = new {
            if live.contains_key(&e.id) || e.block_crcs.len() as u64 != e.len.div_ceil(MIB) {
                return Err(ErrorKind::Corrupt);
            }
        }
        let mut total: u128 = 0;
        for p in pieces {
            let len = match new {
                Some(e) if e.id == p.extent => e.len,
                _ if live.contains_key(&p.extent) => self.defs[&p.extent].len,
                _ => return Err(ErrorKind::Corrupt),
            };
            if p.len == 0 || u128::from(p.offset) + u128::from(p.len) > u128::from(len) {
                return Err(ErrorKind::Corrupt);
            }
            total += u128::from(p.len);
        }
        if total != u128::from(size) {
            return Err(ErrorKind::Corrupt);
        }
        Ok(())
    }

    /// The SPEC's answer to a record: Ok or the error kind.
    pub fn check(&self, meta: &Meta) -> Check {
        match meta {
            Meta::LayerCreated { layer, .. } => {
                if !layer_ok(layer) {
                    return Err(ErrorKind::BadRequest);
                }
                if self.layers.contains_key(layer) {
                    return Err(ErrorKind::Conflict);
                }
                Ok(())
            }
            Meta::UploadStarted {
                layer,
                upload,
                key,
                content_type,
                content_encoding,
                ..
            } => {
                let l = self.layer(layer)?;
                if !key_ok(key) {
                    return Err(ErrorKind::BadRequest);
                }
                Model::binding(l, content_type, content_encoding.as_deref())?;
                // An open upload keeps its token; a completed one's does
                // not (its tombstone may be swept without a record, so it
                // cannot decide whether a record applies): the start
                // replaces it.
                if self.uploads.get(upload).is_some_and(|u| u.parts.is_some()) {
                    return Err(ErrorKind::Conflict);
                }
                Ok(())
            }
            Meta::PartSet {
                layer,
                upload,
                number,
                new_extent,
                pieces,
                size,
                ..
            } => {
                self.open_upload(layer, upload)?;
                if !(1..=10_000).contains(number) {
                    return Err(ErrorKind::BadRequest);
                }
                if *size > MAX_PART {
                    return Err(ErrorKind::TooLarge);
                }
                self.pieces(new_extent.as_ref(), pieces, *size)
            }
            Meta::UploadCompleted {
                layer,
                upload,
                parts,
                ..
            } => {
                let current = self.open_parts(layer, upload)?;
                if parts.is_empty() {
                    return Err(ErrorKind::BadRequest);
                }
                let numbers: BTreeSet<u32> = parts.iter().map(|(n, _)| *n).collect();
                if numbers.len() != parts.len() {
                    return Err(ErrorKind::BadRequest);
                }
                if parts
                    .iter()
                    .any(|(n, id)| current.get(n).is_none_or(|p| p.id != *id))
                {
                    return Err(ErrorKind::BadRequest);
                }
                if numbers.iter().copied().ne(1..=parts.len() as u32) {
                    return Err(ErrorKind::BadRequest);
                }
                let sizes: Vec<u64> = numbers.iter().map(|n| current[n].size).collect();
                let (last, rest) = sizes.split_last().ok_or(ErrorKind::BadRequest)?;
                if rest.iter().any(|s| *s < MIN_PART || s % MIB != 0) {
                    return Err(ErrorKind::BadRequest);
                }
                if rest.iter().map(|s| u128::from(*s)).sum::<u128>() + u128::from(*last)
                    > u128::from(MAX_OBJECT)
                {
                    return Err(ErrorKind::TooLarge);
                }
                Ok(())
            }
            Meta::UploadAborted { layer, upload, .. } => {
                self.open_upload(layer, upload)?;
                Ok(())
            }
            Meta::ObjectPut {
                layer,
                key,
                new_extent,
                size,
                content_type,
                content_encoding,
                ..
            } => {
                let l = self.layer(layer)?;
                if !key_ok(key) {
                    return Err(ErrorKind::BadRequest);
                }
                if *size > MAX_PUT {
                    return Err(ErrorKind::TooLarge);
                }
                Model::binding(l, content_type, content_encoding.as_deref())?;
                let pieces: Vec<Piece> = new_extent
                    .iter()
                    .map(|e| Piece {
                        extent: e.id,
                        offset: 0,
                        len: e.len,
                    })
                    .collect();
                self.pieces(new_extent.as_ref(), &pieces, *size)
            }
            Meta::ObjectDeleted { layer, key } => {
                self.layer(layer)?;
                if key_ok(key) {
                    Ok(())
                } else {
                    Err(ErrorKind::BadRequest)
                }
            }
            Meta::ObjectCopied {
                layer, src, dst, ..
            } => {
                let l = self.layer(layer)?;
                if !key_ok(src) {
                    return Err(ErrorKind::BadRequest);
                }
                if !l.objects.contains_key(src) {
                    return Err(ErrorKind::NotFound);
                }
                if !key_ok(dst) {
                    return Err(ErrorKind::BadRequest);
                }
                Ok(())
            }
            Meta::ExtentsMoved { moves } => {
                let live = self.live();
                if moves.iter().all(|m| live.contains_key(&m.extent)) {
                    Ok(())
                } else {
                    Err(ErrorKind::Corrupt)
                }
            }
            Meta::LayerDeleted { layer } => {
                let l = self.layer(layer)?;
                let open = self
                    .uploads
                    .values()
                    .any(|u| u.layer == *layer && u.parts.is_some());
                if !l.objects.is_empty() || open {
                    return Err(ErrorKind::Conflict);
                }
                Ok(())
            }
            Meta::Snapshot(_) | Meta::Mark => Ok(()),
        }
    }

    /// Applies a record `check` accepted.
    pub fn apply(&mut self, meta: &Meta) {
        match meta.clone() {
            Meta::LayerCreated {
                layer,
                content_type,
                content_encoding,
                ..
            } => {
                self.layers.insert(
                    layer,
                    MLayer {
                        content_type,
                        content_encoding,
                        objects: BTreeMap::new(),
                    },
                );
            }
            Meta::UploadStarted {
                layer,
                upload,
                key,
                content_type,
                content_encoding,
                time_ms,
                ..
            } => {
                self.uploads.insert(
                    upload,
                    MUpload {
                        layer,
                        key,
                        content_type,
                        content_encoding,
                        started: time_ms,
                        last: time_ms,
                        parts: Some(BTreeMap::new()),
                        completed: None,
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
                ..
            } => {
                self.max_id = self.max_id.max(part_id);
                if let Some(e) = new_extent {
                    self.max_id = self.max_id.max(e.id);
                    self.defs.insert(e.id, e);
                }
                let u = self.uploads.get_mut(&upload).expect("checked");
                u.last = u.last.max(time_ms);
                let part = MPart {
                    id: part_id,
                    size,
                    crc: crc32c,
                    time: time_ms,
                    pieces,
                };
                u.parts.as_mut().expect("checked").insert(number, part);
            }
            Meta::UploadCompleted {
                layer,
                upload,
                parts,
                etag_seq,
                time_ms,
            } => {
                self.max_id = self.max_id.max(etag_seq);
                let u = self.uploads.get_mut(&upload).expect("checked");
                u.last = u.last.max(time_ms);
                u.completed = Some(time_ms);
                let current = u.parts.take().expect("checked");
                let numbers: BTreeSet<u32> = parts.iter().map(|(n, _)| *n).collect();
                let chosen: Vec<&MPart> = numbers.iter().map(|n| &current[n]).collect();
                let mut pieces = Vec::new();
                for p in &chosen {
                    concat(&mut pieces, &p.pieces);
                }
                let crc = chosen
                    .iter()
                    .fold(None, |acc, p| match acc {
                        None => Some(p.crc),
                        Some(c) => Some(crc32c::crc32c_combine(c, p.crc, p.size as usize)),
                    })
                    .unwrap_or(0);
                let object = MObject {
                    size: chosen.iter().map(|p| p.size).sum(),
                    crc,
                    content_type: u.content_type.clone(),
                    content_encoding: u.content_encoding.clone(),
                    time: time_ms,
                    etag_seq,
                    part_count: chosen.len() as u32,
                    pieces,
                };
                let key = u.key.clone();
                self.layers
                    .get_mut(&layer)
                    .expect("checked")
                    .objects
                    .insert(key, object);
            }
            Meta::UploadAborted { upload, .. } => {
                self.uploads.remove(&upload);
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
                ..
            } => {
                self.max_id = self.max_id.max(etag_seq);
                let mut pieces = Vec::new();
                if let Some(e) = new_extent {
                    self.max_id = self.max_id.max(e.id);
                    pieces.push(Piece {
                        extent: e.id,
                        offset: 0,
                        len: e.len,
                    });
                    self.defs.insert(e.id, e);
                }
                let object = MObject {
                    size,
                    crc: crc32c,
                    content_type,
                    content_encoding,
                    time: time_ms,
                    etag_seq,
                    part_count: 1,
                    pieces,
                };
                self.layers
                    .get_mut(&layer)
                    .expect("checked")
                    .objects
                    .insert(key, object);
            }
            Meta::ObjectDeleted { layer, key } => {
                self.layers
                    .get_mut(&layer)
                    .expect("checked")
                    .objects
                    .remove(&key);
            }
            Meta::ObjectCopied {
                layer,
                src,
                dst,
                time_ms,
                ..
            } => {
                let l = self.layers.get_mut(&layer).expect("checked");
                let mut o = l.objects[&src].clone();
                o.time = time_ms;
                l.objects.insert(dst, o);
            }
            Meta::ExtentsMoved { moves } => {
                for m in moves {
                    let d = self.defs.get_mut(&m.extent).expect("checked");
                    d.segment = m.segment;
                    d.offset = m.offset;
                }
            }
            Meta::LayerDeleted { layer } => {
                self.layers.remove(&layer);
                self.uploads.retain(|_, u| u.layer != layer);
            }
            Meta::Snapshot(_) | Meta::Mark => {}
        }
    }
}

#[cfg(test)]
mod tests;
