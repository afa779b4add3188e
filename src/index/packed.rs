//! Objects as a checkpoint's pages hold them: packed records, not
//! materialised objects, so a checkpoint is written straight from the
//! layers' maps and restored into them without a per-object allocation
//! or lookup. Sections 5 (media: the interned content types and
//! encodings, by id) and 6 (a run of one layer's objects in key order) of
//! `src/log/checkpoint.rs`; `docs/FORMAT.md` ("Checkpoints") has the
//! layout in prose.
//!
//! ```text
//! media item    id u32, content_type str, content_encoding opt str
//! object item   shared u16, suffix_len u16, suffix (the key: the first
//!               `shared` bytes of the previous key in the page, then the
//!               suffix), flags u8 (1: extra fields follow), etag_seq u64,
//!               time_parts u64, crc32c u32, media u32, extent u64,
//!               [size u64, pieces, metadata, digest opt, composite digest
//!               opt, part_sizes (n u32, n x u64), etag opt str]
//! ```

use std::sync::Arc;

use crate::error::{corrupt, Result};
use crate::index::objects::{Extra, ObjRec};
use crate::log::codec::{Dec, Enc};

/// Smallest encoding of one object item.
pub(crate) const OBJECT_ITEM_MIN: usize = 2 + 2 + 1 + 8 + 8 + 4 + 4 + 8;
/// Smallest encoding of one media item.
pub(crate) const MEDIA_ITEM_MIN: usize = 4 + 4 + 1;

const EXTRA: u8 = 1;

/// One interned (content type, content encoding) pair of a checkpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MediaDef {
    pub id: u32,
    pub content_type: String,
    pub content_encoding: Option<String>,
}

/// A page's run of one layer's objects, decoded: keys back to back in
/// `arena` (each ending at its `ends` entry), records beside them; media
/// ids are the checkpoint's.
#[derive(Debug, Default)]
pub struct PackedObjects {
    pub layer: String,
    pub arena: String,
    pub ends: Vec<u32>,
    pub recs: Vec<ObjRec>,
}

impl PackedObjects {
    /// The objects, in key order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &ObjRec)> + '_ {
        let starts = std::iter::once(0).chain(self.ends.iter().map(|e| *e as usize));
        starts
            .zip(self.ends.iter())
            .map(|(s, e)| self.arena.get(s..*e as usize).unwrap_or(""))
            .zip(self.recs.iter())
    }
}

pub(crate) fn encode_media(
    e: &mut Enc,
    id: u32,
    content_type: &str,
    content_encoding: Option<&str>,
) {
    e.u32(id);
    e.str(content_type);
    e.opt_str(&content_encoding.map(str::to_string));
}

pub(crate) fn decode_media(d: &mut Dec) -> Result<MediaDef> {
    Ok(MediaDef {
        id: d.u32()?,
        content_type: d.str()?,
        content_encoding: d.opt_str()?,
    })
}

/// Encodes one object after `prev` (the page's previous key; "" for its
/// first), with `media` for its media id.
pub(crate) fn encode_object(e: &mut Enc, prev: &str, key: &str, r: &ObjRec, media: u32) {
    let shared = prev
        .bytes()
        .zip(key.bytes())
        .take(u16::MAX as usize)
        .take_while(|(a, b)| a == b)
        .count();
    // Back off to a character boundary, so the suffix is UTF-8 itself.
    let shared = (0..=shared)
        .rev()
        .find(|i| key.is_char_boundary(*i))
        .unwrap_or(0);
    let suffix = &key.as_bytes()[shared..];
    e.0.extend_from_slice(&(shared as u16).to_le_bytes());
    e.0.extend_from_slice(&(suffix.len().min(u16::MAX as usize) as u16).to_le_bytes());
    e.0.extend_from_slice(suffix);
    e.u8(if r.extra.is_some() { EXTRA } else { 0 });
    e.u64(r.etag_seq);
    e.u64(r.time_parts);
    e.u32(r.crc32c);
    e.u32(media);
    e.u64(r.extent);
    if let Some(x) = &r.extra {
        e.u64(x.size);
        e.pieces(&x.pieces);
        e.metadata(&x.metadata);
        e.opt_digest(&x.digest);
        e.opt_digest(&x.composite_digest);
        e.u64s(&x.part_sizes);
        e.opt_str(&x.etag);
    }
}

fn u16_of(d: &mut Dec) -> Result<usize> {
    let b = d.take(2)?;
    Ok(usize::from(u16::from_le_bytes([b[0], b[1]])))
}

/// Decodes `n` object items of `layer` (their count already checked
/// against the bytes left). Keys must come in strictly increasing order.
pub(crate) fn decode_objects(d: &mut Dec, n: usize, layer: String) -> Result<PackedObjects> {
    let mut p = PackedObjects {
        layer,
        arena: String::new(),
        ends: Vec::with_capacity(n),
        recs: Vec::with_capacity(n),
    };
    let mut prev = 0..0;
    for _ in 0..n {
        let shared = u16_of(d)?;
        let len = u16_of(d)?;
        let suffix = std::str::from_utf8(d.take(len)?)
            .map_err(|_| corrupt!("checkpoint key is not UTF-8"))?;
        if shared > prev.len() || !p.arena.is_char_boundary(prev.start + shared) {
            return Err(corrupt!(
                "checkpoint key shares {shared} bytes with a previous key of {}",
                prev.len()
            ));
        }
        let start = p.arena.len();
        p.arena.extend_from_within(prev.start..prev.start + shared);
        p.arena.push_str(suffix);
        let key = start..p.arena.len();
        if !p.ends.is_empty() && p.arena[prev.clone()] >= p.arena[key.clone()] {
            return Err(corrupt!(
                "checkpoint key \"{}\" does not follow \"{}\"",
                &p.arena[key],
                &p.arena[prev]
            ));
        }
        let end = u32::try_from(key.end)
            .map_err(|_| corrupt!("checkpoint page holds over 4 GiB of keys"))?;
        p.ends.push(end);
        prev = key;
        let flags = d.u8()?;
        let etag_seq = d.u64()?;
        let time_parts = d.u64()?;
        let crc32c = d.u32()?;
        let media = d.u32()?;
        let extent = d.u64()?;
        let extra = match flags {
            0 => None,
            EXTRA => {
                let size = d.u64()?;
                let pieces = d.pieces()?;
                let metadata = d.metadata()?;
                let digest = d.opt_digest()?;
                let composite_digest = d.opt_digest()?;
                let part_sizes = d.u64s()?;
                let etag = d.opt_str()?;
                Some(Arc::new(Extra {
                    size,
                    pieces,
                    metadata,
                    digest,
                    composite_digest,
                    part_sizes: part_sizes.into(),
                    etag,
                }))
            }
            f => return Err(corrupt!("checkpoint object flags {f}")),
        };
        p.recs.push(ObjRec::from_parts(
            etag_seq, extent, extra, time_parts, crc32c, media,
        ));
    }
    Ok(p)
}
