#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
#
# Run the fuzz targets one after the other, FUZZ_SECONDS each (default 60), starting from the
# committed seed corpus (fuzz/corpus/<target>) plus what earlier local runs found
# (fuzz/work/<target>, not committed). Prints one summary line per target:
#   fuzz: target=NAME seconds=N runs=N exec_per_s=N coverage=N corpus=N
# and exits non-zero at the first target that crashed (the input is in fuzz/artifacts/<target>/;
# keep it in fuzz/regressions/<target>/ with a test, see fuzz/README.md).
#
#   fuzz/run.sh [TARGET...]            FUZZ_SECONDS=600 fuzz/run.sh
#   FUZZ_RUNS=10000000 FUZZ_SECONDS=14400 fuzz/run.sh   # a campaign: 10 M inputs per target
#                                                      # (or the time, whichever comes first)
#
# cargo fuzz needs nightly compiler flags (-Z sanitizer, coverage passes); the stable toolchain
# accepts them with RUSTC_BOOTSTRAP=1. Sanitizer: FUZZ_SANITIZER (default address; none is faster).
set -euo pipefail
cd "$(dirname "$0")/.."

seconds=${FUZZ_SECONDS:-60}
runs=${FUZZ_RUNS:--1}
sanitizer=${FUZZ_SANITIZER:-address}
if (($#)); then targets=("$@"); else targets=(request_decode sg_resolver control_protocol proto_decode); fi
export RUSTC_BOOTSTRAP=1
export CARGO_TERM_COLOR=${CARGO_TERM_COLOR:-never}

if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "fuzz: installing cargo-fuzz"
  cargo install cargo-fuzz --locked
fi

for t in "${targets[@]}"; do
  cargo fuzz build -s "$sanitizer" "$t"
done

mkdir -p fuzz/work
for t in "${targets[@]}"; do
  mkdir -p "fuzz/work/$t"
  extra=()
  # The control target once ran a daemon thread per connection, whose thread-local destructor
  # lists LeakSanitizer reported as leaks; it serves connections on the fuzz thread now, but
  # keeps the option until a campaign shows it unneeded.
  [[ $t == control_protocol ]] && extra+=(-detect_leaks=0)
  log="fuzz/work/$t.log"
  t0=$SECONDS
  if ! cargo fuzz run -s "$sanitizer" "$t" "fuzz/work/$t" "fuzz/corpus/$t" -- \
      -max_total_time="$seconds" -runs="$runs" -timeout=30 -rss_limit_mb=4096 -print_final_stats=1 \
      "${extra[@]}" >"$log" 2>&1; then
    grep -E "panicked|ERROR|SUMMARY|Test unit written" "$log" | head -n 20 >&2 || true
    echo "fuzz: target=$t FAILED after $(grep -c . "$log") log lines, see $log" >&2
    exit 1
  fi
  elapsed=$((SECONDS - t0))
  done_line=$(grep -E '^#[0-9]+[[:space:]]+DONE' "$log" | tail -n 1 || true)
  done_runs=$(sed -E 's/^#([0-9]+).*/\1/' <<<"$done_line")
  eps=$(sed -E 's/.*exec\/s: ([0-9]+).*/\1/' <<<"$done_line")
  cov=$(sed -E 's/.*cov: ([0-9]+).*/\1/' <<<"$done_line")
  corp=$(sed -E 's/.*corp: ([0-9]+).*/\1/' <<<"$done_line")
  echo "fuzz: target=$t seconds=$elapsed runs=$done_runs exec_per_s=$eps coverage=$cov corpus=$corp"
done
