//! What the server knows about each client machine besides its files: when
//! it last made a request, and what it last reported about itself (client
//! version, OS, its last pass's counts and last error). Clients report after
//! passes that did something and send a heartbeat while idle, so "last
//! contact" is true for quiet machines too.
//!
//! Kept in memory and in `DATA/clients.json`, rewritten atomically when a
//! report arrives (at most one a minute per idle client) and at shutdown. A
//! lost update only makes a contact time look older, never loses a file.

use crate::vault::{Obj, Vault};
use nimbus_common::time::unix_now;
use serde::{Deserialize, Serialize};

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

const FILE: &str = "clients.json";

/// What a client sends with `POST /api/v1/status`.
pub use nimbus_common::wire::StatusReport as Report;

/// Refuses reports too large or strange to show on a page.
pub fn validate(r: &Report) -> Result<(), String> {
    let short = |name: &str, v: &str, max: usize| {
        if v.len() > max || v.chars().any(char::is_control) {
            Err(format!("{name} must be at most {max} bytes of text"))
        } else {
            Ok(())
        }
    };
    short("version", &r.version, 64)?;
    short("os", &r.os, 64)?;
    short("policy", r.policy.as_deref().unwrap_or(""), 64)?;
    if r.problems.len() > nimbus_common::wire::MAX_PROBLEMS {
        return Err(format!(
            "at most {} problems",
            nimbus_common::wire::MAX_PROBLEMS
        ));
    }
    for p in &r.problems {
        short("a problem's path", &p.path, 4096)?;
        short("a problem's message", &p.message, 2000)?;
    }
    match &r.last_error {
        Some(e) if e.len() > 2000 => Err("last_error must be at most 2000 bytes".into()),
        _ => Ok(()),
    }
}

/// One client's record.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClientInfo {
    /// Unix seconds of the last request.
    pub last_contact: Option<i64>,
    /// The last report and when it came.
    pub report: Option<Report>,
    pub reported_at: Option<i64>,
    /// When it last reported a pass without errors that count (for the
    /// stale-machine alert).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_ok: Option<i64>,
    /// Reports in a row with errors that count.
    #[serde(default)]
    pub failing: u32,
}

pub struct Clients {
    path: PathBuf,
    vault: Vault,
    map: Mutex<BTreeMap<String, ClientInfo>>,
}

impl Clients {
    /// Loads `DATA/clients.json`; a missing or unreadable file starts empty
    /// (it only holds what the next requests will tell again).
    pub fn open(data: &Path, vault: Vault) -> Clients {
        let path = data.join(FILE);
        let map = vault
            .read_object(&path, Obj::Clients)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default();
        Clients {
            path,
            vault,
            map: Mutex::new(map),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, ClientInfo>> {
        self.map.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A request from `client` (`user/machine`) arrived now.
    pub fn seen(&self, client: &str) {
        self.lock()
            .entry(client.to_string())
            .or_default()
            .last_contact = Some(unix_now());
    }

    /// Records a report, of which `counted` errors count (the others an
    /// ignore rule matched), and writes the file.
    pub fn report(&self, client: &str, report: Report, counted: u64) -> std::io::Result<()> {
        let now = unix_now();
        {
            let mut map = self.lock();
            let info = map.entry(client.to_string()).or_default();
            info.last_contact = Some(now);
            info.report = Some(report);
            info.reported_at = Some(now);
            if counted == 0 {
                info.last_ok = Some(now);
                info.failing = 0;
            } else {
                info.failing = info.failing.saturating_add(1);
            }
        }
        self.save()
    }

    pub fn get(&self, client: &str) -> Option<ClientInfo> {
        self.lock().get(client).cloned()
    }

    /// Every client with a record.
    pub fn all(&self) -> BTreeMap<String, ClientInfo> {
        self.lock().clone()
    }

    /// Writes the file atomically.
    pub fn save(&self) -> std::io::Result<()> {
        let snapshot = self.all();
        self.vault
            .write_atomic(&self.path, Obj::Clients, false, |w| {
                serde_json::to_writer(&mut *w, &snapshot).map_err(std::io::Error::other)
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reports_survive_a_restart_and_bad_ones_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let c = Clients::open(dir.path(), Vault::plain());
        c.seen("alice/laptop");
        let r = Report {
            version: "0.1.0".into(),
            os: "linux x86_64".into(),
            errors: 2,
            last_error: Some("a.txt: permission denied".into()),
            ..Report::default()
        };
        c.report("alice/laptop", r.clone(), 2).unwrap();
        let back = Clients::open(dir.path(), Vault::plain());
        let info = back.get("alice/laptop").unwrap();
        assert_eq!(info.report, Some(r));
        assert!(info.last_contact.is_some());
        assert_eq!((info.failing, info.last_ok), (1, None));
        let bad = Report {
            version: "1\n2".into(),
            ..Report::default()
        };
        assert!(validate(&bad).is_err());
        let long = Report {
            os: "x".repeat(65),
            ..Report::default()
        };
        assert!(validate(&long).is_err());
    }
}
