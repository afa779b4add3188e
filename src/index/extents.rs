//! The extent table, packed: 32 bytes per extent of one small block, in id
//! order in copy-on-write chunks (a clone costs one pointer per chunk).
//! Extents of several blocks, larger than [`INLINE_VERIFY_MAX`], or with a
//! location that does not pack, keep their block CRCs and verified-block
//! bitmap in a second table beside it.

use std::sync::Arc;

use crate::index::Verified;

/// In a reference of [`Extents::retain_sorted`], the bit of the length
/// saying the extent must be exactly that long (not at least).
pub const EXACT: u64 = 1 << 63;

/// Most entries per chunk.
const CHUNK_MAX: usize = 256;

/// A chunk that falls below this many entries is merged with a neighbour
/// the two fit in one (see `objects::CHUNK_MIN`).
const CHUNK_MIN: usize = CHUNK_MAX / 4;

/// Largest extent whose one block CRC is kept inline. A read of a larger
/// extent remembers which blocks it verified (the bitmap lives in the side
/// table); a read of a smaller one checks its few bytes again.
pub const INLINE_VERIFY_MAX: u64 = 64 << 10;

/// Which pair of chunks to merge for a small chunk `ci` (the left one's
/// index): it and its next neighbour, or else its previous one, when the
/// two hold at most three quarters of `max` (room left for inserts: a
/// merge is not undone by the next split). `len(i)` is chunk `i`'s length,
/// `usize::MAX` past the last.
pub(super) fn merge_partner(ci: usize, max: usize, len: impl Fn(usize) -> usize) -> Option<usize> {
    let fits = |a: usize, b: usize| a.saturating_add(b) <= max * 3 / 4;
    if fits(len(ci), len(ci + 1)) {
        Some(ci)
    } else if ci > 0 && fits(len(ci - 1), len(ci)) {
        Some(ci - 1)
    } else {
        None
    }
}

/// Ids in ascending order, each with a value, in shared chunks.
#[derive(Debug, Clone)]
pub struct IdMap<T: Clone> {
    chunks: Vec<Arc<Vec<(u64, T)>>>,
    /// Each chunk's last id, side by side (the search over chunks reads
    /// only these).
    lasts: Vec<u64>,
    len: usize,
}

impl<T: Clone> Default for IdMap<T> {
    fn default() -> IdMap<T> {
        IdMap {
            chunks: Vec::new(),
            lasts: Vec::new(),
            len: 0,
        }
    }
}

impl<T: Clone> IdMap<T> {
    #[allow(dead_code)]
    pub fn len(&self) -> usize {
        self.len
    }

    fn chunk_for(&self, id: u64) -> usize {
        let i = self.lasts.partition_point(|last| *last < id);
        i.min(self.chunks.len().saturating_sub(1))
    }

    fn relast(&mut self, i: usize) {
        if let (Some(c), Some(l)) = (self.chunks.get(i), self.lasts.get_mut(i)) {
            *l = c.last().map_or(0, |(id, _)| *id);
        }
    }

    pub fn get(&self, id: u64) -> Option<&T> {
        if self.lasts.last().is_some_and(|l| id > *l) {
            return None;
        }
        let c = self.chunks.get(self.chunk_for(id))?;
        let i = c.binary_search_by_key(&id, |(k, _)| *k).ok()?;
        c.get(i).map(|(_, v)| v)
    }

    pub fn contains(&self, id: u64) -> bool {
        self.get(id).is_some()
    }

    pub fn get_mut(&mut self, id: u64) -> Option<&mut T> {
        let ci = self.chunk_for(id);
        let i = self
            .chunks
            .get(ci)?
            .binary_search_by_key(&id, |(k, _)| *k)
            .ok()?;
        Arc::make_mut(&mut self.chunks[ci])
            .get_mut(i)
            .map(|(_, v)| v)
    }

