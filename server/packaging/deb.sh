#!/usr/bin/env bash
# Part of `make dist` (after dist.sh): Debian packages from the static
# binaries in dist/, built with dpkg-deb alone (no cargo-deb: the binaries
# are already built, and a package is a tar of files plus a control file).
#   nimbus-server_VERSION-1_{amd64,arm64}.deb: /usr/bin/nimbus-server, the
#     systemd unit of docs/deploy/ (started from /usr/bin with
#     --config /etc/nimbus/server.json), that config file (a conffile), and
#     maintainer scripts that create the system user nimbus and the data
#     directory /var/lib/nimbus, which no removal or purge deletes.
#   nimbus-client_VERSION-1_{amd64,arm64}.deb: /usr/bin/nimbus-client and the
#     user unit of docs/deploy/ as an example.
#   nimbus-server-clients_VERSION-1_all.deb: every client build of dist/ in
#     /usr/share/nimbus/clients, the folder the server's config offers on
#     "Add a machine" (recommended by nimbus-server).
set -euo pipefail
cd "$(dirname "$0")/../.."
version=$(sed -n 's/^version = "\(.*\)"$/\1/p' Cargo.toml | head -n 1)
here=server/packaging/deb
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

for pair in x86_64:amd64 aarch64:arm64; do
    arch=${pair%%:*}
    debarch=${pair##*:}

    root="$work/server-$debarch"
    install -D -m 0755 "dist/nimbus-server-$version-$arch-linux" "$root/usr/bin/nimbus-server"
    install -d "$root/lib/systemd/system"
    sed 's|^ExecStart=.*|ExecStart=/usr/bin/nimbus-server --config /etc/nimbus/server.json|' \
        docs/deploy/nimbus-server.service > "$root/lib/systemd/system/nimbus-server.service"
    grep -q '^ExecStart=/usr/bin/nimbus-server --config' "$root/lib/systemd/system/nimbus-server.service"
    install -D -m 0640 "$here/server.json" "$root/etc/nimbus/server.json"
    install -d "$root/DEBIAN"
    for s in postinst prerm postrm; do
        install -m 0755 "$here/server.$s" "$root/DEBIAN/$s"
    done
    echo /etc/nimbus/server.json > "$root/DEBIAN/conffiles"
    cat > "$root/DEBIAN/control" <<CONTROL
Package: nimbus-server
Version: $version-1
Architecture: $debarch
Maintainer: Nimbus developers <nimbus@localhost>
Section: admin
Priority: optional
Depends: passwd
Recommends: nimbus-server-clients (= $version-1)
Installed-Size: $(du -k -s "$root" | cut -f1)
Description: self-hosted backup server for a family's or a small office's machines
 Keeps every version of every file its clients send, stores identical
 content once, packs cold data with bzip2 and serves it back over HTTP,
 with resumable downloads and a browser interface. A static binary.
CONTROL
    dpkg-deb --root-owner-group -Zxz --build "$root" "dist/nimbus-server_$version-1_$debarch.deb" > /dev/null

    root="$work/client-$debarch"
    install -D -m 0755 "dist/nimbus-client-$version-$arch-linux" "$root/usr/bin/nimbus-client"
    install -D -m 0644 docs/deploy/nimbus-client.service \
        "$root/usr/share/doc/nimbus-client/examples/nimbus-client.service"
    install -d "$root/DEBIAN"
    cat > "$root/DEBIAN/control" <<CONTROL
Package: nimbus-client
Version: $version-1
Architecture: $debarch
Maintainer: Nimbus developers <nimbus@localhost>
Section: admin
Priority: optional
Installed-Size: $(du -k -s "$root" | cut -f1)
Description: backup client for a Nimbus server
 Watches a folder and backs up every new or changed file to a Nimbus
 server, sending only the chunks the server lacks. A static binary; a
 systemd user unit is in /usr/share/doc/nimbus-client/examples.
CONTROL
    dpkg-deb --root-owner-group -Zxz --build "$root" "dist/nimbus-client_$version-1_$debarch.deb" > /dev/null
done

root="$work/clients"
# With their release signatures, when make dist signed them.
for f in dist/nimbus-client-"$version"-*-linux dist/nimbus-client-"$version"-*-windows.exe \
    $(ls dist/nimbus-client-"$version"-*.sig 2>/dev/null); do
    install -D -m 0644 "$f" "$root/usr/share/nimbus/clients/$(basename "$f")"
done
install -d "$root/DEBIAN"
cat > "$root/DEBIAN/control" <<CONTROL
Package: nimbus-server-clients
Version: $version-1
Architecture: all
Maintainer: Nimbus developers <nimbus@localhost>
Section: admin
Priority: optional
Installed-Size: $(du -k -s "$root" | cut -f1)
Description: Nimbus client programs that a Nimbus server offers for download
 The Windows and Linux (x86_64, aarch64) builds of nimbus-client, in
 /usr/share/nimbus/clients, where nimbus-server's default configuration
 offers them on its "Add a machine" page.
CONTROL
dpkg-deb --root-owner-group -Zxz --build "$root" "dist/nimbus-server-clients_$version-1_all.deb" > /dev/null

cd dist
for f in *.deb; do
    sha256sum "$f" > "$f.sha256"
done
