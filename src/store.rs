//! [`Store`]: the public operations, locking and lifecycle.
//!
//! Concurrency: bodies are read and written with no lock held (each part
//! owns a reserved region of a segment). State changes go through `commit`,
//! which serializes validate → append record → fsync → apply, so the order
//! of records on disk is the order the index applied them.

use crate::error::Reason;
use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use parking_lot::{Mutex, RwLock};
use rayon::prelude::*;
use sha2::Digest as _;

use crate::backend::Backend;
use crate::blob::{Blob, BlobPiece, ExtentView};
use crate::digest::{self, Hashed, Hasher};
use crate::error::{bad_request, conflict, corrupt, not_found, unsatisfiable};
use crate::error::{Error, Result};
use crate::index::{Cursor, Entry, Index, Object, Part, UploadState};
use crate::record::{framed_len, ExtentDef, Meta, Piece, RecordHeader, RecordKind};
use crate::record::{RECORD_HEADER_LEN, SEGMENT_HEADER_LEN};
use crate::segment::{self, Segment};
use crate::spec::{self, ByteRange, UploadId};
use crate::types::*;

/// Name of the lock file in a store directory.
const LOCK_FILE: &str = "LOCK";

/// An embedded store of layers, objects and multipart uploads.
/// `Send + Sync`: share it between threads by reference or in an `Arc`.
pub struct Store {
    pub(crate) inner: Arc<Inner>,
    flusher: Option<Flusher>,
}

