//! Manifests: a content kept as chunks, as the ordered list of its chunks.
//!
//! On disk, `blobs/ab/<hash>.manifest` (little-endian):
//! `NIMBMAN1` | content hash (32) | size u64 | count u32 |
//! count x (chunk hash (32) | length u32) | BLAKE3 of all the above (32).
//! The trailing hash makes any flipped byte, a truncation, or a manifest
//! under another content's name detectable on every read.

use nimbus_common::hash::ContentHash;

const MAGIC: &[u8; 8] = b"NIMBMAN1";
const HEAD: usize = 8 + 32 + 8 + 4;
const ENTRY: usize = 32 + 4;

/// The chunks of one content, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Manifest {
    pub size: u64,
    pub chunks: Vec<(ContentHash, u32)>,
}

impl Manifest {
    pub fn encode(&self, content: &ContentHash) -> Vec<u8> {
        let mut out = Vec::with_capacity(HEAD + self.chunks.len() * ENTRY + 32);
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(content.as_bytes());
        out.extend_from_slice(&self.size.to_le_bytes());
        out.extend_from_slice(&(self.chunks.len() as u32).to_le_bytes());
        for (h, len) in &self.chunks {
            out.extend_from_slice(h.as_bytes());
            out.extend_from_slice(&len.to_le_bytes());
        }
        let sum = blake3::hash(&out);
        out.extend_from_slice(sum.as_bytes());
        out
    }

    /// Decodes a manifest that must describe `content`; the reason if it
    /// is damaged.
    pub fn decode(bytes: &[u8], content: &ContentHash) -> Result<Manifest, String> {
        if bytes.len() < HEAD + 32 || &bytes[..8] != MAGIC {
            return Err("is not a manifest (bad header)".into());
        }
        let (body, sum) = bytes.split_at(bytes.len() - 32);
        if blake3::hash(body).as_bytes() != sum {
            return Err("is damaged (its checksum does not match)".into());
        }
        if &body[8..40] != content.as_bytes() {
            return Err("describes another content".into());
        }
        let size = u64::from_le_bytes(body[40..48].try_into().expect("8 bytes"));
        let count = u32::from_le_bytes(body[48..52].try_into().expect("4 bytes")) as usize;
        if body.len() != HEAD + count * ENTRY {
            return Err("is truncated".into());
        }
        let chunks: Vec<(ContentHash, u32)> = body[HEAD..]
            .chunks_exact(ENTRY)
            .map(|e| {
                let hash: [u8; 32] = e[..32].try_into().expect("32 bytes");
                let len = u32::from_le_bytes(e[32..].try_into().expect("4 bytes"));
                (ContentHash::from_bytes(hash), len)
            })
            .collect();
        if chunks.iter().map(|(_, l)| *l as u64).sum::<u64>() != size {
            return Err("lists chunks that do not add up to its size".into());
        }
        Ok(Manifest { size, chunks })
    }

    /// The chunk holding byte `offset`: (its index, where it starts).
    pub fn locate(&self, offset: u64) -> Option<(usize, u64)> {
        let mut start = 0u64;
        for (i, (_, len)) in self.chunks.iter().enumerate() {
            let end = start + *len as u64;
            if offset < end {
                return Some((i, start));
            }
            start = end;
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(n: u8) -> ContentHash {
        ContentHash::from_bytes([n; 32])
    }

    #[test]
    fn round_trip_locate_and_damage() {
        let m = Manifest {
            size: 30,
            chunks: vec![(h(1), 10), (h(2), 15), (h(1), 5)],
        };
        let bytes = m.encode(&h(9));
        assert_eq!(Manifest::decode(&bytes, &h(9)).unwrap(), m);
        assert!(Manifest::decode(&bytes, &h(8)).is_err());
        assert_eq!(m.locate(0), Some((0, 0)));
        assert_eq!(m.locate(10), Some((1, 10)));
        assert_eq!(m.locate(29), Some((2, 25)));
        assert_eq!(m.locate(30), None);
        for i in [0, 20, 45, bytes.len() - 1] {
            let mut bad = bytes.clone();
            bad[i] ^= 1;
            assert!(Manifest::decode(&bad, &h(9)).is_err(), "flip at {i}");
        }
        assert!(Manifest::decode(&bytes[..bytes.len() - 1], &h(9)).is_err());
    }
}
