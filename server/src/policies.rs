//! The backup policy the server gives its clients: settings for the whole
//! fleet (the admin's defaults, some of which the admin may lock), for a
//! user's machines, and for one machine. The most specific layer that sets
//! a field wins, except that a locked field is always the fleet's, and
//! exclusions add up from every layer.
//!
//! Kept in `DATA/policy.json`, rewritten atomically (and synced) under an
//! exclusive lock on `DATA/policy.lock`, so `nimbus-server policy` may
//! change it while a server runs: the server re-reads it when it changes
//! on disk. A missing file is the default policy (the default exclusions,
//! nothing else set).

use crate::accounts::FileLock;
use crate::space::MachineKey;
use crate::updates::Scope;
use crate::vault::{Obj, Vault};
use nimbus_common::policy::{self, Effective, Settings, FIELDS};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::fs::OpenOptions;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

const FILE: &str = "policy.json";
const LOCK: &str = "policy.lock";

/// The policy as stored: every layer.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Stored {
    #[serde(default)]
    pub fleet: Settings,
    /// Fields users and machines may not change (nor a client's flags).
    #[serde(default)]
    pub locked: BTreeSet<String>,
    #[serde(default)]
    pub users: BTreeMap<String, Settings>,
    /// By `user/machine`.
    #[serde(default)]
    pub machines: BTreeMap<String, Settings>,
    /// Reported errors that do not count against a machine's status.
    #[serde(default)]
    pub ignored_errors: Vec<IgnoreRule>,
}

/// Reported errors to ignore: by path pattern, and optionally by message,
/// for one machine or every machine.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IgnoreRule {
    /// `user/machine`; none for every machine.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub machine: Option<String>,
    /// Over the whole path: `*` is any run of characters (`/` too), `?`
    /// one character; e.g. `*.ost`.
    pub path: String,
    /// Only errors whose message contains this.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

impl IgnoreRule {
    /// Names the rule (to remove it): from its content.
    pub fn id(&self) -> String {
        let json = serde_json::to_vec(self).expect("serialisable");
        nimbus_common::hash::ContentHash::of_bytes(&json).to_hex()[..12].to_string()
    }

    pub fn matches(&self, machine: &str, p: &nimbus_common::wire::Problem) -> bool {
        self.machine.as_deref().is_none_or(|m| m == machine)
            && wildcard(&self.path, &p.path)
            && self
                .message
                .as_deref()
                .is_none_or(|m| p.message.contains(m))
    }

    fn validate(&self) -> Result<(), String> {
        let line = |name: &str, v: &str| {
            if v.is_empty() || v.len() > 1000 || v.chars().any(char::is_control) {
                Err(format!("{name} must be one line of at most 1000 bytes"))
            } else {
                Ok(())
            }
        };
        line("path", &self.path)?;
        if let Some(m) = &self.message {
            line("message", m)?;
        }
        if let Some(m) = &self.machine {
            if Scope::parse(&format!("machine:{m}")).is_none() {
                return Err(format!("{m:?} is not USER/MACHINE"));
            }
        }
        Ok(())
    }
}

/// `*` any run of characters, `?` one; everything else itself.
fn wildcard(pattern: &str, text: &str) -> bool {
    let (p, t): (Vec<char>, Vec<char>) = (pattern.chars().collect(), text.chars().collect());
    let (mut i, mut j) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while j < t.len() {
        if i < p.len() && (p[i] == '?' || p[i] == t[j]) {
            i += 1;
            j += 1;
        } else if i < p.len() && p[i] == '*' {
            star = Some((i, j));
            i += 1;
        } else if let Some((si, sj)) = star {
            i = si + 1;
            j = sj + 1;
            star = Some((si, sj + 1));
        } else {
            return false;
        }
    }
    p[i..].iter().all(|&c| c == '*')
}

#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    NotYours(String),
    #[error("{field} is locked by the admin")]
    Locked { field: String },
    #[error("cannot read or write the policy: {0}")]
    Io(#[from] io::Error),
}

impl Stored {
    /// The fleet's settings with the defaults filled in where it sets none.
    pub fn fleet_with_defaults(&self) -> Settings {
        let mut f = self.fleet.clone();
        if f.excludes.is_none() {
            f.excludes = Some(policy::default_excludes());
        }
        if f.os_excludes.is_none() {
            f.os_excludes = Some(policy::default_os_excludes());
        }
        f
    }

    /// Whether a problem `machine` reported is ignored.
    pub fn ignored(&self, machine: &str, p: &nimbus_common::wire::Problem) -> bool {
        self.ignored_errors.iter().any(|r| r.matches(machine, p))
    }

