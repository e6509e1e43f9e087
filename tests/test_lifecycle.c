/*
 * Unit tests: carve_version, carve_init, carve_attach, carve_min_buffer_size,
 * carve_max_alloc_size.
 */
#include "unit_util.h"

#include <pthread.h>

#define HEAP_SIZE (64u * 1024u)

/* ------------------------------------------------------------------------ */
/* Version                                                                   */
/* ------------------------------------------------------------------------ */

static void test_version(void **state)
{
    (void)state;
    assert_non_null(carve_version());
    assert_string_equal(carve_version(), CARVE_VERSION_STRING);
    assert_int_equal(CARVE_VERSION_NUMBER,
                     CARVE_VERSION_MAJOR * 10000 + CARVE_VERSION_MINOR * 100 + CARVE_VERSION_PATCH);
    char expect[32];
    snprintf(expect, sizeof expect, "%d.%d.%d", CARVE_VERSION_MAJOR, CARVE_VERSION_MINOR,
             CARVE_VERSION_PATCH);
    assert_string_equal(CARVE_VERSION_STRING, expect);
}

/* ------------------------------------------------------------------------ */
/* carve_init                                                                */
/* ------------------------------------------------------------------------ */

static void test_init_null_buffer(void **state)
{
    (void)state;
    ASSERT_NULL_ERRNO(carve_init(NULL, HEAP_SIZE, NULL), EINVAL);
    carve_options o = uh_opts(CARVE_FIRST_FIT, 0);
    ASSERT_NULL_ERRNO(carve_init(NULL, HEAP_SIZE, &o), EINVAL);
    ASSERT_NULL_ERRNO(carve_init(NULL, 0, NULL), EINVAL);
}

static void test_init_too_small(void **state)
{
    (void)state;
    tu_region r;
    assert_int_equal(tu_region_make(&r, 4096, 0, 256, 0), 0);
    size_t min = carve_min_buffer_size(NULL);
    assert_true(min > 0);
    const size_t sizes[] = {0, 1, 8, 63, 64, 65, 127};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++)
        if (sizes[i] < min)
            ASSERT_NULL_ERRNO(carve_init(r.buf, sizes[i], NULL), EINVAL);
    /* At an odd address, buffers that end before the first place the
     * control block could start, and some that end soon after. */
    for (size_t skew = 1; skew < 64; skew += 3)
        for (size_t size = 0; size < 160; size += 7)
            ASSERT_NULL_ERRNO(carve_init(r.buf + skew, size, NULL), EINVAL);
    assert_true(tu_region_guards_ok(&r));
    tu_region_free(&r);
}

static void test_init_unknown_flags(void **state)
{
    (void)state;
    uh u;
    assert_int_equal(tu_region_make(&u.r, HEAP_SIZE, 0, 256, 0), 0);
    const unsigned bad[] = {1u << 6,
                            1u << 7,
                            1u << 15,
                            1u << 31,
                            ~0u,
                            CARVE_POISON | (1u << 6),
                            CARVE_NO_RUNS | (1u << 7)};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        carve_options o = uh_opts(CARVE_GOOD_FIT, bad[i]);
        ASSERT_NULL_ERRNO(carve_init(u.r.buf, HEAP_SIZE, &o), EINVAL);
        /* No size works, and the sizing helpers say so. */
        assert_int_equal(carve_min_buffer_size(&o), 0);
        assert_int_equal(carve_max_alloc_size(HEAP_SIZE, &o), 0);
    }
    /* A failed init leaves nothing that attach would accept. */
    ASSERT_NULL_ERRNO(carve_attach(u.r.buf, HEAP_SIZE), EINVAL);
    uh_destroy(&u);
}

static void test_init_bad_policy(void **state)
{
    (void)state;
    uh u;
    assert_int_equal(tu_region_make(&u.r, HEAP_SIZE, 0, 256, 0), 0);
    const int bad[] = {3, 4, 100, -1, 0x7fffffff};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        carve_options o = uh_opts(CARVE_GOOD_FIT, 0);
        o.policy = (carve_policy)bad[i];
        ASSERT_NULL_ERRNO(carve_init(u.r.buf, HEAP_SIZE, &o), EINVAL);
        assert_int_equal(carve_min_buffer_size(&o), 0);
        assert_int_equal(carve_max_alloc_size(HEAP_SIZE, &o), 0);
    }
    uh_destroy(&u);
}

/* The heap lives at the first 64-byte aligned address in the buffer, works at
 * every remainder modulo 64, and is fresh: one free block holding everything. */
static void test_init_every_alignment(void **state)
{
    (void)state;
    for (size_t m = 0; m < 64; m++) {
        for (size_t pi = 0; pi < UH_NPOLICIES; pi++) {
            uh u;
            carve_options o = uh_opts(uh_policies[pi], 0);
            carve_heap *h = uh_make_opts(&u, HEAP_SIZE, m, &o);
            uintptr_t first = ((uintptr_t)u.r.buf + 63u) & ~(uintptr_t)63u;
            assert_true((uintptr_t)h == first);
            carve_stats st = uh_stats(h);
            assert_true(st.capacity > 0 && st.capacity <= HEAP_SIZE);
            assert_int_equal(st.used_bytes, 0);
            assert_int_equal(st.free_bytes, st.capacity);
            assert_int_equal(st.live_blocks, 0);
            assert_int_equal(st.free_blocks, 1);
            assert_int_equal(st.live_handles, 0);
            assert_int_equal(st.pinned_handles, 0);
            assert_int_equal(st.allocs, 0);
            assert_int_equal(st.frees, 0);
            assert_int_equal(st.failed_allocs, 0);
            assert_int_equal(st.peak_used_bytes, 0);
            assert_true(st.largest_free > 0 && st.largest_free < st.capacity);
            ASSERT_HEAP_SANE(h);
            void *p = carve_alloc(h, 100);
            assert_non_null(p);
            assert_true(tu_is_aligned(p, CARVE_ALIGNMENT));
            assert_true(tu_region_contains(&u.r, p, 100));
            memset(p, 0x11, 100);
            ASSERT_STATUS(carve_free(h, p), CARVE_OK);
            ASSERT_HEAP_SANE(h);
            uh_destroy(&u);
        }
    }
}

