//! Blob files in an S3-compatible bucket (MinIO, Ceph RGW, Garage,
//! SeaweedFS, Backblaze B2, Wasabi, AWS S3).
//!
//! A key `ab/<name>` is the object `PREFIX/blobs/ab/<name>`. Requests are
//! signed with rusty-s3 (Signature V4, as presigned URLs: sans-IO, no
//! runtime) and sent with ureq's blocking agent, which keeps a bounded pool
//! of idle connections.
//!
//! - A put is one PUT with `Content-Length` (never chunked: S3 refuses
//!   that), or a multipart upload over [`S3Options::multipart_threshold`];
//!   the object exists only once the store answered 200 to the PUT or to
//!   CompleteMultipartUpload, so nothing half-written is ever visible. A
//!   failed multipart upload is aborted.
//! - A read is a ranged GET from where the reader is, reopened after a seek
//!   (or a broken connection), so a Range download or one packed frame
//!   fetches about what it needs.
//! - Requests that are idempotent (GET, HEAD, PUT of a whole object or of a
//!   part, DELETE, LIST) are retried with exponential backoff and full
//!   jitter on 500, 502, 503, 504, 429, SlowDown and broken connections;
//!   CreateMultipartUpload and CompleteMultipartUpload are not.
//! - Every request has connect, read and write timeouts, so a slow store
//!   fails a request instead of holding a worker for ever.
//!
//! Secrets never reach the log: errors name the operation, the key and the
//! store's answer, never a signed URL.

// ureq 2's error is large; it only travels from a request to `Client::call`.
#![allow(clippy::result_large_err)]

use super::{Backend, Durability, Object, Unavailable};
use rusty_s3::actions::{
    AbortMultipartUpload, CompleteMultipartUpload, CreateMultipartUpload, DeleteObject, GetObject,
    HeadObject, ListObjectsV2, PutObject, UploadPart,
};
use rusty_s3::{Bucket, Credentials, S3Action, UrlStyle};
use std::fmt;
use std::fs::{self, File};
use std::io::{self, Read, Seek, SeekFrom};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

/// How long a signed request stays valid (it is sent at once).
const SIGNED_FOR: Duration = Duration::from_secs(15 * 60);
/// Bytes a reader skips by reading rather than by a new request, when it
/// seeks a little forward.
const SKIP_BY_READING: u64 = 256 * 1024;
/// At most this much of an error answer is read, to name its S3 code.
const ERROR_BODY: u64 = 8 * 1024;

/// An access key and its secret; `Debug` shows neither.
#[derive(Clone, PartialEq, Eq)]
pub struct S3Credentials {
    pub access_key_id: String,
    pub secret_access_key: String,
    pub session_token: Option<String>,
    /// Where they came from, for the log.
    pub source: String,
}

impl fmt::Debug for S3Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "S3Credentials(from {})", self.source)
    }
}

/// Where the bucket is and how to talk to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct S3Options {
    pub bucket: String,
    /// "" or ending in '/'.
    pub prefix: String,
    pub endpoint: String,
    pub region: String,
    pub path_style: bool,
    pub credentials: S3Credentials,
    /// Objects larger than this go up in parts.
    pub multipart_threshold: u64,
    pub part_size: u64,
    /// Tries after the first, for an idempotent request.
    pub retries: u32,
    /// Connect timeout; reads and writes get [`S3Options::io_timeout`].
    pub connect_timeout: Duration,
    pub io_timeout: Duration,
    /// Idle connections kept open to the store.
    pub pool: usize,
    /// Bytes of local disk (`DATA/cache`) holding copies of the objects
    /// stored last (see `cache`); 0: none.
    pub cache_bytes: u64,
}

impl S3Options {
    /// `s3://BUCKET/PREFIX`, as the store's URL names it.
    pub fn url(&self) -> String {
        format!("s3://{}/{}", self.bucket, self.prefix)
    }
}

