//! The release signing commands (`nimbus-server release-key`,
//! `release-sign`): what `make dist` runs, with the key given by
//! `NIMBUS_SIGNING_KEY_FILE`, so that clients update only to builds the
//! releaser made. The server itself never needs the private key: it only
//! serves the `.sig` files beside the builds.

use nimbus_common::durable::{write_atomic, write_atomic_private};
use nimbus_common::update::ReleaseKey;
use rand_core::{OsRng, RngCore};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum ReleaseError {
    #[error("the release key {0}: {1}")]
    Key(PathBuf, io::Error),
    #[error("{0} is not a release key (64 hex digits)")]
    NotAKey(PathBuf),
    #[error("{0} is not named as a client build (nimbus-client-VERSION-ARCH-OS[.exe])")]
    NotABuild(PathBuf),
    #[error("{0}: {1}")]
    Build(PathBuf, io::Error),
}

fn load(file: &Path) -> Result<ReleaseKey, ReleaseError> {
    let text = std::fs::read_to_string(file).map_err(|e| ReleaseError::Key(file.into(), e))?;
    ReleaseKey::parse(&text).ok_or_else(|| ReleaseError::NotAKey(file.into()))
}

/// The public key (hex) of the key in `file`, made (owner-only) first if
/// the file does not exist.
pub fn key_command(file: &Path) -> Result<String, ReleaseError> {
    if !file.exists() {
        let mut seed = [0u8; 32];
        OsRng.fill_bytes(&mut seed);
        let key = ReleaseKey::from_seed(seed);
        write_atomic_private(file, |w| w.write_all(key.to_text().as_bytes()))
            .map_err(|e| ReleaseError::Key(file.into(), e))?;
        log::info!("made a new release key in {}", file.display());
    }
    Ok(load(file)?.public_hex())
}

/// Writes `BUILD.sig` beside each build.
pub fn sign_command(key: &Path, builds: &[PathBuf]) -> Result<(), ReleaseError> {
    let key = load(key)?;
    for build in builds {
        let name = build
            .file_name()
            .and_then(|n| n.to_str())
            .filter(|n| crate::client_builds::is_build_name(n))
            .ok_or_else(|| ReleaseError::NotABuild(build.clone()))?;
        let sum = crate::client_builds::sha256_file(build)
            .map_err(|e| ReleaseError::Build(build.clone(), e))?;
        let sig = build.with_file_name(format!("{name}.sig"));
        write_atomic(&sig, |w| writeln!(w, "{}", key.sign(name, &sum)))
            .map_err(|e| ReleaseError::Build(sig.clone(), e))?;
        println!("signed {name}");
    }
    Ok(())
}
