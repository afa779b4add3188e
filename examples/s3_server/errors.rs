//! Engine errors to the S3 error codes a client expects.
//!
//! The engine reports an [`ErrorKind`] (its HTTP status) and a message that
//! names the offending value. S3 clients branch on finer codes (`NoSuchKey`
//! vs `NoSuchBucket`, `EntityTooSmall` vs `InvalidPart`), so the handlers
//! pre-check what they can (see `complete_multipart_upload`) and this module
//! maps the rest by kind and, within a kind, by the engine's message.

use partstore::{Error, ErrorKind};
use s3s::{S3Error, S3ErrorCode};

/// The S3 error for an engine error, its message kept for the client.
pub fn s3(e: &Error) -> S3Error {
    let msg = e.to_string();
    S3Error::with_message(code(e.kind(), &msg), msg)
}

fn code(kind: ErrorKind, msg: &str) -> S3ErrorCode {
    // The message is "<kind>: <detail>"; match on the detail.
    let detail = msg.split_once(": ").map_or(msg, |(_, d)| d);
    let has = |s: &str| detail.contains(s);
    match kind {
        ErrorKind::NotFound if detail.starts_with("layer ") => S3ErrorCode::NoSuchBucket,
        ErrorKind::NotFound if detail.starts_with("upload ") || has("unknown upload") => {
            S3ErrorCode::NoSuchUpload
        }
        ErrorKind::NotFound => S3ErrorCode::NoSuchKey,
        ErrorKind::BadRequest if has("digest mismatch") => S3ErrorCode::BadDigest,
        ErrorKind::BadRequest if has("is already completed") => S3ErrorCode::NoSuchUpload,
        ErrorKind::BadRequest if detail.starts_with("body ended after") => {
            S3ErrorCode::IncompleteBody
        }
        ErrorKind::BadRequest if detail.starts_with("layer id") => S3ErrorCode::InvalidBucketName,
        // Complete-time rules, when a race got past the handler's pre-checks.
        ErrorKind::BadRequest if has("listed twice") || has("without gaps") => {
            S3ErrorCode::InvalidPartOrder
        }
        ErrorKind::BadRequest if has("must be at least") => S3ErrorCode::EntityTooSmall,
        ErrorKind::BadRequest
            if has("was replaced or never existed")
                || has(") does not exist")
                || has("not one this store issued") =>
        {
            S3ErrorCode::InvalidPart
        }
        ErrorKind::BadRequest => S3ErrorCode::InvalidArgument,
        ErrorKind::TooLarge => S3ErrorCode::EntityTooLarge,
        ErrorKind::RangeNotSatisfiable => S3ErrorCode::InvalidRange,
        ErrorKind::Conflict if detail.starts_with("layer ") => S3ErrorCode::BucketAlreadyOwnedByYou,
        ErrorKind::Conflict => S3ErrorCode::OperationAborted,
        _ => S3ErrorCode::InternalError,
    }
}

/// An S3 error with a message.
pub fn err(code: S3ErrorCode, msg: impl Into<String>) -> S3Error {
    S3Error::with_message(code, msg.into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_and_messages_map_to_s3_codes() {
        let cases = [
            (
                ErrorKind::NotFound,
                "not found: layer \"b\" does not exist",
                S3ErrorCode::NoSuchBucket,
            ),
            (
                ErrorKind::NotFound,
                "not found: key \"k\" does not exist in layer \"b\"",
                S3ErrorCode::NoSuchKey,
            ),
            (
                ErrorKind::NotFound,
                "not found: upload 00 does not exist in layer \"b\"",
                S3ErrorCode::NoSuchUpload,
            ),
            (
                ErrorKind::NotFound,
                "not found: unknown upload \"x\"",
                S3ErrorCode::NoSuchUpload,
            ),
            (
                ErrorKind::BadRequest,
                "bad request: digest mismatch for MD5: expected a, got b",
                S3ErrorCode::BadDigest,
            ),
            (
                ErrorKind::BadRequest,
                "bad request: part 1 is 4 bytes; every part but the last must be at least 5 bytes",
                S3ErrorCode::EntityTooSmall,
            ),
            (
                ErrorKind::BadRequest,
                "bad request: part numbers must be 1..=2 without gaps: part 2 is missing",
                S3ErrorCode::InvalidPartOrder,
            ),
            (
                ErrorKind::BadRequest,
                "bad request: part 3 (id 0000000000000001) does not exist",
                S3ErrorCode::InvalidPart,
            ),
            (
                ErrorKind::BadRequest,
                "bad request: key \"a b\" contains \" \"",
                S3ErrorCode::InvalidArgument,
            ),
            (
                ErrorKind::TooLarge,
                "too large: x",
                S3ErrorCode::EntityTooLarge,
            ),
            (
                ErrorKind::RangeNotSatisfiable,
                "range not satisfiable: x",
                S3ErrorCode::InvalidRange,
            ),
            (ErrorKind::Corrupt, "corrupt: x", S3ErrorCode::InternalError),
        ];
        for (kind, msg, want) in cases {
            assert_eq!(code(kind, msg), want, "{msg}");
        }
    }
}
