/*
 * Unit tests: carve_free's statuses and every bad pointer, overwritten headers
 * (carve_free, carve_check, carve_walk, carve_usable_size on them), and
 * carve_strerror.  Header tests run with CARVE_NO_RUNS so every block has the
 * header CARVE_BLOCK_OVERHEAD describes; slots in runs have their own test.
 */
#include <stdbool.h>

#include "unit_util.h"

#define HEAP_SIZE (128u * 1024u)

/* carve_free(h, NULL) does nothing, on every kind of heap: without runs,
 * and with runs and the front caches (whose fast path sends NULL, an
 * address below the heap, to the general path). */
static void test_free_null_is_ok(void **state)
{
    (void)state;
    const struct {
        size_t size;
        unsigned flags;
    } kinds[] = {{HEAP_SIZE, CARVE_NO_RUNS},
                 {2 * CARVE_GCACHE_MIN_HEAP, 0}, /* an arena past 4 MiB: the caches */
                 {2 * CARVE_GCACHE_MIN_HEAP, CARVE_THREADSAFE}};
    for (size_t k = 0; k < sizeof kinds / sizeof kinds[0]; k++) {
        uh u;
        carve_heap *h = uh_make(&u, kinds[k].size, CARVE_GOOD_FIT, kinds[k].flags);
        assert_non_null(carve_alloc(h, 10));
        assert_non_null(carve_alloc(h, 1000));
        carve_stats before = uh_stats(h);
        ASSERT_STATUS(carve_free(h, NULL), CARVE_OK);
        carve_stats after = uh_stats(h);
        ASSERT_STATS_SAME(before, after);
        ASSERT_HEAP_SANE(h);
        uh_destroy(&u);
    }
    int x;
    ASSERT_STATUS(carve_free(NULL, NULL), CARVE_ERR_INVALID);
    ASSERT_STATUS(carve_free(NULL, &x), CARVE_ERR_INVALID);
}

/* A block freed between two live neighbours, freed again: DOUBLE_FREE. */
static void test_double_free(void **state)
{
    (void)state;
    for (size_t pi = 0; pi < UH_NPOLICIES; pi++) {
        for (unsigned flags = 0; flags <= CARVE_POISON; flags += CARVE_POISON) {
            uh u;
            carve_heap *h = uh_make(&u, HEAP_SIZE, uh_policies[pi], flags | CARVE_NO_RUNS);
            void *a = carve_alloc(h, 100);
            void *b = carve_alloc(h, 100);
            void *c = carve_alloc(h, 100);
            assert_non_null(c);
            ASSERT_STATUS(carve_free(h, b), CARVE_OK);
            carve_stats before = uh_stats(h);
            ASSERT_STATUS(carve_free(h, b), CARVE_ERR_DOUBLE_FREE);
            ASSERT_STATUS(carve_free(h, b), CARVE_ERR_DOUBLE_FREE);
            carve_stats after = uh_stats(h);
            ASSERT_STATS_SAME(before, after);
            ASSERT_HEAP_SANE(h);
            /* b's memory is handed out again normally. */
            void *d = carve_alloc(h, 100);
            assert_non_null(d);
            if (uh_policies[pi] != CARVE_GOOD_FIT) /* the only exact fit, lowest too */
                assert_ptr_equal(d, b);
            ASSERT_STATUS(carve_free(h, a), CARVE_OK);
            ASSERT_STATUS(carve_free(h, c), CARVE_OK);
            ASSERT_STATUS(carve_free(h, d), CARVE_OK);
            ASSERT_HEAP_SANE(h);
            uh_destroy(&u);
        }
    }
}

/* Freed and since merged with a neighbour: DOUBLE_FREE or NOT_OWNED, and
 * nothing changes. */
static void test_double_free_after_merge(void **state)
{
    (void)state;
    for (size_t pi = 0; pi < UH_NPOLICIES; pi++) {
        uh u;
        carve_heap *h = uh_make(&u, HEAP_SIZE, uh_policies[pi], CARVE_NO_RUNS);
        void *a = carve_alloc(h, 100);
        void *b = carve_alloc(h, 100);
        void *c = carve_alloc(h, 100);
        void *d = carve_alloc(h, 100);
        assert_non_null(d);
        ASSERT_STATUS(carve_free(h, a), CARVE_OK);
        ASSERT_STATUS(carve_free(h, b), CARVE_OK); /* merges with a */
        ASSERT_STATUS(carve_free(h, c), CARVE_OK); /* merges with a+b */
        carve_stats before = uh_stats(h);
        void *again[] = {a, b, c};
        for (size_t i = 0; i < 3; i++) {
            int st = carve_free(h, again[i]);
            if (st != CARVE_ERR_DOUBLE_FREE && st != CARVE_ERR_NOT_OWNED)
                fail_msg("free of merged block #%zu returned %d (%s)", i, st, carve_strerror(st));
        }
        carve_stats after = uh_stats(h);
        ASSERT_STATS_SAME(before, after);
        ASSERT_HEAP_SANE(h);
        uh_destroy(&u);
    }
}

/* Interior, misaligned and foreign pointers: NOT_OWNED, nothing changes; the
 * heap must not read outside its buffer to find out (the guard zones are
 * poisoned under ASan and no-access under valgrind). */
static void test_free_not_owned(void **state)
{
    (void)state;
    for (size_t pi = 0; pi < UH_NPOLICIES; pi++) {
        uh u, other;
        carve_heap *h = uh_make(&u, HEAP_SIZE, uh_policies[pi], CARVE_NO_RUNS);
        carve_heap *h2 = uh_make(&other, HEAP_SIZE, uh_policies[pi], CARVE_NO_RUNS);
        unsigned char *a = carve_alloc(h, 500);
        unsigned char *b = carve_alloc(h, 500);
        unsigned char *foreign = carve_alloc(h2, 100);
        assert_non_null(b);
        assert_non_null(foreign);
        tu_fill(a, 1, 500);
        tu_fill(b, 2, 500);
        unsigned char stack[32];
        void *m = malloc(48);
        assert_non_null(m);
        carve_stats before = uh_stats(h);
        carve_stats before2 = uh_stats(h2);
        /* Interior pointers, aligned and not. */
        for (size_t off = 1; off < 500; off += (off < 40 ? 1 : 37)) {
            int st = carve_free(h, a + off);
            if (st != CARVE_ERR_NOT_OWNED)
                fail_msg("free(a + %zu) = %d (%s), expected NOT_OWNED", off, st,
                         carve_strerror(st));
        }
        /* Outside the heap. */
        void *outside[] = {stack,
                           m,
                           foreign,
                           u.r.buf - 8,
                           u.r.buf - 64,
                           u.r.buf + HEAP_SIZE,
                           u.r.buf + HEAP_SIZE + 16,
                           (void *)(uintptr_t)16,
                           (void *)(uintptr_t)(UINTPTR_MAX - 15)};
        for (size_t i = 0; i < sizeof outside / sizeof outside[0]; i++) {
            int st = carve_free(h, outside[i]);
            if (st != CARVE_ERR_NOT_OWNED)
                fail_msg("free(outside #%zu) = %d (%s), expected NOT_OWNED", i, st,
                         carve_strerror(st));
        }
        /* Inside the buffer but not a block: the control block, the first
         * bytes, the last bytes. */
        void *inside[] = {u.r.buf, u.r.buf + 16, u.r.buf + 64, u.r.buf + HEAP_SIZE - 16,
                          u.r.buf + HEAP_SIZE - 1};
        for (size_t i = 0; i < sizeof inside / sizeof inside[0]; i++) {
            int st = carve_free(h, inside[i]);
            if (st != CARVE_ERR_NOT_OWNED)
                fail_msg("free(inside #%zu) = %d (%s), expected NOT_OWNED", i, st,
                         carve_strerror(st));
        }
        carve_stats after = uh_stats(h);
        ASSERT_STATS_SAME(before, after);
        carve_stats after2 = uh_stats(h2);
        ASSERT_STATS_SAME(before2, after2);
        assert_int_equal(tu_verify(a, 1, 500), 500);
        assert_int_equal(tu_verify(b, 2, 500), 500);
        ASSERT_HEAP_SANE(h);
        ASSERT_STATUS(carve_free(h, a), CARVE_OK);
        ASSERT_STATUS(carve_free(h, b), CARVE_OK);
        ASSERT_STATUS(carve_free(h2, foreign), CARVE_OK);
        ASSERT_HEAP_SANE(h);
        free(m);
        uh_destroy(&other);
        uh_destroy(&u);
    }
}

