#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
#
# Find, install or build a qemu-system-x86_64 that can create vhost-user-test-device-pci.
set -euo pipefail

usage() {
    cat <<EOF
Usage: $(basename "$0") [--help] [--stock | --patched | --reconnect] [--no-build] [--rebuild]
       $(basename "$0") --supports-reconnect QEMU-BINARY

Print the absolute path of a qemu-system-x86_64 that offers a user-creatable
vhost-user-test-device-pci (QEMU >= 10.2). The path is the last line on stdout;
everything else goes to stderr. Two QEMUs are known:

  stock    Debian's QEMU 11.1 (qemu-system-x86 1:11.1.3+ds-1 today), unpatched and
           unbuilt: installed into the Debian sid root of sid-root.sh (made if
           missing, ~45 s) and run on this host through the root's own dynamic
           loader, with its own firmware and modules (no chroot: sockets and paths
           stay the host's). The printed path is a small wrapper script,
           <sid root dir>/bin/qemu-system-x86_64. It has vhost-user shared memory.
           It does not reconnect to a restarted backend (see below). The default.
  patched  QEMU ${DMABUF_QEMU_VERSION:-10.2.2} built from Debian's source package qemu
           ${DMABUF_QEMU_DEB_VERSION:-1:10.2.2+ds-1} (suite sid, deb-src) with the patches in
           qemu-scripts/patches/ applied, cached in
           \${DMABUF_CACHE:-\$HOME/.cache/virtio-dmabuf}/qemu-${DMABUF_QEMU_VERSION:-10.2.2}-<patch hash>/bin/
           (built if missing: ~3-8 min on 2 cores; needs root for the build
           dependencies). Its patch makes it reconnect to a restarted backend.

Which one:
  1. \$QEMU, if set, whatever the options (an error if that binary lacks the device;
     with --reconnect, a warning if it cannot reconnect)
  2. --patched or --reconnect: the patched build
  3. otherwise (--stock, or nothing): the stock QEMU 11.1

The patched cache directory is named after the patch set (the first 12 hex digits of a
sha256 over the patch files' names and contents), so a build with other patches
(or none) is never reused. The build leaves PATCHES (applied patches and their
sha256) next to bin/.

"Can reconnect": neither stock QEMU 10.2 nor stock 11.1.3's vhost-user-test-device
reinitialises its vhost device after a restart of the vhost-user backend;
patches/0001-vhost-user-base-reconnect.patch fixes that. A binary can reconnect if
it is a build of this script with that patch (its PATCHES file says so), or if
DMABUF_QEMU_RECONNECT=1 says yours can.

For the patched build this also makes sure the firmware that run-vm passes with -L
(Debian's seabios and qemu-system-data) is installed on the host.

Options:
  --stock               the stock QEMU 11.1 (the default)
  --patched             the patched ${DMABUF_QEMU_VERSION:-10.2.2} build
  --reconnect           the QEMU must survive a backend restart (implies --patched)
  --no-build            fail instead of building the patched QEMU when it is not cached
  --rebuild             build the patched QEMU again (replaces the cached one when done)
  --supports-reconnect BIN
                        only say whether BIN can reconnect: prints "yes: <why>" or
                        "no: <why>", exit status 0 or 1; builds nothing
  --help                this text

Environment: QEMU, DMABUF_CACHE, DMABUF_VERBOSE=1, DMABUF_APT_MIRROR,
DMABUF_QEMU_RECONNECT=1.
EOF
}

# shellcheck source=common.sh
source "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/common.sh"

NO_BUILD=0
REBUILD=0
RECONNECT=0
KIND=stock
CHECK_RECONNECT=""
while (($#)); do
    case "$1" in
        -h|--help) usage; exit 0 ;;
        --no-build) NO_BUILD=1 ;;
        --rebuild) REBUILD=1; KIND=patched ;;
        --reconnect) RECONNECT=1; KIND=patched ;;
        --stock) KIND=stock ;;
        --patched) KIND=patched ;;
        --supports-reconnect)
            (($# >= 2)) || { usage >&2; die "--supports-reconnect needs a QEMU binary"; }
            CHECK_RECONNECT="$2"; shift ;;
        *) usage >&2; die "unknown argument: $1" ;;
    esac
    shift
done

# Our patches to QEMU, applied in name order; the cache directory is keyed on them.
PATCH_DIR="$DMABUF_SCRIPTS_DIR/patches"
shopt -s nullglob
# shellcheck disable=SC2206 # a glob on purpose
PATCHES=("$PATCH_DIR"/*.patch)
shopt -u nullglob
if ((${#PATCHES[@]})); then
    PATCH_HASH="$(for p in "${PATCHES[@]}"; do basename "$p"; cat "$p"; done | sha256sum | cut -c1-12)"
    QEMU_CACHE_DIR="$DMABUF_CACHE/qemu-$DMABUF_QEMU_VERSION-$PATCH_HASH"
else
    QEMU_CACHE_DIR="$DMABUF_CACHE/qemu-$DMABUF_QEMU_VERSION"
fi
QEMU_CACHE_BIN="$QEMU_CACHE_DIR/bin/qemu-system-x86_64"
FIRMWARE_PACKAGES=(seabios qemu-system-data)
RECONNECT_PATCH=0001-vhost-user-base-reconnect.patch

qemu_version() { "$1" --version 2>/dev/null | head -n1 || true; }

# Can this QEMU reconnect to a restarted vhost-user backend? Prints "yes: why" or
# "no: why". Stock QEMU 10.2's vhost-user-base cannot (see patches/$RECONNECT_PATCH);
# our builds record their patches in PATCHES next to bin/.
reconnect_support() {
    local q dir
    q="$(readlink -f "$1")"
    dir="$(dirname "$(dirname "$q")")"
    if [[ "${DMABUF_QEMU_RECONNECT:-}" == 1 ]]; then
        echo "yes: DMABUF_QEMU_RECONNECT=1"
        return 0
    fi
    if [[ -f "$dir/PATCHES" ]] && grep -q "^$RECONNECT_PATCH " "$dir/PATCHES"; then
        echo "yes: built by ensure-qemu.sh with $RECONNECT_PATCH"
        return 0
    fi
    echo "no: $q ($(qemu_version "$q")) is not a build of qemu-scripts/ensure-qemu.sh with patches/$RECONNECT_PATCH (stock QEMU's vhost-user-test-device, 10.2 and 11.1.3 alike, does not reinitialise its vhost device after a backend restart); use ensure-qemu.sh --patched, or set DMABUF_QEMU_RECONNECT=1 if this QEMU has the fix"
    return 1
}

if [[ -n "$CHECK_RECONNECT" ]]; then
    [[ -x "$CHECK_RECONNECT" ]] || die "--supports-reconnect $CHECK_RECONNECT: not an executable"
    reconnect_support "$CHECK_RECONNECT"
    exit
fi

# Does this binary run and list vhost-user-test-device-pci among the devices a user may
# create? (-device help lists only user-creatable devices.)
has_test_device() {
    local q="$1" out
    [[ -x "$q" ]] || return 1
    out="$("$q" -device help 2>/dev/null)" || return 1
    grep -q '"vhost-user-test-device-pci"' <<<"$out"
}

# pick BIN REASON [stock]: print BIN and exit (the patched build and a user's QEMU take
# their firmware from the host's seabios and qemu-system-data; the stock one has its own)
pick() {
    local q reason="$2"
    q="$(readlink -f "$1")"
    log "using $q ($(qemu_version "$q")): $reason"
    [[ "${3:-}" == stock ]] || ensure_host_packages "${FIRMWARE_PACKAGES[@]}"
    echo "$q"
    exit 0
}

# ---------------------------------------------------------------- search

if [[ -n "${QEMU:-}" ]]; then
    q="$QEMU"
    [[ "$q" == */* ]] || q="$(command -v "$q" || true)"
    [[ -n "$q" && -x "$q" ]] || die "QEMU=$QEMU is not an executable"
    has_test_device "$q" || die "QEMU=$QEMU ($(qemu_version "$q")) has no user-creatable vhost-user-test-device-pci (needs QEMU >= 10.2); unset QEMU to use or build ${DMABUF_QEMU_VERSION}"
    if ((RECONNECT)) && ! why="$(reconnect_support "$q")"; then
        warn "QEMU=$QEMU cannot reconnect to a restarted backend (${why#no: })"
    fi
    pick "$q" "taken from \$QEMU"
