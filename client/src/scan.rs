//! Walking the backed-up folder: every regular file below it, as a
//! `/`-separated relative path with its size and mtime. Symbolic links are
//! not followed; names that are not UTF-8 or that the protocol cannot carry
//! are reported and skipped. The policy's exclusions and `.nimbusignore`
//! files leave files and whole folders out.

use ignore::gitignore::{Gitignore, GitignoreBuilder};
use nimbus_common::localpath::{self, Style};
use std::path::{Path, PathBuf};
use std::time::UNIX_EPOCH;

/// Per-folder exclusion files the walk honours (gitignore syntax).
pub const IGNORE_FILE: &str = ".nimbusignore";

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
    /// A folder that cannot be backed up as set (its name is taken): an
    /// error every pass until the policy changes; says nothing about
    /// which files were deleted.
    Folder { path: String, why: String },
}

pub struct Scan {
    pub files: Vec<Found>,
    pub skipped: Vec<Skipped>,
}

/// What the walk leaves out: the policy's (and flags') exclusion patterns,
/// in gitignore syntax relative to the folder, and files above a size.
/// `.nimbusignore` files inside the folder are honoured as well.
#[derive(Debug, Clone)]
pub struct Filter {
    excludes: Gitignore,
    max_file_size: Option<u64>,
    /// The patterns, to tell whether two filters differ.
    patterns: Vec<String>,
}

impl Filter {
    pub fn none() -> Filter {
        Filter {
            excludes: Gitignore::empty(),
            max_file_size: None,
            patterns: Vec::new(),
        }
    }

    /// A pattern that is not valid gitignore syntax is reported and left out.
    pub fn new(root: &Path, patterns: &[String], max_file_size: Option<u64>) -> Filter {
        let mut b = GitignoreBuilder::new(root);
        for p in patterns {
            if let Err(e) = b.add_line(None, p) {
                log::warn!("exclusion {p:?} left out: {e}");
            }
        }
        let excludes = b.build().unwrap_or_else(|e| {
            log::warn!("exclusions left out: {e}");
            Gitignore::empty()
        });
        Filter {
            excludes,
            max_file_size,
            patterns: patterns.to_vec(),
        }
    }

    pub fn same_as(&self, other: &Filter) -> bool {
        self.patterns == other.patterns && self.max_file_size == other.max_file_size
    }
}

pub fn scan(root: &Path, filter: &Filter) -> Scan {
    let mut files = Vec::new();
    let mut skipped = Vec::new();
    let excludes = filter.excludes.clone();
    let walk = ignore::WalkBuilder::new(root)
        .standard_filters(false)
        .follow_links(false)
        .add_custom_ignore_filename(IGNORE_FILE)
        .sort_by_file_name(|a, b| a.cmp(b))
        .filter_entry(move |e| {
            e.depth() == 0
                || !excludes
                    .matched(e.path(), e.file_type().is_some_and(|t| t.is_dir()))
                    .is_ignore()
        })
        .build();
    for entry in walk {
        let entry = match entry {
            Ok(e) => e,
            Err(e) => {
                let path = error_path(&e)
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
        let Some(ft) = entry.file_type() else {
            continue;
        };
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
                    why: e
                        .io_error()
                        .map(|io| io.to_string())
                        .unwrap_or_else(|| e.to_string()),
                });
                continue;
            }
        };
        if let Some(max) = filter.max_file_size.filter(|&m| meta.len() > m) {
            skipped.push(Skipped::Permanent {
                path: shown,
                why: format!(
                    "{} bytes, larger than the policy's maximum file size ({max} bytes)",
                    meta.len()
                ),
            });
            continue;
        }
        files.push(Found {
            rel,
            path: entry.path().to_path_buf(),
            size: meta.len(),
            mtime_ns: mtime_ns(&meta),
        });
    }
    Scan { files, skipped }
}

/// A folder the client backs up: the client's own `--dir` (named "",
/// its files at the top of the machine's tree) or one the policy or a
/// `--folder` adds, its files under `name/`.
#[derive(Debug, Clone)]
pub struct Source {
    pub name: String,
    pub path: PathBuf,
    pub filter: Filter,
}

impl Source {
    pub fn same_as(&self, o: &Source) -> bool {
        self.name == o.name && self.path == o.path && self.filter.same_as(&o.filter)
    }

    /// The protocol path of `rel` (relative to this folder).
    pub fn key(&self, rel: &str) -> String {
        match self.name.as_str() {
            "" => rel.to_string(),
            n if rel.is_empty() => n.to_string(),
            n => format!("{n}/{rel}"),
        }
    }
}

