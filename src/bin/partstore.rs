//! `partstore`: benchmark a partstore engine, and operate a store directory.
//!
//! `partstore bench` is the main job: it ingests generated data as a
//! multipart upload into a temporary store (or `--store DIR`), then prints
//! ingest, complete, read (`read_range` and `reader()`) and `copy_part`
//! figures next to the same bytes written and fsynced with plain `std::fs`
//! in the same run. `cargo run --release -- bench`.
//!
//! The other commands work on the store in `--store DIR` (default
//! `./partstore-data`): `layer create|ls`, `put`, `get`, `cp`, `ls`, `stat`,
//! `rm`, `uploads`, `abort`, `expire`, `verify`, `compact` and `stats`. Only
//! `layer create` creates a store directory; the others need it to exist.
//! Sizes are written `8MiB`, `1GiB` (binary, as in the SPEC: `MB` = `MiB`),
//! durations `30s`, `24h`. Long work shows a progress bar on stderr when
//! stderr is a terminal.
//!
//! Errors print `error: <message>` on stderr and exit with a code that tells
//! the engine's [`partstore::ErrorKind`] apart:
//!
//! | code | meaning |
//! |---|---|
//! | 0 | success |
//! | 1 | an error of a kind this binary does not know |
//! | 2 | usage error (bad arguments; clap's code) |
//! | 3 | BadRequest |
//! | 4 | NotFound |
//! | 5 | Conflict (e.g. the store is open in another process) |
//! | 6 | TooLarge |
//! | 7 | RangeNotSatisfiable |
//! | 8 | Corrupt (also: `verify` found corrupt blocks) |
//! | 9 | Io |
//! | 130 | `bench` interrupted by Ctrl-C, SIGTERM or SIGHUP (its temporary store removed; a second signal ends it at once with 128 + the signal) |
#![warn(clippy::unwrap_used, clippy::expect_used)]

#[path = "partstore/bench.rs"]
mod bench;
#[path = "partstore/harness.rs"]
mod harness;
#[path = "partstore/put.rs"]
mod put;
#[path = "partstore/stdin.rs"]
mod stdin;
#[path = "partstore/util.rs"]
mod util;

use std::fs::File;
use std::io::{Seek, SeekFrom, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::{Duration, SystemTime};

use clap::{Parser, Subcommand, ValueEnum};
use partstore::rules::{
    MAX_PART_NUMBER, MAX_PART_SIZE, MAX_PUT_OBJECT_SIZE, MIB, MIN_PART_SIZE, PART_SIZE_MULTIPLE,
};
use partstore::{
    ByteRange, CopySource, DigestAlgorithm, Error, ErrorKind, LayerConfig, ListItem, ListOptions,
    ObjectInfo, Options, PartBody, Reason, Store, UploadId, UploadOptions,
};

use put::{put, PutRequest};
use util::{bytes_bar, fmt_time, human_bytes, io_err, parse_duration, parse_size, spinner};

/// The store directory of every command but `bench` when `--store` is not
/// given.
const DEFAULT_STORE: &str = "./partstore-data";

/// Default part size of a multipart `put` (raised when the file needs more
/// than 10,000 parts of it).
pub(crate) const DEFAULT_PUT_PART_SIZE: u64 = 8 * MIB;

/// How much of an object `get` asks `read_range` for at once.
const GET_CHUNK: u64 = 64 * MIB;

const EXIT_CODES_HELP: &str = "\
Exit codes:
  0  success            5  Conflict (e.g. store locked)
  1  unknown error      6  TooLarge
  2  usage error        7  RangeNotSatisfiable
  3  BadRequest         8  Corrupt (also: verify found corruption)
  4  NotFound           9  Io
  130  bench interrupted by Ctrl-C (its temporary store is removed)

Examples:
  cargo run --release -- bench
  partstore layer create maps
  partstore put maps tiles/eu.bin ./eu.bin --part-size 16MiB --jobs 4
  partstore get maps tiles/eu.bin --range bytes=0-1023 -o head.bin";

/// Benchmark the partstore engine, or operate a store directory.
#[derive(Parser, Debug)]
#[command(name = "partstore", version, after_help = EXIT_CODES_HELP)]
struct Cli {
    /// Store directory [default: ./partstore-data; bench: a temporary store
    /// removed afterwards]
    #[arg(long, global = true, value_name = "DIR")]
    store: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

/// A digest algorithm to compute up front and have the engine check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum DigestChoice {
    /// No digest.
    None,
    /// CRC-32C.
    Crc32c,
    /// MD5.
    Md5,
    /// SHA-1.
    Sha1,
    /// SHA-256.
    Sha256,
}

impl DigestChoice {
    /// The engine's algorithm, if any.
    pub fn algorithm(self) -> Option<DigestAlgorithm> {
        match self {
            DigestChoice::None => None,
            DigestChoice::Crc32c => Some(DigestAlgorithm::Crc32c),
            DigestChoice::Md5 => Some(DigestAlgorithm::Md5),
            DigestChoice::Sha1 => Some(DigestAlgorithm::Sha1),
            DigestChoice::Sha256 => Some(DigestAlgorithm::Sha256),
        }
    }
}

/// The store's durability mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum DurabilityChoice {
    /// fdatasync before every acknowledgement.
    Sync,
    /// Part data synced; records synced every few milliseconds.
    Batched,
    /// Left to the OS.
    None,
}

