/*
 * carve-bench: the threads workload THR (issue 4).
 *
 * One allocator, 1 or 2 threads, each running W1's churn (pick a random
 * slot: allocate into it if empty, else free it; sizes uniform 8..128 B;
 * first byte of every block written) on its own array of slots, in two
 * variants:
 *
 *   own     each thread keeps its own array for the whole run: every free is
 *           of a block the same thread allocated;
 *   larson  blocks are freed by another thread: when a step finds its slot
 *           full, three times in four it hands the block to the next thread
 *           (a single-producer single-consumer ring per thread) instead of
 *           freeing it, and every step frees one block from its own ring,
 *           if there is one.  With 2 threads most frees are of blocks the
 *           other thread allocated (measured: each block's first byte names
 *           the thread that allocated it); with 1 thread the ring is the
 *           thread's own, same code, no cross-thread frees.
 *
 * Throughput is the threads' allocations and frees over the wall time from
 * the moment every thread finished its untimed warm-up to the moment the
 * last one finished, in M ops/s.  carve runs GOOD_FIT with
 * CARVE_THREADSAFE (and, at 1 thread, also without it: what the lock costs;
 * and, for own slots at 2 threads, with a heap per thread: the ceiling);
 * the peers are glibc, jemalloc, mimalloc and tcmalloc, each in a child
 * process with its library preloaded.  When the benchmark pins itself to one
 * CPU (the default), the workers are pinned to distinct CPUs, starting with
 * that one, so the 2-thread figures really use two cores.
 *
 * Copyright (c) 2026 the carve authors.  MIT licence (see LICENSE).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "carve.h"
#include "plan.h"

/* job.mode: the variant, the thread count (bits 4..7), and for carve
 * THR_NO_LOCK: a heap without CARVE_THREADSAFE (1 thread only), or
 * THR_PRIVATE: a heap of its own for each thread, with CARVE_THREADSAFE
 * (own slots, 2 threads; its 1-thread figure is the plain one).  Nothing
 * is shared between the threads then, neither the lock nor a line of a
 * heap, but each runs the same code: its 2-thread / 1-thread ratio is what
 * this machine gives the same work in the same run, the ceiling against
 * which the shared heap's scaling is read. */
enum { THR_OWN = 0, THR_LARSON = 1, THR_NO_LOCK = 0x100, THR_PRIVATE = 0x200 };
#define THR_MODE(variant, threads) ((variant) | ((threads) << 4))
#define THR_VARIANT(mode)          ((mode)&0xf)
#define THR_THREADS(mode)          (((mode) >> 4) & 0xf)

#define THR_MAX_THREADS 8
#define THR_SLOTS       10000u /* per thread, as W1 */
#define THR_RING                                                        \
    131072u /* larson: blocks in flight to one thread (a power of two): \
               room for ~15 ms of the other thread being descheduled */
#define THR_HEAP      ((uint64_t)64 << 20)
#define DEADLINE_MASK 0xffffu

/* ------------------------------------------------------------------------ */
/* The run                                                                   */
/* ------------------------------------------------------------------------ */

/* larson: blocks handed to one thread.  The previous thread is the only
 * producer (it advances tail), the owner the only consumer (head). */
typedef struct thr_ring {
    _Alignas(64) atomic_size_t head;
    _Alignas(64) atomic_size_t tail;
    _Alignas(64) void *block[THR_RING];
} thr_ring;

static int ring_push(thr_ring *q, void *p)
{
    size_t tail = atomic_load_explicit(&q->tail, memory_order_relaxed);
    if (tail - atomic_load_explicit(&q->head, memory_order_acquire) == THR_RING)
        return 0; /* full: the caller frees the block itself */
    q->block[tail & (THR_RING - 1u)] = p;
    atomic_store_explicit(&q->tail, tail + 1u, memory_order_release);
    return 1;
}

