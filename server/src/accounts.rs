//! Accounts: the users of a server (name, role, Argon2id password hash,
//! disabled or not).
//!
//! They live in `DATA/accounts.json`, rewritten atomically (temp file, fsync,
//! rename, directory fsync) while an exclusive `flock` on `DATA/accounts.lock`
//! is held, so `nimbus-server user ...` can change accounts from the shell
//! while a server runs on the same directory without either losing the
//! other's change. Readers need no lock: a rename is atomic. Passwords are
//! never stored, logged or echoed; only their Argon2id hashes are kept.

use crate::vault::{Obj, Vault};
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use nimbus_common::durable;
use nimbus_common::time::unix_now;
use rand_core::{OsRng, RngCore};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io;
use std::path::{Path, PathBuf};

mod enrollment;
pub use enrollment::{normalise_code, Enrollment, ENROLLMENT_TTL};

const FILE: &str = "accounts.json";
const LOCK: &str = "accounts.lock";
const FORMAT: u32 = 1;
/// Shortest password accepted.
pub const MIN_PASSWORD: usize = 8;
/// Longest password accepted (bytes); hashing cost must stay bounded.
pub const MAX_PASSWORD: usize = 1024;
/// Longest user name accepted.
pub const MAX_NAME: usize = 64;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Admin,
    User,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct User {
    pub role: Role,
    /// PHC string of the Argon2id hash.
    password: String,
    #[serde(default)]
    pub disabled: bool,
    pub created_at: i64,
}

/// A machine registered under a user by `nimbus-client login`. Only the
/// BLAKE3 hash of its token is stored.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Device {
    pub id: String,
    pub user: String,
    pub machine: String,
    token_hash: String,
    pub created_at: i64,
    #[serde(default)]
    pub revoked: bool,
}

/// A single-use invitation to create an account from the browser, made by
/// an admin. Only the BLAKE3 hash of its secret is stored.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Invite {
    pub id: String,
    token_hash: String,
    pub created_by: String,
    pub created_at: i64,
    pub expires_at: i64,
    /// The account made with it; an invite serves once.
    #[serde(default)]
    pub used_by: Option<String>,
    #[serde(default)]
    pub revoked: bool,
}

impl Invite {
    /// Neither used, revoked nor expired.
    pub fn is_open(&self, now: i64) -> bool {
        self.used_by.is_none() && !self.revoked && now < self.expires_at
    }
}

/// How long spent invites stay listed before they are forgotten.
const INVITE_MEMORY: i64 = 30 * 24 * 3600;

#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Accounts {
    format: u32,
    pub users: BTreeMap<String, User>,
    #[serde(default)]
    pub devices: Vec<Device>,
    #[serde(default)]
    pub invites: Vec<Invite>,
    /// Codes that enroll a machine without its owner's password.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub enrollments: Vec<Enrollment>,
    /// Names of removed accounts whose machines' backups remain, with the
    /// time of removal: no new account may take such a name, so that
    /// nobody inherits another person's data through it (the catalog is
    /// keyed by the name). `user remove NAME --delete-data` frees it.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub reserved: BTreeMap<String, i64>,
}

/// Who a valid token belongs to.
#[derive(Debug, Clone)]
pub struct Principal {
    pub user: String,
    pub role: Role,
    pub device: Device,
}

#[derive(Debug, thiserror::Error)]
pub enum AccountError {
    #[error("user names are 1 to {MAX_NAME} letters, digits, '.', '_' or '-', not starting with '.' or '-'")]
    BadName,
    #[error("passwords must be {MIN_PASSWORD} to {MAX_PASSWORD} bytes")]
    BadPassword,
    #[error("user {0:?} already exists")]
    Exists(String),
    #[error(
        "the name {0:?} belonged to a removed account whose backups remain; choose another \
         name, or delete those backups with `nimbus-server user remove {0} --delete-data` \
         (server stopped)"
    )]
    Reserved(String),
    #[error("no user {0:?}")]
    NoSuchUser(String),
    #[error("{0:?} is the last enabled admin; add or enable another admin first")]
    LastAdmin(String),
    #[error("the accounts file {path} is not valid ({source}); restore it from a copy")]
    Corrupt {
        path: PathBuf,
        source: serde_json::Error,
    },
    #[error("cannot use the accounts in {dir}: {source}")]
    Io { dir: PathBuf, source: io::Error },
    #[error("no device {0:?}")]
    NoSuchDevice(String),
    #[error("password hashing failed: {0}")]
    Hash(String),
    #[error("this invite link is not valid: it was used, revoked or has expired; ask the admin for a new one")]
    InviteInvalid,
    #[error("no invite {0:?}")]
    NoSuchInvite(String),
    #[error("this enrollment code is not valid: it was used, withdrawn, has expired (codes last 24 hours) or was mistyped; make a new one on the server's page (Add a machine)")]
    EnrollmentInvalid,
    #[error("no open enrollment code {0:?}")]
    NoSuchEnrollment(String),
    #[error("too many open enrollment codes; withdraw some or let them expire")]
    TooManyEnrollments,
}

