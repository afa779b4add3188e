//! Shared by the fuzz targets: the SPEC's name rules written plainly, an
//! operation language for the part index, a deliberately simple model of
//! it (`BTreeMap`s), and a driver that applies each operation to both and
//! checks they agree after every step.
//!
//! The index is driven the way `Store` drives it: every operation becomes a
//! `Meta` record; `Index::validate` must accept exactly the records the
//! model accepts (and fail with the kind it predicts), and
//! `Index::apply_validated` must leave the same visible state.

use std::collections::{BTreeMap, BTreeSet};

use arbitrary::{Arbitrary, Unstructured};
use partstore::internals::{Cursor, Entry, ExtentDef, ExtentMove, Index, Meta, Piece, UploadState};
use partstore::{ErrorKind, KeyRules};

pub const MIB: u64 = 1 << 20;
const MAX_PART: u64 = 96 * MIB;
const MAX_PUT: u64 = 192 * MIB;
const MIN_PART: u64 = 5 * MIB;
const MAX_OBJECT: u64 = 500 << 30;

// ----- the SPEC's name rules, written plainly ------------------------------

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

// ----- the operation language ----------------------------------------------

/// One operation on the index, as the store would issue it. Fields are small
/// selectors into fixed tables or the current state, so that short inputs
/// reach deep states. Every field is a plain integer: `Op::encode` writes
/// the bytes `Arbitrary` reads back (hand-made seeds use it).
#[derive(Arbitrary, Debug, Clone, PartialEq, Eq)]
pub enum Op {
    CreateLayer {
        layer: u8,
        ct: u8,
        ce: u8,
    },
    Start {
        layer: u8,
        key: u8,
        ct: u8,
        ce: u8,
        reuse: u8,
    },
    /// Part n becomes a freshly written extent (one piece covering it).
    SetPart {
        layer: u8,
        upload: u8,
        number: u8,
        size: u8,
        crc: u16,
        bad: u8,
    },
    /// Part n becomes an empty body (no extent).
    EmptyPart {
        layer: u8,
        upload: u8,
        number: u8,
    },
    /// Part n references a range of an existing object's extents.
    CopyPart {
        layer: u8,
        upload: u8,
        number: u8,
        src: u8,
        first: u8,
        len: u32,
        bad: u8,
    },
    Complete {
        layer: u8,
        upload: u8,
    },
    CompleteWith {
        layer: u8,
        upload: u8,
        mask: u16,
        rotate: u8,
        tweak: u8,
    },
    Abort {
        layer: u8,
        upload: u8,
    },
    Expire {
        idle: u16,
    },
    Put {
        layer: u8,
        key: u8,
        size: u8,
        ct: u8,
        ce: u8,
        bad: u8,
    },
    Delete {
        layer: u8,
        key: u8,
    },
    CopyObject {
        layer: u8,
        src: u8,
        dst: u8,
    },
    /// Compaction moving an extent.
    Move {
        extent: u8,
        segment: u8,
    },
    Tick {
        delta: u16,
    },
    /// Compaction's snapshot record.
    Snapshot,
}

/// The `u32` that makes the derived `Arbitrary` pick variant `i` of `n`.
fn variant(i: u64, n: u64) -> [u8; 4] {
    (i << 32).div_ceil(n).to_le_bytes()[..4]
        .try_into()
        .unwrap_or([0; 4])
}

