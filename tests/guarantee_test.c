/*
 * guarantee_test: "an allocation never fails while enough bytes are free".
 *
 * With only unpinned handle blocks live, every request no larger than the
 * free bytes (less the stated per-block overhead) must succeed: the heap
 * compacts itself when the free space is scattered.  This test builds
 * thousands of random fragmented heaps and asks each for exactly that much:
 *
 *   1. a heap of 64 KiB .. 8 MiB (log-uniform), a random policy, flag set,
 *      buffer remainder and handle size mix; max_handles set, so the handle
 *      table exists from carve_init;
 *   2. handle blocks of random sizes until the heap is full (then smaller
 *      ones until even those fail), each filled with its own pattern;
 *   3. a random subset freed, so the free space is scattered; on half the
 *      heaps, first a few budgeted compaction slices (as a real-time user
 *      runs them) and then more frees, so the request also meets a heap
 *      whose last compaction stopped partway;
 *   4. carve_halloc(free_bytes - CARVE_HANDLE_OVERHEAD) must succeed;
 *      every surviving block keeps its contents and its handle, the new
 *      block does not overlap them, carve_check passes, free_bytes is 0;
 *   5. that block freed and another subset freed: carve_alloc(free_bytes -
 *      CARVE_BLOCK_OVERHEAD) must succeed, with the same checks;
 *   6. that block freed and another subset freed: carve_compact(SIZE_MAX)
 *      leaves one free block holding all the free bytes (largest_free =
 *      free_bytes - CARVE_BLOCK_OVERHEAD).
 *
 * Usage: guarantee_test [heaps [seed [index]]]
 *   or the environment: CARVE_TEST_HEAPS, CARVE_TEST_SEED.  With an index,
 *   only that heap is built (what a failure's "reproduce" line gives).
 *   CARVE_TEST_QUICK=1 (the valgrind variant) tries fewer, smaller heaps.
 * Prints how many heaps were tried and how many of the requests needed the
 * heap to compact; the first counterexample fails the test with its
 * reproduction.  Exit status 0 = pass.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "test_util.h"

#define DEFAULT_HEAPS 3000ull
#define QUICK_HEAPS   400ull
#define DEFAULT_SEED  0x6A7A3AEEull
#define MIN_HEAP_LOG  16u /* 64 KiB */
#define MAX_HEAP_LOG  23u /* 8 MiB */
#define QUICK_MAX_LOG 20u /* 1 MiB under valgrind */

typedef struct blk {
    carve_handle hd; /* 0 = freed */
    size_t usable;
    uint64_t seed;
} blk;

/* One heap under test, and what a failure report needs. */
typedef struct gheap {
    unsigned long long index;
    uint64_t base_seed, seed;
    size_t size, misalign, max_handles;
    carve_policy policy;
    unsigned flags;
    unsigned lo_log, hi_log; /* request sizes: log-uniform in [2^lo, 2^hi) */
    unsigned small_pct;      /* share of requests below 512 bytes */
    const char *phase;
    size_t request;
    tu_region r;
    carve_heap *h;
    blk *b;
    size_t n, live;
    carve_stats before; /* stats just before the request under test */
    tu_rng rng;
} gheap;

/* Totals for the summary. */
static unsigned long long g_heaps, g_requests, g_needed_compaction, g_blocks, g_sliced;
static uint64_t g_bytes_moved;

static const char *policy_name(carve_policy p)
{
    return p == CARVE_GOOD_FIT ? "good_fit" : p == CARVE_FIRST_FIT ? "first_fit" : "best_fit";
}

static void fail(gheap *g, const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "guarantee_test FAILED: heap #%llu, phase \"%s\": ", g->index, g->phase);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr,
            "\n  heap: %zu bytes at remainder %zu, policy %s, flags 0x%x, max_handles %zu, "
            "requests 2^%u..2^%u (%u%% below 512), heap seed 0x%" PRIx64 "\n",
            g->size, g->misalign, policy_name(g->policy), g->flags, g->max_handles, g->lo_log,
            g->hi_log, g->small_pct, g->seed);
    fprintf(stderr,
            "  before the request of %zu bytes: free_bytes %zu largest_free %zu free_blocks %zu "
            "live handles %zu (used %zu, capacity %zu)\n",
            g->request, g->before.free_bytes, g->before.largest_free, g->before.free_blocks,
            g->before.live_handles, g->before.used_bytes, g->before.capacity);
    if (g->h != NULL) {
        fprintf(stderr, "  the heap now:\n");
        carve_dump_ex(g->h, stderr, 0);
    }
    fprintf(stderr, "  reproduce: guarantee_test 1 0x%" PRIx64 " %llu\n", g->base_seed, g->index);
    exit(1);
}

