//! Self-update: the client replaces its own program with a newer build the
//! server offers, and goes back to the previous one if the new one cannot
//! reach the server.
//!
//! An offer comes in the answer to a status report. It is installed only
//! when all of these hold: this build has a release public key compiled in
//! (`NIMBUS_UPDATE_KEY` when it was built; without one self-update is off),
//! the offer is for this system and architecture and newer than this
//! version, it was not rolled back in the last day, its Ed25519 signature
//! over its file name and SHA-256 verifies against that key
//! (`nimbus_common::update`), the downloaded bytes have that SHA-256, and
//! the new program, run with `--version`, says it is that version.
//!
//! The steps, each safe to crash in:
//! 1. download beside the program (`.new-NAME`), synced;
//! 2. write the marker `NAME.update.json` ("installed", from and to);
//! 3. keep the running program as `NAME.previous` (a hard link on Unix;
//!    on Windows, where a running `.exe` cannot be replaced but can be
//!    renamed, a rename) and rename the new one into place;
//! 4. restart: on Unix the process `exec`s the new program (same process,
//!    so systemd and launchd see no stop); on Windows it starts the new
//!    program with the same arguments and exits (the scheduled task starts
//!    it again at the next logon either way).
//!
//! The new program, finding the marker naming its own version, has
//! `--update-probation` seconds (from its first start) to reach the server
//! with a status report; then the marker goes. If the time runs out first,
//! it puts `NAME.previous` back, marks that version rolled back (not
//! offered again for a day), and restarts into the previous program.

use nimbus_common::update::{build_file_name, compare_versions, verify};
use nimbus_common::wire::ClientBuildInfo;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::HashSet;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// The version this client reports and compares offers with.
pub const VERSION: &str = env!("NIMBUS_CLIENT_VERSION");

/// The release public key (hex) compiled in, if any.
pub const RELEASE_KEY: Option<&str> = option_env!("NIMBUS_RELEASE_KEY");

/// A version rolled back is not installed again for this long.
const SKIP_AFTER_ROLLBACK: i64 = 24 * 3600;

/// How long the new program may take to answer `--version`.
const VERSION_CHECK: Duration = Duration::from_secs(30);

/// What `--version` prints.
pub fn long_version() -> &'static str {
    static TEXT: once_cell::sync::Lazy<String> = once_cell::sync::Lazy::new(|| {
        format!(
            "{VERSION} (commit {}); self-update {}",
            nimbus_common::COMMIT,
            if RELEASE_KEY.is_some() {
                "on (signed builds)"
            } else {
                "off (built without a release key)"
            }
        )
    });
    &TEXT
}

/// What the marker file says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
enum Marker {
    /// `to` was put in place of `from`; `deadline` is set by `to`'s first
    /// start: by then it must have reached the server.
    Installed {
        from: String,
        to: String,
        at: i64,
        #[serde(default)]
        deadline: Option<i64>,
    },
    /// `version` could not reach the server and `from` was put back; it is
    /// not installed again before `until`.
    RolledBack {
        from: String,
        version: String,
        at: i64,
        until: i64,
    },
}

/// Why an offer was not installed.
#[derive(Debug, thiserror::Error)]
pub enum UpdateError {
    #[error("the offer is for {0}, this is {1}")]
    OtherSystem(String, String),
    #[error("the offer names {0}, not the file of that version ({1})")]
    BadName(String, String),
    #[error("refused: {0}")]
    Signature(#[from] nimbus_common::update::SignatureError),
    #[error("the download does not have the SHA-256 the server gave")]
    WrongSum,
    #[error("the download is not {0} bytes")]
    WrongSize(u64),
    #[error("the new program does not run as version {0}: {1}")]
    DoesNotRun(String, String),
    #[error("cannot download it: {0}")]
    Download(String),
    #[error("cannot replace {}: {}", .0.display(), .1)]
    Replace(PathBuf, io::Error),
    #[error(
        "this user cannot write {} (installed by a package?): update it with the package \
         manager, or run the client from a folder of your own",
        .0.display()
    )]
    NotWritable(PathBuf),
}

/// How the program restarts after an update or a rollback.
pub struct Restart {
    exe: PathBuf,
}

impl Restart {
    /// Runs the program again with this process's arguments. On Unix this
    /// does not return unless `exec` fails.
    pub fn now(self) -> io::Error {
        let args: Vec<std::ffi::OsString> = std::env::args_os().skip(1).collect();
        log::info!("restarting as {}", self.exe.display());
        let mut cmd = std::process::Command::new(&self.exe);
        cmd.args(&args);
        #[cfg(unix)]
        {
            use std::os::unix::process::CommandExt;
            cmd.exec()
        }
        #[cfg(not(unix))]
        {
            match cmd.spawn() {
                Ok(_) => std::process::exit(0),
                Err(e) => e,
            }
        }
    }
}

