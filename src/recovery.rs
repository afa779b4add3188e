//! `Store::open`'s body: lock the directory, list the segments, drop a
//! newest segment whose creation was torn, scan every segment, cut a torn
//! tail, and replay the records from the last snapshot into an [`Index`].
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

use crate::backend::Backend;
use crate::error::{conflict, corrupt, Error, Reason, Result};
use crate::index::Index;
use crate::log::format::{ExtentDef, Meta, SEGMENT_HEADER_LEN};
use crate::log::scan::{self, ScannedMeta, TailPolicy};
use crate::log::segment::{self, Segment};
use crate::log::writer::Recovered;
use crate::spec::BLOCK_SIZE;
use crate::types::{Options, RecoveryMode};

/// Name of the lock file in a store directory.
const LOCK_FILE: &str = "LOCK";

/// What `open` recovered.
pub(crate) struct Opened {
    pub(crate) lock: File,
    pub(crate) index: Index,
    pub(crate) log: Recovered,
}

/// Opens the store directory `dir`: the steps of the module doc.
pub(crate) fn open(dir: &Path, opts: &Options) -> Result<Opened> {
    let backend: &dyn Backend = &*opts.backend;
    backend
        .create_dir_all(dir)
        .map_err(|e| Error::io(format!("creating {}", dir.display()), e))?;
    let lock = lock_dir(dir)?;
    let ids = segment_ids(backend, dir, opts.recovery)?;
    let mut segments = BTreeMap::new();
    let mut region_bytes = HashMap::new();
    let mut tail = SEGMENT_HEADER_LEN;
    let mut metas: Vec<(u64, ScannedMeta)> = Vec::new();
    for (i, id) in ids.iter().enumerate() {
        let newest = i + 1 == ids.len();
        let path = dir.join(segment::segment_file_name(*id));
        let mut seg = Segment::open(backend, &path)?;
        if seg.id != *id {
            return Err(corrupt!(
                "segment file {} says it is segment {}",
                path.display(),
                seg.id
            ));
        }
        let policy = match (newest, opts.recovery) {
            (false, _) => TailPolicy::Sealed,
            (true, RecoveryMode::SalvageTail) => TailPolicy::Salvage,
            (true, _) => TailPolicy::Newest,
        };
        let mut scan = scan::scan(&seg, policy)?;
        if newest {
            if let Some(cut) = first_torn_extent(&seg, &scan.metas)? {
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
        if scan.torn {
            let len = seg.len();
            drop(seg);
            scan::truncate_tail(backend, &path, scan.end, len)?;
            seg = Segment::open(backend, &path)?;
        }
        metas.extend(scan.metas.into_iter().map(|m| (*id, m)));
        region_bytes.insert(*id, scan.region_bytes);
        tail = scan.end;
        // What open read from disk is durable.
        seg.mark_synced(scan.end);
        segments.insert(*id, Arc::new(seg));
    }
    let index = replay(metas)?;
    check_extents(&index, &segments)?;
    Ok(Opened {
        lock,
        index,
        log: Recovered {
            segments,
            region_bytes,
            tail,
        },
    })
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
fn segment_ids(backend: &dyn Backend, dir: &Path, mode: RecoveryMode) -> Result<Vec<u64>> {
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
        match Segment::open(backend, &path) {
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
/// the last point known durable and whose new extent fails its block CRCs
/// (read with positional reads, never through the map: the bytes may be a
/// hole that was never written).
fn first_torn_extent(seg: &Segment, metas: &[ScannedMeta]) -> Result<Option<u64>> {
    let durable = metas
        .iter()
        .map(|m| m.synced)
        .max()
        .unwrap_or(SEGMENT_HEADER_LEN);
    let mut buf = Vec::new();
    for m in metas.iter().filter(|m| m.offset >= durable) {
        let Some(e) = m.meta.new_extent() else {
            continue;
        };
        if e.segment == seg.id && !extent_intact(seg, e, &mut buf)? {
            return Ok(Some(m.offset));
        }
    }
    Ok(None)
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

/// Replays the records from the last snapshot: it holds the whole state
/// that every earlier record built.
fn replay(metas: Vec<(u64, ScannedMeta)>) -> Result<Index> {
    let start = metas
        .iter()
        .rposition(|(_, m)| matches!(m.meta, Meta::Snapshot(_)))
        .unwrap_or(0);
    let mut index = Index::new();
    for (id, m) in metas.into_iter().skip(start) {
        index.apply(m.meta).map_err(|e| {
            corrupt!(
                "segment {id} offset {}: record does not apply ({e})",
                m.offset
            )
            .at(id, m.offset)
        })?;
    }
    Ok(index)
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
