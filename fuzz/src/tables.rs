//! The fixed selector tables: the names, sizes, media types and ids an
//! operation's small integer fields pick, valid ones first, then ones that
//! break a rule.

use partstore::ByteRange;

use crate::model::{MAX_PART, MAX_PUT, MIB};

/// Valid layer ids first; then ones that break the rules.
pub fn layer_name(sel: u8) -> String {
    const VALID: [&str; 3] = ["a", "b", "c"];
    if sel < 232 {
        return VALID[sel as usize % 3].to_string();
    }
    match sel % 4 {
        0 => String::new(),
        1 => "bad/layer".to_string(),
        2 => "x".repeat(51),
        _ => "never-created".to_string(),
    }
}

pub const VALID_KEYS: [&str; 9] = ["k", "a/b", "a/c", "a/b/c", "a.b", "a", "z/z/z", "a0", "b"];
pub const BAD_KEYS: [&str; 6] = ["", "/x", "x/", "a//b", "é", "sp ace"];

pub fn key_name(sel: u8) -> String {
    if sel < 236 {
        return VALID_KEYS[sel as usize % VALID_KEYS.len()].to_string();
    }
    match sel % 7 {
        6 => "y".repeat(451),
        i => BAD_KEYS[i as usize % BAD_KEYS.len()].to_string(),
    }
}

pub fn layer_type(sel: u8) -> Option<String> {
    [
        None,
        Some("text/plain"),
        Some("TEXT/Plain"),
        Some("application/octet-stream"),
    ][sel as usize % 4]
        .map(String::from)
}

pub fn layer_encoding(sel: u8) -> Option<String> {
    [None, None, Some("gzip"), Some("GZIP"), Some("br")][sel as usize % 5].map(String::from)
}

pub fn upload_type(sel: u8) -> String {
    [
        "application/octet-stream",
        "text/plain",
        "TEXT/PLAIN",
        "image/png",
    ][sel as usize % 4]
        .to_string()
}

/// The content type a `put_object` body declares: mostly one of
/// `upload_type`'s, sometimes none (the layer's or the default applies).
pub fn body_type(sel: u8) -> Option<String> {
    (sel < 192).then(|| upload_type(sel))
}

/// The content type an `upload_part` body declares (selector 0..16): mostly
/// none, else one of `upload_type`'s (which may differ from the upload's).
pub fn part_type(sel: u8) -> Option<String> {
    (sel >= 12).then(|| upload_type(sel))
}

pub fn upload_encoding(sel: u8) -> Option<String> {
    [None, Some("gzip"), Some("Gzip"), Some("br")][sel as usize % 4].map(String::from)
}

/// Part numbers: mostly small, sometimes at or past the limits.
pub fn part_number(sel: u8) -> u32 {
    match sel {
        0 => 0,
        1..=24 => u32::from(sel),
        250 => 9_999,
        251 => 10_000,
        252 => 10_001,
        253 => u32::MAX,
        _ => u32::from(sel % 6) + 1,
    }
}

/// Body sizes: 5..=8 MiB (valid non-last parts) most often, then small,
/// odd and limit-crossing ones.
pub fn body_size(sel: u8) -> u64 {
    let k = u64::from(sel / 8);
    match sel % 8 {
        0..=3 => (5 + k % 4) * MIB,
        4 => 1 + k * 37,
        5 => (1 + k % 4) * MIB,
        6 => 5 * MIB + 1 + k,
        _ => [MAX_PART, MAX_PART + 1, MAX_PUT, MAX_PUT + 1][k as usize % 4],
    }
}

pub fn block_crcs(id: u64, len: u64) -> Vec<u32> {
    (0..len.div_ceil(MIB))
        .map(|b| (id as u32).rotate_left(7) ^ b as u32)
        .collect()
}

pub fn upload_id(n: u64) -> [u8; 16] {
    let mut id = [0x5a; 16];
    id[..8].copy_from_slice(&n.to_le_bytes());
    id
}

/// An upload id no record ever names.
pub const UNKNOWN_UPLOAD: [u8; 16] = [0xee; 16];

/// A copy range of a source of `size` bytes: mostly `bytes=a-b` with `a`
/// a MiB boundary inside the source and `b` inside it too (the whole rest
/// when `len % 4 == 0`); `bad` picks ranges the SPEC refuses.
pub fn copy_range(size: u64, first: u8, len: u32, bad: u8) -> ByteRange {
    let start = u64::from(first) % size.div_ceil(MIB).max(1) * MIB;
    let avail = size.saturating_sub(start).max(1);
    let want = if len.is_multiple_of(4) {
        avail
    } else {
        1 + u64::from(len / 4) % avail
    };
    let last = start + want - 1;
    match bad % 16 {
        8 => ByteRange::From { first: start },
        9 => ByteRange::Suffix { len: want },
        // Not on a MiB boundary.
        10 => ByteRange::Bounded {
            first: start + 1,
            last: last.max(start + 1),
        },
        // Past the end.
        11 => ByteRange::Bounded {
            first: start,
            last: size.max(start) + u64::from(len % 3),
        },
        // Backwards.
        12 => ByteRange::Bounded {
            first: start + MIB,
            last: start,
        },
        _ => ByteRange::Bounded { first: start, last },
    }
}