    pub fn insert(&mut self, id: u64, v: T) -> Option<T> {
        if self.chunks.is_empty() {
            self.chunks.push(Arc::new(Vec::new()));
            self.lasts.push(0);
        }
        let after_all = self.len > 0 && self.lasts.last().is_some_and(|l| id > *l);
        let ci = match after_all {
            // Ids mostly arrive in order: no search.
            true => self.chunks.len() - 1,
            false => self.chunk_for(id),
        };
        let last_chunk = ci + 1 == self.chunks.len();
        let c = Arc::make_mut(&mut self.chunks[ci]);
        let pos = match after_all {
            true => c.len(),
            false => match c.binary_search_by_key(&id, |(k, _)| *k) {
                Ok(i) => return Some(std::mem::replace(&mut c[i].1, v)),
                Err(i) => i,
            },
        };
        if c.len() == c.capacity() {
            c.reserve_exact((c.len() / 4).clamp(4, CHUNK_MAX));
        }
        c.insert(pos, (id, v));
        self.len += 1;
        if c.len() > CHUNK_MAX {
            // Ids mostly arrive in order: the last chunk splits off only
            // its newest entry, so chunks fill whole.
            let at = if last_chunk && pos + 1 == c.len() {
                c.len() - 1
            } else {
                c.len() / 2
            };
            let right: Vec<(u64, T)> = c.split_off(at);
            c.shrink_to_fit();
            self.chunks.insert(ci + 1, Arc::new(right));
            self.lasts.insert(ci + 1, 0);
            self.relast(ci + 1);
        }
        self.relast(ci);
        None
    }

    pub fn remove(&mut self, id: u64) -> Option<T> {
        let ci = self.chunk_for(id);
        let i = self
            .chunks
            .get(ci)?
            .binary_search_by_key(&id, |(k, _)| *k)
            .ok()?;
        let c = Arc::make_mut(&mut self.chunks[ci]);
        let (_, v) = c.remove(i);
        self.len -= 1;
        if c.is_empty() {
            self.chunks.remove(ci);
            self.lasts.remove(ci);
            return Some(v);
        }
        // Once a third is unused (each shrink copies the chunk, after a
        // third of it was removed).
        if c.capacity() - c.len() > 4 && c.len() * 3 < c.capacity() * 2 {
            c.shrink_to_fit();
        }
        let small = c.len() < CHUNK_MIN;
        self.relast(ci);
        if small {
            self.merge_small(ci);
        }
        Some(v)
    }

    /// Merges chunk `ci` with its next neighbour, or else its previous one,
    /// when the two fit in one chunk.
    fn merge_small(&mut self, ci: usize) {
        let len = |i: usize| self.chunks.get(i).map_or(usize::MAX, |c| c.len());
        let Some(left) = merge_partner(ci, CHUNK_MAX, len) else {
            return;
        };
        let (Some(a), Some(b)) = (self.chunks.get(left), self.chunks.get(left + 1)) else {
            return;
        };
        let mut merged = Vec::with_capacity(a.len() + b.len());
        merged.extend_from_slice(a);
        merged.extend_from_slice(b);
        self.chunks[left] = Arc::new(merged);
        self.chunks.remove(left + 1);
        // (The merged chunk ends where the right one did.)
        self.lasts.remove(left);
    }

    /// Calls `f` on the entry of each id of `ids` (ascending; repeats
    /// allowed) in one pass over the table; `Err(id)` at the first id that
    /// is not in it.
    pub fn walk_sorted_mut<A>(
        &mut self,
        items: impl Iterator<Item = (u64, A)>,
        mut f: impl FnMut(u64, A, &mut T) -> bool,
    ) -> Result<(), u64> {
        let (mut ci, mut pos) = (0, 0);
        for (id, a) in items {
            while self.lasts.get(ci).is_some_and(|l| *l < id) {
                ci += 1;
                pos = 0;
            }
            let Some(c) = self.chunks.get_mut(ci) else {
                return Err(id);
            };
            let c = Arc::make_mut(c);
            while c.get(pos).is_some_and(|(k, _)| *k < id) {
                pos += 1;
            }
            match c.get_mut(pos) {
                Some((k, v)) if *k == id => {
                    if !f(id, a, v) {
                        return Err(id);
                    }
                }
                _ => return Err(id),
            }
        }
        Ok(())
    }

    pub fn iter(&self) -> impl Iterator<Item = (u64, &T)> + '_ {
        self.chunks
            .iter()
            .flat_map(|c| c.iter().map(|(k, v)| (*k, v)))
    }

    /// Heap bytes held.
    #[allow(dead_code)]
    pub fn heap_bytes(&self) -> usize {
        self.chunks.capacity() * 16
            + self
                .chunks
                .iter()
                .map(|c| 40 + c.capacity() * std::mem::size_of::<(u64, T)>())
                .sum::<usize>()
    }
}

