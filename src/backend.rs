//! The storage backend: every file operation the engine makes goes through
//! [`Backend`] and [`BackendFile`], so tests can swap in a backend that fails
//! the Nth call or simulates a power loss. [`StdBackend`] is the real one:
//! `std::fs` plus read-only `memmap2` maps.

use std::fmt::Debug;
use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::Path;
use std::sync::Arc;

pub use crate::log::map::{Map, WriteMap};

/// A directory of files, as the engine uses it.
pub trait Backend: Send + Sync + Debug {
    /// Creates a directory and its parents.
    fn create_dir_all(&self, dir: &Path) -> io::Result<()>;
    /// The names of the entries of a directory.
    fn read_dir(&self, dir: &Path) -> io::Result<Vec<String>>;
    /// Creates a new file for reading and writing; fails if it exists.
    fn create_new(&self, path: &Path) -> io::Result<Arc<dyn BackendFile>>;
    /// Opens an existing file for reading and writing.
    fn open(&self, path: &Path) -> io::Result<Arc<dyn BackendFile>>;
    /// Unlinks a file (open maps of it stay valid).
    fn remove_file(&self, path: &Path) -> io::Result<()>;
    /// Makes the directory's entries (created and removed files) durable.
    fn sync_dir(&self, dir: &Path) -> io::Result<()>;
    /// Bytes of disk a file occupies (its allocated blocks).
    fn allocated_bytes(&self, path: &Path) -> io::Result<u64>;
    /// Renames a file (`to` does not exist); durable once the directory is
    /// synced. The default is `Unsupported`: a store on such a backend
    /// never keeps segment files for reuse
    /// (`crate::Options::recycle_segments`).
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        let _ = (from, to);
        Err(io::ErrorKind::Unsupported.into())
    }
    /// Bytes free for an unprivileged writer on the file system of `dir`
    /// (`statvfs`). The default is `Unsupported` (then recycling keeps
    /// files whatever the free space).
    fn available_bytes(&self, dir: &Path) -> io::Result<u64> {
        let _ = dir;
        Err(io::ErrorKind::Unsupported.into())
    }
    /// Whether a store runs its pre-writer when `Options::prewrite` is left
    /// unset (`crate::Options::prewrite`). The default is `false`: a test
    /// backend that counts or fails calls gets none from a background
    /// thread unless the test asks for it. [`StdBackend`] says `true`.
    fn prewrite_by_default(&self) -> bool {
        false
    }
}

