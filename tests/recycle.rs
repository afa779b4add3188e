//! Recycled segment files (`Options::recycle_segments`): compaction keeps
//! the files of emptied segments, the next rotations write into them, and
//! the records of their earlier life (still in the files past the new
//! records) are never taken for new ones: not on a clean reopen, not after
//! a power loss at any sync point, not after damage.

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use common::faulty::{Faulty, Rng};
use partstore::{Durability, ErrorKind, LayerConfig, ListOptions, Options, PartBody, Store};

const LAYER: &str = "l";
const KIB: usize = 1 << 10;

fn files(dir: &Path, prefix: &str) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.starts_with(prefix))
        .collect();
    v.sort();
    v
}

/// The format version in a segment file's header.
fn version(path: &Path) -> u32 {
    let b = std::fs::read(path).unwrap();
    u32::from_le_bytes(b[8..12].try_into().unwrap())
}

fn put(store: &Store, key: &str, body: &[u8]) {
    store
        .put_object(LAYER, key, PartBody::new(body, body.len() as u64))
        .unwrap_or_else(|e| panic!("put {key}: {e}"));
}

/// Every object of the layer, read back whole.
fn contents(store: &Store) -> BTreeMap<String, Vec<u8>> {
    let page = store
        .list(LAYER, &ListOptions::default().deep(true).limit(1000))
        .unwrap();
    page.items
        .into_iter()
        .filter_map(|i| match i {
            partstore::ListItem::Object(o) => Some(o.key),
            _ => None,
        })
        .map(|k| {
            let data = store.get(LAYER, &k).unwrap().to_vec().unwrap();
            (k, data)
        })
        .collect()
}

fn opts(segment: u64) -> Options {
    Options::default()
        .segment_size(segment)
        .recycle_segments(2)
        .prewrite(false)
}

/// Fills `n` objects of `len` bytes, deletes them, compacts: the emptied
/// segments go to the pool.
fn fill_and_empty(store: &Store, n: usize, len: usize) -> partstore::CompactionReport {
    for i in 0..n {
        put(
            store,
            &format!("old/{i:03}"),
            &common::tagged(1000 + i as u64, len),
        );
    }
    for i in 0..n {
        store.delete(LAYER, &format!("old/{i:03}")).unwrap();
    }
    store.compact().unwrap()
}

/// Puts 30 KiB objects (`fill/NNN`) until the newest segment of the store
/// in `dir` is a recycled one; returns what they hold.
fn fill_until_recycled(store: &Store, dir: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut put_so_far = BTreeMap::new();
    let mut i = 0;
    while version(&dir.join(files(dir, "seg-").pop().unwrap())) != 2 {
        let (key, body) = (format!("fill/{i:03}"), common::tagged(i, 30 * KIB));
        put(store, &key, &body);
        put_so_far.insert(key, body);
        i += 1;
        assert!(i < 1000, "no rotation took a kept file");
    }
    put_so_far
}

#[test]
fn rotations_reuse_the_files_compaction_emptied() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), opts(1 << 20)).unwrap();
    store.create_layer(LAYER, LayerConfig::default()).unwrap();
    let report = fill_and_empty(&store, 40, 100 * KIB);
    assert!(report.segments_removed >= 3, "{report:?}");
    assert_eq!(report.segments_recycled, 2, "{report:?}");
    assert_eq!(store.stats().recycled_segments, 2);
    assert_eq!(files(dir.path(), "free-").len(), 2);

    // New objects, fewer bytes per segment than the old ones: the old
    // records stay in the recycled files past the new ones.
    let mut model = BTreeMap::new();
    for i in 0..60 {
        let body = common::tagged(i, 30 * KIB + i as usize);
        put(&store, &format!("new/{i:03}"), &body);
        model.insert(format!("new/{i:03}"), body);
    }
    store.sync().unwrap();
    let free_left = files(dir.path(), "free-").len();
    assert!(
        free_left < 2,
        "no pool file was reused: {:?}",
        files(dir.path(), "")
    );
    let recycled: Vec<String> = files(dir.path(), "seg-")
        .into_iter()
        .filter(|n| version(&dir.path().join(n)) == 2)
        .collect();
    assert_eq!(recycled.len(), 2 - free_left, "{:?}", files(dir.path(), ""));
    assert_eq!(contents(&store), model);
    drop(store);

    // The records of the files' earlier life (the deleted objects) are
    // still there, and never come back.
    let old_magic = recycled.iter().any(|n| {
        let b = std::fs::read(dir.path().join(n)).unwrap();
        b.windows(4).skip(64 << 10).any(|w| w == b"PSR1")
    });
    assert!(
        old_magic,
        "the recycled files hold none of their old records"
    );
    for round in 0..2 {
        let store = Store::open(dir.path(), opts(1 << 20)).unwrap();
        assert_eq!(contents(&store), model, "reopen {round}");
        assert!(store.verify().unwrap().is_clean());
        // Appends continue after the old bytes, then another reopen.
        let body = common::tagged(500 + round, 20 * KIB);
        put(&store, &format!("more/{round}"), &body);
        model.insert(format!("more/{round}"), body);
    }
    let store = Store::open(dir.path(), opts(1 << 20)).unwrap();
    assert_eq!(contents(&store), model);
    assert_eq!(
        store.get(LAYER, "old/000").unwrap_err().kind(),
        ErrorKind::NotFound
    );
}

