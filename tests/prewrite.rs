//! The pre-writer (`Options::prewrite`, issue 12 item 5), checked
//! mechanically through a backend that records every write, sync and
//! fallocate in order (no timing is measured):
//! - `puts_land_in_prewritten_blocks`: after an idle store pre-wrote its
//!   window, every byte the puts write lies in a range the pre-writer had
//!   already written with zeros and synced, and the puts allocate nothing;
//! - `prewriter_never_writes_where_records_are`: many writers of mixed
//!   sizes in small segments (rotations, writers outrunning the pre-writer,
//!   idle gaps): no zero-write of the pre-writer ever lands on bytes the
//!   store wrote before it, and after a reopen every acknowledged object
//!   reads back byte for byte and `verify()` is clean;
//! - `closing_gives_prewritten_zeros_back`: a clean close punches the
//!   zeros past the tail's reserve, so the next open reads no more than
//!   without the pre-writer;
//! - `off_by_default_for_other_backends`: a backend that does not ask for
//!   it gets no pre-writer (the fault-injection tests count calls).

mod common;

use std::collections::HashMap;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use partstore::backend::{Backend, BackendFile, Map, StdBackend};
use partstore::{LayerConfig, Options, PartBody, Store};

const L: &str = "l";
const KIB: usize = 1 << 10;
const MIB: usize = 1 << 20;

#[derive(Debug, Clone)]
enum Ev {
    /// A completed write: file, descriptor serial, offset, length, all zero.
    Write(PathBuf, u64, u64, u64, bool),
    /// A completed fdatasync / fsync: file, descriptor serial.
    Sync(PathBuf, u64),
    /// A completed fallocate: file, offset, length.
    Allocate(PathBuf, u64, u64),
}

/// `StdBackend`, recording every write, sync and allocation in the order
/// they complete; every descriptor opened gets its own serial.
#[derive(Debug, Default)]
struct Recording {
    events: Arc<Mutex<Vec<Ev>>>,
    serials: AtomicU64,
    prewrite: bool,
}

struct RecFile {
    inner: Arc<dyn BackendFile>,
    path: PathBuf,
    serial: u64,
    events: Arc<Mutex<Vec<Ev>>>,
}

impl Recording {
    fn new(prewrite: bool) -> Arc<Recording> {
        Arc::new(Recording {
            prewrite,
            ..Recording::default()
        })
    }

    fn wrap(&self, path: &Path, inner: Arc<dyn BackendFile>) -> Arc<dyn BackendFile> {
        Arc::new(RecFile {
            inner,
            path: path.to_path_buf(),
            serial: self.serials.fetch_add(1, Ordering::SeqCst),
            events: Arc::clone(&self.events),
        })
    }

    fn events(&self) -> Vec<Ev> {
        self.events.lock().unwrap().clone()
    }

    fn len(&self) -> usize {
        self.events.lock().unwrap().len()
    }
}

impl Backend for Recording {
    fn create_dir_all(&self, dir: &Path) -> io::Result<()> {
        StdBackend.create_dir_all(dir)
    }
    fn read_dir(&self, dir: &Path) -> io::Result<Vec<String>> {
        StdBackend.read_dir(dir)
    }
    fn create_new(&self, path: &Path) -> io::Result<Arc<dyn BackendFile>> {
        Ok(self.wrap(path, StdBackend.create_new(path)?))
    }
    fn open(&self, path: &Path) -> io::Result<Arc<dyn BackendFile>> {
        Ok(self.wrap(path, StdBackend.open(path)?))
    }
    fn remove_file(&self, path: &Path) -> io::Result<()> {
        StdBackend.remove_file(path)
    }
    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        StdBackend.sync_dir(dir)
    }
    fn allocated_bytes(&self, path: &Path) -> io::Result<u64> {
        StdBackend.allocated_bytes(path)
    }
    fn prewrite_by_default(&self) -> bool {
        self.prewrite
    }
}

impl RecFile {
    fn record(&self, ev: Ev) {
        self.events.lock().unwrap().push(ev);
    }
}

