/*
 * Unit tests: carve_alloc, carve_calloc, carve_aligned_alloc,
 * carve_usable_size, and the statistics they move (largest_free exactness,
 * freeing everything restores the fresh heap).
 */
#include "unit_util.h"

#define HEAP_SIZE (256u * 1024u)

static void test_alloc_basic(void **state)
{
    (void)state;
    for (size_t pi = 0; pi < UH_NPOLICIES; pi++) {
        uh u;
        carve_heap *h = uh_make(&u, HEAP_SIZE, uh_policies[pi], 0);
        void *ptrs[300];
        for (size_t s = 1; s <= 300; s++) {
            void *p = carve_alloc(h, s);
            assert_non_null(p);
            assert_true(tu_is_aligned(p, CARVE_ALIGNMENT));
            assert_true(tu_is_aligned(p, _Alignof(max_align_t)));
            size_t us = carve_usable_size(h, p);
            assert_true(us >= s);
            assert_true(tu_region_contains(&u.r, p, us));
            tu_fill(p, s, us);
            ptrs[s - 1] = p;
        }
        carve_stats st = uh_stats(h);
        assert_int_equal(st.live_blocks, 300);
        assert_int_equal(st.allocs, 300);
        ASSERT_HEAP_SANE(h);
        for (size_t s = 1; s <= 300; s++) {
            size_t us = carve_usable_size(h, ptrs[s - 1]);
            assert_int_equal(tu_verify(ptrs[s - 1], s, us), us);
            ASSERT_STATUS(carve_free(h, ptrs[s - 1]), CARVE_OK);
        }
        st = uh_stats(h);
        assert_int_equal(st.frees, 300);
        assert_int_equal(st.live_blocks, 0);
        ASSERT_HEAP_SANE(h);
        uh_destroy(&u);
    }
}

/* "A block's size is its request plus CARVE_BLOCK_OVERHEAD, rounded up to
 * CARVE_ALIGNMENT, and at least CARVE_MIN_BLOCK": used_bytes in a fresh heap
 * shows it, and the usable size is the block less its header. */
static void test_alloc_block_size_is_documented(void **state)
{
    (void)state;
    for (size_t pi = 0; pi < UH_NPOLICIES; pi++) {
        uh u;
        carve_heap *h = uh_make(&u, HEAP_SIZE, uh_policies[pi], CARVE_NO_RUNS);
        for (size_t s = 1; s <= 2048; s += (s < 80 ? 1 : 13)) {
            void *p = carve_alloc(h, s);
            assert_non_null(p);
            carve_stats st = uh_stats(h);
            if (st.used_bytes != tu_block_size(s))
                fail_msg("request %zu: used_bytes %zu, header promises a block of %zu", s,
                         st.used_bytes, tu_block_size(s));
            assert_int_equal(carve_usable_size(h, p), tu_block_size(s) - CARVE_BLOCK_OVERHEAD);
            ASSERT_STATUS(carve_free(h, p), CARVE_OK);
        }
        for (size_t s = 1; s <= 24; s++) {
            void *p = carve_alloc(h, s);
            carve_stats st = uh_stats(h);
            assert_int_equal(st.used_bytes, CARVE_MIN_BLOCK);
            ASSERT_STATUS(carve_free(h, p), CARVE_OK);
        }
        uh_destroy(&u);
    }
}

static void test_alloc_zero_is_einval(void **state)
{
    (void)state;
    uh u;
    carve_heap *h = uh_make(&u, HEAP_SIZE, CARVE_GOOD_FIT, 0);
    assert_non_null(carve_alloc(h, 10));
    carve_stats before = uh_stats(h);
    ASSERT_NULL_ERRNO(carve_alloc(h, 0), EINVAL);
    ASSERT_NULL_ERRNO(carve_calloc(h, 0, 8), EINVAL);
    ASSERT_NULL_ERRNO(carve_calloc(h, 8, 0), EINVAL);
    ASSERT_NULL_ERRNO(carve_calloc(h, 0, 0), EINVAL);
    ASSERT_NULL_ERRNO(carve_aligned_alloc(h, 64, 0), EINVAL);
    carve_stats after = uh_stats(h);
    ASSERT_STATS_SAME_BUT_FAILED(before, after);
    ASSERT_HEAP_SANE(h);
    uh_destroy(&u);
}

