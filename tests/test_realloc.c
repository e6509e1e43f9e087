/*
 * Unit tests: carve_realloc in every documented case.  Most run with
 * CARVE_NO_RUNS so every block has the documented header and neighbours;
 * slots in runs have their own test.
 */
#include "unit_util.h"

#define HEAP_SIZE (256u * 1024u)

static void test_realloc_null_is_alloc(void **state)
{
    (void)state;
    uh u;
    carve_heap *h = uh_make(&u, HEAP_SIZE, CARVE_GOOD_FIT, CARVE_NO_RUNS);
    void *p = carve_realloc(h, NULL, 100);
    assert_non_null(p);
    assert_true(tu_is_aligned(p, CARVE_ALIGNMENT));
    assert_true(carve_usable_size(h, p) >= 100);
    carve_stats st = uh_stats(h);
    assert_int_equal(st.used_bytes, tu_block_size(100));
    assert_int_equal(st.live_blocks, 1);
    assert_int_equal(st.allocs, 1);
    /* realloc(NULL, 0) is alloc(0): EINVAL. */
    carve_stats before = uh_stats(h);
    ASSERT_NULL_ERRNO(carve_realloc(h, NULL, 0), EINVAL);
    carve_stats after = uh_stats(h);
    ASSERT_STATS_SAME_BUT_FAILED(before, after);
    /* realloc(NULL, huge) is alloc(huge): ENOMEM. */
    ASSERT_NULL_ERRNO(carve_realloc(h, NULL, SIZE_MAX), ENOMEM);
    ASSERT_STATUS(carve_free(h, p), CARVE_OK);
    ASSERT_HEAP_SANE(h);
    uh_destroy(&u);
}

/* realloc(p, 0) frees p, returns NULL and leaves errno alone. */
static void test_realloc_zero_frees(void **state)
{
    (void)state;
    for (size_t pi = 0; pi < UH_NPOLICIES; pi++) {
        uh u;
        carve_heap *h = uh_make(&u, HEAP_SIZE, uh_policies[pi], CARVE_NO_RUNS);
        carve_stats fresh = uh_stats(h);
        void *keep = carve_alloc(h, 64);
        void *p = carve_alloc(h, 300);
        void *keep2 = carve_alloc(h, 64);
        assert_non_null(keep2);
        carve_stats before = uh_stats(h);
        errno = EDOM;
        void *r = carve_realloc(h, p, 0);
        assert_null(r);
        assert_int_equal(errno, EDOM);
        carve_stats after = uh_stats(h);
        assert_int_equal(after.live_blocks, before.live_blocks - 1);
        assert_int_equal(after.used_bytes, before.used_bytes - tu_block_size(300));
        assert_int_equal(after.frees, before.frees + 1);
        assert_int_equal(carve_usable_size(h, p), 0);
        ASSERT_STATUS(carve_free(h, p), CARVE_ERR_DOUBLE_FREE);
        ASSERT_STATUS(carve_free(h, keep), CARVE_OK);
        ASSERT_STATUS(carve_free(h, keep2), CARVE_OK);
        carve_stats back = uh_stats(h);
        ASSERT_SAME_SHAPE(fresh, back);
        ASSERT_HEAP_SANE(h);
        uh_destroy(&u);
    }
}

/* realloc(p, 0) is a free in every respect, also where a free is refused:
 * a small block freed into a thread cache (the solo cache of a heap
 * without a lock, a thread's own with the built-in lock) is free, so
 * realloc(p, 0) of it again is a double free (NULL, EINVAL) that changes
 * nothing, and the block is never handed out twice.  It used to free the
 * slot a second time behind the cache's back. */
