//! Checkpoints (issue 13): written without holding writers up, restored by
//! `open` with only the records after their base replayed.
//!
//! - `writers_commit_while_a_checkpoint_is_written`: a backend hook stops
//!   the checkpoint's page write until another thread's `Sync` put (and a
//!   delete, a multipart upload) has been acknowledged: they complete while
//!   the checkpoint is stuck in the middle of its write. The same for the
//!   checkpoint `compact()` writes.
//! - `replay_after_interleaved_checkpoints_equals_the_live_store`: writers
//!   in several threads while periodic checkpoints are written back to back
//!   (slowed down so records land between their base and their pages); a
//!   copy of the files opens to exactly what the live store shows, and the
//!   last checkpoint did have records in between.
//! - `open_replays_only_what_follows_the_last_checkpoint`, `periodic_...`,
//!   `close_...`: `Stats::replay_bytes` says what open replays.
//!
//! Torn checkpoints are in tests/recovery.rs (`torn_tail_of_a_checkpoint`)
//! and tests/truncate.rs; crashes inside them in tests/crash.rs; old
//! snapshot stores in tests/fixtures.rs.

mod common;

use std::collections::BTreeMap;
use std::io;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use partstore::backend::{Backend, BackendFile, Map, StdBackend};
use partstore::{
    CopySource, Durability, LayerConfig, ListItem, ListOptions, Options, PartBody, Store,
};

const L: &str = "l";
const CT: &str = "application/octet-stream";
const MIB: usize = 1 << 20;

/// A checkpoint page, as `docs/FORMAT.md` lays it out, is the bytes of a
/// data region: 19, base (2 x u64), seq u32, section u8 (1..=6), count u32,
/// items. A checkpoint record is a metadata record with tag 20 (21 when
/// it also carries the counts of the segments before its base).
const TAG_PAGE: u8 = 19;
const TAG_CHECKPOINT: [u8; 2] = [20, 21];
const TAG_MARK: u8 = 11;

/// True for the write of a checkpoint page (the test's own data never
/// looks like one: a base segment below 2^16 and a section in 1..=6 after a
/// 19 is one chance in 2^62 for random bytes).
fn is_page(buf: &[u8]) -> bool {
    buf.len() >= 26
        && buf[0] == TAG_PAGE
        && u64::from_le_bytes(buf[1..9].try_into().unwrap()) < 1 << 16
        && (1..=6).contains(&buf[21])
}

/// A real-file backend that can stop the writes of checkpoint pages (until
/// released) or slow them down.
#[derive(Debug, Default, Clone)]
struct Gate {
    shared: Arc<GateState>,
}

#[derive(Debug, Default)]
struct GateState {
    /// Stop the next page write.
    armed: AtomicBool,
    /// A page write is stopped.
    held: Mutex<bool>,
    cv: Condvar,
    /// Sleep this many milliseconds in every page write.
    slow_ms: AtomicUsize,
    pages: AtomicUsize,
}

impl Gate {
    fn arm(&self) {
        self.shared.armed.store(true, Ordering::SeqCst);
    }

    /// Waits until a page write is stopped.
    fn wait_held(&self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut held = self.shared.held.lock().unwrap();
        while !*held {
            let left = deadline.saturating_duration_since(Instant::now());
            assert!(!left.is_zero(), "no checkpoint page write was stopped");
            held = self.shared.cv.wait_timeout(held, left).unwrap().0;
        }
    }

    fn is_held(&self) -> bool {
        *self.shared.held.lock().unwrap()
    }

    fn release(&self) {
        *self.shared.held.lock().unwrap() = false;
        self.shared.cv.notify_all();
    }

    fn on_write(&self, buf: &[u8]) {
        if !is_page(buf) {
            return;
        }
        self.shared.pages.fetch_add(1, Ordering::SeqCst);
        let ms = self.shared.slow_ms.load(Ordering::SeqCst);
        if ms > 0 {
            std::thread::sleep(Duration::from_millis(ms as u64));
        }
        if self.shared.armed.swap(false, Ordering::SeqCst) {
            let mut held = self.shared.held.lock().unwrap();
            *held = true;
            self.shared.cv.notify_all();
            while *held {
                held = self.shared.cv.wait(held).unwrap();
            }
        }
    }
}

struct GateFile {
    gate: Gate,
    real: Arc<dyn BackendFile>,
}

