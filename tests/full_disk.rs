//! A full disk on real small file systems (issue 14, items 1–2): the store
//! fails cleanly with `NoSpace`, reopens while the disk is still full (no
//! crash, no SIGBUS from a hole read through a map), and frees space through
//! its own calls alone: delete + abort + `compact()` give blocks back, then
//! puts succeed again. No acknowledged byte is lost at any point.
//!
//! Each round runs on a fresh file system the test makes and mounts: a
//! 40 MiB tmpfs and a 64 MiB ext4 image on a loop device. Mounting needs
//! root (CI runs as root); otherwise, or when mounting fails, each test
//! prints why and passes without checking anything. A guard unmounts and
//! removes everything, also when an assertion fails. Every round runs under
//! `Durability::Sync` and again under `None` (whose small appends are
//! copies into a writable map of the active segment).
//!
//! Rounds (each prints its figures; run with `--nocapture` to see them):
//! - `puts`: ~1 MiB objects until ENOSPC, then 256 KiB, 64 KiB, 4 KiB ones
//!   until each size fails too (default 1 GiB segments and 8 MiB ones);
//! - `mixed`: puts, 5 MiB multipart parts (new and overwritten), completes,
//!   aborts, deletes and compactions (half of them while a reader pins a
//!   segment, so compaction must move data) in a seeded random order until
//!   ENOSPC, then 40 more on the full disk, each either done or failed with
//!   `NoSpace` having changed nothing; halfway another process's file takes
//!   every byte left (8 MiB segments);
//! - `filler`: the store fills the disk, then another process's file takes
//!   every byte left (1 GiB and 8 MiB segments);
//! - `filler-rotating`: 1.5 MiB objects in 2 MiB segments, so the put that
//!   meets ENOSPC has just started a segment; the filler runs right then.
//!   Before `Log::rotate` allocated a new segment's reserve before switching
//!   to it, the new segment had one block for records: ~80 deletes fit,
//!   then deletes and `compact()` failed for good;
//! - `filler-packed`: 2 MiB − 4 KiB objects in 2 MiB segments, which left
//!   ~4 KiB after each object for records until a data region had to leave
//!   room for them: the same dead end after ~80 deletes.
//!
//! After each: drop the store, reopen it while the disk is full (timed),
//! check every acknowledged object byte for byte, delete most objects and
//! abort every upload, `compact()`, and check that the report and `statvfs`
//! both show space given back, that puts work again, and that everything
//! acknowledged is intact after another reopen (and `verify()` is clean).

mod common;

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use common::faulty::Rng;
use common::gen;
use partstore::{
    Error, ErrorKind, LayerConfig, ListItem, ListOptions, ObjectInfo, Options, PartBody, PartInfo,
    Reason, Store, UploadId, UploadSummary,
};

const L: &str = "l";
const OCTET: &str = "application/octet-stream";
const MIB: usize = 1 << 20;
const PART: usize = 5 * MIB;

// ----- file systems made by the test --------------------------------------

#[derive(Debug, Clone, Copy)]
enum Kind {
    /// tmpfs, `size=40m`.
    Tmpfs,
    /// ext4 on a 64 MiB image, loop-mounted.
    Ext4,
}

/// A mounted file system; unmounted (and its image removed) on drop.
struct Fs {
    kind: Kind,
    mounted: bool,
    // Dropped after `drop` unmounts: the mount point, then the image.
    mnt: tempfile::TempDir,
    _image: Option<tempfile::TempDir>,
}

fn run(cmd: &str, args: &[&str]) -> Result<(), String> {
    let out = Command::new(cmd)
        .args(args)
        .output()
        .map_err(|e| format!("{cmd}: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{cmd} {}: {} {}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .map(|l| l.split_whitespace().nth(2) == Some("0"))
        })
        .unwrap_or(false)
}

