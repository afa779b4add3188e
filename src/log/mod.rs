//! The append-only segment log: the on-disk format (`format`), segment
//! files (`segment`), their memory maps (`map`, the crate's only `unsafe`),
//! the writer with rotation and group commit (`writer`), the record scan of
//! recovery (`scan`), and the checkpoint records (`checkpoint`).

pub(crate) mod checkpoint;
pub(crate) mod codec;
pub(crate) mod format;
pub(crate) mod map;
pub(crate) mod meta;
pub(crate) mod scan;
pub(crate) mod segment;
pub(crate) mod writer;
