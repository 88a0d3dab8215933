//! The server's health for machines: JSON at `/api/v1/admin/health` (an
//! admin) and Prometheus text at `/metrics` (an admin, or the
//! `--metrics-token` bearer token for a scraper).

use crate::http::auth::csrf::constant_time_eq;
use crate::http::auth::{require, require_admin, Identity};
use crate::http::core::request::header;
use crate::http::core::{Body, Handled, Reply};
use crate::http::ctx::Ctx;
use crate::http::views::health::health;
use std::fmt::Write;

/// `GET /api/v1/admin/health`
pub fn health_json(ctx: &Ctx, who: &Identity) -> Handled {
    require_admin(who)?;
    Ok(Reply::json(200, &health(ctx)))
}

/// `GET /metrics`: Prometheus text format. An admin, or a scraper with
/// `Authorization: Bearer <--metrics-token>`.
pub fn metrics(ctx: &Ctx, req: &tiny_http::Request, who: Option<Identity>) -> Handled {
    let scraper = ctx.metrics_token.as_deref().is_some_and(|t| {
        header(req, "Authorization")
            .and_then(|v| v.strip_prefix("Bearer "))
            .is_some_and(|given| constant_time_eq(given.trim(), t))
    });
    if !scraper {
        require_admin(&require(who)?)?;
    }
    let h = health(ctx);
    use Kind::{Counter, Gauge};
    let mut metrics = vec![
        Metric::new(
            "uptime_seconds",
            "Seconds since the server started.",
            Counter,
            h.uptime_secs,
        ),
        Metric::new(
            "stored_bytes",
            "Bytes the stored contents take on disk.",
            Gauge,
            h.stored_bytes,
        ),
        Metric::new(
            "content_bytes",
            "Bytes of the stored contents, unpacked.",
            Gauge,
            h.content_bytes,
        ),
        Metric::new(
            "saved_by_packing_bytes",
            "Bytes saved by bzip2 packing.",
            Gauge,
            h.saved_by_packing_bytes,
        ),
        Metric::new(
            "saved_by_dedup_bytes",
            "Bytes saved by storing identical content once.",
            Gauge,
            h.saved_by_dedup_bytes,
        ),
        Metric::new(
            "files",
            "Files with a current version.",
            Gauge,
            h.files as u64,
        ),
        Metric::new(
            "blobs_hot",
            "Stored contents kept as is.",
            Gauge,
            h.hot as u64,
        ),
        Metric::new(
            "blobs_packed",
            "Stored contents packed with bzip2.",
            Gauge,
            h.packed as u64,
        ),
        Metric::new(
            "blobs_missing",
            "Contents the catalog names but the disk lacks.",
            Gauge,
            h.missing as u64,
        ),
        Metric::new(
            "requests_total",
            "Requests answered.",
            Counter,
            h.requests_total,
        ),
        Metric::new(
            "errors_total",
            "Requests answered with a 5xx status.",
            Counter,
            h.errors_total,
        ),
        Metric::new(
            "chunk_bytes_received_total",
            "Chunk bytes received from clients, new or already held.",
            Counter,
            h.chunk_bytes_received,
        ),
        Metric::new(
            "chunks_received_total",
            "Chunks received from clients.",
            Counter,
            h.chunks_received,
        ),
        Metric::new(
            "queue_depth",
            "Requests waiting for a worker.",
            Gauge,
            h.queue_depth as u64,
        ),
    ];
    if let (Some(t), Some(f)) = (h.disk_total_bytes, h.disk_free_bytes) {
        metrics.insert(
            1,
            Metric::new(
                "disk_total_bytes",
                "Size of the file system holding the data directory.",
                Gauge,
                t,
            ),
        );
        metrics.insert(
            2,
            Metric::new(
                "disk_free_bytes",
                "Free space on that file system.",
                Gauge,
                f,
            ),
        );
    }
    let out = encode(&metrics);
    Ok(Reply::new(200)
        .header("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
        .body(Body::Bytes(out.into_bytes())))
}

/// A Prometheus metric type (text format 0.0.4).
#[derive(Clone, Copy)]
enum Kind {
    Counter,
    Gauge,
}

/// One sample of one metric, named without the `nimbus_` prefix. A tiny
/// typed encoder rather than `prometheus-client`: every figure is read
/// once per scrape from the server's state (no registry of live counters
/// to keep), and the format is six lines of code.
struct Metric {
    name: &'static str,
    help: &'static str,
    kind: Kind,
    value: u64,
}

impl Metric {
    fn new(name: &'static str, help: &'static str, kind: Kind, value: u64) -> Metric {
        Metric {
            name,
            help,
            kind,
            value,
        }
    }
}

/// The text exposition format: HELP, TYPE and the sample of each.
fn encode(metrics: &[Metric]) -> String {
    let mut out = String::new();
    for m in metrics {
        let kind = match m.kind {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
        };
        let _ = writeln!(out, "# HELP nimbus_{} {}", m.name, m.help);
        let _ = writeln!(out, "# TYPE nimbus_{} {kind}", m.name);
        let _ = writeln!(out, "nimbus_{} {}", m.name, m.value);
    }
    out
}
