//! The segment table: lookups, the data bytes written per segment (and
//! their count after an open from a checkpoint), removal of compacted
//! segments and hole punching of dead regions.

use std::sync::Arc;

use crate::error::{Error, Result};
use crate::log::segment::Segment;
use crate::log::writer::Log;

impl Log {
    /// The segment with this id, if it exists.
    pub(crate) fn segment(&self, id: u64) -> Option<Arc<Segment>> {
        self.segments.read().get(&id).cloned()
    }

    /// Every segment id, ascending.
    pub(crate) fn segment_ids(&self) -> Vec<u64> {
        self.segments.read().keys().copied().collect()
    }

    /// Data-region bytes written into segment `id`.
    pub(crate) fn region_bytes(&self, id: u64) -> u64 {
        self.count_regions();
        // (Below zero only if more was given back than counted: none.)
        let n = self.region_bytes.lock().get(&id).copied().unwrap_or(0);
        if n > i64::MAX as u64 {
            0
        } else {
            n
        }
    }

    /// Counts the regions of the parts of segments open did not scan into
    /// the data bytes (once; a caller meanwhile waits for it). A segment
    /// that cannot be read is left as counted so far (`verify` reports
    /// it).
    pub(crate) fn count_regions(&self) {
        let mut uncounted = self.uncounted.lock();
        for (id, upto) in std::mem::take(&mut *uncounted) {
            if self.is_closed() {
                // (The store is going: no one will ask.)
                break;
            }
            let Some(seg) = self.segments.read().get(&id).cloned() else {
                continue;
            };
            let Ok(n) = crate::log::scan::count_regions(&seg, upto) else {
                continue;
            };
            if let Some(v) = self.region_bytes.lock().get_mut(&id) {
                *v = v.wrapping_add(n.bytes);
            }
            *self.holes.lock().entry(id).or_default() += n.holes;
            if upto == u64::MAX {
                // A sealed segment walked whole: its records end there,
                // all durable.
                seg.mark_synced(n.end);
            }
        }
    }

    /// Bytes of sealed segment `id` in use on disk: its records, framing
    /// and data, the holes compaction punched in them excluded. `None` for
    /// the active segment (still growing) and an unknown one.
    pub(crate) fn used_bytes(&self, id: u64) -> Option<u64> {
        if id >= self.active_id() {
            return None;
        }
        let seg = self.segment(id)?;
        let holes = self.holes.lock().get(&id).copied().unwrap_or(0);
        Some(
            seg.synced()
                .saturating_sub(crate::log::format::SEGMENT_HEADER_LEN)
                .saturating_sub(holes),
        )
    }

    /// Takes `bytes` of a region that will never be written (the unused
    /// end of a region reserved for a body of unknown length) out of
    /// segment `id`'s data bytes.
    pub(crate) fn unused_region_bytes(&self, id: u64, bytes: u64) {
        if let Some(n) = self.region_bytes.lock().get_mut(&id) {
            *n = n.wrapping_sub(bytes);
        }
    }

    /// Removes a sealed segment: it leaves the table and its file is
    /// unlinked (open maps stay valid). Returns the bytes it occupied, and
    /// the segment, for [`Log::free_removed`] once the removal is durable.
    pub(crate) fn remove_segment(&self, id: u64) -> Result<(u64, Option<Arc<Segment>>)> {
        if id == self.active_id() {
            return Ok((0, None));
        }
        let seg = self.segments.write().remove(&id);
        self.region_bytes.lock().remove(&id);
        self.holes.lock().remove(&id);
        let Some(seg) = seg else { return Ok((0, None)) };
        let allocated = self.backend.allocated_bytes(&seg.path).unwrap_or(0);
        // Open while its name goes, for `free_removed`.
        seg.keep_file();
        self.backend
            .remove_file(&seg.path)
            .map_err(|e| Error::io(format!("removing {}", seg.path.display()), e))?;
        Ok((allocated, Some(seg)))
    }

    /// Gives a removed segment's blocks back in small steps rather than all
    /// at once at its last close, when no reader is left (no map handed
    /// out, no one else holding the segment). Its removal must be durable
    /// first (the directory synced): a file system without a journal could
    /// otherwise keep its name and lose its length.
    pub(crate) fn free_removed(&self, seg: Arc<Segment>) {
        if Arc::strong_count(&seg) == 1 && !seg.map_in_use() {
            seg.free_in_steps();
        }
    }

    /// Gives the disk blocks of dead regions of segment `id` back to the
    /// file system (their bytes then read as zeros). Only while no reader
    /// holds the segment's map: returns `None` (nothing done) otherwise, or
    /// when the file system cannot punch holes. Returns the bytes freed.
    ///
    /// The records that made the regions dead must be durable and stamped
    /// as such before (see `compact`), or recovery could find a region of a
    /// record past the durable point zeroed and cut the tail there.
    pub(crate) fn punch(&self, id: u64, regions: &[(u64, u64)]) -> Result<Option<u64>> {
        const PAGE: u64 = 4096;
        let Some(seg) = self.segment(id) else {
            return Ok(Some(0));
        };
        if seg.map_in_use() {
            return Ok(None);
        }
        let io = |e| Error::io(format!("punching holes in {}", seg.path.display()), e);
        let _pin = seg.pin()?;
        let before = self.backend.allocated_bytes(&seg.path).map_err(io)?;
        let mut dead = 0;
        for (offset, len) in regions {
            let start = offset.div_ceil(PAGE) * PAGE;
            let end = (offset + len) / PAGE * PAGE;
            if end > start {
                match seg.punch_hole(start, end - start) {
                    Ok(()) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::Unsupported => return Ok(None),
                    Err(e) => return Err(io(e)),
                }
                // Only whole pages go back; the rest of a region (all of a
                // region under a page) stays garbage, for compaction to
                // reclaim by moving its segment's live extents.
                dead += end - start;
            }
        }
        if let Some(n) = self.region_bytes.lock().get_mut(&id) {
            *n = n.wrapping_sub(dead);
        }
        *self.holes.lock().entry(id).or_default() += dead;
        let after = self.backend.allocated_bytes(&seg.path).map_err(io)?;
        if id == self.active_id() {
            // Appends and the pre-writer allocate in the active segment
            // meanwhile: the difference would hide what the holes freed.
            return Ok(Some(dead));
        }
        Ok(Some(before.saturating_sub(after)))
    }
}
