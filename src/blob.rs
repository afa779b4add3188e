//! Reading committed objects: [`Blob`], a pinned snapshot of an object whose
//! bytes are served as zero-copy [`Slice`]s of memory-mapped segments.

use crate::error::Reason;
use std::io::{self, Read, Seek, SeekFrom};
use std::sync::Arc;

use crate::log::map::Map;

use crate::error::{corrupt, Result};
use crate::log::map::Slice;
use crate::spec::{ByteRange, BLOCK_SIZE};
use crate::types::ObjectInfo;

/// One run of an object's bytes inside one extent, resolved to its map.
#[derive(Clone)]
pub(crate) struct BlobPiece {
    /// Offset of this piece in the object.
    pub(crate) start: u64,
    pub(crate) len: u64,
    /// Offset of the piece inside its extent.
    pub(crate) extent_offset: u64,
    pub(crate) extent: ExtentView,
}

/// An extent's bytes and block CRCs, pinned.
#[derive(Clone)]
pub(crate) struct ExtentView {
    pub(crate) id: u64,
    pub(crate) segment: u64,
    /// File offset of the extent's first byte.
    pub(crate) file_offset: u64,
    pub(crate) len: u64,
    pub(crate) block_crcs: Arc<[u32]>,
    /// Blocks already verified at this location (shared by every view).
    pub(crate) verified: crate::index::Verified,
    pub(crate) map: Arc<Map>,
}

impl ExtentView {
    /// The extent's bytes `off..off+len`, unchecked against CRCs.
    pub(crate) fn bytes(&self, off: u64, len: u64) -> Result<&[u8]> {
        let start = self.file_offset.checked_add(off);
        let end = start.and_then(|s| s.checked_add(len));
        match (start, end) {
            (Some(s), Some(e)) if off + len <= self.len && e <= self.map.len() as u64 => {
                Ok(&self.map[s as usize..e as usize])
            }
            _ => Err(corrupt!(
                "extent {} (segment {}, offset {}): range {off}+{len} is outside it",
                self.id,
                self.segment,
                self.file_offset
            )),
        }
    }

    /// Length of block `i`.
    pub(crate) fn block_len(&self, i: u64) -> u64 {
        (self.len - i * BLOCK_SIZE).min(BLOCK_SIZE)
    }

    /// Checks block `i` against its stored CRC32C, once: a block a read
    /// verified before is not hashed again (see [`crate::index::Verified`]).
    pub(crate) fn verify_block(&self, i: u64) -> Result<()> {
        if self.verified.get(i) {
            return Ok(());
        }
        self.check_block(i)?;
        self.verified.set(i);
        Ok(())
    }

    /// Checks block `i` against its stored CRC32C, always (`verify()`).
    pub(crate) fn check_block(&self, i: u64) -> Result<()> {
        let bytes = self.bytes(i * BLOCK_SIZE, self.block_len(i))?;
        let expected = self.block_crcs.get(i as usize).copied();
        let got = crc32c::crc32c(bytes);
        if expected != Some(got) {
            return Err(corrupt!(
                "extent {} block {i} (segment {}, file offset {}): CRC32C {got:08x}, expected {}",
                self.id,
                self.segment,
                self.file_offset + i * BLOCK_SIZE,
                expected.map_or("none".to_string(), |c| format!("{c:08x}"))
            )
            .checksum()
            .at(self.segment, self.file_offset + i * BLOCK_SIZE));
        }
        Ok(())
    }

    /// Verifies every block overlapping `off..off+len`.
    pub(crate) fn verify_range(&self, off: u64, len: u64) -> Result<()> {
        if len == 0 {
            return Ok(());
        }
        for i in off / BLOCK_SIZE..(off + len).div_ceil(BLOCK_SIZE) {
            self.verify_block(i)?;
        }
        Ok(())
    }

    /// CRC32C of `off..off+len`, combined from stored block CRCs for whole
    /// blocks and computed (after verifying the block) for partial ones.
    pub(crate) fn crc_of(&self, off: u64, len: u64) -> Result<u32> {
        let mut crc = 0u32;
        let mut have = 0u64;
        let mut pos = off;
        let end = off + len;
        while pos < end {
            let block = pos / BLOCK_SIZE;
            let block_start = block * BLOCK_SIZE;
            let block_end = block_start + self.block_len(block);
            let take_end = end.min(block_end);
            let piece_crc = if pos == block_start && take_end == block_end {
                self.block_crcs
                    .get(block as usize)
                    .copied()
                    .ok_or_else(|| corrupt!("extent {} has no CRC for block {block}", self.id))?
            } else {
                self.verify_block(block)?;
                crc32c::crc32c(self.bytes(pos, take_end - pos)?)
            };
            let n = take_end - pos;
            crc = if have == 0 {
                piece_crc
            } else {
                crate::digest::crc32c_combine(crc, piece_crc, n)
            };
            have += n;
            pos = take_end;
        }
        Ok(crc)
    }
}

struct BlobInner {
    info: ObjectInfo,
    pieces: Vec<BlobPiece>,
    verify: bool,
}

