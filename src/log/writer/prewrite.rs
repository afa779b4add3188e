//! The pre-writer (`Options::prewrite`): a background thread that keeps a
//! window of the active segment ahead of the tail written with zeros and
//! made durable, so that the records and data written at the tail land in
//! blocks that are already allocated and written. Their fdatasync then
//! flushes data only: no unwritten extent to convert, no block to allocate,
//! so no file-system journal commit (2.3–8x faster for a 64 KiB write on
//! ext4, see BENCHMARKS.md).
//!
//! Coordination, under the tail lock: the pre-writer claims a chunk past
//! every reservation (at or after the tail, which only ever moves back by
//! giving up a reservation), writes and fdatasyncs it with no lock held,
//! then publishes it as `Tail::pre`, which [`Log::allocate`] counts as
//! allocated. A record that would enter the claimed chunk waits for it
//! (`Log::wait_claim`); nothing else ever waits for the pre-writer. A writer
//! that outruns it allocates as before (fallocate), and the pre-writer jumps
//! ahead of it.
//!
//! Its failures are its own: it writes through a file descriptor of its own
//! (so its fdatasync never consumes the write-back error the store's
//! fdatasync must see: Linux reports such an error once per open file), an
//! error poisons nothing and fails no caller; the pre-writer gives back what
//! its failed chunk allocated and tries again later.
//!
//! It only ever writes zeros, and only where no record is: a crash leaves
//! zeros after the last record, which recovery reads as the end of the
//! records.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};

use crate::backend::BackendFile;
use crate::log::segment::{Segment, FREE_PAUSE, FREE_STEP};
use crate::log::writer::{Log, Tail};

/// The pre-writer writes (and fdatasyncs) this much at a time.
pub(super) const CHUNK: u64 = 1 << 20;
/// While records come in, the window kept written ahead of the tail:
/// ~50 ms of 64 KiB puts from 8 writers at the group-commit rate measured
/// here (see BENCHMARKS.md).
const BUSY_WINDOW: u64 = 4 << 20;
/// After `IDLE_AFTER` without an append, the window grows to this (never
/// past the segment's end).
const IDLE_WINDOW: u64 = 64 << 20;
/// How long without an append makes the store idle.
const IDLE_AFTER: Duration = Duration::from_millis(100);
/// A pre-written range starts at least this far past the tail when the
/// writers outran it, so they do not run into its claimed chunk at once.
const MIN_LEAD: u64 = 512 << 10;
/// File-system block granularity of the pre-written ranges.
const PAGE: u64 = 4096;
/// Back-off after a failed chunk, doubling up to `BACKOFF_MAX`.
const BACKOFF_MIN: Duration = Duration::from_secs(1);
const BACKOFF_MAX: Duration = Duration::from_secs(60);

fn round_up(x: u64) -> u64 {
    x.div_ceil(PAGE) * PAGE
}

/// Wakes the pre-writer: set by writers whose appends leave it too little
/// room ahead, and on stop.
#[derive(Default)]
pub(crate) struct Signal {
    state: Mutex<SignalState>,
    cv: Condvar,
    /// The pre-writer found nothing to do and may be waiting: the next
    /// writer that needs it kicks it (only that one: it clears this).
    sleeping: AtomicBool,
}

#[derive(Default)]
struct SignalState {
    stop: bool,
    kicked: bool,
}

impl Signal {
    fn kick(&self) {
        let mut s = self.state.lock();
        s.kicked = true;
        self.cv.notify_all();
    }

    /// Waits until kicked or stopped, or `timeout` passed; true when
    /// stopped.
    fn wait(&self, timeout: Option<Duration>) -> bool {
        let mut s = self.state.lock();
        if !s.stop && !s.kicked {
            match timeout {
                Some(d) => {
                    self.cv.wait_for(&mut s, d);
                }
                None => self.cv.wait(&mut s),
            }
        }
        s.kicked = false;
        s.stop
    }
}

/// What the pre-writer does after a step.
enum Next {
    /// Another chunk at once.
    Again,
    /// Nothing to do until kicked or this long (forever: `None`).
    Wait(Option<Duration>),
}

/// The pre-writer's own state between steps.
struct Ctx {
    /// Its own descriptor of the segment it writes (id, file).
    file: Option<(u64, Arc<dyn BackendFile>)>,
    zeros: Vec<u8>,
    /// After a failure: no chunk before this.
    retry_at: Option<Instant>,
    backoff: Duration,
}

