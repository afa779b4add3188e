//! Checkpoints: the whole index written into the log without stalling
//! writers, so that `open` restores it and replays only the records after
//! it (`docs/DURABILITY.md`, "Checkpoints").
//!
//! A checkpoint is the state of every record before its *base* (a log
//! position). Writing one:
//! 1. freeze (`Inner::freeze`, the only step under the commit pipeline's
//!    locks): wait for nothing, take a clone of the index as applied so far
//!    and the base = the position of the first appended record it does not
//!    include (or the tail, when every appended record is applied);
//! 2. with no lock held: encode the frozen state as pages of about 1 MiB,
//!    each written into a data region reserved at the tail (like a part
//!    body: only the reservation takes the tail lock); writers keep
//!    committing, and their records land between the base and the pages, or
//!    between pages; every 8 MiB of pages the active segment is fdatasynced,
//!    so a writer's group fdatasync never has more than that of checkpoint
//!    bytes to write;
//! 3. fdatasync the sealed segments that hold pages, append the checkpoint
//!    record naming the base and the pages (with their CRC32Cs), and
//!    fdatasync (in every durability mode).
//!
//! Recovery restores the last checkpoint whose record is in the log and
//! replays every state record at or after its base. A checkpoint cut short
//! by a crash has no checkpoint record (or a torn one, or one whose pages
//! fail their CRCs while it lies past the last durable point: a torn tail,
//! cut), so recovery falls back to the previous one.
//!
//! Checkpoints are written by compaction (before it deletes segments), by a
//! background thread once `Options::checkpoint_bytes` of records were
//! appended since the last one, on a clean close when enough changed, and by
//! [`crate::Store::checkpoint`].

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};

use parking_lot::{Condvar, Mutex};

use crate::engine::Inner;
use crate::error::Result;
use crate::log::checkpoint::{
    write_pages, write_pointer, CheckpointEnd, PageRef, Pointer, Pos, PAGE_BYTES,
};

/// The active segment is fdatasynced after this many bytes of pages.
const SYNC_EVERY: usize = 8 << 20;

/// A clean close writes a checkpoint when the next `open` would otherwise
/// replay at least this share of `Options::checkpoint_bytes` of records
/// (and at least [`CLOSE_MIN_BYTES`]): a close that takes longer buys an
/// open that restores the checkpoint and replays nothing.
const CLOSE_SHARE: u64 = 8;

/// See [`CLOSE_SHARE`].
const CLOSE_MIN_BYTES: u64 = 1 << 20;

/// The checkpoint bookkeeping of a store.
pub(crate) struct Checkpoints {
    /// One checkpoint at a time.
    lock: Mutex<()>,
    /// Base of the last durable checkpoint (of the one `open` restored, at
    /// first; `(0, 0)` for none): no record before it is needed by replay,
    /// so segments below its segment may be deleted.
    durable_base: Mutex<Pos>,
    /// Bytes of that checkpoint's pages per segment: not garbage while it
    /// is the newest (see [`Checkpoints::page_bytes`]).
    pages: Mutex<Vec<(u64, u64)>>,
    /// Bytes of state records appended since open (plus those `open`
    /// replayed), counted under the pipeline lock.
    appended: AtomicU64,
    /// `appended` when the last checkpoint froze the index.
    at_last: AtomicU64,
    trigger: Arc<Trigger>,
    /// Sequence number of the last hint written to the checkpoint pointer
    /// file (`log::checkpoint::POINTER_FILE`).
    pointer_seq: AtomicU64,
}

impl Checkpoints {
    /// Bookkeeping after `open` restored the checkpoint at `base` (with
    /// `pages` bytes of pages per segment) and replayed `replayed` bytes of
    /// records after it; `pointer_seq` is the pointer file's last sequence
    /// number.
    pub(crate) fn new(
        base: Pos,
        pages: Vec<(u64, u64)>,
        replayed: u64,
        pointer_seq: u64,
    ) -> Checkpoints {
        Checkpoints {
            pointer_seq: AtomicU64::new(pointer_seq),
            lock: Mutex::new(()),
            durable_base: Mutex::new(base),
            pages: Mutex::new(pages),
            appended: AtomicU64::new(replayed),
            at_last: AtomicU64::new(0),
            trigger: Arc::new(Trigger::default()),
        }
    }

