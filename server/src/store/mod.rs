//! The data manager: one per process, owning the catalog (behind an RwLock),
//! its journal and the blob store.
//!
//! Every change follows the same order, which is what makes a crash at any
//! instant harmless: content is staged and verified in `tmp/`, published
//! under `blobs/` by a durable rename, the record is appended to the journal
//! and fsync'd, and only then applied in memory and acknowledged. Lock order
//! is journal, then catalog; no lock is held while a body is read or a blob
//! is written.

pub mod backend;
pub mod blobs;
pub mod catalog;
mod check;
mod chunks;
pub mod convert;
mod frames;
pub mod journal;
pub mod manifest;
mod pack;
mod prune;
mod read;
mod recover;
pub mod ship;
pub mod snapshot;
mod write;

pub use check::{BlobProblem, CheckReport};
pub use chunks::{CommitError, MAX_CHUNK_BYTES};
pub use prune::PruneReport;

use crate::vault::{Obj, Vault};
use blobs::{LocalBlobs, PackOutcome, Staged};
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
    blobs: LocalBlobs,
    dir: PathBuf,
    vault: Vault,
    /// Held shared from an upload's "is this content here?" to its journal
    /// record, and exclusively while pruning deletes blobs: a blob is never
    /// deleted between an upload finding it and referencing it.
    gc: RwLock<()>,
    /// What chunk uploads brought, and whether any await a sync.
    pub chunks: chunks::ChunkCounters,
    /// Held by whoever writes a snapshot: one at a time, so a snapshot
    /// written whole never lands in the middle of one written in slices.
    /// Taken before the journal lock.
    compaction: Mutex<()>,
    /// The sequence number of the snapshot on disk (0: none yet).
    snapshot_seq: std::sync::atomic::AtomicU64,
    /// With content in a bucket: where the catalog is shipped (`meta/`
    /// under the prefix), and what of it is there (see `ship`).
    meta: Option<std::sync::Arc<dyn backend::Backend>>,
    ship: Mutex<ship::Shipped>,
}

static GLOBAL: OnceCell<DataManager> = OnceCell::new();

/// Installs the process-wide data manager; `None` if one is installed. The
/// server passes the reference it returns to whoever needs it (the HTTP
/// context, the hotspot, the pruner): nothing reaches it as a global.
pub fn install(dm: DataManager) -> Option<&'static DataManager> {
    GLOBAL.set(dm).ok()?;
    GLOBAL.get()
}

#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error(transparent)]
    Load(#[from] journal::LoadError),
    #[error("cannot open the data directory {dir}: {source}")]
    Io { dir: PathBuf, source: io::Error },
    #[error("the data directory {} is encrypted and was opened without its key", dir.display())]
    Sealed { dir: PathBuf },
    #[error("the content store of {}: {source}", dir.display())]
    Store { dir: PathBuf, source: io::Error },
}

impl DataManager {
    /// Opens (or creates) an unencrypted data directory; see
    /// [`DataManager::open_with`].
    pub fn open(data_dir: &Path) -> Result<DataManager, OpenError> {
        if crate::vault::keys::KeySlots::exists(data_dir) {
            return Err(OpenError::Sealed {
                dir: data_dir.to_path_buf(),
            });
        }
        Self::open_with(data_dir, Vault::plain())
    }

    /// Opens (or creates) the data directory, reading and writing through
    /// `vault`: loads the catalog, empties the staging area, and reconciles
    /// the catalog with the blobs on disk.
    pub fn open_with(data_dir: &Path, vault: Vault) -> Result<DataManager, OpenError> {
        let backend =
            backend::local::LocalBackend::open(data_dir.join("blobs")).map_err(|source| {
                OpenError::Io {
                    dir: data_dir.to_path_buf(),
                    source,
                }
            })?;
        Self::open_on(data_dir, vault, std::sync::Arc::new(backend))
    }

    /// [`DataManager::open_with`], the content where the configuration
    /// says: `DATA/blobs`, or a bucket (see [`backend::open_configured`]).
    pub fn open_configured(
        data_dir: &Path,
        vault: Vault,
        store: Option<&backend::s3::S3Options>,
    ) -> Result<DataManager, OpenError> {
        let backend =
            backend::open_configured(data_dir, store).map_err(|source| OpenError::Store {
                dir: data_dir.to_path_buf(),
                source,
            })?;
        info!("content in {}", backend.describe());
        let mut dm = Self::open_on(data_dir, vault, backend)?;
        if let Some(opts) = store {
            dm.set_meta(opts).map_err(|source| OpenError::Store {
                dir: data_dir.to_path_buf(),
                source,
            })?;
        }
        Ok(dm)
    }

    /// [`DataManager::open_with`], the content in `backend` (see
    /// [`backend::open_configured`]).
    pub fn open_on(
        data_dir: &Path,
        vault: Vault,
        backend: std::sync::Arc<dyn backend::Backend>,
    ) -> Result<DataManager, OpenError> {
        let io_err = |source| OpenError::Io {
            dir: data_dir.to_path_buf(),
            source,
        };
        std::fs::create_dir_all(data_dir).map_err(io_err)?;
        let (mut catalog, journal, report) = journal::load(&data_dir.join("catalog"), &vault)?;
        if report.torn_bytes > 0 {
            warn!(
                "catalog journal ended in a torn record ({} bytes, from a crash mid-write); it was never acknowledged and has been cut off",
                report.torn_bytes
            );
        }
        let started = std::time::Instant::now();
        let blobs = LocalBlobs::open_on(data_dir, vault.clone(), backend).map_err(io_err)?;
        let on_disk = blobs.recover().map_err(io_err)?;
        let scan_secs = started.elapsed().as_secs_f64();
        recover::reconcile(&mut catalog, &blobs, on_disk).map_err(io_err)?;
        let [snap, replay, derive] = report.times;
        info!(
            "catalog loaded: snapshot {snap:.2} s, journal {replay:.2} s ({} records), owners {derive:.2} s; blob directory scanned in {scan_secs:.2} s, reconciled in {:.2} s",
            report.replayed,
            started.elapsed().as_secs_f64() - scan_secs
        );
        Ok(DataManager {
            catalog: RwLock::new(catalog),
            journal: Mutex::new(journal),
            blobs,
            dir: data_dir.to_path_buf(),
            vault,
            gc: RwLock::new(()),
            compaction: Mutex::new(()),
            chunks: Default::default(),
            snapshot_seq: report.snapshot_seq.into(),
            meta: None,
            ship: Default::default(),
        })
    }

    fn read(&self) -> RwLockReadGuard<'_, Catalog> {
        self.catalog.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> RwLockWriteGuard<'_, Catalog> {
        self.catalog.write().unwrap_or_else(|e| e.into_inner())
    }

    fn lock_compaction(&self) -> MutexGuard<'_, ()> {
        self.compaction.lock().unwrap_or_else(|e| e.into_inner())
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

    /// The data directory.
    /// The process is done with the content store (a clean shutdown):
    /// what a backend keeps beside the store is synced and marked sound.
    pub fn close_store(&self) -> io::Result<()> {
        self.blobs.close()
    }

    pub fn data_dir(&self) -> &Path {
        &self.dir
    }

    /// How the data directory is read and written (plain or sealed).
    pub fn vault(&self) -> &Vault {
        &self.vault
    }
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
            // A manifest published for a commit whose version record never
            // made it (crash between the two).
            let m = manifest::Manifest {
                size: 6,
                chunks: vec![(oh, 6)],
            };
            let other = ContentHash::of_bytes(b"never recorded");
            dm.blobs.write_manifest(&other, &m).unwrap();
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
