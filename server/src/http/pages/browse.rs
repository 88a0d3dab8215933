//! Finding files in the browser: a machine's folders with breadcrumbs,
//! sizes and file counts added up per folder, sortable by name, size or
//! time (`/browse/{machine}/{folder...}/`), and a search by name across all
//! of the user's machines (`/search?q=`). Plain HTML: links and forms work
//! without JavaScript.

use super::auth::Identity;
use super::files::at_param;
use super::index::{escape, human_size, page_shell, time_html, top};
use super::reply::{ApiError, Reply};
use super::router::{query_param, Handled};
use super::Ctx;
use crate::space::UserSpace;
use crate::store::catalog::Latest;
use nimbus_common::paths::{
    decode_rel_path, decode_segment, encode_path, encode_segment, validate_client_name,
};
use std::cmp::Reverse;
use std::collections::BTreeMap;
use std::fmt::Write;
use tiny_http::Request;

/// Search results shown at most.
const MAX_RESULTS: usize = 500;

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
    if who.role != crate::accounts::Role::Admin {
        return Err(ApiError::Forbidden("only admins see other clients".into()));
    }
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
    let prefix = if folder.is_empty() {
        String::new()
    } else {
        format!("{folder}/")
    };
    let files = ctx.dm.files_in(&key, &folder, at, false);
    if files.is_empty() {
        return Err(ApiError::NotFound);
    }
    let mut folders: BTreeMap<String, (usize, u64, i64)> = BTreeMap::new();
    let mut entries = Vec::new();
    for l in &files {
        match l.path[prefix.len()..].split_once('/') {
            Some((sub, _)) => {
                let f = folders.entry(sub.to_string()).or_default();
                f.0 += 1;
                f.1 += l.version.size;
                f.2 = f.2.max(l.version.backed_up_at);
            }
            None => entries.push(Entry::File(l)),
        }
    }
    entries.extend(
        folders
            .into_iter()
            .map(|(name, (files, bytes, latest))| Entry::Folder {
                name,
                files,
                bytes,
                latest,
            }),
    );
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
    let mut html = top(who, "");
    html.push_str(&crumbs(&view.base, &machine, &folder, ""));
    let total: u64 = files.iter().map(|l| l.version.size).sum();
    let _ = write!(
        html,
        "<p>{} file(s), {}{}</p>",
        files.len(),
        human_size(total),
        at.map(|t| format!(", as they were at {}", time_html(t)))
            .unwrap_or_default()
    );
    let here = if folder.is_empty() {
        format!("{}/{m}/", view.base)
    } else {
        format!("{}/{m}/{}/", view.base, encode_path(&folder))
    };
    let head = |key: &str, label: &str| {
        if sort == key || (key == "name" && sort.is_empty()) {
            format!(
                "<th data-key=\"{key}\" aria-sort=\"{}\">{label}</th>",
                if key == "name" {
                    "ascending"
                } else {
                    "descending"
                }
            )
        } else {
            format!(
                "<th data-key=\"{key}\"><a href=\"{}\">{label}</a></th>",
                escape(&format!("{here}?{at_q}sort={key}"))
            )
        }
    };
    let _ = write!(
        html,
        "<table class=\"browse\"><thead><tr>{}{}{}<th></th></tr></thead><tbody>",
        head("name", "Name"),
        head("size", "Size"),
        head("time", "Backed up"),
    );
    for e in &entries {
        match e {
            Entry::Folder {
                name,
                files,
                bytes,
                latest,
            } => {
                let sub = if folder.is_empty() {
                    name.clone()
                } else {
                    format!("{folder}/{name}")
                };
                let _ = write!(
                    html,
                    "<tr class=\"folder\"><td><a href=\"{}\">{}/</a></td><td class=\"n\" title=\"{bytes} bytes\">{}</td>\
                     <td>{}</td><td>{files} file(s)</td></tr>",
                    escape(&format!("{}/{m}/{}/{}", view.base, encode_path(&sub), at.map(|t| format!("?at={t}")).unwrap_or_default())),
                    escape(name),
                    human_size(*bytes),
                    time_html(*latest),
                );
            }
            Entry::File(l) if !view.contents => {
                let _ = write!(
                    html,
                    "<tr class=\"file\"><td>{}</td><td class=\"n\" title=\"{} bytes\">{}</td>\
                     <td>{}</td><td>{} version(s)</td></tr>",
                    escape(e.name()),
                    l.version.size,
                    human_size(l.version.size),
                    time_html(l.version.backed_up_at),
                    l.versions,
                );
            }
            Entry::File(l) => {
                let p = encode_path(&l.path);
                let download = match at {
                    None => format!("/download/{m}/{p}"),
                    Some(_) => format!("/download/{m}/{p}?version={}", l.version.n),
                };
                let _ = write!(
                    html,
                    "<tr class=\"file\"><td><a href=\"{}\">{}</a></td><td class=\"n\" title=\"{} bytes\">{}</td>\
                     <td>{}</td><td><a href=\"{}\">{} version(s)</a></td></tr>",
                    escape(&download),
                    escape(e.name()),
                    l.version.size,
                    human_size(l.version.size),
                    time_html(l.version.backed_up_at),
                    escape(&format!("/versions/{m}/{p}")),
                    l.versions,
                );
            }
        }
    }
    html.push_str("</tbody></table>");
    if !view.contents {
        html.push_str("<p>Metadata only: contents stay their owner's.</p>");
        return Ok(Reply::html(
            200,
            page_shell(&format!("{machine} · Nimbus"), &html),
        ));
    }
    if at.is_none() {
        html.push_str(&super::upload::panel(
            who,
            Some(&machine),
            &folder,
            ctx.max_upload_bytes,
        ));
    }
    let _ = write!(
        html,
        "<form method=\"get\" action=\"/archive\" class=\"bar\"><input type=\"hidden\" name=\"machine\" value=\"{}\">\
         <input type=\"hidden\" name=\"path\" value=\"{}\"><b>Download this folder</b> \
         <label>as at (UTC) <input name=\"at\" value=\"{}\" placeholder=\"now\"></label> \
         <label>as <select name=\"format\"><option>zip</option><option>tar</option></select></label> \
         <button type=\"submit\">Download</button></form>",
        escape(&machine),
        escape(&folder),
        at.map(nimbus_common::time::format_utc).unwrap_or_default()
    );
    let title = if folder.is_empty() {
        machine.clone()
    } else {
        format!("{machine}/{folder}")
    };
    Ok(Reply::html(
        200,
        page_shell(&format!("{title} · Nimbus"), &html),
    ))
}

