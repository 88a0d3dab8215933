//! The in-memory catalog: which versions each (key, path) has, and what
//! the server knows about each blob (form on disk, last access). It changes
//! only by applying a [`Record`], the same records the journal stores, so
//! replaying the journal rebuilds exactly the catalog that was acknowledged.

use nimbus_common::hash::ContentHash;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};

/// One backed-up state of a file: its content, or its deletion (a
/// tombstone, which carries the hash, size and mtime of the content it
/// followed, so every version references a blob that exists).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Version {
    /// The version's number within its file: 1, 2, ... in order, never
    /// reused while the file has versions (forgotten ones leave gaps).
    #[serde(default)]
    pub n: u64,
    pub hash: ContentHash,
    pub size: u64,
    /// The file's modification time on the client, unix seconds.
    pub mtime: i64,
    /// When the server recorded this version, unix seconds.
    pub backed_up_at: i64,
    /// The file was deleted on the client at `backed_up_at`.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub deleted: bool,
}

/// How a blob is stored on disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BlobForm {
    /// The original bytes, served directly.
    Hot,
    /// bzip2-compressed; served by decompressing as it streams.
    Packed,
    /// Referenced by the catalog but found in no form at start-up.
    Missing,
}

/// What the catalog knows about one blob.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlobInfo {
    pub size: u64,
    pub form: BlobForm,
    /// Bytes on disk when packed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub packed_size: Option<u64>,
    /// A sample did not shrink under bzip2: the blob stays hot.
    #[serde(default)]
    pub incompressible: bool,
    /// Last upload or download, unix seconds.
    pub last_access: i64,
    /// Users whose files reference this blob (derived from the versions,
    /// never stored): content is offered by hash only within a user's space.
    #[serde(skip)]
    pub owners: std::collections::BTreeSet<String>,
    /// The content is kept as a manifest of chunks (`<hash>.manifest`), not
    /// as bytes of its own.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub chunked: bool,
    /// Users that sent or committed this blob as a chunk: it is in their
    /// space for the missing-chunks question (stored, unlike `owners`).
    #[serde(default, skip_serializing_if = "std::collections::BTreeSet::is_empty")]
    pub holders: std::collections::BTreeSet<String>,
}

impl BlobInfo {
    fn new(size: u64, at: i64) -> BlobInfo {
        BlobInfo {
            size,
            form: BlobForm::Hot,
            packed_size: None,
            incompressible: false,
            last_access: at,
            owners: Default::default(),
            chunked: false,
            holders: Default::default(),
        }
    }

    /// Whether `user`'s space holds this blob: a file of theirs references
    /// it, or they sent or committed it as a chunk.
    pub fn held_by(&self, user: &str) -> bool {
        self.form != BlobForm::Missing
            && (self.owners.contains(user) || self.holders.contains(user))
    }

    /// A chunk that no file references directly (only through manifests).
    pub fn chunk_only(&self) -> bool {
        self.owners.is_empty() && !self.holders.is_empty()
    }

    /// The bytes this blob takes on disk in its current form (0 when
    /// missing, and for a manifest, whose chunks count for themselves):
    /// the one formula behind stats, prune and check.
    pub fn stored_bytes(&self) -> u64 {
        if self.chunked {
            return 0;
        }
        match self.form {
            BlobForm::Packed => self.packed_size.unwrap_or(self.size),
            BlobForm::Hot => self.size,
            BlobForm::Missing => 0,
        }
    }
}

