//! The record scan of `open`: walks a segment's records in order and
//! applies the tail policy (what a bad record at the end of the newest
//! segment means).

use std::path::Path;

use crate::backend::Backend;
use crate::error::{corrupt, Error, Result};
use crate::log::checkpoint::CheckpointEnd;
use crate::log::codec::{is_checkpoint, T_CHECKPOINT_PAGE, T_LAST};
use crate::log::format::{
    framed_len, split_meta_payload, RecordHeader, RecordKind, RECORD_ALIGN, RECORD_HEADER_LEN,
    RECORD_MAGIC, SEGMENT_HEADER_LEN,
};
use crate::log::segment::{FilePin, Segment};

/// Positional reads of a segment through a buffer: the scan never touches
/// the map, so a page that was never written (a hole, or a region reserved
/// but not yet written when the process stopped) is read as zeros by the
/// kernel instead of faulting in through a map (SIGBUS on a full tmpfs).
pub(crate) struct Reader<'a> {
    seg: &'a Segment,
    /// The segment's file, open while the reader reads (taken at its first
    /// read: a sealed segment keeps none of its own).
    pin: Option<FilePin<'a>>,
    buf: Vec<u8>,
    /// File offset of `buf[0]`.
    start: u64,
    /// End of the bytes last asked for.
    last_end: u64,
    /// Smallest next read: doubles while the records read follow each
    /// other (up to `MAX_READ_AHEAD`), a page after a jump.
    ahead: u64,
}

/// The buffer's first read.
const READ_AHEAD: u64 = 64 << 10;
/// Its largest read where records follow each other (the kernel is told
/// not to read ahead: see `segment::open_existing`).
const MAX_READ_AHEAD: u64 = 4 << 20;
/// Smallest read the buffer makes after a jump of more than this (over a
/// data region's payload, which the scan does not read): a page. Reading
/// ahead there would read the data of every region shorter than
/// `READ_AHEAD`: an open of a log of 64 KiB objects read all of it.
const AFTER_JUMP: u64 = 4 << 10;

impl<'a> Reader<'a> {
    pub(crate) fn new(seg: &'a Segment) -> Reader<'a> {
        Reader {
            seg,
            pin: None,
            buf: Vec::new(),
            start: 0,
            last_end: 0,
            ahead: READ_AHEAD,
        }
    }

    /// The id of the segment read.
    pub(crate) fn segment_id(&self) -> u64 {
        self.seg.id
    }

    /// The bytes `off..off+len`, or `None` past the end of the segment.
    fn get(&mut self, off: u64, len: u64) -> Result<Option<&[u8]>> {
        let Some(end) = off.checked_add(len).filter(|e| *e <= self.seg.len()) else {
            return Ok(None);
        };
        let buffered = self.start + self.buf.len() as u64;
        if off < self.start || end > buffered {
            let jump = off > self.last_end.saturating_add(AFTER_JUMP);
            self.ahead = if jump {
                AFTER_JUMP
            } else {
                (self.ahead * 2).min(MAX_READ_AHEAD)
            };
            let n = len.max(self.ahead).min(self.seg.len() - off);
            if !jump {
                // The stretch after this one, read by the kernel while
                // this one is parsed.
                let next = (off + n).min(self.seg.len());
                self.seg
                    .prefetch(next, (self.ahead * 2).min(self.seg.len() - next));
            }
            if self.pin.is_none() {
                self.pin = Some(self.seg.pin()?);
            }
            self.buf.resize(n as usize, 0);
            self.seg.read_at(&mut self.buf, off)?;
            self.start = off;
        }
        self.last_end = end;
        let from = (off - self.start) as usize;
        Ok(self.buf.get(from..from + len as usize))
    }

    /// The payload of the metadata record at `offset` (its `synced` prefix
    /// included), read again and checked against its CRC32C: `Corrupt`
    /// naming the segment and offset when it is not a valid metadata record.
    pub(crate) fn meta_payload(&mut self, offset: u64) -> Result<&[u8]> {
        let id = self.seg.id;
        match self.checked_payload(offset)? {
            Ok(payload) => Ok(payload),
            Err(why) => Err(corrupt!("segment {id} offset {offset}: {why}").at(id, offset)),
        }
    }

    /// The payload of the metadata record at `offset` if it is a valid
    /// one, else why not.
    pub(crate) fn checked_payload(
        &mut self,
        offset: u64,
    ) -> Result<std::result::Result<&[u8], &'static str>> {
        let salt = self.seg.salt();
        let Some(header) = self
            .get(offset, RECORD_HEADER_LEN)?
            .and_then(|h| RecordHeader::decode_salted(h, salt))
            .filter(|h| h.kind == RecordKind::Meta)
        else {
            return Ok(Err("not a valid metadata record"));
        };
        let Some(payload) = self.get(offset + RECORD_HEADER_LEN, header.len)? else {
            return Ok(Err("record runs past the end of the segment"));
        };
        if crc32c::crc32c(payload) != header.payload_crc {
            return Ok(Err("record payload fails its CRC32C"));
        }
        Ok(Ok(payload))
    }
}

