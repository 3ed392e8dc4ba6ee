# SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
#
# The daemon-restart boot of tests/vm-suite.sh (sourced): case 10 (10a daemon-restart, 10b
# request-timeout), guest side tests/guest/restart.sh.

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
    local s=r1 hb="" hw="" rto="" r10a=1 dlog="$KLOG/daemon-2.log"
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
        if [[ -n "$r10a" ]]; then
            fail_now 10a daemon-restart "guest did not boot: $WHY"
        else
            skip_now 10a daemon-restart "$RESTART_SKIP"
        fi
        [[ -n "$rto" ]] && fail_now 10b request-timeout "guest did not boot"
        vm_wait "$s" 10
        boot_result boot-restart "$s"
        return
    fi
    if [[ -z "$r10a" ]]; then
        skip_now 10a daemon-restart "$RESTART_SKIP"
    else
        case_10a "$s" "$hb" "$hw"
    fi
    [[ -n "$rto" ]] && case_10b "$s" "$rto" "$dlog"
    go_own "$s" 119
    wait_key "$s" end.done 120 || say "daemon-restart guest did not finish: $WHY"
    vm_wait "$s" 60
    boot_result boot-restart "$s"
}

# 10a: kill -9 of the daemon and a restart on the same sockets while the guest holds
#      buffers and has a START waiting: QEMU reconnects, old buffers fail with ENOENT (the
#      guest checks), new buffers work both ways (the host checks the bytes)
case_10a() {
    local s=$1 hb=$2 hw=$3 hn="" a="" af="" n="" nf="" t_kill="" t_dead="" t_up="" t_conn=""
    local drc="" rms="" st="" ans="" iss="" nbytes="" qerr="" stale=""
    begin 10a daemon-restart
    go "$s" 101
    if need "$s" r1b.ready 60; then
        a="$(val "$s" r1a.uuid)"
        af="$(val "$s" r1a.fnv1a64)"
        eq "before the restart: host read of the guest's buffer vs guest" "$(crc "$a" 0 "$C10_SIZE")" "$af"
    fi
    bg hold10 "$DMABUFCTL" --timeout-ms 60000 hold "$hw" --write --len 4096 --seconds 30
    wait_for "$(bg_log hold10)" "|held" 20 || bad "host hold: $WHY"
    go "$s" 102
    need "$s" r2.op0_issue 60 || true
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
        ans="$(tdiff_ms "$t_up" "$(ts "$s" r2.op0_status)")"
    fi
    hn="$(share "$C10_HN_SIZE" 104)"
    go_own "$s" 103 "$hn"
    if need "$s" r3e.rc 120; then
        n="$(val "$s" r3d.uuid)"
        nf="$(val "$s" r3d.fnv1a64)"
        eq "new guest buffer: host read (socket) vs guest" "$(crc "$n" 0 "$C10_SIZE")" "$nf"
        eq "new guest buffer: host read (READ_INTO memfd) vs guest" "$(crc "$n" 0 "$C10_SIZE" memfd)" "$nf"
        nbytes="$(same_bytes "$n" "$C10_SIZE" 103)"
        eq "new guest buffer: bytes the host read = pattern 103" "$nbytes" "$C10_SIZE"
        eq "owner of the new buffer" "$(info_field "$n" owner)" vm1
        eq "guest's write into the new host buffer" "$(crc "$hn" 0 "$C10_HN_SIZE")" "$(val "$s" r3e.write_fnv1a64)"
        eq "guest's write vs pattern 105" "$(crc "$hn" 0 "$C10_HN_SIZE")" "$(ref 105 "$C10_HN_SIZE" 0 "$C10_HN_SIZE")"
        ! in_list "$a" || bad "the new daemon lists the old guest buffer"
        ! in_list "$hb" || bad "the new daemon lists the old host buffer"
    fi
    go_own "$s" 104
    tap_check "$s" 10a
    qerr="$(grep -a -E -o 'Error (starting vhost|enabling host notifiers|binding guest notifier)[^|]*' "${VM_OUT[$s]}" | head -n1 || true)"
    [[ -z "$qerr" ]] || bad "QEMU: $qerr"
    if ! wait_for "$(bg_log hold10)" "|exit=" 60; then
        bad "the host hold on the killed daemon: $WHY"
    elif [[ "${WL#exit=}" == 0 ]]; then
        bad "the host hold on the killed daemon succeeded"
    fi
    kill -0 "$DPID" 2>/dev/null || bad "the new daemon died"
    done_case "kill -9 of the daemon (exit $drc after $(tdiff_ms "$t_kill" "$t_dead") ms, ${stale:-no socket left behind}); a new daemon removed the stale sockets and bound them: QEMU (reconnect-ms=$C10_RECONNECT_MS) reconnected ${rms} ms later; the guest's START in flight (issued ${iss} ms before the kill, waiting on a host write hold) failed with ${st:-?}, answered ${ans} ms after the new daemon bound; old guest buffer and imported host buffer: syncs ENOENT, import of the old host UUID ENOENT; new $C10_SIZE B guest buffer: host read ${nbytes} bytes = pattern 103 (guest fnv1a64 $nf); new host buffer imported, verified and written back by the guest (host reads pattern 105)"
}

# 10b: the module with request_timeout_ms; a SIGSTOPped daemon: CREATE fails with
#      ETIMEDOUT (the guest checks), the late CREATE is RELEASEd after SIGCONT (the host)
case_10b() {
    local s=$1 rto=$2 dlog=$3
    begin 10b request-timeout
    local t_stop="" t_cont="" tfail="" ms="" late="" m="" d0="" d1="" left="" settle="" u13="" i=""
    go_own "$s" 110
    if need "$s" r12.looping 60; then
        kill -STOP "$DPID"
        t_stop=$EPOCHREALTIME
        if need "$s" r12.rc 60; then
            tfail="$(tdiff_ms "$t_stop" "$(ts "$s" r12.rc)")"
            ms="$(int "$(val "$s" r12.ms)")"
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
    fi
    tap_check "$s" 10b
    kill -0 "$DPID" 2>/dev/null || bad "the daemon died"
    done_case "module reloaded with request_timeout_ms=$rto, daemon SIGSTOPped ($(val "$s" r12.allocs_before) allocs before it): the next CREATE failed with $(val "$s" r12.status) after ${ms} ms (guest clock; reported ${tfail} ms after the SIGSTOP); after SIGCONT $late buffer(s) destroyed and the host list had no leftover of the late CREATE within ${settle} ms; a new 12289 B buffer then read by the host"
}
