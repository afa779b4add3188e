//! Bit flips in a sealed segment are detected or harmless, never served.
//!
//! Every bit of the first record headers and 4,000 (by default) random payload bits of
//! a sealed segment are flipped one at a time (and flipped back). After each
//! flip, `open` either fails with `Corrupt`, or succeeds and every object
//! reads back either its exact bytes or `Corrupt` — never wrong bytes — and
//! `verify()` reports every corruption a read ran into. No panics.
//! PARTSTORE_BITFLIPS sets the number of random payload bits.

mod common;

use std::collections::BTreeMap;
use std::os::unix::fs::FileExt;
use std::path::Path;

use partstore::{ErrorKind, LayerConfig, Options, PartBody, Store};

fn opts() -> Options {
    Options::default().segment_size(256 << 10)
}

/// (record offset, payload length) of every record of a segment file.
fn records(path: &Path) -> Vec<(u64, u64)> {
    let f = std::fs::read(path).unwrap();
    let mut out = Vec::new();
    let mut pos = 32usize;
    while pos + 24 <= f.len() && f[pos..pos + 24].iter().any(|b| *b != 0) {
        assert_eq!(&f[pos..pos + 4], b"PSR1", "record at {pos}");
        let len = u64::from_le_bytes(f[pos + 8..pos + 16].try_into().unwrap());
        out.push((pos as u64, len));
        pos += 24 + (len as usize).div_ceil(8) * 8;
    }
    out
}

fn flip(path: &Path, offset: u64, bit: u8) {
    let f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .unwrap();
    let mut b = [0u8];
    f.read_exact_at(&mut b, offset).unwrap();
    b[0] ^= 1 << bit;
    f.write_all_at(&b, offset).unwrap();
}

#[derive(Default, Debug)]
struct Tally {
    open_corrupt: u64,
    read_corrupt: u64,
    harmless: u64,
}

fn check(dir: &Path, objects: &BTreeMap<String, Vec<u8>>, what: &str, tally: &mut Tally) {
    let store = match Store::open(dir, opts()) {
        Err(e) => {
            assert_eq!(e.kind(), ErrorKind::Corrupt, "{what}: open: {e}");
            tally.open_corrupt += 1;
            return;
        }
        Ok(s) => s,
    };
    let mut corrupt_reads = 0;
    for (key, want) in objects {
        match store.get("l", key).and_then(|b| b.to_vec()) {
            Ok(got) => assert!(&got == want, "{what}: {key} served wrong bytes"),
            Err(e) => {
                assert_eq!(e.kind(), ErrorKind::Corrupt, "{what}: {key}: {e}");
                corrupt_reads += 1;
            }
        }
    }
    let report = store.verify().unwrap();
    if corrupt_reads > 0 {
        assert!(
            !report.is_clean(),
            "{what}: a read failed but verify() is clean"
        );
        tally.read_corrupt += 1;
    } else {
        tally.harmless += 1;
    }
}

#[test]
fn bit_flips_in_a_sealed_segment_are_detected_or_harmless() {
    let dir = tempfile::tempdir().unwrap();
    let mut objects = BTreeMap::new();
    {
        let store = Store::open(dir.path(), opts()).unwrap();
        store.create_layer("l", LayerConfig::default()).unwrap();
        for i in 0..40u64 {
            let b = common::gen(i, 1 + (i as usize * 4111) % 30_000);
            let key = format!("k/{i}");
            store
                .put_object("l", &key, PartBody::new(&b[..], b.len() as u64))
                .unwrap();
            objects.insert(key, b);
        }
        let up = store
            .start_multipart("l", "pending", "application/octet-stream")
            .unwrap();
        store
            .upload_part("l", &up, 1, PartBody::new(&b"pending part"[..], 12))
            .unwrap();
        store.delete("l", "k/3").unwrap();
        objects.remove("k/3");
    }
    let seg = dir.path().join("seg-00000001.log");
    assert!(
        dir.path().join("seg-00000003.log").exists(),
        "want several segments"
    );
    let recs = records(&seg);
    assert!(recs.len() > 10);
    let mut tally = Tally::default();
    let mut header_bits = 0;
    for (off, _) in recs.iter().take(12) {
        for byte in 0..24u64 {
            for bit in 0..8u8 {
                flip(&seg, off + byte, bit);
                let what = format!("header bit {bit} of byte {} (record at {off})", off + byte);
                check(dir.path(), &objects, &what, &mut tally);
                flip(&seg, off + byte, bit);
                header_bits += 1;
            }
        }
    }
    // Every header bit flip must be caught at open: headers carry a CRC and
    // a bad record in a sealed segment is corruption.
    assert_eq!(tally.open_corrupt, header_bits, "{tally:?}");

    // 4,000 by default keeps the CI run short (each flip reopens the
    // store); PARTSTORE_BITFLIPS=10000 or more for a deeper run.
    let n: u64 = std::env::var("PARTSTORE_BITFLIPS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(4_000);
    let payload: Vec<(u64, u64)> = recs
        .iter()
        .map(|(o, l)| (o + 24, *l))
        .filter(|(_, l)| *l > 0)
        .collect();
    let total: u64 = payload.iter().map(|(_, l)| l).sum();
    let mut x = 0x2545_F491_4F6C_DD1Du64;
    let mut payload_tally = Tally::default();
    for _ in 0..n {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let mut k = x % total;
        let bit = (x >> 40) as u8 % 8;
        let (off, _) = payload
            .iter()
            .find(|(_, l)| {
                if k < *l {
                    true
                } else {
                    k -= l;
                    false
                }
            })
            .copied()
            .unwrap();
        flip(&seg, off + k, bit);
        check(
            dir.path(),
            &objects,
            &format!("payload bit {bit} at {}", off + k),
            &mut payload_tally,
        );
        flip(&seg, off + k, bit);
    }
    println!(
        "header bits flipped: {header_bits} (all detected at open); payload bits flipped: {n}: {payload_tally:?}"
    );
    assert_eq!(
        payload_tally.open_corrupt + payload_tally.read_corrupt + payload_tally.harmless,
        n
    );
    // The store is intact again.
    let store = Store::open(dir.path(), opts()).unwrap();
    assert!(store.verify().unwrap().is_clean());
}
