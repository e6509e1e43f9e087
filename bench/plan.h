/*
 * carve-bench: what one invocation measures (rows x cells) and how it is
 * reported.  main.c builds and runs the plan; report.c renders it.
 *
 * A row is an allocator as the table shows it.  A cell is one measurement
 * (row, workload, parameters) repeated over runs; runs are interleaved
 * across cells so slow drift of the machine hits every allocator alike.
 * New workloads (threads, traces) add cells; nothing else changes shape.
 *
 * Copyright (c) 2026 the carve authors.  MIT licence (see LICENSE).
 */
#ifndef CARVE_BENCH_PLAN_H
#define CARVE_BENCH_PLAN_H

#include "bench.h"

#define MAX_RUNS 31
/* THR's cells are short and its figures are ratios of two medians (2
 * threads over 1), each as noisy as the machine: every run measures them
 * this many times (up to MAX_RUNS in all). */
#define THR_REPEATS 3u
#define MAX_ROWS    12
#define MAX_CELLS   96

typedef struct settings {
    int quick;
    unsigned runs;  /* interleaved runs per cell; the median is reported */
    unsigned seeds; /* W4 seeds (the first is the fixed seed) */
    int only[W_COUNT];
    const char *out; /* results file, or NULL for stdout only */
    int cpu;         /* CPU to pin to, -1 for none */
    int callgrind;
    uint64_t seed;
    double time_limit;
    uint64_t churn_steps, churn_warmup, churn_slots;
    uint64_t w1_heap, w2_heap;
    uint64_t w3_count, w3_heap;
    uint64_t fill_heap;
    uint64_t lat_steps, lat_warmup, lat_small_heap, lat_large_heap;
    uint64_t cg_steps, cg_warmup;
    uint64_t frag_allocs;            /* W5: allocations in the trace */
    uint64_t cmp_blocks;             /* CMP: 64 KiB handle blocks, every other one freed */
    uint64_t pause_heap;             /* PAUSE: the heap compacted in 64 KiB slices */
    uint64_t pin_slots, pin_steps;   /* PIN: blocks read in turn, accesses per loop */
    uint64_t pin_heap, pin_cg_steps; /* PIN: the heap; accesses counted under callgrind */
} settings;

typedef struct row {
    const char *label;
    const allocator *inproc; /* measured in this process, or NULL */
    peer *peer;              /* measured in a child process, or NULL */
    int is_carve;
    int is_harness;
} row;

typedef struct cell {
    size_t row;
    workload_id workload;
    char variant[32]; /* "" for the main table, else e.g. "1 MiB heap" */
    job j;
    unsigned runs_done;
    int stop;              /* failed or timed out: not repeated */
    result runs[MAX_RUNS]; /* for W4, one per seed */
} cell;

typedef struct machine_info {
    char cpu_model[128];
    long cores;
    char kernel[128];
    char thp[32];
    char date[64];
    char compiler[128];
    char commit[96];
    char command[1024];
    int pinned_cpu; /* -1 if not pinned */
    double ticks_per_ns;
    double overhead_ticks, overhead_min_ticks;
    double resolution_ticks;
    char load_start[32], load_end[32]; /* 1-minute load average, from /proc/loadavg */
} machine_info;

/* The PIN loops under callgrind (instructions and data reads per access),
 * measured in a full run when valgrind is there. */
typedef struct pin_counts {
    int measured;
    double ir[2], dr[2]; /* [0] pin + read + unpin, [1] raw read */
    char why[200];       /* why not measured */
} pin_counts;

typedef struct plan {
    settings s;
    machine_info m;
    frag_trace frag; /* W5's trace: its figures only (ev is NULL) */
    pin_counts pin_cg;
    row rows[MAX_ROWS];
    size_t nrows;
    cell cells[MAX_CELLS];
    size_t ncells;
    double wall_seconds;
} plan;

/* "1 MiB", "1 GiB", "512 KiB", "100 B" (exact multiples only). */
void format_bytes(uint64_t bytes, char *out, size_t len);
/* 131112 as "131,112". */
void format_count(uint64_t n, char *out, size_t len);

/* Renders the results of a finished plan as Markdown. */
void report_write(const plan *p, FILE *f);

/* The median of vals[0..n) (n > 0), which it sorts. */
double values_median(double *vals, size_t n);

/* Median of the ok runs' v[k] (latency converted to ns net of the timer);
 * returns 0 when no run succeeded. */
int cell_median(const plan *p, const cell *c, int k, double *out);
const cell *plan_cell(const plan *p, size_t row_index, workload_id w, const char *variant);

/* The callgrind section of the results file, between these markers. */
#define CG_BEGIN "<!-- carve-bench callgrind: begin -->"
#define CG_END   "<!-- carve-bench callgrind: end -->"

/* Writes report to path followed by a callgrind section: cg_section, or
 * when it is NULL the section the file held before (if any), so a full run
 * and a --callgrind run each update their own part of the file.  report may
 * be NULL to keep the file's other content.  Returns 0, or -1 with errno. */
int results_file_write(const char *path, const char *report, const char *cg_section);

#endif /* CARVE_BENCH_PLAN_H */
