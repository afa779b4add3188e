//! The S3 operations on a `partstore::Store`: bucket = layer.
//!
//! Every engine call runs on a blocking thread (`spawn_blocking`): the
//! engine is synchronous and may fsync. Object ETags are the engine's etag
//! and part ETags are the engine's part ids, both quoted, so the
//! (PartNumber, ETag) list of CompleteMultipartUpload is exactly the
//! engine's `PartRef { number, id }` list.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use partstore::rules;
use partstore::{
    ByteRange, CopySource as EngineCopySource, LayerConfig, ListItem, ListOptions, ObjectInfo,
    PartBody, PartInfo, PartRef, Store, UploadId, UploadOptions,
};
use s3s::dto::*;
use s3s::{S3ErrorCode, S3Request, S3Response, S3Result, S3};

use crate::body::{self, Checks, ChecksumHeaders};
use crate::errors::{self, err};

/// Max keys, parts and uploads per listing page, as in S3.
const MAX_PAGE: usize = 1000;

/// The S3 service: a store and nothing else.
#[derive(Clone)]
pub struct PartstoreS3 {
    store: Arc<Store>,
}

impl PartstoreS3 {
    pub fn new(store: Arc<Store>) -> PartstoreS3 {
        PartstoreS3 { store }
    }

    /// Runs `f` on a blocking thread.
    async fn blocking<T, F>(&self, f: F) -> S3Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Store) -> S3Result<T> + Send + 'static,
    {
        let store = Arc::clone(&self.store);
        tokio::task::spawn_blocking(move || f(&store))
            .await
            .map_err(|e| err(S3ErrorCode::InternalError, format!("worker failed: {e}")))?
    }

    /// NoSuchBucket unless the bucket (layer) exists.
    async fn require_bucket(&self, bucket: String) -> S3Result<()> {
        self.blocking(move |s| {
            if bucket_exists(s, &bucket) {
                Ok(())
            } else {
                Err(no_such_bucket(&bucket))
            }
        })
        .await
    }
}

/// `partstore::Result` to `S3Result`.
trait EngineResult<T> {
    fn s3(self) -> S3Result<T>;
}

impl<T> EngineResult<T> for partstore::Result<T> {
    fn s3(self) -> S3Result<T> {
        self.map_err(|e| errors::s3(&e))
    }
}

fn quoted(etag: &str) -> ETag {
    ETag::Strong(etag.to_owned())
}

fn ts(t: SystemTime) -> Timestamp {
    Timestamp::from(t)
}

/// HTTP dates have whole seconds: compare modification times at that
/// precision.
fn to_second(t: SystemTime) -> SystemTime {
    let secs = t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    UNIX_EPOCH + Duration::from_secs(secs)
}

fn bucket_exists(store: &Store, bucket: &str) -> bool {
    store.list_layers().iter().any(|(id, _)| id == bucket)
}

fn no_such_bucket(bucket: &str) -> s3s::S3Error {
    err(
        S3ErrorCode::NoSuchBucket,
        format!("bucket \"{bucket}\" does not exist"),
    )
}

/// If-Match / If-None-Match / If-(Un)Modified-Since against an object, with
/// S3's precedence (If-Match over If-Unmodified-Since, If-None-Match over
/// If-Modified-Since). `read` is true for GET/HEAD, where a matching
/// If-None-Match or an unmodified object is 304 Not Modified; for copy
/// sources every failed condition is 412.
struct Conditions<'a> {
    if_match: Option<&'a ETagCondition>,
    if_none_match: Option<&'a ETagCondition>,
    if_modified_since: Option<&'a Timestamp>,
    if_unmodified_since: Option<&'a Timestamp>,
    read: bool,
}