static void *ring_pop(thr_ring *q)
{
    size_t head = atomic_load_explicit(&q->head, memory_order_relaxed);
    if (head == atomic_load_explicit(&q->tail, memory_order_acquire))
        return NULL;
    void *p = q->block[head & (THR_RING - 1u)];
    atomic_store_explicit(&q->head, head + 1u, memory_order_release);
    return p;
}

typedef struct thr_run {
    const allocator *a;
    void *self;
    const job *j;
    unsigned threads;
    int larson;
    double deadline;
    pthread_barrier_t warm;   /* every thread finished its warm-up */
    pthread_barrier_t done;   /* every thread finished its timed steps */
    thr_ring *rings;          /* larson: one per thread */
    int cpu[THR_MAX_THREADS]; /* where to pin each worker, -1 = do not */
} thr_run;

typedef struct thr_worker {
    thr_run *run;
    unsigned index;
    pthread_t tid;
    void **slots;
    void *self;         /* the allocator's state this thread uses */
    thr_ring *in, *out; /* larson: blocks to free, blocks for the next thread */
    rng r;
    double start, end;
    uint64_t steps_done, ops, failures, frees, remote_frees;
    int cpu_seen; /* sched_getcpu() after the timed steps */
} thr_worker;

/* The churn: steps of W1 on w->slots; larson hands blocks on and frees
 * the ones handed to it, counting those of other threads. */
__attribute__((noinline)) static uint64_t thr_steps(thr_worker *w, uint64_t steps)
{
    thr_run *run = w->run;
    void *(*const alloc_fn)(void *, size_t) = run->a->alloc;
    void (*const free_fn)(void *, void *) = run->a->free;
    void *const self = w->self;
    const int larson = run->larson;
    const unsigned char tag = (unsigned char)(w->index + 1);
    void **const slots = w->slots;
    thr_ring *const in = w->in, *const out = w->out;
    rng r = w->r;
    uint64_t failures = 0, frees = 0, remote = 0, ops = 0, i;
    for (i = 0; i < steps; i++) {
        if ((i & DEADLINE_MASK) == DEADLINE_MASK && now_seconds() > run->deadline)
            break;
        uint64_t x = rng_next(&r);
        size_t s = pick_below((uint32_t)(x >> 32), THR_SLOTS);
        void *p = slots[s];
        if (larson) {
            void *q = ring_pop(in);
            if (q != NULL) {
                remote += *(volatile unsigned char *)q != tag;
                frees++;
                ops++;
                free_fn(self, q);
            }
        }
        if (p != NULL) {
            slots[s] = NULL;
            if (larson && (x & 3u) != 0 && ring_push(out, p))
                continue;
            frees++;
            ops++;
            free_fn(self, p);
        } else {
            ops++;
            p = alloc_fn(self, size_small((uint32_t)x));
            if (p != NULL)
                *(volatile unsigned char *)p = tag;
            else
                failures++;
            slots[s] = p;
        }
    }
    w->r = r;
    w->ops += ops;
    w->failures += failures;
    w->frees += frees;
    w->remote_frees += remote;
    return i;
}

static void free_slots(const thr_run *run, void *self, void **slots)
{
    for (size_t s = 0; s < THR_SLOTS; s++) {
        if (slots[s] != NULL) {
            run->a->free(self, slots[s]);
            slots[s] = NULL;
        }
    }
}

static void *thr_worker_main(void *arg)
{
    thr_worker *w = arg;
    thr_run *run = w->run;
    if (run->cpu[w->index] >= 0) {
        cpu_set_t one;
        CPU_ZERO(&one);
        CPU_SET((unsigned)run->cpu[w->index], &one);
        (void)pthread_setaffinity_np(pthread_self(), sizeof one, &one);
    }
    uint64_t warm = thr_steps(w, run->j->warmup);
    pthread_barrier_wait(&run->warm);
    w->start = now_seconds();
    w->ops = w->frees = w->remote_frees = w->failures = 0;
    w->steps_done = warm == run->j->warmup ? thr_steps(w, run->j->steps) : 0;
    w->end = now_seconds();
    w->cpu_seen = sched_getcpu();
    /* Nobody frees (or trades) while another thread is still timed. */
    pthread_barrier_wait(&run->done);
    if (run->larson)
        for (void *q; (q = ring_pop(w->in)) != NULL;)
            run->a->free(w->self, q);
    free_slots(run, w->self, w->slots);
    return NULL;
}