/// Parses `s3://BUCKET[/PREFIX]` into the bucket and a prefix that is
/// empty or ends in '/'.
pub fn parse_store_url(url: &str) -> Result<(String, String), String> {
    let rest = url
        .strip_prefix("s3://")
        .ok_or_else(|| format!("{url:?} is not s3://BUCKET/PREFIX"))?;
    let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
    let valid_bucket = (3..=63).contains(&bucket.len())
        && bucket
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.');
    if !valid_bucket {
        return Err(format!(
            "{bucket:?} is not a bucket name (3 to 63 lowercase letters, digits, '-' and '.')"
        ));
    }
    let prefix = prefix.trim_matches('/');
    if prefix.split('/').any(|p| p == ".." || p == ".") || prefix.contains("//") {
        return Err(format!("{prefix:?} is not a usable prefix"));
    }
    let prefix = if prefix.is_empty() {
        String::new()
    } else {
        format!("{prefix}/")
    };
    Ok((bucket.to_string(), prefix))
}

/// The connection to one bucket, shared by the backend and its readers.
struct Client {
    bucket: Bucket,
    creds: Credentials,
    agent: ureq::Agent,
    /// `PREFIX/` + "blobs/": where keys start.
    root: String,
    opts: S3Options,
}

/// Blob files in a bucket.
pub struct S3Backend {
    client: Arc<Client>,
}

impl fmt::Debug for S3Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "S3Backend({})", self.describe())
    }
}

impl S3Backend {
    /// Connects and checks that the bucket is there and the credentials
    /// open it (a HEAD of the bucket, then a LIST under the prefix): wrong
    /// credentials or a missing bucket fail here, at start.
    pub fn connect(opts: S3Options, under: &str) -> io::Result<S3Backend> {
        let endpoint = opts.endpoint.parse().map_err(|e| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("--s3-endpoint {:?}: {e}", opts.endpoint),
            )
        })?;
        let style = if opts.path_style {
            UrlStyle::Path
        } else {
            UrlStyle::VirtualHost
        };
        let bucket = Bucket::new(endpoint, style, opts.bucket.clone(), opts.region.clone())
            .map_err(|e| {
                io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!("--s3-endpoint {:?}: {e}", opts.endpoint),
                )
            })?;
        let c = &opts.credentials;
        let creds = match &c.session_token {
            Some(t) => Credentials::new_with_token(
                c.access_key_id.clone(),
                c.secret_access_key.clone(),
                t.clone(),
            ),
            None => Credentials::new(c.access_key_id.clone(), c.secret_access_key.clone()),
        };
        let agent = ureq::AgentBuilder::new()
            .timeout_connect(opts.connect_timeout)
            .timeout_read(opts.io_timeout)
            .timeout_write(opts.io_timeout)
            .max_idle_connections(opts.pool)
            .max_idle_connections_per_host(opts.pool)
            .redirects(0)
            .build();
        let root = format!("{}{under}", opts.prefix);
        let client = Arc::new(Client {
            bucket,
            creds,
            agent,
            root,
            opts,
        });
        let backend = S3Backend { client };
        backend.check()?;
        Ok(backend)
    }

    /// Whether any object lies under the prefix (one LIST of one key).
    pub fn holds_anything(&self) -> io::Result<bool> {
        let c = &self.client;
        let mut one = ListObjectsV2::new(&c.bucket, Some(&c.creds));
        one.with_prefix(c.root.clone());
        one.with_max_keys(1);
        let url = one.sign(SIGNED_FOR);
        let r = c.call("LIST", &c.root, true, || {
            c.agent.request_url("GET", &url).call()
        })?;
        Ok(!ListPage::parse(&r.into_string()?).objects.is_empty())
    }

    fn check(&self) -> io::Result<()> {
        let c = &self.client;
        // A listing of one key under the prefix: unlike a HEAD of the
        // bucket, its error answer names the cause.
        let mut one = ListObjectsV2::new(&c.bucket, Some(&c.creds));
        one.with_prefix(c.root.clone());
        one.with_max_keys(1);
        let url = one.sign(SIGNED_FOR);
        c.call("LIST", "", true, || c.agent.request_url("GET", &url).call())
            .map_err(|e| match e.kind() {
                io::ErrorKind::NotFound => io::Error::new(
                    io::ErrorKind::NotFound,
                    format!(
                        "the bucket {:?} does not exist at {} (create it first)",
                        c.opts.bucket, c.opts.endpoint
                    ),
                ),
                _ => e,
            })?;
        Ok(())
    }
}

