/*
 * model_test: the model-based randomized test.
 *
 * For each policy it runs a long random sequence of carve_alloc,
 * carve_calloc, carve_realloc, carve_aligned_alloc and carve_free (sizes from
 * 1 byte to 1 MiB, skewed small) on a heap of a few MiB, and checks every
 * result against a shadow table of the live blocks:
 *   - every pointer is aligned and [ptr, ptr + usable) lies in the buffer;
 *   - no two live blocks overlap (a bitmap of 16-byte granules owned by live
 *     blocks: a new block's range must be clear);
 *   - every block keeps its contents (a pattern from its seed, verified on
 *     free and realloc, and for all blocks every VERIFY_EVERY operations);
 *     calloc memory is zeroed; realloc keeps the min(old, new) prefix;
 *   - usable_size >= size, and it stays what it was while the block lives;
 *   - the stats agree with the shadow after every operation (live blocks,
 *     allocs - frees, failed_allocs, used >= sum of usable sizes,
 *     used + free == capacity); in the lazy_stats configurations every 1024
 *     operations, since reading them empties the caches those test;
 *   - allocation fails only with ENOMEM and only when plausible, and a plain
 *     request succeeds exactly when it is <= largest_free (largest_free is
 *     "the largest request that would succeed now");
 *   - carve_check passes every CHECK_EVERY operations and at the end, and a
 *     walk lists exactly the shadow's blocks;
 *   - the guard zones around the buffer are intact (and, under ASan and
 *     valgrind, poisoned, so a stray access is caught where it happens);
 *   - bad frees and reallocs (double free, interior, misaligned, foreign
 *     pointers) return the documented status and change nothing.
 *
 * The handle configurations mix relocatable blocks in: carve_halloc, pins
 * (nested), carve_unpin, carve_hfree (refused while pinned), carve_hresize
 * (in place when it can, moving when it must and may), and carve_compact
 * with random budgets (0 and 1 byte up to all the way), with these checks
 * on top:
 *   - a handle names its own block for its whole life: after every
 *     compaction (and every VERIFY_EVERY operations) each handle pins to a
 *     16-aligned block inside the buffer that holds its contents and
 *     carve_hsize; no two blocks, raw or handle, overlap;
 *   - raw blocks and pinned handle blocks never move: a pin taken again
 *     returns the same address, the walk lists every raw block and every
 *     pinned block where it was, with its pin count;
 *   - carve_compact returns no more than its budget, and exactly what
 *     bytes_moved grew by; a full compaction leaves nothing to move;
 *   - live_handles and pinned_handles match the shadow; an allocation
 *     above largest_free succeeds only when the heap compacted, and one up
 *     to it always succeeds, with CARVE_SCRAMBLE too (it moves blocks after
 *     an allocation, never before);
 *   - stale handles, handles with a changed bit, and 0 are refused with the
 *     documented status and change nothing; an unpin too many is
 *     CARVE_ERR_INVALID, hresize to 0 too.
 *
 * Usage: model_test [ops-per-policy] [seed] [config]
 *   or the environment: CARVE_TEST_OPS, CARVE_TEST_SEED, CARVE_TEST_HEAP (bytes).
 * Runs every configuration in configs[] (all three policies on a heap of a
 * few MiB, then variants: poisoning with the lock, no runs, a small heap that
 * is full most of the time, handles, and the caches filled by reading the
 * stats seldom), or only the one given.  Prints the seed; a
 * failure prints the command that reproduces it.  Exit status 0 = pass.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "test_util.h"

#define DEFAULT_OPS  1000000ull
#define DEFAULT_SEED 0xC0FFEE1234ull
#define DEFAULT_HEAP (8u << 20)
#define GUARD        (4u * 1024u)
#define NSLOTS       2048u
#define CHECK_EVERY  4096u
#define VERIFY_EVERY 65536u
#define MAX_SIZE     ((size_t)1 << 20)
#define NSTALE       16u

/* What the test runs: every policy with the default heap, then variants. */
typedef struct config {
    const char *name;
    carve_policy policy;
    unsigned flags;
    unsigned long long divisor; /* runs ops / divisor operations */
    size_t heap;                /* 0: the default (CARVE_TEST_HEAP) */
    unsigned handle_pct;        /* share of allocations that are handles (0: raw only) */
    size_t max_handles;         /* carve_options.max_handles */
    unsigned compact_every;     /* a compaction every ~this many operations */
    unsigned lazy_stats;        /* read the stats every this many operations (0: after every
                                   one); raw blocks only (see check_stats) */
} config;

#define SMALL_HEAP (CARVE_RUNS_MIN_HEAP + CARVE_RUNS_MIN_HEAP / 4)
#define LAZY_HEAP  ((size_t)64 << 20)

static const config configs[] = {
    {"good_fit", CARVE_GOOD_FIT, 0, 1, 0, 0, 0, 0, 0},
    {"first_fit", CARVE_FIRST_FIT, 0, 1, 0, 0, 0, 0, 0},
    {"best_fit", CARVE_BEST_FIT, 0, 1, 0, 0, 0, 0, 0},
    /* Poisoning and the lock change code paths, not placement: fewer ops. */
    {"good_fit", CARVE_GOOD_FIT, CARVE_POISON | CARVE_THREADSAFE, 8, 0, 0, 0, 0, 0},
    /* Without runs, every small request takes a block of its own. */
    {"best_fit", CARVE_BEST_FIT, CARVE_NO_RUNS, 8, 0, 0, 0, 0, 0},
    /* A heap just large enough for runs, full most of the time. */
    {"good_fit", CARVE_GOOD_FIT, 0, 8, SMALL_HEAP, 0, 0, 0, 0},
    /* Handles mixed with raw blocks, each policy, the table made at init. */
    {"good_fit", CARVE_GOOD_FIT, 0, 4, 0, 40, 4096, 1000, 0},
    {"first_fit", CARVE_FIRST_FIT, 0, 4, 0, 40, 4096, 1000, 0},
    {"best_fit", CARVE_BEST_FIT, 0, 4, 0, 40, 4096, 1000, 0},
    /* The table made at the first halloc and grown; mostly handles. */
    {"good_fit", CARVE_GOOD_FIT, 0, 8, 0, 80, 0, 1000, 0},
    /* Moving poisoned blocks, no runs. */
    {"first_fit", CARVE_FIRST_FIT, CARVE_POISON | CARVE_NO_RUNS, 16, 0, 50, 4096, 500, 0},
    /* A small heap full most of the time: automatic compaction often. */
    {"best_fit", CARVE_BEST_FIT, 0, 8, SMALL_HEAP, 60, 2048, 300, 0},
    /* Thread caches (one thread): small blocks go through a cache; with
     * handles and compaction, which empty the caches. */
    {"good_fit", CARVE_GOOD_FIT, CARVE_THREADSAFE, 4, 0, 20, 4096, 1000, 0},
    /* Every allocation moves every unpinned handle block (costly: small). */
    {"good_fit", CARVE_GOOD_FIT, CARVE_SCRAMBLE, 64, SMALL_HEAP, 50, 2048, 300, 0},
    /* Statistics read every 1024 operations: reading them hands every
     * cached block back, so only this way do the freed-block cache (GOOD_FIT
     * heaps of 4 MiB or more, while more than 3/4 free: so a 64 MiB heap) and
     * the thread caches fill and serve many requests under the model's
     * checks (carve_check, which leaves the caches alone, every CHECK_EVERY
     * operations; failures judged by the stats just after them). */
    {"good_fit", CARVE_GOOD_FIT, 0, 4, LAZY_HEAP, 0, 0, 0, 1024},
    {"good_fit", CARVE_GOOD_FIT, CARVE_THREADSAFE, 8, 0, 0, 0, 0, 1024},
};
#define NCONFIGS (sizeof configs / sizeof configs[0])

/* A slot holds nothing (p NULL, hd 0), a raw block (p) or a handle (hd). */
typedef struct slot {
    unsigned char *p;
    size_t req;    /* what was asked */
    size_t usable; /* carve_usable_size (carve_hsize) at the time */
    size_t align;  /* alignment asked (16 for plain) */
    uint64_t seed; /* content pattern */
    carve_handle hd;
    unsigned pins;
    unsigned char *pinned_at; /* the block's address while pins > 0 */
} slot;

