//! The server's health, as the admin's JSON, the Prometheus text and the
//! admin page show it: disk, storage savings, counts, uptime, request and
//! error rates, queue depth.

use crate::http::ctx::Ctx;
use serde::Serialize;

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
    /// Bytes of verified chunks received since start, new or already held.
    pub chunk_bytes_received: u64,
    pub chunks_received: u64,
}

pub fn health(ctx: &Ctx) -> Health {
    let s = ctx.dm.stats();
    let day = crate::history::ServerDay::of(
        &s,
        ctx.dm.current_bytes(),
        crate::disk::usage(ctx.dm.data_dir()),
    );
    let (requests, errors) = ctx.meter.last_minute();
    Health {
        uptime_secs: ctx.meter.uptime_secs(),
        disk_total_bytes: day.disk_total,
        disk_free_bytes: day.disk_free,
        stored_bytes: day.stored,
        content_bytes: day.content,
        current_files_bytes: day.current,
        saved_by_packing_bytes: day.saved_by_packing(),
        saved_by_dedup_bytes: day.saved_by_dedup(),
        files: s.files,
        blobs: s.blobs,
        hot: s.hot,
        packed: s.packed,
        missing: s.missing,
        requests_last_minute: requests,
        errors_last_minute: errors,
        requests_total: ctx.meter.total.load(std::sync::atomic::Ordering::Relaxed),
        errors_total: ctx.meter.errors.load(std::sync::atomic::Ordering::Relaxed),
        queue_depth: ctx.queue_depth(),
        queue_capacity: ctx.queue_capacity,
        chunk_bytes_received: ctx
            .dm
            .chunks
            .bytes
            .load(std::sync::atomic::Ordering::Relaxed),
        chunks_received: ctx
            .dm
            .chunks
            .chunks
            .load(std::sync::atomic::Ordering::Relaxed),
    }
}
