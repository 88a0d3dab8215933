//! Server configuration: command-line flags, optionally on top of a JSON file
//! (`--config FILE`) with the same keys as the flags (`"hot-time": 3600`).
//! Flags win over the file, the file over the built-in defaults.

use crate::retention::Policy;
use crate::store::backend::credentials;
use crate::store::backend::s3::{parse_store_url, S3Options};
use clap::{Parser, Subcommand};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::PathBuf;

#[derive(Parser, Debug, Default)]
#[command(
    name = "nimbus-server",
    version = nimbus_common::VERSION,
    about = "Nimbus backup server: keeps every version of every file its clients send, \
             content-addressed, packs cold files with bzip2, and serves them over HTTP.",
    after_help = "With no arguments it serves http://127.0.0.1:9090 with data in ./nimbus-data.\n\
                  Example: nimbus-server --listen 0.0.0.0:9090 --data /srv/nimbus"
)]
pub struct Args {
    #[command(subcommand)]
    pub command: Option<Command>,
    /// JSON file with any of the keys below (e.g. {"listen": "0.0.0.0:9090", "hot-time": 86400}).
    #[arg(long, value_name = "FILE", global = true)]
    pub config: Option<PathBuf>,
    /// Address and port to listen on; port 0 picks a free one. [default: 127.0.0.1:9090]
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<String>,
    /// Directory holding the catalog, the blobs and the accounts. [default: ./nimbus-data]
    #[arg(long, value_name = "DIR", global = true)]
    pub data: Option<PathBuf>,
    /// Worker threads per lane (uploads receiving a body; everything else). [default: 16]
    #[arg(long, value_name = "N")]
    pub workers: Option<usize>,
    /// Requests that may wait for a worker, per lane, before new ones get
    /// 503 (a waiting request costs only its connection). [default: 1024]
    #[arg(long, value_name = "N")]
    pub queue: Option<usize>,
    /// Open connections at most; beyond it the connection idle the longest
    /// is closed, or the new one when none is idle. [default: from the
    /// open-file limit, which is raised to its hard limit at start]
    #[arg(long, value_name = "N")]
    pub max_connections: Option<usize>,
    /// Seconds within which a whole request head must arrive (408 after). [default: 10]
    #[arg(long, value_name = "SECS")]
    pub header_timeout: Option<u64>,
    /// Seconds a request body may go without sending a byte before it is
    /// dropped (nothing of it is recorded). [default: 30]
    #[arg(long, value_name = "SECS")]
    pub body_timeout: Option<u64>,
    /// Seconds a response may wait for the peer to read before it is abandoned. [default: 30]
    #[arg(long, value_name = "SECS")]
    pub send_timeout: Option<u64>,
    /// Seconds an idle keep-alive connection stays open. [default: 30]
    #[arg(long, value_name = "SECS")]
    pub keepalive_timeout: Option<u64>,
    /// Seconds without upload or download after which a file is packed with bzip2. [default: 604800]
    #[arg(long, value_name = "SECS")]
    pub hot_time: Option<u64>,
    /// Seconds between the hotspot thread's looks for cold files. [default: 60]
    #[arg(long, value_name = "SECS")]
    pub hotspot_interval: Option<u64>,
    /// Threads that compress cold files (at low CPU priority). [default: 1]
    #[arg(long, value_name = "N")]
    pub pack_threads: Option<usize>,
    /// Largest accepted upload, in bytes; larger ones get 413. [default: 68719476736 (64 GiB)]
    #[arg(long, value_name = "N")]
    pub max_upload_bytes: Option<u64>,
    /// Folder of client programs offered on "Add a machine" (the
    /// nimbus-client-VERSION-ARCH-OS[.exe] files of make dist). [default: none]
    #[arg(long, value_name = "DIR")]
    pub clients_dir: Option<PathBuf>,
    /// Take the client's address from X-Forwarded-For (set this only behind
    /// a reverse proxy that sets that header; see docs/deploy/).
    #[arg(long)]
    pub trust_proxy: bool,
    /// Serve HTTPS with this PEM certificate chain (with --tls-key).
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// The PEM private key of --tls-cert (PKCS#8, PKCS#1 or SEC1, not encrypted).
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// Who may create an account from the browser: "closed" (only with an
    /// invite link an admin made) or "open" (anyone who reaches the server). [default: closed]
    #[arg(long, value_name = "MODE")]
    pub registration: Option<Registration>,
    /// Retention: keep the newest N versions of each file.
    #[arg(long, value_name = "N", global = true)]
    pub keep_last: Option<u32>,
    /// Retention: keep the newest version in each of the last N hours.
    #[arg(long, value_name = "N", global = true)]
    pub keep_hourly: Option<u32>,
    /// Retention: keep the newest version in each of the last N days.
    #[arg(long, value_name = "N", global = true)]
    pub keep_daily: Option<u32>,
    /// Retention: keep the newest version in each of the last N weeks.
    #[arg(long, value_name = "N", global = true)]
    pub keep_weekly: Option<u32>,
    /// Retention: keep the newest version in each of the last N months.
    #[arg(long, value_name = "N", global = true)]
    pub keep_monthly: Option<u32>,
    /// Retention: keep the newest version in each of the last N years.
    #[arg(long, value_name = "N", global = true)]
    pub keep_yearly: Option<u32>,
    /// Retention: keep every version younger than this (90s, 45m, 12h, 30d, 8w).
    #[arg(long, value_name = "AGE", global = true)]
    pub keep_within: Option<String>,
    /// Seconds between automatic prunes, when a retention policy is set. [default: 86400]
    #[arg(long, value_name = "SECS")]
    pub prune_interval: Option<u64>,
    /// Seconds without contact after which the admin dashboard shows a
    /// client as stale. [default: 86400]
    #[arg(long, value_name = "SECS")]
    pub stale_after: Option<u64>,
    /// A bearer token with which a metrics scraper (Prometheus) may read
    /// /metrics; admins may always. Better in the config file than here
    /// (command lines are visible to other local users).
    #[arg(long, value_name = "TOKEN")]
    pub metrics_token: Option<String>,
    /// Encryption at rest: "on" makes a master key at the first start of an
    /// empty data directory (unlocked with --key-file, a systemd credential
    /// named nimbus-key, or a passphrase) and seals everything stored. A
    /// data directory once encrypted stays so. [default: off]
    #[arg(long, value_name = "on|off")]
    pub encryption: Option<OnOff>,
    /// The key file that unlocks an encrypted data directory (made, owner
    /// only, at the first start with --encryption on if it does not exist).
    #[arg(long, value_name = "FILE", global = true)]
    pub key_file: Option<PathBuf>,
    /// Keep content (chunks, packs, manifests) in an S3-compatible bucket
    /// instead of DATA/blobs: s3://BUCKET/PREFIX. The catalog stays in
    /// DATA. Credentials from AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY, the
    /// config file, or an AWS credentials file, never from the command line.
    #[arg(long, value_name = "s3://BUCKET/PREFIX", global = true)]
    pub store: Option<String>,
    /// The S3 endpoint, e.g. https://s3.eu-central-1.amazonaws.com or
    /// http://127.0.0.1:9000 for a MinIO beside the server.
    #[arg(long, value_name = "URL", global = true)]
    pub s3_endpoint: Option<String>,
    /// The bucket's region. [default: us-east-1]
    #[arg(long, value_name = "REGION", global = true)]
    pub s3_region: Option<String>,
    /// Address the bucket as ENDPOINT/BUCKET (MinIO, Garage, Ceph and most
    /// self-hosted stores) instead of BUCKET.ENDPOINT.
    #[arg(long, global = true)]
    pub s3_path_style: bool,
    /// An AWS-style credentials file ([default] aws_access_key_id = ...,
    /// aws_secret_access_key = ...; profile from AWS_PROFILE). [default:
    /// $AWS_SHARED_CREDENTIALS_FILE, else ~/.aws/credentials]
    #[arg(long, value_name = "FILE", global = true)]
    pub s3_credentials: Option<PathBuf>,
    /// With content in a bucket: seconds between shipments of the catalog
    /// journal to it (and at shutdown); a server rebuilt from the bucket
    /// lacks at most the last interval's records. [default: 60]
    #[arg(long, value_name = "SECS")]
    pub ship_interval: Option<u64>,
    /// Seconds between two looks of the alert watcher at every machine,
    /// the last check and the disk; a failed delivery waits this long,
    /// then twice as long each time. [default: 60]
    #[arg(long, value_name = "SECS")]
    pub alert_interval: Option<u64>,
    /// Seconds between two notes of the day's storage figures (the charts'
    /// history; also noted at start and at a clean stop). [default: 600]
    #[arg(long, value_name = "SECS")]
    pub history_interval: Option<u64>,
}