/// The self-update of one running client.
pub struct Updater {
    exe: PathBuf,
    server: String,
    agent: ureq::Agent,
    probation: Duration,
    /// Why self-update is off, if it is.
    off: Option<String>,
    /// Offers already refused by this process (version and sum), so each
    /// is logged once.
    refused: HashSet<(String, String)>,
    /// Probation of this version: the deadline to reach the server by.
    deadline: Option<(i64, Instant)>,
    /// What to tell the person at the machine (`status`).
    pub note: Option<String>,
}

fn marker_path(exe: &Path) -> PathBuf {
    sibling(exe, "", ".update.json")
}

fn previous_path(exe: &Path) -> PathBuf {
    sibling(exe, "", ".previous")
}

fn sibling(exe: &Path, prefix: &str, suffix: &str) -> PathBuf {
    let name = exe
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "nimbus-client".into());
    exe.with_file_name(format!("{prefix}{name}{suffix}"))
}

fn read_marker(exe: &Path) -> Option<Marker> {
    serde_json::from_slice(&std::fs::read(marker_path(exe)).ok()?).ok()
}

fn write_marker(exe: &Path, m: &Marker) -> io::Result<()> {
    nimbus_common::durable::write_atomic(&marker_path(exe), |w| {
        serde_json::to_writer_pretty(&mut *w, m).map_err(io::Error::other)
    })
}

fn remove_marker(exe: &Path) {
    match std::fs::remove_file(marker_path(exe)) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => log::warn!("cannot remove {}: {e}", marker_path(exe).display()),
    }
}

fn now() -> i64 {
    nimbus_common::time::unix_now()
}

impl Updater {
    /// `off` says why self-update is off by the user's choice, if it is.
    pub fn new(
        server: &str,
        agent: ureq::Agent,
        probation: Duration,
        off: Option<String>,
    ) -> Updater {
        let exe = std::env::current_exe().and_then(std::fs::canonicalize);
        let off = off.or_else(|| {
            RELEASE_KEY
                .is_none()
                .then(|| "self-update is off: this client was built without a release key".into())
        });
        let (exe, off) = match exe {
            Ok(e) => (e, off),
            Err(e) => (
                PathBuf::from("nimbus-client"),
                Some(format!(
                    "self-update is off: cannot find this program's file: {e}"
                )),
            ),
        };
        Updater {
            exe,
            server: server.trim_end_matches('/').to_string(),
            agent,
            probation,
            note: off.clone(),
            off,
            refused: HashSet::new(),
            deadline: None,
        }
    }

    /// Reads the marker at start: an update of this version in probation
    /// (its deadline set now, at its first start), a rollback to note, or
    /// a leftover to clear.
    pub fn start(&mut self) {
        match read_marker(&self.exe) {
            Some(Marker::Installed {
                from,
                to,
                at,
                deadline,
            }) if to == VERSION => {
                let deadline = match deadline {
                    Some(d) => d,
                    None => {
                        let d = now() + self.probation.as_secs() as i64;
                        let m = Marker::Installed {
                            from: from.clone(),
                            to: to.clone(),
                            at,
                            deadline: Some(d),
                        };
                        if let Err(e) = write_marker(&self.exe, &m) {
                            log::warn!("cannot write the update marker: {e}");
                        }
                        d
                    }
                };
                let left = (deadline - now()).max(0) as u64;
                log::info!(
                    "updated from {from} to {to}: this version has {left} s to reach the server, or {from} comes back"
                );
                self.deadline = Some((deadline, Instant::now() + Duration::from_secs(left)));
                self.note = Some(format!(
                    "updated from {from}; on probation until it reaches the server"
                ));
            }
            Some(Marker::RolledBack {
                from,
                version,
                at,
                until,
            }) if from == VERSION => {
                self.note = Some(format!(
                    "version {version} was rolled back at {} (it could not reach the server); \
                     it is not tried again before {}",
                    nimbus_common::time::format_utc(at),
                    nimbus_common::time::format_utc(until)
                ));
            }
            Some(_) => remove_marker(&self.exe),
            None => {}
        }
    }

    /// A status report was accepted: a version on probation has proved
    /// itself.
    pub fn reached_server(&mut self) {
        if let Some((_, _)) = self.deadline.take() {
            remove_marker(&self.exe);
            log::info!("version {VERSION} reached the server: the update is complete");
            self.note = Some(format!("running {VERSION}, the update is complete"));
        }
    }

