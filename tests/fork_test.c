/*
 * fork_test: fork() from a threaded program leaves a usable heap in the
 * child (label "threads").
 *
 * Two threads hammer one CARVE_THREADSAFE heap (allocations of every kind,
 * frees of blocks the other thread made, handles pinned and resized,
 * budgeted compactions) while the main thread forks again and again, at
 * moments that land in the middle of their calls.  Each child, alone with
 * the heap as it was at the fork:
 *   - finds a block and a handle block the parent made just before the fork
 *     intact, and carve_check passes;
 *   - allocates, resizes and frees on its own (a few thousand operations,
 *     contents verified), with a thread of its own too (not under TSan,
 *     which does not support threads in the child of a threaded process);
 *   - frees everything it made, checks the heap again, and _exits 0.
 * An alarm() in the child turns a deadlock (a lock some parent thread held
 * at the fork) into a failure instead of a hang.  The parent checks every
 * child's exit status, and at the end, with every block freed and the
 * threads gone, that the heap passes carve_check and is fresh again.
 *
 * Usage: fork_test [FORKS [SEED]]  (or CARVE_TEST_FORKS, CARVE_TEST_SEED).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "test_util.h"

#if defined(__SANITIZE_THREAD__)
#define FT_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define FT_TSAN 1
#endif
#endif

#define HEAP_SIZE     ((size_t)8 << 20)
#define HAMMERS       2
#define SLOTS         64
#define EXCHANGE      32
#define CHILD_OPS     3000
#define CHILD_SECONDS 20 /* a child that is not done by then is deadlocked */

static carve_heap *heap;
static atomic_int stop;
static uint64_t base_seed;

/* ------------------------------------------------------------------------ */
/* Failing                                                                   */
/* ------------------------------------------------------------------------ */

static void fail(const char *who, const char *what, uint64_t detail)
{
    fprintf(stderr, "fork_test: FAIL in the %s: %s (%" PRIu64 "), seed 0x%" PRIx64 "\n", who, what,
            detail, base_seed);
    fflush(stderr);
}

#define PARENT_CHECK(cond, what, detail)  \
    do {                                  \
        if (!(cond)) {                    \
            fail("parent", what, detail); \
            abort();                      \
        }                                 \
    } while (0)

/* In a child: report and exit 1 (the parent reports the status). */
#define CHILD_CHECK(cond, what, detail)  \
    do {                                 \
        if (!(cond)) {                   \
            fail("child", what, detail); \
            _exit(1);                    \
        }                                \
    } while (0)

/* ------------------------------------------------------------------------ */
/* Blocks with patterns                                                      */
/* ------------------------------------------------------------------------ */

typedef struct blk {
    void *p;         /* raw, or NULL */
    carve_handle hd; /* handle, or 0 */
    size_t size;
    uint64_t seed;
} blk;

static int blk_ok(const blk *b)
{
    if (b->p != NULL)
        return tu_verify(b->p, b->seed, b->size) == b->size;
    void *q = carve_pin(heap, b->hd);
    if (q == NULL)
        return 0;
    int ok = tu_verify(q, b->seed, b->size) == b->size;
    return carve_unpin(heap, b->hd) == CARVE_OK && ok;
}

/* Makes a block (raw or handle) with a pattern; 0 when the heap is full. */
static int blk_make(blk *b, tu_rng *g)
{
    memset(b, 0, sizeof *b);
    b->size = tu_rng_below(g, 8) == 0 ? tu_rng_range(g, 257, 16384) : tu_rng_range(g, 1, 256);
    b->seed = tu_rng_next(g);
    if (tu_rng_below(g, 4) == 0) {
        b->hd = carve_halloc(heap, b->size);
        if (b->hd == 0)
            return 0;
        void *q = carve_pin(heap, b->hd);
        if (q == NULL)
            return -1;
        tu_fill(q, b->seed, b->size);
        return carve_unpin(heap, b->hd) == CARVE_OK ? 1 : -1;
    }
    b->p = tu_rng_below(g, 2) ? carve_alloc(heap, b->size) : carve_calloc(heap, 1, b->size);
    if (b->p == NULL)
        return 0;
    tu_fill(b->p, b->seed, b->size);
    return 1;
}

