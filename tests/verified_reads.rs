//! Reads verify each 1 MiB block against its CRC32C once, then trust the
//! cached, mapped bytes (issue: 64 KiB reads re-hashed whole blocks). This
//! guards what that must not weaken: a damaged block is `Corrupt` on its
//! first read, blocks never read are never assumed good, and `verify()`
//! still checks every block, cached or not.

mod common;

use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use partstore::{ErrorKind, LayerConfig, Options, PartBody, Reason, Store};

const MIB: usize = 1 << 20;

/// The segment file holding `marker`, and the marker's offset in it.
fn find(dir: &Path, marker: &[u8]) -> (PathBuf, u64) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        if !name.starts_with("seg-") {
            continue;
        }
        let bytes = std::fs::read(&path).unwrap();
        if let Some(at) = bytes.windows(marker.len()).position(|w| w == marker) {
            return (path, at as u64);
        }
    }
    panic!("marker not stored");
}

fn flip(path: &Path, at: u64) {
    let f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .unwrap();
    let mut b = [0u8; 1];
    f.read_exact_at(&mut b, at).unwrap();
    b[0] ^= 0x20;
    f.write_all_at(&b, at).unwrap();
}

fn read(s: &Store, range: &str) -> partstore::Result<Vec<u8>> {
    let blob = s.get("l", "k")?;
    let slices = blob.read_range(range.parse()?)?;
    Ok(slices.iter().flat_map(|s| s.iter().copied()).collect())
}

#[test]
fn damaged_block_is_corrupt_on_first_read_even_after_others_were_verified() {
    let dir = tempfile::tempdir().unwrap();
    let s = Store::open(dir.path(), Options::default()).unwrap();
    s.create_layer("l", LayerConfig::default()).unwrap();
    let mut data = common::gen(9, 3 * MIB);
    let marker = b"verified-reads-marker-in-block-2";
    data[2 * MIB + 100..2 * MIB + 100 + marker.len()].copy_from_slice(marker);
    s.put_object("l", "k", PartBody::new(&data[..], data.len() as u64))
        .unwrap();

    // Block 0 read (and verified) many times in small pieces.
    for i in 0..16 {
        let (a, b) = (i * 64 * 1024, (i + 1) * 64 * 1024 - 1);
        assert_eq!(read(&s, &format!("bytes={a}-{b}")).unwrap(), data[a..=b]);
    }
    // Damage block 2, never read so far: its first read is Corrupt.
    let (seg, at) = find(dir.path(), marker);
    flip(&seg, at + 3);
    let e = read(&s, &format!("bytes={}-{}", 2 * MIB, 2 * MIB + 99)).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Corrupt, "{e}");
    assert_eq!(e.reason(), Some(Reason::ChecksumMismatch));
    // And every later read of it too (a failed check is not remembered).
    assert!(read(&s, &format!("bytes={}-", 2 * MIB)).is_err());
    // Blocks 0 and 1 still read.
    assert_eq!(read(&s, "bytes=0-2097151").unwrap(), data[..2 * MIB]);
    // verify() checks every block, cached or not.
    let report = s.verify().unwrap();
    assert_eq!(report.findings.len(), 1, "{:?}", report.corrupt);
    assert_eq!(report.findings[0].block, 2);
}

#[test]
fn verify_finds_damage_in_a_block_reads_already_trust() {
    let dir = tempfile::tempdir().unwrap();
    let s = Store::open(dir.path(), Options::default()).unwrap();
    s.create_layer("l", LayerConfig::default()).unwrap();
    let mut data = common::gen(10, 2 * MIB);
    let marker = b"verified-reads-marker-in-block-0";
    data[500..500 + marker.len()].copy_from_slice(marker);
    s.put_object("l", "k", PartBody::new(&data[..], data.len() as u64))
        .unwrap();
    assert_eq!(read(&s, "bytes=0-65535").unwrap(), data[..65536]);
    let (seg, at) = find(dir.path(), marker);
    flip(&seg, at);
    // The documented trade-off: reads trust a block verified while cached;
    // verify() does not.
    let report = s.verify().unwrap();
    assert!(!report.is_clean());
    assert_eq!(report.findings[0].block, 0);
    assert_eq!(report.findings[0].reason, Reason::ChecksumMismatch);
    // A reopened store has no memory of what was verified: Corrupt again.
    drop(s);
    let s = Store::open(dir.path(), Options::default()).unwrap();
    let e = read(&s, "bytes=0-65535").unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Corrupt);
}

#[test]
fn verify_checks_every_extent_of_a_store_larger_than_one_batch() {
    // verify() reads the index in batches (of 4,096 extents): 10,000
    // objects span three, with damage in the first and the last. A writer
    // and a deleter keep going meanwhile: what they add or remove is
    // checked or skipped, never misreported.
    let dir = tempfile::tempdir().unwrap();
    let s = Store::open(
        dir.path(),
        Options::default().durability(partstore::Durability::None),
    )
    .unwrap();
    s.create_layer("l", LayerConfig::default()).unwrap();
    let n = 10_000usize;
    let body = |i: usize| format!("verify-batch-object-{i:06}-{}", "x".repeat(i % 50)).into_bytes();
    for i in 0..n {
        let b = body(i);
        s.put_object(
            "l",
            &format!("k{i:06}"),
            PartBody::new(&b[..], b.len() as u64),
        )
        .unwrap();
    }
    let clean = s.verify().unwrap();
    assert_eq!(clean.extents, n);
    assert!(clean.is_clean());
    assert_eq!(
        clean.bytes,
        (0..n).map(|i| body(i).len() as u64).sum::<u64>()
    );
    for i in [3usize, n - 2] {
        let (seg, at) = find(dir.path(), &body(i));
        flip(&seg, at + 5);
    }
    let report = std::thread::scope(|sc| {
        let w = sc.spawn(|| {
            for i in 0..300 {
                let b = body(n + i);
                s.put_object(
                    "l",
                    &format!("new{i}"),
                    PartBody::new(&b[..], b.len() as u64),
                )
                .unwrap();
                s.delete("l", &format!("k{:06}", 100 + i)).unwrap();
            }
        });
        let r = s.verify().unwrap();
        w.join().unwrap();
        r
    });
    assert_eq!(report.findings.len(), 2, "{:?}", report.corrupt);
    assert!(report
        .findings
        .iter()
        .all(|f| f.reason == Reason::ChecksumMismatch));
    assert!(
        report.extents >= n - 300 && report.extents <= n + 300,
        "{}",
        report.extents
    );
    let after = s.verify().unwrap();
    assert_eq!(after.extents, n);
    assert_eq!(after.findings.len(), 2);
}
