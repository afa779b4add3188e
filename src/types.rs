//! The public argument and result types of [`crate::Store`].

use std::io::Read;
use std::sync::Arc;
use std::time::SystemTime;

use crate::spec::{ByteRange, Digest, KeyRules, UploadId};

/// Name/value pairs from a builder's argument.
fn pairs<I, K, V>(pairs: I) -> Vec<(String, String)>
where
    I: IntoIterator<Item = (K, V)>,
    K: Into<String>,
    V: Into<String>,
{
    pairs
        .into_iter()
        .map(|(k, v)| (k.into(), v.into()))
        .collect()
}

/// A layer's configuration: an optional content type and content encoding
/// that bind every upload into it, and the rules its keys follow.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LayerConfig {
    /// Uploads must use this content type (case-insensitive) when set.
    pub content_type: Option<String>,
    /// Uploads must use this content encoding when set.
    pub content_encoding: Option<String>,
    /// Which keys the layer accepts: [`KeyRules::Here`] (the default) or
    /// [`KeyRules::Utf8`] (S3's keys).
    pub key_rules: KeyRules,
}

impl LayerConfig {
    /// A layer bound to `content_type`.
    pub fn new(content_type: impl Into<String>) -> LayerConfig {
        LayerConfig {
            content_type: Some(content_type.into()),
            ..LayerConfig::default()
        }
    }
    /// Binds the layer to a content encoding too.
    pub fn content_encoding(mut self, encoding: impl Into<String>) -> LayerConfig {
        self.content_encoding = Some(encoding.into());
        self
    }
    /// Sets the key rules.
    pub fn key_rules(mut self, rules: KeyRules) -> LayerConfig {
        self.key_rules = rules;
        self
    }
}

/// A layer as [`crate::Store::layer_info`] reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct LayerInfo {
    /// The layer id.
    pub id: String,
    /// Its configuration.
    pub config: LayerConfig,
    /// When it was created; `None` for layers created before the store
    /// recorded it.
    pub created: Option<SystemTime>,
}

/// How a multipart upload starts: its content type, optional encoding and
/// user metadata. A `&str` converts into one naming just the content type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UploadOptions {
    /// The object's content type.
    pub content_type: String,
    /// The object's content encoding; the layer's when `None`.
    pub content_encoding: Option<String>,
    /// The object's user metadata (see [`UploadOptions::metadata`]).
    pub metadata: Vec<(String, String)>,
}

impl UploadOptions {
    /// Options with this content type.
    pub fn new(content_type: impl Into<String>) -> UploadOptions {
        UploadOptions {
            content_type: content_type.into(),
            content_encoding: None,
            metadata: Vec::new(),
        }
    }
    /// Sets the content encoding.
    pub fn content_encoding(mut self, encoding: impl Into<String>) -> UploadOptions {
        self.content_encoding = Some(encoding.into());
        self
    }
    /// Sets the object's user metadata: name/value pairs, names HTTP token
    /// characters (compared case-insensitively, each at most once), values
    /// printable UTF-8, at most 2 KiB in all ([`crate::rules::validate_metadata`];
    /// BadRequest `InvalidMetadata` otherwise).
    pub fn metadata<I, K, V>(mut self, metadata: I) -> UploadOptions
    where
        I: IntoIterator<Item = (K, V)>,
        K: Into<String>,
        V: Into<String>,
    {
        self.metadata = pairs(metadata);
        self
    }
}

impl From<&str> for UploadOptions {
    fn from(ct: &str) -> UploadOptions {
        UploadOptions::new(ct)
    }
}

impl From<String> for UploadOptions {
    fn from(ct: String) -> UploadOptions {
        UploadOptions::new(ct)
    }
}

impl From<&String> for UploadOptions {
    fn from(ct: &String) -> UploadOptions {
        UploadOptions::new(ct.as_str())
    }
}

/// A request body: a reader and its declared length (Content-Length), or
/// none ([`PartBody::until_eof`]), with optional content type, encoding,
/// digest and (for `put_object`) user metadata. The reader may be borrowed
/// and need not be `Send`.
pub struct PartBody<R> {
    pub(crate) reader: R,
    /// The declared length; `None`: read to the end.
    pub(crate) len: Option<u64>,
    pub(crate) content_type: Option<String>,
    pub(crate) content_encoding: Option<String>,
    pub(crate) digest: Option<Digest>,
    pub(crate) metadata: Option<Vec<(String, String)>>,
}

