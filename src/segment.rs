//! Segment files: creation, positioned writes, fsync, memory maps and the
//! record scan that recovery uses. All file access goes through the
//! [`Backend`](crate::backend::Backend).

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use memmap2::Mmap;

use crate::backend::{Backend, BackendFile};
use crate::error::{corrupt, Error, Result};
use crate::record::{
    decode_segment_header, encode_segment_header, framed_len, split_meta_payload, Meta,
    RecordHeader, RecordKind, RECORD_ALIGN, RECORD_HEADER_LEN, SEGMENT_HEADER_LEN,
};

/// File name of segment `id`.
pub(crate) fn segment_file_name(id: u64) -> String {
    format!("seg-{id:08}.log")
}

/// Parses a segment file name back into its id.
/// Only the canonical spelling counts, so no two files name one segment.
pub(crate) fn parse_segment_file_name(name: &str) -> Option<u64> {
    let digits = name.strip_prefix("seg-")?.strip_suffix(".log")?;
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let id = digits.parse().ok()?;
    (segment_file_name(id) == name).then_some(id)
}

/// Fsyncs a directory, so that created or removed entries are durable.
pub(crate) fn sync_dir(backend: &dyn Backend, dir: &Path) -> Result<()> {
    backend
        .sync_dir(dir)
        .map_err(|e| Error::io(format!("fsync of directory {}", dir.display()), e))
}

/// One segment file, sized to its full length up front and mapped once, so
/// the map never points past the end of the file.
pub(crate) struct Segment {
    pub(crate) id: u64,
    pub(crate) path: PathBuf,
    file: Arc<dyn BackendFile>,
    map: Arc<Mmap>,
    /// Every record header before this offset is durable (see
    /// `record::meta_payload`).
    synced: AtomicU64,
}

impl Segment {
    /// Creates segment `id` of `size` bytes (header written, rest zeros) and
    /// maps it. With `durable`, the file and its directory entry are synced.
    pub(crate) fn create(
        backend: &dyn Backend,
        dir: &Path,
        id: u64,
        size: u64,
        durable: bool,
    ) -> Result<Segment> {
        let path = dir.join(segment_file_name(id));
        let name = path.display().to_string();
        let file = backend
            .create_new(&path)
            .map_err(|e| Error::io(format!("creating {name}"), e))?;
        let seg = (|| {
            file.write_all_at(&encode_segment_header(id), 0)
                .map_err(|e| Error::io(format!("writing header of {name}"), e))?;
            file.set_len(size.max(SEGMENT_HEADER_LEN))
                .map_err(|e| Error::io(format!("sizing {name}"), e))?;
            if durable {
                file.sync_all()
                    .map_err(|e| Error::io(format!("fsync of {name}"), e))?;
                sync_dir(backend, dir)?;
            }
            Segment::from_file(id, path.clone(), Arc::clone(&file))
        })();
        if seg.is_err() {
            // Never leave a half-made segment behind for recovery to trip on.
            let _ = backend.remove_file(&path);
        }
        seg
    }

    /// Opens an existing segment file and checks its header.
    pub(crate) fn open(backend: &dyn Backend, path: &Path) -> Result<Segment> {
        let name = path.display().to_string();
        let file = backend
            .open(path)
            .map_err(|e| Error::io(format!("opening {name}"), e))?;
        let mut header = [0u8; SEGMENT_HEADER_LEN as usize];
        file.read_exact_at(&mut header, 0)
            .map_err(|_| corrupt!("segment {name}: shorter than its header"))?;
        let id = decode_segment_header(&header, &name)?;
        Segment::from_file(id, path.to_path_buf(), file)
    }

    fn from_file(id: u64, path: PathBuf, file: Arc<dyn BackendFile>) -> Result<Segment> {
        let map = file
            .map()
            .map_err(|e| Error::io(format!("mapping {}", path.display()), e))?;
        Ok(Segment {
            id,
            path,
            file,
            map: Arc::new(map),
            synced: AtomicU64::new(SEGMENT_HEADER_LEN),
        })
    }

    /// The mapped length of the segment.
    pub(crate) fn len(&self) -> u64 {
        self.map.len() as u64
    }

    /// Writes `buf` at `offset` (a positioned write; no shared cursor).
    pub(crate) fn write_at(&self, buf: &[u8], offset: u64) -> Result<()> {
        if offset.saturating_add(buf.len() as u64) > self.len() {
            return Err(corrupt!(
                "write of {} bytes at offset {offset} past the end of segment {}",
                buf.len(),
                self.id
            ));
        }
        self.file
            .write_all_at(buf, offset)
            .map_err(|e| Error::io(format!("writing {}", self.path.display()), e))
    }

    /// Starts the device write of `offset..offset+len` without waiting (see
    /// [`BackendFile::start_writeback`]). A hint: failures are ignored here
    /// and surface at the next [`Segment::sync_data`].
    pub(crate) fn start_writeback(&self, offset: u64, len: u64) {
        let _ = self.file.start_writeback(offset, len);
    }

