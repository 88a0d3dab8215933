//! The client programs the server offers for download ("Add a machine")
//! and, later, for clients to update themselves: the files `make dist`
//! makes, found in the directory given by `--clients-dir`, named
//! `nimbus-client-VERSION-ARCH-OS[.exe]` (`ARCH` x86_64 or aarch64, `OS`
//! linux, windows or macos), each with its release signature in
//! `FILE.sig` when `make dist` signed it. Other files there are ignored.
//!
//! The directory is read on every listing (it holds a handful of files),
//! so a new build dropped in is offered at once; SHA-256 sums are computed
//! once per file and remembered while its size and time stay the same.

use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::fs::File;
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::SystemTime;

/// An operating system the client runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Os {
    Windows,
    Linux,
    Macos,
}

impl Os {
    pub const ALL: [Os; 3] = [Os::Windows, Os::Linux, Os::Macos];

    /// As in file names and the protocol.
    pub fn as_str(self) -> &'static str {
        match self {
            Os::Windows => "windows",
            Os::Linux => "linux",
            Os::Macos => "macos",
        }
    }

    pub fn parse(s: &str) -> Option<Os> {
        Os::ALL.into_iter().find(|o| o.as_str() == s)
    }

    /// For people.
    pub fn title(self) -> &'static str {
        match self {
            Os::Windows => "Windows",
            Os::Linux => "Linux",
            Os::Macos => "macOS",
        }
    }
}

/// Processor architectures builds are made for.
pub const ARCHES: [&str; 2] = ["x86_64", "aarch64"];

/// One client build in the directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientBuild {
    /// The file's name, which is also its download path's last segment.
    pub file: String,
    pub version: String,
    pub arch: &'static str,
    pub os: Os,
    pub size: u64,
    /// Lower-case hex.
    pub sha256: String,
    /// The release signature (hex) from `FILE.sig` beside it, if any.
    pub signature: Option<String>,
}

/// Whether `name` is the file name of a client build.
pub fn is_build_name(name: &str) -> bool {
    parse_name(name).is_some()
}

/// What a build's file name says, if it names one.
fn parse_name(name: &str) -> Option<(String, &'static str, Os)> {
    let rest = name.strip_prefix("nimbus-client-")?;
    let rest = match rest.strip_suffix(".exe") {
        Some(r) => r,
        None => rest,
    };
    let mut parts = rest.rsplitn(3, '-');
    let os = Os::parse(parts.next()?)?;
    let arch = parts.next()?;
    let arch = ARCHES.into_iter().find(|a| *a == arch)?;
    let version = parts.next()?;
    // A Windows build ends in .exe, no other does.
    if (os == Os::Windows) != name.ends_with(".exe") {
        return None;
    }
    let ok = !version.is_empty()
        && version.len() <= 32
        && version
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._+-".contains(&b));
    ok.then(|| (version.to_string(), arch, os))
}

pub use nimbus_common::update::compare_versions;

/// The directory of builds and the sums computed so far.
pub struct ClientBuilds {
    dir: Option<PathBuf>,
    sums: Mutex<HashMap<String, (u64, SystemTime, String)>>,
}

impl ClientBuilds {
    pub fn new(dir: Option<PathBuf>) -> ClientBuilds {
        ClientBuilds {
            dir,
            sums: Mutex::default(),
        }
    }

    /// Whether a directory was given at all.
    pub fn configured(&self) -> bool {
        self.dir.is_some()
    }

    /// Every build in the directory, newest version first within each OS
    /// and architecture. A missing or unreadable directory offers none.
    pub fn list(&self) -> Vec<ClientBuild> {
        let Some(dir) = &self.dir else {
            return Vec::new();
        };
        let Ok(entries) = std::fs::read_dir(dir) else {
            return Vec::new();
        };
        let mut out = Vec::new();
        for entry in entries.flatten() {
            let Ok(name) = entry.file_name().into_string() else {
                continue;
            };
            let Some((version, arch, os)) = parse_name(&name) else {
                continue;
            };
            let Ok(meta) = std::fs::metadata(entry.path()) else {
                continue;
            };
            if !meta.is_file() {
                continue;
            }
            let Some(sha256) = self.sum(&entry.path(), &name, &meta) else {
                continue;
            };
            let signature = std::fs::read_to_string(dir.join(format!("{name}.sig")))
                .ok()
                .map(|s| s.trim().to_string())
                .filter(|s| s.len() == 128 && s.bytes().all(|b| b.is_ascii_hexdigit()));
            out.push(ClientBuild {
                signature,
                file: name,
                version,
                arch,
                os,
                size: meta.len(),
                sha256,
            });
        }
        out.sort_by(|a, b| {
            (a.os, a.arch)
                .cmp(&(b.os, b.arch))
                .then_with(|| compare_versions(&b.version, &a.version))
        });
        out
    }

    /// The newest build for an OS and architecture.
    pub fn newest(&self, os: Os, arch: &str) -> Option<ClientBuild> {
        self.list()
            .into_iter()
            .find(|b| b.os == os && b.arch == arch)
    }