static void test_realloc_zero_of_cached_slot(void **state)
{
    (void)state;
    static const unsigned flag_sets[] = {0, CARVE_THREADSAFE};
    for (size_t fi = 0; fi < 2; fi++) {
        uh u;
        carve_heap *h = uh_make(&u, 2 * CARVE_GCACHE_MIN_HEAP, CARVE_GOOD_FIT, flag_sets[fi]);
        unsigned char *keep = carve_alloc(h, 32);
        unsigned char *p = carve_alloc(h, 32);
        unsigned char *q = carve_alloc(h, 32);
        assert_non_null(keep);
        assert_non_null(p);
        assert_non_null(q);
        /* No statistics between the free and the realloc: reading them
         * empties the caches. */
        ASSERT_STATUS(carve_free(h, p), CARVE_OK); /* into the cache */
        ASSERT_NULL_ERRNO(carve_realloc(h, p, 0), EINVAL);
        ASSERT_STATUS(carve_check(h), CARVE_OK);
        errno = EDOM;
        assert_null(carve_realloc(h, q, 0)); /* into the cache too */
        assert_int_equal(errno, EDOM);
        ASSERT_NULL_ERRNO(carve_realloc(h, q, 0), EINVAL);
        ASSERT_STATUS(carve_free(h, q), CARVE_ERR_DOUBLE_FREE);
        ASSERT_STATUS(carve_check(h), CARVE_OK);
        unsigned char *a = carve_alloc(h, 32);
        unsigned char *b = carve_alloc(h, 32);
        assert_non_null(a);
        assert_non_null(b);
        assert_true(a != b && a != keep && b != keep);
        carve_stats st = uh_stats(h);
        assert_int_equal(st.live_blocks, 3);
        ASSERT_STATUS(carve_free(h, a), CARVE_OK);
        ASSERT_STATUS(carve_free(h, b), CARVE_OK);
        ASSERT_STATUS(carve_free(h, keep), CARVE_OK);
        ASSERT_HEAP_SANE(h);
        uh_destroy(&u);
    }
}

/* Shrinking keeps the pointer and the prefix, and gives the tail back. */
static void test_realloc_shrink_in_place(void **state)
{
    (void)state;
    for (size_t pi = 0; pi < UH_NPOLICIES; pi++) {
        uh u;
        carve_heap *h = uh_make(&u, HEAP_SIZE, uh_policies[pi], CARVE_NO_RUNS);
        unsigned char *p = carve_alloc(h, 1000);
        void *next = carve_alloc(h, 50); /* a live neighbour after p */
        assert_non_null(next);
        tu_fill(p, 77, 1000);
        carve_stats before = uh_stats(h);
        unsigned char *q = carve_realloc(h, p, 100);
        assert_ptr_equal(q, p);
        assert_int_equal(tu_verify(q, 77, 100), 100);
        assert_true(carve_usable_size(h, q) >= 100);
        carve_stats after = uh_stats(h);
        assert_int_equal(after.used_bytes,
                         before.used_bytes - tu_block_size(1000) + tu_block_size(100));
        assert_int_equal(after.live_blocks, before.live_blocks);
        ASSERT_HEAP_SANE(h);
        /* A shrink by less than a minimum block also keeps the pointer. */
        q = carve_realloc(h, p, 90);
        assert_ptr_equal(q, p);
        assert_int_equal(tu_verify(q, 77, 90), 90);
        /* Same size: same pointer. */
        q = carve_realloc(h, p, 90);
        assert_ptr_equal(q, p);
        /* Shrink next to a free neighbour: the tail merges with it. */
        ASSERT_STATUS(carve_free(h, next), CARVE_OK);
        unsigned char *big = carve_realloc(h, p, 5000);
        assert_non_null(big);
        tu_fill(big, 78, 5000);
        carve_stats b2 = uh_stats(h);
        q = carve_realloc(h, big, 64);
        assert_ptr_equal(q, big);
        assert_int_equal(tu_verify(q, 78, 64), 64);
        carve_stats a2 = uh_stats(h);
        assert_int_equal(a2.free_blocks, b2.free_blocks);
        ASSERT_HEAP_SANE(h);
        uh_destroy(&u);
    }
}

