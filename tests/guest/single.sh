# SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
#
# Guest side of the single-VM boot of tests/vm-suite.sh (cases 15, 1-7, 9a, 11 and 13). The host
# prepends its variables (MBOX, CASES, the UUIDs H2..H5, H13, H13K, H13R, H13B, H15A, H15B of buffers it shared and
# the checksums H2_FNV, H5_FNV, H13_FNV, H13K_FNV it read of them, sizes and offsets, BIG,
# MAPPED and SHM_STATE) and lib.sh. Each "go N" waits for the host; step numbers are
# case*10 + k and must match the host's side (tests/cases/single.sh). Each case's checks
# are TAP lines (tap_plan .. tap_done).

# Every import of cases 1-7, 9a and 11 is a copy: DMABUF_GUEST_NO_MAP=1 makes dmabuf-guest pass
# VIRTIO_DMABUF_IMPORT_NO_MAP, so these cases keep testing the copy path (SYNC moves the
# bytes) also where the device could map in place (case 13 / 14 below ask for MAP explicitly). The host checks that no
# import of theirs was mapped (copy_path in tests/lib/vm.sh).
export DMABUF_GUEST_NO_MAP=1

insmod "$KO/virtio_dmabuf.ko" || { say "boot.error=insmod virtio_dmabuf.ko failed"; exit 1; }
insmod "$KO/dmabuf_kimport.ko" || { say "boot.error=insmod dmabuf_kimport.ko failed"; exit 1; }
say "boot.kernel=$(uname -r)"
say "boot.ready=1"