impl Backend for Gate {
    fn create_dir_all(&self, dir: &Path) -> io::Result<()> {
        StdBackend.create_dir_all(dir)
    }
    fn read_dir(&self, dir: &Path) -> io::Result<Vec<String>> {
        StdBackend.read_dir(dir)
    }
    fn create_new(&self, path: &Path) -> io::Result<Arc<dyn BackendFile>> {
        Ok(Arc::new(GateFile {
            gate: self.clone(),
            real: StdBackend.create_new(path)?,
        }))
    }
    fn open(&self, path: &Path) -> io::Result<Arc<dyn BackendFile>> {
        Ok(Arc::new(GateFile {
            gate: self.clone(),
            real: StdBackend.open(path)?,
        }))
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
}

impl BackendFile for GateFile {
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        self.real.read_exact_at(buf, offset)
    }
    fn write_all_at(&self, buf: &[u8], offset: u64) -> io::Result<()> {
        self.gate.on_write(buf);
        self.real.write_all_at(buf, offset)
    }
    fn sync_data(&self) -> io::Result<()> {
        self.real.sync_data()
    }
    fn sync_all(&self) -> io::Result<()> {
        self.real.sync_all()
    }
    fn set_len(&self, len: u64) -> io::Result<()> {
        self.real.set_len(len)
    }
    fn len(&self) -> io::Result<u64> {
        self.real.len()
    }
    fn next_data(&self, offset: u64) -> io::Result<Option<u64>> {
        self.real.next_data(offset)
    }
    fn next_hole(&self, offset: u64) -> io::Result<u64> {
        self.real.next_hole(offset)
    }
    fn allocate(&self, offset: u64, len: u64) -> io::Result<()> {
        self.real.allocate(offset, len)
    }
    fn punch_hole(&self, offset: u64, len: u64) -> io::Result<()> {
        self.real.punch_hole(offset, len)
    }
    fn map(&self) -> io::Result<Map> {
        self.real.map()
    }
}

fn put(s: &Store, key: &str, bytes: &[u8]) {
    s.put_object(L, key, PartBody::new(bytes, bytes.len() as u64))
        .unwrap();
}

/// Everything a store shows: objects (bytes, etag, type, metadata), open
/// uploads with their parts, layers.
fn shown(s: &Store) -> BTreeMap<String, String> {
    let mut m = BTreeMap::new();
    for (id, cfg) in s.list_layers() {
        m.insert(format!("layer {id}"), format!("{cfg:?}"));
        let mut token = None;
        loop {
            let mut lo = ListOptions::default().deep(true).limit(1000);
            if let Some(t) = token.take() {
                lo = lo.page_token(t);
            }
            let page = s.list(&id, &lo).unwrap();
            for item in page.items {
                if let ListItem::Object(o) = item {
                    let data = s.get(&id, &o.key).unwrap().to_vec().unwrap();
                    assert_eq!(crc32c::crc32c(&data), o.crc32c);
                    m.insert(format!("object {id}/{}", o.key), format!("{o:?}"));
                }
            }
            match page.next_page_token {
                Some(t) => token = Some(t),
                None => break,
            }
        }
        for u in s.list_uploads(&id).unwrap() {
            let parts = s.list_parts(&id, &u.upload).unwrap();
            m.insert(
                format!("upload {id}/{}", u.upload),
                format!("{u:?} {parts:?}"),
            );
        }
    }
    m
}

fn copy_dir(src: &Path, dst: &Path) {
    std::fs::create_dir_all(dst).unwrap();
    for e in std::fs::read_dir(src).unwrap() {
        let e = e.unwrap();
        if e.file_name() != "LOCK" {
            std::fs::copy(e.path(), dst.join(e.file_name())).unwrap();
        }
    }
}

/// A metadata record of a segment file: (segment, offset, tag, payload).
type Rec = (u64, u64, u8, Vec<u8>);

/// Every metadata record of the store's segments, in log order.
fn meta_records(dir: &Path) -> Vec<Rec> {
    let mut out = Vec::new();
    for p in common::segment_files(dir) {
        let n = p.file_name().unwrap().to_str().unwrap();
        let id: u64 = n[4..n.len() - 4].parse().unwrap();
        let b = std::fs::read(&p).unwrap();
        let mut pos = 32usize;
        while pos + 24 <= b.len() && b[pos..pos + 24].iter().any(|x| *x != 0) {
            let len = u64::from_le_bytes(b[pos + 8..pos + 16].try_into().unwrap()) as usize;
            if b[pos + 4] == 2 {
                let payload = b[pos + 24..pos + 24 + len].to_vec();
                out.push((id, pos as u64, payload[8], payload));
            }
            pos += 24 + len.div_ceil(8) * 8;
        }
    }
    out
}

/// The last checkpoint record's base and position, and the state records
/// (not checkpoints or marks) that lie between the two.
fn last_checkpoint(dir: &Path) -> ((u64, u64), (u64, u64), usize) {
    let recs = meta_records(dir);
    let (seg, off, _, payload) = recs
        .iter()
        .rev()
        .find(|r| TAG_CHECKPOINT.contains(&r.2))
        .expect("a checkpoint record");
    let base = (
        u64::from_le_bytes(payload[9..17].try_into().unwrap()),
        u64::from_le_bytes(payload[17..25].try_into().unwrap()),
    );
    let between = recs
        .iter()
        .filter(|r| (r.0, r.1) >= base && (r.0, r.1) < (*seg, *off))
        .filter(|r| !TAG_CHECKPOINT.contains(&r.2) && r.2 != TAG_MARK)
        .count();
    (base, (*seg, *off), between)
}

