//! Catalog persistence: `catalog/snapshot.json` plus the append-only
//! `catalog/journal.jsonl`, one [`Record`] per line with a sequence number.
//!
//! What survives a crash: every record whose append returned `Ok` with
//! `durable = true` (it was fsync'd before the caller acknowledged anything).
//! The snapshot is replaced atomically and names the last sequence number it
//! contains, so records it already holds are skipped on replay even when a
//! crash came between writing the snapshot and truncating the journal. A torn
//! last line (a crash mid-append) is cut off at start-up; a damaged line
//! followed by valid ones is corruption and start-up refuses to guess.
//!
//! Encrypted (see `vault`), the snapshot is one sealed object and each
//! journal line is a sealed record in base64; a complete line that does not
//! open is damage, never a torn write, and start-up names it.

use super::catalog::{Catalog, Record};
use super::snapshot::{self, SnapshotError};
use crate::vault::{Obj, Vault};
use nimbus_common::durable;
use serde::{Deserialize, Serialize};
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufRead, BufReader, Write};
use std::path::{Path, PathBuf};

const SNAPSHOT: &str = "snapshot.json";
const JOURNAL: &str = "journal.jsonl";
/// The journal as it stood when a snapshot began to be written in slices
/// (see [`Journal::rotate`]); gone once that snapshot is in place.
const PREV: &str = "journal.prev.jsonl";

#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("cannot read the catalog in {dir}: {source}")]
    Io { dir: PathBuf, source: io::Error },
    #[error("the catalog snapshot {path} is not valid ({source}); restore it from a copy or move it away to rebuild from the journal alone")]
    Snapshot {
        path: PathBuf,
        source: SnapshotError,
    },
    #[error("journal {path} line {line} is damaged but later lines are valid: this is not a torn write; keep a copy of the file and remove the damaged line to start")]
    Corrupt { path: PathBuf, line: usize },
}

#[derive(Serialize, Deserialize)]
struct JournalLine {
    seq: u64,
    #[serde(flatten)]
    rec: Record,
}

/// The open journal. Appends go to the end; every durable append is fsync'd.
pub struct Journal {
    dir: PathBuf,
    vault: Vault,
    file: File,
    len: u64,
    next_seq: u64,
    /// Records appended since the last snapshot.
    pub since_snapshot: u64,
    /// Set when an append failed and the file could not be cut back: later
    /// appends would follow a damaged line, so none are allowed.
    poisoned: bool,
}

/// The catalog's files in `dir`, for shipping them elsewhere: the
/// snapshot, then the journals in replay order.
pub fn snapshot_file(dir: &Path) -> PathBuf {
    dir.join(SNAPSHOT)
}

/// The journals in replay order (the one a sliced snapshot set aside,
/// then the live one).
pub fn journal_files(dir: &Path) -> [PathBuf; 2] {
    [dir.join(PREV), dir.join(JOURNAL)]
}

/// The sequence number of one complete journal line (without its
/// newline); None if it does not parse (or open).
pub fn line_seq(vault: &Vault, line: &[u8]) -> Option<u64> {
    #[derive(Deserialize)]
    struct Seq {
        seq: u64,
    }
    let json = vault.open_line(Obj::Journal, line)?;
    serde_json::from_slice::<Seq>(&json).ok().map(|s| s.seq)
}

/// Summary of what [`load`] found, for the start-up log.
pub struct LoadReport {
    pub replayed: u64,
    pub torn_bytes: u64,
    /// The sequence number the snapshot was written at (0: none).
    pub snapshot_seq: u64,
    /// Seconds spent reading the snapshot, replaying the journal, and
    /// deriving what is not stored (owners).
    pub times: [f64; 3],
}

