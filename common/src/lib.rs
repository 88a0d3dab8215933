//! What the Nimbus server and client agree on.
//!
//! - [`paths`]: the rules for client names and backed-up relative paths, and
//!   how they are spelled in URLs. Both sides validate with the same code, so a
//!   path the client sends is a path the server accepts.
//! - [`localpath`]: local paths on each platform (Windows and Unix rules,
//!   testable on any host) to and from the protocol's `/`-separated paths.
//! - [`chunking`]: how a file is cut into content-defined chunks.
//! - [`hash`]: content hashing (BLAKE3, lowercase hex), the identity of a blob.
//! - [`wire`]: the JSON bodies and header names of the HTTP protocol
//!   (`docs/PROTOCOL.md`).
//! - [`durable`]: crash-safe file replacement (temp file, fsync, rename,
//!   directory fsync), used for every file whose loss would lose data.
//! - [`time`]: unix seconds as RFC 3339 UTC, and the times users type.
//! - [`update`]: client updates: what a release signature signs, and how
//!   versions are ordered.
//! - [`policy`]: the backup policy a server gives its clients, and its
//!   backup windows.
//! - [`logger`]: the `log` facade's stderr logger both programs install.

/// The version both programs print: the package version and the git
/// commit they were built from (see `build.rs`).
/// The git commit the programs were built from.
pub const COMMIT: &str = env!("NIMBUS_COMMIT");

pub const VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (commit ",
    env!("NIMBUS_COMMIT"),
    ")"
);

pub mod chunking;
pub mod durable;
pub mod hash;
pub mod localpath;
pub mod logger;
pub mod paths;
pub mod policy;
pub mod time;
pub mod update;
pub mod wire;
