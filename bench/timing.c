/*
 * carve-bench: clocks, timer calibration, histograms.
 *
 * Copyright (c) 2026 the carve authors.  MIT licence (see LICENSE).
 */
#define _GNU_SOURCE
#include "timing.h"

#include <string.h>

#include "bench.h"

double now_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

double ticks_per_ns(void)
{
#if defined(__x86_64__) || defined(__i386__)
    /* Two 50 ms windows; the larger estimate is the one least disturbed by a
     * preemption between the paired reads. */
    double best = 0.0;
    for (int attempt = 0; attempt < 2; attempt++) {
        double t0 = now_seconds();
        uint64_t c0 = tick_begin();
        double t1;
        do {
            t1 = now_seconds();
        } while (t1 - t0 < 0.05);
        uint64_t c1 = tick_end();
        double rate = (double)(c1 - c0) / ((t1 - t0) * 1e9);
        if (rate > best)
            best = rate;
    }
    return best;
#else
    return 1.0;
#endif
}

static histogram overhead_hist;

void timer_overhead(double *median, double *minimum)
{
    hist_clear(&overhead_hist);
    for (int i = 0; i < 1000000; i++) {
        uint64_t t0 = tick_begin();
        uint64_t t1 = tick_end();
        hist_add(&overhead_hist, t1 - t0);
    }
    *median = hist_quantile(&overhead_hist, 0.5);
    *minimum = hist_quantile(&overhead_hist, 1e-9);
}

double timer_resolution(void)
{
    /* Back-to-back reads without fences: the counter's own step shows as
     * the smallest non-zero difference. */
    uint64_t smallest = UINT64_MAX;
    uint64_t last = tick_raw();
    for (int i = 0; i < 1000000; i++) {
        uint64_t now = tick_raw();
        if (now > last && now - last < smallest)
            smallest = now - last;
        last = now;
    }
    return smallest == UINT64_MAX ? 0.0 : (double)smallest;
}

void hist_clear(histogram *h)
{
    memset(h, 0, sizeof *h);
}

/* The smallest tick count in bucket i, and the width of the bucket. */
static void bucket_range(size_t i, double *low, double *width)
{
    if (i < HIST_LINEAR) {
        *low = (double)i;
        *width = 1.0;
        return;
    }
    size_t k = i - HIST_LINEAR;
    unsigned octave = 12u + (unsigned)(k / HIST_SUB);
    unsigned sub = (unsigned)(k % HIST_SUB);
    double step = (double)((uint64_t)1 << (octave - 4u));
    *low = (double)(HIST_SUB + sub) * step;
    *width = step;
}

double hist_quantile(const histogram *h, double q)
{
    if (h->count == 0)
        return 0.0;
    /* The rank of the sample we want: ceil(q * count), at least 1. */
    double want = q * (double)h->count;
    uint64_t rank = (uint64_t)want;
    if ((double)rank < want)
        rank++;
    if (rank == 0)
        rank = 1;
    uint64_t seen = 0;
    for (size_t i = 0; i < HIST_BUCKETS; i++) {
        seen += h->bucket[i];
        if (seen >= rank) {
            double low, width;
            bucket_range(i, &low, &width);
            double value = width > 1.0 ? low + width / 2.0 : low;
            return value > (double)h->max ? (double)h->max : value;
        }
    }
    return (double)h->max;
}
