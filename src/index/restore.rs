//! Restoring an index from a checkpoint's decoded pages, a batch of pages
//! at a time (see [`Restorer`]).

use std::collections::{HashMap, HashSet};

use rayon::prelude::*;

use crate::error::{corrupt, Result};
use crate::index::apply::check_crc_digest;
use crate::index::extents::EXACT;
use crate::index::objects::Builder;
use crate::index::packed::{MediaDef, PackedObjects};
use crate::index::{Index, ObjRec};
use crate::log::checkpoint::Page;
use crate::log::format::Snapshot;
use crate::spec;
use crate::spec::KeyRules;

/// Rebuilds an index from a checkpoint's decoded pages, taken in order in
/// batches of any size: the caller decodes a batch, hands it over and
/// drops nothing it still needs, so the decoded form of the whole
/// checkpoint is never held at once (at 1M objects it was ~80 MB, left to
/// the allocator after open). The packed form (media and packed objects)
/// is restored in bulk: checks of a batch's pages in parallel, every
/// extent reference taken at the end in one pass over the extent table in
/// id order, each layer's map built whole from its pages.
pub(crate) struct Restorer {
    items: Snapshot,
    media: Vec<MediaDef>,
    /// Section of the last page (pages come in section order).
    last: u8,
    /// From the first page of extents on: the index with the layers and
    /// the extents so far (each page of extents goes in as it comes).
    early: Option<Index>,
    /// Once the first packed page came: the index of everything before,
    /// and the packed objects' state.
    packed: Option<(Index, Packed)>,
}

/// The state of restoring packed objects.
struct Packed {
    /// The checkpoint's media ids, mapped to the index's (each holding one
    /// reference until the end), and the objects using each.
    remap: Vec<Option<u32>>,
    uses: Vec<u64>,
    /// Each layer's key rules.
    rules: HashMap<String, KeyRules>,
    /// Every extent reference: (extent, bytes it must hold, with
    /// `extents::EXACT` set when it must be exactly that long).
    refs: Vec<(u64, u64)>,
    /// Layers whose map is built.
    done: HashSet<String>,
    /// The layer whose pages are coming, and its map so far.
    current: Option<(String, Builder)>,
}

impl Restorer {
    pub(crate) fn new(max_id: u64) -> Restorer {
        Restorer {
            items: Snapshot {
                legacy: false,
                max_id,
                ..Snapshot::default()
            },
            media: Vec::new(),
            last: 0,
            early: None,
            packed: None,
        }
    }

    /// The next pages, in order.
    pub(crate) fn push(&mut self, pages: Vec<Page>) -> Result<()> {
        let mut objects = Vec::new();
        for page in pages {
            let s = page.section();
            if s < self.last {
                return Err(corrupt!(
                    "checkpoint section {s} comes after section {}",
                    self.last
                ));
            }
            self.last = s;
            match page {
                Page::Layers(mut v) => self.items.layers.append(&mut v),
                Page::Extents(run) => {
                    let ix = match &mut self.early {
                        Some(ix) => ix,
                        None => {
                            let mut ix = Index {
                                max_id: self.items.max_id,
                                ..Index::default()
                            };
                            ix.restore_layers(&self.items.layers)?;
                            self.early.insert(ix)
                        }
                    };
                    for (fields, crcs) in run.iter() {
                        ix.define_checked(fields, crcs)?;
                    }
                }
                Page::Uploads(mut v) => self.items.uploads.append(&mut v),
                Page::Objects(mut v) => self.items.objects.append(&mut v),
                Page::Media(mut v) => self.media.append(&mut v),
                Page::Packed(p) => objects.push(p),
            }
        }
        if objects.is_empty() {
            return Ok(());
        }
        if self.packed.is_none() {
            self.packed = Some(self.start_packed()?);
        }
        match self.packed.as_mut() {
            Some((ix, packed)) => packed.add(ix, objects),
            None => Ok(()),
        }
    }

