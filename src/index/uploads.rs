//! Multipart uploads in the index: open ones with their parts, completed
//! ones' tombstones, and the retention window that decides which a query
//! still sees.

use std::sync::Arc;

use crate::error::{bad_request, not_found, Reason, Result};
use crate::index::media::MediaPair;
use crate::index::{etag, etag_seq, upload_name, Index, Object, Part};
use crate::log::meta::Metadata;
use crate::spec::Digest;

/// An open multipart upload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Upload {
    pub layer: String,
    pub key: String,
    pub content_type: String,
    pub content_encoding: Option<String>,
    pub started_ms: u64,
    pub last_activity_ms: u64,
    /// The current parts, by number.
    pub parts: Parts,
    /// The user metadata the object gets.
    pub metadata: Metadata,
}

/// An open upload's current parts in part-number order, in one sorted
/// array: ~100 bytes a part, where a `BTreeMap` of them cost ~190 (nodes
/// half empty after in-order inserts). Parts mostly arrive in order, so an
/// insert mostly appends.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Parts(Vec<Part>);

impl Parts {
    /// No parts.
    pub fn new() -> Parts {
        Parts(Vec::new())
    }

    /// No parts, with room for `n` (a restore, which knows how many).
    pub fn with_capacity(n: usize) -> Parts {
        Parts(Vec::with_capacity(n))
    }

    /// Number of parts.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// True when there are none.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    fn find(&self, n: u32) -> std::result::Result<usize, usize> {
        self.0.binary_search_by_key(&n, |p| p.number)
    }

    /// Part `n`.
    pub fn get(&self, n: &u32) -> Option<&Part> {
        self.find(*n).ok().and_then(|i| self.0.get(i))
    }

    /// True if there is a part `n`.
    pub fn contains_key(&self, n: &u32) -> bool {
        self.find(*n).is_ok()
    }

    /// Puts `part` as part `n` (its number); returns the part it replaced.
    pub fn insert(&mut self, n: u32, mut part: Part) -> Option<Part> {
        part.number = n;
        match self.find(n) {
            Ok(i) => self.0.get_mut(i).map(|old| std::mem::replace(old, part)),
            Err(i) => {
                // Growing by a quarter, not doubling: memory tracks the
                // parts held (10 parts take 12 slots, not 16).
                if self.0.len() == self.0.capacity() {
                    self.0.reserve_exact((self.0.len() / 4).max(4));
                }
                self.0.insert(i, part);
                None
            }
        }
    }

    /// The parts in number order.
    pub fn values(&self) -> std::slice::Iter<'_, Part> {
        self.0.iter()
    }

    /// (number, part) in number order.
    pub fn iter(&self) -> PartsIter<'_> {
        self.into_iter()
    }

    /// (number, part) of the parts numbered `from.start` and up.
    pub fn range(&self, from: std::ops::RangeFrom<u32>) -> PartsIter<'_> {
        let i = self.find(from.start).unwrap_or_else(|i| i);
        self.0.get(i..).unwrap_or(&[]).iter().map(number_and_part)
    }
}

/// (number, part) pairs of [`Parts`], in number order.
pub type PartsIter<'a> = std::iter::Map<std::slice::Iter<'a, Part>, fn(&Part) -> (&u32, &Part)>;

fn number_and_part(p: &Part) -> (&u32, &Part) {
    (&p.number, p)
}

impl<'a> IntoIterator for &'a Parts {
    type Item = (&'a u32, &'a Part);
    type IntoIter = PartsIter<'a>;
    fn into_iter(self) -> PartsIter<'a> {
        self.0.iter().map(number_and_part)
    }
}

/// What a completed upload leaves behind (its tombstone): enough for
/// `upload_status` to say `Completed`, for `upload_result` to return the
/// object it published, and for part, complete and abort to stay
/// BadRequest, while the retention window lasts ([`Retention`]). The
/// upload's key, content type, encoding and metadata live on in the result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompletedUpload {
    /// The layer the token is bound to (the layer's own name, shared).
    pub layer: Arc<str>,
    /// When it completed (the `UploadCompleted` record's time, ms since the
    /// epoch): the retention window starts here.
    pub completed_ms: u64,
    pub outcome: Outcome,
}

