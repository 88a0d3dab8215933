//! Request and error rates: what the pool counts and the health view shows.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Mutex;
use std::time::Instant;

/// Requests and errors of the last 60 seconds, in one-second buckets.
pub struct Meter {
    started: Instant,
    /// (second since start, requests, server errors) per bucket.
    buckets: Mutex<[(u64, u64, u64); 60]>,
    pub total: AtomicU64,
    pub errors: AtomicU64,
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
        assert_eq!(m.total.load(Relaxed), 4);
    }
}
