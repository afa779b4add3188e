//! The project's main job until a CLI lands: ingest one large multipart
//! upload and measure it against the raw disk in the same run.
//!
//! ```text
//! cargo run --release --example ingest
//! cargo run --release --example ingest -- --size-mib 64 --part-mib 8 --rounds 1
//! ```
//!
//! Each round ingests `--size-mib` MiB as `--part-mib` MiB parts into a fresh
//! store (default options: `Durability::Sync`, CRC32C per 1 MiB block, no
//! digest), completes the upload, reads the object back zero-copy and checks
//! it; the baseline appends the same bytes to a plain file with
//! `write_all` + `sync_data` per part. Baseline and engine alternate (the
//! order flips every round) and the table reports medians. The part bytes
//! are generated once, before any timing. Everything lives in a temporary
//! directory under `--dir` (default: the system temp dir, `$TMPDIR`) that is
//! removed afterwards; on a tmpfs the fsyncs cost nothing and the numbers
//! say little about a disk.

use std::error::Error;
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use partstore::{ByteRange, LayerConfig, Options, PartBody, Store};

type Res<T> = Result<T, Box<dyn Error>>;

const MIB: u64 = 1 << 20;
const GIB: f64 = (1u64 << 30) as f64;
const LAYER: &str = "bench";
const KEY: &str = "ingest/object.bin";
const CONTENT_TYPE: &str = "application/octet-stream";
const USAGE: &str = "usage: ingest [--size-mib N] [--part-mib M] [--rounds R] [--dir PARENT]
  --size-mib N   object size in MiB (default 1024)
  --part-mib M   part size in MiB (default 8; 5..=96 unless one part holds everything)
  --rounds R     interleaved baseline/engine rounds (default 3)
  --dir PARENT   where the temporary directory goes (default: the system temp dir)";

struct Args {
    size_mib: u64,
    part_mib: u64,
    rounds: usize,
    dir: PathBuf,
}

fn parse_args() -> Res<Args> {
    let mut args = Args {
        size_mib: 1024,
        part_mib: 8,
        rounds: 3,
        dir: std::env::temp_dir(),
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        if flag == "-h" || flag == "--help" {
            println!("{USAGE}");
            std::process::exit(0);
        }
        if !["--size-mib", "--part-mib", "--rounds", "--dir"].contains(&flag.as_str()) {
            eprintln!("{USAGE}");
            return Err(format!("unknown argument {flag:?}").into());
        }
        let value = it.next().ok_or_else(|| format!("{flag} needs a value"))?;
        let positive = |v: &str| -> Res<u64> {
            match v.parse::<u64>() {
                Ok(n) if n > 0 => Ok(n),
                _ => Err(format!("{flag} wants a positive integer, got {v:?}").into()),
            }
        };
        match flag.as_str() {
            "--size-mib" => args.size_mib = positive(&value)?,
            "--part-mib" => args.part_mib = positive(&value)?,
            "--rounds" => args.rounds = usize::try_from(positive(&value)?)?,
            _ => args.dir = PathBuf::from(value), // --dir
        }
    }
    // The SPEC's part rules, checked here so a bad setting fails before any
    // work rather than at `complete_multipart`.
    let parts = args.size_mib.div_ceil(args.part_mib);
    let largest = args.part_mib.min(args.size_mib);
    if largest > 96 || (parts > 1 && args.part_mib < 5) || parts > 10_000 {
        return Err(format!(
            "{} MiB in {} MiB parts breaks the part rules \
             (each part <= 96 MiB, non-last parts >= 5 MiB, at most 10000 parts)",
            args.size_mib, args.part_mib
        )
        .into());
    }
    Ok(args)
}

/// Fills `buf` with xorshift64* output; `seed` makes every part different.
fn fill_pseudo_random(buf: &mut [u8], seed: u64) {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut words = buf.chunks_exact_mut(8);
    for w in &mut words {
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        w.copy_from_slice(&x.wrapping_mul(0x2545_F491_4F6C_DD1D).to_le_bytes());
    }
    for b in words.into_remainder() {
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        *b = x as u8;
    }
}

/// The object's bytes, as the parts that make it up.
struct Data {
    parts: Vec<Vec<u8>>,
    part_len: u64,
    size: u64,
    crc32c: u32,
}