/// The accounts of one data directory.
pub struct AccountStore {
    dir: PathBuf,
    /// Encrypted data directories seal the accounts too: device tokens
    /// name machines, and user names are names.
    vault: Vault,
}

impl AccountStore {
    pub fn open(data_dir: &Path, vault: Vault) -> Result<AccountStore, AccountError> {
        fs::create_dir_all(data_dir).map_err(|source| AccountError::Io {
            dir: data_dir.to_path_buf(),
            source,
        })?;
        Ok(AccountStore {
            dir: data_dir.to_path_buf(),
            vault,
        })
    }

    fn io(&self, source: io::Error) -> AccountError {
        AccountError::Io {
            dir: self.dir.clone(),
            source,
        }
    }

    /// Identifies the file's current version (mtime, length, inode) so a
    /// reader can tell cheaply whether it changed.
    pub fn stamp(&self) -> Option<(Option<std::time::SystemTime>, u64, u64)> {
        let m = fs::metadata(self.dir.join(FILE)).ok()?;
        #[cfg(unix)]
        let ino = std::os::unix::fs::MetadataExt::ino(&m);
        #[cfg(not(unix))]
        let ino = 0;
        Some((m.modified().ok(), m.len(), ino))
    }

    /// The accounts as they are on disk now.
    pub fn load(&self) -> Result<Accounts, AccountError> {
        let path = self.dir.join(FILE);
        match self.vault.read_object(&path, Obj::Accounts) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map_err(|source| AccountError::Corrupt { path, source }),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Accounts {
                format: FORMAT,
                ..Accounts::default()
            }),
            Err(e) => Err(self.io(e)),
        }
    }

    /// Changes the accounts under the lock: `change` sees the current file
    /// and, when it returns `Ok`, its edits are written atomically.
    pub fn update<T>(
        &self,
        change: impl FnOnce(&mut Accounts) -> Result<T, AccountError>,
    ) -> Result<T, AccountError> {
        let lock = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(self.dir.join(LOCK))
            .map_err(|e| self.io(e))?;
        let _guard = FileLock::exclusive(&lock).map_err(|e| self.io(e))?;
        // Holding the lock, no one else is writing: a temp file left here is
        // from a writer killed mid-write, and goes.
        self.remove_stale_temp_files().map_err(|e| self.io(e))?;
        let mut accounts = self.load()?;
        let out = change(&mut accounts)?;
        accounts.format = FORMAT;
        // Owner-only: password and token hashes are nobody else's business.
        self.vault
            .write_atomic(&self.dir.join(FILE), Obj::Accounts, true, |w| {
                serde_json::to_writer_pretty(&mut *w, &accounts).map_err(io::Error::other)
            })
            .map_err(|e| self.io(e))?;
        Ok(out)
    }

    pub fn add_user(&self, name: &str, password: &str, role: Role) -> Result<(), AccountError> {
        validate_name(name)?;
        let hash = hash_password(password)?;
        self.update(|a| {
            if a.users.contains_key(name) {
                return Err(AccountError::Exists(name.to_string()));
            }
            if a.reserved.contains_key(name) {
                return Err(AccountError::Reserved(name.to_string()));
            }
            a.users.insert(
                name.to_string(),
                User {
                    role,
                    password: hash,
                    disabled: false,
                    created_at: unix_now(),
                },
            );
            Ok(())
        })
    }

    fn remove_stale_temp_files(&self) -> io::Result<()> {
        let prefix = format!(".{FILE}.");
        for entry in fs::read_dir(&self.dir)? {
            let name = entry?.file_name();
            let name = name.to_string_lossy();
            if name.starts_with(&prefix) && name.ends_with(durable::TEMP_SUFFIX) {
                fs::remove_file(self.dir.join(&*name))?;
            }
        }
        Ok(())
    }

    /// At first start, when no account exists: creates `admin` with a
    /// random password and returns it (to be shown once). None otherwise.
    pub fn ensure_first_admin(&self) -> Result<Option<String>, AccountError> {
        if !self.load()?.users.is_empty() {
            return Ok(None);
        }
        let password = random_password();
        let hash = hash_password(&password)?;
        self.update(|a| {
            if !a.users.is_empty() {
                return Ok(None);
            }
            a.users.insert(
                "admin".to_string(),
                User {
                    role: Role::Admin,
                    password: hash,
                    disabled: false,
                    created_at: unix_now(),
                },
            );
            Ok(Some(password))
        })
    }

    pub fn set_password(&self, name: &str, password: &str) -> Result<(), AccountError> {
        let hash = hash_password(password)?;
        self.update(|a| {
            let u = a
                .users
                .get_mut(name)
                .ok_or_else(|| AccountError::NoSuchUser(name.to_string()))?;
            u.password = hash;
            Ok(())
        })
    }

    pub fn remove_user(&self, name: &str) -> Result<(), AccountError> {
        self.update(|a| {
            let user = a
                .users
                .get(name)
                .ok_or_else(|| AccountError::NoSuchUser(name.to_string()))?;
            if is_last_admin(a, name, user) {
                return Err(AccountError::LastAdmin(name.to_string()));
            }
            a.users.remove(name);
            // Reserved until its data is known to be gone (`release_name`,
            // or the server's start finds none).
            a.reserved.insert(name.to_string(), unix_now());
            for d in a.devices.iter_mut().filter(|d| d.user == name) {
                d.revoked = true;
            }
            Ok(())
        })
    }

    /// Frees the name of a removed account once its data is deleted.
    pub fn release_name(&self, name: &str) -> Result<bool, AccountError> {
        self.update(|a| Ok(a.reserved.remove(name).is_some()))
    }

    /// Makes the reserved names match the data: a name that owns machines
    /// in the catalog but no account is reserved (an account removed before
    /// names were reserved); a reserved name that owns no data any more is
    /// freed. Returns (reserved, freed).
    pub fn reconcile_reserved(
        &self,
        owners: &std::collections::BTreeSet<String>,
    ) -> Result<(Vec<String>, Vec<String>), AccountError> {
        if self.load()?.users.is_empty() {
            return Ok((Vec::new(), Vec::new()));
        }
        self.update(|a| {
            let now = unix_now();
            let added: Vec<String> = owners
                .iter()
                .filter(|o| !a.users.contains_key(*o) && !a.reserved.contains_key(*o))
                .cloned()
                .collect();
            for o in &added {
                a.reserved.insert(o.clone(), now);
            }
            let freed: Vec<String> = a
                .reserved
                .keys()
                .filter(|r| !owners.contains(*r))
                .cloned()
                .collect();
            for r in &freed {
                a.reserved.remove(r);
            }
            Ok((added, freed))
        })
    }

    pub fn set_disabled(&self, name: &str, disabled: bool) -> Result<(), AccountError> {
        self.update(|a| {
            let user = a
                .users
                .get(name)
                .ok_or_else(|| AccountError::NoSuchUser(name.to_string()))?;
            if disabled && is_last_admin(a, name, user) {
                return Err(AccountError::LastAdmin(name.to_string()));
            }
            a.users.get_mut(name).expect("checked above").disabled = disabled;
            Ok(())
        })
    }

    /// Registers `machine` under `user` and returns the device and its new
    /// token. A device of the same user and machine is revoked: logging in
    /// again replaces the old token.
    pub fn register_device(
        &self,
        user: &str,
        machine: &str,
    ) -> Result<(Device, String), AccountError> {
        self.update(|a| {
            if !a.users.contains_key(user) {
                return Err(AccountError::NoSuchUser(user.to_string()));
            }
            Ok(new_device(a, user, machine))
        })
    }

    /// Revokes one of `user`'s devices.
    pub fn revoke_device(&self, user: &str, id: &str) -> Result<(), AccountError> {
        self.update(|a| {
            let d = a
                .devices
                .iter_mut()
                .find(|d| d.user == user && d.id == id)
                .ok_or_else(|| AccountError::NoSuchDevice(id.to_string()))?;
            d.revoked = true;
            Ok(())
        })
    }

    /// Makes a single-use invite valid for `ttl` seconds; returns it and
    /// its secret (shown once, in the link). Spent invites older than 30
    /// days are forgotten.
    pub fn create_invite(&self, by: &str, ttl: i64) -> Result<(Invite, String), AccountError> {
        let secret = random_secret();
        let now = unix_now();
        let invite = Invite {
            id: random_hex(6),
            token_hash: token_hash(&secret),
            created_by: by.to_string(),
            created_at: now,
            expires_at: now.saturating_add(ttl),
            used_by: None,
            revoked: false,
        };
        self.update(|a| {
            a.invites
                .retain(|i| i.is_open(now) || now - i.created_at < INVITE_MEMORY);
            a.invites.push(invite.clone());
            Ok(())
        })?;
        Ok((invite, secret))
    }

    /// Withdraws an invite that has not been used.
    pub fn revoke_invite(&self, id: &str) -> Result<(), AccountError> {
        self.update(|a| {
            let i = a
                .invites
                .iter_mut()
                .find(|i| i.id == id && i.used_by.is_none())
                .ok_or_else(|| AccountError::NoSuchInvite(id.to_string()))?;
            i.revoked = true;
            Ok(())
        })
    }

    /// Creates a (non-admin) account from the browser. With `invite`, the
    /// invite must be open, and is spent in the same atomic write that adds
    /// the account: two people racing with one link get one account.
    pub fn register(
        &self,
        name: &str,
        password: &str,
        invite: Option<&str>,
    ) -> Result<(), AccountError> {
        validate_name(name)?;
        let hash = hash_password(password)?;
        let wanted = invite.map(token_hash);
        self.update(|a| {
            let now = unix_now();
            let invite = match &wanted {
                Some(h) => Some(
                    a.invites
                        .iter()
                        .position(|i| &i.token_hash == h && i.is_open(now))
                        .ok_or(AccountError::InviteInvalid)?,
                ),
                None => None,
            };
            if a.users.contains_key(name) {
                return Err(AccountError::Exists(name.to_string()));
            }
            if a.reserved.contains_key(name) {
                return Err(AccountError::Reserved(name.to_string()));
            }
            a.users.insert(
                name.to_string(),
                User {
                    role: Role::User,
                    password: hash,
                    disabled: false,
                    created_at: now,
                },
            );
            if let Some(i) = invite {
                a.invites[i].used_by = Some(name.to_string());
            }
            Ok(())
        })
    }

    /// Checks a name and password. Unknown users cost as much time as known
    /// ones, so timing does not tell which names exist.
    pub fn verify(
        &self,
        name: &str,
        password: &str,
    ) -> Result<Option<(String, User)>, AccountError> {
        let accounts = self.load()?;
        match accounts.users.get(name) {
            Some(u) if check_password(&u.password, password) && !u.disabled => {
                Ok(Some((name.to_string(), u.clone())))
            }
            Some(_) => Ok(None),
            None => {
                let _ = check_password(dummy_hash(), password);
                Ok(None)
            }
        }
    }
}