/* A block whose own header was overwritten: free refuses it (CORRUPT, or
 * NOT_OWNED when the damage makes it indistinguishable from a foreign
 * pointer), nothing changes, carve_check and carve_walk report CORRUPT,
 * usable_size is 0, and restoring the header restores the heap. */
static void test_free_overwritten_header(void **state)
{
    (void)state;
    for (size_t pi = 0; pi < UH_NPOLICIES; pi++) {
        uh u;
        carve_heap *h = uh_make(&u, HEAP_SIZE, uh_policies[pi], CARVE_NO_RUNS);
        unsigned char *row[3];
        uh_alloc_row(h, 200, row);
        unsigned char *a = row[0], *b = row[1], *c = row[2];
        tu_fill(a, 1, 200);
        tu_fill(b, 2, 200);
        tu_fill(c, 3, 200);
        unsigned char *hdr = b - CARVE_BLOCK_OVERHEAD;
        unsigned char saved[CARVE_BLOCK_OVERHEAD];
        memcpy(saved, hdr, sizeof saved);
        size_t corrupt_status = 0;
        uw *w = (uw *)calloc(1, sizeof *w);
        assert_non_null(w);
        const unsigned char scribbles[] = {0x01, 0x80, 0x5A, 0xFF};
        for (size_t i = 0; i < CARVE_BLOCK_OVERHEAD; i++) {
            for (size_t k = 0; k < sizeof scribbles; k++) {
                carve_stats before = uh_stats(h);
                hdr[i] ^= scribbles[k];
                int st = carve_free(h, b);
                if (st == CARVE_ERR_CORRUPT)
                    corrupt_status++;
                else if (st != CARVE_ERR_NOT_OWNED)
                    fail_msg("free with header byte %zu ^ 0x%02x = %d (%s)", i, scribbles[k], st,
                             carve_strerror(st));
                ASSERT_STATUS(carve_check(h), CARVE_ERR_CORRUPT);
                w->n = 0;
                ASSERT_STATUS(carve_walk(h, uw_visit, w), CARVE_ERR_CORRUPT);
                assert_int_equal(carve_usable_size(h, b), 0);
                memcpy(hdr, saved, sizeof saved);
                carve_stats after = uh_stats(h);
                ASSERT_STATS_SAME(before, after);
                ASSERT_STATUS(carve_check(h), CARVE_OK);
            }
        }
        free(w);
        /* The header's promise: an overwritten header is reported as CORRUPT. */
        if (corrupt_status == 0)
            fail_msg("an overwritten header was never reported as CARVE_ERR_CORRUPT");
        assert_int_equal(tu_verify(a, 1, 200), 200);
        assert_int_equal(tu_verify(b, 2, 200), 200);
        assert_int_equal(tu_verify(c, 3, 200), 200);
        ASSERT_STATUS(carve_free(h, b), CARVE_OK);
        ASSERT_STATUS(carve_free(h, a), CARVE_OK);
        ASSERT_STATUS(carve_free(h, c), CARVE_OK);
        ASSERT_HEAP_SANE(h);
        uh_destroy(&u);
    }
}

/* Every one-bit change to a block's header fails its check for certain
 * (the check is a multiply by an odd constant with no run of 20 equal bits:
 * see hdr_check_bits), whichever bit and whichever block size: free refuses
 * the block, carve_check reports CORRUPT, and nothing changes. */
static void test_every_header_bit_checked(void **state)
{
    (void)state;
    uh u;
    carve_heap *h = uh_make(&u, (size_t)1 << 20, CARVE_GOOD_FIT, CARVE_NO_RUNS);
    const size_t sizes[] = {1, 24, 200, 4000, 70000};
    for (size_t si = 0; si < sizeof sizes / sizeof sizes[0]; si++) {
        unsigned char *a = carve_alloc(h, sizes[si]);
        unsigned char *b = carve_alloc(h, sizes[si]);
        unsigned char *c = carve_alloc(h, sizes[si]);
        assert_non_null(c);
        tu_fill(b, 7, sizes[si]);
        uint64_t word;
        unsigned char *hdr = b - CARVE_BLOCK_OVERHEAD;
        memcpy(&word, hdr, sizeof word);
        for (unsigned bit = 0; bit < 64; bit++) {
            carve_stats before = uh_stats(h);
            uint64_t bad = word ^ ((uint64_t)1 << bit);
            memcpy(hdr, &bad, sizeof bad);
            if (carve_check(h) != CARVE_ERR_CORRUPT)
                fail_msg("size %zu: header bit %u flipped, carve_check did not report it",
                         sizes[si], bit);
            int st = carve_free(h, b);
            if (st != CARVE_ERR_CORRUPT && st != CARVE_ERR_NOT_OWNED)
                fail_msg("size %zu: header bit %u flipped, free = %d (%s)", sizes[si], bit, st,
                         carve_strerror(st));
            memcpy(hdr, &word, sizeof word);
            carve_stats after = uh_stats(h);
            ASSERT_STATS_SAME(before, after);
        }
        ASSERT_STATUS(carve_check(h), CARVE_OK);
        assert_int_equal(tu_verify(b, 7, sizes[si]), sizes[si]);
        ASSERT_STATUS(carve_free(h, a), CARVE_OK);
        ASSERT_STATUS(carve_free(h, b), CARVE_OK);
        ASSERT_STATUS(carve_free(h, c), CARVE_OK);
    }
    ASSERT_HEAP_SANE(h);
    uh_destroy(&u);
}

