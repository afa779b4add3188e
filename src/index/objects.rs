//! A layer's objects in key order, packed: the keys of a run of objects in
//! one byte arena, their fixed fields in one array beside it, with the rare
//! fields (user metadata, kept digests, several pieces) behind one optional
//! pointer. The runs ("chunks") are shared copy-on-write, so a clone of the
//! whole map (a checkpoint's frozen view) costs one pointer per chunk, and
//! a write after it copies one chunk.
//!
//! A 30-byte key costs about 30 + 44 bytes here, against ~400 for a
//! `BTreeMap<String, Arc<Object>>` entry with its own strings.

use std::ops::Bound;
use std::sync::Arc;

use crate::log::format::Piece;
use crate::log::meta::Metadata;
use crate::spec::Digest;

/// Most objects in one chunk: small enough that an insert's shift within
/// the chunk stays in the cache, large enough that the chunk table is tiny.
const CHUNK_MAX: usize = 128;

/// A chunk that falls below this many objects is merged with a neighbour
/// the two fit in one: deletes spread over the keys (a store whose history
/// is mostly deleted) must not leave chunks of one or two objects, each
/// with a chunk's and a fence's fixed cost.
const CHUNK_MIN: usize = CHUNK_MAX / 4;

/// The fields of an object that most objects leave at their default.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Extra {
    /// The object's size when its bytes are not one whole extent.
    pub size: u64,
    /// The object's bytes, in order, when not one whole extent.
    pub pieces: Vec<Piece>,
    pub metadata: Metadata,
    pub digest: Option<Digest>,
    pub composite_digest: Option<Digest>,
    pub part_sizes: Arc<[u64]>,
    /// An etag that is not the usual CRC + sequence form (read from an old
    /// snapshot).
    pub etag: Option<String>,
}

/// One object's fixed fields (40 bytes; its key is kept by its chunk).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjRec {
    pub etag_seq: u64,
    /// The one extent the object's bytes are, whole; 0: see `extra`
    /// (several pieces, or none for an empty object).
    pub extent: u64,
    pub extra: Option<Arc<Extra>>,
    /// Modified time in ms (low 48 bits: until the year 10889) and the
    /// part count (high 16 bits; the SPEC allows 10,000 parts).
    pub(super) time_parts: u64,
    pub crc32c: u32,
    /// Interned (content type, content encoding).
    pub media: u32,
}

const TIME_BITS: u32 = 48;
const TIME_MASK: u64 = (1 << TIME_BITS) - 1;

impl ObjRec {
    /// Equal fields but the media id.
    pub fn same_fields_but_media(&self, o: &ObjRec) -> bool {
        ObjRec {
            media: 0,
            ..self.clone()
        } == ObjRec {
            media: 0,
            ..o.clone()
        }
    }

    /// A record.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        last_modified_ms: u64,
        etag_seq: u64,
        extent: u64,
        extra: Option<Arc<Extra>>,
        crc32c: u32,
        media: u32,
        part_count: u16,
    ) -> ObjRec {
        let mut r = ObjRec {
            etag_seq,
            extent,
            extra,
            time_parts: u64::from(part_count) << TIME_BITS,
            crc32c,
            media,
        };
        r.set_last_modified_ms(last_modified_ms);
        r
    }

    /// A record from its fields as stored (a checkpoint's).
    pub(super) fn from_parts(
        etag_seq: u64,
        extent: u64,
        extra: Option<Arc<Extra>>,
        time_parts: u64,
        crc32c: u32,
        media: u32,
    ) -> ObjRec {
        ObjRec {
            etag_seq,
            extent,
            extra,
            time_parts,
            crc32c,
            media,
        }
    }

    /// Modified time, ms since the epoch.
    pub fn last_modified_ms(&self) -> u64 {
        self.time_parts & TIME_MASK
    }

    /// Sets the modified time (saturating at the year 10889).
    pub fn set_last_modified_ms(&mut self, ms: u64) {
        self.time_parts = (self.time_parts & !TIME_MASK) | ms.min(TIME_MASK);
    }

    /// Number of parts the object was assembled from (1 for a put).
    pub fn part_count(&self) -> u16 {
        (self.time_parts >> TIME_BITS) as u16
    }
}

