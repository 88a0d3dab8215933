//! The watcher thread: every `--alert-interval` (or at once when poked by a
//! test alert or a settings change) it looks at every machine, the last
//! `check` and the disk, records what changed, and sends what is due.

use super::{send, Alerts, CheckResult, Condition, Finding};
use crate::vault::Vault;
use log::{info, warn};
use nimbus_common::time::{format_utc, unix_now};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::Duration;

/// What the watcher needs to know of a machine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MachineState {
    /// `user/machine`.
    pub key: String,
    /// When its client last reported a pass without errors that count.
    pub last_ok: Option<i64>,
    /// Reported passes in a row with errors that count.
    pub failing: u32,
    /// Uploaded from the browser only: no client, so it cannot go stale.
    pub browser_only: bool,
}

/// The conditions that hold now.
pub fn findings(
    settings: &super::AlertSettings,
    now: i64,
    machines: &[MachineState],
    check: Option<&CheckResult>,
    disk_free_percent: Option<f64>,
) -> Vec<Finding> {
    let mut out = Vec::new();
    for m in machines.iter().filter(|m| !m.browser_only) {
        let limit = settings.stale_after(&m.key);
        if let Some(ok) = m.last_ok {
            if now - ok > limit.0 as i64 {
                out.push(Finding {
                    condition: Condition::Stale,
                    machine: Some(m.key.clone()),
                    detail: format!(
                        "no successful backup since {} (more than {limit})",
                        format_utc(ok)
                    ),
                });
            }
        }
        let n = settings.failing_passes();
        if m.failing >= n {
            out.push(Finding {
                condition: Condition::Failing,
                machine: Some(m.key.clone()),
                detail: format!("errors in {n} or more backup passes in a row"),
            });
        }
    }
    if let Some(c) = check {
        for (m, n) in &c.machines {
            out.push(Finding {
                condition: Condition::Damage,
                machine: Some(m.clone()),
                detail: format!("check of {} found {n} damaged version(s)", format_utc(c.at)),
            });
        }
        if c.problems > 0 && c.machines.is_empty() {
            out.push(Finding {
                condition: Condition::Damage,
                machine: None,
                detail: format!(
                    "check of {} found {} damaged stored content(s)",
                    format_utc(c.at),
                    c.problems
                ),
            });
        }
    }
    if let Some(free) = disk_free_percent {
        let min = settings.disk_min_free_percent();
        if free < min {
            out.push(Finding {
                condition: Condition::Disk,
                machine: None,
                detail: format!("{free:.1}% free on the data directory's disk (less than {min}%)"),
            });
        }
    }
    out
}

pub struct Watcher {
    stop: Arc<AtomicBool>,
    alerts: &'static Alerts,
    thread: JoinHandle<()>,
}

struct Round<F> {
    alerts: &'static Alerts,
    data: PathBuf,
    vault: Vault,
    every: Duration,
    observe: F,
    stop: Arc<AtomicBool>,
}

impl Watcher {
    pub fn start<F>(
        alerts: &'static Alerts,
        data: &Path,
        vault: Vault,
        every: Duration,
        observe: F,
    ) -> Watcher
    where
        F: Fn() -> Vec<MachineState> + Send + 'static,
    {
        let stop = Arc::new(AtomicBool::new(false));
        let r = Round {
            alerts,
            data: data.to_path_buf(),
            vault,
            every,
            observe,
            stop: stop.clone(),
        };
        let thread = thread::Builder::new()
            .name("alerts".into())
            .spawn(move || {
                while !r.stop.load(Ordering::SeqCst) {
                    let wait = r.run();
                    r.alerts.wait(wait);
                }
            })
            .expect("spawn the alert watcher");
        Watcher {
            stop,
            alerts,
            thread,
        }
    }

    pub fn stop(self) {
        self.stop.store(true, Ordering::SeqCst);
        self.alerts.poke();
        let _ = self.thread.join();
    }
}

impl<F: Fn() -> Vec<MachineState>> Round<F> {
    /// One look and the deliveries due; returns how long to wait.
    fn run(&self) -> Duration {
        let settings = self.alerts.settings();
        let now = unix_now();
        let machines = (self.observe)();
        let check = CheckResult::load(&self.data, &self.vault);
        let found = findings(
            &settings,
            now,
            &machines,
            check.as_ref(),
            crate::disk::usage(&self.data).map(|d| d.free_percent()),
        );
        match self
            .alerts
            .with_state(|s| s.evaluate(&settings, now, &found))
        {
            Ok(0) => {}
            Ok(n) => info!("alerts: {n} notice(s) to send"),
            Err(e) => warn!("alerts: cannot record the conditions (they are looked at again): {e}"),
        }
        let base = self.every.as_secs().max(1) as i64;
        let due: Vec<_> = self
            .alerts
            .state()
            .outbox
            .into_iter()
            .filter(|d| d.pending() && d.next_try <= now)
            .collect();
        for d in due {
            if self.stop.load(Ordering::SeqCst) {
                break;
            }
            let outcome = match settings.targets.iter().find(|t| t.id == d.target) {
                Some(t) => send::deliver(t, &d, settings.smtp.as_ref()).map_err(|e| {
                    warn!(
                        "alerts: {} to {} failed: {e}",
                        d.event.as_str(),
                        t.describe()
                    );
                    e
                }),
                None => Err("the target was removed".to_string()),
            };
            if outcome.is_ok() {
                info!("alerts: sent {:?} ({})", d.title, d.event.as_str());
            }
            if let Err(e) = self
                .alerts
                .with_state(|s| s.attempted(d.id, unix_now(), base, outcome))
            {
                warn!("alerts: cannot record a delivery: {e}");
            }
        }
        // Wake for the next retry if it comes before the next look.
        let now = unix_now();
        let next = self
            .alerts
            .state()
            .outbox
            .iter()
            .filter(|d| d.pending())
            .map(|d| d.next_try)
            .min();
        match next {
            Some(t) if t <= now => Duration::from_millis(200),
            Some(t) => self.every.min(Duration::from_secs((t - now) as u64)),
            None => self.every,
        }
    }
}