/// What went wrong with one request.
fn status_error(what: &str, key: &str, status: u16, code: &str) -> io::Error {
    let kind = match status {
        404 => io::ErrorKind::NotFound,
        401 | 403 => io::ErrorKind::PermissionDenied,
        _ => io::ErrorKind::Other,
    };
    let why = match (status, code) {
        (403, "SignatureDoesNotMatch") => " (the secret key is wrong)".to_string(),
        (403, "InvalidAccessKeyId") => " (no such access key)".to_string(),
        (401 | 403, _) => " (check the credentials and the bucket's policy)".to_string(),
        _ => String::new(),
    };
    let code = if code.is_empty() {
        String::new()
    } else {
        format!(" {code}")
    };
    let on = if key.is_empty() {
        String::new()
    } else {
        format!(" {key}")
    };
    let msg = format!("S3 {what}{on}: the store answered {status}{code}{why}");
    if status >= 500 || status == 429 {
        return io::Error::new(kind, Unavailable(msg));
    }
    io::Error::new(kind, msg)
}

/// The `<Code>` of an S3 error document.
fn error_code(body: &str) -> String {
    body.split_once("<Code>")
        .and_then(|(_, rest)| rest.split_once("</Code>"))
        .map(|(code, _)| code.trim().to_string())
        .unwrap_or_default()
}

/// A transport failure, without the URL (it carries the signature).
fn transport_error(what: &str, key: &str, t: &ureq::Transport) -> io::Error {
    let kind = match t.kind() {
        ureq::ErrorKind::Io => io::ErrorKind::TimedOut,
        _ => io::ErrorKind::ConnectionAborted,
    };
    io::Error::new(
        kind,
        Unavailable(format!(
            "S3 {what} {key}: {}{}",
            t.kind(),
            t.message().map(|m| format!(": {m}")).unwrap_or_default()
        )),
    )
}

/// Sleeps before try `n` (1, 2, ...): full jitter over an exponential cap.
fn backoff(n: u32) {
    let cap_ms = (100u64 << n.min(6)).min(5_000);
    let mut b = [0u8; 8];
    let r = if getrandom_fill(&mut b) {
        u64::from_le_bytes(b)
    } else {
        cap_ms / 2
    };
    std::thread::sleep(Duration::from_millis(cap_ms / 2 + r % (cap_ms / 2 + 1)));
}

fn getrandom_fill(b: &mut [u8]) -> bool {
    use rand_core::RngCore;
    rand_core::OsRng.try_fill_bytes(b).is_ok()
}

impl Client {
    /// Sends a request, made afresh by `attempt` for every try; retried
    /// when `idempotent` and the failure is one that may pass.
    fn call(
        &self,
        what: &str,
        key: &str,
        idempotent: bool,
        mut attempt: impl FnMut() -> Result<ureq::Response, ureq::Error>,
    ) -> io::Result<ureq::Response> {
        let mut tries = 0;
        loop {
            let err = match attempt() {
                Ok(r) => return Ok(r),
                Err(ureq::Error::Status(status, resp)) => {
                    let mut body = String::new();
                    let _ = resp
                        .into_reader()
                        .take(ERROR_BODY)
                        .read_to_string(&mut body);
                    let code = error_code(&body);
                    let passing = matches!(status, 429 | 500 | 502 | 503 | 504)
                        || code == "SlowDown"
                        || code == "RequestTimeout";
                    if passing && idempotent && tries < self.opts.retries {
                        tries += 1;
                        log::debug!("S3 {what} {key}: {status} {code}, try {tries}");
                        backoff(tries);
                        continue;
                    }
                    status_error(what, key, status, &code)
                }
                Err(ureq::Error::Transport(t)) => {
                    if idempotent && tries < self.opts.retries {
                        tries += 1;
                        log::debug!("S3 {what} {key}: {}, try {tries}", t.kind());
                        backoff(tries);
                        continue;
                    }
                    transport_error(what, key, &t)
                }
            };
            return Err(err);
        }
    }

