#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
#
# Build an out-of-tree kernel module directory against a Debian guest kernel series.
set -euo pipefail

usage() {
    cat <<EOF
Usage: $(basename "$0") SERIES DIR [MAKE-ARGS...]

Run the kernel's module build (make -C <headers> M=DIR MAKE-ARGS) for DIR, a
directory with a Kbuild file, against the Debian kernel SERIES
(${DMABUF_KERNEL_SERIES[*]:-6.1 6.12 7.2 7.3}) that fetch-kernel.sh provides (fetched if missing).
MAKE-ARGS default to "modules"; pass e.g. "W=1 modules".

6.x builds run on this host with gcc-12. 7.x headers need gcc-16, which lives in
the Debian sid root (sid-root.sh): DIR is copied (symlinks followed) into the
root, built there with chroot, and everything the build wrote is copied back into
DIR; paths in the build output are the root's (/var/tmp/kbuild.*). The make
output goes to stdout; the exit status is make's.

Example: $(basename "$0") 7.2 guest-driver/build/7.2 W=1 modules
EOF
}

DMABUF_LOG_NAME=kbuild
# shellcheck source=common.sh
source "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/common.sh"

case "${1:-}" in -h|--help) usage; exit 0 ;; esac
(($# >= 2)) || { usage >&2; exit 2; }
SERIES="$(kernel_series "$1")"
DIR="$(cd "$2" && pwd)" || die "no directory $2"
shift 2
(($#)) || set -- modules
[[ -f "$DIR/Kbuild" || -f "$DIR/Makefile" ]] || die "$DIR has no Kbuild or Makefile"

env="$("$DMABUF_SCRIPTS_DIR/fetch-kernel.sh" "$SERIES")" || die "fetch-kernel.sh $SERIES failed"
eval "$env"
[[ -d "$KDIR" ]] || die "fetch-kernel.sh $SERIES gave no KDIR"

if [[ -z "${KCHROOT:-}" ]]; then
    exec make -C "$KDIR" M="$DIR" "$@"
fi

# 7.x: build inside the sid root.
need_root "building against $SERIES (chroot into the sid root)"
inner="$(mktemp -d "$KCHROOT/var/tmp/kbuild.XXXXXX")"
trap 'rm -rf "$inner"' EXIT
# Follow symlinks (a build directory links to its sources; under -L a symlink that is still
# a symlink is a dangling one: a source file
# renamed since the directory was made), left out.
(cd "$DIR" && find -L . -mindepth 1 -type l -prune -o -print0 | cpio -0 -pdmL --quiet "$inner")
rc=0
sid_chroot "$KCHROOT" make -C "${KDIR#"$KCHROOT"}" M="/var/tmp/${inner##*/}" "$@" || rc=$?
# Bring back what the build wrote (objects, .ko, .cmd files, modules.order, ...): every
# file, except where DIR has a symlink (the sources a build directory links to).
while IFS= read -r -d '' f; do
    [[ -L "$DIR/$f" ]] && continue
    mkdir -p "$DIR/$(dirname "$f")"
    cp -f "$inner/$f" "$DIR/$f"
done < <(cd "$inner" && find . -type f -printf '%P\0')
exit "$rc"
