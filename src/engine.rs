//! The engine behind [`crate::Store`]: the shared state (index, log, ids,
//! page-token key) and the commit pipeline.
//!
//! Commit: validate a record against the index → append it to the log →
//! wait until it is durable (one group fdatasync serves every writer that
//! appended before it; no lock is held across it) → apply it to the index
//! in record order. Under `Durability::Sync` a reader therefore never sees a
//! write that is not yet durable. A record is only validated while no
//! pending (appended, not yet applied) record writes what its validation
//! reads (see `index::footprint`), so replay in log order agrees.
//!
//! Checkpoints (`crate::checkpoint`) freeze the index here: a clone of the
//! index as applied and the log position of the first record it lacks.

use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use parking_lot::{Condvar, Mutex, RwLock, RwLockReadGuard, RwLockWriteGuard};

use crate::blob::ExtentView;
use crate::checkpoint::Checkpoints;
use crate::error::{corrupt, Result};
use crate::index::footprint::{Footprint, ALL};
use crate::index::Index;
use crate::list_token::TokenKey;
use crate::log::format::{framed_len, Meta};
use crate::log::writer::{Log, Pos};
use crate::options::{Durability, Options};

/// Appended records not yet applied, by the domains they write.
#[derive(Default)]
struct Pipeline {
    /// Sequence number of the next appended record.
    next_seq: u64,
    /// Pending writers per domain.
    writes: HashMap<u64, usize>,
    /// Pending records in all.
    pending: usize,
    /// Where each pending record (by sequence number) starts in the log.
    starts: BTreeMap<u64, Pos>,
}

impl Pipeline {
    fn conflicts(&self, f: &Footprint) -> bool {
        f.reads
            .iter()
            .any(|d| (*d == ALL && self.pending > 0) || self.writes.contains_key(d))
    }

    fn add(&mut self, f: &Footprint) {
        self.pending += 1;
        for d in &f.writes {
            *self.writes.entry(*d).or_default() += 1;
        }
    }

    fn remove(&mut self, f: &Footprint) {
        self.pending -= 1;
        for d in &f.writes {
            if let Some(n) = self.writes.get_mut(d) {
                *n -= 1;
                if *n == 0 {
                    self.writes.remove(d);
                }
            }
        }
    }
}

/// The state a `Store` shares with its flusher thread.
pub(crate) struct Inner {
    opts: Options,
    index: RwLock<Index>,
    log: Arc<Log>,
    pipeline: Mutex<Pipeline>,
    pipeline_cv: Condvar,
    /// Sequence number of the next record to apply.
    applied: Mutex<u64>,
    applied_cv: Condvar,
    /// One compaction at a time.
    compaction: Mutex<()>,
    /// For each body being ingested: the active segment id when it began.
    /// Its data region is in that segment or a later one until it commits,
    /// so compaction leaves those segments alone.
    writes_in_flight: Mutex<BTreeMap<u64, usize>>,
    next_id: AtomicU64,
    tokens: TokenKey,
    /// Parts streaming in or being copied, per upload: such an upload is
    /// not idle, whatever its last recorded activity.
    parts_in_flight: Mutex<HashMap<[u8; 16], usize>>,
    checkpoints: Checkpoints,
    /// The directory's lock: declared last, so dropped after the log.
    _lock: File,
}

/// Marks a part of an upload in flight until dropped.
pub(crate) struct PartGuard<'a> {
    inner: &'a Inner,
    upload: [u8; 16],
}

impl Drop for PartGuard<'_> {
    fn drop(&mut self) {
        let mut m = self.inner.parts_in_flight.lock();
        if let Some(n) = m.get_mut(&self.upload) {
            *n -= 1;
            if *n == 0 {
                m.remove(&self.upload);
            }
        }
    }
}

/// Marks a body ingest in flight until dropped (after its commit).
pub(crate) struct WriteGuard<'a> {
    inner: &'a Inner,
    segment: u64,
}

impl Drop for WriteGuard<'_> {
    fn drop(&mut self) {
        let mut m = self.inner.writes_in_flight.lock();
        if let Some(n) = m.get_mut(&self.segment) {
            *n -= 1;
            if *n == 0 {
                m.remove(&self.segment);
            }
        }
    }
}

