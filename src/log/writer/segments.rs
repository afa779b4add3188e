//! The segment table: lookups, the data bytes written per segment (and
//! their count after an open from a checkpoint), removal of compacted
//! segments and hole punching of dead regions.

use std::sync::Arc;

use crate::error::{Error, Result};
use crate::log::checkpoint::{SegmentCount, MAX_SEGMENT_COUNTS};
use crate::log::format::SEGMENT_HEADER_LEN;
use crate::log::segment::Segment;
use crate::log::writer::Log;

/// The data regions of one segment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct SegCounts {
    /// Data-region bytes written (live or not), holes and the unused ends
    /// of regions excluded. Until the segment's part in `uncounted` is
    /// counted in, it may have wrapped below zero (a region given back
    /// before the part of the segment holding it was counted): read it
    /// through [`Log::region_bytes`].
    pub(crate) bytes: u64,
    /// Bytes of data regions that are holes (compaction punched them): not
    /// in `bytes`, and not on disk.
    pub(crate) holes: u64,
    /// The sum of the lengths its regions' headers give (what a walk of
    /// its records finds), for the checkpoints' [`SegmentCount`]s.
    pub(crate) headers: u64,
}

impl SegCounts {
    /// A region of `len` bytes appended.
    pub(crate) fn add_region(&mut self, len: u64) {
        self.bytes = self.bytes.wrapping_add(len);
        self.headers = self.headers.wrapping_add(len);
    }
}

/// A segment's part that `open` did not scan: its records before `upto`
/// (`u64::MAX`: all of them).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Uncounted {
    pub(crate) id: u64,
    pub(crate) upto: u64,
    /// What the checkpoint open restored says of the segment (walked
    /// whole): its records are not read, only its holes are sought.
    pub(crate) known: Option<SegmentCount>,
}

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
        let n = self.counts.lock().get(&id).map_or(0, |c| c.bytes);
        if n > i64::MAX as u64 {
            0
        } else {
            n
        }
    }

    /// Counts the regions of the parts of segments open did not scan into
    /// the data bytes (once; a caller meanwhile waits for it). A segment
    /// that cannot be read is left as counted so far (`verify` reports
    /// it). A segment the restored checkpoint counted is not read: only
    /// its holes are sought.
    pub(crate) fn count_regions(&self) {
        let _one = self.counting.lock();
        loop {
            if self.is_closed() {
                // (The store is going: no one will ask.)
                break;
            }
            let Some(u) = self.uncounted.lock().first().copied() else {
                break;
            };
            let seg = self.segments.read().get(&u.id).cloned();
            let counted = seg.as_ref().and_then(|seg| match u.known {
                Some(k) => crate::log::scan::hole_bytes(seg, SEGMENT_HEADER_LEN, k.end)
                    .ok()
                    .map(|holes| crate::log::scan::Counted {
                        bytes: k.region_bytes.saturating_sub(holes),
                        holes: holes.min(k.region_bytes),
                        end: k.end,
                    }),
                None => crate::log::scan::count_regions(seg, u.upto).ok(),
            });
            // (Counted in and taken off the list at once: a checkpoint
            // reads both.)
            let mut list = self.uncounted.lock();
            if let (Some(seg), Some(n)) = (&seg, counted) {
                let mut counts = self.counts.lock();
                if let Some(c) = counts.get_mut(&u.id) {
                    c.bytes = c.bytes.wrapping_add(n.bytes);
                    c.holes += n.holes;
                    c.headers = c.headers.wrapping_add(n.bytes + n.holes);
                }
                if u.upto == u64::MAX {
                    // A sealed segment walked whole: its records end
                    // there, all durable.
                    seg.mark_synced(n.end);
                }
            }
            if let Some(i) = list.iter().position(|x| *x == u) {
                list.remove(i);
            }
        }
    }

    /// The counts of the sealed segments before segment `before` for a
    /// checkpoint (at most [`MAX_SEGMENT_COUNTS`]): those whose regions
    /// are all counted (or that the last restored checkpoint counted).
    pub(crate) fn sealed_counts(&self, before: u64) -> Vec<SegmentCount> {
        // (The tail lock first, and released: appends hold it while they
        // count their regions into `counts`.)
        let active = self.active_id();
        let list = self.uncounted.lock();
        let counts = self.counts.lock();
        let segments = self.segments.read();
        let mut out = Vec::new();
        for (id, seg) in segments.range(..before.min(active)) {
            if out.len() == MAX_SEGMENT_COUNTS {
                break;
            }
            let count = match list.iter().find(|u| u.id == *id) {
                Some(u) => u.known,
                None => counts.get(id).map(|c| SegmentCount {
                    segment: *id,
                    end: seg.synced(),
                    region_bytes: c.headers,
                }),
            };
            // (A value that wrapped, or an end not known: left out, and
            // walked by the open that needs it.)
            if let Some(c) = count.filter(|c| {
                c.end >= SEGMENT_HEADER_LEN && c.region_bytes <= c.end && c.end <= seg.len()
            }) {
                out.push(c);
            }
        }
        out
    }

    /// Bytes of sealed segment `id` in use on disk: its records, framing
    /// and data, the holes compaction punched in them excluded. `None` for
    /// the active segment (still growing) and an unknown one.
    pub(crate) fn used_bytes(&self, id: u64) -> Option<u64> {
        if id >= self.active_id() {
            return None;
        }
        let seg = self.segment(id)?;
        let holes = self.counts.lock().get(&id).map_or(0, |c| c.holes);
        Some(
            seg.synced()
                .saturating_sub(crate::log::format::SEGMENT_HEADER_LEN)
                .saturating_sub(holes),
        )
    }

    /// Takes `bytes` of a region that will never be written (the unused
    /// end of a region reserved for a body of unknown length) out of
    /// segment `id`'s data bytes.
    /// With `header`, the region's header was rewritten (or will be
    /// overwritten) to leave them out too.
    pub(crate) fn unused_region_bytes(&self, id: u64, bytes: u64, header: bool) {
        if let Some(c) = self.counts.lock().get_mut(&id) {
            c.bytes = c.bytes.wrapping_sub(bytes);
            if header {
                c.headers = c.headers.wrapping_sub(bytes);
            }
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
        self.counts.lock().remove(&id);
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
        let mut counts = self.counts.lock();
        let c = counts.entry(id).or_default();
        c.bytes = c.bytes.wrapping_sub(dead);
        c.holes += dead;
        drop(counts);
        let after = self.backend.allocated_bytes(&seg.path).map_err(io)?;
        if id == self.active_id() {
            // Appends and the pre-writer allocate in the active segment
            // meanwhile: the difference would hide what the holes freed.
            return Ok(Some(dead));
        }
        Ok(Some(before.saturating_sub(after)))
    }
}