/* Where to pin the workers: when this process is pinned to one CPU (the
 * benchmark's default), worker t goes to the t-th CPU counting down from it
 * (wrapping), so two workers use two cores; otherwise the scheduler decides. */
static void choose_cpus(thr_run *run)
{
    cpu_set_t allowed;
    for (unsigned t = 0; t < THR_MAX_THREADS; t++)
        run->cpu[t] = -1;
    if (sched_getaffinity(0, sizeof allowed, &allowed) != 0 || CPU_COUNT(&allowed) != 1)
        return;
    int first = -1;
    for (int c = 0; c < CPU_SETSIZE && first < 0; c++)
        if (CPU_ISSET((unsigned)c, &allowed))
            first = c;
    long online = sysconf(_SC_NPROCESSORS_ONLN);
    if (first < 0 || online < 1)
        return;
    for (unsigned t = 0; t < run->threads; t++)
        run->cpu[t] = (int)(((long)first - (long)t % online + online) % online);
}

static int count_distinct(const int *v, unsigned n)
{
    int distinct = 0;
    for (unsigned i = 0; i < n; i++) {
        int seen = 0;
        for (unsigned k = 0; k < i; k++)
            seen |= v[k] == v[i];
        distinct += !seen;
    }
    return distinct;
}

/* carve's heaps for a THR job, n of them side by side in the benchmark's
 * buffer: GOOD_FIT (the row's policy), with CARVE_THREADSAFE unless the
 * job says THR_NO_LOCK.  0 when one cannot be made (those made are let go). */
static int thr_carve_heaps(const allocator *a, const job *j, carve_heap **heaps, unsigned n,
                           char *why, size_t whylen)
{
    carve_options opt;
    memset(&opt, 0, sizeof opt);
    opt.policy = (carve_policy)a->policy;
    opt.flags = (j->mode & THR_NO_LOCK) ? 0u : (unsigned)CARVE_THREADSAFE;
    size_t bytes = (size_t)j->heap;
    unsigned char *buf = carve_buffer(bytes * n);
    for (unsigned k = 0; k < n; k++) {
        heaps[k] = carve_init(buf + (size_t)k * bytes, bytes, &opt);
        if (heaps[k] == NULL) {
            snprintf(why, whylen, "carve_init(%zu bytes) failed: %s", bytes, strerror(errno));
            while (k-- > 0)
                (void)carve_detach(heaps[k]);
            return 0;
        }
    }
    return 1;
}

/* Every block freed and every worker gone (its cache, if any, went back):
 * the heap must be consistent and empty; then this process lets go of it,
 * since its buffer is reused by the next heap. */
static int thr_carve_teardown(carve_heap *h, char *why, size_t whylen)
{
    int status = carve_check(h), bad = 0;
    carve_stats st;
    carve_get_stats(h, &st);
    if (status != CARVE_OK) {
        snprintf(why, whylen, "carve_check after the run: %s", carve_strerror(status));
        bad = 1;
    } else if (st.live_blocks != 0 || st.allocs != st.frees) {
        snprintf(why, whylen, "carve after the run: %zu live blocks, %llu allocs, %llu frees",
                 st.live_blocks, (unsigned long long)st.allocs, (unsigned long long)st.frees);
        bad = 1;
    }
    status = carve_detach(h);
    if (status != CARVE_OK && !bad) {
        snprintf(why, whylen, "carve_detach: %s", carve_strerror(status));
        bad = 1;
    }
    return bad ? -1 : 0;
}