impl Data {
    fn generate(size: u64, part_len: u64) -> Res<Data> {
        let mut parts = Vec::new();
        let mut crc = 0u32;
        let mut done = 0u64;
        while done < size {
            let len = part_len.min(size - done);
            let mut buf = vec![0u8; usize::try_from(len)?];
            fill_pseudo_random(&mut buf, parts.len() as u64 + 1);
            let c = crc32c::crc32c(&buf);
            crc = if done == 0 {
                c
            } else {
                crc32c::crc32c_combine(crc, c, buf.len())
            };
            parts.push(buf);
            done += len;
        }
        Ok(Data {
            parts,
            part_len,
            size,
            crc32c: crc,
        })
    }

    /// The object bytes `start..start+len`, copied out of the parts.
    fn range(&self, start: u64, len: u64) -> Res<Vec<u8>> {
        let mut out = Vec::with_capacity(usize::try_from(len)?);
        let mut pos = start;
        while pos < start + len {
            let part = self
                .parts
                .get(usize::try_from(pos / self.part_len)?)
                .ok_or("sample range outside the data")?;
            let from = usize::try_from(pos % self.part_len)?;
            let take = (part.len() - from).min(usize::try_from(start + len - pos)?);
            out.extend_from_slice(&part[from..from + take]);
            pos += take as u64;
        }
        Ok(out)
    }
}

struct EngineRun {
    ingest: Duration,
    complete: Duration,
    read: Duration,
}

/// One engine round in a fresh store: multipart upload, complete, read, check.
fn engine_round(parent: &Path, data: &Data) -> Res<EngineRun> {
    let dir = tempfile::Builder::new()
        .prefix("partstore-ingest-")
        .tempdir_in(parent)?;
    let store = Store::open(dir.path().join("store"), Options::default())?;
    store.create_layer(LAYER, LayerConfig::default())?;

    let t = Instant::now();
    let up = store.start_multipart(LAYER, KEY, CONTENT_TYPE)?;
    let mut part_crcs = Vec::with_capacity(data.parts.len());
    for (i, part) in data.parts.iter().enumerate() {
        let n = u32::try_from(i + 1)?;
        let info = store.upload_part(LAYER, &up, n, PartBody::new(&part[..], part.len() as u64))?;
        part_crcs.push((info.crc32c, info.size));
    }
    let ingest = t.elapsed();

    let t = Instant::now();
    let obj = store.complete_multipart(LAYER, &up)?;
    let complete = t.elapsed();

    // The full-object CRC the engine combined must equal both the one
    // combined from the CRCs the parts returned and the one of our bytes.
    let mut from_parts = 0u32;
    for (i, (crc, size)) in part_crcs.iter().enumerate() {
        from_parts = if i == 0 {
            *crc
        } else {
            crc32c::crc32c_combine(from_parts, *crc, usize::try_from(*size)?)
        };
    }
    if obj.size != data.size || obj.crc32c != from_parts || obj.crc32c != data.crc32c {
        return Err(format!(
            "object is {} bytes with CRC32C {:08x}; parts combine to {from_parts:08x}, \
             the data is {} bytes with {:08x}",
            obj.size, obj.crc32c, data.size, data.crc32c
        )
        .into());
    }

    // Zero-copy read of the whole object; `verify_reads` (on by default)
    // checks every block's CRC32C, so every byte is touched.
    let t = Instant::now();
    let blob = store.get(LAYER, KEY)?;
    let slices = blob.read_range("bytes=0-".parse::<ByteRange>()?)?;
    let mut read_len = 0u64;
    let mut touch = 0u8;
    for s in &slices {
        read_len += s.len() as u64;
        touch ^= s.iter().step_by(4096).fold(0u8, |a, b| a ^ b);
    }
    std::hint::black_box(touch);
    let read = t.elapsed();
    if read_len != data.size {
        return Err(format!("read {read_len} bytes of a {}-byte object", data.size).into());
    }

    // Not timed: the CRC of what was read, and a few ranges byte for byte.
    let mut crc = 0u32;
    for s in &slices {
        crc = crc32c::crc32c_append(crc, s);
    }
    if crc != data.crc32c {
        return Err(format!(
            "read bytes have CRC32C {crc:08x}, expected {:08x}",
            data.crc32c
        )
        .into());
    }
    let sample = 64 * 1024u64;
    let size = data.size;
    let mut starts = vec![0, size.saturating_sub(sample), size / 2, size / 3 + 12_345];
    if data.parts.len() > 1 {
        starts.push(data.part_len - sample / 2); // spans the first part boundary
    }
    for start in starts {
        let len = sample.min(size - start);
        let range = format!("bytes={start}-{}", start + len - 1).parse::<ByteRange>()?;
        let got: Vec<u8> = blob
            .read_range(range)?
            .iter()
            .flat_map(|s| s.iter().copied())
            .collect();
        if got != data.range(start, len)? {
            return Err(format!(
                "bytes {start}..{} differ from what was written",
                start + len
            )
            .into());
        }
    }

    drop(slices);
    drop(blob);
    drop(store);
    dir.close()?;
    Ok(EngineRun {
        ingest,
        complete,
        read,
    })
}

