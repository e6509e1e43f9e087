/*
 * Unit tests: relocatable blocks.  carve_halloc, carve_pin, carve_unpin,
 * carve_hfree, carve_hresize, carve_hsize and carve_compact with every status
 * and errno the header documents for them; the handle counters of
 * carve_stats; automatic compaction of a failing carve_alloc or
 * carve_halloc; CARVE_SCRAMBLE; handles in a copied heap (carve_attach); and
 * carve_walk's view of handle blocks.
 *
 * What "nothing changes" means here: the stats (failed_allocs aside for a
 * failed allocation), every block of a walk (offset, size, kind, pins,
 * payload), and every live block's contents.
 */
#include "unit_util.h"

#define HEAP_SIZE (256u * 1024u)
#define MAXH      2048u

/* Each test runs under these flag sets: plain, no runs, poisoning (a moved
 * block's old bytes must be poisoned again), the lock. */
static const unsigned flag_sets[] = {0, CARVE_NO_RUNS, CARVE_POISON, CARVE_THREADSAFE};
#define NFLAGS (sizeof flag_sets / sizeof flag_sets[0])

/* ------------------------------------------------------------------------ */
/* Helpers                                                                   */
/* ------------------------------------------------------------------------ */

static carve_heap *make_heap(uh *u, size_t size, carve_policy policy, unsigned flags,
                             size_t max_handles, size_t misalign)
{
    carve_options o = uh_opts(policy, flags);
    o.max_handles = max_handles;
    return uh_make_opts(u, size, misalign, &o);
}

/* carve_pin that must succeed: a 16-aligned address with hsize bytes inside
 * the buffer. */
static unsigned char *pin_ok(carve_heap *h, const tu_region *r, carve_handle hd)
{
    errno = 0;
    unsigned char *p = (unsigned char *)carve_pin(h, hd);
    if (p == NULL)
        fail_msg("carve_pin(0x%llx) failed, errno %d", (unsigned long long)hd, errno);
    if (!tu_is_aligned(p, CARVE_ALIGNMENT))
        fail_msg("carve_pin(0x%llx) = %p, not 16-aligned", (unsigned long long)hd, (void *)p);
    size_t n = carve_hsize(h, hd);
    if (!tu_region_contains(r, p, n))
        fail_msg("pinned block %p+%zu lies outside the buffer", (void *)p, n);
    return p;
}

static void unpin_ok(carve_heap *h, carve_handle hd)
{
    ASSERT_STATUS(carve_unpin(h, hd), CARVE_OK);
}

/* Where the block is now (pin, read the address, unpin). */
static unsigned char *where(carve_heap *h, const tu_region *r, carve_handle hd)
{
    unsigned char *p = pin_ok(h, r, hd);
    unpin_ok(h, hd);
    return p;
}

/* One tracked handle block. */
typedef struct hent {
    carve_handle hd; /* 0 = slot unused */
    size_t req;
    size_t usable;
    uint64_t seed;
    unsigned pins;
    unsigned char *pinned_at; /* its address while pins > 0 */
} hent;

/* One tracked raw block. */
typedef struct rent {
    unsigned char *p; /* NULL = slot unused */
    size_t usable;
    uint64_t seed;
} rent;

/* The blocks a test holds in one heap. */
typedef struct hs {
    carve_heap *h;
    const tu_region *r;
    size_t n;
    hent e[MAXH];
    size_t nr;
    rent raw[MAXH];
} hs;

static hs *hs_new(carve_heap *h, const tu_region *r)
{
    hs *s = (hs *)calloc(1, sizeof *s);
    assert_non_null(s);
    s->h = h;
    s->r = r;
    return s;
}

/* Allocates a handle block of req bytes and fills it; returns its index, or
 * MAXH when carve_halloc failed (with ENOMEM, the only error a valid request
 * may get). */
static size_t hs_add(hs *s, size_t req, uint64_t seed)
{
    assert_true(s->n < MAXH);
    errno = 0;
    carve_handle hd = carve_halloc(s->h, req);
    if (hd == 0) {
        if (errno != ENOMEM)
            fail_msg("carve_halloc(%zu) failed with errno %d, expected ENOMEM", req, errno);
        return MAXH;
    }
    for (size_t i = 0; i < s->n; i++)
        if (s->e[i].hd == hd)
            fail_msg("carve_halloc returned 0x%llx, the handle of a live block",
                     (unsigned long long)hd);
    size_t us = carve_hsize(s->h, hd);
    if (us < req)
        fail_msg("carve_hsize %zu < request %zu", us, req);
    unsigned char *p = pin_ok(s->h, s->r, hd);
    tu_fill(p, seed, us);
    unpin_ok(s->h, hd);
    hent *e = &s->e[s->n];
    e->hd = hd;
    e->req = req;
    e->usable = us;
    e->seed = seed;
    e->pins = 0;
    e->pinned_at = NULL;
    return s->n++;
}

static size_t hs_add_ok(hs *s, size_t req, uint64_t seed)
{
    size_t i = hs_add(s, req, seed);
    if (i == MAXH)
        fail_msg("carve_halloc(%zu) failed with ENOMEM", req);
    return i;
}

/* Allocates a raw block of req bytes and fills it; returns its index, or
 * MAXH when carve_alloc failed. */
static size_t hs_raw_try(hs *s, size_t req, uint64_t seed)
{
    assert_true(s->nr < MAXH);
    unsigned char *p = (unsigned char *)carve_alloc(s->h, req);
    if (p == NULL)
        return MAXH;
    rent *e = &s->raw[s->nr];
    e->p = p;
    e->usable = carve_usable_size(s->h, p);
    e->seed = seed;
    tu_fill(p, seed, e->usable);
    return s->nr++;
}

static size_t hs_raw(hs *s, size_t req, uint64_t seed)
{
    size_t i = hs_raw_try(s, req, seed);
    if (i == MAXH)
        fail_msg("carve_alloc(%zu) failed, errno %d", req, errno);
    return i;
}

static void hs_pin(hs *s, size_t i)
{
    hent *e = &s->e[i];
    unsigned char *p = pin_ok(s->h, s->r, e->hd);
    if (e->pins > 0 && p != e->pinned_at)
        fail_msg("pinned block moved from %p to %p", (void *)e->pinned_at, (void *)p);
    e->pins++;
    e->pinned_at = p;
}

static void hs_unpin(hs *s, size_t i)
{
    hent *e = &s->e[i];
    assert_true(e->pins > 0);
    unpin_ok(s->h, e->hd);
    if (--e->pins == 0)
        e->pinned_at = NULL;
}

static void hs_free(hs *s, size_t i)
{
    assert_int_equal(s->e[i].pins, 0);
    ASSERT_STATUS(carve_hfree(s->h, s->e[i].hd), CARVE_OK);
    s->e[i].hd = 0;
}

/* Every tracked block still has its contents, its size, and (raw and
 * pinned) its address; every handle still names its own block. */
static void hs_verify(const hs *s)
{
    for (size_t i = 0; i < s->n; i++) {
        const hent *e = &s->e[i];
        if (e->hd == 0)
            continue;
        size_t us = carve_hsize(s->h, e->hd);
        if (us != e->usable)
            fail_msg("handle %zu (0x%llx): hsize changed from %zu to %zu", i,
                     (unsigned long long)e->hd, e->usable, us);
        unsigned char *p = pin_ok(s->h, s->r, e->hd);
        if (e->pins > 0 && p != e->pinned_at)
            fail_msg("handle %zu pinned %u times moved from %p to %p", i, e->pins,
                     (void *)e->pinned_at, (void *)p);
        size_t bad = tu_verify(p, e->seed, e->usable);
        if (bad != e->usable)
            fail_msg("handle %zu (0x%llx, %zu bytes at %p) lost its contents at byte %zu", i,
                     (unsigned long long)e->hd, e->usable, (void *)p, bad);
        unpin_ok(s->h, e->hd);
    }
    for (size_t i = 0; i < s->nr; i++) {
        const rent *e = &s->raw[i];
        if (e->p == NULL)
            continue;
        if (carve_usable_size(s->h, e->p) != e->usable)
            fail_msg("raw block %zu at %p is no longer a live block of %zu bytes", i, (void *)e->p,
                     e->usable);
        size_t bad = tu_verify(e->p, e->seed, e->usable);
        if (bad != e->usable)
            fail_msg("raw block %zu at %p lost its contents at byte %zu", i, (void *)e->p, bad);
    }
}

static size_t hs_live(const hs *s)
{
    size_t n = 0;
    for (size_t i = 0; i < s->n; i++)
        n += s->e[i].hd != 0;
    return n;
}

static size_t hs_pinned(const hs *s)
{
    size_t n = 0;
    for (size_t i = 0; i < s->n; i++)
        n += s->e[i].hd != 0 && s->e[i].pins > 0;
    return n;
}

/* Handle blocks of random sizes in [lo, hi] until the heap (or the table)
 * is full; returns how many were made. */
static size_t hs_fill(hs *s, tu_rng *rng, size_t lo, size_t hi, size_t limit)
{
    size_t made = 0;
    while (made < limit && s->n < MAXH) {
        size_t req = tu_rng_range(rng, lo, hi);
        if (hs_add(s, req, tu_rng_next(rng)) == MAXH)
            break;
        made++;
    }
    return made;
}

/* A snapshot of everything a failed call must leave as it was. */
typedef struct snap {
    carve_stats st;
    uw *w;
} snap;

static snap snap_take(carve_heap *h)
{
    snap sn;
    sn.st = uh_stats(h);
    sn.w = uw_collect(h);
    return sn;
}

static void walks_equal(const uw *a, const uw *b, const char *what)
{
    if (a->n != b->n)
        fail_msg("%s: the walk had %zu blocks, now %zu", what, a->n, b->n);
    for (size_t i = 0; i < a->n; i++) {
        const carve_block *x = &a->b[i], *y = &b->b[i];
        if (x->offset != y->offset || x->size != y->size || x->usable != y->usable ||
            x->kind != y->kind || x->pinned != y->pinned || x->payload != y->payload)
            fail_msg("%s: block %zu changed: offset %zu size %zu kind %d pins %u -> offset %zu "
                     "size %zu kind %d pins %u",
                     what, i, x->offset, x->size, (int)x->kind, x->pinned, y->offset, y->size,
                     (int)y->kind, y->pinned);
    }
}

/* Nothing changed since sn; failed: a failed allocation may count itself in
 * failed_allocs. */
static void snap_same(carve_heap *h, snap *sn, int failed, const char *what)
{
    carve_stats st = uh_stats(h);
    const char *d =
        failed ? tu_stats_diff_but_failed(&sn->st, &st) : tu_stats_diff(&sn->st, &st, 0);
    if (d != NULL)
        fail_msg("%s: stats field %s changed", what, d);
    if (failed &&
        (st.failed_allocs < sn->st.failed_allocs || st.failed_allocs > sn->st.failed_allocs + 1))
        fail_msg("%s: failed_allocs went from %llu to %llu", what,
                 (unsigned long long)sn->st.failed_allocs, (unsigned long long)st.failed_allocs);
    uw *w = uw_collect(h);
    walks_equal(sn->w, w, what);
    free(w);
}

static void snap_drop(snap *sn)
{
    free(sn->w);
    sn->w = NULL;
}

/* The walked block whose payload is p (fails when there is none). */
static carve_block walk_block_of(carve_heap *h, const void *p)
{
    uw *w = uw_collect(h);
    const carve_block *b = uw_find_payload(w, p);
    if (b == NULL)
        fail_msg("carve_walk lists no block with payload %p", p);
    carve_block out = *b;
    free(w);
    return out;
}

/* Every bad-handle call fails as documented on hd, and nothing changes. */
static void assert_handle_refused(carve_heap *h, carve_handle hd, const char *what)
{
    snap sn = snap_take(h);
    errno = 0;
    void *p = carve_pin(h, hd);
    int e = errno;
    if (p != NULL || e != EINVAL)
        fail_msg("%s: carve_pin(0x%llx) = %p errno %d, expected NULL/EINVAL", what,
                 (unsigned long long)hd, p, e);
    if (carve_hsize(h, hd) != 0)
        fail_msg("%s: carve_hsize(0x%llx) != 0", what, (unsigned long long)hd);
    int st = carve_unpin(h, hd);
    if (st != CARVE_ERR_NOT_OWNED)
        fail_msg("%s: carve_unpin(0x%llx) = %d (%s), expected NOT_OWNED", what,
                 (unsigned long long)hd, st, carve_strerror(st));
    st = carve_hfree(h, hd);
    if (st != CARVE_ERR_NOT_OWNED)
        fail_msg("%s: carve_hfree(0x%llx) = %d (%s), expected NOT_OWNED", what,
                 (unsigned long long)hd, st, carve_strerror(st));
    st = carve_hresize(h, hd, 64);
    if (st != CARVE_ERR_NOT_OWNED)
        fail_msg("%s: carve_hresize(0x%llx, 64) = %d (%s), expected NOT_OWNED", what,
                 (unsigned long long)hd, st, carve_strerror(st));
    snap_same(h, &sn, 1, what);
    snap_drop(&sn);
}

/* ------------------------------------------------------------------------ */
/* carve_halloc                                                              */
/* ------------------------------------------------------------------------ */

/* Blocks of every small size and some large ones: hsize >= request, the
 * block costs what the header says (request + CARVE_HANDLE_OVERHEAD, rounded
 * up), pinned addresses are 16-aligned and in the buffer, contents stay. */
static void test_halloc_basic(void **state)
{
    (void)state;
    for (size_t pi = 0; pi < UH_NPOLICIES; pi++) {
        for (size_t fi = 0; fi < NFLAGS; fi++) {
            uh u;
            carve_heap *h = make_heap(&u, HEAP_SIZE, uh_policies[pi], flag_sets[fi], 1024, 0);
            hs *s = hs_new(h, &u.r);
            for (size_t req = 1; req <= 600; req += (req < 64 ? 1 : 29)) {
                carve_stats before = uh_stats(h);
                size_t i = hs_add_ok(s, req, req * 7 + fi);
                carve_stats after = uh_stats(h);
                size_t want = tu_handle_block_size(req);
                if (after.used_bytes - before.used_bytes != want)
                    fail_msg("halloc(%zu) took %zu bytes, the header promises a block of %zu", req,
                             after.used_bytes - before.used_bytes, want);
                assert_int_equal(after.live_handles, before.live_handles + 1);
                assert_int_equal(after.live_blocks, before.live_blocks + 1);
                assert_int_equal(after.allocs, before.allocs + 1);
                assert_int_equal(after.pinned_handles, 0);
                /* The usable size is the block less its overhead. */
                assert_int_equal(s->e[i].usable, want - CARVE_HANDLE_OVERHEAD);
            }
            for (size_t k = 0; k < 4; k++)
                hs_add_ok(s, 5000 + 3000 * k, 99 + k);
            hs_verify(s);
            ASSERT_HEAP_SANE(h);
            /* Free them all: the heap's shape is as fresh again (the table
             * stays). */
            for (size_t i = 0; i < s->n; i++)
                hs_free(s, i);
            carve_stats st = uh_stats(h);
            assert_int_equal(st.live_handles, 0);
            assert_int_equal(st.frees, st.allocs);
            ASSERT_HEAP_SANE(h);
            free(s);
            uh_destroy(&u);
        }
    }
}