/// A run of objects in key order: their keys back to back in one arena (in
/// the same order), each key's end offset, and their records. A search
/// reads only the offsets and the keys, side by side in memory.
#[derive(Debug, Clone, Default)]
struct Chunk {
    recs: Vec<ObjRec>,
    ends: Vec<u32>,
    arena: String,
}

impl Chunk {
    fn start(&self, i: usize) -> usize {
        match i {
            0 => 0,
            _ => self.ends.get(i - 1).map_or(0, |e| *e as usize),
        }
    }

    fn key_at(&self, i: usize) -> &str {
        let end = self.ends.get(i).map_or(0, |e| *e as usize);
        self.arena.get(self.start(i)..end).unwrap_or("")
    }

    /// Key `i`'s bytes, without the char-boundary checks of a `str` slice.
    fn key_bytes(&self, i: usize) -> &[u8] {
        let end = self.ends.get(i).map_or(0, |e| *e as usize);
        self.arena.as_bytes().get(self.start(i)..end).unwrap_or(&[])
    }

    fn last_key(&self) -> &str {
        self.key_at(self.recs.len().wrapping_sub(1))
    }

    fn search(&self, key: &str) -> Result<usize, usize> {
        let (mut lo, mut hi) = (0, self.recs.len());
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            match self.key_at(mid).cmp(key) {
                std::cmp::Ordering::Less => lo = mid + 1,
                std::cmp::Ordering::Greater => hi = mid,
                std::cmp::Ordering::Equal => return Ok(mid),
            }
        }
        Err(lo)
    }

    /// Inserts `key` and `rec` at `pos` (the keys stay in order), growing
    /// by a quarter (not doubling): memory tracks what is held.
    fn insert_at(&mut self, pos: usize, key: &str, rec: ObjRec) {
        if self.recs.len() == self.recs.capacity() {
            let more = (self.recs.len() / 4).clamp(4, CHUNK_MAX);
            self.recs.reserve_exact(more);
            self.ends.reserve_exact(more);
        }
        if self.arena.len() + key.len() > self.arena.capacity() {
            self.arena
                .reserve_exact((self.arena.len() / 4).max(key.len()).max(64));
        }
        let at = self.start(pos);
        self.arena.insert_str(at, key);
        let n = key.len() as u32;
        for e in &mut self.ends[pos..] {
            *e += n;
        }
        self.ends.insert(pos, at as u32 + n);
        self.recs.insert(pos, rec);
    }

    fn remove_at(&mut self, pos: usize) -> ObjRec {
        let (start, end) = (self.start(pos), self.ends[pos] as usize);
        self.arena.replace_range(start..end, "");
        self.ends.remove(pos);
        let n = (end - start) as u32;
        for e in &mut self.ends[pos..] {
            *e -= n;
        }
        let rec = self.recs.remove(pos);
        // Fresh exact allocations (see `split_off`) once a third is unused:
        // each costs a copy of the chunk, after a third of it was deleted.
        let slack = |len: usize, cap: usize| cap - len > 4 && len * 3 < cap * 2;
        if slack(self.recs.len(), self.recs.capacity())
            || slack(self.arena.len(), self.arena.capacity())
        {
            *self = Chunk {
                recs: self.recs.to_vec(),
                ends: self.ends.to_vec(),
                arena: self.arena.as_str().to_string(),
            };
        }
        rec
    }

    /// This chunk's entries, then `next`'s (whose keys all sort after
    /// them), in fresh exact allocations.
    fn merged(&self, next: &Chunk) -> Chunk {
        let base = self.arena.len() as u32;
        let mut recs = Vec::with_capacity(self.recs.len() + next.recs.len());
        recs.extend_from_slice(&self.recs);
        recs.extend_from_slice(&next.recs);
        let mut ends = Vec::with_capacity(recs.len());
        ends.extend_from_slice(&self.ends);
        ends.extend(next.ends.iter().map(|e| e + base));
        let mut arena = String::with_capacity(self.arena.len() + next.arena.len());
        arena.push_str(&self.arena);
        arena.push_str(&next.arena);
        Chunk { recs, ends, arena }
    }

    /// Splits off the entries from `at` on. Both halves are fresh
    /// allocations of their exact size: shrinking the old ones in place
    /// leaves holes the allocator does not reuse well (RSS grew by half).
    fn split_off(&mut self, at: usize) -> Chunk {
        let base = self.start(at);
        let right = Chunk {
            recs: self.recs[at..].to_vec(),
            ends: self.ends[at..].iter().map(|e| e - base as u32).collect(),
            arena: self.arena[base..].to_string(),
        };
        *self = Chunk {
            recs: self.recs[..at].to_vec(),
            ends: self.ends[..at].to_vec(),
            arena: self.arena[..base].to_string(),
        };
        right
    }
}

