//! Key slots: `DATA/keys.json` holds the master key only wrapped, once per
//! slot, each slot by its own key-encryption key: a passphrase through
//! Argon2id (parameters stored with the slot), a key file, or the recovery
//! key printed at setup. Adding or removing a slot rewrites this file only;
//! no data is re-encrypted.

use super::seal::Cipher;
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use nimbus_common::durable;
use nimbus_common::time::unix_now;
use rand_core::{OsRng, RngCore};
use serde::{Deserialize, Serialize};
use std::io;
use std::path::{Path, PathBuf};

pub const FILE: &str = "keys.json";
const FORMAT: u32 = 1;
/// How long unlocking a passphrase slot should take here.
const TARGET_UNLOCK_SECS: f64 = 0.5;
const ARGON2_MEMORY_KIB: u32 = 64 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SlotKind {
    Passphrase,
    KeyFile,
    Recovery,
}

impl std::fmt::Display for SlotKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            SlotKind::Passphrase => "passphrase",
            SlotKind::KeyFile => "key file",
            SlotKind::Recovery => "recovery key",
        })
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Argon2Params {
    pub m_kib: u32,
    pub t: u32,
    pub p: u32,
    pub salt: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Slot {
    pub id: u32,
    pub kind: SlotKind,
    pub created: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub argon2: Option<Argon2Params>,
    /// nonce | master key sealed | tag, base64.
    wrapped: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct KeySlots {
    pub format: u32,
    pub cipher: String,
    pub created: i64,
    pub slots: Vec<Slot>,
}

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("cannot read or write {}: {source}", path.display())]
    Io { path: PathBuf, source: io::Error },
    #[error("{} is not a key slot file this server reads: {why}", path.display())]
    Bad { path: PathBuf, why: String },
    #[error(
        "the {0} does not unlock this data directory (wrong or removed slot); nothing was changed"
    )]
    Wrong(String),
    #[error("no slot {0}")]
    NoSlot(u32),
    #[error("slot {0} is the last one: removing it would lock the data away for good")]
    LastSlot(u32),
    #[error("slot {0} is not a passphrase slot")]
    NotPassphrase(u32),
    #[error("the passphrase is empty")]
    EmptyPassphrase,
    #[error("the key file {} holds fewer than 16 bytes: use a random one (`head -c 32 /dev/urandom | xxd -p -c 64 > FILE`, or let the server make it)", path.display())]
    WeakKeyFile { path: PathBuf },
}

/// A secret someone offers to unlock a slot.
pub enum Secret {
    KeyFile(Vec<u8>),
    Passphrase(String),
}

fn slot_aad(id: u32, kind: SlotKind) -> Vec<u8> {
    format!("nimbus-slot-1\0{id}\0{kind:?}").into_bytes()
}

fn key_file_kek(bytes: &[u8]) -> [u8; 32] {
    blake3::derive_key("nimbus 2026-12 key file slot", bytes.trim_ascii())
}

/// A recovery key as printed (hex in groups), back to its bytes.
fn recovery_bytes(text: &str) -> Option<[u8; 32]> {
    let hex: String = text
        .chars()
        .filter(|c| !c.is_whitespace() && *c != '-')
        .collect();
    if hex.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, b) in out.iter_mut().enumerate() {
        *b = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).ok()?;
    }
    Some(out)
}

fn recovery_kek(bytes: &[u8; 32]) -> [u8; 32] {
    blake3::derive_key("nimbus 2026-12 recovery slot", bytes)
}

fn argon2(params: &Argon2Params, passphrase: &str) -> Result<[u8; 32], String> {
    let salt = B64.decode(&params.salt).map_err(|e| e.to_string())?;
    let p = argon2::Params::new(params.m_kib, params.t, params.p, Some(32))
        .map_err(|e| e.to_string())?;
    let a = argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, p);
    let mut out = [0u8; 32];
    a.hash_password_into(passphrase.as_bytes(), &salt, &mut out)
        .map_err(|e| e.to_string())?;
    Ok(out)
}

/// Argon2id parameters that take about [`TARGET_UNLOCK_SECS`] here.
fn tuned_params() -> Argon2Params {
    let mut salt = [0u8; 16];
    OsRng.fill_bytes(&mut salt);
    let mut p = Argon2Params {
        m_kib: ARGON2_MEMORY_KIB,
        t: 1,
        p: 1,
        salt: B64.encode(salt),
    };
    let started = std::time::Instant::now();
    let _ = argon2(&p, "calibration");
    let one = started.elapsed().as_secs_f64().max(0.001);
    p.t = ((TARGET_UNLOCK_SECS / one).round() as u32).clamp(1, 32);
    p
}

