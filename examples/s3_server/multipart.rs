//! Multipart uploads: start, parts (uploaded or copied), listings,
//! complete (once, or again: S3 answers a repeat with the same object),
//! abort.

use std::sync::Arc;

use partstore::{ByteRange, CopySource as EngineCopySource, PartBody, PartInfo, PartRef};
use partstore::{UploadOptions, UploadStatus};
use s3s::dto::*;
use s3s::{S3ErrorCode, S3Request, S3Response, S3Result};

use crate::attrs::{self, Attrs, Checksums};
use crate::body;
use crate::complete::{check_completion, chosen_parts, Whole};
use crate::errors::err;
use crate::request::{
    body_len, checks_of, copy_source, open_upload, page_size, part_number, quoted, ts, Conditions,
};
use crate::s3::{owner, EngineResult, PartstoreS3};

fn s3_part(p: &PartInfo) -> Part {
    let (sha1, sha256) = attrs::part_sha(p);
    Part {
        part_number: Some(p.part_number as i32),
        e_tag: Some(quoted(&p.id)),
        size: Some(p.size as i64),
        last_modified: Some(ts(p.last_modified)),
        checksum_crc32c: Some(body::crc32c_b64(p.crc32c)),
        checksum_sha1: sha1,
        checksum_sha256: sha256,
        ..Default::default()
    }
}

pub async fn create_multipart_upload(
    s3: &PartstoreS3,
    req: S3Request<CreateMultipartUploadInput>,
) -> S3Result<S3Response<CreateMultipartUploadOutput>> {
    let i = req.input;
    let (bucket, key) = (i.bucket, i.key);
    let metadata = Attrs {
        user: i.metadata,
        cache_control: i.cache_control,
        content_disposition: i.content_disposition,
        content_language: i.content_language,
        expires: i.expires,
    }
    .to_engine()?;
    let mut opts = UploadOptions::new(
        i.content_type
            .unwrap_or_else(|| partstore::rules::DEFAULT_CONTENT_TYPE.into()),
    )
    .metadata(metadata);
    if let Some(ce) = attrs::stored_encoding(i.content_encoding) {
        opts = opts.content_encoding(ce);
    }
    let (b, k) = (bucket.clone(), key.clone());
    let up = s3
        .blocking(move |s| s.start_multipart(&b, &k, opts).s3())
        .await?;
    // The parts' checksums are checked and kept as they come; the
    // algorithm asked for is echoed, with S3's default type for it.
    let kind = i.checksum_algorithm.as_ref().map(|a| {
        i.checksum_type.clone().unwrap_or_else(|| {
            ChecksumType::from_static(if a.as_str() == ChecksumAlgorithm::CRC64NVME {
                ChecksumType::FULL_OBJECT
            } else {
                ChecksumType::COMPOSITE
            })
        })
    });
    Ok(S3Response::new(CreateMultipartUploadOutput {
        bucket: Some(bucket),
        key: Some(key),
        upload_id: Some(up.to_string()),
        checksum_algorithm: i.checksum_algorithm,
        checksum_type: kind,
        ..Default::default()
    }))
}

pub async fn upload_part(
    s3: &PartstoreS3,
    req: S3Request<UploadPartInput>,
) -> S3Result<S3Response<UploadPartOutput>> {
    let i = req.input;
    let n = part_number(i.part_number)?;
    let checks = checks_of(
        &req.headers,
        i.content_md5.as_ref(),
        i.checksum_crc32.as_ref(),
        i.checksum_crc32c.as_ref(),
        i.checksum_crc64nvme.as_ref(),
        i.checksum_sha1.as_ref(),
        i.checksum_sha256.as_ref(),
    )?;
    let len = body_len(&req.headers, i.content_length, i.body.is_some())?;
    let (bucket, key, uid) = (i.bucket, i.key, i.upload_id);
    let b = bucket.clone();
    let up = s3.blocking(move |s| open_upload(s, &b, &key, &uid)).await?;
    let store = Arc::clone(&s3.store);
    let digest = checks.engine.clone();
    // The part's Content-Type is not passed on: S3 ignores it, while the
    // engine would hold it to the upload's.
    let part = body::with_body(i.body, &checks, req.trailing_headers, move |r| {
        let mut b = match len {
            Some(len) => PartBody::new(r, len),
            None => PartBody::until_eof(r),
        };
        if let Some(d) = digest {
            b = b.digest(d);
        }
        store.upload_part(&bucket, &up, n, b)
    })
    .await?;
    let (sha1, sha256) = attrs::part_sha(&part);
    Ok(S3Response::new(UploadPartOutput {
        e_tag: Some(quoted(&part.id)),
        checksum_crc32c: Some(body::crc32c_b64(part.crc32c)),
        checksum_sha1: sha1.or(i.checksum_sha1),
        checksum_sha256: sha256.or(i.checksum_sha256),
        checksum_crc32: i.checksum_crc32,
        checksum_crc64nvme: i.checksum_crc64nvme,
        ..Default::default()
    }))
}

