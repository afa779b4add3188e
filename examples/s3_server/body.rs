//! Request and response bodies between async HTTP and the synchronous engine.
//!
//! Uploads: the request body stream becomes a blocking `std::io::Read`
//! (`SyncIoBridge`) that the engine pulls from inside `spawn_blocking`, so a
//! part is streamed into its segment and never held whole in memory. The
//! engine checks one digest itself (`PartBody::digest`); checksums it does
//! not know (CRC32, CRC64NVME), a second digest header, and checksums sent
//! as aws-chunked trailers are checked by [`BodyReader`] as the bytes pass:
//! on a mismatch it fails the read at end of body, which makes the engine
//! store nothing.
//!
//! Downloads: the object's zero-copy `Slice`s go out as `Bytes` that own
//! them (`Bytes::from_owner`), a window at a time, each window's CRC
//! verification done on a blocking thread.

use std::io::{self, Read};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use bytes::Bytes;
use futures::{Stream, TryStreamExt};
use partstore::{Blob, Digest, DigestAlgorithm, Slice};
use s3s::crypto::{Checksum, Crc32, Crc32c, Crc64Nvme, Md5, Sha1, Sha256};
use s3s::dto::StreamingBlob;
use s3s::{S3Error, S3ErrorCode, S3Result, TrailingHeaders};
use tokio::sync::mpsc;
use tokio_util::io::{StreamReader, SyncIoBridge};

use crate::errors::err;

/// Bytes of an object verified and sent per step of a download.
const READ_WINDOW: u64 = 8 << 20;

/// The checksum algorithms of S3 request headers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Algo {
    Md5,
    Crc32,
    Crc32c,
    Crc64Nvme,
    Sha1,
    Sha256,
}

impl Algo {
    fn header(self) -> &'static str {
        match self {
            Algo::Md5 => "content-md5",
            Algo::Crc32 => "x-amz-checksum-crc32",
            Algo::Crc32c => "x-amz-checksum-crc32c",
            Algo::Crc64Nvme => "x-amz-checksum-crc64nvme",
            Algo::Sha1 => "x-amz-checksum-sha1",
            Algo::Sha256 => "x-amz-checksum-sha256",
        }
    }

    fn len(self) -> usize {
        match self {
            Algo::Crc32 | Algo::Crc32c => 4,
            Algo::Crc64Nvme => 8,
            Algo::Md5 => 16,
            Algo::Sha1 => 20,
            Algo::Sha256 => 32,
        }
    }

    fn from_trailer(name: &str) -> Option<Algo> {
        [
            Algo::Crc32,
            Algo::Crc32c,
            Algo::Crc64Nvme,
            Algo::Sha1,
            Algo::Sha256,
        ]
        .into_iter()
        .find(|a| a.header().eq_ignore_ascii_case(name.trim()))
    }

    /// The engine's algorithm, for the ones it checks itself.
    fn engine(self) -> Option<DigestAlgorithm> {
        match self {
            Algo::Md5 => Some(DigestAlgorithm::Md5),
            Algo::Crc32c => Some(DigestAlgorithm::Crc32c),
            Algo::Sha1 => Some(DigestAlgorithm::Sha1),
            Algo::Sha256 => Some(DigestAlgorithm::Sha256),
            Algo::Crc32 | Algo::Crc64Nvme => None,
        }
    }
}

enum Hasher {
    Md5(Md5),
    Crc32(Crc32),
    Crc32c(Crc32c),
    Crc64Nvme(Crc64Nvme),
    Sha1(Sha1),
    Sha256(Sha256),
}

impl Hasher {
    fn new(a: Algo) -> Hasher {
        match a {
            Algo::Md5 => Hasher::Md5(Md5::new()),
            Algo::Crc32 => Hasher::Crc32(Crc32::new()),
            Algo::Crc32c => Hasher::Crc32c(Crc32c::new()),
            Algo::Crc64Nvme => Hasher::Crc64Nvme(Crc64Nvme::new()),
            Algo::Sha1 => Hasher::Sha1(Sha1::new()),
            Algo::Sha256 => Hasher::Sha256(Sha256::new()),
        }
    }

    fn update(&mut self, b: &[u8]) {
        match self {
            Hasher::Md5(h) => h.update(b),
            Hasher::Crc32(h) => h.update(b),
            Hasher::Crc32c(h) => h.update(b),
            Hasher::Crc64Nvme(h) => h.update(b),
            Hasher::Sha1(h) => h.update(b),
            Hasher::Sha256(h) => h.update(b),
        }
    }

    fn finish(self) -> Vec<u8> {
        match self {
            Hasher::Md5(h) => h.finalize().to_vec(),
            Hasher::Crc32(h) => h.finalize().to_vec(),
            Hasher::Crc32c(h) => h.finalize().to_vec(),
            Hasher::Crc64Nvme(h) => h.finalize().to_vec(),
            Hasher::Sha1(h) => h.finalize().to_vec(),
            Hasher::Sha256(h) => h.finalize().to_vec(),
        }
    }
}

