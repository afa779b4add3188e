//! The HERE blob v2 "by key" routes on a `partstore::Store`.
//!
//! Paths are exactly those of HERE's generated client
//! (`@here/olp-sdk-dataservice-api`, `ObjectStoreApi`), at the root of the
//! base URL:
//!
//! | route | engine |
//! |---|---|
//! | `PUT /layers/{layer}/keys/{key}` | `put_object`; with `?source=KEY`, `copy_object` |
//! | `GET /layers/{layer}/keys/{key}` | `get` + `Blob::slices` (Range header or `range` query) |
//! | `HEAD /layers/{layer}/keys/{key}` | `head` |
//! | `DELETE /layers/{layer}/keys/{key}` | `delete` |
//! | `POST /layers/{layer}/keys/{key}` | `start_multipart` |
//! | `POST /layers/{layer}/keysMultipart/{token}/parts?partNumber=N` | `upload_part`; with `source`, `copy_part` |
//! | `PUT /layers/{layer}/keysMultipart/{token}` | `complete_multipart(_with)` |
//! | `GET /layers/{layer}/keysMultipart/{token}` | `upload_status` |
//! | `DELETE /layers/{layer}/keysMultipart/{token}` | `abort_multipart` |
//! | `GET /layers/{layer}/keys` | `list` |
//!
//! Every engine call runs on the blocking pool; every handler first checks
//! that the layer exists (so an unknown layer is 404 whatever else is wrong
//! with the request), then applies the checks the front made on the request
//! (headers, query, JSON), then calls the engine. Where the front answers
//! differently from the engine, the comment says so (`Bend:`).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::SystemTime;

use axum::body::Body;
use axum::extract::{FromRequestParts, Path, RawQuery, Request, State};
use axum::http::header::{
    ACCEPT_RANGES, AUTHORIZATION, CONTENT_ENCODING, CONTENT_LENGTH, CONTENT_RANGE, CONTENT_TYPE,
    ETAG, LAST_MODIFIED, RANGE, TRANSFER_ENCODING, WWW_AUTHENTICATE,
};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::Router;
use partstore::{
    ByteRange, CopySource, Digest, ErrorKind, ListItem, ListOptions, ObjectInfo, PartBody, PartRef,
    Reason, Store, UploadId, UploadOptions, UploadStatus,
};
use serde::Deserialize;
use serde_json::json;

use crate::body::{self, blocking, with_body};
use crate::dates;
use crate::errors::{self, codes, ApiError, ErrorBody};

const X_CORRELATION_ID: HeaderName = HeaderName::from_static("x-correlation-id");
const X_HERE_DIGEST: HeaderName = HeaderName::from_static("x-here-digest");

/// Largest JSON request body (a complete of 10,000 parts is ~600 KB).
const JSON_LIMIT: usize = 4 << 20;

/// What every handler shares: the store and the bearer token.
#[derive(Clone)]
pub struct App {
    pub store: Arc<Store>,
    pub token: Arc<str>,
}

/// The routes, behind the front middleware (auth, correlation id, error
/// bodies), which also covers the fallback and wrong methods.
pub fn router(app: App) -> Router {
    Router::new()
        .route("/layers/{layer}/keys", get(list_keys))
        .route(
            "/layers/{layer}/keys/{*key}",
            put(put_blob)
                .get(get_blob)
                .head(head_blob)
                .delete(delete_blob)
                .post(start_upload),
        )
        .route(
            "/layers/{layer}/keysMultipart/{token}",
            put(complete_upload)
                .get(upload_status)
                .delete(cancel_upload),
        )
        .route(
            "/layers/{layer}/keysMultipart/{token}/parts",
            post(upload_part),
        )
        .fallback(unknown_route)
        .layer(middleware::from_fn_with_state(app.clone(), front))
        .with_state(app)
}

// ----- the front: auth, correlation id, error bodies ----------------------

