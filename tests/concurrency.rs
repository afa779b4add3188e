//! Concurrency: many threads sharing one `&Store` upload parts of the same
//! and of different uploads at once and get exactly their bytes back; a slow
//! client streaming one part does not hold up other threads' uploads,
//! completions, puts and reads; readers see whole, consistent objects (one
//! version or another, never a mix) while writers replace them.

mod common;

use std::io::Read;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::Barrier;
use std::time::Duration;

use partstore::*;

const MIB: usize = 1 << 20;
const CT: &str = "application/octet-stream";
const L: &str = "l";

fn part(s: &Store, up: &UploadId, n: u32, bytes: &[u8]) -> PartInfo {
    let p = s
        .upload_part(L, up, n, PartBody::new(bytes, bytes.len() as u64))
        .unwrap();
    assert_eq!(p.size, bytes.len() as u64);
    assert_eq!(p.crc32c, crc32c::crc32c(bytes));
    p
}

fn assert_object(s: &Store, key: &str, expected: &[u8]) {
    let blob = s.get(L, key).unwrap();
    assert_eq!(blob.size(), expected.len() as u64, "{key}");
    assert_eq!(blob.info().crc32c, crc32c::crc32c(expected), "{key}");
    let got = blob.to_vec().unwrap();
    if let Some(i) = (0..expected.len()).find(|i| got[*i] != expected[*i]) {
        panic!("{key}: first differing byte at {i}");
    }
}

fn open(dir: &std::path::Path) -> Store {
    Store::open(dir, Options::default().segment_size(16 << 20)).unwrap()
}

/// Part `n` of the shared upload, uploaded by thread `(n - 1) % 4`.
fn shared_part(n: u32) -> Vec<u8> {
    let len = if n == 8 {
        MIB + 77
    } else {
        (5 + n as usize % 2) * MIB
    };
    common::gen(1000 + n as u64, len)
}

#[test]
fn eight_threads_upload_parts_of_shared_and_own_uploads() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(dir.path());
    s.create_layer(L, LayerConfig::default()).unwrap();
    let shared = s.start_multipart(L, "shared", CT).unwrap();
    let barrier = Barrier::new(8);
    let own_expected: Vec<Vec<u8>> = std::thread::scope(|scope| {
        let mut handles = Vec::new();
        for t in 0..8u64 {
            let (s, shared, barrier) = (&s, &shared, &barrier);
            handles.push(scope.spawn(move || {
                barrier.wait();
                if t < 4 {
                    // Parts t+1 and t+5 of the shared upload; part t+1 is
                    // first uploaded with other bytes, then replaced.
                    let n1 = t as u32 + 1;
                    part(s, shared, n1, &common::gen(9000 + t, 5 * MIB));
                    part(s, shared, n1 + 4, &shared_part(n1 + 4));
                    part(s, shared, n1, &shared_part(n1));
                    Vec::new()
                } else {
                    let key = format!("own/{t}");
                    let up = s.start_multipart(L, &key, CT).unwrap();
                    let p1 = common::gen(t * 100 + 1, 5 * MIB);
                    let p2 = common::gen(t * 100 + 2, 6 * MIB);
                    let p3 = common::gen(t * 100 + 3, 1000 + t as usize);
                    part(s, &up, 2, &p2);
                    part(s, &up, 1, &common::gen(t * 100 + 4, 7 * MIB));
                    part(s, &up, 3, &p3);
                    part(s, &up, 1, &p1);
                    let expected = [p1, p2, p3].concat();
                    let o = s.complete_multipart(L, &up).unwrap();
                    assert_eq!(o.crc32c, crc32c::crc32c(&expected), "{key}");
                    assert_object(s, &key, &expected);
                    expected
                }
            }));
        }
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let parts = s.list_parts(L, &shared).unwrap();
    assert_eq!(parts.len(), 8);
    for p in &parts {
        assert_eq!(p.crc32c, crc32c::crc32c(&shared_part(p.part_number)));
    }
    let o = s.complete_multipart(L, &shared).unwrap();
    let shared_expected: Vec<u8> = (1..=8).flat_map(shared_part).collect();
    assert_eq!(o.crc32c, crc32c::crc32c(&shared_expected));
    assert_object(&s, "shared", &shared_expected);
    for (t, exp) in own_expected.iter().enumerate().skip(4) {
        assert_object(&s, &format!("own/{t}"), exp);
    }
    let st = s.stats();
    assert_eq!((st.objects, st.uploads), (5, 0));
    assert!(st.segments > 1, "{st:?}");
    assert!(s.verify().unwrap().is_clean());
    drop(s);
    let s = open(dir.path());
    assert_object(&s, "shared", &shared_expected);
    for (t, exp) in own_expected.iter().enumerate().skip(4) {
        assert_object(&s, &format!("own/{t}"), exp);
    }
    assert!(s.verify().unwrap().is_clean());
}

/// A client that sends its body in small pieces with pauses, and halfway
/// stops until `gate` opens (telling `halfway` it got there).
struct SlowClient<'a> {
    data: &'a [u8],
    pos: usize,
    halfway: Option<mpsc::Sender<()>>,
    gate: mpsc::Receiver<()>,
    /// Set when the gate opened; stays false if it timed out.
    gate_opened: &'a AtomicBool,
}

