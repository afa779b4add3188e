//! An S3-compatible HTTP server whose storage is a `partstore::Store`.
//!
//! ```sh
//! cargo run --example s3_server -- --addr 127.0.0.1:9000 --dir /tmp/s3data
//! ```
//!
//! It prints `listening on http://ADDR` once it accepts connections, and
//! stops cleanly on Ctrl-C (SIGINT). Requests must be signed (SigV4) with
//! access key `partstore` and secret `partstore-secret` (or `--access-key`,
//! `--secret-key`); path-style addressing (`http://ADDR/bucket/key`). Every
//! bucket is in one region (`--region`, default `us-east-1`). Every
//! response carries an `x-amz-request-id` (and error bodies a
//! `<RequestId>`).
//!
//! The S3 protocol (request parsing, SigV4, XML) is the `s3s` crate's; the
//! HTTP server is hyper on tokio. The engine is synchronous, so every call
//! into it runs on tokio's blocking pool, and request bodies are streamed
//! into it as a blocking reader (see `s3_server/body.rs`). Bucket = layer.
//! What maps to what, and which S3 behaviour the engine cannot match, is in
//! `s3_server/s3.rs` and the README's "Embedding in a server".

#[path = "s3_server/attrs.rs"]
mod attrs;
#[path = "s3_server/body.rs"]
mod body;
#[path = "s3_server/buckets.rs"]
mod buckets;
#[path = "s3_server/complete.rs"]
mod complete;
#[path = "s3_server/errors.rs"]
mod errors;
#[path = "s3_server/list.rs"]
mod list;
#[path = "s3_server/multipart.rs"]
mod multipart;
#[path = "s3_server/objects.rs"]
mod objects;
#[path = "s3_server/request.rs"]
mod request;
#[path = "s3_server/s3.rs"]
mod s3;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use hyper_util::rt::TokioIo;
use partstore::{Options, Store};
use s3s::auth::SimpleAuth;
use s3s::service::{S3Service, S3ServiceBuilder};
use tokio::net::TcpListener;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

struct Args {
    addr: SocketAddr,
    dir: Option<PathBuf>,
    access_key: String,
    secret_key: String,
    region: String,
}

fn parse_args() -> Result<Args, BoxError> {
    let mut a = Args {
        addr: "127.0.0.1:9000".parse()?,
        dir: None,
        access_key: "partstore".into(),
        secret_key: "partstore-secret".into(),
        region: "us-east-1".into(),
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or_else(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--addr" => a.addr = value()?.parse()?,
            "--dir" => a.dir = Some(value()?.into()),
            "--access-key" => a.access_key = value()?,
            "--secret-key" => a.secret_key = value()?,
            "--region" => a.region = value()?,
            "-h" | "--help" => {
                println!(
                    "usage: s3_server [--addr IP:PORT (127.0.0.1:9000; port 0 picks one)] \
                     [--dir STORE_DIR (a temporary one)] [--access-key K] [--secret-key S] \
                     [--region R (us-east-1)]"
                );
                std::process::exit(0);
            }
            other => return Err(format!("unknown argument {other:?} (try --help)").into()),
        }
    }
    Ok(a)
}

fn main() -> Result<(), BoxError> {
    let args = parse_args()?;
    // A temporary store unless --dir is given; removed on a clean exit.
    let tmp;
    let dir = match &args.dir {
        Some(d) => d.clone(),
        None => {
            tmp = tempfile::tempdir()?;
            tmp.path().to_path_buf()
        }
    };
    let store = Arc::new(Store::open(&dir, Options::default())?);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(serve(Arc::clone(&store), &args))?;
    // Engine calls still running (a body a client stopped sending) get a
    // few seconds; then the store is synced and closed.
    rt.shutdown_timeout(std::time::Duration::from_secs(5));
    store.sync()?;
    Ok(())
}