impl Accounts {
    /// The open invite with this secret, if any.
    pub fn open_invite(&self, secret: &str) -> Option<&Invite> {
        if secret.len() > 256 {
            return None;
        }
        let h = token_hash(secret);
        let now = unix_now();
        self.invites
            .iter()
            .find(|i| i.token_hash == h && i.is_open(now))
    }

    /// The oldest enabled admin: owner of data from before accounts.
    pub fn first_admin(&self) -> Option<String> {
        self.users
            .iter()
            .filter(|(_, u)| u.role == Role::Admin && !u.disabled)
            .min_by_key(|(name, u)| (u.created_at, (*name).clone()))
            .map(|(name, _)| name.clone())
    }

    /// The user and device a bearer token stands for, if it is valid: known,
    /// not revoked, and its user exists and is enabled.
    pub fn authenticate(&self, token: &str) -> Option<Principal> {
        if token.len() > 256 {
            return None;
        }
        let hash = token_hash(token);
        let device = self
            .devices
            .iter()
            .find(|d| !d.revoked && d.token_hash == hash)?;
        let user = self.users.get(&device.user).filter(|u| !u.disabled)?;
        Some(Principal {
            user: device.user.clone(),
            role: user.role,
            device: device.clone(),
        })
    }
}

/// Adds a device for `user`'s `machine` with a new token, revoking the
/// machine's earlier devices (its new login replaces the old token).
fn new_device(a: &mut Accounts, user: &str, machine: &str) -> (Device, String) {
    let token = random_token();
    let device = Device {
        id: random_hex(6),
        user: user.to_string(),
        machine: machine.to_string(),
        token_hash: token_hash(&token),
        created_at: unix_now(),
        revoked: false,
    };
    for d in a
        .devices
        .iter_mut()
        .filter(|d| d.user == user && d.machine == machine)
    {
        d.revoked = true;
    }
    a.devices.push(device.clone());
    (device, token)
}

