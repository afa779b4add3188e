//! Errors: one typed [`Error`] for every fallible call, its [`ErrorKind`]
//! (the HTTP status class) and its [`Reason`] (the rule that was broken).

use std::fmt;

/// The result type of every fallible partstore call.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What kind of failure an [`Error`] is, with the HTTP status a server should
/// answer with. Servers map errors through this instead of matching variants.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The request breaks a rule of the SPEC (400).
    BadRequest,
    /// A layer, key or upload does not exist (404).
    NotFound,
    /// The thing to create exists already, or the store is locked (409).
    Conflict,
    /// A declared or resulting size is over its limit (413).
    TooLarge,
    /// A byte range is malformed or outside the object (416).
    RangeNotSatisfiable,
    /// Stored bytes or records failed their checksum (500).
    Corrupt,
    /// The operating system reported an I/O failure (500).
    Io,
}

impl ErrorKind {
    /// The HTTP status code for this kind: 400, 404, 409, 413, 416, 500, 500.
    pub fn http_status(self) -> u16 {
        match self {
            ErrorKind::BadRequest => 400,
            ErrorKind::NotFound => 404,
            ErrorKind::Conflict => 409,
            ErrorKind::TooLarge => 413,
            ErrorKind::RangeNotSatisfiable => 416,
            ErrorKind::Corrupt | ErrorKind::Io => 500,
        }
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = match self {
            ErrorKind::BadRequest => "bad request",
            ErrorKind::NotFound => "not found",
            ErrorKind::Conflict => "conflict",
            ErrorKind::TooLarge => "too large",
            ErrorKind::RangeNotSatisfiable => "range not satisfiable",
            ErrorKind::Corrupt => "corrupt",
            ErrorKind::Io => "i/o error",
        };
        f.write_str(s)
    }
}

/// The rule an [`Error`] reports as broken, so a front maps errors to its
/// own codes without reading messages ([`Error::reason`]). Each variant
/// documents its [`ErrorKind`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Reason {
    /// A layer id breaks the layer id rules (BadRequest).
    InvalidLayerId,
    /// A key breaks the layer's key rules (BadRequest).
    InvalidKey,
    /// A part number outside 1..=10000 (BadRequest).
    InvalidPartNumber,
    /// A digest that does not parse as `ALGORITHM:HEX` (BadRequest).
    InvalidDigest,
    /// A byte range that does not parse, or that the object cannot satisfy
    /// (RangeNotSatisfiable).
    InvalidRange,
    /// A page token the store did not issue for this listing (BadRequest).
    InvalidPageToken,
    /// A list or page limit outside 1..=1000 (BadRequest).
    InvalidListLimit,
    /// A part id that this store never issued in that form (BadRequest).
    InvalidPartId,
    /// User metadata that breaks its rules (BadRequest).
    InvalidMetadata,
    /// An option or argument outside its allowed values (BadRequest).
    InvalidArgument,
    /// The layer does not exist (NotFound).
    UnknownLayer,
    /// The key does not exist in the layer (NotFound).
    UnknownKey,
    /// The upload token is unknown in this layer, aborted or expired
    /// (NotFound).
    UnknownUpload,
    /// The layer exists already (Conflict).
    LayerExists,
    /// The layer still holds objects or open uploads (Conflict).
    LayerNotEmpty,
    /// Another `Store` has the directory open (Conflict).
    StoreLocked,
    /// The upload changed while the call ran (Conflict).
    UploadBusy,
    /// The body does not match its declared digest (BadRequest).
    DigestMismatch,
    /// The body is shorter or longer than its declared length (BadRequest).
    BodyLengthMismatch,
    /// The content type differs from the layer's or upload's (BadRequest).
    ContentTypeMismatch,
    /// The content encoding differs from the layer's or upload's
    /// (BadRequest).
    ContentEncodingMismatch,
    /// A part over 96 MiB, declared or read (TooLarge).
    PartTooLarge,
    /// A single `put_object` over 192 MiB, declared or read (TooLarge).
    ObjectTooLarge,
    /// Parts that add up to more than 500 GiB at complete (TooLarge).
    UploadTooLarge,
    /// A non-last part under 5 MiB at complete (BadRequest).
    PartTooSmall,
    /// A non-last part whose size is not a multiple of 1 MiB at complete
    /// (BadRequest).
    PartNotMibMultiple,
    /// Part numbers that are not exactly 1..=N at complete (BadRequest).
    PartsNotConsecutive,
    /// A part number listed twice at complete (BadRequest).
    PartListedTwice,
    /// A listed part number that has no part at complete (BadRequest).
    PartNotUploaded,
    /// A listed part id that is not the current id of its number
    /// (BadRequest).
    StalePartId,
    /// A complete with no parts (BadRequest).
    NoParts,
    /// The upload was completed already (BadRequest).
    UploadCompleted,
    /// The upload is still open: it has published no object (BadRequest).
    UploadNotCompleted,
    /// A copy range whose start is not a multiple of 1 MiB
    /// (RangeNotSatisfiable).
    CopyRangeUnaligned,
    /// A copy range without both bounds (RangeNotSatisfiable).
    CopyRangeOpen,
    /// A copy source that was deleted or replaced during the copy
    /// (NotFound).
    CopySourceChanged,
    /// Stored bytes failed their block CRC32C (Corrupt).
    ChecksumMismatch,
    /// A record or file on disk is malformed or inconsistent (Corrupt).
    CorruptRecord,
    /// An earlier fsync or write failed; the store refuses writes until it
    /// is reopened (Io).
    StorePoisoned,
    /// The file system is full (Io): free space through `delete`,
    /// `abort_multipart` and `compact`, then retry.
    NoSpace,
}