    /// The index of everything before the packed objects, and the state
    /// to restore them.
    fn start_packed(&mut self) -> Result<(Index, Packed)> {
        if !self.items.objects.is_empty() {
            return Err(corrupt!("checkpoint holds objects in two forms"));
        }
        let mut ix = self.restore_items()?;
        let packed = Packed::new(&mut ix, std::mem::take(&mut self.media))?;
        Ok((ix, packed))
    }

    /// The index of the pages so far but packed objects (their memory is
    /// freed on another thread: a million small allocations take a while).
    fn restore_items(&mut self) -> Result<Index> {
        let items = std::mem::take(&mut self.items);
        let ix = match self.early.take() {
            Some(mut ix) => ix.restore_rest(&items, &[]).map(|()| ix),
            None => Index::restore_items(&items, &[]),
        };
        let _ = std::thread::Builder::new()
            .name("partstore-free".into())
            .spawn(move || drop(items));
        ix
    }

    /// The restored index.
    pub(crate) fn finish(mut self) -> Result<Index> {
        let ix = match self.packed.take() {
            Some((mut ix, packed)) => {
                packed.finish(&mut ix)?;
                ix
            }
            None => {
                if !self.media.is_empty() && !self.items.objects.is_empty() {
                    return Err(corrupt!("checkpoint holds objects in two forms"));
                }
                let mut ix = self.restore_items()?;
                // Media listed with no packed object: interned, then let go.
                Packed::new(&mut ix, std::mem::take(&mut self.media))?.finish(&mut ix)?;
                ix
            }
        };
        ix.check_all_referenced()?;
        Ok(ix)
    }
}

impl Packed {
    fn new(ix: &mut Index, media: Vec<MediaDef>) -> Result<Packed> {
        // Numbered densely by the writer.
        let slots = media.len();
        if let Some(m) = media.iter().find(|m| m.id as usize >= slots) {
            return Err(corrupt!(
                "checkpoint media id {} of {slots} is out of range",
                m.id
            ));
        }
        let mut remap: Vec<Option<u32>> = vec![None; slots];
        for m in &media {
            let id = ix
                .media
                .retain(&m.content_type, m.content_encoding.as_deref());
            match remap.get_mut(m.id as usize) {
                Some(slot @ None) => *slot = Some(id),
                _ => return Err(corrupt!("checkpoint lists media {} twice", m.id)),
            }
        }
        Ok(Packed {
            uses: vec![0u64; slots],
            remap,
            rules: ix
                .layers
                .iter()
                .map(|(id, l)| (id.clone(), l.key_rules))
                .collect(),
            refs: Vec::new(),
            done: HashSet::new(),
            current: None,
        })
    }

    /// A batch of pages: checked in parallel, their extent references
    /// noted, their objects added to their layer's map.
    fn add(&mut self, ix: &mut Index, pages: Vec<PackedObjects>) -> Result<()> {
        {
            let (rules, remap) = (&self.rules, &self.remap);
            pages
                .par_iter()
                .try_for_each(|p| check_packed(p, rules, remap))?;
        }
        for r in pages.iter().flat_map(|p| p.recs.iter()) {
            match (r.extent, r.extra.as_deref()) {
                // (A piece ending at or past 2^63 asks for 2^63 - 1 bytes,
                // which no extent holds: refused.)
                (0, Some(x)) => self.refs.extend(
                    x.pieces
                        .iter()
                        .map(|p| (p.extent, p.offset.saturating_add(p.len).min(EXACT - 1))),
                ),
                (0, None) => {}
                (e, Some(x)) => self.refs.push((e, x.size | EXACT)),
                (e, None) => self.refs.push((e, 1)),
            }
        }
        for p in pages {
            if self.current.as_ref().is_none_or(|(l, _)| *l != p.layer) {
                if let Some((l, b)) = self.current.take() {
                    ix.set_objects(&l, b.finish())?;
                    self.done.insert(l);
                }
                if self.done.contains(&p.layer) {
                    return Err(corrupt!(
                        "checkpoint objects of layer \"{}\" are not in one run",
                        p.layer
                    ));
                }
                self.current = Some((p.layer.clone(), Builder::default()));
            }
            let Some((_, b)) = self.current.as_mut() else {
                continue;
            };
            let mut start = 0;
            for (rec, end) in p.recs.into_iter().zip(p.ends) {
                let key = p.arena.get(start..end as usize).unwrap_or("");
                start = end as usize;
                let Some((Some(media), n)) = self
                    .remap
                    .get(rec.media as usize)
                    .zip(self.uses.get_mut(rec.media as usize))
                else {
                    return Err(corrupt!(
                        "checkpoint object has unknown media {}",
                        rec.media
                    ));
                };
                *n += 1;
                let media = *media;
                if !b.push(key, ObjRec { media, ..rec }) {
                    return Err(corrupt!(
                        "checkpoint lists key \"{key}\" twice or out of order"
                    ));
                }
            }
        }
        Ok(())
    }