/* Growing keeps the pointer when the next block is free and large enough. */
static void test_realloc_grow_in_place(void **state)
{
    (void)state;
    for (size_t pi = 0; pi < UH_NPOLICIES; pi++) {
        uh u;
        carve_heap *h = uh_make(&u, HEAP_SIZE, uh_policies[pi], CARVE_NO_RUNS);
        unsigned char *p = carve_alloc(h, 100);
        void *gap = carve_alloc(h, 2000);
        void *wall = carve_alloc(h, 100);
        assert_non_null(wall);
        tu_fill(p, 5, 100);
        ASSERT_STATUS(carve_free(h, gap), CARVE_OK);
        /* Free neighbour between two live blocks. */
        unsigned char *q = carve_realloc(h, p, 1200);
        assert_ptr_equal(q, p);
        assert_int_equal(tu_verify(q, 5, 100), 100);
        assert_true(carve_usable_size(h, q) >= 1200);
        ASSERT_HEAP_SANE(h);
        /* The whole gap, exactly. */
        size_t all = tu_block_size(100) + tu_block_size(2000) - CARVE_BLOCK_OVERHEAD;
        q = carve_realloc(h, p, all);
        assert_ptr_equal(q, p);
        assert_int_equal(tu_verify(q, 5, 100), 100);
        ASSERT_HEAP_SANE(h);
        /* One byte more must move. */
        memset(q, 0x42, all);
        unsigned char *moved = carve_realloc(h, q, all + 1);
        assert_non_null(moved);
        assert_true(moved != q);
        for (size_t i = 0; i < all; i++)
            if (moved[i] != 0x42)
                fail_msg("byte %zu lost in the move", i);
        ASSERT_HEAP_SANE(h);
        /* Wherever it moved, if the block after it is free and large enough it
         * grows in place (the tail, when blocks are carved from the front). */
        size_t big = 50000;
        uw *w = uw_collect(h);
        const carve_block *mb = uw_find_payload(w, moved);
        assert_non_null(mb);
        int can_grow = mb + 1 < w->b + w->n && mb[1].kind == CARVE_BLOCK_FREE &&
                       mb->size + mb[1].size >= tu_block_size(big);
        free(w);
        unsigned char *t = carve_realloc(h, moved, big);
        assert_non_null(t);
        if (can_grow)
            assert_ptr_equal(t, moved);
        for (size_t i = 0; i < all; i++)
            if (t[i] != 0x42)
                fail_msg("byte %zu lost in a grow in place", i);
        ASSERT_HEAP_SANE(h);
        uh_destroy(&u);
    }
}

/* When the neighbour is live, realloc moves: contents preserved, the old
 * block freed. */
static void test_realloc_moves(void **state)
{
    (void)state;
    for (size_t pi = 0; pi < UH_NPOLICIES; pi++) {
        uh u;
        carve_heap *h = uh_make(&u, HEAP_SIZE, uh_policies[pi], CARVE_NO_RUNS);
        unsigned char *p = carve_alloc(h, 300);
        void *wall = carve_alloc(h, 16);
        assert_non_null(wall);
        tu_fill(p, 9, 300);
        carve_stats before = uh_stats(h);
        unsigned char *q = carve_realloc(h, p, 3000);
        assert_non_null(q);
        assert_true(q != p);
        assert_int_equal(tu_verify(q, 9, 300), 300);
        carve_stats after = uh_stats(h);
        assert_int_equal(after.live_blocks, before.live_blocks);
        assert_int_equal(after.used_bytes,
                         before.used_bytes - tu_block_size(300) + tu_block_size(3000));
        assert_int_equal(carve_usable_size(h, p), 0);
        ASSERT_HEAP_SANE(h);
        uh_destroy(&u);
    }
}

/* A realloc that cannot be met returns NULL/ENOMEM and leaves the block and
 * the heap exactly as they were. */
static void test_realloc_failure_keeps_block(void **state)
{
    (void)state;
    for (size_t pi = 0; pi < UH_NPOLICIES; pi++) {
        uh u;
        carve_heap *h = uh_make(&u, HEAP_SIZE, uh_policies[pi], CARVE_NO_RUNS);
        unsigned char *p = carve_alloc(h, 700);
        void *wall = carve_alloc(h, 16);
        assert_non_null(wall);
        size_t us = carve_usable_size(h, p);
        tu_fill(p, 31, us);
        carve_stats st = uh_stats(h);
        const size_t sizes[] = {
            SIZE_MAX,    SIZE_MAX - 7, SIZE_MAX - 16,       SIZE_MAX / 2,
            st.capacity, HEAP_SIZE,    st.largest_free + 1, st.free_bytes + us + 1};
        for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
            carve_stats before = uh_stats(h);
            errno = 0;
            void *q = carve_realloc(h, p, sizes[i]);
            if (q != NULL)
                fail_msg("realloc(%zu) succeeded on a heap of %zu", sizes[i], (size_t)HEAP_SIZE);
            assert_int_equal(errno, ENOMEM);
            carve_stats after = uh_stats(h);
            ASSERT_STATS_SAME_BUT_FAILED(before, after);
            assert_int_equal(carve_usable_size(h, p), us);
            assert_int_equal(tu_verify(p, 31, us), us);
        }
        ASSERT_HEAP_SANE(h);
        ASSERT_STATUS(carve_free(h, p), CARVE_OK);
        uh_destroy(&u);
    }
}

/* realloc of anything that is not a live block of this heap: NULL/EINVAL and
 * nothing changes, the pointer's bytes included. */
