//! The in-memory index: layers, objects, uploads and the extent table.
//!
//! Pure: no I/O, no clock, no randomness. Every change arrives as a
//! [`Meta`] record; the live path calls [`Index::validate`], makes the record
//! durable, then [`Index::apply_validated`]; recovery calls [`Index::apply`]
//! on each replayed record. So the rebuilt index equals the live one.
//!
//! One exception, outside the records: a completed upload leaves a
//! tombstone ([`CompletedUpload`]) that queries see only within a retention
//! window ([`Retention`], built by the caller from its clock), and
//! [`Index::forget_completed`] drops expired ones without a record. Replay
//! rebuilds them; since every query judges their age and no record's
//! validity depends on them, the visible state is the same either way.

// Internal module; exposed undocumented only to fuzz targets (feature `fuzzing`).
#![cfg_attr(feature = "fuzzing", allow(missing_docs))]

mod apply;
mod extents;
pub(crate) mod footprint;
mod media;
mod objects;

mod plan;

#[allow(unused_imports)] // used by the fuzz driver (feature `fuzzing`)
pub use plan::CopyPlan;
mod snapshot;

pub use extents::{Extent, Extents, Location};
pub use objects::{Extra, ObjRec, ObjRef, ObjectMap};

use crate::error::Reason;
use media::Media;
use std::collections::{BTreeMap, HashMap};
use std::ops::Bound;
use std::sync::Arc;

use crate::error::{bad_request, not_found, Result};
use crate::log::format::{ObjectSnap, Piece};
use crate::log::meta::Metadata;
use crate::spec::{self, Digest, KeyRules, UploadId};

/// One bit per block of an extent: set once a read has checked the block
/// against its CRC32C, so later reads of the cached, mapped bytes skip the
/// check (`verify()` still checks everything). Shared by the views of the
/// extent, so what one read verified every later read knows.
#[derive(Clone, Default)]
pub struct Verified(Arc<[std::sync::atomic::AtomicU64]>);

impl Verified {
    /// A bitmap for `blocks` blocks, none verified.
    pub fn new(blocks: u64) -> Verified {
        Verified(
            (0..blocks.div_ceil(64))
                .map(|_| std::sync::atomic::AtomicU64::new(0))
                .collect(),
        )
    }

    /// True once block `i` was verified.
    pub fn get(&self, i: u64) -> bool {
        use std::sync::atomic::Ordering;
        self.0
            .get((i / 64) as usize)
            .is_some_and(|w| w.load(Ordering::Relaxed) & (1 << (i % 64)) != 0)
    }

    /// Records that block `i` matched its CRC32C.
    pub fn set(&self, i: u64) {
        use std::sync::atomic::Ordering;
        if let Some(w) = self.0.get((i / 64) as usize) {
            w.fetch_or(1 << (i % 64), Ordering::Relaxed);
        }
    }
}

impl PartialEq for Verified {
    fn eq(&self, _: &Verified) -> bool {
        true
    }
}

impl Eq for Verified {}

impl std::fmt::Debug for Verified {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Verified")
    }
}

/// A current part of an open upload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Part {
    pub number: u32,
    pub id: u64,
    pub size: u64,
    pub crc32c: u32,
    pub pieces: Vec<Piece>,
    pub time_ms: u64,
    /// The digest the client sent with the part and the engine verified.
    pub digest: Option<Digest>,
}

/// A published object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Object {
    pub key: String,
    pub size: u64,
    pub content_type: String,
    pub content_encoding: Option<String>,
    pub last_modified_ms: u64,
    pub crc32c: u32,
    pub etag: String,
    /// The sequence number of the write that made it (in the etag).
    pub etag_seq: u64,
    pub part_count: u32,
    /// The object's bytes, in order.
    pub pieces: Arc<Vec<Piece>>,
    pub metadata: Metadata,
    /// The digest the client sent with `put_object` and the engine verified.
    pub digest: Option<Digest>,
    /// A multipart object whose parts all carry a digest of one algorithm:
    /// that algorithm over the part digests in part order.
    pub composite_digest: Option<Digest>,
    /// A multipart object's part sizes, in part order (they add up to
    /// `size`); empty for a single-part object.
    pub part_sizes: Arc<[u64]>,
}

