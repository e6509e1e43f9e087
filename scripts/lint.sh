#!/usr/bin/env bash
# make lint: every static check, each one fatal on any finding.
#
#   scripts/lint.sh BUILD_DIR      (a configured build with compile_commands.json)
#
#   1. clang-format --dry-run --Werror over every C file of the project
#   2. clang-tidy (.clang-tidy at the root) over the library, the tool and the examples
#   3. cppcheck over src/
#   4. gcc -fanalyzer over src/
#
# Every check runs even when an earlier one failed, so one run lists all the
# findings; the exit status is non-zero if any check failed.
set -uo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root" || exit 1
build=${1:-build/release}
jobs=${JOBS:-2}
[[ $build = /* ]] || build=$root/$build

if [[ ! -f $build/compile_commands.json ]]; then
    echo "lint: $build/compile_commands.json is missing (configure the build first: make configure-release)" >&2
    exit 2
fi

# Sorted C sources and headers under the directories that exist.
c_files() {
    local d existing=()
    for d in "$@"; do
        [[ -d $d ]] && existing+=("$d")
    done
    ((${#existing[@]})) || return 0
    find "${existing[@]}" -type f \( -name '*.c' -o -name '*.h' \) | LC_ALL=C sort
}

failed=()
step() { # step NAME COMMAND...: run a check, remember a failure
    local name=$1
    shift
    echo "lint: $name"
    if "$@"; then
        echo "lint: $name: clean"
    else
        echo "lint: $name: FAILED"
        failed+=("$name")
    fi
}

mapfile -t format_files < <(c_files src include tools tests bench examples fuzz shim)
mapfile -t lib_sources < <(c_files src | grep '\.c$')
mapfile -t tidy_sources < <(c_files src tools examples | grep '\.c$')

check_format() {
    ((${#format_files[@]})) || return 0
    clang-format --dry-run --Werror "${format_files[@]}"
}

check_tidy() {
    ((${#tidy_sources[@]})) || return 0
    # One clang-tidy per file, $jobs at a time; --quiet keeps a clean run short.
    printf '%s\0' "${tidy_sources[@]}" |
        xargs -0 -n 1 -P "$jobs" clang-tidy -p "$build" --quiet 2> >(grep -v '^[0-9]* warnings generated\.$' >&2)
}

check_cppcheck() {
    ((${#lib_sources[@]})) || return 0
    cppcheck --quiet --std=c11 --enable=warning,style,performance,portability \
        --error-exitcode=1 --inline-suppr --suppress=missingIncludeSystem \
        -I include -I src -D__GNUC__ -j "$jobs" src
}

check_analyzer() {
    ((${#lib_sources[@]})) || return 0
    printf '%s\0' "${lib_sources[@]}" |
        xargs -0 -n 1 -P "$jobs" gcc -std=c11 -fanalyzer -Werror -Wall -Wextra \
            -Iinclude -Isrc -DCARVE_BUILDING_LIBRARY -c -o /dev/null
}

step "clang-format (${#format_files[@]} files)" check_format
step "clang-tidy (${#tidy_sources[@]} files)" check_tidy
step "cppcheck (src/)" check_cppcheck
step "gcc -fanalyzer (src/)" check_analyzer

if ((${#failed[@]})); then
    echo "lint: FAILED: ${failed[*]}"
    exit 1
fi
echo "lint: all checks clean"
