//! Checkpoints on disk: the whole index state in pages (data regions, kind
//! 1, written like part bodies with no lock held), then one metadata record
//! that names them, with their CRC32Cs, and the log position the state
//! covers. Pure encoding and decoding; `docs/FORMAT.md` ("Checkpoints") has
//! the layout in prose, `src/checkpoint.rs` writes them and
//! `src/recovery.rs` restores them.
//!
//! ```text
//! page (a region's bytes)  19 u8, base_segment u64, base_offset u64, seq u32,
//!                          section u8, n u32, n items of that section
//! checkpoint (tag 20)      base_segment u64, base_offset u64, max_id u64,
//!                          n u32, n x (segment u64, offset u64, len u64,
//!                          crc32c u32): the pages, in order
//! checkpoint (tag 21)      tag 20's fields, then m u32, m x (segment u64,
//!                          end u64, region_bytes u64): sealed segments
//!                          before the base, ascending
//! ```
//! Sections, in this order (a section may span pages; an empty one has
//! none): 1 layers, 2 extents, 3 uploads, each item encoded exactly as in a
//! version-2 snapshot (tag 18); then the objects, either as 4 objects
//! (snapshot items; written by the first builds with checkpoints, still
//! read) or as 5 media and 6 packed objects (`src/index/packed.rs`: one
//! layer's objects per page, the layer's name after the item count,
//! keys prefix-compressed within the page).

use std::path::Path;

use crate::backend::Backend;
use crate::error::{corrupt, Result};
use crate::index::{
    decode_media, decode_objects, encode_media, encode_object, MediaDef, ObjRef, PackedObjects,
    MEDIA_ITEM_MIN, OBJECT_ITEM_MIN,
};
use crate::log::codec::*;
#[cfg(test)]
use crate::log::meta::{ExtentDef, Snapshot};
use crate::log::meta::{LayerSnap, ObjectSnap, UploadSnap};

/// A log position: (segment id, byte offset).
pub(crate) type Pos = (u64, u64);

/// A page is closed once its items reach this many bytes (an item is never
/// split, so a page may be longer by one item).
pub(crate) const PAGE_BYTES: usize = 1 << 20;

const SECTION_LAYERS: u8 = 1;
const SECTION_EXTENTS: u8 = 2;
const SECTION_UPLOADS: u8 = 3;
const SECTION_OBJECTS: u8 = 4;
const SECTION_MEDIA: u8 = 5;
const SECTION_PACKED: u8 = 6;

/// Offset of a page's item count in its encoding (tag, base, seq, section).
const COUNT_AT: usize = 1 + 8 + 8 + 4 + 1;

/// Where a page of a checkpoint is: a data region's bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct PageRef {
    pub(crate) segment: u64,
    /// File offset of the page's first byte (the region's data).
    pub(crate) offset: u64,
    pub(crate) len: u64,
    /// CRC32C of the page's bytes.
    pub(crate) crc32c: u32,
}

/// What a sealed segment holds, as a checkpoint records it: the end of its
/// records and the sum of its data regions' lengths (holes included), so
/// that an open need not walk its records to learn them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct SegmentCount {
    pub(crate) segment: u64,
    /// Offset just past its last record.
    pub(crate) end: u64,
    /// Sum of the lengths its data regions' headers give.
    pub(crate) region_bytes: u64,
}

/// Most segment counts one checkpoint record carries (24 bytes each): the
/// record stays well inside the metadata reserve of a full disk; an open
/// walks the records of the segments left out.
pub(crate) const MAX_SEGMENT_COUNTS: usize = 8192;

/// A checkpoint's record: the state of every record before `base`, in
/// `pages` (in order), and the counts of sealed segments before the base
/// (tag 21; none: tag 20).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct CheckpointEnd {
    pub(crate) base: Pos,
    pub(crate) max_id: u64,
    pub(crate) pages: Vec<PageRef>,
    pub(crate) counts: Vec<SegmentCount>,
}

impl CheckpointEnd {
    /// Bytes of its pages in each segment that holds some, by segment id.
    pub(crate) fn page_bytes(&self) -> Vec<(u64, u64)> {
        let mut by: Vec<(u64, u64)> = Vec::new();
        for p in &self.pages {
            match by.iter_mut().find(|(s, _)| *s == p.segment) {
                Some((_, n)) => *n += p.len,
                None => by.push((p.segment, p.len)),
            }
        }
        by
    }

