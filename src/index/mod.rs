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
mod list;
mod media;
mod object;
mod objects;
mod packed;
mod uploads;

mod plan;

#[allow(unused_imports)] // used by the fuzz driver (feature `fuzzing`)
pub use plan::CopyPlan;
pub(crate) use restore::Restorer;
pub use snapshot::SnapshotStream;
mod restore;
mod snapshot;

pub use extents::{Extent, Extents, Location};
pub use list::{Cursor, Entry};
pub use object::Object;
pub(crate) use object::{etag, etag_seq};
pub use objects::{Extra, ObjRec, ObjRef, ObjectMap};
pub(crate) use packed::{
    decode_media, decode_objects, encode_media, encode_object, MediaDef, PackedObjects,
    MEDIA_ITEM_MIN, OBJECT_ITEM_MIN,
};
pub use uploads::{CompletedUpload, Outcome, Parts, Published, Retention, Upload, UploadState};

use crate::error::Reason;
use media::Media;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use crate::error::{not_found, Result};
use crate::log::format::Piece;
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

/// A layer and its objects, in byte-wise key order.
#[derive(Debug, Clone, Default)]
pub struct Layer {
    /// Its id, shared with what refers to it (completed uploads).
    pub name: Arc<str>,
    pub content_type: Option<String>,
    pub content_encoding: Option<String>,
    pub key_rules: KeyRules,
    /// When it was created (ms since the epoch); 0: not recorded.
    pub created_ms: u64,
    pub objects: ObjectMap,
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
    /// Live extents per segment.
    live_extents: HashMap<u64, u64>,
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
        // Only valid ids are ever created: one found needs no check.
        if let Some(l) = self.layers.get(id) {
            return Ok(l);
        }
        spec::validate_layer_id(id)?;
        Err(not_found!(
            Reason::UnknownLayer,
            "layer \"{id}\" does not exist"
        ))
    }

    /// Layer ids and configs.
    pub fn layers(&self) -> impl Iterator<Item = (&String, &Layer)> {
        self.layers.iter()
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

    /// A frozen view of the extent table: a copy-on-write clone (one
    /// pointer per chunk), to be walked with no lock held. Writes to the
    /// live table copy a chunk while the view shares it, so drop it soon.
    pub fn extents_view(&self) -> Extents {
        self.extents.clone()
    }

    /// Live bytes per segment.
    pub fn live_by_segment(&self) -> &HashMap<u64, u64> {
        &self.live_by_segment
    }

    /// Live extents per segment.
    pub fn live_extents(&self) -> &HashMap<u64, u64> {
        &self.live_extents
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
            && self.live_extents == other.live_extents
            && self.max_id == other.max_id
    }
}

impl Eq for Index {}

#[cfg(test)]
mod tests;
