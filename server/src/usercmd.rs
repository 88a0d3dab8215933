//! `nimbus-server user ...`: account management from the shell. Every change
//! goes through [`AccountStore::update`], which takes the accounts lock, so
//! it is safe while a server runs on the same data directory.

use crate::accounts::{AccountError, AccountStore, Role};
use crate::config::UserAction;
use crate::store::backend::s3::S3Options;
use crate::vault::Vault;
use nimbus_common::time::format_utc;
use std::io::{self, BufRead, IsTerminal};
use std::path::Path;

#[derive(Debug, thiserror::Error)]
pub enum UserCmdError {
    #[error(transparent)]
    Account(#[from] AccountError),
    #[error("{0}")]
    Input(String),
}

/// Runs one user action; what it prints is for people, on stdout.
pub fn run(
    data: &Path,
    content: Option<&S3Options>,
    vault: Vault,
    action: UserAction,
) -> Result<(), UserCmdError> {
    let store = AccountStore::open(data, vault.clone())?;
    match action {
        UserAction::List => {
            let accounts = store.load()?;
            if accounts.users.is_empty() {
                println!("no accounts yet (the server creates 'admin' at its first start)");
            }
            for (name, u) in &accounts.users {
                println!(
                    "{name}\t{}\t{}\tcreated {}",
                    match u.role {
                        Role::Admin => "admin",
                        Role::User => "user",
                    },
                    if u.disabled { "disabled" } else { "enabled" },
                    format_utc(u.created_at)
                );
            }
        }
        UserAction::Add {
            name,
            admin,
            password_stdin,
        } => {
            let password = read_password(password_stdin)?;
            let role = if admin { Role::Admin } else { Role::User };
            store.add_user(&name, &password, role)?;
            println!("added {name}");
        }
        UserAction::Passwd {
            name,
            password_stdin,
        } => {
            if !store.load()?.users.contains_key(&name) {
                return Err(AccountError::NoSuchUser(name).into());
            }
            let password = read_password(password_stdin)?;
            store.set_password(&name, &password)?;
            println!("password of {name} changed");
        }
        UserAction::Remove { name, delete_data } => {
            let accounts = store.load()?;
            let exists = accounts.users.contains_key(&name);
            if !(exists || delete_data && accounts.reserved.contains_key(&name)) {
                return Err(AccountError::NoSuchUser(name).into());
            }
            if !delete_data {
                store.remove_user(&name)?;
                println!(
                    "removed {name}; its backups stay, and so no new account may take the name \
                     (delete them with: nimbus-server user remove {name} --delete-data, server stopped)"
                );
                return Ok(());
            }
            // The catalog is the server's while it runs: this needs it stopped.
            let _lock = crate::maintenance::DataLock::acquire(data).map_err(|e| match e {
                crate::maintenance::MaintenanceError::Busy(_) => UserCmdError::Input(format!(
                    "a server is running on {}: stop it first to delete {name}'s backups \
                     (without --delete-data the account goes now and its name stays reserved)",
                    data.display()
                )),
                e => UserCmdError::Input(e.to_string()),
            })?;
            let dm = crate::store::DataManager::open_configured(data, vault, content)
                .map_err(|e| UserCmdError::Input(e.to_string()))?;
            if exists {
                store.remove_user(&name)?;
            }
            let report = dm
                .forget_user(&name)
                .map_err(|e| UserCmdError::Input(format!("deleting {name}'s backups: {e}")))?;
            if let Err(e) = dm.compact() {
                log::warn!("could not write the catalog snapshot (the journal is intact): {e}");
            }
            store.release_name(&name)?;
            println!(
                "removed {name} and the backups of its machines: {} file(s), {} version(s), \
                 {} stored content(s), {} bytes freed; the name is free again",
                report.files_gone, report.versions, report.blobs, report.bytes_freed
            );
        }
        UserAction::Disable { name, enable } => {
            store.set_disabled(&name, !enable)?;
            println!("{name} {}", if enable { "enabled" } else { "disabled" });
        }
    }
    Ok(())
}

fn read_password(from_stdin: bool) -> Result<String, UserCmdError> {
    if from_stdin {
        let mut line = String::new();
        io::stdin().lock().read_line(&mut line).map_err(|e| {
            UserCmdError::Input(format!("cannot read the password from stdin: {e}"))
        })?;
        return Ok(line.trim_end_matches(['\r', '\n']).to_string());
    }
    if !io::stdin().is_terminal() {
        return Err(UserCmdError::Input(
            "no terminal to ask for a password; pass it with --password-stdin".into(),
        ));
    }
    let first = rpassword::prompt_password("password: ")
        .map_err(|e| UserCmdError::Input(format!("cannot read the password: {e}")))?;
    let again = rpassword::prompt_password("again: ")
        .map_err(|e| UserCmdError::Input(format!("cannot read the password: {e}")))?;
    if first != again {
        return Err(UserCmdError::Input("the passwords differ".into()));
    }
    Ok(first)
}
