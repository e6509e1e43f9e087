#!/usr/bin/env bash
# trace-test.sh: the shim's trace recording (CARVE_TRACE), checked with
# trace_check: a multi-threaded program's trace is valid and has its
# threads; a program that runs children writes one valid trace that the
# children do not clobber (no %p), or one per process (with %p).
#
#   trace-test.sh SHIM MT_TEST TRACE_CHECK
set -euo pipefail
shim=$1 mt=$2 check=$3
work=$(mktemp -d "${TMPDIR:-/tmp}/carve-trace-test.XXXXXX")
trap 'rm -rf "$work"' EXIT
fail() {
    echo "FAIL: $*"
    exit 1
}

echo "== a multi-threaded program"
CARVE_TRACE=$work/mt.trace LD_PRELOAD=$shim "$mt" 5000 >"$work/mt.out"
"$check" "$work/mt.trace" 20000 5 || fail "the multi-threaded trace is not valid"
"$mt" 5000 | cmp -s - "$work/mt.out" || fail "tracing changed the program's output"

echo "== children without %p: only the first process writes"
CARVE_TRACE=$work/one.trace LD_PRELOAD=$shim /bin/sh -c \
    "\"$mt\" 500 >/dev/null; \"$mt\" 500 >/dev/null; echo \"child sees CARVE_TRACE='\${CARVE_TRACE-}'\"" \
    >"$work/sh.out"
cat "$work/sh.out"
grep -q "CARVE_TRACE=''" "$work/sh.out" || fail "children still see CARVE_TRACE"
[[ $(find "$work" -name 'one.trace*' | wc -l) -eq 1 ]] || fail "more than one trace file"
"$check" "$work/one.trace" 0 || fail "the parent's trace is not valid"
grep -q '^# command: /bin/sh -c' "$work/one.trace" || fail "a child overwrote the parent's trace"

echo "== children with %p: one trace per process"
mkdir "$work/pp"
CARVE_TRACE=$work/pp/t.%p.trace LD_PRELOAD=$shim /bin/sh -c \
    "\"$mt\" 500 >/dev/null; \"$mt\" 500 >/dev/null" >/dev/null
n=0
mt_traces=0
for f in "$work"/pp/*; do
    "$check" "$f" 0 || fail "$f is not valid"
    n=$((n + 1))
    if grep -q "^# command: $mt 500" "$f"; then
        mt_traces=$((mt_traces + 1))
    fi
done
((mt_traces == 2)) || fail "expected a trace from each of the 2 children, found $mt_traces (of $n files)"

echo "== an escaped %%p is a literal %p: only the first process writes"
mkdir "$work/esc"
CARVE_TRACE=$work/esc/t.%%p.trace LD_PRELOAD=$shim /bin/sh -c \
    "\"$mt\" 500 >/dev/null; \"$mt\" 500 >/dev/null" >/dev/null
[[ $(find "$work/esc" -type f | wc -l) -eq 1 ]] || fail "more than one trace file for %%p"
[[ -f $work/esc/t.%p.trace ]] || fail "no trace named t.%p.trace"
grep -q '^# command: /bin/sh -c' "$work/esc/t.%p.trace" || fail "the trace is not the parent's"
echo "trace-test: ok"