/// Walks every source (the first is the `--dir`). A named folder whose
/// name is taken by an entry at the top of the `--dir` is skipped with a
/// problem, as its files would mix with that entry's. Returns the walk and
/// the names of the folders walked.
pub fn scan_sources(sources: &[Source]) -> (Scan, Vec<String>) {
    let mut all = Scan {
        files: Vec::new(),
        skipped: Vec::new(),
    };
    let mut walked = Vec::new();
    let root = sources.first().map(|s| s.path.clone());
    for src in sources {
        if !src.name.is_empty() {
            if let Some(root) = &root {
                if std::fs::symlink_metadata(root.join(&src.name)).is_ok() {
                    all.skipped.push(Skipped::Folder {
                        path: src.path.display().to_string(),
                        why: format!(
                            "not backed up: its name {:?} is taken by {} (give it another name in the policy)",
                            src.name,
                            root.join(&src.name).display()
                        ),
                    });
                    continue;
                }
            }
            walked.push(src.name.clone());
        }
        let s = scan(&src.path, &src.filter);
        all.files.extend(s.files.into_iter().map(|mut f| {
            f.rel = src.key(&f.rel);
            f
        }));
        all.skipped.extend(s.skipped);
    }
    (all, walked)
}

/// The protocol path of a local `path` inside one of `sources` (the
/// named folders first, so a folder inside the `--dir` is not taken for
/// part of it).
pub fn key_of(sources: &[Source], path: &Path) -> String {
    let mut ordered: Vec<&Source> = sources.iter().filter(|s| !s.name.is_empty()).collect();
    ordered.extend(sources.iter().filter(|s| s.name.is_empty()));
    for s in ordered {
        if path.starts_with(&s.path) {
            return s.key(&relative(&s.path, path).unwrap_or_default());
        }
    }
    String::new()
}

/// The source a protocol path belongs to, and its path inside it.
pub fn source_of<'a>(sources: &'a [Source], key: &'a str) -> Option<(&'a Source, &'a str)> {
    let (first, rest) = key.split_once('/').unwrap_or((key, ""));
    sources
        .iter()
        .find(|s| !s.name.is_empty() && s.name == first)
        .map(|s| (s, rest))
        .or_else(|| sources.iter().find(|s| s.name.is_empty()).map(|s| (s, key)))
}

/// The path an error of the walk is about, if it names one.
fn error_path(e: &ignore::Error) -> Option<&Path> {
    match e {
        ignore::Error::WithPath { path, .. } => Some(path),
        ignore::Error::WithDepth { err, .. } | ignore::Error::WithLineNumber { err, .. } => {
            error_path(err)
        }
        ignore::Error::Partial(errs) => errs.iter().find_map(error_path),
        _ => None,
    }
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
        let s = scan(root, &Filter::none());
        let rels: Vec<_> = s.files.iter().map(|f| f.rel.as_str()).collect();
        assert_eq!(rels, ["a/b/c.txt", "top"]);
        #[cfg(unix)]
        assert!(
            matches!(&s.skipped[..], [Skipped::Permanent { why, .. }] if why.contains("symbolic"))
        );
    }

    #[test]
    fn exclusions_nimbusignore_files_and_the_size_limit_leave_files_out() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        for (p, d) in [
            ("keep.txt", &b"k"[..]),
            ("big.bin", &[0u8; 100][..]),
            ("a.ost", b"o"),
            ("sub/a.ost", b"o"),
            ("node_modules/x/y.js", b"j"),
            ("sub/deep/node_modules/z.js", b"j"),
            ("sub/keep.md", b"m"),
            ("sub/.nimbusignore", b"*.md\n!keep.md\nscratch/\n"),
            ("sub/scratch/tmp.txt", b"t"),
            ("sub/other.md", b"m"),
            ("/anchored/x", b"x"),
        ] {
            let p = root.join(p.trim_start_matches('/'));
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, d).unwrap();
        }
        let f = Filter::new(
            root,
            &["*.ost".into(), "node_modules/".into(), "/anchored".into()],
            Some(50),
        );
        let s = scan(root, &f);
        let rels: Vec<_> = s.files.iter().map(|f| f.rel.as_str()).collect();
        assert_eq!(rels, ["keep.txt", "sub/.nimbusignore", "sub/keep.md"]);
        assert!(
            matches!(&s.skipped[..], [Skipped::Permanent { why, .. }] if why.contains("maximum file size")),
            "{:?}",
            s.skipped
        );
        // Without the policy, the .nimbusignore file still applies.
        assert_eq!(scan(root, &Filter::none()).files.len(), 9);
    }

    #[cfg(unix)]
    #[test]
    fn non_utf8_and_backslash_names_are_skipped() {
        use std::os::unix::ffi::OsStrExt;
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::write(root.join(std::ffi::OsStr::from_bytes(b"bad\xff")), b"x").unwrap();
        std::fs::write(root.join("back\\slash"), b"x").unwrap();
        let s = scan(root, &Filter::none());
        assert!(s.files.is_empty());
        assert_eq!(s.skipped.len(), 2);
    }
}