pub async fn upload_part_copy(
    s3: &PartstoreS3,
    req: S3Request<UploadPartCopyInput>,
) -> S3Result<S3Response<UploadPartCopyOutput>> {
    use std::io::{Read, Seek, SeekFrom};
    let i = req.input;
    let n = part_number(i.part_number)?;
    let (src_bucket, src_key) = copy_source(&i.copy_source)?;
    let (bucket, key, uid) = (i.bucket, i.key, i.upload_id);
    let range_header = i.copy_source_range;
    let (im, inm, ims, ius) = (
        i.copy_source_if_match,
        i.copy_source_if_none_match,
        i.copy_source_if_modified_since,
        i.copy_source_if_unmodified_since,
    );
    let part = s3
        .blocking(move |s| {
            let up = open_upload(s, &bucket, &key, &uid)?;
            let src = s.get(&src_bucket, &src_key).s3()?;
            Conditions {
                if_match: im.as_ref(),
                if_none_match: inm.as_ref(),
                if_modified_since: ims.as_ref(),
                if_unmodified_since: ius.as_ref(),
                read: false,
            }
            .check(src.info())?;
            let range: ByteRange = match &range_header {
                Some(r) => r.parse().map_err(|e: partstore::Error| {
                    err(
                        S3ErrorCode::InvalidArgument,
                        format!("x-amz-copy-source-range \"{r}\": {e}"),
                    )
                })?,
                // S3 copies the whole source when no range is given.
                None if src.size() == 0 => {
                    return Err(err(
                        S3ErrorCode::InvalidRange,
                        format!("copy source \"{src_key}\" is empty: no byte range to copy"),
                    ))
                }
                None => format!("bytes=0-{}", src.size() - 1).parse().s3()?,
            };
            if src_bucket == bucket {
                // Zero-copy: the part references the source's extents.
                return s
                    .copy_part(&bucket, &up, n, EngineCopySource::new(src_key, range))
                    .s3();
            }
            // Another layer: the engine copies by reference within a
            // layer only, so read the range and upload it.
            let span = range.resolve_copy(src.size()).s3()?;
            let mut r = src.reader();
            r.seek(SeekFrom::Start(span.start))
                .map_err(|e| err(S3ErrorCode::InternalError, e.to_string()))?;
            let len = span.end - span.start;
            s.upload_part(&bucket, &up, n, PartBody::new(r.take(len), len))
                .s3()
        })
        .await?;
    Ok(S3Response::new(UploadPartCopyOutput {
        copy_part_result: Some(CopyPartResult {
            e_tag: Some(quoted(&part.id)),
            last_modified: Some(ts(part.last_modified)),
            checksum_crc32c: Some(body::crc32c_b64(part.crc32c)),
            ..Default::default()
        }),
        ..Default::default()
    }))
}

pub async fn list_parts(
    s3: &PartstoreS3,
    req: S3Request<ListPartsInput>,
) -> S3Result<S3Response<ListPartsOutput>> {
    let i = req.input;
    let max = page_size(i.max_parts, "max-parts")?;
    let marker = u32::try_from(i.part_number_marker.unwrap_or(0)).unwrap_or(0);
    let (bucket, key, uid) = (i.bucket.clone(), i.key.clone(), i.upload_id.clone());
    let (parts, truncated) = s3
        .blocking(move |s| {
            let up = open_upload(s, &bucket, &key, &uid)?;
            if max == 0 {
                return Ok((Vec::new(), false));
            }
            let parts = s.list_parts_page(&bucket, &up, marker, max).s3()?;
            let truncated = match parts.last() {
                Some(last) if parts.len() == max => !s
                    .list_parts_page(&bucket, &up, last.part_number, 1)
                    .s3()?
                    .is_empty(),
                _ => false,
            };
            Ok((parts, truncated))
        })
        .await?;
    let next = parts
        .last()
        .filter(|_| truncated)
        .map(|p| p.part_number as i32);
    Ok(S3Response::new(ListPartsOutput {
        bucket: Some(i.bucket),
        key: Some(i.key),
        upload_id: Some(i.upload_id),
        max_parts: Some(max as i32),
        part_number_marker: i.part_number_marker,
        next_part_number_marker: next,
        is_truncated: Some(truncated),
        parts: Some(parts.iter().map(s3_part).collect()),
        storage_class: Some(StorageClass::from_static(StorageClass::STANDARD)),
        owner: Some(owner()),
        ..Default::default()
    }))
}

