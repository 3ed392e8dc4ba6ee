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
  (0: per boot, the guest booted, exited cleanly, kernel log clean; per kernel, the daemon
   shut down cleanly)

The default matrix (no --kernel, --qemu or \$QEMU):
  stock   (Debian's QEMU 11.1 from the sid root)  6.1, 6.12, 7.2, 7.3: every case (10a SKIP)
  patched (QEMU 10.2.2 + reconnect patch)         6.12: every case; 7.2: case 10
Each block starts with "vm-suite: qemu: <path> (QEMU emulator version ...)".

Options:
  --kernel SERIES   only these guest kernels (repeatable or comma-separated)
  --qemu KIND       only under these QEMUs: stock, patched (default with --kernel: stock)
  --case N          only case N, 1-10 (repeatable or comma-separated; default: all)
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
DMABUF_CACHE.
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
((${#SEL[@]})) || SEL=(1 2 3 4 5 6 7 8 9 10)
for k in "${KERNELS[@]}"; do
    [[ " ${ALL_KERNELS[*]} " == *" $k "* ]] || { echo "vm-suite: --kernel must be one of ${ALL_KERNELS[*]}, not '$k'" >&2; exit 2; }
done
for q in "${QEMUS[@]}"; do
    [[ "$q" == stock || "$q" == patched ]] || { echo "vm-suite: --qemu must be stock or patched, not '$q'" >&2; exit 2; }
done
if [[ -n "${QEMU:-}" ]] && ((${#QEMUS[@]})); then
    echo "vm-suite: --qemu and \$QEMU exclude each other (\$QEMU=$QEMU)" >&2; exit 2
fi
for c in "${SEL[@]}"; do
    [[ "$c" =~ ^([1-9]|10)$ ]] || { echo "vm-suite: --case must be 1-10, not '$c'" >&2; exit 2; }
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

T_START=$EPOCHREALTIME
LOGDIR="$(mktemp -d /tmp/vm-suite.XXXXXX)"
PASS_N=0
FAIL_N=0
SKIP_N=0
DPID=""
declare -A VM_PID=() VM_RD=() VM_OUT=() VM_T0=() VM_RC=() MBOX=()
BG_PIDFILES=()
ACCEL=""

say() { printf 'vm-suite: %s\n' "$*"; }
die() { printf 'vm-suite: error: %s\n' "$*" >&2; exit 1; }

# is_qemu PID: PID runs qemu-system-x86_64 (directly, or the stock QEMU through the sid
# root's dynamic loader, whose comm is the loader's: look at the command line)
is_qemu() {
    [[ "$1" =~ ^[0-9]+$ ]] && tr '\0' ' ' 2>/dev/null < "/proc/$1/cmdline" | grep -q 'qemu-system-'
}

# ------------------------------------------------------------------ cleanup

cleanup() {
    local rc=$? id="" p="" f=""
    set +e
    for id in "${!VM_PID[@]}"; do
        kill -0 "${VM_PID[$id]}" 2>/dev/null && kill -TERM "${VM_PID[$id]}" 2>/dev/null
    done
    for f in "$LOGDIR"/*/*.qemu.pid; do
        [[ -f "$f" ]] || continue
        p="$(cat "$f" 2>/dev/null)"
        is_qemu "$p" && kill -KILL "$p" 2>/dev/null
    done
    for f in "${BG_PIDFILES[@]}"; do
        p="$(cat "$f" 2>/dev/null)"
        [[ "$p" =~ ^[0-9]+$ ]] && kill -TERM "$p" 2>/dev/null
    done
    daemon_stop quiet
    for id in "${!VM_PID[@]}"; do
        for _ in 1 2 3 4 5 6 7 8 9 10; do kill -0 "${VM_PID[$id]}" 2>/dev/null || break; sleep 0.3; done
        kill -KILL "${VM_PID[$id]}" 2>/dev/null
    done
    if ((rc != 0 || FAIL_N > 0 || KEEP)); then
        say "logs: $LOGDIR"
    else
        rm -rf "$LOGDIR"
    fi
}
trap cleanup EXIT
trap 'say "interrupted"; exit 130' INT TERM

# ------------------------------------------------------------------ small tools

# Timestamp each line of stdin with its arrival time (epoch seconds, µs): "TS|line".
stamp() {
    local l=""
    while IFS= read -r l || [[ -n "$l" ]]; do
        printf '%s|%s\n' "$EPOCHREALTIME" "${l//$'\r'/}"
    done
}
us() { local x="${1/./}"; echo $((10#$x)); }
now_us() { us "$EPOCHREALTIME"; }
# tdiff_ms T1 T2: T2 - T1 in ms, or NA
tdiff_ms() {
    [[ "$1" =~ ^[0-9]+\.[0-9]{6}$ && "$2" =~ ^[0-9]+\.[0-9]{6}$ ]] || { echo NA; return; }
    echo $(( ($(us "$2") - $(us "$1")) / 1000 ))
}
# int VALUE: the integer part, or -1 if it is not a number
int() { local v="${1%%.*}"; [[ "$v" =~ ^-?[0-9]+$ ]] && echo "$v" || echo -1; }

ctl() { timeout -k 5 90 "$DMABUFCTL" "$@"; }
# share SIZE [SEED] [dmabufctl share options...]: a new host memfd buffer; prints its UUID
share() {
    local size=$1 seed=${2:-} o=""
    shift 2 || shift $#
    if [[ -n "$seed" ]]; then
        o="$(ctl share --memfd-size "$size" --fill-seed "$seed" "$@")"
    else
        o="$(ctl share --memfd-size "$size" "$@")"
    fi
    sed -n 's/^uuid=//p' <<<"$o"
}
# crc UUID OFFSET LEN [VIA]: fenced host read of the range, its FNV-1a 64 (or ERR)
crc() {
    local o=""
    o="$(ctl read "$1" --offset "$2" --len "$3" --crc --via "${4:-socket}" 2>/dev/null)" || { echo ERR; return 0; }
    sed -n 's/^fnv1a64=\([0-9a-f]*\).*/\1/p' <<<"$o"
}
# ref SEED SIZE OFFSET LEN: FNV-1a 64 of the host's test pattern over the range (computed by
# dmabufctl's pattern code in a scratch memfd: an independent reference for the guest's C code)
ref() {
    local u="" c=""
    u="$(share "$2" "$1")"
    [[ -n "$u" ]] || { echo ERR; return 0; }
    c="$(crc "$u" "$3" "$4")"
    ctl revoke "$u" >/dev/null 2>&1 || true
    echo "$c"
}
# info_field UUID FIELD: one key of dmabufctl info, or GONE
info_field() {
    local o=""
    o="$(ctl info "$1" 2>/dev/null)" || { echo GONE; return 0; }
    sed -n "s/^$2=//p" <<<"$o"
}
in_list() { local l; l="$(ctl list 2>/dev/null || true)"; grep -q "^$1 " <<<"$l"; }
owned_by() { { ctl list 2>/dev/null || true; } | awk -v n="$1" '$3 == n' | wc -l; }

# bg NAME CMD...: run CMD (a program, bounded by 120 s) in the background; its output is timestamped into NAME.log, and
# "exit=<status>" is its last line.
bg() {
    local n=$1
    shift
    local pf="$KLOG/$n.pid"
    BG_PIDFILES+=("$pf")
    { set +e; timeout -k 5 120 "$@" & echo $! > "$pf"; wait $!; echo "exit=$?"; } 2>&1 | stamp > "$KLOG/$n.log" &
}
bg_log() { echo "$KLOG/$1.log"; }

# wait_for FILE STRING TIMEOUT [PID]: the first line of FILE containing STRING; sets WL (the
# line) and WT (its arrival time). Returns 1 (WHY set) at the timeout, or as soon as PID is
# gone without the line having come.
WL="" WT="" WHY=""
wait_for() {
    local f=$1 s=$2 t=$3 pid=${4:-} line="" deadline=""
    deadline=$(( $(now_us) + t * 1000000 ))
    while :; do
        if line="$(grep -a -m1 -F -- "$s" "$f" 2>/dev/null)"; then
            WT="${line%%|*}"
            WL="${line#*|}"
            return 0
        fi
        if [[ -n "$pid" ]] && ! kill -0 "$pid" 2>/dev/null; then
            sleep 0.3
            if line="$(grep -a -m1 -F -- "$s" "$f" 2>/dev/null)"; then
                WT="${line%%|*}"
                WL="${line#*|}"
                return 0
            fi
            WHY="the VM ended before '$s' came"
            return 1
        fi
        if (( $(now_us) >= deadline )); then
            WHY="no '$s' within ${t}s"
            return 1
        fi
        sleep 0.05
    done
}

# wait_key VM KEY TIMEOUT: wait for the guest's "@@ KEY=value"; sets KV (and WT, its time).
KV=""
wait_key() {
    if wait_for "${VM_OUT[$1]}" "@@ $2=" "$3" "${VM_PID[$1]}"; then
        KV="${WL#*"@@ $2="}"
        KV="${KV%"${KV##*[![:space:]]}"}"
        return 0
    fi
    KV=""
    return 1
}
# val VM KEY: the value of a key the guest printed already (empty if none)
val() {
    local line=""
    line="$(grep -a -m1 -F -- "@@ $2=" "${VM_OUT[$1]}" 2>/dev/null)" || { echo ""; return 0; }
    line="${line#*"@@ $2="}"
    echo "${line%"${line##*[![:space:]]}"}"
}
# ts VM KEY: arrival time of a key
ts() {
    local line=""
    line="$(grep -a -m1 -F -- "@@ $2=" "${VM_OUT[$1]}" 2>/dev/null)" || { echo ""; return 0; }
    echo "${line%%|*}"
}

# go VM N [PAYLOAD]: write step N (and a NUL-terminated payload) into the VM's mailbox
go() {
    printf "\\x$(printf %02x "$2")%s\\0" "${3:-}" \
        | ctl write "${MBOX[$1]}" --offset 0 --in - >/dev/null 2>&1 \
        || bad "writing step $2 into the mailbox of $1 failed"
}

# ------------------------------------------------------------------ results

CUR_K="" CUR_N="" CUR_NAME=""
ERRS=()
begin() { CUR_N=$1 CUR_NAME=$2 ERRS=(); }
bad() { ERRS+=("$*"); }
# need VM KEY TIMEOUT: wait for a key or record why it did not come
need() { wait_key "$1" "$2" "$3" || { bad "$1: $WHY"; return 1; }; }
# eq WHAT GOT WANT
eq() { [[ "$2" == "$3" ]] || bad "$1: got '${2}', want '${3}'"; }
# ge WHAT VALUE MIN (integers; NA fails)
ge() { if ! [[ "$2" =~ ^-?[0-9]+$ ]] || (( $2 < $3 )); then bad "$1: $2 < $3"; fi; }
le() { if ! [[ "$2" =~ ^-?[0-9]+$ ]] || (( $2 > $3 )); then bad "$1: $2 > $3"; fi; }
done_case() {
    local e=""
    if ((${#ERRS[@]} == 0)); then
        echo "PASS $CUR_K $CUR_N $CUR_NAME ($1)"
        PASS_N=$((PASS_N + 1))
    else
        e="$(printf '%s; ' "${ERRS[@]:0:5}")"
        ((${#ERRS[@]} <= 5)) || e+="and $((${#ERRS[@]} - 5)) more; "
        echo "FAIL $CUR_K $CUR_N $CUR_NAME: ${e%; } (logs: $KLOG)"
        FAIL_N=$((FAIL_N + 1))
    fi
}
# fail_now N NAME WHY: a case that could not run
fail_now() {
    echo "FAIL $CUR_K $1 $2: $3 (logs: $KLOG)"
    FAIL_N=$((FAIL_N + 1))
}
# skip_now N NAME WHY: a case left out on purpose
skip_now() {
    echo "SKIP $CUR_K $1 $2: $3"
    SKIP_N=$((SKIP_N + 1))
}

# ------------------------------------------------------------------ daemon and VMs

# daemon_start [LOG]: start the daemon (log to $KLOG/LOG, default daemon.log) and wait until
# its sockets are bound: sockets a killed daemon left behind do not count (inode and ctime
# differ; an inode number alone may be reused at once)
daemon_start() {
    local logf="$KLOG/${1:-daemon.log}" i="" n="" ready=""
    local -A old=()
    SOCKDIR="$KLOG"
    for n in vm1 vm2 ctl; do old[$n]="$(stat -c '%i %z' "$SOCKDIR/$n.sock" 2>/dev/null || echo none)"; done
    "$DAEMON" --socket "vm1=$SOCKDIR/vm1.sock" --socket "vm2=$SOCKDIR/vm2.sock" \
        --control-socket "$SOCKDIR/ctl.sock" --sync-timeout-ms 30000 >"$logf" 2>&1 &
    DPID=$!
    for ((i = 0; i < 200; i++)); do
        ready=1
        for n in vm1 vm2 ctl; do
            [[ -S "$SOCKDIR/$n.sock" && "$(stat -c '%i %z' "$SOCKDIR/$n.sock" 2>/dev/null)" != "${old[$n]}" ]] || ready=0
        done
        ((ready)) && break
        kill -0 "$DPID" 2>/dev/null || break
        sleep 0.05
    done
    ((ready)) || { cat "$logf" >&2; die "the daemon did not start (log $logf)"; }
    export DMABUF_CONTROL_SOCKET="$SOCKDIR/ctl.sock"
}

# daemon_stop [quiet]: SIGTERM, at most 10 s, then SIGKILL; sets DAEMON_RC
daemon_stop() {
    DAEMON_RC=""
    [[ -n "$DPID" ]] || return 0
    local i=""
    kill -TERM "$DPID" 2>/dev/null || true
    kill -CONT "$DPID" 2>/dev/null || true   # case 10b stops it for a while
    for ((i = 0; i < 100; i++)); do kill -0 "$DPID" 2>/dev/null || break; sleep 0.1; done
    if kill -0 "$DPID" 2>/dev/null; then
        kill -KILL "$DPID" 2>/dev/null || true
        DAEMON_RC=killed
    fi
    local rc=0
    wait "$DPID" 2>/dev/null || rc=$?
    [[ -n "$DAEMON_RC" ]] || DAEMON_RC=$rc
    DPID=""
}

# guest_script OUT BODY VAR=VALUE...: header + lib.sh + the guest script
guest_script() {
    local out=$1 body=$2
    shift 2
    {
        printf '%s\n' "$@"
        printf 'CASES="%s"\n' "${SEL[*]}"
        printf 'C1_SIZE=%s C2_SIZE=%s C3_SIZE=%s C3_X=%s C3_L=%s C3_Y=%s C3_M=%s\n' \
            "$C1_SIZE" "$C2_SIZE" "$C3_SIZE" "$C3_X" "$C3_L" "$C3_Y" "$C3_M"
        printf 'C6_OFF=%s C6_LEN=%s C8_SIZE=%s C8_OFF=%s C8_LEN=%s C8_YSIZE=%s\n' \
            "$C6_OFF" "$C6_LEN" "$C8_SIZE" "$C8_OFF" "$C8_LEN" "$C8_YSIZE"
        cat "$HERE/guest/lib.sh" "$HERE/guest/$body"
    } > "$out"
}

# vm_start ID SOCKET SCRIPT TIMEOUT [RUN-VM-ARGS...]: run-vm in the background; its output
# (console, and run-vm's and QEMU's messages) comes through a FIFO and is timestamped into
# ID.out
vm_start() {
    local id=$1 sock=$2 script=$3 tmo=$4
    shift 4
    mkfifo "$KLOG/$id.fifo"
    stamp < "$KLOG/$id.fifo" > "$KLOG/$id.out" &
    VM_RD[$id]=$!
    VM_OUT[$id]="$KLOG/$id.out"
    VM_T0[$id]=$EPOCHREALTIME
    "$REPO/qemu-scripts/run-vm" --kernel "$CUR_K" --socket "$sock" --initrd "$KLOG/initrd.gz" \
        --cmd-file "$script" --timeout "$tmo" --log "$KLOG/$id.console" \
        --qemu-arg -pidfile --qemu-arg "$KLOG/$id.qemu.pid" "$@" \
        < /dev/null > "$KLOG/$id.fifo" 2>&1 &
    VM_PID[$id]=$!
}

# vm_wait ID TIMEOUT: wait for run-vm to end (stop it at the timeout); sets VM_RC[ID]
vm_wait() {
    local id=$1 t=$2 deadline="" rc=0 i=""
    deadline=$(( $(now_us) + t * 1000000 ))
    while kill -0 "${VM_PID[$id]}" 2>/dev/null; do
        if (( $(now_us) >= deadline )); then
            kill -TERM "${VM_PID[$id]}" 2>/dev/null || true
            for ((i = 0; i < 50; i++)); do kill -0 "${VM_PID[$id]}" 2>/dev/null || break; sleep 0.1; done
            kill -KILL "${VM_PID[$id]}" 2>/dev/null || true
            break
        fi
        sleep 0.1
    done
    wait "${VM_PID[$id]}" 2>/dev/null || rc=$?
    VM_RC[$id]=$rc
    for ((i = 0; i < 50; i++)); do kill -0 "${VM_RD[$id]}" 2>/dev/null || break; sleep 0.1; done
    kill "${VM_RD[$id]}" 2>/dev/null || true
    wait "${VM_RD[$id]}" 2>/dev/null || true
}

qemu_pid() {
    local p=""
    p="$(cat "$KLOG/$1.qemu.pid" 2>/dev/null || true)"
    is_qemu "$p" && echo "$p"
    return 0
}

# vm_booted ID: wait for the guest's boot.ready; note the accelerator
vm_booted() {
    wait_key "$1" boot.ready 240 || return 1
    local a=""
    a="$(grep -a -m1 -o 'run-vm: accelerator=[a-z]*' "${VM_OUT[$1]}" | sed 's/.*=//' || true)"
    if [[ -n "$a" && -z "$ACCEL" ]]; then
        ACCEL=$a
        say "accelerator=$ACCEL (run-vm; $(grep -a -m1 -o 'KVM probe[^|]*' "${VM_OUT[$1]}" || echo 'no KVM probe'))"
    fi
    return 0
}

# boot_result NAME ID...: case 0 line for one boot (guest boot, clean end, kernel log)
boot_result() {
    local name=$1 id="" details="" b="" e="" d=""
    shift
    begin 0 "$name"
    for id in "$@"; do
        b="$(tdiff_ms "${VM_T0[$id]}" "$(ts "$id" boot.ready)")"
        e="$(val "$id" end.dmesg_trouble)"
        d="$(val "$id" end.dmabuf_debug)"
        [[ -n "$(val "$id" boot.ready)" ]] || bad "$id did not boot"
        case "$id" in
            p2|p3) ;;  # powered off / killed on purpose: checked by 9b / 9c
            *)
                eq "$id guest exit status" "${VM_RC[$id]:-?}" 0
                eq "$id kernel log lines with BUG/WARNING/Oops" "$e" 0
                eq "$id kernel log lines of the dma-buf core's checks" "$d" 0 ;;
        esac
        details+="$id: $(val "$id" boot.kernel), booted in ${b} ms, exit ${VM_RC[$id]:-?}, dmesg trouble ${e:-n/a}"
        ((DMABUF_DEBUG)) && details+=" (DMABUF_DEBUG=y: ${d:-n/a} dma-buf debug lines)"
        details+="; "
    done
    done_case "${details%; }"
}

# ------------------------------------------------------------------ the single-VM boot

run_single() {
    local s=s1 mb="" h2="" h3="" h4="" h5=""
    mb="$(share 4096 "" --allow vm1)"
    h2="$(share "$C2_SIZE" 31)"
    h3="$(share "$C3_SIZE" 41)"
    h4="$(share 65536 61)"
    h5="$(share "$C5_SIZE" 71)"
    MBOX[$s]=$mb
    guest_script "$KLOG/$s.sh" single.sh "MBOX=$mb" "H2=$h2" "H3=$h3" "H4=$h4" "H5=$h5"
    vm_start "$s" "$SOCKDIR/vm1.sock" "$KLOG/$s.sh" 600
    if ! vm_booted "$s"; then
        local c=""
        for c in 1 2 3 4 5 6 7 9; do want "$c" && fail_now "$c" "(single-VM boot)" "guest did not boot: $WHY"; done
        vm_wait "$s" 10
        boot_result boot-single "$s"
        return
    fi

    # 1 ------------------------------------------------------------------------------
    if want 1; then
        begin 1 guest-to-host
        local u="" g="" hs="" hm="" r=""
        go "$s" 11
        if need "$s" c1.ready 60; then
            u="$(val "$s" c1.uuid)"
            g="$(val "$s" c1.fnv1a64)"
            eq "guest size" "$(val "$s" c1.size)" "$C1_SIZE"
            hs="$(crc "$u" 0 "$C1_SIZE" socket)"
            hm="$(crc "$u" 0 "$C1_SIZE" memfd)"
            r="$(ref 21 "$C1_SIZE" 0 "$C1_SIZE")"
            eq "host read (socket) vs guest" "$hs" "$g"
            eq "host read (READ_INTO memfd) vs guest" "$hm" "$g"
            eq "host pattern reference vs guest" "$r" "$g"
            eq "owner" "$(info_field "$u" owner)" vm1
            eq "host_backed" "$(info_field "$u" host_backed)" 0
        fi
        go "$s" 12
        need "$s" c1q.closed 30 && eq "holder closed" "$KV" 1
        done_case "guest-filled $C1_SIZE B buffer (owner vm1): guest fnv1a64 $g = host read via socket = via memfd = host's pattern reference"
    fi

    # 2 ------------------------------------------------------------------------------
    if want 2; then
        begin 2 host-to-guest
        local c0="" r31="" r32="" g0="" c1="" gen=""
        c0="$(crc "$h2" 0 "$C2_SIZE")"
        r31="$(ref 31 "$C2_SIZE" 0 "$C2_SIZE")"
        r32="$(ref 32 "$C2_SIZE" 0 "$C2_SIZE")"
        g0="$(info_field "$h2" write_generation)"
        bg ww2 "$DMABUFCTL" --timeout-ms 60000 wait-write "$h2" --after "$g0"
        go "$s" 21
        if need "$s" c2.rc 60; then
            eq "guest import rc" "$KV" 0
            eq "host_backed flag seen by the guest" "$(val "$s" c2.host_backed)" 1
            eq "size seen by the guest" "$(val "$s" c2.size)" "$C2_SIZE"
            eq "guest verify of the host's seed 31" "$(val "$s" c2.verify)" ok
            eq "guest read fnv1a64 vs host" "$(val "$s" c2.fnv1a64)" "$c0"
            eq "host bytes vs pattern 31" "$c0" "$r31"
            c1="$(crc "$h2" 0 "$C2_SIZE")"
            eq "host bytes after the guest's write END vs the guest's" "$c1" "$(val "$s" c2.write_fnv1a64)"
            eq "host bytes after the guest's write vs pattern 32" "$c1" "$r32"
        fi
        if wait_for "$(bg_log ww2)" "|generation=" 20; then
            gen="${WL#generation=}"
            eq "write generation after the guest's END" "$gen" "$((g0 + 1))"
        else
            bad "host wait-write: $WHY"
        fi
        local bench="not reported"
        if need "$s" c2b.rc 120 && [[ "$KV" == 0 ]]; then
            bench="$(val "$s" c2b.dmabuf_read_mbps) MB/s for an imported 1 MiB host buffer (START READ + read + END) vs $(val "$s" c2b.local_read_mbps) MB/s guest-local, ratio $(val "$s" c2b.ratio), START $(val "$s" c2b.sync_start_us_median) us (${ACCEL:-?}, reported, not asserted)"
        fi
        done_case "host memfd $C2_SIZE B seed 31 imported by UUID (host_backed=1), read-synced + mmap verified (fnv1a64 $c0); guest wrote seed 32 and ended: host wait-write woke (generation $gen), host reads $c1 = pattern 32; guest read throughput: $bench"
    fi

    # 3 ------------------------------------------------------------------------------
    if want 3; then
        begin 3 ranged-sync
        local ry="" r42a="" r42b="" e=""
        go "$s" 31
        need "$s" c3a.ready 60 && eq "guest initial verify of seed 41" "$(val "$s" c3a.verify)" ok
        ctl write "$h3" --fill-seed 42 --len "$C3_SIZE" >/dev/null 2>&1 || bad "host write of seed 42 failed"
        go "$s" 32
        if need "$s" c3f.end 90; then
            eq "guest: synced range [$C3_X,+$C3_L) has the host's new seed 42" "$(val "$s" c3b.verify)" ok
            eq "guest: [0,$C3_X) outside the sync still has the old seed 41" "$(val "$s" c3c.verify)" ok
            eq "guest: [$((C3_X + C3_L)),end) outside the sync still has the old seed 41" "$(val "$s" c3d.verify)" ok
            eq "guest write of [$C3_Y,+$C3_M)" "$(val "$s" c3f.end)" "done"
            ry="$(crc "$h3" "$C3_Y" "$C3_M")"
            e="$(ref 43 "$C3_SIZE" "$C3_Y" "$C3_M")"
            eq "host: written range has the guest's seed 43" "$ry" "$e"
            eq "host: written range = guest's write checksum" "$ry" "$(val "$s" c3f.write_fnv1a64)"
            r42a="$(crc "$h3" 0 "$C3_Y")"
            eq "host: [0,$C3_Y) not written back (seed 42 kept although the guest's whole copy has seed 43)" \
                "$r42a" "$(ref 42 "$C3_SIZE" 0 "$C3_Y")"
            r42b="$(crc "$h3" $((C3_Y + C3_M)) $((C3_SIZE - C3_Y - C3_M)))"
            eq "host: [$((C3_Y + C3_M)),end) not written back" "$r42b" \
                "$(ref 42 "$C3_SIZE" $((C3_Y + C3_M)) $((C3_SIZE - C3_Y - C3_M)))"
        fi
        go "$s" 33
        need "$s" c3q.closed 30
        done_case "host->guest: host rewrote all $C3_SIZE B, guest read-synced [$C3_X,+$C3_L): that range new, the rest of its copy still old; guest->host: guest wrote its whole copy, write-synced [$C3_Y,+$C3_M): host got only that range"
    fi

    # 4 ------------------------------------------------------------------------------
    if want 4; then
        begin 4 cross-domain-fencing
        local t_rel="" t_issue="" t_grant="" gms="" rem="" late="" t_rel2="" t_to="" gms2="" slack=""
        bg hold4a "$DMABUFCTL" --timeout-ms 20000 hold "$h4" --len 65536 --write --seconds "$C4_HOLD_S"
        wait_for "$(bg_log hold4a)" "|held" 20 || bad "host hold: $WHY"
        go "$s" 41
        if need "$s" c4a.rc 60; then
            eq "guest START status" "$(val "$s" c4a.op0_status)" OK
            wait_for "$(bg_log hold4a)" "|released" 20 || bad "host release: $WHY"
            t_rel=$WT
            t_issue="$(ts "$s" c4a.op0_issue)"
            t_grant="$(ts "$s" c4a.op0_status)"
            gms="$(int "$(val "$s" c4a.op0_ms)")"
            rem="$(tdiff_ms "$t_issue" "$t_rel")"
            late="$(tdiff_ms "$t_rel" "$t_grant")"
            ge "host hold remaining after the guest issued its START (ms)" "$rem" 1000
            # The guest measures its wait with its own clock (TSC calibrated under TCG), the
            # host the rest with its clock: allow 100 ms or 3 % between them. A START that is
            # not fenced returns in a few ms, thousands of ms short of this bound.
            slack=$(( rem * 3 / 100 > 100 ? rem * 3 / 100 : 100 ))
            ge "guest wait (ms) vs the host hold remaining after the START was issued ($rem ms, less $slack ms clock allowance)" \
                "$gms" $((rem - slack))
            ge "guest grant seen after the host's 'released' (ms)" "$late" 0
            le "guest wait (ms) bounded by the hold" "$gms" $((C4_HOLD_S * 1000 + 2000))
        fi
        wait_for "$(bg_log hold4a)" "|exit=" 20 && eq "host hold exit" "${WL#exit=}" 0
        bg hold4b "$DMABUFCTL" --timeout-ms 20000 hold "$h4" --len 65536 --write --seconds "$C4_SHORT_HOLD_S"
        wait_for "$(bg_log hold4b)" "|held" 20 || bad "second host hold: $WHY"
        go "$s" 42
        if need "$s" c4b.rc 60; then
            eq "guest START with a 1000 ms bound" "$(val "$s" c4b.op0_status)" ETIMEDOUT
            gms2="$(int "$(val "$s" c4b.op0_ms)")"
            ge "guest timeout wait (ms)" "$gms2" 900
            le "guest timeout wait (ms)" "$gms2" 4000
            t_to="$(ts "$s" c4b.op0_status)"
            wait_for "$(bg_log hold4b)" "|released" 20 || bad "host release: $WHY"
            t_rel2=$WT
            ge "host still held when the guest timed out (ms before release)" "$(tdiff_ms "$t_to" "$t_rel2")" 1
        fi
        wait_for "$(bg_log hold4b)" "|exit=" 20 || true
        # A host client dies (SIGKILL) holding write access: the daemon releases it and the
        # guest's waiting write START is granted.
        local hpid="" t_kill="" gms3="" after=""
        bg hold4c "$DMABUFCTL" --timeout-ms 20000 hold "$h4" --len 65536 --write --seconds 100
        wait_for "$(bg_log hold4c)" "|held" 20 || bad "third host hold: $WHY"
        go "$s" 43
        if need "$s" c4c.op0_issue 60; then
            sleep 1.5
            hpid="$(pgrep -P "$(cat "$KLOG/hold4c.pid" 2>/dev/null || echo 0)" -x dmabufctl || true)"
            if [[ -n "$hpid" ]]; then
                t_kill=$EPOCHREALTIME
                kill -KILL "$hpid"
            else
                bad "no dmabufctl process for the third hold"
            fi
        fi
        if need "$s" c4c.rc 60; then
            eq "guest write START after the holder was killed" "$(val "$s" c4c.op0_status)" OK
            eq "guest write END" "$(val "$s" c4c.op1_status)" OK
            gms3="$(int "$(val "$s" c4c.op0_ms)")"
            ge "guest wait (ms) while the killed client held" "$gms3" 1000
            after="$(tdiff_ms "$t_kill" "$(ts "$s" c4c.op0_status)")"
            le "grant seen after the SIGKILL (ms)" "$after" 3000
        fi
        wait_for "$(bg_log hold4c)" "|exit=" 20 && eq "killed holder's exit status" "${WL#exit=}" 137
        eq "host bytes of H4 after the killed hold" "$(crc "$h4" 0 65536)" "$(ref 61 65536 0 65536)"
        done_case "host held write ${C4_HOLD_S} s; guest read START issued $rem ms before the host's END (host clock), waited $gms ms (guest clock), grant seen $late ms after the host's 'released'; with a 1000 ms bound: ETIMEDOUT after $gms2 ms while the host still held; a host client SIGKILLed while holding write access: the guest's write START (waiting $gms3 ms) granted $after ms after the kill, the buffer still served"
    fi

    # 5 ------------------------------------------------------------------------------
    if want 5; then
        begin 5 vgem-import
        local hc="" id="" m="" maps=""
        hc="$(crc "$h5" 0 "$C5_SIZE")"
        go "$s" 51
        if need "$s" c5d.rc 120; then
            eq "load-vgem" "$(val "$s" c5a.rc)" 0
            for id in c5b c5c; do
                eq "$id rc" "$(val "$s" $id.rc)" 0
                eq "$id vgem PRIME_FD_TO_HANDLE" "$(val "$s" $id.vgem_import)" ok
                eq "$id vgem re-export is our dma-buf" "$(val "$s" $id.vgem_reexport_same)" 1
                m="$(val "$s" $id.vgem_map)"
                maps+="$m "
                [[ "$m" == ok ]] && eq "$id bytes through vgem's mapping" "$(val "$s" $id.vgem_match)" 1
            done
            eq "imported host buffer: bytes in our mapping vs host" "$(val "$s" c5c.fnv1a64)" "$hc"
            eq "kimport (attach + sg_table) result" "$(val "$s" c5d.kimport_result)" OK
            eq "kimport sg_table checksum vs host" "$(val "$s" c5d.attach_fnv1a64)" "$hc"
            eq "kimport vmap verify of seed 71" "$(val "$s" c5d.attach_match)" 1
        fi
        done_case "vgem imported (PRIME_FD_TO_HANDLE: attach + map of our sg_table) a guest-own 1 MiB and a host-shared 1 MiB dma-buf, re-export gave back the same dma-buf; vgem's dumb mapping of imports: ${maps% } (DRM refuses it), so no byte compare through vgem; bytes checked: our mapping and kimport's attachment sg_table both = host fnv1a64 $hc"
    fi

    # 6 ------------------------------------------------------------------------------
    if want 6; then
        begin 6 kernel-importer
        local before="" u6="" e=""
        before="$(crc "$h5" 0 "$C5_SIZE")"
        go "$s" 61
        if need "$s" c6e.rc 120; then
            eq "kimport verify (begin_cpu_access FROM_DEVICE + vmap) of the host's seed 71" "$(val "$s" c6a.kimport_result)" OK
            eq "kimport read checksum vs host" "$(val "$s" c6a.fnv1a64)" "$before"
            eq "kimport write (TO_DEVICE + vmap) of seed 72" "$(val "$s" c6b.kimport_result)" OK
            eq "kernel's write read back through mmap" "$(val "$s" c6b.verify)" ok
            e="$(ref 72 "$C5_SIZE" "$C6_OFF" "$C6_LEN")"
            eq "host sees the kernel's write" "$(crc "$h5" "$C6_OFF" "$C6_LEN")" "$e"
            eq "host: bytes before the kernel's range unchanged" "$(crc "$h5" 0 "$C6_OFF")" "$(ref 71 "$C5_SIZE" 0 "$C6_OFF")"
            eq "host: bytes after the kernel's range unchanged" \
                "$(crc "$h5" $((C6_OFF + C6_LEN)) $((C5_SIZE - C6_OFF - C6_LEN)))" \
                "$(ref 71 "$C5_SIZE" $((C6_OFF + C6_LEN)) $((C5_SIZE - C6_OFF - C6_LEN)))"
            u6="$(val "$s" c6c.uuid)"
            eq "kimport write on a guest-own buffer" "$(val "$s" c6d.kimport_result)" OK
            eq "... its sg_table checksum = its vmap checksum" "$(val "$s" c6d.attach_match)" 1
            eq "host reads the kernel's write in the guest's pages" "$(crc "$u6" 0 65536)" "$(ref 6 1048576 0 65536)"
            eq "host: rest of that buffer unchanged" "$(crc "$u6" 65536 $((1048576 - 65536)))" "$(ref 5 1048576 65536 $((1048576 - 65536)))"
            eq "kimport verify + attach on a 2 MiB own buffer" "$(val "$s" c6e.kimport_result)" OK
            eq "... sg_table checksum = vmap checksum" "$(val "$s" c6e.attach_match)" 1
        fi
        go "$s" 62
        need "$s" c6q.closed 30
        done_case "dmabuf_kimport: begin_cpu_access + vmap read the host's bytes (= host fnv1a64 $before) and wrote [$C6_OFF,+$C6_LEN) of a host buffer (host sees exactly that range change) and 64 KiB of a guest buffer (host reads it in the guest's pages); attach sg_table checksums = vmap checksums"
    fi

    # 7 ------------------------------------------------------------------------------
    if want 7; then
        begin 7 cloexec
        go "$s" 71
        if need "$s" c7d.rc 60; then
            eq "ALLOC fd FD_CLOEXEC" "$(val "$s" c7a.cloexec)" 1
            eq "ALLOC --no-cloexec fd FD_CLOEXEC" "$(val "$s" c7b.cloexec)" 0
            eq "IMPORT fd FD_CLOEXEC" "$(val "$s" c7c.cloexec)" 1
            eq "IMPORT --no-cloexec fd FD_CLOEXEC" "$(val "$s" c7d.cloexec)" 0
            eq "rcs" "$(val "$s" c7a.rc)$(val "$s" c7b.rc)$(val "$s" c7c.rc)$(val "$s" c7d.rc)" 0000
        fi
        done_case "F_GETFD: ALLOC and IMPORT fds have FD_CLOEXEC; with VIRTIO_DMABUF_FD_NO_CLOEXEC they do not"
    fi

    # 9a -----------------------------------------------------------------------------
    if want 9; then
        begin 9a module-unload
        local u9="" ui="" msg=""
        go "$s" 91
        if need "$s" c9d.devnode 60; then
            u9="$(val "$s" c9a.uuid)"
            eq "holder closed /dev/virtio-dmabuf0" "$(val "$s" c9b.dev_closed)" 1
            ge "module refcount with only a dma-buf open" "$(int "$(val "$s" c9c.refcnt)")" 1
            [[ "$(val "$s" c9d.rc)" != 0 ]] || bad "rmmod succeeded while a buffer was open"
            msg="$(val "$s" c9d.out)"
            eq "device node after the refused rmmod" "$(val "$s" c9d.devnode)" 1
            in_list "$u9" || bad "the open buffer vanished from the host's list after the refused rmmod"
        fi
        go "$s" 92
        if need "$s" c9i.ready 60; then
            eq "buffer intact after the refused rmmod" "$(val "$s" c9e.verify)" ok
            eq "rmmod after close" "$(val "$s" c9g.rc)" 0
            eq "device node after rmmod" "$(val "$s" c9g.devnode)" 0
            eq "module loaded after rmmod" "$(val "$s" c9g.loaded)" 0
            ! in_list "$u9" || bad "host still lists the buffer after rmmod"
            eq "reload" "$(val "$s" c9h.rc)" 0
            eq "device node after reload" "$(val "$s" c9h.devnode)" 1
            ui="$(val "$s" c9i.uuid)"
            eq "buffer after reload: host read vs guest" "$(crc "$ui" 0 12288)" "$(val "$s" c9i.fnv1a64)"
            eq "buffer after reload vs pattern 8" "$(val "$s" c9i.fnv1a64)" "$(ref 8 12288 0 12288)"
        fi
        go "$s" 93
        need "$s" c9q.closed 30
        done_case "rmmod refused with only a dma-buf fd open (refcnt $(val "$s" c9c.refcnt): '$msg'); after close rmmod worked, /dev node gone, host list dropped the buffer; insmod again: new buffer read by the host"
    fi

    if ! wait_key "$s" end.done 120; then
        say "single-VM guest did not finish: $WHY"
    fi
    vm_wait "$s" 60
    boot_result boot-single "$s"
}

# ------------------------------------------------------------------ the two-VM boot

# waiters UUID_VM HOSTBUF PREFIX: the host waits on a VM's buffer (BEGIN read, WAIT_WRITE)
# and on a host buffer the VM holds for writing (BEGIN write)
start_waiters() {
    bg "$3-begin" "$DMABUFCTL" --timeout-ms 60000 hold "$1" --read --len 4096 --seconds 1
    bg "$3-wwrite" "$DMABUFCTL" --timeout-ms 60000 wait-write "$1"
    bg "$3-hostbuf" "$DMABUFCTL" --timeout-ms 60000 hold "$2" --write --len 4096 --seconds 1
    sleep 1.5
    local w=""
    for w in begin wwrite hostbuf; do
        if grep -q -e '|held' -e '|exit=' -e '|generation' "$(bg_log "$3-$w")"; then
            bad "host waiter $w did not wait: $(tr '\n' ' ' < "$(bg_log "$3-$w")")"
        fi
    done
}

# rel_ms T0 T EVENT: "N ms after EVENT" / "N ms before EVENT"
rel_ms() {
    local d
    d="$(tdiff_ms "$1" "$2")"
    if [[ "$d" == NA ]]; then echo "? ms from $3"
    elif ((d < 0)); then echo "$((-d)) ms before $3"
    else echo "$d ms after $3"; fi
}

# check_waiters PREFIX T0 EVENT: the waiters ended at most 5 s after T0 (the VM's end, when
# QEMU was gone), how they should; sets WDET
check_waiters() {
    local p=$1 t0=$2 ev=$3 d1="" d2="" d3="" m=""
    WDET=""
    if wait_for "$(bg_log "$p-begin")" "|exit=" 20; then
        d1="$(tdiff_ms "$t0" "$WT")"
        [[ "${WL#exit=}" != 0 ]] || bad "host BEGIN on the VM's buffer succeeded"
        m="$(grep -a -o 'dmabufctl: [^|]*' "$(bg_log "$p-begin")" | head -n1 || true)"
        le "host BEGIN on the VM's buffer returned (ms after)" "$d1" 5000
        WDET+="host BEGIN waiting on the VM's buffer failed $(rel_ms "$t0" "$WT" "$ev") ('${m#dmabufctl: }'), "
    else
        bad "host BEGIN on the VM's buffer still waiting: $WHY"
    fi
    if wait_for "$(bg_log "$p-wwrite")" "|exit=" 20; then
        d2="$(tdiff_ms "$t0" "$WT")"
        [[ "${WL#exit=}" != 0 ]] || bad "host wait-write on the VM's buffer succeeded"
        m="$(grep -a -o 'dmabufctl: [^|]*' "$(bg_log "$p-wwrite")" | head -n1 || true)"
        le "host wait-write returned (ms after)" "$d2" 5000
        WDET+="host wait-write failed $(rel_ms "$t0" "$WT" "$ev"), "
    else
        bad "host wait-write still waiting: $WHY"
    fi
    if wait_for "$(bg_log "$p-hostbuf")" "|held" 20; then
        d3="$(tdiff_ms "$t0" "$WT")"
        le "host write BEGIN on its own buffer granted (ms after)" "$d3" 5000
        WDET+="host write BEGIN waiting on a host buffer the VM held for writing granted $(rel_ms "$t0" "$WT" "$ev")"
    else
        bad "host write BEGIN on a host buffer the VM held: not granted: $WHY"
    fi
    wait_for "$(bg_log "$p-hostbuf")" "|exit=" 20 || true
}

run_pair() {
    local hb=""
    MBOX[p1]="$(share 4096 "" --allow vm1)"
    MBOX[p2]="$(share 4096 "" --allow vm2)"
    hb="$(share 65536 65)"
    guest_script "$KLOG/p1.sh" peer1.sh "MBOX=${MBOX[p1]}"
    guest_script "$KLOG/p2.sh" peer2.sh "MBOX=${MBOX[p2]}" "MODE=poweroff" "HB=$hb"
    vm_start p1 "$SOCKDIR/vm1.sock" "$KLOG/p1.sh" 900
    vm_start p2 "$SOCKDIR/vm2.sock" "$KLOG/p2.sh" 600
    local ok1=0 ok2=0
    vm_booted p1 && ok1=1
    vm_booted p2 && ok2=1
    if ((!ok1 || !ok2)); then
        want 8 && fail_now 8 two-vms "guests did not boot (vm1 $ok1, vm2 $ok2): $WHY"
        want 9 && fail_now 9b guest-poweroff "guests did not boot" && fail_now 9c qemu-kill "guests did not boot"
        vm_wait p1 10
        vm_wait p2 10
        boot_result boot-pair p1 p2
        return
    fi

    # 8 ------------------------------------------------------------------------------
    if want 8; then
        begin 8 two-vms
        local x="" xf="" y=""
        go p1 81
        if need p1 c8a.ready 60; then
            x="$(val p1 c8a.uuid)"
            xf="$(val p1 c8a.fnv1a64)"
        fi
        go p2 81 "$x"
        if need p2 c8d.ready 120; then
            eq "VM2 import of VM1's buffer: verify seed 51" "$(val p2 c8b.verify)" ok
            eq "VM2's read checksum vs VM1's" "$(val p2 c8b.fnv1a64)" "$xf"
            eq "VM2's import flags own" "$(val p2 c8b.own)" 0
            eq "VM2 write of [$C8_OFF,+$C8_LEN)" "$(val p2 c8c.rc)" 0
            eq "host: VM2's write in VM1's buffer" "$(crc "$x" "$C8_OFF" "$C8_LEN")" "$(ref 52 "$C8_SIZE" "$C8_OFF" "$C8_LEN")"
            eq "host: VM2's write checksum" "$(crc "$x" "$C8_OFF" "$C8_LEN")" "$(val p2 c8c.write_fnv1a64)"
            eq "host: rest of VM1's buffer unchanged" "$(crc "$x" 0 "$C8_OFF")" "$(ref 51 "$C8_SIZE" 0 "$C8_OFF")"
            y="$(val p2 c8d.uuid)"
            eq "owner of VM2's buffer" "$(info_field "$y" owner)" vm2
            eq "owner of VM1's buffer" "$(info_field "$x" owner)" vm1
        fi
        go p1 82 "$y"
        if need p1 c8g.rc 60; then
            eq "VM1 sees VM2's write in its own pages" "$(val p1 c8e.verify)" ok
            eq "VM1's bytes outside VM2's range" "$(val p1 c8f.verify)" ok
            eq "VM1 import of VM2's buffer: verify seed 53" "$(val p1 c8g.verify)" ok
            eq "VM1's read checksum vs VM2's" "$(val p1 c8g.fnv1a64)" "$(val p2 c8d.fnv1a64)"
        fi
        go p2 82
        go p1 83
        need p2 c8q.closed 30
        need p1 c8q.closed 30
        done_case "VM1's $C8_SIZE B buffer: VM2 imported it by UUID and verified VM1's bytes, wrote [$C8_OFF,+$C8_LEN) and ended, VM1 read the write in its own pages (host too); VM2's $C8_YSIZE B buffer imported and verified by VM1"
    fi

    if want 9; then
        # 9b -------------------------------------------------------------------------
        begin 9b guest-poweroff
        local v="" z="" q="" tq="" t_go="" s2="" pd=""
        go p1 91
        need p1 p1a.ready 60 && v="$(val p1 p1a.uuid)"
        go p2 91 "$v"
        if need p2 p2d.op0_status 90 && need p2 p2c.op0_status 30; then
            eq "VM2 import of VM1's buffer" "$(val p2 p2a.verify)" ok
            eq "VM2 write access on its own buffer" "$(val p2 p2c.op0_status)" OK
            eq "VM2 write access on the host buffer" "$(val p2 p2d.op0_status)" OK
            z="$(val p2 p2b.uuid)"
            eq "importers of VM1's buffer" "$(info_field "$v" importers)" 1
            eq "VM2's buffers listed" "$(owned_by vm2)" 1
        fi
        start_waiters "$z" "$hb" w9b
        q="$(qemu_pid p2)"
        t_go=$EPOCHREALTIME
        go p2 92
        need p2 p2e.poweroff 30
        # wait (bounded) for VM2's QEMU to exit after the guest's poweroff
        tq=""
        for ((i = 0; i < 600; i++)); do
            if [[ -z "$q" ]] || ! kill -0 "$q" 2>/dev/null; then tq=$EPOCHREALTIME; break; fi
            sleep 0.05
        done
        [[ -n "$tq" ]] || bad "VM2's QEMU still running 30 s after the poweroff"
        pd="$(tdiff_ms "$t_go" "$tq")"
        check_waiters w9b "${tq:-$t_go}" "QEMU exited"
        vm_wait p2 60
        eq "VM2 guest exit status (then poweroff -f)" "${VM_RC[p2]}" 0
        ! in_list "$z" || bad "VM2's buffer still listed after its poweroff"
        eq "VM2's buffers listed after poweroff" "$(owned_by vm2)" 0
        eq "importers of VM1's buffer after VM2's poweroff" "$(info_field "$v" importers)" 0
        go p1 92
        if need p1 p1c.ready 60; then
            eq "VM1's buffer after VM2 left" "$(val p1 p1b.verify)" ok
            s2="$(val p1 p1c.uuid)"
            eq "daemon still serves VM1: new buffer read by the host" "$(crc "$s2" 0 8192)" "$(ref 59 8192 0 8192)"
        fi
        go p1 93
        need p1 p1e.closed 30
        kill -0 "$DPID" 2>/dev/null || bad "the daemon died"
        done_case "VM2 powered off (QEMU gone $pd ms after the go) holding write access to its own buffer and to a host buffer, and an import of VM1's: ${WDET}; host list dropped VM2's buffer, VM1's importers 1->0; VM1 then allocated, host read it"

        # 9c -------------------------------------------------------------------------
        begin 9c qemu-kill
        local v2="" w="" t_kill=""
        MBOX[p3]="$(share 4096 "" --allow vm2)"
        guest_script "$KLOG/p3.sh" peer2.sh "MBOX=${MBOX[p3]}" "MODE=kill" "HB=$hb"
        vm_start p3 "$SOCKDIR/vm2.sock" "$KLOG/p3.sh" 600
        if vm_booted p3; then
            go p1 94
            need p1 k1a.ready 60 && v2="$(val p1 k1a.uuid)"
            go p3 94 "$v2"
            if need p3 k2d.op0_status 90 && need p3 k2c.op0_status 30; then
                eq "VM2 import of VM1's buffer" "$(val p3 k2a.verify)" ok
                eq "VM2 write access on its own buffer" "$(val p3 k2c.op0_status)" OK
                eq "VM2 write access on the host buffer" "$(val p3 k2d.op0_status)" OK
                w="$(val p3 k2b.uuid)"
            fi
            go p1 95 "$w"
            need p1 k1b.ready 60
            eq "importers of VM1's buffer" "$(info_field "$v2" importers)" 1
            eq "importers of VM2's buffer" "$(info_field "$w" importers)" 1
            start_waiters "$w" "$hb" w9c
            q="$(qemu_pid p3)"
            if [[ -n "$q" ]]; then
                t_kill=$EPOCHREALTIME
                kill -KILL "$q"
                for ((i = 0; i < 200; i++)); do kill -0 "$q" 2>/dev/null || break; sleep 0.05; done
                check_waiters w9c "$t_kill" "the SIGKILL"
            else
                bad "no QEMU pid for VM2"
            fi
            vm_wait p3 30
            ! in_list "$w" || bad "the killed VM's buffer is still listed"
            eq "VM2's buffers listed after the kill" "$(owned_by vm2)" 0
            eq "importers of VM1's buffer after the kill" "$(info_field "$v2" importers)" 0
            go p1 96
            if need p1 k1f.ready 60; then
                eq "VM1's import of the killed VM's buffer: INFO state REVOKED" "$(val p1 k1c.info_state)" 0x1
                eq "VM1's sync on it" "$(val p1 k1d.status)" ENODEV
                eq "VM1's own buffer" "$(val p1 k1e.verify)" ok
                eq "daemon still serves VM1: new buffer read by the host" "$(crc "$(val p1 k1f.uuid)" 0 8192)" "$(ref 63 8192 0 8192)"
            fi
            go p1 97
            need p1 k1i.closed 30
        else
            bad "VM2 did not boot again on the same socket: $WHY"
        fi
        kill -0 "$DPID" 2>/dev/null || bad "the daemon died"
        done_case "SIGKILL of VM2's QEMU (VM2 reconnected on the same socket, held write access to its buffer and a host buffer, imported VM1's): ${WDET}; host list dropped VM2's buffer, VM1's importers 1->0; VM1's import of VM2's buffer: state REVOKED, sync ENODEV; VM1 then allocated, host read it"
    fi

    go p1 99
    if [[ -z "${VM_RC[p2]:-}" ]]; then
        go p2 99
        wait_key p2 end.done 60 || true
        vm_wait p2 60
    fi
    wait_key p1 end.done 120 || say "VM1 did not finish: $WHY"
    vm_wait p1 60
    if want 9; then boot_result boot-pair p1 p2 p3; else boot_result boot-pair p1 p2; fi
}

# ------------------------------------------------------------------ the daemon-restart boot

# go_own VM N [PAYLOAD]: the guest's "go_own N" made a new mailbox buffer of its own (the
# host's mailbox died with the first daemon) and printed its UUID as goN.mbox: write step N
# (and a payload) there
go_own() {
    local m=""
    if ! wait_key "$1" "go$2.mbox" 90 || [[ -z "$KV" ]]; then
        bad "$1: no mailbox for step $2: ${WHY:-empty UUID}"
        return 1
    fi
    m=$KV
    printf "\\x$(printf %02x "$2")%s\\0" "${3:-}" | ctl write "$m" --offset 0 --in - >/dev/null 2>&1 \
        || bad "writing step $2 into the guest's mailbox $m failed"
}

# wait_log FILE STRING TIMEOUT: poll an unstamped log for a line; sets WT (when it was seen)
wait_log() {
    local deadline=$(( $(now_us) + $3 * 1000000 ))
    while ! grep -q -F -- "$2" "$1" 2>/dev/null; do
        if (( $(now_us) >= deadline )); then WHY="no '$2' in $(basename "$1") within $3 s"; return 1; fi
        sleep 0.01
    done
    WT=$EPOCHREALTIME
}

# same_bytes UUID SIZE SEED: the buffer's bytes, read by the host, = pattern SEED (cmp of the
# whole range against a host memfd filled by dmabufctl); prints the byte count or why not
same_bytes() {
    local u="" f1="$KLOG/r-got.bin" f2="$KLOG/r-want.bin"
    ctl read "$1" --out "$f1" >/dev/null 2>&1 || { echo "host read failed"; return 0; }
    u="$(share "$2" "$3")"
    ctl read "$u" --out "$f2" >/dev/null 2>&1 || { echo "reference read failed"; return 0; }
    ctl revoke "$u" >/dev/null 2>&1 || true
    if cmp -s "$f1" "$f2" && [[ "$(stat -c %s "$f1")" == "$2" ]]; then
        stat -c %s "$f1"
    else
        echo "differs: $(cmp "$f1" "$f2" 2>&1 | head -n1)"
    fi
    rm -f "$f1" "$f2"
}

# run_restart: case 10 in one boot. 10a (the restart) only when the block's QEMU can
# reconnect (RESTART_SKIP empty); otherwise 10a is a SKIP line and 10b runs on the first
# daemon, without reconnect-ms.
run_restart() {
    local s=r1 hb="" hw="" hn="" rto="" a="" af="" n="" nf="" t_kill="" t_dead="" t_up="" t_conn=""
    local drc="" rms="" st="" ans="" iss="" nbytes="" qerr="" stale="" r10a=1 dlog="$KLOG/daemon-2.log"
    local vm_args=(--reconnect-ms "$C10_RECONNECT_MS")
    if [[ -n "$RESTART_SKIP" ]]; then
        r10a="" dlog="$KLOG/daemon.log" vm_args=()
    fi
    MBOX[$s]="$(share 4096 "" --allow vm1)"
    hb="$(share 65536 102)"
    hw="$(share 65536 7)"
    # 10b needs the module parameter request_timeout_ms
    if modinfo -F parm "$REPO/guest-driver/build/$CUR_K/virtio_dmabuf.ko" 2>/dev/null | grep -q '^request_timeout_ms:'; then
        rto=$C10_RTO_MS
    fi
    if [[ -z "$r10a" && -z "$rto" ]]; then
        skip_now 10a daemon-restart "$RESTART_SKIP"
        return
    fi
    guest_script "$KLOG/$s.sh" restart.sh "MBOX=${MBOX[$s]}" "HB=$hb" "HW=$hw" "R_SIZE=$C10_SIZE" \
        "R10A=$r10a" "RTO=$rto"
    vm_start "$s" "$SOCKDIR/vm1.sock" "$KLOG/$s.sh" 600 "${vm_args[@]}"
    if ! vm_booted "$s"; then
        [[ -n "$r10a" ]] && fail_now 10a daemon-restart "guest did not boot: $WHY"
        [[ -n "$rto" ]] && fail_now 10b request-timeout "guest did not boot"
        vm_wait "$s" 10
        boot_result boot-restart "$s"
        return
    fi

    # 10a ----------------------------------------------------------------------------
    if [[ -z "$r10a" ]]; then
        skip_now 10a daemon-restart "$RESTART_SKIP"
    else
        begin 10a daemon-restart
        go "$s" 101
        if need "$s" r1b.ready 60; then
            a="$(val "$s" r1a.uuid)"
            af="$(val "$s" r1a.fnv1a64)"
            eq "before the restart: host read of the guest's buffer vs guest" "$(crc "$a" 0 "$C10_SIZE")" "$af"
            eq "before the restart: guest import of the host buffer" "$(val "$s" r1b.verify)" ok
        fi
        bg hold10 "$DMABUFCTL" --timeout-ms 60000 hold "$hw" --write --len 4096 --seconds 30
        wait_for "$(bg_log hold10)" "|held" 20 || bad "host hold: $WHY"
        go "$s" 102
        need "$s" r2.op0_issue 60
        # the START reaches the device a moment after the guest printed op0_issue
        sleep 1
        t_kill=$EPOCHREALTIME
        iss="$(tdiff_ms "$(ts "$s" r2.op0_issue)" "$t_kill")"
        kill -KILL "$DPID" 2>/dev/null
        drc=0
        wait "$DPID" 2>/dev/null || drc=$?
        t_dead=$EPOCHREALTIME
        DPID=""
        eq "first daemon's exit status (SIGKILL)" "$drc" 137
        [[ -S "$SOCKDIR/vm1.sock" ]] && stale="vm1.sock left behind"
        daemon_start daemon-2.log
        t_up=$EPOCHREALTIME
        grep -q "removing stale socket $SOCKDIR/vm1.sock" "$KLOG/daemon-2.log" \
            || [[ -z "$stale" ]] || bad "the new daemon did not say it removed the stale vm1.sock"
        if wait_log "$KLOG/daemon-2.log" "vm1: front-end connected" 30; then
            t_conn=$WT
            rms="$(tdiff_ms "$t_up" "$t_conn")"
            le "QEMU reconnect after the new daemon bound its sockets (ms)" "$rms" $((C10_RECONNECT_MS + 5000))
        else
            bad "QEMU did not reconnect: $WHY"
        fi
        if need "$s" r2.done 120; then
            st="$(val "$s" r2.op0_status)"
            eq "the START in flight during the kill" "$st" ENOENT
            eq "guest: raw-sync hung" "$(val "$s" r2.hung)" ""
            ans="$(tdiff_ms "$t_up" "$(ts "$s" r2.op0_status)")"
        fi
        hn="$(share "$C10_HN_SIZE" 104)"
        go_own "$s" 103 "$hn"
        if need "$s" r3e.rc 120; then
            eq "old guest buffer: sync after the restart" "$(val "$s" r3a.status)" ENOENT
            eq "old guest buffer: its holder" "$(val "$s" r3a.end)" died
            eq "old imported host buffer: sync after the restart" "$(val "$s" r3b.status)" ENOENT
            eq "import of the old host UUID" "$(val "$s" r3c.status)" ENOENT
            n="$(val "$s" r3d.uuid)"
            nf="$(val "$s" r3d.fnv1a64)"
            eq "new guest buffer: host read (socket) vs guest" "$(crc "$n" 0 "$C10_SIZE")" "$nf"
            eq "new guest buffer: host read (READ_INTO memfd) vs guest" "$(crc "$n" 0 "$C10_SIZE" memfd)" "$nf"
            nbytes="$(same_bytes "$n" "$C10_SIZE" 103)"
            eq "new guest buffer: bytes the host read = pattern 103" "$nbytes" "$C10_SIZE"
            eq "owner of the new buffer" "$(info_field "$n" owner)" vm1
            eq "new host buffer imported by the guest: verify seed 104" "$(val "$s" r3e.verify)" ok
            eq "guest's write into the new host buffer" "$(crc "$hn" 0 "$C10_HN_SIZE")" "$(val "$s" r3e.write_fnv1a64)"
            eq "guest's write vs pattern 105" "$(crc "$hn" 0 "$C10_HN_SIZE")" "$(ref 105 "$C10_HN_SIZE" 0 "$C10_HN_SIZE")"
            ! in_list "$a" || bad "the new daemon lists the old guest buffer"
            ! in_list "$hb" || bad "the new daemon lists the old host buffer"
        fi
        go_own "$s" 104
        need "$s" r4i.closed 30
        qerr="$(grep -a -E -o 'Error (starting vhost|enabling host notifiers|binding guest notifier)[^|]*' "${VM_OUT[$s]}" | head -n1 || true)"
        [[ -z "$qerr" ]] || bad "QEMU: $qerr"
        if ! wait_for "$(bg_log hold10)" "|exit=" 60; then
            bad "the host hold on the killed daemon: $WHY"
        elif [[ "${WL#exit=}" == 0 ]]; then
            bad "the host hold on the killed daemon succeeded"
        fi
        kill -0 "$DPID" 2>/dev/null || bad "the new daemon died"
        done_case "kill -9 of the daemon (exit $drc after $(tdiff_ms "$t_kill" "$t_dead") ms, ${stale:-no socket left behind}); a new daemon removed the stale sockets and bound them: QEMU (reconnect-ms=$C10_RECONNECT_MS) reconnected ${rms} ms later; the guest's START in flight (issued ${iss} ms before the kill, waiting on a host write hold) failed with ${st:-?}, answered ${ans} ms after the new daemon bound; old guest buffer and imported host buffer: syncs ENOENT, import of the old host UUID ENOENT; new $C10_SIZE B guest buffer: host read ${nbytes} bytes = pattern 103 (guest fnv1a64 $nf); new host buffer imported, verified and written back by the guest (host reads pattern 105)"
    fi

    # 10b ----------------------------------------------------------------------------
    if [[ -n "$rto" ]]; then
        begin 10b request-timeout
        local t_stop="" t_cont="" tfail="" ms="" late="" m="" d0="" d1="" left="" settle="" u13="" i=""
        go_own "$s" 110
        if need "$s" r12.looping 60; then
            eq "insmod request_timeout_ms=$rto" "$(val "$s" r11.rc)" 0
            eq "module parameter" "$(val "$s" r11.param)" "$rto"
            kill -STOP "$DPID"
            t_stop=$EPOCHREALTIME
            if need "$s" r12.rc 60; then
                tfail="$(tdiff_ms "$t_stop" "$(ts "$s" r12.rc)")"
                eq "CREATE with the daemon stopped" "$(val "$s" r12.status)" ETIMEDOUT
                ms="$(int "$(val "$s" r12.ms)")"
                ge "CREATE wait (ms)" "$ms" $((rto - 100))
                le "CREATE wait (ms)" "$ms" $((rto + 3000))
            fi
            # the guest's next go waits for its own CREATE: it comes once the daemon runs
            wait_key "$s" go112.mbox 1 >/dev/null 2>&1 && bad "a CREATE was answered while the daemon was stopped"
            d0="$(grep -c 'destroyed' "$dlog" || true)"
            kill -CONT "$DPID"
            t_cont=$EPOCHREALTIME
            if need "$s" go112.mbox 60; then
                m=$KV
                # the driver RELEASEs the late CREATE's buffer: only the mailbox stays
                left=-1
                for ((i = 0; i < 100; i++)); do
                    left="$({ ctl list 2>/dev/null || true; } | awk -v m="$m" '$3 == "vm1" && $1 != m' | wc -l)"
                    ((left == 0)) && break
                    sleep 0.1
                done
                settle="$(tdiff_ms "$t_cont" "$EPOCHREALTIME")"
                eq "buffers of vm1 listed besides the mailbox after SIGCONT" "$left" 0
                d1="$(grep -c 'destroyed' "$dlog" || true)"
                late=$((d1 - d0))
                ge "buffers destroyed after SIGCONT (the late CREATE, RELEASEd by the driver)" "$late" 1
            fi
            go_own "$s" 112
            if need "$s" r13.ready 60; then
                u13="$(val "$s" r13.uuid)"
                eq "new buffer after SIGCONT: host read vs guest" "$(crc "$u13" 0 12289)" "$(val "$s" r13.fnv1a64)"
                eq "new buffer after SIGCONT vs pattern 113" "$(val "$s" r13.fnv1a64)" "$(ref 113 12289 0 12289)"
            fi
            go_own "$s" 113
            need "$s" r13q.closed 30
        fi
        kill -0 "$DPID" 2>/dev/null || bad "the daemon died"
        done_case "module reloaded with request_timeout_ms=$rto, daemon SIGSTOPped ($(val "$s" r12.allocs_before) allocs before it): the next CREATE failed with $(val "$s" r12.status) after ${ms} ms (guest clock; reported ${tfail} ms after the SIGSTOP); after SIGCONT $late buffer(s) destroyed and the host list had no leftover of the late CREATE within ${settle} ms; a new 12289 B buffer then read by the host"
    fi

    go_own "$s" 119
    wait_key "$s" end.done 120 || say "daemon-restart guest did not finish: $WHY"
    vm_wait "$s" 60
    boot_result boot-restart "$s"
}

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
        --bin "$REPO/guest-driver/build/tools/dmabuf-guest" >"$KLOG/initrd.log" 2>&1 \
        || { cat "$KLOG/initrd.log" >&2; die "mkinitramfs.sh failed"; }
    daemon_start
    if want 1 || want 2 || want 3 || want 4 || want 5 || want 6 || want 7 || want 9; then
        run_single
    fi
    if want 8 || want 9; then
        run_pair
    fi
    if want 10; then
        run_restart
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
