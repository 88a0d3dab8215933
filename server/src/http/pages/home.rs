//! `GET /`: the user's machines (each leading to its folders), the
//! restore form, the upload box and the user's devices; `GET /files`:
//! every file in one plain table, now or as at a past time.

use super::layout::{
    ago, count, download_href, format_select, human_size, nothing_yet, post_button, size_cell,
    time, upload_panel, user_page, versions_href,
};
use crate::http::auth::Identity;
use crate::http::core::request::{at_param, page_params, query_flag, Page};
use crate::http::core::Handled;
use crate::http::ctx::Ctx;
use crate::http::views::status::{clients, ClientView, Status};
use crate::space::MachineKey;
use crate::store::catalog::{BlobForm, Latest};
use maud::{html, Markup};
use nimbus_common::paths::encode_segment;
use nimbus_common::time::format_utc;
use tiny_http::Request;

/// Files the `/files` page shows at a time (`limit=` chooses another).
const FILES_PAGE: usize = 1000;

/// One machine's card on the home page.
struct MachineLine {
    name: String,
    files: usize,
    bytes: u64,
    last_backup: i64,
    view: Option<ClientView>,
}

/// How a machine stands, for people: a class, an icon that reads without
/// colour, and words.
pub fn state_of(v: Option<&ClientView>) -> (&'static str, &'static str, String) {
    match v {
        None => ("browser", "•", "uploaded from the browser".into()),
        Some(v) => match v.status {
            Status::Browser => ("browser", "•", "uploaded from the browser".into()),
            Status::Stale => ("stale", "⚠", "stale: not heard from".into()),
            Status::Errors => ("errors", "✗", format!("errors ({})", v.errors)),
            Status::Ok if v.files == 0 => ("never", "○", "never backed up".into()),
            Status::Ok if v.pending > 0 => (
                "behind",
                "↑",
                format!("behind: {} waiting", count(v.pending, "file", "files")),
            ),
            Status::Ok => ("ok", "✓", "backed up".into()),
        },
    }
}

/// A machine's card: name (its folders' link, if it has files), state,
/// last backup in words, files and size, what it is doing, its OS.
pub fn card(
    href: &str,
    name: &str,
    files: usize,
    bytes: u64,
    last: Option<i64>,
    view: Option<&ClientView>,
    now: i64,
) -> Markup {
    let (class, icon, words) = state_of(view);
    html! {
        article class={ "card " (class) } {
            h2 { @if files > 0 { a href=(href) { (name) } } @else { (name) } }
            p.state { span.icon aria-hidden="true" { (icon) } " " (words) }
            p { "Last backup " @if let Some(t) = last { (ago(t, now)) } @else { "never" } }
            p { (count(files as u64, "file", "files")) ", " (human_size(bytes)) }
            @if let Some(v) = view {
                @if matches!(v.status, Status::Ok | Status::Errors) {
                    p.doing { @if v.pending > 0 { "sending " (count(v.pending, "file", "files")) } @else { "idle" } }
                }
                @if let Some(os) = &v.os { p.os { (os) @if let Some(ver) = &v.version { " · client " (ver) } } }
            }
        }
    }
}

/// `GET /`
pub fn home(ctx: &Ctx, who: &Identity) -> Handled {
    let space = who.space();
    let mut views: std::collections::HashMap<String, ClientView> = clients(ctx)
        .into_iter()
        .filter(|c| c.user == who.user)
        .map(|c| (c.machine.clone(), c))
        .collect();
    let machines: Vec<MachineLine> = ctx
        .dm
        .machines(space.prefix())
        .into_iter()
        .filter(|(_, t)| t.files > 0)
        .map(|(key, t)| {
            let name = space.machine_of(&key).unwrap_or(&key).to_string();
            MachineLine {
                view: views.remove(&name),
                name,
                files: t.files as usize,
                bytes: t.bytes,
                last_backup: t.newest,
            }
        })
        .collect();
    let now = nimbus_common::time::unix_now();
    let names: Vec<&str> = machines.iter().map(|m| m.name.as_str()).collect();
    let content = html! {
        h1 { "Your machines" }
        @if machines.is_empty() {
            (nothing_yet())
        } @else {
            section.cards aria-label="Your machines" {
                @for m in &machines {
                    (card(&format!("/browse/{}/", encode_segment(&m.name)), &m.name, m.files, m.bytes, Some(m.last_backup), m.view.as_ref(), now))
                }
                // Machines whose client reports but has sent nothing yet.
                @for v in views.values() {
                    (card(&format!("/browse/{}/", encode_segment(&v.machine)), &v.machine, 0, 0, None, Some(v), now))
                }
            }
            p { a href="/files" { "All files in one list" } ", also as they were at a past time." }
            (restore_form(&names, ""))
        }
        (upload_panel(who, None, "", ctx.max_upload_bytes))
        (devices_section(ctx, who))
    };
    Ok(user_page(who, "Nimbus backups", "", content))
}

