# SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
#
# Host-side helpers of tests/vm-suite.sh (sourced): messages, time, dmabufctl, background
# commands. Uses DMABUFCTL and KLOG of the suite.

say() { printf 'vm-suite: %s\n' "$*"; }
die() { printf 'vm-suite: error: %s\n' "$*" >&2; exit 1; }

# is_qemu PID: PID runs qemu-system-x86_64 (directly, or the stock QEMU through the sid
# root's dynamic loader, whose comm is the loader's: look at the command line)
is_qemu() {
    [[ "$1" =~ ^[0-9]+$ ]] && tr '\0' ' ' 2>/dev/null < "/proc/$1/cmdline" | grep -q 'qemu-system-'
}

# ------------------------------------------------------------------ small tools

# Timestamp each line of stdin with its arrival time (epoch seconds, µs): "TS|line".
stamp() {
    local l=""
    while IFS= read -r l || [[ -n "$l" ]]; do
        printf '%s|%s\n' "$EPOCHREALTIME" "${l//$'\r'/}"
    done
}
us() { local x="${1/./}"; echo $((10#$x)); }
now_us() { us "$EPOCHREALTIME"; }
# tdiff_ms T1 T2: T2 - T1 in ms, or NA
tdiff_ms() {
    [[ "$1" =~ ^[0-9]+\.[0-9]{6}$ && "$2" =~ ^[0-9]+\.[0-9]{6}$ ]] || { echo NA; return; }
    echo $(( ($(us "$2") - $(us "$1")) / 1000 ))
}
# int VALUE: the integer part, or -1 if it is not a number
int() { local v="${1%%.*}"; [[ "$v" =~ ^-?[0-9]+$ ]] && echo "$v" || echo -1; }

ctl() { timeout -k 5 90 "$DMABUFCTL" "$@"; }
# share SIZE [SEED] [dmabufctl share options...]: a new host memfd buffer; prints its UUID
share() {
    local size=$1 seed=${2:-} o=""
    shift 2 || shift $#
    if [[ -n "$seed" ]]; then
        o="$(ctl share --memfd-size "$size" --fill-seed "$seed" "$@")"
    else
        o="$(ctl share --memfd-size "$size" "$@")"
    fi
    sed -n 's/^uuid=//p' <<<"$o"
}
# crc UUID OFFSET LEN [VIA]: fenced host read of the range, its FNV-1a 64 (or ERR)
crc() {
    local o=""
    o="$(ctl read "$1" --offset "$2" --len "$3" --crc --via "${4:-socket}" 2>/dev/null)" || { echo ERR; return 0; }
    sed -n 's/^fnv1a64=\([0-9a-f]*\).*/\1/p' <<<"$o"
}
# ref SEED SIZE OFFSET LEN: FNV-1a 64 of the host's test pattern over the range (computed by
# dmabufctl's pattern code in a scratch memfd: an independent reference for the guest's C code)
ref() {
    local u="" c=""
    u="$(share "$2" "$1")"
    [[ -n "$u" ]] || { echo ERR; return 0; }
    c="$(crc "$u" "$3" "$4")"
    ctl revoke "$u" >/dev/null 2>&1 || true
    echo "$c"
}
# info_field UUID FIELD: one key of dmabufctl info, or GONE
info_field() {
    local o=""
    o="$(ctl info "$1" 2>/dev/null)" || { echo GONE; return 0; }
    sed -n "s/^$2=//p" <<<"$o"
}
# importer_kind UUID VM: how VM imported the buffer as dmabufctl info says (spec 13.6:
# "importer=<vm> mapped|copied copied_bytes=<n>" lines): mapped, copied, none (not listed),
# GONE, or NA when this dmabufctl prints no importer lines at all
importer_kind() {
    local o=""
    o="$(ctl info "$1" 2>/dev/null)" || { echo GONE; return 0; }
    grep -q '^mapped_importers=\|^importer=' <<<"$o" || { echo NA; return 0; }
    o="$(sed -n "s/^importer=$2 \([a-z]*\).*/\1/p" <<<"$o" | head -n1)"
    echo "${o:-none}"
}
# copied_of UUID: the bytes the daemon copied between this buffer's origin and the VMs'
# copies (spec 13.6: "copied_bytes=" of dmabufctl info; host clients' READ/WRITE not
# counted), or NA when the daemon does not report them per buffer
copied_of() {
    local o=""
    o="$(ctl info "$1" 2>/dev/null)" || { echo GONE; return 0; }
    o="$(sed -n 's/^copied_bytes=//p' <<<"$o")"
    echo "${o:-NA}"
}
in_list() { local l; l="$(ctl list 2>/dev/null || true)"; grep -q "^$1 " <<<"$l"; }
owned_by() { { ctl list 2>/dev/null || true; } | awk -v n="$1" '$3 == n' | wc -l; }

# bg NAME CMD...: run CMD (a program, bounded by 120 s) in the background; its output is timestamped into NAME.log, and
# "exit=<status>" is its last line.
bg() {
    local n=$1
    shift
    local pf="$KLOG/$n.pid"
    BG_PIDFILES+=("$pf")
    { set +e; timeout -k 5 120 "$@" & echo $! > "$pf"; wait $!; echo "exit=$?"; } 2>&1 | stamp > "$KLOG/$n.log" &
}
bg_log() { echo "$KLOG/$1.log"; }