/// `what` runs in another thread while a checkpoint's first page write is
/// stopped; it must finish before the checkpoint does.
fn commits_while_stopped(
    gate: &Gate,
    s: &Arc<Store>,
    checkpoint: impl FnOnce(&Store) + Send + 'static,
    what: impl FnOnce(&Store),
) {
    gate.arm();
    let t = {
        let s = Arc::clone(s);
        std::thread::spawn(move || checkpoint(&s))
    };
    gate.wait_held();
    let started = Instant::now();
    what(s);
    let took = started.elapsed();
    assert!(
        gate.is_held() && !t.is_finished(),
        "the checkpoint went on before the writes were acknowledged"
    );
    gate.release();
    t.join().unwrap();
    println!("writes acknowledged while a checkpoint page write was stopped, in {took:?}");
}

#[test]
fn writers_commit_while_a_checkpoint_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let gate = Gate::default();
    let opts = Options::default()
        .durability(Durability::Sync)
        .segment_size(4 * MIB as u64)
        .checkpoint_bytes(0)
        .backend(Arc::new(gate.clone()));
    let s = Arc::new(Store::open(dir.path(), opts.clone()).unwrap());
    s.create_layer(L, LayerConfig::default()).unwrap();
    for i in 0..200 {
        put(
            &s,
            &format!("before/{i:03}"),
            &common::gen(i, 100 + i as usize),
        );
    }
    let base = common::gen(1000, 5 * MIB);
    put(&s, "base", &base);

    // An explicit checkpoint.
    commits_while_stopped(
        &gate,
        &s,
        |s| s.checkpoint().unwrap(),
        |s| {
            put(s, "during", b"written while the checkpoint was stuck");
            s.delete(L, "before/007").unwrap();
            let up = s.start_multipart(L, "multi", CT).unwrap();
            s.copy_part(
                L,
                &up,
                1,
                CopySource::new("base", "bytes=0-5242879".parse().unwrap()),
            )
            .unwrap();
            s.upload_part(L, &up, 2, PartBody::new(&b"tail"[..], 4))
                .unwrap();
            s.complete_multipart(L, &up).unwrap();
        },
    );
    let (_, _, between) = last_checkpoint(dir.path());
    assert!(between >= 6, "the writes lie between base and checkpoint");

    let live = shown(&s);
    assert!(live.contains_key("object l/during"));
    assert!(!live.contains_key("object l/before/007"));
    // The same after a crash (a copy of the files) and after a clean close.
    let copy = tempfile::tempdir().unwrap();
    copy_dir(dir.path(), copy.path());
    assert_eq!(
        shown(&Store::open(copy.path(), Options::default()).unwrap()),
        live
    );
    drop(s);
    let s = Store::open(dir.path(), opts).unwrap();
    assert_eq!(shown(&s), live);
    assert_eq!(
        s.get(L, "multi").unwrap().to_vec().unwrap().len(),
        5 * MIB + 4
    );
}

#[test]
fn writers_commit_while_compaction_writes_its_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let gate = Gate::default();
    let opts = Options::default()
        .durability(Durability::Sync)
        .segment_size(MIB as u64)
        .compact_threshold(0.2)
        .checkpoint_bytes(0)
        .backend(Arc::new(gate.clone()));
    let s = Arc::new(Store::open(dir.path(), opts.clone()).unwrap());
    s.create_layer(L, LayerConfig::default()).unwrap();
    for i in 0..300 {
        put(&s, &format!("k/{i:03}"), &common::gen(i, 5000));
    }
    for i in (0..300).step_by(3) {
        s.delete(L, &format!("k/{i:03}")).unwrap();
    }
    // Readers pin the segments: compaction moves live data (no punching).
    let pins: Vec<_> = (1..300)
        .step_by(3)
        .map(|i| s.get(L, &format!("k/{i:03}")).unwrap())
        .collect();
    commits_while_stopped(
        &gate,
        &s,
        |s| {
            let r = s.compact().unwrap();
            assert!(r.segments_removed > 0 && r.bytes_moved > 0, "{r:?}");
        },
        |s| {
            put(
                s,
                "during",
                b"written while compaction's checkpoint was stuck",
            );
            s.delete(L, "k/001").unwrap();
            s.copy_object(L, "copied", "k/002").unwrap();
        },
    );
    drop(pins);
    let live = shown(&s);
    assert!(live.contains_key("object l/during") && !live.contains_key("object l/k/001"));
    let copy = tempfile::tempdir().unwrap();
    copy_dir(dir.path(), copy.path());
    assert_eq!(
        shown(&Store::open(copy.path(), Options::default()).unwrap()),
        live
    );
    drop(s);
    let s = Store::open(dir.path(), opts).unwrap();
    assert_eq!(shown(&s), live);
    assert!(s.verify().unwrap().is_clean());
}

