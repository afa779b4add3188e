//! An S3-compatible HTTP server whose storage is a `partstore::Store`.
//!
//! ```sh
//! cargo run --example s3_server -- --addr 127.0.0.1:9000 --dir /tmp/s3data
//! ```
//!
//! It prints `listening on http://ADDR` once it accepts connections, and
//! stops cleanly on Ctrl-C (SIGINT). Requests must be signed (SigV4) with
//! access key `partstore` and secret `partstore-secret` (or `--access-key`,
//! `--secret-key`); path-style addressing (`http://ADDR/bucket/key`).
//!
//! The S3 protocol (request parsing, SigV4, XML) is the `s3s` crate's; the
//! HTTP server is hyper on tokio. The engine is synchronous, so every call
//! into it runs on tokio's blocking pool, and request bodies are streamed
//! into it as a blocking reader (see `s3_server/body.rs`). Bucket = layer.
//! What maps to what, and which S3 behaviour the engine cannot match, is in
//! `s3_server/s3.rs` and the README's "Embedding in a server".

#[path = "s3_server/body.rs"]
mod body;
#[path = "s3_server/errors.rs"]
mod errors;
#[path = "s3_server/s3.rs"]
mod s3;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use hyper_util::rt::TokioIo;
use partstore::{Options, Store};
use s3s::auth::SimpleAuth;
use s3s::service::S3ServiceBuilder;
use tokio::net::TcpListener;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

struct Args {
    addr: SocketAddr,
    dir: Option<PathBuf>,
    access_key: String,
    secret_key: String,
}

fn parse_args() -> Result<Args, BoxError> {
    let mut a = Args {
        addr: "127.0.0.1:9000".parse()?,
        dir: None,
        access_key: "partstore".into(),
        secret_key: "partstore-secret".into(),
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or_else(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--addr" => a.addr = value()?.parse()?,
            "--dir" => a.dir = Some(value()?.into()),
            "--access-key" => a.access_key = value()?,
            "--secret-key" => a.secret_key = value()?,
            "-h" | "--help" => {
                println!(
                    "usage: s3_server [--addr IP:PORT (127.0.0.1:9000; port 0 picks one)] \
                     [--dir STORE_DIR (a temporary one)] [--access-key K] [--secret-key S]"
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
        let mut b = S3ServiceBuilder::new(s3::PartstoreS3::new(store));
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
            let conn = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(socket), service);
            if let Err(e) = conn.await {
                eprintln!("connection: {e}");
            }
        });
    }
}
