/*
 * thread_stress: one heap, many threads (label "threads").
 *
 * Modes (the first argument; ctest runs each as its own test):
 *
 *   stress  N threads (2..4) on one CARVE_THREADSAFE heap doing random
 *           carve_alloc, calloc, realloc, aligned_alloc, free, halloc, pin,
 *           unpin, hresize, hfree, budgeted carve_compact, get_stats, check,
 *           walk and trim.  Blocks travel between threads through a shared,
 *           mutex-protected pool, so many blocks are freed (and handle
 *           blocks pinned, resized, unpinned) by a thread other than the one
 *           that made them; some handle blocks stay pinned across operations
 *           and across the hand-over.  Every block holds a pattern derived
 *           from its own seed, verified before every free, after every
 *           realloc/hresize (the kept prefix) and on every pin; a pinned
 *           block's address is checked with a nested pin.  At the end every
 *           block is freed, the threads exit (their caches go back), and the
 *           heap must pass carve_check and show the fresh heap's shape (used
 *           and free bytes, largest_free, block and handle counts).  Several
 *           configurations: each policy, no runs, poisoning, a small heap
 *           that is full most of the time, a handle table that grows, only
 *           small blocks (the thread caches' path).  Then a freed small
 *           block that may sit in a thread cache: a second free, from the
 *           same thread or another, is CARVE_ERR_DOUBLE_FREE and the block
 *           is not served twice.
 *   pins    one thread pins, reads, rewrites and unpins handle blocks (and
 *           keeps some pinned for a while) while another churns handle
 *           blocks and compacts again and again, with and without
 *           CARVE_SCRAMBLE: a pinned block never moves and its contents are
 *           always intact; the compactor's moved blocks keep theirs.
 *   shared  a CARVE_SHARED heap in a MAP_SHARED mapping, two forked processes
 *           running the stress worker on it with the pool in the mapping too
 *           (blocks freed by the other process); each detaches before it
 *           exits; the parent then checks the heap is whole and fresh.
 *   detach  carve_detach and re-attach: threads that used a CARVE_THREADSAFE
 *           heap and exited, and threads still alive (idle) at the detach;
 *           the heap re-attached with carve_attach (in place and as a copy)
 *           passes carve_check, has the fresh shape and keeps working; a
 *           second detach is refused.  Then the caches at their limits: 72
 *           threads at once on one heap (more than it has caches for), one
 *           thread on 6 heaps (more than it keeps caches for), round and
 *           round and then in phases long enough that it gives caches up
 *           and takes them back, while another thread empties them.
 *
 * Usage: thread_stress MODE [OPS [SEED]]  (or CARVE_TEST_OPS, CARVE_TEST_SEED).
 * OPS is the operations per thread of the main configuration (the others
 * scale from it).  Per-thread seeds are derived from SEED, so each thread's
 * sequence of choices is deterministic (the interleaving is not).  No timing
 * is asserted anywhere.  A failure prints the mode, configuration, thread,
 * seed and operation number, and aborts.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "test_util.h"

#define KIB ((size_t)1024)
#define MIB ((size_t)1024 * 1024)

#define MAX_THREADS 4
#define LOCAL_MAX   48  /* blocks one worker holds */
#define POOL_MAX    128 /* blocks in transit between workers */

/* ------------------------------------------------------------------------ */
/* Failing                                                                   */
/* ------------------------------------------------------------------------ */

/* Where the calling thread is, for the failure message. */
typedef struct where {
    const char *mode;
    const char *config;
    unsigned thread;
    uint64_t seed;
    uint64_t op;
} where;

static _Thread_local where here;
static uint64_t base_seed;

static void fail_at(int line, const char *fmt, ...) __attribute__((noreturn, format(printf, 2, 3)));

static void fail_at(int line, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    fprintf(stderr,
            "thread_stress: FAIL (line %d) mode %s, config %s, thread %u (seed 0x%" PRIx64
            "), op %" PRIu64 ": %s\n  reproduce the choices with: thread_stress %s OPS 0x%" PRIx64
            "\n",
            line, here.mode ? here.mode : "?", here.config ? here.config : "-", here.thread,
            here.seed, here.op, msg, here.mode ? here.mode : "?", base_seed);
    fflush(stderr);
    abort();
}

#define CHECK(cond, ...)                    \
    do {                                    \
        if (!(cond))                        \
            fail_at(__LINE__, __VA_ARGS__); \
    } while (0)

#define CHECK_STATUS(expr, want)                                                                \
    do {                                                                                        \
        int st_ = (expr);                                                                       \
        CHECK(st_ == (int)(want), "%s = %d (%s), expected %s", #expr, st_, carve_strerror(st_), \
              carve_strerror((int)(want)));                                                     \
    } while (0)

/* ------------------------------------------------------------------------ */
/* Blocks and where they live                                                */
/* ------------------------------------------------------------------------ */

enum { ITEM_RAW = 1, ITEM_HANDLE = 2 };

/* One block of the test: its pattern covers [0, size) and comes from seed.
 * A handle block may be held pinned across operations (held != NULL: the
 * address it was pinned at, which must not change until it is unpinned). */
typedef struct item {
    int kind;
    size_t size;
    uint64_t seed;
    void *ptr;       /* ITEM_RAW */
    carve_handle hd; /* ITEM_HANDLE */
    void *held;      /* ITEM_HANDLE: pinned across operations at this address */
} item;

/* Blocks in transit between workers (threads, or processes in a shared
 * mapping).  Everything in it is only read or written under lock. */
typedef struct pool {
    pthread_mutex_t lock;
    size_t n;
    item items[POOL_MAX];
} pool;

static void pool_init(pool *p, int pshared)
{
    pthread_mutexattr_t attr;
    pthread_mutexattr_init(&attr);
    if (pshared)
        pthread_mutexattr_setpshared(&attr, PTHREAD_PROCESS_SHARED);
    CHECK(pthread_mutex_init(&p->lock, &attr) == 0, "pool mutex");
    pthread_mutexattr_destroy(&attr);
    p->n = 0;
}

/* A stress configuration. */
typedef struct config {
    const char *name;
    carve_policy policy;
    unsigned flags;
    size_t heap;
    size_t max_handles; /* 0: the table grows (then the end check is weaker) */
    unsigned threads;
    unsigned ops_div; /* ops per thread = OPS / ops_div */
    size_t max_size;  /* largest request */
} config;

/* What every worker of one run shares. */
typedef struct run {
    carve_heap *h;
    const unsigned char *lo, *hi; /* the buffer */
    const config *cfg;
    pool *pool;
    pthread_barrier_t *barrier;
    unsigned workers;
    uint64_t ops;
    size_t capacity;
    atomic_ulong nomem; /* allocations that failed with ENOMEM */
} run;

typedef struct worker {
    run *r;
    unsigned index;
    uint64_t seed;
    tu_rng rng;
    item local[LOCAL_MAX];
    size_t nlocal;
    uint64_t next_id;
} worker;

static uint64_t new_seed(worker *w)
{
    /* Unique per block and worker; the pattern depends on every bit. */
    uint64_t x = ((uint64_t)w->index << 56) ^ (w->next_id++ * 0x9E3779B97F4A7C15ull) ^ w->seed;
    return tu_splitmix64(&x);
}

static size_t pick_size(worker *w)
{
    size_t max = w->r->cfg->max_size;
    uint64_t k = tu_rng_below(&w->rng, 100);
    size_t s;
    if (k < 70)
        s = tu_rng_range(&w->rng, 1, 256);
    else if (k < 95)
        s = tu_rng_range(&w->rng, 257, 4096);
    else
        s = tu_rng_range(&w->rng, 4097, 32768);
    return s > max ? tu_rng_range(&w->rng, 1, max) : s;
}

