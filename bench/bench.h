/*
 * carve-bench: shared declarations.
 *
 * The program runs one fixed operation sequence per workload on every
 * allocator.  An allocator is a small vtable (allocator below); a workload is
 * one function that drives a vtable through a job (its parameters) and fills
 * a result.  The orchestration (main.c) decides where a job runs: in this
 * process (the no-op harness and carve) or in a child process that re-executes
 * this program with a peer malloc preloaded (spawn.c).
 *
 * Copyright (c) 2026 the carve authors.  MIT licence (see LICENSE).
 */
#ifndef CARVE_BENCH_H
#define CARVE_BENCH_H

#include "peers.h"

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* ------------------------------------------------------------------------ */
/* Random numbers                                                            */
/* ------------------------------------------------------------------------ */

/* splitmix64: one 64-bit draw per step, so every allocator pays exactly the
 * same for its random numbers (the sequence depends only on the seed). */
typedef struct rng {
    uint64_t state;
} rng;

static inline uint64_t rng_next(rng *r)
{
    uint64_t z = (r->state += 0x9e3779b97f4a7c15u);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9u;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebu;
    return z ^ (z >> 31);
}

/* Uniform in [0, n) from 32 random bits, by multiply-shift (no division). */
static inline size_t pick_below(uint32_t bits, size_t n)
{
    return (size_t)(((uint64_t)bits * (uint64_t)n) >> 32);
}

/* W1 sizes: uniform 8..128 bytes. */
static inline size_t size_small(uint32_t bits)
{
    return 8u + pick_below(bits, 121u);
}

/* Log-uniform sizes: an octave k in [first, first + count) picked uniformly
 * (low 16 bits), then a size uniform in [2^k, 2^(k+1)) (high 16 bits).
 * Requires first + count - 1 <= 16. */
static inline size_t size_log_uniform(uint32_t bits, unsigned first, unsigned count)
{
    unsigned k = first + (unsigned)(((bits & 0xffffu) * count) >> 16);
    size_t offset = (size_t)(bits >> 16) >> (16u - k);
    return ((size_t)1 << k) + offset;
}

/* W2 and the latency workload: 16 B .. 64 KiB (octaves 2^4 .. 2^15). */
#define MIXED_FIRST_OCTAVE 4u
#define MIXED_OCTAVES      12u
/* W4: 16 B .. 4 KiB (octaves 2^4 .. 2^11). */
#define FILL_FIRST_OCTAVE 4u
#define FILL_OCTAVES      8u

/* Mean of size_log_uniform over its octaves: 1.5 * (2^(first+count) - 2^first) / count. */
double log_uniform_mean(unsigned first, unsigned count);

/* ------------------------------------------------------------------------ */
/* Jobs and results                                                          */
/* ------------------------------------------------------------------------ */

typedef enum workload_id {
    W_SMALL_CHURN = 0, /* W1 */
    W_MIXED_CHURN,     /* W2 */
    W_ORDERED,         /* W3 */
    W_FILL,            /* W4 (carve only) */
    W_LATENCY,         /* W2 with every operation timed */
    W_FRAG,            /* W5: fragmenting churn on a buffer 1.10x the trace's peak live bytes */
    W_COMPACT,         /* compaction speed against memmove (carve only) */
    W_PAUSE,           /* the longest carve_compact call at a 64 KiB budget (carve only) */
    W_PIN,             /* pin + read + unpin against a raw read (carve only) */
    W_THREADS,         /* THR: W1 churn on 1 and 2 threads, own slots and larson-style */
    W_COUNT
} workload_id;

/* Everything a workload needs; serialised on a child's command line. */
typedef struct job {
    workload_id workload;
    uint64_t steps;  /* timed steps (W1, W2, latency); allocations per phase (W3) */
    uint64_t warmup; /* untimed steps run first, same sequence (W1, W2, latency) */
    uint64_t slots;  /* live slots (W1, W2, latency) */
    uint64_t heap;   /* carve's buffer in bytes (ignored by malloc peers) */
    uint64_t seed;
    double time_limit; /* seconds; a job that runs longer stops and reports a timeout */
    int callgrind;     /* 1: toggle callgrind collection around the timed loop */
    int mode;          /* W5: FRAG_*; PIN: PIN_* (which loop callgrind counts) */
} job;

