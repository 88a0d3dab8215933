//! The upload limit: one token bucket shared by every upload stream of the
//! client (all jobs together), refilled at the current rate. A reader takes
//! what it read from the bucket and, when the bucket is in debt, sleeps
//! until it is paid, so the rate stays smooth over any stretch longer than
//! the bucket (a tenth of a second of the rate).

use std::io::{self, Read};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The longest single sleep: a changed rate (a window opening) takes
/// effect within this.
const MAX_SLEEP: Duration = Duration::from_millis(200);

#[derive(Debug)]
struct Bucket {
    /// Bytes per second; none is unlimited.
    rate: Option<u64>,
    /// Bytes that may be sent now (negative: owed).
    tokens: f64,
    last: Instant,
}

#[derive(Debug, Clone)]
pub struct Throttle(Arc<Mutex<Bucket>>);

impl Default for Throttle {
    fn default() -> Self {
        Throttle(Arc::new(Mutex::new(Bucket {
            rate: None,
            tokens: 0.0,
            last: Instant::now(),
        })))
    }
}

impl Throttle {
    fn bucket(&self) -> std::sync::MutexGuard<'_, Bucket> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Sets the rate (none: unlimited), from the next byte on.
    pub fn set_rate(&self, rate: Option<u64>) {
        let mut b = self.bucket();
        if b.rate != rate {
            b.rate = rate.filter(|&r| r > 0);
            b.tokens = 0.0;
            b.last = Instant::now();
        }
    }

    pub fn rate(&self) -> Option<u64> {
        self.bucket().rate
    }

    /// Accounts for `n` bytes sent, sleeping while the bucket is in debt.
    pub fn take(&self, n: usize) {
        let mut owed = {
            let mut b = self.bucket();
            let Some(rate) = b.rate else { return };
            let rate = rate as f64;
            let now = Instant::now();
            let burst = (rate / 10.0).max(16.0 * 1024.0);
            b.tokens = (b.tokens + now.duration_since(b.last).as_secs_f64() * rate).min(burst);
            b.last = now;
            b.tokens -= n as f64;
            if b.tokens >= 0.0 {
                return;
            }
            Duration::from_secs_f64(-b.tokens / rate)
        };
        // Slept in steps, so a rate lifted meanwhile frees the stream.
        while !owed.is_zero() {
            let step = owed.min(MAX_SLEEP);
            std::thread::sleep(step);
            owed -= step;
            if self.bucket().rate.is_none() {
                return;
            }
        }
    }

    /// `inner`, read at the limit.
    pub fn reader<R: Read>(&self, inner: R) -> Throttled<R> {
        Throttled {
            inner,
            throttle: self.clone(),
        }
    }
}

pub struct Throttled<R> {
    inner: R,
    throttle: Throttle,
}

impl<R: Read> Read for Throttled<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        // Small reads keep the bursts small.
        let len = buf.len().min(16 * 1024);
        let n = self.inner.read(&mut buf[..len])?;
        self.throttle.take(n);
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn two_streams_together_keep_to_the_rate() {
        let t = Throttle::default();
        t.set_rate(Some(400_000));
        let start = Instant::now();
        std::thread::scope(|s| {
            for _ in 0..2 {
                let t = t.clone();
                s.spawn(move || {
                    let mut r = t.reader(io::repeat(7).take(200_000));
                    io::copy(&mut r, &mut io::sink()).unwrap();
                });
            }
        });
        // 400 kB at 400 kB/s, less the first burst (40 kB).
        let took = start.elapsed().as_secs_f64();
        assert!((0.8..3.0).contains(&took), "{took} s");
        t.set_rate(None);
        let start = Instant::now();
        io::copy(
            &mut t.reader(io::repeat(7).take(10_000_000)),
            &mut io::sink(),
        )
        .unwrap();
        assert!(start.elapsed() < Duration::from_secs(1));
    }
}