/// A borrowed object of the map: its key and fixed fields.
#[derive(Debug, Clone, Copy)]
pub struct ObjRef<'a> {
    pub key: &'a str,
    pub rec: &'a ObjRec,
}

/// A chunk's last key, with its first 32 bytes inline: the search over
/// the chunks compares those side by side and reads the key itself only
/// when they cannot tell.
#[derive(Debug, Clone)]
struct Fence {
    head: Head,
    len: usize,
    key: Box<str>,
}

/// The first 32 bytes of a key, big-endian, zero-padded: compared as a
/// pair, they order as the bytes do.
type Head = (u128, u128);

fn head(k: &str) -> Head {
    let mut h = [0u8; 32];
    let n = k.len().min(32);
    h[..n].copy_from_slice(&k.as_bytes()[..n]);
    let word = |s: &[u8]| {
        let mut w = [0u8; 16];
        w.copy_from_slice(s);
        u128::from_be_bytes(w)
    };
    (word(&h[..16]), word(&h[16..]))
}

impl Fence {
    fn new(key: &str) -> Fence {
        Fence {
            head: head(key),
            len: key.len(),
            key: key.into(),
        }
    }

    /// True when the fence sorts before `key` (whose head is `kh`).
    fn before(&self, key: &str, kh: Head) -> bool {
        let (d0, d1) = (self.head.0 ^ kh.0, self.head.1 ^ kh.1);
        if d0 != 0 || d1 != 0 {
            // The first differing byte decides, if both keys have it.
            let i = if d0 != 0 {
                d0.leading_zeros() / 8
            } else {
                16 + d1.leading_zeros() / 8
            } as usize;
            if i < self.len.min(key.len()) {
                return self.head < kh;
            }
        }
        &*self.key < key
    }
}

/// Objects by key, in byte-wise key order.
#[derive(Debug, Clone, Default)]
pub struct ObjectMap {
    chunks: Vec<Arc<Chunk>>,
    /// Each chunk's last key, side by side: a lookup's search over the
    /// chunks touches one string per step, not a chunk.
    fences: Vec<Fence>,
    len: usize,
    /// Where the last insert put its key (chunk, position), if nothing
    /// moved it since: a write's result is read right after it.
    last: Option<(usize, usize)>,
}

impl ObjectMap {
    /// Number of objects.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when empty.
    #[allow(dead_code)]
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The chunk that holds `key` or would: the first whose last key is at
    /// or after it, else the last.
    fn chunk_for(&self, key: &str) -> usize {
        let kh = head(key);
        let i = self.fences.partition_point(|f| f.before(key, kh));
        i.min(self.chunks.len().saturating_sub(1))
    }

    /// Sets chunk `i`'s fence from its last key.
    fn refence(&mut self, i: usize) {
        if let (Some(c), Some(f)) = (self.chunks.get(i), self.fences.get_mut(i)) {
            if *f.key != *c.last_key() {
                *f = Fence::new(c.last_key());
            }
        }
    }

