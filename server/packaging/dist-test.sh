#!/usr/bin/env bash
# `make dist-test`: checks what `make dist` left in dist/.
# - every Linux binary is static (no program interpreter, no NEEDED
#   library) and stripped, and its sum file matches;
# - the x86_64 binaries print the version and the commit;
# - the aarch64 binaries, under qemu-aarch64-static: the server starts, the
#   client backs a small tree up to it and restores it byte for byte.
set -euo pipefail
cd "$(dirname "$0")/../.."
version=$(sed -n 's/^version = "\(.*\)"$/\1/p' Cargo.toml | head -n 1)
commit=$(git rev-parse --short=12 HEAD 2>/dev/null || echo unknown)
fail() { echo "dist-test: $*" >&2; exit 1; }
# backup_and_restore URL PASSWORD DIR LABEL CLIENT...: the client (a command,
# qemu first for the aarch64 one) logs in as admin, backs a small tree up
# to URL and restores it, byte for byte.
backup_and_restore() {
    local url=$1 password=$2 dir=$3 label=$4
    shift 4
    mkdir -p "$dir/tree/sub"
    head -c 3000000 /dev/urandom > "$dir/tree/sub/random.bin"
    printf 'backed up by the %s client\n' "$label" > "$dir/tree/hello.txt"
    touch -d '1 minute ago' "$dir/tree/hello.txt" "$dir/tree/sub/random.bin"
    printf '%s\n' "$password" | "$@" login --server "$url" --user admin \
        --password-stdin --name "$label" --config "$dir/client.json" > /dev/null ||
        fail "the $label client could not log in"
    "$@" --server "$url" --dir "$dir/tree" --name "$label" --config "$dir/client.json" \
        --state "$dir/state.json" --once --settle 0 > "$dir/backup.log" 2>&1 ||
        { cat "$dir/backup.log" >&2; fail "the $label client's backup failed"; }
    "$@" restore --server "$url" --config "$dir/client.json" --from "$label" \
        --to "$dir/restored" > "$dir/restore.log" 2>&1 ||
        { cat "$dir/restore.log" >&2; fail "the $label client's restore failed"; }
    diff -r "$dir/tree" "$dir/restored" || fail "the tree the $label client restored differs"
}

cd dist
for f in *; do
    case "$f" in *.sha256) continue ;; esac
    [ -f "$f.sha256" ] || fail "$f has no sum file"
    sha256sum --quiet -c "$f.sha256" || fail "$f does not match its sum"
done
for arch in x86_64 aarch64; do
    for bin in nimbus-server nimbus-client; do
        f="$bin-$version-$arch-linux"
        [ -f "$f" ] || fail "$f is missing"
        # Read whole before grep (grep -q closing the pipe early would fail
        # readelf with SIGPIPE, and pipefail would turn a match into a pass).
        elf=$(readelf -lW "$f")
        if grep -q 'INTERP' <<< "$elf"; then fail "$f has a program interpreter"; fi
        elf=$(readelf -dW "$f")
        if grep -q 'NEEDED' <<< "$elf"; then fail "$f needs shared libraries"; fi
        elf=$(readelf -SW "$f")
        if grep -q '\.debug_' <<< "$elf"; then fail "$f is not stripped"; fi
        echo "$f: static, stripped, $(stat -c %s "$f") bytes"
    done
done
kind=$(file "nimbus-client-$version-x86_64-windows.exe")
grep -q 'PE32+ executable' <<< "$kind" ||
    fail "the Windows client is not a PE32+ executable"
v=$("./nimbus-server-$version-x86_64-linux" --version)
[ "$v" = "nimbus-server $version (commit $commit)" ] || fail "nimbus-server --version says: $v"
# Signed (NIMBUS_SIGNING_KEY_FILE): the clients trust the key and each
# build has its signature (which the packaged server offers, below; the
# client's checking of it is make update-test's); unsigned: self-update is
# off.
if [ -n "${NIMBUS_SIGNING_KEY_FILE:-}" ]; then
    updates="on (signed builds)"
    for b in nimbus-client-$version-x86_64-linux nimbus-client-$version-aarch64-linux nimbus-client-$version-x86_64-windows.exe; do
        [ -f "$b.sig" ] || fail "$b is not signed"
    done
