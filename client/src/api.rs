//! Talking to the server: record a version by hash, or upload its bytes.
//! Every answer is sorted into what the caller can do about it: retry later
//! (the server is down or busy), give up on this file (the server refused
//! it), or look at the file again (it changed while being sent).

// ureq's own error type is large; it is returned once per request.
#![allow(clippy::result_large_err)]

use nimbus_common::hash::ContentHash;
use nimbus_common::paths::encode_segment;
use nimbus_common::wire::{
    ChunkQuery, ChunkQueryReply, ChunksMissing, ChunksStored, ErrorBody, ManifestCommit,
    RecordRequest, StatusReport, UploadReply, CHUNKS_ROUTE, ERR_CHUNKS_MISSING,
    ERR_CONTENT_UNKNOWN, HEADER_HASH, HEADER_MTIME, MANIFESTS_ROUTE,
};
use std::fs::File;
use std::io::{self, Read};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// Worth retrying: connection refused, timeouts, 5xx, 503.
    #[error("server unavailable: {0}")]
    Unavailable(String),
    /// The server's disk is full (507): retrying soon will not help.
    #[error("the server's disk is full: {0}")]
    ServerFull(String),
    /// The server refused this file (4xx); another file may still work.
    #[error("server refused it ({status}): {message}")]
    Refused {
        status: u16,
        code: String,
        message: String,
    },
    /// The server does not hold the content; the bytes must be sent.
    #[error("server does not hold this content")]
    ContentUnknown,
    /// A manifest named chunks the server does not hold (for this user).
    #[error("server lacks {} chunk(s) of this file", .0.len())]
    ChunksMissing(Vec<ContentHash>),
    /// The server refused the device's token (401).
    #[error("{0}")]
    Unauthorized(String),
    /// The server's certificate is not trusted: retrying will not help.
    #[error("{}", crate::tls::untrusted_advice(.0))]
    Untrusted(String),
    /// The file changed or shrank while it was being read.
    #[error("the file changed while it was being sent")]
    Changed,
    /// Reading the local file failed.
    #[error("cannot read the file: {0}")]
    Local(io::Error),
    #[error("stopped")]
    Stopped,
}

pub struct Api {
    agent: ureq::Agent,
    base: String,
    client: String,
    /// `Authorization` header value, when this machine has logged in.
    auth: Option<String>,
    /// The upload limit every body with file content keeps to.
    pub throttle: crate::throttle::Throttle,
}

impl Api {
    pub fn new(server: &str, client: &str, token: Option<String>, agent: ureq::Agent) -> Api {
        Api {
            agent,
            base: server.trim_end_matches('/').to_string(),
            client: client.to_string(),
            auth: token.map(|t| format!("Bearer {t}")),
            throttle: Default::default(),
        }
    }

    /// The machine this client backs up as.
    pub fn machine(&self) -> &str {
        &self.client
    }

    fn authorized(&self, req: ureq::Request) -> ureq::Request {
        match &self.auth {
            Some(value) => req.set("Authorization", value),
            None => req,
        }
    }

    fn file_url(&self, rel: &str) -> String {
        format!(
            "{}{}",
            self.base,
            nimbus_common::wire::file_route(&self.client, rel)
        )
    }

    /// Asks the server to record `rel` as content it already holds.
    pub fn record(&self, rel: &str, version: &RecordRequest) -> Result<UploadReply, ApiError> {
        let body = serde_json::to_string(version).expect("serialisable");
        let result = honour_busy(|| {
            self.authorized(self.agent.post(&self.file_url(rel)))
                .set("Content-Type", "application/json")
                .send_string(&body)
        });
        parse(result)
    }

    /// `{route}/{machine}`.
    fn machine_url(&self, route: &str) -> String {
        format!("{}{route}/{}", self.base, encode_segment(&self.client))
    }

    /// POSTs `body` (of `content_type`) and reads the JSON answer.
    fn post<R: serde::de::DeserializeOwned>(
        &self,
        url: &str,
        content_type: &str,
        body: &[u8],
    ) -> Result<R, ApiError> {
        let resp = check(honour_busy(|| {
            self.authorized(self.agent.post(url))
                .set("Content-Type", content_type)
                .set("Content-Length", &body.len().to_string())
                .send(self.throttle.reader(body))
        }))?;
        read_json::<R>(resp).map_err(|e| ApiError::Unavailable(format!("unreadable answer: {e}")))
    }

    /// Sends many small files in one request (`body` is the batch, see
    /// [`nimbus_common::wire::BatchEntry`]); the answer is one reply per
    /// file, in order, once all are durable. A 404 or 405 means a server
    /// from before batches.
    pub fn batch(&self, body: &[u8]) -> Result<Vec<UploadReply>, ApiError> {
        let url = self.machine_url(nimbus_common::wire::BATCH_ROUTE);
        self.post(&url, "application/octet-stream", body)
    }

