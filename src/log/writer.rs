//! The log writer: the active segment and its tail, data-region
//! reservations, record appends, rotation, and durability. Every fsync of a
//! segment goes through [`Log::fsync`], which sets the poison latch on
//! failure; nothing else sets it.
//!
//! Group commit (`Durability::Sync`): a writer appends its record, then
//! calls [`Log::wait_durable`] with the record's end. Whichever waiter finds
//! no fdatasync in flight issues one for everything appended so far and
//! wakes the others; no lock is held across the fdatasync. A failed
//! fdatasync fails every waiter of its group and poisons the log.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Instant;

use parking_lot::{Condvar, Mutex, MutexGuard, RwLock};

use crate::backend::Backend;
use crate::error::{Error, Result};
use crate::log::format::{
    framed_len, Meta, RecordHeader, RecordKind, RECORD_HEADER_LEN, SEGMENT_HEADER_LEN,
};
use crate::log::segment::{self, Segment};
use crate::options::Durability;

mod append;
mod durability;
mod pool;
mod prewrite;
mod segments;
pub(crate) use durability::Flusher;
pub(crate) use prewrite::Prewriter;
pub(crate) use segments::{SegCounts, Uncounted};

/// A position in the log: (segment id, byte offset). Positions order as
/// records were appended.
pub(crate) type Pos = (u64, u64);

/// Disk space kept allocated past every data region for metadata records
/// (deletes, aborts, compaction's snapshot), so a full disk can still
/// record what frees space. A data region goes into a segment only if this
/// much (an eighth of a segment, for segments under 8 MiB) stays free in
/// the segment after it.
const META_RESERVE: u64 = 1 << 20;

/// How far past what an append needs the active segment is allocated at
/// once: one fallocate per this many appended bytes, not one per append.
const ALLOC_STEP: u64 = 256 << 10;

/// The header of a data region of `len` bytes, in a segment whose record
/// headers carry `salt` (see `Segment::salt`).
fn region_header(len: u64, salt: Option<u64>) -> [u8; RECORD_HEADER_LEN as usize] {
    RecordHeader {
        kind: RecordKind::Extent,
        len,
        payload_crc: 0,
    }
    .encode_salted(salt)
}

/// The active segment and where the next record goes.
struct Tail {
    active: Arc<Segment>,
    /// Where the next record goes.
    at: u64,
    /// Disk blocks are allocated up to here (past `at`): writes below it
    /// cannot fail for lack of space.
    allocated_until: u64,
    /// Highest offset a failed write may have touched beyond `at`; zeroed
    /// before the segment is sealed so no garbage is left between records.
    dirty_until: u64,
    /// The range of the active segment the pre-writer has written with
    /// zeros and made durable (empty when `end <= start`). Its blocks exist:
    /// merged into `allocated_until` once it adjoins it.
    pre: std::ops::Range<u64>,
    /// A chunk whose zero-write is in flight: (segment id, range). No
    /// record may be written into it until the pre-writer clears it.
    claim: Option<(u64, std::ops::Range<u64>)>,
    /// When the last record was appended (the pre-writer's idle clock).
    last_write: Instant,
    /// When the last append of more than a pre-write chunk was (a data
    /// region of a large part): while such appends come in, the pre-writer
    /// waits for the store to go idle.
    last_big: Instant,
    /// Pre-written zeros of sealed segments past their last record, to go
    /// back to the file system (segment id, from, to): the pre-writer does
    /// it, not the writer that sealed the segment under this lock.
    sealed_zeros: Vec<(u64, u64, u64)>,
    /// [`Log::close`] ran.
    closed: bool,
    /// Scratch for the frames of small appends and the records encoded
    /// for them, reused under this lock (a tiny put allocates no buffer).
    frame: Vec<u8>,
    record: Vec<u8>,
}

impl Tail {
    /// Counts the pre-written range as allocated once nothing lies between
    /// them.
    fn merge_prewritten(&mut self) {
        if self.pre.start <= self.allocated_until && self.pre.end > self.allocated_until {
            self.allocated_until = self.pre.end;
        }
    }
}

