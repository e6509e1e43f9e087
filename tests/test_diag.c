/*
 * Unit tests: carve_get_stats, carve_check, carve_walk, carve_dump,
 * carve_dump_ex, CARVE_POISON, and the placement of each policy.
 */
#include <ctype.h>

#include "unit_util.h"

#define HEAP_SIZE (128u * 1024u)

/* ------------------------------------------------------------------------ */
/* Stats                                                                     */
/* ------------------------------------------------------------------------ */

/* capacity == used + free after every operation of a random sequence, and
 * the counters follow what happened. */
static void test_stats_invariants(void **state)
{
    (void)state;
    for (size_t pi = 0; pi < UH_NPOLICIES; pi++) {
        uh u;
        carve_heap *h = uh_make(&u, HEAP_SIZE, uh_policies[pi], 0);
        carve_stats fresh = uh_stats(h);
        assert_true(fresh.capacity <= HEAP_SIZE);
        tu_rng rng;
        tu_rng_seed(&rng, 99 + pi);
        void *p[64] = {0};
        uint64_t allocs = 0, frees = 0, failed = 0;
        size_t live = 0;
        for (int step = 0; step < 3000; step++) {
            size_t i = (size_t)tu_rng_below(&rng, 64);
            if (p[i] == NULL) {
                p[i] = carve_alloc(h, tu_rng_log_uniform(&rng, 0, 14));
                if (p[i] != NULL) {
                    allocs++;
                    live++;
                } else {
                    failed++;
                }
            } else {
                ASSERT_STATUS(carve_free(h, p[i]), CARVE_OK);
                p[i] = NULL;
                frees++;
                live--;
            }
            carve_stats st = uh_stats(h);
            assert_int_equal(st.capacity, fresh.capacity);
            assert_int_equal(st.used_bytes + st.free_bytes, st.capacity);
            assert_int_equal(st.live_blocks, live);
            assert_int_equal(st.allocs, allocs);
            assert_int_equal(st.frees, frees);
            assert_int_equal(st.failed_allocs, failed);
            assert_true(st.largest_free <= st.free_bytes);
            assert_true(st.peak_used_bytes >= st.used_bytes);
            assert_int_equal(st.live_handles, 0);
            assert_int_equal(st.pinned_handles, 0);
            assert_int_equal(st.compactions, 0);
            assert_int_equal(st.bytes_moved, 0);
            if (step % 100 == 0)
                ASSERT_HEAP_SANE(h);
        }
        uh_destroy(&u);
    }
}

/* ------------------------------------------------------------------------ */
/* Walk                                                                      */
/* ------------------------------------------------------------------------ */

/* Blocks come in address order, tile the capacity exactly, and describe the
 * live blocks the caller holds (without runs: every block has a header). */
