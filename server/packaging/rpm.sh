#!/usr/bin/env bash
# Part of `make dist` (after dist.sh): .rpm packages of the static binaries
# in dist/, for x86_64 and aarch64, with Debian's rpmbuild (package rpm) and
# the specs in rpm/: nothing is compiled, the specs copy a staged tree.
set -euo pipefail
cd "$(dirname "$0")/../.."
version=$(sed -n 's/^version = "\(.*\)"$/\1/p' Cargo.toml | head -n 1)
here=server/packaging/rpm
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

for arch in x86_64 aarch64; do
    stage="$work/server-$arch"
    install -D -m 0755 "dist/nimbus-server-$version-$arch-linux" "$stage/usr/bin/nimbus-server"
    install -d "$stage/usr/lib/systemd/system"
    sed 's|^ExecStart=.*|ExecStart=/usr/bin/nimbus-server --config /etc/nimbus/server.json|' \
        docs/deploy/nimbus-server.service > "$stage/usr/lib/systemd/system/nimbus-server.service"
    install -D -m 0640 server/packaging/deb/server.json "$stage/etc/nimbus/server.json"

    stage="$work/client-$arch"
    install -D -m 0755 "dist/nimbus-client-$version-$arch-linux" "$stage/usr/bin/nimbus-client"
    install -D -m 0644 docs/deploy/nimbus-client.service \
        "$stage/usr/share/doc/nimbus-client/examples/nimbus-client.service"

    for p in server client; do
        rpmbuild --quiet -bb --target "$arch-linux" \
            --define "_topdir $work/top" --define "version $version" \
            --define "stage $work/$p-$arch" "$here/nimbus-$p.spec" > "$work/rpmbuild.log" 2>&1 ||
            { cat "$work/rpmbuild.log" >&2; exit 1; }
        cp "$work/top/RPMS/$arch/nimbus-$p-$version-1.$arch.rpm" dist/
    done
done

# Every client build, for the server's "Add a machine" page.
stage="$work/clients"
# With their release signatures, when make dist signed them.
for f in dist/nimbus-client-"$version"-*-linux dist/nimbus-client-"$version"-*-windows.exe \
    $(ls dist/nimbus-client-"$version"-*.sig 2>/dev/null); do
    install -D -m 0644 "$f" "$stage/usr/share/nimbus/clients/$(basename "$f")"
done
rpmbuild --quiet -bb --target noarch \
    --define "_topdir $work/top" --define "version $version" \
    --define "stage $stage" "$here/nimbus-server-clients.spec" > "$work/rpmbuild.log" 2>&1 ||
    { cat "$work/rpmbuild.log" >&2; exit 1; }
cp "$work/top/RPMS/noarch/nimbus-server-clients-$version-1.noarch.rpm" dist/

cd dist
for f in *.rpm; do
    sha256sum "$f" > "$f.sha256"
done