/// A change to the catalog, as stored in the journal.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Record {
    /// A new version of a file; its blob is on disk.
    Version {
        /// The machine's catalog key (`client` on disk, as first written).
        #[serde(rename = "client")]
        key: String,
        path: String,
        hash: ContentHash,
        size: u64,
        mtime: i64,
        at: i64,
        /// Its content is a manifest of chunks.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        chunked: bool,
    },
    /// Chunks (hash, size) a user sent or committed, on disk.
    Chunks {
        user: String,
        chunks: Vec<(ContentHash, u64)>,
        at: i64,
    },
    /// A blob was uploaded again or downloaded.
    Access { hash: ContentHash, at: i64 },
    /// A blob is now stored bzip2-compressed.
    Packed { hash: ContentHash, packed_size: u64 },
    /// A packed blob is hot again.
    Unpacked { hash: ContentHash },
    /// A blob will not be packed: bzip2 does not shrink it.
    Incompressible { hash: ContentHash },
    /// The file was deleted on the client (a tombstone; versions stay).
    Delete {
        /// The machine's catalog key (`client` on disk, as first written).
        #[serde(rename = "client")]
        key: String,
        path: String,
        at: i64,
    },
    /// Retention forgot these versions (by number) of a file.
    Forget {
        /// The machine's catalog key (`client` on disk, as first written).
        #[serde(rename = "client")]
        key: String,
        path: String,
        ns: Vec<u64>,
    },
    /// No version references this blob any more; it is deleted from disk
    /// right after this record is durable.
    Dropped { hash: ContentHash },
}

/// What the admin sees of one machine: metadata, never contents.
#[derive(Debug, Clone)]
pub struct MachineSummary {
    pub key: String,
    pub files: usize,
    pub bytes: u64,
    /// Bytes on disk for this machine's current files: each distinct
    /// content once, packed ones at their packed size.
    pub stored: u64,
    pub last_file: Option<String>,
    pub last_backup_at: Option<i64>,
}

/// The version of one file current at some time (by default now), with
/// what a listing shows about it. `version.deleted` tells a tombstone.
#[derive(Debug, Clone)]
pub struct Latest {
    /// The machine's catalog key, `user/machine`.
    pub key: String,
    pub path: String,
    pub version: Version,
    /// How many versions with content the file has (tombstones not counted).
    pub versions: usize,
    pub form: BlobForm,
}

impl Latest {
    /// The machine the file is on (the key's machine part).
    pub fn machine(&self) -> &str {
        crate::space::split_key(&self.key).1
    }
}

#[derive(Debug, Default)]
pub struct Catalog {
    /// key -> path -> versions, oldest first.
    files: BTreeMap<String, BTreeMap<String, Vec<Version>>>,
    blobs: HashMap<ContentHash, BlobInfo>,
    /// Sequence number of the last journal record applied.
    pub seq: u64,
}