/* job.mode for W5: how carve runs the trace (peers ignore it): raw
 * pointers; handles with a budgeted carve_compact every 1,000 events; or
 * handles with only the automatic compaction of a failing allocation. */
enum { FRAG_RAW = 0, FRAG_HANDLES = 1, FRAG_HANDLES_AUTO = 2 };
/* job.mode for PIN: 0 times both loops; under callgrind, 1 or 2 picks the
 * loop whose instructions are counted. */
enum { PIN_TIMED = 0, PIN_CG_PINNED = 1, PIN_CG_RAW = 2 };

#define RESULT_VALUES 8

/* Passes of the latency workload's timed sequence (workloads.c, run_latency). */
#define LAT_PASSES 3u

/* What a job measured.  v[] by workload:
 *   W1, W2:   v[0] ns/op
 *   W3:       v[0] ns/op both phases, v[1] freed in order, v[2] freed in reverse
 *   W4:       v[0] requested live bytes / buffer size at the first failure
 *   latency:  v[0] p99.9, v[1] p99.99, v[2] median, v[3] max of the first pass;
 *             v[4] p99.9, v[5] p99.99, v[6] max of each step's fastest of
 *             LAT_PASSES passes; all in raw timer ticks (the timer's overhead
 *             not yet subtracted; see timing.h)
 *   W5:       v[0] fraction of the trace's events done, v[1] index of the
 *             first failed allocation (-1: none), v[2] footprint / peak live
 *             bytes (carve: the smallest buffer found by bisection to run the
 *             whole trace, negative when none up to -v[2] did; peers: peak
 *             RSS growth), v[3] ns per event, v[4] bytes moved / bytes
 *             allocated, v[5] compactions (stats: every call that moved
 *             something, explicit or automatic), v[6] the explicit calls
 *             among them, v[7] bytes the explicit calls moved / allocated
 *   COMPACT:  v[0] carve_compact GB/s, v[1] memmove GB/s (the same moves),
 *             v[2] memmove GB/s (one call, same bytes), v[3] bytes moved
 *   PAUSE:    v[0] longest call ns, v[1] median ns, v[2] p99 ns, v[3] calls,
 *             v[4] bytes moved, v[5] bytes a full compaction still moved after
 *   PIN:      v[0] ns per pinned access, v[1] ns per raw access */
typedef struct result {
    int ok;            /* 1 when v[] holds a measurement */
    char reason[200];  /* why not, when ok is 0 */
    uint64_t failures; /* allocations that returned NULL (the sequence then diverges) */
    double v[RESULT_VALUES];
} result;

const char *workload_tag(workload_id w); /* "W1", ..., "LAT" */
int workload_from_tag(const char *tag, workload_id *out);

/* "W2,10000000,..." and back; job_parse returns 0 on success. */
void job_format(const job *j, char *buf, size_t len);
int job_parse(const char *text, job *j);
void result_format(const result *r, char *buf, size_t len);
int result_parse(const char *text, result *r);

/* ------------------------------------------------------------------------ */
/* Allocators                                                                */
/* ------------------------------------------------------------------------ */

/* A small vtable.  self is whatever init produced (a carve heap, the no-op
 * stack, or NULL for malloc).  teardown runs after the workload freed every
 * block; it releases self and reports a consistency failure (0 = fine). */
typedef struct allocator {
    const char *name;
    int (*init)(const struct allocator *a, const job *j, void **self, char *why, size_t whylen);
    void *(*alloc)(void *self, size_t size);
    void (*free)(void *self, void *ptr);
    int (*teardown)(void *self, char *why, size_t whylen);
    int policy;   /* carve_policy for the carve rows */
    int is_carve; /* 1 for the carve rows: workloads that need more than the
                     vtable (handles, compaction) call carve directly */
} allocator;

extern const allocator noop_allocator;  /* the harness alone */
extern const allocator carve_good_fit;  /* carve, CARVE_GOOD_FIT */
extern const allocator carve_first_fit; /* carve, CARVE_FIRST_FIT */
extern const allocator carve_best_fit;  /* carve, CARVE_BEST_FIT */
extern const allocator libc_allocator;  /* malloc/free of whatever this process links or preloads */

/* Memory for the harness itself and carve's buffers: anonymous mmap,
 * every page written once (pre-faulted) before any timing.  One cached
 * region serves every carve heap of this process. */