/// A partstore error. Every message names the offending value; the fields
/// carry the [`Reason`] and the evidence a caller branches on.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The request breaks a rule of the SPEC.
    #[error("bad request: {message}")]
    BadRequest {
        /// The rule broken.
        reason: Reason,
        /// What was wrong, naming the value.
        message: String,
        /// The part number concerned, where there is one.
        part: Option<u32>,
    },
    /// A layer, key or upload does not exist.
    #[error("not found: {message}")]
    NotFound {
        /// What is missing.
        reason: Reason,
        /// What was wrong, naming the value.
        message: String,
    },
    /// The thing to create exists already, or the store is locked.
    #[error("conflict: {message}")]
    Conflict {
        /// The conflict.
        reason: Reason,
        /// What was wrong, naming the value.
        message: String,
    },
    /// A size is over its limit.
    #[error("too large: {message}")]
    TooLarge {
        /// The limit broken.
        reason: Reason,
        /// What was wrong, naming the value.
        message: String,
        /// The part number concerned, where there is one.
        part: Option<u32>,
    },
    /// A byte range is malformed or outside the object.
    #[error("range not satisfiable: {message}")]
    RangeNotSatisfiable {
        /// The range rule broken.
        reason: Reason,
        /// What was wrong, naming the value.
        message: String,
    },
    /// Stored data or metadata failed its checksum or is inconsistent.
    #[error("corrupt: {message}")]
    Corrupt {
        /// What failed.
        reason: Reason,
        /// What was wrong, naming the segment and offset.
        message: String,
        /// The segment id, where known.
        segment: Option<u64>,
        /// The byte offset in that segment, where known.
        offset: Option<u64>,
    },
    /// An I/O call failed.
    #[error("i/o error: {context}: {source}")]
    Io {
        /// What was being done, naming the file.
        context: String,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
    /// An earlier write or fsync failed; the store refuses writes until it is
    /// reopened, because the state on disk is no longer known
    /// ([`Reason::StorePoisoned`]).
    #[error("i/o error: store is poisoned by an earlier failure ({0}); reopen it")]
    Poisoned(String),
}