impl Catalog {
    /// Applies one record. Records are facts already made durable, so this
    /// cannot fail; a record about an unknown blob is ignored.
    pub fn apply(&mut self, rec: &Record) {
        match rec {
            Record::Version {
                key,
                path,
                hash,
                size,
                mtime,
                at,
                chunked,
            } => {
                let versions = self
                    .files
                    .entry(key.clone())
                    .or_default()
                    .entry(path.clone())
                    .or_default();
                let n = versions.last().map_or(1, |v| v.n + 1);
                versions.push(Version {
                    n,
                    hash: *hash,
                    size: *size,
                    mtime: *mtime,
                    backed_up_at: *at,
                    deleted: false,
                });
                let blob = self.blobs.entry(*hash).or_insert_with(|| BlobInfo {
                    chunked: *chunked,
                    ..BlobInfo::new(*size, *at)
                });
                blob.last_access = blob.last_access.max(*at);
                blob.owners.insert(owner_of(key).to_string());
            }
            Record::Chunks { user, chunks, at } => {
                for (hash, size) in chunks {
                    let blob = self
                        .blobs
                        .entry(*hash)
                        .or_insert_with(|| BlobInfo::new(*size, *at));
                    // Recorded after the bytes are on disk: a chunk that
                    // start-up found missing is back.
                    if blob.form == BlobForm::Missing && !blob.chunked {
                        blob.form = BlobForm::Hot;
                    }
                    blob.last_access = blob.last_access.max(*at);
                    if !blob.holders.contains(user) {
                        blob.holders.insert(user.clone());
                    }
                }
            }
            Record::Access { hash, at } => {
                if let Some(b) = self.blobs.get_mut(hash) {
                    b.last_access = b.last_access.max(*at);
                }
            }
            Record::Packed { hash, packed_size } => {
                if let Some(b) = self.blobs.get_mut(hash) {
                    b.form = BlobForm::Packed;
                    b.packed_size = Some(*packed_size);
                }
            }
            Record::Unpacked { hash } => {
                if let Some(b) = self.blobs.get_mut(hash) {
                    b.form = BlobForm::Hot;
                    b.packed_size = None;
                }
            }
            Record::Incompressible { hash } => {
                if let Some(b) = self.blobs.get_mut(hash) {
                    b.incompressible = true;
                }
            }
            Record::Delete { key, path, at } => {
                let last = self
                    .files
                    .get_mut(key)
                    .and_then(|m| m.get_mut(path))
                    .filter(|v| v.last().is_some_and(|l| !l.deleted));
                if let Some(versions) = last {
                    let l = versions.last().expect("filtered above").clone();
                    versions.push(Version {
                        n: l.n + 1,
                        backed_up_at: *at,
                        deleted: true,
                        ..l
                    });
                }
            }
            Record::Forget { key, path, ns } => {
                if let Some(paths) = self.files.get_mut(key) {
                    if let Some(versions) = paths.get_mut(path) {
                        versions.retain(|v| !ns.contains(&v.n));
                        if versions.is_empty() {
                            paths.remove(path);
                        }
                    }
                    if paths.is_empty() {
                        self.files.remove(key);
                    }
                }
            }
            Record::Dropped { hash } => {
                self.blobs.remove(hash);
            }
        }
    }

    /// The contents that versions with content reference. A deletion's
    /// hash is not a reference: it only says what the deleted file held,
    /// and is never downloaded.
    pub fn referenced(&self) -> std::collections::HashSet<ContentHash> {
        self.files
            .values()
            .flat_map(|m| m.values().flatten())
            .filter(|v| !v.deleted)
            .map(|v| v.hash)
            .collect()
    }

    pub fn blob(&self, hash: &ContentHash) -> Option<&BlobInfo> {
        self.blobs.get(hash)
    }

    pub fn blob_mut(&mut self, hash: &ContentHash) -> Option<&mut BlobInfo> {
        self.blobs.get_mut(hash)
    }

    pub fn blobs(&self) -> impl Iterator<Item = (&ContentHash, &BlobInfo)> {
        self.blobs.iter()
    }

    pub fn versions(&self, key: &str, path: &str) -> Option<&[Version]> {
        self.files
            .get(key)
            .and_then(|m| m.get(path))
            .map(|v| v.as_slice())
    }

    /// The file's last version (a tombstone if it is deleted now).
    pub fn latest(&self, key: &str, path: &str) -> Option<Latest> {
        self.at(key, path, None)
    }

    /// The file's version current at `at` (unix seconds; `None` = now):
    /// the last one recorded at or before it.
    pub fn at(&self, key: &str, path: &str, at: Option<i64>) -> Option<Latest> {
        let versions = self.versions(key, path)?;
        self.current(key, path, versions, at)
    }

    fn current(
        &self,
        key: &str,
        path: &str,
        versions: &[Version],
        at: Option<i64>,
    ) -> Option<Latest> {
        let version = match at {
            None => versions.last()?,
            Some(t) => versions.iter().rev().find(|v| v.backed_up_at <= t)?,
        };
        Some(self.describe(key, path, versions, version))
    }

    /// One version of a file by number.
    pub fn version_n(&self, key: &str, path: &str, n: u64) -> Option<Latest> {
        let versions = self.versions(key, path)?;
        let version = versions.iter().find(|v| v.n == n)?;
        Some(self.describe(key, path, versions, version))
    }

