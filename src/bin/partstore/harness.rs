//! The ingest-vs-raw harness: generated part data, the engine ingesting it
//! (`upload_part`, `jobs` at once), and the same bytes written at their
//! offsets into a plain file with `std::fs`, each part followed by
//! `sync_data`. `partstore bench` and `benches/ingest.rs` both include this
//! file (`#[path]`), so the command and the criterion bench measure the same
//! thing the same way; it is not part of the library's API.
//!
//! Digests and CRCs of the generated data are computed with the engine's own
//! hasher (`partstore::__bench`, feature `cli`), before any timing.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::{Duration, Instant};

use partstore::__bench::{crc32c_combine, StreamHasher};
use partstore::{Digest, DigestAlgorithm, Error, ErrorKind, PartBody, Reason, Store, UploadId};

const MIB: u64 = 1 << 20;
/// Bytes of generated part buffers kept at once (at least one buffer).
const POOL_BYTES: u64 = 256 * MIB;
/// At most this many distinct part buffers.
const POOL_MAX: u64 = 16;

/// How a run reports progress and learns that it must stop.
pub struct Ctl<'a> {
    /// Parts in flight at once (at least 1).
    pub jobs: u32,
    /// Called with the byte count of every part done.
    pub progress: Option<&'a (dyn Fn(u64) + Sync)>,
    /// When set, no new part starts and the run returns [`interrupted`].
    pub cancel: &'a AtomicBool,
}

impl Ctl<'_> {
    /// Err([`interrupted`]) once `cancel` is set.
    pub fn check(&self) -> partstore::Result<()> {
        if self.cancel.load(Ordering::SeqCst) {
            Err(interrupted())
        } else {
            Ok(())
        }
    }

    fn done(&self, bytes: u64) {
        if let Some(p) = self.progress {
            p(bytes);
        }
    }
}

/// The error of a run stopped through [`Ctl::cancel`] (an `Io` error whose
/// source is `Interrupted`).
pub fn interrupted() -> Error {
    Error::Io {
        context: "interrupted".to_string(),
        source: std::io::Error::from(std::io::ErrorKind::Interrupted),
    }
}

/// Whether `e` is [`interrupted`].
pub fn is_interrupted(e: &Error) -> bool {
    matches!(e, Error::Io { source, .. } if source.kind() == std::io::ErrorKind::Interrupted)
}

/// The `algorithm` digest of `data`, by the engine's ingest hasher.
pub fn digest_of(algorithm: DigestAlgorithm, data: &[u8]) -> partstore::Result<Digest> {
    let mut h = StreamHasher::new(Some(algorithm));
    h.update(data);
    h.finish().2.ok_or_else(|| {
        Error::new(
            ErrorKind::BadRequest,
            Reason::InvalidDigest,
            format!("the engine's hasher made no {algorithm} digest"),
        )
    })
}

/// The generated data of one object: a small pool of part-sized buffers
/// (part `n` is buffer `(n - 1) % pool`: the engine neither compresses nor
/// deduplicates, so repeated content costs it the same), and per part its
/// digest (if one was asked for) and CRC32C.
pub struct Data {
    pool: Vec<Vec<u8>>,
    /// Bytes per part (the last may be shorter).
    pub part_size: u64,
    /// Bytes in all.
    pub size: u64,
    /// Number of parts (at least 1).
    pub parts: u32,
    digests: Vec<Option<Digest>>,
    crcs: Vec<u32>,
}

impl Data {
    /// `size` bytes in parts of `part_size` (> 0), xorshift output from
    /// `seed`, with each part's `digest` if asked for.
    pub fn new(
        size: u64,
        part_size: u64,
        digest: Option<DigestAlgorithm>,
        seed: u64,
    ) -> partstore::Result<Data> {
        let parts = u32::try_from(size.div_ceil(part_size.max(1)).max(1)).map_err(|_| {
            Error::new(
                ErrorKind::BadRequest,
                Reason::InvalidArgument,
                format!("{size} bytes in parts of {part_size} are too many parts"),
            )
        })?;
        let buf_len = usize::try_from(part_size.min(size)).map_err(|_| {
            Error::new(
                ErrorKind::TooLarge,
                Reason::PartTooLarge,
                format!("part size {part_size} does not fit in memory"),
            )
        })?;
        let pool_n = (POOL_BYTES / part_size.max(1))
            .clamp(1, POOL_MAX)
            .min(u64::from(parts)) as usize;
        let pool: Vec<Vec<u8>> = (0..pool_n as u64)
            .map(|i| {
                let mut v = vec![0u8; buf_len];
                fill(&mut v, seed.wrapping_mul(POOL_MAX).wrapping_add(i + 1));
                v
            })
            .collect();
        let mut data = Data {
            pool,
            part_size,
            size,
            parts,
            digests: Vec::new(),
            crcs: Vec::new(),
        };
        let hash = |bytes: &[u8]| {
            let mut h = StreamHasher::new(digest);
            h.update(bytes);
            let (crc, _, d) = h.finish();
            (crc, d)
        };
        // Per pool buffer (full length), then the last part if it is short.
        let full: Vec<(u32, Option<Digest>)> = data.pool.iter().map(|b| hash(b)).collect();
        let mut crcs = Vec::with_capacity(parts as usize);
        let mut digests = Vec::with_capacity(parts as usize);
        for n in 1..=parts {
            let bytes = data.part(n);
            let (crc, d) = if bytes.len() == buf_len {
                full[(n as usize - 1) % full.len()].clone()
            } else {
                hash(bytes)
            };
            crcs.push(crc);
            digests.push(d);
        }
        data.crcs = crcs;
        data.digests = digests;
        Ok(data)
    }

