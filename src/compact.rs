//! Compaction: reclaims the space of replaced parts, aborted uploads and
//! deleted objects.
//!
//! Steps, each safe to crash after:
//! 1. pick sealed segments whose garbage share is above
//!    `Options::compact_threshold` (or that hold no live data);
//! 2. copy their live extents into new data regions at the log's tail
//!    (verifying every block first) and fsync them — until step 3 these are
//!    unreferenced garbage;
//! 3. under the commit lock, write one `Snapshot` record holding the whole
//!    state with the new extent locations, fsync it, and apply the moves to
//!    the index — replay starts at the last snapshot, so the victims' old
//!    records are no longer needed;
//! 4. remove the victims from the segment table and unlink their files,
//!    then fsync the directory. Readers holding a `Blob` keep their maps.

use std::collections::{BTreeMap, HashMap, HashSet};

use crate::blob::ExtentView;
use crate::error::{corrupt, Result};
use crate::log::format::{ExtentMove, Meta};
use crate::store::Store;
use crate::types::{CompactionReport, Durability, SegmentStats};

/// Bytes copied per write while moving an extent.
const MOVE_CHUNK: u64 = 8 << 20;

impl Store {
    /// Rewrites the live extents of mostly-garbage segments into new ones,
    /// records the move durably, then deletes the old files. Readers and
    /// copies keep working throughout. Also drops the tombstones of
    /// completed uploads past `Options::completed_upload_retention`, from
    /// memory and from the snapshot it writes.
    pub fn compact(&self) -> Result<CompactionReport> {
        let inner = &self.inner;
        let _one = inner.compaction_lock();
        let log = inner.log();
        log.check_poison()?;
        // Tombstones of completed uploads past their retention: already
        // unknown to every call, so their memory goes (no record needed).
        inner.forget_completed(self.retention());
        // Step 1: dead regions go back to the file system in place. This
        // needs no new space, so it is what frees a full disk.
        let punched = self.punch_freed()?;
        let threshold = inner.opts().compact_threshold;
        let over = |s: &SegmentStats| {
            s.live_bytes == 0
                || (s.data_bytes > 0 && s.garbage_bytes as f64 / s.data_bytes as f64 > threshold)
        };
        // The active segment is compacted too when it is mostly garbage: seal
        // it first, so nothing new lands in it.
        let active = log.active_id();
        let seal = self
            .stats()
            .per_segment
            .iter()
            .any(|s| s.id == active && s.data_bytes > 0 && over(s));
        if seal {
            log.seal_active()?;
        }
        let active = log.active_id();
        // Segments that may hold the region of a write not yet committed
        // stay: their extent is about to be referenced.
        let limit = inner.oldest_write_in_flight().unwrap_or(active).min(active);
        let victims: HashSet<u64> = self
            .stats()
            .per_segment
            .iter()
            .filter(|s| s.id < limit && over(s))
            .map(|s| s.id)
            .collect();
        if victims.is_empty() {
            return Ok(CompactionReport {
                bytes_reclaimed: punched,
                ..CompactionReport::default()
            });
        }

        // Step 2: copy live extents out of the victims.
        let to_move: Vec<ExtentView> = {
            let index = inner.index();
            let mut ids: Vec<u64> = index
                .extent_locations()
                .filter(|(_, e)| victims.contains(&e.segment))
                .map(|(id, _)| id)
                .collect();
            ids.sort_unstable();
            ids.iter()
                .map(|id| inner.view(&index, *id))
                .collect::<Result<_>>()?
        };
        let mut moved: HashMap<u64, (u64, u64)> = HashMap::new();
        let mut bytes_moved = 0;
        for v in &to_move {
            v.verify_range(0, v.len)?;
            let region = log.reserve(v.len)?;
            let mut off = 0;
            while off < v.len {
                let n = MOVE_CHUNK.min(v.len - off);
                region
                    .segment
                    .write_at(v.bytes(off, n)?, region.data_at + off)?;
                off += n;
            }
            moved.insert(v.id, (region.segment.id, region.data_at));
            bytes_moved += v.len;
        }
        // The copies are durable before the snapshot that points at them is
        // written: a snapshot record carries no block CRCs for recovery to
        // check them against.
        for seg in moved.values().map(|(s, _)| *s).collect::<HashSet<_>>() {
            log.sync_segment(seg)?;
        }

        // Step 3: one durable snapshot with the new locations; the index
        // applies only the moves. Completed uploads past their retention
        // are left out of it (and were dropped from memory above).
        inner.commit_as(
            |index| {
                let mut snap = index.snapshot(self.retention());
                let mut moves = Vec::new();
                for e in &mut snap.extents {
                    if !victims.contains(&e.segment) {
                        continue;
                    }
                    let Some((seg, offset)) = moved.get(&e.id) else {
                        // Only extents written before step 2 live in sealed
                        // segments, and all of those were copied.
                        return Err(corrupt!(
                            "extent {} in segment {} was not moved by compaction",
                            e.id,
                            e.segment
                        ));
                    };
                    e.segment = *seg;
                    e.offset = *offset;
                    moves.push(ExtentMove {
                        extent: e.id,
                        segment: *seg,
                        offset: *offset,
                    });
                }
                Ok((
                    Meta::Snapshot(Box::new(snap)),
                    Some(Meta::ExtentsMoved { moves }),
                ))
            },
            |_| (),
        )?;
        // Always synced, whatever the durability mode: the old files go
        // away next.
        if inner.opts().durability != Durability::Sync {
            log.sync_now()?;
        }

        // Step 4: drop the victims.
        let mut report = CompactionReport {
            bytes_moved,
            bytes_reclaimed: punched,
            ..CompactionReport::default()
        };
        let mut ids: Vec<u64> = victims.into_iter().collect();
        ids.sort_unstable();
        for id in ids {
            report.bytes_reclaimed += log.remove_segment(id)?;
            report.segments_removed += 1;
        }
        log.sync_dir()?;
        Ok(report)
    }

    /// Punches holes over the regions of extents dropped since the last
    /// compaction, in segments no reader has mapped (the others wait for a
    /// later compaction). Returns the bytes given back.
    fn punch_freed(&self) -> Result<u64> {
        let inner = &self.inner;
        let log = inner.log();
        let freed = inner.take_freed();
        if freed.is_empty() {
            return Ok(0);
        }
        // The records that freed them are durable, and a mark says so.
        if let Err(e) = log.mark_durable() {
            inner.keep_freed(freed);
            return Err(e);
        }
        let mut by_segment: BTreeMap<u64, Vec<(u64, u64)>> = BTreeMap::new();
        for (seg, offset, len) in freed {
            by_segment.entry(seg).or_default().push((offset, len));
        }
        let mut reclaimed = 0;
        let mut kept = Vec::new();
        for (seg, regions) in by_segment {
            match log.punch(seg, &regions)? {
                Some(n) => reclaimed += n,
                None => kept.extend(regions.into_iter().map(|(o, l)| (seg, o, l))),
            }
        }
        inner.keep_freed(kept);
        Ok(reclaimed)
    }
}
