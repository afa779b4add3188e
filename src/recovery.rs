//! `Store::open`'s body: lock the directory, list the segments, drop a
//! newest segment whose creation was torn, scan every segment, cut a torn
//! tail, restore the last checkpoint and replay the records after its base
//! into an [`Index`].
//!
//! The scan checks every record's framing and CRCs but decodes none: only
//! the records replay needs (those at or after the checkpoint's base, and
//! those the torn-tail check below reads) are read again and decoded. A
//! checkpoint is the state of every record before its base; an old
//! `Snapshot` record (compaction's, before checkpoints) is a checkpoint
//! whose base is its own position.
//!
//! A record past the last point its segment knew durable may have been
//! appended together with its data and never fsynced (group commit syncs
//! both at once): its new extent's blocks are checked against the CRCs the
//! record carries, and the first mismatch is a torn tail — that record and
//! everything after it were never acknowledged.

use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::path::Path;
use std::sync::Arc;

use rayon::prelude::*;

use crate::backend::Backend;
use crate::error::{conflict, corrupt, Error, Reason, Result};
use crate::index::{Index, Restorer};
use crate::log::checkpoint::{self, CheckpointEnd, PageRef, Pos, SegmentCount};
use crate::log::codec::{
    T_MARK, T_OBJECT_PUT, T_OBJECT_PUT_V2, T_PART_SET, T_PART_SET_V2, T_SNAPSHOT, T_SNAPSHOT_V2,
};
use crate::log::format::{framed_len, split_meta_payload, ExtentDef, Meta, SEGMENT_HEADER_LEN};
use crate::log::scan::{self, Reader, ScannedMeta, TailPolicy};
use crate::log::segment::{self, Segment};
use crate::log::writer::{Recovered, SegCounts, Uncounted};
use crate::options::{Options, RecoveryMode};
use crate::spec::BLOCK_SIZE;

/// Name of the lock file in a store directory.
const LOCK_FILE: &str = "LOCK";

/// What `open` recovered.
pub(crate) struct Opened {
    pub(crate) lock: File,
    pub(crate) index: Index,
    pub(crate) log: Recovered,
    /// Base of the checkpoint the index was restored from (`(0, 0)`: none).
    pub(crate) checkpoint_base: Pos,
    /// Bytes of its pages per segment (none for an old-form snapshot).
    pub(crate) checkpoint_pages: Vec<(u64, u64)>,
    /// Bytes of the records replayed after it.
    pub(crate) replayed_bytes: u64,
    /// Sequence number of the checkpoint hint file's newest slot.
    pub(crate) pointer_seq: u64,
}

/// Opens the store directory `dir`: the steps of the module doc.
pub(crate) fn open(dir: &Path, opts: &Options) -> Result<Opened> {
    let backend: &dyn Backend = &*opts.backend;
    backend
        .create_dir_all(dir)
        .map_err(|e| Error::io(format!("creating {}", dir.display()), e))?;
    let lock = lock_dir(dir)?;
    let ids = segment_ids(&opts.backend, dir, opts.recovery)?;
    // The last checkpoint's base, as its hint file says: the records
    // before it need no scan. A stale or damaged hint only costs the full
    // scan below.
    let pointer = checkpoint::read_pointer(backend, dir);
    let seq = pointer.map_or(0, |p| p.seq);
    if let Some(p) = pointer.filter(|p| names_a_checkpoint(dir, opts, &ids, p)) {
        if let Ok(Some(r)) = recover(dir, opts, &ids, p.base) {
            return Ok(r.opened(lock, seq));
        }
    }
    match recover(dir, opts, &ids, (0, 0))? {
        Some(r) => Ok(r.opened(lock, seq)),
        None => Err(corrupt!("recovery found no state")),
    }
}

/// True when the checkpoint record hint `p` names is in the log, intact,
/// with the CRC and base the hint says (else the hint is stale: a store
/// rebuilt in the same directory, say).
fn names_a_checkpoint(dir: &Path, opts: &Options, ids: &[u64], p: &checkpoint::Pointer) -> bool {
    let found = || -> Result<bool> {
        if !ids.contains(&p.base.0) || !ids.contains(&p.record.0) || p.record <= p.base {
            return Ok(false);
        }
        let path = dir.join(segment::segment_file_name(p.record.0));
        let seg = Segment::open(&opts.backend, &path)?;
        let mut r = Reader::new(&seg);
        let Ok(payload) = r.checked_payload(p.record.1)? else {
            return Ok(false);
        };
        let (_, meta) = split_meta_payload(payload)?;
        Ok(crc32c::crc32c(meta) == p.crc32c
            && CheckpointEnd::decode(meta).is_ok_and(|end| end.base == p.base))
    };
    found().unwrap_or(false)
}

