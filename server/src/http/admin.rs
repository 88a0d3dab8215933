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
use nimbus_common::log::format_utc;
use serde::Serialize;
use std::fmt::Write;

/// Open invites, a button to make one and one to withdraw each (forms need
/// a browser session: they carry its CSRF token).
fn invites_section(ctx: &Ctx, who: &Identity, html: &mut String) -> Result<(), ApiError> {
    let accounts = ctx
        .accounts
        .current()
        .map_err(|e| ApiError::Internal(e.to_string()))?;
    let now = nimbus_common::log::unix_now();
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
    /// Unix seconds of the last request from the machine, or of its last
    /// backup when the server has not heard from it since it started.
    last_contact: Option<i64>,
    last_file: Option<String>,
    last_backup_at: Option<i64>,
    files: usize,
    bytes: u64,
}

fn require_admin(who: &Identity) -> Result<(), ApiError> {
    if who.role == Role::Admin {
        Ok(())
    } else {
        Err(ApiError::Forbidden("only admins see other clients".into()))
    }
}

fn clients(ctx: &Ctx) -> Vec<ClientView> {
    ctx.dm
        .client_summaries()
        .into_iter()
        .map(|s| {
            let (user, machine) = s.client.split_once('/').unwrap_or(("", &s.client));
            let last_contact = match (ctx.contacts.get(&s.client), s.last_backup_at) {
                (Some(a), Some(b)) => Some(a.max(b)),
                (a, b) => a.or(b),
            };
            ClientView {
                user: user.to_string(),
                machine: machine.to_string(),
                last_contact,
                last_file: s.last_file,
                last_backup_at: s.last_backup_at,
                files: s.files,
                bytes: s.bytes,
            }
        })
        .collect()
}

/// `GET /api/v1/admin/clients`
pub fn clients_json(ctx: &Ctx, who: &Identity) -> Handled {
    require_admin(who)?;
    Ok(Reply::json(200, &clients(ctx)))
}

/// `GET /admin`
pub fn page(ctx: &Ctx, who: &Identity) -> Handled {
    page_with(ctx, who, None)
}

/// The admin page; `new_invite` is a link just made, shown this once.
pub fn page_with(ctx: &Ctx, who: &Identity, new_invite: Option<&str>) -> Handled {
    require_admin(who)?;
    let list = clients(ctx);
    let mut html = String::from("<h1>Clients</h1><p><a href=\"/\">Your files</a></p>");
    if let Some(link) = new_invite {
        let _ = write!(
            html,
            "<p class=\"invite\">New invite link, valid for one account for 7 days; copy it now, \
             it is not shown again:<br><input id=\"invite-link\" readonly size=\"90\" value=\"{}\"></p>",
            escape(link)
        );
    }
    let _ = write!(
        html,
        "<table><thead><tr><th>User</th><th>Machine</th><th>Last contact (UTC)</th>\
         <th>Last file backed up</th><th>At (UTC)</th><th>Files</th><th>Size</th></tr></thead><tbody>"
    );
    let when = |t: Option<i64>| t.map(format_utc).unwrap_or_else(|| "-".into());
    for c in &list {
        let _ = write!(
            html,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td></tr>",
            escape(&c.user),
            escape(&c.machine),
            when(c.last_contact),
            escape(c.last_file.as_deref().unwrap_or("-")),
            when(c.last_backup_at),
            c.files,
            human_size(c.bytes)
        );
    }
    html.push_str("</tbody></table>");
    invites_section(ctx, who, &mut html)?;
    Ok(Reply::html(200, page_shell("Clients · Nimbus", &html))
        .header("Content-Security-Policy", super::index::PAGE_CSP))
}
