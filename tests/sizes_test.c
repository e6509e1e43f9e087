/*
 * sizes_test: heaps of many sizes and placements (plain C, no cmocka, so a
 * -m32 build without a 32-bit cmocka still runs it).
 *
 *   1. the smallest allowed buffer at every remainder modulo 64, for several
 *      option sets: it formats, holds carve_max_alloc_size() bytes, checks;
 *   2. odd sizes (1000, 4097, 65535 + 3, ...) at unaligned addresses: filled
 *      with random blocks until ENOMEM, no overlap, contents kept, the walk
 *      tiles the capacity, freeing everything restores the fresh heap;
 *   3. a heap larger than 4 GiB (64-bit only): a 5 GiB MAP_NORESERVE mapping,
 *      one block over 4 GiB with its first and last pages touched, a few
 *      other blocks, carve_check, the whole heap in one block.  Skipped with a
 *      notice when size_t is 32 bits or the mapping fails.
 *
 * Exit status 0 = pass.  Prints "sizes_test: N passed, N failed".
 */
#define _DEFAULT_SOURCE /* MAP_ANONYMOUS, MAP_NORESERVE */
#include <errno.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "test_util.h"

static int failures;
static const char *current = "";

#define CHECK(cond, ...)                                                                    \
    do {                                                                                    \
        if (!(cond)) {                                                                      \
            fprintf(stderr, "sizes_test: %s: %s:%d: check failed: %s: ", current, __FILE__, \
                    __LINE__, #cond);                                                       \
            fprintf(stderr, __VA_ARGS__);                                                   \
            fputc('\n', stderr);                                                            \
            failures++;                                                                     \
            return;                                                                         \
        }                                                                                   \
    } while (0)

static const carve_options *option_set(size_t i, carve_options *o)
{
    memset(o, 0, sizeof *o);
    switch (i) {
    case 0:
        return NULL;
    case 1:
        o->policy = CARVE_FIRST_FIT;
        return o;
    case 2:
        o->policy = CARVE_BEST_FIT;
        o->flags = CARVE_POISON;
        return o;
    case 3:
        o->flags = CARVE_THREADSAFE;
        return o;
    default:
        o->flags = CARVE_SHARED;
        return o;
    }
}
#define N_OPTION_SETS 5

/* ------------------------------------------------------------------------ */
/* 1. The smallest heap                                                      */
/* ------------------------------------------------------------------------ */

static void smallest_at_every_remainder(void)
{
    current = "smallest heap";
    for (size_t si = 0; si < N_OPTION_SETS; si++) {
        carve_options storage;
        const carve_options *opt = option_set(si, &storage);
        size_t min = carve_min_buffer_size(opt);
        size_t max = carve_max_alloc_size(min, opt);
        CHECK(min > 0 && max > 0, "option set %zu: min %zu max %zu", si, min, max);
        for (size_t m = 0; m < 64; m++) {
            tu_region r;
            CHECK(tu_region_make(&r, min, m, 128, 0x99) == 0, "out of memory");
            carve_heap *h = carve_init(r.buf, min, opt);
            CHECK(h != NULL, "set %zu: init(min %zu) at remainder %zu: errno %d", si, min, m,
                  errno);
            CHECK(carve_check(h) == CARVE_OK, "set %zu remainder %zu: check", si, m);
            unsigned char *p = carve_alloc(h, max);
            CHECK(p != NULL, "set %zu remainder %zu: alloc(max_alloc_size %zu) failed", si, m, max);
            CHECK(tu_region_contains(&r, p, max), "set %zu remainder %zu: block outside", si, m);
            memset(p, 0x5C, max);
            CHECK(carve_check(h) == CARVE_OK, "set %zu remainder %zu: check with a block", si, m);
            CHECK(carve_free(h, p) == CARVE_OK, "free");
            /* Every tiny size fits too. */
            for (size_t s = 1; s <= max && s <= 64; s++) {
                p = carve_alloc(h, s);
                CHECK(p != NULL, "set %zu remainder %zu: alloc(%zu) failed", si, m, s);
                CHECK(carve_free(h, p) == CARVE_OK, "free");
            }
            CHECK(carve_check(h) == CARVE_OK, "set %zu remainder %zu: final check", si, m);
            CHECK(tu_region_guards_ok(&r), "set %zu remainder %zu: guard zone written", si, m);
            tu_region_free(&r);
        }
    }
}

/* ------------------------------------------------------------------------ */
/* 2. Odd sizes at odd addresses                                             */
/* ------------------------------------------------------------------------ */

typedef struct blk {
    unsigned char *p;
    size_t usable;
    uint64_t seed;
} blk;

static int cmp_blk(const void *a, const void *b)
{
    uintptr_t x = (uintptr_t)((const blk *)a)->p, y = (uintptr_t)((const blk *)b)->p;
    return x < y ? -1 : x > y;
}

typedef struct tiling {
    size_t total, count, prev_end;
    int gap;
} tiling;

static int tile_visit(const carve_block *b, void *ctx)
{
    tiling *t = (tiling *)ctx;
    if (t->count > 0 && b->offset != t->prev_end)
        t->gap = 1;
    t->prev_end = b->offset + b->size;
    t->total += b->size;
    t->count++;
    return 0;
}

static void fill_and_empty(size_t size, size_t misalign, carve_policy policy, uint64_t seed)
{
    tu_region r;
    CHECK(tu_region_make(&r, size, misalign, 1024, 0x3E) == 0, "out of memory");
    carve_options o;
    memset(&o, 0, sizeof o);
    o.policy = policy;
    carve_heap *h = carve_init(r.buf, size, &o);
    CHECK(h != NULL, "init(%zu) at remainder %zu: errno %d", size, misalign, errno);
    carve_stats fresh;
    carve_get_stats(h, &fresh);
    CHECK(fresh.capacity <= size && fresh.capacity > 0, "capacity %zu of %zu", fresh.capacity,
          size);
    CHECK(fresh.largest_free >= carve_max_alloc_size(size, &o),
          "size %zu remainder %zu: largest_free %zu < max_alloc_size %zu", size, misalign,
          fresh.largest_free, carve_max_alloc_size(size, &o));

    size_t cap = 64 + size / 16;
    blk *b = (blk *)calloc(cap, sizeof *b);
    CHECK(b != NULL, "out of memory");
    tu_rng rng;
    tu_rng_seed(&rng, seed);
    size_t n = 0;
    unsigned hi = 4;
    while (((size_t)1 << hi) < size / 4 && hi < 20)
        hi++;
    int misses = 0;
    while (n < cap && misses < 50) {
        size_t s = tu_rng_log_uniform(&rng, 0, hi);
        unsigned char *p =
            n % 5 == 4 ? carve_aligned_alloc(h, (size_t)64 << (n % 4), s) : carve_alloc(h, s);
        if (p == NULL) {
            CHECK(errno == ENOMEM, "errno %d", errno);
            misses++;
            continue;
        }
        b[n].p = p;
        b[n].usable = carve_usable_size(h, p);
        b[n].seed = tu_rng_next(&rng);
        CHECK(b[n].usable >= s, "usable %zu < %zu", b[n].usable, s);
        CHECK(tu_region_contains(&r, p, b[n].usable), "size %zu: block %p+%zu outside buffer", size,
              (void *)p, b[n].usable);
        tu_fill(p, b[n].seed, b[n].usable);
        n++;
    }
    /* The heap is now (nearly) full: last the largest free piece. */
    carve_stats st;
    carve_get_stats(h, &st);
    if (st.largest_free > 0 && n < cap) {
        unsigned char *p = carve_alloc(h, st.largest_free);
        CHECK(p != NULL, "size %zu: alloc(largest_free %zu) failed", size, st.largest_free);
        b[n].p = p;
        b[n].usable = carve_usable_size(h, p);
        b[n].seed = tu_rng_next(&rng);
        CHECK(tu_region_contains(&r, p, b[n].usable), "largest block outside");
        tu_fill(p, b[n].seed, b[n].usable);
        n++;
    }
    CHECK(carve_check(h) == CARVE_OK, "size %zu remainder %zu: check when full", size, misalign);
    tiling t;
    memset(&t, 0, sizeof t);
    CHECK(carve_walk(h, tile_visit, &t) == CARVE_OK, "walk");
    CHECK(!t.gap && t.total == fresh.capacity, "size %zu: walk covers %zu of capacity %zu (gap %d)",
          size, t.total, fresh.capacity, t.gap);
    qsort(b, n, sizeof *b, cmp_blk);
    for (size_t i = 0; i + 1 < n; i++)
        CHECK(b[i].p + b[i].usable <= b[i + 1].p, "size %zu: blocks %p+%zu and %p overlap", size,
              (void *)b[i].p, b[i].usable, (void *)b[i + 1].p);
    for (size_t i = 0; i < n; i++)
        CHECK(tu_verify(b[i].p, b[i].seed, b[i].usable) == b[i].usable,
              "size %zu: block %p lost its contents", size, (void *)b[i].p);
    /* Free in an order that exercises both-side merges: odd ones, then even. */
    for (size_t pass = 0; pass < 2; pass++)
        for (size_t i = pass ? 0 : 1; i < n; i += 2)
            CHECK(carve_free(h, b[i].p) == CARVE_OK, "free");
    carve_get_stats(h, &st);
    const char *d = tu_stats_diff(&fresh, &st, 1);
    CHECK(d == NULL, "size %zu remainder %zu: after freeing all, %s differs from fresh", size,
          misalign, d);
    CHECK(carve_check(h) == CARVE_OK, "final check");
    CHECK(tu_region_guards_ok(&r), "size %zu remainder %zu: guard zone written", size, misalign);
    free(b);
    tu_region_free(&r);
}

static void odd_sizes(void)
{
    current = "odd sizes";
    const size_t sizes[] = {1000,
                            1024,
                            4096 + 1,
                            8191,
                            65535 + 3,
                            100003,
                            262147,
                            (1u << 20) + 13,
                            3u * 1024 * 1024 + 7};
    const size_t remainders[] = {0, 1, 7, 8, 15, 16, 31, 33, 48, 63};
    const carve_policy policies[] = {CARVE_GOOD_FIT, CARVE_FIRST_FIT, CARVE_BEST_FIT};
    uint64_t seed = 1;
    for (size_t si = 0; si < sizeof sizes / sizeof sizes[0]; si++)
        for (size_t ri = 0; ri < sizeof remainders / sizeof remainders[0]; ri++)
            for (size_t pi = 0; pi < 3; pi++) {
                if (sizes[si] < carve_min_buffer_size(NULL))
                    continue;
                fill_and_empty(sizes[si], remainders[ri], policies[pi], seed++);
            }
}

/* ------------------------------------------------------------------------ */
/* 3. Larger than 4 GiB                                                      */
/* ------------------------------------------------------------------------ */

static void touch_ends(unsigned char *p, size_t n)
{
    size_t page = 4096;
    memset(p, 0xA1, n < page ? n : page);
    if (n > page)
        memset(p + n - page, 0xA2, page);
}

static int ends_intact(const unsigned char *p, size_t n)
{
    size_t page = 4096;
    if (n <= page)
        return p[0] == 0xA1 && p[n - 1] == 0xA1;
    return p[0] == 0xA1 && p[page - 1] == 0xA1 && p[n - page] == 0xA2 && p[n - 1] == 0xA2;
}

static void over_4gib(void)
{
    current = "4 GiB+";
    if (sizeof(size_t) < 8) {
        printf("sizes_test: NOTICE: skipping the 4 GiB+ heap: size_t is %zu bytes\n",
               sizeof(size_t));
        return;
    }
    const uint64_t map_bytes = UINT64_C(5) << 30;
    void *map = mmap(NULL, (size_t)map_bytes, PROT_READ | PROT_WRITE,
                     MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (map == MAP_FAILED) {
        printf("sizes_test: NOTICE: skipping the 4 GiB+ heap: mmap of 5 GiB failed (%s)\n",
               strerror(errno));
        return;
    }
    /* An unaligned start, and a size that is not a round number. */
    unsigned char *buf = (unsigned char *)map + 24;
    size_t size = (size_t)map_bytes - 24 - 4093;
    carve_heap *h = carve_init(buf, size, NULL);
    CHECK(h != NULL, "init(%zu): errno %d", size, errno);
    carve_stats fresh;
    carve_get_stats(h, &fresh);
    CHECK(fresh.capacity > (UINT64_C(5) << 30) - (UINT64_C(1) << 20),
          "capacity %zu of a 5 GiB buffer", fresh.capacity);
    CHECK(carve_max_alloc_size(size, NULL) > (size_t)(UINT64_C(4) << 30), "max_alloc_size %zu",
          carve_max_alloc_size(size, NULL));

    /* A block over 4 GiB, between small ones. */
    unsigned char *small1 = carve_alloc(h, 100);
    size_t big_req = (size_t)(UINT64_C(4) << 30) + 4096 + 17;
    unsigned char *big = carve_alloc(h, big_req);
    unsigned char *small2 = carve_alloc(h, 5000);
    CHECK(small1 && big && small2, "allocs: %p %p %p (errno %d)", (void *)small1, (void *)big,
          (void *)small2, errno);
    size_t big_usable = carve_usable_size(h, big);
    CHECK(big_usable >= big_req && big_usable < big_req + 4096, "usable %zu of %zu", big_usable,
          big_req);
    CHECK(big >= buf && big + big_usable <= buf + size, "big block outside the buffer");
    CHECK(tu_is_aligned(big, CARVE_ALIGNMENT), "alignment");
    touch_ends(big, big_usable);
    memset(small1, 1, 100);
    memset(small2, 2, 5000);
    /* Sizes around the 32-bit boundaries. */
    const size_t edges[] = {(size_t)UINT32_MAX - 8, (size_t)UINT32_MAX, (size_t)UINT32_MAX + 1};
    carve_stats st;
    carve_get_stats(h, &st);
    CHECK(st.used_bytes >= big_req + 5100, "used_bytes %zu", st.used_bytes);
    CHECK(st.used_bytes + st.free_bytes == st.capacity, "used + free != capacity");
    for (size_t i = 0; i < 3; i++) {
        errno = 0;
        unsigned char *e = carve_alloc(h, edges[i]);
        CHECK(e == NULL && errno == ENOMEM, "alloc(%zu) with < 1 GiB free: %p", edges[i],
              (void *)e);
    }
    CHECK(carve_check(h) == CARVE_OK, "check with the big block");
    /* Grow the big block in place into what follows? small2 is in the way;
     * shrink it in place instead, keeping the head. */
    unsigned char *shr = carve_realloc(h, big, (size_t)(UINT64_C(3) << 30));
    CHECK(shr == big, "shrink of a 4 GiB block moved it");
    CHECK(big[0] == 0xA1 && big[4095] == 0xA1, "shrink lost the head");
    CHECK(carve_free(h, big) == CARVE_OK, "free big");
    CHECK(carve_free(h, small1) == CARVE_OK, "free small1");
    CHECK(carve_free(h, small2) == CARVE_OK, "free small2");
    carve_get_stats(h, &st);
    CHECK(tu_stats_diff(&fresh, &st, 1) == NULL, "after freeing all: %s differs",
          tu_stats_diff(&fresh, &st, 1));

    /* The whole heap in one block, then sizes across the 32-bit boundary. */
    unsigned char *all = carve_alloc(h, fresh.largest_free);
    CHECK(all != NULL, "alloc(largest_free %zu) failed", fresh.largest_free);
    size_t all_usable = carve_usable_size(h, all);
    CHECK(all + all_usable <= buf + size, "whole-heap block outside the buffer");
    touch_ends(all, all_usable);
    CHECK(ends_intact(all, all_usable), "whole-heap block ends");
    CHECK(carve_free(h, all) == CARVE_OK, "free all");
    for (size_t i = 0; i < 3; i++) {
        unsigned char *e = carve_alloc(h, edges[i]);
        CHECK(e != NULL, "alloc(%zu) failed", edges[i]);
        size_t us = carve_usable_size(h, e);
        CHECK(us >= edges[i], "usable %zu < %zu (truncated to 32 bits?)", us, edges[i]);
        touch_ends(e, us);
        CHECK(ends_intact(e, us), "ends of %zu", edges[i]);
        unsigned char *c = carve_calloc(h, 16, 16);
        CHECK(c != NULL && tu_all_zero(c, 256), "calloc next to a 4 GiB block");
        CHECK(carve_free(h, e) == CARVE_OK, "free edge");
        CHECK(carve_free(h, c) == CARVE_OK, "free calloc");
    }
    /* An aligned block far into the heap. */
    unsigned char *a = carve_aligned_alloc(h, (size_t)1 << 30, 1000);
    CHECK(a != NULL && tu_is_aligned(a, (size_t)1 << 30), "1 GiB-aligned block: %p", (void *)a);
    CHECK(carve_check(h) == CARVE_OK, "check with a 1 GiB-aligned block");
    CHECK(carve_free(h, a) == CARVE_OK, "free aligned");
    carve_get_stats(h, &st);
    CHECK(tu_stats_diff(&fresh, &st, 1) == NULL, "at the end: %s differs",
          tu_stats_diff(&fresh, &st, 1));
    CHECK(carve_check(h) == CARVE_OK, "final check");
    FILE *devnull = fopen("/dev/null", "w");
    if (devnull != NULL) {
        carve_dump(h, devnull);
        fclose(devnull);
    }
    munmap(map, (size_t)map_bytes);
    printf("sizes_test: 4 GiB+ heap of %zu bytes: OK\n", size);
}

int main(void)
{
    struct {
        const char *name;
        void (*fn)(void);
    } parts[] = {
        {"smallest heap at every remainder", smallest_at_every_remainder},
        {"odd sizes at odd addresses", odd_sizes},
        {"heap larger than 4 GiB", over_4gib},
    };
    int passed = 0, failed = 0;
    for (size_t i = 0; i < sizeof parts / sizeof parts[0]; i++) {
        int before = failures;
        parts[i].fn();
        if (failures == before) {
            passed++;
            printf("sizes_test: %s: OK\n", parts[i].name);
        } else {
            failed++;
            printf("sizes_test: %s: FAILED\n", parts[i].name);
        }
        fflush(stdout);
    }
    printf("sizes_test: %d passed, %d failed\n", passed, failed);
    return failed != 0;
}