void *bench_map(size_t bytes);
void bench_unmap(void *p, size_t bytes);
void *carve_buffer(size_t bytes); /* the cached pre-faulted region, grown on demand */
void carve_buffer_reserve(size_t bytes);

/* ------------------------------------------------------------------------ */
/* Workloads                                                                 */
/* ------------------------------------------------------------------------ */

/* Runs j on a, filling r.  Every workload frees what it allocated. */
void run_job(const allocator *a, const job *j, result *r);

/* W5's trace: a fixed sequence of allocations and frees of widely mixed
 * sizes and lifetimes (handles.c).  Generated from the job's seed and
 * allocation count alone, in mmap'd memory (never malloc, so a peer's heap
 * holds nothing but the replay's own blocks). */
typedef struct frag_event {
    uint32_t id;   /* the block: 0 .. allocations - 1 */
    uint32_t size; /* bytes asked; 0 = free the block */
} frag_event;

typedef struct frag_trace {
    frag_event *ev;
    size_t n;                /* events: every block is allocated once and freed once */
    size_t map_bytes;        /* of ev */
    uint32_t blocks;         /* allocations */
    uint64_t peak_live;      /* the largest sum of live requests at any point */
    size_t peak_at;          /* the event after which it is reached */
    uint64_t peak_blocks;    /* the most blocks live at once */
    uint64_t allocated;      /* the sum of all requests */
    uint64_t class_count[4]; /* allocations per class: small, medium, long-lived, large */
    uint64_t class_bytes[4];
} frag_trace;

void frag_trace_make(frag_trace *t, uint64_t seed, uint64_t allocations);
void frag_trace_free(frag_trace *t);
/* The carve buffer W5 runs on: this factor times the trace's peak live bytes. */
#define FRAG_SLACK 1.10
/* Names of the trace's classes, for the report. */
extern const char *const frag_class_names[4];

/* The W5, COMPACT, PAUSE and PIN runners (handles.c). */
void run_frag(const allocator *a, const job *j, result *r);
void run_compact_speed(const allocator *a, const job *j, result *r);
void run_pause(const allocator *a, const job *j, result *r);
void run_pin(const allocator *a, const job *j, result *r);

/* THR (threads.c): the runner, its cells in the plan, its report section.
 * add_cell (main.c) adds one cell to the plan. */
struct plan;
struct cell;
void run_threads(const allocator *a, const job *j, result *r);
void threads_plan_cells(struct plan *p);
void threads_report(const struct plan *p, FILE *f);
struct cell *add_cell(struct plan *p, size_t row_index, workload_id w, const char *variant, job j);

/* ------------------------------------------------------------------------ */
/* Peers (child processes)                                                   */
/* ------------------------------------------------------------------------ */

/* The peers (glibc, jemalloc, mimalloc, tcmalloc, in table order) are the
 * `carve` tool's: tools/carve/peers.h, with its table, look-up and spawning. */
typedef tool_peer peer;

/* Runs j for peer p in a fresh child process (this program re-executed with
 * p's library preloaded), filling r. */
void peer_run_job(const char *self_exe, const peer *p, const job *j, result *r);

/* Runs j (W1 or W2) under valgrind --tool=callgrind in a child, allocator row
 * named row ("harness", "carve-good", ... or a peer name, with preload),
 * and returns the instructions counted in the timed loop, or -1 with why. */
double callgrind_run(const char *self_exe, const char *valgrind, const char *row, const peer *p,
                     const job *j, char *why, size_t whylen);

/* The same with --cache-sim=yes: *instructions and *data_reads (the Ir and
 * Dr events of the timed loop); returns 0, or -1 with why. */
int callgrind_run_reads(const char *self_exe, const char *valgrind, const char *row, const job *j,
                        double *instructions, double *data_reads, char *why, size_t whylen);

/* ------------------------------------------------------------------------ */
/* Small utilities                                                           */
/* ------------------------------------------------------------------------ */

double now_seconds(void); /* CLOCK_MONOTONIC */
void die(const char *fmt, ...) __attribute__((noreturn, format(printf, 1, 2)));
void note(const char *fmt, ...) __attribute__((format(printf, 1, 2))); /* progress, to stderr */
extern int bench_quiet;                                                /* silences note() */

#endif /* CARVE_BENCH_H */
