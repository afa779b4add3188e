//! The on-disk format: segment file header, record framing and metadata
//! record payloads. Everything here is pure encoding and decoding; see
//! `docs/FORMAT.md` for the same layout in prose.
//!
//! ```text
//! segment file header (32 bytes, at offset 0)
//!   0  magic           8  b"PARTSTOR"
//!   8  format_version  4  u32 LE = FORMAT_VERSION (1), or
//!                         FORMAT_VERSION_RECYCLED (2): a recycled file
//!  12  reserved        4  zero
//!  16  segment_id      8  u64 LE
//!  24  reserved        4  zero
//!  28  header_crc      4  u32 LE, CRC32C of bytes 0..28
//!
//! record (at an 8-byte aligned offset >= 32)
//!   0  magic           4  b"PSR1" (the '1' is the record format version)
//!   4  kind            1  RecordKind
//!   5  reserved        3  zero
//!   8  len             8  u64 LE, payload length
//!  16  payload_crc     4  u32 LE, CRC32C of the payload (0 for extents,
//!                         whose blocks are covered by the committing record)
//!  20  header_crc      4  u32 LE, CRC32C of bytes 0..20 (version 2: of
//!                         the segment id, u64 LE, then bytes 0..20)
//!  24  payload         len bytes, then zero padding to a multiple of 8
//! ```
//! A header of 24 zero bytes marks the end of a segment's records (segments
//! are preallocated, so the unwritten rest reads as zeros). A recycled
//! segment (version 2) still holds the records of its earlier life past its
//! end: its header CRCs, salted with the new id, never match theirs.

// Internal module; exposed undocumented only to fuzz targets (feature `fuzzing`).
#![cfg_attr(feature = "fuzzing", allow(missing_docs))]

use crate::error::{corrupt, Result};

/// Magic at the start of every segment file.
pub const SEGMENT_MAGIC: [u8; 8] = *b"PARTSTOR";
/// On-disk format version of a new segment file, in its header.
pub const FORMAT_VERSION: u32 = 1;
/// Format version of a recycled segment file: the same layout, with every
/// record header's CRC32C salted with the segment id, so the records of the
/// file's earlier life (still there past the new records) are never valid.
pub const FORMAT_VERSION_RECYCLED: u32 = 2;
/// Length of the segment file header.
pub const SEGMENT_HEADER_LEN: u64 = 32;
/// In a recycled segment of `len` bytes, no record is written that ends
/// more than this past the point the segment is known durable at (its
/// `synced` watermark), except the data of a region whose header was made
/// durable first: so every record of a recycled segment's own life lies
/// before (end of its durable records) + this, and recovery searches only
/// that far past the end for records written but not acknowledged (past
/// it are only the records of the file's earlier life, never valid). An
/// eighth of the segment, between 64 KiB and 16 MiB.
pub fn recycled_window(len: u64) -> u64 {
    (len / 8).clamp(64 << 10, 16 << 20)
}
/// Magic at the start of every record; the last byte is the record version.
pub const RECORD_MAGIC: [u8; 4] = *b"PSR1";
/// Length of a record header.
pub const RECORD_HEADER_LEN: u64 = 24;
/// Records start at multiples of this.
pub const RECORD_ALIGN: u64 = 8;

/// Total bytes a record with a payload of `len` bytes occupies. Saturates
/// at `u64::MAX` (a damaged length field must not wrap to a short record).
pub fn framed_len(len: u64) -> u64 {
    len.div_ceil(RECORD_ALIGN)
        .saturating_mul(RECORD_ALIGN)
        .saturating_add(RECORD_HEADER_LEN)
}

/// Kinds of record. Values are part of the format: never reuse one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum RecordKind {
    /// A data region: the bytes of one extent. Only live once a metadata
    /// record commits it with its block CRCs.
    Extent = 1,
    /// A metadata record ([`Meta`]).
    Meta = 2,
}

impl RecordKind {
    fn from_u8(b: u8) -> Option<RecordKind> {
        match b {
            1 => Some(RecordKind::Extent),
            2 => Some(RecordKind::Meta),
            _ => None,
        }
    }
}

/// A decoded record header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordHeader {
    pub kind: RecordKind,
    pub len: u64,
    pub payload_crc: u32,
}

