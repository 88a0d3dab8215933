//! Crash-safe files. A file written with [`write_atomic`] is either the old
//! version or the complete new one after a crash at any instant: the bytes go
//! to a temp file beside the target, are fsync'd, renamed over the target,
//! and the directory is fsync'd so the rename itself is durable.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// Suffix of every temp file this module creates; start-up code may remove
/// leftovers with this suffix.
pub const TEMP_SUFFIX: &str = ".nimbus-tmp";

/// Writes a file atomically: `fill` writes the content into a temp file in the
/// same directory, which then replaces `target`.
pub fn write_atomic<F>(target: &Path, fill: F) -> io::Result<()>
where
    F: FnOnce(&mut io::BufWriter<&File>) -> io::Result<()>,
{
    write_atomic_inner(target, false, fill)
}

/// Like [`write_atomic`], for secrets: on Unix the file is readable and
/// writable by its owner only (0600) from the moment it is created.
pub fn write_atomic_private<F>(target: &Path, fill: F) -> io::Result<()>
where
    F: FnOnce(&mut io::BufWriter<&File>) -> io::Result<()>,
{
    write_atomic_inner(target, true, fill)
}

fn write_atomic_inner<F>(target: &Path, private: bool, fill: F) -> io::Result<()>
where
    F: FnOnce(&mut io::BufWriter<&File>) -> io::Result<()>,
{
    let tmp = temp_path_for(target);
    let result = (|| {
        let mut options = OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        if private {
            std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        }
        #[cfg(not(unix))]
        let _ = private;
        let file = options.open(&tmp)?;
        {
            let mut w = io::BufWriter::with_capacity(256 * 1024, &file);
            fill(&mut w)?;
            w.flush()?;
        }
        file.sync_all()?;
        drop(file);
        rename_durable(&tmp, target)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

/// A fresh temp file name beside `target`, unique within this process.
pub fn temp_path_for(target: &Path) -> PathBuf {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let name = target
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    target.with_file_name(format!(".{name}.{}.{n}{TEMP_SUFFIX}", std::process::id()))
}

/// Renames `from` to `to` and makes the new name durable by syncing the
/// directory of `to`. The old name's directory is not synced: should the old
/// name survive a crash, it is a temp file that start-up removes.
pub fn rename_durable(from: &Path, to: &Path) -> io::Result<()> {
    fs::rename(from, to)?;
    sync_dir(parent_or_dot(to))
}

fn parent_or_dot(p: &Path) -> &Path {
    match p.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    }
}

/// Fsyncs a directory so that entries created, renamed or removed in it
/// survive a crash. A no-op where directories cannot be opened (Windows).
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    #[cfg(unix)]
    {
        File::open(dir)?.sync_all()
    }
    #[cfg(not(unix))]
    {
        let _ = dir;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_content_and_leaves_no_temp() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("state.json");
        write_atomic(&target, |w| w.write_all(b"one")).unwrap();
        write_atomic(&target, |w| w.write_all(b"two")).unwrap();
        assert_eq!(fs::read(&target).unwrap(), b"two");
        let names: Vec<_> = fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(names.len(), 1);
    }

    #[cfg(unix)]
    #[test]
    fn private_files_are_owner_only() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("secret.json");
        write_atomic_private(&target, |w| w.write_all(b"token")).unwrap();
        let mode = fs::metadata(&target).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    #[test]
    fn failed_fill_keeps_old_content() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("state.json");
        write_atomic(&target, |w| w.write_all(b"old")).unwrap();
        let err = write_atomic(&target, |w| {
            w.write_all(b"partial")?;
            Err(io::Error::other("disk on fire"))
        });
        assert!(err.is_err());
        assert_eq!(fs::read(&target).unwrap(), b"old");
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
    }
}
