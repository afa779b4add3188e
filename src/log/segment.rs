//! Segment files: creation, positioned writes, fsync, memory maps and the
//! record scan that recovery uses. All file access goes through the
//! [`Backend`](crate::backend::Backend).

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use parking_lot::Mutex;

use crate::log::map::{Map, WriteMap};

use crate::backend::{Backend, BackendFile};
use crate::error::{corrupt, Error, Result};
use crate::log::format::{
    decode_segment_header_version, encode_segment_header, encode_segment_header_version,
    FORMAT_VERSION_RECYCLED, SEGMENT_HEADER_LEN,
};

/// How much of a file's blocks [`Segment::free_in_steps`] and the
/// pre-writer's give-backs free at a time: a few milliseconds of file-system
/// (and discard) work, so a writer's fdatasync never waits behind much more.
pub(crate) const FREE_STEP: u64 = 2 << 20;
/// The pause between two steps of freeing.
pub(crate) const FREE_PAUSE: std::time::Duration = std::time::Duration::from_millis(1);

/// File name of segment `id`.
pub(crate) fn segment_file_name(id: u64) -> String {
    format!("seg-{id:08}.log")
}

/// File name of a segment file kept for reuse (`Options::recycle_segments`);
/// `n` is the id of the segment it was.
pub(crate) fn pool_file_name(n: u64) -> String {
    format!("free-{n:08}.log")
}

/// Parses a pool file name back into its number.
pub(crate) fn parse_pool_file_name(name: &str) -> Option<u64> {
    parse_numbered(name, "free-", pool_file_name)
}

/// Parses a segment file name back into its id.
/// Only the canonical spelling counts, so no two files name one segment.
pub(crate) fn parse_segment_file_name(name: &str) -> Option<u64> {
    parse_numbered(name, "seg-", segment_file_name)
}

/// The number in `name` = `prefix` + digits + `.log`, when `name` is its
/// canonical spelling (`format`).
fn parse_numbered(name: &str, prefix: &str, format: fn(u64) -> String) -> Option<u64> {
    let digits = name.strip_prefix(prefix)?.strip_suffix(".log")?;
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let n = digits.parse().ok()?;
    (format(n) == name).then_some(n)
}

/// Opens an existing segment file. Its reads through the file (record
/// scans: headers between data regions they skip) are scattered, so the
/// kernel is told to read what is asked and nothing ahead: its read-ahead
/// (up to `read_ahead_kb`, 8 MiB on this machine's disk) otherwise pulled
/// in every byte of the log at each open. Reads through the map (objects'
/// bytes) keep the kernel's read-ahead.
fn open_existing(backend: &dyn Backend, path: &Path) -> std::io::Result<Arc<dyn BackendFile>> {
    let file = backend.open(path)?;
    let _ = file.advise_scattered_reads();
    Ok(file)
}

/// Fsyncs a directory, so that created or removed entries are durable.
pub(crate) fn sync_dir(backend: &dyn Backend, dir: &Path) -> Result<()> {
    backend
        .sync_dir(dir)
        .map_err(|e| Error::io(format!("fsync of directory {}", dir.display()), e))
}

/// One segment file, sized to its full length up front and mapped once, so
/// the map never points past the end of the file.
///
/// The map needs no open file, so a sealed segment keeps no file
/// descriptor: a store of thousands of segments holds a handful of them
/// (the active segment's, the pre-writer's), not one per segment. What
/// needs the file of a sealed segment (a scan, a hole punched, a region of
/// a writer that outlived a rotation, its fdatasync) opens it again by
/// path for as long as it needs it.
pub(crate) struct Segment {
    pub(crate) id: u64,
    pub(crate) path: PathBuf,
    backend: Arc<dyn Backend>,
    /// The open file: kept while the segment is active (or being freed);
    /// `None` once sealed, unless a [`FilePin`] holds it.
    file: Mutex<FileSlot>,
    /// Written since its last successful fdatasync (`sync_all` skips the
    /// sealed segments that are not).
    dirty: AtomicBool,
    map: Arc<Map>,
    /// Every record header before this offset is durable (see
    /// `format::push_meta_record_salted`).
    synced: AtomicU64,
    /// A recycled file (format version 2): its record headers' CRC32Cs are
    /// salted with its id, and the records of its earlier life may follow
    /// its own.
    recycled: bool,
}