/// What [`recover`] rebuilt.
struct Recovery {
    index: Index,
    log: Recovered,
    checkpoint_base: Pos,
    checkpoint_pages: Vec<(u64, u64)>,
    replayed_bytes: u64,
}

impl Recovery {
    fn opened(self, lock: File, pointer_seq: u64) -> Opened {
        Opened {
            lock,
            index: self.index,
            log: self.log,
            checkpoint_base: self.checkpoint_base,
            checkpoint_pages: self.checkpoint_pages,
            replayed_bytes: self.replayed_bytes,
            pointer_seq,
        }
    }
}

/// Scans segments `ids` from `from` on (the segments before `from`'s are
/// opened, not scanned; `(0, 0)`: from the start), cuts a torn tail,
/// restores the last checkpoint and replays what follows it. `None` when
/// no checkpoint at or after `from` turned up (a stale hint).
fn recover(dir: &Path, opts: &Options, ids: &[u64], from: Pos) -> Result<Option<Recovery>> {
    let backend: &dyn Backend = &*opts.backend;
    let mut segments = BTreeMap::new();
    let mut counts = HashMap::new();
    let mut uncounted = Vec::new();
    let mut tail = SEGMENT_HEADER_LEN;
    // The records from the last checkpoint's base on (earlier ones are
    // dropped as each segment's scan ends).
    let mut metas: Vec<(u64, ScannedMeta)> = Vec::new();
    for (i, id) in ids.iter().enumerate() {
        let newest = i + 1 == ids.len();
        let path = dir.join(segment::segment_file_name(*id));
        let mut seg = Segment::open(&opts.backend, &path)?;
        if seg.id != *id {
            return Err(corrupt!(
                "segment file {} says it is segment {}",
                path.display(),
                seg.id
            ));
        }
        let start = match (*id).cmp(&from.0) {
            std::cmp::Ordering::Less if !newest => {
                // Wholly before the base: its regions are counted later.
                uncounted.push(Uncounted {
                    id: *id,
                    upto: u64::MAX,
                    known: None,
                });
                counts.insert(*id, SegCounts::default());
                seg.seal_file();
                segments.insert(*id, Arc::new(seg));
                continue;
            }
            std::cmp::Ordering::Equal => {
                uncounted.push(Uncounted {
                    id: *id,
                    upto: from.1,
                    known: None,
                });
                from.1
            }
            _ => SEGMENT_HEADER_LEN,
        };
        let policy = match (newest, opts.recovery) {
            (false, _) => TailPolicy::Sealed,
            (true, RecoveryMode::SalvageTail) => TailPolicy::Salvage,
            (true, _) => TailPolicy::Newest,
        };
        let mut scan = scan::scan_from(&seg, policy, start)?;
        let end_before_cut = scan.end;
        if newest {
            if let Some(cut) = first_torn_extent(&seg, &segments, &scan.metas)? {
                scan.torn = true;
                scan.end = scan.end.min(cut);
                scan.metas.retain(|m| m.offset < cut);
            }
        }
        if scan.torn && opts.recovery == RecoveryMode::Strict {
            return Err(corrupt!(
                "segment {id} offset {}: torn record (recovery mode is Strict)",
                scan.end
            )
            .at(*id, scan.end));
        }
        if scan.torn && seg.recycled() {
            // Zeros over the records of this life past the cut (the
            // file's blocks stay allocated and written).
            let to = scan.found_until.max(end_before_cut);
            drop(seg);
            scan::zero_tail(backend, &path, scan.end, to)?;
            seg = Segment::open(&opts.backend, &path)?;
        } else if scan.torn {
            let len = seg.len();
            drop(seg);
            scan::truncate_tail(backend, &path, scan.end, len)?;
            seg = Segment::open(&opts.backend, &path)?;
        }
        let first = metas.len();
        metas.extend(scan.metas.into_iter().map(|m| (*id, m)));
        // A checkpoint in this segment: the records before its base are not
        // needed (nor decoded) any more.
        if let Some((_, base)) = last_checkpoint(&metas[first..]) {
            metas.drain(..metas.partition_point(|(s, m)| (*s, m.offset) < base));
        }
        counts.insert(
            *id,
            SegCounts {
                bytes: scan.region_bytes,
                holes: scan.holes,
                headers: scan.region_bytes + scan.holes,
            },
        );
        tail = scan.end;
        // What open read from disk is durable.
        seg.mark_synced(scan.end);
        if !newest {
            // (Closed now: a store of thousands of segments must not hold
            // a file descriptor per segment, even while it opens.)
            seg.seal_file();
        }
        segments.insert(*id, Arc::new(seg));
    }
    let Replayed {
        index,
        base: checkpoint_base,
        replayed: replayed_bytes,
        pages: checkpoint_pages,
        counts: known,
    } = replay(&segments, &metas)?;
    if checkpoint_base < from {
        return Ok(None);
    }
    // What the checkpoint says of the segments it did not need scanned:
    // their counts are not read from them again.
    for u in uncounted.iter_mut().filter(|u| u.upto == u64::MAX) {
        u.known = known
            .binary_search_by_key(&u.id, |c| c.segment)
            .ok()
            .map(|i| known[i])
            .filter(|c| segments.get(&u.id).is_some_and(|s| c.end <= s.len()));
    }
    check_extents(&index, &segments)?;
    Ok(Some(Recovery {
        index,
        log: Recovered {
            segments,
            counts,
            uncounted,
            tail,
        },
        checkpoint_base,
        checkpoint_pages,
        replayed_bytes,
    }))
}

