//! Truncation at every byte offset of the last records of the newest
//! segment: each cut is a crash during the last (unacknowledged) operation,
//! or during a checkpoint written after it.
//! `open` must succeed with that operation wholly absent (or, for a cut at
//! its very end, wholly present) and everything before it intact; a second
//! open must change nothing, neither the state nor a byte of any file.

use std::collections::BTreeMap;
use std::path::Path;

use partstore::{LayerConfig, ListItem, ListOptions, Options, PartBody, Store};

fn opts() -> Options {
    Options::default().segment_size(1 << 20)
}

/// Every object (key -> length and CRC of the bytes read back) and every
/// open upload's parts (-> size and CRC).
fn state(s: &Store) -> BTreeMap<String, (u64, u32)> {
    let mut m = BTreeMap::new();
    for item in s
        .list("l", &ListOptions::default().deep(true))
        .unwrap()
        .items
    {
        if let ListItem::Object(o) = item {
            let b = s.get("l", &o.key).unwrap().to_vec().unwrap();
            m.insert(o.key, (b.len() as u64, crc32c::crc32c(&b)));
        }
    }
    for u in s.list_uploads("l").unwrap() {
        for p in s.list_parts("l", &u.upload).unwrap() {
            m.insert(
                format!("upload {} part {}", u.key, p.part_number),
                (p.size, p.crc32c),
            );
        }
    }
    m
}

fn files(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap())
        .filter(|e| e.file_name() != "LOCK")
        .map(|e| {
            (
                e.file_name().to_string_lossy().into_owned(),
                std::fs::read(e.path()).unwrap(),
            )
        })
        .collect()
}

/// Offset just past the last record of a segment file (walking headers).
fn records_end(path: &Path) -> u64 {
    let f = std::fs::read(path).unwrap();
    let mut pos = 32usize;
    while pos + 24 <= f.len() && f[pos..pos + 24].iter().any(|b| *b != 0) {
        let len = u64::from_le_bytes(f[pos + 8..pos + 16].try_into().unwrap());
        pos += 24 + (len as usize).div_ceil(8) * 8;
    }
    pos as u64
}

fn copy_dir(src: &Path, dst: &Path) {
    std::fs::create_dir_all(dst).unwrap();
    for e in std::fs::read_dir(src).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), dst.join(e.file_name())).unwrap();
    }
}

/// Runs `last` as the final operation, then cuts the newest segment at
/// every offset from where that operation started writing to where it
/// ended. Returns the number of cuts checked.
fn every_cut(name: &str, last: impl FnOnce(&Store)) -> u64 {
    every_cut_after(name, |s, _| {
        last(s);
        None
    })
}

/// [`every_cut`] where `last` may return the offset from which a cut
/// leaves its change whole (its state-changing record ends there; what it
/// writes after, such as a checkpoint, may be cut without losing it).
fn every_cut_after(name: &str, last: impl FnOnce(&Store, &Path) -> Option<u64>) -> u64 {
    let work = tempfile::tempdir().unwrap();
    let dir = work.path().join("store");
    let (before, after, seg, start, end) = {
        let s = Store::open(&dir, opts()).unwrap();
        s.create_layer("l", LayerConfig::default()).unwrap();
        for i in 0..5u8 {
            let b = vec![i + 1; 1000 + i as usize * 100];
            s.put_object("l", &format!("k{i}"), PartBody::new(&b[..], b.len() as u64))
                .unwrap();
        }
        let up = s
            .start_multipart("l", "up", "application/octet-stream")
            .unwrap();
        s.upload_part("l", &up, 1, PartBody::new(&b"part one"[..], 8))
            .unwrap();
        let before = state(&s);
        let seg = dir.join("seg-00000001.log");
        let start = records_end(&seg);
        let whole = last(&s, &seg);
        let end = records_end(&seg);
        (before, state(&s), seg, start, (end, whole.unwrap_or(end)))
    };
    let (end, whole) = end;
    assert!(
        !dir.join("seg-00000002.log").exists(),
        "{name}: stays in one segment"
    );
    assert_ne!(before, after, "{name}: the operation changed nothing");
    let mut n = 0;
    // Every offset from the end of the records before the operation to the
    // end of its last record (a cut inside a record's zero padding tears it
    // too: a record is whole only with its padding).
    for cut in start..=end {
        let d = work.path().join(format!("cut{cut}"));
        copy_dir(&dir, &d);
        let f = std::fs::OpenOptions::new()
            .write(true)
            .open(d.join(seg.file_name().unwrap()))
            .unwrap();
        f.set_len(cut).unwrap();
        drop(f);
        let s = Store::open(&d, opts()).unwrap_or_else(|e| panic!("{name}: cut at {cut}: {e}"));
        let got = state(&s);
        if cut >= whole {
            assert_eq!(
                got, after,
                "{name}: cut at {cut} (its change ends at {whole}): the operation is there"
            );
        } else {
            assert_eq!(
                got, before,
                "{name}: cut at {cut}: the operation must be absent"
            );
        }
        assert!(s.verify().unwrap().is_clean());
        drop(s);
        let image = files(&d);
        let s = Store::open(&d, opts()).unwrap();
        assert_eq!(state(&s), got, "{name}: cut at {cut}: second open");
        drop(s);
        assert_eq!(
            files(&d),
            image,
            "{name}: cut at {cut}: second open changed a file"
        );
        std::fs::remove_dir_all(&d).unwrap();
        n += 1;
    }
    n
}

#[test]
fn truncate_at_every_offset_of_the_last_records() {
    let mut total = 0;
    total += every_cut("put_object", |s| {
        s.put_object("l", "new", PartBody::new(&[7u8; 300][..], 300))
            .unwrap();
    });
    total += every_cut("upload_part overwrite", |s| {
        let up = s.list_uploads("l").unwrap()[0].upload;
        s.upload_part("l", &up, 1, PartBody::new(&[9u8; 200][..], 200))
            .unwrap();
    });
    total += every_cut("complete_multipart", |s| {
        let up = s.list_uploads("l").unwrap()[0].upload;
        s.complete_multipart("l", &up).unwrap();
    });
    total += every_cut("delete", |s| s.delete("l", "k2").unwrap());
    total += every_cut("copy_object", |s| {
        s.copy_object("l", "k9", "k1").unwrap();
    });
    // A checkpoint (its page and its record) after a delete: a cut
    // anywhere in it falls back to replaying everything, delete included.
    total += every_cut_after("delete, then checkpoint", |s, seg| {
        s.delete("l", "k3").unwrap();
        let whole = records_end(seg);
        s.checkpoint().unwrap();
        assert!(records_end(seg) > whole + 48, "a checkpoint was written");
        Some(whole)
    });
    println!("offsets truncated: {total}");
    assert!(total > 1000, "{total}");
}