impl Conditions<'_> {
    fn check(&self, info: &ObjectInfo) -> S3Result<()> {
        let etag = quoted(&info.etag);
        let modified = ts(to_second(info.last_modified));
        let failed = || {
            err(
                S3ErrorCode::PreconditionFailed,
                "at least one of the preconditions you specified did not hold",
            )
        };
        let not_modified = || {
            if self.read {
                err(S3ErrorCode::NotModified, "not modified")
            } else {
                failed()
            }
        };
        match self.if_match {
            Some(ETagCondition::ETag(e)) if !e.strong_cmp(&etag) => return Err(failed()),
            Some(_) => {}
            None => {
                if self.if_unmodified_since.is_some_and(|t| modified > *t) {
                    return Err(failed());
                }
            }
        }
        match self.if_none_match {
            Some(ETagCondition::Any) => return Err(not_modified()),
            Some(ETagCondition::ETag(e)) if e.weak_cmp(&etag) => return Err(not_modified()),
            Some(_) => {}
            None => {
                if self.if_modified_since.is_some_and(|t| modified <= *t) {
                    return Err(not_modified());
                }
            }
        }
        Ok(())
    }
}

/// The engine's range from S3's parsed one.
fn engine_range(r: &Range) -> S3Result<ByteRange> {
    r.to_header_string()
        .parse()
        .map_err(|e: partstore::Error| errors::s3(&e))
}

/// The open upload `id` of `bucket`, checked to be for `key` as S3 requires.
fn open_upload(store: &Store, bucket: &str, key: &str, id: &str) -> S3Result<UploadId> {
    let no_such = |why: String| err(S3ErrorCode::NoSuchUpload, why);
    let up: UploadId = id
        .parse()
        .map_err(|_| no_such(format!("upload \"{id}\" does not exist")))?;
    let open = store.list_uploads(bucket).s3()?;
    match open.iter().find(|u| u.upload == up) {
        Some(u) if u.key == key => Ok(up),
        Some(u) => Err(no_such(format!(
            "upload {id} is for key \"{}\", not \"{key}\"",
            u.key
        ))),
        None => Err(no_such(format!(
            "upload {id} is not open in bucket \"{bucket}\" (unknown, aborted or completed)"
        ))),
    }
}

fn part_number(n: i32) -> S3Result<u32> {
    u32::try_from(n)
        .ok()
        .filter(|n| (rules::MIN_PART_NUMBER..=rules::MAX_PART_NUMBER).contains(n))
        .ok_or_else(|| {
            err(
                S3ErrorCode::InvalidArgument,
                format!(
                    "part number {n} is outside {}..={}",
                    rules::MIN_PART_NUMBER,
                    rules::MAX_PART_NUMBER
                ),
            )
        })
}

fn declared_len(content_length: Option<i64>, has_body: bool) -> S3Result<u64> {
    match content_length {
        Some(n) => u64::try_from(n).map_err(|_| {
            err(
                S3ErrorCode::InvalidArgument,
                format!("Content-Length {n} is negative"),
            )
        }),
        None if !has_body => Ok(0),
        None => Err(err(
            S3ErrorCode::MissingContentLength,
            "the body needs a Content-Length (or x-amz-decoded-content-length)",
        )),
    }
}

fn page_size(n: Option<i32>, what: &str) -> S3Result<usize> {
    match n {
        None => Ok(MAX_PAGE),
        Some(n) if n < 0 => Err(err(
            S3ErrorCode::InvalidArgument,
            format!("{what} {n} is negative"),
        )),
        Some(n) => Ok((n as usize).min(MAX_PAGE)),
    }
}

fn s3_part(p: &PartInfo) -> Part {
    Part {
        part_number: Some(p.part_number as i32),
        e_tag: Some(quoted(&p.id)),
        size: Some(p.size as i64),
        last_modified: Some(ts(p.last_modified)),
        checksum_crc32c: Some(body::crc32c_b64(p.crc32c)),
        ..Default::default()
    }
}

