//! `partstore put LAYER KEY -`: an object from standard input, whose size is
//! not known in advance.
//!
//! A reader thread fills part-sized buffers from fd 0 and looks one byte
//! ahead, so it knows whether a full buffer is the last part. The first
//! buffer, if it is also the last, becomes one `put_object`; otherwise the
//! buffers become the parts of a multipart upload, uploaded one at a time
//! while the reader fills the next. Only two buffers ever exist (the one
//! being uploaded and the one being filled): memory is two parts, whatever
//! the input's size. With `--digest` each part is hashed from its buffer
//! (the input is read once) and the engine checks it.

use std::fs::File;
use std::io::Read;
use std::os::fd::AsFd as _;
use std::sync::mpsc::{channel, sync_channel, Receiver, Sender, SyncSender};

use partstore::rules::MAX_PART_NUMBER;
use partstore::{Error, ErrorKind, ObjectInfo, Reason, Store, UploadId, UploadOptions};

use crate::put::{buffered_body, choose_part_size, upload_content_type, PutRequest};
use crate::util::{bytes_counter, human_bytes, io_err};

/// One buffer of input: `buf[..len]`, and whether nothing follows it.
struct Chunk {
    buf: Vec<u8>,
    len: usize,
    last: bool,
}

/// Reads until `buf` is full or the input ends; returns the bytes read.
fn read_full(input: &mut impl Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match input.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

/// The reader thread: fills buffers of `part_size` bytes from `input` and
/// sends them in order. At most two buffers are allocated; after that, a
/// buffer comes back through `free` once its part is uploaded. Stops at the
/// end of the input, at a read error (sent as the last message), or when
/// the receiver is gone.
fn read_chunks(
    mut input: impl Read,
    part_size: usize,
    out: SyncSender<std::io::Result<Chunk>>,
    free: Receiver<Vec<u8>>,
) {
    let mut allocated = 0;
    let mut carry: Option<u8> = None;
    loop {
        let mut buf = if allocated < 2 {
            allocated += 1;
            vec![0u8; part_size]
        } else {
            match free.recv() {
                Ok(b) => b,
                Err(_) => return,
            }
        };
        let mut len = 0;
        if let Some(b) = carry.take() {
            buf[0] = b;
            len = 1;
        }
        let r = read_full(&mut input, &mut buf[len..]).and_then(|k| {
            len += k;
            if len < part_size {
                return Ok(true);
            }
            // A full buffer: one byte ahead tells whether it is the last.
            let mut next = [0u8; 1];
            Ok(match read_full(&mut input, &mut next)? {
                0 => true,
                _ => {
                    carry = Some(next[0]);
                    false
                }
            })
        });
        let msg = r.map(|last| Chunk { buf, len, last });
        let stop = !matches!(msg, Ok(Chunk { last: false, .. }));
        if out.send(msg).is_err() || stop {
            return;
        }
    }
}

/// Uploads standard input as `req.key`: one `put_object` when it fits one
/// part, else a multipart upload of parts of the part size (`--part-size`,
/// default 8 MiB; at most 10,000 of them), one at a time.
pub fn put(store: &Store, req: &PutRequest<'_>) -> partstore::Result<ObjectInfo> {
    let part_size = req.part_size.unwrap_or(crate::DEFAULT_PUT_PART_SIZE);
    // Zero and over-96-MiB sizes are wrong whatever the input; the
    // multipart rules apply once the input turns out longer than one part.
    choose_part_size(part_size, Some(part_size))?;
    let part_len = usize::try_from(part_size).map_err(|_| {
        Error::new(
            ErrorKind::TooLarge,
            Reason::PartTooLarge,
            format!("part size {part_size} does not fit in memory"),
        )
    })?;
    let fd = std::io::stdin()
        .as_fd()
        .try_clone_to_owned()
        .map_err(|e| io_err("duplicating standard input", e))?;
    let (out, chunks) = sync_channel(0);
    let (free, freed) = channel();
    // Not joined on failure: it may be blocked reading a terminal or a pipe
    // that never ends, and the process exits without waiting for it.
    std::thread::Builder::new()
        .name("stdin".to_string())
        .spawn(move || read_chunks(File::from(fd), part_len, out, freed))
        .map_err(|e| io_err("starting the standard input reader", e))?;

    let pb = bytes_counter("put");
    let r = put_chunks(store, req, part_size, &chunks, &free, &|n| pb.inc(n));
    pb.finish_and_clear();
    r
}

/// The next buffer of input.
fn next_chunk(chunks: &Receiver<std::io::Result<Chunk>>) -> partstore::Result<Chunk> {
    match chunks.recv() {
        Ok(Ok(c)) => Ok(c),
        Ok(Err(e)) => Err(io_err("reading standard input", e)),
        Err(_) => Err(io_err(
            "reading standard input",
            std::io::Error::other("the reader thread ended early"),
        )),
    }
}

fn put_chunks(
    store: &Store,
    req: &PutRequest<'_>,
    part_size: u64,
    chunks: &Receiver<std::io::Result<Chunk>>,
    free: &Sender<Vec<u8>>,
    progress: &dyn Fn(u64),
) -> partstore::Result<ObjectInfo> {
    let first = next_chunk(chunks)?;
    if first.last {
        let mut body = buffered_body(&first.buf[..first.len], req.digest)?;
        if let Some(ct) = &req.content_type {
            body = body.content_type(ct.clone());
        }
        let info = store.put_object(req.layer, req.key, body)?;
        progress(first.len as u64);
        return Ok(info);
    }
    // Longer than one part: the part size must suit a multipart upload.
    choose_part_size(part_size + 1, Some(part_size))?;
    let upload = store.start_multipart(
        req.layer,
        req.key,
        UploadOptions::new(upload_content_type(store, req)),
    )?;
    let r = upload_chunks(
        store, req, &upload, part_size, first, chunks, free, progress,
    )
    .and_then(|()| store.complete_multipart(req.layer, &upload));
    if r.is_err() {
        // Best effort: the upload's parts become garbage instead of lingering.
        let _ = store.abort_multipart(req.layer, &upload);
    }
    r
}

#[allow(clippy::too_many_arguments)]
fn upload_chunks(
    store: &Store,
    req: &PutRequest<'_>,
    upload: &UploadId,
    part_size: u64,
    first: Chunk,
    chunks: &Receiver<std::io::Result<Chunk>>,
    free: &Sender<Vec<u8>>,
    progress: &dyn Fn(u64),
) -> partstore::Result<()> {
    let mut chunk = first;
    let mut n: u32 = 1;
    loop {
        if n > MAX_PART_NUMBER {
            return Err(Error::new(
                ErrorKind::BadRequest,
                Reason::InvalidArgument,
                format!(
                    "standard input is longer than {MAX_PART_NUMBER} parts of {} ({part_size} \
                     bytes); pass a larger --part-size (up to 96MiB)",
                    human_bytes(part_size)
                ),
            ));
        }
        let bytes = &chunk.buf[..chunk.len];
        store.upload_part(req.layer, upload, n, buffered_body(bytes, req.digest)?)?;
        progress(chunk.len as u64);
        if chunk.last {
            return Ok(());
        }
        // The reader may already be gone (it ends after a read error, which
        // the next receive reports).
        let _ = free.send(chunk.buf);
        chunk = next_chunk(chunks)?;
        n += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every chunk the reader thread sends for `input`.
    fn chunks_of(input: Vec<u8>, part_size: usize) -> Vec<(Vec<u8>, bool)> {
        let (out, chunks) = sync_channel(0);
        let (free, freed) = channel();
        let t = std::thread::spawn(move || read_chunks(&input[..], part_size, out, freed));
        let mut got = Vec::new();
        while let Ok(Ok(c)) = chunks.recv() {
            got.push((c.buf[..c.len].to_vec(), c.last));
            let _ = free.send(c.buf);
        }
        assert!(t.join().is_ok());
        got
    }

    #[test]
    fn the_reader_marks_the_last_chunk_at_every_boundary() {
        let data: Vec<u8> = (0..100u8).collect();
        for len in [0usize, 1, 9, 10, 11, 20, 25, 100] {
            let got = chunks_of(data[..len].to_vec(), 10);
            let want_chunks = len.div_ceil(10).max(1);
            assert_eq!(got.len(), want_chunks, "len {len}");
            let joined: Vec<u8> = got.iter().flat_map(|(b, _)| b.clone()).collect();
            assert_eq!(joined, &data[..len], "len {len}");
            for (i, (b, last)) in got.iter().enumerate() {
                assert_eq!(*last, i + 1 == want_chunks, "len {len} chunk {i}");
                if !last {
                    assert_eq!(b.len(), 10, "len {len} chunk {i}");
                }
            }
        }
    }
}
