/*
 * carve_trim: which bytes it hands to release (whole pages inside large
 * free blocks, never metadata, never live data), that it does not hand the
 * same unchanged block out twice, that the heap keeps working when the
 * released bytes come back as anything, and its error cases.
 *
 * The release callback used here records every span and then scribbles
 * over it (zeros, or a pattern), standing in for MADV_DONTNEED, whose pages
 * read back as zeros, or for a caller that reuses them.
 */
#include "unit_util.h"

#define PAGE    4096u
#define MAX_REL 1024

typedef struct span {
    unsigned char *addr;
    size_t len;
} span;

typedef struct rel_log {
    size_t n;
    span s[MAX_REL];
    int scribble; /* byte written over released spans, or -1 for a pattern */
    uint64_t seed;
} rel_log;

static void record_release(void *addr, size_t len, void *ctx)
{
    rel_log *log = (rel_log *)ctx;
    if (log->n < MAX_REL) {
        log->s[log->n].addr = (unsigned char *)addr;
        log->s[log->n].len = len;
    }
    log->n++;
    if (log->scribble >= 0)
        memset(addr, log->scribble, len);
    else
        tu_fill(addr, log->seed++, len);
}

static size_t trim_logged(carve_heap *h, size_t page, size_t min_block, rel_log *log, int scribble)
{
    memset(log, 0, sizeof *log);
    log->scribble = scribble;
    log->seed = 77;
    size_t got = carve_trim(h, page, min_block, record_release, log);
    assert_true(log->n <= MAX_REL);
    size_t sum = 0;
    for (size_t i = 0; i < log->n; i++)
        sum += log->s[i].len;
    assert_int_equal(sum, got);
    return got;
}

/* The bytes carve_trim should release in the free block fb (whole pages
 * past its first and last page_size bytes), as [*from, *to). */
static size_t expected_span(const carve_heap *h, const carve_block *fb, size_t page,
                            uintptr_t *from, uintptr_t *to)
{
    uintptr_t start = (uintptr_t)h + fb->offset;
    uintptr_t end = start + fb->size;
    *from = (start + page + page - 1u) & ~(uintptr_t)(page - 1u);
    *to = (end - page) & ~(uintptr_t)(page - 1u);
    return fb->size >= 3u * page && *to > *from ? (size_t)(*to - *from) : 0;
}

/* Every logged span is exactly the expected span of one free block of at
 * least min_block bytes (so page-aligned, past that block's metadata, never
 * in a live block, a run or the control block), and every such block with
 * a span was released (the first trim of a heap). */
static void assert_spans_exact(carve_heap *h, const rel_log *log, size_t page, size_t min_block,
                               int expect_all)
{
    uw *w = uw_collect(h);
    size_t matched = 0;
    for (size_t i = 0; i < log->n; i++) {
        const span *s = &log->s[i];
        assert_true(((uintptr_t)s->addr & (page - 1u)) == 0);
        assert_true(s->len > 0 && s->len % page == 0);
        const carve_block *fb = uw_free_block_at(w, h, s->addr);
        if (fb == NULL)
            fail_msg("released span %p+%zu is not inside a free block", (void *)s->addr, s->len);
        assert_true(fb->size >= min_block);
        uintptr_t from;
        uintptr_t to;
        assert_true(expected_span(h, fb, page, &from, &to) > 0);
        assert_true((uintptr_t)s->addr == from);
        assert_true((uintptr_t)s->addr + s->len == to);
        for (size_t j = 0; j < i; j++)
            assert_true(log->s[j].addr != s->addr);
    }
    for (size_t i = 0; i < w->n; i++) {
        uintptr_t from;
        uintptr_t to;
        if (w->b[i].kind == CARVE_BLOCK_FREE && w->b[i].size >= min_block &&
            expected_span(h, &w->b[i], page, &from, &to) > 0)
            matched++;
    }
    if (expect_all)
        assert_int_equal(matched, log->n);
    free(w);
}

/* A heap of mixed live and free blocks: big frees between live blocks, so
 * free blocks cannot merge, plus small blocks (runs) and live big ones. */
typedef struct layout {
    void *p[64];
    size_t size[64];
    int live[64];
    size_t n;
} layout;

