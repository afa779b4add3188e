//! What a record reads and writes, for the commit pipeline.
//!
//! Under group commit a record is validated against the index while earlier
//! records are appended but not yet applied (they wait for their fdatasync).
//! A record may be validated that way only if none of those pending records
//! writes anything its validation reads; otherwise replay, which applies
//! every record in log order, could find it invalid. A [`Footprint`] names
//! those things as hashed domains; the pipeline makes a newcomer wait while
//! any pending record writes a domain it reads.

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};

use crate::index::Index;
use crate::log::format::Meta;

/// A hashed domain (collisions only cost a needless wait).
pub(crate) type Domain = u64;

/// Everything: a record that reads it waits for every pending record.
pub(crate) const ALL: Domain = 0;

/// The domains a record reads and writes.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct Footprint {
    pub(crate) reads: Vec<Domain>,
    pub(crate) writes: Vec<Domain>,
}

fn domain(parts: &[&[u8]]) -> Domain {
    let mut h = DefaultHasher::new();
    for p in parts {
        p.hash(&mut h);
    }
    // 0 is ALL.
    h.finish().max(1)
}

fn layer(l: &str) -> Domain {
    domain(&[b"L", l.as_bytes()])
}

fn key(l: &str, k: &str) -> Domain {
    domain(&[b"K", l.as_bytes(), k.as_bytes()])
}

fn upload(u: &[u8; 16]) -> Domain {
    domain(&[b"U", u])
}

/// The extent table as a whole: released by deletes and replacements, read
/// by copies (which reference existing extents).
fn extents() -> Domain {
    domain(&[b"E"])
}

impl Index {
    /// What `meta`'s validation reads and its application writes, given the
    /// current state.
    pub(crate) fn footprint(&self, meta: &Meta) -> Footprint {
        let mut f = Footprint::default();
        match meta {
            Meta::LayerCreated { layer: l, .. } => {
                f.reads.push(layer(l));
                f.writes.push(layer(l));
            }
            // Whether the layer is empty depends on every key and upload in
            // it: wait for every pending record.
            Meta::LayerDeleted { layer: l } => {
                f.reads.push(ALL);
                f.writes.push(layer(l));
            }
            Meta::UploadStarted {
                layer: l,
                upload: u,
                ..
            } => {
                f.reads.extend([layer(l), upload(u)]);
                f.writes.push(upload(u));
            }
            Meta::PartSet {
                layer: l,
                upload: u,
                new_extent,
                pieces,
                ..
            } => {
                f.reads.extend([layer(l), upload(u)]);
                f.writes.extend([upload(u), extents()]);
                let copies = pieces
                    .iter()
                    .any(|p| new_extent.as_ref().is_none_or(|e| e.id != p.extent));
                if copies {
                    f.reads.push(extents());
                }
            }
            Meta::UploadCompleted {
                layer: l,
                upload: u,
                ..
            } => {
                f.reads.extend([layer(l), upload(u)]);
                f.writes.extend([upload(u), extents()]);
                if let Some(up) = self.uploads.get(u).filter(|up| up.layer == *l) {
                    f.writes.push(key(l, &up.key));
                }
            }
            Meta::UploadAborted {
                layer: l,
                upload: u,
                ..
            } => {
                f.reads.extend([layer(l), upload(u)]);
                f.writes.extend([upload(u), extents()]);
            }
            Meta::ObjectPut {
                layer: l, key: k, ..
            } => {
                f.reads.push(layer(l));
                f.writes.extend([key(l, k), extents()]);
            }
            Meta::ObjectDeleted { layer: l, key: k } => {
                f.reads.extend([layer(l), key(l, k)]);
                f.writes.extend([key(l, k), extents()]);
            }
            Meta::ObjectCopied {
                layer: l, src, dst, ..
            } => {
                f.reads.extend([layer(l), key(l, src), extents()]);
                f.writes.extend([key(l, dst), extents()]);
            }
            Meta::Mark => {}
            Meta::ExtentsMoved { .. } | Meta::Snapshot(_) => {
                f.reads.push(ALL);
                f.writes.push(extents());
            }
        }
        f
    }
}