pub async fn list_multipart_uploads(
    s3: &PartstoreS3,
    req: S3Request<ListMultipartUploadsInput>,
) -> S3Result<S3Response<ListMultipartUploadsOutput>> {
    let i = req.input;
    let max = page_size(i.max_uploads, "max-uploads")?;
    let bucket = i.bucket.clone();
    let mut open = s3.blocking(move |s| s.list_uploads(&bucket).s3()).await?;
    open.sort_by(|a, b| {
        (a.key.as_str(), a.upload.to_string()).cmp(&(b.key.as_str(), b.upload.to_string()))
    });
    let prefix = i.prefix.as_deref().unwrap_or("");
    let delimiter = i.delimiter.as_deref().filter(|d| !d.is_empty());
    let key_marker = i.key_marker.as_deref();
    let id_marker = i.upload_id_marker.as_deref();
    let mut uploads = Vec::new();
    let mut prefixes: Vec<String> = Vec::new();
    let mut truncated = false;
    let mut last: Option<(String, Option<String>)> = None;
    for u in &open {
        if !u.key.starts_with(prefix) {
            continue;
        }
        let id = u.upload.to_string();
        if let Some(km) = key_marker {
            let after = match id_marker {
                Some(im) => u.key.as_str() > km || (u.key == km && id.as_str() > im),
                None => u.key.as_str() > km,
            };
            // A marker that is a common prefix skips everything under it.
            let under = delimiter.is_some_and(|d| km.ends_with(d)) && u.key.starts_with(km);
            if !after || under {
                continue;
            }
        }
        let group = delimiter.and_then(|d| {
            u.key[prefix.len()..]
                .find(d)
                .map(|at| u.key[..prefix.len() + at + d.len()].to_owned())
        });
        if let Some(g) = &group {
            if prefixes.last() == Some(g) {
                continue;
            }
        }
        if uploads.len() + prefixes.len() == max {
            truncated = true;
            break;
        }
        match group {
            Some(g) => {
                last = Some((g.clone(), None));
                prefixes.push(g);
            }
            None => {
                last = Some((u.key.clone(), Some(id.clone())));
                uploads.push(MultipartUpload {
                    key: Some(u.key.clone()),
                    upload_id: Some(id),
                    initiated: Some(ts(u.started)),
                    storage_class: Some(StorageClass::from_static(StorageClass::STANDARD)),
                    owner: Some(owner()),
                    ..Default::default()
                });
            }
        }
    }
    let (next_key, next_id) = match last.filter(|_| truncated) {
        Some((k, id)) => (Some(k), id),
        None => (None, None),
    };
    Ok(S3Response::new(ListMultipartUploadsOutput {
        bucket: Some(i.bucket),
        prefix: i.prefix,
        delimiter: i.delimiter.filter(|d| !d.is_empty()),
        key_marker: i.key_marker,
        upload_id_marker: i.upload_id_marker,
        max_uploads: Some(max as i32),
        is_truncated: Some(truncated),
        next_key_marker: next_key,
        next_upload_id_marker: next_id,
        uploads: Some(uploads),
        common_prefixes: Some(
            prefixes
                .into_iter()
                .map(|p| CommonPrefix { prefix: Some(p) })
                .collect(),
        ),
        ..Default::default()
    }))
}

pub async fn complete_multipart_upload(
    s3: &PartstoreS3,
    req: S3Request<CompleteMultipartUploadInput>,
) -> S3Result<S3Response<CompleteMultipartUploadOutput>> {
    let i = req.input;
    if i.if_match.is_some() || i.if_none_match.is_some() {
        return Err(err(
            S3ErrorCode::NotImplemented,
            "conditional writes (If-Match / If-None-Match) are not supported",
        ));
    }
    let listed = i.multipart_upload.and_then(|m| m.parts).unwrap_or_default();
    let whole = Whole {
        crc32c: i.checksum_crc32c,
        sha1: i.checksum_sha1,
        sha256: i.checksum_sha256,
    };
    let (bucket, key, uid) = (i.bucket.clone(), i.key.clone(), i.upload_id);
    let info = s3
        .blocking(move |s| {
            // Completed already (a retry): S3 answers with the object
            // the first complete published.
            if let Ok(up) = uid.parse() {
                if let Ok(UploadStatus::Completed) = s.upload_status(&bucket, &up) {
                    let done = s.upload_result(&bucket, &up).s3()?;
                    if done.key == key {
                        return Ok(done);
                    }
                }
            }
            let chosen = chosen_parts(&listed)?;
            let up = open_upload(s, &bucket, &key, &uid)?;
            let current = s.list_parts(&bucket, &up).s3()?;
            check_completion(&current, &chosen, &whole)?;
            let refs: Vec<PartRef> = chosen.into_iter().map(|c| c.part).collect();
            s.complete_multipart_with(&bucket, &up, &refs).s3()
        })
        .await?;
    let c = Checksums::of(&info);
    Ok(S3Response::new(CompleteMultipartUploadOutput {
        bucket: Some(i.bucket.clone()),
        key: Some(i.key.clone()),
        location: Some(format!("/{}/{}", i.bucket, i.key)),
        e_tag: Some(quoted(&info.etag)),
        checksum_crc32c: c.crc32c,
        checksum_sha1: c.sha1,
        checksum_sha256: c.sha256,
        checksum_type: c.kind,
        ..Default::default()
    }))
}

pub async fn abort_multipart_upload(
    s3: &PartstoreS3,
    req: S3Request<AbortMultipartUploadInput>,
) -> S3Result<S3Response<AbortMultipartUploadOutput>> {
    let i = req.input;
    let (bucket, key, uid) = (i.bucket, i.key, i.upload_id);
    s3.blocking(move |s| {
        let up = open_upload(s, &bucket, &key, &uid)?;
        s.abort_multipart(&bucket, &up).s3()
    })
    .await?;
    Ok(S3Response::new(AbortMultipartUploadOutput::default()))
}