impl<R: Read> PartBody<R> {
    /// A body of exactly `len` bytes read from `reader` (fewer or more:
    /// BadRequest `BodyLengthMismatch`).
    pub fn new(reader: R, len: u64) -> PartBody<R> {
        PartBody {
            reader,
            len: Some(len),
            content_type: None,
            content_encoding: None,
            digest: None,
            metadata: None,
        }
    }
    /// A body of unknown length: `reader` is read to its end. The size
    /// limits still hold as the bytes arrive (a part past 96 MiB or a
    /// `put_object` past 192 MiB is TooLarge and nothing is stored), and
    /// the body is streamed, never held in memory.
    pub fn until_eof(reader: R) -> PartBody<R> {
        PartBody {
            len: None,
            ..PartBody::new(reader, 0)
        }
    }
    /// The object's user metadata, for `put_object` (a part takes none: its
    /// object gets the upload's, [`UploadOptions::metadata`]). Rules as
    /// there.
    pub fn metadata<I, K, V>(mut self, metadata: I) -> PartBody<R>
    where
        I: IntoIterator<Item = (K, V)>,
        K: Into<String>,
        V: Into<String>,
    {
        self.metadata = Some(pairs(metadata));
        self
    }
    /// The body's content type; for parts it must equal the upload's.
    pub fn content_type(mut self, ct: impl Into<String>) -> PartBody<R> {
        self.content_type = Some(ct.into());
        self
    }
    /// The object's content encoding (for `put_object`).
    pub fn content_encoding(mut self, ce: impl Into<String>) -> PartBody<R> {
        self.content_encoding = Some(ce.into());
        self
    }
    /// A digest the body must match, or the call fails with BadRequest.
    pub fn digest(mut self, d: Digest) -> PartBody<R> {
        self.digest = Some(d);
        self
    }
}

/// The source of `copy_part`: a key in the same layer and a `bytes=a-b`
/// range of it, with an optional digest of the copied bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CopySource {
    /// The source object's key.
    pub key: String,
    /// The range to copy; must be `bytes=a-b` with `a` a multiple of 1 MiB.
    pub range: ByteRange,
    /// A digest the copied bytes must match.
    pub digest: Option<Digest>,
}

impl CopySource {
    /// Copy `range` of `key`.
    pub fn new(key: impl Into<String>, range: ByteRange) -> CopySource {
        CopySource {
            key: key.into(),
            range,
            digest: None,
        }
    }
    /// A digest the copied bytes must match.
    pub fn digest(mut self, d: Digest) -> CopySource {
        self.digest = Some(d);
        self
    }
}

/// A (number, id) pair naming one uploaded part, for
/// `complete_multipart_with`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PartRef {
    /// The part number.
    pub number: u32,
    /// The part's id as returned by `upload_part` / `copy_part`.
    pub id: String,
}

/// A stored part.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct PartInfo {
    /// The part number (1..=10000).
    pub part_number: u32,
    /// An id new for every upload of this number.
    pub id: String,
    /// Size in bytes.
    pub size: u64,
    /// CRC32C of the part's bytes.
    pub crc32c: u32,
    /// When this part was stored.
    pub last_modified: SystemTime,
    /// The digest the part was uploaded (or copied) with, verified against
    /// its bytes; `None` if none was given.
    pub digest: Option<Digest>,
}

/// A published object's metadata.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ObjectInfo {
    /// The object's key.
    pub key: String,
    /// Size in bytes.
    pub size: u64,
    /// Content type.
    pub content_type: String,
    /// Content encoding, if any.
    pub content_encoding: Option<String>,
    /// When the object was written.
    pub last_modified: SystemTime,
    /// CRC32C of the whole object.
    pub crc32c: u32,
    /// Changes whenever the content does.
    pub etag: String,
    /// Number of parts (1 for `put_object`).
    pub part_count: u32,
    /// User metadata, as given to `put_object`, `start_multipart` or
    /// `copy_object_with` (or kept from a copy's source).
    pub metadata: Vec<(String, String)>,
    /// The digest given to `put_object` and verified against the bytes
    /// (kept by `copy_object`); `None` if none was given, and for
    /// multipart objects.
    pub digest: Option<Digest>,
    /// For a multipart object whose every part was uploaded or copied with
    /// a verified digest of one algorithm: that algorithm over the parts'
    /// digests, concatenated in part order (S3's composite "checksum of
    /// checksums"; its `-N` is `part_count`).
    pub composite_digest: Option<Digest>,
    /// Part sizes of a multipart object (empty for one part): see
    /// [`ObjectInfo::part_range`].
    pub(crate) part_sizes: Arc<[u64]>,
}

