//! Recycled segment files (`Options::recycle_segments`): segments that
//! compaction emptied are kept, renamed `free-NNNNNNNN.log`, instead of
//! deleted, and the next rotation makes one of them the new segment. Its
//! blocks are allocated and written already, so appends allocate nothing
//! and their fdatasync flushes data only, with nothing written twice (the
//! pre-writer's zeros are a second write of every byte under a sustained
//! load).
//!
//! The file keeps the bytes of its earlier life past the new records. Two
//! rules keep them from ever being read as records (docs/FORMAT.md,
//! "Recycled segments"):
//! - a recycled segment's header says format version 2, and each of its
//!   record headers carries a CRC32C salted with its id, which no record of
//!   an earlier life (another id, or no salt) matches;
//! - no record is written more than a window (`recycled_window`) past the point the
//!   segment is known durable at ([`Log::keep_window`]), so recovery needs
//!   to look only that far past the end for records of this life that were
//!   written but never acknowledged, and zeros them (in place) when it
//!   finds any. Sealing, and a clean close, write a zero header at the end.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::backend::Backend;
use crate::error::{Error, Result};
use crate::log::format::{recycled_window, RECORD_HEADER_LEN, SEGMENT_HEADER_LEN};
use crate::log::segment::{self, Segment};
use crate::log::writer::{Log, Tail};

/// A victim is kept only while the file system has at least this many
/// times its size free: near a full disk, compaction gives space back.
const FREE_SPACE_FACTOR: u64 = 4;

/// The pool files of a store directory (by name) and their lengths, at
/// open. Those beyond `max`, or shorter than a segment of `segment_size`,
/// are deleted (best effort: a file that stays is ignored).
pub(super) fn load_pool(
    backend: &dyn Backend,
    dir: &Path,
    max: usize,
    segment_size: u64,
) -> Vec<(PathBuf, u64)> {
    let Ok(names) = backend.read_dir(dir) else {
        return Vec::new();
    };
    let mut numbers: Vec<u64> = names
        .iter()
        .filter_map(|n| segment::parse_pool_file_name(n))
        .collect();
    numbers.sort_unstable();
    let mut pool = Vec::new();
    let mut removed = false;
    for n in numbers {
        let path = dir.join(segment::pool_file_name(n));
        let len = backend.open(&path).and_then(|f| f.len()).unwrap_or(0);
        if len >= segment_size.max(SEGMENT_HEADER_LEN) && pool.len() < max {
            pool.push((path, len));
        } else {
            removed |= backend.remove_file(&path).is_ok();
        }
    }
    if removed {
        let _ = segment::sync_dir(backend, dir);
    }
    pool
}

impl Log {
    /// Whether the store keeps emptied segment files for reuse at all.
    pub(crate) fn recycles(&self) -> bool {
        self.pool_max > 0
    }

    /// Whether compaction may keep a removed segment of `len` bytes for
    /// reuse: recycling is on, the pool has room, and the disk is not
    /// nearly full.
    pub(crate) fn pool_has_room(&self, len: u64) -> bool {
        if self.pool_max == 0
            || self.pool.lock().len() + self.pool_pending.lock().len() >= self.pool_max
        {
            return false;
        }
        match self.backend.available_bytes(&self.dir) {
            Ok(free) => free / FREE_SPACE_FACTOR >= len,
            Err(_) => true,
        }
    }

