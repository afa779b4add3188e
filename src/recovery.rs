//! Recovery helpers for `Store::open` beyond the record scan (which lives in
//! `segment.rs`): a newest segment whose creation was interrupted.

use std::path::Path;

use crate::backend::Backend;
use crate::error::{Error, Result};
use crate::record::SEGMENT_HEADER_LEN;

/// True when the segment file at `path` holds nothing past its header but
/// zeros: a crash inside segment creation (before its header was durable)
/// left it, and no record was ever appended to it. Its header bytes may be
/// anything (missing, zero, partly written); the file may be empty.
pub(crate) fn is_torn_creation(backend: &dyn Backend, path: &Path) -> Result<bool> {
    let io = |e| Error::io(format!("reading {}", path.display()), e);
    let file = backend.open(path).map_err(io)?;
    let len = file.len().map_err(io)?;
    let mut buf = vec![0u8; 1 << 16];
    for r in crate::backend::data_ranges(&*file, SEGMENT_HEADER_LEN, len).map_err(io)? {
        let mut at = r.start;
        while at < r.end {
            let n = ((r.end - at) as usize).min(buf.len());
            file.read_exact_at(&mut buf[..n], at).map_err(io)?;
            if buf[..n].iter().any(|b| *b != 0) {
                return Ok(false);
            }
            at += n as u64;
        }
    }
    Ok(true)
}
