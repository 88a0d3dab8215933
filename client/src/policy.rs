//! The server's backup policy as this client applies it: fetched with each
//! heartbeat (`If-None-Match`, so an unchanged one is a 304), kept in
//! `STATE.policy.json` for when the server is away, and combined with the
//! command line's flags, which win except where the admin locked a
//! setting.

use crate::api::{Api, ApiError};
use crate::scan::Filter;
use crate::scan::Source;
use log::{error, info, warn};
use nimbus_common::policy::{Effective, Folder, LocalTime};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Seconds between passes, and settle time, when neither flag nor policy
/// sets them.
pub const DEFAULT_INTERVAL: f64 = 3.0;
pub const DEFAULT_SETTLE: f64 = 2.0;

/// The flags given on the command line for settings a policy may set.
#[derive(Debug, Clone, Default)]
pub struct Flags {
    pub interval: Option<f64>,
    pub settle: Option<f64>,
    pub max_file_size: Option<u64>,
    pub upload_limit: Option<u64>,
    pub excludes: Vec<String>,
    /// `--folder [NAME=]PATH`.
    pub folders: Vec<Folder>,
}

impl Flags {
    /// The flags that set a field `policy` locks, as `--flag (field)`.
    fn refused(&self, policy: &Effective) -> Vec<&'static str> {
        let given = [
            ("--interval", "interval", self.interval.is_some()),
            ("--settle", "settle", self.settle.is_some()),
            (
                "--max-file-size",
                "max_file_size",
                self.max_file_size.is_some(),
            ),
            (
                "--upload-limit",
                "upload_limit",
                self.upload_limit.is_some(),
            ),
            ("--exclude", "excludes", !self.excludes.is_empty()),
            ("--folder", "folders", !self.folders.is_empty()),
        ];
        given
            .into_iter()
            .filter(|(_, field, set)| *set && policy.is_locked(field))
            .map(|(flag, _, _)| flag)
            .collect()
    }
}

pub struct Policy {
    flags: Flags,
    root: PathBuf,
    cache: PathBuf,
    /// The server's policy, if this client ever got one.
    pub server: Option<Effective>,
}

impl Policy {
    /// The flags and the policy kept from the last time (see
    /// [`Policy::check_flags`] once the server was asked).
    pub fn load(flags: Flags, root: &Path, state_path: &Path) -> Result<Policy, String> {
        let cache = state_path.with_extension("policy.json");
        let server = match std::fs::read(&cache) {
            Ok(bytes) => match serde_json::from_slice::<Effective>(&bytes) {
                Ok(p) => Some(p),
                Err(e) => {
                    warn!("ignoring {}: {e}", cache.display());
                    None
                }
            },
            Err(_) => None,
        };
        Ok(Policy {
            flags,
            root: root.to_path_buf(),
            cache,
            server,
        })
    }

    /// Refuses flags for settings the server's policy locks.
    pub fn check_flags(&self) -> Result<(), String> {
        let Some(server) = &self.server else {
            return Ok(());
        };
        match self.flags.refused(server).as_slice() {
            [] => Ok(()),
            flags => Err(format!(
                "{} cannot be used: the server's admin locked {} (policy {}); remove {}",
                flags.join(", "),
                if flags.len() == 1 {
                    "that setting"
                } else {
                    "those settings"
                },
                server.version,
                if flags.len() == 1 { "it" } else { "them" },
            )),
        }
    }

    /// The version applied, for the status report.
    pub fn version(&self) -> Option<String> {
        self.server.as_ref().map(|p| p.version.clone())
    }

    /// Asks the server for its policy (a 304 when unchanged); returns
    /// whether it changed. A server without policies is no change.
    pub fn refresh(&mut self, api: &Api) -> Result<bool, ApiError> {
        let etag = self.server.as_ref().map(|p| format!("\"{}\"", p.version));
        let headers: Vec<(&str, &str)> = etag
            .as_deref()
            .map(|t| vec![("If-None-Match", t)])
            .unwrap_or_default();
        let resp = match api.get_with(nimbus_common::wire::POLICY_ROUTE, &headers) {
            Ok(r) => r,
            Err(ApiError::Refused {
                status: 404 | 405, ..
            }) => return Ok(false),
            Err(e) => return Err(e),
        };
        if resp.status() == 304 {
            return Ok(false);
        }
        let fresh: Effective = crate::api::read_json(resp)
            .map_err(|e| ApiError::Unavailable(format!("unreadable policy: {e}")))?;
        if self.server.as_ref() == Some(&fresh) {
            return Ok(false);
        }
        if let Err(e) = nimbus_common::durable::write_atomic(&self.cache, |w| {
            serde_json::to_writer(&mut *w, &fresh).map_err(std::io::Error::other)
        }) {
            warn!(
                "cannot keep the policy in {}: {e}; it applies until the client stops",
                self.cache.display()
            );
        }
        info!("applying the server's policy {}", fresh.version);
        self.server = Some(fresh);
        if let Err(e) = self.check_flags() {
            error!("{e}; the server's settings apply");
        }
        Ok(true)
    }

