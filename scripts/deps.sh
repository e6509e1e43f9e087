#!/usr/bin/env bash
# Checks that the tools and libraries a make target needs are installed.
#
#   scripts/deps.sh [build|test|lint|bench|all]    (default: test)
#
#   build  cmake, make, gcc, zlib                      (make, make demo, make install)
#   lint   build + clang-format, clang-tidy, cppcheck  (make lint)
#   test   lint + clang, libFuzzer, valgrind, cmocka, pkg-config, gcc-multilib
#          (make test); also tries cmocka for i386 so the -m32 build runs the
#          cmocka tests too, and carries on without it if that fails
#   bench  build + jemalloc, mimalloc, tcmalloc, valgrind (make bench, bench-cg)
#   all    everything above
#
# Nothing missing: prints one line and exits 0, quickly (no apt-get at all).
# Something missing, as root: one `apt-get update`, then `apt-get install -y`
# of exactly the missing Debian packages, non-interactively.
# Something missing, not root: prints the apt-get command to run, exits 1.
set -euo pipefail

mode=${1:-test}
case $mode in
build | lint | test | bench | all) ;;
*)
    echo "usage: $0 [build|test|lint|bench|all]" >&2
    exit 2
    ;;
esac

export DEBIAN_FRONTEND=noninteractive
root_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
state_dir=$root_dir/build/.deps
tmp_dir=$(mktemp -d)
trap 'rm -rf "$tmp_dir"' EXIT

missing=() # Debian packages to install
notes=()   # what each one is for

want() { # want PACKAGE WHY: record a missing package once
    local p
    for p in "${missing[@]+"${missing[@]}"}"; do
        [[ $p == "$1" ]] && return 0
    done
    missing+=("$1")
    notes+=("$1 ($2)")
}

have_cmd() { command -v "$1" >/dev/null 2>&1; }

# Compiles and links a tiny C program with the given compiler and flags.
compiles() { # compiles CC SOURCE FLAGS...
    local cc=$1 src=$2
    shift 2
    printf '%s\n' "$src" >"$tmp_dir/probe.c"
    "$cc" "$tmp_dir/probe.c" -o "$tmp_dir/probe" "$@" >/dev/null 2>&1
}

check_build() {
    have_cmd cmake || want cmake "build system"
    have_cmd make || want make "build system"
    have_cmd gcc || want gcc "C compiler"
    [[ -f /usr/include/zlib.h ]] || want zlib1g-dev "gzip traces in the carve tool"
}

check_lint() {
    have_cmd clang-format || want clang-format "make lint, make format"
    have_cmd clang-tidy || want clang-tidy "make lint"
    have_cmd cppcheck || want cppcheck "make lint"
}

check_test() {
    local clang_rt=libclang-rt-dev
    if have_cmd clang; then
        clang_rt="libclang-rt-$(clang -dumpversion | cut -d. -f1)-dev"
        compiles clang 'int LLVMFuzzerTestOneInput(const unsigned char *d, unsigned long n)
{ (void)d; (void)n; return 0; }' -fsanitize=fuzzer,address,undefined ||
            want "$clang_rt" "libFuzzer and sanitizer runtimes for clang"
    else
        want clang "second compiler, fuzz build"
        want "$clang_rt" "libFuzzer and sanitizer runtimes for clang"
    fi
    have_cmd valgrind || want valgrind "memcheck test runs"
    have_cmd pkg-config || want pkgconf "pkg-config, the install test"
    if ! [[ -f /usr/include/cmocka.h ]] && ! (have_cmd pkg-config && pkg-config --exists cmocka); then
        want libcmocka-dev "unit tests"
    fi
    if have_cmd gcc; then
        compiles gcc '#include <pthread.h>
int main(void) { return (int)sizeof(pthread_t) - 4; }' -m32 -pthread ||
            want gcc-multilib "-m32 build"
    else
        want gcc-multilib "-m32 build"
    fi
}

check_bench() {
    [[ -f /usr/include/jemalloc/jemalloc.h ]] || want libjemalloc-dev "bench peer"
    [[ -f /usr/include/mimalloc.h ]] || want libmimalloc-dev "bench peer"
    [[ -f /usr/include/gperftools/tcmalloc.h ]] || want libgoogle-perftools-dev "bench peer (tcmalloc)"
    have_cmd valgrind || want valgrind "make bench-cg (callgrind)"
}

