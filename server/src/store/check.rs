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
        let blobs: Vec<(ContentHash, catalog::BlobInfo)> = self.read().blobs().collect();
        let mut report = CheckReport {
            blobs: blobs.len(),
            ..CheckReport::default()
        };
        // Contents kept as chunks, with the chunks they name.
        let mut manifests: Vec<(ContentHash, Vec<ContentHash>)> = Vec::new();
        for (hash, info) in &blobs {
            let problem = match info.form {
                BlobForm::Missing if info.chunked => {
                    Some("its manifest is missing from disk".to_string())
                }
                BlobForm::Missing => Some("missing from disk".to_string()),
                _ if info.chunked => match self.blobs.read_manifest(hash) {
                    Err(e) => Some(format!("its manifest cannot be read: {e}")),
                    Ok(m) if m.size != info.size => Some(format!(
                        "its manifest is of {} bytes, the catalog says {}",
                        m.size, info.size
                    )),
                    Ok(m) => {
                        let cat = self.read();
                        let lost = m.chunks.iter().find(|(c, len)| {
                            !cat.blob(c)
                                .is_some_and(|b| !b.chunked && b.size == *len as u64)
                        });
                        let problem = lost.map(|(c, _)| format!("its manifest names chunk {c}, which the store does not hold at that size"));
                        manifests.push((*hash, m.chunks.into_iter().map(|(c, _)| c).collect()));
                        problem
                    }
                },
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
        let mut bad: std::collections::HashSet<ContentHash> =
            report.problems.iter().map(|p| p.hash).collect();
        // A damaged chunk damages every content naming it.
        for (content, chunks) in &manifests {
            if chunks.iter().any(|c| bad.contains(c)) {
                bad.insert(*content);
            }
        }
        if !bad.is_empty() {
            let cat = self.read();
            cat.for_each_file(|key, path, versions| {
                for v in versions
                    .iter()
                    .filter(|v| !v.deleted && bad.contains(&v.hash))
                {
                    report
                        .affected
                        .push((key.to_string(), path.to_string(), v.n, v.hash));
                }
            });
        }
        report
    }

    /// The catalog's totals (kept as records apply).
    pub fn stats(&self) -> Stats {
        let cat = self.read();
        let t = cat.blob_totals();
        Stats {
            files: cat.file_count(),
            blobs: t.blobs,
            hot: t.hot,
            packed: t.packed,
            missing: t.missing,
            bytes_original: t.bytes_original,
            bytes_stored: t.bytes_stored,
        }
    }
}