/// `GET /files[?at=TIME][&deleted=1]`: every file of the user in one list,
/// now or as they were at TIME.
pub fn files_page(ctx: &Ctx, req: &Request, who: &Identity) -> Handled {
    let space = who.space();
    let at = at_param(req)?;
    let show_deleted = query_flag(req, "deleted");
    let page = page_params(req)?.unwrap_or(Page {
        limit: FILES_PAGE,
        after: None,
    });
    let after = page.after_in(&space);
    let (files, more) = ctx.dm.page(
        space.prefix(),
        at,
        show_deleted,
        after.as_ref().map(|(k, p)| (k.as_str(), p.as_str())),
        page.limit,
    );
    let machines: Vec<String> = ctx
        .dm
        .machines(space.prefix())
        .into_iter()
        .filter_map(|(key, _)| space.machine_of(&key).map(str::to_string))
        .collect();
    let names: Vec<&str> = machines.iter().map(String::as_str).collect();
    let next = files.last().filter(|_| more).map(|l| {
        let mut href = format!(
            "/files?limit={}&after={}",
            page.limit,
            encode_segment(&format!("{}/{}", l.machine(), l.path))
        );
        if let Some(t) = at {
            href.push_str(&format!("&at={t}"));
        }
        if show_deleted {
            href.push_str("&deleted=1");
        }
        href
    });
    let at_text = at.map(format_utc).unwrap_or_default();
    let content = html! {
        h1 { "All files" }
        form method="get" action="/files" class="bar" {
            label { "As they were at (UTC) " input name="at" value=(at_text) placeholder="2026-11-20T18:00:00Z"; }
            " "
            label { input type="checkbox" name="deleted" value="1" checked[show_deleted]; " show deleted files" }
            " "
            button type="submit" { "Show" }
        }
        (restore_form(&names, &at_text))
        p {
            (count(files.len() as u64, "file", "files"))
            @if page.after.is_some() || more { " on this page" }
            @if let Some(t) = at { " as they were at " (format_utc(t)) }
        }
        @if files.is_empty() {
            (nothing_yet())
        } @else {
            table {
                thead { tr {
                    th { "Machine" } th { "Path" } th { "Size" } th { "Backed up (UTC)" }
                    th { "Storage" } th { "History" }
                } }
                tbody { @for f in &files { (file_row(f, at.is_some())) } }
            }
            @if let Some(next) = &next {
                p.pages { a href=(next) { "Next " (page.limit) " files" } }
            }
        }
    };
    Ok(user_page(who, "Nimbus backups", "", content))
}

/// A line of the file list; `past` links a past version's download.
fn file_row(f: &Latest, past: bool) -> Markup {
    let machine = f.machine();
    let (class, state) = match f.form {
        _ if f.version.deleted => ("", "-"),
        BlobForm::Hot => ("hot", "hot"),
        BlobForm::Packed => ("packed", "packed"),
        BlobForm::Missing => ("missing", "missing"),
    };
    html! {
        tr {
            td { (machine) }
            td {
                @if f.version.deleted {
                    s { (f.path) } " (deleted)"
                } @else {
                    a href=(download_href(machine, &f.path, past.then_some(f.version.n))) { (super::icons::icon(super::icons::Kind::of_name(&f.path))) (f.path) }
                }
            }
            (size_cell(f.version.size))
            td { (time(f.version.backed_up_at)) }
            td class=(class) { (state) }
            td { a href=(versions_href(machine, &f.path)) { (count(f.versions as u64, "version", "versions")) } }
        }
    }
}

/// "Download a machine or folder as it was": a form for `/archive`.
fn restore_form(machines: &[&str], at: &str) -> Markup {
    if machines.is_empty() {
        return html! {};
    }
    html! {
        form method="get" action="/archive" class="bar" {
            b { "Restore" } " "
            label { "machine " select name="machine" { @for m in machines { option { (m) } } } }
            " "
            label { "folder " input name="path" placeholder="everything"; }
            " "
            label { "as at (UTC) " input name="at" value=(at) placeholder="now"; }
            " " (format_select()) " "
            button type="submit" { "Download" }
        }
    }
}

/// The user's machines (devices with a live token), each with a button to
/// revoke it; revoked ones are only counted.
fn devices_section(ctx: &Ctx, who: &Identity) -> Markup {
    let Ok(accounts) = ctx.auth.accounts.current() else {
        return html! { p.error { "Your machines cannot be listed right now." } };
    };
    let mine: Vec<_> = accounts
        .devices
        .iter()
        .filter(|d| d.user == who.user)
        .collect();
    let live: Vec<_> = mine.iter().filter(|d| !d.revoked).collect();
    html! {
        h2 { "Devices" }
        p { (live.len()) " logged in, " (mine.len() - live.len()) " revoked or replaced." }
        @if !live.is_empty() {
            table.devices {
                thead { tr {
                    th { "Machine" } th { "Device" } th { "Logged in (UTC)" }
                    th { "Last contact (UTC)" } th {}
                } }
                tbody {
                    @for d in &live {
                        tr {
                            td { (d.machine) }
                            td { (d.id) }
                            td { (format_utc(d.created_at)) }
                            td {
                                (ctx.clients
                                    .get(MachineKey::new(&d.user, &d.machine).as_str())
                                    .and_then(|c| c.last_contact)
                                    .map(format_utc)
                                    .unwrap_or_else(|| "-".into()))
                            }
                            td {
                                @if let Some((_, csrf)) = &who.session {
                                    (post_button(&format!("/devices/{}/revoke", d.id), csrf, "Revoke"))
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}
