//! The backup policy over HTTP: a machine fetches what it applies
//! (`GET /api/v1/policy`, with an `ETag` so an unchanged policy costs a
//! 304), and the admin or a machine's owner reads and sets its layers
//! (`GET`/`PUT /api/v1/policies/...`).

use crate::http::auth::csrf::check_csrf_header;
use crate::http::auth::Identity;
use crate::http::core::body::small_body;
use crate::http::core::conditional::weak_match;
use crate::http::core::request::header;
use crate::http::core::{ApiError, Handled, Reply};
use crate::http::ctx::Ctx;
use crate::policies::PolicyError;
use crate::updates::Scope;
use nimbus_common::policy::Settings;
use std::collections::BTreeSet;

/// The largest policy body accepted.
const MAX_BODY: u64 = 256 * 1024;

impl From<PolicyError> for ApiError {
    fn from(e: PolicyError) -> ApiError {
        match e {
            PolicyError::Invalid(m) => ApiError::bad("bad_policy", m),
            PolicyError::Locked { .. } => ApiError::Forbidden(e.to_string()),
            PolicyError::NotYours(m) => ApiError::Forbidden(m),
            PolicyError::Io(io) => io.into(),
        }
    }
}

/// `GET /api/v1/policy`: the policy the calling machine applies. Device
/// tokens only.
pub fn effective(ctx: &Ctx, req: &tiny_http::Request, who: &Identity) -> Handled {
    let Some(machine) = &who.machine else {
        return Err(ApiError::Forbidden(
            "a machine's token fetches its policy; people read /api/v1/policies".into(),
        ));
    };
    let e = ctx
        .policies
        .current()?
        .effective(who.machine(machine).as_str());
    let etag = format!("\"{}\"", e.version);
    if header(req, "If-None-Match").is_some_and(|inm| weak_match(inm, &etag)) {
        return Ok(Reply::new(304)
            .header("ETag", etag)
            .header("Cache-Control", "private, no-cache"));
    }
    Ok(Reply::json(200, &e)
        .header("ETag", etag)
        .header("Cache-Control", "private, no-cache"))
}

/// The scope a `/api/v1/policies/...` route names: `fleet`,
/// `users/NAME`, `machines/USER/MACHINE`.
pub fn scope(segs: &[&str]) -> Result<Scope, ApiError> {
    let text = match segs {
        ["fleet"] => "fleet".to_string(),
        ["users", u] => format!("user:{u}"),
        ["machines", u, m] => format!("machine:{u}/{m}"),
        _ => return Err(ApiError::NotFound),
    };
    Scope::parse(&text)
        .ok_or_else(|| ApiError::bad("bad_scope", "not a valid user or machine name"))
}

/// `GET /api/v1/policies/{scope}`: the layer's own settings, what the
/// layers below give, and the locked fields. A user reads their own
/// layers only.
pub fn layer(ctx: &Ctx, who: &Identity, scope: &Scope) -> Handled {
    may_edit(who, scope)?;
    let stored = ctx.policies.current()?;
    let below = match scope {
        Scope::Fleet => None,
        _ => Some(stored.fleet_with_defaults()),
    };
    Ok(Reply::json(
        200,
        &serde_json::json!({
            "settings": stored.layer(scope),
            "fleet": below,
            "locked": stored.locked,
        }),
    )
    .header("Cache-Control", "no-store"))
}

/// `PUT /api/v1/policies/{scope}`: replaces the layer's settings (a JSON
/// object; fields left out are taken from the layer below). From a
/// browser session it needs the `X-CSRF-Token` header.
pub fn set_layer(
    ctx: &Ctx,
    req: &mut tiny_http::Request,
    who: &Identity,
    scope: &Scope,
) -> Handled {
    may_edit(who, scope)?;
    check_csrf_header(who, req)?;
    let body = small_body(req, MAX_BODY)?;
    let settings: Settings = serde_json::from_slice(&body)
        .map_err(|e| ApiError::bad("bad_policy", format!("the settings are not valid: {e}")))?;
    let stored = ctx.policies.set_layer(who.editor(), scope, settings)?;
    Ok(Reply::json(200, &stored.layer(scope)))
}

/// `PUT /api/v1/policies/locked`: the fields only the fleet's layer sets
/// (a JSON list of names). Admins only.
pub fn set_locked(ctx: &Ctx, req: &mut tiny_http::Request, who: &Identity) -> Handled {
    crate::http::auth::require_admin(who)?;
    check_csrf_header(who, req)?;
    let body = small_body(req, MAX_BODY)?;
    let locked: BTreeSet<String> = serde_json::from_slice(&body)
        .map_err(|e| ApiError::bad("bad_policy", format!("not a list of setting names: {e}")))?;
    let stored = ctx.policies.set_locked(locked)?;
    Ok(Reply::json(200, &stored.locked))
}

fn may_edit(who: &Identity, scope: &Scope) -> Result<(), ApiError> {
    if who.role == crate::accounts::Role::Admin || crate::policies::owns(&who.user, scope) {
        Ok(())
    } else {
        Err(ApiError::Forbidden(
            "only the admin sees or changes the fleet's policy or other users' machines'".into(),
        ))
    }
}

/// A rule as listed: with its id.
fn rule_json(r: &crate::policies::IgnoreRule) -> serde_json::Value {
    let mut v = serde_json::to_value(r).expect("serialisable");
    v["id"] = r.id().into();
    v
}

/// `GET /api/v1/ignored-errors`: the rules that apply to the caller's
/// machines (the admin: every rule).
pub fn ignored_list(ctx: &Ctx, who: &Identity) -> Handled {
    let stored = ctx.policies.current()?;
    let list: Vec<serde_json::Value> = stored
        .ignored_errors
        .iter()
        .filter(|r| {
            who.role == crate::accounts::Role::Admin
                || r.machine.as_deref().is_none_or(|m| {
                    crate::policies::owns(&who.user, &Scope::Machine(m.to_string()))
                })
        })
        .map(rule_json)
        .collect();
    Ok(Reply::json(200, &list).header("Cache-Control", "no-store"))
}

/// `POST /api/v1/ignored-errors`: adds a rule (`{"machine": "USER/MACHINE"
/// or absent for every machine, "path": PATTERN, "message": TEXT}`).
pub fn ignored_add(ctx: &Ctx, req: &mut tiny_http::Request, who: &Identity) -> Handled {
    check_csrf_header(who, req)?;
    let body = small_body(req, 16 * 1024)?;
    let rule: crate::policies::IgnoreRule = serde_json::from_slice(&body)
        .map_err(|e| ApiError::bad("bad_rule", format!("the rule is not valid: {e}")))?;
    ctx.policies.add_ignore(who.editor(), rule.clone())?;
    Ok(Reply::json(201, &rule_json(&rule)))
}

/// `DELETE /api/v1/ignored-errors/{id}`
pub fn ignored_remove(ctx: &Ctx, req: &tiny_http::Request, who: &Identity, id: &str) -> Handled {
    check_csrf_header(who, req)?;
    if ctx.policies.remove_ignore(who.editor(), id)? {
        Ok(Reply::new(204))
    } else {
        Err(ApiError::NotFound)
    }
}
