#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
#
# make demo: the daemon, one VM, and a buffer shared each way, in plain words.
set -euo pipefail
export LC_ALL=C

usage() {
    cat <<EOF
Usage: $(basename "$0") [--kernel 6.12|6.1|7.2|7.3] [--qemu stock|patched]

The virtio dma-buf device end to end, on a Debian bookworm machine:

  1. installs what is missing (Debian packages; Debian's stock QEMU 11.1 in a Debian
     sid root made with debootstrap, ~1 min the first time; Debian's guest kernel) and
     builds the daemon, dmabufctl and the guest driver (all build output goes to a log
     file);
  2. starts vhost-device-dmabuf and boots one VM with the guest driver;
  3. the host shares a memfd holding a text; the guest imports it by UUID, prints it,
     upper-cases it, appends a line, and the host prints the changed text;
  4. the guest allocates a buffer in its own memory and writes a text into it; the host
     reads it through the daemon and prints it;
  5. powers the VM off and stops the daemon (SIGTERM).

Needs root for the Debian packages (only when something is missing) and a Rust toolchain
>= 1.85 (cargo on PATH or in ~/.cargo/bin). Safe to run again: downloads and builds are
cached under \${DMABUF_CACHE:-~/.cache/virtio-dmabuf}; the logs of the last run (build,
daemon, VM console) stay in \${TMPDIR:-/tmp}/virtio-dmabuf-demo/.

Options:
  --kernel SERIES   guest kernel series (default 6.12)
  --qemu KIND       stock: Debian's QEMU 11.1 (the default); patched: QEMU 10.2.2 built
                    from Debian's source with the project's reconnect patch (~5 min once)
  --help            this text
EOF
}

SERIES=6.12
QKIND=stock
while (($#)); do
    case "$1" in
        -h|--help) usage; exit 0 ;;
        --qemu)
            (($# >= 2)) || { echo "demo: --qemu needs a value (see --help)" >&2; exit 2; }
            QKIND=$2; shift ;;
        --kernel)
            (($# >= 2)) || { echo "demo: --kernel needs a value (see --help)" >&2; exit 2; }
            SERIES=$2; shift ;;
        *) echo "demo: unknown argument: $1 (see --help)" >&2; exit 2 ;;
    esac
    shift
done
case "$SERIES" in 6.1|6.12|7.2|7.3) ;; *) echo "demo: --kernel must be 6.1, 6.12, 7.2 or 7.3" >&2; exit 2 ;; esac
case "$QKIND" in stock|patched) ;; *) echo "demo: --qemu must be stock or patched" >&2; exit 2 ;; esac

REPO="$(cd "$(dirname "$(readlink -f "$0")")/.." && pwd)"
WORK="${TMPDIR:-/tmp}/virtio-dmabuf-demo"
LOG="$WORK/build.log"
DPID=""
VPID=""

say() { printf '%s\n' "$*"; }
step() { printf '\n== %s\n' "$*"; }
host() { printf '[host]  %s\n' "$*"; }
quote() { sed 's/^/          | /'; }
die() {
    printf '\ndemo: error: %s\n' "$*" >&2
    [[ -f "$LOG" ]] && printf 'demo: build log: %s (last lines:)\n' "$LOG" >&2 && tail -n 15 "$LOG" | sed 's/^/  /' >&2
    exit 1
}

cleanup() {
    local i
    set +e
    if [[ -n "$VPID" ]] && kill -0 "$VPID" 2>/dev/null; then
        kill -TERM "$VPID" 2>/dev/null
        for ((i = 0; i < 50; i++)); do kill -0 "$VPID" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$VPID" 2>/dev/null
    fi
    if [[ -n "$DPID" ]] && kill -0 "$DPID" 2>/dev/null; then
        kill -TERM "$DPID" 2>/dev/null
        for ((i = 0; i < 50; i++)); do kill -0 "$DPID" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$DPID" 2>/dev/null
    fi
    exec 7<&- 2>/dev/null
}

# A previous run may still be going (or was killed): stop only the processes it recorded.
if [[ -d "$WORK" ]]; then
    for f in "$WORK/daemon.pid" "$WORK/qemu.pid"; do
        p="$(cat "$f" 2>/dev/null || true)"
        if [[ "$p" =~ ^[0-9]+$ ]] && tr '\0' ' ' 2>/dev/null < "/proc/$p/cmdline" | grep -q -e vhost-device-dmabuf -e qemu-system-; then
            kill -TERM "$p" 2>/dev/null || true
        fi
    done
    sleep 0.5
    rm -rf "$WORK"