/// A metadata record found by a scan. Its payload passed its CRC32C but is
/// not decoded (recovery decodes only what it replays), except a
/// checkpoint's last record, which is small and says where replay starts.
pub(crate) struct ScannedMeta {
    pub(crate) offset: u64,
    /// Payload length (its `synced` prefix included).
    pub(crate) len: u64,
    /// Everything of the segment before this offset was durable when the
    /// record was written.
    pub(crate) synced: u64,
    /// The record's tag (the first byte of its encoded `Meta`): known to
    /// this build.
    pub(crate) tag: u8,
    /// For a checkpoint record (tag 20): the checkpoint.
    pub(crate) end: Option<Box<CheckpointEnd>>,
}

/// What a scan of one segment found.
pub(crate) struct Scan {
    pub(crate) metas: Vec<ScannedMeta>,
    /// Offset just past the last valid record: where appends continue.
    pub(crate) end: u64,
    /// Data bytes of the regions in it (committed or not, checkpoint pages
    /// included), headers and padding excluded, holes too.
    pub(crate) region_bytes: u64,
    /// Bytes of those regions that are holes (punched by compaction).
    pub(crate) holes: u64,
    /// A torn record was found at `end` (only ever in the newest segment).
    pub(crate) torn: bool,
    /// In a recycled segment, the end of the last record found past `end`
    /// (`end` if none): cutting the tail zeros up to there (the file's
    /// blocks stay; past it are only the records of its earlier life).
    pub(crate) found_until: u64,
}

/// What a scan learns of a valid metadata record without decoding it.
struct MetaInfo {
    synced: u64,
    /// The first byte of the encoded `Meta` (0 when there is none).
    tag: u8,
}

