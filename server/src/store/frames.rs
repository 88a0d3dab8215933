//! Packed blobs in frames, so any byte of a cold file is served at once.
//!
//! A packed blob (`<hash>.bz2`) is a sequence of independent bzip2 streams,
//! each compressing [`FRAME`] bytes of the original (the last one fewer):
//! still a valid `.bz2` file (`bzip2 -d` decompresses concatenated
//! streams). Beside it, `<hash>.bz2.idx` says where each stream starts, so a
//! read at any offset seeks to its frame and decompresses at most one frame
//! of bytes it does not want.
//!
//! The index is written and made durable before the `.bz2` it describes, and
//! names that file's length; an index that is missing, damaged, or does not
//! match its `.bz2` is ignored, and the blob is read from its start as a
//! whole-stream blob (as packed blobs were before frames) would be.

use std::io;

/// Original bytes per frame.
pub const FRAME: u64 = 1 << 20;

const MAGIC: &[u8; 8] = b"NIMBIDX1";

/// Where each frame of one packed blob starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FrameIndex {
    /// Original bytes per frame.
    pub frame: u64,
    /// Original size of the blob.
    pub size: u64,
    /// Length of the `.bz2` file the index describes.
    pub packed_len: u64,
    /// Offset in the `.bz2` file of each frame's stream, ascending, from 0.
    pub offsets: Vec<u64>,
}

impl FrameIndex {
    /// The index file's bytes: magic, frame, size, packed length, count,
    /// the offsets (all little-endian u64), then a CRC-32 of all of it.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(48 + 8 * self.offsets.len());
        out.extend_from_slice(MAGIC);
        for v in [
            self.frame,
            self.size,
            self.packed_len,
            self.offsets.len() as u64,
        ] {
            out.extend_from_slice(&v.to_le_bytes());
        }
        for o in &self.offsets {
            out.extend_from_slice(&o.to_le_bytes());
        }
        let crc = crc32fast::hash(&out);
        out.extend_from_slice(&crc.to_le_bytes());
        out
    }

    /// An index read back, if it is whole and consistent with a `.bz2`
    /// file of `packed_len` bytes.
    pub fn decode(bytes: &[u8], packed_len: u64) -> Option<FrameIndex> {
        let (body, crc) = bytes.split_at_checked(bytes.len().checked_sub(4)?)?;
        if crc32fast::hash(body).to_le_bytes() != crc {
            return None;
        }
        let body = body.strip_prefix(MAGIC)?;
        let mut words = body
            .chunks_exact(8)
            .map(|c| u64::from_le_bytes(c.try_into().expect("chunks of 8")));
        if body.len() % 8 != 0 {
            return None;
        }
        let (frame, size, len, count) =
            (words.next()?, words.next()?, words.next()?, words.next()?);
        let offsets: Vec<u64> = words.collect();
        let ix = FrameIndex {
            frame,
            size,
            packed_len: len,
            offsets,
        };
        ix.consistent(packed_len, count).then_some(ix)
    }

    fn consistent(&self, packed_len: u64, count: u64) -> bool {
        self.frame > 0
            && self.packed_len == packed_len
            && self.offsets.len() as u64 == count
            && count == self.size.div_ceil(self.frame)
            && self.offsets.first().is_none_or(|&o| o == 0)
            && self.offsets.windows(2).all(|w| w[0] < w[1])
            && self.offsets.last().is_none_or(|&o| o < packed_len)
    }

    /// The frame holding original byte `offset`: (its number, where its
    /// stream starts in the `.bz2` file, the original offset it starts at).
    pub fn frame_of(&self, offset: u64) -> Option<(usize, u64, u64)> {
        let k = usize::try_from(offset / self.frame)
            .ok()?
            .min(self.offsets.len().checked_sub(1)?);
        Some((k, self.offsets[k], k as u64 * self.frame))
    }

    /// Where frame `k`'s stream ends in the `.bz2` file.
    pub fn end_of(&self, k: usize) -> u64 {
        self.offsets.get(k + 1).copied().unwrap_or(self.packed_len)
    }

    /// Original bytes in frame `k`.
    pub fn len_of(&self, k: usize) -> u64 {
        self.frame.min(self.size - k as u64 * self.frame)
    }
}

/// A writer that counts what passes through it (the offsets of frames).
pub struct Counting<W> {
    pub inner: W,
    pub written: u64,
}

impl<W: io::Write> io::Write for Counting<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.written += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn index() -> FrameIndex {
        FrameIndex {
            frame: FRAME,
            size: 2 * FRAME + 10,
            packed_len: 5000,
            offsets: vec![0, 1200, 3900],
        }
    }

    #[test]
    fn indexes_round_trip_and_damage_is_refused() {
        let ix = index();
        let bytes = ix.encode();
        assert_eq!(FrameIndex::decode(&bytes, 5000), Some(ix.clone()));
        // Another .bz2 (a different length) than the one it was made for.
        assert_eq!(FrameIndex::decode(&bytes, 5001), None);
        // Any flipped byte, and any cut.
        for i in 0..bytes.len() {
            let mut bad = bytes.clone();
            bad[i] ^= 0x40;
            assert_eq!(FrameIndex::decode(&bad, 5000), None, "byte {i}");
        }
        for n in 0..bytes.len() {
            assert_eq!(FrameIndex::decode(&bytes[..n], 5000), None, "cut at {n}");
        }
        // Offsets that do not fit the size are refused even with a good CRC.
        let wrong = FrameIndex {
            offsets: vec![0, 1200],
            ..ix
        };
        assert_eq!(FrameIndex::decode(&wrong.encode(), 5000), None);
    }

    #[test]
    fn offsets_map_to_frames() {
        let ix = index();
        assert_eq!(ix.frame_of(0), Some((0, 0, 0)));
        assert_eq!(ix.frame_of(FRAME - 1), Some((0, 0, 0)));
        assert_eq!(ix.frame_of(FRAME), Some((1, 1200, FRAME)));
        assert_eq!(ix.frame_of(2 * FRAME + 9), Some((2, 3900, 2 * FRAME)));
        assert_eq!((ix.end_of(1), ix.end_of(2)), (3900, 5000));
        assert_eq!((ix.len_of(0), ix.len_of(2)), (FRAME, 10));
    }
}