void run_threads(const allocator *a, const job *j, result *r)
{
    static thr_run run;
    static thr_worker workers[THR_MAX_THREADS];
    memset(&run, 0, sizeof run);
    memset(workers, 0, sizeof workers);
    run.a = a;
    run.j = j;
    run.threads = THR_THREADS(j->mode);
    run.larson = THR_VARIANT(j->mode) == THR_LARSON;
    if (run.threads < 1 || run.threads > THR_MAX_THREADS) {
        snprintf(r->reason, sizeof r->reason, "bad thread count %u", run.threads);
        return;
    }
    carve_heap *heaps[THR_MAX_THREADS];
    unsigned nheaps = 0;
    if (a->is_carve) {
        nheaps = (j->mode & THR_PRIVATE) ? run.threads : 1u;
        if (!thr_carve_heaps(a, j, heaps, nheaps, r->reason, sizeof r->reason))
            return;
        run.self = heaps[0];
    } else if (a->init(a, j, &run.self, r->reason, sizeof r->reason) != 0) {
        return;
    }
    choose_cpus(&run);
    /* The arrays live in mmap'd memory, never in the allocator measured. */
    size_t array_bytes = THR_SLOTS * sizeof(void *) * run.threads;
    size_t ring_bytes = sizeof(thr_ring) * run.threads;
    void **mem = bench_map(array_bytes);
    run.rings = bench_map(ring_bytes); /* zero: every ring empty */
    pthread_barrier_init(&run.warm, NULL, run.threads);
    pthread_barrier_init(&run.done, NULL, run.threads);
    run.deadline = now_seconds() + j->time_limit;

    unsigned started = 0;
    for (unsigned t = 0; t < run.threads; t++) {
        thr_worker *w = &workers[t];
        w->run = &run;
        w->index = t;
        w->slots = mem + (size_t)t * THR_SLOTS;
        w->self = nheaps > 1 ? heaps[t] : run.self;
        w->in = &run.rings[t];
        w->out = &run.rings[(t + 1u) % run.threads];
        w->r.state = j->seed + 0x9e3779b97f4a7c15u * (t + 1u);
        if (pthread_create(&w->tid, NULL, thr_worker_main, w) != 0)
            die("pthread_create: %s", strerror(errno));
        started++;
    }
    for (unsigned t = 0; t < started; t++)
        pthread_join(workers[t].tid, NULL);
    pthread_barrier_destroy(&run.warm);
    pthread_barrier_destroy(&run.done);
    bench_unmap(mem, array_bytes);
    bench_unmap(run.rings, ring_bytes);

    double first = workers[0].start, last = workers[0].end;
    uint64_t steps = 0, ops = 0, frees = 0, remote = 0;
    int cpus[THR_MAX_THREADS];
    for (unsigned t = 0; t < run.threads; t++) {
        const thr_worker *w = &workers[t];
        first = w->start < first ? w->start : first;
        last = w->end > last ? w->end : last;
        steps += w->steps_done;
        ops += w->ops;
        frees += w->frees;
        remote += w->remote_frees;
        r->failures += w->failures;
        cpus[t] = w->cpu_seen;
    }
    char why[200] = "";
    char later[sizeof why]; /* a second heap's complaint: the first one is reported */
    int torn = a->is_carve ? 0 : a->teardown(run.self, why, sizeof why);
    for (unsigned k = 0; k < nheaps; k++)
        if (thr_carve_teardown(heaps[k], torn ? later : why, sizeof why) != 0)
            torn = -1;
    if (steps != (uint64_t)run.threads * j->steps) {
        snprintf(r->reason, sizeof r->reason, "timeout: over %.0f s", j->time_limit);
        return;
    }
    if (torn != 0) {
        snprintf(r->reason, sizeof r->reason, "%s", why);
        return;
    }
    double wall = last - first;
    r->ok = wall > 0;
    if (!r->ok) {
        snprintf(r->reason, sizeof r->reason, "no time elapsed");
        return;
    }
    r->v[0] = (double)ops / wall / 1e6;
    r->v[1] = wall * 1e9 * run.threads / (double)ops; /* ns per op of one thread */
    r->v[2] = frees ? (double)remote / (double)frees : 0.0;
    r->v[3] = count_distinct(cpus, run.threads);
    r->v[4] = run.threads;
}

