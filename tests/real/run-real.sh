#!/usr/bin/env bash
# run-real.sh: runs one command twice, with the system malloc and under
# libcarve-malloc.so, and fails unless both exit 0 and print the same
# stdout and stderr, byte for byte.  The shimmed run has CARVE_STATS=1, and
# the test also fails unless the shim's exit summary shows up on its stderr
# (so a shim that silently did not load cannot pass); those summary lines
# are removed before stderr is compared.
#
#   run-real.sh SHIM NAME [VAR=VALUE...] -- COMMAND [ARGS...]
#
# Each run happens in a fresh empty directory (its working directory), so
# commands that write files (sqlite, git) start from the same state.  The
# program (COMMAND) is looked up in /usr/bin first, then in PATH; when it is
# missing the test is skipped (exit 77) with a message saying how to get it.
set -uo pipefail

shim=$1
name=$2
shift 2
envs=()
while (($#)) && [[ $1 != -- ]]; do
    envs+=("$1")
    shift
done
[[ ${1:-} == -- ]] && shift
(($#)) || {
    echo "usage: run-real.sh SHIM NAME [VAR=VALUE...] -- COMMAND [ARGS...]" >&2
    exit 2
}
prog=$1
shift

if [[ $prog != */* ]]; then
    if [[ -x /usr/bin/$prog ]]; then
        prog=/usr/bin/$prog
    elif command -v "$prog" >/dev/null 2>&1; then
        prog=$(command -v "$prog")
    else
        echo "SKIP: $name: '$prog' is not installed (scripts/deps.sh test installs it when run as root)"
        exit 77
    fi
fi
if [[ ! -f $shim ]]; then
    echo "FAIL: $name: the shim $shim does not exist" >&2
    exit 1
fi

work=$(mktemp -d "${TMPDIR:-/tmp}/carve-real-$name.XXXXXX")
trap 'rm -rf "$work"' EXIT
mkdir "$work/plain" "$work/shim"

# A fixed environment: the same locale, time zone and home for both runs.
common=(LC_ALL=C TZ=UTC HOME="$work" "${envs[@]+"${envs[@]}"}")

run() { # run DIR [VAR=VALUE...]: the command in DIR, output in DIR.out/.err
    local dir=$1
    shift
    local start=$SECONDS
    # export in a subshell, then exec: no other program (env) is started
    # with LD_PRELOAD on the way, so only the command itself loads the shim.
    (
        cd "$dir" || exit 125
        for kv in "${common[@]}" "$@"; do
            export "${kv?}"
        done
        exec "$prog" "${args[@]+"${args[@]}"}"
    ) >"$dir.out" 2>"$dir.err"
    local rc=$?
    echo "$name: $(basename "$dir"): exit $rc, $((SECONDS - start)) s"
    return $rc
}
args=("$@")

failed=0
run "$work/plain"
rc=$?
if ((rc == 77)); then # the workload found something missing it needs
    cat "$work/plain.out" "$work/plain.err"
    exit 77
fi
((rc == 0)) || failed=1
run "$work/shim" CARVE_STATS=1 LD_PRELOAD="$shim" || failed=1
if ((failed)); then
    for d in plain shim; do
        echo "--- $d stderr (last 20 lines):"
        tail -n 20 "$work/$d.err"
    done
    echo "FAIL: $name: a run did not exit 0"
    exit 1
fi

if ! grep -q '^carve-malloc: pid [0-9]*: heap of' "$work/shim.err"; then
    echo "FAIL: $name: no carve-malloc summary on stderr: the shim was not used"
    tail -n 20 "$work/shim.err"
    exit 1
fi
grep -v '^carve-malloc: pid [0-9]*: heap of' "$work/shim.err" >"$work/shim.err.filtered"
echo "$name: $(grep -c '^carve-malloc: pid' "$work/shim.err") process(es) ran on carve; last summary:"
grep '^carve-malloc: pid' "$work/shim.err" | tail -n 1

if ! cmp -s "$work/plain.out" "$work/shim.out"; then
    echo "FAIL: $name: stdout differs under the shim:"
    diff "$work/plain.out" "$work/shim.out" | head -n 40
    exit 1
fi
if ! cmp -s "$work/plain.err" "$work/shim.err.filtered"; then
    echo "FAIL: $name: stderr differs under the shim:"
    diff "$work/plain.err" "$work/shim.err.filtered" | head -n 40
    exit 1
fi
echo "$name: ok ($(wc -c <"$work/plain.out") bytes of identical output)"