fn s3_object(o: &ObjectInfo) -> Object {
    Object {
        key: Some(o.key.clone()),
        size: Some(o.size as i64),
        last_modified: Some(ts(o.last_modified)),
        e_tag: Some(quoted(&o.etag)),
        checksum_algorithm: Some(vec![ChecksumAlgorithm::from_static(
            ChecksumAlgorithm::CRC32C,
        )]),
        checksum_type: Some(ChecksumType::from_static(ChecksumType::FULL_OBJECT)),
        storage_class: Some(ObjectStorageClass::from_static(
            ObjectStorageClass::STANDARD,
        )),
        ..Default::default()
    }
}

fn full_object() -> Option<ChecksumType> {
    Some(ChecksumType::from_static(ChecksumType::FULL_OBJECT))
}

fn checksum_wanted(mode: Option<&ChecksumMode>) -> bool {
    mode.is_some_and(|m| m.as_str().eq_ignore_ascii_case(ChecksumMode::ENABLED))
}

/// The source bucket and key of a copy.
fn copy_source(src: &CopySource) -> S3Result<(String, String)> {
    match src {
        CopySource::Bucket {
            bucket,
            key,
            version_id,
        } => {
            if version_id.is_some() {
                return Err(err(
                    S3ErrorCode::NotImplemented,
                    "objects have no versions here",
                ));
            }
            Ok((bucket.to_string(), key.to_string()))
        }
        _ => Err(err(
            S3ErrorCode::NotImplemented,
            "only bucket/key copy sources are supported",
        )),
    }
}

/// One ListObjectsV2 page over the engine's folder listing.
///
/// The engine lists a folder (`parent`), either its direct children
/// (objects and sub-folders, i.e. delimiter `/`) or everything below it
/// (no delimiter), with its own opaque page tokens. An S3 prefix is mapped
/// to the folder that contains it, and items not starting with the prefix
/// are skipped; keys are in byte order, so the first item past the prefix
/// ends the listing. Each engine page asks for no more items than the S3
/// page still needs, so the engine's token always resumes exactly after
/// the last item returned and serves as the continuation token.
struct ListV2 {
    objects: Vec<Object>,
    prefixes: Vec<CommonPrefix>,
    next: Option<String>,
}

fn list_v2(
    store: &Store,
    bucket: &str,
    prefix: &str,
    delimiter: Option<&str>,
    max_keys: usize,
    token: Option<String>,
    start_after: Option<&str>,
) -> S3Result<ListV2> {
    let deep = match delimiter {
        None | Some("") => true,
        Some("/") => false,
        Some(d) => {
            return Err(err(
                S3ErrorCode::NotImplemented,
                format!("delimiter \"{d}\": only \"/\" (folders) is supported"),
            ))
        }
    };
    let mut out = ListV2 {
        objects: Vec::new(),
        prefixes: Vec::new(),
        next: None,
    };
    if !bucket_exists(store, bucket) {
        return Err(no_such_bucket(bucket));
    }
    let parent = prefix.rfind('/').map_or("", |i| &prefix[..i]);
    // A prefix whose folder is no valid key names no object.
    if max_keys == 0 || rules::normalize_parent(parent).is_err() {
        return Ok(out);
    }
    let mut token = token;
    loop {
        let need = max_keys - out.objects.len() - out.prefixes.len();
        let mut opts = ListOptions::default().parent(parent).deep(deep).limit(need);
        if let Some(t) = &token {
            opts = opts.page_token(t.clone());
        }
        let page = store.list(bucket, &opts).s3()?;
        for item in page.items {
            let name = match &item {
                ListItem::Object(o) => o.key.clone(),
                ListItem::Prefix(p) => format!("{p}/"),
            };
            if !name.starts_with(prefix) {
                if name.as_str() > prefix {
                    return Ok(out); // past every key with the prefix
                }
                continue;
            }
            if start_after.is_some_and(|s| name.as_str() <= s) {
                continue;
            }
            match item {
                ListItem::Object(o) => out.objects.push(s3_object(&o)),
                ListItem::Prefix(_) => out.prefixes.push(CommonPrefix { prefix: Some(name) }),
            }
        }
        token = page.next_page_token;
        if token.is_none() {
            return Ok(out);
        }
        if out.objects.len() + out.prefixes.len() == max_keys {
            out.next = token;
            return Ok(out);
        }
    }
}