/// One open file.
pub trait BackendFile: Send + Sync {
    /// Reads exactly `buf.len()` bytes at `offset`.
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()>;
    /// Writes all of `buf` at `offset`.
    fn write_all_at(&self, buf: &[u8], offset: u64) -> io::Result<()>;
    /// fdatasync: makes written data durable.
    fn sync_data(&self) -> io::Result<()>;
    /// fsync: makes data and metadata (the length) durable.
    fn sync_all(&self) -> io::Result<()>;
    /// Truncates or extends (with zeros) the file.
    fn set_len(&self, len: u64) -> io::Result<()>;
    /// The file's length.
    fn len(&self) -> io::Result<u64>;
    /// True when the file is empty.
    fn is_empty(&self) -> io::Result<bool> {
        Ok(self.len()? == 0)
    }
    /// The first offset at or after `offset` that may hold data (not a
    /// hole), or `None` when only holes follow. The default says "maybe
    /// data" everywhere, which is always correct, just slower to scan.
    fn next_data(&self, offset: u64) -> io::Result<Option<u64>> {
        Ok((offset < self.len()?).then_some(offset))
    }
    /// The first hole at or after `offset` (the end of the file counts).
    fn next_hole(&self, offset: u64) -> io::Result<u64> {
        let _ = offset;
        self.len()
    }
    /// Starts writing back the dirty pages of `offset..offset+len` to the
    /// device without waiting for them (Linux `sync_file_range` with
    /// `SYNC_FILE_RANGE_WRITE`). Only a hint that lets the disk work while
    /// the caller goes on hashing; it makes nothing durable, so a later
    /// [`BackendFile::sync_data`] is still needed. The default does nothing.
    fn start_writeback(&self, offset: u64, len: u64) -> io::Result<()> {
        let _ = (offset, len);
        Ok(())
    }
    /// Says that this file descriptor will read at scattered offsets (record
    /// headers between data regions the reader skips), so the kernel reads
    /// what is asked and nothing ahead of it (Linux
    /// `posix_fadvise(RANDOM)`). Only a hint; the default does nothing.
    fn advise_scattered_reads(&self) -> io::Result<()> {
        Ok(())
    }
    /// Starts reading `offset..offset+len` into the cache without waiting
    /// (Linux `posix_fadvise(WILLNEED)`): a scan reading records that
    /// follow each other asks for the next stretch while it parses this
    /// one. Only a hint; the default does nothing.
    fn prefetch(&self, offset: u64, len: u64) -> io::Result<()> {
        let _ = (offset, len);
        Ok(())
    }
    /// Allocates disk blocks for `offset..offset+len` (Linux `fallocate`,
    /// keeping the file's size), so later writes there cannot fail for lack
    /// of space. ENOSPC when the disk is full. The default does nothing (a
    /// file system without it: writes may then fail with ENOSPC).
    fn allocate(&self, offset: u64, len: u64) -> io::Result<()> {
        let _ = (offset, len);
        Ok(())
    }
    /// Frees the disk blocks of `offset..offset+len` (which then read as
    /// zeros), keeping the file's size. The default is `Unsupported`.
    fn punch_hole(&self, offset: u64, len: u64) -> io::Result<()> {
        let _ = (offset, len);
        Err(io::ErrorKind::Unsupported.into())
    }
    /// A read-only map of the whole file as it is now. Writes made later
    /// through [`BackendFile::write_all_at`] must be visible through it (a
    /// shared mapping of the same file).
    fn map(&self) -> io::Result<Map>;
    /// A writable shared map of the whole file, for small appends into
    /// blocks already allocated ([`BackendFile::allocate`] or written), if
    /// writing through one can never fail for lack of space on this file
    /// system; writes through it must be visible through [`BackendFile::map`]
    /// and made durable by [`BackendFile::sync_data`]. `None` (the default):
    /// every write goes through [`BackendFile::write_all_at`] (a backend
    /// that watches writes, such as a fault model, must leave it so).
    fn map_writable(&self) -> io::Result<Option<WriteMap>> {
        Ok(None)
    }
}

/// The data extents of `file` within `from..end`, holes skipped (through
/// [`BackendFile::next_data`] / [`BackendFile::next_hole`]), clipped to
/// that span. Recovery looks past the end of a segment's records with it
/// without reading the (sparse) preallocated tail.
pub(crate) fn data_ranges(
    file: &dyn BackendFile,
    from: u64,
    end: u64,
) -> io::Result<Vec<std::ops::Range<u64>>> {
    let mut out = Vec::new();
    let mut pos = from;
    while pos < end {
        let Some(data) = file.next_data(pos)? else {
            break;
        };
        let start = data.max(pos);
        if start >= end {
            break;
        }
        // A hole at or before `start` would be an inconsistent answer: take
        // at least one byte so the walk always advances.
        let stop = file.next_hole(start)?.clamp(start + 1, end);
        out.push(start..stop);
        pos = stop;
    }
    Ok(out)
}

/// The real backend: `std::fs` and `memmap2`.
#[derive(Debug, Default, Clone, Copy)]
pub struct StdBackend;

struct StdFile(File);

impl Backend for StdBackend {
    fn create_dir_all(&self, dir: &Path) -> io::Result<()> {
        std::fs::create_dir_all(dir)
    }

    fn read_dir(&self, dir: &Path) -> io::Result<Vec<String>> {
        let mut names = Vec::new();
        for entry in std::fs::read_dir(dir)? {
            if let Some(name) = entry?.file_name().to_str() {
                names.push(name.to_string());
            }
        }
        Ok(names)
    }

    fn create_new(&self, path: &Path) -> io::Result<Arc<dyn BackendFile>> {
        let f = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(path)?;
        Ok(Arc::new(StdFile(f)))
    }

    fn open(&self, path: &Path) -> io::Result<Arc<dyn BackendFile>> {
        let f = OpenOptions::new().read(true).write(true).open(path)?;
        Ok(Arc::new(StdFile(f)))
    }

