//! The real backend, with its syncs and `pwrite`s counted: every call goes
//! to the real file system (`StdBackend`), writable maps included. (The
//! pre-writer is off unless the options turn it on: its syncs would be
//! counted too.)

use std::fmt;
use std::io;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};

use partstore::backend::{Backend, BackendFile, Map, StdBackend, WriteMap};

/// Calls seen so far.
#[derive(Default)]
pub struct Counts {
    /// `sync_data` of a file (fdatasync).
    pub sync_data: AtomicU64,
    /// `sync_all` of a file (fsync).
    pub sync_all: AtomicU64,
    /// `sync_dir`.
    pub sync_dir: AtomicU64,
    /// `write_all_at` of a file (pwrite).
    pub writes: AtomicU64,
    /// See [`Counting::hold_next_sync`].
    hold: Hold,
}

/// A `sync_data` held back, to fail once another has succeeded.
#[derive(Default)]
struct Hold {
    /// The next `sync_data` is to be held.
    armed: AtomicBool,
    /// A held `sync_data` is waiting.
    waiting: AtomicBool,
    /// `sync_data` calls that returned `Ok`, counted while one is held.
    succeeded: Mutex<u64>,
    cv: Condvar,
}

/// A snapshot of [`Counts`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Snapshot {
    pub sync_data: u64,
    pub sync_all: u64,
    pub sync_dir: u64,
    pub writes: u64,
}

impl Snapshot {
    /// File syncs (fdatasync and fsync) in all.
    pub fn file_syncs(&self) -> u64 {
        self.sync_data + self.sync_all
    }

    /// What happened since `before`.
    pub fn since(&self, before: Snapshot) -> Snapshot {
        Snapshot {
            sync_data: self.sync_data - before.sync_data,
            sync_all: self.sync_all - before.sync_all,
            sync_dir: self.sync_dir - before.sync_dir,
            writes: self.writes - before.writes,
        }
    }
}

/// The real backend, counted.
#[derive(Clone, Default)]
pub struct Counting {
    counts: Arc<Counts>,
}

impl fmt::Debug for Counting {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Counting({:?})", self.snapshot())
    }
}

impl Counting {
    /// Holds the next `sync_data` until another `sync_data` has returned
    /// `Ok`, then fails it with EIO without syncing: the kernel reports a
    /// writeback error to the first fdatasync of the descriptor that checks
    /// for it, so of two running at once one may fail while the other,
    /// finishing first, succeeds.
    pub fn hold_next_sync(&self) {
        *self.counts.hold.succeeded.lock().unwrap() = 0;
        self.counts.hold.armed.store(true, Ordering::SeqCst);
    }

    /// True while the held `sync_data` waits.
    pub fn sync_held(&self) -> bool {
        self.counts.hold.waiting.load(Ordering::SeqCst)
    }

    pub fn snapshot(&self) -> Snapshot {
        let c = &self.counts;
        Snapshot {
            sync_data: c.sync_data.load(Ordering::SeqCst),
            sync_all: c.sync_all.load(Ordering::SeqCst),
            sync_dir: c.sync_dir.load(Ordering::SeqCst),
            writes: c.writes.load(Ordering::SeqCst),
        }
    }

    fn wrap(&self, real: Arc<dyn BackendFile>) -> Arc<dyn BackendFile> {
        Arc::new(CountingFile {
            counts: Arc::clone(&self.counts),
            real,
        })
    }
}

impl Backend for Counting {
    fn create_dir_all(&self, dir: &Path) -> io::Result<()> {
        StdBackend.create_dir_all(dir)
    }
    fn read_dir(&self, dir: &Path) -> io::Result<Vec<String>> {
        StdBackend.read_dir(dir)
    }
    fn create_new(&self, path: &Path) -> io::Result<Arc<dyn BackendFile>> {
        Ok(self.wrap(StdBackend.create_new(path)?))
    }
    fn open(&self, path: &Path) -> io::Result<Arc<dyn BackendFile>> {
        Ok(self.wrap(StdBackend.open(path)?))
    }
    fn remove_file(&self, path: &Path) -> io::Result<()> {
        StdBackend.remove_file(path)
    }
    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        self.counts.sync_dir.fetch_add(1, Ordering::SeqCst);
        StdBackend.sync_dir(dir)
    }
    fn allocated_bytes(&self, path: &Path) -> io::Result<u64> {
        StdBackend.allocated_bytes(path)
    }
}

struct CountingFile {
    counts: Arc<Counts>,
    real: Arc<dyn BackendFile>,
}

impl BackendFile for CountingFile {
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        self.real.read_exact_at(buf, offset)
    }
    fn write_all_at(&self, buf: &[u8], offset: u64) -> io::Result<()> {
        self.counts.writes.fetch_add(1, Ordering::SeqCst);
        self.real.write_all_at(buf, offset)
    }
    fn sync_data(&self) -> io::Result<()> {
        self.counts.sync_data.fetch_add(1, Ordering::SeqCst);
        let hold = &self.counts.hold;
        if hold.armed.swap(false, Ordering::SeqCst) {
            hold.waiting.store(true, Ordering::SeqCst);
            let mut n = hold.succeeded.lock().unwrap();
            while *n == 0 {
                n = hold.cv.wait(n).unwrap();
            }
            hold.waiting.store(false, Ordering::SeqCst);
            return Err(io::Error::from_raw_os_error(5));
        }
        let r = self.real.sync_data();
        if r.is_ok() {
            *hold.succeeded.lock().unwrap() += 1;
            hold.cv.notify_all();
        }
        r
    }
    fn sync_all(&self) -> io::Result<()> {
        self.counts.sync_all.fetch_add(1, Ordering::SeqCst);
        self.real.sync_all()
    }
    fn set_len(&self, len: u64) -> io::Result<()> {
        self.real.set_len(len)
    }
    fn len(&self) -> io::Result<u64> {
        self.real.len()
    }
    fn next_data(&self, offset: u64) -> io::Result<Option<u64>> {
        self.real.next_data(offset)
    }
    fn next_hole(&self, offset: u64) -> io::Result<u64> {
        self.real.next_hole(offset)
    }
    fn start_writeback(&self, offset: u64, len: u64) -> io::Result<()> {
        self.real.start_writeback(offset, len)
    }
    fn allocate(&self, offset: u64, len: u64) -> io::Result<()> {
        self.real.allocate(offset, len)
    }
    fn punch_hole(&self, offset: u64, len: u64) -> io::Result<()> {
        self.real.punch_hole(offset, len)
    }
    fn map(&self) -> io::Result<Map> {
        self.real.map()
    }
    fn map_writable(&self) -> io::Result<Option<WriteMap>> {
        self.real.map_writable()
    }
}
