//! Metadata record payloads: every state change as a [`Meta`], and its
//! byte-exact encoding (little-endian integers, length-prefixed strings;
//! `docs/FORMAT.md` has the layout in prose). Pure: no I/O.

// Internal module; exposed undocumented only to fuzz targets (feature `fuzzing`).
#![cfg_attr(feature = "fuzzing", allow(missing_docs))]

use crate::error::{corrupt, Result};
use crate::spec::{Digest, DigestAlgorithm, KeyRules};

/// User metadata: name/value pairs, in the order given.
pub type Metadata = Vec<(String, String)>;

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
        key_rules: KeyRules,
        /// When the layer was created; 0: not recorded (tag 1).
        time_ms: u64,
    },
    /// An empty layer is removed (its completed uploads are forgotten).
    LayerDeleted {
        layer: String,
    },
    UploadStarted {
        layer: String,
        upload: [u8; 16],
        key: String,
        content_type: String,
        content_encoding: Option<String>,
        time_ms: u64,
        /// The object's user metadata.
        metadata: Metadata,
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
        /// The digest the client sent and the engine verified.
        digest: Option<Digest>,
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
        metadata: Metadata,
        /// The digest the client sent and the engine verified.
        digest: Option<Digest>,
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
        /// New user metadata for the copy; `None` keeps the source's.
        metadata: Option<Metadata>,
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
    /// Decoded from a version-1 snapshot (tag 10), which has no place for
    /// the wave-2 fields (key rules, metadata, digests, upload results):
    /// they are then at their defaults, and it re-encodes as version 1.
    /// Snapshots the index takes are version 2 (tag 18).
    pub legacy: bool,
    pub max_id: u64,
    pub layers: Vec<LayerSnap>,
    pub extents: Vec<ExtentDef>,
    pub uploads: Vec<UploadSnap>,
    /// (layer, object)
    pub objects: Vec<(String, ObjectSnap)>,
}

/// A layer inside a [`Snapshot`].
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct LayerSnap {
    pub id: String,
    pub content_type: Option<String>,
    pub content_encoding: Option<String>,
    pub key_rules: KeyRules,
    /// 0: not recorded.
    pub created_ms: u64,
}

/// An upload inside a [`Snapshot`].
#[derive(Debug, Clone, PartialEq, Eq, Default)]
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
    pub metadata: Metadata,
    /// A completed upload's object as it was published (its key is the
    /// upload's, its pieces are not kept).
    pub result: Option<ObjectSnap>,
}

/// A part inside a [`Snapshot`].
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PartSnap {
    pub number: u32,
    pub id: u64,
    pub size: u64,
    pub crc32c: u32,
    pub time_ms: u64,
    pub pieces: Vec<Piece>,
    pub digest: Option<Digest>,
}

/// An object inside a [`Snapshot`].
#[derive(Debug, Clone, PartialEq, Eq, Default)]
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
    pub metadata: Metadata,
    pub digest: Option<Digest>,
    pub composite_digest: Option<Digest>,
    /// A multipart object's part sizes, in part order; empty for one part.
    pub part_sizes: Vec<u64>,
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
pub(crate) const T_EXTENTS_MOVED: u8 = 9;
const T_SNAPSHOT: u8 = 10;
const T_MARK: u8 = 11;
// Wave 2: a record whose new fields are all at their defaults keeps the tag
// above (so old stores and new ones that use no new feature read and write
// the same bytes); one that uses them is written with these tags, whose
// layout is the old one followed by the new fields. Decoding one of these
// whose new fields are all defaults is Corrupt (the format stays canonical).
const T_LAYER_CREATED_V2: u8 = 12;
const T_LAYER_DELETED: u8 = 13;
const T_UPLOAD_STARTED_V2: u8 = 14;
const T_PART_SET_V2: u8 = 15;
const T_OBJECT_PUT_V2: u8 = 16;
const T_OBJECT_COPIED_V2: u8 = 17;
const T_SNAPSHOT_V2: u8 = 18;

fn key_rules_code(r: KeyRules) -> u8 {
    match r {
        KeyRules::Here => 0,
        KeyRules::Utf8 => 1,
    }
}