impl<T: Clone + PartialEq> PartialEq for IdMap<T> {
    fn eq(&self, other: &IdMap<T>) -> bool {
        self.len == other.len && self.iter().zip(other.iter()).all(|(a, b)| a == b)
    }
}

impl<T: Clone + Eq> Eq for IdMap<T> {}

/// One extent's packed entry (24 bytes; 32 with its id).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExtRec {
    /// Offset (low 56 bits) and bits 32..40 of the length (high 8 bits).
    off_len_hi: u64,
    len_lo: u32,
    segment: u32,
    /// References; the top bit says the side table holds the extent.
    refs: u32,
    /// The one block's CRC32C (inline extents).
    crc: u32,
}

const BIG: u32 = 1 << 31;

/// What the side table keeps of an extent that is not inline.
#[derive(Debug, Clone)]
pub struct Big {
    pub segment: u64,
    pub offset: u64,
    pub len: u64,
    pub block_crcs: Arc<[u32]>,
    pub verified: Verified,
}

impl PartialEq for Big {
    fn eq(&self, o: &Big) -> bool {
        (self.segment, self.offset, self.len, &self.block_crcs)
            == (o.segment, o.offset, o.len, &o.block_crcs)
    }
}

impl Eq for Big {}

/// An extent as the rest of the crate sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Extent {
    pub segment: u64,
    pub offset: u64,
    pub len: u64,
    pub block_crcs: Arc<[u32]>,
    pub refs: u64,
    /// Which blocks a read has verified at this location (fresh for an
    /// inline extent: its reads check its few bytes each time).
    pub verified: Verified,
}

/// Where an extent is (no allocation).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Location {
    pub segment: u64,
    pub offset: u64,
    pub len: u64,
    pub refs: u64,
}

/// Extents by id.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Extents {
    small: IdMap<ExtRec>,
    big: IdMap<Arc<Big>>,
}

impl Extents {
    #[allow(dead_code)]
    pub fn len(&self) -> usize {
        self.small.len()
    }

    pub fn contains(&self, id: u64) -> bool {
        self.small.contains(id)
    }

    /// Adds an extent with no references.
    pub fn define(&mut self, id: u64, segment: u64, offset: u64, len: u64, crcs: &[u32]) {
        let inline = crcs.len() == 1
            && len <= INLINE_VERIFY_MAX
            && segment <= u64::from(u32::MAX)
            && offset < 1 << 56
            && len < 1 << 40;
        let rec = if inline {
            ExtRec {
                off_len_hi: offset | ((len >> 32) << 56),
                len_lo: len as u32,
                segment: segment as u32,
                refs: 0,
                crc: crcs[0],
            }
        } else {
            self.big.insert(
                id,
                Arc::new(Big {
                    segment,
                    offset,
                    len,
                    block_crcs: crcs.into(),
                    verified: Verified::new(crcs.len() as u64),
                }),
            );
            ExtRec {
                off_len_hi: 0,
                len_lo: 0,
                segment: 0,
                refs: BIG,
                crc: 0,
            }
        };
        if inline {
            self.big.remove(id);
        }
        self.small.insert(id, rec);
    }

    fn loc_of(&self, id: u64, r: &ExtRec) -> Location {
        loc_of(&self.big, id, r)
    }

    /// Takes one reference for each `(id, len)` of `refs` (sorted by id) in
    /// one pass over the table, where extent `id` must be at least `len`
    /// bytes long (exactly, if `len` has [`EXACT`] set); calls `first` with an
    /// extent's location at its first reference. `Err(id)` at the first
    /// reference to an unknown or shorter extent.
    pub fn retain_sorted(
        &mut self,
        refs: &[(u64, u64)],
        mut first: impl FnMut(Location),
    ) -> Result<(), u64> {
        let big = &self.big;
        self.small.walk_sorted_mut(
            refs.iter()
                .map(|(id, len)| (*id, (*len & !EXACT, *len & EXACT != 0))),
            |id, (len, exact), r| {
                let loc = loc_of(big, id, r);
                if loc.len < len || (exact && loc.len != len) {
                    return false;
                }
                let n = r.refs & !BIG;
                if n + 1 < BIG {
                    r.refs = (r.refs & BIG) | (n + 1);
                }
                if n == 0 {
                    first(loc);
                }
                true
            },
        )
    }
}