/// Checks the bearer token before anything else (401), gives every response
/// an `X-Correlation-ID` (the client's, if it sent a sane one), and renders
/// every error as the HERE JSON body.
async fn front(State(app): State<App>, req: Request, next: Next) -> Response {
    let cid = correlation_id(req.headers());
    let mut resp = if authorized(req.headers(), &app.token) {
        next.run(req).await
    } else {
        ApiError::front(
            StatusCode::UNAUTHORIZED,
            codes::UNAUTHORIZED,
            "missing or wrong \"Authorization: Bearer\" token",
        )
        .with_header(WWW_AUTHENTICATE, "Bearer")
        .into_response()
    };
    let status = resp.status();
    let err = resp.extensions_mut().remove::<ErrorBody>().or_else(|| {
        (status.is_client_error() || status.is_server_error()).then(|| errors::generic(status))
    });
    if let Some(err) = err {
        let json = errors::render(status, &err, &cid);
        let (mut parts, _) = resp.into_parts();
        parts
            .headers
            .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        parts
            .headers
            .insert(CONTENT_LENGTH, HeaderValue::from(json.len()));
        resp = Response::from_parts(parts, Body::from(json));
    }
    if let Ok(v) = HeaderValue::from_str(&cid) {
        resp.headers_mut().insert(X_CORRELATION_ID, v);
    }
    resp
}

/// `Authorization: Bearer TOKEN`, the token compared in constant time.
fn authorized(headers: &HeaderMap, token: &str) -> bool {
    let Some(given) = headers
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, t)| t.trim())
    else {
        return false;
    };
    let (a, b) = (given.as_bytes(), token.as_bytes());
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The client's `X-Correlation-ID` if it is 1..=128 characters of
/// `A-Z a-z 0-9 - _ . :`, else a fresh random one.
fn correlation_id(headers: &HeaderMap) -> String {
    let given = headers
        .get(X_CORRELATION_ID)
        .and_then(|v| v.to_str().ok())
        .filter(|s| {
            (1..=128).contains(&s.len())
                && s.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':'))
        });
    if let Some(s) = given {
        return s.to_owned();
    }
    let mut bytes = [0u8; 16];
    if getrandom::fill(&mut bytes).is_err() {
        // No OS randomness: unique within the process is enough.
        static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let t = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        bytes[..8].copy_from_slice(&t.to_be_bytes());
        bytes[8..].copy_from_slice(&n.to_be_bytes());
    }
    let h: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &h[..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..]
    )
}

async fn unknown_route() -> ApiError {
    ApiError::front(
        StatusCode::NOT_FOUND,
        codes::UNKNOWN_ROUTE,
        "no such route: the API is /layers/{layerId}/keys[/{key}] and \
         /layers/{layerId}/keysMultipart/{multipartToken}[/parts]",
    )
}

// ----- request pieces -------------------------------------------------------

/// The two path parameters, percent-decoded; a path that does not decode
/// to UTF-8 is 400.
struct Params(String, String);

impl<S: Send + Sync> FromRequestParts<S> for Params {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Params, ApiError> {
        let Path((a, b)) = Path::<(String, String)>::from_request_parts(parts, state)
            .await
            .map_err(|e| ApiError::invalid(format!("path: {e}")))?;
        Ok(Params(a, b))
    }
}

/// The query string's parameters; a parameter given twice is 400.
struct Query(HashMap<String, String>);

impl Query {
    fn parse(raw: Option<&str>) -> Result<Query, ApiError> {
        let mut map = HashMap::new();
        for (k, v) in form_urlencoded::parse(raw.unwrap_or("").as_bytes()) {
            if map.insert(k.clone().into_owned(), v.into_owned()).is_some() {
                return Err(ApiError::invalid(format!(
                    "query parameter \"{k}\" is given more than once"
                )));
            }
        }
        Ok(Query(map))
    }

    fn get(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(String::as_str)
    }
}

/// A header as text, if present; 400 if it is not visible ASCII.
fn header(headers: &HeaderMap, name: &HeaderName) -> Result<Option<String>, ApiError> {
    match headers.get(name) {
        None => Ok(None),
        Some(v) => v
            .to_str()
            .map(|s| Some(s.to_owned()))
            .map_err(|_| ApiError::invalid(format!("header {name} is not visible ASCII text"))),
    }
}