impl Fs {
    fn mount(kind: Kind) -> Result<Fs, String> {
        if !is_root() {
            return Err("not running as root (mounting needs it)".into());
        }
        let mnt = tempfile::Builder::new()
            .prefix("partstore-fulldisk-")
            .tempdir()
            .map_err(|e| e.to_string())?;
        let mut fs = Fs {
            kind,
            mounted: false,
            mnt,
            _image: None,
        };
        let at = fs
            .path()
            .to_str()
            .ok_or("mount point is not UTF-8")?
            .to_string();
        match kind {
            Kind::Tmpfs => run(
                "mount",
                &["-t", "tmpfs", "-o", "size=40m", "partstore-test", &at],
            )?,
            Kind::Ext4 => {
                let dir = tempfile::Builder::new()
                    .prefix("partstore-fulldisk-img-")
                    .tempdir()
                    .map_err(|e| e.to_string())?;
                let image = dir.path().join("ext4.img");
                std::fs::File::create(&image)
                    .and_then(|f| f.set_len(64 * MIB as u64))
                    .map_err(|e| format!("creating {}: {e}", image.display()))?;
                fs._image = Some(dir);
                let image = image.to_str().ok_or("image path is not UTF-8")?;
                run("mkfs.ext4", &["-q", "-F", image])?;
                run("mount", &["-o", "loop", image, &at])?;
            }
        }
        fs.mounted = true;
        Ok(fs)
    }

    fn path(&self) -> &Path {
        self.mnt.path()
    }

    /// Bytes left at all, root's reserve included.
    fn free_all(&self) -> u64 {
        let s = rustix::fs::statvfs(self.path()).unwrap();
        s.f_bfree * s.f_frsize
    }
}

impl Drop for Fs {
    fn drop(&mut self) {
        if self.mounted {
            let at = self.path().to_string_lossy().to_string();
            if run("umount", &[&at]).is_err() {
                let _ = run("umount", &["-l", &at]);
            }
        }
    }
}

/// The file system, or `None` after printing why the test is skipped.
fn mount_or_skip(kind: Kind, test: &str) -> Option<Fs> {
    match Fs::mount(kind) {
        Ok(fs) => Some(fs),
        Err(why) => {
            println!("{test}: skipped ({kind:?}): {why}");
            None
        }
    }
}

// ----- what the store must hold -------------------------------------------

/// A body: the concatenation of `gen(seed, len)` chunks (one for a put, one
/// per part for a completed upload).
type Body = Vec<(u64, usize)>;

fn bytes(b: &Body) -> Vec<u8> {
    b.iter().flat_map(|(seed, len)| gen(*seed, *len)).collect()
}

/// An open upload's parts: number -> (seed, len).
type Parts = BTreeMap<u32, (u64, usize)>;

/// Acknowledged state: objects and open uploads by key.
#[derive(Debug, Clone, Default)]
struct Model {
    objects: BTreeMap<String, Body>,
    uploads: BTreeMap<String, (UploadId, Parts)>,
    next: u64,
}

impl Model {
    fn fresh(&mut self, prefix: &str) -> (String, u64) {
        self.next += 1;
        (format!("{prefix}{:05}", self.next), self.next)
    }

    fn object_bytes(&self) -> u64 {
        self.objects
            .values()
            .flatten()
            .map(|(_, len)| *len as u64)
            .sum()
    }
}

/// What the store shows, for "a failed call changed nothing".
#[derive(Debug, PartialEq)]
struct Seen {
    objects: Vec<ObjectInfo>,
    uploads: Vec<(UploadSummary, Vec<PartInfo>)>,
    live_bytes: u64,
}

fn seen(s: &Store) -> Seen {
    let page = s
        .list(L, &ListOptions::default().deep(true).limit(1000))
        .unwrap();
    assert!(page.next_page_token.is_none());
    let objects = page
        .items
        .into_iter()
        .filter_map(|i| match i {
            ListItem::Object(o) => Some(o),
            _ => None,
        })
        .collect();
    let uploads = s
        .list_uploads(L)
        .unwrap()
        .into_iter()
        .map(|u| {
            let parts = s.list_parts(L, &u.upload).unwrap();
            (u, parts)
        })
        .collect();
    Seen {
        objects,
        uploads,
        live_bytes: s.stats().live_bytes,
    }
}