static void check_inside(const run *r, const void *p, size_t n)
{
    const unsigned char *b = p;
    CHECK(tu_is_aligned(p, CARVE_ALIGNMENT), "block %p is not 16-aligned", p);
    CHECK(b >= r->lo && b <= r->hi && n <= (size_t)(r->hi - b),
          "block %p + %zu is outside the buffer", p, n);
}

static void verify(const void *p, uint64_t seed, size_t n, const char *what)
{
    size_t bad = tu_verify(p, seed, n);
    CHECK(bad == n, "%s: block %p of %zu bytes lost its contents at byte %zu", what, p, n, bad);
}

/* Runs a and b on arg in two threads at once, and waits for both. */
static void run_pair(void *(*a)(void *), void *(*b)(void *), void *arg)
{
    pthread_t ta, tb;
    CHECK(pthread_create(&ta, NULL, a, arg) == 0, "pthread_create");
    CHECK(pthread_create(&tb, NULL, b, arg) == 0, "pthread_create");
    pthread_join(ta, NULL);
    pthread_join(tb, NULL);
}

static int nomem(run *r)
{
    CHECK(errno == ENOMEM, "allocation failed with errno %d (%s), not ENOMEM", errno,
          strerror(errno));
    atomic_fetch_add_explicit(&r->nomem, 1, memory_order_relaxed);
    return 0;
}

/* ---- raw blocks ---------------------------------------------------------- */

static int make_raw(worker *w, item *it)
{
    run *r = w->r;
    size_t size = pick_size(w);
    uint64_t how = tu_rng_below(&w->rng, 8);
    void *p;
    errno = 0;
    if (how == 0) {
        size_t count = tu_rng_range(&w->rng, 1, 4);
        size_t each = (size + count - 1) / count;
        size = count * each;
        p = carve_calloc(r->h, count, each);
        if (p == NULL)
            return nomem(r);
        check_inside(r, p, size);
        CHECK(tu_all_zero(p, size), "carve_calloc(%zu x %zu) is not zeroed", count, each);
    } else if (how == 1) {
        size_t align = (size_t)1 << tu_rng_range(&w->rng, 5, 12);
        p = carve_aligned_alloc(r->h, align, size);
        if (p == NULL)
            return nomem(r);
        check_inside(r, p, size);
        CHECK(tu_is_aligned(p, align), "carve_aligned_alloc(%zu) gave %p", align, p);
    } else {
        p = carve_alloc(r->h, size);
        if (p == NULL)
            return nomem(r);
        check_inside(r, p, size);
    }
    it->kind = ITEM_RAW;
    it->size = size;
    it->seed = new_seed(w);
    it->ptr = p;
    it->hd = 0;
    it->held = NULL;
    tu_fill(p, it->seed, size);
    return 1;
}

static void realloc_raw(worker *w, item *it)
{
    run *r = w->r;
    size_t size = pick_size(w);
    verify(it->ptr, it->seed, it->size, "before carve_realloc");
    errno = 0;
    void *q = carve_realloc(r->h, it->ptr, size);
    if (q == NULL) {
        (void)nomem(r);
        verify(it->ptr, it->seed, it->size, "after a failed carve_realloc");
        return;
    }
    check_inside(r, q, size);
    size_t kept = it->size < size ? it->size : size;
    verify(q, it->seed, kept, "the prefix kept by carve_realloc");
    tu_fill_range(q, it->seed, kept, size);
    it->ptr = q;
    it->size = size;
}

static void free_raw(worker *w, item *it)
{
    verify(it->ptr, it->seed, it->size, "before carve_free");
    size_t usable = carve_usable_size(w->r->h, it->ptr);
    CHECK(usable >= it->size, "carve_usable_size %zu < %zu asked", usable, it->size);
    CHECK_STATUS(carve_free(w->r->h, it->ptr), CARVE_OK);
    it->kind = 0;
}

/* ---- handle blocks ------------------------------------------------------- */

static void *pin(run *r, const item *it)
{
    errno = 0;
    void *p = carve_pin(r->h, it->hd);
    CHECK(p != NULL, "carve_pin of a live handle failed: errno %d", errno);
    check_inside(r, p, it->size);
    if (it->held != NULL)
        CHECK(p == it->held, "a pinned block moved from %p to %p", it->held, p);
    return p;
}

static void unpin(run *r, const item *it)
{
    CHECK_STATUS(carve_unpin(r->h, it->hd), CARVE_OK);
}

static int make_handle(worker *w, item *it)
{
    run *r = w->r;
    size_t size = pick_size(w);
    errno = 0;
    carve_handle hd = carve_halloc(r->h, size);
    if (hd == 0)
        return nomem(r); /* no room, or the handle table is full */
    it->kind = ITEM_HANDLE;
    it->size = size;
    it->seed = new_seed(w);
    it->ptr = NULL;
    it->hd = hd;
    it->held = NULL;
    void *p = pin(r, it);
    tu_fill(p, it->seed, size);
    unpin(r, it);
    return 1;
}

/* Pin, verify, maybe rewrite with a new pattern, check that a nested pin
 * gives the same address, unpin. */
static void touch_handle(worker *w, item *it)
{
    run *r = w->r;
    size_t hs = carve_hsize(r->h, it->hd);
    CHECK(hs >= it->size, "carve_hsize %zu < %zu", hs, it->size);
    void *p = pin(r, it);
    verify(p, it->seed, it->size, "a pinned handle block");
    if (tu_rng_below(&w->rng, 2) == 0) {
        it->seed = new_seed(w);
        tu_fill(p, it->seed, it->size);
    }
    void *again = pin(r, it);
    CHECK(again == p, "a nested pin moved the block from %p to %p", p, again);
    unpin(r, it);
    verify(p, it->seed, it->size, "a block still pinned once");
    unpin(r, it);
}

/* Toggles a pin held across operations (and hand-overs). */
static void toggle_hold(worker *w, item *it)
{
    run *r = w->r;
    if (it->held == NULL) {
        void *p = pin(r, it);
        verify(p, it->seed, it->size, "a handle block pinned to hold");
        it->held = p;
    } else {
        void *p = pin(r, it); /* checks the address */
        verify(p, it->seed, it->size, "a held block");
        unpin(r, it);
        unpin(r, it);
        it->held = NULL;
    }
}

static void resize_handle(worker *w, item *it)
{
    run *r = w->r;
    size_t size = pick_size(w);
    int st = carve_hresize(r->h, it->hd, size);
    CHECK(st == CARVE_OK || st == CARVE_ERR_NOMEM || (st == CARVE_ERR_PINNED && it->held),
          "carve_hresize(%zu -> %zu%s) = %s", it->size, size, it->held ? ", pinned" : "",
          carve_strerror(st));
    void *p = pin(r, it); /* a held block must not have moved, whatever the result */
    if (st == CARVE_OK) {
        size_t kept = it->size < size ? it->size : size;
        verify(p, it->seed, kept, "the prefix kept by carve_hresize");
        tu_fill_range(p, it->seed, kept, size);
        it->size = size;
    } else {
        if (st == CARVE_ERR_NOMEM)
            atomic_fetch_add_explicit(&r->nomem, 1, memory_order_relaxed);
        verify(p, it->seed, it->size, "after a failed carve_hresize");
    }
    unpin(r, it);
}

