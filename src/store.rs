//! [`Store`]: the public operations. Each reads as validate → (ingest) →
//! commit; the commit pipeline, the log and recovery live in their own
//! modules (`engine`, `log`, `recovery`).

use std::io::Read;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use crate::blob::{Blob, BlobPiece};
use crate::checkpoint::{Checkpointer, Checkpoints};
use crate::digest::{self, Hasher};
use crate::engine::Inner;
use crate::error::{bad_request, conflict, corrupt, not_found, too_large};
use crate::error::{Error, Reason, Result};
use crate::index::{Entry, Index, UploadState};
use crate::info::{now_ms, object_info, parse_part_id, part_info, to_time};
use crate::list_token::TokenKey;
use crate::log::format::{Meta, Piece};
use crate::log::writer::{Flusher, Log};
use crate::spec::{self, Digest, UploadId};
use crate::types::*;

/// An embedded store of layers, objects and multipart uploads.
/// `Send + Sync`: share it between threads by reference or in an `Arc`.
pub struct Store {
    pub(crate) inner: Arc<Inner>,
    // Dropped first: stops the flusher before the log's final sync.
    _flusher: Option<Flusher>,
    /// Periodic checkpoints; stopped (and joined) first on drop.
    checkpointer: Option<Checkpointer>,
}

