//! Content hashing: a blob is named by the BLAKE3 hash of its original bytes,
//! written as 64 lowercase hex digits.

use std::fmt;
use std::io::{self, Read};
use std::str::FromStr;

/// A BLAKE3 content hash.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ContentHash([u8; 32]);

/// A string that is not 64 hex digits.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("not a content hash: expected 64 hex digits")]
pub struct BadHash;

impl ContentHash {
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        ContentHash(bytes)
    }

    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    pub fn to_hex(&self) -> String {
        let mut s = String::with_capacity(64);
        for b in self.0 {
            s.push(char::from_digit((b >> 4) as u32, 16).unwrap());
            s.push(char::from_digit((b & 15) as u32, 16).unwrap());
        }
        s
    }

    /// Hashes everything `reader` yields; returns the hash and the byte count.
    pub fn of_reader<R: Read>(mut reader: R) -> io::Result<(ContentHash, u64)> {
        let mut hasher = Hasher::new();
        let mut buf = vec![0u8; 256 * 1024];
        loop {
            let n = match reader.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            hasher.update(&buf[..n]);
        }
        Ok(hasher.finish())
    }

    pub fn of_bytes(data: &[u8]) -> ContentHash {
        ContentHash(*blake3::hash(data).as_bytes())
    }
}

impl FromStr for ContentHash {
    type Err = BadHash;

    /// Accepts exactly 64 hex digits, either case.
    fn from_str(s: &str) -> Result<Self, BadHash> {
        let s = s.as_bytes();
        if s.len() != 64 {
            return Err(BadHash);
        }
        let mut out = [0u8; 32];
        for (i, pair) in s.chunks(2).enumerate() {
            let hi = (pair[0] as char).to_digit(16).ok_or(BadHash)?;
            let lo = (pair[1] as char).to_digit(16).ok_or(BadHash)?;
            out[i] = (hi * 16 + lo) as u8;
        }
        Ok(ContentHash(out))
    }
}

impl fmt::Display for ContentHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl fmt::Debug for ContentHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ContentHash({})", self.to_hex())
    }
}

impl serde::Serialize for ContentHash {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_hex())
    }
}

impl<'de> serde::Deserialize<'de> for ContentHash {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// Incremental hashing that also counts bytes.
pub struct Hasher {
    inner: blake3::Hasher,
    len: u64,
}

impl Hasher {
    pub fn new() -> Self {
        Hasher {
            inner: blake3::Hasher::new(),
            len: 0,
        }
    }

    pub fn update(&mut self, data: &[u8]) {
        self.inner.update(data);
        self.len += data.len() as u64;
    }

    pub fn len(&self) -> u64 {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn finish(&self) -> (ContentHash, u64) {
        (ContentHash(*self.inner.finalize().as_bytes()), self.len)
    }
}

impl Default for Hasher {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_round_trip_and_known_value() {
        let h = ContentHash::of_bytes(b"");
        assert_eq!(
            h.to_hex(),
            "af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262"
        );
        assert_eq!(h.to_hex().parse::<ContentHash>().unwrap(), h);
        assert_eq!(h.to_hex().to_uppercase().parse::<ContentHash>().unwrap(), h);
    }

    #[test]
    fn rejects_bad_hex() {
        assert_eq!("abc".parse::<ContentHash>(), Err(BadHash));
        assert_eq!("g".repeat(64).parse::<ContentHash>(), Err(BadHash));
        assert_eq!("é".repeat(32).parse::<ContentHash>(), Err(BadHash));
    }

    #[test]
    fn reader_hash_matches_bytes_hash() {
        let data = vec![7u8; 1_000_003];
        let (h, n) = ContentHash::of_reader(&data[..]).unwrap();
        assert_eq!(n, data.len() as u64);
        assert_eq!(h, ContentHash::of_bytes(&data));
    }
}
