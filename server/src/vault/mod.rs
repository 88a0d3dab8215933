//! Encryption at rest. A [`Vault`] is how every part of the server writes
//! and reads what it keeps in the data directory: plain (as before), or
//! sealed with the data directory's master key (see `seal` for the format,
//! `keys` for the slots that hold the key, `unlock` for where the key comes
//! from at start). Each stored object is sealed under its identity ([`Obj`])
//! as associated data, so no object opens under another's name, and blobs
//! are named on disk by a keyed BLAKE3 of their hash.
//!
//! What stays readable: `keys.json` (the wrapped key), lock files, and the
//! layout of directories.

pub mod keys;
pub mod seal;
pub mod unlock;

use base64::engine::general_purpose::STANDARD_NO_PAD as B64;
use base64::Engine;
use nimbus_common::durable;
use nimbus_common::hash::ContentHash;
use seal::{Cipher, SealReader, SealWriter};
use std::fs::File;
use std::io::{self, Read, Seek, Write};
use std::path::Path;
use std::sync::Arc;

pub use unlock::{open, UnlockOptions, VaultError};

/// The identity of a stored object: what it is sealed under.
#[derive(Debug, Clone, Copy)]
pub enum Obj<'a> {
    /// A blob's original bytes (a hot blob, or a chunk).
    Hot(&'a ContentHash),
    /// A blob's bzip2 frames.
    Packed(&'a ContentHash),
    /// A packed blob's frame index.
    Index(&'a ContentHash),
    /// A chunked content's manifest.
    Manifest(&'a ContentHash),
    Snapshot,
    Journal,
    Clients,
    Updates,
    Policy,
    Alerts,
    AlertState,
    Check,
    History,
    Accounts,
    UploadMeta(&'a str),
    UploadPart(&'a str),
}

impl Obj<'_> {
    fn id(&self) -> Vec<u8> {
        match self {
            Obj::Hot(h) => format!("hot/{h}"),
            Obj::Packed(h) => format!("packed/{h}"),
            Obj::Index(h) => format!("index/{h}"),
            Obj::Manifest(h) => format!("manifest/{h}"),
            Obj::Snapshot => "catalog/snapshot".into(),
            Obj::Journal => "catalog/journal".into(),
            Obj::Clients => "clients".into(),
            Obj::Updates => "updates".into(),
            Obj::Policy => "policy".into(),
            Obj::Alerts => "alerts".into(),
            Obj::AlertState => "alerts/state".into(),
            Obj::Check => "check".into(),
            Obj::History => "history".into(),
            Obj::Accounts => "accounts".into(),
            Obj::UploadMeta(id) => format!("upload/{id}/state"),
            Obj::UploadPart(id) => format!("upload/{id}/part"),
        }
        .into_bytes()
    }
}

struct Keys {
    cipher: Arc<Cipher>,
    /// Keys BLAKE3 for blob names.
    names: [u8; 32],
}

/// Plain or sealed storage; cheap to clone.
#[derive(Clone, Default)]
pub struct Vault(Option<Arc<Keys>>);

impl std::fmt::Debug for Vault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_some() {
            "Vault(sealed)"
        } else {
            "Vault(plain)"
        })
    }
}

/// A writer that seals, or passes through.
pub enum Writer<W: Write> {
    Plain(W),
    Sealed(SealWriter<W>),
}

impl<W: Write> Writer<W> {
    /// Ends the object (a sealed one's last segment) and returns the inner
    /// writer, flushed.
    pub fn finish(self) -> io::Result<W> {
        match self {
            Writer::Plain(mut w) => {
                w.flush()?;
                Ok(w)
            }
            Writer::Sealed(s) => s.finish(),
        }
    }

    /// For an open-ended object: as [`Writer::finish`], but a partial last
    /// segment is dropped; returns how many bytes were (0 when plain).
    pub fn finish_whole_segments(self) -> io::Result<(W, usize)> {
        match self {
            Writer::Plain(mut w) => {
                w.flush()?;
                Ok((w, 0))
            }
            Writer::Sealed(s) => s.finish_whole_segments(),
        }
    }
}

impl<W: Write> Write for Writer<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Writer::Plain(w) => w.write(buf),
            Writer::Sealed(w) => w.write(buf),
        }
    }
    fn flush(&mut self) -> io::Result<()> {
        match self {
            Writer::Plain(w) => w.flush(),
            Writer::Sealed(w) => w.flush(),
        }
    }
}