typedef struct model {
    const char *name;
    size_t config;              /* index in configs[] */
    unsigned long long divisor; /* its share of the operations */
    carve_policy policy;
    unsigned flags;
    uint64_t seed;
    unsigned long long op; /* current operation number */
    tu_region r;
    carve_heap *h;
    size_t heap_size;
    slot s[NSLOTS];
    size_t nlive; /* raw blocks */
    size_t sum_usable;
    /* Handles. */
    const config *cfg;
    size_t nh, npinned; /* live handles, pinned ones */
    carve_handle stale[NSTALE];
    size_t nstale;
    /* Blocks of carve's own the counters include (the handle table):
     * learned once the table exists, constant from then on. */
    int base_known;
    size_t base_blocks;
    uint64_t base_allocs;
    size_t used_at_init;
    carve_stats st;                /* stats after the last operation (lazy_stats: as last read) */
    int behind;                    /* lazy_stats: st is older than the last operation */
    unsigned failed_lo, failed_hi; /* how much failed_allocs may have grown since */
    size_t capacity;
    uint64_t *owned;   /* bitmap of 16-byte granules owned by live raw blocks */
    uint64_t *scratch; /* the same plus the handle blocks, rebuilt when checked */
    size_t ngranules;
    uintptr_t gbase; /* address of granule 0 */
    tu_rng rng;
    /* what happened, for the summary */
    unsigned long long n_alloc, n_calloc, n_aligned, n_realloc, n_free, n_enomem, n_bad, n_checks;
    unsigned long long n_halloc, n_hfree, n_pin, n_unpin, n_hresize, n_hmoved, n_compact,
        n_compact_full, n_auto, n_hbad;
    uint64_t moved_explicit;
} model;

static int is_empty(const model *m, size_t i)
{
    return m->s[i].p == NULL && m->s[i].hd == 0;
}

/* Whether any block could move: a live handle that is not pinned. */
static int movable(const model *m)
{
    return m->nh > m->npinned;
}

static void fail(model *m, const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "model_test FAILED: policy %s flags 0x%x seed 0x%" PRIx64 " op %llu: ", m->name,
            m->flags, m->seed, m->op);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr,
            "\n  stats: capacity %zu used %zu free %zu largest %zu live %zu free_blocks %zu\n",
            m->st.capacity, m->st.used_bytes, m->st.free_bytes, m->st.largest_free,
            m->st.live_blocks, m->st.free_blocks);
    if (configs[m->config].heap == 0)
        fprintf(stderr, "  reproduce: CARVE_TEST_HEAP=%zu model_test %llu 0x%" PRIx64 " %zu\n",
                m->heap_size, (m->op + 1) * m->divisor, m->seed, m->config);
    else
        fprintf(stderr, "  reproduce: model_test %llu 0x%" PRIx64 " %zu\n",
                (m->op + 1) * m->divisor, m->seed, m->config);
    exit(1);
}

/* ------------------------------------------------------------------------ */
/* The ownership bitmap                                                      */
/* ------------------------------------------------------------------------ */

static void granule_range(const model *m, const void *p, size_t n, size_t *g0, size_t *g1)
{
    uintptr_t a = (uintptr_t)p;
    *g0 = (size_t)((a - m->gbase) / 16u);
    *g1 = (size_t)((a + n - m->gbase + 15u) / 16u); /* exclusive */
}

/* Returns the first owned granule in [g0, g1), or g1 when all are clear. */
static size_t bits_first_set(const uint64_t *bits, size_t g0, size_t g1)
{
    size_t g = g0;
    while (g < g1) {
        if ((g & 63u) == 0 && g + 64 <= g1) {
            if (bits[g >> 6] != 0)
                for (size_t k = 0; k < 64; k++)
                    if ((bits[g >> 6] >> k) & 1u)
                        return g + k;
            g += 64;
            continue;
        }
        if ((bits[g >> 6] >> (g & 63u)) & 1u)
            return g;
        g++;
    }
    return g1;
}

static void bits_assign(uint64_t *bits, size_t g0, size_t g1, int on)
{
    size_t g = g0;
    while (g < g1) {
        if ((g & 63u) == 0 && g + 64 <= g1) {
            bits[g >> 6] = on ? ~(uint64_t)0 : 0;
            g += 64;
            continue;
        }
        if (on)
            bits[g >> 6] |= (uint64_t)1 << (g & 63u);
        else
            bits[g >> 6] &= ~((uint64_t)1 << (g & 63u));
        g++;
    }
}

static void own(model *m, size_t i)
{
    size_t g0, g1;
    granule_range(m, m->s[i].p, m->s[i].usable, &g0, &g1);
    size_t hit = bits_first_set(m->owned, g0, g1);
    if (hit != g1) {
        size_t other = NSLOTS;
        for (size_t k = 0; k < NSLOTS; k++) {
            size_t a0, a1;
            if (k == i || m->s[k].p == NULL)
                continue;
            granule_range(m, m->s[k].p, m->s[k].usable, &a0, &a1);
            if (hit >= a0 && hit < a1)
                other = k;
        }
        fail(m, "block %p+%zu overlaps live block %p+%zu", (void *)m->s[i].p, m->s[i].usable,
             other < NSLOTS ? (void *)m->s[other].p : NULL,
             other < NSLOTS ? m->s[other].usable : 0);
    }
    bits_assign(m->owned, g0, g1, 1);
}

static void disown(model *m, size_t i)
{
    size_t g0, g1;
    granule_range(m, m->s[i].p, m->s[i].usable, &g0, &g1);
    bits_assign(m->owned, g0, g1, 0);
}

/* ------------------------------------------------------------------------ */
/* Checks                                                                    */
/* ------------------------------------------------------------------------ */

/* Checks a block just handed out, takes it into the shadow and fills it. */
static void take(model *m, size_t i, unsigned char *p, size_t req, size_t align, uint64_t seed,
                 size_t keep)
{
    if (!tu_is_aligned(p, align < CARVE_ALIGNMENT ? CARVE_ALIGNMENT : align))
        fail(m, "pointer %p is not aligned to %zu", (void *)p, align);
    size_t us = carve_usable_size(m->h, p);
    if (us < req)
        fail(m, "usable_size %zu < request %zu", us, req);
    if (!tu_region_contains(&m->r, p, us))
        fail(m, "block %p+%zu is not inside the buffer [%p, %p)", (void *)p, us, (void *)m->r.buf,
             (void *)(m->r.buf + m->r.size));
    m->s[i].p = p;
    m->s[i].req = req;
    m->s[i].usable = us;
    m->s[i].align = align;
    m->s[i].seed = seed;
    own(m, i);
    m->nlive++;
    m->sum_usable += us;
    tu_fill_range(p, seed, keep, us);
}

static void verify_slot(model *m, size_t i, size_t n, const char *when)
{
    size_t bad = tu_verify(m->s[i].p, m->s[i].seed, n);
    if (bad != n)
        fail(m, "%s: block %p (request %zu, usable %zu) lost its contents at byte %zu", when,
             (void *)m->s[i].p, m->s[i].req, m->s[i].usable, bad);
    size_t us = carve_usable_size(m->h, m->s[i].p);
    if (us != m->s[i].usable)
        fail(m, "%s: usable_size of live block %p changed from %zu to %zu", when, (void *)m->s[i].p,
             m->s[i].usable, us);
}

static void drop(model *m, size_t i)
{
    disown(m, i);
    m->nlive--;
    m->sum_usable -= m->s[i].usable;
    m->s[i].p = NULL;
}

/* The stats read now and checked against the shadow, after an operation
 * that may have grown failed_allocs by failed_lo..failed_hi (added to what
 * the operations since the last reading may have). */
