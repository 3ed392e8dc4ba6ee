#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
# Guest script (busybox sh): single-VM tests of virtio_dmabuf.ko. Needs the daemon on the
# VM's socket, /lib/modules/extra/{virtio_dmabuf,dmabuf_kimport}.ko, /bin/dmabuf-guest and
# /sbin/load-vgem (qemu-scripts/mkinitramfs.sh), and --mem 2G for the 1 GiB buffer.
G=dmabuf-guest
fails=0
t() { echo "=== TEST $*"; "$@"; rc=$?; echo "=== RC $rc"; [ $rc = 0 ] || fails=$((fails + 1)); }
check() { echo "=== CHECK $1"; shift; if "$@"; then echo "=== RC 0"; else echo "=== RC 1"; fails=$((fails + 1)); fi; }

insmod /lib/modules/extra/virtio_dmabuf.ko || exit 1
insmod /lib/modules/extra/dmabuf_kimport.ko || exit 1
t $G devinfo

# an own buffer held in the background, driven through a fifo
mkfifo /tmp/f
$G alloc --size 3M --fill 11 --hold -1 < /tmp/f > /tmp/a.out 2>&1 &
exec 3>/tmp/f
sleep 2
cat /tmp/a.out
U=$(sed -n 's/^uuid=//p' /tmp/a.out)
t $G import --uuid "$U" --verify-seed 11 --twice
t $G import --uuid "$U" --verify-seed 11 --offset 4095 --len 70000 --sync ranged
t $G import --uuid "$U" --verify-seed 11 --sync dmabuf
t $G info --uuid "$U"
t $G kimport --uuid "$U" --op verify --verify-seed 11 --attach
t $G kimport --uuid "$U" --op write --write-seed 12 --offset 8192 --len 100000 --attach
t $G kimport --size 2M --fill 9 --op verify --attach
echo "verify 12 8192 100000" >&3
sleep 2
tail -n 4 /tmp/a.out
check "verify through the holder" grep -q 'verify=ok' /tmp/a.out
check "rmmod refused while a buffer is open" sh -c '! rmmod virtio_dmabuf'
echo quit >&3
exec 3>&-
sleep 1

t $G alloc --size 5000 --fill 3 --no-cloexec
t $G setname --size 64K --name hello-dmabuf
t $G vgem --size 1M --fill 4 --expect-errno ENOENT
/sbin/load-vgem && t $G vgem --size 1M --fill 4
t $G raw-sync --size 64K --op end,r,0,4096 --expect-errno EPERM
t $G raw-sync --size 64K --op start,r,0,70000 --expect-errno EINVAL
t $G raw-sync --size 64K --op start,rw,0,4096 --op start,r,0,4096 --op end,r,0,4096 --op end,rw,0,4096
t $G import --uuid 00000000-0000-4000-8000-000000000000 --expect-errno ENOENT
t $G alloc --size 0 --expect-errno EINVAL
t $G alloc --size 64M --fill 1
t $G bench-read --size 16M --rounds 5 --sync dmabuf

# long segment lists: page-by-page allocation (test knobs in debugfs)
K=/sys/kernel/debug/virtio-dmabuf
grep -q " /sys/kernel/debug debugfs " /proc/mounts || mount -t debugfs none /sys/kernel/debug
check "debugfs test knobs present" test -f $K/alloc_max_order -a -f $K/scatter
echo 0 > $K/alloc_max_order
t $G alloc --size 1G
t $G kimport --size 128M --fill 3 --op verify --attach
# one segment per page, segment lists in scattered vmalloc pages: 4096 segments in
# 16 sg entries, 16384 and 131072 segments copied into contiguous memory
echo 'module virtio_dmabuf +p' > /sys/kernel/debug/dynamic_debug/control
echo 1 > $K/scatter
t $G kimport --size 16M --fill 4 --op verify --attach
t $G kimport --size 64M --fill 5 --op verify --attach
t $G alloc --size 512M
echo 0 > $K/scatter
dmesg | grep 'request data'
echo 9 > $K/alloc_max_order

# device removal while a buffer is open
$G alloc --size 1M --fill 2 --hold -1 < /tmp/f > /tmp/b.out 2>&1 &
exec 3>/tmp/f
sleep 2
D=$(basename "$(readlink /sys/class/misc/virtio-dmabuf0/device)")
echo "$D" > /sys/bus/virtio/drivers/virtio_dmabuf/unbind
check "device node gone after unbind" sh -c '! ls /dev/virtio-dmabuf0 2>/dev/null'
echo info >&3
sleep 1
echo checksum >&3
sleep 1
exec 3>&-
cat /tmp/b.out
check "INFO reports DEVICE_GONE" grep -q 'info_state=0x2' /tmp/b.out
check "sync after removal fails with ENODEV" grep -q 'status=ENODEV' /tmp/b.out
echo "$D" > /sys/bus/virtio/drivers/virtio_dmabuf/bind
t $G alloc --size 1M --fill 2

rmmod dmabuf_kimport
check "rmmod after close" rmmod virtio_dmabuf
dmesg | grep -i -E 'virtio_dmabuf|virtio-dmabuf|BUG|WARNING|Oops' | tail -n 20
echo "FAILS=$fails"
[ "$fails" = 0 ]
