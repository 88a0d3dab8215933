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

/// What the catalog knows about one blob (a copy: the catalog keeps it
/// packed in [`blobs::BlobTable`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlobInfo {
    pub size: u64,
    pub form: BlobForm,
    /// Bytes on disk when packed.
    pub packed_size: Option<u64>,
    /// A sample did not shrink under bzip2: the blob stays hot.
    pub incompressible: bool,
    /// Last upload or download, unix seconds.
    pub last_access: i64,
    /// The content is kept as a manifest of chunks (`<hash>.manifest`), not
    /// as bytes of its own.
    pub chunked: bool,
    /// Some user's file references it (owners are derived from the
    /// versions, never stored): content is offered by hash only within a
    /// user's space.
    pub has_owners: bool,
    /// Some user sent or committed it as a chunk (stored, unlike owners).
    pub has_holders: bool,
}

impl BlobInfo {
    /// A chunk that no file references directly (only through manifests).
    pub fn chunk_only(&self) -> bool {
        !self.has_owners && self.has_holders
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
        /// The version's number (absent in records of earlier releases:
        /// the next one). With it, applying the record again is a no-op,
        /// which replay after a snapshot written in slices relies on.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        n: Option<u64>,
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
        /// The tombstone's version number (as for `Version`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        n: Option<u64>,
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

pub mod blobs;
pub mod tree;

use blobs::{BlobIdx, BlobTable, BlobTotals};
use tree::{NewVersion, NodeIdx, Totals, Tree, VRec, NO_TIME};

/// A version as a snapshot stores it: its blob by record index.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RawVersion {
    pub n: u64,
    pub blob: BlobIdx,
    pub mtime: i64,
    pub at: i64,
    pub deleted: bool,
}

/// A folder page's line: a sub-folder with its totals, or a file.
#[derive(Debug, Clone)]
pub enum FolderItem {
    Folder { name: String, totals: Totals },
    File(Latest),
}

/// The catalog: per machine key, a [`Tree`] of its files; the blobs in a
/// [`BlobTable`]. Its shape in memory is described in `docs/DESIGN.md`.
#[derive(Default)]
pub struct Catalog {
    machines: BTreeMap<String, Tree>,
    blobs: BlobTable,
    /// Sequence number of the last journal record applied.
    pub seq: u64,
    /// Per machine key: (tree generation, when computed, bytes stored).
    stored_cache: std::sync::Mutex<HashMap<String, (u64, i64, u64)>>,
}

/// A machine's stored bytes are recounted at most this often while it
/// changes (a scan of its files); the admin's figure may lag by as much.
const STORED_REFRESH_SECS: i64 = 30;

/// Versions a folder's timeline may look at (about 60 ms of walking, see
/// BENCHMARKS.md); a bigger folder shows none and points to its machine's.
pub const ACTIVITY_BUDGET: usize = 1_000_000;

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
                n,
            } => {
                let b = self.blobs.ensure(hash, *size, *at, *chunked);
                self.blobs
                    .update(b, |i| i.last_access = i.last_access.max(*at));
                let user = self.blobs.spaces.user_id(owner_of(key));
                self.blobs.add_owner(b, user);
                let version = NewVersion {
                    n: *n,
                    blob: b,
                    mtime: *mtime,
                    at: *at,
                    deleted: false,
                };
                self.machines.entry(key.clone()).or_default().add_version(
                    path,
                    version,
                    &mut self.blobs,
                );
            }
            Record::Chunks { user, chunks, at } => {
                let user = self.blobs.spaces.user_id(user);
                for (hash, size) in chunks {
                    let b = self.blobs.ensure(hash, *size, *at, false);
                    self.blobs.update(b, |i| {
                        // Recorded after the bytes are on disk: a chunk that
                        // start-up found missing is back.
                        if i.form == BlobForm::Missing && !i.chunked {
                            i.form = BlobForm::Hot;
                        }
                        i.last_access = i.last_access.max(*at);
                    });
                    self.blobs.add_holder(b, user);
                }
            }
            Record::Access { hash, at } => {
                self.update_blob(hash, |b| b.last_access = b.last_access.max(*at));
            }
            Record::Packed { hash, packed_size } => {
                self.update_blob(hash, |b| {
                    b.form = BlobForm::Packed;
                    b.packed_size = Some(*packed_size);
                });
            }
            Record::Unpacked { hash } => {
                self.update_blob(hash, |b| {
                    b.form = BlobForm::Hot;
                    b.packed_size = None;
                });
            }
            Record::Incompressible { hash } => {
                self.update_blob(hash, |b| b.incompressible = true);
            }
            Record::Delete { key, path, at, n } => {
                let Some(tree) = self.machines.get_mut(key) else {
                    return;
                };
                let Some(file) = tree.find_file(path) else {
                    return;
                };
                // With a number: the tombstone follows the newest version
                // before it, unless it is there already (the writer checked
                // that the file was not deleted).
                let last = match n {
                    None => tree.newest(file).filter(|l| !l.deleted()),
                    Some(k) if tree.has_version(file, *k) => None,
                    Some(k) => tree.versions(file).into_iter().rev().find(|v| v.n() < *k),
                };
                if let Some(last) = last {
                    let version = NewVersion {
                        n: *n,
                        blob: last.blob,
                        mtime: last.mtime,
                        at: *at,
                        deleted: true,
                    };
                    tree.add_version(path, version, &mut self.blobs);
                }
            }
            Record::Forget { key, path, ns } => {
                let Some(tree) = self.machines.get_mut(key) else {
                    return;
                };
                if let Some(file) = tree.find_file(path) {
                    tree.retain_versions(file, |v| !ns.contains(&v.n()), &mut self.blobs);
                }
                if tree.is_empty() {
                    self.machines.remove(key);
                }
            }
            Record::Dropped { hash } => {
                if let Some(b) = self.blobs.find(hash) {
                    self.blobs.drop_blob(b);
                }
            }
        }
    }

    /// A machine's versions with content per UTC day from `from_day`
    /// under `folder` (`""`: all, kept as records apply; a folder's are
    /// counted from its versions, `None` past [`ACTIVITY_BUDGET`]):
    /// (day since the epoch, versions, bytes).
    pub fn activity(&self, key: &str, folder: &str, from_day: u32) -> Option<Vec<(u32, u32, u64)>> {
        let Some(tree) = self.machines.get(key) else {
            return Some(Vec::new());
        };
        if folder.is_empty() {
            return Some(tree.activity(from_day));
        }
        match tree.find_folder(folder) {
            Some(f) => tree.activity_under(f, from_day, &self.blobs, ACTIVITY_BUDGET),
            None => Some(Vec::new()),
        }
    }

    fn version_of(&self, v: &VRec) -> Version {
        Version {
            n: v.n(),
            hash: self.blobs.hash(v.blob),
            size: self.blobs.size(v.blob),
            mtime: v.mtime,
            backed_up_at: v.at(),
            deleted: v.deleted(),
        }
    }

    fn describe(&self, key: &str, path: &str, tree: &Tree, file: NodeIdx, v: &VRec) -> Latest {
        Latest {
            key: key.to_string(),
            path: path.to_string(),
            version: self.version_of(v),
            versions: tree.content_versions(file),
            form: self.blobs.form(v.blob),
        }
    }

    /// The contents that versions with content reference. A deletion's
    /// hash is not a reference: it only says what the deleted file held,
    /// and is never downloaded.
    pub fn referenced(&self) -> std::collections::HashSet<ContentHash> {
        let mut out = std::collections::HashSet::new();
        for tree in self.machines.values() {
            tree.each_version_blob(|b, deleted| {
                if !deleted {
                    out.insert(self.blobs.hash(b));
                }
            });
        }
        out
    }

    /// Frees the records of dropped blobs no version names any more.
    pub fn release_dropped(&mut self) {
        if self.blobs.keep_indices {
            return;
        }
        let mut named = vec![false; self.blobs.capacity()];
        for tree in self.machines.values() {
            tree.each_version_blob(|b, _| named[b as usize] = true);
        }
        self.blobs.release_unreferenced(&named);
    }

    pub fn blob(&self, hash: &ContentHash) -> Option<BlobInfo> {
        self.blobs.get(hash)
    }

    /// Changes what is known of a blob (not journaled: for what the disk
    /// says at start-up, or a form already made true on disk). Returns
    /// false if the catalog has no such blob.
    pub fn update_blob(&mut self, hash: &ContentHash, f: impl FnOnce(&mut BlobInfo)) -> bool {
        match self.blobs.live(hash) {
            Some(b) => {
                self.blobs.update(b, f);
                true
            }
            None => false,
        }
    }

    /// Whether `user`'s space holds this blob: a file of theirs references
    /// it, or they sent or committed it as a chunk; and it is on disk.
    pub fn held_by(&self, hash: &ContentHash, user: &str) -> bool {
        match (self.blobs.live(hash), self.blobs.spaces.find_user(user)) {
            (Some(b), Some(u)) => {
                self.blobs.form(b) != BlobForm::Missing && self.blobs.held_by(b, u)
            }
            _ => false,
        }
    }

    /// Whether a file of `user`'s references this blob.
    pub fn owned_by(&self, hash: &ContentHash, user: &str) -> bool {
        match (self.blobs.live(hash), self.blobs.spaces.find_user(user)) {
            (Some(b), Some(u)) => self.blobs.owned_by(b, u),
            _ => false,
        }
    }

    /// The users that sent or committed this blob as a chunk.
    pub fn holders(&self, hash: &ContentHash) -> Vec<String> {
        self.blobs
            .live(hash)
            .map(|b| self.blobs.holders(b).map(str::to_string).collect())
            .unwrap_or_default()
    }

    /// Every blob on record (dropped ones not).
    pub fn blobs(&self) -> impl Iterator<Item = (ContentHash, BlobInfo)> + '_ {
        self.blobs.iter().map(|(_, h, b)| (h, b))
    }

    /// Lets `f` change what is known of every blob (start-up's
    /// reconciliation with the disk), one pass over the table.
    pub fn try_update_blobs<E>(
        &mut self,
        f: impl FnMut(&ContentHash, &mut BlobInfo) -> Result<(), E>,
    ) -> Result<(), E> {
        self.blobs.try_update_each(f)
    }

    pub fn blob_totals(&self) -> BlobTotals {
        self.blobs.totals()
    }

    pub fn versions(&self, key: &str, path: &str) -> Option<Vec<Version>> {
        let tree = self.machines.get(key)?;
        let file = tree.find_file(path)?;
        Some(
            tree.versions(file)
                .iter()
                .map(|v| self.version_of(v))
                .collect(),
        )
    }

    /// The file's last version (a tombstone if it is deleted now).
    pub fn latest(&self, key: &str, path: &str) -> Option<Latest> {
        self.at(key, path, None)
    }

    /// The file's version current at `at` (unix seconds; `None` = now):
    /// the last one recorded at or before it.
    pub fn at(&self, key: &str, path: &str, at: Option<i64>) -> Option<Latest> {
        let tree = self.machines.get(key)?;
        let file = tree.find_file(path)?;
        let v = tree.version_at(file, at)?;
        Some(self.describe(key, path, tree, file, &v))
    }

    /// The number the next version of (key, path) gets.
    pub fn next_n(&self, key: &str, path: &str) -> u64 {
        self.machines
            .get(key)
            .and_then(|t| t.find_file(path).and_then(|f| t.newest(f)))
            .map_or(1, |v| v.n() + 1)
    }

    /// One version of a file by number.
    pub fn version_n(&self, key: &str, path: &str, n: u64) -> Option<Latest> {
        let tree = self.machines.get(key)?;
        let file = tree.find_file(path)?;
        let v = tree.versions(file).into_iter().find(|v| v.n() == n)?;
        Some(self.describe(key, path, tree, file, &v))
    }

    /// Visits the version current at `at` (`None` = now) of every file
    /// whose machine key starts with `prefix` (a user's space is the
    /// prefix `user/`; `""` is every file), ordered by machine key, then
    /// path (segment by segment), starting after the file `after` (key,
    /// path). Files deleted at that time are left out unless `deleted`;
    /// files that did not exist yet always are. `visit` returns whether to
    /// go on; the result says whether it stopped the walk.
    pub fn walk(
        &self,
        prefix: &str,
        at: Option<i64>,
        deleted: bool,
        after: Option<(&str, &str)>,
        mut visit: impl FnMut(Latest) -> bool,
    ) -> bool {
        let start = after.map_or(prefix, |(k, _)| k.max(prefix));
        let under = self
            .machines
            .range::<str, _>((std::ops::Bound::Included(start), std::ops::Bound::Unbounded))
            .take_while(|(key, _)| key.starts_with(prefix));
        for (key, tree) in under {
            let from = after.filter(|(k, _)| k == key).map(|(_, p)| p);
            let stopped = tree.walk(0, from, |file, path| match tree.version_at(file, at) {
                Some(v) if deleted || !v.deleted() => {
                    visit(self.describe(key, path, tree, file, &v))
                }
                _ => true,
            });
            if stopped {
                return true;
            }
        }
        false
    }

    /// [`Self::walk`] collected (for small catalogs and tests).
    pub fn tree(&self, prefix: &str, at: Option<i64>, deleted: bool) -> Vec<Latest> {
        let mut out = Vec::new();
        self.walk(prefix, at, deleted, None, |l| {
            out.push(l);
            true
        });
        out
    }

    /// Visits the files of machine `key` under `folder` (`""` for all) as
    /// they were at `at`, deleted ones only with `deleted`; with `or_file`,
    /// `folder` may also name a single file.
    pub fn walk_folder(
        &self,
        key: &str,
        folder: &str,
        at: Option<i64>,
        deleted: bool,
        or_file: bool,
        mut visit: impl FnMut(Latest) -> bool,
    ) {
        let Some(tree) = self.machines.get(key) else {
            return;
        };
        let mut show = |file: NodeIdx, path: &str| match tree.version_at(file, at) {
            Some(v) if deleted || !v.deleted() => visit(self.describe(key, path, tree, file, &v)),
            _ => true,
        };
        if or_file && !folder.is_empty() {
            if let Some(file) = tree.find_file(folder) {
                if !show(file, folder) {
                    return;
                }
            }
        }
        let Some(node) = tree.find_folder(folder) else {
            return;
        };
        let mut full = String::new();
        tree.walk(node, None, |file, rel| {
            full.clear();
            if !folder.is_empty() {
                full.push_str(folder);
                full.push('/');
            }
            full.push_str(rel);
            show(file, &full)
        });
    }

    /// Every file of one machine (its exact catalog key) as it was at `at`,
    /// ordered by path; deleted ones only with `deleted`.
    pub fn machine_files(&self, key: &str, at: Option<i64>, deleted: bool) -> Vec<Latest> {
        let mut out = Vec::new();
        self.walk_folder(key, "", at, deleted, false, |l| {
            out.push(l);
            true
        });
        out
    }

    /// What a folder page shows: its sub-folders with their totals and its
    /// files, as they are now (from the folder index: costs what it shows)
    /// or were at `at` (each sub-folder's files counted). `None` if the
    /// folder has no file, current or past.
    pub fn folder(
        &self,
        key: &str,
        folder: &str,
        at: Option<i64>,
    ) -> Option<(Totals, Vec<FolderItem>)> {
        let tree = self.machines.get(key)?;
        let node = tree.find_folder(folder)?;
        let join = |name: &str| {
            if folder.is_empty() {
                name.to_string()
            } else {
                format!("{folder}/{name}")
            }
        };
        let mut items = Vec::new();
        let mut sum = Totals::default();
        for &child in tree.children(node) {
            let name = tree.name(child);
            let totals = if tree.is_folder(child) {
                let t = match at {
                    None => tree.totals(child),
                    Some(t) => self.totals_at(tree, child, t),
                };
                if t.files == 0 {
                    continue;
                }
                items.push(FolderItem::Folder {
                    name: name.to_string(),
                    totals: t,
                });
                t
            } else {
                let Some(v) = tree.version_at(child, at).filter(|v| !v.deleted()) else {
                    continue;
                };
                let l = self.describe(key, &join(name), tree, child, &v);
                let t = Totals {
                    files: 1,
                    bytes: l.version.size,
                    newest: l.version.backed_up_at,
                };
                items.push(FolderItem::File(l));
                t
            };
            sum.files += totals.files;
            sum.bytes += totals.bytes;
            sum.newest = sum.newest.max(totals.newest);
        }
        Some((sum, items))
    }

    fn totals_at(&self, tree: &Tree, folder: NodeIdx, at: i64) -> Totals {
        let mut t = Totals::default();
        tree.walk(folder, None, |file, _| {
            if let Some(v) = tree.version_at(file, Some(at)).filter(|v| !v.deleted()) {
                t.files += 1;
                t.bytes += self.blobs.size(v.blob);
                t.newest = t.newest.max(v.at());
            }
            true
        });
        t
    }

    /// A folder's current totals from the folder index.
    pub fn folder_totals(&self, key: &str, folder: &str) -> Option<Totals> {
        let tree = self.machines.get(key)?;
        tree.find_folder(folder).map(|f| tree.totals(f))
    }

    /// Each machine under `prefix` with its current totals.
    pub fn machines(&self, prefix: &str) -> Vec<(String, Totals)> {
        self.machines
            .range::<str, _>((
                std::ops::Bound::Included(prefix),
                std::ops::Bound::Unbounded,
            ))
            .take_while(|(key, _)| key.starts_with(prefix))
            .map(|(k, t)| (k.clone(), t.root_totals()))
            .collect()
    }

    /// Current files under `prefix` whose path contains `needle` (already
    /// lower-cased), ignoring case: how many, and the first `limit`.
    pub fn search(&self, prefix: &str, needle: &str, limit: usize) -> (usize, Vec<Latest>) {
        let mut hits = Vec::new();
        let mut found = 0;
        let mut lower = String::new();
        for (key, tree) in self
            .machines
            .range::<str, _>((
                std::ops::Bound::Included(prefix),
                std::ops::Bound::Unbounded,
            ))
            .take_while(|(key, _)| key.starts_with(prefix))
        {
            tree.walk(0, None, |file, path| {
                lower.clear();
                if path.is_ascii() {
                    lower.push_str(path);
                    lower.make_ascii_lowercase();
                } else {
                    lower.extend(path.chars().flat_map(char::to_lowercase));
                }
                if lower.contains(needle) {
                    if let Some(v) = tree.newest(file).filter(|v| !v.deleted()) {
                        found += 1;
                        if hits.len() < limit {
                            hits.push(self.describe(key, path, tree, file, &v));
                        }
                    }
                }
                true
            });
        }
        (found, hits)
    }

    /// Recomputes every blob's owners from the versions.
    pub fn rebuild_owners(&mut self) {
        self.blobs.clear_owners();
        for (key, tree) in &self.machines {
            let user = self.blobs.spaces.user_id(owner_of(key));
            let mut live = Vec::new();
            tree.each_version_blob(|b, deleted| {
                if !deleted {
                    live.push(b);
                }
            });
            for b in live {
                self.blobs.add_owner(b, user);
            }
        }
    }

    /// Moves every machine key that has no owner (`machine`, from before
    /// accounts existed) under `owner` (`owner/machine`). Returns how many.
    pub fn adopt_legacy(&mut self, owner: &str) -> usize {
        let legacy: Vec<String> = self
            .machines
            .keys()
            .filter(|k| !k.contains('/'))
            .cloned()
            .collect();
        for key in &legacy {
            let target = format!("{owner}/{key}");
            let Some(tree) = self.machines.remove(key) else {
                continue;
            };
            let tree = match self.machines.entry(target.clone()) {
                std::collections::btree_map::Entry::Vacant(e) => {
                    e.insert(tree);
                    continue;
                }
                std::collections::btree_map::Entry::Occupied(_) => tree,
            };
            // Both exist: the legacy files join the owner's machine.
            let mut files = Vec::new();
            tree.walk(0, None, |file, path| {
                files.push((path.to_string(), tree.versions(file)));
                true
            });
            let into = self.machines.get_mut(&target).expect("checked above");
            for (path, versions) in files {
                for v in versions {
                    let version = NewVersion {
                        n: None,
                        blob: v.blob,
                        mtime: v.mtime,
                        at: v.at(),
                        deleted: v.deleted(),
                    };
                    into.add_version(&path, version, &mut self.blobs);
                }
            }
        }
        if !legacy.is_empty() {
            self.rebuild_owners();
        }
        legacy.len()
    }

    /// Calls `f` with every (key, path, versions oldest first).
    pub fn for_each_file(&self, mut f: impl FnMut(&str, &str, &[Version])) {
        let mut versions = Vec::new();
        for (key, tree) in &self.machines {
            tree.walk(0, None, |file, path| {
                versions.clear();
                versions.extend(tree.versions(file).iter().map(|v| self.version_of(v)));
                f(key, path, &versions);
                true
            });
        }
    }

    /// Per machine key: (files, bytes of their latest versions, the most
    /// recently backed-up file's path and time, bytes stored). With
    /// `fresh`, a changed machine's stored bytes are recounted at once
    /// rather than at most every [`STORED_REFRESH_SECS`].
    pub fn machine_summaries(&self, fresh: bool) -> Vec<MachineSummary> {
        self.machines
            .keys()
            .filter_map(|key| self.machine_summary(key, fresh))
            .collect()
    }

    /// One machine's summary (see [`Catalog::machine_summaries`]).
    pub fn machine_summary(&self, key: &str, fresh: bool) -> Option<MachineSummary> {
        let tree = self.machines.get(key)?;
        let t = tree.root_totals();
        Some(MachineSummary {
            key: key.to_string(),
            files: t.files as usize,
            bytes: t.bytes,
            stored: self.stored(key, tree, nimbus_common::time::unix_now(), fresh),
            last_file: tree.last_file(&self.blobs).map(|f| tree.path(f)),
            last_backup_at: (t.newest != NO_TIME).then_some(t.newest),
        })
    }

    /// Bytes on disk for a machine's current files (each distinct content
    /// once, packed ones at their packed size), recounted when the machine
    /// changed and the last count is older than [`STORED_REFRESH_SECS`].
    fn stored(&self, key: &str, tree: &Tree, now: i64, fresh: bool) -> u64 {
        let mut cache = self.stored_cache.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(&(generation, when, bytes)) = cache.get(key) {
            if generation == tree.generation || (!fresh && now - when < STORED_REFRESH_SECS) {
                return bytes;
            }
        }
        let mut seen = vec![0u64; self.blobs.capacity().div_ceil(64)];
        let mut bytes = 0;
        tree.walk(0, None, |file, _| {
            if let Some(v) = tree.newest(file).filter(|v| !v.deleted()) {
                let (w, bit) = (v.blob as usize / 64, 1u64 << (v.blob % 64));
                if seen[w] & bit == 0 {
                    seen[w] |= bit;
                    bytes += self.blobs.info(v.blob).stored_bytes();
                }
            }
            true
        });
        cache.insert(key.to_string(), (tree.generation, now, bytes));
        bytes
    }

    /// Number of (key, path) entries.
    pub fn file_count(&self) -> usize {
        self.machines.values().map(Tree::file_count).sum()
    }

    /// The users that own machines in the catalog (keys `user/machine`).
    pub fn machine_keys(&self) -> impl Iterator<Item = &str> {
        self.machines.keys().map(String::as_str)
    }

    /// Adds one file with its versions (oldest first), from a snapshot.
    pub fn load_file(&mut self, key: &str, path: &str, versions: &[Version]) {
        // Snapshots from before version numbers: number them in order.
        let numbered = versions.iter().all(|v| v.n != 0);
        let user = self.blobs.spaces.user_id(owner_of(key));
        let tree = match self.machines.get_mut(key) {
            Some(t) => t,
            None => self.machines.entry(key.to_string()).or_default(),
        };
        for (i, v) in versions.iter().enumerate() {
            let blob = if v.deleted {
                self.blobs.ensure_gone(&v.hash, v.size, v.backed_up_at)
            } else {
                let b = self.blobs.ensure(&v.hash, v.size, v.backed_up_at, false);
                self.blobs.add_owner(b, user);
                b
            };
            let version = NewVersion {
                n: Some(if numbered { v.n } else { i as u64 + 1 }),
                blob,
                mtime: v.mtime,
                at: v.backed_up_at,
                deleted: v.deleted,
            };
            tree.add_version(path, version, &mut self.blobs);
        }
    }

    /// Every blob record in index order, as a snapshot writes them; a
    /// snapshot's versions name blobs by this index.
    pub fn raw_blobs(&self) -> impl Iterator<Item = blobs::RawBlob<'_>> {
        (0..self.blobs.capacity() as BlobIdx).map(|i| self.blobs.raw(i))
    }

    /// Blob record `i` as a snapshot writes it.
    pub fn raw_blob(&self, i: BlobIdx) -> blobs::RawBlob<'_> {
        self.blobs.raw(i)
    }

    /// The number of blob records (the range of their indices).
    pub fn raw_blob_count(&self) -> BlobIdx {
        self.blobs.capacity() as BlobIdx
    }

    /// Keeps every blob record's index for one blob while a snapshot is
    /// written in slices (no record is freed or reused meanwhile).
    pub fn set_compacting(&mut self, on: bool) {
        self.blobs.keep_indices = on;
    }

    /// Calls `f` with every (key, path, versions oldest first) in the
    /// blob-index form a snapshot writes.
    pub fn raw_files(&self, f: impl FnMut(&str, &str, &[RawVersion]) -> bool) -> bool {
        self.raw_files_after(None, f)
    }

    /// [`Self::raw_files`] from after the file `after` (key, path); true if
    /// `f` stopped the walk.
    pub fn raw_files_after(
        &self,
        after: Option<(&str, &str)>,
        mut f: impl FnMut(&str, &str, &[RawVersion]) -> bool,
    ) -> bool {
        let mut versions = Vec::new();
        let start = after.map_or("", |(k, _)| k);
        for (key, tree) in self
            .machines
            .range::<str, _>((std::ops::Bound::Included(start), std::ops::Bound::Unbounded))
        {
            let from = after.filter(|(k, _)| k == key).map(|(_, p)| p);
            let stopped = tree.walk(0, from, |file, path| {
                versions.clear();
                versions.extend(tree.versions(file).iter().map(|v| RawVersion {
                    n: v.n(),
                    blob: v.blob,
                    mtime: v.mtime,
                    at: v.at(),
                    deleted: v.deleted(),
                }));
                f(key, path, &versions)
            });
            if stopped {
                return true;
            }
        }
        false
    }

    /// Adds a blob record read from a snapshot; returns its index (`None`
    /// for an unused one).
    pub fn load_raw_blob(&mut self, raw: blobs::RawBlob<'_>) -> Option<BlobIdx> {
        match raw {
            blobs::RawBlob::Free => None,
            blobs::RawBlob::Gone { hash, size } => Some(self.blobs.ensure_gone(&hash, size, 0)),
            blobs::RawBlob::Live {
                hash,
                info,
                holders,
            } => {
                let b = self
                    .blobs
                    .ensure(&hash, info.size, info.last_access, info.chunked);
                self.blobs.update(b, |i| {
                    let (o, h) = (i.has_owners, i.has_holders);
                    *i = info;
                    (i.has_owners, i.has_holders) = (o, h);
                });
                for user in holders {
                    let u = self.blobs.spaces.user_id(user);
                    self.blobs.add_holder(b, u);
                }
                Some(b)
            }
        }
    }

    /// The folder `dir` of machine `key`, created if missing, for loading
    /// a snapshot's files into it with [`Self::load_raw_file`] (valid until
    /// the catalog next removes a file).
    pub fn load_folder(&mut self, key: &str, dir: &str) -> NodeIdx {
        let tree = match self.machines.get_mut(key) {
            Some(t) => t,
            None => self.machines.entry(key.to_string()).or_default(),
        };
        tree.folder_or_new(dir)
    }

    /// Adds a file read from a snapshot (`name` in `folder`, which
    /// [`Self::load_folder`] gave for `key`), its versions' blobs given by
    /// index (as [`Self::load_raw_blob`] returned them).
    pub fn load_raw_file(
        &mut self,
        key: &str,
        folder: NodeIdx,
        name: &str,
        versions: &[RawVersion],
    ) {
        let user = self.blobs.spaces.user_id(owner_of(key));
        let Some(tree) = self.machines.get_mut(key) else {
            return;
        };
        for v in versions.iter().filter(|v| !v.deleted) {
            self.blobs.add_owner(v.blob, user);
        }
        let versions = versions.iter().map(|v| NewVersion {
            n: Some(v.n),
            blob: v.blob,
            mtime: v.mtime,
            at: v.at,
            deleted: v.deleted,
        });
        tree.add_versions(folder, name, versions, &mut self.blobs);
    }

    /// Room for `blobs` more blobs (from a snapshot's count).
    pub fn reserve_blobs(&mut self, blobs: usize) {
        self.blobs.reserve(blobs);
    }

    /// Bytes the catalog's arrays take (the benchmark compares it with RSS).
    pub fn heap_bytes(&self) -> usize {
        self.blobs.heap_bytes() + self.machines.values().map(Tree::heap_bytes).sum::<usize>()
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
            n: None,
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
    fn activity_per_day_follows_versions_deletions_and_forgetting() {
        let day = 86_400;
        let mut c = Catalog::default();
        c.apply(&version("a", 1, day + 5));
        c.apply(&version("a", 2, day + 50));
        c.apply(&version("b", 3, 3 * day));
        // A record applied again counts once.
        let mut again = version("a", 1, day + 5);
        if let Record::Version { n, .. } = &mut again {
            *n = Some(1);
        }
        c.apply(&again);
        c.apply(&Record::Delete {
            key: "pc".into(),
            path: "b".into(),
            at: 4 * day,
            n: None,
        });
        assert_eq!(c.activity("pc", "", 0).unwrap(), vec![(1, 2, 3), (3, 1, 3)]);
        assert_eq!(c.activity("pc", "", 2).unwrap(), vec![(3, 1, 3)]);
        c.apply(&Record::Forget {
            key: "pc".into(),
            path: "a".into(),
            ns: vec![1],
        });
        assert_eq!(c.activity("pc", "", 0).unwrap(), vec![(1, 1, 2), (3, 1, 3)]);
        assert!(c.activity("nobody", "", 0).unwrap().is_empty());
        // A folder's are counted from its own files' versions.
        c.apply(&version("d/e/x", 4, 2 * day));
        c.apply(&version("d/y", 5, 2 * day + 9));
        c.apply(&version("d/y", 6, 5 * day));
        let d = c.activity("pc", "d", 0).unwrap();
        assert_eq!(
            d.iter().map(|x| (x.0, x.1)).collect::<Vec<_>>(),
            vec![(2, 2), (5, 1)]
        );
        assert_eq!(c.activity("pc", "d/e", 3).unwrap(), vec![]);
        assert_eq!(c.activity("pc", "", 0).unwrap().len(), 4);
        assert_eq!(c.activity("pc", "nowhere", 0).unwrap(), vec![]);
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
                n: None,
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
            n: None,
        });
        // Deleting twice, or a file never seen, changes nothing.
        for path in ["a", "zzz"] {
            c.apply(&Record::Delete {
                key: "pc".into(),
                path: path.into(),
                at: 310,
                n: None,
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
        assert_eq!(c.machine_summaries(false)[0].files, 1);
    }

    /// A small deterministic generator (xorshift), for property tests.
    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
        fn below(&mut self, n: u64) -> u64 {
            self.next() % n
        }
    }

    fn random_record(rng: &mut Rng, t: i64) -> Record {
        let keys = ["ann/laptop", "ann/desk", "bob/pc"];
        let key = keys[rng.below(3) as usize].to_string();
        let depth = rng.below(4);
        let mut path = String::new();
        for _ in 0..depth {
            path.push_str(["a", "b", "Holiday in Crete", "a.x"][rng.below(4) as usize]);
            path.push('/');
        }
        path.push_str(["f", "g.txt", "a", "IMG_1.jpg", "a.x"][rng.below(5) as usize]);
        let hash = h(rng.below(40) as u8 + 1);
        match rng.below(10) {
            0..=4 => Record::Version {
                key,
                path,
                hash,
                size: hash.as_bytes()[0] as u64 * 100,
                mtime: t - 5,
                at: t,
                chunked: false,
                n: None,
            },
            5 | 6 => Record::Delete {
                key,
                path,
                at: t,
                n: None,
            },
            7 => Record::Forget {
                key,
                path,
                ns: (1..=rng.below(6)).filter(|_| rng.below(2) == 0).collect(),
            },
            8 => Record::Dropped { hash },
            _ => Record::Packed {
                hash,
                packed_size: 7,
            },
        }
    }

    /// Every folder's totals and listing against a recount from the files.
    fn assert_index_matches_recount(c: &Catalog) {
        use std::collections::BTreeMap;
        let mut expect: BTreeMap<(String, String), Totals> = BTreeMap::new();
        let mut children: BTreeMap<(String, String), std::collections::BTreeSet<String>> =
            BTreeMap::new();
        for l in c.tree("", None, false) {
            let segs: Vec<&str> = l.path.split('/').collect();
            for depth in 0..segs.len() {
                let dir = segs[..depth].join("/");
                let t = expect.entry((l.key.clone(), dir.clone())).or_default();
                t.files += 1;
                t.bytes += l.version.size;
                t.newest = t.newest.max(l.version.backed_up_at);
                let child = if depth + 1 == segs.len() {
                    format!("file:{}", segs[depth])
                } else {
                    format!("dir:{}", segs[depth])
                };
                children
                    .entry((l.key.clone(), dir))
                    .or_default()
                    .insert(child);
            }
        }
        for ((key, dir), t) in &expect {
            assert_eq!(c.folder_totals(key, dir), Some(*t), "{key} {dir:?}");
            let (sum, items) = c.folder(key, dir, None).unwrap();
            assert_eq!(sum, *t);
            let listed: std::collections::BTreeSet<String> = items
                .iter()
                .map(|i| match i {
                    FolderItem::Folder { name, .. } => format!("dir:{name}"),
                    FolderItem::File(l) => format!("file:{}", l.path.rsplit('/').next().unwrap()),
                })
                .collect();
            assert_eq!(&listed, &children[&(key.clone(), dir.clone())]);
        }
        for (key, t) in c.machines("") {
            let want = expect
                .get(&(key.clone(), String::new()))
                .copied()
                .unwrap_or_default();
            assert_eq!(t, want, "{key}");
        }
        // Blob totals and the distinct content of current files.
        let mut tot = blobs::BlobTotals::default();
        for (_, b) in c.blobs().filter(|(_, b)| !b.chunked) {
            tot.blobs += 1;
            tot.bytes_original += b.size;
            tot.bytes_stored += b.stored_bytes();
            match b.form {
                BlobForm::Hot => tot.hot += 1,
                BlobForm::Packed => tot.packed += 1,
                BlobForm::Missing => tot.missing += 1,
            }
        }
        let mut seen = std::collections::HashSet::new();
        for l in c.tree("", None, false) {
            if c.blob(&l.version.hash).is_some() && seen.insert(l.version.hash) {
                tot.current_distinct += l.version.size;
            }
        }
        assert_eq!(c.blob_totals(), tot);
    }

    fn listing(c: &Catalog) -> Vec<(String, String, Vec<Version>)> {
        let mut out = Vec::new();
        c.for_each_file(|k, p, v| out.push((k.to_string(), p.to_string(), v.to_vec())));
        out
    }

    #[test]
    fn folder_index_equals_a_recount_after_random_changes() {
        for seed in 1..=8u64 {
            let mut rng = Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15));
            let mut c = Catalog::default();
            for i in 0..1500 {
                let t = 1000 + i as i64 / 3;
                c.apply(&random_record(&mut rng, t));
                if i % 97 == 0 {
                    assert_index_matches_recount(&c);
                }
            }
            assert_index_matches_recount(&c);
            // A snapshot read back gives the same catalog and index.
            let mut bytes = Vec::new();
            crate::store::snapshot::write(&mut bytes, &c).unwrap();
            let mut back = Catalog::default();
            crate::store::snapshot::read(&bytes[..], &mut back).unwrap();
            assert_eq!(listing(&back), listing(&c), "seed {seed}");
            assert_index_matches_recount(&back);
            back.release_dropped();
            c.release_dropped();
            assert_index_matches_recount(&back);
            assert_eq!(listing(&back), listing(&c));
        }
    }

    #[test]
    fn restarts_at_every_stage_give_the_same_index() {
        use crate::store::journal;
        let dir = tempfile::tempdir().unwrap();
        let cat_dir = dir.path().join("catalog");
        let mut rng = Rng(7);
        let (mut c, mut j, _) = journal::load(&cat_dir, &crate::vault::Vault::plain()).unwrap();
        let mut t = 1000;
        let mut feed = |c: &mut Catalog, j: &mut journal::Journal, n: usize| {
            for _ in 0..n {
                t += 1;
                let r = random_record(&mut rng, t);
                c.seq = j.append(&r, false).unwrap();
                c.apply(&r);
            }
        };
        let reload = |c: &Catalog| {
            let (back, _, _) = journal::load(&cat_dir, &crate::vault::Vault::plain()).unwrap();
            assert_eq!(listing(&back), listing(c));
            assert_index_matches_recount(&back);
            assert_eq!(back.blob_totals(), c.blob_totals());
        };
        // Journal only.
        feed(&mut c, &mut j, 800);
        reload(&c);
        // After compaction (snapshot alone), then snapshot + journal.
        j.compact(&c).unwrap();
        reload(&c);
        feed(&mut c, &mut j, 800);
        reload(&c);
        j.compact(&c).unwrap();
        feed(&mut c, &mut j, 50);
        reload(&c);
    }

    #[test]
    fn a_snapshot_written_in_slices_while_records_apply_loads_exactly() {
        use crate::store::{journal, snapshot};
        // Three ends: the snapshot in place; a crash before the old
        // journal went; a crash before the snapshot was renamed.
        for (seed, end) in [(11u64, 0), (12, 1), (13, 2), (14, 0), (15, 1)] {
            let dir = tempfile::tempdir().unwrap();
            let cat_dir = dir.path().join("catalog");
            let mut rng = Rng(seed);
            let (mut c, mut j, _) = journal::load(&cat_dir, &crate::vault::Vault::plain()).unwrap();
            let mut t = 1000;
            let mut feed = |c: &mut Catalog, j: &mut journal::Journal, n: usize| {
                for _ in 0..n {
                    t += 1;
                    let mut r = random_record(&mut rng, t);
                    // As the write path numbers them.
                    match &mut r {
                        Record::Version { key, path, n, .. }
                        | Record::Delete { key, path, n, .. } => {
                            *n = Some(c.next_n(key, path));
                        }
                        _ => {}
                    }
                    if let Record::Delete { key, path, .. } = &r {
                        if c.latest(key, path).is_none_or(|l| l.version.deleted) {
                            continue;
                        }
                    }
                    c.seq = j.append(&r, false).unwrap();
                    c.apply(&r);
                }
            };
            feed(&mut c, &mut j, 700);
            if seed % 2 == 0 {
                j.compact(&c).unwrap();
                feed(&mut c, &mut j, 200);
            }
            let seq = j.rotate().unwrap();
            c.set_compacting(true);
            let path = if end == 2 {
                cat_dir.join("snapshot.json.unfinished")
            } else {
                j.snapshot_path()
            };
            nimbus_common::durable::write_atomic(&path, |w| {
                let mut sliced = snapshot::Sliced::with_slices(seq, 7, 11);
                while !sliced.step(w, &c)? {
                    feed(&mut c, &mut j, 5);
                }
                Ok(())
            })
            .unwrap();
            c.set_compacting(false);
            if end == 0 {
                j.finish_rotation().unwrap();
            }
            feed(&mut c, &mut j, 50);
            drop(j);
            let (back, _, _) = journal::load(&cat_dir, &crate::vault::Vault::plain()).unwrap();
            assert_eq!(listing(&back), listing(&c), "seed {seed} end {end}");
            assert_index_matches_recount(&back);
            assert_eq!(back.blob_totals(), c.blob_totals(), "seed {seed}");
            let blobs = |c: &Catalog| {
                let mut v: Vec<_> = c
                    .blobs()
                    .map(|(h, b)| (h, format!("{:?}", b.form), b.size))
                    .collect();
                v.sort();
                v
            };
            assert_eq!(blobs(&back), blobs(&c), "seed {seed}");
        }
    }

    #[test]
    fn walking_after_a_cursor_continues_exactly_there() {
        let mut c = Catalog::default();
        let mut rng = Rng(42);
        for i in 0..600 {
            c.apply(&random_record(&mut rng, 100 + i));
        }
        let all: Vec<(String, String)> = c
            .tree("", None, true)
            .into_iter()
            .map(|l| (l.key, l.path))
            .collect();
        assert!(all.len() > 50);
        // Pages of 7 from each cursor give every file once, in order.
        let mut got = Vec::new();
        let mut after: Option<(String, String)> = None;
        loop {
            let mut page = Vec::new();
            c.walk(
                "",
                None,
                true,
                after.as_ref().map(|(k, p)| (k.as_str(), p.as_str())),
                |l| {
                    page.push((l.key, l.path));
                    page.len() < 7
                },
            );
            if page.is_empty() {
                break;
            }
            after = page.last().cloned();
            got.extend(page);
        }
        assert_eq!(got, all);
        // A cursor naming a file that is gone starts where it would be.
        let (k, p) = &all[all.len() / 2];
        let mut first = None;
        c.walk("", None, true, Some((k, &format!("{p}~"))), |l| {
            first = Some((l.key, l.path));
            false
        });
        assert!(first.is_none_or(|f| f > (k.clone(), p.clone()) || f.0 != *k));
    }

    #[test]
    fn records_round_trip_as_json() {
        let r = version("dir/ü.txt", 3, 42);
        let line = serde_json::to_string(&r).unwrap();
        assert!(line.contains("\"op\":\"version\""));
        assert_eq!(serde_json::from_str::<Record>(&line).unwrap(), r);
    }
}