/// The body's declared length. A body sent without Content-Length
/// (chunked) is 411: the engine needs the length up front.
///
/// Bend: the engine could take a body of unknown length if it had
/// `PartBody::until_eof` (DESIGN.md, wave 2); it has not yet.
fn content_length(headers: &HeaderMap) -> Result<u64, ApiError> {
    match header(headers, &CONTENT_LENGTH)? {
        Some(v) => v
            .trim()
            .parse::<u64>()
            .map_err(|_| ApiError::invalid(format!("Content-Length \"{v}\" is not a byte count"))),
        None if headers.contains_key(TRANSFER_ENCODING) => Err(ApiError::front(
            StatusCode::LENGTH_REQUIRED,
            codes::LENGTH_REQUIRED,
            "the body needs a Content-Length",
        )),
        // Neither header: HTTP/1.1 says the body is empty.
        None => Ok(0),
    }
}

/// A request that must have no body (a copy).
fn no_body(headers: &HeaderMap, what: &str) -> Result<(), ApiError> {
    let len = match header(headers, &CONTENT_LENGTH)? {
        Some(v) => v.trim().parse::<u64>().ok(),
        None if headers.contains_key(TRANSFER_ENCODING) => None,
        None => Some(0),
    };
    if len == Some(0) {
        Ok(())
    } else {
        Err(ApiError::invalid(format!(
            "{what} takes an empty body (the bytes come from the source)"
        )))
    }
}

/// The optional `X-HERE-Digest: ALGORITHM:HEX`.
fn digest(headers: &HeaderMap) -> Result<Option<Digest>, ApiError> {
    let Some(v) = headers.get(&X_HERE_DIGEST) else {
        return Ok(None);
    };
    let s = v.to_str().map_err(|_| {
        ApiError::rule(
            ErrorKind::BadRequest,
            Reason::InvalidDigest,
            "X-HERE-Digest is not visible ASCII text",
        )
    })?;
    Ok(Some(s.trim().parse::<Digest>()?))
}

/// The single `Range` header, else the `range` query parameter.
fn range_spec(headers: &HeaderMap, query: &Query) -> Result<Option<String>, ApiError> {
    let mut all = headers.get_all(RANGE).iter();
    match (all.next(), all.next()) {
        (Some(_), Some(_)) => Err(ApiError::rule(
            ErrorKind::RangeNotSatisfiable,
            Reason::InvalidRange,
            "several Range headers: one range only",
        )),
        (Some(v), None) => v.to_str().map(|s| Some(s.to_owned())).map_err(|_| {
            ApiError::rule(
                ErrorKind::RangeNotSatisfiable,
                Reason::InvalidRange,
                "Range is not visible ASCII text",
            )
        }),
        (None, _) => Ok(query.get("range").map(str::to_owned)),
    }
}

/// 404 unless the layer exists; every handler calls it first (one index
/// lookup, not a copy of every layer).
fn require_layer(store: &Store, layer: &str) -> Result<(), ApiError> {
    if store.layer_info(layer).is_ok() {
        Ok(())
    } else {
        Err(ApiError::rule(
            ErrorKind::NotFound,
            Reason::UnknownLayer,
            format!("layer \"{}\" does not exist", shorten(layer)),
        ))
    }
}

/// A client-supplied value for a message, cut to 128 characters.
fn shorten(s: &str) -> String {
    match s.char_indices().nth(128) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_owned(),
    }
}

/// An upload token from the path; malformed is unknown (404, the engine's).
fn token(s: &str) -> Result<UploadId, ApiError> {
    Ok(s.parse::<UploadId>()?)
}

fn json_response(status: StatusCode, value: serde_json::Value) -> Response {
    (
        status,
        [(CONTENT_TYPE, HeaderValue::from_static("application/json"))],
        value.to_string(),
    )
        .into_response()
}

/// A JSON request body: `None` when empty (or `null`), 400 when malformed.
async fn json_body<T: for<'de> Deserialize<'de>>(body: Body) -> Result<Option<T>, ApiError> {
    let bytes = body::read_small(body, JSON_LIMIT).await?;
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(None);
    }
    serde_json::from_slice::<Option<T>>(&bytes)
        .map_err(|e| ApiError::invalid(format!("request body is not the expected JSON: {e}")))
}

