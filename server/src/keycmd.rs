//! `nimbus-server key ...`: the key slots of an encrypted data directory.
//! Each command first unlocks the master key with a slot's secret (as the
//! server does at start), then rewrites `keys.json` atomically; no data is
//! re-encrypted. Safe while a server runs: it reads the slots only at start.

use crate::config::KeyAction;
use crate::vault::keys::{new_key_file_contents, KeyError, KeySlots};
use crate::vault::unlock::{read_passphrase, unlock_master};
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
