/*
 * carve-bench: issue 3's measurements (handles and compaction).
 *
 *   W5     fragmenting churn: one fixed trace of blocks of widely mixed sizes
 *          and lifetimes, replayed on a carve buffer only FRAG_SLACK (1.10)
 *          times the trace's peak live bytes: GOOD_FIT with every block a
 *          handle must complete it; each policy with raw pointers reports
 *          where it first fails (and, by bisection, the smallest buffer it
 *          completes in); each peer, which no buffer confines, reports how
 *          far its resident memory grew over the trace's peak live bytes.
 *   CMP    carve_compact's copy speed on a heap of 64 KiB handle blocks with
 *          holes, against memmove of the same bytes in the same run.
 *   PAUSE  the longest single carve_compact(h, 64 KiB) call, called until
 *          it returns 0, on a fragmented heap of mixed handle and raw blocks.
 *   PIN    pin + read one word + unpin, against reading the same word
 *          through a raw pointer.
 *
 * Nothing here is tuned to carve: the trace's parameters are fixed below
 * and every allocator replays the same events, writes the same bytes and
 * checks them when it frees.
 *
 * Copyright (c) 2026 the carve authors.  MIT licence (see LICENSE).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bench.h"
#include "carve.h"

#ifdef CARVE_BENCH_HAVE_CALLGRIND
#include <valgrind/callgrind.h>
#define CALLGRIND_TOGGLE() CALLGRIND_TOGGLE_COLLECT
#else
#define CALLGRIND_TOGGLE() ((void)0)
#endif

#define DEADLINE_MASK 0xfffu

/* ------------------------------------------------------------------------ */
/* W5's trace                                                                */
/* ------------------------------------------------------------------------ */

/* A free event: the block's id with this bit set (its size is repeated, so
 * the replay can check the block's last byte). */
#define FRAG_FREE 0x80000000u

const char *const frag_class_names[4] = {"small", "medium", "long-lived", "large"};

/* The trace's four kinds of block.  A block's lifetime is counted in
 * allocations: it is freed just before the allocation that many steps
 * later.  Long-lived blocks live between 1/8 of the trace and all of it
 * (many are still live at the end); the others come and go. */
typedef struct frag_class {
    unsigned permille;         /* share of the allocations */
    unsigned first, octaves;   /* log-uniform sizes, 2^first .. 2^(first + octaves) - 1 */
    uint32_t lo, hi;           /* uniform sizes instead, when octaves is 0 */
    uint64_t life_lo, life_hi; /* lifetime in allocations; 0, 0 = long-lived (see above) */
} frag_class;

static const frag_class frag_classes[4] = {
    {700, 4, 5, 0, 0, 1, 512},                   /* small: 16 B .. 511 B, short-lived */
    {280, 9, 5, 0, 0, 1, 16384},                 /* medium: 512 B .. 16 KiB */
    {12, 10, 5, 0, 0, 0, 0},                     /* long-lived: 1 KiB .. 32 KiB */
    {8, 0, 0, 64u << 10, 256u << 10, 256, 8192}, /* large: 64 .. 256 KiB, occasional */
};

/* A min-heap of (death, id) packed as death << 32 | id. */
typedef struct death_queue {
    uint64_t *key;
    size_t n;
} death_queue;

static void dq_push(death_queue *q, uint64_t key)
{
    size_t i = q->n++;
    while (i > 0) {
        size_t parent = (i - 1) / 2;
        if (q->key[parent] <= key)
            break;
        q->key[i] = q->key[parent];
        i = parent;
    }
    q->key[i] = key;
}

static uint64_t dq_pop(death_queue *q)
{
    uint64_t top = q->key[0], last = q->key[--q->n];
    size_t i = 0;
    for (;;) {
        size_t child = 2 * i + 1;
        if (child >= q->n)
            break;
        if (child + 1 < q->n && q->key[child + 1] < q->key[child])
            child++;
        if (q->key[child] >= last)
            break;
        q->key[i] = q->key[child];
        i = child;
    }
    if (q->n > 0)
        q->key[i] = last;
    return top;
}

static size_t frag_size(const frag_class *c, uint64_t x)
{
    if (c->octaves == 0)
        return c->lo + pick_below((uint32_t)x, (size_t)(c->hi - c->lo + 1u));
    return size_log_uniform((uint32_t)x, c->first, c->octaves);
}

static void frag_emit(frag_trace *t, uint32_t id, uint32_t size, uint64_t *live, uint64_t *blocks)
{
    frag_event *e = &t->ev[t->n++];
    e->size = size;
    if (id & FRAG_FREE) {
        e->id = id;
        *live -= size;
        (*blocks)--;
        return;
    }
    e->id = id;
    *live += size;
    (*blocks)++;
    if (*live > t->peak_live) {
        t->peak_live = *live;
        t->peak_at = t->n - 1;
    }
    if (*blocks > t->peak_blocks)
        t->peak_blocks = *blocks;
}

