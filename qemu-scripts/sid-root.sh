#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
#
# Make (once) a minimal Debian sid root that carries the newer stack: stock QEMU 11.1,
# gcc-16 and the 7.x kernel headers.
set -euo pipefail

usage() {
    cat <<EOF
Usage: $(basename "$0") [--help] [--path] [--rebuild]

Make a minimal Debian sid root with debootstrap (once, cached) and install into it
what the 2026 stack needs and bookworm cannot give:
  - QEMU 11.1 (qemu-system-x86, no recommends; run on the host through the root's
    own loader by the wrapper <dir>/bin/qemu-system-x86_64, see ensure-qemu.sh --stock)
  - gcc-16, make, pahole and the headers of the newest Linux 7.2 (sid) and 7.3
    (experimental) kernels, for building the guest driver (in a chroot)
Print SID_ROOT=<path> on stdout (the last line); everything else goes to stderr.

The root lives in \${DMABUF_CACHE:-\$HOME/.cache/virtio-dmabuf}/sid-root-<key>/root,
where <key> is a hash of the package set below and of this script's recipe
version: a change of either makes a new root, an old one is never reused. It is
made in a temporary directory and renamed into place when complete, under a lock.

The mirror is the one serving bookworm in the system apt sources (as for every
script here; DMABUF_APT_MIRROR overrides). The mirror's sid snapshot is frozen and
its Release files are past their Valid-Until date, so apt inside the root runs
with Acquire::Check-Valid-Until=false (written to the root's own apt.conf.d).
Nothing on the host is changed, except that debootstrap is installed if missing.

Needs root (debootstrap, chroot). Measured here: debootstrap ~30 s, installing
the packages ~1-2 min.

Options:
  --path      only print the path if the root is already made (exit 1 if not)
  --rebuild   make it again even if the cache has it
  --help      this text

Environment: DMABUF_CACHE, DMABUF_APT_MIRROR, DMABUF_VERBOSE=1.
EOF
}

DMABUF_LOG_NAME=sid-root
# shellcheck source=common.sh
source "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/common.sh"

ONLY_PATH=0
REBUILD=0
while (($#)); do
    case "$1" in
        -h|--help) usage; exit 0 ;;
        --path) ONLY_PATH=1 ;;
        --rebuild) REBUILD=1 ;;
        *) usage >&2; die "unknown argument: $1" ;;
    esac
    shift
done

DEST="$(sid_root_dir)"
if ((ONLY_PATH)); then
    [[ -f "$DEST/.complete" ]] || exit 1
    echo "SID_ROOT=$DEST/root"
    exit 0
fi
if ((!REBUILD)) && [[ -f "$DEST/.complete" ]]; then
    debug "sid root ready in $DEST"
    echo "SID_ROOT=$DEST/root"
    exit 0
fi

need_root "making a Debian sid root (debootstrap, chroot)"
cache_lock "sid-root"
if ((!REBUILD)) && [[ -f "$DEST/.complete" ]]; then
    echo "SID_ROOT=$DEST/root"
    exit 0
fi
ensure_host_packages debootstrap

mirror="$(debian_mirror_uri)" || die "cannot find Debian's mirror in the system apt sources"
keyring="$(debian_keyring)"
[[ -f "$keyring" ]] || die "apt keyring $keyring not found (install debian-archive-keyring)"

mkdir -p "$DMABUF_CACHE"
TMP="$(mktemp -d "$DMABUF_CACHE/.sid-root.XXXXXX")"
cleanup() { rm -rf "$TMP"; }
trap cleanup EXIT
# Leftovers of interrupted runs (we hold the lock, so they are not in use).
for old in "$DMABUF_CACHE"/.sid-root.*; do
    [[ "$old" != "$TMP" ]] && rm -rf "$old"
done
R="$TMP/root"

start=$(date +%s)
log "debootstrap --variant=minbase sid (mirror from the system apt sources)"
debootstrap --variant=minbase --keyring="$keyring" sid "$R" "$mirror" >"$TMP/debootstrap.log" 2>&1 || {
    tail -n 30 "$TMP/debootstrap.log" | sed 's/^/  | /' >&2
    die "debootstrap sid failed (full log: $TMP/debootstrap.log, removed on exit)"
}
t_boot=$(( $(date +%s) - start ))
log "debootstrap done in ${t_boot} s"