/* ------------------------------------------------------------------------ */
/* The plan                                                                  */
/* ------------------------------------------------------------------------ */

static const char *thr_variant_name(int variant, unsigned threads, const char *extra, char *buf,
                                    size_t len)
{
    snprintf(buf, len, "%s %uT%s", variant == THR_LARSON ? "larson" : "own", threads, extra);
    return buf;
}

void threads_plan_cells(plan *p)
{
    const settings *s = &p->s;
    if (!s->only[W_THREADS])
        return;
    job j;
    memset(&j, 0, sizeof j);
    j.workload = W_THREADS;
    j.seed = s->seed;
    j.time_limit = s->time_limit;
    j.steps = s->quick ? 50000 : 5000000;
    j.warmup = s->quick ? 5000 : 500000;
    j.slots = THR_SLOTS;
    j.heap = THR_HEAP;
    for (size_t r = 0; r < p->nrows; r++) {
        const row *rw = &p->rows[r];
        int carve = rw->inproc == &carve_good_fit;
        if (!carve && rw->peer == NULL)
            continue; /* the harness is not thread-safe; one carve policy is enough */
        for (int v = THR_OWN; v <= THR_LARSON; v++) {
            for (unsigned t = 1; t <= 2; t++) {
                char name[32];
                j.mode = THR_MODE(v, (int)t);
                add_cell(p, r, W_THREADS, thr_variant_name(v, t, "", name, sizeof name), j);
                if (carve && t == 1) {
                    j.mode = THR_MODE(v, (int)t) | THR_NO_LOCK;
                    add_cell(p, r, W_THREADS, thr_variant_name(v, t, " no lock", name, sizeof name),
                             j);
                }
                if (carve && v == THR_OWN && t > 1) { /* at 1 thread: "own 1T" */
                    j.mode = THR_MODE(v, (int)t) | THR_PRIVATE;
                    add_cell(p, r, W_THREADS, thr_variant_name(v, t, " private", name, sizeof name),
                             j);
                }
            }
        }
    }
}

/* ------------------------------------------------------------------------ */
/* The report                                                                */
/* ------------------------------------------------------------------------ */

static size_t thr_row(const plan *p, const char *peer_name)
{
    for (size_t r = 0; r < p->nrows; r++) {
        if (peer_name == NULL
                ? p->rows[r].inproc == &carve_good_fit
                : p->rows[r].peer != NULL && strcmp(p->rows[r].peer->name, peer_name) == 0)
            return r;
    }
    return SIZE_MAX;
}

static int thr_median(const plan *p, size_t rw, const char *variant, int k, double *out)
{
    if (rw == SIZE_MAX)
        return 0;
    return cell_median(p, plan_cell(p, rw, W_THREADS, variant), k, out);
}

static void put_mops(FILE *f, const plan *p, size_t rw, const char *variant)
{
    double v;
    const cell *c = rw == SIZE_MAX ? NULL : plan_cell(p, rw, W_THREADS, variant);
    if (c == NULL)
        fputs(" - |", f);
    else if (!cell_median(p, c, 0, &v))
        fputs(" n/a |", f);
    else
        fprintf(f, " %.2f%s |", v, c->runs[0].failures ? "\\*" : "");
}

static void put_ratio(FILE *f, const plan *p, size_t rw, const char *num, const char *den)
{
    double a, b;
    if (thr_median(p, rw, num, 0, &a) && thr_median(p, rw, den, 0, &b) && b > 0)
        fprintf(f, " %.2fx |", a / b);
    else
        fputs(" - |", f);
}

/* The median of v[0] over run `run`'s THR_REPEATS measurements of cell c
 * (plan_run measures a threads cell THR_REPEATS times in each of its runs,
 * so they sit together in c->runs); 0 when none of them is ok. */
static int thr_run_median(const cell *c, unsigned run, double *out)
{
    double vals[THR_REPEATS];
    unsigned n = 0;
    for (unsigned k = run * THR_REPEATS; k < (run + 1u) * THR_REPEATS && k < c->runs_done; k++)
        if (c->runs[k].ok)
            vals[n++] = c->runs[k].v[0];
    if (n == 0)
        return 0;
    *out = values_median(vals, n);
    return 1;
}

