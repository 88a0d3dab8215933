//! Server health for the admin: disk, storage savings, counts, uptime,
//! request and error rates, queue depth. As JSON at
//! `/api/v1/admin/health`, as Prometheus text at `/metrics` (an admin, or
//! the `--metrics-token` bearer token for a scraper), and on `/admin`.

use super::auth::Identity;
use super::reply::{ApiError, Body, Reply};
use super::router::{header, Handled};
use super::Ctx;
use crate::accounts::Role;
use serde::Serialize;
use std::fmt::Write;
use std::sync::Mutex;
use std::time::Instant;

/// Requests and errors of the last 60 seconds, in one-second buckets.
pub struct Meter {
    started: Instant,
    /// (second since start, requests, server errors) per bucket.
    buckets: Mutex<[(u64, u64, u64); 60]>,
    pub total: std::sync::atomic::AtomicU64,
    pub errors: std::sync::atomic::AtomicU64,
}

impl Default for Meter {
    fn default() -> Self {
        Meter {
            started: Instant::now(),
            buckets: Mutex::new([(u64::MAX, 0, 0); 60]),
            total: Default::default(),
            errors: Default::default(),
        }
    }
}

impl Meter {
    /// Counts one answered request; `status >= 500` counts as an error.
    pub fn count(&self, status: u16) {
        use std::sync::atomic::Ordering::Relaxed;
        let sec = self.started.elapsed().as_secs();
        let error = status >= 500;
        self.total.fetch_add(1, Relaxed);
        if error {
            self.errors.fetch_add(1, Relaxed);
        }
        let mut b = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        let slot = &mut b[(sec % 60) as usize];
        if slot.0 != sec {
            *slot = (sec, 0, 0);
        }
        slot.1 += 1;
        slot.2 += error as u64;
    }

    /// (requests, errors) in the last minute.
    pub fn last_minute(&self) -> (u64, u64) {
        let sec = self.started.elapsed().as_secs();
        let b = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        b.iter()
            .filter(|(s, ..)| *s != u64::MAX && sec - s < 60)
            .fold((0, 0), |(r, e), (_, br, be)| (r + br, e + be))
    }

    pub fn uptime_secs(&self) -> u64 {
        self.started.elapsed().as_secs()
    }
}

#[derive(Serialize)]
pub struct Health {
    pub uptime_secs: u64,
    pub disk_total_bytes: Option<u64>,
    pub disk_free_bytes: Option<u64>,
    /// What the data directory's blobs take.
    pub stored_bytes: u64,
    /// What the stored contents hold, unpacked.
    pub content_bytes: u64,
    /// Every current file's size, summed over all clients.
    pub current_files_bytes: u64,
    /// Saved by packing: content bytes minus stored bytes.
    pub saved_by_packing_bytes: u64,
    /// Saved by storing identical content once: current files' bytes
    /// minus the bytes of the distinct contents they use.
    pub saved_by_dedup_bytes: u64,
    pub files: usize,
    pub blobs: usize,
    pub hot: usize,
    pub packed: usize,
    pub missing: usize,
    pub requests_last_minute: u64,
    pub errors_last_minute: u64,
    pub requests_total: u64,
    pub errors_total: u64,
    pub queue_depth: usize,
    pub queue_capacity: usize,
}

/// (total, free to unprivileged users) bytes of the file system holding `dir`.
#[cfg(unix)]
fn disk(dir: &std::path::Path) -> (Option<u64>, Option<u64>) {
    use std::os::unix::ffi::OsStrExt;
    let Ok(c) = std::ffi::CString::new(dir.as_os_str().as_bytes()) else {
        return (None, None);
    };
    let mut s: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: `c` is a valid NUL-terminated path and `s` a valid out-pointer.
    if unsafe { libc::statvfs(c.as_ptr(), &mut s) } != 0 {
        return (None, None);
    }
    let frsize = s.f_frsize as u64;
    (
        Some(s.f_blocks as u64 * frsize),
        Some(s.f_bavail as u64 * frsize),
    )
}

#[cfg(not(unix))]
fn disk(_dir: &std::path::Path) -> (Option<u64>, Option<u64>) {
    (None, None)
}

pub fn health(ctx: &Ctx) -> Health {
    use std::sync::atomic::Ordering::Relaxed;
    let s = ctx.dm.stats();
    let current = ctx.dm.current_bytes();
    let (total, free) = disk(ctx.dm.data_dir());
    let (requests, errors) = ctx.meter.last_minute();
    Health {
        uptime_secs: ctx.meter.uptime_secs(),
        disk_total_bytes: total,
        disk_free_bytes: free,
        stored_bytes: s.bytes_stored,
        content_bytes: s.bytes_original,
        current_files_bytes: current.0,
        saved_by_packing_bytes: s.bytes_original.saturating_sub(s.bytes_stored),
        saved_by_dedup_bytes: current.0.saturating_sub(current.1),
        files: s.files,
        blobs: s.blobs,
        hot: s.hot,
        packed: s.packed,
        missing: s.missing,
        requests_last_minute: requests,
        errors_last_minute: errors,
        requests_total: ctx.meter.total.load(Relaxed),
        errors_total: ctx.meter.errors.load(Relaxed),
        queue_depth: ctx.queue_depth(),
        queue_capacity: ctx.queue_capacity,
    }
}

fn require_admin(who: &Identity) -> Result<(), ApiError> {
    if who.role == Role::Admin {
        Ok(())
    } else {
        Err(ApiError::Forbidden(
            "only admins see the server's health".into(),
        ))
    }
}

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
            .is_some_and(|given| super::web::constant_time_eq(given.trim(), t))
    });
    if !scraper {
        require_admin(&super::auth::require(who)?)?;
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

/// The health figures as a section of the admin page.
pub fn section(ctx: &Ctx, html: &mut String) {
    use super::index::human_size;
    let h = health(ctx);
    let size = |v: Option<u64>| v.map(human_size).unwrap_or_else(|| "-".into());
    let _ = write!(
        html,
        "<h2>Server</h2><table class=\"health\"><tbody>\
         <tr><th>Disk</th><td>{} free of {}</td></tr>\
         <tr><th>Stored</th><td>{} on disk for {} of current files</td></tr>\
         <tr><th>Saved</th><td>{} by packing, {} by storing identical content once</td></tr>\
         <tr><th>Contents</th><td>{} hot, {} packed{}</td></tr>\
         <tr><th>Requests</th><td>{} in the last minute, {} server errors; {} waiting for a worker</td></tr>\
         <tr><th>Up</th><td>{} s</td></tr></tbody></table>",
        size(h.disk_free_bytes),
        size(h.disk_total_bytes),
        human_size(h.stored_bytes),
        human_size(h.current_files_bytes),
        human_size(h.saved_by_packing_bytes),
        human_size(h.saved_by_dedup_bytes),
        h.hot,
        h.packed,
        if h.missing > 0 {
            format!(", <span class=\"error\">{} missing</span>", h.missing)
        } else {
            String::new()
        },
        h.requests_last_minute,
        h.errors_last_minute,
        h.queue_depth,
        h.uptime_secs,
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_meter_counts_the_last_minute() {
        let m = Meter::default();
        for s in [200, 404, 500, 503] {
            m.count(s);
        }
        assert_eq!(m.last_minute(), (4, 2));
        assert_eq!(m.total.load(std::sync::atomic::Ordering::Relaxed), 4);
    }
}
