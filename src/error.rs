//! Errors: one typed [`Error`] for every fallible call, and its [`ErrorKind`].

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

/// A partstore error. Every message names the offending value.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The request breaks a rule of the SPEC.
    #[error("bad request: {0}")]
    BadRequest(String),
    /// A layer, key or upload does not exist.
    #[error("not found: {0}")]
    NotFound(String),
    /// The thing to create exists already, or the store is locked.
    #[error("conflict: {0}")]
    Conflict(String),
    /// A size is over its limit.
    #[error("too large: {0}")]
    TooLarge(String),
    /// A byte range is malformed or outside the object.
    #[error("range not satisfiable: {0}")]
    RangeNotSatisfiable(String),
    /// Stored data or metadata failed its checksum or is inconsistent.
    #[error("corrupt: {0}")]
    Corrupt(String),
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
    /// reopened, because the state on disk is no longer known.
    #[error("i/o error: store is poisoned by an earlier failure ({0}); reopen it")]
    Poisoned(String),
}

impl Error {
    /// The kind of this error, for mapping to a status code.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::BadRequest(_) => ErrorKind::BadRequest,
            Error::NotFound(_) => ErrorKind::NotFound,
            Error::Conflict(_) => ErrorKind::Conflict,
            Error::TooLarge(_) => ErrorKind::TooLarge,
            Error::RangeNotSatisfiable(_) => ErrorKind::RangeNotSatisfiable,
            Error::Corrupt(_) => ErrorKind::Corrupt,
            Error::Io { .. } | Error::Poisoned(_) => ErrorKind::Io,
        }
    }

    /// The HTTP status code of this error's kind.
    pub fn http_status(&self) -> u16 {
        self.kind().http_status()
    }

    pub(crate) fn io(context: impl Into<String>, source: std::io::Error) -> Error {
        Error::Io {
            context: context.into(),
            source,
        }
    }
}

/// Shorthands that build errors with a formatted message.
macro_rules! bad_request { ($($t:tt)*) => { $crate::error::Error::BadRequest(format!($($t)*)) } }
macro_rules! not_found { ($($t:tt)*) => { $crate::error::Error::NotFound(format!($($t)*)) } }
macro_rules! conflict { ($($t:tt)*) => { $crate::error::Error::Conflict(format!($($t)*)) } }
macro_rules! too_large { ($($t:tt)*) => { $crate::error::Error::TooLarge(format!($($t)*)) } }
macro_rules! unsatisfiable { ($($t:tt)*) => { $crate::error::Error::RangeNotSatisfiable(format!($($t)*)) } }
macro_rules! corrupt { ($($t:tt)*) => { $crate::error::Error::Corrupt(format!($($t)*)) } }
pub(crate) use {bad_request, conflict, corrupt, not_found, too_large, unsatisfiable};
