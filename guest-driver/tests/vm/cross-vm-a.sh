#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
# Guest script for VM A (the owner) of the cross-VM test; see run.sh. Prints
# "XVM U=... R=... H=... T0=..." for the host, then acts at fixed times after T0.
G=dmabuf-guest
insmod /lib/modules/extra/virtio_dmabuf.ko || exit 1
at() { while [ $(($(date +%s) - T0)) -lt "$1" ]; do sleep 0.2; done; echo "--- A t=$1"; }
mkfifo /tmp/f1
$G alloc --size 1M --fill 5 --hold 200 < /tmp/f1 > /tmp/u.out 2>&1 &
exec 3>/tmp/f1
$G alloc --size 64K --fill 7 --read-only --hold 200 < /dev/null > /tmp/r.out 2>&1 &
$G alloc --size 64K --fill 8 --host-only --hold 200 < /dev/null > /tmp/h.out 2>&1 &
sleep 2
U=$(sed -n 's/^uuid=//p' /tmp/u.out)
R=$(sed -n 's/^uuid=//p' /tmp/r.out)
H=$(sed -n 's/^uuid=//p' /tmp/h.out)
T0=$(date +%s)
echo "XVM U=$U R=$R H=$H T0=$T0"
fails=0
at 30	# B wrote seed 6 over 4096..12287 at t=15
echo "verify 6 4096 8192" >&3
sleep 1
tail -n 5 /tmp/u.out
grep -q 'verify=ok' /tmp/u.out || fails=$((fails + 1))
at 32	# hold write access 32..46: B's reads wait or time out
$G raw-sync --uuid "$U" --op start,w,0,1048576 --op sleep,14000 --op end,w,0,1048576 || fails=$((fails + 1))
at 50	# B's abandoned START was granted at 46: its driver must have ended it
$G raw-sync --uuid "$U" --op start,w,0,4096,2000 --op end,w,0,4096 || fails=$((fails + 1))
at 55	# release U: B gets a REVOKED event
echo quit >&3
exec 3>&-
at 58	# hold write access on R: B's START waits, B's device is removed at 65
$G raw-sync --uuid "$R" --op start,w,0,65536 --op sleep,12000 --op end,w,0,65536 || fails=$((fails + 1))
at 75
echo "FAILS=$fails"
[ "$fails" = 0 ]
