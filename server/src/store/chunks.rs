//! Chunks: which a user's space lacks, their arrival, and a version
//! committed as a manifest of them; and reading a content through its
//! manifest.
//!
//! A chunk is a blob like any other (`blobs/ab/<hash>`, packed by the
//! hotspot into framed `.bz2`), named by its BLAKE3 and stored once
//! whoever sends it. A file of one chunk is just that blob. A larger file's
//! content is a manifest, `blobs/ab/<hash>.manifest`, whose catalog entry is
//! marked `chunked`.
//!
//! Order of durability: chunks are renamed into place as they arrive,
//! unsynced; a commit syncs the file system, re-reads the named chunks
//! hashing the whole content (unless the user's space already holds it),
//! publishes the manifest durably, and only then journals the version
//! with an fsync. A crash anywhere leaves either no version, or a version
//! whose manifest and chunks are durable and verified.

use super::blobs::Shelf;
use super::manifest::Manifest;
use super::*;
use nimbus_common::hash::Hasher;
use nimbus_common::wire::{CHUNK_MAX, MAX_MANIFEST_CHUNKS};
use std::collections::VecDeque;
use std::sync::atomic::Ordering;
use std::sync::mpsc;

/// Longest chunk accepted (twice the client's maximum, for other chunkers).
pub const MAX_CHUNK_BYTES: u64 = 2 * CHUNK_MAX as u64;

/// Most chunks a 409 names (the client sends them and commits again).
const MAX_MISSING_NAMED: usize = 4096;

