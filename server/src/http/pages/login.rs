//! The browser's side of accounts: the login page, `POST /login` (a form)
//! that opens a session cookie, `POST /logout`, and revoking a device from
//! the home page (`POST /devices/{id}/revoke`).

use super::layout::page;
use crate::config::Registration;
use crate::http::auth::csrf::{check_csrf, check_origin};
use crate::http::auth::sessions::{new_session_cookie, session_cookie};
use crate::http::auth::{require, Identity};
use crate::http::core::form::read_form;
use crate::http::core::{ApiError, Handled, Reply};
use crate::http::ctx::Ctx;
use maud::html;
use tiny_http::Request;

/// The login page, with an optional message.
pub fn login_page(ctx: &Ctx, status: u16, message: Option<&str>) -> Reply {
    let content = html! {
        h1 { "Nimbus backups" }
        @if let Some(m) = message { p.error { (m) } }
        form method="post" action="/login" class="login" {
            label { "User " input name="user" autocomplete="username" required autofocus; }
            label { "Password " input name="password" type="password" autocomplete="current-password" required; }
            button type="submit" { "Log in" }
        }
        @if ctx.registration == Registration::Open {
            p { a href="/register" { "Create an account" } }
        }
    };
    page(status, "Log in · Nimbus", None, content)
}

/// `POST /login`: user and password from a form; a session cookie on success.
pub fn login(ctx: &Ctx, req: &mut Request) -> Handled {
    check_origin(req)?;
    let addr = ctx.peer().addr(req);
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
    match ctx.auth.check_login(user, password, &addr) {
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

/// A new session for `user`: its cookie, and off to the home page.
pub fn start_session(ctx: &Ctx, req: &Request, user: &str) -> Reply {
    let id = ctx.auth.sessions.open(user);
    Reply::new(303)
        .header("Location", "/")
        .header("Set-Cookie", new_session_cookie(ctx.peer(), req, &id))
}

/// `POST /logout`: ends the session; the form must carry its CSRF token.
pub fn logout(ctx: &Ctx, req: &mut Request, who: Option<Identity>) -> Handled {
    let form = read_form(req)?;
    let who = who
        .filter(|w| w.session.is_some())
        .ok_or_else(|| ApiError::Unauthorized("not logged in".into()))?;
    check_csrf(&who, form.get("csrf").map(String::as_str))?;
    if let Some((id, _)) = &who.session {
        ctx.auth.sessions.close(id);
    }
    Ok(Reply::new(303)
        .header("Location", "/")
        .header("Set-Cookie", session_cookie(ctx.peer(), req, "", 0)))
}

/// `POST /devices/{id}/revoke`: the home page's "Revoke" button.
pub fn revoke_device(ctx: &Ctx, req: &mut Request, who: Option<Identity>, id: &str) -> Handled {
    let form = read_form(req)?;
    let who = require(who)?;
    check_csrf(&who, form.get("csrf").map(String::as_str))?;
    ctx.auth.revoke_device(&who, id)?;
    Ok(Reply::new(303).header("Location", "/"))
}
