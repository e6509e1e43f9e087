/*
 * carve-bench: the workloads, one function each, and the job/result wire
 * format a child process uses to report back.
 *
 * Every workload drives an allocator through its vtable with one fixed
 * sequence of operations (fixed seed; one splitmix64 draw per step, so the
 * random numbers cost every allocator the same), writes the first byte of
 * every block it gets, and frees whatever is still live at the end, outside
 * the timed region.  A run starts with an untimed warm-up on the same
 * sequence so that every allocator, carve's pre-faulted buffer and the peers'
 * own memory alike, is measured in its steady state rather than while it
 * first faults its pages in.
 *
 * Copyright (c) 2026 the carve authors.  MIT licence (see LICENSE).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "bench.h"
#include "timing.h"

#ifdef CARVE_BENCH_HAVE_CALLGRIND
#include <valgrind/callgrind.h>
#define CALLGRIND_TOGGLE() CALLGRIND_TOGGLE_COLLECT
#else
#define CALLGRIND_TOGGLE() ((void)0)
#endif

/* How often (in steps, a power of two minus one as mask) a loop looks at the
 * clock to honour the job's time limit: rare enough to cost nothing. */
#define DEADLINE_MASK 0xffffu

double log_uniform_mean(unsigned first, unsigned count)
{
    double top = (double)((uint64_t)1 << (first + count));
    double bottom = (double)((uint64_t)1 << first);
    /* sizes in [2^k, 2^(k+1)) average 1.5 * 2^k - 0.5 */
    return (1.5 * (top - bottom) / (double)count) - 0.5;
}

/* ------------------------------------------------------------------------ */
/* W1, W2: random alloc-or-free churn over a table of slots                  */
/* ------------------------------------------------------------------------ */

typedef enum size_dist { SIZES_SMALL, SIZES_MIXED } size_dist;

typedef struct churn {
    const allocator *a;
    void *self;
    void **slots;
    size_t nslots;
    size_dist dist;
    rng r;
    uint64_t failures;
    double deadline; /* now_seconds() after which a loop stops early */
} churn;

static inline size_t churn_size(size_dist d, uint32_t bits)
{
    return d == SIZES_SMALL ? size_small(bits)
                            : size_log_uniform(bits, MIXED_FIRST_OCTAVE, MIXED_OCTAVES);
}

/* One step: pick a random slot; allocate into it if empty, else free it.
 * Returns the number of steps run (fewer than asked only past the deadline). */
__attribute__((noinline)) static uint64_t churn_steps(churn *c, uint64_t steps)
{
    void *(*const alloc_fn)(void *, size_t) = c->a->alloc;
    void (*const free_fn)(void *, void *) = c->a->free;
    void *const self = c->self;
    void **const slots = c->slots;
    const size_t nslots = c->nslots;
    const size_dist dist = c->dist;
    rng r = c->r;
    uint64_t failures = 0;
    uint64_t i;
    for (i = 0; i < steps; i++) {
        if ((i & DEADLINE_MASK) == DEADLINE_MASK && now_seconds() > c->deadline)
            break;
        uint64_t x = rng_next(&r);
        size_t s = pick_below((uint32_t)(x >> 32), nslots);
        void *p = slots[s];
        if (p != NULL) {
            free_fn(self, p);
            slots[s] = NULL;
        } else {
            p = alloc_fn(self, churn_size(dist, (uint32_t)x));
            if (p != NULL)
                *(volatile unsigned char *)p = (unsigned char)i;
            else
                failures++;
            slots[s] = p;
        }
    }
    c->r = r;
    c->failures += failures;
    return i;
}

static histogram latency_hist; /* 37 KB; its hot part is a few cache lines */

/* churn_steps with every alloc and free timed on its own (the first-byte
 * write stays outside the bracket).  Same sequence, same warm-up.  best[i]
 * keeps the fewest ticks step i took in any pass so far (see run_latency). */