    /// fdatasync of the segment file.
    pub(crate) fn sync_data(&self) -> Result<()> {
        self.file
            .sync_data()
            .map_err(|e| Error::io(format!("fdatasync of {}", self.path.display()), e))
    }

    /// The mapped bytes `offset..offset+len`, or `Corrupt` when out of range.
    pub(crate) fn bytes(&self, offset: u64, len: u64) -> Result<&[u8]> {
        let end = offset.checked_add(len);
        match end {
            Some(end) if end <= self.len() => Ok(&self.map[offset as usize..end as usize]),
            _ => Err(corrupt!(
                "range {offset}+{len} is outside segment {} ({} bytes)",
                self.id,
                self.len()
            )),
        }
    }

    /// Every record header before this offset is known durable.
    pub(crate) fn synced(&self) -> u64 {
        self.synced.load(Ordering::SeqCst)
    }

    /// Records that everything written before `upto` is durable.
    pub(crate) fn mark_synced(&self, upto: u64) {
        self.synced.fetch_max(upto, Ordering::SeqCst);
    }

    /// The shared map, for holders that outlive this segment's file.
    pub(crate) fn map(&self) -> Arc<Mmap> {
        Arc::clone(&self.map)
    }
}

/// Bytes of a stored object: a cheap, cloneable view into a memory-mapped
/// segment file. It never copies; it keeps the map alive, so it stays valid
/// after the object is deleted or its segment compacted away.
#[derive(Clone)]
pub struct Slice {
    map: Arc<Mmap>,
    start: usize,
    len: usize,
}

impl Slice {
    pub(crate) fn from_map(map: Arc<Mmap>, start: u64, len: u64) -> Result<Slice> {
        let end = start.checked_add(len).filter(|e| *e <= map.len() as u64);
        if end.is_none() {
            return Err(corrupt!(
                "slice {start}+{len} is outside a {}-byte map",
                map.len()
            ));
        }
        Ok(Slice {
            map,
            start: start as usize,
            len: len as usize,
        })
    }
}

impl std::ops::Deref for Slice {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        // In bounds by construction (checked in `from_map` / `slice`).
        self.map
            .get(self.start..self.start + self.len)
            .unwrap_or(&[])
    }
}

impl AsRef<[u8]> for Slice {
    fn as_ref(&self) -> &[u8] {
        self
    }
}

impl std::fmt::Debug for Slice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Slice")
            .field("start", &self.start)
            .field("len", &self.len)
            .finish()
    }
}

/// A metadata record found by a scan.
pub(crate) struct ScannedMeta {
    pub(crate) offset: u64,
    pub(crate) meta: Meta,
}

/// What a scan of one segment found.
pub(crate) struct Scan {
    pub(crate) metas: Vec<ScannedMeta>,
    /// Offset just past the last valid record: where appends continue.
    pub(crate) end: u64,
    /// Data bytes of the regions in it (committed or not), headers and
    /// padding excluded.
    pub(crate) region_bytes: u64,
    /// A torn record was found at `end` (only ever in the newest segment).
    pub(crate) torn: bool,
}

enum Step {
    /// A valid record of this total framed length.
    Record(RecordHeader, u64),
    /// Zero header: the end of the records.
    End,
    /// Not a valid record.
    Invalid(&'static str),
}

fn step(seg: &Segment, pos: u64) -> Step {
    let Ok(h) = seg.bytes(pos, RECORD_HEADER_LEN) else {
        return Step::End; // no room for another header: the segment is full
    };
    if h.iter().all(|b| *b == 0) {
        return Step::End;
    }
    let Some(header) = RecordHeader::decode(h) else {
        return Step::Invalid("bad record header");
    };
    let total = framed_len(header.len);
    if pos.checked_add(total).is_none_or(|end| end > seg.len()) {
        return Step::Invalid("record runs past the end of the segment");
    }
    if header.kind == RecordKind::Meta {
        let payload = seg
            .bytes(pos + RECORD_HEADER_LEN, header.len)
            .unwrap_or(&[]);
        if crc32c::crc32c(payload) != header.payload_crc {
            return Step::Invalid("record payload fails its CRC32C");
        }
    }
    Step::Record(header, total)
}

/// How a scan treats the end of a segment's records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TailPolicy {
    /// Sealed segment: any invalid record is corruption.
    Sealed,
    /// Newest segment: an invalid record with nothing valid after it is a
    /// torn tail.
    Newest,
    /// Newest segment, salvage: truncate at the first invalid record even
    /// if valid ones follow (they are dropped).
    Salvage,
}