/* Verifies and frees; 0 on success. */
static int blk_free(blk *b)
{
    if (!blk_ok(b))
        return -1;
    int st = b->p != NULL ? carve_free(heap, b->p) : carve_hfree(heap, b->hd);
    memset(b, 0, sizeof *b);
    return st == CARVE_OK ? 0 : -1;
}

/* Grows or shrinks the block, keeping the pattern; 0 on success (or no room). */
static int blk_resize(blk *b, tu_rng *g)
{
    size_t size = tu_rng_range(g, 1, 4096);
    size_t kept = size < b->size ? size : b->size;
    if (b->p != NULL) {
        void *q = carve_realloc(heap, b->p, size);
        if (q == NULL)
            return errno == ENOMEM ? 0 : -1;
        if (tu_verify(q, b->seed, kept) != kept)
            return -1;
        tu_fill_range(q, b->seed, kept, size);
        b->p = q;
    } else {
        int st = carve_hresize(heap, b->hd, size);
        if (st == CARVE_ERR_NOMEM)
            return 0;
        if (st != CARVE_OK)
            return -1;
        void *q = carve_pin(heap, b->hd);
        if (q == NULL || tu_verify(q, b->seed, kept) != kept)
            return -1;
        tu_fill_range(q, b->seed, kept, size);
        if (carve_unpin(heap, b->hd) != CARVE_OK)
            return -1;
    }
    b->size = size;
    return 0;
}

/* ------------------------------------------------------------------------ */
/* The hammering threads                                                     */
/* ------------------------------------------------------------------------ */

static pthread_mutex_t exchange_lock = PTHREAD_MUTEX_INITIALIZER;
static blk exchange[EXCHANGE];
static atomic_ulong hammer_steps;
/* Hammering threads that have reached their own code.  No fork happens
 * before both have: a thread's start-up inside the C library and the
 * sanitizer runtimes takes locks outside carve (AddressSanitizer's
 * allocator, whose locks GCC 12's libasan does not hold across fork()),
 * and a fork in the middle of it leaves the child's first pthread_create
 * waiting on a lock nobody in the child will release.  That is the
 * runtime's limit, not the one this test is after: once started, the
 * threads call nothing but carve, sched_yield and the exchange's mutex. */
static atomic_int hammers_started;

static void *hammer(void *arg)
{
    unsigned index = (unsigned)(uintptr_t)arg;
    tu_rng g;
    uint64_t x = base_seed + index + 1;
    tu_rng_seed(&g, tu_splitmix64(&x));
    blk slot[SLOTS];
    memset(slot, 0, sizeof slot);
    atomic_fetch_add(&hammers_started, 1);
    while (!atomic_load(&stop)) {
        atomic_fetch_add(&hammer_steps, 1);
        size_t i = (size_t)tu_rng_below(&g, SLOTS);
        blk *b = &slot[i];
        uint64_t k = tu_rng_below(&g, 20);
        int bad = 0;
        if (b->p == NULL && b->hd == 0) {
            bad = blk_make(b, &g) < 0;
        } else if (k < 8) {
            bad = blk_free(b) != 0;
        } else if (k < 11) {
            bad = blk_resize(b, &g) != 0;
        } else if (k < 17) {
            /* Swap with the exchange: the other thread frees what we made. */
            size_t e = (size_t)tu_rng_below(&g, EXCHANGE);
            pthread_mutex_lock(&exchange_lock);
            blk t = exchange[e];
            exchange[e] = *b;
            pthread_mutex_unlock(&exchange_lock);
            *b = t;
        } else if (k < 19) {
            (void)carve_compact(heap, (size_t)tu_rng_below(&g, 32768));
        } else {
            bad = !blk_ok(b);
        }
        PARENT_CHECK(!bad, "a hammering thread found a block changed or a call failing", i);
    }
    for (size_t i = 0; i < SLOTS; i++)
        if (slot[i].p != NULL || slot[i].hd != 0)
            PARENT_CHECK(blk_free(&slot[i]) == 0, "freeing at the end", i);
    return NULL;
}