    fn describe(&self, key: &str, path: &str, versions: &[Version], version: &Version) -> Latest {
        Latest {
            key: key.to_string(),
            path: path.to_string(),
            form: self.form_of(&version.hash),
            versions: versions.iter().filter(|v| !v.deleted).count(),
            version: version.clone(),
        }
    }

    fn form_of(&self, hash: &ContentHash) -> BlobForm {
        self.blobs
            .get(hash)
            .map(|b| b.form)
            .unwrap_or(BlobForm::Missing)
    }

    /// The version current at `at` (`None` = now) of every file whose
    /// machine key starts with `prefix` (a user's space is the prefix
    /// `user/`; `""` is every file), ordered by client, then path. Files
    /// deleted at that time are left out unless `deleted`; files that did
    /// not exist yet always are.
    pub fn tree(&self, prefix: &str, at: Option<i64>, deleted: bool) -> Vec<Latest> {
        let mut out = Vec::new();
        let under = self
            .files
            .range::<str, _>((
                std::ops::Bound::Included(prefix),
                std::ops::Bound::Unbounded,
            ))
            .take_while(|(key, _)| key.starts_with(prefix));
        for (key, paths) in under {
            for (path, versions) in paths {
                if let Some(l) = self.current(key, path, versions, at) {
                    if deleted || !l.version.deleted {
                        out.push(l);
                    }
                }
            }
        }
        out
    }

    /// Every file of one machine (its exact catalog key) as it was at `at`,
    /// ordered by path; deleted ones only with `deleted`.
    pub fn machine_files(&self, key: &str, at: Option<i64>, deleted: bool) -> Vec<Latest> {
        let Some(paths) = self.files.get(key) else {
            return Vec::new();
        };
        paths
            .iter()
            .filter_map(|(path, versions)| self.current(key, path, versions, at))
            .filter(|l| deleted || !l.version.deleted)
            .collect()
    }

    /// Recomputes every blob's owners from the versions.
    pub fn rebuild_owners(&mut self) {
        for b in self.blobs.values_mut() {
            b.owners.clear();
        }
        for (key, paths) in &self.files {
            for v in paths.values().flatten().filter(|v| !v.deleted) {
                if let Some(b) = self.blobs.get_mut(&v.hash) {
                    b.owners.insert(owner_of(key).to_string());
                }
            }
        }
    }

    /// Moves every machine key that has no owner (`machine`, from before
    /// accounts existed) under `owner` (`owner/machine`). Returns how many.
    pub fn adopt_legacy(&mut self, owner: &str) -> usize {
        let legacy: Vec<String> = self
            .files
            .keys()
            .filter(|k| !k.contains('/'))
            .cloned()
            .collect();
        for key in &legacy {
            if let Some(paths) = self.files.remove(key) {
                self.files.insert(format!("{owner}/{key}"), paths);
            }
        }
        if !legacy.is_empty() {
            self.rebuild_owners();
        }
        legacy.len()
    }

    /// Every (key, path, versions) triple, for the snapshot.
    pub fn files(&self) -> impl Iterator<Item = (&str, &str, &[Version])> {
        self.files.iter().flat_map(|(c, paths)| {
            paths
                .iter()
                .map(move |(p, v)| (c.as_str(), p.as_str(), v.as_slice()))
        })
    }

    /// Per machine key: (files, bytes of their latest versions, the most
    /// recently backed-up file's path and time).
    pub fn machine_summaries(&self) -> Vec<MachineSummary> {
        self.files
            .iter()
            .map(|(key, paths)| {
                let mut seen = std::collections::HashSet::new();
                let mut s = MachineSummary {
                    key: key.clone(),
                    files: 0,
                    bytes: 0,
                    stored: 0,
                    last_file: None,
                    last_backup_at: None,
                };
                for (path, versions) in paths {
                    if let Some(v) = versions.last().filter(|v| !v.deleted) {
                        s.files += 1;
                        s.bytes += v.size;
                        if seen.insert(v.hash) {
                            s.stored += self.blobs.get(&v.hash).map_or(0, |b| match b.form {
                                BlobForm::Packed => b.packed_size.unwrap_or(b.size),
                                BlobForm::Hot => b.size,
                                BlobForm::Missing => 0,
                            });
                        }
                        if s.last_backup_at.is_none_or(|t| v.backed_up_at > t) {
                            s.last_backup_at = Some(v.backed_up_at);
                            s.last_file = Some(path.clone());
                        }
                    }
                }
                s
            })
            .collect()
    }

