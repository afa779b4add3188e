//! Performance properties that a test can pin down (the figures themselves
//! are in BENCHMARKS.md, from `benches/`):
//! - `read_range` returns slices that point into the segment file's memory
//!   map, never into a copy;
//! - peak RSS growth while 4 uploads of 96 MiB parts run at once stays
//!   under 64 MiB (a part is streamed, never held whole), also with an MD5
//!   digest (hashed beside the writing, through a bounded ring of buffers).

use std::io::Read;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use md5::Digest as _;
use partstore::{Digest, DigestAlgorithm, LayerConfig, Options, PartBody, Store};

const MIB: u64 = 1 << 20;

/// The tests here measure the process (its maps, its RSS): one at a time.
static SERIAL: Mutex<()> = Mutex::new(());

/// Pseudo-random bytes made on the fly: a body of any length that holds no
/// memory of its own, like a socket.
struct Generated {
    left: u64,
    x: u64,
}

impl Generated {
    fn new(len: u64, seed: u64) -> Generated {
        Generated {
            left: len,
            x: seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1,
        }
    }
}

impl Read for Generated {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = (buf.len() as u64).min(self.left) as usize;
        for w in buf[..n].chunks_mut(8) {
            self.x ^= self.x >> 12;
            self.x ^= self.x << 25;
            self.x ^= self.x >> 27;
            let v = self.x.wrapping_mul(0x2545_F491_4F6C_DD1D).to_le_bytes();
            w.copy_from_slice(&v[..w.len()]);
        }
        self.left -= n as u64;
        Ok(n)
    }
}

/// The mapped file (path) whose mapping holds `ptr..ptr+len`, from
/// /proc/self/maps.
fn mapping_of(ptr: usize, len: usize) -> Option<String> {
    let maps = std::fs::read_to_string("/proc/self/maps").ok()?;
    maps.lines().find_map(|line| {
        let mut fields = line.split_whitespace();
        let range = fields.next()?;
        let (lo, hi) = range.split_once('-')?;
        let (lo, hi) = (
            usize::from_str_radix(lo, 16).ok()?,
            usize::from_str_radix(hi, 16).ok()?,
        );
        let path = fields.nth(4).unwrap_or("").to_string();
        (lo <= ptr && ptr + len <= hi).then_some(path)
    })
}

#[test]
fn read_range_slices_point_into_the_segment_map() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    for verify in [true, false] {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), Options::default().verify_reads(verify)).unwrap();
        store.create_layer("l", LayerConfig::default()).unwrap();
        let len = 3 * MIB + 17;
        store
            .put_object("l", "k", PartBody::new(Generated::new(len, 1), len))
            .unwrap();
        let a = store.get("l", "k").unwrap();
        let b = store.get("l", "k").unwrap();
        let sa = a.read_range("bytes=0-".parse().unwrap()).unwrap();
        let sb = b.read_range("bytes=1048576-".parse().unwrap()).unwrap();
        assert_eq!(sa.iter().map(|s| s.len() as u64).sum::<u64>(), len);
        // Two snapshots give the same addresses: the bytes are shared,
        // not copied per call.
        assert_eq!(
            sa[0].as_ptr() as usize + MIB as usize,
            sb[0].as_ptr() as usize
        );
        // And those addresses are inside a map of a segment file.
        for s in sa.iter().chain(sb.iter()) {
            let path = mapping_of(s.as_ptr() as usize, s.len())
                .unwrap_or_else(|| panic!("slice {s:?} is in no mapping"));
            let name = std::path::Path::new(&path)
                .file_name()
                .and_then(|n| n.to_str())
                .unwrap_or("");
            assert!(
                name.starts_with("seg-") && name.ends_with(".log") && path.starts_with('/'),
                "slice {s:?} (verify_reads {verify}) points into {path:?}, not a segment map"
            );
            assert!(
                std::path::Path::new(&path).starts_with(dir.path().canonicalize().unwrap())
                    || std::path::Path::new(&path).starts_with(dir.path()),
                "slice {s:?} maps {path}, outside the store"
            );
        }
        // The bytes are right, too.
        let mut want = vec![0u8; len as usize];
        Generated::new(len, 1).read_exact(&mut want).unwrap();
        let got: Vec<u8> = sa.iter().flat_map(|s| s.iter().copied()).collect();
        assert!(got == want, "read_range bytes differ");
    }
}

/// VmRSS of this process, in bytes.
fn rss() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}

/// MD5 of `Generated::new(len, seed)`, read through a small buffer.
fn md5_of_generated(len: u64, seed: u64) -> Digest {
    let mut body = Generated::new(len, seed);
    let mut h = md5::Md5::new();
    let mut buf = vec![0u8; MIB as usize];
    loop {
        let n = body.read(&mut buf).unwrap();
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Digest::new(DigestAlgorithm::Md5, &h.finalize()).unwrap()
}

#[test]
fn four_concurrent_96mib_uploads_grow_peak_rss_by_less_than_64mib() {
    four_concurrent_96mib_uploads(false);
}

#[test]
fn four_concurrent_96mib_md5_uploads_grow_peak_rss_by_less_than_64mib() {
    four_concurrent_96mib_uploads(true);
}

fn four_concurrent_96mib_uploads(md5: bool) {
    let len = 96 * MIB;
    let digests: Vec<Option<Digest>> = (0..4u64)
        .map(|i| md5.then(|| md5_of_generated(len, i)))
        .collect();
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), Options::default()).unwrap();
    store.create_layer("l", LayerConfig::default()).unwrap();
    let uploads: Vec<_> = (0..4)
        .map(|i| {
            store
                .start_multipart("l", &format!("k{i}"), "application/octet-stream")
                .unwrap()
        })
        .collect();
    // Warm the allocator and the code paths with a small part first.
    store
        .upload_part(
            "l",
            &uploads[0],
            2,
            PartBody::new(Generated::new(MIB, 9), MIB),
        )
        .unwrap();

    let base = rss();
    let peak = Arc::new(AtomicU64::new(base));
    let done = Arc::new(AtomicBool::new(false));
    let sampler = {
        let (peak, done) = (Arc::clone(&peak), Arc::clone(&done));
        std::thread::spawn(move || {
            while !done.load(Ordering::SeqCst) {
                peak.fetch_max(rss(), Ordering::SeqCst);
                std::thread::sleep(Duration::from_millis(1));
            }
        })
    };
    std::thread::scope(|s| {
        for (i, up) in uploads.iter().enumerate() {
            let (store, digest) = (&store, &digests[i]);
            s.spawn(move || {
                let mut body = PartBody::new(Generated::new(len, i as u64), len);
                if let Some(d) = digest {
                    body = body.digest(d.clone());
                }
                let p = store.upload_part("l", up, 1, body).unwrap();
                assert_eq!(p.size, len);
            });
        }
    });
    done.store(true, Ordering::SeqCst);
    sampler.join().unwrap();
    let growth = peak.load(Ordering::SeqCst).saturating_sub(base);
    println!(
        "peak RSS growth with 4 concurrent 96 MiB part uploads (MD5: {md5}): {:.1} MiB (base {:.1} MiB)",
        growth as f64 / MIB as f64,
        base as f64 / MIB as f64
    );
    assert!(
        growth < 64 * MIB,
        "peak RSS grew by {} MiB while 4 uploads of 96 MiB parts ran",
        growth / MIB
    );
    for up in &uploads {
        let st = store.upload_status("l", up).unwrap();
        assert!(matches!(st, partstore::UploadStatus::Open { .. }));
    }
}
