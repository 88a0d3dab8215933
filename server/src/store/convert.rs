//! `nimbus-server encrypt`: an unencrypted data directory sealed in place.
//!
//! Every step is idempotent and crash-safe, so a conversion killed at any
//! point is finished by running it again; while `DATA/encrypting` exists
//! nothing serves the directory (see `vault::open`).
//! 1. Blobs: for each content the catalog knows, each of its files (hot,
//!    packed, frame index, manifest) is sealed into `tmp/`, fsync'd, renamed
//!    to its keyed name (durably), and only then is the plain file removed.
//!    A rerun finds either the plain file (and seals it again), or both
//!    (and removes the plain one), or the sealed one only. Files no content
//!    names (leftovers of unacknowledged uploads) go.
//! 2. Catalog: the loaded catalog is written sealed to
//!    `catalog/snapshot.sealed` (temp, fsync, rename); then the plain
//!    journals are removed and it is renamed to `snapshot.json`. A rerun that
//!    finds `snapshot.sealed` only finishes those two steps.
//! 3. Resumable uploads: part and state are sealed beside the plain ones
//!    (`.sealed`), the part renamed over the plain part, then the state.
//! 4. The small files (`clients.json`, `accounts.json`, `updates.json`,
//!    `policy.json`, `alerts.json`, `alerts-state.json`, `check.json`,
//!    `history.json`): replaced atomically by sealed copies (a sealed file
//!    is recognised by its header).

use super::blobs::LocalBlobs;
use super::journal;
use super::*;
use crate::vault::seal::{MAGIC, SEG};
use base64::engine::general_purpose::STANDARD_NO_PAD as B64;
use base64::Engine;
use nimbus_common::durable;
use std::collections::HashSet;
use std::fs::{self, File};
use std::io::{BufWriter, Write};

/// While this file is in the data directory, a conversion is under way.
pub const MARKER: &str = "encrypting";

/// What a conversion did.
#[derive(Debug, Default)]
pub struct ConvertReport {
    pub files_sealed: usize,
    pub leftovers_removed: usize,
    pub uploads: usize,
}

fn is_sealed_file(path: &Path) -> io::Result<bool> {
    let mut head = [0u8; 8];
    match File::open(path) {
        Ok(mut f) => Ok(f.read_exact(&mut head).is_ok() && &head == MAGIC),
        Err(e) => Err(e),
    }
}

fn exists(path: &Path) -> bool {
    fs::symlink_metadata(path).is_ok()
}

/// Seals `from` as `obj` into a new temp file in `tmp`; its path.
fn seal_to_temp(vault: &Vault, from: &Path, obj: Obj<'_>, tmp: &Path) -> io::Result<PathBuf> {
    let path = tmp.join(format!(
        "convert-{}{}",
        std::process::id(),
        durable::TEMP_SUFFIX
    ));
    let file = File::create(&path)?;
    let mut w = vault.writer(BufWriter::with_capacity(1 << 20, &file), obj);
    io::copy(
        &mut io::BufReader::with_capacity(1 << 20, File::open(from)?),
        &mut w,
    )?;
    w.finish()?;
    file.sync_all()?;
    Ok(path)
}

