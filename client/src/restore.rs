//! `nimbus-client restore`: brings files back as they were at a time, from
//! this machine's backups or another machine of the same user.
//!
//! Each file is downloaded (the exact version, by number) into a part file
//! beside its target, named after its content hash, so an interrupted
//! restore resumes it with a Range request. The whole content is verified
//! against its BLAKE3 hash before the part file is renamed over the target
//! and the backed-up mtime set. A local file is replaced only with
//! `--overwrite`; one that already holds the right content is left alone.

use crate::api::{read_json, Api, ApiError};
use crate::ClientError;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use log::{info, warn};
use nimbus_common::durable;
use nimbus_common::hash::{ContentHash, Hasher};
use nimbus_common::localpath::{self, Style};
use nimbus_common::paths::is_within;
use nimbus_common::wire::FileEntry;
use nimbus_common::wire::FILES_ROUTE;
use std::fs::{self, File, OpenOptions};
use std::io::{self, IsTerminal, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, UNIX_EPOCH};

/// Suffix of part files (a download in progress).
pub const PART_SUFFIX: &str = ".nimbus-part";

pub struct Restore<'a> {
    pub api: &'a Api,
    /// The machine whose files are restored.
    pub from: String,
    /// Unix seconds; `None` = now.
    pub at: Option<i64>,
    pub to: PathBuf,
    /// Files and folders to restore (relative paths); empty = everything.
    pub paths: Vec<String>,
    pub overwrite: bool,
    /// Apply Windows' naming rules (always on Windows).
    pub windows_names: bool,
    pub rename_invalid: bool,
    pub stop: &'a AtomicBool,
}

#[derive(Debug, Default)]
pub struct Summary {
    pub restored: usize,
    pub bytes: u64,
    pub already: usize,
    pub skipped: usize,
    pub failed: usize,
}

impl Summary {
    pub fn line(&self) -> String {
        format!(
            "restore: restored {} ({} bytes), already correct {}, skipped {}, failed {}",
            self.restored, self.bytes, self.already, self.skipped, self.failed
        )
    }
}

enum Outcome {
    Restored(u64),
    AlreadyCorrect,
    Skipped(String),
}