/// Every acknowledged object byte for byte, every open upload's parts by
/// size and CRC, and nothing else.
fn check(s: &Store, m: &Model, when: &str) {
    let now = seen(s);
    let keys: Vec<&String> = now.objects.iter().map(|o| &o.key).collect();
    assert_eq!(
        keys,
        m.objects.keys().collect::<Vec<_>>(),
        "{when}: objects"
    );
    for (key, body) in &m.objects {
        let got = s.get(L, key).unwrap().to_vec().unwrap();
        assert!(got == bytes(body), "{when}: object {key} differs");
    }
    let uploads: Vec<&String> = now.uploads.iter().map(|(u, _)| &u.key).collect();
    assert_eq!(
        uploads,
        m.uploads.keys().collect::<Vec<_>>(),
        "{when}: uploads"
    );
    for (u, parts) in &now.uploads {
        let (id, want) = &m.uploads[&u.key];
        assert_eq!(u.upload, *id, "{when}: upload {}", u.key);
        let got: Vec<(u32, u64, u32)> = parts
            .iter()
            .map(|p| (p.part_number, p.size, p.crc32c))
            .collect();
        let want: Vec<(u32, u64, u32)> = want
            .iter()
            .map(|(n, (seed, len))| (*n, *len as u64, crc32c::crc32c(&gen(*seed, *len))))
            .collect();
        assert_eq!(got, want, "{when}: parts of {}", u.key);
    }
}

fn expect_no_space(e: &Error, what: &str) {
    assert_eq!(
        (e.kind(), e.reason()),
        (ErrorKind::Io, Some(Reason::NoSpace)),
        "{what}: {e}"
    );
}

// ----- operations that keep the model ---------------------------------------

/// Runs `op` on the store; on `Ok` applies `apply` to the model. A failure
/// must be `NoSpace` and change nothing the store shows; returns whether it
/// failed.
fn attempt<T>(
    s: &Store,
    m: &mut Model,
    what: &str,
    op: impl FnOnce(&Store) -> partstore::Result<T>,
    apply: impl FnOnce(&mut Model, T),
) -> bool {
    let before = seen(s);
    match op(s) {
        Ok(v) => {
            apply(m, v);
            false
        }
        Err(e) => {
            expect_no_space(&e, what);
            assert_eq!(seen(s), before, "{what}: the failed call changed the store");
            true
        }
    }
}

fn put(s: &Store, m: &mut Model, len: usize) -> bool {
    let (key, seed) = m.fresh("o");
    let body = gen(seed, len);
    let failed = attempt(
        s,
        m,
        &format!("put {key} ({len} bytes)"),
        |s| s.put_object(L, &key, PartBody::new(&body[..], len as u64)),
        |m, _| {
            m.objects.insert(key.clone(), vec![(seed, len)]);
        },
    );
    if failed {
        let e = s.head(L, &key).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::NotFound, "failed put {key} is visible");
    }
    failed
}

fn upload_part(s: &Store, m: &mut Model, key: &str, n: u32, len: usize) -> bool {
    let (_, seed) = m.fresh("p");
    let id = m.uploads[key].0;
    let body = gen(seed, len);
    attempt(
        s,
        m,
        &format!("part {n} of {key} ({len} bytes)"),
        |s| s.upload_part(L, &id, n, PartBody::new(&body[..], len as u64)),
        |m, _| {
            m.uploads.get_mut(key).unwrap().1.insert(n, (seed, len));
        },
    )
}

fn start(s: &Store, m: &mut Model) -> bool {
    let (key, _) = m.fresh("u");
    attempt(
        s,
        m,
        &format!("start {key}"),
        |s| s.start_multipart(L, &key, OCTET),
        |m, id| {
            m.uploads.insert(key.clone(), (id, BTreeMap::new()));
        },
    )
}

fn complete(s: &Store, m: &mut Model, key: &str) -> bool {
    let id = m.uploads[key].0;
    attempt(
        s,
        m,
        &format!("complete {key}"),
        |s| s.complete_multipart(L, &id),
        |m, _| {
            let (_, parts) = m.uploads.remove(key).unwrap();
            m.objects
                .insert(key.to_string(), parts.into_values().collect());
        },
    )
}