static void check_stats_now(model *m, unsigned failed_lo, unsigned failed_hi)
{
    failed_lo += m->failed_lo;
    failed_hi += m->failed_hi;
    m->failed_lo = m->failed_hi = 0;
    m->behind = 0;
    carve_stats prev = m->st;
    carve_stats st;
    carve_get_stats(m->h, &st);
    m->st = st;
    if (st.capacity != m->capacity)
        fail(m, "capacity changed from %zu to %zu", m->capacity, st.capacity);
    if (st.used_bytes + st.free_bytes != st.capacity)
        fail(m, "used %zu + free %zu != capacity %zu", st.used_bytes, st.free_bytes, st.capacity);
    size_t live = m->nlive + m->nh;
    if (!m->base_known && m->nh > 0) {
        /* The table exists now (made by the first halloc): whatever the
         * counters show of it stays the same from here on. */
        m->base_known = 1;
        m->base_blocks = st.live_blocks - live;
        m->base_allocs = st.allocs - st.frees - (uint64_t)live;
    }
    if (st.live_blocks != live + m->base_blocks)
        fail(m, "live_blocks %zu, shadow holds %zu raw + %zu handle blocks (+%zu of carve's own)",
             st.live_blocks, m->nlive, m->nh, m->base_blocks);
    if (st.allocs - st.frees != (uint64_t)live + m->base_allocs)
        fail(m, "allocs %" PRIu64 " - frees %" PRIu64 " != live %zu (+%" PRIu64 ")", st.allocs,
             st.frees, live, m->base_allocs);
    if (st.live_handles != m->nh)
        fail(m, "live_handles %zu, shadow holds %zu", st.live_handles, m->nh);
    if (st.pinned_handles != m->npinned)
        fail(m, "pinned_handles %zu, shadow has %zu pinned", st.pinned_handles, m->npinned);
    if (st.compactions < prev.compactions || st.bytes_moved < prev.bytes_moved)
        fail(m, "compactions or bytes_moved went backwards");
    if (st.allocs < prev.allocs || st.frees < prev.frees)
        fail(m, "a counter went backwards");
    if (st.failed_allocs < prev.failed_allocs + failed_lo ||
        st.failed_allocs > prev.failed_allocs + failed_hi)
        fail(m, "failed_allocs went from %" PRIu64 " to %" PRIu64 ", expected +%u..%u",
             prev.failed_allocs, st.failed_allocs, failed_lo, failed_hi);
    if (st.used_bytes < m->sum_usable)
        fail(m, "used_bytes %zu < the live blocks' usable bytes %zu", st.used_bytes, m->sum_usable);
    if (st.largest_free > st.free_bytes)
        fail(m, "largest_free %zu > free_bytes %zu", st.largest_free, st.free_bytes);
    if (st.peak_used_bytes < st.used_bytes || st.peak_used_bytes < prev.peak_used_bytes)
        fail(m, "peak_used_bytes %zu is not a running maximum", st.peak_used_bytes);
    if (m->cfg->handle_pct == 0 &&
        (st.live_handles != 0 || st.pinned_handles != 0 || st.compactions != 0))
        fail(m, "handle counters moved without handles");
}

static int lazy(const model *m)
{
    return m->cfg->lazy_stats != 0;
}

/* The stats after an operation: read now, or with lazy_stats only every
 * lazy_stats operations (reading them empties the caches, which are what
 * those configurations test).  Whatever needs the stats as they are calls
 * sync_stats or check_stats_now. */
static void check_stats(model *m, unsigned failed_lo, unsigned failed_hi)
{
    if (!lazy(m) || m->op % m->cfg->lazy_stats == 0) {
        check_stats_now(m, failed_lo, failed_hi);
        return;
    }
    m->failed_lo += failed_lo;
    m->failed_hi += failed_hi;
    m->behind = 1;
}

static void sync_stats(model *m)
{
    if (m->behind)
        check_stats_now(m, 0, 0);
}

static int cmp_ptr(const void *a, const void *b)
{
    uintptr_t x = (uintptr_t) * (void *const *)a, y = (uintptr_t) * (void *const *)b;
    return x < y ? -1 : x > y;
}

typedef struct walk_acc {
    void **payload;
    size_t n, cap;
    size_t total, used;
    size_t prev_end;
    int order_bad;
    /* handle blocks: how many, and the pinned ones (payload, pin count) */
    size_t nhandle;
    carve_block *pinned;
    size_t npinned, pcap;
} walk_acc;

static void *grow(void *a, size_t *cap, size_t n, size_t each)
{
    if (n < *cap)
        return a;
    *cap = *cap ? 2 * *cap : 1024;
    a = realloc(a, *cap * each);
    if (a == NULL)
        abort();
    return a;
}

static int walk_collect(const carve_block *b, void *ctx)
{
    walk_acc *w = (walk_acc *)ctx;
    if (w->total > 0 && b->offset != w->prev_end)
        w->order_bad = 1;
    w->prev_end = b->offset + b->size;
    w->total += b->size;
    if (b->kind == CARVE_BLOCK_RAW) {
        w->payload = (void **)grow(w->payload, &w->cap, w->n, sizeof *w->payload);
        w->payload[w->n++] = b->payload;
    } else if (b->kind == CARVE_BLOCK_HANDLE) {
        w->nhandle++;
        if (b->pinned > 0) {
            w->pinned = (carve_block *)grow(w->pinned, &w->pcap, w->npinned, sizeof *w->pinned);
            w->pinned[w->npinned++] = *b;
        }
    } else if (b->pinned != 0) {
        w->order_bad = 2;
    }
    return 0;
}

static void verify_handles(model *m, int contents, const char *when);

/* carve_check, guards, and a walk that lists exactly the shadow's blocks. */
static void full_check(model *m)
{
    m->n_checks++;
    int c = carve_check(m->h);
    if (c != CARVE_OK)
        fail(m, "carve_check = %d (%s)", c, carve_strerror(c));
    if (!tu_region_guards_ok(&m->r))
        fail(m, "a guard zone around the buffer was written");
    walk_acc w;
    memset(&w, 0, sizeof w);
    c = carve_walk(m->h, walk_collect, &w);
    if (c != CARVE_OK)
        fail(m, "carve_walk = %d", c);
    if (w.order_bad == 1)
        fail(m, "carve_walk: blocks not contiguous in address order");
    if (w.order_bad == 2)
        fail(m, "carve_walk: a block that is not a handle block has a pin count");
    if (w.nhandle != m->nh)
        fail(m, "carve_walk found %zu handle blocks, shadow holds %zu", w.nhandle, m->nh);
    if (w.npinned != m->npinned)
        fail(m, "carve_walk found %zu pinned blocks, shadow has %zu", w.npinned, m->npinned);
    for (size_t i = 0; i < NSLOTS; i++) {
        if (m->s[i].hd == 0 || m->s[i].pins == 0)
            continue;
        size_t k = 0;
        while (k < w.npinned && w.pinned[k].payload != m->s[i].pinned_at)
            k++;
        if (k == w.npinned)
            fail(m, "carve_walk does not list the block pinned at %p", (void *)m->s[i].pinned_at);
        if (w.pinned[k].pinned != m->s[i].pins || w.pinned[k].usable != m->s[i].usable)
            fail(m,
                 "carve_walk: the block pinned at %p has %u pins and %zu usable bytes, shadow "
                 "%u and %zu",
                 (void *)m->s[i].pinned_at, w.pinned[k].pinned, w.pinned[k].usable, m->s[i].pins,
                 m->s[i].usable);
    }
    free(w.pinned);
    if (w.total != m->capacity)
        fail(m, "carve_walk: block sizes sum to %zu, capacity %zu", w.total, m->capacity);
    if (w.n != m->nlive)
        fail(m, "carve_walk found %zu live blocks, shadow holds %zu", w.n, m->nlive);
    void **mine = (void **)malloc((m->nlive + 1) * sizeof *mine);
    if (mine == NULL)
        abort();
    size_t k = 0;
    for (size_t i = 0; i < NSLOTS; i++)
        if (m->s[i].p != NULL)
            mine[k++] = m->s[i].p;
    if (k > 1) /* qsort's base must not be NULL, even for 0 elements */
        qsort(mine, k, sizeof *mine, cmp_ptr);
    if (w.n > 1)
        qsort(w.payload, w.n, sizeof *w.payload, cmp_ptr);
    for (size_t i = 0; i < k; i++)
        if (mine[i] != w.payload[i])
            fail(m, "carve_walk's live blocks differ from the shadow's (first at %p vs %p)",
                 w.payload[i], mine[i]);
    free(mine);
    free(w.payload);
    verify_handles(m, 0, "full check");
}

