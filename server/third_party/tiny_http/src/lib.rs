//! # Simple usage
//!
//! ## Creating the server
//!
//! The easiest way to create a server is to call `Server::http()`.
//!
//! The `http()` function returns an `IoResult<Server>` which will return an error
//! in the case where the server creation fails (for example if the listening port is already
//! occupied).
//!
//! ```no_run
//! let server = tiny_http::Server::http("0.0.0.0:0").unwrap();
//! ```
//!
//! A newly-created `Server` will immediately start listening for incoming connections and HTTP
//! requests.
//!
//! ## Receiving requests
//!
//! Calling `server.recv()` will block until the next request is available.
//! This function returns an `IoResult<Request>`, so you need to handle the possible errors.
//!
//! ```no_run
//! # let server = tiny_http::Server::http("0.0.0.0:0").unwrap();
//!
//! loop {
//!     // blocks until the next request is received
//!     let request = match server.recv() {
//!         Ok(rq) => rq,
//!         Err(e) => { println!("error: {}", e); break }
//!     };
//!
//!     // do something with the request
//!     // ...
//! }
//! ```
//!
//! In a real-case scenario, you will probably want to spawn multiple worker tasks and call
//! `server.recv()` on all of them. Like this:
//!
//! ```no_run
//! # use std::sync::Arc;
//! # use std::thread;
//! # let server = tiny_http::Server::http("0.0.0.0:0").unwrap();
//! let server = Arc::new(server);
//! let mut guards = Vec::with_capacity(4);
//!
//! for _ in (0 .. 4) {
//!     let server = server.clone();
//!
//!     let guard = thread::spawn(move || {
//!         loop {
//!             let rq = server.recv().unwrap();
//!
//!             // ...
//!         }
//!     });
//!
//!     guards.push(guard);
//! }
//! ```
//!
//! If you don't want to block, you can call `server.try_recv()` instead.
//!
//! ## Handling requests
//!
//! The `Request` object returned by `server.recv()` contains informations about the client's request.
//! The most useful methods are probably `request.method()` and `request.url()` which return
//! the requested method (`GET`, `POST`, etc.) and url.
//!
//! To handle a request, you need to create a `Response` object. See the docs of this object for
//! more infos. Here is an example of creating a `Response` from a file:
//!
//! ```no_run
//! # use std::fs::File;
//! # use std::path::Path;
//! let response = tiny_http::Response::from_file(File::open(&Path::new("image.png")).unwrap());
//! ```
//!
//! All that remains to do is call `request.respond()`:
//!
//! ```no_run
//! # use std::fs::File;
//! # use std::path::Path;
//! # let server = tiny_http::Server::http("0.0.0.0:0").unwrap();
//! # let request = server.recv().unwrap();
//! # let response = tiny_http::Response::from_file(File::open(&Path::new("image.png")).unwrap());
//! let _ = request.respond(response);
//! ```
#![forbid(unsafe_code)]
#![deny(rust_2018_idioms)]
#![allow(clippy::match_like_matches_macro)]

#[cfg(any(feature = "ssl-openssl", feature = "ssl-rustls"))]
use zeroize::Zeroizing;

use std::error::Error;
use std::io::Error as IoError;
use std::io::ErrorKind as IoErrorKind;
use std::io::Result as IoResult;
use std::net::{Shutdown, TcpStream, ToSocketAddrs};
use std::sync::atomic::AtomicBool;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::mpsc;
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use client::ClientConnection;
use std::time::Instant;
use util::socket::{ReadPolicy, Socket, SocketRef};
use connection::Connection;
use util::MessagesQueue;

pub use common::{HTTPVersion, Header, HeaderField, Method, StatusCode};
pub use connection::{ConfigListenAddr, ListenAddr, Listener};
pub use request::{ReadWrite, Request};
pub use response::{Response, ResponseBox};
pub use test::TestRequest;

