//! Arbitrary bytes decoded as the on-disk format: record headers, segment
//! headers and metadata payloads. No panic, no infinite loop (libFuzzer's
//! -timeout), and no allocation beyond what the input can justify: a
//! counting allocator bounds the peak bytes a decode holds by a small
//! multiple of the input's length. A payload that decodes re-encodes to the
//! same bytes (the format is canonical), and applying it to an index either
//! fails and changes nothing or leaves a self-consistent index.
#![no_main]

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

use libfuzzer_sys::fuzz_target;
use partstore::internals::{
    decode_segment_header, decode_segment_header_version, encode_segment_header,
    encode_segment_header_version, Index, Meta, RecordHeader, SEGMENT_HEADER_LEN,
};

/// Counts live heap bytes and their peak.
struct Counting;
static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        let now = LIVE.fetch_add(l.size(), Ordering::Relaxed) + l.size();
        PEAK.fetch_max(now, Ordering::Relaxed);
        unsafe { System.alloc(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        LIVE.fetch_sub(l.size(), Ordering::Relaxed);
        unsafe { System.dealloc(p, l) }
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, new: usize) -> *mut u8 {
        if new > l.size() {
            let now = LIVE.fetch_add(new - l.size(), Ordering::Relaxed) + new - l.size();
            PEAK.fetch_max(now, Ordering::Relaxed);
        } else {
            LIVE.fetch_sub(l.size() - new, Ordering::Relaxed);
        }
        unsafe { System.realloc(p, l, new) }
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

/// Peak heap bytes `f` adds.
fn peak_of<T>(f: impl FnOnce() -> T) -> (T, usize) {
    let base = LIVE.load(Ordering::Relaxed);
    PEAK.store(base, Ordering::Relaxed);
    let out = f();
    (out, PEAK.load(Ordering::Relaxed) - base)
}

/// A small index with a layer, an object and an open upload, for records
/// that name them.
fn seeded() -> Index {
    let input: Vec<u8> = [
        fuzz_common::Op::CreateLayer {
            layer: 0,
            ct: 0,
            ce: 0,
        },
        fuzz_common::Op::Put {
            layer: 0,
            key: 0,
            size: 4,
            ct: 0,
            ce: 0,
            bad: 0,
        },
        fuzz_common::Op::Start {
            layer: 0,
            key: 1,
            ct: 0,
            ce: 0,
            reuse: 0,
        },
        fuzz_common::Op::SetPart {
            layer: 0,
            upload: 0,
            number: 1,
            size: 0,
            crc: 1,
            bad: 0,
        },
    ]
    .iter()
    .flat_map(fuzz_common::Op::encode)
    .collect();
    fuzz_common::run_ops(&fuzz_common::parse_ops(&input)).index
}

fuzz_target!(|data: &[u8]| {
    // Record and segment headers.
    if let Some(h) = RecordHeader::decode(data) {
        assert_eq!(&h.encode()[..], &data[..24]);
    }
    // Salted (a recycled segment's): the salt from the input's tail.
    let salt = data
        .get(24..32)
        .map(|s| u64::from_le_bytes(s.try_into().unwrap()));
    if let Some(h) = RecordHeader::decode_salted(data, salt) {
        assert_eq!(&h.encode_salted(salt)[..], &data[..24]);
    }
    if let Ok((id, version)) = decode_segment_header_version(data, "fuzz") {
        assert_eq!(decode_segment_header(data, "fuzz").ok(), Some(id));
        assert_eq!(
            &encode_segment_header_version(id, version)[..],
            &data[..SEGMENT_HEADER_LEN as usize]
        );
        if version == 1 {
            assert_eq!(&encode_segment_header(id)[..], &data[..32]);
        }
    }

    // A metadata payload.
    let (meta, peak) = peak_of(|| Meta::decode(data));
    let bound = 16 * data.len() + 4096;
    assert!(
        peak <= bound,
        "decoding {} bytes held {peak} heap bytes",
        data.len()
    );
    let Ok(meta) = meta else {
        return;
    };
    assert_eq!(meta.encode(), data, "decode is not the inverse of encode");

    if let Meta::Snapshot(s) = &meta {
        if let Ok(ix) = Index::restore(s) {
            fuzz_common::check_invariants(&ix);
            let again = Index::restore(&ix.snapshot(partstore::internals::Retention::forever()))
                .expect("own snapshot restores");
            assert!(again == ix);
        }
    }
    for mut ix in [Index::new(), seeded()] {
        let before = ix.clone();
        match ix.apply(meta.clone()) {
            Ok(()) => fuzz_common::check_invariants(&ix),
            Err(_) => assert!(ix == before, "a failed apply changed the index"),
        }
    }
});
