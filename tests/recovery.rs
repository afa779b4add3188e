//! Crash recovery and integrity: a torn tail of the newest segment (cut at
//! every offset inside the last operation's records, zero-filled, or
//! overwritten with garbage) opens to a state where that operation is wholly
//! present or wholly absent and everything acknowledged before it is intact
//! byte for byte; flipped bytes in stored data are `Corrupt` on read and in
//! `verify()`, never wrong bytes; a damaged metadata record followed by valid
//! records fails `open` with `Corrupt`; the directory lock admits one store.
//!
//! The tests read the on-disk format of `src/record.rs` only as far as
//! needed to aim at records: segment files `seg-NNNNNNNN.log`, a 32-byte
//! file header, then 8-aligned records with a 24-byte header (magic `PSR1`,
//! kind at byte 4: 1 = extent, 2 = metadata; payload length as u64 LE at
//! bytes 8..16) and the payload padded to a multiple of 8.

mod common;

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use partstore::*;

const MIB: usize = 1 << 20;
const CT: &str = "application/octet-stream";
const L: &str = "l";
const KIND_EXTENT: u8 = 1;
const KIND_META: u8 = 2;

fn range(s: &str) -> ByteRange {
    s.parse().unwrap()
}

fn put(s: &Store, key: &str, bytes: &[u8]) -> ObjectInfo {
    s.put_object(L, key, PartBody::new(bytes, bytes.len() as u64))
        .unwrap()
}

fn part(s: &Store, up: &UploadId, n: u32, bytes: &[u8]) -> PartInfo {
    s.upload_part(L, up, n, PartBody::new(bytes, bytes.len() as u64))
        .unwrap()
}

fn read_range(blob: &Blob, r: &str) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    for s in blob.read_range(range(r))? {
        out.extend_from_slice(&s);
    }
    Ok(out)
}

// ----- on-disk helpers ------------------------------------------------------

/// Segment files of a store directory, oldest first.
fn segment_files(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            let n = p.file_name().unwrap().to_str().unwrap();
            n.starts_with("seg-") && n.ends_with(".log")
        })
        .collect();
    v.sort();
    v
}

fn segment_id(path: &Path) -> u64 {
    let n = path.file_name().unwrap().to_str().unwrap();
    n["seg-".len()..n.len() - ".log".len()].parse().unwrap()
}

#[derive(Debug, Clone, Copy)]
struct Rec {
    off: u64,
    kind: u8,
    len: u64,
    framed: u64,
}

/// The records of a segment file and the offset just past the last one.
fn records(path: &Path) -> (Vec<Rec>, u64) {
    let bytes = fs::read(path).unwrap();
    let mut out = Vec::new();
    let mut pos = 32usize;
    while pos + 24 <= bytes.len() {
        let h = &bytes[pos..pos + 24];
        if h == [0u8; 24] {
            break;
        }
        assert_eq!(&h[0..4], b"PSR1", "{}: no record at {pos}", path.display());
        let len = u64::from_le_bytes(h[8..16].try_into().unwrap());
        let framed = 24 + len.div_ceil(8) * 8;
        out.push(Rec {
            off: pos as u64,
            kind: h[4],
            len,
            framed,
        });
        pos += framed as usize;
    }
    (out, pos as u64)
}

/// A sparse, in-memory image of a store directory's segment files.
struct Image {
    files: Vec<ImageFile>,
}

/// File name, length, and the non-zero chunks by offset.
type ImageFile = (String, u64, Vec<(u64, Vec<u8>)>);

const CHUNK: usize = 64 << 10;

fn image(dir: &Path) -> Image {
    let files = segment_files(dir)
        .iter()
        .map(|p| {
            let bytes = fs::read(p).unwrap();
            let chunks = bytes
                .chunks(CHUNK)
                .enumerate()
                .filter(|(_, c)| c.iter().any(|b| *b != 0))
                .map(|(i, c)| ((i * CHUNK) as u64, c.to_vec()))
                .collect();
            (
                p.file_name().unwrap().to_str().unwrap().to_string(),
                bytes.len() as u64,
                chunks,
            )
        })
        .collect();
    Image { files }
}

/// Writes the image into a fresh directory `to` (sparse, like the engine's
/// preallocated segments).
fn restore(img: &Image, to: &Path) {
    if to.exists() {
        fs::remove_dir_all(to).unwrap();
    }
    fs::create_dir_all(to).unwrap();
    for (name, len, chunks) in &img.files {
        let f = File::create(to.join(name)).unwrap();
        for (off, c) in chunks {
            f.write_all_at(c, *off).unwrap();
        }
        f.set_len(*len).unwrap();
    }
}

/// Name and contents of every segment file: what "the directory did not
/// change" compares.
fn fingerprint(dir: &Path) -> Vec<(String, Vec<u8>)> {
    segment_files(dir)
        .iter()
        .map(|p| {
            (
                p.file_name().unwrap().to_str().unwrap().to_string(),
                fs::read(p).unwrap(),
            )
        })
        .collect()
}