/// Tokens are 256 random bits; storing their BLAKE3 hash is enough (no
/// slow hash needed), and a leaked accounts file does not leak tokens.
fn token_hash(token: &str) -> String {
    nimbus_common::hash::ContentHash::of_bytes(token.as_bytes()).to_hex()
}

pub fn random_hex(bytes: usize) -> String {
    let mut b = vec![0u8; bytes];
    OsRng.fill_bytes(&mut b);
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn random_token() -> String {
    format!("nimbus_{}", random_hex(32))
}

/// 256 random bits as hex: session ids and CSRF tokens.
pub fn random_secret() -> String {
    random_hex(32)
}

fn is_last_admin(a: &Accounts, name: &str, user: &User) -> bool {
    user.role == Role::Admin
        && !user.disabled
        && !a
            .users
            .iter()
            .any(|(n, u)| n != name && u.role == Role::Admin && !u.disabled)
}

pub fn validate_name(name: &str) -> Result<(), AccountError> {
    let ok = !name.is_empty()
        && name.len() <= MAX_NAME
        && !name.starts_with(['.', '-'])
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    if ok {
        Ok(())
    } else {
        Err(AccountError::BadName)
    }
}

fn hash_password(password: &str) -> Result<String, AccountError> {
    if password.len() < MIN_PASSWORD || password.len() > MAX_PASSWORD {
        return Err(AccountError::BadPassword);
    }
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| AccountError::Hash(e.to_string()))
}

