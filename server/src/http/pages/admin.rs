//! What admins see: the metadata of every client of every user (user,
//! machine, last contact, last backed-up file and time, file count, size),
//! as JSON and as a page, and the page's invite links. Never contents:
//! downloads stay the owner's.

use super::auth::Identity;
use super::index::{escape, human_size, page_shell, post_button};
use super::reply::{ApiError, Reply};
use super::router::Handled;
use super::Ctx;
use crate::accounts::Role;
use crate::space::MachineKey;
use crate::store::catalog::ClientSummary;
use nimbus_common::time::format_utc;
use serde::Serialize;
use std::fmt::Write;

/// Open invites, a button to make one and one to withdraw each (forms need
/// a browser session: they carry its CSRF token).
fn invites_section(ctx: &Ctx, who: &Identity, html: &mut String) -> Result<(), ApiError> {
    let accounts = ctx.accounts.current()?;
    let now = nimbus_common::time::unix_now();
    let open: Vec<_> = accounts.invites.iter().filter(|i| i.is_open(now)).collect();
    let _ = write!(
        html,
        "<h2>Invites</h2><p>{} open invite link(s).",
        open.len()
    );
    let csrf = who.session.as_ref().map(|(_, c)| c.as_str());
    if let Some(csrf) = csrf {
        html.push(' ');
        html.push_str(&post_button("/admin/invites", csrf, "New invite link"));
    }
    html.push_str("</p>");
    if open.is_empty() {
        return Ok(());
    }
    html.push_str(
        "<table><thead><tr><th>Invite</th><th>Made by</th><th>Made (UTC)</th>\
         <th>Expires (UTC)</th><th></th></tr></thead><tbody>",
    );
    for i in open {
        let button = csrf
            .map(|csrf| post_button(&format!("/admin/invites/{}/revoke", i.id), csrf, "Withdraw"))
            .unwrap_or_default();
        let _ = write!(
            html,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{button}</td></tr>",
            escape(&i.id),
            escape(&i.created_by),
            format_utc(i.created_at),
            format_utc(i.expires_at),
        );
    }
    html.push_str("</tbody></table>");
    Ok(())
}

#[derive(Serialize)]
struct ClientView {
    user: String,
    machine: String,
    /// "ok", "stale" (no contact for longer than --stale-after),
    /// "errors" (its last pass reported errors), or "browser" (files
    /// uploaded from the browser only: no client backs this machine up, so
    /// it cannot go stale).
    status: &'static str,
    /// Unix seconds of the last request from the machine (or, for a
    /// machine never heard from since contact times were kept, of its last
    /// backup).
    last_contact: Option<i64>,
    /// What the client last reported about itself.
    version: Option<String>,
    os: Option<String>,
    errors: u64,
    last_error: Option<String>,
    last_file: Option<String>,
    last_backup_at: Option<i64>,
    files: usize,
    bytes: u64,
    /// On disk for its current files, after dedup (within the client) and
    /// packing.
    stored: u64,
}

fn require_admin(who: &Identity) -> Result<(), ApiError> {
    if who.role == Role::Admin {
        Ok(())
    } else {
        Err(ApiError::Forbidden("only admins see other clients".into()))
    }
}

fn clients(ctx: &Ctx) -> Vec<ClientView> {
    let mut summaries: std::collections::BTreeMap<String, ClientSummary> = ctx
        .dm
        .client_summaries()
        .into_iter()
        .map(|s| (s.client.clone(), s))
        .collect();
    // Machines that reported but never backed anything up are listed too.
    for key in ctx.clients.all().into_keys() {
        summaries.entry(key.clone()).or_insert(ClientSummary {
            client: key,
            files: 0,
            bytes: 0,
            stored: 0,
            last_file: None,
            last_backup_at: None,
        });
    }
    // Machines some client logged in as (a revoked device was one too).
    let devices: std::collections::HashSet<String> = ctx
        .accounts
        .current()
        .map(|a| {
            a.devices
                .iter()
                .map(|d| MachineKey::new(&d.user, &d.machine).to_string())
                .collect()
        })
        .unwrap_or_default();
    let now = nimbus_common::time::unix_now();
    summaries
        .into_values()
        .map(|s| {
            let (user, machine) = s.client.split_once('/').unwrap_or(("", &s.client));
            let info = ctx.clients.get(&s.client).unwrap_or_default();
            let last_contact = match (info.last_contact, s.last_backup_at) {
                (Some(a), Some(b)) => Some(a.max(b)),
                (a, b) => a.or(b),
            };
            let report = info.report.unwrap_or_default();
            let browser_only = info.last_contact.is_none() && !devices.contains(&s.client);
            let status = match last_contact {
                _ if browser_only => "browser",
                Some(t) if now - t <= ctx.stale_after as i64 && report.errors == 0 => "ok",
                Some(t) if now - t <= ctx.stale_after as i64 => "errors",
                _ => "stale",
            };
            let known = |v: String| (!v.is_empty()).then_some(v);
            ClientView {
                user: user.to_string(),
                machine: machine.to_string(),
                status,
                last_contact,
                version: known(report.version),
                os: known(report.os),
                errors: report.errors,
                last_error: report.last_error,
                last_file: s.last_file,
                last_backup_at: s.last_backup_at,
                files: s.files,
                bytes: s.bytes,
                stored: s.stored,
            }
        })
        .collect()
}

