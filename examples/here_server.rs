//! A HERE platform blob v2 ("object store" layers, access by key) HTTP
//! server whose storage is a `partstore::Store`.
//!
//! ```sh
//! cargo run --example here_server -- --addr 127.0.0.1:8080 --dir /tmp/here \
//!     --token partstore-token --layer maps
//! ```
//!
//! It prints `listening on http://IP:PORT` once it accepts connections, and
//! stops cleanly on SIGINT (Ctrl-C) or SIGTERM: it stops accepting, lets
//! requests in flight finish (for a few seconds), waits for the engine calls
//! still running, and syncs the store. Every request needs
//! `Authorization: Bearer TOKEN`. `--layer ID` (repeatable) creates the
//! layer if it is missing, with no content-type binding.
//!
//! HTTP is axum on tokio; the engine is synchronous, so every call into it
//! runs on tokio's blocking pool and request bodies stream into it as a
//! blocking reader (`here_server/body.rs`). The routes, and where the front
//! answers differently from the engine, are in `here_server/api.rs`; error
//! bodies and codes in `here_server/errors.rs`; README: "Embedding in a
//! server".

#[path = "here_server/api.rs"]
mod api;
#[path = "here_server/body.rs"]
mod body;
#[path = "here_server/dates.rs"]
mod dates;
#[path = "here_server/errors.rs"]
mod errors;

use std::future::IntoFuture;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use partstore::{LayerConfig, Options, Reason, Store};
use tokio::net::TcpListener;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// How long requests in flight get after a shutdown signal.
const GRACE: Duration = Duration::from_secs(10);
/// How long engine calls still running then get before the store is synced.
const ENGINE_GRACE: Duration = Duration::from_secs(5);

struct Args {
    addr: SocketAddr,
    dir: Option<PathBuf>,
    token: String,
    layers: Vec<String>,
}

fn parse_args() -> Result<Args, BoxError> {
    let mut a = Args {
        addr: "127.0.0.1:8080".parse()?,
        dir: None,
        token: "partstore-token".into(),
        layers: Vec::new(),
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or_else(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--addr" => a.addr = value()?.parse()?,
            "--dir" => a.dir = Some(value()?.into()),
            "--token" => a.token = value()?,
            "--layer" => a.layers.push(value()?),
            "-h" | "--help" => {
                println!(
                    "usage: here_server [--addr IP:PORT (127.0.0.1:8080; port 0 picks one)] \
                     [--dir STORE_DIR (a temporary one, removed on exit)] \
                     [--token BEARER_TOKEN (partstore-token)] [--layer ID]..."
                );
                std::process::exit(0);
            }
            other => return Err(format!("unknown argument {other:?} (try --help)").into()),
        }
    }
    if a.token.is_empty() {
        return Err("--token must not be empty".into());
    }
    Ok(a)
}

fn main() -> Result<(), BoxError> {
    let args = parse_args()?;
    // A temporary store unless --dir is given; removed when `tmp` drops,
    // after the store is synced and dropped.
    let tmp;
    let dir = match &args.dir {
        Some(d) => d.clone(),
        None => {
            tmp = tempfile::tempdir()?;
            tmp.path().to_path_buf()
        }
    };
    let store = Arc::new(Store::open(&dir, Options::default())?);
    for layer in &args.layers {
        match store.create_layer(layer, LayerConfig::default()) {
            Ok(()) => {}
            Err(e) if e.reason() == Some(Reason::LayerExists) => {}
            Err(e) => return Err(format!("--layer {layer:?}: {e}").into()),
        }
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let app = api::App {
        store: Arc::clone(&store),
        token: args.token.as_str().into(),
    };
    let served = rt.block_on(serve(app, args.addr));
    // Engine calls still running (a body a client stopped sending) get a
    // few seconds; then the store is synced and closed.
    rt.shutdown_timeout(ENGINE_GRACE);
    let synced = store.sync();
    drop(store);
    served?;
    synced?;
    Ok(())
}

/// Resolves on SIGINT or SIGTERM (Ctrl-C only where there are no Unix
/// signals). The handlers are installed before the server says it listens.
#[cfg(unix)]
fn shutdown_signal() -> std::io::Result<impl std::future::Future<Output = ()>> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut int = signal(SignalKind::interrupt())?;
    let mut term = signal(SignalKind::terminate())?;
    Ok(async move {
        tokio::select! {
            _ = int.recv() => {}
            _ = term.recv() => {}
        }
    })
}

#[cfg(not(unix))]
fn shutdown_signal() -> std::io::Result<impl std::future::Future<Output = ()>> {
    Ok(async {
        let _ = tokio::signal::ctrl_c().await;
    })
}

async fn serve(app: api::App, addr: SocketAddr) -> Result<(), BoxError> {
    let signal = shutdown_signal()?;
    let listener = TcpListener::bind(addr).await?;
    println!("listening on http://{}", listener.local_addr()?);
    let (stop_tx, mut stop_rx) = tokio::sync::watch::channel(false);
    let server = axum::serve(listener, api::router(app))
        .with_graceful_shutdown(async move {
            signal.await;
            eprintln!("shutting down: finishing requests in flight");
            let _ = stop_tx.send(true);
        })
        .into_future();
    tokio::select! {
        r = server => r?,
        _ = async {
            let _ = stop_rx.wait_for(|stopped| *stopped).await;
            tokio::time::sleep(GRACE).await;
        } => eprintln!("shutting down: requests still open after {GRACE:?} are dropped"),
    }
    Ok(())
}
