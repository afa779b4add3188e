//! Object operations: put, get, head (whole, a range, or a part), delete,
//! copy (metadata directive), and the two listings.

use std::sync::Arc;

use partstore::{ByteRange, ObjectInfo, PartBody};
use s3s::dto::*;
use s3s::{S3ErrorCode, S3Request, S3Response, S3Result};

use crate::attrs::{self, Attrs, Checksums, Stored};
use crate::body;
use crate::errors::{self, err};
use crate::list;
use crate::request::{
    body_len, checks_of, copy_source, engine_range, page_size, quoted, ts, Conditions, MAX_PAGE,
};
use crate::s3::{owner, EngineResult, PartstoreS3};

/// DeleteObjects takes at most this many keys (S3: MalformedXML above).
const MAX_DELETE_KEYS: usize = 1000;

fn s3_object(o: &ObjectInfo, encode: bool, with_owner: bool) -> Object {
    let c = Checksums::of(o);
    let algorithm = if c.sha256.is_some() {
        ChecksumAlgorithm::SHA256
    } else if c.sha1.is_some() {
        ChecksumAlgorithm::SHA1
    } else {
        ChecksumAlgorithm::CRC32C
    };
    Object {
        key: Some(name(&o.key, encode)),
        size: Some(o.size as i64),
        last_modified: Some(ts(o.last_modified)),
        e_tag: Some(quoted(&o.etag)),
        checksum_algorithm: Some(vec![ChecksumAlgorithm::from_static(algorithm)]),
        checksum_type: c.kind,
        storage_class: Some(ObjectStorageClass::from_static(
            ObjectStorageClass::STANDARD,
        )),
        owner: with_owner.then(owner),
        ..Default::default()
    }
}

/// A key or prefix in a listing, URL-encoded when the client asked.
fn name(s: &str, encode: bool) -> String {
    if encode {
        list::url_encode(s)
    } else {
        s.to_owned()
    }
}

fn url_encoding(e: Option<&EncodingType>) -> S3Result<bool> {
    match e.map(EncodingType::as_str) {
        None => Ok(false),
        Some(EncodingType::URL) => Ok(true),
        Some(other) => Err(err(
            S3ErrorCode::InvalidArgument,
            format!("encoding type \"{other}\" is not url"),
        )),
    }
}

fn checksum_wanted(mode: Option<&ChecksumMode>) -> bool {
    mode.is_some_and(|m| m.as_str().eq_ignore_ascii_case(ChecksumMode::ENABLED))
}

/// What GET and HEAD answer: the byte span, the object's headers and the
/// checksums (whole-object reads only), from a `partNumber` or a `Range`.
struct Read {
    info: ObjectInfo,
    span: std::ops::Range<u64>,
    /// Content-Range, for a range or a part of a multipart object.
    content_range: Option<String>,
    parts_count: Option<i32>,
    checksums: Checksums,
}

/// The span of a read of `info`: the whole object, a `Range`, or part
/// `part` (S3: InvalidPart for a part the object does not have; both at
/// once is InvalidRequest).
fn read_of(
    info: ObjectInfo,
    range: Option<ByteRange>,
    part: Option<i32>,
    checksums: bool,
) -> S3Result<Read> {
    let (span, partial, parts_count) = match (range, part) {
        (Some(_), Some(_)) => {
            return Err(err(
                S3ErrorCode::InvalidRequest,
                "a read names both a Range and a partNumber",
            ))
        }
        (Some(r), None) => (r.resolve(info.size).s3()?, true, None),
        (None, Some(n)) => {
            let span = u32::try_from(n)
                .ok()
                .and_then(|n| info.part_range(n))
                .ok_or_else(|| {
                    err(
                        S3ErrorCode::InvalidPart,
                        format!("the object has no part {n} (it has {})", info.part_count),
                    )
                })?;
            let multipart = info.part_count > 1;
            (span, multipart, multipart.then_some(info.part_count as i32))
        }
        (None, None) => (0..info.size, false, None),
    };
    let content_range = partial.then(|| {
        format!(
            "bytes {}-{}/{}",
            span.start,
            span.end.saturating_sub(1),
            info.size
        )
    });
    let checksums = if checksums && !partial {
        Checksums::of(&info)
    } else {
        Checksums::default()
    };
    Ok(Read {
        info,
        span,
        content_range,
        parts_count,
        checksums,
    })
}