/// `GET /api/v1/admin/clients`
pub fn clients_json(ctx: &Ctx, who: &Identity) -> Handled {
    require_admin(who)?;
    Ok(Reply::json(200, &clients(ctx)))
}

/// "36 h", "2 d", "90 s": for the dashboard's wording.
fn human_duration(secs: u64) -> String {
    match secs {
        s if s % 86_400 == 0 && s >= 86_400 * 2 => format!("{} days", s / 86_400),
        s if s % 3600 == 0 && s >= 3600 => format!("{} h", s / 3600),
        s if s % 60 == 0 && s >= 60 => format!("{} min", s / 60),
        s => format!("{s} s"),
    }
}

/// `POST /api/v1/status`: a machine reports on itself (after a pass, or as
/// a heartbeat). Device tokens only.
pub fn report(ctx: &Ctx, req: &mut tiny_http::Request, who: &Identity) -> Handled {
    let Some(machine) = &who.machine else {
        return Err(ApiError::Forbidden(
            "status reports come from a machine's token".into(),
        ));
    };
    let body = super::router::small_body(req, 16 * 1024)?;
    let report: crate::clients::Report = serde_json::from_slice(&body)
        .map_err(|e| ApiError::bad("bad_json", format!("the report is not valid: {e}")))?;
    crate::clients::validate(&report).map_err(|e| ApiError::bad("bad_report", e))?;
    ctx.clients
        .report(who.machine(machine).as_str(), report)
        .map_err(ApiError::from)?;
    Ok(Reply::new(204))
}

/// `GET /admin`
pub fn page(ctx: &Ctx, who: &Identity) -> Handled {
    page_with(ctx, who, None)
}

/// The admin page; `new_invite` is a link just made, shown this once.
pub fn page_with(ctx: &Ctx, who: &Identity, new_invite: Option<&str>) -> Handled {
    require_admin(who)?;
    let list = clients(ctx);
    let mut html = super::index::top(who, "");
    html.push_str("<h1>Clients</h1>");
    if let Some(link) = new_invite {
        let _ = write!(
            html,
            "<p class=\"invite\">New invite link, valid for one account for 7 days; copy it now, \
             it is not shown again:<br><input id=\"invite-link\" readonly size=\"90\" value=\"{}\"></p>",
            escape(link)
        );
    }
    let stale = list.iter().filter(|c| c.status == "stale").count();
    let errors = list.iter().filter(|c| c.status == "errors").count();
    let browser = list.iter().filter(|c| c.status == "browser").count();
    let _ = write!(
        html,
        "<p class=\"summary\">{} client(s): {} ok, {stale} stale (no contact for {}), {errors} with errors{}.</p>\
         <table class=\"clients\"><thead><tr><th>Status</th><th>User</th><th>Machine</th><th>Client</th>\
         <th>Last contact (UTC)</th><th>Last file backed up</th><th>At (UTC)</th><th>Files</th><th>Size</th>\
         <th>Stored</th><th>Last error</th></tr></thead><tbody>",
        list.len(),
        list.len() - stale - errors - browser,
        human_duration(ctx.stale_after),
        if browser > 0 {
            format!("; {browser} with files uploaded from the browser only")
        } else {
            String::new()
        }
    );
    let when = |t: Option<i64>| t.map(super::index::time_html).unwrap_or_else(|| "-".into());
    for c in &list {
        let client = match (&c.version, &c.os) {
            (Some(v), Some(os)) => format!("{} on {}", escape(v), escape(os)),
            _ => "-".into(),
        };
        let last_error = match &c.last_error {
            Some(e) if c.errors > 0 => format!("{} error(s): {}", c.errors, escape(e)),
            _ => "-".into(),
        };
        let _ = write!(
            html,
            "<tr class=\"{status}\"><td class=\"status {status}\">{status}</td><td>{}</td><td>{}</td><td>{client}</td>\
             <td>{}</td><td>{}</td><td>{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td>\
             <td class=\"n\">{}</td><td class=\"error\">{last_error}</td></tr>",
            escape(&c.user),
            if c.files > 0 {
                format!(
                    "<a href=\"{}\">{}</a>",
                    escape(&format!(
                        "/admin/tree/{}/{}/",
                        nimbus_common::paths::encode_segment(&c.user),
                        nimbus_common::paths::encode_segment(&c.machine)
                    )),
                    escape(&c.machine)
                )
            } else {
                escape(&c.machine)
            },
            when(c.last_contact),
            escape(c.last_file.as_deref().unwrap_or("-")),
            when(c.last_backup_at),
            c.files,
            human_size(c.bytes),
            human_size(c.stored),
            status = c.status,
        );
    }
    html.push_str("</tbody></table>");
    super::health::section(ctx, &mut html);
    invites_section(ctx, who, &mut html)?;
    Ok(Reply::html(200, page_shell("Clients · Nimbus", &html)))
}
