/*
 * Unit tests for the user's lock hooks (carve_lock_hooks, carve_options.lock,
 * carve_attach_with_lock) and carve_detach's argument checks (label
 * "threads").
 *
 * The hooks under test wrap an error-checking pthread mutex and count: every
 * lock and unlock, the depth (how many holds are open: never above 1), the
 * thread that holds it, and every call of held.  A hook called out of turn
 * (a nested lock, an unlock without the lock, held asked by a thread that
 * does not hold it) is recorded as a fault; every test ends with no faults.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <cmocka.h>

#include "unit_util.h"

/* ------------------------------------------------------------------------ */
/* Counting hooks                                                            */
/* ------------------------------------------------------------------------ */

typedef struct counting_lock {
    pthread_mutex_t mutex; /* error-checking: a nested lock fails instead of hanging */
    atomic_ulong locks, unlocks, helds;
    atomic_int depth;       /* open holds */
    atomic_int max_depth;   /* the most ever open at once */
    atomic_int faults;      /* hooks called out of turn */
    atomic_uintptr_t owner; /* the holder's thread token, 0 when free */
} counting_lock;

/* A thread's identity for the owner field: the address of a thread-local. */
static _Thread_local char thread_token;

static uintptr_t self_token(void)
{
    return (uintptr_t)&thread_token;
}

static void cl_init(counting_lock *l)
{
    memset(l, 0, sizeof *l);
    pthread_mutexattr_t a;
    pthread_mutexattr_init(&a);
    pthread_mutexattr_settype(&a, PTHREAD_MUTEX_ERRORCHECK);
    assert_int_equal(pthread_mutex_init(&l->mutex, &a), 0);
    pthread_mutexattr_destroy(&a);
}

static void cl_destroy(counting_lock *l)
{
    pthread_mutex_destroy(&l->mutex);
}

static void cl_lock(void *ctx)
{
    counting_lock *l = ctx;
    int err = pthread_mutex_lock(&l->mutex);
    atomic_fetch_add(&l->locks, 1);
    if (err != 0) {
        /* EDEADLK: this thread already holds it, carve nested the lock. */
        atomic_fetch_add(&l->faults, 1);
        return;
    }
    int d = atomic_fetch_add(&l->depth, 1) + 1;
    if (d > atomic_load(&l->max_depth))
        atomic_store(&l->max_depth, d);
    if (d != 1)
        atomic_fetch_add(&l->faults, 1);
    atomic_store(&l->owner, self_token());
}

static void cl_unlock(void *ctx)
{
    counting_lock *l = ctx;
    atomic_fetch_add(&l->unlocks, 1);
    if (atomic_load(&l->owner) != self_token())
        atomic_fetch_add(&l->faults, 1);
    atomic_store(&l->owner, 0);
    if (atomic_fetch_sub(&l->depth, 1) != 1)
        atomic_fetch_add(&l->faults, 1);
    if (pthread_mutex_unlock(&l->mutex) != 0) /* EPERM: not held by this thread */
        atomic_fetch_add(&l->faults, 1);
}

/* "held returns non-zero when the caller holds the lock". */
static int cl_held(void *ctx)
{
    counting_lock *l = ctx;
    atomic_fetch_add(&l->helds, 1);
    int mine = atomic_load(&l->owner) == self_token();
    if (!mine)
        atomic_fetch_add(&l->faults, 1); /* asked by a thread that does not hold it */
    return mine;
}

static carve_lock_hooks cl_hooks(counting_lock *l, int with_held)
{
    carve_lock_hooks k;
    memset(&k, 0, sizeof k);
    k.lock = cl_lock;
    k.unlock = cl_unlock;
    k.held = with_held ? cl_held : NULL;
    k.ctx = l;
    return k;
}

static void assert_quiet(counting_lock *l)
{
    if (atomic_load(&l->faults) != 0)
        fail_msg("%d hook calls out of turn (nested lock, unlock without lock, held when not held)",
                 atomic_load(&l->faults));
    assert_int_equal(atomic_load(&l->depth), 0);
    assert_true(atomic_load(&l->max_depth) <= 1);
    assert_int_equal(atomic_load(&l->locks), atomic_load(&l->unlocks));
}