static void test_walk_describes_heap(void **state)
{
    (void)state;
    for (size_t pi = 0; pi < UH_NPOLICIES; pi++) {
        uh u;
        carve_heap *h = uh_make(&u, HEAP_SIZE, uh_policies[pi], CARVE_NO_RUNS);
        void *p[40];
        for (size_t i = 0; i < 40; i++) {
            p[i] =
                i % 4 == 1 ? carve_aligned_alloc(h, 128, 50 + i * 13) : carve_alloc(h, 1 + i * 37);
            assert_non_null(p[i]);
        }
        for (size_t i = 0; i < 40; i += 3)
            ASSERT_STATUS(carve_free(h, p[i]), CARVE_OK);
        carve_stats st = uh_stats(h);
        uw *w = uw_collect(h);
        assert_int_equal(w->n, st.live_blocks + st.free_blocks);
        size_t sum = 0, used = 0, nfree = 0, nraw = 0;
        for (size_t i = 0; i < w->n; i++) {
            const carve_block *b = &w->b[i];
            if (i > 0)
                assert_int_equal(b->offset, w->b[i - 1].offset + w->b[i - 1].size);
            assert_true(b->size >= CARVE_MIN_BLOCK);
            assert_int_equal(b->size % CARVE_ALIGNMENT, 0);
            assert_int_equal(b->pinned, 0);
            sum += b->size;
            if (b->kind == CARVE_BLOCK_FREE) {
                nfree++;
                assert_null(b->payload);
                assert_int_equal(b->usable, 0);
                if (i > 0)
                    assert_true(w->b[i - 1].kind != CARVE_BLOCK_FREE); /* coalesced */
            } else {
                assert_int_equal(b->kind, CARVE_BLOCK_RAW);
                nraw++;
                used += b->size;
                assert_non_null(b->payload);
                assert_int_equal(b->usable, carve_usable_size(h, b->payload));
                assert_true(b->usable + CARVE_BLOCK_OVERHEAD <= b->size);
                assert_true(tu_region_contains(&u.r, b->payload, b->usable));
                assert_true(tu_is_aligned(b->payload, CARVE_ALIGNMENT));
                /* The payload sits inside the block the offset names. */
                size_t poff = (size_t)((unsigned char *)b->payload - (unsigned char *)h);
                assert_true(poff >= b->offset + CARVE_BLOCK_OVERHEAD);
                assert_true(poff + b->usable <= b->offset + b->size);
            }
        }
        assert_int_equal(sum, st.capacity);
        assert_int_equal(used, st.used_bytes);
        assert_int_equal(nfree, st.free_blocks);
        assert_int_equal(nraw, st.live_blocks);
        /* Every pointer we hold is there, every one we freed is not. */
        for (size_t i = 0; i < 40; i++) {
            const carve_block *b = uw_find_payload(w, p[i]);
            if (i % 3 == 0)
                assert_null(b);
            else
                assert_non_null(b);
        }
        /* The last block ends inside the buffer. */
        const carve_block *last = &w->b[w->n - 1];
        assert_true((unsigned char *)h + last->offset + last->size <= u.r.buf + HEAP_SIZE);
        free(w);
        uh_destroy(&u);
    }
}

/* With runs: the walk still tiles the capacity in address order; slots are
 * RAW or FREE blocks with no header, a run's own bytes are META blocks, and
 * the counts agree with the stats. */
static void test_walk_with_runs(void **state)
{
    (void)state;
    uh u;
    carve_heap *h = uh_make(&u, 4 * CARVE_RUNS_MIN_HEAP, CARVE_GOOD_FIT, 0);
    void *p[300];
    tu_rng rng;
    tu_rng_seed(&rng, 3);
    for (size_t i = 0; i < 300; i++) {
        p[i] = carve_alloc(h, i % 10 == 0 ? 1000 + i : tu_rng_range(&rng, 1, CARVE_SMALL_MAX));
        assert_non_null(p[i]);
    }
    for (size_t i = 0; i < 300; i += 3)
        ASSERT_STATUS(carve_free(h, p[i]), CARVE_OK);
    carve_stats st = uh_stats(h);
    uw *w = uw_collect(h);
    size_t sum = 0, used = 0, nraw = 0, nfree = 0, nmeta = 0;
    for (size_t i = 0; i < w->n; i++) {
        const carve_block *b = &w->b[i];
        if (i > 0)
            assert_int_equal(b->offset, w->b[i - 1].offset + w->b[i - 1].size);
        sum += b->size;
        switch (b->kind) {
        case CARVE_BLOCK_FREE:
            nfree++;
            assert_null(b->payload);
            break;
        case CARVE_BLOCK_RAW:
            nraw++;
            used += b->size;
            assert_non_null(b->payload);
            assert_int_equal(b->usable, carve_usable_size(h, b->payload));
            assert_true(tu_region_contains(&u.r, b->payload, b->usable));
            break;
        case CARVE_BLOCK_META:
            nmeta++;
            used += b->size;
            assert_null(b->payload);
            break;
        default:
            fail_msg("unexpected block kind %d", (int)b->kind);
        }
    }
    assert_true(nmeta > 0);
    assert_int_equal(sum, st.capacity);
    assert_int_equal(used, st.used_bytes);
    assert_int_equal(nraw, st.live_blocks);
    assert_int_equal(nfree, st.free_blocks);
    for (size_t i = 0; i < 300; i++) {
        const carve_block *b = uw_find_payload(w, p[i]);
        if (i % 3 == 0)
            assert_null(b);
        else
            assert_non_null(b);
    }
    free(w);
    ASSERT_HEAP_SANE(h);
    uh_destroy(&u);
}