/// The checks of (Content-MD5, x-amz-checksum-*, x-amz-trailer).
fn checks_of(
    headers: &hyper::HeaderMap,
    content_md5: Option<&String>,
    crc32: Option<&String>,
    crc32c: Option<&String>,
    crc64nvme: Option<&String>,
    sha1: Option<&String>,
    sha256: Option<&String>,
) -> S3Result<Checks> {
    let trailer = headers
        .get("x-amz-trailer")
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty());
    Checks::from_headers(&ChecksumHeaders {
        content_md5: content_md5.map(String::as_str),
        crc32: crc32.map(String::as_str),
        crc32c: crc32c.map(String::as_str),
        crc64nvme: crc64nvme.map(String::as_str),
        sha1: sha1.map(String::as_str),
        sha256: sha256.map(String::as_str),
        trailer,
    })
}

#[async_trait::async_trait]
impl S3 for PartstoreS3 {
    async fn create_bucket(
        &self,
        req: S3Request<CreateBucketInput>,
    ) -> S3Result<S3Response<CreateBucketOutput>> {
        let bucket = req.input.bucket;
        let location = format!("/{bucket}");
        self.blocking(move |s| s.create_layer(&bucket, LayerConfig::default()).s3())
            .await?;
        Ok(S3Response::new(CreateBucketOutput {
            location: Some(location),
        }))
    }

    async fn list_buckets(
        &self,
        _req: S3Request<ListBucketsInput>,
    ) -> S3Result<S3Response<ListBucketsOutput>> {
        let layers = self.blocking(|s| Ok(s.list_layers())).await?;
        let buckets = layers
            .into_iter()
            .map(|(id, _)| Bucket {
                name: Some(id),
                ..Default::default()
            })
            .collect();
        Ok(S3Response::new(ListBucketsOutput {
            buckets: Some(buckets),
            ..Default::default()
        }))
    }

    async fn head_bucket(
        &self,
        req: S3Request<HeadBucketInput>,
    ) -> S3Result<S3Response<HeadBucketOutput>> {
        self.require_bucket(req.input.bucket).await?;
        Ok(S3Response::new(HeadBucketOutput::default()))
    }

    async fn get_bucket_location(
        &self,
        req: S3Request<GetBucketLocationInput>,
    ) -> S3Result<S3Response<GetBucketLocationOutput>> {
        self.require_bucket(req.input.bucket).await?;
        Ok(S3Response::new(GetBucketLocationOutput::default()))
    }

