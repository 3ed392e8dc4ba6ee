# SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
#
# Guest side of VM1 in the two-VM boot of tests/vm-suite.sh (cases 8, 12, 14, 9b, 9c). VM1 runs
# through the whole boot while VM2 (peer2.sh) boots twice: once ending in a poweroff, once
# killed with SIGKILL. The host prepends MBOX, CASES and sizes, and lib.sh; payloads of
# "go" carry UUIDs of VM2's buffers (and the checksums the host read of them).

# Every import of cases 8, 12 and 9 is a copy: DMABUF_GUEST_NO_MAP=1 makes dmabuf-guest pass
# VIRTIO_DMABUF_IMPORT_NO_MAP, so these cases keep testing the copy path (SYNC moves the
# bytes) also where the device could map in place (case 13 / 14 below ask for MAP explicitly). The host checks that no
# import of theirs was mapped (copy_path in tests/lib/vm.sh).
export DMABUF_GUEST_NO_MAP=1

insmod "$KO/virtio_dmabuf.ko" || { say "boot.error=insmod virtio_dmabuf.ko failed"; exit 1; }
say "boot.kernel=$(uname -r)"
say "boot.ready=1"

# 8. VM1 owns X: VM2 imports it, verifies, writes a range; VM1 sees the write in its own
#    pages; then VM1 imports VM2's buffer Y
if want 8; then
    tap_plan 8 6
    go 81
    hold_start x1 c8a alloc --size "$C8_SIZE" --fill 51
    go 82   # payload: Y and its checksum as VM2 read it
    set -- $PAYLOAD
    hcmd x1 c8e verify 52 "$C8_OFF" "$C8_LEN"
    hcmd x1 c8f verify 51 0 "$C8_OFF"
    run c8g "$G" import --uuid "$1" --verify-seed 53 --expect-fnv "$2"
    go 83
    hold_quit x1 c8q
    tap_done 8
fi

# 12. cross-VM errors, VM1 the owner A: READ_ONLY and HOST_ONLY buffers, write accesses
#     that VM2's STARTs wait for (and time out on), a release that revokes VM2's import
if want 12; then
    tap_plan 12 13
    go 121
    hold_start u1 e1 alloc --size 1M --fill 5
    hold_start r1 e2 alloc --size 64K --fill 7 --read-only
    hold_start o1 e3 alloc --size 64K --fill 8 --host-only
    say "e0.uuids=$(uuid_of u1) $(uuid_of r1) $(uuid_of o1)"
    go 122  # VM2 wrote pattern 6 over [4096,+8192)
    hcmd u1 e4 verify 6 4096 8192
    hcmd u1 e5 start w 0 1048576
    go 123  # VM2's short START timed out; a START of a killed process and an import wait
    hcmd u1 e6 end w 0 1048576
    go 124  # VM2's import was granted: the killed process's START must have been ended
    run e7 "$G" raw-sync --uuid "$(uuid_of u1)" --op start,w,0,4096,2000 --op end,w,0,4096 \
        --expect-op 0,OK --expect-op 1,OK
    hold_quit u1 e8     # the release revokes VM2's import
    go 125  # VM2 saw the revocation
    hcmd r1 e9 start w 0 65536
    go 126  # VM2's device was removed while its START waited for this access
    hcmd r1 e10 end w 0 65536
    hold_quit r1 e11
    hold_quit o1 e12
    tap_done 12
fi

# 14. VM1 is the importer B of VM2's buffer A: mapped in place where the device has a shared
#     memory region (MAPPED=1), else a copy; data both ways. VM2 powers off later (9b's
#     poweroff, or its own): the import is revoked, checked after 9b below.
if want 14; then
    # this case's import asks for MAP: it is what the case tests
    export DMABUF_GUEST_NO_MAP=0
    tap_plan 14 31
    go 141  # payload: A's UUID and its checksum as VM2 wrote it
    set -- $PAYLOAD
    shm_expect m14a 0 0
    hold_start b14 m14b import --uuid "$1" --verify-seed 141 --expect-fnv "$2" --expect-own 0 \
        --expect-size "$C14_SIZE" --expect-mapped "$MAPPED"
    shm_expect m14c "$MAPPED" $((MAPPED * C14_MAPLEN))
    hcmd b14 m14d write 142 "$C14_OFF" "$C14_LEN"
    export DMABUF_GUEST_NO_MAP=1
    go 142  # VM2 saw the write in its pages and wrote pattern 143 over [C14_OFF2,+C14_LEN2)
    # in place, VM2's write is here before any sync; a copy still holds pattern 141
    if [ "$MAPPED" = 1 ]; then
        hcmd b14 m14e peek 143 "$C14_OFF2" "$C14_LEN2"
    else
        hcmd b14 m14e peek 141 "$C14_OFF2" "$C14_LEN2"
    fi
    hcmd b14 m14f verify 143 "$C14_OFF2" "$C14_LEN2"
    hcmd b14 m14g verify 141 $((C14_OFF + C14_LEN)) $((C14_OFF2 - C14_OFF - C14_LEN))
fi

if want 9; then
    # 9b. VM2 powers off holding buffers; VM1 keeps going
    tap_plan 9b 5
    go 91
    hold_start v1 p1a alloc --size 65536 --fill 57
    go 92   # VM2 is gone
    hcmd v1 p1b verify 57
    hold_start s1 p1c alloc --size 8192 --fill 59
    go 93
    hold_quit s1 p1d
    hold_quit v1 p1e
    tap_done 9b
fi

# 14, after VM2's poweroff: the device revoked VM1's import of VM2's buffer
if want 14; then
    tap_resume 14
    go 145
    hcmd b14 m14h info 0x1 10000
    if [ "$MAPPED" = 1 ]; then
        # the driver zapped the mapping: SIGBUS is the defined result (spec 13.4)
        hcmd b14 m14i touch 0 sigbus
        hcmd b14 m14j touch-write 4096 0x5a sigbus
    else
        # a copy's pages stay mapped
        hcmd b14 m14i touch 0 seed=141
        hcmd b14 m14j touch-write 4096 0x5a ok
    fi
    hcmd b14 m14k fails ENODEV start r 0 4096
    hcmd b14 m14l fails ENODEV checksum
    hold_quit b14 m14m
    shm_expect m14n 0 0
    tap_done 14
fi

if want 9; then
    # 9c. VM2 (booted again) is killed with SIGKILL; VM1 imported one of its buffers
    tap_plan 9c 9
    go 94
    hold_start v1 k1a alloc --size 65536 --fill 61
    go 95   # payload: W, VM2's buffer
    # info: import without a sync (VM2 holds write access), the holder's syncs are ranged
    hold_start w1 k1b info --uuid "$PAYLOAD"
    go 96   # VM2's QEMU was killed: the import is revoked
    hcmd w1 k1c info 0x1
    hcmd w1 k1d fails ENODEV checksum
    hcmd v1 k1e verify 61
    hold_start s1 k1f alloc --size 8192 --fill 63
    go 97
    hold_quit s1 k1g
    hold_quit w1 k1h
    hold_quit v1 k1i
    tap_done 9c
fi

go 99
finish
