//! [`Store`]: the public operations. Each reads as validate → (ingest) →
//! commit; the commit pipeline, the log and recovery live in their own
//! modules (`engine`, `log`, `recovery`).

use std::io::Read;
use std::path::Path;
use std::sync::Arc;

use crate::blob::{Blob, BlobPiece};
use crate::checkpoint::{Checkpointer, Checkpoints};
use crate::engine::Inner;
use crate::error::{bad_request, too_large};
use crate::error::{Error, Reason, Result};
use crate::index::{Entry, Index, Retention};
use crate::info::{now_ms, packed_info, to_time};
use crate::list_token::TokenKey;
use crate::log::format::Meta;
use crate::log::writer::{Flusher, Log, Prewriter};
use crate::options::*;
use crate::spec::{self, Digest};
use crate::types::*;

/// An embedded store of layers, objects and multipart uploads.
/// `Send + Sync`: share it between threads by reference or in an `Arc`.
pub struct Store {
    pub(crate) inner: Arc<Inner>,
    /// The flusher of `Durability::Batched`; stopped (and joined) on drop
    /// before the log closes.
    flusher: Option<Flusher>,
    /// Periodic checkpoints; stopped (and joined) first on drop.
    checkpointer: Option<Checkpointer>,
    /// The pre-writer (`Options::prewrite`); stopped (and joined) on drop
    /// before anything else.
    prewriter: Option<Prewriter>,
    /// The count of data bytes after the open; stopped (and joined) on
    /// drop once the log is closed, so nothing of the store outlives it.
    counter: Option<std::thread::JoinHandle<()>>,
}

/// Streams a body into a new extent: exactly its declared length, or (for
/// `PartBody::until_eof`) to its end, at most `max` bytes (`too_large`
/// past it).
pub(crate) fn ingest_body<R: Read>(
    inner: &Inner,
    reader: R,
    len: Option<u64>,
    digest: Option<&Digest>,
    max: u64,
    too_large: impl Fn() -> Error,
) -> Result<crate::ingest::Body> {
    match len {
        Some(len) => crate::ingest::ingest(inner, reader, len, digest),
        None => crate::ingest::ingest_until_eof(inner, reader, max, digest, too_large),
    }
}