__attribute__((noinline)) static uint64_t churn_steps_timed(churn *c, uint64_t steps, histogram *h,
                                                            uint32_t *best)
{
    void *(*const alloc_fn)(void *, size_t) = c->a->alloc;
    void (*const free_fn)(void *, void *) = c->a->free;
    void *const self = c->self;
    void **const slots = c->slots;
    const size_t nslots = c->nslots;
    rng r = c->r;
    uint64_t failures = 0;
    uint64_t i;
    for (i = 0; i < steps; i++) {
        if ((i & DEADLINE_MASK) == DEADLINE_MASK && now_seconds() > c->deadline)
            break;
        uint64_t x = rng_next(&r);
        size_t s = pick_below((uint32_t)(x >> 32), nslots);
        void *p = slots[s];
        uint64_t t0, t1;
        if (p != NULL) {
            t0 = tick_begin();
            free_fn(self, p);
            t1 = tick_end();
            slots[s] = NULL;
        } else {
            size_t size = churn_size(SIZES_MIXED, (uint32_t)x);
            t0 = tick_begin();
            p = alloc_fn(self, size);
            t1 = tick_end();
            if (p != NULL)
                *(volatile unsigned char *)p = (unsigned char)i;
            else
                failures++;
            slots[s] = p;
        }
        uint64_t t = t1 - t0;
        hist_add(h, t);
        if (t < best[i])
            best[i] = (uint32_t)t;
    }
    c->r = r;
    c->failures += failures;
    return i;
}

static void churn_free_all(churn *c)
{
    for (size_t s = 0; s < c->nslots; s++) {
        if (c->slots[s] != NULL) {
            c->a->free(c->self, c->slots[s]);
            c->slots[s] = NULL;
        }
    }
}

static void report_timeout(result *r, const job *j, uint64_t done, uint64_t wanted)
{
    r->ok = 0;
    snprintf(r->reason, sizeof r->reason, "timeout: over %.0f s (%llu of %llu steps)",
             j->time_limit, (unsigned long long)done, (unsigned long long)wanted);
}

/* W1 and W2; with best != NULL, one pass of the latency workload (every
 * step timed alone, run_latency). */
static void run_churn(const allocator *a, void *self, const job *j, result *r, size_dist dist,
                      uint32_t *best)
{
    const int timed = best != NULL;
    size_t nslots = (size_t)j->slots;
    churn c;
    memset(&c, 0, sizeof c);
    c.a = a;
    c.self = self;
    c.nslots = nslots;
    c.slots = bench_map(nslots * sizeof(void *));
    c.dist = dist;
    c.r.state = j->seed;
    c.deadline = now_seconds() + j->time_limit;

    uint64_t warm = churn_steps(&c, j->warmup);
    uint64_t done = 0;
    double elapsed = 0.0;
    if (warm == j->warmup) {
        if (timed) {
            hist_clear(&latency_hist);
            done = churn_steps_timed(&c, j->steps, &latency_hist, best);
        } else {
            double t0 = now_seconds();
            if (j->callgrind)
                CALLGRIND_TOGGLE();
            done = churn_steps(&c, j->steps);
            if (j->callgrind)
                CALLGRIND_TOGGLE();
            elapsed = now_seconds() - t0;
        }
    }
    churn_free_all(&c);
    bench_unmap(c.slots, nslots * sizeof(void *));

    r->failures = c.failures;
    if (warm != j->warmup || done != j->steps) {
        report_timeout(r, j, warm + done, j->warmup + j->steps);
        return;
    }
    r->ok = 1;
    if (timed) {
        r->v[0] = hist_quantile(&latency_hist, 0.999);
        r->v[1] = hist_quantile(&latency_hist, 0.9999);
        r->v[2] = hist_quantile(&latency_hist, 0.5);
        r->v[3] = (double)latency_hist.max;
    } else {
        r->v[0] = elapsed * 1e9 / (double)j->steps;
    }
}

/* ------------------------------------------------------------------------ */
/* W3: n blocks of 64 B, freed in allocation order, then in reverse          */
/* ------------------------------------------------------------------------ */

#define ORDERED_SIZE 64u