/* The ratio num / den of row rw in each of the benchmark's runs (each the
 * run's own medians), so the report shows how much the machine moved the
 * figure between runs, not only the median over all of them. */
static void put_run_ratios(FILE *f, const plan *p, size_t rw, const char *num, const char *den)
{
    const cell *a = rw == SIZE_MAX ? NULL : plan_cell(p, rw, W_THREADS, num);
    const cell *b = rw == SIZE_MAX ? NULL : plan_cell(p, rw, W_THREADS, den);
    double lo = 0, hi = 0;
    unsigned shown = 0;
    unsigned runs = a != NULL && b != NULL ? a->runs_done / THR_REPEATS : 0u;
    for (unsigned r = 0; r < runs; r++) {
        double x, y;
        if (!thr_run_median(a, r, &x) || !thr_run_median(b, r, &y) || y <= 0)
            continue;
        double q = x / y;
        fprintf(f, "%s%.2f", shown ? ", " : "", q);
        lo = shown == 0 || q < lo ? q : lo;
        hi = shown == 0 || q > hi ? q : hi;
        shown++;
    }
    if (shown == 0)
        fputs("not measured", f);
    else
        fprintf(f, " (%.2f to %.2f)", lo, hi);
}

static void thr_target(FILE *f, const char *what, int measured, double value, const char *goal,
                       int pass)
{
    if (measured)
        fprintf(f, "| %s | %.2f | %s | %s |\n", what, value, goal, pass ? "**PASS**" : "**SHORT**");
    else
        fprintf(f, "| %s | not measured | %s | - |\n", what, goal);
}