/* A buffer overrun from one block into the next block's header: freeing the
 * block before it (which must look at its neighbour to coalesce) reports
 * CORRUPT and changes nothing. */
static void test_free_overrun_into_neighbour(void **state)
{
    (void)state;
    for (size_t pi = 0; pi < UH_NPOLICIES; pi++) {
        uh u;
        carve_heap *h = uh_make(&u, HEAP_SIZE, uh_policies[pi], CARVE_NO_RUNS);
        unsigned char *a = carve_alloc(h, 200);
        unsigned char *b = carve_alloc(h, 200);
        unsigned char *c = carve_alloc(h, 200);
        assert_non_null(c);
        uw *w = uw_collect(h);
        const carve_block *ba = uw_find_payload(w, a);
        assert_non_null(ba);
        assert_true(ba[1].payload == b); /* b follows a */
        free(w);
        size_t us = carve_usable_size(h, a);
        unsigned char *hdr = b - CARVE_BLOCK_OVERHEAD;
        assert_true(a + us <= hdr); /* the usable size stops at b's header */
        unsigned char saved[CARVE_BLOCK_OVERHEAD];
        memcpy(saved, hdr, sizeof saved);
        carve_stats before = uh_stats(h);
        memset(a, 0x41, us + CARVE_BLOCK_OVERHEAD); /* the classic overrun */
        ASSERT_STATUS(carve_free(h, a), CARVE_ERR_CORRUPT);
        int st = carve_free(h, b);
        assert_true(st == CARVE_ERR_CORRUPT || st == CARVE_ERR_NOT_OWNED);
        ASSERT_STATUS(carve_check(h), CARVE_ERR_CORRUPT);
        carve_stats after = uh_stats(h);
        ASSERT_STATS_SAME(before, after);
        /* Allocating on a corrupt heap never returns memory overlapping the
         * damaged header or outside the buffer. */
        for (int i = 0; i < 50; i++) {
            unsigned char *p = carve_alloc(h, 64);
            if (p == NULL)
                break;
            assert_true(tu_region_contains(&u.r, p, 64));
            assert_true(p + 64 <= hdr || p >= hdr + CARVE_BLOCK_OVERHEAD);
        }
        memcpy(hdr, saved, sizeof saved);
        ASSERT_STATUS(carve_check(h), CARVE_OK);
        ASSERT_STATUS(carve_free(h, a), CARVE_OK);
        ASSERT_STATUS(carve_free(h, b), CARVE_OK);
        ASSERT_HEAP_SANE(h);
        uh_destroy(&u);
    }
}

/* Three 200-byte blocks in a row: the first in *a (usable size *us), and
 * the header of the second, which follows it, returned. */
static unsigned char *row_header_after(carve_heap *h, unsigned char **a, size_t *us)
{
    unsigned char *row[3];
    uh_alloc_row(h, 200, row);
    *a = row[0];
    *us = carve_usable_size(h, row[0]);
    unsigned char *hdr = row[1] - CARVE_BLOCK_OVERHEAD;
    assert_true(row[0] + *us <= hdr); /* the second block's header follows the first */
    return hdr;
}

/* The same row with its first block freed: a free block (at *a, *us
 * usable bytes before) with the second block's header, returned, after it. */
static unsigned char *freed_block_before_header(carve_heap *h, unsigned char **a, size_t *us)
{
    unsigned char *hdr = row_header_after(h, a, us);
    ASSERT_STATUS(carve_free(h, *a), CARVE_OK);
    return hdr;
}

/* A realloc of a block whose neighbour's header was overwritten, either
 * way:
 *   - one that has to move the block: the move would free the block last,
 *     and that free would fail its check, so the damage is reported first
 *     (NULL, EIO); no copy is left behind;
 *   - one that shrinks it: giving the tail back would merge it with (or set
 *     a bit in) that neighbour, so the block keeps its size and the call
 *     succeeds, as realloc may when it shrinks.
 * Either way nothing changes and the block keeps its contents.  Once the
 * header is mended the same realloc moves the block, or gives the tail
 * back. */
static void test_realloc_next_to_damage(void **state)
{
    (void)state;
    static const size_t sizes[] = {4000, 40};
    for (size_t pi = 0; pi < UH_NPOLICIES; pi++) {
        for (size_t si = 0; si < 2; si++) {
            size_t size = sizes[si];
            bool moves = size == 4000;
            uh u;
            carve_heap *h = uh_make(&u, HEAP_SIZE, uh_policies[pi], CARVE_NO_RUNS);
            unsigned char *a;
            size_t us;
            unsigned char *hdr = row_header_after(h, &a, &us);
            size_t kept = size < us ? size : us;
            tu_fill(a, 13, us);
            unsigned char saved[CARVE_BLOCK_OVERHEAD];
            uh_damage_header(hdr, saved, 3);
            carve_stats before = uh_stats(h);
            errno = 0;
            unsigned char *q = carve_realloc(h, a, size);
            assert_ptr_equal(q, moves ? NULL : a);
            if (moves) {
                assert_int_equal(errno, EIO);
            }
            carve_stats after = uh_stats(h);
            ASSERT_STATS_SAME(before, after);
            assert_int_equal(carve_usable_size(h, a), us);
            assert_int_equal(tu_verify(a, 13, us), us);
            memcpy(hdr, saved, sizeof saved);
            ASSERT_STATUS(carve_check(h), CARVE_OK);
            q = carve_realloc(h, a, size);
            assert_non_null(q);
            assert_true(moves ? q != a : q == a && carve_usable_size(h, a) < us);
            assert_int_equal(tu_verify(q, 13, kept), kept);
            ASSERT_STATUS(carve_free(h, q), CARVE_OK);
            ASSERT_HEAP_SANE(h);
            uh_destroy(&u);
        }
    }
}

/* An allocation that takes a free block whole (too little would be left to
 * split off) must clear the PREV_FREE bit of the block after it, so it
 * reads that header first.  When a stray write has damaged it, the
 * allocation fails with EIO, leaves the free block where it was and
 * changes nothing else; once the header is mended the same request gets
 * the same block. */
static void test_alloc_whole_block_next_to_damage(void **state)
{
    (void)state;
    for (size_t pi = 0; pi < UH_NPOLICIES; pi++) {
        uh u;
        carve_heap *h = uh_make(&u, HEAP_SIZE, uh_policies[pi], CARVE_NO_RUNS);
        unsigned char *a;
        size_t us;
        unsigned char *hdr = freed_block_before_header(h, &a, &us);
        /* Every size that takes a's block whole, not just its own: a
         * request a granule smaller leaves too little to split off. */
        for (size_t size = us - 15u; size <= us; size += 15u) {
            unsigned char saved[CARVE_BLOCK_OVERHEAD];
            uh_damage_header(hdr, saved, 5);
            carve_stats before = uh_stats(h);
            ASSERT_NULL_ERRNO(carve_alloc(h, size), EIO);
            carve_stats after = uh_stats(h);
            ASSERT_STATS_SAME(before, after); /* failed_allocs too: no room was missing */
            ASSERT_STATUS(carve_check(h), CARVE_ERR_CORRUPT);
            memcpy(hdr, saved, sizeof saved);
            ASSERT_STATUS(carve_check(h), CARVE_OK);
            unsigned char *p = carve_alloc(h, size);
            assert_ptr_equal(p, a); /* the block stayed in the index */
            ASSERT_STATUS(carve_free(h, p), CARVE_OK);
        }
        ASSERT_HEAP_SANE(h);
        uh_destroy(&u);
    }
}