# 15. contiguous buffers and a real V4L2 importer (vivid). First in the boot: its probe of
#     the largest contiguous ALLOC wants a freshly booted guest. vivid captures a fixed
#     frame (colour bars, no OSD text, no movement, 1920x1080 XR24: 8294400 B, more than the
#     buddy allocator's largest block) into vivid's own buffers (the reference) and into our
#     dma-bufs: with allocators=0 (vb2-vmalloc, which vmaps) a guest buffer and the imported
#     host buffer H15A; with allocators=1 (vb2-dma-contig, which needs one contiguous run) a
#     scattered guest buffer is refused (EFAULT at QBUF), a contiguous one and the mapped
#     import H15B are captured into. The host reads H15A, H15B and the contiguous buffer.
if want 15; then
    export DMABUF_GUEST_NO_MAP=0
    tap_plan 15 30
    go 151
    # the largest contiguous ALLOC, to 4 MiB: doubling from 8 MiB, then halving the gap; up to
    # 512 MiB (the 2 GiB guest of case 11's block would take over a minute under TCG)
    contig_ok() { "$G" alloc --contiguous --size "${1}M" > "/tmp/m15p.out" 2>&1; }
    _mf0=$(sed -n 's/^MemFree: *\([0-9]*\) kB$/\1/p' /proc/meminfo)
    _lo=0 _hi=0 _n=8 _tries=0
    while [ "$_hi" = 0 ] && [ "$_n" -le 512 ]; do
        _tries=$((_tries + 1))
        if contig_ok "$_n"; then _lo=$_n; _n=$((_n * 2)); else _hi=$_n; _err=$(sed -n 's/^status=//p' /tmp/m15p.out); fi
    done
    while [ $((_hi - _lo)) -gt 4 ] && [ "$_lo" -gt 0 ]; do
        _tries=$((_tries + 1))
        _n=$(( (_lo + _hi) / 2 ))
        if contig_ok "$_n"; then _lo=$_n; else _hi=$_n; _e2=$(sed -n 's/^status=//p' /tmp/m15p.out); fi
    done
    # again, after the first pass (which leaves freed pages on the per-CPU free lists, up to
    # 40 MiB on a 2 GiB guest: not counted in MemFree): 8 MiB, the largest, the first that
    # failed, 8 MiB; a buffer or a failed try that kept its pages shows here
    _mf1=$(sed -n 's/^MemFree: *\([0-9]*\) kB$/\1/p' /proc/meminfo)
    contig_ok 8 && _a8=ok || _a8=$(sed -n 's/^status=//p' /tmp/m15p.out)
    contig_ok "$_lo"
    _e3=OK
    [ "$_hi" = 0 ] || contig_ok "$_hi" || _e3=$(sed -n 's/^status=//p' /tmp/m15p.out)
    contig_ok 8 && _b8=ok || _b8=$(sed -n 's/^status=//p' /tmp/m15p.out)
    _mf2=$(sed -n 's/^MemFree: *\([0-9]*\) kB$/\1/p' /proc/meminfo)
    say "m15a.largest_mib=$_lo"
    say "m15a.first_fail_mib=$_hi"
    say "m15a.tries=$_tries"
    say "m15a.mem_total_kb=$(sed -n 's/^MemTotal: *\([0-9]*\) kB$/\1/p' /proc/meminfo)"
    say "m15a.memfree_lost_kb=$((_mf0 - _mf1))"
    say "m15a.memfree_lost2_kb=$((_mf1 - _mf2))"
    check_range "[m15a] largest contiguous ALLOC (MiB), at least 8 (a 1920x1080 XRGB frame)" "$_lo" 8 1000000
    if [ "$_hi" = 0 ]; then
        tap_skip "[m15a] the first contiguous ALLOC too large fails with ENOMEM" "512 MiB fit: the probe stops there"
    else
        check "[m15a] the first contiguous ALLOC too large fails with ENOMEM" "${_err:-none}" ENOMEM
    fi
    check "[m15a] every contiguous ALLOC that failed in the bisection failed with ENOMEM" "${_e2:-ENOMEM}" ENOMEM
    check "[m15a] 8 MiB contiguous again, before and after the largest" "$_a8 $_b8" "ok ok"
    # (it may fit now: the first pass migrated pages around)
    case "$_e3" in OK|ENOMEM) _e3="OK or ENOMEM" ;; esac
    check "[m15a] the first size that failed, again: it fits now or fails with ENOMEM" "$_e3" "OK or ENOMEM"
    check_range "[m15a] MemFree lost over the second pass (kB): no pages kept" "$((_mf1 - _mf2))" -1000000 8191
    # vivid with one webcam input and only a video capture node
    K=/sys/kernel/debug/virtio-dmabuf
    vivid_load() {
        while read -r _ko; do
            case "$_ko" in
                */vivid.ko) ;;
                *) grep -q "^$(basename "$_ko" .ko | tr - _) " /proc/modules || insmod "$_ko" || return 1 ;;
            esac
        done < /lib/modules/vivid.order
        insmod "$(grep '/vivid[.]ko$' /lib/modules/vivid.order)" n_devs=1 node_types=0x1 \
            num_inputs=1 input_types=0x0 "allocators=$1" || return 1
        _i=0
        while [ ! -e /dev/video0 ] && [ $_i -lt 50 ]; do sleep 0.1; _i=$((_i + 1)); done
    }
    V=v4l2-capture
    expect_rc m15b 0 vivid_load 0
    run m15c "$V" --ref-out /tmp/ref15
    run m15d "$V" --ref /tmp/ref15
    run m15e "$V" --ref /tmp/ref15 --uuid "$H15A"
    expect_rc m15f 0 rmmod vivid
    expect_rc m15g 0 vivid_load 1
    # before the flag: a buffer of scattered pages (one segment per page) is refused
    echo 1 > $K/scatter
    run m15h "$V" --ref /tmp/ref15 --expect-qbuf-errno EFAULT
    echo 0 > $K/scatter
    # the contiguous buffer; the debugfs knobs do not apply to it
    echo 0 > $K/alloc_max_order
    echo 1 > $K/scatter
    _g=$G
    G=$V
    hold_start h15 m15i --ref /tmp/ref15 --contiguous
    G=$_g
    echo 0 > $K/scatter
    echo 9 > $K/alloc_max_order
    if [ "$MAPPED" = 1 ]; then
        run m15j "$V" --ref /tmp/ref15 --uuid "$H15B" --contiguous
    else
        tap_skip "[m15j] vb2-dma-contig capture into an import" "imports are copies here (no shared memory region), in pages that are not one run"
        tap_skip "[m15j] the same import's frame" "imports are copies here"
        tap_skip "[m15j] its bytesused" "imports are copies here"
    fi
    say "m15j.done=1"
    go 152
    hold_quit h15 m15k
    expect_rc m15l 0 rmmod vivid
    export DMABUF_GUEST_NO_MAP=1
    tap_done 15