    /// Bytes of state records appended since the last checkpoint.
    pub(crate) fn lag(&self) -> u64 {
        self.appended
            .load(Ordering::SeqCst)
            .saturating_sub(self.at_last.load(Ordering::SeqCst))
    }

    /// The base of the last durable checkpoint.
    pub(crate) fn durable_base(&self) -> Pos {
        *self.durable_base.lock()
    }

    /// Bytes of the newest durable checkpoint's pages in segment `id`. They
    /// are needed until the next checkpoint, so they are not garbage: else
    /// a segment holding little but them would always look worth
    /// compacting, and every `compact()` would move its live extents and
    /// write a new checkpoint into the next segment, for ever.
    pub(crate) fn page_bytes(&self, id: u64) -> u64 {
        self.pages
            .lock()
            .iter()
            .find(|(s, _)| *s == id)
            .map_or(0, |(_, n)| *n)
    }

    /// Counts an appended state record of `bytes` bytes (called under the
    /// pipeline lock); true once `threshold` bytes were appended since the
    /// last checkpoint (0: never): the committer then [`Checkpoints::request`]s
    /// one when its commit is done.
    pub(crate) fn appended(&self, bytes: u64, threshold: u64) -> bool {
        let total = self.appended.fetch_add(bytes, Ordering::SeqCst) + bytes;
        threshold > 0 && total.saturating_sub(self.at_last.load(Ordering::SeqCst)) >= threshold
    }

    /// Wakes the checkpoint thread.
    pub(crate) fn request(&self) {
        self.trigger.request();
    }

    /// `appended` now (read under the pipeline lock by the freeze).
    pub(crate) fn appended_total(&self) -> u64 {
        self.appended.load(Ordering::SeqCst)
    }
}

impl Inner {
    /// Writes a checkpoint (the module doc's steps) unless nothing was
    /// committed since the last one. Returns whether one was written.
    /// Writers are held only while the index is cloned.
    ///
    /// `for_compaction` writes one anyway, and lets its pages use the
    /// metadata reserve that a full disk keeps for deletes (compaction is
    /// what frees the disk); other checkpoints fail with `NoSpace` rather
    /// than take it.
    pub(crate) fn checkpoint(&self, for_compaction: bool) -> Result<bool> {
        let ck = self.checkpoints();
        let _one = ck.lock.lock();
        let log = self.log();
        log.check_poison()?;
        if !for_compaction && ck.lag() == 0 && ck.durable_base() != (0, 0) {
            return Ok(false);
        }
        let (frozen, base, appended) = self.freeze();
        ck.at_last.store(appended, Ordering::SeqCst);
        // Completed uploads past their retention are left out (queries
        // already treat them as unknown). Encoded page by page straight
        // from the frozen index: no copy of the whole state is ever held.
        let snap = frozen.checkpoint_stream(crate::index::Retention::at(
            self.opts().completed_upload_retention,
            crate::info::now_ms(),
        ));
        let max_id = snap.max_id;
        let mut unsynced = 0;
        let mut segments = BTreeSet::new();
        let mut emit = |page: &[u8]| -> Result<PageRef> {
            let region = log.reserve_page(page.len() as u64, !for_compaction)?;
            if let Err(e) = region.segment.write_at(page, region.data_at) {
                log.release(&region);
                return Err(e);
            }
            region.segment.start_writeback(region.data_at, region.len);
            segments.insert(region.segment.id);
            unsynced += page.len();
            if unsynced >= SYNC_EVERY {
                log.sync_now()?;
                unsynced = 0;
            }
            Ok(PageRef {
                segment: region.segment.id,
                offset: region.data_at,
                len: region.len,
                crc32c: crc32c::crc32c(page),
            })
        };
        let pages = write_pages(snap, base, PAGE_BYTES, &mut emit)?;
        // A page in a segment sealed before it was written is not covered
        // by the seal's fdatasync (nor by the active segment's).
        for id in segments {
            if id != log.active_id() {
                log.sync_segment(id)?;
            }
        }
        // A store poisoned meanwhile may have lost a record the frozen
        // state holds: no checkpoint may claim it.
        log.check_poison()?;
        let end = CheckpointEnd {
            base,
            max_id,
            pages,
            // (Read now: segments sealed before the base stay as they are,
            // but an open's count of them may have ended meanwhile.)
            counts: log.sealed_counts(base.0),
        };
        let encoded = end.encode();
        let (record, _) = log.append_meta_at(&encoded)?;
        // The record, and the pages in the active segment.
        log.sync_now()?;
        *ck.durable_base.lock() = base;
        *ck.pages.lock() = end.page_bytes();
        // The hint for the next open (written after the checkpoint is
        // durable; a failure only makes that open scan every segment).
        let hint = Pointer {
            seq: ck.pointer_seq.fetch_add(1, Ordering::SeqCst) + 1,
            base,
            record,
            crc32c: crc32c::crc32c(&encoded),
        };
        let _ = write_pointer(&*self.opts().backend, self.dir(), &hint);
        Ok(true)
    }

