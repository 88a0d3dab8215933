//! With content in a bucket, the catalog goes there too, so that a new
//! server given only the bucket rebuilds it (`nimbus-server recover`).
//!
//! Under `PREFIX/meta/` in the bucket:
//! - `snapshot-<seq>`: each compacted snapshot, the bytes of
//!   `catalog/snapshot.json` (sealed when the data directory is);
//! - `journal-<first>-<last>`: journal lines `first..=last`, as they are in
//!   `catalog/journal.jsonl` (each sealed when encrypted), shipped at least
//!   every `--ship-interval` seconds and at shutdown;
//! - `accounts.json`, `keys.json` (the wrapped key slots), when they change.
//!
//! Sequence numbers are zero-padded to 20 digits so names sort by them.
//! A new snapshot makes the segments it covers, and older snapshots,
//! unnecessary: they are removed after it is stored. What a rebuilt server
//! can lack: the records appended after the last segment shipped (at most
//! one interval's), whose content is in the bucket but unnamed (the next
//! start of the rebuilt server removes it as unreferenced).
//!
//! Locks: the compaction lock for the whole of a shipment (no snapshot is
//! being written meanwhile), the journal lock only while the journal files
//! are read (so only fsync'd, complete lines are shipped).

use super::backend::{self, s3::S3Options, Backend};
use super::*;
use nimbus_common::durable;
use std::fs::{self, File};
use std::io::{BufRead, Write};
use std::sync::Arc;

const SNAPSHOT: &str = "snapshot-";
const SEGMENT: &str = "journal-";
/// Small files of the data directory shipped beside the catalog.
const SIDE_FILES: [&str; 2] = ["accounts.json", "keys.json"];

/// What of the catalog the bucket holds.
#[derive(Debug, Default)]
pub struct Shipped {
    /// Listed from the bucket once.
    known: bool,
    snapshot: Option<u64>,
    /// Every record up to this one is in the bucket.
    seq: u64,
    /// BLAKE3 of each side file as last shipped.
    side: [Option<[u8; 32]>; 2],
}

/// What one shipment stored.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct ShipReport {
    pub snapshot: Option<u64>,
    /// First and last sequence number of the segment shipped.
    pub segment: Option<(u64, u64)>,
    pub side_files: usize,
    pub removed: usize,
}

fn snapshot_key(seq: u64) -> String {
    format!("{SNAPSHOT}{seq:020}")
}

fn segment_key(first: u64, last: u64) -> String {
    format!("{SEGMENT}{first:020}-{last:020}")
}

/// What a `meta/` key names.
#[derive(Debug, PartialEq, Eq, PartialOrd, Ord)]
enum MetaKey {
    Snapshot(u64),
    Segment(u64, u64),
}

fn parse_key(key: &str) -> Option<MetaKey> {
    if let Some(n) = key.strip_prefix(SNAPSHOT) {
        return n.parse().ok().map(MetaKey::Snapshot);
    }
    let (a, b) = key.strip_prefix(SEGMENT)?.split_once('-')?;
    Some(MetaKey::Segment(a.parse().ok()?, b.parse().ok()?))
}

fn list_meta(meta: &dyn Backend) -> io::Result<Vec<MetaKey>> {
    let mut keys = Vec::new();
    meta.list(&mut |k| keys.extend(parse_key(k)))?;
    keys.sort();
    Ok(keys)
}

impl DataManager {
    /// Connects the bucket's `meta/` for shipping the catalog.
    pub(super) fn set_meta(&mut self, opts: &S3Options) -> io::Result<()> {
        self.meta = Some(Arc::new(backend::s3::S3Backend::connect(
            opts.clone(),
            "meta/",
        )?));
        Ok(())
    }

    /// Whether the catalog is shipped (content in a bucket).
    pub fn ships_catalog(&self) -> bool {
        self.meta.is_some()
    }

    /// A new staging file in `DATA/tmp` for what is shipped.
    fn staging_path(&self, what: &str) -> PathBuf {
        self.dir.join("tmp").join(format!(
            "ship-{what}-{}{}",
            std::process::id(),
            durable::TEMP_SUFFIX
        ))
    }

    fn staged_copy(&self, bytes: &[u8], what: &str) -> io::Result<PathBuf> {
        let path = self.staging_path(what);
        let mut f = File::create(&path)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        Ok(path)
    }