/// Takes the directory's lock file: `Conflict` if another `Store` holds it,
/// in this process or another.
fn lock_dir(dir: &Path) -> Result<File> {
    let lock_path = dir.join(LOCK_FILE);
    let lock = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&lock_path)
        .map_err(|e| Error::io(format!("opening {}", lock_path.display()), e))?;
    match lock.try_lock() {
        Ok(()) => Ok(lock),
        Err(std::fs::TryLockError::WouldBlock) => Err(conflict!(
            Reason::StoreLocked,
            "store {} is already open (locked by {})",
            dir.display(),
            lock_path.display()
        )),
        Err(std::fs::TryLockError::Error(e)) => {
            Err(Error::io(format!("locking {}", lock_path.display()), e))
        }
    }
}

/// The segment ids in `dir`, ascending. A newest segment whose header is
/// bad but which holds nothing else was being created when the process
/// stopped: no record was ever written to it, so it is removed (not in
/// Strict mode).
fn segment_ids(backends: &Arc<dyn Backend>, dir: &Path, mode: RecoveryMode) -> Result<Vec<u64>> {
    let backend: &dyn Backend = &**backends;
    let names = backend
        .read_dir(dir)
        .map_err(|e| Error::io(format!("listing {}", dir.display()), e))?;
    let mut ids: Vec<u64> = names
        .iter()
        .filter_map(|n| segment::parse_segment_file_name(n))
        .collect();
    ids.sort_unstable();
    while let Some(&last) = ids.last() {
        let path = dir.join(segment::segment_file_name(last));
        match Segment::open(backends, &path) {
            Ok(_) => break,
            Err(e)
                if e.kind() == crate::ErrorKind::Corrupt
                    && mode != RecoveryMode::Strict
                    && is_torn_creation(backend, &path)? =>
            {
                backend
                    .remove_file(&path)
                    .map_err(|e| Error::io(format!("removing {}", path.display()), e))?;
                segment::sync_dir(backend, dir)?;
                ids.pop();
            }
            Err(e) => return Err(e),
        }
    }
    Ok(ids)
}

/// True when the segment file at `path` holds nothing past its header but
/// zeros: a crash inside segment creation (before its header was durable)
/// left it, and no record was ever appended to it. Its header bytes may be
/// anything (missing, zero, partly written); the file may be empty.
pub(crate) fn is_torn_creation(backend: &dyn Backend, path: &Path) -> Result<bool> {
    let io = |e| Error::io(format!("reading {}", path.display()), e);
    let file = backend.open(path).map_err(io)?;
    let len = file.len().map_err(io)?;
    let mut buf = vec![0u8; 1 << 16];
    for r in crate::backend::data_ranges(&*file, SEGMENT_HEADER_LEN, len).map_err(io)? {
        let mut at = r.start;
        while at < r.end {
            let n = ((r.end - at) as usize).min(buf.len());
            file.read_exact_at(&mut buf[..n], at).map_err(io)?;
            if buf[..n].iter().any(|b| *b != 0) {
                return Ok(false);
            }
            at += n as u64;
        }
    }
    Ok(true)
}

