//! Whose data a request touches, as typed values. The catalog keys a
//! machine's files by `user/machine`; this module is the only place that
//! spells that key or splits it, so a user's space is never a string
//! prefix that `alice/pc` would share with `alice/pc2`.

use std::fmt;

/// One user's part of the catalog: all of the user's machines.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct UserSpace {
    /// `user/`, the catalog prefix of every machine of the user.
    prefix: String,
}

impl UserSpace {
    pub fn of(user: &str) -> UserSpace {
        UserSpace {
            prefix: format!("{user}/"),
        }
    }

    /// The catalog prefix of the user's machines (for listing queries).
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// One machine of this user.
    pub fn machine(&self, machine: &str) -> MachineKey {
        MachineKey {
            key: format!("{}{machine}", self.prefix),
            split: self.prefix.len() - 1,
        }
    }

    /// The machine part of a catalog key, when the key is in this space.
    pub fn machine_of<'a>(&self, key: &'a str) -> Option<&'a str> {
        key.strip_prefix(&self.prefix)
    }
}

/// One machine in one user's space: the catalog key `user/machine`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MachineKey {
    key: String,
    /// Where the `/` between user and machine is.
    split: usize,
}

impl MachineKey {
    pub fn new(user: &str, machine: &str) -> MachineKey {
        UserSpace::of(user).machine(machine)
    }

    /// A catalog key read back (from the catalog or a stored upload);
    /// `None` for a key from before accounts, which has no user part.
    pub fn parse(key: &str) -> Option<MachineKey> {
        let split = key.find('/')?;
        Some(MachineKey {
            key: key.to_string(),
            split,
        })
    }

    /// The catalog key, `user/machine`.
    pub fn as_str(&self) -> &str {
        &self.key
    }

    pub fn user(&self) -> &str {
        &self.key[..self.split]
    }

    pub fn machine(&self) -> &str {
        &self.key[self.split + 1..]
    }
}

/// The catalog's own functions take the key as text.
impl std::ops::Deref for MachineKey {
    type Target = str;
    fn deref(&self) -> &str {
        &self.key
    }
}

impl fmt::Display for MachineKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.key)
    }
}

/// The user part of a catalog key; a key from before accounts (`machine`)
/// is its own owner until adopted.
pub fn owner_of(key: &str) -> &str {
    key.split_once('/').map_or(key, |(user, _)| user)
}

/// (user, machine) of a catalog key; a key from before accounts has no
/// user part ("") and is its own machine.
pub fn split_key(key: &str) -> (&str, &str) {
    key.split_once('/').unwrap_or(("", key))
}

/// One file of one machine: what a file route is about, resolved once.
#[derive(Debug, Clone)]
pub struct FileTarget {
    pub machine: MachineKey,
    /// The file's path in the backed-up folder (`/`-separated).
    pub path: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_spelled_and_split_in_one_place() {
        let alice = UserSpace::of("alice");
        let pc = alice.machine("pc");
        assert_eq!(pc.as_str(), "alice/pc");
        assert_eq!((pc.user(), pc.machine()), ("alice", "pc"));
        assert_eq!(MachineKey::parse("alice/pc"), Some(pc.clone()));
        assert_eq!(MachineKey::new("alice", "pc"), pc);
        assert_eq!(alice.machine_of("alice/pc2"), Some("pc2"));
        assert_eq!(alice.machine_of("bob/pc"), None);
        assert_eq!(MachineKey::parse("legacy"), None);
        assert_eq!(owner_of("alice/pc"), "alice");
        assert_eq!(owner_of("legacy"), "legacy");
        assert_eq!(split_key("alice/pc"), ("alice", "pc"));
        assert_eq!(split_key("legacy"), ("", "legacy"));
    }
}
