//! The value types of the SPEC that parse from text: byte ranges, digests
//! and upload tokens.

use std::fmt;
use std::ops::Range;
use std::str::FromStr;

use crate::error::{bad_request, not_found, too_large, unsatisfiable, Error, Reason, Result};
use crate::spec::{check_part_size, quoted, COPY_ALIGNMENT, MAX_PART_SIZE};

/// One HTTP byte range (RFC 7233, a single range only).
///
/// Text form: `bytes=first-last`, `bytes=first-` or `bytes=-len`;
/// `"bytes=0-99".parse::<ByteRange>()` and `to_string()` convert both ways.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ByteRange {
    /// `bytes=first-last` (last inclusive; clamped to size-1 on reads)
    Bounded {
        /// Offset of the first byte.
        first: u64,
        /// Offset of the last byte, inclusive.
        last: u64,
    },
    /// `bytes=first-`
    From {
        /// Offset of the first byte.
        first: u64,
    },
    /// `bytes=-len` (the last len bytes)
    Suffix {
        /// How many bytes at the end of the object.
        len: u64,
    },
}

/// Parses a non-empty run of ASCII digits; `None` for anything else,
/// `Some(Err)` on overflow.
fn parse_digits(s: &str) -> Option<std::result::Result<u64, ()>> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some(s.bytes().try_fold(0u64, |acc, b| {
        acc.checked_mul(10)
            .and_then(|v| v.checked_add(u64::from(b - b'0')))
            .ok_or(())
    }))
}

impl FromStr for ByteRange {
    type Err = Error;

    /// Parses `bytes=a-b`, `bytes=a-` or `bytes=-n` (the unit `bytes` in any
    /// case, no whitespace anywhere, ASCII digits only).
    ///
    /// Errors: RangeNotSatisfiable for bad syntax, several ranges, `a > b`,
    /// `-0`, or a number over `u64::MAX`.
    fn from_str(s: &str) -> Result<ByteRange> {
        let syntax = || {
            unsatisfiable!(
                Reason::InvalidRange,
                "range {} is not of the form bytes=first-last, bytes=first- or bytes=-length",
                quoted(s)
            )
        };
        let overflow = || {
            unsatisfiable!(
                Reason::InvalidRange,
                "range {} has a number too large",
                quoted(s)
            )
        };
        let spec = match s.split_once('=') {
            Some((unit, spec)) if unit.eq_ignore_ascii_case("bytes") => spec,
            _ => return Err(syntax()),
        };
        if spec.contains(',') {
            return Err(unsatisfiable!(
                Reason::InvalidRange,
                "range {} asks for several ranges; only one is supported",
                quoted(s)
            ));
        }
        let (first, last) = spec.split_once('-').ok_or_else(syntax)?;
        if first.is_empty() {
            let len = parse_digits(last)
                .ok_or_else(syntax)?
                .map_err(|()| overflow())?;
            if len == 0 {
                return Err(unsatisfiable!(
                    Reason::InvalidRange,
                    "range {} asks for the last 0 bytes",
                    quoted(s)
                ));
            }
            return Ok(ByteRange::Suffix { len });
        }
        let first = parse_digits(first)
            .ok_or_else(syntax)?
            .map_err(|()| overflow())?;
        if last.is_empty() {
            return Ok(ByteRange::From { first });
        }
        let last = parse_digits(last)
            .ok_or_else(syntax)?
            .map_err(|()| overflow())?;
        if first > last {
            return Err(unsatisfiable!(
                Reason::InvalidRange,
                "range {}: first byte {first} is after last byte {last}",
                quoted(s)
            ));
        }
        Ok(ByteRange::Bounded { first, last })
    }
}

impl fmt::Display for ByteRange {
    /// `bytes=first-last`, `bytes=first-` or `bytes=-len`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            ByteRange::Bounded { first, last } => write!(f, "bytes={first}-{last}"),
            ByteRange::From { first } => write!(f, "bytes={first}-"),
            ByteRange::Suffix { len } => write!(f, "bytes=-{len}"),
        }
    }
}

