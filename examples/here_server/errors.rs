//! Errors as the HERE API shapes them: an HTTP status and a JSON body
//! `{"title", "status", "code", "message", "correlationId"}`.
//!
//! Handlers return [`ApiError`]; its response carries the status, any extra
//! headers and an [`ErrorBody`] extension but no body. The front middleware
//! (`api::front`) renders the JSON with the request's correlation id, so
//! every error, the router's own ones included, gets the same body.
//!
//! An engine error's `code` is derived from its typed [`Reason`] (one stable
//! string per reason, [`reason_code`]), or from its [`ErrorKind`] when it has
//! none; never from message text. Errors the front raises itself carry an
//! engine reason where the front checks an engine rule early (a part number
//! that is not a number is `InvalidPartNumber`), else a code of their own
//! ([`codes`]).

use axum::http::{HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use partstore::{Error, ErrorKind, Reason};

/// Codes of errors the front raises without an engine reason.
pub mod codes {
    /// No or a wrong `Authorization: Bearer` token (401).
    pub const UNAUTHORIZED: &str = "Unauthorized";
    /// A body without Content-Length where the engine needs the length (411).
    pub const LENGTH_REQUIRED: &str = "LengthRequired";
    /// `GET .../keysMultipart/{token}` on an upload still open (404).
    pub const UPLOAD_NOT_COMPLETED: &str = "UploadNotCompleted";
    /// A path that names no route (404).
    pub const UNKNOWN_ROUTE: &str = "UnknownRoute";
    /// A method the route does not have (405).
    pub const METHOD_NOT_ALLOWED: &str = "MethodNotAllowed";
    /// A JSON request body over the front's limit (413).
    pub const REQUEST_TOO_LARGE: &str = "RequestTooLarge";
    /// The server failed (a worker thread died) (500).
    pub const INTERNAL: &str = "InternalError";
}

/// The stable error code of an engine reason: the reason's name.
pub fn reason_code(reason: Reason) -> Option<&'static str> {
    use Reason as R;
    Some(match reason {
        R::InvalidLayerId => "InvalidLayerId",
        R::InvalidKey => "InvalidKey",
        R::InvalidPartNumber => "InvalidPartNumber",
        R::InvalidDigest => "InvalidDigest",
        R::InvalidRange => "InvalidRange",
        R::InvalidPageToken => "InvalidPageToken",
        R::InvalidListLimit => "InvalidListLimit",
        R::InvalidPartId => "InvalidPartId",
        R::InvalidMetadata => "InvalidMetadata",
        R::InvalidArgument => "InvalidArgument",
        R::UnknownLayer => "UnknownLayer",
        R::UnknownKey => "UnknownKey",
        R::UnknownUpload => "UnknownUpload",
        R::LayerExists => "LayerExists",
        R::LayerNotEmpty => "LayerNotEmpty",
        R::StoreLocked => "StoreLocked",
        R::UploadBusy => "UploadBusy",
        R::DigestMismatch => "DigestMismatch",
        R::BodyLengthMismatch => "BodyLengthMismatch",
        R::ContentTypeMismatch => "ContentTypeMismatch",
        R::ContentEncodingMismatch => "ContentEncodingMismatch",
        R::PartTooLarge => "PartTooLarge",
        R::ObjectTooLarge => "ObjectTooLarge",
        R::UploadTooLarge => "UploadTooLarge",
        R::PartTooSmall => "PartTooSmall",
        R::PartNotMibMultiple => "PartNotMibMultiple",
        R::PartsNotConsecutive => "PartsNotConsecutive",
        R::PartListedTwice => "PartListedTwice",
        R::PartNotUploaded => "PartNotUploaded",
        R::StalePartId => "StalePartId",
        R::NoParts => "NoParts",
        R::UploadCompleted => "UploadCompleted",
        R::CopyRangeUnaligned => "CopyRangeUnaligned",
        R::CopyRangeOpen => "CopyRangeOpen",
        R::CopySourceChanged => "CopySourceChanged",
        R::ChecksumMismatch => "ChecksumMismatch",
        R::CorruptRecord => "CorruptRecord",
        R::StorePoisoned => "StorePoisoned",
        R::NoSpace => "NoSpace",
        // A reason added to the engine after this front: its kind's code.
        _ => return None,
    })
}

/// The code of an error kind, for engine errors without a (known) reason.
fn kind_code(kind: ErrorKind) -> &'static str {
    match kind {
        ErrorKind::BadRequest => "BadRequest",
        ErrorKind::NotFound => "NotFound",
        ErrorKind::Conflict => "Conflict",
        ErrorKind::TooLarge => "TooLarge",
        ErrorKind::RangeNotSatisfiable => "RangeNotSatisfiable",
        ErrorKind::Corrupt => "Corrupt",
        ErrorKind::Io => "IoError",
        _ => codes::INTERNAL,
    }
}