/// Reads every record of a segment.
///
/// Where the records stop (a zero header or an invalid record at `p`), the
/// data after `p` is searched for valid records:
/// - in a sealed segment, an invalid record, or any valid record after the
///   end, is `Corrupt`;
/// - in the newest segment, valid records after `p` are a torn tail (written
///   but never acknowledged: a power loss may keep any subset of unsynced
///   writes) unless one of them records that `p` was already durable when
///   it was written; then `p` was damaged after the fact: `Corrupt`;
/// - with `Salvage`, the newest segment is cut at `p` regardless.
pub(crate) fn scan(seg: &Segment, policy: TailPolicy) -> Result<Scan> {
    let mut pos = SEGMENT_HEADER_LEN;
    let mut metas = Vec::new();
    let mut region_bytes = 0;
    loop {
        let (why, invalid) = match step(seg, pos) {
            Step::Record(header, total) => {
                match header.kind {
                    RecordKind::Extent => region_bytes += header.len,
                    RecordKind::Meta => {
                        let payload = seg.bytes(pos + RECORD_HEADER_LEN, header.len)?;
                        let meta = split_meta_payload(payload)
                            .and_then(|(_, m)| Meta::decode(m))
                            .map_err(|e| {
                                corrupt!("segment {} offset {pos}: {e}", seg.id).at(seg.id, pos)
                            })?;
                        metas.push(ScannedMeta { offset: pos, meta });
                    }
                }
                pos += total;
                continue;
            }
            Step::End => ("zeroed record header", false),
            Step::Invalid(why) => (why, true),
        };
        let mut torn = invalid;
        match policy {
            TailPolicy::Salvage => {}
            TailPolicy::Sealed => {
                if invalid {
                    return Err(corrupt!("segment {} offset {pos}: {why}", seg.id).at(seg.id, pos));
                }
                if let Some((next, _)) = valid_records_after(seg, pos + RECORD_ALIGN)?.first() {
                    return Err(corrupt!(
                        "segment {} offset {pos}: {why}, followed by a valid record at offset {next}",
                        seg.id
                    )
                    .at(seg.id, pos));
                }
            }
            TailPolicy::Newest => {
                let after = valid_records_after(seg, pos + RECORD_ALIGN)?;
                if let Some((next, synced)) = after.iter().find(|(_, synced)| *synced > pos) {
                    return Err(corrupt!(
                        "segment {} offset {pos}: {why}, but the record at offset {next} was written when everything before offset {synced} was durable",
                        seg.id
                    )
                    .at(seg.id, pos));
                }
                // Unacknowledged records after a torn or lost write, or any
                // other non-zero bytes past the end (a torn write whose
                // first page was lost): cut, so new records never land in
                // front of them.
                torn |= !after.is_empty() || !zeros_after(seg, pos)?;
            }
        }
        return Ok(Scan {
            metas,
            end: pos,
            region_bytes,
            torn,
        });
    }
}

/// True when every byte from `from` to the end of the segment is zero. Only
/// the file's data extents are read.
fn zeros_after(seg: &Segment, from: u64) -> Result<bool> {
    for r in data_ranges_after(seg, from)? {
        if seg.bytes(r.start, r.end - r.start)?.iter().any(|b| *b != 0) {
            return Ok(false);
        }
    }
    Ok(true)
}

fn data_ranges_after(seg: &Segment, from: u64) -> Result<Vec<std::ops::Range<u64>>> {
    crate::backend::data_ranges(&*seg.file, from, seg.len())
        .map_err(|e| Error::io(format!("seeking in {}", seg.path.display()), e))
}

/// Every valid record at or after `from`: its offset and, for a metadata
/// record, its `synced` watermark (0 for data regions). Only the file's data
/// extents are read (holes of the preallocated tail are skipped), so this is
/// cheap on a healthy segment.
fn valid_records_after(seg: &Segment, from: u64) -> Result<Vec<(u64, u64)>> {
    let mut found = Vec::new();
    let from = from.div_ceil(RECORD_ALIGN) * RECORD_ALIGN;
    for r in data_ranges_after(seg, from)? {
        let mut p = r.start.div_ceil(RECORD_ALIGN) * RECORD_ALIGN;
        while p < r.end && p + RECORD_HEADER_LEN <= seg.len() {
            if seg.bytes(p, 4).ok() == Some(&crate::record::RECORD_MAGIC[..]) {
                if let Step::Record(header, _) = step(seg, p) {
                    let synced = match header.kind {
                        RecordKind::Extent => 0,
                        RecordKind::Meta => seg
                            .bytes(p + RECORD_HEADER_LEN, header.len)
                            .and_then(split_meta_payload)
                            .map_or(0, |(synced, _)| synced),
                    };
                    found.push((p, synced));
                }
            }
            p += RECORD_ALIGN;
        }
    }
    Ok(found)
}

/// Cuts a torn tail: zeros everything from `end` to the end of the file by
/// truncating and re-extending it, then syncs. Done before the file is
/// mapped for use.
pub(crate) fn truncate_tail(backend: &dyn Backend, path: &Path, end: u64, len: u64) -> Result<()> {
    let name = path.display().to_string();
    let file = backend
        .open(path)
        .map_err(|e| Error::io(format!("opening {name}"), e))?;
    file.set_len(end)
        .and_then(|_| file.set_len(len))
        .and_then(|_| file.sync_all())
        .map_err(|e| Error::io(format!("truncating the torn tail of {name} at {end}"), e))
}
