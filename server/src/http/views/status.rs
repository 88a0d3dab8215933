//! Each machine's status as the admin sees it (as JSON and on the admin
//! page): user, machine, last contact, what its client last reported, the
//! last file backed up, file count and sizes. Never contents.

use crate::http::ctx::Ctx;
use crate::space::{split_key, MachineKey};
use crate::store::catalog::MachineSummary;
use serde::Serialize;

/// How a machine stands.
#[derive(Serialize, Clone, Copy, PartialEq, Eq, Debug)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// In contact within `--stale-after`, and its last pass had no errors.
    Ok,
    /// No contact for longer than `--stale-after`.
    Stale,
    /// Its last pass reported errors.
    Errors,
    /// Files uploaded from the browser only: no client backs this machine
    /// up, so it cannot go stale.
    Browser,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Ok => "ok",
            Status::Stale => "stale",
            Status::Errors => "errors",
            Status::Browser => "browser",
        }
    }
}

#[derive(Serialize)]
pub struct ClientView {
    pub user: String,
    pub machine: String,
    /// "ok", "stale" (no contact for longer than --stale-after),
    /// "errors" (its last pass reported errors), or "browser" (files
    /// uploaded from the browser only: no client backs this machine up, so
    /// it cannot go stale).
    pub status: Status,
    /// Unix seconds of the last request from the machine (or, for a
    /// machine never heard from since contact times were kept, of its last
    /// backup).
    pub last_contact: Option<i64>,
    /// What the client last reported about itself.
    pub version: Option<String>,
    pub os: Option<String>,
    /// The backup policy version the client last said it applies, and
    /// the one the server gives it now (they differ until its next
    /// heartbeat).
    pub policy: Option<String>,
    pub policy_now: String,
    /// Errors of the last pass that count (not matched by an ignore rule).
    pub errors: u64,
    /// Errors of the last pass an ignore rule matched: shown, not counted.
    pub ignored: u64,
    /// The last pass's failed files, each marked ignored or not.
    pub problems: Vec<ProblemView>,
    pub last_error: Option<String>,
    /// When its client last reported a pass without errors that count.
    pub last_ok: Option<i64>,
    /// Reported passes in a row with errors that count.
    pub failing: u32,
    /// Files its last pass left waiting to be sent.
    pub pending: u64,
    pub last_file: Option<String>,
    pub last_backup_at: Option<i64>,
    pub files: usize,
    pub bytes: u64,
    /// On disk for its current files, after dedup (within the client) and
    /// packing.
    pub stored: u64,
}

#[derive(Serialize)]
pub struct ProblemView {
    pub path: String,
    pub message: String,
    pub ignored: bool,
}

pub fn clients(ctx: &Ctx) -> Vec<ClientView> {
    let mut summaries: std::collections::BTreeMap<String, MachineSummary> = ctx
        .dm
        .machine_summaries()
        .into_iter()
        .map(|s| (s.key.clone(), s))
        .collect();
    // Machines that reported but never backed anything up are listed too.
    for key in ctx.clients.all().into_keys() {
        summaries.entry(key.clone()).or_insert(MachineSummary {
            key,
            files: 0,
            bytes: 0,
            stored: 0,
            last_file: None,
            last_backup_at: None,
        });
    }
    // Machines some client logged in as (a revoked device was one too).
    let devices: std::collections::HashSet<String> = ctx
        .auth
        .accounts
        .current()
        .map(|a| {
            a.devices
                .iter()
                .map(|d| MachineKey::new(&d.user, &d.machine).to_string())
                .collect()
        })
        .unwrap_or_default();
    let now = nimbus_common::time::unix_now();
    let policies = ctx.policies.current().unwrap_or_default();
    summaries
        .into_values()
        .map(|s| {
            let (user, machine) = split_key(&s.key);
            let info = ctx.clients.get(&s.key).unwrap_or_default();
            let last_contact = match (info.last_contact, s.last_backup_at) {
                (Some(a), Some(b)) => Some(a.max(b)),
                (a, b) => a.or(b),
            };
            let report = info.report.unwrap_or_default();
            let browser_only = info.last_contact.is_none() && !devices.contains(&s.key);
            let problems: Vec<ProblemView> = report
                .problems
                .iter()
                .map(|p| ProblemView {
                    path: p.path.clone(),
                    message: p.message.clone(),
                    ignored: policies.ignored(&s.key, p),
                })
                .collect();
            let ignored = problems.iter().filter(|p| p.ignored).count() as u64;
            let errors = report.errors.saturating_sub(ignored);
            let status = match last_contact {
                _ if browser_only => Status::Browser,
                Some(t) if now - t <= ctx.stale_after as i64 && errors == 0 => Status::Ok,
                Some(t) if now - t <= ctx.stale_after as i64 => Status::Errors,
                _ => Status::Stale,
            };
            let known = |v: String| (!v.is_empty()).then_some(v);
            ClientView {
                user: user.to_string(),
                machine: machine.to_string(),
                status,
                last_contact,
                version: known(report.version),
                os: known(report.os),
                policy: report.policy,
                policy_now: policies.effective(&s.key).version,
                errors,
                ignored,
                problems,
                // The last error that counts.
                last_error: match report
                    .problems
                    .iter()
                    .rev()
                    .find(|p| !policies.ignored(&s.key, p))
                {
                    Some(p) => Some(format!("{}: {}", p.path, p.message)),
                    None if ignored > 0 => None,
                    None => report.last_error,
                },
                last_ok: info.last_ok.or(match report.errors {
                    // Reported before last_ok was kept.
                    0 => info.reported_at,
                    _ => None,
                }),
                failing: info.failing,
                pending: report.pending,
                last_file: s.last_file,
                last_backup_at: s.last_backup_at,
                files: s.files,
                bytes: s.bytes,
                stored: s.stored,
            }
        })
        .collect()
}

/// What the alert watcher needs of every machine.
pub fn machine_states(ctx: &Ctx) -> Vec<crate::alerts::watch::MachineState> {
    clients(ctx)
        .into_iter()
        .map(|c| crate::alerts::watch::MachineState {
            key: format!("{}/{}", c.user, c.machine),
            last_ok: c.last_ok,
            failing: c.failing,
            browser_only: c.status == Status::Browser,
        })
        .collect()
}
