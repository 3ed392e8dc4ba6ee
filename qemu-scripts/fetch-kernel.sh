#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
#
# Download and unpack the newest Debian guest kernel (+ headers) of a series.
set -euo pipefail

usage() {
    cat <<EOF
Usage: $(basename "$0") [options] <6.1|6.12|7.2|7.3>

Download the newest Debian kernel of the series (amd64) together with what a
module build needs, unpack it with dpkg-deb -x into
  \${DMABUF_CACHE:-\$HOME/.cache/virtio-dmabuf}/kernels/<debian-version>/root/
and print eval-able lines on stdout:
  KVER=<kernel release>      e.g. 6.12.117+deb12-amd64
  KDIR=<headers dir>         the kernel build tree
  KCHROOT=<root>             empty for 6.x (build on this host: make -C "\$KDIR" M=...);
                             for 7.x the sid root that KDIR lies in, where modules
                             must be built (qemu-scripts/kbuild.sh does either)
  VMLINUZ=<kernel image>     (bzImage)
  VMLINUX=<uncompressed ELF kernel, extracted from VMLINUZ; QEMU boots it via PVH>
  MODDIR=<root>/lib/modules/<KVER>
  KDEBVER=<Debian package version>   KROOT=<unpacked root>

6.1 and 6.12: "newest" comes from the private apt lists (see common.sh): for 6.1
the packages linux-image-6.1.0-NN-amd64-unsigned, for 6.12
linux-image-6.12.*-amd64-unsigned, over bookworm, bookworm-updates,
bookworm-security and bookworm-backports. The headers, -common and kbuild
packages are unpacked next to the image; modules build on this host with gcc-12.

7.2 and 7.3: their headers need gcc-16, which bookworm cannot install, so they
live in the Debian sid root of sid-root.sh (made if missing), which has the
newest 7.2 (sid) and 7.3 (experimental) headers installed. The kernel is the one
those headers belong to: linux-binary-<KVER> (the image; linux-image-<KVER> is a
metapackage now), linux-modules-<KVER> and linux-base-<KVER> (config, System.map),
downloaded with the root's apt.

Nothing is installed into /boot or /lib/modules of this machine. The host tools the
6.x module builds need (gcc-12, make, bc, dwarves/pahole, libelf-dev) are installed
with apt-get if missing.

Options:
  --suite SUITE   only consider packages from this suite (e.g. bookworm-backports; 6.x)
  --version V     take this exact Debian package version instead of the newest (6.x)
  --check         also build a hello-world module against KDIR with W=1 (in a temp dir)
  --no-tools      do not install host build tools
  --help          this text

Example: eval "\$(qemu-scripts/fetch-kernel.sh 6.12)"; make -C "\$KDIR" M=\$PWD modules
EOF
}

# shellcheck source=common.sh
source "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/common.sh"

SERIES=""
SUITE=""
WANT_VERSION=""
CHECK=0
TOOLS=1
while (($#)); do
    case "$1" in
        -h|--help) usage; exit 0 ;;
        --suite) SUITE="${2:?--suite needs a value}"; shift ;;
        --version) WANT_VERSION="${2:?--version needs a value}"; shift ;;
        --check) CHECK=1 ;;
        --no-tools) TOOLS=0 ;;
        -*) usage >&2; die "unknown option: $1" ;;
        *) [[ -z "$SERIES" ]] || die "only one kernel series may be given"; SERIES="$(kernel_series "$1")" ;;
    esac
    shift
done
[[ -n "$SERIES" ]] || { usage >&2; die "missing kernel series (${DMABUF_KERNEL_SERIES[*]})"; }
if kernel_series_is_sid "$SERIES" && [[ -n "$SUITE$WANT_VERSION" ]]; then
    die "--suite and --version are for 6.x; for $SERIES the kernel is the one whose headers the sid root has"
fi
KCHROOT=""

case "$SERIES" in
    6.1) IMAGE_RE='^linux-image-6\.1\.0-[0-9]+-amd64-unsigned$' ;;
    6.12) IMAGE_RE='^linux-image-6\.12\.[0-9]+(\+[a-z0-9.~]+)?-amd64-unsigned$' ;;
esac