static void test_realloc_foreign_pointer(void **state)
{
    (void)state;
    for (int with_runs = 0; with_runs < 2; with_runs++) {
        const size_t size = with_runs ? 4 * CARVE_RUNS_MIN_HEAP : HEAP_SIZE;
        const unsigned flags = with_runs ? 0u : (unsigned)CARVE_NO_RUNS;
        uh u, other;
        carve_heap *h = uh_make(&u, size, CARVE_GOOD_FIT, flags);
        carve_heap *h2 = uh_make(&other, size, CARVE_GOOD_FIT, flags);
        unsigned char *a = carve_alloc(h, 200);
        unsigned char *b = carve_alloc(h, 200);
        unsigned char *c = carve_alloc(h, 200);
        unsigned char *elsewhere = carve_alloc(h2, 200);
        assert_non_null(c);
        assert_non_null(elsewhere);
        tu_fill(a, 1, 200);
        tu_fill(c, 3, 200);
        ASSERT_STATUS(carve_free(h, b), CARVE_OK); /* b: freed, not merged */
        unsigned char stack[64];
        memset(stack, 0x11, sizeof stack);
        void *heap_ptr = malloc(64);
        assert_non_null(heap_ptr);
        void *bad[] = {stack + 16,   heap_ptr,       a + 16,  a + 1,
                       a + 8,        c + 64,         b,       elsewhere,
                       u.r.buf - 32, u.r.buf + size, u.r.buf, u.r.buf + size - 16};
        carve_stats before = uh_stats(h);
        carve_stats before2 = uh_stats(h2);
        for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
            errno = 0;
            void *q = carve_realloc(h, bad[i], 100);
            if (q != NULL || errno != EINVAL)
                fail_msg("realloc(bad pointer #%zu) = %p errno %d, expected NULL/EINVAL", i, q,
                         errno);
            q = carve_realloc(h, bad[i], 0);
            assert_null(q);
            carve_stats after = uh_stats(h);
            const char *d = tu_stats_diff_but_failed(&before, &after);
            if (d != NULL)
                fail_msg("realloc(bad pointer #%zu) changed %s", i, d);
        }
        carve_stats after2 = uh_stats(h2);
        ASSERT_STATS_SAME(before2, after2);
        assert_int_equal(tu_verify(a, 1, 200), 200);
        assert_int_equal(tu_verify(c, 3, 200), 200);
        for (size_t i = 0; i < sizeof stack; i++)
            assert_int_equal(stack[i], 0x11);
        ASSERT_HEAP_SANE(h);
        ASSERT_HEAP_SANE(h2);
        free(heap_ptr);
        uh_destroy(&other);
        uh_destroy(&u);
    }
}

/* A block whose header was overwritten is refused by realloc with EIO and
 * never followed; restoring the header restores the heap. */
static void test_realloc_corrupt_header(void **state)
{
    (void)state;
    uh u;
    carve_heap *h = uh_make(&u, HEAP_SIZE, CARVE_GOOD_FIT, CARVE_NO_RUNS);
    unsigned char *a = carve_alloc(h, 200);
    unsigned char *b = carve_alloc(h, 200);
    unsigned char *c = carve_alloc(h, 200);
    assert_non_null(c);
    tu_fill(b, 2, 200);
    unsigned char saved[CARVE_BLOCK_OVERHEAD];
    memcpy(saved, b - CARVE_BLOCK_OVERHEAD, sizeof saved);
    carve_stats before = uh_stats(h);
    for (size_t i = 0; i < CARVE_BLOCK_OVERHEAD; i++) {
        b[(ptrdiff_t)i - (ptrdiff_t)CARVE_BLOCK_OVERHEAD] ^= 0x5A;
        /* The header's offset is a block boundary, so this is damage, not a
         * foreign pointer: EIO, as the header documents for corruption. */
        ASSERT_NULL_ERRNO(carve_realloc(h, b, 3000), EIO);
        ASSERT_NULL_ERRNO(carve_realloc(h, b, 10), EIO);
        carve_stats after = uh_stats(h);
        ASSERT_STATS_SAME_BUT_FAILED(before, after);
        memcpy(b - CARVE_BLOCK_OVERHEAD, saved, sizeof saved);
    }
    assert_int_equal(tu_verify(b, 2, 200), 200);
    ASSERT_HEAP_SANE(h);
    unsigned char *q = carve_realloc(h, b, 3000);
    assert_non_null(q);
    assert_int_equal(tu_verify(q, 2, 200), 200);
    (void)a;
    ASSERT_HEAP_SANE(h);
    uh_destroy(&u);
}

