//! Odd but legal arguments (issue 14, items 3–5): durations that do not fit
//! in milliseconds, a zero (or tiny) batch interval, and expiry racing a
//! part that is still streaming in.
//!
//! - `expire_uploads` with an idle time past what `u64` milliseconds hold
//!   (`Duration::from_secs(18_446_744_073_709_552)` wrapped to 384 ms,
//!   `Duration::MAX`, ...) means "never": it expires nothing.
//! - `Durability::Batched` with `batch_interval(Duration::ZERO)` opens, does
//!   not spin while idle (the process's CPU time over 300 ms of idleness is
//!   measured), and acknowledges only durable writes (checked on the
//!   fault-injecting backend's model of the disk, against a long-interval
//!   `Batched` store that does lose writes, so the check can fail).
//! - A caller's reader that panics mid-body unwinds through every ingest
//!   path and leaves the store usable.
//! - An upload whose part is blocked mid-body is not idle: `expire_uploads`
//!   (even with a zero idle time) leaves it, and the part then succeeds.
//!
//! The CPU-time tests measure the whole process, so every test here holds
//! one lock while it runs.

mod common;

use std::io::Read;
use std::path::Path;
use std::sync::mpsc;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use common::faulty::{Faulty, Rng};
use common::gen;
use partstore::{
    Durability, ErrorKind, LayerConfig, Options, PartBody, Reason, Store, UploadStatus,
};

const L: &str = "l";
const OCTET: &str = "application/octet-stream";
const MIB: usize = 1 << 20;

static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

fn store_in(dir: &Path, opts: Options) -> Store {
    let s = Store::open(dir, opts).unwrap();
    s.create_layer(L, LayerConfig::default()).unwrap();
    s
}

fn is_open(s: &Store, up: &partstore::UploadId) -> bool {
    matches!(s.upload_status(L, up), Ok(UploadStatus::Open { .. }))
}

#[test]
fn idle_times_past_u64_milliseconds_expire_nothing() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let s = store_in(dir.path(), Options::default());
    let up = s.start_multipart(L, "u", OCTET).unwrap();
    s.upload_part(L, &up, 1, PartBody::new(&b"part"[..], 4))
        .unwrap();
    // Idle longer than what the wrapped value of the first duration below
    // (18_446_744_073_709_552 s = 2^64 ms + 384 ms) would have meant.
    std::thread::sleep(Duration::from_millis(1_600));
    let huge = [
        Duration::from_secs(18_446_744_073_709_552),
        Duration::MAX,
        Duration::from_secs(u64::MAX),
        Duration::from_millis(u64::MAX),
        Duration::from_millis(u64::MAX) + Duration::from_millis(1),
        Duration::new(u64::MAX / 1000 + 1, 0),
    ];
    for idle in huge {
        assert_eq!(s.expire_uploads(idle).unwrap(), 0, "idle {idle:?}");
        assert!(is_open(&s, &up), "idle {idle:?} expired the upload");
    }
    assert_eq!(s.list_parts(L, &up).unwrap().len(), 1);
    // The same upload does expire for an idle time it has exceeded.
    assert_eq!(s.expire_uploads(Duration::from_millis(500)).unwrap(), 1);
    let e = s.upload_status(L, &up).unwrap_err();
    assert_eq!(
        (e.kind(), e.reason()),
        (ErrorKind::NotFound, Some(Reason::UnknownUpload))
    );
}

/// CPU time (user + system) of the whole process so far, from
/// /proc/self/stat (clock ticks; 10 ms each on Linux).
fn process_cpu() -> Duration {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap();
    // Fields after the command name (which may hold spaces): state is
    // field 3, utime 14, stime 15.
    let rest = &stat[stat.rfind(')').unwrap() + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 = f[11].parse::<u64>().unwrap() + f[12].parse::<u64>().unwrap();
    Duration::from_millis(ticks * 1000 / clock_ticks())
}

fn clock_ticks() -> u64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(100)
}

