//! Client updates: what a release signature signs, how keys and signatures
//! are written, and how versions are ordered. The server offers builds
//! (`make dist` signs them with the release key); the client runs one only
//! if its signature verifies against the public key compiled into it.
//!
//! A signature signs the build's file name and its SHA-256, so it cannot be
//! moved to another version, system or architecture: the name says which
//! (`nimbus-client-VERSION-ARCH-OS[.exe]`).

use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};

/// What the release key signs for one build.
pub fn signed_message(file: &str, sha256_hex: &str) -> Vec<u8> {
    format!("nimbus-client-build v1\n{file}\n{sha256_hex}\n").into_bytes()
}

/// The file name of the build of `version` for an OS (`windows`, `linux`,
/// `macos`) and architecture (`x86_64`, `aarch64`).
pub fn build_file_name(version: &str, arch: &str, os: &str) -> String {
    let exe = if os == "windows" { ".exe" } else { "" };
    format!("nimbus-client-{version}-{arch}-{os}{exe}")
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex<const N: usize>(text: &str) -> Option<[u8; N]> {
    let text = text.trim();
    if text.len() != 2 * N || !text.is_ascii() {
        return None;
    }
    let mut out = [0u8; N];
    for (i, b) in out.iter_mut().enumerate() {
        *b = u8::from_str_radix(&text[2 * i..2 * i + 2], 16).ok()?;
    }
    Some(out)
}

/// A release signing key, kept as 64 hex digits (its 32-byte seed).
pub struct ReleaseKey(SigningKey);

impl ReleaseKey {
    /// A key from 32 random bytes.
    pub fn from_seed(seed: [u8; 32]) -> ReleaseKey {
        ReleaseKey(SigningKey::from_bytes(&seed))
    }

    /// Reads the text of a key file.
    pub fn parse(text: &str) -> Option<ReleaseKey> {
        unhex::<32>(text).map(ReleaseKey::from_seed)
    }

    /// The key file's text.
    pub fn to_text(&self) -> String {
        format!("{}\n", hex(&self.0.to_bytes()))
    }

    /// The public key, as 64 hex digits: what `NIMBUS_UPDATE_KEY` is set
    /// to when clients are built.
    pub fn public_hex(&self) -> String {
        hex(self.0.verifying_key().as_bytes())
    }

    /// The signature of a build, as 128 hex digits (a `.sig` file's text).
    pub fn sign(&self, file: &str, sha256_hex: &str) -> String {
        hex(&self.0.sign(&signed_message(file, sha256_hex)).to_bytes())
    }
}

/// Why a build is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("the build is not signed")]
    Unsigned,
    #[error("the signature is not 128 hex digits")]
    Malformed,
    #[error("the signature does not verify against this client's release key")]
    Invalid,
    #[error("the release key compiled into this client is not a valid public key")]
    BadKey,
}

/// Verifies `signature` (hex) of the build `file` with `sha256_hex`
/// against `public_hex`, the release public key.
pub fn verify(
    public_hex: &str,
    file: &str,
    sha256_hex: &str,
    signature: Option<&str>,
) -> Result<(), SignatureError> {
    let key = unhex::<32>(public_hex)
        .and_then(|k| VerifyingKey::from_bytes(&k).ok())
        .ok_or(SignatureError::BadKey)?;
    let sig =
        unhex::<64>(signature.ok_or(SignatureError::Unsigned)?).ok_or(SignatureError::Malformed)?;
    key.verify_strict(
        &signed_message(file, sha256_hex),
        &Signature::from_bytes(&sig),
    )
    .map_err(|_| SignatureError::Invalid)
}

/// Orders versions as numbers where they are numbers: 0.10.0 after 0.9.1,
/// 1.0.0 after 1.0.0-rc1.
pub fn compare_versions(a: &str, b: &str) -> std::cmp::Ordering {
    fn key(v: &str) -> (Vec<u64>, bool, String) {
        let (core, pre) = match v.split_once('-') {
            Some((c, p)) => (c, Some(p)),
            None => (v, None),
        };
        let nums = core.split('.').map(|p| p.parse().unwrap_or(0)).collect();
        (nums, pre.is_none(), pre.unwrap_or("").to_string())
    }
    key(a).cmp(&key(b))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cmp::Ordering;

    #[test]
    fn a_signature_verifies_only_for_its_file_sum_and_key() {
        let key = ReleaseKey::from_seed([7; 32]);
        let other = ReleaseKey::from_seed([8; 32]);
        let (file, sum) = ("nimbus-client-0.2.0-x86_64-linux", "ab".repeat(32));
        let sig = key.sign(file, &sum);
        let public = key.public_hex();
        assert_eq!(verify(&public, file, &sum, Some(&sig)), Ok(()));
        let again = ReleaseKey::parse(&key.to_text()).unwrap();
        assert_eq!(again.public_hex(), public);
        for (f, s) in [
            ("nimbus-client-0.3.0-x86_64-linux", sum.clone()),
            ("nimbus-client-0.2.0-aarch64-linux", sum.clone()),
            (file, "cd".repeat(32)),
        ] {
            assert_eq!(
                verify(&public, f, &s, Some(&sig)),
                Err(SignatureError::Invalid)
            );
        }
        let wrong = other.sign(file, &sum);
        assert_eq!(
            verify(&public, file, &sum, Some(&wrong)),
            Err(SignatureError::Invalid)
        );
        assert_eq!(
            verify(&public, file, &sum, None),
            Err(SignatureError::Unsigned)
        );
        assert_eq!(
            verify(&public, file, &sum, Some("zz")),
            Err(SignatureError::Malformed)
        );
        assert_eq!(
            verify("00", file, &sum, Some(&sig)),
            Err(SignatureError::BadKey)
        );
    }

    #[test]
    fn versions_order_as_numbers() {
        assert_eq!(compare_versions("0.10.0", "0.9.1"), Ordering::Greater);
        assert_eq!(compare_versions("1.0.0", "1.0.0-rc1"), Ordering::Greater);
        assert_eq!(compare_versions("0.1.0", "0.1.0"), Ordering::Equal);
        assert_eq!(
            build_file_name("1.2.3", "x86_64", "windows"),
            "nimbus-client-1.2.3-x86_64-windows.exe"
        );
    }
}