/* carve_aligned_alloc next to the same damage: every alignment and size
 * that picks the free block before the damaged header and would take it
 * to its end (the lead split off in front, too little left behind) fails
 * with EIO and changes not one byte of the buffer: the header is checked
 * before the lead is split off.  Those that leave a block's worth behind
 * never touch the damaged header and succeed. */
static void test_aligned_alloc_next_to_damage(void **state)
{
    (void)state;
    unsigned char *snapshot = malloc(HEAP_SIZE);
    assert_non_null(snapshot);
    for (size_t pi = 0; pi < UH_NPOLICIES; pi++) {
        uh u;
        carve_heap *h = uh_make(&u, HEAP_SIZE, uh_policies[pi], CARVE_NO_RUNS);
        unsigned char *a;
        size_t us;
        unsigned char *hdr = freed_block_before_header(h, &a, &us);
        unsigned refused = 0;
        for (size_t align = 32; align <= 128; align *= 2) {
            for (size_t size = 8; size <= us; size += 8) {
                unsigned char saved[CARVE_BLOCK_OVERHEAD];
                uh_damage_header(hdr, saved, 5);
                memcpy(snapshot, u.r.buf, HEAP_SIZE);
                errno = 0;
                void *p = carve_aligned_alloc(h, align, size);
                int err = errno;
                if (p == NULL) {
                    assert_int_equal(err, EIO);
                    if (memcmp(snapshot, u.r.buf, HEAP_SIZE) != 0)
                        fail_msg(
                            "policy %d: a failed carve_aligned_alloc(%zu, %zu) changed the heap",
                            (int)uh_policies[pi], align, size);
                    refused++;
                }
                memcpy(hdr, saved, sizeof saved);
                if (p != NULL)
                    ASSERT_STATUS(carve_free(h, p), CARVE_OK);
                ASSERT_STATUS(carve_check(h), CARVE_OK);
            }
        }
        assert_true(refused > 0); /* the case this test is for was met */
        ASSERT_HEAP_SANE(h);
        uh_destroy(&u);
    }
    free(snapshot);
}

/* A free block's header overwritten: carve_check reports it, freeing its
 * live neighbour (which would coalesce with it) reports CORRUPT. */
static void test_free_block_header_overwritten(void **state)
{
    (void)state;
    for (size_t pi = 0; pi < UH_NPOLICIES; pi++) {
        uh u;
        carve_heap *h = uh_make(&u, HEAP_SIZE, uh_policies[pi], CARVE_NO_RUNS);
        unsigned char *a = carve_alloc(h, 300);
        unsigned char *b = carve_alloc(h, 300);
        unsigned char *c = carve_alloc(h, 300);
        assert_non_null(c);
        ASSERT_STATUS(carve_free(h, b), CARVE_OK);
        unsigned char *hdr = b - CARVE_BLOCK_OVERHEAD;
        unsigned char saved[CARVE_BLOCK_OVERHEAD];
        memcpy(saved, hdr, sizeof saved);
        for (size_t i = 0; i < CARVE_BLOCK_OVERHEAD; i++) {
            hdr[i] ^= 0xA5;
            carve_stats before = uh_stats(h);
            ASSERT_STATUS(carve_check(h), CARVE_ERR_CORRUPT);
            int st = carve_free(h, a);
            if (st != CARVE_ERR_CORRUPT)
                fail_msg("free of the block before a damaged free block (byte %zu) = %d (%s)", i,
                         st, carve_strerror(st));
            st = carve_free(h, c);
            if (st != CARVE_ERR_CORRUPT)
                fail_msg("free of the block after a damaged free block (byte %zu) = %d (%s)", i, st,
                         carve_strerror(st));
            carve_stats after = uh_stats(h);
            ASSERT_STATS_SAME(before, after);
            memcpy(hdr, saved, sizeof saved);
            ASSERT_STATUS(carve_check(h), CARVE_OK);
        }
        ASSERT_STATUS(carve_free(h, a), CARVE_OK);
        ASSERT_STATUS(carve_free(h, c), CARVE_OK);
        ASSERT_HEAP_SANE(h);
        uh_destroy(&u);
    }
}

/* failed_allocs counts the requests that found no room (ENOMEM), not
 * those refused because the free block they reached failed its check
 * (EIO): raw, aligned and handle allocations alike.  A refused one
 * changes nothing at all. */
static void test_failed_allocs_counts_no_room_only(void **state)
{
    (void)state;
    for (size_t pi = 0; pi < UH_NPOLICIES; pi++) {
        uh u;
        carve_heap *h = uh_make(&u, HEAP_SIZE, uh_policies[pi], CARVE_NO_RUNS);
        unsigned char *a = carve_alloc(h, 100);
        unsigned char *b = carve_alloc(h, 100);
        unsigned char *rest = carve_alloc(h, uh_stats(h).largest_free);
        assert_non_null(b);
        assert_non_null(rest);
        ASSERT_STATUS(carve_free(h, a), CARVE_OK); /* the one free block */
        unsigned char saved[CARVE_BLOCK_OVERHEAD];
        uh_damage_header(a - CARVE_BLOCK_OVERHEAD, saved, 0);
        carve_stats before = uh_stats(h);
        ASSERT_NULL_ERRNO(carve_alloc(h, 100), EIO);
        ASSERT_NULL_ERRNO(carve_aligned_alloc(h, 32, 40), EIO);
        errno = 0;
        assert_int_equal(carve_halloc(h, 90), 0);
        assert_int_equal(errno, EIO);
        carve_stats after = uh_stats(h);
        ASSERT_STATS_SAME(before, after);
        ASSERT_NULL_ERRNO(carve_alloc(h, HEAP_SIZE), ENOMEM);
        after = uh_stats(h);
        assert_int_equal(after.failed_allocs, before.failed_allocs + 1);
        memcpy(a - CARVE_BLOCK_OVERHEAD, saved, sizeof saved);
        ASSERT_STATUS(carve_check(h), CARVE_OK);
        ASSERT_STATUS(carve_free(h, b), CARVE_OK);
        ASSERT_STATUS(carve_free(h, rest), CARVE_OK);
        ASSERT_HEAP_SANE(h);
        uh_destroy(&u);
    }
}

/* Whether [p, p + n) and [q, q + m) overlap. */
static bool ranges_overlap(const unsigned char *p, size_t n, const unsigned char *q, size_t m)
{
    return p < q + m && q < p + n;
}