    /// The object under `key`.
    pub fn get(&self, key: &str) -> Option<ObjRef<'_>> {
        if let Some((ci, i)) = self.last {
            if let Some(c) = self
                .chunks
                .get(ci)
                .filter(|c| c.key_bytes(i) == key.as_bytes())
            {
                return Some(ObjRef {
                    key: c.key_at(i),
                    rec: c.recs.get(i)?,
                });
            }
        }
        let c = self.chunks.get(self.chunk_for(key))?;
        let i = c.search(key).ok()?;
        let rec = c.recs.get(i)?;
        Some(ObjRef {
            key: c.key_at(i),
            rec,
        })
    }

    /// The first object (in key order), if any.
    pub fn first_key(&self) -> Option<&str> {
        self.chunks.first().map(|c| c.key_at(0))
    }

    /// Puts `rec` under `key`; returns the record it replaced.
    pub fn insert(&mut self, key: &str, rec: ObjRec) -> Option<ObjRec> {
        if self.chunks.is_empty() {
            self.chunks.push(Arc::new(Chunk::default()));
            self.fences.push(Fence::new(""));
        }
        let ci = self.chunk_for(key);
        let last_chunk = ci + 1 == self.chunks.len();
        let c = Arc::make_mut(&mut self.chunks[ci]);
        let pos = match c.search(key) {
            Ok(i) => {
                self.last = Some((ci, i));
                return Some(std::mem::replace(&mut c.recs[i], rec));
            }
            Err(i) => i,
        };
        c.insert_at(pos, key, rec);
        self.len += 1;
        self.last = Some((ci, pos));
        if c.recs.len() > CHUNK_MAX {
            self.last = None;
            // Appending at the very end fills chunks whole (keys arriving
            // in order); elsewhere the chunk splits in halves.
            let at = if last_chunk && pos + 1 == c.recs.len() {
                c.recs.len() - 1
            } else {
                c.recs.len() / 2
            };
            let right = c.split_off(at);
            self.chunks.insert(ci + 1, Arc::new(right));
            self.fences.insert(ci + 1, Fence::new(""));
            self.refence(ci + 1);
        }
        self.refence(ci);
        None
    }

    /// Removes the object under `key`; returns its record.
    pub fn remove(&mut self, key: &str) -> Option<ObjRec> {
        let ci = self.chunk_for(key);
        let i = self.chunks.get(ci)?.search(key).ok()?;
        let c = Arc::make_mut(&mut self.chunks[ci]);
        let rec = c.remove_at(i);
        self.len -= 1;
        self.last = None;
        if c.recs.is_empty() {
            self.chunks.remove(ci);
            self.fences.remove(ci);
            return Some(rec);
        }
        let small = c.recs.len() < CHUNK_MIN;
        self.refence(ci);
        if small {
            self.merge_small(ci);
        }
        Some(rec)
    }

    /// Merges chunk `ci` with its next neighbour, or else its previous one,
    /// when the two fit in one chunk.
    fn merge_small(&mut self, ci: usize) {
        let len = |i: usize| self.chunks.get(i).map_or(usize::MAX, |c| c.recs.len());
        let Some(left) = super::extents::merge_partner(ci, CHUNK_MAX, len) else {
            return;
        };
        let (Some(a), Some(b)) = (self.chunks.get(left), self.chunks.get(left + 1)) else {
            return;
        };
        let merged = a.merged(b);
        self.chunks[left] = Arc::new(merged);
        self.chunks.remove(left + 1);
        // (The merged chunk ends where the right one did: its fence stays.)
        self.fences.remove(left);
    }

    /// Every object in key order.
    pub fn iter(&self) -> Iter<'_> {
        Iter {
            map: self,
            chunk: 0,
            pos: 0,
        }
    }

    /// Objects from `start` on, in key order.
    pub fn range(&self, start: Bound<&str>) -> Iter<'_> {
        let (key, excluded) = match start {
            Bound::Unbounded => return self.iter(),
            Bound::Included(k) => (k, false),
            Bound::Excluded(k) => (k, true),
        };
        let kh = head(key);
        let chunk = self.fences.partition_point(|f| f.before(key, kh));
        let pos = match self.chunks.get(chunk).map(|c| c.search(key)) {
            Some(Ok(i)) => i + usize::from(excluded),
            Some(Err(i)) => i,
            None => 0,
        };
        Iter {
            map: self,
            chunk,
            pos,
        }
    }

    /// Heap bytes held (for tests and stats).
    #[allow(dead_code)]
    pub fn heap_bytes(&self) -> usize {
        self.chunks.capacity() * std::mem::size_of::<Arc<Chunk>>()
            + self
                .fences
                .iter()
                .map(|f| std::mem::size_of::<Fence>() + f.key.len())
                .sum::<usize>()
            + self
                .chunks
                .iter()
                .map(|c| {
                    std::mem::size_of::<Chunk>()
                        + c.recs.capacity() * std::mem::size_of::<ObjRec>()
                        + c.ends.capacity() * 4
                        + c.arena.capacity()
                })
                .sum::<usize>()
    }
}