/* Every call with h == NULL reports a bad argument and touches nothing. */
static void test_null_heap(void **state)
{
    (void)state;
    int x = 0;
    ASSERT_NULL_ERRNO(carve_alloc(NULL, 8), EINVAL);
    ASSERT_NULL_ERRNO(carve_calloc(NULL, 1, 8), EINVAL);
    ASSERT_NULL_ERRNO(carve_realloc(NULL, NULL, 8), EINVAL);
    ASSERT_NULL_ERRNO(carve_realloc(NULL, &x, 8), EINVAL);
    ASSERT_NULL_ERRNO(carve_aligned_alloc(NULL, 64, 8), EINVAL);
    ASSERT_STATUS(carve_free(NULL, &x), CARVE_ERR_INVALID);
    assert_int_equal(carve_usable_size(NULL, &x), 0);
    carve_stats st;
    memset(&st, 0x77, sizeof st);
    carve_stats copy = st;
    carve_get_stats(NULL, &st);
    assert_memory_equal(&st, &copy, sizeof st);
    ASSERT_STATUS(carve_check(NULL), CARVE_ERR_INVALID);
    ASSERT_STATUS(carve_walk(NULL, uw_visit, NULL), CARVE_ERR_INVALID);
    carve_dump(NULL, stdout);
    carve_dump_ex(NULL, stdout, CARVE_DUMP_BLOCKS | CARVE_DUMP_HEX);
    uh u;
    carve_heap *h = uh_make(&u, HEAP_SIZE, CARVE_GOOD_FIT, 0);
    carve_get_stats(h, NULL); /* nothing happens */
    carve_dump(h, NULL);
    carve_dump_ex(h, NULL, CARVE_DUMP_HEX);
    ASSERT_HEAP_SANE(h);
    uh_destroy(&u);
}

/* Requests that cannot fit: ENOMEM, counted in failed_allocs, nothing else
 * changes.  Includes sizes whose header arithmetic would overflow. */
static void test_alloc_huge_is_enomem(void **state)
{
    (void)state;
    for (size_t pi = 0; pi < UH_NPOLICIES; pi++) {
        uh u;
        carve_heap *h = uh_make(&u, HEAP_SIZE, uh_policies[pi], 0);
        void *keep = carve_alloc(h, 1000);
        assert_non_null(keep);
        carve_stats st0 = uh_stats(h);
        const size_t huge[] = {SIZE_MAX,
                               SIZE_MAX - 1,
                               SIZE_MAX - 7,
                               SIZE_MAX - 8,
                               SIZE_MAX - 15,
                               SIZE_MAX - 16,
                               SIZE_MAX - CARVE_BLOCK_OVERHEAD,
                               SIZE_MAX - CARVE_MIN_BLOCK,
                               SIZE_MAX / 2,
                               SIZE_MAX / 2 + 1,
                               (size_t)UINT32_MAX,
                               (size_t)UINT32_MAX - 7u,
                               HEAP_SIZE,
                               st0.capacity,
                               st0.free_bytes,
                               st0.largest_free + 1};
        for (size_t i = 0; i < sizeof huge / sizeof huge[0]; i++) {
            carve_stats before = uh_stats(h);
            ASSERT_NULL_ERRNO(carve_alloc(h, huge[i]), ENOMEM);
            carve_stats after = uh_stats(h);
            const char *d = tu_stats_diff_but_failed(&before, &after);
            if (d != NULL)
                fail_msg("alloc(%zu): stats field %s changed", huge[i], d);
            assert_int_equal(after.failed_allocs, before.failed_allocs + 1);
            ASSERT_NULL_ERRNO(carve_aligned_alloc(h, 64, huge[i]), ENOMEM);
            ASSERT_NULL_ERRNO(carve_calloc(h, 1, huge[i]), ENOMEM);
            ASSERT_NULL_ERRNO(carve_calloc(h, huge[i], 1), ENOMEM);
            after = uh_stats(h);
            assert_null(tu_stats_diff_but_failed(&before, &after));
        }
        ASSERT_HEAP_SANE(h);
        /* Still fully usable. */
        void *p = carve_alloc(h, 5000);
        assert_non_null(p);
        ASSERT_STATUS(carve_free(h, p), CARVE_OK);
        ASSERT_STATUS(carve_free(h, keep), CARVE_OK);
        ASSERT_HEAP_SANE(h);
        uh_destroy(&u);
    }
}

/* ------------------------------------------------------------------------ */
/* calloc                                                                    */
/* ------------------------------------------------------------------------ */

static void test_calloc_zeroes(void **state)
{
    (void)state;
    for (size_t pi = 0; pi < UH_NPOLICIES; pi++) {
        uh u;
        carve_heap *h = uh_make(&u, HEAP_SIZE, uh_policies[pi], 0);
        /* Dirty the heap first so zeroes have to be written. */
        size_t cap = uh_stats(h).largest_free;
        void *d = carve_alloc(h, cap);
        assert_non_null(d);
        memset(d, 0xFF, cap);
        ASSERT_STATUS(carve_free(h, d), CARVE_OK);
        const size_t counts[] = {1, 3, 7, 100, 1000};
        const size_t sizes[] = {1, 8, 13, 64, 100};
        for (size_t i = 0; i < 5; i++) {
            for (size_t j = 0; j < 5; j++) {
                size_t n = counts[i] * sizes[j];
                unsigned char *p = carve_calloc(h, counts[i], sizes[j]);
                assert_non_null(p);
                assert_true(tu_is_aligned(p, CARVE_ALIGNMENT));
                assert_true(carve_usable_size(h, p) >= n);
                assert_true(tu_all_zero(p, n));
                memset(p, 0xAB, n);
                if ((i + j) % 2)
                    ASSERT_STATUS(carve_free(h, p), CARVE_OK);
            }
        }
        ASSERT_HEAP_SANE(h);
        uh_destroy(&u);
    }
}

