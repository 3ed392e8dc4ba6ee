#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
# Guest script for VM B (the importer) of the cross-VM test; run.sh prepends
# "U=... R=... H=... T0=..." taken from VM A.
G=dmabuf-guest
insmod /lib/modules/extra/virtio_dmabuf.ko || exit 1
fails=0
t() { echo "=== TEST $*"; "$@"; rc=$?; echo "=== RC $rc"; [ $rc = 0 ] || fails=$((fails + 1)); }
at() { while [ $(($(date +%s) - T0)) -lt "$1" ]; do sleep 0.2; done; echo "--- B t=$1"; }
echo "B starts at t=$(($(date +%s) - T0))"
at 15
t $G import --uuid "$U" --verify-seed 5 --sync dmabuf
t $G import --uuid "$U" --write-seed 6 --offset 4096 --len 8192
t $G import --uuid "$U" --verify-seed 6 --offset 4096 --len 8192
t $G import --uuid "$U" --verify-seed 5 --offset 12288 --len 4096 --twice
t $G import --uuid "$R" --verify-seed 7
t $G raw-sync --uuid "$R" --op start,w,0,4096 --expect-errno EACCES
t $G import --uuid "$R" --write-seed 1 --expect-errno EACCES
t $G import --uuid "$H" --expect-errno ENOENT
mkfifo /tmp/fb
$G import --uuid "$U" --hold 200 < /tmp/fb > /tmp/bu.out 2>&1 &
exec 3>/tmp/fb
at 34	# A holds write access: a 2 s START times out
t $G import --uuid "$U" --timeout-ms 2000 --print-crc --expect-errno ETIMEDOUT
at 37	# a START whose process is killed while it waits
$G raw-sync --uuid "$U" --op start,r,0,4096,15000 > /tmp/abandon.out 2>&1 &
P=$!
sleep 2
kill -9 $P
at 40	# granted when A ends its access at 46
t $G import --uuid "$U" --timeout-ms 15000 --verify-seed 5 --offset 16384 --len 4096
at 60	# A released U at 55
echo info >&3
sleep 1
echo checksum >&3
sleep 2
tail -n 12 /tmp/bu.out
grep -q 'info_state=0x1' /tmp/bu.out || { echo "no REVOKED state"; fails=$((fails + 1)); }
grep -q 'status=ENODEV' /tmp/bu.out || { echo "sync after revoke did not fail with ENODEV"; fails=$((fails + 1)); }
t $G import --uuid "$U" --expect-errno ENOENT
at 62	# a START waiting on A's write access to R ...
$G raw-sync --uuid "$R" --op start,r,0,4096,20000 > /tmp/pend.out 2>&1 &
at 65	# ... completes with ENODEV when the device is removed
D=$(basename "$(readlink /sys/class/misc/virtio-dmabuf0/device)")
echo "$D" > /sys/bus/virtio/drivers/virtio_dmabuf/unbind
sleep 2
cat /tmp/pend.out
grep -q 'op0_status=ENODEV' /tmp/pend.out || { echo "pending START not completed with ENODEV"; fails=$((fails + 1)); }
dmesg | grep -i -E 'virtio_dmabuf|virtio-dmabuf|BUG|WARNING|Oops' | tail -n 10
echo "FAILS=$fails"
[ "$fails" = 0 ]
