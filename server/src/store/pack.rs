//! The hotspot's side: accesses noted, cold blobs found, packed with bzip2
//! and unpacked again; the journal compacted into a snapshot.

use super::*;

impl DataManager {
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
}