impl ByteRange {
    /// Half-open byte span within an object of `size` bytes, per SPEC:
    /// Bounded's last clamped to size-1; start >= size, or size == 0 ->
    /// RangeNotSatisfiable; Suffix longer than size -> whole object.
    ///
    /// A `Bounded` range with `first > last` or a `Suffix` of 0 bytes (which
    /// parsing never yields) is RangeNotSatisfiable too.
    pub fn resolve(&self, size: u64) -> Result<Range<u64>> {
        if size == 0 {
            return Err(unsatisfiable!(
                Reason::InvalidRange,
                "range {self} on an empty object"
            ));
        }
        match *self {
            ByteRange::Bounded { first, last } => {
                if first > last {
                    return Err(unsatisfiable!(
                        Reason::InvalidRange,
                        "range {self}: first byte {first} is after last byte {last}"
                    ));
                }
                if first >= size {
                    return Err(unsatisfiable!(
                        Reason::InvalidRange,
                        "range {self} starts at or after the end of the object ({size} bytes)"
                    ));
                }
                Ok(first..last.min(size - 1) + 1)
            }
            ByteRange::From { first } => {
                if first >= size {
                    return Err(unsatisfiable!(
                        Reason::InvalidRange,
                        "range {self} starts at or after the end of the object ({size} bytes)"
                    ));
                }
                Ok(first..size)
            }
            ByteRange::Suffix { len } => {
                if len == 0 {
                    return Err(unsatisfiable!(
                        Reason::InvalidRange,
                        "range {self} asks for the last 0 bytes"
                    ));
                }
                Ok(size.saturating_sub(len)..size)
            }
        }
    }

    /// Half-open byte span of a `copy_part` source range within a source
    /// object of `size` bytes, per SPEC: only `bytes=a-b`, `a` a multiple of
    /// 1 MiB, `a <= b < size` (no clamping); all RangeNotSatisfiable. A span
    /// longer than 96 MiB: TooLarge.
    pub fn resolve_copy(&self, size: u64) -> Result<Range<u64>> {
        let (first, last) = match *self {
            ByteRange::Bounded { first, last } => (first, last),
            ByteRange::From { .. } | ByteRange::Suffix { .. } => {
                return Err(unsatisfiable!(
                    Reason::CopyRangeOpen,
                    "copy source range {self} must give both bounds (bytes=first-last)"
                ))
            }
        };
        if first > last {
            return Err(unsatisfiable!(
                Reason::InvalidRange,
                "copy source range {self}: first byte {first} is after last byte {last}"
            ));
        }
        if first % COPY_ALIGNMENT != 0 {
            return Err(unsatisfiable!(Reason::CopyRangeUnaligned,
                "copy source range {self} starts at {first}, not a multiple of {COPY_ALIGNMENT} (1 MiB)"
            ));
        }
        if last >= size {
            return Err(unsatisfiable!(
                Reason::InvalidRange,
                "copy source range {self} ends at or after the end of the source ({size} bytes)"
            ));
        }
        let len = last - first + 1;
        check_part_size(len).map_err(|_| {
            too_large!(Reason::PartTooLarge,
                "copy source range {self} is {len} bytes, over the part limit of {MAX_PART_SIZE} bytes (96 MiB)"
            )
        })?;
        Ok(first..last + 1)
    }
}

/// A digest algorithm of the `X-HERE-Digest` form `ALGORITHM:HEX`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DigestAlgorithm {
    /// CRC-32C (Castagnoli), as a big-endian u32.
    Crc32c,
    /// MD5.
    Md5,
    /// SHA-1.
    Sha1,
    /// SHA-256.
    Sha256,
}

impl DigestAlgorithm {
    /// Every algorithm, in the SPEC's order.
    pub const ALL: [DigestAlgorithm; 4] = [
        DigestAlgorithm::Crc32c,
        DigestAlgorithm::Md5,
        DigestAlgorithm::Sha1,
        DigestAlgorithm::Sha256,
    ];