/// GetObject's response-* overrides of the stored headers.
struct Overrides {
    cache_control: Option<String>,
    content_disposition: Option<String>,
    content_encoding: Option<String>,
    content_language: Option<String>,
    content_type: Option<String>,
    expires: Option<Timestamp>,
}

pub async fn put_object(
    s3: &PartstoreS3,
    req: S3Request<PutObjectInput>,
) -> S3Result<S3Response<PutObjectOutput>> {
    let i = req.input;
    if i.if_match.is_some() || i.if_none_match.is_some() {
        return Err(err(
            S3ErrorCode::NotImplemented,
            "conditional writes (If-Match / If-None-Match) are not supported",
        ));
    }
    let checks = checks_of(
        &req.headers,
        i.content_md5.as_ref(),
        i.checksum_crc32.as_ref(),
        i.checksum_crc32c.as_ref(),
        i.checksum_crc64nvme.as_ref(),
        i.checksum_sha1.as_ref(),
        i.checksum_sha256.as_ref(),
    )?;
    let metadata = Attrs {
        user: i.metadata,
        cache_control: i.cache_control,
        content_disposition: i.content_disposition,
        content_language: i.content_language,
        expires: i.expires,
    }
    .to_engine()?;
    let len = body_len(&req.headers, i.content_length, i.body.is_some())?;
    let store = Arc::clone(&s3.store);
    let (bucket, key) = (i.bucket, i.key);
    let ce = attrs::stored_encoding(i.content_encoding);
    let (ct, digest) = (i.content_type, checks.engine.clone());
    let info = body::with_body(i.body, &checks, req.trailing_headers, move |r| {
        let mut b = match len {
            Some(len) => PartBody::new(r, len),
            None => PartBody::until_eof(r),
        };
        b = b.metadata(metadata);
        if let Some(ct) = ct {
            b = b.content_type(ct);
        }
        if let Some(ce) = ce {
            b = b.content_encoding(ce);
        }
        if let Some(d) = digest {
            b = b.digest(d);
        }
        store.put_object(&bucket, &key, b)
    })
    .await?;
    let c = Checksums::of(&info);
    Ok(S3Response::new(PutObjectOutput {
        e_tag: Some(quoted(&info.etag)),
        size: Some(info.size as i64),
        checksum_crc32c: c.crc32c,
        checksum_sha1: c.sha1,
        checksum_sha256: c.sha256,
        checksum_type: c.kind,
        // Checked against the body on the way in: echo them as S3 does.
        checksum_crc32: i.checksum_crc32,
        checksum_crc64nvme: i.checksum_crc64nvme,
        ..Default::default()
    }))
}

