#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
#
# Run the guest driver's VM tests against the real daemon.
#
#   tests/vm/run.sh [--kernel 6.12|6.1] single
#   tests/vm/run.sh [--kernel 6.12|6.1] [--kernel-b 6.12|6.1] cross
#
# single: one VM runs single-vm.sh. cross: VM A runs cross-vm-a.sh (owner), VM B runs
# cross-vm-b.sh (importer) with the UUIDs A printed; both synchronise on wall-clock
# times after A's T0. Builds the modules and dmabuf-guest, an initramfs per kernel
# (qemu-scripts/mkinitramfs.sh; on 6.1 with virtio_pci, which is a module there), starts
# vhost-device-dmabuf (DAEMON=path, default target/release or target/debug) and stops it
# again. Logs go to $LOGDIR (default /tmp/gd-vm-tests). Exit status 0 if every VM passed.
set -euo pipefail

HERE="$(cd "$(dirname "$0")" && pwd)"
GD="$(cd "$HERE/../.." && pwd)"
REPO="$(cd "$GD/.." && pwd)"
KA=6.12
KB=""
MODE=""
LOGDIR="${LOGDIR:-/tmp/gd-vm-tests}"
while (($#)); do
    case "$1" in
        --kernel) KA="$2"; shift ;;
        --kernel-b) KB="$2"; shift ;;
        single|cross) MODE="$1" ;;
        *) echo "usage: $0 [--kernel S] [--kernel-b S] single|cross" >&2; exit 2 ;;
    esac
    shift
done
[[ -n "$MODE" ]] || { echo "usage: $0 [--kernel S] [--kernel-b S] single|cross" >&2; exit 2; }
KB="${KB:-$KA}"

DAEMON="${DAEMON:-}"
if [[ -z "$DAEMON" ]]; then
    for d in "$REPO/target/release/vhost-device-dmabuf" "$REPO/target/debug/vhost-device-dmabuf"; do
        [[ -x "$d" ]] && { DAEMON="$d"; break; }
    done
fi
[[ -x "$DAEMON" ]] || { echo "run.sh: no vhost-device-dmabuf binary (set DAEMON=)" >&2; exit 1; }

mkdir -p "$LOGDIR"
make -s -C "$GD" tools
initrd() {
    local k="$1" extra=()
    make -s -C "$GD" KERNEL="$k" >"$LOGDIR/build-$k.log" 2>&1 || { cat "$LOGDIR/build-$k.log" >&2; exit 1; }
    [[ "$k" == 6.1 ]] && extra=(--kmod virtio_pci)
    bash "$REPO/qemu-scripts/mkinitramfs.sh" --kernel "$k" --out "$LOGDIR/initrd-$k.gz" \
        --ko "$GD/build/$k/virtio_dmabuf.ko" --ko "$GD/build/$k/tests/kimport/dmabuf_kimport.ko" \
        --bin "$GD/build/tools/dmabuf-guest" "${extra[@]}" >"$LOGDIR/initrd-$k.log" 2>&1
}
initrd "$KA"
[[ "$KB" != "$KA" ]] && initrd "$KB"

RUN="$(mktemp -d /tmp/gd-vm.XXXXXX)"
DPID=""
cleanup() { [[ -n "$DPID" ]] && kill "$DPID" 2>/dev/null; wait 2>/dev/null; rm -rf "$RUN"; }
trap cleanup EXIT
"$DAEMON" --socket "vma=$RUN/a.sock" --socket "vmb=$RUN/b.sock" --control-socket "$RUN/ctl.sock" \
    --sync-timeout-ms 20000 >"$LOGDIR/daemon.log" 2>&1 &
DPID=$!
for _ in $(seq 50); do [[ -S "$RUN/a.sock" && -S "$RUN/b.sock" ]] && break; sleep 0.1; done

vm() {  # vm SERIES SOCKET SCRIPT LOG [--mem SIZE]
    local k="$1" sock="$2" script="$3" log="$4"; shift 4
    bash "$REPO/qemu-scripts/run-vm" --kernel "$k" --socket "$sock" --initrd "$LOGDIR/initrd-$k.gz" \
        --cmd-file "$script" --timeout 300 "$@" >"$log" 2>&1
    grep -ao 'DMABUF-GUEST-EXIT=[0-9]*' "$log" | tail -n 1 | grep -q '=0$'
}

rc=0
if [[ "$MODE" == single ]]; then
    vm "$KA" "$RUN/a.sock" "$HERE/single-vm.sh" "$LOGDIR/single-$KA.log" --mem 2G || rc=1
    grep -a -E '^=== (TEST|CHECK|RC)|^FAILS=' "$LOGDIR/single-$KA.log" || true
else
    vm "$KA" "$RUN/a.sock" "$HERE/cross-vm-a.sh" "$LOGDIR/cross-a.log" &
    APID=$!
    line=""
    for _ in $(seq 120); do
        line="$(grep -ao 'XVM U=[^[:space:]]* R=[^[:space:]]* H=[^[:space:]]* T0=[0-9]*' "$LOGDIR/cross-a.log" 2>/dev/null | head -n 1 || true)"
        [[ -n "$line" ]] && break
        sleep 1
    done
    [[ -n "$line" ]] || { echo "run.sh: VM A printed no UUIDs" >&2; exit 1; }
    { echo "${line#XVM }"; cat "$HERE/cross-vm-b.sh"; } >"$RUN/b.sh"
    vm "$KB" "$RUN/b.sock" "$RUN/b.sh" "$LOGDIR/cross-b.log" || rc=1
    wait "$APID" || rc=1
    grep -a -E '^=== (TEST|RC)|^FAILS=' "$LOGDIR/cross-b.log" || true
    grep -a '^FAILS=' "$LOGDIR/cross-a.log" | sed 's/^/A: /' || true
fi
echo "run.sh: $MODE ($KA${KB:+/$KB}): $([[ $rc == 0 ]] && echo passed || echo FAILED); logs in $LOGDIR"
exit $rc
