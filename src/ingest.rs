//! All of ingest: a part or object body streamed into a reserved region of
//! a segment (read, write, start the device write, hash; in bounded memory,
//! whatever the part size), then its length and digest checked.
//!
//! Two shapes, chosen by what the hashing costs:
//! - CRC32C only (cheap next to the copies): one 1 MiB buffer, each step
//!   read → written (its device write started) → hashed, so the disk works
//!   while the CPU hashes.
//! - A requested MD5 / SHA-1 / SHA-256 of a part of several MiB (hashing
//!   costs more than the write path, and MD5 is serial): the calling thread
//!   reads the body as far ahead as a ring of [`DEPTH`] 1 MiB buffers
//!   allows and runs the digest over each step in order, and nothing else
//!   once the reading is ahead; a scoped writing thread writes each step
//!   (starting its device write) and computes its block CRCs from the same
//!   buffer, and under `Durability::Sync` fdatasyncs the data as soon as the
//!   last step is written if the digest still has a few milliseconds to go
//!   (MD5, or any digest of a long part: [`EARLY_SYNC_LEAD`]). The commit's
//!   group fdatasync then has little more than the record to flush, so
//!   ingest costs about max(digest + reading, write + sync) instead of
//!   their sum.
//!   The digest stays on the calling thread, which is already running: a
//!   new thread can wait milliseconds for a CPU on a busy machine, and on
//!   the digest's path that wait would be paid in full.
//!
//! Memory: at most [`DEPTH`] step buffers (8 MiB) per in-flight body, plus
//! at most [`SPARE_MAX`] idle ones (16 MiB) kept process-wide for reuse.

use std::collections::VecDeque;
use std::io::Read;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc};
use std::time::Instant;

use parking_lot::Mutex;

use crate::digest::{self, BlockCrcs, Hashed, Hasher};
use crate::engine::Inner;
use crate::error::{bad_request, Error, Reason, Result};
use crate::log::format::ExtentDef;
use crate::log::segment::Segment;
use crate::options::Durability;
use crate::spec::{Digest, BLOCK_SIZE};

/// Bytes per step: one CRC block.
const STEP: usize = BLOCK_SIZE as usize;
/// Step buffers one pipelined body may use at once: read, being written,
/// or waiting to be hashed. DEPTH MiB; an 8 MiB part is read whole before
/// its hashing starts, so its writing (and sync) runs beside all of it.
const DEPTH: usize = 8;
/// Step buffers kept for later bodies when a body is done, process-wide.
const SPARE_MAX: usize = 16;
/// The kept step buffers: a new buffer costs page faults and zeroing on
/// every body otherwise (glibc returns freed MiB-sized blocks to the OS).
static SPARE: Mutex<Vec<Vec<u8>>> = parking_lot::const_mutex(Vec::new());
/// Bodies up to this size are read into memory first and written together
/// with the record that makes them visible, in one write (see
/// `Log::append_with_data`): no region to reserve or give back, one
/// system call per small put.
pub(crate) const SMALL_BODY: u64 = 64 << 10;

/// A body ingested: its new extent (none for an empty body), its hashes,
/// and, for a small body, its bytes, not written yet: the extent's place is
/// set when they are appended with the record.
pub(crate) struct Body {
    pub(crate) extent: Option<ExtentDef>,
    pub(crate) hashed: Hashed,
    pub(crate) inline: Option<Vec<u8>>,
}

/// Reads a small body of `len` bytes (1..=[`SMALL_BODY`]) into memory and
/// hashes it; checks its length and digest. Nothing is written.
fn read_small<R: Read>(
    inner: &Inner,
    mut reader: R,
    len: u64,
    expected: Option<&Digest>,
) -> Result<Body> {
    let mut data = vec![0u8; len as usize];
    let got = read_full(&mut reader, &mut data)?;
    if got < data.len() {
        return Err(bad_request!(
            Reason::BodyLengthMismatch,
            "body ended after {got} of its declared {len} bytes"
        ));
    }
    expect_end(&mut reader, len)?;
    let mut hasher = Hasher::new(expected.map(|d| d.algorithm()));
    hasher.update(&data);
    let mut hashed = hasher.finish();
    if let (Some(expected), Some(actual)) = (expected, &hashed.digest) {
        digest::check(expected, actual)?;
    }
    let extent = ExtentDef {
        id: inner.fresh_id(),
        segment: 0,
        offset: 0,
        len,
        block_crcs: std::mem::take(&mut hashed.block_crcs),
    };
    Ok(Body {
        extent: Some(extent),
        hashed,
        inline: Some(data),
    })
}

