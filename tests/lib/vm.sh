# SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
#
# The daemon and the VMs of tests/vm-suite.sh (sourced): start and stop them, the guest
# scripts, the guest's output (@@ key=value lines, stamped with their arrival time), the
# mailbox ("go"), per-boot results (case 0), cleanup.

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
        printf 'C4_HOLD_S=%s\n' "$C4_HOLD_S"
        printf 'C13_SIZE=%s C13_MAPLEN=%s C13K_SIZE=%s C13_HOLD_S=%s C13_OFF=%s C13_LEN=%s\n' \
            "$C13_SIZE" "$C13_MAPLEN" "$C13K_SIZE" "$C13_HOLD_S" "$C13_OFF" "$C13_LEN"
        printf 'C14_SIZE=%s C14_MAPLEN=%s C14_OFF=%s C14_LEN=%s C14_OFF2=%s C14_LEN2=%s\n' \
            "$C14_SIZE" "$C14_MAPLEN" "$C14_OFF" "$C14_LEN" "$C14_OFF2" "$C14_LEN2"
        # cases 13 and 14: 1 if this VMM gives the device a shared memory region (imports
        # that ask for MAP are mapped in place), and SHM_INFO's state then
        printf 'MAPPED=%s SHM_STATE=%s\n' "$MAPPED" "$SHM_STATE"
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
    # a VM of an earlier block had this id: its exit status is not this one's
    unset "VM_RC[$id]"
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

# copy_path ID: the imports of cases 1-12 (all but the m13*/m14*/m15* tags) asked for NO_MAP and
# none was mapped; sets CP_DET
copy_path() {
    local f="${VM_OUT[$1]}" nimp="" nnomap="" nmap=""
    nimp="$(grep -a -E '@@ [A-Za-z0-9]+[.]import_flags=' "$f" | grep -a -c -v -E '@@ m1[345]' || true)"
    nnomap="$(grep -a -E '@@ [A-Za-z0-9]+[.]import_flags=0x1$' "$f" | grep -a -c -v -E '@@ m1[345]' || true)"
    nmap="$(grep -a -E '@@ [A-Za-z0-9]+[.](info_)?mapped=1$' "$f" | grep -a -c -v -E '@@ m1[345]' || true)"
    eq "$1: imports of cases 1-12 without NO_MAP" "$((nimp - nnomap))" 0
    eq "$1: mapped imports in cases 1-12 (they test the copy path)" "$nmap" 0
    CP_DET="copy path: $nimp imports of cases 1-12 with NO_MAP, $nmap mapped"
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
        # the kernel command line (run-vm's no_timer_check among it) is accepted
        eq "$id kernel: unknown command line parameters" "$(val "$id" boot.unknown_params)" none
        # cases 1-12 must run the copy path: their imports ask for NO_MAP and none is mapped
        # (the tags of cases 13, 14 and 15 begin with m13 / m14 / m15)
        copy_path "$id"
        case "$id" in
            p2|p3) ;;  # powered off / killed on purpose: checked by 9b / 9c
            *)
                eq "$id guest exit status" "${VM_RC[$id]:-?}" 0
                eq "$id kernel log lines with BUG/WARNING/Oops" "$e" 0
                eq "$id kernel log lines of the dma-buf core's checks" "$d" 0 ;;
        esac
        details+="$id: $(val "$id" boot.kernel), booted in ${b} ms, exit ${VM_RC[$id]:-?}, dmesg trouble ${e:-n/a}, $CP_DET"
        ((DMABUF_DEBUG)) && details+=" (DMABUF_DEBUG=y: ${d:-n/a} dma-buf debug lines)"
        details+="; "
    done
    done_case "${details%; }"
}

