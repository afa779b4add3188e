//! The byte codec of metadata record payloads: the record tags, and the
//! little-endian, length-prefixed writer (`Enc`) and bounded reader (`Dec`)
//! that `Meta::encode` / `Meta::decode` are written with.

#![cfg_attr(feature = "fuzzing", allow(missing_docs))]

use crate::error::{corrupt, Result};
use crate::log::meta::*;
use crate::spec::{Digest, DigestAlgorithm, KeyRules};

// Payload tags; part of the format.
pub(crate) const T_LAYER_CREATED: u8 = 1;
pub(crate) const T_UPLOAD_STARTED: u8 = 2;
pub(crate) const T_PART_SET: u8 = 3;
pub(crate) const T_UPLOAD_COMPLETED: u8 = 4;
pub(crate) const T_UPLOAD_ABORTED: u8 = 5;
pub(crate) const T_OBJECT_PUT: u8 = 6;
pub(crate) const T_OBJECT_DELETED: u8 = 7;
pub(crate) const T_OBJECT_COPIED: u8 = 8;
pub(crate) const T_EXTENTS_MOVED: u8 = 9;
pub(crate) const T_SNAPSHOT: u8 = 10;
pub(crate) const T_MARK: u8 = 11;
// Wave 2: a record whose new fields are all at their defaults keeps the tag
// above (so old stores and new ones that use no new feature read and write
// the same bytes); one that uses them is written with these tags, whose
// layout is the old one followed by the new fields. Decoding one of these
// whose new fields are all defaults is Corrupt (the format stays canonical).
pub(crate) const T_LAYER_CREATED_V2: u8 = 12;
pub(crate) const T_LAYER_DELETED: u8 = 13;
pub(crate) const T_UPLOAD_STARTED_V2: u8 = 14;
pub(crate) const T_PART_SET_V2: u8 = 15;
pub(crate) const T_OBJECT_PUT_V2: u8 = 16;
pub(crate) const T_OBJECT_COPIED_V2: u8 = 17;
pub(crate) const T_SNAPSHOT_V2: u8 = 18;
// Checkpoints (src/log/checkpoint.rs): pages holding the state, then the
// record that names them. Not `Meta` records: replay restores them, never
// applies them.
pub(crate) const T_CHECKPOINT_PAGE: u8 = 19;
pub(crate) const T_CHECKPOINT: u8 = 20;
// A checkpoint record that also carries the counts of the sealed segments
// before its base (tag 20's layout, then the counts): an open from it
// learns their data bytes without reading them.
pub(crate) const T_CHECKPOINT_COUNTED: u8 = 21;
/// The highest tag this build knows; a higher one is `Corrupt`.
pub(crate) const T_LAST: u8 = T_CHECKPOINT_COUNTED;

/// True for the tags of a checkpoint record.
pub(crate) fn is_checkpoint(tag: u8) -> bool {
    tag == T_CHECKPOINT || tag == T_CHECKPOINT_COUNTED
}

pub(crate) fn key_rules_code(r: KeyRules) -> u8 {
    match r {
        KeyRules::Here => 0,
        KeyRules::Utf8 => 1,
    }
}

pub(crate) fn digest_code(a: DigestAlgorithm) -> u8 {
    match a {
        DigestAlgorithm::Crc32c => 1,
        DigestAlgorithm::Md5 => 2,
        DigestAlgorithm::Sha1 => 3,
        DigestAlgorithm::Sha256 => 4,
    }
}

pub(crate) struct Enc(pub(crate) Vec<u8>);

