//! Writing: an upload staged, verified and published, then journalled and
//! applied; a version recorded by hash; a deletion; legacy keys adopted.

use super::*;
use std::collections::HashMap;

impl DataManager {
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

    /// Like [`DataManager::adopt_upload`], for a file whose (hash, size) was
    /// computed as its bytes were written: nothing is read again.
    pub fn adopt_hashed_upload(
        &self,
        file: &Path,
        hash: ContentHash,
        size: u64,
    ) -> Result<Staged, StoreError> {
        self.blobs.adopt_hashed(file, hash, size)
    }

    /// Records a new version of (key, path) whose content is `staged`.
    ///
    /// The blob is published before the journal lock is taken, so uploads
    /// only serialise on the journal's fsync. Should recording fail, the
    /// published blob stays: another upload of the same content may already
    /// reference it, and an unreferenced blob is removed at the next start.
    pub fn commit_upload(
        &self,
        key: &str,
        path: &str,
        mtime: i64,
        staged: Staged,
    ) -> Result<Recorded, StoreError> {
        let (hash, size) = (staged.hash, staged.size);
        let _gc = self.gc.read().unwrap_or_else(|e| e.into_inner());
        let form = self.read().blob(&hash).map(|b| b.form);
        if form.is_none() && size >= nimbus_common::wire::CHUNKED_FILE_BYTES {
            return self.commit_as_chunks(key, path, mtime, staged);
        }
        match form {
            Some(BlobForm::Hot | BlobForm::Packed) => self.blobs.discard(staged),
            _ => {
                // A concurrent upload of the same content may publish too: the
                // second rename replaces verified bytes with the same bytes.
                self.blobs.publish(staged)?;
                if form == Some(BlobForm::Missing) {
                    // Content lost from disk came back; start-up would agree.
                    self.write().update_blob(&hash, |b| b.form = BlobForm::Hot);
                    warn!("blob {hash} was missing and has been uploaded again");
                }
            }
        }
        let mut journal = self.lock_journal();
        self.record_locked(&mut journal, key, path, hash, size, mtime, false)
    }

    /// Deletes staged content that will not be committed.
    pub fn discard(&self, staged: Staged) {
        self.blobs.discard(staged)
    }

    /// Stages one file of a batch: verified, not yet synced.
    pub fn stage_batch_entry(
        &self,
        body: &mut dyn Read,
        expected: &ContentHash,
        len: u64,
        max_bytes: u64,
    ) -> Result<Staged, StoreError> {
        self.blobs
            .stage_unsynced(body, expected, Some(len), max_bytes)
    }

    /// Records a batch of new versions of `key`'s files, made durable
    /// together: the new contents with two file-system syncs
    /// ([`blobs::LocalBlobs::publish_all`]), then every record with one
    /// journal fdatasync, and only then applied, so none is visible before
    /// all are durable. Each entry is (path, mtime, staged content).
    pub fn commit_batch(
        &self,
        key: &str,
        entries: Vec<(String, i64, Staged)>,
    ) -> Result<Vec<Recorded>, StoreError> {
        let _gc = self.gc.read().unwrap_or_else(|e| e.into_inner());
        let mut fresh = Vec::new();
        let mut files = Vec::with_capacity(entries.len());
        let mut came_back = Vec::new();
        for (path, mtime, staged) in entries {
            files.push((path, mtime, staged.hash, staged.size));
            match self.read().blob(&staged.hash).map(|b| b.form) {
                Some(BlobForm::Hot | BlobForm::Packed) => self.blobs.discard(staged),
                form => {
                    if form == Some(BlobForm::Missing) {
                        came_back.push(staged.hash);
                    }
                    if fresh.iter().any(|s: &Staged| s.hash == staged.hash) {
                        self.blobs.discard(staged);
                    } else {
                        fresh.push(staged);
                    }
                }
            }
        }
        self.blobs.publish_all(fresh)?;
        for hash in came_back {
            self.write().update_blob(&hash, |b| b.form = BlobForm::Hot);
            warn!("blob {hash} was missing and has been uploaded again");
        }
        let mut journal = self.lock_journal();
        let now = unix_now();
        // What each path's latest content is, the batch's own earlier
        // entries included.
        let mut latest: HashMap<&str, ContentHash> = HashMap::new();
        let mut recs = Vec::new();
        let mut new_version = Vec::with_capacity(files.len());
        // The next version number of each path, counting this batch's.
        let mut next: std::collections::HashMap<&str, u64> = Default::default();
        {
            let cat = self.read();
            for (path, mtime, hash, size) in &files {
                let current = latest.get(path.as_str()).copied().or_else(|| {
                    cat.latest(key, path)
                        .filter(|l| !l.version.deleted)
                        .map(|l| l.version.hash)
                });
                let new = current != Some(*hash);
                new_version.push(new);
                recs.push(if new {
                    let n = next
                        .entry(path.as_str())
                        .or_insert_with(|| cat.next_n(key, path));
                    *n += 1;
                    Record::Version {
                        key: key.to_string(),
                        path: path.clone(),
                        hash: *hash,
                        size: *size,
                        mtime: *mtime,
                        at: now,
                        chunked: false,
                        n: Some(*n - 1),
                    }
                } else {
                    Record::Access {
                        hash: *hash,
                        at: now,
                    }
                });
                latest.insert(path, *hash);
            }
        }
        let seq = journal.append_all(&recs)?;
        {
            let mut cat = self.write();
            for rec in &recs {
                cat.apply(rec);
            }
            cat.seq = seq;
        }
        drop(journal);
        let cat = self.read();
        Ok(files
            .iter()
            .zip(new_version)
            .map(|((path, _, _, size), new_version)| Recorded {
                new_version,
                versions: cat.latest(key, path).map_or(0, |l| l.versions),
                size: *size,
            })
            .collect())
    }

