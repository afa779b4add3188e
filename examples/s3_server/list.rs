//! S3 listings over the engine's: ListObjects (v1) and ListObjectsV2 with
//! any prefix, any delimiter, markers and continuation tokens, and
//! ListBuckets pages.
//!
//! One rule makes paging exact: an entry (a key, or a common prefix that
//! ends with the delimiter) is listed only if its name sorts after the
//! marker. A page ends after its last entry, and that entry's name is the
//! next marker (v1 `NextMarker`, or inside the v2 continuation token), so a
//! common prefix is never listed twice and no key is skipped.
//!
//! With delimiter `/` the engine groups folders itself (`ListOptions::
//! prefix` + hierarchical), skipping a whole folder in one step. Any other
//! delimiter is grouped here over the engine's deep listing; the keys of a
//! group are contiguous in key order, so they are read and skipped.

use partstore::{ListItem, ListOptions, ObjectInfo, Store};
use s3s::{S3ErrorCode, S3Result};

use crate::errors::err;
use crate::s3::EngineResult;

/// Engine page size while scanning.
const SCAN_PAGE: usize = 1000;

/// One S3 listing page.
pub struct Listing {
    pub objects: Vec<ObjectInfo>,
    pub prefixes: Vec<String>,
    pub truncated: bool,
    /// The name of the last entry listed, when truncated.
    pub next_marker: Option<String>,
}

/// Entries of `bucket` under `prefix`, grouped on `delimiter` (none when
/// empty), after `marker`, at most `max`.
pub fn list(
    store: &Store,
    bucket: &str,
    prefix: &str,
    delimiter: Option<&str>,
    marker: Option<&str>,
    max: usize,
) -> S3Result<Listing> {
    let delimiter = delimiter.filter(|d| !d.is_empty());
    let mut out = Listing {
        objects: Vec::new(),
        prefixes: Vec::new(),
        truncated: false,
        next_marker: None,
    };
    if max == 0 {
        return Ok(out);
    }
    // The engine groups on '/' itself; other delimiters are grouped here.
    let engine_groups = delimiter == Some("/");
    let mut opts = ListOptions::default()
        .prefix(prefix)
        .deep(!engine_groups)
        .limit(SCAN_PAGE);
    if let Some(m) = marker.filter(|m| !m.is_empty()) {
        opts = opts.start_after(m);
    }
    // The common prefix listed last: its keys follow it and are skipped.
    let mut group: Option<String> = None;
    loop {
        let page = store.list(bucket, &opts).s3()?;
        for item in page.items {
            let (name, object) = match item {
                ListItem::Prefix(p) => (format!("{p}/"), None),
                ListItem::Object(o) => match delimiter.and_then(|d| {
                    o.key[prefix.len()..]
                        .find(d)
                        .map(|i| o.key[..prefix.len() + i + d.len()].to_owned())
                }) {
                    Some(common) => (common, None),
                    None => (o.key.clone(), Some(o)),
                },
            };
            if group.as_deref() == Some(name.as_str()) || marker.is_some_and(|m| name.as_str() <= m)
            {
                continue;
            }
            if out.objects.len() + out.prefixes.len() == max {
                out.truncated = true;
                // Entries come in order: the last one is the open group,
                // else the last key.
                out.next_marker = group.or_else(|| out.objects.last().map(|o| o.key.clone()));
                return Ok(out);
            }
            match object {
                Some(o) => {
                    group = None;
                    out.objects.push(o);
                }
                None => {
                    group = Some(name.clone());
                    out.prefixes.push(name);
                }
            }
        }
        match page.next_page_token {
            Some(t) => opts = opts.page_token(t),
            None => return Ok(out),
        }
    }
}

/// A ListObjectsV2 continuation token: the marker it resumes after, in
/// base64 (opaque to clients, as S3's are).
pub fn token(marker: &str) -> String {
    base64_simd::URL_SAFE_NO_PAD.encode_to_string(marker.as_bytes())
}

/// The marker of a continuation token; `InvalidArgument` for one this
/// server cannot have issued.
pub fn marker_of(token: &str) -> S3Result<String> {
    base64_simd::URL_SAFE_NO_PAD
        .decode_to_vec(token)
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
        .ok_or_else(|| {
            err(
                S3ErrorCode::InvalidArgument,
                format!("continuation token \"{token}\" was not issued by this server"),
            )
        })
}

/// `EncodingType=url`: the characters of a key other than unreserved ones
/// and `/`, percent-encoded (a space is `%20`, `+` is `%2B`).
pub fn url_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~' | b'/') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_encoding_keeps_unreserved_and_slash() {
        assert_eq!(url_encode("a b+c/%ü~"), "a%20b%2Bc/%25%C3%BC~");
    }

    #[test]
    fn tokens_round_trip_and_reject_garbage() {
        assert_eq!(marker_of(&token("a b/ü")).unwrap(), "a b/ü");
        assert!(marker_of("!!").is_err());
    }
}