fi

# 1. a guest buffer, filled by the guest, read by the host; then libvdmabuf (guest-driver/lib)
#    against the real driver: its test (26 checks without a device, 38 with it, and its
#    exit status) and the README's example (its exit status and what it printed)
if want 1; then
    tap_plan 1 71
    go 11
    hold_start h1 c1 alloc --size "$C1_SIZE" --fill 21 --expect-size "$C1_SIZE"
    go 12
    hold_quit h1 c1q
    expect_rc c1l 0 vdmabuf-test --device
    expect_rc c1x 0 vdmabuf-example
    check "[c1x] the example read back what it wrote" "$(sed -n 's/^read=//p' /tmp/rc.c1x)" hello
    _u=$(sed -n 's/^uuid=//p' /tmp/rc.c1x)
    check "[c1x] the example printed a UUID as 8-4-4-4-12 hex" \
        "$(echo "$_u" | grep -cx '[0-9a-f]\{8\}-[0-9a-f]\{4\}-[0-9a-f]\{4\}-[0-9a-f]\{4\}-[0-9a-f]\{12\}')" 1
    tap_done 1
fi

# 2. a host memfd imported, verified, written back
if want 2; then
    tap_plan 2 4
    go 21
    run c2 "$G" import --uuid "$H2" --verify-seed 31 --write-seed 32 --expect-size "$C2_SIZE" \
        --expect-host-backed 1 --expect-fnv "$H2_FNV"
    # reported, not asserted: reading an imported 1 MiB host buffer after each START READ
    # (the sync's copy included) vs reading a guest-local buffer, under this VM's accelerator
    run c2b "$G" bench-read --uuid "$H5" --rounds 5
    tap_done 2
fi

# 3. ranged syncs move only their range, both directions
if want 3; then
    tap_plan 3 8
    go 31
    hold_start h3 c3a import --uuid "$H3" --verify-seed 41
    go 32   # the host wrote seed 42 over the whole buffer
    hcmd h3 c3b verify 42 "$C3_X" "$C3_L"
    hcmd h3 c3c peek 41 0 "$C3_X"
    hcmd h3 c3d peek 41 $((C3_X + C3_L)) $((C3_SIZE - C3_X - C3_L))
    hcmd h3 c3e poke 43
    hcmd h3 c3f write 43 "$C3_Y" "$C3_M"
    go 33
    hold_quit h3 c3q
    tap_done 3
fi

# 4. cross-domain fencing against a host write access
if want 4; then
    tap_plan 4 8
    go 41   # the host holds write access to H4 for C4_HOLD_S
    run c4a "$G" raw-sync --uuid "$H4" --op start,r,0,4096,20000 --op end,r,0,4096 \
        --expect-op "0,OK,0,$((C4_HOLD_S * 1000 + 2000))" --expect-op 1,OK
    go 42   # and again
    run c4b "$G" raw-sync --uuid "$H4" --op start,r,0,4096,1000 --expect-op 0,ETIMEDOUT,900,4000
    go 43   # a host client holds write access to H4 and is killed while the guest waits
    run c4c "$G" raw-sync --uuid "$H4" --op start,w,0,4096,30000 --op end,w,0,4096 \
        --expect-op 0,OK,1000 --expect-op 1,OK
    tap_done 4
fi

# 5. vgem imports our dma-bufs
if want 5; then
    tap_plan 5 11
    go 51
    expect_rc c5a 0 /sbin/load-vgem
    run c5b "$G" vgem --size 1M --fill 4
    run c5c "$G" vgem --uuid "$H5" --expect-fnv "$H5_FNV"
    run c5d "$G" kimport --uuid "$H5" --op verify --verify-seed 71 --attach --expect-fnv "$H5_FNV"
    tap_done 5