/// The fdatasyncs of [`Log::fsync`] running now.
#[derive(Default)]
struct Syncs {
    /// The next ticket.
    next: u64,
    /// Tickets of the fdatasyncs not yet returned.
    running: std::collections::BTreeSet<u64>,
}

/// Group-commit state.
struct Durable {
    /// Everything before this position is durable.
    upto: Pos,
    /// An fdatasync is running (by one of the waiters).
    in_flight: bool,
}

/// A reserved data region: the record header is written, the data is the
/// caller's to write at `data_at..data_at+len` (its disk blocks are
/// allocated). A region whose write fails is given back with
/// [`Log::release`].
pub(crate) struct Region {
    pub(crate) segment: Arc<Segment>,
    pub(crate) data_at: u64,
    pub(crate) len: u64,
}

impl Region {
    /// Offset of the region's record header.
    fn header_at(&self) -> u64 {
        self.data_at - RECORD_HEADER_LEN
    }

    /// Offset just past the region (padding included).
    fn end(&self) -> u64 {
        self.header_at() + framed_len(self.len)
    }
}

/// What the log was left as by recovery.
pub(crate) struct Recovered {
    pub(crate) segments: BTreeMap<u64, Arc<Segment>>,
    pub(crate) counts: HashMap<u64, SegCounts>,
    /// Parts of segments open did not scan (before a checkpoint's base),
    /// whose regions are not in `counts` yet.
    pub(crate) uncounted: Vec<Uncounted>,
    /// End of the newest segment's records.
    pub(crate) tail: u64,
}

/// The append-only segment log of one store directory.
pub(crate) struct Log {
    dir: PathBuf,
    backend: Arc<dyn Backend>,
    segment_size: u64,
    durability: Durability,
    tail: Mutex<Tail>,
    segments: RwLock<BTreeMap<u64, Arc<Segment>>>,
    /// The data regions of each segment (see [`SegCounts`]).
    counts: Mutex<HashMap<u64, SegCounts>>,
    /// What recovery left uncounted of `counts` (counted by the first
    /// reader, or in the background after open). Lock order: `tail`, this,
    /// `counts`, `segments` (a holder of one takes only later ones: appends
    /// count their regions under the tail lock).
    uncounted: Mutex<Vec<Uncounted>>,
    /// One count of `uncounted` at a time (held across its reads; the
    /// list itself only while it changes).
    counting: Mutex<()>,
    poison: Mutex<Option<String>>,
    durable: Mutex<Durable>,
    durable_cv: Condvar,
    /// The fdatasyncs running now, by ticket (see [`Log::fsync`]).
    syncs: Mutex<Syncs>,
    syncs_cv: Condvar,
    /// Records appended since the last fsync (Batched / None).
    dirty: AtomicBool,
    /// Records appended since open.
    appended: AtomicBool,
    /// The pre-writer's wake-up signal, when it is on (`Options::prewrite`).
    prewrite: Option<Arc<prewrite::Signal>>,
    /// Wakes writers waiting for a claimed chunk (`Tail::claim`).
    claim_cv: Condvar,
    /// Segment files kept for reuse (`Options::recycle_segments`), ready,
    /// with their lengths.
    pool: Mutex<Vec<(PathBuf, u64)>>,
    /// Renamed into the pool by compaction, not yet durably.
    pool_pending: Mutex<Vec<(PathBuf, u64)>>,
    /// How many files the pool keeps at most.
    pool_max: usize,
}