impl DurabilityChoice {
    /// The engine's mode.
    pub fn durability(self) -> partstore::Durability {
        match self {
            DurabilityChoice::Sync => partstore::Durability::Sync,
            DurabilityChoice::Batched => partstore::Durability::Batched,
            DurabilityChoice::None => partstore::Durability::None,
        }
    }
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Measure ingest, complete, read and copy against plain std::fs writes
    #[command(after_help = "Examples:
  cargo run --release -- bench
  partstore bench --size 512MiB --part-size 16MiB --jobs 4 --digest sha256
  partstore bench --durability none --json")]
    Bench(bench::BenchArgs),
    /// Create or list layers
    #[command(
        subcommand,
        after_help = "Examples:
  partstore layer create maps --content-type application/octet-stream
  partstore layer ls"
    )]
    Layer(LayerCommand),
    /// Upload a file, or standard input, as an object (multipart when over
    /// 192 MiB or with --part-size; from stdin, when over one part)
    #[command(after_help = "Examples:
  partstore put maps tiles/eu.bin ./eu.bin
  partstore put maps tiles/eu.bin ./eu.bin --part-size 16MiB --jobs 4 --digest sha256
  tar c ./tiles | partstore put maps backups/tiles.tar - --part-size 32MiB

With FILE `-`, standard input is read in parts of the part size (default
8 MiB): input that fits one part is one put; longer input is a multipart
upload of at most 10,000 such parts, uploaded one at a time while the next is
read, in the memory of two parts. (A file named `-` is `./-`.)")]
    Put {
        /// Layer id
        layer: String,
        /// Object key
        key: String,
        /// Local file to upload, or `-` for standard input
        file: PathBuf,
        /// Upload as parts of this size (5MiB..=96MiB, a multiple of 1 MiB)
        /// [default: 8MiB, raised for files that need more than 10,000 parts]
        #[arg(long, value_parser = parse_size, value_name = "SIZE")]
        part_size: Option<u64>,
        /// Parts uploaded in parallel [default: number of CPUs; stdin: 1]
        #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=256))]
        jobs: Option<u32>,
        /// Digest of each part, checked by the engine (each part is read once
        /// into memory, hashed and uploaded from there: one part per job)
        #[arg(long, value_enum, default_value_t = DigestChoice::None, value_name = "ALG")]
        digest: DigestChoice,
        /// Content type [default: the layer's, or application/octet-stream]
        #[arg(long, value_name = "TYPE")]
        content_type: Option<String>,
    },
    /// Write an object (or a range of it) to stdout or a file
    #[command(after_help = "Examples:
  partstore get maps tiles/eu.bin -o eu.bin
  partstore get maps tiles/eu.bin --range bytes=-1024 | xxd")]
    Get {
        /// Layer id
        layer: String,
        /// Object key
        key: String,
        /// One HTTP range: bytes=a-b, bytes=a- or bytes=-n
        #[arg(long, value_name = "RANGE")]
        range: Option<String>,
        /// Output file [default: stdout]
        #[arg(short, long, value_name = "FILE")]
        output: Option<PathBuf>,
    },
    /// Copy an object, or a range of it, without copying bytes
    #[command(after_help = "Examples:
  partstore cp maps tiles/eu.bin tiles/eu-copy.bin
  partstore cp maps tiles/eu.bin tiles/eu-head.bin --range bytes=0-16777215