impl Op {
    /// Bytes that `Op::arbitrary` decodes into this operation.
    pub fn encode(&self) -> Vec<u8> {
        const N: u64 = 15;
        let mut v = Vec::new();
        let mut tag = |i: u64, fields: &[&[u8]]| {
            v.extend_from_slice(&variant(i, N));
            for f in fields {
                v.extend_from_slice(f);
            }
        };
        match *self {
            Op::CreateLayer { layer, ct, ce } => tag(0, &[&[layer, ct, ce]]),
            Op::Start {
                layer,
                key,
                ct,
                ce,
                reuse,
            } => tag(1, &[&[layer, key, ct, ce, reuse]]),
            Op::SetPart {
                layer,
                upload,
                number,
                size,
                crc,
                bad,
            } => tag(
                2,
                &[&[layer, upload, number, size], &crc.to_le_bytes(), &[bad]],
            ),
            Op::EmptyPart {
                layer,
                upload,
                number,
            } => tag(3, &[&[layer, upload, number]]),
            Op::CopyPart {
                layer,
                upload,
                number,
                src,
                first,
                len,
                bad,
            } => tag(
                4,
                &[
                    &[layer, upload, number, src, first],
                    &len.to_le_bytes(),
                    &[bad],
                ],
            ),
            Op::Complete { layer, upload } => tag(5, &[&[layer, upload]]),
            Op::CompleteWith {
                layer,
                upload,
                mask,
                rotate,
                tweak,
            } => tag(
                6,
                &[&[layer, upload], &mask.to_le_bytes(), &[rotate, tweak]],
            ),
            Op::Abort { layer, upload } => tag(7, &[&[layer, upload]]),
            Op::Expire { idle } => tag(8, &[&idle.to_le_bytes()]),
            Op::Put {
                layer,
                key,
                size,
                ct,
                ce,
                bad,
            } => tag(9, &[&[layer, key, size, ct, ce, bad]]),
            Op::Delete { layer, key } => tag(10, &[&[layer, key]]),
            Op::CopyObject { layer, src, dst } => tag(11, &[&[layer, src, dst]]),
            Op::Move { extent, segment } => tag(12, &[&[extent, segment]]),
            Op::Tick { delta } => tag(13, &[&delta.to_le_bytes()]),
            Op::Snapshot => tag(14, &[]),
        }
        v
    }
}

/// At most this many operations per input: long enough for every state,
/// short enough that each execution stays fast.
pub const MAX_OPS: usize = 256;

/// Decodes an input into operations until it runs out.
pub fn parse_ops(data: &[u8]) -> Vec<Op> {
    let mut u = Unstructured::new(data);
    let mut ops = Vec::new();
    while !u.is_empty() && ops.len() < MAX_OPS {
        match Op::arbitrary(&mut u) {
            Ok(op) => ops.push(op),
            Err(_) => break,
        }
    }
    ops
}

// ----- fixed tables ---------------------------------------------------------

/// Valid layer ids first; then ones that break the rules.
fn layer_name(sel: u8) -> String {
    const VALID: [&str; 3] = ["a", "b", "c"];
    if sel < 232 {
        return VALID[sel as usize % 3].to_string();
    }
    match sel % 4 {
        0 => String::new(),
        1 => "bad/layer".to_string(),
        2 => "x".repeat(51),
        _ => "never-created".to_string(),
    }
}

const VALID_KEYS: [&str; 9] = ["k", "a/b", "a/c", "a/b/c", "a.b", "a", "z/z/z", "a0", "b"];
const BAD_KEYS: [&str; 6] = ["", "/x", "x/", "a//b", "é", "sp ace"];

fn key_name(sel: u8) -> String {
    if sel < 236 {
        return VALID_KEYS[sel as usize % VALID_KEYS.len()].to_string();
    }
    match sel % 7 {
        6 => "y".repeat(451),
        i => BAD_KEYS[i as usize % BAD_KEYS.len()].to_string(),
    }
}

fn layer_type(sel: u8) -> Option<String> {
    [
        None,
        Some("text/plain"),
        Some("TEXT/Plain"),
        Some("application/octet-stream"),
    ][sel as usize % 4]
        .map(String::from)
}

fn layer_encoding(sel: u8) -> Option<String> {
    [None, None, Some("gzip"), Some("GZIP"), Some("br")][sel as usize % 5].map(String::from)
}

fn upload_type(sel: u8) -> String {
    [
        "application/octet-stream",
        "text/plain",
        "TEXT/PLAIN",
        "image/png",
    ][sel as usize % 4]
        .to_string()
}

fn upload_encoding(sel: u8) -> Option<String> {
    [None, Some("gzip"), Some("Gzip"), Some("br")][sel as usize % 4].map(String::from)
}

/// Part numbers: mostly small, sometimes at or past the limits.
fn part_number(sel: u8) -> u32 {
    match sel {
        0 => 0,
        1..=24 => u32::from(sel),
        250 => 9_999,
        251 => 10_000,
        252 => 10_001,
        253 => u32::MAX,
        _ => u32::from(sel % 6) + 1,
    }
}

/// Body sizes: 5..=8 MiB (valid non-last parts) most often, then small,
/// odd and limit-crossing ones.
fn body_size(sel: u8) -> u64 {
    let k = u64::from(sel / 8);
    match sel % 8 {
        0..=3 => (5 + k % 4) * MIB,
        4 => 1 + k * 37,
        5 => (1 + k % 4) * MIB,
        6 => 5 * MIB + 1 + k,
        _ => [MAX_PART, MAX_PART + 1, MAX_PUT, MAX_PUT + 1][k as usize % 4],
    }
}