    /// Which of `hashes` this user's space lacks. A 404 or 405 means a
    /// server from before chunks.
    pub fn missing_chunks(&self, hashes: &[ContentHash]) -> Result<Vec<ContentHash>, ApiError> {
        let url = format!("{}/missing", self.machine_url(CHUNKS_ROUTE));
        let body = serde_json::to_vec(&ChunkQuery {
            hashes: hashes.to_vec(),
        })
        .expect("serialisable");
        let reply: ChunkQueryReply = self.post(&url, "application/json", &body)?;
        Ok(reply.missing)
    }

    /// Sends chunks (`body`: see [`nimbus_common::wire::ChunkEntry`]).
    pub fn send_chunks(&self, body: &[u8]) -> Result<ChunksStored, ApiError> {
        let url = self.machine_url(CHUNKS_ROUTE);
        self.post(&url, "application/octet-stream", body)
    }

    /// Commits `rel` as a version made of chunks the server holds.
    pub fn commit_manifest(&self, rel: &str, m: &ManifestCommit) -> Result<UploadReply, ApiError> {
        let url = format!(
            "{}{MANIFESTS_ROUTE}/{}/{}",
            self.base,
            encode_segment(&self.client),
            nimbus_common::paths::encode_path(rel)
        );
        let body = serde_json::to_vec(m).expect("serialisable");
        self.post(&url, "application/json", &body)
    }