else
    updates="off (built without a release key)"
fi
v=$("./nimbus-client-$version-x86_64-linux" --version)
[ "$v" = "nimbus-client $version (commit $commit); self-update $updates" ] ||
    fail "nimbus-client --version says: $v"

# The Debian packages: their contents, then the server package installed,
# upgraded and purged in a scratch root (dpkg --root; the maintainer
# scripts honour DPKG_ROOT and touch nothing outside it).
for a in amd64 arm64; do
    for p in server client; do
        [ -f "nimbus-${p}_$version-1_$a.deb" ] || fail "nimbus-${p}_$version-1_$a.deb is missing"
    done
    list=$(dpkg-deb -c "nimbus-server_$version-1_$a.deb")
    for want in ./usr/bin/nimbus-server ./lib/systemd/system/nimbus-server.service ./etc/nimbus/server.json; do
        grep -q " $want\$" <<< "$list" || fail "the $a server package lacks $want"
    done
    list=$(dpkg-deb -c "nimbus-client_$version-1_$a.deb")
    grep -q ' ./usr/bin/nimbus-client$' <<< "$list" ||
        fail "the $a client package lacks ./usr/bin/nimbus-client"
    [ "$(dpkg-deb -f "nimbus-server_$version-1_$a.deb" Architecture)" = "$a" ] ||
        fail "the $a server package names another architecture"
done
info=$(dpkg-deb -I "nimbus-server_$version-1_amd64.deb")
grep -q 'conffiles' <<< "$info" || fail "the server package marks no conffile"
root=$(mktemp -d)
mkdir -p "$root/etc" "$root/var/lib/dpkg/info" "$root/var/lib/dpkg/updates"
touch "$root/var/lib/dpkg/status" "$root/var/lib/dpkg/available"
echo 'root:x:0:0:root:/root:/bin/sh' > "$root/etc/passwd"
echo 'root:x:0:' > "$root/etc/group"
echo 'root:*:19000:0:99999:7:::' > "$root/etc/shadow"
echo 'root:*::' > "$root/etc/gshadow"
dpkg_root() {
    dpkg --root="$root" --force-script-chrootless --force-not-root --force-depends \
        --log=/dev/null "$@" > "$root.log" 2>&1 || { cat "$root.log" >&2; fail "dpkg $*"; }
}
host_passwd=$(sha256sum < /etc/passwd)
dpkg_root -i "nimbus-server_$version-1_amd64.deb"
grep -q '^nimbus:x:[0-9]*:[0-9]*::/var/lib/nimbus:/usr/sbin/nologin$' "$root/etc/passwd" ||
    fail "the package did not create the system user nimbus"
uid=$(awk -F: '$1 == "nimbus" { print $3 }' "$root/etc/passwd")
[ "$(stat -c '%u %a' "$root/var/lib/nimbus")" = "$uid 700" ] ||
    fail "/var/lib/nimbus is not the nimbus user's alone"
grep -q '^ExecStart=/usr/bin/nimbus-server --config /etc/nimbus/server.json$' \
    "$root/lib/systemd/system/nimbus-server.service" || fail "the unit does not start the packaged binary"
[ "$("$root/usr/bin/nimbus-server" --version)" = "nimbus-server $version (commit $commit)" ] ||
    fail "the packaged server does not run"
# The client builds package, and the packaged server offering them.
dpkg_root -i "nimbus-server-clients_$version-1_all.deb"
grep -q '"clients-dir": "/usr/share/nimbus/clients"' "$root/etc/nimbus/server.json" ||
    fail "the server's config does not offer the packaged clients"