/* ------------------------------------------------------------------------ */
/* The child                                                                 */
/* ------------------------------------------------------------------------ */

static void child_churn(tu_rng *g, unsigned ops)
{
    blk slot[SLOTS];
    memset(slot, 0, sizeof slot);
    for (unsigned op = 0; op < ops; op++) {
        blk *b = &slot[tu_rng_below(g, SLOTS)];
        if (b->p == NULL && b->hd == 0)
            CHILD_CHECK(blk_make(b, g) >= 0, "making a block", op);
        else if (tu_rng_below(g, 3) == 0)
            CHILD_CHECK(blk_resize(b, g) == 0, "resizing a block", op);
        else
            CHILD_CHECK(blk_free(b) == 0, "a block lost its contents or its free failed", op);
        if (op % 512 == 0)
            (void)carve_compact(heap, 65536);
    }
    for (size_t i = 0; i < SLOTS; i++)
        if (slot[i].p != NULL || slot[i].hd != 0)
            CHILD_CHECK(blk_free(&slot[i]) == 0, "freeing at the end", i);
}

#ifndef FT_TSAN
static void *child_thread(void *arg)
{
    tu_rng *g = arg;
    child_churn(g, CHILD_OPS / 2);
    return NULL;
}
#endif

static void child_main(unsigned round, blk *mine)
{
    alarm(CHILD_SECONDS); /* SIGALRM kills us: the parent reports a deadlock */
    /* Every other child detaches first: that retires the parent's caches,
     * which may have stopped mid-operation, as the first drain would. */
    if (round % 2 == 1)
        CHILD_CHECK(carve_detach(heap) == CARVE_OK, "carve_detach right after the fork", round);
    CHILD_CHECK(carve_check(heap) == CARVE_OK, "carve_check right after the fork", round);
    CHILD_CHECK(blk_ok(&mine[0]) && blk_ok(&mine[1]), "the parent's blocks changed", round);
    tu_rng g;
    uint64_t x = base_seed ^ (0xF0F0ull + round);
    tu_rng_seed(&g, tu_splitmix64(&x));
    child_churn(&g, CHILD_OPS);
#ifndef FT_TSAN
    tu_rng g2;
    tu_rng_seed(&g2, tu_rng_next(&g));
    pthread_t t;
    CHILD_CHECK(pthread_create(&t, NULL, child_thread, &g2) == 0, "pthread_create", round);
    child_churn(&g, CHILD_OPS / 2);
    pthread_join(t, NULL);
#endif
    CHILD_CHECK(blk_free(&mine[0]) == 0 && blk_free(&mine[1]) == 0, "freeing the parent's blocks",
                round);
    CHILD_CHECK(carve_check(heap) == CARVE_OK, "carve_check at the end", round);
    carve_stats s;
    carve_get_stats(heap, &s);
    CHILD_CHECK(s.used_bytes + s.free_bytes == s.capacity, "used + free != capacity", s.used_bytes);
    _exit(0);
}

/* ------------------------------------------------------------------------ */
/* main                                                                      */
/* ------------------------------------------------------------------------ */

/* Two cases a threaded fork() does not reach reliably, run before the
 * hammering starts:
 *   - a child whose first call gives it a cache of its own (a small
 *     allocation) before any call that takes the parent's caches over: the
 *     takeover recounts the runs' counters, and the slots in the child's
 *     cache must not be counted as the user's (the statistics and
 *     carve_check stay right);
 *   - a heap the child makes and one the parent makes, of the same shape,
 *     in the same place, as the same heap of the process: they get
 *     different salts, so the first handle of one is not the other's. */
