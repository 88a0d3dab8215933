//! Authentication on the HTTP side: bearer tokens of registered devices,
//! `POST /api/v1/login` to register one, the devices routes, and the login
//! rate limiter (growing delays per account and per address).
//!
//! Every route but `/healthz`, the login routes and the login page needs an
//! identity: a device's bearer token, or a browser session cookie.

use super::reply::{ApiError, Reply};
use super::router::{header, Handled};
use super::Ctx;
use crate::accounts::{AccountError, AccountStore, Accounts, Principal, Role};
use crate::space::{FileTarget, MachineKey, UserSpace};
use nimbus_common::time::format_utc;
use nimbus_common::wire::{LoginReply, LoginRequest};
use serde::Serialize;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant, SystemTime};
use tiny_http::Request;

/// Failed logins allowed before delays start.
const FREE_FAILURES: u32 = 3;
/// Longest delay between attempts once failures pile up.
const MAX_DELAY: Duration = Duration::from_secs(300);
const MAX_LOGIN_BODY: u64 = 16 * 1024;

/// The accounts file as last read, re-read when it changes on disk (the
/// `nimbus-server user` command may change it while the server runs).
pub struct AccountsCache {
    store: AccountStore,
    cached: RwLock<(Option<FileStamp>, Arc<Accounts>)>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
struct FileStamp(Option<SystemTime>, u64, u64);

impl AccountsCache {
    pub fn new(store: AccountStore) -> AccountsCache {
        AccountsCache {
            store,
            cached: RwLock::new((None, Arc::new(Accounts::default()))),
        }
    }

    pub fn store(&self) -> &AccountStore {
        &self.store
    }