static void test_calloc_overflow_is_enomem(void **state)
{
    (void)state;
    uh u;
    carve_heap *h = uh_make(&u, HEAP_SIZE, CARVE_GOOD_FIT, 0);
    assert_non_null(carve_alloc(h, 10));
    carve_stats before = uh_stats(h);
    const size_t half = SIZE_MAX / 2 + 1;
    const size_t root = (size_t)1 << (sizeof(size_t) * 4); /* root * root overflows to 0 */
    ASSERT_NULL_ERRNO(carve_calloc(h, half, 2), ENOMEM);
    ASSERT_NULL_ERRNO(carve_calloc(h, 2, half), ENOMEM);
    ASSERT_NULL_ERRNO(carve_calloc(h, SIZE_MAX, SIZE_MAX), ENOMEM);
    ASSERT_NULL_ERRNO(carve_calloc(h, root, root), ENOMEM);
    ASSERT_NULL_ERRNO(carve_calloc(h, root + 1, root - 1), ENOMEM); /* wraps to SIZE_MAX */
    ASSERT_NULL_ERRNO(carve_calloc(h, SIZE_MAX / 3 + 1, 3), ENOMEM);
    /* Products that fit in size_t but not in the heap. */
    ASSERT_NULL_ERRNO(carve_calloc(h, HEAP_SIZE, 2), ENOMEM);
    ASSERT_NULL_ERRNO(carve_calloc(h, 1024, 1024), ENOMEM);
    carve_stats after = uh_stats(h);
    assert_null(tu_stats_diff(&before, &after, 1));
    assert_int_equal(after.allocs, before.allocs);
    ASSERT_HEAP_SANE(h);
    uh_destroy(&u);
}

/* ------------------------------------------------------------------------ */
/* aligned_alloc                                                             */
/* ------------------------------------------------------------------------ */

static void test_aligned_bad_alignment(void **state)
{
    (void)state;
    uh u;
    carve_heap *h = uh_make(&u, HEAP_SIZE, CARVE_GOOD_FIT, 0);
    assert_non_null(carve_alloc(h, 10));
    carve_stats before = uh_stats(h);
    const size_t bad[] = {0,  3,  5,   6,    7,    12,       24,
                          48, 96, 100, 4095, 4097, SIZE_MAX, SIZE_MAX / 2 + 2};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        errno = 0;
        void *p = carve_aligned_alloc(h, bad[i], 64);
        if (p != NULL || errno != EINVAL)
            fail_msg("aligned_alloc(alignment %zu) = %p errno %d, expected NULL/EINVAL", bad[i], p,
                     errno);
    }
    carve_stats after = uh_stats(h);
    ASSERT_STATS_SAME_BUT_FAILED(before, after);
    assert_int_equal(after.failed_allocs, before.failed_allocs);
    uh_destroy(&u);
}

/* Alignments up to CARVE_ALIGNMENT cost nothing extra. */
static void test_aligned_small_alignments(void **state)
{
    (void)state;
    uh u;
    carve_heap *h = uh_make(&u, HEAP_SIZE, CARVE_GOOD_FIT, CARVE_NO_RUNS);
    for (size_t a = 1; a <= CARVE_ALIGNMENT; a *= 2) {
        void *p = carve_aligned_alloc(h, a, 40);
        assert_non_null(p);
        assert_true(tu_is_aligned(p, CARVE_ALIGNMENT));
        carve_stats st = uh_stats(h);
        assert_int_equal(st.used_bytes, tu_block_size(40));
        ASSERT_STATUS(carve_free(h, p), CARVE_OK);
    }
    uh_destroy(&u);
}

/* Alignments 32..64 KiB are honoured; the slack in front goes back to the free
 * index (at most `alignment` bytes spent, in practice less than a minimum
 * block), and freeing restores the fresh heap. */