impl ObjectInfo {
    /// The byte range of part `n` (1-based) of the object: for a multipart
    /// object, as its upload published it; a single-part object is its
    /// part 1. `None` for a part number it does not have.
    pub fn part_range(&self, n: u32) -> Option<std::ops::Range<u64>> {
        if self.part_sizes.is_empty() {
            return (n == 1).then_some(0..self.size);
        }
        let i = usize::try_from(n).ok()?.checked_sub(1)?;
        let start: u64 = self.part_sizes.get(..i)?.iter().sum();
        Some(start..start + self.part_sizes.get(i)?)
    }

    /// The value of user metadata `name`, compared case-insensitively.
    pub fn metadata_value(&self, name: &str) -> Option<&str> {
        self.metadata
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// An open multipart upload, as `list_uploads` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct UploadSummary {
    /// The key the upload will publish.
    pub key: String,
    /// Its token.
    pub upload: UploadId,
    /// When it started.
    pub started: SystemTime,
    /// Its last start, part upload or copy.
    pub last_activity: SystemTime,
    /// Number of current parts.
    pub parts: usize,
}

/// An upload's state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UploadStatus {
    /// Still accepting parts.
    Open {
        /// Number of current parts.
        parts: usize,
        /// Total bytes of current parts.
        bytes: u64,
        /// Last start, part upload or copy.
        last_activity: SystemTime,
    },
    /// Completed into an object; reported for
    /// [`crate::Options::completed_upload_retention`] after the complete, then the
    /// upload is unknown (NotFound).
    Completed,
}

/// Options of `list`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListOptions {
    /// Folder to list ("" = root; a trailing `/` is optional).
    pub parent: String,
    /// Instead of `parent`: list the keys that start with this string, any
    /// string (S3's `prefix`); a hierarchical listing groups what follows it
    /// up to the next `/`. Setting both `parent` and `prefix` is BadRequest.
    pub prefix: Option<String>,
    /// Start after this key: only objects whose key sorts after it, and
    /// folders whose path followed by `/` does (byte-wise). Ignored when a
    /// `page_token` is given.
    pub start_after: Option<String>,
    /// Recursive listing of objects only, no folders.
    pub deep: bool,
    /// Items per page, 1..=1000.
    pub limit: usize,
    /// Where to continue, from a previous page.
    pub page_token: Option<String>,
}

impl Default for ListOptions {
    fn default() -> ListOptions {
        ListOptions {
            parent: String::new(),
            prefix: None,
            start_after: None,
            deep: false,
            limit: crate::spec::MAX_LIST_LIMIT,
            page_token: None,
        }
    }
}

impl ListOptions {
    /// Sets the parent folder.
    pub fn parent(mut self, p: impl Into<String>) -> ListOptions {
        self.parent = p.into();
        self
    }
    /// Lists the keys starting with `p` (any string) instead of a folder.
    pub fn prefix(mut self, p: impl Into<String>) -> ListOptions {
        self.prefix = Some(p.into());
        self
    }
    /// Starts after this key (see [`ListOptions::start_after`]).
    pub fn start_after(mut self, key: impl Into<String>) -> ListOptions {
        self.start_after = Some(key.into());
        self
    }
    /// Recursive (objects only) or hierarchical listing.
    pub fn deep(mut self, deep: bool) -> ListOptions {
        self.deep = deep;
        self
    }
    /// Items per page, 1..=1000.
    pub fn limit(mut self, n: usize) -> ListOptions {
        self.limit = n;
        self
    }
    /// Continue from a previous page's token.
    pub fn page_token(mut self, t: impl Into<String>) -> ListOptions {
        self.page_token = Some(t.into());
        self
    }
}