With --range, the range must give both bounds, start on a multiple of 1 MiB
and be at most 96 MiB (it becomes part 1 of a new multipart upload).")]
    Cp {
        /// Layer id
        layer: String,
        /// Source key
        src: String,
        /// Destination key
        dst: String,
        /// Copy only bytes=a-b of the source
        #[arg(long, value_name = "RANGE")]
        range: Option<String>,
    },
    /// List objects and folders
    #[command(after_help = "Examples:
  partstore ls maps
  partstore ls maps --parent tiles
  partstore ls maps --deep

Output: SIZE  LAST-MODIFIED  KEY per object; folders as DIR  KEY/.")]
    Ls {
        /// Layer id
        layer: String,
        /// Folder to list [default: the root]
        #[arg(long, value_name = "FOLDER", default_value = "")]
        parent: String,
        /// Every object below the folder, no folders
        #[arg(long)]
        deep: bool,
    },
    /// Show an object's metadata
    #[command(after_help = "Example:
  partstore stat maps tiles/eu.bin")]
    Stat {
        /// Layer id
        layer: String,
        /// Object key
        key: String,
    },
    /// Delete an object (deleting a missing key succeeds)
    #[command(after_help = "Example:
  partstore rm maps tiles/eu.bin")]
    Rm {
        /// Layer id
        layer: String,
        /// Object key
        key: String,
    },
    /// List a layer's open multipart uploads
    #[command(after_help = "Example:
  partstore uploads maps

Output: TOKEN  PARTS  BYTES  LAST-ACTIVITY  KEY per open upload.")]
    Uploads {
        /// Layer id
        layer: String,
    },
    /// Abort an open multipart upload
    #[command(after_help = "Example:
  partstore abort maps 6f1c0e2d9a8b47c3b2a1908f7e6d5c4b")]
    Abort {
        /// Layer id
        layer: String,
        /// Upload token, as `uploads` prints it
        token: String,
    },
    /// Abort a layer's uploads idle for at least a while
    #[command(after_help = "Example:
  partstore expire maps --idle 24h")]
    Expire {
        /// Layer id
        layer: String,
        /// Idle time, e.g. 30s, 24h, 7d
        #[arg(long, value_parser = parse_duration, value_name = "DURATION")]
        idle: Duration,
    },
    /// Check the CRC32C of every live block; exits 8 if any is corrupt
    #[command(after_help = "Example:
  partstore verify")]
    Verify,
    /// Reclaim space of replaced, aborted and deleted data
    #[command(after_help = "Example:
  partstore compact")]
    Compact,
    /// Show live and garbage bytes, segments, objects and uploads
    #[command(after_help = "Example:
  partstore stats")]
    Stats,
}

#[derive(Subcommand, Debug)]
enum LayerCommand {
    /// Create a layer (creates the store directory if missing)
    #[command(after_help = "Examples:
  partstore layer create maps
  partstore layer create images --content-type image/png")]
    Create {
        /// Layer id: 1..=50 of A-Z a-z 0-9 - _ .
        name: String,
        /// Every upload into the layer must use this content type
        #[arg(long, value_name = "TYPE")]
        content_type: Option<String>,
        /// Every upload into the layer must use this content encoding
        #[arg(long, value_name = "ENCODING")]
        content_encoding: Option<String>,
    },
    /// List layers
    #[command(after_help = "Example:
  partstore layer ls

Output: NAME  CONTENT-TYPE  CONTENT-ENCODING ('-' when unset).")]
    Ls,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        // The bench has said what it cleaned up.
        Err(e) if harness::is_interrupted(&e) => ExitCode::from(130),
        Err(e) => {
            let quiet = matches!(&e, Error::Io { source, .. }
                if source.kind() == std::io::ErrorKind::BrokenPipe);
            if !quiet {
                eprintln!("error: {e}");
            }
            ExitCode::from(util::exit_code(e.kind()))
        }
    }
}