builds=(nimbus-client-$version-x86_64-linux nimbus-client-$version-aarch64-linux nimbus-client-$version-x86_64-windows.exe)
for b in "${builds[@]}"; do
    cmp -s "$b" "$root/usr/share/nimbus/clients/$b" || fail "the clients package does not hold $b as built"
done
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
"$root/usr/bin/nimbus-server" --listen "127.0.0.1:$port" --data "$root/offer-test" \
    --clients-dir "$root/usr/share/nimbus/clients" > /dev/null 2> "$root/offer.err" &
srv=$!
for _ in $(seq 50); do curl -sf "http://127.0.0.1:$port/healthz" > /dev/null 2>&1 && break; sleep 0.2; done
offered=$(curl -sf "http://127.0.0.1:$port/api/v1/clients") || { kill "$srv"; cat "$root/offer.err" >&2; fail "the packaged server lists no clients"; }
for b in "${builds[@]}"; do
    sum=$(sha256sum < "$b" | cut -d' ' -f1)
    grep -q "\"url\":\"/clients/$b\",\"size\":$(stat -c %s "$b"),\"sha256\":\"$sum\"" <<< "$offered" ||
        { kill "$srv"; fail "the packaged server does not offer $b with its sum: $offered"; }
    if [ -f "$b.sig" ]; then
        grep -q "\"sha256\":\"$sum\",\"signature\":\"$(tr -d '\n' < "$b.sig")\"" <<< "$offered" ||
            { kill "$srv"; fail "the packaged server does not offer $b's signature: $offered"; }
    fi
done
curl -sf "http://127.0.0.1:$port/clients/${builds[0]}" | cmp -s - "${builds[0]}" ||
    { kill "$srv"; fail "the packaged server's download differs from ${builds[0]}"; }
kill "$srv"; wait "$srv" 2>/dev/null || true
rm -rf "$root/offer-test"
echo 'a backup' > "$root/var/lib/nimbus/kept"
echo '{"listen": "0.0.0.0:9191", "data": "/var/lib/nimbus"}' > "$root/etc/nimbus/server.json"
dpkg_root -i "nimbus-server_$version-1_amd64.deb"   # an upgrade (a reinstall)
[ "$(grep -c '^nimbus:' "$root/etc/passwd")" = 1 ] || fail "the upgrade added a second user"
grep -q 9191 "$root/etc/nimbus/server.json" || fail "the upgrade overwrote the edited config"
dpkg_root --purge nimbus-server
[ ! -e "$root/usr/bin/nimbus-server" ] || fail "the purge left the binary"
[ -f "$root/var/lib/nimbus/kept" ] || fail "the purge deleted the backups"
[ "$(sha256sum < /etc/passwd)" = "$host_passwd" ] || fail "the scripts changed the host's /etc/passwd"
rm -rf "$root" "$root.log"
echo "debian packages: contents listed; installed, upgraded and purged in a scratch root, backups kept; the clients package's builds offered by the packaged server with their sums"

# The .rpm packages: architecture, contents, config file, scriptlets (each
# parsed by sh -n; the user made before the files land; no scriptlet
# deleting the backups), a payload CentOS 7's rpm 4.11 reads (gzip,
# SHA-256 digests), and the packaged server runs.
for a in x86_64 aarch64; do
    for p in server client; do
        f="nimbus-$p-$version-1.$a.rpm"
        [ -f "$f" ] || fail "$f is missing"
        [ "$(rpm -qp --qf '%{ARCH} %{VERSION}-%{RELEASE}' "$f")" = "$a $version-1" ] ||
            fail "$f names another architecture or version"
        [ "$(rpm -qp --qf '%{PAYLOADCOMPRESSOR} %{FILEDIGESTALGO}' "$f")" = "gzip 8" ] ||
            fail "$f has a payload CentOS 7 cannot read"
        list=$(rpm -qpl "$f")
        grep -qx "/usr/bin/nimbus-$p" <<< "$list" || fail "$f lacks /usr/bin/nimbus-$p"
    done
    f="nimbus-server-$version-1.$a.rpm"
    list=$(rpm -qpl "$f")
    grep -qx /usr/lib/systemd/system/nimbus-server.service <<< "$list" || fail "$f lacks the unit"
    [ "$(rpm -qp --configfiles "$f")" = /etc/nimbus/server.json ] || fail "$f: config file not marked"
    for tag in PREIN POSTIN PREUN POSTUN; do
        script=$(rpm -qp --qf "%{$tag}" "$f")
        [ "$script" != "(none)" ] || fail "$f has no $tag scriptlet"
        sh -n <<< "$script" || fail "$f: the $tag scriptlet does not parse"
        if grep -q 'rm .*/var/lib/nimbus' <<< "$script"; then fail "$f: $tag deletes the backups"; fi
    done
    grep -q 'useradd --system' <<< "$(rpm -qp --qf '%{PREIN}' "$f")" ||
        fail "$f does not create its user before its files land"