/* Every valid flag combination and policy formats and works. */
static void test_init_all_options(void **state)
{
    (void)state;
    const unsigned flag_sets[] = {0,
                                  CARVE_THREADSAFE,
                                  CARVE_SHARED,
                                  CARVE_POISON,
                                  CARVE_NO_RUNS,
                                  CARVE_THREADSAFE | CARVE_POISON,
                                  CARVE_SHARED | CARVE_POISON | CARVE_NO_RUNS,
                                  CARVE_THREADSAFE | CARVE_SHARED | CARVE_POISON | CARVE_NO_RUNS};
    const size_t handle_counts[] = {0, 1, 1000};
    for (size_t fi = 0; fi < sizeof flag_sets / sizeof flag_sets[0]; fi++) {
        for (size_t pi = 0; pi < UH_NPOLICIES; pi++) {
            for (size_t hi = 0; hi < sizeof handle_counts / sizeof handle_counts[0]; hi++) {
                carve_options o = uh_opts(uh_policies[pi], flag_sets[fi]);
                o.max_handles = handle_counts[hi];
                uh u;
                /* Large enough for runs (small requests in slots) unless turned off. */
                carve_heap *h = uh_make_opts(&u, 2 * CARVE_RUNS_MIN_HEAP, 5, &o);
                void *a = carve_alloc(h, 40);
                void *b = carve_calloc(h, 3, 50);
                void *c = carve_aligned_alloc(h, 256, 10);
                assert_non_null(a);
                assert_non_null(b);
                assert_non_null(c);
                assert_true(tu_is_aligned(c, 256));
                b = carve_realloc(h, b, 400);
                assert_non_null(b);
                ASSERT_HEAP_SANE(h);
                ASSERT_STATUS(carve_free(h, a), CARVE_OK);
                ASSERT_STATUS(carve_free(h, b), CARVE_OK);
                ASSERT_STATUS(carve_free(h, c), CARVE_OK);
                ASSERT_HEAP_SANE(h);
                uh_destroy(&u);
            }
        }
    }
}

static void test_init_null_options_are_defaults(void **state)
{
    (void)state;
    carve_options zero;
    memset(&zero, 0, sizeof zero);
    assert_int_equal(carve_min_buffer_size(NULL), carve_min_buffer_size(&zero));
    assert_int_equal(carve_max_alloc_size(HEAP_SIZE, NULL), carve_max_alloc_size(HEAP_SIZE, &zero));
    uh a, b;
    carve_heap *ha = uh_make_opts(&a, HEAP_SIZE, 0, NULL);
    carve_heap *hb = uh_make_opts(&b, HEAP_SIZE, 0, &zero);
    carve_stats sa = uh_stats(ha), sb = uh_stats(hb);
    ASSERT_STATS_SAME(sa, sb);
    uh_destroy(&a);
    uh_destroy(&b);
}

/* carve_init over a used heap formats it afresh. */
static void test_init_reformats(void **state)
{
    (void)state;
    uh u;
    carve_heap *h = uh_make(&u, HEAP_SIZE, CARVE_GOOD_FIT, 0);
    carve_stats fresh = uh_stats(h);
    for (int i = 0; i < 20; i++)
        assert_non_null(carve_alloc(h, (size_t)(i * 37 + 1)));
    carve_heap *h2 = carve_init(u.r.buf, HEAP_SIZE, NULL);
    assert_ptr_equal(h2, h);
    carve_stats again = uh_stats(h2);
    ASSERT_STATS_SAME(fresh, again);
    ASSERT_HEAP_SANE(h2);
    uh_destroy(&u);
}

/* ------------------------------------------------------------------------ */
/* Sizing helpers                                                            */
/* ------------------------------------------------------------------------ */

static const carve_options *sizing_option_sets(size_t i, carve_options *o)
{
    switch (i) {
    case 0:
        return NULL;
    case 1:
        *o = uh_opts(CARVE_FIRST_FIT, 0);
        return o;
    case 2:
        *o = uh_opts(CARVE_BEST_FIT, CARVE_POISON);
        return o;
    case 3:
        *o = uh_opts(CARVE_GOOD_FIT, CARVE_THREADSAFE);
        return o;
    case 4:
        *o = uh_opts(CARVE_GOOD_FIT, CARVE_SHARED | CARVE_POISON);
        return o;
    case 5:
        *o = uh_opts(CARVE_GOOD_FIT, 0);
        o->max_handles = 5000;
        return o;
    default:
        return NULL;
    }
}
#define N_SIZING_SETS 6

/* A buffer of carve_min_buffer_size() bytes formats at every remainder modulo
 * 64 and can hold an allocation; one byte less fails somewhere. */
static void test_min_buffer_size(void **state)
{
    (void)state;
    for (size_t si = 0; si < N_SIZING_SETS; si++) {
        carve_options storage;
        const carve_options *opt = sizing_option_sets(si, &storage);
        size_t min = carve_min_buffer_size(opt);
        assert_true(min > 0);
        assert_true(min < 1u << 20);
        size_t failures_below = 0;
        for (size_t m = 0; m < 64; m++) {
            tu_region r;
            assert_int_equal(tu_region_make(&r, min, m, 256, 0xEE), 0);
            carve_heap *h = carve_init(r.buf, min, opt);
            if (h == NULL)
                fail_msg("option set %zu: carve_init(min %zu) failed at remainder %zu (errno %d)",
                         si, min, m, errno);
            assert_int_equal(carve_check(h), CARVE_OK);
            carve_stats st = uh_stats(h);
            assert_true(st.largest_free >= 1);
            void *p = carve_alloc(h, 1);
            if (p == NULL)
                fail_msg("option set %zu: a min-size heap cannot hold 1 byte at remainder %zu", si,
                         m);
            assert_true(tu_region_contains(&r, p, 1));
            ASSERT_STATUS(carve_free(h, p), CARVE_OK);
            assert_int_equal(carve_check(h), CARVE_OK);
            /* The same bytes, one shorter. */
            errno = 0;
            carve_heap *h2 = carve_init(r.buf, min - 1, opt);
            if (h2 == NULL) {
                assert_int_equal(errno, EINVAL);
                failures_below++;
            }
            assert_true(tu_region_guards_ok(&r));
            tu_region_free(&r);
        }
        if (failures_below == 0)
            fail_msg("option set %zu: min-1 = %zu formats at every remainder; min is not minimal",
                     si, min - 1);
    }
}

/* carve_max_alloc_size(n) can be allocated in a fresh heap of n bytes at every
 * buffer remainder, and equals the least favourable remainder's largest_free,
 * so one more byte fails there. */
