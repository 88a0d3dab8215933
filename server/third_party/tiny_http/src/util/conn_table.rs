//! NIMBUS-PATCH: the open connections, so that the accept loop can keep
//! their number under a cap: at the cap, the connection idle the longest (no
//! request in flight) is closed to make room; when none is idle the new
//! connection is closed at once. Descriptors then never run out for the rest
//! of the process, and a flood of idle connections cannot lock out a client.

use std::collections::HashMap;
use std::net::Shutdown;
use std::sync::{Arc, Mutex};

use crate::util::socket::Socket;

pub(crate) struct ConnTable {
    max: usize,
    inner: Mutex<Inner>,
}

struct Inner {
    next_id: u64,
    open: HashMap<u64, Arc<Socket>>,
}

/// A connection's place in the table, given back when dropped.
pub(crate) struct Registration {
    table: Arc<ConnTable>,
    id: u64,
}

impl ConnTable {
    /// `max == 0` means no cap.
    pub(crate) fn new(max: usize) -> Arc<ConnTable> {
        Arc::new(ConnTable {
            max,
            inner: Mutex::new(Inner {
                next_id: 0,
                open: HashMap::new(),
            }),
        })
    }

    /// Takes `socket` in, closing the oldest idle connection if the table is
    /// full; `None` (the caller closes `socket`) when full of busy ones.
    pub(crate) fn admit(self: &Arc<Self>, socket: Arc<Socket>) -> Option<Registration> {
        let mut inner = self.lock();
        if self.max > 0 && inner.open.len() >= self.max && !evict_oldest_idle(&mut inner) {
            return None;
        }
        let id = inner.next_id;
        inner.next_id += 1;
        inner.open.insert(id, socket);
        Some(Registration {
            table: self.clone(),
            id,
        })
    }

    /// Closes the connection idle the longest, if any (descriptors ran out).
    pub(crate) fn evict_oldest_idle(&self) -> bool {
        evict_oldest_idle(&mut self.lock())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }
}

fn evict_oldest_idle(inner: &mut Inner) -> bool {
    let oldest = inner
        .open
        .iter()
        .filter_map(|(id, s)| s.idle_since().map(|t| (t, *id)))
        .min();
    match oldest {
        Some((_, id)) => {
            if let Some(socket) = inner.open.remove(&id) {
                // The connection's thread sees end-of-file or an error at once
                // and drops the socket.
                let _ = socket.shutdown(Shutdown::Both);
            }
            true
        }
        None => false,
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        self.table.lock().open.remove(&self.id);
    }
}