/// Builds a map from objects given in strictly increasing key order (a
/// checkpoint's restore): chunks filled whole, in fresh exact allocations,
/// with no search per object.
#[derive(Debug, Default)]
pub struct Builder {
    map: ObjectMap,
    cur: Chunk,
}

impl Builder {
    /// Appends `key` (which must sort after every key so far; `false`, and
    /// nothing appended, if it does not).
    pub fn push(&mut self, key: &str, rec: ObjRec) -> bool {
        let last = match self.cur.recs.is_empty() {
            false => Some(self.cur.last_key()),
            true => self.map.fences.last().map(|f| &*f.key),
        };
        if last.is_some_and(|l| l >= key) {
            return false;
        }
        if self.cur.recs.is_empty() {
            self.cur.recs.reserve(CHUNK_MAX);
            self.cur.ends.reserve(CHUNK_MAX);
        }
        self.cur.arena.push_str(key);
        self.cur.ends.push(self.cur.arena.len() as u32);
        self.cur.recs.push(rec);
        if self.cur.recs.len() == CHUNK_MAX {
            self.seal();
        }
        true
    }

    fn seal(&mut self) {
        if self.cur.recs.is_empty() {
            return;
        }
        let mut recs = std::mem::take(&mut self.cur.recs);
        recs.shrink_to_fit();
        let c = Chunk {
            recs,
            ends: self.cur.ends.to_vec(),
            arena: self.cur.arena.as_str().to_string(),
        };
        self.cur.ends.clear();
        self.cur.arena.clear();
        self.map.len += c.recs.len();
        self.map.fences.push(Fence::new(c.last_key()));
        self.map.chunks.push(Arc::new(c));
    }

    /// The map.
    pub fn finish(mut self) -> ObjectMap {
        self.seal();
        self.map.chunks.shrink_to_fit();
        self.map.fences.shrink_to_fit();
        self.map
    }
}

/// Objects in key order.
pub struct Iter<'a> {
    map: &'a ObjectMap,
    chunk: usize,
    pos: usize,
}

impl<'a> Iterator for Iter<'a> {
    type Item = ObjRef<'a>;