static uint64_t heap_seed(uint64_t base, unsigned long long index)
{
    uint64_t x = base ^ (index * 0xD1B54A32D192ED03ull);
    return tu_splitmix64(&x);
}

/* Everything about heap #index follows from the base seed and the index. */
static void choose(gheap *g, uint64_t base, unsigned long long index, int quick)
{
    memset(g, 0, sizeof *g);
    g->index = index;
    g->base_seed = base;
    g->seed = heap_seed(base, index);
    tu_rng_seed(&g->rng, g->seed);
    tu_rng *r = &g->rng;
    unsigned max_log = quick ? QUICK_MAX_LOG : MAX_HEAP_LOG;
    g->size = tu_rng_log_uniform(r, MIN_HEAP_LOG, max_log);
    g->size += (size_t)tu_rng_below(r, 64); /* odd sizes too */
    g->misalign = (size_t)tu_rng_below(r, 64);
    g->policy = (carve_policy)(index % 3);
    uint64_t f = tu_rng_below(r, 16);
    g->flags = f < 9    ? 0u
               : f < 12 ? (unsigned)CARVE_NO_RUNS
               : f < 14 ? (unsigned)CARVE_POISON
                        : (unsigned)CARVE_THREADSAFE;
    /* A poisoned heap checks a free block's whole pattern each time it
     * carves from it, so filling one costs O(blocks x heap): small ones. */
    if (g->flags == CARVE_POISON && g->size > (512u << 10))
        g->size = (g->size >> 4) | (size_t)1 << MIN_HEAP_LOG;
    /* Requests: a share of small ones (1..511 bytes) and the rest log-uniform
     * from 512 bytes up to 2^hi, hi between 1 KiB and 1/8 of the heap. */
    unsigned heap_log = 0;
    while (((size_t)2 << heap_log) <= g->size)
        heap_log++;
    g->hi_log = 10u + (unsigned)tu_rng_below(r, heap_log - 3u - 10u + 1u);
    g->lo_log = 9u;
    g->small_pct = (unsigned)tu_rng_below(r, 91);
    /* Enough table entries for a heap full of the smallest blocks the mix
     * makes often (mostly; a table that fills first just ends the filling). */
    size_t per = g->small_pct > 60 ? 128u : 256u;
    g->max_handles = g->size / per;
    if (g->max_handles < 64)
        g->max_handles = 64;
}

static size_t pick_request(gheap *g)
{
    if (tu_rng_below(&g->rng, 100) < g->small_pct)
        return tu_rng_range(&g->rng, 1, 511);
    return tu_rng_log_uniform(&g->rng, g->lo_log, g->hi_log);
}

static void add_block(gheap *g, carve_handle hd)
{
    blk *b = &g->b[g->n++];
    b->hd = hd;
    b->usable = carve_hsize(g->h, hd);
    b->seed = g->seed ^ ((uint64_t)g->n << 32);
    unsigned char *p = (unsigned char *)carve_pin(g->h, hd);
    if (p == NULL)
        fail(g, "carve_pin of a new handle failed, errno %d", errno);
    tu_fill(p, b->seed, b->usable);
    if (carve_unpin(g->h, hd) != CARVE_OK)
        fail(g, "carve_unpin of a new handle failed");
    g->live++;
}

/* Handle blocks until the heap is full: random requests until one fails,
 * then smaller and smaller ones until 16 bytes fail too. */