/* The damaged link values test_free_list_links_overwritten writes. */
enum {
    LINK_GARBAGE,
    LINK_LAST_BYTES,
    LINK_LAST_BLOCK,
    LINK_LIVE_HEADER,
    LINK_INTERIOR,
    LINK_MISALIGNED,
    LINK_PAST_FREE,
    LINK_FORGED,
    LINK_CASES
};

enum { LINK_GAP = 300, LINK_GUARDS = 3 };

/* One case of test_free_list_links_overwritten: word 0 or 1 of the middle
 * listed free block becomes the value `kind` names. */
static void free_list_link_case(carve_policy policy, unsigned kind, unsigned word)
{
    uh u;
    carve_heap *h = uh_make(&u, HEAP_SIZE, policy, CARVE_NO_RUNS);
    unsigned char *freed[LINK_GUARDS], *guard[LINK_GUARDS];
    unsigned char expect[LINK_GUARDS][LINK_GAP];
    for (int i = 0; i < LINK_GUARDS; i++) {
        freed[i] = carve_alloc(h, LINK_GAP);
        guard[i] = carve_alloc(h, LINK_GAP);
        assert_non_null(guard[i]);
        memset(expect[i], 0x30 + i, LINK_GAP);
    }
    for (int i = 0; i < LINK_GUARDS; i++)
        ASSERT_STATUS(carve_free(h, freed[i]), CARVE_OK);
    /* freed[1] is listed between the other two (one class, one size). */
    const unsigned char *base = (const unsigned char *)h;
    const unsigned char *end = u.r.buf + u.r.size;
    uint64_t self = (uint64_t)(freed[1] - CARVE_BLOCK_OVERHEAD - base);
    uint64_t v;
    switch (kind) {
    case LINK_GARBAGE:
        v = UINT64_C(0xdeadbeefcafef00d);
        break;
    case LINK_LAST_BYTES:
        v = (uint64_t)(end - 16 - base);
        break;
    case LINK_LAST_BLOCK:
        v = (uint64_t)(end - 32 - base);
        break;
    case LINK_LIVE_HEADER:
        v = (uint64_t)(guard[1] - CARVE_BLOCK_OVERHEAD - base);
        break;
    case LINK_INTERIOR:
        v = self + 16u;
        break;
    case LINK_MISALIGNED:
        v = self + 4u;
        break;
    case LINK_PAST_FREE:
        v = (uint64_t)(freed[2] + LINK_GAP * 4 - base);
        break;
    default:
        /* A place inside a live block, aligned like a header, whose user
         * data links back to the damaged block as a list neighbour would:
         * only the header check stands between the heap and writing into
         * that block. */
        v = self + (uint64_t)(guard[2] - freed[1]) + 32u;
        memcpy(expect[2] + 32, &self, 8); /* its next link */
        memcpy(expect[2] + 40, &self, 8); /* its previous link */
        break;
    }
    for (int i = 0; i < LINK_GUARDS; i++)
        memcpy(guard[i], expect[i], LINK_GAP);
    uint64_t saved;
    memcpy(&saved, freed[1] + 8 * word, 8);
    assert_true(saved != v);
    memcpy(freed[1] + 8 * word, &v, 8);
    ASSERT_STATUS(carve_check(h), CARVE_ERR_CORRUPT);
    for (int i = 0; i < 8; i++) {
        size_t n = i % 2 ? LINK_GAP : 48;
        unsigned char *p = carve_alloc(h, n);
        if (p == NULL)
            continue;
        assert_true(tu_region_contains(&u.r, p, n));
        for (int g = 0; g < LINK_GUARDS; g++)
            assert_false(ranges_overlap(p, n, guard[g], LINK_GAP));
        memset(p, 0x77, n);
    }
    for (int g = 0; g < LINK_GUARDS; g++) {
        if (memcmp(guard[g], expect[g], LINK_GAP) != 0)
            fail_msg("policy %d link %u word %u: live block %d was written", (int)policy, kind,
                     word, g);
        int st = carve_free(h, guard[g]);
        if (st != CARVE_OK && st != CARVE_ERR_CORRUPT)
            fail_msg("policy %d link %u word %u: free of a live block = %d (%s)", (int)policy, kind,
                     word, st, carve_strerror(st));
    }
    uh_destroy(&u);
}

/* A write after free over the first 16 bytes of a free block, where the
 * free list keeps its links (offsets from the heap handle): whatever the
 * words become (garbage, the buffer's last bytes, a live block's header,
 * an interior or misaligned offset, a place past the free blocks, a forged
 * neighbour inside a live block), the heap never follows them.
 * carve_check reports the damage; allocations still return memory inside
 * the buffer that overlaps no live block; frees succeed or report CORRUPT;
 * live contents and the guard zones survive. */
static void test_free_list_links_overwritten(void **state)
{
    (void)state;
    for (size_t pi = 0; pi < UH_NPOLICIES; pi++)
        for (unsigned kind = 0; kind < LINK_CASES; kind++)
            for (unsigned word = 0; word < 2; word++)
                free_list_link_case(uh_policies[pi], kind, word);
}

/* The control block's own checksum: carve_check reports damage to it. */
static void test_check_control_block(void **state)
{
    (void)state;
    uh u;
    carve_heap *h = uh_make(&u, HEAP_SIZE, CARVE_GOOD_FIT, CARVE_NO_RUNS);
    assert_non_null(carve_alloc(h, 100));
    unsigned char *cb = (unsigned char *)h;
    unsigned char saved = cb[0];
    cb[0] ^= 0xFF;
    ASSERT_STATUS(carve_check(h), CARVE_ERR_CORRUPT);
    cb[0] = saved;
    ASSERT_STATUS(carve_check(h), CARVE_OK);
    uh_destroy(&u);
}

/* Slots in runs: double free, interior and misaligned pointers, pointers
 * into a run's own bytes, and a run whose header was overwritten. */
typedef struct meta_finder {
    size_t offset, size;
    int found;
} meta_finder;

static int find_meta(const carve_block *b, void *ctx)
{
    meta_finder *f = (meta_finder *)ctx;
    if (b->kind == CARVE_BLOCK_META && !f->found) {
        f->offset = b->offset;
        f->size = b->size;
        f->found = 1;
    }
    return 0;
}

