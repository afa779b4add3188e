//! `Digest` parsing: never panics, accepts exactly SPEC.md's `ALGORITHM:HEX`
//! (checked against a straightforward reference below), round-trips through
//! its canonical `Display`, and rejects with a short BadRequest.
#![no_main]

use libfuzzer_sys::fuzz_target;
use partstore::{Digest, DigestAlgorithm, ErrorKind};

/// SPEC.md: canonical names CRC-32C, MD5, SHA1, SHA256, accepted
/// case-insensitively and with or without the hyphen (between the letters
/// and the digits); hex of exactly 8, 32, 40 or 64 digits, either case.
fn reference(s: &str) -> Option<(DigestAlgorithm, Vec<u8>)> {
    let colon = s.find(':')?;
    let (name, hex) = (&s[..colon], &s[colon + 1..]);
    let mut name = name.to_ascii_lowercase();
    if let Some(h) = name.find('-') {
        let (letters, digits) = (&name[..h], &name[h + 1..]);
        let ok = !letters.is_empty()
            && letters.bytes().all(|b| b.is_ascii_lowercase())
            && digits.bytes().next().is_some_and(|b| b.is_ascii_digit());
        if !ok {
            return None;
        }
        name = format!("{letters}{digits}");
    }
    let (alg, digits) = match name.as_str() {
        "crc32c" => (DigestAlgorithm::Crc32c, 8),
        "md5" => (DigestAlgorithm::Md5, 32),
        "sha1" => (DigestAlgorithm::Sha1, 40),
        "sha256" => (DigestAlgorithm::Sha256, 64),
        _ => return None,
    };
    if hex.len() != digits {
        return None;
    }
    let nibble = |b: u8| match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    };
    let mut bytes = Vec::new();
    for pair in hex.as_bytes().chunks(2) {
        bytes.push(nibble(pair[0])? << 4 | nibble(pair[1])?);
    }
    Some((alg, bytes))
}

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    let parsed = s.parse::<Digest>();
    match (&parsed, reference(s)) {
        (Ok(d), Some((alg, bytes))) => {
            assert_eq!(d.algorithm(), alg, "{s:?}");
            assert_eq!(d.bytes(), &bytes[..], "{s:?}");
            let canonical = d.to_string();
            assert_eq!(canonical, format!("{}:{}", alg.name(), d.to_hex()));
            assert_eq!(canonical.parse::<Digest>().ok().as_ref(), Some(d));
            assert_eq!(d.to_hex(), d.to_hex().to_ascii_lowercase());
        }
        (Err(e), None) => {
            assert_eq!(e.kind(), ErrorKind::BadRequest, "{s:?}: {e}");
            // Errors name the value, shortened: bounded whatever the input.
            assert!(
                e.to_string().len() < 4096,
                "{} byte message",
                e.to_string().len()
            );
        }
        (got, want) => panic!("{s:?}: parser says {got:?}, reference says {want:?}"),
    }
    // The algorithm name alone parses the same way.
    let alg = s.parse::<DigestAlgorithm>().ok();
    let alg_ref = DigestAlgorithm::ALL
        .into_iter()
        .find(|a| reference(&format!("{s}:{}", "0".repeat(a.digest_len() * 2))).is_some());
    assert_eq!(alg, alg_ref, "{s:?}");
});