#[derive(Default)]
struct FileSlot {
    file: Option<Arc<dyn BackendFile>>,
    /// Sealed: the file is not kept open for itself.
    sealed: bool,
    /// Holders of a [`FilePin`]: the file stays open while any is alive.
    pins: usize,
    /// The active segment's writable map for its appends (see
    /// [`Segment::append_at`]), when the backend offers one.
    wmap: Option<Arc<WriteMap>>,
}

/// Keeps a segment's file open (and shared by every call on the segment)
/// while it lives: for a loop of many calls on a sealed segment.
pub(crate) struct FilePin<'a> {
    seg: &'a Segment,
}

impl Drop for FilePin<'_> {
    fn drop(&mut self) {
        let mut slot = self.seg.file.lock();
        slot.pins -= 1;
        if slot.pins == 0 && slot.sealed {
            slot.file = None;
        }
    }
}

impl Segment {
    /// Creates segment `id` of `size` bytes (header written, rest zeros) and
    /// maps it. With `durable`, the file and its directory entry are synced.
    pub(crate) fn create(
        backend: &Arc<dyn Backend>,
        dir: &Path,
        id: u64,
        size: u64,
        durable: bool,
    ) -> Result<Segment> {
        let path = dir.join(segment_file_name(id));
        let name = path.display().to_string();
        let file = backend
            .create_new(&path)
            .map_err(|e| Error::io(format!("creating {name}"), e))?;
        let seg = (|| {
            file.write_all_at(&encode_segment_header(id), 0)
                .map_err(|e| Error::io(format!("writing header of {name}"), e))?;
            file.set_len(size.max(SEGMENT_HEADER_LEN))
                .map_err(|e| Error::io(format!("sizing {name}"), e))?;
            if durable {
                file.sync_all()
                    .map_err(|e| Error::io(format!("fsync of {name}"), e))?;
                sync_dir(&**backend, dir)?;
            }
            Segment::from_file(backend, id, path.clone(), Arc::clone(&file), false, false)
        })();
        if seg.is_err() {
            // Never leave a half-made segment behind for recovery to trip on.
            let _ = backend.remove_file(&path);
        }
        seg
    }

    /// Opens an existing segment file and checks its header.
    pub(crate) fn open(backend: &Arc<dyn Backend>, path: &Path) -> Result<Segment> {
        let name = path.display().to_string();
        let file =
            open_existing(&**backend, path).map_err(|e| Error::io(format!("opening {name}"), e))?;
        let mut header = [0u8; SEGMENT_HEADER_LEN as usize];
        file.read_exact_at(&mut header, 0)
            .map_err(|_| corrupt!("segment {name}: shorter than its header"))?;
        let (id, version) = decode_segment_header_version(&header, &name)?;
        Segment::from_file(
            backend,
            id,
            path.to_path_buf(),
            file,
            version == FORMAT_VERSION_RECYCLED,
            // Not known synced by this process: a process that stopped
            // may have left pages of it unwritten (`sync_all` covers them).
            true,
        )
    }

    /// Makes the pool file at `pool` segment `id`: a version-2 header is
    /// written over the old one and made durable, then the file is renamed
    /// to the segment's name and the directory synced. Its old records
    /// stay, never valid again (their header CRCs are not salted with
    /// `id`). A failure before the rename leaves the pool file as it was
    /// (a pool file's header is never read); after it, the file is removed.
    pub(crate) fn recycle(
        backend: &Arc<dyn Backend>,
        dir: &Path,
        pool: &Path,
        id: u64,
    ) -> Result<Segment> {
        let path = dir.join(segment_file_name(id));
        let name = pool.display().to_string();
        let file = backend
            .open(pool)
            .map_err(|e| Error::io(format!("opening {name}"), e))?;
        file.write_all_at(
            &encode_segment_header_version(id, FORMAT_VERSION_RECYCLED),
            0,
        )
        .and_then(|()| file.sync_data())
        .map_err(|e| Error::io(format!("writing the header of {name}"), e))?;
        drop(file);
        backend
            .rename(pool, &path)
            .map_err(|e| Error::io(format!("renaming {name} to {}", path.display()), e))?;
        // Opened again by its new name (a backend may track files by name).
        let seg = sync_dir(&**backend, dir).and_then(|()| {
            let file = backend
                .open(&path)
                .map_err(|e| Error::io(format!("opening {}", path.display()), e))?;
            Segment::from_file(backend, id, path.clone(), file, true, false)
        });
        if seg.is_err() {
            let _ = backend.remove_file(&path);
        }
        seg
    }