/// Loads the catalog from `dir` (created if missing) and opens the journal.
pub fn load(dir: &Path, vault: &Vault) -> Result<(Catalog, Journal, LoadReport), LoadError> {
    let io_err = |source| LoadError::Io {
        dir: dir.to_path_buf(),
        source,
    };
    fs::create_dir_all(dir).map_err(io_err)?;
    remove_temp_files(dir).map_err(io_err)?;

    let snap_path = dir.join(SNAPSHOT);
    let started = std::time::Instant::now();
    let mut catalog = Catalog::default();
    match File::open(&snap_path) {
        Ok(f) => {
            let opened = vault
                .reader(f, Obj::Snapshot)
                .map_err(|e| LoadError::Snapshot {
                    path: snap_path.clone(),
                    source: SnapshotError::Io(e),
                })?;
            let reader = BufReader::with_capacity(1 << 20, opened);
            catalog.seq = snapshot::read(reader, &mut catalog).map_err(|e| match e {
                SnapshotError::Io(source) if source.kind() == io::ErrorKind::InvalidData => {
                    LoadError::Snapshot {
                        path: snap_path.clone(),
                        source: SnapshotError::Io(source),
                    }
                }
                SnapshotError::Io(source) => LoadError::Io {
                    dir: dir.to_path_buf(),
                    source,
                },
                e => LoadError::Snapshot {
                    path: snap_path.clone(),
                    source: e,
                },
            })?;
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(io_err(e)),
    }

    let snapshot_secs = started.elapsed().as_secs_f64();
    let snapshot_seq = catalog.seq;
    let journal_path = dir.join(JOURNAL);
    // A snapshot written in slices did not finish (or its old journal was
    // not yet removed): the records before it come first.
    let (_, prev_replayed, prev_present, _) = replay(&dir.join(PREV), &mut catalog, vault)?;
    let (good_len, replayed, since_snapshot, total_len) =
        replay(&journal_path, &mut catalog, vault)?;
    let (replayed, mut since_snapshot) = (replayed + prev_replayed, since_snapshot + prev_present);
    if dir.join(PREV).exists() {
        // The next compaction (at the latest the next clean stop) removes it.
        since_snapshot = since_snapshot.max(1);
    }
    let replay_secs = started.elapsed().as_secs_f64() - snapshot_secs;
    // Replayed `Forget` records may have left users owning blobs they no
    // longer reference, and dropped blobs no tombstone names.
    // (A snapshot alone gives owners exactly: each live version adds its.)
    if replayed > 0 {
        catalog.rebuild_owners();
    }
    catalog.release_dropped();
    let derive_secs = started.elapsed().as_secs_f64() - snapshot_secs - replay_secs;
    let file = OpenOptions::new()
        .create(true)
        .append(true)
        .open(&journal_path)
        .map_err(io_err)?;
    if good_len < total_len {
        file.set_len(good_len).map_err(io_err)?;
        file.sync_all().map_err(io_err)?;
    }
    durable::sync_dir(dir).map_err(io_err)?;
    let journal = Journal {
        dir: dir.to_path_buf(),
        vault: vault.clone(),
        file,
        len: good_len,
        next_seq: catalog.seq + 1,
        since_snapshot,
        poisoned: false,
    };
    Ok((
        catalog,
        journal,
        LoadReport {
            replayed,
            torn_bytes: total_len - good_len,
            snapshot_seq,
            times: [snapshot_secs, replay_secs, derive_secs],
        },
    ))
}

/// Replays the journal into `catalog`. Returns (length of the valid prefix,
/// records applied, records present, total length).
fn replay(
    path: &Path,
    catalog: &mut Catalog,
    vault: &Vault,
) -> Result<(u64, u64, u64, u64), LoadError> {
    let io_err = |source| LoadError::Io {
        dir: path.parent().unwrap_or(path).to_path_buf(),
        source,
    };
    let file = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok((0, 0, 0, 0)),
        Err(e) => return Err(io_err(e)),
    };
    let total = file.metadata().map_err(io_err)?.len();
    let mut reader = BufReader::with_capacity(1 << 20, file);
    let mut line = Vec::new();
    let mut offset = 0u64;
    let mut good_len = 0u64;
    let mut applied = 0u64;
    let mut present = 0u64;
    let mut first_bad: Option<usize> = None;
    let mut line_no = 0usize;
    loop {
        line.clear();
        let n = reader.read_until(b'\n', &mut line).map_err(io_err)?;
        if n == 0 {
            break;
        }
        line_no += 1;
        offset += n as u64;
        let complete = line.last() == Some(&b'\n');
        let parsed = if !complete {
            None
        } else if vault.is_sealed() {
            let json = vault.open_line(Obj::Journal, &line[..line.len() - 1]);
            match json.and_then(|j| serde_json::from_slice::<JournalLine>(&j).ok()) {
                Some(jl) => Some(jl),
                // A sealed line is written whole with its newline: one that
                // ends but does not open was damaged after it was written.
                None => {
                    return Err(LoadError::Corrupt {
                        path: path.to_path_buf(),
                        line: line_no,
                    })
                }
            }
        } else {
            serde_json::from_slice::<JournalLine>(&line).ok()
        };
        match parsed {
            Some(jl) => {
                if let Some(bad) = first_bad {
                    return Err(LoadError::Corrupt {
                        path: path.to_path_buf(),
                        line: bad,
                    });
                }
                present += 1;
                good_len = offset;
                if jl.seq > catalog.seq {
                    catalog.apply(&jl.rec);
                    catalog.seq = jl.seq;
                    applied += 1;
                }
            }
            None => {
                first_bad.get_or_insert(line_no);
            }
        }
    }
    Ok((good_len, applied, present, total))
}

