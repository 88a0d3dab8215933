//! Blob storage: content-addressed files on local disk.
//!
//! Layout under the blob root (`DATA/blobs`, or `blobs/` under the prefix
//! of a bucket: see `backend`), `<name>` being the hash in hex (or,
//! when the data directory is encrypted, a keyed BLAKE3 of it: see
//! `vault`), `ab` its first two digits:
//! - `ab/<name>`: a hot blob, the original bytes;
//! - `ab/<name>.bz2`: a packed blob, bzip2 of the original bytes in
//!   independent frames, and `ab/<name>.bz2.idx` where each frame
//!   starts (see `frames`);
//! - `ab/<name>.manifest`: the chunks of a content kept as chunks;
//! - `DATA/tmp/` (always local): staging files for uploads, packing and
//!   unpacking.
//!
//! Encrypted, every one of these files (staging files too) is a sealed
//! object whose plaintext is what the plain layout holds: a packed blob is
//! compressed, then sealed, and frame offsets are plaintext offsets, so a
//! Range read decrypts only the segments of the frame it needs.
//!
//! Promise: a blob file appears only by a backend's put of a staging file
//! that was fsync'd after its content was verified against its hash (on
//! disk a rename made durable by syncing the directory; in a bucket a PUT
//! the store acknowledged). `tmp/` holds nothing that matters after a
//! restart.

use super::backend::{local::LocalBackend, Backend, Durability, Object};
use super::catalog::BlobForm;
use super::frames::{Counting, FrameIndex, FRAME};
use super::manifest::Manifest;
use super::StoreError;
use crate::vault::{self, Obj, Vault};
use bzip2::read::MultiBzDecoder;
use bzip2::write::BzEncoder;
use bzip2::Compression;
use nimbus_common::durable;
use nimbus_common::hash::{ContentHash, Hasher};
use std::collections::HashMap;
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufReader, BufWriter, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

const BUF: usize = 256 * 1024;
/// How much of a blob is compressed to decide whether packing it pays.
const SAMPLE_BYTES: usize = 1 << 20;
/// Packing must save at least this fraction of the sample.
const MIN_SAVING: f64 = 0.10;

/// A verified file in `tmp/`, ready to be published as a blob.
#[derive(Debug)]
pub struct Staged {
    path: PathBuf,
    /// A packed blob's frame index, published before it.
    index: Option<PathBuf>,
    pub hash: ContentHash,
    /// Original (uncompressed) size.
    pub size: u64,
    /// Bytes on disk.
    pub stored_size: u64,
    pub form: BlobForm,
}

impl Staged {
    /// The staging file, to read it back.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// What packing a blob produced.
pub enum PackOutcome {
    Packed(Staged),
    /// A sample did not shrink enough; the blob should stay hot.
    Incompressible,
    /// Packing was abandoned (shutdown, or the hot copy is gone).
    Abandoned,
}

/// What start-up found on disk, per hash.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct OnDisk {
    pub hot: bool,
    pub packed: bool,
    pub manifest: bool,
}

/// Where and how blobs are kept: files in a [`Backend`] (`DATA/blobs`
/// unless a bucket is configured), staged in `DATA/tmp`.
pub struct LocalBlobs {
    shelf: Shelf,
    tmp: PathBuf,
    counter: AtomicU64,
}

/// Where each form of a blob lies, and reading it: all a reader needs,
/// cheap to clone into a download that opens chunk after chunk.
#[derive(Debug, Clone)]
pub struct Shelf {
    backend: Arc<dyn Backend>,
    vault: Vault,
}

impl std::ops::Deref for LocalBlobs {
    type Target = Shelf;
    fn deref(&self) -> &Shelf {
        &self.shelf
    }
}

impl LocalBlobs {
    /// Blobs in `DATA/blobs`.
    pub fn open(data_dir: &Path, vault: Vault) -> io::Result<LocalBlobs> {
        let backend = Arc::new(LocalBackend::open(data_dir.join("blobs"))?);
        Self::open_on(data_dir, vault, backend)
    }

    /// Blobs in `backend`, staged in `DATA/tmp`.
    pub fn open_on(
        data_dir: &Path,
        vault: Vault,
        backend: Arc<dyn Backend>,
    ) -> io::Result<LocalBlobs> {
        let tmp = data_dir.join("tmp");
        fs::create_dir_all(&tmp)?;
        Ok(LocalBlobs {
            shelf: Shelf { backend, vault },
            tmp,
            counter: AtomicU64::new(0),
        })
    }

    /// The reading side, for a reader that outlives this borrow.
    pub fn shelf(&self) -> Shelf {
        self.shelf.clone()
    }