/// CPU the process burns over `window` while the store sits idle.
fn idle_cpu(_store: &Store, window: Duration) -> Duration {
    std::thread::sleep(Duration::from_millis(50));
    let before = process_cpu();
    std::thread::sleep(window);
    process_cpu().saturating_sub(before)
}

#[test]
fn zero_batch_interval_opens_does_not_spin_and_is_durable() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let f = Faulty::new();
    let opts = Options::default()
        .durability(Durability::Batched)
        .batch_interval(Duration::ZERO)
        .segment_size(4 * MIB as u64)
        .backend(Arc::new(f.clone()));
    let s = store_in(dir.path(), opts);
    let body = gen(1, 300_000);
    s.put_object(L, "k", PartBody::new(&body[..], body.len() as u64))
        .unwrap();
    let spent = idle_cpu(&s, Duration::from_millis(300));
    println!(
        "Batched + batch_interval(0): idle CPU over 300 ms: {spent:?} (runs as {:?})",
        s.options().durability
    );
    assert!(
        spent < Duration::from_millis(50),
        "idle store spun: {spent:?}"
    );
    // Acknowledged means durable: whatever a power loss right now keeps of
    // the unsynced writes, the object is there, whole.
    for seed in 0..12 {
        let out = tempfile::tempdir().unwrap();
        f.materialize(dir.path(), out.path(), &mut Rng::new(seed));
        let again = Store::open(out.path(), Options::default()).unwrap();
        assert_eq!(
            again.get(L, "k").unwrap().to_vec().unwrap(),
            body,
            "power-loss state {seed}"
        );
    }
    // Control: a Batched store whose batch never comes loses the same put
    // in some of those states, so the check above can fail.
    let dir = tempfile::tempdir().unwrap();
    let f = Faulty::new();
    let opts = Options::default()
        .durability(Durability::Batched)
        .batch_interval(Duration::from_secs(3600))
        .segment_size(4 * MIB as u64)
        .backend(Arc::new(f.clone()));
    let s = store_in(dir.path(), opts);
    s.sync().unwrap();
    s.put_object(L, "k", PartBody::new(&body[..], body.len() as u64))
        .unwrap();
    let lost = (0..12)
        .filter(|seed| {
            let out = tempfile::tempdir().unwrap();
            f.materialize(dir.path(), out.path(), &mut Rng::new(*seed));
            let again = Store::open(out.path(), Options::default()).unwrap();
            again.head(L, "k").is_err()
        })
        .count();
    assert!(lost > 0, "the control never lost the unsynced put");
}

#[test]
fn huge_batch_interval_opens_writes_and_closes_promptly() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    // (The pre-writer's one-off work on an idle store is measured in
    // tiny_batch_intervals_do_not_spin_while_idle.)
    let opts = Options::default()
        .durability(Durability::Batched)
        .batch_interval(Duration::MAX)
        .prewrite(false);
    let s = store_in(dir.path(), opts);
    s.put_object(L, "k", PartBody::new(&b"abc"[..], 3)).unwrap();
    let spent = idle_cpu(&s, Duration::from_millis(300));
    assert!(
        spent < Duration::from_millis(50),
        "idle store spun: {spent:?}"
    );
    let t = Instant::now();
    drop(s);
    assert!(
        t.elapsed() < Duration::from_secs(2),
        "close took {:?}",
        t.elapsed()
    );
    let s = Store::open(dir.path(), Options::default()).unwrap();
    assert_eq!(s.get(L, "k").unwrap().to_vec().unwrap(), b"abc");
}

