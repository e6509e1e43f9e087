/*
 * fuzz_ops: libFuzzer harness that drives carve's API from the input bytes.
 *
 * Input layout:
 *   byte 0      policy (% 3) and flags: bit 2 CARVE_POISON, bit 3
 *               CARVE_THREADSAFE, bit 4 CARVE_NO_RUNS, bit 5 CARVE_SCRAMBLE,
 *               bit 6 max_handles = 64 (else 0: the table grows), bit 7 the
 *               block-cache mode (below)
 *   bytes 1-2   heap size: carve_min_buffer_size + 16 * u16 (so up to ~1 MiB;
 *               sizes from CARVE_RUNS_MIN_HEAP up get runs); in the
 *               block-cache mode CARVE_GCACHE_MIN_HEAP * 17/16 + 64 * u16
 *   byte 3      the buffer's remainder modulo 64
 *   then 4-byte operations: [opcode][slot][size lo][size hi]; opcodes 0-15
 *   (mod 32) are raw-pointer operations, 16-31 handle operations (halloc,
 *   pin, unpin, hfree, hresize, compact with a budget from the size bits,
 *   bad handles, a full verification).
 *
 * After every operation the same checks as tests/model_test.c: pointers
 * aligned and inside the buffer, no two live blocks overlapping, every
 * block's contents kept (pattern from its seed), calloc zeroed, realloc
 * keeping the prefix, usable_size >= size, stats agreeing with the shadow,
 * failures only ENOMEM (and plausible), bad pointers refused with the
 * documented status and no change, carve_check passing.  For handles: each
 * handle pins to its own block with its contents (checked after every
 * compaction), pinned blocks and raw blocks never move, no two blocks
 * overlap, compaction never moves more than its budget and counts exactly
 * what it moved, pinned handles refuse hfree and moving resizes, stale and
 * made-up handles are refused and change nothing, the handle counters
 * match the shadow.  Opcode 14 trims (carve_trim, page and minimum block
 * from the size bits): every released span must lie in the buffer and
 * clear of every live block, and it is scribbled over before the checks
 * go on.  The buffer sits in
 * an allocation whose bytes around it are ASan-poisoned, so any access
 * outside [buffer, buffer + size) is reported where it happens.
 *
 * The block-cache mode reaches the freed-block cache of GOOD_FIT heaps of
 * CARVE_GCACHE_MIN_HEAP or more (src/gcache.c).  Reading the statistics
 * empties that cache, so in this mode they are read lazily: only where a
 * check needs them (a failed request, a probe, a compaction, an operation
 * that must change nothing, an explicit check) and then in full, while
 * carve_check, which leaves the cache alone, still runs every 16
 * operations.  A failure is then judged against the statistics read just
 * after it (a failing request has already handed every cached block back).
 * Bit 2 means CARVE_NO_BLOCK_CACHE there instead of poisoning, and
 * scrambling is off (it would move megabytes on every allocation).
 */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "test_util.h"

#define NSLOTS         64u
#define MAX_HEAP_UNITS 65535u

