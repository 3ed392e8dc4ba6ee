# SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
#
# Guest side of VM1 in the two-VM boot of tests/vm-suite.sh (cases 8, 9b, 9c). VM1 runs
# through the whole boot while VM2 (peer2.sh) boots twice: once ending in a poweroff, once
# killed with SIGKILL. The host prepends MBOX, CASES and sizes, and lib.sh; payloads of
# "go" carry UUIDs of VM2's buffers.

insmod "$KO/virtio_dmabuf.ko" || { say "boot.error=insmod virtio_dmabuf.ko failed"; exit 1; }
say "boot.kernel=$(uname -r)"
say "boot.ready=1"

# 8. VM1 owns X: VM2 imports it, verifies, writes a range; VM1 sees the write in its own
#    pages; then VM1 imports VM2's buffer Y
if want 8; then
    go 81
    hold_start x1 c8a alloc --size "$C8_SIZE" --fill 51
    go 82   # payload: Y
    hcmd x1 c8e verify 52 "$C8_OFF" "$C8_LEN"
    hcmd x1 c8f verify 51 0 "$C8_OFF"
    run c8g "$G" import --uuid "$PAYLOAD" --verify-seed 53
    go 83
    hold_quit x1 c8q
fi

if want 9; then
    # 9b. VM2 powers off holding buffers; VM1 keeps going
    go 91
    hold_start v1 p1a alloc --size 65536 --fill 57
    go 92   # VM2 is gone
    hcmd v1 p1b verify 57
    hold_start s1 p1c alloc --size 8192 --fill 59
    go 93
    hold_quit s1 p1d
    hold_quit v1 p1e

    # 9c. VM2 (booted again) is killed with SIGKILL; VM1 imported one of its buffers
    go 94
    hold_start v1 k1a alloc --size 65536 --fill 61
    go 95   # payload: W, VM2's buffer
    # info: import without a sync (VM2 holds write access), the holder's syncs are ranged
    hold_start w1 k1b info --uuid "$PAYLOAD"
    go 96   # VM2's QEMU was killed
    hcmd w1 k1c info
    hcmd w1 k1d checksum
    hcmd v1 k1e verify 61
    hold_start s1 k1f alloc --size 8192 --fill 63
    go 97
    hold_quit s1 k1g
    hold_quit w1 k1h
    hold_quit v1 k1i
fi

go 99
finish