#[test]
fn tiny_batch_intervals_do_not_spin_while_idle() {
    let _serial = serial();
    for interval in [
        Duration::from_nanos(1),
        Duration::from_micros(1),
        Duration::from_micros(999),
        Duration::from_millis(1),
    ] {
        for prewrite in [false, true] {
            let dir = tempfile::tempdir().unwrap();
            let opts = Options::default()
                .durability(Durability::Batched)
                .batch_interval(interval)
                .prewrite(prewrite);
            let s = store_in(dir.path(), opts);
            s.put_object(L, "k", PartBody::new(&b"abc"[..], 3)).unwrap();
            s.sync().unwrap();
            if prewrite {
                // The pre-writer's one-off work on an idle store (zeros
                // ahead of the tail, at most 64 MiB) is not a spin: it is
                // done within a second, then the store is as idle as
                // without it.
                std::thread::sleep(Duration::from_secs(1));
            }
            let spent = idle_cpu(&s, Duration::from_millis(300));
            println!(
                "Batched + batch_interval({interval:?}), prewrite {prewrite}: idle CPU over 300 ms: {spent:?}"
            );
            assert!(
                spent < Duration::from_millis(50),
                "batch_interval({interval:?}), prewrite {prewrite}: idle store spun: {spent:?}"
            );
        }
    }
}

/// A body that serves its first `split` bytes, says so on `reached`, then
/// blocks until `gate` lets it serve the rest.
struct Gated {
    data: Vec<u8>,
    pos: usize,
    split: usize,
    reached: Option<mpsc::Sender<()>>,
    gate: mpsc::Receiver<()>,
}

impl Read for Gated {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.pos == self.split {
            if let Some(tx) = self.reached.take() {
                tx.send(()).unwrap();
                self.gate.recv().unwrap();
            }
        }
        let end = if self.pos < self.split {
            self.split
        } else {
            self.data.len()
        };
        let n = buf.len().min(end - self.pos);
        buf[..n].copy_from_slice(&self.data[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

#[test]
fn expiry_spares_an_upload_whose_part_is_streaming_in() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let s = store_in(dir.path(), Options::default());
    let busy = s.start_multipart(L, "busy", OCTET).unwrap();
    let idle = s.start_multipart(L, "idle", OCTET).unwrap();
    let data = gen(7, 3 * MIB + 5);
    let (reached_tx, reached) = mpsc::channel();
    let (open_gate, gate) = mpsc::channel();
    let body = Gated {
        data: data.clone(),
        pos: 0,
        split: MIB + 100,
        reached: Some(reached_tx),
        gate,
    };
    std::thread::scope(|scope| {
        let part =
            scope.spawn(|| s.upload_part(L, &busy, 1, PartBody::new(body, data.len() as u64)));
        reached
            .recv_timeout(Duration::from_secs(30))
            .expect("the part never reached the middle of its body");
        // Both uploads' last recorded activity is now in the past.
        std::thread::sleep(Duration::from_millis(20));
        let expired = s.expire_uploads(Duration::ZERO).unwrap();
        assert_eq!(expired, 1, "only the idle upload expires");
        assert!(!is_open(&s, &idle), "the idle upload was kept");
        assert!(
            is_open(&s, &busy),
            "the upload with a part in flight expired"
        );
        open_gate.send(()).unwrap();
        let info = part.join().unwrap().expect("the streaming part failed");
        assert_eq!(info.size, data.len() as u64);
    });
    let done = s.complete_multipart(L, &busy).unwrap();
    assert_eq!(done.size, data.len() as u64);
    assert_eq!(s.get(L, "busy").unwrap().to_vec().unwrap(), data);
    // Once the part is in, the upload is idle like any other.
    let again = s.start_multipart(L, "again", OCTET).unwrap();
    std::thread::sleep(Duration::from_millis(20));
    assert_eq!(s.expire_uploads(Duration::ZERO).unwrap(), 1);
    assert!(!is_open(&s, &again));
}

// ----- a segment file truncated by another process --------------------------

fn put_objects(dir: &Path, n: u64) -> Vec<(String, Vec<u8>)> {
    let s = store_in(dir, Options::default().segment_size(256 << 10));
    let objects: Vec<(String, Vec<u8>)> = (0..n)
        .map(|i| (format!("k{i:02}"), gen(100 + i, 60_000)))
        .collect();
    for (k, b) in &objects {
        s.put_object(L, k, PartBody::new(&b[..], b.len() as u64))
            .unwrap();
    }
    objects
}

fn segments(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut v: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.file_name().unwrap().to_string_lossy().starts_with("seg-"))
        .collect();
    v.sort();
    v
}

fn copy_dir(src: &Path) -> tempfile::TempDir {
    let dst = tempfile::tempdir().unwrap();
    for e in std::fs::read_dir(src).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), dst.path().join(e.file_name())).unwrap();
    }
    dst
}