pub async fn get_object(
    s3: &PartstoreS3,
    req: S3Request<GetObjectInput>,
) -> S3Result<S3Response<GetObjectOutput>> {
    let i = req.input;
    let range = i.range.as_ref().map(engine_range).transpose()?;
    let with_checksum = checksum_wanted(i.checksum_mode.as_ref());
    let (bucket, key, part) = (i.bucket, i.key, i.part_number);
    let (im, inm, ims, ius) = (
        i.if_match,
        i.if_none_match,
        i.if_modified_since,
        i.if_unmodified_since,
    );
    let (blob, first, read) = s3
        .blocking(move |s| {
            let blob = s.get(&bucket, &key).s3()?;
            Conditions {
                if_match: im.as_ref(),
                if_none_match: inm.as_ref(),
                if_modified_since: ims.as_ref(),
                if_unmodified_since: ius.as_ref(),
                read: true,
            }
            .check(blob.info())?;
            let read = read_of(blob.info().clone(), range, part, with_checksum)?;
            let first = body::first_window(&blob, read.span.start, read.span.end).s3()?;
            Ok((blob, first, read))
        })
        .await?;
    let stored = Stored::of(&read.info);
    let o = Overrides {
        cache_control: i.response_cache_control,
        content_disposition: i.response_content_disposition,
        content_encoding: i.response_content_encoding,
        content_language: i.response_content_language,
        content_type: i.response_content_type,
        expires: i.response_expires,
    };
    let c = read.checksums;
    Ok(S3Response::new(GetObjectOutput {
        body: Some(body::blob_body(blob, first, read.span.start, read.span.end)),
        content_length: Some((read.span.end - read.span.start) as i64),
        content_range: read.content_range,
        parts_count: read.parts_count,
        accept_ranges: Some("bytes".to_owned()),
        content_type: Some(o.content_type.unwrap_or(stored.content_type)),
        content_encoding: o.content_encoding.or(stored.content_encoding),
        cache_control: o.cache_control.or(stored.cache_control),
        content_disposition: o.content_disposition.or(stored.content_disposition),
        content_language: o.content_language.or(stored.content_language),
        expires: o.expires.or(stored.expires),
        metadata: stored.user,
        e_tag: Some(quoted(&read.info.etag)),
        last_modified: Some(ts(read.info.last_modified)),
        checksum_crc32c: c.crc32c,
        checksum_sha1: c.sha1,
        checksum_sha256: c.sha256,
        checksum_type: c.kind,
        ..Default::default()
    }))
}

pub async fn head_object(
    s3: &PartstoreS3,
    req: S3Request<HeadObjectInput>,
) -> S3Result<S3Response<HeadObjectOutput>> {
    let i = req.input;
    let range = i.range.as_ref().map(engine_range).transpose()?;
    let with_checksum = checksum_wanted(i.checksum_mode.as_ref());
    let (bucket, key, part) = (i.bucket, i.key, i.part_number);
    let (im, inm, ims, ius) = (
        i.if_match,
        i.if_none_match,
        i.if_modified_since,
        i.if_unmodified_since,
    );
    let read = s3
        .blocking(move |s| {
            let info = s.head(&bucket, &key).s3()?;
            Conditions {
                if_match: im.as_ref(),
                if_none_match: inm.as_ref(),
                if_modified_since: ims.as_ref(),
                if_unmodified_since: ius.as_ref(),
                read: true,
            }
            .check(&info)?;
            read_of(info, range, part, with_checksum)
        })
        .await?;
    let stored = Stored::of(&read.info);
    let c = read.checksums;
    Ok(S3Response::new(HeadObjectOutput {
        content_length: Some((read.span.end - read.span.start) as i64),
        content_range: read.content_range,
        parts_count: read.parts_count,
        accept_ranges: Some("bytes".to_owned()),
        content_type: Some(stored.content_type),
        content_encoding: stored.content_encoding,
        cache_control: stored.cache_control,
        content_disposition: stored.content_disposition,
        content_language: stored.content_language,
        expires: stored.expires,
        metadata: stored.user,
        e_tag: Some(quoted(&read.info.etag)),
        last_modified: Some(ts(read.info.last_modified)),
        checksum_crc32c: c.crc32c,
        checksum_sha1: c.sha1,
        checksum_sha256: c.sha256,
        checksum_type: c.kind,
        ..Default::default()
    }))
}

pub async fn delete_object(
    s3: &PartstoreS3,
    req: S3Request<DeleteObjectInput>,
) -> S3Result<S3Response<DeleteObjectOutput>> {
    let (bucket, key) = (req.input.bucket, req.input.key);
    s3.blocking(move |s| s.delete(&bucket, &key).s3()).await?;
    Ok(S3Response::new(DeleteObjectOutput::default()))
}