/// Argon2's verification compares in constant time.
fn check_password(phc: &str, password: &str) -> bool {
    if password.len() > MAX_PASSWORD {
        return false;
    }
    match PasswordHash::new(phc) {
        Ok(parsed) => Argon2::default()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok(),
        Err(_) => false,
    }
}

fn dummy_hash() -> &'static str {
    static DUMMY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DUMMY.get_or_init(|| hash_password("nimbus-dummy-password").expect("hashing works"))
}

/// A random password of 20 characters from an unambiguous alphabet.
pub fn random_password() -> String {
    const ALPHABET: &[u8] = b"abcdefghijkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789";
    let mut bytes = [0u8; 20];
    OsRng.fill_bytes(&mut bytes);
    bytes
        .iter()
        .map(|b| ALPHABET[*b as usize % ALPHABET.len()] as char)
        .collect()
}

/// An exclusive advisory lock on a file, released on drop.
pub(crate) struct FileLock<'a>(&'a File);

impl<'a> FileLock<'a> {
    pub(crate) fn exclusive(file: &'a File) -> io::Result<FileLock<'a>> {
        file.lock()?;
        Ok(FileLock(file))
    }
}

impl Drop for FileLock<'_> {
    fn drop(&mut self) {
        let _ = self.0.unlock();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn users_are_added_verified_and_managed() {
        let dir = tempfile::tempdir().unwrap();
        let s = AccountStore::open(dir.path(), Vault::plain()).unwrap();
        s.add_user("alice", "correct horse", Role::Admin).unwrap();
        s.add_user("bob", "battery staple", Role::User).unwrap();
        assert!(matches!(
            s.add_user("bob", "whatever12", Role::User),
            Err(AccountError::Exists(_))
        ));
        assert!(s.verify("alice", "correct horse").unwrap().is_some());
        assert!(s.verify("alice", "wrong password").unwrap().is_none());
        assert!(s.verify("nobody", "correct horse").unwrap().is_none());
        s.set_password("bob", "new password").unwrap();
        assert!(s.verify("bob", "battery staple").unwrap().is_none());
        assert!(s.verify("bob", "new password").unwrap().is_some());
        s.set_disabled("bob", true).unwrap();
        assert!(s.verify("bob", "new password").unwrap().is_none());
        assert!(matches!(
            s.remove_user("alice"),
            Err(AccountError::LastAdmin(_))
        ));
        assert!(matches!(
            s.set_disabled("alice", true),
            Err(AccountError::LastAdmin(_))
        ));
        s.remove_user("bob").unwrap();
        assert_eq!(s.load().unwrap().users.len(), 1);
        // The name of a removed account stays reserved until its data goes.
        assert!(matches!(
            s.add_user("bob", "whatever12", Role::User),
            Err(AccountError::Reserved(_))
        ));
        assert!(matches!(
            s.register("bob", "whatever12", None),
            Err(AccountError::Reserved(_))
        ));
        assert!(s.release_name("bob").unwrap());
        s.add_user("bob", "whatever12", Role::User).unwrap();
        s.remove_user("bob").unwrap();
        let owners = ["carol".to_string()].into_iter().collect();
        let (added, freed) = s.reconcile_reserved(&owners).unwrap();
        assert_eq!((added, freed), (vec!["carol".into()], vec!["bob".into()]));
        assert!(s.add_user("bob", "whatever12", Role::User).is_ok());
        // Nothing secret is stored in the clear, and the file is owner-only.
        let text = fs::read_to_string(dir.path().join(FILE)).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = fs::metadata(dir.path().join(FILE))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        assert!(!text.contains("correct horse") && text.contains("$argon2id$"));
    }

    #[test]
    fn bad_names_and_passwords_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let s = AccountStore::open(dir.path(), Vault::plain()).unwrap();
        for bad in [
            "",
            "-x",
            ".x",
            "a b",
            "a/b",
            "<script>",
            "é",
            &"a".repeat(65),
        ] {
            assert!(
                matches!(
                    s.add_user(bad, "long enough", Role::User),
                    Err(AccountError::BadName)
                ),
                "{bad:?}"
            );
        }
        assert!(matches!(
            s.add_user("carol", "short", Role::User),
            Err(AccountError::BadPassword)
        ));
        assert!(matches!(
            s.add_user("carol", &"x".repeat(MAX_PASSWORD + 1), Role::User),
            Err(AccountError::BadPassword)
        ));
        assert!(s.load().unwrap().users.is_empty());
    }