fn write_at(path: &Path, off: u64, bytes: &[u8]) {
    let f = OpenOptions::new().write(true).open(path).unwrap();
    f.write_all_at(bytes, off).unwrap();
    f.sync_all().unwrap();
}

fn read_at(path: &Path, off: u64, len: usize) -> Vec<u8> {
    let f = File::open(path).unwrap();
    let mut b = vec![0u8; len];
    f.read_exact_at(&mut b, off).unwrap();
    b
}

fn flip(path: &Path, off: u64) -> u8 {
    let old = read_at(path, off, 1)[0];
    write_at(path, off, &[old ^ 0x5a]);
    old ^ 0x5a
}

fn cut(path: &Path, len: u64) {
    let f = OpenOptions::new().write(true).open(path).unwrap();
    f.set_len(len).unwrap();
    f.sync_all().unwrap();
}

/// Garbage that never contains the record magic.
fn garbage(seed: u64, len: usize) -> Vec<u8> {
    common::gen(seed, len).iter().map(|b| b | 0x80).collect()
}

// ----- observable state ---------------------------------------------------

/// Everything a client can observe of a store, object bytes included.
#[derive(PartialEq, Eq)]
struct Obs {
    /// Debug text of layers, object infos, uploads, parts and statuses.
    meta: Vec<String>,
    /// Every object's bytes, by "layer/key".
    bytes: BTreeMap<String, Vec<u8>>,
}

impl std::fmt::Debug for Obs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for m in &self.meta {
            writeln!(f, "  {m}")?;
        }
        for (k, b) in &self.bytes {
            writeln!(
                f,
                "  bytes {k}: {} bytes, crc {:08x}",
                b.len(),
                crc32c::crc32c(b)
            )?;
        }
        Ok(())
    }
}

fn observe(s: &Store, tokens: &[(String, UploadId)]) -> Obs {
    let mut meta = Vec::new();
    let mut bytes = BTreeMap::new();
    for (layer, config) in s.list_layers() {
        meta.push(format!("layer {layer} {config:?}"));
        let mut opts = ListOptions::default().deep(true);
        loop {
            let page = s.list(&layer, &opts).unwrap();
            for item in &page.items {
                let ListItem::Object(o) = item else {
                    panic!("deep listing gave {item:?}")
                };
                meta.push(format!("object {layer} {o:?}"));
                let blob = s.get(&layer, &o.key).unwrap();
                assert_eq!(blob.info(), o);
                let b = blob.to_vec().unwrap();
                bytes.insert(format!("{layer}/{}", o.key), b);
            }
            match page.next_page_token {
                Some(t) => opts = opts.page_token(t),
                None => break,
            }
        }
        let mut uploads = s.list_uploads(&layer).unwrap();
        uploads.sort_by_key(|u| u.upload);
        for u in uploads {
            meta.push(format!("upload {layer} {u:?}"));
            for p in s.list_parts(&layer, &u.upload).unwrap() {
                meta.push(format!("  part {p:?}"));
            }
        }
    }
    for (layer, t) in tokens {
        let st = s.upload_status(layer, t).map_err(|e| e.kind());
        meta.push(format!("status {t} {st:?}"));
    }
    let st = s.stats();
    meta.push(format!("counts {} {}", st.objects, st.uploads));
    Obs { meta, bytes }
}

fn opts() -> Options {
    Options::default().segment_size(256 << 10)
}

// ----- torn tails -----------------------------------------------------------

/// The acknowledged history every torn-tail case starts from: objects
/// (single-part, multipart, a copy, an empty one), uploads open with parts,
/// a completed and an aborted upload, a delete; spread over several 256 KiB
/// segments (one grown to hold a 1 MiB + 100 byte object).
struct Base {
    tokens: Vec<(String, UploadId)>,
    /// Open upload with parts 1 and 2.
    u1: UploadId,
    /// Open upload with one part.
    u2: UploadId,
}

fn build_base(s: &Store) -> Base {
    s.create_layer(L, LayerConfig::default()).unwrap();
    s.create_layer("typed", LayerConfig::new("text/plain"))
        .unwrap();
    put(s, "a", &common::gen(1, 3000));
    put(s, "b/c", &common::gen(2, 70_000));
    put(s, "src", &common::gen(3, MIB + 100));
    put(s, "empty", &[]);
    s.put_object("typed", "t", PartBody::new(&b"typed text"[..], 10))
        .unwrap();
    let m = s.start_multipart(L, "m", CT).unwrap();
    part(s, &m, 1, &common::gen(4, 5000));
    s.complete_multipart(L, &m).unwrap();
    s.copy_object(L, "m-copy", "m").unwrap();
    put(s, "gone", &common::gen(5, 100));
    s.delete(L, "gone").unwrap();
    let aborted = s.start_multipart(L, "ab", CT).unwrap();
    part(s, &aborted, 1, &common::gen(6, 300));
    s.abort_multipart(L, &aborted).unwrap();
    for i in 0..4 {
        put(s, &format!("fill/{i}"), &common::gen(10 + i, 60_000));
    }
    let u1 = s.start_multipart(L, "u1", CT).unwrap();
    part(s, &u1, 1, &common::gen(7, 1000));
    part(s, &u1, 2, &common::gen(8, 500));
    let u2 = s.start_multipart(L, "u2", CT).unwrap();
    part(s, &u2, 1, &common::gen(9, 2000));
    let tokens = [m, aborted, u1, u2]
        .into_iter()
        .map(|t| (L.to_string(), t))
        .collect();
    Base { tokens, u1, u2 }
}

