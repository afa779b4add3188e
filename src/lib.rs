//! # partstore
//!
//! An embedded, synchronous, transport-free storage engine that assembles
//! blobs from parts. A storage server links it in and maps its own transport
//! (HTTP, gRPC, S3) onto it.
//!
//! - Multipart uploads live in an append-only segment store; a part is
//!   written once as an extent with a CRC32C per 1 MiB block and becomes
//!   visible atomically, so uploading part `n` again simply replaces it.
//! - `copy_part` and `copy_object` copy no bytes: they reference the source's
//!   stored extents.
//! - Reads are zero-copy: [`Blob::read_range`] returns [`Slice`]s of memory
//!   maps, verified against their block CRCs.
//! - CRC-32C, MD5, SHA-1 and SHA-256 digests are checked on the same pass
//!   that writes the data.
//!
//! The rules (part sizes, numbering, ranges, digests, keys, errors) are
//! those of the crate's SPEC; every violation is a typed [`Error`] whose
//! [`ErrorKind`] maps to an HTTP status, and a failed call changes nothing.
//!
//! ```
//! use partstore::{Store, Options, LayerConfig, PartBody, CopySource, ErrorKind};
//!
//! # fn main() -> partstore::Result<()> {
//! let dir = tempfile::tempdir().map_err(|e| partstore::Error::Io {
//!     context: "tempdir".into(), source: e })?;
//! let store = Store::open(dir.path(), Options::default())?;
//! store.create_layer("maps", LayerConfig::default())?;
//!
//! // A multipart upload: every part but the last is >= 5 MiB and a
//! // multiple of 1 MiB.
//! let part1 = vec![7u8; 5 << 20];
//! let up = store.start_multipart("maps", "tiles/eu.bin", "application/octet-stream")?;
//! store.upload_part("maps", &up, 1, PartBody::new(&part1[..], part1.len() as u64))?;
//! // A digest that does not match: BadRequest, and part 2 stays absent.
//! let wrong = format!("SHA256:{}", "0".repeat(64)).parse()?;
//! let err = store
//!     .upload_part("maps", &up, 2, PartBody::new(&b"tail"[..], 4).digest(wrong))
//!     .unwrap_err();
//! assert_eq!(err.kind(), ErrorKind::BadRequest);
//! assert_eq!(store.list_parts("maps", &up)?.len(), 1);
//! store.upload_part("maps", &up, 2, PartBody::new(&b"tail"[..], 4))?;
//! let obj = store.complete_multipart("maps", &up)?;
//! assert_eq!(obj.size, (5 << 20) + 4);
//!
//! // Zero-copy ranged read.
//! let blob = store.get("maps", "tiles/eu.bin")?;
//! let slices = blob.read_range("bytes=-4".parse()?)?;
//! assert_eq!(&*slices[0], b"tail");
//!
//! // Range copy by reference into a new upload.
//! let up2 = store.start_multipart("maps", "tiles/copy.bin", "application/octet-stream")?;
//! store.copy_part("maps", &up2, 1,
//!     CopySource::new("tiles/eu.bin", "bytes=0-5242879".parse()?))?;
//! let copy = store.complete_multipart("maps", &up2)?;
//! assert_eq!(copy.size, 5 << 20);
//!
//! // Bad input is a typed error that changes nothing.
//! let err = store.upload_part("maps", &up2, 0, PartBody::new(&b""[..], 0)).unwrap_err();
//! assert_eq!(err.kind(), ErrorKind::BadRequest);
//! assert_eq!(err.kind().http_status(), 400);
//! # Ok(())
//! # }
//! ```
#![deny(missing_docs)]
// SAFETY: unsafe code is denied here and in [lints]; the one exception is
// src/log/map.rs (memory maps), where each block carries its own comment.
#![deny(unsafe_code)]
#![warn(clippy::unwrap_used, clippy::expect_used)]
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used))]

pub mod backend;
mod blob;
mod checkpoint;
mod compact;
mod digest;
mod engine;
mod error;
mod index;
mod info;
mod ingest;
mod list_token;
mod log;
mod maintenance;
mod multipart;
mod options;
mod recovery;
mod spec;
mod store;
mod types;

pub use blob::{Blob, BlobReader};
/// The engine's hasher for the `partstore` command and the benches (feature
/// `cli`). Not a stable API.
#[cfg(feature = "cli")]
#[doc(hidden)]
pub use digest::bench_api as __bench;
pub use error::{Error, ErrorKind, Reason, Result};
pub use log::map::Slice;
pub use spec::{ByteRange, Digest, DigestAlgorithm, KeyRules, UploadId};
pub use store::Store;

/// The SPEC's limits and checks, for fronts that validate a request before
/// they call the store (the store checks them again). Every limit is a named
/// constant; sizes are binary (1 MB = 1 MiB).
pub mod rules {
    pub use crate::spec::{
        check_part_size, check_put_object_size, media_eq, normalize_parent, validate_complete,
        validate_key, validate_layer_id, validate_list_limit, validate_metadata,
        validate_part_number, BLOCK_SIZE, COPY_ALIGNMENT, DEFAULT_CONTENT_TYPE, DEFAULT_LIST_LIMIT,
        MAX_KEY_LEN, MAX_LAYER_ID_LEN, MAX_LIST_LIMIT, MAX_METADATA_BYTES, MAX_OBJECT_SIZE,
        MAX_PART_NUMBER, MAX_PART_SIZE, MAX_PUT_OBJECT_SIZE, MAX_UTF8_KEY_BYTES, MIB,
        MIN_PART_NUMBER, MIN_PART_SIZE, PART_SIZE_MULTIPLE,
    };
}
pub use options::{Durability, Options, RecoveryMode, DEFAULT_COMPLETED_UPLOAD_RETENTION};
pub use types::{
    CompactionReport, CopySource, LayerConfig, LayerInfo, ListItem, ListOptions, ListPage,
    ObjectInfo, PartBody, PartInfo, PartRef, SegmentStats, Stats, UploadOptions, UploadStatus,
    UploadSummary, VerifyFinding, VerifyReport,
};

/// The pure in-memory index and the on-disk record format, for fuzz targets
/// and model tests (feature `fuzzing`). Not a stable API.
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod internals {
    pub use crate::index::{
        CompletedUpload, CopyPlan, Cursor, Entry, Extent, Index, Layer, Object, Outcome, Part,
        Published, Retention, Upload, UploadState,
    };
    pub use crate::log::format::{
        decode_segment_header, decode_segment_header_version, encode_segment_header,
        encode_segment_header_version, frame_meta, framed_len, ExtentDef, ExtentMove, LayerSnap,
        Meta, ObjectSnap, PartSnap, Piece, RecordHeader, RecordKind, Snapshot, UploadSnap,
        RECORD_HEADER_LEN, SEGMENT_HEADER_LEN,
    };
    pub use crate::log::meta::Metadata;
}