fn remove_temp_files(dir: &Path) -> io::Result<()> {
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        if entry
            .file_name()
            .to_string_lossy()
            .ends_with(durable::TEMP_SUFFIX)
        {
            fs::remove_file(entry.path())?;
        }
    }
    Ok(())
}

impl Journal {
    /// Appends one record. With `durable`, returns only after the record is
    /// on stable storage. On failure nothing of the record stays in the file.
    pub fn append(&mut self, rec: &Record, durable: bool) -> io::Result<u64> {
        self.write_lines(std::slice::from_ref(rec), durable)
    }

    /// Appends `recs` and makes them durable with one fdatasync; returns the
    /// sequence number of the last. On failure none of them stays.
    pub fn append_all(&mut self, recs: &[Record]) -> io::Result<u64> {
        self.write_lines(recs, true)
    }

    fn write_lines(&mut self, recs: &[Record], durable: bool) -> io::Result<u64> {
        if self.poisoned {
            return Err(io::Error::other(
                "the catalog journal could not be repaired after a failed write; restart the server",
            ));
        }
        let mut lines = Vec::new();
        for (i, rec) in recs.iter().enumerate() {
            let line = JournalLine {
                seq: self.next_seq + i as u64,
                rec: rec.clone(),
            };
            if self.vault.is_sealed() {
                let json = serde_json::to_vec(&line).map_err(io::Error::other)?;
                lines.extend_from_slice(&self.vault.seal_line(Obj::Journal, &json));
            } else {
                serde_json::to_writer(&mut lines, &line).map_err(io::Error::other)?;
            }
            lines.push(b'\n');
        }
        let result = self.file.write_all(&lines).and_then(|()| {
            if durable {
                self.file.sync_data()
            } else {
                Ok(())
            }
        });
        match result {
            Ok(()) => {
                self.len += lines.len() as u64;
                self.next_seq += recs.len() as u64;
                self.since_snapshot += recs.len() as u64;
                Ok(self.next_seq - 1)
            }
            Err(e) => {
                // Cut the partial lines off, so the next append does not
                // follow garbage (which replay would call corruption).
                if self
                    .file
                    .set_len(self.len)
                    .and_then(|()| self.file.sync_data())
                    .is_err()
                {
                    self.poisoned = true;
                }
                Err(e)
            }
        }
    }

    /// Writes a new snapshot of `catalog` (which must include every record
    /// appended so far) and empties the journal.
    pub fn compact(&mut self, catalog: &Catalog) -> io::Result<()> {
        let path = self.dir.join(SNAPSHOT);
        self.vault
            .write_atomic(&path, Obj::Snapshot, false, |mut w| {
                snapshot::write(&mut w, catalog)
            })?;
        self.file.set_len(0)?;
        self.file.sync_all()?;
        self.len = 0;
        self.since_snapshot = 0;
        self.remove_prev()
    }

    /// Where a snapshot goes.
    pub fn snapshot_path(&self) -> PathBuf {
        self.dir.join(SNAPSHOT)
    }