static void test_free_slots(void **state)
{
    (void)state;
    for (size_t pi = 0; pi < UH_NPOLICIES; pi++) {
        uh u;
        carve_heap *h = uh_make(&u, 4 * CARVE_RUNS_MIN_HEAP, uh_policies[pi], 0);
        unsigned char *a = carve_alloc(h, 64);
        unsigned char *b = carve_alloc(h, 64);
        unsigned char *c = carve_alloc(h, 64);
        assert_non_null(c);
        assert_int_equal(carve_usable_size(h, a), 64);
        tu_fill(a, 1, 64);
        tu_fill(c, 3, 64);
        ASSERT_STATUS(carve_free(h, b), CARVE_OK);
        carve_stats before = uh_stats(h);
        ASSERT_STATUS(carve_free(h, b), CARVE_ERR_DOUBLE_FREE);
        for (size_t off = 1; off < 64; off++) {
            int st = carve_free(h, a + off);
            if (st != CARVE_ERR_NOT_OWNED)
                fail_msg("free(slot + %zu) = %d (%s), expected NOT_OWNED", off, st,
                         carve_strerror(st));
            assert_int_equal(carve_usable_size(h, a + off), 0);
        }
        meta_finder f = {0, 0, 0};
        ASSERT_STATUS(carve_walk(h, find_meta, &f), CARVE_OK);
        assert_true(f.found);
        unsigned char *meta = (unsigned char *)h + f.offset;
        for (size_t off = 0; off < f.size; off += 8) {
            int st = carve_free(h, meta + off);
            if (st != CARVE_ERR_NOT_OWNED)
                fail_msg("free(run metadata + %zu) = %d (%s), expected NOT_OWNED", off, st,
                         carve_strerror(st));
        }
        carve_stats after = uh_stats(h);
        ASSERT_STATS_SAME(before, after);
        ASSERT_HEAP_SANE(h);
        /* Overwrite each byte of the run's own metadata in turn.  Every call
         * on its slots either works (the byte was not one it relies on) or is
         * refused as CORRUPT/NOT_OWNED (realloc: EINVAL) and changes nothing.
         * The whole buffer is restored from a snapshot after each try. */
        unsigned char *snap = (unsigned char *)malloc(u.r.size);
        assert_non_null(snap);
        memcpy(snap, u.r.buf, u.r.size);
        size_t refused = 0;
        for (size_t off = 0; off < f.size && off < 128; off++) {
            meta[off] ^= 0x5A;
            int chk = carve_check(h);
            assert_true(chk == CARVE_OK || chk == CARVE_ERR_CORRUPT);
            before = uh_stats(h);
            int st = carve_free(h, a);
            if (st != CARVE_OK) {
                if (st != CARVE_ERR_CORRUPT && st != CARVE_ERR_NOT_OWNED)
                    fail_msg("free of a slot in a run with byte %zu damaged = %d (%s)", off, st,
                             carve_strerror(st));
                refused++;
                after = uh_stats(h);
                ASSERT_STATS_SAME(before, after);
            }
            errno = 0;
            unsigned char *q = carve_realloc(h, c, 500);
            if (q == NULL) {
                /* EIO when the run's header was hit, EINVAL when the slot no
                 * longer reads as live. */
                assert_true(errno == EIO || errno == EINVAL);
                assert_int_equal(tu_verify(c, 3, 64), 64);
            }
            memcpy(u.r.buf, snap, u.r.size);
            ASSERT_STATUS(carve_check(h), CARVE_OK);
        }
        free(snap);
        /* At least the bytes that identify the run must be relied on. */
        assert_true(refused >= 8);
        assert_int_equal(tu_verify(a, 1, 64), 64);
        assert_int_equal(tu_verify(c, 3, 64), 64);
        ASSERT_STATUS(carve_free(h, a), CARVE_OK);
        ASSERT_STATUS(carve_free(h, c), CARVE_OK);
        ASSERT_HEAP_SANE(h);
        uh_destroy(&u);
    }
}

/* A heap of 8 MiB (with the flags) in which *p, a 32-byte slot, sits in
 * a cache while every other slot of its run is free in the run, and a
 * later run is its class's current one. */
static carve_heap *slot_cached_alone_in_its_run(uh *u, unsigned flags, unsigned char **p)
{
    carve_heap *h = uh_make(u, (size_t)8 << 20, CARVE_GOOD_FIT, flags);
    enum { N = 300 }; /* more than one run of 32-byte slots holds */
    unsigned char *b[N];
    for (size_t i = 0; i < N; i++) {
        b[i] = carve_alloc(h, 32);
        assert_non_null(b[i]);
    }
    size_t first_run = (size_t)(b[0] - (unsigned char *)h) / 8192u;
    size_t last = 0;
    for (size_t i = 0; i < N; i++)
        if ((size_t)(b[i] - (unsigned char *)h) / 8192u == first_run)
            last = i;
    assert_true(last > 0 && last < N - 1u);
    for (size_t i = 0; i < last; i++)
        if ((size_t)(b[i] - (unsigned char *)h) / 8192u == first_run)
            ASSERT_STATUS(carve_free(h, b[i]), CARVE_OK);
    ASSERT_STATUS(carve_free(h, b[last]), CARVE_OK); /* the last, into the cache */
    *p = b[last];
    return h;
}

/* A second free, a realloc and a usable_size of that slot: each hands the
 * caches back first, which empties the run, and the run goes back to the
 * heap.  The slot was free all the same: the free reports a double free
 * and the realloc EINVAL, as for a slot still in its run (not the
 * NOT_OWNED and EIO of a pointer that never was a block), and the heap
 * ends as the same heap does without the call.  With and without the
 * lock, and without the general blocks' cache. */
static void test_second_free_of_cached_slot_whose_run_goes_back(void **state)
{
    (void)state;
    const unsigned flags[] = {0, CARVE_THREADSAFE, CARVE_NO_BLOCK_CACHE};
    for (size_t fi = 0; fi < sizeof flags / sizeof flags[0]; fi++) {
        uh ref_u;
        unsigned char *q;
        carve_heap *ref_h = slot_cached_alone_in_its_run(&ref_u, flags[fi], &q);
        carve_stats expected = uh_stats(ref_h);
        /* Each heap is detached before it goes: this thread's cache entry
         * for it is given up, so the tests after this one find entries
         * free (a thread keeps caches in at most 4 heaps). */
        ASSERT_STATUS(carve_detach(ref_h), CARVE_OK);
        uh_destroy(&ref_u);
        for (int call = 0; call < 3; call++) {
            uh u;
            unsigned char *p;
            carve_heap *h = slot_cached_alone_in_its_run(&u, flags[fi], &p);
            if (call == 0)
                ASSERT_STATUS(carve_free(h, p), CARVE_ERR_DOUBLE_FREE);
            else if (call == 1)
                ASSERT_NULL_ERRNO(carve_realloc(h, p, 100), EINVAL);
            else
                assert_int_equal(carve_usable_size(h, p), 0);
            /* peak_used_bytes is left out: it follows the blocks a cache
             * exchanges with the heap, and with CARVE_THREADSAFE whether
             * this thread has a cache in a heap depends on the heaps it
             * used before (at most 4 at a time). */
            carve_stats after = uh_stats(h);
            const char *d = tu_stats_diff(&expected, &after, 1);
            if (d != NULL)
                fail_msg("flags %#x: stats field %s changed", flags[fi], d);
            assert_int_equal(after.allocs, expected.allocs);
            assert_int_equal(after.frees, expected.frees);
            assert_int_equal(after.failed_allocs, expected.failed_allocs);
            ASSERT_HEAP_SANE(h);
            ASSERT_STATUS(carve_detach(h), CARVE_OK);
            uh_destroy(&u);
        }
    }
}

