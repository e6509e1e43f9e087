# carve: the everyday commands.  See docs/building.md.
#
#   make                 release build (gcc, RelWithDebInfo, -Werror) in build/release
#   make demo            build, then run `carve demo`
#   make test            every test and check (what CI runs; see docs/building.md)
#   make lint            clang-format check, clang-tidy, cppcheck, gcc -fanalyzer
#   make bench           build, then run the benchmark (writes bench/results/latest.md;
#                        BENCH_ARGS="--only W1" and the like are passed to it)
#   make bench-cg        the benchmark's instruction counts under callgrind
#   make fuzz            run the fuzzers for FUZZ_SECONDS each (default 300)
#   make tsan            ThreadSanitizer build + the thread tests (ctest -L threads)
#   make install         install into PREFIX (default /usr/local)
#   make format          apply clang-format to every C file
#   make clean           remove build/
#
# Every build lives in its own directory under build/ and is configured by
# the rules below; each target first checks (and as root installs) what it
# needs with scripts/deps.sh.

SHELL := /bin/bash
.DEFAULT_GOAL := all
MAKEFLAGS += --no-print-directory

BUILD ?= build
JOBS ?= 2
PREFIX ?= /usr/local
FUZZ_SECONDS ?= 300
TEST_FUZZ_SECONDS ?= 15
BENCH_ARGS ?=
CTEST_ARGS ?=
GCC ?= gcc
CLANG ?= clang
CMAKE ?= cmake
CTEST ?= ctest

# The release build registers the valgrind variants of the tests whenever
# valgrind is installed (`make test` installs it first).
VALGRIND := $(if $(shell command -v valgrind 2>/dev/null),ON,OFF)

COMMON := -DCARVE_WERROR=ON
DEBUG_O1 := -DCMAKE_BUILD_TYPE=Debug -DCMAKE_C_FLAGS_DEBUG="-g -O1"
NO_BENCH := -DCARVE_BUILD_BENCH=OFF

CFG_release := -DCMAKE_C_COMPILER=$(GCC) -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCARVE_VALGRIND=$(VALGRIND)
CFG_clang := -DCMAKE_C_COMPILER=$(CLANG) $(DEBUG_O1)
CFG_asan := -DCMAKE_C_COMPILER=$(GCC) $(DEBUG_O1) -DCARVE_SANITIZE=address,undefined $(NO_BENCH)
CFG_tsan := -DCMAKE_C_COMPILER=$(CLANG) $(DEBUG_O1) -DCARVE_SANITIZE=thread $(NO_BENCH)
CFG_m32 := -DCMAKE_C_COMPILER=$(GCC) -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_C_FLAGS=-m32 $(NO_BENCH)
CFG_fuzz := -DCMAKE_C_COMPILER=$(CLANG) $(DEBUG_O1) -DCARVE_SANITIZE=address,undefined \
	-DCARVE_FUZZ=ON -DCARVE_BUILD_TESTS=OFF -DCARVE_BUILD_TOOLS=OFF $(NO_BENCH)

# The -m32 build looks for its libraries (cmocka) in the i386 multiarch
# directories, not in the 64-bit ones pkg-config would otherwise offer.
M32_MULTIARCH := $(or $(shell $(GCC) -m32 -print-multiarch 2>/dev/null),i386-linux-gnu)
ENV_m32 := PKG_CONFIG_LIBDIR=/usr/lib/$(M32_MULTIARCH)/pkgconfig:/usr/share/pkgconfig

# Sanitizer reports fail the test that caused them.
ASAN_ENV := ASAN_OPTIONS=detect_leaks=1:detect_stack_use_after_return=1:strict_string_checks=1 \
	UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
TSAN_ENV := TSAN_OPTIONS=halt_on_error=1:second_deadlock_stack=1

# $(call configure,NAME[,EXTRA]) and $(call build,NAME[,EXTRA]): build/NAME with CFG_NAME.
configure = $(ENV_$(1)) $(CMAKE) -S . -B $(BUILD)/$(1) --log-level=WARNING $(COMMON) $(CFG_$(1)) $(2)
build = $(call configure,$(1),$(2)) && $(CMAKE) --build $(BUILD)/$(1) --parallel $(JOBS)
# $(call ctest,NAME,ARGS[,ENV]): run ctest in build/NAME with ENV in its environment.
ctest = cd $(BUILD)/$(1) && $(3) $(CTEST) --output-on-failure --no-label-summary --parallel $(JOBS) $(2) $(CTEST_ARGS)

# Files the CMake build records for the Makefile (see the end of CMakeLists.txt).
TOOL_PATH_FILE := $(BUILD)/release/carve-tool-path
BENCH_PATH_FILE := $(BUILD)/release/carve-bench-path

FORMAT_DIRS := $(wildcard src include tools tests bench examples fuzz shim)