impl BackendFile for RecFile {
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        self.inner.read_exact_at(buf, offset)
    }
    fn write_all_at(&self, buf: &[u8], offset: u64) -> io::Result<()> {
        self.inner.write_all_at(buf, offset)?;
        let zero = buf.iter().all(|b| *b == 0);
        self.record(Ev::Write(
            self.path.clone(),
            self.serial,
            offset,
            buf.len() as u64,
            zero,
        ));
        Ok(())
    }
    fn sync_data(&self) -> io::Result<()> {
        self.inner.sync_data()?;
        self.record(Ev::Sync(self.path.clone(), self.serial));
        Ok(())
    }
    fn sync_all(&self) -> io::Result<()> {
        self.inner.sync_all()?;
        self.record(Ev::Sync(self.path.clone(), self.serial));
        Ok(())
    }
    fn set_len(&self, len: u64) -> io::Result<()> {
        self.inner.set_len(len)
    }
    fn len(&self) -> io::Result<u64> {
        self.inner.len()
    }
    fn next_data(&self, offset: u64) -> io::Result<Option<u64>> {
        self.inner.next_data(offset)
    }
    fn next_hole(&self, offset: u64) -> io::Result<u64> {
        self.inner.next_hole(offset)
    }
    fn start_writeback(&self, offset: u64, len: u64) -> io::Result<()> {
        self.inner.start_writeback(offset, len)
    }
    fn allocate(&self, offset: u64, len: u64) -> io::Result<()> {
        self.inner.allocate(offset, len)?;
        self.record(Ev::Allocate(self.path.clone(), offset, len));
        Ok(())
    }
    fn punch_hole(&self, offset: u64, len: u64) -> io::Result<()> {
        self.inner.punch_hole(offset, len)
    }
    fn map(&self) -> io::Result<Map> {
        self.inner.map()
    }
}

/// Byte ranges of one file, merged.
#[derive(Default, Debug)]
struct Ranges(Vec<(u64, u64)>);

impl Ranges {
    fn add(&mut self, start: u64, end: u64) {
        self.0.push((start, end));
        self.0.sort_unstable();
        let mut merged: Vec<(u64, u64)> = Vec::new();
        for (s, e) in self.0.drain(..) {
            match merged.last_mut() {
                Some(last) if s <= last.1 => last.1 = last.1.max(e),
                _ => merged.push((s, e)),
            }
        }
        self.0 = merged;
    }
    fn covers(&self, start: u64, end: u64) -> bool {
        self.0.iter().any(|(s, e)| *s <= start && end <= *e)
    }
    fn overlaps(&self, start: u64, end: u64) -> bool {
        self.0.iter().any(|(s, e)| *s < end && start < *e)
    }
}

/// What the pre-writer (its all-zero writes, once its descriptor synced)
/// has made durable, per file, after the first `upto` events.
fn prewritten(events: &[Ev]) -> HashMap<PathBuf, Ranges> {
    let mut pending: HashMap<(PathBuf, u64), Vec<(u64, u64)>> = HashMap::new();
    let mut done: HashMap<PathBuf, Ranges> = HashMap::new();
    for ev in events {
        match ev {
            Ev::Write(p, serial, off, len, true) => pending
                .entry((p.clone(), *serial))
                .or_default()
                .push((*off, off + len)),
            Ev::Sync(p, serial) => {
                for (s, e) in pending.remove(&(p.clone(), *serial)).unwrap_or_default() {
                    done.entry(p.clone()).or_default().add(s, e);
                }
            }
            _ => {}
        }
    }
    done
}