    /// The build an update target names for an OS and architecture.
    pub fn offered(
        &self,
        os: Os,
        arch: &str,
        target: &crate::updates::Target,
    ) -> Option<ClientBuild> {
        use crate::updates::Target;
        match target {
            Target::Hold => None,
            Target::Latest => self.newest(os, arch),
            Target::Version(v) => self
                .list()
                .into_iter()
                .find(|b| b.os == os && b.arch == arch && &b.version == v),
        }
    }

    /// The newest build of each OS and architecture that has one.
    pub fn newest_each(&self) -> Vec<ClientBuild> {
        let mut out: Vec<ClientBuild> = Vec::new();
        for b in self.list() {
            if !out.iter().any(|o| o.os == b.os && o.arch == b.arch) {
                out.push(b);
            }
        }
        out
    }

    /// A build by its file name, open for reading; `None` for any name
    /// that is not a build in the directory (nothing else is served).
    pub fn open(&self, file: &str) -> Option<(ClientBuild, File)> {
        let build = self.list().into_iter().find(|b| b.file == file)?;
        let f = File::open(self.dir.as_ref()?.join(&build.file)).ok()?;
        // Replaced between the listing and the open: refuse rather than
        // serve bytes under another file's sum.
        (f.metadata().ok()?.len() == build.size).then_some((build, f))
    }

    fn sum(&self, path: &Path, name: &str, meta: &std::fs::Metadata) -> Option<String> {
        let mtime = meta.modified().ok()?;
        let stamp = (meta.len(), mtime);
        {
            let sums = self.sums.lock().unwrap_or_else(|e| e.into_inner());
            if let Some((len, time, sum)) = sums.get(name) {
                if (*len, *time) == stamp {
                    return Some(sum.clone());
                }
            }
        }
        let sum = sha256_file(path).ok()?;
        self.sums
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(name.to_string(), (stamp.0, stamp.1, sum.clone()));
        Some(sum)
    }
}

/// The SHA-256 of a file, streamed, as lower-case hex.
pub fn sha256_file(path: &Path) -> io::Result<String> {
    let mut f = File::open(path)?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(h.finalize().iter().map(|b| format!("{b:02x}")).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_parsed_strictly() {
        assert_eq!(
            parse_name("nimbus-client-0.1.0-x86_64-linux"),
            Some(("0.1.0".into(), "x86_64", Os::Linux))
        );
        assert_eq!(
            parse_name("nimbus-client-0.2.0-rc1-x86_64-windows.exe"),
            Some(("0.2.0-rc1".into(), "x86_64", Os::Windows))
        );
        assert_eq!(
            parse_name("nimbus-client-1.0.0-aarch64-macos"),
            Some(("1.0.0".into(), "aarch64", Os::Macos))
        );
        for bad in [
            "nimbus-client-0.1.0-x86_64-linux.sha256",
            "nimbus-client-0.1.0-x86_64-windows",
            "nimbus-client-0.1.0-x86_64-linux.exe",
            "nimbus-client-0.1.0-sparc-linux",
            "nimbus-client-x86_64-linux",
            "nimbus-server-0.1.0-x86_64-linux",
            "nimbus-client-0.1.0 evil-x86_64-linux",
        ] {
            assert_eq!(parse_name(bad), None, "{bad}");
        }
    }

    #[test]
    fn versions_compare_as_numbers() {
        use std::cmp::Ordering::*;
        assert_eq!(compare_versions("0.10.0", "0.9.1"), Greater);
        assert_eq!(compare_versions("1.0.0", "1.0.0-rc1"), Greater);
        assert_eq!(compare_versions("0.1.0", "0.1.0"), Equal);
        assert_eq!(compare_versions("0.1.0", "0.1.1"), Less);
    }

    #[test]
    fn the_directory_is_listed_with_sums_and_nothing_else_opens() {
        let dir = tempfile::tempdir().unwrap();
        let put = |name: &str, data: &[u8]| std::fs::write(dir.path().join(name), data).unwrap();
        put("nimbus-client-0.1.0-x86_64-linux", b"old");
        put("nimbus-client-0.2.0-x86_64-linux", b"new");
        put("nimbus-client-0.2.0-x86_64-windows.exe", b"exe");
        put("nimbus-client-0.2.0-x86_64-linux.sha256", b"sum");
        put("notes.txt", b"x");
        let b = ClientBuilds::new(Some(dir.path().to_path_buf()));
        let list = b.list();
        assert_eq!(list.len(), 3);
        let newest = b.newest(Os::Linux, "x86_64").unwrap();
        assert_eq!(newest.version, "0.2.0");
        assert_eq!(
            newest.sha256,
            "11507a0e2f5e69d5dfa40a62a1bd7b6ee57e6bcd85c67c9b8431b36fff21c437"
        );
        assert_eq!(b.newest_each().len(), 2);
        assert!(b.open("nimbus-client-0.2.0-x86_64-windows.exe").is_some());
        for name in [
            "notes.txt",
            "nimbus-client-0.2.0-x86_64-linux.sha256",
            "../x",
            "",
        ] {
            assert!(b.open(name).is_none(), "{name}");
        }
        assert!(ClientBuilds::new(None).list().is_empty());
    }
}
