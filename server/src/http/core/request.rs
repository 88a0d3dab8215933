//! Reading what a request says: headers, the query, cookies, the peer's
//! address, the `{machine}/{path...}` part of a route, small bodies.

use super::form::parse_form;
use super::reply::ApiError;
use nimbus_common::paths::{decode_rel_path, decode_segment, validate_client_name};
use nimbus_common::time::parse_time;
use tiny_http::Request;

/// The value of a request header, if present and valid text.
pub fn header<'a>(req: &'a Request, name: &str) -> Option<&'a str> {
    req.headers()
        .iter()
        .find(|h| h.field.as_str().as_str().eq_ignore_ascii_case(name))
        .map(|h| h.value.as_str())
}

/// A query parameter of the request target, decoded.
pub fn query_param(req: &Request, name: &str) -> Option<String> {
    let (_, query) = req.url().split_once('?')?;
    parse_form(query).remove(name)
}

/// A query parameter that is on (`1`, `on`, `true`).
pub fn query_flag(req: &Request, name: &str) -> bool {
    matches!(query_param(req, name).as_deref(), Some("1" | "on" | "true"))
}

/// The `at=TIME` query parameter, if given. An empty one (a form's "at"
/// field left at its "now" placeholder) is now.
pub fn at_param(req: &Request) -> Result<Option<i64>, ApiError> {
    query_param(req, "at")
        .filter(|t| !t.trim().is_empty())
        .map(|t| parse_time(&t).map_err(|e| ApiError::bad("bad_time", e)))
        .transpose()
}

/// Files listed on one page at most (`limit=`).
pub const MAX_PAGE: usize = 10_000;

/// A page of a listing: `?limit=N[&after=CURSOR]`, the cursor being the
/// last file of the previous page as `machine/path`.
pub struct Page {
    pub limit: usize,
    /// (machine, path) of the last file already shown.
    pub after: Option<(String, String)>,
}

impl Page {
    /// The cursor as a catalog key and path within `space`.
    pub fn after_in(&self, space: &crate::space::UserSpace) -> Option<(String, String)> {
        self.after
            .as_ref()
            .map(|(m, p)| (space.machine(m).as_str().to_string(), p.clone()))
    }
}

/// The `limit` and `after` parameters, if `limit` is given.
pub fn page_params(req: &Request) -> Result<Option<Page>, ApiError> {
    let Some(limit) = query_param(req, "limit") else {
        return Ok(None);
    };
    let limit = limit
        .parse::<usize>()
        .ok()
        .filter(|n| (1..=MAX_PAGE).contains(n))
        .ok_or_else(|| ApiError::bad("bad_limit", format!("limit must be 1 to {MAX_PAGE}")))?;
    let after = match query_param(req, "after").filter(|a| !a.is_empty()) {
        None => None,
        Some(cursor) => {
            let bad = || ApiError::bad("bad_cursor", "after must be a cursor a page gave");
            let (machine, path) = cursor.split_once('/').ok_or_else(bad)?;
            validate_client_name(machine).map_err(|_| bad())?;
            nimbus_common::paths::validate_rel_path(path).map_err(|_| bad())?;
            Some((machine.to_string(), path.to_string()))
        }
    };
    Ok(Some(Page { limit, after }))
}

/// The value of one cookie of the request.
pub fn cookie<'a>(req: &'a Request, name: &str) -> Option<&'a str> {
    header(req, "Cookie")?
        .split(';')
        .filter_map(|c| c.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// The declared `Content-Length`, if any; `400 bad_length` if it is not a
/// number.
pub fn content_length(req: &Request) -> Result<Option<u64>, ApiError> {
    header(req, "Content-Length")
        .map(|v| {
            v.trim()
                .parse::<u64>()
                .map_err(|_| ApiError::bad("bad_length", "Content-Length is not a number"))
        })
        .transpose()
}

/// Decodes the `{machine}/{path...}` part of a route: (machine, path).
pub fn target(machine: &str, rest: &[&str]) -> Result<(String, String), ApiError> {
    let path = decode_rel_path(rest.iter().copied())?;
    Ok((machine_segment(machine)?, path))
}

/// Decodes the `{machine}` segment of a route.
pub fn machine_segment(seg: &str) -> Result<String, ApiError> {
    let machine = decode_segment(seg)?;
    validate_client_name(&machine)?;
    Ok(machine)
}

/// Where the request came from and how, as far as the server can tell:
/// behind a trusted proxy, from its `X-Forwarded-*` headers.
#[derive(Clone, Copy)]
pub struct Peer {
    /// Take the client's address and scheme from the proxy's headers.
    pub trust_proxy: bool,
}

impl Peer {
    /// The client's address: the peer's, or behind a trusted proxy the last
    /// address the proxy appended to X-Forwarded-For.
    pub fn addr(self, req: &Request) -> String {
        if self.trust_proxy {
            if let Some(addr) = header(req, "X-Forwarded-For")
                .and_then(|v| v.rsplit(',').next())
                .map(str::trim)
                .filter(|a| a.parse::<std::net::IpAddr>().is_ok())
            {
                return addr.to_string();
            }
        }
        req.remote_addr()
            .map(|a| a.ip().to_string())
            .unwrap_or_default()
    }

    /// Whether the browser reached the server over HTTPS (directly, or
    /// through a trusted proxy that says so).
    pub fn https(self, req: &Request) -> bool {
        req.secure() || (self.trust_proxy && header(req, "X-Forwarded-Proto") == Some("https"))
    }

    /// The scheme and host the browser used, for links shown on a page.
    pub fn base_url(self, req: &Request) -> String {
        let scheme = if self.https(req) { "https" } else { "http" };
        match header(req, "Host") {
            Some(host) => format!("{scheme}://{host}"),
            None => String::new(),
        }
    }
}