#[test]
fn recycling_off_deletes_and_drops_kept_files() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = Store::open(dir.path(), opts(1 << 20).recycle_segments(0)).unwrap();
        store.create_layer(LAYER, LayerConfig::default()).unwrap();
        let report = fill_and_empty(&store, 30, 100 * KIB);
        assert!(report.segments_removed >= 2, "{report:?}");
        assert_eq!(report.segments_recycled, 0);
        assert!(report.bytes_reclaimed > 0);
        assert!(files(dir.path(), "free-").is_empty());
    }
    {
        let store = Store::open(dir.path(), opts(1 << 20)).unwrap();
        let report = fill_and_empty(&store, 30, 100 * KIB);
        assert_eq!(report.segments_recycled, 2, "{report:?}");
    }
    assert_eq!(files(dir.path(), "free-").len(), 2);
    // Reopened with recycling off, the kept files go.
    let store = Store::open(dir.path(), opts(1 << 20).recycle_segments(0)).unwrap();
    assert!(files(dir.path(), "free-").is_empty());
    assert_eq!(store.stats().recycled_segments, 0);
}

#[test]
fn damage_in_a_sealed_recycled_segment_is_corrupt() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = Store::open(dir.path(), opts(1 << 20)).unwrap();
        store.create_layer(LAYER, LayerConfig::default()).unwrap();
        fill_and_empty(&store, 40, 100 * KIB);
        // Through both pool files and into a new one.
        for i in 0..40 {
            put(&store, &format!("new/{i:03}"), &common::tagged(i, 90 * KIB));
        }
    }
    let recycled: Vec<String> = files(dir.path(), "seg-")
        .into_iter()
        .filter(|n| version(&dir.path().join(n)) == 2)
        .collect();
    let newest = files(dir.path(), "seg-").pop().unwrap();
    let sealed = recycled
        .iter()
        .find(|n| **n != newest)
        .expect("a sealed recycled segment");
    // The first record's header, damaged.
    let path = dir.path().join(sealed);
    let mut b = std::fs::read(&path).unwrap();
    b[32 + 9] ^= 0x40;
    std::fs::write(&path, &b).unwrap();
    let Err(err) = Store::open(dir.path(), opts(1 << 20)) else {
        panic!("open must fail")
    };
    assert_eq!(err.kind(), ErrorKind::Corrupt, "{err}");
}

// ----- power loss at every sync point -----------------------------------

#[derive(Debug, Clone)]
enum Op {
    Put(String, u64, usize),
    Delete(String),
    Compact,
}

fn workload(seed: u64, n: usize) -> Vec<Op> {
    let mut r = Rng::new(seed);
    (0..n)
        .map(|i| {
            let key = format!("k{}", r.below(6));
            match r.below(10) {
                0 | 1 => Op::Delete(key),
                2 => Op::Compact,
                // Up to 90 KiB: larger than the 64 KiB window of a
                // 256 KiB segment, so some regions take the big path.
                _ => Op::Put(key, seed * 1000 + i as u64, 1 + r.below(90 * 1024) as usize),
            }
        })
        .collect()
}

