//! A bounded copy, on local disk, of the objects most recently stored in a
//! remote backend (a bucket), in front of it: a put keeps a hard link to
//! the staging file it sent, and reads of those keys are answered from it.
//! The commit of a chunked upload reads back every chunk it names to check
//! the whole content's hash; without the copy that is a second transfer of
//! the whole file from the store (slow, and billed as egress by providers).
//! Recent files also download without a round trip to the store.
//!
//! `DATA/cache/objects/<key>` holds the copies, `DATA/cache/tmp` the links
//! of puts under way. Least recently used copies go first when the bytes
//! held pass the limit.
//!
//! Promise: a copy is byte for byte the object in the store. A copy is
//! linked in only after the store acknowledged its put; a put or remove of
//! a key drops its copy before it reaches the store. Copies are not synced
//! as they are made, so they are trusted across a restart only when the
//! last process closed the cache cleanly: [`Backend::close`] syncs them and
//! then writes `DATA/cache/clean`; opening removes that mark (durably)
//! before anything new is linked in, and a cache found without it (a crash,
//! a power cut, kill -9) is emptied. One process uses a data directory at a
//! time (the data lock), so no one else changes the store under the copies.

use super::{local, Backend, Durability, Object};
use nimbus_common::durable;
use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::fs;
use std::io;
use std::path::{Component, Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

/// Puts of one batch (the chunks of one request) sent to the store at once:
/// each is a round trip, which a remote store answers in parallel.
const PARALLEL_PUTS: usize = 4;

/// The mark of a cache closed cleanly.
const CLEAN: &str = "clean";

/// How the copies are used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Kept and read, up to the limit.
    Use,
    /// Never read nor added to (`check --read-data` must read the store
    /// itself); puts and removes still drop the copies they make stale, so
    /// the directory stays true for the next process that uses it.
    Bypass,
}

#[derive(Default)]
struct Index {
    /// key -> (bytes, last use)
    entries: HashMap<String, (u64, u64)>,
    by_use: BTreeMap<u64, String>,
    bytes: u64,
    clock: u64,
    closed: bool,
}

impl Index {
    fn touch(&mut self, key: &str) -> bool {
        let Some((_, used)) = self.entries.get_mut(key) else {
            return false;
        };
        self.by_use.remove(used);
        self.clock += 1;
        *used = self.clock;
        self.by_use.insert(self.clock, key.to_string());
        true
    }

    fn insert(&mut self, key: &str, bytes: u64) {
        self.forget(key);
        self.clock += 1;
        self.entries.insert(key.to_string(), (bytes, self.clock));
        self.by_use.insert(self.clock, key.to_string());
        self.bytes += bytes;
    }

    fn forget(&mut self, key: &str) -> bool {
        let Some((bytes, used)) = self.entries.remove(key) else {
            return false;
        };
        self.by_use.remove(&used);
        self.bytes -= bytes;
        true
    }

    fn oldest(&self) -> Option<String> {
        self.by_use.values().next().cloned()
    }
}

pub struct CachedBackend {
    inner: Arc<dyn Backend>,
    dir: PathBuf,
    limit: u64,
    mode: Mode,
    index: Mutex<Index>,
    pending: AtomicU64,
}

impl fmt::Debug for CachedBackend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CachedBackend")
            .field("inner", &self.inner)
            .field("limit", &self.limit)
            .field("mode", &self.mode)
            .finish()
    }
}

/// Whether `key` is a plain relative path (the blob layer's keys are), so
/// that its copy stays inside the cache directory.
fn plain(key: &str) -> bool {
    !key.is_empty()
        && !key.contains('\\')
        && Path::new(key)
            .components()
            .all(|c| matches!(c, Component::Normal(_)))
}

impl CachedBackend {
    /// The cache in `dir` before `inner`, holding up to `limit` bytes
    /// (0: no copies, as [`Mode::Bypass`]).
    pub fn open(
        dir: PathBuf,
        inner: Arc<dyn Backend>,
        limit: u64,
        mode: Mode,
    ) -> io::Result<CachedBackend> {
        let mode = if limit == 0 { Mode::Bypass } else { mode };
        let cache = CachedBackend {
            inner,
            dir,
            limit,
            mode,
            index: Mutex::new(Index::default()),
            pending: AtomicU64::new(0),
        };
        if mode == Mode::Use {
            cache.load()?;
        }
        Ok(cache)
    }

