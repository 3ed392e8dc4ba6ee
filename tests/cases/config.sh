# SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
#
# Case 16 of tests/vm-suite.sh (sourced): the driver against device configurations the real
# daemon never offers. One boot with eight virtio dma-buf devices, each served by
# guest-driver/tests/fakedev/fake-vhost-user.py: six configurations the driver must refuse at
# probe (a sync_timeout_ms that wrapped its wait, 0, past the 1 h bound; each limit 0), two it
# must bind (5000 ms, with buffers to import and revoke; 3600000 ms, the bound itself). The
# guest decides (tests/guest/config.sh, TAP): what was refused, the REVOKED notice's rate
# limit, the per-device workqueue.

C16_REVOKES=16   # more than printk's burst of 10
FAKE="$REPO/guest-driver/tests/fakedev/fake-vhost-user.py"

# fake_start NAME ARGS...: one fake backend on $KLOG/NAME.sock (it serves one connection and
# exits; bounded by 600 s like the VM)
fake_start() {
    local n=$1
    shift
    rm -f "$KLOG/$n.sock"
    timeout -k 5 600 python3 "$FAKE" --socket "$KLOG/$n.sock" "$@" >"$KLOG/$n.log" 2>&1 &
    echo $! > "$KLOG/$n.pid"
    BG_PIDFILES+=("$KLOG/$n.pid")
}

run_config() {
    local s=c1 i="" n="" bufs=() args=() ok=1
    for ((i = 1; i <= C16_REVOKES; i++)); do bufs+=(--buffer "$(printf '%02x' "$i"):4096:$i"); done
    fake_start fk0 "${bufs[@]}"
    fake_start fk1 --sync-timeout-ms 4294967295
    fake_start fk2 --sync-timeout-ms 0
    fake_start fk3 --sync-timeout-ms 3600001
    fake_start fk4 --max-segments 0
    fake_start fk5 --max-buffers 0
    fake_start fk6 --max-bytes 0
    fake_start fk7 --sync-timeout-ms 3600000
    for ((i = 0; i < 100; i++)); do
        ok=1
        for n in 0 1 2 3 4 5 6 7; do [[ -S "$KLOG/fk$n.sock" ]] || ok=0; done
        ((ok)) && break
        sleep 0.1
    done
    begin 16 driver-config
    if ((!ok)); then
        bad "the fake backends did not start (logs $KLOG/fk*.log)"
        done_case "not run"
        return
    fi
    for n in 1 2 3 4 5 6 7; do
        args+=(--qemu-arg -chardev --qemu-arg "socket,id=fk$n,path=$KLOG/fk$n.sock"
               --qemu-arg -device
               --qemu-arg "vhost-user-test-device-pci,chardev=fk$n,virtio-id=37,num_vqs=2,config_size=24")
    done
    guest_script "$KLOG/$s.sh" config.sh "REVOKES=$C16_REVOKES"
    vm_start "$s" "$KLOG/fk0.sock" "$KLOG/$s.sh" 600 "${args[@]}"
    if vm_booted "$s"; then
        tap_check "$s" 16
        wait_key "$s" end.done 120 || bad "$s: $WHY"
        n="$(val "$s" c16.revoked_lines)"
        done_case "8 devices from fake-vhost-user.py: refused at probe (sync_timeout_ms 4294967295, 0, 3600001; max_segments, max_buffers, max_bytes 0), bound (5000, 3600000 ms); $C16_REVOKES imports revoked, ${n:-?} REVOKED notices logged; workers on the device's own workqueue"
    else
        bad "guest did not boot: $WHY"
        done_case "not run"
    fi
    vm_wait "$s" 60
    boot_result boot-config "$s"
}
