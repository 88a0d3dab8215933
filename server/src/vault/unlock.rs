//! Where the master key comes from at start: `--key-file FILE`, a systemd
//! credential (`$CREDENTIALS_DIRECTORY/nimbus-key`), or a passphrase (asked
//! on the terminal; read from the first line of standard input when that is
//! not a terminal). At the first start with encryption on, the key slots
//! are made from whichever of those is given, plus a recovery key.

use super::keys::{new_key_file_contents, KeyError, KeySlots, Secret};
use super::Vault;
use std::io::{self, BufRead, IsTerminal};
use std::path::{Path, PathBuf};

/// The systemd credential's name (`LoadCredential=nimbus-key:/etc/...`).
pub const CREDENTIAL: &str = "nimbus-key";

#[derive(Debug, Default, Clone)]
pub struct UnlockOptions {
    /// `--encryption on`: make the key slots if there are none.
    pub encryption: bool,
    pub key_file: Option<PathBuf>,
}

#[derive(Debug, thiserror::Error)]
pub enum VaultError {
    #[error(transparent)]
    Key(#[from] KeyError),
    #[error("cannot read the key file {}: {source}", path.display())]
    KeyFile { path: PathBuf, source: io::Error },
    #[error("the data directory {} is encrypted: unlock it with --key-file FILE, a systemd credential named {CREDENTIAL}, or a passphrase on the terminal (or on standard input)", dir.display())]
    NoSecret { dir: PathBuf },
    #[error("--encryption on needs a key: give --key-file FILE (made if it does not exist), a systemd credential named {CREDENTIAL}, or a passphrase on the terminal")]
    NoSetupSecret,
    #[error("the data directory {} already holds unencrypted backups: convert it with `nimbus-server encrypt` (with the server stopped) instead of starting with --encryption on", dir.display())]
    PlainData { dir: PathBuf },
    #[error("the passphrases typed differ; nothing was changed")]
    Mismatch,
    #[error("the data directory {} is being encrypted: run `nimbus-server encrypt` again to finish (nothing serves it until then)", dir.display())]
    Converting { dir: PathBuf },
}

/// What the first start with encryption made, to be told once.
pub struct Setup {
    pub recovery_key: String,
    pub created_key_file: Option<PathBuf>,
}

/// The credential systemd passes, if any.
fn credential() -> Option<PathBuf> {
    let dir = std::env::var_os("CREDENTIALS_DIRECTORY")?;
    let p = Path::new(&dir).join(CREDENTIAL);
    p.exists().then_some(p)
}

/// A passphrase: asked on the terminal, or the next line of standard input.
pub fn read_passphrase(prompt: &str) -> Option<String> {
    if io::stdin().is_terminal() {
        return rpassword::prompt_password(prompt).ok();
    }
    let mut line = String::new();
    match io::stdin().lock().read_line(&mut line) {
        Ok(0) | Err(_) => None,
        Ok(_) => Some(line.trim_end_matches(['\r', '\n']).to_string()),
    }
}

fn read_key_file(path: &Path) -> Result<Vec<u8>, VaultError> {
    std::fs::read(path).map_err(|source| VaultError::KeyFile {
        path: path.to_path_buf(),
        source,
    })
}

/// Whether the directory already holds a catalog or blobs.
fn holds_data(data: &Path) -> bool {
    let nonempty = |p: PathBuf| std::fs::metadata(p).is_ok_and(|m| m.len() > 0);
    nonempty(data.join("catalog/snapshot.json"))
        || nonempty(data.join("catalog/journal.jsonl"))
        || std::fs::read_dir(data.join("blobs")).is_ok_and(|mut d| d.next().is_some())
}

/// Unlocks the master key from whatever `opts` and the environment offer.
pub fn unlock_master(
    data: &Path,
    opts: &UnlockOptions,
) -> Result<(KeySlots, [u8; 32], u32), VaultError> {
    let slots = KeySlots::load(data)?;
    let (secrets, what): (Vec<Secret>, String) = if let Some(path) = &opts.key_file {
        (
            vec![Secret::KeyFile(read_key_file(path)?)],
            format!("key file {}", path.display()),
        )
    } else if let Some(path) = credential() {
        let bytes = read_key_file(&path)?;
        let text = String::from_utf8_lossy(&bytes).trim().to_string();
        (
            vec![Secret::KeyFile(bytes), Secret::Passphrase(text)],
            format!("systemd credential {CREDENTIAL}"),
        )
    } else {
        match read_passphrase("Passphrase for the Nimbus data directory: ") {
            Some(p) => (vec![Secret::Passphrase(p)], "passphrase".to_string()),
            None => {
                return Err(VaultError::NoSecret {
                    dir: data.to_path_buf(),
                })
            }
        }
    };
    for s in &secrets {
        if let Some((master, slot)) = slots.unlock(s) {
            return Ok((slots, master, slot));
        }
    }
    Err(KeyError::Wrong(what).into())
}

/// Opens the data directory's vault: sealed if it has key slots (made now
/// when `opts.encryption` asks and there are none), plain otherwise.
pub fn open(data: &Path, opts: &UnlockOptions) -> Result<(Vault, Option<Setup>), VaultError> {
    if data.join(crate::store::convert::MARKER).exists() {
        return Err(VaultError::Converting {
            dir: data.to_path_buf(),
        });
    }
    if KeySlots::exists(data) {
        let (_, master, slot) = unlock_master(data, opts)?;
        log::info!("encryption at rest: unlocked with key slot {slot}");
        return Ok((Vault::sealed(&master), None));
    }
    if !opts.encryption {
        return Ok((Vault::plain(), None));
    }
    if holds_data(data) {
        return Err(VaultError::PlainData {
            dir: data.to_path_buf(),
        });
    }
    let (slots, master, setup) = new_slots(opts)?;
    std::fs::create_dir_all(data).map_err(|source| VaultError::KeyFile {
        path: data.to_path_buf(),
        source,
    })?;
    slots.save(data)?;
    log::info!(
        "encryption at rest: new master key in {} key slot(s)",
        slots.slots.len()
    );
    Ok((Vault::sealed(&master), Some(setup)))
}

/// New slots for a new master key, from what `opts` offers.
pub fn new_slots(opts: &UnlockOptions) -> Result<(KeySlots, [u8; 32], Setup), VaultError> {
    let master = KeySlots::new_master();
    let mut slots = KeySlots::new();
    let mut created_key_file = None;
    if let Some(path) = &opts.key_file {
        let contents = match std::fs::read(path) {
            Ok(c) => c,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                let c = new_key_file_contents();
                nimbus_common::durable::write_atomic_private(path, |w| {
                    io::Write::write_all(w, c.as_bytes())
                })
                .map_err(|source| VaultError::KeyFile {
                    path: path.clone(),
                    source,
                })?;
                created_key_file = Some(path.clone());
                c.into_bytes()
            }
            Err(source) => {
                return Err(VaultError::KeyFile {
                    path: path.clone(),
                    source,
                })
            }
        };
        slots.add_key_file(&contents, path, &master)?;
    } else if let Some(path) = credential() {
        let contents = read_key_file(&path)?;
        slots.add_key_file(&contents, &path, &master)?;
    } else {
        let Some(p) = read_passphrase("New passphrase for the Nimbus data directory: ") else {
            return Err(VaultError::NoSetupSecret);
        };
        if io::stdin().is_terminal()
            && read_passphrase("The same passphrase again: ").as_deref() != Some(&p)
        {
            return Err(VaultError::Mismatch);
        }
        slots.add_passphrase(&p, &master)?;
    }
    let recovery_key = slots.add_recovery(&master);
    Ok((
        slots,
        master,
        Setup {
            recovery_key,
            created_key_file,
        },
    ))
}