/* Size 0 and a NULL heap: 0 with EINVAL; sizes that cannot fit: 0 with
 * ENOMEM; either way nothing changes. */
static void test_halloc_errors(void **state)
{
    (void)state;
    for (size_t pi = 0; pi < UH_NPOLICIES; pi++) {
        uh u;
        carve_heap *h = make_heap(&u, HEAP_SIZE, uh_policies[pi], 0, 64, 0);
        hs *s = hs_new(h, &u.r);
        hs_add_ok(s, 100, 1);
        hs_raw(s, 300, 2);

        snap sn = snap_take(h);
        errno = 0;
        assert_int_equal(carve_halloc(h, 0), 0);
        assert_int_equal(errno, EINVAL);
        snap_same(h, &sn, 1, "halloc(0)");
        errno = 0;
        assert_int_equal(carve_halloc(NULL, 16), 0);
        assert_int_equal(errno, EINVAL);

        carve_stats st = uh_stats(h);
        const size_t huge[] = {SIZE_MAX, SIZE_MAX - 1, SIZE_MAX - CARVE_HANDLE_OVERHEAD,
                               SIZE_MAX - CARVE_HANDLE_OVERHEAD - CARVE_ALIGNMENT, SIZE_MAX / 2,
                               SIZE_MAX / 4 * 3, HEAP_SIZE, st.capacity,
                               /* one byte more than all the free bytes hold */
                               st.free_bytes - CARVE_HANDLE_OVERHEAD + 1};
        for (size_t k = 0; k < sizeof huge / sizeof huge[0]; k++) {
            errno = 0;
            carve_handle hd = carve_halloc(h, huge[k]);
            if (hd != 0 || errno != ENOMEM)
                fail_msg("carve_halloc(%zu) = 0x%llx errno %d, expected 0/ENOMEM", huge[k],
                         (unsigned long long)hd, errno);
            snap_same(h, &sn, 1, "halloc(huge)");
            sn.st = uh_stats(h); /* failed_allocs moved by one */
        }
        hs_verify(s);
        ASSERT_HEAP_SANE(h);
        snap_drop(&sn);
        free(s);
        uh_destroy(&u);
    }
}

/* In a fresh heap whose table already exists, a handle request of exactly
 * largest_free - (CARVE_HANDLE_OVERHEAD - CARVE_BLOCK_OVERHEAD) fits (the
 * handle costs that much more than a raw block); 16 bytes more does not. */
static void test_halloc_exact_fit(void **state)
{
    (void)state;
    for (size_t pi = 0; pi < UH_NPOLICIES; pi++) {
        uh u;
        carve_heap *h = make_heap(&u, HEAP_SIZE, uh_policies[pi], CARVE_NO_RUNS, 16, 0);
        carve_stats st = uh_stats(h);
        size_t extra = CARVE_HANDLE_OVERHEAD - CARVE_BLOCK_OVERHEAD;
        assert_true(st.largest_free > extra);
        errno = 0;
        assert_int_equal(carve_halloc(h, st.largest_free - extra + CARVE_ALIGNMENT), 0);
        assert_int_equal(errno, ENOMEM);
        carve_handle hd = carve_halloc(h, st.largest_free - extra);
        if (hd == 0)
            fail_msg("halloc(largest_free %zu - %zu) failed in a fresh heap", st.largest_free,
                     extra);
        carve_stats full = uh_stats(h);
        assert_int_equal(full.free_bytes, 0);
        ASSERT_STATUS(carve_hfree(h, hd), CARVE_OK);
        ASSERT_HEAP_SANE(h);
        uh_destroy(&u);
    }
}

/* "A call that fails changes nothing in the heap": a first carve_halloc
 * that cannot fit, in a heap whose table is made on demand (max_handles
 * 0), leaves no table behind either. */
static void test_failed_halloc_changes_nothing(void **state)
{
    (void)state;
    for (size_t pi = 0; pi < UH_NPOLICIES; pi++) {
        uh u;
        carve_heap *h = make_heap(&u, HEAP_SIZE, uh_policies[pi], 0, 0, 0);
        hs *s = hs_new(h, &u.r);
        hs_raw(s, 1000, 1);
        snap sn = snap_take(h);
        errno = 0;
        assert_int_equal(carve_halloc(h, sn.st.free_bytes), 0);
        assert_int_equal(errno, ENOMEM);
        snap_same(h, &sn, 1, "a first halloc that does not fit");
        snap_drop(&sn);
        hs_verify(s);
        free(s);
        uh_destroy(&u);
    }
}

/* max_handles = N: N live handles, then 0 with ENOMEM (nothing changes);
 * free one and the next halloc works again. */
static void test_handle_table_full(void **state)
{
    (void)state;
    const size_t caps[] = {1, 2, 7, 64, 300};
    for (size_t ci = 0; ci < sizeof caps / sizeof caps[0]; ci++) {
        for (size_t pi = 0; pi < UH_NPOLICIES; pi++) {
            size_t n = caps[ci];
            uh u;
            carve_heap *h = make_heap(&u, HEAP_SIZE, uh_policies[pi], 0, n, 0);
            hs *s = hs_new(h, &u.r);
            for (size_t i = 0; i < n; i++)
                hs_add_ok(s, 16 + i % 50, i);
            carve_stats st = uh_stats(h);
            assert_int_equal(st.live_handles, n);
            assert_true(st.largest_free > 1000); /* room for blocks, none for handles */
            snap sn = snap_take(h);
            for (int again = 0; again < 3; again++) {
                errno = 0;
                carve_handle hd = carve_halloc(h, 16);
                if (hd != 0 || errno != ENOMEM)
                    fail_msg("max_handles %zu: handle %zu = 0x%llx errno %d, expected 0/ENOMEM", n,
                             n + 1, (unsigned long long)hd, errno);
                snap_same(h, &sn, 1, "halloc with a full table");
                sn.st = uh_stats(h);
            }
            snap_drop(&sn);
            /* Free one (in the middle when there is one): room again. */
            size_t victim = n / 2;
            carve_handle old = s->e[victim].hd;
            hs_free(s, victim);
            size_t k = hs_add_ok(s, 40, 777);
            assert_true(s->e[k].hd != old);
            assert_handle_refused(h, old, "the freed handle after its entry was reused");
            errno = 0;
            assert_int_equal(carve_halloc(h, 16), 0);
            assert_int_equal(errno, ENOMEM);
            hs_verify(s);
            ASSERT_HEAP_SANE(h);
            free(s);
            uh_destroy(&u);
        }
    }
}

/* max_handles 0: the table is made at the first halloc and grows; every
 * handle stays valid through the growth. */
static void test_handle_table_grows(void **state)
{
    (void)state;
    for (size_t pi = 0; pi < UH_NPOLICIES; pi++) {
        uh u;
        carve_heap *h = make_heap(&u, 1024u * 1024u, uh_policies[pi], 0, 0, 0);
        carve_stats fresh = uh_stats(h);
        assert_int_equal(fresh.live_handles, 0);
        hs *s = hs_new(h, &u.r);
        for (size_t i = 0; i < 1500; i++) {
            hs_add_ok(s, 1 + i % 97, i * 3);
            if (i % 100 == 0)
                hs_verify(s);
        }
        hs_verify(s);
        ASSERT_HEAP_SANE(h);
        carve_stats st = uh_stats(h);
        assert_int_equal(st.live_handles, 1500);
        for (size_t i = 0; i < s->n; i += 2)
            hs_free(s, i);
        hs_verify(s);
        for (size_t i = 1; i < s->n; i += 2)
            hs_free(s, i);
        st = uh_stats(h);
        assert_int_equal(st.live_handles, 0);
        ASSERT_HEAP_SANE(h);
        free(s);
        uh_destroy(&u);
    }
}

/* Raw blocks, largest first, until not even the smallest fits; returns how
 * many were made. */
static size_t hs_raw_fill(hs *s, uint64_t seed)
{
    size_t made = 0;
    for (size_t req = 8192; req >= 16; req /= 2)
        while (s->nr < MAXH && hs_raw_try(s, req, seed + made) != MAXH)
            made++;
    return made;
}

static void hs_raw_free(hs *s, size_t i)
{
    ASSERT_STATUS(carve_free(s->h, s->raw[i].p), CARVE_OK);
    s->raw[i].p = NULL;
}

/* The same failure in a heap at its peak: the handle's block, taken and
 * given back, must not leave a higher peak_used_bytes behind (a failed
 * call changes nothing but failed_allocs). */
static void test_handle_table_cannot_grow_at_peak(void **state)
{
    (void)state;
    for (size_t pi = 0; pi < UH_NPOLICIES; pi++) {
        uh u;
        carve_heap *h = make_heap(&u, 64u * 1024u, uh_policies[pi], CARVE_NO_RUNS, 0, 0);
        for (size_t i = 0; i < 64; i++) /* the first table's entries, all taken */
            assert_true(carve_halloc(h, 16) != 0);
        /* Everything but a hole for one 16-byte handle's block, which is
         * far too small for a table of 128 entries. */
        size_t hole = tu_handle_block_size(16);
        void *fill = carve_alloc(h, uh_stats(h).largest_free - hole);
        assert_non_null(fill);
        carve_stats before = uh_stats(h);
        assert_int_equal(before.peak_used_bytes, before.used_bytes);
        assert_true(before.largest_free >= 16 + CARVE_HANDLE_OVERHEAD - CARVE_BLOCK_OVERHEAD);
        errno = 0;
        assert_int_equal(carve_halloc(h, 16), 0);
        assert_int_equal(errno, ENOMEM);
        carve_stats after = uh_stats(h);
        ASSERT_STATS_SAME_BUT_FAILED(before, after);
        assert_int_equal(after.failed_allocs, before.failed_allocs + 1);
        ASSERT_STATUS(carve_free(h, fill), CARVE_OK);
        ASSERT_HEAP_SANE(h);
        uh_destroy(&u);
    }
}

/* A growing table that is full and cannot grow (the heap has room for the
 * new handle's block but not for a table twice the size, and compacting
 * could not make that room): carve_halloc fails with ENOMEM, and the
 * block it had taken goes back, so nothing changes. */
static void test_handle_table_cannot_grow(void **state)
{
    (void)state;
    for (size_t pi = 0; pi < UH_NPOLICIES; pi++) {
        uh u;
        carve_heap *h = make_heap(&u, HEAP_SIZE, uh_policies[pi], CARVE_NO_RUNS, 0, 0);
        hs *s = hs_new(h, &u.r);
        for (size_t i = 0; i < 64; i++) /* the first table's entries, all taken */
            hs_add_ok(s, 100, i);
        size_t gap = hs_raw(s, 16, 999);
        hs_raw_fill(s, 1000);
        /* Room for a 16-byte handle's block (as large as gap's), and for
         * no table of 128 entries, whatever is moved. */
        hs_raw_free(s, gap);
        carve_stats st = uh_stats(h);
        /* A 16-byte handle's block is a 24-byte raw request's (the trailer). */
        assert_int_equal(tu_handle_block_size(16), tu_block_size(24));
        assert_true(st.largest_free >= 24);
        assert_true(st.free_bytes < 128 * 16);
        snap sn = snap_take(h);
        for (int again = 0; again < 3; again++) {
            errno = 0;
            assert_int_equal(carve_halloc(h, 16), 0);
            assert_int_equal(errno, ENOMEM);
            snap_same(h, &sn, 1, "halloc whose table cannot grow");
            sn.st = uh_stats(h);
        }
        snap_drop(&sn);
        /* Room for the table: the next halloc grows it. */
        for (size_t i = gap + 1; i <= gap + 8; i++)
            hs_raw_free(s, i);
        size_t k = hs_add_ok(s, 16, 77);
        hs_verify(s);
        assert_int_equal(uh_stats(h).live_handles, 65);
        assert_true(s->e[k].hd != 0);
        ASSERT_HEAP_SANE(h);
        free(s);
        uh_destroy(&u);
    }
}

/* A table that can grow only into space that compaction gathers: the
 * halloc compacts the handle blocks together and then grows the table.
 * Every handle keeps its contents, and raw blocks stay where they are. */
static void test_handle_table_grows_by_compacting(void **state)
{
    (void)state;
    for (size_t pi = 0; pi < UH_NPOLICIES; pi++) {
        uh u;
        carve_heap *h = make_heap(&u, HEAP_SIZE, uh_policies[pi], CARVE_NO_RUNS, 0, 0);
        hs *s = hs_new(h, &u.r);
        /* Handles and raw blocks alternating: freeing the raw ones leaves
         * gaps of 112 bytes between handle blocks, none of them room for
         * the 2 KiB table. */
        for (size_t i = 0; i < 64; i++) {
            hs_add_ok(s, 100, i);
            hs_raw(s, 100, 500 + i);
        }
        hs_raw_fill(s, 1000);
        for (size_t i = 0; i < 64; i++)
            hs_raw_free(s, i);
        carve_stats before = uh_stats(h);
        assert_true(before.largest_free < 128 * 16);
        assert_true(before.free_bytes >= 128 * 16 + tu_handle_block_size(16));
        size_t k = hs_add_ok(s, 16, 77);
        carve_stats after = uh_stats(h);
        assert_true(after.compactions > before.compactions);
        assert_int_equal(after.live_handles, 65);
        assert_true(s->e[k].hd != 0);
        hs_verify(s); /* raw blocks: same addresses, same contents */
        ASSERT_HEAP_SANE(h);
        free(s);
        uh_destroy(&u);
    }
}

/* max_handles is part of the options carve_min_buffer_size takes: a heap of
 * that size can be made; a table that cannot fit (or whose size overflows)
 * is refused with EINVAL, never wrapped around. */
