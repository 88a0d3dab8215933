//! The sealed object format: XChaCha20-Poly1305 in segments.
//!
//! ```text
//! "NIMBSEA1"                          8 bytes, the format
//! segment 0: nonce (24) | ciphertext (<= 64 KiB) | tag (16)
//! segment 1: ...
//! ```
//!
//! Every segment but the last holds exactly [`SEG`] bytes of plaintext, so
//! plaintext offset `p` lies in segment `p / SEG` at a known file offset:
//! a reader seeks there and decrypts only the segments it reads. Each
//! segment's associated data is the object's identity, the segment's index
//! and whether it is the last, so a segment cannot be moved within an
//! object, into another object, or made the end of a truncated one. Nonces
//! are random (192 bits): nothing to remember across a crash.
//!
//! An *open-ended* object (an upload in progress) marks no segment last:
//! its length is kept elsewhere (the upload's sealed state), and it grows
//! by whole segments.

use chacha20poly1305::aead::{AeadInPlace, KeyInit};
use chacha20poly1305::{Tag, XChaCha20Poly1305, XNonce};
use rand_core::{OsRng, RngCore};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::sync::Arc;

pub const MAGIC: &[u8; 8] = b"NIMBSEA1";
/// Plaintext bytes per segment.
pub const SEG: usize = 64 * 1024;
const NONCE: usize = 24;
const TAG: usize = 16;
/// What sealing adds to each segment.
pub const OVERHEAD: usize = NONCE + TAG;
const STORED_SEG: u64 = (SEG + OVERHEAD) as u64;
const HEADER: u64 = MAGIC.len() as u64;

/// The data key, ready to seal and open.
pub struct Cipher(XChaCha20Poly1305);

impl Cipher {
    pub fn new(key: &[u8; 32]) -> Cipher {
        Cipher(XChaCha20Poly1305::new(key.into()))
    }

    /// Seals `buf` in place (it becomes ciphertext) and returns the nonce
    /// and tag.
    fn seal(&self, aad: &[u8], buf: &mut [u8]) -> ([u8; NONCE], [u8; TAG]) {
        let mut nonce = [0u8; NONCE];
        OsRng.fill_bytes(&mut nonce);
        let tag = self
            .0
            .encrypt_in_place_detached(XNonce::from_slice(&nonce), aad, buf)
            .expect("XChaCha20-Poly1305 seals any length below 256 GiB");
        (nonce, tag.into())
    }

    fn open(&self, aad: &[u8], nonce: &[u8], buf: &mut [u8], tag: &[u8]) -> bool {
        self.0
            .decrypt_in_place_detached(XNonce::from_slice(nonce), aad, buf, Tag::from_slice(tag))
            .is_ok()
    }

    /// Seals a short message whole: nonce | ciphertext | tag.
    pub fn seal_message(&self, aad: &[u8], plain: &[u8]) -> Vec<u8> {
        let mut buf = plain.to_vec();
        let (nonce, tag) = self.seal(aad, &mut buf);
        let mut out = Vec::with_capacity(OVERHEAD + buf.len());
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&buf);
        out.extend_from_slice(&tag);
        out
    }

    /// Opens what [`Cipher::seal_message`] made; None if it was not made
    /// with this key and `aad`, or was changed.
    pub fn open_message(&self, aad: &[u8], sealed: &[u8]) -> Option<Vec<u8>> {
        if sealed.len() < OVERHEAD {
            return None;
        }
        let (nonce, rest) = sealed.split_at(NONCE);
        let (body, tag) = rest.split_at(rest.len() - TAG);
        let mut buf = body.to_vec();
        self.open(aad, nonce, &mut buf, tag).then_some(buf)
    }
}

fn segment_aad(id: &[u8], index: u64, last: bool) -> Vec<u8> {
    let mut aad = Vec::with_capacity(id.len() + 24);
    aad.extend_from_slice(b"nimbus-seal-1\0");
    aad.extend_from_slice(id);
    aad.push(0);
    aad.extend_from_slice(&index.to_le_bytes());
    aad.push(last as u8);
    aad
}

