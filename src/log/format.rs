//! The on-disk format: segment file header, record framing and metadata
//! record payloads. Everything here is pure encoding and decoding; see
//! `docs/FORMAT.md` for the same layout in prose.
//!
//! ```text
//! segment file header (32 bytes, at offset 0)
//!   0  magic           8  b"PARTSTOR"
//!   8  format_version  4  u32 LE = FORMAT_VERSION
//!  12  reserved        4  zero
//!  16  segment_id      8  u64 LE
//!  24  reserved        4  zero
//!  28  header_crc      4  u32 LE, CRC32C of bytes 0..28
//!
//! record (at an 8-byte aligned offset >= 32)
//!   0  magic           4  b"PSR1" (the '1' is the record format version)
//!   4  kind            1  RecordKind
//!   5  reserved        3  zero
//!   8  len             8  u64 LE, payload length
//!  16  payload_crc     4  u32 LE, CRC32C of the payload (0 for extents,
//!                         whose blocks are covered by the committing record)
//!  20  header_crc      4  u32 LE, CRC32C of bytes 0..20
//!  24  payload         len bytes, then zero padding to a multiple of 8
//! ```
//! A header of 24 zero bytes marks the end of a segment's records (segments
//! are preallocated, so the unwritten rest reads as zeros).

// Internal module; exposed undocumented only to fuzz targets (feature `fuzzing`).
#![cfg_attr(feature = "fuzzing", allow(missing_docs))]

use crate::error::{corrupt, Result};

/// Magic at the start of every segment file.
pub const SEGMENT_MAGIC: [u8; 8] = *b"PARTSTOR";
/// On-disk format version, in every segment header.
pub const FORMAT_VERSION: u32 = 1;
/// Length of the segment file header.
pub const SEGMENT_HEADER_LEN: u64 = 32;
/// Magic at the start of every record; the last byte is the record version.
pub const RECORD_MAGIC: [u8; 4] = *b"PSR1";
/// Length of a record header.
pub const RECORD_HEADER_LEN: u64 = 24;
/// Records start at multiples of this.
pub const RECORD_ALIGN: u64 = 8;

/// Total bytes a record with a payload of `len` bytes occupies. Saturates
/// at `u64::MAX` (a damaged length field must not wrap to a short record).
pub fn framed_len(len: u64) -> u64 {
    len.div_ceil(RECORD_ALIGN)
        .saturating_mul(RECORD_ALIGN)
        .saturating_add(RECORD_HEADER_LEN)
}

/// Kinds of record. Values are part of the format: never reuse one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum RecordKind {
    /// A data region: the bytes of one extent. Only live once a metadata
    /// record commits it with its block CRCs.
    Extent = 1,
    /// A metadata record ([`Meta`]).
    Meta = 2,
}

impl RecordKind {
    fn from_u8(b: u8) -> Option<RecordKind> {
        match b {
            1 => Some(RecordKind::Extent),
            2 => Some(RecordKind::Meta),
            _ => None,
        }
    }
}

/// A decoded record header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordHeader {
    pub kind: RecordKind,
    pub len: u64,
    pub payload_crc: u32,
}

impl RecordHeader {
    pub fn encode(&self) -> [u8; RECORD_HEADER_LEN as usize] {
        let mut h = [0u8; RECORD_HEADER_LEN as usize];
        h[0..4].copy_from_slice(&RECORD_MAGIC);
        h[4] = self.kind as u8;
        h[8..16].copy_from_slice(&self.len.to_le_bytes());
        h[16..20].copy_from_slice(&self.payload_crc.to_le_bytes());
        let crc = crc32c::crc32c(&h[0..20]);
        h[20..24].copy_from_slice(&crc.to_le_bytes());
        h
    }