/* Pins handle i and checks where it is: 16-aligned, inside the buffer,
 * where it was pinned if it is pinned, carve_hsize as the shadow says.
 * The caller unpins. */
static unsigned char *pin_slot(model *m, size_t i, const char *when)
{
    slot *s = &m->s[i];
    errno = 0;
    unsigned char *p = (unsigned char *)carve_pin(m->h, s->hd);
    if (p == NULL)
        fail(m, "%s: carve_pin(0x%" PRIx64 ") of a live handle failed, errno %d", when, s->hd,
             errno);
    if (!tu_is_aligned(p, CARVE_ALIGNMENT))
        fail(m, "%s: handle 0x%" PRIx64 " pinned at %p, not 16-aligned", when, s->hd, (void *)p);
    if (!tu_region_contains(&m->r, p, s->usable))
        fail(m, "%s: handle block %p+%zu is not inside the buffer", when, (void *)p, s->usable);
    if (s->pins > 0 && p != s->pinned_at)
        fail(m, "%s: handle 0x%" PRIx64 " pinned %u times moved from %p to %p", when, s->hd,
             s->pins, (void *)s->pinned_at, (void *)p);
    size_t us = carve_hsize(m->h, s->hd);
    if (us != s->usable)
        fail(m, "%s: hsize of handle 0x%" PRIx64 " changed from %zu to %zu", when, s->hd, s->usable,
             us);
    return p;
}

static void unpin_slot(model *m, size_t i)
{
    int st = carve_unpin(m->h, m->s[i].hd);
    if (st != CARVE_OK)
        fail(m, "carve_unpin(0x%" PRIx64 ") = %d (%s)", m->s[i].hd, st, carve_strerror(st));
}

static void verify_handle(model *m, size_t i, size_t n, const char *when)
{
    unsigned char *p = pin_slot(m, i, when);
    size_t bad = tu_verify(p, m->s[i].seed, n);
    if (bad != n)
        fail(m,
             "%s: handle 0x%" PRIx64 " (request %zu, usable %zu, at %p) lost its contents at "
             "byte %zu",
             when, m->s[i].hd, m->s[i].req, m->s[i].usable, (void *)p, bad);
    unpin_slot(m, i);
}

/* Every handle block where a pin puts it, no two blocks (raw or handle)
 * overlapping; with contents, every handle's pattern too. */
static void verify_handles(model *m, int contents, const char *when)
{
    if (m->nh == 0)
        return;
    size_t words = m->ngranules / 64 + 2;
    memcpy(m->scratch, m->owned, words * sizeof *m->owned);
    for (size_t i = 0; i < NSLOTS; i++) {
        if (m->s[i].hd == 0)
            continue;
        unsigned char *p = pin_slot(m, i, when);
        size_t g0, g1;
        granule_range(m, p, m->s[i].usable, &g0, &g1);
        if (bits_first_set(m->scratch, g0, g1) != g1)
            fail(m, "%s: handle block %p+%zu overlaps another live block", when, (void *)p,
                 m->s[i].usable);
        bits_assign(m->scratch, g0, g1, 1);
        if (contents) {
            size_t bad = tu_verify(p, m->s[i].seed, m->s[i].usable);
            if (bad != m->s[i].usable)
                fail(m,
                     "%s: handle 0x%" PRIx64 " (usable %zu, at %p) lost its contents at byte "
                     "%zu",
                     when, m->s[i].hd, m->s[i].usable, (void *)p, bad);
        }
        unpin_slot(m, i);
    }
}

static void verify_all(model *m)
{
    for (size_t i = 0; i < NSLOTS; i++)
        if (m->s[i].p != NULL)
            verify_slot(m, i, m->s[i].usable, "periodic verify");
    verify_handles(m, 1, "periodic verify");
}

/* ------------------------------------------------------------------------ */
/* Operations                                                                */
/* ------------------------------------------------------------------------ */

/* 1 byte .. 1 MiB, skewed small: 90% below 4 KiB, 9% 4..64 KiB, 1% above. */
static size_t pick_size(model *m)
{
    uint64_t r = tu_rng_below(&m->rng, 1000);
    if (r < 900)
        return tu_rng_log_uniform(&m->rng, 0, 12);
    if (r < 990)
        return tu_rng_log_uniform(&m->rng, 12, 16);
    if (r < 999)
        return tu_rng_log_uniform(&m->rng, 16, 20);
    return MAX_SIZE;
}

/* A failed allocation: must be ENOMEM and plausible given largest_free
 * before the call (`need` is the smallest largest_free that must succeed). */
static void expect_enomem(model *m, int err, size_t need, const char *what, size_t req)
{
    if (err != ENOMEM)
        fail(m, "%s(%zu) failed with errno %d, expected ENOMEM", what, req, err);
    if (need <= m->st.largest_free)
        fail(m, "%s(%zu) failed although largest_free was %zu", what, req, m->st.largest_free);
    m->n_enomem++;
}

static void expect_compacted(model *m, const carve_stats *before, int could_move, const char *what,
                             size_t req);

static void op_alloc(model *m, size_t i, int kind)
{
    size_t req = pick_size(m);
    size_t align = CARVE_ALIGNMENT;
    size_t largest = m->st.largest_free;
    carve_stats before = m->st;
    int could_move = movable(m);
    unsigned char *p;
    const char *what;
    size_t zero = 0;
    errno = 0;
    switch (kind) {
    case 0:
        what = "alloc";
        p = carve_alloc(m->h, req);
        m->n_alloc++;
        break;
    case 1: {
        what = "calloc";
        size_t count = tu_rng_range(&m->rng, 1, req < 16 ? req : 16);
        size_t each = req / count;
        req = count * each;
        zero = req;
        p = carve_calloc(m->h, count, each);
        m->n_calloc++;
        break;
    }
    case 2:
        what = "realloc(NULL)";
        p = carve_realloc(m->h, NULL, req);
        m->n_realloc++;
        break;
    default:
        what = "aligned_alloc";
        align = (size_t)1 << tu_rng_range(&m->rng, 4, 12);
        p = carve_aligned_alloc(m->h, align, req);
        m->n_aligned++;
        break;
    }
    int err = errno;
    if (p == NULL) {
        /* With lazy_stats, judged by the stats read just after the failure:
         * a failing request has handed every cached block back first. */
        if (lazy(m))
            check_stats_now(m, 1, 1);
        /* A plain request fails exactly when it exceeds largest_free; an
         * aligned one may need up to the alignment plus slack more.  A
         * largest_free up to CARVE_SMALL_MAX may be a slot in a run, which
         * cannot serve a larger alignment: only a larger one says a block. */
        size_t need = align > CARVE_ALIGNMENT ? req + align + 2 * CARVE_MIN_BLOCK : req;
        if (need < req || (align > CARVE_ALIGNMENT && m->st.largest_free <= CARVE_SMALL_MAX))
            need = SIZE_MAX; /* always plausible */
        if (need <= m->st.largest_free) {
            /* Tell the reader whether a plain request of the same size fits. */
            void *plain = carve_alloc(m->h, req);
            fail(m,
                 "%s(%zu) with alignment %zu failed (errno %d) although largest_free was %zu; "
                 "alloc(%zu) %s",
                 what, req, align, err, m->st.largest_free, req, plain ? "succeeds" : "fails too");
        }
        expect_enomem(m, err, need, what, req);
        if (!lazy(m))
            check_stats(m, 1, 1);
        return;
    }
    if (!lazy(m) && align == CARVE_ALIGNMENT && req > largest && m->cfg->handle_pct == 0)
        fail(m, "%s(%zu) succeeded although largest_free was %zu", what, req, largest);
    if (zero != 0 && !tu_all_zero(p, zero))
        fail(m, "calloc(%zu) memory is not zeroed", zero);
    take(m, i, p, req, align, tu_rng_next(&m->rng), 0);
    check_stats(m, 0, 0);
    /* With handles, a request above largest_free may succeed: the heap
     * compacted itself. */
    if (!lazy(m) && align == CARVE_ALIGNMENT && req > largest)
        expect_compacted(m, &before, could_move, what, req);
}

