# SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
#
# Guest side of case 16 (driver-config, tests/cases/config.sh): eight virtio dma-buf devices,
# each served by guest-driver/tests/fakedev/fake-vhost-user.py with a configuration of its own.
# Decided here (TAP): the driver refuses the six configurations it cannot work with and binds
# the two it can; the REVOKED notice is rate limited; the driver's workers run on a workqueue
# of the device's own. The host prepends REVOKES (how many imports it revokes) and lib.sh.

# The fake device has no shared memory region: its imports are copies; say so (NO_MAP), as
# cases 1-12 do, so the boot's copy-path check holds.
export DMABUF_GUEST_NO_MAP=1

insmod "$KO/virtio_dmabuf.ko" || { say "boot.error=insmod virtio_dmabuf.ko failed"; exit 1; }
say "boot.kernel=$(uname -r)"
say "boot.ready=1"

# uuid_of XX: the UUID of the fake device's buffer XX (the byte XX sixteen times)
uuid_of() { echo "$1$1$1$1-$1$1-$1$1-$1$1-$1$1$1$1$1$1"; }

tap_plan 16 $((11 + 3 * REVOKES))
_i=0
while [ "$(ls /dev | grep -c '^virtio-dmabuf')" -lt 2 ] && [ $_i -lt 50 ]; do sleep 0.1; _i=$((_i + 1)); done
sleep 1   # the refused devices' probes end too
dmesg | grep 'refusing the device' | tag c16r
check "[c16a] devices bound (sync_timeout_ms 5000 and 3600000)" "$(ls /dev | grep -c '^virtio-dmabuf')" 2
check "[c16b] devices refused" "$(dmesg | grep -c 'refusing the device')" 6
for _w in 'sync_timeout_ms 4294967295 outside' 'sync_timeout_ms 0 outside' \
        'sync_timeout_ms 3600001 outside' 'max_segments 0 max_buffers 4096 max_bytes 8589934592' \
        'max_segments 262144 max_buffers 0 max_bytes 8589934592' \
        'max_segments 262144 max_buffers 4096 max_bytes 0)'; do
    check "[c16c] refused: $_w" "$(dmesg | grep 'refusing the device' | grep -c -F "$_w")" 1
done

# The device with the buffers: the one whose DEVICE_INFO says sync_timeout_ms=5000.
DEV=""
for _d in /dev/virtio-dmabuf*; do
    "$G" devinfo --dev "$_d" 2>/dev/null | grep -q '^sync_timeout_ms=5000$' && DEV=$_d
done
check "[c16d] the device with the buffers found" "${DEV:+found}" found
# Its workers run on a workqueue of its own, not on the system workqueue.
check "[c16e] workqueue of ${DEV#/dev/}" "$(ls -d "/sys/devices/virtual/workqueue/${DEV#/dev/}" 2>/dev/null)" \
    "/sys/devices/virtual/workqueue/${DEV#/dev/}"

# REVOKES imports held open, then each revoked by the device: the notice is rate limited.
_n0=$(dmesg | grep -c ' revoked$')
# the fake device's buffers 01..REVOKES, as the two hex digits of their UUIDs
BUFS=$(_k=1; while [ $_k -le "$REVOKES" ]; do printf '%02x ' "$_k"; _k=$((_k + 1)); done)
for _x in $BUFS; do
    hold_start "r$_x" "c16h$_x" import --dev "$DEV" --uuid "$(uuid_of "$_x")"
done
for _x in $BUFS; do
    "$G" import --dev "$DEV" --uuid "ffffffff-ffff-ffff-ffff-ffffffffff$_x" --expect-errno ENOENT \
        > /dev/null 2>&1
done
# every import was revoked (each holder sees its INFO state REVOKED within 5 s) ...
for _x in $BUFS; do
    hcmd "r$_x" "c16i$_x" info 0x1 5000
done
# ... but at most a burst of notices reached the log (printk's ratelimit: 10 in 5 s)
_n=$(( $(dmesg | grep -c ' revoked$') - _n0 ))
say "c16.revoked_lines=$_n"
check_range "[c16g] REVOKED notices in the kernel log for $REVOKES revocations" "$_n" 1 10
for _x in $BUFS; do
    hold_quit "r$_x" "c16q$_x"
done
tap_done 16
finish
