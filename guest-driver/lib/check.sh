#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
#
# make -C guest-driver lib-check: libvdmabuf as its users get it.
#   1. the library (-Werror), the static vdmabuf-test run on this machine (no device: the
#      UUID helpers and the error convention), the static README example;
#   2. make install PREFIX=/usr DESTDIR=<tmp>: the files, the soname, the exported symbols
#      (exactly lib/vdmabuf.map's), the .pc;
#   3. vdmabuf-test and the example built against that install's libvdmabuf.so through
#      pkg-config, the test run against it;
#   4. README.md carries lib/example.c verbatim (the example cannot rot unseen).
# Prints "lib-check: PASS ..." / "lib-check: FAIL ..." lines; exits 1 if any failed.
set -euo pipefail

GD="$(cd "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/.." && pwd)"
DMABUF_LOG_NAME=lib-check
# shellcheck source=../../qemu-scripts/common.sh
source "$GD/../qemu-scripts/common.sh"

command -v pkg-config >/dev/null || ensure_host_packages pkg-config
OUT="$GD/build/lib-check"
rm -rf "$OUT"
mkdir -p "$OUT"
fails=0
pass() { echo "lib-check: PASS $*"; }
fail() { echo "lib-check: FAIL $*"; fails=$((fails + 1)); }
# step WHAT CMD...: run CMD (output in $OUT/<n>.log); PASS or FAIL with the log's tail
n=0
step() {
    local what=$1
    shift
    n=$((n + 1))
    if "$@" >"$OUT/$n.log" 2>&1; then
        pass "$what"
    else
        fail "$what (exit $?):"
        tail -n 20 "$OUT/$n.log" | sed 's/^/  | /'
    fi
}

# 1. the static build
step "make lib tools-lib: library -Werror, static vdmabuf-test and vdmabuf-example" \
    make -s -C "$GD" lib "$GD/build/tools/vdmabuf-test" "$GD/build/tools/vdmabuf-example"
if "$GD/build/tools/vdmabuf-test" >"$OUT/test-static.out" 2>&1; then
    pass "static vdmabuf-test without a device: $(tail -n1 "$OUT/test-static.out")"
else
    fail "static vdmabuf-test without a device:"; grep -v '^ok' "$OUT/test-static.out" | sed 's/^/  | /'
fi
if ! ls /dev/virtio-dmabuf* >/dev/null 2>&1; then
    rc=0; out="$("$GD/build/tools/vdmabuf-example" 2>&1)" || rc=$?
    if [[ "$rc" == 1 && -z "$out" ]]; then
        pass "vdmabuf-example without a device exits 1, prints nothing"
    else
        fail "vdmabuf-example without a device: exit $rc, output '$out' (want 1, nothing)"
    fi
fi

# 2. the install
ROOT="$OUT/root"
step "make install PREFIX=/usr DESTDIR=$ROOT" make -s -C "$GD" install PREFIX=/usr DESTDIR="$ROOT"
for f in usr/include/vdmabuf.h usr/lib/libvdmabuf.a usr/lib/libvdmabuf.so.1.0.0 \
         usr/lib/libvdmabuf.so.1 usr/lib/libvdmabuf.so usr/lib/pkgconfig/vdmabuf.pc; do
    [[ -e "$ROOT/$f" ]] || fail "installed: /$f missing"
done
so="$ROOT/usr/lib/libvdmabuf.so.1.0.0"
soname="$(readelf -d "$so" 2>/dev/null | sed -n 's/.*(SONAME).*\[\(.*\)\]/\1/p')"
[[ "$soname" == libvdmabuf.so.1 ]] && pass "soname $soname" || fail "soname '$soname' vs libvdmabuf.so.1"
want="$(sed -n 's/^[[:space:]]*\(vdmabuf_[a-z_]*\);/\1/p' "$GD/lib/vdmabuf.map" | sort)"
got="$(nm -D --defined-only "$so" | awk '$2 == "T" { sub(/@.*/, "", $3); print $3 }' | sort)"
if [[ "$got" == "$want" ]]; then
    pass "exported symbols: the $(wc -l <<<"$got") of vdmabuf.map, version node $(nm -D --defined-only "$so" | awk '$2 == "A" { print $3 }' | head -n1)"
else
    fail "exported symbols differ from vdmabuf.map:"; diff <(echo "$want") <(echo "$got") | sed 's/^/  | /'
fi
export PKG_CONFIG_PATH="$ROOT/usr/lib/pkgconfig" PKG_CONFIG_SYSROOT_DIR="$ROOT"
if flags="$(pkg-config --cflags --libs vdmabuf)"; then
    pass "pkg-config vdmabuf $(pkg-config --modversion vdmabuf): $flags"
else
    fail "pkg-config --cflags --libs vdmabuf"
fi

# 3. programs against the shared library
# shellcheck disable=SC2086  # $flags: pkg-config's words
step "vdmabuf-test and the example against libvdmabuf.so (pkg-config, -Werror)" bash -c "
    gcc -std=c11 -Wall -Wextra -Wpedantic -Werror -o '$OUT/test-shared' '$GD/lib/test.c' $flags &&
    gcc -std=c11 -Wall -Wextra -Wpedantic -Werror -o '$OUT/example-shared' '$GD/lib/example.c' $flags"
if [[ -x "$OUT/test-shared" ]]; then
    needed="$(readelf -d "$OUT/test-shared" | sed -n 's/.*(NEEDED).*\[\(libvdmabuf[^]]*\)\]/\1/p')"
    [[ "$needed" == libvdmabuf.so.1 ]] && pass "vdmabuf-test needs $needed" \
        || fail "vdmabuf-test NEEDED '$needed' vs libvdmabuf.so.1"
    if LD_LIBRARY_PATH="$ROOT/usr/lib" "$OUT/test-shared" >"$OUT/test-shared.out" 2>&1 &&
       LD_LIBRARY_PATH="$ROOT/usr/lib" ldd "$OUT/test-shared" | grep -q "libvdmabuf.so.1 => $ROOT/usr/lib/"; then
        pass "vdmabuf-test against the installed .so: $(tail -n1 "$OUT/test-shared.out")"
    else
        fail "vdmabuf-test against the installed .so:"; grep -v '^ok' "$OUT/test-shared.out" | sed 's/^/  | /'
    fi
fi

# 4. README.md shows lib/example.c as it is (after its SPDX line)
if python3 - "$GD/lib/example.c" "$GD/README.md" <<'PY'
import sys
ex = open(sys.argv[1]).read().split("\n", 1)[1]
sys.exit(0 if "```c\n" + ex + "```\n" in open(sys.argv[2]).read() else 1)
PY
then
    pass "README.md shows lib/example.c verbatim"
else
    fail "README.md does not show lib/example.c verbatim (copy it in after its SPDX line)"
fi

echo "lib-check: sizes: $(stat -c '%n %s' "$GD/build/lib/libvdmabuf.a" "$GD/build/lib/libvdmabuf.so.1.0.0" | sed "s|$GD/build/lib/||g" | paste -sd' ')"
((fails == 0)) || { echo "lib-check: $fails failed"; exit 1; }