static void build_layout(carve_heap *h, layout *l, tu_rng *rng)
{
    memset(l, 0, sizeof *l);
    for (size_t i = 0; i < 64; i++) {
        size_t sz = (i % 4 == 0)   ? tu_rng_range(rng, 1, 256)
                    : (i % 4 == 1) ? tu_rng_range(rng, 300, 9000)
                                   : tu_rng_range(rng, 20000, 300000);
        l->p[i] = carve_alloc(h, sz);
        assert_non_null(l->p[i]);
        l->size[i] = sz;
        l->live[i] = 1;
        tu_fill(l->p[i], 1000 + i, sz);
        l->n++;
    }
    for (size_t i = 2; i < 64; i += 3) {
        ASSERT_STATUS(carve_free(h, l->p[i]), CARVE_OK);
        l->live[i] = 0;
    }
}

static void assert_layout_intact(const layout *l)
{
    for (size_t i = 0; i < l->n; i++)
        if (l->live[i] && tu_verify(l->p[i], 1000 + i, l->size[i]) != l->size[i])
            fail_msg("live block %zu (%zu bytes) changed", i, l->size[i]);
}

static void free_layout(carve_heap *h, layout *l)
{
    for (size_t i = 0; i < l->n; i++)
        if (l->live[i])
            ASSERT_STATUS(carve_free(h, l->p[i]), CARVE_OK);
}

static void check_releases_only_free_pages(carve_policy policy, size_t page, size_t min_block,
                                           int scribble)
{
    uh u;
    carve_heap *h = uh_make(&u, 16u << 20, policy, 0);
    tu_rng rng;
    tu_rng_seed(&rng, 42 + (uint64_t)policy);
    layout l;
    build_layout(h, &l, &rng);
    carve_stats before = uh_stats(h);

    rel_log *log = (rel_log *)calloc(1, sizeof *log);
    assert_non_null(log);
    size_t got = trim_logged(h, page, min_block, log, scribble);
    assert_true(got > 0);
    assert_spans_exact(h, log, page, min_block, 1);
    assert_layout_intact(&l);
    ASSERT_HEAP_SANE(h);
    carve_stats after = uh_stats(h);
    ASSERT_STATS_SAME(before, after);

    /* Unchanged: nothing again. */
    assert_int_equal(trim_logged(h, page, min_block, log, scribble), 0);
    assert_int_equal(log->n, 0);

    /* Allocations after the trim come from the released bytes and work. */
    void *q[32];
    for (size_t i = 0; i < 32; i++) {
        size_t sz = tu_rng_range(&rng, 1, 200000);
        q[i] = carve_alloc(h, sz);
        assert_non_null(q[i]);
        tu_fill(q[i], 5000 + i, sz);
        assert_int_equal(tu_verify(q[i], 5000 + i, sz), sz);
    }
    ASSERT_HEAP_SANE(h);
    assert_layout_intact(&l);
    for (size_t i = 0; i < 32; i++)
        ASSERT_STATUS(carve_free(h, q[i]), CARVE_OK);
    free_layout(h, &l);
    ASSERT_HEAP_SANE(h);
    /* Everything merged into one block: released again, as one span. */
    got = trim_logged(h, page, min_block, log, scribble);
    assert_true(got > 0);
    assert_int_equal(log->n, 1);
    assert_spans_exact(h, log, page, min_block, 1);
    ASSERT_HEAP_SANE(h);
    free(log);
    uh_destroy(&u);
}

static void test_trim_releases_whole_free_pages(void **state)
{
    (void)state;
    const carve_policy policies[] = {CARVE_GOOD_FIT, CARVE_FIRST_FIT, CARVE_BEST_FIT};
    for (size_t i = 0; i < 3; i++) {
        check_releases_only_free_pages(policies[i], PAGE, 0, 0);
        check_releases_only_free_pages(policies[i], PAGE, 64u << 10, -1);
        check_releases_only_free_pages(policies[i], 16384, 0, -1);
    }
}

