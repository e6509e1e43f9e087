#!/usr/bin/env bash
# bad-free-test.sh: a program with a bad free must die under the shim with
# SIGABRT (exit status 134) and carve-malloc's message, as under glibc;
# with EXPECT, the message must contain that text.
#
#   bad-free-test.sh SHIM BAD_FREE MODE [EXPECT]
set -uo pipefail
shim=$1 prog=$2 mode=$3 expect=${4:-}
err=$(mktemp "${TMPDIR:-/tmp}/carve-bad-free.XXXXXX")
trap 'rm -f "$err"' EXIT
(
    export LD_PRELOAD=$shim
    exec "$prog" "$mode"
) 2>"$err"
rc=$?
cat "$err"
if ((rc != 134)); then
    echo "FAIL: bad_free $mode exited with $rc, expected 134 (SIGABRT)"
    exit 1
fi
if ! grep -q '^carve-malloc: [a-z]*(): ' "$err"; then
    echo "FAIL: bad_free $mode: no carve-malloc message"
    exit 1
fi
if [[ -n $expect ]] && ! grep -qF -- "$expect" "$err"; then
    echo "FAIL: bad_free $mode: the message does not say '$expect'"
    exit 1
fi
echo "bad_free $mode: aborted with a message, as it should"