static void free_handle(worker *w, item *it)
{
    run *r = w->r;
    if (it->held != NULL) {
        CHECK_STATUS(carve_hfree(r->h, it->hd), CARVE_ERR_PINNED);
        void *p = pin(r, it);
        verify(p, it->seed, it->size, "a held block before its unpin");
        unpin(r, it);
        unpin(r, it);
        it->held = NULL;
    }
    void *p = pin(r, it);
    verify(p, it->seed, it->size, "before carve_hfree");
    unpin(r, it);
    CHECK_STATUS(carve_hfree(r->h, it->hd), CARVE_OK);
    CHECK(carve_hsize(r->h, it->hd) == 0, "a freed handle still has a size");
    it->kind = 0;
}

static void free_item(worker *w, item *it)
{
    if (it->kind == ITEM_RAW)
        free_raw(w, it);
    else
        free_handle(w, it);
}

/* ---- whole-heap calls ----------------------------------------------------- */

static void check_stats(run *r)
{
    carve_stats s;
    memset(&s, 0x5A, sizeof s);
    carve_get_stats(r->h, &s);
    CHECK(s.capacity == r->capacity, "capacity changed: %zu, was %zu", s.capacity, r->capacity);
    CHECK(s.used_bytes + s.free_bytes == s.capacity, "used %zu + free %zu != capacity %zu",
          s.used_bytes, s.free_bytes, s.capacity);
    CHECK(s.largest_free <= s.free_bytes, "largest_free %zu > free_bytes %zu", s.largest_free,
          s.free_bytes);
    CHECK(s.pinned_handles <= s.live_handles, "pinned %zu > live handles %zu", s.pinned_handles,
          s.live_handles);
    CHECK(s.peak_used_bytes >= s.used_bytes, "peak %zu < used %zu", s.peak_used_bytes,
          s.used_bytes);
}

static int sum_sizes(const carve_block *b, void *ctx)
{
    *(size_t *)ctx += b->size;
    return 0;
}

/* "From then on carve relies on nothing in those bytes": overwrite them. */
static void release_scribble(void *addr, size_t len, void *ctx)
{
    (void)ctx;
    memset(addr, 0xEE, len);
}

static void whole_heap_call(worker *w)
{
    run *r = w->r;
    switch (tu_rng_below(&w->rng, 8)) {
    case 0:
    case 1:
    case 2:
        (void)carve_compact(r->h, (size_t)tu_rng_below(&w->rng, 64 * KIB));
        break;
    case 3:
        check_stats(r);
        break;
    case 4: {
        size_t sum = 0;
        CHECK_STATUS(carve_walk(r->h, sum_sizes, &sum), CARVE_OK);
        CHECK(sum == r->capacity, "the walk's sizes add up to %zu, capacity %zu", sum, r->capacity);
        break;
    }
    case 5:
        (void)carve_trim(r->h, 4096, 16 * KIB, release_scribble, NULL);
        break;
    case 6:
        (void)carve_compact(r->h, SIZE_MAX);
        break;
    default:
        CHECK_STATUS(carve_check(r->h), CARVE_OK);
        break;
    }
}

/* ---- the pool ---------------------------------------------------------------- */

static void give(worker *w, size_t i)
{
    pool *p = w->r->pool;
    pthread_mutex_lock(&p->lock);
    if (p->n < POOL_MAX) {
        p->items[p->n++] = w->local[i];
        w->local[i] = w->local[--w->nlocal];
    }
    pthread_mutex_unlock(&p->lock);
}

static void take(worker *w)
{
    pool *p = w->r->pool;
    pthread_mutex_lock(&p->lock);
    if (p->n > 0 && w->nlocal < LOCAL_MAX) {
        size_t k = (size_t)tu_rng_below(&w->rng, p->n);
        w->local[w->nlocal++] = p->items[k];
        p->items[k] = p->items[--p->n];
    }
    pthread_mutex_unlock(&p->lock);
}

/* ---- the worker ---------------------------------------------------------------- */

static void worker_step(worker *w)
{
    uint64_t k = tu_rng_below(&w->rng, 100);
    if (w->nlocal == 0 && k >= 25 && k < 85)
        k = k < 55 ? 0 : 30; /* nothing to work on: make something */
    if (w->nlocal == LOCAL_MAX && (k < 25 || (k >= 30 && k < 40)))
        k = 25; /* full: free something */
    size_t i = w->nlocal > 0 ? (size_t)tu_rng_below(&w->rng, w->nlocal) : 0;
    item *it = &w->local[i];
    if (k < 25) {
        if (make_raw(w, &w->local[w->nlocal]))
            w->nlocal++;
    } else if (k < 30) {
        free_item(w, it);
        w->local[i] = w->local[--w->nlocal];
    } else if (k < 40) {
        if (make_handle(w, &w->local[w->nlocal]))
            w->nlocal++;
    } else if (k < 48) {
        if (it->kind == ITEM_RAW)
            realloc_raw(w, it);
        else
            resize_handle(w, it);
    } else if (k < 58) {
        if (it->kind == ITEM_HANDLE)
            touch_handle(w, it);
        else
            verify(it->ptr, it->seed, it->size, "a raw block");
    } else if (k < 61) {
        if (it->kind == ITEM_HANDLE)
            toggle_hold(w, it);
    } else if (k < 73) {
        give(w, i);
    } else if (k < 85) {
        free_item(w, it);
        w->local[i] = w->local[--w->nlocal];
    } else if (k < 97) {
        take(w);
    } else {
        whole_heap_call(w);
    }
}

/* Frees everything this worker holds, then (after every worker did) its
 * share of the pool. */
static void worker_finish(worker *w)
{
    run *r = w->r;
    while (w->nlocal > 0)
        free_item(w, &w->local[--w->nlocal]);
    if (r->barrier != NULL)
        pthread_barrier_wait(r->barrier);
    pthread_mutex_lock(&r->pool->lock);
    for (size_t i = w->index; i < r->pool->n; i += r->workers)
        free_item(w, &r->pool->items[i]);
    pthread_mutex_unlock(&r->pool->lock);
}

static void worker_setup(worker *w, run *r, unsigned index)
{
    memset(w, 0, sizeof *w);
    w->r = r;
    w->index = index;
    uint64_t x = base_seed ^ ((uint64_t)(index + 1) * 0xD1B54A32D192ED03ull);
    w->seed = tu_splitmix64(&x);
    tu_rng_seed(&w->rng, w->seed);
    here.thread = index;
    here.seed = w->seed;
    here.config = r->cfg->name;
}

static void worker_run(worker *w)
{
    for (uint64_t op = 0; op < w->r->ops; op++) {
        here.op = op;
        worker_step(w);
    }
    here.op = w->r->ops;
    worker_finish(w);
}

static void *worker_thread(void *arg)
{
    worker *w = arg;
    here.mode = "stress";
    worker_setup(w, w->r, w->index);
    worker_run(w);
    return NULL;
}

/* ------------------------------------------------------------------------ */
/* Fresh shape                                                               */
/* ------------------------------------------------------------------------ */

/* The shape of a heap with nothing live: the counters that must come back
 * exactly once every block is freed and every thread's cache went back. */
