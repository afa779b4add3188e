//! Hashing in one pass: a CRC32C per 1 MiB block of a stream, the stream's
//! whole CRC32C combined from those, and optionally one requested digest
//! (CRC-32C, MD5, SHA1 or SHA256) of the same bytes.
//!
//! The crates used pick hardware paths at run time: `crc32c` uses SSE4.2 (or
//! the ARMv8 CRC instructions), `sha1`/`sha2` use SHA-NI where present.

use crate::error::Reason;
use std::sync::OnceLock;

use md5::Md5;
use sha1::Sha1;
use sha2::digest::Digest as _;
use sha2::Sha256;

use crate::error::{bad_request, Result};
use crate::spec::{Digest, DigestAlgorithm, BLOCK_SIZE};

/// When a second hash runs beside the CRC, data is fed to both in slices of
/// this size, so the second pass reads it from cache rather than memory.
const INTERLEAVE: usize = 64 * 1024;

/// Running state of the requested digest.
enum DigestState {
    /// No digest was requested.
    None,
    /// CRC-32C: derived from the block CRCs at the end, never hashed twice.
    Crc32c,
    /// MD5 in progress.
    Md5(Md5),
    /// SHA-1 in progress.
    Sha1(Sha1),
    /// SHA-256 in progress.
    Sha256(Box<Sha256>),
}

impl DigestState {
    fn new(requested: Option<DigestAlgorithm>) -> DigestState {
        match requested {
            None => DigestState::None,
            Some(DigestAlgorithm::Crc32c) => DigestState::Crc32c,
            Some(DigestAlgorithm::Md5) => DigestState::Md5(Md5::new()),
            Some(DigestAlgorithm::Sha1) => DigestState::Sha1(Sha1::new()),
            Some(DigestAlgorithm::Sha256) => DigestState::Sha256(Box::new(Sha256::new())),
        }
    }

    /// Whether a second pass over the data runs beside the CRC.
    fn hashes_data(&self) -> bool {
        matches!(
            self,
            DigestState::Md5(_) | DigestState::Sha1(_) | DigestState::Sha256(_)
        )
    }

    fn update(&mut self, data: &[u8]) {
        match self {
            DigestState::None | DigestState::Crc32c => {}
            DigestState::Md5(h) => h.update(data),
            DigestState::Sha1(h) => h.update(data),
            DigestState::Sha256(h) => h.update(data),
        }
    }

    fn finish(self, crc32c: u32) -> Option<Digest> {
        match self {
            DigestState::None => None,
            DigestState::Crc32c => Some(Digest::from_crc32c(crc32c)),
            DigestState::Md5(h) => Some(Digest::from_output(DigestAlgorithm::Md5, &h.finalize())),
            DigestState::Sha1(h) => Some(Digest::from_output(DigestAlgorithm::Sha1, &h.finalize())),
            DigestState::Sha256(h) => {
                Some(Digest::from_output(DigestAlgorithm::Sha256, &h.finalize()))
            }
        }
    }
}

/// Streams bytes once: a CRC32C per 1 MiB block (BLOCK_SIZE, aligned to the start of the stream; the last block may be short) plus, optionally, one requested digest.
///
/// Holds per-block state only (plus one u32 per finished block), never the
/// stream's bytes. [`Hasher::split`] separates the two so that the digest
/// can run on another thread (ingest's pipeline); [`Hasher::join`] puts
/// them back together.
pub(crate) struct Hasher {
    /// The block CRCs.
    crcs: BlockCrcs,
    /// The requested digest.
    digest: DigestState,
}

/// The block CRC32Cs of a stream, as they are fed: one half of a
/// [`Hasher`].
pub(crate) struct BlockCrcs {
    /// Bytes seen so far.
    len: u64,
    /// CRCs of the finished (full) blocks.
    block_crcs: Vec<u32>,
    /// CRC of the bytes of the current, unfinished block.
    block_crc: u32,
    /// Bytes in the current block, `0..BLOCK_SIZE`.
    block_len: u64,
}