    /// Canonical name: `"CRC-32C"`, `"MD5"`, `"SHA1"` or `"SHA256"`.
    pub fn name(self) -> &'static str {
        match self {
            DigestAlgorithm::Crc32c => "CRC-32C",
            DigestAlgorithm::Md5 => "MD5",
            DigestAlgorithm::Sha1 => "SHA1",
            DigestAlgorithm::Sha256 => "SHA256",
        }
    }

    /// Length of a digest in bytes: 4, 16, 20 or 32.
    pub fn digest_len(self) -> usize {
        match self {
            DigestAlgorithm::Crc32c => 4,
            DigestAlgorithm::Md5 => 16,
            DigestAlgorithm::Sha1 => 20,
            DigestAlgorithm::Sha256 => 32,
        }
    }
}

impl fmt::Display for DigestAlgorithm {
    /// The canonical name.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for DigestAlgorithm {
    type Err = Error;

    /// Accepts the names case-insensitively, with or without the hyphen
    /// between letters and digits: `CRC-32C`/`crc32c`, `MD5`/`md-5`,
    /// `SHA1`/`sha-1`, `SHA256`/`sha-256`.
    ///
    /// Errors: BadRequest naming the input.
    fn from_str(s: &str) -> Result<DigestAlgorithm> {
        const NAMES: [(&str, &str, DigestAlgorithm); 4] = [
            ("crc32c", "crc-32c", DigestAlgorithm::Crc32c),
            ("md5", "md-5", DigestAlgorithm::Md5),
            ("sha1", "sha-1", DigestAlgorithm::Sha1),
            ("sha256", "sha-256", DigestAlgorithm::Sha256),
        ];
        NAMES
            .iter()
            .find(|(plain, hyphen, _)| {
                s.eq_ignore_ascii_case(plain) || s.eq_ignore_ascii_case(hyphen)
            })
            .map(|&(_, _, algorithm)| algorithm)
            .ok_or_else(|| {
                bad_request!(
                    Reason::InvalidDigest,
                    "unknown digest algorithm {}; expected CRC-32C, MD5, SHA1 or SHA256",
                    quoted(s)
                )
            })
    }
}

/// Longest digest (SHA-256) in bytes.
const MAX_DIGEST_LEN: usize = 32;

/// A digest: an algorithm and its raw bytes. Text form `ALGORITHM:HEX`,
/// canonically `SHA256:<lowercase hex>`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Digest {
    algorithm: DigestAlgorithm,
    /// The digest in the first `algorithm.digest_len()` bytes; zeros after.
    bytes: [u8; MAX_DIGEST_LEN],
}

impl Digest {
    /// A digest of `algorithm` with the given raw bytes.
    ///
    /// Errors: BadRequest if `bytes` is not `algorithm.digest_len()` long.
    pub fn new(algorithm: DigestAlgorithm, bytes: &[u8]) -> Result<Digest> {
        if bytes.len() != algorithm.digest_len() {
            return Err(bad_request!(
                Reason::InvalidDigest,
                "a {algorithm} digest has {} bytes, not {}",
                algorithm.digest_len(),
                bytes.len()
            ));
        }
        Ok(Digest::from_output(algorithm, bytes))
    }

    /// The CRC-32C digest whose value is `crc` (stored big-endian).
    pub fn from_crc32c(crc: u32) -> Digest {
        Digest::from_output(DigestAlgorithm::Crc32c, &crc.to_be_bytes())
    }

    /// A digest from a hash function's output, whose length is right by
    /// construction (checked in debug builds; never panics).
    pub(crate) fn from_output(algorithm: DigestAlgorithm, output: &[u8]) -> Digest {
        debug_assert_eq!(output.len(), algorithm.digest_len());
        let mut bytes = [0u8; MAX_DIGEST_LEN];
        let n = output.len().min(algorithm.digest_len());
        bytes[..n].copy_from_slice(&output[..n]);
        Digest { algorithm, bytes }
    }

    /// The algorithm.
    pub fn algorithm(&self) -> DigestAlgorithm {
        self.algorithm
    }

