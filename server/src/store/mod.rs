//! The data manager: one per process, owning the catalog (behind an RwLock),
//! its journal and the blob store.
//!
//! Every change follows the same order, which is what makes a crash at any
//! instant harmless: content is staged and verified in `tmp/`, published
//! under `blobs/` by a durable rename, the record is appended to the journal
//! and fsync'd, and only then applied in memory and acknowledged. Lock order
//! is journal, then catalog; no lock is held while a body is read or a blob
//! is written.

pub mod blobs;
pub mod catalog;
pub mod journal;

use blobs::{BlobStore, LocalBlobs, PackOutcome, Staged};
use catalog::{BlobForm, Catalog, Latest, Record};
use journal::Journal;
use log::{error, info, warn};
use nimbus_common::hash::ContentHash;
use nimbus_common::time::unix_now;
use once_cell::sync::OnceCell;
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::sync::{Mutex, MutexGuard, RwLock, RwLockReadGuard, RwLockWriteGuard};

/// Downloads record an access at most this often per blob, so a busy file
/// does not turn every download into a journal write.
const ACCESS_RESOLUTION_SECS: i64 = 60;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("content hash mismatch: the body hashes to {actual}, not {expected}")]
    HashMismatch {
        expected: ContentHash,
        actual: ContentHash,
    },
    #[error("body is larger than the server's limit of {limit} bytes")]
    TooLarge { limit: u64 },
    #[error("the body ended before its declared length, or the connection broke")]
    BodyIncomplete,
    #[error("the body stopped arriving (nothing for the server's --body-timeout)")]
    BodyTimeout,
    #[error("the server does not hold this content; send the bytes")]
    ContentUnknown,
    #[error("no such file")]
    NotFound,
    #[error("the stored content of this file is missing; run a check on the server")]
    BlobMissing,
    #[error(transparent)]
    Io(#[from] io::Error),
}

impl StoreError {
    /// True for a full disk or exhausted quota.
    pub fn is_storage_full(&self) -> bool {
        matches!(self, StoreError::Io(e) if is_storage_full(e))
    }
}

pub fn is_storage_full(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::StorageFull | io::ErrorKind::QuotaExceeded
    )
}

/// Outcome of recording a version.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub new_version: bool,
    pub versions: usize,
    pub size: u64,
}

/// Figures for the start-up log and the benchmark.
#[derive(Debug, Default, Clone)]
pub struct Stats {
    pub files: usize,
    pub blobs: usize,
    pub hot: usize,
    pub packed: usize,
    pub missing: usize,
    pub bytes_original: u64,
    pub bytes_stored: u64,
}

pub struct DataManager {
    catalog: RwLock<Catalog>,
    journal: Mutex<Journal>,
    blobs: Box<dyn BlobStore>,
    dir: PathBuf,
    /// Held shared from an upload's "is this content here?" to its journal
    /// record, and exclusively while pruning deletes blobs: a blob is never
    /// deleted between an upload finding it and referencing it.
    gc: RwLock<()>,
}

/// What a prune did (or, dry, would do).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct PruneReport {
    /// Versions forgotten (tombstones included).
    pub versions: usize,
    /// Files left with no version at all.
    pub files_gone: usize,
    /// Blobs no longer referenced, and deleted.
    pub blobs: usize,
    /// Bytes those blobs took on disk.
    pub bytes_freed: u64,
}

/// A stored content that is not what the catalog says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlobProblem {
    pub hash: ContentHash,
    pub problem: String,
}

/// What `check` looked at.
#[derive(Debug, Default, Clone)]
pub struct CheckReport {
    pub blobs: usize,
    pub bytes_read: u64,
    pub problems: Vec<BlobProblem>,
    /// (client, path, version number) of every version whose content has a
    /// problem.
    pub affected: Vec<(String, String, u64, ContentHash)>,
}

/// Forget records are made durable in groups of this many.
const FORGET_BATCH: usize = 256;

static GLOBAL: OnceCell<DataManager> = OnceCell::new();

/// Installs the process-wide data manager; `None` if one is installed.
pub fn install(dm: DataManager) -> Option<&'static DataManager> {
    GLOBAL.set(dm).ok()?;
    GLOBAL.get()
}

/// The process-wide data manager. Panics before [`install`].
pub fn global() -> &'static DataManager {
    GLOBAL.get().expect("data manager not installed")
}