done
for s in postinst prerm postrm; do
    sh -n "../server/packaging/deb/server.$s" || fail "deb/server.$s does not parse"
done
f="nimbus-server-clients-$version-1.noarch.rpm"
[ "$(rpm -qp --qf '%{ARCH} %{VERSION}-%{RELEASE}' "$f")" = "noarch $version-1" ] || fail "$f: wrong architecture or version"
list=$(rpm -qpl "$f")
for b in "${builds[@]}"; do
    grep -qx "/usr/share/nimbus/clients/$b" <<< "$list" || fail "$f lacks $b"
done
x=$(mktemp -d)
(cd "$x" && rpm2cpio "$OLDPWD/nimbus-server-$version-1.x86_64.rpm" | cpio -idm --quiet)
[ "$("$x/usr/bin/nimbus-server" --version)" = "nimbus-server $version (commit $commit)" ] ||
    fail "the server of the rpm does not run"
rm -rf "$x"
echo "rpm packages: architecture, contents, config file and scriptlets checked; the packaged server runs"

# The container images: the OCI layout's configuration (non-root user,
# port, volume, architecture), its size compressed, the docker-archive
# readable, and the x86_64 image's root file system run as the image says
# (chroot into it as user 65532, the entrypoint and command of its config)
# answering /healthz and writing its data in /data.
for pair in x86_64:amd64 aarch64:arm64; do
    arch=${pair%%:*}
    f="nimbus-server-$version-$arch-oci.tar"
    [ -f "$f" ] || fail "$f is missing"
    size=$(stat -c %s "$f")
    [ "$size" -lt 10000000 ] || fail "$f is $size bytes, over 10 MB"
    cfg=$(skopeo inspect --config "oci-archive:$f")
    python3 - "$cfg" "${pair##*:}" <<'PY' || fail "$f: configuration"
import json, sys
c = json.loads(sys.argv[1]); want_arch = sys.argv[2]
k = c["config"]
assert c["architecture"] == want_arch and c["os"] == "linux", (c["architecture"], c["os"])
assert k["User"] == "65532:65532", k["User"]
assert list(k["ExposedPorts"]) == ["9090/tcp"], k["ExposedPorts"]
assert list(k["Volumes"]) == ["/data"], k["Volumes"]
assert k["Entrypoint"] == ["/nimbus-server"], k["Entrypoint"]
assert k["Cmd"] == ["--listen", "0.0.0.0:9090", "--data", "/data"], k["Cmd"]
PY
    d="nimbus-server-$version-$arch-docker.tar"
    tags=$(skopeo inspect "docker-archive:$d")
    grep -q "\"Architecture\": \"${pair##*:}\"" <<< "$tags" || fail "$d is not readable as a docker archive"
    echo "$f: $size bytes; non-root, port 9090, volume /data"
