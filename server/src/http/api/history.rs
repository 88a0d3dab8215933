//! What the charts draw, as JSON: storage per day (`GET /api/v1/history`
//! for the caller's machines, `GET /api/v1/admin/history` for the server
//! and every machine) and backup activity per day
//! (`GET /api/v1/activity/{machine}[/{folder...}]`).

use crate::history::{day_name, day_of, Day, KEEP_DAYS};
use crate::http::auth::{require_admin, Identity};
use crate::http::core::request::{machine_segment, query_param};
use crate::http::core::{ApiError, Handled, Reply};
use crate::http::ctx::Ctx;
use nimbus_common::paths::decode_rel_path;
use serde::Serialize;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use tiny_http::Request;

/// Days given when `days=` is not.
const DEFAULT_DAYS: u32 = 90;

#[derive(Serialize)]
struct MachineDayJson {
    day: String,
    files: u64,
    bytes: u64,
    stored: u64,
}

/// `days=N` (1 to two years), and the first day it covers.
fn from_day(req: &Request, most: u32) -> Result<Day, ApiError> {
    let days = match query_param(req, "days") {
        None => DEFAULT_DAYS.min(most),
        Some(d) => d
            .parse::<u32>()
            .ok()
            .filter(|d| (1..=most).contains(d))
            .ok_or_else(|| ApiError::bad("bad_days", format!("days is 1 to {most}")))?,
    };
    Ok(day_of(nimbus_common::time::unix_now()).saturating_sub(days - 1))
}

fn machine_days(ctx: &Ctx, key: &str, from: Day) -> Vec<MachineDayJson> {
    ctx.history
        .machine(key, from)
        .into_iter()
        .map(|(d, m)| MachineDayJson {
            day: day_name(d),
            files: m.files,
            bytes: m.bytes,
            stored: m.stored,
        })
        .collect()
}

/// `GET /api/v1/history[?days=N]`: the caller's machines, by name.
pub fn mine(ctx: &Ctx, req: &Request, who: &Identity) -> Handled {
    let from = from_day(req, KEEP_DAYS)?;
    let space = who.space();
    let machines: BTreeMap<String, Vec<MachineDayJson>> = ctx
        .dm
        .machines(space.prefix())
        .into_iter()
        .filter_map(|(key, _)| {
            let name = space.machine_of(&key)?.to_string();
            Some((name, machine_days(ctx, &key, from)))
        })
        .collect();
    Ok(Reply::json(200, &json!({ "machines": machines })))
}

/// `GET /api/v1/admin/history[?days=N]`: the server's figures and every
/// machine's, by `user/machine`.
pub fn server(ctx: &Ctx, req: &Request, who: &Identity) -> Handled {
    require_admin(who)?;
    let from = from_day(req, KEEP_DAYS)?;
    let server: Vec<Value> = ctx
        .history
        .server(from)
        .into_iter()
        .map(|(d, s)| {
            json!({
                "day": day_name(d),
                "stored": s.stored,
                "content": s.content,
                "current": s.current,
                "distinct": s.distinct,
                "saved_by_packing": s.saved_by_packing(),
                "saved_by_dedup": s.saved_by_dedup(),
                "disk_total": s.disk_total,
                "disk_free": s.disk_free,
            })
        })
        .collect();
    let machines: BTreeMap<String, Vec<MachineDayJson>> = ctx
        .dm
        .machines("")
        .into_iter()
        .map(|(key, _)| {
            let days = machine_days(ctx, &key, from);
            (key, days)
        })
        .collect();
    Ok(Reply::json(
        200,
        &json!({ "server": server, "machines": machines }),
    ))
}

/// `GET /api/v1/activity/{machine}[/{folder...}][?days=N]`: versions
/// backed up per day under a folder of one of the caller's machines (the
/// last 30 days by default, at most 366). `days` is `null` when the folder
/// holds too many versions to count on request (its machine's always
/// answers).
pub fn activity(ctx: &Ctx, req: &Request, who: &Identity, machine: &str, rest: &[&str]) -> Handled {
    let machine = machine_segment(machine)?;
    let parts: Vec<&str> = rest.iter().copied().filter(|s| !s.is_empty()).collect();
    let folder = if parts.is_empty() {
        String::new()
    } else {
        decode_rel_path(parts.iter().copied())?
    };
    let key = who.machine(&machine);
    if !ctx
        .dm
        .machines(who.space().prefix())
        .iter()
        .any(|(k, _)| k == key.as_str())
    {
        return Err(ApiError::NotFound);
    }
    let from = match query_param(req, "days") {
        None => day_of(nimbus_common::time::unix_now()).saturating_sub(29),
        Some(_) => from_day(req, 366)?,
    };
    let days = ctx.dm.activity(key.as_str(), &folder, from).map(|days| {
        days.into_iter()
            .map(|(d, n, b)| json!({ "day": day_name(d), "versions": n, "bytes": b }))
            .collect::<Vec<_>>()
    });
    Ok(Reply::json(200, &json!({ "days": days })))
}
