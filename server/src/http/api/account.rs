//! A machine's account routes: `POST /api/v1/login` (a device token for a
//! name, password and machine), `POST /api/v1/enroll` (one for an
//! enrollment code and machine), `GET /api/v1/devices`, `GET
//! /api/v1/session`, `DELETE /api/v1/devices/{id}`.

use crate::http::auth::csrf::check_csrf_header;
use crate::http::auth::{require, Identity};
use crate::http::core::body::small_body;
use crate::http::core::{ApiError, Handled, Reply};
use crate::http::ctx::Ctx;
use nimbus_common::time::format_utc;
use nimbus_common::wire::{EnrollRequest, LoginReply, LoginRequest};
use serde::Serialize;
use tiny_http::Request;

const MAX_LOGIN_BODY: u64 = 16 * 1024;

/// `POST /api/v1/login`: name, password and machine in, device token out.
pub fn login(ctx: &Ctx, req: &mut Request) -> Handled {
    let addr = ctx.peer().addr(req);
    let body = small_body(req, MAX_LOGIN_BODY)?;
    let r: LoginRequest = serde_json::from_slice(&body).map_err(|_| {
        ApiError::bad(
            "bad_json",
            "body must be JSON {\"user\", \"password\", \"machine\"}",
        )
    })?;
    nimbus_common::paths::validate_client_name(&r.machine)?;
    let user = ctx.auth.check_login(&r.user, &r.password, &addr)?;
    let (device, token) = ctx.auth.store().register_device(&user, &r.machine)?;
    log::info!(
        "{user} logged in from machine {:?} (device {})",
        r.machine,
        device.id
    );
    Ok(Reply::json(
        200,
        &LoginReply {
            user,
            machine: device.machine,
            device: device.id,
            token,
        },
    ))
}

/// `POST /api/v1/enroll`: an enrollment code and machine in, device token
/// out. The code is never logged.
pub fn enroll(ctx: &Ctx, req: &mut Request) -> Handled {
    let addr = ctx.peer().addr(req);
    let body = small_body(req, MAX_LOGIN_BODY)?;
    let r: EnrollRequest = serde_json::from_slice(&body)
        .map_err(|_| ApiError::bad("bad_json", "body must be JSON {\"code\", \"machine\"}"))?;
    nimbus_common::paths::validate_client_name(&r.machine)?;
    let (device, token) = ctx.auth.enroll(&r.code, &r.machine, &addr)?;
    log::info!(
        "{} enrolled machine {:?} with a code (device {})",
        device.user,
        device.machine,
        device.id
    );
    Ok(Reply::json(
        200,
        &LoginReply {
            user: device.user,
            machine: device.machine,
            device: device.id,
            token,
        },
    ))
}

#[derive(Serialize)]
struct DeviceView {
    id: String,
    machine: String,
    created_at: String,
    revoked: bool,
}

/// `GET /api/v1/devices`: the caller's devices.
pub fn devices(ctx: &Ctx, who: Option<Identity>) -> Handled {
    let who = require(who)?;
    let accounts = ctx.auth.accounts.current()?;
    let list: Vec<DeviceView> = accounts
        .devices
        .iter()
        .filter(|d| d.user == who.user)
        .map(|d| DeviceView {
            id: d.id.clone(),
            machine: d.machine.clone(),
            created_at: format_utc(d.created_at),
            revoked: d.revoked,
        })
        .collect();
    Ok(Reply::json(200, &list))
}

/// `GET /api/v1/session`: who is asking, and for a browser session its
/// CSRF token (a page's script renews its token with it after logging in
/// again; other sites cannot read the answer).
pub fn session(who: Option<Identity>) -> Handled {
    let who = require(who)?;
    Ok(Reply::json(
        200,
        &serde_json::json!({
            "user": who.user,
            "role": who.role,
            "machine": who.machine,
            "csrf": who.session.map(|(_, csrf)| csrf),
        }),
    )
    .header("Cache-Control", "no-store"))
}

/// `DELETE /api/v1/devices/{id}`: revokes one of the caller's devices. From
/// a browser session it needs the `X-CSRF-Token` header.
pub fn revoke(ctx: &Ctx, req: &Request, who: Option<Identity>, id: &str) -> Handled {
    let who = require(who)?;
    check_csrf_header(&who, req)?;
    ctx.auth.revoke_device(&who, id)?;
    Ok(Reply::new(204))
}