static void test_max_alloc_size(void **state)
{
    (void)state;
    for (size_t si = 0; si < N_SIZING_SETS; si++) {
        carve_options storage;
        const carve_options *opt = sizing_option_sets(si, &storage);
        size_t min = carve_min_buffer_size(opt);
        assert_int_equal(carve_max_alloc_size(0, opt), 0);
        assert_int_equal(carve_max_alloc_size(min - 1, opt), 0);
        assert_true(carve_max_alloc_size(min, opt) >= 1);
        const size_t sizes[] = {min,
                                min + 1,
                                min + 15,
                                min + 16,
                                min + 17,
                                min + 100,
                                1000 > min ? 1000 : min + 200,
                                4096,
                                4097,
                                65535 + 3,
                                100000,
                                (size_t)1 << 20};
        for (size_t zi = 0; zi < sizeof sizes / sizeof sizes[0]; zi++) {
            size_t n = sizes[zi];
            if (n < min)
                continue;
            size_t want = carve_max_alloc_size(n, opt);
            assert_true(want >= 1);
            assert_true(want < n);
            size_t least = SIZE_MAX;
            /* Quick mode samples remainders but always includes the extremes. */
            for (size_t m = 0; m < 64; m += (uh_quick() && m != 0 && m < 57) ? 7 : 1) {
                tu_region r;
                assert_int_equal(tu_region_make(&r, n, m, 128, 0), 0);
                carve_heap *h = carve_init(r.buf, n, opt);
                assert_non_null(h);
                carve_stats st = uh_stats(h);
                if (st.largest_free < least)
                    least = st.largest_free;
                if (st.largest_free < want)
                    fail_msg("set %zu n %zu m %zu: fresh largest_free %zu < max_alloc_size %zu", si,
                             n, m, st.largest_free, want);
                void *p = carve_alloc(h, want);
                if (p == NULL)
                    fail_msg("set %zu n %zu m %zu: alloc(max_alloc_size %zu) failed", si, n, m,
                             want);
                assert_true(tu_region_contains(&r, p, want));
                assert_true(carve_usable_size(h, p) >= want);
                ASSERT_STATUS(carve_free(h, p), CARVE_OK);
                /* largest_free is exact at this remainder too. */
                carve_stats before = uh_stats(h);
                ASSERT_NULL_ERRNO(carve_alloc(h, st.largest_free + 1), ENOMEM);
                carve_stats after = uh_stats(h);
                ASSERT_STATS_SAME_BUT_FAILED(before, after);
                p = carve_alloc(h, st.largest_free);
                assert_non_null(p);
                assert_true(tu_region_contains(&r, p, st.largest_free));
                ASSERT_STATUS(carve_free(h, p), CARVE_OK);
                assert_int_equal(carve_check(h), CARVE_OK);
                assert_true(tu_region_guards_ok(&r));
                tu_region_free(&r);
            }
            if (least != want && !uh_quick())
                fail_msg("set %zu n %zu: max_alloc_size %zu but least favourable largest_free %zu",
                         si, n, want, least);
        }
        /* No wrap-around at the top of the range. */
        assert_true(carve_max_alloc_size(SIZE_MAX, opt) >= carve_max_alloc_size(SIZE_MAX / 2, opt));
#if SIZE_MAX > 0xFFFFFFFFu /* block sizes are capped (16 TiB today), not at 4 GiB */
        assert_true(carve_max_alloc_size((size_t)1 << 40, opt) > (size_t)1 << 39);
#else
        assert_true(carve_max_alloc_size(SIZE_MAX / 2, opt) > SIZE_MAX / 4);
#endif
    }
}

/* A larger buffer never holds a smaller largest allocation: a user who sizes
 * a buffer by searching over carve_max_alloc_size() relies on it. */
static void test_max_alloc_size_monotonic(void **state)
{
    (void)state;
    for (size_t si = 0; si < N_SIZING_SETS; si++) {
        carve_options storage;
        const carve_options *opt = sizing_option_sets(si, &storage);
        size_t min = carve_min_buffer_size(opt);
        size_t prev = 0, prev_n = 0;
        const size_t dense = min + (uh_quick() ? 1024 : 8192);
        const size_t mid_step = uh_quick() ? 509 : 61, high_step = uh_quick() ? 65521 : 4093;
        for (size_t n = min; n < (size_t)1 << 24; n += (n < dense        ? 1
                                                        : n < (1u << 20) ? mid_step
                                                                         : high_step)) {
            size_t v = carve_max_alloc_size(n, opt);
            if (v < prev)
                fail_msg(
                    "option set %zu: carve_max_alloc_size(%zu) = %zu < carve_max_alloc_size(%zu) "
                    "= %zu",
                    si, n, v, prev_n, prev);
            prev = v;
            prev_n = n;
        }
    }
}

/* ------------------------------------------------------------------------ */
/* carve_attach                                                              */
/* ------------------------------------------------------------------------ */

#define NBLK 24

typedef struct image {
    size_t off[NBLK]; /* payload offset from the buffer start, 0 = none */
    size_t req[NBLK];
    size_t usable[NBLK];
    uint64_t seed[NBLK];
} image;

/* Fills a heap with blocks (some freed) with known contents. */
static void build_image(carve_heap *h, unsigned char *buf, image *im, uint64_t seed)
{
    tu_rng rng;
    tu_rng_seed(&rng, seed);
    void *p[NBLK];
    for (size_t i = 0; i < NBLK; i++) {
        im->req[i] = tu_rng_range(&rng, 1, 900);
        if (i % 5 == 4)
            p[i] = carve_aligned_alloc(h, (size_t)1 << tu_rng_range(&rng, 5, 9), im->req[i]);
        else
            p[i] = carve_alloc(h, im->req[i]);
        assert_non_null(p[i]);
        im->seed[i] = tu_rng_next(&rng);
        im->usable[i] = carve_usable_size(h, p[i]);
        tu_fill(p[i], im->seed[i], im->usable[i]);
        im->off[i] = (size_t)((unsigned char *)p[i] - buf);
    }
    for (size_t i = 0; i < NBLK; i += 3) {
        ASSERT_STATUS(carve_free(h, p[i]), CARVE_OK);
        im->off[i] = 0;
    }
}