impl Inner {
    pub(crate) fn new(
        opts: Options,
        lock: File,
        index: Index,
        log: Arc<Log>,
        tokens: TokenKey,
        checkpoints: Checkpoints,
    ) -> Inner {
        let next_id = index.max_id() + 1;
        Inner {
            opts,
            _lock: lock,
            index: RwLock::new(index),
            log,
            pipeline: Mutex::new(Pipeline::default()),
            pipeline_cv: Condvar::new(),
            applied: Mutex::new(0),
            applied_cv: Condvar::new(),
            compaction: Mutex::new(()),
            writes_in_flight: Mutex::new(BTreeMap::new()),
            next_id: AtomicU64::new(next_id),
            tokens,
            parts_in_flight: Mutex::new(HashMap::new()),
            checkpoints,
        }
    }

    pub(crate) fn checkpoints(&self) -> &Checkpoints {
        &self.checkpoints
    }

    /// A checkpoint's frozen state: a clone of the index, the log position
    /// of the first state record it does not hold (every state record
    /// before it is applied in the clone, none at or after it), and the
    /// state-record bytes appended so far. Holds off applies (and, unless
    /// `Durability::Sync`, appends) only while the index is cloned; waits
    /// for no fdatasync.
    pub(crate) fn freeze(&self) -> (Index, Pos, u64) {
        if self.opts.durability != Durability::Sync {
            // Records are appended and applied together under the pipeline
            // lock.
            let _p = self.pipeline.lock();
            let frozen = self.index.read().clone();
            return (
                frozen,
                self.log.tail_pos(),
                self.checkpoints.appended_total(),
            );
        }
        // Records apply in sequence order while `applied` is held; the
        // clone holds exactly those before sequence number `*next`.
        let next = self.applied.lock();
        let frozen = self.index.read().clone();
        // (The index lock is released before the pipeline lock is taken:
        // a committer holds the pipeline lock while it reads the index.)
        let p = self.pipeline.lock();
        // Record `*next`, if appended, is where the clone stops; if it is
        // not appended yet, nothing after the clone is, and it goes at the
        // tail (appends happen under the pipeline lock).
        let base = match p.starts.range(*next..).next() {
            Some((_, start)) => *start,
            None => self.log.tail_pos(),
        };
        (frozen, base, self.checkpoints.appended_total())
    }

    pub(crate) fn opts(&self) -> &Options {
        &self.opts
    }

    pub(crate) fn dir(&self) -> &Path {
        self.log.dir()
    }

    pub(crate) fn log(&self) -> &Log {
        &self.log
    }

    /// The log, for the flusher thread (which must not keep it alive).
    pub(crate) fn log_weak(&self) -> std::sync::Weak<Log> {
        Arc::downgrade(&self.log)
    }

    pub(crate) fn tokens(&self) -> &TokenKey {
        &self.tokens
    }