typedef struct ordered {
    const allocator *a;
    void *self;
    void **ptrs;
    size_t n;
    uint64_t failures;
    double deadline;
    int timed_out;
} ordered;

/* Allocates o->n blocks of 64 B, then frees them in allocation order or in
 * reverse.  Past the deadline it stops allocating and frees what it has. */
__attribute__((noinline)) static void ordered_phase(ordered *o, int reverse)
{
    void *(*const alloc_fn)(void *, size_t) = o->a->alloc;
    void (*const free_fn)(void *, void *) = o->a->free;
    void *const self = o->self;
    void **const ptrs = o->ptrs;
    size_t n = o->n;
    uint64_t failures = 0;
    for (size_t i = 0; i < n; i++) {
        if ((i & DEADLINE_MASK) == DEADLINE_MASK && now_seconds() > o->deadline) {
            n = i;
            o->timed_out = 1;
            break;
        }
        void *p = alloc_fn(self, ORDERED_SIZE);
        if (p != NULL)
            *(volatile unsigned char *)p = (unsigned char)i;
        else
            failures++;
        ptrs[i] = p;
    }
    if (!reverse) {
        for (size_t i = 0; i < n; i++)
            if (ptrs[i] != NULL)
                free_fn(self, ptrs[i]);
    } else {
        for (size_t i = n; i-- > 0;)
            if (ptrs[i] != NULL)
                free_fn(self, ptrs[i]);
    }
    o->failures += failures;
}

static void run_ordered(const allocator *a, void *self, const job *j, result *r)
{
    ordered o;
    memset(&o, 0, sizeof o);
    o.a = a;
    o.self = self;
    o.n = (size_t)j->steps;
    o.ptrs = bench_map(o.n * sizeof(void *));
    o.deadline = now_seconds() + j->time_limit;

    /* Warm-up: the whole sequence once, untimed. */
    ordered_phase(&o, 0);
    ordered_phase(&o, 1);
    o.failures = 0;

    double t0 = now_seconds();
    ordered_phase(&o, 0);
    double t1 = now_seconds();
    ordered_phase(&o, 1);
    double t2 = now_seconds();
    bench_unmap(o.ptrs, o.n * sizeof(void *));

    r->failures = o.failures;
    if (o.timed_out) {
        r->ok = 0;
        snprintf(r->reason, sizeof r->reason, "timeout: over %.0f s", j->time_limit);
        return;
    }
    double ops = 2.0 * (double)o.n; /* per phase: n allocs + n frees */
    r->ok = 1;
    r->v[0] = (t2 - t0) * 1e9 / (2.0 * ops);
    r->v[1] = (t1 - t0) * 1e9 / ops;
    r->v[2] = (t2 - t1) * 1e9 / ops;
}

/* ------------------------------------------------------------------------ */
/* W4: fill a fixed buffer under churn until the first failure               */
/* ------------------------------------------------------------------------ */

typedef struct live_block {
    void *ptr;
    size_t requested;
} live_block;

static void run_fill(const allocator *a, void *self, const job *j, result *r)
{
    size_t capacity = 1u << 16, count = 0;
    live_block *live = malloc(capacity * sizeof *live);
    if (live == NULL)
        die("out of memory");
    rng g = {j->seed};
    size_t requested = 0;
    uint64_t steps = 0;
    double deadline = now_seconds() + j->time_limit;
    int timed_out = 0;

    for (;;) {
        if ((++steps & DEADLINE_MASK) == 0 && now_seconds() > deadline) {
            timed_out = 1;
            break;
        }
        size_t size = size_log_uniform((uint32_t)rng_next(&g), FILL_FIRST_OCTAVE, FILL_OCTAVES);
        void *p = a->alloc(self, size);
        if (p == NULL)
            break; /* the first failure ends the workload */
        *(volatile unsigned char *)p = 1;
        if (count == capacity) {
            capacity *= 2;
            live_block *grown = realloc(live, capacity * sizeof *live);
            if (grown == NULL)
                die("out of memory");
            live = grown;
        }
        live[count].ptr = p;
        live[count].requested = size;
        count++;
        requested += size;
        /* With probability 1/2, free a random live block (possibly this one). */
        uint64_t x = rng_next(&g);
        if (x & 1u) {
            size_t victim = pick_below((uint32_t)(x >> 32), count);
            a->free(self, live[victim].ptr);
            requested -= live[victim].requested;
            live[victim] = live[--count];
        }
    }
    for (size_t i = 0; i < count; i++)
        a->free(self, live[i].ptr);
    free(live);

    if (timed_out) {
        r->ok = 0;
        snprintf(r->reason, sizeof r->reason, "timeout: over %.0f s after %llu allocations",
                 j->time_limit, (unsigned long long)steps);
        return;
    }
    r->ok = 1;
    r->v[0] = (double)requested / (double)j->heap;
    r->v[1] = (double)steps;
}