/// Offsets in `start..=end` to damage from: the bytes of each record's
/// header and the first bytes after it every `head_step`, its last 16 bytes,
/// and every `stride` bytes of the payload in between (cuts anywhere in a
/// payload behave alike, so extent bodies get a wide stride).
fn cut_points(recs: &[Rec], start: u64, end: u64, head_step: u64, stride: u64) -> Vec<u64> {
    let mut v = vec![start, end];
    for r in recs.iter().filter(|r| r.off >= start && r.off < end) {
        let e = r.off + r.framed;
        let body_stride = if r.kind == KIND_EXTENT {
            (r.len / 12).max(stride * 8)
        } else {
            stride
        };
        for o in r.off..=e {
            let rel = o - r.off;
            let near_end = o + 16 >= e && (e - o).is_multiple_of(head_step);
            if (rel < 32 && rel.is_multiple_of(head_step))
                || near_end
                || rel.is_multiple_of(body_stride)
            {
                v.push(o);
            }
        }
    }
    v.sort_unstable();
    v.dedup();
    v
}

enum Damage {
    /// The newest segment ends here.
    Cut(u64),
    /// Zeros from here to the end of the operation's bytes.
    ZeroFrom(u64, u64),
    /// Garbage from here to the end of the operation's bytes.
    GarbageFrom(u64, u64),
    /// A few garbage bytes in the middle of a metadata record.
    GarbageAt(u64, usize),
}

/// Runs `final_op` after the base history, then for each damage to the
/// newest segment checks: open succeeds; the state is the one before or the
/// one after `final_op` (`strict` forces "after"); `verify()` is clean; a
/// second open changes neither the state nor the files; the store keeps
/// working (every few cases a new object is written and read back after a
/// reopen).
fn torn_tail_case(
    name: &str,
    dense: bool,
    final_op: impl FnOnce(&Store, &Base) -> Option<(String, UploadId)>,
) {
    torn_tail_case_with(name, dense, Rotation::Never, final_op)
}

/// Whether the final operation may start a new segment, and whether the
/// new segment's file header is damaged too.
#[derive(PartialEq, Eq, Clone, Copy)]
enum Rotation {
    Never,
    Expected,
    ExpectedAndDamageHeader,
}