static void test_aligned_honoured_and_slack_returned(void **state)
{
    (void)state;
    for (size_t pi = 0; pi < UH_NPOLICIES; pi++) {
        for (size_t m = 0; m < 64; m += 21) {
            uh u;
            carve_options o = uh_opts(uh_policies[pi], 0);
            carve_heap *h = uh_make_opts(&u, HEAP_SIZE, m, &o);
            carve_stats fresh = uh_stats(h);
            for (size_t a = 32; a <= 65536; a *= 2) {
                const size_t sizes[] = {1, 24, 25, 100, a - 8, a, a + 1, 3 * a};
                for (size_t si = 0; si < sizeof sizes / sizeof sizes[0]; si++) {
                    size_t s = sizes[si];
                    if (s + a > fresh.largest_free)
                        continue;
                    /* A misaligned block in front makes the slack real. */
                    void *pre = carve_alloc(h, 40);
                    assert_non_null(pre);
                    carve_stats before = uh_stats(h);
                    void *p = carve_aligned_alloc(h, a, s);
                    if (p == NULL)
                        fail_msg("aligned_alloc(%zu, %zu) failed, errno %d", a, s, errno);
                    assert_true(tu_is_aligned(p, a));
                    size_t us = carve_usable_size(h, p);
                    assert_true(us >= s);
                    assert_true(tu_region_contains(&u.r, p, us));
                    tu_fill(p, a + s, us);
                    carve_stats st = uh_stats(h);
                    size_t spent = st.used_bytes - before.used_bytes;
                    if (spent < tu_block_size(s) || spent > tu_block_size(s) + a)
                        fail_msg("aligned_alloc(%zu, %zu) took %zu bytes, block %zu", a, s, spent,
                                 tu_block_size(s));
                    /* Slack too small to be a free block (< CARVE_MIN_BLOCK) may stay
                     * with the block, in front and behind; anything larger goes back. */
                    if (spent >= tu_block_size(s) + 2 * CARVE_MIN_BLOCK)
                        fail_msg("aligned_alloc(%zu, %zu) kept %zu bytes of slack", a, s,
                                 spent - tu_block_size(s));
                    assert_int_equal(st.allocs, before.allocs + 1);
                    ASSERT_HEAP_SANE(h);
                    assert_int_equal(tu_verify(p, a + s, us), us);
                    ASSERT_STATUS(carve_free(h, p), CARVE_OK);
                    ASSERT_STATUS(carve_free(h, pre), CARVE_OK);
                    carve_stats back = uh_stats(h);
                    ASSERT_SAME_SHAPE(fresh, back);
                }
            }
            uh_destroy(&u);
        }
    }
}

/* Many aligned blocks at once: all aligned, none overlapping, all freed. */
static void test_aligned_many(void **state)
{
    (void)state;
    uh u;
    carve_heap *h = uh_make(&u, HEAP_SIZE, CARVE_GOOD_FIT, 0);
    carve_stats fresh = uh_stats(h);
    tu_rng rng;
    tu_rng_seed(&rng, 42);
    void *p[64];
    size_t a[64];
    for (size_t i = 0; i < 64; i++) {
        a[i] = (size_t)1 << tu_rng_range(&rng, 4, 11);
        size_t s = tu_rng_range(&rng, 1, 700);
        p[i] = carve_aligned_alloc(h, a[i], s);
        assert_non_null(p[i]);
        assert_true(tu_is_aligned(p[i], a[i]));
        tu_fill(p[i], i, carve_usable_size(h, p[i]));
    }
    ASSERT_HEAP_SANE(h);
    for (size_t i = 0; i < 64; i++) {
        size_t us = carve_usable_size(h, p[i]);
        assert_int_equal(tu_verify(p[i], i, us), us);
        ASSERT_STATUS(carve_free(h, p[i]), CARVE_OK);
    }
    carve_stats back = uh_stats(h);
    ASSERT_SAME_SHAPE(fresh, back);
    uh_destroy(&u);
}

/* An alignment larger than the heap is a valid argument that cannot fit. */
static void test_aligned_larger_than_heap(void **state)
{
    (void)state;
    uh u;
    carve_heap *h = uh_make(&u, HEAP_SIZE, CARVE_GOOD_FIT, 0);
    carve_stats before = uh_stats(h);
    ASSERT_NULL_ERRNO(carve_aligned_alloc(h, (size_t)1 << 24, 16), ENOMEM);
    carve_stats after = uh_stats(h);
    ASSERT_STATS_SAME_BUT_FAILED(before, after);
    before = after;
    ASSERT_NULL_ERRNO(carve_aligned_alloc(h, SIZE_MAX / 2 + 1, 16), ENOMEM);
    after = uh_stats(h);
    ASSERT_STATS_SAME_BUT_FAILED(before, after);
    ASSERT_HEAP_SANE(h);
    uh_destroy(&u);
}

/* Runs: in a heap of at least CARVE_RUNS_MIN_HEAP bytes, requests up to
 * CARVE_SMALL_MAX come from slots with no header (a 1..16 byte request takes
 * 16 bytes); CARVE_NO_RUNS, CARVE_POISON or a smaller heap turn them off. */
static size_t cost_of_second(carve_heap *h, size_t s)
{
    void *first = carve_alloc(h, s); /* may create a run */
    assert_non_null(first);
    carve_stats a = uh_stats(h);
    void *second = carve_alloc(h, s);
    assert_non_null(second);
    carve_stats b = uh_stats(h);
    ASSERT_STATUS(carve_free(h, second), CARVE_OK);
    ASSERT_STATUS(carve_free(h, first), CARVE_OK);
    return b.used_bytes - a.used_bytes;
}