/// A reader that opens sealed objects, or passes through; `Read + Seek` in
/// plaintext offsets either way.
pub enum Reader<R> {
    Plain(R, u64),
    Sealed(SealReader<R>),
}

impl<R: Read + Seek> Reader<R> {
    /// The plaintext length.
    pub fn len(&self) -> u64 {
        match self {
            Reader::Plain(_, n) => *n,
            Reader::Sealed(s) => s.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl<R: Read + Seek> Read for Reader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Reader::Plain(r, _) => r.read(buf),
            Reader::Sealed(r) => r.read(buf),
        }
    }
}

impl<R: Read + Seek> Seek for Reader<R> {
    fn seek(&mut self, to: io::SeekFrom) -> io::Result<u64> {
        match self {
            Reader::Plain(r, _) => r.seek(to),
            Reader::Sealed(r) => r.seek(to),
        }
    }
}

impl Vault {
    /// No encryption: objects are written as they are.
    pub fn plain() -> Vault {
        Vault(None)
    }

    /// Sealing with `master` (the key slots unwrap it).
    pub fn sealed(master: &[u8; 32]) -> Vault {
        Vault(Some(Arc::new(Keys {
            cipher: Arc::new(Cipher::new(&blake3::derive_key(
                "nimbus 2026-12 data key",
                master,
            ))),
            names: blake3::derive_key("nimbus 2026-12 blob names", master),
        })))
    }

    pub fn is_sealed(&self) -> bool {
        self.0.is_some()
    }

    /// The name a blob's files carry on disk: its hash in hex, or when
    /// sealed a keyed BLAKE3 of it, so the disk does not tell whether a
    /// known content is stored.
    pub fn blob_name(&self, hash: &ContentHash) -> String {
        self.blob_key(hash).to_hex()
    }

    /// [`Vault::blob_name`] as a hash-shaped key, as the start-up scan of
    /// the blob directory finds names.
    pub fn blob_key(&self, hash: &ContentHash) -> ContentHash {
        match &self.0 {
            None => *hash,
            Some(k) => {
                ContentHash::from_bytes(*blake3::keyed_hash(&k.names, hash.as_bytes()).as_bytes())
            }
        }
    }

    /// The plaintext length of an object stored in `stored` bytes.
    pub fn plain_len(&self, stored: u64) -> io::Result<u64> {
        match &self.0 {
            None => Ok(stored),
            Some(_) => seal::plain_len(stored).map(|(n, _)| n),
        }
    }

    fn keys(&self) -> Option<&Keys> {
        self.0.as_deref()
    }

    /// Seals what is written to `inner` as `obj`.
    pub fn writer<W: Write>(&self, inner: W, obj: Obj<'_>) -> Writer<W> {
        match self.keys() {
            None => Writer::Plain(inner),
            Some(k) => Writer::Sealed(SealWriter::new(k.cipher.clone(), obj.id(), inner, true)),
        }
    }

    /// An open-ended object (`obj` an upload's part), continued after its
    /// first `plain` bytes (a multiple of [`seal::SEG`] when sealed);
    /// `inner` must be positioned at [`Vault::stored_offset`] of `plain`.
    pub fn appender<W: Write>(&self, inner: W, obj: Obj<'_>, plain: u64) -> Writer<W> {
        match self.keys() {
            None => Writer::Plain(inner),
            Some(k) => Writer::Sealed(SealWriter::resume(k.cipher.clone(), obj.id(), inner, plain)),
        }
    }

    /// Where plaintext offset `plain` of an open-ended object is stored.
    pub fn stored_offset(&self, plain: u64) -> u64 {
        match &self.0 {
            None => plain,
            Some(_) => seal::stored_len_of(plain),
        }
    }

    /// What an open-ended object can keep of `plain` bytes: all when
    /// plain, whole segments when sealed.
    pub fn whole_segments(&self, plain: u64) -> u64 {
        match &self.0 {
            None => plain,
            Some(_) => plain - plain % seal::SEG as u64,
        }
    }

    fn open_inner<R: Read + Seek>(
        &self,
        mut inner: R,
        obj: Obj<'_>,
        stored: u64,
        ended: bool,
    ) -> io::Result<Reader<R>> {
        match self.keys() {
            None => {
                inner.seek(io::SeekFrom::Start(0))?;
                Ok(Reader::Plain(inner, stored))
            }
            Some(k) => SealReader::new(k.cipher.clone(), obj.id(), inner, stored, ended)
                .map(Reader::Sealed)
                .map_err(|e| name_damage(e, obj)),
        }
    }