static void fork_edge_cases(void)
{
    tu_region reg, same;
    PARENT_CHECK(tu_region_make(&reg, HEAP_SIZE, 0, 256, 0) == 0, "out of memory", 0);
    PARENT_CHECK(tu_region_make(&same, 1u << 20, 0, 256, 0) == 0, "out of memory", 0);
    carve_options o;
    memset(&o, 0, sizeof o);
    o.flags = CARVE_THREADSAFE;
    carve_heap *h = carve_init(reg.buf, HEAP_SIZE, &o);
    PARENT_CHECK(h != NULL, "carve_init", (uint64_t)errno);
    void *p = carve_alloc(h, 32); /* the parent has a cache at the fork */
    PARENT_CHECK(p != NULL, "carve_alloc", 0);
    int fds[2];
    PARENT_CHECK(pipe(fds) == 0, "pipe", (uint64_t)errno);
    fflush(NULL);
    pid_t pid = fork();
    PARENT_CHECK(pid >= 0, "fork", (uint64_t)errno);
    if (pid == 0) {
        void *q = carve_alloc(h, 32); /* a cache of the child's own first */
        CHILD_CHECK(q != NULL, "carve_alloc in the child", 0);
        carve_stats s;
        carve_get_stats(h, &s);
        CHILD_CHECK(s.live_blocks == 2, "live blocks with two held", s.live_blocks);
        CHILD_CHECK(carve_check(h) == CARVE_OK, "carve_check with two held", 0);
        CHILD_CHECK(carve_free(h, q) == CARVE_OK && carve_free(h, p) == CARVE_OK, "frees", 0);
        carve_get_stats(h, &s);
        CHILD_CHECK(s.live_blocks == 0 && s.allocs == s.frees, "live blocks with none held",
                    s.live_blocks);
        CHILD_CHECK(carve_check(h) == CARVE_OK, "carve_check with none held", 0);
        carve_heap *mine = carve_init(same.buf, same.size, NULL);
        carve_handle hd = mine ? carve_halloc(mine, 100) : 0;
        CHILD_CHECK(hd != 0, "carve_halloc in the child's heap", 0);
        CHILD_CHECK(write(fds[1], &hd, sizeof hd) == (ssize_t)sizeof hd, "write", 0);
        _exit(0);
    }
    int status;
    PARENT_CHECK(waitpid(pid, &status, 0) == pid, "waitpid", (uint64_t)errno);
    PARENT_CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0, "the edge cases' child failed",
                 (uint64_t)status);
    carve_handle theirs = 0;
    PARENT_CHECK(read(fds[0], &theirs, sizeof theirs) == (ssize_t)sizeof theirs, "read", 0);
    close(fds[0]);
    close(fds[1]);
    carve_heap *mine = carve_init(same.buf, same.size, NULL);
    carve_handle hd = mine ? carve_halloc(mine, 100) : 0;
    PARENT_CHECK(hd != 0, "carve_halloc in the parent's heap", 0);
    PARENT_CHECK(hd != theirs, "two heaps of one shape have the same salt", hd);
    PARENT_CHECK(carve_pin(mine, theirs) == NULL, "the child's handle pins in the parent's heap",
                 theirs);
    PARENT_CHECK(carve_free(h, p) == CARVE_OK && carve_check(h) == CARVE_OK, "the parent's heap",
                 0);
    tu_region_free(&same);
    tu_region_free(&reg);
}

static int die_while_locked(const carve_block *b, void *ctx)
{
    (void)b;
    (void)ctx;
    raise(SIGKILL);
    return 0;
}

