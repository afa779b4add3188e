//! What an S3 object carries besides its bytes, kept in the engine's user
//! metadata under the HTTP header names S3 answers with:
//!
//! - user metadata `x-amz-meta-NAME: value` as `x-amz-meta-name`;
//! - `Cache-Control`, `Content-Disposition`, `Content-Language` and
//!   `Expires` under those names (lower case);
//! - `Content-Type` and `Content-Encoding` only when a CopyObject with
//!   `MetadataDirective: REPLACE` changed them: the copy references the
//!   source's bytes (no rewrite), and these override the engine's values.
//!
//! Every stored name is its header's name, so nothing can collide. The
//! engine's 2 KiB limit covers all of them, prefixes included; S3's own
//! limit (2 KiB of user metadata keys and values) is checked here first.
//!
//! Checksums: the engine keeps the one digest it verified (SHA-256, SHA-1,
//! CRC32C or MD5); GET/HEAD with ChecksumMode=ENABLED answer the CRC32C of
//! every object (FULL_OBJECT), plus a kept SHA-256 or SHA-1, or for a
//! multipart object whose parts all carried one, the composite
//! (`base64(hash(part digests))-N`, COMPOSITE).

use std::collections::HashMap;

use partstore::{DigestAlgorithm, ObjectInfo, PartInfo};
use s3s::dto::{ChecksumType, Metadata, Timestamp, TimestampFormat};
use s3s::{S3ErrorCode, S3Result};

use crate::body;
use crate::errors::err;

pub const META_PREFIX: &str = "x-amz-meta-";
const CACHE_CONTROL: &str = "cache-control";
const CONTENT_DISPOSITION: &str = "content-disposition";
const CONTENT_LANGUAGE: &str = "content-language";
const EXPIRES: &str = "expires";
const CONTENT_TYPE: &str = "content-type";
const CONTENT_ENCODING: &str = "content-encoding";
/// S3's limit on user metadata: keys (without the prefix) and values.
const S3_METADATA_LIMIT: usize = 2048;

/// The object headers of a PutObject, CreateMultipartUpload or a
/// CopyObject with REPLACE.
#[derive(Default, Clone)]
pub struct Attrs {
    pub user: Option<Metadata>,
    pub cache_control: Option<String>,
    pub content_disposition: Option<String>,
    pub content_language: Option<String>,
    pub expires: Option<Timestamp>,
}

impl Attrs {
    /// As engine metadata (sorted, so equal headers store equal bytes).
    /// S3's own size limit first: `MetadataTooLarge`.
    pub fn to_engine(&self) -> S3Result<Vec<(String, String)>> {
        let mut out = Vec::new();
        if let Some(user) = &self.user {
            let size: usize = user.iter().map(|(k, v)| k.len() + v.len()).sum();
            if size > S3_METADATA_LIMIT {
                return Err(err(
                    S3ErrorCode::MetadataTooLarge,
                    format!("user metadata is {size} bytes, more than {S3_METADATA_LIMIT}"),
                ));
            }
            for (k, v) in user {
                out.push((
                    format!("{META_PREFIX}{}", k.to_ascii_lowercase()),
                    v.clone(),
                ));
            }
        }
        for (name, value) in [
            (CACHE_CONTROL, &self.cache_control),
            (CONTENT_DISPOSITION, &self.content_disposition),
            (CONTENT_LANGUAGE, &self.content_language),
        ] {
            if let Some(v) = value {
                out.push((name.to_owned(), v.clone()));
            }
        }
        if let Some(t) = &self.expires {
            let mut b = Vec::new();
            t.format(TimestampFormat::HttpDate, &mut b)
                .map_err(|e| err(S3ErrorCode::InvalidArgument, format!("Expires: {e}")))?;
            out.push((EXPIRES.to_owned(), String::from_utf8_lossy(&b).into_owned()));
        }
        out.sort();
        Ok(out)
    }
}

/// An object's headers as stored, for GET/HEAD.
pub struct Stored {
    pub user: Option<Metadata>,
    pub cache_control: Option<String>,
    pub content_disposition: Option<String>,
    pub content_language: Option<String>,
    pub expires: Option<Timestamp>,
    pub content_type: String,
    pub content_encoding: Option<String>,
}