static void check_fresh(carve_heap *h, const carve_stats *fresh, const char *when)
{
    CHECK_STATUS(carve_check(h), CARVE_OK);
    carve_stats s;
    carve_get_stats(h, &s);
#define SAME(f) \
    CHECK(s.f == fresh->f, "%s: " #f " is %zu, a fresh heap has %zu", when, s.f, fresh->f)
    SAME(capacity);
    SAME(used_bytes);
    SAME(free_bytes);
    SAME(largest_free);
    SAME(live_blocks);
    SAME(free_blocks);
    SAME(live_handles);
    SAME(pinned_handles);
#undef SAME
    CHECK(s.allocs == s.frees || s.live_blocks != 0, "%s: %" PRIu64 " allocs, %" PRIu64 " frees",
          when, s.allocs, s.frees);
    /* largest_free is a promise: an allocation of exactly that succeeds. */
    void *p = carve_alloc(h, s.largest_free);
    CHECK(p != NULL, "%s: carve_alloc(largest_free = %zu) failed", when, s.largest_free);
    CHECK_STATUS(carve_free(h, p), CARVE_OK);
}

/* With a table that grew there is no fresh heap to compare with: nothing
 * live, and after a full compaction all free space in one block. */
static void check_empty(carve_heap *h, const char *when)
{
    CHECK_STATUS(carve_check(h), CARVE_OK);
    (void)carve_compact(h, SIZE_MAX);
    carve_stats s;
    carve_get_stats(h, &s);
    CHECK(s.live_blocks == 0 && s.live_handles == 0 && s.pinned_handles == 0,
          "%s: %zu live blocks, %zu live handles, %zu pinned", when, s.live_blocks, s.live_handles,
          s.pinned_handles);
    CHECK(s.free_blocks == 1, "%s: %zu free blocks after a full compaction of an empty heap", when,
          s.free_blocks);
    CHECK(s.used_bytes + s.free_bytes == s.capacity, "%s: used + free != capacity", when);
    CHECK_STATUS(carve_check(h), CARVE_OK);
}

static carve_heap *make_heap(tu_region *reg, const config *c, size_t misalign)
{
    CHECK(tu_region_make(reg, c->heap, misalign, 256, 0xCD) == 0, "out of memory");
    carve_options o;
    memset(&o, 0, sizeof o);
    o.policy = c->policy;
    o.flags = c->flags;
    o.max_handles = c->max_handles;
    carve_heap *h = carve_init(reg->buf, c->heap, &o);
    CHECK(h != NULL, "carve_init(%zu, flags 0x%x) failed: errno %d", c->heap, c->flags, errno);
    return h;
}

static void destroy_heap(tu_region *reg, carve_heap *h)
{
    CHECK_STATUS(carve_detach(h), CARVE_OK);
    CHECK(tu_region_guards_ok(reg), "a guard zone around the buffer was overwritten");
    tu_region_free(reg);
}

/* ------------------------------------------------------------------------ */
/* Mode: stress                                                              */
/* ------------------------------------------------------------------------ */

static const config stress_configs[] = {
    {"good-fit x3", CARVE_GOOD_FIT, CARVE_THREADSAFE, 8 * MIB, 2048, 3, 1, 32768},
    {"first-fit x2", CARVE_FIRST_FIT, CARVE_THREADSAFE, 8 * MIB, 2048, 2, 4, 32768},
    {"best-fit no-runs x4", CARVE_BEST_FIT, CARVE_THREADSAFE | CARVE_NO_RUNS, 8 * MIB, 2048, 4, 6,
     32768},
    {"good-fit small heap x3", CARVE_GOOD_FIT, CARVE_THREADSAFE, 256 * KIB, 256, 3, 2, 8192},
    {"good-fit poison x2", CARVE_GOOD_FIT, CARVE_THREADSAFE | CARVE_POISON, 4 * MIB, 1024, 2, 8,
     16384},
    {"good-fit growing table x3", CARVE_GOOD_FIT, CARVE_THREADSAFE, 8 * MIB, 0, 3, 4, 32768},
    /* Only small requests: nearly every call goes through the thread caches. */
    {"good-fit small blocks x2", CARVE_GOOD_FIT, CARVE_THREADSAFE, 8 * MIB, 2048, 2, 2, 256},
};

static void stress_one(const config *c, uint64_t ops)
{
    here.config = c->name;
    tu_region reg;
    carve_heap *h = make_heap(&reg, c, 8);
    carve_stats fresh;
    carve_get_stats(h, &fresh);

    static pool the_pool;
    pool_init(&the_pool, 0);
    pthread_barrier_t barrier;
    pthread_barrier_init(&barrier, NULL, c->threads);
    run r;
    memset(&r, 0, sizeof r);
    r.h = h;
    r.lo = reg.buf;
    r.hi = reg.buf + c->heap;
    r.cfg = c;
    r.pool = &the_pool;
    r.barrier = &barrier;
    r.workers = c->threads;
    r.ops = ops / c->ops_div;
    r.capacity = fresh.capacity;
    atomic_init(&r.nomem, 0);

    static worker workers[MAX_THREADS];
    pthread_t tids[MAX_THREADS];
    for (unsigned t = 0; t < c->threads; t++) {
        workers[t].r = &r;
        workers[t].index = t;
        CHECK(pthread_create(&tids[t], NULL, worker_thread, &workers[t]) == 0, "pthread_create");
    }
    for (unsigned t = 0; t < c->threads; t++)
        pthread_join(tids[t], NULL);
    here.thread = 0;
    here.op = 0;
    CHECK(the_pool.n <= POOL_MAX, "pool overflow");
    if (c->max_handles != 0)
        check_fresh(h, &fresh, "after every thread exited");
    else
        check_empty(h, "after every thread exited");
    printf("  %-26s %u threads x %" PRIu64 " ops: ok (%lu allocations failed with ENOMEM)\n",
           c->name, c->threads, r.ops, (unsigned long)atomic_load(&r.nomem));
    pthread_barrier_destroy(&barrier);
    pthread_mutex_destroy(&the_pool.lock);
    destroy_heap(&reg, h);
}

/* A freed small block may sit in the freeing thread's cache rather than in
 * the heap: freeing it again, from the same thread or another, must still
 * be CARVE_ERR_DOUBLE_FREE, and it must not be served twice. */
typedef struct cached_free {
    carve_heap *h;
    void *p;
    int status;
    void *a, *b;
} cached_free;

static void *free_again_elsewhere(void *arg)
{
    cached_free *c = arg;
    c->status = carve_free(c->h, c->p);
    c->a = carve_alloc(c->h, 32);
    c->b = carve_alloc(c->h, 32);
    return NULL;
}

static void cached_slot_errors(void)
{
    static const config c = {
        "cached slot errors", CARVE_GOOD_FIT, CARVE_THREADSAFE, 8 * MIB, 64, 1, 1, 0};
    here.config = c.name;
    tu_region reg;
    carve_heap *h = make_heap(&reg, &c, 0);
    carve_stats fresh;
    carve_get_stats(h, &fresh);
    void *p = carve_alloc(h, 32);
    CHECK(p != NULL, "carve_alloc(32) failed");
    CHECK_STATUS(carve_free(h, p), CARVE_OK);
    CHECK_STATUS(carve_free(h, p), CARVE_ERR_DOUBLE_FREE);
    CHECK(carve_usable_size(h, p) == 0, "a freed slot has a usable size");
    errno = 0;
    CHECK(carve_realloc(h, p, 64) == NULL && errno == EINVAL,
          "carve_realloc of a freed slot: errno %d", errno);
    cached_free cf = {h, carve_alloc(h, 32), -1, NULL, NULL};
    CHECK(cf.p != NULL, "carve_alloc(32) failed");
    CHECK_STATUS(carve_free(h, cf.p), CARVE_OK);
    pthread_t t;
    CHECK(pthread_create(&t, NULL, free_again_elsewhere, &cf) == 0, "pthread_create");
    pthread_join(t, NULL);
    CHECK_STATUS(cf.status, CARVE_ERR_DOUBLE_FREE);
    CHECK(cf.a != NULL && cf.b != NULL && cf.a != cf.b, "a slot served twice: %p, %p", cf.a, cf.b);
    CHECK_STATUS(carve_free(h, cf.a), CARVE_OK);
    CHECK_STATUS(carve_free(h, cf.b), CARVE_OK);
    check_fresh(h, &fresh, "after the double frees");
    destroy_heap(&reg, h);
    printf("  %-26s ok\n", c.name);
}

static void mode_stress(uint64_t ops)
{
    for (size_t i = 0; i < sizeof stress_configs / sizeof stress_configs[0]; i++)
        stress_one(&stress_configs[i], ops);
    cached_slot_errors();
}

/* ------------------------------------------------------------------------ */
/* Mode: pins against compaction                                             */
/* ------------------------------------------------------------------------ */

#define PIN_BLOCKS    48
#define FILLER_BLOCKS 96
#define MAX_HELD      6

typedef struct pins_run {
    carve_heap *h;
    const unsigned char *lo, *hi;
    uint64_t ops;
    atomic_int done;           /* the pinner finished */
    atomic_ulong pinner_steps; /* how far the pinner got */
    uint64_t seed;
    const char *config;
} pins_run;

typedef struct hblock {
    carve_handle hd;
    size_t size;
    uint64_t seed;
    void *held;
} hblock;

static void pins_check_block(pins_run *pr, hblock *b, void *p)
{
    const unsigned char *c = p;
    CHECK(c >= pr->lo && c + b->size <= pr->hi, "pinned block outside the buffer");
    verify(p, b->seed, b->size, "a pinned block");
}

static void pins_new_block(pins_run *pr, hblock *b, tu_rng *g, size_t lo, size_t hi)
{
    b->size = tu_rng_range(g, lo, hi);
    b->seed = tu_rng_next(g);
    b->held = NULL;
    errno = 0;
    b->hd = carve_halloc(pr->h, b->size);
    CHECK(b->hd != 0, "carve_halloc(%zu) failed: errno %d", b->size, errno);
    void *p = carve_pin(pr->h, b->hd);
    CHECK(p != NULL, "carve_pin of a new block failed");
    tu_fill(p, b->seed, b->size);
    CHECK_STATUS(carve_unpin(pr->h, b->hd), CARVE_OK);
}

static void *pinner_thread(void *arg)
{
    pins_run *pr = arg;
    here.mode = "pins";
    here.config = pr->config;
    here.thread = 0;
    uint64_t x = pr->seed ^ 0x1111;
    here.seed = tu_splitmix64(&x);
    tu_rng g;
    tu_rng_seed(&g, here.seed);
    static hblock blocks[PIN_BLOCKS];
    for (size_t i = 0; i < PIN_BLOCKS; i++)
        pins_new_block(pr, &blocks[i], &g, 16, 4096);
    unsigned held = 0;
    for (uint64_t op = 0; op < pr->ops; op++) {
        here.op = op;
        atomic_store_explicit(&pr->pinner_steps, (unsigned long)op, memory_order_relaxed);
        hblock *b = &blocks[tu_rng_below(&g, PIN_BLOCKS)];
        uint64_t k = tu_rng_below(&g, 10);
        if (k < 6) {
            /* Pin, then look again and again while the other thread compacts:
             * the address stays, the contents stay, writes land. */
            void *p = carve_pin(pr->h, b->hd);
            CHECK(p != NULL, "carve_pin failed: errno %d", errno);
            if (b->held != NULL)
                CHECK(p == b->held, "a held block moved from %p to %p", b->held, p);
            pins_check_block(pr, b, p);
            unsigned rounds = (unsigned)tu_rng_range(&g, 1, 8);
            for (unsigned k2 = 0; k2 < rounds; k2++) {
                void *q = carve_pin(pr->h, b->hd);
                CHECK(q == p, "a pinned block moved from %p to %p", p, q);
                CHECK_STATUS(carve_unpin(pr->h, b->hd), CARVE_OK);
                if (k2 & 1) {
                    b->seed = tu_rng_next(&g);
                    tu_fill(p, b->seed, b->size);
                }
                if (k2 == 2)
                    sched_yield();
                pins_check_block(pr, b, p);
            }
            CHECK_STATUS(carve_unpin(pr->h, b->hd), CARVE_OK);
        } else if (k < 8) {
            if (b->held == NULL && held < MAX_HELD) {
                b->held = carve_pin(pr->h, b->hd);
                CHECK(b->held != NULL, "carve_pin failed");
                pins_check_block(pr, b, b->held);
                held++;
            } else if (b->held != NULL) {
                void *q = carve_pin(pr->h, b->hd);
                CHECK(q == b->held, "a held block moved from %p to %p", b->held, q);
                pins_check_block(pr, b, q);
                CHECK_STATUS(carve_unpin(pr->h, b->hd), CARVE_OK);
                CHECK_STATUS(carve_unpin(pr->h, b->hd), CARVE_OK);
                b->held = NULL;
                held--;
            }
        } else if (b->held == NULL) {
            void *p = carve_pin(pr->h, b->hd);
            CHECK(p != NULL, "carve_pin failed");
            pins_check_block(pr, b, p);
            CHECK_STATUS(carve_unpin(pr->h, b->hd), CARVE_OK);
            CHECK_STATUS(carve_hfree(pr->h, b->hd), CARVE_OK);
            pins_new_block(pr, b, &g, 16, 4096);
        }
        /* Every held block, every step: still where it was, still whole. */
        for (size_t i = 0; i < PIN_BLOCKS; i++) {
            if (blocks[i].held == NULL)
                continue;
            void *q = carve_pin(pr->h, blocks[i].hd);
            CHECK(q == blocks[i].held, "a held block moved from %p to %p", blocks[i].held, q);
            pins_check_block(pr, &blocks[i], q);
            CHECK_STATUS(carve_unpin(pr->h, blocks[i].hd), CARVE_OK);
        }
    }
    for (size_t i = 0; i < PIN_BLOCKS; i++) {
        if (blocks[i].held != NULL)
            CHECK_STATUS(carve_unpin(pr->h, blocks[i].hd), CARVE_OK);
        void *p = carve_pin(pr->h, blocks[i].hd);
        CHECK(p != NULL, "carve_pin failed");
        pins_check_block(pr, &blocks[i], p);
        CHECK_STATUS(carve_unpin(pr->h, blocks[i].hd), CARVE_OK);
        CHECK_STATUS(carve_hfree(pr->h, blocks[i].hd), CARVE_OK);
    }
    atomic_store(&pr->done, 1);
    return NULL;
}

static void *compactor_thread(void *arg)
{
    pins_run *pr = arg;
    here.mode = "pins";
    here.config = pr->config;
    here.thread = 1;
    uint64_t x = pr->seed ^ 0x2222;
    here.seed = tu_splitmix64(&x);
    tu_rng g;
    tu_rng_seed(&g, here.seed);
    static hblock fill[FILLER_BLOCKS];
    for (size_t i = 0; i < FILLER_BLOCKS; i++)
        pins_new_block(pr, &fill[i], &g, 32, 4096);
    uint64_t op = 0;
    /* Until the pinner is done, about one round per pinner step: the two
     * keep pace whatever the scheduler does (the work stays bounded). */
    while (!atomic_load(&pr->done)) {
        if (op > atomic_load_explicit(&pr->pinner_steps, memory_order_relaxed) + 4u) {
            sched_yield();
            continue;
        }
        here.op = op++;
        /* Holes everywhere: free a few fillers, compact, make them again. */
        size_t first = (size_t)tu_rng_below(&g, FILLER_BLOCKS);
        size_t count = (size_t)tu_rng_range(&g, 1, 6);
        for (size_t k = 0; k < count; k++) {
            hblock *b = &fill[(first + k * 7) % FILLER_BLOCKS];
            if (b->hd == 0)
                continue;
            CHECK_STATUS(carve_hfree(pr->h, b->hd), CARVE_OK);
            b->hd = 0;
        }
        size_t budget =
            tu_rng_below(&g, 32) == 0 ? SIZE_MAX : (size_t)tu_rng_range(&g, 1, 64 * KIB);
        (void)carve_compact(pr->h, budget);
        for (size_t k = 0; k < count; k++) {
            hblock *b = &fill[(first + k * 7) % FILLER_BLOCKS];
            if (b->hd == 0)
                pins_new_block(pr, b, &g, 32, 4096);
        }
        if ((op & 15) == 0) {
            hblock *b = &fill[tu_rng_below(&g, FILLER_BLOCKS)];
            void *p = carve_pin(pr->h, b->hd);
            CHECK(p != NULL, "carve_pin failed");
            verify(p, b->seed, b->size, "a filler block after compactions");
            CHECK_STATUS(carve_unpin(pr->h, b->hd), CARVE_OK);
        }
        if ((op & 255) == 0)
            CHECK_STATUS(carve_check(pr->h), CARVE_OK);
    }
    for (size_t i = 0; i < FILLER_BLOCKS; i++) {
        void *p = carve_pin(pr->h, fill[i].hd);
        CHECK(p != NULL, "carve_pin failed");
        verify(p, fill[i].seed, fill[i].size, "a filler block at the end");
        CHECK_STATUS(carve_unpin(pr->h, fill[i].hd), CARVE_OK);
        CHECK_STATUS(carve_hfree(pr->h, fill[i].hd), CARVE_OK);
    }
    return NULL;
}

static void mode_pins(uint64_t ops)
{
    here.mode = "pins";
    const config cfgs[] = {
        {"pins", CARVE_GOOD_FIT, CARVE_THREADSAFE, 2 * MIB, 512, 2, 4, 0},
        {"pins scramble", CARVE_GOOD_FIT, CARVE_THREADSAFE | CARVE_SCRAMBLE, 2 * MIB, 512, 2, 25,
         0},
    };
    for (size_t c = 0; c < sizeof cfgs / sizeof cfgs[0]; c++) {
        here.config = cfgs[c].name;
        tu_region reg;
        carve_heap *h = make_heap(&reg, &cfgs[c], 0);
        carve_stats fresh;
        carve_get_stats(h, &fresh);
        pins_run pr;
        memset(&pr, 0, sizeof pr);
        pr.h = h;
        pr.lo = reg.buf;
        pr.hi = reg.buf + cfgs[c].heap;
        pr.ops = ops / cfgs[c].ops_div;
        pr.seed = base_seed;
        pr.config = cfgs[c].name;
        atomic_init(&pr.done, 0);
        atomic_init(&pr.pinner_steps, 0);
        run_pair(pinner_thread, compactor_thread, &pr);
        carve_stats s;
        carve_get_stats(h, &s);
        CHECK(s.bytes_moved > 0, "the compactor never moved anything: the test tested nothing");
        check_fresh(h, &fresh, "after the pin test");
        printf("  %-26s %" PRIu64 " pinner steps: ok (%" PRIu64 " bytes moved in %" PRIu64
               " compactions)\n",
               cfgs[c].name, pr.ops, s.bytes_moved, s.compactions);
        destroy_heap(&reg, h);
    }
}

/* ------------------------------------------------------------------------ */
/* Mode: shared (processes)                                                  */
/* ------------------------------------------------------------------------ */

#define SHARED_PROCS 2

/* The mapping's layout: the pool and the barrier, then the heap's buffer. */
typedef struct shared_area {
    pool pool;
    pthread_barrier_t barrier;
} shared_area;

static void mode_shared(uint64_t ops)
{
    here.mode = "shared";
    static const config c = {
        "shared x2 processes", CARVE_GOOD_FIT, CARVE_SHARED, 8 * MIB, 1024, SHARED_PROCS, 2, 32768};
    here.config = c.name;
    size_t head = (sizeof(shared_area) + 4095u) & ~(size_t)4095u;
    size_t total = head + c.heap;
    unsigned char *map =
        mmap(NULL, total, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    CHECK(map != MAP_FAILED, "mmap(MAP_SHARED) failed: %s", strerror(errno));
    shared_area *area = (shared_area *)(void *)map;
    pool_init(&area->pool, 1);
    pthread_barrierattr_t ba;
    pthread_barrierattr_init(&ba);
    pthread_barrierattr_setpshared(&ba, PTHREAD_PROCESS_SHARED);
    CHECK(pthread_barrier_init(&area->barrier, &ba, SHARED_PROCS) == 0, "barrier");
    pthread_barrierattr_destroy(&ba);

    carve_options o;
    memset(&o, 0, sizeof o);
    o.policy = c.policy;
    o.flags = c.flags;
    o.max_handles = c.max_handles;
    carve_heap *h = carve_init(map + head, c.heap, &o);
    CHECK(h != NULL, "carve_init(CARVE_SHARED) failed: errno %d", errno);
    carve_stats fresh;
    carve_get_stats(h, &fresh);

    fflush(NULL);
    pid_t pids[SHARED_PROCS];
    for (unsigned k = 0; k < SHARED_PROCS; k++) {
        pids[k] = fork();
        CHECK(pids[k] >= 0, "fork failed: %s", strerror(errno));
        if (pids[k] == 0) {
            alarm(600); /* a deadlock becomes a failure, not a hang */
            run r;
            memset(&r, 0, sizeof r);
            r.h = h;
            r.lo = map + head;
            r.hi = map + total;
            r.cfg = &c;
            r.pool = &area->pool;
            r.barrier = &area->barrier;
            r.workers = SHARED_PROCS;
            r.ops = ops / c.ops_div;
            r.capacity = fresh.capacity;
            worker w;
            worker_setup(&w, &r, k);
            worker_run(&w);
            /* This process is done with the heap: its caches go back. */
            CHECK_STATUS(carve_detach(h), CARVE_OK);
            _exit(0);
        }
    }
    int bad = 0;
    for (unsigned k = 0; k < SHARED_PROCS; k++) {
        int status;
        CHECK(waitpid(pids[k], &status, 0) == pids[k], "waitpid: %s", strerror(errno));
        if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
            fprintf(stderr, "thread_stress: shared: process %u %s %d\n", k,
                    WIFSIGNALED(status) ? "died of signal" : "exited with status",
                    WIFSIGNALED(status) ? WTERMSIG(status) : WEXITSTATUS(status));
            bad = 1;
        }
    }
    CHECK(!bad, "a process working on the shared heap failed");
    check_fresh(h, &fresh, "after both processes detached and exited");
    printf("  %-26s %d processes x %" PRIu64 " ops: ok\n", c.name, SHARED_PROCS, ops / c.ops_div);
    CHECK_STATUS(carve_detach(h), CARVE_OK);
    pthread_barrier_destroy(&area->barrier);
    pthread_mutex_destroy(&area->pool.lock);
    munmap(map, total);
}

/* ------------------------------------------------------------------------ */
/* Mode: detach                                                              */
/* ------------------------------------------------------------------------ */

typedef struct idle_thread {
    run *r;
    unsigned index;
    pthread_barrier_t *used; /* passed once the heap was used and everything freed */
    pthread_barrier_t *go;   /* passed once the main thread is done detaching */
} idle_thread;

/* Uses the heap (allocations and frees of small blocks land in this
 * thread's cache, if carve keeps one), frees everything, then waits,
 * alive, while the main thread detaches and re-attaches. */
static void *using_then_idle(void *arg)
{
    idle_thread *t = arg;
    static _Thread_local worker w;
    here.mode = "detach";
    worker_setup(&w, t->r, t->index);
    for (uint64_t op = 0; op < t->r->ops; op++) {
        here.op = op;
        worker_step(&w);
    }
    worker_finish(&w);
    if (t->used != NULL) {
        pthread_barrier_wait(t->used);
        pthread_barrier_wait(t->go);
    }
    return NULL;
}

static void run_users(run *r, unsigned n, int stay_alive, const char *what, carve_heap **hp,
                      tu_region *reg, const carve_stats *fresh)
{
    pthread_barrier_t finish, used, go;
    pthread_barrier_init(&finish, NULL, n);
    pthread_barrier_init(&used, NULL, n + 1);
    pthread_barrier_init(&go, NULL, n + 1);
    r->barrier = &finish;
    r->workers = n;
    r->pool->n = 0; /* what the last users left there they freed */
    idle_thread t[MAX_THREADS];
    pthread_t tid[MAX_THREADS];
    for (unsigned i = 0; i < n; i++) {
        t[i].r = r;
        t[i].index = i;
        t[i].used = stay_alive ? &used : NULL;
        t[i].go = stay_alive ? &go : NULL;
        CHECK(pthread_create(&tid[i], NULL, using_then_idle, &t[i]) == 0, "pthread_create");
    }
    if (stay_alive) {
        pthread_barrier_wait(&used);
        /* The users are alive and idle: detach must take their caches back. */
        CHECK_STATUS(carve_detach(*hp), CARVE_OK);
        carve_heap *again = carve_attach(reg->buf, reg->size);
        CHECK(again != NULL, "%s: carve_attach after carve_detach failed: errno %d", what, errno);
        *hp = again;
        r->h = again;
        check_fresh(again, fresh, what);
        pthread_barrier_wait(&go);
    }
    for (unsigned i = 0; i < n; i++)
        pthread_join(tid[i], NULL);
    here.mode = "detach";
    here.config = what;
    pthread_barrier_destroy(&finish);
    pthread_barrier_destroy(&used);
    pthread_barrier_destroy(&go);
    /* Whether they exited before or after the detach, nothing of theirs
     * may be left in the heap, and their exit must not have touched it
     * behind the new attachment's back. */
    check_fresh(*hp, fresh, what);
}

/* ---- more threads than caches, more heaps than a thread caches for ------- */

#define MANY_THREADS 72 /* more than the caches a heap has room for */
#define MANY_HEAPS   6  /* more than the heaps one thread keeps caches for */

typedef struct many {
    carve_heap *heaps[MANY_HEAPS];
    size_t nheaps;
    pthread_barrier_t *all_in; /* every thread holds blocks at once */
    unsigned rounds;
} many;

/* Small blocks on every heap of m, all alive at the barrier, then freed
 * (half of them in reverse), a few rounds. */
static void *many_user(void *arg)
{
    many *m = arg;
    here.mode = "detach";
    enum { PER_HEAP = 24 };
    void *p[MANY_HEAPS][PER_HEAP];
    uint64_t seed = (uint64_t)(uintptr_t)&p;
    for (unsigned round = 0; round < m->rounds; round++) {
        for (size_t k = 0; k < m->nheaps; k++) {
            for (size_t i = 0; i < PER_HEAP; i++) {
                size_t n = 8 + (i * 29) % 240;
                p[k][i] = carve_alloc(m->heaps[k], n);
                CHECK(p[k][i] != NULL, "carve_alloc(%zu) failed: errno %d", n, errno);
                tu_fill(p[k][i], seed + i, n);
            }
        }
        if (round == 0 && m->all_in != NULL)
            pthread_barrier_wait(m->all_in);
        for (size_t k = 0; k < m->nheaps; k++) {
            for (size_t j = 0; j < PER_HEAP; j++) {
                size_t i = (j & 1) ? PER_HEAP - 1 - j / 2 : j / 2;
                size_t n = 8 + (i * 29) % 240;
                verify(p[k][i], seed + i, n, "a small block");
                CHECK_STATUS(carve_free(m->heaps[k], p[k][i]), CARVE_OK);
            }
        }
    }
    return NULL;
}

/* One thread on more heaps than it keeps caches for, in phases long enough
 * (over 65,536 calls in a heap without a cache) that it gives entries up
 * and later, back in those heaps, takes its records back; meanwhile
 * another thread churns the first heaps, and reads the statistics of two
 * of them, each read emptying every cache there, the records given up
 * too (in the other two they wait to be taken back). */
#define PHASE_CALLS 70000

typedef struct phased {
    carve_heap **heaps;
    _Atomic int done;
} phased;

static void churn_verified(carve_heap *h, size_t calls, uint64_t seed)
{
    enum { BATCH = 16 };
    void *p[BATCH];
    for (size_t i = 0; i < calls / (2 * BATCH); i++) {
        for (size_t k = 0; k < BATCH; k++) {
            size_t n = (size_t)(8 + ((seed + i + k) * 29) % 240);
            p[k] = carve_alloc(h, n);
            CHECK(p[k] != NULL, "carve_alloc(%zu) failed: errno %d", n, errno);
            tu_fill(p[k], seed + k, n);
        }
        for (size_t k = 0; k < BATCH; k++) {
            size_t n = (size_t)(8 + ((seed + i + k) * 29) % 240);
            verify(p[k], seed + k, n, "a small block");
            CHECK_STATUS(carve_free(h, p[k]), CARVE_OK);
        }
    }
}

static void *phased_user(void *arg)
{
    phased *ph = arg;
    here.mode = "detach";
    for (size_t k = 0; k < 4; k++)
        churn_verified(ph->heaps[k], 2048, k);
    for (size_t k = 4; k < MANY_HEAPS; k++)
        churn_verified(ph->heaps[k], PHASE_CALLS, k);
    for (size_t k = 0; k < 4; k++)
        churn_verified(ph->heaps[k], PHASE_CALLS, k);
    atomic_store(&ph->done, 1);
    return NULL;
}

static void *phased_reader(void *arg)
{
    phased *ph = arg;
    here.mode = "detach";
    while (!atomic_load(&ph->done)) {
        for (size_t k = 0; k < 4; k++) {
            churn_verified(ph->heaps[k], 64, 100 + k);
            if (k >= 2) {
                carve_stats st;
                carve_get_stats(ph->heaps[k], &st);
            }
        }
    }
    return NULL;
}

static void heaps_in_phases(carve_heap **heaps, const carve_stats *fresh)
{
    phased ph;
    ph.heaps = heaps;
    atomic_init(&ph.done, 0);
    run_pair(phased_user, phased_reader, &ph);
    for (size_t k = 0; k < MANY_HEAPS; k++)
        check_fresh(heaps[k], &fresh[k], "one thread on heaps in phases, another reading");
}

static void many_threads_and_heaps(void)
{
    static const config c = {
        "many threads and heaps", CARVE_GOOD_FIT, CARVE_THREADSAFE, 8 * MIB, 64, 0, 1, 0};
    here.config = c.name;
    tu_region reg[MANY_HEAPS];
    carve_stats fresh[MANY_HEAPS];
    many m;
    memset(&m, 0, sizeof m);
    m.nheaps = MANY_HEAPS;
    for (size_t k = 0; k < MANY_HEAPS; k++) {
        m.heaps[k] = make_heap(&reg[k], &c, 8);
        carve_get_stats(m.heaps[k], &fresh[k]);
    }
    /* One thread on more heaps than it keeps caches for, then every thread
     * at once on one heap: more threads than it has caches for. */
    m.rounds = 20;
    pthread_t t;
    CHECK(pthread_create(&t, NULL, many_user, &m) == 0, "pthread_create");
    pthread_join(t, NULL);
    for (size_t k = 0; k < MANY_HEAPS; k++)
        check_fresh(m.heaps[k], &fresh[k], "one thread used more heaps than it caches for");
    heaps_in_phases(m.heaps, fresh);
    static pthread_t tids[MANY_THREADS];
    pthread_barrier_t all_in;
    pthread_barrier_init(&all_in, NULL, MANY_THREADS);
    many one = m;
    one.nheaps = 1;
    one.rounds = 3;
    one.all_in = &all_in;
    for (unsigned i = 0; i < MANY_THREADS; i++)
        CHECK(pthread_create(&tids[i], NULL, many_user, &one) == 0, "pthread_create %u", i);
    for (unsigned i = 0; i < MANY_THREADS; i++)
        pthread_join(tids[i], NULL);
    pthread_barrier_destroy(&all_in);
    check_fresh(m.heaps[0], &fresh[0], "more threads than caches");
    for (size_t k = 0; k < MANY_HEAPS; k++)
        destroy_heap(&reg[k], m.heaps[k]);
}

static void mode_detach(uint64_t ops)
{
    here.mode = "detach";
    /* 8 MiB: large enough for thread caches (the library keeps none in
     * small heaps), which is what detach must take back. */
    static const config c = {"detach", CARVE_GOOD_FIT, CARVE_THREADSAFE, 8 * MIB, 1024, 3, 4, 4096};
    here.config = c.name;
    tu_region reg;
    carve_heap *h = make_heap(&reg, &c, 8);
    carve_stats fresh;
    carve_get_stats(h, &fresh);
    static pool the_pool;
    pool_init(&the_pool, 0);
    run r;
    memset(&r, 0, sizeof r);
    r.h = h;
    r.lo = reg.buf;
    r.hi = reg.buf + c.heap;
    r.cfg = &c;
    r.pool = &the_pool;
    r.ops = ops / c.ops_div;
    r.capacity = fresh.capacity;

    /* 1. Threads used the heap and exited: their caches went back. */
    run_users(&r, 3, 0, "threads exited", &h, &reg, &fresh);

    /* 2. Detach, re-attach in place: the same heap, whole and working. */
    CHECK_STATUS(carve_detach(h), CARVE_OK);
    h = carve_attach(reg.buf, reg.size);
    CHECK(h != NULL, "carve_attach after carve_detach failed: errno %d", errno);
    r.h = h;
    check_fresh(h, &fresh, "re-attached in place");
    run_users(&r, 2, 0, "threads on the re-attached heap", &h, &reg, &fresh);

    /* 3. Threads alive (idle) while the heap is detached and re-attached. */
    run_users(&r, 3, 1, "detached while threads were alive", &h, &reg, &fresh);

    /* 4. Detached, copied to another buffer (same remainder modulo 64),
     * attached there: the copy works, the original still does. */
    CHECK_STATUS(carve_detach(h), CARVE_OK);
    tu_region copy;
    CHECK(tu_region_make(&copy, reg.size, 8, 256, 0) == 0, "out of memory");
    memcpy(copy.buf, reg.buf, reg.size);
    carve_heap *hc = carve_attach(copy.buf, copy.size);
    CHECK(hc != NULL, "carve_attach of a copy failed: errno %d", errno);
    check_fresh(hc, &fresh, "a copy of the detached heap");
    run rc = r;
    rc.h = hc;
    rc.lo = copy.buf;
    rc.hi = copy.buf + copy.size;
    run_users(&rc, 2, 0, "threads on the copy", &hc, &copy, &fresh);
    destroy_heap(&copy, hc);

    h = carve_attach(reg.buf, reg.size);
    CHECK(h != NULL, "carve_attach of the original failed: errno %d", errno);
    check_fresh(h, &fresh, "the original after its copy was used");

    /* 5. Detaching twice is harmless (there is nothing left to hand back),
     * and the heap still works; NULL is refused.  A heap without a lock
     * only has h checked. */
    CHECK_STATUS(carve_detach(h), CARVE_OK);
    CHECK_STATUS(carve_detach(h), CARVE_OK);
    CHECK_STATUS(carve_check(h), CARVE_OK);
    CHECK_STATUS(carve_detach(NULL), CARVE_ERR_INVALID);
    tu_region plain;
    CHECK(tu_region_make(&plain, 64 * KIB, 0, 256, 0) == 0, "out of memory");
    carve_heap *hp = carve_init(plain.buf, plain.size, NULL);
    CHECK(hp != NULL, "carve_init failed");
    CHECK_STATUS(carve_detach(hp), CARVE_OK);
    hp = carve_attach(plain.buf, plain.size);
    CHECK(hp != NULL, "carve_attach of a plain heap after carve_detach failed");
    CHECK_STATUS(carve_check(hp), CARVE_OK);
    destroy_heap(&plain, hp);

    CHECK(tu_region_guards_ok(&reg), "a guard zone was overwritten");
    tu_region_free(&reg);
    pthread_mutex_destroy(&the_pool.lock);

    /* 6. Thread caches at their limits. */
    many_threads_and_heaps();
    printf("  detach: threads exited, re-attach in place, detach with live idle threads, a "
           "copy, double detach, %d threads, %d heaps per thread: ok\n",
           MANY_THREADS, MANY_HEAPS);
}

/* ------------------------------------------------------------------------ */
/* main                                                                      */
/* ------------------------------------------------------------------------ */

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: thread_stress stress|pins|shared|detach [OPS [SEED]]\n");
        return 2;
    }
    const char *mode = argv[1];
    uint64_t ops = tu_env_ull("CARVE_TEST_OPS", 100000);
    base_seed = tu_env_ull("CARVE_TEST_SEED", 0xC0FFEE2026ull);
    if (argc > 2)
        ops = strtoull(argv[2], NULL, 0);
    if (argc > 3)
        base_seed = strtoull(argv[3], NULL, 0);
    here.mode = mode;
    printf("thread_stress %s: %" PRIu64 " ops, seed 0x%" PRIx64 "\n", mode, ops, base_seed);
    fflush(stdout);
    if (strcmp(mode, "stress") == 0)
        mode_stress(ops);
    else if (strcmp(mode, "pins") == 0)
        mode_pins(ops);
    else if (strcmp(mode, "shared") == 0)
        mode_shared(ops);
    else if (strcmp(mode, "detach") == 0)
        mode_detach(ops);
    else {
        fprintf(stderr, "thread_stress: unknown mode '%s'\n", mode);
        return 2;
    }
    printf("thread_stress %s: PASS\n", mode);
    return 0;
}
