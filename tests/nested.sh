#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
#
# The host dma-buf tests for real: crates/vhost-device-dmabuf/tests/host_dmabuf.rs needs
# /dev/udmabuf and vgem, which the build machine lacks and Debian's 6.12 and 7.x guest kernels
# have. This builds the test binary (release), boots one guest per kernel with the test binary
# and the daemon at the absolute paths the binary was built for (qemu-scripts/run-vm --file),
# loads vgem there and runs the tests with DMABUF_NESTED=1 (a missing device fails instead of
# skipping). It fails unless every expected test ran and passed in every guest.
#
#   tests/nested.sh                 kernels 6.12, 7.2 and 7.3
#   NESTED_KERNELS="6.12 7.3" tests/nested.sh
#
# Prints one line per kernel, then "N passed, N failed".
set -euo pipefail
cd "$(dirname "$0")/.."

kernels=${NESTED_KERNELS:-"6.12 7.2 7.3"}
expected=(
    udmabuf_export_maps_the_guest_pages_until_release
    host_dma_buf_shares_are_bracketed_and_copied
    an_unsignalled_fence_times_out_and_the_vm_goes_on
)
logdir=$(mktemp -d /tmp/nested.XXXXXX)
say() { printf 'nested: %s\n' "$*"; }

t_build=$SECONDS
# The test binary and, through CARGO_BIN_EXE_vhost-device-dmabuf, the daemon it starts.
if ! cargo test --release -p vhost-device-dmabuf --test host_dmabuf --no-run \
        --message-format=json >"$logdir/build.json" 2>"$logdir/build.log"; then
    tail -n 30 "$logdir/build.log" >&2
    say "build failed (logs: $logdir)"
    echo "0 passed, 1 failed"
    exit 1
fi
artifact() { # artifact TARGET-NAME KIND: the executable cargo reported for it
    python3 - "$logdir/build.json" "$1" "$2" <<'EOF'
import json, sys
path, name, kind = sys.argv[1:]
exe = None
for line in open(path):
    try:
        m = json.loads(line)
    except ValueError:
        continue
    if m.get("reason") != "compiler-artifact" or not m.get("executable"):
        continue
    t = m["target"]
    if t["name"] == name and kind in t["kind"] and (kind != "test" or m["profile"]["test"]):
        exe = m["executable"]
print(exe or "")
EOF
}
testbin=$(artifact host_dmabuf test)
daemon=$(artifact vhost-device-dmabuf bin)
[[ -x "$testbin" && -x "$daemon" ]] || { say "no test binary or daemon in cargo's output"; echo "0 passed, 1 failed"; exit 1; }
# The path the test binary will start the daemon from (env! at compile time).
grep -q -a -F "$daemon" "$testbin" || { say "$testbin does not name $daemon"; echo "0 passed, 1 failed"; exit 1; }
say "built in $((SECONDS - t_build)) s: $testbin, $daemon"

passed=0
failed=0
for k in $kernels; do
    t0=$SECONDS
    out="$logdir/$k.out"
    cmd="load-vgem >/dev/null 2>&1 || echo 'load-vgem failed'
ls -l /dev/udmabuf /dev/dri 2>&1
DMABUF_NESTED=1 $testbin --test-threads=1 --nocapture
rc=\$?
echo NESTED-RC=\$rc
exit \$rc"
    set +e
    qemu-scripts/run-vm --kernel "$k" --no-dmabuf-device --no-guest-driver --mem 1G \
        --timeout 600 --file "$testbin:$testbin" --file "$daemon:$daemon" \
        --cmd "$cmd" >"$out" 2>&1
    rc=$?
    set -e
    ran=()
    missing=()
    for t in "${expected[@]}"; do
        if grep -q -a -F "NESTED-PASS $t" "$out"; then ran+=("$t"); else missing+=("$t"); fi
    done
    accel=$(grep -a -o 'accelerator=[a-z]*' "$out" | head -n 1 || true)
    timing=$(grep -a -E 'TIMEOUT after' "$out" | sed 's/^.*: //' | tr '\n' ';' || true)
    if ((rc == 0 && ${#missing[@]} == 0)) && grep -q -a "test result: ok. ${#expected[@]} passed" "$out"; then
        passed=$((passed + 1))
        printf 'PASS nested %s: %d tests ran and passed (%s) in %d s, %s; %s\n' \
            "$k" "${#ran[@]}" "${ran[*]}" $((SECONDS - t0)) "${accel:-accelerator=?}" "$timing"
    else
        failed=$((failed + 1))
        printf 'FAIL nested %s: run-vm exit %d; not run or failed: %s (log: %s)\n' \
            "$k" "$rc" "${missing[*]:-none}" "$out"
        grep -a -E 'panicked|FAILED|SKIP|error' "$out" | head -n 15 | sed 's/^/  | /' || true
    fi
done
if ((failed == 0)); then rm -rf "$logdir"; else say "logs: $logdir"; fi
echo "$passed passed, $failed failed"
((failed == 0))
