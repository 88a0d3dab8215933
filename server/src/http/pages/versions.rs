//! Restoring from the browser: a file's versions on a page, and a folder or
//! a whole machine as one archive (zip or tar) as it was at a time,
//! streamed while it is built.

use super::auth::Identity;
use super::files::at_param;
use super::index::{escape, human_size, page_shell};
use super::reply::{ApiError, Body, Reply};
use super::router::{query_param, Handled};
use super::Ctx;
use crate::archive::{Archive, Format, Item};
use crate::space::FileTarget;
use nimbus_common::paths::{encode_path, encode_segment, validate_client_name, validate_rel_path};
use nimbus_common::time::format_utc;
use std::fmt::Write;
use tiny_http::Request;

/// `GET /archive?machine=M[&path=FOLDER][&at=TIME][&format=zip|tar]`
pub fn archive(ctx: &Ctx, req: &Request, who: &Identity) -> Handled {
    let machine = query_param(req, "machine")
        .filter(|m| !m.is_empty())
        .ok_or_else(|| ApiError::bad("missing_machine", "say which machine: machine=NAME"))?;
    validate_client_name(&machine)?;
    let folder = query_param(req, "path")
        .map(|p| p.trim_matches('/').to_string())
        .unwrap_or_default();
    if !folder.is_empty() {
        validate_rel_path(&folder)?;
    }
    let format = match query_param(req, "format").as_deref() {
        None | Some("") => Format::Zip,
        Some(f) => Format::parse(f)
            .ok_or_else(|| ApiError::bad("bad_format", "format must be zip or tar"))?,
    };
    let at = at_param(req)?;
    let key = who.machine(&machine);
    let items: Vec<Item> = ctx
        .dm
        .files_in(&key, &folder, at, true)
        .into_iter()
        .map(|l| Item {
            // Inside the archive: relative to the folder's parent, so the
            // folder itself is the archive's top level.
            name: match folder.rsplit_once('/') {
                Some((parent, _)) => l.path[parent.len() + 1..].to_string(),
                None => l.path.clone(),
            },
            size: l.version.size,
            mtime: l.version.mtime,
            hash: l.version.hash,
        })
        .collect();
    if items.is_empty() {
        return Err(ApiError::NotFound);
    }
    // Every content must be there before the first byte goes out: a
    // missing one would cut the archive short.
    for i in &items {
        if ctx.dm.blob_missing(&i.hash) {
            return Err(ApiError::Internal(format!(
                "blob {} of {machine}/{} is missing; run nimbus-server check",
                i.hash, i.name
            )));
        }
    }
    let base = match folder.rsplit('/').next() {
        Some(last) if !folder.is_empty() => format!("{machine}-{last}"),
        _ => machine.clone(),
    };
    let stamp =
        format_utc(at.unwrap_or_else(nimbus_common::time::unix_now)).replace([':', '-'], "");
    let name = format!("{base}-{stamp}.{}", format.extension());
    let archive = Archive::new(format, items);
    let len = archive.len();
    let dm = ctx.dm;
    let reader = archive.into_reader(Box::new(move |item: &Item| {
        dm.open_blob(&item.hash, 0, item.size)
            .map(|(r, _)| r)
            .map_err(std::io::Error::other)
    }));
    Ok(Reply::new(200)
        .header("Content-Type", format.content_type())
        .header(
            "Content-Disposition",
            super::download::content_disposition(&name),
        )
        .header("Cache-Control", "no-store")
        .body(Body::Stream(Box::new(reader), len)))
}

/// `GET /versions/{machine}/{path}`: a file's versions, each downloadable.
pub fn versions_page(ctx: &Ctx, who: &Identity, machine: &str, rest: &[&str]) -> Handled {
    let FileTarget { machine: key, path } = who.file(machine, rest)?;
    let machine = key.machine();
    let versions = ctx
        .dm
        .versions(key.as_str(), &path)
        .ok_or(ApiError::NotFound)?;
    let (folder, name) = path.rsplit_once('/').unwrap_or(("", &path));
    let mut html = super::index::top(who, "");
    html.push_str(&super::browse::crumbs("/browse", machine, folder, name));
    let _ = write!(
        html,
        "<h1>{}</h1><p>On <b>{}</b>.</p>\
         <table><thead><tr><th>Version</th><th>Recorded (UTC)</th><th>Modified (UTC)</th>\
         <th>Size</th><th>Content</th></tr></thead><tbody>",
        escape(&path),
        escape(machine)
    );
    for v in versions.iter().rev() {
        let cell = if v.deleted {
            "deleted".to_string()
        } else {
            format!(
                "<a href=\"{}\">download</a>",
                escape(&format!(
                    "/download/{}/{}?version={}",
                    encode_segment(machine),
                    encode_path(&path),
                    v.n
                ))
            )
        };
        let _ = write!(
            html,
            "<tr><td class=\"n\">{}</td><td>{}</td><td>{}</td><td class=\"n\">{}</td><td>{cell}</td></tr>",
            v.n,
            format_utc(v.backed_up_at),
            if v.deleted { "-".into() } else { format_utc(v.mtime) },
            if v.deleted { "-".into() } else { human_size(v.size) },
        );
    }
    html.push_str("</tbody></table>");
    Ok(Reply::html(
        200,
        page_shell(&format!("{path} · Nimbus"), &html),
    ))
}
