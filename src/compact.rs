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

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use crate::blob::ExtentView;
use crate::error::Result;
use crate::record::{ExtentMove, Meta, RecordHeader, RecordKind, RECORD_HEADER_LEN};
use crate::segment::{self, Segment};
use crate::store::Store;
use crate::types::CompactionReport;

/// Bytes copied per write while moving an extent.
const MOVE_CHUNK: u64 = 8 << 20;

impl Store {
    /// Rewrites the live extents of mostly-garbage segments into new ones,
    /// records the move durably, then deletes the old files. Readers and
    /// copies keep working throughout.
    pub fn compact(&self) -> Result<CompactionReport> {
        let inner = &self.inner;
        let _one = inner.compaction.lock();
        inner.check_poison()?;
        let threshold = inner.opts.compact_threshold;
        let over = |s: &crate::types::SegmentStats| {
            s.live_bytes == 0
                || (s.data_bytes > 0 && s.garbage_bytes as f64 / s.data_bytes as f64 > threshold)
        };
        // The active segment is compacted too when it is mostly garbage: seal
        // it first, so nothing new lands in it.
        {
            let stats = self.stats();
            let mut w = inner.writer.lock();
            let active = w.active.id;
            let seal = stats
                .per_segment
                .iter()
                .any(|s| s.id == active && s.data_bytes > 0 && over(s));
            if seal {
                inner.rotate(&mut w, 0)?;
            }
        }
        let active = inner.writer.lock().active.id;
        // Segments that may hold the region of a write not yet committed
        // stay: their extent is about to be referenced.
        let limit = inner.oldest_write_in_flight().unwrap_or(active).min(active);
        let victims: HashSet<u64> = self
            .stats()
            .per_segment
            .iter()
            .filter(|s| s.id < limit)
            .filter(|s| {
                s.live_bytes == 0
                    || (s.data_bytes > 0
                        && s.garbage_bytes as f64 / s.data_bytes as f64 > threshold)
            })
            .map(|s| s.id)
            .collect();
        if victims.is_empty() {
            return Ok(CompactionReport::default());
        }

        // Step 2: copy live extents out of the victims.
        let to_move: Vec<ExtentView> = {
            let index = inner.index.read();
            let segments = inner.segments.read();
            let mut ids: Vec<u64> = index
                .extents()
                .filter(|(_, e)| victims.contains(&e.segment))
                .map(|(id, _)| *id)
                .collect();
            ids.sort_unstable();
            ids.iter()
                .map(|id| inner.view(&index, &segments, *id))
                .collect::<Result<_>>()?
        };
        let mut moved: HashMap<u64, (u64, u64)> = HashMap::new();
        let mut written: HashMap<u64, Arc<Segment>> = HashMap::new();
        let mut bytes_moved = 0;
        for v in &to_move {
            v.verify_range(0, v.len)?;
            let header = RecordHeader {
                kind: RecordKind::Extent,
                len: v.len,
                payload_crc: 0,
            }
            .encode();
            let (seg, at) = inner.append(&header, Some(v.len))?;
            let data_at = at + RECORD_HEADER_LEN;
            let mut off = 0;
            while off < v.len {
                let n = MOVE_CHUNK.min(v.len - off);
                seg.write_at(v.bytes(off, n)?, data_at + off)?;
                off += n;
            }
            moved.insert(v.id, (seg.id, data_at));
            bytes_moved += v.len;
            written.insert(seg.id, seg);
        }
        for seg in written.values() {
            seg.sync_data().inspect_err(|e| inner.set_poison(e))?;
        }

        // Step 3: one durable snapshot with the new locations.
        {
            let _c = inner.commit.lock();
            inner.check_poison()?;
            let mut snap = inner.index.read().snapshot();
            let mut moves = Vec::new();
            for e in &mut snap.extents {
                if !victims.contains(&e.segment) {
                    continue;
                }
                let Some((seg, offset)) = moved.get(&e.id) else {
                    // Only extents written before step 2 live in sealed
                    // segments, and all of those were copied.
                    return Err(crate::error::corrupt!(
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
            let (seg, _) = inner.append_meta(&Meta::Snapshot(Box::new(snap)).encode())?;
            // Always synced, whatever the durability mode: the old files go
            // away next.
            seg.sync_data().inspect_err(|e| inner.set_poison(e))?;
            inner
                .dirty
                .store(false, std::sync::atomic::Ordering::SeqCst);
            inner
                .index
                .write()
                .apply_validated(Meta::ExtentsMoved { moves });
        }

        // Step 4: drop the victims.
        let mut report = CompactionReport {
            bytes_moved,
            ..CompactionReport::default()
        };
        let mut ids: Vec<u64> = victims.into_iter().collect();
        ids.sort_unstable();
        for id in ids {
            let seg = inner.segments.write().remove(&id);
            inner.region_bytes.lock().remove(&id);
            if let Some(seg) = seg {
                let backend = &inner.opts.backend;
                let allocated = backend.allocated_bytes(&seg.path).unwrap_or(0);
                backend.remove_file(&seg.path).map_err(|e| {
                    crate::error::Error::io(format!("removing {}", seg.path.display()), e)
                })?;
                report.bytes_reclaimed += allocated;
                report.segments_removed += 1;
            }
        }
        segment::sync_dir(&*inner.opts.backend, &inner.dir)?;
        Ok(report)
    }
}
