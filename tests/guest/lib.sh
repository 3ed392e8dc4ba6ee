# SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
#
# Helpers for the guest scripts of tests/vm-suite.sh (busybox sh in the test initramfs).
# The host concatenates: its variables (MBOX=, CASES=, ...), this file, one guest script.
#
# Protocol with the host:
#  * results go to the console as lines "@@ <tag>.<key>=<value>"; tags are unique per run,
#    so the host can wait for one exact key;
#  * the guest pauses with "go N": it polls the host's mailbox buffer $MBOX (import, read
#    sync, look at byte 0, 100 ms apart) until the host wrote N there; the bytes after it,
#    up to a NUL, are a payload (e.g. a UUID) the guest finds in $PAYLOAD.
#  * checks the guest can decide are TAP lines (kselftest style), numbered per case:
#    "@@ tap.<case>=1..N" (the plan, from tap_plan), "@@ tap.<case>=ok <n> - [<tag>] <what>"
#    or "not ok <n> - [<tag>] <what>: <got> vs <want>"; dmabuf-guest prints "ok - ..." /
#    "not ok - ..." for its own checks and tag() numbers them; tap_done prints
#    "@@ tapdone.<case>=<n>" when the case's guest part is over. The host counts them.
# Every wait here is bounded.
# shellcheck disable=SC2034  # KO, PAYLOAD: used by the scripts appended after this file

G=dmabuf-guest
KO=/lib/modules/extra
GO_WAIT_MS=${GO_WAIT_MS:-240000}

say() { echo "@@ $*"; }
want() { case " $CASES " in *" $1 "*) return 0 ;; esac; return 1; }

# ------------------------------------------------------------------ TAP

TAP_CASE=none

# tap_plan CASE N: the checks of CASE that follow; N of them are planned
tap_plan() {
    TAP_CASE=$1
    echo 0 > "/tmp/tap.$1.n"
    echo "@@ tap.$1=1..$2"
}

# tap_line "ok"|"not ok" TEXT: the next numbered TAP line of the current case
tap_line() {
    _tn=$(( $(cat "/tmp/tap.$TAP_CASE.n" 2>/dev/null || echo 0) + 1 ))
    echo "$_tn" > "/tmp/tap.$TAP_CASE.n"
    echo "@@ tap.$TAP_CASE=$1 $_tn - $2"
}

# tap_resume CASE: go on numbering the checks of CASE (a case whose guest part is split by
# another case's, e.g. 14 around 9b)
tap_resume() { TAP_CASE=$1; }

# tap_done CASE: the guest's part of CASE is over (the host counts its lines then)
tap_done() { say "tapdone.$1=$(cat "/tmp/tap.$1.n" 2>/dev/null || echo 0)"; }

# check WHAT GOT WANT: one check of the script itself (strings)
check() {
    if [ "$2" = "$3" ]; then tap_line ok "$1"; else tap_line "not ok" "$1: $2 vs $3"; fi
}

# check_range WHAT VALUE MIN MAX: MIN <= VALUE <= MAX (integers)
check_range() {
    case "$2" in
        ''|*[!0-9-]*) tap_line "not ok" "$1: '$2' vs $3..$4"; return ;;
    esac
    if [ "$2" -ge "$3" ] && [ "$2" -le "$4" ]; then tap_line ok "$1 ($2)"; else tap_line "not ok" "$1: $2 vs $3..$4"; fi
}

# tap_skip WHAT WHY: a check left out here (it counts as ok)
tap_skip() { tap_line ok "$1 # SKIP $2"; }

# Prefix every line of stdin with "@@ TAG."; lines that are not key=value become out=LINE;
# dmabuf-guest's TAP lines become numbered lines of the current case.
tag() {
    while IFS= read -r _l; do
        case "$_l" in
            "ok - "*) tap_line ok "[$1] ${_l#ok - }" ;;
            "not ok - "*) tap_line "not ok" "[$1] ${_l#not ok - }" ;;
            [A-Za-z_]*=*) echo "@@ $1.$_l" ;;
            *) echo "@@ $1.out=$_l" ;;
        esac
    done
}

# run TAG CMD...: run CMD, its output tagged line by line as it comes, then TAG.rc=<status>.
run() {
    _t=$1
    shift
    { "$@" 2>&1; echo "rc=$?"; } | tag "$_t"
}

