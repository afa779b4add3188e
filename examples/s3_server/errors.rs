//! Engine errors to the S3 error codes a client expects.
//!
//! The engine reports an [`ErrorKind`] (its HTTP status) and a typed
//! [`Reason`] (the rule broken). S3 clients branch on finer codes
//! (`NoSuchKey` vs `NoSuchBucket`, `EntityTooSmall` vs `InvalidPart`); this
//! module maps reasons to them, and kinds where a reason has no S3 twin. It
//! never reads message text.

use partstore::{Error, ErrorKind, Reason};
use s3s::{S3Error, S3ErrorCode};

/// The S3 error for an engine error, its message kept for the client.
pub fn s3(e: &Error) -> S3Error {
    S3Error::with_message(code(e), e.to_string())
}

fn code(e: &Error) -> S3ErrorCode {
    use Reason as R;
    match e.reason() {
        Some(R::UnknownLayer) => S3ErrorCode::NoSuchBucket,
        Some(R::UnknownUpload | R::UploadCompleted) => S3ErrorCode::NoSuchUpload,
        Some(R::UnknownKey | R::CopySourceChanged) => S3ErrorCode::NoSuchKey,
        Some(R::DigestMismatch) => S3ErrorCode::BadDigest,
        Some(R::InvalidDigest) => S3ErrorCode::InvalidDigest,
        Some(R::BodyLengthMismatch) => S3ErrorCode::IncompleteBody,
        Some(R::InvalidLayerId) => S3ErrorCode::InvalidBucketName,
        Some(R::NoParts) => S3ErrorCode::MalformedXML,
        Some(R::PartListedTwice | R::PartsNotConsecutive) => S3ErrorCode::InvalidPartOrder,
        Some(R::PartTooSmall) => S3ErrorCode::EntityTooSmall,
        Some(R::PartNotUploaded | R::StalePartId | R::InvalidPartId) => S3ErrorCode::InvalidPart,
        Some(R::PartTooLarge | R::ObjectTooLarge | R::UploadTooLarge) => {
            S3ErrorCode::EntityTooLarge
        }
        Some(R::InvalidRange | R::CopyRangeOpen | R::CopyRangeUnaligned) => {
            S3ErrorCode::InvalidRange
        }
        Some(R::LayerExists) => S3ErrorCode::BucketAlreadyOwnedByYou,
        Some(R::LayerNotEmpty) => S3ErrorCode::BucketNotEmpty,
        Some(R::InvalidPageToken) => S3ErrorCode::InvalidArgument,
        _ => match e.kind() {
            ErrorKind::BadRequest => S3ErrorCode::InvalidArgument,
            ErrorKind::NotFound => S3ErrorCode::NoSuchKey,
            ErrorKind::TooLarge => S3ErrorCode::EntityTooLarge,
            ErrorKind::RangeNotSatisfiable => S3ErrorCode::InvalidRange,
            ErrorKind::Conflict => S3ErrorCode::OperationAborted,
            _ => S3ErrorCode::InternalError,
        },
    }
}