/// What a completed upload published.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The object as published.
    Published(Box<Published>),
    /// Completed before the store kept results (restored from a version-1
    /// snapshot): only its key is known.
    Unrecorded { key: Box<str> },
}

impl Outcome {
    /// The key the upload published.
    pub fn key(&self) -> &str {
        match self {
            Outcome::Published(o) => o.key(),
            Outcome::Unrecorded { key } => key,
        }
    }
}

/// The object a completed upload published, as its tombstone keeps it: for
/// reporting, never for reading (no pieces). About 100 bytes and its key:
/// the content type and encoding are shared strings, the part sizes are
/// the published object's own (shared while it lives), the etag is derived
/// from the CRC and sequence number, and what most results leave at its
/// default sits behind one optional pointer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Published {
    key: Box<str>,
    pub size: u64,
    /// The sequence number of the completion (in the etag).
    pub etag_seq: u64,
    pub last_modified_ms: u64,
    pub crc32c: u32,
    pub part_count: u32,
    pub(super) media: MediaPair,
    /// Part sizes in part order (empty for one part).
    pub part_sizes: Arc<[u64]>,
    rare: Option<Box<Rare>>,
}

/// The fields of a result that most leave empty.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
struct Rare {
    metadata: Metadata,
    digest: Option<Digest>,
    composite_digest: Option<Digest>,
    /// An etag not of the usual CRC + sequence form (from an old snapshot).
    etag: Option<Box<str>>,
}

impl Published {
    /// The result of `o`, whose content type and encoding are `media`
    /// (shared strings equal to `o`'s). Its pieces are not kept.
    pub fn new(o: &Object, media: MediaPair) -> Published {
        let etag = match etag_seq(&o.etag, o.crc32c) {
            Some(seq) if seq == o.etag_seq => None,
            _ => Some(o.etag.as_str().into()),
        };
        let rare = Rare {
            metadata: o.metadata.clone(),
            digest: o.digest.clone(),
            composite_digest: o.composite_digest.clone(),
            etag,
        };
        Published {
            key: o.key.as_str().into(),
            size: o.size,
            etag_seq: o.etag_seq,
            last_modified_ms: o.last_modified_ms,
            crc32c: o.crc32c,
            part_count: o.part_count,
            media,
            part_sizes: Arc::clone(&o.part_sizes),
            rare: (rare != Rare::default()).then(|| Box::new(rare)),
        }
    }

    /// The published key.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// The content type.
    pub fn content_type(&self) -> &str {
        &self.media.0
    }

    /// The content encoding.
    pub fn content_encoding(&self) -> Option<&str> {
        self.media.1.as_deref()
    }

    /// The user metadata.
    pub fn metadata(&self) -> &[(String, String)] {
        self.rare.as_ref().map_or(&[], |r| &r.metadata)
    }

    /// The etag.
    pub fn etag(&self) -> String {
        match self.rare.as_ref().and_then(|r| r.etag.as_ref()) {
            Some(e) => e.to_string(),
            None => etag(self.crc32c, self.etag_seq),
        }
    }

    /// The object as published, without pieces.
    pub fn object(&self) -> Object {
        let rare = self.rare.as_deref();
        Object {
            key: self.key.to_string(),
            size: self.size,
            content_type: self.content_type().to_string(),
            content_encoding: self.content_encoding().map(str::to_string),
            last_modified_ms: self.last_modified_ms,
            crc32c: self.crc32c,
            etag: self.etag(),
            etag_seq: self.etag_seq,
            part_count: self.part_count,
            pieces: Arc::default(),
            metadata: self.metadata().to_vec(),
            digest: rare.and_then(|r| r.digest.clone()),
            composite_digest: rare.and_then(|r| r.composite_digest.clone()),
            part_sizes: Arc::clone(&self.part_sizes),
        }
    }
}

