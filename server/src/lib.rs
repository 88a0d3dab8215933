//! The Nimbus server as a library: the binary in `main.rs` parses the command
//! line and calls [`run`]; tests and benchmarks use the modules directly.

pub mod accounts;
pub mod alerts;
pub mod archive;
pub mod client_builds;
pub mod clients;
pub mod config;
pub mod disk;
pub mod history;
pub mod hotspot;
pub mod http;
pub mod keycmd;
pub mod maintenance;
pub mod policies;
pub mod policycmd;
pub mod release;
pub mod retention;
pub mod space;
pub mod store;
pub mod updates;
pub mod uploads;
pub mod usercmd;
pub mod vault;

pub use config::Config;

use log::{error, info, warn};
use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(transparent)]
    Open(#[from] store::OpenError),
    #[error("cannot listen on {addr}: {reason}")]
    Listen { addr: String, reason: String },
    #[error("cannot read {}: {source}", path.display())]
    TlsFile {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
    #[error("cannot serve HTTPS with {}: {reason}", cert.display())]
    Tls {
        cert: std::path::PathBuf,
        reason: String,
    },
    #[error(transparent)]
    Accounts(#[from] accounts::AccountError),
    #[error("cannot install the signal handler: {0}")]
    Signal(#[from] ctrlc::Error),
    #[error(transparent)]
    Lock(#[from] maintenance::MaintenanceError),
    #[error(transparent)]
    Vault(#[from] vault::VaultError),
    #[error("cannot read the client update policy: {0}")]
    Updates(std::io::Error),
    #[error("cannot open the backup policy: {0}")]
    Policies(#[from] policies::PolicyError),
    #[error(transparent)]
    Alerts(#[from] alerts::AlertError),
    #[error("cannot open the uploads in progress under {}: {source}", dir.display())]
    Uploads {
        dir: std::path::PathBuf,
        source: std::io::Error,
    },
}

/// Raises the soft open-file limit to the hard one, and returns the limit
/// in force: every connection costs a descriptor, and so does every blob a
/// response is reading.
fn raise_fd_limit() -> u64 {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit only read and write the struct given.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) != 0 {
            return 1024;
        }
        if lim.rlim_cur < lim.rlim_max {
            let raised = libc::rlimit {
                rlim_cur: lim.rlim_max,
                rlim_max: lim.rlim_max,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
                lim.rlim_cur = lim.rlim_max;
            }
        }
    }
    // rlim_t is not u64 on every platform.
    #[allow(clippy::unnecessary_cast)]
    let limit = lim.rlim_cur as u64;
    limit
}

/// Descriptors kept for the catalog, the journal, the accounts and the
/// blob files of work that is not a response.
const FD_RESERVE: u64 = 256;

/// The connection cap when `--max-connections` is not given: half of what
/// the reserve leaves (a connection and the blob its response reads), at
/// least 16 and at most 4096 (a thread each).
pub fn default_max_connections(fd_limit: u64) -> usize {
    (fd_limit.saturating_sub(FD_RESERVE) / 2).clamp(16, 4096) as usize
}

/// What one connection may cost, from the configuration.
fn http_limits(config: &Config, fd_limit: u64) -> tiny_http::Limits {
    use std::time::Duration;
    tiny_http::Limits {
        max_connections: config
            .max_connections
            .unwrap_or_else(|| default_max_connections(fd_limit)),
        header_timeout: Duration::from_secs(config.header_timeout),
        keepalive_timeout: Duration::from_secs(config.keepalive_timeout),
        body_timeout: Duration::from_secs(config.body_timeout),
        send_timeout: Duration::from_secs(config.send_timeout),
        ..tiny_http::Limits::default()
    }
}

/// Connections the kernel may hold for the accept loop. The standard
/// library listens with 128: a burst of more connections than that (a
/// thousand clients at once) overflows it, and the kernel drops their SYNs,
/// which the clients resend only after a second. The kernel caps it at
/// `net.core.somaxconn` (4096 by default).
const LISTEN_BACKLOG: i32 = 4096;

fn deepen_backlog(listener: &std::net::TcpListener) {
    #[cfg(unix)]
    {
        use std::os::fd::AsRawFd;
        // SAFETY: listen() on a socket we own; calling it again on a
        // listening socket only changes its backlog.
        let rc = unsafe { libc::listen(listener.as_raw_fd(), LISTEN_BACKLOG) };
        if rc != 0 {
            warn!(
                "could not deepen the listen backlog: {}",
                std::io::Error::last_os_error()
            );
        }
    }
}

/// Binds the listening socket, with TLS when `--tls-cert`/`--tls-key` say so.
fn listen(config: &Config, limits: tiny_http::Limits) -> Result<tiny_http::Server, RunError> {
    let listen_error = |reason: String| RunError::Listen {
        addr: config.listen.clone(),
        reason,
    };
    // Bind first, so that "address in use" is not reported as a TLS problem.
    let listener =
        std::net::TcpListener::bind(&config.listen).map_err(|e| listen_error(e.to_string()))?;
    deepen_backlog(&listener);
    let Some((cert, key)) = &config.tls else {
        return tiny_http::Server::from_listener_with_limits(listener, None, limits)
            .map_err(|e| listen_error(e.to_string()));
    };
    let read = |path: &std::path::PathBuf| {
        std::fs::read(path).map_err(|source| RunError::TlsFile {
            path: path.clone(),
            source,
        })
    };
    let ssl = tiny_http::SslConfig {
        certificate: read(cert)?,
        private_key: read(key)?,
    };
    tiny_http::Server::from_listener_with_limits(listener, Some(ssl), limits).map_err(|e| {
        RunError::Tls {
            cert: cert.clone(),
            reason: e.to_string(),
        }
    })
}

/// Runs the server until SIGTERM or Ctrl-C. The first line on stdout is
/// `listening on http://HOST:PORT`, with the real port.
pub fn run(config: Config) -> Result<(), RunError> {
    // One process at a time on a data directory: a second server, or a
    // prune or check, would work on a catalog this one keeps in memory.
    let _lock = maintenance::DataLock::acquire(&config.data)?;
    let (vault, setup) = vault::open(&config.data, &config.unlock)?;
    let dm =
        store::DataManager::open_configured(&config.data, vault.clone(), config.store.as_ref())?;
    let dm = store::install(dm).expect("run() is called once per process");
    http::log_start(dm);
    let uploads = uploads::Uploads::open(&config.data, vault.clone()).map_err(|source| {
        RunError::Uploads {
            dir: config.data.clone(),
            source,
        }
    })?;
    let updates = updates::Updates::open(&config.data, vault.clone()).map_err(RunError::Updates)?;
    let policies = policies::Policies::open(&config.data, vault.clone())?;
    let alerts = alerts::Alerts::open(&config.data, vault.clone())?;
    match uploads.recover(dm) {
        0 => {}
        n => info!("{n} upload(s) received completely before the last stop are now recorded"),
    }

    let fd_limit = raise_fd_limit();
    let limits = http_limits(&config, fd_limit);
    info!(
        "open-file limit {fd_limit}; at most {} connections",
        limits.max_connections
    );
    let server = listen(&config, limits)?;
    let scheme = if config.tls.is_some() {
        "https"
    } else {
        "http"
    };
    let server = Arc::new(server);
    let addr = server
        .server_addr()
        .to_ip()
        .map(|a| a.to_string())
        .unwrap_or_else(|| config.listen.clone());
    {
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "listening on {scheme}://{addr}");
        let _ = out.flush();
    }
    let loopback = server
        .server_addr()
        .to_ip()
        .is_some_and(|a| a.ip().is_loopback());
    if !loopback && config.tls.is_none() {
        warn!(
            "serving plain HTTP on {addr}: passwords, tokens and files cross the network in the clear; \
             put a TLS reverse proxy in front (docs/deploy/nginx.conf) or use a trusted network"
        );
    }
    if let Some(setup) = setup {
        // Shown once, on stdout only (never in the log on stderr).
        let mut out = std::io::stdout().lock();
        if let Some(path) = &setup.created_key_file {
            let _ = writeln!(
                out,
                "encryption at rest is on; made the key file {} (back it up apart from the data)",
                path.display()
            );
        } else {
            let _ = writeln!(out, "encryption at rest is on");
        }
        let _ = writeln!(
            out,
            "recovery key: {}
             write it on paper and keep it apart from the server: it unlocks the data if every other key is lost; it is not shown again",
            setup.recovery_key
        );
        let _ = out.flush();
    }
    let accounts = accounts::AccountStore::open(&config.data, vault)?;
    if let Some(password) = accounts.ensure_first_admin()? {
        // Shown once, on stdout only (never in the log on stderr).
        let mut out = std::io::stdout().lock();
        let _ = writeln!(
            out,
            "created the first account: user admin, password {password}\n\
             change it with: nimbus-server --data {} user passwd admin",
            config.data.display()
        );
        let _ = out.flush();
    }
    match accounts.reconcile_reserved(&dm.users_with_data()) {
        Ok((added, freed)) => {
            if !added.is_empty() {
                info!("backups without an account keep their names reserved: {added:?}");
            }
            if !freed.is_empty() {
                info!("names of removed accounts without backups are free again: {freed:?}");
            }
        }
        Err(e) => warn!("could not check the names of removed accounts: {e}"),
    }
    if let Some(owner) = accounts.load()?.first_admin() {
        match dm.adopt_legacy(&owner) {
            Ok(0) => {}
            Ok(n) => info!(
                "{n} machine(s) backed up before accounts existed now belong to {owner:?}"
            ),
            Err(e) => error!("could not give older backups to {owner:?} (they stay hidden until a restart succeeds): {e}"),
        }
    }
    info!(
        "data in {}; {} workers per lane; packing files idle for {}s",
        config.data.display(),
        config.workers,
        config.hot_time
    );

    let stop = Arc::new(AtomicBool::new(false));
    {
        let (stop, server) = (stop.clone(), server.clone());
        ctrlc::set_handler(move || {
            stop.store(true, Ordering::SeqCst);
            server.unblock();
        })?;
    }

    let hotspot = hotspot::Hotspot::start(
        dm,
        config.hot_time,
        config.hotspot_interval,
        config.pack_threads,
    );
    let pruner = maintenance::Pruner::start(dm, config.clone());
    let shipper = maintenance::Shipper::start(dm, config.ship_interval);

    let ctx: &'static http::Ctx = Box::leak(Box::new(http::Ctx::new(
        dm,
        &config,
        accounts,
        (uploads, updates, policies, alerts),
        Some(hotspot.unpacker()),
    )));
    let watcher = alerts::watch::Watcher::start(
        &ctx.alerts,
        &config.data,
        dm.vault().clone(),
        std::time::Duration::from_secs(config.alert_interval),
        move || http::machine_states(ctx),
    );
    let recorder = history::Recorder::start(
        &ctx.history,
        dm,
        std::time::Duration::from_secs(config.history_interval),
    );
    http::serve(server, ctx, config.workers, config.queue, stop);
    watcher.stop();
    recorder.stop();
    if let Err(e) = ctx.clients.save() {
        warn!("could not save the clients' last contact times: {e}");
    }

    info!("stopping");
    if let Some(p) = pruner {
        p.stop();
    }
    hotspot.stop();
    if let Err(e) = dm.compact() {
        error!("could not write the catalog snapshot at shutdown (the journal is intact): {e}");
    }
    if let Some(s) = shipper {
        s.stop();
        match dm.ship_catalog() {
            Ok(r) => info!("catalog shipped to the bucket: {r:?}"),
            Err(e) => error!("could not ship the catalog to the bucket at shutdown: {e}"),
        }
    }
    if let Err(e) = dm.close_store() {
        warn!("the local copies of the store's objects are not marked sound ({e}); the next start empties them");
    }
    info!("stopped");
    Ok(())
}
