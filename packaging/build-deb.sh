#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
#
# `make deb`: the Debian packages, in <target>/debian/ (packaging/README.md):
#   vhost-device-dmabuf_<v>-1_amd64.deb  the daemon, dmabufctl, the systemd unit, man pages,
#                                       completions (cargo-deb)
#   virtio-dmabuf-dkms_<v>-1_all.deb     the guest driver's source for DKMS (dpkg-deb)
# Prints the two paths on stdout (last lines); the rest goes to stderr.
set -euo pipefail

usage() {
    cat <<EOF
Usage: $(basename "$0") [--help]

Build the release binaries, generate the man pages and completions (xtask), pack the
daemon's package with cargo-deb $CARGO_DEB_VERSION (installed with cargo install --locked
into \$DMABUF_CACHE/cargo-deb-$CARGO_DEB_VERSION unless that version is on PATH) and the
DKMS package with dpkg-deb. Installs dpkg-dev if missing (cargo-deb's dependency lookup).
EOF
}

CARGO_DEB_VERSION=3.8.0

DMABUF_LOG_NAME=build-deb
# shellcheck source=../qemu-scripts/common.sh
source "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/../qemu-scripts/common.sh"
TOP="$(cd "$DMABUF_SCRIPTS_DIR/.." && pwd)"
cd "$TOP"

case "${1:-}" in
    -h|--help) usage; exit 0 ;;
    "") ;;
    *) usage >&2; die "unknown argument: $1" ;;
esac

CARGO="${CARGO:-cargo}"

# cargo-deb: the pinned version from PATH, else from the cache, else built into the cache.
cargo_deb() {
    local have dir="$DMABUF_CACHE/cargo-deb-$CARGO_DEB_VERSION" tmp
    have="$(cargo-deb --version 2>/dev/null || true)"
    if [[ "$have" == "cargo-deb $CARGO_DEB_VERSION" ]]; then
        command -v cargo-deb
        return 0
    fi
    if [[ ! -x "$dir/bin/cargo-deb" ]]; then
        cache_lock "cargo-deb"
        if [[ ! -x "$dir/bin/cargo-deb" ]]; then
            log "cargo install cargo-deb $CARGO_DEB_VERSION --locked (once, about 2 min)"
            mkdir -p "$DMABUF_CACHE"
            tmp="$(mktemp -d "$DMABUF_CACHE/.cargo-deb.XXXXXX")"
            "$CARGO" install cargo-deb --version "$CARGO_DEB_VERSION" --locked --root "$tmp" >&2 \
                || { rm -rf "$tmp"; die "cargo install cargo-deb failed"; }
            rm -rf "$dir"
            mv "$tmp" "$dir"
        fi
    fi
    echo "$dir/bin/cargo-deb"
}

ensure_host_packages dpkg-dev
CARGO_DEB="$(cargo_deb)"
TARGET="$("$CARGO" metadata --format-version 1 --no-deps | sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')"
[[ -n "$TARGET" ]] || die "cannot find cargo's target directory"
OUT="$TARGET/debian"
mkdir -p "$OUT"

# ---------------------------------------------------------------- vhost-device-dmabuf

log "building the release binaries"
"$CARGO" build --release -p vhost-device-dmabuf --bin vhost-device-dmabuf \
    -p dmabuf-client --bin dmabufctl >&2
# cargo-deb maps target/release/ of the asset list to the real target directory.
ASSETS="$TARGET/release/deb-assets"
"$CARGO" run -q --release -p xtask -- assets --out "$ASSETS" >&2
gzip -9nf "$ASSETS"/man/*.1                        # Debian policy 12.1
rm -f "$OUT"/vhost-device-dmabuf_*.deb
# Stripped in the package (the workspace's release profile keeps line tables for profiling).
"$CARGO_DEB" -p vhost-device-dmabuf --no-build --strip -o "$OUT" >&2
DAEMON_DEB="$(ls "$OUT"/vhost-device-dmabuf_*_amd64.deb)"

# ---------------------------------------------------------------- virtio-dmabuf-dkms

GD="$TOP/guest-driver"
VERSION="$(sed -n 's/^PACKAGE_VERSION="\(.*\)"$/\1/p' "$GD/dkms.conf")"
[[ -n "$VERSION" ]] || die "no PACKAGE_VERSION in guest-driver/dkms.conf"
STAGE="$(mktemp -d "$TARGET/.dkms-stage.XXXXXX")"
trap 'rm -rf "$STAGE"' EXIT
SRC="$STAGE/usr/src/virtio-dmabuf-$VERSION"
DOC="$STAGE/usr/share/doc/virtio-dmabuf-dkms"
mkdir -p "$SRC/include" "$DOC" "$STAGE/DEBIAN"
# The module's sources as the Kbuild file names them, its headers, the uapi header, the
# Makefile (its `driver` target is what dkms.conf runs) and dkms.conf.
cp "$GD"/Kbuild "$GD"/Makefile "$GD"/dkms.conf "$GD"/virtio_dmabuf_*.c "$GD"/virtio_dmabuf_*.h "$SRC/"
cp -r "$GD/include/uapi" "$SRC/include/"
cp packaging/dkms/copyright "$DOC/"
for f in postinst prerm; do
    sed "s/@VERSION@/$VERSION/g" "packaging/dkms/$f" > "$STAGE/DEBIAN/$f"
    chmod 755 "$STAGE/DEBIAN/$f"
done
find "$STAGE/usr" -type d -exec chmod 755 {} + && find "$STAGE/usr" -type f -exec chmod 644 {} +
size_kb="$(du -sk --apparent-size "$STAGE/usr" | cut -f1)"
sed -e "s/@VERSION@/$VERSION/g" -e "s/@SIZE@/$size_kb/" packaging/dkms/control > "$STAGE/DEBIAN/control"
(cd "$STAGE" && find usr -type f -print0 | sort -z | xargs -0 md5sum) > "$STAGE/DEBIAN/md5sums"
DKMS_DEB="$OUT/virtio-dmabuf-dkms_${VERSION}-1_all.deb"
rm -f "$OUT"/virtio-dmabuf-dkms_*.deb
dpkg-deb --root-owner-group -Zxz --build "$STAGE" "$DKMS_DEB" >&2

for d in "$DAEMON_DEB" "$DKMS_DEB"; do
    log "$(basename "$d"): $(stat -c %s "$d") bytes, installed $(dpkg-deb -f "$d" Installed-Size) KiB"
done
echo "$DAEMON_DEB"
echo "$DKMS_DEB"
