//! The browser's side of accounts: the login page, `POST /login` (a form)
//! that opens a session cookie, `POST /logout`, revoking a device from the
//! page, and the checks every form goes through: a same-origin `Origin`
//! before a session exists, the session's CSRF token once it does.

use super::auth::{self, Identity, SESSION_COOKIE};
use super::index::{escape, page_shell};
use super::reply::{ApiError, Reply};
use super::router::{header, Handled};
use super::Ctx;
use percent_encoding::percent_decode_str;
use std::collections::HashMap;
use tiny_http::Request;

const MAX_FORM: u64 = 16 * 1024;

/// The login page, with an optional message (already plain text).
pub fn login_page(ctx: &Ctx, status: u16, message: Option<&str>) -> Reply {
    let register = if ctx.registration == crate::config::Registration::Open {
        "<p><a href=\"/register\">Create an account</a></p>"
    } else {
        ""
    };
    let note = message
        .map(|m| format!("<p class=\"error\">{}</p>", escape(m)))
        .unwrap_or_default();
    let body = format!(
        "<h1>Nimbus backups</h1>{note}\
         <form method=\"post\" action=\"/login\" class=\"login\">\
         <label>User <input name=\"user\" autocomplete=\"username\" required autofocus></label>\
         <label>Password <input name=\"password\" type=\"password\" autocomplete=\"current-password\" required></label>\
         <button type=\"submit\">Log in</button></form>{register}"
    );
    Reply::html(status, page_shell("Log in · Nimbus", &body))
}

/// `POST /login`: user and password from a form; a session cookie on success.
pub fn login(ctx: &Ctx, req: &mut Request) -> Handled {
    check_origin(req)?;
    let addr = auth::remote_addr(ctx, req);
    let form = read_form(req)?;
    let (user, password) = match (form.get("user"), form.get("password")) {
        (Some(u), Some(p)) => (u.as_str(), p.as_str()),
        _ => {
            return Ok(login_page(
                ctx,
                400,
                Some("Enter a user name and a password."),
            ))
        }
    };
    match auth::check_login(ctx, user, password, &addr) {
        Ok(user) => Ok(start_session(ctx, req, &user)),
        Err(ApiError::TooManyAttempts { retry_after }) => Ok(login_page(
            ctx,
            429,
            Some(&format!(
                "Too many failed attempts. Try again in {retry_after} seconds."
            )),
        )
        .header("Retry-After", retry_after.to_string())),
        Err(ApiError::Unauthorized(_)) => {
            Ok(login_page(ctx, 401, Some("Wrong user name or password.")))
        }
        Err(e) => Err(e),
    }
}

/// A new session for `user`: its cookie, and off to the files page.
pub fn start_session(ctx: &Ctx, req: &Request, user: &str) -> Reply {
    let id = ctx.sessions.open(user);
    Reply::new(303)
        .header("Location", "/")
        .header("Set-Cookie", session_cookie(ctx, req, &id, 12 * 3600))
}

/// `POST /logout`: ends the session; the form must carry its CSRF token.
pub fn logout(ctx: &Ctx, req: &mut Request, who: Option<Identity>) -> Handled {
    let form = read_form(req)?;
    let who = who
        .filter(|w| w.session.is_some())
        .ok_or_else(|| ApiError::Unauthorized("not logged in".into()))?;
    check_csrf(&who, form.get("csrf").map(String::as_str))?;
    if let Some((id, _)) = &who.session {
        ctx.sessions.close(id);
    }
    Ok(Reply::new(303)
        .header("Location", "/")
        .header("Set-Cookie", session_cookie(ctx, req, "", 0)))
}

/// `POST /devices/{id}/revoke`: the page's "Revoke" button.
pub fn revoke_device(ctx: &Ctx, req: &mut Request, who: Option<Identity>, id: &str) -> Handled {
    let form = read_form(req)?;
    let who = auth::require(who)?;
    check_csrf(&who, form.get("csrf").map(String::as_str))?;
    auth::revoke_for(ctx, &who, id)?;
    Ok(Reply::new(303).header("Location", "/"))
}

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

/// The scheme and host the browser used, for links shown on a page.
pub fn base_url(ctx: &Ctx, req: &Request) -> String {
    let https =
        req.secure() || (ctx.trust_proxy && header(req, "X-Forwarded-Proto") == Some("https"));
    let scheme = if https { "https" } else { "http" };
    match header(req, "Host") {
        Some(host) => format!("{scheme}://{host}"),
        None => String::new(),
    }
}

fn session_cookie(ctx: &Ctx, req: &Request, value: &str, max_age: u64) -> String {
    let via_https_proxy = ctx.trust_proxy && header(req, "X-Forwarded-Proto") == Some("https");
    let secure = if req.secure() || via_https_proxy {
        "; Secure"
    } else {
        ""
    };
    format!(
        "{SESSION_COOKIE}={value}; Path=/; HttpOnly; SameSite=Strict; Max-Age={max_age}{secure}"
    )
}

pub fn constant_time_eq(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

/// An `application/x-www-form-urlencoded` body.
pub fn read_form(req: &mut Request) -> Result<HashMap<String, String>, ApiError> {
    let body = super::router::small_body(req, MAX_FORM)?;
    let text =
        String::from_utf8(body).map_err(|_| ApiError::bad("bad_form", "the form is not UTF-8"))?;
    Ok(parse_form(&text))
}

pub fn parse_form(text: &str) -> HashMap<String, String> {
    text.split('&')
        .filter(|p| !p.is_empty())
        .filter_map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            let dec = |s: &str| {
                percent_decode_str(&s.replace('+', " "))
                    .decode_utf8()
                    .ok()
                    .map(|c| c.into_owned())
            };
            Some((dec(k)?, dec(v)?))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forms_decode() {
        let f = parse_form("user=al%C3%AFce&password=a+b%26c%3D&empty=&bad=%ff");
        assert_eq!(f["user"], "alïce");
        assert_eq!(f["password"], "a b&c=");
        assert_eq!(f["empty"], "");
        assert!(!f.contains_key("bad"));
    }

    #[test]
    fn csrf_comparison() {
        assert!(constant_time_eq("abc", "abc"));
        assert!(!constant_time_eq("abc", "abd"));
        assert!(!constant_time_eq("abc", "abcd"));
    }
}
