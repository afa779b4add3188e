//! The record scan of `open`: walks a segment's records in order and
//! applies the tail policy (what a bad record at the end of the newest
//! segment means).

use std::path::Path;

use crate::backend::Backend;
use crate::error::{corrupt, Error, Result};
use crate::log::format::{
    framed_len, split_meta_payload, Meta, RecordHeader, RecordKind, RECORD_ALIGN,
    RECORD_HEADER_LEN, SEGMENT_HEADER_LEN,
};
use crate::log::segment::Segment;

/// A metadata record found by a scan.
pub(crate) struct ScannedMeta {
    pub(crate) offset: u64,
    /// Everything of the segment before this offset was durable when the
    /// record was written.
    pub(crate) synced: u64,
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
                        let (synced, meta) = split_meta_payload(payload)
                            .and_then(|(synced, m)| Ok((synced, Meta::decode(m)?)))
                            .map_err(|e| {
                                corrupt!("segment {} offset {pos}: {e}", seg.id).at(seg.id, pos)
                            })?;
                        metas.push(ScannedMeta {
                            offset: pos,
                            synced,
                            meta,
                        });
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
            if seg.bytes(p, 4).ok() == Some(&crate::log::format::RECORD_MAGIC[..]) {
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