fn apply(m: &mut BTreeMap<String, Vec<u8>>, op: &Op) {
    match op {
        Op::Put(k, s, len) => {
            m.insert(k.clone(), common::tagged(*s, *len));
        }
        Op::Delete(k) => {
            m.remove(k);
        }
        Op::Compact => {}
    }
}

fn run(store: &Store, op: &Op) -> partstore::Result<()> {
    match op {
        Op::Put(k, s, len) => {
            let b = common::tagged(*s, *len);
            store
                .put_object(LAYER, k, PartBody::new(&b[..], b.len() as u64))
                .map(|_| ())
        }
        Op::Delete(k) => store.delete(LAYER, k),
        Op::Compact => store.compact().map(|_| ()),
    }
}

const SEGMENT: u64 = 256 << 10;

fn crash_opts(f: &Faulty) -> Options {
    Options::default()
        .durability(Durability::Sync)
        .segment_size(SEGMENT)
        .recycle_segments(2)
        .compact_threshold(0.3)
        .checkpoint_bytes(4096)
        .backend(Arc::new(f.clone()))
}

/// A store whose pool holds two emptied segments (acknowledged).
fn prepared(dir: &Path, f: &Faulty) -> Store {
    let store = Store::open(dir, crash_opts(f)).unwrap();
    store.create_layer(LAYER, LayerConfig::default()).unwrap();
    let report = fill_and_empty(&store, 12, 60 * KIB);
    assert_eq!(report.segments_recycled, 2, "{report:?}");
    store.wait_for_checkpoints();
    store
}

fn drive(store: &Store, ops: &[Op]) -> (BTreeMap<String, Vec<u8>>, BTreeMap<String, Vec<u8>>) {
    let mut m = BTreeMap::new();
    for op in ops {
        let mut after = m.clone();
        apply(&mut after, op);
        let r = run(store, op);
        store.wait_for_checkpoints();
        match r {
            Ok(()) => m = after,
            Err(_) => return (m, after),
        }
    }
    (m.clone(), m)
}

#[test]
fn power_loss_at_every_sync_point_in_recycled_segments() {
    let seeds: Vec<u64> = match std::env::var("PARTSTORE_CRASH_SEEDS") {
        Ok(s) => s.split(',').filter_map(|x| x.trim().parse().ok()).collect(),
        Err(_) => vec![1, 2],
    };
    let mut points = 0;
    for seed in seeds {
        let ops = workload(seed, 36);
        let (from, to) = {
            let dir = tempfile::tempdir().unwrap();
            let f = Faulty::new();
            let store = prepared(dir.path(), &f);
            let before = f.syncs();
            let (acked, _) = drive(&store, &ops);
            let after = f.syncs();
            assert_eq!(contents(&store), acked, "seed {seed}: clean run");
            drop(store);
            let reused = files(dir.path(), "seg-")
                .iter()
                .filter(|n| version(&dir.path().join(n)) == 2)
                .count();
            assert!(reused >= 1, "seed {seed}: no segment was recycled");
            (before, after)
        };
        for k in from..to {
            let dir = tempfile::tempdir().unwrap();
            let f = Faulty::new();
            let store = prepared(dir.path(), &f);
            f.crash_at_sync(k);
            let (acked, maybe) = drive(&store, &ops);
            assert!(f.crashed(), "seed {seed} sync {k}: no crash");
            drop(store);
            for variant in 0..2u64 {
                let mut rng = Rng::new(seed * 1_000_003 + k * 7 + variant);
                let out = tempfile::tempdir().unwrap();
                f.materialize(dir.path(), out.path(), &mut rng);
                let at = format!("seed {seed} sync {k} v{variant}");
                let reopen = || Options::default().segment_size(SEGMENT).prewrite(false);
                let mut seen = {
                    let store = Store::open(out.path(), reopen())
                        .unwrap_or_else(|e| panic!("{at}: open: {e}"));
                    let seen = contents(&store);
                    assert!(
                        seen == acked || seen == maybe,
                        "{at}: {:?}\nacked {:?}",
                        seen.keys(),
                        acked.keys()
                    );
                    assert!(store.verify().unwrap().is_clean(), "{at}: verify");
                    // Appends go on from the recovered tail (over whatever
                    // the crash left past it).
                    for i in 0..6u64 {
                        let b = common::tagged(90_000 + i, 7_000 * (i as usize + 1));
                        put(&store, &format!("after/{i}"), &b);
                    }
                    contents(&store)
                };
                for round in 0..2 {
                    let store = Store::open(out.path(), reopen())
                        .unwrap_or_else(|e| panic!("{at}: reopen {round}: {e}"));
                    assert_eq!(contents(&store), seen, "{at}: reopen {round}");
                    assert!(store.verify().unwrap().is_clean(), "{at}: verify {round}");
                    seen = contents(&store);
                }
                points += 1;
            }
        }
    }
    println!("crash points checked: {points}");
    assert!(points > 40, "only {points} crash points");
}