/* min_block: smaller free blocks are left alone, even with whole pages. */
static void test_trim_min_block(void **state)
{
    (void)state;
    uh u;
    carve_heap *h = uh_make(&u, 4u << 20, CARVE_GOOD_FIT, 0);
    /* 512-byte separators: above CARVE_SMALL_MAX, so blocks of their own
     * between the big ones (not slots of a run elsewhere). */
    void *a = carve_alloc(h, 512);
    void *small = carve_alloc(h, 40000); /* ~10 pages */
    void *b = carve_alloc(h, 512);
    void *big = carve_alloc(h, 400000);
    void *c = carve_alloc(h, 512);
    assert_non_null(a);
    assert_non_null(small);
    assert_non_null(b);
    assert_non_null(big);
    assert_non_null(c);
    ASSERT_STATUS(carve_free(h, small), CARVE_OK);
    ASSERT_STATUS(carve_free(h, big), CARVE_OK);
    rel_log *log = (rel_log *)calloc(1, sizeof *log);
    assert_non_null(log);

    /* Only the big block and the heap's tail qualify at 256 KiB. */
    trim_logged(h, PAGE, 256u << 10, log, 0);
    assert_spans_exact(h, log, PAGE, 256u << 10, 1);
    for (size_t i = 0; i < log->n; i++)
        assert_false(log->s[i].addr > (unsigned char *)small &&
                     log->s[i].addr < (unsigned char *)small + 40000);
    size_t first = log->n;
    assert_int_equal(first, 2);

    /* Lowering min_block releases the small one, and only it. */
    trim_logged(h, PAGE, 0, log, 0);
    assert_int_equal(log->n, 1);
    assert_true(log->s[0].addr > (unsigned char *)small &&
                log->s[0].addr < (unsigned char *)small + 40000);
    assert_spans_exact(h, log, PAGE, 0, 0);

    /* A block too small for a page past its first and last page: never. */
    void *d = carve_alloc(h, (size_t)3 * PAGE - 200);
    void *e = carve_alloc(h, 512);
    assert_non_null(d);
    assert_non_null(e);
    ASSERT_STATUS(carve_free(h, d), CARVE_OK);
    trim_logged(h, PAGE, 0, log, 0);
    for (size_t i = 0; i < log->n; i++)
        assert_false(log->s[i].addr >= (unsigned char *)d &&
                     log->s[i].addr < (unsigned char *)d + (size_t)3 * PAGE);
    /* A huge min_block: nothing. */
    assert_int_equal(trim_logged(h, PAGE, SIZE_MAX, log, 0), 0);
    ASSERT_HEAP_SANE(h);
    free(log);
    uh_destroy(&u);
}

/* Every change to a released free block makes it eligible again: a split
 * (allocation from it), a merge (a neighbour freed), a shrink of the live
 * block before it; an unchanged one stays quiet. */
static void test_trim_changed_blocks_again(void **state)
{
    (void)state;
    uh u;
    carve_heap *h = uh_make(&u, 8u << 20, CARVE_GOOD_FIT, 0);
    void *a = carve_alloc(h, 500000);
    void *sep1 = carve_alloc(h, 512); /* not a run slot: a block between a and b */
    void *b = carve_alloc(h, 500000);
    void *sep2 = carve_alloc(h, 512);
    assert_non_null(a);
    assert_non_null(sep1);
    assert_non_null(b);
    assert_non_null(sep2);
    tu_fill(sep1, 1, 64);
    tu_fill(sep2, 2, 64);
    ASSERT_STATUS(carve_free(h, a), CARVE_OK);
    rel_log *log = (rel_log *)calloc(1, sizeof *log);
    assert_non_null(log);
    trim_logged(h, PAGE, 0, log, 0xEE);
    assert_int_equal(log->n, 2); /* a, and the tail of the heap */
    assert_int_equal(trim_logged(h, PAGE, 0, log, 0xEE), 0);

    /* Merge: b freed joins nothing (sep1, sep2 live) -> only b. */
    ASSERT_STATUS(carve_free(h, b), CARVE_OK);
    trim_logged(h, PAGE, 0, log, 0xEE);
    assert_int_equal(log->n, 1);
    assert_true(log->s[0].addr > (unsigned char *)b &&
                log->s[0].addr < (unsigned char *)b + 500000);
    assert_int_equal(trim_logged(h, PAGE, 0, log, 0xEE), 0);

    /* Merge: sep1 freed joins a and b into one block -> released again. */
    ASSERT_STATUS(carve_free(h, sep1), CARVE_OK);
    trim_logged(h, PAGE, 0, log, 0xEE);
    assert_int_equal(log->n, 1);
    assert_spans_exact(h, log, PAGE, 0, 0);
    assert_int_equal(trim_logged(h, PAGE, 0, log, 0xEE), 0);

    /* Split: an allocation from the merged block leaves a changed rest. */
    void *c = carve_alloc(h, 300000);
    assert_non_null(c);
    assert_true((unsigned char *)c < (unsigned char *)sep2);
    memset(c, 0x11, 300000);
    trim_logged(h, PAGE, 0, log, 0xEE);
    assert_spans_exact(h, log, PAGE, 0, 0);
    assert_true(log->n >= 1);
    for (size_t i = 0; i < log->n; i++)
        assert_false(log->s[i].addr < (unsigned char *)c + 300000 &&
                     log->s[i].addr + log->s[i].len > (unsigned char *)c);
    assert_int_equal(trim_logged(h, PAGE, 0, log, 0xEE), 0);

    /* Shrinking c in place gives its tail to the free block after it. */
    void *c2 = carve_realloc(h, c, 100000);
    assert_true(c2 == c);
    trim_logged(h, PAGE, 0, log, 0xEE);
    assert_true(log->n >= 1);
    assert_spans_exact(h, log, PAGE, 0, 0);
    for (size_t i = 0; i < 100000; i++)
        if (((unsigned char *)c)[i] != 0x11)
            fail_msg("live byte %zu changed", i);
    assert_int_equal(tu_verify(sep2, 2, 64), 64);
    ASSERT_HEAP_SANE(h);

    /* Allocating the whole released block and freeing it again with the
     * same offset and size: a stale mark, when the user never wrote it,
     * may skip the release, but the heap stays sound. */
    ASSERT_STATUS(carve_free(h, c), CARVE_OK);
    ASSERT_STATUS(carve_free(h, sep2), CARVE_OK);
    ASSERT_HEAP_SANE(h);
    free(log);
    uh_destroy(&u);
}