    async fn put_object(
        &self,
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
        let len = declared_len(i.content_length, i.body.is_some())?;
        let store = Arc::clone(&self.store);
        let (bucket, key) = (i.bucket, i.key);
        let (ct, ce, digest) = (i.content_type, i.content_encoding, checks.engine.clone());
        let info = body::with_body(i.body, &checks, req.trailing_headers, move |r| {
            let mut b = PartBody::new(r, len);
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
        Ok(S3Response::new(PutObjectOutput {
            e_tag: Some(quoted(&info.etag)),
            size: Some(info.size as i64),
            checksum_crc32c: Some(body::crc32c_b64(info.crc32c)),
            checksum_type: full_object(),
            // Checked against the body above: echo them as S3 does.
            checksum_crc32: i.checksum_crc32,
            checksum_crc64nvme: i.checksum_crc64nvme,
            checksum_sha1: i.checksum_sha1,
            checksum_sha256: i.checksum_sha256,
            ..Default::default()
        }))
    }

    async fn get_object(
        &self,
        req: S3Request<GetObjectInput>,
    ) -> S3Result<S3Response<GetObjectOutput>> {
        let i = req.input;
        if i.part_number.is_some() {
            return Err(err(
                S3ErrorCode::NotImplemented,
                "GET by partNumber: objects keep no part boundaries here",
            ));
        }
        let range = i.range.as_ref().map(engine_range).transpose()?;
        let with_checksum = range.is_none() && checksum_wanted(i.checksum_mode.as_ref());
        let (bucket, key) = (i.bucket, i.key);
        let (im, inm, ims, ius) = (
            i.if_match,
            i.if_none_match,
            i.if_modified_since,
            i.if_unmodified_since,
        );
        let (blob, first, span) = self
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
                let span = match range {
                    Some(r) => r.resolve(blob.size()).s3()?,
                    None => 0..blob.size(),
                };
                let first = body::first_window(&blob, span.start, span.end).s3()?;
                Ok((blob, first, span))
            })
            .await?;
        let info = blob.info().clone();
        let content_range = range.map(|_| {
            format!(
                "bytes {}-{}/{}",
                span.start,
                span.end.saturating_sub(1),
                info.size
            )
        });
        Ok(S3Response::new(GetObjectOutput {
            body: Some(body::blob_body(blob, first, span.start, span.end)),
            content_length: Some((span.end - span.start) as i64),
            content_range,
            accept_ranges: Some("bytes".to_owned()),
            content_type: Some(info.content_type.clone()),
            content_encoding: info.content_encoding.clone(),
            e_tag: Some(quoted(&info.etag)),
            last_modified: Some(ts(info.last_modified)),
            checksum_crc32c: with_checksum.then(|| body::crc32c_b64(info.crc32c)),
            checksum_type: if with_checksum { full_object() } else { None },
            ..Default::default()
        }))
    }