impl RecordHeader {
    /// Encodes the header of a record of a version-1 segment. (The fuzz
    /// targets' entry; the engine encodes through `encode_salted`.)
    #[cfg_attr(not(any(test, feature = "fuzzing")), allow(dead_code))]
    pub fn encode(&self) -> [u8; RECORD_HEADER_LEN as usize] {
        self.encode_salted(None)
    }

    /// Encodes a header; `salt` is the segment id of a recycled segment
    /// (its header CRC32C starts with it), `None` in a new one.
    pub fn encode_salted(&self, salt: Option<u64>) -> [u8; RECORD_HEADER_LEN as usize] {
        let mut h = [0u8; RECORD_HEADER_LEN as usize];
        h[0..4].copy_from_slice(&RECORD_MAGIC);
        h[4] = self.kind as u8;
        h[8..16].copy_from_slice(&self.len.to_le_bytes());
        h[16..20].copy_from_slice(&self.payload_crc.to_le_bytes());
        let crc = header_crc(&h[0..20], salt);
        h[20..24].copy_from_slice(&crc.to_le_bytes());
        h
    }

    /// Decodes a header of a version-1 segment; `None` when it is not a
    /// valid header (torn, corrupt, or not a header at all). (The fuzz
    /// targets' entry; the engine decodes through `decode_salted`.)
    #[cfg_attr(not(any(test, feature = "fuzzing")), allow(dead_code))]
    pub fn decode(h: &[u8]) -> Option<RecordHeader> {
        Self::decode_salted(h, None)
    }

    /// Decodes a header written with `salt` (see
    /// [`RecordHeader::encode_salted`]).
    pub fn decode_salted(h: &[u8], salt: Option<u64>) -> Option<RecordHeader> {
        if h.len() < RECORD_HEADER_LEN as usize || h.get(0..4)? != RECORD_MAGIC {
            return None;
        }
        let crc = u32::from_le_bytes(h.get(20..24)?.try_into().ok()?);
        if header_crc(h.get(0..20)?, salt) != crc || h.get(5..8)? != [0, 0, 0] {
            return None;
        }
        let kind = RecordKind::from_u8(*h.get(4)?)?;
        let len = u64::from_le_bytes(h.get(8..16)?.try_into().ok()?);
        let payload_crc = u32::from_le_bytes(h.get(16..20)?.try_into().ok()?);
        Some(RecordHeader {
            kind,
            len,
            payload_crc,
        })
    }
}

/// The CRC32C of a record header's first 20 bytes, after `salt` (u64 LE)
/// when there is one.
fn header_crc(h: &[u8], salt: Option<u64>) -> u32 {
    match salt {
        Some(id) => crc32c::crc32c_append(crc32c::crc32c(&id.to_le_bytes()), h),
        None => crc32c::crc32c(h),
    }
}

/// Encodes a segment file header (version 1: a new file).
pub fn encode_segment_header(segment_id: u64) -> [u8; SEGMENT_HEADER_LEN as usize] {
    encode_segment_header_version(segment_id, FORMAT_VERSION)
}

/// Encodes a segment file header of format `version` (1, or 2 for a
/// recycled file).
pub fn encode_segment_header_version(
    segment_id: u64,
    version: u32,
) -> [u8; SEGMENT_HEADER_LEN as usize] {
    let mut h = [0u8; SEGMENT_HEADER_LEN as usize];
    h[0..8].copy_from_slice(&SEGMENT_MAGIC);
    h[8..12].copy_from_slice(&version.to_le_bytes());
    h[16..24].copy_from_slice(&segment_id.to_le_bytes());
    let crc = crc32c::crc32c(&h[0..28]);
    h[28..32].copy_from_slice(&crc.to_le_bytes());
    h
}

/// Checks a segment file header; returns the segment id it names. (The
/// fuzz targets' entry; the engine reads the version too.)
#[cfg_attr(not(any(test, feature = "fuzzing")), allow(dead_code))]
pub fn decode_segment_header(h: &[u8], file: &str) -> Result<u64> {
    Ok(decode_segment_header_version(h, file)?.0)
}