    pub fn layer(&self, scope: &Scope) -> Settings {
        match scope {
            Scope::Fleet => self.fleet.clone(),
            Scope::User(u) => self.users.get(u).cloned().unwrap_or_default(),
            Scope::Machine(m) => self.machines.get(m).cloned().unwrap_or_default(),
        }
    }

    /// What `machine` (`user/machine`) applies.
    pub fn effective(&self, machine: &str) -> Effective {
        let fleet = self.fleet_with_defaults();
        let user = MachineKey::parse(machine)
            .and_then(|k| self.users.get(k.user()))
            .cloned()
            .unwrap_or_default();
        let mine = self.machines.get(machine).cloned().unwrap_or_default();
        // Most specific first; a locked field only from the fleet.
        let layers: [&Settings; 3] = [&mine, &user, &fleet];
        let pick = |field: &str| -> Settings {
            let mut out = Settings::default();
            let from = if self.locked.contains(field) {
                Some(&fleet)
            } else {
                layers.iter().copied().find(|l| l.has(field))
            };
            if let Some(l) = from {
                out.take_field(l, field);
            }
            out
        };
        let mut e = Effective {
            folders: pick("folders").folders.unwrap_or_default(),
            interval: pick("interval").interval,
            settle: pick("settle").settle,
            max_file_size: pick("max_file_size").max_file_size,
            windows: pick("windows").windows.unwrap_or_default(),
            upload_limit: pick("upload_limit").upload_limit,
            limits: pick("limits").limits.unwrap_or_default(),
            locked: self.locked.iter().cloned().collect(),
            ..Effective::default()
        };
        // Exclusions add up, the fleet's first.
        let added: Vec<&Settings> = if self.locked.contains("excludes") {
            vec![&fleet]
        } else {
            vec![&fleet, &user, &mine]
        };
        for l in &added {
            for p in l.excludes.iter().flatten() {
                if !e.excludes.contains(p) {
                    e.excludes.push(p.clone());
                }
            }
        }
        let added: Vec<&Settings> = if self.locked.contains("os_excludes") {
            vec![&fleet]
        } else {
            vec![&fleet, &user, &mine]
        };
        for l in &added {
            for (os, list) in l.os_excludes.iter().flatten() {
                let to = e.os_excludes.entry(os.clone()).or_default();
                for p in list {
                    if !to.contains(p) {
                        to.push(p.clone());
                    }
                }
            }
        }
        e.stamp()
    }
}

/// Who is changing the policy: the admin may change any layer and the
/// locks; a user only their own machines' and user layer, and no locked
/// field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Editor<'a> {
    Admin,
    User(&'a str),
}

pub struct Policies {
    dir: PathBuf,
    vault: Vault,
    cached: RwLock<(Option<Stamp>, Arc<Stored>)>,
}

type Stamp = (Option<std::time::SystemTime>, u64, u64);

impl Policies {
    /// Opens the policy of a data directory; a file that cannot be read is
    /// an error (starting on the default would undo the admin's locks).
    pub fn open(data: &Path, vault: Vault) -> Result<Policies, PolicyError> {
        let p = Policies {
            dir: data.to_path_buf(),
            vault,
            cached: RwLock::new((None, Arc::new(Stored::default()))),
        };
        p.current()?;
        Ok(p)
    }

    fn stamp(&self) -> Option<Stamp> {
        let m = std::fs::metadata(self.dir.join(FILE)).ok()?;
        #[cfg(unix)]
        let ino = std::os::unix::fs::MetadataExt::ino(&m);
        #[cfg(not(unix))]
        let ino = 0;
        Some((m.modified().ok(), m.len(), ino))
    }

