//! Start-up recovery: the catalog made to agree with the disk.

use super::*;

/// Missing blobs named one by one in the log; the rest are counted.
const MISSING_NAMED: usize = 20;

/// Makes the catalog agree with the disk after a restart: the disk says in
/// which form each blob exists (hot wins when a crash left both), blobs that
/// no version references are leftovers of unacknowledged uploads and go.
pub(super) fn reconcile(
    catalog: &mut Catalog,
    blobs: &LocalBlobs,
    mut on_disk: std::collections::HashMap<ContentHash, blobs::OnDisk>,
) -> io::Result<()> {
    let mut missing = 0usize;
    catalog.try_update_blobs(|hash, info| -> io::Result<()> {
        let found = on_disk.remove(&blobs.disk_key(hash)).unwrap_or_default();
        let mut lost = |what: &str| {
            missing += 1;
            if missing <= MISSING_NAMED {
                error!("{what} {hash} is referenced by the catalog but missing from disk");
            }
        };
        if info.chunked {
            // Its chunks are entries of their own; only the manifest is its.
            if found.manifest && info.form == BlobForm::Missing {
                info.form = BlobForm::Hot;
            } else if !found.manifest {
                info.form = BlobForm::Missing;
                lost("the manifest of");
            }
            return Ok(());
        }
        if found.manifest {
            // A manifest written for content the catalog holds whole.
            blobs.remove_manifest(hash)?;
        }
        if found.hot {
            if found.packed {
                blobs.remove(hash, BlobForm::Packed)?;
            }
            info.form = BlobForm::Hot;
            info.packed_size = None;
        } else if found.packed {
            info.form = BlobForm::Packed;
        } else {
            info.form = BlobForm::Missing;
            lost("blob");
        }
        Ok(())
    })?;
    let orphans = on_disk.len();
    // Keyed by name on disk: encrypted, that name does not give the hash.
    for (name, found) in on_disk {
        if found.hot {
            blobs.remove_named(&name, BlobForm::Hot)?;
        }
        if found.packed {
            blobs.remove_named(&name, BlobForm::Packed)?;
        }
        if found.manifest {
            blobs.remove_manifest_named(&name)?;
        }
    }
    if orphans > 0 {
        info!("removed {orphans} blob(s) of uploads that were never acknowledged");
    }
    if missing > 0 {
        error!("{missing} blob(s) are missing: their files cannot be downloaded");
    }
    Ok(())
}
