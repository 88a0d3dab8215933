//! `GET`/`HEAD /download/{machine}/{path}[?version=N|?at=TIME]`: the latest
//! version or a past one, with Range, If-Range and a strong ETag; packed
//! files are decompressed as they stream.

use crate::http::core::conditional::{self, Outcome, Validators};
use crate::http::core::preview::{preview_kind, Preview, PREVIEW_CSP};
use crate::http::core::range;
use crate::http::core::request::{at_param, header, query_param};
use crate::http::core::{ApiError, Body, Handled, Reply};
use crate::http::ctx::Ctx;
use crate::space::FileTarget;
use crate::store::catalog::BlobForm;
use std::io;
use std::time::{Duration, UNIX_EPOCH};
use tiny_http::{Method, Request};

/// Only the owner's files: another user's file is 404, like a missing one.
pub fn download(ctx: &Ctx, req: &mut Request, target: FileTarget) -> Handled {
    serve(ctx, req, target, None)
}

/// `GET`/`HEAD /preview/{machine}/{path}[?version=N|?at=TIME]`: the same
/// bytes, `inline`, for the kinds of file a browser shows without running
/// anything: plain text (always `text/plain`), images, PDF, audio and
/// video. Any other kind (HTML above all) is refused: it is downloaded,
/// never shown. A sandboxing CSP goes with every preview but PDF's (whose
/// viewer a sandbox stops), so an SVG opened on its own runs no script.
pub fn preview(ctx: &Ctx, req: &mut Request, target: FileTarget) -> Handled {
    let name = target.path.rsplit('/').next().unwrap_or(&target.path);
    let kind = preview_kind(name).ok_or_else(|| {
        ApiError::bad(
            "no_preview",
            "files of this kind are not previewed (a browser could run them); download it instead",
        )
    })?;
    serve(ctx, req, target, Some(kind))
}

fn serve(ctx: &Ctx, req: &mut Request, target: FileTarget, preview: Option<Preview>) -> Handled {
    let FileTarget { machine: key, path } = target;
    let latest = match (query_param(req, "version"), at_param(req)?) {
        (Some(n), _) => {
            let n = n
                .parse()
                .map_err(|_| ApiError::bad("bad_version", "version must be a version number"))?;
            ctx.dm.version_n(&key, &path, n)
        }
        (None, Some(at)) => ctx.dm.at(&key, &path, at),
        (None, None) => ctx.dm.latest(&key, &path),
    }
    .filter(|l| !l.version.deleted)
    .ok_or(ApiError::NotFound)?;
    let v = &latest.version;
    let size = v.size;
    let etag = format!("\"{}\"", v.hash);
    let name = path.rsplit('/').next().unwrap_or(&path);
    // Last-Modified is when the server recorded this version: it only
    // grows from one version of a path to the next (a file's own mtime
    // can go back, and an If-Modified-Since against it would wrongly
    // answer 304).
    let last_modified = http_date(v.backed_up_at);

    // Private: a shared cache never keeps a user's file; no-cache: a
    // browser may keep it and revalidate with the ETag.
    let base = |status: u16| {
        Reply::new(status)
            .header("ETag", etag.clone())
            .header("Last-Modified", last_modified.clone())
            .header("Accept-Ranges", "bytes")
            .header("Cache-Control", "private, no-cache")
    };

    let validators = Validators {
        etag: &etag,
        last_modified: Some(v.backed_up_at),
        date_is_exact: !conditional::asks_dates(req) || date_is_exact(ctx, &key, &path, v),
    };
    match conditional::evaluate(req, &validators) {
        Outcome::NotModified => return Ok(base(304)),
        Outcome::Failed => return Err(ApiError::PreconditionFailed),
        Outcome::Proceed => {}
    }

    let part = range::select(header(req, "Range"), header(req, "If-Range"), &etag, size)
        .map_err(|()| ApiError::RangeNotSatisfiable { size })?;
    let (start, len) = (part.start, part.len);
    let mut reply = base(part.status);
    reply = match preview {
        None => reply
            .header("Content-Type", content_type(name))
            .header("Content-Disposition", content_disposition(name)),
        Some(kind) => {
            let r = reply
                .header("Content-Type", kind.content_type())
                .header("Content-Disposition", inline_disposition(name));
            match kind {
                Preview::Pdf => r,
                _ => r.header("Content-Security-Policy", PREVIEW_CSP),
            }
        }
    };
    if let Some(r) = part.content_range(size) {
        reply = reply.header("Content-Range", r);
    }
    if *req.method() == Method::Head {
        return Ok(reply.body(Body::Stream(Box::new(io::empty()), len)));
    }
    let (reader, form) = ctx.dm.open_blob(&v.hash, start, len)?;
    ctx.dm.touch(&v.hash);
    if form == BlobForm::Packed {
        if let Some(unpacker) = &ctx.unpacker {
            unpacker.request(v.hash);
        }
    }
    Ok(reply.body(Body::Stream(reader, len)))
}

/// Whether no other version of the file was recorded in the same second
/// as `v`: only then does an unchanged `Last-Modified` (whole seconds)
/// prove the same version. Asked only when a request carries a date.
fn date_is_exact(
    ctx: &Ctx,
    key: &crate::space::MachineKey,
    path: &str,
    v: &crate::store::catalog::Version,
) -> bool {
    ctx.dm.versions(key.as_str(), path).is_some_and(|all| {
        all.iter()
            .filter(|o| o.backed_up_at == v.backed_up_at)
            .count()
            == 1
    })
}

/// `unix` as an HTTP date, clamped to what one can show (data stored
/// before the upload checks may hold any value).
fn http_date(unix: i64) -> String {
    let clamped = unix.clamp(0, nimbus_common::wire::MTIME_MAX);
    let t = UNIX_EPOCH + Duration::from_secs(clamped as u64);
    httpdate::fmt_http_date(t)
}

fn content_type(name: &str) -> String {
    let mime = mime_guess::from_path(name).first_or_octet_stream();
    if mime.type_() == mime_guess::mime::TEXT {
        format!("{mime}; charset=utf-8")
    } else {
        mime.to_string()
    }
}

/// `inline`, with the names as [`content_disposition`] gives them.
fn inline_disposition(name: &str) -> String {
    content_disposition(name).replacen("attachment", "inline", 1)
}

/// `attachment` with an ASCII fallback name and the exact name in
/// `filename*` (RFC 6266, RFC 8187). Nothing from the name can end the
/// header or add another: quotes, backslashes and control characters are
/// replaced in the fallback, and everything but unreserved characters is
/// percent-encoded in `filename*`.
pub fn content_disposition(name: &str) -> String {
    let fallback: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_graphic() && c != '"' && c != '\\' || c == ' ' {
                c
            } else {
                '_'
            }
        })
        .collect();
    let exact = nimbus_common::paths::encode_segment(name);
    format!("attachment; filename=\"{fallback}\"; filename*=UTF-8''{exact}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn disposition_is_safe_and_exact() {
        let d = content_disposition("résumé \"final\"\r\nSet-Cookie: x.pdf");
        assert!(!d.contains('\r') && !d.contains('\n'));
        assert!(d.starts_with("attachment; filename=\"r_sum_ _final__"));
        assert!(d.contains(
            "filename*=UTF-8''r%C3%A9sum%C3%A9%20%22final%22%0D%0ASet-Cookie%3A%20x.pdf"
        ));
        assert!(d.is_ascii());
    }
}
