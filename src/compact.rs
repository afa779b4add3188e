//! Compaction: reclaims the space of replaced parts, aborted uploads and
//! deleted objects.
//!
//! Steps, each safe to crash after:
//! 0. punch holes over the regions of extents freed since the last
//!    compaction (after a durable mark);
//! 1. pick sealed segments whose garbage share is above
//!    `Options::compact_threshold` (or that hold no live data, or that are
//!    mostly metadata records no open needs: `records_dead`);
//! 2. copy their live extents into new data regions at the log's tail
//!    (verifying every block first) and fsync them — until step 3 these are
//!    unreferenced garbage;
//! 3. commit `ExtentsMoved` records with the new locations (ordinary
//!    records of at most 4096 moves each, made durable in every mode; no
//!    lock is held across more than one);
//! 4. unless the last durable checkpoint's base already lies past every
//!    victim, write a checkpoint (`crate::checkpoint`, writers go on
//!    meanwhile): its base lies after the moves, so replay needs no record
//!    of a victim;
//! 5. remove the victims (only segments wholly before that base) from the
//!    segment table and unlink their files, then fsync the directory.
//!    Readers holding a `Blob` keep their maps.

use std::collections::{BTreeMap, HashMap, HashSet};

use crate::blob::ExtentView;
use crate::error::{corrupt, Result};
use crate::log::format::{ExtentMove, Meta, RECORD_ALIGN, RECORD_HEADER_LEN};
use crate::options::Durability;
use crate::store::Store;
use crate::types::{CompactionReport, SegmentStats};

/// Bytes copied per write while moving an extent.
const MOVE_CHUNK: u64 = 8 << 20;