/// Parts smaller than this are written and hashed on the calling thread
/// alone (a thread costs tens of microseconds, an early sync a device
/// flush; a 4 MiB SHA-256 takes milliseconds).
const PIPELINE_MIN: u64 = 4 * BLOCK_SIZE;

/// Reads until `buf` is full or the reader ends; returns the bytes read.
pub(crate) fn read_full<R: Read>(r: &mut R, buf: &mut [u8]) -> Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(Error::io("reading the request body", e)),
        }
    }
    Ok(n)
}

/// BadRequest unless the reader is at its end.
pub(crate) fn expect_end<R: Read>(reader: &mut R, len: u64) -> Result<()> {
    let mut extra = [0u8; 1];
    if read_full(reader, &mut extra)? > 0 {
        return Err(bad_request!(
            Reason::BodyLengthMismatch,
            "body is longer than its declared {len} bytes"
        ));
    }
    Ok(())
}

/// Reads the next `buf.len()` bytes of the body into `buf`; BadRequest if
/// it ends early, unless `open_end`. Returns the bytes read (short only at
/// an open end). `done` and `len` are for the message.
fn fill<R: Read>(
    reader: &mut R,
    buf: &mut [u8],
    done: u64,
    len: u64,
    open_end: bool,
) -> Result<usize> {
    let got = read_full(reader, buf)?;
    if got < buf.len() && !open_end {
        return Err(bad_request!(
            Reason::BodyLengthMismatch,
            "body ended after {} of its declared {len} bytes",
            done + got as u64
        ));
    }
    Ok(got)
}

/// A step buffer: a spare one if there is one, else a new one.
fn step_buffer() -> Vec<u8> {
    SPARE.lock().pop().unwrap_or_else(|| vec![0u8; STEP])
}

/// Keeps `buf` for a later step if fewer than [`SPARE_MAX`] are kept.
fn recycle(buf: Vec<u8>) {
    if buf.len() == STEP {
        let mut spare = SPARE.lock();
        if spare.len() < SPARE_MAX {
            spare.push(buf);
        }
    }
}

/// The error of a writing thread that stopped without saying why (it
/// panicked: its panic is resumed when it is joined).
fn writer_gone() -> Error {
    Error::io("ingest writing thread", std::io::Error::other("stopped"))
}

/// Streams exactly `len` body bytes from `reader` to `seg` at `data_at`
/// (with `open_end`: up to `len`, until the reader ends), feeding them to
/// `hasher`; `kick` starts each step's device write. After the last step
/// is read, `finish` runs on this thread (with the reader, to check its
/// end); any error ends the stream. When the digest is hashed beside the
/// writing (see the module doc), `sync` runs on the writing thread once
/// every byte is written, while this thread hashes the last steps. Returns
/// the hasher with every byte fed to it.
#[allow(clippy::too_many_arguments)]
pub(crate) fn stream<R: Read>(
    reader: &mut R,
    seg: &Segment,
    data_at: u64,
    len: u64,
    hasher: Hasher,
    kick: bool,
    open_end: bool,
    sync: Option<&(dyn Fn() -> Result<()> + Sync)>,
    finish: impl FnOnce(&mut R) -> Result<()>,
) -> Result<Hasher> {
    let write = |bytes: &[u8], at: u64| -> Result<()> {
        seg.write_at(bytes, data_at + at)?;
        if kick {
            seg.start_writeback(data_at + at, bytes.len() as u64);
        }
        Ok(())
    };
    if hasher.hashes_data() && len >= PIPELINE_MIN {
        let early = sync.map(|sync| EarlySync {
            sync,
            lead: EARLY_SYNC_LEAD,
        });
        pipelined(reader, len, hasher, open_end, write, early, finish)
    } else {
        serial(reader, len, hasher, open_end, write, finish)
    }
}