/// New Argon2id parameters for `passphrase`, and the key they derive.
fn passphrase_kek(passphrase: &str) -> Result<(Argon2Params, [u8; 32]), KeyError> {
    if passphrase.is_empty() {
        return Err(KeyError::EmptyPassphrase);
    }
    let params = tuned_params();
    let kek = argon2(&params, passphrase).map_err(|why| KeyError::Bad {
        path: PathBuf::from(FILE),
        why,
    })?;
    Ok((params, kek))
}

fn random_key() -> [u8; 32] {
    let mut k = [0u8; 32];
    OsRng.fill_bytes(&mut k);
    k
}

/// A new random key file's contents: 64 hex digits and a newline.
pub fn new_key_file_contents() -> String {
    let mut s: String = random_key().iter().map(|b| format!("{b:02x}")).collect();
    s.push('\n');
    s
}

impl KeySlots {
    pub fn path(data: &Path) -> PathBuf {
        data.join(FILE)
    }

    pub fn exists(data: &Path) -> bool {
        Self::path(data).exists()
    }

    pub fn load(data: &Path) -> Result<KeySlots, KeyError> {
        let path = Self::path(data);
        let bytes = std::fs::read(&path).map_err(|source| KeyError::Io {
            path: path.clone(),
            source,
        })?;
        let slots: KeySlots = serde_json::from_slice(&bytes).map_err(|e| KeyError::Bad {
            path: path.clone(),
            why: e.to_string(),
        })?;
        if slots.format != FORMAT || slots.cipher != "xchacha20poly1305" {
            return Err(KeyError::Bad {
                path,
                why: format!("format {} cipher {}", slots.format, slots.cipher),
            });
        }
        Ok(slots)
    }

    /// Written atomically, owner-only.
    pub fn save(&self, data: &Path) -> Result<(), KeyError> {
        let path = Self::path(data);
        durable::write_atomic_private(&path, |w| {
            serde_json::to_writer_pretty(&mut *w, self).map_err(io::Error::other)?;
            io::Write::write_all(w, b"\n")
        })
        .map_err(|source| KeyError::Io { path, source })
    }

    /// New slots for a new master key (none yet).
    pub fn new() -> KeySlots {
        KeySlots {
            format: FORMAT,
            cipher: "xchacha20poly1305".into(),
            created: unix_now(),
            slots: Vec::new(),
        }
    }

    /// A new random master key.
    pub fn new_master() -> [u8; 32] {
        random_key()
    }

    fn next_id(&self) -> u32 {
        self.slots.iter().map(|s| s.id).max().unwrap_or(0) + 1
    }

    fn push(
        &mut self,
        kind: SlotKind,
        kek: &[u8; 32],
        master: &[u8; 32],
        argon2: Option<Argon2Params>,
    ) -> u32 {
        let id = self.next_id();
        let wrapped = Cipher::new(kek).seal_message(&slot_aad(id, kind), master);
        self.slots.push(Slot {
            id,
            kind,
            created: unix_now(),
            argon2,
            wrapped: B64.encode(wrapped),
        });
        id
    }

    /// Adds a slot the key file's contents unlock; its id.
    pub fn add_key_file(
        &mut self,
        contents: &[u8],
        path: &Path,
        master: &[u8; 32],
    ) -> Result<u32, KeyError> {
        if contents.trim_ascii().len() < 16 {
            return Err(KeyError::WeakKeyFile {
                path: path.to_path_buf(),
            });
        }
        Ok(self.push(SlotKind::KeyFile, &key_file_kek(contents), master, None))
    }

    /// Adds a passphrase slot (Argon2id tuned here); its id.
    pub fn add_passphrase(&mut self, passphrase: &str, master: &[u8; 32]) -> Result<u32, KeyError> {
        let (params, kek) = passphrase_kek(passphrase)?;
        Ok(self.push(SlotKind::Passphrase, &kek, master, Some(params)))
    }

    /// Adds a recovery slot; returns the key to print, in groups.
    pub fn add_recovery(&mut self, master: &[u8; 32]) -> String {
        let key = random_key();
        self.push(SlotKind::Recovery, &recovery_kek(&key), master, None);
        let hex: String = key.iter().map(|b| format!("{b:02x}")).collect();
        hex.as_bytes()
            .chunks(8)
            .map(|c| std::str::from_utf8(c).expect("hex"))
            .collect::<Vec<_>>()
            .join("-")
    }

