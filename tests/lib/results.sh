# SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
#
# Results of tests/vm-suite.sh (sourced): one line per case, "PASS <kernel> <n> <name>
# (<details>)", "FAIL <kernel> <n> <name>: <why>" or "SKIP ..."; the checks of the host
# (eq, ge, le) and the count of the guest's TAP lines (tap_check).

# ------------------------------------------------------------------ results

CUR_K="" CUR_N="" CUR_NAME=""
ERRS=()
begin() { CUR_N=$1 CUR_NAME=$2 ERRS=() TAPS=""; }
bad() { ERRS+=("$*"); }
# need VM KEY TIMEOUT: wait for a key or record why it did not come; returns 1 then, so a
# call whose status is not used must be "need ... || true" (under set -e a bare failing call
# would end the whole run, every later block with it)
need() { wait_key "$1" "$2" "$3" || { bad "$1: $WHY"; return 1; }; }
# eq WHAT GOT WANT
eq() { [[ "$2" == "$3" ]] || bad "$1: got '${2}', want '${3}'"; }
# ge WHAT VALUE MIN (integers; NA fails)
ge() { if ! [[ "$2" =~ ^-?[0-9]+$ ]] || (( $2 < $3 )); then bad "$1: $2 < $3"; fi; }
le() { if ! [[ "$2" =~ ^-?[0-9]+$ ]] || (( $2 > $3 )); then bad "$1: $2 > $3"; fi; }
done_case() {
    local e=""
    if ((${#ERRS[@]} == 0)); then
        echo "PASS $CUR_K $CUR_N $CUR_NAME ($1${TAPS:+; guest checks ok: $TAPS})"
        PASS_N=$((PASS_N + 1))
    else
        e="$(printf '%s; ' "${ERRS[@]:0:5}")"
        ((${#ERRS[@]} <= 5)) || e+="and $((${#ERRS[@]} - 5)) more; "
        echo "FAIL $CUR_K $CUR_N $CUR_NAME: ${e%; } (logs: $KLOG)"
        FAIL_N=$((FAIL_N + 1))
    fi
}
# fail_now N NAME WHY: a case that could not run
fail_now() {
    echo "FAIL $CUR_K $1 $2: $3 (logs: $KLOG)"
    FAIL_N=$((FAIL_N + 1))
}
# skip_now N NAME WHY: a case left out on purpose
skip_now() {
    echo "SKIP $CUR_K $1 $2: $3"
    SKIP_N=$((SKIP_N + 1))
}

# tap_check VM CASE: the guest's TAP lines of CASE ("@@ tap.CASE=1..N", "ok n - ...",
# "not ok n - ..."): waits (bounded) for the guest's tapdone.CASE and for the planned count;
# every "not ok" line and a count other than the plan is a failure. Sets TAPN (e.g.
# "vm1 14/14") and adds it to TAPS, the case's summary.
TAPS=""
tap_check() {
    local vm=$1 c=$2 f="${VM_OUT[$1]}" plan="" nok=0 nbad=0 i="" l=""
    TAPN=""
    wait_key "$vm" "tapdone.$c" 120 || bad "$vm: guest TAP of case $c: $WHY"
    plan="$(grep -a -m1 -F -- "@@ tap.$c=1.." "$f" | sed 's/.*=1[.][.]\([0-9]*\).*/\1/' || true)"
    for ((i = 0; i < 50; i++)); do
        nok="$(grep -a -c -F -- "@@ tap.$c=ok " "$f" || true)"
        nbad="$(grep -a -c -F -- "@@ tap.$c=not ok " "$f" || true)"
        [[ -n "$plan" ]] && ((nok + nbad >= plan)) && break
        kill -0 "${VM_PID[$vm]}" 2>/dev/null || break
        sleep 0.2
    done
    while IFS= read -r l; do
        bad "$vm: ${l#*"@@ tap.$c="}"
    done < <(grep -a -F -- "@@ tap.$c=not ok " "$f" | cut -d'|' -f2- | head -n 5)
    if [[ -z "$plan" ]]; then
        bad "$vm: no TAP plan for case $c"
    elif ((nok + nbad != plan)); then
        bad "$vm: guest TAP of case $c: planned $plan, ran $((nok + nbad))"
    fi
    TAPN="$vm $nok/${plan:-?}"
    TAPS+="${TAPS:+, }$TAPN"
}