void frag_trace_make(frag_trace *t, uint64_t seed, uint64_t allocations)
{
    memset(t, 0, sizeof *t);
    if (allocations == 0 || allocations >= (FRAG_FREE >> 1))
        die("W5: %llu allocations is not a usable trace length", (unsigned long long)allocations);
    t->blocks = (uint32_t)allocations;
    t->map_bytes = 2 * (size_t)allocations * sizeof(frag_event);
    t->ev = bench_map(t->map_bytes);
    size_t queue_bytes = (size_t)allocations * sizeof(uint64_t);
    size_t size_bytes = (size_t)allocations * sizeof(uint32_t);
    death_queue q = {bench_map(queue_bytes), 0};
    uint32_t *sizes = bench_map(size_bytes);
    rng g = {seed ^ 0x57a7c0de5u};
    uint64_t live = 0, blocks = 0;

    for (uint64_t k = 0; k < allocations; k++) {
        while (q.n > 0 && (q.key[0] >> 32) <= k) {
            uint32_t id = (uint32_t)dq_pop(&q);
            frag_emit(t, id | FRAG_FREE, sizes[id], &live, &blocks);
        }
        uint64_t x = rng_next(&g), y = rng_next(&g);
        unsigned pick = (unsigned)pick_below((uint32_t)(x >> 32), 1000), c = 0;
        while (c < 3 && pick >= frag_classes[c].permille) {
            pick -= frag_classes[c].permille;
            c++;
        }
        const frag_class *cl = &frag_classes[c];
        size_t size = frag_size(cl, x);
        uint64_t lo = cl->life_lo, hi = cl->life_hi;
        if (lo == 0) {
            lo = allocations / 8 + 1;
            hi = allocations;
        }
        uint64_t life = lo + pick_below((uint32_t)y, (size_t)(hi - lo + 1));
        sizes[k] = (uint32_t)size;
        t->allocated += size;
        t->class_count[c]++;
        t->class_bytes[c] += size;
        frag_emit(t, (uint32_t)k, (uint32_t)size, &live, &blocks);
        dq_push(&q, ((k + life) << 32) | k);
    }
    while (q.n > 0) {
        uint32_t id = (uint32_t)dq_pop(&q);
        frag_emit(t, id | FRAG_FREE, sizes[id], &live, &blocks);
    }
    bench_unmap(q.key, queue_bytes);
    bench_unmap(sizes, size_bytes);
}

void frag_trace_free(frag_trace *t)
{
    bench_unmap(t->ev, t->map_bytes);
    memset(t, 0, sizeof *t);
}

/* ------------------------------------------------------------------------ */
/* Replaying it                                                              */
/* ------------------------------------------------------------------------ */

/* Explicit compaction during the handle replay: a budgeted slice every so
 * many operations, as a program would run one per frame or tick.  The
 * automatic compaction on a failing allocation comes on top. */
#define FRAG_COMPACT_EVERY  1000u
#define FRAG_COMPACT_BUDGET ((size_t)64 << 10)

static unsigned char frag_byte(uint32_t id)
{
    return (unsigned char)(id * 151u + 17u);
}

/* Full: the program uses all of its block (every byte written; that is
 * also what makes a peer's pages resident).  Otherwise the first and last
 * bytes only (the bisection runs, where only success matters). */
static void frag_fill(unsigned char *p, uint32_t size, uint32_t id, int full)
{
    unsigned char b = frag_byte(id);
    if (full) {
        memset(p, b, size);
    } else {
        p[0] = b;
        p[size - 1] = b;
    }
}

static int frag_intact(const unsigned char *p, uint32_t size, uint32_t id, int full)
{
    unsigned char b = frag_byte(id);
    return p[0] == b && p[size - 1] == b && (!full || p[size / 2] == b);
}

typedef struct frag_run {
    size_t done;         /* events completed */
    long long failed_at; /* the first failed allocation's event index, -1 if none */
    double seconds;
    uint64_t moved, compactions; /* stats: every compaction, explicit or automatic */
    uint64_t explicit_calls, explicit_moving, explicit_moved; /* the budgeted slices */
    int timed_out;
    char error[180]; /* a broken contract (lost bytes, a bad pin): the library's fault */
} frag_run;

typedef struct frag_state {
    const frag_trace *t;
    uint64_t *slot; /* per id: the handle or the pointer while live, else 0 */
    int full;
    double deadline;
} frag_state;

