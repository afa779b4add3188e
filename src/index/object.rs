//! Objects as the rest of the crate sees them: [`Object`] (and its
//! snapshot form), built from the packed records of the object map, and
//! the etag.

use std::sync::Arc;

use crate::error::{not_found, Reason, Result};
use crate::index::{Index, ObjRec, ObjRef};
use crate::log::format::{ObjectSnap, Piece};
use crate::log::meta::Metadata;
use crate::spec::Digest;

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
    /// The sequence number of the write that made it (in the etag).
    pub etag_seq: u64,
    pub part_count: u32,
    /// The object's bytes, in order.
    pub pieces: Arc<Vec<Piece>>,
    pub metadata: Metadata,
    /// The digest the client sent with `put_object` and the engine verified.
    pub digest: Option<Digest>,
    /// A multipart object whose parts all carry a digest of one algorithm:
    /// that algorithm over the part digests in part order.
    pub composite_digest: Option<Digest>,
    /// A multipart object's part sizes, in part order (they add up to
    /// `size`); empty for a single-part object.
    pub part_sizes: Arc<[u64]>,
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
            metadata: o.metadata.clone(),
            digest: o.digest.clone(),
            composite_digest: o.composite_digest.clone(),
            part_sizes: o.part_sizes.to_vec(),
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
            etag_seq: etag_seq(&o.etag, o.crc32c).unwrap_or(0),
            part_count: o.part_count,
            pieces: Arc::new(o.pieces.clone()),
            metadata: o.metadata.clone(),
            digest: o.digest.clone(),
            composite_digest: o.composite_digest.clone(),
            part_sizes: o.part_sizes.as_slice().into(),
        }
    }
}

/// The etag of an object: its CRC and the sequence number of the write that
/// made it, so it changes whenever the content does.
pub(crate) fn etag(crc: u32, seq: u64) -> String {
    // By hand: this runs for every object a head or a listing returns.
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let v = (u128::from(crc) << 64) | u128::from(seq);
    let mut out = [0u8; 24];
    for (i, b) in out.iter_mut().enumerate() {
        *b = HEX[((v >> ((23 - i) * 4)) & 0xf) as usize];
    }
    std::str::from_utf8(&out).unwrap_or_default().to_string()
}

/// The sequence number of an etag of the usual form for `crc`.
pub(crate) fn etag_seq(etag: &str, crc: u32) -> Option<u64> {
    let (c, seq) = (etag.get(..8)?, etag.get(8..)?);
    if etag.len() != 24 || u32::from_str_radix(c, 16).ok()? != crc {
        return None;
    }
    let n = u64::from_str_radix(seq, 16).ok()?;
    (self::etag(crc, n) == etag).then_some(n)
}

impl Index {
    /// An object, or NotFound.
    pub fn object(&self, layer: &str, key: &str) -> Result<Arc<Object>> {
        self.object_ref(layer, key)
            .map(|o| Arc::new(self.materialize(o)))
    }

    /// An object's packed entry, or NotFound.
    pub fn object_ref(&self, layer: &str, key: &str) -> Result<ObjRef<'_>> {
        let l = self.layer(layer)?;
        l.key_rules.validate(key)?;
        l.objects.get(key).ok_or_else(|| {
            not_found!(
                Reason::UnknownKey,
                "key \"{key}\" does not exist in layer \"{layer}\""
            )
        })
    }

    /// The object a write just stored under `key` (already validated by
    /// that write), or NotFound.
    pub fn written(&self, layer: &str, key: &str) -> Result<ObjRef<'_>> {
        self.layer(layer)?.objects.get(key).ok_or_else(|| {
            not_found!(
                Reason::UnknownKey,
                "key \"{key}\" does not exist in layer \"{layer}\""
            )
        })
    }

    /// The pieces of a packed object, in order.
    pub fn pieces_of<'a>(&self, rec: &'a ObjRec) -> std::borrow::Cow<'a, [Piece]> {
        match &rec.extra {
            _ if rec.extent != 0 => std::borrow::Cow::Owned(vec![Piece {
                extent: rec.extent,
                offset: 0,
                len: self.extents.location(rec.extent).map_or(0, |l| l.len),
            }]),
            Some(x) => std::borrow::Cow::Borrowed(&x.pieces),
            None => std::borrow::Cow::Borrowed(&[]),
        }
    }

    /// The size of a packed object.
    pub fn size_of(&self, rec: &ObjRec) -> u64 {
        match &rec.extra {
            _ if rec.extent != 0 => self.extents.location(rec.extent).map_or(0, |l| l.len),
            Some(x) => x.size,
            None => 0,
        }
    }

    /// A packed object's content type and encoding.
    pub fn media_of(&self, rec: &ObjRec) -> (&str, Option<&str>) {
        self.media.get(rec.media)
    }

    /// A packed object's etag.
    pub fn etag_of(&self, r: &ObjRec) -> String {
        match r.extra.as_deref().and_then(|x| x.etag.clone()) {
            Some(e) => e,
            None => etag(r.crc32c, r.etag_seq),
        }
    }

    /// A packed object as an [`Object`].
    pub fn materialize(&self, o: ObjRef<'_>) -> Object {
        let r = o.rec;
        let (ct, ce) = self.media.get(r.media);
        let x = r.extra.as_deref();
        Object {
            key: o.key.to_string(),
            size: self.size_of(r),
            content_type: ct.to_string(),
            content_encoding: ce.map(str::to_string),
            last_modified_ms: r.last_modified_ms(),
            crc32c: r.crc32c,
            etag: self.etag_of(r),
            etag_seq: r.etag_seq,
            part_count: u32::from(r.part_count()),
            pieces: Arc::new(self.pieces_of(r).into_owned()),
            metadata: x.map(|x| x.metadata.clone()).unwrap_or_default(),
            digest: x.and_then(|x| x.digest.clone()),
            composite_digest: x.and_then(|x| x.composite_digest.clone()),
            part_sizes: x.map(|x| Arc::clone(&x.part_sizes)).unwrap_or_default(),
        }
    }
}

#[cfg(test)]
mod etag_tests {
    #[test]
    fn etag_is_crc_then_sequence_in_hex() {
        for (crc, seq) in [
            (0, 0),
            (0xdead_beef, 1),
            (u32::MAX, u64::MAX),
            (7, 0x0123_4567_89ab_cdef),
        ] {
            assert_eq!(super::etag(crc, seq), format!("{crc:08x}{seq:016x}"));
            assert_eq!(super::etag_seq(&super::etag(crc, seq), crc), Some(seq));
        }
    }
}
