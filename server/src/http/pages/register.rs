//! Accounts made from the browser. `GET/POST /register` creates a
//! (non-admin) account with a single-use invite link an admin made, or, under
//! `--registration open`, for anyone. Admins make and withdraw invite links
//! on `/admin` (`POST /admin/invites`, `POST /admin/invites/{id}/revoke`).

use super::auth::{self, Identity};
use super::index::{escape, page_shell};
use super::reply::{ApiError, Reply};
use super::router::{query_param, Handled};
use super::web::{self, read_form};
use super::Ctx;
use crate::accounts::{AccountError, Role, MIN_PASSWORD};
use crate::config::Registration;
use tiny_http::Request;

/// How long an invite link stays valid.
pub const INVITE_TTL: i64 = 7 * 24 * 3600;

const CLOSED: &str = "Registration is closed on this server. Ask its admin for an invite link.";

/// The registration form, with an optional message (plain text).
fn form_page(status: u16, invite: Option<&str>, user: &str, message: Option<&str>) -> Reply {
    let note = message
        .map(|m| format!("<p class=\"error\">{}</p>", escape(m)))
        .unwrap_or_default();
    let hidden = invite
        .map(|i| {
            format!(
                "<input type=\"hidden\" name=\"invite\" value=\"{}\">",
                escape(i)
            )
        })
        .unwrap_or_default();
    let body = format!(
        "<h1>Create a Nimbus account</h1>{note}\
         <form method=\"post\" action=\"/register\" class=\"login\">{hidden}\
         <label>User name <input name=\"user\" value=\"{}\" autocomplete=\"username\" required autofocus \
         maxlength=\"64\" pattern=\"[A-Za-z0-9_][A-Za-z0-9._\\-]*\"></label>\
         <label>Password (at least {MIN_PASSWORD} characters) <input name=\"password\" type=\"password\" \
         autocomplete=\"new-password\" required minlength=\"{MIN_PASSWORD}\"></label>\
         <label>Password again <input name=\"password2\" type=\"password\" autocomplete=\"new-password\" required></label>\
         <button type=\"submit\">Create account</button></form>\
         <p><a href=\"/\">Log in instead</a></p>",
        escape(user)
    );
    Reply::html(status, page_shell("Register · Nimbus", &body))
}

fn refusal(status: u16, message: &str) -> Reply {
    let body = format!(
        "<h1>Create a Nimbus account</h1><p class=\"error\">{}</p><p><a href=\"/\">Log in</a></p>",
        escape(message)
    );
    Reply::html(status, page_shell("Register · Nimbus", &body))
}

/// `GET /register[?invite=SECRET]`
pub fn page(ctx: &Ctx, req: &Request) -> Handled {
    let invite = query_param(req, "invite");
    match invite.as_deref() {
        Some(secret) => {
            let accounts = ctx.accounts.current()?;
            // Checking links counts like using them: no guessing by GET.
            let key = format!("register:{}", auth::remote_addr(ctx, req));
            if let Err(retry_after) = ctx.limiter.check(&key) {
                return Ok(refusal(
                    429,
                    &format!(
                        "Too many attempts from your address. Try again in {retry_after} seconds."
                    ),
                )
                .header("Retry-After", retry_after.to_string()));
            }
            if accounts.open_invite(secret).is_none() {
                ctx.limiter.failed(&key);
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
    web::check_origin(req)?;
    let addr = auth::remote_addr(ctx, req);
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
    if let Err(retry_after) = ctx.limiter.check(&key) {
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
        ctx.limiter.failed(&key);
    }
    match ctx.accounts.store().register(user, password, invite) {
        Ok(()) => {
            log::info!("account {user:?} registered from {addr}");
            Ok(web::start_session(ctx, req, user))
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
            ctx.limiter.failed(&key);
            Ok(refusal(403, &e.to_string()))
        }
        Err(e) => Err(e.into()),
    }
}

/// An admin logged in with a password: a machine's token, even an admin's,
/// does not manage accounts (a stolen laptop must not mint invites).
fn require_admin_session(who: Option<Identity>) -> Result<Identity, ApiError> {
    let who = auth::require(who)?;
    if who.role != Role::Admin {
        return Err(ApiError::Forbidden("only admins make invite links".into()));
    }
    if who.session.is_none() {
        return Err(ApiError::Forbidden(
            "invite links are made on the admin page, logged in with a password".into(),
        ));
    }
    Ok(who)
}

/// `POST /admin/invites`: a new invite link, shown once on the admin page.
pub fn create_invite(ctx: &Ctx, req: &mut Request, who: Option<Identity>) -> Handled {
    let form = read_form(req)?;
    let who = require_admin_session(who)?;
    web::check_csrf(&who, form.get("csrf").map(String::as_str))?;
    let (invite, secret) = ctx.accounts.store().create_invite(&who.user, INVITE_TTL)?;
    log::info!("{} made invite {}", who.user, invite.id);
    let link = format!("{}/register?invite={secret}", web::base_url(ctx, req));
    super::admin::page_with(ctx, &who, Some(&link))
}

/// `POST /admin/invites/{id}/revoke`
pub fn revoke_invite(ctx: &Ctx, req: &mut Request, who: Option<Identity>, id: &str) -> Handled {
    let form = read_form(req)?;
    let who = require_admin_session(who)?;
    web::check_csrf(&who, form.get("csrf").map(String::as_str))?;
    match ctx.accounts.store().revoke_invite(id) {
        Ok(()) => Ok(Reply::new(303).header("Location", "/admin")),
        Err(AccountError::NoSuchInvite(_)) => Err(ApiError::NotFound),
        Err(e) => Err(e.into()),
    }
}