pub async fn delete_objects(
    s3: &PartstoreS3,
    req: S3Request<DeleteObjectsInput>,
) -> S3Result<S3Response<DeleteObjectsOutput>> {
    let i = req.input;
    let quiet = i.delete.quiet.unwrap_or(false);
    let (bucket, objects) = (i.bucket, i.delete.objects);
    if objects.len() > MAX_DELETE_KEYS {
        return Err(err(
            S3ErrorCode::MalformedXML,
            format!(
                "DeleteObjects names {} keys, more than {MAX_DELETE_KEYS}",
                objects.len()
            ),
        ));
    }
    s3.blocking(move |s| {
        s.layer_info(&bucket).s3()?;
        let (mut deleted, mut errors) = (Vec::new(), Vec::new());
        for o in objects {
            match s.delete(&bucket, &o.key) {
                Ok(()) if quiet => {}
                Ok(()) => deleted.push(DeletedObject {
                    key: Some(o.key),
                    ..Default::default()
                }),
                Err(e) => {
                    let s3e = errors::s3(&e);
                    errors.push(Error {
                        code: Some(s3e.code().as_str().to_owned()),
                        key: Some(o.key),
                        message: s3e.message().map(str::to_owned),
                        version_id: None,
                    });
                }
            }
        }
        Ok(S3Response::new(DeleteObjectsOutput {
            deleted: Some(deleted),
            errors: Some(errors),
            ..Default::default()
        }))
    })
    .await
}

pub async fn copy_object(
    s3: &PartstoreS3,
    req: S3Request<CopyObjectInput>,
) -> S3Result<S3Response<CopyObjectOutput>> {
    let i = req.input;
    let (src_bucket, src_key) = copy_source(&i.copy_source)?;
    let replace = match i.metadata_directive.as_ref().map(MetadataDirective::as_str) {
        None | Some(MetadataDirective::COPY) => false,
        Some(MetadataDirective::REPLACE) => true,
        Some(other) => {
            return Err(err(
                S3ErrorCode::InvalidArgument,
                format!("metadata directive \"{other}\" is neither COPY nor REPLACE"),
            ))
        }
    };
    let (bucket, key) = (i.bucket, i.key);
    if src_bucket == bucket && src_key == key && !replace {
        return Err(err(
            S3ErrorCode::InvalidRequest,
            "copying an object onto itself needs MetadataDirective REPLACE",
        ));
    }
    let new = Attrs {
        user: i.metadata,
        cache_control: i.cache_control,
        content_disposition: i.content_disposition,
        content_language: i.content_language,
        expires: i.expires,
    };
    let (ct, ce) = (i.content_type, attrs::stored_encoding(i.content_encoding));
    let (im, inm, ims, ius) = (
        i.copy_source_if_match,
        i.copy_source_if_none_match,
        i.copy_source_if_modified_since,
        i.copy_source_if_unmodified_since,
    );
    let info = s3
        .blocking(move |s| {
            let src = s.get(&src_bucket, &src_key).s3()?;
            Conditions {
                if_match: im.as_ref(),
                if_none_match: inm.as_ref(),
                if_modified_since: ims.as_ref(),
                if_unmodified_since: ius.as_ref(),
                read: false,
            }
            .check(src.info())?;
            let si = src.info();
            let metadata = if replace {
                attrs::replaced(&new, ct.as_deref(), ce.as_deref(), si)?
            } else {
                si.metadata.clone()
            };
            if src_bucket == bucket {
                // Zero-copy: the new object references the source's
                // bytes; content type and encoding stay the engine's,
                // a REPLACE's new ones are in the metadata.
                return s
                    .copy_object_with(&bucket, &key, &src_key, Some(metadata))
                    .s3();
            }
            // Another layer: the bytes are read and written again (up
            // to put_object's limit), checked against the source's
            // kept digest.
            let mut b = PartBody::new(src.reader(), si.size)
                .content_type(si.content_type.clone())
                .metadata(metadata);
            if let Some(ce) = &si.content_encoding {
                b = b.content_encoding(ce.clone());
            }
            if let Some(d) = &si.digest {
                b = b.digest(d.clone());
            }
            s.put_object(&bucket, &key, b).s3()
        })
        .await?;
    let c = Checksums::of(&info);
    Ok(S3Response::new(CopyObjectOutput {
        copy_object_result: Some(CopyObjectResult {
            e_tag: Some(quoted(&info.etag)),
            last_modified: Some(ts(info.last_modified)),
            checksum_crc32c: c.crc32c,
            checksum_sha1: c.sha1,
            checksum_sha256: c.sha256,
            checksum_type: c.kind,
            ..Default::default()
        }),
        ..Default::default()
    }))
}