static void fill(gheap *g)
{
    g->phase = "fill";
    for (;;) {
        if (g->n == g->max_handles)
            return;
        size_t req = pick_request(g);
        errno = 0;
        carve_handle hd = carve_halloc(g->h, req);
        if (hd == 0) {
            if (errno != ENOMEM)
                fail(g, "carve_halloc(%zu) failed with errno %d", req, errno);
            break;
        }
        add_block(g, hd);
    }
    for (size_t req = 4096; req >= 1 && g->n < g->max_handles;) {
        carve_handle hd = carve_halloc(g->h, req);
        if (hd != 0)
            add_block(g, hd);
        else
            req /= 2;
    }
}

/* Frees each live block with probability pct/100. */
static void free_some(gheap *g, unsigned pct)
{
    for (size_t i = 0; i < g->n; i++) {
        if (g->b[i].hd == 0 || tu_rng_below(&g->rng, 100) >= pct)
            continue;
        int st = carve_hfree(g->h, g->b[i].hd);
        if (st != CARVE_OK)
            fail(g, "carve_hfree = %d (%s)", st, carve_strerror(st));
        g->b[i].hd = 0;
        g->live--;
    }
}

/* Every surviving block: same handle, same size, same contents, and none
 * overlapping the block at [xp, xp + xn); extra_handles: live handles the
 * heap holds besides the test's blocks. */
static void verify(gheap *g, const unsigned char *xp, size_t xn, size_t extra_handles)
{
    for (size_t i = 0; i < g->n; i++) {
        blk *b = &g->b[i];
        if (b->hd == 0)
            continue;
        size_t us = carve_hsize(g->h, b->hd);
        if (us != b->usable)
            fail(g, "block %zu (handle 0x%" PRIx64 "): hsize %zu, was %zu", i, b->hd, us,
                 b->usable);
        unsigned char *p = (unsigned char *)carve_pin(g->h, b->hd);
        if (p == NULL)
            fail(g, "block %zu: its handle 0x%" PRIx64 " no longer pins (errno %d)", i, b->hd,
                 errno);
        if (!tu_is_aligned(p, CARVE_ALIGNMENT) || !tu_region_contains(&g->r, p, us))
            fail(g, "block %zu pinned at %p+%zu: misaligned or outside the buffer", i, (void *)p,
                 us);
        if (xp != NULL && p < xp + xn && xp < p + us)
            fail(g, "block %zu at %p+%zu overlaps the new block %p+%zu", i, (void *)p, us,
                 (const void *)xp, xn);
        size_t bad = tu_verify(p, b->seed, us);
        if (bad != us)
            fail(g,
                 "block %zu (handle 0x%" PRIx64 ", %zu bytes at %p) lost its contents at byte "
                 "%zu",
                 i, b->hd, us, (void *)p, bad);
        if (carve_unpin(g->h, b->hd) != CARVE_OK)
            fail(g, "carve_unpin failed");
    }
    int c = carve_check(g->h);
    if (c != CARVE_OK)
        fail(g, "carve_check = %d (%s)", c, carve_strerror(c));
    carve_stats st;
    carve_get_stats(g->h, &st);
    if (st.live_handles != g->live + extra_handles)
        fail(g, "live_handles %zu, the test holds %zu", st.live_handles, g->live + extra_handles);
    if (st.pinned_handles != 0)
        fail(g, "pinned_handles %zu with nothing pinned", st.pinned_handles);
}

/* Records the request about to be made and whether it needs compaction. */
static void before_request(gheap *g, const char *phase, size_t request)
{
    g->phase = phase;
    g->request = request;
    carve_get_stats(g->h, &g->before);
    g_requests++;
}

/* Counts a request that could not have fit without moving blocks.
 * largest_free is exact for raw requests; a handle request costs
 * extra = CARVE_HANDLE_OVERHEAD - CARVE_BLOCK_OVERHEAD bytes more. */
static void after_request(gheap *g, size_t extra)
{
    if (g->request + extra > g->before.largest_free)
        g_needed_compaction++;
}

