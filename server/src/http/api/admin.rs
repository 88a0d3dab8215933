//! What admins and machines say about machines: every machine's status as
//! JSON (`GET /api/v1/admin/clients`), and a machine's report on itself
//! (`POST /api/v1/status`).

use crate::http::auth::{require_admin, Identity};
use crate::http::core::body::small_body;
use crate::http::core::{ApiError, Handled, Reply};
use crate::http::ctx::Ctx;
use crate::http::views::status::clients;

/// `GET /api/v1/admin/clients`
pub fn clients_json(ctx: &Ctx, who: &Identity) -> Handled {
    require_admin(who)?;
    Ok(Reply::json(200, &clients(ctx)))
}

/// `POST /api/v1/status`: a machine reports on itself (after a pass, or as
/// a heartbeat). Device tokens only.
pub fn report(ctx: &Ctx, req: &mut tiny_http::Request, who: &Identity) -> Handled {
    let Some(machine) = &who.machine else {
        return Err(ApiError::Forbidden(
            "status reports come from a machine's token".into(),
        ));
    };
    let body = small_body(req, 16 * 1024)?;
    let report: crate::clients::Report = serde_json::from_slice(&body)
        .map_err(|e| ApiError::bad("bad_json", format!("the report is not valid: {e}")))?;
    crate::clients::validate(&report).map_err(|e| ApiError::bad("bad_report", e))?;
    let key = who.machine(machine);
    let newer = newer_build(ctx, key.as_str(), &report);
    let policies = ctx.policies.current()?;
    let ignored = report
        .problems
        .iter()
        .filter(|p| policies.ignored(key.as_str(), p))
        .count() as u64;
    let counted = report.errors.saturating_sub(ignored);
    ctx.clients
        .report(key.as_str(), report, counted)
        .map_err(ApiError::from)?;
    Ok(match newer {
        Some(b) => Reply::json(
            200,
            &nimbus_common::wire::StatusAnswer {
                newer: Some(super::builds::info(&b)),
            },
        ),
        None => Reply::new(204),
    })
}

/// The build the update policy offers the reporting machine (its `os` is
/// "OS ARCH", as Rust names them), if it is newer than the one reporting.
fn newer_build(
    ctx: &Ctx,
    machine: &str,
    r: &crate::clients::Report,
) -> Option<crate::client_builds::ClientBuild> {
    let (os, arch) = r.os.split_once(' ')?;
    let os = crate::client_builds::Os::parse(os)?;
    ctx.builds
        .offered(os, arch, &ctx.updates.policy().target_for(machine).0)
        .filter(|b| {
            crate::client_builds::compare_versions(&b.version, &r.version)
                == std::cmp::Ordering::Greater
        })
}