impl Log {
    /// The log over the segments recovery found (or a first, new segment).
    pub(crate) fn new(
        dir: &Path,
        backend: Arc<dyn Backend>,
        segment_size: u64,
        durability: Durability,
        prewrite: bool,
        recycle: usize,
        rec: Recovered,
    ) -> Result<Log> {
        let mut segments = rec.segments;
        let pool = pool::load_pool(&*backend, dir, recycle, segment_size);
        let (active, at) = match segments.values().next_back() {
            Some(s) => (Arc::clone(s), rec.tail),
            None => {
                let s = Arc::new(Segment::create(&backend, dir, 1, segment_size, true)?);
                segments.insert(1, Arc::clone(&s));
                (s, SEGMENT_HEADER_LEN)
            }
        };
        if durability != Durability::Sync {
            active.map_appends();
        }
        let upto = (active.id, at);
        let allocated_until = if active.recycled() {
            Log::allocated_run(&active).max(at)
        } else {
            at
        };
        Ok(Log {
            dir: dir.to_path_buf(),
            backend,
            segment_size,
            durability,
            tail: Mutex::new(Tail {
                active,
                at,
                allocated_until,
                dirty_until: at,
                pre: at..at,
                claim: None,
                // Idle since open: the pre-writer starts at once.
                last_write: prewrite::idle_since_open(),
                last_big: prewrite::idle_since_open(),
                sealed_zeros: Vec::new(),
                closed: false,
                frame: Vec::new(),
                record: Vec::new(),
            }),
            segments: RwLock::new(segments),
            counts: Mutex::new(rec.counts),
            uncounted: Mutex::new(rec.uncounted),
            counting: Mutex::new(()),
            poison: Mutex::new(None),
            durable: Mutex::new(Durable {
                upto,
                in_flight: false,
            }),
            durable_cv: Condvar::new(),
            syncs: Mutex::new(Syncs::default()),
            syncs_cv: Condvar::new(),
            dirty: AtomicBool::new(false),
            appended: AtomicBool::new(false),
            prewrite: prewrite.then(|| Arc::new(prewrite::Signal::default())),
            claim_cv: Condvar::new(),
            pool: Mutex::new(pool),
            pool_pending: Mutex::new(Vec::new()),
            pool_max: recycle,
        })
    }

    /// The store directory.
    pub(crate) fn dir(&self) -> &Path {
        &self.dir
    }

    // ----- the poison latch ----------------------------------------------

    /// `Poisoned` once an fsync or a write whose outcome is unknown failed.
    pub(crate) fn check_poison(&self) -> Result<()> {
        match &*self.poison.lock() {
            Some(why) => Err(Error::Poisoned(why.clone())),
            None => Ok(()),
        }
    }

    fn set_poison(&self, e: &Error) {
        let mut p = self.poison.lock();
        if p.is_none() {
            *p = Some(e.to_string());
        }
    }

    /// The one place a segment is fsynced: a failure poisons the log (the
    /// kernel may have dropped the dirty pages, so what is on disk is no
    /// longer known).
    ///
    /// A success counts only once every fdatasync that was running beside
    /// it has finished without failing. The kernel reports a writeback error
    /// to the first fdatasync of a file descriptor that checks for it: of
    /// two running at once, one may get the error of pages the other was
    /// relied on to make durable, and the other succeed. So a success waits
    /// for the fdatasyncs started before it returned, then checks the
    /// poison.
    pub(crate) fn fsync(&self, seg: &Segment) -> Result<()> {
        let ticket = {
            let mut s = self.syncs.lock();
            let t = s.next;
            s.next += 1;
            s.running.insert(t);
            t
        };
        let r = seg.sync_data();
        let mut s = self.syncs.lock();
        if let Err(e) = &r {
            self.set_poison(e);
        }
        s.running.remove(&ticket);
        self.syncs_cv.notify_all();
        r?;
        let started = s.next;
        while s.running.first().is_some_and(|&t| t < started) {
            self.syncs_cv.wait(&mut s);
        }
        drop(s);
        self.check_poison()
    }

    // ----- segments ------------------------------------------------------

    /// The active segment's id.
    pub(crate) fn active_id(&self) -> u64 {
        self.tail.lock().active.id
    }

    /// Appends a mark record and syncs: every record before it is then
    /// known durable, on disk too.
    pub(crate) fn mark_durable(&self) -> Result<()> {
        self.sync_now()?;
        self.append_meta(&Meta::Mark.encode())?;
        self.sync_now()
    }

    /// Makes removed segments' directory entries durable.
    pub(crate) fn sync_dir(&self) -> Result<()> {
        segment::sync_dir(&*self.backend, &self.dir)
    }