    /// Puts `from` (a staging file) as `key` in `meta`; removes it either way.
    fn ship_file(meta: &dyn Backend, from: &Path, key: &str) -> io::Result<()> {
        let r = meta.put(from, key, backend::Durability::Now);
        let _ = fs::remove_file(from);
        r
    }

    /// Ships what the bucket lacks of the catalog: a newer snapshot, the
    /// journal lines after what it holds, changed side files. A no-op
    /// without a bucket.
    pub fn ship_catalog(&self) -> io::Result<ShipReport> {
        let Some(meta) = self.meta.as_deref() else {
            return Ok(ShipReport::default());
        };
        let _one = self.lock_compaction();
        let mut st = self.ship.lock().unwrap_or_else(|e| e.into_inner());
        let mut report = ShipReport::default();
        if !st.known {
            for k in list_meta(meta)? {
                match k {
                    MetaKey::Snapshot(n) => {
                        st.snapshot = Some(n);
                        st.seq = st.seq.max(n);
                    }
                    MetaKey::Segment(_, last) => st.seq = st.seq.max(last),
                }
            }
            st.known = true;
        }
        let cat_dir = self.dir.join("catalog");

        // A snapshot newer than the bucket's.
        let snap_seq = self.snapshot_seq.load(std::sync::atomic::Ordering::SeqCst);
        let snap_path = journal::snapshot_file(&cat_dir);
        if st.snapshot.is_none_or(|s| s < snap_seq) && snap_path.exists() {
            // A second name for the snapshot (the put consumes it), not a
            // copy in memory: it grows with the catalog.
            let tmp = self.staging_path("snapshot");
            let _ = fs::remove_file(&tmp);
            if fs::hard_link(&snap_path, &tmp).is_err() {
                fs::copy(&snap_path, &tmp)?;
            }
            Self::ship_file(meta, &tmp, &snapshot_key(snap_seq))?;
            st.snapshot = Some(snap_seq);
            st.seq = st.seq.max(snap_seq);
            report.snapshot = Some(snap_seq);
        }

        // The journal lines after what the bucket holds: read under the
        // journal lock, so only complete, fsync'd lines; written straight
        // to a staging file, not gathered in memory.
        let segment = self.staging_path("journal");
        let mut lines = io::BufWriter::new(File::create(&segment)?);
        let (mut first, mut last) = (None, 0u64);
        {
            let _journal = self.lock_journal();
            for path in journal::journal_files(&cat_dir) {
                let file = match File::open(&path) {
                    Ok(f) => f,
                    Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                    Err(e) => return Err(e),
                };
                let mut r = io::BufReader::with_capacity(1 << 20, file);
                let mut line = Vec::new();
                loop {
                    line.clear();
                    if r.read_until(b'\n', &mut line)? == 0 || line.last() != Some(&b'\n') {
                        break;
                    }
                    let Some(seq) = journal::line_seq(&self.vault, &line[..line.len() - 1]) else {
                        continue;
                    };
                    if seq > st.seq && seq > last {
                        first.get_or_insert(seq);
                        last = seq;
                        lines.write_all(&line)?;
                    }
                }
            }
        }
        let lines = lines.into_inner().map_err(|e| e.into_error())?;
        if let Some(first) = first {
            lines.sync_all()?;
            drop(lines);
            Self::ship_file(meta, &segment, &segment_key(first, last))?;
            st.seq = last;
            report.segment = Some((first, last));
        } else {
            drop(lines);
            let _ = fs::remove_file(&segment);
        }

        // Side files that changed.
        for (i, name) in SIDE_FILES.iter().enumerate() {
            let bytes = match fs::read(self.dir.join(name)) {
                Ok(b) => b,
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err(e),
            };
            let hash = *blake3::hash(&bytes).as_bytes();
            if st.side[i] != Some(hash) {
                let tmp = self.staged_copy(&bytes, "side")?;
                Self::ship_file(meta, &tmp, name)?;
                st.side[i] = Some(hash);
                report.side_files += 1;
            }
        }

        // What the new snapshot covers.
        if let Some(snap) = report.snapshot {
            for k in list_meta(meta)? {
                let key = match k {
                    MetaKey::Snapshot(n) if n < snap => snapshot_key(n),
                    MetaKey::Segment(a, b) if b <= snap => segment_key(a, b),
                    _ => continue,
                };
                meta.remove(&key)?;
                report.removed += 1;
            }
        }
        Ok(report)
    }
}