/// The offset of the first record of the newest segment that lies past
/// the last point known durable and whose data is torn: a record whose new
/// extent fails its block CRCs, or a checkpoint record whose pages fail
/// theirs (read with positional reads, never through the map: the bytes may
/// be a hole that was never written). `sealed` are the segments before it.
fn first_torn_extent(
    seg: &Segment,
    sealed: &BTreeMap<u64, Arc<Segment>>,
    metas: &[ScannedMeta],
) -> Result<Option<u64>> {
    let durable = metas
        .iter()
        .map(|m| m.synced)
        .max()
        .unwrap_or(SEGMENT_HEADER_LEN);
    let mut buf = Vec::new();
    let mut r = Reader::new(seg);
    let defines = [T_PART_SET, T_PART_SET_V2, T_OBJECT_PUT, T_OBJECT_PUT_V2];
    for m in metas.iter().filter(|m| m.offset >= durable) {
        if let Some(end) = &m.end {
            for p in &end.pages {
                let s = if p.segment == seg.id {
                    seg
                } else {
                    segment(sealed, p.segment)?
                };
                if !page(s, p, &mut buf)? {
                    return Ok(Some(m.offset));
                }
            }
            continue;
        }
        if !defines.contains(&m.tag) {
            continue;
        }
        let meta = decode_at(&mut r, m.offset)?;
        let Some(e) = meta.new_extent() else {
            continue;
        };
        if e.segment == seg.id && !extent_intact(seg, e, &mut buf)? {
            return Ok(Some(m.offset));
        }
    }
    Ok(None)
}

/// Reads the page `p` (in `seg`) into `buf`; true when it matches its
/// CRC32C.
fn page(seg: &Segment, p: &PageRef, buf: &mut Vec<u8>) -> Result<bool> {
    if p.offset.checked_add(p.len).is_none_or(|e| e > seg.len()) {
        return Ok(false);
    }
    buf.resize(p.len as usize, 0);
    seg.read_at(buf, p.offset)?;
    Ok(crc32c::crc32c(buf) == p.crc32c)
}

/// The metadata record at `offset` of the reader's segment, decoded.
fn decode_at(r: &mut Reader, offset: u64) -> Result<Meta> {
    let id = r.segment_id();
    let payload = r.meta_payload(offset)?;
    split_meta_payload(payload)
        .and_then(|(_, m)| Meta::decode(m))
        .map_err(|e| corrupt!("segment {id} offset {offset}: {e}").at(id, offset))
}

/// True when every block of `e` (in `seg`) matches its stored CRC32C.
fn extent_intact(seg: &Segment, e: &ExtentDef, buf: &mut Vec<u8>) -> Result<bool> {
    let blocks = e.len.div_ceil(BLOCK_SIZE);
    if e.block_crcs.len() as u64 != blocks || e.offset.saturating_add(e.len) > seg.len() {
        return Ok(false);
    }
    for (i, crc) in e.block_crcs.iter().enumerate() {
        let at = i as u64 * BLOCK_SIZE;
        let n = (e.len - at).min(BLOCK_SIZE) as usize;
        buf.resize(n, 0);
        seg.read_at(buf, e.offset + at)?;
        if crc32c::crc32c(buf) != *crc {
            return Ok(false);
        }
    }
    Ok(true)
}

/// Where replay starts: the last checkpoint of `metas` (its record's index
/// there, and its base).
fn last_checkpoint(metas: &[(u64, ScannedMeta)]) -> Option<(usize, Pos)> {
    let i = metas
        .iter()
        .rposition(|(_, m)| m.end.is_some() || matches!(m.tag, T_SNAPSHOT | T_SNAPSHOT_V2))?;
    let (seg, m) = &metas[i];
    match &m.end {
        Some(end) => Some((i, end.base)),
        // An old snapshot: the state of every record before it.
        None => Some((i, (*seg, m.offset))),
    }
}