/* A process that dies holding a CARVE_SHARED heap's lock (here inside
 * carve_walk's visit, which runs under it) does not wedge the processes
 * left: the mutex is robust, and the next call gets it.  A walk changes
 * nothing, so the heap is whole too.  An alarm turns a wedged lock into a
 * failure rather than a hang. */
static void shared_lock_survives_its_owner(void)
{
    size_t size = (size_t)1 << 20;
    void *buf = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    PARENT_CHECK(buf != MAP_FAILED, "mmap", (uint64_t)errno);
    carve_options o;
    memset(&o, 0, sizeof o);
    o.flags = CARVE_SHARED;
    carve_heap *h = carve_init(buf, size, &o);
    PARENT_CHECK(h != NULL, "carve_init of a shared heap", (uint64_t)errno);
    void *kept = carve_alloc(h, 100);
    PARENT_CHECK(kept != NULL, "carve_alloc", 0);
    fflush(NULL);
    pid_t pid = fork();
    PARENT_CHECK(pid >= 0, "fork", (uint64_t)errno);
    if (pid == 0) {
        (void)carve_walk(h, die_while_locked, NULL);
        _exit(1);
    }
    int status;
    PARENT_CHECK(waitpid(pid, &status, 0) == pid, "waitpid", (uint64_t)errno);
    PARENT_CHECK(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL,
                 "the child did not die inside the walk", (uint64_t)status);
    alarm(60);
    void *p = carve_alloc(h, 100);
    alarm(0);
    PARENT_CHECK(p != NULL, "carve_alloc after the lock's owner died", (uint64_t)errno);
    PARENT_CHECK(carve_free(h, p) == CARVE_OK && carve_free(h, kept) == CARVE_OK, "frees", 0);
    PARENT_CHECK(carve_check(h) == CARVE_OK, "carve_check after the lock's owner died", 0);
    munmap(buf, size);
}

/* A child's part in shared_cache_survives_killed_processes: fills its
 * thread cache's class of 48-byte slots, says so, and then allocates and
 * frees one slot for ever, which the cache serves without the heap's lock
 * (the count never reaches 0 or the cache's capacity), until it is killed. */
static void churn_in_the_cache(carve_heap *h, atomic_int *ready)
{
    void *warm[8];
    for (unsigned i = 0; i < 8; i++)
        CHILD_CHECK((warm[i] = carve_alloc(h, 48)) != NULL, "carve_alloc", i);
    for (unsigned i = 0; i < 8; i++)
        CHILD_CHECK(carve_free(h, warm[i]) == CARVE_OK, "carve_free", i);
    atomic_store(ready, 1);
    for (unsigned char i = 0;; i++) {
        unsigned char *p = carve_alloc(h, 48);
        CHILD_CHECK(p != NULL, "carve_alloc in the loop", 0);
        p[0] = i;
        CHILD_CHECK(carve_free(h, p) == CARVE_OK, "carve_free in the loop", 0);
    }
}

/* A process killed in the middle of a pop or push of its thread cache in a
 * CARVE_SHARED heap leaves that cache marked busy, and nobody else ever
 * clears the mark: the next call that empties every cache (carve_check,
 * carve_get_stats, a failing allocation) waited for ever.  It now finds the
 * owner's process gone and takes the cache over.  Each round kills a child
 * at a random moment of a loop that lives in its cache (about a quarter
 * of the kills land inside a pop or push), then checks the heap, under an
 * alarm that turns a wait for ever into a failure. */
