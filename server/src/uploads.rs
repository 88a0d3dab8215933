//! Resumable uploads: a file goes up in pieces, each stored durably before
//! it is acknowledged, so a dropped connection (or a server restart)
//! continues where it stopped instead of starting again. The browser's
//! upload uses it; any HTTP client may.
//!
//! Layout under the data directory:
//! - `uploads/<id>.json`: owner, target, size, mtime and the acknowledged
//!   offset, rewritten atomically after each piece's bytes are fsync'd;
//! - `uploads/<id>.part`: the bytes. Anything beyond the acknowledged offset
//!   (a piece cut off by a crash) is cut before the next piece is written.
//!
//! Encrypted (see `vault`), the state is a sealed object and the part an
//! open-ended one holding whole 64 KiB segments only; the bytes after the
//! last whole segment (fewer than 64 KiB) ride in the sealed state, so a
//! piece never rewrites what an earlier one stored.
//!
//! Nothing here is visible as a backed-up file until the upload is
//! complete: then it is hashed, moved into the blobs and recorded as a
//! version like any other, by its last piece or, after a crash, at the
//! next start. Uploads left untouched for a week are removed.

use crate::store::{DataManager, StoreError};
use crate::vault::{seal::SEG, Obj, Vault};
use base64::engine::general_purpose::STANDARD_NO_PAD as B64;
use base64::Engine;
use log::{info, warn};
use nimbus_common::durable;
use nimbus_common::hash::{ContentHash, Hasher};
use nimbus_common::paths::{validate_client_name, validate_rel_path, PathError};
use nimbus_common::time::unix_now;
use nimbus_common::wire::{UploadReply, UploadStart, UploadState};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// Uploads one user may have open at a time.
pub const MAX_OPEN_PER_USER: usize = 100;
/// An upload nobody has added to for this long is removed.
const ABANDONED_AFTER_SECS: i64 = 7 * 24 * 3600;
/// A finished upload's answer is kept this long, for a browser that lost
/// the reply to its last piece.
const FINISHED_KEPT_SECS: i64 = 24 * 3600;
const BUF: usize = 256 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum UploadError {
    #[error("no such upload")]
    NotFound,
    /// The upload is the user's, but goes to another machine than the
    /// device asking may write to.
    #[error("this device is registered as machine {0:?} and may only touch uploads into it")]
    OtherMachine(String),
    #[error("this upload holds {offset} bytes; send the piece that starts there")]
    Offset { offset: u64 },
    #[error("another piece of this upload is being received; retry shortly")]
    Busy,
    #[error("{0}")]
    Bad(String),
    #[error(transparent)]
    Path(#[from] PathError),
    #[error("you have {MAX_OPEN_PER_USER} unfinished uploads; finish or cancel some first")]
    TooMany,
    #[error("the file is larger than the server's limit of {limit} bytes")]
    TooLarge { limit: u64 },
    /// The connection broke mid-piece; what arrived is kept.
    #[error("the piece ended early; {offset} bytes are stored, continue from there")]
    Incomplete { offset: u64 },
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<io::Error> for UploadError {
    fn from(e: io::Error) -> UploadError {
        UploadError::Store(StoreError::Io(e))
    }
}

/// Where a piece goes: `len` bytes from `start` of a file of `total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Piece {
    pub start: u64,
    pub len: u64,
    pub total: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Meta {
    user: String,
    machine: String,
    path: String,
    size: u64,
    mtime: i64,
    /// Bytes of `.part` that are durable and acknowledged.
    offset: u64,
    created: i64,
    updated: i64,
    /// Set once the complete file is hashed, before it is recorded.
    hash: Option<ContentHash>,
    /// What the complete file must hash to, when the sender said.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    expected: Option<ContentHash>,
    /// Encrypted: the acknowledged bytes after the part's last whole
    /// segment, in base64.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    tail: Option<String>,
    result: Option<UploadReply>,
}

impl Meta {
    /// The catalog key of the machine it goes to.
    fn key(&self) -> String {
        crate::space::MachineKey::new(&self.user, &self.machine).to_string()
    }

    /// Marks it recorded, with the answer a client gets for an upload.
    fn done(&mut self, hash: ContentHash, new_version: bool, versions: usize) {
        self.result = Some(UploadReply {
            client: self.machine.clone(),
            path: self.path.clone(),
            hash,
            size: self.size,
            new_version,
            versions,
        });
        self.updated = unix_now();
    }
}

/// Who asks about an upload: a user, and the machine a device token is
/// bound to (`None` for a browser session, which may upload anywhere in
/// its user's space).
#[derive(Clone, Copy, Debug)]
pub struct Uploader<'a> {
    pub user: &'a str,
    pub machine: Option<&'a str>,
}

/// An upload's bytes hashed as its pieces arrived, so finishing it need not
/// read the whole file again: valid while `offset` is the upload's (a
/// restart, or a piece that failed to write, loses it, and the finish then
/// hashes the file).
#[derive(Default)]
struct Running {
    offset: u64,
    hasher: Option<Hasher>,
}

pub struct Uploads {
    dir: PathBuf,
    vault: Vault,
    /// One piece at a time per upload, and its content hashed so far.
    locks: Mutex<HashMap<String, Arc<Mutex<Running>>>>,
    /// Serialises starting uploads, so the per-user count holds.
    starting: Mutex<()>,
}

impl Uploads {
    pub fn open(data_dir: &Path, vault: Vault) -> io::Result<Uploads> {
        let dir = data_dir.join("uploads");
        fs::create_dir_all(&dir)?;
        Ok(Uploads {
            dir,
            vault,
            locks: Mutex::new(HashMap::new()),
            starting: Mutex::new(()),
        })
    }

    fn meta_path(&self, id: &str) -> PathBuf {
        self.dir.join(format!("{id}.json"))
    }

    fn part_path(&self, id: &str) -> PathBuf {
        self.dir.join(format!("{id}.part"))
    }

    fn load(&self, id: &str) -> Result<Meta, UploadError> {
        if id.len() != 32 || !id.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(UploadError::NotFound);
        }
        let bytes = match self
            .vault
            .read_object(&self.meta_path(id), Obj::UploadMeta(id))
        {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Err(UploadError::NotFound),
            Err(e) => return Err(e.into()),
        };
        serde_json::from_slice(&bytes)
            .map_err(|e| io::Error::other(format!("upload {id}: {e}")).into())
    }

    fn save(&self, id: &str, meta: &Meta) -> io::Result<()> {
        let obj = Obj::UploadMeta(id);
        self.vault
            .write_atomic(&self.meta_path(id), obj, false, |w| {
                serde_json::to_writer(&mut *w, meta)?;
                w.write_all(b"\n")
            })
    }

    /// The upload `id` if `user` owns it; another user's is not found.
    /// The upload `id` if `who` may touch it: another user's is not found
    /// (as if it did not exist); a device's own user's upload into another
    /// machine is refused.
    fn owned(&self, who: Uploader<'_>, id: &str) -> Result<Meta, UploadError> {
        let m = self.load(id)?;
        if m.user != who.user {
            return Err(UploadError::NotFound);
        }
        match who.machine {
            Some(machine) if machine != m.machine => {
                Err(UploadError::OtherMachine(machine.to_string()))
            }
            _ => Ok(m),
        }
    }

    fn lock_for(&self, id: &str) -> Arc<Mutex<Running>> {
        self.locks
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(id.to_string())
            .or_default()
            .clone()
    }

    /// Every upload's id and state, unreadable ones skipped.
    fn all(&self) -> Vec<(String, Meta)> {
        let Ok(dir) = fs::read_dir(&self.dir) else {
            return Vec::new();
        };
        dir.filter_map(|e| e.ok())
            .filter_map(|e| {
                let name = e.file_name().into_string().ok()?;
                let id = name.strip_suffix(".json")?.to_string();
                let meta = self.load(&id).ok()?;
                Some((id, meta))
            })
            .collect()
    }

    /// Starts an upload of `req` into `user`'s space.
    pub fn start(
        &self,
        dm: &DataManager,
        user: &str,
        req: &UploadStart,
        max_bytes: u64,
    ) -> Result<UploadState, UploadError> {
        validate_client_name(&req.machine)?;
        validate_rel_path(&req.path)?;
        if req.size > max_bytes {
            return Err(UploadError::TooLarge { limit: max_bytes });
        }
        let _starting = self.starting.lock().unwrap_or_else(|e| e.into_inner());
        let open = self
            .sweep()
            .iter()
            .filter(|(_, m)| m.user == user && m.result.is_none())
            .count();
        if open >= MAX_OPEN_PER_USER {
            return Err(UploadError::TooMany);
        }
        let id = crate::accounts::random_hex(16);
        let now = unix_now();
        let mut meta = Meta {
            user: user.to_string(),
            machine: req.machine.clone(),
            path: req.path.clone(),
            size: req.size,
            mtime: req.mtime.unwrap_or(now),
            offset: 0,
            created: now,
            updated: now,
            hash: None,
            expected: req.hash,
            tail: None,
            result: None,
        };
        // Encrypted, even an empty part has its header.
        let part = File::create(self.part_path(&id))?;
        let (part, _) = self
            .vault
            .appender(part, Obj::UploadPart(&id), 0)
            .finish_whole_segments()?;
        part.sync_all()?;
        self.save(&id, &meta)?;
        if meta.size == 0 {
            self.finish(dm, &id, &mut meta)?;
        }
        Ok(state(&id, &meta))
    }

    /// The state of one of `user`'s uploads.
    pub fn state(&self, who: Uploader<'_>, id: &str) -> Result<UploadState, UploadError> {
        self.owned(who, id).map(|m| state(id, &m))
    }

    /// Appends a piece: `piece.len` bytes of `body`. The piece must start at the upload's offset.
    /// A piece cut short keeps what arrived. The last piece makes the file
    /// a version. `len` 0 at the end retries a finish that failed.
    pub fn append(
        &self,
        dm: &DataManager,
        who: Uploader<'_>,
        id: &str,
        piece: Piece,
        body: &mut dyn Read,
    ) -> Result<UploadState, UploadError> {
        let Piece { start, len, total } = piece;
        let lock = self.lock_for(id);
        let mut running = lock.try_lock().map_err(|_| UploadError::Busy)?;
        let mut meta = self.owned(who, id)?;
        if total != meta.size {
            return Err(UploadError::Bad(format!(
                "Content-Range says the file has {total} bytes; this upload was started with {}",
                meta.size
            )));
        }
        if meta.result.is_some() || start != meta.offset {
            return Err(UploadError::Offset {
                offset: meta.offset,
            });
        }
        if start + len > meta.size {
            return Err(UploadError::Bad(format!(
                "the piece ends beyond the file's {} bytes",
                meta.size
            )));
        }
        if len > 0 {
            if meta.offset == 0 {
                running.hasher = Some(Hasher::new());
            } else if running.offset != meta.offset {
                running.hasher = None;
            }
            let written = if self.vault.is_sealed() {
                self.write_sealed_piece(id, &mut meta, len, body, running.hasher.as_mut())
            } else {
                write_piece(
                    &self.part_path(id),
                    meta.offset,
                    len,
                    body,
                    running.hasher.as_mut(),
                )
            };
            let got = match written {
                Ok(got) => got,
                Err(e) => {
                    running.hasher = None;
                    return Err(e.into());
                }
            };
            meta.offset += got;
            running.offset = meta.offset;
            meta.updated = unix_now();
            self.save(id, &meta)?;
            if got < len {
                return Err(UploadError::Incomplete {
                    offset: meta.offset,
                });
            }
        }
        if meta.offset == meta.size {
            let hashed = running
                .hasher
                .as_ref()
                .filter(|h| running.offset == meta.size && h.len() == meta.size)
                .map(|h| h.finish());
            self.finish_hashed(dm, id, &mut meta, hashed)?;
        }
        Ok(state(id, &meta))
    }

    /// Makes a complete upload a version.
    fn finish(&self, dm: &DataManager, id: &str, meta: &mut Meta) -> Result<(), UploadError> {
        self.finish_hashed(dm, id, meta, None)
    }

    /// The same, with the content's (hash, size) when its pieces were hashed
    /// as they arrived (else the file is hashed here).
    fn finish_hashed(
        &self,
        dm: &DataManager,
        id: &str,
        meta: &mut Meta,
        hashed: Option<(ContentHash, u64)>,
    ) -> Result<(), UploadError> {
        let part = self.part_path(id);
        let adopted = if self.vault.is_sealed() {
            self.stage_sealed(dm, id, meta, hashed)
        } else {
            match hashed {
                Some((hash, size)) => dm.adopt_hashed_upload(&part, hash, size),
                None => dm.adopt_upload(&part),
            }
        };
        let staged = match adopted {
            Ok(s) => s,
            Err(StoreError::Io(e)) if e.kind() == io::ErrorKind::NotFound => {
                // Moved into the blobs by a finish that did not complete;
                // the bytes cannot be recovered from here: start again.
                self.remove(id);
                return Err(UploadError::NotFound);
            }
            Err(e) => return Err(e.into()),
        };
        if staged.size != meta.size {
            return Err(UploadError::Store(StoreError::Io(io::Error::other(
                format!("upload {id} holds {} bytes, not {}", staged.size, meta.size),
            ))));
        }
        if let Some(expected) = meta.expected.filter(|e| *e != staged.hash) {
            // The file changed while it went up: its bytes are of two states.
            let actual = staged.hash;
            dm.discard(staged);
            self.remove(id);
            return Err(UploadError::Store(StoreError::HashMismatch {
                expected,
                actual,
            }));
        }
        meta.hash = Some(staged.hash);
        self.save(id, meta)?;
        let key = meta.key();
        let hash = staged.hash;
        let rec = dm.commit_upload(&key, &meta.path, meta.mtime, staged)?;
        if rec.new_version {
            info!(
                "{key}: {} version {} ({} bytes, uploaded from the browser)",
                meta.path, rec.versions, meta.size
            );
        }
        meta.done(hash, rec.new_version, rec.versions);
        meta.tail = None;
        self.save(id, meta)?;
        if self.vault.is_sealed() {
            // Staged anew rather than moved: the part is not needed now.
            let _ = fs::remove_file(&part);
        }
        self.forget_lock(id);
        Ok(())
    }

    /// Encrypted: the complete upload (its part's segments, then the tail
    /// its state holds) as plaintext.
    fn sealed_content(&self, id: &str, meta: &Meta) -> Result<impl Read, UploadError> {
        let part = self
            .vault
            .open_ended_reader(File::open(self.part_path(id))?, Obj::UploadPart(id))?;
        let tail = tail_bytes(meta)?;
        Ok(io::BufReader::with_capacity(BUF, part).chain(io::Cursor::new(tail)))
    }

    /// Encrypted: stages the complete upload as a blob (its part is sealed
    /// under the upload's identity, so it is copied, not moved).
    fn stage_sealed(
        &self,
        dm: &DataManager,
        id: &str,
        meta: &Meta,
        hashed: Option<(ContentHash, u64)>,
    ) -> Result<crate::store::blobs::Staged, StoreError> {
        let as_store = |e: UploadError| match e {
            UploadError::Store(e) => e,
            e => StoreError::Io(io::Error::other(e.to_string())),
        };
        let (hash, size) = match hashed {
            Some(h) => h,
            None => ContentHash::of_reader(self.sealed_content(id, meta).map_err(as_store)?)?,
        };
        let mut content = self.sealed_content(id, meta).map_err(as_store)?;
        dm.stage_upload(&mut content, &hash, Some(size), u64::MAX)
    }

    /// Encrypted: appends up to `len` bytes of `body` after the `meta`'s
    /// acknowledged offset. Whole segments go to the part (after the ones
    /// it holds; anything a crash left beyond them is cut first) and are
    /// made durable; the rest joins the tail in `meta`, which the caller
    /// saves. Returns how many bytes arrived.
    fn write_sealed_piece(
        &self,
        id: &str,
        meta: &mut Meta,
        len: u64,
        body: &mut dyn Read,
        hasher: Option<&mut Hasher>,
    ) -> io::Result<u64> {
        let mut pending = tail_bytes(meta).map_err(io::Error::other)?;
        let whole = meta.offset - pending.len() as u64;
        // From the start, the header is written anew with the first segment.
        let stored = if whole == 0 {
            0
        } else {
            self.vault.stored_offset(whole)
        };
        let mut file = OpenOptions::new().write(true).open(self.part_path(id))?;
        file.set_len(stored)?;
        file.seek(SeekFrom::Start(stored))?;
        let mut out = self.vault.appender(
            io::BufWriter::with_capacity(BUF, &file),
            Obj::UploadPart(id),
            whole,
        );
        let mut got = 0u64;
        let result = read_piece(body, len, hasher, |data| {
            got += data.len() as u64;
            pending.extend_from_slice(data);
            let full = pending.len() - pending.len() % SEG;
            if full > 0 {
                out.write_all(&pending[..full])?;
                pending.drain(..full);
            }
            Ok(())
        });
        let finished = result.and_then(|_| out.finish_whole_segments().map(|_| ()));
        if let Err(e) = finished.and_then(|()| file.sync_data()) {
            let _ = file.set_len(stored);
            return Err(e);
        }
        meta.tail = (!pending.is_empty()).then(|| B64.encode(&pending));
        Ok(got)
    }

    fn forget_lock(&self, id: &str) {
        self.locks
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(id);
    }

    /// Cancels one of `user`'s unfinished uploads.
    pub fn cancel(&self, who: Uploader<'_>, id: &str) -> Result<(), UploadError> {
        let lock = self.lock_for(id);
        let _piece = lock.try_lock().map_err(|_| UploadError::Busy)?;
        self.owned(who, id)?;
        self.remove(id);
        Ok(())
    }

    fn remove(&self, id: &str) {
        let _ = fs::remove_file(self.part_path(id));
        let _ = fs::remove_file(self.meta_path(id));
        let _ = durable::sync_dir(&self.dir);
        self.forget_lock(id);
    }

    /// Removes abandoned and long-finished uploads, parts without a state
    /// and temp files; returns the uploads that remain.
    fn sweep(&self) -> Vec<(String, Meta)> {
        let now = unix_now();
        let (expired, kept): (Vec<_>, Vec<_>) = self.all().into_iter().partition(|(_, m)| {
            let age = now - m.updated;
            (m.result.is_some() && age > FINISHED_KEPT_SECS) || age > ABANDONED_AFTER_SECS
        });
        for (id, _) in &expired {
            self.remove(id);
        }
        let Ok(dir) = fs::read_dir(&self.dir) else {
            return kept;
        };
        for e in dir.filter_map(|e| e.ok()) {
            let name = e.file_name().to_string_lossy().into_owned();
            let orphan = name
                .strip_suffix(".part")
                .is_some_and(|id| !self.meta_path(id).exists());
            if orphan || name.ends_with(durable::TEMP_SUFFIX) {
                let _ = fs::remove_file(e.path());
            }
        }
        kept
    }

    /// At start: completes uploads whose last piece was stored but not yet
    /// recorded when the server stopped, and sweeps. Returns how many were
    /// completed.
    pub fn recover(&self, dm: &DataManager) -> usize {
        let mut done = 0;
        for (id, mut m) in self.sweep() {
            if m.result.is_some() || m.offset != m.size {
                continue;
            }
            let key = m.key();
            let recorded = m.hash.and_then(|h| {
                dm.latest(&key, &m.path)
                    .filter(|l| l.version.hash == h && !self.part_path(&id).exists())
            });
            if let Some(l) = recorded {
                // Recorded before the crash; only the answer was not saved.
                m.done(l.version.hash, true, l.versions);
                let _ = self.save(&id, &m);
                done += 1;
                continue;
            }
            match self.finish(dm, &id, &mut m) {
                Ok(()) => done += 1,
                Err(e) => warn!("an upload of {key}/{} could not be completed: {e}", m.path),
            }
        }
        done
    }
}