static void test_max_handles_sizing(void **state)
{
    (void)state;
    const size_t caps[] = {1, 10, 1000, 100000};
    size_t prev = 0;
    for (size_t ci = 0; ci < sizeof caps / sizeof caps[0]; ci++) {
        carve_options o = uh_opts(CARVE_GOOD_FIT, 0);
        o.max_handles = caps[ci];
        size_t min = carve_min_buffer_size(&o);
        if (min < caps[ci] * 16u)
            fail_msg("carve_min_buffer_size with max_handles %zu is %zu, less than the table's "
                     "%zu bytes",
                     caps[ci], min, caps[ci] * 16u);
        assert_true(min >= prev);
        prev = min;
        for (size_t m = 0; m < 64; m += 21) {
            uh u;
            carve_heap *h = uh_make_opts(&u, min, m, &o);
            ASSERT_HEAP_SANE(h);
            uh_destroy(&u);
        }
    }
    const size_t absurd[] = {SIZE_MAX, SIZE_MAX / 16 + 1, SIZE_MAX / 2, SIZE_MAX / 64};
    for (size_t k = 0; k < sizeof absurd / sizeof absurd[0]; k++) {
        carve_options o = uh_opts(CARVE_GOOD_FIT, 0);
        o.max_handles = absurd[k];
        /* A table no buffer here can hold: the sizing helpers say 0, not a
         * size carve_init would refuse (or one that wrapped around).  On a
         * 32-bit machine the smallest of these tables (1 GiB) still fits
         * in a buffer, and then the size given must hold it. */
        size_t min = carve_min_buffer_size(&o);
        if (min == 0 ? absurd[k] <= SIZE_MAX / 64u && sizeof(size_t) < 8u : min / 16u < absurd[k])
            fail_msg("carve_min_buffer_size with max_handles %zu is %zu", absurd[k], min);
        assert_int_equal(carve_max_alloc_size(HEAP_SIZE, &o), 0);
        tu_region r;
        assert_int_equal(tu_region_make(&r, HEAP_SIZE, 0, 64, 0), 0);
        ASSERT_NULL_ERRNO(carve_init(r.buf, HEAP_SIZE, &o), EINVAL);
        assert_true(tu_region_guards_ok(&r));
        tu_region_free(&r);
    }
}

/* ------------------------------------------------------------------------ */
/* carve_pin / carve_unpin                                                   */
/* ------------------------------------------------------------------------ */

/* 0, NULL heap, stale handles (freed; freed and the entry reused), every
 * single-bit change of a live handle (a wrong generation or another index,
 * whatever the encoding), made-up values, and handles of another heap: all
 * refused with the documented status, none reaching a block. */
static void test_bad_handles_refused(void **state)
{
    (void)state;
    for (size_t pi = 0; pi < UH_NPOLICIES; pi++) {
        for (size_t mh = 0; mh < 2; mh++) {
            uh u;
            carve_heap *h = make_heap(&u, HEAP_SIZE, uh_policies[pi], 0, mh ? 8 : 0, 0);
            hs *s = hs_new(h, &u.r);
            for (size_t i = 0; i < 6; i++)
                hs_add_ok(s, 50 + 10 * i, 10 + i);
            hs_pin(s, 1);

            assert_handle_refused(h, 0, "handle 0");
            /* Freed: stale at once. */
            carve_handle stale = s->e[2].hd;
            hs_free(s, 2);
            assert_handle_refused(h, stale, "a freed handle");
            /* Its entry reused: the old handle still names nothing. */
            size_t k = hs_add_ok(s, 70, 1234);
            assert_true(s->e[k].hd != stale);
            assert_handle_refused(h, stale, "a freed handle after reuse");
            hs_verify(s);

            /* Every one-bit change of a live handle that is not itself a live
             * handle: a wrong generation, or an index that is not in use or
             * beyond the table. */
            for (size_t i = 0; i < s->n; i++) {
                if (s->e[i].hd == 0)
                    continue;
                for (unsigned bit = 0; bit < 64; bit++) {
                    carve_handle v = s->e[i].hd ^ ((carve_handle)1 << bit);
                    int live = v == 0;
                    for (size_t j = 0; j < s->n; j++)
                        live |= s->e[j].hd == v;
                    if (!live)
                        assert_handle_refused(h, v, "a handle with one bit changed");
                }
            }
            const carve_handle madeup[] = {1,
                                           2,
                                           0xFFFFFFFFu,
                                           (carve_handle)1 << 32,
                                           ((carve_handle)1 << 32) + 1,
                                           ((carve_handle)5 << 32) | 5u,
                                           UINT64_MAX,
                                           UINT64_MAX - 1,
                                           (carve_handle)1 << 63,
                                           0x00000000FFFF0001ull,
                                           0x0001000000000001ull};
            for (size_t m = 0; m < sizeof madeup / sizeof madeup[0]; m++) {
                int live = 0;
                for (size_t j = 0; j < s->n; j++)
                    live |= s->e[j].hd == madeup[m];
                if (!live)
                    assert_handle_refused(h, madeup[m], "a made-up handle");
            }
            /* A NULL heap. */
            errno = 0;
            assert_null(carve_pin(NULL, s->e[0].hd));
            assert_int_equal(errno, EINVAL);
            ASSERT_STATUS(carve_unpin(NULL, s->e[0].hd), CARVE_ERR_INVALID);
            ASSERT_STATUS(carve_hfree(NULL, s->e[0].hd), CARVE_ERR_INVALID);
            ASSERT_STATUS(carve_hresize(NULL, s->e[0].hd, 10), CARVE_ERR_INVALID);
            assert_int_equal(carve_hsize(NULL, s->e[0].hd), 0);
            assert_int_equal(carve_compact(NULL, SIZE_MAX), 0);

            hs_verify(s);
            ASSERT_HEAP_SANE(h);
            free(s);
            uh_destroy(&u);
        }
    }
}

/* Handles of another heap are refused: "NULL with errno = EINVAL for ... one
 * that is not of this heap; a bad handle never reaches another block".  Two
 * heaps made alike must therefore not hand out the same handle values. */
static void test_handles_of_another_heap(void **state)
{
    (void)state;
    for (size_t pi = 0; pi < UH_NPOLICIES; pi++) {
        uh ua, ub;
        carve_heap *ha = make_heap(&ua, HEAP_SIZE, uh_policies[pi], 0, 32, 0);
        carve_heap *hb = make_heap(&ub, HEAP_SIZE, uh_policies[pi], 0, 32, 0);
        hs *a = hs_new(ha, &ua.r);
        hs *b = hs_new(hb, &ub.r);
        for (size_t i = 0; i < 8; i++) {
            hs_add_ok(a, 100, i);
            hs_add_ok(b, 100, 100 + i);
        }
        for (size_t i = 0; i < b->n; i++) {
            for (size_t j = 0; j < a->n; j++)
                if (b->e[i].hd == a->e[j].hd)
                    fail_msg("heap B's handle 0x%llx is also a live handle of heap A: a handle "
                             "is not tied to its heap, so carve_pin(A, it) reaches A's block",
                             (unsigned long long)b->e[i].hd);
            assert_handle_refused(ha, b->e[i].hd, "a handle of another heap");
        }
        hs_verify(a);
        hs_verify(b);
        free(a);
        free(b);
        uh_destroy(&ua);
        uh_destroy(&ub);
    }
}

/* Pins nest: n pins need n unpins; the address stays while pinned (through
 * allocations, frees and compactions); the pin counts show in the stats and
 * the walk; one unpin too many is CARVE_ERR_INVALID and changes nothing. */
static void test_pin_nesting(void **state)
{
    (void)state;
    for (size_t pi = 0; pi < UH_NPOLICIES; pi++) {
        uh u;
        carve_heap *h = make_heap(&u, HEAP_SIZE, uh_policies[pi], 0, 64, 0);
        hs *s = hs_new(h, &u.r);
        size_t front = hs_add_ok(s, 3000, 1);
        size_t a = hs_add_ok(s, 500, 2);
        size_t gap = hs_add_ok(s, 900, 4);
        size_t b = hs_add_ok(s, 700, 3);
        hs_pin(s, a);
        unsigned char *pa = s->e[a].pinned_at;
        for (unsigned k = 2; k <= 5; k++) {
            hs_pin(s, a);
            assert_ptr_equal(s->e[a].pinned_at, pa);
            carve_block blk = walk_block_of(h, pa);
            assert_int_equal(blk.kind, CARVE_BLOCK_HANDLE);
            assert_int_equal(blk.pinned, k);
            carve_stats st = uh_stats(h);
            assert_int_equal(st.pinned_handles, 1); /* handles pinned, not pins */
        }
        /* Free space before and after it, and the heap compacts: b moves
         * into the space after a, a stays. */
        hs_free(s, front);
        hs_free(s, gap);
        unsigned char *pb = where(h, &u.r, s->e[b].hd);
        size_t moved = carve_compact(h, SIZE_MAX);
        assert_ptr_equal(where(h, &u.r, s->e[a].hd), pa);
        assert_true(moved > 0);
        assert_true(where(h, &u.r, s->e[b].hd) < pb);
        hs_verify(s);
        for (unsigned k = 5; k > 1; k--) {
            hs_unpin(s, a);
            carve_block blk = walk_block_of(h, pa);
            assert_int_equal(blk.pinned, k - 1);
        }
        hs_unpin(s, a);
        carve_stats st = uh_stats(h);
        assert_int_equal(st.pinned_handles, 0);
        /* Not pinned any more: one unpin too many. */
        snap sn = snap_take(h);
        ASSERT_STATUS(carve_unpin(h, s->e[a].hd), CARVE_ERR_INVALID);
        ASSERT_STATUS(carve_unpin(h, s->e[b].hd), CARVE_ERR_INVALID);
        snap_same(h, &sn, 0, "unpin of an unpinned handle");
        snap_drop(&sn);
        hs_verify(s);
        ASSERT_HEAP_SANE(h);
        free(s);
        uh_destroy(&u);
    }
}

/* The pin count's limit: a pin that would take it past UINT32_MAX fails
 * with EOVERFLOW and changes nothing.  Four billion pins take too long for
 * a unit test, so the test finds the count in the handle table (the only
 * CARVE_BLOCK_META block of a heap without runs) by the bytes one more pin
 * changes, a native 32-bit count, and raises it there. */
static void test_pin_count_limit(void **state)
{
    (void)state;
    const unsigned flags[] = {CARVE_NO_RUNS, CARVE_NO_RUNS | CARVE_THREADSAFE};
    for (size_t fi = 0; fi < sizeof flags / sizeof flags[0]; fi++) {
        uh u;
        carve_heap *h = make_heap(&u, HEAP_SIZE, CARVE_GOOD_FIT, flags[fi], 8, 0);
        hs *s = hs_new(h, &u.r);
        size_t k = hs_add_ok(s, 64, 9);
        hs_add_ok(s, 64, 10);
        uw *w = uw_collect(h);
        const carve_block *table = NULL;
        for (size_t i = 0; i < w->n; i++) {
            if (w->b[i].kind == CARVE_BLOCK_META) {
                assert_null(table);
                table = &w->b[i];
            }
        }
        assert_non_null(table);
        unsigned char *t = (unsigned char *)h + table->offset;
        size_t tsize = table->size;
        free(w);

        unsigned char *before = malloc(tsize);
        assert_non_null(before);
        hs_pin(s, k);
        memcpy(before, t, tsize);
        hs_pin(s, k);
        size_t changed = tsize;
        for (size_t i = 0; i < tsize; i++) {
            if (t[i] != before[i]) {
                assert_int_equal(changed, tsize); /* one byte: 1 -> 2 */
                changed = i;
            }
        }
        assert_true(changed < tsize);
        unsigned char *count = t + (changed & ~(size_t)3);
        uint32_t pins;
        memcpy(&pins, count, sizeof pins);
        assert_int_equal(pins, 2);

        pins = UINT32_MAX - 1u;
        memcpy(count, &pins, sizeof pins);
        assert_non_null(carve_pin(h, s->e[k].hd)); /* the last pin there is */
        snap sn = snap_take(h);
        for (int again = 0; again < 3; again++) {
            errno = 0;
            assert_null(carve_pin(h, s->e[k].hd));
            assert_int_equal(errno, EOVERFLOW);
            snap_same(h, &sn, 0, "a pin past the limit");
        }
        snap_drop(&sn);
        memcpy(&pins, count, sizeof pins);
        assert_int_equal(pins, UINT32_MAX);
        ASSERT_STATUS(carve_unpin(h, s->e[k].hd), CARVE_OK);
        assert_non_null(carve_pin(h, s->e[k].hd));

        /* Back to the two pins the test holds, and out of them. */
        pins = 2;
        memcpy(count, &pins, sizeof pins);
        assert_int_equal(uh_stats(h).pinned_handles, 1);
        hs_unpin(s, k);
        hs_unpin(s, k);
        assert_int_equal(uh_stats(h).pinned_handles, 0);
        hs_verify(s);
        ASSERT_HEAP_SANE(h);
        free(before);
        free(s);
        uh_destroy(&u);
    }
}

/* Pinning and unpinning move nothing and count nothing but the pins. */
static void test_pin_changes_nothing_else(void **state)
{
    (void)state;
    uh u;
    carve_heap *h = make_heap(&u, HEAP_SIZE, CARVE_GOOD_FIT, 0, 64, 0);
    hs *s = hs_new(h, &u.r);
    for (size_t i = 0; i < 10; i++)
        hs_add_ok(s, 100 + i * 100, i);
    for (size_t i = 0; i < 10; i += 2)
        hs_free(s, i);
    carve_stats before = uh_stats(h);
    for (size_t i = 1; i < 10; i += 2)
        hs_pin(s, i);
    carve_stats mid = uh_stats(h);
    assert_int_equal(mid.pinned_handles, 5);
    mid.pinned_handles = before.pinned_handles;
    ASSERT_STATS_SAME(before, mid);
    for (size_t i = 1; i < 10; i += 2)
        hs_unpin(s, i);
    carve_stats after = uh_stats(h);
    ASSERT_STATS_SAME(before, after);
    hs_verify(s);
    free(s);
    uh_destroy(&u);
}

/* ------------------------------------------------------------------------ */
/* carve_hfree                                                               */
/* ------------------------------------------------------------------------ */

static void test_hfree(void **state)
{
    (void)state;
    for (size_t pi = 0; pi < UH_NPOLICIES; pi++) {
        for (size_t fi = 0; fi < NFLAGS; fi++) {
            uh u;
            carve_heap *h = make_heap(&u, HEAP_SIZE, uh_policies[pi], flag_sets[fi], 64, 0);
            hs *s = hs_new(h, &u.r);
            size_t a = hs_add_ok(s, 200, 1);
            size_t b = hs_add_ok(s, 300, 2);
            size_t c = hs_add_ok(s, 400, 3);

            /* Pinned: CARVE_ERR_PINNED and nothing changes, however deep. */
            hs_pin(s, b);
            hs_pin(s, b);
            snap sn = snap_take(h);
            ASSERT_STATUS(carve_hfree(h, s->e[b].hd), CARVE_ERR_PINNED);
            snap_same(h, &sn, 0, "hfree of a handle pinned twice");
            snap_drop(&sn);
            hs_unpin(s, b);
            sn = snap_take(h);
            ASSERT_STATUS(carve_hfree(h, s->e[b].hd), CARVE_ERR_PINNED);
            snap_same(h, &sn, 0, "hfree of a handle pinned once");
            snap_drop(&sn);
            hs_unpin(s, b);
            hs_verify(s);

            /* Freed: the counters follow, the bytes go back. */
            carve_stats before = uh_stats(h);
            carve_handle old = s->e[b].hd;
            hs_free(s, b);
            carve_stats after = uh_stats(h);
            assert_int_equal(after.live_handles, before.live_handles - 1);
            assert_int_equal(after.live_blocks, before.live_blocks - 1);
            assert_int_equal(after.frees, before.frees + 1);
            assert_int_equal(after.used_bytes, before.used_bytes - tu_handle_block_size(300));
            ASSERT_HEAP_SANE(h);

            /* Twice: NOT_OWNED, nothing changes; the neighbours are intact. */
            sn = snap_take(h);
            ASSERT_STATUS(carve_hfree(h, old), CARVE_ERR_NOT_OWNED);
            ASSERT_STATUS(carve_hfree(h, old), CARVE_ERR_NOT_OWNED);
            ASSERT_STATUS(carve_hfree(h, 0), CARVE_ERR_NOT_OWNED);
            snap_same(h, &sn, 0, "hfree of a stale handle");
            snap_drop(&sn);
            hs_verify(s);
            hs_free(s, a);
            hs_free(s, c);
            carve_stats end = uh_stats(h);
            assert_int_equal(end.live_handles, 0);
            ASSERT_HEAP_SANE(h);
            free(s);
            uh_destroy(&u);
        }
    }
}