impl Restore<'_> {
    /// The files to restore, as the server lists them at the time asked.
    pub fn plan(&self) -> Result<Vec<FileEntry>, crate::ClientError> {
        let query = match self.at {
            Some(t) => format!("{FILES_ROUTE}?at={t}"),
            None => FILES_ROUTE.to_string(),
        };
        let resp = self.api.get(&query)?;
        let all: Vec<FileEntry> = read_json(resp).map_err(|e| {
            crate::ClientError::Server(format!("the server's file list is unreadable: {e}"))
        })?;
        let mut wanted: Vec<FileEntry> = all
            .into_iter()
            .filter(|f| f.client == self.from && !f.deleted)
            .filter(|f| self.paths.is_empty() || self.paths.iter().any(|p| is_within(&f.path, p)))
            .collect();
        wanted.sort_by(|a, b| a.path.cmp(&b.path));
        Ok(wanted)
    }

    pub fn run(&self, files: &[FileEntry]) -> Summary {
        let mut sum = Summary::default();
        let total: u64 = files.iter().map(|f| f.size).sum();
        let bar = progress_bar(files.len(), total);
        // Names that differ only in case are one file on Windows.
        let mut taken: std::collections::HashMap<String, &str> = Default::default();
        for f in files {
            if self.stop.load(Ordering::SeqCst) {
                break;
            }
            let outcome = match self.target(&f.path) {
                Err(why) => Ok(Outcome::Skipped(why)),
                Ok(target) => {
                    let key = localpath::same_file_key(self.style(), &target.to_string_lossy());
                    match taken.insert(key, &f.path) {
                        Some(other) => Ok(Outcome::Skipped(format!(
                            "its name differs only in case from {other}, and this system cannot hold both"
                        ))),
                        None => self.restore_one(f, &target, &bar),
                    }
                }
            };
            match outcome {
                Ok(Outcome::Restored(n)) => {
                    sum.restored += 1;
                    sum.bytes += n;
                }
                Ok(Outcome::AlreadyCorrect) => {
                    sum.already += 1;
                    bar.inc(f.size);
                }
                Ok(Outcome::Skipped(why)) => {
                    warn!("skipped {}: {why}", f.path);
                    sum.skipped += 1;
                    bar.inc(f.size);
                }
                Err(why) => {
                    warn!("failed {}: {why}", f.path);
                    sum.failed += 1;
                }
            }
        }
        bar.finish_and_clear();
        sum
    }

    /// Whose rules say which names are one file.
    fn style(&self) -> Style {
        if self.windows_names {
            Style::Windows
        } else {
            Style::HOST
        }
    }

    /// Where `rel` goes; the server is trusted with contents, not with
    /// where they go. A name this system cannot hold is an error.
    fn target(&self, rel: &str) -> Result<PathBuf, String> {
        let root = self
            .to
            .to_str()
            .ok_or("the target folder's name is not valid UTF-8")?;
        localpath::to_local(
            Style::HOST,
            self.windows_names,
            root,
            rel,
            self.rename_invalid,
        )
        .map(PathBuf::from)
    }

    fn restore_one(
        &self,
        f: &FileEntry,
        target: &Path,
        bar: &ProgressBar,
    ) -> Result<Outcome, ClientError> {
        match fs::symlink_metadata(target) {
            Ok(m) if m.is_file() => {
                if m.len() == f.size && hash_file(target).ok() == Some(f.hash) {
                    set_mtime(target, f.mtime)
                        .map_err(|e| local(format!("cannot set its time: {e}")))?;
                    return Ok(Outcome::AlreadyCorrect);
                }
                if !self.overwrite {
                    return Ok(Outcome::Skipped(
                        "a different local file is in the way (--overwrite replaces it)".into(),
                    ));
                }
            }
            Ok(_) => {
                return Ok(Outcome::Skipped(
                    "something that is not a file is in the way".into(),
                ))
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(local(format!("cannot look at {}: {e}", target.display()))),
        }
        let parent = target.parent().unwrap_or(&self.to).to_path_buf();
        fs::create_dir_all(&parent)
            .map_err(|e| local(format!("cannot create {}: {e}", parent.display())))?;
        let name = target
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let part = parent.join(format!(".{name}.{}{PART_SUFFIX}", &f.hash.to_hex()[..16]));
        let got = self.download(f, &part, bar)?;
        durable::rename_durable(&part, target)
            .map_err(|e| local(format!("cannot move it into place: {e}")))?;
        set_mtime(target, f.mtime).map_err(|e| local(format!("cannot set its time: {e}")))?;
        Ok(Outcome::Restored(got))
    }

    /// Downloads `f` into `part`, resuming what a previous run left there,
    /// and verifies the whole content. Returns the bytes fetched now.
    fn download(&self, f: &FileEntry, part: &Path, bar: &ProgressBar) -> Result<u64, ClientError> {
        let mut file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .read(true)
            .write(true)
            .open(part)
            .map_err(|e| local(format!("cannot write {}: {e}", part.display())))?;
        let mut have = file.metadata().map(|m| m.len()).unwrap_or(0);
        if have > f.size {
            file.set_len(0).map_err(|e| local(e.to_string()))?;
            have = 0;
        }
        // The part file's name carries the content hash: its bytes are a
        // prefix of exactly this content, so the rest is asked for with
        // If-Range, and the whole is verified below anyway.
        let mut hasher = Hasher::new();
        if have > 0 {
            let mut prefix = File::open(part)
                .map_err(|e| local(e.to_string()))?
                .take(have);
            let mut buf = vec![0u8; 256 * 1024];
            loop {
                let n = prefix.read(&mut buf).map_err(|e| local(e.to_string()))?;
                if n == 0 {
                    break;
                }
                hasher.update(&buf[..n]);
            }
            bar.inc(have);
        }
        let mut fetched = 0;
        if have < f.size {
            let target = nimbus_common::wire::download_route(&f.client, &f.path, Some(f.version));
            let etag = format!("\"{}\"", f.hash);
            let range = format!("bytes={have}-");
            let headers: Vec<(&str, &str)> = if have > 0 {
                vec![("Range", &range), ("If-Range", &etag)]
            } else {
                Vec::new()
            };
            let resp = self
                .api
                .get_with(&target, &headers)
                .map_err(|e| ClientError::Server(describe(&e)))?;
            if resp.status() == 200 && have > 0 {
                // The server sends everything: start over.
                file.set_len(0).map_err(|e| local(e.to_string()))?;
                hasher = Hasher::new();
                have = 0;
            }
            use std::io::Seek;
            file.seek(io::SeekFrom::Start(have))
                .map_err(|e| local(e.to_string()))?;
            let mut body = resp.into_reader().take(f.size - have);
            let mut buf = vec![0u8; 256 * 1024];
            loop {
                if self.stop.load(Ordering::SeqCst) {
                    let _ = file.sync_data();
                    return Err(ClientError::Interrupted(
                        "stopped; run the same command again to resume".into(),
                    ));
                }
                let n = match body.read(&mut buf) {
                    Ok(n) => n,
                    Err(e) => {
                        let _ = file.sync_data();
                        return Err(ClientError::Interrupted(format!(
                            "the download broke off ({e}); run again to resume"
                        )));
                    }
                };
                if n == 0 {
                    break;
                }
                file.write_all(&buf[..n])
                    .map_err(|e| local(format!("cannot write {}: {e}", part.display())))?;
                hasher.update(&buf[..n]);
                fetched += n as u64;
                bar.inc(n as u64);
            }
        }
        file.sync_all()
            .map_err(|e| local(format!("cannot write {}: {e}", part.display())))?;
        let len = file.metadata().map(|m| m.len()).unwrap_or(0);
        if len != f.size {
            return Err(ClientError::Interrupted(format!(
                "got {len} of {} bytes; run again to resume",
                f.size
            )));
        }
        let (actual, _) = hasher.finish();
        if actual != f.hash {
            let _ = fs::remove_file(part);
            return Err(ClientError::Server(format!(
                "content does not match its hash (got {actual}, expected {}); nothing was replaced",
                f.hash
            )));
        }
        Ok(fetched)
    }
}