fn block_crcs(id: u64, len: u64) -> Vec<u32> {
    (0..len.div_ceil(MIB))
        .map(|b| (id as u32).rotate_left(7) ^ b as u32)
        .collect()
}

fn upload_id(n: u64) -> [u8; 16] {
    let mut id = [0x5a; 16];
    id[..8].copy_from_slice(&n.to_le_bytes());
    id
}

/// An upload id no record ever names.
const UNKNOWN_UPLOAD: [u8; 16] = [0xee; 16];

// ----- the model ------------------------------------------------------------

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

/// Media types compare case-insensitively (ASCII), as the SPEC says.
fn same_media(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .all(|(x, y)| x.to_ascii_lowercase() == y.to_ascii_lowercase())
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

    fn layer(&self, layer: &str) -> Result<&MLayer, ErrorKind> {
        if !layer_ok(layer) {
            return Err(ErrorKind::BadRequest);
        }
        self.layers.get(layer).ok_or(ErrorKind::NotFound)
    }

    fn open_upload(&self, layer: &str, id: &[u8; 16]) -> Result<&BTreeMap<u32, MPart>, ErrorKind> {
        self.layer(layer)?;
        match self.uploads.get(id) {
            Some(u) if u.layer == layer => u.parts.as_ref().ok_or(ErrorKind::BadRequest),
            _ => Err(ErrorKind::NotFound),
        }
    }

    fn binding(l: &MLayer, ct: &str, ce: Option<&str>) -> Check {
        if l.content_type
            .as_deref()
            .is_some_and(|t| !same_media(t, ct))
        {
            return Err(ErrorKind::BadRequest);
        }
        if let Some(want) = &l.content_encoding {
            if !ce.is_some_and(|e| same_media(want, e)) {
                return Err(ErrorKind::BadRequest);
            }
        }
        Ok(())
    }

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
                if self.uploads.contains_key(upload) {
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
                let current = self.open_upload(layer, upload)?;
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
                self.open_upload(layer, upload).map(|_| ())
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
            Meta::ExtentsMoved { moves } => {
                let live = self.live();
                if moves.iter().all(|m| live.contains_key(&m.extent)) {
                    Ok(())
                } else {
                    Err(ErrorKind::Corrupt)
                }
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
            Meta::LayerDeleted { layer } => {
                self.layers.remove(&layer);
                self.uploads.retain(|_, u| u.layer != layer);
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
            Meta::Snapshot(_) | Meta::Mark => {}
        }
    }
}

// ----- checks ---------------------------------------------------------------

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
        for (k, o) in &l.objects {
            assert_eq!(&o.key, k);
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
        for (_, u, _) in index.open_uploads(id).expect("layer exists") {
            uploads += 1;
            if let UploadState::Open(parts) = &u.state {
                for (n, p) in parts {
                    assert_eq!(*n, p.number);
                    count(&p.pieces);
                }
            }
        }
    }
    let mut by_segment: BTreeMap<u64, u64> = BTreeMap::new();
    let mut live = 0u64;
    for (id, e) in index.extents() {
        assert_eq!(Some(&e.refs), refs.get(id), "extent {id}: refs");
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

// ----- the driver -----------------------------------------------------------

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

    /// Runs one operation: builds its record(s) and steps both sides.
    pub fn run(&mut self, op: &Op) {
        let now = self.clock;
        match *op {
            Op::CreateLayer { layer, ct, ce } => self.step(Meta::LayerCreated {
                layer: layer_name(layer),
                content_type: layer_type(ct),
                content_encoding: layer_encoding(ce),
                key_rules: KeyRules::Here,
                time_ms: 0,
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
                    layer: layer_name(layer),
                    upload,
                    key: key_name(key),
                    content_type: upload_type(ct),
                    content_encoding: upload_encoding(ce),
                    time_ms: now,
                    metadata: Vec::new(),
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
                let len = body_size(size);
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
                    layer,
                    upload,
                    number: part_number(number),
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
                    digest: None,
                })
            }
            Op::EmptyPart {
                layer,
                upload,
                number,
            } => {
                let upload = self.upload(upload);
                let layer = self.upload_layer(layer, &upload);
                let part_id = self.fresh();
                self.step(Meta::PartSet {
                    layer,
                    upload,
                    number: part_number(number),
                    part_id,
                    new_extent: None,
                    pieces: Vec::new(),
                    size: 0,
                    crc32c: 0,
                    time_ms: now,
                    digest: None,
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
                // The source: an object of that layer (the store checks the
                // range against it before it makes a record).
                let Some(objects) = self.model.layers.get(&layer).map(|l| &l.objects) else {
                    return;
                };
                let Some((_, obj)) = objects.iter().nth(src as usize % objects.len().max(1)) else {
                    return;
                };
                if obj.size == 0 {
                    return;
                }
                let start = u64::from(first) % obj.size.div_ceil(MIB) * MIB;
                let avail = obj.size - start;
                let want = if len % 4 == 0 {
                    avail
                } else {
                    1 + u64::from(len / 4) % avail
                };
                let end = start + want;
                let mut pieces = Vec::new();
                let mut pos = 0;
                for p in &obj.pieces {
                    let (a, b) = (pos, pos + p.len);
                    pos = b;
                    if b <= start || a >= end {
                        continue;
                    }
                    let from = start.max(a) - a;
                    let to = end.min(b) - a;
                    pieces.push(Piece {
                        extent: p.extent,
                        offset: p.offset + from,
                        len: to - from,
                    });
                }
                let mut size = want;
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
                    layer,
                    upload,
                    number: part_number(number),
                    part_id,
                    new_extent: None,
                    pieces,
                    size,
                    crc32c: len.rotate_left(13),
                    time_ms: now,
                    digest: None,
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
                let len = if size == 0 { 0 } else { body_size(size) };
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
                    layer: layer_name(layer),
                    key: key_name(key),
                    new_extent: e,
                    size,
                    crc32c: if size == 0 {
                        0
                    } else {
                        u32::from(ct) << 8 | u32::from(size as u8)
                    },
                    content_type: upload_type(ct),
                    content_encoding: upload_encoding(ce),
                    etag_seq,
                    time_ms: now,
                    metadata: Vec::new(),
                    digest: None,
                })
            }
            Op::Delete { layer, key } => self.step(Meta::ObjectDeleted {
                layer: layer_name(layer),
                key: key_name(key),
            }),
            Op::CopyObject { layer, src, dst } => self.step(Meta::ObjectCopied {
                layer: layer_name(layer),
                src: key_name(src),
                dst: key_name(dst),
                time_ms: now,
                metadata: None,
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
                self.step(Meta::Snapshot(Box::new(self.index.snapshot())));
                assert!(self.index == before, "a snapshot record changed the index");
            }
        }
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
            let keys: Vec<&String> = l.objects.keys().collect();
            assert_eq!(
                keys,
                ml.objects.keys().collect::<Vec<_>>(),
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
                let got = index.upload(layer, upload);
                match m.filter(|u| &u.layer == layer) {
                    None => assert_eq!(
                        got.map(|_| ()).map_err(|e| e.kind()),
                        Err(ErrorKind::NotFound)
                    ),
                    Some(m) => {
                        let u = got.expect("upload");
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
                        match (&u.state, &m.parts) {
                            (UploadState::Completed, None) => {
                                let e = index.open_upload(layer, upload).expect_err("completed");
                                assert_eq!(e.kind(), ErrorKind::BadRequest);
                            }
                            (UploadState::Open(parts), Some(mp)) => {
                                let got: Vec<_> = parts
                                    .iter()
                                    .map(|(n, p)| {
                                        (*n, p.id, p.size, p.crc32c, p.time_ms, p.pieces.clone())
                                    })
                                    .collect();
                                let want: Vec<_> = mp
                                    .iter()
                                    .map(|(n, p)| {
                                        (*n, p.id, p.size, p.crc, p.time, p.pieces.clone())
                                    })
                                    .collect();
                                assert_eq!(got, want, "parts of {upload:x?}");
                            }
                            (s, p) => panic!("upload {upload:x?}: index {s:?}, model {p:?}"),
                        }
                    }
                }
            }
        }
        for layer in model.layers.keys() {
            let got: BTreeSet<[u8; 16]> = index
                .open_uploads(layer)
                .expect("layer")
                .into_iter()
                .map(|(id, _, _)| *id)
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
        let got: BTreeMap<u64, u64> = index.extents().map(|(id, e)| (*id, e.refs)).collect();
        assert_eq!(got, live, "extent table (id -> refs)");
        for id in live.keys() {
            let e = index.extent(*id).expect("live extent");
            let d = &model.defs[id];
            assert_eq!(
                (e.segment, e.offset, e.len, &e.block_crcs[..]),
                (d.segment, d.offset, d.len, &d.block_crcs[..])
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