    fn object(&self, key: &str) -> String {
        format!("{}{key}", self.root)
    }

    fn head(&self, key: &str) -> io::Result<u64> {
        let name = self.object(key);
        let url = HeadObject::new(&self.bucket, Some(&self.creds), &name).sign(SIGNED_FOR);
        let r = self.call("HEAD", key, true, || {
            self.agent.request_url("HEAD", &url).call()
        })?;
        r.header("Content-Length")
            .and_then(|v| v.trim().parse().ok())
            .ok_or_else(|| io::Error::other(format!("S3 HEAD {key}: no Content-Length")))
    }

    /// A GET of `key` from `from` to its end (`len` bytes in all).
    fn get_from(&self, key: &str, from: u64, len: u64) -> io::Result<Box<dyn Read + Send>> {
        let name = self.object(key);
        let url = GetObject::new(&self.bucket, Some(&self.creds), &name).sign(SIGNED_FOR);
        let r = self.call("GET", key, true, || {
            let req = self.agent.request_url("GET", &url);
            if from > 0 {
                req.set("Range", &format!("bytes={from}-{}", len - 1))
                    .call()
            } else {
                req.call()
            }
        })?;
        if from > 0 && r.status() != 206 {
            return Err(io::Error::other(format!(
                "S3 GET {key}: the store ignored the Range (answered {})",
                r.status()
            )));
        }
        Ok(Box::new(r.into_reader()))
    }

    fn put_single(&self, from: &Path, key: &str, len: u64) -> io::Result<()> {
        let name = self.object(key);
        let url = PutObject::new(&self.bucket, Some(&self.creds), &name).sign(SIGNED_FOR);
        let mut opened = None;
        self.call("PUT", key, true, || {
            let file = match File::open(from) {
                Ok(f) => f,
                Err(e) => {
                    opened = Some(e);
                    return Err(ureq::Error::Transport(local_failure()));
                }
            };
            self.agent
                .request_url("PUT", &url)
                .set("Content-Length", &len.to_string())
                .set("Content-Type", "application/octet-stream")
                .send(file)
        })
        .map_err(|e| opened.take().unwrap_or(e))?;
        Ok(())
    }

    fn put_multipart(&self, from: &Path, key: &str, len: u64) -> io::Result<()> {
        let name = self.object(key);
        let url =
            CreateMultipartUpload::new(&self.bucket, Some(&self.creds), &name).sign(SIGNED_FOR);
        let created = self.call("CreateMultipartUpload", key, false, || {
            self.agent.request_url("POST", &url).call()
        })?;
        let text = created.into_string()?;
        let upload = CreateMultipartUpload::parse_response(&text)
            .map_err(|e| io::Error::other(format!("S3 CreateMultipartUpload {key}: {e}")))?;
        let id = upload.upload_id().to_string();
        let result = self.upload_parts(from, key, &name, &id, len);
        if result.is_err() {
            let url = AbortMultipartUpload::new(&self.bucket, Some(&self.creds), &name, &id)
                .sign(SIGNED_FOR);
            if let Err(e) = self.call("AbortMultipartUpload", key, true, || {
                self.agent.request_url("DELETE", &url).call()
            }) {
                log::warn!("{e}; the store keeps the parts until its lifecycle rule drops them");
            }
        }
        result
    }