impl From<&Object> for ObjectSnap {
    fn from(o: &Object) -> ObjectSnap {
        ObjectSnap {
            key: o.key.clone(),
            size: o.size,
            content_type: o.content_type.clone(),
            content_encoding: o.content_encoding.clone(),
            last_modified_ms: o.last_modified_ms,
            crc32c: o.crc32c,
            etag: o.etag.clone(),
            part_count: o.part_count,
            pieces: o.pieces.to_vec(),
            metadata: o.metadata.clone(),
            digest: o.digest.clone(),
            composite_digest: o.composite_digest.clone(),
            part_sizes: o.part_sizes.to_vec(),
        }
    }
}

impl From<&ObjectSnap> for Object {
    fn from(o: &ObjectSnap) -> Object {
        Object {
            key: o.key.clone(),
            size: o.size,
            content_type: o.content_type.clone(),
            content_encoding: o.content_encoding.clone(),
            last_modified_ms: o.last_modified_ms,
            crc32c: o.crc32c,
            etag: o.etag.clone(),
            etag_seq: etag_seq(&o.etag, o.crc32c).unwrap_or(0),
            part_count: o.part_count,
            pieces: Arc::new(o.pieces.clone()),
            metadata: o.metadata.clone(),
            digest: o.digest.clone(),
            composite_digest: o.composite_digest.clone(),
            part_sizes: o.part_sizes.as_slice().into(),
        }
    }
}

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
    pub parts: BTreeMap<u32, Part>,
    /// The user metadata the object gets.
    pub metadata: Metadata,
}

/// What a completed upload leaves behind (its tombstone): enough for
/// `upload_status` to say `Completed`, for `upload_result` to return the
/// object it published, and for part, complete and abort to stay
/// BadRequest, while the retention window lasts ([`Retention`]). The
/// upload's key, content type, encoding and metadata live on in the result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompletedUpload {
    /// The layer the token is bound to.
    pub layer: String,
    /// When it completed (the `UploadCompleted` record's time, ms since the
    /// epoch): the retention window starts here.
    pub completed_ms: u64,
    pub outcome: Outcome,
}

/// What a completed upload published.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The object as published (no pieces: it is for reporting, never for
    /// reading).
    Published(Arc<Object>),
    /// Completed before the store kept results (restored from a version-1
    /// snapshot): only its key is known.
    Unrecorded { key: Box<str> },
}

impl Outcome {
    /// The key the upload published.
    pub fn key(&self) -> &str {
        match self {
            Outcome::Published(o) => &o.key,
            Outcome::Unrecorded { key } => key,
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

/// A layer and its objects, in byte-wise key order.
#[derive(Debug, Clone, Default)]
pub struct Layer {
    pub content_type: Option<String>,
    pub content_encoding: Option<String>,
    pub key_rules: KeyRules,
    /// When it was created (ms since the epoch); 0: not recorded.
    pub created_ms: u64,
    pub objects: ObjectMap,
}

/// One listing entry.
#[derive(Debug, Clone)]
pub enum Entry {
    Object(Box<crate::types::ObjectInfo>),
    Prefix(String),
}

/// Where a listing page ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cursor {
    AfterObject(String),
    AfterPrefix(String),
}

/// The whole in-memory state.
#[derive(Debug, Clone, Default)]
pub struct Index {
    layers: BTreeMap<String, Layer>,
    /// Open uploads.
    uploads: HashMap<[u8; 16], Upload>,
    /// Completed uploads' tombstones, expired or not: queries judge expiry
    /// ([`Retention`]); [`Index::forget_completed`] frees the expired.
    completed: HashMap<[u8; 16], CompletedUpload>,
    extents: Extents,
    /// Content types and encodings of the objects.
    media: Media,
    /// Live extent bytes per segment.
    live_by_segment: HashMap<u64, u64>,
    /// Highest id (extent, part, etag sequence) any record used.
    max_id: u64,
    /// Regions of extents dropped since compaction last took them.
    freed: Freed,
}

/// A region of a dropped extent: (segment, offset, len).
pub(crate) type FreedRegion = (u64, u64, u64);

/// Regions whose extents the index dropped, for compaction to give back to
/// the file system. Bookkeeping beside the state, not part of it: two
/// indexes with the same state are equal whatever they freed.
#[derive(Clone, Default)]
pub(crate) struct Freed(Vec<FreedRegion>);

/// Most regions remembered; past it the oldest are forgotten (their space
/// comes back when compaction moves their segment's live data instead).
const MAX_FREED: usize = 1 << 20;

impl Freed {
    pub(crate) fn push(&mut self, r: FreedRegion) {
        if self.0.len() >= MAX_FREED {
            self.0.drain(..MAX_FREED / 2);
        }
        self.0.push(r);
    }
}

impl PartialEq for Freed {
    fn eq(&self, _: &Freed) -> bool {
        true
    }
}

impl Eq for Freed {}

impl std::fmt::Debug for Freed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Freed({} regions)", self.0.len())
    }
}