/// A switch given as on or off.
#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnOff {
    On,
    Off,
}

/// Self-registration from the browser.
#[derive(clap::ValueEnum, Deserialize, Debug, Clone, Copy, PartialEq, Eq, Default)]
#[serde(rename_all = "kebab-case")]
pub enum Registration {
    /// Only with a single-use invite link made by an admin.
    #[default]
    Closed,
    /// Anyone who reaches the server may create a (non-admin) account.
    Open,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Manage accounts. Safe while a server runs on the same data directory.
    User {
        #[command(subcommand)]
        action: UserAction,
    },
    /// Show and change the backup policy clients apply (see the README's
    /// "Backup policy"). Safe while a server runs on the same data
    /// directory: it picks the change up at the next heartbeat.
    #[command(after_help = "Examples:\n  \
                  nimbus-server policy show fleet\n  \
                  nimbus-server policy set fleet excludes '[\"*.iso\", \"Downloads/\"]'\n  \
                  nimbus-server policy set user:ann windows '[\"mon-fri 19:00-07:00\", \"weekends 00:00-24:00\"]'\n  \
                  nimbus-server policy set machine:ann/laptop upload_limit 1000000\n  \
                  nimbus-server policy lock max_file_size\n  \
                  nimbus-server policy effective ann/laptop")]
    Policy {
        #[command(subcommand)]
        action: PolicyAction,
    },
    /// Apply the retention policy now: forget the versions it does not keep
    /// and delete content nothing references any more. The server must be
    /// stopped (a running server prunes by itself every --prune-interval).
    Prune {
        /// Only report what would be forgotten and freed.
        #[arg(long)]
        dry_run: bool,
    },
    /// Manage the key slots of an encrypted data directory (each holds the
    /// master key, wrapped); data is not re-encrypted. Needs a slot's key
    /// (--key-file, the nimbus-key credential, or a passphrase).
    Key {
        #[command(subcommand)]
        action: KeyAction,
    },
    /// Encrypt an unencrypted data directory in place (the server stopped):
    /// makes the key slots from --key-file, the nimbus-key credential or a
    /// passphrase, prints a recovery key, and seals everything. Killed, it
    /// finishes when run again; nothing serves the directory until then.
    Encrypt,
    /// Rebuild the catalog of an empty data directory from the bucket
    /// alone (--store s3://..., with its endpoint and credentials): the
    /// last snapshot and journal segments shipped there, the accounts and
    /// key slots. The new directory takes the bucket's prefix over (the
    /// old one no longer starts on it). Then start the server on it with
    /// the same --store. Killed, it finishes when run again.
    Recover,
    /// Verify the catalog against the stored content: every version's
    /// content must be there. Exits 1 when something is missing or corrupt.
    /// The server must be stopped.
    Check {
        /// Also read every stored content (packed ones decompressed) and
        /// verify its BLAKE3 hash.
        #[arg(long)]
        read_data: bool,
    },
    /// For whoever makes releases (make dist does): print the public half
    /// of the release signing key in FILE, making the key first if FILE
    /// does not exist. Clients built with that public key
    /// (NIMBUS_UPDATE_KEY) install only builds signed with the key.
    ReleaseKey {
        #[arg(value_name = "FILE")]
        file: PathBuf,
    },
    /// For whoever makes releases: sign client builds with the release key,
    /// writing BUILD.sig beside each (the server offers it with the build).
    ReleaseSign {
        /// The release key file (see release-key).
        #[arg(long, value_name = "FILE")]
        key: PathBuf,
        /// Client builds, named nimbus-client-VERSION-ARCH-OS[.exe].
        #[arg(value_name = "BUILD", required = true)]
        builds: Vec<PathBuf>,
    },
}