/// The requested digest of a stream (if any), split off a [`Hasher`] so
/// another thread can compute it: the other half.
pub(crate) struct Digester(DigestState);

impl Hasher {
    /// A hasher for a new stream; `requested` is the digest to compute beside
    /// the block CRCs, if any.
    pub(crate) fn new(requested: Option<DigestAlgorithm>) -> Hasher {
        Hasher {
            crcs: BlockCrcs::new(),
            digest: DigestState::new(requested),
        }
    }

    /// Whether a digest beside the block CRCs hashes every byte (MD5,
    /// SHA-1, SHA-256): hashing then costs more than writing.
    pub(crate) fn hashes_data(&self) -> bool {
        self.digest.hashes_data()
    }

    /// Feeds the next bytes of the stream; chunks may have any sizes, blocks
    /// are tracked across calls.
    pub(crate) fn update(&mut self, data: &[u8]) {
        let slice = if self.digest.hashes_data() {
            INTERLEAVE
        } else {
            usize::MAX
        };
        for piece in data.chunks(slice) {
            self.digest.update(piece);
            self.crcs.update(piece);
        }
    }

    /// The block CRCs and the requested digest, to be fed the same bytes
    /// separately (each exactly once, in order) and joined again.
    pub(crate) fn split(self) -> (BlockCrcs, Digester) {
        (self.crcs, Digester(self.digest))
    }

    /// The hasher whose halves [`Hasher::split`] gave.
    pub(crate) fn join(crcs: BlockCrcs, digest: Digester) -> Hasher {
        Hasher {
            crcs,
            digest: digest.0,
        }
    }

    /// Ends the stream: its length, block CRCs, whole CRC32C and the
    /// requested digest.
    pub(crate) fn finish(self) -> Hashed {
        let (len, block_crcs, crc32c) = self.crcs.finish();
        Hashed {
            len,
            digest: self.digest.finish(crc32c),
            block_crcs,
            crc32c,
        }
    }
}

impl BlockCrcs {
    fn new() -> BlockCrcs {
        BlockCrcs {
            len: 0,
            block_crcs: Vec::new(),
            block_crc: 0,
            block_len: 0,
        }
    }

    /// Adds the next bytes of the stream, closing each block as it fills.
    pub(crate) fn update(&mut self, mut data: &[u8]) {
        self.len += data.len() as u64;
        while !data.is_empty() {
            let room = BLOCK_SIZE - self.block_len;
            let take = usize::try_from(room).map_or(data.len(), |r| r.min(data.len()));
            let (head, rest) = data.split_at(take);
            self.block_crc = crc32c::crc32c_append(self.block_crc, head);
            self.block_len += take as u64;
            if self.block_len == BLOCK_SIZE {
                self.block_crcs.push(self.block_crc);
                self.block_crc = 0;
                self.block_len = 0;
            }
            data = rest;
        }
    }

    /// The stream's length, its block CRCs and its whole CRC32C.
    fn finish(mut self) -> (u64, Vec<u32>, u32) {
        if self.block_len > 0 {
            self.block_crcs.push(self.block_crc);
        }
        let crc32c = combine_blocks(&self.block_crcs, self.len);
        (self.len, self.block_crcs, crc32c)
    }
}

impl Digester {
    /// Feeds the next bytes of the stream to the requested digest (nothing
    /// to do for none, or for CRC-32C, which comes from the block CRCs).
    pub(crate) fn update(&mut self, data: &[u8]) {
        self.0.update(data);
    }
}

/// What a [`Hasher`] computed over a whole stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Hashed {
    /// Length of the stream in bytes.
    pub(crate) len: u64,
    /// CRC32C of each 1 MiB block: ceil(len / BLOCK_SIZE) entries; empty for len 0.
    pub(crate) block_crcs: Vec<u32>,
    /// CRC32C of the whole stream, combined from block_crcs (not rehashed).
    pub(crate) crc32c: u32,
    /// The requested digest, if one was requested.
    pub(crate) digest: Option<Digest>,
}

/// CRC-32C polynomial, reflected.
const POLY: u32 = 0x82F6_3B78;

