# SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
#
# Guest side of the daemon-restart boot of tests/vm-suite.sh (case 10). QEMU runs with
# reconnect-ms on the vhost-user chardev; the host kills the daemon with SIGKILL while this
# guest holds buffers and has a START waiting, and starts it again on the same sockets. The
# host prepends MBOX, CASES, R_SIZE, HB (a host buffer, held by the guest), HW (a host buffer
# the host holds for writing while the guest's START waits on it), R10A (1: run 10a; empty
# when the QEMU cannot reconnect and only 10b runs, without a restart), RTO
# (request_timeout_ms for case 10b, empty to leave 10b out) and lib.sh.
#
# Each case's checks are TAP lines (tap_plan .. tap_done).
#
# The host's mailbox $MBOX dies with the first daemon, so after the restart "go_own N" is the
# "go": its mailbox is a new buffer of this guest, whose UUID it prints for the host.

# Every import of case 10 is a copy: DMABUF_GUEST_NO_MAP=1 makes dmabuf-guest pass
# VIRTIO_DMABUF_IMPORT_NO_MAP, so these cases keep testing the copy path (SYNC moves the
# bytes) also where the device could map in place. The host checks that no
# import of theirs was mapped (copy_path in tests/lib/vm.sh).
export DMABUF_GUEST_NO_MAP=1

insmod "$KO/virtio_dmabuf.ko" || { say "boot.error=insmod virtio_dmabuf.ko failed"; exit 1; }
say "boot.kernel=$(uname -r)"
say "boot.ready=1"

# go_own N: wait for step N in a new 4 KiB buffer of this guest ("@@ goN.mbox=<uuid>" tells
# the host where to write it); sets PAYLOAD. Its CREATE waits while the device has no
# backend, so "goN.mbox" also says when the guest's requests are served again.
go_own() {
    rm -f /tmp/go.out
    "$G" wait-byte --size 4096 --value "$1" --wait-ms "$GO_WAIT_MS" > /tmp/go.out 2>&1 &
    _p=$!
    _i=0
    while ! grep -q '^uuid=' /tmp/go.out && alive $_p && [ $_i -lt 2400 ]; do
        sleep 0.05
        _i=$((_i + 1))
    done
    say "go$1.mbox=$(sed -n 's/^uuid=//p' /tmp/go.out | head -n 1)"
    wait $_p
    _rc=$?
    if [ $_rc -ne 0 ]; then
        tag "go$1" < /tmp/go.out
        say "go$1.error=no go from the host (rc $_rc)"
        exit 1
    fi
    PAYLOAD=$(sed -n 's/^payload=//p' /tmp/go.out)
    say "go$1.ok=1"
}

# 10a. buffers before the restart: one of this guest, one imported from the host, and a START
#      that waits (the host holds HW for writing) while the daemon is killed
if [ -n "$R10A" ]; then
    tap_plan 10a 13
    go 101
    hold_start a1 r1a alloc --size "$R_SIZE" --fill 101
    hold_start i1 r1b import --uuid "$HB" --verify-seed 102
    go 102
    # the START waits in the device; the host kills the daemon once it sees r2.op0_issue;
    # re-delivered by QEMU to the new daemon, it fails with NOT_FOUND
    run r2 "$G" raw-sync --uuid "$HW" --op start,r,0,4096,60000 --expect-op 0,ENOENT &
    _rs=$!
    _i=0
    while alive $_rs && [ $_i -lt 1800 ]; do sleep 0.1; _i=$((_i + 1)); done
    _hung=0
    if alive $_rs; then
        say "r2.hung=1"
        _hung=1
        kill -9 $_rs
    fi
    wait $_rs
    check "the START in flight during the restart returned (not hung for 180 s)" "$_hung" 0
    say "r2.done=1"

    # After the restart: a new mailbox (its CREATE is served by the new daemon)
    go_own 103   # payload: HN, a host buffer shared with the new daemon
    HN=$PAYLOAD
    hcmd a1 r3a fails ENOENT verify 101
    hcmd i1 r3b fails ENOENT verify 102
    run r3c "$G" import --uuid "$HB" --verify-seed 102 --expect-errno ENOENT
    hold_start n1 r3d alloc --size "$R_SIZE" --fill 103
    run r3e "$G" import --uuid "$HN" --verify-seed 104 --write-seed 105
    go_own 104
    hold_quit n1 r4n
    hold_quit a1 r4a
    hold_quit i1 r4i
    tap_done 10a
fi

# 10b. (RTO set: the module has request_timeout_ms) reload with request_timeout_ms=$RTO;
#      allocate until a CREATE fails: the host stops the daemon (SIGSTOP) once it sees
#      r12.looping, so the first CREATE after that times out; then wait for SIGCONT
if [ -n "$RTO" ]; then
    tap_plan 10b 7
    go_own 110
    expect_rc r10 0 rmmod virtio_dmabuf
    expect_rc r11 0 insmod "$KO/virtio_dmabuf.ko" "request_timeout_ms=$RTO"
    wait_devnode
    _v=$(cat /sys/module/virtio_dmabuf/parameters/request_timeout_ms)
    say "r11.param=$_v"
    check "module parameter request_timeout_ms" "$_v" "$RTO"
    # uptime in ms (10 ms resolution)
    up_ms() { _u=$(cut -d' ' -f1 /proc/uptime | tr -d .); echo $((_u * 10)); }
    say "r12.looping=1"
    _n=0
    _rc=0
    while [ $_n -lt 2000 ]; do
        _t0=$(up_ms)
        "$G" alloc --size 8192 > /tmp/ta.out 2>&1
        _rc=$?
        _t1=$(up_ms)
        [ $_rc -ne 0 ] && break
        _n=$((_n + 1))
    done
    # the failing CREATE's own "not ok" line: expected here, checked below
    grep -v -e '^ok ' -e '^not ok ' /tmp/ta.out | tag r12
    say "r12.allocs_before=$_n"
    say "r12.ms=$((_t1 - _t0))"
    say "r12.rc=$_rc"
    check "CREATE with the daemon stopped" "$(sed -n 's/^status=//p' /tmp/ta.out)" ETIMEDOUT
    check_range "CREATE wait with the daemon stopped (ms, uptime clock)" "$((_t1 - _t0))" \
        $((RTO - 100)) $((RTO + 3000))
    # the default bound again, so the next CREATE waits for the host's SIGCONT
    echo 30000 > /sys/module/virtio_dmabuf/parameters/request_timeout_ms
    go_own 112
    hold_start t1 r13 alloc --size 12289 --fill 113
    go_own 113
    hold_quit t1 r13q
    tap_done 10b
fi

go_own 119
finish
