//! Work on a data directory that needs the server stopped, `nimbus-server
//! prune` and `nimbus-server check`, and the lock that tells whether a
//! server is using a data directory. The running server prunes by itself
//! (see [`Pruner`]).

use crate::config::Config;
use crate::store::backend::s3::S3Options;
use crate::store::{self, DataManager, PruneReport};
use crate::vault::Vault;
use log::{error, info};
use nimbus_common::time::{format_utc, unix_now};
use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

const LOCK: &str = "server.lock";

#[derive(Debug, thiserror::Error)]
pub enum MaintenanceError {
    #[error("a server is running on {0} (or another command is): stop it first; a running server prunes by itself every --prune-interval when a retention policy is set")]
    Busy(PathBuf),
    #[error("cannot lock {dir}: {source}")]
    Lock {
        dir: PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    Open(#[from] store::OpenError),
    #[error("pruning failed (the store stays consistent; run it again): {0}")]
    Prune(std::io::Error),
    #[error("no retention policy is set: give --keep-last, --keep-daily, ... or \"retention\" in the config file")]
    NoPolicy,
}

/// Held by whoever uses a data directory's catalog and blobs: the server
/// for its lifetime, `prune` and `check` while they run. The kernel drops
/// it when the process dies, even by kill -9.
pub struct DataLock(#[allow(dead_code)] File);

impl DataLock {
    pub fn acquire(data: &Path) -> Result<DataLock, MaintenanceError> {
        let lock_err = |source| MaintenanceError::Lock {
            dir: data.to_path_buf(),
            source,
        };
        std::fs::create_dir_all(data).map_err(lock_err)?;
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(data.join(LOCK))
            .map_err(lock_err)?;
        match file.try_lock() {
            Ok(()) => Ok(DataLock(file)),
            Err(std::fs::TryLockError::WouldBlock) => {
                Err(MaintenanceError::Busy(data.to_path_buf()))
            }
            Err(std::fs::TryLockError::Error(e)) => Err(lock_err(e)),
        }
    }
}

fn describe(r: &PruneReport) -> String {
    format!(
        "{} version(s) forgotten, {} file(s) gone entirely, {} stored content(s) deleted, {} bytes freed",
        r.versions, r.files_gone, r.blobs, r.bytes_freed
    )
}

/// `nimbus-server prune [--dry-run]`
pub fn prune_command(config: &Config, vault: Vault, dry_run: bool) -> Result<(), MaintenanceError> {
    if !config.has_retention() {
        return Err(MaintenanceError::NoPolicy);
    }
    let _lock = DataLock::acquire(&config.data)?;
    let dm = DataManager::open_configured(&config.data, vault, config.store.as_ref())?;
    let report = dm
        .prune(&|c| Some(config.policy_of(c)), unix_now(), 0, dry_run)
        .map_err(MaintenanceError::Prune)?;
    if dry_run {
        println!("prune (dry run): would have {}", describe(&report));
    } else {
        if let Err(e) = dm.compact() {
            error!("could not write the catalog snapshot (the journal is intact): {e}");
        }
        println!("prune: {}", describe(&report));
    }
    Ok(())
}

/// `nimbus-server check [--read-data]`: Ok(true) when all is well.
pub fn check_command(
    data: &Path,
    store: Option<&S3Options>,
    vault: Vault,
    read_data: bool,
) -> Result<bool, MaintenanceError> {
    let _lock = DataLock::acquire(data)?;
    // The bucket itself is checked, not the local copies of its objects.
    let store = store.cloned().map(|o| S3Options {
        cache_bytes: 0,
        ..o
    });
    let dm = DataManager::open_configured(data, vault.clone(), store.as_ref())?;
    let started = Instant::now();
    let report = dm.check(read_data);
    // Kept for the server's alerts: damage is told to the admin and to the
    // owners of the machines it touches, until a check finds none.
    let mut kept = crate::alerts::CheckResult {
        at: unix_now(),
        read_data,
        problems: report.problems.len(),
        ..Default::default()
    };
    for (client, ..) in &report.affected {
        *kept.machines.entry(client.clone()).or_default() += 1;
    }
    if let Err(e) = kept.save(data, &vault) {
        error!("could not keep the result of this check for the alerts: {e}");
    }
    let stats = dm.stats();
    for p in &report.problems {
        println!("blob {}: {}", p.hash, p.problem);
    }
    for (client, path, n, hash) in &report.affected {
        println!("damaged: {client}: {path} version {n} (blob {hash})");
    }
    println!(
        "check: {} file(s), {} stored content(s) ({} hot, {} packed){}; {} problem(s), {} version(s) affected ({:.1}s)",
        stats.files,
        report.blobs,
        stats.hot,
        stats.packed,
        if read_data {
            format!(", {} bytes read and verified", report.bytes_read)
        } else {
            ", presence and sizes checked (add --read-data to verify contents)".into()
        },
        report.problems.len(),
        report.affected.len(),
        started.elapsed().as_secs_f64()
    );
    Ok(report.problems.is_empty())
}

/// The running server's prune keeps chunks that arrived this recently:
/// their upload may be under way, its manifest not yet committed. (The
/// `prune` command runs with no server, so no upload is under way.)
const UPLOAD_GRACE_SECS: i64 = 3600;

/// The running server's automatic prune: every `--prune-interval` seconds
/// when a retention policy is set.
pub struct Pruner {
    stop: Arc<AtomicBool>,
    thread: JoinHandle<()>,
}

impl Pruner {
    pub fn start(dm: &'static DataManager, config: Config) -> Option<Pruner> {
        if !config.has_retention() {
            return None;
        }
        info!(
            "retention: {} (per-client policies: {}); pruning every {}s",
            config.retention.describe(),
            config.retention_clients.len(),
            config.prune_interval
        );
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = thread::Builder::new()
            .name("prune".into())
            .spawn(move || {
                let interval = Duration::from_secs(config.prune_interval);
                loop {
                    if !sleep_unless_stopped(&flag, interval) {
                        return;
                    }
                    let now = unix_now();
                    match dm.prune(
                        &|c| Some(config.policy_of(c)),
                        now,
                        UPLOAD_GRACE_SECS,
                        false,
                    ) {
                        Ok(r) if r.versions > 0 || r.blobs > 0 => {
                            info!("pruned at {}: {}", format_utc(now), describe(&r))
                        }
                        Ok(_) => {}
                        Err(e) => error!("pruning failed (will retry next interval): {e}"),
                    }
                }
            })
            .expect("spawn prune thread");
        Some(Pruner { stop, thread })
    }

    pub fn stop(self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = self.thread.join();
    }
}

/// Ships the catalog to the bucket every `interval` (content in a bucket
/// only; see `store::ship`), and once more when stopped.
pub struct Shipper {
    stop: Arc<AtomicBool>,
    thread: JoinHandle<()>,
}

impl Shipper {
    pub fn start(dm: &'static DataManager, interval: u64) -> Option<Shipper> {
        if !dm.ships_catalog() {
            return None;
        }
        info!("shipping the catalog to the bucket every {interval}s");
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = thread::Builder::new()
            .name("ship".into())
            .spawn(move || loop {
                if !sleep_unless_stopped(&flag, Duration::from_secs(interval)) {
                    return;
                }
                if let Err(e) = dm.ship_catalog() {
                    error!("shipping the catalog to the bucket failed (will retry): {e}");
                }
            })
            .expect("spawn ship thread");
        Some(Shipper { stop, thread })
    }

    /// Stops the thread; the caller ships the final state.
    pub fn stop(self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = self.thread.join();
    }
}

/// Sleeps `interval`, waking every 200 ms to look at `stop`; false if it
/// was set.
fn sleep_unless_stopped(stop: &AtomicBool, interval: Duration) -> bool {
    let until = Instant::now() + interval;
    while Instant::now() < until {
        if stop.load(Ordering::SeqCst) {
            return false;
        }
        thread::sleep(Duration::from_millis(200).min(until - Instant::now()));
    }
    !stop.load(Ordering::SeqCst)
}
