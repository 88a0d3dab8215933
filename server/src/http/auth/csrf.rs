//! Checks every browser form goes through: a same-origin `Origin` before a
//! session exists, the session's CSRF token once it does.

use super::Identity;
use crate::http::core::request::header;
use crate::http::core::ApiError;
use tiny_http::Request;

/// A request from a browser session must carry the session's CSRF token
/// (a form field, or the `X-CSRF-Token` header for scripts); a request with
/// a device token needs none (no browser sends it by itself).
pub fn check_csrf(who: &Identity, given: Option<&str>) -> Result<(), ApiError> {
    match &who.session {
        None => Ok(()),
        Some((_, csrf)) if given.is_some_and(|t| constant_time_eq(t, csrf)) => Ok(()),
        Some(_) => Err(ApiError::Forbidden(
            "missing or wrong CSRF token; reload the page and try again".into(),
        )),
    }
}

/// The CSRF check of a script's request: the `X-CSRF-Token` header.
pub fn check_csrf_header(who: &Identity, req: &Request) -> Result<(), ApiError> {
    check_csrf(who, header(req, "X-CSRF-Token"))
}

/// Forms sent before a session exists (log in, register) carry no CSRF
/// token; a browser sends `Origin` with them, and another site's origin is
/// refused, so a page elsewhere cannot log a visitor in or make accounts.
pub fn check_origin(req: &Request) -> Result<(), ApiError> {
    let Some(origin) = header(req, "Origin") else {
        return Ok(());
    };
    let authority = origin
        .split_once("://")
        .map(|(_, rest)| rest.trim_end_matches('/'));
    match (authority, header(req, "Host")) {
        (Some(a), Some(host)) if a.eq_ignore_ascii_case(host) => Ok(()),
        _ => Err(ApiError::Forbidden(
            "this form was sent from another site; open the page on this server and try again"
                .into(),
        )),
    }
}

/// Compares secrets in time that does not depend on where they differ.
pub fn constant_time_eq(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csrf_comparison() {
        assert!(constant_time_eq("abc", "abc"));
        assert!(!constant_time_eq("abc", "abd"));
        assert!(!constant_time_eq("abc", "abcd"));
    }
}
