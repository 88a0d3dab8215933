//! What admins see: the metadata of every client of every user (user,
//! machine, last contact, last backed-up file and time, file count, size),
//! as JSON and as a page. Never contents: downloads stay the owner's.

use super::auth::Identity;
use super::index::{escape, human_size, page_shell};
use super::reply::{ApiError, Reply};
use super::router::Handled;
use super::Ctx;
use crate::accounts::Role;
use nimbus_common::log::format_utc;
use serde::Serialize;
use std::fmt::Write;

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
    require_admin(who)?;
    let list = clients(ctx);
    let mut html = String::from("<h1>Clients</h1><p><a href=\"/\">Your files</a></p>");
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
    Ok(
        Reply::html(200, page_shell("Clients · Nimbus", &html)).header(
            "Content-Security-Policy",
            "default-src 'none'; style-src 'unsafe-inline'; base-uri 'none'; form-action 'self'",
        ),
    )
}