# expect_rc TAG 0|fail CMD...: run CMD (its output tagged), check that it exits 0 / fails
expect_rc() {
    _t=$1 _w=$2
    shift 2
    "$@" > "/tmp/rc.$_t" 2>&1
    _rc=$?
    tag "$_t" < "/tmp/rc.$_t"
    say "$_t.rc=$_rc"
    if [ "$_w" = fail ]; then
        if [ "$_rc" != 0 ]; then tap_line ok "[$_t] $* fails (exit $_rc)"; else tap_line "not ok" "[$_t] $* fails: exit 0 vs non-zero"; fi
    else
        check "[$_t] $* exits $_w" "$_rc" "$_w"
    fi
}

# go N: wait for the host's go for step N (sets PAYLOAD); a missing go ends the script.
# The mailbox is always imported as a copy (--no-map): a mapped one would count in the
# SHM_INFO that cases 13 and 14 check.
go() {
    if ! _o=$("$G" wait-byte --no-map --uuid "$MBOX" --value "$1" --wait-ms "$GO_WAIT_MS" 2>&1); then
        echo "$_o" | tag "go$1"
        say "go$1.error=no go from the host"
        exit 1
    fi
    PAYLOAD=$(echo "$_o" | sed -n 's/^payload=//p')
    say "go$1.ok=1"
}

# alive PID: the process exists and is not a zombie
alive() {
    _s=$(sed 's/.*) //' "/proc/$1/stat" 2>/dev/null | cut -c1)
    [ -n "$_s" ] && [ "$_s" != Z ]
}

# hold_start NAME TAG DMABUF-GUEST-ARGS...: keep a buffer open in the background with
# --hold -1; commands go in through /tmp/NAME.in (kept open by a sleeping writer). Prints the
# holder's lines tagged TAG once it printed ready=1 (or died), then TAG.ready=1|0 and a check.
hold_start() {
    _n=$1 _t=$2
    shift 2
    rm -f "/tmp/$_n.in" "/tmp/$_n.out"
    mkfifo "/tmp/$_n.in"
    sleep 100000 > "/tmp/$_n.in" &
    echo $! > "/tmp/$_n.keep"
    "$G" "$@" --hold -1 < "/tmp/$_n.in" > "/tmp/$_n.out" 2>&1 &
    echo $! > "/tmp/$_n.pid"
    _i=0
    while ! grep -q '^ready=1' "/tmp/$_n.out" && alive "$(cat "/tmp/$_n.pid")" && [ $_i -lt 600 ]; do
        sleep 0.1
        _i=$((_i + 1))
    done
    grep -v '^ready=' "/tmp/$_n.out" | tag "$_t"
    if grep -q '^ready=1' "/tmp/$_n.out"; then
        say "$_t.ready=1"
        tap_line ok "[$_t] holder ($1) ready"
    else
        say "$_t.ready=0"
        tap_line "not ok" "[$_t] holder ($1) ready: died or no ready=1 within 60 s vs ready"
    fi
}

# uuid_of NAME: the UUID a holder printed
uuid_of() { sed -n 's/^uuid=//p' "/tmp/$1.out" | head -n 1; }

# hcmd NAME TAG COMMAND...: send one command to a holder, wait (at most 60 s) for its
# done= line, print the new lines tagged TAG (its TAP line among them), then
# TAG.end=done|died|timeout (not done: a "not ok" line).
hcmd() {
    _n=$1 _t=$2
    shift 2
    _c=$(grep -c '^done=' "/tmp/$_n.out")
    _l=$(wc -l < "/tmp/$_n.out")
    _p=$(cat "/tmp/$_n.pid")
    _e="done"
    if alive "$_p"; then
        timeout 5 sh -c "echo '$*' > /tmp/$_n.in" || _e=timeout
    else
        _e=died
    fi
    _i=0
    while [ "$_e" = "done" ] && [ "$(grep -c '^done=' "/tmp/$_n.out")" -le "$_c" ]; do
        if ! alive "$_p"; then
            sleep 0.2
            [ "$(grep -c '^done=' "/tmp/$_n.out")" -le "$_c" ] && _e=died
            break
        fi
        _i=$((_i + 1))
        [ $_i -ge 600 ] && { _e=timeout; break; }
        sleep 0.1
    done
    tail -n +$((_l + 1)) "/tmp/$_n.out" | tag "$_t"
    say "$_t.end=$_e"
    [ "$_e" = done ] || tap_line "not ok" "[$_t] holder command '$*': $_e vs done"
}