impl Store {
    /// Opens (or creates) the store in `dir`: takes the directory's lock
    /// (`Conflict` if another `Store` holds it, in this process or another),
    /// scans every segment, truncates a torn tail of the newest one,
    /// restores the last checkpoint and replays the records written after
    /// it (see [`Store::checkpoint`]).
    /// Completed uploads already past `Options::completed_upload_retention`
    /// are dropped from memory after the replay.
    pub fn open(dir: impl AsRef<Path>, opts: Options) -> Result<Store> {
        let dir = dir.as_ref();
        let opts = opts.checked()?;
        let mut opened = crate::recovery::open(dir, &opts)?;
        // Replay rebuilt every tombstone its records hold; the expired ones
        // are unknown to every query already, so their memory goes now.
        opened
            .index
            .forget_completed(Retention::at(opts.completed_upload_retention, now_ms()));
        let tokens = TokenKey::load_or_create(&*opts.backend, dir)?;
        let log = Arc::new(Log::new(
            dir,
            Arc::clone(&opts.backend),
            opts.segment_size,
            opts.durability,
            opts.prewrites(),
            opts.recycle_segments,
            opened.log,
        )?);
        let prewriter = Prewriter::spawn(&log);
        let batched = (opts.durability == Durability::Batched).then_some(opts.batch_interval);
        let periodic = opts.checkpoint_bytes > 0;
        let checkpoints = Checkpoints::new(
            opened.checkpoint_base,
            opened.checkpoint_pages,
            opened.replayed_bytes,
            opened.pointer_seq,
        );
        let inner = Arc::new(Inner::new(
            opts,
            opened.lock,
            opened.index,
            log,
            tokens,
            checkpoints,
        ));
        let flusher = batched.map(|every| Flusher::spawn(inner.log_weak(), every));
        // The data bytes of the log before the restored checkpoint's base
        // (open did not scan it), counted off the open's path.
        let log = inner.log_weak();
        let counter = std::thread::Builder::new()
            .name("partstore-count".into())
            .spawn(move || {
                if let Some(log) = log.upgrade() {
                    log.count_regions();
                }
            })
            .ok();
        let checkpointer = periodic.then(|| Checkpointer::spawn(&inner));
        Ok(Store {
            inner,
            flusher,
            checkpointer,
            prewriter,
            counter,
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

    /// Which completed uploads are remembered now
    /// (`Options::completed_upload_retention`, judged at every query).
    pub(crate) fn retention(&self) -> Retention {
        Retention::at(self.inner.opts().completed_upload_retention, now_ms())
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
        let _writing = inner.begin_body(body.len);
        let crate::ingest::Body {
            extent,
            hashed,
            inline,
        } = ingest_body(
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
        let (etag_seq, time_ms) = (inner.fresh_id(), now_ms());
        // Built for each attempt (one unless a conflicting write makes the
        // commit try again), not built once and cloned each time.
        let meta = |_: &Index| {
            Ok(Meta::ObjectPut {
                layer: layer.to_string(),
                key: key.to_string(),
                new_extent: extent.clone(),
                size: hashed.len,
                crc32c: hashed.crc32c,
                content_type: content_type.clone(),
                content_encoding: content_encoding.clone(),
                etag_seq,
                time_ms,
                metadata: metadata.clone(),
                digest: digest.clone(),
            })
        };
        let after = |index: &Index| index.written(layer, key).map(|o| packed_info(index, o));
        match inline {
            Some(data) => inner.commit_with_data(&data, meta, after)?,
            None => inner.commit(meta, after)?,
        }
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
            |index| index.written(layer, dst).map(|o| packed_info(index, o)),
        )?
    }

    /// An object's metadata; `NotFound` for a missing key.
    pub fn head(&self, layer: &str, key: &str) -> Result<ObjectInfo> {
        let index = self.inner.index();
        Ok(packed_info(&index, index.object_ref(layer, key)?))
    }

    /// A pinned snapshot of an object for reading.
    pub fn get(&self, layer: &str, key: &str) -> Result<Blob> {
        let index = self.inner.index();
        // From the packed entry: its fields are read once, into the
        // `ObjectInfo` the blob carries.
        let obj = index.object_ref(layer, key)?;
        let info = packed_info(&index, obj);
        let object_pieces = index.pieces_of(obj.rec);
        let mut pieces = Vec::with_capacity(object_pieces.len());
        let mut start = 0u64;
        for p in object_pieces.iter() {
            let extent = self.inner.view(&index, p.extent)?;
            pieces.push(BlobPiece {
                start,
                len: p.len,
                extent_offset: p.offset,
                extent,
            });
            start += p.len;
        }
        Ok(Blob::new(info, pieces, self.inner.opts().verify_reads))
    }

    /// Deletes an object; deleting a missing key succeeds.
    pub fn delete(&self, layer: &str, key: &str) -> Result<()> {
        {
            // A missing key changes nothing: no record needed.
            let index = self.inner.index();
            let l = index.layer(layer)?;
            l.key_rules.validate(key)?;
            if l.objects.get(key).is_none() {
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
                Entry::Object(o) => ListItem::Object(*o),
                Entry::Prefix(p) => ListItem::Prefix(p),
            })
            .collect();
        Ok(ListPage {
            items,
            next_page_token: next
                .map(|c| self.inner.tokens().encode(&c, layer, &prefix, options.deep)),
        })
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
        // own, if one is worth writing; then the log's final sync and mark,
        // while the directory's lock is still held (a background thread,
        // the count after open say, may hold the log a moment longer: its
        // last drop then writes nothing).
        self.prewriter.take();
        self.checkpointer.take();
        self.flusher.take();
        self.inner.close_checkpoint();
        self.inner.log().close();
        if let Some(t) = self.counter.take() {
            let _ = t.join();
        }
    }
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("dir", &self.inner.dir())
            .finish()
    }
}