    fn upload_parts(
        &self,
        from: &Path,
        key: &str,
        name: &str,
        id: &str,
        len: u64,
    ) -> io::Result<()> {
        let part = self.opts.part_size.max(5 << 20);
        let count = len.div_ceil(part);
        if count > 10_000 {
            return Err(io::Error::other(format!(
                "S3 PUT {key}: {len} bytes need more than 10000 parts of {part}"
            )));
        }
        let mut etags = Vec::with_capacity(count as usize);
        for n in 0..count {
            let at = n * part;
            let size = part.min(len - at);
            let url = UploadPart::new(&self.bucket, Some(&self.creds), name, (n + 1) as u16, id)
                .sign(SIGNED_FOR);
            let mut opened = None;
            let r = self
                .call("UploadPart", key, true, || {
                    let mut file = match File::open(from).and_then(|mut f| {
                        f.seek(SeekFrom::Start(at))?;
                        Ok(f)
                    }) {
                        Ok(f) => f.take(size),
                        Err(e) => {
                            opened = Some(e);
                            return Err(ureq::Error::Transport(local_failure()));
                        }
                    };
                    self.agent
                        .request_url("PUT", &url)
                        .set("Content-Length", &size.to_string())
                        .send(&mut file)
                })
                .map_err(|e| opened.take().unwrap_or(e))?;
            let etag = r
                .header("ETag")
                .ok_or_else(|| io::Error::other(format!("S3 UploadPart {key}: no ETag")))?;
            etags.push(etag.to_string());
        }
        let done = CompleteMultipartUpload::new(
            &self.bucket,
            Some(&self.creds),
            name,
            id,
            etags.iter().map(String::as_str),
        );
        let url = done.sign(SIGNED_FOR);
        let body = done.body();
        let r = self.call("CompleteMultipartUpload", key, false, || {
            self.agent.request_url("POST", &url).send_string(&body)
        })?;
        // A 200 may still carry an error document (the store failed while
        // assembling the parts).
        let text = r.into_string()?;
        if text.contains("<Error>") {
            return Err(status_error(
                "CompleteMultipartUpload",
                key,
                200,
                &error_code(&text),
            ));
        }
        Ok(())
    }
}

/// One page of a ListObjectsV2 answer: keys with their sizes, and the
/// token of the next page. Read leniently (only Key, Size, ETag and
/// NextContinuationToken), since stores differ in the fields they send
/// (s3s-fs sends no ETag, which rusty-s3's parser requires).
#[derive(Debug, Default, PartialEq, Eq)]
pub struct ListPage {
    pub objects: Vec<(String, u64)>,
    /// The ETag of each object, where the store sent one.
    pub etags: Vec<Option<String>>,
    pub next: Option<String>,
}

impl ListPage {
    pub fn parse(xml: &str) -> ListPage {
        let mut page = ListPage::default();
        let mut rest = xml;
        while let Some((_, after)) = rest.split_once("<Contents>") {
            let (entry, tail) = after.split_once("</Contents>").unwrap_or((after, ""));
            if let Some(key) = element(entry, "Key") {
                let size = element(entry, "Size")
                    .and_then(|s| s.trim().parse().ok())
                    .unwrap_or(0);
                page.objects.push((unescape(key), size));
                page.etags.push(element(entry, "ETag").map(unescape));
            }
            rest = tail;
        }
        page.next = element(xml, "NextContinuationToken").map(unescape);
        page
    }
}

/// The text of the first `<name>` element in `xml`.
fn element<'a>(xml: &'a str, name: &str) -> Option<&'a str> {
    let (_, after) = xml.split_once(&format!("<{name}>"))?;
    Some(after.split_once(&format!("</{name}>"))?.0)
}

fn unescape(s: &str) -> String {
    s.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&apos;", "'")
        .replace("&amp;", "&")
}