/// The checksum headers of a PutObject or UploadPart request.
#[derive(Default)]
pub struct ChecksumHeaders<'a> {
    pub content_md5: Option<&'a str>,
    pub crc32: Option<&'a str>,
    pub crc32c: Option<&'a str>,
    pub crc64nvme: Option<&'a str>,
    pub sha1: Option<&'a str>,
    pub sha256: Option<&'a str>,
    /// The `x-amz-trailer` header: a checksum that follows the body.
    pub trailer: Option<&'a str>,
}

/// How one request body is checked: one digest by the engine, the rest by
/// [`BodyReader`].
pub struct Checks {
    pub engine: Option<Digest>,
    extra: Vec<(Algo, Vec<u8>)>,
    trailer: Option<Algo>,
}

impl Checks {
    pub fn from_headers(h: &ChecksumHeaders<'_>) -> S3Result<Checks> {
        let mut given = Vec::new();
        // The first of these the engine can check goes to the engine.
        for (algo, value) in [
            (Algo::Sha256, h.sha256),
            (Algo::Sha1, h.sha1),
            (Algo::Crc32c, h.crc32c),
            (Algo::Md5, h.content_md5),
            (Algo::Crc32, h.crc32),
            (Algo::Crc64Nvme, h.crc64nvme),
        ] {
            if let Some(v) = value {
                given.push((algo, decode(algo, v)?));
            }
        }
        let mut engine = None;
        let mut extra = Vec::new();
        for (algo, bytes) in given {
            match algo.engine() {
                Some(ea) if engine.is_none() => {
                    let d = Digest::new(ea, &bytes).map_err(|e| crate::errors::s3(&e))?;
                    engine = Some(d);
                }
                _ => extra.push((algo, bytes)),
            }
        }
        let trailer = match h.trailer {
            None => None,
            Some(name) => Some(Algo::from_trailer(name).ok_or_else(|| {
                err(
                    S3ErrorCode::InvalidArgument,
                    format!("x-amz-trailer \"{name}\" names no supported checksum"),
                )
            })?),
        };
        Ok(Checks {
            engine,
            extra,
            trailer,
        })
    }
}

/// A base64 checksum header value, checked for the algorithm's length.
fn decode(algo: Algo, value: &str) -> S3Result<Vec<u8>> {
    let bytes = base64_simd::STANDARD
        .decode_to_vec(value.trim())
        .ok()
        .filter(|b| b.len() == algo.len());
    bytes.ok_or_else(|| {
        let code = if algo == Algo::Md5 {
            S3ErrorCode::InvalidDigest
        } else {
            S3ErrorCode::InvalidArgument
        };
        err(
            code,
            format!(
                "{} \"{value}\" is not the base64 of {} bytes",
                algo.header(),
                algo.len()
            ),
        )
    })
}

/// Base64 of a CRC32C as S3 sends checksums: the big-endian bytes.
pub fn crc32c_b64(crc: u32) -> String {
    base64_simd::STANDARD.encode_to_string(crc.to_be_bytes())
}

/// Why a body read failed, when the failure is the client's (a bad body or
/// checksum) rather than the engine's; it takes precedence over the
/// engine's error, which only says the read failed.
type Fault = Arc<Mutex<Option<(S3ErrorCode, String)>>>;

fn set_fault(f: &Fault, code: S3ErrorCode, msg: String) {
    if let Ok(mut g) = f.lock() {
        g.get_or_insert((code, msg));
    }
}

/// The request body as a blocking reader that checks [`Checks::extra`] and
/// the trailer checksum at end of body.
pub struct BodyReader {
    inner: Box<dyn Read + Send>,
    hashers: Vec<(Algo, Hasher, Option<Vec<u8>>)>,
    trailers: Option<TrailingHeaders>,
    fault: Fault,
    done: bool,
}

impl BodyReader {
    fn finish(&mut self) -> io::Result<()> {
        for (algo, hasher, expected) in std::mem::take(&mut self.hashers) {
            let expected = match expected {
                Some(e) => e,
                None => {
                    // The trailer's value, ready now that the body has ended.
                    let value = self.trailers.as_ref().and_then(|t| {
                        t.read(|h| {
                            h.get(algo.header())
                                .and_then(|v| v.to_str().ok())
                                .map(str::to_owned)
                        })
                        .flatten()
                    });
                    let Some(value) = value else {
                        let msg = format!("the body has no {} trailer", algo.header());
                        set_fault(&self.fault, S3ErrorCode::InvalidRequest, msg.clone());
                        return Err(io::Error::other(msg));
                    };
                    match decode(algo, &value) {
                        Ok(b) => b,
                        Err(e) => {
                            let msg = e.message().unwrap_or("bad trailer").to_owned();
                            set_fault(&self.fault, S3ErrorCode::InvalidArgument, msg.clone());
                            return Err(io::Error::other(msg));
                        }
                    }
                }
            };
            let actual = hasher.finish();
            if actual != expected {
                let b64 = |b: &[u8]| base64_simd::STANDARD.encode_to_string(b);
                let msg = format!(
                    "{} {} does not match the body's {}",
                    algo.header(),
                    b64(&expected),
                    b64(&actual)
                );
                set_fault(&self.fault, S3ErrorCode::BadDigest, msg.clone());
                return Err(io::Error::other(msg));
            }
        }
        Ok(())
    }
}