/// [`stream`] on this thread alone, with the writing as `write(bytes,
/// offset in the body)`: each step is read, written (its device write
/// started) and then hashed, so the disk works while the CPU hashes.
fn serial<R: Read>(
    reader: &mut R,
    len: u64,
    mut hasher: Hasher,
    open_end: bool,
    mut write: impl FnMut(&[u8], u64) -> Result<()>,
    finish: impl FnOnce(&mut R) -> Result<()>,
) -> Result<Hasher> {
    let mut buf = step_buffer();
    let streamed = (|| {
        let mut done = 0u64;
        while done < len {
            let want = STEP.min((len - done) as usize);
            let chunk = &mut buf[..want];
            let got = fill(reader, chunk, done, len, open_end)?;
            if got > 0 {
                write(&chunk[..got], done)?;
                hasher.update(&chunk[..got]);
            }
            done += got as u64;
            if got < want {
                break;
            }
        }
        finish(reader)
    })();
    recycle(buf);
    streamed.map(|()| hasher)
}

/// What the reading thread sends the writing thread.
enum ToWriter {
    /// A step read: its buffer (shared with the hashing), its bytes, its
    /// offset in the body.
    Step(Arc<Vec<u8>>, usize, u64),
    /// The body is read whole (this many bytes) and checked: the writer
    /// may run `sync` after the last write (see [`Progress`]). A stream that
    /// fails just hangs up.
    End(u64),
}

/// Hashing left when the last step is written, below which the writer
/// does not sync early: the commit's fdatasync would follow the early one
/// almost at once, and two device flushes cost more than one (A/B here:
/// SHA-1 of 8 MiB parts, ~3 ms of hashing left, lost 4% with the early
/// sync; MD5, ~14 ms left, gained 40-80%).
const EARLY_SYNC_LEAD: std::time::Duration = std::time::Duration::from_millis(4);

/// How far the digest has got, for the writer's choice to sync early.
#[derive(Default)]
struct Progress {
    /// Bytes hashed so far.
    hashed: AtomicU64,
    /// Nanoseconds from the start of the first step's hashing to the end of
    /// the last one's (the reading of later steps in between included: it
    /// is this thread's pace).
    busy_ns: AtomicU64,
}

impl Progress {
    /// Records `hashed` bytes hashed in all, `busy` after the hashing
    /// started.
    fn record(&self, hashed: u64, busy: std::time::Duration) {
        let ns = u64::try_from(busy.as_nanos()).unwrap_or(u64::MAX);
        self.busy_ns.store(ns, Ordering::Relaxed);
        self.hashed.store(hashed, Ordering::Relaxed);
    }

    /// Whether the hashing of a `total`-byte body will take at least
    /// `lead` more, at its pace so far (yes if no step is hashed yet: the
    /// whole body is still ahead).
    fn far_from_done(&self, total: u64, lead: std::time::Duration) -> bool {
        let hashed = self.hashed.load(Ordering::Relaxed);
        let busy_ns = self.busy_ns.load(Ordering::Relaxed);
        if hashed == 0 {
            return true;
        }
        let left_ns =
            u128::from(total.saturating_sub(hashed)) * u128::from(busy_ns) / u128::from(hashed);
        left_ns >= lead.as_nanos()
    }
}

/// The data sync a pipelined stream may run on its writing thread once the
/// body is written: when at least `lead` of hashing is left.
struct EarlySync<'a> {
    sync: &'a (dyn Fn() -> Result<()> + Sync),
    lead: std::time::Duration,
}

