//! A fault-injecting storage backend for crash and I/O-error tests.
//!
//! It passes every call through to the real file system (so memory maps
//! work), counts calls and syncs, and keeps a model of what is *durable*:
//! per file, the content as of its last sync plus the writes since; per
//! directory entry, whether its creation or removal was synced. It can:
//! - fail the Nth call once with a chosen OS error (EIO, ENOSPC, ...);
//! - "lose power" at the Nth sync: that sync and every later call fail, and
//!   [`Faulty::materialize`] writes the on-disk state a power loss could
//!   leave — what was synced, plus a random subset of later writes, each
//!   possibly torn to a prefix — into a fresh directory.
//!
//! Real fsyncs are skipped: durability is what this model says, and the
//! tests run at page-cache speed.
//!
//! `allocate` (fallocate) and `punch_hole` are counted calls like the
//! others, so ENOSPC or EIO can be injected there too. `allocate` changes no
//! content. `punch_hole` zeros the range in the real file and in the model
//! *at once*: in the durable content and in every pending write over it
//! (the strictest reading: the engine must only punch regions whose freeing
//! is already durable, because a power loss may keep the hole).
#![allow(dead_code)]

use std::collections::HashMap;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use partstore::backend::Map;
use partstore::backend::{Backend, BackendFile, StdBackend};

/// A small deterministic PRNG (xorshift64*), so failures replay by seed.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }
    pub fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    pub fn below(&mut self, n: u64) -> u64 {
        if n == 0 {
            0
        } else {
            self.next() % n
        }
    }
    pub fn coin(&mut self) -> bool {
        self.next() & 1 == 1
    }
}

#[derive(Debug, Clone)]
enum Op {
    Write(u64, Vec<u8>),
    SetLen(u64),
}

#[derive(Debug, Clone, Default)]
struct FileModel {
    /// Content as of the last sync of the file.
    durable: Vec<u8>,
    /// Writes and length changes since.
    pending: Vec<Op>,
    /// The directory entry exists durably.
    entry_durable: bool,
    /// Removed (durably once the directory is synced).
    removed: bool,
    removal_durable: bool,
}

fn apply(content: &mut Vec<u8>, op: &Op) {
    match op {
        Op::Write(off, data) => {
            let end = *off as usize + data.len();
            if content.len() < end {
                content.resize(end, 0);
            }
            content[*off as usize..end].copy_from_slice(data);
        }
        Op::SetLen(len) => content.resize(*len as usize, 0),
    }
}

#[derive(Debug, Default)]
struct State {
    calls: u64,
    syncs: u64,
    fail_call: Option<(u64, i32)>,
    crash_at_sync: Option<u64>,
    crashed: bool,
    files: HashMap<PathBuf, FileModel>,
    /// Set when an injected failure fired.
    fired: bool,
    /// `allocate` / `punch_hole` calls that succeeded.
    allocations: u64,
    punches: u64,
}

/// The fault-injecting backend. Cheap to clone (shared state).
#[derive(Debug, Clone, Default)]
pub struct Faulty {
    state: Arc<Mutex<State>>,
}

const EIO: i32 = 5;
pub const ENOSPC: i32 = 28;

impl Faulty {
    pub fn new() -> Faulty {
        Faulty::default()
    }

    /// Fail call number `n` (0-based, counting every backend call) once
    /// with OS error `errno`.
    pub fn fail_call(&self, n: u64, errno: i32) {
        self.state.lock().unwrap().fail_call = Some((n, errno));
    }

    /// Lose power at sync number `n` (0-based).
    pub fn crash_at_sync(&self, n: u64) {
        self.state.lock().unwrap().crash_at_sync = Some(n);
    }

    pub fn calls(&self) -> u64 {
        self.state.lock().unwrap().calls
    }

    pub fn syncs(&self) -> u64 {
        self.state.lock().unwrap().syncs
    }

    pub fn crashed(&self) -> bool {
        self.state.lock().unwrap().crashed
    }

    pub fn fired(&self) -> bool {
        self.state.lock().unwrap().fired
    }

