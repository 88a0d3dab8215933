//! Who is asking, and the parts of the catalog a request may reach.

use crate::accounts::Role;
use crate::http::core::request::target;
use crate::http::core::ApiError;
use crate::space::{FileTarget, MachineKey, UserSpace};

/// Who is asking: a user, through a device token or a browser session.
#[derive(Debug, Clone)]
pub struct Identity {
    pub user: String,
    pub role: Role,
    /// The device's machine, for requests with a bearer token.
    pub machine: Option<String>,
    /// The session id and its CSRF token, for browser requests.
    pub session: Option<(String, String)>,
}

impl Identity {
    /// Who is changing shared settings (the policy, alerts): the admin
    /// any, a user their own.
    pub fn editor(&self) -> crate::policies::Editor<'_> {
        if self.role == Role::Admin {
            crate::policies::Editor::Admin
        } else {
            crate::policies::Editor::User(&self.user)
        }
    }

    /// This user's part of the catalog.
    pub fn space(&self) -> UserSpace {
        UserSpace::of(&self.user)
    }

    /// One of this user's machines, to read.
    pub fn machine(&self, machine: &str) -> MachineKey {
        self.space().machine(machine)
    }

    /// The file a `{machine}/{path...}` route names, in this user's space.
    pub fn file(&self, machine: &str, rest: &[&str]) -> Result<FileTarget, ApiError> {
        let (machine, path) = target(machine, rest)?;
        Ok(FileTarget {
            machine: self.machine(&machine),
            path,
        })
    }

    /// The same, to write: only on the machine a device token is for.
    pub fn writable_file(&self, machine: &str, rest: &[&str]) -> Result<FileTarget, ApiError> {
        let (machine, path) = target(machine, rest)?;
        Ok(FileTarget {
            machine: self.writable_machine(&machine)?,
            path,
        })
    }

    /// One of this user's machines, to write: only the machine a device
    /// token was issued for (browser sessions upload through
    /// `/api/v1/uploads`).
    pub fn writable_machine(&self, machine: &str) -> Result<MachineKey, ApiError> {
        match &self.machine {
            Some(m) if m == machine => Ok(self.machine(machine)),
            Some(m) => Err(ApiError::Forbidden(format!(
                "this device is registered as machine {m:?} and may only back up to it"
            ))),
            None => Err(ApiError::Forbidden(
                "uploads need a device token (nimbus-client login)".into(),
            )),
        }
    }
}
