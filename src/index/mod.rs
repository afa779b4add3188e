//! The in-memory index: layers, objects, uploads and the extent table.
//!
//! Pure: no I/O, no clock, no randomness. Every change arrives as a
//! [`Meta`] record; the live path calls [`Index::validate`], makes the record
//! durable, then [`Index::apply_validated`]; recovery calls [`Index::apply`]
//! on each replayed record. So the rebuilt index equals the live one.

// Internal module; exposed undocumented only to fuzz targets (feature `fuzzing`).
#![cfg_attr(feature = "fuzzing", allow(missing_docs))]

pub(crate) mod footprint;

use crate::error::Reason;
use std::collections::{BTreeMap, HashMap};
use std::ops::Bound;
use std::sync::Arc;

use crate::digest::crc32c_combine;
use crate::error::{bad_request, conflict, corrupt, not_found, Result};
use crate::log::format::{ExtentDef, Meta, ObjectSnap, PartSnap, Piece, Snapshot, UploadSnap};
use crate::spec::{self, UploadId};

/// Where an extent's bytes are, and how many references hold it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Extent {
    pub segment: u64,
    pub offset: u64,
    pub len: u64,
    pub block_crcs: Arc<[u32]>,
    pub refs: u64,
}

/// A current part of an open upload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Part {
    pub number: u32,
    pub id: u64,
    pub size: u64,
    pub crc32c: u32,
    pub pieces: Vec<Piece>,
    pub time_ms: u64,
}

/// A published object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Object {
    pub key: String,
    pub size: u64,
    pub content_type: String,
    pub content_encoding: Option<String>,
    pub last_modified_ms: u64,
    pub crc32c: u32,
    pub etag: String,
    pub part_count: u32,
    /// The object's bytes, in order.
    pub pieces: Arc<Vec<Piece>>,
}

impl From<&Object> for ObjectSnap {
    fn from(o: &Object) -> ObjectSnap {
        ObjectSnap {
            key: o.key.clone(),
            size: o.size,
            content_type: o.content_type.clone(),
            content_encoding: o.content_encoding.clone(),
            last_modified_ms: o.last_modified_ms,
            crc32c: o.crc32c,
            etag: o.etag.clone(),
            part_count: o.part_count,
            pieces: o.pieces.to_vec(),
        }
    }
}

impl From<&ObjectSnap> for Object {
    fn from(o: &ObjectSnap) -> Object {
        Object {
            key: o.key.clone(),
            size: o.size,
            content_type: o.content_type.clone(),
            content_encoding: o.content_encoding.clone(),
            last_modified_ms: o.last_modified_ms,
            crc32c: o.crc32c,
            etag: o.etag.clone(),
            part_count: o.part_count,
            pieces: Arc::new(o.pieces.clone()),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UploadState {
    Open(BTreeMap<u32, Part>),
    Completed,
}

/// A multipart upload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Upload {
    pub layer: String,
    pub key: String,
    pub content_type: String,
    pub content_encoding: Option<String>,
    pub started_ms: u64,
    pub last_activity_ms: u64,
    pub state: UploadState,
}

/// A layer and its objects, in byte-wise key order.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Layer {
    pub content_type: Option<String>,
    pub content_encoding: Option<String>,
    pub objects: BTreeMap<String, Arc<Object>>,
}

/// One listing entry.
#[derive(Debug, Clone)]
pub enum Entry {
    Object(Arc<Object>),
    Prefix(String),
}

/// Where a listing page ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cursor {
    AfterObject(String),
    AfterPrefix(String),
}

/// The whole in-memory state.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Index {
    layers: BTreeMap<String, Layer>,
    uploads: HashMap<[u8; 16], Upload>,
    extents: HashMap<u64, Extent>,
    /// Live extent bytes per segment.
    live_by_segment: HashMap<u64, u64>,
    /// Highest id (extent, part, etag sequence) any record used.
    max_id: u64,
}

/// The etag of an object: its CRC and the sequence number of the write that
/// made it, so it changes whenever the content does.
fn etag(crc: u32, seq: u64) -> String {
    format!("{crc:08x}{seq:016x}")
}

