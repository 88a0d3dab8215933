//! NIMBUS-PATCH: one accepted socket, shared by the side that reads requests,
//! the side that writes responses and the server's connection table, with
//! the read deadlines of an HTTP exchange applied on every read.
//!
//! Upstream gave the reading and the writing half each a `try_clone` of the
//! socket (two descriptors per connection) and never set a timeout, so a
//! peer that stopped sending held its connection thread forever.

use std::io::{Error as IoError, ErrorKind, Read, Result as IoResult, Write};
use std::net::{Shutdown, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::connection::Connection;

/// How long the next read from the peer may wait.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ReadPolicy {
    /// Everything must have arrived by then (a request head).
    Deadline(Instant),
    /// Each read may wait this long for the next byte (a body, or an idle
    /// keep-alive connection).
    Idle(Duration),
}

struct ReadState {
    policy: ReadPolicy,
    /// The SO_RCVTIMEO last set, to skip the system call when it is unchanged.
    applied: Option<Duration>,
}

pub(crate) struct Socket {
    conn: Connection,
    read: Mutex<ReadState>,
    /// Since when the connection has had no request in flight (it waits for
    /// the next request head, or reads one, or the small body read with
    /// it); `None` while a request is being handled or answered. The
    /// connection table evicts the oldest of these.
    idle_since: Mutex<Option<Instant>>,
    /// SO_SNDTIMEO, also applied to writes that end in a trickle.
    send_timeout: Mutex<Option<Duration>>,
}

/// The shortest read timeout set: the socket API refuses zero.
const MIN_TIMEOUT: Duration = Duration::from_millis(1);

impl Socket {
    pub(crate) fn new(conn: Connection, policy: ReadPolicy) -> Arc<Socket> {
        Arc::new(Socket {
            conn,
            read: Mutex::new(ReadState {
                policy,
                applied: None,
            }),
            idle_since: Mutex::new(Some(Instant::now())),
            send_timeout: Mutex::new(None),
        })
    }

    pub(crate) fn set_read_policy(&self, policy: ReadPolicy) {
        self.read.lock().unwrap_or_else(|e| e.into_inner()).policy = policy;
    }

    pub(crate) fn set_write_timeout(&self, timeout: Duration) -> IoResult<()> {
        let timeout = timeout.max(MIN_TIMEOUT);
        *self.send_timeout.lock().unwrap_or_else(|e| e.into_inner()) = Some(timeout);
        self.conn.set_write_timeout(Some(timeout))
    }

    pub(crate) fn set_nodelay(&self) -> IoResult<()> {
        self.conn.set_nodelay()
    }

    pub(crate) fn set_idle(&self, idle: bool) {
        let mut since = self.idle_since.lock().unwrap_or_else(|e| e.into_inner());
        *since = if idle { Some(Instant::now()) } else { None };
    }

    pub(crate) fn idle_since(&self) -> Option<Instant> {
        *self.idle_since.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn shutdown(&self, how: Shutdown) -> IoResult<()> {
        self.conn.shutdown(how)
    }

    pub(crate) fn peer_addr(&self) -> IoResult<Option<SocketAddr>> {
        self.conn.peer_addr_ref()
    }

    fn apply_read_policy(&self) -> IoResult<()> {
        let mut state = self.read.lock().unwrap_or_else(|e| e.into_inner());
        let wait = match state.policy {
            ReadPolicy::Deadline(at) => {
                let now = Instant::now();
                if at <= now {
                    return Err(IoError::new(ErrorKind::TimedOut, "read deadline passed"));
                }
                (at - now).max(MIN_TIMEOUT)
            }
            ReadPolicy::Idle(wait) => wait.max(MIN_TIMEOUT),
        };
        if state.applied != Some(wait) {
            self.conn.set_read_timeout(Some(wait))?;
            state.applied = Some(wait);
        }
        Ok(())
    }
}

/// A handle on a [`Socket`] that reads and writes it (cheap to clone).
#[derive(Clone)]
pub(crate) struct SocketRef(pub(crate) Arc<Socket>);

impl Read for SocketRef {
    fn read(&mut self, buf: &mut [u8]) -> IoResult<usize> {
        self.0.apply_read_policy()?;
        self.0.conn.read_ref(buf).map_err(timed_out)
    }
}

impl Write for SocketRef {
    /// A write that waited the whole send timeout fails even if a few bytes
    /// went out at its end: a peer that does not read still lets its kernel
    /// take a trickle now and then (zero-window probes, a growing receive
    /// buffer), which would otherwise keep a stalled response alive for
    /// many times the timeout.
    fn write(&mut self, buf: &[u8]) -> IoResult<usize> {
        let started = Instant::now();
        let written = self.0.conn.write_ref(buf).map_err(timed_out)?;
        let limit = *self.0.send_timeout.lock().unwrap_or_else(|e| e.into_inner());
        match limit {
            Some(limit) if started.elapsed() >= limit => Err(IoError::new(
                ErrorKind::TimedOut,
                "the peer read nothing for the send timeout",
            )),
            _ => Ok(written),
        }
    }

    fn flush(&mut self) -> IoResult<()> {
        Ok(())
    }
}

/// A socket timeout shows as `WouldBlock` on Unix and `TimedOut` on
/// Windows; callers see `TimedOut` on both.
fn timed_out(e: IoError) -> IoError {
    if e.kind() == ErrorKind::WouldBlock {
        IoError::new(ErrorKind::TimedOut, "the peer sent or read nothing in time")
    } else {
        e
    }
}
