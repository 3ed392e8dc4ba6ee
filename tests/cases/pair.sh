# SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
#
# The two-VM boot of tests/vm-suite.sh (sourced): cases 8, 12, 14, 9b and 9c. VM1 (p1,
# tests/guest/peer1.sh) runs through the whole boot; VM2 (peer2.sh) boots twice: p2 (cases
# 8, 12, 14, 9b, ending in a poweroff) and p3 (9c, killed with SIGKILL). Case 14's end (VM2,
# the owner, powered off) comes after 9b, which powers VM2 off.

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
    local hb="" ok1=0 ok2=0
    MBOX[p1]="$(share 4096 "" --allow vm1)"
    MBOX[p2]="$(share 4096 "" --allow vm2)"
    hb="$(share 65536 65)"
    guest_script "$KLOG/p1.sh" peer1.sh "MBOX=${MBOX[p1]}"
    guest_script "$KLOG/p2.sh" peer2.sh "MBOX=${MBOX[p2]}" "MODE=poweroff" "HB=$hb"
    vm_start p1 "$SOCKDIR/vm1.sock" "$KLOG/p1.sh" 900
    vm_start p2 "$SOCKDIR/vm2.sock" "$KLOG/p2.sh" 600
    vm_booted p1 && ok1=1
    vm_booted p2 && ok2=1
    if ((!ok1 || !ok2)); then
        want 8 && fail_now 8 two-vms "guests did not boot (vm1 $ok1, vm2 $ok2): $WHY"
        want 12 && fail_now 12 cross-vm-errors "guests did not boot (vm1 $ok1, vm2 $ok2)"
        want 14 && fail_now 14 zero-copy-vm-to-vm "guests did not boot (vm1 $ok1, vm2 $ok2)"
        want 9 && fail_now 9b guest-poweroff "guests did not boot" && fail_now 9c qemu-kill "guests did not boot"
        vm_wait p1 10
        vm_wait p2 10
        boot_result boot-pair p1 p2
        return
    fi
    want 8 && case_8
    want 12 && case_12
    want 14 && case_14
    want 9 && case_9b "$hb"
    want 14 && case_14_end
    want 9 && case_9c "$hb"
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

# 8: VM2 imports VM1's buffer by UUID, verifies it, writes a range; VM1 reads the write in
#    its own pages; VM1 imports VM2's buffer
case_8() {
    local x="" xf="" y="" yf=""
    begin 8 two-vms
    go p1 81
    if need p1 c8a.ready 60; then
        x="$(val p1 c8a.uuid)"
        xf="$(val p1 c8a.fnv1a64)"
    fi
    go p2 81 "$x $xf"
    if need p2 c8d.ready 120; then
        eq "host: VM2's write in VM1's buffer" "$(crc "$x" "$C8_OFF" "$C8_LEN")" "$(ref 52 "$C8_SIZE" "$C8_OFF" "$C8_LEN")"
        eq "host: VM2's write checksum" "$(crc "$x" "$C8_OFF" "$C8_LEN")" "$(val p2 c8c.write_fnv1a64)"
        eq "host: rest of VM1's buffer unchanged" "$(crc "$x" 0 "$C8_OFF")" "$(ref 51 "$C8_SIZE" 0 "$C8_OFF")"
        y="$(val p2 c8d.uuid)"
        yf="$(val p2 c8d.fnv1a64)"
        eq "owner of VM2's buffer" "$(info_field "$y" owner)" vm2
        eq "owner of VM1's buffer" "$(info_field "$x" owner)" vm1
    fi
    go p1 82 "$y $yf"
    need p1 c8g.rc 60 || true
    go p2 82
    go p1 83
    tap_check p2 8
    tap_check p1 8
    done_case "VM1's $C8_SIZE B buffer: VM2 imported it by UUID and verified VM1's bytes, wrote [$C8_OFF,+$C8_LEN) and ended, VM1 read the write in its own pages (host too); VM2's $C8_YSIZE B buffer imported and verified by VM1"
}

