//! `partstore bench`: ingest generated data as a multipart upload, then
//! time complete, reads, `copy_part`, and the same bytes written with plain
//! `std::fs` in the same directory, in the same run.
//!
//! The data, the ingest and the raw baseline are the harness in
//! `harness.rs`, shared with the criterion bench `benches/ingest.rs`.
//!
//! Ctrl-C (SIGINT; also SIGTERM, SIGHUP) stops the run after the parts in
//! flight and removes the temporary store (`--tmp-dir` says where it goes);
//! the command then exits with 130.
//!
//! What is timed, and what is not:
//! - The data is generated (xorshift) into a small pool of part-sized
//!   buffers before any timing, and each part's digest (with `--digest`) and
//!   CRC32C are computed up front too, by the engine's hasher; part `n` is
//!   pool buffer `(n - 1) % pool` (the engine neither compresses nor
//!   deduplicates, so repeated content costs it the same).
//! - ingest: wall time of every `upload_part`, `--jobs` at once sharing one
//!   `&Store`; the engine checks the digest on its single pass.
//! - complete: `complete_multipart` of the upload; the object's CRC32C is
//!   then checked against the generated data's.
//! - read_range: the whole object as `read_range` of 64 MiB ranges: zero-copy
//!   slices, every block CRC-verified (`Options::verify_reads`).
//! - reader(): the whole object through `Blob::reader()` into a 1 MiB
//!   buffer (a copy), every block verified.
//! - copy_part: each part-sized range (up to 256 of them) copied by
//!   reference into a new upload, one call at a time; then its complete.
//! - raw: the same bytes written at their offsets into one plain file with
//!   `write_all_at`, `--jobs` at once, each part followed by `sync_data`
//!   (no sync with `--durability none`, as the engine).

use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use partstore::rules::{MAX_PART_NUMBER, MAX_PART_SIZE, MIB, MIN_PART_SIZE, PART_SIZE_MULTIPLE};
use partstore::{ByteRange, CopySource, Error, ErrorKind, LayerConfig, Options, Reason, Store};

use crate::harness::{self, Ctl, Data};
use crate::util::{bytes_bar, fmt_secs, human_bytes, io_err, parse_size, spinner};
use crate::{DigestChoice, DurabilityChoice};

/// The layer the benchmark writes into.
const LAYER: &str = "bench";
/// `read_range` asks for this much at once.
const READ_CHUNK: u64 = 64 * MIB;
/// `reader()` reads into a buffer of this size.
const READER_BUF: usize = MIB as usize;
/// At most this many `copy_part` calls are timed.
const COPY_PARTS_MAX: u32 = 256;

/// Options of `partstore bench`.
#[derive(clap::Args, Debug)]
pub struct BenchArgs {
    /// Bytes to ingest
    #[arg(long, value_parser = parse_size, default_value = "2GiB", value_name = "SIZE")]
    pub size: u64,
    /// Part size: 5MiB..=96MiB, a multiple of 1 MiB (or the whole size)
    #[arg(long, value_parser = parse_size, default_value = "8MiB", value_name = "SIZE")]
    pub part_size: u64,
    /// Digest of each part, computed up front and checked by the engine
    #[arg(long, value_enum, default_value_t = DigestChoice::None, value_name = "ALG")]
    pub digest: DigestChoice,
    /// Parts uploaded (and raw parts written) in parallel [default: number of CPUs]
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=256))]
    pub jobs: Option<u32>,
    /// Durability of the store (and whether raw writes are fsynced)
    #[arg(long, value_enum, default_value_t = DurabilityChoice::Sync, value_name = "MODE")]
    pub durability: DurabilityChoice,
    /// Print the figures as one JSON object instead of a table
    #[arg(long)]
    pub json: bool,
    /// Create the temporary store in DIR [default: $TMPDIR, else /tmp]
    #[arg(long, value_name = "DIR")]
    pub tmp_dir: Option<PathBuf>,
}

/// Set by SIGINT (Ctrl-C), SIGTERM or SIGHUP while the bench runs.
static INTERRUPTED: AtomicBool = AtomicBool::new(false);

