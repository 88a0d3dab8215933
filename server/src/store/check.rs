//! Verifying: every blob the catalog knows, present, of the right size,
//! and (with `read_data`) hashing to its name; and the store's figures.

use super::*;

/// A stored content that is not what the catalog says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlobProblem {
    pub hash: ContentHash,
    pub problem: String,
}

/// What `check` looked at.
#[derive(Debug, Default, Clone)]
pub struct CheckReport {
    pub blobs: usize,
    pub bytes_read: u64,
    pub problems: Vec<BlobProblem>,
    /// (key, path, version number) of every version whose content has a
    /// problem.
    pub affected: Vec<(String, String, u64, ContentHash)>,
}

impl DataManager {
    /// Verifies every blob the catalog knows: present, of the right stored
    /// size, and with `read_data` its content (packed ones decompressed)
    /// hashes to its name. Then names every version that a problem affects.
    pub fn check(&self, read_data: bool) -> CheckReport {
        let blobs: Vec<(ContentHash, catalog::BlobInfo)> =
            self.read().blobs().map(|(h, b)| (*h, b.clone())).collect();
        let mut report = CheckReport {
            blobs: blobs.len(),
            ..CheckReport::default()
        };
        for (hash, info) in &blobs {
            let problem = match info.form {
                BlobForm::Missing => Some("missing from disk".to_string()),
                form => {
                    let expected = match form {
                        BlobForm::Packed => info.packed_size,
                        _ => Some(info.size),
                    };
                    match self.blobs.stored_len(hash, form) {
                        Err(e) => Some(format!("cannot be read: {e}")),
                        Ok(len) if expected.is_some_and(|e| e != len) => Some(format!(
                            "holds {len} bytes on disk, the catalog says {}",
                            expected.unwrap_or(0)
                        )),
                        Ok(_) if read_data => {
                            let read = self.blobs.verify(hash, form, info.size);
                            match read {
                                Err(e) => Some(format!("cannot be read: {e}")),
                                Ok((actual, n)) => {
                                    report.bytes_read += n;
                                    if actual != *hash || n != info.size {
                                        Some(format!("corrupt: its {n} bytes hash to {actual}"))
                                    } else {
                                        None
                                    }
                                }
                            }
                        }
                        Ok(_) => None,
                    }
                }
            };
            if let Some(problem) = problem {
                report.problems.push(BlobProblem {
                    hash: *hash,
                    problem,
                });
            }
        }
        let bad: std::collections::HashSet<ContentHash> =
            report.problems.iter().map(|p| p.hash).collect();
        if !bad.is_empty() {
            let cat = self.read();
            for (key, path, versions) in cat.files() {
                for v in versions
                    .iter()
                    .filter(|v| !v.deleted && bad.contains(&v.hash))
                {
                    report
                        .affected
                        .push((key.to_string(), path.to_string(), v.n, v.hash));
                }
            }
        }
        report
    }

    pub fn stats(&self) -> Stats {
        let cat = self.read();
        let mut s = Stats {
            files: cat.file_count(),
            ..Stats::default()
        };
        for (_, b) in cat.blobs() {
            s.blobs += 1;
            s.bytes_original += b.size;
            s.bytes_stored += b.stored_bytes();
            match b.form {
                BlobForm::Hot => s.hot += 1,
                BlobForm::Packed => s.packed += 1,
                BlobForm::Missing => s.missing += 1,
            }
        }
        s
    }
}