fn abort(s: &Store, m: &mut Model, key: &str) -> bool {
    let id = m.uploads[key].0;
    attempt(
        s,
        m,
        &format!("abort {key}"),
        |s| s.abort_multipart(L, &id),
        |m, ()| {
            m.uploads.remove(key);
        },
    )
}

fn delete(s: &Store, m: &mut Model, key: &str) -> bool {
    attempt(
        s,
        m,
        &format!("delete {key}"),
        |s| s.delete(L, key),
        |m, ()| {
            m.objects.remove(key);
        },
    )
}

/// ~1 MiB, not block-aligned.
fn about_a_mib(rng: &mut Rng) -> usize {
    MIB - 512 + rng.below(1024) as usize
}

// ----- the rounds ------------------------------------------------------------

/// What a round measured.
#[derive(Debug, Default)]
struct Figures {
    /// Objects (of the round's first size) acknowledged before the first
    /// ENOSPC.
    acked_before_enospc: usize,
    /// Objects (and parts) acknowledged until the disk was full.
    acked_total: usize,
    acked_bytes: u64,
    /// Calls that failed with NoSpace, by kind.
    no_space: BTreeMap<&'static str, usize>,
    /// Calls that succeeded on the full disk (after the first ENOSPC).
    done_when_full: BTreeMap<&'static str, usize>,
    free_when_full: u64,
    reopen_while_full: Duration,
    deleted: usize,
    reclaimed_report: u64,
    moved: u64,
    free_before_compact: u64,
    free_after_compact: u64,
    puts_after: usize,
}

thread_local! {
    /// The durability of the stores this test thread's rounds open.
    static DURABILITY: std::cell::Cell<partstore::Durability> =
        const { std::cell::Cell::new(partstore::Durability::Sync) };
}

fn opts(segment: u64) -> Options {
    Options::default()
        .segment_size(segment)
        .durability(DURABILITY.get())
}

/// The rounds' common end: with the disk still full, drop and reopen
/// (timed), check everything, free space through the store alone, put
/// again, and check everything after one more reopen.
fn recover_and_free(
    fs: &Fs,
    dir: &Path,
    segment: u64,
    mut m: Model,
    f: &mut Figures,
    rng: &mut Rng,
) {
    let t = Instant::now();
    let s = Store::open(dir, opts(segment)).expect("reopen while the disk is full");
    f.reopen_while_full = t.elapsed();
    check(&s, &m, "reopened while full");
    // Free through the store alone: delete three objects of four, abort
    // every open upload.
    let keys: Vec<String> = m.objects.keys().cloned().collect();
    for (i, key) in keys.iter().enumerate() {
        if i % 4 != 3 {
            if let Err(e) = s.delete(L, key) {
                let c = s.compact();
                panic!(
                    "delete {key} on a full disk (after {} deletes): {e}; compact() then: {c:?}",
                    f.deleted
                );
            }
            m.objects.remove(key);
            f.deleted += 1;
        }
    }
    let uploads: Vec<String> = m.uploads.keys().cloned().collect();
    for key in uploads {
        let id = m.uploads[&key].0;
        if let Err(e) = s.abort_multipart(L, &id) {
            panic!("abort {key} on a full disk: {e}");
        }
        m.uploads.remove(&key);
    }
    check(&s, &m, "after deletes on a full disk");
    f.free_before_compact = fs.free_all();
    let report = s.compact().expect("compact on a full disk");
    f.free_after_compact = fs.free_all();
    f.reclaimed_report = report.bytes_reclaimed;
    f.moved = report.bytes_moved;
    assert!(
        report.bytes_reclaimed > 0,
        "compact reclaimed nothing: {report:?}"
    );
    assert!(
        f.free_after_compact > f.free_before_compact,
        "statvfs shows no space given back ({} -> {})",
        f.free_before_compact,
        f.free_after_compact
    );
    check(&s, &m, "after compaction");
    // Puts work again: at least one, and ~1 MiB ones up to a quarter of
    // the space freed (a segment's allocated metadata reserve may cost as
    // much as an object in small segments).
    let budget = (f.free_after_compact - f.free_before_compact) / 4;
    let mut written = 0u64;
    while written < budget.max(1) {
        let len = about_a_mib(rng);
        assert!(!put(&s, &mut m, len), "put after compaction failed");
        written += len as u64;
        f.puts_after += 1;
    }
    check(&s, &m, "after the new puts");
    assert!(s.verify().unwrap().is_clean());
    drop(s);
    let s = Store::open(dir, opts(segment)).unwrap();
    check(&s, &m, "final reopen");
    assert!(s.verify().unwrap().is_clean());
}