    /// Successful `allocate` calls so far.
    pub fn allocations(&self) -> u64 {
        self.state.lock().unwrap().allocations
    }

    /// Successful `punch_hole` calls so far.
    pub fn punches(&self) -> u64 {
        self.state.lock().unwrap().punches
    }

    /// Counts a call; returns the injected error if this call must fail.
    fn call(&self, is_sync: bool) -> io::Result<()> {
        let mut s = self.state.lock().unwrap();
        if s.crashed {
            return Err(io::Error::from_raw_os_error(EIO));
        }
        let n = s.calls;
        s.calls += 1;
        if let Some((at, errno)) = s.fail_call {
            if at == n {
                s.fired = true;
                return Err(io::Error::from_raw_os_error(errno));
            }
        }
        if is_sync {
            let k = s.syncs;
            s.syncs += 1;
            if s.crash_at_sync == Some(k) {
                s.crashed = true;
                s.fired = true;
                return Err(io::Error::from_raw_os_error(EIO));
            }
        }
        Ok(())
    }

    fn with_file<T>(&self, path: &Path, f: impl FnOnce(&mut FileModel) -> T) -> T {
        let mut s = self.state.lock().unwrap();
        let m = s
            .files
            .entry(path.to_path_buf())
            .or_insert_with(|| FileModel {
                // A file we did not create: whatever is on disk now is durable.
                durable: std::fs::read(path).unwrap_or_default(),
                entry_durable: true,
                ..FileModel::default()
            });
        f(m)
    }

    /// Writes the state a power loss at this moment could leave (chosen by
    /// `rng`) into `dst`, for every file of `src` (the store directory).
    pub fn materialize(&self, src: &Path, dst: &Path, rng: &mut Rng) {
        std::fs::create_dir_all(dst).unwrap();
        let s = self.state.lock().unwrap();
        for entry in std::fs::read_dir(src).unwrap() {
            let entry = entry.unwrap();
            let path = entry.path();
            if !s.files.contains_key(&path) {
                std::fs::copy(&path, dst.join(entry.file_name())).unwrap();
            }
        }
        let mut paths: Vec<&PathBuf> = s.files.keys().collect();
        paths.sort();
        for path in paths {
            if path.parent() != Some(src) {
                continue;
            }
            let m = &s.files[path];
            let exists = if m.removed {
                !m.removal_durable && rng.coin()
            } else {
                m.entry_durable || rng.coin()
            };
            if !exists {
                continue;
            }
            let mut content = m.durable.clone();
            for op in &m.pending {
                if !rng.coin() {
                    continue;
                }
                match op {
                    Op::Write(off, data) => {
                        let keep = if rng.coin() {
                            data.len()
                        } else {
                            rng.below(data.len() as u64 + 1) as usize
                        };
                        apply(&mut content, &Op::Write(*off, data[..keep].to_vec()));
                    }
                    op => apply(&mut content, op),
                }
            }
            std::fs::write(dst.join(path.file_name().unwrap()), &content).unwrap();
        }
    }
}

struct FaultyFile {
    backend: Faulty,
    path: PathBuf,
    real: Arc<dyn BackendFile>,
}

impl Backend for Faulty {
    fn create_dir_all(&self, dir: &Path) -> io::Result<()> {
        self.call(false)?;
        StdBackend.create_dir_all(dir)
    }

    fn read_dir(&self, dir: &Path) -> io::Result<Vec<String>> {
        self.call(false)?;
        StdBackend.read_dir(dir)
    }

    fn create_new(&self, path: &Path) -> io::Result<Arc<dyn BackendFile>> {
        self.call(false)?;
        let real = StdBackend.create_new(path)?;
        self.state.lock().unwrap().files.insert(
            path.to_path_buf(),
            FileModel {
                entry_durable: false,
                ..FileModel::default()
            },
        );
        Ok(Arc::new(FaultyFile {
            backend: self.clone(),
            path: path.to_path_buf(),
            real,
        }))
    }

    fn open(&self, path: &Path) -> io::Result<Arc<dyn BackendFile>> {
        self.call(false)?;
        let real = StdBackend.open(path)?;
        self.with_file(path, |_| ());
        Ok(Arc::new(FaultyFile {
            backend: self.clone(),
            path: path.to_path_buf(),
            real,
        }))
    }