/// Streams a body into a new extent: exactly its declared length, or (for
/// `PartBody::until_eof`) to its end, at most `max` bytes (`too_large`
/// past it).
fn ingest_body<R: Read>(
    inner: &Inner,
    reader: R,
    len: Option<u64>,
    digest: Option<&Digest>,
    max: u64,
    too_large: impl Fn() -> Error,
) -> Result<(Option<crate::log::format::ExtentDef>, digest::Hashed)> {
    match len {
        Some(len) => crate::ingest::ingest(inner, reader, len, digest),
        None => crate::ingest::ingest_until_eof(inner, reader, max, digest, too_large),
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
    /// scans every segment, truncates a torn tail of the newest one,
    /// restores the last checkpoint and replays the records written after
    /// it (see [`Store::checkpoint`]).
    pub fn open(dir: impl AsRef<Path>, opts: Options) -> Result<Store> {
        let dir = dir.as_ref();
        let opts = opts.checked()?;
        let opened = crate::recovery::open(dir, &opts)?;
        let tokens = TokenKey::load_or_create(&*opts.backend, dir)?;
        let log = Arc::new(Log::new(
            dir,
            Arc::clone(&opts.backend),
            opts.segment_size,
            opts.durability,
            opened.log,
        )?);
        let batched = (opts.durability == Durability::Batched).then_some(opts.batch_interval);
        let periodic = opts.checkpoint_bytes > 0;
        let checkpoints = Checkpoints::new(opened.checkpoint_base, opened.replayed_bytes);
        let inner = Arc::new(Inner::new(
            opts,
            opened.lock,
            opened.index,
            log,
            tokens,
            checkpoints,
        ));
        let _flusher = batched.map(|every| Flusher::spawn(inner.log_weak(), every));
        let checkpointer = periodic.then(|| Checkpointer::spawn(&inner));
        Ok(Store {
            inner,
            _flusher,
            checkpointer,
        })
    }

    /// The store's directory.
    pub fn path(&self) -> &Path {
        self.inner.dir()
    }

    /// The options the store was opened with.
    pub fn options(&self) -> &Options {
        self.inner.opts()
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
                    key_rules: config.key_rules,
                    time_ms: now_ms(),
                })
            },
            |_| (),
        )
    }

    /// Deletes a layer. `Conflict` ([`Reason::LayerNotEmpty`]) while it
    /// holds objects or open uploads; once deleted, every call naming it is
    /// `NotFound` until it is created again (its completed uploads are
    /// forgotten with it).
    pub fn delete_layer(&self, id: &str) -> Result<()> {
        self.inner.commit(
            |_| {
                Ok(Meta::LayerDeleted {
                    layer: id.to_string(),
                })
            },
            |_| (),
        )
    }

    /// Every layer with its configuration, by id.
    pub fn list_layers(&self) -> Vec<(String, LayerConfig)> {
        self.inner
            .index()
            .layers()
            .map(|(id, l)| {
                (
                    id.clone(),
                    LayerConfig {
                        content_type: l.content_type.clone(),
                        content_encoding: l.content_encoding.clone(),
                        key_rules: l.key_rules,
                    },
                )
            })
            .collect()
    }

    /// A layer's configuration and creation time. BadRequest for a
    /// malformed id, NotFound if it does not exist.
    pub fn layer_info(&self, id: &str) -> Result<LayerInfo> {
        let index = self.inner.index();
        let l = index.layer(id)?;
        Ok(LayerInfo {
            id: id.to_string(),
            config: LayerConfig {
                content_type: l.content_type.clone(),
                content_encoding: l.content_encoding.clone(),
                key_rules: l.key_rules,
            },
            created: (l.created_ms != 0).then(|| to_time(l.created_ms)),
        })
    }

    // ----- objects -------------------------------------------------------

    /// Stores a single-part object of up to 192 MiB, replacing any object of
    /// that key. Without a content type in `body`, the layer's (or
    /// `application/octet-stream`) is used. A digest in `body` is checked
    /// and kept ([`ObjectInfo::digest`]), and so is its user metadata.
    pub fn put_object<R: Read>(
        &self,
        layer: &str,
        key: &str,
        body: PartBody<R>,
    ) -> Result<ObjectInfo> {
        let inner = &self.inner;
        inner.log().check_poison()?;
        let (content_type, content_encoding) = inner.index().plan_put(
            layer,
            key,
            body.len.unwrap_or(0),
            body.content_type.as_deref(),
            body.content_encoding.as_deref(),
        )?;
        let metadata = body.metadata.unwrap_or_default();
        spec::validate_metadata(&metadata)?;
        let digest = body.digest.clone();
        let _writing = inner.begin_write();
        let (extent, hashed) = ingest_body(
            inner,
            body.reader,
            body.len,
            digest.as_ref(),
            spec::MAX_PUT_OBJECT_SIZE,
            || {
                too_large!(
                    Reason::ObjectTooLarge,
                    "object body runs past the single-put limit of {} bytes (192 MiB)",
                    spec::MAX_PUT_OBJECT_SIZE
                )
            },
        )?;
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
            metadata,
            digest,
        };
        inner.commit(
            |_| Ok(meta.clone()),
            |index| index.object(layer, key).map(|o| object_info(o)),
        )?
    }

    /// Copies a whole object within a layer by reference: no bytes are
    /// copied; content type, encoding, user metadata and kept digests carry
    /// over.
    pub fn copy_object(&self, layer: &str, dst: &str, src: &str) -> Result<ObjectInfo> {
        self.copy_object_with(layer, dst, src, None)
    }

    /// [`Store::copy_object`], with `metadata` replacing the source's user
    /// metadata when given (`Some(vec![])` clears it).
    pub fn copy_object_with(
        &self,
        layer: &str,
        dst: &str,
        src: &str,
        metadata: Option<Vec<(String, String)>>,
    ) -> Result<ObjectInfo> {
        if let Some(m) = &metadata {
            spec::validate_metadata(m)?;
        }
        self.inner.commit(
            |_| {
                Ok(Meta::ObjectCopied {
                    layer: layer.to_string(),
                    src: src.to_string(),
                    dst: dst.to_string(),
                    time_ms: now_ms(),
                    metadata: metadata.clone(),
                })
            },
            |index| index.object(layer, dst).map(|o| object_info(o)),
        )?
    }

    /// An object's metadata; `NotFound` for a missing key.
    pub fn head(&self, layer: &str, key: &str) -> Result<ObjectInfo> {
        let index = self.inner.index();
        Ok(object_info(index.object(layer, key)?))
    }

    /// A pinned snapshot of an object for reading.
    pub fn get(&self, layer: &str, key: &str) -> Result<Blob> {
        let index = self.inner.index();
        let obj = index.object(layer, key)?;
        let mut pieces = Vec::with_capacity(obj.pieces.len());
        let mut start = 0u64;
        for p in obj.pieces.iter() {
            let extent = self.inner.view(&index, p.extent)?;
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
            self.inner.opts().verify_reads,
        ))
    }

    /// Deletes an object; deleting a missing key succeeds.
    pub fn delete(&self, layer: &str, key: &str) -> Result<()> {
        {
            // A missing key changes nothing: no record needed.
            let index = self.inner.index();
            index.layer(layer)?.key_rules.validate(key)?;
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

    /// One page of a layer's objects (and, unless deep, folders): of the
    /// folder `parent`, or of the keys starting with `prefix`.
    pub fn list(&self, layer: &str, options: &ListOptions) -> Result<ListPage> {
        spec::validate_list_limit(options.limit)?;
        let index = self.inner.index();
        let rules = index.layer(layer)?.key_rules;
        // Tokens are bound to the key prefix: the root ("") and the folder
        // "" of a Utf8 layer ("/") stay apart.
        let prefix = match &options.prefix {
            Some(_) if !options.parent.is_empty() => {
                return Err(bad_request!(
                    Reason::InvalidArgument,
                    "list options give both a parent folder ({}) and a prefix",
                    spec::quoted(&options.parent)
                ))
            }
            Some(p) => p.clone(),
            None => rules.list_prefix(&options.parent)?,
        };
        let after = match &options.page_token {
            None => None,
            Some(t) => Some(
                self.inner
                    .tokens()
                    .decode(t, layer, &prefix, options.deep)?,
            ),
        };
        let (entries, next) = index.list_prefix(
            layer,
            &prefix,
            options.deep,
            after.as_ref(),
            options.start_after.as_deref(),
            options.limit,
        )?;
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
                .map(|c| self.inner.tokens().encode(&c, layer, &prefix, options.deep)),
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
                    metadata: options.metadata.clone(),
                })
            },
            |_| (),
        )?;
        Ok(upload)
    }

    /// Uploads part `n`, replacing any previous part `n` atomically. On any
    /// failure nothing is stored and the previous part `n` stays. A digest
    /// in `body` is checked and kept ([`PartInfo::digest`]); metadata is
    /// the upload's, so a `body` with metadata is BadRequest.
    pub fn upload_part<R: Read>(
        &self,
        layer: &str,
        upload: &UploadId,
        n: u32,
        body: PartBody<R>,
    ) -> Result<PartInfo> {
        let inner = &self.inner;
        inner.log().check_poison()?;
        let _part = inner.begin_part(upload.as_bytes());
        inner.index().plan_part(
            layer,
            upload.as_bytes(),
            n,
            body.len.unwrap_or(0),
            body.content_type.as_deref(),
        )?;
        if body.metadata.is_some() {
            return Err(bad_request!(
                Reason::InvalidMetadata,
                "part {n} carries metadata; an upload's metadata is given to start_multipart"
            )
            .with_part(n));
        }
        let digest = body.digest.clone();
        let _writing = inner.begin_write();
        let (extent, hashed) = ingest_body(
            inner,
            body.reader,
            body.len,
            digest.as_ref(),
            spec::MAX_PART_SIZE,
            || {
                too_large!(
                    Reason::PartTooLarge,
                    "part {n} runs past the part limit of {} bytes (96 MiB)",
                    spec::MAX_PART_SIZE
                )
                .with_part(n)
            },
        )?;
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
            digest,
        };
        inner.commit(
            |_| Ok(meta.clone()),
            |index| stored_part(index, layer, upload, n),
        )?
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
        inner.log().check_poison()?;
        let _part = inner.begin_part(upload.as_bytes());
        let (views, size) = {
            let index = inner.index();
            let plan = index.plan_copy(layer, upload.as_bytes(), n, &source.key, &source.range)?;
            let views = plan
                .pieces
                .into_iter()
                .map(|p| Ok((p, inner.view(&index, p.extent)?)))
                .collect::<Result<Vec<_>>>()?;
            (views, plan.size)
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
                    digest: source.digest.clone(),
                })
            },
            |index| stored_part(index, layer, upload, n),
        )?
    }

    /// Every current part of an open upload, ascending by number.
    pub fn list_parts(&self, layer: &str, upload: &UploadId) -> Result<Vec<PartInfo>> {
        let index = self.inner.index();
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
        let index = self.inner.index();
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
        let index = self.inner.index();
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

    /// The object a completed upload published, as it was published (even
    /// if it has since been replaced or deleted), for as long as the store
    /// remembers the completed upload: so a front can answer a repeated
    /// complete. `NotFound` if unknown or aborted; BadRequest
    /// ([`Reason::UploadNotCompleted`]) while it is open.
    pub fn upload_result(&self, layer: &str, upload: &UploadId) -> Result<ObjectInfo> {
        let index = self.inner.index();
        let u = index.upload(layer, upload.as_bytes())?;
        match (&u.state, &u.result) {
            (UploadState::Completed, Some(o)) => Ok(object_info(o)),
            (UploadState::Completed, None) => Err(not_found!(
                Reason::UnknownUpload,
                "upload {upload} was completed before this store kept upload results"
            )),
            (UploadState::Open(_), _) => Err(bad_request!(
                Reason::UploadNotCompleted,
                "upload {upload} is still open: it has published no object"
            )),
        }
    }

    /// Open uploads of a layer, by key.
    pub fn list_uploads(&self, layer: &str) -> Result<Vec<UploadSummary>> {
        let index = self.inner.index();
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
        // Saturating: an idle time past what milliseconds hold is "never".
        let idle_ms = u64::try_from(idle.as_millis()).unwrap_or(u64::MAX);
        let cutoff = now_ms().saturating_sub(idle_ms);
        let candidates = self.inner.index().idle_uploads(cutoff);
        let mut n = 0;
        for (layer, upload) in candidates {
            let r = self.inner.commit(
                |index| {
                    let (u, _) = index.open_upload(&layer, &upload)?;
                    if u.last_activity_ms > cutoff || self.inner.part_in_flight(&upload) {
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

    /// Makes every acknowledged operation durable (all modes): fsyncs every
    /// segment, so part data written under `Durability::None` into a segment
    /// that has since been sealed is covered too.
    pub fn sync(&self) -> Result<()> {
        self.inner.log().sync_all()
    }

    /// Writes a checkpoint now: the whole index, into the log, made durable
    /// in every mode. Writers go on meanwhile (they are held up only while
    /// the index is copied in memory). The next `open` restores the newest
    /// checkpoint and replays only what was committed after it. Does
    /// nothing when nothing was committed since the last checkpoint.
    ///
    /// Checkpoints are also written in the background every
    /// [`Options::checkpoint_bytes`] of records, by `compact()` and on a
    /// clean close; this is for a caller that wants one at a moment of its
    /// choosing (say, before a planned restart).
    pub fn checkpoint(&self) -> Result<()> {
        self.inner.checkpoint(false).map(|_| ())
    }

    /// Waits until no periodic checkpoint is due or being written (for
    /// tests that need the background checkpoint of the operations so far
    /// to be done, deterministically). Not a stable API.
    #[doc(hidden)]
    pub fn wait_for_checkpoints(&self) {
        if let Some(c) = &self.checkpointer {
            c.wait_idle();
        }
    }
}

impl Drop for Store {
    fn drop(&mut self) {
        // No periodic checkpoint runs past this point; then the close's
        // own, if one is worth writing. The log's final sync and mark come
        // when `inner` goes.
        self.checkpointer.take();
        self.inner.close_checkpoint();
    }
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("dir", &self.inner.dir())
            .finish()
    }
}
