//! The client's memory of what the server has acknowledged: for each
//! relative path, the size, mtime and hash of the content last backed up.
//!
//! A path enters the state only after the server answered success for it,
//! and the file is rewritten atomically (temp file, fsync, rename), so a
//! client killed at any moment restarts from what really is on the server.

use nimbus_common::durable;
use nimbus_common::hash::ContentHash;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

const FORMAT: u32 = 1;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    pub size: u64,
    /// Modification time in nanoseconds since the Unix epoch.
    pub mtime_ns: i64,
    pub hash: ContentHash,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct State {
    format: u32,
    /// What this state belongs to; a state for another server, folder or
    /// client name is not reused.
    pub server: String,
    pub dir: String,
    pub client: String,
    pub files: BTreeMap<String, Entry>,
    /// The named folders (policy or `--folder`) whose files are in `files`
    /// under `NAME/`.
    #[serde(default, skip_serializing_if = "BTreeSet::is_empty")]
    pub folders: BTreeSet<String>,
    // A `partial` map of resumable uploads (written by 0.1 clients before
    // chunks) is ignored: chunks already on the server are never resent.
}

#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("cannot read the state file {path}: {source}")]
    Read { path: PathBuf, source: io::Error },
    #[error("cannot write the state file {path}: {source}")]
    Write { path: PathBuf, source: io::Error },
}

impl State {
    pub fn new(server: &str, dir: &str, client: &str) -> State {
        State {
            format: FORMAT,
            server: server.to_string(),
            dir: dir.to_string(),
            client: client.to_string(),
            files: BTreeMap::new(),
            folders: BTreeSet::new(),
        }
    }

    /// Loads the state at `path`, or starts empty when there is none, when it
    /// belongs to another server/folder/name, or when it is unreadable JSON
    /// (then every file is checked again: the server deduplicates, so this
    /// costs hashing, not uploads).
    pub fn load(path: &Path, server: &str, dir: &str, client: &str) -> Result<State, StateError> {
        let text = match fs::read(path) {
            Ok(t) => t,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Ok(State::new(server, dir, client))
            }
            Err(source) => {
                return Err(StateError::Read {
                    path: path.to_path_buf(),
                    source,
                })
            }
        };
        match serde_json::from_slice::<State>(&text) {
            Ok(s)
                if s.format == FORMAT
                    && s.server == server
                    && s.dir == dir
                    && s.client == client =>
            {
                Ok(s)
            }
            Ok(_) => {
                log::warn!(
                    "state file {} belongs to another server, folder or client name; starting a fresh one",
                    path.display()
                );
                Ok(State::new(server, dir, client))
            }
            Err(e) => {
                log::warn!(
                    "state file {} is damaged ({e}); every file will be checked against the server again",
                    path.display()
                );
                Ok(State::new(server, dir, client))
            }
        }
    }

    pub fn save(&self, path: &Path) -> Result<(), StateError> {
        let err = |source| StateError::Write {
            path: path.to_path_buf(),
            source,
        };
        if let Some(parent) = path.parent() {
            if !parent.as_os_str().is_empty() {
                fs::create_dir_all(parent).map_err(err)?;
            }
        }
        durable::write_atomic(path, |w| {
            serde_json::to_writer(&mut *w, self).map_err(io::Error::other)
        })
        .map_err(err)
    }
}

/// Where the state lives when `--state` is not given: one file per
/// (server, folder, client name) in the user's local data directory.
pub fn default_path(server: &str, dir: &str, client: &str) -> PathBuf {
    let key = ContentHash::of_bytes(format!("{server}\n{dir}\n{client}").as_bytes()).to_hex();
    crate::login::app_dir(true).join(format!("state-{}.json", &key[..16]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_ownership() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/state.json");
        let mut s = State::new("http://a", "/d", "pc");
        s.files.insert(
            "x/y.txt".into(),
            Entry {
                size: 3,
                mtime_ns: 42,
                hash: ContentHash::of_bytes(b"abc"),
            },
        );
        s.save(&path).unwrap();
        let back = State::load(&path, "http://a", "/d", "pc").unwrap();
        assert_eq!(back.files, s.files);
        let other = State::load(&path, "http://b", "/d", "pc").unwrap();
        assert!(other.files.is_empty());
        fs::write(&path, b"{not json").unwrap();
        assert!(State::load(&path, "http://a", "/d", "pc")
            .unwrap()
            .files
            .is_empty());
    }
}

/// One backup loop per state file: an exclusive lock on `STATE.lock`,
/// held while the loop runs (released by the system when the process ends
/// or `exec`s, so a restart after an update takes it again).
pub struct StateLock {
    _file: fs::File,
}

/// Why the lock was not taken.
#[derive(Debug)]
pub enum LockError {
    /// Another client process holds it.
    Held,
    Io(io::Error),
}

/// Takes the lock of `state`, waiting up to `wait` for a process that is
/// handing over to its successor (a Windows restart after an update).
pub fn lock(state: &Path, wait: std::time::Duration) -> Result<StateLock, LockError> {
    let path = state.with_extension("lock");
    if let Some(dir) = path.parent() {
        fs::create_dir_all(dir).map_err(LockError::Io)?;
    }
    let file = fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(LockError::Io)?;
    let until = std::time::Instant::now() + wait;
    loop {
        match file.try_lock() {
            Ok(()) => return Ok(StateLock { _file: file }),
            Err(fs::TryLockError::WouldBlock) if std::time::Instant::now() < until => {
                std::thread::sleep(std::time::Duration::from_millis(100))
            }
            Err(fs::TryLockError::WouldBlock) => return Err(LockError::Held),
            Err(fs::TryLockError::Error(e)) => return Err(LockError::Io(e)),
        }
    }
}
