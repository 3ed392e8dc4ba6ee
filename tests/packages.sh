#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
#
# The Debian packages of `make deb`, installed, used and removed (`make test-deb`,
# tests/README.md "Packages"):
#
#  daemon  vhost-device-dmabuf into a fresh Debian bookworm root booted with its own systemd
#          252 (systemd-nspawn): apt resolves the dependencies; systemd-analyze verify accepts
#          the unit; the man pages render without a warning and the bash completions complete;
#          vhost-device-dmabuf@default runs the daemon as its user with the unit's hardening and
#          the daemon's own sandbox (the command line is the one the unit and default.conf
#          give); a user of the group dmabuf shares 1 MiB with the installed dmabufctl and
#          reads it back byte for byte, a user outside the group cannot; a crash restarts it;
#          apt remove stops it and keeps the configuration, purge leaves nothing but the
#          locked account and the groups.
#  dkms    virtio-dmabuf-dkms into the Debian sid root (qemu-scripts/sid-root.sh): apt installs
#          dkms, DKMS builds the module for 7.2.13+deb14-amd64 (and every other kernel with
#          headers there), its vermagic is that of Debian's own modules of the kernel; purge
#          leaves no module, no DKMS tree and no source. Then both packages together: a Linux
#          7.2 guest loads that module and imports and verifies 1 MiB that the packaged
#          dmabufctl shared with the packaged daemon.
#
# Each run works on a fresh overlay of a cached root, so nothing it installs stays; the
# bookworm root is made once (debootstrap, ~2 min) under $DMABUF_CACHE, keyed by its recipe.
set -euo pipefail

usage() {
    cat <<EOF
Usage: $(basename "$0") [--help] [daemon|dkms]...

Build the packages (packaging/build-deb.sh) and run the named parts (default: both).
Needs root (debootstrap, mounts, systemd-nspawn, chroot). Installs debootstrap and
systemd-container on the host when missing. Prints "packages: <part>: PASS (N s)" per part.
Environment: DMABUF_CACHE, DMABUF_APT_MIRROR, DMABUF_VERBOSE=1, KEEP=1 (keep the work
directory for a look).
EOF
}

DMABUF_LOG_NAME=packages
# shellcheck source=../qemu-scripts/common.sh
source "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/../qemu-scripts/common.sh"
TOP="$(cd "$DMABUF_SCRIPTS_DIR/.." && pwd)"

PARTS=()
for a in "$@"; do
    case "$a" in
        -h|--help) usage; exit 0 ;;
        daemon|dkms) PARTS+=("$a") ;;
        *) usage >&2; die "unknown argument: $a" ;;
    esac