/// The `Durability::Batched` background fsync thread and its stop signal.
struct Flusher {
    stop: Arc<(Mutex<bool>, parking_lot::Condvar)>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for Store {
    fn drop(&mut self) {
        if let Some(f) = &mut self.flusher {
            *f.stop.0.lock() = true;
            f.stop.1.notify_all();
            if let Some(t) = f.thread.take() {
                let _ = t.join();
            }
        }
    }
}

pub(crate) struct Writer {
    pub(crate) active: Arc<Segment>,
    /// Where the next record goes.
    pub(crate) tail: u64,
    /// Highest offset a failed write may have touched beyond `tail`; zeroed
    /// before the segment is sealed so no garbage is left between records.
    pub(crate) dirty_until: u64,
}

pub(crate) struct Inner {
    pub(crate) dir: PathBuf,
    pub(crate) opts: Options,
    _lock: File,
    pub(crate) index: RwLock<Index>,
    /// Serializes state changes (validate, append, fsync, apply).
    pub(crate) commit: Mutex<()>,
    /// One compaction at a time.
    pub(crate) compaction: Mutex<()>,
    pub(crate) writer: Mutex<Writer>,
    pub(crate) segments: RwLock<BTreeMap<u64, Arc<Segment>>>,
    /// Data-region bytes written per segment (live or not).
    pub(crate) region_bytes: Mutex<HashMap<u64, u64>>,
    /// For each body being ingested: the active segment id when it began.
    /// Its data region is in that segment or a later one until it commits,
    /// so compaction leaves those segments alone.
    pub(crate) writes_in_flight: Mutex<BTreeMap<u64, usize>>,
    next_id: AtomicU64,
    poison: Mutex<Option<String>>,
    /// Records appended since the last fsync (Batched / None).
    pub(crate) dirty: AtomicBool,
    list_secret: [u8; 16],
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

fn to_time(ms: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_millis(ms)
}

fn part_id_string(id: u64) -> String {
    format!("{id:016x}")
}

fn parse_part_id(s: &str) -> Result<u64> {
    if s.len() != 16 || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(bad_request!(
            Reason::InvalidPartId,
            "part id \"{s}\" is not one this store issued"
        ));
    }
    u64::from_str_radix(s, 16)
        .map_err(|_| bad_request!(Reason::InvalidPartId, "part id \"{s}\" is malformed"))
}

fn part_info(p: &Part) -> PartInfo {
    PartInfo {
        part_number: p.number,
        id: part_id_string(p.id),
        size: p.size,
        crc32c: p.crc32c,
        last_modified: to_time(p.time_ms),
    }
}

fn object_info(o: &Object) -> ObjectInfo {
    ObjectInfo {
        key: o.key.clone(),
        size: o.size,
        content_type: o.content_type.clone(),
        content_encoding: o.content_encoding.clone(),
        last_modified: to_time(o.last_modified_ms),
        crc32c: o.crc32c,
        etag: o.etag.clone(),
        part_count: o.part_count,
    }
}

/// Part `n` as the index holds it right after a commit stored it.
fn stored_part(index: &Index, layer: &str, upload: &UploadId, n: u32) -> Result<PartInfo> {
    let (_, parts) = index.open_upload(layer, upload.as_bytes())?;
    parts
        .get(&n)
        .map(part_info)
        .ok_or_else(|| corrupt!("part {n} is missing right after it was stored"))
}

impl Store {
    /// Opens (or creates) the store in `dir`: takes the directory's lock
    /// (`Conflict` if another `Store` holds it, in this process or another),
    /// replays every segment's records, and truncates a torn tail of the
    /// newest segment.
    pub fn open(dir: impl AsRef<Path>, opts: Options) -> Result<Store> {
        let dir = dir.as_ref().to_path_buf();
        let backend_arc = Arc::clone(&opts.backend);
        let backend: &dyn Backend = &*backend_arc;
        backend
            .create_dir_all(&dir)
            .map_err(|e| Error::io(format!("creating {}", dir.display()), e))?;
        let lock_path = dir.join(LOCK_FILE);
        let lock = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&lock_path)
            .map_err(|e| Error::io(format!("opening {}", lock_path.display()), e))?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                return Err(conflict!(
                    Reason::StoreLocked,
                    "store {} is already open (locked by {})",
                    dir.display(),
                    lock_path.display()
                ))
            }
            Err(std::fs::TryLockError::Error(e)) => {
                return Err(Error::io(format!("locking {}", lock_path.display()), e))
            }
        }

        let names = backend
            .read_dir(&dir)
            .map_err(|e| Error::io(format!("listing {}", dir.display()), e))?;
        let mut ids: Vec<u64> = names
            .iter()
            .filter_map(|n| segment::parse_segment_file_name(n))
            .collect();
        ids.sort_unstable();
        // A newest segment whose header is bad but which holds nothing else
        // was being created when the process stopped: no record was ever
        // written to it, so it is removed (not in Strict mode).
        while let Some(&last) = ids.last() {
            let path = dir.join(segment::segment_file_name(last));
            match Segment::open(backend, &path) {
                Ok(_) => break,
                Err(e)
                    if e.kind() == crate::ErrorKind::Corrupt
                        && opts.recovery != RecoveryMode::Strict
                        && crate::recovery::is_torn_creation(backend, &path)? =>
                {
                    backend
                        .remove_file(&path)
                        .map_err(|e| Error::io(format!("removing {}", path.display()), e))?;
                    segment::sync_dir(backend, &dir)?;
                    ids.pop();
                }
                Err(e) => return Err(e),
            }
        }

        let mut segments = BTreeMap::new();
        let mut region_bytes = HashMap::new();
        let mut tail = SEGMENT_HEADER_LEN;
        let mut metas = Vec::new();
        for (i, id) in ids.iter().enumerate() {
            let path = dir.join(segment::segment_file_name(*id));
            let mut seg = Segment::open(backend, &path)?;
            if seg.id != *id {
                return Err(corrupt!(
                    "segment file {} says it is segment {}",
                    path.display(),
                    seg.id
                ));
            }
            let policy = match (i + 1 == ids.len(), opts.recovery) {
                (false, _) => segment::TailPolicy::Sealed,
                (true, RecoveryMode::SalvageTail) => segment::TailPolicy::Salvage,
                (true, _) => segment::TailPolicy::Newest,
            };
            let scan = segment::scan(&seg, policy)?;
            if scan.torn && opts.recovery == RecoveryMode::Strict {
                return Err(corrupt!(
                    "segment {id} offset {}: torn record (recovery mode is Strict)",
                    scan.end
                ));
            }
            if scan.torn {
                let len = seg.len();
                drop(seg);
                segment::truncate_tail(backend, &path, scan.end, len)?;
                seg = Segment::open(backend, &path)?;
            }
            metas.extend(scan.metas.into_iter().map(|m| (*id, m)));
            region_bytes.insert(*id, scan.region_bytes);
            tail = scan.end;
            // What open read from disk is durable.
            seg.mark_synced(scan.end);
            segments.insert(*id, Arc::new(seg));
        }
        // Replay starts at the last snapshot: it holds the whole state that
        // every earlier record built.
        let start = metas
            .iter()
            .rposition(|(_, m)| matches!(m.meta, Meta::Snapshot(_)))
            .unwrap_or(0);
        let mut index = Index::new();
        for (id, m) in metas.into_iter().skip(start) {
            index.apply(m.meta).map_err(|e| {
                corrupt!(
                    "segment {id} offset {}: record does not apply ({e})",
                    m.offset
                )
            })?;
        }
        for (id, e) in index.extents() {
            let ok = segments
                .get(&e.segment)
                .is_some_and(|s| e.offset.saturating_add(e.len) <= s.len());
            if !ok {
                return Err(corrupt!(
                    "extent {id} points outside the store (segment {}, offset {}, {} bytes)",
                    e.segment,
                    e.offset,
                    e.len
                ));
            }
        }
        let active = match segments.values().next_back() {
            Some(s) => Arc::clone(s),
            None => {
                let s = Arc::new(Segment::create(backend, &dir, 1, opts.segment_size, true)?);
                segments.insert(1, Arc::clone(&s));
                tail = SEGMENT_HEADER_LEN;
                s
            }
        };
        let mut list_secret = [0u8; 16];
        getrandom::fill(&mut list_secret)
            .map_err(|e| Error::io("reading random bytes", std::io::Error::other(e.to_string())))?;
        let next_id = index.max_id() + 1;
        let inner = Arc::new(Inner {
            dir,
            opts,
            _lock: lock,
            index: RwLock::new(index),
            commit: Mutex::new(()),
            compaction: Mutex::new(()),
            writer: Mutex::new(Writer {
                active,
                tail,
                dirty_until: tail,
            }),
            segments: RwLock::new(segments),
            region_bytes: Mutex::new(region_bytes),
            writes_in_flight: Mutex::new(BTreeMap::new()),
            next_id: AtomicU64::new(next_id),
            poison: Mutex::new(None),
            dirty: AtomicBool::new(false),
            list_secret,
        });
        let flusher = (inner.opts.durability == Durability::Batched)
            .then(|| spawn_flusher(Arc::downgrade(&inner), inner.opts.batch_interval));
        Ok(Store { inner, flusher })
    }

    /// The store's directory.
    pub fn path(&self) -> &Path {
        &self.inner.dir
    }

    /// The options the store was opened with.
    pub fn options(&self) -> &Options {
        &self.inner.opts
    }

    // ----- layers --------------------------------------------------------

    /// Creates a layer. `Conflict` if it exists.
    pub fn create_layer(&self, id: &str, config: LayerConfig) -> Result<()> {
        self.inner.commit(
            |_| {
                Ok(Meta::LayerCreated {
                    layer: id.to_string(),
                    content_type: config.content_type.clone(),
                    content_encoding: config.content_encoding.clone(),
                })
            },
            |_| (),
        )
    }

    /// Every layer with its configuration, by id.
    pub fn list_layers(&self) -> Vec<(String, LayerConfig)> {
        self.inner
            .index
            .read()
            .layers()
            .map(|(id, l)| {
                (
                    id.clone(),
                    LayerConfig {
                        content_type: l.content_type.clone(),
                        content_encoding: l.content_encoding.clone(),
                    },
                )
            })
            .collect()
    }

    // ----- objects -------------------------------------------------------

    /// Stores a single-part object of up to 192 MiB, replacing any object of
    /// that key. Without a content type in `body`, the layer's (or
    /// `application/octet-stream`) is used.
    pub fn put_object<R: Read>(
        &self,
        layer: &str,
        key: &str,
        body: PartBody<R>,
    ) -> Result<ObjectInfo> {
        let inner = &self.inner;
        inner.check_poison()?;
        let (content_type, content_encoding) = {
            let index = inner.index.read();
            let l = index.layer(layer)?;
            spec::validate_key(key)?;
            // The declared length, before any byte is read.
            spec::check_put_object_size(body.len)?;
            let ct = body
                .content_type
                .clone()
                .or_else(|| l.content_type.clone())
                .unwrap_or_else(|| spec::DEFAULT_CONTENT_TYPE.to_string());
            let ce = body
                .content_encoding
                .clone()
                .or_else(|| l.content_encoding.clone());
            // Fail a binding mismatch before reading the body.
            index.validate(&Meta::ObjectPut {
                layer: layer.to_string(),
                key: key.to_string(),
                new_extent: None,
                size: 0,
                crc32c: 0,
                content_type: ct.clone(),
                content_encoding: ce.clone(),
                etag_seq: 0,
                time_ms: 0,
            })?;
            (ct, ce)
        };
        let digest = body.digest.clone();
        let _writing = inner.begin_write();
        let (extent, hashed) = inner.ingest(body.reader, body.len, digest.as_ref())?;
        let etag_seq = inner.fresh_id();
        let meta = Meta::ObjectPut {
            layer: layer.to_string(),
            key: key.to_string(),
            new_extent: extent,
            size: hashed.len,
            crc32c: hashed.crc32c,
            content_type,
            content_encoding,
            etag_seq,
            time_ms: now_ms(),
        };
        inner.commit(
            |_| Ok(meta),
            |index| index.object(layer, key).map(|o| object_info(o)),
        )?
    }

    /// Copies a whole object within a layer by reference: no bytes are
    /// copied; content type and encoding carry over.
    pub fn copy_object(&self, layer: &str, dst: &str, src: &str) -> Result<ObjectInfo> {
        self.inner.commit(
            |_| {
                Ok(Meta::ObjectCopied {
                    layer: layer.to_string(),
                    src: src.to_string(),
                    dst: dst.to_string(),
                    time_ms: now_ms(),
                })
            },
            |index| index.object(layer, dst).map(|o| object_info(o)),
        )?
    }

    /// An object's metadata; `NotFound` for a missing key.
    pub fn head(&self, layer: &str, key: &str) -> Result<ObjectInfo> {
        let index = self.inner.index.read();
        Ok(object_info(index.object(layer, key)?))
    }

    /// A pinned snapshot of an object for reading.
    pub fn get(&self, layer: &str, key: &str) -> Result<Blob> {
        let index = self.inner.index.read();
        let obj = index.object(layer, key)?;
        let segments = self.inner.segments.read();
        let mut pieces = Vec::with_capacity(obj.pieces.len());
        let mut start = 0u64;
        for p in obj.pieces.iter() {
            let extent = self.inner.view(&index, &segments, p.extent)?;
            pieces.push(BlobPiece {
                start,
                len: p.len,
                extent_offset: p.offset,
                extent,
            });
            start += p.len;
        }
        Ok(Blob::new(
            object_info(obj),
            pieces,
            self.inner.opts.verify_reads,
        ))
    }

    /// Deletes an object; deleting a missing key succeeds.
    pub fn delete(&self, layer: &str, key: &str) -> Result<()> {
        {
            // A missing key changes nothing: no record needed.
            let index = self.inner.index.read();
            index.layer(layer)?;
            spec::validate_key(key)?;
            if index.object(layer, key).is_err() {
                return Ok(());
            }
        }
        self.inner.commit(
            |_| {
                Ok(Meta::ObjectDeleted {
                    layer: layer.to_string(),
                    key: key.to_string(),
                })
            },
            |_| (),
        )
    }

    /// One page of a layer's objects (and, unless deep, folders).
    pub fn list(&self, layer: &str, options: &ListOptions) -> Result<ListPage> {
        spec::validate_list_limit(options.limit)?;
        let parent = spec::normalize_parent(&options.parent)?;
        let index = self.inner.index.read();
        index.layer(layer)?;
        let after = match &options.page_token {
            None => None,
            Some(t) => Some(self.inner.decode_token(t, layer, &parent, options.deep)?),
        };
        let (entries, next) =
            index.list(layer, &parent, options.deep, after.as_ref(), options.limit)?;
        let items = entries
            .into_iter()
            .map(|e| match e {
                Entry::Object(o) => ListItem::Object(object_info(&o)),
                Entry::Prefix(p) => ListItem::Prefix(p),
            })
            .collect();
        Ok(ListPage {
            items,
            next_page_token: next
                .map(|c| self.inner.encode_token(&c, layer, &parent, options.deep)),
        })
    }

    // ----- multipart -----------------------------------------------------

    /// Starts a multipart upload of `key`; returns its token. The third
    /// argument is the content type (`&str`) or [`UploadOptions`].
    pub fn start_multipart(
        &self,
        layer: &str,
        key: &str,
        options: impl Into<UploadOptions>,
    ) -> Result<UploadId> {
        let options = options.into();
        let upload = UploadId::random()?;
        self.inner.commit(
            |index| {
                let l = index.layer(layer)?;
                Ok(Meta::UploadStarted {
                    layer: layer.to_string(),
                    upload: *upload.as_bytes(),
                    key: key.to_string(),
                    content_type: options.content_type.clone(),
                    content_encoding: options
                        .content_encoding
                        .clone()
                        .or_else(|| l.content_encoding.clone()),
                    time_ms: now_ms(),
                })
            },
            |_| (),
        )?;
        Ok(upload)
    }

    /// Uploads part `n`, replacing any previous part `n` atomically. On any
    /// failure nothing is stored and the previous part `n` stays.
    pub fn upload_part<R: Read>(
        &self,
        layer: &str,
        upload: &UploadId,
        n: u32,
        body: PartBody<R>,
    ) -> Result<PartInfo> {
        let inner = &self.inner;
        inner.check_poison()?;
        {
            let index = inner.index.read();
            let (u, _) = index.open_upload(layer, upload.as_bytes())?;
            spec::validate_part_number(n)?;
            // The declared length, before any byte is read.
            spec::check_part_size(body.len)?;
            if let Some(ct) = &body.content_type {
                if !spec::media_eq(ct, &u.content_type) {
                    return Err(bad_request!(
                        Reason::ContentTypeMismatch,
                        "content type \"{ct}\" of part {n} does not match the upload's \"{}\"",
                        u.content_type
                    )
                    .with_part(n));
                }
            }
        }
        let digest = body.digest.clone();
        let _writing = inner.begin_write();
        let (extent, hashed) = inner.ingest(body.reader, body.len, digest.as_ref())?;
        let pieces = extent
            .iter()
            .map(|e| Piece {
                extent: e.id,
                offset: 0,
                len: e.len,
            })
            .collect();
        let part_id = inner.fresh_id();
        let meta = Meta::PartSet {
            layer: layer.to_string(),
            upload: *upload.as_bytes(),
            number: n,
            part_id,
            new_extent: extent,
            pieces,
            size: hashed.len,
            crc32c: hashed.crc32c,
            time_ms: now_ms(),
        };
        inner.commit(|_| Ok(meta), |index| stored_part(index, layer, upload, n))?
    }

    /// Makes part `n` a copy of a range of an existing object, by reference:
    /// no data bytes are copied. The range must be `bytes=a-b` with `a` a
    /// multiple of 1 MiB and `b` inside the source.
    pub fn copy_part(
        &self,
        layer: &str,
        upload: &UploadId,
        n: u32,
        source: CopySource,
    ) -> Result<PartInfo> {
        let inner = &self.inner;
        inner.check_poison()?;
        // Checked before any lookup, as the other range rules are once the
        // source's size is known (`ByteRange::resolve_copy`).
        let (first, last) = match source.range {
            ByteRange::Bounded { first, last } => (first, last),
            other => {
                return Err(unsatisfiable!(
                    Reason::CopyRangeOpen,
                    "copy range {other} must give both bounds (bytes=a-b)"
                ))
            }
        };
        let (views, size) = {
            let index = inner.index.read();
            index.open_upload(layer, upload.as_bytes())?;
            spec::validate_part_number(n)?;
            let src = index.object(layer, &source.key)?;
            let len = source.range.resolve_copy(src.size)?.end - first;
            let segments = inner.segments.read();
            let mut views = Vec::new();
            let mut pos = 0u64;
            for p in src.pieces.iter() {
                let (p_start, p_end) = (pos, pos + p.len);
                pos = p_end;
                if p_end <= first || p_start > last {
                    continue;
                }
                let from = first.max(p_start) - p_start;
                let to = (last + 1).min(p_end) - p_start;
                let piece = Piece {
                    extent: p.extent,
                    offset: p.offset + from,
                    len: to - from,
                };
                views.push((piece, inner.view(&index, &segments, p.extent)?));
            }
            (views, len)
        };
        // CRC from stored block CRCs (plus at most the partial blocks), and
        // the optional digest over the mapped bytes; no lock held.
        let mut crc = 0u32;
        let mut done = 0u64;
        let mut hasher = source
            .digest
            .as_ref()
            .map(|d| Hasher::new(Some(d.algorithm())));
        for (piece, view) in &views {
            let c = view.crc_of(piece.offset, piece.len)?;
            crc = if done == 0 {
                c
            } else {
                digest::crc32c_combine(crc, c, piece.len)
            };
            done += piece.len;
            if let Some(h) = hasher.as_mut() {
                view.verify_range(piece.offset, piece.len)?;
                h.update(view.bytes(piece.offset, piece.len)?);
            }
        }
        if let (Some(expected), Some(h)) = (&source.digest, hasher) {
            let actual = match h.finish().digest {
                Some(d) => d,
                None => return Err(corrupt!("digest of copied bytes was not computed")),
            };
            digest::check(expected, &actual)?;
        }
        let part_id = inner.fresh_id();
        let pieces: Vec<Piece> = views.iter().map(|(p, _)| *p).collect();
        let key = source.key.clone();
        inner.commit(
            |index| {
                // The source may have been deleted meanwhile and its extents
                // freed; the pieces are only valid while they exist.
                if pieces.iter().any(|p| index.extent(p.extent).is_none()) {
                    return Err(not_found!(
                        Reason::CopySourceChanged,
                        "copy source \"{key}\" was deleted or replaced during the copy"
                    ));
                }
                Ok(Meta::PartSet {
                    layer: layer.to_string(),
                    upload: *upload.as_bytes(),
                    number: n,
                    part_id,
                    new_extent: None,
                    pieces: pieces.clone(),
                    size,
                    crc32c: crc,
                    time_ms: now_ms(),
                })
            },
            |index| stored_part(index, layer, upload, n),
        )?
    }

    /// Every current part of an open upload, ascending by number.
    pub fn list_parts(&self, layer: &str, upload: &UploadId) -> Result<Vec<PartInfo>> {
        let index = self.inner.index.read();
        let (_, parts) = index.open_upload(layer, upload.as_bytes())?;
        Ok(parts.values().map(part_info).collect())
    }

    /// Up to `limit` (1..=1000) parts numbered above `after` (0 for the
    /// first page), ascending.
    pub fn list_parts_page(
        &self,
        layer: &str,
        upload: &UploadId,
        after: u32,
        limit: usize,
    ) -> Result<Vec<PartInfo>> {
        spec::validate_list_limit(limit)?;
        let index = self.inner.index.read();
        let (_, parts) = index.open_upload(layer, upload.as_bytes())?;
        Ok(parts
            .range(after.saturating_add(1)..)
            .take(limit)
            .map(|(_, p)| part_info(p))
            .collect())
    }

    /// Whether an upload is open (with its parts, bytes, last activity) or
    /// completed. `NotFound` if unknown or aborted.
    pub fn upload_status(&self, layer: &str, upload: &UploadId) -> Result<UploadStatus> {
        let index = self.inner.index.read();
        let u = index.upload(layer, upload.as_bytes())?;
        Ok(match &u.state {
            UploadState::Open(parts) => UploadStatus::Open {
                parts: parts.len(),
                bytes: parts.values().map(|p| p.size).sum(),
                last_activity: to_time(u.last_activity_ms),
            },
            UploadState::Completed => UploadStatus::Completed,
        })
    }

    /// Open uploads of a layer, by key.
    pub fn list_uploads(&self, layer: &str) -> Result<Vec<UploadSummary>> {
        let index = self.inner.index.read();
        Ok(index
            .open_uploads(layer)?
            .into_iter()
            .map(|(id, u, parts)| UploadSummary {
                key: u.key.clone(),
                upload: UploadId::from_bytes(*id),
                started: to_time(u.started_ms),
                last_activity: to_time(u.last_activity_ms),
                parts,
            })
            .collect())
    }

    /// Completes an upload with every current part.
    pub fn complete_multipart(&self, layer: &str, upload: &UploadId) -> Result<ObjectInfo> {
        self.complete(layer, upload, None)
    }

    /// Completes an upload with exactly the listed (number, id) parts, in
    /// any order; parts left out are discarded.
    pub fn complete_multipart_with(
        &self,
        layer: &str,
        upload: &UploadId,
        parts: &[PartRef],
    ) -> Result<ObjectInfo> {
        let mut chosen = Vec::with_capacity(parts.len());
        for p in parts {
            chosen.push((p.number, parse_part_id(&p.id)?));
        }
        self.complete(layer, upload, Some(chosen))
    }

    fn complete(
        &self,
        layer: &str,
        upload: &UploadId,
        chosen: Option<Vec<(u32, u64)>>,
    ) -> Result<ObjectInfo> {
        let inner = &self.inner;
        let etag_seq = inner.fresh_id();
        inner.commit(
            |index| {
                let (_, current) = index.open_upload(layer, upload.as_bytes())?;
                let parts = match &chosen {
                    Some(c) => c.clone(),
                    None => current.values().map(|p| (p.number, p.id)).collect(),
                };
                Ok(Meta::UploadCompleted {
                    layer: layer.to_string(),
                    upload: *upload.as_bytes(),
                    parts,
                    etag_seq,
                    time_ms: now_ms(),
                })
            },
            |index| {
                let key = &index.upload(layer, upload.as_bytes())?.key;
                index.object(layer, key).map(|o| object_info(o))
            },
        )?
    }

    /// Aborts an open upload; its parts become garbage.
    pub fn abort_multipart(&self, layer: &str, upload: &UploadId) -> Result<()> {
        self.inner.commit(
            |_| {
                Ok(Meta::UploadAborted {
                    layer: layer.to_string(),
                    upload: *upload.as_bytes(),
                    time_ms: now_ms(),
                })
            },
            |_| (),
        )
    }

    /// Aborts every open upload idle for longer than `idle`; returns how
    /// many.
    pub fn expire_uploads(&self, idle: Duration) -> Result<usize> {
        let cutoff = now_ms().saturating_sub(idle.as_millis() as u64);
        let candidates = self.inner.index.read().idle_uploads(cutoff);
        let mut n = 0;
        for (layer, upload) in candidates {
            let r = self.inner.commit(
                |index| {
                    let (u, _) = index.open_upload(&layer, &upload)?;
                    if u.last_activity_ms > cutoff {
                        return Err(conflict!(Reason::UploadBusy, "upload became active"));
                    }
                    Ok(Meta::UploadAborted {
                        layer: layer.clone(),
                        upload,
                        time_ms: now_ms(),
                    })
                },
                |_| (),
            );
            match r {
                Ok(()) => n += 1,
                // Completed, aborted or touched meanwhile: not idle any more.
                Err(e) if matches!(e.kind(), crate::ErrorKind::Io | crate::ErrorKind::Corrupt) => {
                    return Err(e)
                }
                Err(_) => {}
            }
        }
        Ok(n)
    }

    // ----- maintenance ---------------------------------------------------

    /// Checks the CRC32C of every block of every live extent, in parallel.
    pub fn verify(&self) -> Result<VerifyReport> {
        let views: Vec<ExtentView> = {
            let index = self.inner.index.read();
            let segments = self.inner.segments.read();
            let mut ids: Vec<u64> = index.extents().map(|(id, _)| *id).collect();
            ids.sort_unstable();
            ids.iter()
                .map(|id| self.inner.view(&index, &segments, *id))
                .collect::<Result<_>>()?
        };
        let blocks: Vec<(usize, u64)> = views
            .iter()
            .enumerate()
            .flat_map(|(i, v)| (0..v.len.div_ceil(spec::BLOCK_SIZE)).map(move |b| (i, b)))
            .collect();
        let corrupt: Vec<String> = blocks
            .par_iter()
            .filter_map(|(i, b)| views[*i].verify_block(*b).err().map(|e| e.to_string()))
            .collect();
        Ok(VerifyReport {
            extents: views.len(),
            blocks: blocks.len() as u64,
            bytes: views.iter().map(|v| v.len).sum(),
            corrupt,
        })
    }

    /// Live and garbage bytes, segments, objects and open uploads.
    pub fn stats(&self) -> Stats {
        let index = self.inner.index.read();
        let (objects, uploads, live_bytes) = index.counts();
        let live = index.live_by_segment();
        let regions = self.inner.region_bytes.lock();
        let segments = self.inner.segments.read();
        let per_segment: Vec<SegmentStats> = segments
            .keys()
            .map(|id| {
                let data = regions.get(id).copied().unwrap_or(0);
                let l = live.get(id).copied().unwrap_or(0);
                SegmentStats {
                    id: *id,
                    data_bytes: data,
                    live_bytes: l,
                    garbage_bytes: data.saturating_sub(l),
                }
            })
            .collect();
        Stats {
            live_bytes,
            garbage_bytes: per_segment.iter().map(|s| s.garbage_bytes).sum(),
            segments: segments.len(),
            objects,
            uploads,
            per_segment,
        }
    }

    /// Makes every acknowledged operation durable (all modes): fsyncs every
    /// segment, so part data written under `Durability::None` into a segment
    /// that has since been sealed is covered too.
    pub fn sync(&self) -> Result<()> {
        self.inner.check_poison()?;
        let _c = self.inner.commit.lock();
        self.inner.dirty.store(false, Ordering::SeqCst);
        let segments: Vec<Arc<Segment>> = self.inner.segments.read().values().cloned().collect();
        for seg in segments {
            self.inner
                .sync_segment(&seg)
                .inspect_err(|e| self.inner.set_poison(e))?;
        }
        Ok(())
    }
}

