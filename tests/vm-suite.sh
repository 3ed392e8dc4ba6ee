#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
#
# End-to-end suite: the vhost-device-dmabuf daemon and dmabufctl on the host, QEMU guests
# with Debian's 6.1, 6.12, 7.2 and 7.3 kernels and the guest driver, under Debian's stock
# QEMU 11.1 and the patched QEMU 10.2.2. See tests/README.md.
set -euo pipefail
export LC_ALL=C

usage() {
    cat <<EOF
Usage: $(basename "$0") [--kernel 6.1|6.12|7.2|7.3]... [--qemu stock|patched]... [--case N]... [--keep-logs]

Runs the VM suite against the release daemon (target/release/vhost-device-dmabuf) and
dmabufctl, with QEMU started through qemu-scripts/run-vm, in blocks of one guest kernel
under one QEMU:

  1 guest-to-host      guest allocates and fills a buffer; the host reads the same bytes
  2 host-to-guest      host memfd imported, verified and written by the guest
  3 ranged-sync        a ranged sync moves only its range (host->guest and guest->host)
  4 fencing            a guest START waits for a host write access; times out when short
  5 vgem-import        vgem imports our dma-bufs (PRIME); bytes checked where possible
  6 kernel-importer    dma_buf_begin_cpu_access + vmap reads and writes (dmabuf_kimport.ko)
  7 cloexec            fds are close-on-exec unless VIRTIO_DMABUF_FD_NO_CLOEXEC
  8 two-vms            two VMs on one daemon share buffers by UUID, data both ways
  9 teardown           9a rmmod refused while a buffer is open, then works, reload works;
                       9b guest poweroff and 9c QEMU SIGKILL release buffers and waiters,
                       the daemon keeps serving the other VM
 10 daemon-restart     10a kill -9 of the daemon and a restart on the same sockets: QEMU
                       (reconnect-ms) reconnects, the START in flight fails, old buffers
                       fail with ENOENT, new buffers work both ways (needs a QEMU that
                       reconnects: SKIP otherwise); 10b (if the module has
                       request_timeout_ms) a SIGSTOPped daemon: CREATE fails with ETIMEDOUT,
                       the late CREATE is released after SIGCONT
 11 driver-limits      long segment lists (debugfs knobs), 1 GiB and 512 MiB buffers (one
                       block per run, 2 GiB guest), odd sizes, error statuses, SET_NAME,
                       kimport paths, device unbind with a buffer open, rebind
 12 cross-vm-errors    READ_ONLY and HOST_ONLY across VMs, START timeouts and grants, the
                       abandoned START of a killed process, REVOKED on the owner's release,
                       device removal while a START waits
 13 zero-copy-import   a host memfd imported mapped in place (stock 11.1.3; a copy under
                       10.2.2, which has no shared memory region): bytes both ways in place,
                       SYNC still fences, revoke while mmapped (SIGBUS, ENODEV, REVOKED),
                       kimport and vgem of a mapped import; 13b host dma-buf shares (SKIP
                       where the host cannot make a dma-buf); the vm-bench line
 14 zero-copy-vm-to-vm VM1 maps VM2's buffer in place, data both ways; VM2 powers off: VM1's
                       mmap SIGBUS, SYNC ENODEV, INFO REVOKED (copies under 10.2.2)
 15 v4l2-import        the largest contiguous ALLOC of the fresh guest (at least 8 MiB,
                       ENOMEM beyond, nothing kept); vivid captures a fixed 1920x1080 frame
                       into our dma-bufs, allocators=0 (vb2-vmalloc) and allocators=1
                       (vb2-dma-contig: contiguous buffers), a guest buffer and an imported
                       host buffer, each = vivid's own reference frame; the host reads them
 16 driver-config      a boot of its own with eight fake devices (fake-vhost-user.py): six
                       configurations refused at probe, two bound; 16 revocations log at
                       most 10 notices; the driver's workers on the device's own workqueue
Cases 1-12 import copies (DMABUF_GUEST_NO_MAP=1 in their guest scripts; each boot asserts
that no import of theirs was mapped); 13, 14 and 15 ask for mapped imports.
  (0: per boot, the guest booted, exited cleanly, kernel log clean; per kernel, the daemon
   shut down cleanly)
What the guest can decide it checks itself (dmabuf-guest's TAP lines, counted per case
against the guest's plan); the host checks what needs both sides.

The default matrix (no --kernel, --qemu or \$QEMU):
  stock   (Debian's QEMU 11.1 from the sid root)  6.1, 6.12, 7.2, 7.3: every case (10a SKIP)
  patched (QEMU 10.2.2 + reconnect patch)         6.12: every case; 7.2: case 10
Each block starts with "vm-suite: qemu: <path> (QEMU emulator version ...)".

Options:
  --kernel SERIES   only these guest kernels (repeatable or comma-separated)
  --qemu KIND       only under these QEMUs: stock, patched (default with --kernel: stock)
  --case N          only case N, 1-16 (repeatable or comma-separated; default: all)
  --keep-logs       keep the log directory also when everything passed
  --help            this text

Output: one line per case, "PASS <kernel> <n> <name> (<details>)",
"FAIL <kernel> <n> <name>: <why>" or "SKIP <kernel> <n> <name>: <why>", then
"N passed, N failed" (", N skipped" added when something was skipped). Exit status 0
only if nothing failed; 2 for bad options. Logs (console of each VM, daemon log) go to a
directory under /tmp whose path is printed when something failed.

Case 10a needs a QEMU that reconnects to a restarted backend (the patched build of
qemu-scripts/ensure-qemu.sh). Under one that cannot (stock 11.1.3, or a \$QEMU of yours)
10a is reported as SKIP with the reason and 10b runs without a restart. With \$QEMU set,
every selected kernel runs under that QEMU only.

Environment: DAEMON, DMABUFCTL (binaries; default target/release), QEMU (see
qemu-scripts/ensure-qemu.sh), DMABUF_QEMU_RECONNECT=1 (your \$QEMU can reconnect),
DMABUF_CACHE, DMABUF_SUITE_EXPECT_MAPPED=0|1 (what cases 13 and 14 expect instead of
"mapped with QEMU >= 11.1": e.g. 1 under 10.2.2 to see them fail).
Output also has one "vm-bench: kernel=K qemu=V mapped_read_ratio=X copy_read_ratio=X
copied_bytes_mapped=N ..." line per block that runs case 13 (reported, not asserted).
EOF
}

HERE="$(cd "$(dirname "$0")" && pwd)"
REPO="$(cd "$HERE/.." && pwd)"
ALL_KERNELS=(6.1 6.12 7.2 7.3)
KERNELS=()
QEMUS=()
SEL=()
KEEP=0
while (($#)); do
    case "$1" in
        -h|--help) usage; exit 0 ;;
        --kernel)
            (($# >= 2)) || { echo "vm-suite: --kernel needs a value (see --help)" >&2; exit 2; }
            IFS=, read -r -a _k <<<"$2"
            KERNELS+=("${_k[@]}")
            shift ;;
        --qemu)
            (($# >= 2)) || { echo "vm-suite: --qemu needs a value (see --help)" >&2; exit 2; }
            IFS=, read -r -a _q <<<"$2"
            QEMUS+=("${_q[@]}")
            shift ;;
        --case)
            (($# >= 2)) || { echo "vm-suite: --case needs a value (see --help)" >&2; exit 2; }
            IFS=, read -r -a _c <<<"$2"
            SEL+=("${_c[@]}")
            shift ;;
        --keep-logs) KEEP=1 ;;
        *) echo "vm-suite: unknown argument: $1 (see --help)" >&2; exit 2 ;;
    esac
    shift
done
((${#SEL[@]})) || SEL=(1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16)
for k in "${KERNELS[@]}"; do
    [[ " ${ALL_KERNELS[*]} " == *" $k "* ]] || { echo "vm-suite: --kernel must be one of ${ALL_KERNELS[*]}, not '$k'" >&2; exit 2; }
done
for q in "${QEMUS[@]}"; do
    [[ "$q" == stock || "$q" == patched ]] || { echo "vm-suite: --qemu must be stock or patched, not '$q'" >&2; exit 2; }
done
[[ "${DMABUF_SUITE_EXPECT_MAPPED:-0}" =~ ^[01]$ ]] || { echo "vm-suite: DMABUF_SUITE_EXPECT_MAPPED must be 0 or 1" >&2; exit 2; }
if [[ -n "${QEMU:-}" ]] && ((${#QEMUS[@]})); then
    echo "vm-suite: --qemu and \$QEMU exclude each other (\$QEMU=$QEMU)" >&2; exit 2
fi
for c in "${SEL[@]}"; do
    [[ "$c" =~ ^([1-9]|1[0-6])$ ]] || { echo "vm-suite: --case must be 1-16, not '$c'" >&2; exit 2; }
done
want() { local c; for c in "${SEL[@]}"; do [[ "$c" == "$1" ]] && return 0; done; return 1; }

# Sizes, offsets and seeds shared with the guest scripts (passed in their header).
C1_SIZE=1052675                # 1 MiB + 4099: not a page multiple
C2_SIZE=262147
C3_SIZE=200000 C3_X=10000 C3_L=30000 C3_Y=100000 C3_M=5000
C4_HOLD_S=5 C4_SHORT_HOLD_S=5
C5_SIZE=1048576
C6_OFF=4096 C6_LEN=200000
C8_SIZE=2097229 C8_OFF=65536 C8_LEN=100000 C8_YSIZE=300001
C10_SIZE=300007 C10_HN_SIZE=200003 C10_RECONNECT_MS=500 C10_RTO_MS=2000
C13_SIZE=1060921               # 1 MiB + 12345: not a page multiple
C13_MAPLEN=1064960             # C13_SIZE rounded up to 4096: what a mapped import holds
C13K_SIZE=2097152              # 2 MiB: the importers' buffer, a page multiple
C13_HOLD_S=4 C13_OFF=12345 C13_LEN=300000
C13_BENCH_SIZE=16777216        # vm-bench: a 16 MiB host buffer (H13B; under TCG a START/END
                               # round trip costs what reading 1 MiB does)
C14_SIZE=2097229 C14_MAPLEN=2101248 C14_OFF=65536 C14_LEN=100000 C14_OFF2=1000000 C14_LEN2=70000
C15_FRAME=8294400              # a 1920x1080 XR24 frame: 2025 pages, more than the buddy
                               # allocator's largest block (4 MiB); a page multiple (mappable)

T_START=$EPOCHREALTIME
LOGDIR="$(mktemp -d /tmp/vm-suite.XXXXXX)"
PASS_N=0
FAIL_N=0
SKIP_N=0
DPID=""
declare -A VM_PID=() VM_RD=() VM_OUT=() VM_T0=() VM_RC=() MBOX=()
BG_PIDFILES=()
ACCEL=""
BIG_DONE=""   # the block that ran case 11's big buffers


# shellcheck source=tests/lib/util.sh
. "$HERE/lib/util.sh"
# shellcheck source=tests/lib/results.sh
. "$HERE/lib/results.sh"
# shellcheck source=tests/lib/vm.sh
. "$HERE/lib/vm.sh"
# shellcheck source=tests/cases/single.sh
. "$HERE/cases/single.sh"
# shellcheck source=tests/cases/pair.sh
. "$HERE/cases/pair.sh"
# shellcheck source=tests/cases/config.sh
. "$HERE/cases/config.sh"
# shellcheck source=tests/cases/restart.sh
. "$HERE/cases/restart.sh"
trap cleanup EXIT
trap 'say "interrupted"; exit 130' INT TERM

# ------------------------------------------------------------------ main

DAEMON="${DAEMON:-$REPO/target/release/vhost-device-dmabuf}"
DMABUFCTL="${DMABUFCTL:-$REPO/target/release/dmabufctl}"
if [[ ! -x "$DAEMON" || ! -x "$DMABUFCTL" ]]; then
    say "building the daemon and dmabufctl (cargo build --release; log $LOGDIR/cargo.log)"
    (cd "$REPO" && cargo build --release -p vhost-device-dmabuf -p dmabuf-client) >"$LOGDIR/cargo.log" 2>&1 \
        || { tail -n 20 "$LOGDIR/cargo.log" >&2; die "cargo build failed"; }
fi
[[ -x "$DAEMON" ]] || die "no daemon at $DAEMON"
[[ -x "$DMABUFCTL" ]] || die "no dmabufctl at $DMABUFCTL"

# ------------------------------------------------------------------ the matrix

# A block is one kernel under one QEMU with a set of cases: "KIND KERNEL CASES" (CASES
# comma-separated). KIND is stock (Debian's QEMU 11.1 from the sid root), patched (the
# 10.2.2 build with the reconnect patch) or user ($QEMU).
BLOCKS=()
join_cases() { local IFS=,; echo "$*"; }
if [[ -n "${QEMU:-}" ]]; then
    ((${#KERNELS[@]})) || KERNELS=("${ALL_KERNELS[@]}")
    for k in "${KERNELS[@]}"; do BLOCKS+=("user $k $(join_cases "${SEL[@]}")"); done
elif ((${#KERNELS[@]} == 0 && ${#QEMUS[@]} == 0)); then
    # The default matrix: every case on every kernel under stock 11.1 (which cannot do the
    # restart of 10a), the full suite of one kernel under the patched 10.2.2, and 10a on a
    # 7.x kernel under it too.
    for k in "${ALL_KERNELS[@]}"; do BLOCKS+=("stock $k $(join_cases "${SEL[@]}")"); done
    BLOCKS+=("patched 6.12 $(join_cases "${SEL[@]}")")
    want 10 && BLOCKS+=("patched 7.2 10")
else
    ((${#KERNELS[@]})) || KERNELS=("${ALL_KERNELS[@]}")
    ((${#QEMUS[@]})) || QEMUS=(stock)
    for q in "${QEMUS[@]}"; do
        for k in "${KERNELS[@]}"; do BLOCKS+=("$q $k $(join_cases "${SEL[@]}")"); done
    done
fi

# qemu_for KIND: the QEMU binary of a kind (found, installed or built once per run)
declare -A QEMU_OF=()
qemu_for() {
    local kind=$1 q="" args=()
    if [[ -z "${QEMU_OF[$kind]:-}" ]]; then
        case "$kind" in
            user) args=() ;;
            stock) args=(--stock) ;;
            patched) args=(--patched) ;;
        esac
        q="$(QEMU="${USER_QEMU}" "$REPO/qemu-scripts/ensure-qemu.sh" "${args[@]}" 2>>"$LOGDIR/ensure-qemu.log" | tail -n1)" \
            || { tail -n 20 "$LOGDIR/ensure-qemu.log" >&2; die "ensure-qemu.sh ${args[*]} failed"; }
        QEMU_OF[$kind]=$q
    fi
    echo "${QEMU_OF[$kind]}"
}
USER_QEMU="${QEMU:-}"
say "daemon: $DAEMON; blocks (qemu kernel cases): $(printf '[%s] ' "${BLOCKS[@]}")"

make -s -C "$REPO/guest-driver" tools >"$LOGDIR/tools.log" 2>&1 \
    || { cat "$LOGDIR/tools.log" >&2; die "make -C guest-driver tools failed"; }
if grep -q 'warning:' "$LOGDIR/tools.log"; then cat "$LOGDIR/tools.log" >&2; die "dmabuf-guest has warnings"; fi
# case 15's V4L2 importer (static, like dmabuf-guest; our device through libvdmabuf, which
# make tools built)
mkdir -p "$LOGDIR/bin"
gcc -static -O2 -Wall -Wextra -I"$REPO/guest-driver/lib" -o "$LOGDIR/bin/v4l2-capture" \
    "$HERE/guest/v4l2-capture.c" "$REPO/guest-driver/build/lib/libvdmabuf.a" >"$LOGDIR/v4l2-capture.log" 2>&1 \
    || { cat "$LOGDIR/v4l2-capture.log" >&2; die "building tests/guest/v4l2-capture.c failed"; }
if grep -q 'warning:' "$LOGDIR/v4l2-capture.log"; then cat "$LOGDIR/v4l2-capture.log" >&2; die "v4l2-capture has warnings"; fi

ALL_SEL=("${SEL[@]}")
for block in "${BLOCKS[@]}"; do
    read -r KIND CUR_K cases <<<"$block"
    IFS=, read -r -a SEL <<<"$cases"
    KLOG="$LOGDIR/$CUR_K-$KIND"
    mkdir -p "$KLOG"
    t_k=$EPOCHREALTIME
    QEMU_BIN="$(qemu_for "$KIND")"
    export QEMU="$QEMU_BIN"
    say "qemu: $QEMU_BIN ($("$QEMU_BIN" --version | head -n1)) [$KIND] kernel $CUR_K, cases ${SEL[*]}"
    # 10a needs a QEMU that reconnects to a restarted daemon.
    RESTART_SKIP=""
    if want 10 && ! why="$("$REPO/qemu-scripts/ensure-qemu.sh" --supports-reconnect "$QEMU_BIN" 2>&1)"; then
        case "$KIND" in
            stock) RESTART_SKIP="stock QEMU 11.1.3's vhost-user-test-device does not reconnect to a restarted backend (its vhost device is not set up again; the patched 10.2.2 block runs 10a)" ;;
            *) RESTART_SKIP="this QEMU cannot reconnect to a restarted daemon: ${why#no: }" ;;
        esac
    fi
    # CONFIG_DMABUF_DEBUG (7.3): the core mangles the sg_tables importers get; boot_result
    # also asserts that no dma-buf debug check fired.
    kenv="$("$REPO/qemu-scripts/fetch-kernel.sh" "$CUR_K" 2>>"$KLOG/build.log")" || die "fetch-kernel.sh $CUR_K failed"
    kroot="$(sed -n 's/^KROOT=//p' <<<"$kenv")"; kver="$(sed -n 's/^KVER=//p' <<<"$kenv")"
    DMABUF_DEBUG=0
    grep -qs '^CONFIG_DMABUF_DEBUG=y' "$kroot/boot/config-$kver" "$kroot/lib/modules/$kver/config" && DMABUF_DEBUG=1
    # The modules for this kernel (W=1 as in make test-guest-build, so nothing is rebuilt
    # after it) and an initramfs with them and the guest tool.
    if ! make -C "$REPO/guest-driver" KERNEL="$CUR_K" W=1 >"$KLOG/build.log" 2>&1; then
        for c in "${SEL[@]}"; do fail_now "$c" "(build)" "guest driver build for $CUR_K failed: see $KLOG/build.log"; done
        continue
    fi
    "$REPO/qemu-scripts/mkinitramfs.sh" --kernel "$CUR_K" --out "$KLOG/initrd.gz" \
        --ko "$REPO/guest-driver/build/$CUR_K/virtio_dmabuf.ko" \
        --ko "$REPO/guest-driver/build/$CUR_K/tests/kimport/dmabuf_kimport.ko" \
        --bin "$REPO/guest-driver/build/tools/dmabuf-guest" \
        --bin "$REPO/guest-driver/build/tools/vdmabuf-test" \
        --bin "$REPO/guest-driver/build/tools/vdmabuf-example" --bin "$LOGDIR/bin/v4l2-capture" \
        --kmod-noload vivid >"$KLOG/initrd.log" 2>&1 \
        || { cat "$KLOG/initrd.log" >&2; die "mkinitramfs.sh failed"; }
    # Cases 13 and 14: mapped imports where the VMM gives the device a shared memory region
    # (vhost-user shared memory: QEMU 11.1 and newer; the daemon offers --shm-size 256M by
    # default), copies otherwise. DMABUF_SUITE_EXPECT_MAPPED overrides (to see them fail).
    QEMU_V="$("$QEMU_BIN" --version | head -n1 | sed -n 's/.*version \([0-9][0-9.]*\).*/\1/p')"
    MAPPED=0
    if [[ -n "${DMABUF_SUITE_EXPECT_MAPPED:-}" ]]; then
        MAPPED=$DMABUF_SUITE_EXPECT_MAPPED
    elif [[ "$(printf '%s\n' "$QEMU_V" 11.1 | sort -V | head -n1)" == 11.1 ]]; then
        MAPPED=1
    fi
    SHM_STATE=NO_REGION
    ((MAPPED)) && SHM_STATE=ACTIVE
    daemon_start
    if want 1 || want 2 || want 3 || want 4 || want 5 || want 6 || want 7 || want 9 || want 11 || want 13 || want 15; then
        run_single
    fi
    if want 8 || want 9 || want 12 || want 14; then
        run_pair
    fi
    if want 10; then
        run_restart
    fi
    if want 16; then
        run_config
    fi
    begin 0 daemon-teardown
    kill -0 "$DPID" 2>/dev/null || bad "the daemon was not running any more"
    daemon_stop
    eq "daemon exit status after SIGTERM" "$DAEMON_RC" 0
    [[ ! -e "$SOCKDIR/vm1.sock" && ! -e "$SOCKDIR/ctl.sock" ]] || bad "sockets left behind"
    ! grep -q -i 'panicked' "$KLOG"/daemon*.log || bad "panic in the daemon log"
    nwarn="$(cat "$KLOG"/daemon*.log | grep -c -i 'WARN' || true)"
    ndaemons="$(find "$KLOG" -maxdepth 1 -name 'daemon*.log' | wc -l)"
    done_case "SIGTERM: exit 0, sockets removed, no panic; $nwarn warnings in its log$( ((ndaemons > 1)) && echo "s ($ndaemons daemons: the first killed by case 10)"); kernel $CUR_K [$KIND] took $(( $(tdiff_ms "$t_k" "$EPOCHREALTIME") / 1000 )) s"
done
SEL=("${ALL_SEL[@]}")

wall=$(( $(tdiff_ms "$T_START" "$EPOCHREALTIME") / 1000 ))
say "accelerator: ${ACCEL:-unknown}; wall time: $((wall / 60)) min $((wall % 60)) s"
if ((SKIP_N)); then
    echo "$PASS_N passed, $FAIL_N failed, $SKIP_N skipped"
else
    echo "$PASS_N passed, $FAIL_N failed"
fi
((FAIL_N == 0))