/// Puts of `len()` bytes until one fails with NoSpace; returns how many
/// were acknowledged.
fn fill(s: &Store, m: &mut Model, f: &mut Figures, mut len: impl FnMut() -> usize) -> usize {
    for n in 0..100_000 {
        let size = len();
        if put(s, m, size) {
            *f.no_space.entry("put").or_default() += 1;
            return n;
        }
        f.acked_total += 1;
        f.acked_bytes += size as u64;
    }
    panic!("100000 puts and the disk is not full");
}

/// ~1 MiB objects until ENOSPC, then smaller and smaller ones.
fn round_puts(fs: &Fs, segment: u64, seed: u64) -> Figures {
    let dir = fs.path().join("store");
    let mut rng = Rng::new(seed);
    let mut f = Figures::default();
    let mut m = Model::default();
    {
        let s = Store::open(&dir, opts(segment)).unwrap();
        s.create_layer(L, LayerConfig::default()).unwrap();
        f.acked_before_enospc = fill(&s, &mut m, &mut f, || about_a_mib(&mut rng));
        for small in [256 << 10, 64 << 10, 4 << 10] {
            fill(&s, &mut m, &mut f, || small);
        }
        f.free_when_full = fs.free_all();
        check(&s, &m, "full");
    }
    recover_and_free(fs, &dir, segment, m, &mut f, &mut rng);
    f
}