    // ----- appending -----------------------------------------------------

    /// Reserves a data region of `len` bytes at the tail (its record header
    /// written, its blocks and a metadata reserve after it allocated),
    /// rotating when it does not fit. A full disk is an error that changes
    /// nothing (reason `NoSpace`).
    pub(crate) fn reserve(&self, len: u64) -> Result<Region> {
        self.reserve_allocating(len, len)
    }

    /// [`Log::reserve`] for a body of unknown length up to `len`: only the
    /// first `alloc` bytes (and the metadata reserve) are allocated up front;
    /// later writes allocate as they go (ENOSPC then fails the body, which
    /// gives the region back). [`Log::shrink`] fits it to what was written.
    pub(crate) fn reserve_allocating(&self, len: u64, alloc: u64) -> Result<Region> {
        self.check_poison()?;
        let total = framed_len(len);
        // Room left in the segment after the region, for the metadata
        // records that follow it: past it, a metadata record needs a new
        // segment, which a full disk may not give.
        let room = META_RESERVE.min(self.segment_size / 8);
        let mut t = self.tail.lock();
        self.wait_claim(&mut t, total + room);
        if t.at + total + room > t.active.len() {
            // Sized for the room, allocated for the region and the reserve
            // (which covers the room), as below.
            self.rotate(&mut t, total + room, META_RESERVE - room)?;
        }
        // The region and, as far as the segment reaches, the reserve.
        self.allocate(&mut t, framed_len(alloc.min(len)) + META_RESERVE)?;
        let header = region_header(len, t.active.salt());
        let (seg, at) = self.write_at_tail(&mut t, &header, total)?;
        self.counts
            .lock()
            .entry(seg.id)
            .or_default()
            .add_region(len);
        Ok(Region {
            segment: seg,
            data_at: at + RECORD_HEADER_LEN,
            len,
        })
    }

    /// Reserves a data region for one page of a checkpoint (see
    /// `crate::checkpoint`): like [`Log::reserve`], but it rotates only when
    /// the region itself does not fit (a page needs no room for a record
    /// after it), and without `keep_reserve` it may take the metadata
    /// reserve a full disk keeps (compaction's checkpoint: what frees the
    /// disk); with it, a full disk is `NoSpace` and nothing changes.
    pub(crate) fn reserve_page(&self, len: u64, keep_reserve: bool) -> Result<Region> {
        self.check_poison()?;
        let total = framed_len(len);
        let mut t = self.tail.lock();
        self.wait_claim(&mut t, total);
        if t.at + total > t.active.len() {
            self.rotate(&mut t, total, 0)?;
        }
        if let Err(e) = self.allocate(&mut t, total + META_RESERVE) {
            if keep_reserve {
                return Err(e);
            }
            self.allocate(&mut t, total)?;
        }
        let header = region_header(len, t.active.salt());
        let (seg, at) = self.write_at_tail(&mut t, &header, total)?;
        self.counts
            .lock()
            .entry(seg.id)
            .or_default()
            .add_region(len);
        Ok(Region {
            segment: seg,
            data_at: at + RECORD_HEADER_LEN,
            len,
        })
    }

    /// Fits a region to the `used` bytes a body of unknown length wrote:
    /// when nothing was appended after it, its header is rewritten with the
    /// real length and the tail moves back to just past it (the rest is
    /// reused by the next record); otherwise its unused end stays garbage.
    /// Returns the region as it now is. The rewritten header is made
    /// durable by the fdatasync that makes its record durable; until then a
    /// crash leaves the old header, whose region swallows the unacknowledged
    /// records that followed, and nothing acknowledged.
    pub(crate) fn shrink(&self, region: Region, used: u64) -> Result<Region> {
        let mut t = self.tail.lock();
        let fits = t.active.id == region.segment.id && t.at == region.end() && used < region.len;
        if !fits {
            drop(t);
            self.unused_region_bytes(region.segment.id, region.len - used.min(region.len), false);
            return Ok(region);
        }
        let header = region_header(used, region.segment.salt());
        region.segment.write_at(&header, region.header_at())?;
        let shrunk = Region {
            segment: Arc::clone(&region.segment),
            data_at: region.data_at,
            len: used,
        };
        t.at = shrunk.end();
        drop(t);
        self.unused_region_bytes(region.segment.id, region.len - used, true);
        Ok(shrunk)
    }

