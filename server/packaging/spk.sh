#!/usr/bin/env bash
# Part of `make dist` (after dist.sh): the Synology package for DSM 7,
# dist/nimbus-VERSION-{x86_64,armv8}.spk, laid out as SynoCommunity's
# spksrc lays packages out: an uncompressed tar of INFO, package.tgz (the
# files DSM unpacks into SYNOPKG_PKGDEST: bin/nimbus-server and the port
# file nimbus.sc), scripts/ (synology/scripts), conf/ (privilege: run as
# the package user; resource: the port) and the two icons.
set -euo pipefail
cd "$(dirname "$0")/../.."
version=$(sed -n 's/^version = "\(.*\)"$/\1/p' Cargo.toml | head -n 1)
here=server/packaging/synology
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

for pair in x86_64:x86_64 aarch64:armv8; do
    arch=${pair%%:*}
    synoarch=${pair##*:}
    pkg="$work/$synoarch"
    mkdir -p "$pkg/target/bin"
    install -m 0755 "dist/nimbus-server-$version-$arch-linux" "$pkg/target/bin/nimbus-server"
    install -m 0644 "$here/nimbus.sc" "$pkg/target/nimbus.sc"
    tar -C "$pkg/target" --owner=0 --group=0 -czf "$pkg/package.tgz" .
    cp -r "$here/scripts" "$here/conf" "$pkg/"
    python3 "$here/icon.py" 64 "$pkg/PACKAGE_ICON.PNG"
    python3 "$here/icon.py" 256 "$pkg/PACKAGE_ICON_256.PNG"
    cat > "$pkg/INFO" <<INFO
package="nimbus"
version="$version-1"
os_min_ver="7.0-40000"
arch="$synoarch"
displayname="Nimbus"
description="Self-hosted backup server: keeps every version of every file the Nimbus clients on your computers send, stores identical content once and serves it back in the browser. The first admin's password is in the package log after the first start."
maintainer="Nimbus developers"
adminport="9090"
adminprotocol="http"
thirdparty="yes"
silent_upgrade="yes"
checksum="$(md5sum "$pkg/package.tgz" | cut -d' ' -f1)"
INFO
    tar -C "$pkg" --owner=0 --group=0 -cf "dist/nimbus-$version-$synoarch.spk" \
        INFO package.tgz scripts conf PACKAGE_ICON.PNG PACKAGE_ICON_256.PNG
done
cd dist
for f in nimbus-"$version"-*.spk; do
    sha256sum "$f" > "$f.sha256"
done