    fn objects(&self) -> PathBuf {
        self.dir.join("objects")
    }

    fn tmp(&self) -> PathBuf {
        self.dir.join("tmp")
    }

    fn path(&self, key: &str) -> PathBuf {
        self.objects().join(key)
    }

    fn lock(&self) -> MutexGuard<'_, Index> {
        self.index.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Trusts the copies of a clean close (indexed oldest first by their
    /// time of linking), empties a cache left any other way.
    fn load(&self) -> io::Result<()> {
        fs::create_dir_all(&self.dir)?;
        let _ = fs::remove_dir_all(self.tmp());
        fs::create_dir_all(self.tmp())?;
        let mark = self.dir.join(CLEAN);
        let clean = mark.exists();
        if clean {
            // Gone for good before anything new (and unsynced) appears.
            fs::remove_file(&mark)?;
            durable::sync_dir(&self.dir)?;
        } else {
            match fs::remove_dir_all(self.objects()) {
                Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
                _ => {}
            }
        }
        fs::create_dir_all(self.objects())?;
        if !clean {
            return Ok(());
        }
        let mut found = Vec::new();
        for shard in fs::read_dir(self.objects())? {
            let shard = shard?;
            if !shard.file_type()?.is_dir() {
                continue;
            }
            for entry in fs::read_dir(shard.path())? {
                let entry = entry?;
                let meta = entry.metadata()?;
                if !meta.is_file() {
                    continue;
                }
                let key = format!(
                    "{}/{}",
                    shard.file_name().to_string_lossy(),
                    entry.file_name().to_string_lossy()
                );
                let when = meta.modified().ok();
                found.push((when, key, meta.len()));
            }
        }
        found.sort();
        let mut index = self.lock();
        for (_, key, bytes) in found {
            index.insert(&key, bytes);
        }
        self.evict(&mut index);
        Ok(())
    }

    /// Removes least recently used copies until the bytes fit the limit.
    fn evict(&self, index: &mut Index) {
        while index.bytes > self.limit {
            let Some(key) = index.oldest() else { break };
            index.forget(&key);
            if let Err(e) = fs::remove_file(self.path(&key)) {
                if e.kind() != io::ErrorKind::NotFound {
                    log::debug!("cache: could not remove the copy of {key}: {e}");
                }
            }
        }
    }

    /// Drops the copy of `key`, if any: it is about to change in the store.
    fn drop_copy(&self, key: &str) -> io::Result<()> {
        if !plain(key) {
            return Ok(());
        }
        let mut index = self.lock();
        index.forget(key);
        match fs::remove_file(self.path(key)) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }

    /// The path of the copy of `key`, marked as just used, if there is one.
    fn copy_of(&self, key: &str) -> Option<PathBuf> {
        if self.mode != Mode::Use || !plain(key) {
            return None;
        }
        self.lock().touch(key).then(|| self.path(key))
    }
}

impl Backend for CachedBackend {
    fn open(&self, key: &str) -> io::Result<Box<dyn Object>> {
        if let Some(path) = self.copy_of(key) {
            // Evicted since: the store has it.
            match local::open_file(&path) {
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                other => return other,
            }
        }
        self.inner.open(key)
    }

    fn read_all(&self, key: &str) -> io::Result<Vec<u8>> {
        if let Some(path) = self.copy_of(key) {
            match fs::read(&path) {
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                other => return other,
            }
        }
        self.inner.read_all(key)
    }

    fn len(&self, key: &str) -> io::Result<u64> {
        if let Some(path) = self.copy_of(key) {
            if let Ok(meta) = fs::metadata(&path) {
                return Ok(meta.len());
            }
        }
        self.inner.len(key)
    }