mod client;
mod common;
mod connection;
mod request;
mod response;
mod ssl;
mod test;
mod util;

/// The main class of this library.
///
/// Destroying this object will immediately close the listening socket and the reading
///  part of all the client's connections. Requests that have already been returned by
///  the `recv()` function will not close and the responses will be transferred to the client.
pub struct Server {
    // should be false as long as the server exists
    // when set to true, all the subtasks will close within a few hundreds ms
    close: Arc<AtomicBool>,

    // queue for messages received by child threads
    messages: Arc<MessagesQueue<Message>>,

    // result of TcpListener::local_addr()
    listening_addr: ListenAddr,
}

enum Message {
    Error(IoError),
    NewRequest(Request),
}

impl From<IoError> for Message {
    fn from(e: IoError) -> Message {
        Message::Error(e)
    }
}

impl From<Request> for Message {
    fn from(rq: Request) -> Message {
        Message::NewRequest(rq)
    }
}

// this trait is to make sure that Server implements Share and Send
#[doc(hidden)]
trait MustBeShareDummy: Sync + Send {}
#[doc(hidden)]
impl MustBeShareDummy for Server {}

pub struct IncomingRequests<'a> {
    server: &'a Server,
}

/// Represents the parameters required to create a server.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// The addresses to try to listen to.
    pub addr: ConfigListenAddr,

    /// If `Some`, then the server will use SSL to encode the communications.
    pub ssl: Option<SslConfig>,
}

/// Configuration of the server for SSL.
#[derive(Debug, Clone)]
pub struct SslConfig {
    /// Contains the public certificate to send to clients.
    pub certificate: Vec<u8>,
    /// Contains the ultra-secret private key used to decode communications.
    pub private_key: Vec<u8>,
}

/// NIMBUS-PATCH: what one connection may cost the server. Every wait on
/// the peer is bounded, and so are the head's size and the number of open
/// connections.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Open connections at most; at the cap the one idle the longest is
    /// closed for a new one, or the new one is closed when none is idle.
    /// 0: no cap.
    pub max_connections: usize,
    /// The whole request head must arrive within this (from the accept, or
    /// from its first byte on a reused connection); 408 otherwise.
    pub header_timeout: Duration,
    /// An idle keep-alive connection is closed after this.
    pub keepalive_timeout: Duration,
    /// A body read that gets no byte for this long fails (`TimedOut`).
    pub body_timeout: Duration,
    /// A response write that the peer does not take for this long fails,
    /// and the connection is dropped.
    pub send_timeout: Duration,
    /// The request line at most (414 beyond).
    pub max_request_line: usize,
    /// All header lines together at most (431 beyond).
    pub max_header_bytes: usize,
    /// Header fields at most (431 beyond).
    pub max_headers: usize,
    /// How long a connection closed with its request body unread goes on
    /// reading (and discarding) what the peer sends, so that the peer sees
    /// the response rather than a reset.
    pub linger: Duration,
    /// ... and at most this many bytes.
    pub linger_bytes: usize,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            max_connections: 0,
            header_timeout: Duration::from_secs(10),
            keepalive_timeout: Duration::from_secs(30),
            body_timeout: Duration::from_secs(30),
            send_timeout: Duration::from_secs(30),
            max_request_line: 8 * 1024,
            max_header_bytes: 64 * 1024,
            max_headers: 100,
            linger: Duration::from_secs(2),
            linger_bytes: 4 << 20,
        }
    }
}

impl Server {
    /// Shortcut for a simple server on a specific address.
    #[inline]
    pub fn http<A>(addr: A) -> Result<Server, Box<dyn Error + Send + Sync + 'static>>
    where
        A: ToSocketAddrs,
    {
        Server::new(ServerConfig {
            addr: ConfigListenAddr::from_socket_addrs(addr)?,
            ssl: None,
        })
    }