    /// Decodes a header; `None` when it is not a valid header (torn,
    /// corrupt, or not a header at all).
    pub fn decode(h: &[u8]) -> Option<RecordHeader> {
        if h.len() < RECORD_HEADER_LEN as usize || h.get(0..4)? != RECORD_MAGIC {
            return None;
        }
        let crc = u32::from_le_bytes(h.get(20..24)?.try_into().ok()?);
        if crc32c::crc32c(h.get(0..20)?) != crc || h.get(5..8)? != [0, 0, 0] {
            return None;
        }
        let kind = RecordKind::from_u8(*h.get(4)?)?;
        let len = u64::from_le_bytes(h.get(8..16)?.try_into().ok()?);
        let payload_crc = u32::from_le_bytes(h.get(16..20)?.try_into().ok()?);
        Some(RecordHeader {
            kind,
            len,
            payload_crc,
        })
    }
}

/// Encodes a segment file header.
pub fn encode_segment_header(segment_id: u64) -> [u8; SEGMENT_HEADER_LEN as usize] {
    let mut h = [0u8; SEGMENT_HEADER_LEN as usize];
    h[0..8].copy_from_slice(&SEGMENT_MAGIC);
    h[8..12].copy_from_slice(&FORMAT_VERSION.to_le_bytes());
    h[16..24].copy_from_slice(&segment_id.to_le_bytes());
    let crc = crc32c::crc32c(&h[0..28]);
    h[28..32].copy_from_slice(&crc.to_le_bytes());
    h
}

/// Checks a segment file header; returns the segment id it names.
pub fn decode_segment_header(h: &[u8], file: &str) -> Result<u64> {
    let bad = || corrupt!("segment {file}: bad file header");
    let h = h.get(0..SEGMENT_HEADER_LEN as usize).ok_or_else(bad)?;
    let crc = u32::from_le_bytes(h[28..32].try_into().map_err(|_| bad())?);
    let reserved_zero = h[12..16] == [0; 4] && h[24..28] == [0; 4];
    if h[0..8] != SEGMENT_MAGIC || crc32c::crc32c(&h[0..28]) != crc || !reserved_zero {
        return Err(bad());
    }
    let version = u32::from_le_bytes(h[8..12].try_into().map_err(|_| bad())?);
    if version != FORMAT_VERSION {
        return Err(corrupt!(
            "segment {file}: format version {version}, this build reads {FORMAT_VERSION}"
        ));
    }
    Ok(u64::from_le_bytes(h[16..24].try_into().map_err(|_| bad())?))
}

/// The payload of a metadata record as stored: `synced` (u64 LE: every
/// record header of this segment before that offset was durable when this
/// record was written), then the encoded [`Meta`]. Recovery uses `synced` to
/// tell a torn tail (records after an invalid one, none acknowledged) from
/// corruption (a record after an invalid one knew the invalid one was
/// durable).
pub fn meta_payload(synced: u64, meta: &[u8]) -> Vec<u8> {
    let mut p = Vec::with_capacity(8 + meta.len());
    p.extend_from_slice(&synced.to_le_bytes());
    p.extend_from_slice(meta);
    p
}

/// Splits a stored metadata payload into `synced` and the encoded [`Meta`].
pub fn split_meta_payload(payload: &[u8]) -> Result<(u64, &[u8])> {
    match payload.split_first_chunk::<8>() {
        Some((synced, meta)) => Ok((u64::from_le_bytes(*synced), meta)),
        None => Err(corrupt!(
            "metadata record of {} bytes is shorter than its 8-byte prefix",
            payload.len()
        )),
    }
}

/// Frames a metadata payload as a complete record, padding included.
pub fn frame_meta(payload: &[u8]) -> Vec<u8> {
    let header = RecordHeader {
        kind: RecordKind::Meta,
        len: payload.len() as u64,
        payload_crc: crc32c::crc32c(payload),
    };
    let total = framed_len(payload.len() as u64) as usize;
    let mut out = Vec::with_capacity(total);
    out.extend_from_slice(&header.encode());
    out.extend_from_slice(payload);
    out.resize(total, 0);
    out
}

/// Where an extent's bytes live and their per-block CRCs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExtentDef {
    pub id: u64,
    pub segment: u64,
    /// File offset of the first data byte (just past the record header).
    pub offset: u64,
    pub len: u64,
    pub block_crcs: Vec<u32>,
}