/// Makes SIGINT, SIGTERM and SIGHUP set [`INTERRUPTED`] instead of ending
/// the process: the bench then starts no new part, read or copy, and
/// [`run`] removes the temporary store. The same signal a second time ends
/// the process at once (exit 128 + signal), without cleaning up.
fn catch_signals() -> partstore::Result<()> {
    use signal_hook::consts::signal::{SIGHUP, SIGINT, SIGTERM};
    for sig in [SIGINT, SIGTERM, SIGHUP] {
        // In this order: on the first signal the shutdown sees the flag
        // still clear, then the flag is set.
        signal_hook::flag::register_conditional_shutdown(sig, 128 + sig, &INTERRUPTED)
            .and_then(|_| signal_hook::flag::register(sig, &INTERRUPTED))
            .map_err(|e| io_err(format!("catching signal {sig}"), e))?;
    }
    Ok(())
}

/// Everything the benchmark measured.
#[derive(Debug)]
struct Figures {
    store: String,
    temporary: bool,
    size: u64,
    part_size: u64,
    parts: u32,
    jobs: u32,
    digest: &'static str,
    durability: &'static str,
    ingest: Duration,
    complete: Duration,
    read_range: Duration,
    reader: Duration,
    copy_parts: u32,
    copy_part_total: Duration,
    copy_complete: Duration,
    raw: Duration,
}

/// GiB per second of `bytes` in `d`.
fn gib_per_s(bytes: u64, d: Duration) -> f64 {
    bytes as f64 / (1u64 << 30) as f64 / d.as_secs_f64()
}

impl Figures {
    fn copy_part_mean(&self) -> Duration {
        self.copy_part_total / self.copy_parts.max(1)
    }

    fn ratio(&self) -> f64 {
        gib_per_s(self.size, self.ingest) / gib_per_s(self.size, self.raw)
    }

    fn table(&self) -> String {
        let rows: Vec<(String, Duration, Option<f64>)> = vec![
            (
                format!("ingest: upload_part x{}, {} job(s)", self.parts, self.jobs),
                self.ingest,
                Some(gib_per_s(self.size, self.ingest)),
            ),
            (
                format!("complete_multipart ({} parts)", self.parts),
                self.complete,
                None,
            ),
            (
                format!(
                    "read_range ({} ranges, zero-copy)",
                    human_bytes(READ_CHUNK.min(self.size))
                ),
                self.read_range,
                Some(gib_per_s(self.size, self.read_range)),
            ),
            (
                format!("reader() ({} reads)", human_bytes(READER_BUF as u64)),
                self.reader,
                Some(gib_per_s(self.size, self.reader)),
            ),
            (
                format!(
                    "copy_part ({} range), mean of {}",
                    human_bytes(self.part_size.min(self.size)),
                    self.copy_parts
                ),
                self.copy_part_mean(),
                None,
            ),
            (
                format!("complete_multipart of the copy ({} parts)", self.copy_parts),
                self.copy_complete,
                None,
            ),
            (
                format!(
                    "raw std::fs: write_all_at{} x{}",
                    if self.durability == "none" {
                        ""
                    } else {
                        " + sync_data"
                    },
                    self.parts
                ),
                self.raw,
                Some(gib_per_s(self.size, self.raw)),
            ),
        ];
        let w = rows.iter().map(|r| r.0.len()).max().unwrap_or(0);
        let mut s = format!(
            "partstore bench: {} as {} part(s) of {}, {} job(s), digest {}, durability {}\n\
             store: {}{}\n\n",
            human_bytes(self.size),
            self.parts,
            human_bytes(self.part_size.min(self.size)),
            self.jobs,
            self.digest,
            self.durability,
            self.store,
            if self.temporary {
                " (temporary, removed afterwards)"
            } else {
                ""
            }
        );
        s += &format!("{:<w$}  {:>10}  {:>8}\n", "operation", "time", "GiB/s");
        for (label, d, rate) in &rows {
            let rate = rate.map(|r| format!("{r:.2}")).unwrap_or_default();
            let row = format!("{label:<w$}  {:>10}  {rate:>8}", fmt_secs(d.as_secs_f64()));
            s += row.trim_end();
            s.push('\n');
        }
        s += &format!(
            "{:<w$}  {:>10}  {:>8}\n",
            "ingest / raw",
            "",
            format!("{:.2}x", self.ratio())
        );
        s += "\nReads come from the page cache (the data was just written) and verify\n\
              every block's CRC32C. GiB/s = 2^30 bytes per second.\n";
        s
    }