static void verify_image(carve_heap *h, unsigned char *buf, const image *im)
{
    for (size_t i = 0; i < NBLK; i++) {
        if (im->off[i] == 0)
            continue;
        unsigned char *p = buf + im->off[i];
        assert_int_equal(carve_usable_size(h, p), im->usable[i]);
        assert_int_equal(tu_verify(p, im->seed[i], im->usable[i]), im->usable[i]);
    }
}

static void assert_walks_match(const uw *a, const unsigned char *abuf, const uw *b,
                               const unsigned char *bbuf)
{
    assert_int_equal(a->n, b->n);
    for (size_t i = 0; i < a->n; i++) {
        assert_int_equal(a->b[i].offset, b->b[i].offset);
        assert_int_equal(a->b[i].size, b->b[i].size);
        assert_int_equal(a->b[i].usable, b->b[i].usable);
        assert_int_equal(a->b[i].kind, b->b[i].kind);
        assert_int_equal(a->b[i].pinned, b->b[i].pinned);
        if (a->b[i].payload == NULL) {
            assert_null(b->b[i].payload);
        } else {
            size_t oa = (size_t)((const unsigned char *)a->b[i].payload - abuf);
            size_t ob = (size_t)((const unsigned char *)b->b[i].payload - bbuf);
            assert_int_equal(oa, ob);
        }
    }
}

/* Attaching the very memory a heap lives in finds the same heap. */
static void test_attach_in_place(void **state)
{
    (void)state;
    for (size_t pi = 0; pi < UH_NPOLICIES; pi++) {
        uh u;
        carve_heap *h = uh_make(&u, HEAP_SIZE, uh_policies[pi], 0);
        image im;
        build_image(h, u.r.buf, &im, 7 + pi);
        carve_stats before = uh_stats(h);
        carve_heap *h2 = carve_attach(u.r.buf, HEAP_SIZE);
        assert_ptr_equal(h2, h);
        carve_stats after = uh_stats(h2);
        ASSERT_STATS_SAME(before, after);
        verify_image(h2, u.r.buf, &im);
        ASSERT_HEAP_SANE(h2);
        uh_destroy(&u);
    }
}

/* A heap copied to another address with the same remainder modulo 64 is found
 * again there: same blocks, same contents, same counters, fully usable; the
 * original is not affected by what the copy does. */
static void test_attach_after_copy(void **state)
{
    (void)state;
    const size_t remainders[] = {0, 1, 8, 17, 32, 63};
    for (size_t ri = 0; ri < sizeof remainders / sizeof remainders[0]; ri++) {
        for (size_t pi = 0; pi < UH_NPOLICIES; pi++) {
            size_t m = remainders[ri];
            uh a;
            carve_options o = uh_opts(uh_policies[pi], ri % 2 ? CARVE_POISON : 0);
            carve_heap *ha = uh_make_opts(&a, HEAP_SIZE, m, &o);
            image im;
            build_image(ha, a.r.buf, &im, 100 + ri * 3 + pi);
            carve_stats sa = uh_stats(ha);
            uw *wa = uw_collect(ha);

            tu_region b;
            assert_int_equal(tu_region_make(&b, HEAP_SIZE, m, 512, 0), 0);
            assert_true(b.buf != a.r.buf);
            memcpy(b.buf, a.r.buf, HEAP_SIZE);
            carve_heap *hb = carve_attach(b.buf, HEAP_SIZE);
            if (hb == NULL)
                fail_msg("attach of a copy at remainder %zu failed, errno %d", m, errno);
            assert_true((unsigned char *)hb >= b.buf && (unsigned char *)hb < b.buf + 64);
            carve_stats sb = uh_stats(hb);
            ASSERT_STATS_SAME(sa, sb);
            uw *wb = uw_collect(hb);
            assert_walks_match(wa, a.r.buf, wb, b.buf);
            verify_image(hb, b.buf, &im);
            ASSERT_HEAP_SANE(hb);

            /* Use the copy: free its blocks, allocate new ones. */
            for (size_t i = 0; i < NBLK; i++)
                if (im.off[i] != 0)
                    ASSERT_STATUS(carve_free(hb, b.buf + im.off[i]), CARVE_OK);
            carve_stats sb2 = uh_stats(hb);
            assert_int_equal(sb2.live_blocks, 0);
            void *q = carve_alloc(hb, 5000);
            assert_non_null(q);
            assert_true(tu_region_contains(&b, q, 5000));
            ASSERT_HEAP_SANE(hb);

            /* The original is untouched and still consistent. */
            carve_stats sa2 = uh_stats(ha);
            ASSERT_STATS_SAME(sa, sa2);
            verify_image(ha, a.r.buf, &im);
            ASSERT_HEAP_SANE(ha);

            free(wa);
            free(wb);
            assert_true(tu_region_guards_ok(&b));
            tu_region_free(&b);
            uh_destroy(&a);
        }
    }
}

/* A copy taken while the caches hold freed blocks, with nothing drained or
 * detached first: what a file-backed heap looks like after its process
 * died.  Statistics and walks empty the caches, so neither is called on
 * the original before its two copies are taken.  Each copy attaches and
 * checks clean (with the built-in lock, the records of threads of the
 * original are taken back); in the first, its live blocks keep their
 * contents and the cached blocks are free and never handed out twice; in
 * the second, once every block is freed in it and in the original, it has
 * exactly the free bytes the original has. */
#define CACHE_COPY_HEAP (8u << 20)
#define CACHE_COPY_BLKS 3000

/* A copy of a CARVE_THREADSAFE heap put back where it was and reopened
 * (a snapshot restored): this thread still names, in its own memory, the
 * cache record it took after the copy was made.  A new thread that takes
 * that record must get another tag, or both threads would use one cache
 * without the lock and a block would be handed out twice: here the block
 * the new thread freed into its cache. */
static carve_heap *restored;

static void *alloc_free_one(void *arg)
{
    void **y = (void **)arg;
    *y = carve_alloc(restored, 32);
    if (*y != NULL)
        (void)carve_free(restored, *y); /* it stays in this thread's cache */
    return NULL;
}

