//! The multipart operations of [`Store`]: start, parts (streamed or copied
//! by reference), their listing, status and result, complete, abort, and
//! the expiry of idle uploads.

use std::io::Read;
use std::time::Duration;

use crate::digest::{self, Hasher};
use crate::error::{bad_request, conflict, corrupt, not_found, too_large};
use crate::error::{Reason, Result};
use crate::index::{Index, Outcome, Retention, UploadState};
use crate::info::{now_ms, object_info, parse_part_id, part_info, to_time};
use crate::log::format::{Meta, Piece};
use crate::spec::{self, UploadId};
use crate::store::{ingest_body, Store};
use crate::types::*;

/// Part `n` as the index holds it right after a commit stored it.
fn stored_part(index: &Index, layer: &str, upload: &UploadId, n: u32) -> Result<PartInfo> {
    index
        .open_upload(layer, upload.as_bytes(), Retention::forever())?
        .parts
        .get(&n)
        .map(part_info)
        .ok_or_else(|| corrupt!("part {n} is missing right after it was stored"))
}

impl Store {
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
            self.retention(),
        )?;
        if body.metadata.is_some() {
            return Err(bad_request!(
                Reason::InvalidMetadata,
                "part {n} carries metadata; an upload's metadata is given to start_multipart"
            )
            .with_part(n));
        }
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
        let after = |index: &Index| stored_part(index, layer, upload, n);
        // Completed meanwhile: the error a query would give now.
        let prepare = |index: &Index| {
            index.open_upload(layer, upload.as_bytes(), self.retention())?;
            Ok(meta.clone())
        };
        match inline {
            Some(data) => inner.commit_with_data(&data, prepare, after)?,
            None => inner.commit(prepare, after)?,
        }
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
            let plan = index.plan_copy(
                layer,
                upload.as_bytes(),
                n,
                &source.key,
                &source.range,
                self.retention(),
            )?;
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
                index.open_upload(layer, upload.as_bytes(), self.retention())?;
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
    /// BadRequest ([`Reason::UploadCompleted`]) while it is remembered as
    /// completed; NotFound if unknown, aborted or no longer remembered.
    pub fn list_parts(&self, layer: &str, upload: &UploadId) -> Result<Vec<PartInfo>> {
        let index = self.inner.index();
        let u = index.open_upload(layer, upload.as_bytes(), self.retention())?;
        Ok(u.parts.values().map(part_info).collect())
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
        let u = index.open_upload(layer, upload.as_bytes(), self.retention())?;
        Ok(u.parts
            .range(after.saturating_add(1)..)
            .take(limit)
            .map(|(_, p)| part_info(p))
            .collect())
    }

    /// Whether an upload is open (with its parts, bytes, last activity) or
    /// completed. A completed upload is `Completed` for the retention window
    /// (`Options::completed_upload_retention`, default 24 h) after its
    /// complete; after it, and for an unknown or aborted upload: `NotFound`
    /// ([`Reason::UnknownUpload`]).
    pub fn upload_status(&self, layer: &str, upload: &UploadId) -> Result<UploadStatus> {
        let index = self.inner.index();
        let state = index.upload(layer, upload.as_bytes(), self.retention())?;
        Ok(match state {
            UploadState::Open(u) => UploadStatus::Open {
                parts: u.parts.len(),
                bytes: u.parts.values().map(|p| p.size).sum(),
                last_activity: to_time(u.last_activity_ms),
            },
            UploadState::Completed(_) => UploadStatus::Completed,
        })
    }

    /// The object a completed upload published, as it was published (even
    /// if it has since been replaced or deleted), for as long as the store
    /// remembers the completed upload (`Options::completed_upload_retention`):
    /// so a front can answer a repeated complete. `NotFound`
    /// ([`Reason::UnknownUpload`]) if unknown, aborted or past the
    /// retention window; BadRequest ([`Reason::UploadNotCompleted`]) while
    /// it is open.
    pub fn upload_result(&self, layer: &str, upload: &UploadId) -> Result<ObjectInfo> {
        let index = self.inner.index();
        match index.upload(layer, upload.as_bytes(), self.retention())? {
            UploadState::Completed(c) => match &c.outcome {
                Outcome::Published(o) => Ok(object_info(&o.object())),
                Outcome::Unrecorded { .. } => Err(not_found!(
                    Reason::UnknownUpload,
                    "upload {upload} was completed before this store kept upload results"
                )),
            },
            UploadState::Open(_) => Err(bad_request!(
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
            .map(|(id, u)| UploadSummary {
                key: u.key.clone(),
                upload: UploadId::from_bytes(*id),
                started: to_time(u.started_ms),
                last_activity: to_time(u.last_activity_ms),
                parts: u.parts.len(),
            })
            .collect())
    }

    /// Completes an upload with every current part. Afterwards the upload
    /// is remembered as completed for `Options::completed_upload_retention`
    /// (see [`Store::upload_status`]); a repeated complete meanwhile is
    /// BadRequest ([`Reason::UploadCompleted`]), later NotFound.
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
                let u = index.open_upload(layer, upload.as_bytes(), self.retention())?;
                let parts = match &chosen {
                    Some(c) => c.clone(),
                    None => u.parts.values().map(|p| (p.number, p.id)).collect(),
                };
                Ok(Meta::UploadCompleted {
                    layer: layer.to_string(),
                    upload: *upload.as_bytes(),
                    parts,
                    etag_seq,
                    time_ms: now_ms(),
                })
            },
            // The tombstone just written, whatever the retention (zero
            // forgets it for every later call, not for this one).
            |index| match index
                .completed_upload(upload.as_bytes())
                .map(|c| &c.outcome)
            {
                Some(Outcome::Published(o)) => Ok(object_info(&o.object())),
                _ => Err(corrupt!(
                    "upload {upload} has no result right after its completion"
                )),
            },
        )?
    }

    /// Aborts an open upload; its parts become garbage. BadRequest
    /// ([`Reason::UploadCompleted`]) while it is remembered as completed;
    /// NotFound if unknown, aborted or no longer remembered.
    pub fn abort_multipart(&self, layer: &str, upload: &UploadId) -> Result<()> {
        self.inner.commit(
            |index| {
                index.open_upload(layer, upload.as_bytes(), self.retention())?;
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
    /// many. Also frees the tombstones of completed uploads past
    /// `Options::completed_upload_retention` (already unknown to every
    /// call; [`Stats::completed_uploads`] counts those held).
    pub fn expire_uploads(&self, idle: Duration) -> Result<usize> {
        // Saturating: an idle time past what milliseconds hold is "never".
        let idle_ms = u64::try_from(idle.as_millis()).unwrap_or(u64::MAX);
        let cutoff = now_ms().saturating_sub(idle_ms);
        let candidates = self.inner.index().idle_uploads(cutoff);
        let mut n = 0;
        for (layer, upload) in candidates {
            let r = self.inner.commit(
                |index| {
                    let u = index.open_upload(&layer, &upload, self.retention())?;
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
        self.inner.forget_completed(self.retention());
        Ok(n)
    }
}
