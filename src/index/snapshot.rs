//! The whole index as one record (compaction's snapshot), and the index
//! rebuilt from one.

use std::sync::Arc;

use crate::error::{corrupt, Result};
use crate::index::apply::check_crc_digest;
use crate::index::media::Media;
use crate::index::packed::MediaDef;
use crate::index::{
    upload_name, CompletedUpload, Index, Layer, ObjRef, Object, ObjectMap, Outcome, Part, Parts,
    Published, Retention, Upload,
};
use crate::log::checkpoint::ExtentRun;
use crate::log::format::{ExtentDef, LayerSnap, ObjectSnap, PartSnap, Piece, Snapshot, UploadSnap};
use crate::spec;

/// A snapshot whose big parts (extents, objects) are produced one at a
/// time, so a checkpoint encodes them page by page instead of holding a
/// copy of the whole index.
pub struct SnapshotStream<'a> {
    pub max_id: u64,
    pub layers: Vec<LayerSnap>,
    pub uploads: Vec<UploadSnap>,
    pub extents: Box<dyn Iterator<Item = ExtentDef> + 'a>,
    pub objects: Box<dyn Iterator<Item = (String, ObjectSnap)> + 'a>,
    /// The interned media the packed objects use (checkpoints).
    pub media: Vec<MediaDef>,
    /// Objects packed as the index holds them, by layer, in key order,
    /// each with its media's id in `media` (checkpoints; a stream has
    /// either these or `objects`).
    pub packed: Box<dyn Iterator<Item = (&'a str, ObjRef<'a>, u32)> + 'a>,
}

impl From<Snapshot> for SnapshotStream<'static> {
    fn from(s: Snapshot) -> SnapshotStream<'static> {
        SnapshotStream {
            max_id: s.max_id,
            layers: s.layers,
            uploads: s.uploads,
            extents: Box::new(s.extents.into_iter()),
            objects: Box::new(s.objects.into_iter()),
            media: Vec::new(),
            packed: Box::new(std::iter::empty()),
        }
    }
}