/* Random realloc chains keep contents, for every policy. */
static void test_realloc_chains(void **state)
{
    (void)state;
    for (size_t k = 0; k < 2 * UH_NPOLICIES; k++) {
        size_t pi = k % UH_NPOLICIES;
        uh u;
        carve_heap *h =
            uh_make(&u, HEAP_SIZE, uh_policies[pi], k < UH_NPOLICIES ? 0 : CARVE_NO_RUNS);
        carve_stats fresh = uh_stats(h);
        tu_rng rng;
        tu_rng_seed(&rng, 1234 + k);
        enum { N = 32 };
        unsigned char *p[N] = {0};
        size_t sz[N] = {0};
        for (int step = 0; step < 4000; step++) {
            size_t i = (size_t)tu_rng_below(&rng, N);
            size_t ns = tu_rng_log_uniform(&rng, 0, 13);
            unsigned char *q = carve_realloc(h, p[i], ns);
            if (q == NULL) {
                assert_int_equal(errno, ENOMEM);
                if (p[i] != NULL)
                    assert_int_equal(tu_verify(p[i], i * 7919 + sz[i], sz[i]), sz[i]);
                continue;
            }
            if (p[i] != NULL) {
                size_t keep = sz[i] < ns ? sz[i] : ns;
                assert_int_equal(tu_verify(q, i * 7919 + sz[i], keep), keep);
            }
            p[i] = q;
            sz[i] = ns;
            tu_fill(q, i * 7919 + ns, ns);
            if (step % 500 == 0)
                ASSERT_HEAP_SANE(h);
        }
        for (size_t i = 0; i < N; i++) {
            if (p[i] != NULL) {
                assert_int_equal(tu_verify(p[i], i * 7919 + sz[i], sz[i]), sz[i]);
                assert_null(carve_realloc(h, p[i], 0));
            }
        }
        carve_stats back = uh_stats(h);
        ASSERT_SAME_SHAPE(fresh, back);
        ASSERT_HEAP_SANE(h);
        uh_destroy(&u);
    }
}

/* Slots in runs: a request the slot holds keeps the pointer, a larger one
 * moves (to a larger slot or a block), contents kept; a general block shrunk
 * to a small size stays where it is. */
static void test_realloc_small_slots(void **state)
{
    (void)state;
    uh u;
    carve_heap *h = uh_make(&u, 4 * CARVE_RUNS_MIN_HEAP, CARVE_GOOD_FIT, 0);
    unsigned char *p = carve_alloc(h, 20);
    assert_non_null(p);
    size_t us = carve_usable_size(h, p);
    assert_int_equal(us, 32);
    tu_fill(p, 4, us);
    assert_ptr_equal(carve_realloc(h, p, 32), p);
    assert_ptr_equal(carve_realloc(h, p, 25), p);
    assert_ptr_equal(carve_realloc(h, p, 1), p); /* "shrinks in place" */
    assert_int_equal(tu_verify(p, 4, 1), 1);
    tu_fill(p, 4, us);
    unsigned char *q = carve_realloc(h, p, 200);
    assert_non_null(q);
    assert_int_equal(tu_verify(q, 4, 32), 32);
    assert_int_equal(carve_usable_size(h, p), 0);
    tu_fill(q, 5, 200);
    unsigned char *r = carve_realloc(h, q, 5000);
    assert_non_null(r);
    assert_int_equal(tu_verify(r, 5, 200), 200);
    tu_fill(r, 6, 5000);
    unsigned char *s = carve_realloc(h, r, 16);
    assert_ptr_equal(s, r);
    assert_int_equal(tu_verify(s, 6, 16), 16);
    carve_stats st = uh_stats(h);
    assert_int_equal(st.live_blocks, 1);
    assert_null(carve_realloc(h, s, 0));
    ASSERT_HEAP_SANE(h);
    uh_destroy(&u);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_realloc_null_is_alloc),
        cmocka_unit_test(test_realloc_zero_frees),
        cmocka_unit_test(test_realloc_zero_of_cached_slot),
        cmocka_unit_test(test_realloc_shrink_in_place),
        cmocka_unit_test(test_realloc_grow_in_place),
        cmocka_unit_test(test_realloc_moves),
        cmocka_unit_test(test_realloc_failure_keeps_block),
        cmocka_unit_test(test_realloc_foreign_pointer),
        cmocka_unit_test(test_realloc_corrupt_header),
        cmocka_unit_test(test_realloc_chains),
        cmocka_unit_test(test_realloc_small_slots),
    };
    UH_RUN_GROUP("realloc", tests);
}