/// A pinned snapshot of one object. It keeps reading the same bytes after
/// the key is deleted or replaced and while compaction runs: it holds the
/// memory maps it reads from. Cheap to clone.
#[derive(Clone)]
pub struct Blob {
    inner: Arc<BlobInner>,
}

impl std::fmt::Debug for Blob {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Blob")
            .field("info", &self.inner.info)
            .finish()
    }
}

impl Blob {
    pub(crate) fn new(info: ObjectInfo, pieces: Vec<BlobPiece>, verify: bool) -> Blob {
        Blob {
            inner: Arc::new(BlobInner {
                info,
                pieces,
                verify,
            }),
        }
    }

    /// The object's metadata.
    pub fn info(&self) -> &ObjectInfo {
        &self.inner.info
    }

    /// The object's size in bytes.
    pub fn size(&self) -> u64 {
        self.inner.info.size
    }

    /// The bytes of one HTTP range (SPEC rules: RangeNotSatisfiable for a
    /// start past the end, any range of an empty object, ...), as slices of
    /// the memory-mapped segments. The blocks they touch are verified first
    /// unless `Options::verify_reads` is off.
    pub fn read_range(&self, range: ByteRange) -> Result<Vec<Slice>> {
        let span = range.resolve(self.size())?;
        self.slices(span.start, span.end)
    }

    /// The bytes `start..end` of the object as zero-copy slices (verified
    /// like [`Blob::read_range`]). An empty span gives no slices.
    pub fn slices(&self, start: u64, end: u64) -> Result<Vec<Slice>> {
        let size = self.size();
        if start > end || end > size {
            return Err(crate::error::unsatisfiable!(
                Reason::InvalidRange,
                "span {start}..{end} is outside the object of {size} bytes"
            ));
        }
        let mut out = Vec::new();
        if start == end {
            return Ok(out);
        }
        let first = self.piece_at(start);
        for p in &self.inner.pieces[first..] {
            if p.start >= end {
                break;
            }
            let from = start.max(p.start) - p.start;
            let to = end.min(p.start + p.len) - p.start;
            let ext_off = p.extent_offset + from;
            let len = to - from;
            if self.inner.verify {
                p.extent.verify_range(ext_off, len)?;
            }
            out.push(Slice::from_map(
                Arc::clone(&p.extent.map),
                p.extent.file_offset + ext_off,
                len,
            )?);
        }
        Ok(out)
    }

    /// The whole object copied into a `Vec` (convenience; prefer slices).
    pub fn to_vec(&self) -> Result<Vec<u8>> {
        let mut v = Vec::with_capacity(self.size() as usize);
        for s in self.slices(0, self.size())? {
            v.extend_from_slice(&s);
        }
        Ok(v)
    }

    /// A `Read + Seek` over the object, verifying each block it enters.
    pub fn reader(&self) -> BlobReader {
        BlobReader {
            blob: self.clone(),
            pos: 0,
            verified: None,
        }
    }

    /// Index of the piece containing object offset `pos` (or the last one).
    fn piece_at(&self, pos: u64) -> usize {
        let pieces = &self.inner.pieces;
        pieces
            .partition_point(|p| p.start + p.len <= pos)
            .min(pieces.len().saturating_sub(1))
    }
}

/// A reader over a [`Blob`]; see [`Blob::reader`].
pub struct BlobReader {
    blob: Blob,
    pos: u64,
    /// (extent id, block) last verified, so small reads don't re-verify.
    verified: Option<(u64, u64)>,
}

impl std::fmt::Debug for BlobReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BlobReader")
            .field("key", &self.blob.info().key)
            .field("size", &self.blob.size())
            .field("pos", &self.pos)
            .finish()
    }
}

impl Read for BlobReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let size = self.blob.size();
        if buf.is_empty() || self.pos >= size {
            return Ok(0);
        }
        let i = self.blob.piece_at(self.pos);
        let Some(p) = self.blob.inner.pieces.get(i) else {
            return Ok(0);
        };
        let in_piece = self.pos - p.start;
        let ext_off = p.extent_offset + in_piece;
        let block = ext_off / BLOCK_SIZE;
        let block_end =
            (block * BLOCK_SIZE + p.extent.block_len(block)).min(p.extent_offset + p.len);
        let n = (buf.len() as u64).min(block_end - ext_off);
        if self.blob.inner.verify && self.verified != Some((p.extent.id, block)) {
            p.extent.verify_block(block).map_err(io::Error::other)?;
            self.verified = Some((p.extent.id, block));
        }
        let bytes = p.extent.bytes(ext_off, n).map_err(io::Error::other)?;
        buf[..n as usize].copy_from_slice(bytes);
        self.pos += n;
        Ok(n as usize)
    }
}

impl Seek for BlobReader {
    fn seek(&mut self, pos: SeekFrom) -> io::Result<u64> {
        let size = self.blob.size() as i128;
        let target = match pos {
            SeekFrom::Start(n) => n as i128,
            SeekFrom::End(d) => size + d as i128,
            SeekFrom::Current(d) => self.pos as i128 + d as i128,
        };
        if target < 0 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("seek to negative offset {target}"),
            ));
        }
        self.pos = target.min(u64::MAX as i128) as u64;
        Ok(self.pos)
    }
}
