//! `nimbus-server user ...`: account management from the shell. Every change
//! goes through [`AccountStore::update`], which takes the accounts lock, so
//! it is safe while a server runs on the same data directory.

use crate::accounts::{AccountError, AccountStore, Role};
use crate::config::UserAction;
use nimbus_common::log::format_utc;
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
pub fn run(data: &Path, action: UserAction) -> Result<(), UserCmdError> {
    let store = AccountStore::open(data)?;
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
        UserAction::Remove { name } => {
            store.remove_user(&name)?;
            println!("removed {name}");
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