    /// The record's encoding (tag 20, or 21 with counts).
    pub(crate) fn encode(&self) -> Vec<u8> {
        let mut e = Enc(Vec::with_capacity(
            36 + 28 * self.pages.len() + 24 * self.counts.len(),
        ));
        e.u8(match self.counts.is_empty() {
            true => T_CHECKPOINT,
            false => T_CHECKPOINT_COUNTED,
        });
        e.u64(self.base.0);
        e.u64(self.base.1);
        e.u64(self.max_id);
        e.u32(self.pages.len() as u32);
        for p in &self.pages {
            e.u64(p.segment);
            e.u64(p.offset);
            e.u64(p.len);
            e.u32(p.crc32c);
        }
        if !self.counts.is_empty() {
            e.u32(self.counts.len() as u32);
            for c in &self.counts {
                e.u64(c.segment);
                e.u64(c.end);
                e.u64(c.region_bytes);
            }
        }
        e.0
    }

    /// Decodes a tag-20 or tag-21 record (the encoded `Meta` part of its
    /// payload).
    pub(crate) fn decode(meta: &[u8]) -> Result<CheckpointEnd> {
        let mut d = Dec(meta);
        let tag = d.u8()?;
        if !is_checkpoint(tag) {
            return Err(corrupt!("record tag {tag} is not a checkpoint"));
        }
        let base = (d.u64()?, d.u64()?);
        let max_id = d.u64()?;
        let n = d.count(28)?;
        let mut pages = Vec::with_capacity(n);
        for _ in 0..n {
            pages.push(PageRef {
                segment: d.u64()?,
                offset: d.u64()?,
                len: d.u64()?,
                crc32c: d.u32()?,
            });
        }
        let mut counts = Vec::new();
        if tag == T_CHECKPOINT_COUNTED {
            let n = d.count(24)?;
            counts.reserve(n);
            for _ in 0..n {
                counts.push(SegmentCount {
                    segment: d.u64()?,
                    end: d.u64()?,
                    region_bytes: d.u64()?,
                });
            }
            // (Canonical: tag 21 only with counts, in ascending segment
            // order, each a sealed segment before the base whose regions
            // fit within its records.)
            let bad = counts.is_empty()
                || counts.windows(2).any(|w| w[0].segment >= w[1].segment)
                || counts.iter().any(|c| {
                    c.segment >= base.0
                        || c.end < crate::log::format::SEGMENT_HEADER_LEN
                        || c.region_bytes > c.end
                });
            if bad {
                return Err(corrupt!(
                    "checkpoint segment counts are empty, out of order, or past its base {base:?}"
                ));
            }
        }
        if !d.0.is_empty() {
            return Err(corrupt!("{} trailing bytes after a checkpoint", d.0.len()));
        }
        let at = |p: &PageRef| (p.segment, p.offset);
        if pages.iter().any(|p| at(p) < base) || pages.windows(2).any(|w| at(&w[0]) >= at(&w[1])) {
            return Err(corrupt!(
                "checkpoint pages are not in log order after its base {base:?}"
            ));
        }
        Ok(CheckpointEnd {
            base,
            max_id,
            pages,
            counts,
        })
    }
}

/// The file that says where the last checkpoint is: a hint that lets
/// `open` scan the log from its base instead of from the start (the
/// records before a checkpoint's base are not needed to rebuild the
/// index). Two 48-byte slots written in turn, in place, never synced:
/// `seq u64, base_segment u64, base_offset u64, record_segment u64,
/// record_offset u64, record_crc32c u32` (of the checkpoint record's
/// encoded `Meta`), `crc32c u32` (of the 44 bytes before it). The slot
/// with the highest sequence number whose CRC matches wins, and is used
/// only if the record it names is there, intact, with that CRC and base;
/// a torn, stale or lost file only makes open scan every segment.
pub(crate) const POINTER_FILE: &str = "checkpoint.pos";

const SLOT: usize = 48;

/// A checkpoint as the pointer file names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Pointer {
    pub(crate) seq: u64,
    pub(crate) base: Pos,
    /// Where the checkpoint's record is.
    pub(crate) record: Pos,
    /// CRC32C of the record's encoded `Meta` (`CheckpointEnd::encode`).
    pub(crate) crc32c: u32,
}