fn upload_name(u: &[u8; 16]) -> String {
    UploadId::from_bytes(*u).to_string()
}

impl Index {
    /// An empty index.
    pub fn new() -> Index {
        Index::default()
    }

    /// Highest id any applied record used; fresh ids start above it.
    pub fn max_id(&self) -> u64 {
        self.max_id
    }

    // ----- queries -------------------------------------------------------

    /// The layer `id`: BadRequest for a malformed id, NotFound if missing.
    pub fn layer(&self, id: &str) -> Result<&Layer> {
        spec::validate_layer_id(id)?;
        self.layers
            .get(id)
            .ok_or_else(|| not_found!(Reason::UnknownLayer, "layer \"{id}\" does not exist"))
    }

    /// Layer ids and configs.
    pub fn layers(&self) -> impl Iterator<Item = (&String, &Layer)> {
        self.layers.iter()
    }

    /// An object, or NotFound.
    pub fn object(&self, layer: &str, key: &str) -> Result<&Arc<Object>> {
        let l = self.layer(layer)?;
        spec::validate_key(key)?;
        l.objects.get(key).ok_or_else(|| {
            not_found!(
                Reason::UnknownKey,
                "key \"{key}\" does not exist in layer \"{layer}\""
            )
        })
    }

    /// An upload of `layer` in any state; NotFound if unknown, aborted or
    /// bound to another layer.
    pub fn upload(&self, layer: &str, upload: &[u8; 16]) -> Result<&Upload> {
        self.layer(layer)?;
        match self.uploads.get(upload) {
            Some(u) if u.layer == layer => Ok(u),
            _ => Err(not_found!(
                Reason::UnknownUpload,
                "upload {} does not exist in layer \"{layer}\"",
                upload_name(upload)
            )),
        }
    }

    /// An open upload and its current parts; BadRequest once completed.
    pub fn open_upload(
        &self,
        layer: &str,
        upload: &[u8; 16],
    ) -> Result<(&Upload, &BTreeMap<u32, Part>)> {
        let u = self.upload(layer, upload)?;
        match &u.state {
            UploadState::Open(parts) => Ok((u, parts)),
            UploadState::Completed => Err(bad_request!(
                Reason::UploadCompleted,
                "upload {} is already completed",
                upload_name(upload)
            )),
        }
    }

    /// Open uploads of a layer, by key then start time.
    pub fn open_uploads(&self, layer: &str) -> Result<Vec<(&[u8; 16], &Upload, usize)>> {
        self.layer(layer)?;
        let mut v: Vec<_> = self
            .uploads
            .iter()
            .filter(|(_, u)| u.layer == layer)
            .filter_map(|(id, u)| match &u.state {
                UploadState::Open(p) => Some((id, u, p.len())),
                UploadState::Completed => None,
            })
            .collect();
        v.sort_by(|a, b| (&a.1.key, a.1.started_ms, a.0).cmp(&(&b.1.key, b.1.started_ms, b.0)));
        Ok(v)
    }

    /// Every open upload whose last activity is at or before `cutoff_ms`.
    pub fn idle_uploads(&self, cutoff_ms: u64) -> Vec<(String, [u8; 16])> {
        let mut v: Vec<_> = self
            .uploads
            .iter()
            .filter(|(_, u)| matches!(u.state, UploadState::Open(_)))
            .filter(|(_, u)| u.last_activity_ms <= cutoff_ms)
            .map(|(id, u)| (u.layer.clone(), *id))
            .collect();
        v.sort();
        v
    }

    /// An extent of the table, if live.
    pub fn extent(&self, id: u64) -> Option<&Extent> {
        self.extents.get(&id)
    }

    /// Every live extent.
    pub fn extents(&self) -> impl Iterator<Item = (&u64, &Extent)> {
        self.extents.iter()
    }

    /// Live bytes per segment.
    pub fn live_by_segment(&self) -> &HashMap<u64, u64> {
        &self.live_by_segment
    }