#[derive(Subcommand, Debug)]
pub enum KeyAction {
    /// List the key slots.
    List,
    /// Add a slot: a new key file, or a passphrase (asked, or read from
    /// standard input after the unlocking one).
    Add {
        /// Make a new key file here (it must not exist) and add a slot for it.
        #[arg(long, value_name = "FILE", conflicts_with = "passphrase")]
        new_key_file: Option<PathBuf>,
        /// Add a passphrase slot.
        #[arg(long)]
        passphrase: bool,
    },
    /// Remove a slot (not the last one).
    Remove { slot: u32 },
    /// Change the passphrase of a passphrase slot.
    Passwd { slot: u32 },
}

/// SCOPE is `fleet`, `user:NAME` or `machine:USER/MACHINE`; FIELD one of
/// interval, settle, max_file_size, excludes, os_excludes, windows,
/// upload_limit, limits.
#[derive(Subcommand, Debug)]
pub enum PolicyAction {
    /// Print a layer's own settings and the locked fields.
    Show {
        #[arg(value_name = "SCOPE", default_value = "fleet")]
        scope: String,
    },
    /// Print what a machine (USER/MACHINE) applies, every layer resolved.
    Effective {
        #[arg(value_name = "USER/MACHINE")]
        machine: String,
    },
    /// Set one field of a layer; VALUE is JSON (a bare word is a string).
    Set {
        #[arg(value_name = "SCOPE")]
        scope: String,
        #[arg(value_name = "FIELD")]
        field: String,
        #[arg(value_name = "VALUE")]
        value: String,
    },
    /// Clear one field of a layer (the layer below applies again).
    Unset {
        #[arg(value_name = "SCOPE")]
        scope: String,
        #[arg(value_name = "FIELD")]
        field: String,
    },
    /// Lock fields: only the fleet's value applies, and clients refuse
    /// flags that would change them.
    Lock {
        #[arg(value_name = "FIELD", required = true)]
        fields: Vec<String>,
    },
    /// Unlock fields.
    Unlock {
        #[arg(value_name = "FIELD", required = true)]
        fields: Vec<String>,
    },
}

