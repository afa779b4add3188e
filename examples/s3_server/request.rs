//! Request fields to engine values, with S3's errors: conditions, ranges,
//! part numbers, lengths, page sizes, copy sources, checksum headers.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use hyper::header::{HeaderMap, HeaderValue};
use partstore::{rules, ByteRange, ObjectInfo, Store, UploadId};
use s3s::dto::{CopySource, ETag, ETagCondition, Range, Timestamp, TimestampFormat};
use s3s::{S3ErrorCode, S3Result};

use crate::body::{Checks, ChecksumHeaders};
use crate::errors::{self, err};
use crate::s3::{EngineResult, UNKNOWN_LENGTH};

/// Max keys, parts and uploads per listing page, as in S3.
pub const MAX_PAGE: usize = 1000;

pub fn quoted(etag: &str) -> ETag {
    ETag::Strong(etag.to_owned())
}

pub fn ts(t: SystemTime) -> Timestamp {
    Timestamp::from(t)
}

/// HTTP dates have whole seconds: compare modification times at that
/// precision.
fn to_second(t: SystemTime) -> SystemTime {
    let secs = t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    UNIX_EPOCH + Duration::from_secs(secs)
}

/// If-Match / If-None-Match / If-(Un)Modified-Since against an object, with
/// S3's precedence (If-Match over If-Unmodified-Since, If-None-Match over
/// If-Modified-Since). `read` is true for GET/HEAD, where a matching
/// If-None-Match or an unmodified object is 304 Not Modified (with the
/// object's ETag and Last-Modified, as S3 sends); for copy sources every
/// failed condition is 412.
pub struct Conditions<'a> {
    pub if_match: Option<&'a ETagCondition>,
    pub if_none_match: Option<&'a ETagCondition>,
    pub if_modified_since: Option<&'a Timestamp>,
    pub if_unmodified_since: Option<&'a Timestamp>,
    pub read: bool,
}

impl Conditions<'_> {
    pub fn check(&self, info: &ObjectInfo) -> S3Result<()> {
        let etag = quoted(&info.etag);
        let modified = ts(to_second(info.last_modified));
        let failed = || {
            err(
                S3ErrorCode::PreconditionFailed,
                "at least one of the preconditions you specified did not hold",
            )
        };
        let not_modified = || {
            if !self.read {
                return failed();
            }
            let mut e = err(S3ErrorCode::NotModified, "not modified");
            let mut h = HeaderMap::new();
            if let Ok(v) = HeaderValue::from_str(&format!("\"{}\"", info.etag)) {
                h.insert(hyper::header::ETAG, v);
            }
            let mut date = Vec::new();
            if modified
                .format(TimestampFormat::HttpDate, &mut date)
                .is_ok()
            {
                if let Ok(v) = HeaderValue::from_bytes(&date) {
                    h.insert(hyper::header::LAST_MODIFIED, v);
                }
            }
            e.set_headers(h);
            e
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
pub fn engine_range(r: &Range) -> S3Result<ByteRange> {
    r.to_header_string()
        .parse()
        .map_err(|e: partstore::Error| errors::s3(&e))
}

/// The open upload `id` of `bucket`, checked to be for `key` as S3 requires.
pub fn open_upload(store: &Store, bucket: &str, key: &str, id: &str) -> S3Result<UploadId> {
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

pub fn part_number(n: i32) -> S3Result<u32> {
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

/// A body's length: the declared one (Content-Length, or
/// x-amz-decoded-content-length for aws-chunked), 0 without a body, or
/// `None` (read to the end: a chunked body without a length).
pub fn declared_len(content_length: Option<i64>, has_body: bool) -> S3Result<Option<u64>> {
    match content_length {
        Some(n) => u64::try_from(n).map(Some).map_err(|_| {
            err(
                S3ErrorCode::InvalidArgument,
                format!("Content-Length {n} is negative"),
            )
        }),
        None if !has_body => Ok(Some(0)),
        None => Ok(None),
    }
}

pub fn page_size(n: Option<i32>, what: &str) -> S3Result<usize> {
    match n {
        None => Ok(MAX_PAGE),
        Some(n) if n < 0 => Err(err(
            S3ErrorCode::InvalidArgument,
            format!("{what} {n} is negative"),
        )),
        Some(n) => Ok((n as usize).min(MAX_PAGE)),
    }
}

/// The body's length, or `None` when it comes without one.
pub fn body_len(
    headers: &hyper::HeaderMap,
    content_length: Option<i64>,
    has_body: bool,
) -> S3Result<Option<u64>> {
    if headers.contains_key(UNKNOWN_LENGTH) {
        return Ok(None);
    }
    declared_len(content_length, has_body)
}

/// The source bucket and key of a copy.
pub fn copy_source(src: &CopySource) -> S3Result<(String, String)> {
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

/// The checks of (Content-MD5, x-amz-checksum-*, x-amz-trailer). An empty
/// Content-MD5 header is InvalidDigest, as S3 answers (the parsed input
/// drops it, so the raw header is looked at).
pub fn checks_of(
    headers: &HeaderMap,
    content_md5: Option<&String>,
    crc32: Option<&String>,
    crc32c: Option<&String>,
    crc64nvme: Option<&String>,
    sha1: Option<&String>,
    sha256: Option<&String>,
) -> S3Result<Checks> {
    if content_md5.is_none()
        && headers
            .get("content-md5")
            .is_some_and(|v| v.as_bytes().iter().all(u8::is_ascii_whitespace))
    {
        return Err(err(S3ErrorCode::InvalidDigest, "Content-MD5 is empty"));
    }
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