/// Restores the last checkpoint of `metas` (which start at its base) and
/// replays every state record after it, in log order. Returns the index,
/// the checkpoint's base and the bytes of the records replayed.
fn replay(
    segments: &BTreeMap<u64, Arc<Segment>>,
    metas: &[(u64, ScannedMeta)],
) -> Result<Replayed> {
    let mut pages = Vec::new();
    let mut counts = Vec::new();
    let (mut index, base, skip) = match last_checkpoint(metas) {
        None => (Index::new(), (0, 0), None),
        Some((i, base)) => {
            let (seg, m) = &metas[i];
            let index = match &m.end {
                Some(end) => {
                    pages = end.page_bytes();
                    counts.clone_from(&end.counts);
                    restore(segments, end, (*seg, m.offset))?
                }
                None => {
                    let meta = decode_at(&mut Reader::new(segment(segments, *seg)?), m.offset)?;
                    let mut index = Index::new();
                    apply(&mut index, meta, *seg, m.offset)?;
                    index
                }
            };
            (index, base, Some(i))
        }
    };
    let mut replayed = 0;
    let mut reader: Option<Reader> = None;
    for (i, (seg, m)) in metas.iter().enumerate() {
        let skipped =
            Some(i) == skip || (*seg, m.offset) < base || m.end.is_some() || m.tag == T_MARK;
        if skipped {
            continue;
        }
        let r = match &mut reader {
            Some(r) if r.segment_id() == *seg => r,
            r => r.insert(Reader::new(segment(segments, *seg)?)),
        };
        let meta = decode_at(r, m.offset)?;
        apply(&mut index, meta, *seg, m.offset)?;
        replayed += framed_len(m.len);
    }
    Ok(Replayed {
        index,
        base,
        replayed,
        pages,
        counts,
    })
}

/// What [`replay`] rebuilt.
struct Replayed {
    index: Index,
    /// The restored checkpoint's base (`(0, 0)`: none).
    base: Pos,
    /// Bytes of records replayed after it.
    replayed: u64,
    /// Bytes of its pages per segment.
    pages: Vec<(u64, u64)>,
    /// Its counts of the sealed segments before its base.
    counts: Vec<SegmentCount>,
}

fn segment(segments: &BTreeMap<u64, Arc<Segment>>, id: u64) -> Result<&Segment> {
    segments
        .get(&id)
        .map(|s| &**s)
        .ok_or_else(|| corrupt!("segment {id} is gone"))
}

fn apply(index: &mut Index, meta: Meta, seg: u64, offset: u64) -> Result<()> {
    index.apply(meta).map_err(|e| {
        corrupt!("segment {seg} offset {offset}: record does not apply ({e})").at(seg, offset)
    })
}

/// Checkpoint pages decoded and handed to the restorer at a time: enough
/// to keep the threads busy, few enough that the decoded form of the whole
/// checkpoint is never held at once.
const PAGE_BATCH: usize = 16;

/// The index a checkpoint holds (its record at `at`): its pages read,
/// checked and decoded in parallel, a batch at a time, each batch restored
/// before the next is read.
fn restore(segments: &BTreeMap<u64, Arc<Segment>>, end: &CheckpointEnd, at: Pos) -> Result<Index> {
    let bad =
        |e: Error| corrupt!("segment {} offset {}: checkpoint: {e}", at.0, at.1).at(at.0, at.1);
    let mut restorer = Restorer::new(end.max_id);
    for (b, batch) in end.pages.chunks(PAGE_BATCH).enumerate() {
        let pages = batch
            .par_iter()
            .enumerate()
            .map(|(i, p)| {
                let seq = b * PAGE_BATCH + i;
                let mut buf = Vec::new();
                let (seg, offset) = (p.segment, p.offset);
                let here =
                    |e: Error| corrupt!("segment {seg} offset {offset}: {e}").at(seg, offset);
                if !page(segment(segments, seg)?, p, &mut buf)? {
                    return Err(here(corrupt!("checkpoint page {seq} fails its CRC32C")));
                }
                checkpoint::decode_page(&buf, end.base, seq as u32).map_err(here)
            })
            .collect::<Result<Vec<_>>>()?;
        restorer.push(pages).map_err(bad)?;
    }
    restorer.finish().map_err(bad)
}

/// Every extent lies inside an existing segment.
fn check_extents(index: &Index, segments: &BTreeMap<u64, Arc<Segment>>) -> Result<()> {
    for (id, e) in index.extent_locations() {
        let ok = segments
            .get(&e.segment)
            .is_some_and(|s| e.offset.saturating_add(e.len) <= s.len());
        if !ok {
            return Err(corrupt!(
                "extent {id} points outside the store (segment {}, offset {}, {} bytes)",
                e.segment,
                e.offset,
                e.len
            ));
        }
    }
    Ok(())
}