/* A random workload with trims in between whose released bytes are
 * scribbled: live contents survive, the heap checks, and the handle and
 * compaction paths (which move blocks into free holes) keep working. */
static void test_trim_random_workload(void **state)
{
    (void)state;
    const unsigned flags[] = {0, CARVE_NO_RUNS, CARVE_THREADSAFE};
    for (size_t f = 0; f < 3; f++) {
        uh u;
        carve_heap *h = uh_make(&u, 32u << 20, (carve_policy)(f % 3), flags[f]);
        tu_rng rng;
        tu_rng_seed(&rng, 9 + f);
        enum { N = 256 };
        void *p[N] = {0};
        size_t sz[N] = {0};
        carve_handle hd[N] = {0};
        size_t hsz[N] = {0};
        rel_log *log = (rel_log *)calloc(1, sizeof *log);
        assert_non_null(log);
        for (int step = 0; step < 6000; step++) {
            size_t i = (size_t)tu_rng_below(&rng, N);
            unsigned op = (unsigned)tu_rng_below(&rng, 10);
            if (op < 6) {
                if (p[i]) {
                    assert_int_equal(tu_verify(p[i], i + 1, sz[i]), sz[i]);
                    ASSERT_STATUS(carve_free(h, p[i]), CARVE_OK);
                    p[i] = NULL;
                } else {
                    sz[i] = tu_rng_below(&rng, 4) == 0 ? tu_rng_range(&rng, 16384, 600000)
                                                       : tu_rng_range(&rng, 200, 3000);
                    p[i] = carve_alloc(h, sz[i]);
                    if (p[i])
                        tu_fill(p[i], i + 1, sz[i]);
                }
            } else if (op < 9) {
                if (hd[i]) {
                    void *q = carve_pin(h, hd[i]);
                    assert_non_null(q);
                    assert_int_equal(tu_verify(q, 7000 + i, hsz[i]), hsz[i]);
                    ASSERT_STATUS(carve_unpin(h, hd[i]), CARVE_OK);
                    ASSERT_STATUS(carve_hfree(h, hd[i]), CARVE_OK);
                    hd[i] = 0;
                } else {
                    hsz[i] = tu_rng_range(&rng, 1, 200000);
                    hd[i] = carve_halloc(h, hsz[i]);
                    if (hd[i]) {
                        void *q = carve_pin(h, hd[i]);
                        tu_fill(q, 7000 + i, hsz[i]);
                        ASSERT_STATUS(carve_unpin(h, hd[i]), CARVE_OK);
                    }
                }
            } else if (tu_rng_below(&rng, 2) == 0) {
                trim_logged(h, PAGE, tu_rng_below(&rng, 2) ? 0 : 256u << 10, log,
                            tu_rng_below(&rng, 2) ? 0 : -1);
                assert_spans_exact(h, log, PAGE, 0, 0);
            } else {
                (void)carve_compact(h, tu_rng_below(&rng, 2) ? SIZE_MAX : 100000);
            }
            if (step % 500 == 0)
                ASSERT_HEAP_SANE(h);
        }
        ASSERT_HEAP_SANE(h);
        for (size_t i = 0; i < N; i++) {
            if (p[i]) {
                assert_int_equal(tu_verify(p[i], i + 1, sz[i]), sz[i]);
                ASSERT_STATUS(carve_free(h, p[i]), CARVE_OK);
            }
            if (hd[i]) {
                void *q = carve_pin(h, hd[i]);
                assert_non_null(q);
                assert_int_equal(tu_verify(q, 7000 + i, hsz[i]), hsz[i]);
                ASSERT_STATUS(carve_unpin(h, hd[i]), CARVE_OK);
                ASSERT_STATUS(carve_hfree(h, hd[i]), CARVE_OK);
            }
        }
        ASSERT_HEAP_SANE(h);
        free(log);
        uh_destroy(&u);
    }
}