    /// Gives back a region whose body failed (an I/O error, a length or
    /// digest mismatch): when nothing was appended after it, the tail moves
    /// back so the next record reuses its (allocated) space; otherwise it
    /// stays garbage for compaction. Bytes written into it are zeroed
    /// before the segment is sealed or closed.
    pub(crate) fn release(&self, region: &Region) {
        let mut t = self.tail.lock();
        if t.active.id == region.segment.id && t.at == region.end() {
            t.at = region.header_at();
            t.dirty_until = t.dirty_until.max(region.end());
            // (Its header goes too: the next record overwrites it.)
            self.unused_region_bytes(region.segment.id, region.len, true);
        }
    }

    /// Makes sure the `need` bytes from the tail have disk blocks.
    /// Blocks the pre-writer wrote (zeros, made durable) count as
    /// allocated: they are not allocated again.
    fn allocate(&self, t: &mut Tail, need: u64) -> Result<()> {
        t.merge_prewritten();
        let end = (t.at + need).min(t.active.len());
        if end <= t.allocated_until {
            return Ok(());
        }
        if t.active.recycled() {
            // Allocated already, up to the next hole (a region compaction
            // punched in the file's earlier life).
            let from = t.allocated_until.max(t.at);
            let run = t
                .active
                .file()
                .and_then(|f| f.next_hole(from))
                .unwrap_or(from);
            t.allocated_until = run.min(t.active.len()).max(t.allocated_until);
            if end <= t.allocated_until {
                return Ok(());
            }
        }
        let from = t.allocated_until.max(t.at);
        // Ahead by a step more than asked, so small appends do not each
        // cost an fallocate; on a full disk, exactly what is asked. Not
        // into a pre-written range that covers the rest of what is asked.
        let mut ahead = (end + ALLOC_STEP).min(t.active.len());
        if from < t.pre.start && t.pre.start < ahead && end <= t.pre.end {
            ahead = t.pre.start;
        }
        if t.active.allocate(from, ahead - from).is_err() {
            // A full disk: exactly what is asked, the kept segment files
            // deleted first if that is what it takes.
            if let Err(e) = t.active.allocate(from, end - from) {
                if !self.drain_pool() {
                    return Err(e);
                }
                t.active.allocate(from, end - from)?;
            }
            t.allocated_until = end;
            t.merge_prewritten();
            return Ok(());
        }
        t.allocated_until = ahead;
        t.merge_prewritten();
        Ok(())
    }

    /// True while the pre-writer's claimed chunk overlaps the `need` bytes
    /// from the tail.
    fn claim_blocks(&self, t: &Tail, need: u64) -> bool {
        match &t.claim {
            Some((id, r)) => {
                *id == t.active.id && t.at.saturating_add(need) > r.start && t.at < r.end
            }
            None => false,
        }
    }

    /// Waits (the tail lock released meanwhile) until no claimed chunk lies
    /// in the `need` bytes from the tail: a record never enters a range
    /// whose zero-write is in flight. Only a writer that caught up with the
    /// pre-writer waits, for one chunk.
    fn wait_claim(&self, t: &mut MutexGuard<'_, Tail>, need: u64) {
        while self.claim_blocks(t, need) {
            self.claim_cv.wait(t);
        }
    }

    /// Where the next record goes.
    pub(crate) fn tail_pos(&self) -> Pos {
        let t = self.tail.lock();
        (t.active.id, t.at)
    }

    /// Seals the active segment and starts a new one that holds at least
    /// `need` bytes (for compaction: `need` 0 just seals).
    pub(crate) fn seal_active(&self) -> Result<()> {
        let mut t = self.tail.lock();
        self.rotate(&mut t, 0, META_RESERVE)
    }

