/*
 * replay_traces.h: carve-bench's trace replay section (replay_traces.c).
 *
 * Copyright (c) 2026 the carve authors.  MIT licence (see LICENSE).
 */
#ifndef CARVE_BENCH_REPLAY_TRACES_H
#define CARVE_BENCH_REPLAY_TRACES_H

#include <stddef.h>

/* The file the trace tables go to: bench/results/traces.md beside the
 * default results file; for any other results file FILE.md (or FILE),
 * FILE-traces.md beside it, so that a run with --out leaves the committed
 * results alone.  Writes at most len bytes; 0 when the name does not fit. */
int bench_traces_path(const char *results, char *buf, size_t len);

/* Replays every sample trace (traces/NAME.trace.gz) with `carve replay
 * --compare` (every carve policy, glibc, jemalloc, mimalloc, tcmalloc; one
 * process per peer), prints the tables and writes them to path.  0 on
 * success; non-zero when the tool is not built, there are no traces, or
 * the replay fails. */
int bench_replay_traces(int quiet, const char *path);

#endif /* CARVE_BENCH_REPLAY_TRACES_H */