/// A run of bytes inside an extent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Piece {
    pub extent: u64,
    pub offset: u64,
    pub len: u64,
}

/// One extent's new location, written by compaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExtentMove {
    pub extent: u64,
    pub segment: u64,
    pub offset: u64,
}

/// A state change. Replaying every `Meta` in order rebuilds the index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Meta {
    LayerCreated {
        layer: String,
        content_type: Option<String>,
        content_encoding: Option<String>,
    },
    UploadStarted {
        layer: String,
        upload: [u8; 16],
        key: String,
        content_type: String,
        content_encoding: Option<String>,
        time_ms: u64,
    },
    /// Part `number` of an upload now is `pieces` (of which `new_extent`, if
    /// any, was just written).
    PartSet {
        layer: String,
        upload: [u8; 16],
        number: u32,
        part_id: u64,
        new_extent: Option<ExtentDef>,
        pieces: Vec<Piece>,
        size: u64,
        crc32c: u32,
        time_ms: u64,
    },
    /// The upload became an object made of exactly these (number, id) parts.
    UploadCompleted {
        layer: String,
        upload: [u8; 16],
        parts: Vec<(u32, u64)>,
        etag_seq: u64,
        time_ms: u64,
    },
    UploadAborted {
        layer: String,
        upload: [u8; 16],
        time_ms: u64,
    },
    ObjectPut {
        layer: String,
        key: String,
        new_extent: Option<ExtentDef>,
        size: u64,
        crc32c: u32,
        content_type: String,
        content_encoding: Option<String>,
        etag_seq: u64,
        time_ms: u64,
    },
    ObjectDeleted {
        layer: String,
        key: String,
    },
    ObjectCopied {
        layer: String,
        src: String,
        dst: String,
        time_ms: u64,
    },
    ExtentsMoved {
        moves: Vec<ExtentMove>,
    },
    /// The whole state, written by compaction. Replay ignores every
    /// metadata record before the last snapshot and starts from it.
    Snapshot(Box<Snapshot>),
    /// No change: written on a clean close so that its `synced` prefix
    /// records that every record before it is durable (recovery then need
    /// not check their extents).
    Mark,
}

impl Meta {
    /// The extent this record defines (a part or object just written).
    pub fn new_extent(&self) -> Option<&ExtentDef> {
        match self {
            Meta::PartSet { new_extent, .. } | Meta::ObjectPut { new_extent, .. } => {
                new_extent.as_ref()
            }
            _ => None,
        }
    }

    /// The segment of [`Meta::new_extent`].
    pub fn new_extent_segment(&self) -> Option<u64> {
        self.new_extent().map(|e| e.segment)
    }
}

/// The whole index state in one record.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Snapshot {
    pub max_id: u64,
    /// (id, content type, content encoding)
    pub layers: Vec<(String, Option<String>, Option<String>)>,
    pub extents: Vec<ExtentDef>,
    pub uploads: Vec<UploadSnap>,
    /// (layer, object)
    pub objects: Vec<(String, ObjectSnap)>,
}

/// An upload inside a [`Snapshot`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UploadSnap {
    pub id: [u8; 16],
    pub layer: String,
    pub key: String,
    pub content_type: String,
    pub content_encoding: Option<String>,
    pub started_ms: u64,
    pub last_activity_ms: u64,
    pub completed: bool,
    pub parts: Vec<PartSnap>,
}

/// A part inside a [`Snapshot`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartSnap {
    pub number: u32,
    pub id: u64,
    pub size: u64,
    pub crc32c: u32,
    pub time_ms: u64,
    pub pieces: Vec<Piece>,
}

/// An object inside a [`Snapshot`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectSnap {
    pub key: String,
    pub size: u64,
    pub content_type: String,
    pub content_encoding: Option<String>,
    pub last_modified_ms: u64,
    pub crc32c: u32,
    pub etag: String,
    pub part_count: u32,
    pub pieces: Vec<Piece>,
}

