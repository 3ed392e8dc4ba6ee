#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
# (variables defined here are used by the scripts that source this file)
# shellcheck disable=SC2034
#
# Shared helpers for the qemu-scripts. Source this file; do not run it.
#
#   DMABUF_CACHE       cache root (default: $HOME/.cache/virtio-dmabuf)
#   DMABUF_APT_MIRROR  override the Debian mirror URI found in the system apt sources
#   DMABUF_APT_SECURITY_MIRROR
#                      override the Debian security URI (empty string: do not use one)
#   DMABUF_VERBOSE=1   print debug messages
#
# Nothing here changes the system's apt configuration: the private apt setup keeps its
# own sources.list, package lists and download cache under "$DMABUF_CACHE/apt".

set -euo pipefail

if [[ "${BASH_SOURCE[0]}" == "$0" ]]; then
    echo "common.sh: this file is meant to be sourced by the other qemu-scripts, not run" >&2
    exit 2
fi

DMABUF_CACHE="${DMABUF_CACHE:-$HOME/.cache/virtio-dmabuf}"
DMABUF_SCRIPTS_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
DMABUF_DEFAULT_KEYRING=/usr/share/keyrings/debian-archive-keyring.gpg
DMABUF_QEMU_VERSION=10.2.2
DMABUF_QEMU_DEB_VERSION=1:10.2.2+ds-1

# ---------------------------------------------------------------- logging

# Name shown in front of messages: the script that sourced us.
DMABUF_LOG_NAME="${DMABUF_LOG_NAME:-$(basename "${0:-qemu-scripts}")}"

log() { printf '%s: %s\n' "$DMABUF_LOG_NAME" "$*" >&2; }
warn() { printf '%s: warning: %s\n' "$DMABUF_LOG_NAME" "$*" >&2; }
debug() { if [[ "${DMABUF_VERBOSE:-0}" == 1 ]]; then printf '%s: debug: %s\n' "$DMABUF_LOG_NAME" "$*" >&2; fi; }
die() { printf '%s: error: %s\n' "$DMABUF_LOG_NAME" "$*" >&2; exit 1; }

# Run a command, logging it first.
run() { log "+ $*"; "$@"; }

need_root() {
    [[ "$(id -u)" == 0 ]] || die "$1 needs root (apt-get install); run as root or install it yourself"
}

# ---------------------------------------------------------------- host packages