/* A freed small block sitting in a cache, written over (its first word,
 * where the cache's mark is) and then freed again: the second free cannot
 * be told from a first one once the mark is gone, and it puts the block in
 * the cache a second time.  It must still never be handed out twice: the
 * copy whose mark is gone is kept out of circulation.  With and without
 * the lock. */
/* A heap of 8 MiB (with the flags) whose small block *p was freed into
 * the cache, written over where the mark is, and freed again. */
static carve_heap *freed_written_freed(uh *u, unsigned flags, unsigned char **p)
{
    carve_heap *h = uh_make(u, (size_t)8 << 20, CARVE_GOOD_FIT, flags);
    *p = carve_alloc(h, 32);
    assert_non_null(*p);
    ASSERT_STATUS(carve_free(h, *p), CARVE_OK); /* into the cache */
    memset(*p, 'x', 8);                         /* the write after free */
    ASSERT_STATUS(carve_check(h), CARVE_ERR_CORRUPT);
    (void)carve_free(h, *p); /* not recognised: the mark is gone */
    return h;
}

static void test_write_after_free_then_free_again(void **state)
{
    (void)state;
    const unsigned flags[] = {0, CARVE_THREADSAFE};
    for (size_t fi = 0; fi < sizeof flags / sizeof flags[0]; fi++) {
        uh u;
        unsigned char *p;
        carve_heap *h = freed_written_freed(&u, flags[fi], &p);
        enum { N = 200 };
        unsigned char *b[N];
        for (size_t i = 0; i < N; i++) {
            b[i] = carve_alloc(h, 32);
            assert_non_null(b[i]);
            for (size_t j = 0; j < i; j++)
                assert_true(b[j] != b[i]);
            tu_fill(b[i], 300 + i, 32);
        }
        for (size_t i = 0; i < N; i++) {
            assert_int_equal(tu_verify(b[i], 300 + i, 32), 32);
            ASSERT_STATUS(carve_free(h, b[i]), CARVE_OK);
        }
        ASSERT_STATUS(carve_check(h), CARVE_OK);
        uh_destroy(&u);
    }
}

/* The same with the block handed out between the second free and the
 * next emptying of the caches: the other copy left in the cache has lost
 * its mark (the holder's allocation wiped it), so emptying the cache must
 * not give the slot back to its run, or the block would be handed out
 * again while its holder has it.  With and without the lock. */
static void test_write_after_free_then_free_again_then_drain(void **state)
{
    (void)state;
    const unsigned flags[] = {0, CARVE_THREADSAFE};
    for (size_t fi = 0; fi < sizeof flags / sizeof flags[0]; fi++) {
        uh u;
        unsigned char *p;
        carve_heap *h = freed_written_freed(&u, flags[fi], &p); /* in the cache twice */
        unsigned char *q = carve_alloc(h, 32);
        assert_true(q == p); /* the newest copy */
        tu_fill(q, 77, 32);
        carve_stats st;
        carve_get_stats(h, &st); /* empties the caches, the other copy too */
        enum { N = 600 };
        unsigned char **b = calloc(N, sizeof *b);
        assert_non_null(b);
        for (size_t i = 0; i < N; i++) {
            b[i] = carve_alloc(h, 32);
            assert_non_null(b[i]);
            assert_true(b[i] != q);
            tu_fill(b[i], 400 + i, 32);
        }
        assert_int_equal(tu_verify(q, 77, 32), 32);
        for (size_t i = 0; i < N; i++)
            ASSERT_STATUS(carve_free(h, b[i]), CARVE_OK);
        ASSERT_STATUS(carve_free(h, q), CARVE_OK);
        ASSERT_STATUS(carve_check(h), CARVE_OK);
        free(b);
        uh_destroy(&u);
    }
}

/* A slot a cache took from its run but never handed out (in a fresh heap,
 * the one right after the first allocation): it is free, so its usable
 * size is 0 and freeing it is a double free that changes nothing, and it
 * is never handed out twice; carve_check reports its mark overwritten.
 * With and without the lock. */
static void test_free_slot_never_handed_out(void **state)
{
    (void)state;
    const unsigned flags[] = {0, CARVE_THREADSAFE};
    for (size_t fi = 0; fi < sizeof flags / sizeof flags[0]; fi++) {
        uh u;
        carve_heap *h = uh_make(&u, (size_t)8 << 20, CARVE_GOOD_FIT, flags[fi]);
        carve_stats before = uh_stats(h);
        unsigned char *p = carve_alloc(h, 64);
        assert_non_null(p);
        tu_fill(p, 7, 64);
        /* A write after free over a cached slot's mark is damage. */
        uint64_t mark;
        memcpy(&mark, p + 64, sizeof mark);
        memset(p + 64, 0x11, sizeof mark);
        ASSERT_STATUS(carve_check(h), CARVE_ERR_CORRUPT);
        memcpy(p + 64, &mark, sizeof mark);
        ASSERT_STATUS(carve_check(h), CARVE_OK);
        assert_int_equal(carve_usable_size(h, p + 64), 0);
        ASSERT_STATUS(carve_free(h, p + 64), CARVE_ERR_DOUBLE_FREE);
        carve_stats after = uh_stats(h);
        assert_int_equal(after.live_blocks, before.live_blocks + 1);
        assert_int_equal(after.allocs, before.allocs + 1);
        assert_int_equal(after.frees, before.frees);
        /* Every block handed out from now on is distinct. */
        enum { N = 64 };
        unsigned char *b[N];
        for (size_t i = 0; i < N; i++) {
            b[i] = carve_alloc(h, 64);
            assert_non_null(b[i]);
            assert_true(b[i] != p);
            for (size_t j = 0; j < i; j++)
                assert_true(b[j] != b[i]);
            tu_fill(b[i], 100 + i, 64);
        }
        for (size_t i = 0; i < N; i++) {
            assert_int_equal(tu_verify(b[i], 100 + i, 64), 64);
            ASSERT_STATUS(carve_free(h, b[i]), CARVE_OK);
        }
        assert_int_equal(tu_verify(p, 7, 64), 64);
        ASSERT_STATUS(carve_free(h, p), CARVE_OK);
        ASSERT_HEAP_SANE(h);
        uh_destroy(&u);
    }
}

/* Every byte of a run's page, for every slot size: only the starts of the
 * slots the user holds read as live (carve_usable_size), and a free of any
 * other byte is refused and changes nothing.  Half the run's slots are
 * held, the others were freed (some sit in the cache). */
