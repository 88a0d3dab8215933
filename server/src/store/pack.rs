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
            self.write()
                .update_blob(hash, |b| b.last_access = b.last_access.max(now));
        }
    }

    /// Hot blobs not accessed since `cutoff` that are worth trying to pack.
    pub fn cold_blobs(&self, cutoff: i64) -> Vec<ContentHash> {
        let cat = self.read();
        let mut cold: Vec<(i64, ContentHash)> = cat
            .blobs()
            .filter(|(_, b)| {
                // A chunk goes cold with the contents naming it.
                b.form == BlobForm::Hot
                    && !b.incompressible
                    && !b.chunk_only()
                    && b.size > 0
                    && b.last_access < cutoff
            })
            .map(|(h, b)| (b.last_access, h))
            .collect();
        cold.sort();
        cold.into_iter().map(|(_, h)| h).collect()
    }

    /// Packs one cold blob. Requests keep being served throughout: the
    /// compression runs without locks, and the switch is a rename plus a
    /// journal record. A blob accessed while it was being packed stays hot.
    pub fn pack(&self, hash: &ContentHash, stop: &AtomicBool) -> Result<bool, StoreError> {
        let (started, chunked) = match self.read().blob(hash) {
            Some(b) if b.form == BlobForm::Hot => (b.last_access, b.chunked),
            _ => return Ok(false),
        };
        if chunked {
            return self.pack_chunked(hash, started, stop);
        }
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

    /// Packs each hot chunk of a content kept as chunks, then notes the
    /// content packed (with the bytes its chunks take). Each chunk switches
    /// as a whole blob does: packed copy published, record durable, hot copy
    /// removed; a crash between leaves a state start-up resolves.
    fn pack_chunked(
        &self,
        hash: &ContentHash,
        started: i64,
        stop: &AtomicBool,
    ) -> Result<bool, StoreError> {
        let manifest = self.blobs.read_manifest(hash)?;
        let mut seen = std::collections::HashSet::new();
        let mut packed_size = 0u64;
        for (c, len) in &manifest.chunks {
            if !seen.insert(*c) {
                continue;
            }
            if stop.load(std::sync::atomic::Ordering::Relaxed) {
                return Ok(false);
            }
            let hot = match self.read().blob(c) {
                Some(b) if b.form == BlobForm::Hot && !b.incompressible => true,
                Some(b) => {
                    packed_size += b.stored_bytes();
                    false
                }
                None => false,
            };
            if !hot {
                continue;
            }
            match self.blobs.pack(c, stop)? {
                PackOutcome::Abandoned => return Ok(false),
                PackOutcome::Incompressible => {
                    let mut journal = self.lock_journal();
                    self.commit(&mut journal, Record::Incompressible { hash: *c }, true)?;
                    packed_size += *len as u64;
                }
                PackOutcome::Packed(staged) => {
                    let mut journal = self.lock_journal();
                    if !matches!(self.read().blob(c), Some(b) if b.form == BlobForm::Hot) {
                        self.blobs.discard(staged);
                        continue;
                    }
                    let size = staged.stored_size;
                    self.blobs.publish(staged)?;
                    let rec = Record::Packed {
                        hash: *c,
                        packed_size: size,
                    };
                    self.commit(&mut journal, rec, true)?;
                    drop(journal);
                    self.blobs.remove(c, BlobForm::Hot)?;
                    packed_size += size;
                }
            }
        }
        let mut journal = self.lock_journal();
        let unchanged = matches!(self.read().blob(hash), Some(b) if b.form == BlobForm::Hot && b.last_access == started);
        if unchanged {
            let rec = Record::Packed {
                hash: *hash,
                packed_size,
            };
            self.commit(&mut journal, rec, true)?;
        }
        Ok(unchanged)
    }

    /// Makes a packed blob hot again (each packed chunk of a content kept
    /// as chunks).
    pub fn unpack(&self, hash: &ContentHash) -> Result<bool, StoreError> {
        let chunked = match self.read().blob(hash) {
            Some(b) if b.form == BlobForm::Packed => b.chunked,
            _ => return Ok(false),
        };
        if chunked {
            let manifest = self.blobs.read_manifest(hash)?;
            let mut seen = std::collections::HashSet::new();
            for (c, _) in &manifest.chunks {
                if seen.insert(*c) {
                    self.unpack(c)?;
                }
            }
            let mut journal = self.lock_journal();
            self.commit(&mut journal, Record::Unpacked { hash: *hash }, true)?;
            return Ok(true);
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
        let journal = self.lock_journal();
        let files = self.read().file_count() as u64;
        if journal.since_snapshot < min_records.max(files) {
            return Ok(false);
        }
        drop(journal);
        self.compact_in_slices()?;
        Ok(true)
    }

    /// Writes a snapshot now (at shutdown), whatever the journal's size.
    pub fn compact(&self) -> io::Result<()> {
        if self.lock_journal().since_snapshot == 0 {
            return Ok(());
        }
        self.compact_in_slices().map(|_| ())
    }

    /// Writes the snapshot a slice at a time, each under the catalog's read
    /// lock for a few milliseconds, while uploads go on (see
    /// [`snapshot::Sliced`] for why replay after it is exact); the journal
    /// lock is held only to rotate the journal and to drop the old one.
    /// Returns the longest time one slice held the lock.
    pub fn compact_in_slices(&self) -> io::Result<std::time::Duration> {
        let _one = self.lock_compaction();
        let (seq, path) = {
            let mut journal = self.lock_journal();
            (journal.rotate()?, journal.snapshot_path())
        };
        self.write().set_compacting(true);
        let mut longest = std::time::Duration::ZERO;
        let written = self
            .vault
            .write_atomic(&path, Obj::Snapshot, false, |mut w| {
                let mut sliced = super::snapshot::Sliced::new(seq);
                loop {
                    let cat = self.read();
                    let t = std::time::Instant::now();
                    let done = sliced.step(&mut w, &cat)?;
                    longest = longest.max(t.elapsed());
                    if done {
                        return Ok(());
                    }
                }
            });
        self.write().set_compacting(false);
        written?;
        self.snapshot_seq
            .store(seq, std::sync::atomic::Ordering::SeqCst);
        self.lock_journal().finish_rotation()?;
        Ok(longest)
    }
}