/* A handle block's payload is not a raw block: carve_free and carve_realloc
 * refuse it (it would leave the handle naming a free block), nothing
 * changes, and the handle still works. */
static void test_raw_calls_on_handle_payload(void **state)
{
    (void)state;
    for (size_t pi = 0; pi < UH_NPOLICIES; pi++) {
        uh u;
        carve_heap *h = make_heap(&u, HEAP_SIZE, uh_policies[pi], 0, 16, 0);
        hs *s = hs_new(h, &u.r);
        size_t a = hs_add_ok(s, 500, 1);
        hs_add_ok(s, 500, 2);
        hs_pin(s, a);
        unsigned char *p = s->e[a].pinned_at;
        snap sn = snap_take(h);
        int st = carve_free(h, p);
        if (st == CARVE_OK)
            fail_msg("carve_free of a handle block's payload returned CARVE_OK");
        errno = 0;
        void *q = carve_realloc(h, p, 1000);
        if (q != NULL || errno != EINVAL)
            fail_msg("carve_realloc of a handle block's payload = %p errno %d, expected "
                     "NULL/EINVAL",
                     q, errno);
        snap_same(h, &sn, 1, "raw calls on a handle payload");
        snap_drop(&sn);
        hs_unpin(s, a);
        hs_verify(s);
        ASSERT_HEAP_SANE(h);
        free(s);
        uh_destroy(&u);
    }
}

/* ------------------------------------------------------------------------ */
/* carve_hresize / carve_hsize                                               */
/* ------------------------------------------------------------------------ */

static void test_hresize_errors(void **state)
{
    (void)state;
    for (size_t pi = 0; pi < UH_NPOLICIES; pi++) {
        uh u;
        carve_heap *h = make_heap(&u, HEAP_SIZE, uh_policies[pi], 0, 16, 0);
        hs *s = hs_new(h, &u.r);
        size_t a = hs_add_ok(s, 300, 1);
        size_t b = hs_add_ok(s, 300, 2);
        hs_raw(s, 100, 3);
        hs_pin(s, b);
        snap sn = snap_take(h);
        /* Size 0, pinned or not. */
        ASSERT_STATUS(carve_hresize(h, s->e[a].hd, 0), CARVE_ERR_INVALID);
        ASSERT_STATUS(carve_hresize(h, s->e[b].hd, 0), CARVE_ERR_INVALID);
        snap_same(h, &sn, 1, "hresize to 0");
        /* Too big for the heap however it is compacted, pinned or not. */
        carve_stats st = uh_stats(h);
        const size_t huge[] = {SIZE_MAX, SIZE_MAX - CARVE_HANDLE_OVERHEAD, SIZE_MAX / 2, HEAP_SIZE,
                               st.free_bytes + s->e[a].usable + 1};
        for (size_t k = 0; k < sizeof huge / sizeof huge[0]; k++) {
            ASSERT_STATUS(carve_hresize(h, s->e[a].hd, huge[k]), CARVE_ERR_NOMEM);
            /* Counted as a failed request, as a realloc's would be. */
            assert_int_equal(uh_stats(h).failed_allocs, sn.st.failed_allocs + 1u);
            snap_same(h, &sn, 1, "hresize too big");
            sn.st = uh_stats(h);
            int r = carve_hresize(h, s->e[b].hd, huge[k]);
            if (r != CARVE_ERR_NOMEM && r != CARVE_ERR_PINNED)
                fail_msg("hresize(pinned, %zu) = %d (%s), expected NOMEM or PINNED", huge[k], r,
                         carve_strerror(r));
            snap_same(h, &sn, 1, "hresize of a pinned block, too big");
            sn.st = uh_stats(h);
        }
        snap_drop(&sn);
        hs_unpin(s, b);
        hs_verify(s);
        ASSERT_HEAP_SANE(h);
        free(s);
        uh_destroy(&u);
    }
}

/* Shrinking stays in place, pinned or not, and keeps the prefix. */
static void test_hresize_shrink_in_place(void **state)
{
    (void)state;
    for (size_t pi = 0; pi < UH_NPOLICIES; pi++) {
        for (int pinned = 0; pinned < 2; pinned++) {
            uh u;
            carve_heap *h = make_heap(&u, HEAP_SIZE, uh_policies[pi], 0, 16, 0);
            hs *s = hs_new(h, &u.r);
            size_t a = hs_add_ok(s, 4000, 11);
            size_t b = hs_add_ok(s, 100, 12); /* a's neighbour stays live */
            (void)b;
            unsigned char *p = where(h, &u.r, s->e[a].hd);
            if (pinned)
                hs_pin(s, a);
            const size_t sizes[] = {3999, 3000, 1000, 257, 100, 17, 16, 1};
            size_t prev = s->e[a].usable;
            for (size_t k = 0; k < sizeof sizes / sizeof sizes[0]; k++) {
                carve_stats before = uh_stats(h);
                ASSERT_STATUS(carve_hresize(h, s->e[a].hd, sizes[k]), CARVE_OK);
                size_t us = carve_hsize(h, s->e[a].hd);
                assert_true(us >= sizes[k]);
                assert_true(us <= prev);
                assert_ptr_equal(where(h, &u.r, s->e[a].hd), p);
                assert_int_equal(tu_verify(p, s->e[a].seed, us), us);
                carve_stats after = uh_stats(h);
                assert_true(after.used_bytes <= before.used_bytes);
                assert_int_equal(after.live_handles, before.live_handles);
                prev = us;
                s->e[a].usable = us;
            }
            /* The tail went back, all but less than a smallest block. */
            carve_block blk = walk_block_of(h, p);
            assert_true(blk.size < tu_handle_block_size(1) + CARVE_MIN_BLOCK);
            assert_int_equal(blk.kind, CARVE_BLOCK_HANDLE);
            if (pinned)
                hs_unpin(s, a);
            hs_verify(s);
            ASSERT_HEAP_SANE(h);
            free(s);
            uh_destroy(&u);
        }
    }
}

/* Growing takes the free block after it, in place, even when pinned. */
static void test_hresize_grow_in_place(void **state)
{
    (void)state;
    for (size_t pi = 0; pi < UH_NPOLICIES; pi++) {
        for (int pinned = 0; pinned < 2; pinned++) {
            uh u;
            carve_heap *h = make_heap(&u, HEAP_SIZE, uh_policies[pi], 0, 16, 0);
            hs *s = hs_new(h, &u.r);
            size_t a = hs_add_ok(s, 200, 21);
            size_t b = hs_add_ok(s, 5000, 22);
            hs_add_ok(s, 100, 23);
            unsigned char *p = where(h, &u.r, s->e[a].hd);
            unsigned char *pb = where(h, &u.r, s->e[b].hd);
            /* Free the block right after a (when it is right after a). */
            carve_block ba = walk_block_of(h, p);
            carve_block bb = walk_block_of(h, pb);
            if (bb.offset != ba.offset + ba.size)
                fail_msg("two hallocs in a fresh heap are not neighbours (policy %d)",
                         (int)uh_policies[pi]);
            hs_free(s, b);
            if (pinned)
                hs_pin(s, a);
            const size_t sizes[] = {300, 1000, 4000, 5000};
            for (size_t k = 0; k < sizeof sizes / sizeof sizes[0]; k++) {
                ASSERT_STATUS(carve_hresize(h, s->e[a].hd, sizes[k]), CARVE_OK);
                size_t us = carve_hsize(h, s->e[a].hd);
                assert_true(us >= sizes[k]);
                assert_ptr_equal(where(h, &u.r, s->e[a].hd), p);
                /* The kept prefix, then fill the new bytes. */
                assert_int_equal(tu_verify(p, s->e[a].seed, s->e[a].usable), s->e[a].usable);
                tu_fill_range(p, s->e[a].seed, s->e[a].usable, us);
                s->e[a].usable = us;
            }
            if (pinned)
                hs_unpin(s, a);
            hs_verify(s);
            ASSERT_HEAP_SANE(h);
            free(s);
            uh_destroy(&u);
        }
    }
}

/* Growing in place into the free space after the block, past anything
 * the heap held before: the counters follow (used_bytes, and
 * peak_used_bytes as its running maximum). */
static void test_hresize_grow_counts(void **state)
{
    (void)state;
    for (size_t pi = 0; pi < UH_NPOLICIES; pi++) {
        uh u;
        carve_heap *h = make_heap(&u, HEAP_SIZE, uh_policies[pi], 0, 16, 0);
        hs *s = hs_new(h, &u.r);
        size_t a = hs_add_ok(s, 200, 1);
        unsigned char *p = where(h, &u.r, s->e[a].hd);
        const size_t sizes[] = {5000, 50000, 100000};
        for (size_t k = 0; k < sizeof sizes / sizeof sizes[0]; k++) {
            carve_stats before = uh_stats(h);
            ASSERT_STATUS(carve_hresize(h, s->e[a].hd, sizes[k]), CARVE_OK);
            assert_ptr_equal(where(h, &u.r, s->e[a].hd), p); /* the tail was free */
            size_t us = carve_hsize(h, s->e[a].hd);
            carve_stats after = uh_stats(h);
            assert_int_equal(after.used_bytes, before.used_bytes + (us - s->e[a].usable));
            if (after.peak_used_bytes < after.used_bytes)
                fail_msg("hresize(%zu) in place: peak_used_bytes %zu < used_bytes %zu", sizes[k],
                         after.peak_used_bytes, after.used_bytes);
            tu_fill_range(p, s->e[a].seed, s->e[a].usable, us);
            s->e[a].usable = us;
            ASSERT_HEAP_SANE(h);
        }
        hs_verify(s);
        free(s);
        uh_destroy(&u);
    }
}

/* Growing where the next block is live: unpinned, the block moves, keeps
 * its handle and contents; pinned, CARVE_ERR_PINNED and nothing changes. */
static void test_hresize_grow_moves(void **state)
{
    (void)state;
    for (size_t pi = 0; pi < UH_NPOLICIES; pi++) {
        for (size_t fi = 0; fi < NFLAGS; fi++) {
            uh u;
            carve_heap *h = make_heap(&u, HEAP_SIZE, uh_policies[pi], flag_sets[fi], 16, 0);
            hs *s = hs_new(h, &u.r);
            size_t a = hs_add_ok(s, 600, 31);
            hs_raw(s, 600, 32); /* a raw neighbour: it never moves out of the way */
            size_t c = hs_add_ok(s, 600, 33);
            unsigned char *pa = where(h, &u.r, s->e[a].hd);

            /* Pinned: refused, nothing changes. */
            hs_pin(s, a);
            snap sn = snap_take(h);
            ASSERT_STATUS(carve_hresize(h, s->e[a].hd, 5000), CARVE_ERR_PINNED);
            snap_same(h, &sn, 1, "hresize of a pinned block that must move");
            snap_drop(&sn);
            hs_unpin(s, a);

            /* Unpinned: it moves. */
            carve_stats before = uh_stats(h);
            carve_handle hd = s->e[a].hd;
            ASSERT_STATUS(carve_hresize(h, hd, 5000), CARVE_OK);
            size_t us = carve_hsize(h, hd);
            assert_true(us >= 5000);
            unsigned char *np = where(h, &u.r, hd);
            assert_true(np != pa);
            assert_int_equal(tu_verify(np, s->e[a].seed, s->e[a].usable), s->e[a].usable);
            tu_fill_range(np, s->e[a].seed, s->e[a].usable, us);
            s->e[a].usable = us;
            carve_stats after = uh_stats(h);
            assert_int_equal(after.live_handles, before.live_handles);
            assert_int_equal(after.live_blocks, before.live_blocks);
            hs_verify(s);
            /* And shrinks back where it is. */
            ASSERT_STATUS(carve_hresize(h, hd, 100), CARVE_OK);
            assert_ptr_equal(where(h, &u.r, hd), np);
            s->e[a].usable = carve_hsize(h, hd);
            (void)c;
            hs_verify(s);
            ASSERT_HEAP_SANE(h);
            free(s);
            uh_destroy(&u);
        }
    }
}

/* An hresize that has to move a block whose neighbour's header was
 * overwritten: the move would free the old block last, and that free would
 * fail its check, so the damage is reported first (CARVE_ERR_CORRUPT) and
 * nothing changes.  Once the header is mended the same call moves it. */
static void test_hresize_move_next_to_damage(void **state)
{
    (void)state;
    for (size_t pi = 0; pi < UH_NPOLICIES; pi++) {
        uh u;
        carve_heap *h = make_heap(&u, HEAP_SIZE, uh_policies[pi], 0, 16, 0);
        carve_handle hd = carve_halloc(h, 300);
        assert_true(hd != 0);
        unsigned char *raw = carve_alloc(h, 300);
        assert_non_null(raw);
        unsigned char *p = where(h, &u.r, hd);
        carve_block hb = walk_block_of(h, p);
        unsigned char *hdr = raw - CARVE_BLOCK_OVERHEAD;
        assert_ptr_equal((unsigned char *)h + hb.offset + hb.size, hdr); /* raw follows */
        size_t us = carve_hsize(h, hd);
        tu_fill(p, 77, us);
        unsigned char saved[CARVE_BLOCK_OVERHEAD];
        uh_damage_header(hdr, saved, 2);
        carve_stats before = uh_stats(h);
        ASSERT_STATUS(carve_hresize(h, hd, 5000), CARVE_ERR_CORRUPT);
        carve_stats after = uh_stats(h);
        ASSERT_STATS_SAME(before, after);
        assert_ptr_equal(where(h, &u.r, hd), p);
        assert_int_equal(carve_hsize(h, hd), us);
        assert_int_equal(tu_verify(p, 77, us), us);
        memcpy(hdr, saved, sizeof saved);
        ASSERT_STATUS(carve_check(h), CARVE_OK);
        ASSERT_STATUS(carve_hresize(h, hd, 5000), CARVE_OK);
        unsigned char *np = where(h, &u.r, hd);
        assert_true(np != p);
        assert_int_equal(tu_verify(np, 77, us), us);
        ASSERT_STATUS(carve_hfree(h, hd), CARVE_OK);
        ASSERT_STATUS(carve_free(h, raw), CARVE_OK);
        ASSERT_HEAP_SANE(h);
        uh_destroy(&u);
    }
}