/// Breadcrumbs: Machines / machine / a / b, each a link, then `last` (a
/// file's name, not a link) when given.
pub fn crumbs(base: &str, machine: &str, folder: &str, last: &str) -> String {
    let m = encode_segment(machine);
    let mut html = format!(
        "<nav class=\"crumbs\"><a href=\"/\">Machines</a> / <a href=\"{}\">{}</a>",
        escape(&format!("{base}/{m}/")),
        escape(machine)
    );
    let mut so_far = String::new();
    for part in folder.split('/').filter(|p| !p.is_empty()) {
        if !so_far.is_empty() {
            so_far.push('/');
        }
        so_far.push_str(part);
        let _ = write!(
            html,
            " / <a href=\"{}\">{}</a>",
            escape(&format!("{base}/{m}/{}/", encode_path(&so_far))),
            escape(part)
        );
    }
    if !last.is_empty() {
        let _ = write!(html, " / {}", escape(last));
    }
    html.push_str("</nav>");
    html
}

/// `GET /search?q=TEXT`: files whose path contains TEXT (ignoring case),
/// on every machine of the user.
pub fn search(ctx: &Ctx, req: &Request, who: &Identity) -> Handled {
    let q = query_param(req, "q").unwrap_or_default();
    let q = q.trim();
    if q.len() > 256 {
        return Err(ApiError::bad("bad_query", "search for at most 256 bytes"));
    }
    let mut html = top(who, q);
    if q.is_empty() {
        html.push_str("<p>Type part of a file's name.</p>");
    } else {
        let space = who.space();
        let needle = q.to_lowercase();
        let hits: Vec<Latest> = ctx
            .dm
            .tree(space.prefix(), None, false)
            .into_iter()
            .filter(|l| l.path.to_lowercase().contains(&needle))
            .collect();
        let _ = write!(
            html,
            "<h1>Files matching \u{201c}{}\u{201d}</h1><p>{} found{}</p>",
            escape(q),
            hits.len(),
            if hits.len() > MAX_RESULTS {
                format!(", the first {MAX_RESULTS} shown")
            } else {
                String::new()
            }
        );
        if !hits.is_empty() {
            html.push_str(
                "<table class=\"results\"><thead><tr><th>Machine</th><th>Path</th><th>Size</th>\
                 <th>Backed up</th></tr></thead><tbody>",
            );
            for l in hits.iter().take(MAX_RESULTS) {
                let machine = space.machine_of(&l.client).unwrap_or(&l.client);
                let _ = write!(
                    html,
                    "<tr><td>{}</td><td><a href=\"{}\">{}</a></td><td class=\"n\">{}</td><td>{}</td></tr>",
                    escape(machine),
                    escape(&format!(
                        "/versions/{}/{}",
                        encode_segment(machine),
                        encode_path(&l.path)
                    )),
                    escape(&l.path),
                    human_size(l.version.size),
                    time_html(l.version.backed_up_at),
                );
            }
            html.push_str("</tbody></table>");
        }
    }
    Ok(Reply::html(200, page_shell("Search · Nimbus", &html)))
}