/// Where extent `id` (entry `r`) is; `big` holds the extents not inline.
fn loc_of(big: &IdMap<Arc<Big>>, id: u64, r: &ExtRec) -> Location {
    let refs = u64::from(r.refs & !BIG);
    if r.refs & BIG != 0 {
        match big.get(id) {
            Some(b) => Location {
                segment: b.segment,
                offset: b.offset,
                len: b.len,
                refs,
            },
            None => Location {
                segment: 0,
                offset: 0,
                len: 0,
                refs,
            },
        }
    } else {
        Location {
            segment: u64::from(r.segment),
            offset: r.off_len_hi & ((1 << 56) - 1),
            len: ((r.off_len_hi >> 56) << 32) | u64::from(r.len_lo),
            refs,
        }
    }
}

impl Extents {
    /// Where extent `id` is, if live.
    pub fn location(&self, id: u64) -> Option<Location> {
        self.small.get(id).map(|r| self.loc_of(id, r))
    }

    /// Extent `id` with its CRCs, if live.
    pub fn get(&self, id: u64) -> Option<Extent> {
        let r = self.small.get(id)?;
        let loc = self.loc_of(id, r);
        let (block_crcs, verified) = match self.big.get(id) {
            Some(b) if r.refs & BIG != 0 => (Arc::clone(&b.block_crcs), b.verified.clone()),
            _ => (Arc::from([r.crc].as_slice()), Verified::new(1)),
        };
        Some(Extent {
            segment: loc.segment,
            offset: loc.offset,
            len: loc.len,
            block_crcs,
            refs: loc.refs,
            verified,
        })
    }

