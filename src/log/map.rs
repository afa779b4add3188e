//! Memory maps: the only module with `unsafe`. [`Map`] is a read-only shared
//! map of a segment file; [`Slice`] is a cheap view into one.
#![allow(unsafe_code)]

use std::fs::File;
use std::io;
use std::sync::Arc;

use crate::error::{corrupt, Result};

/// A read-only, shared memory map of a whole file, as it was when mapped.
/// Later writes through the file are visible through it.
pub struct Map(memmap2::Mmap);

impl Map {
    /// Maps `file` read-only and shared.
    ///
    /// The engine never shrinks a segment file while it is mapped, and it
    /// hands readers only regions whose writes have completed; a file
    /// truncated by another process under a live map is outside what any
    /// mmap engine can guard against (docs/DURABILITY.md).
    pub fn of_file(file: &File) -> io::Result<Map> {
        // SAFETY: the map is read-only and shared. The engine never shrinks a
        // segment file while it is mapped (torn-tail truncation happens
        // before `open` maps it; compaction unlinks files, which keeps mapped
        // pages valid), and it hands readers only regions whose writes have
        // completed and been committed, so no reader sees bytes change.
        unsafe { memmap2::Mmap::map(file) }.map(Map)
    }

    /// The mapped length in bytes.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// True for a map of an empty file.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl std::ops::Deref for Map {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        &self.0
    }
}

impl std::fmt::Debug for Map {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Map").field("len", &self.0.len()).finish()
    }
}

/// Bytes of a stored object: a cheap, cloneable view into a memory-mapped
/// segment file. It never copies; it keeps the map alive, so it stays valid
/// after the object is deleted or its segment compacted away.
#[derive(Clone)]
pub struct Slice {
    map: Arc<Map>,
    start: usize,
    len: usize,
}

impl Slice {
    pub(crate) fn from_map(map: Arc<Map>, start: u64, len: u64) -> Result<Slice> {
        let end = start.checked_add(len).filter(|e| *e <= map.len() as u64);
        if end.is_none() {
            return Err(corrupt!(
                "slice {start}+{len} is outside a {}-byte map",
                map.len()
            ));
        }
        Ok(Slice {
            map,
            start: start as usize,
            len: len as usize,
        })
    }
}

impl std::ops::Deref for Slice {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        // In bounds by construction (checked in `from_map` / `slice`).
        self.map
            .get(self.start..self.start + self.len)
            .unwrap_or(&[])
    }
}

impl AsRef<[u8]> for Slice {
    fn as_ref(&self) -> &[u8] {
        self
    }
}

impl std::fmt::Debug for Slice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Slice")
            .field("start", &self.start)
            .field("len", &self.len)
            .finish()
    }
}
