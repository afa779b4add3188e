//! How a store is opened: [`Options`], with the durability mode and the
//! recovery mode it chooses among.

use std::sync::Arc;
use std::time::Duration;

use crate::backend::{Backend, StdBackend};

/// When an acknowledged write is durable. Each mode is described by what a
/// power loss keeps; no mode ever exposes a torn part or object after a
/// process crash, because a part or object becomes visible only through a
/// metadata record written after its data.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Durability {
    /// Every call that returns `Ok` has been fsynced (data, then its record,
    /// and the directory when a segment is created): a power loss keeps all
    /// of them.
    #[default]
    Sync,
    /// Part data is fsynced before its record is written, but records are
    /// fsynced at most every [`Options::batch_interval`] and on
    /// [`crate::Store::sync`]: a power loss may drop the operations of the
    /// last interval, each wholly.
    Batched,
    /// Nothing is fsynced except on [`crate::Store::sync`] and segment
    /// rotation: a process crash loses nothing (the OS has the pages), a power
    /// loss may lose any operation since the last sync; a part whose data
    /// the OS had not written is then reported `Corrupt` on read, never
    /// served as wrong bytes.
    None,
}

/// What `Store::open` does with a record that fails its checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RecoveryMode {
    /// An invalid record at the end of the newest segment with nothing
    /// valid after it is a torn write that was never acknowledged: it is
    /// truncated. An invalid record anywhere else (an older segment, or
    /// followed by valid records) is corruption: `open` fails with `Corrupt`
    /// naming the segment and offset, and changes nothing.
    #[default]
    TruncateTornTail,
    /// For a store written with `Durability::Batched` or `None` that lost
    /// power: the OS may have written later pages of the newest segment but
    /// not earlier ones, which `TruncateTornTail` reports as corruption.
    /// This mode truncates the newest segment at its first invalid record
    /// and drops any records after it (operations of the last moments
    /// before the power loss). Older segments are still checked strictly.
    SalvageTail,
    /// Any invalid record, a torn tail included, fails `open` with
    /// `Corrupt` and nothing is truncated: for inspecting a store exactly as
    /// a crash left it.
    Strict,
}

/// The shortest [`Options::batch_interval`] that batches: a shorter one
/// (zero included) makes a `Batched` store sync on every commit, as `Sync`.
const MIN_BATCH_INTERVAL: Duration = Duration::from_millis(1);

/// The default [`Options::completed_upload_retention`]: 24 hours.
pub const DEFAULT_COMPLETED_UPLOAD_RETENTION: Duration = Duration::from_secs(24 * 60 * 60);