pub async fn list_objects(
    s3: &PartstoreS3,
    req: S3Request<ListObjectsInput>,
) -> S3Result<S3Response<ListObjectsOutput>> {
    let i = req.input;
    let max_keys = page_size(i.max_keys, "max-keys")?;
    let encode = url_encoding(i.encoding_type.as_ref())?;
    let bucket = i.bucket.clone();
    let prefix = i.prefix.clone().unwrap_or_default();
    let delimiter = i.delimiter.clone().filter(|d| !d.is_empty());
    let marker = i.marker.clone().filter(|m| !m.is_empty());
    let d = delimiter.clone();
    let page = s3
        .blocking(move |s| {
            list::list(
                s,
                &bucket,
                &prefix,
                d.as_deref(),
                marker.as_deref(),
                max_keys,
            )
        })
        .await?;
    let next_marker = page
        .next_marker
        .filter(|_| delimiter.is_some())
        .map(|m| name(&m, encode));
    Ok(S3Response::new(ListObjectsOutput {
        name: Some(i.bucket),
        prefix: Some(name(&i.prefix.unwrap_or_default(), encode)),
        marker: Some(name(&i.marker.unwrap_or_default(), encode)),
        delimiter: delimiter.map(|d| name(&d, encode)),
        max_keys: Some(i.max_keys.unwrap_or(MAX_PAGE as i32)),
        is_truncated: Some(page.truncated),
        next_marker,
        contents: Some(
            page.objects
                .iter()
                .map(|o| s3_object(o, encode, true))
                .collect(),
        ),
        common_prefixes: Some(
            page.prefixes
                .iter()
                .map(|p| CommonPrefix {
                    prefix: Some(name(p, encode)),
                })
                .collect(),
        ),
        encoding_type: encode.then(|| EncodingType::from_static(EncodingType::URL)),
        ..Default::default()
    }))
}

pub async fn list_objects_v2(
    s3: &PartstoreS3,
    req: S3Request<ListObjectsV2Input>,
) -> S3Result<S3Response<ListObjectsV2Output>> {
    let i = req.input;
    let max_keys = page_size(i.max_keys, "max-keys")?;
    let encode = url_encoding(i.encoding_type.as_ref())?;
    let with_owner = i.fetch_owner.unwrap_or(false);
    let bucket = i.bucket.clone();
    let prefix = i.prefix.clone().unwrap_or_default();
    let delimiter = i.delimiter.clone().filter(|d| !d.is_empty());
    // A continuation token wins over StartAfter; an empty one is none.
    let marker = match i.continuation_token.as_deref().filter(|t| !t.is_empty()) {
        Some(t) => Some(list::marker_of(t)?),
        None => i.start_after.clone().filter(|s| !s.is_empty()),
    };
    let d = delimiter.clone();
    let page = s3
        .blocking(move |s| {
            list::list(
                s,
                &bucket,
                &prefix,
                d.as_deref(),
                marker.as_deref(),
                max_keys,
            )
        })
        .await?;
    let key_count = (page.objects.len() + page.prefixes.len()) as i32;
    Ok(S3Response::new(ListObjectsV2Output {
        name: Some(i.bucket),
        prefix: Some(name(&i.prefix.unwrap_or_default(), encode)),
        delimiter: delimiter.map(|d| name(&d, encode)),
        max_keys: Some(i.max_keys.unwrap_or(MAX_PAGE as i32)),
        key_count: Some(key_count),
        is_truncated: Some(page.truncated),
        continuation_token: i.continuation_token,
        next_continuation_token: page.next_marker.as_deref().map(list::token),
        contents: Some(
            page.objects
                .iter()
                .map(|o| s3_object(o, encode, with_owner))
                .collect(),
        ),
        common_prefixes: Some(
            page.prefixes
                .iter()
                .map(|p| CommonPrefix {
                    prefix: Some(name(p, encode)),
                })
                .collect(),
        ),
        start_after: i.start_after.map(|s| name(&s, encode)),
        encoding_type: encode.then(|| EncodingType::from_static(EncodingType::URL)),
        ..Default::default()
    }))
}
