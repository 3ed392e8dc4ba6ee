# SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
#
# Guest side of VM2 in the two-VM boot of tests/vm-suite.sh. MODE=poweroff: case 8, then
# case 9b (hold buffers and a write access, then end: /init powers the guest off).
# MODE=kill: case 9c (hold buffers and write accesses until the host kills QEMU). The host
# prepends MBOX, CASES, MODE, HB (a host buffer) and sizes, and lib.sh.

insmod "$KO/virtio_dmabuf.ko" || { say "boot.error=insmod virtio_dmabuf.ko failed"; exit 1; }
say "boot.kernel=$(uname -r)"
say "boot.ready=1"

# hold_write TAG UUID: hold write access to the first page in the background (10 min)
hold_write() {
    run "$1" "$G" raw-sync --uuid "$2" --op start,w,0,4096,20000 --op sleep,600000 --op end,w,0,4096 &
}

if [ "$MODE" = poweroff ]; then
    if want 8; then
        go 81   # payload: X, VM1's buffer
        X=$PAYLOAD
        run c8b "$G" import --uuid "$X" --verify-seed 51
        run c8c "$G" import --uuid "$X" --offset "$C8_OFF" --len "$C8_LEN" --write-seed 52
        hold_start y2 c8d alloc --size "$C8_YSIZE" --fill 53
        go 82
        hold_quit y2 c8q
    fi
    if want 9; then
        go 91   # payload: V, VM1's buffer
        hold_start v2 p2a import --uuid "$PAYLOAD" --verify-seed 57
        hold_start z2 p2b alloc --size 131072 --fill 58
        hold_write p2c "$(uuid_of z2)"
        hold_write p2d "$HB"
        go 92
        say "p2e.poweroff=1"
        # the script ends with the holders alive: /init syncs and runs poweroff -f
        exit 0
    fi
    go 99
    finish
fi

# MODE=kill
go 94   # payload: V, VM1's buffer
hold_start v2 k2a import --uuid "$PAYLOAD" --verify-seed 61
hold_start w2 k2b alloc --size 1M --fill 62
hold_write k2c "$(uuid_of w2)"
hold_write k2d "$HB"
go 95   # the host kills QEMU while this waits
say "k2e.error=not killed"
exit 1