static void op_free(model *m, size_t i)
{
    verify_slot(m, i, m->s[i].usable, "before free");
    unsigned char *p = m->s[i].p;
    int st = carve_free(m->h, p);
    if (st != CARVE_OK)
        fail(m, "free(%p) = %d (%s)", (void *)p, st, carve_strerror(st));
    drop(m, i);
    m->n_free++;
    check_stats(m, 0, 0);
    /* Now and then, free it again at once: DOUBLE_FREE (or NOT_OWNED when it
     * has merged), nothing changes; realloc of it is EINVAL.  Half the time
     * realloc(p, 0), a free too, comes first, while the block may still sit
     * in a cache. */
    if (tu_rng_below(&m->rng, 64) == 0) {
        carve_stats before = m->st;
        if (tu_rng_below(&m->rng, 2) == 0) {
            errno = 0;
            void *z = carve_realloc(m->h, p, 0);
            if (z != NULL || errno != EINVAL)
                fail(m, "realloc(freed %p, 0) = %p errno %d, expected NULL/EINVAL", (void *)p, z,
                     errno);
        }
        st = carve_free(m->h, p);
        if (st != CARVE_ERR_DOUBLE_FREE && st != CARVE_ERR_NOT_OWNED)
            fail(m, "double free of %p = %d (%s)", (void *)p, st, carve_strerror(st));
        errno = 0;
        void *q = carve_realloc(m->h, p, 10);
        if (q != NULL || errno != EINVAL)
            fail(m, "realloc of freed %p = %p errno %d, expected NULL/EINVAL", (void *)p, q, errno);
        if (carve_usable_size(m->h, p) != 0)
            fail(m, "usable_size of freed %p is not 0", (void *)p);
        check_stats(m, 0, 1);
        /* With lazy_stats the block may sit in a cache (the case to reach),
         * so the stats are not read in between: the next reading's checks
         * against the shadow catch a double free that counted. */
        const char *d = lazy(m) ? NULL : tu_stats_diff_but_failed(&before, &m->st);
        if (d != NULL)
            fail(m, "a double free changed %s", d);
        m->n_bad++;
    }
}

static void op_realloc(model *m, size_t i, int to_zero)
{
    unsigned char *old = m->s[i].p;
    size_t old_req = m->s[i].req, old_usable = m->s[i].usable;
    uint64_t seed = m->s[i].seed;
    m->n_realloc++;
    if (to_zero) {
        verify_slot(m, i, old_usable, "before realloc(p, 0)");
        errno = EDOM;
        void *q = carve_realloc(m->h, old, 0);
        if (q != NULL)
            fail(m, "realloc(p, 0) returned %p, expected NULL", q);
        if (errno != EDOM)
            fail(m, "realloc(p, 0) changed errno to %d", errno);
        drop(m, i);
        check_stats(m, 0, 0);
        return;
    }
    size_t req = pick_size(m);
    /* Often a size near the old one: exercises in-place shrink and growth. */
    if (tu_rng_below(&m->rng, 3) == 0) {
        size_t delta = tu_rng_range(&m->rng, 0, 64);
        req = tu_rng_below(&m->rng, 2) ? old_req + delta : (old_req > delta ? old_req - delta : 1);
    }
    verify_slot(m, i, old_usable, "before realloc");
    errno = 0;
    unsigned char *p = carve_realloc(m->h, old, req);
    int err = errno;
    if (p == NULL) {
        if (lazy(m)) /* judged by the stats just after, as in op_alloc */
            check_stats_now(m, 0, 1);
        expect_enomem(m, err, req, "realloc", req);
        verify_slot(m, i, old_usable, "after a failed realloc");
        if (!lazy(m))
            check_stats(m, 0, 1);
        return;
    }
    size_t keep = old_req < req ? old_req : req;
    size_t bad = tu_verify(p, seed, keep);
    if (bad != keep)
        fail(m, "realloc(%p, %zu -> %zu) lost byte %zu of the kept prefix (new %p)", (void *)old,
             old_req, req, bad, (void *)p);
    /* "The block shrinks in place": a request the block already holds never
     * moves it. */
    if (p != old && req <= old_usable)
        fail(m, "realloc(%p, %zu) moved to %p although the block's usable size is %zu", (void *)old,
             req, (void *)p, old_usable);
    drop(m, i);
    take(m, i, p, req, CARVE_ALIGNMENT, seed, keep);
    check_stats(m, 0, 0);
}

/* Bad pointers: interior, misaligned, outside.  NOT_OWNED / EINVAL, nothing
 * changes, the heap still checks. */
static void op_bad_pointers(model *m)
{
    size_t i = (size_t)tu_rng_below(&m->rng, NSLOTS);
    unsigned char *cands[6];
    size_t n = 0;
    int local = 0;
    cands[n++] = m->r.buf - 1 - tu_rng_below(&m->rng, GUARD / 2); /* in the front guard */
    cands[n++] = m->r.buf + m->r.size + tu_rng_below(&m->rng, GUARD / 2);
    cands[n++] = (unsigned char *)&local;
    if (m->s[i].p != NULL) {
        unsigned char *p = m->s[i].p;
        cands[n++] = p + tu_rng_range(&m->rng, 1, 15); /* misaligned */
        if (m->s[i].usable >= 48)
            cands[n++] = p + 16 * tu_rng_range(&m->rng, 1, (m->s[i].usable - 8) / 16);
    }
    sync_stats(m);
    carve_stats before = m->st;
    for (size_t k = 0; k < n; k++) {
        int st = carve_free(m->h, cands[k]);
        if (st != CARVE_ERR_NOT_OWNED)
            fail(m, "free(bad pointer %p, kind %zu) = %d (%s), expected NOT_OWNED",
                 (void *)cands[k], k, st, carve_strerror(st));
        errno = 0;
        void *q = carve_realloc(m->h, cands[k], 100);
        if (q != NULL || errno != EINVAL)
            fail(m, "realloc(bad pointer %p) = %p errno %d", (void *)cands[k], q, errno);
        if (carve_usable_size(m->h, cands[k]) != 0)
            fail(m, "usable_size(bad pointer %p) != 0", (void *)cands[k]);
    }
    check_stats_now(m, 0, (unsigned)n);
    const char *d = tu_stats_diff_but_failed(&before, &m->st);
    if (d != NULL)
        fail(m, "a bad free/realloc changed %s", d);
    m->n_bad += n;
    int c = carve_check(m->h);
    if (c != CARVE_OK)
        fail(m, "carve_check after bad pointers = %d", c);
}

/* largest_free is exact: that much succeeds, one more byte does not. */
static void op_probe_largest(model *m)
{
    sync_stats(m);
    size_t lf = m->st.largest_free;
    carve_stats before = m->st;
    int could_move = movable(m);
    errno = 0;
    void *no = carve_alloc(m->h, lf + 1);
    if (no != NULL) {
        /* Only a heap that compacted itself may do that. */
        if (m->cfg->handle_pct == 0)
            fail(m, "alloc(largest_free + 1 = %zu) succeeded", lf + 1);
        if (!tu_region_contains(&m->r, no, lf + 1))
            fail(m, "the block of largest_free + 1 bytes is outside the buffer");
        carve_get_stats(m->h, &m->st);
        expect_compacted(m, &before, could_move, "alloc(largest_free + 1)", lf + 1);
        if (carve_free(m->h, no) != CARVE_OK)
            fail(m, "free(largest + 1)");
        carve_get_stats(m->h, &m->st);
        verify_handles(m, 0, "after alloc(largest_free + 1)");
        return;
    }
    if (errno != ENOMEM)
        fail(m, "alloc(largest_free + 1) errno %d", errno);
    check_stats_now(m, 1, 1);
    lf = m->st.largest_free; /* a failed request may have compacted */
    if (lf == 0)
        return;
    unsigned char *p = carve_alloc(m->h, lf);
    if (p == NULL)
        fail(m, "alloc(largest_free = %zu) failed, errno %d", lf, errno);
    /* Check it against the live blocks, touch both ends, give it back. */
    size_t i = NSLOTS;
    for (size_t k = 0; k < NSLOTS; k++)
        if (is_empty(m, k)) {
            i = k;
            break;
        }
    if (i == NSLOTS) {
        /* No slot to track it in: still check bounds, then free. */
        if (!tu_region_contains(&m->r, p, lf))
            fail(m, "largest block outside the buffer");
        carve_free(m->h, p);
        carve_get_stats(m->h, &m->st);
        return;
    }
    take(m, i, p, lf, CARVE_ALIGNMENT, 7, lf); /* keep = lf: no fill */
    p[0] = 1;
    p[lf - 1] = 2;
    check_stats(m, 0, 0);
    int st = carve_free(m->h, p);
    if (st != CARVE_OK)
        fail(m, "free(largest) = %d", st);
    drop(m, i);
    check_stats(m, 0, 0);
}