static void test_small_requests_and_runs(void **state)
{
    (void)state;
    for (size_t pi = 0; pi < UH_NPOLICIES; pi++) {
        uh u;
        carve_heap *h = uh_make(&u, 4 * CARVE_RUNS_MIN_HEAP, uh_policies[pi], 0);
        carve_stats fresh = uh_stats(h);
        for (size_t s = 1; s <= CARVE_SMALL_MAX; s++) {
            size_t slot = (s + 15u) & ~(size_t)15u;
            void *p = carve_alloc(h, s);
            assert_non_null(p);
            assert_true(tu_is_aligned(p, CARVE_ALIGNMENT));
            assert_int_equal(carve_usable_size(h, p), slot);
            memset(p, 0x12, slot);
            assert_int_equal(cost_of_second(h, s), slot);
            ASSERT_STATUS(carve_free(h, p), CARVE_OK);
        }
        /* Just past the small sizes: a block with a header. */
        assert_int_equal(cost_of_second(h, CARVE_SMALL_MAX + 1),
                         tu_block_size(CARVE_SMALL_MAX + 1));
        ASSERT_HEAP_SANE(h);
        carve_stats back = uh_stats(h);
        ASSERT_SAME_SHAPE(fresh, back);
        uh_destroy(&u);
    }
    /* Runs off: every request gets a block of its own. */
    const struct {
        size_t size;
        unsigned flags;
    } off[] = {{4 * CARVE_RUNS_MIN_HEAP, CARVE_NO_RUNS},
               {4 * CARVE_RUNS_MIN_HEAP, CARVE_POISON},
               {CARVE_RUNS_MIN_HEAP - 1, 0}};
    for (size_t i = 0; i < sizeof off / sizeof off[0]; i++) {
        uh u;
        carve_heap *h = uh_make(&u, off[i].size, CARVE_GOOD_FIT, off[i].flags);
        for (size_t s = 1; s <= CARVE_SMALL_MAX; s += 7)
            assert_int_equal(cost_of_second(h, s), tu_block_size(s));
        uh_destroy(&u);
    }
    /* The threshold is inclusive. */
    uh u;
    carve_heap *h = uh_make(&u, CARVE_RUNS_MIN_HEAP, CARVE_GOOD_FIT, 0);
    assert_int_equal(cost_of_second(h, 16), 16);
    uh_destroy(&u);
}

/* Many small blocks: every slot distinct, contents kept, all freed. */
static void test_small_many(void **state)
{
    (void)state;
    for (size_t pi = 0; pi < UH_NPOLICIES; pi++) {
        uh u;
        carve_heap *h = uh_make(&u, 4 * CARVE_RUNS_MIN_HEAP, uh_policies[pi], 0);
        carve_stats fresh = uh_stats(h);
        enum { N = 3000 };
        unsigned char **p = (unsigned char **)calloc(N, sizeof *p);
        assert_non_null(p);
        tu_rng rng;
        tu_rng_seed(&rng, 77 + pi);
        for (size_t i = 0; i < N; i++) {
            size_t s = tu_rng_range(&rng, 1, CARVE_SMALL_MAX);
            p[i] = carve_alloc(h, s);
            assert_non_null(p[i]);
            tu_fill(p[i], i, carve_usable_size(h, p[i]));
        }
        ASSERT_HEAP_SANE(h);
        carve_stats st = uh_stats(h);
        assert_int_equal(st.live_blocks, N);
        for (size_t i = 0; i < N; i += 2) {
            size_t us = carve_usable_size(h, p[i]);
            assert_int_equal(tu_verify(p[i], i, us), us);
            ASSERT_STATUS(carve_free(h, p[i]), CARVE_OK);
        }
        ASSERT_HEAP_SANE(h);
        for (size_t i = 1; i < N; i += 2) {
            size_t us = carve_usable_size(h, p[i]);
            assert_int_equal(tu_verify(p[i], i, us), us);
            ASSERT_STATUS(carve_free(h, p[i]), CARVE_OK);
        }
        carve_stats back = uh_stats(h);
        ASSERT_SAME_SHAPE(fresh, back);
        ASSERT_HEAP_SANE(h);
        free(p);
        uh_destroy(&u);
    }
}

/* carve_check on a heap whose caches are in use (it only reads, so it must
 * take them as they are): the solo cache, and with the built-in lock a
 * thread cache whose runs are its own, some used up and partly freed again
 * (its own list of partial runs).  Every block keeps its contents, and
 * freeing everything brings back the fresh heap's shape. */
