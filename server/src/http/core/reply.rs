//! Responses and errors. Every error a handler can meet becomes an
//! [`ApiError`], and [`ApiError::status`] is the one place that decides its
//! HTTP status. Messages say what went wrong and what to do; they never name
//! a server path.

use crate::accounts::AccountError;
use crate::store::StoreError;
use crate::uploads::UploadError;
use nimbus_common::paths::PathError;
use nimbus_common::wire::{ErrorBody, ERR_CONTENT_UNKNOWN};
use serde::Serialize;
use std::io::{self, Read};
use tiny_http::{Header, Response, StatusCode};

/// The Content-Security-Policy of every page (set by [`Reply::html`]):
/// nothing from elsewhere, no inline script (only the server's own,
/// embedded `app.js`), previews' images and media from this server only,
/// and no framing by another site.
pub const PAGE_CSP: &str = "default-src 'none'; script-src 'self'; style-src 'unsafe-inline'; \
     img-src 'self'; media-src 'self'; connect-src 'self'; base-uri 'none'; form-action 'self'; \
     frame-ancestors 'none'";

pub enum Body {
    Empty,
    Bytes(Vec<u8>),
    /// A reader and the exact number of bytes it yields.
    Stream(Box<dyn Read + Send>, u64),
    /// A reader of a length nobody knows before it ends (a listing written
    /// as the catalog is walked): sent with chunked transfer encoding.
    Chunked(Box<dyn Read + Send>),
}

pub struct Reply {
    pub status: u16,
    headers: Vec<(String, String)>,
    body: Body,
}

impl Reply {
    pub fn new(status: u16) -> Reply {
        Reply {
            status,
            headers: Vec::new(),
            body: Body::Empty,
        }
    }

    pub fn header(mut self, name: &str, value: impl Into<String>) -> Reply {
        self.headers.push((name.to_string(), value.into()));
        self
    }

    pub fn body(mut self, body: Body) -> Reply {
        self.body = body;
        self
    }

    pub fn json<T: Serialize + ?Sized>(status: u16, value: &T) -> Reply {
        let bytes = serde_json::to_vec(value).expect("wire types serialise");
        Reply::new(status)
            .header("Content-Type", "application/json")
            .body(Body::Bytes(bytes))
    }

    /// A page, with the one Content-Security-Policy every page has.
    pub fn html(status: u16, page: String) -> Reply {
        Reply::new(status)
            .header("Content-Type", "text/html; charset=utf-8")
            .header("Content-Security-Policy", PAGE_CSP)
            .body(Body::Bytes(page.into_bytes()))
    }

    pub fn text(status: u16, text: &str) -> Reply {
        Reply::new(status)
            .header("Content-Type", "text/plain; charset=utf-8")
            .body(Body::Bytes(text.as_bytes().to_vec()))
    }