/* ------------------------------------------------------------------------ */
/* Handle operations                                                         */
/* ------------------------------------------------------------------------ */

/* An allocation that succeeded although largest_free before it said it
 * could not: only a compaction explains that (a scrambling heap moves its
 * blocks after the allocation, not before). */
static void expect_compacted(model *m, const carve_stats *before, int could_move, const char *what,
                             size_t req)
{
    if (!could_move)
        fail(m, "%s(%zu) succeeded above largest_free %zu with no block that could move", what, req,
             before->largest_free);
    if (m->st.compactions == before->compactions)
        fail(m, "%s(%zu) succeeded above largest_free %zu without a compaction", what, req,
             before->largest_free);
    m->n_auto++;
}

/* The request a handle of req bytes makes of the free index, as a raw
 * request: a handle costs the difference of the overheads more. */
static size_t as_raw(size_t req)
{
    return req + (CARVE_HANDLE_OVERHEAD - CARVE_BLOCK_OVERHEAD);
}

static void op_halloc(model *m, size_t i)
{
    size_t req = pick_size(m);
    carve_stats before = m->st;
    int could_move = movable(m);
    m->n_halloc++;
    errno = 0;
    carve_handle hd = carve_halloc(m->h, req);
    int err = errno;
    if (hd == 0) {
        if (err != ENOMEM)
            fail(m, "halloc(%zu) failed with errno %d, expected ENOMEM", req, err);
        /* Whatever fits in largest_free fits; largest_free up to
         * CARVE_SMALL_MAX may be a slot in a run, which handles never use.
         * A growing table may also fail to grow. */
        if (before.largest_free > CARVE_SMALL_MAX && as_raw(req) <= before.largest_free &&
            m->cfg->max_handles != 0)
            fail(m, "halloc(%zu) failed although largest_free was %zu", req, before.largest_free);
        m->n_enomem++;
        check_stats(m, 1, 1);
        return;
    }
    for (size_t k = 0; k < NSLOTS; k++)
        if (m->s[k].hd == hd)
            fail(m, "halloc returned 0x%" PRIx64 ", the handle of a live block", hd);
    slot *s = &m->s[i];
    s->hd = hd;
    s->req = req;
    s->usable = carve_hsize(m->h, hd);
    s->align = CARVE_ALIGNMENT;
    s->seed = tu_rng_next(&m->rng);
    s->pins = 0;
    s->pinned_at = NULL;
    if (s->usable < req)
        fail(m, "hsize %zu < request %zu", s->usable, req);
    unsigned char *p = pin_slot(m, i, "after halloc");
    size_t g0, g1;
    granule_range(m, p, s->usable, &g0, &g1);
    if (bits_first_set(m->owned, g0, g1) != g1)
        fail(m, "new handle block %p+%zu overlaps a live raw block", (void *)p, s->usable);
    tu_fill(p, s->seed, s->usable);
    unpin_slot(m, i);
    m->nh++;
    m->sum_usable += s->usable;
    check_stats(m, 0, 0);
    if (as_raw(req) > before.largest_free)
        expect_compacted(m, &before, could_move, "halloc", req);
}

static void remember_stale(model *m, carve_handle hd)
{
    m->stale[m->nstale % NSTALE] = hd;
    m->nstale++;
}

static void op_pin(model *m, size_t i)
{
    slot *s = &m->s[i];
    unsigned char *p = pin_slot(m, i, "pin");
    if (s->pins++ == 0) {
        s->pinned_at = p;
        m->npinned++;
    }
    m->n_pin++;
    if (tu_rng_below(&m->rng, 4) == 0) {
        size_t bad = tu_verify(p, s->seed, s->usable);
        if (bad != s->usable)
            fail(m, "pinned handle 0x%" PRIx64 " lost its contents at byte %zu", s->hd, bad);
    }
    check_stats(m, 0, 0);
}

static void op_unpin(model *m, size_t i)
{
    slot *s = &m->s[i];
    m->n_unpin++;
    if (s->pins == 0) {
        carve_stats before = m->st;
        int st = carve_unpin(m->h, s->hd);
        if (st != CARVE_ERR_INVALID)
            fail(m, "unpin of an unpinned handle = %d (%s), expected INVALID", st,
                 carve_strerror(st));
        check_stats(m, 0, 0);
        const char *d = tu_stats_diff(&before, &m->st, 0);
        if (d != NULL)
            fail(m, "an unpin too many changed %s", d);
        return;
    }
    unpin_slot(m, i);
    if (--s->pins == 0) {
        s->pinned_at = NULL;
        m->npinned--;
    }
    check_stats(m, 0, 0);
}

static void op_hfree(model *m, size_t i)
{
    slot *s = &m->s[i];
    verify_handle(m, i, s->usable, "before hfree");
    if (s->pins > 0) {
        /* Pinned: refused, nothing changes. */
        carve_stats before = m->st;
        int st = carve_hfree(m->h, s->hd);
        if (st != CARVE_ERR_PINNED)
            fail(m, "hfree of a handle pinned %u times = %d (%s), expected PINNED", s->pins, st,
                 carve_strerror(st));
        check_stats(m, 0, 0);
        const char *d = tu_stats_diff(&before, &m->st, 0);
        if (d != NULL)
            fail(m, "a refused hfree changed %s", d);
        m->n_hbad++;
        return;
    }
    carve_handle hd = s->hd;
    int st = carve_hfree(m->h, hd);
    if (st != CARVE_OK)
        fail(m, "hfree(0x%" PRIx64 ") = %d (%s)", hd, st, carve_strerror(st));
    m->nh--;
    m->sum_usable -= s->usable;
    s->hd = 0;
    remember_stale(m, hd);
    m->n_hfree++;
    check_stats(m, 0, 0);
}