/// An upload as a query sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UploadState<'a> {
    Open(&'a Upload),
    Completed(&'a CompletedUpload),
}

/// Which completed uploads a query still sees: those completed at most the
/// window before `now`. Plain data, so the index stays pure: the store reads
/// the clock and its `Options::completed_upload_retention`.
///
/// The window is whole milliseconds rounded up, and an upload is forgotten
/// only once the clock (in whole ms) is past its completion time plus the
/// window, so it is remembered for at least the window. A window past what
/// `u64` milliseconds hold is forever; a zero window remembers nothing (the
/// completing call itself still reports its object).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention {
    window_ms: u64,
    now_ms: u64,
}

impl Retention {
    /// Completed uploads within `window` of `now_ms` (ms since the epoch).
    pub fn at(window: std::time::Duration, now_ms: u64) -> Retention {
        let window_ms = u64::try_from(window.as_nanos().div_ceil(1_000_000)).unwrap_or(u64::MAX);
        Retention { window_ms, now_ms }
    }

    /// Every completed upload, however old (validation and replay, which
    /// must not depend on the clock).
    pub fn forever() -> Retention {
        Retention {
            window_ms: u64::MAX,
            now_ms: 0,
        }
    }

    /// True if an upload completed at `completed_ms` is still remembered. A
    /// completion time ahead of the clock (the clock stepped back) is.
    pub fn remembers(&self, completed_ms: u64) -> bool {
        self.window_ms > 0 && self.now_ms.saturating_sub(completed_ms) <= self.window_ms
    }
}

impl Index {
    /// An upload of `layer`, open or completed; NotFound if unknown,
    /// aborted, bound to another layer, or completed and no longer
    /// remembered at `retention`.
    pub fn upload(
        &self,
        layer: &str,
        upload: &[u8; 16],
        retention: Retention,
    ) -> Result<UploadState<'_>> {
        self.layer(layer)?;
        if let Some(u) = self.uploads.get(upload).filter(|u| u.layer == layer) {
            return Ok(UploadState::Open(u));
        }
        match self.completed.get(upload) {
            Some(c) if *c.layer == *layer && retention.remembers(c.completed_ms) => {
                Ok(UploadState::Completed(c))
            }
            _ => Err(not_found!(
                Reason::UnknownUpload,
                "upload {} does not exist in layer \"{layer}\"",
                upload_name(upload)
            )),
        }
    }

    /// An open upload; BadRequest while it is remembered as completed,
    /// NotFound as [`Index::upload`].
    pub fn open_upload(
        &self,
        layer: &str,
        upload: &[u8; 16],
        retention: Retention,
    ) -> Result<&Upload> {
        match self.upload(layer, upload, retention)? {
            UploadState::Open(u) => Ok(u),
            UploadState::Completed(_) => Err(bad_request!(
                Reason::UploadCompleted,
                "upload {} is already completed",
                upload_name(upload)
            )),
        }
    }

    /// A completed upload's tombstone, whatever its age and layer (for the
    /// completing call, which reports its object even under a zero
    /// retention).
    pub fn completed_upload(&self, upload: &[u8; 16]) -> Option<&CompletedUpload> {
        self.completed.get(upload)
    }

    /// Open uploads of a layer, by key then start time.
    pub fn open_uploads(&self, layer: &str) -> Result<Vec<(&[u8; 16], &Upload)>> {
        self.layer(layer)?;
        let mut v: Vec<_> = self
            .uploads
            .iter()
            .filter(|(_, u)| u.layer == layer)
            .collect();
        v.sort_by(|a, b| (&a.1.key, a.1.started_ms, a.0).cmp(&(&b.1.key, b.1.started_ms, b.0)));
        Ok(v)
    }

    /// Every open upload whose last activity is at or before `cutoff_ms`.
    pub fn idle_uploads(&self, cutoff_ms: u64) -> Vec<(String, [u8; 16])> {
        let mut v: Vec<_> = self
            .uploads
            .iter()
            .filter(|(_, u)| u.last_activity_ms <= cutoff_ms)
            .map(|(id, u)| (u.layer.clone(), *id))
            .collect();
        v.sort();
        v
    }
}