fi

if [[ "$KIND" == stock ]]; then
    sid_env="$("$DMABUF_SCRIPTS_DIR/sid-root.sh" | tail -n1)" || die "sid-root.sh failed: no stock QEMU"
    sid_root="${sid_env#SID_ROOT=}"
    wrapper="$(sid_qemu_wrapper "$sid_root")"
    has_test_device "$wrapper" \
        || die "the sid root's QEMU ($(qemu_version "$wrapper")) has no user-creatable vhost-user-test-device-pci"
    pick "$wrapper" "Debian's stock QEMU from the sid root, run through the root's loader" stock
fi

if ((!REBUILD)) && [[ -e "$QEMU_CACHE_BIN" ]]; then
    has_test_device "$QEMU_CACHE_BIN" && pick "$QEMU_CACHE_BIN" "built earlier into the cache"
    warn "$QEMU_CACHE_BIN exists but does not work (missing libraries?); rebuilding"
fi

((NO_BUILD)) && die "the patched QEMU $DMABUF_QEMU_VERSION is not in the cache and --no-build was given"

# ---------------------------------------------------------------- build

need_root "building QEMU (apt-get build dependencies)"
cache_lock "qemu-$DMABUF_QEMU_VERSION"
# Someone else may have finished the build while we waited for the lock.
if ((!REBUILD)) && has_test_device "$QEMU_CACHE_BIN"; then
    pick "$QEMU_CACHE_BIN" "built into the cache by a concurrent run"