/// Offset of the metadata record that holds `key` in a segment file of
/// layer "l" (its payload: synced u64, tag u8, layer str, key str, ...).
fn meta_record_of(bytes: &[u8], key: &str) -> usize {
    let mut needle = (key.len() as u32).to_le_bytes().to_vec();
    needle.extend_from_slice(key.as_bytes());
    let at = bytes
        .windows(needle.len())
        .rposition(|w| w == needle)
        .unwrap_or_else(|| panic!("{key} not in the segment"));
    at - (24 + 8 + 1 + 4 + LAYER.len())
}

fn framed(bytes: &[u8], at: usize) -> usize {
    let len = u64::from_le_bytes(bytes[at + 8..at + 16].try_into().unwrap()) as usize;
    24 + len.div_ceil(8) * 8
}

/// A torn tail in a recycled segment: records written after the tear (not
/// acknowledged) are found within the window and zeroed in place, so no
/// later append can ever line up with them; the file keeps its size and
/// its old bytes further on.
#[test]
fn a_torn_tail_in_a_recycled_segment_is_zeroed_in_place() {
    let dir = tempfile::tempdir().unwrap();
    let o = || opts(1 << 20).durability(Durability::None);
    {
        let store = Store::open(dir.path(), o()).unwrap();
        store.create_layer(LAYER, LayerConfig::default()).unwrap();
        fill_and_empty(&store, 40, 100 * KIB);
        fill_until_recycled(&store, dir.path());
        for k in ["t/A", "t/B", "t/C", "t/D"] {
            put(&store, k, &common::tagged(7, 100));
        }
    }
    let seg = dir.path().join(files(dir.path(), "seg-").pop().unwrap());
    let mut b = std::fs::read(&seg).unwrap();
    let len = b.len();
    let (rb, rc, rd) = (
        meta_record_of(&b, "t/B"),
        meta_record_of(&b, "t/C"),
        meta_record_of(&b, "t/D"),
    );
    let mark = rd + framed(&b, rd);
    assert_eq!(&b[mark..mark + 4], b"PSR1", "the close's mark after D");
    // B's record torn, and the mark with it: C and D were written after
    // the tear and never made durable before it (no sync under None).
    b[rb..rb + 24].fill(0);
    b[mark..mark + 24].fill(0);
    std::fs::write(&seg, &b).unwrap();

    let store = Store::open(dir.path(), o()).unwrap();
    assert!(store.get(LAYER, "t/A").is_ok());
    for k in ["t/B", "t/C", "t/D"] {
        assert_eq!(
            store.get(LAYER, k).unwrap_err().kind(),
            ErrorKind::NotFound,
            "{k}"
        );
    }
    let after = std::fs::read(&seg).unwrap();
    assert_eq!(after.len(), len, "the file keeps its length (and blocks)");
    assert!(
        after[rc..rc + 24].iter().all(|x| *x == 0),
        "C's record zeroed"
    );
    assert!(
        after[rd..rd + 24].iter().all(|x| *x == 0),
        "D's record zeroed"
    );
    // Far past the window the file's earlier life is untouched.
    assert_eq!(after[len - 4096..], b[len - 4096..]);
    drop(store);
    let store = Store::open(dir.path(), o()).unwrap();
    assert!(store.verify().unwrap().is_clean());
}