    /// Starts a snapshot written in slices: what the journal holds moves to
    /// `journal.prev.jsonl` (made durable first) and appends go on in an
    /// empty journal. Returns the last sequence number before the snapshot:
    /// replay after it applies every later record. A crash at any point
    /// leaves the old snapshot and both journals, which load.
    pub fn rotate(&mut self) -> io::Result<u64> {
        self.file.sync_data()?;
        let path = self.dir.join(JOURNAL);
        let prev = self.dir.join(PREV);
        if prev.exists() {
            // An earlier snapshot did not finish: its journal is still
            // needed, so this one's records join it (a crash mid-copy
            // leaves them in both, which replay skips by number).
            let mut to = OpenOptions::new().append(true).open(&prev)?;
            io::copy(&mut File::open(&path)?, &mut to)?;
            to.sync_all()?;
            self.file.set_len(0)?;
            self.file.sync_all()?;
        } else {
            durable::rename_durable(&path, &prev)?;
            // From here the open file is the old journal: appends must not
            // go on into it (it is removed when the snapshot is in place).
            match OpenOptions::new().create(true).append(true).open(&path) {
                Ok(f) => self.file = f,
                Err(e) => {
                    self.poisoned = true;
                    return Err(e);
                }
            }
            if let Err(e) = durable::sync_dir(&self.dir) {
                self.poisoned = true;
                return Err(e);
            }
        }
        self.len = 0;
        let seq = self.next_seq - 1;
        self.since_snapshot = 0;
        Ok(seq)
    }

    /// Ends a snapshot begun by [`Self::rotate`], now durable in place.
    pub fn finish_rotation(&mut self) -> io::Result<()> {
        self.remove_prev()
    }

