#!/usr/bin/env bash
# fd-test.sh: the shim's own descriptors (the CARVE_TRACE file, the copy of
# stderr CARVE_STATS writes to) never write into a program's files, when the
# program closes 3..63 and opens a file (it gets 3), or dup2s a file onto
# every descriptor it finds open (the shim's included).  A trace whose
# descriptor was taken stops with one line on stderr and a last
# "# recording stopped" comment, which `carve record` reports.
#
#   fd-test.sh SHIM FD_CLOBBER TRACE_CHECK CARVE_TOOL
set -euo pipefail
shim=$1 clobber=$2 check=$3 tool=$4
work=$(mktemp -d "${TMPDIR:-/tmp}/carve-fd-test.XXXXXX")
trap 'rm -rf "$work"' EXIT
fail() {
    echo "FAIL: $*"
    exit 1
}
printf 'program data\nprogram end\n' >"$work/expected"

# own_file_ok CASE: the program's file holds only what it wrote.
own_file_ok() {
    if ! cmp -s "$work/expected" "$work/$1.out"; then
        echo "-- $work/$1.out (first lines):"
        head -c 300 "$work/$1.out"
        echo
        fail "$1: the shim wrote into the program's file"
    fi
}

echo "== trace, close 3..63 and open a file"
CARVE_TRACE=$work/close.trace LD_PRELOAD=$shim "$clobber" close "$work/close.out" 2>"$work/close.err"
own_file_ok close
! grep -q carve-malloc "$work/close.err" || fail "close: unexpected message: $(cat "$work/close.err")"
"$check" "$work/close.trace" 200000 || fail "close: the trace is not valid and whole"

echo "== trace, dup2 onto every descriptor"
CARVE_TRACE=$work/dup.trace LD_PRELOAD=$shim "$clobber" dup2all "$work/dup.out" 2>"$work/dup.err"
own_file_ok dup
cat "$work/dup.err"
[[ $(grep -c '^carve-malloc: trace: .*; recording stopped$' "$work/dup.err") -eq 1 ]] ||
    fail "dup2all: expected one 'recording stopped' line on stderr"
[[ $(wc -l <"$work/dup.err") -eq 1 ]] || fail "dup2all: more than one line on stderr"
[[ $(tail -n 1 "$work/dup.trace") == "# recording stopped: "* ]] ||
    fail "dup2all: the trace does not end with '# recording stopped'"
"$check" "$work/dup.trace" 0 || fail "dup2all: the part of the trace written is not valid"

if [[ $tool != - ]]; then
    echo "== carve record, dup2 onto every descriptor"
    rc=0
    CARVE_MALLOC_LIBRARY=$shim "$tool" record -o "$work/rec.trace" -- "$clobber" dup2all \
        "$work/rec.out" 2>"$work/rec.err" || rc=$?
    cat "$work/rec.err"
    own_file_ok rec
    ((rc == 1)) || fail "carve record: exit status $rc, expected 1 for an incomplete trace"
    grep -q '^carve record: the trace in .* is incomplete' "$work/rec.err" ||
        fail "carve record does not say the trace is incomplete"
fi

for mode in close dup2all; do
    echo "== CARVE_STATS, $mode"
    CARVE_STATS=1 LD_PRELOAD=$shim "$clobber" $mode "$work/st-$mode.out" 2>"$work/st-$mode.err"
    own_file_ok "st-$mode"
    [[ $(grep -c '^carve-malloc: pid [0-9]*: heap of' "$work/st-$mode.err") -eq 1 ]] ||
        fail "CARVE_STATS, $mode: no statistics line on stderr"
done
echo "fd-test: ok"