/// Marks a body ingest in flight until dropped (after its commit).
pub(crate) struct WriteGuard<'a> {
    inner: &'a Inner,
    segment: u64,
}

impl Drop for WriteGuard<'_> {
    fn drop(&mut self) {
        let mut m = self.inner.writes_in_flight.lock();
        if let Some(n) = m.get_mut(&self.segment) {
            *n -= 1;
            if *n == 0 {
                m.remove(&self.segment);
            }
        }
    }
}

impl Inner {
    /// Registers a body ingest; see `writes_in_flight`.
    pub(crate) fn begin_write(&self) -> WriteGuard<'_> {
        let segment = self.writer.lock().active.id;
        *self.writes_in_flight.lock().entry(segment).or_default() += 1;
        WriteGuard {
            inner: self,
            segment,
        }
    }

    /// Segments below this id hold no region of an uncommitted write.
    pub(crate) fn oldest_write_in_flight(&self) -> Option<u64> {
        self.writes_in_flight.lock().keys().next().copied()
    }

    pub(crate) fn check_poison(&self) -> Result<()> {
        match &*self.poison.lock() {
            Some(why) => Err(Error::Poisoned(why.clone())),
            None => Ok(()),
        }
    }

    pub(crate) fn set_poison(&self, e: &Error) {
        let mut p = self.poison.lock();
        if p.is_none() {
            *p = Some(e.to_string());
        }
    }

    pub(crate) fn fresh_id(&self) -> u64 {
        self.next_id.fetch_add(1, Ordering::SeqCst)
    }

    /// Pins an extent's map and block CRCs.
    pub(crate) fn view(
        &self,
        index: &Index,
        segments: &BTreeMap<u64, Arc<Segment>>,
        id: u64,
    ) -> Result<ExtentView> {
        let e = index
            .extent(id)
            .ok_or_else(|| corrupt!("extent {id} is referenced but not in the extent table"))?;
        let seg = segments
            .get(&e.segment)
            .ok_or_else(|| corrupt!("extent {id} lives in missing segment {}", e.segment))?;
        Ok(ExtentView {
            id,
            segment: e.segment,
            file_offset: e.offset,
            len: e.len,
            block_crcs: Arc::clone(&e.block_crcs),
            map: seg.map(),
        })
    }

    /// Serializes a state change: builds the record from the current index
    /// (`prepare`), validates it, appends it, makes it durable per
    /// `Durability`, applies it, then reads the result (`after`) from the
    /// index it changed. A failure before the append changes nothing.
    pub(crate) fn commit<T>(
        &self,
        prepare: impl FnOnce(&Index) -> Result<Meta>,
        after: impl FnOnce(&Index) -> T,
    ) -> Result<T> {
        let _c = self.commit.lock();
        self.check_poison()?;
        let meta = {
            let index = self.index.read();
            let meta = prepare(&index)?;
            index.validate(&meta)?;
            meta
        };
        let seg = self.append_meta(&meta.encode())?.0;
        self.persist(&seg).inspect_err(|e| self.set_poison(e))?;
        let mut index = self.index.write();
        index.apply_validated(meta);
        Ok(after(&index))
    }

    /// Makes appended records durable as `Durability` says.
    pub(crate) fn persist(&self, seg: &Segment) -> Result<()> {
        match self.opts.durability {
            Durability::Sync => self.sync_segment(seg),
            Durability::Batched | Durability::None => {
                self.dirty.store(true, Ordering::SeqCst);
                Ok(())
            }
        }
    }

    /// fdatasync of a segment, then records how far its records are durable
    /// (the watermark later metadata records carry).
    pub(crate) fn sync_segment(&self, seg: &Segment) -> Result<()> {
        let upto = {
            let w = self.writer.lock();
            if w.active.id == seg.id {
                w.tail
            } else {
                seg.synced()
            }
        };
        seg.sync_data()?;
        seg.mark_synced(upto);
        Ok(())
    }

    /// Appends a metadata record (the encoded `Meta`), stamped with how far
    /// the segment it lands in is known durable.
    pub(crate) fn append_meta(&self, meta: &[u8]) -> Result<(Arc<Segment>, u64)> {
        let total = framed_len(8 + meta.len() as u64);
        let mut w = self.writer.lock();
        if w.tail + total > w.active.len() {
            self.rotate(&mut w, total)?;
        }
        let frame =
            crate::record::frame_meta(&crate::record::meta_payload(w.active.synced(), meta));
        self.write_at_tail(&mut w, &frame, total, None)
    }

    /// Appends a framed record (or, with `region`, reserves a data region of
    /// that many bytes and writes only its header) at the tail of the active
    /// segment, rotating to a new segment when it does not fit. Returns the
    /// segment and the record's offset.
    pub(crate) fn append(&self, frame: &[u8], region: Option<u64>) -> Result<(Arc<Segment>, u64)> {
        let total = match region {
            Some(len) => framed_len(len),
            None => frame.len() as u64,
        };
        let mut w = self.writer.lock();
        if w.tail + total > w.active.len() {
            self.rotate(&mut w, total)?;
        }
        self.write_at_tail(&mut w, frame, total, region)
    }

    fn write_at_tail(
        &self,
        w: &mut Writer,
        frame: &[u8],
        total: u64,
        region: Option<u64>,
    ) -> Result<(Arc<Segment>, u64)> {
        let at = w.tail;
        if let Err(e) = w.active.write_at(frame, at) {
            // The tail stays; the next record overwrites these bytes.
            w.dirty_until = w.dirty_until.max(at + frame.len() as u64);
            return Err(e);
        }
        w.tail += total;
        w.dirty_until = w.dirty_until.max(w.tail);
        if let Some(len) = region {
            *self.region_bytes.lock().entry(w.active.id).or_default() += len;
        }
        Ok((Arc::clone(&w.active), at))
    }

    /// Seals the active segment (fsynced, so that only the newest segment can
    /// ever have a torn tail) and starts the next one, sized to hold at least
    /// `need` bytes.
    pub(crate) fn rotate(&self, w: &mut Writer, need: u64) -> Result<()> {
        if w.dirty_until > w.tail {
            let zeros = vec![0u8; (w.dirty_until - w.tail) as usize];
            w.active.write_at(&zeros, w.tail)?;
            w.dirty_until = w.tail;
        }
        w.active.sync_data().inspect_err(|e| self.set_poison(e))?;
        w.active.mark_synced(w.tail);
        let id = w.active.id + 1;
        let size = self.opts.segment_size.max(SEGMENT_HEADER_LEN + need);
        let seg = Arc::new(Segment::create(
            &*self.opts.backend,
            &self.dir,
            id,
            size,
            true,
        )?);
        self.segments.write().insert(id, Arc::clone(&seg));
        w.active = seg;
        w.tail = SEGMENT_HEADER_LEN;
        w.dirty_until = SEGMENT_HEADER_LEN;
        Ok(())
    }

    /// Streams a body into a new extent (see `crate::ingest`): reads it in
    /// 1 MiB steps, writes each to a reserved region (starting its device
    /// write) and hashes it once (block CRCs + requested digest; a costly
    /// digest on a second thread, overlapping the writes and the fdatasync),
    /// checks length and digest, and (unless `Durability::None`) fsyncs the
    /// data. Nothing is visible until the caller commits the returned
    /// extent. Hashing after writing is safe: the region stays invisible
    /// until committed, and a failed check leaves it garbage.
    fn ingest<R: Read>(
        &self,
        mut reader: R,
        len: u64,
        expected: Option<&spec::Digest>,
    ) -> Result<(Option<ExtentDef>, Hashed)> {
        let hasher = Hasher::new(expected.map(|d| d.algorithm()));
        let durable = self.opts.durability != Durability::None;
        let (hasher, region) = if len > 0 {
            let id = self.fresh_id();
            let header = RecordHeader {
                kind: RecordKind::Extent,
                len,
                payload_crc: 0,
            }
            .encode();
            let (seg, at) = self.append(&header, Some(len))?;
            let data_at = at + RECORD_HEADER_LEN;
            let hasher =
                crate::ingest::stream(&mut reader, &seg, data_at, len, hasher, durable, |r| {
                    crate::ingest::expect_end(r, len)?;
                    if durable {
                        seg.sync_data().inspect_err(|e| self.set_poison(e))?;
                    }
                    Ok(())
                })?;
            (hasher, Some((id, seg, data_at)))
        } else {
            crate::ingest::expect_end(&mut reader, len)?;
            (hasher, None)
        };
        let mut hashed = hasher.finish();
        if let (Some(expected), Some(actual)) = (expected, &hashed.digest) {
            digest::check(expected, actual)?;
        }
        let extent = region.map(|(id, seg, data_at)| ExtentDef {
            id,
            segment: seg.id,
            offset: data_at,
            len,
            block_crcs: std::mem::take(&mut hashed.block_crcs),
        });
        Ok((extent, hashed))
    }

    fn token_mac(&self, layer: &str, parent: &str, deep: bool, body: &[u8]) -> [u8; 8] {
        let mut h = sha2::Sha256::new();
        h.update(self.list_secret);
        for part in [layer.as_bytes(), parent.as_bytes(), &[deep as u8], body] {
            h.update((part.len() as u64).to_le_bytes());
            h.update(part);
        }
        let out = h.finalize();
        let mut mac = [0u8; 8];
        mac.copy_from_slice(&out[..8]);
        mac
    }

    fn encode_token(&self, c: &Cursor, layer: &str, parent: &str, deep: bool) -> String {
        let mut body = Vec::new();
        match c {
            Cursor::AfterObject(k) => {
                body.push(b'o');
                body.extend_from_slice(k.as_bytes());
            }
            Cursor::AfterPrefix(p) => {
                body.push(b'p');
                body.extend_from_slice(p.as_bytes());
            }
        }
        let mac = self.token_mac(layer, parent, deep, &body);
        body.extend_from_slice(&mac);
        hex::encode(body)
    }

    fn decode_token(&self, token: &str, layer: &str, parent: &str, deep: bool) -> Result<Cursor> {
        let shown: String = token.chars().take(64).collect();
        let bad = || {
            bad_request!(
                Reason::InvalidPageToken,
                "page token \"{shown}\" was not issued for this listing"
            )
        };
        let raw = hex::decode(token).map_err(|_| bad())?;
        if raw.len() < 9 {
            return Err(bad());
        }
        let (body, mac) = raw.split_at(raw.len() - 8);
        if self.token_mac(layer, parent, deep, body) != mac {
            return Err(bad());
        }
        let name = String::from_utf8(body[1..].to_vec()).map_err(|_| bad())?;
        match body[0] {
            b'o' => Ok(Cursor::AfterObject(name)),
            b'p' => Ok(Cursor::AfterPrefix(name)),
            _ => Err(bad()),
        }
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        // A clean close leaves everything durable, whatever the mode.
        if self.dirty.load(Ordering::SeqCst) && self.poison.lock().is_none() {
            let _ = self.writer.lock().active.sync_data();
        }
    }
}

/// With `Durability::Batched`, fsyncs appended records every `interval`
/// until the store is dropped (the `Store`'s drop stops and joins it, so the
/// directory lock is free as soon as `drop` returns).
fn spawn_flusher(inner: Weak<Inner>, interval: Duration) -> Flusher {
    let stop = Arc::new((Mutex::new(false), parking_lot::Condvar::new()));
    let signal = Arc::clone(&stop);
    let thread = std::thread::Builder::new()
        .name("partstore-flush".into())
        .spawn(move || loop {
            {
                let mut stopped = signal.0.lock();
                if !*stopped {
                    signal.1.wait_for(&mut stopped, interval);
                }
                if *stopped {
                    break;
                }
            }
            let Some(inner) = inner.upgrade() else { break };
            if inner.dirty.swap(false, Ordering::SeqCst) {
                let active = Arc::clone(&inner.writer.lock().active);
                if let Err(e) = inner.sync_segment(&active) {
                    inner.set_poison(&e);
                }
            }
        })
        .ok();
    // Without the thread, records are still synced on `sync()` and drop.
    Flusher { stop, thread }
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("dir", &self.inner.dir)
            .finish()
    }
}
