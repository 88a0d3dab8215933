//! The chunk routes: what a backup client sends instead of whole files.
//!
//! - `POST /api/v1/chunks/{machine}/missing`: which of these chunk hashes
//!   the caller's space lacks (never telling what other users hold);
//! - `POST /api/v1/chunks/{machine}`: chunks, each a JSON line
//!   ([`ChunkEntry`]: hash, size) and exactly `size` bytes, verified on
//!   arrival; any bad one refuses the request with 400, keeping nothing;
//! - `POST /api/v1/manifests/{machine}/{path}`: a version made of chunks
//!   ([`ManifestCommit`]); 409 `chunks_missing` lists chunks to send first.

use super::batch::{batch_body, body_ended, header_line, header_rule};
use super::files::{check_mtime, upload_reply};
use crate::http::core::body::small_body;
use crate::http::core::{ApiError, Handled, Reply};
use crate::http::ctx::Ctx;
use crate::space::{FileTarget, MachineKey};
use crate::store::blobs::Staged;
use crate::store::MAX_CHUNK_BYTES;
use log::info;
use nimbus_common::wire::{
    ChunkEntry, ChunkQuery, ChunkQueryReply, ChunksStored, ManifestCommit, MAX_BATCH_FILES,
    MAX_CHUNK_QUERY, MAX_MANIFEST_BODY,
};
use std::io::{BufRead, Read};
use tiny_http::Request;

/// Bytes of a missing-chunks question (its hashes in hex, in JSON).
const MAX_QUERY_BODY: u64 = (MAX_CHUNK_QUERY as u64) * 72 + 64;

pub fn missing(ctx: &Ctx, req: &mut Request, key: MachineKey) -> Handled {
    let body = small_body(req, MAX_QUERY_BODY)?;
    let q: ChunkQuery = serde_json::from_slice(&body).map_err(|e| {
        ApiError::bad(
            "bad_json",
            format!("body must be JSON {{\"hashes\": [...]}}: {e}"),
        )
    })?;
    if q.hashes.len() > MAX_CHUNK_QUERY {
        return Err(ApiError::bad(
            "too_many_hashes",
            format!("ask about at most {MAX_CHUNK_QUERY} chunks at a time"),
        ));
    }
    let missing = ctx.dm.missing_chunks(key.user(), &q.hashes);
    Ok(Reply::json(200, &ChunkQueryReply { missing }))
}

pub fn upload(ctx: &Ctx, req: &mut Request, key: MachineKey) -> Handled {
    let mut body = batch_body(req)?;
    let mut staged: Vec<Staged> = Vec::new();
    let read = read_chunks(ctx, &mut body, &mut staged).and_then(|()| body_ended(&mut body));
    if let Err(e) = read {
        for s in staged {
            ctx.dm.discard(s);
        }
        return Err(e);
    }
    let reply = ChunksStored {
        chunks: staged.len(),
        bytes: staged.iter().map(|s| s.size).sum(),
    };
    ctx.dm.store_chunks(key.user(), staged)?;
    Ok(Reply::json(200, &reply))
}

fn read_chunks(
    ctx: &Ctx,
    body: &mut impl BufRead,
    staged: &mut Vec<Staged>,
) -> Result<(), ApiError> {
    loop {
        let n = staged.len();
        let bad = |what: String| ApiError::bad("bad_chunk", format!("chunk {n}: {what}"));
        let Some(line) = header_line(body).map_err(|e| e.unwrap_or_else(|| bad(header_rule())))?
        else {
            break;
        };
        if n == MAX_BATCH_FILES {
            return Err(ApiError::bad(
                "bad_chunk",
                format!("one request carries at most {MAX_BATCH_FILES} chunks"),
            ));
        }
        let e: ChunkEntry = serde_json::from_slice(&line)
            .map_err(|err| bad(format!("header is not {{hash, size}}: {err}")))?;
        if e.size == 0 || e.size > MAX_CHUNK_BYTES {
            return Err(bad(format!(
                "{} bytes; a chunk is 1 to {MAX_CHUNK_BYTES}",
                e.size
            )));
        }
        let s = ctx
            .dm
            .stage_chunk(&mut body.take(e.size), &e.hash, e.size)
            .map_err(|err| match ApiError::from(err) {
                ApiError::BadRequest { code, message } => {
                    ApiError::bad(code, format!("chunk {n} ({}): {message}", e.hash))
                }
                other => other,
            })?;
        staged.push(s);
    }
    if staged.is_empty() {
        return Err(ApiError::bad("bad_chunk", "the request holds no chunk"));
    }
    Ok(())
}

pub fn commit(ctx: &Ctx, req: &mut Request, target: FileTarget) -> Handled {
    let FileTarget { machine: key, path } = target;
    let body = small_body(req, MAX_MANIFEST_BODY)?;
    let m: ManifestCommit = serde_json::from_slice(&body).map_err(|e| {
        ApiError::bad(
            "bad_json",
            format!("body must be JSON {{\"hash\", \"size\", \"mtime\", \"chunks\"}}: {e}"),
        )
    })?;
    drop(body);
    let mtime = check_mtime(m.mtime)?;
    if m.size > ctx.max_upload_bytes {
        return Err(ApiError::TooLarge {
            limit: ctx.max_upload_bytes,
        });
    }
    let chunks = m.chunks.len();
    let rec = ctx
        .dm
        .commit_manifest(&key, &path, mtime, m.hash, m.size, m.chunks)?;
    if rec.new_version {
        info!(
            "{key}: {path} ({} bytes, {chunks} chunks), version {}",
            m.size, rec.versions
        );
    }
    Ok(Reply::json(
        200,
        &upload_reply(&key, path, m.hash, m.size, &rec),
    ))
}