# 12: cross-VM errors (VM1 the owner, VM2 the importer): READ_ONLY (writes EACCES),
#     HOST_ONLY (import ENOENT), a START timing out against VM1's write access, a START of
#     a killed process (abandoned: its driver ends it once granted), a START granted when
#     VM1 ends its access, REVOKED when VM1 releases, device removal while a START waits
case_12() {
    local u="" r="" h="" t_end="" t_grant="" t_unb="" t_nodev="" sh="" ro=""
    begin 12 cross-vm-errors
    go p1 121
    if need p1 e0.uuids 90; then
        read -r u r h <<<"$KV"
        ro="$(info_field "$r" read_only)"
        sh="$(info_field "$h" host_only)"
        eq "host: VM1's READ_ONLY buffer, read_only" "$ro" 1
        eq "host: VM1's HOST_ONLY buffer, host_only" "$sh" 1
    fi
    go p2 121 "$u $r $h"
    need p2 e9.ready 120 || true
    go p1 122
    need p1 e5.end 60 || true
    go p2 122
    if need p2 e12.len 60; then
        # the START is issued right after e12.len: VM1 ends its write access a second later
        sleep 1
        t_end=$EPOCHREALTIME
        go p1 123
        need p1 e6.end 30 || true
        need p2 e12.rc 60 && t_grant="$(ts p2 e12.elapsed_ms)"
    fi
    go p1 124
    need p1 e8.closed 60 || true
    go p2 123
    need p2 e16.closed 60 || true
    go p1 125
    need p1 e9.end 30 || true
    go p2 124
    if need p2 e17.unbind 60; then
        t_unb="$(ts p2 e17.unbind)"
        need p2 e17.op0_status 60 && t_nodev="$(ts p2 e17.op0_status)"
    fi
    go p1 126
    tap_check p2 12
    tap_check p1 12
    kill -0 "$DPID" 2>/dev/null || bad "the daemon died"
    done_case "VM1's READ_ONLY buffer (host: read_only=$ro) verified by VM2, its write START and write import EACCES; HOST_ONLY (host: host_only=$sh) import ENOENT; 2 s START vs VM1's write access ETIMEDOUT; a START of a SIGKILLed process abandoned and ended by the driver (VM1's 2 s write START granted); VM2's import START granted when VM1 ended its access (waited $(val p2 e12.elapsed_ms) ms, guest clock; seen $(tdiff_ms "$t_end" "$t_grant") ms after the host's go to VM1); VM1's release: VM2's import REVOKED, sync ENODEV, import ENOENT; unbind while a START waited: ENODEV after $(tdiff_ms "$t_unb" "$t_nodev") ms, rebind"
}

# 9b: VM2 powers off holding buffers and write accesses; the host's waits end, VM1 goes on
case_9b() {
    local hb=$1 v="" z="" q="" tq="" t_go="" s2="" pd="" i=""
    begin 9b guest-poweroff
    go p1 91
    need p1 p1a.ready 60 && v="$(val p1 p1a.uuid)"
    go p2 91 "$v"
    if need p2 p2d.op0_status 90 && need p2 p2c.op0_status 30; then
        z="$(val p2 p2b.uuid)"
        eq "importers of VM1's buffer" "$(info_field "$v" importers)" 1
        # case 14's buffer of VM2 is open too
        eq "VM2's buffers listed" "$(owned_by vm2)" $((1 + $(want 14 && echo 1 || echo 0)))
    fi
    start_waiters "$z" "$hb" w9b
    q="$(qemu_pid p2)"
    t_go=$EPOCHREALTIME
    go p2 92
    need p2 p2e.poweroff 30 || true
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
        s2="$(val p1 p1c.uuid)"
        eq "daemon still serves VM1: new buffer read by the host" "$(crc "$s2" 0 8192)" "$(ref 59 8192 0 8192)"
    fi
    go p1 93
    tap_check p2 9b
    tap_check p1 9b
    kill -0 "$DPID" 2>/dev/null || bad "the daemon died"
    done_case "VM2 powered off (QEMU gone $pd ms after the go) holding write access to its own buffer and to a host buffer, and an import of VM1's: ${WDET}; host list dropped VM2's buffer, VM1's importers 1->0; VM1 then allocated, host read it"
}

# 9c: VM2 booted again on the same socket, its QEMU killed with SIGKILL; VM1 imported one of
#     its buffers: REVOKED
case_9c() {
    local hb=$1 v2="" w="" t_kill="" q="" i=""
    begin 9c qemu-kill
    MBOX[p3]="$(share 4096 "" --allow vm2)"
    guest_script "$KLOG/p3.sh" peer2.sh "MBOX=${MBOX[p3]}" "MODE=kill" "HB=$hb"
    vm_start p3 "$SOCKDIR/vm2.sock" "$KLOG/p3.sh" 600
    if vm_booted p3; then
        go p1 94
        need p1 k1a.ready 60 && v2="$(val p1 k1a.uuid)"
        go p3 94 "$v2"
        if need p3 k2d.op0_status 90 && need p3 k2c.op0_status 30; then
            w="$(val p3 k2b.uuid)"
        fi
        tap_check p3 9c
        go p1 95 "$w"
        need p1 k1b.ready 60 || true
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
            eq "daemon still serves VM1: new buffer read by the host" "$(crc "$(val p1 k1f.uuid)" 0 8192)" "$(ref 63 8192 0 8192)"
        fi
        go p1 97
        tap_check p1 9c
    else
        bad "VM2 did not boot again on the same socket: $WHY"
    fi
    kill -0 "$DPID" 2>/dev/null || bad "the daemon died"
    done_case "SIGKILL of VM2's QEMU (VM2 reconnected on the same socket, held write access to its buffer and a host buffer, imported VM1's): ${WDET}; host list dropped VM2's buffer, VM1's importers 1->0; VM1's import of VM2's buffer: state REVOKED, sync ENODEV; VM1 then allocated, host read it"
}