fn torn_tail_case_with(
    name: &str,
    dense: bool,
    rotation: Rotation,
    final_op: impl FnOnce(&Store, &Base) -> Option<(String, UploadId)>,
) {
    let work = tempfile::tempdir().unwrap();
    let dir = work.path().join("store");
    let (base, img_before, after, newest, start, end, img) = {
        let s = Store::open(&dir, opts()).unwrap();
        let mut base = build_base(&s);
        let img_before = image(&dir);
        let files = segment_files(&dir);
        let (_, end_before) = records(files.last().unwrap());
        if let Some(t) = final_op(&s, &base) {
            base.tokens.push(t);
        }
        let files_after = segment_files(&dir);
        let newest = files_after.last().unwrap().clone();
        let start = if rotation == Rotation::Never {
            assert_eq!(
                files_after, files,
                "{name}: the final operation must stay in the newest segment"
            );
            end_before
        } else {
            assert!(
                files_after.len() > files.len() && files_after[..files.len()] == files[..],
                "{name}: the final operation must start a new segment"
            );
            32
        };
        let (_, end) = records(&newest);
        assert!(end > start, "{name}: the final operation wrote nothing");
        let after = observe(&s, &base.tokens);
        // The files as a crash right now would leave them (a clean close
        // would append a mark saying everything before it is durable).
        let img = image(&dir);
        (base, img_before, after, newest, start, end, img)
    };
    // The state before the operation, observed with every token.
    let before = {
        let d = work.path().join("before");
        restore(&img_before, &d);
        let s = Store::open(&d, opts()).unwrap();
        observe(&s, &base.tokens)
    };
    assert_ne!(before, after, "{name}: the final operation changed nothing");
    let newest_name = newest.file_name().unwrap().to_owned();
    let (recs, _) = records(&newest);
    let op_recs: Vec<Rec> = recs.iter().copied().filter(|r| r.off >= start).collect();

    let mut damages = Vec::new();
    // Dense cases hit every header byte with a cut; sparse ones (other
    // operations writing the same kinds of record) fewer.
    let (cut_head, cut_stride, fill_head, fill_stride, at_head, at_stride) = if dense {
        (1, 13, 4, 41, 2, 17)
    } else {
        (3, 29, 8, 61, 4, 37)
    };
    for c in cut_points(&recs, start, end, cut_head, cut_stride) {
        damages.push(Damage::Cut(c));
    }
    for c in cut_points(&recs, start, end, fill_head, fill_stride) {
        damages.push(Damage::ZeroFrom(c, end));
        damages.push(Damage::GarbageFrom(c, end));
    }
    for r in op_recs.iter().filter(|r| r.kind == KIND_META) {
        let mut o = r.off;
        while o < r.off + 24 + r.len {
            damages.push(Damage::GarbageAt(o, 3));
            o += if o < r.off + 24 { at_head } else { at_stride };
        }
    }
    // Junk after the last complete record: the operation is wholly there.
    damages.push(Damage::GarbageAt(end, 40));
    if rotation == Rotation::ExpectedAndDamageHeader {
        // A crash while the new segment was being created: its file is
        // empty, short, or its header never reached the disk.
        for c in 0..32 {
            damages.push(Damage::Cut(c));
        }
        damages.push(Damage::ZeroFrom(0, end));
        // Not `GarbageFrom(0, end)`: segment creation fsyncs the header
        // (and the directory) before any record is appended, so a crash
        // cannot leave a bad header in front of records. A bad header with
        // records after it is corruption, and `open` must say so.
    }

    let scratch = work.path().join("scratch");
    for (i, d) in damages.iter().enumerate() {
        restore(&img, &scratch);
        let seg = scratch.join(&newest_name);
        let (what, strict_after, strict_before) = match *d {
            Damage::Cut(c) => {
                cut(&seg, c);
                (format!("cut at {c}"), c == end, c <= start)
            }
            Damage::ZeroFrom(c, e) => {
                write_at(&seg, c, &vec![0u8; (e - c) as usize]);
                (format!("zeros {c}..{e}"), c == end, c <= start)
            }
            Damage::GarbageFrom(c, e) => {
                write_at(&seg, c, &garbage(c, (e - c) as usize));
                (format!("garbage {c}..{e}"), c == end, c <= start)
            }
            Damage::GarbageAt(c, n) => {
                write_at(&seg, c, &garbage(c, n));
                (format!("garbage {c}+{n}"), c >= end, false)
            }
        };
        let ctx = format!("{name}: {what} (op bytes {start}..{end})");
        let s = Store::open(&scratch, opts()).unwrap_or_else(|e| panic!("{ctx}: open failed: {e}"));
        let got = observe(&s, &base.tokens);
        if strict_after {
            assert_eq!(got, after, "{ctx}: the operation must be present");
        } else if strict_before {
            assert_eq!(got, before, "{ctx}: the operation must be absent");
        } else {
            assert!(
                got == before || got == after,
                "{ctx}: neither the state before nor after the operation:\n{got:?}\nbefore:\n{before:?}\nafter:\n{after:?}"
            );
        }
        let report = s.verify().unwrap();
        assert!(report.is_clean(), "{ctx}: verify: {:?}", report.corrupt);
        drop(s);
        let files = fingerprint(&scratch);
        let s = Store::open(&scratch, opts())
            .unwrap_or_else(|e| panic!("{ctx}: second open failed: {e}"));
        assert_eq!(observe(&s, &base.tokens), got, "{ctx}: second open");
        drop(s);
        assert!(
            fingerprint(&scratch) == files,
            "{ctx}: the second open changed the segment files"
        );
        if i.is_multiple_of(5) {
            let s = Store::open(&scratch, opts()).unwrap();
            let fresh = common::gen(i as u64 + 1000, 5000);
            put(&s, "after-recovery", &fresh);
            drop(s);
            let s = Store::open(&scratch, opts())
                .unwrap_or_else(|e| panic!("{ctx}: open after a write failed: {e}"));
            let mut again = observe(&s, &base.tokens);
            assert_eq!(
                again
                    .bytes
                    .remove(&format!("{L}/after-recovery"))
                    .as_deref(),
                Some(&fresh[..]),
                "{ctx}: write after recovery"
            );
            assert_eq!(again.bytes, got.bytes, "{ctx}: write after recovery");
            assert!(s.verify().unwrap().is_clean(), "{ctx}");
        }
    }
}

#[test]
fn torn_tail_put_object() {
    torn_tail_case("put_object", true, |s, _| {
        put(s, "new", &common::gen(100, 700));
        None
    });
}

#[test]
fn torn_tail_put_object_replacing() {
    torn_tail_case("put_object over a key", false, |s, _| {
        put(s, "a", &common::gen(101, 300));
        None
    });
}

#[test]
fn torn_tail_upload_part() {
    torn_tail_case("upload_part", true, |s, b| {
        part(s, &b.u1, 3, &common::gen(102, 600));
        None
    });
}

#[test]
fn torn_tail_upload_part_replacing() {
    torn_tail_case("upload_part replacing part 1", false, |s, b| {
        part(s, &b.u1, 1, &common::gen(103, 400));
        None
    });
}