/// An S3 error with a message.
pub fn err(code: S3ErrorCode, msg: impl Into<String>) -> S3Error {
    S3Error::with_message(code, msg.into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use partstore::rules::{validate_complete, MIB};
    use partstore::{LayerConfig, Options, PartBody, PartRef, Store, UploadId};

    fn code_of<T: std::fmt::Debug>(r: partstore::Result<T>) -> S3ErrorCode {
        s3(&r.expect_err("the call must fail")).code().clone()
    }

    /// The mapping reads the engine's reasons: check it on errors the
    /// engine really returns.
    #[test]
    fn engine_errors_map_to_s3_codes() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(dir.path(), Options::default()).expect("open");
        store
            .create_layer("b", LayerConfig::default())
            .expect("layer");
        let put = |key: &str, body: &[u8]| {
            store.put_object("b", key, PartBody::new(body, body.len() as u64))
        };
        put("k", b"0123456789").expect("put");
        assert_eq!(code_of(store.head("nob", "k")), S3ErrorCode::NoSuchBucket);
        assert_eq!(code_of(store.head("b", "missing")), S3ErrorCode::NoSuchKey);
        assert_eq!(code_of(put("a b", b"x")), S3ErrorCode::InvalidArgument);
        let bad_metadata = PartBody::new(&b"x"[..], 1).metadata([("bad name", "v")]);
        assert_eq!(
            code_of(store.put_object("b", "m", bad_metadata)),
            S3ErrorCode::InvalidArgument
        );
        assert_eq!(code_of("x".parse::<UploadId>()), S3ErrorCode::NoSuchUpload);
        let wrong = format!("MD5:{}", "0".repeat(32)).parse().expect("digest");
        let body = PartBody::new(&b"abc"[..], 3).digest(wrong);
        assert_eq!(
            code_of(store.put_object("b", "d", body)),
            S3ErrorCode::BadDigest
        );
        let short = PartBody::new(&b"abc"[..], 4);
        assert_eq!(
            code_of(store.put_object("b", "d", short)),
            S3ErrorCode::IncompleteBody
        );
        let huge = PartBody::new(&b""[..], 1 << 40);
        assert_eq!(
            code_of(store.put_object("b", "d", huge)),
            S3ErrorCode::EntityTooLarge
        );
        let blob = store.get("b", "k").expect("get");
        let past = blob.read_range("bytes=10-".parse().expect("range"));
        assert_eq!(code_of(past), S3ErrorCode::InvalidRange);
        assert_eq!(
            code_of(store.create_layer("b", LayerConfig::default())),
            S3ErrorCode::BucketAlreadyOwnedByYou
        );
        assert_eq!(
            code_of(store.delete_layer("b")),
            S3ErrorCode::BucketNotEmpty
        );

        let up = store
            .start_multipart("b", "m", "application/octet-stream")
            .expect("start");
        assert_eq!(
            code_of(store.abort_multipart("b", &"0".repeat(32).parse().expect("id"))),
            S3ErrorCode::NoSuchUpload
        );
        let p1 = store
            .upload_part("b", &up, 1, PartBody::new(&[0u8; 10][..], 10))
            .expect("part");
        let p2 = store
            .upload_part("b", &up, 2, PartBody::new(&[0u8; 10][..], 10))
            .expect("part");
        let r = |n: u32, id: &str| PartRef {
            number: n,
            id: id.to_owned(),
        };
        let complete = |parts: &[PartRef]| store.complete_multipart_with("b", &up, parts);
        assert_eq!(
            code_of(complete(&[r(1, &p1.id), r(2, &p2.id)])),
            S3ErrorCode::EntityTooSmall
        );
        assert_eq!(
            code_of(complete(&[r(2, &p2.id)])),
            S3ErrorCode::InvalidPartOrder
        );
        assert_eq!(
            code_of(complete(&[r(1, &p1.id), r(1, &p1.id)])),
            S3ErrorCode::InvalidPartOrder
        );
        assert_eq!(code_of(complete(&[r(1, &p2.id)])), S3ErrorCode::InvalidPart);
        assert_eq!(code_of(complete(&[r(3, &p2.id)])), S3ErrorCode::InvalidPart);
        assert_eq!(code_of(complete(&[r(1, "zz")])), S3ErrorCode::InvalidPart);
        assert_eq!(code_of(complete(&[])), S3ErrorCode::MalformedXML);
        store
            .complete_multipart_with("b", &up, &[r(1, &p1.id)])
            .expect("complete");
        assert_eq!(
            code_of(store.list_parts("b", &up)),
            S3ErrorCode::NoSuchUpload
        );

        // The rest of the complete-time rules.
        assert_eq!(
            code_of(validate_complete(&[(1, 5 * MIB), (3, 1)])),
            S3ErrorCode::InvalidPartOrder
        );
        assert_eq!(
            code_of(validate_complete(&[(2, 5 * MIB), (1, 1)])),
            S3ErrorCode::InvalidPartOrder
        );
        assert_eq!(
            code_of(validate_complete(&[(1, 5 * MIB + 1), (2, 1)])),
            S3ErrorCode::InvalidArgument
        );
        assert_eq!(
            code_of(validate_complete(&[(1, 501 << 30)])),
            S3ErrorCode::EntityTooLarge
        );
    }
}