// Payload tags; part of the format.
const T_LAYER_CREATED: u8 = 1;
const T_UPLOAD_STARTED: u8 = 2;
const T_PART_SET: u8 = 3;
const T_UPLOAD_COMPLETED: u8 = 4;
const T_UPLOAD_ABORTED: u8 = 5;
const T_OBJECT_PUT: u8 = 6;
const T_OBJECT_DELETED: u8 = 7;
const T_OBJECT_COPIED: u8 = 8;
const T_EXTENTS_MOVED: u8 = 9;
const T_SNAPSHOT: u8 = 10;
const T_MARK: u8 = 11;

struct Enc(Vec<u8>);

impl Enc {
    fn u8(&mut self, v: u8) {
        self.0.push(v);
    }
    fn u32(&mut self, v: u32) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    fn u64(&mut self, v: u64) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    fn bytes16(&mut self, v: &[u8; 16]) {
        self.0.extend_from_slice(v);
    }
    fn str(&mut self, s: &str) {
        self.u32(s.len() as u32);
        self.0.extend_from_slice(s.as_bytes());
    }
    fn opt_str(&mut self, s: &Option<String>) {
        match s {
            None => self.u8(0),
            Some(s) => {
                self.u8(1);
                self.str(s);
            }
        }
    }
    fn extent(&mut self, e: &Option<ExtentDef>) {
        match e {
            None => self.u8(0),
            Some(e) => {
                self.u8(1);
                self.extent_def(e);
            }
        }
    }
    fn extent_def(&mut self, e: &ExtentDef) {
        self.u64(e.id);
        self.u64(e.segment);
        self.u64(e.offset);
        self.u64(e.len);
        self.u32(e.block_crcs.len() as u32);
        for c in &e.block_crcs {
            self.u32(*c);
        }
    }
    fn pieces(&mut self, pieces: &[Piece]) {
        self.u32(pieces.len() as u32);
        for p in pieces {
            self.u64(p.extent);
            self.u64(p.offset);
            self.u64(p.len);
        }
    }
    fn snapshot(&mut self, s: &Snapshot) {
        self.u64(s.max_id);
        self.u32(s.layers.len() as u32);
        for (id, ct, ce) in &s.layers {
            self.str(id);
            self.opt_str(ct);
            self.opt_str(ce);
        }
        self.u32(s.extents.len() as u32);
        for e in &s.extents {
            self.extent_def(e);
        }
        self.u32(s.uploads.len() as u32);
        for u in &s.uploads {
            self.bytes16(&u.id);
            self.str(&u.layer);
            self.str(&u.key);
            self.str(&u.content_type);
            self.opt_str(&u.content_encoding);
            self.u64(u.started_ms);
            self.u64(u.last_activity_ms);
            self.u8(u.completed as u8);
            self.u32(u.parts.len() as u32);
            for p in &u.parts {
                self.u32(p.number);
                self.u64(p.id);
                self.u64(p.size);
                self.u32(p.crc32c);
                self.u64(p.time_ms);
                self.pieces(&p.pieces);
            }
        }
        self.u32(s.objects.len() as u32);
        for (layer, o) in &s.objects {
            self.str(layer);
            self.str(&o.key);
            self.u64(o.size);
            self.str(&o.content_type);
            self.opt_str(&o.content_encoding);
            self.u64(o.last_modified_ms);
            self.u32(o.crc32c);
            self.str(&o.etag);
            self.u32(o.part_count);
            self.pieces(&o.pieces);
        }
    }
}

struct Dec<'a>(&'a [u8]);