typedef struct stopper {
    int calls;
    int stop_at;
    int value;
} stopper;

static int stop_visit(const carve_block *b, void *ctx)
{
    (void)b;
    stopper *s = (stopper *)ctx;
    s->calls++;
    return s->calls == s->stop_at ? s->value : 0;
}

static void test_walk_early_stop_and_args(void **state)
{
    (void)state;
    uh u;
    carve_heap *h = uh_make(&u, HEAP_SIZE, CARVE_GOOD_FIT, 0);
    for (int i = 0; i < 10; i++)
        assert_non_null(carve_alloc(h, 100));
    stopper s = {0, 3, 42};
    assert_int_equal(carve_walk(h, stop_visit, &s), 42);
    assert_int_equal(s.calls, 3);
    stopper s2 = {0, 1, -7};
    assert_int_equal(carve_walk(h, stop_visit, &s2), -7);
    assert_int_equal(s2.calls, 1);
    stopper s3 = {0, 1000, 1};
    ASSERT_STATUS(carve_walk(h, stop_visit, &s3), CARVE_OK);
    assert_int_equal(s3.calls, 11);
    ASSERT_STATUS(carve_walk(h, NULL, NULL), CARVE_ERR_INVALID);
    ASSERT_STATUS(carve_walk(NULL, stop_visit, &s), CARVE_ERR_INVALID);
    uh_destroy(&u);
}

/* ------------------------------------------------------------------------ */
/* Dump                                                                      */
/* ------------------------------------------------------------------------ */

typedef struct text {
    char *s;
    size_t len;
    size_t lines;
} text;

static text capture(carve_heap *h, unsigned flags, int use_plain_dump)
{
    FILE *f = tmpfile();
    assert_non_null(f);
    if (use_plain_dump)
        carve_dump(h, f);
    else
        carve_dump_ex(h, f, flags);
    long n = ftell(f);
    assert_true(n > 0);
    rewind(f);
    text t;
    t.len = (size_t)n;
    t.s = (char *)malloc(t.len + 1);
    assert_non_null(t.s);
    assert_int_equal(fread(t.s, 1, t.len, f), t.len);
    t.s[t.len] = '\0';
    fclose(f);
    t.lines = 0;
    for (size_t i = 0; i < t.len; i++)
        if (t.s[i] == '\n')
            t.lines++;
    return t;
}

static int contains_ci(const char *hay, const char *needle)
{
    size_t n = strlen(needle);
    for (; *hay; hay++) {
        size_t i = 0;
        while (i < n && hay[i] &&
               tolower((unsigned char)hay[i]) == tolower((unsigned char)needle[i]))
            i++;
        if (i == n)
            return 1;
    }
    return 0;
}