#[derive(Subcommand, Debug)]
pub enum UserAction {
    /// List accounts with their role and state.
    List,
    /// Add an account; the password is asked for, or read from stdin.
    Add {
        name: String,
        /// Make the account an admin.
        #[arg(long)]
        admin: bool,
        /// Read the password from the first line of standard input.
        #[arg(long)]
        password_stdin: bool,
    },
    /// Set an account's password.
    Passwd {
        name: String,
        /// Read the password from the first line of standard input.
        #[arg(long)]
        password_stdin: bool,
    },
    /// Remove an account: it can no longer log in and its devices are
    /// revoked. Its backups stay, and its name stays reserved while they do,
    /// so a later account of that name cannot see them.
    Remove {
        name: String,
        /// Also delete the backups of all the account's machines, and free
        /// the name. Needs the server stopped. Also works for an account
        /// removed earlier without it.
        #[arg(long)]
        delete_data: bool,
    },
    /// Disable an account (it can no longer log in), or enable it again.
    Disable {
        name: String,
        /// Enable the account instead.
        #[arg(long)]
        enable: bool,
    },
}

#[derive(Deserialize, Debug, Default)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct FileConfig {
    listen: Option<String>,
    data: Option<PathBuf>,
    workers: Option<usize>,
    queue: Option<usize>,
    max_connections: Option<usize>,
    header_timeout: Option<u64>,
    body_timeout: Option<u64>,
    send_timeout: Option<u64>,
    keepalive_timeout: Option<u64>,
    hot_time: Option<u64>,
    hotspot_interval: Option<u64>,
    pack_threads: Option<usize>,
    max_upload_bytes: Option<u64>,
    clients_dir: Option<PathBuf>,
    trust_proxy: Option<bool>,
    tls_cert: Option<PathBuf>,
    tls_key: Option<PathBuf>,
    registration: Option<Registration>,
    retention: Option<Policy>,
    retention_clients: Option<BTreeMap<String, Policy>>,
    prune_interval: Option<u64>,
    stale_after: Option<u64>,
    metrics_token: Option<String>,
    encryption: Option<bool>,
    key_file: Option<PathBuf>,
    store: Option<String>,
    s3_endpoint: Option<String>,
    s3_region: Option<String>,
    s3_path_style: Option<bool>,
    s3_credentials: Option<PathBuf>,
    s3_access_key_id: Option<String>,
    s3_secret_access_key: Option<String>,
    /// Objects larger than this go up in parts (bytes). [default: 64 MiB]
    s3_multipart_threshold: Option<u64>,
    /// Size of each part (bytes, at least 5 MiB). [default: 16 MiB]
    s3_part_size: Option<u64>,
    /// Seconds a request to the store may wait for its answer, or to send
    /// its body. [default: 30]
    s3_timeout: Option<u64>,
    /// Tries after the first of an idempotent request. [default: 5]
    s3_retries: Option<u32>,
    /// Bytes of local disk keeping copies of the objects stored last (the
    /// commit of an upload reads them back; 0: none). [default: 2 GiB]
    s3_cache_size: Option<u64>,
    ship_interval: Option<u64>,
    alert_interval: Option<u64>,
    history_interval: Option<u64>,
}