impl<'a> Dec<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        if self.0.len() < n {
            return Err(corrupt!(
                "record payload ends early: need {n} bytes, {} left",
                self.0.len()
            ));
        }
        let (a, b) = self.0.split_at(n);
        self.0 = b;
        Ok(a)
    }
    fn u8(&mut self) -> Result<u8> {
        Ok(self.take(1)?[0])
    }
    fn u32(&mut self) -> Result<u32> {
        let b = self.take(4)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }
    fn u64(&mut self) -> Result<u64> {
        let mut a = [0u8; 8];
        a.copy_from_slice(self.take(8)?);
        Ok(u64::from_le_bytes(a))
    }
    fn bytes16(&mut self) -> Result<[u8; 16]> {
        let mut a = [0u8; 16];
        a.copy_from_slice(self.take(16)?);
        Ok(a)
    }
    fn str(&mut self) -> Result<String> {
        let n = self.u32()? as usize;
        let b = self.take(n)?;
        String::from_utf8(b.to_vec()).map_err(|_| corrupt!("record string is not UTF-8"))
    }
    fn opt_str(&mut self) -> Result<Option<String>> {
        match self.u8()? {
            0 => Ok(None),
            1 => Ok(Some(self.str()?)),
            t => Err(corrupt!("bad option tag {t} in record")),
        }
    }
    /// A count of items each at least `min_size` bytes: bounded by what is
    /// left, so a corrupt count cannot make us allocate more than the input.
    fn count(&mut self, min_size: usize) -> Result<usize> {
        let n = self.u32()? as usize;
        if n.saturating_mul(min_size) > self.0.len() {
            return Err(corrupt!(
                "record count {n} exceeds the {} bytes left",
                self.0.len()
            ));
        }
        Ok(n)
    }
    fn extent(&mut self) -> Result<Option<ExtentDef>> {
        match self.u8()? {
            0 => Ok(None),
            1 => Ok(Some(self.extent_def()?)),
            t => Err(corrupt!("bad extent tag {t} in record")),
        }
    }
    fn extent_def(&mut self) -> Result<ExtentDef> {
        let id = self.u64()?;
        let segment = self.u64()?;
        let offset = self.u64()?;
        let len = self.u64()?;
        let n = self.count(4)?;
        let mut block_crcs = Vec::with_capacity(n);
        for _ in 0..n {
            block_crcs.push(self.u32()?);
        }
        Ok(ExtentDef {
            id,
            segment,
            offset,
            len,
            block_crcs,
        })
    }
    fn pieces(&mut self) -> Result<Vec<Piece>> {
        let n = self.count(24)?;
        let mut pieces = Vec::with_capacity(n);
        for _ in 0..n {
            pieces.push(Piece {
                extent: self.u64()?,
                offset: self.u64()?,
                len: self.u64()?,
            });
        }
        Ok(pieces)
    }
    fn snapshot(&mut self) -> Result<Snapshot> {
        let max_id = self.u64()?;
        let n = self.count(6)?;
        let mut layers = Vec::with_capacity(n);
        for _ in 0..n {
            layers.push((self.str()?, self.opt_str()?, self.opt_str()?));
        }
        let n = self.count(36)?;
        let mut extents = Vec::with_capacity(n);
        for _ in 0..n {
            extents.push(self.extent_def()?);
        }
        let n = self.count(50)?;
        let mut uploads = Vec::with_capacity(n);
        for _ in 0..n {
            let id = self.bytes16()?;
            let layer = self.str()?;
            let key = self.str()?;
            let content_type = self.str()?;
            let content_encoding = self.opt_str()?;
            let started_ms = self.u64()?;
            let last_activity_ms = self.u64()?;
            let completed = match self.u8()? {
                0 => false,
                1 => true,
                t => return Err(corrupt!("bad completed flag {t} in snapshot")),
            };
            let np = self.count(32)?;
            let mut parts = Vec::with_capacity(np);
            for _ in 0..np {
                parts.push(PartSnap {
                    number: self.u32()?,
                    id: self.u64()?,
                    size: self.u64()?,
                    crc32c: self.u32()?,
                    time_ms: self.u64()?,
                    pieces: self.pieces()?,
                });
            }
            uploads.push(UploadSnap {
                id,
                layer,
                key,
                content_type,
                content_encoding,
                started_ms,
                last_activity_ms,
                completed,
                parts,
            });
        }
        let n = self.count(45)?;
        let mut objects = Vec::with_capacity(n);
        for _ in 0..n {
            let layer = self.str()?;
            objects.push((
                layer,
                ObjectSnap {
                    key: self.str()?,
                    size: self.u64()?,
                    content_type: self.str()?,
                    content_encoding: self.opt_str()?,
                    last_modified_ms: self.u64()?,
                    crc32c: self.u32()?,
                    etag: self.str()?,
                    part_count: self.u32()?,
                    pieces: self.pieces()?,
                },
            ));
        }
        Ok(Snapshot {
            max_id,
            layers,
            extents,
            uploads,
            objects,
        })
    }
}