/// The code of an engine error: its reason's, else its kind's.
pub fn code(e: &Error) -> &'static str {
    e.reason()
        .and_then(reason_code)
        .unwrap_or_else(|| kind_code(e.kind()))
}

/// An error response before rendering: status, code, message and any
/// headers it needs (`Content-Range` on a 416, `WWW-Authenticate` on a 401).
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    /// Few and rare: a list keeps the error small.
    pub headers: Vec<(HeaderName, HeaderValue)>,
}

impl ApiError {
    /// An error the front raises with its own code.
    pub fn front(status: StatusCode, code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            code,
            message: message.into(),
            headers: Vec::new(),
        }
    }

    /// An error of an engine rule that the front checks before calling the
    /// engine: the code and status are the engine's for that reason.
    pub fn rule(kind: ErrorKind, reason: Reason, message: impl Into<String>) -> ApiError {
        ApiError::from(Error::new(kind, reason, message))
    }

    /// A BadRequest for a malformed argument (a header, query parameter or
    /// JSON body the front cannot read).
    pub fn invalid(message: impl Into<String>) -> ApiError {
        ApiError::rule(ErrorKind::BadRequest, Reason::InvalidArgument, message)
    }

    /// Adds a response header (values that are not valid header text are
    /// dropped rather than failing the error).
    pub fn with_header(mut self, name: HeaderName, value: &str) -> ApiError {
        if let Ok(v) = HeaderValue::from_str(value) {
            self.headers.push((name, v));
        }
        self
    }
}

impl From<Error> for ApiError {
    fn from(e: Error) -> ApiError {
        let status = StatusCode::from_u16(e.kind().http_status())
            .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        ApiError {
            status,
            code: code(&e),
            message: e.message(),
            headers: Vec::new(),
        }
    }
}

/// What the front middleware renders into the JSON error body.
#[derive(Debug, Clone)]
pub struct ErrorBody {
    pub code: &'static str,
    pub message: String,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut resp = self.status.into_response();
        for (name, value) in self.headers {
            resp.headers_mut().insert(name, value);
        }
        resp.extensions_mut().insert(ErrorBody {
            code: self.code,
            message: self.message,
        });
        resp
    }
}

/// The JSON error body.
pub fn render(status: StatusCode, body: &ErrorBody, correlation_id: &str) -> Vec<u8> {
    let v = serde_json::json!({
        "title": status.canonical_reason().unwrap_or("Error"),
        "status": status.as_u16(),
        "code": body.code,
        "message": body.message,
        "correlationId": correlation_id,
    });
    v.to_string().into_bytes()
}