/// [`stream`] on two threads: this one reads the steps, as far ahead as
/// [`DEPTH`] buffers allow, and runs the requested digest over each; a
/// scoped writing thread writes each step (`write(bytes, offset in the
/// body)`), computes its block CRCs and, at the end of a good body, runs
/// `sync`. Both read the same buffer; it is reused once both are done.
fn pipelined<R: Read>(
    reader: &mut R,
    len: u64,
    hasher: Hasher,
    open_end: bool,
    mut write: impl FnMut(&[u8], u64) -> Result<()> + Send,
    early: Option<EarlySync<'_>>,
    finish: impl FnOnce(&mut R) -> Result<()>,
) -> Result<Hasher> {
    let (mut crcs, mut digester) = hasher.split();
    let progress = &Progress::default();
    std::thread::scope(|s| {
        let (to_writer, steps) = mpsc::sync_channel::<ToWriter>(DEPTH + 1);
        let (written_tx, written) = mpsc::channel::<Arc<Vec<u8>>>();
        let writer = std::thread::Builder::new()
            .name("partstore-write".into())
            .spawn_scoped(s, move || -> Result<BlockCrcs> {
                for msg in steps {
                    match msg {
                        ToWriter::Step(buf, n, at) => {
                            let bytes = &buf[..n];
                            // A failed write hangs up: the reading side
                            // stops at its next step.
                            write(bytes, at)?;
                            crcs.update(bytes);
                            // The reader may have stopped: then it drops.
                            let _ = written_tx.send(buf);
                        }
                        ToWriter::End(total) => {
                            if let Some(early) = &early {
                                if progress.far_from_done(total, early.lead) {
                                    (early.sync)()?;
                                }
                            }
                        }
                    }
                }
                Ok(crcs)
            })
            .map_err(|e| Error::io("starting the ingest writing thread", e))?;
        let mut ring = Ring {
            taken: 0,
            written: Vec::new(),
        };
        let mut to_writer = Some(to_writer);
        let mut finish = Some(finish);
        let streamed = (|| {
            // Steps read and sent, not hashed yet.
            let mut unhashed: VecDeque<(Arc<Vec<u8>>, usize)> = VecDeque::new();
            let mut hash_start = None;
            let mut hashed = 0u64;
            let mut done = 0u64;
            loop {
                // Read ahead while there are free buffers, so the writer
                // (and the end-of-part sync) runs as early as it can.
                while let Some(tx) = &to_writer {
                    let Some(mut buf) = ring.free(&written) else {
                        break;
                    };
                    let want = STEP.min((len - done) as usize);
                    let got = match fill(reader, &mut buf[..want], done, len, open_end) {
                        Ok(got) => got,
                        Err(e) => {
                            recycle(buf);
                            return Err(e);
                        }
                    };
                    if got > 0 {
                        let buf = Arc::new(buf);
                        tx.send(ToWriter::Step(Arc::clone(&buf), got, done))
                            .map_err(|_| writer_gone())?;
                        unhashed.push_back((buf, got));
                    } else {
                        recycle(buf);
                    }
                    done += got as u64;
                    if got < want || done == len {
                        // The whole body is read: check its end, then let
                        // the writer sync while the hashing goes on.
                        if let Some(finish) = finish.take() {
                            finish(&mut *reader)?;
                        }
                        if let Some(tx) = to_writer.take() {
                            tx.send(ToWriter::End(done)).map_err(|_| writer_gone())?;
                        }
                    }
                }
                match unhashed.pop_front() {
                    Some((buf, n)) => {
                        let start = *hash_start.get_or_insert_with(Instant::now);
                        digester.update(&buf[..n]);
                        hashed += n as u64;
                        progress.record(hashed, start.elapsed());
                    }
                    None if to_writer.is_none() => return Ok(()),
                    // Every buffer is with the writer: wait for one.
                    None => ring
                        .written
                        .push(written.recv().map_err(|_| writer_gone())?),
                }
            }
        })();
        // Hang up (if the stream failed, without `End`): the writer ends.
        drop(to_writer);
        let wrote = match writer.join() {
            Ok(w) => w,
            Err(panic) => std::panic::resume_unwind(panic),
        };
        ring.written.extend(written.try_iter());
        for buf in ring.written {
            if let Ok(buf) = Arc::try_unwrap(buf) {
                recycle(buf);
            }
        }
        // A failed write or sync is the cause of a "writer stopped" here.
        let crcs = wrote?;
        streamed.map(|()| Hasher::join(crcs, digester))
    })
}

/// The step buffers of a pipelined body.
struct Ring {
    /// Buffers taken (from the spares or new), at most [`DEPTH`].
    taken: usize,
    /// Buffers the writer is done with; one is free once hashed too (this
    /// is then its only reference).
    written: Vec<Arc<Vec<u8>>>,
}