# 14: VM2 (the owner A) allocates a buffer, VM1 (the importer B) imports it mapped in place
#     (MAPPED=1) or as a copy: A's bytes in B, B's write in A's pages, A's write in B (in
#     place before any sync when mapped); case_14_end: A powers off (9b did, or it does
#     here) and B's import is revoked: SIGBUS on its mmap, SYNC ENODEV, INFO REVOKED
C14_A="" C14_KIND="" C14_CP="" C14_ERRS=()
case_14() {
    local a="" af="" c=""
    begin 14 zero-copy-vm-to-vm
    go p2 141
    if need p2 m14a.ready 60; then
        a="$(val p2 m14a.uuid)"
        af="$(val p2 m14a.fnv1a64)"
        eq "host: A's buffer (VM2) vs pattern 141" "$(crc "$a" 0 "$C14_SIZE")" "$(ref 141 "$C14_SIZE" 0 "$C14_SIZE")"
        eq "owner of A" "$(info_field "$a" owner)" vm2
    fi
    go p1 141 "$a $af"
    if need p1 m14d.end 120; then
        C14_KIND="$(importer_kind "$a" vm1)"
        if [[ "$C14_KIND" != NA ]]; then
            eq "host: dmabufctl info's importer line for vm1" "$C14_KIND" "$( ((MAPPED)) && echo mapped || echo copied)"
        fi
        c="$(crc "$a" "$C14_OFF" "$C14_LEN")"
        eq "host: VM1's write in VM2's buffer vs pattern 142" "$c" "$(ref 142 "$C14_SIZE" "$C14_OFF" "$C14_LEN")"
        eq "host: VM1's write in VM2's buffer vs VM1's write checksum" "$c" "$(val p1 m14d.write_fnv1a64)"
    fi
    go p2 142
    if need p2 m14d.end 60; then
        c="$(crc "$a" "$C14_OFF2" "$C14_LEN2")"
        eq "host: VM2's write vs pattern 143" "$c" "$(ref 143 "$C14_SIZE" "$C14_OFF2" "$C14_LEN2")"
        eq "host: VM2's write vs its checksum" "$c" "$(val p2 m14d.write_fnv1a64)"
    fi
    go p1 142
    if need p1 m14g.end 60; then
        C14_CP="$(copied_of "$a")"
        if [[ "$C14_CP" != NA ]]; then
            if ((MAPPED)); then eq "bytes the daemon copied for the mapped import" "$C14_CP" 0
            else ge "bytes the daemon copied for the copy import" "$C14_CP" "$C14_SIZE"; fi
        fi
    fi
    C14_A=$a
    C14_ERRS=("${ERRS[@]}")
}

case_14_end() {
    local i=""
    begin 14 zero-copy-vm-to-vm
    ERRS=("${C14_ERRS[@]}")
    if [[ -z "${VM_RC[p2]:-}" ]]; then
        # 9b did not power VM2 off: its script ends now, /init powers it off
        go p2 99
        wait_key p2 end.done 60 || bad "VM2 did not finish: $WHY"
        vm_wait p2 60
    fi
    # the daemon drops VM2's buffers when its connection ends (bounded: 5 s)
    for ((i = 0; i < 50; i++)); do in_list "$C14_A" || break; sleep 0.1; done
    ! in_list "$C14_A" || bad "A (VM2's buffer) still listed 5 s after VM2's poweroff"
    go p1 145
    need p1 m14n.rc 90 || true
    tap_check p2 14
    tap_check p1 14
    kill -0 "$DPID" 2>/dev/null || bad "the daemon died"
    local how="" cpd=""
    if [[ "$C14_CP" == NA || -z "$C14_CP" ]]; then
        cpd="bytes the daemon copied for it: NA (dmabufctl info has no per-buffer copied_bytes yet)"
    else
        cpd="bytes the daemon copied for it: $C14_CP"
    fi
    if ((MAPPED)); then
        how="VM1 imported it mapped in place (mapped=1; SHM_INFO $(val p1 m14c.shm_state), $(val p1 m14c.shm_nr_mapped) mapped import holding $(val p1 m14c.shm_bytes_mapped) B; host's importer line: ${C14_KIND:-?}) and verified A's bytes in place; VM1's write [$C14_OFF,+$C14_LEN) read by VM2 in its own pages (and the host); VM2's write [$C14_OFF2,+$C14_LEN2) in VM1's mmap before any sync and after a read START; $cpd; VM2 powered off: VM1's import INFO REVOKED after $(val p1 m14h.info_waited_ms) ms, its mmap SIGBUS on read and write (sigbus=$(val p1 m14i.sigbus)/$(val p1 m14j.sigbus)), SYNC ENODEV, SHM_INFO 0 mapped after close, no oops in VM1"
    else
        how="fell back to the copy path (no shared memory region: QEMU ${QEMU_V:-?}): VM1's import mapped=0 (SHM_INFO $(val p1 m14c.shm_state), host's importer line: ${C14_KIND:-?}), verified A's bytes; VM1's write [$C14_OFF,+$C14_LEN) read by VM2 in its own pages (and the host); VM2's write [$C14_OFF2,+$C14_LEN2) reached VM1's copy at its read START (before it, the copy held 141); $cpd; VM2 powered off: VM1's import INFO REVOKED, its copy still readable (sigbus=$(val p1 m14i.sigbus)), SYNC ENODEV"
    fi
    done_case "VM2's $C14_SIZE B buffer A (pattern 141): $how"
}