    /// The raw digest bytes (`algorithm().digest_len()` of them).
    pub fn bytes(&self) -> &[u8] {
        &self.bytes[..self.algorithm.digest_len()]
    }

    /// The digest bytes as lowercase hex.
    pub fn to_hex(&self) -> String {
        hex::encode(self.bytes())
    }
}

impl fmt::Display for Digest {
    /// Canonical `ALGORITHM:hex`, e.g. `CRC-32C:c99465aa`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.algorithm, self.to_hex())
    }
}

impl FromStr for Digest {
    type Err = Error;

    /// Parses `ALGORITHM:HEX`: an algorithm name as [`DigestAlgorithm`]
    /// accepts, then exactly `digest_len * 2` hex digits in either case.
    ///
    /// Errors: BadRequest naming the input.
    fn from_str(s: &str) -> Result<Digest> {
        let (name, hex_digits) = s.split_once(':').ok_or_else(|| {
            bad_request!(
                Reason::InvalidDigest,
                "digest {} is not of the form ALGORITHM:HEX",
                quoted(s)
            )
        })?;
        let algorithm: DigestAlgorithm = name.parse().map_err(|_| {
            bad_request!(
                Reason::InvalidDigest,
                "digest {} has unknown algorithm {}; expected CRC-32C, MD5, SHA1 or SHA256",
                quoted(s),
                quoted(name)
            )
        })?;
        let want = algorithm.digest_len() * 2;
        if hex_digits.len() != want || !hex_digits.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(bad_request!(
                Reason::InvalidDigest,
                "digest {} needs exactly {want} hex digits for {algorithm}",
                quoted(s)
            ));
        }
        let mut bytes = [0u8; MAX_DIGEST_LEN];
        let n = algorithm.digest_len();
        hex::decode_to_slice(hex_digits, &mut bytes[..n])
            .map_err(|e| bad_request!(Reason::InvalidDigest, "digest {}: {e}", quoted(s)))?;
        Ok(Digest { algorithm, bytes })
    }
}

/// An upload token: 128 random bits from the OS, shown as 32 lowercase hex
/// digits. Opaque and unguessable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct UploadId([u8; 16]);

impl UploadId {
    /// A fresh token from the operating system's CSPRNG.
    ///
    /// Errors: Io if the OS cannot supply random bytes.
    pub(crate) fn random() -> Result<UploadId> {
        let mut bytes = [0u8; 16];
        getrandom::fill(&mut bytes).map_err(|e| {
            Error::io(
                "reading 128 random bits for an upload token from the OS",
                std::io::Error::other(e.to_string()),
            )
        })?;
        Ok(UploadId(bytes))
    }

    /// The token with these bytes (as stored on disk).
    pub(crate) fn from_bytes(b: [u8; 16]) -> UploadId {
        UploadId(b)
    }

    /// The token's bytes (as stored on disk).
    pub(crate) fn as_bytes(&self) -> &[u8; 16] {
        &self.0
    }
}

impl fmt::Display for UploadId {
    /// 32 lowercase hex digits.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut buf = [0u8; 32];
        // Cannot fail: the buffer is exactly twice the input.
        hex::encode_to_slice(self.0, &mut buf).map_err(|_| fmt::Error)?;
        // Hex digits are ASCII.
        f.write_str(std::str::from_utf8(&buf).map_err(|_| fmt::Error)?)
    }
}

impl FromStr for UploadId {
    type Err = Error;

    /// Exactly 32 hex digits, either case.
    ///
    /// Errors: NotFound `unknown upload "<input>"` for anything else: a
    /// malformed token can never name an upload.
    fn from_str(s: &str) -> Result<UploadId> {
        let unknown = || not_found!(Reason::UnknownUpload, "unknown upload {}", quoted(s));
        if s.len() != 32 || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(unknown());
        }
        let mut bytes = [0u8; 16];
        hex::decode_to_slice(s, &mut bytes).map_err(|_| unknown())?;
        Ok(UploadId(bytes))
    }
}
