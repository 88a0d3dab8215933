//! Who is asking. Every route but `/healthz`, the login routes and the
//! login page needs an identity: a device's bearer token, or a browser
//! session cookie. This module holds the state that decides it (the
//! accounts as last read, the sessions, the login limiter) and the checks
//! handlers call: [`require`], [`require_admin`], [`require_admin_session`],
//! and the CSRF and origin checks of [`csrf`].

mod accounts_cache;
pub mod csrf;
mod identity;
mod limiter;
pub mod sessions;

pub use accounts_cache::AccountsCache;
pub use identity::Identity;
pub use limiter::Limiter;
pub use sessions::{Sessions, SESSION_COOKIE};

use crate::accounts::{AccountError, AccountStore, Principal, Role};
use crate::http::core::request::{cookie, header, Peer};
use crate::http::core::ApiError;
use tiny_http::Request;

/// The state authentication keeps.
pub struct Auth {
    pub accounts: AccountsCache,
    pub sessions: Sessions,
    pub limiter: Limiter,
    /// How to tell the client's address and scheme.
    pub peer: Peer,
}

impl Auth {
    pub fn new(accounts: AccountStore, peer: Peer) -> Auth {
        Auth {
            accounts: AccountsCache::new(accounts),
            sessions: Sessions::default(),
            limiter: Limiter::default(),
            peer,
        }
    }

    /// The accounts store, to change accounts.
    pub fn store(&self) -> &AccountStore {
        self.accounts.store()
    }

    /// The identity of a request: a bearer token (which must be valid when
    /// presented), else a live session cookie of an enabled user, else none.
    pub fn identify(&self, req: &Request) -> Result<Option<Identity>, ApiError> {
        if let Some(p) = self.principal(req)? {
            return Ok(Some(Identity {
                user: p.user,
                role: p.role,
                machine: Some(p.device.machine),
                session: None,
            }));
        }
        let Some(id) = cookie(req, SESSION_COOKIE) else {
            return Ok(None);
        };
        let Some((user, csrf)) = self.sessions.get(id) else {
            return Ok(None);
        };
        let accounts = self.accounts.current()?;
        let Some(role) = accounts
            .users
            .get(&user)
            .filter(|u| !u.disabled)
            .map(|u| u.role)
        else {
            self.sessions.close(id);
            return Ok(None);
        };
        Ok(Some(Identity {
            user,
            role,
            machine: None,
            session: Some((id.to_string(), csrf)),
        }))
    }

    /// The principal of a request that presents a bearer token; `None` when
    /// it presents none. A malformed, unknown or revoked token is a 401.
    fn principal(&self, req: &Request) -> Result<Option<Principal>, ApiError> {
        let Some(value) = header(req, "Authorization") else {
            return Ok(None);
        };
        let token = value
            .strip_prefix("Bearer ")
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| {
                ApiError::Unauthorized("the Authorization header must be 'Bearer TOKEN'".into())
            })?;
        let accounts = self.accounts.current()?;
        accounts.authenticate(token).map(Some).ok_or_else(|| {
            ApiError::Unauthorized(
                "this device's token is not valid (revoked, replaced or unknown); run 'nimbus-client login' again".into(),
            )
        })
    }

    /// Checks a name and password with the rate limits (per account and
    /// per address); Ok(user) on success.
    pub fn check_login(&self, user: &str, password: &str, addr: &str) -> Result<String, ApiError> {
        let (user_key, addr_key) = (format!("user:{user}"), format!("addr:{addr}"));
        let wait = [&user_key, &addr_key]
            .iter()
            .filter_map(|k| self.limiter.check(k).err())
            .max();
        if let Some(retry_after) = wait {
            return Err(ApiError::TooManyAttempts { retry_after });
        }
        match self.store().verify(user, password)? {
            Some((user, _)) => {
                self.limiter.succeeded(&user_key);
                self.limiter.succeeded(&addr_key);
                Ok(user)
            }
            None => {
                self.limiter.failed(&user_key);
                self.limiter.failed(&addr_key);
                Err(ApiError::Unauthorized(
                    "wrong user name or password (or the account is disabled)".into(),
                ))
            }
        }
    }

    /// Trades an enrollment code for a device of its user, with the login
    /// limits per address: Ok(device, token).
    pub fn enroll(
        &self,
        code: &str,
        machine: &str,
        addr: &str,
    ) -> Result<(crate::accounts::Device, String), ApiError> {
        let addr_key = format!("addr:{addr}");
        if let Err(retry_after) = self.limiter.check(&addr_key) {
            return Err(ApiError::TooManyAttempts { retry_after });
        }
        match self.store().enroll(code, machine) {
            Ok(done) => {
                self.limiter.succeeded(&addr_key);
                Ok(done)
            }
            Err(e @ AccountError::EnrollmentInvalid) => {
                self.limiter.failed(&addr_key);
                Err(ApiError::Unauthorized(e.to_string()))
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Revokes `who`'s device `id`; another user's device is 404, like a
    /// missing one. A machine's own token may revoke only that machine:
    /// malware on one machine must not lock the owner's other machines out.
    pub fn revoke_device(&self, who: &Identity, id: &str) -> Result<(), ApiError> {
        if let Some(machine) = &who.machine {
            let accounts = self.accounts.current()?;
            let target = accounts
                .devices
                .iter()
                .find(|d| d.user == who.user && d.id == id)
                .ok_or(ApiError::NotFound)?;
            if &target.machine != machine {
                return Err(ApiError::Forbidden(
                    "a machine's token may revoke only that machine; revoke others from the web page"
                        .into(),
                ));
            }
        }
        match self.store().revoke_device(&who.user, id) {
            Ok(()) => Ok(()),
            Err(AccountError::NoSuchDevice(_)) => Err(ApiError::NotFound),
            Err(e) => Err(e.into()),
        }
    }
}

/// The identity of a request, or 401.
pub fn require(who: Option<Identity>) -> Result<Identity, ApiError> {
    who.ok_or_else(|| {
        ApiError::Unauthorized(
            "log in first: 'nimbus-client login' for a machine, the login page for a browser"
                .into(),
        )
    })
}

/// An admin, or 403.
pub fn require_admin(who: &Identity) -> Result<(), ApiError> {
    if who.role == Role::Admin {
        Ok(())
    } else {
        Err(ApiError::Forbidden(
            "only admins see this: other users' machines and the server's state".into(),
        ))
    }
}

/// An admin logged in with a password: a machine's token, even an admin's,
/// does not manage accounts (a stolen laptop must not mint invites).
pub fn require_admin_session(who: Option<Identity>) -> Result<Identity, ApiError> {
    let who = require(who)?;
    require_admin(&who)?;
    if who.session.is_none() {
        return Err(ApiError::Forbidden(
            "invite links are made on the admin page, logged in with a password".into(),
        ));
    }
    Ok(who)
}