    fn locked(&self, field: &str) -> bool {
        self.server.as_ref().is_some_and(|p| p.is_locked(field))
    }

    /// A flag where given and not locked, else the server's.
    fn pick<T: Copy>(&self, field: &str, flag: Option<T>, server: Option<T>) -> Option<T> {
        match flag {
            Some(v) if !self.locked(field) => Some(v),
            _ => server,
        }
    }

    pub fn interval(&self) -> Duration {
        let s = self.pick(
            "interval",
            self.flags.interval,
            self.server.as_ref().and_then(|p| p.interval),
        );
        Duration::from_secs_f64(s.unwrap_or(DEFAULT_INTERVAL))
    }

    pub fn settle(&self) -> Duration {
        let s = self.pick(
            "settle",
            self.flags.settle,
            self.server.as_ref().and_then(|p| p.settle),
        );
        Duration::from_secs_f64(s.unwrap_or(DEFAULT_SETTLE))
    }

    /// Whether uploads may happen now (inside a backup window, or no
    /// windows set).
    pub fn may_upload(&self) -> bool {
        self.server.as_ref().is_none_or(|p| p.may_upload(now()))
    }

    /// The upload limit now, in bytes per second.
    pub fn rate(&self) -> Option<u64> {
        match self.flags.upload_limit {
            Some(r) if !self.locked("upload_limit") => (r > 0).then_some(r),
            _ => self.server.as_ref().and_then(|p| p.rate_at(now())),
        }
    }

    /// The folders to back up: the `--dir` with [`Policy::filter`], then
    /// the `--folder`s (unless the admin locked the field) and the
    /// policy's, each with its own exclusions added; a flag's folder wins
    /// over the policy's of the same name.
    pub fn sources(&self) -> Vec<Source> {
        let mut out = vec![Source {
            name: String::new(),
            path: self.root.clone(),
            filter: self.filter(&[]),
        }];
        let mut folders: Vec<&Folder> = Vec::new();
        if !self.locked("folders") {
            folders.extend(self.flags.folders.iter());
        }
        if let Some(p) = &self.server {
            folders.extend(p.folders.iter());
        }
        for f in folders {
            let name = f.name();
            if out.iter().any(|s| s.name.eq_ignore_ascii_case(&name)) {
                continue;
            }
            let Some(path) = expand_home(&f.path) else {
                warn!("folder {name:?}: no home folder to find {} in", f.path);
                continue;
            };
            out.push(Source {
                filter: self.filter_at(&path, &f.excludes),
                name,
                path,
            });
        }
        out
    }

    /// What the walk of the `--dir` leaves out, with `more` patterns.
    pub fn filter(&self, more: &[String]) -> Filter {
        self.filter_at(&self.root, more)
    }

    /// The policy's and flags' exclusions and size limit for a folder at
    /// `root`, with `more` patterns (a named folder's own).
    fn filter_at(&self, root: &Path, more: &[String]) -> Filter {
        let mut patterns = self
            .server
            .as_ref()
            .map(|p| p.excludes_for(std::env::consts::OS))
            .unwrap_or_default();
        if !self.locked("excludes") {
            patterns.extend(self.flags.excludes.iter().cloned());
        }
        let max = self.pick(
            "max_file_size",
            self.flags.max_file_size,
            self.server.as_ref().and_then(|p| p.max_file_size),
        );
        patterns.extend(more.iter().cloned());
        Filter::new(root, &patterns, max.filter(|&m| m > 0))
    }
}

/// `~`, `~/x` or `~\x` in the home folder; other paths as they are.
fn expand_home(path: &str) -> Option<PathBuf> {
    match path.strip_prefix('~') {
        None => Some(PathBuf::from(path)),
        Some(rest) => {
            let home = dirs::home_dir()?;
            let rest = rest.trim_start_matches(['/', '\\']);
            Some(if rest.is_empty() {
                home
            } else {
                home.join(rest)
            })
        }
    }
}

/// The machine's local time (UTC when the time zone cannot be found).
fn now() -> LocalTime {
    let z = jiff::ZonedDateTime::now();
    LocalTime {
        weekday: z.weekday().to_monday_zero_offset() as u8,
        minute: z.hour() as u16 * 60 + z.minute() as u16,
    }
}