/// The settings the server runs with.
#[derive(Debug, Clone)]
pub struct Config {
    pub listen: String,
    pub data: PathBuf,
    pub workers: usize,
    pub queue: usize,
    /// `None`: derived from the open-file limit at start.
    pub max_connections: Option<usize>,
    pub header_timeout: u64,
    pub body_timeout: u64,
    pub send_timeout: u64,
    pub keepalive_timeout: u64,
    pub hot_time: u64,
    pub hotspot_interval: u64,
    pub pack_threads: usize,
    pub max_upload_bytes: u64,
    /// Where the client programs offered for download are.
    pub clients_dir: Option<PathBuf>,
    pub trust_proxy: bool,
    /// Certificate chain and key files; both or neither.
    pub tls: Option<(PathBuf, PathBuf)>,
    pub registration: Registration,
    /// The retention policy of every client without one of its own.
    pub retention: Policy,
    /// Policies of single clients (`user/machine`), replacing `retention`.
    pub retention_clients: BTreeMap<String, Policy>,
    pub prune_interval: u64,
    pub stale_after: u64,
    pub metrics_token: Option<String>,
    /// Encryption at rest: whether to set it up, and the key file.
    pub unlock: crate::vault::UnlockOptions,
    /// Where content lives: `None` in DATA/blobs, or a bucket.
    pub store: Option<S3Options>,
    /// Seconds between shipments of the catalog to the bucket.
    pub ship_interval: u64,
    /// Seconds between two looks of the alert watcher.
    pub alert_interval: u64,
    /// Seconds between two notes of the storage history.
    pub history_interval: u64,
}