/* ------------------------------------------------------------------------ */
/* One fresh allocator per job (or per LAT pass)                             */
/* ------------------------------------------------------------------------ */

/* init, the workload, teardown.  best: the latency workload's per-step
 * minimum (run_latency), NULL for the others. */
static void run_on_fresh_allocator(const allocator *a, const job *j, result *r, uint32_t *best)
{
    void *self = NULL;
    if (a->init(a, j, &self, r->reason, sizeof r->reason) != 0) {
        r->ok = 0;
        return;
    }
    switch (j->workload) {
    case W_SMALL_CHURN:
        run_churn(a, self, j, r, SIZES_SMALL, NULL);
        break;
    case W_MIXED_CHURN:
        run_churn(a, self, j, r, SIZES_MIXED, NULL);
        break;
    case W_LATENCY:
        run_churn(a, self, j, r, SIZES_MIXED, best);
        break;
    case W_ORDERED:
        run_ordered(a, self, j, r);
        break;
    case W_FILL:
        run_fill(a, self, j, r);
        break;
    default:
        snprintf(r->reason, sizeof r->reason, "unknown workload");
        r->ok = 0;
        break;
    }
    char why[200];
    if (a->teardown(self, why, sizeof why) != 0) {
        r->ok = 0;
        snprintf(r->reason, sizeof r->reason, "%s", why);
    }
}

/* ------------------------------------------------------------------------ */
/* LAT: W2 with every operation timed, in LAT_PASSES passes                  */
/* ------------------------------------------------------------------------ */

/* The same timed sequence LAT_PASSES times, each pass from a fresh
 * allocator.  The first pass gives the plain percentiles (v[0..3]).  An
 * interrupt, a host preemption or a migration lands on a step by chance and
 * rarely on the same step twice, while an operation that is slow because of
 * what the allocator does there is slow in every pass (carve starts every
 * pass from the same buffer, so its steps meet the same heap): the
 * percentiles of each step's fastest pass (v[4..6]) are the allocator's own
 * tail with the machine's interference filtered out.  A peer starts its
 * later passes from whatever its first left behind, so its steps there are
 * alike, not equal, and the minimum can only flatter it. */
static void run_latency(const allocator *a, const job *j, result *r)
{
    size_t bytes = (size_t)j->steps * sizeof(uint32_t);
    uint32_t *best = bench_map(bytes);
    memset(best, 0xff, bytes);
    run_on_fresh_allocator(a, j, r, best);
    for (unsigned pass = 1; pass < LAT_PASSES && r->ok; pass++) {
        result again;
        memset(&again, 0, sizeof again);
        run_on_fresh_allocator(a, j, &again, best);
        if (!again.ok)
            *r = again;
    }
    if (r->ok) {
        hist_clear(&latency_hist);
        for (uint64_t i = 0; i < j->steps; i++)
            hist_add(&latency_hist, best[i]);
        r->v[4] = hist_quantile(&latency_hist, 0.999);
        r->v[5] = hist_quantile(&latency_hist, 0.9999);
        r->v[6] = (double)latency_hist.max;
    }
    bench_unmap(best, bytes);
}

/* ------------------------------------------------------------------------ */
/* Dispatch                                                                  */
/* ------------------------------------------------------------------------ */