    /// Shortcut for an HTTPS server on a specific address.
    #[cfg(any(feature = "ssl-openssl", feature = "ssl-rustls"))]
    #[inline]
    pub fn https<A>(
        addr: A,
        config: SslConfig,
    ) -> Result<Server, Box<dyn Error + Send + Sync + 'static>>
    where
        A: ToSocketAddrs,
    {
        Server::new(ServerConfig {
            addr: ConfigListenAddr::from_socket_addrs(addr)?,
            ssl: Some(config),
        })
    }

    #[cfg(unix)]
    #[inline]
    /// Shortcut for a UNIX socket server at a specific path
    pub fn http_unix(
        path: &std::path::Path,
    ) -> Result<Server, Box<dyn Error + Send + Sync + 'static>> {
        Server::new(ServerConfig {
            addr: ConfigListenAddr::unix_from_path(path),
            ssl: None,
        })
    }

    /// Builds a new server that listens on the specified address.
    pub fn new(config: ServerConfig) -> Result<Server, Box<dyn Error + Send + Sync + 'static>> {
        let listener = config.addr.bind()?;
        Self::from_listener(listener, config.ssl)
    }

    /// Builds a new server using the specified TCP listener.
    ///
    /// This is useful if you've constructed TcpListener using some less usual method
    /// such as from systemd. For other cases, you probably want the `new()` function.
    pub fn from_listener<L: Into<Listener>>(
        listener: L,
        ssl_config: Option<SslConfig>,
    ) -> Result<Server, Box<dyn Error + Send + Sync + 'static>> {
        Self::from_listener_with_limits(listener, ssl_config, Limits::default())
    }

    /// NIMBUS-PATCH: [`Server::from_listener`] with the given [`Limits`].
    pub fn from_listener_with_limits<L: Into<Listener>>(
        listener: L,
        ssl_config: Option<SslConfig>,
        limits: Limits,
    ) -> Result<Server, Box<dyn Error + Send + Sync + 'static>> {
        let listener = listener.into();
        let limits = Arc::new(limits);
        // building the "close" variable
        let close_trigger = Arc::new(AtomicBool::new(false));

        // building the TcpListener
        let (server, local_addr) = {
            let local_addr = listener.local_addr()?;
            log::debug!("Server listening on {}", local_addr);
            (listener, local_addr)
        };

        // building the SSL capabilities
        #[cfg(all(feature = "ssl-openssl", feature = "ssl-rustls"))]
        compile_error!(
            "Features 'ssl-openssl' and 'ssl-rustls' must not be enabled at the same time"
        );
        #[cfg(not(any(feature = "ssl-openssl", feature = "ssl-rustls")))]
        type SslContext = ();
        #[cfg(any(feature = "ssl-openssl", feature = "ssl-rustls"))]
        type SslContext = crate::ssl::SslContextImpl;
        let ssl: Option<SslContext> = {
            match ssl_config {
                #[cfg(any(feature = "ssl-openssl", feature = "ssl-rustls"))]
                Some(config) => Some(SslContext::from_pem(
                    config.certificate,
                    Zeroizing::new(config.private_key),
                )?),
                #[cfg(not(any(feature = "ssl-openssl", feature = "ssl-rustls")))]
                Some(_) => return Err(
                    "Building a server with SSL requires enabling the `ssl` feature in tiny-http"
                        .into(),
                ),
                None => None,
            }
        };

        // creating a task where server.accept() is continuously called
        // and ClientConnection objects are pushed in the messages queue
        let messages = MessagesQueue::with_capacity(8);

        let inside_close_trigger = close_trigger.clone();
        let inside_messages = messages.clone();
        thread::spawn(move || {
            // a tasks pool is used to dispatch the connections into threads
            let tasks_pool = util::TaskPool::new();
            let table = util::conn_table::ConnTable::new(limits.max_connections);
            let ssl = ssl.map(Arc::new);

            log::debug!("Running accept thread");
            // NIMBUS-PATCH: an accept() error never ends the loop (upstream
            // broke out of it, so the first EMFILE closed the listener for
            // good while the process lived on). It backs off, 5 ms doubling
            // to 1 s as Go's net/http does, and is reported through
            // `Server::recv` at most every ACCEPT_REPORT_EVERY (with the
            // count of the failures in between), and so is the recovery.
            // Out of descriptors, the oldest idle connections go.
            let mut unreported: u64 = 0;
            let mut last_report: Option<Instant> = None;
            let mut reported_failure = false;
            let mut backoff = Duration::ZERO;
            while !inside_close_trigger.load(Relaxed) {
                let sock = match server.accept() {
                    Ok((sock, _)) => sock,
                    Err(e) => {
                        if inside_close_trigger.load(Relaxed) {
                            break;
                        }
                        unreported += 1;
                        if last_report.map_or(true, |t| t.elapsed() >= ACCEPT_REPORT_EVERY) {
                            log::error!("Error accepting new client: {}", e);
                            inside_messages.push(
                                IoError::new(
                                    e.kind(),
                                    format!(
                                        "accept() failed: {e} ({unreported} failure(s) since the \
                                         last report); retrying with backoff"
                                    ),
                                )
                                .into(),
                            );
                            last_report = Some(Instant::now());
                            reported_failure = true;
                            unreported = 0;
                        }
                        if matches!(e.raw_os_error(), Some(23) | Some(24)) {
                            for _ in 0..EVICT_ON_EMFILE {
                                if !table.evict_oldest_idle() {
                                    break;
                                }
                            }
                        }
                        backoff = (backoff * 2)
                            .clamp(Duration::from_millis(5), Duration::from_secs(1));
                        thread::sleep(backoff);
                        continue;
                    }
                };
                backoff = Duration::ZERO;
                if reported_failure {
                    inside_messages.push(
                        IoError::new(IoErrorKind::Other, "accept() works again").into(),
                    );
                    reported_failure = false;
                }
                if inside_close_trigger.load(Relaxed) {
                    break;
                }

                let socket = Socket::new(
                    sock,
                    ReadPolicy::Deadline(Instant::now() + limits.header_timeout),
                );
                let _ = socket.set_nodelay();
                let _ = socket.set_write_timeout(limits.send_timeout);
                // At the cap with nothing idle: closed at once (dropped).
                let Some(registration) = table.admit(socket.clone()) else {
                    continue;
                };

                let messages = inside_messages.clone();
                let ssl = ssl.clone();
                let mut task = Some((socket, registration, limits.clone()));
                tasks_pool.spawn(Box::new(move || {
                    let Some((socket, registration, limits)) = task.take() else {
                        return;
                    };
                    use util::RefinedTcpStream;
                    let stream = SocketRef(socket.clone());
                    let (read_closable, write_closable) = match ssl {
                        None => RefinedTcpStream::new(stream),
                        #[cfg(any(feature = "ssl-openssl", feature = "ssl-rustls"))]
                        Some(ref ssl) => match ssl.accept(stream) {
                            Ok(s) => RefinedTcpStream::new(s),
                            // not TLS: closed
                            Err(_) => return,
                        },
                        #[cfg(not(any(feature = "ssl-openssl", feature = "ssl-rustls")))]
                        Some(ref _ssl) => unreachable!(),
                    };
                    let client =
                        ClientConnection::new(write_closable, read_closable, socket, limits);
                    serve_connection(client, &messages);
                    drop(registration);
                }));
            }
            log::debug!("Terminating accept thread");
        });

        // result
        Ok(Server {
            messages,
            close: close_trigger,
            listening_addr: local_addr,
        })
    }

    /// Returns an iterator for all the incoming requests.
    ///
    /// The iterator will return `None` if the server socket is shutdown.
    #[inline]
    pub fn incoming_requests(&self) -> IncomingRequests<'_> {
        IncomingRequests { server: self }
    }

    /// Returns the address the server is listening to.
    #[inline]
    pub fn server_addr(&self) -> ListenAddr {
        self.listening_addr.clone()
    }

    /// Returns the number of clients currently connected to the server.
    pub fn num_connections(&self) -> usize {
        unimplemented!()
        //self.requests_receiver.lock().len()
    }

    /// Blocks until an HTTP request has been submitted and returns it.
    pub fn recv(&self) -> IoResult<Request> {
        match self.messages.pop() {
            Some(Message::Error(err)) => Err(err),
            Some(Message::NewRequest(rq)) => Ok(rq),
            None => Err(IoError::new(IoErrorKind::Other, "thread unblocked")),
        }
    }

    /// Same as `recv()` but doesn't block longer than timeout
    pub fn recv_timeout(&self, timeout: Duration) -> IoResult<Option<Request>> {
        match self.messages.pop_timeout(timeout) {
            Some(Message::Error(err)) => Err(err),
            Some(Message::NewRequest(rq)) => Ok(Some(rq)),
            None => Ok(None),
        }
    }

    /// Same as `recv()` but doesn't block.
    pub fn try_recv(&self) -> IoResult<Option<Request>> {
        match self.messages.try_pop() {
            Some(Message::Error(err)) => Err(err),
            Some(Message::NewRequest(rq)) => Ok(Some(rq)),
            None => Ok(None),
        }
    }

    /// Unblock thread stuck in recv() or incoming_requests().
    /// If there are several such threads, only one is unblocked.
    /// This method allows graceful shutdown of server.
    pub fn unblock(&self) {
        self.messages.unblock();
    }
}