/// The etag of an object: its CRC and the sequence number of the write that
/// made it, so it changes whenever the content does.
fn etag(crc: u32, seq: u64) -> String {
    // By hand: this runs for every object a head or a listing returns.
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let v = (u128::from(crc) << 64) | u128::from(seq);
    let mut out = String::with_capacity(24);
    for i in (0..24).rev() {
        out.push(char::from(HEX[((v >> (i * 4)) & 0xf) as usize]));
    }
    out
}

/// The sequence number of an etag of the usual form for `crc`.
fn etag_seq(etag: &str, crc: u32) -> Option<u64> {
    let (c, seq) = (etag.get(..8)?, etag.get(8..)?);
    if etag.len() != 24 || u32::from_str_radix(c, 16).ok()? != crc {
        return None;
    }
    let n = u64::from_str_radix(seq, 16).ok()?;
    (self::etag(crc, n) == etag).then_some(n)
}

fn upload_name(u: &[u8; 16]) -> String {
    UploadId::from_bytes(*u).to_string()
}

impl Index {
    /// An empty index.
    pub fn new() -> Index {
        Index::default()
    }

    /// Takes the regions freed since the last call.
    pub(crate) fn take_freed(&mut self) -> Vec<FreedRegion> {
        std::mem::take(&mut self.freed.0)
    }

    /// Puts back regions that could not be given back yet.
    pub(crate) fn keep_freed(&mut self, regions: Vec<FreedRegion>) {
        for r in regions {
            self.freed.push(r);
        }
    }

    /// Highest id any applied record used; fresh ids start above it.
    pub fn max_id(&self) -> u64 {
        self.max_id
    }

    // ----- queries -------------------------------------------------------

    /// The layer `id`: BadRequest for a malformed id, NotFound if missing.
    pub fn layer(&self, id: &str) -> Result<&Layer> {
        spec::validate_layer_id(id)?;
        self.layers
            .get(id)
            .ok_or_else(|| not_found!(Reason::UnknownLayer, "layer \"{id}\" does not exist"))
    }

    /// Layer ids and configs.
    pub fn layers(&self) -> impl Iterator<Item = (&String, &Layer)> {
        self.layers.iter()
    }

    /// An object, or NotFound.
    pub fn object(&self, layer: &str, key: &str) -> Result<Arc<Object>> {
        self.object_ref(layer, key)
            .map(|o| Arc::new(self.materialize(o)))
    }