# Install Debian packages that are not installed yet (system apt, bookworm).
# Usage: ensure_host_packages pkg...
ensure_host_packages() {
    local missing=() p st
    for p in "$@"; do
        st="$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)"
        [[ "$st" == "install ok installed" ]] || missing+=("$p")
    done
    ((${#missing[@]} == 0)) && return 0
    need_root "installing ${missing[*]}"
    log "installing host packages: ${missing[*]}"
    if ! DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}" >&2; then
        log "apt-get install failed; refreshing the system package lists and retrying"
        apt-get update -q >&2 || die "apt-get update failed"
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}" >&2 \
            || die "could not install: ${missing[*]}"
    fi
}

# ---------------------------------------------------------------- system apt sources

# Print every enabled source entry of the system apt configuration, one record per
# (type, uri, suite) as tab-separated fields:
#   type  uri  suite  components(space-separated)  signed-by(path or empty)
# Reads /etc/apt/sources.list and /etc/apt/sources.list.d/*.list (one-line format) and
# /etc/apt/sources.list.d/*.sources (deb822 format); other file names are ignored, as
# apt itself ignores them.
apt_source_entries() {
    local etc="${DMABUF_APT_ETC:-/etc/apt}" f
    local files=()
    [[ -f "$etc/sources.list" ]] && files+=("$etc/sources.list")
    for f in "$etc"/sources.list.d/*.list; do [[ -f "$f" ]] && files+=("$f"); done
    ((${#files[@]})) && awk '
        {
            sub(/#.*/, "")
            n = split($0, w, /[ \t]+/)
            i = 1; while (i <= n && w[i] == "") i++
            if (i > n) next
            type = w[i++]
            if (type != "deb" && type != "deb-src") next
            signed = ""
            if (w[i] ~ /^\[/) {
                # options: [ key=value ... ] possibly spread over several words
                opts = ""
                while (i <= n) { opts = opts " " w[i]; if (w[i] ~ /\]$/) { i++; break } i++ }
                gsub(/[\[\]]/, "", opts)
                m = split(opts, o, /[ \t]+/)
                for (k = 1; k <= m; k++) if (o[k] ~ /^signed-by=/) { signed = substr(o[k], 11); sub(/,.*/, "", signed) }
            }
            uri = w[i++]; suite = w[i++]; comps = ""
            for (; i <= n; i++) if (w[i] != "") comps = comps (comps == "" ? "" : " ") w[i]
            printf "%s\t%s\t%s\t%s\t%s\n", type, uri, suite, comps, signed
        }' "${files[@]}"
    for f in "$etc"/sources.list.d/*.sources; do
        [[ -f "$f" ]] || continue
        awk '
            function flush(   nt, nu, ns, a, b, c, x, y, z) {
                if (have && tolower(fld["enabled"]) != "no") {
                    nt = split(fld["types"], a, /[ \t]+/)
                    nu = split(fld["uris"], b, /[ \t]+/)
                    ns = split(fld["suites"], c, /[ \t]+/)
                    signed = fld["signed-by"]
                    if (signed !~ /^\//) signed = ""   # embedded key block or fingerprints
                    sub(/[ \t].*/, "", signed)
                    for (x = 1; x <= nt; x++) for (y = 1; y <= nu; y++) for (z = 1; z <= ns; z++)
                        if ((a[x] == "deb" || a[x] == "deb-src") && b[y] != "" && c[z] != "")
                            printf "%s\t%s\t%s\t%s\t%s\n", a[x], b[y], c[z], fld["components"], signed
                }
                delete fld; have = 0; last = ""
            }
            /^#/ { next }
            /^[ \t]*$/ { flush(); next }
            /^[ \t]/ {                       # continuation line
                if (last != "") { v = $0; gsub(/^[ \t]+|[ \t]+$/, "", v); if (v != ".") fld[last] = fld[last] " " v }
                next
            }
            {
                k = $0; sub(/:.*/, "", k); k = tolower(k)
                v = $0; sub(/^[^:]*:/, "", v); gsub(/^[ \t]+|[ \t]+$/, "", v)
                fld[k] = v; last = k; have = 1
            }
            END { flush() }' "$f"
    done
}

# True if apt's downloaded Release file for (uri, suite) names Debian as its origin.
_apt_release_is_debian() {
    local uri="$1" suite="$2" stem f
    stem="${uri#*://}"; stem="${stem%/}"; stem="${stem//\//_}"
    for f in /var/lib/apt/lists/"${stem}"_dists_"${suite}"_InRelease /var/lib/apt/lists/"${stem}"_dists_"${suite}"_Release; do
        [[ -f "$f" ]] && grep -qx 'Origin: Debian' "$f" && return 0
    done
    return 1
}

# Print the URI of Debian's main archive as configured on this machine: the entry that
# serves the "bookworm" suite with the "main" component. When several do, prefer one whose
# downloaded Release file says "Origin: Debian". DMABUF_APT_MIRROR overrides.
debian_mirror_uri() {
    if [[ -n "${DMABUF_APT_MIRROR:-}" ]]; then echo "${DMABUF_APT_MIRROR%/}"; return 0; fi
    local type uri suite comps signed first=""
    while IFS=$'\t' read -r type uri suite comps signed; do
        [[ "$suite" == bookworm && " $comps " == *" main "* ]] || continue
        [[ -z "$first" ]] && first="$uri"
        if _apt_release_is_debian "$uri" "$suite"; then echo "${uri%/}"; return 0; fi
    done < <(apt_source_entries)
    [[ -n "$first" ]] || { echo "no apt source serves suite 'bookworm' (component main); set DMABUF_APT_MIRROR" >&2; return 1; }
    echo "${first%/}"
}

# Print the URI serving bookworm-security (main), or nothing if the system has none.
debian_security_uri() {
    if [[ -n "${DMABUF_APT_SECURITY_MIRROR+set}" ]]; then echo "${DMABUF_APT_SECURITY_MIRROR%/}"; return 0; fi
    local type uri suite comps signed
    while IFS=$'\t' read -r type uri suite comps signed; do
        if [[ "$suite" == bookworm-security && " $comps " == *" main "* ]]; then echo "${uri%/}"; return 0; fi
    done < <(apt_source_entries)
    return 0
}