fn damaged(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, what.to_string())
}

/// The plaintext length of a sealed object of `stored` bytes, and its
/// segment count; an error if no sealed object has that length.
pub fn plain_len(stored: u64) -> io::Result<(u64, u64)> {
    if stored < HEADER {
        return Err(damaged("a sealed object shorter than its header"));
    }
    let body = stored - HEADER;
    let segs = body.div_ceil(STORED_SEG);
    if segs > 0 && body - (segs - 1) * STORED_SEG < OVERHEAD as u64 {
        return Err(damaged("a sealed object ends inside a segment's header"));
    }
    Ok((body - segs * OVERHEAD as u64, segs))
}

/// The stored length of the first `plain` bytes of an open-ended object
/// (`plain` a multiple of [`SEG`]).
pub fn stored_len_of(plain: u64) -> u64 {
    HEADER + plain / SEG as u64 * STORED_SEG
}

/// Writes a sealed object through `inner`. [`SealWriter::finish`] must be
/// called: without it the object has no last segment and never opens
/// (which is what a temp file abandoned half-written should be).
pub struct SealWriter<W: Write> {
    cipher: Arc<Cipher>,
    id: Vec<u8>,
    inner: W,
    buf: Vec<u8>,
    index: u64,
    ended: bool,
    wrote_header: bool,
}

impl<W: Write> SealWriter<W> {
    /// A new object, its header first.
    pub fn new(cipher: Arc<Cipher>, id: Vec<u8>, inner: W, ended: bool) -> Self {
        SealWriter {
            cipher,
            id,
            inner,
            buf: Vec::with_capacity(SEG + TAG),
            index: 0,
            ended,
            wrote_header: false,
        }
    }

    /// More segments of an open-ended object whose first `plain` bytes (a
    /// multiple of [`SEG`]) are written; `inner` is positioned after them.
    pub fn resume(cipher: Arc<Cipher>, id: Vec<u8>, inner: W, plain: u64) -> Self {
        debug_assert_eq!(plain % SEG as u64, 0);
        SealWriter {
            wrote_header: plain > 0,
            index: plain / SEG as u64,
            ..SealWriter::new(cipher, id, inner, false)
        }
    }

    fn emit(&mut self, last: bool) -> io::Result<()> {
        if !self.wrote_header {
            self.inner.write_all(MAGIC)?;
            self.wrote_header = true;
        }
        let aad = segment_aad(&self.id, self.index, last);
        let (nonce, tag) = self.cipher.seal(&aad, &mut self.buf);
        self.inner.write_all(&nonce)?;
        self.inner.write_all(&self.buf)?;
        self.inner.write_all(&tag)?;
        self.buf.clear();
        self.index += 1;
        Ok(())
    }

    /// Writes the last segment and returns the inner writer, flushed.
    pub fn finish(mut self) -> io::Result<W> {
        if self.ended {
            self.emit(true)?;
        } else if !self.buf.is_empty() {
            self.emit(false)?;
        } else if !self.wrote_header {
            self.inner.write_all(MAGIC)?;
        }
        self.inner.flush()?;
        Ok(self.inner)
    }

    /// For an open-ended object: writes the whole segments buffered and
    /// drops a partial one; returns how many buffered bytes were dropped.
    pub fn finish_whole_segments(mut self) -> io::Result<(W, usize)> {
        let dropped = self.buf.len() % SEG;
        if self.buf.len() == SEG {
            self.emit(false)?;
        }
        if !self.wrote_header {
            self.inner.write_all(MAGIC)?;
        }
        self.inner.flush()?;
        Ok((self.inner, dropped))
    }
}