static void test_dump(void **state)
{
    (void)state;
    uh u;
    carve_heap *h = uh_make(&u, HEAP_SIZE, CARVE_GOOD_FIT, 0);
    void *p[8];
    for (int i = 0; i < 8; i++)
        p[i] = carve_alloc(h, (size_t)(100 + i * 50));
    ASSERT_STATUS(carve_free(h, p[2]), CARVE_OK);
    ASSERT_STATUS(carve_free(h, p[5]), CARVE_OK);
    carve_stats st = uh_stats(h);
    size_t nblocks1 = st.live_blocks + st.free_blocks;

    text full = capture(h, 0, 1);
    text ex = capture(h, CARVE_DUMP_BLOCKS, 0);
    text summary = capture(h, 0, 0);
    const char *words[] = {"capacity", "used", "free", "largest", "fragment"};
    for (size_t i = 0; i < sizeof words / sizeof words[0]; i++) {
        if (!contains_ci(full.s, words[i]))
            fail_msg("carve_dump output lacks \"%s\":\n%s", words[i], full.s);
        if (!contains_ci(summary.s, words[i]))
            fail_msg("carve_dump_ex(0) output lacks \"%s\"", words[i]);
    }
    /* carve_dump(h, out) is carve_dump_ex(h, out, CARVE_DUMP_BLOCKS). */
    assert_string_equal(full.s, ex.s);
    /* One line per block: the block section grows with the block count. */
    assert_true(full.lines >= summary.lines + nblocks1);
    size_t extra1 = full.lines - summary.lines - nblocks1;

    for (int i = 0; i < 8; i++)
        assert_non_null(carve_alloc(h, 40));
    st = uh_stats(h);
    size_t nblocks2 = st.live_blocks + st.free_blocks;
    assert_true(nblocks2 > nblocks1);
    text full2 = capture(h, CARVE_DUMP_BLOCKS, 0);
    text summary2 = capture(h, 0, 0);
    assert_true(full2.lines >= summary2.lines + nblocks2);
    size_t extra2 = full2.lines - summary2.lines - nblocks2;
    if (extra1 != extra2 || extra1 > 3)
        fail_msg("block section is not one line per block: %zu blocks -> %zu lines, %zu -> %zu",
                 nblocks1, full.lines - summary.lines, nblocks2, full2.lines - summary2.lines);

    /* The hex view shows a block's bytes. */
    unsigned char *mark = carve_alloc(h, 64);
    assert_non_null(mark);
    memset(mark, 0xAB, 64);
    text hex = capture(h, CARVE_DUMP_BLOCKS | CARVE_DUMP_HEX, 0);
    text nohex = capture(h, CARVE_DUMP_BLOCKS, 0);
    assert_true(hex.len > nohex.len);
    if (!contains_ci(hex.s, "ab ab ab ab") && !contains_ci(hex.s, "abababab"))
        fail_msg("hex dump does not show the bytes 0xAB of a block");

    free(full.s);
    free(ex.s);
    free(summary.s);
    free(full2.s);
    free(summary2.s);
    free(hex.s);
    free(nohex.s);
    ASSERT_HEAP_SANE(h);
    uh_destroy(&u);
}

/* Dump only reads: the heap is unchanged; a fresh, a full and a corrupt heap
 * all print without crashing. */
static void test_dump_edge_states(void **state)
{
    (void)state;
    uh u;
    carve_heap *h = uh_make(&u, HEAP_SIZE, CARVE_BEST_FIT, 0);
    carve_stats before = uh_stats(h);
    text t = capture(h, CARVE_DUMP_BLOCKS | CARVE_DUMP_HEX, 0);
    free(t.s);
    carve_stats after = uh_stats(h);
    ASSERT_STATS_SAME(before, after);
    /* Full heap: free_bytes may be 0 (fragmentation must not divide by 0). */
    void *all = carve_alloc(h, before.largest_free);
    assert_non_null(all);
    t = capture(h, CARVE_DUMP_BLOCKS | CARVE_DUMP_HEX, 0);
    free(t.s);
    ASSERT_STATUS(carve_free(h, all), CARVE_OK);
    /* Corrupt heap. */
    unsigned char *a = carve_alloc(h, 100);
    unsigned char *b = carve_alloc(h, 100);
    assert_non_null(b);
    b[-1] ^= 0xFF;
    t = capture(h, CARVE_DUMP_BLOCKS | CARVE_DUMP_HEX, 0);
    free(t.s);
    b[-1] ^= 0xFF;
    (void)a;
    ASSERT_HEAP_SANE(h);
    uh_destroy(&u);
}