enum Step {
    /// A valid record of this total framed length (with what its payload
    /// starts with, for a metadata record).
    Record(RecordHeader, u64, Option<MetaInfo>),
    /// Zero header: the end of the records.
    End,
    /// Not a valid record.
    Invalid(&'static str),
}

fn step(r: &mut Reader, pos: u64) -> Result<Step> {
    let seg_len = r.seg.len();
    let salt = r.seg.salt();
    let Some(h) = r.get(pos, RECORD_HEADER_LEN)? else {
        return Ok(Step::End); // no room for another header: the segment is full
    };
    if h.iter().all(|b| *b == 0) {
        return Ok(Step::End);
    }
    let Some(header) = RecordHeader::decode_salted(h, salt) else {
        return Ok(Step::Invalid("bad record header"));
    };
    let total = framed_len(header.len);
    if pos.checked_add(total).is_none_or(|end| end > seg_len) {
        return Ok(Step::Invalid("record runs past the end of the segment"));
    }
    if header.kind != RecordKind::Meta {
        return Ok(Step::Record(header, total, None));
    }
    let payload = r.get(pos + RECORD_HEADER_LEN, header.len)?.unwrap_or(&[]);
    if crc32c::crc32c(payload) != header.payload_crc {
        return Ok(Step::Invalid("record payload fails its CRC32C"));
    }
    let info = MetaInfo {
        synced: split_meta_payload(payload).map_or(0, |(synced, _)| synced),
        tag: payload.get(8).copied().unwrap_or(0),
    };
    Ok(Step::Record(header, total, Some(info)))
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

/// Reads every record of a segment: each header is checked, and each
/// metadata record's payload (a data region's bytes are covered by the CRCs
/// of the record that commits it, and skipped).
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
///
/// The scan starts at the record at `start`: the segment's first, or a
/// checkpoint's base (the records before it are not needed).
pub(crate) fn scan_from(seg: &Segment, policy: TailPolicy, start: u64) -> Result<Scan> {
    let mut r = Reader::new(seg);
    let mut pos = start;
    let mut metas = Vec::new();
    let mut region_bytes = 0;
    let mut holes = 0;
    let mut allocated = Allocated::of(seg, start);
    loop {
        let (why, invalid) = match step(&mut r, pos)? {
            Step::Record(header, total, info) => {
                match info {
                    None => {
                        let data = allocated.bytes(pos + RECORD_HEADER_LEN, header.len);
                        region_bytes += data;
                        holes += header.len - data;
                    }
                    Some(MetaInfo { synced, tag }) => {
                        let bad = |e: Error| {
                            corrupt!("segment {} offset {pos}: {e}", seg.id).at(seg.id, pos)
                        };
                        if header.len < 9 {
                            return Err(bad(corrupt!(
                                "metadata record of {} bytes holds no record",
                                header.len
                            )));
                        }
                        // (19 marks a checkpoint page, which is a data
                        // region, never a metadata record.)
                        if tag == 0 || tag > T_LAST || tag == T_CHECKPOINT_PAGE {
                            return Err(bad(corrupt!("unknown metadata record tag {tag}")));
                        }
                        let end = if is_checkpoint(tag) {
                            let payload = r.meta_payload(pos)?;
                            let (_, m) = split_meta_payload(payload).map_err(bad)?;
                            Some(Box::new(CheckpointEnd::decode(m).map_err(bad)?))
                        } else {
                            None
                        };
                        metas.push(ScannedMeta {
                            offset: pos,
                            len: header.len,
                            synced,
                            tag,
                            end,
                        });
                    }
                }
                pos += total;
                continue;
            }
            Step::End => ("zeroed record header", false),
            Step::Invalid(why) => (why, true),
        };
        let (torn, found_until) = if seg.recycled() {
            // The bytes past the end are the file's earlier life: only
            // records of its own (salted with its id) count, and only
            // within the window of what was written but not synced.
            let after = recycled_records_after(&mut r, pos)?;
            match policy {
                TailPolicy::Salvage => {}
                // Sealing wrote a zero header at the end: an invalid one is
                // damage, as in a new file.
                TailPolicy::Sealed if invalid => {
                    return Err(sealed_damage(seg.id, pos, why, true, pos));
                }
                TailPolicy::Sealed => {
                    if let Some((next, _, _)) = after.first() {
                        return Err(sealed_damage(seg.id, pos, why, false, *next));
                    }
                }
                TailPolicy::Newest => {
                    if let Some((next, synced, _)) = after.iter().find(|f| f.1 > pos) {
                        return Err(written_after(seg.id, pos, why, *next, *synced));
                    }
                }
            }
            let until = after.iter().map(|f| f.2).max().unwrap_or(pos);
            (!after.is_empty(), until)
        } else {
            let mut torn = invalid;
            match policy {
                TailPolicy::Salvage => {}
                TailPolicy::Sealed if invalid => {
                    return Err(corrupt!("segment {} offset {pos}: {why}", seg.id).at(seg.id, pos));
                }
                TailPolicy::Sealed => {
                    if let Some((next, _)) = valid_records_after(&mut r, pos, pos + RECORD_ALIGN)?
                        .0
                        .first()
                    {
                        return Err(sealed_damage(seg.id, pos, why, false, *next));
                    }
                }
                TailPolicy::Newest => {
                    let (after, zeros) = valid_records_after(&mut r, pos, pos + RECORD_ALIGN)?;
                    if let Some((next, synced)) = after.iter().find(|(_, synced)| *synced > pos) {
                        return Err(written_after(seg.id, pos, why, *next, *synced));
                    }
                    // Unacknowledged records after a torn or lost write, or
                    // any other non-zero bytes past the end (a torn write
                    // whose first page was lost): cut, so new records never
                    // land in front of them.
                    torn |= !after.is_empty() || !zeros;
                }
            }
            (torn, pos)
        };
        return Ok(Scan {
            metas,
            end: pos,
            region_bytes,
            holes,
            torn,
            found_until,
        });
    }
}

/// A sealed segment's records stop at `pos` (an invalid record, or a zero
/// header followed by a valid record at `next`).
fn sealed_damage(id: u64, pos: u64, why: &str, invalid: bool, next: u64) -> Error {
    if invalid {
        corrupt!("segment {id} offset {pos}: {why}").at(id, pos)
    } else {
        corrupt!("segment {id} offset {pos}: {why}, followed by a valid record at offset {next}")
            .at(id, pos)
    }
}

/// The newest segment's records stop at `pos`, but the record at `next`
/// was written once `pos` was durable: damage, not a torn tail.
fn written_after(id: u64, pos: u64, why: &str, next: u64, synced: u64) -> Error {
    corrupt!(
        "segment {id} offset {pos}: {why}, but the record at offset {next} was written when everything before offset {synced} was durable"
    )
    .at(id, pos)
}

/// The records of a recycled segment's own life after `end` (where its
/// records stop): (offset, `synced` for a metadata record else 0, end).
/// Searched from `end` to the window (`format::recycled_window`) past it, the window moving on
/// past each record found (a region is skipped whole, its data is not
/// searched): nothing of this life was written further out (see
/// `format::recycled_window`). Bytes of the file's earlier life never decode:
/// their header CRC32Cs are not salted with this segment's id.
fn recycled_records_after(r: &mut Reader, end: u64) -> Result<Vec<(u64, u64, u64)>> {
    let mut found = Vec::new();
    let seg_len = r.seg.len();
    let window = crate::log::format::recycled_window(seg_len);
    let mut limit = end.saturating_add(window).min(seg_len);
    let mut p = end.div_ceil(RECORD_ALIGN) * RECORD_ALIGN + RECORD_ALIGN;
    while p < limit && p + RECORD_HEADER_LEN <= seg_len {
        let chunk = (limit - p).min(ZERO_STRETCH);
        let Some(bytes) = r.get(p, chunk)? else { break };
        // Offsets (relative to `p`) where a record's magic starts.
        let hit = (0..chunk)
            .step_by(RECORD_ALIGN as usize)
            .find(|i| bytes.get(*i as usize..*i as usize + 4) == Some(&RECORD_MAGIC[..]));
        let Some(i) = hit else {
            p += chunk;
            continue;
        };
        let at = p + i;
        match step(r, at)? {
            Step::Record(_, total, info) => {
                let stop = at + total;
                found.push((at, info.map_or(0, |i| i.synced), stop));
                limit = limit.max(stop.saturating_add(window)).min(seg_len);
                p = stop;
            }
            _ => p = at + RECORD_ALIGN,
        }
    }
    Ok(found)
}

/// What a walk over the record headers of a segment's part that `open`
/// did not scan counts.
pub(crate) struct Counted {
    /// Data bytes of its regions that are not holes.
    pub(crate) bytes: u64,
    /// Bytes of its regions that are holes.
    pub(crate) holes: u64,
    /// Where the walk stopped: the end of the records, or `upto`.
    pub(crate) end: u64,
}

/// Data-region bytes of the records of `seg` before offset `upto` (the
/// part of the log `open` did not scan): headers are walked, payloads not
/// read. Stops early at the end of the records or an invalid one (`verify`
/// reports those).
pub(crate) fn count_regions(seg: &Segment, upto: u64) -> Result<Counted> {
    let mut r = Reader::new(seg);
    let mut pos = SEGMENT_HEADER_LEN;
    let mut counted = Counted {
        bytes: 0,
        holes: 0,
        end: pos,
    };
    let mut allocated = Allocated::of(seg, pos);
    while pos < upto {
        let Some(header) = r
            .get(pos, RECORD_HEADER_LEN)?
            .and_then(|h| RecordHeader::decode_salted(h, seg.salt()))
        else {
            break;
        };
        if header.kind != RecordKind::Meta {
            let data = allocated.bytes(pos + RECORD_HEADER_LEN, header.len);
            counted.bytes += data;
            counted.holes += header.len - data;
        }
        pos = pos.saturating_add(framed_len(header.len));
    }
    counted.end = pos;
    Ok(counted)
}

/// Which bytes of a segment hold data: compaction punches the whole pages
/// of freed regions out of sealed segments, and those no longer count as
/// data bytes (else every reopen would count them as garbage again, and
/// compaction would move a segment's live extents to reclaim space the
/// file system already has back).
struct Allocated {
    ranges: Vec<std::ops::Range<u64>>,
    /// The first range that may end after the last span asked about.
    next: usize,
}

impl Allocated {
    /// The data ranges of `seg` from `from` on; where the file system
    /// cannot say, everything counts as data.
    fn of(seg: &Segment, from: u64) -> Allocated {
        let ranges = data_ranges(seg, from, seg.len())
            .unwrap_or_else(|_| std::iter::once(from..u64::MAX).collect());
        Allocated { ranges, next: 0 }
    }

    /// Bytes of `start..start + len` that are data, not holes. Spans are
    /// asked about in ascending order.
    fn bytes(&mut self, start: u64, len: u64) -> u64 {
        let end = start.saturating_add(len);
        while self.ranges.get(self.next).is_some_and(|r| r.end <= start) {
            self.next += 1;
        }
        self.ranges[self.next.min(self.ranges.len())..]
            .iter()
            .take_while(|r| r.start < end)
            .map(|r| r.end.min(end).saturating_sub(r.start.max(start)))
            .sum()
    }
}

/// Bytes of `from..to` of `seg` that are holes (compaction punched them):
/// the file system is asked, nothing is read. The records of a segment
/// are never punched, so in a sealed segment's records these are the holes
/// of its data regions ([`count_regions`] finds the same, region by
/// region).
pub(crate) fn hole_bytes(seg: &Segment, from: u64, to: u64) -> Result<u64> {
    let data: u64 = data_ranges(seg, from, to)?
        .iter()
        .map(|r| r.end - r.start)
        .sum();
    Ok(to.saturating_sub(from).saturating_sub(data))
}

/// The data ranges of `seg` within `from..to` (holes skipped).
fn data_ranges(seg: &Segment, from: u64, to: u64) -> Result<Vec<std::ops::Range<u64>>> {
    let file = seg.file();
    file.and_then(|f| crate::backend::data_ranges(&*f, from, to))
        .map_err(|e| Error::io(format!("seeking in {}", seg.path.display()), e))
}

/// How much the look past the end reads (and compares with zeros) at once.
const ZERO_STRETCH: u64 = 1 << 20;
static ZEROS: [u8; ZERO_STRETCH as usize] = [0; ZERO_STRETCH as usize];

/// Every valid record at or after `from` (8-byte aligned): its offset and,
/// for a metadata record, its `synced` watermark (0 for data regions); and
/// whether every byte from `end` (the end of the records) on is zero. Only the file's
/// data extents are read, once (holes of the preallocated tail are
/// skipped), and only their non-zero stretches are searched for records
/// (a record starts with its non-zero magic), so this is cheap on a
/// healthy segment, also one whose tail the pre-writer filled with zeros.
fn valid_records_after(r: &mut Reader, end: u64, from: u64) -> Result<(Vec<(u64, u64)>, bool)> {
    let mut found = Vec::new();
    let mut zeros = true;
    let seg_len = r.seg.len();
    for range in data_ranges(r.seg, end, r.seg.len())? {
        // Stretches of ZERO_STRETCH bytes, aligned to RECORD_ALIGN: a magic
        // at an aligned offset lies wholly inside one.
        let mut at = range.start / RECORD_ALIGN * RECORD_ALIGN;
        while at < range.end {
            let n = ZERO_STRETCH.min(range.end - at);
            let stretch = at..at + n;
            at += n;
            if r.get(stretch.start, n)?
                .is_none_or(|b| b == &ZEROS[..b.len()])
            {
                continue;
            }
            zeros = false;
            let mut p = stretch
                .start
                .max(range.start)
                .max(from)
                .div_ceil(RECORD_ALIGN)
                * RECORD_ALIGN;
            while p < stretch.end && p + RECORD_HEADER_LEN <= seg_len {
                if r.get(p, 4)? == Some(&RECORD_MAGIC[..]) {
                    if let Step::Record(_, _, info) = step(r, p)? {
                        found.push((p, info.map_or(0, |i| i.synced)));
                    }
                }
                p += RECORD_ALIGN;
            }
        }
    }
    Ok((found, zeros))
}

/// Cuts a torn tail of a recycled segment: zeros `end..to` (the records
/// of its own life found past the end) in place, keeping the file's
/// blocks, and syncs. Done before the file is mapped for use.
pub(crate) fn zero_tail(backend: &dyn Backend, path: &Path, end: u64, to: u64) -> Result<()> {
    let name = path.display().to_string();
    let file = backend
        .open(path)
        .map_err(|e| Error::io(format!("opening {name}"), e))?;
    let zeros = vec![0u8; (to.saturating_sub(end)).min(ZERO_STRETCH) as usize];
    let mut at = end;
    let r = (|| {
        while at < to {
            let n = (to - at).min(ZERO_STRETCH);
            file.write_all_at(&zeros[..n as usize], at)?;
            at += n;
        }
        file.sync_data()
    })();
    r.map_err(|e| Error::io(format!("zeroing the torn tail of {name} at {end}"), e))
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