/* A stray write into a handle block's own header: every call that reads
 * the header reports it (hfree, hresize either way, hsize, an unpin that
 * has no pin to end, compaction) and changes nothing; a pin reads only the
 * entry (as the header documents) and still works, and so does ending it.
 * Once the header is mended every call works again. */
static void test_handle_block_header_damaged(void **state)
{
    (void)state;
    for (size_t pi = 0; pi < UH_NPOLICIES; pi++) {
        for (size_t fi = 0; fi < NFLAGS; fi++) {
            uh u;
            carve_heap *h = make_heap(&u, HEAP_SIZE, uh_policies[pi], flag_sets[fi], 16, 0);
            carve_handle gap = carve_halloc(h, 500);
            carve_handle hd = carve_halloc(h, 300);
            assert_true(gap != 0 && hd != 0);
            ASSERT_STATUS(carve_hfree(h, gap), CARVE_OK); /* room to slide into */
            unsigned char *p = where(h, &u.r, hd);
            size_t us = carve_hsize(h, hd);
            tu_fill(p, 41, us);
            unsigned char *hdr = p - CARVE_BLOCK_OVERHEAD;
            unsigned char saved[CARVE_BLOCK_OVERHEAD];
            uh_damage_header(hdr, saved, 1);
            carve_stats before = uh_stats(h);
            ASSERT_STATUS(carve_hfree(h, hd), CARVE_ERR_CORRUPT);
            ASSERT_STATUS(carve_hresize(h, hd, 5000), CARVE_ERR_CORRUPT);
            ASSERT_STATUS(carve_hresize(h, hd, 16), CARVE_ERR_CORRUPT);
            assert_int_equal(carve_hsize(h, hd), 0);
            ASSERT_STATUS(carve_unpin(h, hd), CARVE_ERR_CORRUPT);
            assert_ptr_equal(carve_pin(h, hd), p);
            ASSERT_STATUS(carve_unpin(h, hd), CARVE_OK);
            assert_int_equal(carve_compact(h, SIZE_MAX), 0);
            ASSERT_STATUS(carve_check(h), CARVE_ERR_CORRUPT);
            carve_stats after = uh_stats(h);
            ASSERT_STATS_SAME(before, after);
            assert_int_equal(tu_verify(p, 41, us), us);
            memcpy(hdr, saved, sizeof saved);
            ASSERT_STATUS(carve_check(h), CARVE_OK);
            assert_int_equal(carve_hsize(h, hd), us);
            assert_true(carve_compact(h, SIZE_MAX) > 0); /* now it slides down */
            unsigned char *np = where(h, &u.r, hd);
            assert_true(np < p);
            assert_int_equal(tu_verify(np, 41, us), us);
            ASSERT_STATUS(carve_hfree(h, hd), CARVE_OK);
            ASSERT_HEAP_SANE(h);
            uh_destroy(&u);
        }
    }
}

static int find_table(const carve_block *b, void *ctx)
{
    if (b->kind == CARVE_BLOCK_META) {
        *(size_t *)ctx = b->offset;
        return 1;
    }
    return 0;
}

/* A stray write into the control block's word that places the handle
 * table (found as the one word there that holds the table's offset):
 * every handle call reports damage (pin EIO, the status calls
 * CARVE_ERR_CORRUPT, hsize 0, halloc EIO), reads nothing outside the
 * buffer and changes nothing; once mended, all works. */
static void test_handle_table_place_damaged(void **state)
{
    (void)state;
    for (size_t pi = 0; pi < UH_NPOLICIES; pi++) {
        uh u;
        /* No runs: the table is the heap's only META block. */
        carve_heap *h = make_heap(&u, HEAP_SIZE, uh_policies[pi], CARVE_NO_RUNS, 0, 0);
        carve_handle hd = carve_halloc(h, 100);
        assert_true(hd != 0);
        size_t table = 0;
        carve_walk(h, find_table, &table);
        assert_true(table != 0);
        unsigned char *cb = (unsigned char *)h;
        size_t at = 0, found = 0;
        for (size_t i = 0; i + 8 <= table && i < 4096; i += 8) {
            uint64_t v;
            memcpy(&v, cb + i, 8);
            if (v == (uint64_t)table) {
                at = i;
                found++;
            }
        }
        assert_int_equal(found, 1);
        uint64_t saved, bad = UINT64_MAX - 4095u; /* far outside the buffer */
        memcpy(&saved, cb + at, 8);
        memcpy(cb + at, &bad, 8);
        ASSERT_NULL_ERRNO(carve_pin(h, hd), EIO);
        ASSERT_STATUS(carve_unpin(h, hd), CARVE_ERR_CORRUPT);
        ASSERT_STATUS(carve_hfree(h, hd), CARVE_ERR_CORRUPT);
        ASSERT_STATUS(carve_hresize(h, hd, 5000), CARVE_ERR_CORRUPT);
        assert_int_equal(carve_hsize(h, hd), 0);
        errno = 0;
        assert_int_equal(carve_halloc(h, 100), 0);
        assert_int_equal(errno, EIO);
        ASSERT_STATUS(carve_check(h), CARVE_ERR_CORRUPT);
        memcpy(cb + at, &saved, 8);
        ASSERT_STATUS(carve_check(h), CARVE_OK);
        assert_non_null(carve_pin(h, hd));
        ASSERT_STATUS(carve_unpin(h, hd), CARVE_OK);
        ASSERT_STATUS(carve_hfree(h, hd), CARVE_OK);
        ASSERT_HEAP_SANE(h);
        uh_destroy(&u);
    }
}

/* Compaction next to damage: sliding a handle block down rewrites the
 * PREV_FREE bit of the block after it, so when that header was overwritten
 * the slide is refused and nothing moves (the block, its contents, the
 * stats); once it is mended the same call slides the block. */
static void test_compact_next_to_damage(void **state)
{
    (void)state;
    for (size_t pi = 0; pi < UH_NPOLICIES; pi++) {
        uh u;
        carve_heap *h = make_heap(&u, HEAP_SIZE, uh_policies[pi], CARVE_NO_RUNS, 16, 0);
        carve_handle gap = carve_halloc(h, 500);
        carve_handle hd = carve_halloc(h, 300);
        unsigned char *raw = carve_alloc(h, 300);
        assert_true(gap != 0 && hd != 0 && raw != NULL);
        ASSERT_STATUS(carve_hfree(h, gap), CARVE_OK);
        unsigned char *p = where(h, &u.r, hd);
        carve_block hb = walk_block_of(h, p);
        unsigned char *hdr = raw - CARVE_BLOCK_OVERHEAD;
        assert_ptr_equal((unsigned char *)h + hb.offset + hb.size, hdr); /* raw follows */
        size_t us = carve_hsize(h, hd);
        tu_fill(p, 59, us);
        unsigned char saved[CARVE_BLOCK_OVERHEAD];
        uh_damage_header(hdr, saved, 6);
        carve_stats before = uh_stats(h);
        assert_int_equal(carve_compact(h, SIZE_MAX), 0);
        carve_stats after = uh_stats(h);
        ASSERT_STATS_SAME(before, after);
        assert_ptr_equal(where(h, &u.r, hd), p);
        assert_int_equal(tu_verify(p, 59, us), us);
        memcpy(hdr, saved, sizeof saved);
        ASSERT_STATUS(carve_check(h), CARVE_OK);
        assert_true(carve_compact(h, SIZE_MAX) > 0);
        unsigned char *np = where(h, &u.r, hd);
        assert_true(np < p);
        assert_int_equal(tu_verify(np, 59, us), us);
        ASSERT_STATUS(carve_hfree(h, hd), CARVE_OK);
        ASSERT_STATUS(carve_free(h, raw), CARVE_OK);
        ASSERT_HEAP_SANE(h);
        uh_destroy(&u);
    }
}

/* Growing that only fits once the heap compacts: it compacts and succeeds;
 * too big even then: NOMEM and nothing moved that was pinned or raw. */
static void test_hresize_after_compacting(void **state)
{
    (void)state;
    for (size_t pi = 0; pi < UH_NPOLICIES; pi++) {
        uh u;
        carve_heap *h = make_heap(&u, HEAP_SIZE, uh_policies[pi], CARVE_NO_RUNS, 512, 0);
        hs *s = hs_new(h, &u.r);
        tu_rng rng;
        tu_rng_seed(&rng, 4000 + pi);
        hs_fill(s, &rng, 500, 1500, MAXH);
        for (size_t i = 0; i < s->n; i += 2)
            hs_free(s, i);
        carve_stats st = uh_stats(h);
        size_t target = 1;
        while (target < s->n && s->e[target].hd == 0)
            target++;
        /* Larger than any hole, smaller than the free bytes. */
        size_t want = s->e[target].usable + st.free_bytes / 2;
        assert_true(want > st.largest_free);
        ASSERT_STATUS(carve_hresize(h, s->e[target].hd, want), CARVE_OK);
        unsigned char *p = where(h, &u.r, s->e[target].hd);
        size_t us = carve_hsize(h, s->e[target].hd);
        assert_true(us >= want);
        assert_int_equal(tu_verify(p, s->e[target].seed, s->e[target].usable), s->e[target].usable);
        tu_fill_range(p, s->e[target].seed, s->e[target].usable, us);
        s->e[target].usable = us;
        hs_verify(s);
        ASSERT_HEAP_SANE(h);
        free(s);
        uh_destroy(&u);
    }
}

static void test_hsize(void **state)
{
    (void)state;
    uh u;
    carve_heap *h = make_heap(&u, HEAP_SIZE, CARVE_GOOD_FIT, 0, 0, 0);
    for (size_t req = 1; req < 70000; req = req * 3 + 1) {
        carve_handle hd = carve_halloc(h, req);
        assert_true(hd != 0);
        size_t us = carve_hsize(h, hd);
        assert_true(us >= req);
        assert_int_equal(us, tu_handle_block_size(req) - CARVE_HANDLE_OVERHEAD);
        /* The walk says the same. */
        carve_block b = walk_block_of(h, where(h, &u.r, hd));
        assert_int_equal(b.usable, us);
        assert_int_equal(b.size, tu_handle_block_size(req));
        ASSERT_STATUS(carve_hfree(h, hd), CARVE_OK);
        assert_int_equal(carve_hsize(h, hd), 0);
    }
    assert_int_equal(carve_hsize(h, 0), 0);
    assert_int_equal(carve_hsize(h, UINT64_MAX), 0);
    assert_int_equal(carve_hsize(NULL, 1), 0);
    uh_destroy(&u);
}

/* ------------------------------------------------------------------------ */
/* carve_compact                                                             */
/* ------------------------------------------------------------------------ */

/* A heap of handle blocks (some pinned), raw blocks and holes, built the
 * same way every time from its seed. */
static hs *build_mixed(carve_heap *h, const tu_region *r, uint64_t seed, size_t max_block,
                       int with_raw, int with_pins)
{
    hs *s = hs_new(h, r);
    tu_rng rng;
    tu_rng_seed(&rng, seed);
    for (;;) {
        size_t req = tu_rng_range(&rng, 1, max_block);
        if (with_raw && tu_rng_below(&rng, 8) == 0) {
            unsigned char *p = (unsigned char *)carve_alloc(h, req);
            if (p == NULL)
                break;
            rent *e = &s->raw[s->nr++];
            e->p = p;
            e->usable = carve_usable_size(h, p);
            e->seed = tu_rng_next(&rng);
            tu_fill(p, e->seed, e->usable);
        } else if (hs_add(s, req, tu_rng_next(&rng)) == MAXH) {
            break;
        }
        if (s->n >= MAXH / 2 || s->nr >= MAXH / 2)
            break;
    }
    for (size_t i = 0; i < s->n; i++) {
        uint64_t x = tu_rng_below(&rng, 16);
        if (x < 8)
            hs_free(s, i);
        else if (with_pins && x == 8)
            hs_pin(s, i);
    }
    for (size_t i = 0; i < s->nr; i++)
        if (tu_rng_below(&rng, 3) == 0) {
            ASSERT_STATUS(carve_free(h, s->raw[i].p), CARVE_OK);
            s->raw[i].p = NULL;
        }
    return s;
}

/* After a compaction: raw blocks (run slots included) and pinned handle
 * blocks are where they were, every handle still names its contents, the
 * heap checks.  CARVE_BLOCK_META blocks are not compared: the handle table
 * is one of them, and it may move. */
static void assert_compact_invariants(hs *s, const uw *before)
{
    uw *now = uw_collect(s->h);
    for (size_t i = 0; i < before->n; i++) {
        const carve_block *b = &before->b[i];
        if (b->kind == CARVE_BLOCK_FREE || b->kind == CARVE_BLOCK_META ||
            (b->kind == CARVE_BLOCK_HANDLE && b->pinned == 0))
            continue;
        const carve_block *a = uw_find_payload(now, b->payload);
        if (a == NULL || a->offset != b->offset || a->size != b->size || a->kind != b->kind ||
            a->pinned != b->pinned)
            fail_msg("a %s block (kind %d) at offset %zu (%zu bytes) moved or changed during "
                     "compaction",
                     b->kind == CARVE_BLOCK_HANDLE ? "pinned" : "non-handle", (int)b->kind,
                     b->offset, b->size);
    }
    free(now);
    hs_verify(s);
    ASSERT_HEAP_SANE(s->h);
}

/* A full compaction: raw and pinned blocks stay, every handle keeps its
 * block and contents, the bytes moved are returned and counted, free space
 * merges (largest_free does not shrink), and a second call moves nothing. */
