//! Finding files in the browser: a machine's folders with breadcrumbs,
//! sizes and file counts added up per folder, sortable by name, size or
//! time (`/browse/{machine}/{folder...}/`), and a search by name across all
//! of the user's machines (`/search?q=`). Plain HTML: links and forms work
//! without JavaScript.

use super::icons::{icon, Kind};
use super::layout::{
    count, download_href, format_select, human_size, size_cell, time, upload_panel, user_page,
    versions_href,
};
use crate::http::auth::{require_admin, Identity};
use crate::http::core::request::{at_param, query_param};
use crate::http::core::{ApiError, Handled};
use crate::http::ctx::Ctx;
use crate::space::UserSpace;
use crate::store::catalog::{FolderItem, Latest};
use maud::{html, Markup};
use nimbus_common::paths::{
    decode_rel_path, decode_segment, encode_path, encode_segment, validate_client_name,
};
use nimbus_common::time::format_utc;
use std::cmp::Reverse;
use tiny_http::Request;

/// Search results shown at most.
const MAX_RESULTS: usize = 500;

/// Entries of a folder shown per page.
const PAGE: usize = 1000;

enum Entry<'a> {
    Folder {
        name: String,
        files: usize,
        bytes: u64,
        latest: i64,
    },
    File(&'a Latest),
}

impl Entry<'_> {
    fn name(&self) -> &str {
        match self {
            Entry::Folder { name, .. } => name,
            Entry::File(l) => l.path.rsplit('/').next().unwrap_or(&l.path),
        }
    }
    fn bytes(&self) -> u64 {
        match self {
            Entry::Folder { bytes, .. } => *bytes,
            Entry::File(l) => l.version.size,
        }
    }
    fn time(&self) -> i64 {
        match self {
            Entry::Folder { latest, .. } => *latest,
            Entry::File(l) => l.version.backed_up_at,
        }
    }
}

/// Whose tree a page shows, where its folder links go, and whether it
/// offers contents (the owner) or only metadata (an admin).
pub struct View {
    /// The owner's space.
    pub space: UserSpace,
    /// URL prefix of folder links: `/browse` or `/admin/tree/{user}`.
    pub base: String,
    pub contents: bool,
}

/// `GET /browse/{machine}/{folder...}[?sort=name|size|time][&at=TIME]`
pub fn browse(ctx: &Ctx, req: &Request, who: &Identity, machine: &str, rest: &[&str]) -> Handled {
    let view = View {
        space: who.space(),
        base: "/browse".into(),
        contents: true,
    };
    tree_page(ctx, req, who, &view, machine, rest)
}

/// `GET /admin/tree/{user}/{machine}/{folder...}/`: an admin sees a
/// client's tree with sizes, never its contents (no download links, and
/// the download routes stay the owner's).
pub fn admin_tree(
    ctx: &Ctx,
    req: &Request,
    who: &Identity,
    user: &str,
    machine: &str,
    rest: &[&str],
) -> Handled {
    require_admin(who)?;
    let user = decode_segment(user)?;
    crate::accounts::validate_name(&user).map_err(|_| ApiError::NotFound)?;
    let view = View {
        base: format!("/admin/tree/{}", encode_segment(&user)),
        space: UserSpace::of(&user),
        contents: false,
    };
    tree_page(ctx, req, who, &view, machine, rest)
}