    #[test]
    fn concurrent_updates_from_two_processes_lose_nothing() {
        // Two stores on one directory stand for the server and the CLI.
        let dir = tempfile::tempdir().unwrap();
        let a = AccountStore::open(dir.path(), Vault::plain()).unwrap();
        let b = AccountStore::open(dir.path(), Vault::plain()).unwrap();
        std::thread::scope(|scope| {
            scope.spawn(|| {
                for i in 0..5 {
                    a.add_user(&format!("a{i}"), "password-a", Role::User)
                        .unwrap();
                }
            });
            scope.spawn(|| {
                for i in 0..5 {
                    b.add_user(&format!("b{i}"), "password-b", Role::User)
                        .unwrap();
                }
            });
        });
        assert_eq!(a.load().unwrap().users.len(), 10);
    }

    #[test]
    fn the_first_admin_is_created_once() {
        let dir = tempfile::tempdir().unwrap();
        let s = AccountStore::open(dir.path(), Vault::plain()).unwrap();
        let pw = s.ensure_first_admin().unwrap().unwrap();
        assert!(s.verify("admin", &pw).unwrap().is_some());
        assert_eq!(s.ensure_first_admin().unwrap(), None);
    }

    #[test]
    fn device_tokens_authenticate_until_revoked_or_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let s = AccountStore::open(dir.path(), Vault::plain()).unwrap();
        s.add_user("alice", "correct horse", Role::User).unwrap();
        let (dev, token) = s.register_device("alice", "laptop").unwrap();
        let p = s.load().unwrap().authenticate(&token).unwrap();
        assert_eq!(
            (p.user.as_str(), p.device.machine.as_str()),
            ("alice", "laptop")
        );
        assert!(s.load().unwrap().authenticate("nimbus_guess").is_none());
        let text = fs::read_to_string(dir.path().join(FILE)).unwrap();
        assert!(!text.contains(&token), "the token itself is stored");