impl Ctx {
    /// Writes zeros over `start..end` of `seg` and fdatasyncs them, through
    /// the pre-writer's own file descriptor.
    fn write_zeros(
        &mut self,
        log: &Log,
        seg: &Segment,
        start: u64,
        end: u64,
    ) -> std::io::Result<()> {
        let file = match &self.file {
            Some((id, f)) if *id == seg.id => Arc::clone(f),
            _ => {
                let f = log.backend.open(&seg.path)?;
                self.file = Some((seg.id, Arc::clone(&f)));
                f
            }
        };
        let mut at = start;
        while at < end {
            let n = (end - at).min(self.zeros.len() as u64);
            file.write_all_at(&self.zeros[..n as usize], at)?;
            at += n;
        }
        file.sync_data()
    }
}

/// Gives the blocks of `from..to` of a segment back to the file system
/// (from `from` rounded up to a block): pre-written zeros nothing will be
/// written into. Best effort: where it fails, the zeros stay.
pub(super) fn give_back(seg: &Segment, from: u64, to: u64) {
    let from = round_up(from);
    let to = to.min(seg.len());
    if to > from {
        let _ = seg.punch_hole(from, to - from);
    }
}

/// [`give_back`] in steps of `FREE_STEP`, with a pause between (up to
/// 64 MiB of zeros: at once, the file system's work, and its discards,
/// would hold up writers' fdatasyncs).
fn give_back_in_steps(seg: &Segment, from: u64, to: u64) {
    let _pin = seg.pin();
    let mut at = from;
    while at < to {
        let end = (at + FREE_STEP).min(to);
        give_back(seg, at, end);
        at = end;
        if at < to {
            std::thread::sleep(FREE_PAUSE);
        }
    }
}

impl Log {
    /// Leaves a sealed segment's pre-written zeros `from..to` for the
    /// pre-writer to give back (called under the tail lock).
    pub(super) fn give_back_later(&self, t: &mut Tail, segment: u64, from: u64, to: u64) {
        let Some(sig) = &self.prewrite else { return };
        if to > round_up(from) {
            t.sealed_zeros.push((segment, from, to));
            sig.kick();
        }
    }

    /// Kicks a waiting pre-writer when the window ahead of the tail got too
    /// short (called under the tail lock after every append).
    pub(super) fn kick_prewriter(&self, t: &Tail) {
        let Some(sig) = &self.prewrite else { return };
        // A recycled segment's blocks are written already.
        if t.active.recycled() {
            return;
        }
        if t.pre.end < t.at + BUSY_WINDOW - CHUNK && sig.sleeping.swap(false, Ordering::Relaxed) {
            sig.kick();
        }
    }

