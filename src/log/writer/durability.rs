//! The log's durability: the durable watermark, group fdatasync (one in
//! flight, covering every record appended before it), syncs of sealed
//! segments, and the flusher thread of `Durability::Batched`.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use parking_lot::{Condvar, Mutex};

use crate::error::Result;
use crate::log::meta::Meta;
use crate::log::segment::Segment;
use crate::log::writer::{prewrite, Log, Pos, META_RESERVE};
use crate::options::Durability;

impl Log {
    /// True once [`Log::close`] ran.
    pub(crate) fn is_closed(&self) -> bool {
        self.tail.lock().closed
    }

    /// Closes the log (once; later calls do nothing): everything is made
    /// durable, a mark says so, and the pre-written zeros go back. After
    /// it, every write fails. The store calls it while it still holds the
    /// directory's lock: a background thread may hold the log a moment
    /// longer, and the last holder's drop must not write into a directory
    /// another `Store` may have opened since.
    pub(crate) fn close(&self) {
        let mut t = self.tail.lock();
        if t.closed {
            return;
        }
        t.closed = true;
        drop(t);
        // A clean close leaves everything durable, whatever the mode, and
        // says so with a mark (so the next open checks no extent).
        if self.appended.load(Ordering::SeqCst) && self.poison.lock().is_none() {
            let _ = self
                .sync_active()
                .and_then(|()| self.append_meta(&Meta::Mark.encode()))
                .and_then(|_| Self::zero_dirty(&mut self.tail.lock()))
                .and_then(|()| self.sync_active());
        }
        // Pre-written zeros past the metadata reserve go back, so the next
        // open does not read them when it looks past the end.
        let mut t = self.tail.lock();
        prewrite::give_back(&t.active, t.at + META_RESERVE, t.pre.end);
        for (id, from, to) in std::mem::take(&mut t.sealed_zeros) {
            if let Some(seg) = self.segment(id) {
                prewrite::give_back(&seg, from, to);
            }
        }
        drop(t);
        let mut p = self.poison.lock();
        if p.is_none() {
            *p = Some("the store was closed".into());
        }
    }

    pub(super) fn advance_durable(&self, to: Pos) {
        let mut d = self.durable.lock();
        if to > d.upto {
            d.upto = to;
        }
    }

    /// Makes a data region durable on its own: only needed when its record
    /// lands in a later segment than the region (the region's segment was
    /// sealed, and so synced, before the data was written).
    pub(crate) fn sync_region(&self, region_segment: &Segment) -> Result<()> {
        if region_segment.id != self.active_id() {
            self.fsync(region_segment)?;
        }
        Ok(())
    }

    /// fdatasync of segment `id` (the active one moves the watermark).
    pub(crate) fn sync_segment(&self, id: u64) -> Result<()> {
        if id == self.active_id() {
            return self.sync_active();
        }
        match self.segment(id) {
            Some(seg) => self.fsync(&seg),
            None => Ok(()),
        }
    }

    /// Under `Sync`: returns once everything before `pos` is durable,
    /// issuing the group's fdatasync if none is in flight. Other modes
    /// return at once (the flusher, `sync()` and drop make records durable).
    pub(crate) fn wait_durable(&self, pos: Pos) -> Result<()> {
        if self.durability != Durability::Sync {
            return Ok(());
        }
        let mut d = self.durable.lock();
        loop {
            if d.upto >= pos {
                return Ok(());
            }
            self.check_poison()?;
            if d.in_flight {
                self.durable_cv.wait(&mut d);
                continue;
            }
            d.in_flight = true;
            drop(d);
            let r = self.sync_active();
            d = self.durable.lock();
            d.in_flight = false;
            self.durable_cv.notify_all();
            r?;
        }
    }

    /// fdatasync of the active segment, covering every record appended to
    /// it so far; moves the durable watermark.
    pub(super) fn sync_active(&self) -> Result<()> {
        let (seg, upto) = {
            let t = self.tail.lock();
            (Arc::clone(&t.active), t.at)
        };
        self.fsync(&seg)?;
        seg.mark_synced(upto);
        self.advance_durable((seg.id, upto));
        Ok(())
    }

    /// Makes every appended record and written region durable, in every
    /// mode: fsyncs every segment (part data written under
    /// `Durability::None` into a since-sealed segment is covered too).
    pub(crate) fn sync_all(&self) -> Result<()> {
        self.check_poison()?;
        self.dirty.store(false, Ordering::SeqCst);
        let segments: Vec<Arc<Segment>> = self.segments.read().values().cloned().collect();
        let active = self.active_id();
        for seg in segments {
            if seg.id == active {
                self.sync_active()?;
            } else if seg.is_dirty() {
                // (A sealed segment was synced when sealed: only a region
                // written into it since needs it again.)
                self.fsync(&seg)?;
            }
        }
        Ok(())
    }

    /// The flusher's step (`Durability::Batched`): syncs the active segment
    /// if records were appended since the last sync.
    pub(crate) fn flush_if_dirty(&self) {
        if self.dirty.swap(false, Ordering::SeqCst) {
            // A failure poisons the log; the next write reports it.
            let _ = self.sync_active();
        }
    }

    /// Syncs the active segment regardless of mode (compaction's snapshot,
    /// whose old files go away next).
    pub(crate) fn sync_now(&self) -> Result<()> {
        self.dirty.store(false, Ordering::SeqCst);
        self.sync_active()
    }
}

/// The `Durability::Batched` background fsync thread; stopped and joined on
/// drop (so the directory lock is free as soon as the `Store` is dropped).
pub(crate) struct Flusher {
    stop: Arc<(Mutex<bool>, Condvar)>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Flusher {
    /// Syncs `log`'s appended records every `interval` until dropped. An
    /// interval under 1 ms never reaches here (`Options::checked` makes such
    /// a store `Sync`).
    pub(crate) fn spawn(log: std::sync::Weak<Log>, interval: std::time::Duration) -> Flusher {
        let stop = Arc::new((Mutex::new(false), Condvar::new()));
        let signal = Arc::clone(&stop);
        let thread = std::thread::Builder::new()
            .name("partstore-flush".into())
            .spawn(move || loop {
                {
                    let mut stopped = signal.0.lock();
                    if !*stopped {
                        signal.1.wait_for(&mut stopped, interval);
                    }
                    if *stopped {
                        break;
                    }
                }
                let Some(log) = log.upgrade() else { break };
                log.flush_if_dirty();
            })
            .ok();
        // Without the thread, records are still synced on `sync()` and drop.
        Flusher { stop, thread }
    }
}

impl Drop for Flusher {
    fn drop(&mut self) {
        *self.stop.0.lock() = true;
        self.stop.1.notify_all();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