    fn json(&self) -> String {
        let num = |x: f64| {
            if x.is_finite() {
                format!("{x}")
            } else {
                "null".to_string()
            }
        };
        let secs = |d: Duration| num(d.as_secs_f64());
        let fields: Vec<(&str, String)> = vec![
            ("store", json_string(&self.store)),
            ("temporary", self.temporary.to_string()),
            ("size_bytes", self.size.to_string()),
            ("part_size_bytes", self.part_size.to_string()),
            ("parts", self.parts.to_string()),
            ("jobs", self.jobs.to_string()),
            ("digest", json_string(self.digest)),
            ("durability", json_string(self.durability)),
            ("ingest_seconds", secs(self.ingest)),
            ("ingest_gib_per_s", num(gib_per_s(self.size, self.ingest))),
            ("complete_seconds", secs(self.complete)),
            ("read_range_seconds", secs(self.read_range)),
            (
                "read_range_gib_per_s",
                num(gib_per_s(self.size, self.read_range)),
            ),
            ("reader_seconds", secs(self.reader)),
            ("reader_gib_per_s", num(gib_per_s(self.size, self.reader))),
            ("copy_parts", self.copy_parts.to_string()),
            ("copy_part_mean_seconds", secs(self.copy_part_mean())),
            ("copy_part_total_seconds", secs(self.copy_part_total)),
            ("copy_complete_seconds", secs(self.copy_complete)),
            ("raw_seconds", secs(self.raw)),
            ("raw_gib_per_s", num(gib_per_s(self.size, self.raw))),
            ("ingest_vs_raw", num(self.ratio())),
        ];
        let body: Vec<String> = fields
            .iter()
            .map(|(k, v)| format!("  \"{k}\": {v}"))
            .collect();
        format!("{{\n{}\n}}", body.join(",\n"))
    }
}

/// `s` as a JSON string literal. (The figures are a flat object of numbers
/// and a few strings, so they are formatted by hand rather than pulling
/// serde into the CLI.)
fn json_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Runs the benchmark and prints its table (or JSON) on stdout.
///
/// Ctrl-C (or SIGTERM, SIGHUP) stops it after the parts in flight: the
/// temporary store is removed (with `--store DIR`: the open upload is
/// aborted and the run's objects deleted) and the error is
/// [`harness::interrupted`].
pub fn run(args: &BenchArgs, store_dir: Option<PathBuf>) -> partstore::Result<()> {
    check_args(args)?;
    if store_dir.is_some() && args.tmp_dir.is_some() {
        return Err(Error::new(
            ErrorKind::BadRequest,
            Reason::InvalidArgument,
            "--tmp-dir places the temporary store; with --store DIR the bench uses DIR",
        ));
    }
    // Before the temporary store exists, so no signal can leave it behind.
    catch_signals()?;
    let tmp = match &store_dir {
        Some(_) => None,
        None => {
            let mut b = tempfile::Builder::new();
            b.prefix("partstore-bench-");
            let t = match &args.tmp_dir {
                Some(parent) => b.tempdir_in(parent),
                None => b.tempdir(),
            };
            Some(t.map_err(|e| io_err("creating a temporary store directory", e))?)
        }
    };
    let dir = match (&store_dir, &tmp) {
        (Some(d), _) => d.clone(),
        (None, Some(t)) => t.path().to_path_buf(),
        (None, None) => {
            return Err(Error::new(
                ErrorKind::BadRequest,
                Reason::InvalidArgument,
                "no store directory",
            ))
        }
    };
    let figures = measure(args, &dir, tmp.is_some(), &INTERRUPTED);
    let interrupted = matches!(&figures, Err(e) if harness::is_interrupted(e));
    if let Some(t) = tmp {
        let path = t.path().display().to_string();
        match t.close() {
            Ok(()) if interrupted => eprintln!("interrupted: removed the temporary store {path}"),
            Ok(()) => {}
            Err(e) => eprintln!("warning: could not remove the temporary store {path}: {e}"),
        }
    } else if interrupted {
        eprintln!("interrupted");
    }
    let figures = figures?;
    if args.json {
        println!("{}", figures.json());
    } else {
        print!("{}", figures.table());
    }
    Ok(())
}