if ((TOOLS)); then
    ensure_host_packages gcc-12 make bc dwarves libelf-dev xz-utils zstd kmod
fi

# Print "name version suite" of the newest candidate image (dpkg version order).
newest_candidate() {
    local names=() name ver where suite best="" best_ver=""
    mapfile -t names < <(papt_cache search --names-only "$IMAGE_RE" | awk '{print $1}')
    ((${#names[@]})) || return 0
    while IFS='|' read -r name ver where; do
        name="${name// /}"; ver="${ver// /}"
        [[ "$where" == *" Packages" ]] || continue
        # where: " http://host/path suite/main amd64 Packages"
        suite="$(awk '{print $2}' <<<"$where")"; suite="${suite%%/*}"
        [[ -n "$SUITE" && "$suite" != "$SUITE" ]] && continue
        [[ -n "$WANT_VERSION" && "$ver" != "$WANT_VERSION" ]] && continue
        if [[ -z "$best_ver" ]] || dpkg --compare-versions "$ver" gt "$best_ver"; then
            best="$name $ver $suite"; best_ver="$ver"
        fi
    done < <(papt_cache madison "${names[@]}")
    [[ -n "$best" ]] && echo "$best"
    return 0
}

emit() {
    local k v
    for k in KVER KDIR KCHROOT VMLINUZ VMLINUX MODDIR KDEBVER KROOT; do
        v="${!k}"
        if [[ "$v" =~ ^[A-Za-z0-9_./+~:-]+$ && "$v" != '~'* ]]; then
            printf '%s=%s\n' "$k" "$v"
        else
            printf '%s=%q\n' "$k" "$v"
        fi
    done
}

# Build a hello-world module against $KDIR with W=1 in a temp dir.
check_headers() {
    local t rc=0
    t="$(mktemp -d /tmp/dmabuf-hello.XXXXXX)"
    cat > "$t/hello.c" <<'EOF'
// SPDX-License-Identifier: GPL-2.0
#include <linux/module.h>
#include <linux/init.h>

static int __init hello_init(void)
{
	pr_info("hello: loaded\n");
	return 0;
}

static void __exit hello_exit(void)
{
	pr_info("hello: unloaded\n");
}

module_init(hello_init);
module_exit(hello_exit);
MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("header check");
EOF
    echo 'obj-m := hello.o' > "$t/Kbuild"
    log "checking headers: kbuild.sh $SERIES $t W=1 modules"
    if "$DMABUF_SCRIPTS_DIR/kbuild.sh" "$SERIES" "$t" W=1 modules >"$t/build.log" 2>&1 && [[ -f "$t/hello.ko" ]]; then
        log "hello.ko built: $(modinfo -F vermagic "$t/hello.ko" 2>/dev/null || echo '?')"
        if grep -qi 'warning:' "$t/build.log"; then
            warn "the W=1 build printed warnings:"; grep -i 'warning:' "$t/build.log" >&2 || true
        fi
    else
        cat "$t/build.log" >&2
        rc=1
    fi
    rm -rf "$t"
    ((rc == 0)) || die "building a hello module against $KDIR failed"
}

# Extract the uncompressed ELF kernel from a bzImage: QEMU boots it through PVH, which
# skips the in-guest decompressor (several seconds under TCG).
# Layout used: setup_sects at 0x1f1, payload_offset at 0x248 and payload_length at 0x24c
# (relative to the protected-mode code at (setup_sects + 1) * 512); xz and zstd payloads
# end with a 4-byte uncompressed size that is not part of the compressed stream.
extract_vmlinux() { # bzimage out
    local bz="$1" out="$2" ss po pl start magic tmp
    rd() { od -An -tu"$2" -j "$1" -N "$2" "$bz" | tr -d ' \n'; }
    ss=$(rd $((0x1f1)) 1); ((ss)) || ss=4
    po=$(rd $((0x248)) 4); pl=$(rd $((0x24c)) 4)
    start=$(( (ss + 1) * 512 + po ))
    magic="$(od -An -tx1 -j "$start" -N 6 "$bz" | tr -d ' \n')"
    tmp="$out.tmp.$$"
    payload() { dd if="$bz" bs=1M iflag=skip_bytes,count_bytes skip="$start" count="$1" status=none; }
    case "$magic" in
        fd377a585a00) payload $((pl - 4)) | xz -dc > "$tmp" ;;
        28b52ffd*) payload $((pl - 4)) | zstd -q -dc > "$tmp" ;;
        1f8b*) payload "$pl" | gzip -dc > "$tmp" ;;
        *) warn "unknown kernel payload format (magic $magic) in $bz; no vmlinux"; return 1 ;;
    esac || { rm -f "$tmp"; warn "decompressing the kernel payload of $bz failed"; return 1; }
    [[ "$(od -An -tx1 -N4 "$tmp" | tr -d ' \n')" == 7f454c46 ]] \
        || { rm -f "$tmp"; warn "payload of $bz is not an ELF file"; return 1; }
    mv "$tmp" "$out"
}