/// Under `Durability::None` nothing syncs the log but a recycled segment's
/// window: an append that would end more than the window past the durable
/// point syncs first (here a 1 MiB segment: a 128 KiB window).
#[test]
fn appends_stay_within_the_window_of_the_durable_point() {
    let dir = tempfile::tempdir().unwrap();
    let f = Faulty::new();
    let o = || {
        Options::default()
            .durability(Durability::None)
            .segment_size(1 << 20)
            .recycle_segments(2)
            .backend(Arc::new(f.clone()))
    };
    let store = Store::open(dir.path(), o()).unwrap();
    store.create_layer(LAYER, LayerConfig::default()).unwrap();
    // In a new segment: no sync for 600 KiB of puts.
    let before = f.syncs();
    for i in 0..30 {
        put(&store, &format!("a/{i}"), &common::tagged(i, 20 * KIB));
    }
    assert_eq!(f.syncs(), before, "None syncs nothing in a new segment");
    fill_and_empty(&store, 40, 100 * KIB);
    fill_until_recycled(&store, dir.path());
    let before = f.syncs();
    for i in 0..30 {
        put(&store, &format!("b/{i}"), &common::tagged(i, 20 * KIB));
    }
    let syncs = f.syncs() - before;
    // 600 KiB in windows of 128 KiB: a sync at least every ~6 puts.
    assert!((4..=8).contains(&syncs), "{syncs} syncs for 600 KiB");
}

// ----- damage all along the last operation in a recycled segment --------

/// The records of recycled segment `id`'s file (headers valid with its
/// salt): (offset, framed length), and where they stop.
fn salted_records(bytes: &[u8], id: u64) -> (Vec<(usize, usize)>, usize) {
    let mut out = Vec::new();
    let mut pos = 32;
    while pos + 24 <= bytes.len() {
        let h = &bytes[pos..pos + 24];
        let crc = crc32c::crc32c_append(crc32c::crc32c(&id.to_le_bytes()), &h[..20]);
        if h[..4] != *b"PSR1" || h[20..24] != crc.to_le_bytes() {
            break;
        }
        let len = u64::from_le_bytes(h[8..16].try_into().unwrap()) as usize;
        let framed = 24 + len.div_ceil(8) * 8;
        out.push((pos, framed));
        pos += framed;
    }
    (out, pos)
}

fn newest_segment(dir: &Path) -> (std::path::PathBuf, u64) {
    let name = files(dir, "seg-").pop().unwrap();
    let id = name[4..name.len() - 4].parse().unwrap();
    (dir.join(name), id)
}

fn copy_dir(from: &Path, to: &Path) {
    let _ = std::fs::remove_dir_all(to);
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
    }
}