fn tree_page(
    ctx: &Ctx,
    req: &Request,
    who: &Identity,
    view: &View,
    machine: &str,
    rest: &[&str],
) -> Handled {
    let machine = decode_segment(machine)?;
    validate_client_name(&machine)?;
    let parts: Vec<&str> = rest.iter().copied().filter(|s| !s.is_empty()).collect();
    let folder = if parts.is_empty() {
        String::new()
    } else {
        decode_rel_path(parts.iter().copied())?
    };
    let at = at_param(req)?;
    let key = view.space.machine(&machine);
    let Some((sum, items)) = ctx.dm.folder(&key, &folder, at) else {
        return Err(ApiError::NotFound);
    };
    if sum.files == 0 {
        return Err(ApiError::NotFound);
    }
    let mut entries: Vec<Entry> = items
        .iter()
        .map(|i| match i {
            FolderItem::Folder { name, totals } => Entry::Folder {
                name: name.clone(),
                files: totals.files as usize,
                bytes: totals.bytes,
                latest: totals.newest,
            },
            FolderItem::File(l) => Entry::File(l),
        })
        .collect();
    let sort = query_param(req, "sort").unwrap_or_default();
    match sort.as_str() {
        "size" => entries.sort_by_key(|e| Reverse(e.bytes())),
        "time" => entries.sort_by_key(|e| Reverse(e.time())),
        _ => entries.sort_by(|a, b| {
            // Folders first, then by name.
            let folder = |e: &Entry| !matches!(e, Entry::Folder { .. });
            (folder(a), a.name().to_lowercase()).cmp(&(folder(b), b.name().to_lowercase()))
        }),
    }

    let m = encode_segment(&machine);
    let at_q = at.map(|t| format!("at={t}&")).unwrap_or_default();
    // Long folders are shown a page at a time.
    let from = query_param(req, "from")
        .and_then(|f| f.parse::<usize>().ok())
        .unwrap_or(0)
        .min(entries.len());
    let shown = &entries[from..entries.len().min(from + PAGE)];
    let sort_q = match sort.as_str() {
        "size" | "time" | "name" => format!("sort={sort}&"),
        _ => String::new(),
    };
    let here = if folder.is_empty() {
        format!("{}/{m}/", view.base)
    } else {
        format!("{}/{m}/{}/", view.base, encode_path(&folder))
    };
    // A column head: the current sort is marked for the page's script,
    // the others are links that sort by them.
    let head = |key: &str, label: &str| {
        let current = sort == key || (key == "name" && sort.is_empty());
        let order = if key == "name" {
            "ascending"
        } else {
            "descending"
        };
        html! {
            @if current {
                th data-key=(key) aria-sort=(order) { (label) }
            } @else {
                th data-key=(key) { a href={ (here) "?" (at_q) "sort=" (key) } { (label) } }
            }
        }
    };
    let content = html! {
        (crumbs(&view.base, &machine, &folder, ""))
        p {
            (count(sum.files, "file", "files")) ", " (human_size(sum.bytes))
            @if let Some(t) = at { ", as they were at " (time(t)) }
        }
        (history_of(ctx, view, &key, &machine, &folder, &here, at))
        @if entries.len() > PAGE {
            p.pages {
                "Entries " (from + 1) " to " (from + shown.len()) " of " (entries.len()) ". "
                @if from > 0 {
                    a href={ (here) "?" (at_q) (sort_q) "from=" (from.saturating_sub(PAGE)) } { "Previous" } " "
                }
                @if from + PAGE < entries.len() {
                    a href={ (here) "?" (at_q) (sort_q) "from=" (from + PAGE) } { "Next" }
                }
            }
        }
        table.browse {
            thead { tr { (head("name", "Name")) (head("size", "Size")) (head("time", "Backed up")) th {} } }
            tbody {
                @for e in shown {
                    @match e {
                        Entry::Folder { name, files, bytes, latest } => {
                            @let sub = if folder.is_empty() { name.clone() } else { format!("{folder}/{name}") };
                            tr.folder {
                                td { a href={ (view.base) "/" (m) "/" (encode_path(&sub)) "/" @if let Some(t) = at { "?at=" (t) } } { (icon(Kind::Folder)) (name) "/" } }
                                (size_cell(*bytes))
                                td { (time(*latest)) }
                                td { (count(*files as u64, "file", "files")) }
                            }
                        }
                        Entry::File(l) if !view.contents => {
                            tr.file {
                                td { (icon(Kind::of_name(e.name()))) (e.name()) }
                                (size_cell(l.version.size))
                                td { (time(l.version.backed_up_at)) }
                                td { (count(l.versions as u64, "version", "versions")) }
                            }
                        }
                        Entry::File(l) => {
                            tr.file {
                                td { a href=(download_href(&machine, &l.path, at.map(|_| l.version.n))) { (icon(Kind::of_name(e.name()))) (e.name()) } }
                                (size_cell(l.version.size))
                                td { (time(l.version.backed_up_at)) }
                                td { a href=(versions_href(&machine, &l.path)) { (count(l.versions as u64, "version", "versions")) } }
                            }
                        }
                    }
                }
            }
        }
        @if !view.contents {
            p { "Metadata only: contents stay their owner's." }
        } @else {
            @if at.is_none() {
                (upload_panel(who, Some(&machine), &folder, ctx.max_upload_bytes))
            }
            form method="get" action="/archive" class="bar" {
                input type="hidden" name="machine" value=(machine);
                input type="hidden" name="path" value=(folder);
                b { "Download this folder" } " "
                label { "as at (UTC) " input name="at" value=(at.map(format_utc).unwrap_or_default()) placeholder="now"; }
                " " (format_select()) " "
                button type="submit" { "Download" }
            }
        }
    };
    let title = if folder.is_empty() || !view.contents {
        machine.clone()
    } else {
        format!("{machine}/{folder}")
    };
    Ok(user_page(who, &format!("{title} · Nimbus"), "", content))
}