fi

BUILD_DEPS=(build-essential ninja-build libglib2.0-dev libpixman-1-dev libfdt-dev flex bison
            pkg-config python3-venv device-tree-compiler xz-utils patch)
ensure_host_packages "${BUILD_DEPS[@]}" "${FIRMWARE_PACKAGES[@]}"

# Python build tools: Debian's +ds tarball ships no python/wheels, so meson comes from pip.
MESON_VERSION=1.5.0
PYCOTAP_VERSION=1.3.1
VENV="$DMABUF_CACHE/venv-meson-$MESON_VERSION"
if [[ ! -f "$VENV/.complete" ]]; then
    log "creating python venv $VENV (meson==$MESON_VERSION pycotap==$PYCOTAP_VERSION)"
    rm -rf "$VENV"
    python3 -m venv "$VENV" >&2
    "$VENV/bin/pip" install -q --disable-pip-version-check "meson==$MESON_VERSION" "pycotap==$PYCOTAP_VERSION" >&2 \
        || die "pip install meson==$MESON_VERSION pycotap==$PYCOTAP_VERSION failed"
    touch "$VENV/.complete"
fi

# Source: Debian's qemu source package from sid (deb-src in the private apt config).
SRC_DIR="$DMABUF_CACHE/src/qemu_${DMABUF_QEMU_DEB_VERSION#*:}"
ORIG_GLOB="qemu_${DMABUF_QEMU_VERSION}+ds.orig.tar.*"
shopt -s nullglob
# shellcheck disable=SC2206 # a glob on purpose
orig=("$SRC_DIR"/$ORIG_GLOB)
if ((${#orig[@]} == 0)); then
    private_apt_update
    mkdir -p "$SRC_DIR.tmp"
    log "downloading source package qemu=$DMABUF_QEMU_DEB_VERSION"
    (cd "$SRC_DIR.tmp" && papt_get source -q --download-only "qemu=$DMABUF_QEMU_DEB_VERSION" >&2) || {
        DMABUF_APT_UPDATE=1 private_apt_update
        (cd "$SRC_DIR.tmp" && papt_get source -q --download-only "qemu=$DMABUF_QEMU_DEB_VERSION" >&2) \
            || die "apt-get source qemu=$DMABUF_QEMU_DEB_VERSION failed (is that version still in sid? see field notes)"
    }
    rm -rf "$SRC_DIR"
    mv "$SRC_DIR.tmp" "$SRC_DIR"
    # shellcheck disable=SC2206 # a glob on purpose
orig=("$SRC_DIR"/$ORIG_GLOB)
fi
shopt -u nullglob
((${#orig[@]} == 1)) || die "expected one $ORIG_GLOB in $SRC_DIR, found ${#orig[@]}"

WORK="$(mktemp -d "$DMABUF_CACHE/.qemu-$DMABUF_QEMU_VERSION.build.XXXXXX")"
cleanup() { rm -rf "$WORK"; }
trap cleanup EXIT
# Leftovers of interrupted builds (not ours, lock held) can go.
for old in "$DMABUF_CACHE"/.qemu-"$DMABUF_QEMU_VERSION".build.*; do
    [[ "$old" != "$WORK" ]] && rm -rf "$old"
done

start=$(date +%s)
log "unpacking $(basename "${orig[0]}") into $WORK"
tar -C "$WORK" -xf "${orig[0]}"
srcdir=("$WORK"/qemu-*)
if ((${#srcdir[@]} != 1)) || [[ ! -d "${srcdir[0]}" ]]; then die "unexpected layout of ${orig[0]}"; fi
cd "${srcdir[0]}"

# The +ds tarball has no edk2 firmware blobs; do not try to unpack them.
grep -q 'unpack_edk2_blobs = bzip2.found()' meson.build \
    || die "meson.build no longer has the edk2 line the build patches; check the QEMU version"
sed -i 's/unpack_edk2_blobs = bzip2.found()/unpack_edk2_blobs = false/' meson.build

# Our patches (git format-patch files, applied in name order).
: > "$WORK/PATCHES"
for p in "${PATCHES[@]}"; do
    log "applying $(basename "$p")"
    patch -p1 --batch --forward --quiet < "$p" >&2 || die "$(basename "$p") does not apply to QEMU $DMABUF_QEMU_VERSION"
    printf '%s %s\n' "$(basename "$p")" "$(sha256sum < "$p" | cut -c1-64)" >> "$WORK/PATCHES"
done

mkdir build
cd build
log "configuring QEMU $DMABUF_QEMU_VERSION"
PATH="$VENV/bin:$PATH" ../configure \
    --python="$VENV/bin/python3" \
    --target-list=x86_64-softmmu --without-default-features \
    --enable-vhost-user --enable-kvm --enable-tcg \
    --disable-docs --disable-install-blobs >&2 \
    || die "configure failed (see output above)"
log "building qemu-system-x86_64 with ninja -j$(nproc)"
PATH="$VENV/bin:$PATH" ninja -j"$(nproc)" qemu-system-x86_64 >&2 || die "ninja failed (see output above)"

has_test_device ./qemu-system-x86_64 || die "the built QEMU lacks vhost-user-test-device-pci"

mkdir -p "$WORK/out/bin"
cp qemu-system-x86_64 "$WORK/out/bin/"
strip "$WORK/out/bin/qemu-system-x86_64"
cp "$WORK/PATCHES" "$WORK/out/PATCHES"
cat > "$WORK/out/BUILD-INFO" <<EOF
qemu $DMABUF_QEMU_VERSION built by qemu-scripts/ensure-qemu.sh
source: Debian source package qemu $DMABUF_QEMU_DEB_VERSION ($(basename "${orig[0]}"))
patches: ${#PATCHES[@]} from qemu-scripts/patches (see PATCHES)
built: $(date -u +%Y-%m-%dT%H:%M:%SZ) on $(uname -n) in $(( $(date +%s) - start )) s
configure: --target-list=x86_64-softmmu --without-default-features --enable-vhost-user --enable-kvm --enable-tcg --disable-docs --disable-install-blobs
run with: -L /usr/share/seabios -L /usr/share/qemu
EOF

# Publish atomically: the cache directory appears only once complete.
if [[ -e "$QEMU_CACHE_DIR" ]]; then
    mv "$QEMU_CACHE_DIR" "$WORK/old"
fi
mv "$WORK/out" "$QEMU_CACHE_DIR"
log "built QEMU $DMABUF_QEMU_VERSION in $(( $(date +%s) - start )) s"
cd /
pick "$QEMU_CACHE_BIN" "freshly built from Debian's qemu $DMABUF_QEMU_DEB_VERSION"