/// Store settings. `Options::default()` is the safe default: `Sync`
/// durability, 1 GiB segments, verified reads, completed uploads remembered
/// for 24 hours.
#[derive(Debug, Clone)]
pub struct Options {
    /// When writes are durable.
    pub durability: Durability,
    /// Size of each segment file (a segment holding one larger part grows to
    /// fit it).
    pub segment_size: u64,
    /// Verify the CRC32C of every 1 MiB block a read touches.
    pub verify_reads: bool,
    /// With [`Durability::Batched`], the longest time a record stays
    /// unsynced. Zero, or anything under 1 ms, means "sync on every
    /// commit": the store then behaves as [`Durability::Sync`] (never a busy
    /// loop: a flusher waking every few nanoseconds spins a core while the
    /// store is idle).
    pub batch_interval: Duration,
    /// `compact()` rewrites segments whose garbage share is above this
    /// fraction (0.0..=1.0).
    pub compact_threshold: f64,
    /// What `open` does with a torn or corrupt record.
    pub recovery: RecoveryMode,
    /// How long a completed multipart upload is remembered (default 24 h,
    /// [`DEFAULT_COMPLETED_UPLOAD_RETENTION`]). For at least this long after
    /// a successful complete, `upload_status` says
    /// [`crate::UploadStatus::Completed`], `upload_result` returns the object it
    /// published, and `upload_part`, `copy_part`, `complete_multipart` and
    /// `abort_multipart` are BadRequest ([`crate::Reason::UploadCompleted`]).
    /// After it the token is unknown everywhere: NotFound
    /// ([`crate::Reason::UnknownUpload`]), whether or not a sweep has run,
    /// and across reopens.
    ///
    /// Only a small tombstone stays in memory (and in compaction's
    /// snapshot) meanwhile; [`crate::Store::expire_uploads`],
    /// [`crate::Store::compact`] and [`crate::Store::open`] drop expired
    /// ones ([`crate::Stats::completed_uploads`] counts those held).
    ///
    /// Counted in whole milliseconds, rounded up, from the completion's
    /// recorded time. The duration saturates: one past what `u64`
    /// milliseconds hold ([`Duration::MAX`]) is forever.
    /// [`Duration::ZERO`] forgets an upload as soon as its complete returns
    /// (which still returns the object). The window applies to the uploads
    /// a store remembers when it is opened: lengthening it makes known
    /// again an upload completed within the new window whose tombstone no
    /// sweep or compaction has dropped yet.
    pub completed_upload_retention: Duration,
    /// A background thread writes a checkpoint (the whole index, into the
    /// log, without holding writers up) once this many bytes of metadata
    /// records were appended since the last one, so `open` restores the
    /// checkpoint and replays at most about this much. Data bytes do not
    /// count. Each checkpoint writes the whole index again (about 100 bytes
    /// per object), so a larger value trades a slower `open` for less
    /// writing. 0 turns periodic checkpoints off (compaction still writes
    /// them; `open` then replays everything since the last). None is
    /// written while `compact()` runs: it writes its own when done. A clean
    /// close also writes one when more than an eighth of this (and 1 MiB)
    /// would be replayed. Default 64 MiB.
    pub checkpoint_bytes: u64,
    /// The pre-writer: a background thread that keeps a window of the
    /// active segment ahead of the tail written with zeros and made durable
    /// (`fdatasync`), so that writes land in blocks that are already
    /// allocated and written and their `fdatasync` flushes data only, with
    /// no file-system metadata to commit. It stays 4 MiB ahead while
    /// records come in and, after 100 ms without one, up to 64 MiB ahead
    /// (never past the segment's end), in 1 MiB chunks; while parts of more
    /// than 1 MiB come in, only when idle. Measured on ext4 (BENCHMARKS.md):
    /// one writer's 64 KiB `Sync` puts ran at 0.59–0.87x of raw writes
    /// into a pre-written file instead of 0.39–0.40x; with 4 writers, and
    /// for 8 MiB parts, no clear change either way. It costs the bandwidth
    /// of writing the log's bytes twice while it keeps up, and up to
    /// 64 MiB of disk ahead of the tail (given back when the segment is
    /// sealed or the store is closed).
    ///
    /// It is safe to turn on or off at any time: it writes only zeros, only
    /// past every record, and its failures (a full disk included) fail no
    /// call and poison nothing: it stops and tries again later (see
    /// docs/DURABILITY.md).
    ///
    /// `None` (the default): on when the backend asks for it
    /// ([`Backend::prewrite_by_default`]: [`StdBackend`] does, test backends
    /// do not) and the durability is not [`Durability::None`], whose writes
    /// wait for no `fdatasync` for it to speed up (not measured: there it
    /// could only cost bandwidth).
    pub prewrite: Option<bool>,
    /// How many segment files emptied by compaction the store keeps for
    /// reuse (in the store directory as `free-NNNNNNNN.log`) instead of
    /// deleting them; 0 (the default): none. The next segment is then one
    /// of them: its blocks are already allocated and written, so the writes
    /// at the tail allocate nothing and their fdatasync flushes data only,
    /// without the zeros the pre-writer would write first (as RocksDB's
    /// `recycle_log_file_num` does for its write-ahead log). Measured here
    /// (BENCHMARKS.md, "Recycled segments"): 64 KiB `Sync` puts into a
    /// recycled segment ran 1.45–1.79x as fast as into a fresh one, at
    /// 0.79–0.95x of raw writes into a pre-written file, with 1 and 4
    /// writers. A recycled file keeps its old bytes past the new records;
    /// its record headers carry CRC32Cs salted with its new segment id, so
    /// none of the old records is ever taken for a new one
    /// (docs/FORMAT.md, "Recycled segments").
    ///
    /// The cost is disk space: the kept files hold theirs (up to this many
    /// segments), so compaction gives back less (their bytes are not in
    /// [`CompactionReport::bytes_reclaimed`](crate::CompactionReport), see
    /// `segments_recycled`). A file is kept only while the file system has
    /// at least four times its size free, and a write that finds the disk
    /// full deletes the kept files first. Under [`Durability::None`] and
    /// [`Durability::Batched`], appends into a recycled segment sync once
    /// per window of an eighth of the segment (at most 16 MiB). Open deletes
    /// kept files beyond this number (0: all of them) and those shorter than
    /// `segment_size`. A backend without [`Backend::rename`] never recycles.
    pub recycle_segments: usize,
    /// Where files live; [`StdBackend`] (the real file system) by default.
    /// Tests pass a fault-injecting one.
    pub backend: Arc<dyn Backend>,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            durability: Durability::Sync,
            segment_size: 1 << 30,
            verify_reads: true,
            batch_interval: Duration::from_millis(5),
            compact_threshold: 0.5,
            recovery: RecoveryMode::TruncateTornTail,
            completed_upload_retention: DEFAULT_COMPLETED_UPLOAD_RETENTION,
            checkpoint_bytes: 64 << 20,
            prewrite: None,
            recycle_segments: 0,
            backend: Arc::new(StdBackend),
        }
    }
}