void threads_report(const plan *p, FILE *f)
{
    if (!p->s.only[W_THREADS])
        return;
    size_t carve = thr_row(p, NULL), glibc = thr_row(p, "glibc");
    const cell *any = carve != SIZE_MAX ? plan_cell(p, carve, W_THREADS, "own 1T") : NULL;
    char steps[32], warm[32];
    format_count(any != NULL ? any->j.steps : 0, steps, sizeof steps);
    format_count(any != NULL ? any->j.warmup : 0, warm, sizeof warm);
    fprintf(f, "## Threads (issue 4)\n\n");
    fprintf(f,
            "Throughput in M ops/s (an op is one alloc or one free; all threads together), "
            "median of %u measurements (%u in each of the benchmark's interleaved runs). "
            "Each thread runs W1's churn (%u slots of its own, sizes "
            "uniform 8..128 B, first byte written) for %s timed steps after %s untimed ones. "
            "**own**: each thread frees only its own blocks. **larson**: a step that finds its "
            "slot full hands the block, three times in four, to the next thread through a "
            "single-producer single-consumer ring (of %u) instead of freeing it, and every "
            "step frees one block from the thread's own ring, so at 2 threads most frees are "
            "of blocks the other thread allocated (the last column). carve: GOOD_FIT with "
            "CARVE_THREADSAFE, one heap of "
            "%llu MiB for all threads; peers in child processes with their library preloaded. "
            "Workers are pinned to distinct CPUs when the benchmark pins itself (the default). "
            "The row \"a heap of its own per thread\" runs own slots at 2 threads with one "
            "%llu MiB CARVE_THREADSAFE heap per thread (its 1T is the first row's): the threads "
            "run the same code but share neither the lock nor a line of a heap, so its 2T/1T is "
            "what this machine gives the same work in the same run, the ceiling to read the "
            "shared heap's scaling against.\n\n",
            any != NULL ? any->runs_done : 0u, THR_REPEATS, THR_SLOTS, steps, warm, THR_RING,
            (unsigned long long)(THR_HEAP >> 20), (unsigned long long)(THR_HEAP >> 20));
    fprintf(f, "| allocator | own 1T | own 2T | own 2T/1T | larson 1T | larson 2T | larson "
               "2T/1T | larson 2T: frees of the other thread's blocks |\n");
    fprintf(f, "|---|---:|---:|---:|---:|---:|---:|---:|\n");
    for (size_t r = 0; r < p->nrows; r++) {
        if (r != carve && p->rows[r].peer == NULL)
            continue;
        fprintf(f, "| %s%s |", p->rows[r].label, r == carve ? " (CARVE_THREADSAFE)" : "");
        put_mops(f, p, r, "own 1T");
        put_mops(f, p, r, "own 2T");
        put_ratio(f, p, r, "own 2T", "own 1T");
        put_mops(f, p, r, "larson 1T");
        put_mops(f, p, r, "larson 2T");
        put_ratio(f, p, r, "larson 2T", "larson 1T");
        double remote;
        if (thr_median(p, r, "larson 2T", 2, &remote))
            fprintf(f, " %.0f%% |\n", 100.0 * remote);
        else
            fputs(" - |\n", f);
    }
    if (carve != SIZE_MAX) {
        fprintf(f, "| carve GOOD_FIT without CARVE_THREADSAFE |");
        put_mops(f, p, carve, "own 1T no lock");
        fputs(" - | - |", f);
        put_mops(f, p, carve, "larson 1T no lock");
        fputs(" - | - | - |\n", f);
        fprintf(f, "| carve GOOD_FIT (CARVE_THREADSAFE), a heap of its own per thread |");
        put_mops(f, p, carve, "own 1T");
        put_mops(f, p, carve, "own 2T private");
        put_ratio(f, p, carve, "own 2T private", "own 1T");
        fputs(" - | - | - | - |\n", f);
    }
    double cpus;
    if (thr_median(p, carve, "own 2T", 3, &cpus))
        fprintf(f, "\nCPUs the 2 carve workers ended on (own 2T, median): %.0f distinct.\n", cpus);
    if (carve != SIZE_MAX) {
        fputs("\nown 2T/1T in each of the benchmark's runs, in order (each the ratio of that run's "
              "medians), so the spread the machine puts on the ratio can be seen: carve's shared "
              "heap ",
              f);
        put_run_ratios(f, p, carve, "own 2T", "own 1T");
        fputs("; a heap of its own per thread ", f);
        put_run_ratios(f, p, carve, "own 2T private", "own 1T");
        fputs(".\n", f);
    }
    fputc('\n', f);

    fprintf(f, "### Targets (issue 4), this run\n\n");
    fprintf(f, "| target | measured | goal | verdict |\n|---|---:|---:|---|\n");
    double a, b;
    int m = thr_median(p, carve, "own 2T", 0, &a) && thr_median(p, carve, "own 1T", 0, &b) && b > 0;
    thr_target(f, "own slots: carve 2 threads / 1 thread", m, m ? a / b : 0, ">= 1.70",
               m && a / b >= 1.70);
    const char *single[2][2] = {{"own 1T", "own 1T no lock"}, {"larson 1T", "larson 1T no lock"}};
    const char *single_name[2] = {"own slots", "larson"};
    for (int k = 0; k < 2; k++) {
        char what[160];
        snprintf(what, sizeof what,
                 "%s, 1 thread: carve time per op with CARVE_THREADSAFE / without", single_name[k]);
        m = thr_median(p, carve, single[k][0], 0, &a) &&
            thr_median(p, carve, single[k][1], 0, &b) && a > 0;
        thr_target(f, what, m, m ? b / a : 0, "<= 1.30", m && b / a <= 1.30);
    }
    const char *two[2] = {"own 2T", "larson 2T"};
    for (int k = 0; k < 2; k++) {
        char what[160];
        snprintf(what, sizeof what, "%s, 2 threads: carve throughput / glibc's", single_name[k]);
        m = thr_median(p, carve, two[k], 0, &a) && thr_median(p, glibc, two[k], 0, &b) && b > 0;
        thr_target(f, what, m, m ? a / b : 0, ">= 1.00", m && a / b >= 1.00);
    }
    fputc('\n', f);
}