/// Checks a segment file header; returns the segment id it names and its
/// format version (1 or 2).
pub fn decode_segment_header_version(h: &[u8], file: &str) -> Result<(u64, u32)> {
    let bad = || corrupt!("segment {file}: bad file header");
    let h = h.get(0..SEGMENT_HEADER_LEN as usize).ok_or_else(bad)?;
    let crc = u32::from_le_bytes(h[28..32].try_into().map_err(|_| bad())?);
    let reserved_zero = h[12..16] == [0; 4] && h[24..28] == [0; 4];
    if h[0..8] != SEGMENT_MAGIC || crc32c::crc32c(&h[0..28]) != crc || !reserved_zero {
        return Err(bad());
    }
    let version = u32::from_le_bytes(h[8..12].try_into().map_err(|_| bad())?);
    if version != FORMAT_VERSION && version != FORMAT_VERSION_RECYCLED {
        return Err(corrupt!(
            "segment {file}: format version {version}, this build reads {FORMAT_VERSION} and {FORMAT_VERSION_RECYCLED}"
        ));
    }
    Ok((
        u64::from_le_bytes(h[16..24].try_into().map_err(|_| bad())?),
        version,
    ))
}

/// Splits a stored metadata payload into `synced` and the encoded [`Meta`].
pub fn split_meta_payload(payload: &[u8]) -> Result<(u64, &[u8])> {
    match payload.split_first_chunk::<8>() {
        Some((synced, meta)) => Ok((u64::from_le_bytes(*synced), meta)),
        None => Err(corrupt!(
            "metadata record of {} bytes is shorter than its 8-byte prefix",
            payload.len()
        )),
    }
}

/// Frames a metadata payload as a complete record, padding included.
#[cfg(any(test, feature = "fuzzing"))]
pub fn frame_meta(payload: &[u8]) -> Vec<u8> {
    let header = RecordHeader {
        kind: RecordKind::Meta,
        len: payload.len() as u64,
        payload_crc: crc32c::crc32c(payload),
    };
    let total = framed_len(payload.len() as u64) as usize;
    let mut out = Vec::with_capacity(total);
    out.extend_from_slice(&header.encode());
    out.extend_from_slice(payload);
    out.resize(total, 0);
    out
}

/// Appends to `out` a complete metadata record, padding included. Its
/// payload as stored: `synced` (u64 LE: every record header of this segment
/// before that offset was durable when this record was written), then the
/// encoded [`Meta`]. Recovery uses `synced` to tell a torn tail (records
/// after an invalid one, none acknowledged) from corruption (a record after
/// an invalid one knew the invalid one was durable). `salt`: the segment id
/// in a recycled segment, whose record headers are salted (see
/// [`RecordHeader::encode_salted`]), else `None`.
pub fn push_meta_record_salted(out: &mut Vec<u8>, synced: u64, meta: &[u8], salt: Option<u64>) {
    let synced = synced.to_le_bytes();
    let len = (synced.len() + meta.len()) as u64;
    let header = RecordHeader {
        kind: RecordKind::Meta,
        len,
        payload_crc: crc32c::crc32c_append(crc32c::crc32c(&synced), meta),
    };
    let end = out.len() + framed_len(len) as usize;
    out.reserve(end - out.len());
    out.extend_from_slice(&header.encode_salted(salt));
    out.extend_from_slice(&synced);
    out.extend_from_slice(meta);
    out.resize(end, 0);
}

pub use crate::log::meta::{
    ExtentDef, ExtentMove, LayerSnap, Meta, ObjectSnap, PartSnap, Piece, Snapshot, UploadSnap,
};

#[cfg(test)]
mod tests {
    use super::*;
    use crate::log::codec::T_EXTENTS_MOVED;
    use crate::spec::{Digest, KeyRules};

    fn sha1() -> Digest {
        format!("SHA1:{}", "ab".repeat(20)).parse().unwrap()
    }