/* ------------------------------------------------------------------------ */
/* Poison                                                                    */
/* ------------------------------------------------------------------------ */

/* With CARVE_POISON a write into a freed block is detected by carve_check,
 * and the damaged bytes are never handed out again, not even after its
 * neighbours are freed around it. */
static void test_poison_detects_write_after_free(void **state)
{
    (void)state;
    for (size_t pi = 0; pi < UH_NPOLICIES; pi++) {
        const size_t offsets[] = {0, 8, 100, 247};
        for (size_t oi = 0; oi < sizeof offsets / sizeof offsets[0]; oi++) {
            uh u;
            carve_heap *h = uh_make(&u, HEAP_SIZE, uh_policies[pi], CARVE_POISON);
            unsigned char *row[3];
            uh_alloc_row(h, 256, row);
            unsigned char *a = row[0], *b = row[1], *c = row[2];
            ASSERT_STATUS(carve_free(h, b), CARVE_OK);
            ASSERT_HEAP_SANE(h);
            unsigned char *bad = b + offsets[oi];
            *bad ^= 0x5A; /* use after free */
            ASSERT_STATUS(carve_check(h), CARVE_ERR_CORRUPT);
            /* Freeing the neighbours (which would merge with the damaged
             * block) either works or is refused as CORRUPT: a write over
             * the free block's links leaves nothing safe to merge with. */
            int st;
            if (oi % 2) {
                st = carve_free(h, a);
                assert_true(st == CARVE_OK || st == CARVE_ERR_CORRUPT);
            }
            st = carve_free(h, c);
            assert_true(st == CARVE_OK || st == CARVE_ERR_CORRUPT);
            /* Take everything the heap will give, in varied sizes. */
            tu_rng rng;
            tu_rng_seed(&rng, oi);
            for (int i = 0; i < 100000; i++) {
                size_t s = i < 64 ? 248 : tu_rng_log_uniform(&rng, 0, 10);
                unsigned char *p = carve_alloc(h, s);
                if (p == NULL) {
                    if (s <= 16)
                        break;
                    continue;
                }
                size_t us = carve_usable_size(h, p);
                if (bad >= p && bad < p + us)
                    fail_msg("policy %d: the poisoned-and-damaged byte came back in a block of %zu",
                             (int)uh_policies[pi], s);
            }
            uh_destroy(&u);
        }
    }
}

/* A damaged free block that an allocation finds is quarantined there and
 * the allocation is served elsewhere; from then on the block is reported
 * as what it is: carve_check says CORRUPT, carve_walk names it
 * CARVE_BLOCK_QUARANTINED, carve_dump marks it '!', its neighbours free
 * without merging into it, and its bytes never come back. */
