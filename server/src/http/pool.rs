//! The top of the HTTP front: the acceptor hands each request to one of
//! two bounded crossbeam channels (requests with a body still to receive,
//! and the rest), each served by `--workers` threads. Responses go back to
//! the connection's own thread, which writes them. A full queue is
//! answered 503 at once; a panicking handler is answered 500 and its
//! worker carries on.

use super::core::{ApiError, Reply};
use super::ctx::Ctx;
use super::router::route;
use crate::store::DataManager;
use crossbeam::channel::{self, TrySendError};
use log::{error, info, warn};
use std::panic::{self, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};
use tiny_http::{Request, Server};

/// How long shutdown waits for in-flight requests.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

/// Serves until `stop` is set and `server.unblock()` is called; returns the
/// context for what shutdown still needs.
pub fn serve(
    server: Arc<Server>,
    ctx: &'static Ctx,
    workers: usize,
    queue: usize,
    stop: Arc<AtomicBool>,
) {
    // Two lanes, each with `workers` threads and a queue of `queue`: one
    // for requests whose body is still to be received (uploads), one for
    // the rest. Bodies that arrive slowly (or stop, until --body-timeout)
    // hold upload workers only, never the listings, downloads and pages.
    let (quick_tx, quick_rx) = channel::bounded::<Request>(queue);
    let (body_tx, body_rx) = channel::bounded::<Request>(queue);
    ctx.watch_queues([quick_rx.clone(), body_rx.clone()]);
    let handles: Vec<_> = [("worker", quick_rx), ("upload-worker", body_rx)]
        .into_iter()
        .flat_map(|(name, rx)| {
            (0..workers).map(move |i| {
                let rx = rx.clone();
                thread::Builder::new()
                    .name(format!("{name}-{i}"))
                    .spawn(move || {
                        for req in rx {
                            handle(ctx, req);
                        }
                    })
                    .expect("spawn worker")
            })
        })
        .collect();

    while !stop.load(Ordering::SeqCst) {
        let req = match server.recv() {
            Ok(r) => r,
            Err(e) => {
                // tiny_http reports an accept() failure once per burst (it
                // backs off and retries by itself), and when it recovers.
                if !stop.load(Ordering::SeqCst) {
                    warn!("listener: {e}");
                }
                continue;
            }
        };
        let lane = if req.body_done() { &quick_tx } else { &body_tx };
        match lane.try_send(req) {
            Ok(()) => {}
            Err(TrySendError::Full(req)) => {
                // Answered by the connection's own thread, which then closes
                // the connection without reading any body: costs nothing here.
                ctx.meter.count(503);
                respond(req, ApiError::Busy.into_reply());
            }
            Err(TrySendError::Disconnected(_)) => break,
        }
    }

    drop(quick_tx);
    drop(body_tx);
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
}

fn handle(ctx: &Ctx, mut req: Request) {
    let started = Instant::now();
    let method = req.method().clone();
    let url = req.url().to_string();
    let credentialed = req
        .headers()
        .iter()
        .any(|h| h.field.equiv("Authorization") || h.field.equiv("Cookie"));
    let reply = match panic::catch_unwind(AssertUnwindSafe(|| route(ctx, &mut req))) {
        Ok(Ok(reply)) => reply,
        Ok(Err(e)) => {
            match &e {
                ApiError::Internal(detail) => error!("{method} {url}: {detail}"),
                ApiError::StoreUnavailable(detail) => {
                    warn!("{method} {url}: answered 503: {detail}")
                }
                _ => {}
            }
            e.into_reply()
        }
        Err(_) => {
            error!("{method} {url}: handler panicked; answered 500");
            ApiError::Internal("panic".into()).into_reply()
        }
    };
    let reply = reply.with_cache_defaults(credentialed);
    let status = reply.status;
    ctx.meter.count(status);
    respond(req, reply);
    if status >= 500 {
        warn!("{method} {url} -> {status} in {:?}", started.elapsed());
    }
}

/// Hands the response to the connection's thread, which writes it: a peer
/// that does not read holds that thread (until `--send-timeout`), never a
/// worker.
fn respond(req: Request, reply: Reply) {
    req.hand_back(reply.into_response());
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
