//! The login rate limiter: growing delays per key (an account, an
//! address), after a few free failures.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Failed logins allowed before delays start.
const FREE_FAILURES: u32 = 3;
/// Longest delay between attempts once failures pile up.
const MAX_DELAY: Duration = Duration::from_secs(300);

/// Failed login attempts per key ("user:NAME", "addr:IP").
#[derive(Default)]
pub struct Limiter {
    failures: Mutex<HashMap<String, (u32, Instant)>>,
}

impl Limiter {
    /// Err(seconds to wait) while `key` is in its delay.
    pub fn check(&self, key: &str) -> Result<(), u64> {
        let map = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        match map.get(key) {
            Some((n, last)) if *n >= FREE_FAILURES => {
                let delay = delay_after(*n);
                let waited = last.elapsed();
                if waited < delay {
                    Err(((delay - waited).as_secs_f64().ceil() as u64).max(1))
                } else {
                    Ok(())
                }
            }
            _ => Ok(()),
        }
    }

    pub fn failed(&self, key: &str) {
        let mut map = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        if map.len() > 10_000 {
            map.retain(|_, (_, last)| last.elapsed() < MAX_DELAY * 2);
        }
        let e = map.entry(key.to_string()).or_insert((0, Instant::now()));
        e.0 = e.0.saturating_add(1);
        e.1 = Instant::now();
    }

    pub fn succeeded(&self, key: &str) {
        self.failures
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(key);
    }
}

/// 1 s after the allowed failures, doubling each time, at most 5 minutes.
fn delay_after(failures: u32) -> Duration {
    let exp = failures.saturating_sub(FREE_FAILURES).min(16);
    Duration::from_secs(1u64 << exp).min(MAX_DELAY)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_grow_after_the_free_failures() {
        assert_eq!(delay_after(3), Duration::from_secs(1));
        assert_eq!(delay_after(4), Duration::from_secs(2));
        assert_eq!(delay_after(6), Duration::from_secs(8));
        assert_eq!(delay_after(100), MAX_DELAY);
        let l = Limiter::default();
        for _ in 0..FREE_FAILURES {
            assert!(l.check("user:x").is_ok());
            l.failed("user:x");
        }
        assert!(l.check("user:x").is_err());
        assert!(l.check("user:y").is_ok());
        l.succeeded("user:x");
        assert!(l.check("user:x").is_ok());
    }
}
