//! Index entries as the public result types (`ObjectInfo`, `PartInfo`),
//! and the clock and part-id text forms they use.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::error::{bad_request, Reason, Result};
use crate::index::{Index, ObjRef, Object, Part};
use crate::types::{ObjectInfo, PartInfo};

pub(crate) fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

pub(crate) fn to_time(ms: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_millis(ms)
}

pub(crate) fn part_id_string(id: u64) -> String {
    format!("{id:016x}")
}

pub(crate) fn parse_part_id(s: &str) -> Result<u64> {
    if s.len() != 16 || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(bad_request!(
            Reason::InvalidPartId,
            "part id \"{s}\" is not one this store issued"
        ));
    }
    u64::from_str_radix(s, 16)
        .map_err(|_| bad_request!(Reason::InvalidPartId, "part id \"{s}\" is malformed"))
}

pub(crate) fn part_info(p: &Part) -> PartInfo {
    PartInfo {
        part_number: p.number,
        id: part_id_string(p.id),
        size: p.size,
        crc32c: p.crc32c,
        last_modified: to_time(p.time_ms),
        digest: p.digest.clone(),
    }
}

pub(crate) fn object_info(o: &Object) -> ObjectInfo {
    ObjectInfo {
        key: o.key.clone(),
        size: o.size,
        content_type: o.content_type.clone(),
        content_encoding: o.content_encoding.clone(),
        last_modified: to_time(o.last_modified_ms),
        crc32c: o.crc32c,
        etag: o.etag.clone(),
        part_count: o.part_count,
        metadata: o.metadata.clone(),
        digest: o.digest.clone(),
        composite_digest: o.composite_digest.clone(),
        part_sizes: Arc::clone(&o.part_sizes),
    }
}

/// A packed object as an `ObjectInfo`, without the intermediate `Object`
/// (the path of `head` and of a put's result).
pub(crate) fn packed_info(index: &Index, o: ObjRef<'_>) -> ObjectInfo {
    let r = o.rec;
    let (ct, ce) = index.media_of(r);
    let x = r.extra.as_deref();
    ObjectInfo {
        key: o.key.to_string(),
        size: index.size_of(r),
        content_type: ct.to_string(),
        content_encoding: ce.map(str::to_string),
        last_modified: to_time(r.last_modified_ms()),
        crc32c: r.crc32c,
        etag: index.etag_of(r),
        part_count: u32::from(r.part_count()),
        metadata: x.map(|x| x.metadata.clone()).unwrap_or_default(),
        digest: x.and_then(|x| x.digest.clone()),
        composite_digest: x.and_then(|x| x.composite_digest.clone()),
        part_sizes: x.map(|x| Arc::clone(&x.part_sizes)).unwrap_or_default(),
    }
}