impl Enc {
    pub(crate) fn u8(&mut self, v: u8) {
        self.0.push(v);
    }
    pub(crate) fn u32(&mut self, v: u32) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    pub(crate) fn u64(&mut self, v: u64) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    pub(crate) fn bytes16(&mut self, v: &[u8; 16]) {
        self.0.extend_from_slice(v);
    }
    pub(crate) fn str(&mut self, s: &str) {
        self.u32(s.len() as u32);
        self.0.extend_from_slice(s.as_bytes());
    }
    pub(crate) fn opt_str(&mut self, s: &Option<String>) {
        match s {
            None => self.u8(0),
            Some(s) => {
                self.u8(1);
                self.str(s);
            }
        }
    }
    pub(crate) fn metadata(&mut self, m: &[(String, String)]) {
        self.u32(m.len() as u32);
        for (n, v) in m {
            self.str(n);
            self.str(v);
        }
    }
    pub(crate) fn digest(&mut self, d: &Digest) {
        self.u8(digest_code(d.algorithm()));
        self.0.extend_from_slice(d.bytes());
    }
    pub(crate) fn opt_digest(&mut self, d: &Option<Digest>) {
        match d {
            None => self.u8(0),
            Some(d) => self.digest(d),
        }
    }
    /// An object's fields after its key, up to (without) its pieces.
    pub(crate) fn object_head(&mut self, o: &ObjectSnap) {
        self.u64(o.size);
        self.str(&o.content_type);
        self.opt_str(&o.content_encoding);
        self.u64(o.last_modified_ms);
        self.u32(o.crc32c);
        self.str(&o.etag);
        self.u32(o.part_count);
    }
    /// An object's wave-2 fields (snapshot version 2).
    pub(crate) fn object_tail(&mut self, o: &ObjectSnap) {
        self.metadata(&o.metadata);
        self.opt_digest(&o.digest);
        self.opt_digest(&o.composite_digest);
        self.u64s(&o.part_sizes);
    }
    /// A count, then that many u64s.
    pub(crate) fn u64s(&mut self, v: &[u64]) {
        self.u32(v.len() as u32);
        for n in v {
            self.u64(*n);
        }
    }
    pub(crate) fn extent(&mut self, e: &Option<ExtentDef>) {
        match e {
            None => self.u8(0),
            Some(e) => {
                self.u8(1);
                self.extent_def(e);
            }
        }
    }
    pub(crate) fn extent_def(&mut self, e: &ExtentDef) {
        self.u64(e.id);
        self.u64(e.segment);
        self.u64(e.offset);
        self.u64(e.len);
        self.u32(e.block_crcs.len() as u32);
        for c in &e.block_crcs {
            self.u32(*c);
        }
    }
    pub(crate) fn pieces(&mut self, pieces: &[Piece]) {
        self.u32(pieces.len() as u32);
        for p in pieces {
            self.u64(p.extent);
            self.u64(p.offset);
            self.u64(p.len);
        }
    }
    pub(crate) fn snapshot(&mut self, s: &Snapshot) {
        let v2 = !s.legacy;
        self.u64(s.max_id);
        self.u32(s.layers.len() as u32);
        for l in &s.layers {
            self.layer_snap(l, v2);
        }
        self.u32(s.extents.len() as u32);
        for e in &s.extents {
            self.extent_def(e);
        }
        self.u32(s.uploads.len() as u32);
        for u in &s.uploads {
            self.upload_snap(u, v2);
        }
        self.u32(s.objects.len() as u32);
        for (layer, o) in &s.objects {
            self.object_snap(layer, o, v2);
        }
    }
    /// One layer of a snapshot.
    pub(crate) fn layer_snap(&mut self, l: &LayerSnap, v2: bool) {
        self.str(&l.id);
        self.opt_str(&l.content_type);
        self.opt_str(&l.content_encoding);
        if v2 {
            self.u8(key_rules_code(l.key_rules));
            self.u64(l.created_ms);
        }
    }
    /// One upload of a snapshot.
    pub(crate) fn upload_snap(&mut self, u: &UploadSnap, v2: bool) {
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
    /// One object of a snapshot, with its layer.
    pub(crate) fn object_snap(&mut self, layer: &str, o: &ObjectSnap, v2: bool) {
        self.str(layer);
        self.str(&o.key);
        self.object_head(o);
        self.pieces(&o.pieces);
        if v2 {
            self.object_tail(o);
        }
    }
}

// The smallest encoding of each snapshot item (and what version 2 adds), so
// a count can be checked against the bytes left before anything is
// allocated.
pub(crate) const LAYER_MIN: usize = 6;
pub(crate) const LAYER_V2_EXTRA: usize = 9;
pub(crate) const EXTENT_MIN: usize = 36;
pub(crate) const UPLOAD_MIN: usize = 50;
pub(crate) const UPLOAD_V2_EXTRA: usize = 4;
pub(crate) const OBJECT_MIN: usize = 45;
pub(crate) const OBJECT_V2_EXTRA: usize = 10;

pub(crate) struct Dec<'a>(pub(crate) &'a [u8]);

