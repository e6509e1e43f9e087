/*
 * carve-bench: single-operation timing and latency histograms.
 *
 * On x86 a timed operation is bracketed by lfence;rdtsc;lfence before and
 * rdtscp;lfence after, so the operation can neither start before the first
 * read nor finish after the second.  The bracket itself costs ticks; the
 * parent measures that overhead once (timer_overhead) and subtracts it from
 * every percentile.  Elsewhere ticks are nanoseconds from clock_gettime.
 *
 * Copyright (c) 2026 the carve authors.  MIT licence (see LICENSE).
 */
#ifndef CARVE_BENCH_TIMING_H
#define CARVE_BENCH_TIMING_H

#include <stdint.h>
#include <time.h>

#if defined(__x86_64__) || defined(__i386__)
#include <x86intrin.h>
#define BENCH_TIMER_NAME "rdtsc (lfence-bracketed)"
static inline uint64_t tick_begin(void)
{
    _mm_lfence();
    uint64_t t = __rdtsc();
    _mm_lfence();
    return t;
}
static inline uint64_t tick_raw(void)
{
    return __rdtsc();
}
static inline uint64_t tick_end(void)
{
    unsigned aux;
    uint64_t t = __rdtscp(&aux);
    _mm_lfence();
    return t;
}
#else
#define BENCH_TIMER_NAME "clock_gettime(CLOCK_MONOTONIC)"
static inline uint64_t tick_clock(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}
static inline uint64_t tick_begin(void)
{
    return tick_clock();
}
static inline uint64_t tick_raw(void)
{
    return tick_clock();
}
static inline uint64_t tick_end(void)
{
    return tick_clock();
}
#endif

/* Ticks per nanosecond, calibrated against CLOCK_MONOTONIC (1.0 when the
 * ticks are nanoseconds). */
double ticks_per_ns(void);

/* Median ticks of an empty begin/end bracket, and its minimum. */
void timer_overhead(double *median, double *minimum);

/* The smallest step the tick counter is seen to take (some virtual
 * machines advance the TSC in coarse steps): the resolution of every
 * latency figure. */
double timer_resolution(void);

/* A histogram of tick counts: exact below HIST_LINEAR ticks, then 16
 * buckets per octave (6% resolution), which is plenty for tail percentiles. */
#define HIST_LINEAR  4096u
#define HIST_SUB     16u
#define HIST_OCTAVES 40u
#define HIST_BUCKETS (HIST_LINEAR + HIST_SUB * HIST_OCTAVES)

typedef struct histogram {
    uint64_t count;
    uint64_t max;
    uint64_t bucket[HIST_BUCKETS];
} histogram;

static inline void hist_add(histogram *h, uint64_t ticks)
{
    size_t i;
    if (ticks < HIST_LINEAR) {
        i = (size_t)ticks;
    } else {
        unsigned octave = 63u - (unsigned)__builtin_clzll(ticks); /* >= 12 */
        unsigned sub = (unsigned)(ticks >> (octave - 4u)) & (HIST_SUB - 1u);
        i = HIST_LINEAR + (size_t)(octave - 12u) * HIST_SUB + sub;
        if (i >= HIST_BUCKETS)
            i = HIST_BUCKETS - 1u;
    }
    h->bucket[i]++;
    h->count++;
    if (ticks > h->max)
        h->max = ticks;
}

void hist_clear(histogram *h);
/* The q-quantile (0 < q < 1) in ticks: exact in the linear range, the
 * bucket's middle above it. */
double hist_quantile(const histogram *h, double q);

#endif /* CARVE_BENCH_TIMING_H */