finish() {
    VMLINUX="$KROOT/boot/vmlinux-$KVER"
    if [[ ! -f "$VMLINUX" ]]; then
        log "extracting $(basename "$VMLINUX") from $(basename "$VMLINUZ")"
        mkdir -p "$KROOT/boot"
        extract_vmlinux "$VMLINUZ" "$VMLINUX" || VMLINUX=""
    fi
    if [[ -n "${RESOLVED:-}" && -z "$SUITE" && -z "$WANT_VERSION" && ! "$RESOLVED" -nt "$DMABUF_APT_DIR/.updated" ]]; then
        mkdir -p "$(dirname "$RESOLVED")"
        emit > "$RESOLVED.tmp.$$" && mv -f "$RESOLVED.tmp.$$" "$RESOLVED"
    fi
    emit
    ((CHECK)) && check_headers
    exit 0
}

# ---------------------------------------------------------------- unpacking (both kinds)

# Unpack the debs of $1/debs into $1/root; provide /lib/modules next to /usr/lib/modules.
unpack_kernel_debs() { # tmpdir
    local tmp="$1" deb
    for deb in "$tmp"/debs/*.deb; do
        log "unpacking $(basename "$deb")"
        dpkg-deb -x "$deb" "$tmp/root"
    done
    # usrmerge-style packages put modules under /usr/lib/modules; provide /lib/modules too.
    if [[ ! -d "$tmp/root/lib/modules/$KVER" && -d "$tmp/root/usr/lib/modules/$KVER" ]]; then
        mkdir -p "$tmp/root/lib/modules"
        ln -s "../../usr/lib/modules/$KVER" "$tmp/root/lib/modules/$KVER"
    fi
}

# Debian's image packages leave modules.dep to depmod in their postinst; generate it.
run_depmod() { # root
    local root="$1" sysmap depmod_args=()
    if ! command -v depmod >/dev/null; then
        ((TOOLS)) || die "depmod (package kmod) is needed to generate modules.dep"
        ensure_host_packages kmod
    fi
    log "generating modules.dep (depmod -b)"
    for sysmap in "$root/boot/System.map-$KVER" "$root/lib/modules/$KVER/System.map"; do
        if [[ -f "$sysmap" ]]; then depmod_args=(-F "$sysmap"); break; fi
    done
    depmod -b "$root" "${depmod_args[@]}" "$KVER" || die "depmod -b $root $KVER failed"
    [[ -s "$root/lib/modules/$KVER/modules.dep" ]] || die "depmod wrote no modules.dep"
}

# The cache directory of one kernel: finish at once if it is complete; otherwise take its
# lock (finishing if a concurrent run completed it meanwhile), drop leftovers of interrupted
# runs and make TMP, the directory to build it in.
claim_kernel_dir() { # key
    if [[ -f "$DEST/.complete" ]]; then
        debug "already unpacked in $DEST"
        finish
    fi
    cache_lock "kernel-$1"
    [[ -f "$DEST/.complete" ]] && finish
    rm -rf "$DMABUF_CACHE/kernels/.$1".*
    mkdir -p "$DMABUF_CACHE/kernels"
    TMP="$(mktemp -d "$DMABUF_CACHE/kernels/.$1.XXXXXX")"
}

# Record what TMP holds, publish it as DEST atomically and finish.
publish_kernel_dir() { # from-note
    rm -rf "$TMP/debs"
    printf '%s\nfrom suite: %s\nfetched: %s\n' "${PKGS[*]}" "$1" "$(date -u +%Y-%m-%dT%H:%M:%SZ)" > "$TMP/PACKAGES"
    chmod 755 "$TMP"
    touch "$TMP/.complete"
    rm -rf "$DEST"
    mv "$TMP" "$DEST"
    trap - EXIT
    log "unpacked into $DEST"
    finish
}

# ---------------------------------------------------------------- 7.x: from the sid root

fetch_sid_kernel() {
    local sid_env sid_root hdr dl key suite=sid
    sid_env="$("$DMABUF_SCRIPTS_DIR/sid-root.sh" | tail -n1)" || die "sid-root.sh failed"
    sid_root="${sid_env#SID_ROOT=}"
    [[ -d "$sid_root/usr/src" ]] || die "sid-root.sh gave no root"
    # The headers the root has for this series (sid-root.sh installs the newest of each).
    hdr="$(cd "$sid_root/usr/src" && find . -maxdepth 1 -regex "\./linux-headers-${SERIES//./\\.}\(\.[0-9]+\)*\(\+deb[0-9]+\)?-amd64" \
           | sed 's|^\./||' | sort -V | tail -n1)"
    [[ -n "$hdr" ]] || die "the sid root $sid_root has no linux-headers-$SERIES*-amd64"
    KVER="${hdr#linux-headers-}"
    KDEBVER="$(dpkg-query --admindir="$sid_root/var/lib/dpkg" -W -f='${Version}' "linux-headers-$KVER")" \
        || die "dpkg in the sid root does not know linux-headers-$KVER"
    [[ "$KDEBVER" == *~exp* ]] && suite=experimental
    KCHROOT="$sid_root"
    KDIR="$sid_root/usr/src/linux-headers-$KVER"
    key="${KDEBVER//:/_}"
    DEST="$DMABUF_CACHE/kernels/$key"
    KROOT="$DEST/root"
    VMLINUZ="$KROOT/usr/lib/modules/$KVER/vmlinuz"
    # shellcheck disable=SC2034 # printed by emit()
    MODDIR="$KROOT/lib/modules/$KVER"
    RESOLVED=""
    claim_kernel_dir "$key"
    PKGS=("linux-binary-$KVER=$KDEBVER" "linux-modules-$KVER=$KDEBVER" "linux-base-$KVER=$KDEBVER")
    log "$SERIES kernel: $KVER $KDEBVER ($suite, headers in the sid root)"
    dl="$(mktemp -d "$sid_root/var/tmp/kernel-dl.XXXXXX")"
    # shellcheck disable=SC2064 # expand now: the paths are fixed
    trap "rm -rf '$TMP' '$dl'" EXIT
    mkdir -p "$TMP/debs" "$TMP/root"
    log "downloading ${PKGS[*]} with the sid root's apt"
    sid_chroot "$sid_root" sh -c "cd /var/tmp/${dl##*/} && apt-get download -q -o APT::Sandbox::User=root ${PKGS[*]}" >&2 \
        || die "apt-get download in the sid root failed"
    mv "$dl"/*.deb "$TMP/debs/"
    unpack_kernel_debs "$TMP"
    [[ -f "$TMP/root/usr/lib/modules/$KVER/vmlinuz" ]] || die "vmlinuz missing from linux-binary-$KVER"
    run_depmod "$TMP/root"
    rm -rf "$dl"
    publish_kernel_dir "$suite (headers and toolchain: sid root $sid_root)"
}

if kernel_series_is_sid "$SERIES"; then
    fetch_sid_kernel
fi

# ---------------------------------------------------------------- 6.x: pick the kernel

if ! (private_apt_update); then
    warn "could not refresh the private apt lists; using what is cached"
fi

# Fast path: the answer for this series was worked out after the last list update.
RESOLVED="$DMABUF_CACHE/kernels/resolved-$SERIES.env"
if [[ -z "$SUITE" && -z "$WANT_VERSION" && -f "$RESOLVED" && "$RESOLVED" -nt "$DMABUF_APT_DIR/.updated" ]]; then
    ( source "$RESOLVED"; [[ -f "$KROOT/../.complete" ]] ) && {
        source "$RESOLVED"
        debug "using $RESOLVED"
        finish
    }
fi
best="$(newest_candidate)"
[[ -n "$best" ]] || die "no package matching $IMAGE_RE${SUITE:+ in $SUITE}${WANT_VERSION:+ at version $WANT_VERSION} in the private apt lists"
read -r IMAGE_PKG KDEBVER FROM_SUITE <<<"$best"
KVER="${IMAGE_PKG#linux-image-}"; KVER="${KVER%-unsigned}"
log "newest $SERIES kernel: $IMAGE_PKG $KDEBVER (from $FROM_SUITE)"

KEY="${KDEBVER//:/_}"
DEST="$DMABUF_CACHE/kernels/$KEY"
KROOT="$DEST/root"
KDIR="$KROOT/usr/src/linux-headers-$KVER"
VMLINUZ="$KROOT/boot/vmlinuz-$KVER"
# shellcheck disable=SC2034 # printed by emit()
MODDIR="$KROOT/lib/modules/$KVER"

claim_kernel_dir "$KEY"

# The headers package's dependencies name the matching -common and kbuild packages.
deps="$(papt_cache show "linux-headers-$KVER=$KDEBVER" 2>/dev/null | awk '/^Depends:/ {sub(/^Depends: */, ""); print; exit}')"
[[ -n "$deps" ]] || die "linux-headers-$KVER=$KDEBVER not found in the private apt lists"
COMMON_PKG="$(tr ',|' '\n\n' <<<"$deps" | awk '{print $1}' | grep -E '^linux-headers-.*-common$' | head -n1)"
KBUILD_PKG="$(tr ',|' '\n\n' <<<"$deps" | awk '{print $1}' | grep -E '^linux-kbuild-' | head -n1)"
[[ -n "$COMMON_PKG" && -n "$KBUILD_PKG" ]] || die "cannot find the -common/kbuild packages in: $deps"
PKGS=("$IMAGE_PKG=$KDEBVER" "linux-headers-$KVER=$KDEBVER" "$COMMON_PKG=$KDEBVER" "$KBUILD_PKG=$KDEBVER")

