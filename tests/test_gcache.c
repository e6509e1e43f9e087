/*
 * The front cache of freed general blocks (src/gcache.h), seen from the
 * public API: a freed block comes back to a request of nearly its size
 * (the newest of its class that holds the request),
 * a second free of a cached block is a double free, statistics, walks,
 * trimming and compaction see cached blocks as free, a neighbour grows in
 * place over one, damage to a cached block's header is reported and never
 * followed, and heaps that get no cache (other policies, small heaps,
 * CARVE_POISON) free at once.
 */
#include "unit_util.h"

#define CACHE_HEAP (8u << 20) /* large enough for a cache (GC_MIN_ARENA: 4 MiB) */
#define SMALL_HEAP (2u << 20)
#define BLOCK      1000u /* above the runs' sizes: a general block */

/* The walk's free blocks: how many, and the size of the one that starts
 * at offset `at` (0 when none does). */
typedef struct free_tally {
    size_t at;
    size_t blocks, size_at;
} free_tally;

static int tally_free(const carve_block *b, void *ctx)
{
    free_tally *t = (free_tally *)ctx;
    if (b->kind == CARVE_BLOCK_FREE) {
        t->blocks++;
        if (b->offset == t->at)
            t->size_at = b->size;
    }
    return 0;
}

/* The walk's offset of the block whose payload is p. */
static size_t offset_of_payload(const carve_heap *h, const void *p)
{
    return (size_t)((const unsigned char *)p - (const unsigned char *)h) - CARVE_BLOCK_OVERHEAD;
}

/* Frees a, then asks for a little less: whether the same block came back. */
static int freed_block_comes_back(carve_heap *h)
{
    unsigned char *a = carve_alloc(h, BLOCK);
    unsigned char *guard = carve_alloc(h, BLOCK);
    assert_non_null(a);
    assert_non_null(guard);
    ASSERT_STATUS(carve_free(h, a), CARVE_OK);
    unsigned char *b = carve_alloc(h, BLOCK - 10u);
    assert_non_null(b);
    int same = b == a;
    ASSERT_STATUS(carve_free(h, b), CARVE_OK);
    ASSERT_STATUS(carve_free(h, guard), CARVE_OK);
    ASSERT_STATUS(carve_check(h), CARVE_OK);
    return same;
}

/* In a GOOD_FIT heap of a few MiB a freed block is reused as it is, by a
 * request up to 1/16 smaller; its whole size stays usable. */
static void test_freed_block_comes_back(void **state)
{
    (void)state;
    uh u;
    carve_heap *h = uh_make(&u, CACHE_HEAP, CARVE_GOOD_FIT, 0);
    assert_true(freed_block_comes_back(h));
    unsigned char *a = carve_alloc(h, BLOCK);
    ASSERT_STATUS(carve_free(h, a), CARVE_OK);
    unsigned char *b = carve_alloc(h, BLOCK - BLOCK / 20u);
    assert_ptr_equal(b, a);
    assert_true(carve_usable_size(h, b) >= BLOCK);
    tu_fill(b, 5, carve_usable_size(h, b));
    ASSERT_STATUS(carve_free(h, b), CARVE_OK);
    /* A request much smaller than the cached block does not take it. */
    a = carve_alloc(h, 4u * BLOCK);
    ASSERT_STATUS(carve_free(h, a), CARVE_OK);
    b = carve_alloc(h, BLOCK);
    assert_ptr_not_equal(b, a);
    ASSERT_STATUS(carve_free(h, b), CARVE_OK);
    ASSERT_STATUS(carve_check(h), CARVE_OK);
    uh_destroy(&u);
}

/* The heaps without a cache: FIRST_FIT's and BEST_FIT's placement is their
 * promise, a small heap cannot spare the record, CARVE_POISON and
 * CARVE_SCRAMBLE want every free to take effect at once, and
 * CARVE_NO_BLOCK_CACHE asks for that.  The freed block
 * merges with the free space after it, so the smaller request is served
 * from elsewhere (GOOD_FIT) or from the start of the merged block. */
