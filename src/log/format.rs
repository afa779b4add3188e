//! The on-disk format: segment file header, record framing and metadata
//! record payloads. Everything here is pure encoding and decoding; see
//! `docs/FORMAT.md` for the same layout in prose.
//!
//! ```text
//! segment file header (32 bytes, at offset 0)
//!   0  magic           8  b"PARTSTOR"
//!   8  format_version  4  u32 LE = FORMAT_VERSION
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
//!  20  header_crc      4  u32 LE, CRC32C of bytes 0..20
//!  24  payload         len bytes, then zero padding to a multiple of 8
//! ```
//! A header of 24 zero bytes marks the end of a segment's records (segments
//! are preallocated, so the unwritten rest reads as zeros).

// Internal module; exposed undocumented only to fuzz targets (feature `fuzzing`).
#![cfg_attr(feature = "fuzzing", allow(missing_docs))]

use crate::error::{corrupt, Result};

/// Magic at the start of every segment file.
pub const SEGMENT_MAGIC: [u8; 8] = *b"PARTSTOR";
/// On-disk format version, in every segment header.
pub const FORMAT_VERSION: u32 = 1;
/// Length of the segment file header.
pub const SEGMENT_HEADER_LEN: u64 = 32;
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
    pub fn encode(&self) -> [u8; RECORD_HEADER_LEN as usize] {
        let mut h = [0u8; RECORD_HEADER_LEN as usize];
        h[0..4].copy_from_slice(&RECORD_MAGIC);
        h[4] = self.kind as u8;
        h[8..16].copy_from_slice(&self.len.to_le_bytes());
        h[16..20].copy_from_slice(&self.payload_crc.to_le_bytes());
        let crc = crc32c::crc32c(&h[0..20]);
        h[20..24].copy_from_slice(&crc.to_le_bytes());
        h
    }

    /// Decodes a header; `None` when it is not a valid header (torn,
    /// corrupt, or not a header at all).
    pub fn decode(h: &[u8]) -> Option<RecordHeader> {
        if h.len() < RECORD_HEADER_LEN as usize || h.get(0..4)? != RECORD_MAGIC {
            return None;
        }
        let crc = u32::from_le_bytes(h.get(20..24)?.try_into().ok()?);
        if crc32c::crc32c(h.get(0..20)?) != crc || h.get(5..8)? != [0, 0, 0] {
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

/// Encodes a segment file header.
pub fn encode_segment_header(segment_id: u64) -> [u8; SEGMENT_HEADER_LEN as usize] {
    let mut h = [0u8; SEGMENT_HEADER_LEN as usize];
    h[0..8].copy_from_slice(&SEGMENT_MAGIC);
    h[8..12].copy_from_slice(&FORMAT_VERSION.to_le_bytes());
    h[16..24].copy_from_slice(&segment_id.to_le_bytes());
    let crc = crc32c::crc32c(&h[0..28]);
    h[28..32].copy_from_slice(&crc.to_le_bytes());
    h
}

/// Checks a segment file header; returns the segment id it names.
pub fn decode_segment_header(h: &[u8], file: &str) -> Result<u64> {
    let bad = || corrupt!("segment {file}: bad file header");
    let h = h.get(0..SEGMENT_HEADER_LEN as usize).ok_or_else(bad)?;
    let crc = u32::from_le_bytes(h[28..32].try_into().map_err(|_| bad())?);
    let reserved_zero = h[12..16] == [0; 4] && h[24..28] == [0; 4];
    if h[0..8] != SEGMENT_MAGIC || crc32c::crc32c(&h[0..28]) != crc || !reserved_zero {
        return Err(bad());
    }
    let version = u32::from_le_bytes(h[8..12].try_into().map_err(|_| bad())?);
    if version != FORMAT_VERSION {
        return Err(corrupt!(
            "segment {file}: format version {version}, this build reads {FORMAT_VERSION}"
        ));
    }
    Ok(u64::from_le_bytes(h[16..24].try_into().map_err(|_| bad())?))
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
/// an invalid one knew the invalid one was durable).
pub fn push_meta_record(out: &mut Vec<u8>, synced: u64, meta: &[u8]) {
    let synced = synced.to_le_bytes();
    let len = (synced.len() + meta.len()) as u64;
    let header = RecordHeader {
        kind: RecordKind::Meta,
        len,
        payload_crc: crc32c::crc32c_append(crc32c::crc32c(&synced), meta),
    };
    let end = out.len() + framed_len(len) as usize;
    out.reserve(end - out.len());
    out.extend_from_slice(&header.encode());
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
            push_meta_record(&mut out, 77, &meta);
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
