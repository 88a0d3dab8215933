#!/usr/bin/env bash
# Part of `make dist` (after dist.sh): the server's container image, built
# without a container daemon by Debian's umoci (an OCI layout from scratch)
# and skopeo (the docker-archive tarball that `docker load` and
# `podman load` take), for x86_64 and aarch64:
#   dist/nimbus-server-VERSION-{x86_64,aarch64}-oci.tar
#   dist/nimbus-server-VERSION-{x86_64,aarch64}-docker.tar
# One layer: the static binary, the CA certificates (for an S3 endpoint or
# an upstream over https), /data owned by the user 65532, which the server
# runs as. docs/deploy/Containerfile builds the same layout with Docker.
set -euo pipefail
cd "$(dirname "$0")/../.."
version=$(sed -n 's/^version = "\(.*\)"$/\1/p' Cargo.toml | head -n 1)
certs=/etc/ssl/certs/ca-certificates.crt
[ -f "$certs" ] || { echo "container.sh: $certs is missing (Debian's ca-certificates)" >&2; exit 1; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

for pair in x86_64:amd64 aarch64:arm64; do
    arch=${pair%%:*}
    ociarch=${pair##*:}
    layout="$work/oci-$arch"
    umoci init --layout "$layout"
    umoci new --image "$layout:$version"
    umoci unpack --image "$layout:$version" "$work/bundle-$arch" > /dev/null
    rootfs="$work/bundle-$arch/rootfs"
    install -D -m 0755 "dist/nimbus-server-$version-$arch-linux" "$rootfs/nimbus-server"
    install -D -m 0644 "$certs" "$rootfs/etc/ssl/certs/ca-certificates.crt"
    install -m 0644 server/packaging/container/passwd "$rootfs/etc/passwd"
    install -m 0644 server/packaging/container/group "$rootfs/etc/group"
    install -d -m 0700 -o 65532 -g 65532 "$rootfs/data"
    umoci repack --image "$layout:$version" "$work/bundle-$arch" > /dev/null
    umoci config --image "$layout:$version" --os linux --architecture "$ociarch" \
        --config.user 65532:65532 --config.workingdir /data \
        --config.entrypoint /nimbus-server \
        --config.cmd --listen --config.cmd 0.0.0.0:9090 --config.cmd --data --config.cmd /data \
        --config.exposedports 9090/tcp --config.volume /data --config.stopsignal SIGTERM \
        --config.env SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt \
        --config.label "org.opencontainers.image.title=nimbus-server" \
        --config.label "org.opencontainers.image.version=$version" \
        --config.label "org.opencontainers.image.description=Nimbus backup server; health: GET /healthz answers 200 ok"
    umoci gc --layout "$layout"
    tar -C "$layout" -cf "dist/nimbus-server-$version-$arch-oci.tar" .
    rm -f "dist/nimbus-server-$version-$arch-docker.tar"
    skopeo copy --quiet "oci:$layout:$version" \
        "docker-archive:dist/nimbus-server-$version-$arch-docker.tar:nimbus-server:$version"
done
cd dist
for f in nimbus-server-"$version"-*-oci.tar nimbus-server-"$version"-*-docker.tar; do
    sha256sum "$f" > "$f.sha256"
done