    /// The index, for reading.
    pub(crate) fn index(&self) -> RwLockReadGuard<'_, Index> {
        self.index.read()
    }

    /// Takes the regions of dropped extents (see `Index::take_freed`).
    pub(crate) fn take_freed(&self) -> Vec<crate::index::FreedRegion> {
        self.index.write().take_freed()
    }

    /// Puts back regions not given back yet.
    pub(crate) fn keep_freed(&self, regions: Vec<crate::index::FreedRegion>) {
        self.index.write().keep_freed(regions);
    }

    /// Drops the tombstones of completed uploads no longer remembered
    /// (see `Index::forget_completed`); returns how many.
    pub(crate) fn forget_completed(&self, retention: crate::index::Retention) -> usize {
        self.index.write().forget_completed(retention)
    }

    /// Holds off other compactions while alive.
    pub(crate) fn compaction_lock(&self) -> parking_lot::MutexGuard<'_, ()> {
        self.compaction.lock()
    }

    /// True while a `compact()` runs (it writes a checkpoint of its own).
    pub(crate) fn compacting(&self) -> bool {
        self.compaction.is_locked()
    }

    pub(crate) fn fresh_id(&self) -> u64 {
        self.next_id.fetch_add(1, Ordering::SeqCst)
    }

    /// Registers a body ingest; see `writes_in_flight`.
    pub(crate) fn begin_write(&self) -> WriteGuard<'_> {
        let segment = self.log.active_id();
        *self.writes_in_flight.lock().entry(segment).or_default() += 1;
        WriteGuard {
            inner: self,
            segment,
        }
    }

    /// Registers the ingest of a body of `len` bytes (`None`: unknown),
    /// unless it is small: a small body is written with its record at
    /// commit and holds no region that compaction must leave alone.
    pub(crate) fn begin_body(&self, len: Option<u64>) -> Option<WriteGuard<'_>> {
        len.is_none_or(|n| n > crate::ingest::SMALL_BODY)
            .then(|| self.begin_write())
    }

    /// Registers a part of `upload` in flight (see `parts_in_flight`).
    pub(crate) fn begin_part(&self, upload: &[u8; 16]) -> PartGuard<'_> {
        *self.parts_in_flight.lock().entry(*upload).or_default() += 1;
        PartGuard {
            inner: self,
            upload: *upload,
        }
    }

    /// True while a part of `upload` streams in or is copied.
    pub(crate) fn part_in_flight(&self, upload: &[u8; 16]) -> bool {
        self.parts_in_flight.lock().contains_key(upload)
    }

    /// Waits until every record appended in a segment below `seg` is
    /// applied to the index (a `Sync` record is applied once its fdatasync
    /// is done): compaction reads the index for the extents of its victims,
    /// and an extent whose record was appended but not applied yet would be
    /// missed.
    pub(crate) fn wait_applied_below(&self, seg: u64) {
        let mut p = self.pipeline.lock();
        while p.starts.values().any(|pos| pos.0 < seg) {
            self.pipeline_cv.wait(&mut p);
        }
    }

    /// Segments below this id hold no region of an uncommitted write.
    pub(crate) fn oldest_write_in_flight(&self) -> Option<u64> {
        self.writes_in_flight.lock().keys().next().copied()
    }

    /// Pins an extent's map and block CRCs.
    pub(crate) fn view(&self, index: &Index, id: u64) -> Result<ExtentView> {
        let e = index
            .extent(id)
            .ok_or_else(|| corrupt!("extent {id} is referenced but not in the extent table"))?;
        let seg = self
            .log
            .segment(e.segment)
            .ok_or_else(|| corrupt!("extent {id} lives in missing segment {}", e.segment))?;
        Ok(ExtentView {
            id,
            segment: e.segment,
            file_offset: e.offset,
            len: e.len,
            block_crcs: Arc::clone(&e.block_crcs),
            verified: e.verified.clone(),
            map: seg.map(),
        })
    }

    /// Commits a state change: builds the record from the current index
    /// (`prepare`, called again if it had to wait for a conflicting pending
    /// record), validates it, appends it, makes it durable per
    /// `Durability`, applies it in record order, then reads the result
    /// (`after`) from the index it changed. A failure before the append
    /// changes nothing.
    pub(crate) fn commit<T>(
        &self,
        mut prepare: impl FnMut(&Index) -> Result<Meta>,
        after: impl FnOnce(&Index) -> T,
    ) -> Result<T> {
        self.commit_as(
            |index| {
                let m = prepare(index)?;
                Ok((m, None))
            },
            after,
        )
    }

    /// [`Inner::commit`] where the record written and the change applied
    /// may differ: `prepare` returns `(record, Some(apply))` to validate and
    /// apply `apply` instead of `record` (replay then applies `record`: the
    /// two must lead to the same state). Every caller today writes what it
    /// applies (`None`).
    pub(crate) fn commit_as<T>(
        &self,
        prepare: impl FnMut(&Index) -> Result<(Meta, Option<Meta>)>,
        after: impl FnOnce(&Index) -> T,
    ) -> Result<T> {
        self.commit_inner(prepare, after, None)
    }

    /// [`Inner::commit`] of a record whose new extent is `data`, a small
    /// body not written yet: the body and the record go to the log in one
    /// write (see `Log::append_with_data`), and the record's extent gets
    /// the place they landed.
    pub(crate) fn commit_with_data<T>(
        &self,
        data: &[u8],
        mut prepare: impl FnMut(&Index) -> Result<Meta>,
        after: impl FnOnce(&Index) -> T,
    ) -> Result<T> {
        self.commit_inner(
            |index| {
                let m = prepare(index)?;
                Ok((m, None))
            },
            after,
            Some(data),
        )
    }

    fn commit_inner<T>(
        &self,
        mut prepare: impl FnMut(&Index) -> Result<(Meta, Option<Meta>)>,
        after: impl FnOnce(&Index) -> T,
        data: Option<&[u8]>,
    ) -> Result<T> {
        let sync = self.opts.durability == Durability::Sync;
        let mut p = self.pipeline.lock();
        let due: bool;
        let (apply, footprint, seq, pos) = loop {
            self.log.check_poison()?;
            let (mut record, apply, footprint) = {
                let index = self.index.read();
                let (record, apply) = prepare(&index)?;
                index.validate(apply.as_ref().unwrap_or(&record))?;
                // Only `Sync` commits wait in the pipeline (applied once
                // durable), so only they need to know what they touch.
                let footprint = if sync {
                    index.footprint(&record)
                } else {
                    Footprint::default()
                };
                (record, apply, footprint)
            };
            if sync && p.conflicts(&footprint) {
                self.pipeline_cv.wait(&mut p);
                continue;
            }
            let mut meta_len = 0;
            let (start, pos) = match data {
                Some(bytes) => self.log.append_with_data(bytes, |segment, offset, out| {
                    record.place_new_extent(segment, offset);
                    record.encode_into(out);
                    meta_len = out.len();
                })?,
                None => {
                    // A data region in a segment sealed after it was
                    // reserved is not covered by the active segment's
                    // fdatasync.
                    if let Some(seg) = record.new_extent_segment() {
                        if let Some(seg) = self.log.segment(seg) {
                            self.log.sync_region(&seg)?;
                        }
                    }
                    self.log.append_encoded(|out| {
                        record.encode_into(out);
                        meta_len = out.len();
                    })?
                }
            };
            // A checkpoint this record makes due starts once the commit is
            // done: it does not compete with the commit's own fdatasync,
            // and a caller that waits for checkpoints after each call sees
            // the same calls in the same order every run.
            let due_now = self
                .checkpoints
                .appended(framed_len(8 + meta_len as u64), self.opts.checkpoint_bytes);
            let apply = apply.unwrap_or(record);
            if !sync {
                // Acknowledged without waiting for the disk: applied now,
                // in record order because the pipeline lock is held.
                let mut index = self.index.write();
                index.apply_validated(apply);
                // What the caller gets back is read with readers let in
                // (writers stay out of the index: it is this write's
                // result), and with the pipeline free: the next writer
                // validates and appends meanwhile.
                let index = RwLockWriteGuard::downgrade(index);
                drop(p);
                let out = after(&index);
                if due_now {
                    self.checkpoints.request();
                }
                return Ok(out);
            }
            due = due_now;
            let seq = p.next_seq;
            p.next_seq += 1;
            p.add(&footprint);
            p.starts.insert(seq, start);
            break (apply, footprint, seq, pos);
        };
        drop(p);
        let durable = self.log.wait_durable(pos);
        let out = {
            let mut next = self.applied.lock();
            while *next != seq {
                self.applied_cv.wait(&mut next);
            }
            let out = durable.map(|()| {
                let mut index = self.index.write();
                index.apply_validated(apply);
                after(&RwLockWriteGuard::downgrade(index))
            });
            *next += 1;
            self.applied_cv.notify_all();
            out
        };
        {
            let mut p = self.pipeline.lock();
            p.remove(&footprint);
            p.starts.remove(&seq);
        }
        self.pipeline_cv.notify_all();
        if due {
            self.checkpoints.request();
        }
        out
    }
}
