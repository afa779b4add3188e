//! All of ingest: a part or object body streamed into a reserved region of
//! a segment (read, write, start the device write, hash; in bounded memory,
//! whatever the part size), then its length and digest checked.
//!
//! Two shapes, chosen by what the hashing costs:
//! - CRC32C only (cheap next to the copies): one 1 MiB buffer, each step
//!   read → written (its device write started) → hashed, so the buffer
//!   stays in cache and the disk works while the CPU hashes.
//! - A requested MD5 / SHA-1 / SHA-256 of a part of several MiB (hashing
//!   costs more than the write path): a second thread hashes the steps in
//!   order while this one reads and writes the next, through a ring of
//!   [`DEPTH`] buffers (so at most `DEPTH` MiB per in-flight part), and the
//!   caller's `finish` (the end-of-body check and the data fdatasync) runs
//!   while the hasher works through the last steps. Ingest then costs about
//!   max(hash, write + sync) instead of their sum.

use std::io::Read;
use std::sync::mpsc;

use crate::digest::{self, Hashed, Hasher};
use crate::engine::Inner;
use crate::error::{bad_request, Error, Reason, Result};
use crate::log::format::ExtentDef;
use crate::log::segment::Segment;
use crate::spec::{Digest, BLOCK_SIZE};
use crate::types::Durability;

/// Bytes per step: one CRC block.
const STEP: usize = BLOCK_SIZE as usize;
/// Buffers in flight between the reading/writing thread and the hasher.
const DEPTH: usize = 4;
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

/// Parts smaller than this hash on the calling thread (a thread costs tens
/// of microseconds; a 4 MiB SHA-256 takes milliseconds).
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

/// Reads the next `want` bytes of the body into `buf` (BadRequest if it ends
/// early, unless `open_end`), writes them at `at` and, with `kick`, starts
/// their device write. Returns the bytes read (short only at an open end).
#[allow(clippy::too_many_arguments)]
fn step<R: Read>(
    reader: &mut R,
    buf: &mut [u8],
    seg: &Segment,
    at: u64,
    done: u64,
    len: u64,
    kick: bool,
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
    if got > 0 {
        seg.write_at(&buf[..got], at)?;
        if kick {
            seg.start_writeback(at, got as u64);
        }
    }
    Ok(got)
}

/// Streams exactly `len` body bytes from `reader` to `seg` at `data_at`
/// (with `open_end`: up to `len`, until the reader ends), feeding them to
/// `hasher`; `kick` starts each step's device write. After the last write,
/// `finish` runs on this thread (with the reader, to check its end) while
/// the hasher may still be busy; any error ends the stream. Returns the
/// hasher with every byte fed to it.
#[allow(clippy::too_many_arguments)]
pub(crate) fn stream<R: Read>(
    reader: &mut R,
    seg: &Segment,
    data_at: u64,
    len: u64,
    mut hasher: Hasher,
    kick: bool,
    open_end: bool,
    finish: impl FnOnce(&mut R) -> Result<()>,
) -> Result<Hasher> {
    if !hasher.hashes_data() || len < PIPELINE_MIN {
        let mut buf = vec![0u8; STEP.min(len as usize)];
        let mut done = 0u64;
        while done < len {
            let want = buf.len().min((len - done) as usize);
            let chunk = &mut buf[..want];
            let got = step(
                reader,
                chunk,
                seg,
                data_at + done,
                done,
                len,
                kick,
                open_end,
            )?;
            hasher.update(&chunk[..got]);
            done += got as u64;
            if got < want {
                break;
            }
        }
        finish(reader)?;
        return Ok(hasher);
    }
    std::thread::scope(|s| {
        let (full_tx, full_rx) = mpsc::sync_channel::<(Vec<u8>, usize)>(DEPTH);
        let (free_tx, free_rx) = mpsc::channel::<Vec<u8>>();
        let worker = std::thread::Builder::new()
            .name("partstore-hash".into())
            .spawn_scoped(s, move || {
                for (buf, n) in full_rx {
                    hasher.update(&buf[..n]);
                    // The writer may have stopped: then the buffer just drops.
                    let _ = free_tx.send(buf);
                }
                hasher
            })
            .map_err(|e| Error::io("starting the hashing thread", e))?;
        let streamed = (|| {
            let mut allocated = 0;
            let mut done = 0u64;
            while done < len {
                let want = STEP.min((len - done) as usize);
                let mut buf = if allocated < DEPTH {
                    allocated += 1;
                    vec![0u8; STEP]
                } else {
                    free_rx.recv().map_err(|_| {
                        Error::io("hashing thread", std::io::Error::other("stopped"))
                    })?
                };
                let got = step(
                    reader,
                    &mut buf[..want],
                    seg,
                    data_at + done,
                    done,
                    len,
                    kick,
                    open_end,
                )?;
                full_tx
                    .send((buf, got))
                    .map_err(|_| Error::io("hashing thread", std::io::Error::other("stopped")))?;
                done += got as u64;
                if got < want {
                    break;
                }
            }
            Ok(())
        })();
        // No more steps: the hasher finishes the queued ones while `finish`
        // (end of body, fdatasync) runs here.
        drop(full_tx);
        let finished = streamed.and_then(|()| finish(reader));
        let hasher = match worker.join() {
            Ok(h) => h,
            Err(panic) => std::panic::resume_unwind(panic),
        };
        finished.map(|()| hasher)
    })
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
        let streamed = stream(
            &mut reader,
            &region.segment,
            region.data_at,
            len,
            hasher,
            kick,
            false,
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
    let streamed = stream(
        &mut body,
        &region.segment,
        region.data_at,
        max,
        hasher,
        kick,
        true,
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
