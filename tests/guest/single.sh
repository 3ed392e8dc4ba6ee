# SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
#
# Guest side of the single-VM boot of tests/vm-suite.sh (cases 1-7 and 9a). The host
# prepends its variables (MBOX, CASES, the UUIDs H2..H5 of buffers it shared, sizes and
# offsets) and lib.sh. Each "go N" waits for the host; step numbers are case*10 + k and must
# match the host's side (run_single in vm-suite.sh).

insmod "$KO/virtio_dmabuf.ko" || { say "boot.error=insmod virtio_dmabuf.ko failed"; exit 1; }
insmod "$KO/dmabuf_kimport.ko" || { say "boot.error=insmod dmabuf_kimport.ko failed"; exit 1; }
say "boot.kernel=$(uname -r)"
say "boot.ready=1"

# 1. a guest buffer, filled by the guest, read by the host
if want 1; then
    go 11
    hold_start h1 c1 alloc --size "$C1_SIZE" --fill 21
    go 12
    hold_quit h1 c1q
fi

# 2. a host memfd imported, verified, written back
if want 2; then
    go 21
    run c2 "$G" import --uuid "$H2" --verify-seed 31 --write-seed 32
    # reported, not asserted: reading an imported 1 MiB host buffer after each START READ
    # (the sync's copy included) vs reading a guest-local buffer, under this VM's accelerator
    run c2b "$G" bench-read --uuid "$H5" --rounds 5
fi

# 3. ranged syncs move only their range, both directions
if want 3; then
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
fi

# 4. cross-domain fencing against a host write access
if want 4; then
    go 41   # the host holds write access to H4
    run c4a "$G" raw-sync --uuid "$H4" --op start,r,0,4096,20000 --op end,r,0,4096
    go 42   # and again
    run c4b "$G" raw-sync --uuid "$H4" --op start,r,0,4096,1000
    go 43   # a host client holds write access to H4 and is killed while the guest waits
    run c4c "$G" raw-sync --uuid "$H4" --op start,w,0,4096,30000 --op end,w,0,4096
fi

# 5. vgem imports our dma-bufs
if want 5; then
    go 51
    run c5a /sbin/load-vgem
    run c5b "$G" vgem --size 1M --fill 4
    run c5c "$G" vgem --uuid "$H5"
    run c5d "$G" kimport --uuid "$H5" --op verify --verify-seed 71 --attach
fi

# 6. the in-kernel importer: begin_cpu_access + vmap, read and write
if want 6; then
    go 61
    run c6a "$G" kimport --uuid "$H5" --op verify --verify-seed 71
    run c6b "$G" kimport --uuid "$H5" --op write --write-seed 72 --offset "$C6_OFF" --len "$C6_LEN"
    hold_start h6 c6c alloc --size 1M --fill 5
    run c6d "$G" kimport --uuid "$(uuid_of h6)" --op write --write-seed 6 --offset 0 --len 65536 --attach
    run c6e "$G" kimport --size 2M --fill 9 --op verify --attach
    go 62
    hold_quit h6 c6q
fi

# 7. close-on-exec
if want 7; then
    go 71
    run c7a "$G" alloc --size 4096
    run c7b "$G" alloc --size 4096 --no-cloexec
    run c7c "$G" import --uuid "$H5" --sync none
    run c7d "$G" import --uuid "$H5" --sync none --no-cloexec
fi

# 9a. module unload refused while a buffer is open, works once closed, reload works
if want 9; then
    go 91
    # the holder keeps only the dma-buf open: its syncs use DMA_BUF_IOCTL_SYNC, and it
    # closes /dev/virtio-dmabuf0
    hold_start h9 c9a alloc --size 65536 --fill 3 --sync dmabuf
    hcmd h9 c9b closedev
    say "c9c.refcnt=$(cat /sys/module/virtio_dmabuf/refcnt)"
    run c9d rmmod virtio_dmabuf
    say "c9d.devnode=$(devnode)"
    go 92
    hcmd h9 c9e verify 3
    hold_quit h9 c9f
    run c9g rmmod virtio_dmabuf
    say "c9g.devnode=$(devnode)"
    say "c9g.loaded=$(grep -c '^virtio_dmabuf ' /proc/modules)"
    run c9h insmod "$KO/virtio_dmabuf.ko"
    wait_devnode
    say "c9h.devnode=$(devnode)"
    hold_start h9b c9i alloc --size 12288 --fill 8
    go 93
    hold_quit h9b c9q
fi

finish