fn run(cli: Cli) -> partstore::Result<()> {
    let explicit = cli.store.clone();
    let dir = cli.store.unwrap_or_else(|| PathBuf::from(DEFAULT_STORE));
    match cli.command {
        Command::Bench(args) => bench::run(&args, explicit),
        Command::Layer(LayerCommand::Create {
            name,
            content_type,
            content_encoding,
        }) => {
            let store = open(&dir, true)?;
            let config = LayerConfig {
                content_type,
                content_encoding,
                ..LayerConfig::default()
            };
            store.create_layer(&name, config)
        }
        Command::Layer(LayerCommand::Ls) => layer_ls(&open(&dir, false)?),
        Command::Put {
            layer,
            key,
            file,
            part_size,
            jobs,
            digest,
            content_type,
        } => {
            let store = open(&dir, false)?;
            let req = PutRequest {
                layer: &layer,
                key: &key,
                file: &file,
                part_size,
                jobs: jobs.unwrap_or_else(default_jobs),
                digest: digest.algorithm(),
                content_type,
            };
            let info = if file.as_os_str() == "-" {
                stdin::put(&store, &req)?
            } else {
                put(&store, &req)?
            };
            println!(
                "{key}: {} bytes ({}), {} part(s), crc32c {:08x}, etag {}",
                info.size,
                human_bytes(info.size),
                info.part_count,
                info.crc32c,
                info.etag
            );
            Ok(())
        }
        Command::Get {
            layer,
            key,
            range,
            output,
        } => get(&open(&dir, false)?, &layer, &key, range.as_deref(), output),
        Command::Cp {
            layer,
            src,
            dst,
            range,
        } => {
            let info = cp(&open(&dir, false)?, &layer, &src, &dst, range.as_deref())?;
            println!(
                "{dst}: {} bytes ({}), {} part(s), crc32c {:08x}, etag {}",
                info.size,
                human_bytes(info.size),
                info.part_count,
                info.crc32c,
                info.etag
            );
            Ok(())
        }
        Command::Ls {
            layer,
            parent,
            deep,
        } => ls(&open(&dir, false)?, &layer, &parent, deep),
        Command::Stat { layer, key } => {
            let info = open(&dir, false)?.head(&layer, &key)?;
            print_stat(&info);
            Ok(())
        }
        Command::Rm { layer, key } => open(&dir, false)?.delete(&layer, &key),
        Command::Uploads { layer } => uploads(&open(&dir, false)?, &layer),
        Command::Abort { layer, token } => {
            let upload: UploadId = token.parse()?;
            open(&dir, false)?.abort_multipart(&layer, &upload)
        }
        Command::Expire { layer, idle } => {
            let n = expire(&open(&dir, false)?, &layer, idle)?;
            println!("aborted {n} upload(s) of layer {layer} idle for at least {idle:?}");
            Ok(())
        }
        Command::Verify => verify(&open(&dir, false)?),
        Command::Compact => {
            let store = open(&dir, false)?;
            let pb = spinner("compacting");
            let r = store.compact();
            pb.finish_and_clear();
            let r = r?;
            println!(
                "moved {} ({} bytes), reclaimed {} ({} bytes), removed {} segment(s)",
                human_bytes(r.bytes_moved),
                r.bytes_moved,
                human_bytes(r.bytes_reclaimed),
                r.bytes_reclaimed,
                r.segments_removed
            );
            Ok(())
        }
        Command::Stats => {
            stats(&open(&dir, false)?);
            Ok(())
        }
    }
}

/// Parallelism when `--jobs` is not given: the number of CPUs.
fn default_jobs() -> u32 {
    std::thread::available_parallelism()
        .map(|n| n.get() as u32)
        .unwrap_or(1)
}