    /// Number of (key, path) entries.
    pub fn file_count(&self) -> usize {
        self.files.values().map(|m| m.len()).sum()
    }

    /// Rebuilds a catalog from snapshot parts.
    pub fn from_parts(
        files: Vec<(String, String, Vec<Version>)>,
        blobs: Vec<(ContentHash, BlobInfo)>,
        seq: u64,
    ) -> Catalog {
        let mut cat = Catalog {
            seq,
            ..Catalog::default()
        };
        for (key, path, mut versions) in files {
            // Snapshots from before version numbers: number them in order.
            if versions.iter().any(|v| v.n == 0) {
                for (i, v) in versions.iter_mut().enumerate() {
                    v.n = i as u64 + 1;
                }
            }
            cat.files.entry(key).or_default().insert(path, versions);
        }
        cat.blobs = blobs.into_iter().collect();
        // Every version gets a blob entry (a snapshot written by an older
        // build might lack one), and every blob its owners.
        let referenced: Vec<(ContentHash, u64, i64, String)> = cat
            .files
            .iter()
            .flat_map(|(key, m)| {
                m.values()
                    .flatten()
                    .filter(|v| !v.deleted)
                    .map(move |v| (v.hash, v.size, v.backed_up_at, owner_of(key).to_string()))
            })
            .collect();
        for (hash, size, at, owner) in referenced {
            cat.blobs
                .entry(hash)
                .or_insert_with(|| BlobInfo::new(size, at))
                .owners
                .insert(owner);
        }
        cat
    }
}

pub use crate::space::owner_of;

#[cfg(test)]
mod tests {
    use super::*;

    fn h(n: u8) -> ContentHash {
        ContentHash::from_bytes([n; 32])
    }

    fn version(path: &str, n: u8, at: i64) -> Record {
        Record::Version {
            key: "pc".into(),
            path: path.into(),
            hash: h(n),
            size: n as u64,
            mtime: at - 10,
            at,
            chunked: false,
        }
    }

    #[test]
    fn versions_accumulate_and_latest_is_last() {
        let mut c = Catalog::default();
        c.apply(&version("a.txt", 1, 100));
        c.apply(&version("a.txt", 2, 200));
        c.apply(&version("b.txt", 1, 150));
        let l = c.latest("pc", "a.txt").unwrap();
        assert_eq!(l.version.hash, h(2));
        assert_eq!(l.versions, 2);
        assert_eq!(c.file_count(), 2);
        // b.txt shares a.txt's first blob: one blob entry, access is the max.
        assert_eq!(c.blob(&h(1)).unwrap().last_access, 150);
        assert_eq!(c.blobs().count(), 2);
    }

    #[test]
    fn pack_state_follows_records() {
        let mut c = Catalog::default();
        c.apply(&version("a", 1, 100));
        c.apply(&Record::Packed {
            hash: h(1),
            packed_size: 7,
        });
        assert_eq!(c.latest("pc", "a").unwrap().form, BlobForm::Packed);
        c.apply(&Record::Unpacked { hash: h(1) });
        assert_eq!(c.latest("pc", "a").unwrap().form, BlobForm::Hot);
        c.apply(&Record::Access { hash: h(1), at: 50 });
        assert_eq!(c.blob(&h(1)).unwrap().last_access, 100);
    }