impl Config {
    /// The retention policy of one client (`user/machine`).
    pub fn policy_of(&self, client: &str) -> Policy {
        self.retention_clients
            .get(client)
            .unwrap_or(&self.retention)
            .clone()
    }

    /// True when some policy forgets anything.
    pub fn has_retention(&self) -> bool {
        !self.retention.is_empty() || self.retention_clients.values().any(|p| !p.is_empty())
    }
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: "127.0.0.1:9090".into(),
            data: PathBuf::from("nimbus-data"),
            workers: 16,
            queue: 1024,
            max_connections: None,
            header_timeout: 10,
            body_timeout: 30,
            send_timeout: 30,
            keepalive_timeout: 30,
            hot_time: 7 * 24 * 3600,
            hotspot_interval: 60,
            pack_threads: 1,
            max_upload_bytes: 64 << 30,
            clients_dir: None,
            trust_proxy: false,
            tls: None,
            registration: Registration::Closed,
            retention: Policy::default(),
            retention_clients: BTreeMap::new(),
            prune_interval: 86_400,
            stale_after: 86_400,
            metrics_token: None,
            unlock: Default::default(),
            store: None,
            ship_interval: 60,
            alert_interval: 60,
            history_interval: 600,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("config file {path} is not valid: {source}")]
    Parse {
        path: PathBuf,
        source: serde_json::Error,
    },
    #[error("{0} must be at least 1")]
    Zero(&'static str),
    #[error("tls-cert and tls-key go together: give both files or neither")]
    TlsHalf,
    #[error("--keep-within: {0}")]
    Duration(String),
    #[error("--store: {0}")]
    Store(String),
}