#[test]
fn replay_after_interleaved_checkpoints_equals_the_live_store() {
    let dir = tempfile::tempdir().unwrap();
    let gate = Gate::default();
    // Pages are slow: records pile up between a checkpoint's base and its
    // record.
    gate.shared.slow_ms.store(3, Ordering::SeqCst);
    let opts = Options::default()
        .durability(Durability::Sync)
        .segment_size(MIB as u64)
        .checkpoint_bytes(2048)
        .backend(Arc::new(gate.clone()));
    let s = Arc::new(Store::open(dir.path(), opts).unwrap());
    s.create_layer(L, LayerConfig::default()).unwrap();
    s.create_layer("other", LayerConfig::default()).unwrap();
    let base = common::gen(7, 5 * MIB);
    put(&s, "base", &base);
    let threads: Vec<_> = (0..4u64)
        .map(|t| {
            let s = Arc::clone(&s);
            std::thread::spawn(move || {
                let mut r = common::faulty::Rng::new(t + 1);
                let mut open = Vec::new();
                for i in 0..150u64 {
                    let key = format!("t{t}/{}", r.below(20));
                    match r.below(10) {
                        0..=3 => put(
                            &s,
                            &key,
                            &common::gen(t * 1000 + i, 1 + r.below(3000) as usize),
                        ),
                        4 => {
                            let _ = s.delete(L, &key);
                        }
                        5 => {
                            let _ = s.copy_object(L, &format!("t{t}/copy"), &key);
                        }
                        6 => open.push(s.start_multipart(L, &key, CT).unwrap()),
                        7 if !open.is_empty() => {
                            let up = open[r.below(open.len() as u64) as usize];
                            s.copy_part(
                                L,
                                &up,
                                1,
                                CopySource::new("base", "bytes=0-5242879".parse().unwrap()),
                            )
                            .unwrap();
                            let b = common::gen(i, 100);
                            s.upload_part(L, &up, 2, PartBody::new(&b[..], 100))
                                .unwrap();
                        }
                        8 if !open.is_empty() => {
                            let up = open.swap_remove(r.below(open.len() as u64) as usize);
                            if s.complete_multipart(L, &up).is_err() {
                                s.abort_multipart(L, &up).unwrap();
                            }
                        }
                        _ => {
                            let b = common::gen(i, 10);
                            s.put_object("other", &format!("{t}-{i}"), PartBody::new(&b[..], 10))
                                .unwrap();
                        }
                    }
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    s.wait_for_checkpoints();
    let pages = gate.shared.pages.load(Ordering::SeqCst);
    assert!(
        pages > 10,
        "periodic checkpoints were written ({pages} pages)"
    );
    let (base_pos, end_pos, between) = last_checkpoint(dir.path());
    println!("{pages} pages; last checkpoint based at {base_pos:?}, recorded at {end_pos:?}, {between} records between");

    let live = shown(&s);
    let copy = tempfile::tempdir().unwrap();
    copy_dir(dir.path(), copy.path());
    let c = Store::open(copy.path(), Options::default()).unwrap();
    assert_eq!(shown(&c), live, "replay after the last checkpoint");
    assert!(c.verify().unwrap().is_clean());
    drop(c);

    // Every checkpoint with records between its base and its record opens
    // right too: cut the log just after each one.
    let recs = meta_records(dir.path());
    let mut checked = 0;
    for r in recs.iter().filter(|r| TAG_CHECKPOINT.contains(&r.2)) {
        let base = (
            u64::from_le_bytes(r.3[9..17].try_into().unwrap()),
            u64::from_le_bytes(r.3[17..25].try_into().unwrap()),
        );
        let interleaved = recs
            .iter()
            .filter(|x| (x.0, x.1) >= base && (x.0, x.1) < (r.0, r.1))
            .any(|x| !TAG_CHECKPOINT.contains(&x.2) && x.2 != TAG_MARK);
        if !interleaved {
            continue;
        }
        // The store as of just after this checkpoint record: the same
        // files, the segment cut after it, later segments gone; opened
        // with and without the checkpoint (cut just before its record),
        // the state is the same.
        let open_cut = |at: u64| {
            let d = tempfile::tempdir().unwrap();
            copy_dir(dir.path(), d.path());
            for e in std::fs::read_dir(d.path()).unwrap() {
                let p = e.unwrap().path();
                let n = p.file_name().unwrap().to_str().unwrap().to_string();
                if let Some(id) = n.strip_prefix("seg-").and_then(|x| x.strip_suffix(".log")) {
                    let id: u64 = id.parse().unwrap();
                    if id > r.0 {
                        std::fs::remove_file(&p).unwrap();
                    } else if id == r.0 {
                        let f = std::fs::OpenOptions::new().write(true).open(&p).unwrap();
                        f.set_len(at).unwrap();
                    }
                }
            }
            let s = Store::open(d.path(), Options::default()).unwrap();
            (shown(&s), s.stats().replay_bytes)
        };
        let framed = 24 + (r.3.len() as u64).div_ceil(8) * 8;
        let (with, replayed_with) = open_cut(r.1 + framed);
        let (without, replayed_without) = open_cut(r.1);
        assert_eq!(with, without, "checkpoint at {:?}", (r.0, r.1));
        assert!(replayed_with < replayed_without);
        checked += 1;
        if checked == 5 {
            break;
        }
    }
    assert!(
        checked > 0,
        "no checkpoint had records between base and record"
    );
}

#[test]
fn open_replays_only_what_follows_the_last_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let opts = Options::default()
        .durability(Durability::None)
        .checkpoint_bytes(0);
    let s = Store::open(dir.path(), opts.clone()).unwrap();
    s.create_layer(L, LayerConfig::default()).unwrap();
    for i in 0..500 {
        put(&s, &format!("k{i}"), &common::gen(i, 20));
    }
    let before = s.stats().replay_bytes;
    assert!(before > 500 * 100, "{before}");
    s.checkpoint().unwrap();
    assert_eq!(s.stats().replay_bytes, 0);
    for i in 0..10 {
        s.delete(L, &format!("k{i}")).unwrap();
    }
    let tail = s.stats().replay_bytes;
    assert!(tail > 0 && tail < 2000, "{tail}");
    let live = shown(&s);
    drop(s);
    let s = Store::open(dir.path(), opts.clone()).unwrap();
    assert_eq!(s.stats().replay_bytes, tail, "open replayed the tail only");
    assert_eq!(shown(&s), live);
    // Nothing committed since: no new checkpoint.
    let files = std::fs::read_dir(dir.path()).unwrap().count();
    s.checkpoint().unwrap();
    s.checkpoint().unwrap();
    drop(s);
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), files);
    let s = Store::open(dir.path(), opts).unwrap();
    assert_eq!(s.stats().replay_bytes, 0);
    assert_eq!(shown(&s), live);
}

#[test]
fn periodic_checkpoints_bound_what_open_replays() {
    let dir = tempfile::tempdir().unwrap();
    let threshold = 16 << 10;
    let opts = Options::default()
        .durability(Durability::None)
        .checkpoint_bytes(threshold);
    let s = Store::open(dir.path(), opts.clone()).unwrap();
    s.create_layer(L, LayerConfig::default()).unwrap();
    let mut worst = 0;
    for i in 0..3000 {
        put(
            &s,
            &format!("key/{i:05}"),
            &common::gen(i, 1 + (i % 7) as usize),
        );
        if i % 100 == 0 {
            s.wait_for_checkpoints();
            worst = worst.max(s.stats().replay_bytes);
        }
    }
    s.wait_for_checkpoints();
    assert!(worst < 2 * threshold, "{worst}");
    let live = shown(&s);
    // A crash now (the files as they are): open replays a bounded tail.
    let copy = tempfile::tempdir().unwrap();
    copy_dir(dir.path(), copy.path());
    let c = Store::open(copy.path(), opts).unwrap();
    assert!(c.stats().replay_bytes < 2 * threshold);
    assert_eq!(shown(&c), live);
}

#[test]
fn close_writes_a_checkpoint_when_worth_it() {
    let dir = tempfile::tempdir().unwrap();
    // Close checkpoints need an eighth of the threshold (and 1 MiB).
    let opts = Options::default()
        .durability(Durability::None)
        .checkpoint_bytes(8 << 20);
    let s = Store::open(dir.path(), opts.clone()).unwrap();
    s.create_layer(L, LayerConfig::default()).unwrap();
    for i in 0..100 {
        put(&s, &format!("small/{i}"), b"x");
    }
    drop(s);
    let s = Store::open(dir.path(), opts.clone()).unwrap();
    let small = s.stats().replay_bytes;
    assert!(small > 0, "a short tail is replayed, not checkpointed");
    for i in 0..10_000 {
        put(&s, &format!("many/{i:05}"), b"y");
    }
    assert!(s.stats().replay_bytes > 1 << 20);
    let live = shown(&s);
    drop(s);
    let s = Store::open(dir.path(), opts).unwrap();
    assert_eq!(s.stats().replay_bytes, 0, "the close wrote a checkpoint");
    assert_eq!(shown(&s), live);
}

/// Every shape of object a checkpoint packs (one whole extent, several
/// pieces, none; user metadata, kept digests, part sizes, shared extents;
/// several content types with a freed media id between them; keys sharing
/// long prefixes and none, in two layers with different key rules), open
/// uploads and a completed one's tombstone: restored from the checkpoint
/// alone, the store shows exactly what it showed, and keeps working.
#[test]
fn every_kind_of_object_survives_a_checkpoint() {
    use partstore::{ByteRange, Digest, KeyRules, UploadOptions};
    let dir = tempfile::tempdir().unwrap();
    let opts = Options::default()
        .durability(Durability::None)
        .checkpoint_bytes(0);
    let s = Store::open(dir.path(), opts.clone()).unwrap();
    s.create_layer(L, LayerConfig::default()).unwrap();
    s.create_layer("s3", LayerConfig::default().key_rules(KeyRules::Utf8))
        .unwrap();
    for i in 0..300u64 {
        let key = format!("dir{}/object-{i:09}.bin", i % 7);
        let ct = ["a/b", "text/plain", "x/y"][i as usize % 3];
        let data = common::gen(i, (i % 40) as usize + 1);
        let body = PartBody::new(&data[..], data.len() as u64).content_type(ct);
        s.put_object(L, &key, body).unwrap();
    }
    // A media id freed in the middle of the table.
    s.put_object(
        L,
        "gone",
        PartBody::new(&b"g"[..], 1).content_type("z/gone"),
    )
    .unwrap();
    s.put_object(
        L,
        "after",
        PartBody::new(&b"a"[..], 1).content_type("z/after"),
    )
    .unwrap();
    s.delete(L, "gone").unwrap();
    let data = common::gen(7, 9);
    s.put_object(
        L,
        "meta",
        PartBody::new(&data[..], 9)
            .metadata([("owner", "me"), ("Note", "ünïcode")])
            .content_encoding("gzip")
            .digest(Digest::from_crc32c(crc32c::crc32c(&data))),
    )
    .unwrap();
    s.put_object(L, "empty", PartBody::new(&b""[..], 0))
        .unwrap();
    let big = common::gen(8, 2 * MIB + 17);
    put(&s, "big", &big);
    s.copy_object(L, "big-copy", "big").unwrap();
    // Multipart: two parts, one of them a range copied out of "big".
    let up = s
        .start_multipart(L, "multi", UploadOptions::new("m/p").metadata([("k", "v")]))
        .unwrap();
    let p1 = common::gen(9, 5 * MIB);
    s.upload_part(L, &up, 1, PartBody::new(&p1[..], p1.len() as u64))
        .unwrap();
    let range = ByteRange::Bounded {
        first: MIB as u64,
        last: 2 * MIB as u64 + 3,
    };
    s.copy_part(L, &up, 2, CopySource::new("big", range))
        .unwrap();
    s.complete_multipart(L, &up).unwrap();
    // An upload left open, with a part.
    let open = s.start_multipart(L, "open", "o/p").unwrap();
    s.upload_part(L, &open, 1, PartBody::new(&p1[..MIB * 5], 5 * MIB as u64))
        .unwrap();
    for (i, key) in ["é/ü", "a b", "a b/c", "😀", "x".repeat(400).as_str()]
        .iter()
        .enumerate()
    {
        put_in(&s, "s3", key, &common::gen(100 + i as u64, i + 1));
    }
    s.checkpoint().unwrap();
    let live = shown(&s);
    drop(s);

    let s = Store::open(dir.path(), opts.clone()).unwrap();
    assert_eq!(
        s.stats().replay_bytes,
        0,
        "restored from the checkpoint alone"
    );
    assert_eq!(shown(&s), live);
    assert_eq!(s.get(L, "big-copy").unwrap().to_vec().unwrap(), big);
    assert_eq!(
        s.upload_status(L, &up).unwrap(),
        partstore::UploadStatus::Completed
    );
    // Still a working index: inserts between restored keys, deletes, a
    // reuse of the freed media id.
    put(&s, "dir3/object-000000005.bin-between", b"between");
    s.delete(L, "dir0/object-000000000.bin").unwrap();
    s.put_object(
        L,
        "again",
        PartBody::new(&b"g"[..], 1).content_type("z/gone"),
    )
    .unwrap();
    s.complete_multipart(L, &open).unwrap();
    let live = shown(&s);
    s.checkpoint().unwrap();
    drop(s);
    let s = Store::open(dir.path(), opts).unwrap();
    assert_eq!(shown(&s), live);
    assert!(s.verify().unwrap().findings.is_empty());
}

fn put_in(s: &Store, layer: &str, key: &str, bytes: &[u8]) {
    s.put_object(layer, key, PartBody::new(bytes, bytes.len() as u64))
        .unwrap();
}

/// A store whose history spans several segments, with a checkpoint after
/// most of it and some records after that: (dir, what it shows, its
/// per-segment data bytes).
fn history_then_checkpoint() -> (tempfile::TempDir, BTreeMap<String, String>, Vec<(u64, u64)>) {
    let dir = tempfile::tempdir().unwrap();
    let opts = Options::default()
        .durability(Durability::None)
        .segment_size(1 << 20)
        .checkpoint_bytes(0);
    let s = Store::open(dir.path(), opts).unwrap();
    s.create_layer(L, LayerConfig::default()).unwrap();
    for i in 0..600 {
        put(&s, &format!("k{i:04}"), &common::gen(i, 5000 + i as usize));
        // Three in four die: garbage for compaction.
        if i % 4 != 0 {
            s.delete(L, &format!("k{i:04}")).unwrap();
        }
    }
    s.checkpoint().unwrap();
    for i in 0..20 {
        put(&s, &format!("after{i}"), &common::gen(1000 + i, 100));
    }
    let shown = shown(&s);
    let data: Vec<(u64, u64)> = s
        .stats()
        .per_segment
        .iter()
        .map(|g| (g.id, g.data_bytes))
        .collect();
    assert!(data.len() >= 3, "history spans segments: {data:?}");
    drop(s);
    (dir, shown, data)
}

fn reopen(dir: &Path) -> Store {
    Store::open(
        dir,
        Options::default()
            .durability(Durability::None)
            .segment_size(1 << 20)
            .checkpoint_bytes(0),
    )
    .unwrap()
}

/// Flips a byte in the middle of the first segment's first metadata
/// record after the layer's (a record the checkpoint supersedes).
fn damage_early_record(dir: &Path) {
    let (seg, off, _, _) = meta_records(dir)
        .into_iter()
        .find(|r| r.0 == 1 && r.1 > 32 && r.2 != 1)
        .expect("an early record");
    let path = dir.join(format!("seg-{seg:08}.log"));
    let mut b = std::fs::read(&path).unwrap();
    b[off as usize + 30] ^= 0x40;
    std::fs::write(&path, &b).unwrap();
}

/// Open scans the log from the last checkpoint's base (its hint file,
/// `checkpoint.pos`, says where): damage to a record the checkpoint
/// supersedes, in a segment before it, is not even read; the store opens
/// to what it showed, with the same data bytes per segment (counted after
/// open). Without the hint, open scans everything and finds the damage.
#[test]
fn open_scans_from_the_last_checkpoint_only() {
    let (dir, live, data) = history_then_checkpoint();
    damage_early_record(dir.path());
    let s = reopen(dir.path());
    assert_eq!(shown(&s), live);
    let again: Vec<(u64, u64)> = s
        .stats()
        .per_segment
        .iter()
        .map(|g| (g.id, g.data_bytes))
        .collect();
    // The damaged segment's count stops at the damage; every other one
    // is exact.
    assert_eq!(again.len(), data.len());
    for (a, d) in again.iter().zip(&data).skip(1) {
        assert_eq!(a, d);
    }
    drop(s);
    std::fs::remove_file(dir.path().join("checkpoint.pos")).unwrap();
    let e = Store::open(dir.path(), Options::default()).expect_err("corrupt");
    assert_eq!(e.kind(), partstore::ErrorKind::Corrupt, "{e}");
}

/// Every segment's data bytes are the same after a reopen from the hint
/// (the part of the log open skipped is counted after it).
#[test]
fn data_bytes_per_segment_survive_an_open_from_the_hint() {
    let (dir, live, data) = history_then_checkpoint();
    let s = reopen(dir.path());
    let again: Vec<(u64, u64)> = s
        .stats()
        .per_segment
        .iter()
        .map(|g| (g.id, g.data_bytes))
        .collect();
    assert_eq!(again, data);
    assert_eq!(shown(&s), live);
    // Compaction works from those figures.
    let r = s.compact().unwrap();
    assert!(r.bytes_reclaimed > 0, "{r:?}");
    assert_eq!(shown(&s), live);
    drop(s);
    assert_eq!(shown(&reopen(dir.path())), live);
}

/// A hint that names no checkpoint of this log (the directory's segments
/// were replaced; another store's hint file; a damaged file) is ignored:
/// open scans every segment, as it does with none.
#[test]
fn a_stale_hint_is_ignored() {
    let (dir, live, _) = history_then_checkpoint();
    let (other, _, _) = history_then_checkpoint();
    // Another store's hint (same shape, different records).
    let hint = std::fs::read(other.path().join("checkpoint.pos")).unwrap();
    let ours = std::fs::read(dir.path().join("checkpoint.pos")).unwrap();
    std::fs::write(dir.path().join("checkpoint.pos"), &hint).unwrap();
    assert_eq!(shown(&reopen(dir.path())), live);
    // Garbage.
    std::fs::write(dir.path().join("checkpoint.pos"), [7u8; 96]).unwrap();
    assert_eq!(shown(&reopen(dir.path())), live);
    // The store rebuilt from nothing in the same directory, the old hint
    // left behind: its first records are not mistaken for the old ones.
    for e in std::fs::read_dir(dir.path()).unwrap() {
        let p = e.unwrap().path();
        if p.extension().is_some_and(|x| x == "log") {
            std::fs::remove_file(p).unwrap();
        }
    }
    std::fs::write(dir.path().join("checkpoint.pos"), &ours).unwrap();
    let s = reopen(dir.path());
    s.create_layer(L, LayerConfig::default()).unwrap();
    put(&s, "fresh", b"new");
    let fresh = shown(&s);
    drop(s);
    assert_eq!(shown(&reopen(dir.path())), fresh);
}

/// A reader that fails after `ok` bytes (a client that went away).
struct Fails {
    ok: usize,
}

impl io::Read for Fails {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.ok == 0 {
            return Err(io::Error::other("client went away"));
        }
        let n = buf.len().min(self.ok);
        buf[..n].fill(7);
        self.ok -= n;
        Ok(n)
    }
}

fn data_bytes(s: &Store) -> Vec<(u64, u64, u64)> {
    s.stats()
        .per_segment
        .iter()
        .map(|g| (g.id, g.data_bytes, g.garbage_bytes))
        .collect()
}

/// A checkpoint records what each sealed segment before its base holds
/// (its records' end and data bytes: tag 21), so an open from it learns
/// their data bytes without reading them. Those figures equal what a walk
/// of every record finds (an open without the hint), over a history of
/// every kind of region: bodies of every size, bodies of unknown length,
/// bodies that failed half-way, parts, holes punched by compaction, writers
/// in two threads; and they carry over into the next checkpoint written by
/// a store that opened from them.
#[test]
fn segment_counts_in_a_checkpoint_equal_a_walk_of_the_records() {
    let dir = tempfile::tempdir().unwrap();
    let opts = || {
        Options::default()
            .durability(Durability::None)
            .segment_size(1 << 20)
            .checkpoint_bytes(0)
    };
    {
        let s = Arc::new(Store::open(dir.path(), opts()).unwrap());
        s.create_layer(L, LayerConfig::default()).unwrap();
        let work = |s: &Store, t: u64| {
            for i in 0..300u64 {
                let key = format!("t{t}/k{i:04}");
                let len = [0, 10, 700, 5000, 70_000, 300_000][(i % 6) as usize];
                let bytes = common::gen(t * 1000 + i, len);
                match i % 5 {
                    0 => {
                        let body = PartBody::until_eof(&bytes[..]);
                        s.put_object(L, &key, body).unwrap();
                    }
                    1 => {
                        // Fails half-way: nothing stored, the region given
                        // back or left as garbage.
                        let body = PartBody::new(Fails { ok: len / 2 }, len as u64 + 1);
                        assert!(s.put_object(L, &key, body).is_err());
                    }
                    _ => put(s, &key, &bytes),
                }
                if i % 3 == 0 {
                    let _ = s.delete(L, &format!("t{t}/k{:04}", i / 2));
                }
            }
        };
        let other = Arc::clone(&s);
        let t = std::thread::spawn(move || work(&other, 1));
        work(&s, 0);
        t.join().unwrap();
        let up = s.start_multipart(L, "mp", CT).unwrap();
        let big = common::gen(77, 5 * MIB);
        s.upload_part(L, &up, 1, PartBody::new(&big[..], big.len() as u64))
            .unwrap();
        s.upload_part(L, &up, 2, PartBody::new(&b"tail"[..], 4))
            .unwrap();
        s.complete_multipart(L, &up).unwrap();
        let r = s.compact().unwrap();
        assert!(r.bytes_reclaimed > 0, "{r:?}");
        work(&s, 2);
        s.checkpoint().unwrap();
        for i in 0..10 {
            put(&s, &format!("after{i}"), &common::gen(500 + i, 3000));
        }
        assert!(s.stats().segments >= 5);
    }
    let (_, rec, _) = last_checkpoint(dir.path());
    let tag = meta_records(dir.path())
        .into_iter()
        .find(|r| (r.0, r.1) == rec)
        .map(|r| r.2);
    assert_eq!(tag, Some(21), "the checkpoint carries segment counts");

    // Opened from the hint (the counts), then without it (a walk of every
    // record); the hint put back after.
    let both = || {
        let from_counts = data_bytes(&reopen(dir.path()));
        let pos = dir.path().join("checkpoint.pos");
        let hint = std::fs::read(&pos).unwrap();
        std::fs::remove_file(&pos).unwrap();
        let walked = data_bytes(&reopen(dir.path()));
        std::fs::write(&pos, &hint).unwrap();
        (from_counts, walked)
    };
    let (from_counts, walked) = both();
    assert_eq!(from_counts, walked);
    assert!(walked.iter().any(|(_, d, _)| *d > 0));

    // A store opened from the counts writes them into its next checkpoint
    // (at once, before its count after the open is done, and after it).
    for wait in [false, true] {
        let s = reopen(dir.path());
        if wait {
            s.stats();
        }
        s.checkpoint().unwrap();
        drop(s);
        let (from_counts, walked) = both();
        assert_eq!(from_counts, walked, "count done first: {wait}");
    }
}

/// Checkpoints (which read the segment counts) and appends (which count
/// their regions while they hold the tail lock) at once, in a tight loop:
/// neither waits for the other for ever. The first checkpoints with
/// segment counts took the counts' lock, then the tail lock, while an
/// append held them the other way round; `tests/chaos.rs` found the
/// deadlock.
#[test]
fn checkpoints_and_appends_at_once_never_deadlock() {
    let dir = tempfile::tempdir().unwrap();
    let opts = Options::default()
        .durability(Durability::None)
        .segment_size(256 << 10)
        .checkpoint_bytes(0);
    let s = Arc::new(Store::open(dir.path(), opts).unwrap());
    s.create_layer(L, LayerConfig::default()).unwrap();
    let done = Arc::new(AtomicBool::new(false));
    let (tx, rx) = std::sync::mpsc::channel();
    let mut threads = Vec::new();
    for t in 0..2u64 {
        let (s, done, tx) = (Arc::clone(&s), Arc::clone(&done), tx.clone());
        threads.push(std::thread::spawn(move || {
            let body = common::gen(t, 20_000);
            let mut i = 0u64;
            while !done.load(Ordering::SeqCst) {
                let key = format!("t{t}/k{:03}", i % 200);
                // A body of unknown length: a region reserved under the
                // tail lock, then its record.
                s.put_object(L, &key, PartBody::until_eof(&body[..]))
                    .unwrap();
                i += 1;
            }
            tx.send(i).unwrap();
        }));
    }
    {
        let (s, done, tx) = (Arc::clone(&s), Arc::clone(&done), tx.clone());
        threads.push(std::thread::spawn(move || {
            let mut n = 0u64;
            while !done.load(Ordering::SeqCst) {
                s.checkpoint().unwrap();
                n += 1;
            }
            tx.send(n).unwrap();
        }));
    }
    std::thread::sleep(Duration::from_secs(3));
    done.store(true, Ordering::SeqCst);
    let mut counts = Vec::new();
    for _ in 0..3 {
        match rx.recv_timeout(Duration::from_secs(60)) {
            Ok(n) => counts.push(n),
            Err(_) => panic!("a writer or the checkpointer is stuck (deadlock)"),
        }
    }
    for t in threads {
        t.join().unwrap();
    }
    println!("puts and checkpoints: {counts:?}");
    assert!(counts.iter().all(|n| *n > 0), "{counts:?}");
}