static void phase_halloc(gheap *g)
{
    carve_stats st;
    carve_get_stats(g->h, &st);
    if (st.free_bytes <= CARVE_HANDLE_OVERHEAD)
        return;
    size_t req = st.free_bytes - CARVE_HANDLE_OVERHEAD;
    before_request(g, "halloc(free_bytes - CARVE_HANDLE_OVERHEAD)", req);
    errno = 0;
    carve_handle hd = carve_halloc(g->h, req);
    if (hd == 0)
        fail(g, "carve_halloc(%zu) failed with errno %d although free_bytes is %zu", req, errno,
             st.free_bytes);
    after_request(g, CARVE_HANDLE_OVERHEAD - CARVE_BLOCK_OVERHEAD);
    size_t us = carve_hsize(g->h, hd);
    if (us < req)
        fail(g, "hsize %zu < request %zu", us, req);
    unsigned char *p = (unsigned char *)carve_pin(g->h, hd);
    if (p == NULL)
        fail(g, "the new handle does not pin");
    if (!tu_region_contains(&g->r, p, us))
        fail(g, "the new block %p+%zu is outside the buffer", (void *)p, us);
    tu_fill(p, g->seed, us);
    if (carve_unpin(g->h, hd) != CARVE_OK)
        fail(g, "unpin of the new block failed");
    carve_get_stats(g->h, &st);
    if (st.free_bytes != 0)
        fail(g, "after taking all the free bytes, free_bytes is %zu", st.free_bytes);
    /* Unpinned, it stays where it is: the checks below allocate nothing. */
    verify(g, p, us, 1);
    if ((unsigned char *)carve_pin(g->h, hd) != p || tu_verify(p, g->seed, us) != us)
        fail(g, "the new block moved or lost its contents");
    if (carve_unpin(g->h, hd) != CARVE_OK || carve_hfree(g->h, hd) != CARVE_OK)
        fail(g, "could not free the new block");
}

static void phase_alloc(gheap *g)
{
    carve_stats st;
    carve_get_stats(g->h, &st);
    if (st.free_bytes <= CARVE_BLOCK_OVERHEAD)
        return;
    size_t req = st.free_bytes - CARVE_BLOCK_OVERHEAD;
    before_request(g, "alloc(free_bytes - CARVE_BLOCK_OVERHEAD)", req);
    errno = 0;
    unsigned char *p = (unsigned char *)carve_alloc(g->h, req);
    if (p == NULL)
        fail(g, "carve_alloc(%zu) failed with errno %d although free_bytes is %zu", req, errno,
             st.free_bytes);
    after_request(g, 0);
    size_t us = carve_usable_size(g->h, p);
    if (us < req || !tu_region_contains(&g->r, p, us))
        fail(g, "the new block %p+%zu (request %zu) is too small or outside the buffer", (void *)p,
             us, req);
    tu_fill(p, g->seed + 1, us);
    carve_get_stats(g->h, &st);
    if (req > CARVE_SMALL_MAX && st.free_bytes != 0)
        fail(g, "after taking all the free bytes, free_bytes is %zu", st.free_bytes);
    verify(g, p, us, 0);
    if (tu_verify(p, g->seed + 1, us) != us)
        fail(g, "the new raw block lost its contents");
    if (carve_free(g->h, p) != CARVE_OK)
        fail(g, "could not free the new raw block");
}

static void phase_compact(gheap *g)
{
    g->phase = "compact(SIZE_MAX)";
    g->request = 0;
    carve_get_stats(g->h, &g->before);
    size_t moved = carve_compact(g->h, SIZE_MAX);
    carve_stats st;
    carve_get_stats(g->h, &st);
    if (st.bytes_moved != g->before.bytes_moved + moved)
        fail(g, "carve_compact returned %zu but bytes_moved grew by %" PRIu64, moved,
             st.bytes_moved - g->before.bytes_moved);
    if (st.free_bytes > 0 &&
        (st.free_blocks != 1 || st.largest_free != st.free_bytes - CARVE_BLOCK_OVERHEAD))
        fail(g, "after a full compaction: %zu free bytes in %zu free blocks, largest_free %zu",
             st.free_bytes, st.free_blocks, st.largest_free);
    verify(g, NULL, 0, 0);
}

/* A few budgeted compaction slices (each within its budget, the heap
 * consistent after it), then more frees before and after where they
 * stopped. */
static void slices(gheap *g)
{
    g->phase = "budgeted slices";
    unsigned n = 1u + (unsigned)tu_rng_below(&g->rng, 3);
    for (unsigned k = 0; k < n; k++) {
        size_t budget = tu_rng_log_uniform(&g->rng, 6, 17);
        size_t moved = carve_compact(g->h, budget);
        if (moved > budget)
            fail(g, "carve_compact(%zu) moved %zu bytes", budget, moved);
        int c = carve_check(g->h);
        if (c != CARVE_OK)
            fail(g, "carve_check after a slice = %d", c);
    }
    g_sliced++;
    free_some(g, 5u + (unsigned)tu_rng_below(&g->rng, 30));
}