/// Puts, parts, completes, aborts, deletes and compactions (some while a
/// reader pins segments) in a random order until ENOSPC, then 40 more on
/// the full disk; after 20 of those, another process takes every byte left.
fn round_mixed(fs: &Fs, segment: u64, seed: u64) -> Figures {
    let dir = fs.path().join("store");
    let mut rng = Rng::new(seed);
    let mut f = Figures::default();
    let mut m = Model::default();
    {
        let s = Store::open(&dir, opts(segment)).unwrap();
        s.create_layer(L, LayerConfig::default()).unwrap();
        let mut full_for = 0;
        for _ in 0..10_000 {
            let open: Vec<String> = m.uploads.keys().cloned().collect();
            let pick = |rng: &mut Rng| open[rng.below(open.len() as u64) as usize].clone();
            let (kind, failed) = match rng.below(10) {
                0..=2 => ("put", put(&s, &mut m, about_a_mib(&mut rng))),
                3..=5 if !open.is_empty() => {
                    let key = pick(&mut rng);
                    let parts = m.uploads[&key].1.len() as u32;
                    // A new part, or one overwritten (its old data is garbage).
                    let n = if parts > 0 && rng.below(3) == 0 {
                        1 + rng.below(parts as u64) as u32
                    } else {
                        parts + 1
                    };
                    ("part", upload_part(&s, &mut m, &key, n, PART))
                }
                6 if open.len() < 3 => ("start", start(&s, &mut m)),
                7 if !open.is_empty() => {
                    let key = pick(&mut rng);
                    if m.uploads[&key].1.is_empty() {
                        ("abort", abort(&s, &mut m, &key))
                    } else {
                        ("complete", complete(&s, &mut m, &key))
                    }
                }
                8 if !m.objects.is_empty() && rng.below(4) == 0 => {
                    let keys: Vec<String> = m.objects.keys().cloned().collect();
                    let key = keys[rng.below(keys.len() as u64) as usize].clone();
                    ("delete", delete(&s, &mut m, &key))
                }
                9 => {
                    // Half the time a reader holds an object: its segments
                    // are not punched, and compaction must move their live
                    // data instead, which needs space.
                    let keys: Vec<&String> = m.objects.keys().collect();
                    let pin = (!keys.is_empty() && rng.coin()).then(|| {
                        let key = keys[rng.below(keys.len() as u64) as usize];
                        s.get(L, key).unwrap()
                    });
                    let failed = attempt(&s, &mut m, "compact", |s| s.compact(), |_, _| ());
                    drop(pin);
                    ("compact", failed)
                }
                _ => ("put", put(&s, &mut m, about_a_mib(&mut rng))),
            };
            if failed {
                *f.no_space.entry(kind).or_default() += 1;
                if full_for == 0 {
                    f.acked_before_enospc = f.acked_total;
                }
            } else {
                if matches!(kind, "put" | "part") {
                    f.acked_total += 1;
                }
                if full_for > 0 {
                    *f.done_when_full.entry(kind).or_default() += 1;
                }
            }
            if failed || full_for > 0 {
                full_for += 1;
            }
            if full_for == 20 {
                // Halfway, another process takes whatever is left.
                fill_disk(fs);
            }
            if full_for > 40 {
                break;
            }
        }
        assert!(full_for > 40, "the disk never filled");
        // A compaction that has to move data on the full disk: readers pin
        // every object (so no segment is punched), two objects in three
        // are deleted, and the segments that are now mostly garbage have
        // live data to move.
        let pins: Vec<partstore::Blob> = m.objects.keys().map(|k| s.get(L, k).unwrap()).collect();
        let keys: Vec<String> = m.objects.keys().cloned().collect();
        for (i, key) in keys.iter().enumerate() {
            if i % 3 != 0 {
                assert!(
                    !delete(&s, &mut m, key),
                    "delete {key} on a full disk failed"
                );
            }
        }
        let failed = attempt(
            &s,
            &mut m,
            "compact while pinned",
            |s| s.compact(),
            |_, _| (),
        );
        *if failed {
            f.no_space.entry("compact (pinned)")
        } else {
            f.done_when_full.entry("compact (pinned)")
        }
        .or_default() += 1;
        drop(pins);
        f.acked_bytes = m.object_bytes();
        f.free_when_full = fs.free_all();
        check(&s, &m, "full");
    }
    recover_and_free(fs, &dir, segment, m, &mut f, &mut rng);
    f
}

/// The store fills the disk with ~1 MiB objects, then another file takes
/// every byte that is left.
fn round_filler(fs: &Fs, segment: u64, seed: u64) -> Figures {
    let dir = fs.path().join("store");
    let mut rng = Rng::new(seed);
    let mut f = Figures::default();
    let mut m = Model::default();
    {
        let s = Store::open(&dir, opts(segment)).unwrap();
        s.create_layer(L, LayerConfig::default()).unwrap();
        f.acked_before_enospc = fill(&s, &mut m, &mut f, || about_a_mib(&mut rng));
        check(&s, &m, "full");
    }
    fill_disk(fs);
    f.free_when_full = fs.free_all();
    recover_and_free(fs, &dir, segment, m, &mut f, &mut rng);
    f
}

/// Another process's file takes every byte left on the file system.
fn fill_disk(fs: &Fs) {
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(fs.path().join("filler"))
        .unwrap();
    for chunk in [1 << 20, 64 << 10, 4 << 10, 512, 1] {
        let buf = vec![0xA5u8; chunk];
        while file.write_all(&buf).is_ok() {}
    }
    let _ = file.sync_all();
}

/// Every put starts a new segment (1.5 MiB objects in 2 MiB segments), so
/// the put that meets ENOSPC has just made one; then another file takes
/// every byte left, and the deletes that follow (of 200 small objects and
/// most large ones) need more than the new segment's first page.
fn round_filler_rotating(fs: &Fs, segment: u64, seed: u64) -> Figures {
    filler_after_puts_of(fs, segment, seed, 3 * MIB / 2)
}