/// The newest valid hint of [`POINTER_FILE`], if any.
pub(crate) fn read_pointer(backend: &dyn Backend, dir: &Path) -> Option<Pointer> {
    let file = backend.open(&dir.join(POINTER_FILE)).ok()?;
    let mut buf = [0u8; 2 * SLOT];
    file.read_exact_at(&mut buf, 0).ok()?;
    buf.chunks_exact(SLOT)
        .filter_map(|s| {
            let word = |i: usize| {
                let mut w = [0u8; 8];
                w.copy_from_slice(&s[i * 8..i * 8 + 8]);
                u64::from_le_bytes(w)
            };
            let half = |i: usize| u32::from_le_bytes([s[i], s[i + 1], s[i + 2], s[i + 3]]);
            (crc32c::crc32c(&s[..44]) == half(44)).then(|| Pointer {
                seq: word(0),
                base: (word(1), word(2)),
                record: (word(3), word(4)),
                crc32c: half(40),
            })
        })
        .max_by_key(|p| p.seq)
}

/// Writes hint `p` into slot `p.seq % 2`.
pub(crate) fn write_pointer(backend: &dyn Backend, dir: &Path, p: &Pointer) -> std::io::Result<()> {
    let path = dir.join(POINTER_FILE);
    let file = match backend.open(&path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => backend.create_new(&path)?,
        Err(e) => return Err(e),
    };
    let mut slot = Vec::with_capacity(SLOT);
    for w in [p.seq, p.base.0, p.base.1, p.record.0, p.record.1] {
        slot.extend_from_slice(&w.to_le_bytes());
    }
    slot.extend_from_slice(&p.crc32c.to_le_bytes());
    let crc = crc32c::crc32c(&slot);
    slot.extend_from_slice(&crc.to_le_bytes());
    file.write_all_at(&slot, (p.seq % 2) * SLOT as u64)
}

/// A page's extents, decoded flat (no allocation per extent): each one's
/// `[id, segment, offset, len]`, and its block CRCs in one shared array.
#[derive(Debug, Default)]
pub(crate) struct ExtentRun {
    fields: Vec<[u64; 4]>,
    /// Where each extent's CRCs end in `crcs`.
    ends: Vec<u32>,
    crcs: Vec<u32>,
}

impl ExtentRun {
    /// The extents, in page order.
    pub(crate) fn iter(&self) -> impl Iterator<Item = ([u64; 4], &[u32])> + '_ {
        let starts = std::iter::once(0).chain(self.ends.iter().map(|e| *e as usize));
        self.fields
            .iter()
            .zip(starts.zip(self.ends.iter()))
            .map(|(f, (s, e))| (*f, self.crcs.get(s..*e as usize).unwrap_or(&[])))
    }
}

/// The items of one page.
#[derive(Debug)]
pub(crate) enum Page {
    Layers(Vec<LayerSnap>),
    Extents(ExtentRun),
    Uploads(Vec<UploadSnap>),
    Objects(Vec<(String, ObjectSnap)>),
    Media(Vec<MediaDef>),
    Packed(PackedObjects),
}

impl Page {
    /// The page's section (pages come in section order).
    pub(crate) fn section(&self) -> u8 {
        match self {
            Page::Layers(_) => SECTION_LAYERS,
            Page::Extents(_) => SECTION_EXTENTS,
            Page::Uploads(_) => SECTION_UPLOADS,
            Page::Objects(_) => SECTION_OBJECTS,
            Page::Media(_) => SECTION_MEDIA,
            Page::Packed(_) => SECTION_PACKED,
        }
    }
}

/// Cuts a stream of items into pages and hands each to `emit` (which
/// writes it and says where).
struct Pager<'a> {
    base: Pos,
    target: usize,
    section: u8,
    /// The layer of the packed objects being paged.
    layer: String,
    /// The previous key of the page (packed objects).
    prev: String,
    count: u32,
    enc: Enc,
    pages: Vec<PageRef>,
    emit: &'a mut dyn FnMut(&[u8]) -> Result<PageRef>,
}