#[test]
fn torn_tail_complete() {
    torn_tail_case("complete_multipart", true, |s, b| {
        s.complete_multipart(L, &b.u2).unwrap();
        None
    });
}

#[test]
fn torn_tail_copy_part() {
    torn_tail_case("copy_part", false, |s, b| {
        s.copy_part(
            L,
            &b.u1,
            3,
            CopySource::new("src", range("bytes=1048576-1048675")),
        )
        .unwrap();
        None
    });
}

#[test]
fn torn_tail_delete_copy_abort_start() {
    torn_tail_case("delete", false, |s, _| {
        s.delete(L, "a").unwrap();
        None
    });
    torn_tail_case("copy_object", false, |s, _| {
        s.copy_object(L, "a2", "b/c").unwrap();
        None
    });
    torn_tail_case("abort_multipart", false, |s, b| {
        s.abort_multipart(L, &b.u1).unwrap();
        None
    });
    torn_tail_case("start_multipart", false, |s, _| {
        let t = s.start_multipart(L, "started", CT).unwrap();
        Some((L.to_string(), t))
    });
    torn_tail_case("create_layer", false, |s, _| {
        s.create_layer("newlayer", LayerConfig::default()).unwrap();
        None
    });
}

/// Bytes left after the last record of the newest segment.
/// A checkpoint written after an acknowledged delete, cut, zeroed or
/// garbled at every header byte and along its page and checkpoint records
/// (none of it durable yet: a crash while it was written): `open` ignores
/// the torn checkpoint and replays every record (the delete included), so
/// the state is always the one after the delete; a second open changes
/// nothing. Once a later record says the checkpoint was durable, the same
/// damage to a page is `Corrupt`.
#[test]
fn torn_tail_of_a_checkpoint() {
    let work = tempfile::tempdir().unwrap();
    let dir = work.path().join("store");
    let (tokens, after, newest, start, end, img, img_durable) = {
        let s = Store::open(&dir, opts()).unwrap();
        let base = build_base(&s);
        s.delete(L, "b/c").unwrap();
        let files = segment_files(&dir);
        let newest = files.last().unwrap().clone();
        let (_, start) = records(&newest);
        s.checkpoint().unwrap();
        assert_eq!(segment_files(&dir), files, "the checkpoint fits");
        let (_, end) = records(&newest);
        assert!(end > start + 100, "a checkpoint was written");
        let after = observe(&s, &base.tokens);
        let img = image(&dir);
        // One more record, stamped with the checkpoint's durability.
        s.create_layer("later", LayerConfig::default()).unwrap();
        let img_durable = image(&dir);
        (base.tokens, after, newest, start, end, img, img_durable)
    };
    let name = newest.file_name().unwrap().to_owned();
    let (recs, _) = records(&newest);
    let mut damages = Vec::new();
    for c in cut_points(&recs, start, end, 1, 13) {
        damages.push(Damage::Cut(c));
    }
    for c in cut_points(&recs, start, end, 4, 41) {
        damages.push(Damage::ZeroFrom(c, end));
        damages.push(Damage::GarbageFrom(c, end));
    }
    for r in recs.iter().filter(|r| r.off >= start) {
        let mut o = r.off;
        while o < r.off + 24 + r.len {
            damages.push(Damage::GarbageAt(o, 3));
            o += if o < r.off + 24 { 2 } else { 17 };
        }
    }
    let scratch = work.path().join("scratch");
    let mut fell_back = 0;
    for d in &damages {
        restore(&img, &scratch);
        let seg = scratch.join(&name);
        let what = match *d {
            Damage::Cut(c) => {
                cut(&seg, c);
                format!("cut at {c}")
            }
            Damage::ZeroFrom(c, e) => {
                write_at(&seg, c, &vec![0u8; (e - c) as usize]);
                format!("zeros {c}..{e}")
            }
            Damage::GarbageFrom(c, e) => {
                write_at(&seg, c, &garbage(c, (e - c) as usize));
                format!("garbage {c}..{e}")
            }
            Damage::GarbageAt(c, n) => {
                write_at(&seg, c, &garbage(c, n));
                format!("garbage {c}+{n}")
            }
        };
        let ctx = format!("checkpoint: {what} (its bytes {start}..{end})");
        let s = Store::open(&scratch, opts()).unwrap_or_else(|e| panic!("{ctx}: open: {e}"));
        assert_eq!(observe(&s, &tokens), after, "{ctx}");
        fell_back += usize::from(s.stats().replay_bytes > 0);
        assert!(s.verify().unwrap().is_clean(), "{ctx}");
        drop(s);
        let files = fingerprint(&scratch);
        let s = Store::open(&scratch, opts()).unwrap_or_else(|e| panic!("{ctx}: reopen: {e}"));
        assert_eq!(observe(&s, &tokens), after, "{ctx}: second open");
        drop(s);
        assert!(
            fingerprint(&scratch) == files,
            "{ctx}: second open changed files"
        );
    }
    assert!(
        fell_back * 2 > damages.len(),
        "most damage makes open fall back to replay ({fell_back} of {})",
        damages.len()
    );
    // Undamaged, the checkpoint is restored and nothing is replayed.
    restore(&img, &scratch);
    let s = Store::open(&scratch, opts()).unwrap();
    assert_eq!(observe(&s, &tokens), after);
    assert_eq!(s.stats().replay_bytes, 0);
    drop(s);
    // Durable, then damaged: a byte of a page (a data region) flipped.
    let page = recs
        .iter()
        .find(|r| r.off >= start && r.kind == KIND_EXTENT)
        .expect("a page");
    restore(&img_durable, &scratch);
    flip(&scratch.join(&name), page.off + 24 + page.len / 2);
    let err = Store::open(&scratch, opts()).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Corrupt, "{err}");
}