    /// Offset of part `n` (1-based).
    pub fn offset(&self, n: u32) -> u64 {
        u64::from(n - 1) * self.part_size
    }

    /// The bytes of part `n` (1-based).
    pub fn part(&self, n: u32) -> &[u8] {
        let len = self.part_size.min(self.size - self.offset(n)) as usize;
        let buf = &self.pool[(n as usize - 1) % self.pool.len()];
        &buf[..len.min(buf.len())]
    }

    /// The digest of part `n`, if one was asked for.
    pub fn digest(&self, n: u32) -> Option<&Digest> {
        self.digests[n as usize - 1].as_ref()
    }

    /// CRC32C of parts 1..=count, combined (as the engine combines them).
    pub fn crc_of_first(&self, count: u32) -> u32 {
        (1..=count).fold(0u32, |acc, n| {
            crc32c_combine(acc, self.crcs[n as usize - 1], self.part(n).len() as u64)
        })
    }
}

/// Uploads every part of `data` into `upload` (part `n` as part number `n`,
/// with its digest if any), `ctl.jobs` at once sharing one `&Store`; returns
/// the wall time.
pub fn upload_parts(
    store: &Store,
    layer: &str,
    upload: &UploadId,
    data: &Data,
    ctl: &Ctl<'_>,
) -> partstore::Result<Duration> {
    let t = Instant::now();
    parallel(ctl, data.parts, |n| {
        let bytes = data.part(n);
        let mut body = PartBody::new(bytes, bytes.len() as u64);
        if let Some(d) = data.digest(n) {
            body = body.digest(d.clone());
        }
        store.upload_part(layer, upload, n, body)?;
        ctl.done(bytes.len() as u64);
        Ok(())
    })?;
    Ok(t.elapsed())
}

/// The baseline: writes every part of `data` at its offset into a new plain
/// file at `path` (`ctl.jobs` at once), each part followed by `sync_data`
/// when `sync`; with `prealloc`, the file is first `fallocate`d to the whole
/// size and synced (untimed). Removes the file and returns the wall time.
pub fn raw_baseline(
    path: &Path,
    data: &Data,
    sync: bool,
    prealloc: bool,
    ctl: &Ctl<'_>,
) -> partstore::Result<Duration> {
    let name = path.display().to_string();
    let io = |what: &str, e: std::io::Error| Error::Io {
        context: format!("{what} {name}"),
        source: e,
    };
    let file = File::options()
        .write(true)
        .create(true)
        .truncate(true)
        .open(path)
        .map_err(|e| io("creating", e))?;
    let run = || -> partstore::Result<Duration> {
        if prealloc && data.size > 0 {
            rustix::fs::fallocate(&file, rustix::fs::FallocateFlags::empty(), 0, data.size)
                .map_err(|e| io("preallocating", e.into()))?;
            file.sync_all().map_err(|e| io("syncing", e))?;
        }
        let t = Instant::now();
        parallel(ctl, data.parts, |n| {
            let bytes = data.part(n);
            file.write_all_at(bytes, data.offset(n))
                .map_err(|e| io("writing", e))?;
            if sync {
                file.sync_data().map_err(|e| io("syncing", e))?;
            }
            ctl.done(bytes.len() as u64);
            Ok(())
        })?;
        Ok(t.elapsed())
    };
    let r = run();
    drop(file);
    let removed = std::fs::remove_file(path).map_err(|e| io("removing", e));
    let elapsed = r?;
    removed?;
    Ok(elapsed)
}

/// Runs `work(n)` for n in 1..=count on `ctl.jobs` threads (on this one
/// when 1); stops handing out numbers after the first error, or once
/// `ctl.cancel` is set, and returns the first error.
pub fn parallel(
    ctl: &Ctl<'_>,
    count: u32,
    work: impl Fn(u32) -> partstore::Result<()> + Sync,
) -> partstore::Result<()> {
    let next = AtomicU32::new(1);
    let failed = AtomicBool::new(false);
    let worker = || -> partstore::Result<()> {
        loop {
            let n = next.fetch_add(1, Ordering::SeqCst);
            if n > count || failed.load(Ordering::SeqCst) {
                return Ok(());
            }
            if let Err(e) = ctl.check().and_then(|()| work(n)) {
                failed.store(true, Ordering::SeqCst);
                return Err(e);
            }
        }
    };
    let jobs = ctl.jobs.clamp(1, count.max(1));
    if jobs == 1 {
        return worker();
    }
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..jobs).map(|_| s.spawn(worker)).collect();
        let mut first = Ok(());
        for h in handles {
            let r = h.join().unwrap_or_else(|_| {
                Err(Error::Io {
                    context: "a harness worker".to_string(),
                    source: std::io::Error::other("panicked"),
                })
            });
            if first.is_ok() {
                first = r;
            }
        }
        first
    })
}

/// Fills `buf` with xorshift64 output from `seed`.
pub fn fill(buf: &mut [u8], seed: u64) {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    for chunk in buf.chunks_mut(8) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let b = x.to_le_bytes();
        chunk.copy_from_slice(&b[..chunk.len()]);
    }
}
