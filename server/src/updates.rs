//! Which client version the server offers each machine: the admin's
//! update policy. A target is set for the whole fleet, and may be
//! overridden for a user's machines and for one machine (the most specific
//! wins): the newest build, a pinned version, or no update at all. A staged
//! rollout is the fleet pinned to the version it runs and the chosen
//! machines set to the newest.
//!
//! Kept in `DATA/updates.json`, rewritten atomically (and synced) on every
//! change; a missing file is the default, every machine offered the newest.

use crate::space::MachineKey;
use crate::vault::{Obj, Vault};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

const FILE: &str = "updates.json";

/// What a scope of machines is offered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Target {
    /// The newest build for the machine's system.
    Latest,
    /// No update: each machine keeps the version it runs.
    Hold,
    /// This version, once it is newer than what a machine runs.
    #[serde(untagged)]
    Version(String),
}

impl Target {
    /// As the admin page's form spells it (`latest`, `hold`, a version).
    pub fn parse(text: &str) -> Option<Target> {
        match text {
            "latest" => Some(Target::Latest),
            "hold" => Some(Target::Hold),
            v if !v.is_empty()
                && v.len() <= 32
                && v.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"._+-".contains(&b))
                && v.bytes().next().is_some_and(|b| b.is_ascii_digit()) =>
            {
                Some(Target::Version(v.to_string()))
            }
            _ => None,
        }
    }

    pub fn as_str(&self) -> &str {
        match self {
            Target::Latest => "latest",
            Target::Hold => "hold",
            Target::Version(v) => v,
        }
    }

    /// For people.
    pub fn describe(&self) -> String {
        match self {
            Target::Latest => "the newest version".into(),
            Target::Hold => "no update".into(),
            Target::Version(v) => format!("version {v}"),
        }
    }
}

/// Which machines a setting covers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    Fleet,
    User(String),
    /// `user/machine`.
    Machine(String),
}

impl Scope {
    /// `fleet`, `user:NAME` or `machine:USER/MACHINE`.
    pub fn parse(text: &str) -> Option<Scope> {
        if text == "fleet" {
            return Some(Scope::Fleet);
        }
        if let Some(u) = text.strip_prefix("user:") {
            return nimbus_common::paths::validate_client_name(u)
                .is_ok()
                .then(|| Scope::User(u.to_string()));
        }
        let key = text.strip_prefix("machine:")?;
        let (user, machine) = key.split_once('/')?;
        let valid = |n| nimbus_common::paths::validate_client_name(n).is_ok();
        (valid(user) && valid(machine)).then(|| Scope::Machine(key.to_string()))
    }
}

/// The policy as stored.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Policy {
    /// The fleet's target; none means the newest.
    #[serde(default)]
    pub fleet: Option<Target>,
    #[serde(default)]
    pub users: BTreeMap<String, Target>,
    #[serde(default)]
    pub machines: BTreeMap<String, Target>,
}

impl Policy {
    /// The target for a machine (`user/machine`), and where it was set.
    pub fn target_for(&self, machine: &str) -> (Target, &'static str) {
        if let Some(t) = self.machines.get(machine) {
            return (t.clone(), "machine");
        }
        let user = MachineKey::parse(machine).map(|k| k.user().to_string());
        if let Some(t) = user.and_then(|u| self.users.get(&u)) {
            return (t.clone(), "user");
        }
        (self.fleet.clone().unwrap_or(Target::Latest), "fleet")
    }
}

pub struct Updates {
    path: PathBuf,
    vault: Vault,
    policy: Mutex<Policy>,
}

impl Updates {
    /// Loads `DATA/updates.json`. A file that cannot be read is an error:
    /// starting on the default would undo the admin's pins.
    pub fn open(data: &Path, vault: Vault) -> std::io::Result<Updates> {
        let path = data.join(FILE);
        let policy = match vault.read_object(&path, Obj::Updates) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| {
                std::io::Error::other(format!("{} is not valid: {e}", path.display()))
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Policy::default(),
            Err(e) => return Err(e),
        };
        Ok(Updates {
            path,
            vault,
            policy: Mutex::new(policy),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Policy> {
        self.policy.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn policy(&self) -> Policy {
        self.lock().clone()
    }

    /// Sets (or, with `None`, clears) the target of a scope, durably
    /// before it takes effect. The fleet's cleared is the newest.
    pub fn set(&self, scope: &Scope, target: Option<Target>) -> std::io::Result<()> {
        let mut policy = self.lock();
        let mut next = policy.clone();
        match (scope, target) {
            (Scope::Fleet, t) => next.fleet = t,
            (Scope::User(u), Some(t)) => {
                next.users.insert(u.clone(), t);
            }
            (Scope::User(u), None) => {
                next.users.remove(u);
            }
            (Scope::Machine(m), Some(t)) => {
                next.machines.insert(m.clone(), t);
            }
            (Scope::Machine(m), None) => {
                next.machines.remove(m);
            }
        }
        self.vault
            .write_atomic(&self.path, Obj::Updates, true, |w| {
                serde_json::to_writer_pretty(&mut *w, &next).map_err(std::io::Error::other)
            })?;
        *policy = next;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_most_specific_setting_wins_and_survives_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let u = Updates::open(dir.path(), Vault::plain()).unwrap();
        assert_eq!(u.policy().target_for("ann/laptop").0, Target::Latest);
        u.set(&Scope::Fleet, Some(Target::Version("0.1.0".into())))
            .unwrap();
        u.set(&Scope::User("ann".into()), Some(Target::Hold))
            .unwrap();
        u.set(&Scope::Machine("ann/pc".into()), Some(Target::Latest))
            .unwrap();
        let u = Updates::open(dir.path(), Vault::plain()).unwrap();
        let p = u.policy();
        assert_eq!(p.target_for("ann/pc"), (Target::Latest, "machine"));
        assert_eq!(p.target_for("ann/laptop"), (Target::Hold, "user"));
        assert_eq!(
            p.target_for("bob/pc"),
            (Target::Version("0.1.0".into()), "fleet")
        );
        u.set(&Scope::User("ann".into()), None).unwrap();
        assert_eq!(u.policy().target_for("ann/laptop").1, "fleet");
        assert_eq!(Target::parse("../x"), None);
        assert_eq!(Scope::parse("machine:../x"), None);
        assert_eq!(Scope::parse("user:ann"), Some(Scope::User("ann".into())));
        std::fs::write(dir.path().join(FILE), b"{not json").unwrap();
        assert!(Updates::open(dir.path(), Vault::plain()).is_err());
    }
}
