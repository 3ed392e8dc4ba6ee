#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
#
# Build a small busybox initramfs for the test guest.
set -euo pipefail

usage() {
    cat <<EOF
Usage: $(basename "$0") --kernel <6.1|6.12|7.2|7.3> --out FILE [options]

Build a gzip'ed busybox-static initramfs for the Debian guest kernel of that series
(fetched with fetch-kernel.sh). It contains:
  /init                 mounts /proc /sys /dev /dev/pts /tmp /sys/kernel/debug, loads
                        qemu_fw_cfg if it is a module, runs the guest command script,
                        prints "DMABUF-GUEST-EXIT=<status>" and powers off
  /sbin/load-vgem       insmods vgem and its dependencies in order (idempotent)
  /lib/modules/<kver>/  vgem, its dependencies and qemu_fw_cfg, decompressed, with a
                        modules.dep (busybox modprobe works for these)
  /lib/modules/extra/   the --ko files; their in-kernel dependencies are added and
                        loaded by /init before the command script runs
  /bin/                 busybox applets and the --bin files (with their shared libraries)

The guest command script is, in this order of preference:
  1. fw_cfg blob opt/dmabuf/cmd (run-vm passes -fw_cfg name=opt/dmabuf/cmd,file=...)
  2. the --init-script file baked in at /etc/dmabuf/cmd.sh
  3. neither: an interactive shell on the console

The busybox + kernel-module part is cached per kernel build under
\${DMABUF_CACHE:-\$HOME/.cache/virtio-dmabuf}/initramfs/; the --ko/--bin/--init-script
files go into a second cpio archive appended to it, so rebuilding with a new .ko is fast.

Options:
  --kernel SERIES       6.1, 6.12, 7.2 or 7.3 (required)
  --out FILE            output initramfs (required)
  --ko FILE             extra kernel module (repeatable)
  --bin FILE            extra program for /bin (repeatable); shared libraries it needs
                        are copied from this host
  --file SRC:DST        a file at the absolute path DST in the guest (repeatable), e.g.
                        a test binary where the test expects it; executables get their
                        shared libraries as with --bin
  --init-script FILE    guest command script baked in as /etc/dmabuf/cmd.sh
  --kmod NAME           extra in-tree module of the Debian kernel, with dependencies,
                        loaded at boot (repeatable; e.g. udmabuf on 6.12)
  --kmod-noload NAME    the same, but not loaded at boot: /lib/modules/NAME.order lists
                        its files, dependencies first, for the guest's script to insmod
                        (with module parameters: e.g. vivid allocators=1) (repeatable)
  --print-kernel        also print the fetch-kernel.sh lines (KVER=..., VMLINUZ=...) on stdout
  --help                this text
EOF
}

# shellcheck source=common.sh
source "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/common.sh"

SERIES=""
OUT=""
KOS=()
BINS=()
FILES=()
KMODS=()
KMODS_NOLOAD=()
INIT_SCRIPT=""
PRINT_KERNEL=0
while (($#)); do
    case "$1" in
        -h|--help) usage; exit 0 ;;
        --kernel) SERIES="$(kernel_series "${2:-}")"; shift ;;
        --out) OUT="${2:?--out needs a file name}"; shift ;;
        --ko) KOS+=("${2:?--ko needs a file}"); shift ;;
        --bin) BINS+=("${2:?--bin needs a file}"); shift ;;
        --file)
            [[ "${2:-}" == ?*:/?* ]] || die "--file needs SRC:/absolute/destination"
            FILES+=("$2"); shift ;;
        --kmod) KMODS+=("${2:?--kmod needs a module name}"); shift ;;
        --kmod-noload) KMODS_NOLOAD+=("${2:?--kmod-noload needs a module name}"); shift ;;
        --init-script) INIT_SCRIPT="${2:?--init-script needs a file}"; shift ;;
        --print-kernel) PRINT_KERNEL=1 ;;
        *) usage >&2; die "unknown argument: $1" ;;
    esac
    shift