impl Error {
    /// The kind of this error, for mapping to a status code.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::BadRequest { .. } => ErrorKind::BadRequest,
            Error::NotFound { .. } => ErrorKind::NotFound,
            Error::Conflict { .. } => ErrorKind::Conflict,
            Error::TooLarge { .. } => ErrorKind::TooLarge,
            Error::RangeNotSatisfiable { .. } => ErrorKind::RangeNotSatisfiable,
            Error::Corrupt { .. } => ErrorKind::Corrupt,
            Error::Io { .. } | Error::Poisoned(_) => ErrorKind::Io,
        }
    }

    /// The rule this error reports as broken. `None` only for an I/O error
    /// that is neither a full disk nor a poisoned store.
    pub fn reason(&self) -> Option<Reason> {
        match self {
            Error::BadRequest { reason, .. }
            | Error::NotFound { reason, .. }
            | Error::Conflict { reason, .. }
            | Error::TooLarge { reason, .. }
            | Error::RangeNotSatisfiable { reason, .. }
            | Error::Corrupt { reason, .. } => Some(*reason),
            Error::Poisoned(_) => Some(Reason::StorePoisoned),
            Error::Io { source, .. } if is_no_space(source) => Some(Reason::NoSpace),
            Error::Io { .. } => None,
        }
    }

    /// The HTTP status code of this error's kind.
    pub fn http_status(&self) -> u16 {
        self.kind().http_status()
    }

    /// The part number the error is about (`PartTooSmall`, `StalePartId`,
    /// `PartTooLarge`, ...), where there is one.
    pub fn part_number(&self) -> Option<u32> {
        match self {
            Error::BadRequest { part, .. } | Error::TooLarge { part, .. } => *part,
            _ => None,
        }
    }

    /// Where a `Corrupt` error was found: segment id and byte offset.
    pub fn location(&self) -> Option<(u64, u64)> {
        match self {
            Error::Corrupt {
                segment: Some(s),
                offset: Some(o),
                ..
            } => Some((*s, *o)),
            _ => None,
        }
    }

    /// The message without the kind prefix.
    pub fn message(&self) -> String {
        match self {
            Error::BadRequest { message, .. }
            | Error::NotFound { message, .. }
            | Error::Conflict { message, .. }
            | Error::TooLarge { message, .. }
            | Error::RangeNotSatisfiable { message, .. }
            | Error::Corrupt { message, .. } => message.clone(),
            other => other.to_string(),
        }
    }

    /// Builds an error of `kind` for the rule `reason`, for callers (CLIs,
    /// fronts) that check rules of their own.
    pub fn new(kind: ErrorKind, reason: Reason, message: impl Into<String>) -> Error {
        let message = message.into();
        match kind {
            ErrorKind::BadRequest => Error::BadRequest {
                reason,
                message,
                part: None,
            },
            ErrorKind::NotFound => Error::NotFound { reason, message },
            ErrorKind::Conflict => Error::Conflict { reason, message },
            ErrorKind::TooLarge => Error::TooLarge {
                reason,
                message,
                part: None,
            },
            ErrorKind::RangeNotSatisfiable => Error::RangeNotSatisfiable { reason, message },
            ErrorKind::Corrupt => Error::Corrupt {
                reason,
                message,
                segment: None,
                offset: None,
            },
            ErrorKind::Io => Error::Io {
                context: message,
                source: std::io::Error::other(format!("{reason:?}")),
            },
        }
    }

    /// Attaches the part number the error is about.
    pub(crate) fn with_part(mut self, n: u32) -> Error {
        if let Error::BadRequest { part, .. } | Error::TooLarge { part, .. } = &mut self {
            *part = Some(n);
        }
        self
    }

    /// Marks a `Corrupt` error as a block checksum mismatch.
    pub(crate) fn checksum(mut self) -> Error {
        if let Error::Corrupt { reason, .. } = &mut self {
            *reason = Reason::ChecksumMismatch;
        }
        self
    }

    /// Attaches where a `Corrupt` error was found.
    pub(crate) fn at(mut self, seg: u64, off: u64) -> Error {
        if let Error::Corrupt {
            segment, offset, ..
        } = &mut self
        {
            *segment = Some(seg);
            *offset = Some(off);
        }
        self
    }

    pub(crate) fn io(context: impl Into<String>, source: std::io::Error) -> Error {
        Error::Io {
            context: context.into(),
            source,
        }
    }
}

/// ENOSPC or EDQUOT: the disk (or quota) is full.
fn is_no_space(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        std::io::ErrorKind::StorageFull | std::io::ErrorKind::QuotaExceeded
    ) || matches!(e.raw_os_error(), Some(28) | Some(122))
}

/// Shorthands that build errors with a reason and a formatted message:
/// `bad_request!(Reason::InvalidKey, "key {k} ...")`.
macro_rules! bad_request { ($r:expr, $($t:tt)*) => { $crate::error::Error::BadRequest { reason: $r, message: format!($($t)*), part: None } } }
macro_rules! not_found { ($r:expr, $($t:tt)*) => { $crate::error::Error::NotFound { reason: $r, message: format!($($t)*) } } }
macro_rules! conflict { ($r:expr, $($t:tt)*) => { $crate::error::Error::Conflict { reason: $r, message: format!($($t)*) } } }
macro_rules! too_large { ($r:expr, $($t:tt)*) => { $crate::error::Error::TooLarge { reason: $r, message: format!($($t)*), part: None } } }
macro_rules! unsatisfiable { ($r:expr, $($t:tt)*) => { $crate::error::Error::RangeNotSatisfiable { reason: $r, message: format!($($t)*) } } }
/// `corrupt!("...")` is a malformed record ([`Reason::CorruptRecord`]).
macro_rules! corrupt { ($($t:tt)*) => { $crate::error::Error::Corrupt { reason: $crate::error::Reason::CorruptRecord, message: format!($($t)*), segment: None, offset: None } } }
pub(crate) use {bad_request, conflict, corrupt, not_found, too_large, unsatisfiable};
