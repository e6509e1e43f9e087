/*
 * cmocka glue shared by the unit tests: a heap in a guarded region, assertion
 * macros for "fails with errno X and changes nothing", and a walk collector.
 */
#ifndef CARVE_UNIT_UTIL_H
#define CARVE_UNIT_UTIL_H

#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "test_util.h"

/* A heap in a guarded region. */
typedef struct uh {
    tu_region r;
    carve_heap *h;
} uh;

static inline carve_options uh_opts(carve_policy policy, unsigned flags)
{
    carve_options o;
    memset(&o, 0, sizeof o);
    o.policy = policy;
    o.flags = flags;
    return o;
}

/* Formats a heap of `size` bytes at remainder `misalign` modulo 64. */
static inline carve_heap *uh_make_opts(uh *u, size_t size, size_t misalign,
                                       const carve_options *opt)
{
    assert_int_equal(tu_region_make(&u->r, size, misalign, 256, 0xCD), 0);
    u->h = carve_init(u->r.buf, size, opt);
    if (u->h == NULL)
        fail_msg("carve_init(size %zu, misalign %zu) failed: errno %d", size, misalign, errno);
    return u->h;
}

static inline carve_heap *uh_make(uh *u, size_t size, carve_policy policy, unsigned flags)
{
    carve_options o = uh_opts(policy, flags);
    return uh_make_opts(u, size, 0, &o);
}

/* Checks the guards and releases the region. */
static inline void uh_destroy(uh *u)
{
    int guards = tu_region_guards_ok(&u->r);
    tu_region_free(&u->r);
    u->h = NULL;
    if (!guards)
        fail_msg("a guard zone around the buffer was overwritten");
}

static inline carve_stats uh_stats(carve_heap *h)
{
    carve_stats s;
    memset(&s, 0x5A, sizeof s);
    carve_get_stats(h, &s);
    return s;
}

/* Three blocks of size bytes, allocated one after another into row[0..2]
 * (neighbours in that order on a fresh heap without runs); fails the test
 * when one is not given. */
static inline void uh_alloc_row(carve_heap *h, size_t size, unsigned char *row[3])
{
    for (int i = 0; i < 3; i++) {
        row[i] = (unsigned char *)carve_alloc(h, size);
        assert_non_null(row[i]);
    }
}

/* A stray write into the block header at hdr: one byte flipped, the header
 * saved first into saved so the test can mend it (memcpy back). */
static inline void uh_damage_header(unsigned char *hdr, unsigned char saved[CARVE_BLOCK_OVERHEAD],
                                    size_t byte)
{
    memcpy(saved, hdr, CARVE_BLOCK_OVERHEAD);
    hdr[byte] ^= 0x5A;
}

/* The invariants every heap state must satisfy.  carve_check runs first,
 * on the heap as the test left it (the statistics empty the caches, and
 * carve_check must also pass with blocks sitting in them), then again after
 * the statistics. */
#define ASSERT_HEAP_SANE(h)                                                                        \
    do {                                                                                           \
        int pre_ = carve_check(h);                                                                 \
        if (pre_ != CARVE_OK)                                                                      \
            fail_msg("carve_check before the statistics = %d (%s)", pre_, carve_strerror(pre_));   \
        carve_stats st_ = uh_stats(h);                                                             \
        if (st_.used_bytes + st_.free_bytes != st_.capacity)                                       \
            fail_msg("used %zu + free %zu != capacity %zu", st_.used_bytes, st_.free_bytes,        \
                     st_.capacity);                                                                \
        if (st_.largest_free > st_.free_bytes)                                                     \
            fail_msg("largest_free %zu > free_bytes %zu", st_.largest_free, st_.free_bytes);       \
        if (st_.peak_used_bytes < st_.used_bytes)                                                  \
            fail_msg("peak_used_bytes %zu < used_bytes %zu", st_.peak_used_bytes, st_.used_bytes); \
        int chk_ = carve_check(h);                                                                 \
        if (chk_ != CARVE_OK)                                                                      \
            fail_msg("carve_check = %d (%s)", chk_, carve_strerror(chk_));                         \
    } while (0)

#define ASSERT_STATS_SAME(a, b)                        \
    do {                                               \
        const char *d_ = tu_stats_diff(&(a), &(b), 0); \
        if (d_ != NULL)                                \
            fail_msg("stats field %s changed", d_);    \
    } while (0)

/* A failed call may bump failed_allocs and must change nothing else. */
#define ASSERT_STATS_SAME_BUT_FAILED(a, b)                                                      \
    do {                                                                                        \
        const char *d_ = tu_stats_diff_but_failed(&(a), &(b));                                  \
        if (d_ != NULL)                                                                         \
            fail_msg("stats field %s changed", d_);                                             \
        if ((b).failed_allocs < (a).failed_allocs || (b).failed_allocs > (a).failed_allocs + 1) \
            fail_msg("failed_allocs went from %llu to %llu",                                    \
                     (unsigned long long)(a).failed_allocs,                                     \
                     (unsigned long long)(b).failed_allocs);                                    \
    } while (0)