static void op_hresize(model *m, size_t i)
{
    slot *s = &m->s[i];
    size_t old_req = s->req, old_usable = s->usable;
    m->n_hresize++;
    if (tu_rng_below(&m->rng, 32) == 0) {
        carve_stats before = m->st;
        int st = carve_hresize(m->h, s->hd, 0);
        if (st != CARVE_ERR_INVALID)
            fail(m, "hresize(0) = %d (%s), expected INVALID", st, carve_strerror(st));
        check_stats(m, 0, 1);
        const char *d = tu_stats_diff_but_failed(&before, &m->st);
        if (d != NULL)
            fail(m, "hresize(0) changed %s", d);
        verify_handle(m, i, old_usable, "after hresize(0)");
        m->n_hbad++;
        return;
    }
    size_t req = pick_size(m);
    if (tu_rng_below(&m->rng, 3) == 0) {
        size_t delta = tu_rng_range(&m->rng, 0, 64);
        req = tu_rng_below(&m->rng, 2) ? old_req + delta : (old_req > delta ? old_req - delta : 1);
    }
    unsigned char *old = pin_slot(m, i, "before hresize");
    size_t bad = tu_verify(old, s->seed, old_usable);
    if (bad != old_usable)
        fail(m, "before hresize: handle 0x%" PRIx64 " lost its contents at byte %zu", s->hd, bad);
    unpin_slot(m, i);
    carve_stats before = m->st;
    int could_move = movable(m);
    int st = carve_hresize(m->h, s->hd, req);
    if (st == CARVE_OK) {
        /* The shadow's usable size is stale until we read it. */
        s->usable = carve_hsize(m->h, s->hd);
        if (s->usable < req)
            fail(m, "hresize(%zu): hsize %zu", req, s->usable);
        m->sum_usable = m->sum_usable - old_usable + s->usable;
        unsigned char *p = pin_slot(m, i, "after hresize");
        size_t keep = old_req < req ? old_req : req;
        bad = tu_verify(p, s->seed, keep);
        if (bad != keep)
            fail(m, "hresize(%zu -> %zu) lost byte %zu of the kept prefix (%p -> %p)", old_req, req,
                 bad, (void *)old, (void *)p);
        if (p != old && req <= old_usable)
            fail(m, "hresize(%zu) moved the block from %p to %p although it held %zu bytes", req,
                 (void *)old, (void *)p, old_usable);
        size_t g0, g1;
        granule_range(m, p, s->usable, &g0, &g1);
        if (bits_first_set(m->owned, g0, g1) != g1)
            fail(m, "resized handle block %p+%zu overlaps a live raw block", (void *)p, s->usable);
        tu_fill_range(p, s->seed, keep, s->usable);
        unpin_slot(m, i);
        s->req = req;
        m->n_hmoved += p != old;
        check_stats(m, 0, 0);
        (void)could_move;
        return;
    }
    if (st == CARVE_ERR_PINNED) {
        if (s->pins == 0)
            fail(m, "hresize(%zu) of an unpinned handle = PINNED", req);
        if (req <= old_usable)
            fail(m, "hresize(%zu) of a pinned block of %zu bytes = PINNED: shrinking is in place",
                 req, old_usable);
    } else if (st == CARVE_ERR_NOMEM) {
        if (req <= old_usable)
            fail(m, "hresize(%zu) of a block of %zu bytes = NOMEM: shrinking is in place", req,
                 old_usable);
        if (s->pins == 0 && before.largest_free > CARVE_SMALL_MAX &&
            as_raw(req) <= before.largest_free)
            fail(m, "hresize(%zu) = NOMEM although largest_free was %zu", req, before.largest_free);
        m->n_enomem++;
    } else {
        fail(m, "hresize(%zu) = %d (%s)", req, st, carve_strerror(st));
    }
    /* Failed: nothing changed (an unpinned block may have been moved by a
     * compaction, with its contents). */
    check_stats(m, 0, 1);
    verify_handle(m, i, old_usable, "after a failed hresize");
    if (s->pins > 0 && s->pinned_at != old)
        fail(m, "a failed hresize moved a pinned block");
}

/* A handle op on live handle slot i. */
static void op_handle(model *m, size_t i, uint64_t r)
{
    if (r < 25)
        op_hfree(m, i);
    else if (r < 40)
        m->s[i].pins < 3 ? op_pin(m, i) : op_unpin(m, i);
    else if (r < 65)
        op_unpin(m, i);
    else
        op_hresize(m, i);
}

/* One compaction with this budget: never more than the budget, counted
 * exactly, raw and pinned blocks where they were, every handle still
 * naming its own contents, the heap consistent; a full one leaves nothing
 * for a second full one. */
static void compact_once(model *m, size_t budget)
{
    carve_stats before = m->st;
    size_t moved = carve_compact(m->h, budget);
    m->n_compact++;
    check_stats(m, 0, 0);
    if (moved > budget)
        fail(m, "compact(%zu) moved %zu bytes", budget, moved);
    if (m->st.bytes_moved - before.bytes_moved != moved)
        fail(m, "compact returned %zu, bytes_moved grew by %" PRIu64, moved,
             m->st.bytes_moved - before.bytes_moved);
    if (moved > 0 && m->st.compactions != before.compactions + 1)
        fail(m, "a compaction that moved %zu bytes counted %" PRIu64 " compactions", moved,
             m->st.compactions - before.compactions);
    if (m->st.compactions > before.compactions + 1)
        fail(m, "one compact call counted %" PRIu64 " compactions",
             m->st.compactions - before.compactions);
    if (moved > 0 && !movable(m) && !m->base_known) /* the table moves too */
        fail(m, "compact moved %zu bytes with no unpinned handle block", moved);
    if (m->st.largest_free < before.largest_free)
        fail(m, "compact(%zu) shrank largest_free from %zu to %zu", budget, before.largest_free,
             m->st.largest_free);
    if (m->st.used_bytes != before.used_bytes || m->st.free_bytes != before.free_bytes)
        fail(m, "compact changed used/free bytes");
    m->moved_explicit += moved;
    if (budget == SIZE_MAX) {
        m->n_compact_full++;
        carve_stats full = m->st;
        size_t again = carve_compact(m->h, SIZE_MAX);
        check_stats(m, 0, 0);
        if (again != 0)
            fail(m, "a second full compaction moved %zu bytes", again);
        if (m->st.largest_free != full.largest_free || m->st.free_blocks != full.free_blocks)
            fail(m, "a second full compaction changed the free space");
    }
    full_check(m); /* raw blocks and pinned blocks where they were */
    verify_all(m); /* every block's contents, every handle's block */
}

/* The unpinned handle at the lowest address (NSLOTS when none). */
static size_t lowest_unpinned(model *m)
{
    size_t best = NSLOTS;
    unsigned char *at = NULL;
    for (size_t i = 0; i < NSLOTS; i++) {
        if (m->s[i].hd == 0 || m->s[i].pins != 0)
            continue;
        unsigned char *p = pin_slot(m, i, "lowest_unpinned");
        unpin_slot(m, i);
        if (at == NULL || p < at) {
            at = p;
            best = i;
        }
    }
    return best;
}

/* A compaction with a random budget (0 and 1 byte up to all the way).
 * Sometimes what a real-time user does between frames instead: a slice
 * that stops partway, frees (the lowest handle block, before where it
 * stopped, and a few anywhere), then a compaction all the way, which must
 * leave nothing for another. */
static void op_compact(model *m)
{
    uint64_t r = tu_rng_below(&m->rng, 8);
    if (r == 7) {
        compact_once(m, tu_rng_log_uniform(&m->rng, 10, 17));
        size_t low = lowest_unpinned(m);
        if (low != NSLOTS)
            op_hfree(m, low);
        for (int k = 0; k < 3; k++) {
            size_t i = (size_t)tu_rng_below(&m->rng, NSLOTS);
            if (m->s[i].hd != 0 && m->s[i].pins == 0)
                op_hfree(m, i);
        }
        compact_once(m, SIZE_MAX);
        return;
    }
    size_t budget = r == 0   ? SIZE_MAX
                    : r == 1 ? 0
                    : r == 2 ? 1
                    : r == 3 ? 64
                             : tu_rng_log_uniform(&m->rng, 5, 22);
    compact_once(m, budget);
}

/* Handles that name nothing: refused, nothing changes. */
static void op_bad_handles(model *m)
{
    carve_handle cands[NSTALE + 8];
    size_t n = 0;
    cands[n++] = 0;
    cands[n++] = UINT64_MAX;
    for (size_t k = 0; k < NSTALE && k < m->nstale; k++)
        cands[n++] = m->stale[k];
    size_t i = (size_t)tu_rng_below(&m->rng, NSLOTS);
    if (m->s[i].hd != 0)
        for (int k = 0; k < 4; k++)
            cands[n++] = m->s[i].hd ^ ((carve_handle)1 << tu_rng_below(&m->rng, 64));
    carve_stats before = m->st;
    size_t tried = 0;
    for (size_t k = 0; k < n; k++) {
        carve_handle hd = cands[k];
        int live = 0;
        for (size_t j = 0; j < NSLOTS && !live; j++)
            live = hd != 0 && m->s[j].hd == hd;
        if (live)
            continue;
        tried++;
        errno = 0;
        void *p = carve_pin(m->h, hd);
        if (p != NULL || errno != EINVAL)
            fail(m, "pin(bad handle 0x%" PRIx64 ") = %p errno %d", hd, p, errno);
        if (carve_hsize(m->h, hd) != 0)
            fail(m, "hsize(bad handle 0x%" PRIx64 ") != 0", hd);
        int st = carve_unpin(m->h, hd);
        int st2 = carve_hfree(m->h, hd);
        int st3 = carve_hresize(m->h, hd, 100);
        if (st != CARVE_ERR_NOT_OWNED || st2 != CARVE_ERR_NOT_OWNED || st3 != CARVE_ERR_NOT_OWNED)
            fail(m, "bad handle 0x%" PRIx64 ": unpin %d hfree %d hresize %d, expected NOT_OWNED",
                 hd, st, st2, st3);
    }
    check_stats(m, 0, (unsigned)tried);
    const char *d = tu_stats_diff_but_failed(&before, &m->st);
    if (d != NULL)
        fail(m, "a bad handle changed %s", d);
    m->n_hbad += tried;
}