# The root's own apt configuration: sid and experimental, no Valid-Until check (frozen
# snapshot), no recommends, no documentation.
cat > "$R/etc/apt/sources.list" <<EOF
# written by qemu-scripts/sid-root.sh
deb [signed-by=/usr/share/keyrings/dmabuf-archive.gpg] $mirror sid main
deb [signed-by=/usr/share/keyrings/dmabuf-archive.gpg] $mirror experimental main
EOF
cp "$keyring" "$R/usr/share/keyrings/dmabuf-archive.gpg"
cat > "$R/etc/apt/apt.conf.d/90dmabuf" <<'EOF'
// written by qemu-scripts/sid-root.sh: the mirror's sid snapshot is frozen
Acquire::Check-Valid-Until "false";
APT::Install-Recommends "false";
Acquire::Languages "none";
EOF
cat > "$R/etc/dpkg/dpkg.cfg.d/90dmabuf-nodoc" <<'EOF'
path-exclude /usr/share/doc/*
path-exclude /usr/share/man/*
path-exclude /usr/share/locale/*
EOF
# Host name resolution for apt inside the chroot.
cp -L /etc/resolv.conf "$R/etc/resolv.conf" 2>/dev/null || true

log "apt-get update in the root"
sid_chroot "$R" apt-get update -q >"$TMP/apt.log" 2>&1 || {
    tail -n 20 "$TMP/apt.log" | sed 's/^/  | /' >&2; die "apt-get update in the sid root failed"; }

# The 7.x header packages: the newest 7.2 in sid and the newest 7.3 in experimental.
newest_headers() { # suite regex
    sid_chroot "$R" apt-cache madison $(sid_chroot "$R" apt-cache search --names-only "$2" | awk '{print $1}') 2>/dev/null \
        | awk -F'|' -v s="$1" '{gsub(/ /, "", $1); gsub(/ /, "", $2); if ($3 ~ " " s "/main ") print $1 " " $2}' \
        | sort -k2,2 -V | tail -n1 | awk '{print $1}'
}
h72="$(newest_headers sid '^linux-headers-7\.2\.[0-9.]+\+deb[0-9]+-amd64$')"
h73="$(newest_headers experimental '^linux-headers-7\.3(\.[0-9]+)?(\+deb[0-9]+)?-amd64$')"
[[ -n "$h72" ]] || die "no linux-headers-7.2.*-amd64 in sid"
[[ -n "$h73" ]] || die "no linux-headers-7.3*-amd64 in experimental"
pkgs=("${DMABUF_SID_PACKAGES[@]}" "$h72" "$h73/experimental")
log "installing into the root: ${pkgs[*]}"
t0=$(date +%s)
sid_chroot "$R" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${pkgs[@]}" >>"$TMP/apt.log" 2>&1 || {
    tail -n 30 "$TMP/apt.log" | sed 's/^/  | /' >&2; die "apt-get install in the sid root failed"; }
t_install=$(( $(date +%s) - t0 ))
sid_chroot "$R" apt-get clean

qv="$("$R/usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2" --library-path "$R/usr/lib/x86_64-linux-gnu" \
        "$R/usr/bin/qemu-system-x86_64" --version | head -n1)" || die "the root's qemu-system-x86_64 does not run on this host"
log "$qv"
cat > "$TMP/INFO" <<EOF
Debian sid root made by qemu-scripts/sid-root.sh on $(date -u +%Y-%m-%dT%H:%M:%SZ)
recipe: $DMABUF_SID_RECIPE
packages: ${pkgs[*]}
qemu: $qv
headers: $(cd "$R/usr/src" && ls -d linux-headers-*-amd64 | tr '\n' ' ')
debootstrap: ${t_boot} s, apt-get install: ${t_install} s
EOF
touch "$TMP/.complete"
chmod 755 "$TMP"
[[ -e "$DEST" ]] && mv "$DEST" "$TMP/old"
mv "$TMP" "$DEST"
rm -rf "$DEST/old"
trap - EXIT
log "sid root ready in $DEST ($(( $(date +%s) - start )) s)"
echo "SID_ROOT=$DEST/root"