    /// Tells the server the file was deleted here (its versions stay). A
    /// file the server never had is fine too.
    pub fn delete(&self, rel: &str) -> Result<(), ApiError> {
        match check(honour_busy(|| {
            self.authorized(self.agent.delete(&self.file_url(rel)))
                .call()
        })) {
            Ok(_) | Err(ApiError::Refused { status: 404, .. }) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Tells the server how this machine is doing (after a pass, or as a
    /// heartbeat while idle).
    /// Sends a status report; the answer names a newer client the server
    /// offers for this system, if any.
    pub fn report(
        &self,
        report: &StatusReport,
    ) -> Result<Option<nimbus_common::wire::ClientBuildInfo>, ApiError> {
        let body = serde_json::to_string(report).expect("serialisable");
        let result = honour_busy(|| {
            self.authorized(self.agent.post(&format!(
                "{}{}",
                self.base,
                nimbus_common::wire::STATUS_ROUTE
            )))
            .set("Content-Type", "application/json")
            .send_string(&body)
        });
        let resp = check(result)?;
        if resp.status() != 200 {
            return Ok(None);
        }
        // An answer not understood is no offer: reporting is what matters.
        Ok(
            serde_json::from_reader::<_, nimbus_common::wire::StatusAnswer>(std::io::Read::take(
                resp.into_reader(),
                1 << 16,
            ))
            .ok()
            .and_then(|a| a.newer),
        )
    }

    /// A GET of `path_and_query` (which starts with `/`) with the token.
    pub fn get(&self, path_and_query: &str) -> Result<ureq::Response, ApiError> {
        self.get_with(path_and_query, &[])
    }

    /// A GET with extra headers.
    pub fn get_with(
        &self,
        path_and_query: &str,
        headers: &[(&str, &str)],
    ) -> Result<ureq::Response, ApiError> {
        let url = format!("{}{path_and_query}", self.base);
        check(honour_busy(|| {
            let mut req = self.authorized(self.agent.get(&url));
            for (k, v) in headers {
                req = req.set(k, v);
            }
            req.call()
        }))
    }

    /// Streams the file's bytes. `stop` aborts the upload midway.
    pub fn upload(
        &self,
        rel: &str,
        file: File,
        version: &RecordRequest,
        stop: &Arc<AtomicBool>,
        progress: &(dyn Fn(u64) + Sync),
    ) -> Result<UploadReply, ApiError> {
        let RecordRequest { hash, size, mtime } = *version;
        let failure = Arc::new(Mutex::new(None));
        let reader = ExactReader {
            inner: file.take(size),
            remaining: size,
            failure: failure.clone(),
            stop: stop.clone(),
            progress,
        };
        let result = self
            .authorized(self.agent.put(&self.file_url(rel)))
            .set(HEADER_HASH, &hash.to_hex())
            .set(HEADER_MTIME, &mtime.to_string())
            .set("Content-Length", &size.to_string())
            .set("Content-Type", "application/octet-stream")
            .send(self.throttle.reader(reader));
        if let Some(f) = failure.lock().unwrap_or_else(|e| e.into_inner()).take() {
            return Err(f);
        }
        match parse(result) {
            Err(ApiError::Refused { code, .. })
                if code == "hash_mismatch" || code == "body_incomplete" =>
            {
                Err(ApiError::Changed)
            }
            other => other,
        }
    }
}

/// How many times a request the server answered 503 (busy) is sent again.
const BUSY_RETRIES: u32 = 5;
/// The longest `Retry-After` waited for; a longer one (or none) is reported
/// as the server being unavailable, for the caller's own backoff.
const MAX_RETRY_AFTER: u64 = 30;

/// Sends a request (one without a streamed body: it can be sent again), and
/// when the server answers 503 with `Retry-After: N`, waits N seconds, plus
/// up to half a second so that many clients do not return at once, and
/// sends it again, a few times.
pub fn honour_busy(
    mut send: impl FnMut() -> Result<ureq::Response, ureq::Error>,
) -> Result<ureq::Response, ureq::Error> {
    let mut tries = 0;
    loop {
        match send() {
            Err(ureq::Error::Status(503, resp)) if tries < BUSY_RETRIES => {
                let wait = resp
                    .header("Retry-After")
                    .and_then(|v| v.trim().parse::<u64>().ok())
                    .filter(|&s| s <= MAX_RETRY_AFTER);
                let Some(wait) = wait else {
                    return Err(ureq::Error::Status(503, resp));
                };
                tries += 1;
                let jitter = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.subsec_nanos() % 500_000_000);
                std::thread::sleep(
                    std::time::Duration::from_secs(wait)
                        + std::time::Duration::from_nanos(jitter.into()),
                );
            }
            other => return other,
        }
    }
}

fn parse(result: Result<ureq::Response, ureq::Error>) -> Result<UploadReply, ApiError> {
    let resp = check(result)?;
    read_json::<UploadReply>(resp)
        .map_err(|e| ApiError::Unavailable(format!("unreadable answer: {e}")))
}

/// Sorts a request's outcome: a success, or what the caller can do.
pub fn check(result: Result<ureq::Response, ureq::Error>) -> Result<ureq::Response, ApiError> {
    match result {
        Ok(resp) => Ok(resp),
        Err(ureq::Error::Status(status, resp)) => {
            let body: Option<serde_json::Value> = read_json(resp).ok();
            if status == 409 {
                if let Some(m) = body
                    .clone()
                    .and_then(|b| serde_json::from_value::<ChunksMissing>(b).ok())
                    .filter(|m| m.error == ERR_CHUNKS_MISSING)
                {
                    return Err(ApiError::ChunksMissing(m.missing));
                }
            }
            let body: Option<ErrorBody> = body.and_then(|b| serde_json::from_value(b).ok());
            let (code, message) = match &body {
                Some(b) => (b.error.clone(), b.message.clone()),
                None => (String::new(), format!("HTTP {status}")),
            };
            match status {
                401 => Err(ApiError::Unauthorized(message)),
                409 if body
                    .as_ref()
                    .is_some_and(|b| b.error == ERR_CONTENT_UNKNOWN) =>
                {
                    Err(ApiError::ContentUnknown)
                }
                507 => Err(ApiError::ServerFull(message)),
                408 | 429 | 500..=599 => {
                    Err(ApiError::Unavailable(format!("HTTP {status}: {message}")))
                }
                _ => Err(ApiError::Refused {
                    status,
                    code,
                    message,
                }),
            }
        }
        Err(ureq::Error::Transport(t)) => {
            if crate::tls::is_untrusted(&t) {
                Err(ApiError::Untrusted(t.to_string()))
            } else {
                Err(ApiError::Unavailable(t.to_string()))
            }
        }
    }
}

pub fn read_json<T: serde::de::DeserializeOwned>(
    resp: ureq::Response,
) -> Result<T, serde_json::Error> {
    serde_json::from_reader(resp.into_reader().take(1 << 20))
}

/// Yields exactly `remaining` bytes of the file, or fails: a file that
/// shrinks while it is sent must abort the request, not leave the server
/// waiting for bytes that never come.
struct ExactReader<'a> {
    inner: io::Take<File>,
    remaining: u64,
    failure: Arc<Mutex<Option<ApiError>>>,
    stop: Arc<AtomicBool>,
    progress: &'a (dyn Fn(u64) + Sync),
}

impl Read for ExactReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.stop.load(Ordering::Relaxed) {
            *self.failure.lock().unwrap_or_else(|e| e.into_inner()) = Some(ApiError::Stopped);
            return Err(io::Error::other("stopped"));
        }
        match self.inner.read(buf) {
            Ok(0) if self.remaining > 0 => {
                *self.failure.lock().unwrap_or_else(|e| e.into_inner()) = Some(ApiError::Changed);
                Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "file shrank while being sent",
                ))
            }
            Ok(n) => {
                self.remaining -= n as u64;
                (self.progress)(n as u64);
                Ok(n)
            }
            Err(e) => {
                let kind = e.kind();
                *self.failure.lock().unwrap_or_else(|e| e.into_inner()) = Some(ApiError::Local(e));
                Err(io::Error::new(kind, "local read failed"))
            }
        }
    }
}