#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error(transparent)]
    Load(#[from] journal::LoadError),
    #[error("cannot open the data directory {dir}: {source}")]
    Io { dir: PathBuf, source: io::Error },
}

impl DataManager {
    /// Opens (or creates) the data directory: loads the catalog, empties the
    /// staging area, and reconciles the catalog with the blobs on disk.
    pub fn open(data_dir: &Path) -> Result<DataManager, OpenError> {
        let io_err = |source| OpenError::Io {
            dir: data_dir.to_path_buf(),
            source,
        };
        std::fs::create_dir_all(data_dir).map_err(io_err)?;
        let (mut catalog, journal, report) = journal::load(&data_dir.join("catalog"))?;
        if report.torn_bytes > 0 {
            warn!(
                "catalog journal ended in a torn record ({} bytes, from a crash mid-write); it was never acknowledged and has been cut off",
                report.torn_bytes
            );
        }
        let blobs = LocalBlobs::open(data_dir).map_err(io_err)?;
        let on_disk = blobs.recover().map_err(io_err)?;
        reconcile(&mut catalog, &blobs, on_disk).map_err(io_err)?;
        Ok(DataManager {
            catalog: RwLock::new(catalog),
            journal: Mutex::new(journal),
            blobs: Box::new(blobs),
            dir: data_dir.to_path_buf(),
            gc: RwLock::new(()),
        })
    }