trap 'rm -rf "$TMP"' EXIT
mkdir -p "$TMP/debs" "$TMP/root"
log "downloading ${PKGS[*]}"
(cd "$TMP/debs" && papt_get download -q "${PKGS[@]}" >&2) || die "apt-get download failed"
unpack_kernel_debs "$TMP"

# The arch headers Makefile includes the -common tree by absolute path; point it at the
# unpacked copy (where the tree will live after the final rename).
mk="$TMP/root/usr/src/linux-headers-$KVER/Makefile"
[[ -f "$mk" ]] || die "$mk missing from linux-headers-$KVER"
common_dir="${COMMON_PKG#linux-headers-}"; common_dir="/usr/src/linux-headers-$common_dir"
grep -q "$common_dir" "$mk" || die "$mk does not mention $common_dir; format changed?"
sed -i "s|$common_dir|$KROOT$common_dir|g" "$mk"
# Any other absolute symlinks into /usr/src or /usr/lib inside the tree would point at the
# host; report them (relative ones are fine).
while IFS= read -r -d '' l; do
    tgt="$(readlink "$l")"
    case "$tgt" in
        /usr/src/*|/usr/lib/linux-kbuild-*)
            rel="$KROOT$tgt"
            ln -sfn "$rel" "$l"
            debug "relinked ${l#"$TMP/root"} -> $rel" ;;
    esac
done < <(find "$TMP/root/usr/src" -type l -print0)
# lib/modules/<ver>/{build,source} point at /usr/src of the host; point them at the copy.
for l in build source; do
    p="$TMP/root/lib/modules/$KVER/$l"
    if [[ -L "$p" && "$(readlink "$p")" == /usr/src/* ]]; then
        ln -sfn "$KROOT$(readlink "$p")" "$p"
    fi
done

[[ -f "$TMP/root/boot/vmlinuz-$KVER" ]] || die "vmlinuz-$KVER missing from $IMAGE_PKG"
[[ -d "$TMP/root/lib/modules/$KVER" ]] || die "lib/modules/$KVER missing from $IMAGE_PKG"
run_depmod "$TMP/root"
publish_kernel_dir "$FROM_SUITE"