# Keyring used by the system's bookworm entry (falls back to Debian's archive keyring).
debian_keyring() {
    local type uri suite comps signed
    while IFS=$'\t' read -r type uri suite comps signed; do
        if [[ "$suite" == bookworm && -n "$signed" && -f "$signed" ]]; then echo "$signed"; return 0; fi
    done < <(apt_source_entries)
    echo "$DMABUF_DEFAULT_KEYRING"
}

# ---------------------------------------------------------------- private apt

DMABUF_APT_DIR="$DMABUF_CACHE/apt"

# Options that point apt at the private configuration.
_private_apt_opts() {
    printf '%s\n' \
        -o "Dir::Etc::SourceList=$DMABUF_APT_DIR/sources.list" \
        -o "Dir::Etc::SourceParts=-" \
        -o "Dir::State::Lists=$DMABUF_APT_DIR/lists" \
        -o "Dir::Cache=$DMABUF_APT_DIR/cache" \
        -o "Acquire::Languages=none" \
        -o "Acquire::IndexTargets::deb::DEP-11::DefaultEnabled=false" \
        -o "Acquire::IndexTargets::deb::DEP-11-icons::DefaultEnabled=false" \
        -o "Acquire::IndexTargets::deb::DEP-11-icons-small::DefaultEnabled=false"
    # As root, apt drops to user _apt for downloads, which cannot write into a cache
    # under /root; download as root instead of printing a warning every time.
    [[ "$(id -u)" == 0 ]] && printf '%s\n' -o "APT::Sandbox::User=root"
    return 0
}

# Write the private sources.list (bookworm, bookworm-updates, bookworm-security if the system
# has it, bookworm-backports as deb; sid as deb-src only). Idempotent.
private_apt_setup() {
    local mirror sec keyring tmp
    mirror="$(debian_mirror_uri)" || die "cannot find Debian's mirror in the system apt sources"
    sec="$(debian_security_uri)"
    keyring="$(debian_keyring)"
    [[ -f "$keyring" ]] || die "apt keyring $keyring not found (install debian-archive-keyring)"
    mkdir -p "$DMABUF_APT_DIR/lists/partial" "$DMABUF_APT_DIR/cache/archives/partial"
    tmp="$(mktemp "$DMABUF_APT_DIR/sources.list.XXXXXX")"
    {
        echo "# generated by qemu-scripts/common.sh from the system apt sources; do not edit"
        echo "deb [signed-by=$keyring] $mirror bookworm main"
        echo "deb [signed-by=$keyring] $mirror bookworm-updates main"
        echo "deb [signed-by=$keyring] $mirror bookworm-backports main"
        [[ -n "$sec" ]] && echo "deb [signed-by=$keyring] $sec bookworm-security main"
        echo "deb-src [signed-by=$keyring] $mirror sid main"
    } > "$tmp"
    if cmp -s "$tmp" "$DMABUF_APT_DIR/sources.list"; then
        rm -f "$tmp"
    else
        mv -f "$tmp" "$DMABUF_APT_DIR/sources.list"
        rm -f "$DMABUF_APT_DIR/.updated"          # sources changed: lists are stale
    fi
}

# apt-get / apt-cache against the private configuration.
papt_get() { local o; mapfile -t o < <(_private_apt_opts); apt-get "${o[@]}" "$@"; }
papt_cache() { local o; mapfile -t o < <(_private_apt_opts); apt-cache "${o[@]}" "$@"; }

# Refresh the private package lists when older than DMABUF_APT_MAX_AGE seconds
# (default 6 h) or when forced with DMABUF_APT_UPDATE=1.
private_apt_update() {
    private_apt_setup
    local stamp="$DMABUF_APT_DIR/.updated" age=${DMABUF_APT_MAX_AGE:-21600} now
    now=$(date +%s)
    if [[ "${DMABUF_APT_UPDATE:-0}" != 1 && -f "$stamp" ]] && (( now - $(stat -c %Y "$stamp") < age )); then
        debug "private apt lists are fresh"
        return 0
    fi
    log "updating private apt lists ($DMABUF_APT_DIR)"
    papt_get update -q >&2 || die "apt-get update (private config $DMABUF_APT_DIR/sources.list) failed"
    touch "$stamp"
}

