//! The HTTP front: a blocking tiny_http server whose acceptor hands each
//! request to a bounded crossbeam channel served by `--workers` threads.
//! A full queue is answered 503 at once; a panicking handler is answered 500
//! and its worker carries on.

mod admin;
mod auth;
mod browse;
mod download;
mod files;
mod health;
mod index;
pub mod range;
mod register;
mod reply;
mod restore;
mod router;
mod upload;
mod web;

use crate::store::DataManager;
use crossbeam::channel::{self, TrySendError};
use nimbus_common::{error, info, warn};
use reply::{ApiError, Reply};
use std::panic::{self, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};
use tiny_http::{Request, Server};

/// What handlers need besides the request.
pub struct Ctx {
    pub dm: &'static DataManager,
    pub max_upload_bytes: u64,
    pub accounts: auth::AccountsCache,
    pub limiter: auth::Limiter,
    pub sessions: auth::Sessions,
    /// Resumable uploads in progress.
    pub uploads: crate::uploads::Uploads,
    /// Last contact and last report of each client machine.
    pub clients: crate::clients::Clients,
    /// Take client addresses from X-Forwarded-For.
    pub trust_proxy: bool,
    /// Who may create an account from the browser.
    pub registration: crate::config::Registration,
    /// Seconds without contact after which a client is shown as stale.
    pub stale_after: u64,
    /// Request and error rates.
    pub meter: health::Meter,
    /// Bearer token a metrics scraper may use for `/metrics`.
    pub metrics_token: Option<String>,
    /// The worker queue, for its depth.
    queue: once_cell::sync::OnceCell<channel::Receiver<Request>>,
    pub queue_capacity: usize,
}

impl Ctx {
    /// Requests waiting for a worker.
    pub fn queue_depth(&self) -> usize {
        self.queue.get().map_or(0, |q| q.len())
    }
}

impl Ctx {
    pub fn new(
        dm: &'static DataManager,
        config: &crate::Config,
        accounts: crate::accounts::AccountStore,
        uploads: crate::uploads::Uploads,
    ) -> Ctx {
        Ctx {
            dm,
            max_upload_bytes: config.max_upload_bytes,
            accounts: auth::AccountsCache::new(accounts),
            limiter: auth::Limiter::default(),
            sessions: auth::Sessions::default(),
            uploads,
            clients: crate::clients::Clients::open(&config.data),
            trust_proxy: config.trust_proxy,
            registration: config.registration,
            stale_after: config.stale_after,
            meter: health::Meter::default(),
            metrics_token: config.metrics_token.clone(),
            queue: Default::default(),
            queue_capacity: config.queue,
        }
    }
}

/// How long shutdown waits for in-flight requests.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

/// Serves until `stop` is set and `server.unblock()` is called; returns the
/// context for what shutdown still needs.
pub fn serve(
    server: Arc<Server>,
    ctx: Ctx,
    workers: usize,
    queue: usize,
    stop: Arc<AtomicBool>,
) -> &'static Ctx {
    let ctx: &'static Ctx = Box::leak(Box::new(ctx));
    let (tx, rx) = channel::bounded::<Request>(queue);
    let _ = ctx.queue.set(rx.clone());
    // Busy answers go through their own thread: answering drains the
    // request's body, which must not stall the acceptor.
    let (busy_tx, busy_rx) = channel::bounded::<Request>(queue);
    let busy = thread::Builder::new()
        .name("busy".into())
        .spawn(move || {
            for req in busy_rx {
                respond(
                    req,
                    ApiError::Busy.into_reply().header("Connection", "close"),
                );
            }
        })
        .expect("spawn busy thread");
    let handles: Vec<_> = (0..workers)
        .map(|i| {
            let rx = rx.clone();
            thread::Builder::new()
                .name(format!("worker-{i}"))
                .spawn(move || {
                    for req in rx {
                        handle(ctx, req);
                    }
                })
                .expect("spawn worker")
        })
        .collect();
    drop(rx);

    while !stop.load(Ordering::SeqCst) {
        let req = match server.recv() {
            Ok(r) => r,
            Err(e) => {
                if !stop.load(Ordering::SeqCst) {
                    warn!("accept failed: {e}");
                    thread::sleep(Duration::from_millis(10));
                }
                continue;
            }
        };
        match tx.try_send(req) {
            Ok(()) => {}
            Err(TrySendError::Full(req)) => {
                if let Err(TrySendError::Full(req)) = busy_tx.try_send(req) {
                    respond(
                        req,
                        ApiError::Busy.into_reply().header("Connection", "close"),
                    );
                }
            }
            Err(TrySendError::Disconnected(_)) => break,
        }
    }

    drop(tx);
    drop(busy_tx);
    let deadline = Instant::now() + DRAIN_TIMEOUT;
    for h in handles {
        while !h.is_finished() && Instant::now() < deadline {
            thread::sleep(Duration::from_millis(20));
        }
        if h.is_finished() {
            let _ = h.join();
        } else {
            warn!("a request was still running at shutdown; it is abandoned (nothing it wrote is visible)");
        }
    }
    let _ = busy.join();
    ctx
}

fn handle(ctx: &Ctx, mut req: Request) {
    let started = Instant::now();
    let method = req.method().clone();
    let url = req.url().to_string();
    let reply = match panic::catch_unwind(AssertUnwindSafe(|| router::route(ctx, &mut req))) {
        Ok(Ok(reply)) => reply,
        Ok(Err(e)) => {
            if let ApiError::Internal(detail) = &e {
                error!("{method} {url}: {detail}");
            }
            e.into_reply()
        }
        Err(_) => {
            error!("{method} {url}: handler panicked; answered 500");
            ApiError::Internal("panic".into()).into_reply()
        }
    };
    let status = reply.status;
    ctx.meter.count(status);
    respond(req, reply);
    if status >= 500 {
        warn!("{method} {url} -> {status} in {:?}", started.elapsed());
    }
}

fn respond(req: Request, reply: Reply) {
    // A client that goes away mid-response is not the server's problem.
    let _ = req.respond(reply.into_response());
}

/// Logs the data directory's state at start.
pub fn log_start(dm: &DataManager) {
    let s = dm.stats();
    info!(
        "catalog: {} files, {} blobs ({} hot, {} packed{}), {} bytes stored for {} bytes of content",
        s.files,
        s.blobs,
        s.hot,
        s.packed,
        if s.missing > 0 {
            format!(", {} MISSING", s.missing)
        } else {
            String::new()
        },
        s.bytes_stored,
        s.bytes_original
    );
}
