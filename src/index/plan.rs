//! Requests to records, pure: the checks a call makes before it reads a
//! body (so a bad request fails before any byte is read), and the pieces a
//! range copy references. The store and the fuzz driver both call these.

use crate::error::{bad_request, unsatisfiable, Reason, Result};
use crate::index::apply::check_binding;
use crate::index::{Index, Retention};
use crate::log::format::Piece;
use crate::spec::{self, ByteRange};

/// What `copy_part` will reference.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CopyPlan {
    /// The runs of the source's extents that make up the range, in order.
    pub pieces: Vec<Piece>,
    /// The part's size: the range's length.
    pub size: u64,
}

impl Index {
    /// The checks of `put_object` before its body is read: layer, key,
    /// declared length, and the layer's content type and encoding binding.
    /// Returns the content type and encoding the object gets (the body's,
    /// else the layer's, else `application/octet-stream` and none).
    pub fn plan_put(
        &self,
        layer: &str,
        key: &str,
        declared_len: u64,
        content_type: Option<&str>,
        content_encoding: Option<&str>,
    ) -> Result<(String, Option<String>)> {
        let l = self.layer(layer)?;
        l.key_rules.validate(key)?;
        spec::check_put_object_size(declared_len)?;
        let ct = content_type
            .or(l.content_type.as_deref())
            .unwrap_or(spec::DEFAULT_CONTENT_TYPE)
            .to_string();
        let ce = content_encoding
            .or(l.content_encoding.as_deref())
            .map(str::to_string);
        check_binding(l, layer, &ct, ce.as_deref())?;
        Ok((ct, ce))
    }

    /// The checks of `upload_part` before its body is read: open upload
    /// (completed uploads judged at `retention`), part number, declared
    /// length, and a content type equal to the upload's (when one is given).
    pub fn plan_part(
        &self,
        layer: &str,
        upload: &[u8; 16],
        n: u32,
        declared_len: u64,
        content_type: Option<&str>,
        retention: Retention,
    ) -> Result<()> {
        let u = self.open_upload(layer, upload, retention)?;
        spec::validate_part_number(n)?;
        spec::check_part_size(declared_len).map_err(|e| e.with_part(n))?;
        if let Some(ct) = content_type {
            if !spec::media_eq(ct, &u.content_type) {
                return Err(bad_request!(
                    Reason::ContentTypeMismatch,
                    "content type \"{ct}\" of part {n} does not match the upload's \"{}\"",
                    u.content_type
                )
                .with_part(n));
            }
        }
        Ok(())
    }

    /// `copy_part`'s plan: checks the range (both bounds, first byte a
    /// multiple of 1 MiB, inside the source, at most 96 MiB), the upload
    /// (completed uploads judged at `retention`), the part number and the
    /// source, and slices the source's pieces to the range.
    pub fn plan_copy(
        &self,
        layer: &str,
        upload: &[u8; 16],
        n: u32,
        key: &str,
        range: &ByteRange,
        retention: Retention,
    ) -> Result<CopyPlan> {
        // Checked before any lookup, as the other range rules are once the
        // source's size is known (`ByteRange::resolve_copy`).
        let ByteRange::Bounded { first, last } = *range else {
            return Err(unsatisfiable!(
                Reason::CopyRangeOpen,
                "copy range {range} must give both bounds (bytes=a-b)"
            ));
        };
        self.open_upload(layer, upload, retention)?;
        spec::validate_part_number(n)?;
        let src = self.object(layer, key)?;
        let size = range
            .resolve_copy(src.size)
            .map_err(|e| e.with_part(n))?
            .end
            - first;
        let mut pieces = Vec::new();
        let mut pos = 0u64;
        for p in src.pieces.iter() {
            let (p_start, p_end) = (pos, pos + p.len);
            pos = p_end;
            if p_end <= first || p_start > last {
                continue;
            }
            let from = first.max(p_start) - p_start;
            let to = (last + 1).min(p_end) - p_start;
            pieces.push(Piece {
                extent: p.extent,
                offset: p.offset + from,
                len: to - from,
            });
        }
        Ok(CopyPlan { pieces, size })
    }
}
