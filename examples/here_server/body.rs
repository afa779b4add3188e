//! Request and response bodies between async HTTP and the synchronous engine.
//!
//! Uploads: the request body stream becomes a blocking `std::io::Read`
//! (`SyncIoBridge`) that the engine pulls from inside `spawn_blocking`, so
//! a body is streamed into its segment chunk by chunk as hyper receives it,
//! never held whole in memory (hyper reads from the socket only when the
//! engine asks for more: backpressure). A body that fails in transit (the
//! client sent less than its Content-Length and hung up) is reported as the
//! client's fault, not as the engine's I/O error.
//!
//! A request the engine refuses before reading all of its body (a wrong
//! Content-Type, a part of a completed upload, an unknown layer) gets the
//! rest of its body read and thrown away before the error goes out, when
//! the body is no larger than the largest the engine accepts (192 MiB): a
//! client that writes its whole body before it reads the answer (fetch
//! does) otherwise sees the connection reset instead of the error. Not
//! drained: a 413 (its body is too large by definition), a body declared
//! larger than that limit, and a request that sent `Expect: 100-continue`
//! (its client waits for the answer before it sends the body). Those get
//! the answer at once and the connection is closed.
//!
//! Downloads: the object's zero-copy `Slice`s go out as `Bytes` that own
//! them (`Bytes::from_owner`), a window at a time; each window's block CRCs
//! are verified on a blocking thread while the client reads the previous
//! one. The first window is verified before the response starts, so a
//! corrupt first block is an error response rather than a cut-off body.

use std::io::{self, Read};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use axum::body::{Body, Bytes, HttpBody};
use axum::http::header::EXPECT;
use axum::http::{HeaderMap, StatusCode};
use futures::{Stream, StreamExt, TryStreamExt};
use partstore::rules::MAX_PUT_OBJECT_SIZE;
use partstore::{Blob, ErrorKind, Reason, Slice, Store};
use tokio::sync::mpsc;
use tokio_util::io::{StreamReader, SyncIoBridge};

use crate::errors::{codes, ApiError};

/// Bytes of an object verified and sent per step of a download.
const READ_WINDOW: u64 = 8 << 20;

/// The most of a refused request's body that is read and discarded so that
/// its client sees the answer (the largest body the engine accepts).
const DRAIN_LIMIT: u64 = MAX_PUT_OBJECT_SIZE;

/// The request body as the engine reads it.
pub type BodyReader = Box<dyn Read + Send>;

/// Runs `f` on the blocking pool.
pub async fn blocking<T, F>(store: Arc<Store>, f: F) -> Result<T, ApiError>
where
    T: Send + 'static,
    F: FnOnce(&Store) -> Result<T, ApiError> + Send + 'static,
{
    tokio::task::spawn_blocking(move || f(&store))
        .await
        .map_err(worker_failed)?
}

fn worker_failed(e: tokio::task::JoinError) -> ApiError {
    ApiError::front(
        StatusCode::INTERNAL_SERVER_ERROR,
        codes::INTERNAL,
        format!("worker failed: {e}"),
    )
}

/// Runs `f` on the blocking pool with the request body as a blocking
/// reader. If the body stream failed, that is the error (the engine only
/// saw a failed read). On any other error the rest of a body of at most
/// [`DRAIN_LIMIT`] bytes is read and discarded.
pub async fn with_body<T, F>(
    store: Arc<Store>,
    headers: &HeaderMap,
    body: Body,
    f: F,
) -> Result<T, ApiError>
where
    T: Send + 'static,
    F: FnOnce(&Store, &mut BodyReader) -> Result<T, ApiError> + Send + 'static,
{
    let expects_continue = headers
        .get(EXPECT)
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"100-continue"));
    let drain = !expects_continue && body.size_hint().upper().is_none_or(|n| n <= DRAIN_LIMIT);
    let fault: Arc<Mutex<Option<String>>> = Arc::new(Mutex::new(None));
    let f2 = Arc::clone(&fault);
    let stream = body.into_data_stream().map_err(move |e| {
        if let Ok(mut g) = f2.lock() {
            g.get_or_insert_with(|| e.to_string());
        }
        io::Error::other(e)
    });
    let reader =
        SyncIoBridge::new_with_handle(StreamReader::new(stream), tokio::runtime::Handle::current());
    let result = tokio::task::spawn_blocking(move || {
        let mut reader: BodyReader = Box::new(reader);
        let r = f(&store, &mut reader);
        let too_large = matches!(&r, Err(e) if e.status == StatusCode::PAYLOAD_TOO_LARGE);
        if r.is_err() && drain && !too_large {
            // A read error here only means the client went away.
            let _ = io::copy(&mut reader.take(DRAIN_LIMIT), &mut io::sink());
        }
        r
    })
    .await
    .map_err(worker_failed)?;
    result.map_err(|e| {
        let failed = fault.lock().ok().and_then(|mut g| g.take());
        match failed {
            Some(why) if e.status.is_server_error() => ApiError::rule(
                ErrorKind::BadRequest,
                Reason::BodyLengthMismatch,
                format!("the request body ended before its Content-Length: {why}"),
            ),
            _ => e,
        }
    })
}

/// A small request body (JSON) read whole, at most `limit` bytes.
pub async fn read_small(body: Body, limit: usize) -> Result<Vec<u8>, ApiError> {
    let too_large = || {
        ApiError::front(
            StatusCode::PAYLOAD_TOO_LARGE,
            codes::REQUEST_TOO_LARGE,
            format!("the JSON request body is over {limit} bytes"),
        )
    };
    let mut out = Vec::new();
    let mut stream = body.into_data_stream();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| {
            ApiError::rule(
                ErrorKind::BadRequest,
                Reason::BodyLengthMismatch,
                format!("reading the request body: {e}"),
            )
        })?;
        if out.len() + chunk.len() > limit {
            return Err(too_large());
        }
        out.extend_from_slice(&chunk);
    }
    Ok(out)
}

/// The first window of `start..end`, verified; call on a blocking thread.
pub fn first_window(blob: &Blob, start: u64, end: u64) -> partstore::Result<Vec<Slice>> {
    blob.slices(start, (start.saturating_add(READ_WINDOW)).min(end))
}

/// A response body over `start..end` of a blob whose first window is
/// `first` (from [`first_window`]).
pub fn blob_body(blob: Blob, first: Vec<Slice>, start: u64, end: u64) -> Body {
    let first_end = start.saturating_add(READ_WINDOW).min(end);
    let first = first.into_iter().map(|s| Ok(Bytes::from_owner(s)));
    if first_end >= end {
        return Body::from_stream(futures::stream::iter(first.collect::<Vec<io::Result<_>>>()));
    }
    let (tx, rx) = mpsc::channel::<io::Result<Bytes>>(4);
    let chunks: Vec<io::Result<Bytes>> = first.collect();
    tokio::spawn(async move {
        for c in chunks {
            if tx.send(c).await.is_err() {
                return;
            }
        }
        let mut pos = first_end;
        while pos < end {
            let to = pos.saturating_add(READ_WINDOW).min(end);
            let b = blob.clone();
            let slices = match tokio::task::spawn_blocking(move || b.slices(pos, to)).await {
                Ok(Ok(s)) => s,
                Ok(Err(e)) => {
                    // Headers are out: all that is left is to cut the body
                    // short, which the client sees against Content-Length.
                    eprintln!("download cut at byte {pos}: {e}");
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
    Body::from_stream(ChunkStream { rx })
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
