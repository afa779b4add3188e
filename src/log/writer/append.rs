//! Appends at the tail of the active segment: metadata records, small
//! bodies written with their record in one write, and the write at the
//! tail itself, with the scratch buffers the tail keeps for them.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

use parking_lot::MutexGuard;

use super::{prewrite, region_header, Log, Pos, Tail, META_RESERVE};
use crate::error::{Error, Result};
use crate::log::format::{framed_len, push_meta_record_salted, RECORD_HEADER_LEN};
use crate::log::segment::Segment;
use crate::options::Durability;

/// Scratch buffers are kept up to this capacity between appends.
const SCRATCH_KEEP: usize = 256 << 10;

/// `buf`, emptied, and given back its memory if a large append grew it.
fn recycle(mut buf: Vec<u8>) -> Vec<u8> {
    buf.clear();
    if buf.capacity() > SCRATCH_KEEP {
        buf = Vec::new();
    }
    buf
}

impl Log {
    /// Appends a metadata record (the encoded `Meta`), stamped with how far
    /// its segment is known durable. Returns the position just past it.
    pub(crate) fn append_meta(&self, meta: &[u8]) -> Result<Pos> {
        Ok(self.append_meta_at(meta)?.1)
    }

    /// [`Log::append_meta`], returning the record's position and the
    /// position just past it.
    pub(crate) fn append_meta_at(&self, meta: &[u8]) -> Result<(Pos, Pos)> {
        let mut t = self.tail.lock();
        self.append_record(&mut t, meta)
    }

    /// [`Log::append_meta_at`] of the record `encode` writes into its
    /// (empty) buffer, under the tail lock: no buffer is allocated.
    pub(crate) fn append_encoded(&self, encode: impl FnOnce(&mut Vec<u8>)) -> Result<(Pos, Pos)> {
        let mut t = self.tail.lock();
        let mut meta = std::mem::take(&mut t.record);
        encode(&mut meta);
        let appended = self.append_record(&mut t, &meta);
        t.record = recycle(meta);
        appended
    }

    /// Frames `meta` in the tail's frame buffer and writes it at the tail.
    fn append_record(&self, t: &mut MutexGuard<'_, Tail>, meta: &[u8]) -> Result<(Pos, Pos)> {
        let mut frame = std::mem::take(&mut t.frame);
        let written = self.append_frame(t, meta, &mut frame);
        t.frame = recycle(frame);
        let (seg, at, total) = written?;
        self.appended.store(true, Ordering::Relaxed);
        if self.durability != Durability::Sync {
            self.dirty.store(true, Ordering::SeqCst);
        }
        Ok(((seg.id, at), (seg.id, at + total)))
    }

    /// Frames `meta` in `frame` and writes it at the tail (rotating and
    /// allocating first); returns where it landed and its framed length.
    fn append_frame(
        &self,
        t: &mut MutexGuard<'_, Tail>,
        meta: &[u8],
        frame: &mut Vec<u8>,
    ) -> Result<(Arc<Segment>, u64, u64)> {
        let total = framed_len(8 + meta.len() as u64);
        self.wait_claim(t, total);
        if t.at + total > t.active.len() {
            self.rotate(t, total, 0)?;
        }
        // The reserve again when it can be had; on a full disk, what this
        // record needs (often already allocated by a data reservation).
        if self.allocate(t, total + META_RESERVE).is_err() {
            self.allocate(t, total)?;
        }
        push_meta_record_salted(frame, t.active.synced(), meta, t.active.salt());
        let (seg, at) = self.write_at_tail(t, frame, total)?;
        Ok((seg, at, total))
    }