done
[[ -n "$SERIES" ]] || { usage >&2; die "--kernel is required"; }
[[ -n "$OUT" ]] || { usage >&2; die "--out is required"; }
for f in "${KOS[@]}" "${BINS[@]}" "${FILES[@]%%:*}" ${INIT_SCRIPT:+"$INIT_SCRIPT"}; do
    [[ -f "$f" ]] || die "no such file: $f"
done
for f in "${KOS[@]}"; do
    [[ "$f" == *.ko ]] || die "--ko $f: expected an uncompressed .ko file"
done

ensure_host_packages busybox-static cpio kmod
BUSYBOX=/bin/busybox
[[ -x "$BUSYBOX" ]] || die "$BUSYBOX missing (package busybox-static)"
file_is_static() { ! LC_ALL=C readelf -l "$1" 2>/dev/null | grep -q 'Requesting program interpreter'; }
file_is_static "$BUSYBOX" || die "$BUSYBOX is not statically linked; install busybox-static (not busybox)"

kernel_env="$("$DMABUF_SCRIPTS_DIR/fetch-kernel.sh" --no-tools "$SERIES")" || die "fetch-kernel.sh $SERIES failed"
eval "$kernel_env"
: "${KVER:?}" "${MODDIR:?}" "${KROOT:?}" "${KDEBVER:?}"
# 6.x images carry /boot/config-<ver>; 7.x (linux-base-<ver>) /usr/lib/modules/<ver>/config.
CONFIG="$KROOT/boot/config-$KVER"
[[ -f "$CONFIG" ]] || CONFIG="$MODDIR/config"
[[ -f "$CONFIG" ]] || die "no kernel config for $KVER in $KROOT"
[[ -f "$MODDIR/modules.dep" ]] || die "$MODDIR/modules.dep missing; rerun fetch-kernel.sh $SERIES"

# ---------------------------------------------------------------- module helpers

# Normalised module name of a path or name: basename, no .ko[.xz|.zst|.gz], '-' -> '_'.
# Sets REPLY (no subshell: called for every line of modules.dep).
mod_name_r() { REPLY="${1##*/}"; REPLY="${REPLY%%.ko*}"; REPLY="${REPLY//-/_}"; }
mod_name() { mod_name_r "$1"; echo "$REPLY"; }

# modules.dep, loaded on first use: name -> path (relative to MODDIR), name -> deps.
declare -A DEP_PATH=()
declare -A DEP_LIST=()
DEP_LOADED=0
load_modules_dep() {
    ((DEP_LOADED)) && return 0
    local line path
    while IFS= read -r line; do
        path="${line%%:*}"
        mod_name_r "$path"
        DEP_PATH[$REPLY]="$path"
        DEP_LIST[$REPLY]="${line#*:}"
    done < "$MODDIR/modules.dep"
    DEP_LOADED=1
}

# Print the module paths needed for module NAME, dependencies first (DFS), once each.
declare -A SEEN=()
ORDER=()
add_module() {
    local n="$1" d
    load_modules_dep
    [[ -n "${SEEN[$n]:-}" ]] && return 0
    if [[ -z "${DEP_PATH[$n]:-}" ]]; then
        if sed 's|.*/||; s|\.ko.*||; s|-|_|g' "$MODDIR/modules.builtin" 2>/dev/null | grep -qx "$n"; then
            log "$n is built into $KVER; nothing to add"
            SEEN[$n]=1
            return 0
        fi
        die "$n is not a module of $KVER (not in modules.dep or modules.builtin; a bool option built in? see $CONFIG)"
    fi
    SEEN[$n]=1
    for d in ${DEP_LIST[$n]}; do add_module "$(mod_name "$d")"; done
    ORDER+=("${DEP_PATH[$n]}")
}

# Copy modules (paths relative to MODDIR) into ROOT, decompressed.
copy_modules() {
    local root="$1" p dst; shift
    for p in "$@"; do
        dst="$root/lib/modules/$KVER/${p%.ko*}.ko"
        mkdir -p "$(dirname "$dst")"
        case "$p" in
            *.ko) cp "$MODDIR/$p" "$dst" ;;
            *.ko.xz) xz -dc "$MODDIR/$p" > "$dst" ;;
            *.ko.zst) zstd -q -dc "$MODDIR/$p" > "$dst" ;;
            *.ko.gz) gzip -dc "$MODDIR/$p" > "$dst" ;;
            *) die "unknown module format: $p" ;;
        esac
    done
}