static void shared_cache_survives_killed_processes(unsigned rounds)
{
    size_t size = (size_t)8 << 20; /* past 4 MiB: thread caches */
    void *buf = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    PARENT_CHECK(buf != MAP_FAILED, "mmap", (uint64_t)errno);
    atomic_int *ready = (atomic_int *)buf;
    carve_options o;
    memset(&o, 0, sizeof o);
    o.flags = CARVE_SHARED;
    carve_heap *h = carve_init((unsigned char *)buf + 64, size - 64, &o);
    PARENT_CHECK(h != NULL, "carve_init of a shared heap", (uint64_t)errno);
    tu_rng g;
    uint64_t x = base_seed ^ 0xdeadull;
    tu_rng_seed(&g, tu_splitmix64(&x));
    for (unsigned round = 0; round < rounds; round++) {
        atomic_store(ready, 0);
        fflush(NULL);
        pid_t pid = fork();
        PARENT_CHECK(pid >= 0, "fork", (uint64_t)errno);
        if (pid == 0) {
            alarm(CHILD_SECONDS); /* should the parent die first */
            churn_in_the_cache(h, ready);
        }
        alarm(60);
        while (atomic_load(ready) == 0)
            sched_yield();
        struct timespec pause = {0, (long)tu_rng_below(&g, 300000)};
        nanosleep(&pause, NULL);
        PARENT_CHECK(kill(pid, SIGKILL) == 0, "kill", (uint64_t)errno);
        int status;
        PARENT_CHECK(waitpid(pid, &status, 0) == pid, "waitpid", (uint64_t)errno);
        PARENT_CHECK(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL, "the child's end",
                     (uint64_t)status);
        PARENT_CHECK(carve_check(h) == CARVE_OK, "carve_check after a child was killed", round);
        void *p = carve_alloc(h, 48);
        PARENT_CHECK(p != NULL && carve_free(h, p) == CARVE_OK, "a slot after the kill", round);
        carve_stats st;
        carve_get_stats(h, &st); /* empties every cache */
        PARENT_CHECK(carve_check(h) == CARVE_OK, "carve_check after the drain", round);
        alarm(0);
    }
    munmap(buf, size);
}

#if !defined(FT_TSAN) /* no threads in a child of a threaded process under TSan */
/* A thread that empties every cache of heap arg (carve_get_stats). */
static void *drain_caches(void *arg)
{
    carve_stats st;
    carve_get_stats((carve_heap *)arg, &st);
    return NULL;
}

/* shared_cache_owner_outlives_its_main_thread: the child's worker, which
 * churns in its cache (and ends the child with status 1 if a call fails). */
static carve_heap *owner_heap;
static atomic_int *owner_shared; /* [0]: the worker is ready */

static void *owner_worker(void *arg)
{
    (void)arg;
    churn_in_the_cache(owner_heap, &owner_shared[0]);
    return NULL;
}

/* A process whose main thread has exited while another thread goes on
 * (pthread_exit in main) shows as a zombie in /proc, and the drain took a
 * record of it that was busy for a dead one's.  The child's worker lives
 * in its cache; the parent stops the child at a random moment (about a
 * quarter of the stops land inside a pop or push), lets a drain wait on
 * the record longer than the takeover's wait, then lets the child go on:
 * the drain must have waited for it, and the heap must be whole.  With the
 * old rule the worker went on in a record retired under it. */
