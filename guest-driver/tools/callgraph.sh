#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
#
# The calls between the guest driver's source files, from the object files of a
# build: for each virtio_dmabuf_*.o, the global symbols it defines (nm) and the
# ones it uses; a use of a symbol another file defines is an edge "user -> definer".
# References count as calls (a function pointer stored in a table is one too).
# Prints every edge with its symbols, then the files in call order (tsort), and
# fails if the edges contain a cycle (tsort reports a loop).
#
# Usage: callgraph.sh [--check] BUILD_DIR     (e.g. guest-driver/build/6.12)
# (tools/, not part of the module: run by make check and make callgraph)
#   --check: print only problems; exit 1 on a cycle, 2 on bad usage/no objects.
set -euo pipefail
export LC_ALL=C

quiet=0
if [[ "${1:-}" == --check ]]; then
    quiet=1
    shift
fi
(($# == 1)) || { echo "usage: $(basename "$0") [--check] BUILD_DIR" >&2; exit 2; }
dir="$1"

# The module's objects as kbuild listed them (virtio_dmabuf.mod), else every
# virtio_dmabuf_*.o (a stale object of a removed file would then count too).
shopt -s nullglob
objs=()
if [[ -f "$dir/virtio_dmabuf.mod" ]]; then
    for o in $(cat "$dir/virtio_dmabuf.mod"); do
        o="$dir/$(basename "$o")"
        [[ -f "$o" ]] || { echo "callgraph: $o missing" >&2; exit 2; }
        objs+=("$o")
    done
else
    for o in "$dir"/virtio_dmabuf_*.o; do
        [[ "$o" == *.mod.o ]] && continue
        objs+=("$o")
    done
fi
((${#objs[@]} >= 2)) || { echo "callgraph: no virtio_dmabuf_*.o in $dir" >&2; exit 2; }

declare -A def	# symbol -> file that defines it
for o in "${objs[@]}"; do
    f="$(basename "$o" .o)"
    while read -r _ _ sym; do
        [[ -n "$sym" ]] && def[$sym]="$f"
    done < <(nm -g --defined-only "$o")
done

declare -A syms	# "user definer" -> symbols
for o in "${objs[@]}"; do
    f="$(basename "$o" .o)"
    while read -r _ sym; do
        d="${def[$sym]:-}"
        [[ -n "$d" && "$d" != "$f" ]] || continue
        syms["$f $d"]+=" $sym"
    done < <(nm -u "$o")
done

edges="$(for e in "${!syms[@]}"; do echo "$e"; done | sort)"
if ((!quiet)); then
    echo "calls between files ($dir):"
    while read -r a b; do
        [[ -n "$a" ]] || continue
        printf '  %-28s -> %-28s %s\n' "$a" "$b" "${syms["$a $b"]# }"
    done <<<"$edges"
fi

# Files no edge mentions still appear in the order (tsort takes "x x" as a node).
order="$( { echo "$edges"; for o in "${objs[@]}"; do f="$(basename "$o" .o)"; echo "$f $f"; done; } \
         | tsort 2>"$dir/.callgraph.err")" || true
if [[ -s "$dir/.callgraph.err" ]]; then
    echo "callgraph: call cycle between files in $dir:" >&2
    sed 's/^/  /' "$dir/.callgraph.err" >&2
    rm -f "$dir/.callgraph.err"
    exit 1
fi
rm -f "$dir/.callgraph.err"
if ((!quiet)); then
    echo "no cycle; call order (callers first):"
    echo "$order" | sed 's/^/  /'
fi
exit 0