static void test_poison_quarantine_is_reported(void **state)
{
    (void)state;
    for (size_t pi = 0; pi < UH_NPOLICIES; pi++) {
        uh u;
        carve_heap *h = uh_make(&u, HEAP_SIZE, uh_policies[pi], CARVE_POISON);
        unsigned char *row[3];
        uh_alloc_row(h, 256, row);
        unsigned char *a = row[0], *b = row[1], *c = row[2];
        size_t b_offset = (size_t)(b - (unsigned char *)h) - 8u; /* its header */
        size_t b_size = tu_block_size(256);
        ASSERT_STATUS(carve_free(h, b), CARVE_OK);
        ASSERT_HEAP_SANE(h);
        b[100] ^= 0x5A; /* a write after free, past the free block's links */

        /* Every policy takes b's block first for this size: the exact fit,
         * and the lowest address.  It is damaged, so another serves. */
        unsigned char *d = carve_alloc(h, 256);
        assert_non_null(d);
        assert_true(d + 256 <= b - 8 || d >= b - 8 + b_size);
        ASSERT_STATUS(carve_check(h), CARVE_ERR_CORRUPT);

        uw *w = uw_collect(h);
        size_t quarantined = 0;
        for (size_t i = 0; i < w->n; i++) {
            if (w->b[i].kind != CARVE_BLOCK_QUARANTINED)
                continue;
            quarantined++;
            assert_int_equal(w->b[i].offset, b_offset);
            assert_int_equal(w->b[i].size, b_size);
            assert_int_equal(w->b[i].usable, 0);
            assert_null(w->b[i].payload);
            assert_int_equal(w->b[i].pinned, 0);
        }
        assert_int_equal(quarantined, 1);
        free(w);

        text t = capture(h, CARVE_DUMP_BLOCKS, 1);
        const char *map = strstr(t.s, "map |");
        assert_non_null(map);
        const char *map_end = strchr(map, '\n');
        assert_non_null(memchr(map, '!', (size_t)(map_end - map)));
        char line[96];
        snprintf(line, sizeof line, "  %10zu %10zu %10zu  quarantined\n", b_offset, b_size,
                 (size_t)0);
        assert_non_null(strstr(t.s, line));
        free(t.s);

        /* b was freed once already: a second free says so, and changes
         * nothing. */
        ASSERT_STATUS(carve_free(h, b), CARVE_ERR_DOUBLE_FREE);

        /* Its neighbours free without merging into it. */
        ASSERT_STATUS(carve_free(h, a), CARVE_OK);
        ASSERT_STATUS(carve_free(h, c), CARVE_OK);
        w = uw_collect(h);
        for (size_t i = 0; i < w->n; i++) {
            if (w->b[i].offset == b_offset) {
                assert_int_equal(w->b[i].kind, CARVE_BLOCK_QUARANTINED);
                assert_int_equal(w->b[i].size, b_size);
            }
        }
        free(w);

        /* Take everything the heap will give: never b's bytes. */
        tu_rng rng;
        tu_rng_seed(&rng, pi);
        for (int i = 0; i < 20000; i++) {
            size_t s = tu_rng_log_uniform(&rng, 0, 9);
            unsigned char *p = carve_alloc(h, s);
            if (p == NULL) {
                if (s <= 16)
                    break;
                continue;
            }
            assert_true(p + s <= b - 8 || p >= b - 8 + b_size);
        }
        ASSERT_STATUS(carve_check(h), CARVE_ERR_CORRUPT);
        uh_destroy(&u);
    }
}

/* The walked block at heap offset off, or NULL. */
static const carve_block *walked_at(const uw *w, size_t off)
{
    for (size_t i = 0; i < w->n; i++)
        if (w->b[i].offset == off)
            return &w->b[i];
    return NULL;
}

/* Asserts that the block whose payload was p is quarantined, whole. */
static void assert_quarantined(carve_heap *h, const unsigned char *p, size_t block_size)
{
    uw *w = uw_collect(h);
    size_t off = (size_t)(p - (const unsigned char *)h) - CARVE_BLOCK_OVERHEAD;
    const carve_block *q = walked_at(w, off);
    assert_non_null(q);
    assert_int_equal(q->kind, CARVE_BLOCK_QUARANTINED);
    assert_int_equal(q->size, block_size);
    free(w);
}

/* Compaction writes over free blocks (the one a handle block slides into,
 * and the one after it, merged into the hole left behind), and their
 * poison is the only record of a write after free.  So with CARVE_POISON a
 * damaged one is quarantined first, as an allocation would: the handle
 * block does not slide into it, the damage stays reported, and its bytes
 * are not handed to the handle. */