/// A path given on the command line, as the protocol writes it.
pub fn normalize_wanted(p: &str) -> String {
    p.replace('\\', "/")
        .trim_start_matches("./")
        .trim_matches('/')
        .to_string()
}

fn hash_file(path: &Path) -> io::Result<ContentHash> {
    ContentHash::of_reader(File::open(path)?).map(|(h, _)| h)
}

fn set_mtime(path: &Path, mtime: i64) -> io::Result<()> {
    let t = if mtime >= 0 {
        UNIX_EPOCH + Duration::from_secs(mtime as u64)
    } else {
        UNIX_EPOCH - Duration::from_secs(mtime.unsigned_abs())
    };
    OpenOptions::new().write(true).open(path)?.set_modified(t)
}

/// A local file or folder that cannot be read or written.
fn local(why: String) -> ClientError {
    ClientError::Local(why)
}

fn describe(e: &ApiError) -> String {
    match e {
        ApiError::Refused {
            status: 404,
            message,
            ..
        } => format!("not on the server: {message}"),
        other => other.to_string(),
    }
}

fn progress_bar(files: usize, bytes: u64) -> ProgressBar {
    if files == 0 || !io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::with_draw_target(Some(bytes), ProgressDrawTarget::stderr());
    bar.set_style(
        ProgressStyle::with_template(
            "restoring {bar:30} {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    bar
}

/// The folder a backup of `client` to `server` watched, when exactly one
/// state file says so: `state`, or those in the default place.
pub fn watched_folder(server: &str, client: &str, state: Option<&Path>) -> Option<PathBuf> {
    let candidates: Vec<PathBuf> = match state {
        Some(s) => vec![s.to_path_buf()],
        None => {
            let dir = crate::state::default_path(server, "", client)
                .parent()?
                .to_path_buf();
            fs::read_dir(dir)
                .ok()?
                .flatten()
                .map(|e| e.path())
                .collect()
        }
    };
    let mut found = Vec::new();
    for path in candidates {
        let Ok(text) = fs::read(&path) else {
            continue;
        };
        if let Ok(v) = serde_json::from_slice::<serde_json::Value>(&text) {
            if v["server"] == server && v["client"] == client {
                if let Some(d) = v["dir"].as_str() {
                    found.push(PathBuf::from(d));
                }
            }
        }
    }
    found.dedup();
    (found.len() == 1).then(|| found.remove(0))
}

pub fn log_plan(files: &[FileEntry], from: &str, to: &Path) {
    let bytes: u64 = files.iter().map(|f| f.size).sum();
    info!(
        "restoring {} file(s), {bytes} bytes, of {from:?} into {}",
        files.len(),
        to.display()
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wanted_paths() {
        assert!(is_within("docs/a.txt", "docs"));
        assert!(is_within("docs", "docs"));
        assert!(!is_within("docs2/a", "docs"));
        assert!(is_within("x", ""));
        assert_eq!(normalize_wanted("./docs/"), "docs");
        assert_eq!(normalize_wanted("docs\\sub"), "docs/sub");
    }
}