/// a * b modulo the CRC polynomial, both as reflected polynomials (bit 31 is
/// x^0). Multiplication in GF(2)[x]/P, one bit of `a` at a time.
fn mult_mod_p(a: u32, mut b: u32) -> u32 {
    let mut m: u32 = 1 << 31;
    let mut p: u32 = 0;
    while m != 0 {
        if a & m != 0 {
            p ^= b;
            if a & (m - 1) == 0 {
                break;
            }
        }
        m >>= 1;
        b = if b & 1 != 0 { (b >> 1) ^ POLY } else { b >> 1 };
    }
    p
}

/// x^(2^k) mod P for k in 0..64, so any power of x is a product of at most
/// 64 table entries.
fn x2n_table() -> &'static [u32; 64] {
    static TABLE: OnceLock<[u32; 64]> = OnceLock::new();
    TABLE.get_or_init(|| {
        let mut t = [0u32; 64];
        let mut p: u32 = 1 << 30; // x^1
        for e in t.iter_mut() {
            *e = p;
            p = mult_mod_p(p, p);
        }
        t
    })
}

/// crc(A ++ B) from crc(A), crc(B) and len(B): crc(A) times x^(8 len(B))
/// mod P, plus crc(B). O(log len) multiplications (about a microsecond),
/// where the matrix method of `crc32c::crc32c_combine` takes tens.
pub(crate) fn crc32c_combine(crc_a: u32, crc_b: u32, len_b: u64) -> u32 {
    if len_b == BLOCK_SIZE {
        // The common case (copy_part and reads fold whole 1 MiB blocks): a
        // few table lookups instead of O(log n) multiplications.
        return BlockShift::get().apply(crc_a) ^ crc_b;
    }
    combine_by_multiplication(crc_a, crc_b, len_b)
}

/// [`crc32c_combine`] without the block table (which is built with it).
fn combine_by_multiplication(crc_a: u32, crc_b: u32, len_b: u64) -> u32 {
    let table = x2n_table();
    // x^(8 n) = product of x^(2^(k+3)) over the set bits k of n.
    let mut shift: u32 = 1 << 31; // x^0
    let mut n = len_b;
    let mut k = 3;
    while n != 0 {
        if n & 1 != 0 {
            shift = mult_mod_p(table[k & 63], shift);
        }
        n >>= 1;
        k += 1;
    }
    mult_mod_p(shift, crc_a) ^ crc_b
}

/// The linear map "append BLOCK_SIZE zero bytes" on CRC32C values, as four
/// byte-indexed tables: shift(c) = T0[c & 255] ^ T1[c >> 8 & 255] ^ ...
struct BlockShift([[u32; 256]; 4]);

impl BlockShift {
    fn get() -> &'static BlockShift {
        static TABLE: OnceLock<BlockShift> = OnceLock::new();
        TABLE.get_or_init(|| {
            let mut basis = [0u32; 32];
            for (bit, b) in basis.iter_mut().enumerate() {
                *b = combine_by_multiplication(1 << bit, 0, BLOCK_SIZE);
            }
            let mut tables = [[0u32; 256]; 4];
            for (byte, table) in tables.iter_mut().enumerate() {
                for (v, entry) in table.iter_mut().enumerate() {
                    *entry = (0..8usize)
                        .filter(|&bit| (v >> bit) & 1 == 1)
                        .fold(0, |acc, bit| acc ^ basis[byte * 8 + bit]);
                }
            }
            BlockShift(tables)
        })
    }

    fn apply(&self, crc: u32) -> u32 {
        let [b0, b1, b2, b3] = crc.to_le_bytes();
        self.0[0][usize::from(b0)]
            ^ self.0[1][usize::from(b1)]
            ^ self.0[2][usize::from(b2)]
            ^ self.0[3][usize::from(b3)]
    }
}