static void test_poison_survives_compaction(void **state)
{
    (void)state;
    const size_t size = 400; /* a general block, never a run's slot */
    for (size_t pi = 0; pi < UH_NPOLICIES; pi++) {
        for (int damaged_after = 0; damaged_after < 2; damaged_after++) {
            uh u;
            carve_heap *h = uh_make(&u, HEAP_SIZE, uh_policies[pi], CARVE_POISON);
            /* a, before, the handle's block, after, c: in address order. */
            unsigned char *a = carve_alloc(h, size);
            unsigned char *before = carve_alloc(h, size);
            carve_handle hd = carve_halloc(h, 100);
            unsigned char *after = carve_alloc(h, size);
            unsigned char *c = carve_alloc(h, size);
            assert_non_null(c);
            assert_true(hd != 0);
            unsigned char *hp = carve_pin(h, hd);
            assert_non_null(hp);
            assert_true(a < before && before < hp && hp < after && after < c);
            for (int i = 0; i < 100; i++)
                hp[i] = (unsigned char)(i * 7 + 1);
            ASSERT_STATUS(carve_unpin(h, hd), CARVE_OK);
            size_t block = tu_block_size(size);

            ASSERT_STATUS(carve_free(h, before), CARVE_OK);
            ASSERT_STATUS(carve_free(h, after), CARVE_OK);
            unsigned char *victim = damaged_after ? after : before;
            victim[100] ^= 0x5A; /* a write after free */
            ASSERT_STATUS(carve_check(h), CARVE_ERR_CORRUPT);

            size_t moved = carve_compact(h, SIZE_MAX);
            unsigned char *now = carve_pin(h, hd);
            assert_non_null(now);
            if (damaged_after) {
                /* It slides into the sound block before it; the damaged
                 * one after it stays out of the hole. */
                assert_true(moved > 0);
                assert_ptr_equal(now, before);
            } else {
                assert_int_equal(moved, 0);
                assert_ptr_equal(now, hp);
            }
            for (int i = 0; i < 100; i++)
                assert_int_equal(now[i], (unsigned char)(i * 7 + 1));
            ASSERT_STATUS(carve_unpin(h, hd), CARVE_OK);
            ASSERT_STATUS(carve_check(h), CARVE_ERR_CORRUPT);
            assert_quarantined(h, victim, block);
            ASSERT_STATUS(carve_free(h, victim), CARVE_ERR_DOUBLE_FREE);
            uh_destroy(&u);
        }
    }
}

/* Poisoning never reports a clean heap as corrupt. */
static void test_poison_no_false_alarm(void **state)
{
    (void)state;
    for (size_t pi = 0; pi < UH_NPOLICIES; pi++) {
        uh u;
        carve_heap *h = uh_make(&u, HEAP_SIZE, uh_policies[pi], CARVE_POISON);
        tu_rng rng;
        tu_rng_seed(&rng, 5);
        void *p[50] = {0};
        for (int step = 0; step < 2000; step++) {
            size_t i = (size_t)tu_rng_below(&rng, 50);
            if (p[i] == NULL) {
                size_t s = tu_rng_log_uniform(&rng, 0, 12);
                p[i] = step % 3 ? carve_alloc(h, s) : carve_calloc(h, 1, s);
                if (p[i] != NULL)
                    memset(p[i], 0x77, s);
            } else if (step % 5 == 0) {
                void *q = carve_realloc(h, p[i], tu_rng_log_uniform(&rng, 0, 12));
                if (q != NULL)
                    p[i] = q;
            } else {
                ASSERT_STATUS(carve_free(h, p[i]), CARVE_OK);
                p[i] = NULL;
            }
            if (step % 50 == 0)
                ASSERT_HEAP_SANE(h);
        }
        ASSERT_HEAP_SANE(h);
        uh_destroy(&u);
    }
}

/* ------------------------------------------------------------------------ */
/* Policies                                                                  */
/* ------------------------------------------------------------------------ */

/* Holes (block sizes, in address order), separated by live blocks. */
static const size_t hole_sizes[] = {96, 512, 128, 176, 1024, 160, 2048, 240};
#define NHOLES (sizeof hole_sizes / sizeof hole_sizes[0])