    fn put(&self, from: &Path, key: &str, durability: Durability) -> io::Result<()> {
        self.drop_copy(key)?;
        let bytes = fs::metadata(from)?.len();
        let keep = self.mode == Mode::Use && plain(key) && bytes <= self.limit / 4;
        let link = self
            .tmp()
            .join(format!("{}", self.pending.fetch_add(1, Ordering::Relaxed)));
        // A second name for the staging file, which the put consumes; on
        // another file system (or none for links) the put goes uncopied.
        let linked = keep && fs::hard_link(from, &link).is_ok();
        if let Err(e) = self.inner.put(from, key, durability) {
            if linked {
                let _ = fs::remove_file(&link);
            }
            return Err(e);
        }
        if !linked {
            return Ok(());
        }
        let target = self.path(key);
        let mut index = self.lock();
        let placed = !index.closed
            && target
                .parent()
                .is_some_and(|shard| fs::create_dir_all(shard).is_ok())
            && fs::rename(&link, &target).is_ok();
        if placed {
            index.insert(key, bytes);
            self.evict(&mut index);
        } else {
            let _ = fs::remove_file(&link);
        }
        Ok(())
    }

    fn put_many(&self, items: &[(PathBuf, String)], durability: Durability) -> io::Result<()> {
        super::in_parallel(items, PARALLEL_PUTS, &|from, key| {
            self.put(from, key, durability)
        })
    }

    fn put_all(&self, items: &mut dyn Iterator<Item = (PathBuf, String)>) -> io::Result<()> {
        let items: Vec<(PathBuf, String)> = items.collect();
        self.put_many(&items, Durability::Now)
    }

    fn sync(&self) -> io::Result<()> {
        self.inner.sync()
    }

    fn remove(&self, key: &str) -> io::Result<bool> {
        self.drop_copy(key)?;
        self.inner.remove(key)
    }

    fn list(&self, visit: &mut dyn FnMut(&str)) -> io::Result<()> {
        self.inner.list(visit)
    }

    fn is_remote(&self) -> bool {
        self.inner.is_remote()
    }

    fn describe(&self) -> String {
        match self.mode {
            Mode::Use => format!(
                "{} (recent objects also kept in {}, up to {} MiB)",
                self.inner.describe(),
                self.dir.display(),
                self.limit >> 20
            ),
            Mode::Bypass => self.inner.describe(),
        }
    }

    /// Syncs the copies, then marks them clean; nothing is linked in after.
    fn close(&self) -> io::Result<()> {
        self.inner.close()?;
        if self.mode != Mode::Use {
            return Ok(());
        }
        let mut index = self.lock();
        if index.closed {
            return Ok(());
        }
        index.closed = true;
        local::sync_all_of(
            &self.dir,
            walk(&self.objects())?.iter().map(PathBuf::as_path),
        )?;
        durable::write_atomic(&self.dir.join(CLEAN), |_| Ok(()))
    }
}

impl Drop for CachedBackend {
    fn drop(&mut self) {
        if let Err(e) = self.close() {
            log::warn!("the local copies of the store's objects are not marked clean ({e}); the next start empties them");
        }
    }
}

/// The shard directories and files under `objects` (what a sync covers
/// where there is no `syncfs`).
fn walk(objects: &Path) -> io::Result<Vec<PathBuf>> {
    let mut all = vec![objects.to_path_buf()];
    if cfg!(target_os = "linux") {
        return Ok(all);
    }
    for shard in fs::read_dir(objects)? {
        let shard = shard?.path();
        if shard.is_dir() {
            for entry in fs::read_dir(&shard)? {
                all.push(entry?.path());
            }
            all.push(shard);
        }
    }
    Ok(all)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_that_stay_inside() {
        assert!(plain("ab/abcdef"));
        assert!(plain("ab/abcdef.bz2.idx"));
        for bad in ["", "../x", "ab/../../x", "/etc/passwd", "ab\\..\\x", "./ab"] {
            assert!(!plain(bad), "{bad}");
        }
    }

    #[test]
    fn least_recently_used_goes_first() {
        let mut i = Index::default();
        i.insert("a/1", 10);
        i.insert("a/2", 10);
        i.insert("a/3", 10);
        assert!(i.touch("a/1"));
        assert_eq!(i.oldest().as_deref(), Some("a/2"));
        assert!(i.forget("a/2"));
        assert_eq!(i.bytes, 20);
        assert_eq!(i.oldest().as_deref(), Some("a/3"));
        i.insert("a/1", 5);
        assert_eq!(i.bytes, 15);
        assert!(!i.touch("a/2"));
    }
}