impl Meta {
    /// Encodes the payload (without the record frame).
    pub fn encode(&self) -> Vec<u8> {
        let mut e = Enc(Vec::with_capacity(64));
        match self {
            Meta::LayerCreated {
                layer,
                content_type,
                content_encoding,
            } => {
                e.u8(T_LAYER_CREATED);
                e.str(layer);
                e.opt_str(content_type);
                e.opt_str(content_encoding);
            }
            Meta::UploadStarted {
                layer,
                upload,
                key,
                content_type,
                content_encoding,
                time_ms,
            } => {
                e.u8(T_UPLOAD_STARTED);
                e.str(layer);
                e.bytes16(upload);
                e.str(key);
                e.str(content_type);
                e.opt_str(content_encoding);
                e.u64(*time_ms);
            }
            Meta::PartSet {
                layer,
                upload,
                number,
                part_id,
                new_extent,
                pieces,
                size,
                crc32c,
                time_ms,
            } => {
                e.u8(T_PART_SET);
                e.str(layer);
                e.bytes16(upload);
                e.u32(*number);
                e.u64(*part_id);
                e.extent(new_extent);
                e.u32(pieces.len() as u32);
                for p in pieces {
                    e.u64(p.extent);
                    e.u64(p.offset);
                    e.u64(p.len);
                }
                e.u64(*size);
                e.u32(*crc32c);
                e.u64(*time_ms);
            }
            Meta::UploadCompleted {
                layer,
                upload,
                parts,
                etag_seq,
                time_ms,
            } => {
                e.u8(T_UPLOAD_COMPLETED);
                e.str(layer);
                e.bytes16(upload);
                e.u32(parts.len() as u32);
                for (n, id) in parts {
                    e.u32(*n);
                    e.u64(*id);
                }
                e.u64(*etag_seq);
                e.u64(*time_ms);
            }
            Meta::UploadAborted {
                layer,
                upload,
                time_ms,
            } => {
                e.u8(T_UPLOAD_ABORTED);
                e.str(layer);
                e.bytes16(upload);
                e.u64(*time_ms);
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
                e.u8(T_OBJECT_PUT);
                e.str(layer);
                e.str(key);
                e.extent(new_extent);
                e.u64(*size);
                e.u32(*crc32c);
                e.str(content_type);
                e.opt_str(content_encoding);
                e.u64(*etag_seq);
                e.u64(*time_ms);
            }
            Meta::ObjectDeleted { layer, key } => {
                e.u8(T_OBJECT_DELETED);
                e.str(layer);
                e.str(key);
            }
            Meta::ObjectCopied {
                layer,
                src,
                dst,
                time_ms,
            } => {
                e.u8(T_OBJECT_COPIED);
                e.str(layer);
                e.str(src);
                e.str(dst);
                e.u64(*time_ms);
            }
            Meta::ExtentsMoved { moves } => {
                e.u8(T_EXTENTS_MOVED);
                e.u32(moves.len() as u32);
                for m in moves {
                    e.u64(m.extent);
                    e.u64(m.segment);
                    e.u64(m.offset);
                }
            }
            Meta::Snapshot(s) => {
                e.u8(T_SNAPSHOT);
                e.snapshot(s);
            }
            Meta::Mark => e.u8(T_MARK),
        }
        e.0
    }

