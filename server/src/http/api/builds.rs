//! The client programs on offer: `GET /api/v1/clients` lists the newest
//! build of each OS and architecture, `GET /clients/{file}` sends one,
//! with Range and a strong ETag (its SHA-256). Neither needs an identity:
//! the programs are the same for everyone and hold no secret, and a new
//! machine fetches its client before it has any login.

use crate::client_builds::ClientBuild;
use crate::http::api::download::content_disposition;
use crate::http::core::conditional::{self, Outcome, Validators};
use crate::http::core::range;
use crate::http::core::request::header;
use crate::http::core::{ApiError, Body, Handled, Reply};
use crate::http::ctx::Ctx;
use nimbus_common::wire::ClientBuildInfo;
use std::io::{self, Read, Seek, SeekFrom};
use tiny_http::{Method, Request};

/// A build as the protocol shows it.
pub fn info(b: &ClientBuild) -> ClientBuildInfo {
    ClientBuildInfo {
        os: b.os.as_str().to_string(),
        arch: b.arch.to_string(),
        version: b.version.clone(),
        url: format!("/clients/{}", b.file),
        size: b.size,
        sha256: b.sha256.clone(),
        signature: b.signature.clone(),
    }
}

/// `GET /api/v1/clients`
pub fn list(ctx: &Ctx) -> Handled {
    let list: Vec<ClientBuildInfo> = ctx.builds.newest_each().iter().map(info).collect();
    Ok(Reply::json(200, &list).header("Cache-Control", "no-cache"))
}

/// `GET /clients/{file}`: 404 for anything that is not a build.
pub fn download(ctx: &Ctx, req: &Request, file: &str) -> Handled {
    let (build, mut f) = ctx.builds.open(file).ok_or(ApiError::NotFound)?;
    let size = build.size;
    let etag = format!("\"{}\"", build.sha256);
    let base = |status: u16| {
        Reply::new(status)
            .header("ETag", etag.clone())
            .header("Accept-Ranges", "bytes")
            .header("Cache-Control", "no-cache")
            .header("X-Checksum-Sha256", build.sha256.clone())
    };
    let validators = Validators {
        etag: &etag,
        last_modified: None,
        date_is_exact: true,
    };
    match conditional::evaluate(req, &validators) {
        Outcome::NotModified => return Ok(base(304)),
        Outcome::Failed => return Err(ApiError::PreconditionFailed),
        Outcome::Proceed => {}
    }
    let part = range::select(header(req, "Range"), header(req, "If-Range"), &etag, size)
        .map_err(|()| ApiError::RangeNotSatisfiable { size })?;
    let (start, len) = (part.start, part.len);
    let mut reply = base(part.status)
        .header("Content-Type", "application/octet-stream")
        .header("Content-Disposition", content_disposition(&build.file));
    if let Some(r) = part.content_range(size) {
        reply = reply.header("Content-Range", r);
    }
    if *req.method() == Method::Head {
        return Ok(reply.body(Body::Stream(Box::new(io::empty()), len)));
    }
    f.seek(SeekFrom::Start(start))?;
    Ok(reply.body(Body::Stream(Box::new(f.take(len)), len)))
}