# Write an order file (paths inside the guest) for the given module paths.
write_order() {
    local p
    for p in "${@:2}"; do echo "/lib/modules/$KVER/${p%.ko*}.ko"; done > "$1"
}

make_cpio() { # dir out.gz
    (cd "$1" && find . -mindepth 1 | LC_ALL=C sort | cpio -o -H newc -R 0:0 --quiet) | gzip -6 -n > "$2"
}

# ---------------------------------------------------------------- base archive (cached)

# y, m or empty for a kernel config option.
config_value() { sed -n "s/^$1=\(.*\)$/\1/p" "$CONFIG"; }
case "$(config_value CONFIG_FW_CFG_SYSFS)" in
    y) FW_CFG=builtin ;;
    m) FW_CFG=module ;;
    *) FW_CFG=none; warn "$KVER has no CONFIG_FW_CFG_SYSFS: run-time commands via fw_cfg will not work, use --init-script" ;;
esac

bb_version="$(dpkg-query -W -f='${Version}' busybox-static 2>/dev/null || sha256sum "$BUSYBOX" | cut -c1-16)"
script_hash="$(sha256sum "$(readlink -f "${BASH_SOURCE[0]}")" | cut -c1-12)"
BASE_DIR="$DMABUF_CACHE/initramfs/${KDEBVER//:/_}"
BASE="$BASE_DIR/base-bb${bb_version//[:\/]/_}-$script_hash.cpio.gz"