/// CRC32C of a whole extent/part from its per-block CRCs (block i has length min(BLOCK_SIZE, len - i*BLOCK_SIZE)).
///
/// Full blocks are combined with a precomputed table (a few lookups each),
/// so a 500 GiB object's 512,000 blocks combine in about a millisecond.
pub(crate) fn combine_blocks(block_crcs: &[u32], len: u64) -> u32 {
    debug_assert_eq!(
        block_crcs.len() as u64,
        len.div_ceil(BLOCK_SIZE),
        "block count does not match length {len}"
    );
    let shift = BlockShift::get();
    let mut crc = 0u32;
    let mut offset = 0u64;
    for &block in block_crcs {
        let block_len = len.saturating_sub(offset).min(BLOCK_SIZE);
        crc = if block_len == BLOCK_SIZE {
            shift.apply(crc) ^ block
        } else {
            crc32c_combine(crc, block, block_len)
        };
        offset = offset.saturating_add(BLOCK_SIZE);
    }
    crc
}

/// One-shot digest of a buffer: the reference the streaming hasher is
/// tested against, and the hash of a composite digest (bodies are always
/// hashed in one streaming pass).
pub(crate) fn compute(algorithm: DigestAlgorithm, data: &[u8]) -> Digest {
    match algorithm {
        DigestAlgorithm::Crc32c => Digest::from_crc32c(crc32c::crc32c(data)),
        DigestAlgorithm::Md5 => Digest::from_output(algorithm, &Md5::digest(data)),
        DigestAlgorithm::Sha1 => Digest::from_output(algorithm, &Sha1::digest(data)),
        DigestAlgorithm::Sha256 => Digest::from_output(algorithm, &Sha256::digest(data)),
    }
}

/// S3's composite ("checksum of checksums") digest of a multipart object:
/// the parts' digests, in part order, concatenated and hashed with their
/// algorithm. `None` unless every part has a digest and all share one
/// algorithm.
pub(crate) fn composite_digest(parts: &[Option<&Digest>]) -> Option<Digest> {
    let algorithm = parts.first().copied().flatten()?.algorithm();
    let mut joined = Vec::with_capacity(parts.len() * algorithm.digest_len());
    for d in parts {
        let d = (*d).filter(|d| d.algorithm() == algorithm)?;
        joined.extend_from_slice(d.bytes());
    }
    Some(compute(algorithm, &joined))
}

/// The engine's hashing as the ingest and read paths drive it, for the
/// `partstore` command and the criterion benches (`benches/digest.rs`,
/// `benches/ingest.rs`), so they hash with the engine's hasher rather than a
/// copy of it. Only with the `cli` feature; not a stable API.
#[cfg(feature = "cli")]
#[doc(hidden)]
pub mod bench_api {
    use crate::spec::{Digest, DigestAlgorithm};

    /// The ingest path's one-pass hasher: a CRC32C per 1 MiB block plus the
    /// requested digest.
    pub struct StreamHasher(super::Hasher);

    impl StreamHasher {
        /// A hasher computing block CRCs and, optionally, `requested`.
        pub fn new(requested: Option<DigestAlgorithm>) -> StreamHasher {
            StreamHasher(super::Hasher::new(requested))
        }
        /// Feeds the next bytes.
        pub fn update(&mut self, data: &[u8]) {
            self.0.update(data);
        }
        /// The whole stream's CRC32C, its block CRCs and the digest.
        pub fn finish(self) -> (u32, Vec<u32>, Option<Digest>) {
            let h = self.0.finish();
            (h.crc32c, h.block_crcs, h.digest)
        }
    }

    /// The whole CRC32C of a stream from its block CRCs, as
    /// `complete_multipart` and `copy_part` combine them.
    pub fn combine_blocks(block_crcs: &[u32], len: u64) -> u32 {
        super::combine_blocks(block_crcs, len)
    }

    /// crc(A ++ B) from crc(A), crc(B) and len(B).
    pub fn crc32c_combine(crc_a: u32, crc_b: u32, len_b: u64) -> u32 {
        super::crc32c_combine(crc_a, crc_b, len_b)
    }
}