/// The tail an encrypted upload's state holds.
fn tail_bytes(meta: &Meta) -> Result<Vec<u8>, UploadError> {
    match &meta.tail {
        None => Ok(Vec::new()),
        Some(t) => B64
            .decode(t)
            .ok()
            .filter(|b| b.len() < SEG && b.len() as u64 <= meta.offset)
            .ok_or_else(|| UploadError::Bad("this upload's stored state is damaged".into())),
    }
}

fn state(id: &str, m: &Meta) -> UploadState {
    UploadState {
        id: id.to_string(),
        machine: m.machine.clone(),
        path: m.path.clone(),
        size: m.size,
        mtime: m.mtime,
        offset: m.offset,
        result: m.result.clone(),
    }
}

/// Writes up to `len` bytes of `body` at `offset` of `part` (cutting off
/// anything beyond `offset` first) and makes them durable. Returns how many
/// arrived: fewer than `len` if the body ended early.
fn write_piece(
    part: &Path,
    offset: u64,
    len: u64,
    body: &mut dyn Read,
    hasher: Option<&mut Hasher>,
) -> io::Result<u64> {
    let mut file = OpenOptions::new().write(true).open(part)?;
    file.set_len(offset)?;
    let result = append_from(&mut file, offset, len, body, hasher);
    if result.is_err() {
        // A full disk, say: give back the space the piece took.
        let _ = file.set_len(offset);
    }
    result
}