check_all() {
    check_build
    [[ $mode == build ]] && return 0
    case $mode in
    lint) check_lint ;;
    test) check_lint && check_test ;;
    bench) check_bench ;;
    all) check_lint && check_test && check_bench ;;
    esac
}

is_root() { [[ $(id -u) -eq 0 ]]; }

apt_updated=0
apt_update_once() {
    if [[ $apt_updated -eq 0 ]]; then
        # A mirror in mid-sync can fail one index; the install below still
        # works from the others, so this is a warning, not the end.
        apt-get update -q || echo "deps: warning: apt-get update reported errors; trying anyway" >&2
        apt_updated=1
    fi
}

# --- required packages ------------------------------------------------------
check_all
if ((${#missing[@]} > 0)); then
    echo "deps ($mode): missing: ${notes[*]}"
    if ! is_root; then
        echo "deps: run this, then try again:" >&2
        echo "  sudo apt-get install -y ${missing[*]}" >&2
        exit 1
    fi
    if ! have_cmd apt-get; then
        echo "deps: no apt-get here; install the equivalents of: ${missing[*]}" >&2
        exit 1
    fi
    apt_update_once
    apt-get install -y -q --no-install-recommends "${missing[@]}"
    missing=()
    notes=()
    check_all
    if ((${#missing[@]} > 0)); then
        echo "deps: still missing after apt-get install: ${notes[*]}" >&2
        exit 1
    fi
fi

# --- optional: cmocka for i386, so the -m32 build runs the cmocka tests -----
# Tried once per checkout (a failure is remembered in build/.deps), never fatal.
m32_cmocka_present() {
    [[ -e /usr/lib/i386-linux-gnu/libcmocka.so ]] && compiles gcc '#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
int main(void) { return 0; }' -m32 -lcmocka
}
if [[ $mode == test || $mode == all ]] && ! m32_cmocka_present; then
    marker=$state_dir/i386-cmocka-unavailable
    if [[ -f $marker ]]; then
        echo "deps: note: cmocka for i386 is not available (see $marker); the -m32 build runs only the tests that do not need cmocka"
    elif ! is_root || ! have_cmd apt-get; then
        echo "deps: note: the -m32 build will run only the tests that do not need cmocka; for all of them run:"
        echo "  sudo dpkg --add-architecture i386 && sudo apt-get update && sudo apt-get install -y libcmocka-dev:i386"
    else
        echo "deps: installing cmocka for i386 (for the -m32 test build)"
        added_arch=0
        if ! dpkg --print-foreign-architectures | grep -qx i386; then
            dpkg --add-architecture i386
            added_arch=1
            apt_updated=0 # the i386 package lists are new
        fi
        if (apt_update_once && apt-get install -y -q --no-install-recommends libcmocka-dev:i386) &&
            m32_cmocka_present; then
            echo "deps: cmocka for i386 installed"
        else
            mkdir -p "$state_dir"
            echo "apt-get install libcmocka-dev:i386 failed on $(date -u +%F)" >"$marker"
            if [[ $added_arch -eq 1 ]]; then
                dpkg --remove-architecture i386 2>/dev/null || true
            fi
            echo "deps: WARNING: could not install libcmocka-dev:i386; the -m32 build runs only the tests that do not need cmocka (SKIPPED: cmocka tests at -m32)"
        fi
    fi
fi

# --- optional: the programs the real-program tests run under the malloc shim
# (tests/real, ctest -L real).  Installed when root; otherwise those tests
# SKIP with a message, so a missing one never stops `make test`.
if [[ $mode == test || $mode == all ]]; then
    real_missing=()
    for prog in python3 sqlite3 git gawk perl; do
        have_cmd "$prog" || real_missing+=("$prog")
    done
    if ((${#real_missing[@]})); then
        if is_root && have_cmd apt-get; then
            echo "deps: installing programs for the real-program tests: ${real_missing[*]}"
            { apt_update_once && apt-get install -y -q --no-install-recommends "${real_missing[@]}"; } ||
                echo "deps: WARNING: could not install ${real_missing[*]}; their real-program tests will SKIP"
        else
            echo "deps: note: the real-program tests (ctest -L real) will SKIP ${real_missing[*]}; to run them:"
            echo "  sudo apt-get install -y ${real_missing[*]}"
        fi
    fi
fi

echo "deps ($mode): ok"