    fn has(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The caching every response gets unless its handler chose: nothing
    /// is stored (`no-store`, which no cache, shared or private, may
    /// keep). A handler's other choice for an answer to a request that
    /// carried credentials (`credentialed`: an `Authorization` or a
    /// cookie) becomes `private` (as downloads' `private, no-cache`), and
    /// such answers carry `Vary: Authorization, Cookie`. Only what is the
    /// same for everyone stays shared: `public` or `immutable` (the
    /// versioned script).
    pub fn with_cache_defaults(mut self, credentialed: bool) -> Reply {
        let chosen = self.has("Cache-Control").map(str::to_string);
        let public = chosen
            .as_deref()
            .is_some_and(|c| c.contains("public") || c.contains("immutable"));
        match chosen {
            None => self = self.header("Cache-Control", "no-store"),
            Some(c)
                if credentialed && !public && !c.contains("private") && !c.contains("no-store") =>
            {
                self.headers
                    .retain(|(k, _)| !k.eq_ignore_ascii_case("Cache-Control"));
                self = self.header("Cache-Control", format!("private, {c}"));
            }
            Some(_) => {}
        }
        if !public && self.has("Vary").is_none() {
            self = self.header("Vary", "Authorization, Cookie");
        }
        self
    }

    pub fn into_response(self) -> Response<Box<dyn Read + Send>> {
        let (reader, len): (Box<dyn Read + Send>, Option<usize>) = match self.body {
            Body::Empty => (Box::new(io::empty()), Some(0)),
            Body::Bytes(b) => {
                let n = b.len();
                (Box::new(io::Cursor::new(b)), Some(n))
            }
            Body::Stream(r, n) => (r, Some(n as usize)),
            Body::Chunked(r) => (r, None),
        };
        let headers = self
            .headers
            .into_iter()
            .chain([("X-Content-Type-Options".to_string(), "nosniff".to_string())])
            .filter_map(|(k, v)| Header::from_bytes(k.as_bytes(), v.as_bytes()).ok())
            .collect();
        // tiny_http switches to chunked encoding above 32 KiB by default;
        // downloads need Content-Length (progress bars, resume), so never.
        Response::new(StatusCode(self.status), headers, reader, len, None)
            .with_chunked_threshold(usize::MAX)
    }
}

/// Everything a request can fail with.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{message}")]
    BadRequest { code: &'static str, message: String },
    #[error("{0}")]
    Unauthorized(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("too many failed attempts; retry in {retry_after} s")]
    TooManyAttempts { retry_after: u64 },
    #[error("no such file or route")]
    NotFound,
    #[error("method not allowed; this route takes {allow}")]
    MethodNotAllowed { allow: &'static str },
    #[error("uploads need a Content-Length (or chunked Transfer-Encoding)")]
    LengthRequired,
    #[error("body is larger than the server's limit of {limit} bytes")]
    TooLarge { limit: u64 },
    /// The request does not fit the resource's state; `offset` is where a
    /// resumable upload stands.
    #[error("{message}")]
    Conflict {
        code: &'static str,
        message: String,
        offset: Option<u64>,
    },
    #[error("the server does not hold this content; send the bytes with PUT")]
    ContentUnknown,
    /// A manifest names chunks the caller's space lacks (listed).
    #[error("{} chunk(s) named are not in your space; send them, then commit again", .0.len())]
    ChunksMissing(Vec<nimbus_common::hash::ContentHash>),
    #[error("range not satisfiable")]
    RangeNotSatisfiable { size: u64 },
    /// An `If-Match` or `If-Unmodified-Since` that does not hold.
    #[error("the file is not the version the request's If-Match or If-Unmodified-Since names")]
    PreconditionFailed,
    #[error("the server's disk is full; free space on the server and retry")]
    StorageFull,
    #[error("the server is busy; retry shortly")]
    Busy,
    #[error("the request body stopped arriving; nothing of it was kept")]
    BodyTimeout,
    /// Logged in full, answered without details.
    #[error("internal error: {0}")]
    Internal(String),
    /// The content store (a bucket) cannot be reached; logged in full.
    #[error("the content store is unavailable: {0}")]
    StoreUnavailable(String),
}

impl ApiError {
    pub fn bad(code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError::BadRequest {
            code,
            message: message.into(),
        }
    }

    pub fn status(&self) -> u16 {
        match self {
            ApiError::BadRequest { .. } => 400,
            ApiError::Unauthorized(_) => 401,
            ApiError::TooManyAttempts { .. } => 429,
            ApiError::Forbidden(_) => 403,
            ApiError::NotFound => 404,
            ApiError::MethodNotAllowed { .. } => 405,
            ApiError::LengthRequired => 411,
            ApiError::TooLarge { .. } => 413,
            ApiError::ContentUnknown | ApiError::Conflict { .. } | ApiError::ChunksMissing(_) => {
                409
            }
            ApiError::RangeNotSatisfiable { .. } => 416,
            ApiError::PreconditionFailed => 412,
            ApiError::StorageFull => 507,
            ApiError::Busy => 503,
            ApiError::BodyTimeout => 408,
            ApiError::Internal(_) => 500,
            ApiError::StoreUnavailable(_) => 503,
        }
    }

    fn code(&self) -> &'static str {
        match self {
            ApiError::BadRequest { code, .. } => code,
            ApiError::Unauthorized(_) => "unauthorized",
            ApiError::TooManyAttempts { .. } => "too_many_attempts",
            ApiError::Forbidden(_) => "forbidden",
            ApiError::NotFound => "not_found",
            ApiError::MethodNotAllowed { .. } => "method_not_allowed",
            ApiError::LengthRequired => "length_required",
            ApiError::TooLarge { .. } => "too_large",
            ApiError::Conflict { code, .. } => code,
            ApiError::ContentUnknown => ERR_CONTENT_UNKNOWN,
            ApiError::ChunksMissing(_) => nimbus_common::wire::ERR_CHUNKS_MISSING,
            ApiError::RangeNotSatisfiable { .. } => "range_not_satisfiable",
            ApiError::PreconditionFailed => "precondition_failed",
            ApiError::StorageFull => "storage_full",
            ApiError::Busy => "busy",
            ApiError::BodyTimeout => "body_timeout",
            ApiError::Internal(_) => "internal",
            ApiError::StoreUnavailable(_) => "store_unavailable",
        }
    }

    pub fn into_reply(self) -> Reply {
        let message = match &self {
            ApiError::Internal(_) => {
                "internal server error; the server log has details".to_string()
            }
            ApiError::StoreUnavailable(_) => {
                "the content store is unavailable; nothing was changed, retry later".to_string()
            }
            other => other.to_string(),
        };
        let error = self.code().to_string();
        let mut reply = match &self {
            ApiError::ChunksMissing(missing) => Reply::json(
                self.status(),
                &nimbus_common::wire::ChunksMissing {
                    error,
                    message,
                    missing: missing.clone(),
                },
            ),
            _ => Reply::json(self.status(), &ErrorBody { error, message }),
        };
        match self {
            ApiError::MethodNotAllowed { allow } => reply = reply.header("Allow", allow),
            ApiError::RangeNotSatisfiable { size } => {
                reply = reply.header("Content-Range", format!("bytes */{size}"))
            }
            ApiError::Busy => {
                reply = reply
                    .header("Retry-After", "1")
                    .header("Connection", "close")
            }
            ApiError::StoreUnavailable(_) => reply = reply.header("Retry-After", "10"),
            ApiError::Conflict {
                offset: Some(offset),
                ..
            } => reply = reply.header("Upload-Offset", offset.to_string()),
            ApiError::Unauthorized(_) => {
                reply = reply.header("WWW-Authenticate", "Bearer realm=\"nimbus\"")
            }
            ApiError::TooManyAttempts { retry_after } => {
                reply = reply.header("Retry-After", retry_after.to_string())
            }
            _ => {}
        }
        reply
    }
}

impl From<crate::store::CommitError> for ApiError {
    fn from(e: crate::store::CommitError) -> ApiError {
        use crate::store::CommitError;
        match e {
            CommitError::ChunksMissing(missing) => ApiError::ChunksMissing(missing),
            CommitError::Bad(why) => ApiError::bad("bad_manifest", why),
            CommitError::Store(e) => e.into(),
        }
    }
}

impl From<PathError> for ApiError {
    fn from(e: PathError) -> ApiError {
        ApiError::bad("bad_path", e.to_string())
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> ApiError {
        match e {
            StoreError::HashMismatch { .. } => ApiError::bad("hash_mismatch", e.to_string()),
            StoreError::TooLarge { limit } => ApiError::TooLarge { limit },
            StoreError::BodyIncomplete => ApiError::bad("body_incomplete", e.to_string()),
            StoreError::BodyTimeout => ApiError::BodyTimeout,
            StoreError::ContentUnknown => ApiError::ContentUnknown,
            StoreError::NotFound => ApiError::NotFound,
            ref e if e.is_storage_full() => ApiError::StorageFull,
            StoreError::Io(ref io) if crate::store::backend::is_unavailable(io) => {
                ApiError::StoreUnavailable(e.to_string())
            }
            StoreError::BlobMissing | StoreError::Io(_) => ApiError::Internal(e.to_string()),
        }
    }
}

/// An account operation that failed for a reason not the client's: a
/// full disk is 507 (as for every route that writes), the rest 500.
impl From<AccountError> for ApiError {
    fn from(e: AccountError) -> ApiError {
        match &e {
            AccountError::Io { source, .. } if crate::store::is_storage_full(source) => {
                ApiError::StorageFull
            }
            _ => ApiError::Internal(e.to_string()),
        }
    }
}

impl From<io::Error> for ApiError {
    fn from(e: io::Error) -> ApiError {
        StoreError::Io(e).into()
    }
}

impl From<UploadError> for ApiError {
    fn from(e: UploadError) -> ApiError {
        let conflict = |code, offset| ApiError::Conflict {
            code,
            message: e.to_string(),
            offset,
        };
        match e {
            UploadError::NotFound => ApiError::NotFound,
            UploadError::OtherMachine(_) => ApiError::Forbidden(e.to_string()),
            UploadError::Offset { offset } => conflict("offset_mismatch", Some(offset)),
            UploadError::Busy => conflict("upload_busy", None),
            UploadError::TooMany => conflict("too_many_uploads", None),
            UploadError::Bad(m) => ApiError::bad("bad_range", m),
            UploadError::Path(p) => p.into(),
            UploadError::TooLarge { limit } => ApiError::TooLarge { limit },
            UploadError::Incomplete { .. } => ApiError::bad("body_incomplete", e.to_string()),
            UploadError::Store(s) => s.into(),
        }
    }
}