static void shared_cache_owner_outlives_its_main_thread(unsigned rounds)
{
    size_t size = (size_t)8 << 20;
    void *buf = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    PARENT_CHECK(buf != MAP_FAILED, "mmap", (uint64_t)errno);
    owner_shared = (atomic_int *)buf;
    carve_options o;
    memset(&o, 0, sizeof o);
    o.flags = CARVE_SHARED;
    owner_heap = carve_init((unsigned char *)buf + 64, size - 64, &o);
    PARENT_CHECK(owner_heap != NULL, "carve_init of a shared heap", (uint64_t)errno);
    tu_rng g;
    uint64_t x = base_seed ^ 0x2e40ull;
    tu_rng_seed(&g, tu_splitmix64(&x));
    for (unsigned round = 0; round < rounds; round++) {
        atomic_store(&owner_shared[0], 0);
        fflush(NULL);
        pid_t pid = fork();
        PARENT_CHECK(pid >= 0, "fork", (uint64_t)errno);
        if (pid == 0) {
            alarm(CHILD_SECONDS);
            pthread_t t;
            CHILD_CHECK(pthread_create(&t, NULL, owner_worker, NULL) == 0, "pthread_create", 0);
            pthread_exit(NULL); /* the worker goes on */
        }
        alarm(60);
        while (atomic_load(&owner_shared[0]) == 0)
            sched_yield();
        struct timespec pause = {0, (long)tu_rng_below(&g, 300000)};
        nanosleep(&pause, NULL);
        int status;
        PARENT_CHECK(kill(pid, SIGSTOP) == 0, "kill SIGSTOP", (uint64_t)errno);
        PARENT_CHECK(waitpid(pid, &status, WUNTRACED) == pid && WIFSTOPPED(status), "stopped",
                     (uint64_t)status);
        pthread_t drainer;
        PARENT_CHECK(pthread_create(&drainer, NULL, drain_caches, owner_heap) == 0,
                     "pthread_create", round);
        struct timespec wait = {0, 100000000}; /* 100 ms: far past the takeover's 1 ms */
        nanosleep(&wait, NULL);
        PARENT_CHECK(kill(pid, SIGCONT) == 0, "kill SIGCONT", (uint64_t)errno);
        PARENT_CHECK(pthread_join(drainer, NULL) == 0, "pthread_join", round);
        /* The worker goes on for a while (in a record retired under it,
         * with the old rule: its next refill or flush works on a record
         * that is free), and the caches are emptied again meanwhile. */
        nanosleep(&wait, NULL);
        drain_caches(owner_heap);
        nanosleep(&wait, NULL);
        PARENT_CHECK(carve_check(owner_heap) == CARVE_OK, "carve_check with the worker running",
                     round);
        PARENT_CHECK(kill(pid, SIGKILL) == 0, "kill", (uint64_t)errno);
        PARENT_CHECK(waitpid(pid, &status, 0) == pid, "waitpid", (uint64_t)errno);
        PARENT_CHECK(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL,
                     "the worker's calls failed (it exited on its own)", (uint64_t)status);
        PARENT_CHECK(carve_check(owner_heap) == CARVE_OK, "carve_check after the kill", round);
        alarm(0);
    }
    munmap(buf, size);
}
#endif