static void test_check_with_caches_in_use(void **state)
{
    (void)state;
    const unsigned flag_sets[] = {0, CARVE_THREADSAFE};
    enum { N = 4000 };
    unsigned char **p = (unsigned char **)calloc(N, sizeof *p);
    size_t *len = (size_t *)calloc(N, sizeof *len);
    assert_non_null(p);
    assert_non_null(len);
    for (size_t fi = 0; fi < sizeof flag_sets / sizeof flag_sets[0]; fi++) {
        uh u;
        carve_heap *h = uh_make(&u, 16u << 20, CARVE_GOOD_FIT, flag_sets[fi]);
        carve_stats fresh = uh_stats(h);
        tu_rng rng;
        tu_rng_seed(&rng, 300 + fi);
        for (size_t i = 0; i < N; i++) {
            /* Mostly two classes, so their runs fill up and are left. */
            len[i] = i % 8 ? 16 + 16 * (i % 2) : tu_rng_range(&rng, 1, 3000);
            p[i] = carve_alloc(h, len[i]);
            assert_non_null(p[i]);
            tu_fill(p[i], i, len[i]);
        }
        ASSERT_STATUS(carve_check(h), CARVE_OK);
        for (size_t i = 0; i < N; i += 3) { /* past the cache: flushes to the runs */
            ASSERT_STATUS(carve_free(h, p[i]), CARVE_OK);
            p[i] = NULL;
            if (i % 300 == 0)
                ASSERT_STATUS(carve_check(h), CARVE_OK);
        }
        ASSERT_STATUS(carve_check(h), CARVE_OK);
        for (size_t i = 0; i < N; i++)
            if (p[i] != NULL)
                assert_int_equal(tu_verify(p[i], i, len[i]), len[i]);
        ASSERT_HEAP_SANE(h);
        for (size_t i = 0; i < N; i++)
            if (p[i] != NULL)
                ASSERT_STATUS(carve_free(h, p[i]), CARVE_OK);
        carve_stats back = uh_stats(h);
        ASSERT_SAME_SHAPE(fresh, back);
        ASSERT_HEAP_SANE(h);
        uh_destroy(&u);
    }
    free(p);
    free(len);
}

/* ------------------------------------------------------------------------ */
/* usable_size                                                               */
/* ------------------------------------------------------------------------ */

static void test_usable_size(void **state)
{
    (void)state;
    uh u;
    carve_heap *h = uh_make(&u, HEAP_SIZE, CARVE_GOOD_FIT, 0);
    int local = 0;
    unsigned char *a = carve_alloc(h, 100);
    unsigned char *b = carve_alloc(h, 100);
    unsigned char *c = carve_alloc(h, 100);
    assert_non_null(c);
    size_t us = carve_usable_size(h, a);
    assert_true(us >= 100);
    memset(a, 0xFF, us); /* the whole usable size is the caller's */
    assert_int_equal(carve_usable_size(h, NULL), 0);
    assert_int_equal(carve_usable_size(h, &local), 0);
    assert_int_equal(carve_usable_size(h, u.r.buf - 16), 0);        /* guard zone */
    assert_int_equal(carve_usable_size(h, u.r.buf + HEAP_SIZE), 0); /* just past */
    assert_int_equal(carve_usable_size(h, u.r.buf), 0);             /* control block */
    assert_int_equal(carve_usable_size(h, b + 1), 0);
    assert_int_equal(carve_usable_size(h, b + 16), 0);
    assert_int_equal(carve_usable_size(h, b + 48), 0);
    ASSERT_STATUS(carve_free(h, b), CARVE_OK);
    assert_int_equal(carve_usable_size(h, b), 0); /* freed, neighbours live */
    assert_true(carve_usable_size(h, a) == us);
    ASSERT_HEAP_SANE(h);
    uh_destroy(&u);
}

/* ------------------------------------------------------------------------ */
/* Statistics moved by allocation                                            */
/* ------------------------------------------------------------------------ */

/* Builds a fragmented heap: blocks of varied sizes with every other freed. */
static void fragment(carve_heap *h, tu_rng *rng, void **keep, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        keep[i] = carve_alloc(h, tu_rng_range(rng, 1, 3000));
        assert_non_null(keep[i]);
    }
    for (size_t i = 0; i < n; i += 2) {
        ASSERT_STATUS(carve_free(h, keep[i]), CARVE_OK);
        keep[i] = NULL;
    }
}

/* largest_free is exact on fresh and fragmented heaps: that request succeeds,
 * one byte more fails with ENOMEM and changes nothing but failed_allocs. */
static void test_largest_free_is_exact(void **state)
{
    (void)state;
    for (size_t pi = 0; pi < UH_NPOLICIES; pi++) {
        for (uint64_t seed = 1; seed <= 6; seed++) {
            uh u;
            carve_heap *h = uh_make(&u, HEAP_SIZE, uh_policies[pi], 0);
            tu_rng rng;
            tu_rng_seed(&rng, seed);
            void *keep[120];
            size_t nkeep = seed == 1 ? 0 : 20 * (size_t)seed;
            fragment(h, &rng, keep, nkeep);
            /* Fill the tail so the largest free block is one of the holes. */
            if (seed > 3) {
                carve_stats s0 = uh_stats(h);
                void *tail = carve_alloc(h, s0.largest_free);
                assert_non_null(tail);
            }
            carve_stats before = uh_stats(h);
            if (before.largest_free == 0)
                continue;
            errno = 0;
            void *no = carve_alloc(h, before.largest_free + 1);
            if (no != NULL)
                fail_msg("policy %d seed %llu: largest_free %zu, but %zu+1 succeeded",
                         (int)uh_policies[pi], (unsigned long long)seed, before.largest_free,
                         before.largest_free);
            assert_int_equal(errno, ENOMEM);
            carve_stats mid = uh_stats(h);
            ASSERT_STATS_SAME_BUT_FAILED(before, mid);
            assert_int_equal(mid.failed_allocs, before.failed_allocs + 1);
            void *yes = carve_alloc(h, before.largest_free);
            if (yes == NULL)
                fail_msg("policy %d seed %llu: alloc(largest_free %zu) failed",
                         (int)uh_policies[pi], (unsigned long long)seed, before.largest_free);
            assert_true(tu_region_contains(&u.r, yes, before.largest_free));
            memset(yes, 0x3C, before.largest_free);
            ASSERT_HEAP_SANE(h);
            ASSERT_STATUS(carve_free(h, yes), CARVE_OK);
            carve_stats after = uh_stats(h);
            ASSERT_SAME_SHAPE(before, after);
            uh_destroy(&u);
        }
    }
}