static void test_compact_full(void **state)
{
    (void)state;
    for (size_t pi = 0; pi < UH_NPOLICIES; pi++) {
        for (size_t fi = 0; fi < NFLAGS; fi++) {
            for (int variant = 0; variant < 3; variant++) {
                uh u;
                carve_heap *h = make_heap(&u, HEAP_SIZE, uh_policies[pi], flag_sets[fi], 1024, 0);
                hs *s = build_mixed(h, &u.r, 50 + pi * 10 + fi, 3000, variant > 0, variant > 1);
                hs_verify(s);
                carve_stats before = uh_stats(h);
                uw *wb = uw_collect(h);
                size_t moved = carve_compact(h, SIZE_MAX);
                carve_stats after = uh_stats(h);
                assert_true(moved > 0);
                assert_int_equal(after.bytes_moved, before.bytes_moved + moved);
                assert_int_equal(after.compactions, before.compactions + 1);
                assert_int_equal(after.used_bytes, before.used_bytes);
                assert_int_equal(after.free_bytes, before.free_bytes);
                assert_int_equal(after.live_blocks, before.live_blocks);
                assert_int_equal(after.live_handles, before.live_handles);
                assert_int_equal(after.pinned_handles, before.pinned_handles);
                assert_true(after.largest_free >= before.largest_free);
                assert_true(after.free_blocks <= before.free_blocks);
                assert_compact_invariants(s, wb);
                if (variant == 0) {
                    /* Only unpinned handles: one free block holds it all. */
                    assert_int_equal(after.free_blocks, 1);
                    assert_int_equal(after.largest_free, after.free_bytes - CARVE_BLOCK_OVERHEAD);
                }
                /* Nothing left to do. */
                before = after;
                assert_int_equal(carve_compact(h, SIZE_MAX), 0);
                after = uh_stats(h);
                assert_int_equal(after.bytes_moved, before.bytes_moved);
                assert_int_equal(after.largest_free, before.largest_free);
                hs_verify(s);
                free(wb);
                free(s);
                uh_destroy(&u);
            }
        }
    }
}

/* Only unpinned handle blocks: compaction merges all the free space into
 * one block, largest_free reaches its maximum. */
static void test_compact_merges_everything(void **state)
{
    (void)state;
    for (size_t pi = 0; pi < UH_NPOLICIES; pi++) {
        for (size_t fi = 0; fi < NFLAGS; fi++) {
            uh u;
            carve_heap *h = make_heap(&u, HEAP_SIZE, uh_policies[pi], flag_sets[fi], 1024, 0);
            hs *s = build_mixed(h, &u.r, 77 + pi * 10 + fi, 5000, 0, 0);
            carve_stats before = uh_stats(h);
            assert_true(before.free_blocks > 1);
            uw *wb = uw_collect(h);
            size_t moved = carve_compact(h, SIZE_MAX);
            assert_true(moved > 0);
            carve_stats after = uh_stats(h);
            assert_int_equal(after.free_blocks, 1);
            assert_int_equal(after.largest_free, after.free_bytes - CARVE_BLOCK_OVERHEAD);
            assert_compact_invariants(s, wb);
            free(wb);
            free(s);
            uh_destroy(&u);
        }
    }
}

/* The budget is a hard cap.  Budgets 0 and 1 move nothing (no block is
 * that small) and change nothing; a 64 KiB budget never returns more,
 * leaves carve_check clean after every slice, and repeated slices reach the
 * state one SIZE_MAX call reaches on a twin heap built the same way. */
static void test_compact_budget(void **state)
{
    (void)state;
    const size_t budget = 64u * 1024u;
    for (size_t pi = 0; pi < UH_NPOLICIES; pi++) {
        for (size_t fi = 0; fi < NFLAGS; fi++) {
            for (int variant = 0; variant < 3; variant++) {
                uint64_t seed = 900 + pi * 100 + fi * 10 + (uint64_t)variant;
                size_t size = 1024u * 1024u;
                /* Blocks no larger than the budget, so slices can finish. */
                size_t max_block = budget - 2 * CARVE_HANDLE_OVERHEAD;
                uh u, t;
                carve_heap *h = make_heap(&u, size, uh_policies[pi], flag_sets[fi], 1024, 0);
                carve_heap *ht = make_heap(&t, size, uh_policies[pi], flag_sets[fi], 1024, 0);
                hs *s = build_mixed(h, &u.r, seed, variant == 0 ? 4000 : max_block, variant > 0,
                                    variant > 1);
                hs *st = build_mixed(ht, &t.r, seed, variant == 0 ? 4000 : max_block, variant > 0,
                                     variant > 1);
                {
                    uw *a = uw_collect(h), *b = uw_collect(ht);
                    assert_int_equal(a->n, b->n); /* the twin is a twin */
                    free(a);
                    free(b);
                }
                /* Budgets 0 and 1: nothing moves. */
                for (int k = 0; k < 3; k++) {
                    snap sn = snap_take(h);
                    assert_int_equal(carve_compact(h, 0), 0);
                    assert_int_equal(carve_compact(h, 1), 0);
                    carve_stats now = uh_stats(h);
                    sn.st.compactions = now.compactions; /* whether a no-op counts: either */
                    snap_same(h, &sn, 0, "compact with budget 0 or 1");
                    snap_drop(&sn);
                }
                /* The twin, all the way in one call. */
                size_t full = carve_compact(ht, SIZE_MAX);
                assert_true(full > 0);
                carve_stats want = uh_stats(ht);
                hs_verify(st);
                /* Slices. */
                size_t total = 0, slices = 0;
                for (;;) {
                    carve_stats before = uh_stats(h);
                    uw *wb = uw_collect(h);
                    size_t moved = carve_compact(h, budget);
                    if (moved > budget)
                        fail_msg("carve_compact(%zu) moved %zu bytes", budget, moved);
                    carve_stats after = uh_stats(h);
                    assert_int_equal(after.bytes_moved, before.bytes_moved + moved);
                    assert_compact_invariants(s, wb); /* carve_check among it */
                    free(wb);
                    total += moved;
                    if (moved == 0)
                        break;
                    if (++slices > 10000)
                        fail_msg("64 KiB slices did not finish after %zu slices", slices);
                }
                carve_stats got = uh_stats(h);
                if (got.largest_free != want.largest_free || got.free_blocks != want.free_blocks ||
                    got.free_bytes != want.free_bytes)
                    fail_msg("policy %d flags 0x%x variant %d: %zu slices (%zu bytes) end with "
                             "largest_free %zu in %zu free blocks; one full call: %zu in %zu",
                             (int)uh_policies[pi], flag_sets[fi], variant, slices, total,
                             got.largest_free, got.free_blocks, want.largest_free,
                             want.free_blocks);
                /* The same layout, block for block. */
                uw *a = uw_collect(h), *b = uw_collect(ht);
                assert_int_equal(a->n, b->n);
                for (size_t i = 0; i < a->n; i++)
                    if (a->b[i].offset != b->b[i].offset || a->b[i].kind != b->b[i].kind ||
                        a->b[i].size != b->b[i].size)
                        fail_msg("sliced and full compaction differ at block %zu: offset %zu "
                                 "size %zu kind %d vs offset %zu size %zu kind %d",
                                 i, a->b[i].offset, a->b[i].size, (int)a->b[i].kind, b->b[i].offset,
                                 b->b[i].size, (int)b->b[i].kind);
                free(a);
                free(b);
                free(s);
                free(st);
                uh_destroy(&u);
                uh_destroy(&t);
            }
        }
    }
}

/* "SIZE_MAX = all the way", wherever an earlier budgeted call stopped: a
 * slice that leaves a block behind (too big for its budget), then a hole
 * before that point, then one full compaction: all the free space of a
 * heap of unpinned handle blocks is one block, and a second full call has
 * nothing left to move.  The automatic compaction of a request of all the
 * free bytes must get as far. */
static void test_compact_full_after_a_slice(void **state)
{
    (void)state;
    for (size_t pi = 0; pi < UH_NPOLICIES; pi++) {
        for (int automatic = 0; automatic < 2; automatic++) {
            uh u;
            carve_heap *h = make_heap(&u, 64u * 1024u, uh_policies[pi], CARVE_NO_RUNS, 16, 0);
            hs *s = hs_new(h, &u.r);
            const size_t sizes[] = {500, 1000, 500, 1000, 3000, 500, 500};
            for (size_t i = 0; i < 7; i++)
                hs_add_ok(s, sizes[i], 100 + i);
            hs_free(s, 3);                              /* a hole before the 3000-byte block */
            assert_int_equal(carve_compact(h, 100), 0); /* it waits there */
            hs_free(s, 1);                              /* a hole before the slice's stop */
            carve_stats st = uh_stats(h);
            if (automatic) {
                size_t req = st.free_bytes - CARVE_HANDLE_OVERHEAD;
                if (hs_add(s, req, 7) == MAXH)
                    fail_msg("policy %d: after a budgeted slice, halloc(free_bytes %zu - %u) "
                             "failed with only unpinned handle blocks live",
                             (int)uh_policies[pi], st.free_bytes, CARVE_HANDLE_OVERHEAD);
            } else {
                size_t moved = carve_compact(h, SIZE_MAX);
                carve_stats full = uh_stats(h);
                size_t again = carve_compact(h, SIZE_MAX);
                if (full.free_blocks != 1 || again != 0)
                    fail_msg("policy %d: after a budgeted slice, compact(SIZE_MAX) moved %zu "
                             "bytes and left %zu free blocks; a second one moved %zu more",
                             (int)uh_policies[pi], moved, full.free_blocks, again);
            }
            hs_verify(s);
            ASSERT_HEAP_SANE(h);
            free(s);
            uh_destroy(&u);
        }
    }
}

/* A block larger than what is left of the budget waits: with only such a
 * block to move, a call under its size moves nothing; a large enough
 * budget moves it. */
static void test_compact_budget_block_waits(void **state)
{
    (void)state;
    for (size_t pi = 0; pi < UH_NPOLICIES; pi++) {
        uh u;
        carve_heap *h = make_heap(&u, 1024u * 1024u, uh_policies[pi], 0, 16, 0);
        hs *s = hs_new(h, &u.r);
        size_t gap = hs_add_ok(s, 80000, 1);
        size_t big = hs_add_ok(s, 100000, 2);
        hs_add_ok(s, 1000, 3);
        hs_free(s, gap);
        size_t bsize = tu_handle_block_size(100000);
        unsigned char *p = where(h, &u.r, s->e[big].hd);
        /* (A budget between the payload and the whole block is left out:
         * which of the two a move counts is the implementation's choice.) */
        const size_t small_budgets[] = {0, 1, 4096, 65536, 99000};
        for (size_t k = 0; k < sizeof small_budgets / sizeof small_budgets[0]; k++) {
            size_t moved = carve_compact(h, small_budgets[k]);
            if (moved != 0)
                fail_msg("carve_compact(%zu) moved %zu bytes; the only block that could move "
                         "has %zu",
                         small_budgets[k], moved, bsize);
            assert_ptr_equal(where(h, &u.r, s->e[big].hd), p);
            ASSERT_HEAP_SANE(h);
            hs_verify(s);
        }
        size_t moved = carve_compact(h, 2 * bsize);
        assert_true(moved >= s->e[big].usable && moved <= 2 * bsize);
        assert_true(where(h, &u.r, s->e[big].hd) < p);
        hs_verify(s);
        ASSERT_HEAP_SANE(h);
        free(s);
        uh_destroy(&u);
    }
}

/* A slice stops where its budget runs out: at the first block that costs
 * more than what is left, even when a smaller block further up would still
 * fit (looking for one made every slice walk to the end of the heap).  The
 * next slice starts there. */
static void test_compact_slice_stops_where_budget_runs_out(void **state)
{
    (void)state;
    for (size_t pi = 0; pi < UH_NPOLICIES; pi++) {
        uh u;
        carve_heap *h = make_heap(&u, 1024u * 1024u, uh_policies[pi], 0, 16, 0);
        hs *s = hs_new(h, &u.r);
        /* gap, a, gap, b, gap, c, and a last block; then the gaps go. */
        const size_t sizes[] = {30000, 30000, 30000, 30000, 5000, 5000, 1000};
        size_t id[sizeof sizes / sizeof sizes[0]];
        for (size_t k = 0; k < sizeof sizes / sizeof sizes[0]; k++)
            id[k] = hs_add_ok(s, sizes[k], 1 + k);
        for (size_t k = 0; k < 6; k += 2)
            hs_free(s, id[k]);
        size_t a = id[1], b = id[3], c = id[5];
        unsigned char *pa = where(h, &u.r, s->e[a].hd);
        unsigned char *pb = where(h, &u.r, s->e[b].hd);
        unsigned char *pc = where(h, &u.r, s->e[c].hd);
        /* Room for a and c, not for a and b. */
        size_t budget = tu_handle_block_size(30000) + tu_handle_block_size(5000) + 64;
        size_t moved = carve_compact(h, budget);
        if (moved == 0 || moved > budget)
            fail_msg("policy %d: carve_compact(%zu) moved %zu bytes", (int)uh_policies[pi], budget,
                     moved);
        assert_true(where(h, &u.r, s->e[a].hd) < pa);
        assert_ptr_equal(where(h, &u.r, s->e[b].hd), pb);
        if (where(h, &u.r, s->e[c].hd) != pc)
            fail_msg("policy %d: the slice went past the block it could not afford and moved "
                     "a smaller one after it",
                     (int)uh_policies[pi]);
        hs_verify(s);
        ASSERT_HEAP_SANE(h);
        moved = carve_compact(h, budget);
        assert_true(moved > 0 && moved <= budget);
        assert_true(where(h, &u.r, s->e[b].hd) < pb);
        assert_true(where(h, &u.r, s->e[c].hd) < pc);
        hs_verify(s);
        ASSERT_HEAP_SANE(h);
        free(s);
        uh_destroy(&u);
    }
}

/* Random budgets on random heaps: never above the budget, always clean. */
static void test_compact_random_budgets(void **state)
{
    (void)state;
    int rounds = uh_quick() ? 3 : 20;
    for (int round = 0; round < rounds; round++) {
        tu_rng rng;
        tu_rng_seed(&rng, 31337 + (uint64_t)round);
        carve_policy pol = uh_policies[(size_t)round % UH_NPOLICIES];
        unsigned flags = flag_sets[(size_t)round % NFLAGS];
        uh u;
        carve_heap *h =
            make_heap(&u, 512u * 1024u, pol, flags, 2048, (size_t)tu_rng_below(&rng, 64));
        hs *s = build_mixed(h, &u.r, 5000 + (uint64_t)round, tu_rng_range(&rng, 100, 20000),
                            round % 2, round % 3 == 0);
        for (int k = 0; k < 200; k++) {
            size_t budget = tu_rng_below(&rng, 4) == 0 ? (size_t)tu_rng_below(&rng, 64)
                                                       : tu_rng_log_uniform(&rng, 4, 18);
            uw *wb = uw_collect(h);
            size_t moved = carve_compact(h, budget);
            if (moved > budget)
                fail_msg("round %d: carve_compact(%zu) moved %zu", round, budget, moved);
            assert_compact_invariants(s, wb);
            free(wb);
            /* Churn a little between slices. */
            size_t i = (size_t)tu_rng_below(&rng, s->n);
            if (s->e[i].hd != 0 && s->e[i].pins == 0 && tu_rng_below(&rng, 2))
                hs_free(s, i);
            else if (s->n < MAXH)
                (void)hs_add(s, tu_rng_range(&rng, 1, 3000), tu_rng_next(&rng));
        }
        free(s);
        uh_destroy(&u);
    }
}

