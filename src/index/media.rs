//! Interned (content type, content encoding) pairs: objects keep a 4-byte
//! id instead of two strings. Counted, so a pair no object uses any more is
//! forgotten (the table tracks live objects, not history).

use std::collections::HashMap;
use std::sync::Arc;

/// A (content type, content encoding) pair.
pub type MediaPair = (Arc<str>, Option<Arc<str>>);

/// The encodings seen with one content type, each with its pair's id.
type Encodings = Vec<(Option<Arc<str>>, u32)>;

#[derive(Debug, Clone, Default)]
pub struct Media {
    /// By id: the pair and how many objects use it.
    slots: Vec<Option<(MediaPair, u64)>>,
    /// By content type, then encoding: looked up with borrowed strings, so
    /// a pair already known costs no allocation.
    ids: HashMap<Arc<str>, Encodings>,
    free: Vec<u32>,
}

impl Media {
    /// The id of the pair, one more object using it.
    pub fn retain(&mut self, content_type: &str, content_encoding: Option<&str>) -> u32 {
        let known = self.ids.get(content_type).and_then(|encodings| {
            encodings
                .iter()
                .find(|(ce, _)| ce.as_deref() == content_encoding)
                .map(|(_, id)| *id)
        });
        if let Some(id) = known {
            self.retain_id(id);
            return id;
        }
        let key: MediaPair = (Arc::from(content_type), content_encoding.map(Arc::from));
        let id = match self.free.pop() {
            Some(id) => id,
            None => {
                self.slots.push(None);
                (self.slots.len() - 1) as u32
            }
        };
        if let Some(s) = self.slots.get_mut(id as usize) {
            *s = Some((key.clone(), 1));
        }
        self.ids.entry(key.0).or_default().push((key.1, id));
        id
    }

    /// One more object using `id`.
    pub fn retain_id(&mut self, id: u32) {
        self.retain_n(id, 1);
    }

    /// `n` more objects using `id`.
    pub fn retain_n(&mut self, id: u32, n: u64) {
        if let Some(Some((_, count))) = self.slots.get_mut(id as usize) {
            *count += n;
        }
    }

    /// One object fewer using `id`.
    pub fn release(&mut self, id: u32) {
        let Some(slot) = self.slots.get_mut(id as usize) else {
            return;
        };
        let gone = match slot {
            Some((_, n)) => {
                *n = n.saturating_sub(1);
                *n == 0
            }
            None => false,
        };
        if gone {
            if let Some(((ct, _), _)) = slot.take() {
                if let Some(encodings) = self.ids.get_mut(&ct) {
                    encodings.retain(|(_, i)| *i != id);
                    if encodings.is_empty() {
                        self.ids.remove(&ct);
                    }
                }
            }
            self.free.push(id);
        }
    }

    /// The pair of `id` (empty type if unknown, which no live id is).
    pub fn get(&self, id: u32) -> (&str, Option<&str>) {
        match self.slots.get(id as usize) {
            Some(Some(((ct, ce), _))) => (ct, ce.as_deref()),
            _ => ("", None),
        }
    }

    /// The pair of `id`, shared (None if unknown, which no live id is).
    pub fn pair(&self, id: u32) -> Option<MediaPair> {
        match self.slots.get(id as usize) {
            Some(Some((pair, _))) => Some(pair.clone()),
            _ => None,
        }
    }

    /// The pair of the id `retain` just returned for these strings (new
    /// strings only if that id were unknown, which it cannot be).
    pub fn retained_pair(
        &self,
        id: u32,
        content_type: &str,
        content_encoding: Option<&str>,
    ) -> MediaPair {
        self.pair(id)
            .unwrap_or_else(|| (content_type.into(), content_encoding.map(Arc::from)))
    }

    /// Every live pair with its id, in id order.
    pub fn iter(&self) -> impl Iterator<Item = (u32, &str, Option<&str>)> + '_ {
        self.slots.iter().enumerate().filter_map(|(id, s)| {
            s.as_ref()
                .map(|((ct, ce), _)| (id as u32, &**ct, ce.as_deref()))
        })
    }

    /// Number of live pairs.
    #[allow(dead_code)]
    pub fn len(&self) -> usize {
        self.ids.values().map(Vec::len).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pairs_are_shared_and_forgotten_when_unused() {
        let mut m = Media::default();
        let a = m.retain("text/plain", None);
        let b = m.retain("text/plain", Some("gzip"));
        assert_ne!(a, b);
        assert_eq!(m.retain("text/plain", None), a);
        assert_eq!(m.get(b), ("text/plain", Some("gzip")));
        m.release(a);
        assert_eq!(m.get(a), ("text/plain", None));
        m.release(a);
        assert_eq!(m.len(), 1);
        let c = m.retain("image/png", None);
        assert_eq!(c, a, "the freed id is reused");
        assert_eq!(m.get(c), ("image/png", None));
    }
}