impl Read for SlowClient<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.pos >= self.data.len() / 2 {
            if let Some(tx) = self.halfway.take() {
                tx.send(()).unwrap();
                // Generous: only reached if other threads are blocked.
                if self.gate.recv_timeout(Duration::from_secs(30)).is_ok() {
                    self.gate_opened.store(true, Ordering::SeqCst);
                }
            }
        }
        std::thread::sleep(Duration::from_millis(1));
        let n = buf.len().min(64 << 10).min(self.data.len() - self.pos);
        buf[..n].copy_from_slice(&self.data[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

#[test]
fn a_slow_client_does_not_block_other_uploads() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(dir.path());
    s.create_layer(L, LayerConfig::default()).unwrap();
    let existing = common::gen(1, 3 * MIB);
    s.put_object(
        L,
        "existing",
        PartBody::new(&existing[..], existing.len() as u64),
    )
    .unwrap();
    let slow_up = s.start_multipart(L, "slow", CT).unwrap();
    let slow_data = common::gen(2, 6 * MIB);
    let slow_tail = common::gen(3, 4000);
    let fast_a = common::gen(4, 5 * MIB);
    let fast_b = common::gen(5, 12345);
    let put_data = common::gen(6, 2 * MIB + 1);
    let gate_opened = AtomicBool::new(false);
    let fast_done = AtomicBool::new(false);
    let fast_done_before_gate = AtomicBool::new(false);
    let (halfway_tx, halfway_rx) = mpsc::channel();
    let (gate_tx, gate_rx) = mpsc::channel();
    std::thread::scope(|scope| {
        let slow = scope.spawn(|| {
            let client = SlowClient {
                data: &slow_data,
                pos: 0,
                halfway: Some(halfway_tx),
                gate: gate_rx,
                gate_opened: &gate_opened,
            };
            let p = s
                .upload_part(
                    L,
                    &slow_up,
                    1,
                    PartBody::new(client, slow_data.len() as u64),
                )
                .unwrap();
            fast_done_before_gate.store(fast_done.load(Ordering::SeqCst), Ordering::SeqCst);
            p
        });
        let (s, slow_up, fast_done) = (&s, &slow_up, &fast_done);
        let (fast_a, fast_b, put_data, existing) = (&fast_a, &fast_b, &put_data, &existing);
        let slow_tail = &slow_tail;
        let fast = scope.spawn(move || {
            // Wait until the slow body is half read: its part is in flight.
            halfway_rx.recv().unwrap();
            // Another part of the same upload.
            part(s, slow_up, 2, slow_tail);
            // A whole other upload, completed and read back.
            let up = s.start_multipart(L, "fast", CT).unwrap();
            part(s, &up, 2, fast_b);
            part(s, &up, 1, fast_a);
            s.complete_multipart(L, &up).unwrap();
            assert_object(s, "fast", &[&fast_a[..], &fast_b[..]].concat());
            // A put, a copy, reads, listings.
            s.put_object(
                L,
                "put",
                PartBody::new(&put_data[..], put_data.len() as u64),
            )
            .unwrap();
            s.copy_object(L, "existing-copy", "existing").unwrap();
            assert_object(s, "existing-copy", existing);
            assert_object(s, "put", put_data);
            assert_eq!(s.list_uploads(L).unwrap().len(), 1);
            // The slow part is not visible yet: only part 2 is.
            let parts = s.list_parts(L, slow_up).unwrap();
            assert_eq!(parts.iter().map(|p| p.part_number).collect::<Vec<_>>(), [2]);
            fast_done.store(true, Ordering::SeqCst);
            let _ = gate_tx.send(());
        });
        fast.join().unwrap();
        let p = slow.join().unwrap();
        assert_eq!(p.crc32c, crc32c::crc32c(&slow_data));
    });
    assert!(
        gate_opened.load(Ordering::SeqCst),
        "the other thread's work did not finish while the slow part was in flight"
    );
    assert!(fast_done_before_gate.load(Ordering::SeqCst));
    let o = s.complete_multipart(L, &slow_up).unwrap();
    let expected = [slow_data, slow_tail].concat();
    assert_eq!(o.crc32c, crc32c::crc32c(&expected));
    assert_object(&s, "slow", &expected);
    assert!(s.verify().unwrap().is_clean());
}

/// Version `v` of key `k`: 8 bytes of version, then bytes determined by
/// (k, v). Multipart versions (even v > 0) are 5 MiB + a tail.
fn version(k: usize, v: u64) -> Vec<u8> {
    let len = if v > 0 && v.is_multiple_of(2) {
        5 * MIB + 1000 + k
    } else {
        (k + 1) * 150_000 + v as usize
    };
    let mut b = common::gen((k as u64) << 32 | v, len);
    b[..8].copy_from_slice(&v.to_le_bytes());
    b
}

/// The bytes must be exactly some version of key k.
fn check_version(k: usize, bytes: &[u8], what: &str) -> u64 {
    assert!(bytes.len() >= 8, "{what}: {} bytes", bytes.len());
    let v = u64::from_le_bytes(bytes[..8].try_into().unwrap());
    let exp = version(k, v);
    assert!(
        bytes == &exp[..],
        "{what}: bytes are not version {v} of key {k}"
    );
    v
}

#[test]
fn readers_see_whole_objects_while_writers_replace_them() {
    const KEYS: usize = 6;
    const VERSIONS: u64 = 4;
    let dir = tempfile::tempdir().unwrap();
    let s = open(dir.path());
    s.create_layer(L, LayerConfig::default()).unwrap();
    for k in 0..KEYS {
        let b = version(k, 0);
        s.put_object(L, &format!("r/{k}"), PartBody::new(&b[..], b.len() as u64))
            .unwrap();
    }
    let pinned = s.get(L, "r/0").unwrap();
    let writers_done = AtomicUsize::new(0);
    let reads = AtomicUsize::new(0);
    std::thread::scope(|scope| {
        // 3 writers, each owning two keys, writing versions 1..=VERSIONS.
        for w in 0..3usize {
            let (s, writers_done) = (&s, &writers_done);
            scope.spawn(move || {
                for v in 1..=VERSIONS {
                    for k in [w, w + 3] {
                        let key = format!("r/{k}");
                        let b = version(k, v);
                        if v.is_multiple_of(2) {
                            let up = s.start_multipart(L, &key, CT).unwrap();
                            part(s, &up, 2, &b[5 * MIB..]);
                            part(s, &up, 1, &b[..5 * MIB]);
                            s.complete_multipart(L, &up).unwrap();
                        } else {
                            s.put_object(L, &key, PartBody::new(&b[..], b.len() as u64))
                                .unwrap();
                        }
                    }
                }
                writers_done.fetch_add(1, Ordering::SeqCst);
            });
        }
        // 4 readers, until every writer is done (and at least a few reads).
        for r in 0..4usize {
            let (s, writers_done, reads, pinned) = (&s, &writers_done, &reads, &pinned);
            scope.spawn(move || {
                let mut last_seen = [0u64; KEYS];
                let mut i = 0usize;
                while writers_done.load(Ordering::SeqCst) < 3 || i < 8 {
                    let k = (i * 7 + r) % KEYS;
                    let key = format!("r/{k}");
                    let blob = s.get(L, &key).unwrap();
                    let what = format!("reader {r} read {i} of {key}");
                    let bytes = match i % 3 {
                        0 => blob.to_vec().unwrap(),
                        1 => {
                            let mut v = Vec::new();
                            blob.reader().read_to_end(&mut v).unwrap();
                            v
                        }
                        _ => {
                            let mut v = Vec::new();
                            for sl in blob.read_range("bytes=0-".parse().unwrap()).unwrap() {
                                v.extend_from_slice(&sl);
                            }
                            v
                        }
                    };
                    assert_eq!(bytes.len() as u64, blob.size(), "{what}");
                    assert_eq!(crc32c::crc32c(&bytes), blob.info().crc32c, "{what}");
                    let v = check_version(k, &bytes, &what);
                    // Versions of one key never go backwards for a reader.
                    assert!(
                        v >= last_seen[k],
                        "{what}: version {v} after {}",
                        last_seen[k]
                    );
                    last_seen[k] = v;
                    if i.is_multiple_of(5) {
                        check_version(0, &pinned.to_vec().unwrap(), "pinned blob");
                    }
                    reads.fetch_add(1, Ordering::SeqCst);
                    i += 1;
                }
            });
        }
    });
    assert!(reads.load(Ordering::SeqCst) >= 32);
    for k in 0..KEYS {
        assert_object(&s, &format!("r/{k}"), &version(k, VERSIONS));
    }
    assert_eq!(check_version(0, &pinned.to_vec().unwrap(), "pinned"), 0);
    assert!(s.verify().unwrap().is_clean());
    assert_eq!(s.stats().objects, KEYS);
}
