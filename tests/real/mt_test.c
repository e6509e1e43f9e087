/*
 * mt_test: threads that allocate, fill, reallocate and free blocks, handing
 * many of them to other threads through a shared mailbox to be checked and
 * freed there (cross-thread frees).  Every block carries its creator,
 * sequence number and a pattern; whoever frees it checks them and adds a
 * hash of them to a global sum.  The set of blocks is fixed by the seeds,
 * so the output is the same under any correct malloc, whatever the
 * scheduling: the real-program tests compare it with and without the shim.
 *
 *   mt_test [ITEMS_PER_THREAD]
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define THREADS    4
#define LOCAL      64
#define MAILBOX    1024
#define HEADER_LEN 16

static unsigned long g_items = 40000;
static _Atomic uint64_t g_sum;
static _Atomic unsigned long g_freed, g_cross;

static pthread_mutex_t g_box_lock = PTHREAD_MUTEX_INITIALIZER;
static unsigned char *g_box[MAILBOX];
static size_t g_box_len;

typedef struct rng {
    uint64_t s;
} rng;

static uint64_t next(rng *r)
{
    uint64_t z = (r->s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static void die(const char *what)
{
    fprintf(stderr, "mt_test: %s\n", what);
    exit(1);
}

/* Header: creator (4 bytes), sequence (4), size (8); then pattern bytes. */
static unsigned char pattern(uint32_t thread, uint32_t seq, size_t i)
{
    return (unsigned char)((thread * 131u + seq * 7u + i * 31u) >> 1);
}

static void fill(unsigned char *p, uint32_t thread, uint32_t seq, size_t size, size_t from)
{
    if (from == 0) {
        memcpy(p, &thread, 4);
        memcpy(p + 4, &seq, 4);
        uint64_t s = size;
        memcpy(p + 8, &s, 8);
        from = HEADER_LEN;
    }
    for (size_t i = from; i < size; i++) {
        p[i] = pattern(thread, seq, i);
    }
}

/* Checks a block and frees it; returns its hash. */
static void check_and_free(unsigned char *p, uint32_t me)
{
    uint32_t thread;
    uint32_t seq;
    uint64_t size;
    memcpy(&thread, p, 4);
    memcpy(&seq, p + 4, 4);
    memcpy(&size, p + 8, 8);
    for (size_t i = HEADER_LEN; i < size; i++) {
        if (p[i] != pattern(thread, seq, i)) {
            die("a block's contents changed");
        }
    }
    uint64_t h = ((uint64_t)thread << 40) ^ ((uint64_t)seq << 8) ^ size;
    h *= 0x9E3779B97F4A7C15ull;
    atomic_fetch_add(&g_sum, h ^ (h >> 29));
    atomic_fetch_add(&g_freed, 1);
    if (thread != me) {
        atomic_fetch_add(&g_cross, 1);
    }
    free(p);
}

static size_t pick_size(rng *r)
{
    uint64_t k = next(r) % 100;
    if (k < 70) {
        return HEADER_LEN + (size_t)(next(r) % 256);
    }
    if (k < 98) {
        return HEADER_LEN + (size_t)(next(r) % 8192);
    }
    return HEADER_LEN + (size_t)(next(r) % 100000);
}

static unsigned char *make_block(rng *r, uint32_t me, uint32_t seq, size_t *size)
{
    *size = pick_size(r);
    unsigned char *p;
    uint64_t how = next(r) % 16;
    if (how == 0) {
        p = aligned_alloc((size_t)64 << (next(r) % 7), *size);
    } else if (how == 1) {
        p = calloc(1, *size);
        if (p) {
            for (size_t i = 0; i < *size; i++) {
                if (p[i] != 0) {
                    die("calloc returned memory that is not zero");
                }
            }
        }
    } else {
        p = malloc(*size);
    }
    if (!p) {
        die("out of memory");
    }
    fill(p, me, seq, *size, 0);
    /* Grow or shrink it a few times; the prefix must survive. */
    int resizes = (int)(next(r) % 3);
    for (int k = 0; k < resizes; k++) {
        size_t ns = pick_size(r);
        unsigned char *q = realloc(p, ns);
        if (!q) {
            die("realloc failed");
        }
        size_t keep = ns < *size ? ns : *size;
        for (size_t i = HEADER_LEN; i < keep; i++) {
            if (q[i] != pattern(me, seq, i)) {
                die("realloc lost contents");
            }
        }
        p = q;
        *size = ns;
        fill(p, me, seq, ns, 0);
    }
    return p;
}

static void *worker(void *arg)
{
    uint32_t me = (uint32_t)(uintptr_t)arg;
    rng r = {0x1234u + me * 7919u};
    /* The mailbox's choices come from a generator of their own, drawn the
     * same number of times whatever the mailbox holds, so the blocks made
     * (which r decides) do not depend on scheduling. */
    rng box = {0xABCDu + me};
    unsigned char *local[LOCAL] = {0};
    for (uint32_t seq = 0; seq < g_items; seq++) {
        size_t size;
        unsigned char *p = make_block(&r, me, seq, &size);
        if (next(&r) % 2 == 0) {
            size_t slot = (size_t)(next(&r) % LOCAL);
            if (local[slot]) {
                check_and_free(local[slot], me);
            }
            local[slot] = p;
            continue;
        }
        unsigned char *victim = NULL;
        uint64_t take = next(&box);
        uint64_t which = next(&box);
        pthread_mutex_lock(&g_box_lock);
        if (g_box_len == MAILBOX || (g_box_len > 0 && take % 2 == 0)) {
            size_t i = (size_t)(which % g_box_len);
            victim = g_box[i];
            g_box[i] = g_box[--g_box_len];
        }
        g_box[g_box_len++] = p;
        pthread_mutex_unlock(&g_box_lock);
        if (victim) {
            check_and_free(victim, me);
        }
    }
    for (size_t i = 0; i < LOCAL; i++) {
        if (local[i]) {
            check_and_free(local[i], me);
        }
    }
    return NULL;
}

int main(int argc, char **argv)
{
    if (argc > 1) {
        g_items = strtoul(argv[1], NULL, 10);
    }
    pthread_t t[THREADS];
    for (uintptr_t i = 0; i < THREADS; i++) {
        if (pthread_create(&t[i], NULL, worker, (void *)i) != 0) {
            die("pthread_create failed");
        }
    }
    for (int i = 0; i < THREADS; i++) {
        pthread_join(t[i], NULL);
    }
    while (g_box_len > 0) {
        check_and_free(g_box[--g_box_len], THREADS);
    }
    unsigned long total = (unsigned long)THREADS * g_items;
    if (atomic_load(&g_freed) != total) {
        die("not every block was freed exactly once");
    }
    printf("mt_test: %d threads, %lu blocks, checksum %016llx\n", THREADS, total,
           (unsigned long long)atomic_load(&g_sum));
    /* The number of cross-thread frees depends on scheduling: only say that
     * there were some. */
    printf("mt_test: cross-thread frees: %s\n", atomic_load(&g_cross) > 0 ? "yes" : "no");
    return 0;
}