/// The last operation's bytes in a recycled segment, damaged at offsets all
/// along them: cut there, zeros from there, garbage from there, and, what a
/// recycled file adds, the file's *old* bytes from there (sectors the
/// operation's write never reached still hold the earlier life). Each
/// image opens to the state before or after the operation, `verify()` is
/// clean, a second open changes nothing, and writes after the recovery
/// read back after another reopen.
#[test]
fn damage_along_the_last_operation_in_a_recycled_segment() {
    let o = || opts(SEGMENT).durability(Durability::Sync);
    for (name, len) in [("small put", 3000usize), ("put over the window", 100 * KIB)] {
        let work = tempfile::tempdir().unwrap();
        let dir = work.path().join("store");
        let live = {
            let store = Store::open(&dir, o()).unwrap();
            store.create_layer(LAYER, LayerConfig::default()).unwrap();
            fill_and_empty(&store, 12, 60 * KIB);
            let mut live = fill_until_recycled(&store, &dir);
            for j in 0..3 {
                let b = common::tagged(100 + j, 5000);
                put(&store, &format!("r/{j}"), &b);
                live.insert(format!("r/{j}"), b);
            }
            live
        };
        // Reopened (the close wrote its mark and zero header), the final
        // operation, and the files as a crash right after it leaves them.
        let before_dir = work.path().join("before");
        copy_dir(&dir, &before_dir);
        let body = common::tagged(777, len);
        let crashed = work.path().join("crashed");
        {
            let store = Store::open(&dir, o()).unwrap();
            put(&store, "final", &body);
            copy_dir(&dir, &crashed);
        }
        let (seg, id) = newest_segment(&crashed);
        assert_eq!(version(&seg), 2, "{name}: not in a recycled segment");
        let seg_name = seg.file_name().unwrap().to_owned();
        let old = std::fs::read(before_dir.join(&seg_name)).unwrap();
        let img = std::fs::read(&seg).unwrap();
        let (_, start) = salted_records(&old, id);
        let (_, end) = salted_records(&img, id);
        assert!(end > start, "{name}: {start}..{end}");
        let mut after = live.clone();
        after.insert("final".to_string(), body.clone());

        let mut points: Vec<usize> = (start..=end).step_by(97.max((end - start) / 250)).collect();
        points.extend(start..start + 32);
        points.extend(end.saturating_sub(64)..=end);
        points.sort_unstable();
        points.dedup();
        let scratch = work.path().join("scratch");
        let mut cases = 0;
        for (i, c) in points.into_iter().enumerate() {
            for kind in 0..4 {
                copy_dir(&crashed, &scratch);
                let path = scratch.join(&seg_name);
                let mut b = img.clone();
                let what = match kind {
                    0 => {
                        b.truncate(c);
                        "cut"
                    }
                    1 => {
                        b[c..end].fill(0);
                        "zeros"
                    }
                    2 => {
                        let g = common::gen(c as u64, end - c);
                        b[c..end].copy_from_slice(&g);
                        "garbage"
                    }
                    _ => {
                        b[c..end].copy_from_slice(&old[c..end]);
                        "old bytes"
                    }
                };
                std::fs::write(&path, &b).unwrap();
                let ctx = format!("{name}: {what} from {c} (op {start}..{end})");
                let s = Store::open(&scratch, o()).unwrap_or_else(|e| panic!("{ctx}: open: {e}"));
                let got = contents(&s);
                if c <= start {
                    assert_eq!(got, live, "{ctx}: must be absent");
                } else if c == end {
                    assert_eq!(got, after, "{ctx}: must be present");
                } else {
                    assert!(got == live || got == after, "{ctx}: {:?}", got.keys());
                }
                assert!(s.verify().unwrap().is_clean(), "{ctx}: verify");
                drop(s);
                let files_once = std::fs::read(&path).unwrap();
                let s = Store::open(&scratch, o()).unwrap_or_else(|e| panic!("{ctx}: reopen: {e}"));
                assert_eq!(contents(&s), got, "{ctx}: second open");
                drop(s);
                // (Nothing was appended: no close mark either.)
                assert!(
                    std::fs::read(&path).unwrap() == files_once,
                    "{ctx}: the second open changed the segment"
                );
                if i % 3 == 0 {
                    let s = Store::open(&scratch, o()).unwrap();
                    let fresh = common::tagged(5000 + i as u64, 9000);
                    put(&s, "after", &fresh);
                    drop(s);
                    let s = Store::open(&scratch, o())
                        .unwrap_or_else(|e| panic!("{ctx}: open after a write: {e}"));
                    let mut want = got.clone();
                    want.insert("after".to_string(), fresh);
                    assert_eq!(contents(&s), want, "{ctx}: write after recovery");
                    assert!(s.verify().unwrap().is_clean(), "{ctx}");
                }
                cases += 1;
            }
        }
        println!("{name}: {cases} damaged images");
    }
}

// ----- a full disk ---------------------------------------------------------

/// The real file system, except that while `full` is set every block
/// allocation fails with ENOSPC, until a kept segment file is deleted.
#[derive(Debug, Clone, Default)]
struct FullDisk {
    full: Arc<std::sync::atomic::AtomicBool>,
}

struct FullFile {
    full: Arc<std::sync::atomic::AtomicBool>,
    real: Arc<dyn partstore::backend::BackendFile>,
}

impl FullDisk {
    fn wrap(
        &self,
        real: Arc<dyn partstore::backend::BackendFile>,
    ) -> Arc<dyn partstore::backend::BackendFile> {
        Arc::new(FullFile {
            full: Arc::clone(&self.full),
            real,
        })
    }
}

