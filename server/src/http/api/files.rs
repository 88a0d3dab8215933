//! `/api/v1/files`: the listing, uploads (`PUT`, bytes in the body) and
//! records by reference (`POST`, for content the server already holds).

use crate::http::auth::Identity;
use crate::http::core::body::small_body;
use crate::http::core::request::{at_param, content_length, header, page_params, query_flag};
use crate::http::core::{ApiError, Body, Handled, Reply};
use crate::http::ctx::Ctx;
use crate::space::{FileTarget, MachineKey};
use crate::store::catalog::{BlobForm, Latest};
use crate::store::Recorded;
use log::info;
use nimbus_common::hash::ContentHash;
use nimbus_common::paths::encode_segment;
use nimbus_common::time::unix_now;
use nimbus_common::wire::{
    FileEntry, RecordRequest, UploadReply, VersionEntry, HEADER_HASH, HEADER_MTIME,
};
use tiny_http::Request;

/// Largest JSON body a record request may have.
const MAX_RECORD_BODY: u64 = 64 * 1024;

/// A listing entry; the user part of the catalog key is cut, leaving the machine.
pub fn entry(l: Latest) -> FileEntry {
    FileEntry {
        client: l.machine().to_string(),
        path: l.path,
        size: l.version.size,
        mtime: l.version.mtime,
        hash: l.version.hash,
        backed_up_at: l.version.backed_up_at,
        packed: l.form == BlobForm::Packed,
        versions: l.versions,
        version: l.version.n,
        deleted: l.version.deleted,
    }
}

/// Files a streamed listing takes from the catalog per read lock.
const SLICE: usize = 512;

/// `GET /api/v1/files[?at=TIME][&deleted=1][&limit=N[&after=CURSOR]]`: the
/// caller's files, on all of the caller's machines, as they were at TIME
/// (default: now). Without `limit` the whole list is streamed as it is
/// walked (chunked), in bounded memory; with it, one page, and when more
/// follow, the cursor of the next in `X-Nimbus-Next` and a `Link` header.
pub fn list(ctx: &Ctx, req: &Request, who: &Identity) -> Handled {
    let space = who.space();
    let at = at_param(req)?;
    let deleted = query_flag(req, "deleted");
    let Some(page) = page_params(req)? else {
        let listing = Listing {
            dm: ctx.dm,
            prefix: space.prefix().to_string(),
            at,
            deleted,
            after: None,
            buf: Vec::new(),
            pos: 0,
            started: false,
            done: false,
        };
        return Ok(Reply::new(200)
            .header("Content-Type", "application/json")
            .body(Body::Chunked(Box::new(listing))));
    };
    let after = page.after_in(&space);
    let (files, more) = ctx.dm.page(
        space.prefix(),
        at,
        deleted,
        after.as_ref().map(|(k, p)| (k.as_str(), p.as_str())),
        page.limit,
    );
    let next = files
        .last()
        .filter(|_| more)
        .map(|l| encode_segment(&format!("{}/{}", l.machine(), l.path)));
    let entries: Vec<FileEntry> = files.into_iter().map(entry).collect();
    let mut reply = Reply::json(200, &entries);
    if let Some(next) = next {
        let mut link = format!("/api/v1/files?limit={}&after={next}", page.limit);
        if let Some(t) = at {
            link.push_str(&format!("&at={t}"));
        }
        if deleted {
            link.push_str("&deleted=1");
        }
        reply = reply
            .header("X-Nimbus-Next", next)
            .header("Link", format!("<{link}>; rel=\"next\""));
    }
    Ok(reply)
}

/// The JSON array of a listing, produced a slice at a time: each slice is
/// walked under the catalog's read lock, from the last file sent. A file
/// recorded behind the walk while it goes on is not in this listing (the
/// next one has it); none is listed twice.
struct Listing {
    dm: &'static crate::store::DataManager,
    prefix: String,
    at: Option<i64>,
    deleted: bool,
    /// (key, path) of the last file written.
    after: Option<(String, String)>,
    buf: Vec<u8>,
    pos: usize,
    started: bool,
    done: bool,
}

impl Listing {
    fn fill(&mut self) -> std::io::Result<()> {
        self.buf.clear();
        self.pos = 0;
        if !self.started {
            self.buf.push(b'[');
        }
        let after = self.after.as_ref().map(|(k, p)| (k.as_str(), p.as_str()));
        let (files, more) = self
            .dm
            .page(&self.prefix, self.at, self.deleted, after, SLICE);
        if let Some(l) = files.last() {
            self.after = Some((l.key.clone(), l.path.clone()));
        }
        for l in files {
            if self.started || self.buf.len() > 1 {
                self.buf.push(b',');
            }
            serde_json::to_writer(&mut self.buf, &entry(l)).map_err(std::io::Error::other)?;
        }
        self.started = true;
        if !more {
            self.buf.push(b']');
            self.done = true;
        }
        Ok(())
    }
}