impl<W: Write> Write for SealWriter<W> {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        if data.is_empty() {
            return Ok(0);
        }
        // A full segment waits for more data: only then is it not the last.
        if self.buf.len() == SEG {
            self.emit(false)?;
        }
        let n = data.len().min(SEG - self.buf.len());
        self.buf.extend_from_slice(&data[..n]);
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// Reads a sealed object: `Read + Seek` in plaintext offsets, decrypting
/// one segment at a time, and refusing (InvalidData) any segment that is
/// not this object's, at this place.
pub struct SealReader<R> {
    cipher: Arc<Cipher>,
    id: Vec<u8>,
    inner: R,
    len: u64,
    segs: u64,
    ended: bool,
    /// The decrypted segment `loaded`, if any.
    buf: Vec<u8>,
    loaded: Option<u64>,
    pos: u64,
}

impl<R: Read + Seek> SealReader<R> {
    /// Opens an object of `stored` bytes.
    pub fn new(
        cipher: Arc<Cipher>,
        id: Vec<u8>,
        mut inner: R,
        stored: u64,
        ended: bool,
    ) -> io::Result<Self> {
        let (len, segs) = plain_len(stored)?;
        if ended && segs == 0 {
            return Err(damaged("a sealed object without its last segment"));
        }
        let mut magic = [0u8; 8];
        inner.seek(SeekFrom::Start(0))?;
        inner.read_exact(&mut magic)?;
        if &magic != MAGIC {
            return Err(damaged("not a sealed object (its header is wrong)"));
        }
        Ok(SealReader {
            cipher,
            id,
            inner,
            len,
            segs,
            ended,
            buf: Vec::with_capacity(SEG + TAG),
            loaded: None,
            pos: 0,
        })
    }

    /// The plaintext length.
    pub fn len(&self) -> u64 {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    fn load(&mut self, k: u64) -> io::Result<()> {
        let at = HEADER + k * STORED_SEG;
        let stored = (self.segs * OVERHEAD as u64 + self.len + HEADER - at).min(STORED_SEG);
        self.inner.seek(SeekFrom::Start(at))?;
        let mut head = [0u8; NONCE];
        self.inner.read_exact(&mut head)?;
        self.buf.resize(stored as usize - NONCE, 0);
        self.inner.read_exact(&mut self.buf)?;
        let body = self.buf.len() - TAG;
        let (data, tag) = self.buf.split_at_mut(body);
        let last = self.ended && k + 1 == self.segs;
        let aad = segment_aad(&self.id, k, last);
        if !self.cipher.open(&aad, &head, data, tag) {
            self.loaded = None;
            return Err(damaged(&format!(
                "segment {k} of a sealed object is damaged or belongs to another object"
            )));
        }
        self.buf.truncate(body);
        self.loaded = Some(k);
        Ok(())
    }
}

impl<R: Read + Seek> Read for SealReader<R> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        if self.pos >= self.len || out.is_empty() {
            return Ok(0);
        }
        let k = self.pos / SEG as u64;
        if self.loaded != Some(k) {
            self.load(k)?;
        }
        let within = (self.pos - k * SEG as u64) as usize;
        let n = out.len().min(self.buf.len() - within);
        out[..n].copy_from_slice(&self.buf[within..within + n]);
        self.pos += n as u64;
        Ok(n)
    }
}