    /// Removes sealed segment `id` from the table, like
    /// [`Log::remove_segment`], but keeps its file for reuse (renamed into
    /// the pool) when recycling has room for it and no one holds it (no
    /// reader's map: its bytes will change). Returns `None` when it was not
    /// taken (nothing done; remove it), `Some(true)` when kept, `Some(false)`
    /// when taken but deleted (the rename failed). The file joins the pool once the
    /// directory is synced ([`Log::pool_synced`]): reused before, a crash
    /// could bring back its old name with the new header.
    pub(crate) fn retire_segment(&self, id: u64) -> Result<Option<bool>> {
        if id == self.active_id() {
            return Ok(None);
        }
        let Some(seg) = self.segment(id) else {
            return Ok(None);
        };
        if !self.pool_has_room(seg.len()) {
            return Ok(None);
        }
        // Out of the table first: no one can take the segment afterwards,
        // so one holder (this) now means none later.
        let seg = {
            let mut table = self.segments.write();
            if Arc::strong_count(&seg) > 2 || seg.map_in_use() {
                return Ok(None);
            }
            table.remove(&id);
            seg
        };
        self.counts.lock().remove(&id);
        let to = self.dir.join(segment::pool_file_name(id));
        let (path, len) = (seg.path.clone(), seg.len());
        drop(seg);
        match self.backend.rename(&path, &to) {
            Ok(()) => {
                self.pool_pending.lock().push((to, len));
                Ok(Some(true))
            }
            Err(_) => {
                // Not kept after all: removed as any compacted segment.
                self.backend
                    .remove_file(&path)
                    .map_err(|e| Error::io(format!("removing {}", path.display()), e))?;
                Ok(Some(false))
            }
        }
    }

    /// The directory was synced after [`Log::retire_segment`]: the files
    /// it renamed may be reused now.
    pub(crate) fn pool_synced(&self) {
        let pending = std::mem::take(&mut *self.pool_pending.lock());
        self.pool.lock().extend(pending);
    }

    /// Deletes every pool file (a write found the disk full). True when
    /// any went.
    pub(super) fn drain_pool(&self) -> bool {
        let files = std::mem::take(&mut *self.pool.lock());
        let mut any = false;
        for (path, _) in files {
            any |= self.backend.remove_file(&path).is_ok();
        }
        if any {
            let _ = self.sync_dir();
        }
        any
    }

    /// A pool file made segment `id`, if one of at least `size` bytes is
    /// there and takes its new header (else the next one is tried; a file
    /// that fails is dropped from the pool).
    pub(super) fn take_pooled(&self, id: u64, size: u64) -> Option<Segment> {
        loop {
            let (path, _) = {
                let mut pool = self.pool.lock();
                let i = pool.iter().position(|(_, len)| *len >= size)?;
                pool.remove(i)
            };
            match Segment::recycle(&self.backend, &self.dir, &path, id) {
                Ok(seg) => return Some(seg),
                Err(_) => {
                    let _ = self.backend.remove_file(&path);
                }
            }
        }
    }

    /// Pool files kept (for `Stats` and tests).
    pub(crate) fn pooled_files(&self) -> usize {
        self.pool.lock().len()
    }

    /// In a recycled active segment, makes sure an append of `need` bytes
    /// at the tail ends within the window of the durable point,
    /// syncing first when it would not (once per window of appends under
    /// `Durability::None`; under `Sync` the group commit keeps the durable
    /// point near the tail).
    pub(super) fn keep_window(&self, t: &mut Tail, need: u64) -> Result<()> {
        if !t.active.recycled()
            || t.at.saturating_add(need)
                <= t.active
                    .synced()
                    .saturating_add(recycled_window(t.active.len()))
        {
            return Ok(());
        }
        self.sync_under_tail(t)
    }

    /// fdatasync of the active segment under the tail lock: everything
    /// before the tail is durable after it.
    pub(super) fn sync_under_tail(&self, t: &mut Tail) -> Result<()> {
        self.fsync(&t.active)?;
        t.active.mark_synced(t.at);
        self.advance_durable((t.active.id, t.at));
        Ok(())
    }

    /// Where a recycled segment's blocks stop being allocated after its
    /// header (compaction may have punched holes in it): what counts as
    /// allocated when it becomes active.
    pub(super) fn allocated_run(seg: &Segment) -> u64 {
        seg.file()
            .and_then(|f| f.next_hole(SEGMENT_HEADER_LEN))
            .unwrap_or(SEGMENT_HEADER_LEN)
            .min(seg.len())
    }

    /// The zero header a recycled segment gets at the end of its records
    /// when sealed or closed: without it, its end could not be told from
    /// damage (past it lie the bytes of its earlier life, not zeros).
    pub(super) fn end_marker(t: &mut Tail) {
        if t.active.recycled() {
            let end = (t.at + RECORD_HEADER_LEN).min(t.active.len());
            t.dirty_until = t.dirty_until.max(end);
        }
    }
}