    fn from_file(
        backend: &Arc<dyn Backend>,
        id: u64,
        path: PathBuf,
        file: Arc<dyn BackendFile>,
        recycled: bool,
        dirty: bool,
    ) -> Result<Segment> {
        let map = file
            .map()
            .map_err(|e| Error::io(format!("mapping {}", path.display()), e))?;
        Ok(Segment {
            id,
            path,
            backend: Arc::clone(backend),
            file: Mutex::new(FileSlot {
                file: Some(file),
                sealed: false,
                pins: 0,
                wmap: None,
            }),
            dirty: AtomicBool::new(dirty),
            map: Arc::new(map),
            synced: AtomicU64::new(SEGMENT_HEADER_LEN),
            recycled,
        })
    }

    /// The open file: the one kept (active, pinned), else the file opened
    /// again by path for the caller alone (closed when it drops it).
    pub(crate) fn file(&self) -> std::io::Result<Arc<dyn BackendFile>> {
        if let Some(f) = &self.file.lock().file {
            return Ok(Arc::clone(f));
        }
        open_existing(&*self.backend, &self.path)
    }

    /// Keeps the file open while the pin lives (opening it again if the
    /// segment is sealed).
    pub(crate) fn pin(&self) -> Result<FilePin<'_>> {
        let mut slot = self.file.lock();
        if slot.file.is_none() {
            let f = open_existing(&*self.backend, &self.path)
                .map_err(|e| Error::io(format!("opening {}", self.path.display()), e))?;
            slot.file = Some(f);
        }
        slot.pins += 1;
        Ok(FilePin { seg: self })
    }

    /// The segment is sealed (or, at open, scanned and not the newest): its
    /// file is closed once no pin holds it, and opened again on demand.
    pub(crate) fn seal_file(&self) {
        let mut slot = self.file.lock();
        slot.sealed = true;
        // (Its dirty pages stay in the page cache: unmapping loses none.)
        slot.wmap = None;
        if slot.pins == 0 {
            slot.file = None;
        }
    }

    /// Keeps the file open from now on (a removed segment, to free its
    /// blocks in steps after its name is gone). Best effort: without an
    /// open file, its blocks go back at the unlink.
    pub(crate) fn keep_file(&self) {
        let mut slot = self.file.lock();
        if slot.file.is_none() {
            slot.file = open_existing(&*self.backend, &self.path).ok();
        }
        slot.sealed = false;
    }

    /// True when something was written since the last successful
    /// fdatasync.
    pub(crate) fn is_dirty(&self) -> bool {
        self.dirty.load(Ordering::SeqCst)
    }

    /// True for a recycled file (format version 2).
    pub(crate) fn recycled(&self) -> bool {
        self.recycled
    }

    /// The salt of this segment's record header CRC32Cs: its id in a
    /// recycled file, none in a new one.
    pub(crate) fn salt(&self) -> Option<u64> {
        self.recycled.then_some(self.id)
    }

    /// The mapped length of the segment.
    pub(crate) fn len(&self) -> u64 {
        self.map.len() as u64
    }

    /// Writes `buf` at `offset` (a positioned write; no shared cursor).
    pub(crate) fn write_at(&self, buf: &[u8], offset: u64) -> Result<()> {
        if offset.saturating_add(buf.len() as u64) > self.len() {
            return Err(corrupt!(
                "write of {} bytes at offset {offset} past the end of segment {}",
                buf.len(),
                self.id
            ));
        }
        let r = self
            .file()
            .and_then(|f| f.write_all_at(buf, offset))
            .map_err(|e| Error::io(format!("writing {}", self.path.display()), e));
        // (After the write: an fdatasync that cleared the flag before
        // it may have missed it.)
        self.dirty.store(true, Ordering::SeqCst);
        r
    }

    /// Appends written through a map are at most this long (a larger one is
    /// one `pwrite`, whose cost is the copy, not the call).
    const MAPPED_APPEND_MAX: usize = 64 << 10;

    /// Writes through a writable map from now on, for [`Segment::append_at`]
    /// (the active segment under `Durability::None` and `Batched`), when
    /// the backend offers one; otherwise, and on any error, appends stay
    /// `pwrite`s.
    pub(crate) fn map_appends(&self) {
        let mut slot = self.file.lock();
        if slot.wmap.is_none() && !slot.sealed {
            if let Some(Ok(Some(w))) = slot.file.as_ref().map(|f| f.map_writable()) {
                if w.len() as u64 == self.len() {
                    slot.wmap = Some(Arc::new(w));
                }
            }
        }
    }

    /// Writes the record(s) `buf` at the tail offset `offset`: a copy into
    /// the writable map when there is one and `buf` is small, else
    /// [`Segment::write_at`]. The caller must have allocated the blocks of
    /// `offset..offset + buf.len()` (a write fault there must need no
    /// space: see [`WriteMap`]).
    pub(crate) fn append_at(&self, buf: &[u8], offset: u64) -> Result<()> {
        if buf.len() <= Self::MAPPED_APPEND_MAX {
            let wmap = self.file.lock().wmap.clone();
            if wmap.is_some_and(|w| w.write(buf, offset)) {
                self.dirty.store(true, Ordering::SeqCst);
                return Ok(());
            }
        }
        self.write_at(buf, offset)
    }

    /// Reads `buf.len()` bytes at `offset` with a positional read (not
    /// through the map: safe on bytes that may never have been written).
    pub(crate) fn read_at(&self, buf: &mut [u8], offset: u64) -> Result<()> {
        self.file()
            .and_then(|f| f.read_exact_at(buf, offset))
            .map_err(|e| Error::io(format!("reading {}", self.path.display()), e))
    }

    /// Allocates disk blocks for `offset..offset+len` (see
    /// [`BackendFile::allocate`]).
    pub(crate) fn allocate(&self, offset: u64, len: u64) -> Result<()> {
        self.file()
            .and_then(|f| f.allocate(offset, len))
            .map_err(|e| {
                Error::io(
                    format!(
                        "allocating {len} bytes at {offset} in {}",
                        self.path.display()
                    ),
                    e,
                )
            })
    }

    /// Frees the disk blocks of `offset..offset+len` (see
    /// [`BackendFile::punch_hole`]).
    pub(crate) fn punch_hole(&self, offset: u64, len: u64) -> std::io::Result<()> {
        self.file()?.punch_hole(offset, len)
    }

    /// Frees the blocks of an unlinked segment no one else holds, from the
    /// end, `FREE_STEP` at a time with a pause between: freeing a whole
    /// segment in one go (at its last close) keeps the file system busy
    /// for hundreds of milliseconds, and on a `discard` mount the device
    /// too, while every writer's fdatasync waits behind it. Best effort:
    /// what is left goes at the last close.
    pub(crate) fn free_in_steps(&self) {
        let Some(file) = self.file.lock().file.clone() else {
            return;
        };
        let mut len = self.len();
        while len > 0 {
            len = len.saturating_sub(FREE_STEP);
            let t = std::time::Instant::now();
            if file.set_len(len).is_err() {
                return;
            }
            // At most half of the time freeing: a slow step (a fragmented
            // stretch, a slow discard) is followed by as long a pause.
            std::thread::sleep(t.elapsed().max(FREE_PAUSE));
        }
    }

    /// Starts reading `offset..offset+len` into the cache (see
    /// [`BackendFile::prefetch`]). A hint: failures are ignored.
    pub(crate) fn prefetch(&self, offset: u64, len: u64) {
        if let Ok(f) = self.file() {
            let _ = f.prefetch(offset, len);
        }
    }

    /// Starts the device write of `offset..offset+len` without waiting (see
    /// [`BackendFile::start_writeback`]). A hint: failures are ignored here
    /// and surface at the next [`Segment::sync_data`].
    pub(crate) fn start_writeback(&self, offset: u64, len: u64) {
        if let Ok(f) = self.file() {
            let _ = f.start_writeback(offset, len);
        }
    }

    /// fdatasync of the segment file.
    pub(crate) fn sync_data(&self) -> Result<()> {
        self.dirty.store(false, Ordering::SeqCst);
        let r = self
            .file()
            .and_then(|f| f.sync_data())
            .map_err(|e| Error::io(format!("fdatasync of {}", self.path.display()), e));
        if r.is_err() {
            self.dirty.store(true, Ordering::SeqCst);
        }
        r
    }

    /// Every record header before this offset is known durable.
    pub(crate) fn synced(&self) -> u64 {
        self.synced.load(Ordering::SeqCst)
    }

    /// Records that everything written before `upto` is durable.
    pub(crate) fn mark_synced(&self, upto: u64) {
        self.synced.fetch_max(upto, Ordering::SeqCst);
    }

    /// True while a reader (a `Blob`, a `Slice`, a copy in flight) holds
    /// this segment's map.
    pub(crate) fn map_in_use(&self) -> bool {
        Arc::strong_count(&self.map) > 1
    }

    /// The shared map, for holders that outlive this segment's file.
    pub(crate) fn map(&self) -> Arc<Map> {
        Arc::clone(&self.map)
    }
}