impl Pager<'_> {
    fn item(&mut self, f: impl FnOnce(&mut Enc)) -> Result<()> {
        if self.count == 0 {
            self.enc.0.clear();
            self.enc.u8(T_CHECKPOINT_PAGE);
            self.enc.u64(self.base.0);
            self.enc.u64(self.base.1);
            self.enc.u32(self.pages.len() as u32);
            self.enc.u8(self.section);
            self.enc.u32(0);
            if self.section == SECTION_PACKED {
                self.enc.str(&self.layer);
            }
        }
        f(&mut self.enc);
        self.count += 1;
        if self.enc.0.len() >= self.target {
            self.flush()?;
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<()> {
        if self.count > 0 {
            self.enc.0[COUNT_AT..COUNT_AT + 4].copy_from_slice(&self.count.to_le_bytes());
            let pos = (self.emit)(&self.enc.0)?;
            self.pages.push(pos);
            self.count = 0;
        }
        Ok(())
    }

    fn section(&mut self, s: u8) -> Result<()> {
        self.flush()?;
        self.section = s;
        Ok(())
    }

    /// One packed object of `layer` (a new layer starts a new page).
    fn packed(&mut self, layer: &str, o: ObjRef<'_>, media: u32) -> Result<()> {
        if self.section != SECTION_PACKED || self.layer != layer {
            self.section(SECTION_PACKED)?;
            self.layer = layer.to_string();
        }
        let mut prev = std::mem::take(&mut self.prev);
        if self.count == 0 {
            // A page's first key shares nothing: pages decode on their own.
            prev.clear();
        }
        self.item(|e| encode_object(e, &prev, o.key, o.rec, media))?;
        prev.clear();
        prev.push_str(o.key);
        self.prev = prev;
        Ok(())
    }
}

/// Writes `snap` as pages of about `target` bytes through `emit`, which
/// stores one page and says where; returns the pages in order. `snap` is
/// consumed item by item, so its memory goes as the pages are written.
pub(crate) fn write_pages<'a>(
    snap: impl Into<crate::index::SnapshotStream<'a>>,
    base: Pos,
    target: usize,
    emit: &mut dyn FnMut(&[u8]) -> Result<PageRef>,
) -> Result<Vec<PageRef>> {
    let mut p = Pager {
        base,
        target,
        section: SECTION_LAYERS,
        layer: String::new(),
        prev: String::new(),
        count: 0,
        enc: Enc(Vec::with_capacity(target + (64 << 10))),
        pages: Vec::new(),
        emit,
    };
    let snap = snap.into();
    for l in &snap.layers {
        p.item(|e| e.layer_snap(l, true))?;
    }
    p.section(SECTION_EXTENTS)?;
    for x in snap.extents {
        p.item(|e| e.extent_def(&x))?;
    }
    p.section(SECTION_UPLOADS)?;
    for u in snap.uploads {
        p.item(|e| e.upload_snap(&u, true))?;
    }
    p.section(SECTION_OBJECTS)?;
    for (layer, o) in snap.objects {
        p.item(|e| e.object_snap(&layer, &o, true))?;
    }
    p.section(SECTION_MEDIA)?;
    for m in &snap.media {
        p.item(|e| encode_media(e, m.id, &m.content_type, m.content_encoding.as_deref()))?;
    }
    for (layer, o, media) in snap.packed {
        p.packed(layer, o, media)?;
    }
    p.flush()?;
    Ok(p.pages)
}