static void test_attach_restored_snapshot_threads(void **state)
{
    (void)state;
    uh u;
    carve_heap *h = uh_make(&u, 2 * CARVE_GCACHE_MIN_HEAP, CARVE_GOOD_FIT, CARVE_THREADSAFE);
    unsigned char *snapshot = malloc(u.r.size);
    assert_non_null(snapshot);
    memcpy(snapshot, u.r.buf, u.r.size);
    void *x = carve_alloc(h, 32); /* this thread takes a cache record */
    assert_non_null(x);
    ASSERT_STATUS(carve_free(h, x), CARVE_OK);
    memcpy(u.r.buf, snapshot, u.r.size);
    restored = carve_attach(u.r.buf, u.r.size);
    assert_ptr_equal(restored, h);
    void *y = NULL;
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, alloc_free_one, &y), 0);
    assert_int_equal(pthread_join(t, NULL), 0);
    assert_non_null(y);
    void *z = carve_alloc(h, 32);
    assert_non_null(z);
    assert_true(z != y); /* y sits in the other thread's cache: it is free */
    ASSERT_STATUS(carve_free(h, z), CARVE_OK);
    ASSERT_HEAP_SANE(h);
    free(snapshot);
    uh_destroy(&u);
}

/* A thread keeps caches for a few heaps at a time (4).  One that has used
 * that many and goes on to others, here while the first ones stay alive
 * and unused, gets a cache in each new one after a while (65,536 of its
 * calls without a cache) by giving up the entry it used least recently;
 * before, it went through the lock in every further heap for good.  Back in
 * a heap whose entry it gave up, it has a cache again.  A cache shows
 * through the mark a free writes into a small block it keeps: overwriting
 * that word is damage carve_check reports, while a block freed without a
 * cache is left as it was.  Earlier tests in this process left this
 * thread entries of heaps that are gone, so every heap is first used for
 * as many calls as it takes to give one of those up. */
#define EVERY_HEAPS 6
#define EVERY_CALLS 70000 /* allocations and frees in one heap: more than 65,536 */

static int freed_into_a_cache(carve_heap *h)
{
    unsigned char *p = carve_alloc(h, 32);
    assert_non_null(p);
    memset(p, 0xa5, 8);
    ASSERT_STATUS(carve_free(h, p), CARVE_OK);
    unsigned char after[8];
    memcpy(after, p, 8);
    memset(p, 0xa5, 8); /* what the block held before its free */
    int st = carve_check(h);
    memcpy(p, after, 8);
    ASSERT_STATUS(carve_check(h), CARVE_OK);
    return st == CARVE_ERR_CORRUPT;
}

static void churn_small(carve_heap *h, size_t calls)
{
    for (size_t i = 0; i < calls / 2; i++) {
        void *p = carve_alloc(h, 16 + 16 * (i % 8));
        assert_non_null(p);
        ASSERT_STATUS(carve_free(h, p), CARVE_OK);
    }
}

static void test_thread_caches_beyond_four_heaps(void **state)
{
    (void)state;
    uh u[EVERY_HEAPS];
    carve_heap *h[EVERY_HEAPS];
    carve_stats fresh[EVERY_HEAPS];
    for (size_t k = 0; k < EVERY_HEAPS; k++) {
        h[k] = uh_make(&u[k], 2 * CARVE_GCACHE_MIN_HEAP, CARVE_GOOD_FIT, CARVE_THREADSAFE);
        carve_get_stats(h[k], &fresh[k]);
    }
    for (size_t k = 0; k < 4; k++) {
        churn_small(h[k], EVERY_CALLS);
        assert_true(freed_into_a_cache(h[k]));
    }
    /* Heaps 0 and 1 are the least recently used when 4 and 5 take their
     * entries; then 0 comes back. */
    const size_t later[] = {4, 5, 0};
    for (size_t i = 0; i < sizeof later / sizeof later[0]; i++) {
        churn_small(h[later[i]], EVERY_CALLS);
        assert_true(freed_into_a_cache(h[later[i]]));
    }
    /* The records given up hold slots until the heap takes them back:
     * statistics (which empty every cache) find every heap as it began. */
    for (size_t k = 0; k < EVERY_HEAPS; k++) {
        carve_stats st;
        carve_get_stats(h[k], &st);
        assert_int_equal(st.live_blocks, 0);
        assert_int_equal(st.free_bytes, fresh[k].free_bytes);
        assert_int_equal(st.largest_free, fresh[k].largest_free);
        ASSERT_HEAP_SANE(h[k]);
        uh_destroy(&u[k]);
    }
}

/* A slot a cache held and a drain gave back to its run carries no cache's
 * mark when it is handed out again without a cache: freed unwritten, it
 * would otherwise look cached to the free, which would empty every cache
 * to find out.  The second thread has caches in 4 other heaps, so in this
 * one it allocates through the lock. */
typedef struct unmarked {
    carve_heap *others[4];
    carve_heap *h;
    unsigned char *slot; /* the slot the first thread freed into its cache */
    uint64_t mark;       /* what the free wrote into it */
    int found;           /* the second thread was handed slot */
    uint64_t word;       /* its first word then */
} unmarked;

static void *alloc_without_cache(void *arg)
{
    unmarked *t = (unmarked *)arg;
    for (size_t k = 0; k < 4; k++) { /* fills this thread's 4 cache entries */
        void *x = carve_alloc(t->others[k], 32);
        if (x == NULL || carve_free(t->others[k], x) != CARVE_OK)
            return NULL;
    }
    enum { MAX = 1000 };
    static void *got[MAX];
    size_t n = 0;
    while (n < MAX && !t->found && (got[n] = carve_alloc(t->h, 32)) != NULL) {
        if (got[n] == t->slot) {
            t->found = 1;
            memcpy(&t->word, t->slot, 8);
        }
        n++;
    }
    while (n-- > 0)
        (void)carve_free(t->h, got[n]);
    return NULL;
}

static void test_slot_handed_out_again_unmarked(void **state)
{
    (void)state;
    uh u[5];
    unmarked t;
    memset(&t, 0, sizeof t);
    for (size_t k = 0; k < 5; k++) {
        carve_heap *x = uh_make(&u[k], 2 * CARVE_GCACHE_MIN_HEAP, CARVE_GOOD_FIT, CARVE_THREADSAFE);
        if (k < 4)
            t.others[k] = x;
        else
            t.h = x;
    }
    churn_small(t.h, EVERY_CALLS); /* see test_thread_caches_beyond_four_heaps */
    t.slot = carve_alloc(t.h, 32);
    assert_non_null(t.slot);
    memset(t.slot, 0, 8);
    ASSERT_STATUS(carve_free(t.h, t.slot), CARVE_OK); /* into this thread's cache: marked */
    memcpy(&t.mark, t.slot, 8);
    assert_true(t.mark != 0);
    carve_stats st;
    carve_get_stats(t.h, &st); /* empties the cache: the slot goes back to its run */
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, alloc_without_cache, &t), 0);
    assert_int_equal(pthread_join(th, NULL), 0);
    assert_true(t.found);
    assert_true(t.word != t.mark);
    for (size_t k = 0; k < 5; k++) {
        ASSERT_HEAP_SANE(k < 4 ? t.others[k] : t.h);
        uh_destroy(&u[k]);
    }
}

