//! Blob files in a directory on local disk (`DATA/blobs`), the default.
//!
//! A key `ab/<name>` is the file `ROOT/ab/<name>`. A put is a rename of the
//! staging file (which lies on the same file system, in `DATA/tmp`), made
//! durable by syncing the directory; a batch is synced with one `syncfs`
//! on Linux.

use super::{Backend, Durability, Object};
use nimbus_common::durable;
use std::collections::BTreeSet;
use std::fs::{self, File};
use std::io::{self, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

#[derive(Debug)]
pub struct LocalBackend {
    root: PathBuf,
}

impl LocalBackend {
    pub fn open(root: PathBuf) -> io::Result<LocalBackend> {
        fs::create_dir_all(&root)?;
        Ok(LocalBackend { root })
    }

    fn path(&self, key: &str) -> PathBuf {
        self.root.join(key)
    }

    /// Creates the shard directory of `target` if needed; true if it did.
    fn ensure_dir(&self, target: &Path) -> io::Result<bool> {
        let dir = target.parent().expect("keys have a shard directory");
        if dir.exists() {
            return Ok(false);
        }
        fs::create_dir_all(dir)?;
        Ok(true)
    }
}

/// A local blob file, its length read once at open.
struct LocalObject {
    file: File,
    len: u64,
}

impl Read for LocalObject {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.file.read(buf)
    }
}

impl Seek for LocalObject {
    fn seek(&mut self, to: SeekFrom) -> io::Result<u64> {
        self.file.seek(to)
    }
}

impl Object for LocalObject {
    fn size(&self) -> u64 {
        self.len
    }
}

/// Opens the local file `path` as an [`Object`].
pub(super) fn open_file(path: &Path) -> io::Result<Box<dyn Object>> {
    let file = File::open(path)?;
    let len = file.metadata()?.len();
    Ok(Box::new(LocalObject { file, len }))
}

impl Backend for LocalBackend {
    fn open(&self, key: &str) -> io::Result<Box<dyn Object>> {
        open_file(&self.path(key))
    }

    fn read_all(&self, key: &str) -> io::Result<Vec<u8>> {
        fs::read(self.path(key))
    }

    fn len(&self, key: &str) -> io::Result<u64> {
        Ok(fs::metadata(self.path(key))?.len())
    }

    fn put(&self, from: &Path, key: &str, durability: Durability) -> io::Result<()> {
        let target = self.path(key);
        if self.ensure_dir(&target)? && durability == Durability::Now {
            durable::sync_dir(&self.root)?;
        }
        match durability {
            Durability::Now => durable::rename_durable(from, &target),
            // Without syncfs there is no cheap later sync of all of them.
            #[cfg(not(target_os = "linux"))]
            Durability::Deferred => durable::rename_durable(from, &target),
            #[cfg(target_os = "linux")]
            Durability::Deferred => fs::rename(from, &target),
        }
    }

    /// Syncs every file before renaming any (one `syncfs` on Linux), and
    /// the directories after (another), instead of two fsyncs per file.
    fn put_all(&self, items: &mut dyn Iterator<Item = (PathBuf, String)>) -> io::Result<()> {
        let items: Vec<(PathBuf, String)> = items.collect();
        let Some((first, _)) = items.first() else {
            return Ok(());
        };
        let tmp = first.parent().unwrap_or(&self.root).to_path_buf();
        sync_all_of(&tmp, items.iter().map(|(p, _)| p.as_path()))?;
        let mut dirs = BTreeSet::new();
        for (from, key) in &items {
            let target = self.path(key);
            if self.ensure_dir(&target)? {
                dirs.insert(self.root.clone());
            }
            fs::rename(from, &target)?;
            dirs.insert(target.parent().expect("in a shard").to_path_buf());
        }
        sync_all_of(&self.root, dirs.iter().map(PathBuf::as_path))
    }

    fn sync(&self) -> io::Result<()> {
        #[cfg(target_os = "linux")]
        return sync_all_of(&self.root, std::iter::empty());
        // Elsewhere deferred puts were synced as they were made.
        #[cfg(not(target_os = "linux"))]
        Ok(())
    }

    fn remove(&self, key: &str) -> io::Result<bool> {
        let path = self.path(key);
        match fs::remove_file(&path) {
            Ok(()) => {
                durable::sync_dir(path.parent().expect("in a shard"))?;
                Ok(true)
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(e),
        }
    }

    fn list(&self, visit: &mut dyn FnMut(&str)) -> io::Result<()> {
        for shard in fs::read_dir(&self.root)? {
            let shard = shard?;
            if !shard.file_type()?.is_dir() {
                continue;
            }
            let dir = shard.file_name();
            let dir = dir.to_string_lossy();
            for entry in fs::read_dir(shard.path())? {
                let name = entry?.file_name();
                visit(&format!("{dir}/{}", name.to_string_lossy()));
            }
        }
        Ok(())
    }

    fn describe(&self) -> String {
        format!("local directory {}", self.root.display())
    }

    fn local_root(&self) -> Option<&Path> {
        Some(&self.root)
    }
}

/// Makes `paths` (files or directories on the file system of `dir`)
/// durable: on Linux with one `syncfs` of that file system, elsewhere by
/// syncing each.
pub(super) fn sync_all_of<'a>(dir: &Path, paths: impl Iterator<Item = &'a Path>) -> io::Result<()> {
    #[cfg(target_os = "linux")]
    {
        use std::os::fd::AsRawFd;
        let _ = paths;
        let d = File::open(dir)?;
        // SAFETY: `d` is an open descriptor for the duration of the call.
        if unsafe { libc::syncfs(d.as_raw_fd()) } != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = dir;
        for p in paths {
            if p.is_dir() {
                durable::sync_dir(p)?;
            } else {
                File::open(p)?.sync_all()?;
            }
        }
        Ok(())
    }
}