fn round_filler_packed(fs: &Fs, segment: u64, seed: u64) -> Figures {
    filler_after_puts_of(fs, segment, seed, 2 * MIB - 4096)
}

fn filler_after_puts_of(fs: &Fs, segment: u64, seed: u64, big: usize) -> Figures {
    let dir = fs.path().join("store");
    let mut rng = Rng::new(seed);
    let mut f = Figures::default();
    let mut m = Model::default();
    {
        let s = Store::open(&dir, opts(segment)).unwrap();
        s.create_layer(L, LayerConfig::default()).unwrap();
        for _ in 0..200 {
            assert!(!put(&s, &mut m, 1000));
        }
        f.acked_before_enospc = fill(&s, &mut m, &mut f, || big);
        // Right after the failed put, before the store writes anything
        // else, another process takes every byte left.
        fill_disk(fs);
        f.free_when_full = fs.free_all();
        check(&s, &m, "full");
    }
    let _ = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "echo; ls -ls {} | tail -4; df {}",
            dir.display(),
            dir.display()
        ))
        .status();
    recover_and_free(fs, &dir, segment, m, &mut f, &mut rng);
    f
}

fn report(fs: &Fs, round: &str, segment: u64, f: &Figures) {
    println!(
        "{:?} {round} (segments {} MiB): {} objects acknowledged before ENOSPC, {} writes / {:.1} MiB \
         in all; NoSpace {:?}, done on the full disk {:?}; free when full {} KiB; reopen while full {:.1} ms; deleted {}; \
         compact reclaimed {} KiB (moved {} KiB), statvfs free {} -> {} KiB; {} puts after",
        fs.kind,
        segment >> 20,
        f.acked_before_enospc,
        f.acked_total,
        f.acked_bytes as f64 / MIB as f64,
        f.no_space,
        f.done_when_full,
        f.free_when_full >> 10,
        f.reopen_while_full.as_secs_f64() * 1000.0,
        f.deleted,
        f.reclaimed_report >> 10,
        f.moved >> 10,
        f.free_before_compact >> 10,
        f.free_after_compact >> 10,
        f.puts_after,
    );
}

const GIB: u64 = 1 << 30;
const SMALL: u64 = 8 << 20;

fn all_rounds(kind: Kind, test: &str) {
    type Round = fn(&Fs, u64, u64) -> Figures;
    let rounds: [(&str, Round, u64); 7] = [
        ("filler-packed", round_filler_packed, 2 << 20),
        ("filler-rotating", round_filler_rotating, 2 << 20),
        ("puts", round_puts, GIB),
        ("puts", round_puts, SMALL),
        ("mixed", round_mixed, SMALL),
        ("filler", round_filler, GIB),
        ("filler", round_filler, SMALL),
    ];
    for (i, (name, round, segment)) in rounds.into_iter().enumerate() {
        let Some(fs) = mount_or_skip(kind, test) else {
            return;
        };
        let t = Instant::now();
        let f = round(&fs, segment, 14 + i as u64);
        report(&fs, name, segment, &f);
        println!("  ({:.1} s)", t.elapsed().as_secs_f64());
    }
}

#[test]
fn full_tmpfs_heals_through_the_store() {
    all_rounds(Kind::Tmpfs, "full_tmpfs_heals_through_the_store");
}

#[test]
fn full_ext4_heals_through_the_store() {
    all_rounds(Kind::Ext4, "full_ext4_heals_through_the_store");
}

// The same rounds under `Durability::None`, whose small appends are copies
// into a writable map of the active segment (docs/DURABILITY.md, "The
// order of writes"): on a full disk they must fail with `NoSpace` or land
// in blocks allocated before, never fault the process.

#[test]
fn full_tmpfs_heals_under_durability_none() {
    DURABILITY.set(partstore::Durability::None);
    all_rounds(Kind::Tmpfs, "full_tmpfs_heals_under_durability_none");
}

#[test]
fn full_ext4_heals_under_durability_none() {
    DURABILITY.set(partstore::Durability::None);
    all_rounds(Kind::Ext4, "full_ext4_heals_under_durability_none");
}