    async fn head_object(
        &self,
        req: S3Request<HeadObjectInput>,
    ) -> S3Result<S3Response<HeadObjectOutput>> {
        let i = req.input;
        if i.part_number.is_some() {
            return Err(err(
                S3ErrorCode::NotImplemented,
                "HEAD by partNumber: objects keep no part boundaries here",
            ));
        }
        let range = i.range.as_ref().map(engine_range).transpose()?;
        let with_checksum = range.is_none() && checksum_wanted(i.checksum_mode.as_ref());
        let (bucket, key) = (i.bucket, i.key);
        let (im, inm, ims, ius) = (
            i.if_match,
            i.if_none_match,
            i.if_modified_since,
            i.if_unmodified_since,
        );
        let (info, span) = self
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
                let span = match range {
                    Some(r) => r.resolve(info.size).s3()?,
                    None => 0..info.size,
                };
                Ok((info, span))
            })
            .await?;
        let content_range = range.map(|_| {
            format!(
                "bytes {}-{}/{}",
                span.start,
                span.end.saturating_sub(1),
                info.size
            )
        });
        Ok(S3Response::new(HeadObjectOutput {
            content_length: Some((span.end - span.start) as i64),
            content_range,
            accept_ranges: Some("bytes".to_owned()),
            content_type: Some(info.content_type.clone()),
            content_encoding: info.content_encoding.clone(),
            e_tag: Some(quoted(&info.etag)),
            last_modified: Some(ts(info.last_modified)),
            checksum_crc32c: with_checksum.then(|| body::crc32c_b64(info.crc32c)),
            checksum_type: if with_checksum { full_object() } else { None },
            ..Default::default()
        }))
    }

    async fn delete_object(
        &self,
        req: S3Request<DeleteObjectInput>,
    ) -> S3Result<S3Response<DeleteObjectOutput>> {
        let (bucket, key) = (req.input.bucket, req.input.key);
        self.blocking(move |s| s.delete(&bucket, &key).s3()).await?;
        Ok(S3Response::new(DeleteObjectOutput::default()))
    }

    async fn delete_objects(
        &self,
        req: S3Request<DeleteObjectsInput>,
    ) -> S3Result<S3Response<DeleteObjectsOutput>> {
        let i = req.input;
        let quiet = i.delete.quiet.unwrap_or(false);
        let (bucket, objects) = (i.bucket, i.delete.objects);
        self.blocking(move |s| {
            if !bucket_exists(s, &bucket) {
                return Err(no_such_bucket(&bucket));
            }
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

    async fn copy_object(
        &self,
        req: S3Request<CopyObjectInput>,
    ) -> S3Result<S3Response<CopyObjectOutput>> {
        let i = req.input;
        let (src_bucket, src_key) = copy_source(&i.copy_source)?;
        let replace = i
            .metadata_directive
            .as_ref()
            .is_some_and(|d| d.as_str() == MetadataDirective::REPLACE);
        let (bucket, key) = (i.bucket, i.key);
        if src_bucket == bucket && src_key == key && !replace {
            return Err(err(
                S3ErrorCode::InvalidRequest,
                "copying an object onto itself needs MetadataDirective REPLACE",
            ));
        }
        let (ct, ce) = (i.content_type, i.content_encoding);
        let (im, inm, ims, ius) = (
            i.copy_source_if_match,
            i.copy_source_if_none_match,
            i.copy_source_if_modified_since,
            i.copy_source_if_unmodified_since,
        );
        let info = self
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
                if src_bucket == bucket && !replace {
                    // Zero-copy: the new object references the source's extents.
                    return s.copy_object(&bucket, &key, &src_key).s3();
                }
                // Another layer, or new metadata: the bytes are read and
                // written again (up to put_object's limit).
                let si = src.info();
                let (ct, ce) = if replace {
                    (ct, ce)
                } else {
                    (Some(si.content_type.clone()), si.content_encoding.clone())
                };
                let mut b = PartBody::new(src.reader(), si.size);
                if let Some(ct) = ct {
                    b = b.content_type(ct);
                }
                if let Some(ce) = ce {
                    b = b.content_encoding(ce);
                }
                s.put_object(&bucket, &key, b).s3()
            })
            .await?;
        Ok(S3Response::new(CopyObjectOutput {
            copy_object_result: Some(CopyObjectResult {
                e_tag: Some(quoted(&info.etag)),
                last_modified: Some(ts(info.last_modified)),
                checksum_crc32c: Some(body::crc32c_b64(info.crc32c)),
                checksum_type: full_object(),
                ..Default::default()
            }),
            ..Default::default()
        }))
    }

    async fn list_objects_v2(
        &self,
        req: S3Request<ListObjectsV2Input>,
    ) -> S3Result<S3Response<ListObjectsV2Output>> {
        let i = req.input;
        let max_keys = page_size(i.max_keys, "max-keys")?;
        let bucket = i.bucket.clone();
        let prefix = i.prefix.clone().unwrap_or_default();
        let delimiter = i.delimiter.clone();
        let token = i.continuation_token.clone();
        let start_after = i.start_after.clone();
        let page = self
            .blocking(move |s| {
                list_v2(
                    s,
                    &bucket,
                    &prefix,
                    delimiter.as_deref(),
                    max_keys,
                    token,
                    start_after.as_deref(),
                )
            })
            .await?;
        let key_count = (page.objects.len() + page.prefixes.len()) as i32;
        Ok(S3Response::new(ListObjectsV2Output {
            name: Some(i.bucket),
            prefix: i.prefix,
            delimiter: i.delimiter,
            max_keys: Some(max_keys as i32),
            key_count: Some(key_count),
            is_truncated: Some(page.next.is_some()),
            continuation_token: i.continuation_token,
            next_continuation_token: page.next,
            contents: Some(page.objects),
            common_prefixes: Some(page.prefixes),
            start_after: i.start_after,
            // Keys are never URL-encoded: the engine's key alphabet needs no
            // escaping, and answering without EncodingType tells the client
            // not to decode.
            encoding_type: None,
            ..Default::default()
        }))
    }

    async fn create_multipart_upload(
        &self,
        req: S3Request<CreateMultipartUploadInput>,
    ) -> S3Result<S3Response<CreateMultipartUploadOutput>> {
        let i = req.input;
        let (bucket, key) = (i.bucket, i.key);
        let mut opts = UploadOptions::new(
            i.content_type
                .unwrap_or_else(|| rules::DEFAULT_CONTENT_TYPE.into()),
        );
        if let Some(ce) = i.content_encoding {
            opts = opts.content_encoding(ce);
        }
        let (b, k) = (bucket.clone(), key.clone());
        let up = self
            .blocking(move |s| s.start_multipart(&b, &k, opts).s3())
            .await?;
        Ok(S3Response::new(CreateMultipartUploadOutput {
            bucket: Some(bucket),
            key: Some(key),
            upload_id: Some(up.to_string()),
            ..Default::default()
        }))
    }

    async fn upload_part(
        &self,
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
        let len = declared_len(i.content_length, i.body.is_some())?;
        let (bucket, key, uid) = (i.bucket, i.key, i.upload_id);
        let b = bucket.clone();
        let up = self
            .blocking(move |s| open_upload(s, &b, &key, &uid))
            .await?;
        let store = Arc::clone(&self.store);
        let digest = checks.engine.clone();
        // The part's Content-Type is not passed on: S3 ignores it, while the
        // engine would hold it to the upload's.
        let part = body::with_body(i.body, &checks, req.trailing_headers, move |r| {
            let mut b = PartBody::new(r, len);
            if let Some(d) = digest {
                b = b.digest(d);
            }
            store.upload_part(&bucket, &up, n, b)
        })
        .await?;
        Ok(S3Response::new(UploadPartOutput {
            e_tag: Some(quoted(&part.id)),
            checksum_crc32c: Some(body::crc32c_b64(part.crc32c)),
            checksum_crc32: i.checksum_crc32,
            checksum_crc64nvme: i.checksum_crc64nvme,
            checksum_sha1: i.checksum_sha1,
            checksum_sha256: i.checksum_sha256,
            ..Default::default()
        }))
    }

    async fn upload_part_copy(
        &self,
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
        let part = self
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

    async fn list_parts(
        &self,
        req: S3Request<ListPartsInput>,
    ) -> S3Result<S3Response<ListPartsOutput>> {
        let i = req.input;
        let max = page_size(i.max_parts, "max-parts")?;
        let marker = u32::try_from(i.part_number_marker.unwrap_or(0)).unwrap_or(0);
        let (bucket, key, uid) = (i.bucket.clone(), i.key.clone(), i.upload_id.clone());
        let (parts, truncated) = self
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
            ..Default::default()
        }))
    }

    async fn list_multipart_uploads(
        &self,
        req: S3Request<ListMultipartUploadsInput>,
    ) -> S3Result<S3Response<ListMultipartUploadsOutput>> {
        let i = req.input;
        let max = page_size(i.max_uploads, "max-uploads")?;
        let bucket = i.bucket.clone();
        let mut open = self.blocking(move |s| s.list_uploads(&bucket).s3()).await?;
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
            delimiter: i.delimiter,
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

    async fn complete_multipart_upload(
        &self,
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
        let chosen = chosen_parts(&listed)?;
        let (bucket, key, uid) = (i.bucket.clone(), i.key.clone(), i.upload_id);
        let info = self
            .blocking(move |s| {
                let up = open_upload(s, &bucket, &key, &uid)?;
                let current = s.list_parts(&bucket, &up).s3()?;
                check_completion(&current, &chosen)?;
                let refs: Vec<PartRef> = chosen.into_iter().map(|c| c.part).collect();
                s.complete_multipart_with(&bucket, &up, &refs).s3()
            })
            .await?;
        Ok(S3Response::new(CompleteMultipartUploadOutput {
            bucket: Some(i.bucket.clone()),
            key: Some(i.key.clone()),
            location: Some(format!("/{}/{}", i.bucket, i.key)),
            e_tag: Some(quoted(&info.etag)),
            checksum_crc32c: Some(body::crc32c_b64(info.crc32c)),
            checksum_type: full_object(),
            ..Default::default()
        }))
    }

    async fn abort_multipart_upload(
        &self,
        req: S3Request<AbortMultipartUploadInput>,
    ) -> S3Result<S3Response<AbortMultipartUploadOutput>> {
        let i = req.input;
        let (bucket, key, uid) = (i.bucket, i.key, i.upload_id);
        self.blocking(move |s| {
            let up = open_upload(s, &bucket, &key, &uid)?;
            s.abort_multipart(&bucket, &up).s3()
        })
        .await?;
        Ok(S3Response::new(AbortMultipartUploadOutput::default()))
    }
}