/// Why a manifest was not committed.
#[derive(Debug, thiserror::Error)]
pub enum CommitError {
    #[error("{} chunk(s) named are not in your space; send them first", .0.len())]
    ChunksMissing(Vec<ContentHash>),
    #[error("{0}")]
    Bad(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<io::Error> for CommitError {
    fn from(e: io::Error) -> Self {
        CommitError::Store(e.into())
    }
}

/// Counters of what chunk uploads brought, for health and metrics.
#[derive(Debug, Default)]
pub struct ChunkCounters {
    /// Bytes of verified chunks received, whether or not they were new.
    pub bytes: std::sync::atomic::AtomicU64,
    pub chunks: std::sync::atomic::AtomicU64,
    /// Chunks were renamed into place since the last sync. Set after their
    /// renames; a commit holds it while it syncs, so a commit that finds it
    /// clear knows every chunk renamed before is durable.
    pub(super) unsynced: std::sync::Mutex<bool>,
}

impl ChunkCounters {
    fn unsynced_flag(&self) -> std::sync::MutexGuard<'_, bool> {
        self.unsynced.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl DataManager {
    /// The hashes of `asked` that `user`'s space does not hold, in order.
    pub fn missing_chunks(&self, user: &str, asked: &[ContentHash]) -> Vec<ContentHash> {
        let cat = self.read();
        asked
            .iter()
            .filter(|h| !(cat.blob(h).is_some_and(|b| !b.chunked) && cat.held_by(h, user)))
            .copied()
            .collect()
    }

    /// Stages one arriving chunk: its bytes must hash to `expected`.
    pub fn stage_chunk(
        &self,
        body: &mut dyn Read,
        expected: &ContentHash,
        len: u64,
    ) -> Result<Staged, StoreError> {
        self.blobs
            .stage_unsynced(body, expected, Some(len), MAX_CHUNK_BYTES)
    }

    /// Puts verified chunks in `user`'s space: the new ones renamed into
    /// place (not yet synced: see the module's order of durability), all
    /// journalled as held by `user`.
    pub fn store_chunks(&self, user: &str, staged: Vec<Staged>) -> Result<(), StoreError> {
        if staged.is_empty() {
            return Ok(());
        }
        let bytes: u64 = staged.iter().map(|s| s.size).sum();
        self.chunks.bytes.fetch_add(bytes, Ordering::Relaxed);
        self.chunks
            .chunks
            .fetch_add(staged.len() as u64, Ordering::Relaxed);
        let _gc = self.gc.read().unwrap_or_else(|e| e.into_inner());
        let mut fresh: Vec<Staged> = Vec::new();
        let mut chunks = Vec::with_capacity(staged.len());
        {
            let cat = self.read();
            for s in staged {
                chunks.push((s.hash, s.size));
                let held = cat
                    .blob(&s.hash)
                    .is_some_and(|b| !b.chunked && b.form != BlobForm::Missing);
                if held || fresh.iter().any(|f| f.hash == s.hash) {
                    self.blobs.discard(s);
                } else {
                    fresh.push(s);
                }
            }
        }
        if !fresh.is_empty() {
            self.blobs.publish_unsynced(fresh)?;
            *self.chunks.unsynced_flag() = true;
        }
        let mut journal = self.lock_journal();
        let rec = Record::Chunks {
            user: user.to_string(),
            chunks,
            at: unix_now(),
        };
        self.commit(&mut journal, rec, false)?;
        Ok(())
    }

    /// Commits a version of (key, path) made of `chunks` (hash, length),
    /// whose whole content is `size` bytes hashing to `hash`. Every chunk
    /// must be in the user's space; the content is verified unless the
    /// space already holds it.
    pub fn commit_manifest(
        &self,
        key: &str,
        path: &str,
        mtime: i64,
        hash: ContentHash,
        size: u64,
        chunks: Vec<(ContentHash, u64)>,
    ) -> Result<Recorded, CommitError> {
        if chunks.is_empty() || chunks.len() > MAX_MANIFEST_CHUNKS {
            return Err(CommitError::Bad(format!(
                "a manifest names 1 to {MAX_MANIFEST_CHUNKS} chunks"
            )));
        }
        if let Some((h, len)) = chunks
            .iter()
            .find(|(_, len)| *len == 0 || *len > MAX_CHUNK_BYTES)
        {
            return Err(CommitError::Bad(format!(
                "chunk {h} is {len} bytes; chunks are 1 to {MAX_CHUNK_BYTES}"
            )));
        }
        if chunks.iter().map(|(_, l)| l).sum::<u64>() != size {
            return Err(CommitError::Bad(
                "the chunks' lengths do not add up to the size".into(),
            ));
        }
        let manifest = Manifest {
            size,
            chunks: chunks.iter().map(|(h, l)| (*h, *l as u32)).collect(),
        };
        let user = catalog::owner_of(key);
        // From "these chunks are here" to the journal record: prune waits.
        let _gc = self.gc.read().unwrap_or_else(|e| e.into_inner());
        let known = {
            let cat = self.read();
            let mut missing: Vec<ContentHash> = Vec::new();
            let mut named = std::collections::HashSet::new();
            for (h, len) in &chunks {
                let ok = cat.blob(h).is_some_and(|b| !b.chunked && b.size == *len)
                    && cat.held_by(h, user);
                if !ok && named.insert(*h) {
                    missing.push(*h);
                    // Named a few thousand at a time: the answer stays
                    // small, and the client commits again after these.
                    if missing.len() == MAX_MISSING_NAMED {
                        break;
                    }
                }
            }
            if !missing.is_empty() {
                return Err(CommitError::ChunksMissing(missing));
            }
            cat.blob(&hash)
                .map(|b| (b.chunked, cat.held_by(&hash, user), b.size))
        };
        if known.is_some_and(|(_, _, s)| s != size) {
            return Err(CommitError::Bad(format!(
                "content {hash} is stored with another size"
            )));
        }
        {
            let mut unsynced = self.chunks.unsynced_flag();
            if *unsynced {
                self.blobs.sync()?;
                *unsynced = false;
            }
        }
        let chunked = match known {
            // The space holds this content already (as whole bytes or
            // as chunks): the version just references it.
            Some((chunked, true, _)) => chunked,
            Some((true, false, _))
                if self.blobs.read_manifest(&hash).ok().as_ref() == Some(&manifest) =>
            {
                true
            }
            other => {
                self.verify_content(&hash, &manifest)?;
                match other {
                    Some((chunked, ..)) => chunked,
                    None => {
                        self.blobs.write_manifest(&hash, &manifest)?;
                        true
                    }
                }
            }
        };
        let mut journal = self.lock_journal();
        Ok(self.record_locked(&mut journal, key, path, hash, size, mtime, chunked)?)
    }

    /// Reads `manifest`'s chunks in order and checks that they make the
    /// content `hash`. If not, any chunk whose bytes are not its name (a
    /// short write before a power cut) is removed and named missing, so
    /// the client sends it again.
    fn verify_content(&self, hash: &ContentHash, manifest: &Manifest) -> Result<(), CommitError> {
        let mut reader = ChunkReader::new(
            self.blobs.shelf(),
            manifest.chunks.clone(),
            0,
            manifest.size,
        );
        let mut hasher = Hasher::new();
        let mut buf = vec![0u8; 256 * 1024];
        let whole = loop {
            match reader.read(&mut buf) {
                Ok(0) => break Some(hasher.finish()),
                Ok(n) => hasher.update(&buf[..n]),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => break None,
                Err(e) => return Err(e.into()),
            }
        };
        if let Some((actual, n)) = whole {
            if actual == *hash && n == manifest.size {
                return Ok(());
            }
        }
        let mut bad = Vec::new();
        for (h, len) in &manifest.chunks {
            if bad.contains(h) {
                continue;
            }
            let sound = self
                .blobs
                .verify(h, BlobForm::Hot, *len as u64)
                .or_else(|_| self.blobs.verify(h, BlobForm::Packed, *len as u64))
                .is_ok_and(|(actual, n)| actual == *h && n == *len as u64);
            if !sound {
                bad.push(*h);
            }
        }
        if bad.is_empty() {
            let actual =
                whole.map_or_else(|| "a shorter content".to_string(), |(a, _)| a.to_string());
            return Err(CommitError::Bad(format!(
                "the chunks make {actual}, not {hash}"
            )));
        }
        let mut cat = self.write();
        for h in &bad {
            warn!("chunk {h} on disk is not what it was sent as (cut short by a crash?); it is asked for again");
            let _ = self.blobs.remove(h, BlobForm::Hot);
            cat.update_blob(h, |b| b.form = BlobForm::Missing);
        }
        Err(CommitError::ChunksMissing(bad))
    }

    /// Keeps a whole upload (a `PUT`, a finished browser upload) as chunks,
    /// cut as the client cuts them, so that versions sent either way share
    /// them; the chunks are held by the uploader. Its bytes were verified
    /// against its hash as they arrived, and the chunks are cut from those
    /// bytes, so they make that content by construction. The caller holds
    /// `gc` shared.
    pub(super) fn commit_as_chunks(
        &self,
        key: &str,
        path: &str,
        mtime: i64,
        staged: Staged,
    ) -> Result<Recorded, StoreError> {
        let result = self.cut_staged(&staged);
        let (hash, size) = (staged.hash, staged.size);
        self.blobs.discard(staged);
        let chunks = result?;
        let mut journal = self.lock_journal();
        let rec = Record::Chunks {
            user: catalog::owner_of(key).to_string(),
            chunks: chunks.clone(),
            at: unix_now(),
        };
        self.commit(&mut journal, rec, false)?;
        // One chunk is the whole content, a blob of its own.
        let chunked = chunks.len() > 1;
        self.record_locked(&mut journal, key, path, hash, size, mtime, chunked)
    }

    /// Cuts a staged file into chunks, stores the new ones and the manifest
    /// durably; the chunk list.
    fn cut_staged(&self, staged: &Staged) -> Result<Vec<(ContentHash, u64)>, StoreError> {
        let file = io::BufReader::with_capacity(1 << 20, self.blobs.open_staged(staged)?);
        let mut chunks = Vec::new();
        let mut fresh: Vec<Staged> = Vec::new();
        let mut new_hashes = std::collections::HashSet::new();
        for data in nimbus_common::chunking::chunks(file) {
            let data = data?;
            let h = ContentHash::of_bytes(&data);
            chunks.push((h, data.len() as u64));
            let held = self
                .read()
                .blob(&h)
                .is_some_and(|b| !b.chunked && b.form != BlobForm::Missing);
            if !held && new_hashes.insert(h) {
                let s = self.blobs.stage_unsynced(
                    &mut &data[..],
                    &h,
                    Some(data.len() as u64),
                    MAX_CHUNK_BYTES,
                )?;
                fresh.push(s);
            }
            if fresh.len() >= 64 {
                self.blobs.publish_unsynced(std::mem::take(&mut fresh))?;
            }
        }
        self.blobs.publish_unsynced(fresh)?;
        self.blobs.sync()?;
        let manifest = Manifest {
            size: staged.size,
            chunks: chunks.iter().map(|(h, l)| (*h, *l as u32)).collect(),
        };
        if chunks.len() > 1 {
            self.blobs.write_manifest(&staged.hash, &manifest)?;
        }
        Ok(chunks)
    }

    /// Opens `len` bytes from `start` of a content kept as chunks.
    pub(super) fn open_chunked(
        &self,
        hash: &ContentHash,
        start: u64,
        len: u64,
    ) -> Result<Box<dyn Read + Send>, StoreError> {
        let manifest = match self.blobs.read_manifest(hash) {
            Ok(m) => m,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Err(StoreError::BlobMissing),
            Err(e) => return Err(e.into()),
        };
        let Some((first, at)) = manifest.locate(start) else {
            return Ok(Box::new(io::empty()));
        };
        let mut reader = ChunkReader::new(self.blobs.shelf(), manifest.chunks, first, len);
        reader.skip = start - at;
        // The first chunk now, so a missing one is an error before any byte.
        match reader.open_next() {
            Ok(_) => Ok(Box::new(reader)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Err(StoreError::BlobMissing),
            Err(e) => Err(e.into()),
        }
    }
}

/// Chunks a reader of a remote store fetches ahead of the one being read
/// (each a whole chunk in memory, at most `MAX_CHUNK_BYTES`): a store
/// answers every GET after a round trip, which the fetches ahead overlap.
const READ_AHEAD: usize = 4;

/// See [`ChunkReader::stream_before_ahead`].
const STREAM_BEFORE_AHEAD: u64 = 256 * 1024;

/// A chunk being fetched ahead: its bytes, from a thread of its own.
type Fetching = mpsc::Receiver<io::Result<Vec<u8>>>;

/// Reads chunks one after another, each opened when reached in whichever
/// form it has then (hot, or packed from the frame holding the offset); on
/// a remote store the next few are fetched ahead.
struct ChunkReader {
    shelf: Shelf,
    chunks: Vec<(ContentHash, u32)>,
    next: usize,
    /// Bytes to leave out at the start of the next chunk opened.
    skip: u64,
    /// Bytes not yet planned: the next chunks' share of the range.
    unplanned: u64,
    /// Bytes still to give.
    left: u64,
    current: Option<(Box<dyn Read + Send>, u64)>,
    ahead: VecDeque<(Fetching, u64)>,
    read_ahead: usize,
    /// Bytes the streamed chunk gives before the fetches ahead start
    /// (or its end): started with it, they share the store's bandwidth and
    /// delay the first bytes of a download (a Range request's) by tens of
    /// milliseconds.
    stream_before_ahead: Option<u64>,
}

impl ChunkReader {
    fn new(shelf: Shelf, chunks: Vec<(ContentHash, u32)>, first: usize, len: u64) -> ChunkReader {
        let read_ahead = if shelf.is_remote() { READ_AHEAD } else { 0 };
        ChunkReader {
            shelf,
            chunks,
            next: first,
            skip: 0,
            unplanned: len,
            left: len,
            current: None,
            ahead: VecDeque::new(),
            read_ahead,
            stream_before_ahead: None,
        }
    }

    /// The next chunk of the range and the part of it to give, if any.
    fn plan_next(&mut self) -> Option<(ContentHash, u64, u64)> {
        if self.unplanned == 0 {
            return None;
        }
        let (hash, len) = self.chunks.get(self.next).copied()?;
        self.next += 1;
        let skip = std::mem::take(&mut self.skip).min(len as u64);
        let want = (len as u64 - skip).min(self.unplanned);
        self.unplanned -= want;
        Some((hash, skip, want))
    }

    fn open_next(&mut self) -> io::Result<bool> {
        // The first chunk (and each one not fetched ahead) is streamed, so
        // the first byte comes after one round trip, not a whole chunk.
        let Some((rx, want)) = self.ahead.pop_front() else {
            let Some((hash, skip, want)) = self.plan_next() else {
                return Ok(false);
            };
            self.current = Some((open_chunk(&self.shelf, &hash, skip, want)?, want));
            if self.read_ahead > 0 {
                self.stream_before_ahead = Some(STREAM_BEFORE_AHEAD);
            }
            return Ok(true);
        };
        self.fetch_ahead();
        let bytes = rx
            .recv()
            .map_err(|_| io::Error::other("a chunk's fetch ended without an answer"))??;
        self.current = Some((Box::new(io::Cursor::new(bytes)), want));
        Ok(true)
    }

    /// Starts fetching the chunks after the current one, up to
    /// `read_ahead` of them, each whole, on a thread of its own.
    fn fetch_ahead(&mut self) {
        while self.ahead.len() < self.read_ahead {
            let Some((hash, skip, want)) = self.plan_next() else {
                return;
            };
            let (tx, rx) = mpsc::sync_channel(1);
            let shelf = self.shelf.clone();
            std::thread::spawn(move || {
                let fetched = open_chunk(&shelf, &hash, skip, want).and_then(|r| {
                    let mut bytes = Vec::with_capacity(want as usize);
                    r.take(want).read_to_end(&mut bytes)?;
                    Ok(bytes)
                });
                // The reader may be gone (the download was cut off).
                let _ = tx.send(fetched);
            });
            self.ahead.push_back((rx, want));
        }
    }
}

/// Opens `want` bytes from `skip` of the chunk `hash`, in the form it has.
fn open_chunk(
    shelf: &Shelf,
    hash: &ContentHash,
    skip: u64,
    want: u64,
) -> io::Result<Box<dyn Read + Send>> {
    // Packing publishes the new form before removing the old, and so does
    // unpacking: one of a few tries finds it.
    for form in [
        BlobForm::Hot,
        BlobForm::Packed,
        BlobForm::Hot,
        BlobForm::Packed,
    ] {
        match shelf.read(hash, form, skip, want) {
            Ok(r) => return Ok(r),
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e),
        }
    }
    Err(io::Error::new(
        io::ErrorKind::NotFound,
        format!("chunk {hash} is missing from disk"),
    ))
}

impl Read for ChunkReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            if self.left == 0 || buf.is_empty() {
                return Ok(0);
            }
            if self.current.is_none() && !self.open_next()? {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "the manifest ends before its size",
                ));
            }
            let (r, want) = self.current.as_mut().expect("opened above");
            let cap = buf.len().min(*want as usize);
            let n = r.read(&mut buf[..cap])?;
            if n == 0 {
                if *want > 0 {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "a chunk is shorter than its manifest says",
                    ));
                }
                self.current = None;
                continue;
            }
            *want -= n as u64;
            self.left -= n as u64;
            if *want == 0 {
                self.current = None;
            }
            if let Some(until) = self.stream_before_ahead {
                let until = until.saturating_sub(n as u64);
                self.stream_before_ahead = Some(until);
                if until == 0 || self.current.is_none() {
                    self.stream_before_ahead = None;
                    self.fetch_ahead();
                }
            }
            return Ok(n);
        }
    }
}
