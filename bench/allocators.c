/*
 * carve-bench: the allocators under test, as vtables.
 *
 *   noop   the harness alone: hands out cells of a pre-faulted array from a
 *          LIFO stack, so the table can show each allocator's net cost;
 *   carve  one heap per job over a pre-faulted mmap'd buffer, one vtable per
 *          policy, single thread, no flags;
 *   libc   malloc/free as this process resolves them: glibc, or a peer
 *          preloaded into a child process (see spawn.c).
 *
 * The wrappers are one call deep on purpose: every allocator, the no-op
 * included, is reached through the same indirect call, so that call is part
 * of the harness and cancels out of the net figures.
 *
 * Copyright (c) 2026 the carve authors.  MIT licence (see LICENSE).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "bench.h"
#include "carve.h"

/* ------------------------------------------------------------------------ */
/* Pre-faulted memory                                                        */
/* ------------------------------------------------------------------------ */

void *bench_map(size_t bytes)
{
    void *p = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED)
        die("mmap of %zu bytes failed: %s", bytes, strerror(errno));
    /* Fault every page in now, so no timed operation pays for it. */
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    for (size_t off = 0; off < bytes; off += page)
        ((volatile unsigned char *)p)[off] = 0;
    return p;
}

void bench_unmap(void *p, size_t bytes)
{
    if (p != NULL)
        munmap(p, bytes);
}

static void *region;
static size_t region_bytes;

void carve_buffer_reserve(size_t bytes)
{
    if (bytes <= region_bytes)
        return;
    bench_unmap(region, region_bytes);
    region = bench_map(bytes);
    region_bytes = bytes;
}

void *carve_buffer(size_t bytes)
{
    carve_buffer_reserve(bytes);
    return region;
}

/* ------------------------------------------------------------------------ */
/* The harness alone                                                         */
/* ------------------------------------------------------------------------ */

#define NOOP_CELL 64u /* one cache line per block, like distinct small blocks */

typedef struct noop_state {
    unsigned char *cells;
    void **stack; /* free cells, most recently freed on top */
    size_t top, capacity;
    size_t map_bytes;
} noop_state;

static int noop_init(const allocator *a, const job *j, void **self, char *why, size_t whylen)
{
    (void)a;
    size_t capacity;
    switch (j->workload) {
    case W_SMALL_CHURN:
    case W_MIXED_CHURN:
    case W_LATENCY:
        capacity = (size_t)j->slots;
        break;
    case W_ORDERED:
        capacity = (size_t)j->steps;
        break;
    default:
        snprintf(why, whylen, "not applicable");
        return -1;
    }
    /* One mapping: the state, the stack, then the cells. */
    size_t head = (sizeof(noop_state) + capacity * sizeof(void *) + NOOP_CELL - 1u) &
                  ~(size_t)(NOOP_CELL - 1u);
    size_t bytes = head + capacity * NOOP_CELL;
    unsigned char *mem = bench_map(bytes);
    noop_state *s = (noop_state *)(void *)mem;
    s->stack = (void **)(void *)(mem + sizeof(noop_state));
    s->cells = mem + head;
    s->capacity = capacity;
    s->map_bytes = bytes;
    /* Push in reverse so the first allocations come out in address order. */
    for (size_t i = 0; i < capacity; i++)
        s->stack[i] = s->cells + (capacity - 1u - i) * NOOP_CELL;
    s->top = capacity;
    *self = s;
    return 0;
}

static void *noop_alloc(void *self, size_t size)
{
    (void)size;
    noop_state *s = self;
    return s->top > 0 ? s->stack[--s->top] : NULL;
}

static void noop_free(void *self, void *ptr)
{
    noop_state *s = self;
    s->stack[s->top++] = ptr;
}

static int noop_teardown(void *self, char *why, size_t whylen)
{
    noop_state *s = self;
    int bad = s->top != s->capacity;
    if (bad)
        snprintf(why, whylen, "no-op: %zu cells not returned", s->capacity - s->top);
    bench_unmap(s, s->map_bytes);
    return bad ? -1 : 0;
}

const allocator noop_allocator = {"harness (no-op)", noop_init, noop_alloc, noop_free,
                                  noop_teardown,     0,         0};

/* ------------------------------------------------------------------------ */
/* carve                                                                     */
/* ------------------------------------------------------------------------ */

static int carve_bench_init(const allocator *a, const job *j, void **self, char *why, size_t whylen)
{
    carve_options opt;
    memset(&opt, 0, sizeof opt);
    opt.policy = (carve_policy)a->policy;
    size_t bytes = (size_t)j->heap;
    carve_heap *h = carve_init(carve_buffer(bytes), bytes, &opt);
    if (h == NULL) {
        snprintf(why, whylen, "carve_init(%zu bytes) failed: %s", bytes, strerror(errno));
        return -1;
    }
    *self = h;
    return 0;
}

static void *carve_bench_alloc(void *self, size_t size)
{
    return carve_alloc(self, size);
}

static void carve_bench_free(void *self, void *ptr)
{
    (void)carve_free(self, ptr);
}

/* The workload freed everything: the heap must be consistent and empty, and
 * every free must have been accepted (frees == allocs). */
static int carve_bench_teardown(void *self, char *why, size_t whylen)
{
    carve_heap *h = self;
    int status = carve_check(h);
    if (status != CARVE_OK) {
        snprintf(why, whylen, "carve_check after the run: %s", carve_strerror(status));
        return -1;
    }
    carve_stats st;
    carve_get_stats(h, &st);
    if (st.live_blocks != 0 || st.allocs != st.frees) {
        snprintf(why, whylen, "carve after the run: %zu live blocks, %llu allocs, %llu frees",
                 st.live_blocks, (unsigned long long)st.allocs, (unsigned long long)st.frees);
        return -1;
    }
    return 0;
}

const allocator carve_good_fit = {"carve GOOD_FIT",
                                  carve_bench_init,
                                  carve_bench_alloc,
                                  carve_bench_free,
                                  carve_bench_teardown,
                                  CARVE_GOOD_FIT,
                                  1};
const allocator carve_first_fit = {"carve FIRST_FIT",
                                   carve_bench_init,
                                   carve_bench_alloc,
                                   carve_bench_free,
                                   carve_bench_teardown,
                                   CARVE_FIRST_FIT,
                                   1};
const allocator carve_best_fit = {"carve BEST_FIT",
                                  carve_bench_init,
                                  carve_bench_alloc,
                                  carve_bench_free,
                                  carve_bench_teardown,
                                  CARVE_BEST_FIT,
                                  1};

/* ------------------------------------------------------------------------ */
/* malloc                                                                    */
/* ------------------------------------------------------------------------ */

static int libc_init(const allocator *a, const job *j, void **self, char *why, size_t whylen)
{
    (void)a;
    if (j->workload == W_FILL) {
        snprintf(why, whylen, "not applicable");
        return -1;
    }
    *self = NULL;
    return 0;
}

static void *libc_alloc(void *self, size_t size)
{
    (void)self;
    return malloc(size);
}

static void libc_free(void *self, void *ptr)
{
    (void)self;
    free(ptr);
}

static int libc_teardown(void *self, char *why, size_t whylen)
{
    (void)self;
    (void)why;
    (void)whylen;
    return 0;
}

const allocator libc_allocator = {"malloc", libc_init, libc_alloc, libc_free, libc_teardown, 0, 0};