#define FUZZ_CHECK(cond, ...)                                                                    \
    do {                                                                                         \
        if (!(cond)) {                                                                           \
            fprintf(stderr, "fuzz_ops: check failed at %s:%d: %s: ", __FILE__, __LINE__, #cond); \
            fprintf(stderr, __VA_ARGS__);                                                        \
            fputc('\n', stderr);                                                                 \
            abort();                                                                             \
        }                                                                                        \
    } while (0)

#define NSTALE 8u

/* A slot holds nothing, a raw block (p) or a handle (hd). */
typedef struct fslot {
    unsigned char *p;
    size_t req, usable;
    uint64_t seed;
    carve_handle hd;
    unsigned pins;
    unsigned char *pinned_at;
} fslot;

typedef struct fz {
    tu_region r;
    carve_heap *h;
    unsigned flags;
    size_t max_handles;
    fslot s[NSLOTS];
    size_t nlive;       /* raw blocks */
    size_t nh, npinned; /* handles, pinned handles */
    carve_handle stale[NSTALE];
    size_t nstale;
    int halloc_tried;
    int base_known; /* the counters' share of carve's own blocks (the table) */
    size_t base_blocks;
    uint64_t base_allocs;
    carve_stats st;
    size_t capacity;
    uint64_t next_seed;
    int lazy;   /* the block-cache mode: st is read only where needed */
    int behind; /* lazy, and st may be behind the heap */
} fz;

/* Whether an automatic compaction may move something: an unpinned handle
 * block, or the handle table, which exists from init with max_handles and
 * else perhaps since a halloc (one that failed may have made it), and is
 * never released. */
static int movable(const fz *z)
{
    return z->nh > z->npinned || z->max_handles != 0 || z->halloc_tried;
}

static FILE *devnull(void)
{
    static FILE *f;
    if (f == NULL)
        f = fopen("/dev/null", "w");
    return f;
}

/* A request size from 16 input bits: 12 of mantissa, 4 of scale.  Scales
 * 0-11 give 0 .. 32 KiB (mostly small), 12-14 up to 64 KiB, 15 a size within
 * 32 bytes of largest_free, to probe the exact edge. */
static size_t size_from(const fz *z, unsigned v)
{
    size_t mant = (size_t)(v & 0xFFFu);
    unsigned scale = v >> 12;
    if (scale < 12)
        return (mant << (scale % 8)) >> 4;
    if (scale < 15)
        return mant << 4;
    size_t lf = z->st.largest_free;
    size_t d = mant & 63u;
    return d <= 32 ? lf + d : (lf > d - 32 ? lf - (d - 32) : 1);
}

/* Reads the statistics now and checks them against the shadow. */
static void refresh_now(fz *z)
{
    z->behind = 0;
    carve_stats prev = z->st;
    carve_get_stats(z->h, &z->st);
    const carve_stats *st = &z->st;
    FUZZ_CHECK(st->capacity == z->capacity, "capacity %zu -> %zu", z->capacity, st->capacity);
    FUZZ_CHECK(st->used_bytes + st->free_bytes == st->capacity, "used+free");
    size_t live = z->nlive + z->nh;
    if (!z->base_known && z->nh > 0) { /* the table exists now */
        z->base_known = 1;
        z->base_blocks = st->live_blocks - live;
        z->base_allocs = st->allocs - st->frees - live;
    }
    FUZZ_CHECK(st->live_blocks == live + z->base_blocks, "live_blocks %zu shadow %zu + %zu",
               st->live_blocks, live, z->base_blocks);
    FUZZ_CHECK(st->allocs - st->frees == (uint64_t)live + z->base_allocs, "allocs - frees");
    FUZZ_CHECK(st->live_handles == z->nh, "live_handles %zu shadow %zu", st->live_handles, z->nh);
    FUZZ_CHECK(st->pinned_handles == z->npinned, "pinned_handles %zu shadow %zu",
               st->pinned_handles, z->npinned);
    FUZZ_CHECK(st->compactions >= prev.compactions && st->bytes_moved >= prev.bytes_moved,
               "compaction counters went back");
    FUZZ_CHECK(st->largest_free <= st->free_bytes, "largest_free > free_bytes");
    FUZZ_CHECK(st->peak_used_bytes >= st->used_bytes, "peak");
    FUZZ_CHECK(st->failed_allocs >= prev.failed_allocs, "failed_allocs went back");
}

/* After an operation: the statistics now, or in the lazy mode when next
 * needed. */
static void refresh(fz *z)
{
    if (z->lazy)
        z->behind = 1;
    else
        refresh_now(z);
}

/* Before a check that needs the statistics as they are. */
static void sync_stats(fz *z)
{
    if (z->behind)
        refresh_now(z);
}

/* The largest_free a failed request is judged against: the one read
 * before it, or in the lazy mode the one read just after it. */
static size_t largest_after_failure(fz *z, size_t before)
{
    if (!z->lazy)
        return before;
    refresh_now(z);
    return z->st.largest_free;
}

static void check_new_block(fz *z, size_t i, unsigned char *p, size_t req, size_t align)
{
    FUZZ_CHECK(tu_is_aligned(p, align), "pointer %p not aligned to %zu", (void *)p, align);
    size_t us = carve_usable_size(z->h, p);
    FUZZ_CHECK(us >= req, "usable %zu < %zu", us, req);
    FUZZ_CHECK(tu_region_contains(&z->r, p, us), "block %p+%zu outside the buffer", (void *)p, us);
    for (size_t k = 0; k < NSLOTS; k++) {
        if (k == i || z->s[k].p == NULL)
            continue;
        const unsigned char *q = z->s[k].p;
        FUZZ_CHECK(p + us <= q || q + z->s[k].usable <= p, "block %p+%zu overlaps %p+%zu",
                   (void *)p, us, (const void *)q, z->s[k].usable);
    }
    z->s[i].p = p;
    z->s[i].req = req;
    z->s[i].usable = us;
}

static void verify(fz *z, size_t i)
{
    size_t n = z->s[i].usable;
    FUZZ_CHECK(tu_verify(z->s[i].p, z->s[i].seed, n) == n, "block %p lost its contents",
               (void *)z->s[i].p);
    FUZZ_CHECK(carve_usable_size(z->h, z->s[i].p) == n, "usable size of a live block changed");
}

static void do_free(fz *z, size_t i)
{
    verify(z, i);
    unsigned char *p = z->s[i].p;
    int st = carve_free(z->h, p);
    FUZZ_CHECK(st == CARVE_OK, "free = %d", st);
    z->s[i].p = NULL;
    z->nlive--;
    refresh(z);
}

static void do_alloc(fz *z, size_t i, unsigned kind, unsigned arg, size_t req)
{
    size_t align = CARVE_ALIGNMENT;
    size_t largest = z->st.largest_free;
    uint64_t compactions = z->st.compactions;
    int could_move = movable(z);
    unsigned char *p;
    int bad_alignment = 0;
    size_t zero = 0;
    errno = 0;
    if (kind == 0) {
        p = carve_alloc(z->h, req);
    } else if (kind == 1) {
        size_t count = 1 + (arg & 7u);
        size_t each = req / count;
        zero = count * each;
        p = carve_calloc(z->h, count, each);
        req = zero;
    } else {
        unsigned a = arg & 15u;
        if (a >= 13) { /* not a power of two */
            align = (size_t)24 << (a - 13);
            bad_alignment = 1;
        } else {
            align = (size_t)1 << a;
        }
        p = carve_aligned_alloc(z->h, align, req);
    }
    int err = errno;
    if (req == 0 || bad_alignment) {
        FUZZ_CHECK(p == NULL && err == EINVAL, "bad argument accepted (size %zu align %zu)", req,
                   align);
        refresh(z);
        return;
    }
    if (p == NULL) {
        FUZZ_CHECK(err == ENOMEM, "errno %d", err);
        largest = largest_after_failure(z, largest);
        size_t need = align > CARVE_ALIGNMENT ? req + align + 2 * CARVE_MIN_BLOCK : req;
        /* An alignment above CARVE_ALIGNMENT is never served from a run's
         * slots, so a largest_free that may be a free slot promises nothing
         * for it (the header says so). */
        bool slot_may_be_largest = align > CARVE_ALIGNMENT && largest <= CARVE_SMALL_MAX;
        FUZZ_CHECK(slot_may_be_largest || need > largest || need < req,
                   "request %zu (align %zu) failed, largest_free %zu", req, align, largest);
        refresh(z);
        return;
    }
    if (zero)
        FUZZ_CHECK(tu_all_zero(p, zero), "calloc not zeroed");
    check_new_block(z, i, p, req, align < CARVE_ALIGNMENT ? CARVE_ALIGNMENT : align);
    z->s[i].seed = z->next_seed++;
    tu_fill(p, z->s[i].seed, z->s[i].usable);
    z->nlive++;
    refresh(z);
    /* Above largest_free only when the heap compacted itself. */
    if (!z->lazy && align <= CARVE_ALIGNMENT && req > largest)
        FUZZ_CHECK(could_move && z->st.compactions > compactions,
                   "request %zu succeeded above largest_free %zu without a compaction", req,
                   largest);
}

static void do_realloc(fz *z, size_t i, size_t req)
{
    size_t largest = z->st.largest_free;
    unsigned char *old = z->s[i].p;
    verify(z, i);
    errno = 0;
    unsigned char *p = carve_realloc(z->h, old, req);
    int err = errno;
    if (req == 0) {
        FUZZ_CHECK(p == NULL, "realloc(p, 0) returned a block");
        z->s[i].p = NULL;
        z->nlive--;
        refresh(z);
        return;
    }
    if (p == NULL) {
        FUZZ_CHECK(err == ENOMEM, "realloc errno %d", err);
        largest = largest_after_failure(z, largest);
        FUZZ_CHECK(req > largest, "realloc(%zu) failed with largest_free %zu", req, largest);
        verify(z, i);
        refresh(z);
        return;
    }
    size_t keep = z->s[i].req < req ? z->s[i].req : req;
    FUZZ_CHECK(tu_verify(p, z->s[i].seed, keep) == keep, "realloc lost the prefix");
    FUZZ_CHECK(p == old || req > z->s[i].usable, "realloc to a size the block holds moved it");
    z->s[i].p = NULL;
    check_new_block(z, i, p, req, CARVE_ALIGNMENT);
    tu_fill_range(p, z->s[i].seed, keep, z->s[i].usable);
    refresh(z);
}

static void do_bad(fz *z, size_t i, unsigned arg)
{
    unsigned char *cand;
    int local = 0;
    switch (arg % 5) {
    case 0:
        cand = z->r.buf - 1 - (arg % 48);
        break;
    case 1:
        cand = z->r.buf + z->r.size + (arg % 48);
        break;
    case 2:
        cand = (unsigned char *)&local;
        break;
    default:
        if (z->s[i].p == NULL || z->s[i].usable < 2)
            return;
        cand = z->s[i].p + 1 + (arg % (z->s[i].usable - 1));
        break;
    }
    sync_stats(z);
    carve_stats before = z->st;
    int st = carve_free(z->h, cand);
    FUZZ_CHECK(st == CARVE_ERR_NOT_OWNED, "free(bad %p) = %d", (void *)cand, st);
    errno = 0;
    FUZZ_CHECK(carve_realloc(z->h, cand, 64) == NULL && errno == EINVAL, "realloc(bad)");
    FUZZ_CHECK(carve_usable_size(z->h, cand) == 0, "usable_size(bad)");
    refresh_now(z);
    FUZZ_CHECK(tu_stats_diff_but_failed(&before, &z->st) == NULL, "a bad pointer changed %s",
               tu_stats_diff_but_failed(&before, &z->st));
}

/* In the lazy mode the freed block may sit in the block cache, which is
 * the case to reach, so the statistics are not read in between: the next
 * reading's checks against the shadow catch a double free that counted.
 * The second free is carve_free, or (via_realloc) realloc(p, 0), which is
 * a free too. */
static void do_double_free(fz *z, size_t i, int via_realloc)
{
    unsigned char *p = z->s[i].p;
    do_free(z, i);
    carve_stats before = z->st;
    if (via_realloc) {
        errno = 0;
        unsigned char *q = carve_realloc(z->h, p, 0);
        FUZZ_CHECK(q == NULL && errno == EINVAL, "realloc(freed, 0) = %p errno %d", (void *)q,
                   errno);
    }
    int st = carve_free(z->h, p);
    FUZZ_CHECK(st == CARVE_ERR_DOUBLE_FREE || st == CARVE_ERR_NOT_OWNED, "double free = %d", st);
    refresh(z);
    if (!z->lazy)
        FUZZ_CHECK(tu_stats_diff(&before, &z->st, 0) == NULL, "a double free changed %s",
                   tu_stats_diff(&before, &z->st, 0));
}

static void do_probe_largest(fz *z)
{
    sync_stats(z);
    size_t lf = z->st.largest_free;
    uint64_t compactions = z->st.compactions;
    int could_move = movable(z);
    errno = 0;
    unsigned char *big = carve_alloc(z->h, lf + 1);
    if (big != NULL) { /* only a heap that compacted itself may do that */
        carve_stats now;
        carve_get_stats(z->h, &now);
        FUZZ_CHECK(could_move && now.compactions > compactions,
                   "largest_free + 1 fit without a compaction");
        FUZZ_CHECK(tu_region_contains(&z->r, big, lf + 1), "block outside the buffer");
        FUZZ_CHECK(carve_free(z->h, big) == CARVE_OK, "free(largest + 1)");
        refresh(z);
        return;
    }
    FUZZ_CHECK(errno == ENOMEM, "largest_free + 1: errno %d", errno);
    refresh_now(z);
    lf = z->st.largest_free; /* the failure may have compacted */
    if (lf == 0)
        return;
    unsigned char *p = carve_alloc(z->h, lf);
    FUZZ_CHECK(p != NULL, "alloc(largest_free %zu) failed", lf);
    FUZZ_CHECK(tu_region_contains(&z->r, p, lf), "largest block outside the buffer");
    for (size_t k = 0; k < NSLOTS; k++)
        if (z->s[k].p != NULL)
            FUZZ_CHECK(p + lf <= z->s[k].p || z->s[k].p + z->s[k].usable <= p,
                       "largest block overlaps a live one");
    p[0] = 1;
    p[lf - 1] = 2;
    FUZZ_CHECK(carve_free(z->h, p) == CARVE_OK, "free(largest)");
    refresh(z);
}

/* ---- handles ------------------------------------------------------------ */

/* A handle request as a raw request: a handle costs this much more. */
static size_t as_raw(size_t req)
{
    return req + (CARVE_HANDLE_OVERHEAD - CARVE_BLOCK_OVERHEAD);
}

/* Pins handle i and checks where it is; the caller unpins. */
static unsigned char *pin_slot(fz *z, size_t i)
{
    fslot *s = &z->s[i];
    errno = 0;
    unsigned char *p = (unsigned char *)carve_pin(z->h, s->hd);
    FUZZ_CHECK(p != NULL, "pin of a live handle failed, errno %d", errno);
    FUZZ_CHECK(tu_is_aligned(p, CARVE_ALIGNMENT), "pinned at %p, not 16-aligned", (void *)p);
    FUZZ_CHECK(tu_region_contains(&z->r, p, s->usable), "handle block %p+%zu outside the buffer",
               (void *)p, s->usable);
    FUZZ_CHECK(s->pins == 0 || p == s->pinned_at, "pinned block moved from %p to %p",
               (void *)s->pinned_at, (void *)p);
    FUZZ_CHECK(carve_hsize(z->h, s->hd) == s->usable, "hsize changed");
    return p;
}

static void unpin_slot(fz *z, size_t i)
{
    FUZZ_CHECK(carve_unpin(z->h, z->s[i].hd) == CARVE_OK, "unpin of a pinned handle failed");
}

static void verify_handle(fz *z, size_t i)
{
    unsigned char *p = pin_slot(z, i);
    FUZZ_CHECK(tu_verify(p, z->s[i].seed, z->s[i].usable) == z->s[i].usable,
               "handle block %p lost its contents", (void *)p);
    unpin_slot(z, i);
}

/* Every block, raw and handle: contents, place, no two overlapping. */
static void verify_everything(fz *z)
{
    const unsigned char *lo[NSLOTS];
    size_t n[NSLOTS];
    for (size_t k = 0; k < NSLOTS; k++) {
        lo[k] = NULL;
        n[k] = 0;
        if (z->s[k].p != NULL) {
            verify(z, k);
            lo[k] = z->s[k].p;
            n[k] = z->s[k].usable;
        } else if (z->s[k].hd != 0) {
            unsigned char *p = pin_slot(z, k);
            FUZZ_CHECK(tu_verify(p, z->s[k].seed, z->s[k].usable) == z->s[k].usable,
                       "handle block %p lost its contents", (void *)p);
            lo[k] = p;
            n[k] = z->s[k].usable;
            unpin_slot(z, k); /* nothing moves until the next allocation */
        }
    }
    for (size_t a = 0; a < NSLOTS; a++)
        for (size_t b = a + 1; b < NSLOTS; b++)
            if (lo[a] != NULL && lo[b] != NULL)
                FUZZ_CHECK(lo[a] + n[a] <= lo[b] || lo[b] + n[b] <= lo[a],
                           "blocks %p+%zu and %p+%zu overlap", (const void *)lo[a], n[a],
                           (const void *)lo[b], n[b]);
}

/* carve_trim's release: each span must lie in the buffer, clear of every
 * live block, and is then scribbled over (as MADV_DONTNEED reads back
 * zeros, or a caller reuses the pages); the checks that follow find any
 * live byte or metadata it should not have handed out. */
typedef struct trim_ctx {
    fz *z;
    const unsigned char *lo[NSLOTS];
    size_t n[NSLOTS];
    size_t sum;
    int fill;
} trim_ctx;

static void trim_release(void *addr, size_t len, void *ctx)
{
    trim_ctx *t = (trim_ctx *)ctx;
    const unsigned char *a = (const unsigned char *)addr;
    FUZZ_CHECK(len > 0 && tu_region_contains(&t->z->r, a, len), "released %p+%zu: not inside", addr,
               len);
    for (size_t k = 0; k < NSLOTS; k++)
        FUZZ_CHECK(t->lo[k] == NULL || a + len <= t->lo[k] || t->lo[k] + t->n[k] <= a,
                   "released %p+%zu overlaps live block %p+%zu", addr, len, (const void *)t->lo[k],
                   t->n[k]);
    memset(addr, t->fill, len);
    t->sum += len;
}

static void do_trim(fz *z, unsigned v)
{
    static trim_ctx t;
    memset(&t, 0, sizeof t);
    t.z = z;
    t.fill = (v & 1u) ? 0 : 0xE7;
    for (size_t k = 0; k < NSLOTS; k++) {
        if (z->s[k].p != NULL) {
            t.lo[k] = z->s[k].p;
            t.n[k] = z->s[k].usable;
        } else if (z->s[k].hd != 0) { /* nothing moves until the next allocation */
            t.lo[k] = pin_slot(z, k);
            t.n[k] = z->s[k].usable;
            unpin_slot(z, k);
        }
    }
    size_t page = (size_t)4096u << ((v >> 1) % 3u);
    size_t min_block = (size_t)1 << ((v >> 3) % 24u); /* 1 B .. 8 MiB, log-uniform */
    size_t got = carve_trim(z->h, page, min_block, trim_release, &t);
    FUZZ_CHECK(got == t.sum, "trim returned %zu, released %zu", got, t.sum);
    FUZZ_CHECK(got == 0 || !(z->flags & CARVE_POISON), "trim released poisoned bytes");
    refresh(z); /* what the caches held went back: the figures must not change */
}

static void do_halloc(fz *z, size_t i, size_t req)
{
    size_t largest = z->st.largest_free;
    uint64_t compactions = z->st.compactions;
    int could_move = movable(z);
    int table_full = z->max_handles != 0 && z->nh == z->max_handles;
    z->halloc_tried = 1;
    errno = 0;
    carve_handle hd = carve_halloc(z->h, req);
    int err = errno;
    if (req == 0) {
        FUZZ_CHECK(hd == 0 && err == EINVAL, "halloc(0) = 0x%llx errno %d", (unsigned long long)hd,
                   err);
        refresh(z);
        return;
    }
    if (hd == 0) {
        FUZZ_CHECK(err == ENOMEM, "halloc(%zu) errno %d", req, err);
        largest = largest_after_failure(z, largest);
        FUZZ_CHECK(table_full || z->max_handles == 0 || largest <= CARVE_SMALL_MAX ||
                       as_raw(req) > largest,
                   "halloc(%zu) failed, largest_free %zu", req, largest);
        refresh(z);
        return;
    }
    FUZZ_CHECK(!table_full, "halloc succeeded with %zu of max_handles %zu live", z->nh,
               z->max_handles);
    for (size_t k = 0; k < NSLOTS; k++)
        FUZZ_CHECK(z->s[k].hd != hd, "halloc returned a live handle");
    fslot *s = &z->s[i];
    s->hd = hd;
    s->req = req;
    s->usable = carve_hsize(z->h, hd);
    s->seed = z->next_seed++;
    s->pins = 0;
    s->pinned_at = NULL;
    FUZZ_CHECK(s->usable >= req, "hsize %zu < %zu", s->usable, req);
    unsigned char *p = pin_slot(z, i);
    for (size_t k = 0; k < NSLOTS; k++)
        if (z->s[k].p != NULL)
            FUZZ_CHECK(p + s->usable <= z->s[k].p || z->s[k].p + z->s[k].usable <= p,
                       "handle block %p+%zu overlaps raw block %p", (void *)p, s->usable,
                       (void *)z->s[k].p);
    tu_fill(p, s->seed, s->usable);
    unpin_slot(z, i);
    z->nh++;
    refresh(z);
    if (!z->lazy && as_raw(req) > largest)
        FUZZ_CHECK(could_move && z->st.compactions > compactions,
                   "halloc(%zu) succeeded above largest_free %zu without a compaction", req,
                   largest);
}

static void do_pin(fz *z, size_t i)
{
    fslot *s = &z->s[i];
    unsigned char *p = pin_slot(z, i);
    if (s->pins++ == 0) {
        s->pinned_at = p;
        z->npinned++;
    }
    refresh(z);
}

static void do_unpin(fz *z, size_t i)
{
    fslot *s = &z->s[i];
    if (s->pins == 0) {
        sync_stats(z);
        carve_stats before = z->st;
        FUZZ_CHECK(carve_unpin(z->h, s->hd) == CARVE_ERR_INVALID, "unpin too many");
        refresh_now(z);
        FUZZ_CHECK(tu_stats_diff(&before, &z->st, 0) == NULL, "an unpin too many changed %s",
                   tu_stats_diff(&before, &z->st, 0));
        return;
    }
    unpin_slot(z, i);
    if (--s->pins == 0) {
        s->pinned_at = NULL;
        z->npinned--;
    }
    refresh(z);
}

static void do_hfree(fz *z, size_t i)
{
    fslot *s = &z->s[i];
    verify_handle(z, i);
    if (s->pins > 0)
        sync_stats(z);
    carve_stats before = z->st;
    int st = carve_hfree(z->h, s->hd);
    if (s->pins > 0) {
        FUZZ_CHECK(st == CARVE_ERR_PINNED, "hfree of a pinned handle = %d", st);
        refresh_now(z);
        FUZZ_CHECK(tu_stats_diff(&before, &z->st, 0) == NULL, "a refused hfree changed %s",
                   tu_stats_diff(&before, &z->st, 0));
        return;
    }
    FUZZ_CHECK(st == CARVE_OK, "hfree = %d", st);
    z->stale[z->nstale++ % NSTALE] = s->hd;
    s->hd = 0;
    z->nh--;
    refresh(z);
}

static void do_hresize(fz *z, size_t i, size_t req)
{
    fslot *s = &z->s[i];
    size_t largest = z->st.largest_free;
    size_t old_req = s->req, old_usable = s->usable;
    unsigned char *old = pin_slot(z, i);
    FUZZ_CHECK(tu_verify(old, s->seed, old_usable) == old_usable, "contents before hresize");
    unpin_slot(z, i);
    if (req == 0)
        sync_stats(z);
    carve_stats before = z->st;
    int st = carve_hresize(z->h, s->hd, req);
    if (req == 0) {
        FUZZ_CHECK(st == CARVE_ERR_INVALID, "hresize(0) = %d", st);
        refresh_now(z);
        FUZZ_CHECK(tu_stats_diff_but_failed(&before, &z->st) == NULL, "hresize(0) changed %s",
                   tu_stats_diff_but_failed(&before, &z->st));
        verify_handle(z, i);
        return;
    }
    if (st == CARVE_OK) {
        s->usable = carve_hsize(z->h, s->hd);
        FUZZ_CHECK(s->usable >= req, "hsize %zu < %zu after hresize", s->usable, req);
        unsigned char *p = pin_slot(z, i);
        size_t keep = old_req < req ? old_req : req;
        FUZZ_CHECK(tu_verify(p, s->seed, keep) == keep, "hresize lost the kept prefix");
        FUZZ_CHECK(p == old || req > old_usable, "hresize to a size the block holds moved it");
        for (size_t k = 0; k < NSLOTS; k++)
            if (z->s[k].p != NULL)
                FUZZ_CHECK(p + s->usable <= z->s[k].p || z->s[k].p + z->s[k].usable <= p,
                           "resized handle block overlaps a raw block");
        tu_fill_range(p, s->seed, keep, s->usable);
        unpin_slot(z, i);
        s->req = req;
        refresh(z);
        return;
    }
    FUZZ_CHECK(req > old_usable, "hresize(%zu) of a %zu-byte block failed with %d", req, old_usable,
               st);
    if (st == CARVE_ERR_PINNED) {
        FUZZ_CHECK(s->pins > 0, "hresize of an unpinned handle = PINNED");
    } else {
        largest = largest_after_failure(z, largest);
        FUZZ_CHECK(st == CARVE_ERR_NOMEM &&
                       (s->pins > 0 || largest <= CARVE_SMALL_MAX || as_raw(req) > largest),
                   "hresize(%zu) = %d with largest_free %zu", req, st, largest);
    }
    refresh(z);
    verify_handle(z, i);
}

/* A compaction with a budget from v: scale 15 = all the way, else the low
 * 12 bits shifted by the scale (mostly small budgets). */
static void do_compact(fz *z, unsigned v)
{
    unsigned scale = v >> 12;
    size_t budget = scale == 15 ? SIZE_MAX : (size_t)(v & 0xFFFu) << scale;
    sync_stats(z);
    carve_stats before = z->st;
    size_t moved = carve_compact(z->h, budget);
    refresh_now(z);
    FUZZ_CHECK(moved <= budget, "compact(%zu) moved %zu", budget, moved);
    FUZZ_CHECK(z->st.bytes_moved - before.bytes_moved == moved, "bytes_moved grew by %llu, not %zu",
               (unsigned long long)(z->st.bytes_moved - before.bytes_moved), moved);
    FUZZ_CHECK(z->st.compactions - before.compactions == (moved > 0 ? 1u : 0u) ||
                   (moved == 0 && z->st.compactions - before.compactions <= 1u),
               "compactions counted wrong");
    FUZZ_CHECK(moved == 0 || movable(z), "compact moved %zu bytes with nothing movable", moved);
    FUZZ_CHECK(z->st.largest_free >= before.largest_free, "compact shrank largest_free");
    FUZZ_CHECK(z->st.used_bytes == before.used_bytes, "compact changed used_bytes");
    if (budget == SIZE_MAX)
        FUZZ_CHECK(carve_compact(z->h, SIZE_MAX) == 0, "a second full compaction moved bytes");
    refresh_now(z);
    FUZZ_CHECK(carve_check(z->h) == CARVE_OK, "carve_check after compaction");
    verify_everything(z);
}

/* Handles that name nothing (0, stale, a live one with a bit changed):
 * refused, nothing changes. */
static void do_bad_handles(fz *z, size_t i, unsigned v)
{
    carve_handle c[NSTALE + 3];
    size_t n = 0;
    c[n++] = 0;
    c[n++] = (carve_handle)v << 32 | (v & 0xFFu);
    for (size_t k = 0; k < NSTALE && k < z->nstale; k++)
        c[n++] = z->stale[k];
    if (z->s[i].hd != 0)
        c[n++] = z->s[i].hd ^ ((carve_handle)1 << (v % 64u));
    sync_stats(z);
    carve_stats before = z->st;
    for (size_t k = 0; k < n; k++) {
        int live = 0;
        for (size_t j = 0; j < NSLOTS; j++)
            live |= c[k] != 0 && z->s[j].hd == c[k];
        if (live)
            continue;
        errno = 0;
        FUZZ_CHECK(carve_pin(z->h, c[k]) == NULL && errno == EINVAL, "pin(bad 0x%llx)",
                   (unsigned long long)c[k]);
        FUZZ_CHECK(carve_hsize(z->h, c[k]) == 0, "hsize(bad)");
        FUZZ_CHECK(carve_unpin(z->h, c[k]) == CARVE_ERR_NOT_OWNED, "unpin(bad)");
        FUZZ_CHECK(carve_hfree(z->h, c[k]) == CARVE_ERR_NOT_OWNED, "hfree(bad)");
        FUZZ_CHECK(carve_hresize(z->h, c[k], 64) == CARVE_ERR_NOT_OWNED, "hresize(bad)");
    }
    refresh_now(z);
    FUZZ_CHECK(tu_stats_diff_but_failed(&before, &z->st) == NULL, "a bad handle changed %s",
               tu_stats_diff_but_failed(&before, &z->st));
}

/* Handle operation op (16-31) on slot i. */
static void do_handle_op(fz *z, unsigned op, size_t i, unsigned v, size_t req)
{
    fslot *s = &z->s[i];
    if (s->p != NULL) /* a raw block's slot: left to the raw operations */
        return;
    if (s->hd == 0) {
        if (op == 22)
            do_compact(z, v);
        else if (op == 23)
            do_bad_handles(z, i, v);
        else if (op == 25)
            verify_everything(z);
        else
            do_halloc(z, i, req);
        return;
    }
    switch (op) {
    case 16:
    case 24:
        do_hfree(z, i);
        break;
    case 17:
    case 18:
        if (s->pins < 3)
            do_pin(z, i);
        else
            do_unpin(z, i);
        break;
    case 19:
    case 26:
        do_unpin(z, i);
        break;
    case 20:
    case 27:
        do_hresize(z, i, req);
        break;
    case 21: { /* near the old size */
        size_t up = v & 63u, down = (v >> 6) & 63u;
        size_t nsz = s->req + up;
        do_hresize(z, i, nsz > down ? nsz - down : 1);
        break;
    }
    case 22:
    case 28:
        do_compact(z, v);
        break;
    case 23:
        do_bad_handles(z, i, v);
        break;
    case 25:
        verify_everything(z);
        break;
    default: /* 29-31 */
        if (s->pins > 0)
            do_unpin(z, i);
        else
            do_hfree(z, i);
        break;
    }
}

static void do_check(fz *z)
{
    FUZZ_CHECK(carve_check(z->h) == CARVE_OK, "carve_check failed");
    sync_stats(z);
    verify_everything(z);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t len);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t len)
{
    if (len < 4)
        return 0;
    static fz z;
    memset(&z, 0, sizeof z);
    carve_options o;
    memset(&o, 0, sizeof o);
    o.policy = (carve_policy)(data[0] % 3);
    z.lazy = (data[0] & 128u) != 0;
    if (z.lazy)
        o.flags = (data[0] & 4u) ? (unsigned)CARVE_NO_BLOCK_CACHE : 0u;
    else
        o.flags = ((data[0] & 4u) ? (unsigned)CARVE_POISON : 0u) |
                  ((data[0] & 32u) ? (unsigned)CARVE_SCRAMBLE : 0u);
    o.flags |= ((data[0] & 8u) ? (unsigned)CARVE_THREADSAFE : 0u) |
               ((data[0] & 16u) ? (unsigned)CARVE_NO_RUNS : 0u);
    o.max_handles = (data[0] & 64u) ? 64u : 0u;
    z.flags = o.flags;
    z.max_handles = o.max_handles;
    unsigned units = (unsigned)data[1] | ((unsigned)data[2] << 8);
    /* Poisoning makes every free and allocation O(block), scrambling every
     * allocation O(handle bytes): smaller heaps. */
    unsigned max_units =
        (o.flags & (CARVE_POISON | CARVE_SCRAMBLE)) ? MAX_HEAP_UNITS / 8u : MAX_HEAP_UNITS;
    size_t size = carve_min_buffer_size(&o) + 16u * (units % (max_units + 1u));
    if (z.lazy)
        size = CARVE_GCACHE_MIN_HEAP + CARVE_GCACHE_MIN_HEAP / 16u + 64u * (size_t)units;
    int dumped = 0;
    size_t misalign = data[3] % 64u;
    if (tu_region_make(&z.r, size, misalign, 64, 0xC3) != 0)
        return 0;
    z.h = carve_init(z.r.buf, size, &o);
    FUZZ_CHECK(z.h != NULL, "init(%zu) failed", size);
    carve_get_stats(z.h, &z.st);
    z.capacity = z.st.capacity;
    z.next_seed = 1;
    size_t used_at_init = z.st.used_bytes;
    if (o.max_handles != 0) { /* the table exists from init */
        z.base_known = 1;
        z.base_blocks = z.st.live_blocks;
        z.base_allocs = z.st.allocs - z.st.frees;
    }

    for (size_t pos = 4; pos + 4 <= len; pos += 4) {
        unsigned op = data[pos] % 32u;
        size_t i = data[pos + 1] % NSLOTS;
        unsigned v = (unsigned)data[pos + 2] | ((unsigned)data[pos + 3] << 8);
        size_t req = size_from(&z, v);
        if (op < 16 && z.s[i].hd != 0)
            op += 16; /* a handle's slot: a handle operation */
        if (op >= 16) {
            do_handle_op(&z, op, i, v, req);
            op = 32; /* nothing more */
        }
        switch (op) {
        case 32:
            break;
        case 0:
        case 1:
        case 2:
        case 3:
            if (z.s[i].p != NULL)
                do_free(&z, i);
            else
                do_alloc(&z, i, op == 3 ? 2u : op == 2 ? 1u : 0u, v ^ data[pos + 1], req);
            break;
        case 4:
        case 5:
            if (z.s[i].p != NULL)
                do_realloc(&z, i, req);
            else
                do_alloc(&z, i, 0, 0, req);
            break;
        case 6:
            if (z.s[i].p != NULL)
                do_realloc(&z, i, 0);
            break;
        case 7:
            if (z.s[i].p != NULL)
                do_double_free(&z, i, (int)(v & 1u));
            break;
        case 8:
            do_bad(&z, i, v);
            break;
        case 9:
            do_probe_largest(&z);
            break;
        case 10:
            do_check(&z);
            break;
        case 11:
            FUZZ_CHECK(carve_attach(z.r.buf, size) == z.h, "attach in place failed");
            break;
        case 12: /* the dump is slow to print: once per input */
            if (!dumped && devnull() != NULL)
                carve_dump_ex(z.h, devnull(),
                              CARVE_DUMP_BLOCKS | (size <= 65536 ? CARVE_DUMP_HEX : 0u));
            dumped = 1;
            break;
        case 13:
            if (z.s[i].p != NULL) { /* a realloc to a size near the old one */
                size_t up = v & 63u, down = (v >> 6) & 63u;
                size_t n = z.s[i].req + up;
                do_realloc(&z, i, n > down ? n - down : 1);
            }
            break;
        case 14:
            do_trim(&z, v);
            break;
        default:
            if (z.s[i].p != NULL)
                do_free(&z, i);
            break;
        }
        if (((pos - 4) / 4) % 16 == 15)
            FUZZ_CHECK(carve_check(z.h) == CARVE_OK, "carve_check failed");
    }
    do_check(&z);
    for (size_t k = 0; k < NSLOTS; k++) {
        if (z.s[k].p != NULL)
            do_free(&z, k);
        while (z.s[k].hd != 0 && z.s[k].pins > 0)
            do_unpin(&z, k);
        if (z.s[k].hd != 0)
            do_hfree(&z, k);
    }
    FUZZ_CHECK(carve_check(z.h) == CARVE_OK, "carve_check failed at the end");
    sync_stats(&z);
    FUZZ_CHECK(z.st.live_blocks == z.base_blocks && z.st.live_handles == 0,
               "blocks left after freeing all");
    /* A growing table stays once made (a failed first halloc may make it:
     * test_handles' test_failed_halloc_changes_nothing is about that). */
    FUZZ_CHECK(z.st.used_bytes == used_at_init || (o.max_handles == 0 && z.halloc_tried),
               "used_bytes %zu after freeing all, %zu at init", z.st.used_bytes, used_at_init);
    FUZZ_CHECK(tu_region_guards_ok(&z.r), "guard zone written");
    tu_region_free(&z.r);
    return 0;
}
