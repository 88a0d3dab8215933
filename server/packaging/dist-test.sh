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
        if readelf -lW "$f" | grep -q 'INTERP'; then fail "$f has a program interpreter"; fi
        if readelf -dW "$f" | grep -q 'NEEDED'; then fail "$f needs shared libraries"; fi
        if readelf -SW "$f" | grep -q '\.debug_'; then fail "$f is not stripped"; fi
        echo "$f: static, stripped, $(stat -c %s "$f") bytes"
    done
done
file "nimbus-client-$version-x86_64-windows.exe" | grep -q 'PE32+ executable' ||
    fail "the Windows client is not a PE32+ executable"
for bin in nimbus-server nimbus-client; do
    v=$("./$bin-$version-x86_64-linux" --version)
    [ "$v" = "$bin $version (commit $commit)" ] || fail "$bin --version says: $v"
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
mkdir -p "$work/tree/sub"
head -c 3000000 /dev/urandom > "$work/tree/sub/random.bin"
printf 'backed up by the aarch64 client\n' > "$work/tree/hello.txt"
touch -d '1 minute ago' "$work/tree/hello.txt" "$work/tree/sub/random.bin"
url="http://127.0.0.1:$port"
printf '%s\n' "$password" | "$qemu" "$client" login --server "$url" --user admin \
    --password-stdin --name arm --config "$work/client.json" > /dev/null
"$qemu" "$client" --server "$url" --dir "$work/tree" --name arm --config "$work/client.json" \
    --state "$work/state.json" --once --settle 0 > "$work/backup.log" 2>&1 ||
    { cat "$work/backup.log" >&2; fail "the aarch64 client's backup failed"; }
"$qemu" "$client" restore --server "$url" --config "$work/client.json" --from arm \
    --to "$work/restored" > "$work/restore.log" 2>&1 ||
    { cat "$work/restore.log" >&2; fail "the aarch64 client's restore failed"; }
diff -r "$work/tree" "$work/restored" || fail "the restored tree differs"
echo "aarch64 under $qemu: the server served a backup and its restore, byte for byte"
echo "dist-test: all passed"