impl Index {
    /// The whole state, item by item (compaction writes
    /// it). Completed uploads no longer remembered at `retention` are left
    /// out; a remembered one is written as its tombstone: no parts, its
    /// result, the result's key, and its completion time as start and last
    /// activity (the rest of the upload is not kept).
    pub fn snapshot_stream(&self, retention: Retention) -> SnapshotStream<'_> {
        // In id order: the table is kept so.
        let extents = self.extents.iter().map(|(id, e)| ExtentDef {
            id,
            segment: e.segment,
            offset: e.offset,
            len: e.len,
            block_crcs: e.block_crcs.to_vec(),
        });
        let open = self.uploads.iter().map(|(id, u)| UploadSnap {
            id: *id,
            layer: u.layer.clone(),
            key: u.key.clone(),
            content_type: u.content_type.clone(),
            content_encoding: u.content_encoding.clone(),
            started_ms: u.started_ms,
            last_activity_ms: u.last_activity_ms,
            completed: false,
            parts: u
                .parts
                .values()
                .map(|p| PartSnap {
                    number: p.number,
                    id: p.id,
                    size: p.size,
                    crc32c: p.crc32c,
                    time_ms: p.time_ms,
                    pieces: p.pieces.clone(),
                    digest: p.digest.clone(),
                })
                .collect(),
            metadata: u.metadata.clone(),
            result: None,
        });
        let completed = self
            .completed
            .iter()
            .filter(|(_, c)| retention.remembers(c.completed_ms))
            .map(|(id, c)| UploadSnap {
                id: *id,
                layer: c.layer.to_string(),
                key: c.outcome.key().to_string(),
                started_ms: c.completed_ms,
                last_activity_ms: c.completed_ms,
                completed: true,
                result: match &c.outcome {
                    Outcome::Published(o) => Some(ObjectSnap::from(&o.object())),
                    Outcome::Unrecorded { .. } => None,
                },
                ..UploadSnap::default()
            });
        let mut uploads: Vec<UploadSnap> = open.chain(completed).collect();
        uploads.sort_by_key(|u| u.id);
        let layers = self
            .layers
            .iter()
            .map(|(id, l)| LayerSnap {
                id: id.clone(),
                content_type: l.content_type.clone(),
                content_encoding: l.content_encoding.clone(),
                key_rules: l.key_rules,
                created_ms: l.created_ms,
            })
            .collect();
        let objects = self.layers.iter().flat_map(move |(id, l)| {
            l.objects
                .iter()
                .map(move |o| (id.clone(), ObjectSnap::from(&self.materialize(o))))
        });
        SnapshotStream {
            max_id: self.max_id,
            layers,
            uploads,
            extents: Box::new(extents),
            objects: Box::new(objects),
            media: Vec::new(),
            packed: Box::new(std::iter::empty()),
        }
    }

    /// [`Index::snapshot_stream`] with the objects packed as this index
    /// holds them (what a checkpoint writes: no object is materialised).
    pub fn checkpoint_stream(&self, retention: Retention) -> SnapshotStream<'_> {
        let mut s = self.snapshot_stream(retention);
        s.objects = Box::new(std::iter::empty());
        // Media renumbered 0.. (the index's ids may have gaps).
        let mut dense = Vec::new();
        for (n, (id, ct, ce)) in self.media.iter().enumerate() {
            if dense.len() <= id as usize {
                dense.resize(id as usize + 1, 0);
            }
            dense[id as usize] = n as u32;
            s.media.push(MediaDef {
                id: n as u32,
                content_type: ct.to_string(),
                content_encoding: ce.map(str::to_string),
            });
        }
        s.packed = Box::new(self.layers.iter().flat_map(move |(id, l)| {
            let dense = dense.clone();
            l.objects.iter().map(move |o| {
                let media = dense.get(o.rec.media as usize).copied().unwrap_or(u32::MAX);
                (id.as_str(), o, media)
            })
        }));
        s
    }

    /// The whole state as one record's worth of data (the snapshot
    /// record; checkpoints write [`Index::snapshot_stream`] in pages).
    /// Completed uploads no longer remembered at `retention` are left out.
    #[cfg_attr(not(any(test, feature = "fuzzing")), allow(dead_code))]
    pub fn snapshot(&self, retention: Retention) -> Snapshot {
        let s = self.snapshot_stream(retention);
        Snapshot {
            legacy: false,
            max_id: s.max_id,
            layers: s.layers,
            uploads: s.uploads,
            extents: s.extents.collect(),
            objects: s.objects.collect(),
        }
    }

    /// Rebuilds an index from a snapshot, recounting references; `Corrupt`
    /// if it is inconsistent.
    pub fn restore(snap: &Snapshot) -> Result<Index> {
        let ix = Index::restore_items(snap, &[])?;
        ix.check_all_referenced()?;
        Ok(ix)
    }

    pub(super) fn check_all_referenced(&self) -> Result<()> {
        match self.extents.unreferenced() {
            Some(id) => Err(corrupt!("snapshot extent {id} is referenced by nothing")),
            None => Ok(()),
        }
    }

    /// [`Index::restore`] but for the check that every extent is
    /// referenced; the extents are `snap`'s, then those of `more`.
    pub(super) fn restore_items(snap: &Snapshot, more: &[ExtentRun]) -> Result<Index> {
        let mut ix = Index {
            max_id: snap.max_id,
            ..Index::default()
        };
        ix.restore_layers(&snap.layers)?;
        ix.restore_rest(snap, more)?;
        Ok(ix)
    }

    /// The layers of a snapshot, into an index that has none yet.
    pub(super) fn restore_layers(&mut self, layers: &[LayerSnap]) -> Result<()> {
        let ix = self;
        // What no sequence of records could build is corrupt too: names and
        // part numbers the SPEC forbids, a part number listed twice.
        let rule = |r: Result<()>| r.map_err(|e| corrupt!("snapshot breaks a rule: {e}"));
        for LayerSnap {
            id,
            content_type: ct,
            content_encoding: ce,
            key_rules,
            created_ms,
        } in layers
        {
            rule(spec::validate_layer_id(id))?;
            if ix.layers.contains_key(id) {
                return Err(corrupt!("snapshot lists layer \"{id}\" twice"));
            }
            ix.layers.insert(
                id.clone(),
                Layer {
                    name: id.as_str().into(),
                    content_type: ct.clone(),
                    content_encoding: ce.clone(),
                    key_rules: *key_rules,
                    created_ms: *created_ms,
                    objects: Default::default(),
                },
            );
        }
        Ok(())
    }

    /// The rest of [`Index::restore_items`] after the layers: extents
    /// (`snap`'s, then those of `more`), uploads, objects.
    pub(super) fn restore_rest(&mut self, snap: &Snapshot, more: &[ExtentRun]) -> Result<()> {
        let ix = self;
        let rule = |r: Result<()>| r.map_err(|e| corrupt!("snapshot breaks a rule: {e}"));
        for e in &snap.extents {
            ix.define_checked([e.id, e.segment, e.offset, e.len], &e.block_crcs)?;
        }
        for (fields, crcs) in more.iter().flat_map(ExtentRun::iter) {
            ix.define_checked(fields, crcs)?;
        }
        let check = |ix: &Index, pieces: &[Piece], size: u64| -> Result<()> {
            ix.check_pieces(None, pieces, size)
        };
        // Completed uploads' content types and encodings, each pair's
        // strings shared by all the tombstones that have it.
        let mut media = Media::default();
        for u in &snap.uploads {
            let rules = match ix.layers.get(&u.layer) {
                Some(l) if !ix.uploads.contains_key(&u.id) && !ix.completed.contains_key(&u.id) => {
                    l.key_rules
                }
                _ => {
                    return Err(corrupt!(
                        "snapshot upload {} is in unknown layer \"{}\" or listed twice",
                        upload_name(&u.id),
                        u.layer
                    ))
                }
            };
            rule(rules.validate(&u.key))?;
            rule(spec::validate_metadata(&u.metadata))?;
            if u.completed {
                if !u.parts.is_empty() {
                    return Err(corrupt!(
                        "snapshot upload {} is completed but lists parts",
                        upload_name(&u.id)
                    ));
                }
                // Its completion time: its result's (the completion
                // record's time), else (no result: a version-1 snapshot)
                // its last activity, which the completion set.
                let (outcome, completed_ms) = match &u.result {
                    None => (
                        Outcome::Unrecorded {
                            key: u.key.as_str().into(),
                        },
                        u.last_activity_ms,
                    ),
                    Some(o) if o.key == u.key && o.pieces.is_empty() => {
                        rule(spec::validate_metadata(&o.metadata))?;
                        check_part_sizes(o)?;
                        let id = media.retain(&o.content_type, o.content_encoding.as_deref());
                        let pair =
                            media.retained_pair(id, &o.content_type, o.content_encoding.as_deref());
                        (
                            Outcome::Published(Box::new(Published::new(&Object::from(o), pair))),
                            o.last_modified_ms,
                        )
                    }
                    Some(_) => {
                        return Err(corrupt!(
                            "snapshot upload {} has a result for another key, or with pieces",
                            upload_name(&u.id)
                        ))
                    }
                };
                ix.completed.insert(
                    u.id,
                    CompletedUpload {
                        layer: ix
                            .layers
                            .get(&u.layer)
                            .map_or_else(|| u.layer.as_str().into(), |l| Arc::clone(&l.name)),
                        completed_ms,
                        outcome,
                    },
                );
                continue;
            }
            if u.result.is_some() {
                return Err(corrupt!(
                    "snapshot upload {} has a result but is open",
                    upload_name(&u.id)
                ));
            }
            let mut parts = Parts::with_capacity(u.parts.len());
            for p in &u.parts {
                rule(spec::validate_part_number(p.number))?;
                if p.size > spec::MAX_PART_SIZE || parts.contains_key(&p.number) {
                    return Err(corrupt!(
                        "snapshot upload {} part {}: over the size limit or listed twice",
                        upload_name(&u.id),
                        p.number
                    ));
                }
                check(ix, &p.pieces, p.size)?;
                check_crc_digest(p.digest.as_ref(), p.crc32c)?;
                ix.retain(&p.pieces);
                parts.insert(
                    p.number,
                    Part {
                        number: p.number,
                        id: p.id,
                        size: p.size,
                        crc32c: p.crc32c,
                        pieces: p.pieces.clone(),
                        time_ms: p.time_ms,
                        digest: p.digest.clone(),
                    },
                );
            }
            ix.uploads.insert(
                u.id,
                Upload {
                    layer: u.layer.clone(),
                    key: u.key.clone(),
                    content_type: u.content_type.clone(),
                    content_encoding: u.content_encoding.clone(),
                    started_ms: u.started_ms,
                    last_activity_ms: u.last_activity_ms,
                    parts,
                    metadata: u.metadata.clone(),
                },
            );
        }
        for (layer, o) in &snap.objects {
            let l = ix
                .layers
                .get(layer)
                .ok_or_else(|| corrupt!("snapshot object in unknown layer \"{layer}\""))?;
            rule(l.key_rules.validate(&o.key))?;
            rule(spec::validate_metadata(&o.metadata))?;
            check(ix, &o.pieces, o.size)?;
            check_crc_digest(o.digest.as_ref(), o.crc32c)?;
            check_part_sizes(o)?;
            ix.retain(&o.pieces);
            let object = Object::from(o);
            let rec = ix.pack(&object);
            let l = ix
                .layers
                .get_mut(layer)
                .ok_or_else(|| corrupt!("snapshot object in unknown layer \"{layer}\""))?;
            if l.objects.insert(&o.key, rec).is_some() {
                return Err(corrupt!("snapshot lists key \"{}\" twice", o.key));
            }
        }
        Ok(())
    }

    /// Rebuilds an index from a checkpoint's decoded pages, in order (see
    /// [`crate::index::Restorer`], which takes them in batches).
    #[cfg(any(test, feature = "fuzzing"))]
    pub(crate) fn restore_checkpoint(
        max_id: u64,
        pages: Vec<crate::log::checkpoint::Page>,
    ) -> Result<Index> {
        let mut r = crate::index::Restorer::new(max_id);
        r.push(pages)?;
        r.finish()
    }

    /// This index written as a checkpoint's pages of about `page_bytes`
    /// (in memory) and restored from them (tests and fuzzing).
    #[cfg(any(test, feature = "fuzzing"))]
    pub fn checkpoint_round_trip(&self, page_bytes: usize) -> Result<Index> {
        Index::restore_checkpoint(self.max_id, self.checkpoint_pages(page_bytes)?)
    }

    /// This index written as a checkpoint's pages of about `page_bytes`
    /// (in memory), decoded.
    #[cfg(any(test, feature = "fuzzing"))]
    pub(crate) fn checkpoint_pages(
        &self,
        page_bytes: usize,
    ) -> Result<Vec<crate::log::checkpoint::Page>> {
        let (base, stored) = self.checkpoint_page_bytes(page_bytes)?;
        stored
            .iter()
            .enumerate()
            .map(|(i, b)| crate::log::checkpoint::decode_page(b, base, i as u32))
            .collect()
    }

    /// This index written as a checkpoint's pages of about `page_bytes`, in
    /// memory: their base and bytes.
    #[cfg(any(test, feature = "fuzzing"))]
    pub(crate) fn checkpoint_page_bytes(
        &self,
        page_bytes: usize,
    ) -> Result<(crate::log::checkpoint::Pos, Vec<Vec<u8>>)> {
        use crate::log::checkpoint::{write_pages, PageRef};
        let base = (1, 64);
        let mut stored: Vec<Vec<u8>> = Vec::new();
        let mut emit = |b: &[u8]| {
            stored.push(b.to_vec());
            Ok(PageRef {
                segment: 1,
                offset: 64 + stored.len() as u64,
                len: b.len() as u64,
                crc32c: 0,
            })
        };
        write_pages(
            self.checkpoint_stream(Retention::forever()),
            base,
            page_bytes,
            &mut emit,
        )?;
        Ok((base, stored))
    }

    pub(super) fn set_objects(&mut self, layer: &str, objects: ObjectMap) -> Result<()> {
        match self.layers.get_mut(layer) {
            Some(l) => {
                l.objects = objects;
                Ok(())
            }
            None => Err(corrupt!("checkpoint object in unknown layer \"{layer}\"")),
        }
    }
}

/// A multipart object's part sizes number its parts and add up to its size.
fn check_part_sizes(o: &ObjectSnap) -> Result<()> {
    let sum = o.part_sizes.iter().try_fold(0u64, |a, n| a.checked_add(*n));
    if !o.part_sizes.is_empty()
        && (o.part_sizes.len() != o.part_count as usize || sum != Some(o.size))
    {
        return Err(corrupt!(
            "snapshot object \"{}\": {} part sizes for {} parts of {} bytes",
            o.key,
            o.part_sizes.len(),
            o.part_count,
            o.size
        ));
    }
    Ok(())
}
