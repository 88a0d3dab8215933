//! How a file is cut into chunks: one definition for the client, which
//! sends chunks, and the server, which cuts whole uploads the same way, so
//! the two find the same chunks in the same bytes.

use crate::wire::{CHUNK_AVG, CHUNK_MAX, CHUNK_MIN};
use std::io::{self, Read};

/// The chunks of `reader`'s bytes, in order: FastCDC (2020, normalisation
/// level 1) with the protocol's sizes. A file shorter than the minimum is
/// one chunk; an empty one has none.
pub fn chunks<R: Read>(reader: R) -> impl Iterator<Item = io::Result<Vec<u8>>> {
    fastcdc::v2020::StreamCDC::new(
        reader,
        CHUNK_MIN as usize,
        CHUNK_AVG as usize,
        CHUNK_MAX as usize,
    )
    .map(|c| {
        c.map(|c| c.data).map_err(|e| match e {
            fastcdc::v2020::Error::IoError(e) => e,
            other => io::Error::other(other.to_string()),
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_cover_the_bytes_within_the_sizes_and_resync_after_an_insert() {
        let mut x = 7u64;
        let data: Vec<u8> = (0..12 << 20)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect();
        let cut: Vec<Vec<u8>> = chunks(&data[..]).map(Result::unwrap).collect();
        assert_eq!(cut.concat(), data);
        let (min, max) = (CHUNK_MIN as usize, CHUNK_MAX as usize);
        assert!(cut[..cut.len() - 1]
            .iter()
            .all(|c| (min..=max).contains(&c.len())));
        let mut shifted = b"a few bytes more".to_vec();
        shifted.extend_from_slice(&data);
        let again: Vec<Vec<u8>> = chunks(&shifted[..]).map(Result::unwrap).collect();
        let same = again.iter().filter(|c| cut.contains(c)).count();
        assert!(
            same + 2 >= cut.len(),
            "{same} of {} chunks found again",
            cut.len()
        );
        assert_eq!(chunks(&b""[..]).count(), 0);
    }
}