    /// Whether this version's probation has run out without reaching the
    /// server; if so, puts the previous program back and says how to
    /// restart into it.
    pub fn overdue(&mut self) -> Option<Restart> {
        let (_, by) = self.deadline?;
        if Instant::now() < by {
            return None;
        }
        self.deadline = None;
        let Some(Marker::Installed { from, .. }) = read_marker(&self.exe) else {
            return None;
        };
        log::error!(
            "version {VERSION} could not reach the server within {} s: going back to {from}",
            self.probation.as_secs()
        );
        let previous = previous_path(&self.exe);
        if let Err(e) = put_back(&previous, &self.exe) {
            log::error!("cannot put {} back: {e}", previous.display());
            self.note = Some(format!("could not roll back to {from}: {e}"));
            return None;
        }
        let t = now();
        let m = Marker::RolledBack {
            from,
            version: VERSION.to_string(),
            at: t,
            until: t + SKIP_AFTER_ROLLBACK,
        };
        if let Err(e) = write_marker(&self.exe, &m) {
            log::warn!("cannot write the update marker: {e}");
        }
        Some(Restart {
            exe: self.exe.clone(),
        })
    }

    /// Considers the server's offer; installs it if it passes every check.
    /// `Ok(Some(_))`: installed, restart to run it.
    pub fn consider(&mut self, offer: &ClientBuildInfo) -> Option<Restart> {
        if let Some(off) = &self.off {
            self.note = Some(format!("version {} is offered; {off}", offer.version));
            return None;
        }
        if compare_versions(&offer.version, VERSION) != std::cmp::Ordering::Greater {
            return None;
        }
        if let Some(Marker::RolledBack { version, until, .. }) = read_marker(&self.exe) {
            if version == offer.version && now() < until {
                return None;
            }
        }
        let id = (offer.version.clone(), offer.sha256.clone());
        if self.refused.contains(&id) {
            return None;
        }
        match self.install(offer) {
            Ok(()) => {
                log::info!("installed version {}; restarting into it", offer.version);
                Some(Restart {
                    exe: self.exe.clone(),
                })
            }
            Err(e) => {
                log::warn!("not updating to {}: {e}", offer.version);
                self.note = Some(format!("version {} refused: {e}", offer.version));
                self.refused.insert(id);
                None
            }
        }
    }

    fn install(&mut self, offer: &ClientBuildInfo) -> Result<(), UpdateError> {
        let (os, arch) = (std::env::consts::OS, std::env::consts::ARCH);
        if offer.os != os || offer.arch != arch {
            return Err(UpdateError::OtherSystem(
                format!("{} {}", offer.os, offer.arch),
                format!("{os} {arch}"),
            ));
        }
        let file = build_file_name(&offer.version, arch, os);
        let named = offer.url.rsplit('/').next().unwrap_or("");
        if !offer.url.starts_with("/clients/") || named != file {
            return Err(UpdateError::BadName(offer.url.clone(), file));
        }
        // Checked before a byte is fetched: a server offering an unsigned
        // or foreign build costs no download.
        let key = RELEASE_KEY.expect("checked by self.off");
        verify(key, &file, &offer.sha256, offer.signature.as_deref())?;
        // Named to run as a program on every system (`.exe` kept).
        let tmp = sibling(&self.exe, ".new-", "");
        let got = self.download(&offer.url, offer.size, &tmp);
        let checked = got.and_then(|sum| {
            if sum != offer.sha256 {
                return Err(UpdateError::WrongSum);
            }
            runs_as(&tmp, &offer.version)
        });
        if let Err(e) = checked {
            let _ = std::fs::remove_file(&tmp);
            return Err(e);
        }
        let marker = Marker::Installed {
            from: VERSION.to_string(),
            to: offer.version.clone(),
            at: now(),
            deadline: None,
        };
        let replaced = write_marker(&self.exe, &marker)
            .and_then(|()| swap_in(&tmp, &self.exe, &previous_path(&self.exe)));
        if let Err(e) = replaced {
            let _ = std::fs::remove_file(&tmp);
            remove_marker(&self.exe);
            return Err(UpdateError::Replace(self.exe.clone(), e));
        }
        Ok(())
    }

