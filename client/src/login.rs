//! `nimbus-client login`: registers this machine under a user and keeps the
//! device token in the client's config file, one entry per server, readable
//! by its owner only (0600 on Unix). The password is never stored.

use crate::ClientError;
use nimbus_common::durable;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::io::{self, BufRead, IsTerminal};
use std::path::{Path, PathBuf};

/// A machine's login on one server, as the server answered it.
pub use nimbus_common::wire::LoginReply as Login;

#[derive(Debug, Default, Serialize, Deserialize)]
pub struct ClientConfig {
    #[serde(default)]
    pub servers: BTreeMap<String, Login>,
}

/// The client's own folder: `%APPDATA%\\Nimbus` on Windows (the user's
/// roaming profile, readable by the user, SYSTEM and administrators only),
/// `nimbus` in the user's config directory elsewhere
/// (`~/.config/nimbus`, `~/Library/Application Support/nimbus`), or, for
/// state, in the local data directory.
pub fn app_dir(state: bool) -> PathBuf {
    let base = if cfg!(windows) || !state {
        dirs::config_dir()
    } else {
        dirs::data_local_dir()
    };
    base.or_else(dirs::home_dir)
        .unwrap_or_else(|| PathBuf::from("."))
        .join(if cfg!(windows) { "Nimbus" } else { "nimbus" })
}

/// Where the config lives when `--config` is not given.
pub fn default_config_path() -> PathBuf {
    app_dir(false).join("client.json")
}

impl ClientConfig {
    pub fn load(path: &Path) -> Result<ClientConfig, ClientError> {
        match std::fs::read(path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| {
                ClientError::BadConfig(format!(
                    "the config file {} is not valid ({e}); remove it and log in again",
                    path.display()
                ))
            }),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(ClientConfig::default()),
            Err(e) => Err(ClientError::Local(format!(
                "cannot read the config file {}: {e}",
                path.display()
            ))),
        }
    }

    pub fn save(&self, path: &Path) -> Result<(), ClientError> {
        let err = |e: io::Error| {
            ClientError::Local(format!(
                "cannot write the config file {}: {e}",
                path.display()
            ))
        };
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).map_err(err)?;
        }
        durable::write_atomic_private(path, |w| {
            serde_json::to_writer_pretty(&mut *w, self).map_err(io::Error::other)
        })
        .map_err(err)?;
        restrict_to_user(path);
        Ok(())
    }
}

/// On Windows the config (it holds the device token) starts with the
/// permissions of the user's profile folder; this removes the inherited
/// entries and grants the user alone (`icacls`). Elsewhere the file is
/// created 0600. A failure is a warning: the file stays in the profile.
fn restrict_to_user(path: &Path) {
    if !cfg!(windows) {
        return;
    }
    let Ok(user) = std::env::var("USERNAME") else {
        return;
    };
    let done = std::process::Command::new("icacls")
        .arg(path)
        .args(["/inheritance:r", "/grant:r"])
        .arg(format!("{user}:F"))
        .output();
    match done {
        Ok(out) if out.status.success() => {}
        Ok(out) => log::warn!(
            "could not restrict {} to {user}: {}",
            path.display(),
            String::from_utf8_lossy(&out.stdout).trim()
        ),
        Err(e) => log::warn!("could not restrict {} to {user}: {e}", path.display()),
    }
}

/// Logs in and stores the token; returns what was stored.
pub fn login(
    agent: &ureq::Agent,
    server: &str,
    user: &str,
    machine: &str,
    password: &str,
    config_path: &Path,
) -> Result<Login, ClientError> {
    let body = serde_json::to_string(&nimbus_common::wire::LoginRequest {
        user: user.to_string(),
        password: password.to_string(),
        machine: machine.to_string(),
    })
    .expect("serialisable");
    obtain_token(
        agent,
        server,
        nimbus_common::wire::LOGIN_ROUTE,
        &body,
        config_path,
    )
}

/// Trades an enrollment code (made on the server's "Add a machine" page)
/// for a device token, and stores it as [`login`] does.
pub fn enroll(
    agent: &ureq::Agent,
    server: &str,
    code: &str,
    machine: &str,
    config_path: &Path,
) -> Result<Login, ClientError> {
    let body = serde_json::to_string(&nimbus_common::wire::EnrollRequest {
        code: code.to_string(),
        machine: machine.to_string(),
    })
    .expect("serialisable");
    obtain_token(
        agent,
        server,
        nimbus_common::wire::ENROLL_ROUTE,
        &body,
        config_path,
    )
}

/// POSTs `body` to `route`, and keeps the device token of the answer in
/// the config file under `server`.
fn obtain_token(
    agent: &ureq::Agent,
    server: &str,
    route: &str,
    body: &str,
    config_path: &Path,
) -> Result<Login, ClientError> {
    let resp = agent
        .post(&format!("{server}{route}"))
        .set("Content-Type", "application/json")
        .send_string(body);
    let login: Login = match resp {
        Ok(r) => {
            serde_json::from_reader(std::io::Read::take(r.into_reader(), 1 << 16)).map_err(|e| {
                ClientError::Server(format!("the server's answer is not understood: {e}"))
            })?
        }
        Err(ureq::Error::Status(status, r)) => {
            let wait = r.header("Retry-After").map(str::to_string);
            let message = serde_json::from_reader::<_, nimbus_common::wire::ErrorBody>(
                std::io::Read::take(r.into_reader(), 1 << 16),
            )
            .map(|b| b.message)
            .unwrap_or_else(|_| format!("HTTP {status}"));
            return Err(ClientError::LoginRefused(match (status, wait) {
                (429, Some(w)) => format!("too many failed attempts; try again in {w} s"),
                _ if route == nimbus_common::wire::ENROLL_ROUTE => {
                    format!("enrollment refused ({status}): {message}")
                }
                _ => format!("login refused ({status}): {message}"),
            }));
        }
        Err(ureq::Error::Transport(t)) => {
            return Err(if crate::tls::is_untrusted(&t) {
                ClientError::Untrusted(t.to_string())
            } else {
                ClientError::Server(format!("cannot reach {server}: {t}"))
            });
        }
    };
    let mut config = ClientConfig::load(config_path)?;
    config.servers.insert(server.to_string(), login.clone());
    config.save(config_path)?;
    Ok(login)
}

/// The password from the first line of stdin, or asked for on the terminal.
pub fn read_password(from_stdin: bool) -> Result<String, ClientError> {
    if from_stdin {
        let mut line = String::new();
        io::stdin()
            .lock()
            .read_line(&mut line)
            .map_err(|e| ClientError::Local(format!("cannot read the password from stdin: {e}")))?;
        return Ok(line.trim_end_matches(['\r', '\n']).to_string());
    }
    if !io::stdin().is_terminal() {
        return Err(ClientError::Usage(
            "no terminal to ask for the password; pass it with --password-stdin".into(),
        ));
    }
    rpassword::prompt_password("password: ")
        .map_err(|e| ClientError::Local(format!("cannot read the password: {e}")))
}