fn room(dir: &Path) -> u64 {
    let newest = segment_files(dir).pop().unwrap();
    let (_, end) = records(&newest);
    fs::metadata(&newest).unwrap().len() - end
}

#[test]
fn torn_tail_of_operations_that_start_a_new_segment() {
    torn_tail_case_with(
        "put_object into a new segment",
        true,
        Rotation::Expected,
        |s, _| {
            // One byte more than fits: the extent starts the next segment.
            let room = room(s.path());
            put(s, "rot", &common::gen(200, room as usize - 23));
            None
        },
    );
    torn_tail_case_with(
        "put_object whose metadata record starts a new segment",
        true,
        Rotation::Expected,
        |s, _| {
            // The extent fills the segment but for 8 bytes: too few for its
            // metadata record, which goes to the next segment.
            let room = room(s.path());
            assert!(room > 64, "room {room}");
            put(s, "split", &common::gen(201, room as usize - 32));
            None
        },
    );
    torn_tail_case_with(
        "upload_part larger than a segment",
        false,
        Rotation::Expected,
        |s, b| {
            // A segment grown to hold the extent, then another for the
            // metadata record.
            part(s, &b.u1, 3, &common::gen(203, 2 * MIB + 5));
            None
        },
    );
}

#[test]
fn crash_while_a_new_segment_is_created() {
    // The file of a segment created by an unacknowledged operation may be
    // empty, short, or lack its header after a crash (a process killed
    // between `create_new` and the header write leaves an empty file); the
    // operation was never acknowledged, so the store must open without it.
    // `Store::open` removes such a newest segment when nothing but zeros
    // follows its header (src/recovery.rs).
    torn_tail_case_with(
        "segment creation",
        false,
        Rotation::ExpectedAndDamageHeader,
        |s, _| {
            let room = room(s.path());
            put(s, "rot", &common::gen(202, room as usize - 23));
            None
        },
    );
}

// ----- flipped bytes --------------------------------------------------------

/// The segment file and file offset of the extent whose data starts with
/// `bytes[..64]`.
fn find_extent(dir: &Path, bytes: &[u8]) -> (PathBuf, u64) {
    let mut found = Vec::new();
    for f in segment_files(dir) {
        let (recs, _) = records(&f);
        for r in recs.iter().filter(|r| r.kind == KIND_EXTENT && r.len >= 64) {
            if read_at(&f, r.off + 24, 64) == bytes[..64] {
                found.push((f.clone(), r.off + 24));
            }
        }
    }
    assert_eq!(
        found.len(),
        1,
        "extent starting with the pattern: {found:?}"
    );
    found.pop().unwrap()
}

fn expect_corrupt<T: std::fmt::Debug>(r: Result<T>, what: &str) {
    match r {
        Err(e) => assert_eq!(e.kind(), ErrorKind::Corrupt, "{what}: {e}"),
        Ok(v) => panic!("{what}: read succeeded over a corrupt block: {v:?}"),
    }
}