fn check_args(args: &BenchArgs) -> partstore::Result<()> {
    if args.size == 0 {
        return Err(Error::new(
            ErrorKind::BadRequest,
            Reason::InvalidArgument,
            "--size must be at least 1 byte",
        ));
    }
    let ps = args.part_size;
    if ps == 0 {
        return Err(Error::new(
            ErrorKind::BadRequest,
            Reason::InvalidArgument,
            "--part-size 0: parts need at least 1 byte",
        ));
    }
    if ps > MAX_PART_SIZE {
        return Err(Error::new(
            ErrorKind::TooLarge,
            Reason::PartTooLarge,
            format!("--part-size {ps} is over the limit of {MAX_PART_SIZE} bytes (96 MiB)"),
        ));
    }
    if args.size > ps && (ps < MIN_PART_SIZE || !ps.is_multiple_of(PART_SIZE_MULTIPLE)) {
        return Err(Error::new(
            ErrorKind::BadRequest,
            Reason::InvalidArgument,
            format!(
                "--part-size {ps}: every part but the last must be at least {MIN_PART_SIZE} bytes \
             (5 MiB) and a multiple of {PART_SIZE_MULTIPLE} (1 MiB)"
            ),
        ));
    }
    let parts = args.size.div_ceil(ps);
    if parts > u64::from(MAX_PART_NUMBER) {
        return Err(Error::new(
            ErrorKind::BadRequest,
            Reason::InvalidArgument,
            format!(
            "--size {} in parts of {ps} needs {parts} parts, over the limit of {MAX_PART_NUMBER}",
            args.size
        ),
        ));
    }
    Ok(())
}

fn measure(
    args: &BenchArgs,
    dir: &Path,
    temporary: bool,
    cancel: &AtomicBool,
) -> partstore::Result<Figures> {
    let jobs = args.jobs.unwrap_or_else(crate::default_jobs);
    let quiet = Ctl {
        jobs: 1,
        progress: None,
        cancel,
    };
    let pb = spinner("generating data");
    let data = Data::new(args.size, args.part_size, args.digest.algorithm(), 0);
    pb.finish_and_clear();
    let data = data?;
    quiet.check()?;
    let size = data.size;
    let parts = data.parts;

    let store = Store::open(
        dir,
        Options::default().durability(args.durability.durability()),
    )?;
    match store.create_layer(LAYER, LayerConfig::default()) {
        Ok(()) => {}
        Err(e) if e.kind() == ErrorKind::Conflict => {}
        Err(e) => return Err(e),
    }
    let content_type = store
        .list_layers()
        .into_iter()
        .find(|(id, _)| id == LAYER)
        .and_then(|(_, c)| c.content_type)
        .unwrap_or_else(|| partstore::rules::DEFAULT_CONTENT_TYPE.to_string());
    let prefix = if temporary {
        "run".to_string()
    } else {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos();
        format!("run-{}-{nanos}", std::process::id())
    };
    let key = format!("{prefix}/object");
    let copy_key = format!("{prefix}/copy");
    let names = Names {
        key: &key,
        copy_key: &copy_key,
        content_type: &content_type,
    };
    let r = measure_in(args, dir, &store, &data, &names, jobs, cancel);
    if !temporary {
        // Also after a failure or an interruption: the run's objects go.
        let deleted = store
            .delete(LAYER, &key)
            .and_then(|()| store.delete(LAYER, &copy_key));
        match (&r, deleted) {
            (Ok(_), Err(e)) => return Err(e),
            (Err(_), Err(e)) => eprintln!("warning: could not delete the bench objects: {e}"),
            (_, Ok(())) => eprintln!(
                "bench objects deleted from layer {LAYER}; `partstore --store {} compact` \
                 reclaims their space",
                dir.display()
            ),
        }
    }
    let t = r?;
    Ok(Figures {
        store: dir.display().to_string(),
        temporary,
        size,
        part_size: args.part_size,
        parts,
        jobs: jobs.clamp(1, parts),
        digest: match args.digest {
            DigestChoice::None => "none",
            DigestChoice::Crc32c => "crc32c",
            DigestChoice::Md5 => "md5",
            DigestChoice::Sha1 => "sha1",
            DigestChoice::Sha256 => "sha256",
        },
        durability: match args.durability {
            DurabilityChoice::Sync => "sync",
            DurabilityChoice::Batched => "batched",
            DurabilityChoice::None => "none",
        },
        ingest: t.ingest,
        complete: t.complete,
        read_range: t.read_range,
        reader: t.reader,
        copy_parts: t.copy_parts,
        copy_part_total: t.copy_part_total,
        copy_complete: t.copy_complete,
        raw: t.raw,
    })
}