    fn try_slot(&self, slot: &Slot, kek: &[u8; 32]) -> Option<[u8; 32]> {
        let wrapped = B64.decode(&slot.wrapped).ok()?;
        let master = Cipher::new(kek).open_message(&slot_aad(slot.id, slot.kind), &wrapped)?;
        master.try_into().ok()
    }

    /// The master key and the slot that gave it, if `secret` unlocks one.
    pub fn unlock(&self, secret: &Secret) -> Option<([u8; 32], u32)> {
        for slot in &self.slots {
            let kek = match (secret, slot.kind) {
                (Secret::KeyFile(bytes), SlotKind::KeyFile) => key_file_kek(bytes),
                (Secret::KeyFile(bytes), SlotKind::Recovery) => {
                    recovery_kek(&recovery_bytes(std::str::from_utf8(bytes).ok()?)?)
                }
                (Secret::Passphrase(p), SlotKind::Passphrase) => {
                    let Some(params) = &slot.argon2 else { continue };
                    match argon2(params, p) {
                        Ok(k) => k,
                        Err(_) => continue,
                    }
                }
                (Secret::Passphrase(p), SlotKind::Recovery) => match recovery_bytes(p) {
                    Some(b) => recovery_kek(&b),
                    None => continue,
                },
                _ => continue,
            };
            if let Some(master) = self.try_slot(slot, &kek) {
                return Some((master, slot.id));
            }
        }
        None
    }

    /// Removes slot `id`, never the last.
    pub fn remove(&mut self, id: u32) -> Result<(), KeyError> {
        if !self.slots.iter().any(|s| s.id == id) {
            return Err(KeyError::NoSlot(id));
        }
        if self.slots.len() == 1 {
            return Err(KeyError::LastSlot(id));
        }
        self.slots.retain(|s| s.id != id);
        Ok(())
    }

    /// Gives passphrase slot `id` a new passphrase (same id).
    pub fn passwd(&mut self, id: u32, passphrase: &str, master: &[u8; 32]) -> Result<(), KeyError> {
        let at = self
            .slots
            .iter()
            .position(|s| s.id == id)
            .ok_or(KeyError::NoSlot(id))?;
        if self.slots[at].kind != SlotKind::Passphrase {
            return Err(KeyError::NotPassphrase(id));
        }
        let (params, kek) = passphrase_kek(passphrase)?;
        let wrapped = Cipher::new(&kek).seal_message(&slot_aad(id, SlotKind::Passphrase), master);
        let slot = &mut self.slots[at];
        slot.argon2 = Some(params);
        slot.wrapped = B64.encode(wrapped);
        Ok(())
    }
}

impl Default for KeySlots {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_of_slot_unlocks_and_only_its_secret_does() {
        let master = KeySlots::new_master();
        let mut k = KeySlots::new();
        let file = new_key_file_contents();
        k.add_key_file(file.as_bytes(), Path::new("f"), &master)
            .unwrap();
        k.add_passphrase("correct horse", &master).unwrap();
        let recovery = k.add_recovery(&master);
        let ok = |s: Secret| k.unlock(&s).map(|(m, _)| m);
        assert_eq!(ok(Secret::KeyFile(file.clone().into_bytes())), Some(master));
        assert_eq!(ok(Secret::Passphrase("correct horse".into())), Some(master));
        assert_eq!(ok(Secret::Passphrase(recovery.clone())), Some(master));
        assert_eq!(ok(Secret::KeyFile(recovery.into_bytes())), Some(master));
        assert_eq!(ok(Secret::Passphrase("wrong".into())), None);
        assert_eq!(
            ok(Secret::KeyFile(new_key_file_contents().into_bytes())),
            None
        );
        assert!(matches!(
            k.add_key_file(b"short", Path::new("f"), &master),
            Err(KeyError::WeakKeyFile { .. })
        ));
    }

    #[test]
    fn passwd_and_remove_change_who_unlocks_never_the_key() {
        let master = KeySlots::new_master();
        let mut k = KeySlots::new();
        let p = k.add_passphrase("old", &master).unwrap();
        k.passwd(p, "new", &master).unwrap();
        assert!(k.unlock(&Secret::Passphrase("old".into())).is_none());
        assert_eq!(
            k.unlock(&Secret::Passphrase("new".into())).unwrap().0,
            master
        );
        assert!(matches!(k.remove(p), Err(KeyError::LastSlot(_))));
        let file = new_key_file_contents();
        let f = k
            .add_key_file(file.as_bytes(), Path::new("f"), &master)
            .unwrap();
        k.remove(f).unwrap();
        assert!(k.unlock(&Secret::KeyFile(file.into_bytes())).is_none());
        assert!(matches!(k.remove(f), Err(KeyError::NoSlot(_))));
    }
}