int main(int argc, char **argv)
{
    unsigned long long forks = tu_env_ull("CARVE_TEST_FORKS", 40);
    base_seed = tu_env_ull("CARVE_TEST_SEED", 0xF02C2026ull);
    if (argc > 1)
        forks = strtoull(argv[1], NULL, 0);
    if (argc > 2)
        base_seed = strtoull(argv[2], NULL, 0);
    printf("fork_test: %llu forks, seed 0x%" PRIx64 "\n", forks, base_seed);
    fflush(stdout);
    fork_edge_cases();
    shared_lock_survives_its_owner();
    shared_cache_survives_killed_processes(200);
#if !defined(FT_TSAN) /* no threads in a child of a threaded process under TSan */
    shared_cache_owner_outlives_its_main_thread(20);
#endif

    tu_region reg;
    PARENT_CHECK(tu_region_make(&reg, HEAP_SIZE, 0, 256, 0) == 0, "out of memory", 0);
    carve_options o;
    memset(&o, 0, sizeof o);
    o.flags = CARVE_THREADSAFE;
    o.max_handles = 1024;
    heap = carve_init(reg.buf, HEAP_SIZE, &o);
    PARENT_CHECK(heap != NULL, "carve_init", (uint64_t)errno);
    carve_stats fresh;
    carve_get_stats(heap, &fresh);

    pthread_t tid[HAMMERS];
    for (unsigned i = 0; i < HAMMERS; i++)
        PARENT_CHECK(pthread_create(&tid[i], NULL, hammer, (void *)(uintptr_t)i) == 0,
                     "pthread_create", i);
    while (atomic_load(&hammers_started) < HAMMERS)
        sched_yield();

    tu_rng g;
    uint64_t x = base_seed;
    tu_rng_seed(&g, tu_splitmix64(&x));
    unsigned failures = 0;
    for (unsigned round = 0; round < forks; round++) {
        /* Two blocks the child must find intact, made just before the fork. */
        blk mine[2];
        do
            PARENT_CHECK(blk_make(&mine[0], &g) >= 0, "making a block", round);
        while (mine[0].p == NULL && mine[0].hd == 0);
        memset(&mine[1], 0, sizeof mine[1]);
        mine[1].size = 777;
        mine[1].seed = tu_rng_next(&g);
        mine[1].hd = carve_halloc(heap, mine[1].size);
        PARENT_CHECK(mine[1].hd != 0, "carve_halloc", round);
        void *q = carve_pin(heap, mine[1].hd);
        PARENT_CHECK(q != NULL, "carve_pin", round);
        tu_fill(q, mine[1].seed, mine[1].size);
        PARENT_CHECK(carve_unpin(heap, mine[1].hd) == CARVE_OK, "carve_unpin", round);

        /* Let the threads get into the middle of something. */
        unsigned long until = atomic_load(&hammer_steps) + tu_rng_range(&g, 1, 2000);
        while (atomic_load(&hammer_steps) < until)
            sched_yield();

        fflush(NULL);
        pid_t pid = fork();
        PARENT_CHECK(pid >= 0, "fork", (uint64_t)errno);
        if (pid == 0)
            child_main(round, mine);
        int status;
        PARENT_CHECK(waitpid(pid, &status, 0) == pid, "waitpid", (uint64_t)errno);
        if (WIFSIGNALED(status)) {
            fprintf(stderr, "fork_test: child %u died of signal %d%s\n", round, WTERMSIG(status),
                    WTERMSIG(status) == SIGALRM ? " (SIGALRM: it deadlocked)" : "");
            failures++;
        } else if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
            fprintf(stderr, "fork_test: child %u exited with status %d\n", round,
                    WEXITSTATUS(status));
            failures++;
        }
        PARENT_CHECK(blk_free(&mine[0]) == 0 && blk_free(&mine[1]) == 0,
                     "the parent's blocks after the fork", round);
        if (failures > 0)
            break; /* one is enough; each deadlock costs CHILD_SECONDS */
    }
    atomic_store(&stop, 1);
    for (unsigned i = 0; i < HAMMERS; i++)
        pthread_join(tid[i], NULL);
    for (size_t e = 0; e < EXCHANGE; e++)
        if (exchange[e].p != NULL || exchange[e].hd != 0)
            PARENT_CHECK(blk_free(&exchange[e]) == 0, "freeing the exchange", e);
    PARENT_CHECK(failures == 0, "children failed", failures);

    PARENT_CHECK(carve_check(heap) == CARVE_OK, "carve_check at the end", 0);
    carve_stats s;
    carve_get_stats(heap, &s);
    const char *d = tu_stats_diff(&fresh, &s, 1);
    if (d != NULL && strcmp(d, "compactions") != 0 && strcmp(d, "bytes_moved") != 0) {
        fprintf(stderr, "fork_test: stats field %s differs from the fresh heap\n", d);
        return 1;
    }
    PARENT_CHECK(s.used_bytes == fresh.used_bytes && s.largest_free == fresh.largest_free &&
                     s.live_blocks == 0 && s.live_handles == 0,
                 "the heap is not fresh at the end", s.used_bytes);
    PARENT_CHECK(carve_detach(heap) == CARVE_OK, "carve_detach", 0);
    PARENT_CHECK(tu_region_guards_ok(&reg), "a guard zone was overwritten", 0);
    tu_region_free(&reg);
    printf("fork_test: %llu children, %lu steps of the hammering threads: PASS\n", forks,
           (unsigned long)atomic_load(&hammer_steps));
    return 0;
}
