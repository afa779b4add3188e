//! The whole index as one record (compaction's snapshot), and the index
//! rebuilt from one.

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::error::{corrupt, Result};
use crate::index::apply::check_crc_digest;
use crate::index::{upload_name, Index, Layer, Object, Part, Upload, UploadState};
use crate::log::format::{ExtentDef, LayerSnap, ObjectSnap, PartSnap, Piece, Snapshot, UploadSnap};
use crate::spec;

impl Index {
    /// The whole state as one record's worth of data (compaction writes it).
    pub fn snapshot(&self) -> Snapshot {
        let mut extents: Vec<ExtentDef> = self
            .extents
            .iter()
            .map(|(id, e)| ExtentDef {
                id,
                segment: e.segment,
                offset: e.offset,
                len: e.len,
                block_crcs: e.block_crcs.to_vec(),
            })
            .collect();
        extents.sort_by_key(|e| e.id);
        let mut uploads: Vec<UploadSnap> = self
            .uploads
            .iter()
            .map(|(id, u)| UploadSnap {
                id: *id,
                layer: u.layer.clone(),
                key: u.key.clone(),
                content_type: u.content_type.clone(),
                content_encoding: u.content_encoding.clone(),
                started_ms: u.started_ms,
                last_activity_ms: u.last_activity_ms,
                completed: matches!(u.state, UploadState::Completed),
                parts: match &u.state {
                    UploadState::Open(parts) => parts
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
                    UploadState::Completed => Vec::new(),
                },
                metadata: u.metadata.clone(),
                result: match u.state {
                    UploadState::Completed => u.result.as_deref().map(ObjectSnap::from),
                    UploadState::Open(_) => None,
                },
            })
            .collect();
        uploads.sort_by_key(|u| u.id);
        let mut layers = Vec::new();
        let mut objects = Vec::new();
        for (id, l) in &self.layers {
            layers.push(LayerSnap {
                id: id.clone(),
                content_type: l.content_type.clone(),
                content_encoding: l.content_encoding.clone(),
                key_rules: l.key_rules,
                created_ms: l.created_ms,
            });
            for o in l.objects.iter() {
                objects.push((id.clone(), ObjectSnap::from(&self.materialize(o))));
            }
        }
        Snapshot {
            legacy: false,
            max_id: self.max_id,
            layers,
            extents,
            uploads,
            objects,
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
                Some(l) if !ix.uploads.contains_key(&u.id) => l.key_rules,
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
            let state = if u.completed {
                if !u.parts.is_empty() {
                    return Err(corrupt!(
                        "snapshot upload {} is completed but lists parts",
                        upload_name(&u.id)
                    ));
                }
                UploadState::Completed
            } else {
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
                UploadState::Open(parts)
            };
            let result = match (&u.result, &state) {
                (None, _) => None,
                (Some(o), UploadState::Completed) if o.key == u.key && o.pieces.is_empty() => {
                    rule(spec::validate_metadata(&o.metadata))?;
                    check_part_sizes(o)?;
                    Some(Arc::new(Object::from(o)))
                }
                (Some(_), _) => {
                    return Err(corrupt!(
                        "snapshot upload {} has a result but is open, or a result for another key",
                        upload_name(&u.id)
                    ))
                }
            };
            ix.uploads.insert(
                u.id,
                Upload {
                    layer: u.layer.clone(),
                    key: u.key.clone(),
                    content_type: u.content_type.clone(),
                    content_encoding: u.content_encoding.clone(),
                    started_ms: u.started_ms,
                    last_activity_ms: u.last_activity_ms,
                    state,
                    metadata: u.metadata.clone(),
                    result,
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
        if let Some((id, _)) = ix.extents.iter().find(|(_, e)| e.refs == 0) {
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
