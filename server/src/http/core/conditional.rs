//! Conditional requests (RFC 9110 section 13): `If-Match`,
//! `If-Unmodified-Since`, `If-None-Match` and `If-Modified-Since`,
//! evaluated in the order section 13.2.2 gives, against a representation's
//! strong ETag and last-modified time. (`If-Range` belongs to the range
//! step, [`super::range::select`].)

use super::request::header;
use std::time::UNIX_EPOCH;
use tiny_http::{Method, Request};

/// What the preconditions say.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Go on (to Range, then the whole).
    Proceed,
    /// `304 Not Modified`.
    NotModified,
    /// `412 Precondition Failed`.
    Failed,
}

/// The validators of what would be sent.
pub struct Validators<'a> {
    /// A strong ETag, quoted.
    pub etag: &'a str,
    /// The `Last-Modified` sent, unix seconds; `None` where there is none
    /// (the date conditions are then ignored, as RFC 9110 says).
    pub last_modified: Option<i64>,
    /// Whether an unchanged `Last-Modified` proves the representation
    /// unchanged: false when it changed twice within that second (an
    /// `If-Modified-Since` then gets the whole, never a wrong `304`, and
    /// an `If-Unmodified-Since` fails, never a wrong go-ahead).
    pub date_is_exact: bool,
}

/// Evaluates the request's preconditions.
pub fn evaluate(req: &Request, v: &Validators) -> Outcome {
    let read = matches!(req.method(), Method::Get | Method::Head);
    // 1. If-Match, else 2. If-Unmodified-Since.
    if let Some(im) = header(req, "If-Match") {
        if !strong_match(im, v.etag) {
            return Outcome::Failed;
        }
    } else if let (Some(t), Some(lm)) = (
        header(req, "If-Unmodified-Since").and_then(http_date),
        v.last_modified,
    ) {
        if lm > t || !v.date_is_exact {
            return Outcome::Failed;
        }
    }
    // 3. If-None-Match, else 4. If-Modified-Since (GET and HEAD only).
    if let Some(inm) = header(req, "If-None-Match") {
        if weak_match(inm, v.etag) {
            return if read {
                Outcome::NotModified
            } else {
                Outcome::Failed
            };
        }
    } else if let (true, Some(t), Some(lm)) = (
        read,
        header(req, "If-Modified-Since").and_then(http_date),
        v.last_modified,
    ) {
        if v.date_is_exact && lm <= t {
            return Outcome::NotModified;
        }
    }
    Outcome::Proceed
}

/// Whether the request has a condition on dates (so [`Validators`]'s
/// `date_is_exact` matters).
pub fn asks_dates(req: &Request) -> bool {
    header(req, "If-Modified-Since").is_some() || header(req, "If-Unmodified-Since").is_some()
}

/// `If-None-Match`: weak comparison, or `*`.
pub fn weak_match(list: &str, etag: &str) -> bool {
    list.split(',')
        .map(|t| t.trim().trim_start_matches("W/"))
        .any(|t| t == "*" || t == etag)
}

/// `If-Match`: strong comparison (a weak tag never matches), or `*`.
fn strong_match(list: &str, etag: &str) -> bool {
    list.split(',')
        .map(str::trim)
        .any(|t| t == "*" || t == etag)
}

/// An HTTP date as unix seconds; `None` for anything else (a condition
/// with an invalid date is ignored, as RFC 9110 says).
fn http_date(text: &str) -> Option<i64> {
    let t = httpdate::parse_http_date(text.trim()).ok()?;
    Some(t.duration_since(UNIX_EPOCH).ok()?.as_secs() as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_compare_as_the_rfc_says() {
        assert!(weak_match("\"a\", W/\"b\"", "\"b\""));
        assert!(weak_match("*", "\"b\""));
        assert!(!weak_match("\"a\"", "\"b\""));
        assert!(strong_match("\"x\", \"b\"", "\"b\""));
        assert!(!strong_match("W/\"b\"", "\"b\""));
        assert!(strong_match("*", "\"b\""));
    }

    #[test]
    fn dates_parse_and_bad_ones_are_ignored() {
        assert_eq!(http_date("Sun, 06 Nov 1994 08:49:37 GMT"), Some(784111777));
        assert_eq!(http_date("yesterday"), None);
    }
}