    /// One pre-writer step: claim a chunk, write and sync it with no lock
    /// held, publish it.
    fn prewrite_step(&self, ctx: &mut Ctx) -> Next {
        let Some(sig) = &self.prewrite else {
            return Next::Wait(None);
        };
        // Sealed segments' zeros first, with no lock held.
        let sealed = std::mem::take(&mut self.tail.lock().sealed_zeros);
        for (id, from, to) in sealed {
            if let Some(seg) = self.segment(id) {
                give_back_in_steps(&seg, from, to);
            }
        }
        // Before the tail is read: a writer appending after this sees it
        // and kicks (see `kick_prewriter`).
        sig.sleeping.store(true, Ordering::Relaxed);
        let now = Instant::now();
        if let Some(at) = ctx.retry_at {
            if now < at {
                return Next::Wait(Some(at - now));
            }
            ctx.retry_at = None;
        }
        if self.poison.lock().is_some() {
            return Next::Wait(None);
        }
        let (seg, start, end) = {
            let mut t = self.tail.lock();
            if t.active.recycled() {
                // Nothing to write ahead: a recycled segment's blocks are
                // written already (a later segment kicks it again).
                return Next::Wait(None);
            }
            let idle_for = now.saturating_duration_since(t.last_write);
            let idle = idle_for >= IDLE_AFTER;
            // Large appends (parts of megabytes) gain little from written
            // blocks (their fdatasync is mostly data) and would pay for the
            // zeros with bandwidth: only the idle window for them.
            if !idle && now.saturating_duration_since(t.last_big) < IDLE_AFTER {
                return Next::Wait(Some(IDLE_AFTER - idle_for));
            }
            let window = if idle { IDLE_WINDOW } else { BUSY_WINDOW };
            let len = t.active.len();
            let target = t.at.saturating_add(window).min(len);
            let (start, end) = if idle && t.at < t.pre.start && !t.pre.is_empty() {
                // Idle with a gap between the tail and the pre-written
                // range (left when writers outran the pre-writer): fill it.
                let end = (t.at + CHUNK).min(t.pre.start);
                (
                    t.at,
                    if end < t.pre.start {
                        end / PAGE * PAGE
                    } else {
                        end
                    },
                )
            } else {
                // Right after the pre-written range; while busy, when that
                // is too close to the tail (writers outran the pre-writer),
                // far enough ahead that they do not run into the chunk now.
                let lead = if idle { 0 } else { MIN_LEAD };
                let start = t.pre.end.max(t.at).max(round_up(t.at + lead)).min(len);
                if start >= target || (target - start < CHUNK && target < len) {
                    return Next::Wait((!idle).then(|| IDLE_AFTER - idle_for));
                }
                let end = (start + CHUNK).min(target);
                (start, if end < len { end / PAGE * PAGE } else { end })
            };
            if end <= start {
                return Next::Wait((!idle).then(|| IDLE_AFTER - idle_for));
            }
            t.claim = Some((t.active.id, start..end));
            sig.sleeping.store(false, Ordering::Relaxed);
            (Arc::clone(&t.active), start, end)
        };
        let written = ctx.write_zeros(self, &seg, start, end);
        let mut t = self.tail.lock();
        t.claim = None;
        self.claim_cv.notify_all();
        let active = t.active.id == seg.id;
        match written {
            Ok(()) if active => {
                ctx.backoff = BACKOFF_MIN;
                if !t.pre.is_empty() && t.pre.start == end {
                    t.pre.start = start;
                } else if !t.pre.is_empty() && t.pre.end == start {
                    t.pre.end = end;
                } else {
                    t.pre = start..end;
                }
                t.merge_prewritten();
                Next::Again
            }
            Ok(()) => {
                // The segment was sealed meanwhile: nothing goes there now.
                drop(t);
                give_back(&seg, start, end);
                Next::Again
            }
            Err(_) => {
                // Full disk, I/O error: what the chunk allocated beyond the
                // store's own allocation goes back, and the pre-writer waits.
                // (Under the tail lock: no writer enters the range or
                // allocates it meanwhile.)
                let from = if active {
                    start.max(t.allocated_until)
                } else {
                    start
                };
                give_back(&seg, from, end);
                drop(t);
                ctx.retry_at = Some(Instant::now() + ctx.backoff);
                let wait = ctx.backoff;
                ctx.backoff = (ctx.backoff * 2).min(BACKOFF_MAX);
                Next::Wait(Some(wait))
            }
        }
    }
}

/// The pre-writer thread; stopped and joined on drop (before the log's
/// final sync, see `Store`'s drop).
pub(crate) struct Prewriter {
    signal: Arc<Signal>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Prewriter {
    /// Starts the pre-writer of `log`, when it is on. The thread holds the
    /// log only during a step.
    pub(crate) fn spawn(log: &Arc<Log>) -> Option<Prewriter> {
        let signal = Arc::clone(log.prewrite.as_ref()?);
        let weak: Weak<Log> = Arc::downgrade(log);
        let sig = Arc::clone(&signal);
        let thread = std::thread::Builder::new()
            .name("partstore-prewrite".into())
            .spawn(move || {
                let mut ctx = Ctx {
                    file: None,
                    zeros: vec![0u8; CHUNK as usize],
                    retry_at: None,
                    backoff: BACKOFF_MIN,
                };
                loop {
                    let next = match weak.upgrade() {
                        Some(log) => log.prewrite_step(&mut ctx),
                        None => break,
                    };
                    let stopped = match next {
                        Next::Again => sig.state.lock().stop,
                        Next::Wait(timeout) => sig.wait(timeout),
                    };
                    if stopped {
                        break;
                    }
                }
            })
            .ok();
        // Without the thread the store works as without the pre-writer.
        Some(Prewriter { signal, thread })
    }
}

impl Drop for Prewriter {
    fn drop(&mut self) {
        {
            let mut s = self.signal.state.lock();
            s.stop = true;
            self.signal.cv.notify_all();
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The idle clock's start at open: as if the last append were
/// `IDLE_AFTER` ago, so the pre-writer fills its idle window at once.
pub(super) fn idle_since_open() -> Instant {
    let now = Instant::now();
    now.checked_sub(IDLE_AFTER).unwrap_or(now)
}