/* A request takes the newest cached block of its class that holds it, not
 * only the newest block: here the newest is too small and the one before it
 * fits.  With 8-byte headers and 16-byte granules, 1256 bytes take 79
 * granules and 1208 take 76, both in the class of 76..79 granules; a
 * request of 1240 bytes needs 78. */
static void test_fitting_block_behind_the_newest(void **state)
{
    (void)state;
    uh u;
    carve_heap *h = uh_make(&u, CACHE_HEAP, CARVE_GOOD_FIT, 0);
    unsigned char *big = carve_alloc(h, 1256u);
    unsigned char *guard1 = carve_alloc(h, BLOCK);
    unsigned char *small = carve_alloc(h, 1208u);
    unsigned char *guard2 = carve_alloc(h, BLOCK);
    assert_non_null(big);
    assert_non_null(guard1);
    assert_non_null(small);
    assert_non_null(guard2);
    ASSERT_STATUS(carve_free(h, big), CARVE_OK);
    ASSERT_STATUS(carve_free(h, small), CARVE_OK); /* the newest */
    unsigned char *p = carve_alloc(h, 1240u);
    assert_ptr_equal(p, big);
    assert_true(carve_usable_size(h, p) >= 1256u);
    unsigned char *q = carve_alloc(h, 1200u);
    assert_ptr_equal(q, small);
    ASSERT_STATUS(carve_check(h), CARVE_OK);
    ASSERT_STATUS(carve_free(h, p), CARVE_OK);
    ASSERT_STATUS(carve_free(h, q), CARVE_OK);
    ASSERT_STATUS(carve_free(h, guard1), CARVE_OK);
    ASSERT_STATUS(carve_free(h, guard2), CARVE_OK);
    ASSERT_STATUS(carve_check(h), CARVE_OK);
    uh_destroy(&u);
}