fi

# 6. the in-kernel importer: begin_cpu_access + vmap, read and write
if want 6; then
    tap_plan 6 11
    go 61
    run c6a "$G" kimport --uuid "$H5" --op verify --verify-seed 71 --expect-fnv "$H5_FNV"
    run c6b "$G" kimport --uuid "$H5" --op write --write-seed 72 --offset "$C6_OFF" --len "$C6_LEN"
    hold_start h6 c6c alloc --size 1M --fill 5
    run c6d "$G" kimport --uuid "$(uuid_of h6)" --op write --write-seed 6 --offset 0 --len 65536 --attach
    run c6e "$G" kimport --size 2M --fill 9 --op verify --attach
    go 62
    hold_quit h6 c6q
    tap_done 6
fi

# 7. close-on-exec
if want 7; then
    tap_plan 7 4
    go 71
    run c7a "$G" alloc --size 4096 --expect-cloexec 1
    run c7b "$G" alloc --size 4096 --no-cloexec --expect-cloexec 0
    run c7c "$G" import --uuid "$H5" --sync none --expect-cloexec 1
    run c7d "$G" import --uuid "$H5" --sync none --no-cloexec --expect-cloexec 0
    tap_done 7
fi

# 9a. module unload refused while a buffer is open, works once closed, reload works
if want 9; then
    tap_plan 9a 14
    go 91
    # the holder keeps only the dma-buf open: its syncs use DMA_BUF_IOCTL_SYNC, and it
    # closes /dev/virtio-dmabuf0
    hold_start h9 c9a alloc --size 65536 --fill 3 --sync dmabuf
    hcmd h9 c9b closedev
    _r=$(cat /sys/module/virtio_dmabuf/refcnt)
    say "c9c.refcnt=$_r"
    check_range "module refcount with only a dma-buf fd open" "$_r" 1 1000
    expect_rc c9d fail rmmod virtio_dmabuf
    say "c9d.devnode=$(devnode)"
    check "device node after the refused rmmod" "$(devnode)" 1
    go 92
    hcmd h9 c9e verify 3
    hold_quit h9 c9f
    expect_rc c9g 0 rmmod virtio_dmabuf
    check "device node after rmmod" "$(devnode)" 0
    check "virtio_dmabuf in /proc/modules after rmmod" "$(grep -c '^virtio_dmabuf ' /proc/modules)" 0
    expect_rc c9h 0 insmod "$KO/virtio_dmabuf.ko"
    wait_devnode
    check "device node after insmod again" "$(devnode)" 1
    hold_start h9b c9i alloc --size 12288 --fill 8
    go 93
    hold_quit h9b c9q
    tap_done 9a
fi