    /// Records a version by reference to content the server already holds
    /// in the same user's space (`key` is `user/machine`).
    pub fn record_existing(
        &self,
        key: &str,
        path: &str,
        hash: ContentHash,
        size: u64,
        mtime: i64,
    ) -> Result<Recorded, StoreError> {
        let _gc = self.gc.read().unwrap_or_else(|e| e.into_inner());
        let mut journal = self.lock_journal();
        // Only content already in the caller's own space: answering for
        // another user's content would tell that someone has it.
        let owner = catalog::owner_of(key);
        let known = {
            let cat = self.read();
            cat.blob(&hash)
                .is_some_and(|b| b.form != BlobForm::Missing && b.size == size)
                && cat.owned_by(&hash, owner)
        };
        if !known {
            return Err(StoreError::ContentUnknown);
        }
        self.record_locked(&mut journal, key, path, hash, size, mtime, false)
    }

    /// Journals a version of (key, path) with content `hash` (already on
    /// disk; `chunked` when it is a manifest) unless it is the file's
    /// latest content; the caller holds the journal lock.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn record_locked(
        &self,
        journal: &mut Journal,
        key: &str,
        path: &str,
        hash: ContentHash,
        size: u64,
        mtime: i64,
        chunked: bool,
    ) -> Result<Recorded, StoreError> {
        let now = unix_now();
        let current = self.read().latest(key, path);
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
            key: key.to_string(),
            path: path.to_string(),
            hash,
            size,
            mtime,
            at: now,
            chunked,
            n: Some(self.read().next_n(key, path)),
        };
        self.commit(journal, rec, true)?;
        let versions = self.read().latest(key, path).map_or(0, |l| l.versions);
        Ok(Recorded {
            new_version: true,
            versions,
            size,
        })
    }

    /// Records that (key, path) was deleted on the client. Its versions
    /// stay. Ok(false) when it is already deleted; NotFound when the server
    /// never had it.
    pub fn delete(&self, key: &str, path: &str) -> Result<bool, StoreError> {
        let mut journal = self.lock_journal();
        match self.read().latest(key, path) {
            None => return Err(StoreError::NotFound),
            Some(l) if l.version.deleted => return Ok(false),
            Some(_) => {}
        }
        let rec = Record::Delete {
            key: key.to_string(),
            path: path.to_string(),
            at: unix_now(),
            n: Some(self.read().next_n(key, path)),
        };
        self.commit(&mut journal, rec, true)?;
        Ok(true)
    }

    /// Gives files backed up before accounts existed to `owner`, and makes
    /// that durable with a snapshot. Returns how many clients moved.
    pub fn adopt_legacy(&self, owner: &str) -> io::Result<usize> {
        let _one = self.lock_compaction();
        let mut journal = self.lock_journal();
        let moved = self.write().adopt_legacy(owner);
        if moved > 0 {
            let cat = self.read();
            journal.compact(&cat)?;
            self.snapshot_seq
                .store(cat.seq, std::sync::atomic::Ordering::SeqCst);
        }
        Ok(moved)
    }
}
