#!/usr/bin/env bash
# `make dist`: the release artifacts, in dist/: nimbus-server and
# nimbus-client as static musl binaries for x86_64 and aarch64 Linux, the
# Windows client, each with a SHA-256 sum file. Needs the Rust targets
# (rustup target add x86_64-unknown-linux-musl aarch64-unknown-linux-musl
# x86_64-pc-windows-gnu) and Debian's musl-tools, gcc-aarch64-linux-gnu and
# gcc-mingw-w64-x86-64, with libc6-dev-arm64-cross for the cross compiler's
# headers (.ci/run installs them).
#
# The C in the build (the bzip2 library, ring's primitives) is compiled by
# musl-gcc for x86_64 and by Debian's aarch64 cross gcc for aarch64; both
# link statically against the musl libc Rust ships for these targets.
# bzip2 stays on bzip2 0.4's C library: ring needs a C cross compiler for
# aarch64 in any case, so the pure-Rust backend of bzip2 0.6 would remove
# no tool from the build, and the C library is the one the packs on disk
# were written and benchmarked with.
#
# Signing: with NIMBUS_SIGNING_KEY_FILE naming the release key (made once
# with `nimbus-server release-key FILE`; keep it off the server), the
# clients are built trusting its public key (NIMBUS_UPDATE_KEY) and every
# client build gets BUILD.sig: the clients then update themselves to the
# builds a server offers, and only to those. Without it, the clients are
# built with self-update off (their --version says so).
set -euo pipefail
cd "$(dirname "$0")/../.."

version=$(sed -n 's/^version = "\(.*\)"$/\1/p' Cargo.toml | head -n 1)
export NIMBUS_COMMIT="${NIMBUS_COMMIT:-$(git rev-parse --short=12 HEAD 2>/dev/null || echo unknown)}"
export CC_x86_64_unknown_linux_musl=musl-gcc
export CC_aarch64_unknown_linux_musl=aarch64-linux-gnu-gcc
export AR_aarch64_unknown_linux_musl=aarch64-linux-gnu-ar
export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_MUSL_LINKER=aarch64-linux-gnu-gcc

out=dist
rm -rf "$out"
mkdir -p "$out"
unset NIMBUS_UPDATE_KEY NIMBUS_BUILD_VERSION
signer=
if [ -n "${NIMBUS_SIGNING_KEY_FILE:-}" ]; then
    [ -f "$NIMBUS_SIGNING_KEY_FILE" ] ||
        { echo "NIMBUS_SIGNING_KEY_FILE=$NIMBUS_SIGNING_KEY_FILE does not exist (make one with: nimbus-server release-key FILE)" >&2; exit 1; }
    cargo build --locked --profile dist --target x86_64-unknown-linux-musl -p nimbus-server
    signer=target/x86_64-unknown-linux-musl/dist/nimbus-server
    NIMBUS_UPDATE_KEY=$("$signer" release-key "$NIMBUS_SIGNING_KEY_FILE")
    export NIMBUS_UPDATE_KEY
    echo "clients trust the release key $NIMBUS_UPDATE_KEY"
else
    echo "NIMBUS_SIGNING_KEY_FILE is not set: the clients are built with self-update off"
fi
for target in x86_64-unknown-linux-musl aarch64-unknown-linux-musl; do
    arch=${target%%-*}
    cargo build --locked --profile dist --target "$target" -p nimbus-server -p nimbus-client
    for bin in nimbus-server nimbus-client; do
        cp "target/$target/dist/$bin" "$out/$bin-$version-$arch-linux"
    done
done
cargo build --locked --profile dist --target x86_64-pc-windows-gnu -p nimbus-client
cp target/x86_64-pc-windows-gnu/dist/nimbus-client.exe "$out/nimbus-client-$version-x86_64-windows.exe"

if [ -n "$signer" ]; then
    "$signer" release-sign --key "$NIMBUS_SIGNING_KEY_FILE" "$out"/nimbus-client-"$version"-*
fi

cd "$out"
for f in *; do
    sha256sum "$f" > "$f.sha256"
done
ls -l