    /// Every live extent's location, in id order.
    pub fn locations(&self) -> impl Iterator<Item = (u64, Location)> + '_ {
        self.small.iter().map(|(id, r)| (id, self.loc_of(id, r)))
    }

    /// An extent no reference holds, if any.
    pub fn unreferenced(&self) -> Option<u64> {
        self.small
            .iter()
            .find(|(_, r)| r.refs & !BIG == 0)
            .map(|(id, _)| id)
    }

    /// Every live extent with its CRCs, in id order.
    pub fn iter(&self) -> impl Iterator<Item = (u64, Extent)> + '_ {
        self.small
            .iter()
            .filter_map(|(id, _)| self.get(id).map(|e| (id, e)))
    }

    /// Adds a reference; returns the location when it was the first.
    pub fn retain(&mut self, id: u64) -> Option<Location> {
        let r = self.small.get_mut(id)?;
        let first = r.refs & !BIG == 0;
        let n = (r.refs & !BIG) + 1;
        if n < BIG {
            r.refs = (r.refs & BIG) | n;
        }
        let r = *r;
        first.then(|| self.loc_of(id, &r))
    }

    /// Drops a reference; removes the extent and returns its location when
    /// it was the last.
    pub fn release(&mut self, id: u64) -> Option<Location> {
        let r = self.small.get_mut(id)?;
        r.refs = (r.refs & BIG) | (r.refs & !BIG).saturating_sub(1);
        if r.refs & !BIG != 0 {
            return None;
        }
        self.remove(id)
    }

    /// Removes extent `id` whatever its references; returns where it was.
    pub fn remove(&mut self, id: u64) -> Option<Location> {
        let r = self.small.remove(id)?;
        let loc = self.loc_of(id, &r);
        self.big.remove(id);
        Some(loc)
    }

    /// Moves extent `id`; its verified blocks are forgotten. Returns the
    /// old location.
    pub fn relocate(&mut self, id: u64, segment: u64, offset: u64) -> Option<Location> {
        let old = self.location(id)?;
        let crcs = self.get(id)?.block_crcs;
        let refs = old.refs;
        self.define(id, segment, offset, old.len, &crcs);
        if let Some(r) = self.small.get_mut(id) {
            r.refs = (r.refs & BIG) | (refs as u32 & !BIG);
        }
        Some(old)
    }

    /// Heap bytes held.
    #[allow(dead_code)]
    pub fn heap_bytes(&self) -> usize {
        self.small.heap_bytes() + self.big.heap_bytes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_and_big_extents_round_trip() {
        let mut t = Extents::default();
        t.define(5, 3, 4096, 100, &[7]);
        t.define(9, 1 << 40, 10, 100, &[8]);
        t.define(7, 2, 1 << 20, 3 << 20, &[1, 2, 3]);
        t.define(8, 2, 0, 5 << 30, &vec![0; 5 << 10]);
        assert_eq!(t.len(), 4);
        let e = t.get(5).unwrap();
        assert_eq!(
            (e.segment, e.offset, e.len, &*e.block_crcs),
            (3, 4096, 100, &[7][..])
        );
        assert_eq!(t.location(9).unwrap().segment, 1 << 40);
        assert_eq!(t.location(8).unwrap().len, 5 << 30);
        assert_eq!(&*t.get(7).unwrap().block_crcs, &[1, 2, 3]);
        assert!(t.retain(5).is_some());
        assert!(t.retain(5).is_none());
        assert!(t.release(5).is_none());
        assert_eq!(t.release(5).map(|l| l.offset), Some(4096));
        assert!(t.get(5).is_none());
        t.retain(7);
        let old = t.relocate(7, 9, 77).unwrap();
        assert_eq!(old.segment, 2);
        let e = t.get(7).unwrap();
        assert_eq!((e.segment, e.offset, e.refs), (9, 77, 1));
        let ids: Vec<u64> = t.locations().map(|(id, _)| id).collect();
        assert_eq!(ids, vec![7, 8, 9]);
    }

    #[test]
    fn idmap_agrees_with_a_btreemap_out_of_order() {
        let mut m = IdMap::default();
        let mut want = std::collections::BTreeMap::new();
        for i in 0..5000u64 {
            let id = i * 3 + (i % 7) * 11;
            assert_eq!(m.insert(id, i), want.insert(id, i));
            if i % 3 == 0 {
                let r = (i * 7) % (i + 1);
                assert_eq!(m.remove(r * 3), want.remove(&(r * 3)));
            }
        }
        let frozen = m.clone();
        for (k, v) in &want {
            assert_eq!(m.get(*k), Some(v));
        }
        let got: Vec<(u64, u64)> = m.iter().map(|(k, v)| (k, *v)).collect();
        let exp: Vec<(u64, u64)> = want.iter().map(|(k, v)| (*k, *v)).collect();
        assert_eq!(got, exp);
        *m.get_mut(exp[0].0).unwrap() = 999;
        assert_eq!(frozen.get(exp[0].0), Some(&exp[0].1));
        assert_eq!(m.len(), want.len());
    }

    /// Ids arriving in order, removed at random, round after round: the
    /// table stays as compact as after the first round (small chunks
    /// merged, unused capacity given back) and agrees with a BTreeMap.
    #[test]
    fn idmap_churn_stays_compact() {
        let mut m: IdMap<[u64; 3]> = IdMap::default();
        let mut want = std::collections::BTreeMap::new();
        let mut live: Vec<u64> = Vec::new();
        let mut x: u64 = 0x2545_f491_4f6c_dd1d;
        let (n, mut next) = (20_000usize, 1u64);
        for round in 0..8 {
            while live.len() < n {
                m.insert(next, [next; 3]);
                want.insert(next, [next; 3]);
                live.push(next);
                next += 1;
            }
            let go = if round == 5 { n - n / 50 } else { n / 2 };
            for _ in 0..go {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                let id = live.swap_remove((x % live.len() as u64) as usize);
                assert_eq!(m.remove(id), want.remove(&id));
            }
            // 32 bytes an entry, and what the chunks keep in reserve (was
            // ~70 bytes an entry, 400+ after round 5).
            let per = m.heap_bytes() as f64 / m.len() as f64;
            assert!(per < 48.0, "round {round}: {per:.1} bytes per entry");
            let got: Vec<(u64, [u64; 3])> = m.iter().map(|(k, v)| (k, *v)).collect();
            let exp: Vec<(u64, [u64; 3])> = want.iter().map(|(k, v)| (*k, *v)).collect();
            assert_eq!(got, exp);
        }
    }
}