/// The baseline: the same parts appended to a plain file, each followed by
/// `fdatasync`. The file is created before the clock starts, as the store is.
fn raw_round(parent: &Path, data: &Data) -> Res<Duration> {
    let dir = tempfile::Builder::new()
        .prefix("partstore-raw-")
        .tempdir_in(parent)?;
    let mut file = File::create(dir.path().join("raw.bin"))?;
    let t = Instant::now();
    for part in &data.parts {
        file.write_all(part)?;
        file.sync_data()?;
    }
    let elapsed = t.elapsed();
    drop(file);
    dir.close()?;
    Ok(elapsed)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

fn gib_per_s(bytes: u64, d: Duration) -> f64 {
    bytes as f64 / GIB / d.as_secs_f64()
}

fn main() -> Res<()> {
    let args = parse_args()?;
    let size = args.size_mib * MIB;
    let part_len = args.part_mib * MIB;
    let data = Data::generate(size, part_len)?;
    println!(
        "partstore ingest: {} MiB as {} part(s) of up to {} MiB, Durability::Sync, \
         CRC32C only; {} round(s) in {}",
        args.size_mib,
        data.parts.len(),
        args.part_mib,
        args.rounds,
        args.dir.display()
    );

    let (mut ingest, mut raw, mut ratio, mut complete, mut read) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for round in 1..=args.rounds {
        // Alternate which one goes first, so neither always runs on a
        // disk the other just left busy.
        let (e, r) = if round % 2 == 1 {
            let r = raw_round(&args.dir, &data)?;
            (engine_round(&args.dir, &data)?, r)
        } else {
            let e = engine_round(&args.dir, &data)?;
            (e, raw_round(&args.dir, &data)?)
        };
        let (eg, rg) = (gib_per_s(size, e.ingest), gib_per_s(size, r));
        println!(
            "  round {round}: engine {eg:.3} GiB/s, raw {rg:.3} GiB/s, ratio {:.3}, \
             complete {:.2} ms, read {:.3} GiB/s",
            eg / rg,
            e.complete.as_secs_f64() * 1e3,
            gib_per_s(size, e.read)
        );
        ingest.push(eg);
        raw.push(rg);
        ratio.push(eg / rg);
        complete.push(e.complete.as_secs_f64() * 1e3);
        read.push(gib_per_s(size, e.read));
    }

    println!();
    let rows = [
        ("ingest, engine (GiB/s)", format!("{:.3}", median(ingest))),
        (
            "raw append + fdatasync (GiB/s)",
            format!("{:.3}", median(raw)),
        ),
        ("ratio engine / raw", format!("{:.3}", median(ratio))),
        (
            "complete_multipart (ms)",
            format!("{:.2}", median(complete)),
        ),
        (
            "read, zero-copy + block CRCs (GiB/s)",
            format!("{:.3}", median(read)),
        ),
    ];
    let head = format!("median of {} round(s)", args.rounds);
    println!("| {head:<38} | {:>8} |", "value");
    println!("|{:-<40}|{:->9}:|", "", "");
    for (label, value) in rows {
        println!("| {label:<38} | {value:>8} |");
    }
    Ok(())
}