static void test_attach_copy_with_caches_in_use(void **state)
{
    (void)state;
    const unsigned flag_sets[] = {0, CARVE_THREADSAFE};
    unsigned char **live = calloc(CACHE_COPY_BLKS, sizeof *live);
    size_t *len = calloc(CACHE_COPY_BLKS, sizeof *len);
    assert_non_null(live);
    assert_non_null(len);
    for (size_t fi = 0; fi < sizeof flag_sets / sizeof flag_sets[0]; fi++) {
        uh a;
        carve_heap *ha = uh_make(&a, CACHE_COPY_HEAP, CARVE_GOOD_FIT, flag_sets[fi]);
        tu_rng rng;
        tu_rng_seed(&rng, 40 + fi);
        for (size_t i = 0; i < CACHE_COPY_BLKS; i++) {
            /* Nine in ten small (runs and the thread cache), the rest
             * general (the freed-block cache). */
            len[i] = i % 10 ? tu_rng_range(&rng, 1, 256) : tu_rng_range(&rng, 300, 20000);
            live[i] = carve_alloc(ha, len[i]);
            assert_non_null(live[i]);
            tu_fill(live[i], i, len[i]);
        }
        for (size_t i = 0; i < CACHE_COPY_BLKS; i++) {
            if (tu_rng_below(&rng, 2)) {
                ASSERT_STATUS(carve_free(ha, live[i]), CARVE_OK);
                live[i] = NULL;
            }
        }
        tu_region b, b2;
        assert_int_equal(tu_region_make(&b, CACHE_COPY_HEAP, 0, 512, 0), 0);
        assert_int_equal(tu_region_make(&b2, CACHE_COPY_HEAP, 0, 512, 0), 0);
        memcpy(b.buf, a.r.buf, CACHE_COPY_HEAP);
        memcpy(b2.buf, a.r.buf, CACHE_COPY_HEAP);
        carve_heap *hb = carve_attach(b.buf, CACHE_COPY_HEAP);
        if (hb == NULL)
            fail_msg("flags 0x%x: attach of a copy with caches in use failed, errno %d",
                     flag_sets[fi], errno);
        ASSERT_HEAP_SANE(hb);
        size_t nlive = 0;
        for (size_t i = 0; i < CACHE_COPY_BLKS; i++) {
            if (live[i] == NULL)
                continue;
            nlive++;
            unsigned char *q = b.buf + (live[i] - a.r.buf);
            assert_true(carve_usable_size(hb, q) >= len[i]);
            assert_int_equal(tu_verify(q, i, len[i]), len[i]);
        }
        assert_int_equal(uh_stats(hb).live_blocks, nlive);
        assert_int_equal(uh_stats(ha).live_blocks, nlive);

        /* New blocks in the copy never overlap the ones it carried over. */
        for (size_t k = 0; k < CACHE_COPY_BLKS; k++) {
            size_t n = k % 10 ? tu_rng_range(&rng, 1, 256) : tu_rng_range(&rng, 300, 20000);
            unsigned char *p = carve_alloc(hb, n);
            assert_non_null(p);
            memset(p, 0xEE, n);
        }
        for (size_t i = 0; i < CACHE_COPY_BLKS; i++) {
            if (live[i] != NULL)
                assert_int_equal(tu_verify(b.buf + (live[i] - a.r.buf), i, len[i]), len[i]);
        }
        ASSERT_HEAP_SANE(hb);
        assert_true(tu_region_guards_ok(&b));
        tu_region_free(&b);

        /* The second copy (taken before anything read the original's
         * statistics), its carried-over blocks freed. */
        hb = carve_attach(b2.buf, CACHE_COPY_HEAP);
        assert_non_null(hb);
        for (size_t i = 0; i < CACHE_COPY_BLKS; i++) {
            if (live[i] == NULL)
                continue;
            ASSERT_STATUS(carve_free(hb, b2.buf + (live[i] - a.r.buf)), CARVE_OK);
            ASSERT_STATUS(carve_free(ha, live[i]), CARVE_OK);
        }
        carve_stats sa = uh_stats(ha);
        carve_stats sb = uh_stats(hb);
        assert_int_equal(sb.live_blocks, 0);
        assert_int_equal(sb.free_bytes, sa.free_bytes);
        assert_int_equal(sb.largest_free, sa.largest_free);
        ASSERT_HEAP_SANE(hb);
        ASSERT_HEAP_SANE(ha);
        assert_true(tu_region_guards_ok(&b2));
        tu_region_free(&b2);
        uh_destroy(&a);
    }
    free(live);
    free(len);
}

/* The policy is part of the heap: a copied first-fit heap still picks the
 * lowest fitting address. */
static void test_attach_keeps_policy(void **state)
{
    (void)state;
    uh a;
    carve_heap *h = uh_make(&a, HEAP_SIZE, CARVE_FIRST_FIT, 0);
    void *sep[4], *hole[3];
    for (int i = 0; i < 3; i++) {
        sep[i] = carve_alloc(h, 16);
        hole[i] = carve_alloc(h, 1000 + 200 * (size_t)i);
        assert_non_null(sep[i]);
        assert_non_null(hole[i]);
    }
    sep[3] = carve_alloc(h, 16);
    assert_non_null(sep[3]);
    for (int i = 0; i < 3; i++)
        ASSERT_STATUS(carve_free(h, hole[i]), CARVE_OK);
    tu_region b;
    assert_int_equal(tu_region_make(&b, HEAP_SIZE, 0, 256, 0), 0);
    memcpy(b.buf, a.r.buf, HEAP_SIZE);
    carve_heap *hb = carve_attach(b.buf, HEAP_SIZE);
    assert_non_null(hb);
    uw *w = uw_collect(hb);
    const carve_block *expect = uw_first_fit(w, tu_block_size(100));
    assert_non_null(expect);
    unsigned char *p = carve_alloc(hb, 100);
    assert_non_null(p);
    const carve_block *got = uw_free_block_at(w, hb, p);
    assert_non_null(got);
    assert_int_equal(got->offset, expect->offset);
    ASSERT_HEAP_SANE(hb);
    free(w);
    tu_region_free(&b);
    uh_destroy(&a);
}