impl<'a> Dec<'a> {
    pub(crate) fn take(&mut self, n: usize) -> Result<&'a [u8]> {
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
    pub(crate) fn u8(&mut self) -> Result<u8> {
        Ok(self.take(1)?[0])
    }
    pub(crate) fn u32(&mut self) -> Result<u32> {
        let b = self.take(4)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }
    pub(crate) fn u64(&mut self) -> Result<u64> {
        let mut a = [0u8; 8];
        a.copy_from_slice(self.take(8)?);
        Ok(u64::from_le_bytes(a))
    }
    pub(crate) fn bytes16(&mut self) -> Result<[u8; 16]> {
        let mut a = [0u8; 16];
        a.copy_from_slice(self.take(16)?);
        Ok(a)
    }
    pub(crate) fn str(&mut self) -> Result<String> {
        let n = self.u32()? as usize;
        let b = self.take(n)?;
        String::from_utf8(b.to_vec()).map_err(|_| corrupt!("record string is not UTF-8"))
    }
    pub(crate) fn opt_str(&mut self) -> Result<Option<String>> {
        match self.u8()? {
            0 => Ok(None),
            1 => Ok(Some(self.str()?)),
            t => Err(corrupt!("bad option tag {t} in record")),
        }
    }
    pub(crate) fn metadata(&mut self) -> Result<Metadata> {
        let n = self.count(8)?;
        let mut m = Vec::with_capacity(n);
        for _ in 0..n {
            m.push((self.str()?, self.str()?));
        }
        Ok(m)
    }
    pub(crate) fn digest_of(&mut self, code: u8) -> Result<Digest> {
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
    pub(crate) fn digest(&mut self) -> Result<Digest> {
        let code = self.u8()?;
        self.digest_of(code)
    }
    pub(crate) fn opt_digest(&mut self) -> Result<Option<Digest>> {
        match self.u8()? {
            0 => Ok(None),
            code => Ok(Some(self.digest_of(code)?)),
        }
    }
    pub(crate) fn key_rules(&mut self) -> Result<KeyRules> {
        match self.u8()? {
            0 => Ok(KeyRules::Here),
            1 => Ok(KeyRules::Utf8),
            t => Err(corrupt!("bad key rules {t} in record")),
        }
    }
    /// An object's fields after its key, up to (without) its pieces.
    pub(crate) fn object_head(&mut self, key: String) -> Result<ObjectSnap> {
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
    pub(crate) fn object_tail(&mut self, o: &mut ObjectSnap) -> Result<()> {
        o.metadata = self.metadata()?;
        o.digest = self.opt_digest()?;
        o.composite_digest = self.opt_digest()?;
        o.part_sizes = self.u64s()?;
        Ok(())
    }
    /// A count, then that many u64s.
    pub(crate) fn u64s(&mut self) -> Result<Vec<u64>> {
        let n = self.count(8)?;
        let mut v = Vec::with_capacity(n);
        for _ in 0..n {
            v.push(self.u64()?);
        }
        Ok(v)
    }
    /// A count of items each at least `min_size` bytes: bounded by what is
    /// left, so a corrupt count cannot make us allocate more than the input.
    pub(crate) fn count(&mut self, min_size: usize) -> Result<usize> {
        let n = self.u32()? as usize;
        if n.saturating_mul(min_size) > self.0.len() {
            return Err(corrupt!(
                "record count {n} exceeds the {} bytes left",
                self.0.len()
            ));
        }
        Ok(n)
    }
    pub(crate) fn extent(&mut self) -> Result<Option<ExtentDef>> {
        match self.u8()? {
            0 => Ok(None),
            1 => Ok(Some(self.extent_def()?)),
            t => Err(corrupt!("bad extent tag {t} in record")),
        }
    }
    pub(crate) fn extent_def(&mut self) -> Result<ExtentDef> {
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
    pub(crate) fn pieces(&mut self) -> Result<Vec<Piece>> {
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
    pub(crate) fn snapshot(&mut self, v2: bool) -> Result<Snapshot> {
        let max_id = self.u64()?;
        let n = self.count(LAYER_MIN + LAYER_V2_EXTRA * usize::from(v2))?;
        let mut layers = Vec::with_capacity(n);
        for _ in 0..n {
            layers.push(self.layer_snap(v2)?);
        }
        let n = self.count(EXTENT_MIN)?;
        let mut extents = Vec::with_capacity(n);
        for _ in 0..n {
            extents.push(self.extent_def()?);
        }
        let n = self.count(UPLOAD_MIN + UPLOAD_V2_EXTRA * usize::from(v2))?;
        let mut uploads = Vec::with_capacity(n);
        for _ in 0..n {
            uploads.push(self.upload_snap(v2)?);
        }
        let n = self.count(OBJECT_MIN + OBJECT_V2_EXTRA * usize::from(v2))?;
        let mut objects = Vec::with_capacity(n);
        for _ in 0..n {
            objects.push(self.object_snap(v2)?);
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
    /// One layer of a snapshot.
    pub(crate) fn layer_snap(&mut self, v2: bool) -> Result<LayerSnap> {
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
        Ok(l)
    }
    /// One upload of a snapshot.
    pub(crate) fn upload_snap(&mut self, v2: bool) -> Result<UploadSnap> {
        let extra = usize::from(v2);
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
        Ok(UploadSnap {
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
        })
    }
    /// One object of a snapshot, with its layer.
    pub(crate) fn object_snap(&mut self, v2: bool) -> Result<(String, ObjectSnap)> {
        let layer = self.str()?;
        let key = self.str()?;
        let mut o = self.object_head(key)?;
        o.pieces = self.pieces()?;
        if v2 {
            self.object_tail(&mut o)?;
        }
        Ok((layer, o))
    }
}