impl Stored {
    pub fn of(info: &ObjectInfo) -> Stored {
        let get = |name: &str| info.metadata_value(name).map(str::to_owned);
        let user: HashMap<String, String> = info
            .metadata
            .iter()
            .filter_map(|(n, v)| {
                n.strip_prefix(META_PREFIX)
                    .map(|k| (k.to_owned(), v.clone()))
            })
            .collect();
        Stored {
            user: (!user.is_empty()).then_some(user),
            cache_control: get(CACHE_CONTROL),
            content_disposition: get(CONTENT_DISPOSITION),
            content_language: get(CONTENT_LANGUAGE),
            expires: get(EXPIRES)
                .and_then(|v| Timestamp::parse(TimestampFormat::HttpDate, &v).ok()),
            content_type: get(CONTENT_TYPE).unwrap_or_else(|| info.content_type.clone()),
            content_encoding: get(CONTENT_ENCODING).or_else(|| info.content_encoding.clone()),
        }
    }
}

/// The engine metadata of a REPLACE copy: the request's headers, plus its
/// Content-Type and Content-Encoding where they differ from the engine's
/// values of the source (which the copy keeps).
pub fn replaced(
    attrs: &Attrs,
    content_type: Option<&str>,
    content_encoding: Option<&str>,
    src: &ObjectInfo,
) -> S3Result<Vec<(String, String)>> {
    let mut md = attrs.to_engine()?;
    let ct = content_type.unwrap_or(partstore::rules::DEFAULT_CONTENT_TYPE);
    if !ct.eq_ignore_ascii_case(&src.content_type) {
        md.push((CONTENT_TYPE.to_owned(), ct.to_owned()));
    }
    if content_encoding != src.content_encoding.as_deref() {
        md.push((
            CONTENT_ENCODING.to_owned(),
            content_encoding.unwrap_or("identity").to_owned(),
        ));
    }
    md.sort();
    Ok(md)
}

/// `Content-Encoding` as stored: without `aws-chunked`, which names the
/// transfer framing of the request, not the object's encoding.
pub fn stored_encoding(ce: Option<String>) -> Option<String> {
    let ce = ce?;
    let kept: Vec<&str> = ce
        .split(',')
        .map(str::trim)
        .filter(|e| !e.is_empty() && !e.eq_ignore_ascii_case("aws-chunked"))
        .collect();
    (!kept.is_empty()).then(|| kept.join(","))
}

/// The checksums GET/HEAD/CompleteMultipartUpload answer for an object.
#[derive(Default)]
pub struct Checksums {
    pub crc32c: Option<String>,
    pub sha1: Option<String>,
    pub sha256: Option<String>,
    pub kind: Option<ChecksumType>,
}

fn b64(b: &[u8]) -> String {
    base64_simd::STANDARD.encode_to_string(b)
}

impl Checksums {
    pub fn of(info: &ObjectInfo) -> Checksums {
        let mut c = Checksums {
            crc32c: Some(body::crc32c_b64(info.crc32c)),
            kind: Some(ChecksumType::from_static(ChecksumType::FULL_OBJECT)),
            ..Checksums::default()
        };
        if let Some(d) = &info.digest {
            match d.algorithm() {
                DigestAlgorithm::Sha256 => c.sha256 = Some(b64(d.bytes())),
                DigestAlgorithm::Sha1 => c.sha1 = Some(b64(d.bytes())),
                DigestAlgorithm::Crc32c | DigestAlgorithm::Md5 => {}
            }
        } else if let Some(d) = &info.composite_digest {
            let value = Some(format!("{}-{}", b64(d.bytes()), info.part_count));
            match d.algorithm() {
                DigestAlgorithm::Sha256 => c.sha256 = value,
                DigestAlgorithm::Sha1 => c.sha1 = value,
                // The full-object CRC32C says more than a composite one.
                DigestAlgorithm::Crc32c | DigestAlgorithm::Md5 => return c,
            }
            c.crc32c = None;
            c.kind = Some(ChecksumType::from_static(ChecksumType::COMPOSITE));
        }
        c
    }
}

/// A part's kept SHA-1 / SHA-256 (base64), for ListParts.
pub fn part_sha(p: &PartInfo) -> (Option<String>, Option<String>) {
    match p.digest.as_ref().map(|d| (d.algorithm(), b64(d.bytes()))) {
        Some((DigestAlgorithm::Sha1, v)) => (Some(v), None),
        Some((DigestAlgorithm::Sha256, v)) => (None, Some(v)),
        _ => (None, None),
    }
}