build_base() {
    local st="$1" a
    mkdir -p "$st"/{bin,sbin,usr/bin,usr/sbin,etc/dmabuf,proc,sys,dev,tmp,run,root,mnt,lib/modules/extra}
    cp "$BUSYBOX" "$st/bin/busybox"
    while IFS= read -r a; do
        [[ "$a" == bin/busybox ]] && continue
        mkdir -p "$st/$(dirname "$a")"
        ln -sf /bin/busybox "$st/$a"
    done < <("$BUSYBOX" --list-full)
    # Nodes the kernel needs before /init can mount devtmpfs (needs root; /init also
    # re-opens the console after mounting devtmpfs).
    mknod -m 600 "$st/dev/console" c 5 1 2>/dev/null || warn "cannot mknod /dev/console (not root?)"
    mknod -m 666 "$st/dev/null" c 1 3 2>/dev/null || true

    # vgem and its dependencies.
    SEEN=(); ORDER=()
    add_module vgem
    local vgem_order=("${ORDER[@]}")
    # Loaded by /init at boot: the fw_cfg sysfs driver (run-time commands) and the
    # virtio PCI transport, when this kernel has them as modules (6.1 does).
    SEEN=(); ORDER=()
    [[ "$FW_CFG" == module ]] && add_module qemu_fw_cfg
    [[ "$(config_value CONFIG_VIRTIO_PCI)" == m ]] && add_module virtio_pci
    local boot_order=("${ORDER[@]}")
    copy_modules "$st" "${vgem_order[@]}" "${boot_order[@]}"
    write_order "$st/lib/modules/vgem.order" "${vgem_order[@]}"
    write_order "$st/lib/modules/boot.order" "${boot_order[@]}"
    echo "$KVER" > "$st/etc/dmabuf/kver"
    echo "$FW_CFG" > "$st/etc/dmabuf/fw_cfg"

    cat > "$st/sbin/insmod-list" <<'EOF'
#!/bin/sh
# insmod-list FILE...: insmod the modules listed in FILE(s), one path a line, in order;
# modules already loaded are skipped. Exits non-zero on the first failure.
for list in "$@"; do
    [ -f "$list" ] || continue
    while read -r ko; do
        [ -n "$ko" ] || continue
        name=$(basename "$ko" .ko | tr - _)
        grep -q "^$name " /proc/modules 2>/dev/null && continue
        insmod "$ko" || { echo "insmod-list: insmod $ko failed" >&2; exit 1; }
    done < "$list"
done
exit 0
EOF
    cat > "$st/sbin/load-vgem" <<'EOF'
#!/bin/sh
# Load vgem (a DRM PRIME importer/exporter) and the DRM modules it needs, in order.
/sbin/insmod-list /lib/modules/vgem.order || exit 1
i=0
while [ ! -e /dev/dri/card0 ] && [ $i -lt 50 ]; do sleep 0.1; i=$((i + 1)); done
[ -e /dev/dri/card0 ] || { echo "load-vgem: /dev/dri/card0 did not appear" >&2; exit 1; }
EOF
    cat > "$st/init" <<'EOF'
#!/bin/sh
# initramfs /init for the virtio-dmabuf test guest (generated by qemu-scripts/mkinitramfs.sh)
export PATH=/sbin:/bin:/usr/sbin:/usr/bin HOME=/root TERM=linux
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev 2>/dev/null || mdev -s
exec </dev/console >/dev/console 2>&1
mkdir -p /dev/pts /dev/shm
mount -t devpts devpts /dev/pts
# /tmp and /run get their own tmpfs unless the archive put files there (--file SRC:/tmp/...,
# e.g. programs built in a checkout under /tmp): the root file system is writable anyway.
for d in /tmp /run; do
    [ -n "$(ls -A "$d")" ] || mount -t tmpfs tmpfs "$d"
done
mount -t tmpfs tmpfs /dev/shm
mount -t debugfs debugfs /sys/kernel/debug 2>/dev/null
hostname dmabuf-guest

want=$(cat /etc/dmabuf/kver)
if [ "$(uname -r)" != "$want" ]; then
    echo "init: warning: initramfs built for $want but running $(uname -r); modules will not load" >&2
fi

/sbin/insmod-list /lib/modules/boot.order
/sbin/insmod-list /lib/modules/extra/deps.order /lib/modules/kmods.order

cmd=
raw=/sys/firmware/qemu_fw_cfg/by_name/opt/dmabuf/cmd/raw
if [ -r "$raw" ]; then
    cat "$raw" > /tmp/dmabuf-cmd.sh
    cmd=/tmp/dmabuf-cmd.sh
elif [ -f /etc/dmabuf/cmd.sh ]; then
    cmd=/etc/dmabuf/cmd.sh
fi

cd /root
if [ -n "$cmd" ]; then
    sh "$cmd"
    status=$?
else
    echo "init: no guest command (fw_cfg opt/dmabuf/cmd or /etc/dmabuf/cmd.sh); starting a shell, exit to power off"
    setsid cttyhack sh
    status=$?
fi
sync
printf '\nDMABUF-GUEST-EXIT=%s\n' "$status"
poweroff -f
sleep 5
EOF
    chmod 755 "$st/init" "$st/sbin/insmod-list" "$st/sbin/load-vgem"
    # modules.dep for busybox modprobe, limited to the modules present.
    local p
    for p in "${vgem_order[@]}" "${boot_order[@]}"; do
        n="$(mod_name "$p")"
        printf '%s:' "${p%.ko*}.ko"
        for d in ${DEP_LIST[$n]}; do printf ' %s' "${d%.ko*}.ko"; done
        printf '\n'
    done > "$st/lib/modules/$KVER/modules.dep"
}

if [[ ! -f "$BASE" ]]; then
    cache_lock "initramfs-${KDEBVER//:/_}"
    if [[ ! -f "$BASE" ]]; then
        log "building base initramfs for $KVER (busybox $bb_version)"
        mkdir -p "$BASE_DIR"
        tmpd="$(mktemp -d "$BASE_DIR/.base.XXXXXX")"
        trap 'rm -rf "$tmpd"' EXIT
        build_base "$tmpd/root"
        make_cpio "$tmpd/root" "$tmpd/base.cpio.gz"
        mv "$tmpd/base.cpio.gz" "$BASE"
        rm -rf "$tmpd"
        trap - EXIT
        # Older bases of this kernel (other script versions) are no longer used.
        find "$BASE_DIR" -maxdepth 1 -name 'base-*.cpio.gz' ! -path "$BASE" -delete
    fi
else
    debug "reusing $BASE"
fi

# ---------------------------------------------------------------- extras archive

ST="$(mktemp -d /tmp/dmabuf-initramfs.XXXXXX)"
trap 'rm -rf "$ST"' EXIT
mkdir -p "$ST/lib/modules/extra" "$ST/bin" "$ST/etc/dmabuf"
have_extras=0