/// What DURABILITY.md says about a truncation found at `open`: a sealed
/// segment cut through a record is `Corrupt`; the newest one cut is a torn
/// tail (what was cut off is lost, the rest is intact); never wrong bytes.
#[test]
fn segment_truncated_by_another_process_is_found_at_open() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let objects = put_objects(dir.path(), 12);
    let segs = segments(dir.path());
    assert!(segs.len() >= 3, "{segs:?}");
    // A sealed segment cut inside its second object's data.
    let cut = copy_dir(dir.path());
    let first = cut.path().join(segs[0].file_name().unwrap());
    std::fs::OpenOptions::new()
        .write(true)
        .open(&first)
        .unwrap()
        .set_len(100_000)
        .unwrap();
    let e = Store::open(cut.path(), Options::default()).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Corrupt, "{e}");
    assert_eq!(e.location().map(|(s, _)| s), Some(1), "{e}");
    // The newest segment cut inside its first record.
    let cut = copy_dir(dir.path());
    let newest = cut.path().join(segs.last().unwrap().file_name().unwrap());
    std::fs::OpenOptions::new()
        .write(true)
        .open(&newest)
        .unwrap()
        .set_len(40_000)
        .unwrap();
    let s = Store::open(cut.path(), Options::default()).unwrap();
    let mut kept = 0;
    for (k, b) in &objects {
        match s.get(L, k) {
            Ok(blob) => {
                assert!(blob.to_vec().unwrap() == *b, "{k}: wrong bytes");
                kept += 1;
            }
            Err(e) => assert_eq!(e.kind(), ErrorKind::NotFound, "{k}: {e}"),
        }
    }
    assert!(
        kept > 0 && kept < objects.len(),
        "kept {kept} of {}",
        objects.len()
    );
    assert!(s.verify().unwrap().is_clean());
}

/// The limit of every mmap engine: a segment truncated while the store has
/// it mapped, then read through the map. A child process opens the store
/// and pins an object; the parent truncates the segment under it; the
/// child's read dies of SIGBUS (or, if the kernel kept the pages, reads
/// the right bytes or fails with an error): never wrong bytes.
#[test]
fn segment_truncated_under_a_live_map_is_sigbus_never_wrong_bytes() {
    use std::io::{BufRead, BufReader, Write};
    use std::os::unix::process::ExitStatusExt;
    use std::process::{Command, Stdio};
    if let Ok(dir) = std::env::var("PARTSTORE_TRUNCATE_CHILD") {
        // The child: open, pin, wait for the parent's truncation, read.
        let s = Store::open(&dir, Options::default().segment_size(256 << 10)).unwrap();
        let blob = s.get(L, "k00").unwrap();
        println!("ready");
        let mut line = String::new();
        std::io::stdin().read_line(&mut line).unwrap();
        match blob.to_vec() {
            Ok(b) => println!(
                "read {}",
                if b == gen(100, 60_000) {
                    "right"
                } else {
                    "WRONG"
                }
            ),
            Err(e) => println!("error {:?}", e.kind()),
        }
        return;
    }
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    put_objects(dir.path(), 12);
    let first = segments(dir.path())[0].clone();
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "segment_truncated_under_a_live_map_is_sigbus_never_wrong_bytes",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("PARTSTORE_TRUNCATE_CHILD", dir.path())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut seen = String::new();
    let mut line = String::new();
    while out.read_line(&mut line).unwrap() > 0 {
        seen.push_str(&line);
        if line.contains("ready") {
            break;
        }
        line.clear();
    }
    assert!(seen.contains("ready"), "child: {seen}");
    std::fs::OpenOptions::new()
        .write(true)
        .open(&first)
        .unwrap()
        .set_len(4096)
        .unwrap();
    child.stdin.take().unwrap().write_all(b"go\n").unwrap();
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut out, &mut rest).unwrap();
    let status = child.wait().unwrap();
    println!(
        "segment truncated under a live map: child {status:?}, said {:?}",
        rest.lines().next()
    );
    assert!(
        !rest.contains("read WRONG"),
        "wrong bytes through a truncated map"
    );
    assert!(
        status.signal() == Some(7) || rest.contains("read right") || rest.contains("error"),
        "child: {status:?} {rest}"
    );
}