    fn load(&self) -> Result<Stored, PolicyError> {
        let path = self.dir.join(FILE);
        match self.vault.read_object(&path, Obj::Policy) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map_err(|e| PolicyError::Invalid(format!("{FILE} is not a valid policy: {e}"))),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Stored::default()),
            Err(e) => Err(PolicyError::Io(e)),
        }
    }

    /// The policy as it is on disk now (re-read when it changed).
    pub fn current(&self) -> Result<Arc<Stored>, PolicyError> {
        let stamp = self.stamp();
        {
            let c = self.cached.read().unwrap_or_else(|e| e.into_inner());
            if c.0.is_some() && c.0 == stamp {
                return Ok(c.1.clone());
            }
        }
        let fresh = Arc::new(self.load()?);
        *self.cached.write().unwrap_or_else(|e| e.into_inner()) = (stamp, fresh.clone());
        Ok(fresh)
    }

    /// Changes the policy under the lock and writes it durably before it
    /// takes effect; `change` sees what is on disk now. Nothing is written
    /// when it fails or the result does not validate.
    pub fn update(
        &self,
        change: impl FnOnce(&mut Stored) -> Result<(), PolicyError>,
    ) -> Result<Arc<Stored>, PolicyError> {
        let lock = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(self.dir.join(LOCK))?;
        let _guard = FileLock::exclusive(&lock)?;
        let mut next = self.load()?;
        change(&mut next)?;
        next.fleet.validate().map_err(PolicyError::Invalid)?;
        for s in next.users.values().chain(next.machines.values()) {
            s.validate().map_err(PolicyError::Invalid)?;
        }
        self.vault
            .write_atomic(&self.dir.join(FILE), Obj::Policy, true, |w| {
                serde_json::to_writer_pretty(&mut *w, &next).map_err(io::Error::other)
            })?;
        let stamp = self.stamp();
        let next = Arc::new(next);
        *self.cached.write().unwrap_or_else(|e| e.into_inner()) = (stamp, next.clone());
        Ok(next)
    }

    /// Replaces the settings of `scope` by `editor` (see [`Editor`]).
    pub fn set_layer(
        &self,
        editor: Editor,
        scope: &Scope,
        settings: Settings,
    ) -> Result<Arc<Stored>, PolicyError> {
        settings.validate().map_err(PolicyError::Invalid)?;
        self.update(|s| {
            if let Editor::User(me) = editor {
                check_own(me, scope)?;
                let before = s.layer(scope);
                for f in FIELDS {
                    let changed = before.has(f) != settings.has(f) || {
                        let (mut a, mut b) = (Settings::default(), Settings::default());
                        a.take_field(&before, f);
                        b.take_field(&settings, f);
                        a != b
                    };
                    if changed && s.locked.contains(f) {
                        return Err(PolicyError::Locked {
                            field: f.to_string(),
                        });
                    }
                }
            }
            match scope {
                Scope::Fleet => s.fleet = settings,
                Scope::User(u) if settings == Settings::default() => {
                    s.users.remove(u);
                }
                Scope::User(u) => {
                    s.users.insert(u.clone(), settings);
                }
                Scope::Machine(m) if settings == Settings::default() => {
                    s.machines.remove(m);
                }
                Scope::Machine(m) => {
                    s.machines.insert(m.clone(), settings);
                }
            }
            Ok(())
        })
    }

    /// Adds a rule: the admin any, a user only for their own machines.
    pub fn add_ignore(&self, editor: Editor, rule: IgnoreRule) -> Result<Arc<Stored>, PolicyError> {
        rule.validate().map_err(PolicyError::Invalid)?;
        may_ignore(editor, &rule)?;
        self.update(|s| {
            if s.ignored_errors.len() >= 1000 {
                return Err(PolicyError::Invalid("at most 1000 ignore rules".into()));
            }
            if !s.ignored_errors.contains(&rule) {
                s.ignored_errors.push(rule);
            }
            Ok(())
        })
    }

    /// Removes the rule named `id` (see [`IgnoreRule::id`]); false when
    /// there is none.
    pub fn remove_ignore(&self, editor: Editor, id: &str) -> Result<bool, PolicyError> {
        let mut found = false;
        self.update(|s| {
            if let Some(i) = s.ignored_errors.iter().position(|r| r.id() == id) {
                may_ignore(editor, &s.ignored_errors[i])?;
                s.ignored_errors.remove(i);
                found = true;
            }
            Ok(())
        })?;
        Ok(found)
    }

    /// Sets the locked fields (the admin's).
    pub fn set_locked(&self, locked: BTreeSet<String>) -> Result<Arc<Stored>, PolicyError> {
        if let Some(f) = locked.iter().find(|f| !FIELDS.contains(&f.as_str())) {
            return Err(PolicyError::Invalid(format!(
                "{f:?} is not a setting (one of {})",
                FIELDS.join(", ")
            )));
        }
        self.update(|s| {
            s.locked = locked;
            Ok(())
        })
    }
}

/// Whether `scope` is one of `user`'s own: their user layer or one of
/// their machines' (the fleet's is the admin's).
pub fn owns(user: &str, scope: &Scope) -> bool {
    match scope {
        Scope::Fleet => false,
        Scope::User(u) => u == user,
        Scope::Machine(m) => MachineKey::parse(m).is_some_and(|k| k.user() == user),
    }
}

/// A user adds and removes rules for their own machines only.
fn may_ignore(editor: Editor, rule: &IgnoreRule) -> Result<(), PolicyError> {
    match (editor, &rule.machine) {
        (Editor::Admin, _) => Ok(()),
        (Editor::User(me), Some(m)) if owns(me, &Scope::Machine(m.clone())) => Ok(()),
        _ => Err(PolicyError::NotYours(
            "only the admin ignores errors of every machine or of another user's".into(),
        )),
    }
}