# hold_quit NAME TAG: tell a holder to quit, wait (at most 10 s) until it exited, stop the
# fifo's writer; prints TAG.closed=1 (or 0 if it had to be killed), a check.
hold_quit() {
    _n=$1 _t=$2
    _p=$(cat "/tmp/$_n.pid")
    _l=$(wc -l < "/tmp/$_n.out")
    alive "$_p" && timeout 5 sh -c "echo quit > /tmp/$_n.in"
    _i=0
    while alive "$_p" && [ $_i -lt 100 ]; do sleep 0.1; _i=$((_i + 1)); done
    _ok=1
    if alive "$_p"; then kill -9 "$_p" 2>/dev/null; _ok=0; fi
    kill "$(cat "/tmp/$_n.keep")" 2>/dev/null
    wait "$_p" 2>/dev/null
    tail -n +$((_l + 1)) "/tmp/$_n.out" | tag "$_t"
    say "$_t.closed=$_ok"
    check "[$_t] holder $_n quit when told" "$_ok" 1
}

# req_line N0: the driver's debug line about a request's segment list (dynamic debug) among
# the kernel log lines after line N0
req_line() {
    dmesg | tail -n +$(($1 + 1)) | grep -m1 -E ': [0-9]+ bytes of request data (in|need) [0-9]+ sg entries'
}

# devnode: 1 if /dev/virtio-dmabuf0 exists
devnode() { if [ -e /dev/virtio-dmabuf0 ]; then echo 1; else echo 0; fi; }

# wait_devnode: wait (at most 5 s) for /dev/virtio-dmabuf0
wait_devnode() {
    _i=0
    while [ ! -e /dev/virtio-dmabuf0 ] && [ $_i -lt 50 ]; do sleep 0.1; _i=$((_i + 1)); done
}

# kernel log lines that mean trouble (printed at the end of every guest script)
dmesg_trouble() {
    dmesg | grep -E 'BUG|WARNING|Oops|Call Trace|general protection|refcount_t'
}
# lines of the dma-buf core's own checks (CONFIG_DMABUF_DEBUG, on in Debian's 7.3: a splat
# from drivers/dma-buf/, the DMA API debug checks, or a fault in an importer that touched
# the mangled page links of an sg_table)
dmesg_dmabuf_debug() {
    dmesg | grep -E 'drivers/dma-buf/|DMA-API|dma_buf|dma-buf.*(WARN|mangle)'
}

# finish: report the kernel log's health, then end the script
finish() {
    _n=$(dmesg_trouble | wc -l)
    dmesg_trouble | head -n 20 | tag end
    say "end.dmesg_trouble=$_n"
    _n=$(dmesg_dmabuf_debug | wc -l)
    dmesg_dmabuf_debug | head -n 20 | tag end
    say "end.dmabuf_debug=$_n"
    say "end.done=1"
    exit 0
}

# shm_expect TAG NR BYTES: SHM_INFO with the host's expectations (SHM_STATE, and with a region
# NR mapped imports holding BYTES; no fallback to a copy since probe): 5 checks
shm_expect() {
    run "$1" "$G" shm-info --expect-state "$SHM_STATE" --expect-nr-mapped "$2" \
        --expect-bytes-mapped "$3" --expect-fallbacks 0
}

# last_key NAME KEY: the last value of KEY a holder printed
last_key() { sed -n "s/^$2=//p" "/tmp/$1.out" | tail -n 1; }

# Kernel command line parameters the kernel did not know (it says so and passes them to
# init): run-vm's, no_timer_check among them, must all be known. Printed at every boot.
_u=$(dmesg | sed -n 's/.*Unknown kernel command line parameters "\(.*\)", will be passed to user space.*/\1/p' | head -n 1)
say "boot.unknown_params=${_u:-none}"
say "boot.cmdline=$(cat /proc/cmdline)"