# 11. driver limits: odd sizes, errors, long segment lists (debugfs knobs), 1 GiB (BIG=1),
#     DMA_BUF_SET_NAME, kimport paths, device unbind with a buffer open, rebind
if want 11; then
    tap_plan 11 55
    go 111
    "$G" devinfo > /tmp/d1.out 2>&1
    echo "rc=$?" >> /tmp/d1.out
    tag d1 < /tmp/d1.out
    hold_start d2 d2 alloc --size 3M --fill 11
    U=$(uuid_of d2)
    run d3 "$G" import --uuid "$U" --verify-seed 11 --twice
    run d4 "$G" import --uuid "$U" --verify-seed 11 --offset 4095 --len 70000 --sync ranged
    run d5 "$G" import --uuid "$U" --verify-seed 11 --sync dmabuf --expect-own 1
    run d6 "$G" info --uuid "$U"
    run d7 "$G" kimport --uuid "$U" --op verify --verify-seed 11 --attach
    run d8 "$G" kimport --uuid "$U" --op write --write-seed 12 --offset 8192 --len 100000 --attach
    run d9 "$G" kimport --size 2M --fill 9 --op verify --attach
    hcmd d2 d10 verify 12 8192 100000
    expect_rc d11 fail rmmod virtio_dmabuf
    hold_quit d2 d12
    run d13 "$G" alloc --size 5000 --fill 3 --no-cloexec --expect-size 5000 --expect-cloexec 0
    run d14 "$G" setname --size 64K --name hello-dmabuf
    # vgem: not loaded yet (case 5 loads it: unload it again)
    if [ -e /dev/dri/card0 ]; then
        expect_rc d15 0 rmmod vgem
    else
        tap_skip "rmmod vgem" "vgem not loaded"
    fi
    run d16 "$G" vgem --size 1M --fill 4 --expect-errno ENOENT
    expect_rc d17 0 /sbin/load-vgem
    run d18 "$G" vgem --size 1M --fill 4
    run d19 "$G" raw-sync --size 64K --op end,r,0,4096 --expect-errno EPERM
    run d20 "$G" raw-sync --size 64K --op start,r,0,70000 --expect-errno EINVAL
    run d21 "$G" raw-sync --size 64K --op start,rw,0,4096 --op start,r,0,4096 --op end,r,0,4096 \
        --op end,rw,0,4096 --expect-op 0,OK --expect-op 1,OK --expect-op 2,OK --expect-op 3,OK
    run d22 "$G" import --uuid 00000000-0000-4000-8000-000000000000 --expect-errno ENOENT
    run d23 "$G" alloc --size 0 --expect-errno EINVAL
    run d24 "$G" alloc --size 64M --fill 1 --expect-size 64M
    run d25 "$G" bench-read --size 16M --rounds 5 --sync dmabuf
    # long segment lists: page-by-page allocation (test knobs in debugfs)
    K=/sys/kernel/debug/virtio-dmabuf
    grep -q " /sys/kernel/debug debugfs " /proc/mounts || mount -t debugfs none /sys/kernel/debug
    check "debugfs test knobs alloc_max_order and scatter present" \
        "$(test -f $K/alloc_max_order && test -f $K/scatter && echo 1)" 1
    echo 0 > $K/alloc_max_order
    if [ "$BIG" = 1 ]; then
        run d26 "$G" alloc --size 1G --expect-size 1G
    else
        tap_skip "[d26] ALLOC of 1 GiB, one segment per page" "the 1 GiB buffer runs on one block per run"
    fi
    run d27 "$G" kimport --size 128M --fill 3 --op verify --attach
    # one segment per page, segment lists in scattered vmalloc pages (the pages are only
    # mostly apart: neighbours coalesce now and then): 4096 segments in at most 16 sg
    # entries; 16384 segments need about 64, copied into contiguous memory when that is more
    # than queue_size - 2
    _q=$(sed -n 's/^queue_size=//p' /tmp/d1.out)
    echo 'module virtio_dmabuf +p' > /sys/kernel/debug/dynamic_debug/control
    echo 1 > $K/scatter
    _n0=$(dmesg | wc -l)
    run d28 "$G" kimport --size 16M --fill 4 --op verify --attach
    _l=$(req_line "$_n0")
    say "d28.request_data=$_l"
    check_range "4096 pages (16 MiB, scattered): the segment list sent in sg entries (not copied)" \
        "$(echo "$_l" | sed -n -E 's/.* bytes of request data in ([0-9]+) sg entries$/\1/p')" 2 16
    _n0=$(dmesg | wc -l)
    run d29 "$G" kimport --size 64M --fill 5 --op verify --attach
    _l=$(req_line "$_n0")
    say "d29.request_data=$_l"
    _n=$(echo "$_l" | sed -n -E 's/.* bytes of request data (in|need) ([0-9]+) sg entries.*/\2/p')
    _w=sent
    [ "${_n:-0}" -gt $((${_q:-0} - 2)) ] && _w=copied
    _g=none
    case "$_l" in
        *": copying") _g=copied ;;
        *" sg entries") _g=sent ;;
    esac
    check "16384 pages (64 MiB, scattered): a segment list of ${_n:-?} sg entries, queue_size ${_q:-?}: sent or copied" "$_g" "$_w"
    if [ "$BIG" = 1 ]; then
        run d30 "$G" alloc --size 512M --expect-size 512M
    else
        tap_skip "[d30] ALLOC of 512 MiB, one segment per scattered page" "the big buffers run on one block per run"
    fi
    echo 0 > $K/scatter
    echo 'module virtio_dmabuf -p' > /sys/kernel/debug/dynamic_debug/control
    dmesg | grep 'request data' | tag d31
    echo 9 > $K/alloc_max_order
    # device removal while a buffer is open
    hold_start d32 d32 alloc --size 1M --fill 2
    D=$(basename "$(readlink /sys/class/misc/virtio-dmabuf0/device)")
    say "d33.device=$D"
    echo "$D" > /sys/bus/virtio/drivers/virtio_dmabuf/unbind
    check "device node gone after unbind" "$(devnode)" 0
    hcmd d32 d34 info 0x2
    hcmd d32 d35 fails ENODEV checksum
    hold_quit d32 d36
    echo "$D" > /sys/bus/virtio/drivers/virtio_dmabuf/bind
    wait_devnode
    check "device node back after bind" "$(devnode)" 1
    run d37 "$G" alloc --size 1M --fill 2 --expect-size 1M
    expect_rc d38 0 rmmod dmabuf_kimport
    expect_rc d39 0 rmmod virtio_dmabuf
    tap_done 11