/// Opens the store in `dir` with default options; unless `create`, a missing
/// directory is NotFound instead of a new empty store.
fn open(dir: &Path, create: bool) -> partstore::Result<Store> {
    if !create && !dir.is_dir() {
        return Err(Error::new(
            ErrorKind::NotFound,
            Reason::InvalidArgument,
            format!(
                "store directory {} does not exist (create a layer first, or pass --store DIR)",
                dir.display()
            ),
        ));
    }
    let pb = spinner("opening store");
    let r = Store::open(dir, Options::default());
    pb.finish_and_clear();
    r
}

fn layer_ls(store: &Store) -> partstore::Result<()> {
    let layers = store.list_layers();
    let w = layers.iter().map(|(id, _)| id.len()).max().unwrap_or(0);
    let wt = layers
        .iter()
        .map(|(_, c)| c.content_type.as_deref().unwrap_or("-").len())
        .max()
        .unwrap_or(0);
    let mut out = std::io::stdout().lock();
    for (id, c) in &layers {
        writeln!(
            out,
            "{id:<w$}  {:<wt$}  {}",
            c.content_type.as_deref().unwrap_or("-"),
            c.content_encoding.as_deref().unwrap_or("-")
        )
        .map_err(|e| io_err("writing to stdout", e))?;
    }
    Ok(())
}

fn get(
    store: &Store,
    layer: &str,
    key: &str,
    range: Option<&str>,
    output: Option<PathBuf>,
) -> partstore::Result<()> {
    let blob = store.get(layer, key)?;
    let span = match range {
        Some(r) => r.parse::<ByteRange>()?.resolve(blob.size())?,
        None => 0..blob.size(),
    };
    let (mut out, name) = match &output {
        Some(p) => (
            File::create(p).map_err(|e| io_err(format!("creating {}", p.display()), e))?,
            p.display().to_string(),
        ),
        None => {
            // An unbuffered handle on fd 1: slices go straight from the map
            // to write(2), not through stdout's line buffer.
            use std::os::fd::AsFd as _;
            let fd = std::io::stdout()
                .as_fd()
                .try_clone_to_owned()
                .map_err(|e| io_err("duplicating stdout", e))?;
            (File::from(fd), "stdout".to_string())
        }
    };
    let pb = bytes_bar(span.end - span.start, "get");
    let mut write_all = || -> partstore::Result<()> {
        let mut pos = span.start;
        while pos < span.end {
            let last = (pos + GET_CHUNK).min(span.end) - 1;
            for slice in blob.read_range(ByteRange::Bounded { first: pos, last })? {
                out.write_all(&slice)
                    .map_err(|e| io_err(format!("writing to {name}"), e))?;
                pb.inc(slice.len() as u64);
            }
            pos = last + 1;
        }
        out.flush()
            .map_err(|e| io_err(format!("writing to {name}"), e))
    };
    let r = write_all();
    pb.finish_and_clear();
    if r.is_err() {
        if let Some(p) = &output {
            let _ = std::fs::remove_file(p);
        }
    }
    r
}

fn cp(
    store: &Store,
    layer: &str,
    src: &str,
    dst: &str,
    range: Option<&str>,
) -> partstore::Result<ObjectInfo> {
    let Some(range) = range else {
        return store.copy_object(layer, dst, src);
    };
    let range: ByteRange = range.parse()?;
    let info = store.head(layer, src)?;
    let mut opts = UploadOptions::new(info.content_type);
    if let Some(ce) = info.content_encoding {
        opts = opts.content_encoding(ce);
    }
    let upload = store.start_multipart(layer, dst, opts)?;
    let r = store
        .copy_part(layer, &upload, 1, CopySource::new(src, range))
        .and_then(|_| store.complete_multipart(layer, &upload));
    if r.is_err() {
        let _ = store.abort_multipart(layer, &upload);
    }
    r
}