#[test]
fn flipped_data_byte_is_corrupt_and_never_wrong_bytes() {
    let work = tempfile::tempdir().unwrap();
    let dir = work.path().join("store");
    let o = || Options::default().segment_size(8 << 20);
    let p1 = common::gen(301, 5 * MIB);
    let p2 = common::gen(302, 5 * MIB);
    let p3 = common::gen(303, MIB + 100);
    let other = common::gen(304, 3 * MIB);
    let pending = common::gen(305, 200_000);
    let expected = [p1.clone(), p2.clone(), p3.clone()].concat();
    let size = expected.len() as u64;
    let up;
    {
        let s = Store::open(&dir, o()).unwrap();
        s.create_layer(L, LayerConfig::default()).unwrap();
        let v = s.start_multipart(L, "victim", CT).unwrap();
        part(&s, &v, 1, &p1);
        part(&s, &v, 2, &p2);
        part(&s, &v, 3, &p3);
        s.complete_multipart(L, &v).unwrap();
        put(&s, "other", &other);
        up = s.start_multipart(L, "pending", CT).unwrap();
        part(&s, &up, 1, &pending);
        assert!(s.verify().unwrap().is_clean());
    }
    // Flip one byte 2 MiB + 12345 into part 2: object offset 7 MiB + 12345,
    // in the object's (and the extent's) block 7 MiB..8 MiB.
    let (seg, data_at) = find_extent(&dir, &p2);
    let k = 2 * MIB as u64 + 12_345;
    let bad_value = flip(&seg, data_at + k);
    let bad_at = 5 * MIB as u64 + k;
    let (block_start, block_end) = (7 * MIB as u64, 8 * MIB as u64 - 1);
    // And one byte of the open upload's part.
    let (pseg, pdata_at) = find_extent(&dir, &pending);
    flip(&pseg, pdata_at + 1000);

    let s = Store::open(&dir, o()).unwrap();
    let blob = s.get(L, "victim").unwrap();
    for r in [
        format!("bytes={bad_at}-{bad_at}"),
        format!("bytes={}-{}", bad_at - 100, bad_at + 100),
        format!("bytes={block_start}-{block_start}"),
        format!("bytes={block_end}-{block_end}"),
        format!("bytes={}-{}", 6 * MIB, 9 * MIB),
        "bytes=0-".to_string(),
        format!("bytes=-{}", size - block_start),
    ] {
        expect_corrupt(read_range(&blob, &r), &r);
    }
    expect_corrupt(blob.to_vec(), "to_vec");
    expect_corrupt(blob.slices(bad_at, bad_at + 1), "slices");
    // Blob::reader: an error, never the flipped byte.
    {
        use std::io::{Read, Seek, SeekFrom};
        let mut r = blob.reader();
        r.seek(SeekFrom::Start(bad_at - 10)).unwrap();
        let mut buf = [0u8; 20];
        let err = r.read_exact(&mut buf).unwrap_err();
        assert!(err.to_string().contains("corrupt"), "{err}");
        let mut r = blob.reader();
        let mut all = Vec::new();
        assert!(r.read_to_end(&mut all).is_err());
        assert!(all.len() as u64 <= block_start);
        assert!(all[..] == expected[..all.len()]);
    }
    // Ranges away from the bad block read fine.
    for (first, last) in [
        (0, block_start - 1),
        (block_end + 1, size - 1),
        (block_start - 5, block_start - 1),
        (block_end + 1, block_end + 5),
        (4 * MIB as u64, 6 * MIB as u64),
    ] {
        let got = read_range(&blob, &format!("bytes={first}-{last}")).unwrap();
        assert!(
            got[..] == expected[first as usize..=last as usize],
            "{first}-{last}"
        );
    }
    assert!(s.get(L, "other").unwrap().to_vec().unwrap() == other);
    // verify() names both damaged blocks, with their segments and extents.
    let report = s.verify().unwrap();
    assert!(!report.is_clean());
    assert_eq!(report.corrupt.len(), 2, "{:?}", report.corrupt);
    for (path, what) in [(&seg, "victim"), (&pseg, "pending")] {
        let name = format!("segment {}", segment_id(path));
        assert!(
            report
                .corrupt
                .iter()
                .any(|m| m.contains(&name) && m.contains("extent")),
            "{what}: no line names {name} and its extent: {:?}",
            report.corrupt
        );
    }
    // The open upload's damaged part: completion combines CRCs without
    // rereading, reads of the object then fail.
    s.complete_multipart(L, &up).unwrap();
    let pblob = s.get(L, "pending").unwrap();
    expect_corrupt(pblob.to_vec(), "pending to_vec");
    expect_corrupt(read_range(&pblob, "bytes=999-1001"), "pending range");
    drop(s);

    // With verify_reads(false) reads succeed and serve the bytes as stored.
    let s = Store::open(&dir, o().verify_reads(false)).unwrap();
    let blob = s.get(L, "victim").unwrap();
    let got = read_range(&blob, &format!("bytes={}-{}", bad_at - 1, bad_at + 1)).unwrap();
    assert_eq!(
        got,
        [
            expected[bad_at as usize - 1],
            bad_value,
            expected[bad_at as usize + 1]
        ]
    );
    let all = blob.to_vec().unwrap();
    assert_eq!(all.len(), expected.len());
    let diffs: Vec<usize> = (0..all.len()).filter(|i| all[*i] != expected[*i]).collect();
    assert_eq!(diffs, vec![bad_at as usize]);
    assert_eq!(s.verify().unwrap().corrupt.len(), 2);
}

/// A store spread over several 8 MiB segments, with metadata records in
/// each; returns the objects it holds.
fn build_multi_segment(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    let s = Store::open(dir, Options::default().segment_size(8 << 20)).unwrap();
    s.create_layer(L, LayerConfig::default()).unwrap();
    let mut objects = BTreeMap::new();
    for i in 0..8u64 {
        let b = common::gen(400 + i, 3 * MIB + i as usize);
        put(&s, &format!("obj/{i}"), &b);
        objects.insert(format!("obj/{i}"), b);
        if i % 3 == 1 {
            s.delete(L, &format!("obj/{}", i - 1)).unwrap();
            objects.remove(&format!("obj/{}", i - 1));
        }
    }
    // Several small records in the newest segment.
    for i in 0..4u64 {
        let b = common::gen(500 + i, 100);
        put(&s, &format!("small/{i}"), &b);
        objects.insert(format!("small/{i}"), b);
    }
    s.delete(L, "small/0").unwrap();
    objects.remove("small/0");
    objects
}