done
x=$(mktemp -d)
mkdir "$x/layout"
tar -C "$x/layout" -xf "nimbus-server-$version-x86_64-oci.tar"
umoci unpack --image "$x/layout:$version" "$x/bundle" > /dev/null
[ "$(find "$x/bundle/rootfs" -type f | wc -l)" -le 4 ] || fail "the image holds more than the binary, certificates and passwd/group"
[ "$(stat -c %u "$x/bundle/rootfs/data")" = 65532 ] || fail "/data is not the image user's"
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
chroot --userspec=65532:65532 "$x/bundle/rootfs" /nimbus-server --listen "127.0.0.1:$port" --data /data \
    > "$x/out" 2> "$x/err" &
ctr=$!
for _ in $(seq 50); do curl -sf "http://127.0.0.1:$port/healthz" > "$x/health" 2>/dev/null && break; sleep 0.2; done
[ "$(cat "$x/health" 2>/dev/null)" = ok ] || { kill "$ctr"; cat "$x/err" >&2; fail "the image's server did not answer /healthz"; }
sleep 0.3
password=$(sed -n 's/^created the first account: user admin, password //p' "$x/out")
(backup_and_restore "http://127.0.0.1:$port" "$password" "$x" container "$PWD/nimbus-client-$version-x86_64-linux") ||
    { kill "$ctr"; exit 1; }
kill "$ctr"; wait "$ctr" 2>/dev/null || true
[ -d "$x/bundle/rootfs/data/catalog" ] || fail "the image's server kept no catalog in /data"
[ "$(stat -c %u "$x/bundle/rootfs/data/catalog")" = 65532 ] || fail "the catalog is not the image user's"
rm -rf "$x"
echo "container: the image's root file system runs as user 65532, answers /healthz and serves the x86_64 client's backup and restore"

# The Synology packages: the layout DSM 7 reads (INFO with its checksum,
# package.tgz, scripts, conf, icons), the binary's architecture, and the
# x86_64 package's scripts run as DSM runs them, as an unprivileged package
# user: install, start, status, the first password in the log, an upgrade
# (stop, new files, start) that keeps the data, stop.
for pair in x86_64:X86-64 armv8:AArch64; do
    synoarch=${pair%%:*}
    f="nimbus-$version-$synoarch.spk"
    [ -f "$f" ] || fail "$f is missing"
    list=$(tar -tf "$f")
    for want in INFO package.tgz scripts/preinst scripts/postinst scripts/preuninst \
        scripts/postuninst scripts/preupgrade scripts/postupgrade scripts/start-stop-status \
        conf/privilege conf/resource PACKAGE_ICON.PNG PACKAGE_ICON_256.PNG; do
        grep -qx "$want" <<< "$list" || fail "$f lacks $want"
    done
    x=$(mktemp -d)
    tar -C "$x" -xf "$f"
    for field in 'package="nimbus"' "version=\"$version-1\"" 'os_min_ver="7.0-40000"' "arch=\"$synoarch\"" \
        'maintainer="' 'description="'; do
        grep -q "^$field" "$x/INFO" || fail "$f: INFO lacks $field"
    done
    grep -qx "checksum=\"$(md5sum "$x/package.tgz" | cut -d' ' -f1)\"" "$x/INFO" ||
        fail "$f: the INFO checksum is not package.tgz's MD5"
    python3 - "$x" <<'PY' || fail "$f: conf or icons"
import json, struct, sys
d = sys.argv[1]
assert json.load(open(d + "/conf/privilege"))["defaults"]["run-as"] == "package"
assert json.load(open(d + "/conf/resource"))["port-config"]["protocol-file"] == "nimbus.sc"
for name, size in (("PACKAGE_ICON.PNG", 64), ("PACKAGE_ICON_256.PNG", 256)):
    head = open(d + "/" + name, "rb").read(24)
    assert head[:8] == b"\x89PNG\r\n\x1a\n" and struct.unpack(">II", head[16:24]) == (size, size), name
