//! Shared test helpers.
#![allow(dead_code)]

pub mod faulty;

/// Deterministic pseudo-random bytes (xorshift64); different seeds give
/// unrelated data.
pub fn gen(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ 0xD1B5_4A32_D192_ED03;
    if x == 0 {
        x = 1;
    }
    let mut v = vec![0u8; len];
    for c in v.chunks_mut(8) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        c.copy_from_slice(&x.to_le_bytes()[..c.len()]);
    }
    v
}

/// How many checkpoint records (metadata records with tag 20, see
/// docs/FORMAT.md) the segment files of a store directory hold.
pub fn checkpoints_in(dir: &std::path::Path) -> usize {
    let mut n = 0;
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.extension().is_none_or(|x| x != "log") {
            continue;
        }
        let b = std::fs::read(&p).unwrap();
        let mut pos = 32usize;
        while pos + 24 <= b.len() && b[pos..pos + 24].iter().any(|x| *x != 0) {
            let len = u64::from_le_bytes(b[pos + 8..pos + 16].try_into().unwrap()) as usize;
            if b[pos + 4] == 2 && len > 8 && b.get(pos + 32) == Some(&20) {
                n += 1;
            }
            pos += 24 + len.div_ceil(8) * 8;
        }
    }
    n
}