impl Options {
    /// Sets [`Options::durability`].
    pub fn durability(mut self, d: Durability) -> Options {
        self.durability = d;
        self
    }
    /// Sets [`Options::segment_size`].
    pub fn segment_size(mut self, bytes: u64) -> Options {
        self.segment_size = bytes;
        self
    }
    /// Sets [`Options::verify_reads`].
    pub fn verify_reads(mut self, on: bool) -> Options {
        self.verify_reads = on;
        self
    }
    /// Sets [`Options::batch_interval`].
    pub fn batch_interval(mut self, d: Duration) -> Options {
        self.batch_interval = d;
        self
    }
    /// Sets [`Options::compact_threshold`].
    pub fn compact_threshold(mut self, fraction: f64) -> Options {
        self.compact_threshold = fraction;
        self
    }
    /// Sets [`Options::recovery`].
    pub fn recovery(mut self, mode: RecoveryMode) -> Options {
        self.recovery = mode;
        self
    }
    /// Sets [`Options::completed_upload_retention`] (saturating:
    /// [`Duration::MAX`] is forever, [`Duration::ZERO`] forgets at once).
    pub fn completed_upload_retention(mut self, window: Duration) -> Options {
        self.completed_upload_retention = window;
        self
    }

    /// Sets [`Options::checkpoint_bytes`].
    pub fn checkpoint_bytes(mut self, bytes: u64) -> Options {
        self.checkpoint_bytes = bytes;
        self
    }

    /// Sets [`Options::prewrite`]: `true` turns the pre-writer on whatever
    /// the backend and durability, `false` off.
    pub fn prewrite(mut self, on: bool) -> Options {
        self.prewrite = Some(on);
        self
    }

    /// Whether the store runs the pre-writer ([`Options::prewrite`]).
    pub(crate) fn prewrites(&self) -> bool {
        self.prewrite.unwrap_or_else(|| {
            self.backend.prewrite_by_default() && self.durability != Durability::None
        })
    }

    /// Sets [`Options::recycle_segments`].
    pub fn recycle_segments(mut self, files: usize) -> Options {
        self.recycle_segments = files;
        self
    }

    /// Sets [`Options::backend`].
    pub fn backend(mut self, backend: Arc<dyn Backend>) -> Options {
        self.backend = backend;
        self
    }

    /// Checks the settings (`BadRequest` naming the bad one) and resolves
    /// the ones with a special meaning: a batch interval under
    /// `MIN_BATCH_INTERVAL` is `Sync`.
    pub(crate) fn checked(mut self) -> crate::Result<Options> {
        use crate::error::{bad_request, Reason};
        if !(0.0..=1.0).contains(&self.compact_threshold) {
            return Err(bad_request!(
                Reason::InvalidArgument,
                "compact_threshold {} is outside 0.0..=1.0",
                self.compact_threshold
            ));
        }
        if self.durability == Durability::Batched && self.batch_interval < MIN_BATCH_INTERVAL {
            self.durability = Durability::Sync;
        }
        Ok(self)
    }
}