    fn remove_file(&self, path: &Path) -> io::Result<()> {
        std::fs::remove_file(path)
    }

    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        File::open(dir)?.sync_all()
    }

    fn allocated_bytes(&self, path: &Path) -> io::Result<u64> {
        Ok(std::fs::metadata(path)?.blocks() * 512)
    }

    fn prewrite_by_default(&self) -> bool {
        true
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        std::fs::rename(from, to)
    }

    fn available_bytes(&self, dir: &Path) -> io::Result<u64> {
        let st = rustix::fs::statvfs(dir)?;
        Ok(st.f_bavail.saturating_mul(st.f_frsize))
    }
}

impl BackendFile for StdFile {
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        self.0.read_exact_at(buf, offset)
    }

    fn write_all_at(&self, buf: &[u8], offset: u64) -> io::Result<()> {
        self.0.write_all_at(buf, offset)
    }

    fn sync_data(&self) -> io::Result<()> {
        self.0.sync_data()
    }

    fn sync_all(&self) -> io::Result<()> {
        self.0.sync_all()
    }

    fn set_len(&self, len: u64) -> io::Result<()> {
        self.0.set_len(len)
    }

    fn len(&self) -> io::Result<u64> {
        Ok(self.0.metadata()?.len())
    }

    fn next_data(&self, offset: u64) -> io::Result<Option<u64>> {
        match rustix::fs::seek(&self.0, rustix::fs::SeekFrom::Data(offset)) {
            Ok(at) => Ok(Some(at)),
            Err(rustix::io::Errno::NXIO) => Ok(None),
            // A file system without SEEK_DATA: assume data.
            Err(rustix::io::Errno::INVAL) => Ok(Some(offset)),
            Err(e) => Err(e.into()),
        }
    }

    fn next_hole(&self, offset: u64) -> io::Result<u64> {
        match rustix::fs::seek(&self.0, rustix::fs::SeekFrom::Hole(offset)) {
            Ok(at) => Ok(at),
            Err(rustix::io::Errno::INVAL) => self.len(),
            Err(e) => Err(e.into()),
        }
    }

    fn start_writeback(&self, offset: u64, len: u64) -> io::Result<()> {
        // posix_fadvise(DONTNEED) on Linux starts asynchronous writeback of
        // the range's dirty pages (like sync_file_range's WRITE flag, which
        // has no safe wrapper) and then drops only pages that are already
        // clean; pages still dirty or under writeback stay cached.
        let Some(len) = std::num::NonZeroU64::new(len) else {
            return Ok(());
        };
        rustix::fs::fadvise(&self.0, offset, Some(len), rustix::fs::Advice::DontNeed)
            .map_err(io::Error::from)
    }

    fn advise_scattered_reads(&self) -> io::Result<()> {
        rustix::fs::fadvise(&self.0, 0, None, rustix::fs::Advice::Random).map_err(io::Error::from)
    }

    fn prefetch(&self, offset: u64, len: u64) -> io::Result<()> {
        let Some(len) = std::num::NonZeroU64::new(len) else {
            return Ok(());
        };
        rustix::fs::fadvise(&self.0, offset, Some(len), rustix::fs::Advice::WillNeed)
            .map_err(io::Error::from)
    }

    fn allocate(&self, offset: u64, len: u64) -> io::Result<()> {
        use rustix::fs::FallocateFlags as F;
        match rustix::fs::fallocate(&self.0, F::KEEP_SIZE, offset, len) {
            // A file system without fallocate: allocation happens on write.
            Err(rustix::io::Errno::OPNOTSUPP) => Ok(()),
            r => r.map_err(io::Error::from),
        }
    }

    fn punch_hole(&self, offset: u64, len: u64) -> io::Result<()> {
        use rustix::fs::FallocateFlags as F;
        rustix::fs::fallocate(&self.0, F::PUNCH_HOLE | F::KEEP_SIZE, offset, len)
            .map_err(io::Error::from)
    }

    fn map_writable(&self) -> io::Result<Option<WriteMap>> {
        // File systems where a write fault into allocated blocks needs no
        // new space (a copy-on-write one such as btrfs reserves space at
        // the fault, and a fault that cannot have it kills the process).
        const EXT4: u64 = 0xEF53;
        const XFS: u64 = 0x5846_5342;
        const TMPFS: u64 = 0x0102_1994;
        let kind = rustix::fs::fstatfs(&self.0)?.f_type as u64;
        if ![EXT4, XFS, TMPFS].contains(&kind) {
            return Ok(None);
        }
        WriteMap::of_file(&self.0).map(Some)
    }

    fn map(&self) -> io::Result<Map> {
        Map::of_file(&self.0)
    }
}