    fn new_temp(&self, what: &str) -> io::Result<(PathBuf, File)> {
        let n = self.counter.fetch_add(1, Ordering::Relaxed);
        let path = self.tmp.join(format!(
            "{what}-{}-{n}{}",
            std::process::id(),
            durable::TEMP_SUFFIX
        ));
        let file = OpenOptions::new()
            .write(true)
            .read(true)
            .create_new(true)
            .open(&path)?;
        Ok((path, file))
    }
}

impl Shelf {
    /// Whether reads go to another machine (see [`Backend::is_remote`]).
    pub fn is_remote(&self) -> bool {
        self.backend.is_remote()
    }

    /// The name of a blob's files on disk (see the module's layout), as
    /// [`LocalBlobs::recover`] reports it.
    pub fn disk_key(&self, hash: &ContentHash) -> ContentHash {
        self.vault.blob_key(hash)
    }

    fn key_named(name: &ContentHash, form: BlobForm) -> String {
        let hex = name.to_hex();
        match form {
            BlobForm::Packed => format!("{}/{hex}.bz2", &hex[..2]),
            BlobForm::Hot | BlobForm::Missing => format!("{}/{hex}", &hex[..2]),
        }
    }

    fn index_named(name: &ContentHash) -> String {
        Self::key_named(name, BlobForm::Packed) + ".idx"
    }

    fn manifest_named(name: &ContentHash) -> String {
        let hex = name.to_hex();
        format!("{}/{hex}.manifest", &hex[..2])
    }

    pub(super) fn key_of(&self, hash: &ContentHash, form: BlobForm) -> String {
        Self::key_named(&self.disk_key(hash), form)
    }

    /// The frame index beside a packed blob.
    pub(super) fn index_key(&self, hash: &ContentHash) -> String {
        Self::index_named(&self.disk_key(hash))
    }

    /// Where a content kept as chunks lists them.
    pub(super) fn manifest_key(&self, hash: &ContentHash) -> String {
        Self::manifest_named(&self.disk_key(hash))
    }

    /// The file of a key, when blobs are on local disk.
    pub(super) fn local_file(&self, key: &str) -> Option<PathBuf> {
        self.backend.local_root().map(|root| root.join(key))
    }

    /// Reads a small sealed object whole.
    fn read_small(&self, key: &str, obj: Obj<'_>) -> io::Result<Vec<u8>> {
        self.vault.open_bytes(self.backend.read_all(key)?, obj)
    }

    /// The identity a form of a blob is sealed under.
    fn obj(hash: &ContentHash, form: BlobForm) -> Obj<'_> {
        match form {
            BlobForm::Packed => Obj::Packed(hash),
            BlobForm::Hot | BlobForm::Missing => Obj::Hot(hash),
        }
    }

    /// Opens one form of a blob: its plaintext, seekable (a packed blob's
    /// is its bzip2 frames).
    pub(super) fn open_form(
        &self,
        hash: &ContentHash,
        form: BlobForm,
    ) -> io::Result<vault::Reader<Box<dyn Object>>> {
        let object = self.backend.open(&self.key_of(hash, form))?;
        self.vault.reader(object, Self::obj(hash, form))
    }

    /// A packed blob's frame index, if it has a sound one for a `.bz2` of
    /// `packed_len` bytes (packs made before frames have none).
    fn frame_index(&self, hash: &ContentHash, packed_len: u64) -> Option<FrameIndex> {
        let bytes = self
            .read_small(&self.index_key(hash), Obj::Index(hash))
            .ok()?;
        let ix = FrameIndex::decode(&bytes, packed_len);
        if ix.is_none() {
            log::warn!(
                "the frame index of packed blob {hash} is damaged; reading it from the start"
            );
        }
        ix
    }

    /// Reads and checks the manifest of `hash`; InvalidData if damaged.
    pub fn read_manifest(&self, hash: &ContentHash) -> io::Result<Manifest> {
        let bytes = self.read_small(&self.manifest_key(hash), Obj::Manifest(hash))?;
        Manifest::decode(&bytes, hash).map_err(|why| {
            io::Error::new(io::ErrorKind::InvalidData, format!("the manifest {why}"))
        })
    }

    /// Opens a blob's original bytes from `start`, for `len` bytes.
    pub fn read(
        &self,
        hash: &ContentHash,
        form: BlobForm,
        start: u64,
        len: u64,
    ) -> io::Result<Box<dyn Read + Send>> {
        let mut file = self.open_form(hash, form)?;
        match form {
            BlobForm::Hot | BlobForm::Missing => {
                file.seek(SeekFrom::Start(start))?;
                Ok(Box::new(BufReader::with_capacity(BUF, file).take(len)))
            }
            BlobForm::Packed => {
                // From the frame holding `start` (or, without a sound index,
                // from the beginning), dropping the bytes before `start`.
                let packed_len = file.len();
                let (from, skip) = match self.frame_index(hash, packed_len) {
                    Some(ix) => match ix.frame_of(start) {
                        Some((_, at, first)) => (at, start - first),
                        None => (0, start),
                    },
                    None => (0, start),
                };
                file.seek(SeekFrom::Start(from))?;
                let mut dec = MultiBzDecoder::new(BufReader::with_capacity(BUF, file));
                let skipped = io::copy(&mut (&mut dec).take(skip), &mut io::sink())?;
                if skipped != skip {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "packed blob is shorter than the catalog says",
                    ));
                }
                Ok(Box::new(BufReader::with_capacity(BUF, dec.take(len))))
            }
        }
    }
}