    fn samples() -> Vec<Meta> {
        let ext = ExtentDef {
            id: 7,
            segment: 2,
            offset: 4096,
            len: 3 << 20,
            block_crcs: vec![1, 2, 3],
        };
        vec![
            Meta::LayerCreated {
                layer: "maps".into(),
                content_type: Some("text/plain".into()),
                content_encoding: None,
                key_rules: KeyRules::Here,
                time_ms: 0,
            },
            Meta::UploadStarted {
                layer: "maps".into(),
                upload: [9; 16],
                key: "a/b".into(),
                content_type: "x/y".into(),
                content_encoding: Some("gzip".into()),
                time_ms: 5,
                metadata: vec![],
            },
            Meta::PartSet {
                layer: "maps".into(),
                upload: [9; 16],
                number: 3,
                part_id: 11,
                new_extent: Some(ext.clone()),
                pieces: vec![Piece {
                    extent: 7,
                    offset: 0,
                    len: 3 << 20,
                }],
                size: 3 << 20,
                crc32c: 0xdead_beef,
                time_ms: 6,
                digest: None,
            },
            Meta::UploadCompleted {
                layer: "maps".into(),
                upload: [9; 16],
                parts: vec![(1, 11), (2, 12)],
                etag_seq: 13,
                time_ms: 7,
            },
            Meta::UploadAborted {
                layer: "m".into(),
                upload: [1; 16],
                time_ms: 8,
            },
            Meta::ObjectPut {
                layer: "m".into(),
                key: "k".into(),
                new_extent: Some(ext),
                size: 3 << 20,
                crc32c: 4,
                content_type: "a/b".into(),
                content_encoding: None,
                etag_seq: 14,
                time_ms: 9,
                metadata: vec![],
                digest: None,
            },
            Meta::ObjectDeleted {
                layer: "m".into(),
                key: "k".into(),
            },
            Meta::ObjectCopied {
                layer: "m".into(),
                src: "k".into(),
                dst: "j".into(),
                time_ms: 10,
                metadata: None,
            },
            Meta::ExtentsMoved {
                moves: vec![ExtentMove {
                    extent: 1,
                    segment: 2,
                    offset: 3,
                }],
            },
            Meta::Snapshot(Box::new(Snapshot {
                legacy: true,
                max_id: 99,
                layers: vec![LayerSnap {
                    id: "maps".into(),
                    content_type: Some("a/b".into()),
                    ..LayerSnap::default()
                }],
                extents: vec![ExtentDef {
                    id: 1,
                    segment: 1,
                    offset: 56,
                    len: 10,
                    block_crcs: vec![5],
                }],
                uploads: vec![UploadSnap {
                    id: [3; 16],
                    layer: "maps".into(),
                    key: "k".into(),
                    content_type: "a/b".into(),
                    content_encoding: Some("gzip".into()),
                    started_ms: 1,
                    last_activity_ms: 2,
                    completed: false,
                    parts: vec![PartSnap {
                        number: 1,
                        id: 4,
                        size: 10,
                        crc32c: 7,
                        time_ms: 2,
                        pieces: vec![Piece {
                            extent: 1,
                            offset: 0,
                            len: 10,
                        }],
                        digest: None,
                    }],
                    metadata: vec![],
                    result: None,
                }],
                objects: vec![(
                    "maps".into(),
                    ObjectSnap {
                        key: "o".into(),
                        size: 10,
                        content_type: "a/b".into(),
                        content_encoding: None,
                        last_modified_ms: 3,
                        crc32c: 7,
                        etag: "e".into(),
                        part_count: 1,
                        pieces: vec![Piece {
                            extent: 1,
                            offset: 0,
                            len: 10,
                        }],
                        ..ObjectSnap::default()
                    },
                )],
            })),
        ]
    }