/// NIMBUS-PATCH: accept() failures are reported through `Server::recv` at
/// most this often (with the count of the others); so is the recovery.
const ACCEPT_REPORT_EVERY: Duration = Duration::from_secs(10);

/// Idle connections closed when accept() runs out of descriptors.
const EVICT_ON_EMFILE: usize = 16;

/// NIMBUS-PATCH: one connection's thread. It reads each request head, hands
/// the request to `Server::recv`, waits for the request to come back with
/// its response (`Request::hand_back`), and writes it: a worker never waits
/// on a slow peer. Requests on one connection are served one at a time, the
/// way HTTPS already was (no pipelining).
fn serve_connection(mut client: ClientConnection, messages: &MessagesQueue<Message>) {
    while let Some(rq) = client.next() {
        let (tx, rx) = mpsc::channel();
        messages.push(rq.with_hand_back(tx).into());
        let keep_alive = match rx.recv() {
            Ok((rq, response)) => rq.respond_on_connection(response),
            // dropped unanswered: its `Drop` sent a 500; the body may be unread
            Err(_) => false,
        };
        if !keep_alive {
            client.close_lingering();
            return;
        }
    }
    if client.refused() {
        client.close_lingering();
    }
}

impl Iterator for IncomingRequests<'_> {
    type Item = Request;
    fn next(&mut self) -> Option<Request> {
        self.server.recv().ok()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.close.store(true, Relaxed);
        // Connect briefly to ourselves to unblock the accept thread
        let maybe_stream = match &self.listening_addr {
            ListenAddr::IP(addr) => TcpStream::connect(addr).map(Connection::from),
            #[cfg(unix)]
            ListenAddr::Unix(addr) => {
                // TODO: use connect_addr when its stabilized.
                let path = addr.as_pathname().unwrap();
                std::os::unix::net::UnixStream::connect(path).map(Connection::from)
            }
        };
        if let Ok(stream) = maybe_stream {
            let _ = stream.shutdown(Shutdown::Both);
        }

        #[cfg(unix)]
        if let ListenAddr::Unix(addr) = &self.listening_addr {
            if let Some(path) = addr.as_pathname() {
                let _ = std::fs::remove_file(path);
            }
        }
    }
}
