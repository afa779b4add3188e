//! Metadata record payloads: every state change as a [`Meta`], and its
//! byte-exact encoding (little-endian integers, length-prefixed strings;
//! `docs/FORMAT.md` has the layout in prose). Pure: no I/O.

// Internal module; exposed undocumented only to fuzz targets (feature `fuzzing`).
#![cfg_attr(feature = "fuzzing", allow(missing_docs))]

use crate::error::{corrupt, Result};
use crate::log::codec::*;
use crate::spec::{Digest, KeyRules};

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

    /// Sets where [`Meta::new_extent`] lives (its bytes are appended with
    /// the record).
    pub fn place_new_extent(&mut self, segment: u64, offset: u64) {
        if let Meta::PartSet {
            new_extent: Some(e),
            ..
        }
        | Meta::ObjectPut {
            new_extent: Some(e),
            ..
        } = self
        {
            e.segment = segment;
            e.offset = offset;
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

impl Meta {
    /// Encodes the payload (without the record frame).
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.encode_into(&mut out);
        out
    }

    /// Appends the encoded payload to `out` (a writer's scratch buffer:
    /// a record encoded per commit allocates nothing once it has grown).
    pub fn encode_into(&self, out: &mut Vec<u8>) {
        let mut e = Enc(std::mem::take(out));
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
        *out = e.0;
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