/* A heap of size bytes in u with the hooks k (copied by carve_init: the
 * struct itself may go away). */
static carve_heap *make_hooked(uh *u, size_t size, unsigned flags, counting_lock *l, int with_held)
{
    carve_lock_hooks k = cl_hooks(l, with_held);
    carve_options o = uh_opts(CARVE_GOOD_FIT, flags);
    o.max_handles = 64;
    o.lock = &k;
    carve_heap *h = uh_make_opts(u, size, 0, &o);
    memset(&k, 0, sizeof k); /* the heap keeps its own copy */
    return h;
}

static void destroy_hooked(uh *u)
{
    assert_int_equal(carve_detach(u->h), CARVE_OK);
    uh_destroy(u);
}

/* ------------------------------------------------------------------------ */
/* Every public call locks once (or more), unlocks as often, never nests     */
/* ------------------------------------------------------------------------ */

/* Runs expr, which must have taken and released the lock at least once and
 * as often as it took it, with no fault. */
#define LOCKED_CALL(l, expr)                                                      \
    do {                                                                          \
        unsigned long locks_ = atomic_load(&(l)->locks);                          \
        unsigned long unlocks_ = atomic_load(&(l)->unlocks);                      \
        expr;                                                                     \
        unsigned long dl_ = atomic_load(&(l)->locks) - locks_;                    \
        unsigned long du_ = atomic_load(&(l)->unlocks) - unlocks_;                \
        if (dl_ == 0)                                                             \
            fail_msg("%s did not take the lock", #expr);                          \
        if (dl_ != du_)                                                           \
            fail_msg("%s: %lu locks but %lu unlocks", #expr, dl_, du_);           \
        if (atomic_load(&(l)->faults) != 0 || atomic_load(&(l)->depth) != 0)      \
            fail_msg("%s: hooks called out of turn (faults %d, depth %d)", #expr, \
                     atomic_load(&(l)->faults), atomic_load(&(l)->depth));        \
    } while (0)

/* The same for a call that may also take no lock at all. */
#define BALANCED_CALL(l, expr)                                                    \
    do {                                                                          \
        unsigned long locks_ = atomic_load(&(l)->locks);                          \
        unsigned long unlocks_ = atomic_load(&(l)->unlocks);                      \
        expr;                                                                     \
        unsigned long dl_ = atomic_load(&(l)->locks) - locks_;                    \
        unsigned long du_ = atomic_load(&(l)->unlocks) - unlocks_;                \
        if (dl_ != du_)                                                           \
            fail_msg("%s: %lu locks but %lu unlocks", #expr, dl_, du_);           \
        if (atomic_load(&(l)->faults) != 0 || atomic_load(&(l)->depth) != 0)      \
            fail_msg("%s: hooks called out of turn (faults %d, depth %d)", #expr, \
                     atomic_load(&(l)->faults), atomic_load(&(l)->depth));        \
    } while (0)

static int visit_count(const carve_block *b, void *ctx)
{
    (void)b;
    ++*(size_t *)ctx;
    return 0;
}

static void release_nothing(void *addr, size_t len, void *ctx)
{
    (void)addr;
    (void)len;
    (void)ctx;
}

static void every_call_locks(int with_held, unsigned flags)
{
    counting_lock l;
    cl_init(&l);
    uh u;
    carve_heap *h = make_hooked(&u, 1u << 20, flags, &l, with_held);
    assert_int_equal(atomic_load(&l.locks), atomic_load(&l.unlocks));

    void *p = NULL, *q = NULL, *r = NULL, *a = NULL, *hp = NULL;
    carve_handle hd = 0;
    size_t n = 0;
    carve_stats st;
    LOCKED_CALL(&l, p = carve_alloc(h, 100));
    assert_non_null(p);
    LOCKED_CALL(&l, q = carve_calloc(h, 10, 30));
    assert_non_null(q);
    LOCKED_CALL(&l, r = carve_alloc(h, 5000));
    assert_non_null(r);
    LOCKED_CALL(&l, r = carve_realloc(h, r, 9000));
    assert_non_null(r);
    LOCKED_CALL(&l, r = carve_realloc(h, r, 40));
    assert_non_null(r);
    LOCKED_CALL(&l, a = carve_aligned_alloc(h, 256, 300));
    assert_non_null(a);
    LOCKED_CALL(&l, n = carve_usable_size(h, p));
    assert_true(n >= 100);
    LOCKED_CALL(&l, hd = carve_halloc(h, 700));
    assert_true(hd != 0);
    LOCKED_CALL(&l, hp = carve_pin(h, hd));
    assert_non_null(hp);
    LOCKED_CALL(&l, assert_int_equal(carve_hresize(h, hd, 600), CARVE_OK));
    LOCKED_CALL(&l, assert_int_equal(carve_unpin(h, hd), CARVE_OK));
    LOCKED_CALL(&l, assert_int_equal(carve_hresize(h, hd, 3000), CARVE_OK));
    LOCKED_CALL(&l, n = carve_hsize(h, hd));
    assert_true(n >= 3000);
    LOCKED_CALL(&l, (void)carve_compact(h, SIZE_MAX));
    LOCKED_CALL(&l, carve_get_stats(h, &st));
    assert_int_equal(st.live_handles, 1);
    LOCKED_CALL(&l, assert_int_equal(carve_check(h), CARVE_OK));
    n = 0;
    LOCKED_CALL(&l, assert_int_equal(carve_walk(h, visit_count, &n), CARVE_OK));
    assert_true(n > 0);
    LOCKED_CALL(&l, (void)carve_trim(h, 4096, 8192, release_nothing, NULL));
    FILE *devnull = fopen("/dev/null", "w");
    assert_non_null(devnull);
    LOCKED_CALL(&l, carve_dump(h, devnull));
    LOCKED_CALL(&l, carve_dump_ex(h, devnull, CARVE_DUMP_BLOCKS | CARVE_DUMP_HEX));
    fclose(devnull);
    LOCKED_CALL(&l, assert_int_equal(carve_hfree(h, hd), CARVE_OK));
    LOCKED_CALL(&l, assert_int_equal(carve_free(h, p), CARVE_OK));
    LOCKED_CALL(&l, assert_int_equal(carve_free(h, q), CARVE_OK));
    LOCKED_CALL(&l, r = carve_realloc(h, r, 0));
    assert_null(r);
    LOCKED_CALL(&l, assert_int_equal(carve_free(h, a), CARVE_OK));

    /* Failing calls lock and unlock in balance too (or not at all, when
     * the arguments alone tell the answer). */
    errno = 0;
    BALANCED_CALL(&l, p = carve_alloc(h, (size_t)1 << 30));
    assert_null(p);
    assert_int_equal(errno, ENOMEM);
    LOCKED_CALL(&l, carve_get_stats(h, &st));
    BALANCED_CALL(&l, p = carve_alloc(h, st.largest_free + 4096));
    assert_null(p);
    BALANCED_CALL(&l, assert_int_equal(carve_free(h, (char *)u.r.buf + 40), CARVE_ERR_NOT_OWNED));
    int st_again = CARVE_OK;
    BALANCED_CALL(&l, st_again = carve_free(h, q)); /* freed, maybe merged since */
    assert_true(st_again == CARVE_ERR_DOUBLE_FREE || st_again == CARVE_ERR_NOT_OWNED);
    BALANCED_CALL(&l, assert_null(carve_pin(h, hd))); /* stale */
    BALANCED_CALL(&l, assert_int_equal(carve_hfree(h, hd), CARVE_ERR_NOT_OWNED));
    BALANCED_CALL(&l, assert_int_equal(carve_unpin(h, hd), CARVE_ERR_NOT_OWNED));

    assert_quiet(&l);
    ASSERT_HEAP_SANE(h);
    if (with_held) {
#ifndef NDEBUG
        /* Debug builds assert held inside the heap. */
        assert_true(atomic_load(&l.helds) > 0);
#endif
    } else {
        assert_int_equal(atomic_load(&l.helds), 0);
    }
    assert_quiet(&l);
    destroy_hooked(&u);
    cl_destroy(&l);
}

static void test_every_call_locks_without_held(void **state)
{
    (void)state;
    every_call_locks(0, 0);
}

static void test_every_call_locks_with_held(void **state)
{
    (void)state;
    every_call_locks(1, 0);
}

/* The hooks replace the built-in lock: with CARVE_THREADSAFE set as well,
 * the user's lock is the one taken ("the user's lock instead of the
 * built-in one"). */
static void test_hooks_with_threadsafe_flag(void **state)
{
    (void)state;
    every_call_locks(1, CARVE_THREADSAFE);
}

/* The lock is not taken by the calls that do not read the heap. */
static void test_sizing_calls_take_no_lock(void **state)
{
    (void)state;
    counting_lock l;
    cl_init(&l);
    uh u;
    carve_lock_hooks k = cl_hooks(&l, 1);
    carve_options o = uh_opts(CARVE_GOOD_FIT, 0);
    o.lock = &k;
    carve_heap *h = uh_make_opts(&u, 1u << 16, 0, &o);
    unsigned long before = atomic_load(&l.locks);
    assert_true(carve_min_buffer_size(&o) > 0);
    assert_true(carve_max_alloc_size(1u << 16, &o) > 0);
    assert_non_null(carve_version());
    assert_non_null(carve_strerror(CARVE_OK));
    assert_int_equal(atomic_load(&l.locks), before);
    (void)h;
    destroy_hooked(&u);
    assert_quiet(&l);
    cl_destroy(&l);
}

/* ------------------------------------------------------------------------ */
/* Errors                                                                    */
/* ------------------------------------------------------------------------ */

static void init_refused(const carve_lock_hooks *k, unsigned flags)
{
    tu_region r;
    assert_int_equal(tu_region_make(&r, 1u << 16, 0, 256, 0), 0);
    carve_options o = uh_opts(CARVE_GOOD_FIT, flags);
    o.lock = k;
    ASSERT_NULL_ERRNO(carve_init(r.buf, r.size, &o), EINVAL);
    /* No size would do: the sizing helpers say 0. */
    assert_int_equal(carve_min_buffer_size(&o), 0);
    assert_int_equal(carve_max_alloc_size(r.size, &o), 0);
    assert_true(tu_region_guards_ok(&r));
    tu_region_free(&r);
}

static void test_init_hooks_without_lock_or_unlock(void **state)
{
    (void)state;
    counting_lock l;
    cl_init(&l);
    carve_lock_hooks k = cl_hooks(&l, 1);
    k.lock = NULL;
    init_refused(&k, 0);
    init_refused(&k, CARVE_THREADSAFE);
    k = cl_hooks(&l, 1);
    k.unlock = NULL;
    init_refused(&k, 0);
    memset(&k, 0, sizeof k);
    init_refused(&k, 0);
    assert_int_equal(atomic_load(&l.locks), 0);
    cl_destroy(&l);
}

/* A CARVE_SHARED heap's lock lives in the buffer; hooks cannot. */
static void test_init_hooks_with_shared(void **state)
{
    (void)state;
    counting_lock l;
    cl_init(&l);
    carve_lock_hooks k = cl_hooks(&l, 0);
    init_refused(&k, CARVE_SHARED);
    init_refused(&k, CARVE_SHARED | CARVE_THREADSAFE);
    assert_int_equal(atomic_load(&l.locks), 0);
    cl_destroy(&l);
}

/* The hooks are not in the buffer: plain carve_attach refuses the heap. */
static void test_attach_refuses_hooked_heap(void **state)
{
    (void)state;
    counting_lock l;
    cl_init(&l);
    uh u;
    carve_heap *h = make_hooked(&u, 1u << 16, 0, &l, 0);
    void *p = carve_alloc(h, 64);
    assert_non_null(p);
    assert_int_equal(carve_detach(h), CARVE_OK);
    ASSERT_NULL_ERRNO(carve_attach(u.r.buf, u.r.size), EINVAL);
    /* Nothing changed: the heap re-attaches with its hooks and holds the block. */
    h = carve_attach_with_lock(u.r.buf, u.r.size,
                               &(carve_lock_hooks){cl_lock, cl_unlock, NULL, &l});
    assert_non_null(h);
    u.h = h;
    assert_int_equal(carve_check(h), CARVE_OK);
    assert_int_equal(carve_free(h, p), CARVE_OK);
    destroy_hooked(&u);
    assert_quiet(&l);
    cl_destroy(&l);
}

/* carve_attach_with_lock: the new hooks are the ones used; the old ones
 * are never called again. */
static void test_attach_with_lock_uses_new_hooks(void **state)
{
    (void)state;
    counting_lock old_lock, new_lock;
    cl_init(&old_lock);
    cl_init(&new_lock);
    uh u;
    carve_heap *h = make_hooked(&u, 1u << 18, 0, &old_lock, 1);
    void *p = carve_alloc(h, 200);
    assert_non_null(p);
    tu_fill(p, 77, 200);
    carve_handle hd = carve_halloc(h, 300);
    assert_true(hd != 0);
    carve_stats before = uh_stats(h);
    assert_int_equal(carve_detach(h), CARVE_OK);
    unsigned long old_locks = atomic_load(&old_lock.locks);

    carve_lock_hooks k = cl_hooks(&new_lock, 1);
    carve_heap *h2 = carve_attach_with_lock(u.r.buf, u.r.size, &k);
    assert_non_null(h2);
    memset(&k, 0, sizeof k); /* copied */
    u.h = h2;
    LOCKED_CALL(&new_lock, assert_int_equal(carve_check(h2), CARVE_OK));
    carve_stats after = uh_stats(h2);
    ASSERT_STATS_SAME(before, after);
    assert_int_equal(tu_verify(p, 77, 200), 200);
    LOCKED_CALL(&new_lock, assert_int_equal(carve_free(h2, p), CARVE_OK));
    LOCKED_CALL(&new_lock, assert_int_equal(carve_hfree(h2, hd), CARVE_OK));
    LOCKED_CALL(&new_lock, assert_non_null(p = carve_alloc(h2, 1000)));
    LOCKED_CALL(&new_lock, assert_int_equal(carve_free(h2, p), CARVE_OK));
    assert_int_equal(atomic_load(&old_lock.locks), old_locks);
    destroy_hooked(&u);
    assert_quiet(&old_lock);
    assert_quiet(&new_lock);
    cl_destroy(&old_lock);
    cl_destroy(&new_lock);
}

static void test_attach_with_lock_errors(void **state)
{
    (void)state;
    counting_lock l;
    cl_init(&l);
    uh u;
    carve_heap *h = make_hooked(&u, 1u << 16, 0, &l, 0);
    assert_int_equal(carve_detach(h), CARVE_OK);
    carve_lock_hooks k = cl_hooks(&l, 0);

    ASSERT_NULL_ERRNO(carve_attach_with_lock(u.r.buf, u.r.size, NULL), EINVAL);
    k.lock = NULL;
    ASSERT_NULL_ERRNO(carve_attach_with_lock(u.r.buf, u.r.size, &k), EINVAL);
    k = cl_hooks(&l, 0);
    k.unlock = NULL;
    ASSERT_NULL_ERRNO(carve_attach_with_lock(u.r.buf, u.r.size, &k), EINVAL);
    k = cl_hooks(&l, 0);
    /* As carve_attach: NULL buffer, the wrong size, memory that is no heap. */
    ASSERT_NULL_ERRNO(carve_attach_with_lock(NULL, u.r.size, &k), EINVAL);
    ASSERT_NULL_ERRNO(carve_attach_with_lock(u.r.buf, u.r.size - 64, &k), EINVAL);
    tu_region junk;
    assert_int_equal(tu_region_make(&junk, 1u << 16, 0, 256, 0x3C), 0);
    ASSERT_NULL_ERRNO(carve_attach_with_lock(junk.buf, junk.size, &k), EINVAL);
    tu_region_free(&junk);

    /* The right call still works after all those refusals. */
    h = carve_attach_with_lock(u.r.buf, u.r.size, &k);
    assert_non_null(h);
    u.h = h;
    assert_int_equal(carve_check(h), CARVE_OK);
    destroy_hooked(&u);
    assert_quiet(&l);
    cl_destroy(&l);
}

/* A heap made without hooks (none, or the built-in lock) is refused by
 * carve_attach_with_lock. */
static void test_attach_with_lock_refuses_unhooked_heap(void **state)
{
    (void)state;
    counting_lock l;
    cl_init(&l);
    carve_lock_hooks k = cl_hooks(&l, 0);
    const unsigned flag_sets[] = {0, CARVE_THREADSAFE};
    for (size_t i = 0; i < 2; i++) {
        uh u;
        carve_heap *h = uh_make(&u, 1u << 16, CARVE_GOOD_FIT, flag_sets[i]);
        assert_int_equal(carve_detach(h), CARVE_OK);
        ASSERT_NULL_ERRNO(carve_attach_with_lock(u.r.buf, u.r.size, &k), EINVAL);
        h = carve_attach(u.r.buf, u.r.size);
        assert_non_null(h);
        assert_int_equal(carve_check(h), CARVE_OK);
        assert_int_equal(carve_detach(h), CARVE_OK);
        uh_destroy(&u);
    }
    assert_int_equal(atomic_load(&l.locks), 0);
    cl_destroy(&l);
}

static void test_detach_null(void **state)
{
    (void)state;
    assert_int_equal(carve_detach(NULL), CARVE_ERR_INVALID);
}

/* Detach and re-attach (with the hooks) leaves a heap that works. */
static void test_detach_reattach_hooked(void **state)
{
    (void)state;
    counting_lock l;
    cl_init(&l);
    uh u;
    carve_heap *h = make_hooked(&u, 1u << 18, 0, &l, 1);
    carve_stats fresh = uh_stats(h);
    for (int round = 0; round < 3; round++) {
        void *p[32];
        for (size_t i = 0; i < 32; i++) {
            p[i] = carve_alloc(h, 16 + i * 37);
            assert_non_null(p[i]);
            tu_fill(p[i], (uint64_t)round * 100 + i, 16 + i * 37);
        }
        for (size_t i = 0; i < 32; i += 2)
            assert_int_equal(carve_free(h, p[i]), CARVE_OK);
        assert_int_equal(carve_detach(h), CARVE_OK);
        h = carve_attach_with_lock(u.r.buf, u.r.size,
                                   &(carve_lock_hooks){cl_lock, cl_unlock, cl_held, &l});
        assert_non_null(h);
        u.h = h;
        ASSERT_HEAP_SANE(h);
        for (size_t i = 1; i < 32; i += 2) {
            assert_int_equal(tu_verify(p[i], (uint64_t)round * 100 + i, 16 + i * 37), 16 + i * 37);
            assert_int_equal(carve_free(h, p[i]), CARVE_OK);
        }
        carve_stats now = uh_stats(h);
        ASSERT_SAME_SHAPE(fresh, now);
    }
    destroy_hooked(&u);
    assert_quiet(&l);
    cl_destroy(&l);
}

/* ------------------------------------------------------------------------ */
/* Threads on a hooked heap                                                  */
/* ------------------------------------------------------------------------ */

#define HT_THREADS 3
#define HT_SLOTS   64

typedef struct hooked_shared {
    carve_heap *h;
    pthread_mutex_t lock; /* guards exchange[] */
    void *exchange[HT_SLOTS];
    size_t exchange_size[HT_SLOTS];
    uint64_t exchange_seed[HT_SLOTS];
    unsigned steps;
    atomic_int errors;
} hooked_shared;

typedef struct hooked_thread {
    hooked_shared *s;
    unsigned index;
} hooked_thread;

/* Each thread keeps its own slots and swaps blocks with a shared exchange,
 * so blocks are freed by other threads; every block's contents are checked
 * before it is freed. */
static void *hooked_worker(void *arg)
{
    hooked_thread *t = arg;
    hooked_shared *s = t->s;
    tu_rng g;
    tu_rng_seed(&g, 0xABCD00u + t->index);
    void *mine[HT_SLOTS] = {0};
    size_t size[HT_SLOTS] = {0};
    uint64_t seed[HT_SLOTS] = {0};
    for (unsigned step = 0; step < s->steps; step++) {
        size_t i = (size_t)tu_rng_below(&g, HT_SLOTS);
        if (mine[i] == NULL) {
            size[i] = tu_rng_range(&g, 1, 2000);
            seed[i] = tu_rng_next(&g);
            mine[i] = carve_alloc(s->h, size[i]);
            if (mine[i] == NULL) {
                atomic_fetch_add(&s->errors, 1);
                continue;
            }
            tu_fill(mine[i], seed[i], size[i]);
        } else if (tu_rng_below(&g, 2) == 0) {
            if (tu_verify(mine[i], seed[i], size[i]) != size[i] ||
                carve_free(s->h, mine[i]) != CARVE_OK)
                atomic_fetch_add(&s->errors, 1);
            mine[i] = NULL;
        } else {
            size_t k = (size_t)tu_rng_below(&g, HT_SLOTS);
            pthread_mutex_lock(&s->lock);
            void *p = s->exchange[k];
            size_t ps = s->exchange_size[k];
            uint64_t pseed = s->exchange_seed[k];
            s->exchange[k] = mine[i];
            s->exchange_size[k] = size[i];
            s->exchange_seed[k] = seed[i];
            pthread_mutex_unlock(&s->lock);
            mine[i] = p;
            size[i] = ps;
            seed[i] = pseed;
        }
    }
    for (size_t i = 0; i < HT_SLOTS; i++) {
        if (mine[i] == NULL)
            continue;
        if (tu_verify(mine[i], seed[i], size[i]) != size[i] ||
            carve_free(s->h, mine[i]) != CARVE_OK)
            atomic_fetch_add(&s->errors, 1);
    }
    return NULL;
}

static void test_threads_on_user_mutex(void **state)
{
    (void)state;
    counting_lock l;
    cl_init(&l);
    uh u;
    carve_heap *h = make_hooked(&u, 1u << 20, 0, &l, 1);
    carve_stats fresh = uh_stats(h);
    static hooked_shared s;
    memset(&s, 0, sizeof s);
    s.h = h;
    s.steps = uh_quick() ? 2000 : 20000;
    pthread_mutex_init(&s.lock, NULL);
    hooked_thread t[HT_THREADS];
    pthread_t tid[HT_THREADS];
    for (unsigned i = 0; i < HT_THREADS; i++) {
        t[i].s = &s;
        t[i].index = i;
        assert_int_equal(pthread_create(&tid[i], NULL, hooked_worker, &t[i]), 0);
    }
    for (unsigned i = 0; i < HT_THREADS; i++)
        pthread_join(tid[i], NULL);
    assert_int_equal(atomic_load(&s.errors), 0);
    for (size_t k = 0; k < HT_SLOTS; k++) {
        if (s.exchange[k] == NULL)
            continue;
        assert_int_equal(tu_verify(s.exchange[k], s.exchange_seed[k], s.exchange_size[k]),
                         s.exchange_size[k]);
        assert_int_equal(carve_free(h, s.exchange[k]), CARVE_OK);
    }
    pthread_mutex_destroy(&s.lock);
    assert_quiet(&l);
    /* Every call of every thread went through the hooks ("with hooks there
     * are no thread caches: every call takes the lock"). */
    assert_true(atomic_load(&l.locks) >= (unsigned long)HT_THREADS * s.steps / 2);
    carve_stats now = uh_stats(h);
    ASSERT_SAME_SHAPE(fresh, now);
    assert_int_equal(now.allocs, now.frees);
    ASSERT_HEAP_SANE(h);
    destroy_hooked(&u);
    cl_destroy(&l);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_call_locks_without_held),
        cmocka_unit_test(test_every_call_locks_with_held),
        cmocka_unit_test(test_hooks_with_threadsafe_flag),
        cmocka_unit_test(test_sizing_calls_take_no_lock),
        cmocka_unit_test(test_init_hooks_without_lock_or_unlock),
        cmocka_unit_test(test_init_hooks_with_shared),
        cmocka_unit_test(test_attach_refuses_hooked_heap),
        cmocka_unit_test(test_attach_with_lock_uses_new_hooks),
        cmocka_unit_test(test_attach_with_lock_errors),
        cmocka_unit_test(test_attach_with_lock_refuses_unhooked_heap),
        cmocka_unit_test(test_detach_null),
        cmocka_unit_test(test_detach_reattach_hooked),
        cmocka_unit_test(test_threads_on_user_mutex),
    };
    UH_RUN_GROUP("lock_hooks", tests);
}
