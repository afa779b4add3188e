//! `ByteRange` parsing and resolution: never panics, accepts exactly
//! SPEC.md's `bytes=a-b`, `bytes=a-`, `bytes=-n` (checked against a
//! straightforward reference below), round-trips through `Display`, and
//! resolves (reads and `copy_part` sources) as the SPEC says.
//!
//! Input: 8 bytes of object size (LE), then the range text.
#![no_main]

use libfuzzer_sys::fuzz_target;
use partstore::{ByteRange, ErrorKind};

const MIB: u64 = 1 << 20;

fn number(s: &[u8]) -> Option<u64> {
    if s.is_empty() {
        return None;
    }
    let mut v: u128 = 0;
    for &b in s {
        if !b.is_ascii_digit() {
            return None;
        }
        v = v * 10 + u128::from(b - b'0');
        if v > u128::from(u64::MAX) {
            return None;
        }
    }
    Some(v as u64)
}

/// One range: the unit `bytes` (any case), `=`, then exactly one `-` with
/// ASCII digits around it; `-0` and a > b are unsatisfiable.
fn reference(s: &str) -> Option<ByteRange> {
    let b = s.as_bytes();
    if b.len() < 6 || !b[..6].eq_ignore_ascii_case(b"bytes=") {
        return None;
    }
    let spec = &b[6..];
    let dash = spec.iter().position(|&c| c == b'-')?;
    let (first, last) = (&spec[..dash], &spec[dash + 1..]);
    match (first.is_empty(), last.is_empty()) {
        (true, true) => None,
        (true, false) => match number(last)? {
            0 => None,
            len => Some(ByteRange::Suffix { len }),
        },
        (false, true) => Some(ByteRange::From {
            first: number(first)?,
        }),
        (false, false) => {
            let (first, last) = (number(first)?, number(last)?);
            (first <= last).then_some(ByteRange::Bounded { first, last })
        }
    }
}

/// SPEC: reads clamp `b` to size-1; start >= size or an empty object is
/// unsatisfiable; a suffix longer than the object is the whole object.
fn reference_resolve(r: ByteRange, size: u64) -> Option<(u64, u64)> {
    if size == 0 {
        return None;
    }
    match r {
        ByteRange::Bounded { first, last } if first < size && first <= last => {
            Some((first, last.min(size - 1) + 1))
        }
        ByteRange::From { first } if first < size => Some((first, size)),
        ByteRange::Suffix { len } if len > 0 => Some((size - len.min(size), size)),
        _ => None,
    }
}

/// SPEC copy_part: only `bytes=a-b`, a a multiple of 1 MiB, a <= b < size
/// (416); longer than 96 MiB: 413.
fn reference_copy(r: ByteRange, size: u64) -> Result<(u64, u64), ErrorKind> {
    let ByteRange::Bounded { first, last } = r else {
        return Err(ErrorKind::RangeNotSatisfiable);
    };
    if first > last || first % MIB != 0 || last >= size {
        return Err(ErrorKind::RangeNotSatisfiable);
    }
    if last - first + 1 > 96 * MIB {
        return Err(ErrorKind::TooLarge);
    }
    Ok((first, last + 1))
}

fn check_resolution(r: ByteRange, size: u64) {
    let got = r.resolve(size).map(|x| (x.start, x.end));
    match (&got, reference_resolve(r, size)) {
        (Ok(g), Some(w)) => assert_eq!(*g, w, "{r} on {size}"),
        (Err(e), None) => assert_eq!(e.kind(), ErrorKind::RangeNotSatisfiable),
        (g, w) => panic!("{r} on {size}: resolve says {g:?}, reference {w:?}"),
    }
    let got = r.resolve_copy(size).map(|x| (x.start, x.end));
    match (&got, reference_copy(r, size)) {
        (Ok(g), Ok(w)) => assert_eq!(*g, w, "copy {r} of {size}"),
        (Err(e), Err(k)) => assert_eq!(e.kind(), k, "copy {r} of {size}: {e}"),
        (g, w) => panic!("copy {r} of {size}: resolve_copy says {g:?}, reference {w:?}"),
    }
}

fuzz_target!(|data: &[u8]| {
    let (size, text) = data.split_at(data.len().min(8));
    let mut sz = [0u8; 8];
    sz[..size.len()].copy_from_slice(size);
    let size = u64::from_le_bytes(sz);
    // Ranges parsing never yields too (a > b, a suffix of 0), built by hand.
    let n = |i: usize| {
        text.get(i..i + 8)
            .map(|b| u64::from_le_bytes(b.try_into().unwrap()))
    };
    if let (Some(a), Some(b)) = (n(0), n(8)) {
        for r in [
            ByteRange::Bounded { first: a, last: b },
            ByteRange::From { first: a },
            ByteRange::Suffix { len: b },
            ByteRange::Bounded {
                first: a & !(MIB - 1),
                last: (a & !(MIB - 1)).saturating_add(b % (100 * MIB)),
            },
        ] {
            check_resolution(r, size);
        }
    }
    let Ok(s) = std::str::from_utf8(text) else {
        return;
    };
    let parsed = s.parse::<ByteRange>();
    match (&parsed, reference(s)) {
        (Ok(r), Some(want)) => {
            assert_eq!(*r, want, "{s:?}");
            let shown = r.to_string();
            assert_eq!(shown.parse::<ByteRange>().ok(), Some(*r), "{shown}");
        }
        (Err(e), None) => {
            assert_eq!(e.kind(), ErrorKind::RangeNotSatisfiable, "{s:?}: {e}");
            assert!(e.to_string().len() < 4096);
        }
        (got, want) => panic!("{s:?}: parser says {got:?}, reference says {want:?}"),
    }
    if let Ok(r) = parsed {
        check_resolution(r, size);
    }
});