static int g_calls;
static void count_release(void *addr, size_t len, void *ctx)
{
    (void)addr;
    (void)len;
    (void)ctx;
    g_calls++;
}

static void test_trim_errors(void **state)
{
    (void)state;
    uh u;
    carve_heap *h = uh_make(&u, 4u << 20, CARVE_GOOD_FIT, 0);
    g_calls = 0;
    assert_int_equal(carve_trim(NULL, PAGE, 0, count_release, NULL), 0);
    assert_int_equal(carve_trim(h, PAGE, 0, NULL, NULL), 0);
    const size_t bad_pages[] = {0, 1, 2048, 4095, 4097, 6144, 12288, SIZE_MAX};
    for (size_t i = 0; i < sizeof bad_pages / sizeof bad_pages[0]; i++)
        assert_int_equal(carve_trim(h, bad_pages[i], 0, count_release, NULL), 0);
    assert_int_equal(g_calls, 0);
    /* The same heap with a valid page size does release (its free tail). */
    assert_true(carve_trim(h, PAGE, 0, count_release, NULL) > 0);
    assert_int_equal(g_calls, 1);
    /* A page size larger than the heap: nothing fits, nothing happens. */
    assert_int_equal(carve_trim(h, (size_t)1 << 30, 0, count_release, NULL), 0);
    assert_int_equal(g_calls, 1);
    ASSERT_HEAP_SANE(h);
    uh_destroy(&u);

    /* CARVE_POISON: freed bytes must keep their pattern, so nothing. */
    h = uh_make(&u, 4u << 20, CARVE_GOOD_FIT, CARVE_POISON);
    void *p = carve_alloc(h, 1u << 20);
    void *q = carve_alloc(h, 64);
    assert_non_null(p);
    assert_non_null(q);
    ASSERT_STATUS(carve_free(h, p), CARVE_OK);
    assert_int_equal(carve_trim(h, PAGE, 0, count_release, NULL), 0);
    assert_int_equal(g_calls, 1);
    ASSERT_HEAP_SANE(h);
    uh_destroy(&u);
}

/* Blocks the heap holds back for reuse (a thread's cache of small blocks,
 * an empty run kept for its class, the freed-block cache) are free to the
 * user, as the statistics say: after everything is freed, carve_trim hands
 * back exactly what it hands back on a fresh heap of the same size. */
static size_t trim_after_churn(unsigned flags, int churn)
{
    uh u;
    carve_heap *h = uh_make(&u, 8u << 20, CARVE_GOOD_FIT, flags);
    enum { N = 3000 };
    void **p = (void **)calloc(N, sizeof *p);
    assert_non_null(p);
    tu_rng rng;
    tu_rng_seed(&rng, 0x7e57u);
    for (size_t i = 0; churn && i < N; i++) {
        /* Nine in ten small (run slots), the rest general blocks. */
        size_t size = i % 10u != 0 ? tu_rng_range(&rng, 8, 256) : tu_rng_range(&rng, 300, 6300);
        p[i] = carve_alloc(h, size);
        assert_non_null(p[i]);
    }
    for (size_t i = 0; churn && i < N; i++) {
        size_t j = tu_rng_range(&rng, i, N - 1u); /* a random order */
        void *t = p[i];
        p[i] = p[j];
        p[j] = t;
        ASSERT_STATUS(carve_free(h, p[i]), CARVE_OK);
    }
    free(p);
    rel_log *log = (rel_log *)calloc(1, sizeof *log);
    assert_non_null(log);
    size_t got = trim_logged(h, PAGE, 0, log, 0);
    ASSERT_HEAP_SANE(h);
    free(log);
    uh_destroy(&u);
    return got;
}