static void test_every_offset_of_a_run(void **state)
{
    (void)state;
    enum { RUN = 8192, MAX_SLOTS = 512 };
    for (size_t size = 16; size <= CARVE_SMALL_MAX; size += 16) {
        uh u;
        carve_heap *h = uh_make(&u, (size_t)8 << 20, CARVE_GOOD_FIT, 0);
        unsigned char *base = (unsigned char *)h;
        unsigned char *slot[MAX_SLOTS];
        size_t n = 0;
        slot[n++] = carve_alloc(h, size);
        assert_non_null(slot[0]);
        unsigned char *page = base + (((size_t)(slot[0] - base)) & ~(size_t)(RUN - 1));
        while (n < MAX_SLOTS) {
            unsigned char *q = carve_alloc(h, size);
            assert_non_null(q);
            if (q < page || q >= page + RUN) {
                ASSERT_STATUS(carve_free(h, q), CARVE_OK);
                break;
            }
            slot[n++] = q;
        }
        assert_true(n > 16);
        bool held[RUN] = {false};
        for (size_t i = 0; i < n; i++) {
            if (i % 2 == 0) {
                tu_fill(slot[i], i, size);
                held[slot[i] - page] = true;
            } else {
                ASSERT_STATUS(carve_free(h, slot[i]), CARVE_OK);
            }
        }
        carve_stats before = uh_stats(h);
        for (size_t off = 0; off < RUN; off++) {
            size_t usable = carve_usable_size(h, page + off);
            if (usable != (held[off] ? size : 0))
                fail_msg("size %zu: usable_size(page + %zu) = %zu", size, off, usable);
            if (!held[off]) {
                int st = carve_free(h, page + off);
                if (st != CARVE_ERR_NOT_OWNED && st != CARVE_ERR_DOUBLE_FREE)
                    fail_msg("size %zu: free(page + %zu) = %d (%s)", size, off, st,
                             carve_strerror(st));
            }
        }
        carve_stats after = uh_stats(h);
        ASSERT_STATS_SAME(before, after);
        for (size_t i = 0; i < n; i += 2) {
            assert_int_equal(tu_verify(slot[i], i, size), size);
            ASSERT_STATUS(carve_free(h, slot[i]), CARVE_OK);
        }
        ASSERT_HEAP_SANE(h);
        uh_destroy(&u);
    }
}

/* carve_strerror: a distinct non-empty sentence per status, "unknown status"
 * otherwise. */
/* The record of a heap's one cache lies outside the control block's
 * checksum, so a damaged image can hold a cached slot's offset that points
 * anywhere.  carve_check reports it; carve_attach, which validates what the
 * fast paths will follow, retires that record, and the allocations after
 * it stay inside the buffer (the first one read far outside it before: a
 * fault, or an ASan report).  A busy mark, which a heap with one user
 * never leaves, is damage too, and must not make a check or an attach
 * wait for ever. */
static void test_damaged_cache_record_at_attach(void **state)
{
    (void)state;
    const size_t size = 2 * CARVE_GCACHE_MIN_HEAP; /* an arena past 4 MiB: the cache */
    const uint64_t far[] = {(uint64_t)1 << 40, size + 64u, UINT64_MAX - 7u, 0};
    for (size_t k = 0; k < sizeof far / sizeof far[0]; k++) {
        uh u;
        carve_heap *h = uh_make(&u, size, CARVE_GOOD_FIT, 0);
        unsigned char *p = carve_alloc(h, 16);
        assert_non_null(p);
        uint64_t off = (uint64_t)(p - (unsigned char *)h);
        ASSERT_STATUS(carve_free(h, p), CARVE_OK); /* into the cache */
        unsigned char *word = NULL;
        for (unsigned char *w = (unsigned char *)h; w < p && word == NULL; w += 8) {
            uint64_t v;
            memcpy(&v, w, sizeof v);
            if (v == off)
                word = w;
        }
        assert_non_null(word); /* the cache holds p's offset */
        if (far[k] != 0) {
            memcpy(word, &far[k], sizeof far[k]);
        } else {
            /* The record's state word (its first), which holds its tag
             * while the record is in use: marked busy. */
            unsigned char *state_word = NULL;
            for (unsigned char *w = word; w >= (unsigned char *)h && state_word == NULL; w -= 8) {
                uint64_t a, b;
                memcpy(&a, w, sizeof a);
                memcpy(&b, w + 8, sizeof b);
                if (a != 0 && a == b && (a & 1u) == 0)
                    state_word = w; /* state == tag, side by side */
            }
            assert_non_null(state_word);
            state_word[0] |= 1u;
        }
        ASSERT_STATUS(carve_check(h), CARVE_ERR_CORRUPT);
        carve_heap *a = carve_attach(u.r.buf, size);
        assert_ptr_equal(a, h);
        ASSERT_STATUS(carve_check(a), CARVE_OK);
        for (unsigned i = 0; i < 100; i++) {
            unsigned char *q = carve_alloc(a, 16);
            assert_non_null(q);
            assert_true(q >= u.r.buf && q + 16 <= u.r.buf + size);
            q[0] = 1;
        }
        ASSERT_STATUS(carve_check(a), CARVE_OK);
        uh_destroy(&u);
    }
}

static void test_strerror(void **state)
{
    (void)state;
    const int all[] = {CARVE_OK,
                       CARVE_ERR_INVALID,
                       CARVE_ERR_NOMEM,
                       CARVE_ERR_NOT_OWNED,
                       CARVE_ERR_DOUBLE_FREE,
                       CARVE_ERR_PINNED,
                       CARVE_ERR_CORRUPT};
    const size_t n = sizeof all / sizeof all[0];
    for (size_t i = 0; i < n; i++) {
        const char *s = carve_strerror(all[i]);
        assert_non_null(s);
        assert_true(strlen(s) > 0);
        assert_string_not_equal(s, "unknown status");
        for (size_t j = 0; j < i; j++)
            assert_string_not_equal(s, carve_strerror(all[j]));
    }
    const int unknown[] = {-1, 7, 8, 100, -1000, 0x7fffffff, (int)0x80000000u};
    for (size_t i = 0; i < sizeof unknown / sizeof unknown[0]; i++)
        assert_string_equal(carve_strerror(unknown[i]), "unknown status");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_free_null_is_ok),
        cmocka_unit_test(test_double_free),
        cmocka_unit_test(test_double_free_after_merge),
        cmocka_unit_test(test_free_not_owned),
        cmocka_unit_test(test_free_overwritten_header),
        cmocka_unit_test(test_every_header_bit_checked),
        cmocka_unit_test(test_free_overrun_into_neighbour),
        cmocka_unit_test(test_realloc_next_to_damage),
        cmocka_unit_test(test_alloc_whole_block_next_to_damage),
        cmocka_unit_test(test_aligned_alloc_next_to_damage),
        cmocka_unit_test(test_free_block_header_overwritten),
        cmocka_unit_test(test_failed_allocs_counts_no_room_only),
        cmocka_unit_test(test_free_list_links_overwritten),
        cmocka_unit_test(test_check_control_block),
        cmocka_unit_test(test_free_slots),
        cmocka_unit_test(test_free_slot_never_handed_out),
        cmocka_unit_test(test_second_free_of_cached_slot_whose_run_goes_back),
        cmocka_unit_test(test_write_after_free_then_free_again),
        cmocka_unit_test(test_write_after_free_then_free_again_then_drain),
        cmocka_unit_test(test_every_offset_of_a_run),
        cmocka_unit_test(test_damaged_cache_record_at_attach),
        cmocka_unit_test(test_strerror),
    };
    UH_RUN_GROUP("errors", tests);
}
