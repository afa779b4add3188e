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

/// A writable, shared memory map of a whole segment file, for the small
/// appends at its tail: a write is a copy into the page cache, with no
/// system call (the `pwrite` was most of a tiny put's time). Only the
/// active segment has one, and only where a write fault can never fail for
/// lack of space: the engine writes through it only into blocks it has
/// allocated (pre-written or `fallocate`d), on file systems that need no
/// space to write into those ([`crate::backend::StdBackend`] offers it on
/// ext4, XFS and tmpfs).
pub struct WriteMap {
    map: memmap2::MmapRaw,
    /// Everything before this offset has been unmapped (see [`WINDOW`]).
    released: std::sync::atomic::AtomicUsize,
}

/// The pages a [`WriteMap`] keeps mapped behind the writes: once a write
/// ends in a window of this many bytes, everything before the window
/// before it is unmapped (its dirty pages stay in the page cache, to be
/// written back), so the process does not hold the whole segment as
/// resident memory.
const WINDOW: usize = 1 << 20;

impl WriteMap {
    /// Maps `file` writable and shared.
    pub fn of_file(file: &File) -> io::Result<WriteMap> {
        // (A raw map hands out no references: the engine never shrinks a
        // segment file while it is mapped (see `Map::of_file`), and its
        // writes go through raw pointers into ranges no reader has been
        // handed (the tail, past every published record), so no `&[u8]` of
        // another map of the same pages sees them change.)
        let map = memmap2::MmapOptions::new().map_raw(file)?;
        Ok(WriteMap {
            map,
            released: std::sync::atomic::AtomicUsize::new(0),
        })
    }

    /// The mapped length in bytes.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// True for a map of an empty file.
    pub fn is_empty(&self) -> bool {
        self.map.len() == 0
    }

    /// Copies `buf` to `offset`; false (nothing written) when it does not
    /// lie inside the map.
    pub fn write(&self, buf: &[u8], offset: u64) -> bool {
        let Some(end) = usize::try_from(offset)
            .ok()
            .and_then(|o| o.checked_add(buf.len()))
            .filter(|end| *end <= self.map.len())
        else {
            return false;
        };
        let start = end - buf.len();
        // SAFETY: `start..end` lies inside the map (checked above), and the
        // caller writes only where no reader reads (see `of_file`); the
        // source is a distinct slice of the caller's.
        unsafe {
            std::ptr::copy_nonoverlapping(
                buf.as_ptr(),
                self.map.as_mut_ptr().add(start),
                buf.len(),
            );
        }
        let keep_from = (end / WINDOW).saturating_sub(1) * WINDOW;
        let from = self
            .released
            .fetch_max(keep_from, std::sync::atomic::Ordering::Relaxed);
        if from < keep_from {
            // SAFETY: `DontNeed` on a shared file mapping only unmaps the
            // pages: their contents, dirty or not, stay in the file's page
            // cache and a later access maps them again. (Only a hint:
            // failing leaves them mapped.)
            let _ = unsafe {
                self.map.unchecked_advise_range(
                    memmap2::UncheckedAdvice::DontNeed,
                    from,
                    keep_from - from,
                )
            };
        }
        true
    }
}

impl std::fmt::Debug for WriteMap {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WriteMap")
            .field("len", &self.map.len())
            .finish()
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
