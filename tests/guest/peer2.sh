# SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
#
# Guest side of VM2 in the two-VM boot of tests/vm-suite.sh. MODE=poweroff: case 8, case 12
# (cross-VM errors, ending with a device unbind and rebind), case 14 (the owner of a buffer
# VM1 maps), then case 9b (hold buffers and a write access, then end: /init powers the guest
# off). MODE=kill: case 9c (hold buffers
# and write accesses until the host kills QEMU). The host prepends MBOX, CASES, MODE, HB (a
# host buffer) and sizes, and lib.sh.

# Every import of cases 8, 12 and 9 is a copy: DMABUF_GUEST_NO_MAP=1 makes dmabuf-guest pass
# VIRTIO_DMABUF_IMPORT_NO_MAP, so these cases keep testing the copy path (SYNC moves the
# bytes) also where the device could map in place (case 13 / 14 below ask for MAP explicitly). The host checks that no
# import of theirs was mapped (copy_path in tests/lib/vm.sh).
export DMABUF_GUEST_NO_MAP=1

insmod "$KO/virtio_dmabuf.ko" || { say "boot.error=insmod virtio_dmabuf.ko failed"; exit 1; }
say "boot.kernel=$(uname -r)"
say "boot.ready=1"

# hold_write TAG UUID: hold write access to the first page in the background (10 min)
hold_write() {
    run "$1" "$G" raw-sync --uuid "$2" --op start,w,0,4096,20000 --op sleep,600000 \
        --op end,w,0,4096 --expect-op 0,OK &
}

if [ "$MODE" = poweroff ]; then
    if want 8; then
        tap_plan 8 5
        go 81   # payload: X, VM1's buffer, and its checksum as VM1 wrote it
        set -- $PAYLOAD
        X=$1
        run c8b "$G" import --uuid "$X" --verify-seed 51 --expect-own 0 --expect-fnv "$2"
        run c8c "$G" import --uuid "$X" --offset "$C8_OFF" --len "$C8_LEN" --write-seed 52
        hold_start y2 c8d alloc --size "$C8_YSIZE" --fill 53
        go 82
        hold_quit y2 c8q
        tap_done 8
    fi
    if want 12; then
        # 12. cross-VM errors, VM2 the importer B of VM1's buffers U (1 MiB, pattern 5),
        #     R (READ_ONLY, pattern 7) and H (HOST_ONLY)
        tap_plan 12 19
        go 121  # payload: U R H
        set -- $PAYLOAD
        U=$1 R=$2 H=$3
        run e1 "$G" import --uuid "$U" --verify-seed 5 --sync dmabuf
        run e2 "$G" import --uuid "$U" --write-seed 6 --offset 4096 --len 8192
        run e3 "$G" import --uuid "$U" --verify-seed 6 --offset 4096 --len 8192
        run e4 "$G" import --uuid "$U" --verify-seed 5 --offset 12288 --len 4096 --twice
        run e5 "$G" import --uuid "$R" --verify-seed 7 --expect-read-only 1
        run e6 "$G" raw-sync --uuid "$R" --op start,w,0,4096 --expect-errno EACCES
        run e7 "$G" import --uuid "$R" --write-seed 1 --expect-errno EACCES
        run e8 "$G" import --uuid "$H" --expect-errno ENOENT
        hold_start bu e9 import --uuid "$U"
        go 122  # VM1 holds write access to U
        run e10 "$G" import --uuid "$U" --timeout-ms 2000 --print-crc --expect-errno ETIMEDOUT
        # a START whose process is killed while it waits: abandoned, the driver ends it
        # once it is granted
        "$G" raw-sync --uuid "$U" --op start,r,0,4096,15000 > /tmp/abandon.out 2>&1 &
        _p=$!
        _i=0
        while ! grep -q '^op0_issue=' /tmp/abandon.out && [ $_i -lt 100 ]; do sleep 0.1; _i=$((_i + 1)); done
        sleep 1
        kill -9 $_p
        wait $_p
        tag e11 < /tmp/abandon.out
        say "e11.killed=1"
        # granted when VM1 ends its write access (the host waits for e12.len, the line
        # printed just before the START)
        run e12 "$G" import --uuid "$U" --timeout-ms 30000 --verify-seed 5 --offset 16384 --len 4096
        go 123  # VM1 released U
        hcmd bu e13 info 0x1
        hcmd bu e14 fails ENODEV checksum
        run e15 "$G" import --uuid "$U" --expect-errno ENOENT
        hold_quit bu e16
        go 124  # VM1 holds write access to R
        # a START waiting for VM1's write access ends with ENODEV when the device is removed
        "$G" raw-sync --uuid "$R" --op start,r,0,4096,20000 --expect-op 0,ENODEV > /tmp/pend.out 2>&1 &
        _p=$!
        _i=0
        while ! grep -q '^op0_issue=' /tmp/pend.out && [ $_i -lt 100 ]; do sleep 0.1; _i=$((_i + 1)); done
        sleep 1
        D=$(basename "$(readlink /sys/class/misc/virtio-dmabuf0/device)")
        say "e17.unbind=$D"
        echo "$D" > /sys/bus/virtio/drivers/virtio_dmabuf/unbind
        _i=0
        while alive $_p && [ $_i -lt 300 ]; do sleep 0.1; _i=$((_i + 1)); done
        alive $_p && kill -9 $_p
        wait $_p
        tag e17 < /tmp/pend.out
        check "device node gone after unbind" "$(devnode)" 0
        echo "$D" > /sys/bus/virtio/drivers/virtio_dmabuf/bind
        wait_devnode
        check "device node back after bind" "$(devnode)" 1
        tap_done 12
    fi
    if want 14; then
        # 14. VM2 is the owner A of a buffer that VM1 (B) imports, mapped in place where the
        #     device has a shared memory region; it stays open until this VM powers off (9b's
        #     poweroff below, or the end of this script), which revokes VM1's import
        tap_plan 14 5
        go 141
        hold_start a14 m14a alloc --size "$C14_SIZE" --fill 141 --expect-size "$C14_SIZE"
        go 142  # VM1 verified A's bytes, wrote pattern 142 over [C14_OFF,+C14_LEN) and ended
        hcmd a14 m14b verify 142 "$C14_OFF" "$C14_LEN"
        hcmd a14 m14c verify 141 0 "$C14_OFF"
        hcmd a14 m14d write 143 "$C14_OFF2" "$C14_LEN2"
        tap_done 14
    fi
    if want 9; then
        tap_plan 9b 5
        go 91   # payload: V, VM1's buffer
        hold_start v2 p2a import --uuid "$PAYLOAD" --verify-seed 57
        hold_start z2 p2b alloc --size 131072 --fill 58
        hold_write p2c "$(uuid_of z2)"
        hold_write p2d "$HB"
        go 92
        say "p2e.poweroff=1"
        tap_done 9b
        # the script ends with the holders alive: /init syncs and runs poweroff -f
        exit 0
    fi
    go 99
    finish
fi

# MODE=kill
tap_plan 9c 5
go 94   # payload: V, VM1's buffer
hold_start v2 k2a import --uuid "$PAYLOAD" --verify-seed 61
hold_start w2 k2b alloc --size 1M --fill 62
hold_write k2c "$(uuid_of w2)"
hold_write k2d "$HB"
tap_done 9c
go 95   # the host kills QEMU while this waits
say "k2e.error=not killed"
exit 1