/// The code and message of an error response the router made itself (an
/// unmatched route, a wrong method, a rejected extractor).
pub fn generic(status: StatusCode) -> ErrorBody {
    let code = match status {
        StatusCode::NOT_FOUND => codes::UNKNOWN_ROUTE,
        StatusCode::METHOD_NOT_ALLOWED => codes::METHOD_NOT_ALLOWED,
        StatusCode::PAYLOAD_TOO_LARGE => codes::REQUEST_TOO_LARGE,
        StatusCode::UNAUTHORIZED => codes::UNAUTHORIZED,
        s if s.is_server_error() => codes::INTERNAL,
        _ => "BadRequest",
    };
    ErrorBody {
        code,
        message: status
            .canonical_reason()
            .unwrap_or("request failed")
            .to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use partstore::{LayerConfig, Options, PartBody, PartRef, Store, UploadId};
    use std::collections::HashSet;

    fn api<T: std::fmt::Debug>(r: partstore::Result<T>) -> (u16, &'static str) {
        let e = ApiError::from(r.expect_err("the call must fail"));
        (e.status.as_u16(), e.code)
    }

    /// Codes are one per reason, so a client can branch on them.
    #[test]
    fn reason_codes_are_distinct() {
        use Reason as R;
        let all = [
            R::InvalidLayerId,
            R::InvalidKey,
            R::InvalidPartNumber,
            R::InvalidDigest,
            R::InvalidRange,
            R::InvalidPageToken,
            R::InvalidListLimit,
            R::InvalidPartId,
            R::InvalidMetadata,
            R::InvalidArgument,
            R::UnknownLayer,
            R::UnknownKey,
            R::UnknownUpload,
            R::LayerExists,
            R::LayerNotEmpty,
            R::StoreLocked,
            R::UploadBusy,
            R::DigestMismatch,
            R::BodyLengthMismatch,
            R::ContentTypeMismatch,
            R::ContentEncodingMismatch,
            R::PartTooLarge,
            R::ObjectTooLarge,
            R::UploadTooLarge,
            R::PartTooSmall,
            R::PartNotMibMultiple,
            R::PartsNotConsecutive,
            R::PartListedTwice,
            R::PartNotUploaded,
            R::StalePartId,
            R::NoParts,
            R::UploadCompleted,
            R::CopyRangeUnaligned,
            R::CopyRangeOpen,
            R::CopySourceChanged,
            R::ChecksumMismatch,
            R::CorruptRecord,
            R::StorePoisoned,
            R::NoSpace,
        ];
        let codes: HashSet<&str> = all
            .iter()
            .map(|r| reason_code(*r).expect("every known reason has a code"))
            .collect();
        assert_eq!(codes.len(), all.len());
        // The name of the reason, so the code reads like the engine's docs.
        for r in all {
            assert_eq!(reason_code(r), Some(format!("{r:?}")).as_deref());
        }
    }

    /// The mapping reads the reasons of errors the engine really returns.
    #[test]
    fn engine_errors_map_to_status_and_code() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(dir.path(), Options::default()).expect("open");
        store
            .create_layer("maps", LayerConfig::default())
            .expect("layer");
        let put = |key: &str, body: &[u8]| {
            store.put_object("maps", key, PartBody::new(body, body.len() as u64))
        };
        put("k", b"0123456789").expect("put");
        assert_eq!(api(store.head("nope", "k")), (404, "UnknownLayer"));
        assert_eq!(api(store.head("maps", "missing")), (404, "UnknownKey"));
        assert_eq!(api(put("a b", b"x")), (400, "InvalidKey"));
        assert_eq!(api("x".parse::<UploadId>()), (404, "UnknownUpload"));
        let wrong = format!("SHA1:{}", "0".repeat(40)).parse().expect("digest");
        let body = PartBody::new(&b"abc"[..], 3).digest(wrong);
        assert_eq!(
            api(store.put_object("maps", "d", body)),
            (400, "DigestMismatch")
        );
        assert_eq!(
            api("MD5:zz".parse::<partstore::Digest>()),
            (400, "InvalidDigest")
        );
        let huge = PartBody::new(&b""[..], 1 << 40);
        assert_eq!(
            api(store.put_object("maps", "d", huge)),
            (413, "ObjectTooLarge")
        );
        let blob = store.get("maps", "k").expect("get");
        let past = blob.read_range("bytes=10-".parse().expect("range"));
        assert_eq!(api(past), (416, "InvalidRange"));

        let up = store
            .start_multipart("maps", "m", "application/octet-stream")
            .expect("start");
        let p1 = store
            .upload_part("maps", &up, 1, PartBody::new(&[0u8; 10][..], 10))
            .expect("part");
        let p2 = store
            .upload_part("maps", &up, 2, PartBody::new(&[0u8; 10][..], 10))
            .expect("part");
        let r = |n: u32, id: &str| PartRef {
            number: n,
            id: id.to_owned(),
        };
        let complete = |parts: &[PartRef]| store.complete_multipart_with("maps", &up, parts);
        assert_eq!(
            api(complete(&[r(1, &p1.id), r(2, &p2.id)])),
            (400, "PartTooSmall")
        );
        assert_eq!(api(complete(&[r(1, &p2.id)])), (400, "StalePartId"));
        assert_eq!(api(complete(&[r(3, &p2.id)])), (400, "PartNotUploaded"));
        let ct = PartBody::new(&[0u8; 1][..], 1).content_type("text/plain");
        assert_eq!(
            api(store.upload_part("maps", &up, 3, ct)),
            (400, "ContentTypeMismatch")
        );
        store
            .complete_multipart_with("maps", &up, &[r(1, &p1.id)])
            .expect("complete");
        assert_eq!(
            api(store.abort_multipart("maps", &up)),
            (400, "UploadCompleted")
        );
    }

    #[test]
    fn front_errors_render_as_json() {
        let e = ApiError::rule(
            ErrorKind::BadRequest,
            Reason::InvalidPartNumber,
            "partNumber \"x\" is not a number",
        );
        assert_eq!((e.status.as_u16(), e.code), (400, "InvalidPartNumber"));
        let body = ErrorBody {
            code: e.code,
            message: e.message,
        };
        let json: serde_json::Value =
            serde_json::from_slice(&render(e.status, &body, "cid-1")).expect("json");
        assert_eq!(json["title"], "Bad Request");
        assert_eq!(json["status"], 400);
        assert_eq!(json["code"], "InvalidPartNumber");
        assert_eq!(json["correlationId"], "cid-1");
        assert_eq!(json["message"], "partNumber \"x\" is not a number");
    }
}