    fn next(&mut self) -> Option<ObjRef<'a>> {
        loop {
            let c = self.map.chunks.get(self.chunk)?;
            if let Some(rec) = c.recs.get(self.pos) {
                let key = c.key_at(self.pos);
                self.pos += 1;
                return Some(ObjRef { key, rec });
            }
            self.chunk += 1;
            self.pos = 0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn rec(n: u64) -> ObjRec {
        ObjRec::new(n, n, n, None, n as u32, 0, 1)
    }

    /// Random inserts, replaces and removes agree with a BTreeMap, in
    /// lookups, order and ranges, and a clone taken midway keeps its state.
    #[test]
    fn agrees_with_a_btreemap() {
        let mut m = ObjectMap::default();
        let mut want: BTreeMap<String, u64> = BTreeMap::new();
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut frozen = None;
        for step in 0..20_000u64 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            // Long shared heads, short keys, and NUL bytes where the
            // fences' inline heads pad with zeros.
            let key = match x % 3 {
                0 => format!(
                    "a-long-shared-head/{:04}/{}",
                    x % 3000,
                    "x".repeat((x % 7) as usize)
                ),
                1 => format!("k{:02}\0{}", x % 97, "\0".repeat((x % 5) as usize)),
                _ => format!("k{:04}/{}", x % 3000, "x".repeat((x % 7) as usize)),
            };
            if x.is_multiple_of(5) {
                assert_eq!(m.remove(&key).map(|r| r.etag_seq), want.remove(&key));
            } else {
                let old = m.insert(&key, rec(step)).map(|r| r.etag_seq);
                assert_eq!(old, want.insert(key.clone(), step));
            }
            // Lookups right after a write (the last insert's place is
            // remembered) and of another key (it must not be taken for it).
            let other = format!("k{:04}/{}", (x >> 8) % 3000, "x".repeat((x % 7) as usize));
            for k in [&key, &other] {
                assert_eq!(
                    m.get(k).map(|o| o.rec.etag_seq),
                    want.get(k).copied(),
                    "{k:?}"
                );
                assert_eq!(
                    m.get(k).map(|o| o.key),
                    want.get_key_value(k).map(|(k, _)| k.as_str())
                );
            }
            if step == 10_000 {
                frozen = Some((m.clone(), want.clone()));
            }
        }
        let check = |m: &ObjectMap, want: &BTreeMap<String, u64>| {
            assert_eq!(m.len(), want.len());
            let got: Vec<(String, u64)> = m
                .iter()
                .map(|o| (o.key.to_string(), o.rec.etag_seq))
                .collect();
            let exp: Vec<(String, u64)> = want.iter().map(|(k, v)| (k.clone(), *v)).collect();
            assert_eq!(got, exp);
            for k in ["k0000/", "k1500/xx", "k2999/xxxxxx", "k9", ""] {
                let got: Vec<&str> = m.range(Bound::Included(k)).take(5).map(|o| o.key).collect();
                let exp: Vec<&str> = want
                    .range::<str, _>((Bound::Included(k), Bound::Unbounded))
                    .take(5)
                    .map(|(k, _)| k.as_str())
                    .collect();
                assert_eq!(got, exp, "from {k}");
                let got: Vec<&str> = m.range(Bound::Excluded(k)).take(5).map(|o| o.key).collect();
                let exp: Vec<&str> = want
                    .range::<str, _>((Bound::Excluded(k), Bound::Unbounded))
                    .take(5)
                    .map(|(k, _)| k.as_str())
                    .collect();
                assert_eq!(got, exp, "after {k}");
            }
            for (k, v) in want {
                assert_eq!(m.get(k).map(|o| o.rec.etag_seq), Some(*v));
            }
        };
        check(&m, &want);
        let (fm, fw) = frozen.expect("taken");
        check(&fm, &fw);
    }