    /// The wave-2 records: tags 12..=18.
    fn samples_v2() -> Vec<Meta> {
        let md = vec![("color".to_string(), "blue".to_string())];
        let mut v1 = samples();
        let Some(Meta::Snapshot(mut snap)) = v1.pop() else {
            unreachable!()
        };
        snap.legacy = false;
        snap.layers[0].key_rules = KeyRules::Utf8;
        snap.layers[0].created_ms = 12;
        snap.objects[0].1.part_sizes = vec![4, 6];
        snap.uploads[0].metadata = md.clone();
        snap.uploads[0].parts[0].digest = Some(sha1());
        snap.objects[0].1.metadata = md.clone();
        snap.objects[0].1.digest = Some(Digest::from_crc32c(7));
        snap.objects[0].1.composite_digest = Some(sha1());
        let mut done = snap.uploads[0].clone();
        done.id = [4; 16];
        done.completed = true;
        done.parts.clear();
        done.result = Some(ObjectSnap {
            key: done.key.clone(),
            etag: "r".into(),
            metadata: md.clone(),
            ..ObjectSnap::default()
        });
        snap.uploads.push(done);
        vec![
            Meta::LayerCreated {
                layer: "s3".into(),
                content_type: None,
                content_encoding: None,
                key_rules: KeyRules::Utf8,
                time_ms: 0,
            },
            Meta::LayerCreated {
                layer: "s3".into(),
                content_type: None,
                content_encoding: None,
                key_rules: KeyRules::Here,
                time_ms: 3,
            },
            Meta::LayerDeleted { layer: "s3".into() },
            Meta::UploadStarted {
                layer: "s3".into(),
                upload: [9; 16],
                key: "a b/ü/".into(),
                content_type: "x/y".into(),
                content_encoding: None,
                time_ms: 5,
                metadata: md.clone(),
            },
            Meta::PartSet {
                layer: "s3".into(),
                upload: [9; 16],
                number: 1,
                part_id: 2,
                new_extent: None,
                pieces: vec![],
                size: 0,
                crc32c: 0,
                time_ms: 6,
                digest: Some(sha1()),
            },
            Meta::ObjectPut {
                layer: "s3".into(),
                key: "k".into(),
                new_extent: None,
                size: 0,
                crc32c: 0,
                content_type: "a/b".into(),
                content_encoding: None,
                etag_seq: 3,
                time_ms: 7,
                metadata: vec![],
                digest: Some(Digest::from_crc32c(0)),
            },
            Meta::ObjectPut {
                layer: "s3".into(),
                key: "k".into(),
                new_extent: None,
                size: 0,
                crc32c: 0,
                content_type: "a/b".into(),
                content_encoding: None,
                etag_seq: 3,
                time_ms: 7,
                metadata: md,
                digest: None,
            },
            Meta::ObjectCopied {
                layer: "s3".into(),
                src: "k".into(),
                dst: "j".into(),
                time_ms: 8,
                metadata: Some(vec![]),
            },
            Meta::Snapshot(snap),
        ]
    }

    #[test]
    fn salted_headers_decode_only_with_their_salt() {
        let h = RecordHeader {
            kind: RecordKind::Meta,
            len: 40,
            payload_crc: 7,
        };
        let plain = h.encode();
        let salted = h.encode_salted(Some(12));
        assert_eq!(plain, h.encode_salted(None));
        assert_eq!(RecordHeader::decode(&plain), Some(h));
        assert_eq!(RecordHeader::decode_salted(&salted, Some(12)), Some(h));
        assert_eq!(RecordHeader::decode_salted(&salted, None), None);
        assert_eq!(RecordHeader::decode_salted(&salted, Some(13)), None);
        assert_eq!(RecordHeader::decode_salted(&plain, Some(12)), None);
        // Ids that differ in their low 32 bits only: a burst of at most 32
        // bits, which CRC32C always detects.
        for (a, b) in [
            (1, 2),
            (5, 1 << 31),
            (u64::from(u32::MAX), 0),
            (7, 7 ^ 0xdead_beef),
        ] {
            assert_ne!(
                h.encode_salted(Some(a)),
                h.encode_salted(Some(b)),
                "{a} {b}"
            );
        }
    }

    #[test]
    fn segment_header_versions() {
        let v1 = encode_segment_header(9);
        assert_eq!(decode_segment_header_version(&v1, "x").unwrap(), (9, 1));
        assert_eq!(decode_segment_header(&v1, "x").unwrap(), 9);
        let v2 = encode_segment_header_version(9, FORMAT_VERSION_RECYCLED);
        assert_eq!(decode_segment_header_version(&v2, "x").unwrap(), (9, 2));
        let v3 = encode_segment_header_version(9, 3);
        let err = decode_segment_header_version(&v3, "x").unwrap_err();
        assert_eq!(err.kind(), crate::ErrorKind::Corrupt);
        assert!(err.to_string().contains("format version 3"), "{err}");
        assert_eq!(recycled_window(1 << 30), 16 << 20);
        assert_eq!(recycled_window(256 << 10), 64 << 10);
        assert_eq!(recycled_window(1 << 20), 128 << 10);
    }

    #[test]
    fn wave2_records_roundtrip_under_their_own_tags() {
        let tags: Vec<u8> = samples_v2().iter().map(|m| m.encode()[0]).collect();
        assert_eq!(tags, [12, 12, 13, 14, 15, 16, 16, 17, 18]);
        for m in samples_v2() {
            assert_eq!(Meta::decode(&m.encode()).ok(), Some(m));
        }
    }