    /// The checkpoint of a clean close: written when the next `open` would
    /// otherwise replay much (see [`CLOSE_SHARE`]); errors are ignored (the
    /// records are all there).
    pub(crate) fn close_checkpoint(&self) {
        let threshold = self.opts().checkpoint_bytes;
        let worth = CLOSE_MIN_BYTES.max(threshold / CLOSE_SHARE);
        if threshold > 0 && self.checkpoints().lag() >= worth {
            let _ = self.checkpoint(false);
        }
    }
}

/// The wake-up of the checkpoint thread.
#[derive(Default)]
struct Trigger {
    state: Mutex<TriggerState>,
    cv: Condvar,
}

#[derive(Default)]
struct TriggerState {
    /// A checkpoint is due.
    requested: bool,
    /// The thread is writing one.
    running: bool,
    /// The thread exists (requests are ignored otherwise).
    alive: bool,
    stop: bool,
}

impl Trigger {
    fn request(&self) {
        let mut s = self.state.lock();
        if s.alive && !s.requested {
            s.requested = true;
            self.cv.notify_all();
        }
    }
}

/// The background thread that writes periodic checkpoints; stopped and
/// joined on drop.
pub(crate) struct Checkpointer {
    trigger: Arc<Trigger>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Checkpointer {
    /// Starts the thread for `inner` (which it does not keep alive).
    pub(crate) fn spawn(inner: &Arc<Inner>) -> Checkpointer {
        let trigger = Arc::clone(&inner.checkpoints().trigger);
        let weak: Weak<Inner> = Arc::downgrade(inner);
        let t = Arc::clone(&trigger);
        trigger.state.lock().alive = true;
        let thread = std::thread::Builder::new()
            .name("partstore-checkpoint".into())
            .spawn(move || loop {
                {
                    let mut s = t.state.lock();
                    while !s.requested && !s.stop {
                        t.cv.wait(&mut s);
                    }
                    if s.stop {
                        break;
                    }
                    s.requested = false;
                    s.running = true;
                }
                if let Some(inner) = weak.upgrade() {
                    // A compaction running writes its own checkpoint when it
                    // is done; periodic ones meanwhile (its moves are many
                    // records) would each leave a checkpoint's worth of
                    // garbage behind it. If it writes none, the next commit
                    // asks again (the records since the last one are still
                    // counted).
                    if !inner.compacting() {
                        // A failure (a full disk, a poisoned store) leaves
                        // the records to replay; the next threshold tries
                        // again.
                        let _ = inner.checkpoint(false);
                    }
                }
                let mut s = t.state.lock();
                s.running = false;
                t.cv.notify_all();
            })
            .ok();
        if thread.is_none() {
            // Without the thread: checkpoints on compaction, close and
            // request only.
            trigger.state.lock().alive = false;
        }
        Checkpointer { trigger, thread }
    }

    /// Returns once no periodic checkpoint is due or being written.
    pub(crate) fn wait_idle(&self) {
        let mut s = self.trigger.state.lock();
        while s.alive && (s.requested || s.running) {
            self.trigger.cv.wait(&mut s);
        }
    }
}

impl Drop for Checkpointer {
    fn drop(&mut self) {
        {
            let mut s = self.trigger.state.lock();
            s.stop = true;
            s.alive = false;
            self.trigger.cv.notify_all();
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
