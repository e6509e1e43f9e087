#!/usr/bin/env bash
# Runs make targets one after another, stopping at the first failure, with a
# banner per step that tells how long the previous ones took.  `make test` uses
# it so its steps never interleave, whatever -j make was given.
#
#   scripts/run-steps.sh TARGET...
#
# The timings of a complete run are written to $BUILD/test-timings.txt
# (BUILD as in the Makefile, default build/).  Nothing
# is printed after the last step's own output, so a run that ends in a ctest
# step ends with ctest's summary.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
make_cmd=${MAKE:-make}
total=$#
start=$SECONDS
timings=()
i=0
for target in "$@"; do
    i=$((i + 1))
    step_start=$SECONDS
    echo
    echo "======== make test [$i/$total] $target (at +$((step_start - start))s)"
    if ! "$make_cmd" --no-print-directory -C "$root" "$target"; then
        echo "======== make test: step '$target' FAILED after $((SECONDS - step_start))s" >&2
        exit 1
    fi
    timings+=("$(printf '%-14s %5ds' "$target" $((SECONDS - step_start)))")
done

build=${BUILD:-build}
[[ $build = /* ]] || build=$root/$build
mkdir -p "$build"
{
    printf '%s\n' "${timings[@]}"
    printf '%-14s %5ds\n' total $((SECONDS - start))
} >"$build/test-timings.txt"