    #[test]
    fn records_without_wave2_values_keep_their_old_tags() {
        let tags: Vec<u8> = samples().iter().map(|m| m.encode()[0]).collect();
        assert_eq!(tags, [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
    }

    /// A wave-2 tag whose new fields are all defaults would re-encode under
    /// the old tag: it is Corrupt, so every record has one encoding.
    #[test]
    fn wave2_tag_with_only_defaults_is_corrupt() {
        let layer = Meta::LayerCreated {
            layer: "l".into(),
            content_type: None,
            content_encoding: None,
            key_rules: KeyRules::Here,
            time_ms: 0,
        };
        let mut b = layer.encode();
        b[0] = 12;
        b.push(0);
        assert!(Meta::decode(&b).is_err());
        let start = Meta::UploadStarted {
            layer: "l".into(),
            upload: [1; 16],
            key: "k".into(),
            content_type: "a/b".into(),
            content_encoding: None,
            time_ms: 1,
            metadata: vec![],
        };
        let mut b = start.encode();
        b[0] = 14;
        b.extend_from_slice(&0u32.to_le_bytes());
        assert!(Meta::decode(&b).is_err());
        let put = Meta::ObjectPut {
            layer: "l".into(),
            key: "k".into(),
            new_extent: None,
            size: 0,
            crc32c: 0,
            content_type: "a/b".into(),
            content_encoding: None,
            etag_seq: 1,
            time_ms: 1,
            metadata: vec![],
            digest: None,
        };
        let mut b = put.encode();
        b[0] = 16;
        b.extend_from_slice(&[0, 0, 0, 0, 0]);
        assert!(Meta::decode(&b).is_err());
    }

    #[test]
    fn every_meta_roundtrips() {
        for m in samples() {
            assert_eq!(Meta::decode(&m.encode()).ok(), Some(m));
        }
    }

    #[test]
    fn truncated_payloads_are_errors_not_panics() {
        for m in samples().into_iter().chain(samples_v2()) {
            let enc = m.encode();
            for cut in 0..enc.len() {
                assert!(Meta::decode(&enc[..cut]).is_err(), "{m:?} cut at {cut}");
            }
        }
    }

    #[test]
    fn header_roundtrips_and_rejects_any_flipped_bit() {
        let h = RecordHeader {
            kind: RecordKind::Meta,
            len: 1234,
            payload_crc: 99,
        };
        let enc = h.encode();
        assert_eq!(RecordHeader::decode(&enc), Some(h));
        for bit in 0..(enc.len() * 8) {
            let mut b = enc;
            b[bit / 8] ^= 1 << (bit % 8);
            assert_eq!(RecordHeader::decode(&b), None, "bit {bit}");
        }
        assert_eq!(RecordHeader::decode(&[0u8; 24]), None);
    }

    #[test]
    fn huge_count_is_rejected_without_allocating() {
        let mut p = vec![T_EXTENTS_MOVED];
        p.extend_from_slice(&u32::MAX.to_le_bytes());
        assert!(Meta::decode(&p).is_err());
    }

    #[test]
    fn a_record_appended_in_place_is_the_framed_payload() {
        for n in [0usize, 1, 7, 8, 9, 200, 1000] {
            let meta: Vec<u8> = (0..n).map(|i| i as u8).collect();
            let mut payload = 77u64.to_le_bytes().to_vec();
            payload.extend_from_slice(&meta);
            let mut out = vec![9u8; 3];
            push_meta_record_salted(&mut out, 77, &meta, None);
            assert_eq!(out[..3], [9, 9, 9]);
            assert_eq!(out[3..], frame_meta(&payload)[..], "meta of {n} bytes");
            let h = RecordHeader::decode(&out[3..27]).expect("valid header");
            assert_eq!(h.payload_crc, crc32c::crc32c(&payload));
        }
    }

    #[test]
    fn framing_pads_to_alignment() {
        for n in 0..20 {
            let f = frame_meta(&vec![1u8; n]);
            assert_eq!(f.len() as u64, framed_len(n as u64));
            assert_eq!(f.len() % 8, 0);
        }
    }
}