/// A stand-in transport error for a local file that would not open (the
/// real error is kept beside it and returned instead).
fn local_failure() -> ureq::Transport {
    ureq::Error::from(io::Error::other("local file"))
        .into_transport()
        .expect("an io error is a transport error")
}

/// An object open for reading: ranged GETs from the reader's position.
struct S3Object {
    client: Arc<Client>,
    key: String,
    len: u64,
    pos: u64,
    body: Option<Box<dyn Read + Send>>,
}

impl Read for S3Object {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.pos >= self.len || buf.is_empty() {
            return Ok(0);
        }
        let mut broken = 0;
        loop {
            if self.body.is_none() {
                self.body = Some(self.client.get_from(&self.key, self.pos, self.len)?);
            }
            let want = buf.len().min((self.len - self.pos) as usize);
            match self
                .body
                .as_mut()
                .expect("opened above")
                .read(&mut buf[..want])
            {
                Ok(0) => {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        format!(
                            "S3 GET {}: the object ended at {} of {} bytes",
                            self.key, self.pos, self.len
                        ),
                    ))
                }
                Ok(n) => {
                    self.pos += n as u64;
                    return Ok(n);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                // A connection broken mid-body: again from here.
                Err(e) => {
                    self.body = None;
                    broken += 1;
                    if broken > self.client.opts.retries {
                        return Err(io::Error::new(
                            e.kind(),
                            Unavailable(format!("S3 GET {}: {e}", self.key)),
                        ));
                    }
                    backoff(broken);
                }
            }
        }
    }
}

impl Seek for S3Object {
    fn seek(&mut self, to: SeekFrom) -> io::Result<u64> {
        let target = match to {
            SeekFrom::Start(n) => Some(n),
            SeekFrom::End(d) => self.len.checked_add_signed(d),
            SeekFrom::Current(d) => self.pos.checked_add_signed(d),
        }
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "seek before the start"))?;
        if target == self.pos {
            return Ok(target);
        }
        if target > self.pos && target - self.pos <= SKIP_BY_READING && self.body.is_some() {
            let skip = target - self.pos;
            let got = io::copy(&mut (&mut *self).take(skip), &mut io::sink())?;
            if got == skip {
                return Ok(target);
            }
        }
        self.body = None;
        self.pos = target;
        Ok(target)
    }
}

impl Object for S3Object {
    fn size(&self) -> u64 {
        self.len
    }
}

impl Backend for S3Backend {
    fn open(&self, key: &str) -> io::Result<Box<dyn Object>> {
        let len = self.client.head(key)?;
        Ok(Box::new(S3Object {
            client: self.client.clone(),
            key: key.to_string(),
            len,
            pos: 0,
            body: None,
        }))
    }

    fn read_all(&self, key: &str) -> io::Result<Vec<u8>> {
        let mut v = Vec::new();
        // One GET; a break mid-way is retried whole.
        let mut broken = 0;
        loop {
            v.clear();
            match self.client.get_from(key, 0, 0)?.read_to_end(&mut v) {
                Ok(_) => return Ok(v),
                Err(e) => {
                    broken += 1;
                    if broken > self.client.opts.retries {
                        return Err(io::Error::new(
                            e.kind(),
                            Unavailable(format!("S3 GET {key}: {e}")),
                        ));
                    }
                    backoff(broken);
                }
            }
        }
    }

    fn len(&self, key: &str) -> io::Result<u64> {
        self.client.head(key)
    }

    fn put(&self, from: &Path, key: &str, _durability: Durability) -> io::Result<()> {
        let len = fs::metadata(from)?.len();
        if len > self.client.opts.multipart_threshold {
            self.client.put_multipart(from, key, len)?;
        } else {
            self.client.put_single(from, key, len)?;
        }
        fs::remove_file(from)
    }

    fn sync(&self) -> io::Result<()> {
        // Every put was acknowledged by the store: nothing waits.
        Ok(())
    }