        // Logging in again from the same machine replaces the token.
        let (_, token2) = s.register_device("alice", "laptop").unwrap();
        assert!(s.load().unwrap().authenticate(&token).is_none());
        assert!(s.load().unwrap().authenticate(&token2).is_some());
        assert!(matches!(s.revoke_device("alice", &dev.id), Ok(())));
        let id2 = s.load().unwrap().authenticate(&token2).unwrap().device.id;
        assert!(matches!(
            s.revoke_device("bob", &id2),
            Err(AccountError::NoSuchDevice(_))
        ));
        s.revoke_device("alice", &id2).unwrap();
        assert!(s.load().unwrap().authenticate(&token2).is_none());

        // A disabled user's tokens stop working; enabled again, they work.
        let (_, token3) = s.register_device("alice", "desktop").unwrap();
        s.add_user("root", "an admin pw", Role::Admin).unwrap();
        s.set_disabled("alice", true).unwrap();
        assert!(s.load().unwrap().authenticate(&token3).is_none());
        s.set_disabled("alice", false).unwrap();
        assert!(s.load().unwrap().authenticate(&token3).is_some());
        assert!(matches!(
            s.register_device("nobody", "x"),
            Err(AccountError::NoSuchUser(_))
        ));
    }

    #[test]
    fn invites_serve_once_and_expire() {
        let dir = tempfile::tempdir().unwrap();
        let store = AccountStore::open(dir.path(), Vault::plain()).unwrap();
        store.add_user("root", "password1", Role::Admin).unwrap();
        let (invite, secret) = store.create_invite("root", 3600).unwrap();
        assert!(store.load().unwrap().open_invite(&secret).is_some());
        assert!(!fs::read_to_string(dir.path().join(FILE))
            .unwrap()
            .contains(&secret));
        // A wrong secret, then the right one; then it is spent.
        assert!(matches!(
            store.register("carol", "password1", Some("nope")),
            Err(AccountError::InviteInvalid)
        ));
        assert!(!store.load().unwrap().users.contains_key("carol"));
        store.register("carol", "password1", Some(&secret)).unwrap();
        let a = store.load().unwrap();
        assert_eq!(a.users["carol"].role, Role::User);
        assert!(a.open_invite(&secret).is_none());
        assert_eq!(a.invites[0].used_by.as_deref(), Some("carol"));
        assert!(matches!(
            store.register("dave", "password1", Some(&secret)),
            Err(AccountError::InviteInvalid)
        ));
        assert!(matches!(
            store.revoke_invite(&invite.id),
            Err(AccountError::NoSuchInvite(_))
        ));
        // A name that exists does not spend an invite.
        let (_, s2) = store.create_invite("root", 3600).unwrap();
        assert!(matches!(
            store.register("carol", "password1", Some(&s2)),
            Err(AccountError::Exists(_))
        ));
        assert!(store.load().unwrap().open_invite(&s2).is_some());
        // Expired and revoked invites are refused.
        let (_, s3) = store.create_invite("root", 0).unwrap();
        assert!(matches!(
            store.register("erin", "password1", Some(&s3)),
            Err(AccountError::InviteInvalid)
        ));
        let (i4, s4) = store.create_invite("root", 3600).unwrap();
        store.revoke_invite(&i4.id).unwrap();
        assert!(matches!(
            store.register("erin", "password1", Some(&s4)),
            Err(AccountError::InviteInvalid)
        ));
        // Registration never makes an admin, and checks name and password.
        store.register("frank", "password1", None).unwrap();
        assert_eq!(store.load().unwrap().users["frank"].role, Role::User);
        assert!(matches!(
            store.register("<b>", "password1", None),
            Err(AccountError::BadName)
        ));
        assert!(matches!(
            store.register("gina", "short", None),
            Err(AccountError::BadPassword)
        ));
    }

    #[test]
    fn random_passwords_differ_and_are_long() {
        let (p, q) = (random_password(), random_password());
        assert_eq!(p.len(), 20);
        assert_ne!(p, q);
    }
}