static void release_handle(model *m, size_t i)
{
    while (m->s[i].pins > 0)
        op_unpin(m, i);
    op_hfree(m, i);
}

static void run(model *m, unsigned long long ops)
{
    for (m->op = 0; m->op < ops; m->op++) {
        size_t i = (size_t)tu_rng_below(&m->rng, NSLOTS);
        uint64_t r = tu_rng_below(&m->rng, 100);
        unsigned hpct = m->cfg->handle_pct;
        if (is_empty(m, i)) {
            if (hpct != 0 && tu_rng_below(&m->rng, 100) < hpct)
                op_halloc(m, i);
            else
                op_alloc(m, i, r < 60 ? 0 : r < 75 ? 1 : r < 80 ? 2 : 3);
        } else if (m->s[i].hd != 0) {
            op_handle(m, i, r);
        } else if (r < 50) {
            op_free(m, i);
        } else if (r < 95) {
            op_realloc(m, i, 0);
        } else {
            op_realloc(m, i, 1);
        }
        if (hpct != 0) {
            if (tu_rng_below(&m->rng, m->cfg->compact_every) == 0)
                op_compact(m);
            if (tu_rng_below(&m->rng, 2000) == 0)
                op_bad_handles(m);
        }
        if (tu_rng_below(&m->rng, 2000) == 0)
            op_bad_pointers(m);
        if (tu_rng_below(&m->rng, 1000) == 0)
            op_probe_largest(m);
        if ((m->op + 1) % CHECK_EVERY == 0)
            full_check(m);
        if ((m->op + 1) % VERIFY_EVERY == 0)
            verify_all(m);
    }
    full_check(m);
    verify_all(m);
    /* Free everything: the heap is fresh again. */
    for (size_t i = 0; i < NSLOTS; i++) {
        if (m->s[i].p != NULL)
            op_free(m, i);
        else if (m->s[i].hd != 0)
            release_handle(m, i);
    }
    full_check(m);
    sync_stats(m);
    if (m->st.live_blocks != m->base_blocks || m->st.live_handles != 0 ||
        (m->cfg->handle_pct == 0 && m->st.used_bytes != 0) ||
        (m->cfg->max_handles != 0 && m->st.used_bytes != m->used_at_init))
        fail(m, "after freeing everything: used %zu live %zu", m->st.used_bytes, m->st.live_blocks);
}

static int run_config(size_t k, uint64_t seed, unsigned long long total_ops, size_t default_heap)
{
    const config *c = &configs[k];
    const char *name = c->name;
    carve_policy policy = c->policy;
    unsigned flags = c->flags;
    size_t heap_size = c->heap ? c->heap : default_heap;
    unsigned long long ops = total_ops / c->divisor;
    if (ops == 0)
        ops = 1;
    if (c->lazy_stats != 0 && c->handle_pct != 0) {
        fprintf(stderr, "model_test: config %zu: lazy_stats is for raw blocks only\n", k);
        return 1;
    }
    model *m = (model *)calloc(1, sizeof *m);
    if (m == NULL)
        return 1;
    m->name = name;
    m->cfg = c;
    m->config = k;
    m->divisor = c->divisor;
    m->policy = policy;
    m->flags = flags;
    m->seed = seed;
    m->heap_size = heap_size;
    tu_rng_seed(&m->rng, seed ^ ((uint64_t)policy << 56) ^ ((uint64_t)flags << 48));
    size_t misalign = 1 + (size_t)tu_rng_below(&m->rng, 63); /* never 64-aligned */
    if (tu_region_make(&m->r, heap_size, misalign, GUARD, 0x6B) != 0) {
        fprintf(stderr, "model_test: cannot allocate %zu bytes\n", heap_size);
        return 1;
    }
    carve_options o;
    memset(&o, 0, sizeof o);
    o.policy = policy;
    o.flags = flags;
    o.max_handles = c->max_handles;
    m->h = carve_init(m->r.buf, heap_size, &o);
    if (m->h == NULL)
        fail(m, "carve_init failed, errno %d", errno);
    carve_get_stats(m->h, &m->st);
    m->capacity = m->st.capacity;
    m->used_at_init = m->st.used_bytes;
    /* Without handles nothing of carve's own is counted; with max_handles
     * the table exists now, and what the counters show of it is fixed. */
    if (c->handle_pct == 0 || c->max_handles != 0) {
        m->base_known = 1;
        m->base_blocks = m->st.live_blocks;
        m->base_allocs = m->st.allocs - m->st.frees;
    }
    m->gbase = (uintptr_t)m->r.buf & ~(uintptr_t)15u;
    m->ngranules = (heap_size + 64) / 16 + 64;
    m->owned = (uint64_t *)calloc(m->ngranules / 64 + 2, sizeof(uint64_t));
    m->scratch = (uint64_t *)calloc(m->ngranules / 64 + 2, sizeof(uint64_t));
    if (m->owned == NULL || m->scratch == NULL)
        abort();
    full_check(m);
    run(m, ops);
    printf(
        "model_test: [%zu] %-9s flags 0x%02x heap %zu: %llu ops (alloc %llu calloc %llu aligned "
        "%llu "
        "realloc %llu free %llu, ENOMEM %llu, bad pointers %llu, full checks %llu) peak used %zu "
        "of "
        "%zu: OK\n",
        k, name, flags, heap_size, ops, m->n_alloc, m->n_calloc, m->n_aligned, m->n_realloc,
        m->n_free, m->n_enomem, m->n_bad, m->n_checks, m->st.peak_used_bytes, m->capacity);
    if (c->handle_pct != 0)
        printf(
            "model_test: [%zu]   handles: halloc %llu hfree %llu pin %llu unpin %llu hresize %llu "
            "(moved %llu), compactions %llu (full %llu, %" PRIu64 " bytes moved; automatic %llu), "
            "refused bad/pinned %llu; table blocks counted: %zu\n",
            k, m->n_halloc, m->n_hfree, m->n_pin, m->n_unpin, m->n_hresize, m->n_hmoved,
            m->n_compact, m->n_compact_full, m->moved_explicit, m->n_auto, m->n_hbad,
            m->base_blocks);
    fflush(stdout);
    tu_region_free(&m->r);
    free(m->owned);
    free(m->scratch);
    free(m);
    return 0;
}

int main(int argc, char **argv)
{
    unsigned long long ops = tu_env_ull("CARVE_TEST_OPS", DEFAULT_OPS);
    uint64_t seed = tu_env_ull("CARVE_TEST_SEED", DEFAULT_SEED);
    size_t heap = (size_t)tu_env_ull("CARVE_TEST_HEAP", DEFAULT_HEAP);
    long only = -1;
    if (argc > 1)
        ops = strtoull(argv[1], NULL, 0);
    if (argc > 2)
        seed = strtoull(argv[2], NULL, 0);
    if (argc > 3)
        only = strtol(argv[3], NULL, 0);
    if (ops == 0)
        ops = 1;
    printf("model_test: seed 0x%" PRIx64 ", %llu operations per policy, heap %zu bytes\n", seed,
           ops, heap);
    fflush(stdout);
    int failed = 0, passed = 0;
    for (size_t k = 0; k < NCONFIGS; k++) {
        if (only >= 0 && (size_t)only != k)
            continue;
        if (run_config(k, seed, ops, heap) == 0)
            passed++;
        else
            failed++;
    }
    printf("model_test: %d passed, %d failed (seed 0x%" PRIx64 ")\n", passed, failed, seed);
    return failed != 0;
}