    fn read(&self) -> RwLockReadGuard<'_, Catalog> {
        self.catalog.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> RwLockWriteGuard<'_, Catalog> {
        self.catalog.write().unwrap_or_else(|e| e.into_inner())
    }

    fn lock_journal(&self) -> MutexGuard<'_, Journal> {
        self.journal.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Appends `rec` and applies it. The caller holds the journal lock.
    fn commit(&self, journal: &mut Journal, rec: Record, durable: bool) -> io::Result<()> {
        let seq = journal.append(&rec, durable)?;
        let mut cat = self.write();
        cat.apply(&rec);
        cat.seq = seq;
        Ok(())
    }

    /// Streams an upload's body to staging and verifies it. No lock is held.
    pub fn stage_upload(
        &self,
        body: &mut dyn Read,
        expected: &ContentHash,
        declared_len: Option<u64>,
        max_bytes: u64,
    ) -> Result<Staged, StoreError> {
        self.blobs.stage(body, expected, declared_len, max_bytes)
    }

    /// Takes a complete file in the data directory (a finished resumable
    /// upload) as staged content; [`DataManager::commit_upload`] then moves
    /// it into the blobs, or deletes it if the content is already held.
    pub fn adopt_upload(&self, file: &Path) -> Result<Staged, StoreError> {
        self.blobs.adopt(file)
    }

    /// Records a new version of (client, path) whose content is `staged`.
    ///
    /// The blob is published before the journal lock is taken, so uploads
    /// only serialise on the journal's fsync. Should recording fail, the
    /// published blob stays: another upload of the same content may already
    /// reference it, and an unreferenced blob is removed at the next start.
    pub fn commit_upload(
        &self,
        client: &str,
        path: &str,
        mtime: i64,
        staged: Staged,
    ) -> Result<Recorded, StoreError> {
        let (hash, size) = (staged.hash, staged.size);
        let _gc = self.gc.read().unwrap_or_else(|e| e.into_inner());
        let form = self.read().blob(&hash).map(|b| b.form);
        match form {
            Some(BlobForm::Hot | BlobForm::Packed) => self.blobs.discard(staged),
            _ => {
                // A concurrent upload of the same content may publish too: the
                // second rename replaces verified bytes with the same bytes.
                self.blobs.publish(staged)?;
                if form == Some(BlobForm::Missing) {
                    // Content lost from disk came back; start-up would agree.
                    if let Some(b) = self.write().blob_mut(&hash) {
                        b.form = BlobForm::Hot;
                    }
                    warn!("blob {hash} was missing and has been uploaded again");
                }
            }
        }
        let mut journal = self.lock_journal();
        self.record_locked(&mut journal, client, path, hash, size, mtime)
    }

    /// Records a version by reference to content the server already holds
    /// in the same user's space (`client` is `user/machine`).
    pub fn record_existing(
        &self,
        client: &str,
        path: &str,
        hash: ContentHash,
        size: u64,
        mtime: i64,
    ) -> Result<Recorded, StoreError> {
        let _gc = self.gc.read().unwrap_or_else(|e| e.into_inner());
        let mut journal = self.lock_journal();
        // Only content already in the caller's own space: answering for
        // another user's content would tell that someone has it.
        let owner = catalog::owner_of(client);
        match self.read().blob(&hash) {
            Some(b)
                if b.form != BlobForm::Missing && b.size == size && b.owners.contains(owner) => {}
            _ => return Err(StoreError::ContentUnknown),
        }
        self.record_locked(&mut journal, client, path, hash, size, mtime)
    }

    fn record_locked(
        &self,
        journal: &mut Journal,
        client: &str,
        path: &str,
        hash: ContentHash,
        size: u64,
        mtime: i64,
    ) -> Result<Recorded, StoreError> {
        let now = unix_now();
        let current = self.read().latest(client, path);
        if let Some(latest) = current.filter(|l| !l.version.deleted) {
            if latest.version.hash == hash {
                self.commit(journal, Record::Access { hash, at: now }, false)?;
                return Ok(Recorded {
                    new_version: false,
                    versions: latest.versions,
                    size,
                });
            }
        }
        let rec = Record::Version {
            client: client.to_string(),
            path: path.to_string(),
            hash,
            size,
            mtime,
            at: now,
        };
        self.commit(journal, rec, true)?;
        let versions = self.read().latest(client, path).map_or(0, |l| l.versions);
        Ok(Recorded {
            new_version: true,
            versions,
            size,
        })
    }

    /// The latest version of one file (a tombstone if it is deleted).
    pub fn latest(&self, client: &str, path: &str) -> Option<Latest> {
        self.read().latest(client, path)
    }

    /// The file's version current at `at` (unix seconds).
    pub fn at(&self, client: &str, path: &str, at: i64) -> Option<Latest> {
        self.read().at(client, path, Some(at))
    }

    /// One version of a file, by number.
    pub fn version_n(&self, client: &str, path: &str, n: u64) -> Option<Latest> {
        self.read().version_n(client, path, n)
    }

    /// Every version of a file, oldest first (tombstones included).
    pub fn versions(&self, client: &str, path: &str) -> Option<Vec<catalog::Version>> {
        self.read().versions(client, path).map(|v| v.to_vec())
    }

    /// Records that (client, path) was deleted on the client. Its versions
    /// stay. Ok(false) when it is already deleted; NotFound when the server
    /// never had it.
    pub fn delete(&self, client: &str, path: &str) -> Result<bool, StoreError> {
        let mut journal = self.lock_journal();
        match self.read().latest(client, path) {
            None => return Err(StoreError::NotFound),
            Some(l) if l.version.deleted => return Ok(false),
            Some(_) => {}
        }
        let rec = Record::Delete {
            client: client.to_string(),
            path: path.to_string(),
            at: unix_now(),
        };
        self.commit(&mut journal, rec, true)?;
        Ok(true)
    }

    /// Metadata of every client, for the admin.
    pub fn client_summaries(&self) -> Vec<catalog::ClientSummary> {
        self.read().client_summaries()
    }

    /// The files of one client (`user/machine`) inside `folder` (`""` for
    /// all), as they were at `at`; with `or_file`, `folder` may also name
    /// a single file.
    pub fn files_in(
        &self,
        client: &str,
        folder: &str,
        at: Option<i64>,
        or_file: bool,
    ) -> Vec<Latest> {
        let prefix = format!("{folder}/");
        self.read()
            .tree(client, at, false)
            .into_iter()
            .filter(|l| l.client == client)
            .filter(|l| {
                folder.is_empty() || l.path.starts_with(&prefix) || (or_file && l.path == folder)
            })
            .collect()
    }

    /// Every file under `prefix` as it was at `at` (`None` = now); deleted
    /// ones only with `deleted` (see [`Catalog::tree`]).
    pub fn tree(&self, prefix: &str, at: Option<i64>, deleted: bool) -> Vec<Latest> {
        self.read().tree(prefix, at, deleted)
    }

    /// Gives files backed up before accounts existed to `owner`, and makes
    /// that durable with a snapshot. Returns how many clients moved.
    pub fn adopt_legacy(&self, owner: &str) -> io::Result<usize> {
        let mut journal = self.lock_journal();
        let moved = self.write().adopt_legacy(owner);
        if moved > 0 {
            let cat = self.read();
            journal.compact(&cat)?;
        }
        Ok(moved)
    }

    /// Opens a byte range of a blob, following it if it is packed or
    /// unpacked while we look. Returns the reader and the form it was read in.
    pub fn open_blob(
        &self,
        hash: &ContentHash,
        start: u64,
        len: u64,
    ) -> Result<(Box<dyn Read + Send>, BlobForm), StoreError> {
        // Packing and unpacking publish the new form before removing the old,
        // so a lookup that loses the race finds the other form on retry. An
        // opened file stays readable after it is unlinked.
        for _ in 0..8 {
            let form = match self.read().blob(hash) {
                Some(b) => b.form,
                None => return Err(StoreError::NotFound),
            };
            if form == BlobForm::Missing {
                return Err(StoreError::BlobMissing);
            }
            match self.blobs.open(hash, form, start, len) {
                Ok(r) => return Ok((r, form)),
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(StoreError::BlobMissing)
    }

    /// The data directory.
    pub fn data_dir(&self) -> &Path {
        &self.dir
    }

    /// (sum of every current file's size, sum of the distinct contents
    /// they use): the difference is what dedup saves.
    pub fn current_bytes(&self) -> (u64, u64) {
        let cat = self.read();
        let mut seen = std::collections::HashSet::new();
        let (mut all, mut distinct) = (0, 0);
        for l in cat.tree("", None, false) {
            all += l.version.size;
            if seen.insert(l.version.hash) {
                distinct += l.version.size;
            }
        }
        (all, distinct)
    }

    /// True when the catalog knows `hash` but found it on no disk.
    pub fn blob_missing(&self, hash: &ContentHash) -> bool {
        matches!(
            self.read().blob(hash),
            None | Some(catalog::BlobInfo {
                form: BlobForm::Missing,
                ..
            })
        )
    }

    /// Notes a download of `hash`, for the hotspot's idea of what is cold.
    pub fn touch(&self, hash: &ContentHash) {
        let now = unix_now();
        let stale = matches!(self.read().blob(hash), Some(b) if now - b.last_access >= ACCESS_RESOLUTION_SECS);
        if !stale {
            return;
        }
        let mut journal = self.lock_journal();
        if let Err(e) = self.commit(
            &mut journal,
            Record::Access {
                hash: *hash,
                at: now,
            },
            false,
        ) {
            // Losing an access time only makes a blob look colder; a download
            // must not fail for it.
            warn!("could not record access to {hash}: {e}");
            if let Some(b) = self.write().blob_mut(hash) {
                b.last_access = b.last_access.max(now);
            }
        }
    }

    /// Hot blobs not accessed since `cutoff` that are worth trying to pack.
    pub fn cold_blobs(&self, cutoff: i64) -> Vec<ContentHash> {
        let cat = self.read();
        let mut cold: Vec<(i64, ContentHash)> = cat
            .blobs()
            .filter(|(_, b)| {
                b.form == BlobForm::Hot && !b.incompressible && b.size > 0 && b.last_access < cutoff
            })
            .map(|(h, b)| (b.last_access, *h))
            .collect();
        cold.sort();
        cold.into_iter().map(|(_, h)| h).collect()
    }

    /// Packs one cold blob. Requests keep being served throughout: the
    /// compression runs without locks, and the switch is a rename plus a
    /// journal record. A blob accessed while it was being packed stays hot.
    pub fn pack(&self, hash: &ContentHash, stop: &AtomicBool) -> Result<bool, StoreError> {
        let started = match self.read().blob(hash) {
            Some(b) if b.form == BlobForm::Hot => b.last_access,
            _ => return Ok(false),
        };
        let staged = match self.blobs.pack(hash, stop)? {
            PackOutcome::Packed(s) => s,
            PackOutcome::Abandoned => return Ok(false),
            PackOutcome::Incompressible => {
                let mut journal = self.lock_journal();
                self.commit(&mut journal, Record::Incompressible { hash: *hash }, true)?;
                return Ok(false);
            }
        };
        let mut journal = self.lock_journal();
        let unchanged = matches!(self.read().blob(hash), Some(b) if b.form == BlobForm::Hot && b.last_access == started);
        if !unchanged {
            self.blobs.discard(staged);
            return Ok(false);
        }
        let packed_size = staged.stored_size;
        self.blobs.publish(staged)?;
        self.commit(
            &mut journal,
            Record::Packed {
                hash: *hash,
                packed_size,
            },
            true,
        )?;
        drop(journal);
        self.blobs.remove(hash, BlobForm::Hot)?;
        Ok(true)
    }

    /// Makes a packed blob hot again.
    pub fn unpack(&self, hash: &ContentHash) -> Result<bool, StoreError> {
        if !matches!(self.read().blob(hash), Some(b) if b.form == BlobForm::Packed) {
            return Ok(false);
        }
        let staged = self.blobs.unpack(hash)?;
        let mut journal = self.lock_journal();
        if !matches!(self.read().blob(hash), Some(b) if b.form == BlobForm::Packed) {
            self.blobs.discard(staged);
            return Ok(false);
        }
        self.blobs.publish(staged)?;
        self.commit(&mut journal, Record::Unpacked { hash: *hash }, true)?;
        drop(journal);
        self.blobs.remove(hash, BlobForm::Packed)?;
        Ok(true)
    }

    /// Applies retention: forgets the versions `policy_of(client)` says to
    /// (files of clients without a policy keep everything), then deletes
    /// the blobs no version references any more. With `dry_run`, only
    /// reports.
    ///
    /// Crash safety: each `Forget` is durable before anything depends on
    /// it; each `Dropped` record is durable before its blob is deleted, and
    /// a blob whose record did not make it is an orphan that the next start
    /// removes. Uploads cannot slip in between: they hold `gc` shared from
    /// "this content is here" to their journal record.
    pub fn prune(
        &self,
        policy_of: &dyn Fn(&str) -> Option<crate::retention::Policy>,
        now: i64,
        dry_run: bool,
    ) -> io::Result<PruneReport> {
        let mut report = PruneReport::default();
        let plan: Vec<(String, String, Vec<u64>, bool)> = {
            let cat = self.read();
            let mut policies: std::collections::HashMap<String, Option<crate::retention::Policy>> =
                Default::default();
            cat.files()
                .filter_map(|(client, path, versions)| {
                    let policy = policies
                        .entry(client.to_string())
                        .or_insert_with(|| policy_of(client).filter(|p| !p.is_empty()))
                        .as_ref()?;
                    let ns = policy.forget(versions, now);
                    let all = ns.len() == versions.len();
                    (!ns.is_empty()).then(|| (client.to_string(), path.to_string(), ns, all))
                })
                .collect()
        };
        report.versions = plan.iter().map(|(_, _, ns, _)| ns.len()).sum();
        report.files_gone = plan.iter().filter(|(.., all)| *all).count();
        if dry_run {
            let cat = self.read();
            let forgotten: std::collections::HashMap<(&str, &str), &Vec<u64>> = plan
                .iter()
                .map(|(c, p, ns, _)| ((c.as_str(), p.as_str()), ns))
                .collect();
            let mut used = std::collections::HashSet::new();
            for (client, path, versions) in cat.files() {
                let ns = forgotten.get(&(client, path));
                for v in versions.iter().filter(|v| !v.deleted) {
                    if !ns.is_some_and(|ns| ns.contains(&v.n)) {
                        used.insert(v.hash);
                    }
                }
            }
            for (h, b) in cat.blobs() {
                if !used.contains(h) {
                    report.blobs += 1;
                    report.bytes_freed += stored_bytes(b);
                }
            }
            return Ok(report);
        }
        self.forget_all(&plan)?;
        self.collect_garbage(&mut report)?;
        self.write().rebuild_owners();
        Ok(report)
    }

    /// Forgets every version of every file of `user`'s machines (their
    /// account is being removed with its data), then deletes the content
    /// nothing else references. Crash-safe as [`prune`](Self::prune) is,
    /// which it shares its steps with: run again after a crash, it
    /// finishes the job.
    pub fn forget_user(&self, user: &str) -> io::Result<PruneReport> {
        let plan: Vec<(String, String, Vec<u64>, bool)> = {
            let cat = self.read();
            cat.files()
                .filter(|(client, ..)| client.split_once('/').is_some_and(|(u, _)| u == user))
                .map(|(client, path, versions)| {
                    let ns = versions.iter().map(|v| v.n).collect();
                    (client.to_string(), path.to_string(), ns, true)
                })
                .collect()
        };
        let mut report = PruneReport {
            versions: plan.iter().map(|(_, _, ns, _)| ns.len()).sum(),
            files_gone: plan.len(),
            ..PruneReport::default()
        };
        self.forget_all(&plan)?;
        self.collect_garbage(&mut report)?;
        self.write().rebuild_owners();
        Ok(report)
    }

    /// Whether any machine of `user` has data in the catalog.
    pub fn user_has_data(&self, user: &str) -> bool {
        self.read()
            .files()
            .any(|(client, ..)| client.split_once('/').is_some_and(|(u, _)| u == user))
    }

    /// The users that own machines in the catalog.
    pub fn users_with_data(&self) -> std::collections::BTreeSet<String> {
        self.read()
            .files()
            .filter_map(|(client, ..)| client.split_once('/').map(|(u, _)| u.to_string()))
            .collect()
    }

    /// Journals a `Forget` of each planned (client, path, versions).
    fn forget_all(&self, plan: &[(String, String, Vec<u64>, bool)]) -> io::Result<()> {
        for chunk in plan.chunks(FORGET_BATCH) {
            let mut journal = self.lock_journal();
            let last = chunk.len() - 1;
            for (i, (client, path, ns, _)) in chunk.iter().enumerate() {
                let rec = Record::Forget {
                    client: client.clone(),
                    path: path.clone(),
                    ns: ns.clone(),
                };
                self.commit(&mut journal, rec, i == last)?;
            }
        }
        Ok(())
    }

    /// Deletes the content that no version references any more: each
    /// `Dropped` record is durable before its blob is deleted.
    fn collect_garbage(&self, report: &mut PruneReport) -> io::Result<()> {
        let _gc = self.gc.write().unwrap_or_else(|e| e.into_inner());
        let mut journal = self.lock_journal();
        let gone: Vec<(ContentHash, u64)> = {
            let cat = self.read();
            cat.unreferenced()
                .into_iter()
                .map(|h| (h, cat.blob(&h).map(stored_bytes).unwrap_or(0)))
                .collect()
        };
        for chunk in gone.chunks(FORGET_BATCH) {
            let last = chunk.len() - 1;
            for (i, (hash, _)) in chunk.iter().enumerate() {
                self.commit(&mut journal, Record::Dropped { hash: *hash }, i == last)?;
            }
            for (hash, bytes) in chunk {
                for form in [BlobForm::Hot, BlobForm::Packed] {
                    match self.blobs.remove(hash, form) {
                        Ok(()) => {}
                        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                        Err(e) => return Err(e),
                    }
                }
                report.blobs += 1;
                report.bytes_freed += bytes;
            }
        }
        Ok(())
    }

    /// Verifies every blob the catalog knows: present, of the right stored
    /// size, and with `read_data` its content (packed ones decompressed)
    /// hashes to its name. Then names every version that a problem affects.
    pub fn check(&self, read_data: bool) -> CheckReport {
        let blobs: Vec<(ContentHash, catalog::BlobInfo)> =
            self.read().blobs().map(|(h, b)| (*h, b.clone())).collect();
        let mut report = CheckReport {
            blobs: blobs.len(),
            ..CheckReport::default()
        };
        for (hash, info) in &blobs {
            let problem = match info.form {
                BlobForm::Missing => Some("missing from disk".to_string()),
                form => {
                    let expected = match form {
                        BlobForm::Packed => info.packed_size,
                        _ => Some(info.size),
                    };
                    match self.blobs.stored_len(hash, form) {
                        Err(e) => Some(format!("cannot be read: {e}")),
                        Ok(len) if expected.is_some_and(|e| e != len) => Some(format!(
                            "holds {len} bytes on disk, the catalog says {}",
                            expected.unwrap_or(0)
                        )),
                        Ok(_) if read_data => {
                            let read = self
                                .blobs
                                .open(hash, form, 0, info.size)
                                .and_then(ContentHash::of_reader);
                            match read {
                                Err(e) => Some(format!("cannot be read: {e}")),
                                Ok((actual, n)) => {
                                    report.bytes_read += n;
                                    if actual != *hash || n != info.size {
                                        Some(format!("corrupt: its {n} bytes hash to {actual}"))
                                    } else {
                                        None
                                    }
                                }
                            }
                        }
                        Ok(_) => None,
                    }
                }
            };
            if let Some(problem) = problem {
                report.problems.push(BlobProblem {
                    hash: *hash,
                    problem,
                });
            }
        }
        let bad: std::collections::HashSet<ContentHash> =
            report.problems.iter().map(|p| p.hash).collect();
        if !bad.is_empty() {
            let cat = self.read();
            for (client, path, versions) in cat.files() {
                for v in versions
                    .iter()
                    .filter(|v| !v.deleted && bad.contains(&v.hash))
                {
                    report
                        .affected
                        .push((client.to_string(), path.to_string(), v.n, v.hash));
                }
            }
        }
        report
    }

    /// Rewrites the snapshot when the journal has grown at least as large as
    /// the catalog (and past `min_records`), which keeps the cost of
    /// compaction per record constant.
    pub fn maybe_compact(&self, min_records: u64) -> io::Result<bool> {
        let mut journal = self.lock_journal();
        let files = self.read().file_count() as u64;
        if journal.since_snapshot < min_records.max(files) {
            return Ok(false);
        }
        let cat = self.read();
        journal.compact(&cat)?;
        Ok(true)
    }

    /// Writes a snapshot now (at shutdown), whatever the journal's size.
    pub fn compact(&self) -> io::Result<()> {
        let mut journal = self.lock_journal();
        if journal.since_snapshot == 0 {
            return Ok(());
        }
        let cat = self.read();
        journal.compact(&cat)
    }

    pub fn stats(&self) -> Stats {
        let cat = self.read();
        let mut s = Stats {
            files: cat.file_count(),
            ..Stats::default()
        };
        for (_, b) in cat.blobs() {
            s.blobs += 1;
            s.bytes_original += b.size;
            match b.form {
                BlobForm::Hot => {
                    s.hot += 1;
                    s.bytes_stored += b.size;
                }
                BlobForm::Packed => {
                    s.packed += 1;
                    s.bytes_stored += b.packed_size.unwrap_or(b.size);
                }
                BlobForm::Missing => s.missing += 1,
            }
        }
        s
    }
}

fn stored_bytes(b: &catalog::BlobInfo) -> u64 {
    match b.form {
        BlobForm::Packed => b.packed_size.unwrap_or(b.size),
        BlobForm::Hot => b.size,
        BlobForm::Missing => 0,
    }
}

/// Makes the catalog agree with the disk after a restart: the disk says in
/// which form each blob exists (hot wins when a crash left both), blobs that
/// no version references are leftovers of unacknowledged uploads and go.
fn reconcile(
    catalog: &mut Catalog,
    blobs: &LocalBlobs,
    mut on_disk: std::collections::HashMap<ContentHash, blobs::OnDisk>,
) -> io::Result<()> {
    let hashes: Vec<ContentHash> = catalog.blobs().map(|(h, _)| *h).collect();
    let mut missing = 0usize;
    for hash in hashes {
        let found = on_disk.remove(&hash).unwrap_or_default();
        let info = catalog.blob_mut(&hash).expect("listed above");
        if found.hot {
            if found.packed {
                blobs.remove(&hash, BlobForm::Packed)?;
            }
            info.form = BlobForm::Hot;
            info.packed_size = None;
        } else if found.packed {
            info.form = BlobForm::Packed;
        } else {
            info.form = BlobForm::Missing;
            missing += 1;
            error!("blob {hash} is referenced by the catalog but missing from disk");
        }
    }
    let orphans = on_disk.len();
    for (hash, found) in on_disk {
        if found.hot {
            blobs.remove(&hash, BlobForm::Hot)?;
        }
        if found.packed {
            blobs.remove(&hash, BlobForm::Packed)?;
        }
    }
    if orphans > 0 {
        info!("removed {orphans} blob(s) of uploads that were never acknowledged");
    }
    if missing > 0 {
        error!("{missing} blob(s) are missing: their files cannot be downloaded");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn upload(dm: &DataManager, path: &str, data: &[u8]) -> Recorded {
        let h = ContentHash::of_bytes(data);
        let staged = dm
            .stage_upload(&mut &data[..], &h, Some(data.len() as u64), u64::MAX)
            .unwrap();
        dm.commit_upload("pc", path, 1, staged).unwrap()
    }

    #[test]
    fn versions_dedup_and_restart() {
        let dir = tempfile::tempdir().unwrap();
        {
            let dm = DataManager::open(dir.path()).unwrap();
            assert!(upload(&dm, "a", b"one").new_version);
            assert!(!upload(&dm, "a", b"one").new_version);
            assert_eq!(upload(&dm, "a", b"two").versions, 2);
            upload(&dm, "b", b"one");
            let h = ContentHash::of_bytes(b"two");
            assert!(dm.record_existing("pc", "c", h, 3, 1).unwrap().new_version);
            assert!(matches!(
                dm.record_existing("pc", "c", ContentHash::of_bytes(b"zzz"), 3, 1),
                Err(StoreError::ContentUnknown)
            ));
            assert_eq!(dm.stats().blobs, 2);
        }
        let dm = DataManager::open(dir.path()).unwrap();
        assert_eq!(dm.tree("", None, false).len(), 3);
        assert_eq!(dm.latest("pc", "a").unwrap().versions, 2);
        let blob_files = walk_count(&dir.path().join("blobs"));
        assert_eq!(blob_files, 2, "identical content is stored once");
    }

    fn walk_count(dir: &Path) -> usize {
        std::fs::read_dir(dir)
            .unwrap()
            .map(|e| std::fs::read_dir(e.unwrap().path()).unwrap().count())
            .sum()
    }

    #[test]
    fn orphan_blobs_and_double_forms_are_resolved_at_start() {
        let dir = tempfile::tempdir().unwrap();
        let text: Vec<u8> = b"abcabcabc ".repeat(50_000);
        let h = ContentHash::of_bytes(&text);
        {
            let dm = DataManager::open(dir.path()).unwrap();
            upload(&dm, "t", &text);
            // An upload that was published but never recorded (crash).
            let data = b"orphan".to_vec();
            let oh = ContentHash::of_bytes(&data);
            let staged = dm.stage_upload(&mut &data[..], &oh, None, 100).unwrap();
            dm.blobs.publish(staged).unwrap();
            // A pack that was published but whose hot copy was not removed.
            match dm.blobs.pack(&h, &AtomicBool::new(false)).unwrap() {
                PackOutcome::Packed(s) => dm.blobs.publish(s).unwrap(),
                _ => panic!("text packs"),
            }
            // A leftover staging file.
            std::fs::write(dir.path().join("tmp/upload-1-1.nimbus-tmp"), b"x").unwrap();
        }
        let dm = DataManager::open(dir.path()).unwrap();
        assert_eq!(walk_count(&dir.path().join("blobs")), 1);
        assert_eq!(
            std::fs::read_dir(dir.path().join("tmp")).unwrap().count(),
            0
        );
        assert_eq!(dm.latest("pc", "t").unwrap().form, BlobForm::Hot);
    }

    #[test]
    fn pack_and_unpack_keep_content_readable() {
        let dir = tempfile::tempdir().unwrap();
        let dm = DataManager::open(dir.path()).unwrap();
        let text: Vec<u8> = b"the quick brown fox ".repeat(100_000);
        upload(&dm, "t", &text);
        let h = ContentHash::of_bytes(&text);
        assert_eq!(dm.cold_blobs(unix_now() + 1), vec![h]);
        assert!(dm.pack(&h, &AtomicBool::new(false)).unwrap());
        assert_eq!(dm.latest("pc", "t").unwrap().form, BlobForm::Packed);
        let (mut r, form) = dm.open_blob(&h, 5, 10).unwrap();
        assert_eq!(form, BlobForm::Packed);
        let mut got = Vec::new();
        r.read_to_end(&mut got).unwrap();
        assert_eq!(got, &text[5..15]);
        drop(dm);
        let dm = DataManager::open(dir.path()).unwrap();
        assert_eq!(dm.latest("pc", "t").unwrap().form, BlobForm::Packed);
        assert!(dm.unpack(&h).unwrap());
        assert_eq!(dm.latest("pc", "t").unwrap().form, BlobForm::Hot);
        assert!(dm.stats().bytes_stored == text.len() as u64);
    }
}