/// What [`recover_catalog`] rebuilt.
#[derive(Debug)]
pub struct Recovered {
    pub snapshot: Option<u64>,
    pub segments: usize,
    /// The last record recovered.
    pub seq: u64,
    /// A gap in the shipped segments: records after it were not used.
    pub gap_after: Option<u64>,
}

/// Rebuilds the catalog of an empty data directory `data` from the
/// bucket's `meta/`: the newest snapshot, the journal segments after it,
/// the accounts and key slots; then marks the directory as the bucket's.
/// The server's next start loads it as it would its own.
pub fn recover_catalog(data: &Path, opts: &S3Options) -> io::Result<Recovered> {
    let cat_dir = data.join("catalog");
    let holds = |p: PathBuf| fs::metadata(p).is_ok_and(|m| m.len() > 0);
    let takeover = data.join(backend::TAKEOVER);
    // A recover that did not finish is done again, over what it wrote.
    let unfinished = takeover.exists();
    if !unfinished
        && (holds(journal::snapshot_file(&cat_dir))
            || journal::journal_files(&cat_dir).into_iter().any(holds))
    {
        return Err(io::Error::new(
            io::ErrorKind::AlreadyExists,
            format!(
                "{} already holds a catalog; recover into an empty data directory",
                data.display()
            ),
        ));
    }
    let meta = backend::s3::S3Backend::connect(opts.clone(), "meta/")?;
    if !unfinished {
        fs::create_dir_all(data)?;
        let id = backend::new_owner_id();
        durable::write_atomic(&takeover, |w| w.write_all(id.as_bytes()))?;
    }
    let keys = list_meta(&meta)?;
    let snapshot = keys
        .iter()
        .filter_map(|k| match k {
            MetaKey::Snapshot(n) => Some(*n),
            _ => None,
        })
        .max();
    let mut segments: Vec<(u64, u64)> = keys
        .iter()
        .filter_map(|k| match k {
            MetaKey::Segment(a, b) if *b > snapshot.unwrap_or(0) => Some((*a, *b)),
            _ => None,
        })
        .collect();
    segments.sort();
    if snapshot.is_none() && segments.is_empty() {
        return Err(io::Error::new(
            io::ErrorKind::NotFound,
            format!("{} holds no catalog to recover from", opts.url()),
        ));
    }
    fs::create_dir_all(&cat_dir)?;
    if let Some(n) = snapshot {
        let mut from = meta.open(&snapshot_key(n))?;
        durable::write_atomic(&journal::snapshot_file(&cat_dir), |w| {
            io::copy(&mut from, w).map(drop)
        })?;
    }
    let mut seq = snapshot.unwrap_or(0);
    let mut used = 0;
    let mut gap_after = None;
    let journal_path = journal::journal_files(&cat_dir)[1].clone();
    durable::write_atomic(&journal_path, |w| {
        for (a, b) in &segments {
            if *a > seq + 1 {
                gap_after = Some(seq);
                break;
            }
            // Streamed: a segment is as long as the journal grew between
            // two shipments (long, after an outage of the store).
            io::copy(&mut meta.open(&segment_key(*a, *b))?, w)?;
            seq = seq.max(*b);
            used += 1;
        }
        Ok(())
    })?;
    for name in SIDE_FILES {
        match meta.read_all(name) {
            Ok(bytes) => durable::write_atomic_private(&data.join(name), |w| w.write_all(&bytes))?,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
    }
    backend::finish_takeover(data, opts)?;
    backend::open_configured(data, Some(opts))?;
    Ok(Recovered {
        snapshot,
        segments: used,
        seq,
        gap_after,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn meta_keys_sort_by_sequence() {
        assert_eq!(parse_key(&snapshot_key(42)), Some(MetaKey::Snapshot(42)));
        assert_eq!(
            parse_key(&segment_key(7, 1234)),
            Some(MetaKey::Segment(7, 1234))
        );
        assert!(snapshot_key(9) < snapshot_key(10));
        assert!(segment_key(99, 100) < segment_key(101, 101));
        assert_eq!(parse_key("accounts.json"), None);
        assert_eq!(parse_key("journal-x-1"), None);
    }
}
