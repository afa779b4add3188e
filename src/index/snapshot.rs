//! The whole index as one record (compaction's snapshot), and the index
//! rebuilt from one.

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::error::{corrupt, Result};
use crate::index::apply::check_crc_digest;
use crate::index::{
    upload_name, CompletedUpload, Index, Layer, Object, Outcome, Part, Retention, Upload,
};
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
}

impl From<Snapshot> for SnapshotStream<'static> {
    fn from(s: Snapshot) -> SnapshotStream<'static> {
        SnapshotStream {
            max_id: s.max_id,
            layers: s.layers,
            uploads: s.uploads,
            extents: Box::new(s.extents.into_iter()),
            objects: Box::new(s.objects.into_iter()),
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
                layer: c.layer.clone(),
                key: c.outcome.key().to_string(),
                started_ms: c.completed_ms,
                last_activity_ms: c.completed_ms,
                completed: true,
                result: match &c.outcome {
                    Outcome::Published(o) => Some(ObjectSnap::from(&**o)),
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
        }
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
        let mut ix = Index {
            max_id: snap.max_id,
            ..Index::default()
        };
        // What no sequence of records could build is corrupt too: names and
        // part numbers the SPEC forbids, a part number listed twice.
        let rule = |r: Result<()>| r.map_err(|e| corrupt!("snapshot breaks a rule: {e}"));
        for LayerSnap {
            id,
            content_type: ct,
            content_encoding: ce,
            key_rules,
            created_ms,
        } in &snap.layers
        {
            rule(spec::validate_layer_id(id))?;
            if ix.layers.contains_key(id) {
                return Err(corrupt!("snapshot lists layer \"{id}\" twice"));
            }
            ix.layers.insert(
                id.clone(),
                Layer {
                    content_type: ct.clone(),
                    content_encoding: ce.clone(),
                    key_rules: *key_rules,
                    created_ms: *created_ms,
                    objects: Default::default(),
                },
            );
        }
        for e in &snap.extents {
            ix.check_pieces(Some(e), &[], 0)?;
            ix.define(e.clone());
        }
        let check = |ix: &Index, pieces: &[Piece], size: u64| -> Result<()> {
            ix.check_pieces(None, pieces, size)
        };
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
                        (
                            Outcome::Published(Arc::new(Object::from(o))),
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
                        layer: u.layer.clone(),
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
            let mut parts = BTreeMap::new();
            for p in &u.parts {
                rule(spec::validate_part_number(p.number))?;
                if p.size > spec::MAX_PART_SIZE || parts.contains_key(&p.number) {
                    return Err(corrupt!(
                        "snapshot upload {} part {}: over the size limit or listed twice",
                        upload_name(&u.id),
                        p.number
                    ));
                }
                check(&ix, &p.pieces, p.size)?;
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
            check(&ix, &o.pieces, o.size)?;
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
        if let Some(id) = ix.extents.unreferenced() {
            return Err(corrupt!("snapshot extent {id} is referenced by nothing"));
        }
        Ok(ix)
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