/// Asks the kernel to start writing `file` out now, without waiting: the
/// sync that later makes it durable then finds little left to write, so
/// disk writes overlap the upload instead of following it.
fn start_writeback(file: &File) {
    #[cfg(target_os = "linux")]
    {
        use std::os::fd::AsRawFd;
        // SAFETY: `file` is open for the duration of the call. A failure
        // only means the later sync writes it all.
        unsafe {
            libc::sync_file_range(file.as_raw_fd(), 0, 0, libc::SYNC_FILE_RANGE_WRITE);
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = file;
}

/// Removes a temp file when dropped unless defused; keeps every early return
/// of a staging function from leaving garbage.
struct TempGuard(Option<PathBuf>);

impl TempGuard {
    fn defuse(mut self) -> PathBuf {
        self.0.take().expect("guard defused once")
    }
}

impl Drop for TempGuard {
    fn drop(&mut self) {
        if let Some(p) = self.0.take() {
            let _ = fs::remove_file(p);
        }
    }
}

impl LocalBlobs {
    /// Streams `body` into a staging file, hashing it on the way, and checks
    /// it against `expected` and `max_bytes`. Nothing is visible yet.
    pub fn stage(
        &self,
        body: &mut dyn Read,
        expected: &ContentHash,
        declared_len: Option<u64>,
        max_bytes: u64,
    ) -> Result<Staged, StoreError> {
        self.stage_inner(body, expected, declared_len, max_bytes, true)
    }

    /// Like [`LocalBlobs::stage`], without its fsync: for a batch that
    /// [`LocalBlobs::publish_all`] makes durable together.
    pub fn stage_unsynced(
        &self,
        body: &mut dyn Read,
        expected: &ContentHash,
        declared_len: Option<u64>,
        max_bytes: u64,
    ) -> Result<Staged, StoreError> {
        self.stage_inner(body, expected, declared_len, max_bytes, false)
    }

    fn stage_inner(
        &self,
        body: &mut dyn Read,
        expected: &ContentHash,
        declared_len: Option<u64>,
        max_bytes: u64,
        sync: bool,
    ) -> Result<Staged, StoreError> {
        let (path, file) = self.new_temp("upload")?;
        let guard = TempGuard(Some(path));
        let mut out = self
            .vault
            .writer(BufWriter::with_capacity(BUF, &file), Obj::Hot(expected));
        let mut hasher = Hasher::new();
        let mut buf = vec![0u8; BUF];
        loop {
            let n = match body.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) if e.kind() == io::ErrorKind::TimedOut => {
                    return Err(StoreError::BodyTimeout)
                }
                Err(_) => return Err(StoreError::BodyIncomplete),
            };
            if hasher.len() + n as u64 > max_bytes {
                return Err(StoreError::TooLarge { limit: max_bytes });
            }
            hasher.update(&buf[..n]);
            out.write_all(&buf[..n])?;
        }
        out.finish()?;
        let (actual, size) = hasher.finish();
        if let Some(declared) = declared_len {
            if declared != size {
                return Err(StoreError::BodyIncomplete);
            }
        }
        if actual != *expected {
            return Err(StoreError::HashMismatch {
                expected: *expected,
                actual,
            });
        }
        if sync {
            file.sync_all()?;
        } else {
            start_writeback(&file);
        }
        Ok(Staged {
            index: None,
            path: guard.defuse(),
            hash: actual,
            size,
            stored_size: size,
            form: BlobForm::Hot,
        })
    }

    /// Takes a complete, fsync'd file on the same file system (a finished
    /// browser upload) as staged content, hashing it; nothing is copied.
    /// Only for a plain data directory: encrypted, an upload's part is
    /// sealed under its own identity and is staged anew instead.
    pub fn adopt(&self, file: &Path) -> Result<Staged, StoreError> {
        debug_assert!(!self.vault.is_sealed());
        let (hash, size) = ContentHash::of_reader(File::open(file)?)?;
        Ok(Staged {
            index: None,
            path: file.to_path_buf(),
            hash,
            size,
            stored_size: size,
            form: BlobForm::Hot,
        })
    }

    /// The same, for a file whose hash and size are known (computed while
    /// it was written, by this process).
    pub fn adopt_hashed(
        &self,
        file: &Path,
        hash: ContentHash,
        size: u64,
    ) -> Result<Staged, StoreError> {
        debug_assert!(!self.vault.is_sealed());
        if fs::metadata(file)?.len() != size {
            return Err(StoreError::BodyIncomplete);
        }
        Ok(Staged {
            index: None,
            path: file.to_path_buf(),
            hash,
            size,
            stored_size: size,
            form: BlobForm::Hot,
        })
    }

    /// Reads a staged file back (its plaintext).
    pub fn open_staged(&self, staged: &Staged) -> io::Result<vault::Reader<File>> {
        let file = File::open(&staged.path)?;
        self.vault
            .reader(file, Shelf::obj(&staged.hash, staged.form))
    }

    /// Makes a staged file the blob of its hash (durably).
    pub fn publish(&self, staged: Staged) -> io::Result<()> {
        let guard = TempGuard(Some(staged.path));
        // The index first: a reader never sees a framed .bz2 without it.
        if let Some(index) = staged.index {
            self.put_staged(
                TempGuard(Some(index)),
                &self.index_key(&staged.hash),
                Durability::Now,
            )?;
        }
        self.put_staged(
            guard,
            &self.key_of(&staged.hash, staged.form),
            Durability::Now,
        )
    }

    /// Puts the staging file of `guard` as `key`; on failure the guard
    /// removes it.
    fn put_staged(&self, guard: TempGuard, key: &str, durability: Durability) -> io::Result<()> {
        self.backend
            .put(guard.0.as_ref().expect("not defused"), key, durability)?;
        guard.defuse();
        Ok(())
    }

    /// Makes many staged hot blobs blobs at once, durably, with as few
    /// syncs as the backend allows (on disk: their bytes synced before any
    /// is renamed into place, the renames after, one `syncfs` each on
    /// Linux, instead of two fsyncs per blob). A failure leaves no staging
    /// file behind.
    pub fn publish_all(&self, staged: Vec<Staged>) -> io::Result<()> {
        let guards: Vec<(TempGuard, String)> = staged
            .into_iter()
            .map(|s| {
                let key = self.key_of(&s.hash, BlobForm::Hot);
                (TempGuard(Some(s.path)), key)
            })
            .collect();
        let mut items = guards
            .iter()
            .map(|(g, key)| (g.0.clone().expect("not defused"), key.clone()));
        self.backend.put_all(&mut items)?;
        for (g, _) in guards {
            g.defuse();
        }
        Ok(())
    }

    /// Publishes staged chunks without waiting for them to be durable:
    /// they are by the next [`LocalBlobs::sync`], which a manifest naming
    /// them waits for. Until then a power cut may leave a chunk short or
    /// empty, which the commit's hash check finds.
    pub fn publish_unsynced(&self, staged: Vec<Staged>) -> io::Result<()> {
        let guards: Vec<(TempGuard, String)> = staged
            .into_iter()
            .map(|s| {
                let key = self.key_of(&s.hash, BlobForm::Hot);
                (TempGuard(Some(s.path)), key)
            })
            .collect();
        let items: Vec<(PathBuf, String)> = guards
            .iter()
            .map(|(g, key)| (g.0.clone().expect("not defused"), key.clone()))
            .collect();
        // On failure the guards remove what was not put.
        self.backend.put_many(&items, Durability::Deferred)?;
        for (g, _) in guards {
            g.defuse();
        }
        Ok(())
    }

    /// Makes every chunk published unsynced durable (one `syncfs` on Linux).
    pub fn sync(&self) -> io::Result<()> {
        self.backend.sync()
    }

    /// The process is done with the content (see [`Backend::close`]).
    pub fn close(&self) -> io::Result<()> {
        self.backend.close()
    }

    /// Publishes the manifest of `hash` durably (written in `tmp/`, fsync'd,
    /// then put).
    pub fn write_manifest(&self, hash: &ContentHash, m: &Manifest) -> io::Result<()> {
        let (path, mut file) = self.new_temp("manifest")?;
        let guard = TempGuard(Some(path));
        file.write_all(&self.vault.seal_bytes(Obj::Manifest(hash), &m.encode(hash)))?;
        file.sync_all()?;
        drop(file);
        self.put_staged(guard, &self.manifest_key(hash), Durability::Now)
    }

    /// Removes the manifest of `hash` (durably), if there is one.
    pub fn remove_manifest(&self, hash: &ContentHash) -> io::Result<()> {
        self.remove_manifest_named(&self.disk_key(hash))
    }

    /// [`LocalBlobs::remove_manifest`] by the name on disk.
    pub fn remove_manifest_named(&self, name: &ContentHash) -> io::Result<()> {
        self.backend.remove(&Shelf::manifest_named(name)).map(drop)
    }

    /// Deletes a staged file that will not be published.
    pub fn discard(&self, staged: Staged) {
        drop(TempGuard(Some(staged.path)));
        drop(TempGuard(staged.index));
    }

    /// Bytes one form of a blob holds: its length on disk, less the
    /// sealing's overhead when encrypted (what the catalog records).
    pub fn stored_len(&self, hash: &ContentHash, form: BlobForm) -> io::Result<u64> {
        let stored = self.backend.len(&self.key_of(hash, form))?;
        self.vault.plain_len(stored)
    }

    /// Removes one form of a blob (durably).
    /// A packed blob's frame index goes after the `.bz2` (a crash between
    /// leaves an orphan index, which start-up removes).
    pub fn remove(&self, hash: &ContentHash, form: BlobForm) -> io::Result<()> {
        self.remove_named(&self.disk_key(hash), form)
    }

    /// [`LocalBlobs::remove`] by the name on disk.
    pub fn remove_named(&self, name: &ContentHash, form: BlobForm) -> io::Result<()> {
        self.backend.remove(&Shelf::key_named(name, form))?;
        if form == BlobForm::Packed {
            self.backend.remove(&Shelf::index_named(name))?;
        }
        Ok(())
    }

    /// Compresses a hot blob into a verified staging file.
    pub fn pack(&self, hash: &ContentHash, stop: &AtomicBool) -> Result<PackOutcome, StoreError> {
        let mut src = match self.open_form(hash, BlobForm::Hot) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(PackOutcome::Abandoned),
            Err(e) => return Err(e.into()),
        };
        // Try a sample first: bzip2 is slow, and already-compressed data
        // (photos, video, archives) grows slightly.
        let mut sample = Vec::with_capacity(SAMPLE_BYTES);
        (&mut src)
            .take(SAMPLE_BYTES as u64)
            .read_to_end(&mut sample)?;
        if !sample.is_empty() {
            let mut enc = BzEncoder::new(Vec::new(), Compression::default());
            enc.write_all(&sample)?;
            let packed = enc.finish()?;
            if packed.len() as f64 > sample.len() as f64 * (1.0 - MIN_SAVING) {
                return Ok(PackOutcome::Incompressible);
            }
        }
        drop(sample);
        src.seek(SeekFrom::Start(0))?;

        // Frame by frame, each its own bzip2 stream, noting where each starts.
        let (path, file) = self.new_temp("pack")?;
        let guard = TempGuard(Some(path));
        let mut out = Counting {
            inner: self
                .vault
                .writer(BufWriter::with_capacity(BUF, &file), Obj::Packed(hash)),
            written: 0,
        };
        let mut offsets = Vec::new();
        let mut buf = vec![0u8; BUF];
        let mut size = 0u64;
        loop {
            if stop.load(Ordering::Relaxed) {
                return Ok(PackOutcome::Abandoned);
            }
            let mut n = src.read(&mut buf[..BUF.min(FRAME as usize)])?;
            if n == 0 {
                break;
            }
            let start = out.written;
            let mut enc = BzEncoder::new(&mut out, Compression::default());
            let mut in_frame = 0u64;
            loop {
                enc.write_all(&buf[..n])?;
                in_frame += n as u64;
                if in_frame == FRAME {
                    break;
                }
                if stop.load(Ordering::Relaxed) {
                    return Ok(PackOutcome::Abandoned);
                }
                let want = (FRAME - in_frame).min(BUF as u64) as usize;
                n = src.read(&mut buf[..want])?;
                if n == 0 {
                    break;
                }
            }
            enc.finish()?;
            offsets.push(start);
            size += in_frame;
            if in_frame < FRAME {
                break;
            }
        }
        let packed_len = out.written;
        out.inner.finish()?;
        file.sync_all()?;
        // Verify before the packed copy can replace the original.
        let staged = self
            .vault
            .reader(File::open(guard.0.as_ref().unwrap())?, Obj::Packed(hash))?;
        let (actual, unpacked) =
            ContentHash::of_reader(MultiBzDecoder::new(BufReader::with_capacity(BUF, staged)))?;
        if actual != *hash || unpacked != size {
            return Err(StoreError::Io(io::Error::other(format!(
                "packing {hash} produced data that does not decompress to it"
            ))));
        }
        let index = FrameIndex {
            frame: FRAME,
            size,
            packed_len,
            offsets,
        };
        let (index_path, mut index_file) = self.new_temp("packidx")?;
        let index_guard = TempGuard(Some(index_path));
        index_file.write_all(&self.vault.seal_bytes(Obj::Index(hash), &index.encode()))?;
        index_file.sync_all()?;
        let stored_size = packed_len;
        Ok(PackOutcome::Packed(Staged {
            index: Some(index_guard.defuse()),
            path: guard.defuse(),
            hash: actual,
            size,
            stored_size,
            form: BlobForm::Packed,
        }))
    }

    /// Decompresses a packed blob into a verified staging file.
    pub fn unpack(&self, hash: &ContentHash) -> Result<Staged, StoreError> {
        let src = self.open_form(hash, BlobForm::Packed)?;
        let mut dec = MultiBzDecoder::new(BufReader::with_capacity(BUF, src));
        let (path, file) = self.new_temp("unpack")?;
        let guard = TempGuard(Some(path));
        let mut out = self
            .vault
            .writer(BufWriter::with_capacity(BUF, &file), Obj::Hot(hash));
        let mut hasher = Hasher::new();
        let mut buf = vec![0u8; BUF];
        loop {
            let n = dec.read(&mut buf)?;
            if n == 0 {
                break;
            }
            hasher.update(&buf[..n]);
            out.write_all(&buf[..n])?;
        }
        out.finish()?;
        let (actual, size) = hasher.finish();
        if actual != *hash {
            return Err(StoreError::Io(io::Error::other(format!(
                "packed blob {hash} does not decompress to its hash"
            ))));
        }
        file.sync_all()?;
        Ok(Staged {
            index: None,
            path: guard.defuse(),
            hash: actual,
            size,
            stored_size: size,
            form: BlobForm::Hot,
        })
    }

    /// Empties the staging area and lists the blobs present, by form,
    /// keyed by their names on disk ([`Shelf::disk_key`]).
    /// Empties the staging area and lists which forms of which blobs the
    /// backend holds (by their names there), removing frame indexes whose
    /// packed blob is gone.
    pub fn recover(&self) -> io::Result<HashMap<ContentHash, OnDisk>> {
        for entry in fs::read_dir(&self.tmp)? {
            let entry = entry?;
            fs::remove_file(entry.path())?;
        }
        durable::sync_dir(&self.tmp)?;
        let mut found: HashMap<ContentHash, OnDisk> = HashMap::new();
        let mut indexes = Vec::new();
        self.backend.list(&mut |key| {
            let name = key.rsplit('/').next().unwrap_or(key);
            if let Some(h) = name.strip_suffix(".bz2.idx") {
                if let Ok(h) = h.parse::<ContentHash>() {
                    indexes.push(h);
                    return;
                }
            }
            let (hex, packed, manifest) = if let Some(h) = name.strip_suffix(".bz2") {
                (h, true, false)
            } else if let Some(h) = name.strip_suffix(".manifest") {
                (h, false, true)
            } else {
                (name, false, false)
            };
            match hex.parse::<ContentHash>() {
                Ok(h) if key == Shelf::key_named(&h, BlobForm::Hot) + &name[hex.len()..] => {
                    let e = found.entry(h).or_default();
                    if packed {
                        e.packed = true;
                    } else if manifest {
                        e.manifest = true;
                    } else {
                        e.hot = true;
                    }
                }
                _ => log::warn!("ignoring unexpected file in the blob store: {key}"),
            }
        })?;
        for h in indexes {
            if !found.get(&h).is_some_and(|f| f.packed) {
                self.backend.remove(&Shelf::index_named(&h))?;
            }
        }
        Ok(found)
    }

    pub fn verify(
        &self,
        hash: &ContentHash,
        form: BlobForm,
        size: u64,
    ) -> io::Result<(ContentHash, u64)> {
        if form != BlobForm::Packed {
            return ContentHash::of_reader(self.read(hash, form, 0, size)?);
        }
        let mut file = self.open_form(hash, form)?;
        let packed_len = file.len();
        let ix = match self.read_small(&self.index_key(hash), Obj::Index(hash)) {
            // Packed before frames: one stream.
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return ContentHash::of_reader(self.read(hash, form, 0, size)?)
            }
            Err(e) => return Err(io::Error::other(format!("its frame index is damaged: {e}"))),
            Ok(bytes) => FrameIndex::decode(&bytes, packed_len)
                .ok_or_else(|| io::Error::other("its frame index is damaged"))?,
        };
        if ix.size != size {
            return Err(io::Error::other(format!(
                "its frame index is for {} bytes",
                ix.size
            )));
        }
        let mut hasher = Hasher::new();
        let mut buf = vec![0u8; BUF];
        for k in 0..ix.offsets.len() {
            let (at, end) = (ix.offsets[k], ix.end_of(k));
            file.seek(SeekFrom::Start(at))?;
            let stream = BufReader::with_capacity(BUF, (&mut file).take(end - at));
            let mut dec = bzip2::bufread::BzDecoder::new(stream);
            let mut got = 0u64;
            loop {
                let n = dec.read(&mut buf)?;
                if n == 0 {
                    break;
                }
                hasher.update(&buf[..n]);
                got += n as u64;
            }
            if got != ix.len_of(k) || dec.total_in() != end - at {
                return Err(io::Error::other(format!(
                    "frame {k} holds {got} bytes in {} of {} stored, its index says {} in {}",
                    dec.total_in(),
                    end - at,
                    ix.len_of(k),
                    end - at
                )));
            }
        }
        Ok(hasher.finish())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store() -> (tempfile::TempDir, LocalBlobs) {
        let dir = tempfile::tempdir().unwrap();
        let s = LocalBlobs::open(dir.path(), Vault::plain()).unwrap();
        (dir, s)
    }

    fn read_all(mut r: Box<dyn Read + Send>) -> Vec<u8> {
        let mut v = Vec::new();
        r.read_to_end(&mut v).unwrap();
        v
    }

    #[test]
    fn stage_verifies_hash_and_leaves_nothing_on_mismatch() {
        let (dir, s) = store();
        let data = b"hello".to_vec();
        let wrong = ContentHash::of_bytes(b"other");
        match s.stage(&mut &data[..], &wrong, Some(5), 100) {
            Err(StoreError::HashMismatch { .. }) => {}
            other => panic!("{other:?}"),
        }
        match s.stage(&mut &data[..], &ContentHash::of_bytes(&data), Some(5), 4) {
            Err(StoreError::TooLarge { limit: 4 }) => {}
            other => panic!("{other:?}"),
        }
        match s.stage(&mut &data[..], &ContentHash::of_bytes(&data), Some(9), 100) {
            Err(StoreError::BodyIncomplete) => {}
            other => panic!("{other:?}"),
        }
        assert_eq!(fs::read_dir(dir.path().join("tmp")).unwrap().count(), 0);
    }

    #[test]
    fn pack_open_ranges_unpack() {
        let (_dir, s) = store();
        let data: Vec<u8> = (0..300_000u32)
            .flat_map(|i| format!("line {i}\n").into_bytes())
            .collect();
        let h = ContentHash::of_bytes(&data);
        let staged = s.stage(&mut &data[..], &h, None, u64::MAX).unwrap();
        s.publish(staged).unwrap();
        let len = data.len() as u64;
        assert_eq!(
            read_all(s.read(&h, BlobForm::Hot, 10, 20).unwrap()),
            &data[10..30]
        );

        let stop = AtomicBool::new(false);
        let packed = match s.pack(&h, &stop).unwrap() {
            PackOutcome::Packed(p) => p,
            _ => panic!("text should pack"),
        };
        assert!(packed.stored_size < len / 3);
        s.publish(packed).unwrap();
        s.remove(&h, BlobForm::Hot).unwrap();
        let mid = read_all(s.read(&h, BlobForm::Packed, 1_000_000, 1000).unwrap());
        assert_eq!(mid, &data[1_000_000..1_001_000]);
        assert_eq!(
            read_all(s.read(&h, BlobForm::Packed, 0, len).unwrap()),
            data
        );

        let found = s.recover().unwrap();
        assert_eq!(
            found[&h],
            OnDisk {
                packed: true,
                ..OnDisk::default()
            }
        );

        let hot = s.unpack(&h).unwrap();
        s.publish(hot).unwrap();
        s.remove(&h, BlobForm::Packed).unwrap();
        assert_eq!(read_all(s.read(&h, BlobForm::Hot, 0, len).unwrap()), data);
    }

    /// Text of `len` bytes that compresses.
    fn text(len: usize) -> Vec<u8> {
        let mut v: Vec<u8> = (0..)
            .flat_map(|i: u32| format!("line {i} of a log\n").into_bytes())
            .take(len)
            .collect();
        v.truncate(len);
        v
    }

    fn packed(s: &LocalBlobs, data: &[u8]) -> ContentHash {
        let h = ContentHash::of_bytes(data);
        let staged = s.stage(&mut &data[..], &h, None, u64::MAX).unwrap();
        s.publish(staged).unwrap();
        let PackOutcome::Packed(p) = s.pack(&h, &AtomicBool::new(false)).unwrap() else {
            panic!("text should pack");
        };
        s.publish(p).unwrap();
        s.remove(&h, BlobForm::Hot).unwrap();
        h
    }

    #[test]
    fn packed_blobs_are_frames_any_range_of_which_reads_back() {
        let (_dir, s) = store();
        let len = 3 * FRAME as usize + 12_345;
        let data = text(len);
        let h = packed(&s, &data);
        let ix = FrameIndex::decode(
            &fs::read(s.local_file(&s.index_key(&h)).unwrap()).unwrap(),
            s.stored_len(&h, BlobForm::Packed).unwrap(),
        )
        .expect("a sound index");
        assert_eq!(ix.offsets.len(), 4);
        // Still a valid .bz2: the frames decompress in sequence to the data.
        let mut all = Vec::new();
        MultiBzDecoder::new(
            File::open(s.local_file(&s.key_of(&h, BlobForm::Packed)).unwrap()).unwrap(),
        )
        .read_to_end(&mut all)
        .unwrap();
        assert_eq!(all, data);
        let f = FRAME as usize;
        for (start, n) in [
            (0, 10),
            (f - 5, 10),
            (f, 1),
            (2 * f - 1, f + 2),
            (len - 1, 1),
            (len - 100, 100),
            (7, len - 7),
        ] {
            assert_eq!(
                read_all(
                    s.read(&h, BlobForm::Packed, start as u64, n as u64)
                        .unwrap()
                ),
                &data[start..start + n],
                "{start}+{n}"
            );
        }
        assert_eq!(
            s.verify(&h, BlobForm::Packed, len as u64).unwrap(),
            (h, len as u64)
        );

        // A damaged index: reads fall back to the start and stay right;
        // check names it.
        let mut bad = fs::read(s.local_file(&s.index_key(&h)).unwrap()).unwrap();
        bad[60] ^= 1;
        fs::write(s.local_file(&s.index_key(&h)).unwrap(), &bad).unwrap();
        assert_eq!(
            read_all(s.read(&h, BlobForm::Packed, 2 * FRAME + 3, 50).unwrap()),
            &data[2 * f + 3..2 * f + 53]
        );
        let e = s.verify(&h, BlobForm::Packed, len as u64).unwrap_err();
        assert!(e.to_string().contains("frame index"), "{e}");

        // An index that is sound but wrong (offsets of another packing).
        let wrong = FrameIndex {
            offsets: vec![0, ix.offsets[1] + 1, ix.offsets[2], ix.offsets[3]],
            ..ix
        };
        fs::write(s.local_file(&s.index_key(&h)).unwrap(), wrong.encode()).unwrap();
        assert!(s.verify(&h, BlobForm::Packed, len as u64).is_err());

        // Removing the packed form takes the index with it.
        s.remove(&h, BlobForm::Packed).unwrap();
        assert!(!s.local_file(&s.index_key(&h)).unwrap().exists());
    }

    #[test]
    fn packs_from_before_frames_and_orphan_indexes() {
        let (_dir, s) = store();
        let data = text(2 * FRAME as usize + 5);
        // A pack as the previous release wrote it: one stream, no index.
        let h = ContentHash::of_bytes(&data);
        let path = s.local_file(&s.key_of(&h, BlobForm::Packed)).unwrap();
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        let mut enc = BzEncoder::new(File::create(&path).unwrap(), Compression::default());
        enc.write_all(&data).unwrap();
        enc.finish().unwrap();
        let f = FRAME as usize;
        assert_eq!(
            read_all(s.read(&h, BlobForm::Packed, FRAME + 1, 10).unwrap()),
            &data[f + 1..f + 11]
        );
        assert_eq!(
            s.verify(&h, BlobForm::Packed, data.len() as u64).unwrap(),
            (h, data.len() as u64)
        );
        let hot = s.unpack(&h).unwrap();
        assert_eq!(hot.size, data.len() as u64);
        s.discard(hot);

        // An index left without its .bz2 (a crash while packing or
        // removing) is removed at start-up; the blob beside it is not.
        let other = ContentHash::of_bytes(b"other");
        let orphan = s.local_file(&s.index_key(&other)).unwrap();
        fs::create_dir_all(orphan.parent().unwrap()).unwrap();
        fs::write(&orphan, b"x").unwrap();
        let found = s.recover().unwrap();
        assert!(!orphan.exists());
        assert!(found[&h].packed);
    }

    #[test]
    fn random_data_is_incompressible() {
        let (_dir, s) = store();
        let mut x = 0x9E3779B97F4A7C15u64;
        let data: Vec<u8> = (0..200_000)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect();
        let h = ContentHash::of_bytes(&data);
        s.publish(s.stage(&mut &data[..], &h, None, u64::MAX).unwrap())
            .unwrap();
        assert!(matches!(
            s.pack(&h, &AtomicBool::new(false)).unwrap(),
            PackOutcome::Incompressible
        ));
    }
}