impl partstore::backend::Backend for FullDisk {
    fn create_dir_all(&self, dir: &Path) -> std::io::Result<()> {
        partstore::backend::StdBackend.create_dir_all(dir)
    }
    fn read_dir(&self, dir: &Path) -> std::io::Result<Vec<String>> {
        partstore::backend::StdBackend.read_dir(dir)
    }
    fn create_new(&self, path: &Path) -> std::io::Result<Arc<dyn partstore::backend::BackendFile>> {
        Ok(self.wrap(partstore::backend::StdBackend.create_new(path)?))
    }
    fn open(&self, path: &Path) -> std::io::Result<Arc<dyn partstore::backend::BackendFile>> {
        Ok(self.wrap(partstore::backend::StdBackend.open(path)?))
    }
    fn remove_file(&self, path: &Path) -> std::io::Result<()> {
        partstore::backend::StdBackend.remove_file(path)?;
        if path
            .file_name()
            .is_some_and(|n| n.to_string_lossy().starts_with("free-"))
        {
            self.full.store(false, std::sync::atomic::Ordering::SeqCst);
        }
        Ok(())
    }
    fn sync_dir(&self, dir: &Path) -> std::io::Result<()> {
        partstore::backend::StdBackend.sync_dir(dir)
    }
    fn allocated_bytes(&self, path: &Path) -> std::io::Result<u64> {
        partstore::backend::StdBackend.allocated_bytes(path)
    }
    fn rename(&self, from: &Path, to: &Path) -> std::io::Result<()> {
        partstore::backend::StdBackend.rename(from, to)
    }
}

impl partstore::backend::BackendFile for FullFile {
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> std::io::Result<()> {
        self.real.read_exact_at(buf, offset)
    }
    fn write_all_at(&self, buf: &[u8], offset: u64) -> std::io::Result<()> {
        self.real.write_all_at(buf, offset)
    }
    fn sync_data(&self) -> std::io::Result<()> {
        self.real.sync_data()
    }
    fn sync_all(&self) -> std::io::Result<()> {
        self.real.sync_all()
    }
    fn set_len(&self, len: u64) -> std::io::Result<()> {
        self.real.set_len(len)
    }
    fn len(&self) -> std::io::Result<u64> {
        self.real.len()
    }
    fn next_data(&self, offset: u64) -> std::io::Result<Option<u64>> {
        self.real.next_data(offset)
    }
    fn next_hole(&self, offset: u64) -> std::io::Result<u64> {
        self.real.next_hole(offset)
    }
    fn allocate(&self, offset: u64, len: u64) -> std::io::Result<()> {
        // Full: blocks that exist already are fine, new ones are not.
        let new_blocks = len > 0 && self.real.next_hole(offset)? < offset + len;
        if new_blocks && self.full.load(std::sync::atomic::Ordering::SeqCst) {
            return Err(std::io::Error::from_raw_os_error(28));
        }
        self.real.allocate(offset, len)
    }
    fn punch_hole(&self, offset: u64, len: u64) -> std::io::Result<()> {
        self.real.punch_hole(offset, len)
    }
    fn map(&self) -> std::io::Result<partstore::backend::Map> {
        self.real.map()
    }
}

/// A write that finds the disk full deletes the kept segment files and
/// tries again: the space recycling holds goes back when it is needed.
#[test]
fn a_full_disk_takes_the_kept_files_back() {
    // A put into the active segment (8 MiB segments: only a megabyte
    // past the tail is allocated), then one larger than a segment (a new
    // one, larger than the kept files), then no kept files at all.
    for (segment, recycle, len) in [
        (8 << 20, 2, 2 << 20),
        (1 << 20, 2, 2 << 20),
        (1 << 20, 0, 2 << 20),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let disk = FullDisk::default();
        let o = || {
            opts(segment)
                .recycle_segments(recycle)
                .backend(Arc::new(disk.clone()))
        };
        let store = Store::open(dir.path(), o()).unwrap();
        store.create_layer(LAYER, LayerConfig::default()).unwrap();
        fill_and_empty(&store, (segment / (40 * KIB as u64)) as usize, 100 * KIB);
        assert_eq!(files(dir.path(), "free-").len(), recycle);
        disk.full.store(true, std::sync::atomic::Ordering::SeqCst);
        let body = common::tagged(1, len);
        let r = store.put_object(LAYER, "big", PartBody::new(&body[..], body.len() as u64));
        if recycle == 0 {
            let e = r.err().and_then(|e| e.reason());
            assert_eq!(
                e,
                Some(partstore::Reason::NoSpace),
                "no kept files to give back"
            );
            continue;
        }
        r.unwrap_or_else(|e| panic!("the put should take the kept files' space: {e}"));
        assert!(files(dir.path(), "free-").is_empty());
        assert_eq!(store.stats().recycled_segments, 0);
        drop(store);
        let store = Store::open(dir.path(), o()).unwrap();
        assert_eq!(store.get(LAYER, "big").unwrap().to_vec().unwrap(), body);
    }
}