    pub fn current(&self) -> Result<Arc<Accounts>, AccountError> {
        let stamp = self
            .store
            .stamp()
            .map(|(m, len, ino)| FileStamp(m, len, ino));
        {
            let c = self.cached.read().unwrap_or_else(|e| e.into_inner());
            if c.0.is_some() && c.0 == stamp {
                return Ok(c.1.clone());
            }
        }
        let fresh = Arc::new(self.store.load()?);
        *self.cached.write().unwrap_or_else(|e| e.into_inner()) = (stamp, fresh.clone());
        Ok(fresh)
    }
}

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
        let (machine, path) = super::router::target(machine, rest)?;
        Ok(FileTarget {
            machine: self.machine(&machine),
            path,
        })
    }

    /// The same, to write: only on the machine a device token is for.
    pub fn writable_file(&self, machine: &str, rest: &[&str]) -> Result<FileTarget, ApiError> {
        let (machine, path) = super::router::target(machine, rest)?;
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

/// The identity of a request, or 401.
pub fn require(who: Option<Identity>) -> Result<Identity, ApiError> {
    who.ok_or_else(|| {
        ApiError::Unauthorized(
            "log in first: 'nimbus-client login' for a machine, the login page for a browser"
                .into(),
        )
    })
}

/// How long a browser session lasts.
const SESSION_TTL: Duration = Duration::from_secs(12 * 3600);
pub const SESSION_COOKIE: &str = "nimbus_session";

struct Session {
    user: String,
    csrf: String,
    expires: Instant,
}

/// Browser sessions, in memory: a restart logs browsers out.
#[derive(Default)]
pub struct Sessions {
    map: Mutex<HashMap<String, Session>>,
}

impl Sessions {
    /// Opens a session; returns its id (the cookie value).
    pub fn open(&self, user: &str) -> String {
        let id = crate::accounts::random_secret();
        let mut map = self.map.lock().unwrap_or_else(|e| e.into_inner());
        map.retain(|_, s| s.expires > Instant::now());
        map.insert(
            id.clone(),
            Session {
                user: user.to_string(),
                csrf: crate::accounts::random_secret(),
                expires: Instant::now() + SESSION_TTL,
            },
        );
        id
    }

    /// (user, csrf token) of a live session.
    fn get(&self, id: &str) -> Option<(String, String)> {
        let map = self.map.lock().unwrap_or_else(|e| e.into_inner());
        map.get(id)
            .filter(|s| s.expires > Instant::now())
            .map(|s| (s.user.clone(), s.csrf.clone()))
    }

    pub fn close(&self, id: &str) {
        self.map
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(id);
    }
}

/// The value of one cookie of the request.
pub fn cookie<'a>(req: &'a Request, name: &str) -> Option<&'a str> {
    header(req, "Cookie")?
        .split(';')
        .filter_map(|c| c.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// The identity of a request: a bearer token (which must be valid when
/// presented), else a live session cookie of an enabled user, else none.
pub fn identify(ctx: &Ctx, req: &Request) -> Result<Option<Identity>, ApiError> {
    if let Some(p) = principal(ctx, req)? {
        ctx.clients
            .seen(MachineKey::new(&p.user, &p.device.machine).as_str());
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
    let Some((user, csrf)) = ctx.sessions.get(id) else {
        return Ok(None);
    };
    let accounts = ctx.accounts.current()?;
    let Some(role) = accounts
        .users
        .get(&user)
        .filter(|u| !u.disabled)
        .map(|u| u.role)
    else {
        ctx.sessions.close(id);
        return Ok(None);
    };
    Ok(Some(Identity {
        user,
        role,
        machine: None,
        session: Some((id.to_string(), csrf)),
    }))
}

/// Checks a name and password with the rate limits; Ok(user) on success.
pub fn check_login(ctx: &Ctx, user: &str, password: &str, addr: &str) -> Result<String, ApiError> {
    let (user_key, addr_key) = (format!("user:{user}"), format!("addr:{addr}"));
    let wait = [&user_key, &addr_key]
        .iter()
        .filter_map(|k| ctx.limiter.check(k).err())
        .max();
    if let Some(retry_after) = wait {
        return Err(ApiError::TooManyAttempts { retry_after });
    }
    let verified = ctx.accounts.store().verify(user, password)?;
    match verified {
        Some((user, _)) => {
            ctx.limiter.succeeded(&user_key);
            ctx.limiter.succeeded(&addr_key);
            Ok(user)
        }
        None => {
            ctx.limiter.failed(&user_key);
            ctx.limiter.failed(&addr_key);
            Err(ApiError::Unauthorized(
                "wrong user name or password (or the account is disabled)".into(),
            ))
        }
    }
}

/// The client's address: the peer's, or behind a trusted proxy the last
/// address the proxy appended to X-Forwarded-For.
pub fn remote_addr(ctx: &Ctx, req: &Request) -> String {
    if ctx.trust_proxy {
        if let Some(addr) = header(req, "X-Forwarded-For")
            .and_then(|v| v.rsplit(',').next())
            .map(str::trim)
            .filter(|a| a.parse::<std::net::IpAddr>().is_ok())
        {
            return addr.to_string();
        }
    }
    req.remote_addr()
        .map(|a| a.ip().to_string())
        .unwrap_or_default()
}

/// Failed login attempts per key ("user:NAME", "addr:IP").
#[derive(Default)]
pub struct Limiter {
    failures: Mutex<HashMap<String, (u32, Instant)>>,
}

impl Limiter {
    /// Err(seconds to wait) while `key` is in its delay.
    pub fn check(&self, key: &str) -> Result<(), u64> {
        let map = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        match map.get(key) {
            Some((n, last)) if *n >= FREE_FAILURES => {
                let delay = delay_after(*n);
                let waited = last.elapsed();
                if waited < delay {
                    Err(((delay - waited).as_secs_f64().ceil() as u64).max(1))
                } else {
                    Ok(())
                }
            }
            _ => Ok(()),
        }
    }

    pub fn failed(&self, key: &str) {
        let mut map = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        if map.len() > 10_000 {
            map.retain(|_, (_, last)| last.elapsed() < MAX_DELAY * 2);
        }
        let e = map.entry(key.to_string()).or_insert((0, Instant::now()));
        e.0 = e.0.saturating_add(1);
        e.1 = Instant::now();
    }

    fn succeeded(&self, key: &str) {
        self.failures
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(key);
    }
}

/// 1 s after the allowed failures, doubling each time, at most 5 minutes.
fn delay_after(failures: u32) -> Duration {
    let exp = failures.saturating_sub(FREE_FAILURES).min(16);
    Duration::from_secs(1u64 << exp).min(MAX_DELAY)
}

/// The principal of a request that presents a bearer token; `None` when it
/// presents none. A malformed, unknown or revoked token is a 401.
pub fn principal(ctx: &Ctx, req: &Request) -> Result<Option<Principal>, ApiError> {
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
    let accounts = ctx.accounts.current()?;
    accounts.authenticate(token).map(Some).ok_or_else(|| {
        ApiError::Unauthorized(
            "this device's token is not valid (revoked, replaced or unknown); run 'nimbus-client login' again".into(),
        )
    })
}

/// `POST /api/v1/login`: name, password and machine in, device token out.
pub fn login(ctx: &Ctx, req: &mut Request) -> Handled {
    let addr = remote_addr(ctx, req);
    let body = super::router::small_body(req, MAX_LOGIN_BODY)?;
    let r: LoginRequest = serde_json::from_slice(&body).map_err(|_| {
        ApiError::bad(
            "bad_json",
            "body must be JSON {\"user\", \"password\", \"machine\"}",
        )
    })?;
    nimbus_common::paths::validate_client_name(&r.machine)?;
    let user = check_login(ctx, &r.user, &r.password, &addr)?;
    let (device, token) = ctx.accounts.store().register_device(&user, &r.machine)?;
    log::info!(
        "{user} logged in from machine {:?} (device {})",
        r.machine,
        device.id
    );
    Ok(Reply::json(
        200,
        &LoginReply {
            user,
            machine: device.machine,
            device: device.id,
            token,
        },
    ))
}

#[derive(Serialize)]
struct DeviceView {
    id: String,
    machine: String,
    created_at: String,
    revoked: bool,
}

/// `GET /api/v1/devices`: the caller's devices.
pub fn devices(ctx: &Ctx, who: Option<Identity>) -> Handled {
    let who = require(who)?;
    let accounts = ctx.accounts.current()?;
    let list: Vec<DeviceView> = accounts
        .devices
        .iter()
        .filter(|d| d.user == who.user)
        .map(|d| DeviceView {
            id: d.id.clone(),
            machine: d.machine.clone(),
            created_at: format_utc(d.created_at),
            revoked: d.revoked,
        })
        .collect();
    Ok(Reply::json(200, &list))
}

/// `GET /api/v1/session`: who is asking, and for a browser session its
/// CSRF token (a page's script renews its token with it after logging in
/// again; other sites cannot read the answer).
pub fn session(who: Option<Identity>) -> Handled {
    let who = require(who)?;
    Ok(Reply::json(
        200,
        &serde_json::json!({
            "user": who.user,
            "role": who.role,
            "machine": who.machine,
            "csrf": who.session.map(|(_, csrf)| csrf),
        }),
    )
    .header("Cache-Control", "no-store"))
}

/// `DELETE /api/v1/devices/{id}`: revokes one of the caller's devices. From
/// a browser session it needs the `X-CSRF-Token` header.
pub fn revoke(ctx: &Ctx, req: &Request, who: Option<Identity>, id: &str) -> Handled {
    let who = require(who)?;
    super::web::check_csrf(&who, header(req, "X-CSRF-Token"))?;
    revoke_for(ctx, &who, id)?;
    Ok(Reply::new(204))
}

/// Revokes `who`'s device `id`; another user's device is 404, like a
/// missing one. A machine's own token may revoke only that machine: malware
/// on one machine must not lock the owner's other machines out.
pub fn revoke_for(ctx: &Ctx, who: &Identity, id: &str) -> Result<(), ApiError> {
    if let Some(machine) = &who.machine {
        let accounts = ctx.accounts.current()?;
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
    match ctx.accounts.store().revoke_device(&who.user, id) {
        Ok(()) => Ok(()),
        Err(AccountError::NoSuchDevice(_)) => Err(ApiError::NotFound),
        Err(e) => Err(e.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_grow_after_the_free_failures() {
        assert_eq!(delay_after(3), Duration::from_secs(1));
        assert_eq!(delay_after(4), Duration::from_secs(2));
        assert_eq!(delay_after(6), Duration::from_secs(8));
        assert_eq!(delay_after(100), MAX_DELAY);
        let l = Limiter::default();
        for _ in 0..FREE_FAILURES {
            assert!(l.check("user:x").is_ok());
            l.failed("user:x");
        }
        assert!(l.check("user:x").is_err());
        assert!(l.check("user:y").is_ok());
        l.succeeded("user:x");
        assert!(l.check("user:x").is_ok());
    }
}
