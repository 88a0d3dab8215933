//! Reading: the catalog's answers (latest, at a time, a version, a folder,
//! a machine's tree) and a blob opened for a download.

use super::*;

impl DataManager {
    /// The latest version of one file (a tombstone if it is deleted).
    pub fn latest(&self, key: &str, path: &str) -> Option<Latest> {
        self.read().latest(key, path)
    }

    /// The file's version current at `at` (unix seconds).
    pub fn at(&self, key: &str, path: &str, at: i64) -> Option<Latest> {
        self.read().at(key, path, Some(at))
    }

    /// One version of a file, by number.
    pub fn version_n(&self, key: &str, path: &str, n: u64) -> Option<Latest> {
        self.read().version_n(key, path, n)
    }

    /// Every version of a file, oldest first (tombstones included).
    pub fn versions(&self, key: &str, path: &str) -> Option<Vec<catalog::Version>> {
        self.read().versions(key, path).map(|v| v.to_vec())
    }

    /// A machine's versions with content per UTC day from `from_day`
    /// under `folder` (see [`catalog::Catalog::activity`]).
    pub fn activity(&self, key: &str, folder: &str, from_day: u32) -> Option<Vec<(u32, u32, u64)>> {
        self.read().activity(key, folder, from_day)
    }

    /// Metadata of every machine, for the admin.
    pub fn machine_summaries(&self) -> Vec<catalog::MachineSummary> {
        self.read().machine_summaries(false)
    }

    /// The same with every changed machine's stored bytes recounted now,
    /// one machine under the catalog's read lock at a time (a writer waits
    /// for one machine's walk at most).
    pub fn machine_summaries_fresh(&self) -> Vec<catalog::MachineSummary> {
        let keys: Vec<String> = self.read().machine_keys().map(str::to_string).collect();
        keys.iter()
            .filter_map(|k| self.read().machine_summary(k, true))
            .collect()
    }

    /// The files of one machine inside `folder` (`""` for all), as they
    /// were at `at`; with `or_file`, `folder` may also name a single file.
    pub fn files_in(
        &self,
        machine: &crate::space::MachineKey,
        folder: &str,
        at: Option<i64>,
        or_file: bool,
    ) -> Vec<Latest> {
        let mut out = Vec::new();
        self.read()
            .walk_folder(machine.as_str(), folder, at, false, or_file, |l| {
                out.push(l);
                true
            });
        out
    }

    /// Every file under `prefix` as it was at `at` (`None` = now); deleted
    /// ones only with `deleted` (see [`Catalog::walk`]).
    pub fn tree(&self, prefix: &str, at: Option<i64>, deleted: bool) -> Vec<Latest> {
        self.read().tree(prefix, at, deleted)
    }

    /// Up to `limit` files under `prefix` after the file `after` (key,
    /// path), in listing order, and whether more follow. The catalog's read
    /// lock is held for this page only.
    pub fn page(
        &self,
        prefix: &str,
        at: Option<i64>,
        deleted: bool,
        after: Option<(&str, &str)>,
        limit: usize,
    ) -> (Vec<Latest>, bool) {
        let mut out = Vec::with_capacity(limit.min(4096));
        let more = self.read().walk(prefix, at, deleted, after, |l| {
            if out.len() == limit {
                return false;
            }
            out.push(l);
            true
        });
        (out, more)
    }

    /// A folder's sub-folders (with totals) and files, now or at `at`.
    pub fn folder(
        &self,
        machine: &crate::space::MachineKey,
        folder: &str,
        at: Option<i64>,
    ) -> Option<(catalog::tree::Totals, Vec<catalog::FolderItem>)> {
        self.read().folder(machine.as_str(), folder, at)
    }

    /// The machines under `prefix` (a user's space) with their totals.
    pub fn machines(&self, prefix: &str) -> Vec<(String, catalog::tree::Totals)> {
        self.read().machines(prefix)
    }

    /// Current files under `prefix` whose path contains `needle` (lower
    /// case): how many, and the first `limit`.
    pub fn search(&self, prefix: &str, needle: &str, limit: usize) -> (usize, Vec<Latest>) {
        self.read().search(prefix, needle, limit)
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
            let (form, chunked) = match self.read().blob(hash) {
                Some(b) => (b.form, b.chunked),
                None => return Err(StoreError::NotFound),
            };
            if form == BlobForm::Missing {
                return Err(StoreError::BlobMissing);
            }
            if chunked {
                return Ok((self.open_chunked(hash, start, len)?, form));
            }
            match self.blobs.read(hash, form, start, len) {
                Ok(r) => return Ok((r, form)),
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(StoreError::BlobMissing)
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

    /// (sum of every current file's size, sum of the distinct contents
    /// they use): the difference is what dedup saves. Kept as records
    /// apply, so this costs nothing.
    pub fn current_bytes(&self) -> (u64, u64) {
        let cat = self.read();
        let all = cat.machines("").iter().map(|(_, t)| t.bytes).sum();
        (all, cat.blob_totals().current_distinct)
    }

    /// The users that own machines in the catalog.
    pub fn users_with_data(&self) -> std::collections::BTreeSet<String> {
        self.read()
            .machine_keys()
            .filter_map(crate::space::MachineKey::parse)
            .map(|key| key.user().to_string())
            .collect()
    }
}