impl std::io::Read for Listing {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        while self.pos == self.buf.len() {
            if self.done {
                return Ok(0);
            }
            self.fill()?;
        }
        let n = out.len().min(self.buf.len() - self.pos);
        out[..n].copy_from_slice(&self.buf[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

/// `GET /api/v1/versions/{machine}/{path}`: every version of one file.
pub fn versions(ctx: &Ctx, target: FileTarget) -> Handled {
    let FileTarget { machine: key, path } = target;
    let list: Vec<VersionEntry> = ctx
        .dm
        .versions(key.as_str(), &path)
        .ok_or(ApiError::NotFound)?
        .into_iter()
        .map(|v| VersionEntry {
            version: v.n,
            size: v.size,
            mtime: v.mtime,
            hash: v.hash,
            backed_up_at: v.backed_up_at,
            deleted: v.deleted,
        })
        .collect();
    Ok(Reply::json(200, &list))
}

/// `DELETE /api/v1/files/{machine}/{path}`: the file was deleted on the
/// machine. Adds a tombstone; every version stays restorable. A device
/// token may do it (history only grows), for its own machine only.
pub fn delete(ctx: &Ctx, target: FileTarget) -> Handled {
    let FileTarget { machine: key, path } = target;
    let added = ctx.dm.delete(&key, &path)?;
    if added {
        info!("{key}: {path} deleted");
    }
    Ok(Reply::new(if added { 201 } else { 200 }))
}

/// `PUT /api/v1/files/{machine}/{path}`: the body is the file's content.
pub fn upload(ctx: &Ctx, req: &mut Request, target: FileTarget) -> Handled {
    let FileTarget { machine: key, path } = target;
    let hash: ContentHash = header(req, HEADER_HASH)
        .ok_or_else(|| {
            ApiError::bad(
                "missing_hash",
                format!("the {HEADER_HASH} header is required"),
            )
        })?
        .trim()
        .parse()
        .map_err(|_| {
            ApiError::bad(
                "bad_hash",
                format!("{HEADER_HASH} must be 64 hex digits (BLAKE3)"),
            )
        })?;
    let mtime = parse_mtime(header(req, HEADER_MTIME))?;
    let chunked = header(req, "Transfer-Encoding").is_some();
    let declared = if chunked {
        None
    } else {
        Some(content_length(req)?.ok_or(ApiError::LengthRequired)?)
    };
    if declared.is_some_and(|n| n > ctx.max_upload_bytes) {
        return Err(ApiError::TooLarge {
            limit: ctx.max_upload_bytes,
        });
    }
    let staged = ctx
        .dm
        .stage_upload(req.as_reader(), &hash, declared, ctx.max_upload_bytes)?;
    let size = staged.size;
    let rec = ctx.dm.commit_upload(&key, &path, mtime, staged)?;
    Ok(recorded(&key, path, hash, size, rec))
}

/// `POST /api/v1/files/{machine}/{path}`: record content by its hash.
pub fn record(ctx: &Ctx, req: &mut Request, target: FileTarget) -> Handled {
    let FileTarget { machine: key, path } = target;
    let body = small_body(req, MAX_RECORD_BODY)?;
    let r: RecordRequest = serde_json::from_slice(&body).map_err(|e| {
        ApiError::bad(
            "bad_json",
            format!("body must be JSON {{\"hash\", \"size\", \"mtime\"}}: {e}"),
        )
    })?;
    let mtime = check_mtime(r.mtime)?;
    let rec = ctx.dm.record_existing(&key, &path, r.hash, r.size, mtime)?;
    Ok(recorded(&key, path, r.hash, r.size, rec))
}

/// The answer to a successful upload or record: 201 for a new version,
/// 200 when the content equals the latest one.
fn recorded(key: &MachineKey, path: String, hash: ContentHash, size: u64, rec: Recorded) -> Reply {
    if rec.new_version {
        info!("{key}: {path} version {} ({size} bytes)", rec.versions);
    }
    let status = if rec.new_version { 201 } else { 200 };
    Reply::json(status, &upload_reply(key, path, hash, size, &rec))
}

/// What the client is told of one recorded upload (also one file of a batch).
pub fn upload_reply(
    key: &MachineKey,
    path: String,
    hash: ContentHash,
    size: u64,
    rec: &Recorded,
) -> UploadReply {
    UploadReply {
        client: key.machine().to_string(),
        path,
        hash,
        size,
        new_version: rec.new_version,
        versions: rec.versions,
    }
}

fn parse_mtime(value: Option<&str>) -> Result<i64, ApiError> {
    match value {
        None => Ok(unix_now()),
        Some(v) => check_mtime(v.trim().parse::<i64>().map_err(|_| {
            ApiError::bad(
                "bad_mtime",
                format!("{HEADER_MTIME} must be whole unix seconds"),
            )
        })?),
    }
}

/// A modification time the server can store and show (400 otherwise).
pub fn check_mtime(mtime: i64) -> Result<i64, ApiError> {
    if nimbus_common::wire::mtime_in_range(mtime) {
        Ok(mtime)
    } else {
        Err(ApiError::bad(
            "bad_mtime",
            format!(
                "mtime {mtime} is out of range: unix seconds from 0 (1970) to {} (9999-12-31)",
                nimbus_common::wire::MTIME_MAX
            ),
        ))
    }
}