static void test_attach_null_and_tiny(void **state)
{
    (void)state;
    ASSERT_NULL_ERRNO(carve_attach(NULL, HEAP_SIZE), EINVAL);
    uh u;
    carve_heap *h = uh_make(&u, HEAP_SIZE, CARVE_GOOD_FIT, 0);
    (void)h;
    ASSERT_NULL_ERRNO(carve_attach(u.r.buf, 0), EINVAL);
    ASSERT_NULL_ERRNO(carve_attach(u.r.buf, 1), EINVAL);
    ASSERT_NULL_ERRNO(carve_attach(u.r.buf, carve_min_buffer_size(NULL) - 1), EINVAL);
    uh_destroy(&u);
}

/* The size must be exactly the one the heap was made with. */
static void test_attach_wrong_size(void **state)
{
    (void)state;
    tu_region r;
    assert_int_equal(tu_region_make(&r, HEAP_SIZE + 4096, 3, 256, 0), 0);
    carve_heap *h = carve_init(r.buf, HEAP_SIZE, NULL);
    assert_non_null(h);
    assert_non_null(carve_alloc(h, 77));
    carve_stats before = uh_stats(h);
    const size_t wrong[] = {HEAP_SIZE - 1,  HEAP_SIZE + 1,    HEAP_SIZE - 16,
                            HEAP_SIZE + 16, HEAP_SIZE - 64,   HEAP_SIZE + 64,
                            HEAP_SIZE / 2,  HEAP_SIZE + 4096, HEAP_SIZE - 4096};
    for (size_t i = 0; i < sizeof wrong / sizeof wrong[0]; i++)
        ASSERT_NULL_ERRNO(carve_attach(r.buf, wrong[i]), EINVAL);
    assert_ptr_equal(carve_attach(r.buf, HEAP_SIZE), h);
    carve_stats after = uh_stats(h);
    ASSERT_STATS_SAME(before, after);
    assert_int_equal(carve_check(h), CARVE_OK);
    assert_true(tu_region_guards_ok(&r));
    tu_region_free(&r);
}

static void test_attach_garbage_zero_and_ones(void **state)
{
    (void)state;
    for (size_t m = 0; m < 64; m += 7) {
        tu_region r;
        assert_int_equal(tu_region_make(&r, HEAP_SIZE, m, 256, 0), 0);
        ASSERT_NULL_ERRNO(carve_attach(r.buf, HEAP_SIZE), EINVAL);
        memset(r.buf, 0xFF, HEAP_SIZE);
        ASSERT_NULL_ERRNO(carve_attach(r.buf, HEAP_SIZE), EINVAL);
        tu_rng rng;
        tu_rng_seed(&rng, m);
        for (int k = 0; k < (uh_quick() ? 2 : 8); k++) {
            for (size_t i = 0; i < HEAP_SIZE; i++)
                r.buf[i] = (unsigned char)tu_rng_next(&rng);
            ASSERT_NULL_ERRNO(carve_attach(r.buf, HEAP_SIZE), EINVAL);
        }
        assert_true(tu_region_guards_ok(&r));
        tu_region_free(&r);
    }
}

/* A copy at a different remainder modulo 64 is refused. */
static void test_attach_other_remainder(void **state)
{
    (void)state;
    const size_t origins[] = {0, 5, 40};
    for (size_t oi = 0; oi < sizeof origins / sizeof origins[0]; oi++) {
        uh a;
        carve_options o = uh_opts(CARVE_GOOD_FIT, 0);
        carve_heap *h = uh_make_opts(&a, HEAP_SIZE, origins[oi], &o);
        image im;
        build_image(h, a.r.buf, &im, 55);
        for (size_t m = 0; m < 64; m++) {
            if (m == origins[oi])
                continue;
            tu_region b;
            assert_int_equal(tu_region_make(&b, HEAP_SIZE, m, 256, 0), 0);
            memcpy(b.buf, a.r.buf, HEAP_SIZE);
            errno = 0;
            carve_heap *hb = carve_attach(b.buf, HEAP_SIZE);
            if (hb != NULL)
                fail_msg("heap made at remainder %zu attached at remainder %zu", origins[oi], m);
            assert_int_equal(errno, EINVAL);
            assert_true(tu_region_guards_ok(&b));
            tu_region_free(&b);
        }
        uh_destroy(&a);
    }
}

static int count_visit(const carve_block *b, void *ctx)
{
    (void)b;
    ++*(size_t *)ctx;
    return 0;
}

/* Every call on a heap attach accepted must stay safe, whatever the bytes. */
static void use_accepted_heap(carve_heap *hb, const tu_region *b)
{
    int chk = carve_check(hb);
    assert_true(chk == CARVE_OK || chk == CARVE_ERR_CORRUPT);
    carve_stats st = uh_stats(hb);
    if (chk == CARVE_OK)
        assert_int_equal(st.used_bytes + st.free_bytes, st.capacity);
    size_t n = 0;
    int w = carve_walk(hb, count_visit, &n);
    assert_true(w == CARVE_OK || w == CARVE_ERR_CORRUPT);
    FILE *devnull = fopen("/dev/null", "w");
    if (devnull != NULL) {
        carve_dump_ex(hb, devnull, CARVE_DUMP_BLOCKS | CARVE_DUMP_HEX);
        fclose(devnull);
    }
    const size_t sizes[] = {1, 64, 300, 5000};
    for (size_t k = 0; k < sizeof sizes / sizeof sizes[0]; k++) {
        unsigned char *p = carve_alloc(hb, sizes[k]);
        if (p != NULL) {
            assert_true(tu_region_contains(b, p, sizes[k]));
            unsigned char *q = carve_realloc(hb, p, sizes[k] * 2);
            if (q != NULL) {
                assert_true(tu_region_contains(b, q, sizes[k] * 2));
                p = q;
            }
            (void)carve_free(hb, p);
        }
    }
    chk = carve_check(hb);
    assert_true(chk == CARVE_OK || chk == CARVE_ERR_CORRUPT);
}

/* Corrupting the control block.  The magic (the first 8 bytes) is always
 * refused.  For every byte of the control area (the control block and
 * whatever the heap keeps before its first block), attach either refuses the
 * heap with EINVAL or accepts one on which every call stays safe: no crash,
 * nothing outside the buffer (the guards are poisoned under ASan/valgrind). */
