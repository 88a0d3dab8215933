//! Browser sessions, in memory, and their cookie.

use crate::http::core::request::Peer;
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};
use tiny_http::Request;

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
    pub fn get(&self, id: &str) -> Option<(String, String)> {
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

/// The `Set-Cookie` value that sets the session cookie to `value` for
/// `max_age` seconds (0: removes it). `Secure` when the browser came over
/// HTTPS.
pub fn session_cookie(peer: Peer, req: &Request, value: &str, max_age: u64) -> String {
    let secure = if peer.https(req) { "; Secure" } else { "" };
    format!(
        "{SESSION_COOKIE}={value}; Path=/; HttpOnly; SameSite=Strict; Max-Age={max_age}{secure}"
    )
}

/// The `Set-Cookie` value of a new session.
pub fn new_session_cookie(peer: Peer, req: &Request, id: &str) -> String {
    session_cookie(peer, req, id, SESSION_TTL.as_secs())
}
