//! On-disk fixtures committed under tests/fixtures/: stores written by this
//! format version that every later build must still open (or refuse) the
//! same way. A format change that breaks old stores fails here.
//!
//! - `clean`: a layer, objects (put, multipart, copy), a delete, an open
//!   upload with a part.
//! - `torn_tail`: `clean` plus one more put whose last record was cut
//!   mid-way (a crash before it was acknowledged): opens without it.
//! - `corrupt_middle`: `clean` with one byte of a metadata record in its
//!   first (sealed) segment flipped: `open` fails with `Corrupt`.
//!
//! Regenerate (only on a deliberate format change, with a new version):
//! `PARTSTORE_WRITE_FIXTURES=1 cargo test --test fixtures write_fixtures -- --ignored`

mod common;

use std::path::{Path, PathBuf};

use partstore::{CopySource, ErrorKind, LayerConfig, Options, PartBody, Store, UploadStatus};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

fn opts() -> Options {
    Options::default().segment_size(64 << 10)
}

/// Copies a fixture into a temp dir (open may truncate a torn tail).
fn copy_fixture(name: &str) -> tempfile::TempDir {
    let dst = tempfile::tempdir().unwrap();
    for e in std::fs::read_dir(fixtures().join(name)).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), dst.path().join(e.file_name())).unwrap();
    }
    dst
}

fn write_clean(dir: &Path) {
    let s = Store::open(dir, opts()).unwrap();
    s.create_layer("maps", LayerConfig::new("application/octet-stream"))
        .unwrap();
    for i in 0..6u64 {
        let b = common::gen(i, 10_000 + i as usize * 3000);
        s.put_object(
            "maps",
            &format!("tiles/{i}.bin"),
            PartBody::new(&b[..], b.len() as u64),
        )
        .unwrap();
    }
    s.delete("maps", "tiles/2.bin").unwrap();
    let up = s
        .start_multipart("maps", "multi.bin", "application/octet-stream")
        .unwrap();
    let p = common::gen(100, 20_000);
    s.upload_part("maps", &up, 1, PartBody::new(&p[..], p.len() as u64))
        .unwrap();
    s.complete_multipart("maps", &up).unwrap();
    s.copy_object("maps", "copy.bin", "tiles/1.bin").unwrap();
    let open = s
        .start_multipart("maps", "open.bin", "application/octet-stream")
        .unwrap();
    let q = common::gen(200, 5000);
    s.upload_part("maps", &open, 1, PartBody::new(&q[..], q.len() as u64))
        .unwrap();
    let up2 = s
        .start_multipart("maps", "ranged.bin", "application/octet-stream")
        .unwrap();
    s.copy_part(
        "maps",
        &up2,
        1,
        CopySource::new("multi.bin", "bytes=0-9999".parse().unwrap()),
    )
    .unwrap();
    s.complete_multipart("maps", &up2).unwrap();
}

fn check_clean(s: &Store) {
    for i in [0u64, 1, 3, 4, 5] {
        let got = s
            .get("maps", &format!("tiles/{i}.bin"))
            .unwrap()
            .to_vec()
            .unwrap();
        assert_eq!(
            got,
            common::gen(i, 10_000 + i as usize * 3000),
            "tiles/{i}.bin"
        );
    }
    assert_eq!(
        s.head("maps", "tiles/2.bin").unwrap_err().kind(),
        ErrorKind::NotFound
    );
    assert_eq!(
        s.get("maps", "multi.bin").unwrap().to_vec().unwrap(),
        common::gen(100, 20_000)
    );
    assert_eq!(
        s.get("maps", "copy.bin").unwrap().to_vec().unwrap(),
        common::gen(1, 13_000)
    );
    assert_eq!(
        s.get("maps", "ranged.bin").unwrap().to_vec().unwrap(),
        common::gen(100, 20_000)[..10_000].to_vec()
    );
    let uploads = s.list_uploads("maps").unwrap();
    assert_eq!(uploads.len(), 1);
    assert_eq!(uploads[0].key, "open.bin");
    let parts = s.list_parts("maps", &uploads[0].upload).unwrap();
    assert_eq!(parts.len(), 1);
    assert_eq!(parts[0].crc32c, crc32c::crc32c(&common::gen(200, 5000)));
    assert!(matches!(
        s.upload_status("maps", &uploads[0].upload).unwrap(),
        UploadStatus::Open { parts: 1, .. }
    ));
    assert!(s.verify().unwrap().is_clean());
}

#[test]
fn clean_fixture_opens_with_everything() {
    let dir = copy_fixture("clean");
    let s = Store::open(dir.path(), opts()).unwrap();
    check_clean(&s);
    // Still writable.
    s.put_object("maps", "new.bin", PartBody::new(&b"new"[..], 3))
        .unwrap();
    drop(s);
    check_clean(&Store::open(dir.path(), opts()).unwrap());
}

#[test]
fn torn_tail_fixture_opens_without_the_torn_put() {
    let dir = copy_fixture("torn_tail");
    let s = Store::open(dir.path(), opts()).unwrap();
    check_clean(&s);
    assert_eq!(
        s.head("maps", "late.bin").unwrap_err().kind(),
        ErrorKind::NotFound
    );
    drop(s);
    // The truncation is durable and a second open changes nothing.
    let s = Store::open(dir.path(), opts()).unwrap();
    check_clean(&s);
}

#[test]
fn corrupt_middle_fixture_is_refused() {
    let dir = copy_fixture("corrupt_middle");
    let err = Store::open(dir.path(), opts()).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Corrupt, "{err}");
    assert!(err.to_string().contains("segment 1"), "{err}");
}

#[test]
#[ignore = "writes tests/fixtures; run only on a deliberate format change"]
fn write_fixtures() {
    if std::env::var("PARTSTORE_WRITE_FIXTURES").is_err() {
        return;
    }
    let root = fixtures();
    let _ = std::fs::remove_dir_all(&root);
    let clean = root.join("clean");
    write_clean(&clean);
    std::fs::remove_file(clean.join("LOCK")).unwrap();

    let torn = root.join("torn_tail");
    write_clean(&torn);
    let newest = {
        let mut segs: Vec<_> = std::fs::read_dir(&torn)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "log"))
            .collect();
        segs.sort();
        segs.pop().unwrap()
    };
    let before = std::fs::read(&newest).unwrap();
    {
        let s = Store::open(&torn, opts()).unwrap();
        s.put_object("maps", "late.bin", PartBody::new(&b"late bytes"[..], 10))
            .unwrap();
    }
    let after = std::fs::read(&newest).unwrap();
    // The last non-zero byte is the end of the put's metadata record: cut
    // 10 bytes before it.
    let end = after.iter().rposition(|b| *b != 0).unwrap();
    assert_ne!(before, after, "the put must land in the newest segment");
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(&newest)
        .unwrap();
    f.set_len(end as u64 - 10).unwrap();
    std::fs::remove_file(torn.join("LOCK")).unwrap();

    let bad = root.join("corrupt_middle");
    write_clean(&bad);
    let seg1 = bad.join("seg-00000001.log");
    let mut b = std::fs::read(&seg1).unwrap();
    // The first record is the layer's metadata record: flip a payload byte.
    assert_eq!(&b[32..36], b"PSR1");
    b[32 + 24 + 2] ^= 0x40;
    std::fs::write(&seg1, b).unwrap();
    std::fs::remove_file(bad.join("LOCK")).unwrap();
}