/* Only the shape of the heap, not its counters: what "fresh again" means. */
#define ASSERT_SAME_SHAPE(a, b)                                         \
    do {                                                                \
        const char *d_ = tu_stats_diff(&(a), &(b), 1);                  \
        if (d_ != NULL)                                                 \
            fail_msg("stats field %s differs from the fresh heap", d_); \
    } while (0)

/* expr must return NULL with errno == err. */
#define ASSERT_NULL_ERRNO(expr, err)                                                           \
    do {                                                                                       \
        errno = 0;                                                                             \
        const void *p_ = (expr);                                                               \
        int e_ = errno;                                                                        \
        if (p_ != NULL)                                                                        \
            fail_msg("%s returned %p, expected NULL", #expr, p_);                              \
        if (e_ != (err))                                                                       \
            fail_msg("%s set errno %d (%s), expected %d (%s)", #expr, e_, strerror(e_), (err), \
                     strerror(err));                                                           \
    } while (0)

#define ASSERT_STATUS(expr, st)                                                              \
    do {                                                                                     \
        int r_ = (expr);                                                                     \
        if (r_ != (int)(st))                                                                 \
            fail_msg("%s returned %d (%s), expected %d (%s)", #expr, r_, carve_strerror(r_), \
                     (int)(st), carve_strerror((int)(st)));                                  \
    } while (0)

/* ------------------------------------------------------------------------ */
/* Walk collection                                                           */
/* ------------------------------------------------------------------------ */

#define UW_MAX 4096

typedef struct uw {
    size_t n;
    int overflow;
    carve_block b[UW_MAX];
} uw;

static inline int uw_visit(const carve_block *b, void *ctx)
{
    uw *w = (uw *)ctx;
    if (w->n >= UW_MAX) {
        w->overflow = 1;
        return 0;
    }
    w->b[w->n++] = *b;
    return 0;
}

/* Collects every block; fails the test when the walk does not complete. */
static inline uw *uw_collect(carve_heap *h)
{
    uw *w = (uw *)calloc(1, sizeof *w);
    assert_non_null(w);
    int r = carve_walk(h, uw_visit, w);
    if (r != CARVE_OK)
        fail_msg("carve_walk = %d (%s)", r, carve_strerror(r));
    assert_false(w->overflow);
    return w;
}

/* The walked block whose payload is p, or NULL. */
static inline const carve_block *uw_find_payload(const uw *w, const void *p)
{
    for (size_t i = 0; i < w->n; i++)
        if (w->b[i].payload == p)
            return &w->b[i];
    return NULL;
}

/* The walked free block containing address p (as heap offset), or NULL. */
static inline const carve_block *uw_free_block_at(const uw *w, const carve_heap *h, const void *p)
{
    size_t off = (size_t)((const unsigned char *)p - (const unsigned char *)h);
    for (size_t i = 0; i < w->n; i++)
        if (w->b[i].kind == CARVE_BLOCK_FREE && off >= w->b[i].offset &&
            off < w->b[i].offset + w->b[i].size)
            return &w->b[i];
    return NULL;
}

/* The free block a textbook first fit (lowest address) or exact best fit
 * (smallest, lowest address among equals) would carve a block of `need`
 * bytes from, or NULL. */
static inline const carve_block *uw_first_fit(const uw *w, size_t need)
{
    for (size_t i = 0; i < w->n; i++)
        if (w->b[i].kind == CARVE_BLOCK_FREE && w->b[i].size >= need)
            return &w->b[i];
    return NULL;
}

static inline const carve_block *uw_best_fit(const uw *w, size_t need)
{
    const carve_block *best = NULL;
    for (size_t i = 0; i < w->n; i++)
        if (w->b[i].kind == CARVE_BLOCK_FREE && w->b[i].size >= need &&
            (best == NULL || w->b[i].size < best->size))
            best = &w->b[i];
    return best;
}

/* CARVE_TEST_QUICK=1 (set for the valgrind variants) scales the exhaustive
 * loops down: fewer remainders, fewer tries.  Every check still runs. */
static inline int uh_quick(void)
{
    const char *v = getenv("CARVE_TEST_QUICK");
    return v != NULL && *v != '\0' && *v != '0';
}

/* Runs a group; CARVE_TEST_FILTER=pattern (cmocka's wildcard syntax) runs
 * only the matching tests. */
#define UH_RUN_GROUP(name, tests)                                    \
    do {                                                             \
        const char *filter_ = getenv("CARVE_TEST_FILTER");           \
        if (filter_ != NULL && *filter_ != '\0')                     \
            cmocka_set_test_filter(filter_);                         \
        return cmocka_run_group_tests_name(name, tests, NULL, NULL); \
    } while (0)

static const carve_policy uh_policies[] = {CARVE_GOOD_FIT, CARVE_FIRST_FIT, CARVE_BEST_FIT};
#define UH_NPOLICIES (sizeof uh_policies / sizeof uh_policies[0])

#endif /* CARVE_UNIT_UTIL_H */