/// Converts `data` (its key slots made, the marker in place) to `sealed`.
pub fn encrypt_in_place(data: &Path, sealed: &Vault) -> Result<ConvertReport, OpenError> {
    let io_err = |source| OpenError::Io {
        dir: data.to_path_buf(),
        source,
    };
    let mut report = ConvertReport::default();
    let cat_dir = data.join("catalog");
    fs::create_dir_all(&cat_dir).map_err(io_err)?;
    let staged_snapshot = cat_dir.join("snapshot.sealed");
    let snapshot = cat_dir.join("snapshot.json");
    if exists(&staged_snapshot) {
        finish_catalog(&cat_dir).map_err(io_err)?;
    }
    let catalog_sealed = exists(&snapshot) && is_sealed_file(&snapshot).map_err(io_err)?;
    let load_with = if catalog_sealed {
        sealed.clone()
    } else {
        Vault::plain()
    };
    let (catalog, _journal, _) = journal::load(&cat_dir, &load_with)?;

    // 1. Blobs.
    let plain_blobs = LocalBlobs::open(data, Vault::plain()).map_err(io_err)?;
    let sealed_blobs = LocalBlobs::open(data, sealed.clone()).map_err(io_err)?;
    let tmp = data.join("tmp");
    for e in fs::read_dir(&tmp).map_err(io_err)? {
        fs::remove_file(e.map_err(io_err)?.path()).map_err(io_err)?;
    }
    let mut keep: HashSet<PathBuf> = HashSet::new();
    for (hash, _) in catalog.blobs() {
        let on_disk = |b: &LocalBlobs, key: String| {
            b.local_file(&key)
                .expect("LocalBlobs::open keeps blobs on local disk")
        };
        let forms: [(PathBuf, PathBuf, Obj<'_>); 4] = [
            (
                on_disk(&plain_blobs, plain_blobs.key_of(&hash, BlobForm::Hot)),
                on_disk(&sealed_blobs, sealed_blobs.key_of(&hash, BlobForm::Hot)),
                Obj::Hot(&hash),
            ),
            (
                on_disk(&plain_blobs, plain_blobs.key_of(&hash, BlobForm::Packed)),
                on_disk(&sealed_blobs, sealed_blobs.key_of(&hash, BlobForm::Packed)),
                Obj::Packed(&hash),
            ),
            (
                on_disk(&plain_blobs, plain_blobs.index_key(&hash)),
                on_disk(&sealed_blobs, sealed_blobs.index_key(&hash)),
                Obj::Index(&hash),
            ),
            (
                on_disk(&plain_blobs, plain_blobs.manifest_key(&hash)),
                on_disk(&sealed_blobs, sealed_blobs.manifest_key(&hash)),
                Obj::Manifest(&hash),
            ),
        ];
        for (plain, target, obj) in forms {
            if exists(&plain) {
                if !exists(&target) {
                    let staged = seal_to_temp(sealed, &plain, obj, &tmp).map_err(io_err)?;
                    let dir = target.parent().expect("in a shard");
                    if !dir.exists() {
                        fs::create_dir_all(dir).map_err(io_err)?;
                        durable::sync_dir(&data.join("blobs")).map_err(io_err)?;
                    }
                    durable::rename_durable(&staged, &target).map_err(io_err)?;
                    report.files_sealed += 1;
                }
                fs::remove_file(&plain).map_err(io_err)?;
                durable::sync_dir(plain.parent().expect("in a shard")).map_err(io_err)?;
            }
            keep.insert(target);
        }
    }
    for shard in fs::read_dir(data.join("blobs")).map_err(io_err)? {
        let shard = shard.map_err(io_err)?.path();
        if !shard.is_dir() {
            continue;
        }
        let mut removed = false;
        for f in fs::read_dir(&shard).map_err(io_err)? {
            let f = f.map_err(io_err)?.path();
            if !keep.contains(&f) {
                fs::remove_file(&f).map_err(io_err)?;
                report.leftovers_removed += 1;
                removed = true;
            }
        }
        if removed {
            durable::sync_dir(&shard).map_err(io_err)?;
        }
    }

    // 2. The catalog.
    if !catalog_sealed {
        sealed
            .write_atomic(&staged_snapshot, Obj::Snapshot, false, |mut w| {
                snapshot::write(&mut w, &catalog)
            })
            .map_err(io_err)?;
        finish_catalog(&cat_dir).map_err(io_err)?;
    }

    // 3. Uploads in progress.
    report.uploads = convert_uploads(&data.join("uploads"), sealed).map_err(io_err)?;

    // 4. Small files: every JSON file the server keeps beside the catalog.
    for (name, obj, private) in [
        ("clients.json", Obj::Clients, false),
        ("accounts.json", Obj::Accounts, true),
        ("updates.json", Obj::Updates, true),
        ("policy.json", Obj::Policy, true),
        ("alerts.json", Obj::Alerts, true),
        ("alerts-state.json", Obj::AlertState, true),
        ("check.json", Obj::Check, true),
        ("history.json", Obj::History, true),
    ] {
        let path = data.join(name);
        if exists(&path) && !is_sealed_file(&path).map_err(io_err)? {
            let bytes = fs::read(&path).map_err(io_err)?;
            sealed
                .write_atomic(&path, obj, private, |w| w.write_all(&bytes))
                .map_err(io_err)?;
            report.files_sealed += 1;
        }
    }
    Ok(report)
}

/// Puts a staged sealed snapshot in place: the plain journals go first
/// (everything they held is in it), then it is renamed.
fn finish_catalog(cat_dir: &Path) -> io::Result<()> {
    for j in ["journal.jsonl", "journal.prev.jsonl"] {
        match fs::remove_file(cat_dir.join(j)) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
    }
    durable::sync_dir(cat_dir)?;
    durable::rename_durable(
        &cat_dir.join("snapshot.sealed"),
        &cat_dir.join("snapshot.json"),
    )
}

fn convert_uploads(dir: &Path, sealed: &Vault) -> io::Result<usize> {
    let Ok(entries) = fs::read_dir(dir) else {
        return Ok(0);
    };
    let ids: Vec<String> = entries
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let name = e.file_name().into_string().ok()?;
            let id = name
                .strip_suffix(".json")
                .or_else(|| name.strip_suffix(".json.sealed"))?;
            Some(id.to_string())
        })
        .collect::<HashSet<_>>()
        .into_iter()
        .collect();
    let mut n = 0;
    for id in ids {
        let (meta, part) = (
            dir.join(format!("{id}.json")),
            dir.join(format!("{id}.part")),
        );
        let (meta_s, part_s) = (
            dir.join(format!("{id}.json.sealed")),
            dir.join(format!("{id}.part.sealed")),
        );
        if !exists(&meta_s) {
            if !exists(&meta) || is_sealed_file(&meta)? {
                continue;
            }
            let mut state: serde_json::Value =
                serde_json::from_slice(&fs::read(&meta)?).map_err(io::Error::other)?;
            let finished = !state["result"].is_null();
            if !finished {
                let mut offset = state["offset"].as_u64().unwrap_or(0);
                let mut bytes = Vec::new();
                if let Ok(f) = File::open(&part) {
                    io::BufReader::new(f).take(offset).read_to_end(&mut bytes)?;
                }
                if (bytes.len() as u64) < offset {
                    // Shorter than its state says: keep what is there, as
                    // a restart would after a torn piece.
                    offset = bytes.len() as u64;
                    state["offset"] = offset.into();
                }
                let whole = (offset - offset % SEG as u64) as usize;
                let file = File::create(&part_s)?;
                let mut w = sealed.appender(BufWriter::new(&file), Obj::UploadPart(&id), 0);
                w.write_all(&bytes[..whole])?;
                w.finish_whole_segments()?;
                file.sync_all()?;
                if let Some(o) = state.as_object_mut() {
                    o.remove("tail");
                    if whole < bytes.len() {
                        o.insert("tail".into(), B64.encode(&bytes[whole..]).into());
                    }
                }
            }
            sealed.write_atomic(&meta_s, Obj::UploadMeta(&id), false, |w| {
                serde_json::to_writer(&mut *w, &state)?;
                w.write_all(b"\n")
            })?;
        }
        if exists(&part_s) {
            durable::rename_durable(&part_s, &part)?;
        }
        durable::rename_durable(&meta_s, &meta)?;
        n += 1;
    }
    Ok(n)
}