fi
mkdir -p "$WORK"
: > "$LOG"
trap cleanup EXIT
trap 'say "demo: interrupted"; exit 130' INT TERM

say "virtio-dmabuf demo: a host process and a VM share dma-bufs through vhost-device-dmabuf"

# ------------------------------------------------------------------ 1. setup

step "1. setup (build output goes to $LOG)"

# Debian packages the build chain needs; the qemu-scripts install their own extras too.
PKGS=(build-essential pkg-config cpio busybox-static xz-utils zstd dwarves bc libelf-dev kmod
      gcc-12 make debootstrap ca-certificates)
[[ "$QKIND" == patched ]] && PKGS+=(ninja-build libglib2.0-dev libpixman-1-dev libfdt-dev flex bison
      python3-venv device-tree-compiler patch seabios qemu-system-data)
missing=()
for p in "${PKGS[@]}"; do
    [[ "$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)" == "install ok installed" ]] || missing+=("$p")
done
if ((${#missing[@]})); then
    [[ "$(id -u)" == 0 ]] || die "these Debian packages are missing and installing them needs root: ${missing[*]}"
    printf '        installing Debian packages: %s ... ' "${missing[*]}"
    { apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"; } \
        >>"$LOG" 2>&1 || die "apt-get install failed"
    say "done"
else
    say "        Debian packages: all present"
fi

# Rust >= 1.85: the toolchain on PATH or rustup's ~/.cargo/bin (non-login shells may not have
# it on PATH); else Debian's cargo-web/rustc-web (1.85 in bookworm, newer in
# bookworm-security; Debian's plain cargo is 1.63, too old).
cargo_ok() {
    local v
    v="$(cargo --version 2>/dev/null | sed -n 's/^cargo \([0-9]*\)\.\([0-9]*\).*/\1 \2/p')"
    [[ -n "$v" ]] && (( ${v% *} > 1 || ${v#* } >= 85 ))
}
if ! cargo_ok && [[ -x "$HOME/.cargo/bin/cargo" ]]; then
    export PATH="$HOME/.cargo/bin:$PATH"
fi
if ! cargo_ok; then
    [[ "$(id -u)" == 0 ]] || die "no Rust toolchain >= 1.85 (cargo): install one (rustup, or Debian's cargo-web as root)"
    printf '        installing Rust from Debian (cargo-web, rustc-web) ... '
    { apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends cargo-web; } >>"$LOG" 2>&1 \
        || die "apt-get install cargo-web failed"
    hash -r
    cargo_ok || die "cargo-web gave $(cargo --version 2>/dev/null || echo 'no cargo'); Rust >= 1.85 is needed"
    say "$(cargo --version)"
fi

printf '        building the daemon and dmabufctl (cargo build --release) ... '
(cd "$REPO" && cargo build --release -p vhost-device-dmabuf -p dmabuf-client) >>"$LOG" 2>&1 \
    || die "cargo build --release failed (Rust >= 1.85 needed; $(cargo --version 2>/dev/null))"
say "done"
DAEMON="$REPO/target/release/vhost-device-dmabuf"
CTL="$REPO/target/release/dmabufctl"

if [[ "$QKIND" == stock ]]; then
    printf "        Debian's QEMU 11.1 (a Debian sid root, made once, ~1 min) ... "
else
    printf '        QEMU 10.2.2 with the reconnect patch (built once, ~5 min) ... '
fi
QEMU_BIN="$("$REPO/qemu-scripts/ensure-qemu.sh" "--$QKIND" 2>>"$LOG" | tail -n1)" || die "ensure-qemu.sh failed"
export QEMU="$QEMU_BIN"
say "$("$QEMU_BIN" --version | head -n1 | sed 's/ emulator version//')"

printf '        Debian %s guest kernel ... ' "$SERIES"
kenv="$("$REPO/qemu-scripts/fetch-kernel.sh" "$SERIES" 2>>"$LOG")" || die "fetch-kernel.sh $SERIES failed"
KVER="$(sed -n 's/^KVER=//p' <<<"$kenv")"
say "$KVER"

printf '        guest driver and the guest tool for %s ... ' "$KVER"
make -C "$REPO/guest-driver" KERNEL="$SERIES" >>"$LOG" 2>&1 || die "building the guest driver failed"
make -C "$REPO/guest-driver" tools >>"$LOG" 2>&1 || die "building dmabuf-guest failed"
"$REPO/qemu-scripts/mkinitramfs.sh" --kernel "$SERIES" --out "$WORK/initrd.gz" \
    --ko "$REPO/guest-driver/build/$SERIES/virtio_dmabuf.ko" \
    --bin "$REPO/guest-driver/build/tools/dmabuf-guest" >>"$LOG" 2>&1 || die "mkinitramfs.sh failed"
say "virtio_dmabuf.ko, dmabuf-guest, initramfs"

# ------------------------------------------------------------------ 2. daemon and VM

step "2. the daemon and a VM"
"$DAEMON" --socket "vm1=$WORK/vm1.sock" --control-socket "$WORK/ctl.sock" >"$WORK/daemon.log" 2>&1 &
DPID=$!
echo "$DPID" > "$WORK/daemon.pid"
for ((i = 0; i < 100; i++)); do
    [[ -S "$WORK/vm1.sock" && -S "$WORK/ctl.sock" ]] && break
    kill -0 "$DPID" 2>/dev/null || break
    sleep 0.1
done
[[ -S "$WORK/ctl.sock" ]] || { cat "$WORK/daemon.log" >&2; die "the daemon did not start"; }
export DMABUF_CONTROL_SOCKET="$WORK/ctl.sock"
host "vhost-device-dmabuf --socket vm1=$WORK/vm1.sock --control-socket $WORK/ctl.sock   (pid $DPID)"

ctl() { timeout -k 5 60 "$CTL" "$@"; }

# The host's text, in a 4 KiB memfd (dmabufctl share copies the file into a sealed memfd;
# the zero bytes after the text leave the guest room to make it longer).
cat > "$WORK/host.txt" <<'EOF'
Hello from the host!
This text sits in a memfd that dmabufctl shared through the daemon.
The guest imports it by UUID, so no byte of it is copied until it asks.
EOF
cp "$WORK/host.txt" "$WORK/host-buffer.bin"
truncate -s 4096 "$WORK/host-buffer.bin"
HU="$(ctl share "$WORK/host-buffer.bin" --allow vm1 | sed -n 's/^uuid=//p')"
[[ -n "$HU" ]] || die "dmabufctl share failed"
host "dmabufctl share host.txt (padded to 4096 bytes) --allow vm1   ->  uuid=$HU"
quote < "$WORK/host.txt"

# A mailbox buffer, so the guest can wait for the host through the device itself.
MB="$(ctl share --memfd-size 4096 --allow vm1 | sed -n 's/^uuid=//p')"
[[ -n "$MB" ]] || die "dmabufctl share (mailbox) failed"

cat > "$WORK/guest.sh" <<EOF
HU=$HU
MB=$MB
EOF
cat >> "$WORK/guest.sh" <<'EOF'
g() { echo "G| $*"; }
fail() { g "error: $*"; exit 1; }
G=dmabuf-guest
insmod /lib/modules/extra/virtio_dmabuf.ko || fail "insmod virtio_dmabuf.ko"
g "booted $(uname -r); virtio_dmabuf loaded: $(ls /dev/virtio-dmabuf*)"

# the host's buffer: import by UUID, read (read sync), print
$G cat --uuid "$HU" > /tmp/text 2> /tmp/meta || { cat /tmp/meta; fail "import/read of $HU"; }
F=$(sed -n 's/^flags=//p' /tmp/meta)
B=guest-backed; [ $((F >> 8 & 1)) = 1 ] && B=host-backed
g "imported $HU ($(sed -n 's/^size=//p' /tmp/meta) bytes, $B); its text:"
sed 's/^/G|         | /' /tmp/text

# change it: upper-case, one more line; written under a write sync, copied back at its end
{ tr 'a-z' 'A-Z' < /tmp/text; echo "...and this line was appended by the guest ($(uname -r))."; } > /tmp/new
$G puts --uuid "$HU" --text-file /tmp/new > /tmp/meta 2>&1 || { cat /tmp/meta; fail "write of $HU"; }
g "upper-cased it and appended a line ($(sed -n 's/^text_bytes=//p' /tmp/meta) bytes), ended the write access"
echo "@@ modified=1"

# a buffer of the guest's own, with a text, kept open until the host has read it
cat > /tmp/own <<EOT
Greetings from the guest!
These bytes live in guest RAM ($(grep MemTotal /proc/meminfo | tr -s ' ')),
in pages the guest driver allocated and exported as a dma-buf.
The host reads them in place through the daemon.
EOT
mkfifo /tmp/hold
sleep 600 > /tmp/hold &
K=$!
$G puts --size 4096 --text-file /tmp/own --hold -1 < /tmp/hold > /tmp/own.out 2>&1 &
P=$!
i=0
while ! grep -q '^ready=1' /tmp/own.out && [ $i -lt 300 ]; do sleep 0.1; i=$((i + 1)); done
U=$(sed -n 's/^uuid=//p' /tmp/own.out)
[ -n "$U" ] || { cat /tmp/own.out; fail "alloc"; }
g "allocated $U (4096 bytes of guest memory) and wrote:"
sed 's/^/G|         | /' /tmp/own
echo "@@ own=$U"

# wait (at most 2 min) until the host has read it: it writes 1 into the mailbox
$G wait-byte --uuid "$MB" --value 1 --wait-ms 120000 > /tmp/wb 2>&1 || { cat /tmp/wb; fail "no word from the host"; }
echo quit > /tmp/hold
kill $K 2>/dev/null
wait $P
g "closed its buffer (the driver released it); powering off"
EOF

host "booting the VM: qemu-scripts/run-vm --kernel $SERIES (QEMU, vhost-user-test-device-pci, virtio id 37)"
mkfifo "$WORK/console.fifo"
"$REPO/qemu-scripts/run-vm" --kernel "$SERIES" --socket "$WORK/vm1.sock" --initrd "$WORK/initrd.gz" \
    --cmd-file "$WORK/guest.sh" --timeout 300 --log "$WORK/console.log" \
    --qemu-arg -pidfile --qemu-arg "$WORK/qemu.pid" \
    < /dev/null > "$WORK/console.fifo" 2>"$WORK/run-vm.log" &
VPID=$!
exec 7<"$WORK/console.fifo"

# follow MARKER TIMEOUT: print the guest's "G| " lines as they come, until "@@ MARKER"
# (sets MV to its value); 1 on timeout or when the VM ended.
MV=""
follow() {
    local marker=$1 deadline=$(( $(date +%s) + $2 )) line left
    while :; do
        left=$(( deadline - $(date +%s) ))
        ((left > 0)) || { say "demo: timed out waiting for the guest" >&2; return 1; }
        if ! IFS= read -r -t "$left" -u 7 line; then
            kill -0 "$VPID" 2>/dev/null && continue
            return 1
        fi
        line="${line//$'\r'/}"
        case "$line" in
            *"G| "*) printf '[guest] %s\n' "${line#*G| }" ;;
            *"@@ $marker="*) MV="${line#*"@@ $marker="}"; return 0 ;;
        esac
    done
}

step "3. host buffer -> guest -> host"
follow modified 240 || die "the guest did not get through the host's buffer (console: $WORK/console.log)"
host "dmabufctl read $HU   (a fenced read: begin read, read, end)"
ctl read "$HU" 2>/dev/null | tr -d '\0' | quote

step "4. guest buffer -> host"
follow own 120 || die "the guest did not allocate its buffer (console: $WORK/console.log)"
GU="$MV"
host "dmabufctl list"
ctl list | grep -e '^UUID' -e "^$HU" -e "^$GU" | sed 's/^/          /'
host "dmabufctl read $GU"
ctl read "$GU" 2>/dev/null | tr -d '\0' | quote
printf '\001' | ctl write "$MB" --offset 0 --in - >/dev/null   # tell the guest it may go on

step "5. shutdown"
follow end-never 120 || true
vrc=0
for ((i = 0; i < 300; i++)); do kill -0 "$VPID" 2>/dev/null || break; sleep 0.1; done
wait "$VPID" || vrc=$?
VPID=""
accel="$(grep -o 'accelerator=[a-z]*' "$WORK/run-vm.log" | head -n1 || true)"
if [[ "$vrc" == 0 ]]; then
    host "the guest finished and powered off (exit 0, ${accel:-accelerator unknown})"
else
    die "the VM ended with status $vrc (console: $WORK/console.log, run-vm: $WORK/run-vm.log)"
fi
if in_list="$(ctl list | grep -c "^$GU" || true)" && [[ "$in_list" == 0 ]]; then
    host "dmabufctl list: the guest's buffer is gone with it"
fi
kill -TERM "$DPID"
drc=0
for ((i = 0; i < 100; i++)); do kill -0 "$DPID" 2>/dev/null || break; sleep 0.1; done
wait "$DPID" || drc=$?
DPID=""
[[ "$drc" == 0 ]] || die "the daemon exited with status $drc after SIGTERM (log $WORK/daemon.log)"
host "daemon stopped with SIGTERM (exit 0, sockets removed: $([[ -e "$WORK/vm1.sock" ]] && echo no || echo yes))"
say ""
say "demo: done. Logs of this run (build, daemon, VM console): $WORK"