    /// An object's packed entry, or NotFound.
    pub fn object_ref(&self, layer: &str, key: &str) -> Result<ObjRef<'_>> {
        let l = self.layer(layer)?;
        l.key_rules.validate(key)?;
        l.objects.get(key).ok_or_else(|| {
            not_found!(
                Reason::UnknownKey,
                "key \"{key}\" does not exist in layer \"{layer}\""
            )
        })
    }

    /// The pieces of a packed object, in order.
    pub fn pieces_of<'a>(&self, rec: &'a ObjRec) -> std::borrow::Cow<'a, [Piece]> {
        match &rec.extra {
            _ if rec.extent != 0 => std::borrow::Cow::Owned(vec![Piece {
                extent: rec.extent,
                offset: 0,
                len: self.extents.location(rec.extent).map_or(0, |l| l.len),
            }]),
            Some(x) => std::borrow::Cow::Borrowed(&x.pieces),
            None => std::borrow::Cow::Borrowed(&[]),
        }
    }

    /// The size of a packed object.
    pub fn size_of(&self, rec: &ObjRec) -> u64 {
        match &rec.extra {
            _ if rec.extent != 0 => self.extents.location(rec.extent).map_or(0, |l| l.len),
            Some(x) => x.size,
            None => 0,
        }
    }

    /// A packed object's content type and encoding.
    pub fn media_of(&self, rec: &ObjRec) -> (&str, Option<&str>) {
        self.media.get(rec.media)
    }

    /// A packed object's etag.
    pub fn etag_of(&self, r: &ObjRec) -> String {
        match r.extra.as_deref().and_then(|x| x.etag.clone()) {
            Some(e) => e,
            None => etag(r.crc32c, r.etag_seq),
        }
    }

    /// A packed object as an [`Object`].
    pub fn materialize(&self, o: ObjRef<'_>) -> Object {
        let r = o.rec;
        let (ct, ce) = self.media.get(r.media);
        let x = r.extra.as_deref();
        Object {
            key: o.key.to_string(),
            size: self.size_of(r),
            content_type: ct.to_string(),
            content_encoding: ce.map(str::to_string),
            last_modified_ms: r.last_modified_ms(),
            crc32c: r.crc32c,
            etag: self.etag_of(r),
            etag_seq: r.etag_seq,
            part_count: u32::from(r.part_count()),
            pieces: Arc::new(self.pieces_of(r).into_owned()),
            metadata: x.map(|x| x.metadata.clone()).unwrap_or_default(),
            digest: x.and_then(|x| x.digest.clone()),
            composite_digest: x.and_then(|x| x.composite_digest.clone()),
            part_sizes: x.map(|x| Arc::clone(&x.part_sizes)).unwrap_or_default(),
        }
    }

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
            Some(c) if c.layer == layer && retention.remembers(c.completed_ms) => {
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

    /// An extent of the table, if live.
    pub fn extent(&self, id: u64) -> Option<Extent> {
        self.extents.get(id)
    }

    /// Where a live extent is (no allocation).
    #[allow(dead_code)]
    pub fn extent_location(&self, id: u64) -> Option<Location> {
        self.extents.location(id)
    }

    /// Every live extent, in id order.
    #[cfg_attr(not(feature = "fuzzing"), allow(dead_code))]
    pub fn extents(&self) -> impl Iterator<Item = (u64, Extent)> + '_ {
        self.extents.iter()
    }

    /// Every live extent's location, in id order.
    pub fn extent_locations(&self) -> impl Iterator<Item = (u64, Location)> + '_ {
        self.extents.locations()
    }

    /// Live bytes per segment.
    pub fn live_by_segment(&self) -> &HashMap<u64, u64> {
        &self.live_by_segment
    }

    /// (objects, open uploads, live bytes).
    pub fn counts(&self) -> (usize, usize, u64) {
        let objects = self.layers.values().map(|l| l.objects.len()).sum();
        (
            objects,
            self.uploads.len(),
            self.live_by_segment.values().sum(),
        )
    }

    /// Completed uploads' tombstones held, expired ones not yet forgotten
    /// included.
    pub fn completed_uploads(&self) -> usize {
        self.completed.len()
    }

    /// Drops the tombstones of completed uploads no longer remembered at
    /// `retention` (they are already unknown to every query: this frees
    /// their memory). Returns how many. No record: replay rebuilds them,
    /// and every query judges their age again.
    pub fn forget_completed(&mut self, retention: Retention) -> usize {
        let before = self.completed.len();
        self.completed
            .retain(|_, c| retention.remembers(c.completed_ms));
        // A map keeps its peak capacity: after a burst of completions has
        // expired, give the table back too.
        if self.completed.capacity() > 4 * self.completed.len().max(64) {
            self.completed.shrink_to_fit();
        }
        before - self.completed.len()
    }

    /// One page of a listing. `parent` is normalized (no trailing `/`).
    /// (The fuzz model's entry point; the store calls `list_prefix`.)
    #[cfg_attr(not(feature = "fuzzing"), allow(dead_code))]
    pub fn list(
        &self,
        layer: &str,
        parent: &str,
        deep: bool,
        after: Option<&Cursor>,
        limit: usize,
    ) -> Result<(Vec<Entry>, Option<Cursor>)> {
        let prefix = if parent.is_empty() {
            String::new()
        } else {
            format!("{parent}/")
        };
        self.list_prefix(layer, &prefix, deep, after, None, limit)
    }

    /// One page of the keys of `layer` that start with `prefix` (any
    /// string; a folder's is its path and `/`): all of them (`deep`) or,
    /// grouped on the first `/` after the prefix, objects and folders.
    /// Resumes after `after`; without it, starts after `start_after`, where a
    /// folder counts as its path and `/` (so a folder that `start_after`
    /// lies in or equals is skipped whole).
    pub fn list_prefix(
        &self,
        layer: &str,
        prefix: &str,
        deep: bool,
        after: Option<&Cursor>,
        start_after: Option<&str>,
        limit: usize,
    ) -> Result<(Vec<Entry>, Option<Cursor>)> {
        let l = self.layer(layer)?;
        let mut start: Bound<String> = match (after, start_after) {
            (Some(Cursor::AfterObject(k)), _) => Bound::Excluded(k.clone()),
            // '0' is the byte after '/': skip every key under the prefix.
            (Some(Cursor::AfterPrefix(p)), _) => Bound::Included(format!("{p}0")),
            (None, Some(k)) if k >= prefix => Bound::Excluded(k.to_owned()),
            (None, _) => Bound::Included(prefix.to_owned()),
        };
        let skip_folder =
            |p: &str| after.is_none() && start_after.is_some_and(|k| format!("{p}/").as_str() <= k);
        let mut items = Vec::new();
        'outer: loop {
            let from = match &start {
                Bound::Included(k) => Bound::Included(k.as_str()),
                Bound::Excluded(k) => Bound::Excluded(k.as_str()),
                Bound::Unbounded => Bound::Unbounded,
            };
            for obj in l.objects.range(from) {
                let key = obj.key;
                if !key.starts_with(prefix) {
                    if key < prefix {
                        continue;
                    }
                    break 'outer;
                }
                let rest = &key[prefix.len()..];
                let folder = match rest.find('/') {
                    Some(i) if !deep => Some(format!("{prefix}{}", &rest[..i])),
                    _ => None,
                };
                if let Some(p) = &folder {
                    if skip_folder(p) {
                        start = Bound::Included(format!("{p}0"));
                        continue 'outer;
                    }
                }
                if items.len() == limit {
                    let cursor = match items.last() {
                        Some(Entry::Object(o)) => Cursor::AfterObject(o.key.clone()),
                        Some(Entry::Prefix(p)) => Cursor::AfterPrefix(p.clone()),
                        None => break 'outer,
                    };
                    return Ok((items, Some(cursor)));
                }
                match folder {
                    Some(p) => {
                        start = Bound::Included(format!("{p}0"));
                        items.push(Entry::Prefix(p));
                        continue 'outer;
                    }
                    None => {
                        items.push(Entry::Object(Box::new(crate::info::packed_info(self, obj))))
                    }
                }
            }
            break;
        }
        Ok((items, None))
    }
}