/// Decodes page `seq` of the checkpoint whose base is `base` (the page's
/// bytes, checked against its CRC32C by the caller).
pub(crate) fn decode_page(bytes: &[u8], base: Pos, seq: u32) -> Result<Page> {
    let mut d = Dec(bytes);
    let tag = d.u8()?;
    let page_base = (d.u64()?, d.u64()?);
    let page_seq = d.u32()?;
    if tag != T_CHECKPOINT_PAGE || page_base != base || page_seq != seq {
        return Err(corrupt!(
            "checkpoint page {seq} of base {base:?} is tag {tag}, page {page_seq} of base {page_base:?}"
        ));
    }
    let section = d.u8()?;
    let page = match section {
        SECTION_LAYERS => {
            let n = d.count(LAYER_MIN + LAYER_V2_EXTRA)?;
            let mut v = Vec::with_capacity(n);
            for _ in 0..n {
                v.push(d.layer_snap(true)?);
            }
            Page::Layers(v)
        }
        SECTION_EXTENTS => {
            let n = d.count(EXTENT_MIN)?;
            let mut run = ExtentRun {
                fields: Vec::with_capacity(n),
                ends: Vec::with_capacity(n),
                crcs: Vec::with_capacity(n),
            };
            for _ in 0..n {
                run.fields.push([d.u64()?, d.u64()?, d.u64()?, d.u64()?]);
                let k = d.count(4)?;
                for _ in 0..k {
                    run.crcs.push(d.u32()?);
                }
                let end = u32::try_from(run.crcs.len())
                    .map_err(|_| corrupt!("checkpoint page {seq}: too many block CRCs"))?;
                run.ends.push(end);
            }
            Page::Extents(run)
        }
        SECTION_UPLOADS => {
            let n = d.count(UPLOAD_MIN + UPLOAD_V2_EXTRA)?;
            let mut v = Vec::with_capacity(n);
            for _ in 0..n {
                v.push(d.upload_snap(true)?);
            }
            Page::Uploads(v)
        }
        SECTION_OBJECTS => {
            let n = d.count(OBJECT_MIN + OBJECT_V2_EXTRA)?;
            let mut v = Vec::with_capacity(n);
            for _ in 0..n {
                v.push(d.object_snap(true)?);
            }
            Page::Objects(v)
        }
        SECTION_MEDIA => {
            let n = d.count(MEDIA_ITEM_MIN)?;
            let mut v = Vec::with_capacity(n);
            for _ in 0..n {
                v.push(decode_media(&mut d)?);
            }
            Page::Media(v)
        }
        SECTION_PACKED => {
            let n = d.count(OBJECT_ITEM_MIN)?;
            let layer = d.str()?;
            Page::Packed(decode_objects(&mut d, n, layer)?)
        }
        s => return Err(corrupt!("checkpoint page {seq}: unknown section {s}")),
    };
    if !d.0.is_empty() {
        return Err(corrupt!(
            "checkpoint page {seq}: {} trailing bytes",
            d.0.len()
        ));
    }
    Ok(page)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::index::Index;
    use crate::log::meta::{PartSnap, Piece};

    fn sample(objects: usize) -> Snapshot {
        Snapshot {
            legacy: false,
            max_id: 77,
            layers: vec![LayerSnap {
                id: "maps".into(),
                created_ms: 5,
                ..LayerSnap::default()
            }],
            extents: (1..=objects as u64)
                .map(|id| ExtentDef {
                    id,
                    segment: 1,
                    offset: 56 * id,
                    len: 3,
                    block_crcs: vec![id as u32],
                })
                .collect(),
            uploads: vec![UploadSnap {
                id: [3; 16],
                layer: "maps".into(),
                key: "u".into(),
                content_type: "a/b".into(),
                parts: vec![PartSnap {
                    number: 1,
                    id: 9,
                    size: 3,
                    pieces: vec![Piece {
                        extent: 1,
                        offset: 0,
                        len: 3,
                    }],
                    ..PartSnap::default()
                }],
                ..UploadSnap::default()
            }],
            objects: (1..=objects as u64)
                .map(|id| {
                    (
                        "maps".to_string(),
                        ObjectSnap {
                            key: format!("k{id:06}"),
                            size: 3,
                            content_type: "a/b".into(),
                            etag: "e".into(),
                            part_count: 1,
                            pieces: vec![Piece {
                                extent: id,
                                offset: 0,
                                len: 3,
                            }],
                            ..ObjectSnap::default()
                        },
                    )
                })
                .collect(),
        }
    }

    fn round_trip(snap: &Snapshot, target: usize) -> (usize, Index) {
        let base = (4, 4096);
        let mut stored: Vec<Vec<u8>> = Vec::new();
        let mut emit = |b: &[u8]| {
            stored.push(b.to_vec());
            Ok(PageRef {
                segment: 5,
                offset: stored.len() as u64 * 100,
                len: b.len() as u64,
                crc32c: crc32c::crc32c(b),
            })
        };
        let pages = write_pages(snap.clone(), base, target, &mut emit).unwrap();
        assert_eq!(pages.len(), stored.len());
        let end = CheckpointEnd {
            base,
            max_id: snap.max_id,
            pages,
            counts: Vec::new(),
        };
        let end2 = CheckpointEnd::decode(&end.encode()).unwrap();
        assert_eq!(end, end2);
        let decoded = stored
            .iter()
            .enumerate()
            .map(|(i, b)| decode_page(b, base, i as u32).unwrap())
            .collect();
        let restored = Index::restore_checkpoint(end2.max_id, decoded);
        (stored.len(), restored.unwrap())
    }

    #[test]
    fn pages_round_trip() {
        let snap = sample(1000);
        for target in [1, 100, 4096, PAGE_BYTES] {
            let (n, back) = round_trip(&snap, target);
            assert!(back == Index::restore(&snap).unwrap(), "target {target}");
            if target == 1 {
                assert_eq!(n, 2002, "one item per page");
            }
        }
        let (n, back) = round_trip(&Snapshot::default(), 100);
        assert_eq!(n, 0);
        assert!(back == Index::default());
    }

    #[test]
    fn the_pointer_keeps_its_newest_valid_slot() {
        let dir = tempfile::tempdir().unwrap();
        let b = crate::backend::StdBackend;
        let p = |seq, base, record, crc32c| Pointer {
            seq,
            base,
            record,
            crc32c,
        };
        assert_eq!(read_pointer(&b, dir.path()), None);
        write_pointer(&b, dir.path(), &p(1, (3, 64), (4, 9), 7)).unwrap();
        assert_eq!(read_pointer(&b, dir.path()), Some(p(1, (3, 64), (4, 9), 7)));
        write_pointer(&b, dir.path(), &p(2, (4, 128), (4, 300), 8)).unwrap();
        assert_eq!(
            read_pointer(&b, dir.path()),
            Some(p(2, (4, 128), (4, 300), 8))
        );
        // A torn write of the newer slot: the older one is the hint.
        let path = dir.path().join(POINTER_FILE);
        let mut bytes = std::fs::read(&path).unwrap();
        bytes[0] ^= 1;
        std::fs::write(&path, &bytes).unwrap();
        assert_eq!(read_pointer(&b, dir.path()), Some(p(1, (3, 64), (4, 9), 7)));
        std::fs::write(&path, [0u8; 7]).unwrap();
        assert_eq!(read_pointer(&b, dir.path()), None);
    }

    #[test]
    fn pages_of_another_checkpoint_or_order_are_corrupt() {
        let mut stored = Vec::new();
        let mut emit = |b: &[u8]| {
            stored.push(b.to_vec());
            Ok(PageRef {
                segment: 1,
                offset: stored.len() as u64,
                len: b.len() as u64,
                crc32c: 0,
            })
        };
        write_pages(sample(10), (1, 32), 1, &mut emit).unwrap();
        assert!(decode_page(&stored[0], (1, 40), 0).is_err());
        assert!(decode_page(&stored[1], (1, 32), 0).is_err());
        let mut trailing = stored[0].clone();
        trailing.push(0);
        assert!(decode_page(&trailing, (1, 32), 0).is_err());
        let pages: Vec<Page> = stored
            .iter()
            .enumerate()
            .map(|(i, b)| decode_page(b, (1, 32), i as u32).unwrap())
            .rev()
            .collect();
        assert!(Index::restore_checkpoint(0, pages).is_err());
        let bad = CheckpointEnd {
            base: (2, 32),
            max_id: 0,
            pages: vec![PageRef {
                segment: 1,
                offset: 40,
                len: 8,
                crc32c: 0,
            }],
            counts: Vec::new(),
        };
        assert!(CheckpointEnd::decode(&bad.encode()).is_err());
    }

    #[test]
    fn segment_counts_round_trip_and_are_checked() {
        let c = |segment, end, region_bytes| SegmentCount {
            segment,
            end,
            region_bytes,
        };
        let page = PageRef {
            segment: 7,
            offset: 100,
            len: 8,
            crc32c: 3,
        };
        let end = CheckpointEnd {
            base: (7, 64),
            max_id: 9,
            pages: vec![page],
            counts: vec![c(2, 4096, 1000), c(5, 1 << 20, 0)],
        };
        let bytes = end.encode();
        assert_eq!(bytes[0], T_CHECKPOINT_COUNTED);
        assert_eq!(CheckpointEnd::decode(&bytes).unwrap(), end);
        // Without counts: the old tag, byte for byte.
        let plain = CheckpointEnd {
            counts: Vec::new(),
            ..end.clone()
        };
        assert_eq!(plain.encode()[0], T_CHECKPOINT);
        assert_eq!(CheckpointEnd::decode(&plain.encode()).unwrap(), plain);
        for counts in [
            vec![c(5, 4096, 0), c(2, 4096, 0)],
            vec![c(2, 4096, 0), c(2, 8192, 0)],
            vec![c(7, 4096, 0)],
            vec![c(2, 8, 0)],
            vec![c(2, 4096, 4097)],
        ] {
            let bad = CheckpointEnd {
                counts: counts.clone(),
                ..end.clone()
            };
            assert!(CheckpointEnd::decode(&bad.encode()).is_err(), "{counts:?}");
        }
        // Tag 21 with no counts is not canonical.
        let mut empty = plain.encode();
        empty[0] = T_CHECKPOINT_COUNTED;
        empty.extend_from_slice(&0u32.to_le_bytes());
        assert!(CheckpointEnd::decode(&empty).is_err());
        // Trailing bytes after the counts.
        let mut trailing = bytes;
        trailing.push(0);
        assert!(CheckpointEnd::decode(&trailing).is_err());
    }
}
