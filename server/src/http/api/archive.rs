//! `GET /archive`: a folder or a whole machine as one archive (zip or
//! tar) as it was at a time, streamed while it is built.

use super::download::content_disposition;
use crate::archive::{Archive, Format, Item};
use crate::http::auth::Identity;
use crate::http::core::request::{at_param, query_param};
use crate::http::core::{ApiError, Body, Handled, Reply};
use crate::http::ctx::Ctx;
use nimbus_common::paths::{validate_client_name, validate_rel_path};
use nimbus_common::time::format_utc;
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
        .header("Content-Disposition", content_disposition(&name))
        .header("Cache-Control", "no-store")
        .body(Body::Stream(Box::new(reader), len)))
}