done
((${#PARTS[@]})) || PARTS=(daemon dkms)

need_root "the package tests"
ensure_host_packages debootstrap systemd-container

fail() { printf 'packages: FAIL: %s\n' "$*" >&2; exit 1; }
# expect WHAT GOT WANTED
expect() { [[ "$2" == "$3" ]] || fail "$1: got '$2', want '$3'"; }

WORK="$(mktemp -d /var/tmp/dmabuf-packages.XXXXXX)"
MOUNTS=()
NSPAWN_PID=""
DAEMON_PID=""
cleanup() {
    local m
    if [[ -n "$DAEMON_PID" ]]; then
        kill "$DAEMON_PID" 2>/dev/null || true
        wait "$DAEMON_PID" 2>/dev/null || true
    fi
    if [[ -n "$NSPAWN_PID" ]] && kill -0 "$NSPAWN_PID" 2>/dev/null; then
        kill "$NSPAWN_PID" 2>/dev/null || true          # nspawn: a clean shutdown
        for _ in $(seq 100); do kill -0 "$NSPAWN_PID" 2>/dev/null || break; sleep 0.2; done
        kill -9 "$NSPAWN_PID" 2>/dev/null || true
        wait "$NSPAWN_PID" 2>/dev/null || true
    fi
    for m in "${MOUNTS[@]}"; do umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || true; done
    if [[ "${KEEP:-0}" == 1 ]]; then log "kept $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT

# A fresh writable view of a cached root at $WORK/NAME: overlay NAME LOWER (not in a subshell:
# the mount is recorded for the cleanup).
overlay() {
    mkdir -p "$WORK/$1.upper" "$WORK/$1.work" "$WORK/$1"
    mount -t overlay "dmabuf-$1" \
        -o "lowerdir=$2,upperdir=$WORK/$1.upper,workdir=$WORK/$1.work" "$WORK/$1" \
        || die "cannot mount an overlay of $2"
    MOUNTS+=("$WORK/$1")
}

# apt's downloads are kept between runs: archives DIR ROOT in|out
archives() {
    mkdir -p "$1" "$2/var/cache/apt/archives"
    if [[ "$3" == in ]]; then
        find "$1" -maxdepth 1 -name '*.deb' -exec cp -t "$2/var/cache/apt/archives/" {} +
    else
        find "$2/var/cache/apt/archives" -maxdepth 1 -name '*.deb' -exec cp -n -t "$1/" {} +
    fi
}

log "building the packages (packaging/build-deb.sh)"
mapfile -t DEBS < <("$TOP/packaging/build-deb.sh")
DAEMON_DEB="${DEBS[0]:-}"
DKMS_DEB="${DEBS[1]:-}"
[[ -f "$DAEMON_DEB" && -f "$DKMS_DEB" ]] || fail "build-deb.sh gave no packages"

# ================================================================ daemon: bookworm + systemd

# The cached bookworm root: minbase, plus systemd (booted by nspawn; systemd-analyze), man-db
# (man pages, and systemd-analyze verify checks Documentation=), and the three shells whose
# completions the package ships. The package's own dependencies (adduser) are not in it: apt
# must resolve them.
BW_RECIPE=1
BW_PACKAGES=(systemd man-db bash-completion zsh fish)

bookworm_root() {
    local key dest tmp mirror keyring
    key="$(printf '%s\n' "$BW_RECIPE" "${BW_PACKAGES[@]}" | sha256sum | cut -c1-12)"
    dest="$DMABUF_CACHE/bookworm-root-$key"
    if [[ ! -f "$dest/.complete" ]]; then
        cache_lock "bookworm-root"
        if [[ ! -f "$dest/.complete" ]]; then
            mirror="$(debian_mirror_uri)" || die "cannot find Debian's mirror in the system apt sources"
            keyring="$(debian_keyring)"
            mkdir -p "$DMABUF_CACHE"
            tmp="$(mktemp -d "$DMABUF_CACHE/.bookworm-root.XXXXXX")"
            log "debootstrap --variant=minbase bookworm with ${BW_PACKAGES[*]} (once, ~2 min)"
            local t0=$SECONDS
            debootstrap --variant=minbase --include="$(IFS=,; echo "${BW_PACKAGES[*]}")" \
                --keyring="$keyring" bookworm "$tmp/root" "$mirror" >"$tmp/debootstrap.log" 2>&1 || {
                tail -n 30 "$tmp/debootstrap.log" | sed 's/^/  | /' >&2
                rm -rf "$tmp"; die "debootstrap bookworm failed"; }
            cp -L /etc/resolv.conf "$tmp/root/etc/resolv.conf" 2>/dev/null || true
            sid_chroot "$tmp/root" apt-get update -q >"$tmp/apt.log" 2>&1 || {
                tail -n 20 "$tmp/apt.log" | sed 's/^/  | /' >&2
                rm -rf "$tmp"; die "apt-get update in the bookworm root failed"; }
            sid_chroot "$tmp/root" apt-get clean
            echo "made by tests/packages.sh in $((SECONDS - t0)) s: ${BW_PACKAGES[*]}" > "$tmp/INFO"
            touch "$tmp/.complete"
            rm -rf "$dest"
            mv "$tmp" "$dest"
        fi
    fi
    echo "$dest"
}

# Run a command inside the booted container (all its namespaces, a clean environment).
inc() {
    nsenter -t "$INIT" -a env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin LC_ALL=C.UTF-8 HOME=/root "$@"
}

boot() { # root
    # nspawn's own system-call filter predates landlock: let the container have it, as a
    # Debian host has (its kernels enable landlock), so the daemon sandboxes itself as there.
    # A machine name of this run's own: nspawn keeps per-name state under /run/systemd/nspawn.
    systemd-nspawn -q -D "$1" -M "dmabuf-pkg-${WORK##*.}" --register=no --keep-unit --console=passive -b \
        --system-call-filter='landlock_create_ruleset landlock_add_rule landlock_restrict_self' \
        >"$WORK/nspawn.log" 2>&1 &
    NSPAWN_PID=$!
    local i state=""
    INIT=""
    for i in $(seq 150); do
        INIT="$(pgrep -P "$NSPAWN_PID" -x systemd || true)"
        [[ -n "$INIT" ]] && break
        kill -0 "$NSPAWN_PID" 2>/dev/null || { cat "$WORK/nspawn.log" >&2; fail "systemd-nspawn exited"; }
        sleep 0.2
    done
    [[ -n "$INIT" ]] || fail "no systemd in the container after 30 s"
    for i in $(seq 150); do
        state="$(inc systemctl is-system-running 2>/dev/null || true)"
        [[ "$state" == running || "$state" == degraded ]] && return 0
        sleep 0.2
    done
    fail "the container's systemd is '$state' after 30 s"
}

# The unit's ExecStart= with the configuration's variables and the specifiers %t and %i
# replaced, as systemd documents it (unbraced $VAR: split into words).
expand_execstart() { # root instance
    local r="$1" inst="$2" line
    line="$(sed -n 's/^ExecStart=//p' "$r/usr/lib/systemd/system/vhost-device-dmabuf@.service")"
    line="${line//%t//run}"
    line="${line//%i/$inst}"
    # shellcheck disable=SC1090
    (set -a; source "$r/etc/vhost-device-dmabuf/$inst.conf"; eval "echo $line")
}

status_field() { # pid field
    inc cat "/proc/$1/status" | sed -n "s/^$2:[[:space:]]*//p"
}

part_daemon() {
    local t0=$SECONDS bw r files f out pid pid2 want got uuid ctl
    bw="$(bookworm_root)"
    overlay bookworm "$bw/root"
    r="$WORK/bookworm"
    archives "$bw/archives" "$r" in
    cp "$DAEMON_DEB" "$r/var/tmp/"
    boot "$r"
    log "daemon: container up ($((SECONDS - t0)) s); installing $(basename "$DAEMON_DEB")"

    inc env DEBIAN_FRONTEND=noninteractive apt-get install -y -q "/var/tmp/$(basename "$DAEMON_DEB")" \
        >"$WORK/install.log" 2>&1 || { tail -n 30 "$WORK/install.log" >&2; fail "apt-get install"; }
    archives "$bw/archives" "$r" out
    for p in vhost-device-dmabuf adduser; do
        expect "dpkg status of $p" "$(inc dpkg-query -W -f='${Status}' "$p")" "install ok installed"
    done
    inc apt-get check -q >/dev/null || fail "apt-get check after the install"
    mapfile -t files < <(inc dpkg -L vhost-device-dmabuf)
    expect "id vhost-device-dmabuf" "$(inc id -nG vhost-device-dmabuf)" "vhost-device-dmabuf dmabuf"

    # The unit, as systemd 252 checks it (with --man: the Documentation= pages must exist).
    out="$(inc systemd-analyze verify vhost-device-dmabuf@default.service 2>&1)" \
        || fail "systemd-analyze verify: $out"
    [[ -z "$out" ]] || fail "systemd-analyze verify says: $out"
    # ... and it does look: the same unit with one bad value is reported.
    sed 's/^ProtectSystem=strict$/ProtectSystem=bogus/' "$r/usr/lib/systemd/system/vhost-device-dmabuf@.service" \
        > "$r/etc/systemd/system/dmabuf-verify-check@.service"
    out="$(inc systemd-analyze verify dmabuf-verify-check@x.service 2>&1 || true)"
    rm -f "$r/etc/systemd/system/dmabuf-verify-check@.service"
    grep -q 'Failed to parse protect system value, ignoring: bogus' <<<"$out" || fail "systemd-analyze verify did not report a bad ProtectSystem=: $out"

    # Man pages: in man's index, and each renders without a warning.
    expect "man -w" "$(inc man -w vhost-device-dmabuf)" "/usr/share/man/man1/vhost-device-dmabuf.1.gz"
    local pages=0
    for f in "${files[@]}"; do
        [[ "$f" == /usr/share/man/man1/*.1.gz ]] || continue
        out="$(inc env MANWIDTH=100 man --warnings -l "$f" 2>&1 >/dev/null)"
        [[ -z "$out" ]] || fail "man $f: $out"
        pages=$((pages + 1))
    done
    expect "man pages" "$pages" 10
    inc env MANWIDTH=100 man vhost-device-dmabuf 2>/dev/null | grep -q -- '--control-group <GROUP>' \
        || fail "man vhost-device-dmabuf has no --control-group"
    inc env MANWIDTH=100 man dmabufctl-share 2>/dev/null | grep -q 'sealed' \
        || fail "man dmabufctl-share lacks its long help"
    # Completions: bash completes a subcommand and an option; zsh's and fish's are where
    # those shells look.
    complete_word() { # command word: what bash completes the word to, as its first argument
        # shellcheck disable=SC2016
        inc bash -c 'source "/usr/share/bash-completion/completions/$1"
            COMP_WORDS=("$1" "$2"); COMP_CWORD=1; COMP_LINE="$1 $2"; COMP_POINT=${#COMP_LINE}
            "_${1//-/__}" "$1" "$2" "$1"; echo "${COMPREPLY[*]}"' complete "$1" "$2"
    }
    expect "bash completion of 'dmabufctl wait-w'" "$(complete_word dmabufctl wait-w)" "wait-write"
    expect "bash completion of 'vhost-device-dmabuf --control-g'" \
        "$(complete_word vhost-device-dmabuf --control-g)" "--control-group"
    # fish finds its files by itself and completes from them.
    got="$(inc fish -c 'complete -C"dmabufctl wait-w"' | cut -f1)"
    expect "fish completion of 'dmabufctl wait-w'" "$got" "wait-write"
    got="$(inc fish -c 'complete -C"vhost-device-dmabuf --control-g"' | cut -f1)"
    expect "fish completion of 'vhost-device-dmabuf --control-g'" "$got" "--control-group"
    # zsh: the functions are where its fpath looks, and they parse.
    for f in _dmabufctl _vhost-device-dmabuf; do
        # shellcheck disable=SC2016
        inc zsh -c 'for d in $fpath; do [[ -f $d/$1 ]] && { zsh -n $d/$1 && echo $d; exit; }; done; exit 1' \
            zsh "$f" | grep -qx /usr/share/zsh/vendor-completions || fail "zsh does not find or parse $f"
        head -n1 "$r/usr/share/zsh/vendor-completions/$f" | grep -q "^#compdef ${f#_}" \
            || fail "$f is no zsh completion"
    done

    # The service: systemd runs what the unit and default.conf say.
    inc systemctl enable --now vhost-device-dmabuf@default.service >/dev/null 2>&1 \
        || { inc systemctl status --no-pager vhost-device-dmabuf@default >&2 || true; fail "systemctl enable --now"; }
    expect "enabled" "$(inc systemctl is-enabled vhost-device-dmabuf@default.service)" enabled
    ctl=/run/vhost-device-dmabuf/default/control.sock
    # /run is the container's own tmpfs: look from inside.
    for _ in $(seq 100); do inc test -S "$ctl" && break; sleep 0.1; done
    inc test -S "$ctl" || { inc journalctl --no-pager -u vhost-device-dmabuf@default >&2; fail "no $ctl"; }
    pid="$(inc systemctl show -P MainPID vhost-device-dmabuf@default)"
    want="$(expand_execstart "$r" default)"
    got="$(inc cat "/proc/$pid/cmdline" | tr '\0' ' ')"
    expect "the daemon's command line" "${got% }" "$want"
    log "daemon: running as the unit says: $want"
    expect "daemon uid" "$(status_field "$pid" Uid | awk '{print $1}')" "$(inc id -u vhost-device-dmabuf)"
    expect "NoNewPrivs" "$(status_field "$pid" NoNewPrivs)" 1
    expect "Seccomp" "$(status_field "$pid" Seccomp)" 2
    expect "CapEff" "$(status_field "$pid" CapEff)" 0000000000000000
    out="$(inc journalctl --no-pager -o cat -u vhost-device-dmabuf@default)"
    grep -q 'sandbox: seccomp kill (.*landlock ABI' <<<"$out" || fail "no landlock sandbox line in the journal: $out"
    log "daemon: $(grep -o 'sandbox: .*' <<<"$out" | head -n1)"
    expect "run dir" "$(inc stat -c '%a %U %G' /run/vhost-device-dmabuf/default)" "751 vhost-device-dmabuf vhost-device-dmabuf"
    expect "control socket" "$(inc stat -c '%a %U %G' "$ctl")" "660 vhost-device-dmabuf dmabuf"
    expect "VM socket" "$(inc stat -c '%a %U %G' /run/vhost-device-dmabuf/default/vm0.sock)" "770 vhost-device-dmabuf vhost-device-dmabuf"

    # A user of the group dmabuf shares 1 MiB and reads it back; a user outside it cannot.
    inc useradd --no-create-home --groups dmabuf alice
    inc useradd --no-create-home bob
    head -c 1048576 /dev/urandom > "$r/var/tmp/payload"
    chmod 644 "$r/var/tmp/payload"
    as() { local u="$1"; shift; inc setpriv --reuid="$u" --regid="$u" --init-groups env DMABUF_CONTROL_SOCKET="$ctl" "$@"; }
    out="$(as alice dmabufctl share /var/tmp/payload)" || fail "alice: dmabufctl share: $out"
    uuid="${out#uuid=}"
    [[ "$uuid" =~ ^[0-9a-f-]{36}$ ]] || fail "dmabufctl share printed '$out'"
    as alice dmabufctl list | grep -q "$uuid" || fail "dmabufctl list lacks $uuid"
    inc install -m 0777 -d /var/tmp/alice
    as alice dmabufctl read "$uuid" --out /var/tmp/alice/back >"$WORK/read.out" 2>&1 \
        || fail "alice: dmabufctl read: $(cat "$WORK/read.out")"
    inc cmp /var/tmp/payload /var/tmp/alice/back || fail "the bytes read back differ from the bytes shared"
    local rc=0
    as bob dmabufctl list >/dev/null 2>"$WORK/bob.err" || rc=$?
    expect "bob's dmabufctl list exit status (3: cannot reach)" "$rc" 3
    grep -q 'Permission denied' "$WORK/bob.err" || fail "bob: $(cat "$WORK/bob.err")"
    log "daemon: alice (group dmabuf) shared and read back 1 MiB; bob was refused"

    # Restart=on-failure: a crash (SIGABRT, as an abort would; std handles a SIGSEGV that is not a
    # fault by returning) brings a new daemon that serves.
    inc systemctl kill --kill-who=main -s SIGABRT vhost-device-dmabuf@default
    for _ in $(seq 100); do
        pid2="$(inc systemctl show -P MainPID vhost-device-dmabuf@default)"
        [[ "$pid2" != 0 && "$pid2" != "$pid" ]] && inc test -S "$ctl" && break
        sleep 0.1
    done
    [[ "$pid2" != 0 && "$pid2" != "$pid" ]] || {
        inc systemctl status --no-pager vhost-device-dmabuf@default >&2 || true
        fail "no restart after SIGABRT (MainPID $pid -> $pid2)"; }
    expect "NRestarts" "$(inc systemctl show -P NRestarts vhost-device-dmabuf@default)" 1
    for _ in $(seq 50); do as alice dmabufctl list >/dev/null 2>&1 && break; sleep 0.1; done
    as alice dmabufctl list >/dev/null || fail "the restarted daemon does not serve"
    log "daemon: SIGABRT (a crash) -> restarted (pid $pid -> $pid2)"

    # A bad configuration: exit status 2, the journal says why, no restart loop.
    printf 'DMABUF_SOCKETS="--socket vm0=/run/vhost-device-dmabuf/bad/vm0.sock"\nDMABUF_OPTIONS="--max-buffers 0"\n' \
        > "$r/etc/vhost-device-dmabuf/bad.conf"
    inc systemctl start vhost-device-dmabuf@bad.service 2>/dev/null || true
    for _ in $(seq 50); do
        [[ "$(inc systemctl show -P ActiveState vhost-device-dmabuf@bad)" == failed ]] && break
        sleep 0.1
    done
    sleep 2.5                                   # longer than RestartSec: a restart would show
    expect "bad configuration: state" "$(inc systemctl show -P ActiveState vhost-device-dmabuf@bad)" failed
    expect "bad configuration: exit status" "$(inc systemctl show -P ExecMainStatus vhost-device-dmabuf@bad)" 2
    expect "bad configuration: restarts" "$(inc systemctl show -P NRestarts vhost-device-dmabuf@bad)" 0
    inc journalctl --no-pager -o cat -u vhost-device-dmabuf@bad | grep -q 'limits must not be zero' \
        || fail "the journal does not say what is wrong with bad.conf"
    inc systemctl reset-failed vhost-device-dmabuf@bad.service
    rm -f "$r/etc/vhost-device-dmabuf/bad.conf"
    log "daemon: a bad configuration fails once with status 2 and its reason in the journal"

    # apt remove: the daemon is stopped, its sockets gone, the configuration kept.
    inc env DEBIAN_FRONTEND=noninteractive apt-get remove -y -q vhost-device-dmabuf >>"$WORK/install.log" 2>&1 \
        || fail "apt-get remove"
    # shellcheck disable=SC2016
    inc sh -c 'grep -lx vhost-device-dm /proc/[0-9]*/comm' 2>/dev/null | grep -q . \
        && fail "the daemon runs after apt-get remove"
    inc test ! -e /run/vhost-device-dmabuf/default || fail "the run directory is left after the stop"
    [[ -f "$r/etc/vhost-device-dmabuf/default.conf" ]] || fail "remove took the configuration"
    [[ ! -e "$r/usr/bin/vhost-device-dmabuf" ]] || fail "remove left the daemon"
    # apt purge: nothing of the package is left.
    inc env DEBIAN_FRONTEND=noninteractive apt-get purge -y -q vhost-device-dmabuf >>"$WORK/install.log" 2>&1 \
        || fail "apt-get purge"
    inc dpkg -L vhost-device-dmabuf >/dev/null 2>&1 && fail "dpkg -L still lists vhost-device-dmabuf"
    for f in "${files[@]}"; do
        [[ -d "$r$f" ]] && continue          # shared directories (/usr/bin...) stay
        [[ ! -e "$r$f" ]] || fail "$f left after purge"
    done
    for f in /etc/vhost-device-dmabuf /run/vhost-device-dmabuf /usr/share/doc/vhost-device-dmabuf \
             /etc/systemd/system/multi-user.target.wants/vhost-device-dmabuf@default.service; do
        inc test ! -e "$f" -a ! -L "$f" || fail "$f left after purge"
    done
    inc systemctl list-unit-files --no-legend 'vhost-device-dmabuf*' | grep -q . \
        && fail "systemd still knows the unit"
    # The account stays, locked and expired (its uid may own files); the groups stay.
    expect "account status" "$(inc passwd -S vhost-device-dmabuf | cut -d' ' -f2)" L
    expect "account expiry" "$(inc getent shadow vhost-device-dmabuf | cut -d: -f8)" 1
    inc getent group dmabuf >/dev/null || fail "purge took the group dmabuf"
    log "daemon: removed and purged cleanly (account locked, groups kept)"
    # Installed again after the purge: the same account, no longer expired, serves again.
    inc env DEBIAN_FRONTEND=noninteractive apt-get install -y -q "/var/tmp/$(basename "$DAEMON_DEB")" \
        >>"$WORK/install.log" 2>&1 || fail "apt-get install after the purge"
    expect "account expiry after a new install" "$(inc getent shadow vhost-device-dmabuf | cut -d: -f8)" ""
    inc systemctl start vhost-device-dmabuf@default || fail "systemctl start after a new install"
    for _ in $(seq 100); do inc test -S "$ctl" && break; sleep 0.1; done
    as alice dmabufctl list >/dev/null || fail "the reinstalled daemon does not serve"
    inc env DEBIAN_FRONTEND=noninteractive apt-get purge -y -q vhost-device-dmabuf >>"$WORK/install.log" 2>&1 \
        || fail "apt-get purge (second)"
    inc dpkg -L vhost-device-dmabuf >/dev/null 2>&1 && fail "dpkg -L lists vhost-device-dmabuf after the second purge"
    inc test ! -e /etc/vhost-device-dmabuf -a ! -e /usr/bin/vhost-device-dmabuf \
        || fail "the second purge left files"
    log "daemon: installed again after the purge (account unexpired, serving), purged again"
    kill "$NSPAWN_PID"
    wait "$NSPAWN_PID" 2>/dev/null || true
    NSPAWN_PID=""
    echo "packages: daemon: PASS ($((SECONDS - t0)) s)"
}

# ================================================================ dkms: sid + 7.2 headers

part_dkms() {
    local t0=$SECONDS sid r env KVER MODDIR KROOT out ref got ko
    sid="$("$TOP/qemu-scripts/sid-root.sh" | sed -n 's/^SID_ROOT=//p')"
    [[ -d "$sid" ]] || fail "sid-root.sh gave no root"
    env="$("$TOP/qemu-scripts/fetch-kernel.sh" 7.2)" || fail "fetch-kernel.sh 7.2"
    KVER="$(sed -n 's/^KVER=//p' <<<"$env")"
    KROOT="$(sed -n 's/^KROOT=//p' <<<"$env")"
    [[ -d "$sid/usr/src/linux-headers-$KVER" ]] || fail "the sid root has no headers of $KVER"
    # Debian's own modules of the kernel say what the vermagic must be.
    ref="$(find "$KROOT/usr/lib/modules/$KVER/kernel/drivers/gpu/drm/vgem" -name 'vgem.ko*' | head -n1)"
    [[ -f "$ref" ]] || fail "no vgem module of $KVER in $KROOT"
    local want_magic
    want_magic="$(modinfo -F vermagic "$ref")"

    overlay sid "$sid"
    r="$WORK/sid"
    archives "$(dirname "$sid")/archives-dkms" "$r" in
    cp "$DKMS_DEB" "$r/var/tmp/"
    log "dkms: installing $(basename "$DKMS_DEB") (and dkms) into the sid root"
    sid_chroot "$r" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q \
        "/var/tmp/$(basename "$DKMS_DEB")" >"$WORK/dkms.log" 2>&1 \
        || { tail -n 40 "$WORK/dkms.log" >&2; fail "apt-get install $(basename "$DKMS_DEB")"; }
    archives "$(dirname "$sid")/archives-dkms" "$r" out
    out="$(sid_chroot "$r" dkms status virtio-dmabuf)"
    grep -q "^virtio-dmabuf/[^,]*, $KVER, x86_64: installed" <<<"$out" \
        || { tail -n 40 "$WORK/dkms.log" >&2; fail "dkms status: $out"; }
    ko="$(cd "$r" && ls lib/modules/"$KVER"/updates/dkms/virtio_dmabuf.ko* 2>/dev/null | head -n1)"
    [[ -n "$ko" ]] || fail "no virtio_dmabuf.ko for $KVER"
    got="$(sid_chroot "$r" modinfo -F vermagic "/$ko")"
    expect "vermagic of /$ko" "$got" "$want_magic"
    expect "module name" "$(sid_chroot "$r" modinfo -F name "/$ko")" virtio_dmabuf
    sid_chroot "$r" modinfo -F alias "/$ko" | grep -qx 'virtio:d00000025v\*' \
        || fail "/$ko has no alias for virtio device 37"
    log "dkms: built for $KVER: /$ko, vermagic '${got% }' (Debian's own)"
    log "dkms: $(sid_chroot "$r" dkms status virtio-dmabuf | tr '\n' ';')"
    cp "$r/$ko" "$WORK/virtio_dmabuf.ko"

    sid_chroot "$r" env DEBIAN_FRONTEND=noninteractive apt-get purge -y -q virtio-dmabuf-dkms \
        >>"$WORK/dkms.log" 2>&1 || fail "apt-get purge virtio-dmabuf-dkms"
    sid_chroot "$r" dpkg -L virtio-dmabuf-dkms >/dev/null 2>&1 && fail "dpkg -L still lists virtio-dmabuf-dkms"
    out="$(sid_chroot "$r" dkms status virtio-dmabuf)"
    [[ -z "$out" ]] || fail "dkms status after purge: $out"
    out="$(cd "$r" && find lib/modules usr/src var/lib/dkms -name '*virtio_dmabuf*' -o -name 'virtio-dmabuf*' 2>/dev/null)"
    [[ -z "$out" ]] || fail "left after purge: $out"
    log "dkms: purged: no module, no DKMS tree, no source left"

    # Both packages at work: the DKMS-built module in a Linux 7.2 guest (stock QEMU 11.1,
    # qemu-scripts/run-vm) imports what the packaged dmabufctl shared with the packaged daemon.
    local pkg="$WORK/daemon-pkg" sock="$WORK/vm1.sock" ctl="$WORK/control.sock" uuid rc=0
    dpkg-deb -x "$DAEMON_DEB" "$pkg"
    make -s -C "$TOP/guest-driver" tools >&2 || fail "make -C guest-driver tools"
    "$pkg/usr/bin/vhost-device-dmabuf" --socket "vm1=$sock" --control-socket "$ctl" \
        >"$WORK/daemon.log" 2>&1 &
    DAEMON_PID=$!
    for _ in $(seq 100); do [[ -S "$sock" && -S "$ctl" ]] && break; sleep 0.1; done
    [[ -S "$ctl" ]] || { cat "$WORK/daemon.log" >&2; fail "the packaged daemon did not start"; }
    uuid="$(DMABUF_CONTROL_SOCKET="$ctl" "$pkg/usr/bin/dmabufctl" share --memfd-size 1M --fill-seed 7)"
    uuid="${uuid#uuid=}"
    "$TOP/qemu-scripts/run-vm" --socket "$sock" --kernel 7.2 --no-guest-driver \
        --ko "$WORK/virtio_dmabuf.ko" --bin "$TOP/guest-driver/build/tools/dmabuf-guest" \
        --timeout 180 --log "$WORK/vm.log" \
        --cmd "insmod /lib/modules/extra/virtio_dmabuf.ko && dmabuf-guest import --uuid $uuid --verify-seed 7" \
        >"$WORK/run-vm.out" 2>&1 || rc=$?
    if ((rc != 0)); then
        tail -n 30 "$WORK/vm.log" >&2
        fail "the DKMS-built module in the 7.2 guest: run-vm exit status $rc (import and verify of $uuid)"
    fi
    grep -q '^verify=ok' "$WORK/vm.log" || fail "the guest did not verify the bytes: $(tail -n 20 "$WORK/vm.log")"
    kill "$DAEMON_PID"
    wait "$DAEMON_PID" 2>/dev/null || true
    DAEMON_PID=""
    log "dkms: a 7.2 guest loaded the DKMS-built module and imported and verified 1 MiB shared by the packaged dmabufctl"
    echo "packages: dkms: PASS ($((SECONDS - t0)) s)"
}

for p in "${PARTS[@]}"; do
    "part_$p"
done