void run_job(const allocator *a, const job *j, result *r)
{
    memset(r, 0, sizeof *r);
    /* The handle workloads drive carve's own API (and the peers for W5)
     * themselves: they need more than one heap per job, or handles. */
    switch (j->workload) {
    case W_FRAG:
        run_frag(a, j, r);
        return;
    case W_COMPACT:
        run_compact_speed(a, j, r);
        return;
    case W_PAUSE:
        run_pause(a, j, r);
        return;
    case W_PIN:
        run_pin(a, j, r);
        return;
    case W_THREADS:
        run_threads(a, j, r);
        return;
    case W_LATENCY:
        run_latency(a, j, r);
        return;
    default:
        run_on_fresh_allocator(a, j, r, NULL);
        return;
    }
}

/* ------------------------------------------------------------------------ */
/* Names and the wire format                                                 */
/* ------------------------------------------------------------------------ */

static const char *const tags[W_COUNT] = {"W1", "W2",  "W3",    "W4",  "LAT",
                                          "W5", "CMP", "PAUSE", "PIN", "THR"};

const char *workload_tag(workload_id w)
{
    return (unsigned)w < W_COUNT ? tags[w] : "?";
}

int workload_from_tag(const char *tag, workload_id *out)
{
    for (unsigned i = 0; i < W_COUNT; i++) {
        if (strcasecmp(tag, tags[i]) == 0) {
            *out = (workload_id)i;
            return 0;
        }
    }
    return -1;
}

void job_format(const job *j, char *buf, size_t len)
{
    snprintf(buf, len, "%s,%llu,%llu,%llu,%llu,%llu,%.17g,%d,%d", workload_tag(j->workload),
             (unsigned long long)j->steps, (unsigned long long)j->warmup,
             (unsigned long long)j->slots, (unsigned long long)j->heap, (unsigned long long)j->seed,
             j->time_limit, j->callgrind, j->mode);
}

int job_parse(const char *text, job *j)
{
    char tag[8];
    unsigned long long steps, warmup, slots, heap, seed;
    double limit;
    int cg, mode;
    memset(j, 0, sizeof *j);
    if (sscanf(text, "%7[^,],%llu,%llu,%llu,%llu,%llu,%lg,%d,%d", tag, &steps, &warmup, &slots,
               &heap, &seed, &limit, &cg, &mode) != 9)
        return -1;
    if (workload_from_tag(tag, &j->workload) != 0)
        return -1;
    j->steps = steps;
    j->warmup = warmup;
    j->slots = slots;
    j->heap = heap;
    j->seed = seed;
    j->time_limit = limit;
    j->callgrind = cg;
    j->mode = mode;
    return 0;
}

void result_format(const result *r, char *buf, size_t len)
{
    if (!r->ok) {
        snprintf(buf, len, "err %s\n", r->reason);
        return;
    }
    int used = snprintf(buf, len, "ok %llu", (unsigned long long)r->failures);
    for (int k = 0; k < RESULT_VALUES && used > 0 && (size_t)used < len; k++) {
        int n = snprintf(buf + used, len - (size_t)used, " %.17g", r->v[k]);
        if (n < 0)
            break;
        used += n;
    }
    if (used > 0 && (size_t)used + 1 < len) {
        buf[used] = '\n';
        buf[used + 1] = '\0';
    }
}

int result_parse(const char *text, result *r)
{
    memset(r, 0, sizeof *r);
    if (strncmp(text, "ok ", 3) == 0) {
        char *end;
        errno = 0;
        unsigned long long failures = strtoull(text + 3, &end, 10);
        if (end == text + 3 || errno != 0)
            return -1;
        for (int k = 0; k < RESULT_VALUES; k++) {
            const char *from = end;
            r->v[k] = strtod(from, &end);
            if (end == from)
                return -1;
        }
        r->ok = 1;
        r->failures = failures;
        return 0;
    }
    if (strncmp(text, "err ", 4) == 0) {
        snprintf(r->reason, sizeof r->reason, "%s", text + 4);
        r->reason[strcspn(r->reason, "\n")] = '\0';
        return 0;
    }
    return -1;
}