impl Read for BodyReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        if n > 0 {
            for (_, h, _) in &mut self.hashers {
                h.update(&buf[..n]);
            }
        } else if !self.done && !buf.is_empty() {
            self.done = true;
            self.finish()?;
        }
        Ok(n)
    }
}

/// Runs `f` on a blocking thread with the request body as a checked
/// [`BodyReader`]; a fault of the body (stream error, checksum mismatch)
/// wins over the engine's error.
pub async fn with_body<T, F>(
    body: Option<StreamingBlob>,
    checks: &Checks,
    trailers: Option<TrailingHeaders>,
    f: F,
) -> S3Result<T>
where
    T: Send + 'static,
    F: FnOnce(BodyReader) -> partstore::Result<T> + Send + 'static,
{
    let fault: Fault = Arc::new(Mutex::new(None));
    let inner: Box<dyn Read + Send> = match body {
        None => Box::new(io::empty()),
        Some(stream) => {
            let f2 = Arc::clone(&fault);
            let stream = stream.map_err(move |e| {
                let (code, msg) = match e.downcast_ref::<S3Error>() {
                    Some(s3) => (
                        s3.code().clone(),
                        s3.message().unwrap_or("request body failed").to_owned(),
                    ),
                    None => (
                        S3ErrorCode::IncompleteBody,
                        format!("reading the request body: {e}"),
                    ),
                };
                set_fault(&f2, code, msg);
                io::Error::other(e)
            });
            let handle = tokio::runtime::Handle::current();
            Box::new(SyncIoBridge::new_with_handle(
                StreamReader::new(stream),
                handle,
            ))
        }
    };
    let mut hashers: Vec<(Algo, Hasher, Option<Vec<u8>>)> = checks
        .extra
        .iter()
        .map(|(a, v)| (*a, Hasher::new(*a), Some(v.clone())))
        .collect();
    if let Some(a) = checks.trailer {
        hashers.push((a, Hasher::new(a), None));
    }
    let reader = BodyReader {
        inner,
        hashers,
        trailers,
        fault: Arc::clone(&fault),
        done: false,
    };
    let result = tokio::task::spawn_blocking(move || f(reader))
        .await
        .map_err(|e| err(S3ErrorCode::InternalError, format!("worker failed: {e}")))?;
    result.map_err(|e| match fault.lock().ok().and_then(|mut g| g.take()) {
        Some((code, msg)) => S3Error::with_message(code, msg),
        None => crate::errors::s3(&e),
    })
}

/// A response body over `start..end` of a blob. `first` holds the first
/// window's slices, already verified (so a corrupt first block is an error
/// response rather than a cut-off body); the rest are verified a window at
/// a time on blocking threads while the client reads.
pub fn blob_body(blob: Blob, first: Vec<Slice>, start: u64, end: u64) -> StreamingBlob {
    let (tx, rx) = mpsc::channel::<io::Result<Bytes>>(4);
    let first_end = (start + READ_WINDOW).min(end);
    tokio::spawn(async move {
        for s in first {
            if tx.send(Ok(Bytes::from_owner(s))).await.is_err() {
                return;
            }
        }
        let mut pos = first_end;
        while pos < end {
            let to = (pos + READ_WINDOW).min(end);
            let b = blob.clone();
            let slices = match tokio::task::spawn_blocking(move || b.slices(pos, to)).await {
                Ok(Ok(s)) => s,
                Ok(Err(e)) => {
                    let _ = tx.send(Err(io::Error::other(e.to_string()))).await;
                    return;
                }
                Err(e) => {
                    let _ = tx.send(Err(io::Error::other(e.to_string()))).await;
                    return;
                }
            };
            for s in slices {
                // The client went away: stop reading.
                if tx.send(Ok(Bytes::from_owner(s))).await.is_err() {
                    return;
                }
            }
            pos = to;
        }
    });
    StreamingBlob::wrap(ChunkStream { rx })
}

/// The first window of `start..end`, verified; on a blocking thread.
pub fn first_window(blob: &Blob, start: u64, end: u64) -> partstore::Result<Vec<Slice>> {
    blob.slices(start, (start + READ_WINDOW).min(end))
}

struct ChunkStream {
    rx: mpsc::Receiver<io::Result<Bytes>>,
}

impl Stream for ChunkStream {
    type Item = io::Result<Bytes>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.rx.poll_recv(cx)
    }
}
