//! The store's maintenance reads: `verify()` (every live block against its
//! CRC32C, in parallel) and `stats()` (live and garbage bytes per segment).
//! Compaction, the maintenance write, is in `compact.rs`.

use rayon::prelude::*;

use crate::blob::ExtentView;
use crate::error::{Error, Reason, Result};
use crate::spec;
use crate::store::Store;
use crate::types::{SegmentStats, Stats, VerifyFinding, VerifyReport};

/// Extents per batch of [`Store::verify`].
const VERIFY_BATCH: usize = 4096;

impl Store {
    /// Checks the CRC32C of every block of every live extent, in parallel.
    ///
    /// Extents are taken in batches of 4,096: the index is read
    /// (and writers held out of it) only while a batch's views are made, and
    /// memory holds one batch's views at a time, whatever the store's size.
    /// An extent deleted before its batch is reached is not checked.
    pub fn verify(&self) -> Result<VerifyReport> {
        // The ids from a frozen view of the extent table (walked with no
        // lock held).
        let ids: Vec<u64> = {
            let view = self.inner.index().extents_view();
            view.locations().map(|(id, _)| id).collect()
        };
        let mut report = VerifyReport {
            extents: 0,
            blocks: 0,
            bytes: 0,
            corrupt: Vec::new(),
            findings: Vec::new(),
        };
        for batch in ids.chunks(VERIFY_BATCH) {
            let views: Vec<ExtentView> = {
                let index = self.inner.index();
                batch
                    .iter()
                    .filter(|id| index.extent(**id).is_some())
                    .map(|id| self.inner.view(&index, *id))
                    .collect::<Result<_>>()?
            };
            let blocks: Vec<(usize, u64)> = views
                .iter()
                .enumerate()
                .flat_map(|(i, v)| (0..v.len.div_ceil(spec::BLOCK_SIZE)).map(move |b| (i, b)))
                .collect();
            let failed: Vec<(Error, VerifyFinding)> = blocks
                .par_iter()
                .filter_map(|(i, b)| {
                    let v = &views[*i];
                    v.check_block(*b).err().map(|e| {
                        let finding = VerifyFinding {
                            segment: v.segment,
                            offset: v.file_offset + b * spec::BLOCK_SIZE,
                            extent: v.id,
                            block: *b,
                            reason: e.reason().unwrap_or(Reason::ChecksumMismatch),
                        };
                        (e, finding)
                    })
                })
                .collect();
            report.extents += views.len();
            report.blocks += blocks.len() as u64;
            report.bytes += views.iter().map(|v| v.len).sum::<u64>();
            for (e, f) in failed {
                report.corrupt.push(e.to_string());
                report.findings.push(f);
            }
        }
        Ok(report)
    }

    /// Live and garbage bytes, segments, objects, open uploads and the
    /// completed uploads' tombstones held.
    pub fn stats(&self) -> Stats {
        // Right after an open from a checkpoint the data bytes of the
        // segments before it are still being counted: wait for that before
        // the index is locked, not with writers held out of it.
        self.inner.log().count_regions();
        let index = self.inner.index();
        let (objects, uploads, live_bytes) = index.counts();
        let live = index.live_by_segment();
        let log = self.inner.log();
        let ids = log.segment_ids();
        let per_segment: Vec<SegmentStats> = ids
            .iter()
            .map(|id| {
                let data = log.region_bytes(*id);
                let l = live.get(id).copied().unwrap_or(0);
                let pages = self.inner.checkpoints().page_bytes(*id);
                SegmentStats {
                    id: *id,
                    data_bytes: data,
                    live_bytes: l,
                    garbage_bytes: data.saturating_sub(l + pages),
                }
            })
            .collect();
        Stats {
            live_bytes,
            garbage_bytes: per_segment.iter().map(|s| s.garbage_bytes).sum(),
            segments: ids.len(),
            objects,
            uploads,
            completed_uploads: index.completed_uploads(),
            replay_bytes: self.inner.checkpoints().lag(),
            per_segment,
            recycled_segments: self.inner.log().pooled_files(),
        }
    }
}