/// One listing entry.
#[derive(Debug, Clone, PartialEq, Eq)]
// Most items are objects: boxing them would cost an allocation each to
// save the bytes of the rarer prefixes.
#[allow(clippy::large_enum_variant)]
pub enum ListItem {
    /// An object.
    Object(ObjectInfo),
    /// A common prefix (a folder), as a full path without trailing `/`.
    Prefix(String),
}

/// One page of a listing.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ListPage {
    /// Items in byte-wise key order.
    pub items: Vec<ListItem>,
    /// Token for the next page; `None` on the last page.
    pub next_page_token: Option<String>,
}

/// Space used by one segment file.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct SegmentStats {
    /// Segment id.
    pub id: u64,
    /// Bytes of data regions written into it, and of checkpoint pages
    /// (compaction removes a segment only once a checkpoint after it is
    /// durable).
    pub data_bytes: u64,
    /// Bytes of live extents in it.
    pub live_bytes: u64,
    /// Data bytes no object or part references and that are not a page of
    /// the newest checkpoint (the next checkpoint makes those garbage):
    /// what compaction can reclaim. `data_bytes - live_bytes -
    /// garbage_bytes` is the newest checkpoint's pages in this segment.
    pub garbage_bytes: u64,
}

/// Store statistics.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Stats {
    /// Bytes of extents referenced by an object or a part.
    pub live_bytes: u64,
    /// Bytes of data written that nothing references any more (the pages
    /// of the newest checkpoint, still needed, are not counted).
    pub garbage_bytes: u64,
    /// Number of segment files.
    pub segments: usize,
    /// Number of objects.
    pub objects: usize,
    /// Number of open uploads.
    pub uploads: usize,
    /// Completed uploads whose tombstones the store holds in memory (see
    /// [`crate::Options::completed_upload_retention`]): those still remembered,
    /// and expired ones that no `expire_uploads`, `compact` or reopen has
    /// dropped yet (queries already treat those as unknown).
    pub completed_uploads: usize,
    /// Bytes of metadata records appended since the last checkpoint (at
    /// open: those `open` replayed): roughly what the next `open` replays.
    pub replay_bytes: u64,
    /// Per segment.
    pub per_segment: Vec<SegmentStats>,
    /// Segment files compaction emptied that the store keeps for reuse
    /// ([`crate::Options::recycle_segments`]); not in `segments`.
    pub recycled_segments: usize,
}

/// What `compact()` did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct CompactionReport {
    /// Live bytes rewritten into new segments.
    pub bytes_moved: u64,
    /// Bytes given back to the file system: of segment files deleted, and
    /// of dead regions punched out of others (not of files kept for reuse,
    /// see `segments_recycled`).
    pub bytes_reclaimed: u64,
    /// Segments removed: their files deleted, or kept for reuse.
    pub segments_removed: usize,
    /// Of `segments_removed`, the files kept for reuse
    /// ([`crate::Options::recycle_segments`]): their bytes are not in
    /// `bytes_reclaimed`.
    pub segments_recycled: usize,
}

/// What `verify()` found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct VerifyReport {
    /// Live extents checked.
    pub extents: usize,
    /// 1 MiB blocks checked.
    pub blocks: u64,
    /// Bytes checked.
    pub bytes: u64,
    /// One line per block that failed its CRC32C, naming extent, segment and
    /// offset.
    pub corrupt: Vec<String>,
    /// The same failures as data, in the same order.
    pub findings: Vec<VerifyFinding>,
}

/// One block that failed `verify()`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct VerifyFinding {
    /// The segment holding the block.
    pub segment: u64,
    /// The block's byte offset in the segment file.
    pub offset: u64,
    /// The extent the block belongs to.
    pub extent: u64,
    /// The block's index within its extent (1 MiB blocks).
    pub block: u64,
    /// What failed (`Reason::ChecksumMismatch`, or `CorruptRecord` when the
    /// block lies outside its segment).
    pub reason: crate::error::Reason,
}

impl VerifyReport {
    /// True when every block passed.
    pub fn is_clean(&self) -> bool {
        self.corrupt.is_empty()
    }
}

impl<R> std::fmt::Debug for PartBody<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PartBody")
            .field("len", &self.len)
            .field("content_type", &self.content_type)
            .field("content_encoding", &self.content_encoding)
            .field("digest", &self.digest)
            .field("metadata", &self.metadata)
            .finish_non_exhaustive()
    }
}