/* ------------------------------------------------------------------------ */
/* Automatic compaction                                                      */
/* ------------------------------------------------------------------------ */

/* A heap of unpinned handle blocks with every other one freed: a request
 * larger than any hole but within the free bytes succeeds (raw and handle),
 * the heap having compacted itself. */
static void test_auto_compaction(void **state)
{
    (void)state;
    for (size_t pi = 0; pi < UH_NPOLICIES; pi++) {
        for (size_t fi = 0; fi < NFLAGS; fi++) {
            for (int raw = 0; raw < 2; raw++) {
                uh u;
                carve_heap *h = make_heap(&u, HEAP_SIZE, uh_policies[pi], flag_sets[fi], 1024, 0);
                hs *s = hs_new(h, &u.r);
                tu_rng rng;
                tu_rng_seed(&rng, 600 + pi * 10 + fi);
                hs_fill(s, &rng, 700, 1300, MAXH);
                for (size_t i = 0; i < s->n; i += 2)
                    hs_free(s, i);
                carve_stats before = uh_stats(h);
                size_t want = before.free_bytes / 2;
                assert_true(want > before.largest_free);
                if (raw) {
                    unsigned char *p = (unsigned char *)carve_alloc(h, want);
                    if (p == NULL)
                        fail_msg("carve_alloc(%zu) failed with %zu bytes free", want,
                                 before.free_bytes);
                    assert_true(tu_region_contains(&u.r, p, want));
                    s->raw[s->nr].p = p;
                    s->raw[s->nr].usable = carve_usable_size(h, p);
                    s->raw[s->nr].seed = 5;
                    tu_fill(p, 5, s->raw[s->nr].usable);
                    s->nr++;
                } else {
                    hs_add_ok(s, want, 5);
                }
                carve_stats after = uh_stats(h);
                assert_true(after.compactions > before.compactions);
                assert_true(after.bytes_moved > before.bytes_moved);
                assert_int_equal(after.failed_allocs, before.failed_allocs);
                hs_verify(s);
                ASSERT_HEAP_SANE(h);
                free(s);
                uh_destroy(&u);
            }
        }
    }
}

/* When compaction cannot help (the holes are between raw or pinned blocks),
 * the request fails with ENOMEM; raw and pinned blocks have not moved and
 * every block keeps its contents. */
static void test_auto_compaction_cannot_help(void **state)
{
    (void)state;
    for (size_t pi = 0; pi < UH_NPOLICIES; pi++) {
        for (int pinned = 0; pinned < 2; pinned++) {
            uh u;
            carve_heap *h = make_heap(&u, HEAP_SIZE, uh_policies[pi], CARVE_NO_RUNS, 1024, 0);
            hs *s = hs_new(h, &u.r);
            /* handle, fixed, handle, fixed, ... then free the loose handles. */
            for (size_t k = 0;; k++) {
                if (hs_add(s, 1000, k) == MAXH)
                    break;
                if (pinned) {
                    if (hs_add(s, 200, 1000 + k) == MAXH)
                        break;
                    hs_pin(s, s->n - 1);
                } else {
                    unsigned char *p = (unsigned char *)carve_alloc(h, 200);
                    if (p == NULL)
                        break;
                    s->raw[s->nr].p = p;
                    s->raw[s->nr].usable = carve_usable_size(h, p);
                    s->raw[s->nr].seed = k;
                    tu_fill(p, k, s->raw[s->nr].usable);
                    s->nr++;
                }
            }
            for (size_t i = 0; i < s->n; i++)
                if (s->e[i].hd != 0 && s->e[i].pins == 0)
                    hs_free(s, i);
            carve_stats before = uh_stats(h);
            uw *wb = uw_collect(h);
            size_t want = 4 * before.largest_free;
            assert_true(want < before.free_bytes);
            errno = 0;
            assert_null(carve_alloc(h, want));
            assert_int_equal(errno, ENOMEM);
            errno = 0;
            assert_int_equal(carve_halloc(h, want), 0);
            assert_int_equal(errno, ENOMEM);
            carve_stats after = uh_stats(h);
            assert_int_equal(after.failed_allocs, before.failed_allocs + 2);
            assert_int_equal(after.used_bytes, before.used_bytes);
            assert_int_equal(after.live_handles, before.live_handles);
            assert_compact_invariants(s, wb);
            free(wb);
            free(s);
            uh_destroy(&u);
        }
    }
}

/* A handle block that must grow where neither it nor any free block has
 * room, but the free bytes hold the growth: the resize compacts (the block
 * slides down next to the hole before it) and grows in place.  The heap:
 * [hole][H][raw barrier]([second hole]), the rest full; with the second
 * hole the free bytes also hold the whole new block, without it only the
 * growth. */
static void test_hresize_grows_after_compaction(void **state)
{
    (void)state;
    for (size_t pi = 0; pi < UH_NPOLICIES; pi++) {
        for (int second_hole = 0; second_hole < 2; second_hole++) {
            uh u;
            carve_heap *h = make_heap(&u, 128u * 1024u, uh_policies[pi], CARVE_NO_RUNS, 16, 0);
            void *hole = carve_alloc(h, 20000);
            carve_handle hd = carve_halloc(h, 20000);
            void *barrier = carve_alloc(h, 100);
            void *hole2 = second_hole ? carve_alloc(h, 12000) : NULL;
            assert_true(hole && hd && barrier && (hole2 || !second_hole));
            assert_non_null(carve_alloc(h, uh_stats(h).largest_free));
            tu_fill(where(h, &u.r, hd), 71, 20000);
            ASSERT_STATUS(carve_free(h, hole), CARVE_OK);
            if (hole2)
                ASSERT_STATUS(carve_free(h, hole2), CARVE_OK);
            carve_stats before = uh_stats(h);
            assert_true(before.largest_free < 30000);
            ASSERT_STATUS(carve_hresize(h, hd, 30000), CARVE_OK);
            carve_stats after = uh_stats(h);
            assert_true(carve_hsize(h, hd) >= 30000);
            assert_int_equal(tu_verify(where(h, &u.r, hd), 71, 20000), 20000);
            assert_true(after.compactions > before.compactions);
            assert_int_equal(after.failed_allocs, before.failed_allocs);
            ASSERT_HEAP_SANE(h);
            uh_destroy(&u);
        }
    }
}

/* A carve_halloc whose table must grow, on a heap whose free bytes hold
 * the block and the larger table only once merged: 64 handle blocks, each
 * followed by a small raw block, all raw blocks freed.  Taking the block
 * first put it in one of the small holes, where it could not move while
 * the compaction merged the rest around it, and the table then found no
 * room: the request must still succeed, every handle keeping its block. */
static void test_halloc_grows_table_after_compaction(void **state)
{
    (void)state;
    for (size_t pi = 0; pi < UH_NPOLICIES; pi++) {
        uh u;
        carve_heap *h = make_heap(&u, 64u * 1024u, uh_policies[pi], CARVE_NO_RUNS, 0, 0);
        carve_handle hd[64];
        void *raw[64];
        for (size_t i = 0; i < 64; i++) {
            hd[i] = carve_halloc(h, 200);
            raw[i] = carve_alloc(h, 40);
            assert_true(hd[i] != 0 && raw[i] != NULL);
            tu_fill(where(h, &u.r, hd[i]), 1000 + i, 200);
        }
        assert_non_null(carve_alloc(h, uh_stats(h).largest_free));
        for (size_t i = 0; i < 64; i++)
            if (i != 32)
                ASSERT_STATUS(carve_free(h, raw[i]), CARVE_OK);
        ASSERT_STATUS(carve_free(h, raw[32]), CARVE_OK); /* the hole a small block takes next */
        carve_stats before = uh_stats(h);
        assert_true(before.largest_free < 64u * 16u);
        errno = 0;
        carve_handle x = carve_halloc(h, 16);
        if (x == 0)
            fail_msg("policy %d: carve_halloc(16) failed (errno %d) with %zu bytes free",
                     (int)uh_policies[pi], errno, before.free_bytes);
        carve_stats after = uh_stats(h);
        assert_int_equal(after.live_handles, 65);
        assert_int_equal(after.failed_allocs, before.failed_allocs);
        for (size_t i = 0; i < 64; i++)
            assert_int_equal(tu_verify(where(h, &u.r, hd[i]), 1000 + i, 200), 200);
        ASSERT_HEAP_SANE(h);
        uh_destroy(&u);
    }
}

/* The handle table alone between two holes: automatic compaction slides it
 * down, whether no handle is live or the only one is pinned, and a request
 * larger than either hole succeeds.  The heap: [hole][table][hole][h2][rest]. */
static void test_auto_compaction_moves_table(void **state)
{
    (void)state;
    for (size_t pi = 0; pi < UH_NPOLICIES; pi++) {
        for (int pinned = 0; pinned < 2; pinned++) {
            uh u;
            carve_heap *h = make_heap(&u, 64u * 1024u, uh_policies[pi], CARVE_NO_RUNS, 0, 0);
            void *a = carve_alloc(h, 20000);
            carve_handle h1 = carve_halloc(h, 16); /* its block, then the table */
            void *b = carve_alloc(h, 20000);
            carve_handle h2 = carve_halloc(h, 16);
            assert_true(a && h1 && b && h2);
            assert_non_null(carve_alloc(h, uh_stats(h).largest_free));
            ASSERT_STATUS(carve_free(h, a), CARVE_OK);
            ASSERT_STATUS(carve_hfree(h, h1), CARVE_OK);
            ASSERT_STATUS(carve_free(h, b), CARVE_OK);
            if (pinned)
                assert_non_null(carve_pin(h, h2));
            else
                ASSERT_STATUS(carve_hfree(h, h2), CARVE_OK);
            carve_stats before = uh_stats(h);
            size_t want = before.largest_free + 4096;
            assert_true(want < before.free_bytes - 2048);
            unsigned char *p = (unsigned char *)carve_alloc(h, want);
            if (p == NULL)
                fail_msg("policy %d, %s: carve_alloc(%zu) failed with %zu bytes free",
                         (int)uh_policies[pi], pinned ? "pinned handle" : "no handle", want,
                         before.free_bytes);
            assert_true(tu_region_contains(&u.r, p, want));
            carve_stats after = uh_stats(h);
            assert_true(after.compactions > before.compactions);
            ASSERT_HEAP_SANE(h);
            uh_destroy(&u);
        }
    }
}

/* ------------------------------------------------------------------------ */
/* Stats                                                                     */
/* ------------------------------------------------------------------------ */

/* live_handles, pinned_handles, compactions and bytes_moved follow a random
 * sequence of handle operations exactly. */
static void test_handle_stats(void **state)
{
    (void)state;
    for (size_t pi = 0; pi < UH_NPOLICIES; pi++) {
        uh u;
        carve_heap *h = make_heap(&u, HEAP_SIZE, uh_policies[pi], 0, 256, 0);
        hs *s = hs_new(h, &u.r);
        tu_rng rng;
        tu_rng_seed(&rng, 123 + pi);
        uint64_t compactions = 0, bytes_moved = 0;
        for (int step = 0; step < 3000; step++) {
            uint64_t r = tu_rng_below(&rng, 100);
            size_t i = s->n ? (size_t)tu_rng_below(&rng, s->n) : 0;
            carve_stats before = uh_stats(h);
            if (r < 30 || s->n == 0) {
                if (s->n < MAXH)
                    (void)hs_add(s, tu_rng_log_uniform(&rng, 0, 12), tu_rng_next(&rng));
            } else if (r < 50) {
                if (s->e[i].hd != 0 && s->e[i].pins == 0)
                    hs_free(s, i);
            } else if (r < 65) {
                if (s->e[i].hd != 0 && s->e[i].pins < 3)
                    hs_pin(s, i);
            } else if (r < 80) {
                if (s->e[i].hd != 0 && s->e[i].pins > 0)
                    hs_unpin(s, i);
            } else if (r < 90) {
                size_t budget = tu_rng_below(&rng, 2) ? SIZE_MAX : tu_rng_log_uniform(&rng, 4, 16);
                size_t moved = carve_compact(h, budget);
                carve_stats after = uh_stats(h);
                if (moved > 0)
                    assert_int_equal(after.compactions, before.compactions + 1);
                else
                    assert_true(after.compactions <= before.compactions + 1);
                assert_int_equal(after.bytes_moved, before.bytes_moved + moved);
            } else if (s->e[i].hd != 0) {
                size_t want = tu_rng_log_uniform(&rng, 0, 12);
                int st = carve_hresize(h, s->e[i].hd, want);
                if (st == CARVE_OK) {
                    unsigned char *p = pin_ok(h, &u.r, s->e[i].hd);
                    size_t us = carve_hsize(h, s->e[i].hd);
                    size_t keep = us < s->e[i].usable ? us : s->e[i].usable;
                    assert_int_equal(tu_verify(p, s->e[i].seed, keep), keep);
                    tu_fill_range(p, s->e[i].seed, keep, us);
                    s->e[i].usable = us;
                    if (s->e[i].pins > 0)
                        assert_ptr_equal(p, s->e[i].pinned_at);
                    unpin_ok(h, s->e[i].hd);
                } else if (st != CARVE_ERR_PINNED && st != CARVE_ERR_NOMEM) {
                    fail_msg("hresize = %d (%s)", st, carve_strerror(st));
                }
            }
            carve_stats st = uh_stats(h);
            assert_int_equal(st.live_handles, hs_live(s));
            assert_int_equal(st.pinned_handles, hs_pinned(s));
            assert_true(st.compactions >= compactions);
            assert_true(st.bytes_moved >= bytes_moved);
            compactions = st.compactions;
            bytes_moved = st.bytes_moved;
            if (step % 200 == 0) {
                hs_verify(s);
                ASSERT_HEAP_SANE(h);
            }
        }
        hs_verify(s);
        free(s);
        uh_destroy(&u);
    }
}

/* ------------------------------------------------------------------------ */
/* CARVE_SCRAMBLE                                                            */
/* ------------------------------------------------------------------------ */

/* Every allocation moves every unpinned handle block: the address a pin
 * gives changes across an unrelated carve_alloc or carve_halloc, the
 * contents do not; pinned blocks and raw blocks stay. */