/// Extents read from the index, and moves recorded, at a time.
const BATCH: usize = 4096;

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
        // A segment with nothing live goes, unless it holds the newest
        // checkpoint's pages (the next `open` needs them; moving them would
        // only write the same checkpoint into the next segment, every
        // time). Those pages are not garbage either (`Stats`).
        let checkpoint = inner.checkpoints();
        let records_dead = self.records_dead(checkpoint.durable_base().0);
        let share_over = |s: &SegmentStats, garbage: u64| {
            s.data_bytes > 0 && garbage as f64 / s.data_bytes as f64 > threshold
        };
        let over = |s: &SegmentStats| {
            (s.live_bytes == 0 && checkpoint.page_bytes(s.id) == 0)
                || share_over(s, s.garbage_bytes)
                || records_dead(s)
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
        let segments = self.stats().per_segment;
        let mut victims: HashSet<u64> = segments
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
        // Removing the victims takes a new checkpoint, which makes the
        // newest one's pages garbage: segments over the threshold with
        // those counted go too. Its base lies past every sealed segment,
        // so the records of each of them are then no longer needed either:
        // those holding mostly such records go too (else which ones go
        // would depend on where the last periodic checkpoint fell).
        let records_dead_after = self.records_dead(limit);
        victims.extend(
            segments
                .iter()
                .filter(|s| {
                    s.id < limit
                        && (s.live_bytes == 0
                            || share_over(s, s.garbage_bytes + checkpoint.page_bytes(s.id))
                            || records_dead_after(s))
                })
                .map(|s| s.id),
        );
        // Records appended in the victims (a `Sync` put just before the
        // seal, still waiting for its fdatasync) are in the index before
        // it is read for their extents.
        inner.wait_applied_below(victims.iter().copied().max().unwrap_or(0) + 1);

        // Step 2: copy live extents out of the victims. The index is read
        // in short batches (a writer applying its record waits for none of
        // this); extents deleted meanwhile are skipped.
        // Walked in a frozen view: on a store of millions of extents the
        // walk takes tens of milliseconds, which a writer applying its
        // record would otherwise wait out.
        let view = inner.index().extents_view();
        let mut ids: Vec<u64> = view
            .locations()
            .filter(|(_, e)| victims.contains(&e.segment))
            .map(|(id, _)| id)
            .collect();
        drop(view);
        ids.sort_unstable();
        let mut moved: HashMap<u64, (u64, u64)> = HashMap::new();
        let mut bytes_moved = 0;
        for batch in ids.chunks(BATCH) {
            let views: Vec<ExtentView> = {
                let index = inner.index();
                batch
                    .iter()
                    .filter(|id| index.extent(**id).is_some())
                    .map(|id| inner.view(&index, *id))
                    .collect::<Result<_>>()?
            };
            for v in &views {
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
        }
        // The copies are durable before the record that points at them is
        // written: an `ExtentsMoved` record carries no block CRCs for
        // recovery to check them against.
        for seg in moved.values().map(|(s, _)| *s).collect::<HashSet<_>>() {
            log.sync_segment(seg)?;
        }

        // Step 3: the moves, as ordinary records of at most `BATCH` moves
        // each (so no apply holds the index long). Extents deleted since
        // step 2 are simply left out. A crash between two leaves some
        // extents moved and the rest in place: both are valid.
        for batch in ids.chunks(BATCH) {
            inner.commit(
                |index| {
                    let moves: Vec<ExtentMove> = batch
                        .iter()
                        .filter(|id| index.extent(**id).is_some())
                        .filter_map(|id| {
                            moved.get(id).map(|(segment, offset)| ExtentMove {
                                extent: *id,
                                segment: *segment,
                                offset: *offset,
                            })
                        })
                        .collect();
                    Ok(Meta::ExtentsMoved { moves })
                },
                |_| (),
            )?;
        }
        // Durable whatever the mode: the old copies go away next.
        if !ids.is_empty() && inner.opts().durability != Durability::Sync {
            log.sync_now()?;
        }
        // No live byte is left in a victim: only extents written before step
        // 2 live in sealed segments, and every one of them was moved.
        {
            let index = inner.index();
            let live = index.live_by_segment();
            if let Some(v) = victims.iter().find(|v| live.get(v).is_some_and(|n| *n > 0)) {
                return Err(corrupt!(
                    "segment {v} still holds {} live bytes after compaction moved its extents",
                    live.get(v).copied().unwrap_or(0)
                ));
            }
        }

        // Step 4: a durable checkpoint past every victim, so that replay
        // reads none of their records.
        let last = victims.iter().copied().max().unwrap_or(0);
        if inner.checkpoints().durable_base().0 <= last && inner.checkpoint(true)? {
            // A record stamped with the checkpoint's durability: from now
            // on damage to it is `Corrupt` at open, never taken for a torn
            // tail (replay could not go back past it once the victims are
            // gone).
            log.append_meta(&Meta::Mark.encode())?;
        }
        let base = inner.checkpoints().durable_base();

        // Step 5: drop the victims.
        let mut report = CompactionReport {
            bytes_moved,
            bytes_reclaimed: punched,
            ..CompactionReport::default()
        };
        let mut ids: Vec<u64> = victims.into_iter().filter(|id| *id < base.0).collect();
        ids.sort_unstable();
        let mut removed = Vec::new();
        for id in ids {
            // Kept for reuse (`Options::recycle_segments`) when there is
            // room: its blocks are not given back.
            if let Some(kept) = log.retire_segment(id)? {
                report.segments_removed += 1;
                report.segments_recycled += usize::from(kept);
                continue;
            }
            let (bytes, seg) = log.remove_segment(id)?;
            report.bytes_reclaimed += bytes;
            report.segments_removed += 1;
            removed.extend(seg);
        }
        log.sync_dir()?;
        log.pool_synced();
        for seg in removed {
            log.free_removed(seg);
        }
        Ok(report)
    }

    /// Whether a segment is mostly metadata records no open needs: wholly
    /// before segment `base` (the newest checkpoint's, where replay starts;
    /// or, once compaction has victims and so writes a checkpoint past every
    /// sealed segment, the first segment that may not be sealed), with its
    /// live extents (and their framing) and that checkpoint's pages taking
    /// under an eighth of what it holds on disk. Records of deletes, copies
    /// and renames write no data, so the data garbage share never counts
    /// them; without this, a few live objects would keep a segment of such
    /// records for ever. An eighth, not `compact_threshold`: the segment
    /// the live extents move to holds their framing and a move record each,
    /// and must not be a victim in turn (tiny extents: about half live).
    fn records_dead(&self, base: u64) -> impl Fn(&SegmentStats) -> bool + '_ {
        let inner = &self.inner;
        let extents = inner.index().live_extents().clone();
        move |s: &SegmentStats| {
            if s.id >= base {
                return false;
            }
            let Some(used) = inner.log().used_bytes(s.id) else {
                return false;
            };
            let framing = RECORD_HEADER_LEN + RECORD_ALIGN - 1;
            let live = s.live_bytes
                + extents.get(&s.id).copied().unwrap_or(0) * framing
                + inner.checkpoints().page_bytes(s.id);
            live.saturating_mul(8) < used
        }
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
        // A sealed segment with nothing live is a victim of this very
        // compaction (unless it holds the newest checkpoint's pages): when
        // it will be kept for reuse, its blocks stay (a hole would have to
        // be allocated again when it is reused).
        let recycled = {
            let live = log
                .recycles()
                .then(|| inner.index().live_by_segment().clone());
            let active = log.active_id();
            let checkpoints = inner.checkpoints();
            move |id: u64| {
                live.as_ref().is_some_and(|live| {
                    id < active
                        && live.get(&id).is_none_or(|n| *n == 0)
                        && checkpoints.page_bytes(id) == 0
                        && log.segment(id).is_some_and(|s| log.pool_has_room(s.len()))
                })
            }
        };
        for (seg, regions) in by_segment {
            if recycled(seg) {
                kept.extend(regions.into_iter().map(|(o, l)| (seg, o, l)));
                continue;
            }
            match log.punch(seg, &regions)? {
                Some(n) => reclaimed += n,
                None => kept.extend(regions.into_iter().map(|(o, l)| (seg, o, l))),
            }
        }
        inner.keep_freed(kept);
        Ok(reclaimed)
    }
}