# Extra modules: copy, and collect their in-tree dependencies.
declare -A EXTRA_NAMES=()
for ko in "${KOS[@]}"; do EXTRA_NAMES[$(mod_name "$ko")]=1; done
SEEN=(); ORDER=()
for ko in "${KOS[@]}"; do
    cp "$ko" "$ST/lib/modules/extra/"
    have_extras=1
    vermagic="$(modinfo -F vermagic "$ko" 2>/dev/null | awk '{print $1}')"
    [[ "$vermagic" == "$KVER" ]] || warn "$ko was built for '${vermagic:-?}', not $KVER: insmod will fail"
    deps="$(modinfo -F depends "$ko" 2>/dev/null || true)"
    for d in ${deps//,/ }; do
        d="$(mod_name "$d")"
        load_modules_dep
        if [[ -n "${DEP_PATH[$d]:-}" ]]; then
            add_module "$d"
        elif [[ -z "${EXTRA_NAMES[$d]:-}" ]]; then
            warn "$ko depends on '$d', which is neither in $KVER's modules nor among the --ko files"
        fi
    done
done
if ((${#ORDER[@]})); then
    copy_modules "$ST" "${ORDER[@]}"
    write_order "$ST/lib/modules/extra/deps.order" "${ORDER[@]}"
    log "in-kernel dependencies of the extra modules (loaded at boot): $(printf '%s ' "${ORDER[@]##*/}")"
fi

SEEN=(); ORDER=()
for m in "${KMODS[@]}"; do add_module "$(mod_name "$m")"; done
if ((${#ORDER[@]})); then
    copy_modules "$ST" "${ORDER[@]}"
    write_order "$ST/lib/modules/kmods.order" "${ORDER[@]}"
    have_extras=1
fi

for m in "${KMODS_NOLOAD[@]}"; do
    SEEN=(); ORDER=()
    add_module "$(mod_name "$m")"
    if ((${#ORDER[@]})); then
        copy_modules "$ST" "${ORDER[@]}"
        write_order "$ST/lib/modules/$(mod_name "$m").order" "${ORDER[@]}"
        have_extras=1
    fi
done

# The shared libraries a dynamically linked program needs, from this host.
copy_libs() { # program
    local lib
    file_is_static "$1" && return 0
    while read -r lib; do
        [[ -f "$lib" ]] || continue
        mkdir -p "$ST$(dirname "$lib")"
        cp -L "$lib" "$ST$lib"
    done < <(ldd "$1" 2>/dev/null | awk '/=> \// {print $3} /^\t\// {print $1}')
    debug "copied shared libraries for $1"
}

# Extra programs, with the shared libraries they need from this host.
for b in "${BINS[@]}"; do
    install -m 755 "$b" "$ST/bin/"
    have_extras=1
    copy_libs "$b"
done
# Files at given paths (executables with their libraries).
for f in "${FILES[@]}"; do
    src="${f%%:*}" dst="${f#*:}"
    install -D -m "$( [[ -x "$src" ]] && echo 755 || echo 644)" "$src" "$ST$dst"
    have_extras=1
    [[ -x "$src" ]] && copy_libs "$src"
done

if [[ -n "$INIT_SCRIPT" ]]; then
    install -m 755 "$INIT_SCRIPT" "$ST/etc/dmabuf/cmd.sh"
    have_extras=1
fi

mkdir -p "$(dirname "$OUT")"
tmp_out="$(mktemp "$(dirname "$OUT")/.$(basename "$OUT").XXXXXX")"
if ((have_extras)); then
    make_cpio "$ST" "$ST.extra.cpio.gz"
    cat "$BASE" "$ST.extra.cpio.gz" > "$tmp_out"
    rm -f "$ST.extra.cpio.gz"
else
    cp "$BASE" "$tmp_out"
fi
chmod 644 "$tmp_out"
mv "$tmp_out" "$OUT"
log "wrote $OUT ($(du -h "$OUT" | cut -f1), kernel $KVER)"
((PRINT_KERNEL)) && printf '%s\n' "$kernel_env"
exit 0