static void test_trim_hands_back_what_the_heap_holds_back(void **state)
{
    (void)state;
    const unsigned flags[] = {0u, CARVE_THREADSAFE};
    for (size_t i = 0; i < 2; i++) {
        size_t fresh = trim_after_churn(flags[i], 0);
        assert_true(fresh > (7u << 20));
        assert_int_equal(trim_after_churn(flags[i], 1), fresh);
    }
}

/* The handle table outlives its handles, wherever the first carve_halloc
 * put it.  Once every block and handle is freed, a trim moves it down into
 * the free block before it, so the free space is one block again and the
 * trim releases what a fresh heap's does, less the table's own pages. */
static void test_trim_after_handles(void **state)
{
    (void)state;
    enum { N = 400 };
    for (size_t pi = 0; pi < UH_NPOLICIES; pi++) {
        uh u;
        carve_heap *h = uh_make(&u, 8u << 20, uh_policies[pi], 0);
        rel_log *log = (rel_log *)calloc(1, sizeof *log);
        assert_non_null(log);
        size_t fresh = trim_logged(h, PAGE, 0, log, 0);
        uh_destroy(&u);

        h = uh_make(&u, 8u << 20, uh_policies[pi], 0);
        void *raw[N];
        carve_handle hd[N];
        tu_rng rng;
        tu_rng_seed(&rng, 0x7ab1eu + pi);
        for (size_t i = 0; i < N; i++) { /* general blocks, and handles among them */
            raw[i] = carve_alloc(h, tu_rng_range(&rng, 300, 6300));
            assert_non_null(raw[i]);
            hd[i] = i % 4u == 3u ? carve_halloc(h, tu_rng_range(&rng, 100, 2000)) : 0;
            assert_true(i % 4u != 3u || hd[i] != 0);
        }
        for (size_t i = 0; i < N; i++) {
            ASSERT_STATUS(carve_free(h, raw[N - 1u - i]), CARVE_OK);
            if (hd[i] != 0)
                ASSERT_STATUS(carve_hfree(h, hd[i]), CARVE_OK);
        }
        size_t table = 0;
        uw *w = uw_collect(h);
        for (size_t i = 0; i < w->n; i++)
            if (w->b[i].kind == CARVE_BLOCK_META)
                table += w->b[i].size;
        free(w);
        assert_true(table > 0);
        uint64_t compactions = uh_stats(h).compactions;

        size_t got = trim_logged(h, PAGE, 0, log, 0);
        carve_stats st = uh_stats(h);
        assert_int_equal(st.free_blocks, 1);
        assert_true(st.compactions <= compactions + 1u);
        if (got > fresh || fresh - got > table + PAGE)
            fail_msg("trim released %zu bytes, a fresh heap %zu, the table is %zu", got, fresh,
                     table);
        ASSERT_HEAP_SANE(h);
        free(log);
        uh_destroy(&u);
    }
}

/* A heap too small to hold a page-sized span anywhere. */
static void test_trim_small_heap(void **state)
{
    (void)state;
    uh u;
    carve_heap *h = uh_make(&u, 8192, CARVE_GOOD_FIT, 0);
    g_calls = 0;
    assert_int_equal(carve_trim(h, PAGE, 0, count_release, NULL), 0);
    assert_int_equal(g_calls, 0);
    ASSERT_HEAP_SANE(h);
    uh_destroy(&u);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_trim_releases_whole_free_pages),
        cmocka_unit_test(test_trim_min_block),
        cmocka_unit_test(test_trim_changed_blocks_again),
        cmocka_unit_test(test_trim_random_workload),
        cmocka_unit_test(test_trim_errors),
        cmocka_unit_test(test_trim_small_heap),
        cmocka_unit_test(test_trim_hands_back_what_the_heap_holds_back),
        cmocka_unit_test(test_trim_after_handles),
    };
    UH_RUN_GROUP("trim", tests);
}