/// The keys and content type of one run.
struct Names<'a> {
    key: &'a str,
    copy_key: &'a str,
    content_type: &'a str,
}

/// The times of one run.
struct Times {
    ingest: Duration,
    complete: Duration,
    read_range: Duration,
    reader: Duration,
    copy_parts: u32,
    copy_part_total: Duration,
    copy_complete: Duration,
    raw: Duration,
}

/// The timed steps of [`measure`] on an open store; an upload left open by
/// a failure is aborted.
fn measure_in(
    args: &BenchArgs,
    dir: &Path,
    store: &Store,
    data: &Data,
    names: &Names<'_>,
    jobs: u32,
    cancel: &AtomicBool,
) -> partstore::Result<Times> {
    let Names {
        key,
        copy_key,
        content_type,
    } = *names;
    let size = data.size;
    let parts = data.parts;
    let quiet = Ctl {
        jobs: 1,
        progress: None,
        cancel,
    };

    // Ingest.
    let upload = store.start_multipart(LAYER, key, content_type)?;
    let pb = bytes_bar(size, "ingest");
    let inc = |n: u64| pb.inc(n);
    let ctl = Ctl {
        jobs,
        progress: Some(&inc),
        cancel,
    };
    let ingested = harness::upload_parts(store, LAYER, &upload, data, &ctl);
    pb.finish_and_clear();
    let ingest = match ingested {
        Ok(d) => d,
        Err(e) => {
            let _ = store.abort_multipart(LAYER, &upload);
            return Err(e);
        }
    };

    // Complete.
    let t = Instant::now();
    let obj = store.complete_multipart(LAYER, &upload)?;
    let complete = t.elapsed();
    quiet.check()?;
    let want = data.crc_of_first(parts);
    if obj.size != size || obj.crc32c != want {
        return Err(Error::new(
            ErrorKind::Corrupt,
            Reason::ChecksumMismatch,
            format!(
                "bench object {key}: the engine reports {} bytes with CRC32C {:08x}; \
             the generated data is {size} bytes with CRC32C {want:08x}",
                obj.size, obj.crc32c
            ),
        ));
    }

    // Reads.
    let blob = store.get(LAYER, key)?;
    let pb = bytes_bar(size, "read_range");
    let t = Instant::now();
    let mut pos = 0;
    let mut seen = 0u64;
    while pos < size {
        quiet.check()?;
        let last = (pos + READ_CHUNK).min(size) - 1;
        let slices = blob.read_range(ByteRange::Bounded { first: pos, last })?;
        let n: u64 = slices.iter().map(|s| s.len() as u64).sum();
        seen += n;
        pb.inc(n);
        std::hint::black_box(slices);
        pos = last + 1;
    }
    let read_range = t.elapsed();
    pb.finish_and_clear();
    check_read("read_range", seen, size)?;

    let pb = bytes_bar(size, "reader()");
    let mut buf = vec![0u8; READER_BUF];
    let mut reader = blob.reader();
    let t = Instant::now();
    let mut seen = 0u64;
    loop {
        quiet.check()?;
        match reader.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                seen += n as u64;
                pb.inc(n as u64);
                std::hint::black_box(&buf);
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(io_err(format!("reading {key} through reader()"), e)),
        }
    }
    let reader_time = t.elapsed();
    pb.finish_and_clear();
    check_read("reader()", seen, size)?;
    drop(blob);

    // copy_part of part-sized ranges, by reference, one at a time.
    let copy_parts = parts.min(COPY_PARTS_MAX);
    let copy_upload = store.start_multipart(LAYER, copy_key, content_type)?;
    let pb = bytes_bar(
        data.offset(copy_parts) + data.part(copy_parts).len() as u64,
        "copy_part",
    );
    let mut copy_part_total = Duration::ZERO;
    for n in 1..=copy_parts {
        let first = data.offset(n);
        let last = first + data.part(n).len() as u64 - 1;
        let source = CopySource::new(key, ByteRange::Bounded { first, last });
        let r = quiet.check().and_then(|()| {
            let t = Instant::now();
            let r = store.copy_part(LAYER, &copy_upload, n, source);
            copy_part_total += t.elapsed();
            r
        });
        if let Err(e) = r {
            let _ = store.abort_multipart(LAYER, &copy_upload);
            return Err(e);
        }
        pb.inc(last - first + 1);
    }
    pb.finish_and_clear();
    let t = Instant::now();
    let copy = store.complete_multipart(LAYER, &copy_upload)?;
    let copy_complete = t.elapsed();
    let want = data.crc_of_first(copy_parts);
    if copy.crc32c != want {
        return Err(Error::new(
            ErrorKind::Corrupt,
            Reason::ChecksumMismatch,
            format!(
                "bench copy {copy_key}: CRC32C {:08x}, expected {want:08x}",
                copy.crc32c
            ),
        ));
    }

    // The same bytes with plain std::fs, in the same directory.
    let pb = bytes_bar(size, "raw fs");
    let inc = |n: u64| pb.inc(n);
    let ctl = Ctl {
        jobs,
        progress: Some(&inc),
        cancel,
    };
    let raw_path = dir.join(format!("bench-raw-{}.bin", std::process::id()));
    let sync = args.durability != DurabilityChoice::None;
    let raw = harness::raw_baseline(&raw_path, data, sync, false, &ctl);
    pb.finish_and_clear();

    Ok(Times {
        ingest,
        complete,
        read_range,
        reader: reader_time,
        copy_parts,
        copy_part_total,
        copy_complete,
        raw: raw?,
    })
}