    /// The last layer's map; every reference taken, in extent order, in
    /// one pass; the media's references.
    fn finish(mut self, ix: &mut Index) -> Result<()> {
        if let Some((l, b)) = self.current.take() {
            ix.set_objects(&l, b.finish())?;
        }
        let mut refs = std::mem::take(&mut self.refs);
        refs.par_sort_unstable_by_key(|r| r.0);
        // Live bytes and extents by segment, added up per run of one
        // segment.
        let mut run = (0, 0, 0);
        let (live, count) = (&mut ix.live_by_segment, &mut ix.live_extents);
        let mut add = |(seg, bytes, n): (u64, u64, u64)| {
            if n > 0 {
                if bytes > 0 {
                    *live.entry(seg).or_default() += bytes;
                }
                *count.entry(seg).or_default() += n;
            }
        };
        let taken = ix.extents.retain_sorted(&refs, |loc| {
            if loc.segment != run.0 {
                add(run);
                run = (loc.segment, 0, 0);
            }
            run.1 += loc.len;
            run.2 += 1;
        });
        add(run);
        taken.map_err(|id| {
            corrupt!("checkpoint object refers to extent {id}: unknown, or not of its size")
        })?;
        drop(refs);
        for (id, n) in self.remap.into_iter().zip(self.uses) {
            if let Some(id) = id {
                ix.media.retain_n(id, n);
                ix.media.release(id);
            }
        }
        Ok(())
    }
}

/// What can be checked of a page of packed objects on its own: keys by
/// their layer's rules, media known, fields consistent.
fn check_packed(
    p: &PackedObjects,
    rules: &HashMap<String, KeyRules>,
    media: &[Option<u32>],
) -> Result<()> {
    let rule = |r: Result<()>| r.map_err(|e| corrupt!("checkpoint breaks a rule: {e}"));
    let Some(rules) = rules.get(p.layer.as_str()) else {
        return Err(corrupt!(
            "checkpoint object in unknown layer \"{}\"",
            p.layer
        ));
    };
    for (key, r) in p.iter() {
        rule(rules.validate(key))?;
        if media.get(r.media as usize).is_none_or(|m| m.is_none()) {
            return Err(corrupt!(
                "checkpoint object \"{key}\" has unknown media {}",
                r.media
            ));
        }
        let Some(x) = r.extra.as_deref() else {
            continue;
        };
        rule(spec::validate_metadata(&x.metadata))?;
        check_crc_digest(x.digest.as_ref(), r.crc32c)?;
        let total = x.pieces.iter().try_fold(0u64, |a, p| {
            (p.len > 0)
                .then(|| p.offset.checked_add(p.len))
                .flatten()
                .and_then(|_| a.checked_add(p.len))
        });
        let pieces_ok = match r.extent {
            0 => total == Some(x.size),
            _ => x.pieces.is_empty(),
        };
        let sum = x.part_sizes.iter().try_fold(0u64, |a, n| a.checked_add(*n));
        let parts_ok = x.part_sizes.is_empty()
            || (x.part_sizes.len() == usize::from(r.part_count()) && sum == Some(x.size));
        if !pieces_ok || !parts_ok {
            return Err(corrupt!(
                "checkpoint object \"{key}\": its pieces, part sizes and size of {} bytes disagree",
                x.size
            ));
        }
    }
    Ok(())
}