fn wait_for(what: &str, mut f: impl FnMut() -> bool) {
    let start = Instant::now();
    while !f() {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "timed out waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn puts_land_in_prewritten_blocks() {
    let dir = tempfile::tempdir().unwrap();
    let rec = Recording::new(false);
    let s = Store::open(
        dir.path(),
        Options::default()
            .prewrite(true)
            .backend(Arc::clone(&rec) as Arc<dyn Backend>),
    )
    .unwrap();
    s.create_layer(L, LayerConfig::default()).unwrap();
    // Idle: the pre-writer fills its window from the tail on.
    wait_for("8 MiB pre-written", || {
        prewritten(&rec.events())
            .values()
            .any(|r| r.covers(32 << 10, 8 << 20))
    });
    let mark = rec.len();
    let data = common::gen(1, 64 * KIB);
    for i in 0..64 {
        s.put_object(
            L,
            &format!("k{i}"),
            PartBody::new(&data[..], data.len() as u64),
        )
        .unwrap();
    }
    let events = rec.events();
    let mut checked = 0;
    for (i, ev) in events.iter().enumerate().skip(mark) {
        match ev {
            Ev::Write(p, _, off, len, false) => {
                let pre = prewritten(&events[..i]);
                assert!(
                    pre.get(p).is_some_and(|r| r.covers(*off, off + len)),
                    "write of {len} bytes at {off} in {} outside the pre-written ranges {:?}",
                    p.display(),
                    pre.get(p)
                );
                checked += len;
            }
            Ev::Allocate(p, off, len) => panic!(
                "a put allocated {len} bytes at {off} in {} (pre-written blocks count as allocated)",
                p.display()
            ),
            _ => {}
        }
    }
    assert!(
        checked >= 64 * 64 * KIB as u64,
        "only {checked} bytes checked"
    );
    for i in 0..64 {
        assert_eq!(
            &*s.get(L, &format!("k{i}")).unwrap().to_vec().unwrap(),
            &data[..]
        );
    }
}

#[test]
fn prewriter_never_writes_where_records_are() {
    let dir = tempfile::tempdir().unwrap();
    let rec = Recording::new(true);
    let opts = || {
        Options::default()
            .segment_size(8 << 20)
            .backend(Arc::clone(&rec) as Arc<dyn Backend>)
    };
    let s = Store::open(dir.path(), opts()).unwrap();
    s.create_layer(L, LayerConfig::default()).unwrap();
    let acked: Mutex<Vec<(String, u64, usize)>> = Mutex::new(Vec::new());
    for round in 0..3u64 {
        std::thread::scope(|scope| {
            for w in 0..8u64 {
                let (s, acked) = (&s, &acked);
                scope.spawn(move || {
                    let mut rng = common::faulty::Rng::new(round * 100 + w);
                    for i in 0..40 {
                        let len = match rng.below(10) {
                            0 => 1 + rng.below(3 * MIB as u64) as usize,
                            1..=3 => 1 + rng.below(256 * KIB as u64) as usize,
                            _ => 1 + rng.below(64 * KIB as u64) as usize,
                        };
                        let key = format!("r{round}/w{w}/{i}");
                        let seed = round << 32 | w << 16 | i;
                        let data = common::gen(seed, len);
                        s.put_object(L, &key, PartBody::new(&data[..], len as u64))
                            .unwrap();
                        acked.lock().unwrap().push((key, seed, len));
                    }
                });
            }
        });
        // Idle: the window grows (and fills gaps the writers left).
        std::thread::sleep(Duration::from_millis(250));
    }
    let events = rec.events();
    // Every byte the store wrote (not zeros) before each pre-writer write.
    let mut written: HashMap<PathBuf, Ranges> = HashMap::new();
    let mut zero_bytes = 0;
    for ev in &events {
        if let Ev::Write(p, _, off, len, zero) = ev {
            let r = written.entry(p.clone()).or_default();
            if *zero {
                assert!(
                    !r.overlaps(*off, off + len),
                    "zeros written over the store's bytes at {off}..{} of {}",
                    off + len,
                    p.display()
                );
                zero_bytes += len;
            } else {
                r.add(*off, off + len);
            }
        }
    }
    assert!(zero_bytes > 0, "the pre-writer wrote nothing");
    let segments: usize = written.len();
    assert!(segments > 3, "only {segments} segments: no rotation tested");
    drop(s);
    let s = Store::open(dir.path(), opts()).unwrap();
    for (key, seed, len) in acked.into_inner().unwrap() {
        let got = s.get(L, &key).unwrap().to_vec().unwrap();
        assert!(got == common::gen(seed, len), "{key} differs after reopen");
    }
    assert!(s.verify().unwrap().is_clean());
}

#[test]
fn closing_gives_prewritten_zeros_back() {
    let dir = tempfile::tempdir().unwrap();
    let seg = dir.path().join("seg-00000001.log");
    {
        let s = Store::open(dir.path(), Options::default().prewrite(true)).unwrap();
        s.create_layer(L, LayerConfig::default()).unwrap();
        wait_for("32 MiB pre-written", || {
            StdBackend.allocated_bytes(&seg).unwrap() >= 32 << 20
        });
    }
    let after = StdBackend.allocated_bytes(&seg).unwrap();
    // The tail's metadata reserve (1 MiB) and the records stay.
    assert!(
        after <= 2 << 20,
        "{after} bytes still allocated after close"
    );
    let s = Store::open(dir.path(), Options::default().prewrite(false)).unwrap();
    s.create_layer("m", LayerConfig::default()).unwrap();
}

#[test]
fn off_by_default_for_other_backends() {
    let dir = tempfile::tempdir().unwrap();
    let rec = Recording::new(false);
    let s = Store::open(
        dir.path(),
        Options::default().backend(Arc::clone(&rec) as Arc<dyn Backend>),
    )
    .unwrap();
    s.create_layer(L, LayerConfig::default()).unwrap();
    std::thread::sleep(Duration::from_millis(300));
    drop(s);
    let zeros = rec
        .events()
        .iter()
        .filter(|e| matches!(e, Ev::Write(_, _, _, len, true) if *len > 0))
        .count();
    assert_eq!(zeros, 0, "zero-writes without the pre-writer");
}