.PHONY: all release configure-release demo test lint bench bench-cg fuzz tsan install clean format \
	deps-build deps-test deps-lint deps-bench \
	test-release test-clang test-asan test-valgrind test-m32 test-fuzz test-tsan \
	build-clang build-asan build-m32 build-fuzz build-tsan

all: release

# --- dependencies -------------------------------------------------------------
deps-build:
	@bash scripts/deps.sh build
deps-lint:
	@bash scripts/deps.sh lint
deps-test:
	@bash scripts/deps.sh test
deps-bench:
	@bash scripts/deps.sh bench

# --- builds -------------------------------------------------------------------
release: deps-build
	$(call build,release)

configure-release: deps-build
	$(call configure,release)

build-clang:
	$(call build,clang)
build-asan:
	$(call build,asan)
build-tsan:
	$(call build,tsan)
build-m32:
	$(call build,m32)
	@if [ ! -e /usr/lib/$(M32_MULTIARCH)/libcmocka.so ]; then \
	    echo "NOTE: no cmocka for i386: the -m32 build SKIPS the cmocka tests (scripts/deps.sh test installs it as root)"; fi
build-fuzz:
	$(call build,fuzz,-DCARVE_FUZZ_SECONDS=$(TEST_FUZZ_SECONDS))

# --- make demo ----------------------------------------------------------------
demo: release
	@tool=$$(cat $(TOOL_PATH_FILE) 2>/dev/null); \
	if [ -z "$$tool" ] || [ ! -x "$$tool" ]; then \
	    echo "make demo: the carve tool is not built (no carve_tool target in tools/ yet)" >&2; exit 1; fi; \
	echo "$$tool demo"; "$$tool" demo

# --- make test: every test and check, stopping at the first failure ------------
# The gcc release suite (with its valgrind variants) runs last, so the output
# ends with ctest's summary of the largest run.
TEST_STEPS := deps-test release lint test-clang test-asan test-tsan test-m32 test-fuzz test-release

test:
	@MAKE="$(MAKE)" BUILD="$(BUILD)" bash scripts/run-steps.sh $(TEST_STEPS)

test-release: release
	$(call ctest,release,)
test-valgrind: release
	@if [ "$(VALGRIND)" != ON ]; then echo "valgrind is not installed (scripts/deps.sh test)" >&2; exit 1; fi
	$(call ctest,release,-L valgrind)
test-clang: build-clang
	$(call ctest,clang,)
test-asan: build-asan
	$(call ctest,asan,,$(ASAN_ENV))
# Only the thread tests: the rest are single-threaded, and ASan runs them.
test-tsan: build-tsan
	$(call ctest,tsan,-L threads,$(TSAN_ENV))
test-m32: build-m32
	$(call ctest,m32,)
test-fuzz: build-fuzz
	$(call ctest,fuzz,-L fuzz --timeout $$(($(TEST_FUZZ_SECONDS) + 300)))

tsan: deps-test test-tsan

# --- make lint ------------------------------------------------------------------
lint: deps-lint configure-release
	@JOBS=$(JOBS) bash scripts/lint.sh $(BUILD)/release

format: deps-lint
	@files=$$(find $(FORMAT_DIRS) -type f \( -name '*.c' -o -name '*.h' \) | LC_ALL=C sort); \
	if [ -n "$$files" ]; then clang-format -i $$files; echo "formatted $$(echo "$$files" | wc -l) files"; fi

# --- benchmark --------------------------------------------------------------------
bench: deps-bench release
	@bench=$$(cat $(BENCH_PATH_FILE) 2>/dev/null); \
	if [ -z "$$bench" ] || [ ! -x "$$bench" ]; then \
	    echo "make bench: the benchmark is not built (no carve-bench target in bench/ yet)" >&2; exit 1; fi; \
	echo "$$bench $(BENCH_ARGS)"; "$$bench" $(BENCH_ARGS)

bench-cg: deps-bench release
	@bench=$$(cat $(BENCH_PATH_FILE) 2>/dev/null); \
	if [ -z "$$bench" ] || [ ! -x "$$bench" ]; then \
	    echo "make bench-cg: the benchmark is not built (no carve-bench target in bench/ yet)" >&2; exit 1; fi; \
	echo "$$bench --callgrind $(BENCH_ARGS)"; "$$bench" --callgrind $(BENCH_ARGS)

# --- fuzzing for as long as asked ---------------------------------------------------
fuzz: deps-test
	$(call build,fuzz,-DCARVE_FUZZ_SECONDS=$(FUZZ_SECONDS))
	$(call ctest,fuzz,-L fuzz --timeout $$(($(FUZZ_SECONDS) + 300)))

# --- install / clean ------------------------------------------------------------------
install: release
	$(CMAKE) --install $(BUILD)/release --prefix $(PREFIX)

clean:
	rm -rf $(BUILD)