/// Ok if equal; else BadRequest "digest mismatch for SHA256: expected <hex>, got <hex>".
pub(crate) fn check(expected: &Digest, actual: &Digest) -> Result<()> {
    if expected == actual {
        return Ok(());
    }
    if expected.algorithm() != actual.algorithm() {
        return Err(bad_request!(
            Reason::DigestMismatch,
            "digest mismatch: expected {expected}, got {actual}"
        ));
    }
    Err(bad_request!(
        Reason::DigestMismatch,
        "digest mismatch for {}: expected {}, got {}",
        expected.algorithm(),
        expected.to_hex(),
        actual.to_hex()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::MIB;
    use crate::ErrorKind;

    /// Deterministic, non-repeating test bytes.
    fn data(len: usize) -> Vec<u8> {
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        (0..len)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                (x >> 24) as u8
            })
            .collect()
    }

    fn hash_in_chunks(bytes: &[u8], chunk: usize, requested: Option<DigestAlgorithm>) -> Hashed {
        let mut h = Hasher::new(requested);
        for c in bytes.chunks(chunk) {
            h.update(c);
        }
        h.finish()
    }

    fn one_shot(alg: DigestAlgorithm, bytes: &[u8]) -> Vec<u8> {
        match alg {
            DigestAlgorithm::Crc32c => crc32c::crc32c(bytes).to_be_bytes().to_vec(),
            DigestAlgorithm::Md5 => Md5::digest(bytes).to_vec(),
            DigestAlgorithm::Sha1 => Sha1::digest(bytes).to_vec(),
            DigestAlgorithm::Sha256 => Sha256::digest(bytes).to_vec(),
        }
    }

    #[test]
    fn hasher_blocks_match_one_shot_for_odd_chunk_sizes() {
        let mib = MIB as usize;
        let all = data(7 * mib / 2);
        let requests = [
            None,
            Some(DigestAlgorithm::Crc32c),
            Some(DigestAlgorithm::Md5),
            Some(DigestAlgorithm::Sha1),
            Some(DigestAlgorithm::Sha256),
        ];
        let mut case = 0usize;
        for len in [0, 1, mib - 1, mib, mib + 1, 7 * mib / 2] {
            let bytes = &all[..len];
            let want_blocks: Vec<u32> = bytes.chunks(mib).map(crc32c::crc32c).collect();
            assert_eq!(want_blocks.len(), len.div_ceil(mib));
            let whole = crc32c::crc32c(bytes);
            for chunk in [1, 7, 65536, mib + 3] {
                // Chunks of one byte are slow: give them one digest each; the
                // other chunk sizes run every digest.
                let reqs: Vec<_> = if chunk == 1 {
                    case += 1;
                    vec![requests[case % requests.len()]]
                } else {
                    requests.to_vec()
                };
                for requested in reqs {
                    let h = hash_in_chunks(bytes, chunk, requested);
                    let ctx = format!("len {len} chunk {chunk} {requested:?}");
                    assert_eq!(h.len, len as u64, "{ctx}");
                    assert_eq!(h.block_crcs, want_blocks, "{ctx}");
                    assert_eq!(h.crc32c, whole, "{ctx}");
                    match requested {
                        None => assert_eq!(h.digest, None, "{ctx}"),
                        Some(alg) => {
                            let d = h.digest.unwrap();
                            assert_eq!(d.algorithm(), alg, "{ctx}");
                            assert_eq!(d.bytes(), one_shot(alg, bytes), "{ctx}");
                            assert_eq!(d, compute(alg, bytes), "{ctx}");
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn split_hasher_fed_separately_matches_one_hasher() {
        let mib = MIB as usize;
        let all = data(3 * mib + 77);
        for requested in [
            None,
            Some(DigestAlgorithm::Crc32c),
            Some(DigestAlgorithm::Md5),
            Some(DigestAlgorithm::Sha1),
            Some(DigestAlgorithm::Sha256),
        ] {
            for len in [0, 1, mib, 3 * mib + 77] {
                let bytes = &all[..len];
                let (mut crcs, mut digest) = Hasher::new(requested).split();
                // The halves see the same bytes in different chunks.
                for c in bytes.chunks(mib) {
                    crcs.update(c);
                }
                for c in bytes.chunks(4099) {
                    digest.update(c);
                }
                let split = Hasher::join(crcs, digest).finish();
                assert_eq!(
                    split,
                    hash_in_chunks(bytes, 65536, requested),
                    "{requested:?} len {len}"
                );
            }
        }
    }

    #[test]
    fn hasher_of_empty_stream_has_no_blocks() {
        let h = Hasher::new(Some(DigestAlgorithm::Sha256)).finish();
        assert_eq!(h.len, 0);
        assert!(h.block_crcs.is_empty());
        assert_eq!(h.crc32c, 0);
        assert_eq!(
            h.digest.unwrap().to_hex(),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }

    #[test]
    fn hasher_ignores_empty_updates() {
        let mut h = Hasher::new(Some(DigestAlgorithm::Crc32c));
        h.update(b"");
        h.update(b"hello ");
        h.update(b"");
        h.update(b"world");
        let h = h.finish();
        assert_eq!(h.block_crcs, vec![0xc994_65aa]);
        assert_eq!(h.digest.unwrap().to_string(), "CRC-32C:c99465aa");
    }

    #[test]
    fn hasher_crc32c_digest_is_derived_from_combined_crc() {
        let bytes = data(3 * MIB as usize + 5);
        let h = hash_in_chunks(&bytes, 1 << 16, Some(DigestAlgorithm::Crc32c));
        assert_eq!(h.digest, Some(Digest::from_crc32c(h.crc32c)));
        assert_eq!(h.crc32c, crc32c::crc32c(&bytes));
    }

    #[test]
    fn digest_crc32c_hello_world() {
        assert_eq!(
            compute(DigestAlgorithm::Crc32c, b"hello world").to_string(),
            "CRC-32C:c99465aa"
        );
        assert_eq!(
            compute(DigestAlgorithm::Crc32c, b"123456789").to_string(),
            "CRC-32C:e3069283"
        );
    }

    #[test]
    fn digest_md5_hello_world() {
        assert_eq!(
            compute(DigestAlgorithm::Md5, b"hello world").to_string(),
            "MD5:5eb63bbbe01eeed093cb22bb8f5acdc3"
        );
    }

    #[test]
    fn digest_sha1_hello_world() {
        assert_eq!(
            compute(DigestAlgorithm::Sha1, b"hello world").to_string(),
            "SHA1:2aae6c35c94fcfb415dbe95f408b9ce91ee846ed"
        );
    }

    #[test]
    fn digest_sha256_hello_world() {
        assert_eq!(
            compute(DigestAlgorithm::Sha256, b"hello world").to_string(),
            "SHA256:b94d27b9934d3e08a52e52d7da7dabfac484efe37a5380ee9088f7ace2efcde9"
        );
    }

    #[test]
    fn hasher_digests_match_known_vectors() {
        for (alg, hex) in [
            (DigestAlgorithm::Crc32c, "c99465aa"),
            (DigestAlgorithm::Md5, "5eb63bbbe01eeed093cb22bb8f5acdc3"),
            (
                DigestAlgorithm::Sha1,
                "2aae6c35c94fcfb415dbe95f408b9ce91ee846ed",
            ),
            (
                DigestAlgorithm::Sha256,
                "b94d27b9934d3e08a52e52d7da7dabfac484efe37a5380ee9088f7ace2efcde9",
            ),
        ] {
            let h = hash_in_chunks(b"hello world", 3, Some(alg));
            assert_eq!(h.digest.unwrap().to_hex(), hex, "{alg}");
        }
    }

    #[test]
    fn crc32c_combine_joins_two_streams() {
        let a = data(1000);
        let b = data(2 * MIB as usize + 17);
        let ab: Vec<u8> = a.iter().chain(b.iter()).copied().collect();
        let (ca, cb) = (crc32c::crc32c(&a), crc32c::crc32c(&b));
        assert_eq!(crc32c_combine(ca, cb, b.len() as u64), crc32c::crc32c(&ab));
        assert_eq!(crc32c_combine(ca, 0, 0), ca);
        assert_eq!(crc32c_combine(0, cb, b.len() as u64), cb);
    }

    #[test]
    fn fast_combine_matches_crate_combine_and_concatenation() {
        let data: Vec<u8> = (0..5000u32).map(|i| (i * 131 % 251) as u8).collect();
        for split in [0usize, 1, 7, 64, 1000, 4999, 5000] {
            let (a, b) = data.split_at(split);
            let (ca, cb) = (crc32c::crc32c(a), crc32c::crc32c(b));
            assert_eq!(
                crc32c_combine(ca, cb, b.len() as u64),
                crc32c::crc32c(&data)
            );
        }
        for (i, len) in [1usize, 3, 1 << 20, 5 << 20, (96 << 20) + 5, 1 << 33]
            .into_iter()
            .enumerate()
        {
            let (a, b) = (
                0x1234_5678u32.wrapping_mul(i as u32 + 1),
                0x9abc_def0 ^ i as u32,
            );
            assert_eq!(
                crc32c_combine(a, b, len as u64),
                crc32c::crc32c_combine(a, b, len)
            );
        }
    }

    #[test]
    fn combine_blocks_matches_whole_crc() {
        let mib = MIB as usize;
        let all = data(5 * mib + 333);
        for len in [0, 1, mib - 1, mib, mib + 1, 2 * mib, 5 * mib + 333] {
            let bytes = &all[..len];
            let blocks: Vec<u32> = bytes.chunks(mib).map(crc32c::crc32c).collect();
            assert_eq!(
                combine_blocks(&blocks, len as u64),
                crc32c::crc32c(bytes),
                "len {len}"
            );
        }
    }

    #[test]
    fn block_shift_table_matches_crc32c_combine() {
        let shift = BlockShift::get();
        for crc in [0, 1, 0x8000_0000, 0xdead_beef, 0xffff_ffff, 0xc994_65aa] {
            assert_eq!(
                shift.apply(crc),
                combine_by_multiplication(crc, 0, BLOCK_SIZE),
                "{crc:#x}"
            );
        }
    }

    #[test]
    fn combine_blocks_of_parts_gives_object_crc() {
        // Parts combine like blocks: crc(p1 ++ p2) from each part's CRC.
        let mib = MIB as usize;
        let p1 = data(5 * mib);
        let p2 = data(mib + 9);
        let h1 = hash_in_chunks(&p1, 65536, None);
        let h2 = hash_in_chunks(&p2, 65536, None);
        let all: Vec<u8> = p1.iter().chain(p2.iter()).copied().collect();
        assert_eq!(
            crc32c_combine(h1.crc32c, h2.crc32c, h2.len),
            crc32c::crc32c(&all)
        );
        let mut blocks = h1.block_crcs.clone();
        blocks.extend(&h2.block_crcs);
        assert_eq!(
            combine_blocks(&blocks, all.len() as u64),
            crc32c::crc32c(&all)
        );
    }

    #[test]
    fn check_accepts_equal_digests() {
        let d = compute(DigestAlgorithm::Sha256, b"x");
        check(&d, &d.clone()).unwrap();
    }

    #[test]
    fn check_mismatch_is_bad_request_naming_both() {
        let expected = compute(DigestAlgorithm::Sha256, b"hello world");
        let actual = compute(DigestAlgorithm::Sha256, b"hello world!");
        let e = check(&expected, &actual).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::BadRequest);
        assert_eq!(
            e.to_string(),
            format!(
                "bad request: digest mismatch for SHA256: expected {}, got {}",
                expected.to_hex(),
                actual.to_hex()
            )
        );
    }

    #[test]
    fn check_algorithm_mismatch_is_bad_request() {
        let expected = compute(DigestAlgorithm::Md5, b"a");
        let actual = compute(DigestAlgorithm::Sha1, b"a");
        let e = check(&expected, &actual).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::BadRequest);
        assert!(
            e.to_string().contains("MD5:") && e.to_string().contains("SHA1:"),
            "{e}"
        );
    }
}
