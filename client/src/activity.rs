//! What a running client is doing, for `nimbus-client status` (the person
//! at the machine), read without contacting the server. The backup loop
//! keeps it in a small file beside its state file
//! (`state-XXXX.status.json`), replaced whole (temp file and rename, no
//! fsync: it is a report, not data) when a pass with work starts and ends,
//! after each heartbeat, and when the client stops; idle passes that change
//! nothing write nothing; `status` reads
//! every such file of this user (or the one of `--state`) and tells
//! whether the process that wrote it still runs.

use crate::backup::Summary;
use nimbus_common::time::{format_utc, unix_now};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// Failed files kept for `status` (the newest).
const MAX_FAILURES: usize = 10;

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Doing {
    #[default]
    Starting,
    /// Scanning the folder and sending what changed.
    Backing,
    /// Between passes, everything acknowledged or settling.
    Idle,
    /// The server could not be reached or failed; retrying.
    Waiting,
    /// The server refused this machine (revoked) or its certificate.
    Refused,
    Stopped,
}

impl Doing {
    fn text(&self) -> &'static str {
        match self {
            Doing::Starting => "starting",
            Doing::Backing => "backing up: scanning the folder and sending what changed",
            Doing::Idle => "watching the folder (everything sent is acknowledged)",
            Doing::Waiting => "waiting for the server, retrying",
            Doing::Refused => "stopped: the server refused this machine",
            Doing::Stopped => "stopped",
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PassRecord {
    pub at: i64,
    pub scanned: u64,
    pub uploaded: u64,
    pub bytes: u64,
    pub deleted: u64,
    pub pending: u64,
    pub errors: u64,
    #[serde(default)]
    pub failures: Vec<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Activity {
    pub pid: u32,
    pub version: String,
    pub server: String,
    pub machine: String,
    pub dir: String,
    pub started_at: i64,
    pub updated_at: i64,
    pub doing: Doing,
    #[serde(default)]
    pub problem: Option<String>,
    #[serde(default)]
    pub last_pass: Option<PassRecord>,
    /// When a pass last ended with nothing pending and no errors.
    #[serde(default)]
    pub last_complete: Option<i64>,
    /// The time and answer of the last status report to the server.
    #[serde(default)]
    pub last_heartbeat: Option<(i64, String)>,
    /// A newer version the server offers for this system, from its answer
    /// to the last report.
    #[serde(default)]
    pub offered: Option<String>,
    /// What self-update last did or why it did not (`update::Updater`).
    #[serde(default)]
    pub update: Option<String>,
}

/// The activity file of a state file.
pub fn path_for(state: &Path) -> PathBuf {
    state.with_extension("status.json")
}

/// Keeps the activity file of one backup loop.
pub struct Recorder {
    path: PathBuf,
    pub now: Activity,
}

impl Recorder {
    pub fn new(state: &Path, server: &str, machine: &str, dir: &str) -> Recorder {
        let t = unix_now();
        let r = Recorder {
            path: path_for(state),
            now: Activity {
                pid: std::process::id(),
                version: format!(
                    "{} (commit {})",
                    crate::update::VERSION,
                    nimbus_common::COMMIT
                ),
                server: server.to_string(),
                machine: machine.to_string(),
                dir: dir.to_string(),
                started_at: t,
                updated_at: t,
                ..Activity::default()
            },
        };
        r.save();
        r
    }

    /// Rewrites the file. A failure is only a warning: backing up matters
    /// more than telling about it.
    fn save(&self) {
        let tmp = self.path.with_extension("json.tmp");
        let bytes = serde_json::to_vec_pretty(&self.now).expect("serialisable");
        let done = std::fs::write(&tmp, bytes).and_then(|()| std::fs::rename(&tmp, &self.path));
        if let Err(e) = done {
            log::warn!("cannot write {}: {e}", self.path.display());
        }
    }

    pub fn doing(&mut self, doing: Doing, problem: Option<String>) {
        self.now.doing = doing;
        self.now.problem = problem;
        self.now.updated_at = unix_now();
        self.save();
    }

    /// A pass ended. One that did nothing and changed nothing is not
    /// written down.
    pub fn pass(&mut self, sum: &Summary) {
        if !sum.did_something() && self.now.doing == Doing::Idle {
            return;
        }
        let t = unix_now();
        let start = sum.failures.len().saturating_sub(MAX_FAILURES);
        self.now.last_pass = Some(PassRecord {
            at: t,
            scanned: sum.scanned as u64,
            uploaded: sum.uploaded as u64,
            bytes: sum.bytes,
            deleted: sum.deleted as u64,
            pending: sum.pending as u64,
            errors: sum.errors as u64,
            failures: sum.failures[start..].to_vec(),
        });
        if sum.server_problem.is_none()
            && sum.auth_problem.is_none()
            && sum.pending == 0
            && sum.errors == 0
        {
            self.now.last_complete = Some(t);
        }
        let (doing, problem) = match (&sum.auth_problem, &sum.server_problem) {
            (Some(p), _) => (Doing::Refused, Some(p.to_string())),
            (None, Some(p)) => (Doing::Waiting, Some(p.clone())),
            (None, None) => (Doing::Idle, None),
        };
        self.doing(doing, problem);
    }

    /// The server's offer in its answer to a report (written with it).
    pub fn offered(&mut self, version: Option<String>) {
        if self.now.offered != version {
            self.now.offered = version;
            self.save();
        }
    }

    /// What self-update says now (written when it changes).
    pub fn update_note(&mut self, note: Option<String>) {
        if self.now.update != note {
            self.now.update = note;
            self.save();
        }
    }

    pub fn heartbeat(&mut self, answer: String) {
        self.now.last_heartbeat = Some((unix_now(), answer));
        self.now.updated_at = unix_now();
        self.save();
    }
}

/// A loop that ends (returns, fails, is stopped by a signal it handles)
/// says so; one that is killed leaves its last word, and `status` finds
/// its process gone.
impl Drop for Recorder {
    fn drop(&mut self) {
        if self.now.doing != Doing::Refused {
            self.now.doing = Doing::Stopped;
        }
        self.now.updated_at = unix_now();
        self.save();
    }
}

/// The activity files to show: the one of `state`, or every one in the
/// client's state folder.
pub fn find(state: Option<&Path>) -> Vec<PathBuf> {
    if let Some(s) = state {
        return vec![path_for(s)];
    }
    let dir = crate::login::app_dir(true);
    let mut out: Vec<PathBuf> = std::fs::read_dir(&dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("state-") && n.ends_with(".status.json"))
        })
        .collect();
    out.sort();
    out
}

/// Whether process `pid` runs (asked of the system's own tools: no
/// library call differs less between systems).
fn running(pid: u32) -> bool {
    if pid == std::process::id() {
        return true;
    }
    let out = if cfg!(windows) {
        std::process::Command::new("tasklist")
            .args(["/FI", &format!("PID eq {pid}"), "/NH", "/FO", "CSV"])
            .output()
    } else {
        std::process::Command::new("kill")
            .args(["-0", &pid.to_string()])
            .output()
    };
    match out {
        Ok(o) if cfg!(windows) => {
            String::from_utf8_lossy(&o.stdout).contains(&format!("\"{pid}\""))
        }
        Ok(o) => o.status.success(),
        Err(_) => false,
    }
}

/// The report for people; `None` when the file is missing or unreadable.
/// The flag says whether the client that wrote it still runs.
pub fn describe(path: &Path) -> Option<(String, bool)> {
    let a: Activity = serde_json::from_slice(&std::fs::read(path).ok()?).ok()?;
    let alive = !matches!(a.doing, Doing::Stopped | Doing::Refused) && running(a.pid);
    let mut s = String::new();
    let line = |s: &mut String, k: &str, v: String| s.push_str(&format!("  {k:<15}{v}\n"));
    s.push_str(&format!(
        "{} backing up {} to {} as {:?}\n",
        if alive { "running:" } else { "not running:" },
        a.dir,
        a.server,
        a.machine
    ));
    line(
        &mut s,
        "client",
        format!("{} (process {})", a.version, a.pid),
    );
    line(&mut s, "started", format_utc(a.started_at));
    let doing = if alive || a.doing == Doing::Refused {
        a.doing.text().to_string()
    } else if a.doing == Doing::Stopped {
        format!("stopped at {}", format_utc(a.updated_at))
    } else {
        format!(
            "ended without stopping (last seen {})",
            format_utc(a.updated_at)
        )
    };
    line(&mut s, "now", doing);
    if let Some(p) = &a.problem {
        line(&mut s, "problem", p.clone());
    }
    match &a.last_pass {
        Some(p) => {
            line(
                &mut s,
                "last pass",
                format!(
                    "{}: scanned {}, sent {} ({} bytes), deleted {}, pending {}, errors {}",
                    format_utc(p.at),
                    p.scanned,
                    p.uploaded,
                    p.bytes,
                    p.deleted,
                    p.pending,
                    p.errors
                ),
            );
            for f in &p.failures {
                line(&mut s, "  error", f.clone());
            }
        }
        None => line(&mut s, "last pass", "none yet".into()),
    }
    line(
        &mut s,
        "all backed up",
        a.last_complete
            .map(format_utc)
            .unwrap_or_else(|| "not yet".into()),
    );
    line(
        &mut s,
        "server said",
        match &a.last_heartbeat {
            Some((t, answer)) => format!("{answer} ({})", format_utc(*t)),
            None => "nothing yet".into(),
        },
    );
    line(
        &mut s,
        "update",
        match (&a.update, &a.offered) {
            (Some(note), _) => note.clone(),
            (None, Some(v)) => format!("version {v} is offered by the server"),
            (None, None) => "none newer on the server".into(),
        },
    );
    Some((s, alive))
}