/// One part of a CompleteMultipartUpload request.
struct Chosen {
    part: PartRef,
    crc32c: Option<String>,
}

/// The client's part list as engine part refs, in the order S3 demands:
/// ascending part numbers. S3 allows gaps (1, 2, 5); the engine's rule is
/// 1..=N without gaps, so a gap is `InvalidPartOrder` here.
fn chosen_parts(listed: &[CompletedPart]) -> S3Result<Vec<Chosen>> {
    if listed.is_empty() {
        return Err(err(
            S3ErrorCode::MalformedXML,
            "CompleteMultipartUpload lists no parts",
        ));
    }
    let mut out: Vec<Chosen> = Vec::with_capacity(listed.len());
    for p in listed {
        let number = p
            .part_number
            .ok_or_else(|| err(S3ErrorCode::InvalidPart, "a listed part has no PartNumber"))?;
        let number = part_number(number)
            .map_err(|e| err(S3ErrorCode::InvalidPart, e.message().unwrap_or_default()))?;
        let etag = p.e_tag.as_ref().ok_or_else(|| {
            err(
                S3ErrorCode::InvalidPart,
                format!("part {number} is listed without its ETag"),
            )
        })?;
        if let Some(prev) = out.last() {
            if number <= prev.part.number {
                return Err(err(
                    S3ErrorCode::InvalidPartOrder,
                    format!(
                        "part {number} follows part {}: parts must be listed in ascending order",
                        prev.part.number
                    ),
                ));
            }
        }
        let expected = out.len() as u32 + 1;
        if number != expected {
            return Err(err(
                S3ErrorCode::InvalidPartOrder,
                format!(
                    "part {expected} is missing (found part {number}): this store needs parts numbered 1..=N without gaps"
                ),
            ));
        }
        out.push(Chosen {
            part: PartRef {
                number,
                id: etag.value().to_owned(),
            },
            crc32c: p.checksum_crc32c.clone(),
        });
    }
    Ok(out)
}

/// The S3-only complete-time check: a part CRC32C the client lists must be
/// the part's (`InvalidPart`). The engine's own rules (unknown or replaced
/// part, sizes, total) come back as typed reasons that `errors` maps.
fn check_completion(current: &[PartInfo], chosen: &[Chosen]) -> S3Result<()> {
    for c in chosen {
        let n = c.part.number;
        let found = current
            .iter()
            .find(|p| p.part_number == n && p.id == c.part.id);
        if let (Some(p), Some(crc)) = (found, &c.crc32c) {
            let have = body::crc32c_b64(p.crc32c);
            if *crc != have {
                return Err(err(
                    S3ErrorCode::InvalidPart,
                    format!("part {n}: ChecksumCRC32C {crc} is not the part's {have}"),
                ));
            }
        }
    }
    Ok(())
}