impl Ring {
    /// A free buffer, without waiting: one written and hashed, else a new
    /// one while fewer than [`DEPTH`] are taken.
    fn free(&mut self, written: &mpsc::Receiver<Arc<Vec<u8>>>) -> Option<Vec<u8>> {
        self.written.extend(written.try_iter());
        if let Some(i) = self.written.iter().position(|b| Arc::strong_count(b) == 1) {
            if let Ok(buf) = Arc::try_unwrap(self.written.swap_remove(i)) {
                return Some(buf);
            }
        }
        if self.taken < DEPTH {
            self.taken += 1;
            return Some(step_buffer());
        }
        None
    }
}

/// The data fdatasync a pipelined stream may run once its body is written
/// (under `Durability::Sync` only; see [`EARLY_SYNC_LEAD`]): it overlaps
/// the hashing of the last steps, and leaves the commit's group fdatasync
/// little more than the record to flush. Through `Log::fsync`, so a
/// failure poisons the log like any failed fsync.
fn early_sync<'a>(
    inner: &Inner,
    sync: &'a (dyn Fn() -> Result<()> + Sync),
) -> Option<&'a (dyn Fn() -> Result<()> + Sync)> {
    (inner.opts().durability == Durability::Sync && std::env::var_os("PS_NO_EARLY").is_none())
        .then_some(sync)
}

/// Streams a body into a new extent: reserves a region at the log's tail,
/// reads the body in 1 MiB steps, writes each (starting its device write)
/// and hashes it once (block CRCs + the requested digest), then checks the
/// length and the digest. Nothing is durable or visible until the caller
/// commits the returned extent: one fdatasync then makes the data and its
/// record durable together. A failed check leaves the region garbage.
pub(crate) fn ingest<R: Read>(
    inner: &Inner,
    mut reader: R,
    len: u64,
    expected: Option<&Digest>,
) -> Result<Body> {
    if len > 0 && len <= SMALL_BODY {
        return read_small(inner, reader, len, expected);
    }
    let hasher = Hasher::new(expected.map(|d| d.algorithm()));
    let kick = inner.opts().durability != Durability::None;
    let (hasher, region) = if len > 0 {
        let id = inner.fresh_id();
        let region = inner.log().reserve(len)?;
        let sync = || inner.log().fsync(&region.segment);
        let streamed = stream(
            &mut reader,
            &region.segment,
            region.data_at,
            len,
            hasher,
            kick,
            false,
            early_sync(inner, &sync),
            |r| expect_end(r, len),
        );
        match streamed {
            Ok(hasher) => (hasher, Some((id, region))),
            Err(e) => {
                inner.log().release(&region);
                return Err(e);
            }
        }
    } else {
        expect_end(&mut reader, len)?;
        (hasher, None)
    };
    let mut hashed = hasher.finish();
    if let (Some(expected), Some(actual)) = (expected, &hashed.digest) {
        if let Err(e) = digest::check(expected, actual) {
            if let Some((_, r)) = &region {
                inner.log().release(r);
            }
            return Err(e);
        }
    }
    let extent = region.map(|(id, r)| ExtentDef {
        id,
        segment: r.segment.id,
        offset: r.data_at,
        len: r.len,
        block_crcs: std::mem::take(&mut hashed.block_crcs),
    });
    Ok(Body {
        extent,
        hashed,
        inline: None,
    })
}