static void test_attach_corrupt_control_block(void **state)
{
    (void)state;
    const size_t heap_sizes[] = {HEAP_SIZE, 2 * CARVE_RUNS_MIN_HEAP};
    for (size_t hs = 0; hs < 2; hs++) {
        size_t size = heap_sizes[hs];
        uh a;
        carve_heap *h = uh_make_opts(&a, size, 0, NULL);
        image im;
        build_image(h, a.r.buf, &im, 99);
        void *small = carve_alloc(h, 40); /* a run, in the large heap */
        assert_non_null(small);
        uw *w = uw_collect(h);
        size_t ctl_end = w->b[0].offset; /* the first block: the end of the control area */
        free(w);
        assert_true(ctl_end >= 64);
        unsigned char *cb = (unsigned char *)h;
        size_t refused = 0;
        tu_region b;
        assert_int_equal(tu_region_make(&b, size, 0, 256, 0), 0);
        unsigned char *bcb = b.buf + (cb - a.r.buf);
        memcpy(b.buf, a.r.buf, size);
        const unsigned char flips[] = {0x01, 0x40, 0xFF};
        const size_t nflips = uh_quick() ? 1 : sizeof flips;
        for (size_t i = 0; i < ctl_end; i += (uh_quick() && i >= 256) ? 5 : 1) {
            for (size_t f = 0; f < nflips; f++) {
                unsigned char saved = bcb[i];
                bcb[i] = (unsigned char)(bcb[i] ^ flips[f]);
                errno = 0;
                carve_heap *hb = carve_attach(b.buf, size);
                if (hb == NULL) {
                    assert_int_equal(errno, EINVAL);
                    refused++;
                } else {
                    if (i < 8)
                        fail_msg("magic byte %zu ^ 0x%02x: attach accepted it", i, flips[f]);
                    use_accepted_heap(hb, &b);
                    memcpy(b.buf, a.r.buf, size); /* undo whatever the calls did */
                }
                bcb[i] = saved;
            }
        }
        assert_true(refused >= 8 * nflips);
        /* Intact, it attaches. */
        memcpy(b.buf, a.r.buf, size);
        assert_non_null(carve_attach(b.buf, size));
        assert_true(tu_region_guards_ok(&b));
        tu_region_free(&b);
        uh_destroy(&a);
    }
}

/* Damage anywhere in a heap (block headers, run metadata, free-list links):
 * attach may accept it (block contents are validated lazily), and then every
 * call must stay safe and carve_check must tell. */
static void test_attach_damaged_blocks(void **state)
{
    (void)state;
    const size_t heap_sizes[] = {HEAP_SIZE, 2 * CARVE_RUNS_MIN_HEAP};
    for (size_t hs = 0; hs < 2; hs++) {
        size_t size = heap_sizes[hs];
        uh a;
        carve_heap *h = uh_make_opts(&a, size, 0, NULL);
        image im;
        build_image(h, a.r.buf, &im, 7);
        for (int i = 0; i < 50; i++)
            assert_non_null(carve_alloc(h, (size_t)(1 + i * 5)));
        tu_region b;
        assert_int_equal(tu_region_make(&b, size, 0, 256, 0), 0);
        tu_rng rng;
        tu_rng_seed(&rng, 5 + hs);
        size_t used_end = 8192 + 64 * 1024; /* where the blocks above live */
        if (used_end > size)
            used_end = size;
        for (int trial = 0; trial < (uh_quick() ? 60 : 400); trial++) {
            memcpy(b.buf, a.r.buf, size);
            size_t off = (size_t)tu_rng_below(&rng, used_end);
            b.buf[off] ^= (unsigned char)(1u << tu_rng_below(&rng, 8));
            carve_heap *hb = carve_attach(b.buf, size);
            if (hb != NULL)
                use_accepted_heap(hb, &b);
        }
        tu_region_free(&b);
        uh_destroy(&a);
    }
}

/* A CARVE_SHARED heap in use may be attached again without disturbing it. */
static void test_attach_shared_in_use(void **state)
{
    (void)state;
    uh u;
    carve_heap *h = uh_make(&u, HEAP_SIZE, CARVE_GOOD_FIT, CARVE_SHARED);
    void *p = carve_alloc(h, 300);
    assert_non_null(p);
    tu_fill(p, 5, 300);
    carve_heap *h2 = carve_attach(u.r.buf, HEAP_SIZE);
    assert_ptr_equal(h2, h);
    void *q = carve_alloc(h2, 200);
    assert_non_null(q);
    assert_int_equal(tu_verify(p, 5, 300), 300);
    ASSERT_STATUS(carve_free(h, q), CARVE_OK);
    ASSERT_STATUS(carve_free(h2, p), CARVE_OK);
    ASSERT_HEAP_SANE(h);
    uh_destroy(&u);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_version),
        cmocka_unit_test(test_init_null_buffer),
        cmocka_unit_test(test_init_too_small),
        cmocka_unit_test(test_init_unknown_flags),
        cmocka_unit_test(test_init_bad_policy),
        cmocka_unit_test(test_init_every_alignment),
        cmocka_unit_test(test_init_all_options),
        cmocka_unit_test(test_init_null_options_are_defaults),
        cmocka_unit_test(test_init_reformats),
        cmocka_unit_test(test_min_buffer_size),
        cmocka_unit_test(test_max_alloc_size),
        cmocka_unit_test(test_max_alloc_size_monotonic),
        cmocka_unit_test(test_attach_in_place),
        cmocka_unit_test(test_attach_after_copy),
        cmocka_unit_test(test_attach_copy_with_caches_in_use),
        cmocka_unit_test(test_attach_restored_snapshot_threads),
        cmocka_unit_test(test_thread_caches_beyond_four_heaps),
        cmocka_unit_test(test_slot_handed_out_again_unmarked),
        cmocka_unit_test(test_attach_keeps_policy),
        cmocka_unit_test(test_attach_null_and_tiny),
        cmocka_unit_test(test_attach_wrong_size),
        cmocka_unit_test(test_attach_garbage_zero_and_ones),
        cmocka_unit_test(test_attach_other_remainder),
        cmocka_unit_test(test_attach_corrupt_control_block),
        cmocka_unit_test(test_attach_damaged_blocks),
        cmocka_unit_test(test_attach_shared_in_use),
    };
    UH_RUN_GROUP("lifecycle", tests);
}