# ---------------------------------------------------------------- Debian sid root

# What qemu-scripts/sid-root.sh installs into the sid root (besides the newest 7.2 and
# 7.3 kernel headers, which it looks up). The root's cache key is a hash of these and of
# the recipe version: bump DMABUF_SID_RECIPE when the way the root is made changes.
DMABUF_SID_RECIPE=1
DMABUF_SID_PACKAGES=(qemu-system-x86 gcc-16 make bc dwarves kmod libelf-dev xz-utils zstd)

# The cache directory of the sid root for the current recipe (the root is its root/).
sid_root_dir() {
    local key
    key="$(printf '%s\n' "$DMABUF_SID_RECIPE" "${DMABUF_SID_PACKAGES[@]}" 7.2 7.3 | sha256sum | cut -c1-12)"
    echo "$DMABUF_CACHE/sid-root-$key"
}

# Run a command inside a sid root (chroot; we are root), in a PID and mount namespace of
# its own with a private /proc (objtool reads /proc/self/limits), so nothing stays
# mounted and nothing outlives the command. /dev/null is all that the builds and apt
# need of /dev.
sid_chroot() { # root cmd...
    local r="$1"; shift
    [[ -c "$r/dev/null" ]] || { rm -f "$r/dev/null"; mknod -m 666 "$r/dev/null" c 1 3; }
    unshare --fork --pid --mount-proc="$r/proc" \
        chroot "$r" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LC_ALL=C.UTF-8 "$@"
}

# Print the path of an executable that runs the root's QEMU on this host (a script next to
# the root: <root>/../bin/qemu-system-x86_64), writing it if missing.
# Tools that want one QEMU binary path (run-vm, $QEMU) take this.
sid_qemu_wrapper() { # root
    local r="$1" dir w tmp
    dir="$(dirname "$r")/bin"
    w="$dir/qemu-system-x86_64"
    if [[ ! -x "$w" ]] || ! grep -qF "R='$r'" "$w"; then
        mkdir -p "$dir"
        tmp="$(mktemp "$dir/.qemu.XXXXXX")"
        cat > "$tmp" <<EOF
#!/bin/sh
# dmabuf-sid-root-qemu: written by qemu-scripts/common.sh (sid_qemu_wrapper).
# Debian's stock qemu-system-x86_64 from the sid root, run on this host through the
# root's own dynamic loader and libraries; accelerators are modules (QEMU_MODULE_DIR)
# and the firmware is the root's (-L comes first, so it is searched first).
R='$r'
QEMU_MODULE_DIR="\$R/usr/lib/x86_64-linux-gnu/qemu"
export QEMU_MODULE_DIR
exec "\$R/usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2" --library-path "\$R/usr/lib/x86_64-linux-gnu" \\
    "\$R/usr/bin/qemu-system-x86_64" -L "\$R/usr/share/seabios" -L "\$R/usr/share/qemu" "\$@"
EOF
        chmod 755 "$tmp"
        mv -f "$tmp" "$w"
    fi
    echo "$w"
}

# ---------------------------------------------------------------- misc

# Map the user-facing kernel series name to the internal one; dies on anything else.
# The series the project supports, oldest first. 6.x come from bookworm (and its
# backports/security suites) and build on this host; 7.x come from sid (7.2) and
# experimental (7.3) and build in the sid root (sid-root.sh) with gcc-16.
DMABUF_KERNEL_SERIES=(6.1 6.12 7.2 7.3)
kernel_series() {
    case "${1:-}" in
        6.1|6.12|7.2|7.3) echo "$1" ;;
        *) die "unknown kernel series '${1:-}' (expected one of: ${DMABUF_KERNEL_SERIES[*]})" ;;
    esac
}

# True for the series whose packages and toolchain come from the sid root.
kernel_series_is_sid() { [[ "$1" == 7.* ]]; }

# Exclusive lock on a file under the cache for the rest of the calling shell. Waits.
# Usage: cache_lock NAME
cache_lock() {
    mkdir -p "$DMABUF_CACHE/locks"
    local fd
    exec {fd}>"$DMABUF_CACHE/locks/$1.lock"
    if ! flock -n "$fd"; then
        log "waiting for another process holding $DMABUF_CACHE/locks/$1.lock"
        flock "$fd"
    fi
}