fn check_own(me: &str, scope: &Scope) -> Result<(), PolicyError> {
    if owns(me, scope) {
        Ok(())
    } else {
        Err(PolicyError::NotYours(
            "only the admin changes the policy of the fleet or of another user's machines".into(),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(json: &str) -> Settings {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn ignore_rules_match_paths_and_messages() {
        assert!(wildcard("*.ost", "mail/Outlook.ost"));
        assert!(wildcard("a?c", "abc") && !wildcard("a?c", "abbc"));
        assert!(wildcard("*", "") && !wildcard("*.ost", "a.ost.bak"));
        assert!(wildcard("*cache*/*.tmp", "x/cache1/y.tmp"));
        let p = |path: &str, message: &str| nimbus_common::wire::Problem {
            path: path.into(),
            message: message.into(),
        };
        let rule = IgnoreRule {
            machine: Some("ann/pc".into()),
            path: "*.ost".into(),
            message: Some("used by another process".into()),
        };
        assert!(rule.matches("ann/pc", &p("o.ost", "it is used by another process")));
        assert!(!rule.matches("bob/pc", &p("o.ost", "it is used by another process")));
        assert!(!rule.matches("ann/pc", &p("o.ost", "permission denied")));
        let dir = tempfile::tempdir().unwrap();
        let policies = Policies::open(dir.path(), Vault::plain()).unwrap();
        assert!(policies
            .add_ignore(
                Editor::User("bob"),
                IgnoreRule {
                    machine: None,
                    ..rule.clone()
                }
            )
            .is_err());
        policies
            .add_ignore(Editor::User("ann"), rule.clone())
            .unwrap();
        assert!(!policies.remove_ignore(Editor::Admin, "nosuchid").unwrap());
        assert!(policies
            .remove_ignore(Editor::User("bob"), &rule.id())
            .is_err());
        assert!(policies
            .remove_ignore(Editor::User("ann"), &rule.id())
            .unwrap());
    }

    #[test]
    fn layers_resolve_most_specific_first_and_locks_hold() {
        let dir = tempfile::tempdir().unwrap();
        let p = Policies::open(dir.path(), Vault::plain()).unwrap();
        let e = p.current().unwrap().effective("ann/pc");
        assert!(e.excludes.contains(&"node_modules/".to_string()));
        assert!(e.os_excludes["windows"].contains(&"$RECYCLE.BIN/".to_string()));
        p.set_layer(
            Editor::Admin,
            &Scope::Fleet,
            settings(r#"{"interval": 30, "excludes": ["*.iso"], "upload_limit": 1000}"#),
        )
        .unwrap();
        p.set_layer(
            Editor::User("ann"),
            &Scope::Machine("ann/pc".into()),
            settings(r#"{"interval": 5, "excludes": ["*.ost"]}"#),
        )
        .unwrap();
        let p = Policies::open(dir.path(), Vault::plain()).unwrap();
        let e = p.current().unwrap().effective("ann/pc");
        assert_eq!(e.interval, Some(5.0));
        assert_eq!(e.excludes, ["*.iso", "*.ost"]);
        assert_eq!(e.upload_limit, Some(1000));
        assert_eq!(
            p.current().unwrap().effective("bob/pc").interval,
            Some(30.0)
        );
        let before = e.version.clone();
        p.set_locked(["interval".to_string()].into()).unwrap();
        let e = p.current().unwrap().effective("ann/pc");
        assert_eq!(e.interval, Some(30.0), "locked: the fleet's");
        assert_ne!(e.version, before);
        // A user cannot change a locked field, nor another's machine.
        let err = p
            .set_layer(
                Editor::User("ann"),
                &Scope::Machine("ann/pc".into()),
                settings(r#"{"interval": 1, "excludes": ["*.ost"]}"#),
            )
            .unwrap_err();
        assert!(matches!(err, PolicyError::Locked { .. }), "{err}");
        assert!(p
            .set_layer(
                Editor::User("ann"),
                &Scope::Machine("bob/pc".into()),
                Settings::default()
            )
            .is_err());
        // ... but may change what is not locked.
        p.set_layer(
            Editor::User("ann"),
            &Scope::Machine("ann/pc".into()),
            settings(r#"{"interval": 5, "excludes": []}"#),
        )
        .unwrap();
        assert_eq!(p.current().unwrap().effective("ann/pc").excludes, ["*.iso"]);
        assert!(p.set_locked(["colour".to_string()].into()).is_err());
    }
}