    /// (objects, open uploads, live bytes).
    pub fn counts(&self) -> (usize, usize, u64) {
        let objects = self.layers.values().map(|l| l.objects.len()).sum();
        let uploads = self
            .uploads
            .values()
            .filter(|u| matches!(u.state, UploadState::Open(_)))
            .count();
        (objects, uploads, self.live_by_segment.values().sum())
    }

    /// One page of a listing. `parent` is normalized (no trailing `/`).
    pub fn list(
        &self,
        layer: &str,
        parent: &str,
        deep: bool,
        after: Option<&Cursor>,
        limit: usize,
    ) -> Result<(Vec<Entry>, Option<Cursor>)> {
        let l = self.layer(layer)?;
        let prefix = if parent.is_empty() {
            String::new()
        } else {
            format!("{parent}/")
        };
        let mut start: Bound<String> = match after {
            None => Bound::Included(prefix.clone()),
            Some(Cursor::AfterObject(k)) => Bound::Excluded(k.clone()),
            // '0' is the byte after '/': skip every key under the prefix.
            Some(Cursor::AfterPrefix(p)) => Bound::Included(format!("{p}0")),
        };
        let mut items = Vec::new();
        'outer: loop {
            let range = l
                .objects
                .range::<String, _>((start.clone(), Bound::Unbounded));
            for (key, obj) in range {
                if !key.starts_with(&prefix) {
                    if key.as_str() < prefix.as_str() {
                        continue;
                    }
                    break 'outer;
                }
                if items.len() == limit {
                    let cursor = match items.last() {
                        Some(Entry::Object(o)) => Cursor::AfterObject(o.key.clone()),
                        Some(Entry::Prefix(p)) => Cursor::AfterPrefix(p.clone()),
                        None => break 'outer,
                    };
                    return Ok((items, Some(cursor)));
                }
                let rest = &key[prefix.len()..];
                match rest.find('/') {
                    Some(i) if !deep => {
                        let p = format!("{prefix}{}", &rest[..i]);
                        start = Bound::Included(format!("{p}0"));
                        items.push(Entry::Prefix(p));
                        continue 'outer;
                    }
                    _ => items.push(Entry::Object(Arc::clone(obj))),
                }
            }
            break;
        }
        Ok((items, None))
    }

    // ----- changes -------------------------------------------------------

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
            Meta::UploadStarted {
                layer,
                upload,
                key,
                content_type,
                content_encoding,
                ..
            } => {
                let l = self.layer(layer)?;
                spec::validate_key(key)?;
                check_binding(l, layer, content_type, content_encoding.as_deref())?;
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
                ..
            } => {
                self.open_upload(layer, upload)?;
                spec::validate_part_number(*number)?;
                spec::check_part_size(*size)?;
                self.check_pieces(new_extent.as_ref(), pieces, *size)?;
            }
            Meta::UploadCompleted {
                layer,
                upload,
                parts,
                ..
            } => {
                let (_, current) = self.open_upload(layer, upload)?;
                check_completion(current, parts)?;
            }
            Meta::UploadAborted { layer, upload, .. } => {
                self.open_upload(layer, upload)?;
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
                spec::validate_key(key)?;
                spec::check_put_object_size(*size)?;
                check_binding(l, layer, content_type, content_encoding.as_deref())?;
                let pieces: Vec<Piece> = new_extent
                    .iter()
                    .map(|e| Piece {
                        extent: e.id,
                        offset: 0,
                        len: e.len,
                    })
                    .collect();
                self.check_pieces(new_extent.as_ref(), &pieces, *size)?;
            }
            Meta::ObjectDeleted { layer, key } => {
                self.layer(layer)?;
                spec::validate_key(key)?;
            }
            Meta::ObjectCopied {
                layer, src, dst, ..
            } => {
                self.object(layer, src)?;
                spec::validate_key(dst)?;
            }
            Meta::ExtentsMoved { moves } => {
                for m in moves {
                    if !self.extents.contains_key(&m.extent) {
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

    /// The whole state as one record's worth of data (compaction writes it).
    pub fn snapshot(&self) -> Snapshot {
        let mut extents: Vec<ExtentDef> = self
            .extents
            .iter()
            .map(|(id, e)| ExtentDef {
                id: *id,
                segment: e.segment,
                offset: e.offset,
                len: e.len,
                block_crcs: e.block_crcs.to_vec(),
            })
            .collect();
        extents.sort_by_key(|e| e.id);
        let mut uploads: Vec<UploadSnap> = self
            .uploads
            .iter()
            .map(|(id, u)| UploadSnap {
                id: *id,
                layer: u.layer.clone(),
                key: u.key.clone(),
                content_type: u.content_type.clone(),
                content_encoding: u.content_encoding.clone(),
                started_ms: u.started_ms,
                last_activity_ms: u.last_activity_ms,
                completed: matches!(u.state, UploadState::Completed),
                parts: match &u.state {
                    UploadState::Open(parts) => parts
                        .values()
                        .map(|p| PartSnap {
                            number: p.number,
                            id: p.id,
                            size: p.size,
                            crc32c: p.crc32c,
                            time_ms: p.time_ms,
                            pieces: p.pieces.clone(),
                        })
                        .collect(),
                    UploadState::Completed => Vec::new(),
                },
            })
            .collect();
        uploads.sort_by_key(|u| u.id);
        let mut layers = Vec::new();
        let mut objects = Vec::new();
        for (id, l) in &self.layers {
            layers.push((
                id.clone(),
                l.content_type.clone(),
                l.content_encoding.clone(),
            ));
            for o in l.objects.values() {
                objects.push((id.clone(), ObjectSnap::from(&**o)));
            }
        }
        Snapshot {
            max_id: self.max_id,
            layers,
            extents,
            uploads,
            objects,
        }
    }

    /// Rebuilds an index from a snapshot, recounting references; `Corrupt`
    /// if it is inconsistent.
    pub fn restore(snap: &Snapshot) -> Result<Index> {
        let mut ix = Index {
            max_id: snap.max_id,
            ..Index::default()
        };
        // What no sequence of records could build is corrupt too: names and
        // part numbers the SPEC forbids, a part number listed twice.
        let rule = |r: Result<()>| r.map_err(|e| corrupt!("snapshot breaks a rule: {e}"));
        for (id, ct, ce) in &snap.layers {
            rule(spec::validate_layer_id(id))?;
            if ix.layers.contains_key(id) {
                return Err(corrupt!("snapshot lists layer \"{id}\" twice"));
            }
            ix.layers.insert(
                id.clone(),
                Layer {
                    content_type: ct.clone(),
                    content_encoding: ce.clone(),
                    objects: BTreeMap::new(),
                },
            );
        }
        for e in &snap.extents {
            ix.check_pieces(Some(e), &[], 0)?;
            ix.define(e.clone());
        }
        let check = |ix: &Index, pieces: &[Piece], size: u64| -> Result<()> {
            ix.check_pieces(None, pieces, size)
        };
        for u in &snap.uploads {
            if !ix.layers.contains_key(&u.layer) || ix.uploads.contains_key(&u.id) {
                return Err(corrupt!(
                    "snapshot upload {} is in unknown layer \"{}\" or listed twice",
                    upload_name(&u.id),
                    u.layer
                ));
            }
            rule(spec::validate_key(&u.key))?;
            let state = if u.completed {
                if !u.parts.is_empty() {
                    return Err(corrupt!(
                        "snapshot upload {} is completed but lists parts",
                        upload_name(&u.id)
                    ));
                }
                UploadState::Completed
            } else {
                let mut parts = BTreeMap::new();
                for p in &u.parts {
                    rule(spec::validate_part_number(p.number))?;
                    if p.size > spec::MAX_PART_SIZE || parts.contains_key(&p.number) {
                        return Err(corrupt!(
                            "snapshot upload {} part {}: over the size limit or listed twice",
                            upload_name(&u.id),
                            p.number
                        ));
                    }
                    check(&ix, &p.pieces, p.size)?;
                    ix.retain(&p.pieces);
                    parts.insert(
                        p.number,
                        Part {
                            number: p.number,
                            id: p.id,
                            size: p.size,
                            crc32c: p.crc32c,
                            pieces: p.pieces.clone(),
                            time_ms: p.time_ms,
                        },
                    );
                }
                UploadState::Open(parts)
            };
            ix.uploads.insert(
                u.id,
                Upload {
                    layer: u.layer.clone(),
                    key: u.key.clone(),
                    content_type: u.content_type.clone(),
                    content_encoding: u.content_encoding.clone(),
                    started_ms: u.started_ms,
                    last_activity_ms: u.last_activity_ms,
                    state,
                },
            );
        }
        for (layer, o) in &snap.objects {
            rule(spec::validate_key(&o.key))?;
            check(&ix, &o.pieces, o.size)?;
            ix.retain(&o.pieces);
            let object = Object::from(o);
            let l = ix
                .layers
                .get_mut(layer)
                .ok_or_else(|| corrupt!("snapshot object in unknown layer \"{layer}\""))?;
            if l.objects.insert(o.key.clone(), Arc::new(object)).is_some() {
                return Err(corrupt!("snapshot lists key \"{}\" twice", o.key));
            }
        }
        if let Some((id, _)) = ix.extents.iter().find(|(_, e)| e.refs == 0) {
            return Err(corrupt!("snapshot extent {id} is referenced by nothing"));
        }
        Ok(ix)
    }

    fn check_pieces(&self, new: Option<&ExtentDef>, pieces: &[Piece], size: u64) -> Result<()> {
        if let Some(e) = new {
            if self.extents.contains_key(&e.id) {
                return Err(corrupt!("extent {} is defined twice", e.id));
            }
            if e.block_crcs.len() as u64 != e.len.div_ceil(spec::BLOCK_SIZE) {
                return Err(corrupt!(
                    "extent {} of {} bytes has {} block CRCs",
                    e.id,
                    e.len,
                    e.block_crcs.len()
                ));
            }
        }
        let mut total: u64 = 0;
        for p in pieces {
            let len = match new {
                Some(e) if e.id == p.extent => e.len,
                _ => match self.extents.get(&p.extent) {
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
            } => {
                self.layers.insert(
                    layer,
                    Layer {
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
            } => {
                self.uploads.insert(
                    upload,
                    Upload {
                        layer,
                        key,
                        content_type,
                        content_encoding,
                        started_ms: time_ms,
                        last_activity_ms: time_ms,
                        state: UploadState::Open(BTreeMap::new()),
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
                self.bump(part_id);
                let new_id = new_extent.as_ref().map(|e| e.id);
                if let Some(e) = new_extent {
                    self.define(e);
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
                };
                let old = match self.uploads.get_mut(&upload) {
                    Some(u) => {
                        u.last_activity_ms = u.last_activity_ms.max(time_ms);
                        match &mut u.state {
                            UploadState::Open(parts) => parts.insert(number, part),
                            UploadState::Completed => None,
                        }
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
                let Some(u) = self.uploads.get_mut(&upload) else {
                    return;
                };
                let UploadState::Open(current) =
                    std::mem::replace(&mut u.state, UploadState::Completed)
                else {
                    return;
                };
                u.last_activity_ms = u.last_activity_ms.max(time_ms);
                let (key, content_type, content_encoding) = (
                    u.key.clone(),
                    u.content_type.clone(),
                    u.content_encoding.clone(),
                );
                let mut numbers: Vec<u32> = chosen.iter().map(|(n, _)| *n).collect();
                numbers.sort_unstable();
                let mut pieces: Vec<Piece> = Vec::new();
                let (mut size, mut crc) = (0u64, 0u32);
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
                    key: key.clone(),
                    size,
                    content_type,
                    content_encoding,
                    last_modified_ms: time_ms,
                    crc32c: crc,
                    etag: etag(crc, etag_seq),
                    part_count: numbers.len() as u32,
                    pieces: Arc::new(pieces),
                };
                self.retain(&object.pieces);
                for p in current.values() {
                    self.release(&p.pieces);
                }
                self.publish(&layer, object);
            }
            Meta::UploadAborted { upload, .. } => {
                if let Some(u) = self.uploads.remove(&upload) {
                    if let UploadState::Open(parts) = u.state {
                        for p in parts.values() {
                            self.release(&p.pieces);
                        }
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
            } => {
                self.bump(etag_seq);
                let mut pieces = Vec::new();
                if let Some(e) = new_extent {
                    pieces.push(Piece {
                        extent: e.id,
                        offset: 0,
                        len: e.len,
                    });
                    self.define(e);
                }
                self.retain(&pieces);
                let object = Object {
                    key,
                    size,
                    content_type,
                    content_encoding,
                    last_modified_ms: time_ms,
                    crc32c,
                    etag: etag(crc32c, etag_seq),
                    part_count: 1,
                    pieces: Arc::new(pieces),
                };
                self.publish(&layer, object);
            }
            Meta::ObjectDeleted { layer, key } => {
                let old = self
                    .layers
                    .get_mut(&layer)
                    .and_then(|l| l.objects.remove(&key));
                if let Some(old) = old {
                    self.release(&old.pieces);
                }
            }
            Meta::ObjectCopied {
                layer,
                src,
                dst,
                time_ms,
            } => {
                let Some(src) = self
                    .layers
                    .get(&layer)
                    .and_then(|l| l.objects.get(&src))
                    .cloned()
                else {
                    return;
                };
                let object = Object {
                    key: dst,
                    last_modified_ms: time_ms,
                    ..(*src).clone()
                };
                self.retain(&object.pieces);
                self.publish(&layer, object);
            }
            Meta::ExtentsMoved { moves } => {
                for m in moves {
                    if let Some(e) = self.extents.get_mut(&m.extent) {
                        let (old_seg, len) = (e.segment, e.len);
                        e.segment = m.segment;
                        e.offset = m.offset;
                        sub_live(&mut self.live_by_segment, old_seg, len);
                        *self.live_by_segment.entry(m.segment).or_default() += len;
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

    fn bump(&mut self, id: u64) {
        self.max_id = self.max_id.max(id);
    }

    fn define(&mut self, e: ExtentDef) {
        self.bump(e.id);
        self.extents.insert(
            e.id,
            Extent {
                segment: e.segment,
                offset: e.offset,
                len: e.len,
                block_crcs: e.block_crcs.into(),
                refs: 0,
            },
        );
    }

    fn retain(&mut self, pieces: &[Piece]) {
        for p in pieces {
            if let Some(e) = self.extents.get_mut(&p.extent) {
                if e.refs == 0 {
                    *self.live_by_segment.entry(e.segment).or_default() += e.len;
                }
                e.refs += 1;
            }
        }
    }

    fn release(&mut self, pieces: &[Piece]) {
        for p in pieces {
            let dead = match self.extents.get_mut(&p.extent) {
                Some(e) => {
                    e.refs = e.refs.saturating_sub(1);
                    (e.refs == 0).then_some((e.segment, e.len))
                }
                None => None,
            };
            if let Some((seg, len)) = dead {
                self.extents.remove(&p.extent);
                sub_live(&mut self.live_by_segment, seg, len);
            }
        }
    }

    /// Drops a just-defined extent that its record did not reference.
    fn sweep(&mut self, id: Option<u64>) {
        if let Some(id) = id {
            if self.extents.get(&id).is_some_and(|e| e.refs == 0) {
                self.extents.remove(&id);
            }
        }
    }

    fn publish(&mut self, layer: &str, object: Object) {
        let old = self
            .layers
            .get_mut(layer)
            .and_then(|l| l.objects.insert(object.key.clone(), Arc::new(object)));
        if let Some(old) = old {
            self.release(&old.pieces);
        }
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

/// A layer's content type and encoding, when set, bind every upload into it.
fn check_binding(
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
fn check_completion(current: &BTreeMap<u32, Part>, chosen: &[(u32, u64)]) -> Result<()> {
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