fn ls(store: &Store, layer: &str, parent: &str, deep: bool) -> partstore::Result<()> {
    let mut opts = ListOptions::default().parent(parent).deep(deep);
    let mut out = std::io::stdout().lock();
    loop {
        let page = store.list(layer, &opts)?;
        for item in &page.items {
            let line = match item {
                ListItem::Object(o) => {
                    format!("{:>14}  {}  {}", o.size, fmt_time(o.last_modified), o.key)
                }
                ListItem::Prefix(p) => format!("{:>14}  {:20}  {p}/", "DIR", ""),
            };
            writeln!(out, "{line}").map_err(|e| io_err("writing to stdout", e))?;
        }
        match page.next_page_token {
            Some(t) => opts = opts.page_token(t),
            None => return Ok(()),
        }
    }
}

fn print_stat(o: &ObjectInfo) {
    println!("key:              {}", o.key);
    println!("size:             {} ({})", o.size, human_bytes(o.size));
    println!("content-type:     {}", o.content_type);
    println!(
        "content-encoding: {}",
        o.content_encoding.as_deref().unwrap_or("-")
    );
    println!("last-modified:    {}", fmt_time(o.last_modified));
    println!("crc32c:           {:08x}", o.crc32c);
    println!("etag:             {}", o.etag);
    println!("parts:            {}", o.part_count);
}

fn uploads(store: &Store, layer: &str) -> partstore::Result<()> {
    let mut out = std::io::stdout().lock();
    for u in store.list_uploads(layer)? {
        let bytes = match store.upload_status(layer, &u.upload)? {
            partstore::UploadStatus::Open { bytes, .. } => bytes,
            partstore::UploadStatus::Completed => 0,
        };
        writeln!(
            out,
            "{}  {:>5}  {:>14}  {}  {}",
            u.upload,
            u.parts,
            bytes,
            fmt_time(u.last_activity),
            u.key
        )
        .map_err(|e| io_err("writing to stdout", e))?;
    }
    Ok(())
}

/// Aborts the open uploads of `layer` idle for at least `idle`. (The
/// engine's `expire_uploads` covers every layer; the command is per layer.)
fn expire(store: &Store, layer: &str, idle: Duration) -> partstore::Result<usize> {
    let now = SystemTime::now();
    let mut n = 0;
    for u in store.list_uploads(layer)? {
        let idle_for = now.duration_since(u.last_activity).unwrap_or_default();
        if idle_for >= idle {
            match store.abort_multipart(layer, &u.upload) {
                Ok(()) => n += 1,
                Err(e) if e.kind() == ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
        }
    }
    Ok(n)
}

fn verify(store: &Store) -> partstore::Result<()> {
    let pb = spinner("verifying every live block");
    let r = store.verify();
    pb.finish_and_clear();
    let r = r?;
    for line in &r.corrupt {
        println!("corrupt: {line}");
    }
    println!(
        "checked {} extents, {} blocks, {} ({} bytes): {}",
        r.extents,
        r.blocks,
        human_bytes(r.bytes),
        r.bytes,
        if r.is_clean() {
            "clean".to_string()
        } else {
            format!("{} corrupt block(s)", r.corrupt.len())
        }
    );
    if r.is_clean() {
        Ok(())
    } else {
        Err(Error::new(
            ErrorKind::Corrupt,
            Reason::ChecksumMismatch,
            format!(
                "{} of {} blocks failed their CRC32C",
                r.corrupt.len(),
                r.blocks
            ),
        ))
    }
}

fn stats(store: &Store) {
    let s = store.stats();
    println!("objects:  {}", s.objects);
    println!("uploads:  {}", s.uploads);
    println!(
        "live:     {} ({} bytes)",
        human_bytes(s.live_bytes),
        s.live_bytes
    );
    println!(
        "garbage:  {} ({} bytes)",
        human_bytes(s.garbage_bytes),
        s.garbage_bytes
    );
    println!("segments: {}", s.segments);
    if !s.per_segment.is_empty() {
        println!();
        println!(
            "{:>10}  {:>14}  {:>14}  {:>14}",
            "segment", "data", "live", "garbage"
        );
        for seg in &s.per_segment {
            println!(
                "{:>10}  {:>14}  {:>14}  {:>14}",
                seg.id, seg.data_bytes, seg.live_bytes, seg.garbage_bytes
            );
        }
    }
}
