//! `/api/v1/uploads`: resumable uploads in pieces, for the browser's
//! upload (and any client that wants to resume a large file).
//!
//! - `POST /api/v1/uploads` `{machine, path, size, mtime}`: starts one;
//! - `GET|HEAD /api/v1/uploads/{id}`: its state, `offset` = bytes stored;
//! - `PUT /api/v1/uploads/{id}` with `Content-Range: bytes a-b/size`: one
//!   piece, which must start at `offset`; the last one makes the version;
//! - `DELETE /api/v1/uploads/{id}`: cancels it.
//!
//! A browser session may upload into any machine of its user's space
//! (with its CSRF token); a device token only into its own machine.

use super::files::check_mtime;
use crate::http::auth::csrf::check_csrf_header;
use crate::http::auth::Identity;
use crate::http::core::body::small_body;
use crate::http::core::request::{content_length, header};
use crate::http::core::{ApiError, Handled, Reply};
use crate::http::ctx::Ctx;
use crate::uploads::{Piece, Uploader};
use nimbus_common::wire::{UploadStart, UploadState};
use tiny_http::Request;

/// A session may touch any upload of its user; a device token only those
/// into its own machine.
fn uploader(who: &Identity) -> Uploader<'_> {
    Uploader {
        user: &who.user,
        machine: who.machine.as_deref(),
    }
}

fn answer(status: u16, s: &UploadState) -> Reply {
    Reply::json(status, s).header("Upload-Offset", s.offset.to_string())
}

/// `POST /api/v1/uploads`
pub fn start(ctx: &Ctx, req: &mut Request, who: &Identity) -> Handled {
    check_csrf_header(who, req)?;
    let body = small_body(req, 64 * 1024)?;
    let start: UploadStart = serde_json::from_slice(&body).map_err(|e| {
        ApiError::bad(
            "bad_json",
            format!("body must be JSON {{\"machine\", \"path\", \"size\", \"mtime\"}}: {e}"),
        )
    })?;
    if let Some(mtime) = start.mtime {
        check_mtime(mtime)?;
    }
    if let Some(m) = &who.machine {
        if *m != start.machine {
            return Err(ApiError::Forbidden(format!(
                "this device is registered as machine {m:?} and may only upload to it"
            )));
        }
    }
    let s = ctx
        .uploads
        .start(ctx.dm, &who.user, &start, ctx.max_upload_bytes)?;
    Ok(answer(201, &s).header("Location", format!("/api/v1/uploads/{}", s.id)))
}

/// `GET|HEAD /api/v1/uploads/{id}`
pub fn state(ctx: &Ctx, who: &Identity, id: &str) -> Handled {
    Ok(answer(200, &ctx.uploads.state(uploader(who), id)?))
}

/// `PUT /api/v1/uploads/{id}`: one piece.
pub fn piece(ctx: &Ctx, req: &mut Request, who: &Identity, id: &str) -> Handled {
    check_csrf_header(who, req)?;
    let piece = content_range(header(req, "Content-Range"))?;
    if header(req, "Transfer-Encoding").is_some() {
        return Err(ApiError::LengthRequired);
    }
    let declared = content_length(req)?.unwrap_or(0);
    if declared != piece.len {
        return Err(ApiError::bad(
            "bad_range",
            format!(
                "Content-Range names {} bytes but the body has {declared}",
                piece.len
            ),
        ));
    }
    let s = ctx
        .uploads
        .append(ctx.dm, uploader(who), id, piece, req.as_reader())?;
    let created = s.result.as_ref().is_some_and(|r| r.new_version);
    Ok(answer(if created { 201 } else { 200 }, &s))
}

/// `DELETE /api/v1/uploads/{id}`
pub fn cancel(ctx: &Ctx, req: &Request, who: &Identity, id: &str) -> Handled {
    check_csrf_header(who, req)?;
    ctx.uploads.cancel(uploader(who), id)?;
    Ok(Reply::new(204))
}

/// `Content-Range: bytes a-b/size` as (a, b - a + 1, size); `bytes */size`
/// (no bytes: finish a complete upload) as (size, 0, size).
fn content_range(value: Option<&str>) -> Result<Piece, ApiError> {
    let bad = || {
        ApiError::bad(
            "bad_range",
            "each piece needs Content-Range: bytes FIRST-LAST/SIZE (LAST inclusive)",
        )
    };
    let spec = value
        .ok_or_else(bad)?
        .trim()
        .strip_prefix("bytes ")
        .ok_or_else(bad)?;
    let (range, total) = spec.split_once('/').ok_or_else(bad)?;
    let total: u64 = total.parse().map_err(|_| bad())?;
    if range == "*" {
        return Ok(Piece {
            start: total,
            len: 0,
            total,
        });
    }
    let (a, b) = range.split_once('-').ok_or_else(bad)?;
    let (a, b): (u64, u64) = (a.parse().map_err(|_| bad())?, b.parse().map_err(|_| bad())?);
    if b < a || b >= total {
        return Err(bad());
    }
    Ok(Piece {
        start: a,
        len: b - a + 1,
        total,
    })
}

#[cfg(test)]
mod tests {
    use super::{content_range, Piece};

    #[test]
    fn content_ranges() {
        assert_eq!(
            content_range(Some("bytes 0-9/100")).ok(),
            Some(Piece {
                start: 0,
                len: 10,
                total: 100
            })
        );
        assert_eq!(
            content_range(Some("bytes 90-99/100")).ok(),
            Some(Piece {
                start: 90,
                len: 10,
                total: 100
            })
        );
        assert_eq!(
            content_range(Some("bytes */100")).ok(),
            Some(Piece {
                start: 100,
                len: 0,
                total: 100
            })
        );
        for bad in [
            None,
            Some(""),
            Some("bytes 0-100/100"),
            Some("bytes 5-4/100"),
            Some("items 0-1/2"),
            Some("bytes 0-/100"),
            Some("bytes -5/100"),
            Some("bytes 0-1"),
            Some("bytes 0-1/x"),
        ] {
            assert!(content_range(bad).is_err(), "{bad:?}");
        }
    }
}