    /// Decodes a payload. Never panics; allocations are bounded by the input.
    pub fn decode(payload: &[u8]) -> Result<Meta> {
        let mut d = Dec(payload);
        let meta = match d.u8()? {
            T_LAYER_CREATED => Meta::LayerCreated {
                layer: d.str()?,
                content_type: d.opt_str()?,
                content_encoding: d.opt_str()?,
            },
            T_UPLOAD_STARTED => Meta::UploadStarted {
                layer: d.str()?,
                upload: d.bytes16()?,
                key: d.str()?,
                content_type: d.str()?,
                content_encoding: d.opt_str()?,
                time_ms: d.u64()?,
            },
            T_PART_SET => {
                let layer = d.str()?;
                let upload = d.bytes16()?;
                let number = d.u32()?;
                let part_id = d.u64()?;
                let new_extent = d.extent()?;
                let n = d.count(24)?;
                let mut pieces = Vec::with_capacity(n);
                for _ in 0..n {
                    pieces.push(Piece {
                        extent: d.u64()?,
                        offset: d.u64()?,
                        len: d.u64()?,
                    });
                }
                Meta::PartSet {
                    layer,
                    upload,
                    number,
                    part_id,
                    new_extent,
                    pieces,
                    size: d.u64()?,
                    crc32c: d.u32()?,
                    time_ms: d.u64()?,
                }
            }
            T_UPLOAD_COMPLETED => {
                let layer = d.str()?;
                let upload = d.bytes16()?;
                let n = d.count(12)?;
                let mut parts = Vec::with_capacity(n);
                for _ in 0..n {
                    parts.push((d.u32()?, d.u64()?));
                }
                Meta::UploadCompleted {
                    layer,
                    upload,
                    parts,
                    etag_seq: d.u64()?,
                    time_ms: d.u64()?,
                }
            }
            T_UPLOAD_ABORTED => Meta::UploadAborted {
                layer: d.str()?,
                upload: d.bytes16()?,
                time_ms: d.u64()?,
            },
            T_OBJECT_PUT => Meta::ObjectPut {
                layer: d.str()?,
                key: d.str()?,
                new_extent: d.extent()?,
                size: d.u64()?,
                crc32c: d.u32()?,
                content_type: d.str()?,
                content_encoding: d.opt_str()?,
                etag_seq: d.u64()?,
                time_ms: d.u64()?,
            },
            T_OBJECT_DELETED => Meta::ObjectDeleted {
                layer: d.str()?,
                key: d.str()?,
            },
            T_OBJECT_COPIED => Meta::ObjectCopied {
                layer: d.str()?,
                src: d.str()?,
                dst: d.str()?,
                time_ms: d.u64()?,
            },
            T_EXTENTS_MOVED => {
                let n = d.count(24)?;
                let mut moves = Vec::with_capacity(n);
                for _ in 0..n {
                    moves.push(ExtentMove {
                        extent: d.u64()?,
                        segment: d.u64()?,
                        offset: d.u64()?,
                    });
                }
                Meta::ExtentsMoved { moves }
            }
            T_SNAPSHOT => Meta::Snapshot(Box::new(d.snapshot()?)),
            T_MARK => Meta::Mark,
            t => return Err(corrupt!("unknown metadata record tag {t}")),
        };
        if !d.0.is_empty() {
            return Err(corrupt!(
                "{} trailing bytes after a metadata record",
                d.0.len()
            ));
        }
        Ok(meta)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn samples() -> Vec<Meta> {
        let ext = ExtentDef {
            id: 7,
            segment: 2,
            offset: 4096,
            len: 3 << 20,
            block_crcs: vec![1, 2, 3],
        };
        vec![
            Meta::LayerCreated {
                layer: "maps".into(),
                content_type: Some("text/plain".into()),
                content_encoding: None,
            },
            Meta::UploadStarted {
                layer: "maps".into(),
                upload: [9; 16],
                key: "a/b".into(),
                content_type: "x/y".into(),
                content_encoding: Some("gzip".into()),
                time_ms: 5,
            },
            Meta::PartSet {
                layer: "maps".into(),
                upload: [9; 16],
                number: 3,
                part_id: 11,
                new_extent: Some(ext.clone()),
                pieces: vec![Piece {
                    extent: 7,
                    offset: 0,
                    len: 3 << 20,
                }],
                size: 3 << 20,
                crc32c: 0xdead_beef,
                time_ms: 6,
            },
            Meta::UploadCompleted {
                layer: "maps".into(),
                upload: [9; 16],
                parts: vec![(1, 11), (2, 12)],
                etag_seq: 13,
                time_ms: 7,
            },
            Meta::UploadAborted {
                layer: "m".into(),
                upload: [1; 16],
                time_ms: 8,
            },
            Meta::ObjectPut {
                layer: "m".into(),
                key: "k".into(),
                new_extent: Some(ext),
                size: 3 << 20,
                crc32c: 4,
                content_type: "a/b".into(),
                content_encoding: None,
                etag_seq: 14,
                time_ms: 9,
            },
            Meta::ObjectDeleted {
                layer: "m".into(),
                key: "k".into(),
            },
            Meta::ObjectCopied {
                layer: "m".into(),
                src: "k".into(),
                dst: "j".into(),
                time_ms: 10,
            },
            Meta::ExtentsMoved {
                moves: vec![ExtentMove {
                    extent: 1,
                    segment: 2,
                    offset: 3,
                }],
            },
            Meta::Snapshot(Box::new(Snapshot {
                max_id: 99,
                layers: vec![("maps".into(), Some("a/b".into()), None)],
                extents: vec![ExtentDef {
                    id: 1,
                    segment: 1,
                    offset: 56,
                    len: 10,
                    block_crcs: vec![5],
                }],
                uploads: vec![UploadSnap {
                    id: [3; 16],
                    layer: "maps".into(),
                    key: "k".into(),
                    content_type: "a/b".into(),
                    content_encoding: Some("gzip".into()),
                    started_ms: 1,
                    last_activity_ms: 2,
                    completed: false,
                    parts: vec![PartSnap {
                        number: 1,
                        id: 4,
                        size: 10,
                        crc32c: 7,
                        time_ms: 2,
                        pieces: vec![Piece {
                            extent: 1,
                            offset: 0,
                            len: 10,
                        }],
                    }],
                }],
                objects: vec![(
                    "maps".into(),
                    ObjectSnap {
                        key: "o".into(),
                        size: 10,
                        content_type: "a/b".into(),
                        content_encoding: None,
                        last_modified_ms: 3,
                        crc32c: 7,
                        etag: "e".into(),
                        part_count: 1,
                        pieces: vec![Piece {
                            extent: 1,
                            offset: 0,
                            len: 10,
                        }],
                    },
                )],
            })),
        ]
    }

    #[test]
    fn every_meta_roundtrips() {
        for m in samples() {
            assert_eq!(Meta::decode(&m.encode()).ok(), Some(m));
        }
    }

    #[test]
    fn truncated_payloads_are_errors_not_panics() {
        for m in samples() {
            let enc = m.encode();
            for cut in 0..enc.len() {
                assert!(Meta::decode(&enc[..cut]).is_err(), "{m:?} cut at {cut}");
            }
        }
    }

    #[test]
    fn header_roundtrips_and_rejects_any_flipped_bit() {
        let h = RecordHeader {
            kind: RecordKind::Meta,
            len: 1234,
            payload_crc: 99,
        };
        let enc = h.encode();
        assert_eq!(RecordHeader::decode(&enc), Some(h));
        for bit in 0..(enc.len() * 8) {
            let mut b = enc;
            b[bit / 8] ^= 1 << (bit % 8);
            assert_eq!(RecordHeader::decode(&b), None, "bit {bit}");
        }
        assert_eq!(RecordHeader::decode(&[0u8; 24]), None);
    }

    #[test]
    fn huge_count_is_rejected_without_allocating() {
        let mut p = vec![T_EXTENTS_MOVED];
        p.extend_from_slice(&u32::MAX.to_le_bytes());
        assert!(Meta::decode(&p).is_err());
    }

    #[test]
    fn framing_pads_to_alignment() {
        for n in 0..20 {
            let f = frame_meta(&vec![1u8; n]);
            assert_eq!(f.len() as u64, framed_len(n as u64));
            assert_eq!(f.len() % 8, 0);
        }
    }
}
