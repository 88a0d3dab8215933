//! `POST /api/v1/batch/{machine}`: many small files in one request, made
//! durable together (two file-system syncs for their contents, one journal
//! fdatasync for their versions) and answered once all are.
//!
//! The body is a sequence of entries, each a line of JSON
//! ([`BatchEntry`]: path, hash, size, mtime) followed by exactly `size`
//! bytes. Any bad entry (framing, path, mtime, size, hash) refuses the
//! whole batch with 400 naming the entry, and nothing of it is kept.

use super::files::{check_mtime, upload_reply};
use crate::http::core::request::{content_length, header};
use crate::http::core::{ApiError, Handled, Reply};
use crate::http::ctx::Ctx;
use crate::space::MachineKey;
use crate::store::blobs::Staged;
use log::info;
use nimbus_common::paths::validate_rel_path;
use nimbus_common::wire::{BatchEntry, UploadReply, MAX_BATCH_BYTES, MAX_BATCH_FILES};
use std::io::{BufRead, BufReader, Read};
use tiny_http::Request;

/// Longest header line of an entry.
const MAX_HEADER: u64 = 8 * 1024;

pub fn batch(ctx: &Ctx, req: &mut Request, key: MachineKey) -> Handled {
    let mut body = batch_body(req)?;
    let mut staged: Vec<(String, i64, Staged)> = Vec::new();
    let read = read_entries(ctx, &mut body, &mut staged);
    // All of the body, and nothing past the limit.
    let read = read.and_then(|()| body_ended(&mut body));
    if let Err(e) = read {
        for (_, _, s) in staged {
            ctx.dm.discard(s);
        }
        return Err(e);
    }
    let files: Vec<(String, u64, _)> = staged
        .iter()
        .map(|(p, _, s)| (p.clone(), s.size, s.hash))
        .collect();
    let recorded = ctx.dm.commit_batch(&key, staged)?;
    let new = recorded.iter().filter(|r| r.new_version).count();
    info!(
        "{key}: batch of {} file(s), {new} new version(s)",
        files.len()
    );
    let replies: Vec<UploadReply> = files
        .into_iter()
        .zip(recorded)
        .map(|((path, size, hash), rec)| upload_reply(&key, path, hash, size, &rec))
        .collect();
    Ok(Reply::json(200, &replies))
}

/// The next entry's header line; None at the end of the body. Err(None)
/// for a line too long or cut off (see [`header_rule`]).
pub fn header_line(body: &mut impl BufRead) -> Result<Option<Vec<u8>>, Option<ApiError>> {
    let mut line = Vec::new();
    let got = body
        .take(MAX_HEADER + 1)
        .read_until(b'\n', &mut line)
        .map_err(|e| {
            Some(match e.kind() {
                std::io::ErrorKind::TimedOut => ApiError::BodyTimeout,
                _ => ApiError::bad("body_incomplete", "the body stopped arriving"),
            })
        })?;
    if got == 0 {
        return Ok(None);
    }
    if line.last() != Some(&b'\n') {
        return Err(None);
    }
    Ok(Some(line))
}

pub fn header_rule() -> String {
    format!("its header must be one line of JSON of at most {MAX_HEADER} bytes")
}

/// The body of a batch (of files or of chunks), at most `MAX_BATCH_BYTES`:
/// declared so (or chunked), and read no further.
pub fn batch_body(req: &mut Request) -> Result<BufReader<impl Read + '_>, ApiError> {
    let chunked = header(req, "Transfer-Encoding").is_some();
    if !chunked {
        let declared = content_length(req)?.ok_or(ApiError::LengthRequired)?;
        if declared > MAX_BATCH_BYTES {
            return Err(ApiError::TooLarge {
                limit: MAX_BATCH_BYTES,
            });
        }
    }
    Ok(BufReader::new(req.as_reader().take(MAX_BATCH_BYTES + 1)))
}

/// Checks that `body` has ended, and within the limit.
pub fn body_ended(body: &mut impl BufRead) -> Result<(), ApiError> {
    match body.fill_buf() {
        Ok([]) => Ok(()),
        Ok(_) => Err(ApiError::TooLarge {
            limit: MAX_BATCH_BYTES,
        }),
        Err(_) => Err(ApiError::bad(
            "body_incomplete",
            "the batch stopped arriving",
        )),
    }
}

/// Stages every entry of the body into `staged`.
fn read_entries(
    ctx: &Ctx,
    body: &mut impl BufRead,
    staged: &mut Vec<(String, i64, Staged)>,
) -> Result<(), ApiError> {
    loop {
        let n = staged.len();
        let bad = |what: String| ApiError::bad("bad_batch", format!("entry {n}: {what}"));
        let Some(line) = header_line(body).map_err(|e| e.unwrap_or_else(|| bad(header_rule())))?
        else {
            break;
        };
        if n == MAX_BATCH_FILES {
            return Err(ApiError::bad(
                "bad_batch",
                format!("a batch holds at most {MAX_BATCH_FILES} files"),
            ));
        }
        let e: BatchEntry = serde_json::from_slice(&line)
            .map_err(|err| bad(format!("header is not {{path, hash, size, mtime}}: {err}")))?;
        validate_rel_path(&e.path).map_err(|err| bad(format!("{}: {err}", e.path)))?;
        check_mtime(e.mtime).map_err(|err| bad(err.to_string()))?;
        if e.size > ctx.max_upload_bytes {
            return Err(ApiError::TooLarge {
                limit: ctx.max_upload_bytes,
            });
        }
        let s = ctx
            .dm
            .stage_batch_entry(
                &mut body.take(e.size),
                &e.hash,
                e.size,
                ctx.max_upload_bytes,
            )
            .map_err(|err| match ApiError::from(err) {
                ApiError::BadRequest { code, message } => {
                    ApiError::bad(code, format!("entry {n} ({}): {message}", e.path))
                }
                other => other,
            })?;
        staged.push((e.path, e.mtime, s));
    }
    if staged.is_empty() {
        return Err(ApiError::bad("bad_batch", "the batch holds no file"));
    }
    Ok(())
}
