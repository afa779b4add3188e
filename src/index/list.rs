//! Listing: one page of a layer's keys, deep or grouped into folders.

use std::ops::Bound;

use crate::error::Result;
use crate::index::Index;

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

impl Index {
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
