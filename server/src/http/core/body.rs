//! Small request bodies (JSON, forms), read whole up to a limit. Large
//! bodies (uploads) stream into the store instead.

use super::reply::ApiError;
use std::io::Read;
use tiny_http::Request;

/// A small request body (JSON or a form), read whole: at most `limit`
/// bytes, else 413.
pub fn small_body(req: &mut Request, limit: u64) -> Result<Vec<u8>, ApiError> {
    let mut body = Vec::new();
    req.as_reader()
        .take(limit + 1)
        .read_to_end(&mut body)
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::TimedOut => ApiError::BodyTimeout,
            _ => ApiError::bad("body_incomplete", "could not read the request body"),
        })?;
    if body.len() as u64 > limit {
        return Err(ApiError::TooLarge { limit });
    }
    Ok(body)
}