/// Reads up to `len` bytes of `body`, hashing them and handing them to
/// `sink` as they come; returns how many arrived (fewer if the body ended
/// or broke off: what arrived is kept).
fn read_piece(
    body: &mut dyn Read,
    len: u64,
    mut hasher: Option<&mut Hasher>,
    mut sink: impl FnMut(&[u8]) -> io::Result<()>,
) -> io::Result<u64> {
    let mut buf = vec![0u8; BUF];
    let mut got = 0u64;
    while got < len {
        let want = (len - got).min(BUF as u64) as usize;
        let n = match body.read(&mut buf[..want]) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            // A broken connection: keep what arrived.
            Err(_) => break,
        };
        if let Some(h) = hasher.as_deref_mut() {
            h.update(&buf[..n]);
        }
        sink(&buf[..n])?;
        got += n as u64;
    }
    Ok(got)
}

fn append_from(
    file: &mut File,
    offset: u64,
    len: u64,
    body: &mut dyn Read,
    hasher: Option<&mut Hasher>,
) -> io::Result<u64> {
    file.seek(SeekFrom::Start(offset))?;
    let got = read_piece(body, len, hasher, |data| file.write_all(data))?;
    file.sync_data()?;
    Ok(got)
}

#[cfg(test)]
mod tests {
    fn user(name: &str) -> Uploader<'_> {
        Uploader {
            user: name,
            machine: None,
        }
    }

    use super::*;

    fn setup() -> (tempfile::TempDir, &'static DataManager, Uploads) {
        let dir = tempfile::tempdir().unwrap();
        let dm: &'static DataManager = Box::leak(Box::new(DataManager::open(dir.path()).unwrap()));
        let up = Uploads::open(dir.path(), Vault::plain()).unwrap();
        (dir, dm, up)
    }

    /// Appends `body` as the piece (start, len, total) of ann's upload.
    fn put(
        up: &Uploads,
        dm: &DataManager,
        id: &str,
        (start, len, total): (u64, u64, u64),
        body: &mut &[u8],
    ) -> Result<UploadState, UploadError> {
        up.append(dm, user("ann"), id, Piece { start, len, total }, body)
    }

    #[test]
    fn an_upload_that_names_its_hash_is_refused_and_dropped_unless_it_matches() {
        let (_dir, dm, up) = setup();
        let data = b"the file as it was when its hash was taken".to_vec();
        for (claimed, ok) in [
            (ContentHash::of_bytes(b"another state"), false),
            (ContentHash::of_bytes(&data), true),
        ] {
            let req = UploadStart {
                machine: "web".into(),
                path: "c.bin".into(),
                size: data.len() as u64,
                mtime: Some(1_700_000_000),
                hash: Some(claimed),
            };
            let id = up.start(dm, "ann", &req, u64::MAX).unwrap().id;
            let n = data.len() as u64;
            let r = put(&up, dm, &id, (0, n, n), &mut &data[..]);
            if ok {
                assert!(r.unwrap().result.is_some());
            } else {
                assert!(matches!(
                    r,
                    Err(UploadError::Store(StoreError::HashMismatch { .. }))
                ));
                assert!(matches!(
                    up.state(user("ann"), &id),
                    Err(UploadError::NotFound)
                ));
                assert!(dm.latest("ann/web", "c.bin").is_none());
            }
        }
        assert!(dm.latest("ann/web", "c.bin").is_some());
    }

    fn start(up: &Uploads, dm: &DataManager, size: u64) -> String {
        let req = UploadStart {
            machine: "web".into(),
            path: "a/b.bin".into(),
            size,
            mtime: Some(1_700_000_000),
            hash: None,
        };
        up.start(dm, "ann", &req, u64::MAX).unwrap().id
    }

    #[test]
    fn pieces_in_order_make_a_version_and_a_cut_piece_keeps_its_prefix() {
        let (_d, dm, up) = setup();
        let data: Vec<u8> = (0..10_000u32).map(|i| (i * 7) as u8).collect();
        let id = start(&up, dm, data.len() as u64);
        let s = put(&up, dm, &id, (0, 4000, 10_000), &mut &data[..4000]).unwrap();
        assert_eq!((s.offset, s.result.is_none()), (4000, true));
        // Wrong start: told where to continue; nothing changes.
        match put(&up, dm, &id, (3000, 10, 10_000), &mut &data[3000..3010]) {
            Err(UploadError::Offset { offset: 4000 }) => {}
            other => panic!("{other:?}"),
        }
        // A piece that breaks off after 1000 of 5000 bytes keeps the 1000.
        match put(&up, dm, &id, (4000, 5000, 10_000), &mut &data[4000..5000]) {
            Err(UploadError::Incomplete { offset: 5000 }) => {}
            other => panic!("{other:?}"),
        }
        let s = put(&up, dm, &id, (5000, 5000, 10_000), &mut &data[5000..]).unwrap();
        let r = s.result.expect("finished");
        assert_eq!(r.hash, ContentHash::of_bytes(&data));
        assert_eq!(
            dm.latest("ann/web", "a/b.bin").unwrap().version.size,
            10_000
        );
        // Another user does not see it; a retried last piece is told the end.
        assert!(matches!(
            up.state(user("bob"), &id),
            Err(UploadError::NotFound)
        ));
        assert!(matches!(
            put(&up, dm, &id, (5000, 5000, 10_000), &mut &data[5000..]),
            Err(UploadError::Offset { offset: 10_000 })
        ));
    }

    #[test]
    fn bytes_past_the_acknowledged_offset_are_cut_and_a_complete_upload_finishes_at_start() {
        let (d, dm, up) = setup();
        let data = vec![5u8; 3000];
        let id = start(&up, dm, 3000);
        put(&up, dm, &id, (0, 1000, 3000), &mut &data[..1000]).unwrap();
        // A crash mid-piece left unacknowledged garbage behind the offset.
        let mut f = OpenOptions::new()
            .append(true)
            .open(up.part_path(&id))
            .unwrap();
        f.write_all(&[9u8; 700]).unwrap();
        put(&up, dm, &id, (1000, 1000, 3000), &mut &data[1000..2000]).unwrap();
        assert_eq!(fs::metadata(up.part_path(&id)).unwrap().len(), 2000);
        // The last piece stored, then a crash before it was recorded.
        let mut m = up.load(&id).unwrap();
        fs::OpenOptions::new()
            .append(true)
            .open(up.part_path(&id))
            .unwrap()
            .write_all(&data[2000..])
            .unwrap();
        m.offset = 3000;
        up.save(&id, &m).unwrap();
        let again = Uploads::open(d.path(), Vault::plain()).unwrap();
        assert_eq!(again.recover(dm), 1);
        let l = dm.latest("ann/web", "a/b.bin").unwrap();
        assert_eq!(l.version.hash, ContentHash::of_bytes(&data));
        assert!(again.state(user("ann"), &id).unwrap().result.is_some());
    }

    #[test]
    fn an_empty_file_is_a_version_at_once_and_limits_hold() {
        let (_d, dm, up) = setup();
        let id = start(&up, dm, 0);
        assert!(up.state(user("ann"), &id).unwrap().result.is_some());
        let big = UploadStart {
            machine: "web".into(),
            path: "x".into(),
            size: 11,
            mtime: None,
            hash: None,
        };
        assert!(matches!(
            up.start(dm, "ann", &big, 10),
            Err(UploadError::TooLarge { limit: 10 })
        ));
        let bad = UploadStart {
            path: "../x".into(),
            ..big
        };
        assert!(matches!(
            up.start(dm, "ann", &bad, 100),
            Err(UploadError::Path(_))
        ));
        for _ in 0..MAX_OPEN_PER_USER {
            start(&up, dm, 5);
        }
        let one_more = UploadStart {
            machine: "web".into(),
            path: "y".into(),
            size: 5,
            mtime: None,
            hash: None,
        };
        assert!(matches!(
            up.start(dm, "ann", &one_more, 100),
            Err(UploadError::TooMany)
        ));
    }
}