    /// Opens `obj` in `file`.
    pub fn reader<R: Read + Seek + AsLen>(&self, inner: R, obj: Obj<'_>) -> io::Result<Reader<R>> {
        let stored = inner.stored_len()?;
        self.open_inner(inner, obj, stored, true)
    }

    /// Opens an open-ended object.
    pub fn open_ended_reader(&self, inner: File, obj: Obj<'_>) -> io::Result<Reader<File>> {
        let stored = inner.metadata()?.len();
        self.open_inner(inner, obj, stored, false)
    }

    /// Reads a small object whole.
    pub fn read_object(&self, path: &Path, obj: Obj<'_>) -> io::Result<Vec<u8>> {
        self.open_bytes(std::fs::read(path)?, obj)
    }

    /// The plaintext of a small object read whole (from a blob backend).
    pub fn open_bytes(&self, stored: Vec<u8>, obj: Obj<'_>) -> io::Result<Vec<u8>> {
        if self.0.is_none() {
            return Ok(stored);
        }
        let mut r = self.reader(io::Cursor::new(stored), obj)?;
        let mut out = Vec::with_capacity(r.len() as usize);
        r.read_to_end(&mut out).map_err(|e| name_damage(e, obj))?;
        Ok(out)
    }

    /// Seals `bytes` as `obj` in memory (a small object to write).
    pub fn seal_bytes(&self, obj: Obj<'_>, bytes: &[u8]) -> Vec<u8> {
        let mut w = self.writer(Vec::with_capacity(bytes.len() + 64), obj);
        w.write_all(bytes).expect("writing to memory");
        w.finish().expect("writing to memory")
    }

    /// Replaces `path` atomically with `obj`, filled by `fill` (temp file,
    /// fsync, rename, directory fsync); owner-only when `private`.
    pub fn write_atomic<F>(
        &self,
        path: &Path,
        obj: Obj<'_>,
        private: bool,
        fill: F,
    ) -> io::Result<()>
    where
        F: FnOnce(&mut dyn Write) -> io::Result<()>,
    {
        let body = |w: &mut io::BufWriter<&File>| -> io::Result<()> {
            let mut s = self.writer(w, obj);
            fill(&mut s)?;
            s.finish()?;
            Ok(())
        };
        if private {
            durable::write_atomic_private(path, body)
        } else {
            durable::write_atomic(path, body)
        }
    }

    /// One journal line's text (without its newline): the JSON itself, or
    /// when sealed the sealed JSON in base64.
    pub fn seal_line(&self, obj: Obj<'_>, json: &[u8]) -> Vec<u8> {
        match &self.0 {
            None => json.to_vec(),
            Some(k) => B64
                .encode(k.cipher.seal_message(&obj.id(), json))
                .into_bytes(),
        }
    }

    /// The JSON of a line [`Vault::seal_line`] made; None if damaged.
    pub fn open_line(&self, obj: Obj<'_>, line: &[u8]) -> Option<Vec<u8>> {
        match &self.0 {
            None => Some(line.to_vec()),
            Some(k) => {
                let sealed = B64.decode(line.trim_ascii_end()).ok()?;
                k.cipher.open_message(&obj.id(), &sealed)
            }
        }
    }
}

/// A stored length: a file's size, or a buffer's.
pub trait AsLen {
    fn stored_len(&self) -> io::Result<u64>;
}

impl AsLen for File {
    fn stored_len(&self) -> io::Result<u64> {
        Ok(self.metadata()?.len())
    }
}

impl AsLen for &File {
    fn stored_len(&self) -> io::Result<u64> {
        Ok(self.metadata()?.len())
    }
}

impl<T: AsRef<[u8]>> AsLen for io::Cursor<T> {
    fn stored_len(&self) -> io::Result<u64> {
        Ok(self.get_ref().as_ref().len() as u64)
    }
}

fn name_damage(e: io::Error, obj: Obj<'_>) -> io::Error {
    if e.kind() != io::ErrorKind::InvalidData {
        return e;
    }
    let what = String::from_utf8_lossy(&obj.id()).into_owned();
    io::Error::new(io::ErrorKind::InvalidData, format!("{what}: {e}"))
}
