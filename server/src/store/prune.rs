//! Forgetting: the retention policy applied (prune), or every version of
//! a removed user's machines; then the content nothing uses is deleted.

use super::*;

/// Forget records are made durable in groups of this many.
const FORGET_BATCH: usize = 256;

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

impl DataManager {
    /// Applies retention: forgets the versions `policy_of(key)` says to
    /// (files of clients without a policy keep everything), then deletes
    /// the blobs no version references any more. With `dry_run`, only
    /// reports.
    ///
    /// Crash safety: each `Forget` is durable before anything depends on
    /// it; each `Dropped` record is durable before its blob is deleted, and
    /// a blob whose record did not make it is an orphan that the next start
    /// removes. Uploads cannot slip in between: they hold `gc` shared from
    /// "this content is here" to their journal record.
    ///
    /// Chunks go when no manifest of a referenced content names them, and
    /// none arrived in the `chunk_grace` seconds before `now`: an upload
    /// under way (chunks sent, manifest not yet committed) keeps them. A
    /// commit that names a chunk pruned anyway gets it asked for again.
    pub fn prune(
        &self,
        policy_of: &dyn Fn(&str) -> Option<crate::retention::Policy>,
        now: i64,
        chunk_grace: i64,
        dry_run: bool,
    ) -> io::Result<PruneReport> {
        let mut report = PruneReport::default();
        let plan: Vec<(String, String, Vec<u64>, bool)> = {
            let cat = self.read();
            let mut policies: std::collections::HashMap<String, Option<crate::retention::Policy>> =
                Default::default();
            let mut plan = Vec::new();
            cat.for_each_file(|key, path, versions| {
                let policy = policies
                    .entry(key.to_string())
                    .or_insert_with(|| policy_of(key).filter(|p| !p.is_empty()));
                if let Some(policy) = policy {
                    let ns = policy.forget(versions, now);
                    let all = ns.len() == versions.len();
                    if !ns.is_empty() {
                        plan.push((key.to_string(), path.to_string(), ns, all));
                    }
                }
            });
            plan
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
            cat.for_each_file(|key, path, versions| {
                let ns = forgotten.get(&(key, path));
                for v in versions.iter().filter(|v| !v.deleted) {
                    if !ns.is_some_and(|ns| ns.contains(&v.n)) {
                        used.insert(v.hash);
                    }
                }
            });
            for (_, bytes) in self.garbage(&cat, used, now - chunk_grace) {
                report.blobs += 1;
                report.bytes_freed += bytes;
            }
            return Ok(report);
        }
        self.forget_all(&plan)?;
        self.collect_garbage(&mut report, now - chunk_grace)?;
        let mut cat = self.write();
        cat.rebuild_owners();
        cat.release_dropped();
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
            let mut plan = Vec::new();
            cat.for_each_file(|key, path, versions| {
                if crate::space::MachineKey::parse(key).is_some_and(|k| k.user() == user) {
                    let ns = versions.iter().map(|v| v.n).collect();
                    plan.push((key.to_string(), path.to_string(), ns, true));
                }
            });
            plan
        };
        let mut report = PruneReport {
            versions: plan.iter().map(|(_, _, ns, _)| ns.len()).sum(),
            files_gone: plan.len(),
            ..PruneReport::default()
        };
        self.forget_all(&plan)?;
        self.collect_garbage(&mut report, i64::MAX)?;
        let mut cat = self.write();
        cat.rebuild_owners();
        cat.release_dropped();
        Ok(report)
    }

    /// Journals a `Forget` of each planned (key, path, versions).
    fn forget_all(&self, plan: &[(String, String, Vec<u64>, bool)]) -> io::Result<()> {
        for chunk in plan.chunks(FORGET_BATCH) {
            let mut journal = self.lock_journal();
            let last = chunk.len() - 1;
            for (i, (key, path, ns, _)) in chunk.iter().enumerate() {
                let rec = Record::Forget {
                    key: key.clone(),
                    path: path.clone(),
                    ns: ns.clone(),
                };
                self.commit(&mut journal, rec, i == last)?;
            }
        }
        Ok(())
    }

    /// The blobs (with the bytes each takes) that nothing needs, when
    /// `used` are the contents versions reference: neither one of them nor
    /// a chunk their manifests name, nor a chunk that arrived after
    /// `keep_since`. If a manifest cannot be read, no chunk is garbage.
    ///
    /// Manifests come first: their `Dropped` records are then journalled
    /// before those of their chunks, so a crash after any prefix of the
    /// records never leaves a manifest in the catalog whose chunk is gone
    /// (content the same bytes would have been matched against).
    fn garbage(
        &self,
        cat: &Catalog,
        mut used: std::collections::HashSet<ContentHash>,
        keep_since: i64,
    ) -> Vec<(ContentHash, u64)> {
        let mut chunks_known = true;
        let manifests: Vec<ContentHash> = used
            .iter()
            .filter(|h| cat.blob(h).is_some_and(|b| b.chunked))
            .copied()
            .collect();
        for h in manifests {
            match self.blobs.read_manifest(&h) {
                Ok(m) => used.extend(m.chunks.iter().map(|(c, _)| *c)),
                Err(e) => {
                    warn!("prune keeps every chunk: the manifest of {h} cannot be read: {e}");
                    chunks_known = false;
                }
            }
        }
        let mut gone: Vec<(ContentHash, catalog::BlobInfo)> = cat
            .blobs()
            .filter(|(h, b)| {
                !used.contains(h)
                    && (!b.has_holders || (chunks_known && b.last_access <= keep_since))
            })
            .collect();
        gone.sort_by_key(|(_, b)| !b.chunked);
        gone.into_iter()
            .map(|(h, b)| (h, b.stored_bytes()))
            .collect()
    }

    /// Deletes the content that nothing needs any more (see
    /// [`Self::garbage`]): each `Dropped` record is durable before its blob
    /// is deleted.
    fn collect_garbage(&self, report: &mut PruneReport, keep_since: i64) -> io::Result<()> {
        let _gc = self.gc.write().unwrap_or_else(|e| e.into_inner());
        let mut journal = self.lock_journal();
        let gone: Vec<(ContentHash, u64)> = {
            let cat = self.read();
            self.garbage(&cat, cat.referenced(), keep_since)
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
                self.blobs.remove_manifest(hash)?;
                report.blobs += 1;
                report.bytes_freed += bytes;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A file of two chunked versions sharing one chunk, its first version
    /// forgotten; returns the manager and what prune would delete.
    fn forgotten_first_version(dir: &Path) -> (DataManager, Vec<(ContentHash, u64)>) {
        let dm = DataManager::open(dir).unwrap();
        let parts: [&[u8]; 3] = [b"shared chunk", b"first only", b"second only"];
        let staged = parts
            .iter()
            .map(|p| {
                dm.stage_chunk(&mut &p[..], &ContentHash::of_bytes(p), p.len() as u64)
                    .unwrap()
            })
            .collect();
        let user = catalog::owner_of("pc");
        dm.store_chunks(user, staged).unwrap();
        for (mtime, (a, b)) in [(1, (0, 1)), (2, (0, 2))] {
            let whole = [parts[a], parts[b]].concat();
            let chunks = [parts[a], parts[b]]
                .iter()
                .map(|p| (ContentHash::of_bytes(p), p.len() as u64))
                .collect();
            let hash = ContentHash::of_bytes(&whole);
            dm.commit_manifest("pc", "f", mtime, hash, whole.len() as u64, chunks)
                .unwrap();
        }
        let first = dm.versions("pc", "f").unwrap()[0].n;
        dm.forget_all(&[("pc".into(), "f".into(), vec![first], false)])
            .unwrap();
        let gone = {
            let cat = dm.read();
            dm.garbage(&cat, cat.referenced(), i64::MAX)
        };
        (dm, gone)
    }

    /// A prune killed after any prefix of its `Dropped` records (before
    /// deleting a file) leaves a store that checks clean once reopened.
    #[test]
    fn a_crash_after_any_prefix_of_dropped_records_leaves_a_clean_store() {
        let n = {
            let dir = tempfile::tempdir().unwrap();
            let (_, gone) = forgotten_first_version(dir.path());
            gone.len()
        };
        assert_eq!(n, 2, "the first version's manifest and its own chunk");
        for k in 0..=n {
            let dir = tempfile::tempdir().unwrap();
            {
                let (dm, gone) = forgotten_first_version(dir.path());
                let mut journal = dm.lock_journal();
                for (hash, _) in &gone[..k] {
                    dm.commit(&mut journal, Record::Dropped { hash: *hash }, true)
                        .unwrap();
                }
            }
            let dm = DataManager::open(dir.path()).unwrap();
            let report = dm.check(true);
            assert!(
                report.problems.is_empty(),
                "after {k} record(s): {:?}",
                report.problems
            );
            assert_eq!(dm.versions("pc", "f").unwrap().len(), 1);
        }
    }
}