/// [`ingest`] for a body of unknown length (`PartBody::until_eof`): read to
/// its end, at most `max` bytes; a byte past `max` fails with `too_large()`
/// and leaves the region garbage, like any failed ingest.
///
/// A body that ends within its first step is stored as if its length had
/// been declared. A longer one gets a region of `max` bytes, and the bytes
/// it does not use are never written: segments are preallocated sparse, so
/// that costs segment address space but no disk blocks, and
/// [`crate::log::writer::Log::unused_region_bytes`] takes them out of the
/// segment's data bytes. (Giving the unused end back to the tail would
/// rewrite a reserved header below the durable watermarks, and one region
/// per chunk would need records with several new extents.)
pub(crate) fn ingest_until_eof<R: Read>(
    inner: &Inner,
    mut reader: R,
    max: u64,
    expected: Option<&Digest>,
    too_large: impl Fn() -> Error,
) -> Result<Body> {
    let mut first = vec![0u8; STEP.min(max as usize + 1)];
    let got = read_full(&mut reader, &mut first)?;
    if got < first.len() {
        first.truncate(got);
        return ingest(inner, &first[..], got as u64, expected);
    }
    if got as u64 > max {
        return Err(too_large());
    }
    let hasher = Hasher::new(expected.map(|d| d.algorithm()));
    let kick = inner.opts().durability != Durability::None;
    let id = inner.fresh_id();
    let region = inner.log().reserve_allocating(max, STEP as u64)?;
    let mut body = (&first[..]).chain(reader);
    let sync = || inner.log().fsync(&region.segment);
    let streamed = stream(
        &mut body,
        &region.segment,
        region.data_at,
        max,
        hasher,
        kick,
        true,
        early_sync(inner, &sync),
        |r| match read_full(r, &mut [0u8; 1])? {
            0 => Ok(()),
            _ => Err(too_large()),
        },
    );
    let mut hashed = match streamed {
        Ok(h) => h.finish(),
        Err(e) => {
            inner.log().release(&region);
            return Err(e);
        }
    };
    if let (Some(expected), Some(actual)) = (expected, &hashed.digest) {
        if let Err(e) = digest::check(expected, actual) {
            inner.log().release(&region);
            return Err(e);
        }
    }
    let region = inner.log().shrink(region, hashed.len)?;
    let extent = ExtentDef {
        id,
        segment: region.segment.id,
        offset: region.data_at,
        len: hashed.len,
        block_crcs: std::mem::take(&mut hashed.block_crcs),
    };
    Ok(Body {
        extent: Some(extent),
        hashed,
        inline: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::{DigestAlgorithm, MIB};
    use crate::ErrorKind;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// Deterministic, non-repeating test bytes.
    fn data(len: usize) -> Vec<u8> {
        let mut x: u64 = 0x2545_F491_4F6C_DD1D;
        (0..len)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                (x >> 32) as u8
            })
            .collect()
    }

    /// A reader that hands out at most `max` bytes per `read`.
    struct Dribble<'a> {
        bytes: &'a [u8],
        max: usize,
    }

    impl Read for Dribble<'_> {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            let n = buf.len().min(self.max).min(self.bytes.len());
            buf[..n].copy_from_slice(&self.bytes[..n]);
            self.bytes = &self.bytes[n..];
            Ok(n)
        }
    }

    const REQUESTS: [Option<DigestAlgorithm>; 5] = [
        None,
        Some(DigestAlgorithm::Crc32c),
        Some(DigestAlgorithm::Md5),
        Some(DigestAlgorithm::Sha1),
        Some(DigestAlgorithm::Sha256),
    ];

    /// What one stream did: the bytes written (at their offsets), the
    /// writes made, the syncs run (and how many bytes were written when
    /// the first ran), and its result.
    struct Run {
        disk: Vec<u8>,
        writes: usize,
        syncs: usize,
        written_at_sync: Option<usize>,
        result: Result<Hasher>,
    }

    /// Streams `body` as a body of `len` bytes into a `len`-byte "disk",
    /// on one thread or two; the write at `fail_at` (counting from 0)
    /// fails.
    fn run(
        body: &[u8],
        len: u64,
        requested: Option<DigestAlgorithm>,
        pipelined_: bool,
        open_end: bool,
        fail_at: Option<usize>,
    ) -> Run {
        let disk = std::sync::Mutex::new(vec![0u8; len as usize]);
        let writes = AtomicUsize::new(0);
        let written = AtomicUsize::new(0);
        let syncs = AtomicUsize::new(0);
        let written_at_sync = std::sync::Mutex::new(None);
        let write = |bytes: &[u8], at: u64| -> Result<()> {
            let n = writes.fetch_add(1, Ordering::SeqCst);
            if fail_at == Some(n) {
                return Err(Error::io("writing", std::io::Error::other("disk on fire")));
            }
            let at = at as usize;
            disk.lock().unwrap()[at..at + bytes.len()].copy_from_slice(bytes);
            written.fetch_add(bytes.len(), Ordering::SeqCst);
            Ok(())
        };
        let sync = || -> Result<()> {
            syncs.fetch_add(1, Ordering::SeqCst);
            written_at_sync
                .lock()
                .unwrap()
                .get_or_insert(written.load(Ordering::SeqCst));
            Ok(())
        };
        let mut reader = Dribble {
            bytes: body,
            max: 300_007,
        };
        let hasher = Hasher::new(requested);
        let finish = |r: &mut Dribble<'_>| {
            if open_end {
                match read_full(r, &mut [0u8; 1])? {
                    0 => Ok(()),
                    _ => Err(bad_request!(Reason::BodyLengthMismatch, "too long")),
                }
            } else {
                expect_end(r, len)
            }
        };
        let result = if pipelined_ {
            // Always sync early here: the rule is tested on its own.
            let early = EarlySync {
                sync: &sync,
                lead: std::time::Duration::ZERO,
            };
            pipelined(
                &mut reader,
                len,
                hasher,
                open_end,
                write,
                Some(early),
                finish,
            )
        } else {
            serial(&mut reader, len, hasher, open_end, write, finish)
        };
        Run {
            disk: disk.into_inner().unwrap(),
            writes: writes.load(Ordering::SeqCst),
            syncs: syncs.load(Ordering::SeqCst),
            written_at_sync: written_at_sync.into_inner().unwrap(),
            result,
        }
    }

    /// The sizes around the step and the ring: empty, one byte, a step
    /// less one, one step, a step and a byte, several steps, more steps
    /// than the ring holds.
    fn sizes() -> Vec<usize> {
        vec![
            0,
            1,
            STEP - 1,
            STEP,
            STEP + 1,
            3 * STEP + 5,
            (DEPTH + 3) * STEP + 7,
        ]
    }

    fn check_hashes(h: Hasher, bytes: &[u8], requested: Option<DigestAlgorithm>, ctx: &str) {
        let h = h.finish();
        let blocks: Vec<u32> = bytes.chunks(STEP).map(crc32c::crc32c).collect();
        assert_eq!(h.len, bytes.len() as u64, "{ctx}");
        assert_eq!(h.block_crcs, blocks, "{ctx}");
        assert_eq!(h.crc32c, crc32c::crc32c(bytes), "{ctx}");
        assert_eq!(
            h.digest,
            requested.map(|alg| digest::compute(alg, bytes)),
            "{ctx}"
        );
    }

    #[test]
    fn every_byte_is_written_and_hashed_once_on_one_thread_or_two() {
        let all = data(*sizes().iter().max().unwrap_or(&0));
        for len in sizes() {
            let bytes = &all[..len];
            for requested in REQUESTS {
                for two in [false, true] {
                    // SHA-1 and SHA-256 of the big body take long in a
                    // debug build: once is enough.
                    if len > 4 * STEP && !two && requested.is_some() {
                        continue;
                    }
                    let ctx = format!("len {len} {requested:?} two threads {two}");
                    let r = run(bytes, len as u64, requested, two, false, None);
                    let h = r.result.unwrap_or_else(|e| panic!("{ctx}: {e}"));
                    assert_eq!(r.disk, bytes, "{ctx}");
                    assert_eq!(r.writes, len.div_ceil(STEP), "{ctx}");
                    check_hashes(h, bytes, requested, &ctx);
                    if two {
                        // One sync, after every byte was written.
                        assert_eq!(r.syncs, 1, "{ctx}");
                        assert_eq!(r.written_at_sync, Some(len), "{ctx}");
                    } else {
                        assert_eq!(r.syncs, 0, "{ctx}");
                    }
                }
            }
        }
    }

    #[test]
    fn open_end_stops_at_the_end_of_the_body() {
        let max = (DEPTH + 2) * STEP;
        let all = data(max);
        for len in [0, 1, STEP, 2 * STEP + 3, max] {
            for two in [false, true] {
                let ctx = format!("len {len} of at most {max}, two threads {two}");
                let requested = Some(DigestAlgorithm::Md5);
                let r = run(&all[..len], max as u64, requested, two, true, None);
                let h = r.result.unwrap_or_else(|e| panic!("{ctx}: {e}"));
                assert_eq!(&r.disk[..len], &all[..len], "{ctx}");
                assert!(r.disk[len..].iter().all(|&b| b == 0), "{ctx}");
                check_hashes(h, &all[..len], requested, &ctx);
                assert_eq!(r.syncs, usize::from(two), "{ctx}");
            }
        }
    }

    #[test]
    fn short_or_long_body_fails_typed_without_sync() {
        let len = 3 * STEP + 5;
        let all = data(len + 1);
        for two in [false, true] {
            for body in [&all[..len - 1], &all[..STEP], &all[..0], &all[..]] {
                let ctx = format!("{} bytes for {len}, two threads {two}", body.len());
                let r = run(
                    body,
                    len as u64,
                    Some(DigestAlgorithm::Md5),
                    two,
                    false,
                    None,
                );
                let e = match r.result {
                    Ok(_) => panic!("{ctx}: accepted"),
                    Err(e) => e,
                };
                assert_eq!(e.kind(), ErrorKind::BadRequest, "{ctx}: {e}");
                assert_eq!(e.reason(), Some(Reason::BodyLengthMismatch), "{ctx}: {e}");
                assert_eq!(r.syncs, 0, "{ctx}");
            }
        }
    }

    #[test]
    fn a_failed_write_is_the_error_and_stops_the_stream() {
        let len = (DEPTH + 4) * STEP;
        let all = data(len);
        for two in [false, true] {
            for fail_at in [0, 1, DEPTH + 2] {
                let ctx = format!("write {fail_at} fails, two threads {two}");
                let r = run(
                    &all,
                    len as u64,
                    Some(DigestAlgorithm::Sha1),
                    two,
                    false,
                    Some(fail_at),
                );
                let e = match r.result {
                    Ok(_) => panic!("{ctx}: accepted"),
                    Err(e) => e,
                };
                assert_eq!(e.kind(), ErrorKind::Io, "{ctx}: {e}");
                assert!(e.to_string().contains("disk on fire"), "{ctx}: {e}");
                assert_eq!(
                    r.writes,
                    fail_at + 1,
                    "{ctx}: no write after the failed one"
                );
                assert_eq!(r.syncs, 0, "{ctx}");
            }
        }
    }

    #[test]
    fn a_failed_sync_is_the_error() {
        let len = 2 * STEP;
        let all = data(len);
        let sync =
            || -> Result<()> { Err(Error::io("syncing", std::io::Error::other("no flush"))) };
        let r = pipelined(
            &mut &all[..],
            len as u64,
            Hasher::new(Some(DigestAlgorithm::Md5)),
            false,
            |_: &[u8], _: u64| Ok(()),
            Some(EarlySync {
                sync: &sync,
                lead: std::time::Duration::ZERO,
            }),
            |r: &mut &[u8]| expect_end(r, len as u64),
        );
        match r {
            Ok(_) => panic!("a failed sync was accepted"),
            Err(e) => assert!(e.to_string().contains("no flush"), "{e}"),
        }
    }

    #[test]
    fn early_sync_only_with_enough_hashing_left() {
        let ms = std::time::Duration::from_millis;
        let p = Progress::default();
        // Nothing hashed yet: the whole body is ahead.
        assert!(p.far_from_done(8 * MIB, ms(4)));
        // 1 MiB in 2 ms: 7 MiB more take 14 ms.
        p.record(MIB, ms(2));
        assert!(p.far_from_done(8 * MIB, ms(4)));
        assert!(!p.far_from_done(8 * MIB, ms(15)));
        // 6 MiB in 3 ms: 2 MiB more take 1 ms.
        p.record(6 * MIB, ms(3));
        assert!(!p.far_from_done(8 * MIB, ms(4)));
        assert!(p.far_from_done(8 * MIB, ms(1)));
        // All hashed.
        p.record(8 * MIB, ms(4));
        assert!(!p.far_from_done(8 * MIB, ms(4)));
        assert!(p.far_from_done(8 * MIB, std::time::Duration::ZERO));
    }

    #[test]
    fn spare_buffers_are_bounded() {
        let all = data(DEPTH * STEP);
        std::thread::scope(|s| {
            for _ in 0..4 {
                s.spawn(|| {
                    let r = run(
                        &all,
                        all.len() as u64,
                        Some(DigestAlgorithm::Md5),
                        true,
                        false,
                        None,
                    );
                    assert!(r.result.is_ok());
                });
            }
        });
        let spare = SPARE.lock();
        assert!(spare.len() <= SPARE_MAX, "{} spare buffers", spare.len());
        assert!(spare.iter().all(|b| b.len() == STEP));
    }
}
