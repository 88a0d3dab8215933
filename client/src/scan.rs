//! Walking the backed-up folder: every regular file below it, as a
//! `/`-separated relative path with its size and mtime. Symbolic links are
//! not followed; names that are not UTF-8 or that the protocol cannot carry
//! are reported and skipped.

use nimbus_common::localpath::{self, Style};
use std::path::{Path, PathBuf};
use std::time::UNIX_EPOCH;
use walkdir::WalkDir;

#[derive(Debug, Clone)]
pub struct Found {
    pub rel: String,
    pub path: PathBuf,
    pub size: u64,
    pub mtime_ns: i64,
}

/// Something the walk could not back up, with a message for the user.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Skipped {
    /// Reported once per run: it will not change by retrying.
    Permanent { path: String, why: String },
    /// An error worth retrying next pass (permissions, I/O).
    Error { path: String, why: String },
}

pub struct Scan {
    pub files: Vec<Found>,
    pub skipped: Vec<Skipped>,
}

pub fn scan(root: &Path) -> Scan {
    let mut files = Vec::new();
    let mut skipped = Vec::new();
    for entry in WalkDir::new(root).follow_links(false).sort_by_file_name() {
        let entry = match entry {
            Ok(e) => e,
            Err(e) => {
                let path = e
                    .path()
                    .map(|p| p.display().to_string())
                    .unwrap_or_else(|| root.display().to_string());
                let why = e
                    .io_error()
                    .map(|io| io.to_string())
                    .unwrap_or_else(|| e.to_string());
                skipped.push(Skipped::Error { path, why });
                continue;
            }
        };
        let ft = entry.file_type();
        if ft.is_dir() {
            continue;
        }
        let shown = entry.path().display().to_string();
        if ft.is_symlink() {
            skipped.push(Skipped::Permanent {
                path: shown,
                why: "symbolic link, not followed".into(),
            });
            continue;
        }
        if !ft.is_file() {
            continue;
        }
        let rel = match relative(root, entry.path()) {
            Ok(r) => r,
            Err(why) => {
                skipped.push(Skipped::Permanent { path: shown, why });
                continue;
            }
        };
        let meta = match entry.metadata() {
            Ok(m) => m,
            Err(e) => {
                skipped.push(Skipped::Error {
                    path: shown,
                    why: e.to_string(),
                });
                continue;
            }
        };
        files.push(Found {
            rel,
            path: entry.path().to_path_buf(),
            size: meta.len(),
            mtime_ns: mtime_ns(&meta),
        });
    }
    Scan { files, skipped }
}

/// Modification time in nanoseconds since the epoch (negative before 1970).
pub fn mtime_ns(meta: &std::fs::Metadata) -> i64 {
    match meta.modified() {
        Ok(t) => match t.duration_since(UNIX_EPOCH) {
            Ok(d) => d.as_nanos().min(i64::MAX as u128) as i64,
            Err(e) => -(e.duration().as_nanos().min(i64::MAX as u128) as i64),
        },
        Err(_) => 0,
    }
}

/// The protocol's relative path of `path` below `root`, by this
/// platform's rules (`nimbus_common::localpath`).
pub fn relative(root: &Path, path: &Path) -> Result<String, String> {
    let utf8 = |p: &Path| {
        p.to_str().map(str::to_string).ok_or_else(|| {
            "name is not valid UTF-8 (or UTF-16); rename it to back it up".to_string()
        })
    };
    localpath::to_protocol(Style::HOST, &utf8(root)?, &utf8(path)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn walks_files_and_reports_links() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::create_dir_all(root.join("a/b")).unwrap();
        std::fs::write(root.join("a/b/c.txt"), b"hi").unwrap();
        std::fs::write(root.join("top"), b"").unwrap();
        #[cfg(unix)]
        std::os::unix::fs::symlink(root.join("top"), root.join("link")).unwrap();
        let s = scan(root);
        let rels: Vec<_> = s.files.iter().map(|f| f.rel.as_str()).collect();
        assert_eq!(rels, ["a/b/c.txt", "top"]);
        #[cfg(unix)]
        assert!(
            matches!(&s.skipped[..], [Skipped::Permanent { why, .. }] if why.contains("symbolic"))
        );
    }

    #[cfg(unix)]
    #[test]
    fn non_utf8_and_backslash_names_are_skipped() {
        use std::os::unix::ffi::OsStrExt;
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::write(root.join(std::ffi::OsStr::from_bytes(b"bad\xff")), b"x").unwrap();
        std::fs::write(root.join("back\\slash"), b"x").unwrap();
        let s = scan(root);
        assert!(s.files.is_empty());
        assert_eq!(s.skipped.len(), 2);
    }
}