static void test_scramble(void **state)
{
    (void)state;
    for (size_t pi = 0; pi < UH_NPOLICIES; pi++) {
        for (size_t mh = 0; mh < 2; mh++) {
            uh u;
            carve_heap *h =
                make_heap(&u, HEAP_SIZE, uh_policies[pi], CARVE_SCRAMBLE, mh ? 64 : 0, 0);
            hs *s = hs_new(h, &u.r);
            size_t a = hs_add_ok(s, 200, 1);
            size_t b = hs_add_ok(s, 5000, 2);
            size_t c = hs_add_ok(s, 300, 3);
            size_t d = hs_add_ok(s, 40, 4);
            hs_pin(s, c);
            hs_raw(s, 100, 5);
            for (int round = 0; round < 24; round++) {
                unsigned char *pa = where(h, &u.r, s->e[a].hd);
                unsigned char *pb = where(h, &u.r, s->e[b].hd);
                unsigned char *pd = where(h, &u.r, s->e[d].hd);
                void *r = NULL;
                carve_handle t = 0;
                if (round % 2 == 0) {
                    r = carve_alloc(h, 64 + (size_t)round);
                    assert_non_null(r);
                } else {
                    t = carve_halloc(h, 64 + (size_t)round);
                    assert_true(t != 0);
                }
                if (where(h, &u.r, s->e[a].hd) == pa || where(h, &u.r, s->e[b].hd) == pb ||
                    where(h, &u.r, s->e[d].hd) == pd)
                    fail_msg("policy %d round %d: an unpinned handle block did not move across "
                             "an unrelated %s",
                             (int)uh_policies[pi], round, r ? "carve_alloc" : "carve_halloc");
                assert_ptr_equal(where(h, &u.r, s->e[c].hd), s->e[c].pinned_at);
                hs_verify(s);
                ASSERT_HEAP_SANE(h);
                if (r != NULL)
                    ASSERT_STATUS(carve_free(h, r), CARVE_OK);
                if (t != 0)
                    ASSERT_STATUS(carve_hfree(h, t), CARVE_OK);
            }
            hs_unpin(s, c);
            hs_verify(s);
            free(s);
            uh_destroy(&u);
        }
    }
}

/* CARVE_SCRAMBLE's moves are the heap's, not the user's: the same calls
 * leave the same counters (allocs, frees, peak, used, live) as in a heap
 * without it, although every unpinned handle block moved at each
 * allocation (a move allocates the new place while the old is live). */
static void test_scramble_counts_only_the_users_calls(void **state)
{
    (void)state;
    for (size_t pi = 0; pi < UH_NPOLICIES; pi++) {
        carve_stats st[2];
        for (int scramble = 0; scramble < 2; scramble++) {
            uh u;
            carve_heap *h = make_heap(&u, HEAP_SIZE, uh_policies[pi],
                                      CARVE_NO_RUNS | (scramble ? CARVE_SCRAMBLE : 0u), 0, 0);
            carve_handle hd[4];
            for (size_t i = 0; i < 4; i++) {
                hd[i] = carve_halloc(h, 10000);
                assert_true(hd[i] != 0);
            }
            assert_non_null(carve_pin(h, hd[1]));
            void *p = carve_alloc(h, 32);
            assert_non_null(p);
            ASSERT_STATUS(carve_hresize(h, hd[2], 30000), CARVE_OK); /* it moves */
            ASSERT_STATUS(carve_free(h, p), CARVE_OK);
            ASSERT_STATUS(carve_hfree(h, hd[0]), CARVE_OK);
            ASSERT_STATUS(carve_unpin(h, hd[1]), CARVE_OK);
            st[scramble] = uh_stats(h);
            ASSERT_HEAP_SANE(h);
            uh_destroy(&u);
        }
        assert_int_equal(st[1].allocs, st[0].allocs);
        assert_int_equal(st[1].frees, st[0].frees);
        assert_int_equal(st[1].failed_allocs, st[0].failed_allocs);
        assert_int_equal(st[1].peak_used_bytes, st[0].peak_used_bytes);
        assert_int_equal(st[1].used_bytes, st[0].used_bytes);
        assert_int_equal(st[1].live_blocks, st[0].live_blocks);
        assert_int_equal(st[1].live_handles, st[0].live_handles);
    }
}

/* CARVE_SCRAMBLE changes where blocks are, never whether a request fits:
 * "every carve_alloc of at most [largest_free] bytes succeeds now" holds in
 * a scrambling heap too, or a user's test run would fail where the field
 * does not.  The heap: a handle block, raw blocks around one hole, the rest
 * full; the request fits the hole exactly as the heap stands. */
static void test_scramble_keeps_largest_free(void **state)
{
    (void)state;
    for (size_t pi = 0; pi < UH_NPOLICIES; pi++) {
        for (int raw = 1; raw >= 0; raw--) {
            uh u;
            carve_heap *h =
                make_heap(&u, HEAP_SIZE, uh_policies[pi], CARVE_SCRAMBLE | CARVE_NO_RUNS, 8, 0);
            hs *s = hs_new(h, &u.r);
            size_t a = hs_add_ok(s, 1000, 1);
            hs_pin(s, a); /* it stays put while the heap is laid out */
            hs_raw(s, 100, 2);
            void *gap = carve_alloc(h, 3000);
            assert_non_null(gap);
            hs_raw(s, 100, 3);
            carve_stats st = uh_stats(h);
            hs_raw(s, st.largest_free, 4); /* the rest of the heap */
            ASSERT_STATUS(carve_free(h, gap), CARVE_OK);
            hs_unpin(s, a);
            st = uh_stats(h);
            size_t want = st.largest_free - 500;
            errno = 0;
            int ok;
            if (raw) {
                void *p = carve_alloc(h, want);
                ok = p != NULL;
            } else {
                ok = carve_halloc(h, want - (CARVE_HANDLE_OVERHEAD - CARVE_BLOCK_OVERHEAD)) != 0;
            }
            if (!ok)
                fail_msg("policy %d: with CARVE_SCRAMBLE, %s(%zu) failed (errno %d) although "
                         "largest_free was %zu: the scramble moved the handle block into the "
                         "free block the request needed",
                         (int)uh_policies[pi], raw ? "carve_alloc" : "carve_halloc", want, errno,
                         st.largest_free);
            hs_verify(s);
            ASSERT_HEAP_SANE(h);
            free(s);
            uh_destroy(&u);
        }
    }
}

/* ------------------------------------------------------------------------ */
/* carve_attach and carve_walk                                               */
/* ------------------------------------------------------------------------ */

/* A copied heap, attached elsewhere: the same handle values name the same
 * contents, pins are still there, stale handles stay stale, and the copy
 * compacts and frees without touching the original. */
static void test_attach_copy_keeps_handles(void **state)
{
    (void)state;
    const size_t remainders[] = {0, 8, 33};
    for (size_t ri = 0; ri < sizeof remainders / sizeof remainders[0]; ri++) {
        for (size_t mh = 0; mh < 2; mh++) {
            size_t m = remainders[ri];
            uh a;
            carve_heap *ha =
                make_heap(&a, HEAP_SIZE, uh_policies[ri % UH_NPOLICIES], 0, mh ? 512 : 0, m);
            hs *s = build_mixed(ha, &a.r, 4242 + ri, 2000, 1, 1);
            /* A stale handle (build_mixed forgets the ones it frees). */
            size_t k = hs_add_ok(s, 10, 1);
            carve_handle stale = s->e[k].hd;
            hs_free(s, k);
            size_t pinned = 0;
            for (size_t i = 0; i < s->n; i++)
                if (s->e[i].hd != 0 && s->e[i].pins == 0 && pinned < 3) {
                    hs_pin(s, i);
                    hs_pin(s, i);
                    pinned++;
                }
            carve_stats sa = uh_stats(ha);

            tu_region b;
            assert_int_equal(tu_region_make(&b, HEAP_SIZE, m, 256, 0), 0);
            memcpy(b.buf, a.r.buf, HEAP_SIZE);
            carve_heap *hb = carve_attach(b.buf, HEAP_SIZE);
            if (hb == NULL)
                fail_msg("attach of a heap with handles failed, errno %d", errno);
            carve_stats sb = uh_stats(hb);
            ASSERT_STATS_SAME(sa, sb);
            ASSERT_HEAP_SANE(hb);

            /* The copy: same handles, same contents, same pins, at the same
             * offsets. */
            hs *c = hs_new(hb, &b);
            *c = *s;
            c->h = hb;
            c->r = &b;
            for (size_t i = 0; i < c->n; i++) {
                if (c->e[i].pinned_at != NULL)
                    c->e[i].pinned_at = b.buf + (c->e[i].pinned_at - a.r.buf);
            }
            for (size_t i = 0; i < c->nr; i++)
                if (c->raw[i].p != NULL)
                    c->raw[i].p = b.buf + (c->raw[i].p - a.r.buf);
            hs_verify(c);
            for (size_t i = 0; i < c->n; i++)
                if (c->e[i].hd != 0) {
                    size_t oa = (size_t)(where(ha, &a.r, s->e[i].hd) - a.r.buf);
                    size_t ob = (size_t)(where(hb, &b, c->e[i].hd) - b.buf);
                    if (oa != ob)
                        fail_msg("handle 0x%llx: at buffer offset %zu in the original, %zu in "
                                 "the copy",
                                 (unsigned long long)c->e[i].hd, oa, ob);
                }
            for (size_t i = 0; i < c->n; i++)
                if (c->e[i].hd != 0 && c->e[i].pins > 0) {
                    carve_block blk = walk_block_of(hb, c->e[i].pinned_at);
                    assert_int_equal(blk.pinned, c->e[i].pins);
                }
            assert_handle_refused(hb, stale, "a stale handle in the copy");
            /* The copy moves, unpins and frees on its own. */
            uw *wb = uw_collect(hb);
            (void)carve_compact(hb, SIZE_MAX);
            assert_compact_invariants(c, wb);
            free(wb);
            for (size_t i = 0; i < c->n; i++) {
                while (c->e[i].hd != 0 && c->e[i].pins > 0)
                    hs_unpin(c, i);
                if (c->e[i].hd != 0 && i % 2 == 0)
                    hs_free(c, i);
            }
            hs_verify(c);
            ASSERT_HEAP_SANE(hb);
            /* The original is as it was. */
            carve_stats sa2 = uh_stats(ha);
            ASSERT_STATS_SAME(sa, sa2);
            hs_verify(s);
            ASSERT_HEAP_SANE(ha);
            assert_true(tu_region_guards_ok(&b));
            tu_region_free(&b);
            free(c);
            free(s);
            uh_destroy(&a);
        }
    }
}

/* The walk reports handle blocks as CARVE_BLOCK_HANDLE with their pin
 * counts, payload at the pinned address, usable = hsize; the blocks still
 * tile the capacity. */
static void test_walk_handles(void **state)
{
    (void)state;
    for (size_t pi = 0; pi < UH_NPOLICIES; pi++) {
        uh u;
        carve_heap *h = make_heap(&u, HEAP_SIZE, uh_policies[pi], 0, 64, 0);
        hs *s = hs_new(h, &u.r);
        for (size_t i = 0; i < 20; i++)
            hs_add_ok(s, 30 + 111 * i, i);
        hs_raw(s, 500, 99);
        for (size_t i = 0; i < 20; i += 3)
            for (size_t k = 0; k <= i % 4; k++)
                hs_pin(s, i);
        hs_free(s, 19);
        uw *w = uw_collect(h);
        carve_stats st = uh_stats(h);
        size_t sum = 0, nhandle = 0, npinned = 0;
        for (size_t i = 0; i < w->n; i++) {
            sum += w->b[i].size;
            if (w->b[i].kind != CARVE_BLOCK_HANDLE) {
                assert_int_equal(w->b[i].pinned, 0);
                continue;
            }
            nhandle++;
            npinned += w->b[i].pinned > 0;
            assert_true(w->b[i].size >= w->b[i].usable + CARVE_HANDLE_OVERHEAD);
            assert_int_equal(w->b[i].size % CARVE_ALIGNMENT, 0);
            assert_true(tu_is_aligned(w->b[i].payload, CARVE_ALIGNMENT));
        }
        assert_int_equal(sum, st.capacity);
        assert_int_equal(nhandle, 19);
        assert_int_equal(npinned, st.pinned_handles);
        for (size_t i = 0; i < 19; i++) {
            unsigned char *p = where(h, &u.r, s->e[i].hd);
            const carve_block *b = uw_find_payload(w, p);
            if (b == NULL)
                fail_msg("handle %zu's block at %p is not in the walk", i, (void *)p);
            assert_int_equal(b->kind, CARVE_BLOCK_HANDLE);
            assert_int_equal(b->pinned, s->e[i].pins);
            assert_int_equal(b->usable, carve_hsize(h, s->e[i].hd));
        }
        free(w);
        free(s);
        uh_destroy(&u);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_halloc_basic),
        cmocka_unit_test(test_halloc_errors),
        cmocka_unit_test(test_halloc_exact_fit),
        cmocka_unit_test(test_failed_halloc_changes_nothing),
        cmocka_unit_test(test_handle_table_full),
        cmocka_unit_test(test_handle_table_grows),
        cmocka_unit_test(test_handle_table_cannot_grow),
        cmocka_unit_test(test_handle_table_cannot_grow_at_peak),
        cmocka_unit_test(test_handle_table_grows_by_compacting),
        cmocka_unit_test(test_max_handles_sizing),
        cmocka_unit_test(test_bad_handles_refused),
        cmocka_unit_test(test_handles_of_another_heap),
        cmocka_unit_test(test_pin_nesting),
        cmocka_unit_test(test_pin_count_limit),
        cmocka_unit_test(test_pin_changes_nothing_else),
        cmocka_unit_test(test_hfree),
        cmocka_unit_test(test_raw_calls_on_handle_payload),
        cmocka_unit_test(test_hresize_errors),
        cmocka_unit_test(test_hresize_shrink_in_place),
        cmocka_unit_test(test_hresize_grow_in_place),
        cmocka_unit_test(test_hresize_grow_counts),
        cmocka_unit_test(test_hresize_grow_moves),
        cmocka_unit_test(test_hresize_move_next_to_damage),
        cmocka_unit_test(test_handle_block_header_damaged),
        cmocka_unit_test(test_compact_next_to_damage),
        cmocka_unit_test(test_handle_table_place_damaged),
        cmocka_unit_test(test_hresize_after_compacting),
        cmocka_unit_test(test_hsize),
        cmocka_unit_test(test_compact_full),
        cmocka_unit_test(test_compact_merges_everything),
        cmocka_unit_test(test_compact_budget),
        cmocka_unit_test(test_compact_full_after_a_slice),
        cmocka_unit_test(test_compact_budget_block_waits),
        cmocka_unit_test(test_compact_slice_stops_where_budget_runs_out),
        cmocka_unit_test(test_compact_random_budgets),
        cmocka_unit_test(test_auto_compaction),
        cmocka_unit_test(test_auto_compaction_cannot_help),
        cmocka_unit_test(test_hresize_grows_after_compaction),
        cmocka_unit_test(test_halloc_grows_table_after_compaction),
        cmocka_unit_test(test_auto_compaction_moves_table),
        cmocka_unit_test(test_handle_stats),
        cmocka_unit_test(test_scramble),
        cmocka_unit_test(test_scramble_keeps_largest_free),
        cmocka_unit_test(test_scramble_counts_only_the_users_calls),
        cmocka_unit_test(test_attach_copy_keeps_handles),
        cmocka_unit_test(test_walk_handles),
    };
    UH_RUN_GROUP("handles", tests);
}
