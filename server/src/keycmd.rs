//! `nimbus-server key ...`: the key slots of an encrypted data directory.
//! Each command first unlocks the master key with a slot's secret (as the
//! server does at start), then rewrites `keys.json` atomically; no data is
//! re-encrypted. Safe while a server runs: it reads the slots only at start.

use crate::config::KeyAction;
use crate::vault::keys::{new_key_file_contents, KeyError, KeySlots};
use crate::vault::unlock::{new_slots, read_passphrase, unlock_master};
use crate::vault::Vault;
use crate::vault::{UnlockOptions, VaultError};
use nimbus_common::time::format_utc;
use std::io::{self, IsTerminal};
use std::path::Path;

#[derive(Debug, thiserror::Error)]
pub enum KeyCmdError {
    #[error("{} is not encrypted: there are no key slots (start the server with --encryption on on an empty data directory, or convert this one with `nimbus-server encrypt`)", .0.display())]
    NotEncrypted(std::path::PathBuf),
    #[error(transparent)]
    Vault(#[from] VaultError),
    #[error(transparent)]
    Key(#[from] KeyError),
    #[error("{0}")]
    Input(String),
    #[error("{} is already encrypted", .0.display())]
    AlreadyEncrypted(std::path::PathBuf),
    #[error(transparent)]
    Lock(#[from] crate::maintenance::MaintenanceError),
    #[error(transparent)]
    Convert(#[from] crate::store::OpenError),
    #[error("cannot write in {}: {source}", dir.display())]
    Io {
        dir: std::path::PathBuf,
        source: io::Error,
    },
}

/// A new passphrase: asked twice on a terminal, else one line of stdin.
fn new_passphrase() -> Result<String, KeyCmdError> {
    let p = read_passphrase("New passphrase: ")
        .ok_or_else(|| KeyCmdError::Input("no new passphrase given".into()))?;
    if io::stdin().is_terminal()
        && read_passphrase("The same passphrase again: ") != Some(p.clone())
    {
        return Err(VaultError::Mismatch.into());
    }
    Ok(p)
}

pub fn run(data: &Path, opts: &UnlockOptions, action: KeyAction) -> Result<(), KeyCmdError> {
    if !KeySlots::exists(data) {
        return Err(KeyCmdError::NotEncrypted(data.to_path_buf()));
    }
    if let KeyAction::List = action {
        // Listing needs no secret: the slots say nothing but their kind.
        let slots = KeySlots::load(data)?;
        for s in &slots.slots {
            println!("{}\t{}\tcreated {}", s.id, s.kind, format_utc(s.created));
        }
        return Ok(());
    }
    let (mut slots, master, used) = unlock_master(data, opts)?;
    match action {
        KeyAction::List => unreachable!("handled above"),
        KeyAction::Add {
            new_key_file,
            passphrase,
        } => {
            let id = match (new_key_file, passphrase) {
                (Some(path), _) => {
                    if path.exists() {
                        return Err(KeyCmdError::Input(format!(
                            "{} exists: give a path for a new key file",
                            path.display()
                        )));
                    }
                    let contents = new_key_file_contents();
                    nimbus_common::durable::write_atomic_private(&path, |w| {
                        io::Write::write_all(w, contents.as_bytes())
                    })
                    .map_err(|e| {
                        KeyCmdError::Input(format!("cannot write {}: {e}", path.display()))
                    })?;
                    let id = slots.add_key_file(contents.as_bytes(), &path, &master)?;
                    println!("made key file {} (keep it safe)", path.display());
                    id
                }
                (None, true) => slots.add_passphrase(&new_passphrase()?, &master)?,
                (None, false) => {
                    return Err(KeyCmdError::Input(
                        "say what to add: --new-key-file FILE or --passphrase".into(),
                    ))
                }
            };
            slots.save(data)?;
            println!("added key slot {id}");
        }
        KeyAction::Remove { slot } => {
            slots.remove(slot)?;
            slots.save(data)?;
            if slot == used {
                println!("removed key slot {slot} (the one used to unlock now)");
            } else {
                println!("removed key slot {slot}");
            }
        }
        KeyAction::Passwd { slot } => {
            slots.passwd(slot, &new_passphrase()?, &master)?;
            slots.save(data)?;
            println!("changed the passphrase of key slot {slot}");
        }
    }
    Ok(())
}

/// `nimbus-server encrypt`: seals an unencrypted data directory in place
/// (see `store::convert`); run again after a crash, it finishes.
pub fn encrypt(data: &Path, opts: &UnlockOptions) -> Result<(), KeyCmdError> {
    let _lock = crate::maintenance::DataLock::acquire(data)?;
    let io_err = |source| KeyCmdError::Io {
        dir: data.to_path_buf(),
        source,
    };
    if let Some(url) = crate::store::backend::marked_store(data).map_err(io_err)? {
        return Err(KeyCmdError::Io {
            dir: data.to_path_buf(),
            source: std::io::Error::other(format!(
                "its content is in {url}; encrypt converts content on local disk only (set up a bucket encrypted from the start)"
            )),
        });
    }
    let marker = data.join(crate::store::convert::MARKER);
    if !marker.exists() {
        if KeySlots::exists(data) {
            return Err(KeyCmdError::AlreadyEncrypted(data.to_path_buf()));
        }
        // From here until the end nothing serves the directory.
        std::fs::File::create(&marker)
            .and_then(|f| f.sync_all())
            .and_then(|()| nimbus_common::durable::sync_dir(data))
            .map_err(io_err)?;
    }
    let vault = if KeySlots::exists(data) {
        let (_, master, _) = unlock_master(data, opts)?;
        Vault::sealed(&master)
    } else {
        let (slots, master, setup) = new_slots(opts)?;
        slots.save(data)?;
        if let Some(path) = &setup.created_key_file {
            println!(
                "made the key file {} (back it up apart from the data)",
                path.display()
            );
        }
        println!(
            "recovery key: {}\nwrite it on paper and keep it apart from the server: it unlocks the data if every other key is lost; it is not shown again",
            setup.recovery_key
        );
        Vault::sealed(&master)
    };
    let report = crate::store::convert::encrypt_in_place(data, &vault)?;
    std::fs::remove_file(&marker)
        .and_then(|()| nimbus_common::durable::sync_dir(data))
        .map_err(io_err)?;
    println!(
        "encrypted {}: {} file(s) sealed, {} upload(s) in progress kept, {} leftover file(s) removed; start the server with the same key",
        data.display(),
        report.files_sealed,
        report.uploads,
        report.leftovers_removed
    );
    Ok(())
}
