//! Alerts over HTTP: what is set and what was sent (`GET /api/v1/alerts`),
//! the admin's settings (`PUT /api/v1/alerts`), targets (`POST
//! /api/v1/alerts/targets`, `DELETE /api/v1/alerts/targets/{id}`), a
//! machine's stale threshold (`PUT /api/v1/alerts/machines/{user}/{machine}`)
//! and a test notice (`POST /api/v1/alerts/test`). Users see and change
//! only their own targets and machines.

use crate::alerts::{AlertError, AlertSettings, Editor, Span, Target};
use crate::http::auth::csrf::check_csrf_header;
use crate::http::auth::{require_admin, Identity};
use crate::http::core::body::small_body;
use crate::http::core::{ApiError, Handled, Reply};
use crate::http::ctx::Ctx;
use serde::Deserialize;
use serde_json::json;

const MAX_BODY: u64 = 256 * 1024;

impl From<AlertError> for ApiError {
    fn from(e: AlertError) -> ApiError {
        match e {
            AlertError::Invalid(m) => ApiError::bad("bad_alerts", m),
            AlertError::NotYours(m) => ApiError::Forbidden(m),
            AlertError::Io(io) => io.into(),
        }
    }
}

/// `GET /api/v1/alerts`
pub fn show(ctx: &Ctx, who: &Identity) -> Handled {
    let st = ctx.alerts.state_for(who.editor());
    Ok(Reply::json(
        200,
        &json!({
            "settings": ctx.alerts.view(who.editor()),
            "active": st.active.values().collect::<Vec<_>>(),
            "deliveries": st.outbox,
        }),
    )
    .header("Cache-Control", "no-store"))
}

/// `PUT /api/v1/alerts`: every setting at once (the admin's).
pub fn replace(ctx: &Ctx, req: &mut tiny_http::Request, who: &Identity) -> Handled {
    require_admin(who)?;
    check_csrf_header(who, req)?;
    let body = small_body(req, MAX_BODY)?;
    let next: AlertSettings = serde_json::from_slice(&body)
        .map_err(|e| ApiError::bad("bad_alerts", format!("the settings are not valid: {e}")))?;
    ctx.alerts.replace(next)?;
    Ok(Reply::json(200, &ctx.alerts.view(Editor::Admin)))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewTarget {
    #[serde(default)]
    user: Option<String>,
    #[serde(default)]
    email: Option<String>,
    #[serde(default)]
    webhook: Option<String>,
    #[serde(default)]
    shape: crate::alerts::settings::Shape,
    #[serde(default)]
    token: Option<String>,
}

/// `POST /api/v1/alerts/targets`
pub fn add_target(ctx: &Ctx, req: &mut tiny_http::Request, who: &Identity) -> Handled {
    check_csrf_header(who, req)?;
    let body = small_body(req, 16 * 1024)?;
    let n: NewTarget = serde_json::from_slice(&body)
        .map_err(|e| ApiError::bad("bad_target", format!("the target is not valid: {e}")))?;
    let t = ctx.alerts.add_target(
        who.editor(),
        Target {
            id: String::new(),
            user: n.user,
            email: n.email,
            webhook: n.webhook,
            shape: n.shape,
            token: n.token,
        },
    )?;
    Ok(Reply::json(
        201,
        &json!({"id": t.id, "describe": t.describe()}),
    ))
}

/// `DELETE /api/v1/alerts/targets/{id}`
pub fn remove_target(ctx: &Ctx, req: &tiny_http::Request, who: &Identity, id: &str) -> Handled {
    check_csrf_header(who, req)?;
    if ctx.alerts.remove_target(who.editor(), id)? {
        Ok(Reply::new(204))
    } else {
        Err(ApiError::NotFound)
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MachineBody {
    #[serde(default)]
    stale_after: Option<Span>,
}

/// `PUT /api/v1/alerts/machines/{user}/{machine}`: `{"stale_after": "2d"}`
/// (null: the default again).
pub fn set_machine(
    ctx: &Ctx,
    req: &mut tiny_http::Request,
    who: &Identity,
    machine: &str,
) -> Handled {
    check_csrf_header(who, req)?;
    if crate::space::MachineKey::parse(machine).is_none() {
        return Err(ApiError::bad(
            "bad_machine",
            "not a valid user or machine name",
        ));
    }
    let body = small_body(req, 16 * 1024)?;
    let b: MachineBody = serde_json::from_slice(&body)
        .map_err(|e| ApiError::bad("bad_alerts", format!("not valid: {e}")))?;
    ctx.alerts
        .set_stale_after(who.editor(), machine, b.stale_after)?;
    Ok(Reply::new(204))
}

/// `POST /api/v1/alerts/test`: a test notice to the caller's targets (the
/// admin's: the targets without a user).
pub fn test(ctx: &Ctx, req: &tiny_http::Request, who: &Identity) -> Handled {
    check_csrf_header(who, req)?;
    let n = ctx
        .alerts
        .test(who.editor(), nimbus_common::time::unix_now())
        .map_err(ApiError::from)?;
    Ok(Reply::json(202, &json!({ "queued": n })))
}
