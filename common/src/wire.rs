//! The JSON bodies and header names of the Nimbus HTTP protocol. The routes
//! themselves are described in `docs/PROTOCOL.md`.

use crate::hash::ContentHash;
use serde::{Deserialize, Serialize};

/// Request header carrying the hex BLAKE3 hash of an upload's body.
pub const HEADER_HASH: &str = "X-Nimbus-Hash";
/// Request header carrying the file's modification time, unix seconds.
pub const HEADER_MTIME: &str = "X-Nimbus-Mtime";

/// The latest modification time the protocol carries: 9999-12-31T23:59:59Z,
/// the last second an HTTP date (`Last-Modified`) can show.
pub const MTIME_MAX: i64 = 253_402_300_799;

/// Whether `mtime` (unix seconds) is one the server stores: from the epoch
/// to [`MTIME_MAX`]. The client sends a time outside that range clamped.
pub fn mtime_in_range(mtime: i64) -> bool {
    (0..=MTIME_MAX).contains(&mtime)
}

/// The body of `POST /api/v1/login`: who logs in, from which machine.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LoginRequest {
    pub user: String,
    pub password: String,
    pub machine: String,
}

/// Its answer: the device token this machine uses from then on (the
/// client keeps it, as is, in its config file).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LoginReply {
    pub user: String,
    pub machine: String,
    pub device: String,
    pub token: String,
}

/// The body of `POST /api/v1/enroll`: an enrollment code made on the
/// server's page ("Add a machine") instead of a name and password. The
/// answer is a [`LoginReply`].
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EnrollRequest {
    pub code: String,
    pub machine: String,
}

/// One client program the server offers (`GET /api/v1/clients`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClientBuildInfo {
    /// `windows`, `linux` or `macos`.
    pub os: String,
    /// `x86_64` or `aarch64`.
    pub arch: String,
    pub version: String,
    /// Its download path on the server: `/clients/{file}`.
    pub url: String,
    pub size: u64,
    /// Lower-case hex.
    pub sha256: String,
    /// The release signature of (file name, sha256), 128 hex digits, when
    /// the build was signed (`common::update`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signature: Option<String>,
}

/// The `200` answer to a status report when the server offers a newer
/// client for the reporting machine's system (`204`, no body, otherwise).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusAnswer {
    pub newer: Option<ClientBuildInfo>,
}

/// The routes both sides name (docs/PROTOCOL.md has them all).
pub const LOGIN_ROUTE: &str = "/api/v1/login";
pub const ENROLL_ROUTE: &str = "/api/v1/enroll";
pub const STATUS_ROUTE: &str = "/api/v1/status";
/// The listing, and the prefix of the file routes: `{FILES_ROUTE}/{machine}/{path}`.
pub const FILES_ROUTE: &str = "/api/v1/files";

/// `POST {BATCH_ROUTE}/{machine}`: many files in one request.
pub const BATCH_ROUTE: &str = "/api/v1/batch";

/// One file of a batch: this header as one line of JSON, then exactly
/// `size` bytes of content. A batch is a sequence of these; its answer is
/// one [`UploadReply`] per file, in order, once all are durable.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BatchEntry {
    pub path: String,
    pub hash: ContentHash,
    pub size: u64,
    pub mtime: i64,
}

/// Files a batch may hold.
pub const MAX_BATCH_FILES: usize = 1000;
/// Bytes a batch's body may hold, headers included.
pub const MAX_BATCH_BYTES: u64 = 64 << 20;

/// `/api/v1/files/{machine}/{path}`, each part percent-encoded.
pub fn file_route(machine: &str, path: &str) -> String {
    format!(
        "{FILES_ROUTE}/{}/{}",
        crate::paths::encode_segment(machine),
        crate::paths::encode_path(path)
    )
}

/// `/download/{machine}/{path}`, of the latest version or of version `n`.
pub fn download_route(machine: &str, path: &str, version: Option<u64>) -> String {
    let base = format!(
        "/download/{}/{}",
        crate::paths::encode_segment(machine),
        crate::paths::encode_path(path)
    );
    match version {
        Some(n) => format!("{base}?version={n}"),
        None => base,
    }
}

/// `/versions/{machine}/{path}`: the page of a file's versions.
pub fn versions_page_route(machine: &str, path: &str) -> String {
    format!(
        "/versions/{}/{}",
        crate::paths::encode_segment(machine),
        crate::paths::encode_path(path)
    )
}

/// One entry of `GET /api/v1/files`: a file's version current at the
/// time asked for (by default its latest).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileEntry {
    pub client: String,
    pub path: String,
    pub size: u64,
    pub mtime: i64,
    pub hash: ContentHash,
    pub backed_up_at: i64,
    pub packed: bool,
    /// How many versions with content the file has.
    pub versions: usize,
    /// This version's number (for `?version=N`).
    #[serde(default)]
    pub version: u64,
    /// The file was deleted at `backed_up_at` (listed with `deleted=1`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub deleted: bool,
}

/// One entry of `GET /api/v1/versions/{client}/{path}`, oldest first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VersionEntry {
    pub version: u64,
    /// For a deletion, the size, mtime and hash of the content it followed.
    pub size: u64,
    pub mtime: i64,
    pub hash: ContentHash,
    pub backed_up_at: i64,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub deleted: bool,
}

/// Body of `POST /api/v1/files/{client}/{path}`: record a version whose
/// content the server may already hold, without sending the bytes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordRequest {
    pub hash: ContentHash,
    pub size: u64,
    pub mtime: i64,
}

/// Answer to a successful upload or record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UploadReply {
    pub client: String,
    pub path: String,
    pub hash: ContentHash,
    pub size: u64,
    /// False when the content equals the latest version: nothing was added.
    pub new_version: bool,
    /// How many versions the file has now.
    pub versions: usize,
}