static void test_heaps_without_cache_free_at_once(void **state)
{
    (void)state;
    const struct {
        size_t size;
        carve_policy policy;
        unsigned flags;
    } cases[] = {
        {SMALL_HEAP, CARVE_GOOD_FIT, 0},
        {CACHE_HEAP, CARVE_GOOD_FIT, CARVE_POISON},
        {CACHE_HEAP, CARVE_GOOD_FIT, CARVE_SCRAMBLE},
        {CACHE_HEAP, CARVE_GOOD_FIT, CARVE_NO_BLOCK_CACHE},
        {CACHE_HEAP, CARVE_BEST_FIT, 0},
        {CACHE_HEAP, CARVE_FIRST_FIT, 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        uh u;
        carve_heap *h = uh_make(&u, cases[i].size, cases[i].policy, cases[i].flags);
        unsigned char *a = carve_alloc(h, BLOCK);
        unsigned char *b = carve_alloc(h, BLOCK);
        unsigned char *c = carve_alloc(h, BLOCK);
        assert_non_null(c);
        /* Freed at once, b merges with a into one free block.  (A walk
         * would hand cached blocks back too, so it is the allocation that
         * tells: a request for both fits at a.) */
        assert_ptr_equal(b, a + carve_usable_size(h, a) + CARVE_BLOCK_OVERHEAD);
        ASSERT_STATUS(carve_free(h, b), CARVE_OK);
        ASSERT_STATUS(carve_free(h, a), CARVE_OK);
        size_t both = 2u * carve_usable_size(h, c);
        unsigned char *d = carve_aligned_alloc(h, 16u, both);
        if (cases[i].policy != CARVE_GOOD_FIT)
            assert_ptr_equal(d, a); /* the lowest or the tightest fit is a */
        else if (d != a) {
            /* GOOD_FIT rounds up to a class it need not search: the block
             * at a is a free one of both blocks' size all the same. */
            free_tally t = {offset_of_payload(h, a), 0, 0};
            ASSERT_STATUS(carve_walk(h, tally_free, &t), CARVE_OK);
            assert_true(t.size_at >= both);
        }
        ASSERT_STATUS(carve_free(h, d), CARVE_OK);
        ASSERT_STATUS(carve_free(h, c), CARVE_OK);
        ASSERT_STATUS(carve_check(h), CARVE_OK);
        uh_destroy(&u);
    }
}

/* A cache heap holding one cached block, *a, with a live *guard after it. */
static carve_heap *heap_with_cached_block(uh *u, unsigned char **a, unsigned char **guard)
{
    carve_heap *h = uh_make(u, CACHE_HEAP, CARVE_GOOD_FIT, 0);
    *a = carve_alloc(h, BLOCK);
    *guard = carve_alloc(h, BLOCK);
    assert_non_null(*a);
    assert_non_null(*guard);
    ASSERT_STATUS(carve_free(h, *a), CARVE_OK);
    return h;
}

/* A cached block is freed as far as the caller can tell: a second free is
 * a double free, realloc and usable_size refuse it, and nothing changes. */
static void test_cached_block_double_free(void **state)
{
    (void)state;
    uh u;
    unsigned char *a, *guard;
    carve_heap *h = heap_with_cached_block(&u, &a, &guard);
    ASSERT_STATUS(carve_free(h, a), CARVE_ERR_DOUBLE_FREE);
    assert_int_equal(carve_usable_size(h, a), 0);
    errno = 0;
    assert_null(carve_realloc(h, a, 2u * BLOCK));
    assert_int_equal(errno, EINVAL);
    ASSERT_STATUS(carve_check(h), CARVE_OK);
    /* It is still the block the next request of its size gets. */
    assert_ptr_equal(carve_alloc(h, BLOCK), a);
    ASSERT_STATUS(carve_free(h, a), CARVE_OK);
    ASSERT_STATUS(carve_free(h, guard), CARVE_OK);
    ASSERT_STATUS(carve_check(h), CARVE_OK);
    uh_destroy(&u);
}

/* Statistics and walks read the heap as if every cached block were free:
 * after freeing everything they equal a fresh heap's, and the walk finds
 * one free block. */
static void test_stats_and_walk_see_cached_blocks_as_free(void **state)
{
    (void)state;
    uh u;
    carve_heap *h = uh_make(&u, CACHE_HEAP, CARVE_GOOD_FIT, 0);
    carve_stats fresh = uh_stats(h);
    enum { N = 200 };
    void *p[N];
    tu_rng rng;
    tu_rng_seed(&rng, 0x6cac4e);
    for (size_t i = 0; i < N; i++) {
        size_t size = tu_rng_range(&rng, 300u, 30000u);
        p[i] = carve_alloc(h, size);
        assert_non_null(p[i]);
    }
    for (size_t i = 0; i < N; i += 2)
        ASSERT_STATUS(carve_free(h, p[i]), CARVE_OK);
    carve_stats half = uh_stats(h);
    assert_int_equal(half.live_blocks, N / 2);
    assert_int_equal(half.frees, N / 2);
    assert_int_equal(half.used_bytes + half.free_bytes, fresh.used_bytes + fresh.free_bytes);
    for (size_t i = 1; i < N; i += 2)
        ASSERT_STATUS(carve_free(h, p[i]), CARVE_OK);
    carve_stats s = uh_stats(h);
    assert_int_equal(s.live_blocks, 0);
    assert_int_equal(s.used_bytes, fresh.used_bytes);
    assert_int_equal(s.free_bytes, fresh.free_bytes);
    assert_int_equal(s.largest_free, fresh.largest_free);
    assert_int_equal(s.free_blocks, fresh.free_blocks);
    assert_int_equal(s.allocs, N);
    assert_int_equal(s.frees, N);
    free_tally t = {0, 0, 0};
    /* Freed again (cached), then walked: the walk hands them back first. */
    void *q = carve_alloc(h, BLOCK);
    ASSERT_STATUS(carve_free(h, q), CARVE_OK);
    ASSERT_STATUS(carve_walk(h, tally_free, &t), CARVE_OK);
    assert_int_equal(t.blocks, fresh.free_blocks);
    ASSERT_STATUS(carve_check(h), CARVE_OK);
    uh_destroy(&u);
}

/* realloc grows in place over a cached neighbour, as over a free one. */
static void test_grow_over_cached_neighbour(void **state)
{
    (void)state;
    uh u;
    carve_heap *h = uh_make(&u, CACHE_HEAP, CARVE_GOOD_FIT, 0);
    unsigned char *a = carve_alloc(h, BLOCK);
    unsigned char *b = carve_alloc(h, BLOCK);
    unsigned char *c = carve_alloc(h, BLOCK);
    assert_non_null(c);
    assert_ptr_equal(b, a + carve_usable_size(h, a) + CARVE_BLOCK_OVERHEAD);
    tu_fill(a, 9, BLOCK);
    ASSERT_STATUS(carve_free(h, b), CARVE_OK);
    assert_ptr_equal(carve_realloc(h, a, 2u * BLOCK - 64u), a);
    assert_int_equal(tu_verify(a, 9, BLOCK), BLOCK);
    ASSERT_STATUS(carve_check(h), CARVE_OK);
    ASSERT_STATUS(carve_free(h, a), CARVE_OK);
    ASSERT_STATUS(carve_free(h, c), CARVE_OK);
    ASSERT_STATUS(carve_check(h), CARVE_OK);
    uh_destroy(&u);
}

/* A cached block whose header was overwritten: carve_check reports it, no
 * allocation hands it out or follows it, and a free of it is refused. */
static void test_damaged_cached_block(void **state)
{
    (void)state;
    uh u;
    unsigned char *a, *guard;
    carve_heap *h = heap_with_cached_block(&u, &a, &guard);
    a[-1] ^= 0x40; /* the header's check bits */
    ASSERT_STATUS(carve_check(h), CARVE_ERR_CORRUPT);
    unsigned char *b = carve_alloc(h, BLOCK);
    assert_ptr_not_equal(b, a);
    int st = carve_free(h, a);
    assert_true(st == CARVE_ERR_CORRUPT || st == CARVE_ERR_NOT_OWNED);
    ASSERT_STATUS(carve_check(h), CARVE_ERR_CORRUPT);
    uh_destroy(&u);
}

#define BIG_BLOCK 100000u /* a general block that is cached (under 128 KiB) */

/* Bytes a trim released inside [from, to). */
typedef struct span_sum {
    unsigned char *from, *to;
    size_t bytes;
} span_sum;

static void sum_inside(void *addr, size_t len, void *ctx)
{
    span_sum *s = (span_sum *)ctx;
    unsigned char *a = (unsigned char *)addr;
    unsigned char *lo = a > s->from ? a : s->from;
    unsigned char *hi = a + len < s->to ? a + len : s->to;
    if (hi > lo)
        s->bytes += (size_t)(hi - lo);
}

/* Compaction and trimming hand cached blocks back first: a cached block
 * is no barrier to either. */
static void test_compact_and_trim_empty_the_cache(void **state)
{
    (void)state;
    uh u;
    carve_heap *h = uh_make(&u, CACHE_HEAP, CARVE_GOOD_FIT, 0);
    carve_stats fresh = uh_stats(h);
    /* A handle block behind a cached raw block slides down over it. */
    unsigned char *a = carve_alloc(h, BLOCK);
    carve_handle hd = carve_halloc(h, BLOCK);
    assert_true(hd != 0);
    ASSERT_STATUS(carve_free(h, a), CARVE_OK);
    assert_true(carve_compact(h, SIZE_MAX) > 0);
    ASSERT_STATUS(carve_check(h), CARVE_OK);
    ASSERT_STATUS(carve_hfree(h, hd), CARVE_OK);
    /* A large cached block's inner pages are released like a free one's. */
    unsigned char *big = carve_alloc(h, BIG_BLOCK);
    unsigned char *guard = carve_alloc(h, BLOCK);
    assert_non_null(guard);
    ASSERT_STATUS(carve_free(h, big), CARVE_OK);
    span_sum in_big = {big, big + BIG_BLOCK, 0};
    assert_true(carve_trim(h, 4096u, 0, sum_inside, &in_big) > 0);
    assert_true(in_big.bytes >= BIG_BLOCK - 3u * 4096u);
    ASSERT_STATUS(carve_free(h, guard), CARVE_OK);
    carve_stats s = uh_stats(h);
    assert_int_equal(s.live_blocks, 0);
    assert_true(s.free_bytes > fresh.free_bytes - 2u * BLOCK); /* the table stays */
    ASSERT_STATUS(carve_check(h), CARVE_OK);
    uh_destroy(&u);
}

/* The payload of a general block of n granules (16 bytes each, 8 of them
 * the header). */
#define GRANULES(n) ((size_t)(n)*16u - CARVE_BLOCK_OVERHEAD)

/* A block grows in place over a cached neighbour that is the cache's last
 * block: handing it back releases the cache's record, which lies just
 * before the growing block, so the block's PREV_FREE bit changes on the
 * way and the grown header must carry the new one.  The heap: [a][record]
 * [b][n][g] with a taken back and n cached; b grows by realloc or, as a
 * handle block, by hresize. */
static void test_grow_over_cached_neighbour_releasing_the_record(void **state)
{
    (void)state;
    for (int handle = 0; handle < 2; handle++) {
        uh u;
        carve_heap *h = uh_make(&u, CACHE_HEAP, CARVE_GOOD_FIT, 0);
        if (handle) { /* the table first, out of the way */
            carve_handle t = carve_halloc(h, 16);
            assert_true(t != 0);
        }
        unsigned char *a = carve_alloc(h, 1000);
        assert_non_null(a);
        ASSERT_STATUS(carve_free(h, a), CARVE_OK); /* cached: the record is made after a */
        unsigned char *b = NULL;
        carve_handle hb = 0;
        if (handle) {
            hb = carve_halloc(h, 5000);
            assert_true(hb != 0);
        } else {
            b = carve_alloc(h, 5000);
            assert_non_null(b);
        }
        unsigned char *n = carve_alloc(h, 5000);
        assert_non_null(n);
        assert_non_null(carve_alloc(h, 5000));
        ASSERT_STATUS(carve_free(h, n), CARVE_OK); /* cached */
        assert_ptr_equal(carve_alloc(h, 1000), a); /* n is the last cached block */
        if (handle) {
            tu_fill(carve_pin(h, hb), 7, 5000);
            ASSERT_STATUS(carve_unpin(h, hb), CARVE_OK);
            ASSERT_STATUS(carve_hresize(h, hb, 9000), CARVE_OK);
            b = carve_pin(h, hb);
            ASSERT_STATUS(carve_unpin(h, hb), CARVE_OK);
        } else {
            tu_fill(b, 7, 5000);
            assert_ptr_equal(carve_realloc(h, b, 9000), b); /* in place */
        }
        assert_int_equal(tu_verify(b, 7, 5000), 5000);
        ASSERT_STATUS(carve_check(h), CARVE_OK);
        if (handle)
            ASSERT_STATUS(carve_hfree(h, hb), CARVE_OK);
        else
            ASSERT_STATUS(carve_free(h, b), CARVE_OK);
        ASSERT_STATUS(carve_check(h), CARVE_OK);
        uh_destroy(&u);
    }
}

/* The free that makes the cache's record: the record's allocation takes
 * the free block just before the freed block b whole, which clears b's
 * PREV_FREE bit, and b's cached header must carry that.  The heap holds
 * holes too small for the record and one free block p of about its size
 * just before b: the sizes of p tried include the record's exact size
 * (3212 granules now; see struct gcache). */
static void test_free_that_makes_the_record(void **state)
{
    (void)state;
    enum { HOLES = 70 };
    for (size_t pg = 3196; pg <= 3228; pg++) {
        uh u;
        carve_heap *h = uh_make(&u, CACHE_HEAP / 2u + 16384u, CARVE_GOOD_FIT, CARVE_NO_RUNS);
        void *hole[HOLES];
        for (size_t i = 0; i < HOLES; i++) {
            hole[i] = carve_alloc(h, GRANULES(3100));
            assert_non_null(hole[i]);
            assert_non_null(carve_alloc(h, 24));
        }
        unsigned char *p = carve_alloc(h, GRANULES(pg));
        unsigned char *b = carve_alloc(h, 24);
        assert_true(p != NULL && b != NULL);
        assert_non_null(carve_alloc(h, uh_stats(h).largest_free)); /* the rest */
        for (size_t i = 0; i < HOLES; i++)
            ASSERT_STATUS(carve_free(h, hole[i]), CARVE_OK);
        ASSERT_STATUS(carve_free(h, p), CARVE_OK);
        ASSERT_STATUS(carve_free(h, b), CARVE_OK); /* the record is made now */
        ASSERT_STATUS(carve_check(h), CARVE_OK);
        (void)uh_stats(h); /* hands b back to the index */
        ASSERT_STATUS(carve_check(h), CARVE_OK);
        uh_destroy(&u);
    }
}

/* The same free when making the record fails for want of room: the
 * failing allocation hands back the caches and an empty run, and the run
 * lies just before the freed block b, so b's PREV_FREE bit is set on the
 * way; the free that then releases b must use the new header, or two free
 * blocks end up side by side.  The heap: a run R (one live slot s), b just
 * after it, holes too small for the record, the rest full. */
static void test_free_when_making_the_record_reclaims(void **state)
{
    (void)state;
    enum { HOLES = 160 };
    uh u;
    carve_heap *h = uh_make(&u, CACHE_HEAP, CARVE_GOOD_FIT, 0);
    unsigned char *s = carve_alloc(h, 16);    /* makes the run */
    unsigned char *b = carve_alloc(h, 10000); /* after the run's block */
    assert_true(s != NULL && b != NULL);
    size_t run_page = (size_t)(s - (unsigned char *)h) & ~(size_t)8191u;
    assert_int_equal((size_t)(b - (unsigned char *)h) - CARVE_BLOCK_OVERHEAD,
                     run_page + 8192u + CARVE_BLOCK_OVERHEAD);
    for (;;) { /* what lies before the run goes too */
        unsigned char *q = carve_alloc(h, 300);
        assert_non_null(q);
        if (q > b)
            break;
    }
    void *hole[HOLES];
    for (size_t i = 0; i < HOLES; i++) {
        hole[i] = carve_alloc(h, GRANULES(3100));
        assert_non_null(hole[i]);
        assert_non_null(carve_alloc(h, 300));
    }
    assert_non_null(carve_alloc(h, uh_stats(h).largest_free)); /* the rest */
    for (size_t i = 0; i < HOLES; i++)
        ASSERT_STATUS(carve_free(h, hole[i]), CARVE_OK);
    ASSERT_STATUS(carve_free(h, s), CARVE_OK); /* the run's last live slot, into the cache */
    ASSERT_STATUS(carve_free(h, b), CARVE_OK);
    ASSERT_STATUS(carve_check(h), CARVE_OK);
    uh_destroy(&u);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_freed_block_comes_back),
        cmocka_unit_test(test_fitting_block_behind_the_newest),
        cmocka_unit_test(test_heaps_without_cache_free_at_once),
        cmocka_unit_test(test_cached_block_double_free),
        cmocka_unit_test(test_stats_and_walk_see_cached_blocks_as_free),
        cmocka_unit_test(test_grow_over_cached_neighbour),
        cmocka_unit_test(test_grow_over_cached_neighbour_releasing_the_record),
        cmocka_unit_test(test_free_that_makes_the_record),
        cmocka_unit_test(test_free_when_making_the_record_reclaims),
        cmocka_unit_test(test_damaged_cached_block),
        cmocka_unit_test(test_compact_and_trim_empty_the_cache),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