    /// Keys arriving in order fill chunks whole: about 44 bytes of fixed
    /// fields plus the key per object.
    #[test]
    fn built_maps_equal_inserted_ones() {
        for n in [0usize, 1, 127, 128, 129, 1000] {
            let keys: Vec<String> = (0..n).map(|i| format!("k{i:05}")).collect();
            let mut b = Builder::default();
            let mut m = ObjectMap::default();
            for (i, k) in keys.iter().enumerate() {
                assert!(b.push(k, rec(i as u64)));
                m.insert(k, rec(i as u64));
            }
            if let Some(k) = keys.last() {
                assert!(!b.push(k, rec(0)), "a repeated key is refused");
                assert!(!b.push("a", rec(0)), "an earlier key is refused");
            }
            let built = b.finish();
            assert_eq!(built.len(), n);
            let got: Vec<(String, ObjRec)> = built
                .iter()
                .map(|o| (o.key.to_string(), o.rec.clone()))
                .collect();
            let want: Vec<(String, ObjRec)> = m
                .iter()
                .map(|o| (o.key.to_string(), o.rec.clone()))
                .collect();
            assert_eq!(got, want);
            for (i, k) in keys.iter().enumerate() {
                assert_eq!(built.get(k).map(|o| o.rec.etag_seq), Some(i as u64));
            }
            // Still a working map: inserts and removes after the build.
            let mut built = built;
            built.insert("k00000a", rec(9));
            assert_eq!(built.get("k00000a").map(|o| o.rec.etag_seq), Some(9));
            assert_eq!(built.remove("k00000a").map(|r| r.etag_seq), Some(9));
            assert_eq!(built.len(), n);
        }
    }

    #[test]
    fn ordered_keys_pack_tightly() {
        let mut m = ObjectMap::default();
        let n = 100_000;
        for i in 0..n {
            m.insert(&format!("dir/object-{i:09}.bin"), rec(i));
        }
        let per = m.heap_bytes() as f64 / n as f64;
        assert!(per < 40.0 + 4.0 + 24.0 + 10.0, "{per} bytes per object");
    }

    /// Deletes spread over the keys and new keys among them, round after
    /// round (a server's months of churn): the map stays as compact as
    /// after the first round (chunks merged when they run low, unused
    /// capacity given back), and agrees with a BTreeMap throughout,
    /// including a clone taken midway.
    #[test]
    fn churn_keeps_the_map_compact() {
        let mut m = ObjectMap::default();
        let mut want: BTreeMap<String, u64> = BTreeMap::new();
        let mut live: Vec<u64> = Vec::new();
        let mut x: u64 = 0x2545_f491_4f6c_dd1d;
        let mut rnd = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let key = |i: u64| format!("dir{:03}/object-{:012}.bin", i % 97, i);
        let (n, mut next) = (20_000usize, 0u64);
        let mut per_round = Vec::new();
        let mut frozen = None;
        for round in 0..8 {
            while live.len() < n {
                m.insert(&key(next), rec(next));
                want.insert(key(next), next);
                live.push(next);
                next += 1;
            }
            // Half of them go, at random; in round 5 nearly all.
            let go = if round == 5 { n - n / 50 } else { n / 2 };
            for _ in 0..go {
                let k = live.swap_remove((rnd() % live.len() as u64) as usize);
                assert_eq!(m.remove(&key(k)).map(|r| r.etag_seq), want.remove(&key(k)));
            }
            per_round.push(m.heap_bytes() as f64 / m.len() as f64);
            if round == 3 {
                frozen = Some((m.clone(), want.clone()));
            }
        }
        let same = |m: &ObjectMap, want: &BTreeMap<String, u64>| {
            let got: Vec<(&str, u64)> = m.iter().map(|o| (o.key, o.rec.etag_seq)).collect();
            let exp: Vec<(&str, u64)> = want.iter().map(|(k, v)| (k.as_str(), *v)).collect();
            assert_eq!(got, exp);
            for (k, v) in want.iter().step_by(7) {
                assert_eq!(m.get(k).map(|o| o.rec.etag_seq), Some(*v));
            }
        };
        same(&m, &want);
        let (fm, fw) = frozen.expect("taken");
        same(&fm, &fw);
        // About 40 bytes of fixed fields, 4 of offset and the 30-byte key
        // per object, plus what the chunks keep in reserve (was 160-170
        // bytes per object after a few rounds, 550+ after round 5's
        // deletes: chunks of one or two objects, never merged).
        for (round, per) in per_round.iter().enumerate() {
            assert!(*per < 125.0, "round {round}: {per:.1} bytes per object");
        }
    }
}