fn open_and_check(dir: &Path, objects: &BTreeMap<String, Vec<u8>>) {
    let s = Store::open(dir, Options::default()).unwrap();
    let page = s.list(L, &ListOptions::default().deep(true)).unwrap();
    assert_eq!(page.items.len(), objects.len());
    for (k, b) in objects {
        assert!(s.get(L, k).unwrap().to_vec().unwrap() == *b, "{k}");
    }
    assert!(s.verify().unwrap().is_clean());
}

#[test]
fn damaged_metadata_followed_by_valid_records_fails_open() {
    let work = tempfile::tempdir().unwrap();
    let dir = work.path().join("store");
    let objects = build_multi_segment(&dir);
    let files = segment_files(&dir);
    assert!(files.len() >= 3, "{} segments", files.len());
    let img = image(&dir);
    let scratch = work.path().join("scratch");
    restore(&img, &scratch);
    open_and_check(&scratch, &objects);

    let newest = files.len() - 1;
    let mut targets: Vec<(String, usize, Rec, u64)> = Vec::new(); // (what, file, record, offset in it)
    for (fi, f) in files.iter().enumerate() {
        let (recs, _) = records(f);
        let metas: Vec<(usize, Rec)> = recs
            .iter()
            .copied()
            .enumerate()
            .filter(|(_, r)| r.kind == KIND_META)
            .collect();
        let followed = metas.iter().find(|(i, _)| i + 1 < recs.len());
        if let Some((_, r)) = followed {
            let seg = if fi == newest { "newest" } else { "sealed" };
            targets.push((
                format!("{seg} segment {fi}: payload"),
                fi,
                *r,
                24 + r.len / 2,
            ));
            targets.push((format!("{seg} segment {fi}: header len"), fi, *r, 8));
            targets.push((format!("{seg} segment {fi}: header crc"), fi, *r, 21));
            targets.push((format!("{seg} segment {fi}: magic"), fi, *r, 1));
        }
        if fi != newest {
            // The last record of a sealed segment: only the newest segment
            // may have a torn tail.
            let last = *recs.last().unwrap();
            if last.kind == KIND_META {
                targets.push((
                    format!("last record of sealed segment {fi}"),
                    fi,
                    last,
                    24 + last.len - 1,
                ));
            }
            let ext = recs.iter().find(|r| r.kind == KIND_EXTENT).unwrap();
            targets.push((format!("extent header in sealed segment {fi}"), fi, *ext, 9));
        }
    }
    assert!(targets.iter().any(|t| t.0.starts_with("sealed")));
    assert!(targets.iter().any(|t| t.0.starts_with("newest")));
    assert!(targets.iter().any(|t| t.0.starts_with("last record")));
    for (what, fi, r, at) in &targets {
        restore(&img, &scratch);
        let f = scratch.join(files[*fi].file_name().unwrap());
        flip(&f, r.off + at);
        let err = Store::open(&scratch, Options::default())
            .map(|_| ())
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Corrupt, "{what}: {err}");
        let id = segment_id(&files[*fi]);
        assert!(
            err.to_string().contains(&format!("segment {id}"))
                || err.to_string().contains(
                    &files[*fi]
                        .file_name()
                        .unwrap()
                        .to_string_lossy()
                        .to_string()
                ),
            "{what}: error does not name the segment: {err}"
        );
        // Refusing to open changed nothing: with the byte restored, the
        // store opens with everything.
        flip(&f, r.off + at);
        open_and_check(&scratch, &objects);
    }
}

#[test]
fn one_store_per_directory() {
    let dir = tempfile::tempdir().unwrap();
    let s = Store::open(dir.path(), Options::default()).unwrap();
    s.create_layer(L, LayerConfig::default()).unwrap();
    put(&s, "k", b"value");
    let err = Store::open(dir.path(), Options::default()).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Conflict, "{err}");
    assert_eq!(err.kind().http_status(), 409);
    // From another thread too.
    let path = dir.path().to_path_buf();
    let kind = std::thread::spawn(move || Store::open(&path, Options::default()).map(|_| ()))
        .join()
        .unwrap()
        .unwrap_err()
        .kind();
    assert_eq!(kind, ErrorKind::Conflict);
    // The failed opens changed nothing; a blob outlives its store.
    let blob = s.get(L, "k").unwrap();
    assert_eq!(s.get(L, "k").unwrap().to_vec().unwrap(), b"value");
    drop(s);
    let s = Store::open(dir.path(), Options::default()).unwrap();
    assert_eq!(s.get(L, "k").unwrap().to_vec().unwrap(), b"value");
    assert_eq!(blob.to_vec().unwrap(), b"value");
    let err = Store::open(dir.path(), Options::default()).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Conflict);
    drop(s);
    drop(Store::open(dir.path(), Options::default()).unwrap());
}
