/*
 * replay_traces.h: carve-bench's trace replay section (replay_traces.c).
 *
 * Copyright (c) 2026 the carve authors.  MIT licence (see LICENSE).
 */
#ifndef CARVE_BENCH_REPLAY_TRACES_H
#define CARVE_BENCH_REPLAY_TRACES_H

/* Replays every sample trace (traces/NAME.trace.gz) with `carve replay
 * --compare` (every carve policy, glibc, jemalloc, mimalloc, tcmalloc; one
 * process per peer), prints the tables and writes them to
 * bench/results/traces.md.  0 on success; non-zero when the tool is not
 * built, there are no traces, or the replay fails. */
int bench_replay_traces(int quiet);

#endif /* CARVE_BENCH_REPLAY_TRACES_H */