PY
    mkdir "$x/target"
    tar -C "$x/target" -xzf "$x/package.tgz"
    grep -q 'dst.ports="9090/tcp"' "$x/target/nimbus.sc" || fail "$f: the port file does not declare 9090"
    machine=$(readelf -h "$x/target/bin/nimbus-server")
    grep -q "Machine:.*${pair##*:}" <<< "$machine" || fail "$f holds a binary for another machine"
    if [ "$synoarch" = x86_64 ]; then
        var="$x/var"
        mkdir "$var"
        chown 65533:65533 "$var"
        chmod 0755 "$x"
        port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
        dsm() {
            env SYNOPKG_PKGDEST="$x/target" SYNOPKG_PKGVAR="$var" SYNOPKG_TEMP_LOGFILE="$var/wizard" \
                NIMBUS_PORT="$port" setpriv --reuid=65533 --regid=65533 --clear-groups "$@"
        }
        dsm "$x/scripts/preinst" && dsm "$x/scripts/postinst" || fail "$f: install scripts"
        grep -q 'package log' "$var/wizard" || fail "$f: postinst does not say where the password is"
        dsm "$x/scripts/start-stop-status" start || fail "$f: start"
        for _ in $(seq 50); do curl -sf "http://127.0.0.1:$port/healthz" > /dev/null 2>&1 && break; sleep 0.2; done
        dsm "$x/scripts/start-stop-status" status || fail "$f: status after start is not running"
        curl -sf "http://127.0.0.1:$port/healthz" > /dev/null || fail "$f: the started server does not answer"
        log=$(dsm "$x/scripts/start-stop-status" log)
        grep -q 'created the first account: user admin, password ' "$log" ||
            fail "$f: the package log does not show the first password"
        # An upgrade: DSM stops the package, replaces its files, keeps PKGVAR.
        dsm "$x/scripts/start-stop-status" stop
        dsm "$x/scripts/preupgrade" && dsm "$x/scripts/postupgrade" || fail "$f: upgrade scripts"
        rm -rf "$x/target" && mkdir "$x/target" && tar -C "$x/target" -xzf "$x/package.tgz"
        dsm "$x/scripts/start-stop-status" start || fail "$f: start after the upgrade"
        for _ in $(seq 50); do curl -sf "http://127.0.0.1:$port/healthz" > /dev/null 2>&1 && break; sleep 0.2; done
        [ "$(grep -c 'created the first account' "$log")" = 1 ] || fail "$f: the upgrade lost the accounts"
        [ -d "$var/data/catalog" ] || fail "$f: no catalog in SYNOPKG_PKGVAR"
        dsm "$x/scripts/start-stop-status" stop
        if dsm "$x/scripts/start-stop-status" status; then fail "$f: status after stop says running"; fi
        [ "$(stat -c %u "$var/data/catalog")" = 65533 ] || fail "$f: the data is not the package user's"
    fi
    rm -rf "$x"
    echo "$f: DSM 7 layout, checksum, $synoarch binary$([ "$synoarch" = x86_64 ] && echo '; started, upgraded and stopped as the package user')"
done

# The aarch64 pair under user-mode emulation.
qemu=qemu-aarch64-static
command -v "$qemu" >/dev/null || qemu=qemu-aarch64
work=$(mktemp -d)
trap 'kill "${srv:-}" 2>/dev/null; rm -rf "$work"' EXIT
server="$PWD/nimbus-server-$version-aarch64-linux"
client="$PWD/nimbus-client-$version-aarch64-linux"
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
"$qemu" "$server" --listen "127.0.0.1:$port" --data "$work/data" > "$work/out" 2> "$work/err" &
srv=$!
for _ in $(seq 100); do grep -q '^listening on' "$work/out" 2>/dev/null && break; sleep 0.2; done
grep -q '^listening on' "$work/out" || { cat "$work/err" >&2; fail "the aarch64 server did not start"; }
sleep 0.3
password=$(sed -n 's/^created the first account: user admin, password //p' "$work/out")
backup_and_restore "http://127.0.0.1:$port" "$password" "$work" arm "$qemu" "$client"
echo "aarch64 under $qemu: the server served a backup and its restore, byte for byte"
echo "dist-test: all passed"
