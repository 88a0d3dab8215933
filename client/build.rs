//! What is compiled into the client besides its code:
//! - `NIMBUS_CLIENT_VERSION`: the version it reports and compares with the
//!   server's offers: `NIMBUS_BUILD_VERSION` if set (a packager's or a
//!   test's build), else the package version.
//! - `NIMBUS_RELEASE_KEY`: the release public key it accepts updates
//!   signed with, from `NIMBUS_UPDATE_KEY` (64 hex digits; `make dist` sets
//!   it from `NIMBUS_SIGNING_KEY_FILE`). Without it, self-update is off.

fn main() {
    println!("cargo:rerun-if-env-changed=NIMBUS_BUILD_VERSION");
    println!("cargo:rerun-if-env-changed=NIMBUS_UPDATE_KEY");
    let version = std::env::var("NIMBUS_BUILD_VERSION")
        .ok()
        .filter(|v| !v.trim().is_empty())
        .unwrap_or_else(|| std::env::var("CARGO_PKG_VERSION").expect("cargo sets it"));
    assert!(
        version
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._+-".contains(&b)),
        "NIMBUS_BUILD_VERSION {version:?}: letters, digits and ._+- only"
    );
    println!("cargo:rustc-env=NIMBUS_CLIENT_VERSION={version}");
    if let Some(key) = std::env::var("NIMBUS_UPDATE_KEY")
        .ok()
        .filter(|k| !k.trim().is_empty())
    {
        let key = key.trim().to_ascii_lowercase();
        assert!(
            key.len() == 64 && key.bytes().all(|b| b.is_ascii_hexdigit()),
            "NIMBUS_UPDATE_KEY must be the release public key, 64 hex digits \
             (nimbus-server release-key FILE prints it)"
        );
        println!("cargo:rustc-env=NIMBUS_RELEASE_KEY={key}");
    }
}