/// A body whose reader panics after `after` bytes.
struct Panics {
    left: u64,
    after: u64,
}

impl Read for Panics {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        assert!(self.after > 0, "the caller's reader panics mid-body");
        let n = (buf.len() as u64)
            .min(self.left)
            .min(self.after)
            .min(100_000) as usize;
        buf[..n].fill(5);
        self.left -= n as u64;
        self.after -= n as u64;
        Ok(n)
    }
}

/// A caller's reader that panics (a server's request body, say) unwinds
/// through the engine on every ingest path (the one-write path of small
/// bodies, the serial and the pipelined stream, with and without a
/// digest): nothing is published, nothing is locked up, and the store
/// goes on (writes, complete, compaction, a clean reopen).
#[test]
fn a_reader_that_panics_mid_body_leaves_the_store_usable() {
    let _serial = serial();
    for durability in [Durability::Sync, Durability::None] {
        let dir = tempfile::tempdir().unwrap();
        let store = store_in(dir.path(), Options::default().durability(durability));
        let up = store
            .start_multipart(L, "mp", "application/octet-stream")
            .unwrap();
        let md5 = "MD5:00000000000000000000000000000000";
        let cases: [(u64, u64, Option<&str>); 4] = [
            (1_000, 990, None),
            (20 << 20, 15 << 20, None),
            (20 << 20, 15 << 20, Some(md5)),
            (8 << 20, 1 << 20, Some(md5)),
        ];
        for (i, (len, after, digest)) in cases.into_iter().enumerate() {
            let body = |len: u64| {
                let b = PartBody::new(Panics { left: len, after }, len);
                match digest {
                    Some(d) => b.digest(d.parse().unwrap()),
                    None => b,
                }
            };
            let key = format!("k{i}");
            let put = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                store.put_object(L, &key, body(len))
            }));
            assert!(put.is_err(), "{durability:?} case {i}: the put returned");
            assert_eq!(store.head(L, &key).unwrap_err().kind(), ErrorKind::NotFound);
            let part = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                store.upload_part(L, &up, 1, body(len.max(5 << 20)))
            }));
            assert!(part.is_err(), "{durability:?} case {i}: the part returned");
            assert!(store.list_parts(L, &up).unwrap().is_empty());
        }
        let big = gen(7, 6 << 20);
        store
            .put_object(L, "ok", PartBody::new(&big[..], big.len() as u64))
            .unwrap();
        store
            .upload_part(L, &up, 1, PartBody::new(&big[..], big.len() as u64))
            .unwrap();
        store
            .upload_part(L, &up, 2, PartBody::new(&b"tail"[..], 4))
            .unwrap();
        store.complete_multipart(L, &up).unwrap();
        store.compact().unwrap();
        assert!(store.verify().unwrap().is_clean());
        drop(store);
        let store = Store::open(dir.path(), Options::default()).unwrap();
        let mut out = Vec::new();
        store
            .get(L, "ok")
            .unwrap()
            .reader()
            .read_to_end(&mut out)
            .unwrap();
        assert!(out == big, "{durability:?}: the object read back differs");
        out.clear();
        store
            .get(L, "mp")
            .unwrap()
            .reader()
            .read_to_end(&mut out)
            .unwrap();
        assert!(out[..big.len()] == big[..] && out[big.len()..] == b"tail"[..]);
        assert_eq!(store.stats().objects, 2);
        assert!(store.verify().unwrap().is_clean());
    }
}