impl Config {
    pub fn from_args(args: Args) -> Result<Config, ConfigError> {
        let file = match &args.config {
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
                    path: path.clone(),
                    source,
                })?;
                serde_json::from_str(&text).map_err(|source| ConfigError::Parse {
                    path: path.clone(),
                    source,
                })?
            }
            None => FileConfig::default(),
        };
        let d = Config::default();
        let c = Config {
            listen: args.listen.or(file.listen).unwrap_or(d.listen),
            data: args.data.or(file.data).unwrap_or(d.data),
            workers: args.workers.or(file.workers).unwrap_or(d.workers),
            queue: args.queue.or(file.queue).unwrap_or(d.queue),
            max_connections: args.max_connections.or(file.max_connections),
            header_timeout: args
                .header_timeout
                .or(file.header_timeout)
                .unwrap_or(d.header_timeout),
            body_timeout: args
                .body_timeout
                .or(file.body_timeout)
                .unwrap_or(d.body_timeout),
            send_timeout: args
                .send_timeout
                .or(file.send_timeout)
                .unwrap_or(d.send_timeout),
            keepalive_timeout: args
                .keepalive_timeout
                .or(file.keepalive_timeout)
                .unwrap_or(d.keepalive_timeout),
            hot_time: args.hot_time.or(file.hot_time).unwrap_or(d.hot_time),
            hotspot_interval: args
                .hotspot_interval
                .or(file.hotspot_interval)
                .unwrap_or(d.hotspot_interval),
            pack_threads: args
                .pack_threads
                .or(file.pack_threads)
                .unwrap_or(d.pack_threads),
            max_upload_bytes: args
                .max_upload_bytes
                .or(file.max_upload_bytes)
                .unwrap_or(d.max_upload_bytes),
            clients_dir: args.clients_dir.or(file.clients_dir),
            trust_proxy: args.trust_proxy || file.trust_proxy.unwrap_or(d.trust_proxy),
            tls: match (
                args.tls_cert.or(file.tls_cert),
                args.tls_key.or(file.tls_key),
            ) {
                (Some(cert), Some(key)) => Some((cert, key)),
                (None, None) => None,
                _ => return Err(ConfigError::TlsHalf),
            },
            registration: args
                .registration
                .or(file.registration)
                .unwrap_or(d.registration),
            retention: {
                let mut p = file.retention.unwrap_or_default();
                let flags = [
                    (args.keep_last, &mut p.keep_last),
                    (args.keep_hourly, &mut p.keep_hourly),
                    (args.keep_daily, &mut p.keep_daily),
                    (args.keep_weekly, &mut p.keep_weekly),
                    (args.keep_monthly, &mut p.keep_monthly),
                    (args.keep_yearly, &mut p.keep_yearly),
                ];
                for (flag, slot) in flags {
                    if flag.is_some() {
                        *slot = flag;
                    }
                }
                if let Some(w) = &args.keep_within {
                    p.keep_within =
                        Some(crate::retention::parse_duration(w).map_err(ConfigError::Duration)?);
                }
                p
            },
            retention_clients: file.retention_clients.unwrap_or_default(),
            prune_interval: args
                .prune_interval
                .or(file.prune_interval)
                .unwrap_or(d.prune_interval),
            stale_after: args
                .stale_after
                .or(file.stale_after)
                .unwrap_or(d.stale_after),
            metrics_token: args
                .metrics_token
                .or(file.metrics_token)
                .filter(|t| !t.is_empty()),
            unlock: crate::vault::UnlockOptions {
                encryption: args
                    .encryption
                    .map(|e| e == OnOff::On)
                    .or(file.encryption)
                    .unwrap_or(false),
                key_file: args.key_file.or(file.key_file),
            },
            store: None,
            ship_interval: args
                .ship_interval
                .or(file.ship_interval)
                .unwrap_or(d.ship_interval),
            alert_interval: args
                .alert_interval
                .or(file.alert_interval)
                .unwrap_or(d.alert_interval),
            history_interval: args
                .history_interval
                .or(file.history_interval)
                .unwrap_or(d.history_interval),
        };
        let mut c = c;
        if let Some(url) = args.store.or(file.store) {
            let (bucket, prefix) = parse_store_url(&url).map_err(ConfigError::Store)?;
            let endpoint = args
                .s3_endpoint
                .or(file.s3_endpoint)
                .ok_or_else(|| ConfigError::Store(format!("{url} needs --s3-endpoint URL")))?;
            let credentials = credentials::find(
                file.s3_access_key_id.zip(file.s3_secret_access_key),
                args.s3_credentials.or(file.s3_credentials).as_deref(),
            )
            .map_err(ConfigError::Store)?;
            c.store = Some(S3Options {
                bucket,
                prefix,
                endpoint,
                region: args
                    .s3_region
                    .or(file.s3_region)
                    .unwrap_or_else(|| "us-east-1".into()),
                path_style: args.s3_path_style || file.s3_path_style.unwrap_or(false),
                credentials,
                multipart_threshold: file.s3_multipart_threshold.unwrap_or(64 << 20),
                part_size: file.s3_part_size.unwrap_or(16 << 20).max(5 << 20),
                retries: file.s3_retries.unwrap_or(5),
                connect_timeout: std::time::Duration::from_secs(5),
                io_timeout: std::time::Duration::from_secs(file.s3_timeout.unwrap_or(30).max(1)),
                pool: c.workers * 2,
                cache_bytes: file.s3_cache_size.unwrap_or(2 << 30),
            });
        }
        for (name, v) in [
            ("--workers", c.workers as u64),
            ("--queue", c.queue as u64),
            ("--hotspot-interval", c.hotspot_interval),
            ("--pack-threads", c.pack_threads as u64),
            ("--prune-interval", c.prune_interval),
            ("--max-connections", c.max_connections.unwrap_or(1) as u64),
            ("--header-timeout", c.header_timeout),
            ("--body-timeout", c.body_timeout),
            ("--send-timeout", c.send_timeout),
            ("--keepalive-timeout", c.keepalive_timeout),
            ("--ship-interval", c.ship_interval),
            ("--alert-interval", c.alert_interval),
            ("--history-interval", c.history_interval),
        ] {
            if v == 0 {
                return Err(ConfigError::Zero(name));
            }
        }
        Ok(c)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_override_file_override_defaults() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.json");
        std::fs::write(
            &path,
            r#"{"hot-time": 10, "workers": 3, "listen": "0.0.0.0:1"}"#,
        )
        .unwrap();
        let args = Args::parse_from([
            "nimbus-server",
            "--config",
            path.to_str().unwrap(),
            "--workers",
            "5",
        ]);
        let c = Config::from_args(args).unwrap();
        assert_eq!(
            (c.hot_time, c.workers, c.listen.as_str()),
            (10, 5, "0.0.0.0:1")
        );
        assert_eq!(c.hotspot_interval, 60);
    }

    #[test]
    fn unknown_keys_and_zeroes_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.json");
        std::fs::write(&path, r#"{"hot_tim": 10}"#).unwrap();
        let args = Args::parse_from(["nimbus-server", "--config", path.to_str().unwrap()]);
        let err = Config::from_args(args).unwrap_err().to_string();
        assert!(err.contains("unknown field"), "{err}");
        let args = Args::parse_from(["nimbus-server", "--workers", "0"]);
        assert!(Config::from_args(args).is_err());
        std::fs::write(&path, r#"{"tls-cert": "c.pem", "registration": "open"}"#).unwrap();
        let args = Args::parse_from(["nimbus-server", "--config", path.to_str().unwrap()]);
        let err = Config::from_args(args).unwrap_err().to_string();
        assert!(err.contains("give both files"), "{err}");
        std::fs::write(&path, r#"{"registration": "open"}"#).unwrap();
        let args = Args::parse_from(["nimbus-server", "--config", path.to_str().unwrap()]);
        assert_eq!(
            Config::from_args(args).unwrap().registration,
            Registration::Open
        );
        let args = Args::parse_from(["nimbus-server"]);
        assert_eq!(
            Config::from_args(args).unwrap().registration,
            Registration::Closed
        );
    }

    #[test]
    fn retention_from_file_and_flags() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.json");
        std::fs::write(
            &path,
            r#"{"retention": {"keep-last": 5, "keep-daily": 7, "keep-within": "2d"},
                "retention-clients": {"alice/laptop": {"keep-last": 1}}}"#,
        )
        .unwrap();
        let args = Args::parse_from([
            "nimbus-server",
            "--config",
            path.to_str().unwrap(),
            "--keep-last",
            "3",
        ]);
        let c = Config::from_args(args).unwrap();
        assert_eq!(c.retention.keep_last, Some(3), "the flag wins");
        assert_eq!(c.retention.keep_daily, Some(7));
        assert_eq!(c.retention.keep_within, Some(2 * 86_400));
        assert_eq!(c.policy_of("alice/laptop").keep_last, Some(1));
        assert_eq!(c.policy_of("alice/laptop").keep_daily, None);
        assert_eq!(c.policy_of("bob/pc").keep_last, Some(3));
        assert!(c.has_retention());
        std::fs::write(&path, r#"{"retention": {"keep-within": "soon"}}"#).unwrap();
        let args = Args::parse_from(["nimbus-server", "--config", path.to_str().unwrap()]);
        assert!(Config::from_args(args)
            .unwrap_err()
            .to_string()
            .contains("not a duration"));
        let args = Args::parse_from(["nimbus-server", "prune", "--keep-within", "1x"]);
        assert!(Config::from_args(args).is_err());
        let args = Args::parse_from(["nimbus-server"]);
        assert!(!Config::from_args(args).unwrap().has_retention());
    }
}