static void run_heap(uint64_t base, unsigned long long index, int quick)
{
    gheap g;
    choose(&g, base, index, quick);
    g.phase = "init";
    if (tu_region_make(&g.r, g.size, g.misalign, 64, 0x5C) != 0) {
        fprintf(stderr, "guarantee_test: cannot allocate %zu bytes\n", g.size);
        exit(2);
    }
    carve_options o;
    memset(&o, 0, sizeof o);
    o.policy = g.policy;
    o.flags = g.flags;
    o.max_handles = g.max_handles;
    g.h = carve_init(g.r.buf, g.size, &o);
    if (g.h == NULL)
        fail(&g, "carve_init failed, errno %d", errno);
    g.b = (blk *)calloc(g.max_handles, sizeof *g.b);
    if (g.b == NULL)
        abort();
    carve_stats st0;
    carve_get_stats(g.h, &st0);

    fill(&g);
    g_blocks += g.n;
    free_some(&g, 10u + (unsigned)tu_rng_below(&g.rng, 81));
    if (tu_rng_below(&g.rng, 2) == 0)
        slices(&g);
    phase_halloc(&g);
    free_some(&g, (unsigned)tu_rng_below(&g.rng, 60));
    phase_alloc(&g);
    free_some(&g, (unsigned)tu_rng_below(&g.rng, 60));
    phase_compact(&g);

    /* Everything back: the heap holds only its table again. */
    g.phase = "free all";
    free_some(&g, 100);
    carve_stats st;
    carve_get_stats(g.h, &st);
    if (st.live_handles != 0 || st.used_bytes != st0.used_bytes)
        fail(&g, "after freeing everything: %zu live handles, used %zu (fresh: %zu)",
             st.live_handles, st.used_bytes, st0.used_bytes);
    g_bytes_moved += st.bytes_moved;
    if (!tu_region_guards_ok(&g.r))
        fail(&g, "a guard zone around the buffer was written");
    free(g.b);
    tu_region_free(&g.r);
    g_heaps++;
}

int main(int argc, char **argv)
{
    const char *q = getenv("CARVE_TEST_QUICK");
    int quick = q != NULL && *q != '\0' && *q != '0';
    unsigned long long heaps = tu_env_ull("CARVE_TEST_HEAPS", quick ? QUICK_HEAPS : DEFAULT_HEAPS);
    uint64_t seed = tu_env_ull("CARVE_TEST_SEED", DEFAULT_SEED);
    long long only = -1;
    if (argc > 1)
        heaps = strtoull(argv[1], NULL, 0);
    if (quick && argc > 1 && heaps > QUICK_HEAPS)
        heaps = QUICK_HEAPS; /* valgrind: a sample, whatever the command line says */
    if (argc > 2)
        seed = strtoull(argv[2], NULL, 0);
    if (argc > 3)
        only = strtoll(argv[3], NULL, 0);
    printf("guarantee_test: seed 0x%" PRIx64 ", %llu heaps of %u KiB..%u MiB%s\n", seed,
           only >= 0 ? 1ull : heaps, 1u << (MIN_HEAP_LOG - 10),
           1u << ((quick ? QUICK_MAX_LOG : MAX_HEAP_LOG) - 20), quick ? " (quick)" : "");
    fflush(stdout);
    if (only >= 0) {
        run_heap(seed, (unsigned long long)only, quick);
    } else {
        for (unsigned long long k = 0; k < heaps; k++)
            run_heap(seed, k, quick);
    }
    printf("guarantee_test: %llu heaps tried (%llu after budgeted slices), %llu requests of all "
           "the free bytes (%llu of them larger than largest_free, so the heap had to compact), "
           "%llu handle blocks, %" PRIu64 " bytes moved: the guarantee held on every heap\n",
           g_heaps, g_sliced, g_requests, g_needed_compaction, g_blocks, g_bytes_moved);
    return 0;
}