    #[test]
    fn users_spaces_and_legacy_adoption() {
        let mut c = Catalog::default();
        for key in [
            "old-pc",
            "alice/laptop",
            "alice/desk",
            "alicex/pc",
            "bob/pc",
        ] {
            c.apply(&Record::Version {
                key: key.into(),
                path: "f".into(),
                hash: h(1),
                size: 1,
                mtime: 1,
                at: 1,
                chunked: false,
            });
        }
        let alice: Vec<_> = c
            .tree("alice/", None, false)
            .into_iter()
            .map(|l| l.key)
            .collect();
        assert_eq!(alice, ["alice/desk", "alice/laptop"]);
        assert_eq!(c.adopt_legacy("admin"), 1);
        assert!(c.latest("admin/old-pc", "f").is_some());
        assert_eq!(c.adopt_legacy("admin"), 0);
    }

    #[test]
    fn tombstones_history_and_forgetting() {
        let mut c = Catalog::default();
        c.apply(&version("a", 1, 100));
        c.apply(&version("a", 2, 200));
        c.apply(&version("b", 3, 150));
        c.apply(&Record::Delete {
            key: "pc".into(),
            path: "a".into(),
            at: 300,
        });
        // Deleting twice, or a file never seen, changes nothing.
        for path in ["a", "zzz"] {
            c.apply(&Record::Delete {
                key: "pc".into(),
                path: path.into(),
                at: 310,
            });
        }
        c.apply(&version("a", 1, 400));
        let a = c.versions("pc", "a").unwrap();
        assert_eq!(
            a.iter().map(|v| (v.n, v.deleted)).collect::<Vec<_>>(),
            [(1, false), (2, false), (3, true), (4, false)]
        );
        assert_eq!(a[2].hash, h(2), "a tombstone carries what it followed");
        let paths = |at, deleted| -> Vec<(String, u64)> {
            c.tree("", at, deleted)
                .into_iter()
                .map(|l| (l.path, l.version.n))
                .collect()
        };
        assert_eq!(paths(Some(99), true), []);
        assert_eq!(paths(Some(120), false), [("a".to_string(), 1)]);
        assert_eq!(
            paths(Some(160), false),
            [("a".to_string(), 1), ("b".to_string(), 1)]
        );
        assert_eq!(paths(Some(350), false), [("b".to_string(), 1)]);
        assert_eq!(
            paths(Some(350), true),
            [("a".to_string(), 3), ("b".to_string(), 1)]
        );
        assert_eq!(
            paths(None, false),
            [("a".to_string(), 4), ("b".to_string(), 1)]
        );
        assert_eq!(c.latest("pc", "a").unwrap().versions, 3);
        assert_eq!(c.version_n("pc", "a", 2).unwrap().version.hash, h(2));

        // Forgetting versions keeps the others' numbers; blobs stay until
        // dropped; a file with no versions left is gone.
        c.apply(&Record::Forget {
            key: "pc".into(),
            path: "a".into(),
            ns: vec![2, 3],
        });
        assert!(!c.referenced().contains(&h(2)) && c.blob(&h(2)).is_some());
        c.apply(&Record::Dropped { hash: h(2) });
        assert!(c.blob(&h(2)).is_none());
        c.apply(&version("a", 5, 500));
        assert_eq!(c.latest("pc", "a").unwrap().version.n, 5);
        c.apply(&Record::Forget {
            key: "pc".into(),
            path: "b".into(),
            ns: vec![1],
        });
        assert!(c.versions("pc", "b").is_none());
        assert_eq!(c.machine_summaries()[0].files, 1);
    }

    #[test]
    fn records_round_trip_as_json() {
        let r = version("dir/ü.txt", 3, 42);
        let line = serde_json::to_string(&r).unwrap();
        assert!(line.contains("\"op\":\"version\""));
        assert_eq!(serde_json::from_str::<Record>(&line).unwrap(), r);
    }
}