    /// Seals the active segment (fsynced, so that only the newest segment
    /// can ever have a torn tail) and starts the next one, sized to hold at
    /// least `need` bytes, with the blocks of those and of `reserve` more
    /// (as far as it reaches) allocated before it becomes active. When they
    /// cannot be had (a full disk), the new file goes (durably) and the old
    /// segment stays active, with the metadata reserve it still has: a new
    /// active segment without one could record only what fits in its first
    /// block, and a full disk then could not record deletes.
    fn rotate(&self, t: &mut Tail, need: u64, reserve: u64) -> Result<()> {
        self.check_poison()?;
        Self::zero_dirty(t)?;
        self.fsync(&t.active)?;
        t.active.mark_synced(t.at);
        self.advance_durable((t.active.id, t.at));
        let id = t.active.id + 1;
        let size = self.segment_size.max(SEGMENT_HEADER_LEN + need);
        let seg = match self.take_pooled(id, size) {
            Some(seg) => Arc::new(seg),
            None => Arc::new(Segment::create(&self.backend, &self.dir, id, size, true)?),
        };
        let size = seg.len();
        let allocated = (SEGMENT_HEADER_LEN + need + reserve).min(size);
        // (A recycled file's blocks exist up to its first hole; on a full
        // disk the kept files go first.)
        let run = if seg.recycled() {
            Log::allocated_run(&seg).min(allocated)
        } else {
            SEGMENT_HEADER_LEN
        };
        let allocate = || match allocated - run {
            0 => Ok(()),
            n => seg.allocate(run, n),
        };
        let got = allocate().or_else(|e| {
            if self.drain_pool() {
                allocate()
            } else {
                Err(e)
            }
        });
        if let Err(e) = got {
            let path = seg.path.clone();
            drop(seg);
            // Records go on into the old segment, which recovery treats as
            // the newest (torn tail allowed) only once this file is gone.
            let gone = self
                .backend
                .remove_file(&path)
                .map_err(|e| Error::io(format!("removing {}", path.display()), e))
                .and_then(|()| self.sync_dir());
            if let Err(gone) = gone {
                self.set_poison(&gone);
            }
            return Err(e);
        }
        if self.durability != Durability::Sync {
            // (Under `Sync` every append is followed by an fdatasync
            // anyway: its `pwrite` is not what a write waits for.)
            seg.map_appends();
        }
        self.segments.write().insert(id, Arc::clone(&seg));
        let old = std::mem::replace(&mut t.active, seg);
        let (old_at, old_pre) = (t.at, t.pre.clone());
        t.at = SEGMENT_HEADER_LEN;
        t.allocated_until = if t.active.recycled() {
            Log::allocated_run(&t.active).max(allocated)
        } else {
            allocated
        };
        t.dirty_until = SEGMENT_HEADER_LEN;
        t.pre = SEGMENT_HEADER_LEN..SEGMENT_HEADER_LEN;
        self.advance_durable((id, SEGMENT_HEADER_LEN));
        // Sealed and synced: its file is closed (reopened on demand).
        old.seal_file();
        // The sealed segment's pre-written zeros past its records go back
        // to the file system (nothing is ever written there again), by the
        // pre-writer, after this lock is released.
        self.give_back_later(t, old.id, old_at, old_pre.end);
        Ok(())
    }

    /// Zeros what failed or released writes left past the tail, so no
    /// garbage follows the last record of a sealed or closed segment.
    fn zero_dirty(t: &mut Tail) -> Result<()> {
        const CHUNK: u64 = 1 << 20;
        Log::end_marker(t);
        let zeros = vec![0u8; CHUNK.min(t.dirty_until.saturating_sub(t.at)) as usize];
        let mut at = t.at;
        while at < t.dirty_until {
            let n = CHUNK.min(t.dirty_until - at);
            t.active.write_at(&zeros[..n as usize], at)?;
            at += n;
        }
        t.dirty_until = t.at;
        Ok(())
    }
}

impl Drop for Log {
    fn drop(&mut self) {
        self.close();
    }
}