static void make_holes(carve_heap *h)
{
    void *hole[NHOLES];
    for (size_t i = 0; i < NHOLES; i++) {
        assert_non_null(carve_alloc(h, 16));
        hole[i] = carve_alloc(h, hole_sizes[i] - CARVE_BLOCK_OVERHEAD);
        assert_non_null(hole[i]);
    }
    assert_non_null(carve_alloc(h, 16));
    for (size_t i = 0; i < NHOLES; i++)
        ASSERT_STATUS(carve_free(h, hole[i]), CARVE_OK);
}

/* Requests in sequence; each must come from the free block the policy names,
 * recomputed from a walk before every request. */
static void check_policy_choices(carve_policy policy)
{
    const size_t requests[] = {150, 16, 100, 500, 1000, 1500, 200, 24, 120, 168, 232, 3000};
    uh u;
    carve_heap *h = uh_make(&u, HEAP_SIZE, policy, 0);
    make_holes(h);
    for (size_t i = 0; i < sizeof requests / sizeof requests[0]; i++) {
        size_t need = tu_block_size(requests[i]);
        uw *w = uw_collect(h);
        const carve_block *want =
            policy == CARVE_FIRST_FIT ? uw_first_fit(w, need) : uw_best_fit(w, need);
        assert_non_null(want);
        void *p = carve_alloc(h, requests[i]);
        assert_non_null(p);
        const carve_block *got = uw_free_block_at(w, h, p);
        assert_non_null(got);
        if (policy != CARVE_GOOD_FIT && got != want)
            fail_msg("policy %d, request %zu (block %zu): took the free block at offset %zu size "
                     "%zu, expected offset %zu size %zu",
                     (int)policy, requests[i], need, got->offset, got->size, want->offset,
                     want->size);
        /* Any policy: the block it took really fits. */
        assert_true(got->size >= need);
        free(w);
        ASSERT_HEAP_SANE(h);
    }
    uh_destroy(&u);
}

static void test_policy_first_fit(void **state)
{
    (void)state;
    check_policy_choices(CARVE_FIRST_FIT);
}

static void test_policy_best_fit(void **state)
{
    (void)state;
    check_policy_choices(CARVE_BEST_FIT);
}

static void test_policy_good_fit(void **state)
{
    (void)state;
    check_policy_choices(CARVE_GOOD_FIT);
}

/* Repeated small requests under first fit fill the holes lowest first. */
static void test_policy_first_fit_fills_low_addresses(void **state)
{
    (void)state;
    uh u;
    carve_heap *h = uh_make(&u, HEAP_SIZE, CARVE_FIRST_FIT, 0);
    make_holes(h);
    for (int i = 0; i < 40; i++) {
        uw *w = uw_collect(h);
        const carve_block *want = uw_first_fit(w, CARVE_MIN_BLOCK);
        void *p = carve_alloc(h, 16);
        assert_non_null(p);
        const carve_block *got = uw_free_block_at(w, h, p);
        assert_ptr_equal(got, want);
        free(w);
    }
    ASSERT_HEAP_SANE(h);
    uh_destroy(&u);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_stats_invariants),
        cmocka_unit_test(test_walk_describes_heap),
        cmocka_unit_test(test_walk_with_runs),
        cmocka_unit_test(test_walk_early_stop_and_args),
        cmocka_unit_test(test_dump),
        cmocka_unit_test(test_dump_edge_states),
        cmocka_unit_test(test_poison_detects_write_after_free),
        cmocka_unit_test(test_poison_quarantine_is_reported),
        cmocka_unit_test(test_poison_survives_compaction),
        cmocka_unit_test(test_poison_no_false_alarm),
        cmocka_unit_test(test_policy_first_fit),
        cmocka_unit_test(test_policy_best_fit),
        cmocka_unit_test(test_policy_good_fit),
        cmocka_unit_test(test_policy_first_fit_fills_low_addresses),
    };
    UH_RUN_GROUP("diag", tests);
}