/// Body of `POST /api/v1/uploads`: a file about to go up in pieces.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UploadStart {
    /// The machine (folder tree) of the caller's space it goes into.
    pub machine: String,
    /// Its `/`-separated path there.
    pub path: String,
    pub size: u64,
    /// Modification time, unix seconds (default: now).
    #[serde(default)]
    pub mtime: Option<i64>,
    /// The whole file's BLAKE3, when the sender knows it: the finished
    /// upload is then refused (`400 hash_mismatch`, and dropped) unless its
    /// bytes hash to it, so a file that changed while it went up in pieces
    /// never becomes a version made of two states.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hash: Option<ContentHash>,
}

/// A resumable upload's state: `offset` bytes are stored durably; the next
/// piece starts there. `result` is set once the file is a version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UploadState {
    pub id: String,
    pub machine: String,
    pub path: String,
    pub size: u64,
    pub mtime: i64,
    pub offset: u64,
    pub result: Option<UploadReply>,
}

/// Body of `POST /api/v1/status`: a machine's report on itself, after a
/// pass that did something and as a heartbeat while idle.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StatusReport {
    /// The client's version, e.g. `0.1.0`.
    pub version: String,
    /// Operating system and architecture, e.g. `linux x86_64`.
    pub os: String,
    /// The last pass's counts.
    #[serde(default)]
    pub scanned: u64,
    #[serde(default)]
    pub uploaded: u64,
    #[serde(default)]
    pub deleted: u64,
    #[serde(default)]
    pub pending: u64,
    #[serde(default)]
    pub errors: u64,
    /// The last error of the last pass, if it had any.
    #[serde(default)]
    pub last_error: Option<String>,
    /// The version of the server's backup policy the client applies
    /// (`GET /api/v1/policy`), if it has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy: Option<String>,
    /// The last pass's failed files (at most [`MAX_PROBLEMS`], the last
    /// ones), so errors can be told apart and some ignored.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub problems: Vec<Problem>,
}

/// The most problems one status report carries.
pub const MAX_PROBLEMS: usize = 50;

/// A file the last pass could not back up, and why.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Problem {
    pub path: String,
    pub message: String,
}

/// Where a client fetches its backup policy
/// ([`crate::policy::Effective`], with an `ETag`).
pub const POLICY_ROUTE: &str = "/api/v1/policy";

/// Body of every error response.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    /// A stable machine-readable code, e.g. `hash_mismatch`.
    pub error: String,
    /// What went wrong and what to do, for people.
    pub message: String,
}

/// `error` code of the 409 answer to a record whose content the server lacks:
/// the client should send the bytes with `PUT`.
pub const ERR_CONTENT_UNKNOWN: &str = "content_unknown";

/// `POST {CHUNKS_ROUTE}/{machine}/missing` asks which chunks the caller's
/// space lacks; `POST {CHUNKS_ROUTE}/{machine}` sends chunks.
pub const CHUNKS_ROUTE: &str = "/api/v1/chunks";
/// `POST {MANIFESTS_ROUTE}/{machine}/{path}` commits a version made of
/// chunks the server holds.
pub const MANIFESTS_ROUTE: &str = "/api/v1/manifests";

/// Files this large are kept as chunks: the client sends them so, and the
/// server cuts whole uploads of them (a `PUT`, a browser upload) the same.
pub const CHUNKED_FILE_BYTES: u64 = 2 << 20;

/// Content-defined chunking, FastCDC (2020) over the file's bytes: no chunk
/// is shorter than this (but a file's last one)...
pub const CHUNK_MIN: u32 = 256 * 1024;
/// ...chunks are this long on average...
pub const CHUNK_AVG: u32 = 1024 * 1024;
/// ...and never longer than this.
pub const CHUNK_MAX: u32 = 4 * 1024 * 1024;

/// Hashes one missing-chunks question may name.
pub const MAX_CHUNK_QUERY: usize = 16_384;
/// Chunks one manifest may name (about a terabyte at the average size).
pub const MAX_MANIFEST_CHUNKS: usize = 1 << 20;
/// Bytes of a manifest commit's JSON body.
pub const MAX_MANIFEST_BODY: u64 = 96 << 20;

/// Body of `POST /api/v1/chunks/{machine}/missing`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChunkQuery {
    pub hashes: Vec<ContentHash>,
}

/// Its answer: the asked-for hashes (in the order asked) that the caller's
/// own space does not hold. Content held only by other users counts as
/// missing: the answer never tells what someone else stores.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChunkQueryReply {
    pub missing: Vec<ContentHash>,
}

/// One chunk of `POST /api/v1/chunks/{machine}`: this header as one line
/// of JSON, then exactly `size` bytes, which must hash to `hash`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChunkEntry {
    pub hash: ContentHash,
    pub size: u64,
}

/// Answer to a chunk upload: how many chunks and bytes it carried.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChunksStored {
    pub chunks: usize,
    pub bytes: u64,
}

/// Body of `POST /api/v1/manifests/{machine}/{path}`: a version of the
/// file made of `chunks` (hash, length), in order, `size` bytes in all,
/// whose whole content hashes to `hash`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ManifestCommit {
    pub hash: ContentHash,
    pub size: u64,
    pub mtime: i64,
    pub chunks: Vec<(ContentHash, u64)>,
}

/// `error` code of the 409 answer to a manifest naming chunks the caller's
/// space does not hold; the body's `missing` lists them.
pub const ERR_CHUNKS_MISSING: &str = "chunks_missing";

/// Body of that 409 answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChunksMissing {
    pub error: String,
    pub message: String,
    pub missing: Vec<ContentHash>,
}