/// When things changed here: a timeline of the last days (a bar leads to
/// this folder as it was at the end of that day) and a date to pick any
/// other; at a machine's top also its storage over time.
fn history_of(
    ctx: &Ctx,
    view: &View,
    key: &crate::space::MachineKey,
    machine: &str,
    folder: &str,
    here: &str,
    at: Option<i64>,
) -> Markup {
    use super::charts::{line_chart, timeline, Series, Timeline, STORAGE_DAYS, TIMELINE_DAYS};
    use crate::history::{day_name, day_of};
    let today = day_of(nimbus_common::time::unix_now());
    let days = ctx
        .dm
        .activity(key.as_str(), folder, today.saturating_sub(TIMELINE_DAYS));
    let link = |d: u32| format!("{here}?at={}", d as i64 * 86_400 + 86_399);
    let what = if folder.is_empty() {
        format!("Versions backed up per day on {machine}")
    } else {
        format!("Versions backed up per day in {machine}/{folder}")
    };
    let storage = folder.is_empty().then(|| {
        let h = ctx
            .history
            .machine(key.as_str(), today.saturating_sub(STORAGE_DAYS));
        let series = [
            Series {
                label: "Current files",
                colour: "#1f6feb",
                points: h.iter().map(|(d, m)| (*d, m.bytes)).collect(),
            },
            Series {
                label: "Stored on disk",
                colour: "#2da44e",
                points: h.iter().map(|(d, m)| (*d, m.stored)).collect(),
            },
        ];
        line_chart(
            "machine-storage",
            &format!("Storage of {machine} over time"),
            "The size of the current files and what they take on disk, once a day.",
            &series,
            today,
        )
    });
    html! {
        @match days {
            Some(days) => {
                (timeline(&Timeline {
                    id: "timeline",
                    title: what,
                    caption: "Backups per day. A bar leads to these files as they were at the end of that day.",
                    days: &days,
                    today,
                    link: &link,
                    chosen: at.map(day_of),
                }))
            }
            None => {
                p.note { "This folder holds too many versions to draw its timeline; "
                    a href={ (view.base) "/" (encode_segment(machine)) "/" } { "the machine's" } " shows every day." }
            }
        }
        form method="get" action=(here) class="bar" {
            label { "Show as it was on (UTC) "
                input type="date" name="at" value=(at.map(|t| day_name(day_of(t))).unwrap_or_default()); }
            " " button type="submit" { "Show" }
            @if at.is_some() { " " a href=(here) { "Now" } }
        }
        @if let Some(chart) = storage { (chart) }
    }
}

/// Breadcrumbs: Machines / machine / a / b, each a link, then `last` (a
/// file's name, not a link) when given.
pub fn crumbs(base: &str, machine: &str, folder: &str, last: &str) -> Markup {
    let m = encode_segment(machine);
    let mut so_far = String::new();
    let parts: Vec<(String, &str)> = folder
        .split('/')
        .filter(|p| !p.is_empty())
        .map(|part| {
            if !so_far.is_empty() {
                so_far.push('/');
            }
            so_far.push_str(part);
            (format!("{base}/{m}/{}/", encode_path(&so_far)), part)
        })
        .collect();
    html! {
        nav.crumbs {
            a href="/" { "Machines" } " / " a href={ (base) "/" (m) "/" } { (machine) }
            @for (href, part) in &parts { " / " a href=(href) { (part) } }
            @if !last.is_empty() { " / " (last) }
        }
    }
}

/// `GET /search?q=TEXT`: files whose path contains TEXT (ignoring case),
/// on every machine of the user.
pub fn search(ctx: &Ctx, req: &Request, who: &Identity) -> Handled {
    let q = query_param(req, "q").unwrap_or_default();
    let q = q.trim();
    if q.len() > 256 {
        return Err(ApiError::bad("bad_query", "search for at most 256 bytes"));
    }
    let space = who.space();
    let needle = q.to_lowercase();
    let (found, hits): (usize, Vec<Latest>) = if q.is_empty() {
        (0, Vec::new())
    } else {
        ctx.dm.search(space.prefix(), &needle, MAX_RESULTS)
    };
    let content = html! {
        @if q.is_empty() {
            p { "Type part of a file's name." }
        } @else {
            h1 { "Files matching \u{201c}" (q) "\u{201d}" }
            p {
                (found) " found"
                @if found > MAX_RESULTS { ", the first " (MAX_RESULTS) " shown" }
            }
            @if !hits.is_empty() {
                table.results {
                    thead { tr { th { "Machine" } th { "Path" } th { "Size" } th { "Backed up" } } }
                    tbody {
                        @for l in &hits {
                            @let machine = l.machine();
                            tr {
                                td { (machine) }
                                td { a href=(versions_href(machine, &l.path)) { (icon(Kind::of_name(&l.path))) (l.path) } }
                                td.n { (human_size(l.version.size)) }
                                td { (time(l.version.backed_up_at)) }
                            }
                        }
                    }
                }
            }
        }
    };
    Ok(user_page(who, "Search · Nimbus", q, content))
}