fi

# 13. zero-copy import of a host memfd (spec 13): mapped in place where the VMM gives the
#     device a shared memory region (MAPPED=1: stock QEMU 11.1.3); without one (QEMU 10.2.2)
#     the same import falls back to a copy and everything still verifies. The host shared
#     H13 (C13_SIZE bytes, pattern 131), H13K (C13K_SIZE, pattern 134) and the read-only
#     H13R (64 KiB, pattern 136).
if want 13; then
    # this case's imports ask for MAP: they are what it tests (the mailbox stays a copy)
    export DMABUF_GUEST_NO_MAP=0
    tap_plan 13 77
    # case 11 ends with both modules unloaded: load them again (the region is set up anew;
    # the mailbox needs the device too)
    grep -q '^virtio_dmabuf ' /proc/modules || { insmod "$KO/virtio_dmabuf.ko"; wait_devnode; }
    grep -q '^dmabuf_kimport ' /proc/modules || insmod "$KO/dmabuf_kimport.ko"
    go 131
    shm_expect m13a 0 0
    hold_start h13 m13b import --uuid "$H13" --verify-seed 131 --expect-fnv "$H13_FNV" \
        --expect-size "$C13_SIZE" --expect-host-backed 1 --expect-mapped "$MAPPED"
    shm_expect m13c "$MAPPED" $((MAPPED * C13_MAPLEN))
    hcmd h13 m13d info
    check "[m13d] INFO: the MAPPED flag of the import" "$(last_key h13 info_mapped)" "$MAPPED"
    go 132  # the host wrote pattern 132 over H13 (fenced)
    # in place, the host's bytes are there before any sync; a copy still holds pattern 131
    if [ "$MAPPED" = 1 ]; then hcmd h13 m13e peek 132; else hcmd h13 m13e peek 131; fi
    hcmd h13 m13f verify 132
    hcmd h13 m13g write 133
    go 133  # the host holds write access to [0,4096) for C13_HOLD_S
    run m13h "$G" raw-sync --uuid "$H13" --expect-mapped "$MAPPED" --op start,r,0,4096,20000 \
        --op end,r,0,4096 --expect-op "0,OK,0,$((C13_HOLD_S * 1000 + 2000))" --expect-op 1,OK
    go 134  # the host revoked H13 while this guest has it mmapped
    hcmd h13 m13i info 0x1 10000
    if [ "$MAPPED" = 1 ]; then
        # the driver zapped the mapping: SIGBUS is the defined result (spec 13.4)
        hcmd h13 m13j touch 0 sigbus
        hcmd h13 m13k touch-write 4096 0x5a sigbus
    else
        # a copy's pages stay mapped: they hold this guest's last write
        hcmd h13 m13j touch 0 seed=133
        hcmd h13 m13k touch-write 4096 0x5a ok
    fi
    hcmd h13 m13l fails ENODEV start r 0 4096
    hcmd h13 m13m fails ENODEV checksum
    hold_quit h13 m13n
    shm_expect m13o 0 0
    # a buffer this guest may only read is never mapped (the device answers MAP UNSUPPORTED:
    # a read-only mapping cannot be enforced with QEMU 11.1.3): a copy, one fallback counted
    run m13u "$G" import --uuid "$H13R" --verify-seed 136 --expect-read-only 1 --expect-mapped 0
    if [ "$MAPPED" = 1 ]; then _f=1 _e=EOPNOTSUPP; else _f=0 _e=OK; fi
    run m13v "$G" shm-info --expect-state "$SHM_STATE" --expect-nr-mapped 0 --expect-bytes-mapped 0 \
        --expect-fallbacks "$_f" --expect-last-fallback "$_e"
    # importers of a mapped import: the kernel (begin_cpu_access + vmap, attach) and vgem
    run m13p "$G" kimport --uuid "$H13K" --expect-mapped "$MAPPED" --op verify --verify-seed 134 \
        --attach --expect-fnv "$H13K_FNV"
    [ -e /dev/dri/card0 ] || /sbin/load-vgem > /dev/null 2>&1
    run m13q "$G" vgem --uuid "$H13K" --expect-mapped "$MAPPED" --expect-fnv "$H13K_FNV"
    run m13r "$G" kimport --uuid "$H13K" --expect-mapped "$MAPPED" --op write --write-seed 135 \
        --offset "$C13_OFF" --len "$C13_LEN" --attach
    # vm-bench (reported, not asserted): reading the 16 MiB host buffer H13B mapped and as a
    # copy (START READ, read every byte, END), each against reading a guest-local buffer
    if [ "$MAPPED" = 1 ]; then
        run m13s "$G" bench-read --uuid "$H13B" --rounds 15 --expect-mapped 1
    else
        tap_skip "[m13s] bench-read of a mapped import" "no shared memory region: imports are copies"
    fi
    run m13t "$G" bench-read --uuid "$H13B" --rounds 15 --no-map --expect-mapped 0
    # device removal with a mapped import open (the VMM resets the device with a mapping in
    # place), then bound again while the old binding's import still holds its range
    hold_start h13u m13w import --uuid "$H13K" --verify-seed 134 --len 4096 --expect-mapped "$MAPPED"
    D=$(basename "$(readlink /sys/class/misc/virtio-dmabuf0/device)")
    echo "$D" > /sys/bus/virtio/drivers/virtio_dmabuf/unbind
    check "[m13x] device node gone after unbind (an import open)" "$(devnode)" 0
    hcmd h13u m13y info 0x2
    if [ "$MAPPED" = 1 ]; then
        # user mappings of a mapped import are zapped at removal
        hcmd h13u m13z touch 0 sigbus
    else
        # a copy's pages stay valid memory
        hcmd h13u m13z touch 0 seed=134
    fi
    echo "$D" > /sys/bus/virtio/drivers/virtio_dmabuf/bind
    wait_devnode
    check "[m13za] device node back after bind" "$(devnode)" 1
    # the open import of the old binding still requests the region: the new one copies
    if [ "$MAPPED" = 1 ]; then _s=UNUSABLE; else _s=NO_REGION; fi
    run m13zb "$G" shm-info --expect-state "$_s"
    hold_quit h13u m13zc
    # once it is closed, the next binding maps again
    echo "$D" > /sys/bus/virtio/drivers/virtio_dmabuf/unbind
    echo "$D" > /sys/bus/virtio/drivers/virtio_dmabuf/bind
    wait_devnode
    shm_expect m13zd 0 0
    run m13ze "$G" import --uuid "$H13K" --verify-seed 134 --len 4096 --expect-mapped "$MAPPED"
    export DMABUF_GUEST_NO_MAP=1
    tap_done 13
fi

finish