/// The headers of an object: type, encoding, length, dates, etag.
fn object_headers(info: &ObjectInfo, len: u64) -> HeaderMap {
    let mut h = HeaderMap::new();
    if let Ok(v) = HeaderValue::from_str(&info.content_type) {
        h.insert(CONTENT_TYPE, v);
    }
    if let Some(Ok(v)) = info.content_encoding.as_deref().map(HeaderValue::from_str) {
        h.insert(CONTENT_ENCODING, v);
    }
    h.insert(CONTENT_LENGTH, HeaderValue::from(len));
    if let Ok(v) = HeaderValue::from_str(&dates::http_date(info.last_modified)) {
        h.insert(LAST_MODIFIED, v);
    }
    if let Ok(v) = HeaderValue::from_str(&format!("\"{}\"", info.etag)) {
        h.insert(ETAG, v);
    }
    h.insert(ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    h
}

// ----- objects --------------------------------------------------------------

enum PutPlan {
    Copy {
        source: String,
    },
    Upload {
        len: u64,
        content_type: Option<String>,
        content_encoding: Option<String>,
        digest: Option<Digest>,
    },
}

/// `PUT /layers/{layer}/keys/{key}`: the body is the object (Content-Type,
/// Content-Encoding kept; optional X-HERE-Digest), or `?source=KEY` with an
/// empty body copies that object. 200.
async fn put_blob(
    State(app): State<App>,
    Params(layer, key): Params,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let plan = (|| {
        let query = Query::parse(raw.as_deref())?;
        if let Some(source) = query.get("source") {
            no_body(&headers, "a copy (source=...)")?;
            // Bend: the engine's copy_object takes no digest, and checking
            // one would mean reading the whole source; a digest on a copy is
            // refused rather than ignored.
            if headers.contains_key(&X_HERE_DIGEST) {
                return Err(ApiError::invalid(
                    "X-HERE-Digest does not apply to a copy (source=...)",
                ));
            }
            return Ok(PutPlan::Copy {
                source: source.to_owned(),
            });
        }
        Ok(PutPlan::Upload {
            len: content_length(&headers)?,
            content_type: header(&headers, &CONTENT_TYPE)?,
            content_encoding: header(&headers, &CONTENT_ENCODING)?,
            digest: digest(&headers)?,
        })
    })();
    let info = with_body(app.store, &headers, body, move |store, reader| {
        require_layer(store, &layer)?;
        Ok(match plan? {
            PutPlan::Copy { source } => store.copy_object(&layer, &key, &source)?,
            PutPlan::Upload {
                len,
                content_type,
                content_encoding,
                digest,
            } => {
                let mut b = PartBody::new(reader, len);
                if let Some(ct) = content_type {
                    b = b.content_type(ct);
                }
                if let Some(ce) = content_encoding {
                    b = b.content_encoding(ce);
                }
                if let Some(d) = digest {
                    b = b.digest(d);
                }
                store.put_object(&layer, &key, b)?
            }
        })
    })
    .await?;
    let mut h = HeaderMap::new();
    if let Ok(v) = HeaderValue::from_str(&format!("\"{}\"", info.etag)) {
        h.insert(ETAG, v);
    }
    Ok((StatusCode::OK, h).into_response())
}

/// `GET /layers/{layer}/keys/{key}`: 200 with the object, or 206 with one
/// range (`Range` header or `range` query); 416 (with `Content-Range:
/// bytes */SIZE`) for a range the object cannot satisfy.
async fn get_blob(
    State(app): State<App>,
    Params(layer, key): Params,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let spec = Query::parse(raw.as_deref()).and_then(|q| range_spec(&headers, &q));
    let (blob, span, partial, first) = blocking(app.store, move |store| {
        require_layer(store, &layer)?;
        let blob = store.get(&layer, &key)?;
        let size = blob.size();
        let unsatisfiable = |e: ApiError| e.with_header(CONTENT_RANGE, &format!("bytes */{size}"));
        let (span, partial) = match spec.map_err(unsatisfiable)? {
            None => (0..size, false),
            Some(s) => {
                let span = s
                    .trim()
                    .parse::<ByteRange>()
                    .and_then(|r| r.resolve(size))
                    .map_err(|e| unsatisfiable(e.into()))?;
                (span, true)
            }
        };
        let first = body::first_window(&blob, span.start, span.end)?;
        Ok((blob, span, partial, first))
    })
    .await?;
    let mut h = object_headers(blob.info(), span.end - span.start);
    let status = if partial {
        let cr = format!(
            "bytes {}-{}/{}",
            span.start,
            span.end.saturating_sub(1),
            blob.size()
        );
        if let Ok(v) = HeaderValue::from_str(&cr) {
            h.insert(CONTENT_RANGE, v);
        }
        StatusCode::PARTIAL_CONTENT
    } else {
        StatusCode::OK
    };
    let body = body::blob_body(blob, first, span.start, span.end);
    Ok((status, h, body).into_response())
}

/// `HEAD /layers/{layer}/keys/{key}`: 200 with the object's headers, or 404.
async fn head_blob(
    State(app): State<App>,
    Params(layer, key): Params,
) -> Result<Response, ApiError> {
    let info = blocking(app.store, move |store| {
        require_layer(store, &layer)?;
        Ok(store.head(&layer, &key)?)
    })
    .await?;
    Ok((StatusCode::OK, object_headers(&info, info.size)).into_response())
}

/// `DELETE /layers/{layer}/keys/{key}`: 202, also for a missing key.
async fn delete_blob(
    State(app): State<App>,
    Params(layer, key): Params,
) -> Result<StatusCode, ApiError> {
    blocking(app.store, move |store| {
        require_layer(store, &layer)?;
        Ok(store.delete(&layer, &key)?)
    })
    .await?;
    Ok(StatusCode::ACCEPTED)
}

/// `GET /layers/{layer}/keys?parent=&deep=&limit=&pageToken=`.
async fn list_keys(
    State(app): State<App>,
    Path(layer): Path<String>,
    RawQuery(raw): RawQuery,
) -> Result<Response, ApiError> {
    let options = (|| {
        let q = Query::parse(raw.as_deref())?;
        let mut o = ListOptions::default().parent(q.get("parent").unwrap_or(""));
        if let Some(d) = q.get("deep") {
            o = o.deep(match d {
                _ if d.eq_ignore_ascii_case("true") => true,
                _ if d.eq_ignore_ascii_case("false") => false,
                _ => {
                    return Err(ApiError::invalid(format!(
                        "deep \"{}\" is neither true nor false",
                        shorten(d)
                    )))
                }
            });
        }
        if let Some(l) = q.get("limit") {
            let n = l.trim().parse::<usize>().map_err(|_| {
                ApiError::rule(
                    ErrorKind::BadRequest,
                    Reason::InvalidListLimit,
                    format!("limit \"{}\" is not a number", shorten(l)),
                )
            })?;
            o = o.limit(n);
        }
        if let Some(t) = q.get("pageToken") {
            o = o.page_token(t);
        }
        Ok(o)
    })();
    let page = blocking(app.store, move |store| {
        require_layer(store, &layer)?;
        Ok(store.list(&layer, &options?)?)
    })
    .await?;
    let items: Vec<serde_json::Value> = page
        .items
        .iter()
        .map(|item| match item {
            ListItem::Object(o) => json!({
                "name": o.key,
                "type": "object",
                "size": o.size,
                "lastModified": dates::rfc3339(o.last_modified),
            }),
            ListItem::Prefix(p) => json!({ "name": p, "type": "commonPrefix" }),
        })
        .collect();
    let mut out = json!({ "items": items });
    if let Some(t) = page.next_page_token {
        out["pageToken"] = json!(t);
    }
    Ok(json_response(StatusCode::OK, out))
}

// ----- multipart ------------------------------------------------------------

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct StartRequest {
    content_type: Option<String>,
    content_encoding: Option<String>,
}

/// `POST /layers/{layer}/keys/{key}` with `{"contentType", "contentEncoding"?}`
/// → 200 `{"multipartToken"}`.
async fn start_upload(
    State(app): State<App>,
    Params(layer, key): Params,
    body: Body,
) -> Result<Response, ApiError> {
    let req = json_body::<StartRequest>(body).await.and_then(|r| {
        let r = r.ok_or_else(|| ApiError::invalid("the body must be {\"contentType\": ...}"))?;
        let ct = r
            .content_type
            .filter(|ct| !ct.trim().is_empty())
            .ok_or_else(|| ApiError::invalid("contentType is required"))?;
        // Both come back as response headers of the object.
        for (name, v) in [
            ("contentType", Some(&ct)),
            ("contentEncoding", r.content_encoding.as_ref()),
        ] {
            if v.is_some_and(|v| HeaderValue::from_str(v).is_err()) {
                return Err(ApiError::invalid(format!(
                    "{name} is not valid header text"
                )));
            }
        }
        let mut o = UploadOptions::new(ct);
        if let Some(ce) = r.content_encoding {
            o = o.content_encoding(ce);
        }
        Ok(o)
    });
    let up = blocking(app.store, move |store| {
        require_layer(store, &layer)?;
        Ok(store.start_multipart(&layer, &key, req?)?)
    })
    .await?;
    Ok(json_response(
        StatusCode::OK,
        json!({ "multipartToken": up.to_string() }),
    ))
}

enum PartPlan {
    Copy {
        source: CopySource,
    },
    Upload {
        len: u64,
        content_type: Option<String>,
        digest: Option<Digest>,
    },
}

/// `POST /layers/{layer}/keysMultipart/{token}/parts?partNumber=N`: upload
/// mode (body, Content-Length, Content-Type = the upload's) or copy mode
/// (`source=KEY` + `Range` header or `range` query, empty body). Optional
/// X-HERE-Digest in both. → 200 `{"id"}`.
async fn upload_part(
    State(app): State<App>,
    Params(layer, upload): Params,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let plan = (|| {
        let q = Query::parse(raw.as_deref())?;
        let n = match q.get("partNumber") {
            None => {
                return Err(ApiError::rule(
                    ErrorKind::BadRequest,
                    Reason::InvalidPartNumber,
                    "partNumber is required",
                ))
            }
            Some(s) => s.trim().parse::<u32>().map_err(|_| {
                ApiError::rule(
                    ErrorKind::BadRequest,
                    Reason::InvalidPartNumber,
                    format!("partNumber \"{}\" is not a number in 1..=10000", shorten(s)),
                )
            })?,
        };
        let digest = digest(&headers)?;
        if let Some(source) = q.get("source") {
            no_body(&headers, "a part copy (source=...)")?;
            // Bend: a copy without any range is refused like an open one
            // (416, the engine's CopyRangeOpen): HERE wants both bounds.
            let spec = range_spec(&headers, &q)?.ok_or_else(|| {
                ApiError::rule(
                    ErrorKind::RangeNotSatisfiable,
                    Reason::CopyRangeOpen,
                    "a part copy needs a range bytes=first-last (Range header or range query)",
                )
            })?;
            let range = spec.trim().parse::<ByteRange>()?;
            let mut source = CopySource::new(source, range);
            if let Some(d) = digest {
                source = source.digest(d);
            }
            return Ok((n, PartPlan::Copy { source }));
        }
        Ok((
            n,
            PartPlan::Upload {
                len: content_length(&headers)?,
                content_type: header(&headers, &CONTENT_TYPE)?,
                digest,
            },
        ))
    })();
    let part = with_body(app.store, &headers, body, move |store, reader| {
        require_layer(store, &layer)?;
        let up = token(&upload)?;
        let (n, plan) = plan?;
        Ok(match plan {
            PartPlan::Copy { source } => store.copy_part(&layer, &up, n, source)?,
            PartPlan::Upload {
                len,
                content_type,
                digest,
            } => {
                let mut b = PartBody::new(reader, len);
                if let Some(ct) = content_type {
                    b = b.content_type(ct);
                }
                if let Some(d) = digest {
                    b = b.digest(d);
                }
                store.upload_part(&layer, &up, n, b)?
            }
        })
    })
    .await?;
    Ok(json_response(StatusCode::OK, json!({ "id": part.id })))
}

#[derive(Deserialize)]
struct CompleteRequest {
    parts: Option<Vec<CompletePart>>,
}

#[derive(Deserialize)]
struct CompletePart {
    id: String,
    number: u32,
}

/// `PUT /layers/{layer}/keysMultipart/{token}` with `{"parts": [{"id",
/// "number"}]}` → 204. A stale id is 400 and the upload stays open.
async fn complete_upload(
    State(app): State<App>,
    Params(layer, upload): Params,
    body: Body,
) -> Result<StatusCode, ApiError> {
    let parts = json_body::<CompleteRequest>(body).await.map(|r| {
        r.and_then(|r| r.parts).map(|ps| {
            ps.into_iter()
                .map(|p| PartRef {
                    number: p.number,
                    id: p.id,
                })
                .collect::<Vec<_>>()
        })
    });
    blocking(app.store, move |store| {
        require_layer(store, &layer)?;
        let up = token(&upload)?;
        match parts? {
            // Bend: HERE's missing or empty `parts` means every current
            // part; the engine's complete_multipart_with(&[]) is NoParts.
            None => store.complete_multipart(&layer, &up)?,
            Some(ps) if ps.is_empty() => store.complete_multipart(&layer, &up)?,
            Some(ps) => store.complete_multipart_with(&layer, &up, &ps)?,
        };
        Ok(())
    })
    .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `GET /layers/{layer}/keysMultipart/{token}` → 200 `{"status":
/// "completed"}`, or 404 while open or unknown.
async fn upload_status(
    State(app): State<App>,
    Params(layer, upload): Params,
) -> Result<Response, ApiError> {
    blocking(app.store, move |store| {
        require_layer(store, &layer)?;
        let up = token(&upload)?;
        match store.upload_status(&layer, &up)? {
            UploadStatus::Completed => Ok(()),
            // Bend: the engine reports an open upload (its parts and bytes);
            // HERE's status exists only once an upload has completed.
            _ => Err(ApiError::front(
                StatusCode::NOT_FOUND,
                codes::UPLOAD_NOT_COMPLETED,
                format!("upload {up} is still open: it has a status once completed"),
            )),
        }
    })
    .await?;
    Ok(json_response(
        StatusCode::OK,
        json!({ "status": "completed" }),
    ))
}

/// `DELETE /layers/{layer}/keysMultipart/{token}` → 202 on an open upload.
async fn cancel_upload(
    State(app): State<App>,
    Params(layer, upload): Params,
) -> Result<StatusCode, ApiError> {
    blocking(app.store, move |store| {
        require_layer(store, &layer)?;
        let up = token(&upload)?;
        Ok(store.abort_multipart(&layer, &up)?)
    })
    .await?;
    Ok(StatusCode::ACCEPTED)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                HeaderName::from_bytes(k.as_bytes()).expect("name"),
                HeaderValue::from_str(v).expect("value"),
            );
        }
        h
    }

    #[test]
    fn bearer_token() {
        let ok = headers(&[("authorization", "Bearer s3cret")]);
        assert!(authorized(&ok, "s3cret"));
        assert!(authorized(
            &headers(&[("authorization", "bearer  s3cret ")]),
            "s3cret"
        ));
        assert!(!authorized(&ok, "s3cre"));
        assert!(!authorized(
            &headers(&[("authorization", "Basic s3cret")]),
            "s3cret"
        ));
        assert!(!authorized(&HeaderMap::new(), "s3cret"));
    }

    #[test]
    fn correlation_ids() {
        let given = headers(&[("x-correlation-id", "abc-123")]);
        assert_eq!(correlation_id(&given), "abc-123");
        let bad = headers(&[("x-correlation-id", "no spaces")]);
        let fresh = correlation_id(&bad);
        assert_eq!(fresh.len(), 36);
        assert_ne!(fresh, correlation_id(&bad));
    }

    #[test]
    fn query_and_lengths() {
        let q = Query::parse(Some("partNumber=2&source=a%2Fb")).expect("query");
        assert_eq!(q.get("source"), Some("a/b"));
        assert_eq!(q.get("partNumber"), Some("2"));
        let twice = Query::parse(Some("limit=1&limit=2")).map(|_| ());
        assert_eq!(twice.map_err(|e| e.code), Err("InvalidArgument"));
        assert_eq!(
            content_length(&headers(&[("content-length", "12")])).ok(),
            Some(12)
        );
        assert_eq!(content_length(&HeaderMap::new()).ok(), Some(0));
        let chunked = content_length(&headers(&[("transfer-encoding", "chunked")]));
        assert_eq!(chunked.map_err(|e| e.status.as_u16()), Err(411));
        assert!(no_body(&headers(&[("content-length", "0")]), "x").is_ok());
        assert!(no_body(&headers(&[("content-length", "3")]), "x").is_err());
        let two_ranges = headers(&[("range", "bytes=0-1"), ("range", "bytes=2-3")]);
        let r = range_spec(&two_ranges, &Query::parse(None).expect("q"));
        assert_eq!(r.map_err(|e| e.status.as_u16()), Err(416));
    }
}
