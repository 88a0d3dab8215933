//! Accounts made from the browser. `GET/POST /register` creates a
//! (non-admin) account with a single-use invite link an admin made, or, under
//! `--registration open`, for anyone. Admins make and withdraw invite links
//! on `/admin` (see `admin.rs`).

use super::layout;
use super::login::start_session;
use crate::accounts::{AccountError, MIN_PASSWORD};
use crate::config::Registration;
use crate::http::auth::csrf::check_origin;
use crate::http::core::form::read_form;
use crate::http::core::request::query_param;
use crate::http::core::{Handled, Reply};
use crate::http::ctx::Ctx;
use maud::html;
use tiny_http::Request;

const CLOSED: &str = "Registration is closed on this server. Ask its admin for an invite link.";

/// The registration form, with an optional message.
fn form_page(status: u16, invite: Option<&str>, user: &str, message: Option<&str>) -> Reply {
    let content = html! {
        h1 { "Create a Nimbus account" }
        @if let Some(m) = message { p.error { (m) } }
        form method="post" action="/register" class="login" {
            @if let Some(i) = invite { input type="hidden" name="invite" value=(i); }
            label {
                "User name "
                input name="user" value=(user) autocomplete="username" required autofocus
                    maxlength="64" pattern="[A-Za-z0-9_][A-Za-z0-9._\\-]*";
            }
            label {
                "Password (at least " (MIN_PASSWORD) " characters) "
                input name="password" type="password" autocomplete="new-password" required
                    minlength=(MIN_PASSWORD);
            }
            label { "Password again " input name="password2" type="password" autocomplete="new-password" required; }
            button type="submit" { "Create account" }
        }
        p { a href="/" { "Log in instead" } }
    };
    layout::page(status, "Register · Nimbus", None, content)
}

fn refusal(status: u16, message: &str) -> Reply {
    let content = html! {
        h1 { "Create a Nimbus account" }
        p.error { (message) }
        p { a href="/" { "Log in" } }
    };
    layout::page(status, "Register · Nimbus", None, content)
}

/// `GET /register[?invite=SECRET]`
pub fn page(ctx: &Ctx, req: &Request) -> Handled {
    let invite = query_param(req, "invite");
    match invite.as_deref() {
        Some(secret) => {
            let accounts = ctx.auth.accounts.current()?;
            // Checking links counts like using them: no guessing by GET.
            let key = format!("register:{}", ctx.peer().addr(req));
            if let Err(retry_after) = ctx.auth.limiter.check(&key) {
                return Ok(refusal(
                    429,
                    &format!(
                        "Too many attempts from your address. Try again in {retry_after} seconds."
                    ),
                )
                .header("Retry-After", retry_after.to_string()));
            }
            if accounts.open_invite(secret).is_none() {
                ctx.auth.limiter.failed(&key);
                return Ok(refusal(403, &AccountError::InviteInvalid.to_string()));
            }
            Ok(form_page(200, Some(secret), "", None))
        }
        None if ctx.registration == Registration::Open => Ok(form_page(200, None, "", None)),
        None => Ok(refusal(403, CLOSED)),
    }
}

/// `POST /register`: user, password, password2 and (unless registration is
/// open) invite. Success opens a session, like logging in.
pub fn submit(ctx: &Ctx, req: &mut Request) -> Handled {
    check_origin(req)?;
    let addr = ctx.peer().addr(req);
    let form = read_form(req)?;
    let field = |k: &str| form.get(k).map(String::as_str).unwrap_or("");
    let invite = form
        .get("invite")
        .map(String::as_str)
        .filter(|i| !i.is_empty());
    if invite.is_none() && ctx.registration == Registration::Closed {
        return Ok(refusal(403, CLOSED));
    }
    let (user, password) = (field("user"), field("password"));
    if password != field("password2") {
        return Ok(form_page(
            400,
            invite,
            user,
            Some("The two passwords differ."),
        ));
    }
    // Per address: without an invite every attempt counts (mass sign-ups
    // under open registration); with one, only invalid invites do (so a
    // household behind one address can use the links it was given).
    let key = format!("register:{addr}");
    if let Err(retry_after) = ctx.auth.limiter.check(&key) {
        return Ok(form_page(
            429,
            invite,
            user,
            Some(&format!(
                "Too many attempts from your address. Try again in {retry_after} seconds."
            )),
        )
        .header("Retry-After", retry_after.to_string()));
    }
    if invite.is_none() {
        ctx.auth.limiter.failed(&key);
    }
    match ctx.auth.store().register(user, password, invite) {
        Ok(()) => {
            log::info!("account {user:?} registered from {addr}");
            Ok(start_session(ctx, req, user))
        }
        Err(e @ (AccountError::BadName | AccountError::BadPassword)) => {
            Ok(form_page(400, invite, user, Some(&e.to_string())))
        }
        Err(AccountError::Exists(_) | AccountError::Reserved(_)) => Ok(form_page(
            409,
            invite,
            user,
            Some("That user name is taken; choose another."),
        )),
        Err(e @ AccountError::InviteInvalid) => {
            ctx.auth.limiter.failed(&key);
            Ok(refusal(403, &e.to_string()))
        }
        Err(e) => Err(e.into()),
    }
}