async fn serve(store: Arc<Store>, args: &Args) -> Result<(), BoxError> {
    let service = {
        let mut b = S3ServiceBuilder::new(s3::PartstoreS3::new(store, args.region.clone()));
        b.set_auth(SimpleAuth::from_single(
            args.access_key.clone(),
            args.secret_key.as_str(),
        ));
        b.build()
    };
    let listener = TcpListener::bind(args.addr).await?;
    println!("listening on http://{}", listener.local_addr()?);
    let mut stop = std::pin::pin!(tokio::signal::ctrl_c());
    loop {
        let (socket, _) = tokio::select! {
            r = listener.accept() => match r {
                Ok(conn) => conn,
                Err(e) => {
                    eprintln!("accept: {e}");
                    continue;
                }
            },
            _ = stop.as_mut() => return Ok(()),
        };
        let service = service.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req: hyper::Request<_>| {
                with_request_id(service.clone(), req)
            });
            let conn = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(socket), service);
            if let Err(e) = conn.await {
                eprintln!("connection: {e}");
            }
        });
    }
}

/// Request ids: a per-process random start plus a counter, as 16 hex digits.
fn request_id() -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    static START: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    let start = *START.get_or_init(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64)
    });
    format!(
        "{:016X}",
        start.wrapping_add(NEXT.fetch_add(1, Ordering::Relaxed))
    )
}

/// A PUT whose body comes without any length (`Transfer-Encoding: chunked`,
/// no Content-Length, an unsigned payload). S3 (and s3s, like MinIO)
/// answer 411; this server stores it with `PartBody::until_eof` instead:
/// s3s is given `Content-Length: 0` to pass its check, and the operation
/// sees this header and ignores that length. Clients cannot send it
/// (it is removed from every request first).
fn mark_unknown_length(req: &mut hyper::Request<hyper::body::Incoming>) {
    let h = req.headers_mut();
    h.remove(s3::UNKNOWN_LENGTH);
    let chunked = h
        .get(hyper::header::TRANSFER_ENCODING)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.to_ascii_lowercase().contains("chunked"));
    let unsigned = h
        .get("x-amz-content-sha256")
        .is_some_and(|v| v.as_bytes() == b"UNSIGNED-PAYLOAD");
    if req.method() == hyper::Method::PUT
        && chunked
        && unsigned
        && !req.headers().contains_key(hyper::header::CONTENT_LENGTH)
    {
        let h = req.headers_mut();
        h.insert(
            hyper::header::CONTENT_LENGTH,
            hyper::header::HeaderValue::from_static("0"),
        );
        h.insert(
            s3::UNKNOWN_LENGTH,
            hyper::header::HeaderValue::from_static("1"),
        );
    }
}

/// Serves a request and tags the response with an `x-amz-request-id`, as
/// S3 does; an error body (S3's XML, always buffered) gets the same id as
/// its `<RequestId>`, whichever layer of s3s produced the error.
async fn with_request_id(
    service: S3Service,
    mut req: hyper::Request<hyper::body::Incoming>,
) -> Result<hyper::Response<s3s::Body>, s3s::HttpError> {
    let id = request_id();
    mark_unknown_length(&mut req);
    let mut res = service.call(req.map(s3s::Body::from)).await?;
    if res.status().as_u16() >= 300 {
        if let Some(bytes) = res.body().bytes() {
            let xml = String::from_utf8_lossy(&bytes);
            if let Some(at) = xml
                .rfind("</Error>")
                .filter(|_| !xml.contains("<RequestId>"))
            {
                let with = format!("{}<RequestId>{id}</RequestId>{}", &xml[..at], &xml[at..]);
                res.headers_mut().remove(hyper::header::CONTENT_LENGTH);
                *res.body_mut() = s3s::Body::from(with);
            }
        }
    }
    if let Ok(v) = hyper::header::HeaderValue::from_str(&id) {
        res.headers_mut().insert("x-amz-request-id", v.clone());
        res.headers_mut().insert("x-amz-id-2", v);
    }
    Ok(res)
}