fn digest_code(a: DigestAlgorithm) -> u8 {
    match a {
        DigestAlgorithm::Crc32c => 1,
        DigestAlgorithm::Md5 => 2,
        DigestAlgorithm::Sha1 => 3,
        DigestAlgorithm::Sha256 => 4,
    }
}

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
    fn metadata(&mut self, m: &[(String, String)]) {
        self.u32(m.len() as u32);
        for (n, v) in m {
            self.str(n);
            self.str(v);
        }
    }
    fn digest(&mut self, d: &Digest) {
        self.u8(digest_code(d.algorithm()));
        self.0.extend_from_slice(d.bytes());
    }
    fn opt_digest(&mut self, d: &Option<Digest>) {
        match d {
            None => self.u8(0),
            Some(d) => self.digest(d),
        }
    }
    /// An object's fields after its key, up to (without) its pieces.
    fn object_head(&mut self, o: &ObjectSnap) {
        self.u64(o.size);
        self.str(&o.content_type);
        self.opt_str(&o.content_encoding);
        self.u64(o.last_modified_ms);
        self.u32(o.crc32c);
        self.str(&o.etag);
        self.u32(o.part_count);
    }
    /// An object's wave-2 fields (snapshot version 2).
    fn object_tail(&mut self, o: &ObjectSnap) {
        self.metadata(&o.metadata);
        self.opt_digest(&o.digest);
        self.opt_digest(&o.composite_digest);
        self.u32(o.part_sizes.len() as u32);
        for n in &o.part_sizes {
            self.u64(*n);
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
        let v2 = !s.legacy;
        self.u64(s.max_id);
        self.u32(s.layers.len() as u32);
        for l in &s.layers {
            self.str(&l.id);
            self.opt_str(&l.content_type);
            self.opt_str(&l.content_encoding);
            if v2 {
                self.u8(key_rules_code(l.key_rules));
                self.u64(l.created_ms);
            }
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
                if v2 {
                    self.opt_digest(&p.digest);
                }
            }
            if v2 {
                self.metadata(&u.metadata);
                if u.completed {
                    match &u.result {
                        None => self.u8(0),
                        Some(o) => {
                            self.u8(1);
                            self.object_head(o);
                            self.object_tail(o);
                        }
                    }
                }
            }
        }
        self.u32(s.objects.len() as u32);
        for (layer, o) in &s.objects {
            self.str(layer);
            self.str(&o.key);
            self.object_head(o);
            self.pieces(&o.pieces);
            if v2 {
                self.object_tail(o);
            }
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
    fn metadata(&mut self) -> Result<Metadata> {
        let n = self.count(8)?;
        let mut m = Vec::with_capacity(n);
        for _ in 0..n {
            m.push((self.str()?, self.str()?));
        }
        Ok(m)
    }
    fn digest_of(&mut self, code: u8) -> Result<Digest> {
        let algorithm = match code {
            1 => DigestAlgorithm::Crc32c,
            2 => DigestAlgorithm::Md5,
            3 => DigestAlgorithm::Sha1,
            4 => DigestAlgorithm::Sha256,
            t => return Err(corrupt!("bad digest algorithm {t} in record")),
        };
        let bytes = self.take(algorithm.digest_len())?;
        Digest::new(algorithm, bytes).map_err(|e| corrupt!("digest in record: {e}"))
    }
    fn digest(&mut self) -> Result<Digest> {
        let code = self.u8()?;
        self.digest_of(code)
    }
    fn opt_digest(&mut self) -> Result<Option<Digest>> {
        match self.u8()? {
            0 => Ok(None),
            code => Ok(Some(self.digest_of(code)?)),
        }
    }
    fn key_rules(&mut self) -> Result<KeyRules> {
        match self.u8()? {
            0 => Ok(KeyRules::Here),
            1 => Ok(KeyRules::Utf8),
            t => Err(corrupt!("bad key rules {t} in record")),
        }
    }
    /// An object's fields after its key, up to (without) its pieces.
    fn object_head(&mut self, key: String) -> Result<ObjectSnap> {
        Ok(ObjectSnap {
            key,
            size: self.u64()?,
            content_type: self.str()?,
            content_encoding: self.opt_str()?,
            last_modified_ms: self.u64()?,
            crc32c: self.u32()?,
            etag: self.str()?,
            part_count: self.u32()?,
            pieces: Vec::new(),
            metadata: Vec::new(),
            digest: None,
            composite_digest: None,
            part_sizes: Vec::new(),
        })
    }
    fn object_tail(&mut self, o: &mut ObjectSnap) -> Result<()> {
        o.metadata = self.metadata()?;
        o.digest = self.opt_digest()?;
        o.composite_digest = self.opt_digest()?;
        let n = self.count(8)?;
        o.part_sizes = Vec::with_capacity(n);
        for _ in 0..n {
            o.part_sizes.push(self.u64()?);
        }
        Ok(())
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
    fn snapshot(&mut self, v2: bool) -> Result<Snapshot> {
        let extra = usize::from(v2);
        let max_id = self.u64()?;
        let n = self.count(6 + 9 * extra)?;
        let mut layers = Vec::with_capacity(n);
        for _ in 0..n {
            let mut l = LayerSnap {
                id: self.str()?,
                content_type: self.opt_str()?,
                content_encoding: self.opt_str()?,
                ..LayerSnap::default()
            };
            if v2 {
                l.key_rules = self.key_rules()?;
                l.created_ms = self.u64()?;
            }
            layers.push(l);
        }
        let n = self.count(36)?;
        let mut extents = Vec::with_capacity(n);
        for _ in 0..n {
            extents.push(self.extent_def()?);
        }
        let n = self.count(50 + 4 * extra)?;
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
            let np = self.count(32 + extra)?;
            let mut parts = Vec::with_capacity(np);
            for _ in 0..np {
                parts.push(PartSnap {
                    number: self.u32()?,
                    id: self.u64()?,
                    size: self.u64()?,
                    crc32c: self.u32()?,
                    time_ms: self.u64()?,
                    pieces: self.pieces()?,
                    digest: if v2 { self.opt_digest()? } else { None },
                });
            }
            let mut metadata = Vec::new();
            let mut result = None;
            if v2 {
                metadata = self.metadata()?;
                if completed {
                    result = match self.u8()? {
                        0 => None,
                        1 => {
                            let mut o = self.object_head(key.clone())?;
                            self.object_tail(&mut o)?;
                            Some(o)
                        }
                        t => return Err(corrupt!("bad result tag {t} in snapshot")),
                    };
                }
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
                metadata,
                result,
            });
        }
        let n = self.count(45 + 10 * extra)?;
        let mut objects = Vec::with_capacity(n);
        for _ in 0..n {
            let layer = self.str()?;
            let key = self.str()?;
            let mut o = self.object_head(key)?;
            o.pieces = self.pieces()?;
            if v2 {
                self.object_tail(&mut o)?;
            }
            objects.push((layer, o));
        }
        Ok(Snapshot {
            legacy: !v2,
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
                key_rules,
                time_ms,
            } => {
                let v2 = *key_rules != KeyRules::Here || *time_ms != 0;
                e.u8(if v2 {
                    T_LAYER_CREATED_V2
                } else {
                    T_LAYER_CREATED
                });
                e.str(layer);
                e.opt_str(content_type);
                e.opt_str(content_encoding);
                if v2 {
                    e.u8(key_rules_code(*key_rules));
                    e.u64(*time_ms);
                }
            }
            Meta::LayerDeleted { layer } => {
                e.u8(T_LAYER_DELETED);
                e.str(layer);
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
                let v2 = !metadata.is_empty();
                e.u8(if v2 {
                    T_UPLOAD_STARTED_V2
                } else {
                    T_UPLOAD_STARTED
                });
                e.str(layer);
                e.bytes16(upload);
                e.str(key);
                e.str(content_type);
                e.opt_str(content_encoding);
                e.u64(*time_ms);
                if v2 {
                    e.metadata(metadata);
                }
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
                digest,
            } => {
                e.u8(if digest.is_some() {
                    T_PART_SET_V2
                } else {
                    T_PART_SET
                });
                e.str(layer);
                e.bytes16(upload);
                e.u32(*number);
                e.u64(*part_id);
                e.extent(new_extent);
                e.pieces(pieces);
                e.u64(*size);
                e.u32(*crc32c);
                e.u64(*time_ms);
                if let Some(d) = digest {
                    e.digest(d);
                }
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
                metadata,
                digest,
            } => {
                let v2 = !metadata.is_empty() || digest.is_some();
                e.u8(if v2 { T_OBJECT_PUT_V2 } else { T_OBJECT_PUT });
                e.str(layer);
                e.str(key);
                e.extent(new_extent);
                e.u64(*size);
                e.u32(*crc32c);
                e.str(content_type);
                e.opt_str(content_encoding);
                e.u64(*etag_seq);
                e.u64(*time_ms);
                if v2 {
                    e.metadata(metadata);
                    e.opt_digest(digest);
                }
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
                metadata,
            } => {
                e.u8(if metadata.is_some() {
                    T_OBJECT_COPIED_V2
                } else {
                    T_OBJECT_COPIED
                });
                e.str(layer);
                e.str(src);
                e.str(dst);
                e.u64(*time_ms);
                if let Some(m) = metadata {
                    e.metadata(m);
                }
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
                e.u8(if s.legacy { T_SNAPSHOT } else { T_SNAPSHOT_V2 });
                e.snapshot(s);
            }
            Meta::Mark => e.u8(T_MARK),
        }
        e.0
    }

    /// Decodes a payload. Never panics; allocations are bounded by the input.
    pub fn decode(payload: &[u8]) -> Result<Meta> {
        let mut d = Dec(payload);
        let tag = d.u8()?;
        let non_canonical = || {
            corrupt!(
                "record tag {tag} carries only default values: it is written with the older tag"
            )
        };
        let meta = match tag {
            T_LAYER_CREATED | T_LAYER_CREATED_V2 => {
                let (layer, content_type, content_encoding) =
                    (d.str()?, d.opt_str()?, d.opt_str()?);
                let (key_rules, time_ms) = if tag == T_LAYER_CREATED_V2 {
                    (d.key_rules()?, d.u64()?)
                } else {
                    (KeyRules::Here, 0)
                };
                if tag == T_LAYER_CREATED_V2 && key_rules == KeyRules::Here && time_ms == 0 {
                    return Err(non_canonical());
                }
                Meta::LayerCreated {
                    layer,
                    content_type,
                    content_encoding,
                    key_rules,
                    time_ms,
                }
            }
            T_LAYER_DELETED => Meta::LayerDeleted { layer: d.str()? },
            T_UPLOAD_STARTED | T_UPLOAD_STARTED_V2 => {
                let layer = d.str()?;
                let upload = d.bytes16()?;
                let key = d.str()?;
                let content_type = d.str()?;
                let content_encoding = d.opt_str()?;
                let time_ms = d.u64()?;
                let metadata = if tag == T_UPLOAD_STARTED_V2 {
                    d.metadata()?
                } else {
                    Vec::new()
                };
                if tag == T_UPLOAD_STARTED_V2 && metadata.is_empty() {
                    return Err(non_canonical());
                }
                Meta::UploadStarted {
                    layer,
                    upload,
                    key,
                    content_type,
                    content_encoding,
                    time_ms,
                    metadata,
                }
            }
            T_PART_SET | T_PART_SET_V2 => {
                let layer = d.str()?;
                let upload = d.bytes16()?;
                let number = d.u32()?;
                let part_id = d.u64()?;
                let new_extent = d.extent()?;
                let pieces = d.pieces()?;
                let (size, crc32c, time_ms) = (d.u64()?, d.u32()?, d.u64()?);
                let digest = if tag == T_PART_SET_V2 {
                    Some(d.digest()?)
                } else {
                    None
                };
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
                    digest,
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
            T_OBJECT_PUT | T_OBJECT_PUT_V2 => {
                let layer = d.str()?;
                let key = d.str()?;
                let new_extent = d.extent()?;
                let (size, crc32c) = (d.u64()?, d.u32()?);
                let (content_type, content_encoding) = (d.str()?, d.opt_str()?);
                let (etag_seq, time_ms) = (d.u64()?, d.u64()?);
                let (metadata, digest) = if tag == T_OBJECT_PUT_V2 {
                    (d.metadata()?, d.opt_digest()?)
                } else {
                    (Vec::new(), None)
                };
                if tag == T_OBJECT_PUT_V2 && metadata.is_empty() && digest.is_none() {
                    return Err(non_canonical());
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
                }
            }
            T_OBJECT_DELETED => Meta::ObjectDeleted {
                layer: d.str()?,
                key: d.str()?,
            },
            T_OBJECT_COPIED | T_OBJECT_COPIED_V2 => Meta::ObjectCopied {
                layer: d.str()?,
                src: d.str()?,
                dst: d.str()?,
                time_ms: d.u64()?,
                metadata: if tag == T_OBJECT_COPIED_V2 {
                    Some(d.metadata()?)
                } else {
                    None
                },
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
            T_SNAPSHOT => Meta::Snapshot(Box::new(d.snapshot(false)?)),
            T_SNAPSHOT_V2 => Meta::Snapshot(Box::new(d.snapshot(true)?)),
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