static int frag_error(frag_run *out, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int frag_error(frag_run *out, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(out->error, sizeof out->error, fmt, ap);
    va_end(ap);
    return -1;
}

/* One event on carve with handles; 1 = the allocation failed, -1 = error. */
static int frag_step_handles(carve_heap *h, const frag_state *s, const frag_event *e, frag_run *out)
{
    uint32_t id = e->id & ~FRAG_FREE;
    if (e->id & FRAG_FREE) {
        carve_handle hd = (carve_handle)s->slot[id];
        const unsigned char *p = carve_pin(h, hd);
        if (p == NULL)
            return frag_error(out, "carve_pin of live block %u failed", id);
        int intact = frag_intact(p, e->size, id, s->full);
        if (carve_unpin(h, hd) != CARVE_OK)
            return frag_error(out, "carve_unpin of block %u failed", id);
        if (!intact)
            return frag_error(out, "block %u lost its contents", id);
        int rc = carve_hfree(h, hd);
        if (rc != CARVE_OK)
            return frag_error(out, "carve_hfree of block %u: %s", id, carve_strerror(rc));
        s->slot[id] = 0;
        return 0;
    }
    carve_handle hd = carve_halloc(h, e->size);
    if (hd == 0)
        return 1;
    unsigned char *p = carve_pin(h, hd);
    if (p == NULL)
        return frag_error(out, "carve_pin of a fresh handle failed");
    frag_fill(p, e->size, id, s->full);
    if (carve_unpin(h, hd) != CARVE_OK)
        return frag_error(out, "carve_unpin of a fresh handle failed");
    s->slot[id] = hd;
    return 0;
}

/* One event on carve with raw pointers; 1 = the allocation failed. */
static int frag_step_raw(carve_heap *h, const frag_state *s, const frag_event *e, frag_run *out)
{
    uint32_t id = e->id & ~FRAG_FREE;
    if (e->id & FRAG_FREE) {
        unsigned char *p = (unsigned char *)(uintptr_t)s->slot[id];
        if (!frag_intact(p, e->size, id, s->full))
            return frag_error(out, "block %u lost its contents", id);
        int rc = carve_free(h, p);
        if (rc != CARVE_OK)
            return frag_error(out, "carve_free of block %u: %s", id, carve_strerror(rc));
        s->slot[id] = 0;
        return 0;
    }
    unsigned char *p = carve_alloc(h, e->size);
    if (p == NULL)
        return 1;
    frag_fill(p, e->size, id, s->full);
    s->slot[id] = (uint64_t)(uintptr_t)p;
    return 0;
}

/* Frees what is still live after a replay stopped early. */
static int frag_free_rest(carve_heap *h, const frag_state *s, int handles, frag_run *out)
{
    for (uint32_t id = 0; id < s->t->blocks; id++) {
        if (s->slot[id] == 0)
            continue;
        int rc = handles ? carve_hfree(h, (carve_handle)s->slot[id])
                         : carve_free(h, (void *)(uintptr_t)s->slot[id]);
        if (rc != CARVE_OK)
            return frag_error(out, "freeing block %u at the end: %s", id, carve_strerror(rc));
        s->slot[id] = 0;
    }
    return 0;
}

/* Replays the trace on a fresh carve heap of heap_bytes, with raw pointers
 * (FRAG_RAW) or handles (FRAG_HANDLES: plus a budgeted carve_compact every
 * FRAG_COMPACT_EVERY events; FRAG_HANDLES_AUTO: only the automatic
 * compaction of a failing allocation).  Returns 0 (out says how far it
 * got), or -1 when the library broke its contract. */
static int frag_replay_carve(const frag_trace *t, carve_policy policy, int handles,
                             size_t heap_bytes, int full, uint64_t *slot, double deadline,
                             frag_run *out)
{
    memset(out, 0, sizeof *out);
    out->failed_at = -1;
    carve_options opt;
    memset(&opt, 0, sizeof opt);
    opt.policy = policy;
    /* A program that uses handles knows how many blocks it keeps at most:
     * the table is sized once, at carve_init, and never grows. */
    opt.max_handles = handles != FRAG_RAW ? (size_t)t->peak_blocks : 0;
    carve_heap *h = carve_init(carve_buffer(heap_bytes), heap_bytes, &opt);
    if (h == NULL)
        return frag_error(out, "carve_init(%zu bytes) failed: %s", heap_bytes, strerror(errno));
    carve_stats fresh, st;
    carve_get_stats(h, &fresh);
    frag_state s = {t, slot, full, deadline};
    unsigned since = 0;
    double t0 = now_seconds();
    size_t i;
    for (i = 0; i < t->n; i++) {
        if ((i & DEADLINE_MASK) == DEADLINE_MASK && now_seconds() > deadline) {
            out->timed_out = 1;
            break;
        }
        int rc = handles != FRAG_RAW ? frag_step_handles(h, &s, &t->ev[i], out)
                                     : frag_step_raw(h, &s, &t->ev[i], out);
        if (rc < 0)
            return -1;
        if (rc > 0) {
            out->failed_at = (long long)i;
            break;
        }
        if (handles == FRAG_HANDLES && ++since == FRAG_COMPACT_EVERY) {
            since = 0;
            size_t moved = carve_compact(h, FRAG_COMPACT_BUDGET);
            out->explicit_calls++;
            out->explicit_moving += moved != 0;
            out->explicit_moved += moved;
            if (moved > FRAG_COMPACT_BUDGET)
                return frag_error(out, "carve_compact(h, %zu) moved %zu bytes", FRAG_COMPACT_BUDGET,
                                  moved);
        }
    }
    out->seconds = now_seconds() - t0;
    out->done = i;
    int rc = carve_check(h);
    if (rc != CARVE_OK)
        return frag_error(out, "carve_check after %zu events: %s", i, carve_strerror(rc));
    carve_get_stats(h, &st);
    out->moved = st.bytes_moved;
    out->compactions = st.compactions;
    if (frag_free_rest(h, &s, handles != FRAG_RAW, out) != 0)
        return -1;
    rc = carve_check(h);
    if (rc != CARVE_OK)
        return frag_error(out, "carve_check after freeing everything: %s", carve_strerror(rc));
    carve_get_stats(h, &st);
    if (st.live_handles != 0 || st.live_blocks != fresh.live_blocks ||
        st.used_bytes != fresh.used_bytes)
        return frag_error(out,
                          "after freeing everything: %zu live handles, %zu live blocks and %zu "
                          "used bytes (a fresh heap: %zu, %zu)",
                          st.live_handles, st.live_blocks, st.used_bytes, fresh.live_blocks,
                          fresh.used_bytes);
    return 0;
}

static size_t frag_heap_bytes(const frag_trace *t, double factor)
{
    return (size_t)((double)t->peak_live * factor + 0.5);
}

/* The smallest factor (x peak live bytes, to FRAG_BISECT_STEP) whose
 * buffer runs the whole trace, by bisection between lo (assumed too small)
 * and hi.  Completion need not be monotonic in the buffer's size, so this
 * is a size that works with a smaller one that does not, not a proof that
 * nothing smaller works.  Returns the factor, -hi when even hi fails, or 0
 * on an error (in *out). */
#define FRAG_BISECT_STEP 0.005
static double frag_bisect(const frag_trace *t, carve_policy policy, int handles, double lo,
                          double hi, uint64_t *slot, double deadline, frag_run *out)
{
    frag_run r;
    if (frag_replay_carve(t, policy, handles, frag_heap_bytes(t, hi), 0, slot, deadline, &r) != 0) {
        *out = r;
        return 0.0;
    }
    if (r.done != t->n)
        return -hi;
    while (hi - lo > FRAG_BISECT_STEP) {
        double mid = (lo + hi) / 2.0;
        if (frag_replay_carve(t, policy, handles, frag_heap_bytes(t, mid), 0, slot, deadline, &r) !=
            0) {
            *out = r;
            return 0.0;
        }
        if (r.timed_out)
            break;
        if (r.done == t->n)
            hi = mid;
        else
            lo = mid;
    }
    return hi;
}

static long read_status_kib(const char *key)
{
    FILE *f = fopen("/proc/self/status", "r");
    if (f == NULL)
        return -1;
    char line[256];
    long v = -1;
    size_t len = strlen(key);
    while (fgets(line, sizeof line, f) != NULL) {
        if (strncmp(line, key, len) == 0 && line[len] == ':') {
            v = strtol(line + len + 1, NULL, 10);
            break;
        }
    }
    fclose(f);
    return v;
}

/* Resets this process's peak resident size (VmHWM) to its current one. */
static int reset_peak_rss(void)
{
    FILE *f = fopen("/proc/self/clear_refs", "w");
    if (f == NULL)
        return -1;
    int bad = fputs("5", f) < 0;
    return fclose(f) != 0 || bad ? -1 : 0;
}

/* A peer: malloc/free through the vtable, every byte of every block
 * written; the footprint is how far the resident set grew. */
static void frag_replay_malloc(const allocator *a, const job *j, const frag_trace *t,
                               uint64_t *slot, result *r)
{
    void *self = NULL;
    if (a->init(a, j, &self, r->reason, sizeof r->reason) != 0)
        return;
    if (reset_peak_rss() != 0) {
        snprintf(r->reason, sizeof r->reason, "cannot reset the peak RSS (/proc/self/clear_refs)");
        return;
    }
    long base = read_status_kib("VmRSS");
    double deadline = now_seconds() + j->time_limit;
    uint64_t failures = 0;
    double t0 = now_seconds();
    size_t i;
    for (i = 0; i < t->n; i++) {
        if ((i & DEADLINE_MASK) == DEADLINE_MASK && now_seconds() > deadline)
            break;
        const frag_event *e = &t->ev[i];
        uint32_t id = e->id & ~FRAG_FREE;
        if (e->id & FRAG_FREE) {
            unsigned char *p = (unsigned char *)(uintptr_t)slot[id];
            if (p == NULL)
                continue; /* its allocation failed */
            if (!frag_intact(p, e->size, id, 1)) {
                snprintf(r->reason, sizeof r->reason, "block %u lost its contents", id);
                return;
            }
            a->free(self, p);
            slot[id] = 0;
        } else {
            unsigned char *p = a->alloc(self, e->size);
            if (p == NULL) {
                failures++;
                continue;
            }
            frag_fill(p, e->size, id, 1);
            slot[id] = (uint64_t)(uintptr_t)p;
        }
    }
    double seconds = now_seconds() - t0;
    long peak = read_status_kib("VmHWM");
    for (uint32_t id = 0; id < t->blocks; id++)
        if (slot[id] != 0)
            a->free(self, (void *)(uintptr_t)slot[id]);
    char why[200];
    if (a->teardown(self, why, sizeof why) != 0) {
        snprintf(r->reason, sizeof r->reason, "%s", why);
        return;
    }
    if (i != t->n) {
        snprintf(r->reason, sizeof r->reason, "timeout: over %.0f s (%zu of %zu events)",
                 j->time_limit, i, t->n);
        return;
    }
    if (base < 0 || peak < 0) {
        snprintf(r->reason, sizeof r->reason, "cannot read VmRSS/VmHWM from /proc/self/status");
        return;
    }
    r->ok = 1;
    r->failures = failures;
    r->v[0] = 1.0;
    r->v[1] = -1.0;
    r->v[2] = (double)(peak - base) * 1024.0 / (double)t->peak_live;
    r->v[3] = seconds * 1e9 / (double)t->n;
}

void run_frag(const allocator *a, const job *j, result *r)
{
    frag_trace t;
    frag_trace_make(&t, j->seed, j->steps);
    size_t slot_bytes = (size_t)t.blocks * sizeof(uint64_t);
    uint64_t *slot = bench_map(slot_bytes); /* zero: nothing live */
    double deadline = now_seconds() + j->time_limit;

    if (!a->is_carve) {
        frag_replay_malloc(a, j, &t, slot, r);
    } else {
        int handles = j->mode;
        carve_policy policy = (carve_policy)a->policy;
        size_t heap = j->heap != 0 ? (size_t)j->heap : frag_heap_bytes(&t, FRAG_SLACK);
        frag_run run;
        if (frag_replay_carve(&t, policy, handles, heap, 1, slot, deadline, &run) != 0) {
            snprintf(r->reason, sizeof r->reason, "%s", run.error);
        } else if (run.timed_out) {
            snprintf(r->reason, sizeof r->reason, "timeout: over %.0f s (%zu of %zu events)",
                     j->time_limit, run.done, t.n);
        } else {
            /* The bisection: below the buffer just run on when the trace
             * completed there, else above it, up to 4x. */
            double factor = (double)heap / (double)t.peak_live;
            int complete = run.done == t.n;
            frag_run bis;
            memset(&bis, 0, sizeof bis);
            double smallest = frag_bisect(&t, policy, handles, complete ? 1.0 : factor,
                                          complete ? factor : 4.0, slot, deadline, &bis);
            if (smallest == 0.0 && bis.error[0] != '\0') {
                snprintf(r->reason, sizeof r->reason, "bisection: %s", bis.error);
            } else {
                uint64_t allocated = 0;
                for (size_t i = 0; i < run.done; i++)
                    if (!(t.ev[i].id & FRAG_FREE))
                        allocated += t.ev[i].size;
                r->ok = 1;
                r->failures = run.failed_at >= 0 ? 1 : 0;
                r->v[0] = (double)run.done / (double)t.n;
                r->v[1] = (double)run.failed_at;
                r->v[2] = smallest;
                r->v[3] = run.seconds * 1e9 / (double)(run.done ? run.done : 1);
                r->v[4] = allocated ? (double)run.moved / (double)allocated : 0.0;
                r->v[5] = (double)run.compactions;
                r->v[6] = (double)run.explicit_moving;
                r->v[7] = allocated ? (double)run.explicit_moved / (double)allocated : 0.0;
            }
        }
    }
    bench_unmap(slot, slot_bytes);
    frag_trace_free(&t);
}

/* ------------------------------------------------------------------------ */
/* CMP: compaction speed against memmove                                     */
/* ------------------------------------------------------------------------ */

#define CMP_BLOCK ((size_t)64 << 10)

static int not_carve(const allocator *a, result *r)
{
    if (a->is_carve)
        return 0;
    snprintf(r->reason, sizeof r->reason, "not applicable");
    return 1;
}

/* Sets r->reason and returns -1, so a runner can `return fail_with(...)`. */
static int fail_with(result *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int fail_with(result *r, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(r->reason, sizeof r->reason, fmt, ap);
    va_end(ap);
    r->ok = 0;
    return -1;
}

static int pin_fill(carve_heap *h, carve_handle hd, size_t size, unsigned char byte, result *r)
{
    unsigned char *p = carve_pin(h, hd);
    if (p == NULL)
        return fail_with(r, "carve_pin of a live handle failed");
    memset(p, byte, size);
    if (carve_unpin(h, hd) != CARVE_OK)
        return fail_with(r, "carve_unpin failed");
    return 0;
}

/* The block's address now (pinned and at once unpinned: nothing moves in
 * between, so it is where the block is until the next compaction). */
static uintptr_t where(carve_heap *h, carve_handle hd)
{
    void *p = carve_pin(h, hd);
    if (p == NULL || carve_unpin(h, hd) != CARVE_OK)
        return 0;
    return (uintptr_t)p;
}

static int all_bytes(const unsigned char *p, size_t n, unsigned char byte)
{
    for (size_t i = 0; i < n; i++)
        if (p[i] != byte)
            return 0;
    return 1;
}

static int free_handles(carve_heap *h, carve_handle *hd, size_t n, result *r)
{
    for (size_t i = 0; i < n; i++) {
        if (hd[i] == 0)
            continue;
        int rc = carve_hfree(h, hd[i]);
        if (rc != CARVE_OK)
            return fail_with(r, "carve_hfree: %s", carve_strerror(rc));
        hd[i] = 0;
    }
    return 0;
}

static int compact_speed(const allocator *a, const job *j, result *r, carve_handle *hd,
                         uintptr_t *before, uintptr_t *after)
{
    size_t n = (size_t)j->slots, heap = (size_t)j->heap;
    carve_options opt;
    memset(&opt, 0, sizeof opt);
    opt.policy = (carve_policy)a->policy;
    opt.max_handles = n;
    unsigned char *buffer = carve_buffer(heap);
    carve_heap *h = carve_init(buffer, heap, &opt);
    if (h == NULL)
        return fail_with(r, "carve_init(%zu bytes) failed: %s", heap, strerror(errno));
    for (size_t i = 0; i < n; i++) {
        hd[i] = carve_halloc(h, CMP_BLOCK);
        if (hd[i] == 0)
            return fail_with(r, "carve_halloc(64 KiB) number %zu failed: %s", i + 1,
                             strerror(errno));
        if (pin_fill(h, hd[i], CMP_BLOCK, (unsigned char)(i * 7u + 1u), r) != 0)
            return -1;
    }
    /* Every other block goes: 64 KiB holes between live 64 KiB blocks. */
    for (size_t i = 0; i < n; i += 2) {
        if (carve_hfree(h, hd[i]) != CARVE_OK)
            return fail_with(r, "carve_hfree failed");
        hd[i] = 0;
    }
    for (size_t i = 1; i < n; i += 2)
        before[i] = where(h, hd[i]);

    double t0 = now_seconds();
    size_t moved = carve_compact(h, SIZE_MAX);
    double t_compact = now_seconds() - t0;

    if (moved == 0)
        return fail_with(r, "carve_compact moved nothing on a heap with %zu holes", n / 2);
    int rc = carve_check(h);
    if (rc != CARVE_OK)
        return fail_with(r, "carve_check after compaction: %s", carve_strerror(rc));
    for (size_t i = 1; i < n; i += 2) {
        after[i] = where(h, hd[i]);
        const unsigned char *p = (const unsigned char *)after[i];
        if (p == NULL || !all_bytes(p, CMP_BLOCK, (unsigned char)(i * 7u + 1u)))
            return fail_with(r, "block %zu lost its contents in the compaction", i);
    }
    if (free_handles(h, hd, n, r) != 0)
        return -1;

    /* memmove: the same moves, block by block in address order, in a
     * buffer of the same size, written first like the heap was. */
    unsigned char *ref = bench_map(heap);
    memset(ref, 1, heap);
    size_t same_bytes = 0;
    t0 = now_seconds();
    for (size_t i = 1; i < n; i += 2) {
        if (after[i] == before[i])
            continue;
        memmove(ref + (after[i] - (uintptr_t)buffer), ref + (before[i] - (uintptr_t)buffer),
                CMP_BLOCK);
        same_bytes += CMP_BLOCK;
    }
    double t_same = now_seconds() - t0;
    /* And one memmove of as many bytes as the compaction reported. */
    memset(ref, 2, heap);
    size_t one = moved < heap - CMP_BLOCK ? moved : heap - CMP_BLOCK;
    t0 = now_seconds();
    memmove(ref, ref + CMP_BLOCK, one);
    double t_one = now_seconds() - t0;
    int sane = ref[0] == 2;
    bench_unmap(ref, heap);
    if (!sane || same_bytes == 0 || t_compact <= 0 || t_same <= 0 || t_one <= 0)
        return fail_with(r, "a time or a byte count is zero");
    r->ok = 1;
    r->v[0] = (double)moved / t_compact * 1e-9;
    r->v[1] = (double)same_bytes / t_same * 1e-9;
    r->v[2] = (double)one / t_one * 1e-9;
    r->v[3] = (double)moved;
    return 0;
}

void run_compact_speed(const allocator *a, const job *j, result *r)
{
    if (not_carve(a, r))
        return;
    size_t n = (size_t)j->slots;
    size_t bytes = n * (sizeof(carve_handle) + 2 * sizeof(uintptr_t));
    unsigned char *mem = bench_map(bytes);
    carve_handle *hd = (carve_handle *)(void *)mem;
    uintptr_t *before = (uintptr_t *)(void *)(mem + n * sizeof(carve_handle));
    uintptr_t *after = before + n;
    (void)compact_speed(a, j, r, hd, before, after);
    bench_unmap(mem, bytes);
}

/* ------------------------------------------------------------------------ */
/* PAUSE: the longest carve_compact call at a 64 KiB budget                  */
/* ------------------------------------------------------------------------ */

#define PAUSE_BUDGET       ((size_t)64 << 10)
#define PAUSE_FIRST_OCTAVE 4u /* sizes 16 B .. 32 KiB: every block fits the budget */
#define PAUSE_OCTAVES      11u
#define PAUSE_RAW_EVERY    8u /* one block in 8 is a raw block, which never moves */
#define PAUSE_MAX_CALLS    ((size_t)1 << 20)

static double ns_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

typedef struct pause_block {
    carve_handle hd; /* 0 for a raw block */
    void *raw;
    uint32_t size;
} pause_block;

static int pause_check_marks(carve_heap *h, const pause_block *b, size_t n, result *r)
{
    for (size_t i = 0; i < n; i++) {
        if (b[i].hd == 0 && b[i].raw == NULL)
            continue;
        const unsigned char *p = b[i].hd ? carve_pin(h, b[i].hd) : b[i].raw;
        if (p == NULL)
            return fail_with(r, "carve_pin of a live handle failed");
        int ok = p[0] == frag_byte((uint32_t)i) && p[b[i].size - 1] == frag_byte((uint32_t)i);
        if (b[i].hd && carve_unpin(h, b[i].hd) != CARVE_OK)
            return fail_with(r, "carve_unpin failed");
        if (!ok)
            return fail_with(r, "block %zu lost its contents", i);
    }
    return 0;
}

static int compare_doubles(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static int pause_run(const allocator *a, const job *j, result *r, pause_block *b, size_t cap,
                     double *ns)
{
    size_t heap = (size_t)j->heap;
    carve_options opt;
    memset(&opt, 0, sizeof opt);
    opt.policy = (carve_policy)a->policy;
    carve_heap *h = carve_init(carve_buffer(heap), heap, &opt);
    if (h == NULL)
        return fail_with(r, "carve_init(%zu bytes) failed: %s", heap, strerror(errno));
    carve_stats st;
    carve_get_stats(h, &st);
    const size_t target = st.capacity / 10 * 9;
    rng g = {j->seed};
    size_t n = 0;
    /* Fill to 90% with mixed sizes, one block in eight raw. */
    while (n < cap) {
        uint64_t x = rng_next(&g);
        size_t size = size_log_uniform((uint32_t)x, PAUSE_FIRST_OCTAVE, PAUSE_OCTAVES);
        carve_get_stats(h, &st);
        if (st.used_bytes + size > target)
            break;
        pause_block *pb = &b[n];
        unsigned char *p;
        pb->size = (uint32_t)size;
        if (n % PAUSE_RAW_EVERY == PAUSE_RAW_EVERY - 1) {
            pb->hd = 0;
            pb->raw = p = carve_alloc(h, size);
            if (p == NULL)
                return fail_with(r, "carve_alloc(%zu) failed while filling", size);
        } else {
            pb->raw = NULL;
            pb->hd = carve_halloc(h, size);
            if (pb->hd == 0)
                return fail_with(r, "carve_halloc(%zu) failed while filling", size);
            p = carve_pin(h, pb->hd);
            if (p == NULL)
                return fail_with(r, "carve_pin of a fresh handle failed");
        }
        p[0] = p[size - 1] = frag_byte((uint32_t)n);
        if (pb->hd && carve_unpin(h, pb->hd) != CARVE_OK)
            return fail_with(r, "carve_unpin failed");
        n++;
    }
    /* Free a random half of the blocks. */
    for (size_t i = 0; i < n; i++) {
        if (!(rng_next(&g) & 1u))
            continue;
        int rc = b[i].hd ? carve_hfree(h, b[i].hd) : carve_free(h, b[i].raw);
        if (rc != CARVE_OK)
            return fail_with(r, "freeing block %zu: %s", i, carve_strerror(rc));
        b[i].hd = 0;
        b[i].raw = NULL;
    }
    /* Slices of at most 64 KiB until a call moves nothing. */
    size_t calls = 0, total = 0;
    double deadline = now_seconds() + j->time_limit;
    for (;;) {
        if (calls == PAUSE_MAX_CALLS || now_seconds() > deadline)
            return fail_with(r, "carve_compact(h, 64 KiB) still moving after %zu calls", calls);
        double t0 = ns_now();
        size_t moved = carve_compact(h, PAUSE_BUDGET);
        double t1 = ns_now();
        ns[calls++] = t1 - t0;
        if (moved > PAUSE_BUDGET)
            return fail_with(r, "carve_compact(h, %zu) moved %zu bytes", PAUSE_BUDGET, moved);
        total += moved;
        if (moved == 0)
            break;
        if ((calls & 63u) == 0) {
            int rc = carve_check(h);
            if (rc != CARVE_OK)
                return fail_with(r, "carve_check after slice %zu: %s", calls, carve_strerror(rc));
        }
    }
    size_t rest = carve_compact(h, SIZE_MAX);
    int rc = carve_check(h);
    if (rc != CARVE_OK)
        return fail_with(r, "carve_check after compaction: %s", carve_strerror(rc));
    if (pause_check_marks(h, b, n, r) != 0)
        return -1;
    for (size_t i = 0; i < n; i++) {
        if (b[i].hd == 0 && b[i].raw == NULL)
            continue;
        rc = b[i].hd ? carve_hfree(h, b[i].hd) : carve_free(h, b[i].raw);
        if (rc != CARVE_OK)
            return fail_with(r, "freeing block %zu: %s", i, carve_strerror(rc));
    }
    qsort(ns, calls, sizeof *ns, compare_doubles);
    r->ok = 1;
    r->v[0] = ns[calls - 1];
    r->v[1] = calls % 2 ? ns[calls / 2] : (ns[calls / 2 - 1] + ns[calls / 2]) / 2.0;
    r->v[2] = ns[(size_t)((double)(calls - 1) * 0.99)];
    r->v[3] = (double)calls;
    r->v[4] = (double)total;
    r->v[5] = (double)rest;
    return 0;
}

void run_pause(const allocator *a, const job *j, result *r)
{
    if (not_carve(a, r))
        return;
    size_t cap = (size_t)j->heap / 32u; /* no block is smaller than 32 bytes */
    size_t bytes = cap * sizeof(pause_block), ns_bytes = PAUSE_MAX_CALLS * sizeof(double);
    pause_block *b = bench_map(bytes);
    double *ns = bench_map(ns_bytes);
    (void)pause_run(a, j, r, b, cap, ns);
    bench_unmap(ns, ns_bytes);
    bench_unmap(b, bytes);
}

/* ------------------------------------------------------------------------ */
/* PIN: pin + read + unpin against a raw read                                */
/* ------------------------------------------------------------------------ */

#define PIN_BLOCK 64u

/* Each loop reads one 64-bit word per step from one of n blocks (n a power
 * of two, all in L1/L2), in turn.  The empty asm keeps the compiler from
 * vectorising or hoisting anything, in both loops alike. */
__attribute__((noinline)) static uint64_t pinned_loop(carve_heap *h, const carve_handle *hd,
                                                      size_t mask, uint64_t steps, int *bad)
{
    uint64_t sum = 0;
    int errors = 0;
    for (uint64_t i = 0; i < steps; i++) {
        carve_handle x = hd[i & mask];
        const uint64_t *p = carve_pin(h, x);
        sum += *p;
        errors |= carve_unpin(h, x);
        __asm__ volatile("" : "+r"(sum));
    }
    *bad = errors;
    return sum;
}

__attribute__((noinline)) static uint64_t raw_loop(const uint64_t *const *ptr, size_t mask,
                                                   uint64_t steps)
{
    uint64_t sum = 0;
    for (uint64_t i = 0; i < steps; i++) {
        sum += *ptr[i & mask];
        __asm__ volatile("" : "+r"(sum));
    }
    return sum;
}

static int pin_run(const allocator *a, const job *j, result *r, carve_handle *hd,
                   const uint64_t **ptr)
{
    size_t n = (size_t)j->slots, heap = (size_t)j->heap;
    carve_options opt;
    memset(&opt, 0, sizeof opt);
    opt.policy = (carve_policy)a->policy;
    opt.max_handles = n;
    carve_heap *h = carve_init(carve_buffer(heap), heap, &opt);
    if (h == NULL)
        return fail_with(r, "carve_init(%zu bytes) failed: %s", heap, strerror(errno));
    for (size_t i = 0; i < n; i++) {
        hd[i] = carve_halloc(h, PIN_BLOCK);
        uint64_t *p = hd[i] ? carve_pin(h, hd[i]) : NULL;
        if (p == NULL)
            return fail_with(r, "carve_halloc or carve_pin failed while setting up");
        *p = i + 1;
        if (carve_unpin(h, hd[i]) != CARVE_OK)
            return fail_with(r, "carve_unpin failed");
    }
    uint64_t steps = j->steps, per_round = (uint64_t)n * (n + 1) / 2;
    uint64_t expect = steps / n * per_round; /* steps is a multiple of n */
    int bad = 0;
    double t_pinned = 0, t_raw = 0;

    /* The raw loop reads the same words through pointers held while the
     * blocks stay pinned (so nothing can move them). */
    for (size_t i = 0; i < n; i++)
        if ((ptr[i] = carve_pin(h, hd[i])) == NULL)
            return fail_with(r, "carve_pin failed");
    if (j->mode != PIN_CG_PINNED) {
        int cg = j->mode == PIN_CG_RAW && j->callgrind;
        if (cg)
            CALLGRIND_TOGGLE();
        double t0 = now_seconds();
        uint64_t sum = raw_loop(ptr, n - 1, steps);
        t_raw = now_seconds() - t0;
        if (cg)
            CALLGRIND_TOGGLE();
        if (sum != expect)
            return fail_with(r, "raw loop: sum %llu, expected %llu", (unsigned long long)sum,
                             (unsigned long long)expect);
    }
    for (size_t i = 0; i < n; i++)
        if (carve_unpin(h, hd[i]) != CARVE_OK)
            return fail_with(r, "carve_unpin failed");

    if (j->mode != PIN_CG_RAW) {
        int cg = j->mode == PIN_CG_PINNED && j->callgrind;
        if (cg)
            CALLGRIND_TOGGLE();
        double t0 = now_seconds();
        uint64_t sum = pinned_loop(h, hd, n - 1, steps, &bad);
        t_pinned = now_seconds() - t0;
        if (cg)
            CALLGRIND_TOGGLE();
        if (bad != 0 || sum != expect)
            return fail_with(r, "pinned loop: sum %llu, expected %llu, unpin errors %d",
                             (unsigned long long)sum, (unsigned long long)expect, bad);
    }
    carve_stats st;
    carve_get_stats(h, &st);
    if (st.pinned_handles != 0)
        return fail_with(r, "%zu handles still pinned", st.pinned_handles);
    if (free_handles(h, hd, n, r) != 0)
        return -1;
    r->ok = 1;
    r->v[0] = t_pinned * 1e9 / (double)steps;
    r->v[1] = t_raw * 1e9 / (double)steps;
    return 0;
}

void run_pin(const allocator *a, const job *j, result *r)
{
    if (not_carve(a, r))
        return;
    size_t n = (size_t)j->slots;
    if (n == 0 || (n & (n - 1)) != 0 || j->steps % n != 0) {
        snprintf(r->reason, sizeof r->reason, "PIN wants a power-of-two slot count dividing steps");
        return;
    }
    size_t bytes = n * (sizeof(carve_handle) + sizeof(uint64_t *));
    unsigned char *mem = bench_map(bytes);
    carve_handle *hd = (carve_handle *)(void *)mem;
    const uint64_t **ptr = (const uint64_t **)(void *)(mem + n * sizeof(carve_handle));
    (void)pin_run(a, j, r, hd, ptr);
    bench_unmap(mem, bytes);
}