    /// Appends a small body and the metadata record that references it in
    /// one write: a data region holding `data`, then the record `encode`
    /// writes into its (empty) buffer for where the region landed (segment
    /// id, offset of its first byte). One fdatasync makes both durable;
    /// recovery checks the data against the record's block CRCs when the
    /// record is past the durable point, so a write torn between them is a
    /// torn tail. Returns where the write starts (the region's header) and
    /// the position just past the record.
    pub(crate) fn append_with_data(
        &self,
        data: &[u8],
        mut encode: impl FnMut(u64, u64, &mut Vec<u8>),
    ) -> Result<(Pos, Pos)> {
        self.check_poison()?;
        let len = data.len() as u64;
        let data_total = framed_len(len);
        let room = META_RESERVE.min(self.segment_size / 8);
        let mut t = self.tail.lock();
        let mut meta = std::mem::take(&mut t.record);
        let mut encode_at = |t: &Tail, meta: &mut Vec<u8>| {
            meta.clear();
            encode(t.active.id, t.at + RECORD_HEADER_LEN, meta);
            data_total + framed_len(8 + meta.len() as u64)
        };
        // (Encoded again after a wait for a claimed chunk: the tail may
        // have moved meanwhile.)
        let mut total = loop {
            let total = encode_at(&t, &mut meta);
            if !self.claim_blocks(&t, total + room) {
                break total;
            }
            self.claim_cv.wait(&mut t);
        };
        let mut frame = std::mem::take(&mut t.frame);
        let mut write = || {
            if t.at + total + room > t.active.len() {
                self.rotate(&mut t, total + room, META_RESERVE - room)?;
                total = encode_at(&t, &mut meta);
            }
            // Like a data reservation: the region and the metadata reserve
            // after it, or nothing (a full disk keeps its reserve for
            // deletes).
            self.allocate(&mut t, total + META_RESERVE)?;
            frame.extend_from_slice(&region_header(len, t.active.salt()));
            frame.extend_from_slice(data);
            frame.resize(data_total as usize, 0);
            push_meta_record_salted(&mut frame, t.active.synced(), &meta, t.active.salt());
            self.write_at_tail(&mut t, &frame, total)
                .map(|w| (w, total))
        };
        let written = write();
        t.frame = recycle(frame);
        t.record = recycle(meta);
        let ((seg, at), total) = written?;
        drop(t);
        self.counts
            .lock()
            .entry(seg.id)
            .or_default()
            .add_region(len);
        self.appended.store(true, Ordering::Relaxed);
        if self.durability != Durability::Sync {
            self.dirty.store(true, Ordering::SeqCst);
        }
        Ok(((seg.id, at), (seg.id, at + total)))
    }

    /// Writes `frame` at the tail and moves the tail `total` bytes on,
    /// rotating first when it does not fit.
    pub(super) fn write_at_tail(
        &self,
        t: &mut Tail,
        frame: &[u8],
        total: u64,
    ) -> Result<(Arc<Segment>, u64)> {
        // (Callers rotate first: the frame's headers carry the segment's
        // salt, so it must not change under them.)
        if t.at + total > t.active.len() {
            return Err(Error::io(
                format!(
                    "appending {total} bytes at offset {} of segment {}",
                    t.at, t.active.id
                ),
                std::io::Error::other("past the end of the segment"),
            ));
        }
        self.keep_window(t, total)?;
        let at = t.at;
        // (The blocks there are allocated: every caller allocates first.)
        if let Err(e) = t.active.append_at(frame, at) {
            // The tail stays; the next record overwrites these bytes.
            t.dirty_until = t.dirty_until.max(at + frame.len() as u64);
            return Err(e);
        }
        t.at += total;
        // A region larger than the window, in a recycled segment: its
        // header is durable before any of its data is written (recovery
        // then skips the region whole, and the window starts past it).
        self.keep_window(t, 0)?;
        t.dirty_until = t.dirty_until.max(t.at);
        t.last_write = Instant::now();
        if total > prewrite::CHUNK {
            t.last_big = t.last_write;
        }
        self.kick_prewriter(t);
        Ok((Arc::clone(&t.active), at))
    }
}