    fn remove_prev(&mut self) -> io::Result<()> {
        match fs::remove_file(self.dir.join(PREV)) {
            Ok(()) => durable::sync_dir(&self.dir),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::catalog::BlobForm;
    use nimbus_common::hash::ContentHash;

    fn rec(path: &str, n: u8) -> Record {
        Record::Version {
            key: "pc".into(),
            path: path.into(),
            hash: ContentHash::from_bytes([n; 32]),
            size: n as u64,
            mtime: 1,
            at: 2,
            chunked: false,
            n: None,
        }
    }

    fn append(j: &mut Journal, c: &mut Catalog, r: Record) {
        let seq = j.append(&r, true).unwrap();
        c.apply(&r);
        c.seq = seq;
    }

    #[test]
    fn a_format_1_snapshot_of_the_previous_release_loads() {
        let dir = tempfile::tempdir().unwrap();
        let a = "a".repeat(64);
        let b = "b".repeat(64);
        let doc = format!(
            r#"{{"format":1,"seq":3,"files":[{{"client":"ann/pc","path":"x/a.txt","versions":[{{"n":1,"hash":"{a}","size":3,"mtime":1,"backed_up_at":2}},{{"n":2,"hash":"{a}","size":3,"mtime":1,"backed_up_at":5,"deleted":true}}]}},
{{"client":"ann/pc","path":"b.bin","versions":[{{"n":1,"hash":"{b}","size":9,"mtime":1,"backed_up_at":4}}]}}],"blobs":[{{"hash":"{a}","size":3,"form":"packed","packed_size":2,"incompressible":false,"last_access":2}},
{{"hash":"{b}","size":9,"form":"hot","incompressible":true,"last_access":4,"chunked":true,"holders":["ann"]}}]}}
"#
        );
        fs::write(dir.path().join(SNAPSHOT), doc).unwrap();
        let (c, mut j, rep) = load(dir.path(), &Vault::plain()).unwrap();
        assert_eq!((c.seq, rep.replayed), (3, 0));
        assert_eq!(c.versions("ann/pc", "x/a.txt").unwrap().len(), 2);
        assert!(c.latest("ann/pc", "x/a.txt").unwrap().version.deleted);
        let pa = c.blob(&a.parse().unwrap()).unwrap();
        assert_eq!((pa.form, pa.packed_size), (BlobForm::Packed, Some(2)));
        let hb: ContentHash = b.parse().unwrap();
        let bb = c.blob(&hb).unwrap();
        assert!(bb.chunked && bb.incompressible && c.held_by(&hb, "ann"));
        assert_eq!(c.folder_totals("ann/pc", "").unwrap().files, 1);
        // The next compaction writes the current format, which loads too.
        j.compact(&c).unwrap();
        let text = fs::read_to_string(dir.path().join(SNAPSHOT)).unwrap();
        assert!(text.starts_with("{\"format\":2,"));
        let (c2, _, _) = load(dir.path(), &Vault::plain()).unwrap();
        assert_eq!(c2.tree("", None, true).len(), 2);
        assert_eq!(c2.blob(&hb), c.blob(&hb));
    }

    #[test]
    fn replay_restores_records() {
        let dir = tempfile::tempdir().unwrap();
        let (mut c, mut j, _) = load(dir.path(), &Vault::plain()).unwrap();
        append(&mut j, &mut c, rec("a", 1));
        append(&mut j, &mut c, rec("a", 2));
        drop(j);
        let (c2, _, rep) = load(dir.path(), &Vault::plain()).unwrap();
        assert_eq!(rep.replayed, 2);
        assert_eq!(c2.versions("pc", "a").unwrap().len(), 2);
        assert_eq!(c2.seq, 2);
    }

    #[test]
    fn torn_tail_is_cut_and_appends_continue() {
        let dir = tempfile::tempdir().unwrap();
        let (mut c, mut j, _) = load(dir.path(), &Vault::plain()).unwrap();
        append(&mut j, &mut c, rec("a", 1));
        drop(j);
        let path = dir.path().join(JOURNAL);
        let good = fs::metadata(&path).unwrap().len();
        // A crash in the middle of the second append.
        let mut f = OpenOptions::new().append(true).open(&path).unwrap();
        f.write_all(br#"{"seq":2,"op":"version","client":"pc","pa"#)
            .unwrap();
        drop(f);
        let (mut c, mut j, rep) = load(dir.path(), &Vault::plain()).unwrap();
        assert_eq!(rep.torn_bytes, 41);
        assert_eq!(fs::metadata(&path).unwrap().len(), good);
        append(&mut j, &mut c, rec("b", 3));
        drop(j);
        let (c, _, rep) = load(dir.path(), &Vault::plain()).unwrap();
        assert_eq!(rep.torn_bytes, 0);
        assert_eq!(c.file_count(), 2);
    }

    #[test]
    fn torn_tail_of_zeros_is_cut() {
        let dir = tempfile::tempdir().unwrap();
        let (mut c, mut j, _) = load(dir.path(), &Vault::plain()).unwrap();
        append(&mut j, &mut c, rec("a", 1));
        drop(j);
        let path = dir.path().join(JOURNAL);
        let mut f = OpenOptions::new().append(true).open(&path).unwrap();
        f.write_all(&[0u8; 300]).unwrap();
        drop(f);
        let (c, _, rep) = load(dir.path(), &Vault::plain()).unwrap();
        assert_eq!(rep.torn_bytes, 300);
        assert_eq!(c.file_count(), 1);
    }

    #[test]
    fn damage_before_valid_lines_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let (mut c, mut j, _) = load(dir.path(), &Vault::plain()).unwrap();
        append(&mut j, &mut c, rec("a", 1));
        append(&mut j, &mut c, rec("b", 2));
        drop(j);
        let path = dir.path().join(JOURNAL);
        let text = fs::read_to_string(&path).unwrap();
        let damaged = text.replacen("\"op\"", "\"o", 1);
        fs::write(&path, damaged).unwrap();
        match load(dir.path(), &Vault::plain()) {
            Err(LoadError::Corrupt { line: 1, .. }) => {}
            other => panic!("expected corruption at line 1, got {:?}", other.err()),
        }
    }

    #[test]
    fn compaction_then_replay_skips_records_already_in_snapshot() {
        let dir = tempfile::tempdir().unwrap();
        let (mut c, mut j, _) = load(dir.path(), &Vault::plain()).unwrap();
        append(&mut j, &mut c, rec("a", 1));
        append(&mut j, &mut c, rec("b", 2));
        // Simulate a crash after the snapshot was written but before the
        // journal was emptied: keep a copy of the journal and put it back.
        let path = dir.path().join(JOURNAL);
        let before = fs::read(&path).unwrap();
        j.compact(&c).unwrap();
        assert_eq!(fs::metadata(&path).unwrap().len(), 0);
        drop(j);
        fs::write(&path, before).unwrap();
        let (mut c, mut j, rep) = load(dir.path(), &Vault::plain()).unwrap();
        assert_eq!(rep.replayed, 0);
        assert_eq!(c.versions("pc", "a").unwrap().len(), 1);
        append(&mut j, &mut c, rec("a", 3));
        drop(j);
        let (c, _, _) = load(dir.path(), &Vault::plain()).unwrap();
        assert_eq!(c.versions("pc", "a").unwrap().len(), 2);
        assert_eq!(c.file_count(), 2);
    }
}