    fn is_remote(&self) -> bool {
        true
    }

    /// S3 does not say whether the object was there: Ok(true) whenever the
    /// store answered.
    fn remove(&self, key: &str) -> io::Result<bool> {
        let c = &self.client;
        let name = c.object(key);
        let url = DeleteObject::new(&c.bucket, Some(&c.creds), &name).sign(SIGNED_FOR);
        match c.call("DELETE", key, true, || {
            c.agent.request_url("DELETE", &url).call()
        }) {
            Ok(_) => Ok(true),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(e),
        }
    }

    fn list(&self, visit: &mut dyn FnMut(&str)) -> io::Result<()> {
        let c = &self.client;
        let mut token: Option<String> = None;
        loop {
            let mut list = ListObjectsV2::new(&c.bucket, Some(&c.creds));
            list.with_prefix(c.root.clone());
            list.with_max_keys(1000);
            if let Some(t) = &token {
                list.with_continuation_token(t.clone());
            }
            let url = list.sign(SIGNED_FOR);
            let r = c.call("LIST", &c.root, true, || {
                c.agent.request_url("GET", &url).call()
            })?;
            let page = ListPage::parse(&r.into_string()?);
            for (key, _) in &page.objects {
                if let Some(key) = key.strip_prefix(&c.root) {
                    visit(key);
                }
            }
            match page.next {
                Some(t) if !page.objects.is_empty() => token = Some(t),
                _ => return Ok(()),
            }
        }
    }

    fn describe(&self) -> String {
        let o = &self.client.opts;
        format!("bucket {} at {}", o.url(), o.endpoint)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn store_urls() {
        assert_eq!(
            parse_store_url("s3://nimbus-data/site-a").unwrap(),
            ("nimbus-data".into(), "site-a/".into())
        );
        assert_eq!(
            parse_store_url("s3://nimbus/").unwrap(),
            ("nimbus".into(), String::new())
        );
        assert_eq!(
            parse_store_url("s3://nimbus/a/b/").unwrap().1,
            "a/b/".to_string()
        );
        for bad in [
            "nimbus",
            "s3://",
            "s3://UPPER",
            "s3://ab",
            "s3://ok-bucket/../x",
        ] {
            assert!(parse_store_url(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn list_pages_without_etags() {
        let xml = "<?xml version=\"1.0\"?><ListBucketResult><Name>b</Name>\
                   <Contents><Key>p/blobs/ab/x.bz2</Key><Size>12</Size></Contents>\
                   <Contents><Key>p/a&amp;b</Key><ETag>\"e\"</ETag><Size>3</Size></Contents>\
                   <NextContinuationToken>t+1/</NextContinuationToken></ListBucketResult>";
        let page = ListPage::parse(xml);
        assert_eq!(
            page.objects,
            vec![("p/blobs/ab/x.bz2".into(), 12), ("p/a&b".into(), 3)]
        );
        assert_eq!(page.next.as_deref(), Some("t+1/"));
        assert_eq!(page.etags, vec![None, Some("\"e\"".into())]);
        assert_eq!(ListPage::parse("<ListBucketResult/>"), ListPage::default());
    }

    #[test]
    fn error_codes_and_messages() {
        assert_eq!(
            error_code("<Error><Code>SlowDown</Code><Message>x</Message></Error>"),
            "SlowDown"
        );
        let e = status_error("PUT", "ab/cd", 403, "SignatureDoesNotMatch");
        assert_eq!(e.kind(), io::ErrorKind::PermissionDenied);
        assert!(e.to_string().contains("secret key is wrong"), "{e}");
        let creds = S3Credentials {
            access_key_id: "AKIDEXAMPLE".into(),
            secret_access_key: "very-secret".into(),
            session_token: None,
            source: "the environment".into(),
        };
        assert!(!format!("{creds:?}").contains("secret"));
        assert!(!format!("{creds:?}").contains("AKID"));
    }
}