    fn remove_file(&self, path: &Path) -> io::Result<()> {
        self.call(false)?;
        StdBackend.remove_file(path)?;
        self.with_file(path, |m| m.removed = true);
        Ok(())
    }

    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        self.call(true)?;
        let mut s = self.state.lock().unwrap();
        for (path, m) in s.files.iter_mut() {
            if path.parent() == Some(dir) {
                m.entry_durable = true;
                if m.removed {
                    m.removal_durable = true;
                }
            }
        }
        Ok(())
    }

    fn allocated_bytes(&self, path: &Path) -> io::Result<u64> {
        self.call(false)?;
        StdBackend.allocated_bytes(path)
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        self.call(false)?;
        self.with_file(from, |_| ());
        StdBackend.rename(from, to)?;
        // Until the directory is synced, a power loss may keep the old
        // name or the new one (this model: each independently), with the
        // file's content as its writes left it.
        let mut s = self.state.lock().unwrap();
        let Some(old) = s.files.get_mut(from) else {
            return Ok(());
        };
        let new = FileModel {
            entry_durable: false,
            removed: false,
            removal_durable: false,
            ..old.clone()
        };
        old.removed = true;
        old.removal_durable = false;
        s.files.insert(to.to_path_buf(), new);
        Ok(())
    }
}

impl FaultyFile {
    fn sync(&self) -> io::Result<()> {
        self.backend.call(true)?;
        self.backend.with_file(&self.path, |m| {
            let pending = std::mem::take(&mut m.pending);
            for op in &pending {
                apply(&mut m.durable, op);
            }
        });
        Ok(())
    }
}

impl BackendFile for FaultyFile {
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        self.backend.call(false)?;
        self.real.read_exact_at(buf, offset)
    }

    fn write_all_at(&self, buf: &[u8], offset: u64) -> io::Result<()> {
        self.backend.call(false)?;
        self.real.write_all_at(buf, offset)?;
        self.backend.with_file(&self.path, |m| {
            m.pending.push(Op::Write(offset, buf.to_vec()))
        });
        Ok(())
    }

    fn sync_data(&self) -> io::Result<()> {
        self.sync()
    }

    fn sync_all(&self) -> io::Result<()> {
        self.sync()
    }

    fn set_len(&self, len: u64) -> io::Result<()> {
        self.backend.call(false)?;
        self.real.set_len(len)?;
        self.backend
            .with_file(&self.path, |m| m.pending.push(Op::SetLen(len)));
        Ok(())
    }

    fn len(&self) -> io::Result<u64> {
        self.backend.call(false)?;
        self.real.len()
    }

    fn allocate(&self, offset: u64, len: u64) -> io::Result<()> {
        self.backend.call(false)?;
        self.real.allocate(offset, len)?;
        self.backend.state.lock().unwrap().allocations += 1;
        Ok(())
    }

    fn punch_hole(&self, offset: u64, len: u64) -> io::Result<()> {
        self.backend.call(false)?;
        self.real.punch_hole(offset, len)?;
        self.backend
            .with_file(&self.path, |m| zero_range(m, offset, len));
        self.backend.state.lock().unwrap().punches += 1;
        Ok(())
    }

    fn map(&self) -> io::Result<Map> {
        self.backend.call(false)?;
        self.real.map()
    }
}

/// A punched hole in the model: `offset..offset+len` reads as zeros in the
/// durable content and in every pending write, and the file's length stays.
fn zero_range(m: &mut FileModel, offset: u64, len: u64) {
    let zero = |buf: &mut [u8], buf_at: u64| {
        let start = offset.max(buf_at);
        let end = (offset + len).min(buf_at + buf.len() as u64);
        if start < end {
            buf[(start - buf_at) as usize..(end - buf_at) as usize].fill(0);
        }
    };
    zero(&mut m.durable, 0);
    for op in &mut m.pending {
        if let Op::Write(at, data) = op {
            zero(data, *at);
        }
    }
}