/* Freeing everything, in any order, restores the fresh heap's shape. */
static void test_free_all_restores_fresh(void **state)
{
    (void)state;
    for (size_t pi = 0; pi < UH_NPOLICIES; pi++) {
        for (uint64_t seed = 1; seed <= 4; seed++) {
            uh u;
            carve_heap *h = uh_make(&u, HEAP_SIZE, uh_policies[pi], 0);
            carve_stats fresh = uh_stats(h);
            tu_rng rng;
            tu_rng_seed(&rng, seed * 1000 + pi);
            void *p[200];
            size_t n = 0;
            while (n < 200) {
                size_t s = tu_rng_log_uniform(&rng, 0, 12);
                void *q = n % 7 == 3   ? carve_aligned_alloc(h, 256, s)
                          : n % 7 == 5 ? carve_calloc(h, 2, s)
                                       : carve_alloc(h, s);
                if (q == NULL)
                    break;
                p[n++] = q;
            }
            assert_true(n > 20);
            ASSERT_HEAP_SANE(h);
            /* Shuffle, then free. */
            for (size_t i = n; i > 1; i--) {
                size_t j = (size_t)tu_rng_below(&rng, i);
                void *t = p[i - 1];
                p[i - 1] = p[j];
                p[j] = t;
            }
            for (size_t i = 0; i < n; i++) {
                ASSERT_STATUS(carve_free(h, p[i]), CARVE_OK);
                if (i % 16 == 0)
                    ASSERT_HEAP_SANE(h);
            }
            carve_stats back = uh_stats(h);
            ASSERT_SAME_SHAPE(fresh, back);
            assert_int_equal(back.allocs, n);
            assert_int_equal(back.frees, n);
            assert_true(back.peak_used_bytes > 0);
            ASSERT_HEAP_SANE(h);
            uh_destroy(&u);
        }
    }
}

/* Counters: allocs, frees, failed_allocs, peak_used_bytes. */
static void test_stats_counters(void **state)
{
    (void)state;
    uh u;
    carve_heap *h = uh_make(&u, HEAP_SIZE, CARVE_GOOD_FIT, 0);
    void *a = carve_alloc(h, 1000);
    void *b = carve_calloc(h, 10, 10);
    void *c = carve_aligned_alloc(h, 512, 10);
    carve_stats st = uh_stats(h);
    assert_int_equal(st.allocs, 3);
    assert_int_equal(st.frees, 0);
    assert_int_equal(st.live_blocks, 3);
    size_t peak = st.used_bytes;
    assert_int_equal(st.peak_used_bytes, peak);
    assert_null(carve_alloc(h, HEAP_SIZE * 2));
    st = uh_stats(h);
    assert_int_equal(st.failed_allocs, 1);
    ASSERT_STATUS(carve_free(h, a), CARVE_OK);
    ASSERT_STATUS(carve_free(h, b), CARVE_OK);
    st = uh_stats(h);
    assert_int_equal(st.frees, 2);
    assert_int_equal(st.live_blocks, 1);
    assert_int_equal(st.peak_used_bytes, peak);
    assert_true(st.used_bytes < peak);
    ASSERT_STATUS(carve_free(h, c), CARVE_OK);
    st = uh_stats(h);
    assert_int_equal(st.used_bytes, 0);
    assert_int_equal(st.peak_used_bytes, peak);
    uh_destroy(&u);
}

/* Immediate coalescing: freeing a block between two free neighbours leaves
 * one free block. */