fn check_read(what: &str, seen: u64, size: u64) -> partstore::Result<()> {
    if seen == size {
        Ok(())
    } else {
        Err(Error::new(
            ErrorKind::Corrupt,
            Reason::ChecksumMismatch,
            format!("bench: {what} returned {seen} bytes of a {size}-byte object"),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_strings_are_escaped() {
        assert_eq!(json_string("a\"b\\c\n"), "\"a\\\"b\\\\c\\n\"");
        assert_eq!(json_string("\u{1}"), "\"\\u0001\"");
    }

    #[test]
    fn data_parts_cover_the_size() -> partstore::Result<()> {
        let d = Data::new(
            (12 << 20) + 5,
            5 << 20,
            Some(partstore::DigestAlgorithm::Md5),
            0,
        )?;
        assert_eq!(d.parts, 3);
        let total: u64 = (1..=3).map(|n| d.part(n).len() as u64).sum();
        assert_eq!(total, (12 << 20) + 5);
        let mut all = Vec::new();
        for n in 1..=3 {
            all.extend_from_slice(d.part(n));
        }
        assert_eq!(d.crc_of_first(3), crc32c::crc32c(&all));
        // The engine's hasher agrees with the md-5 crate on its own.
        use md5::Digest as _;
        assert_eq!(
            d.digest(3).map(|x| x.to_hex()),
            Some(hex::encode(md5::Md5::digest(d.part(3))))
        );
        Ok(())
    }

    #[test]
    fn digests_of_known_vectors() -> partstore::Result<()> {
        for (alg, data, want) in [
            (
                partstore::DigestAlgorithm::Crc32c,
                &b"hello world"[..],
                "CRC-32C:c99465aa",
            ),
            (
                partstore::DigestAlgorithm::Md5,
                &b"hello world"[..],
                "MD5:5eb63bbbe01eeed093cb22bb8f5acdc3",
            ),
            (
                partstore::DigestAlgorithm::Sha256,
                &b""[..],
                "SHA256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
            ),
        ] {
            assert_eq!(harness::digest_of(alg, data)?.to_string(), want);
        }
        Ok(())
    }
}