    /// Streams the build to `tmp` (synced); returns its SHA-256.
    fn download(&self, url: &str, size: u64, tmp: &Path) -> Result<String, UpdateError> {
        let resp = self
            .agent
            .get(&format!("{}{url}", self.server))
            .call()
            .map_err(|e| UpdateError::Download(e.to_string()))?;
        let mut body = resp.into_reader().take(size + 1);
        let mut out = std::fs::File::create(tmp).map_err(|e| match e.kind() {
            io::ErrorKind::PermissionDenied | io::ErrorKind::ReadOnlyFilesystem => {
                UpdateError::NotWritable(tmp.parent().unwrap_or(tmp).to_path_buf())
            }
            _ => UpdateError::Replace(tmp.to_path_buf(), e),
        })?;
        let mut hash = Sha256::new();
        let mut buf = vec![0u8; 1 << 16];
        let mut total = 0u64;
        loop {
            let n = body
                .read(&mut buf)
                .map_err(|e| UpdateError::Download(e.to_string()))?;
            if n == 0 {
                break;
            }
            total += n as u64;
            hash.update(&buf[..n]);
            out.write_all(&buf[..n])
                .map_err(|e| UpdateError::Replace(tmp.to_path_buf(), e))?;
        }
        if total != size {
            return Err(UpdateError::WrongSize(size));
        }
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            out.set_permissions(std::fs::Permissions::from_mode(0o755))
                .map_err(|e| UpdateError::Replace(tmp.to_path_buf(), e))?;
        }
        out.sync_all()
            .map_err(|e| UpdateError::Replace(tmp.to_path_buf(), e))?;
        Ok(hash.finalize().iter().map(|b| format!("{b:02x}")).collect())
    }
}

/// Runs `program --version`: it must start and say it is `version`.
fn runs_as(program: &Path, version: &str) -> Result<(), UpdateError> {
    let fail = |why: String| UpdateError::DoesNotRun(version.to_string(), why);
    let mut child = std::process::Command::new(program)
        .arg("--version")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .map_err(|e| fail(e.to_string()))?;
    let started = Instant::now();
    let status = loop {
        match child.try_wait() {
            Ok(Some(s)) => break s,
            Ok(None) if started.elapsed() < VERSION_CHECK => {
                std::thread::sleep(Duration::from_millis(50))
            }
            Ok(None) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(fail("it did not answer --version".into()));
            }
            Err(e) => return Err(fail(e.to_string())),
        }
    };
    let mut said = String::new();
    if let Some(mut out) = child.stdout.take() {
        let _ = out.read_to_string(&mut said);
    }
    let expected = format!("nimbus-client {version} ");
    if !status.success() || !said.starts_with(&expected) {
        return Err(fail(format!("it said {:?}", said.trim())));
    }
    Ok(())
}

/// Puts `new` in place of `exe`, keeping `exe` as `previous`.
fn swap_in(new: &Path, exe: &Path, previous: &Path) -> io::Result<()> {
    match std::fs::remove_file(previous) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    if cfg!(windows) {
        // A running .exe can be renamed, not replaced.
        std::fs::rename(exe, previous)?;
        if let Err(e) = std::fs::rename(new, exe) {
            let _ = std::fs::rename(previous, exe);
            return Err(e);
        }
    } else {
        // The program stays at its path throughout: a hard link keeps the
        // running one, and the rename replaces it in one step.
        if std::fs::hard_link(exe, previous).is_err() {
            std::fs::copy(exe, previous)?;
        }
        std::fs::rename(new, exe)?;
    }
    if let Some(dir) = exe.parent() {
        nimbus_common::durable::sync_dir(dir)?;
    }
    Ok(())
}

/// Puts `previous` back in place of `exe` (the running program).
fn put_back(previous: &Path, exe: &Path) -> io::Result<()> {
    if cfg!(windows) {
        let failed = sibling(exe, "", ".failed");
        let _ = std::fs::remove_file(&failed);
        std::fs::rename(exe, &failed)?;
        if let Err(e) = std::fs::rename(previous, exe) {
            let _ = std::fs::rename(&failed, exe);
            return Err(e);
        }
    } else {
        std::fs::rename(previous, exe)?;
    }
    if let Some(dir) = exe.parent() {
        nimbus_common::durable::sync_dir(dir)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markers_read_back_as_written() {
        let dir = tempfile::tempdir().unwrap();
        let exe = dir.path().join("nimbus-client");
        let m = Marker::Installed {
            from: "0.1.0".into(),
            to: "0.2.0".into(),
            at: 5,
            deadline: None,
        };
        write_marker(&exe, &m).unwrap();
        assert_eq!(read_marker(&exe), Some(m));
        assert!(dir.path().join("nimbus-client.update.json").exists());
        remove_marker(&exe);
        assert_eq!(read_marker(&exe), None);
    }

    #[test]
    fn a_swap_keeps_the_previous_program_and_put_back_restores_it() {
        let dir = tempfile::tempdir().unwrap();
        let (exe, new, prev) = (
            dir.path().join("p"),
            dir.path().join(".p.download"),
            dir.path().join("p.previous"),
        );
        std::fs::write(&exe, b"old").unwrap();
        std::fs::write(&new, b"new").unwrap();
        swap_in(&new, &exe, &prev).unwrap();
        assert_eq!(std::fs::read(&exe).unwrap(), b"new");
        assert_eq!(std::fs::read(&prev).unwrap(), b"old");
        assert!(!new.exists());
        put_back(&prev, &exe).unwrap();
        assert_eq!(std::fs::read(&exe).unwrap(), b"old");
    }
}