impl PartialEq for Index {
    /// The same state: objects compare by what they are (their interned
    /// media ids may differ between two indexes built in different orders).
    fn eq(&self, other: &Index) -> bool {
        let layers_eq = self.layers.len() == other.layers.len()
            && self
                .layers
                .iter()
                .zip(other.layers.iter())
                .all(|((ia, a), (ib, b))| {
                    ia == ib
                        && (
                            &a.content_type,
                            &a.content_encoding,
                            a.key_rules,
                            a.created_ms,
                        ) == (
                            &b.content_type,
                            &b.content_encoding,
                            b.key_rules,
                            b.created_ms,
                        )
                        && a.objects.len() == b.objects.len()
                        && a.objects.iter().zip(b.objects.iter()).all(|(x, y)| {
                            x.key == y.key
                                && self.media.get(x.rec.media) == other.media.get(y.rec.media)
                                && x.rec.same_fields_but_media(y.rec)
                        })
                });
        layers_eq
            && self.uploads == other.uploads
            && self.completed == other.completed
            && self.extents == other.extents
            && self.live_by_segment == other.live_by_segment
            && self.max_id == other.max_id
    }
}

impl Eq for Index {}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod etag_tests {
    #[test]
    fn etag_is_crc_then_sequence_in_hex() {
        for (crc, seq) in [
            (0, 0),
            (0xdead_beef, 1),
            (u32::MAX, u64::MAX),
            (7, 0x0123_4567_89ab_cdef),
        ] {
            assert_eq!(super::etag(crc, seq), format!("{crc:08x}{seq:016x}"));
            assert_eq!(super::etag_seq(&super::etag(crc, seq), crc), Some(seq));
        }
    }
}