impl<R: Read + Seek> Seek for SealReader<R> {
    fn seek(&mut self, to: SeekFrom) -> io::Result<u64> {
        let target = match to {
            SeekFrom::Start(p) => Some(p),
            SeekFrom::Current(d) => self.pos.checked_add_signed(d),
            SeekFrom::End(d) => self.len.checked_add_signed(d),
        };
        self.pos =
            target.ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "seek before 0"))?;
        Ok(self.pos)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Cursor;

    fn cipher() -> Arc<Cipher> {
        Arc::new(Cipher::new(&[7u8; 32]))
    }

    fn seal(c: &Arc<Cipher>, id: &[u8], data: &[u8]) -> Vec<u8> {
        let mut w = SealWriter::new(c.clone(), id.to_vec(), Vec::new(), true);
        // Odd write sizes, across segment borders.
        for piece in data.chunks(10_007) {
            w.write_all(piece).unwrap();
        }
        w.finish().unwrap()
    }

    fn open(c: &Arc<Cipher>, id: &[u8], sealed: &[u8]) -> io::Result<Vec<u8>> {
        let mut r = SealReader::new(
            c.clone(),
            id.to_vec(),
            Cursor::new(sealed),
            sealed.len() as u64,
            true,
        )?;
        let mut out = Vec::new();
        r.read_to_end(&mut out)?;
        Ok(out)
    }

    fn data(n: usize) -> Vec<u8> {
        (0..n).map(|i| (i * 31 % 251) as u8).collect()
    }

    #[test]
    fn round_trips_every_length_around_segment_borders() {
        let c = cipher();
        for n in [0, 1, SEG - 1, SEG, SEG + 1, 3 * SEG, 3 * SEG + 5] {
            let d = data(n);
            let s = seal(&c, b"x", &d);
            assert_eq!(plain_len(s.len() as u64).unwrap().0, n as u64);
            assert_eq!(open(&c, b"x", &s).unwrap(), d, "{n}");
        }
    }

    #[test]
    fn seeks_decrypt_only_what_they_read() {
        let c = cipher();
        let d = data(5 * SEG + 123);
        let s = seal(&c, b"x", &d);
        let mut r = SealReader::new(
            c.clone(),
            b"x".to_vec(),
            Cursor::new(&s),
            s.len() as u64,
            true,
        )
        .unwrap();
        for at in [0u64, 5, SEG as u64 - 1, SEG as u64, 4 * SEG as u64 + 77] {
            r.seek(SeekFrom::Start(at)).unwrap();
            let mut got = vec![0u8; 300.min(d.len() - at as usize)];
            r.read_exact(&mut got).unwrap();
            assert_eq!(got, d[at as usize..at as usize + got.len()]);
        }
    }

    #[test]
    fn refuses_flips_swaps_truncations_and_other_names() {
        let c = cipher();
        let d = data(3 * SEG + 10);
        let s = seal(&c, b"a", &d);
        assert!(open(&c, b"b", &s).is_err(), "another object's name");
        assert!(
            open(&Arc::new(Cipher::new(&[8u8; 32])), b"a", &s).is_err(),
            "another key"
        );
        for at in [0, 8, 40, s.len() / 2, s.len() - 1] {
            let mut bad = s.clone();
            bad[at] ^= 1;
            assert!(open(&c, b"a", &bad).is_err(), "flip at {at}");
        }
        // Cut at a segment border: the new end is not marked last.
        let cut = (HEADER + 2 * STORED_SEG) as usize;
        assert!(open(&c, b"a", &s[..cut]).is_err());
        // Two segments swapped.
        let mut swapped = s.clone();
        let (a, b) = (HEADER as usize, (HEADER + STORED_SEG) as usize);
        let first = s[a..b].to_vec();
        swapped.copy_within(b..b + STORED_SEG as usize, a);
        swapped[b..b + STORED_SEG as usize].copy_from_slice(&first);
        assert!(open(&c, b"a", &swapped).is_err());
    }

    #[test]
    fn open_ended_objects_grow_by_whole_segments() {
        let c = cipher();
        let d = data(3 * SEG + 500);
        let mut w = SealWriter::new(c.clone(), b"u".to_vec(), Vec::new(), false);
        w.write_all(&d[..SEG + 700]).unwrap();
        let (mut file, dropped) = w.finish_whole_segments().unwrap();
        assert_eq!(dropped, 700);
        assert_eq!(file.len() as u64, stored_len_of(SEG as u64));
        let mut w = SealWriter::resume(c.clone(), b"u".to_vec(), &mut file, SEG as u64);
        w.write_all(&d[SEG..]).unwrap();
        w.finish().unwrap();
        let mut r = SealReader::new(
            c.clone(),
            b"u".to_vec(),
            Cursor::new(&file),
            file.len() as u64,
            false,
        )
        .unwrap();
        let mut out = Vec::new();
        r.read_to_end(&mut out).unwrap();
        assert_eq!(out, d);
    }

    #[test]
    fn messages_are_bound_to_their_name() {
        let c = cipher();
        let m = c.seal_message(b"j", b"hello");
        assert_eq!(c.open_message(b"j", &m).unwrap(), b"hello");
        assert!(c.open_message(b"k", &m).is_none());
        let mut bad = m.clone();
        bad[30] ^= 4;
        assert!(c.open_message(b"j", &bad).is_none());
    }
}