static void test_coalescing(void **state)
{
    (void)state;
    for (size_t pi = 0; pi < UH_NPOLICIES; pi++) {
        uh u;
        carve_heap *h = uh_make(&u, HEAP_SIZE, uh_policies[pi], 0);
        void *a = carve_alloc(h, 500);
        void *b = carve_alloc(h, 500);
        void *c = carve_alloc(h, 500);
        void *d = carve_alloc(h, 500); /* keeps c away from the tail */
        assert_non_null(d);
        carve_stats s0 = uh_stats(h);
        ASSERT_STATUS(carve_free(h, a), CARVE_OK);
        ASSERT_STATUS(carve_free(h, c), CARVE_OK);
        carve_stats s1 = uh_stats(h);
        assert_int_equal(s1.free_blocks, s0.free_blocks + 2);
        ASSERT_STATUS(carve_free(h, b), CARVE_OK);
        carve_stats s2 = uh_stats(h);
        assert_int_equal(s2.free_blocks, s1.free_blocks - 1);
        assert_true(s2.largest_free >= 3 * tu_block_size(500) - CARVE_BLOCK_OVERHEAD);
        ASSERT_STATUS(carve_free(h, d), CARVE_OK);
        carve_stats s3 = uh_stats(h);
        assert_int_equal(s3.free_blocks, 1);
        ASSERT_HEAP_SANE(h);
        uh_destroy(&u);
    }
}

/* Which free block a request of `need` block bytes may take, from a walk:
 * the lowest-addressed that fits (FIRST_FIT's choice) and the smallest
 * that fits, the lowest-addressed of equals (BEST_FIT's). */
typedef struct fit_probe {
    size_t need;
    int any;
    size_t first_off;
    size_t best_off, best_size;
} fit_probe;

static int visit_fit(const carve_block *b, void *ctx)
{
    fit_probe *f = ctx;
    if (b->kind != CARVE_BLOCK_FREE || b->size < f->need)
        return 0;
    if (!f->any) {
        f->any = 1;
        f->first_off = b->offset;
        f->best_off = b->offset;
        f->best_size = b->size;
    } else if (b->size < f->best_size) {
        f->best_off = b->offset;
        f->best_size = b->size;
    }
    return 0;
}

/* FIRST_FIT hands out the lowest-addressed free block that fits and
 * BEST_FIT the smallest (lowest address on ties), whatever shortcuts
 * their searches take: every allocation of a random churn is checked
 * against a walk of the heap just before it. */
static void test_policy_picks_the_documented_block(void **state)
{
    (void)state;
    const carve_policy policies[] = {CARVE_FIRST_FIT, CARVE_BEST_FIT};
    for (size_t pi = 0; pi < 2; pi++) {
        uh u;
        carve_heap *h = uh_make(&u, HEAP_SIZE, policies[pi], CARVE_NO_RUNS);
        void *live[96] = {NULL};
        tu_rng rng;
        tu_rng_seed(&rng, 0x5eedu + pi);
        for (unsigned step = 0; step < 6000; step++) {
            size_t k = (size_t)tu_rng_below(&rng, 96);
            if (live[k] != NULL) {
                ASSERT_STATUS(carve_free(h, live[k]), CARVE_OK);
                live[k] = NULL;
                continue;
            }
            size_t n = tu_rng_log_uniform(&rng, 4, 12);
            fit_probe f = {tu_block_size(n), 0, 0, 0, 0};
            assert_int_equal(carve_walk(h, visit_fit, &f), 0);
            void *p = carve_alloc(h, n);
            if (!f.any) {
                assert_null(p); /* no free block fits: nothing else could serve it */
                continue;
            }
            size_t off = policies[pi] == CARVE_FIRST_FIT ? f.first_off : f.best_off;
            unsigned char *want = (unsigned char *)h + off + CARVE_BLOCK_OVERHEAD;
            if ((unsigned char *)p != want)
                fail_msg("%s, step %u: %zu bytes went to %p, not to the block at offset %zu (%p)",
                         policies[pi] == CARVE_FIRST_FIT ? "FIRST_FIT" : "BEST_FIT", step, n, p,
                         off, (void *)want);
            live[k] = p;
        }
        ASSERT_HEAP_SANE(h);
        uh_destroy(&u);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_alloc_basic),
        cmocka_unit_test(test_alloc_block_size_is_documented),
        cmocka_unit_test(test_alloc_zero_is_einval),
        cmocka_unit_test(test_null_heap),
        cmocka_unit_test(test_alloc_huge_is_enomem),
        cmocka_unit_test(test_calloc_zeroes),
        cmocka_unit_test(test_calloc_overflow_is_enomem),
        cmocka_unit_test(test_aligned_bad_alignment),
        cmocka_unit_test(test_aligned_small_alignments),
        cmocka_unit_test(test_aligned_honoured_and_slack_returned),
        cmocka_unit_test(test_aligned_many),
        cmocka_unit_test(test_aligned_larger_than_heap),
        cmocka_unit_test(test_small_requests_and_runs),
        cmocka_unit_test(test_small_many),
        cmocka_unit_test(test_check_with_caches_in_use),
        cmocka_unit_test(test_usable_size),
        cmocka_unit_test(test_largest_free_is_exact),
        cmocka_unit_test(test_free_all_restores_fresh),
        cmocka_unit_test(test_stats_counters),
        cmocka_unit_test(test_coalescing),
        cmocka_unit_test(test_policy_picks_the_documented_block),
    };
    UH_RUN_GROUP("alloc", tests);
}
